//! keepalived's health checking, native in rvsd: every real server's checks run as
//! probes in one asynchronous runtime (one thread, never a thread or a process per check
//! except MISC_CHECK's script), each on its own timer, a slow one never delaying another.
//! Their results make an `Overlay` that the director applies on top of the running
//! configuration when it builds a snapshot; the configuration itself never changes.
//!
//! One module per concern: `resolve` (inheritance, defaults, probe identity), `run` (a
//! probe's timing and keepalived's retry counting), `overlay` (what health changes in
//! the snapshot), and one module per checker type.

mod dns;
mod file;
mod http;
pub(crate) mod misc;
pub mod overlay;
mod ping;
pub mod resolve;
mod run;
mod smtp;
mod tcp;
mod udp;

pub use overlay::{effective, Overlay, RsHealth};
pub use resolve::{Probe, RsKey};

use crate::config::{Config, ServiceConf};
use run::ProbeState;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Ok with a dynamic weight (MISC_CHECK misc_dynamic), or why it failed.
    pub result: Result<Option<u32>, String>,
    pub duration: Duration,
    pub at: SystemTime,
}

/// What `rvsadm --health` shows of one checker of one real server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// "TCP 198.18.1.100:80".
    pub service: String,
    pub real_server: String,
    /// keepalived's name: HTTP_GET, TCP_CHECK, ...
    pub check: String,
    /// Where the probe connects.
    pub target: String,
    pub up: bool,
    pub consecutive_failures: u32,
    /// "ok", or why the last check failed; "" before the first.
    pub last_result: String,
    pub last_duration_ms: f64,
    /// Seconds since the epoch of the last check and of the last change of state.
    pub last_check_unix: f64,
    pub last_change_unix: f64,
    pub checks_ok: u64,
    pub checks_failed: u64,
    pub seconds_total: f64,
    /// Real servers (of any service) sharing this probe.
    pub shared_by: usize,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
        .unwrap_or(0.0)
}

struct Running {
    state: Arc<Mutex<ProbeState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    probes: HashMap<Probe, Running>,
    /// Real servers with checks and their probes, in configuration order.
    servers: Vec<(RsKey, Vec<Probe>)>,
    /// The services, as configured (weights, quorum, scripts).
    services: Vec<ServiceConf>,
    /// Services seen for the first time: their quorum state is set without scripts,
    /// as keepalived sets it at start-up.
    fresh: HashSet<overlay::SvcKey>,
    overlay: Overlay,
    /// Where scripts (quorum_up, quorum_down) run.
    handle: Option<tokio::runtime::Handle>,
}

/// The health checker: its runtime and its probes.
pub struct Health {
    rt: Option<tokio::runtime::Runtime>,
    inner: Arc<Mutex<Inner>>,
    /// Set by a probe whose state changed; `poll` turns it into an overlay. The probes
    /// never take the director's lock themselves, so a busy control plane cannot stall
    /// them, and a burst of changes becomes one snapshot.
    dirty: Arc<AtomicBool>,
}

/// The identity of a check apart from its timing: a reload that only retimes a check
/// carries its state over instead of starting it again.
fn identity(
    p: &Probe,
) -> (
    crate::config::CheckType,
    std::net::SocketAddrV4,
    Option<std::net::SocketAddrV4>,
    resolve::Spec,
) {
    (p.kind, p.target, p.bind, p.spec.clone())
}

impl Health {
    /// Starts the runtime (one thread for every probe).
    pub fn start() -> std::io::Result<Health> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rvs-health")
            .enable_all()
            .build()?;
        Ok(Health {
            rt: Some(rt),
            inner: Arc::default(),
            dirty: Arc::default(),
        })
    }

    /// The runtime's handle, for the control plane's other tasks (VRRP).
    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.rt.as_ref().map(|r| r.handle().clone())
    }

    /// The overlay, when some probe changed since the last call.
    pub fn poll(&self) -> Option<Overlay> {
        self.dirty
            .swap(false, Ordering::AcqRel)
            .then(|| recompute(&self.inner))
    }

    /// Runs the probes `cfg` asks for: new ones start, gone ones stop, and unchanged
    /// ones keep running with their state - a reload neither flaps a server nor fires
    /// a storm of checks (keepalived issues #1720, #2318). Returns the overlay now.
    pub fn apply(&self, cfg: &Config) -> Overlay {
        let servers = resolve::probes(cfg);
        let wanted: HashSet<&Probe> = servers.iter().flat_map(|(_, ps)| ps).collect();
        let Ok(mut inner) = self.inner.lock() else {
            return Overlay::default();
        };
        let Some(rt) = &self.rt else {
            return Overlay::default();
        };
        let mut gone = HashMap::new();
        inner.probes.retain(|p, r| {
            let keep = wanted.contains(p);
            if !keep {
                r.task.abort();
                if let Ok(s) = r.state.lock() {
                    gone.insert(identity(p), s.clone());
                }
            }
            keep
        });
        for p in wanted {
            if inner.probes.contains_key(p) {
                continue;
            }
            // The same check, retimed: it keeps its state (no flap back to up).
            let state = match gone.remove(&identity(p)) {
                Some(old) => ProbeState::carried(p, old),
                None => ProbeState::new(p),
            };
            let state = Arc::new(Mutex::new(state));
            let dirty = self.dirty.clone();
            let changed: Arc<dyn Fn() + Send + Sync> =
                Arc::new(move || dirty.store(true, Ordering::Release));
            let task = rt.spawn(run::run(p.clone(), state.clone(), changed));
            inner.probes.insert(p.clone(), Running { state, task });
        }
        inner.servers = servers;
        let known: HashSet<overlay::SvcKey> = inner.services.iter().map(overlay::svc_key).collect();
        inner.fresh = cfg
            .services
            .iter()
            .map(overlay::svc_key)
            .filter(|k| !known.contains(k))
            .collect();
        inner.services = cfg.services.clone();
        inner.handle = Some(rt.handle().clone());
        // A service that is gone has no quorum to lose.
        let live: HashSet<overlay::SvcKey> = cfg.services.iter().map(overlay::svc_key).collect();
        inner.overlay.quorum_lost.retain(|k| live.contains(k));
        drop(inner);
        recompute(&self.inner)
    }

    /// The overlay as the probes stand.
    pub fn overlay(&self) -> Overlay {
        self.inner
            .lock()
            .map(|i| i.overlay.clone())
            .unwrap_or_default()
    }

    /// Every checker of every real server, in configuration order.
    pub fn status(&self) -> Vec<CheckStatus> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut shared: HashMap<&Probe, usize> = HashMap::new();
        for p in inner.servers.iter().flat_map(|(_, ps)| ps) {
            *shared.entry(p).or_default() += 1;
        }
        let mut out = Vec::new();
        for (rs, probes) in &inner.servers {
            for p in probes {
                let Some(st) = inner
                    .probes
                    .get(p)
                    .and_then(|r| r.state.lock().ok().map(|s| s.clone()))
                else {
                    continue;
                };
                let (last, dur, at) = match &st.last {
                    Some(a) => (
                        match &a.result {
                            Ok(_) => "ok".to_string(),
                            Err(e) => e.clone(),
                        },
                        a.duration.as_secs_f64() * 1000.0,
                        unix(a.at),
                    ),
                    None => (String::new(), 0.0, 0.0),
                };
                out.push(CheckStatus {
                    service: format!("{} {}:{}", rs.proto.name(), rs.vip, rs.vport),
                    real_server: format!("{}:{}", rs.rip, rs.rport),
                    check: p.kind.keyword().to_string(),
                    target: p.target.to_string(),
                    up: st.up,
                    consecutive_failures: st.failures,
                    last_result: last,
                    last_duration_ms: (dur * 1000.0).round() / 1000.0,
                    last_check_unix: at,
                    last_change_unix: unix(st.changed_at),
                    checks_ok: st.ok_total,
                    checks_failed: st.failed_total,
                    seconds_total: st.seconds_total,
                    shared_by: shared.get(p).copied().unwrap_or(1),
                });
            }
        }
        out
    }

    /// keepalived's `omega` at shutdown: for each service that asks, the notify_down
    /// of every live real server and, if it has its quorum, quorum_down; then every probe
    /// stops. Scripts run to their end.
    pub fn stop(&mut self) {
        let scripts: Vec<String> = match self.inner.lock() {
            Ok(i) => i
                .services
                .iter()
                .filter(|s| s.omega)
                .flat_map(|s| {
                    let mut v: Vec<String> = s
                        .real_servers
                        .iter()
                        .filter(|r| i.overlay.health(s, r).up)
                        .filter_map(|r| r.notify_down.clone())
                        .collect();
                    if !i.overlay.quorum_lost.contains(&overlay::svc_key(s)) {
                        v.extend(s.quorum_down.clone());
                    }
                    v
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        for sc in scripts {
            tracing::info!("Executing [{sc}] (omega)");
            let _ = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&sc)
                .status();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The overlay from the probes' states, logged and kept; the quorum per service moves
/// with keepalived's hysteresis.
fn recompute(inner: &Arc<Mutex<Inner>>) -> Overlay {
    let Ok(mut i) = inner.lock() else {
        return Overlay::default();
    };
    let mut o = Overlay::default();
    for (rs, probes) in &i.servers {
        let mut h = RsHealth {
            up: true,
            weight: None,
        };
        for p in probes {
            if let Some(st) = i
                .probes
                .get(p)
                .and_then(|r| r.state.lock().ok().map(|s| (s.up, s.weight)))
            {
                h.up &= st.0;
                h.weight = h.weight.or(st.1);
            }
        }
        o.servers.insert(*rs, h);
    }
    let mut scripts = Vec::new();
    for (rs, h) in &o.servers {
        let was = i.overlay.servers.get(rs).copied();
        if was.map(|w| w.up) == Some(h.up) || was.is_none() {
            continue;
        }
        // keepalived's words (ipwrapper.c), and its notify scripts, run as written.
        let conf = i.services.iter().find_map(|s| {
            s.real_servers
                .iter()
                .find(|r| RsKey::of(s, r) == *rs)
                .map(|r| (overlay::inhibited(s, r), r))
        });
        let inhibit = conf.is_some_and(|c| c.0);
        let script = conf.and_then(|(_, r)| {
            if h.up {
                r.notify_up.clone()
            } else {
                r.notify_down.clone()
            }
        });
        match (h.up, inhibit) {
            (true, false) => tracing::info!("Adding service {} to VS {}", rs.rs(), rs.vs()),
            (true, true) => tracing::info!("Enabling service {} to VS {}", rs.rs(), rs.vs()),
            (false, false) => tracing::warn!("Removing service {} from VS {}", rs.rs(), rs.vs()),
            (false, true) => tracing::warn!("Disabling service {} from VS {}", rs.rs(), rs.vs()),
        }
        if let Some(sc) = script {
            tracing::info!("Executing [{sc}] for service {} in VS {}", rs.rs(), rs.vs());
            scripts.push(sc);
        }
    }
    // keepalived's quorum (ipwrapper.c): lost below quorum - hysteresis (or at no
    // weight at all), gained again at quorum + hysteresis.
    o.quorum_lost = i.overlay.quorum_lost.clone();
    for s in &i.services {
        let key = overlay::svc_key(s);
        let (q, hy) = (
            u64::from(s.quorum.unwrap_or(1)),
            u64::from(s.hysteresis.unwrap_or(0)),
        );
        let sum = o.live_weight(s);
        let vs = format!(
            "[{}]:{}:{}",
            s.vip.addr,
            s.protocol.name().to_lowercase(),
            s.vip.port
        );
        if i.fresh.contains(&key) {
            if quorum_step(false, sum, q, hy) == Some(true) {
                tracing::warn!("VS {vs} starts without its quorum ({sum} < {q})");
                o.quorum_lost.insert(key);
            }
            continue;
        }
        match quorum_step(o.quorum_lost.contains(&key), sum, q, hy) {
            Some(true) => {
                tracing::warn!(
                    "Lost quorum {q}-{hy}={} > {sum} for VS {vs}",
                    q.saturating_sub(hy)
                );
                o.quorum_lost.insert(key);
                scripts.extend(s.quorum_down.clone());
            }
            Some(false) => {
                tracing::info!("Gained quorum {q}+{hy}={} <= {sum} for VS {vs}", q + hy);
                o.quorum_lost.remove(&key);
                scripts.extend(s.quorum_up.clone());
            }
            None => {}
        }
    }
    if let Some(h) = &i.handle {
        for script in scripts {
            h.spawn(run_script(script));
        }
    }
    i.fresh.clear();
    i.overlay = o.clone();
    o
}

/// keepalived's quorum with hysteresis: with the quorum `lost` or not and the live
/// weight `sum`, whether it is now lost (Some(true)), gained (Some(false)) or unchanged.
pub fn quorum_step(lost: bool, sum: u64, quorum: u64, hysteresis: u64) -> Option<bool> {
    if !lost && (sum < quorum.saturating_sub(hysteresis) || sum == 0) {
        Some(true)
    } else if lost && sum >= quorum + hysteresis && sum > 0 {
        Some(false)
    } else {
        None
    }
}

/// Runs a notify script as keepalived does: through the shell, not waited for by the
/// caller (spawn it), its failure logged. Health's and VRRP's scripts alike.
/// Starts a notify script now, from outside the runtime's tasks: for the last ones,
/// at shutdown, which a runtime shutting down would never poll. Not waited for.
pub(crate) fn start_script_now(script: &str) {
    let st = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .spawn();
    if let Err(e) = st {
        tracing::warn!("script {script:?} could not run: {e}");
    }
}

pub(crate) async fn run_script(script: String) {
    let st = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .status()
        .await;
    match st {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!("script {script:?} exited with {s}"),
        Err(e) => tracing::warn!("script {script:?} could not run: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `f` every 20 ms until it holds; panics after 20 s.
    fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Two services list the same real server with the same check, a third server's
    /// check hangs: the shared check runs once per interval for both (counted by the
    /// script itself against the time it took), and keeps its pace while the other
    /// hangs (one runtime, no check waits for another).
    #[test]
    fn shared_probes_and_a_hanging_check_delays_nothing() {
        let runs = std::env::temp_dir().join(format!("rvs-shared-{}", std::process::id()));
        let _ = std::fs::remove_file(&runs);
        let rs = |addr: &str, script: &str| {
            format!("      - address: \"{addr}\"\n        forward: nat\n        checks: [{{ type: misc_check, misc_path: \"{script}\", misc_timeout: 60 }}]\n")
        };
        let svc = |port: u16, servers: &str| {
            format!("  - vip: \"198.18.0.100:{port}\"\n    delay_loop: 0.1\n    warmup: 0\n    real_servers:\n{servers}")
        };
        let count = format!("echo x >> {}", runs.display());
        let yaml = format!(
            "ports: [{{ name: lan0, device: net_null0, addresses: [\"198.18.0.2/24\"] }}]\nservices:\n{}{}",
            svc(80, &(rs("198.18.0.11:8080", &count) + &rs("198.18.0.12:8080", "sleep 60"))),
            svc(81, &rs("198.18.0.11:8080", &count)),
        );
        let cfg = Config::parse(&yaml, "t.yaml").unwrap();
        let mut h = Health::start().unwrap();
        let t0 = std::time::Instant::now();
        h.apply(&cfg);
        let ran = || {
            std::fs::read_to_string(&runs)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        until("the shared script ran 20 times", || ran() >= 20);
        let (n, elapsed) = (ran(), t0.elapsed().as_secs_f64());
        // One probe sleeps a delay_loop after each run: at most elapsed / 0.1 + 1 runs
        // (load only makes fewer). Two probes would have run twice as many.
        assert!(
            n as f64 <= elapsed / 0.1 + 1.0,
            "{n} runs in {elapsed:.2} s: more than one probe"
        );
        let of = |rs: &str| -> Vec<CheckStatus> {
            h.status()
                .into_iter()
                .filter(|c| c.real_server.starts_with(rs))
                .collect()
        };
        let shared = of("198.18.0.11");
        assert_eq!(shared.len(), 2, "listed under both services: {shared:?}");
        assert!(shared.iter().all(|c| c.shared_by == 2), "{shared:?}");
        let hung = of("198.18.0.12");
        assert_eq!(hung[0].checks_ok + hung[0].checks_failed, 0, "{hung:?}");
        h.stop();
        let _ = std::fs::remove_file(&runs);
    }

    #[test]
    fn quorum_moves_with_hysteresis() {
        // quorum 4, hysteresis 1: lost below 3, gained again at 5.
        assert_eq!(quorum_step(false, 3, 4, 1), None);
        assert_eq!(quorum_step(false, 2, 4, 1), Some(true));
        assert_eq!(quorum_step(true, 4, 4, 1), None);
        assert_eq!(quorum_step(true, 5, 4, 1), Some(false));
        // No weight at all is always a loss.
        assert_eq!(quorum_step(false, 0, 0, 0), Some(true));
        assert_eq!(quorum_step(true, 0, 0, 0), None);
    }
}
