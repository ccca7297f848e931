//! The running director as the control plane sees it: the running configuration (the one
//! truth that YAML reloads and ipvsadm commands both edit), the snapshot builder and the
//! publication point, and the counters the workers publish, with the kernel's rate
//! estimator and `-Z` baselines on top. Workers never see this; they see snapshots.

use crate::config::{Addr, Config, Endpoint, PersistenceConf, RealServerConf, ServiceConf};
use crate::health::{Health, Overlay};
use crate::ipvsadm::format::{ConnView, Five, ServerView, ServiceView};
use crate::ipvsadm::{Command, ServiceKey};
use crate::snapshot::{Builder, PortHw};
use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::SchedKind;
use dataplane::ipvs::service::{Proto, DEST_SLOTS, SVC_SLOTS};
use dataplane::ipvs::stats::{IpvsStats, Traffic};
use dataplane::snapshot::SnapshotCell;
use dataplane::worker::{Mailboxes, Msg};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The kernel's rate estimator (ip_vs_est.c): every 2 s, the per-second rate scaled by
/// 2^10 (2^5 for bytes) enters an average with weight 1/4.
#[derive(Debug, Clone, Copy, Default)]
struct Est {
    last: [u64; 5],
    avg: [i64; 5],
}

impl Est {
    fn update(&mut self, now: [u64; 5]) {
        for (i, ((avg, last), n)) in self
            .avg
            .iter_mut()
            .zip(self.last.iter_mut())
            .zip(now)
            .enumerate()
        {
            let delta = n.saturating_sub(*last) as i64;
            // packets/conns: << 9 (x1024 / 2 s); bytes: << 4 (x32 / 2 s)
            let rate = if i >= 3 { delta << 4 } else { delta << 9 };
            *avg += (rate - *avg) >> 2;
            *last = n;
        }
    }
    fn read(&self) -> Five {
        let mut o = [0u64; 5];
        for (i, (out, avg)) in o.iter_mut().zip(self.avg).enumerate() {
            *out = if i >= 3 {
                ((avg + 0xF) >> 5).max(0) as u64
            } else {
                ((avg + 0x1FF) >> 10).max(0) as u64
            };
        }
        Five(o)
    }
    fn zero(&mut self, now: [u64; 5]) {
        self.avg = [0; 5];
        self.last = now;
    }
}

fn five(t: &[&Traffic]) -> [u64; 5] {
    let mut o = [0u64; 5];
    for x in t {
        o[0] += x.conns.get();
        o[1] += x.inpkts.get();
        o[2] += x.outpkts.get();
        o[3] += x.inbytes.get();
        o[4] += x.outbytes.get();
    }
    o
}

fn minus(a: [u64; 5], b: [u64; 5]) -> Five {
    let mut o = [0u64; 5];
    for i in 0..5 {
        o[i] = a[i].saturating_sub(b[i]);
    }
    Five(o)
}

pub struct Director {
    pub cfg: Config,
    pub config_path: PathBuf,
    builder: Builder,
    pub(crate) cell: Arc<SnapshotCell>,
    hw: Vec<PortHw>,
    ipvs_stats: Vec<Arc<IpvsStats>>,
    pub(crate) mail: Option<Arc<Mailboxes>>,
    svc_est: Vec<Est>,
    dest_est: Vec<Est>,
    svc_base: Vec<[u64; 5]>,
    dest_base: Vec<[u64; 5]>,
    /// The health checker, and the overlay its probes make: applied on top of `cfg`
    /// when a snapshot is built, never written into `cfg`.
    pub(crate) health: Option<Health>,
    pub(crate) overlay: Overlay,
    /// VRRP, and what it makes of the addresses (owned while MASTER, else standing by).
    pub(crate) vrrp: Option<crate::vrrp::Vrrp>,
    pub(crate) ha: crate::snapshot::Ha,
    /// Connection sync (keepalived's lvs_sync_daemon), its role following VRRP.
    pub(crate) sync: Option<crate::sync::SyncDaemon>,
    /// The workers' sync rings (the daemon may start later, from ipvsadm).
    pub(crate) sync_rings: Option<Arc<dataplane::ipvs::sync::SyncRings>>,
    /// ipvsadm's --start-daemon roles, when no VRRP instance drives the daemon.
    pub(crate) sync_roles: (bool, bool),
    /// The interface name ipvsadm's --start-daemon was given, for `-L --daemon`.
    pub(crate) sync_label: Option<String>,
}

impl Director {
    /// Builds the first snapshot of `cfg` and the director around it.
    pub fn new(
        cfg: Config,
        config_path: PathBuf,
        hw: Vec<PortHw>,
        ipvs_stats: Vec<Arc<IpvsStats>>,
        mail: Option<Arc<Mailboxes>>,
    ) -> Director {
        let mut builder = Builder::default();
        let cell = Arc::new(SnapshotCell::new(builder.build(&cfg, &hw, |_| false)));
        Director {
            cfg,
            config_path,
            builder,
            cell,
            hw,
            ipvs_stats,
            mail,
            svc_est: vec![Est::default(); SVC_SLOTS],
            dest_est: vec![Est::default(); DEST_SLOTS],
            svc_base: vec![[0; 5]; SVC_SLOTS],
            dest_base: vec![[0; 5]; DEST_SLOTS],
            health: None,
            overlay: Overlay::default(),
            vrrp: None,
            ha: crate::snapshot::Ha::default(),
            sync: None,
            sync_rings: None,
            sync_roles: (false, false),
            sync_label: None,
        }
    }

    /// Starts checking the configuration's real servers with `h`; from now on their
    /// health shapes every snapshot.
    pub fn attach_health(&mut self, h: Health) {
        self.overlay = h.apply(&self.cfg);
        self.health = Some(h);
        // Without checks (or with every server up) the first snapshot stands.
        if self.overlay != Overlay::default() {
            self.publish();
        }
    }

    /// Takes the health checker's overlay if a probe changed; publishes when the
    /// overlay changed. rvsd's main loop calls it every tick.
    pub fn refresh_health(&mut self) {
        if let Some(o) = self.health.as_ref().and_then(Health::poll) {
            if o != self.overlay {
                if let Some(v) = &self.vrrp {
                    if o.quorum_lost != self.overlay.quorum_lost {
                        v.quorum(o.quorum_lost.clone());
                    }
                }
                self.overlay = o;
                self.publish();
            }
        }
    }

    /// Stops the health checker (keepalived's `omega` scripts first).
    pub fn stop_health(&mut self) {
        if let Some(h) = &mut self.health {
            h.stop();
        }
    }

    /// Every checker's state, for `rvsadm --health`.
    pub fn health_status(&self) -> Vec<crate::health::CheckStatus> {
        self.health.as_ref().map(|h| h.status()).unwrap_or_default()
    }

    /// The checkers follow a new running configuration (unchanged ones keep their state).
    fn rehealth(&mut self) {
        if let Some(h) = &self.health {
            self.overlay = h.apply(&self.cfg);
        }
    }

    pub fn cell(&self) -> Arc<SnapshotCell> {
        self.cell.clone()
    }

    /// Builds and publishes the running configuration; returns the generation.
    pub(crate) fn publish(&mut self) -> u64 {
        let stats = &self.ipvs_stats;
        let in_use = |slot: u32| {
            stats.iter().any(|w| {
                let d = &w.dests[slot as usize];
                d.active.get() + d.inactive.get() + d.persist.get() > 0
            })
        };
        // The overlay only when it changes something: a configuration without checks
        // is built as it is.
        let snap = if self.overlay == Overlay::default() {
            self.builder.build_ha(&self.cfg, &self.hw, in_use, &self.ha)
        } else {
            let eff = crate::health::effective(&self.cfg, &self.overlay);
            self.builder.build_ha(&eff, &self.hw, in_use, &self.ha)
        };
        self.cell.publish(snap)
    }

    /// Applies ipvsadm commands, all or nothing: each edits a copy of the running
    /// configuration, the result is validated as a whole, and only then published.
    pub fn apply(&mut self, cmds: &[Command]) -> Result<u64, String> {
        let mut next = self.cfg.clone();
        for c in cmds {
            match c {
                Command::Zero(key) => {
                    self.zero(*key);
                    continue;
                }
                Command::StartDaemon { .. } | Command::StopDaemon { .. } => {
                    // Runs at once (as ipvsadm's do); the running configuration
                    // records the daemon.
                    self.sync_daemon_command(c)?;
                    next.lvs_sync_daemon = self.cfg.lvs_sync_daemon.clone();
                    continue;
                }
                c => edit(&mut next, c)?,
            }
        }
        if let Some((key, msg)) = next.validate().into_iter().next() {
            return Err(format!("{key}: {msg}"));
        }
        if let Some(why) = crate::snapshot::restart_needed(&self.cfg, &next) {
            return Err(format!("{why}; restart rvsd to apply it"));
        }
        self.cfg = next;
        self.rehealth();
        Ok(self.publish())
    }

    /// Re-reads the configuration file (SIGHUP, `rvsadm --reload`); on any error the
    /// running configuration stays.
    pub fn reload(&mut self) -> Result<u64, String> {
        let mut next = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        next.control = self.cfg.control.clone(); // the socket may come from the command line
        if let Some(why) = crate::snapshot::restart_needed(&self.cfg, &next) {
            return Err(format!(
                "{}: {why}; restart rvsd to apply it",
                self.config_path.display()
            ));
        }
        // The kernel twins' addresses first: if they cannot follow, nothing changes.
        crate::kernel::sync_addresses(&self.cfg, &next)
            .map_err(|e| format!("{}: kernel exception path: {e}", self.config_path.display()))?;
        self.cfg = next;
        self.rehealth();
        let g = self.publish();
        tracing::info!(generation = g, "configuration reloaded");
        Ok(g)
    }

    /// `-Z`: counters of one service (and its real servers) or of all start again at 0.
    pub fn zero(&mut self, key: Option<ServiceKey>) {
        let snap = self.cell.load();
        for s in &snap.ipvs.services {
            if key.is_some_and(|k| (k.proto, k.addr, k.port) != (s.proto, s.vip, s.port)) {
                continue;
            }
            let raw = five(
                &self
                    .ipvs_stats
                    .iter()
                    .map(|w| &w.services[s.slot as usize])
                    .collect::<Vec<_>>(),
            );
            self.svc_base[s.slot as usize] = raw;
            self.svc_est[s.slot as usize].zero(raw);
            for d in &s.dests {
                let raw = five(
                    &self
                        .ipvs_stats
                        .iter()
                        .map(|w| &w.dests[d.slot as usize].traffic)
                        .collect::<Vec<_>>(),
                );
                self.dest_base[d.slot as usize] = raw;
                self.dest_est[d.slot as usize].zero(raw);
            }
        }
    }

    /// Feeds the rate estimator; call every 2 seconds.
    pub fn estimate(&mut self) {
        let snap = self.cell.load();
        for s in &snap.ipvs.services {
            let raw = five(
                &self
                    .ipvs_stats
                    .iter()
                    .map(|w| &w.services[s.slot as usize])
                    .collect::<Vec<_>>(),
            );
            self.svc_est[s.slot as usize].update(raw);
            for d in &s.dests {
                let raw = five(
                    &self
                        .ipvs_stats
                        .iter()
                        .map(|w| &w.dests[d.slot as usize].traffic)
                        .collect::<Vec<_>>(),
                );
                self.dest_est[d.slot as usize].update(raw);
            }
        }
    }

    /// The services as `-L` shows them, counters summed over workers.
    pub fn services(&self, key: Option<ServiceKey>) -> Result<Vec<ServiceView>, String> {
        let snap = self.cell.load();
        let mut out = Vec::new();
        for s in &snap.ipvs.services {
            if key.is_some_and(|k| (k.proto, k.addr, k.port) != (s.proto, s.vip, s.port)) {
                continue;
            }
            let conf = self
                .cfg
                .services
                .iter()
                .find(|c| (c.protocol, c.vip.addr, c.vip.port) == (s.proto, s.vip, s.port));
            let raw = five(
                &self
                    .ipvs_stats
                    .iter()
                    .map(|w| &w.services[s.slot as usize])
                    .collect::<Vec<_>>(),
            );
            out.push(ServiceView {
                key: ServiceKey {
                    proto: s.proto,
                    addr: s.vip,
                    port: s.port,
                },
                scheduler: s.sched.name().to_string(),
                flags: conf.map(|c| c.flags.clone()).unwrap_or_default(),
                persistent: s.persistence.map(|p| (p.timeout, p.netmask)),
                laddrs: s.local_addrs.clone(),
                toa: s.toa,
                stats: minus(raw, self.svc_base[s.slot as usize]),
                rates: self.svc_est[s.slot as usize].read(),
                servers: s
                    .dests
                    .iter()
                    .map(|d| {
                        let per: Vec<_> = self
                            .ipvs_stats
                            .iter()
                            .map(|w| &w.dests[d.slot as usize])
                            .collect();
                        let raw = five(&per.iter().map(|c| &c.traffic).collect::<Vec<_>>());
                        ServerView {
                            addr: d.addr,
                            port: d.port,
                            fwd: d.fwd,
                            weight: d.weight,
                            u_threshold: d.u_threshold,
                            l_threshold: d.l_threshold,
                            active: per.iter().map(|c| c.active.get()).sum(),
                            inactive: per.iter().map(|c| c.inactive.get()).sum(),
                            persist: per.iter().map(|c| c.persist.get()).sum(),
                            stats: minus(raw, self.dest_base[d.slot as usize]),
                            rates: self.dest_est[d.slot as usize].read(),
                        }
                    })
                    .collect(),
            });
        }
        if key.is_some() && out.is_empty() {
            return Err("No such service".into());
        }
        Ok(out)
    }

    /// The configured services as `-S` writes them: health never edits the
    /// configuration, so a server that is down (or a sorry server standing in) does not
    /// change what is saved and restored.
    pub fn configured_services(&self) -> Vec<ServiceView> {
        self.cfg
            .services
            .iter()
            .map(|c| ServiceView {
                key: ServiceKey {
                    proto: c.protocol,
                    addr: c.vip.addr,
                    port: c.vip.port,
                },
                scheduler: c.scheduler.name().to_string(),
                flags: c.flags.clone(),
                persistent: c.persistence.as_ref().map(|p| (p.timeout, p.netmask.0)),
                laddrs: c.local_addresses.iter().map(|a| a.0).collect(),
                toa: c.toa,
                stats: Five::default(),
                rates: Five::default(),
                servers: c
                    .real_servers
                    .iter()
                    .map(|r| ServerView {
                        addr: r.address.addr,
                        port: c.rs_port(r),
                        fwd: r.forward,
                        weight: r.weight,
                        u_threshold: r.upper_threshold,
                        l_threshold: r.lower_threshold,
                        active: 0,
                        inactive: 0,
                        persist: 0,
                        stats: Five::default(),
                        rates: Five::default(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every worker's connections (each worker answers between bursts).
    pub fn connections(&self) -> Vec<ConnView> {
        let Some(mail) = &self.mail else {
            return Vec::new();
        };
        let (tx, rx) = crossbeam::channel::unbounded();
        let asked = (0..mail.workers())
            .filter(|&w| mail.post(w, Msg::DumpConns(tx.clone())))
            .count();
        let mut out = Vec::new();
        for _ in 0..asked {
            let Ok(list) = rx.recv_timeout(Duration::from_secs(2)) else {
                break;
            };
            out.extend(list.into_iter().filter_map(|c| {
                Some(ConnView {
                    proto: Proto::from_u8(c.proto)?,
                    caddr: c.caddr,
                    cport: c.cport,
                    vaddr: c.vaddr,
                    vport: c.vport,
                    daddr: c.daddr,
                    dport: c.dport,
                    state: c.state.to_string(),
                    expires: c.expires_in,
                })
            }));
        }
        out
    }

    pub fn timeouts(&self) -> (u32, u32, u32) {
        let t = &self.cfg.ipvs.timeouts;
        (t.tcp, t.tcpfin, t.udp)
    }

    /// The connection-table size shown by `-L` (all workers).
    pub fn table_size(&self) -> usize {
        self.cfg.ipvs.connections * self.cfg.dataplane.workers
    }

    /// The running configuration as YAML that `rvsd --check` accepts.
    pub fn config_yaml(&self) -> String {
        serde_yaml::to_string(&self.cfg).unwrap_or_default()
    }
}

fn find(cfg: &Config, k: &ServiceKey) -> Option<usize> {
    cfg.services
        .iter()
        .position(|s| (s.protocol, s.vip.addr, s.vip.port) == (k.proto, k.addr, k.port))
}

/// One ipvsadm command as an edit of the configuration, with the kernel's error words.
pub fn edit(cfg: &mut Config, c: &Command) -> Result<(), String> {
    match c {
        Command::AddService(k, o) => {
            if find(cfg, k).is_some() {
                return Err("Service already exists".into());
            }
            cfg.services.push(ServiceConf {
                vip: Endpoint {
                    addr: k.addr,
                    port: k.port,
                },
                protocol: k.proto,
                scheduler: o.scheduler.unwrap_or(SchedKind::Wlc),
                flags: o.sched_flags.clone().unwrap_or_default(),
                persistence: o.persistent.map(|t| PersistenceConf {
                    timeout: t,
                    netmask: Addr(o.netmask.unwrap_or(Ipv4Addr::BROADCAST)),
                }),
                local_addresses: o
                    .laddrs
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(Addr)
                    .collect(),
                toa: o.toa,
                ..ServiceConf::bare(
                    Endpoint {
                        addr: k.addr,
                        port: k.port,
                    },
                    k.proto,
                )
            });
        }
        Command::EditService(k, o) => {
            let i = find(cfg, k).ok_or("No such service")?;
            let s = &mut cfg.services[i];
            // As ipvsadm -E: the service takes exactly the options given (wlc and no
            // persistence when absent); rvs's own options keep their value when absent.
            s.scheduler = o.scheduler.unwrap_or(SchedKind::Wlc);
            s.flags = o.sched_flags.clone().unwrap_or_default();
            s.persistence = o.persistent.map(|t| PersistenceConf {
                timeout: t,
                netmask: Addr(o.netmask.unwrap_or(Ipv4Addr::BROADCAST)),
            });
            if let Some(l) = &o.laddrs {
                s.local_addresses = l.iter().copied().map(Addr).collect();
            }
            if o.toa {
                s.toa = true;
            }
        }
        Command::DeleteService(k) => {
            let i = find(cfg, k).ok_or("No such service")?;
            cfg.services.remove(i);
        }
        Command::Clear => cfg.services.clear(),
        Command::AddServer(k, a, p, o) => {
            let i = find(cfg, k).ok_or("Service not defined")?;
            let s = &mut cfg.services[i];
            if s.real_servers
                .iter()
                .any(|r| r.address.addr == *a && eff_port(r, k) == *p)
            {
                return Err("Destination already exists".into());
            }
            s.real_servers.push(RealServerConf {
                address: Endpoint { addr: *a, port: *p },
                forward: o.fwd.unwrap_or(Fwd::Dr),
                weight: o.weight.unwrap_or(1),
                upper_threshold: o.u_threshold.unwrap_or(0),
                lower_threshold: o.l_threshold.unwrap_or(0),
                ..RealServerConf::bare(Endpoint { addr: *a, port: *p })
            });
        }
        Command::EditServer(k, a, p, o) => {
            let i = find(cfg, k).ok_or("Service not defined")?;
            let s = &mut cfg.services[i];
            let r = s
                .real_servers
                .iter_mut()
                .find(|r| r.address.addr == *a && eff_port(r, k) == *p)
                .ok_or("No such destination")?;
            // As ipvsadm -e: absent options take their defaults (route, weight 1).
            r.forward = o.fwd.unwrap_or(Fwd::Dr);
            r.weight = o.weight.unwrap_or(1);
            r.upper_threshold = o.u_threshold.unwrap_or(0);
            r.lower_threshold = o.l_threshold.unwrap_or(0);
        }
        Command::DeleteServer(k, a, p) => {
            let i = find(cfg, k).ok_or("Service not defined")?;
            let s = &mut cfg.services[i];
            let j = s
                .real_servers
                .iter()
                .position(|r| r.address.addr == *a && eff_port(r, k) == *p)
                .ok_or("No such destination")?;
            s.real_servers.remove(j);
        }
        Command::SetTimeouts(tcp, fin, udp) => {
            let t = &mut cfg.ipvs.timeouts;
            if *tcp != 0 {
                t.tcp = *tcp;
            }
            if *fin != 0 {
                t.tcpfin = *fin;
            }
            if *udp != 0 {
                t.udp = *udp;
            }
        }
        Command::Zero(_)
        | Command::List(..)
        | Command::Save(_)
        | Command::Restore
        | Command::StartDaemon { .. }
        | Command::StopDaemon { .. } => {}
    }
    Ok(())
}

fn eff_port(r: &RealServerConf, k: &ServiceKey) -> u16 {
    if r.address.port == 0 {
        k.port
    } else {
        r.address.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::parse::parse_line;

    fn director(yaml: &str) -> Director {
        let cfg = Config::parse(yaml, "t.yaml").unwrap();
        let hw = vec![PortHw {
            mac: dataplane::packet::MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        }];
        Director::new(cfg, "t.yaml".into(), hw, vec![Arc::default()], None)
    }
    const BASE: &str = "ports: [{ name: lan0, device: net_null0, addresses: [\"10.0.0.1/24\", \"192.0.2.1/24\"] }]\n";

    fn run(d: &mut Director, lines: &[&str]) -> Result<u64, String> {
        let cmds: Vec<Command> = lines
            .iter()
            .map(|l| parse_line(l).unwrap().unwrap())
            .collect();
        d.apply(&cmds)
    }

    #[test]
    fn ipvsadm_commands_edit_the_running_config() {
        let mut d = director(BASE);
        run(
            &mut d,
            &[
                "-A -t 192.0.2.10:80 -s rr",
                "-a -t 192.0.2.10:80 -r 10.0.0.11 -m -w 3",
                "-a -t 192.0.2.10:80 -r 10.0.0.12:8080 -g",
            ],
        )
        .unwrap_err();
        // DR cannot change the port: the whole batch was refused, nothing changed.
        assert!(d.cfg.services.is_empty());
        let g = run(
            &mut d,
            &[
                "-A -t 192.0.2.10:80 -s rr",
                "-a -t 192.0.2.10:80 -r 10.0.0.11 -m -w 3",
            ],
        )
        .unwrap();
        assert_eq!(g, 2);
        let v = d.services(None).unwrap();
        assert_eq!(v[0].servers[0].weight, 3);
        assert_eq!(v[0].servers[0].port, 80);
        assert_eq!(d.cell().load().ipvs.services.len(), 1, "published");
        // Kernel error words.
        assert_eq!(
            run(&mut d, &["-A -t 192.0.2.10:80 -s rr"]).unwrap_err(),
            "Service already exists"
        );
        assert_eq!(
            run(&mut d, &["-a -t 192.0.2.10:80 -r 10.0.0.11 -m"]).unwrap_err(),
            "Destination already exists"
        );
        assert_eq!(
            run(&mut d, &["-a -t 192.0.2.10:81 -r 10.0.0.11 -m"]).unwrap_err(),
            "Service not defined"
        );
        assert_eq!(
            run(&mut d, &["-d -t 192.0.2.10:80 -r 10.0.0.99"]).unwrap_err(),
            "No such destination"
        );
        assert_eq!(
            run(&mut d, &["-D -t 192.0.2.10:81"]).unwrap_err(),
            "No such service"
        );
        // -e takes ipvsadm's defaults for what is not given.
        run(&mut d, &["-e -t 192.0.2.10:80 -r 10.0.0.11 -w 0"]).unwrap();
        let r = &d.cfg.services[0].real_servers[0];
        assert_eq!((r.weight, r.forward), (0, Fwd::Dr));
        run(
            &mut d,
            &["-E -t 192.0.2.10:80 -s sh -b sh-port -p 600 -M 255.255.255.0"],
        )
        .unwrap();
        let s = &d.services(None).unwrap()[0];
        assert_eq!(
            (s.scheduler.as_str(), s.persistent),
            ("sh", Some((600, Ipv4Addr::new(255, 255, 255, 0))))
        );
        assert_eq!(s.flags, vec!["sh-port"]);
        run(&mut d, &["--set 3600 0 60"]).unwrap();
        assert_eq!(d.timeouts(), (3600, 120, 60));
        run(&mut d, &["-C"]).unwrap();
        assert!(d.services(None).unwrap().is_empty());
        assert_eq!(
            d.services(Some(ServiceKey {
                proto: Proto::Tcp,
                addr: Ipv4Addr::new(192, 0, 2, 10),
                port: 80
            }))
            .unwrap_err(),
            "No such service"
        );
    }

    #[test]
    fn save_then_restore_round_trips() {
        let mut d = director(BASE);
        run(
            &mut d,
            &[
                "-A -t 192.0.2.10:80 -s wlc",
                "-a -t 192.0.2.10:80 -r 10.0.0.11:80 -g -w 1",
                "-A -t 192.0.2.10:443 -s rr -p 360 --laddr 10.0.0.3",
                "-a -t 192.0.2.10:443 -r 10.0.0.11:443 -m -w 2 -x 100 -y 50",
                "-a -t 192.0.2.10:443 -r 10.0.0.12:8443 --fullnat -w 1",
                "-A -u 192.0.2.10:53 -s sh -b sh-fallback,sh-port",
                "-a -u 192.0.2.10:53 -r 10.0.0.13:53 -m -w 1",
            ],
        )
        .unwrap();
        let saved = crate::ipvsadm::format::save(&d.services(None).unwrap(), true);
        run(&mut d, &["-C"]).unwrap();
        let lines: Vec<&str> = saved.lines().collect();
        run(&mut d, &lines).unwrap();
        assert_eq!(
            crate::ipvsadm::format::save(&d.services(None).unwrap(), true),
            saved
        );
        // The running configuration saves as YAML that loads back.
        let yaml = d.config_yaml();
        let back = Config::parse(&yaml, "saved.yaml").unwrap();
        assert_eq!(back.services, d.cfg.services);
    }

    #[test]
    fn estimator_follows_the_kernel() {
        let mut e = Est::default();
        // 100 connections/s and 1 MB/s for a while.
        for i in 1..=40u64 {
            e.update([200 * i, 200 * i, 0, 2_000_000 * i, 0]);
        }
        let r = e.read();
        assert_eq!(r.0[0], 100);
        assert!(r.0[3].abs_diff(1_000_000) < 1000, "{}", r.0[3]);
        e.zero([0; 5]);
        assert_eq!(e.read(), Five::default());
    }
}
