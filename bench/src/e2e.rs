//! End to end, side by side: the same client, real servers (nginx from Debian, one
//! worker each, access log off) and network namespaces, with the load balancer's place
//! taken in turn by nothing (direct to one real server), rvs, the kernel's nftables DNAT
//! (numgen round robin) and HAProxy in mode tcp. wrk measures keep-alive and
//! fresh-connection HTTP loads; a SYN flood from an attacker namespace runs during a
//! second fresh-connection load.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use testkit::{Host, Topology};

pub const VIP: &str = "198.18.1.100";
/// The SYN flood's rate, the same against every target.
pub const FLOOD_PPS: u64 = 50_000;

/// What the end-to-end figures are, as the report says it.
pub const SETUP: &str = "A client, three nginx real servers (one worker each, access log off) and the load balancer in network namespaces on one bridge; wrk with 1 thread and 16 connections, each load for the given seconds, from a client with every port (1024-65535) and tcp_tw_reuse on; a load with more than 1% failed requests is not recorded, nor an rvs load during which the load balancer namespace's kernel sent ICMP. Keep-alive: wrk's connections reused; fresh: `Connection: close`, a new TCP connection per request (before a fresh figure is recorded, the real servers' TcpPassiveOpens must show about one connection per request; keep-alive loads must show a handful). Under flood: the fresh load while an attacker namespace sends SYNs from random sources in 198.19.0.0/16 at the VIP, paced at the target rate; the flood column is what landed: an nftables counter at the egress of the bridge port toward the load balancer. Every round measures every target in its own seeded order, and waits until the real servers hold no half-open connection before each target. Direct is a client talking to one real server with no load balancer. rvs runs NAT, round robin, one worker, adaptive idle.";

#[derive(Serialize, Clone, Debug)]
pub struct Load {
    /// Requests wrk completed.
    pub requests: u64,
    /// Connections the real servers accepted during the load (their kernels'
    /// TcpPassiveOpens: completed handshakes).
    pub connections: u64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

#[derive(Serialize, Clone, Debug)]
pub struct Target {
    pub name: String,
    pub keepalive: Load,
    pub fresh: Load,
    pub fresh_under_synflood: Option<Load>,
    pub flood_pps: Option<f64>,
}

/// Per target, the load with the median rate over several rounds of `run` (and the median
/// flood rate received), in the order of `TARGETS`.
pub fn median_targets(rounds: &[Vec<Target>]) -> Vec<Target> {
    fn pick(mut v: Vec<Load>) -> Load {
        v.sort_by(|a, b| a.requests_per_s.total_cmp(&b.requests_per_s));
        v.swap_remove(v.len() / 2)
    }
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|t0| {
            let same: Vec<&Target> = rounds
                .iter()
                .flatten()
                .filter(|t| t.name == t0.name)
                .collect();
            let floods: Vec<Load> = same
                .iter()
                .filter_map(|t| t.fresh_under_synflood.clone())
                .collect();
            let mut pps: Vec<f64> = same.iter().filter_map(|t| t.flood_pps).collect();
            pps.sort_by(f64::total_cmp);
            Target {
                name: t0.name.clone(),
                keepalive: pick(same.iter().map(|t| t.keepalive.clone()).collect()),
                fresh: pick(same.iter().map(|t| t.fresh.clone()).collect()),
                fresh_under_synflood: (!floods.is_empty()).then(|| pick(floods)),
                flood_pps: pps.get(pps.len() / 2).copied(),
            }
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Vec::new(), |mut v: Vec<Target>, t| {
            v.push(t);
            v.sort_by_key(|t| {
                TARGETS
                    .iter()
                    .position(|n| *n == t.name)
                    .unwrap_or(usize::MAX)
            });
            v
        })
}

/// wrk's "Requests/sec", latency percentiles and socket errors.
pub fn parse_wrk(out: &str) -> Result<Load> {
    let ms = |v: &str| -> f64 {
        let v = v.trim();
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = n.parse().unwrap_or(0.0);
        match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => n,
        }
    };
    let mut l = Load {
        requests: 0,
        connections: 0,
        requests_per_s: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in out.lines() {
        let t = line.trim();
        if let Some((n, _)) = t.split_once(" requests in ") {
            l.requests = n.trim().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            l.requests_per_s = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            l.p50_ms = ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            l.p99_ms = ms(v);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            l.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            l.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    if l.requests_per_s == 0.0 {
        bail!("wrk printed no rate:\n{out}");
    }
    Ok(l)
}

/// The packets of the first `counter packets N` in `nft list` output.
fn landed_packets(nft: &str) -> Option<u64> {
    let rest = nft.split("counter packets ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A load without a flood must see (almost) no errors: more than 1% failed requests
/// means something other than the target's capacity was measured.
pub fn check_errors(l: &Load) -> Result<()> {
    if l.errors * 100 > l.requests.max(1) {
        bail!(
            "{} errors in {} requests: not reporting it",
            l.errors,
            l.requests
        );
    }
    Ok(())
}

/// A fresh-connection load must have opened about one connection per request: wrk
/// opens a new one only when an answer says `Connection: close`, so a server that
/// keeps connections open turns a "fresh" load into keep-alive. Refuses to report
/// otherwise. (5% slack for requests still in flight when the servers were counted.)
pub fn check_fresh(l: &Load) -> Result<()> {
    if (l.connections as f64) < 0.95 * l.requests as f64 {
        bail!(
            "the fresh load reused connections: {} requests over {} accepted connections; not reporting it",
            l.requests,
            l.connections
        );
    }
    Ok(())
}

/// A keep-alive load must keep its connections: wrk's 16, give or take a reconnect,
/// never one per request.
pub fn check_keepalive(l: &Load) -> Result<()> {
    if l.connections as f64 > 0.05 * l.requests as f64 + 64.0 {
        bail!(
            "the keep-alive load reconnected: {} requests over {} accepted connections; not reporting it",
            l.requests,
            l.connections
        );
    }
    Ok(())
}

fn wrk(client: &Host, url: &str, fresh: bool, secs: u32) -> Result<Load> {
    let mut args = vec!["wrk", "-t", "1", "-c", "16", "-d"];
    let d = format!("{secs}s");
    args.push(&d);
    args.push("--latency");
    if fresh {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(url);
    let out = client.exec(&args);
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("wrk {url} (fresh: {fresh})"))
}

struct Lab {
    t: Topology,
    client: Host,
    lb: Host,
    attacker: Host,
    rs: Vec<Host>,
    _servers: Vec<Nginx>,
}

/// nginx answering every request with its real server's name, in that server's
/// namespace; stopped when dropped.
pub struct Nginx(std::process::Child);

impl Nginx {
    /// nginx on every address of `h` (port 80), up when it answers on the first.
    pub fn start_any(dir: &Path, h: &Host, name: &str) -> Result<Nginx> {
        let first = h.ip.map(|a| a.to_string()).unwrap_or_default();
        Nginx::serve(dir, h, "80", &first, name)
    }

    fn start(dir: &Path, h: &Host, addr: &str, name: &str) -> Result<Nginx> {
        Nginx::serve(dir, h, &format!("{addr}:80"), addr, name)
    }

    fn serve(dir: &Path, h: &Host, listen: &str, addr: &str, name: &str) -> Result<Nginx> {
        let d = dir.join(format!("nginx-{name}"));
        std::fs::create_dir_all(&d)?;
        let p = d.display();
        // One worker per server (three servers, a client and a load balancer share two
        // cores); keep-alive connections live as long as the load does.
        let conf = format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{ worker_connections 8192; }}\nhttp {{\n access_log off;\n keepalive_requests 100000000;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n fastcgi_temp_path {p}/fastcgi;\n uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n server {{\n  listen {listen} backlog=4096;\n  location / {{ default_type text/plain; return 200 \"{name}\\n\"; }}\n }}\n}}\n"
        );
        let cf = d.join("nginx.conf");
        std::fs::write(&cf, conf)?;
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &h.ns, "nginx", "-c"])
            .arg(&cf)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr.log"))?)
            .spawn()
            .context("nginx (apt-get install nginx-light)")?;
        let n = Nginx(child);
        // Up when it answers.
        let url = format!("http://{addr}/");
        testkit::eventually(
            &format!("nginx on {addr}"),
            std::time::Duration::from_secs(10),
            || {
                let out = h.exec(&["curl", "-s", "-m", "1", &url]);
                (String::from_utf8_lossy(&out.stdout).trim() == name).then_some(())
            },
        );
        Ok(n)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `ip netns exec` execs nginx: the child is nginx's master.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// TcpPassiveOpens (completed passive handshakes) in a namespace's /proc/net/snmp.
/// A counter of a namespace's /proc/net/snmp: `group` (`Tcp`, `Icmp`) and `name`.
pub fn snmp(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut g = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (g.next()?, g.next()?);
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

fn passive_opens(text: &str) -> Option<u64> {
    snmp(text, "Tcp", "PassiveOpens")
}

fn lab() -> Result<Lab> {
    let mut t = Topology::new();
    let client = t.add_host("client", Some("198.18.1.1/24"));
    client.run(&["ip", "route", "add", "default", "via", "198.18.1.2"]);
    // A load generator's settings: every port, and ports in TIME_WAIT reused for new
    // connections. Without them a target measured after one where the client closed
    // first (HAProxy: ~150,000 connections in 30 s) found the client's ports all in
    // TIME_WAIT for a minute and was held to ~470 new connections/s (28,000 ports /
    // 60 s): 416-599 fresh requests/s for rvs right after HAProxy.
    for kv in [
        "net.ipv4.tcp_tw_reuse=1",
        "net.ipv4.ip_local_port_range=1024 65535",
    ] {
        client.run(&["sysctl", "-qw", kv]);
    }
    // Direct access to the real servers' subnet, on the same segment.
    client.run(&["ip", "route", "add", "198.18.0.0/24", "dev", "eth0"]);
    let attacker = t.add_host("attack", Some("198.18.1.66/24"));
    let lb = t.add_host("lb", None);
    let rs = testkit::lab::real_server_hosts(&mut t, testkit::lab::Mode::Nat);
    for h in &rs {
        // The client subnet is on the same segment for direct access replies.
        h.run(&["ip", "route", "add", "198.18.1.1/32", "dev", "eth0"]);
    }
    let servers = rs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            Nginx::start(
                &t.dir,
                h,
                &format!("198.18.0.{}", 11 + i),
                &format!("rs{}", i + 1),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Lab {
        t,
        client,
        lb,
        attacker,
        rs,
        _servers: servers,
    })
}

/// Runs the fresh-connection load while the attacker floods SYNs at the VIP.
fn under_flood(l: &Lab, url: &str, secs: u32) -> Result<(Load, f64)> {
    let mut frames = Vec::new();
    let spec = crate::trace::TraceSpec {
        profile: crate::trace::Profile::Synflood,
        flows: 50_000,
        rounds: 1,
        size: 64,
        seed: 9,
        vip: VIP.parse()?,
        vport: 80,
        servers: vec![],
        dst_mac: l.lb_mac()?,
        src_mac: dataplane::packet::MacAddr([2, 0, 0, 0, 0, 0x66]),
    };
    crate::trace::generate(&spec, |f| frames.push(f.to_vec()));
    l.landed_counter(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = testkit::net::blast(&l.attacker.ns, "eth0", frames, FLOOD_PPS, stop.clone());
    let start = std::time::Instant::now();
    let load = wrk(&l.client, url, true, secs);
    stop.store(true, Ordering::Relaxed);
    flood.join().map_err(|_| anyhow::anyhow!("flood thread"))?;
    let elapsed = start.elapsed().as_secs_f64();
    let landed = l.landed_counter(false)?;
    Ok((load?, landed as f64 / elapsed))
}

/// The flood's source range (trace::Profile::Synflood).
const FLOOD_SOURCES: &str = "198.19.0.0/16";

impl Lab {
    /// Connections the real servers' kernels have accepted so far.
    fn accepted(&self) -> u64 {
        self.rs
            .iter()
            .filter_map(|h| passive_opens(&h.run(&["cat", "/proc/net/snmp"])))
            .sum()
    }
    /// Runs a load and records the connections the real servers accepted meanwhile.
    fn counted(&self, load: impl FnOnce() -> Result<Load>) -> Result<Load> {
        let before = self.accepted();
        let mut l = load()?;
        l.connections = self.accepted() - before;
        Ok(l)
    }
    /// Counts the flood where it lands, the same way for every target: an nftables
    /// counter at the egress of the bridge's port toward the load balancer, outside the
    /// load balancer's namespace. Every frame counted there is handed to its interface;
    /// a counter inside would miss what XDP takes for AF_XDP before the netdev ingress
    /// hook runs. (It counts what was offered: frames the target then drops, in a full
    /// backlog or XDP ring, are counted too.) `start` sets it up; otherwise it is read (flood packets that
    /// landed) and removed.
    fn landed_counter(&self, start: bool) -> Result<u64> {
        let port = Topology::port_of(&self.lb);
        if start {
            // Declaring, deleting and re-creating the table clears one an aborted run
            // left behind.
            let rules = format!(
                "table netdev rvsbench_flood\ndelete table netdev rvsbench_flood\ntable netdev rvsbench_flood {{\n chain landed {{\n  type filter hook egress device \"{port}\" priority -500;\n  ip saddr {FLOOD_SOURCES} counter\n }}\n}}\n"
            );
            let f = self.t.dir.join("flood-counter.nft");
            std::fs::write(&f, rules)?;
            self.t
                .on_bridge(&["nft", "-f", f.to_str().unwrap_or_default()]);
            return Ok(0);
        }
        let out = self
            .t
            .on_bridge(&["nft", "list", "table", "netdev", "rvsbench_flood"]);
        self.t
            .on_bridge(&["nft", "delete", "table", "netdev", "rvsbench_flood"]);
        landed_packets(&out).with_context(|| format!("no flood counter in:\n{out}"))
    }

    fn lb_mac(&self) -> Result<dataplane::packet::MacAddr> {
        self.lb.mac.parse().map_err(|e| anyhow::anyhow!("{e}"))
    }
    /// The kernel side of the load balancer: addresses on eth0, forwarding on.
    fn kernel_lb(&self) {
        for a in ["198.18.0.2/24", "198.18.1.2/24", "198.18.1.100/32"] {
            self.lb.run(&["ip", "addr", "add", a, "dev", "eth0"]);
        }
        self.lb.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
    /// Back to a load balancer namespace whose kernel leaves traffic alone: no
    /// addresses, no rules, and no forwarding (left on, it would answer its copy of the
    /// packets af_packet also hands rvs with ICMP unreachables; the premise in `run`
    /// checks that it sends none).
    fn kernel_lb_off(&self) {
        let _ = self.lb.exec(&["ip", "addr", "flush", "dev", "eth0"]);
        let _ = self.lb.exec(&["nft", "flush", "ruleset"]);
        let _ = self.lb.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    }
    /// ICMP messages the load balancer's kernel has sent so far.
    fn lb_icmp_out(&self) -> u64 {
        snmp(&self.lb.run(&["cat", "/proc/net/snmp"]), "Icmp", "OutMsgs").unwrap_or(0)
    }
}

/// The targets (each round measures them in its own order).
pub const TARGETS: [&str; 5] = [
    "direct",
    "nftables",
    "haproxy",
    "rvs (af_packet)",
    "rvs (af_xdp)",
];

/// The order of round `round`: a shuffle seeded by the round, so that no target is
/// always measured first or always right after the same one.
pub fn order(round: usize) -> Vec<&'static str> {
    let mut v = TARGETS.to_vec();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (round as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    for i in (1..v.len()).rev() {
        x ^= x >> 31;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// Half-open connections (SYN_RECV) left on the real servers by a flood, which would
/// spill SYN-ACK retransmissions into the next target's measurement: waits until none
/// are left.
fn settle(l: &Lab) {
    testkit::eventually(
        "the real servers' half-open connections to expire",
        std::time::Duration::from_secs(90),
        || {
            l.rs.iter()
                .all(|h| {
                    h.run(&["ss", "-Htn", "state", "syn-recv"])
                        .trim()
                        .is_empty()
                })
                .then_some(())
        },
    );
}

/// Measures every target, or with `only` (comma-separated) those whose name contains
/// one of its words (A/B runs), in the order of `order(round)`: every target sets up
/// and tears down what it needs.
pub fn run(rvsd: &Path, secs: u32, only: Option<&str>, round: usize) -> Result<Vec<Target>> {
    let mut l = lab()?;
    let url = format!("http://{VIP}/");
    let mut out = Vec::new();
    let wanted = |name: &str| match only {
        Some(o) => o.split(',').any(|w| name.contains(w)),
        None => true,
    };
    let measure = |name: &str, url: &str, l: &Lab, flood: bool| -> Result<Target> {
        let icmp = l.lb_icmp_out();
        let keepalive = l.counted(|| wrk(&l.client, url, false, secs))?;
        check_keepalive(&keepalive).with_context(|| format!("{name}: keep-alive"))?;
        let fresh = l.counted(|| wrk(&l.client, url, true, secs))?;
        check_fresh(&fresh).with_context(|| format!("{name}: fresh"))?;
        for (what, load) in [("keep-alive", &keepalive), ("fresh", &fresh)] {
            check_errors(load).with_context(|| format!("{name}: {what}"))?;
        }
        // rvs owns the interface: its namespace's kernel must stay out of the traffic.
        if name.starts_with("rvs") {
            let sent = l.lb_icmp_out() - icmp;
            if sent > 0 {
                bail!("{name}: the load balancer namespace's kernel sent {sent} ICMP messages during the loads: it acted on the traffic rvs owns; not recording");
            }
        }
        let (fresh_under_synflood, flood_pps) = if flood {
            let mut pps = 0.0;
            let a = l.counted(|| {
                let (a, b) = under_flood(l, url, secs)?;
                pps = b;
                Ok(a)
            })?;
            check_fresh(&a).with_context(|| format!("{name}: fresh under flood"))?;
            (Some(a), Some(pps))
        } else {
            (None, None)
        };
        let t = Target {
            name: name.into(),
            keepalive,
            fresh,
            fresh_under_synflood,
            flood_pps,
        };
        eprintln!(
            "  {name:<12} keep-alive {:>9.0} req/s  fresh {:>8.0} req/s  flood {:?}",
            t.keepalive.requests_per_s,
            t.fresh.requests_per_s,
            t.fresh_under_synflood
                .as_ref()
                .map(|x| x.requests_per_s as u64)
        );
        Ok(t)
    };
    // Between targets, the real servers' replies to the client go back through the
    // load balancer's address.
    let direct_routes = |add: bool| {
        for h in &l.rs {
            let op = if add { "add" } else { "del" };
            h.run(&["ip", "route", op, "198.18.1.1/32", "dev", "eth0"]);
        }
    };
    direct_routes(false);
    let svc: String = (11..14)
        .map(|d| format!("      - {{ address: \"198.18.0.{d}:80\", forward: nat }}\n"))
        .collect();
    let cfg = format!(
        "eal: {{ cores: \"0-1\", file_prefix: rvsbench-e2e, hugepages: auto, memory_mb: 512 }}\ndataplane: {{ workers: 1, idle: adaptive, mbufs: 16383, rx_desc: 1024, tx_desc: 1024 }}\nipvs: {{ connections: 1048576 }}\nmetrics: {{ listen: \"\" }}\nports:\n  - {{ name: lan0, device: \"net_af_packet0,iface=eth0,framecnt=8192\", addresses: [\"198.18.0.2/24\", \"198.18.1.2/24\"] }}\ncontrol: {{ socket: \"{{SOCKET}}\" }}\nservices:\n  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{svc}"
    );
    let lb = l.lb.clone();
    for name in order(round) {
        if !wanted(name) {
            continue;
        }
        settle(&l);
        let t = match name {
            // Straight to one real server, whose reply route to the client is on-link.
            "direct" => {
                direct_routes(true);
                let t = measure(name, "http://198.18.0.11/", &l, false);
                direct_routes(false);
                t
            }
            // nftables DNAT, round robin.
            "nftables" => {
                l.kernel_lb();
                let nft = "table ip lb {\n chain pre {\n  type nat hook prerouting priority -100;\n  ip daddr 198.18.1.100 tcp dport 80 dnat to numgen inc mod 3 map { 0 : 198.18.0.11, 1 : 198.18.0.12, 2 : 198.18.0.13 }\n }\n}\n";
                let f = l.t.dir.join("lb.nft");
                std::fs::write(&f, nft)?;
                l.lb.run(&["nft", "-f", f.to_str().unwrap_or_default()]);
                let t = measure(name, &url, &l, true);
                l.kernel_lb_off();
                t
            }
            // HAProxy, mode tcp, round robin.
            "haproxy" => {
                l.kernel_lb();
                let t = haproxy(&l, &url, &measure);
                l.kernel_lb_off();
                t
            }
            // rvs on the load balancer's interface (af_packet), NAT, round robin.
            "rvs (af_packet)" => {
                l.t.start_rvsd(&lb, rvsd, &cfg);
                let t = measure(name, &url, &l, true);
                l.t.last_rvsd().stop();
                t
            }
            // The same on AF_XDP (veth's XDP).
            _ => {
                let xdp = cfg.replace(
                    "net_af_packet0,iface=eth0,framecnt=8192",
                    "net_af_xdp0,iface=eth0",
                );
                l.t.start_rvsd(&lb, rvsd, &xdp);
                let t = measure(name, &url, &l, true);
                l.t.last_rvsd().stop();
                t
            }
        };
        out.push(t?);
    }
    Ok(out)
}

fn haproxy(
    l: &Lab,
    url: &str,
    measure: &dyn Fn(&str, &str, &Lab, bool) -> Result<Target>,
) -> Result<Target> {
    let cfg = "global\n  maxconn 8000\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nlisten web\n  bind 198.18.1.100:80\n  balance roundrobin\n  server rs1 198.18.0.11:80\n  server rs2 198.18.0.12:80\n  server rs3 198.18.0.13:80\n";
    let hf = l.t.dir.join("haproxy.cfg");
    std::fs::write(&hf, cfg)?;
    let hlog = std::fs::File::create(l.t.dir.join("haproxy.log"))?;
    let mut hp = std::process::Command::new("ip")
        .args(["netns", "exec", &l.lb.ns, "haproxy", "-db", "-f"])
        .arg(&hf)
        .stdout(hlog.try_clone()?)
        .stderr(hlog)
        .spawn()
        .context("haproxy (apt-get install haproxy)")?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    if let Ok(Some(st)) = hp.try_wait() {
        bail!(
            "haproxy exited ({st}): {}",
            std::fs::read_to_string(l.t.dir.join("haproxy.log")).unwrap_or_default()
        );
    }
    let r = measure("haproxy", url, l, true);
    let _ = hp.kill();
    let _ = hp.wait();
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_round_measures_every_target_in_its_own_order() {
        let orders: Vec<Vec<&str>> = (0..3).map(super::order).collect();
        for o in &orders {
            let mut sorted = o.clone();
            sorted.sort();
            let mut all = super::TARGETS.to_vec();
            all.sort();
            assert_eq!(sorted, all);
        }
        assert_eq!(orders[1], super::order(1), "seeded");
        assert!(orders[0] != orders[1] || orders[1] != orders[2]);
    }

    #[test]
    fn wrk_output() {
        let out = "Running 5s test @ http://198.18.1.100/\n  1 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   812.31us  300.12us   8.02ms   90.00%\n  Latency Distribution\n     50%  750.00us\n     75%  900.00us\n     90%    1.10ms\n     99%    2.50ms\n  98765 requests in 5.00s, 9.00MB read\n  Socket errors: connect 0, read 3, write 0, timeout 2\nRequests/sec:  19753.00\nTransfer/sec:      1.80MB\n";
        let l = super::parse_wrk(out).unwrap();
        assert_eq!(l.requests_per_s, 19753.0);
        assert_eq!(l.p50_ms, 0.75);
        assert_eq!(l.p99_ms, 2.5);
        assert_eq!(l.errors, 5);
        assert_eq!(l.requests, 98765);
        assert!(super::parse_wrk("nothing").is_err());
    }

    #[test]
    fn passive_opens_are_read_from_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails\nTcp: 1 200 120000 -1 12 34567 0\nUdp: InDatagrams\nUdp: 5\n";
        assert_eq!(super::passive_opens(snmp), Some(34_567));
        assert_eq!(super::passive_opens("Ip: x\nIp: 1\n"), None);
    }

    #[test]
    fn the_landed_flood_is_read_from_the_counter() {
        let out = "table netdev rvsbench_flood {\n\tchain landed {\n\t\ttype filter hook egress device \"p-lb\" priority -500; policy accept;\n\t\tip saddr 198.19.0.0/16 counter packets 149873 bytes 8992380\n\t}\n}\n";
        assert_eq!(super::landed_packets(out), Some(149_873));
        assert_eq!(super::landed_packets("table netdev x {}"), None);
    }

    #[test]
    fn a_load_with_more_than_one_percent_errors_is_refused() {
        let load = |requests, errors| super::Load {
            requests,
            connections: requests,
            requests_per_s: 1.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            errors,
        };
        assert!(super::check_errors(&load(1000, 10)).is_ok());
        assert!(super::check_errors(&load(1000, 11)).is_err());
        assert!(super::check_errors(&load(0, 1)).is_err());
        assert_eq!(
            super::snmp("Icmp: InMsgs OutMsgs\nIcmp: 3 17\n", "Icmp", "OutMsgs"),
            Some(17)
        );
    }

    #[test]
    fn a_fresh_load_that_reused_connections_is_refused() {
        let load = |requests, connections| super::Load {
            requests,
            connections,
            requests_per_s: 1.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            errors: 0,
        };
        // The old test server: ~94,000 requests over 5 connections.
        assert!(super::check_fresh(&load(94_000, 5)).is_err());
        assert!(super::check_fresh(&load(1000, 990)).is_ok());
        assert!(super::check_fresh(&load(1000, 900)).is_err());
        // And the other way: keep-alive means a handful of connections.
        assert!(super::check_keepalive(&load(170_000, 17)).is_ok());
        assert!(super::check_keepalive(&load(20_000, 19_900)).is_err());
    }

    #[test]
    fn medians_over_rounds() {
        let load = |r: f64| super::Load {
            requests: 0,
            connections: 0,
            requests_per_s: r,
            p50_ms: r / 1000.0,
            p99_ms: 0.0,
            errors: 0,
        };
        let t = |r: f64| super::Target {
            name: "rvs".into(),
            keepalive: load(r),
            fresh: load(2.0 * r),
            fresh_under_synflood: None,
            flood_pps: Some(r),
        };
        let m = super::median_targets(&[vec![t(3.0)], vec![t(1.0)], vec![t(2.0)]]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].keepalive.requests_per_s, 2.0);
        assert_eq!(
            m[0].keepalive.p50_ms, 0.002,
            "the whole median load, latency included"
        );
        assert_eq!(m[0].fresh.requests_per_s, 4.0);
        assert_eq!(m[0].flood_pps, Some(2.0));
        assert!(m[0].fresh_under_synflood.is_none());
    }
}
