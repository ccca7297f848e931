//! Test hosts in network namespaces, joined by veth pairs to a bridge, with rvsd running
//! inside one of them on `net_af_packet` vdevs.
//!
//! Every name is unique per process and topology (`rvst-<pid>-<n>-<host>`; see `prefix`), every address
//! is in 198.18.0.0/15, and everything is torn down on drop, also when the test panics
//! (then rvsd's log is printed, which is what one needs to read in CI). Namespaces left
//! by a process that was killed outright are removed by the next `Topology::new`.

pub mod ha;
pub mod health;
pub mod keepalived;
pub mod lab;
pub mod net;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);
static SWEEP: Once = Once::new();

/// The first word of every name: `rvst` for the tests, `RVS_LAB_PREFIX` for others
/// (the benchmarks use `rvsb`, so a test run's leftover check never counts them).
fn prefix() -> &'static str {
    static P: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    P.get_or_init(|| std::env::var("RVS_LAB_PREFIX").unwrap_or_else(|_| "rvst".into()))
}

/// Runs a command and returns its output; panics with the command and stderr on failure.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {args:?}: {e} (run scripts/setup.sh to install the test tools)")
        });
    if !out.status.success() {
        panic!(
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    out
}

/// Fails the test with a clear message unless it can create namespaces and run rvsd.
/// Polls `check` every 20 ms until it gives a value, and returns it; panics naming
/// `what` when `deadline` passes first. Tests wait for conditions with this, never
/// with a fixed sleep.
pub fn eventually<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("{what}: not within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("end-to-end tests need root (network namespaces, DPDK): run them with scripts/test.sh as root");
    }
}

/// Removes namespaces of earlier test processes that no longer run.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let mut parts = name.split('-');
        if parts.next() != Some(prefix()) {
            continue;
        }
        let Some(pid) = parts.next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A host: a namespace with one interface `eth0` on the topology's bridge.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub ns: String,
    pub ifname: String,
    /// The address on eth0 (None for a director, whose eth0 belongs to DPDK).
    pub ip: Option<Ipv4Addr>,
    pub mac: String,
}

impl Host {
    /// `ip netns exec <ns> args...`, returning the output whatever the exit status.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.ns))
    }
    /// Like `exec`, panicking on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        if !out.status.success() {
            panic!(
                "{args:?} in {} failed: {}{}",
                self.ns,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// One HTTP GET of `url` on a fresh connection from source address `src` (one of
    /// this host's): the body, trimmed (the lab's servers answer their name).
    pub fn fetch_from(&self, src: &str, url: &str) -> String {
        self.run(&["curl", "-s", "-m", "5", "--interface", src, url])
            .trim()
            .to_string()
    }
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {args:?} in {}: {e}", self.ns))
    }
}

/// A set of hosts on one bridge. The bridge lives in a namespace of its own, so that no
/// test traffic ever touches the root namespace.
pub struct Topology {
    pub id: String,
    bridge_ns: String,
    hosts: Vec<Host>,
    pub dir: PathBuf,
    daemons: Vec<Rvsd>,
}

impl Topology {
    pub fn new() -> Topology {
        require_root();
        SWEEP.call_once(sweep_stale);
        let id = format!(
            "{}-{}-{}",
            prefix(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bridge_ns = format!("{id}-br");
        let t = Topology {
            id,
            bridge_ns: bridge_ns.clone(),
            hosts: Vec::new(),
            dir,
            daemons: Vec::new(),
        };
        sh(&["ip", "netns", "add", &bridge_ns]);
        // No IPv6 chatter (router solicitations, MLD) from the bridge's own ports.
        sh(&[
            "ip",
            "netns",
            "exec",
            &bridge_ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        sh(&[
            "ip", "-n", &bridge_ns, "link", "add", "br0", "type", "bridge",
        ]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "br0", "up"]);
        t
    }

    /// Adds a host with `eth0` bridged; `addr` like "198.18.0.1/24", or None for a
    /// director (no kernel address: DPDK owns the interface).
    pub fn add_host(&mut self, name: &str, addr: Option<&str>) -> Host {
        assert!(
            name.len() <= 8,
            "host names are at most 8 characters (interface names are short)"
        );
        if let Some(a) = addr {
            let ip: Ipv4Addr = a
                .split('/')
                .next()
                .unwrap()
                .parse()
                .expect("an IPv4 address");
            assert!(
                u32::from(ip) >> 17 == u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 17,
                "test addresses must be in 198.18.0.0/15"
            );
        }
        let ns = format!("{}-{name}", self.id);
        let peer = format!("p-{name}");
        sh(&["ip", "netns", "add", &ns]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &self.bridge_ns,
        ]);
        sh(&[
            "ip",
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &peer,
            "master",
            "br0",
        ]);
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", &peer, "up"]);
        let h = Host {
            name: name.into(),
            ns: ns.clone(),
            ifname: "eth0".into(),
            ip: None,
            mac: String::new(),
        };
        h.run(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        h.run(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        // Kernel peers must put real checksums and real-sized segments on the wire: a
        // DPDK port on the other end sees the frames exactly as veth carries them.
        for feature in ["tx", "tso", "gso", "gro"] {
            let _ = h.exec(&["ethtool", "-K", "eth0", feature, "off"]);
        }
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        if let Some(a) = addr {
            sh(&["ip", "-n", &ns, "addr", "add", a, "dev", "eth0"]);
        }
        let mac = h
            .run(&["cat", "/sys/class/net/eth0/address"])
            .trim()
            .to_string();
        let h = Host {
            ip: addr.map(|a| a.split('/').next().unwrap().parse().unwrap()),
            mac,
            ..h
        };
        self.hosts.push(h.clone());
        h
    }

    /// Starts rvsd in `host` with `config` (YAML; `{SOCKET}` is replaced by a socket path
    /// private to this topology) and waits until it answers on its control socket.
    pub fn start_rvsd(&mut self, host: &Host, rvsd: &Path, config: &str) -> &Rvsd {
        let n = self.daemons.len();
        let socket = self.dir.join(format!("rvsd{n}.sock"));
        let cfg_path = self.dir.join(format!("rvsd{n}.yaml"));
        let log = self.dir.join(format!("rvsd{n}.log"));
        std::fs::write(
            &cfg_path,
            config.replace("{SOCKET}", &socket.display().to_string()),
        )
        .expect("write config");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .arg(rvsd)
            .arg("--config")
            .arg(&cfg_path)
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .expect("spawn rvsd");
        let mut d = Rvsd {
            child: Some(child),
            exit: None,
            must_exit_cleanly: true,
            socket,
            config: cfg_path,
            log,
        };
        d.wait_ready(Duration::from_secs(60));
        self.daemons.push(d);
        self.daemons.last().expect("just pushed")
    }

    /// Runs `args` in the namespace of the bridge that joins the hosts (`host`'s port on
    /// that bridge is `port_of(host)`). Returns stdout; panics on failure.
    pub fn on_bridge(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.bridge_ns];
        all.extend_from_slice(args);
        let out = sh(&all);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The bridge's port toward `host` (what the bridge transmits there is what lands on
    /// the host's interface).
    pub fn port_of(host: &Host) -> String {
        format!("p-{}", host.name)
    }

    pub fn rvsd(&mut self, n: usize) -> &mut Rvsd {
        &mut self.daemons[n]
    }

    /// The rvsd started last.
    pub fn last_rvsd(&mut self) -> &mut Rvsd {
        self.daemons.last_mut().expect("an rvsd was started")
    }

    pub fn rvsd_ref(&self, n: usize) -> &Rvsd {
        &self.daemons[n]
    }

    /// How many rvsd this topology has started.
    pub fn daemons_len(&self) -> usize {
        self.daemons.len()
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let mut unclean = Vec::new();
        for d in &mut self.daemons {
            let status = d.stop().or(d.exit);
            let log = std::fs::read_to_string(&d.log).unwrap_or_default();
            if panicking {
                eprintln!("---- {} ----\n{log}", d.log.display());
            } else if d.must_exit_cleanly
                && (status.is_some_and(|s| !s.success()) || log.contains("panicked"))
            {
                // A worker that panicked after the last traffic check would otherwise
                // go unnoticed.
                unclean.push(format!(
                    "rvsd did not exit cleanly ({status:?}):\n---- {} ----\n{log}",
                    d.log.display()
                ));
            }
        }
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.bridge_ns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if !unclean.is_empty() {
            panic!("{}", unclean.join("\n"));
        }
    }
}

/// A running rvsd.
pub struct Rvsd {
    child: Option<Child>,
    /// How it exited, when a test stopped it.
    exit: Option<std::process::ExitStatus>,
    /// Teardown fails the test when rvsd exits with an error or panicked; tests that
    /// kill or break rvsd on purpose turn this off.
    pub must_exit_cleanly: bool,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Rvsd {
    fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "rvsd exited during start-up ({st}):\n{}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            if ctrlplane::ctl::call(&self.socket, &ctrlplane::ctl::Request::Status).is_ok() {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "rvsd did not answer within {timeout:?}:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn status(&self) -> ctrlplane::ctl::Status {
        match ctrlplane::ctl::call(&self.socket, &ctrlplane::ctl::Request::Status) {
            Ok(ctrlplane::ctl::Response::Status(s)) => s,
            other => panic!("status: {other:?}"),
        }
    }

    pub fn counters(&self) -> ctrlplane::ctl::Counters {
        match ctrlplane::ctl::call(&self.socket, &ctrlplane::ctl::Request::Counters) {
            Ok(ctrlplane::ctl::Response::Counters(c)) => c,
            other => panic!("counters: {other:?}"),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `kill -9`: the way a director dies when its machine does. Teardown no longer
    /// expects a clean exit.
    pub fn kill(&mut self) {
        self.must_exit_cleanly = false;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.exit = c.wait().ok();
        }
    }

    /// SIGTERM, then wait up to 15 s (SIGKILL after that). Returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // `ip netns exec` execs rvsd, so the child's pid is rvsd's.
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(st)) = c.try_wait() {
                self.exit = Some(st);
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let st = c.wait().ok();
        self.exit = st;
        st
    }

    /// Replaces the config file with `text` (`{SOCKET}` filled in as at start), sends
    /// SIGHUP and waits until the new snapshot is published.
    pub fn reload(&self, text: &str) {
        let before = self.status().generation;
        std::fs::write(
            &self.config,
            text.replace("{SOCKET}", &self.socket.display().to_string()),
        )
        .expect("write config");
        let pid = self.pid().expect("running") as i32;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
        let start = Instant::now();
        while self.status().generation == before {
            if start.elapsed() > Duration::from_secs(10) {
                panic!("reload not applied:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn services(&self) -> Vec<ctrlplane::ipvsadm::format::ServiceView> {
        match ctrlplane::ctl::call(
            &self.socket,
            &ctrlplane::ctl::Request::List { service: None },
        ) {
            Ok(ctrlplane::ctl::Response::Listing { services, .. }) => services,
            other => panic!("services: {other:?}"),
        }
    }

    /// `rvsadm ARGS` (the binary at `exe`) against this rvsd: its standard output; the
    /// command must succeed.
    pub fn rvsadm(&self, exe: &str, args: &[&str]) -> String {
        let o = Command::new(exe)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("rvsadm");
        assert!(o.status.success(), "rvsadm {args:?}: {o:?}");
        String::from_utf8(o.stdout).expect("rvsadm prints UTF-8")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A notify script that records its arguments, one line per run, for tests of what
/// rvsd's scripts are called with.
pub struct Recorder {
    pub script: PathBuf,
    pub log: PathBuf,
}

impl Recorder {
    /// `rec.sh` and its log in `dir`.
    pub fn new(dir: &std::path::Path) -> Recorder {
        let (script, log) = (dir.join("rec.sh"), dir.join("rec.log"));
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .expect("write the recorder");
        sh(&["chmod", "755", &script.display().to_string()]);
        Recorder { script, log }
    }

    /// The lines recorded so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
