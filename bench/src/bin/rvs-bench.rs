//! rvs-bench: the per-core throughput benchmark.
//!
//!   rvs-bench throughput [--quick] [--out bench/results/throughput.json]
//!
//! On one pair of vdevs - a trace replayed by net_pcap (infinite_rx) in, net_null
//! (no-rx) out - it measures dpdk-testpmd in io and 5tswap modes (the limit) and rvsd
//! with one worker for DR, TUN, NAT and FULLNAT at 1k and 1M flows, new connections per
//! second from a SYN-only trace of unique flows, and the two-worker scaling of DR. Every
//! figure is received packets per second over a measured window after a warm-up.
//!
//!   rvs-bench case MODE FLOWS [--hold SECS]   one mode against 5tswap (A/B, profiling)
//!   rvs-bench path MODE [BURSTS]              rvs's own path without DPDK (callgrind)
//!   rvs-bench lifecycle MODE [CONNS] [--full]  full connections through that path
//!   rvs-bench instructions [--out FILE]       instructions per packet and connection
//!   rvs-bench kernel [--quick] [--out FILE]   the exception path's throughput (iperf3)
//!   rvs-bench health [--out FILE]             1,000 health-checked real servers
//!   rvs-bench failover [--quick] [--out FILE] kill -9 of the VRRP master vs keepalived

use anyhow::{bail, Context, Result};
use rvs_bench::dpdk::{machine, measure, rvsd, rvsd_exe, segment_traces, testpmd};
use rvs_bench::throughput::{lifecycle_clock, lifecycle_rate, throughput};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One mode at one flow count against testpmd 5tswap on the same trace, for A/B runs and
/// profiling: `rvs-bench case dr 1000 [--hold SECS]`. With --hold, rvsd keeps running
/// that long after the measurement (attach `perf record -t <worker tid>` meanwhile).
fn single(mode: &str, flows: u32, hold: u64) -> Result<()> {
    let dir = std::env::temp_dir().join("rvs-bench");
    std::fs::create_dir_all(&dir)?;
    let replay = segment_traces(&dir, flows)?;
    // RVS_BENCH_SWAP=<pps> skips testpmd (A/B runs of two rvsd builds).
    let swap = match std::env::var("RVS_BENCH_SWAP")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(v) => v,
        None => testpmd(&replay.trace, replay.packets, "5tswap")?,
    };
    eprintln!("  testpmd 5tswap {flows} flows: {:.2} Mpps", swap / 1e6);
    let r = rvsd(&dir, &format!("{mode}-{flows}"), mode, &replay, 1, flows)?;
    let w = measure(&r, Some(flows))?;
    eprintln!(
        "  rvs {mode} {flows} flows: {:.2} Mpps (forwarded {}%, dropped {}%)",
        w.pps / 1e6,
        w.forwarded_pct,
        w.dropped_pct
    );
    eprintln!("  ratio to 5tswap: {:.2}", w.pps / swap);
    if hold > 0 {
        eprintln!("  rvsd pid {} held for {hold} s", r.child.id());
        std::thread::sleep(Duration::from_secs(hold));
    }
    Ok(())
}

/// The lifecycle rig's clock under callgrind.
const INSTR_CLOCK: u64 = 1024;

/// Instructions per packet on rvs's own path (`path`, no DPDK) for each forwarding
/// method, counted by callgrind: the difference between two runs of different lengths,
/// so that setup cancels out. Unlike the rates, these do not move with the VM's noise.
fn instructions(out: &Path) -> Result<()> {
    let exe = std::env::current_exe()?;
    let refs_of = |what: &str, mode: &str, amount: u64| -> Result<u64> {
        let o = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&exe)
            .args([what, mode, &amount.to_string()])
            .output()
            .context("valgrind (apt-get install valgrind)")?;
        let err = String::from_utf8_lossy(&o.stderr);
        err.lines()
            .find_map(|l| l.split("refs:").nth(1))
            .and_then(|v| v.trim().replace(',', "").parse().ok())
            .with_context(|| format!("no instruction count from callgrind:\n{err}"))
    };
    let refs = |mode: &str, bursts: u64| refs_of("path", mode, bursts);
    let (short, long) = (1000u64, 6000u64);
    let packets = (long - short) * dataplane::worker::BURST as u64;
    let mut per = serde_json::Map::new();
    for mode in ["dr", "tun", "nat", "fullnat"] {
        let n = (refs(mode, long)? - refs(mode, short)?) as f64 / packets as f64;
        eprintln!("  {mode:<8} {n:.0} instructions per packet");
        per.insert(mode.into(), serde_json::json!((n * 10.0).round() / 10.0));
    }
    // Per connection: the lifecycle rig once warm (SYN, ACK, data, FIN; expiry keeping
    // the table level), two lengths again. Its clock runs slower than the rate
    // benchmark's (a smaller steady table: a shorter warm-up under callgrind).
    let (short, long) = (20_000u64, 60_000u64);
    let mut per_conn = serde_json::Map::new();
    for mode in ["dr", "tun", "nat", "fullnat"] {
        let n = (refs_of("lifecycle", mode, long)? - refs_of("lifecycle", mode, short)?) as f64
            / (long - short) as f64;
        eprintln!("  {mode:<8} {n:.0} instructions per connection");
        per_conn.insert(mode.into(), serde_json::json!(n.round()));
    }
    let report = serde_json::json!({
        "machine": machine(),
        "setup": format!("callgrind's instruction count of the production worker loop (WorkerCore::poll fed from memory, no DPDK), the difference between two runs of different lengths so that set-up cancels. Per packet: 64-byte data segments over 1,000 established connections ({} bursts of 32 counted). Per connection: the lifecycle traffic of the rate benchmark (SYN, ACK, data, FIN+ACK per new connection, client side only) on a steady table of {} (DR, TUN) or {} (NAT, FULLNAT) connections kept level by expiry ({} connections counted).", 5000, rvs_bench::path::lifecycle_table("dr", INSTR_CLOCK), rvs_bench::path::lifecycle_table("nat", INSTR_CLOCK), long - short),
        "flows": 1000,
        "instructions_per_packet": per,
        "instructions_per_connection": per_conn,
    });
    std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The value after `name` on the command line, if given.
fn option<'a>(args: &'a [String], name: &str) -> Option<&'a String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
}

fn main() -> Result<()> {
    // The lab's namespaces are `rvsb-...`: a test run meanwhile does not take them for
    // its own leftovers.
    if std::env::var_os("RVS_LAB_PREFIX").is_none() {
        std::env::set_var("RVS_LAB_PREFIX", "rvsb");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("instructions") => {
            let out = option(&args, "--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench/results/instructions.json"));
            instructions(&out)
        }
        Some("path") => {
            // A fixed amount of work for `valgrind --tool=callgrind` (instructions per
            // packet do not move with the machine's noise); also prints a rough ns/packet.
            let mode = args.get(1).map(String::as_str).unwrap_or("dr");
            let bursts: u64 = args.get(2).and_then(|b| b.parse().ok()).unwrap_or(100_000);
            let mut rig = rvs_bench::path::PathRig::new(mode, 1000)?;
            let t = Instant::now();
            for _ in 0..bursts {
                rig.burst();
            }
            let packets = bursts * dataplane::worker::BURST as u64;
            eprintln!(
                "{mode}: {packets} packets, {:.1} ns/packet, forwarded {}",
                t.elapsed().as_nanos() as f64 / packets as f64,
                rig.io.sent
            );
            Ok(())
        }
        Some("lifecycle") => {
            // A fixed number of full connections after the warm-up, for callgrind.
            let mode = args.get(1).map(String::as_str).unwrap_or("nat");
            let conns: u64 = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(100_000);
            let clock = match option(&args, "--clock").and_then(|c| c.parse().ok()) {
                Some(c) => c,
                None if args.iter().any(|a| a == "--full") => lifecycle_clock(mode),
                None => INSTR_CLOCK,
            };
            let (rate, table) = lifecycle_rate(mode, clock, conns)?;
            eprintln!("{mode}: {conns} connections, {rate:.0}/s, {table:?} in the table");
            Ok(())
        }
        Some("case") => {
            let mode = args.get(1).map(String::as_str).unwrap_or("dr");
            let flows = args.get(2).and_then(|f| f.parse().ok()).unwrap_or(1000);
            let hold = option(&args, "--hold")
                .and_then(|h| h.parse().ok())
                .unwrap_or(0);
            single(mode, flows, hold)
        }
        Some("throughput") => {
            let quick = args.iter().any(|a| a == "--quick");
            let out = option(&args, "--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench/results/throughput.json"));
            throughput(quick, &out)
        }
        Some("kernel") => {
            let quick = args.iter().any(|a| a == "--quick");
            let out = option(&args, "--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench/results/kernel.json"));
            let (secs, rounds) = if quick { (3, 1) } else { (5, 3) };
            let all = rvs_bench::kernel::run(&rvsd_exe()?, secs, rounds)?;
            let report = serde_json::json!({ "machine": machine(), "seconds": secs, "setup": format!("{} {secs} s per direction, {rounds} rounds.", rvs_bench::kernel::SETUP), "every_round": all });
            std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Some("failover") => {
            let out = option(&args, "--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench/results/failover.json"));
            let rounds = if args.iter().any(|a| a == "--quick") { 1 } else { 3 };
            let all = rvs_bench::failover::run(&rvsd_exe()?, rounds)?;
            let report = serde_json::json!({ "machine": machine(), "setup": rvs_bench::failover::SETUP, "rounds": rounds, "every_round": all });
            std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Some("health") => {
            let out = option(&args, "--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench/results/health.json"));
            let r = rvs_bench::health::run(&rvsd_exe()?, 20)?;
            eprintln!(
                "  {} probes/s of {} configured; health thread {:.1}% of a core, main thread {:.1}%",
                r.probes_per_s,
                r.probes_per_s_expected,
                r.health_thread_cpu * 100.0,
                r.main_thread_cpu * 100.0
            );
            let report = serde_json::json!({ "machine": machine(), "health": r });
            std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Some("e2e") => {
            let quick = args.iter().any(|a| a == "--quick");
            let secs = if quick { 3 } else { 6 };
            let out = option(&args, "--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("bench/results/e2e.json"));
            let rvsd = rvsd_exe()?;
            let only = option(&args, "--only")
                .map(String::as_str);
            // Whole rounds of every target, repeated: the machine's drift spreads over all
            // targets alike, and each figure is the median over the rounds.
            let rounds = if quick { 1 } else { 3 };
            let mut all = Vec::new();
            for r in 0..rounds {
                eprintln!("round {} of {rounds}", r + 1);
                all.push(rvs_bench::e2e::run(&rvsd, secs, only, r)?);
            }
            let targets = rvs_bench::e2e::median_targets(&all);
            // The medians, and every round they come from.
            let report = serde_json::json!({ "machine": machine(), "seconds_per_load": secs, "rounds": rounds, "wrk": "1 thread, 16 connections", "flood_pps_target": rvs_bench::e2e::FLOOD_PPS, "targets": targets, "every_round": all, "orders": (0..rounds).map(rvs_bench::e2e::order).collect::<Vec<_>>(), "setup": rvs_bench::e2e::SETUP });
            std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        _ => bail!("usage: rvs-bench throughput|e2e|kernel|failover [--quick] [--out FILE] [--only TARGET] | case MODE FLOWS [--hold SECS] | path MODE [BURSTS] | instructions [--out FILE] | health"),
    }
}
