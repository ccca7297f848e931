//! Builds the dataplane's immutable `Snapshot` from a validated configuration and what
//! the started ports reported (MAC, MTU).

use crate::config::Config;
use dataplane::net::neigh::NeighParams;
use dataplane::net::route::Route;
use dataplane::packet::MacAddr;
use dataplane::snapshot::{PortInfo, Snapshot, StaticNeigh};

/// What a started port tells the control plane about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortHw {
    pub mac: MacAddr,
    pub mtu: u16,
}

/// `hw[i]` belongs to `cfg.ports[i]`. The config must have passed validation.
pub fn build(cfg: &Config, hw: &[PortHw]) -> Snapshot {
    let ports = cfg
        .ports
        .iter()
        .zip(hw)
        .map(|(p, h)| PortInfo {
            name: p.name.clone(),
            mac: h.mac,
            mtu: h.mtu,
            addresses: p.addresses.iter().map(|a| a.0).collect(),
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
            .map(|p| (p.name.clone(), p.device.clone(), p.promiscuous))
            .collect::<Vec<_>>()
    };
    if ids(running) != ids(next) {
        return Some("ports were added, removed, renamed or given another device".into());
    }
    if running.control != next.control {
        return Some("the control section changed".into());
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
        assert_eq!(s.ports[1].mac, hw[1].mac);
        assert!(s.owned.owned_on(Ipv4Addr::new(198, 19, 0, 2), 1));
        let nh = s.routes.lookup(Ipv4Addr::new(203, 0, 113, 1)).unwrap();
        assert_eq!((nh.port, nh.next_hop), (1, Ipv4Addr::new(198, 19, 0, 1)));
        assert_eq!(
            s.routes.lookup(Ipv4Addr::new(198, 18, 0, 9)).unwrap().port,
            0
        );
        assert_eq!(
            s.neighbours,
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
