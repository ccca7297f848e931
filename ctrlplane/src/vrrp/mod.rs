//! VRRP in rvsd, interoperable with keepalived: every `vrrp_instance` runs its state
//! machine (`fsm`) in one task of the control plane's runtime, with its adverts
//! (`packet`) on a raw socket of its port's kernel twin (`net`), `vrrp_script` trackers
//! (`track`) and the health quorum of virtual services as tracked objects, sync groups
//! that move together, gratuitous ARPs on becoming MASTER, and keepalived's notify
//! scripts and log lines.
//!
//! What VRRP changes is an overlay, like health's: the addresses of MASTER instances are
//! owned, those of the others stand by (`snapshot::Ha`). rvsd's main loop takes it when
//! it changed (`poll`) and publishes a snapshot.

pub mod fsm;
pub mod net;
pub mod packet;
mod track;

use crate::config::{Config, VrrpInstanceConf};
use crate::health::overlay::SvcKey;
use crate::snapshot::Ha;
use fsm::{Action, Fsm, Params, State};
use packet::{Advert, Checksum, Expect};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// What `rvsadm --vrrp` shows of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub state: State,
    pub priority: u8,
    pub base_priority: u8,
    /// The current master's address (ours when MASTER).
    pub master: Option<Ipv4Addr>,
    /// Seconds.
    pub advert_int: f64,
    pub virtual_ipaddress: Vec<String>,
    /// Seconds since the epoch of the last change of state (0 before the first).
    pub last_transition_unix: f64,
    /// Why it changed: "the master sent priority 0", "no advert within the master
    /// down interval", "a master of higher priority", ...
    #[serde(default)]
    pub last_cause: String,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Adverts of priority 0 heard (a master stepping down).
    pub priority_zero_received: u64,
    /// Dropped adverts by reason (packet::Bad's names).
    pub dropped: BTreeMap<String, u64>,
}

enum Event {
    Packet(usize, Vec<u8>),
    Script(usize, bool),
    Quorum(HashSet<SvcKey>),
    Stop(tokio::sync::oneshot::Sender<()>),
}

/// One instance as the task runs it.
struct Inst {
    conf: VrrpInstanceConf,
    fsm: Fsm,
    sock: Arc<AsyncFd<socket2::Socket>>,
    garp: Option<net::Garp>,
    my_ip: Ipv4Addr,
    pass: Option<[u8; 8]>,
    vips: Vec<Ipv4Addr>,
    /// Next gratuitous ARP burst (second burst, then refreshes) while MASTER.
    next_garp: Option<Duration>,
    /// Which burst `next_garp` is: the first (right after the overlay is published),
    /// the second (`garp_master_delay` later), or a refresh.
    garp_phase: u8,
}

/// The VRRP instances of a configuration, running.
pub struct Vrrp {
    tx: mpsc::UnboundedSender<Event>,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    ha: Arc<Mutex<Ha>>,
    dirty: Arc<AtomicBool>,
    handle: tokio::runtime::Handle,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The kernel twin of the port an instance names, and the address adverts leave from:
/// `unicast_src_ip`, else the port's address in the first unicast peer's subnet, else
/// its first address (the twin's primary, which the kernel picks for multicast).
fn twin<'a>(cfg: &'a Config, c: &VrrpInstanceConf) -> Result<(&'a str, Option<Ipv4Addr>), String> {
    let port = &c.interface;
    let p = cfg
        .ports
        .iter()
        .find(|p| &p.name == port)
        .ok_or_else(|| format!("no port named {port:?}"))?;
    let k = p
        .kernel
        .as_ref()
        .ok_or_else(|| format!("port {port:?} has no kernel twin"))?;
    let src = c.unicast_src_ip.map(|a| a.0).or_else(|| {
        let peer = c.unicast_peer.first()?.0;
        p.addresses
            .iter()
            .find(|a| a.0.contains(peer))
            .map(|a| a.0.addr)
    });
    Ok((
        k.name.as_str(),
        src.or_else(|| p.addresses.first().map(|a| a.0.addr)),
    ))
}

impl Vrrp {
    /// Opens every instance's sockets and starts them on `handle`'s runtime. None when
    /// the configuration has no VRRP instance.
    pub fn start(handle: &tokio::runtime::Handle, cfg: &Config) -> Result<Option<Vrrp>, String> {
        if cfg.vrrp_instances.is_empty() {
            return Ok(None);
        }
        let _guard = handle.enter();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut insts = Vec::new();
        for (i, c) in cfg.vrrp_instances.iter().enumerate() {
            let (ifname, my_ip) = twin(cfg, c)?;
            // Unicast adverts come to our address: the socket is bound to it, so that the
            // kernel sends from it too (the v3 pseudo-header and the tie-break use it).
            // Multicast ones come to the group: no binding, the twin's primary address.
            let my_ip = my_ip.ok_or_else(|| {
                format!(
                    "vrrp_instances[{i}]: port {:?} has no address to send adverts from",
                    c.interface
                )
            })?;
            let sock = net::advert_socket(ifname, (!c.unicast_peer.is_empty()).then_some(my_ip))
                .map_err(|e| {
                    format!(
                        "vrrp_instances[{i}] ({}): VRRP socket on {ifname}: {e}",
                        c.name
                    )
                })?;
            // SAFETY: the socket is owned by the AsyncFd for its whole life, so its
            // descriptor stays valid and the same until the AsyncFd drops it.
            let sock = Arc::new(unsafe { AsyncFd::register(sock) }.map_err(|e| e.to_string())?);
            let garp = net::Garp::open(ifname).map_err(|e| {
                format!(
                    "vrrp_instances[{i}] ({}): ARP socket on {ifname}: {e}",
                    c.name
                )
            })?;
            let params = Params {
                version: c.version,
                advert_cs: c.advert_cs(),
                nopreempt: c.nopreempt,
                preempt_delay: Duration::from_secs_f64(c.preempt_delay.unwrap_or(0.0)),
                my_ip,
                want_master: c.state == crate::config::VrrpStateConf::MASTER,
            };
            insts.push(Inst {
                fsm: Fsm::new(params, c.priority),
                sock: sock.clone(),
                garp: Some(garp),
                my_ip,
                pass: c
                    .authentication
                    .as_ref()
                    .map(|a| packet::pass_bytes(&a.auth_pass)),
                vips: c.virtual_ipaddress.iter().map(|p| p.0.addr).collect(),
                next_garp: None,
                garp_phase: 0,
                conf: c.clone(),
            });
            tokio::spawn(receive(i, sock, tx.clone()));
        }
        for (i, s) in cfg.vrrp_scripts.iter().enumerate() {
            let (s, tx) = (s.clone(), tx.clone());
            tokio::spawn(async move {
                let every = Duration::from_secs_f64(s.interval);
                let limit = Duration::from_secs_f64(s.timeout.unwrap_or(s.interval));
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let ok = track::run_once(&s.script, limit).await;
                    if tx.send(Event::Script(i, ok)).is_err() {
                        return;
                    }
                }
            });
        }
        let status = Arc::new(Mutex::new(Vec::new()));
        let ha = Arc::new(Mutex::new(Ha::default()));
        let dirty = Arc::new(AtomicBool::new(false));
        let mut r = Router {
            insts,
            scripts: cfg.vrrp_scripts.iter().map(track::Tracker::new).collect(),
            script_conf: cfg.vrrp_scripts.clone(),
            groups: cfg.vrrp_sync_groups.clone(),
            quorum_lost: HashSet::new(),
            status: status.clone(),
            ha: ha.clone(),
            dirty: dirty.clone(),
            epoch: tokio::time::Instant::now(),
            stats: Vec::new(),
            forcing: false,
        };
        r.init();
        tokio::spawn(r.run(rx));
        Ok(Some(Vrrp {
            tx,
            status,
            ha,
            dirty,
            handle: handle.clone(),
        }))
    }

    /// VRRP's view of the addresses, when it changed since the last call.
    pub fn poll(&self) -> Option<Ha> {
        self.dirty.swap(false, Ordering::AcqRel).then(|| self.ha())
    }

    pub fn ha(&self) -> Ha {
        self.ha.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// The health checker's quorum losses, for `track_service`.
    pub fn quorum(&self, lost: HashSet<SvcKey>) {
        let _ = self.tx.send(Event::Quorum(lost));
    }

    pub fn status(&self) -> Vec<InstanceStatus> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops every instance: a MASTER sends priority 0 first, so that its backup takes
    /// over within the skew time (keepalived's shutdown).
    pub fn stop(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Event::Stop(tx)).is_ok() {
            let _ = self
                .handle
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), rx).await });
        }
    }
}

/// Reads one instance's socket and hands every packet to the router.
async fn receive(i: usize, sock: Arc<AsyncFd<socket2::Socket>>, tx: mpsc::UnboundedSender<Event>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok(mut guard) = sock.readable().await else {
            return;
        };
        match guard.try_io(|s| std::io::Read::read(&mut s.get_ref(), &mut buf)) {
            Ok(Ok(n)) => {
                if tx.send(Event::Packet(i, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Ok(Err(_)) | Err(_) => continue,
        }
    }
}

/// Per-instance counters.
#[derive(Default, Clone)]
struct Counts {
    transitions: u64,
    last_transition: f64,
    sent: u64,
    received: u64,
    zero: u64,
    dropped: BTreeMap<String, u64>,
}

/// The task that owns every instance.
struct Router {
    insts: Vec<Inst>,
    scripts: Vec<track::Tracker>,
    script_conf: Vec<crate::config::VrrpScriptConf>,
    groups: Vec<crate::config::VrrpSyncGroupConf>,
    quorum_lost: HashSet<SvcKey>,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    ha: Arc<Mutex<Ha>>,
    dirty: Arc<AtomicBool>,
    epoch: tokio::time::Instant,
    stats: Vec<Counts>,
    /// Moving a sync group's other members (their group scripts are the mover's).
    forcing: bool,
}

impl Router {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn init(&mut self) {
        self.stats = vec![Counts::default(); self.insts.len()];
        let now = self.now();
        for i in 0..self.insts.len() {
            let (prio, _) = self.tracked(i);
            let fault = self.faulted(i);
            self.insts[i].fsm.priority = prio;
            let mut acts = self.insts[i].fsm.start(now);
            if fault {
                acts.extend(self.insts[i].fsm.fault(now, true));
            }
            self.act(i, acts);
        }
        self.publish();
    }

    /// The effective priority of instance `i` and whether a tracked object puts it in
    /// FAULT (keepalived: weight 0 fails the instance, other weights move the priority;
    /// the owner's 255 does not move).
    fn tracked(&self, i: usize) -> (u8, bool) {
        let c = &self.insts[i].conf;
        let mut delta: i32 = 0;
        let mut fault = false;
        for t in &c.track_script {
            let Some(k) = self.script_conf.iter().position(|s| s.name == t.name()) else {
                continue;
            };
            let ok = self.scripts[k].ok;
            let w = t.weight().unwrap_or(self.script_conf[k].weight);
            match (w, ok) {
                (0, false) => fault = true,
                (w, true) if w > 0 => delta += w,
                (w, false) if w < 0 => delta += w,
                _ => {}
            }
        }
        for t in &c.track_service {
            let lost = self
                .quorum_lost
                .contains(&(t.protocol, t.vip.addr, t.vip.port));
            match (t.weight, lost) {
                (0, true) => fault = true,
                (w, false) if w > 0 => delta += w,
                (w, true) if w < 0 => delta += w,
                _ => {}
            }
        }
        if c.priority == 255 {
            return (255, fault);
        }
        ((i32::from(c.priority) + delta).clamp(1, 254) as u8, fault)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        loop {
            let next = self
                .insts
                .iter()
                .flat_map(|x| [x.fsm.deadline, x.next_garp])
                .flatten()
                .min();
            let sleep = match next {
                Some(d) => tokio::time::sleep_until(self.epoch + d),
                None => tokio::time::sleep(Duration::from_secs(3600)),
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    None => return,
                    Some(Event::Stop(done)) => {
                        for i in 0..self.insts.len() {
                            let acts = self.insts[i].fsm.stop();
                            self.act(i, acts);
                            self.notify_stop(i);
                        }
                        self.publish();
                        let _ = done.send(());
                        return;
                    }
                    Some(Event::Packet(i, bytes)) => self.packet(i, &bytes),
                    Some(Event::Script(k, ok)) => {
                        if self.scripts[k].record(ok) {
                            tracing::info!(
                                "Script `{}` now returning {}",
                                self.script_conf[k].name,
                                if ok { 0 } else { 1 }
                            );
                            self.retrack();
                        }
                    }
                    Some(Event::Quorum(lost)) => {
                        if lost != self.quorum_lost {
                            self.quorum_lost = lost;
                            self.retrack();
                        }
                    }
                },
                _ = sleep => self.timers(),
            }
            self.publish();
        }
    }

    fn packet(&mut self, i: usize, bytes: &[u8]) {
        let inst = &self.insts[i];
        let c = &inst.conf;
        let e = Expect {
            version: c.version,
            sum: if c.v3_checksum_as_v2 {
                Checksum::Plain
            } else {
                Checksum::Pseudo
            },
            check_ttl: c.unicast_peer.is_empty(),
            interval_cs: c.advert_cs(),
            pass: inst.pass.as_ref(),
        };
        match packet::decode(bytes, &e) {
            Ok(r) if r.advert.vrid == c.virtual_router_id && r.src != inst.my_ip => {
                self.stats[i].received += 1;
                if r.advert.priority == 0 {
                    self.stats[i].zero += 1;
                }
                let now = self.now();
                let acts = self.insts[i].fsm.on_advert(now, r.src, &r.advert);
                self.act(i, acts);
            }
            // Another virtual router on the same link, or our own advert looped back.
            Ok(_) => {}
            Err(b) => {
                *self.stats[i].dropped.entry(b.name().into()).or_default() += 1;
            }
        }
    }

    fn timers(&mut self) {
        let now = self.now();
        for i in 0..self.insts.len() {
            if self.insts[i].fsm.deadline.is_some_and(|d| d <= now) {
                let acts = self.insts[i].fsm.on_timer(now);
                self.act(i, acts);
            }
            if self.insts[i].next_garp.is_some_and(|d| d <= now) {
                self.garp(i);
                let (delay, refresh) = (
                    self.insts[i].conf.garp_master_delay,
                    self.insts[i].conf.garp_master_refresh,
                );
                let x = &mut self.insts[i];
                let refresh_at = (refresh > 0.0).then(|| now + Duration::from_secs_f64(refresh));
                (x.next_garp, x.garp_phase) = match x.garp_phase {
                    0 if delay > 0.0 => (Some(now + Duration::from_secs_f64(delay)), 1),
                    _ => (refresh_at, 2),
                };
            }
        }
    }

    /// Whether a tracked object faults instance `i` or, in a sync group, any member of
    /// its group (keepalived: the group is in FAULT while any member is).
    fn faulted(&self, i: usize) -> bool {
        let name = &self.insts[i].conf.name;
        match self.groups.iter().find(|g| g.group.contains(name)) {
            None => self.tracked(i).1,
            Some(g) => self
                .insts
                .iter()
                .enumerate()
                .any(|(j, x)| g.group.contains(&x.conf.name) && self.tracked(j).1),
        }
    }

    /// Tracked objects changed: every instance's priority and fault state follow.
    fn retrack(&mut self) {
        let now = self.now();
        for i in 0..self.insts.len() {
            let (prio, _) = self.tracked(i);
            let fault = self.faulted(i);
            let mut acts = self.insts[i].fsm.fault(now, fault);
            if !fault {
                acts.extend(self.insts[i].fsm.set_priority(now, prio));
            } else {
                self.insts[i].fsm.priority = prio;
            }
            self.act(i, acts);
        }
    }

    fn act(&mut self, i: usize, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Advert(prio) => self.send(i, prio),
                Action::Became(s) => self.became(i, s),
                Action::Announce => self.garp(i),
            }
        }
    }

    fn send(&mut self, i: usize, priority: u8) {
        let inst = &self.insts[i];
        let c = &inst.conf;
        let a = Advert {
            version: c.version,
            vrid: c.virtual_router_id,
            priority,
            interval_cs: c.advert_cs(),
            addrs: inst.vips.clone(),
            pass: inst.pass,
        };
        let sum = if c.v3_checksum_as_v2 {
            Checksum::Plain
        } else {
            Checksum::Pseudo
        };
        let peers: Vec<Ipv4Addr> = if c.unicast_peer.is_empty() {
            vec![packet::GROUP]
        } else {
            c.unicast_peer.iter().map(|a| a.0).collect()
        };
        for dst in peers {
            let msg = packet::encode(&a, sum, inst.my_ip, dst);
            match net::send_advert(inst.sock.get_ref(), &msg, dst) {
                Ok(_) => self.stats[i].sent += 1,
                Err(e) => tracing::warn!("({}) cannot send an advert to {dst}: {e}", c.name),
            }
        }
    }

    fn garp(&self, i: usize) {
        let inst = &self.insts[i];
        let Some(g) = &inst.garp else {
            return;
        };
        for _ in 0..inst.conf.garp_master_repeat.max(1) {
            for ip in &inst.vips {
                if let Err(e) = g.announce(*ip) {
                    tracing::warn!("({}) gratuitous ARP for {ip}: {e}", inst.conf.name);
                }
            }
        }
    }

    fn became(&mut self, i: usize, s: State) {
        let now = self.now();
        let prio = self.insts[i].fsm.priority;
        let name = self.insts[i].conf.name.clone();
        // keepalived's line as it writes it, the cause on one of its own.
        tracing::info!("({name}) {}", self.insts[i].fsm.cause);
        tracing::info!("({name}) Entering {} STATE", s.word());
        self.stats[i].transitions += 1;
        self.stats[i].last_transition = unix_now();
        if s == State::Master {
            // The first burst once rvsd's main loop (every 20 ms) has published the
            // overlay that owns the addresses: a client that follows the ARP at once
            // finds them answered.
            self.insts[i].garp_phase = 0;
            self.insts[i].next_garp = Some(now + Duration::from_millis(25));
        } else {
            self.insts[i].next_garp = None;
        }
        let c = &self.insts[i].conf;
        let script = match s {
            State::Master => c.notify_master.clone(),
            State::Backup => c.notify_backup.clone(),
            State::Fault => c.notify_fault.clone(),
            State::Init => None,
        };
        script.into_iter().for_each(spawn_script);
        if let Some(n) = &c.notify {
            spawn_script(format!("{n} INSTANCE {name} {} {prio}", s.word()));
        }
        self.dirty.store(true, Ordering::Release);
        // A sync group moves together: its other members follow (keepalived's
        // vrrp_sync_master/backup/fault), and its scripts run once.
        let Some(g) = self
            .groups
            .iter()
            .find(|g| g.group.contains(&name))
            .cloned()
        else {
            return;
        };
        // The members it forces run their own scripts, not the group's again: the
        // group's run once, for the member that moved first.
        if self.forcing {
            return;
        }
        self.forcing = true;
        for m in &g.group {
            let Some(j) = self.insts.iter().position(|x| &x.conf.name == m) else {
                continue;
            };
            if j != i && self.insts[j].fsm.state != s {
                let acts = self.insts[j].fsm.force(now, s);
                self.act(j, acts);
            }
        }
        self.forcing = false;
        if self.insts[i].fsm.state == s {
            let script = match s {
                State::Master => g.notify_master.clone(),
                State::Backup => g.notify_backup.clone(),
                State::Fault => g.notify_fault.clone(),
                State::Init => None,
            };
            script.into_iter().for_each(spawn_script);
            if let Some(n) = &g.notify {
                spawn_script(format!("{n} GROUP {} {} 0", g.name, s.word()));
            }
        }
    }

    /// keepalived's notifications at shutdown (state STOP): `notify_stop`, and the generic
    /// `notify` with `INSTANCE name STOP priority`; a sync group's once, from its first
    /// member.
    fn notify_stop(&self, i: usize) {
        // Started at once: rvsd shuts the runtime down right after, and a spawned task
        // might never run.
        let run = crate::health::start_script_now;
        let c = &self.insts[i].conf;
        c.notify_stop.iter().for_each(|s| run(s));
        if let Some(n) = &c.notify {
            let prio = self.insts[i].fsm.priority;
            run(&format!("{n} INSTANCE {} STOP {prio}", c.name));
        }
        let first_of = |g: &&crate::config::VrrpSyncGroupConf| g.group.first() == Some(&c.name);
        if let Some(g) = self.groups.iter().find(first_of) {
            g.notify_stop.iter().for_each(|s| run(s));
            if let Some(n) = &g.notify {
                run(&format!("{n} GROUP {} STOP 0", g.name));
            }
        }
    }

    /// Status and the address overlay, from the instances as they stand.
    fn publish(&mut self) {
        let mut ha = Ha::default();
        let mut st = Vec::new();
        for (i, x) in self.insts.iter().enumerate() {
            let master = x.fsm.state == State::Master;
            for v in &x.vips {
                if master {
                    ha.owned.push(*v);
                } else {
                    ha.standby.push(*v);
                }
            }
            let c = &x.conf;
            let n = self.stats.get(i).cloned().unwrap_or_default();
            st.push(InstanceStatus {
                name: c.name.clone(),
                interface: c.interface.clone(),
                vrid: c.virtual_router_id,
                version: c.version,
                state: x.fsm.state,
                priority: x.fsm.priority,
                base_priority: c.priority,
                master: if master {
                    Some(x.my_ip)
                } else {
                    x.fsm.master_ip
                },
                advert_int: f64::from(x.fsm.master_adv_cs) / 100.0,
                virtual_ipaddress: c
                    .virtual_ipaddress
                    .iter()
                    .map(|p| p.0.to_string())
                    .collect(),
                last_transition_unix: n.last_transition,
                last_cause: x.fsm.cause.to_string(),
                transitions: n.transitions,
                adverts_sent: n.sent,
                adverts_received: n.received,
                priority_zero_received: n.zero,
                dropped: n.dropped,
            });
        }
        // An address a MASTER owns is not on standby because another instance lists it.
        ha.standby.retain(|a| !ha.owned.contains(a));
        if let Ok(mut h) = self.ha.lock() {
            if *h != ha {
                *h = ha;
                self.dirty.store(true, Ordering::Release);
            }
        }
        if let Ok(mut s) = self.status.lock() {
            *s = st;
        }
    }
}

/// Runs a notify script in the background (health's runner).
fn spawn_script(script: String) {
    tokio::spawn(crate::health::run_script(script));
}
