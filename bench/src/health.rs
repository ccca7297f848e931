//! The health checker at scale: 1,000 real servers, each with a TCP_CHECK and an
//! HTTP_GET at delay_loop 1, against real listeners (one nginx answering on 1,000
//! addresses in a namespace), checked by rvsd through its kernel twin. Measured: the
//! probes per second actually achieved, and the CPU share of the health checker's
//! thread and of rvsd's main (control) thread.

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
    /// Share of one core, over the window.
    pub health_thread_cpu: f64,
    pub main_thread_cpu: f64,
}

fn rs_addr(i: usize) -> String {
    let n = 10 + i;
    format!("198.18.{}.{}", 4 + n / 256, n % 256)
}

/// utime + stime, in clock ticks, of rvsd's threads named `name`.
fn ticks(pid: u32, name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
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
    let (n0, h0, m0) = (sum(d).0, ticks(pid, "rvs-health"), ticks(pid, "rvsd"));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (n1, up) = sum(d);
    let (h1, m1) = (ticks(pid, "rvs-health"), ticks(pid, "rvsd"));
    let dt = t0.elapsed().as_secs_f64();
    let probes = 2 * SERVERS;
    if up < SERVERS * 2 * 95 / 100 {
        bail!("only {up} of {probes} checks are up: the farm did not answer; not recorded");
    }
    Ok(Report {
        setup: format!("{SERVERS} real servers in one NAT service, each with a TCP_CHECK and an HTTP_GET (delay_loop 1 s, connect_timeout 2 s, keepalived's default warm-up), against one nginx answering on {SERVERS} addresses in a namespace; rvsd checks them through its kernel twin (net_tap) from the DIP. Probes per second are the checkers' own counts over the window; CPU shares are the threads' utime+stime from /proc over the same window, as a share of one core."),
        servers: SERVERS,
        probes_configured: probes,
        seconds: (dt * 10.0).round() / 10.0,
        probes_per_s: ((n1 - n0) as f64 / dt).round(),
        probes_per_s_expected: probes as f64,
        servers_up: up / 2,
        health_thread_cpu: (((h1 - h0) as f64 / hz / dt) * 1000.0).round() / 1000.0,
        main_thread_cpu: (((m1 - m0) as f64 / hz / dt) * 1000.0).round() / 1000.0,
    })
}
