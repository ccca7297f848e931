//! The health checker at scale: 1,000 real servers, each with a TCP_CHECK and an
//! HTTP_GET at delay_loop 1, against real listeners (one nginx answering on 1,000
//! addresses in a namespace), checked by rvsd through its kernel twin. Measured: the
//! probes per second actually achieved, and the CPU share of the health checker's
//! thread, of rvsd's main thread and of the whole control plane (every thread but the
//! workers'). Premises checked before a number is kept: the farm's kernel accepted about
//! one connection per probe (its own count, not rvsd's), the probes went through the
//! kernel twin, and the checkers achieved the configured rate.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::Topology;

pub const SERVERS: usize = 1000;

#[derive(Serialize)]
pub struct Report {
    pub setup: String,
    pub servers: usize,
    pub probes_configured: usize,
    pub seconds: f64,
    pub probes_per_s: f64,
    pub probes_per_s_expected: f64,
    pub servers_up: usize,
    /// Connections the farm's kernel accepted per second over the window
    /// (`PassiveOpens` in its namespace): each probe opens one.
    pub farm_accepts_per_s: f64,
    /// Packets through the kernel twin (both ways) per probe.
    pub twin_packets_per_probe: f64,
    /// Share of one core, over the window.
    pub health_thread_cpu: f64,
    pub main_thread_cpu: f64,
    /// Every rvsd thread but the DPDK workers (`rte-worker-*`).
    pub control_plane_cpu: f64,
}

fn rs_addr(i: usize) -> String {
    let n = 10 + i;
    format!("198.18.{}.{}", 4 + n / 256, n % 256)
}

/// utime + stime, in clock ticks, of rvsd's threads whose name passes `which`.
fn ticks(pid: u32, which: impl Fn(&str) -> bool) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| which(c.trim())))
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|s| {
            // Fields after the parenthesised comm: state is field 3; utime 14, stime 15.
            let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum()
}

pub fn run(rvsd: &Path, secs: u64) -> Result<Report> {
    let mut t = Topology::new();
    let farm = t.add_host("farm", Some("198.18.4.2/22"));
    let lb = t.add_host("lb", None);
    let batch = t.dir.join("addrs.batch");
    let lines: String = (0..SERVERS)
        .map(|i| format!("addr add {}/22 dev eth0\n", rs_addr(i)))
        .collect();
    std::fs::write(&batch, lines)?;
    farm.run(&["ip", "-batch", batch.to_str().unwrap_or_default()]);
    let _web = crate::e2e::Nginx::start_any(&t.dir, &farm, "farm")?;
    let rs: String = (0..SERVERS)
        .map(|i| {
            format!(
                "      - {{ address: \"{}:80\", forward: nat, checks: [{{ type: tcp_check }}, {{ type: http_get, url: [{{ path: / }}] }}] }}\n",
                rs_addr(i)
            )
        })
        .collect();
    let cfg = format!(
        "eal: {{ cores: \"0-1\", file_prefix: rvsbench-health, hugepages: auto, memory_mb: 512 }}\ndataplane: {{ workers: 1, idle: adaptive, mbufs: 16383 }}\nmetrics: {{ listen: \"\" }}\nports:\n  - {{ name: lan0, device: \"net_af_packet0,iface=eth0\", addresses: [\"198.18.4.1/22\"], kernel: {{ name: lan0k }} }}\ncontrol: {{ socket: \"{{SOCKET}}\" }}\nservices:\n  - vip: \"198.18.4.5:80\"\n    scheduler: rr\n    delay_loop: 1\n    connect_timeout: 2\n    real_servers:\n{rs}"
    );
    // The kernel twin resolves 1,000 neighbours (under gc_thresh3's 1,024).
    t.start_rvsd(&lb, rvsd, &cfg);
    let d = t.last_rvsd();
    let pid = d.pid().context("rvsd's pid")?;
    let sum = |d: &testkit::Rvsd| -> (u64, usize) {
        let c = testkit::health::checks(d);
        (
            c.iter().map(|x| x.checks_ok + x.checks_failed).sum(),
            c.iter().filter(|x| x.up && x.checks_ok > 0).count(),
        )
    };
    // Warm: every probe has run at least once (the warm-up spreads the first checks).
    testkit::eventually("every probe checked once", Duration::from_secs(60), || {
        let c = testkit::health::checks(d);
        c.iter()
            .all(|x| x.checks_ok + x.checks_failed > 0)
            .then_some(())
    });
    let hz = 100.0; // USER_HZ on Linux
    let cpu = || {
        (
            ticks(pid, |n| n == "rvs-health"),
            ticks(pid, |n| n == "rvsd"),
            // DPDK 22.11 names the worker lcores' threads rte-worker-N.
            ticks(pid, |n| {
                !n.starts_with("rte-worker") && !n.starts_with("lcore-worker")
            }),
        )
    };
    // The farm's own count of accepted connections, and the twin's packet counters.
    let accepts = || -> Result<u64> {
        crate::e2e::snmp(&farm.run(&["cat", "/proc/net/snmp"]), "Tcp", "PassiveOpens")
            .context("PassiveOpens in the farm's /proc/net/snmp")
    };
    let twin = || -> Result<u64> {
        let mut n = 0;
        for dir in ["rx_packets", "tx_packets"] {
            let v = lb.run(&["cat", &format!("/sys/class/net/lan0k/statistics/{dir}")]);
            n += v.trim().parse::<u64>().context("twin counters")?;
        }
        Ok(n)
    };
    let (n0, c0, a0, w0) = (sum(d).0, cpu(), accepts()?, twin()?);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (n1, up) = sum(d);
    let (c1, a1, w1) = (cpu(), accepts()?, twin()?);
    let dt = t0.elapsed().as_secs_f64();
    let probes = 2 * SERVERS;
    if up < SERVERS * 2 * 95 / 100 {
        bail!("only {up} of {probes} checks are up: the farm did not answer; not recorded");
    }
    let ran = (n1 - n0) as f64;
    if ran / dt < probes as f64 * 0.95 {
        bail!(
            "{:.0} probes/s of {probes} configured: the checker fell behind; not recorded",
            ran / dt
        );
    }
    let accepted = (a1 - a0) as f64;
    if !(0.9..=1.1).contains(&(accepted / ran)) {
        bail!("the farm accepted {accepted} connections for {ran} probes: the checkers' counts are not what reached the servers; not recorded");
    }
    let per_probe = (w1 - w0) as f64 / ran;
    if per_probe < 5.0 {
        bail!("{per_probe:.1} packets through the kernel twin per probe (a TCP connection is at least 6): the probes did not take the exception path; not recorded");
    }
    let share = |a: u64, b: u64| (((b - a) as f64 / hz / dt) * 1000.0).round() / 1000.0;
    Ok(Report {
        setup: format!("{SERVERS} real servers in one NAT service, each with a TCP_CHECK and an HTTP_GET (delay_loop 1 s, connect_timeout 2 s, keepalived's default warm-up), against one nginx answering on {SERVERS} addresses in a namespace; rvsd checks them through its kernel twin (net_tap) from the DIP. Probes per second are the checkers' own counts over the window, checked against the connections the farm's kernel accepted (PassiveOpens) and the packets through the kernel twin; CPU shares are the threads' utime+stime from /proc over the same window, as a share of one core; the control plane is every rvsd thread but the DPDK workers (rte-worker-N)."),
        servers: SERVERS,
        probes_configured: probes,
        seconds: (dt * 10.0).round() / 10.0,
        probes_per_s: ((n1 - n0) as f64 / dt).round(),
        probes_per_s_expected: probes as f64,
        servers_up: up / 2,
        farm_accepts_per_s: (accepted / dt).round(),
        twin_packets_per_probe: (per_probe * 10.0).round() / 10.0,
        health_thread_cpu: share(c0.0, c1.0),
        main_thread_cpu: share(c0.1, c1.1),
        control_plane_cpu: share(c0.2, c1.2),
    })
}
