//! Builds the dataplane's immutable `Snapshot` from a validated configuration and what
//! the started ports reported (MAC, MTU).

use crate::config::{Config, ServiceConf};
use dataplane::ipvs::sched::SchedFlags;
use dataplane::ipvs::service::{
    IpvsTable, Persistence, Proto, RealServer, Service, DEST_SLOTS, SVC_SLOTS,
};
use dataplane::ipvs::state::Timeouts;
use dataplane::net::neigh::NeighParams;
use dataplane::net::route::Route;
use dataplane::packet::MacAddr;
use dataplane::snapshot::{PortInfo, Snapshot, StaticNeigh};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// What a started port tells the control plane about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortHw {
    pub mac: MacAddr,
    pub mtu: u16,
}

/// `hw[i]` belongs to `cfg.ports[i]`. The config must have passed validation. A one-off
/// build (fresh slots); the daemon keeps a `Builder` so that slots survive reloads.
pub fn build(cfg: &Config, hw: &[PortHw]) -> Snapshot {
    Builder::default().build(cfg, hw, |_| false)
}

type SvcKey = (Proto, Ipv4Addr, u16);
type DestKey = (SvcKey, Ipv4Addr, u16);

/// Builds snapshots and remembers, across reloads, which slot each service and real
/// server has and which version each service's scheduler is at: an unchanged service
/// keeps both, so workers keep its scheduler state and its counters.
#[derive(Debug, Default)]
pub struct Builder {
    svc_slots: HashMap<SvcKey, u32>,
    dest_slots: HashMap<DestKey, u32>,
    versions: HashMap<SvcKey, (String, u64)>,
    next_version: u64,
}

/// What VRRP makes of the addresses (an overlay like health's): the virtual addresses
/// of MASTER instances are owned, those of the others stand by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ha {
    pub owned: Vec<std::net::Ipv4Addr>,
    pub standby: Vec<std::net::Ipv4Addr>,
}

impl Builder {
    /// `in_use(slot)` tells whether some worker still holds connections of a real-server
    /// slot; such slots are not handed to new real servers.
    pub fn build(&mut self, cfg: &Config, hw: &[PortHw], in_use: impl Fn(u32) -> bool) -> Snapshot {
        self.build_ha(cfg, hw, in_use, &Ha::default())
    }

    /// As `build`, with VRRP's view of the addresses.
    pub fn build_ha(
        &mut self,
        cfg: &Config,
        hw: &[PortHw],
        in_use: impl Fn(u32) -> bool,
        ha: &Ha,
    ) -> Snapshot {
        let base = base_snapshot(cfg, hw);
        let live_svcs: Vec<SvcKey> = cfg.services.iter().map(svc_key).collect();
        let live_dests: Vec<DestKey> = cfg
            .services
            .iter()
            .flat_map(|s| {
                s.real_servers
                    .iter()
                    .map(move |r| dest_key(s, r.address.addr, r.address.port))
            })
            .collect();
        self.svc_slots.retain(|k, _| live_svcs.contains(k));
        self.versions.retain(|k, _| live_svcs.contains(k));
        self.dest_slots
            .retain(|k, slot| live_dests.contains(k) || in_use(*slot));
        let mut services = Vec::new();
        for sc in &cfg.services {
            let key = svc_key(sc);
            let slot = match self.svc_slots.get(&key) {
                Some(s) => *s,
                None => {
                    let used: Vec<u32> = self.svc_slots.values().copied().collect();
                    let Some(s) = (0..SVC_SLOTS as u32).find(|s| !used.contains(s)) else {
                        continue;
                    };
                    self.svc_slots.insert(key, s);
                    s
                }
            };
            let mut dests = Vec::new();
            for r in &sc.real_servers {
                let dk = dest_key(sc, r.address.addr, r.address.port);
                let dslot = match self.dest_slots.get(&dk) {
                    Some(s) => *s,
                    None => {
                        let used: std::collections::HashSet<u32> =
                            self.dest_slots.values().copied().collect();
                        let Some(s) =
                            (0..DEST_SLOTS as u32).find(|s| !used.contains(s) && !in_use(*s))
                        else {
                            continue;
                        };
                        self.dest_slots.insert(dk, s);
                        s
                    }
                };
                dests.push(RealServer {
                    slot: dslot,
                    addr: r.address.addr,
                    port: sc.rs_port(r),
                    fwd: r.forward,
                    weight: r.weight,
                    u_threshold: r.upper_threshold,
                    l_threshold: r.lower_threshold,
                });
            }
            let flags = sc
                .flags
                .iter()
                .filter_map(|f| SchedFlags::parse(f))
                .fold(SchedFlags::default(), SchedFlags::union);
            // What a worker's scheduler depends on; a change bumps the version.
            let fingerprint = format!("{:?}|{:?}|{:?}", sc.scheduler, flags, dests);
            let version = match self.versions.get(&key) {
                Some((f, v)) if *f == fingerprint => *v,
                _ => {
                    self.next_version += 1;
                    self.versions.insert(key, (fingerprint, self.next_version));
                    self.next_version
                }
            };
            services.push(Service {
                slot,
                proto: sc.protocol,
                vip: sc.vip.addr,
                port: sc.vip.port,
                sched: sc.scheduler,
                flags,
                persistence: sc.persistence.as_ref().map(|p| Persistence {
                    timeout: p.timeout,
                    netmask: p.netmask.0,
                }),
                local_addrs: sc.local_addresses.iter().map(|a| a.0).collect(),
                toa: sc.toa,
                tables: Service::build_tables(sc.scheduler, &dests),
                dests,
                version,
                client_ip_owned: false,
            });
        }
        let mut timeouts = Timeouts::default();
        let t = &cfg.ipvs.timeouts;
        timeouts.set(t.tcp, t.tcpfin, t.udp);
        let mut table = IpvsTable::new(
            services,
            timeouts,
            cfg.ipvs.expire_nodest_conn,
            cfg.ipvs.expire_quiescent_template,
        );
        for a in &ha.standby {
            table.stand_by(*a);
        }
        let mut snap = base.with_ipvs(table);
        for a in &ha.owned {
            snap.net.own(*a);
        }
        snap
    }
}

fn svc_key(s: &ServiceConf) -> SvcKey {
    (s.protocol, s.vip.addr, s.vip.port)
}

fn dest_key(s: &ServiceConf, addr: Ipv4Addr, port: u16) -> DestKey {
    (svc_key(s), addr, if port == 0 { s.vip.port } else { port })
}

fn base_snapshot(cfg: &Config, hw: &[PortHw]) -> Snapshot {
    let ports = cfg
        .ports
        .iter()
        .zip(hw)
        .enumerate()
        .map(|(i, (p, h))| PortInfo {
            name: p.name.clone(),
            mac: h.mac,
            mtu: h.mtu,
            addresses: p.addresses.iter().map(|a| a.0).collect(),
            kernel: cfg.kernel_index(i),
        })
        .collect();
    let routes: Vec<Route> = cfg
        .routes
        .iter()
        .filter_map(|r| {
            Some(Route {
                prefix: r.prefix.0,
                via: r.via.map(|v| v.0),
                port: cfg.port_index(&r.port)?,
            })
        })
        .collect();
    let neighbours = cfg
        .neighbours
        .iter()
        .filter_map(|n| {
            Some(StaticNeigh {
                ip: n.address.0,
                mac: n.mac.0,
                port: cfg.port_index(&n.port)?,
            })
        })
        .collect();
    let nc = &cfg.dataplane.neighbour;
    let params = NeighParams {
        retrans_ms: nc.retrans_ms,
        max_probes: nc.max_probes,
        reachable_ms: nc.reachable_s * 1000,
        max_entries: nc.max_entries,
    };
    Snapshot::new(ports, &routes, neighbours, params)
}

/// Why a new configuration cannot be applied to the running daemon without a restart:
/// EAL settings, worker count and the port list (names and devices) are fixed at start.
pub fn restart_needed(running: &Config, next: &Config) -> Option<String> {
    if running.eal != next.eal {
        return Some("the eal section changed".into());
    }
    if running.dataplane.workers != next.dataplane.workers {
        return Some("dataplane.workers changed".into());
    }
    let ids = |c: &Config| {
        c.ports
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.device.clone(),
                    p.promiscuous,
                    p.kernel.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    if ids(running) != ids(next) {
        return Some(
            "ports were added, removed, renamed or given another device or kernel twin".into(),
        );
    }
    if running.control != next.control {
        return Some("the control section changed".into());
    }
    if running.metrics != next.metrics {
        return Some("metrics.listen changed".into());
    }
    if running.ipvs.connections != next.ipvs.connections {
        return Some("ipvs.connections changed (the tables are allocated at start)".into());
    }
    if (
        &running.vrrp_scripts,
        &running.vrrp_instances,
        &running.vrrp_sync_groups,
        &running.lvs_sync_daemon,
    ) != (
        &next.vrrp_scripts,
        &next.vrrp_instances,
        &next.vrrp_sync_groups,
        &next.lvs_sync_daemon,
    ) {
        return Some(
            "the VRRP or lvs_sync_daemon sections changed (a restart sends priority 0 first, so the peer takes over meanwhile)"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CFG: &str = r#"
ports:
  - { name: lan0, device: net_null0, addresses: ["198.18.0.2/24"] }
  - { name: lan1, device: net_null1, addresses: ["198.19.0.2/24"] }
routes:
  - { prefix: "0.0.0.0/0", via: "198.19.0.1", port: lan1 }
neighbours:
  - { address: "198.19.0.1", mac: "02:00:00:00:00:01", port: lan1 }
"#;

    #[test]
    fn builds_routes_neighbours_and_owned_addresses() {
        let cfg = Config::parse(CFG, "t").unwrap();
        let hw = [
            PortHw {
                mac: MacAddr([2, 0, 0, 0, 0, 0xa]),
                mtu: 1500,
            },
            PortHw {
                mac: MacAddr([2, 0, 0, 0, 0, 0xb]),
                mtu: 9000,
            },
        ];
        let s = build(&cfg, &hw);
        assert_eq!(s.net.ports[1].mac, hw[1].mac);
        assert!(s.net.owned.owned_on(Ipv4Addr::new(198, 19, 0, 2), 1));
        let nh = s.net.routes.lookup(Ipv4Addr::new(203, 0, 113, 1)).unwrap();
        assert_eq!((nh.port, nh.next_hop), (1, Ipv4Addr::new(198, 19, 0, 1)));
        assert_eq!(
            s.net
                .routes
                .lookup(Ipv4Addr::new(198, 18, 0, 9))
                .unwrap()
                .port,
            0
        );
        assert_eq!(
            s.net.neighbours,
            vec![StaticNeigh {
                ip: Ipv4Addr::new(198, 19, 0, 1),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                port: 1
            }]
        );
    }

    #[test]
    fn what_needs_a_restart() {
        let a = Config::parse(CFG, "t").unwrap();
        let mut b = a.clone();
        b.routes.clear();
        b.ports[0].addresses.clear();
        assert_eq!(
            restart_needed(&a, &b),
            None,
            "routes and addresses reload live"
        );
        b.ports[1].device = "net_null7".into();
        assert!(restart_needed(&a, &b).unwrap().contains("ports"));
        let mut c = a.clone();
        c.dataplane.workers = 2;
        assert!(restart_needed(&a, &c).is_some());
    }
}

#[cfg(test)]
mod builder_tests {
    use super::*;

    #[test]
    fn slots_and_versions_are_stable_for_unchanged_services() {
        let a = "ports: [{ name: lan0, device: net_null0, addresses: [\"10.0.0.1/24\", \"192.0.2.1/24\"] }]\nservices:\n  - { vip: \"192.0.2.10:80\", real_servers: [{ address: \"10.0.0.11:80\", forward: nat }] }\n  - { vip: \"192.0.2.10:81\", real_servers: [{ address: \"10.0.0.12:81\", forward: nat }] }\n";
        let hw = [PortHw {
            mac: dataplane::packet::MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        }];
        let mut b = Builder::default();
        let s1 = b.build(&Config::parse(a, "a").unwrap(), &hw, |_| false);
        let b_text = a.replace(
            "10.0.0.12:81\", forward: nat }",
            "10.0.0.12:81\", forward: nat, weight: 5 }",
        );
        let s2 = b.build(&Config::parse(&b_text, "b").unwrap(), &hw, |_| false);
        let (x1, x2) = (&s1.ipvs.services, &s2.ipvs.services);
        assert_eq!(
            (x1[0].slot, x1[0].version),
            (x2[0].slot, x2[0].version),
            "untouched service: same slot and version"
        );
        assert_eq!(x1[1].slot, x2[1].slot);
        assert_ne!(
            x1[1].version, x2[1].version,
            "its weights changed: a new version"
        );
        assert_eq!(
            x1[1].dests[0].slot, x2[1].dests[0].slot,
            "a real server keeps its slot"
        );
        // A removed real server's slot is not handed out while connections use it.
        let c_text = a.replace("10.0.0.11:80", "10.0.0.13:80");
        let s3 = b.build(&Config::parse(&c_text, "c").unwrap(), &hw, |slot| {
            slot == x1[0].dests[0].slot
        });
        assert_ne!(s3.ipvs.services[0].dests[0].slot, x1[0].dests[0].slot);
    }
}
