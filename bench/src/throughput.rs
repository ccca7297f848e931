//! The per-core throughput report: rvsd against testpmd on the same trace, pair by
//! pair, at 1k and 1M flows with the same packet mix; connection setup as full
//! connections through the worker loop; the SYN-only insert rate on DPDK. Everything
//! the report says about the setup is written here, into the JSON, next to the figures.

use crate::dpdk::{
    cps, machine, measure, median, rvsd, segment_traces, testpmd, write_trace, Machine, Replay,
};
use crate::path::{lifecycle_table, PathRig};
use crate::setup::spec;
use crate::trace::Profile;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Serialize, Clone)]
pub struct Case {
    pub program: String,
    pub mode: String,
    pub flows: u32,
    pub workers: usize,
    /// The median over the runs.
    pub mpps: f64,
    pub ns_per_packet: f64,
    /// Every run, in order.
    pub runs_mpps: Vec<f64>,
    /// rvs: each run / the testpmd 5tswap run right before it; and their median.
    pub pair_ratios: Vec<f64>,
    pub ratio_to_5tswap: Option<f64>,
    /// rvs: the largest share of received packets dropped in a run (a row with drops is
    /// not judged).
    pub dropped_pct: f64,
    pub note: String,
}

/// Full connections per second through rvs's own worker loop (no DPDK I/O).
#[derive(Serialize)]
pub struct LifecycleCase {
    pub mode: String,
    pub connections_per_s: f64,
    /// Every run's rate, in order.
    pub runs: Vec<f64>,
    /// The rig's clock, and the connections in the table at the start and end of the
    /// last run's measurement (steady: expiry keeps pace with new connections).
    pub clock_conns_per_s: u64,
    pub table_connections: (usize, usize),
}

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    /// How the rows are made, and what they replay.
    pub setup: String,
    pub mix: String,
    pub trace_frame_bytes: usize,
    pub cases: Vec<Case>,
    pub syn_only_setup: String,
    pub syn_only_inserts_per_s: f64,
    pub syn_only_flows: u32,
    pub lifecycle_setup: String,
    pub lifecycle: Vec<LifecycleCase>,
    /// Memory per tracked connection, its share of the indexes included, as the
    /// connection table allocates it.
    pub bytes_per_connection: usize,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn row(program: &str, mode: &str, flows: u32, workers: usize, runs: &[f64]) -> Case {
    let pps = median(runs);
    eprintln!(
        "  {program:<8} {mode:<8} {flows:>8} flows {workers} worker(s): {:6.2} Mpps (runs {:?})",
        pps / 1e6,
        runs.iter().map(|r| round2(r / 1e6)).collect::<Vec<_>>()
    );
    Case {
        program: program.into(),
        mode: mode.into(),
        flows,
        workers,
        mpps: round2(pps / 1e6),
        ns_per_packet: if pps > 0.0 {
            (1e9 / pps * workers as f64 * 10.0).round() / 10.0
        } else {
            0.0
        },
        runs_mpps: runs.iter().map(|r| round2(r / 1e6)).collect(),
        pair_ratios: Vec::new(),
        ratio_to_5tswap: None,
        dropped_pct: 0.0,
        note: String::new(),
    }
}

pub fn throughput(quick: bool, out: &Path) -> Result<()> {
    let reps = if quick { 1 } else { 3 };
    let dir = std::env::temp_dir().join("rvs-bench");
    std::fs::create_dir_all(&dir)?;
    let mut cases = Vec::new();
    let sizes: &[u32] = if quick { &[1000] } else { &[1000, 1_000_000] };
    for &flows in sizes {
        // The same mix at every flow count: data segments of established connections,
        // opened by the warm-up port's SYNs.
        let replay = segment_traces(&dir, flows)?;
        let (trace, packets) = (&replay.trace, replay.packets);
        let io = testpmd(trace, packets, "io")?;
        cases.push(row("testpmd", "io", flows, 1, &[io]));
        // The machine's speed drifts within minutes, so every rvs run is paired with a
        // testpmd 5tswap run right before it: the ratio compares like with like.
        let mut swaps = Vec::new();
        let mut rows = Vec::new();
        for (mode, workers) in [("dr", 1), ("tun", 1), ("nat", 1), ("fullnat", 1), ("dr", 2)] {
            if workers > 1 && flows > 1000 {
                continue;
            }
            let (mut rates, mut ratios, mut dropped) = (Vec::new(), Vec::new(), 0f64);
            for _ in 0..reps {
                let swap = testpmd(trace, packets, "5tswap")?;
                swaps.push(swap);
                let name = format!("{mode}-{workers}w-{flows}");
                let r = rvsd(&dir, &name, mode, &replay, workers, flows)?;
                let w = measure(&r, Some(flows))?;
                drop(r);
                eprintln!(
                    "    pair: 5tswap {:.2} Mpps, rvs {mode} {:.2} Mpps = {:.2} (forwarded {}%, dropped {}%)",
                    swap / 1e6,
                    w.pps / 1e6,
                    w.pps / swap,
                    w.forwarded_pct,
                    w.dropped_pct
                );
                rates.push(w.pps);
                ratios.push(round2(w.pps / swap));
                dropped = dropped.max(w.dropped_pct);
            }
            let mut c = row("rvs", mode, flows, workers, &rates);
            c.ratio_to_5tswap = Some(median(&ratios));
            c.pair_ratios = ratios;
            c.dropped_pct = dropped;
            if workers > 1 {
                c.note = "without RSS every worker reads the whole trace and hands the other's half over through the redirect rings; the workers share the machine's cores with testpmd's replay and the main thread".into();
            }
            rows.push(c);
        }
        let mut c = row("testpmd", "5tswap", flows, 1, &swaps);
        c.note = format!("{} runs, one before each rvs run", swaps.len());
        cases.push(c);
        cases.extend(rows);
    }
    let cps_flows = if quick { 200_000 } else { 1_000_000 };
    let trace = dir.join(format!("syn-{cps_flows}.pcap"));
    let packets = write_trace(&trace, &spec(Profile::Syn, cps_flows, 1))?;
    let replay = Replay {
        trace,
        packets,
        warm: None,
    };
    let r = rvsd(&dir, "cps", "none", &replay, 1, cps_flows)?;
    let cps = cps(&r, cps_flows)?;
    drop(r);
    eprintln!("  rvs SYN-only inserts: {cps:.0}/s ({cps_flows} unique SYNs, 1 worker)");
    let mut lifecycle = Vec::new();
    for mode in ["dr", "tun", "nat", "fullnat"] {
        let clock = lifecycle_clock(mode);
        let mut runs = Vec::new();
        let mut table = (0, 0);
        for _ in 0..reps.max(5) {
            let (rate, t) = lifecycle_rate(mode, clock, 1 << 20)?;
            runs.push(rate.round());
            table = t;
        }
        let c = LifecycleCase {
            mode: mode.into(),
            connections_per_s: median(&runs),
            runs,
            clock_conns_per_s: clock,
            table_connections: table,
        };
        eprintln!(
            "  rvs {mode:<8} full connections: {:.0}/s (runs {:?}, {:?} in the table)",
            c.connections_per_s, c.runs, c.table_connections
        );
        lifecycle.push(c);
    }
    let report = Report {
        machine: machine(),
        setup: "dpdk-testpmd and rvsd on the same vdevs and trace: net_pcap (infinite_rx) replaying the trace in, net_null (no-rx) out; one rx burst of 32; figures are received packets per second over a 5 s window after a 3 s warm-up. Every rvs run is paired with a testpmd 5tswap run right before it.".into(),
        mix: "64-byte TCP data segments of established connections, at every flow count: a warm-up port (net_pcap, replayed once) sends one SYN per flow first; before and after each window rvsd must hold exactly one connection per flow, or nothing is recorded.".into(),
        trace_frame_bytes: 64,
        cases,
        syn_only_setup: format!("SYN-only insert rate on DPDK, one worker, DR: a replayed trace of {cps_flows} unique SYNs into an empty table; the slope of the connection count between 10% and 90%. No handshake, no expiry."),
        syn_only_inserts_per_s: cps.round(),
        syn_only_flows: cps_flows,
        lifecycle_setup: "Full connections through one worker's own loop (WorkerCore::poll fed from memory, no DPDK I/O, no same-run baseline): per connection a SYN, an ACK, a data segment and a FIN+ACK from a client endpoint never used before, 8 connections at each step in every burst of 32; client side only (no server replies: NAT and FULLNAT rewrite and track, their reply path is not exercised). Connections are scheduled, tracked and (FULLNAT) given a local port. The rig's clock runs at the rate given per mode, which with the kernel's timeouts (CLOSE_WAIT 60 s after a client FIN for NAT and FULLNAT, FIN_WAIT 120 s for DR and TUN, which see no replies) keeps the table at half its capacity of 1,048,576, expiring as many connections as open; each run checks one connection per SYN, nothing dropped, everything forwarded, and a steady table size. Five runs.".into(),
        lifecycle,
        bytes_per_connection: dataplane::ipvs::conn::ConnTable::new(1024, 0).bytes_per_entry(),
    };
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The lifecycle rig's clock for `mode` that keeps the table at half its capacity.
pub fn lifecycle_clock(mode: &str) -> u64 {
    let timeout = if matches!(mode, "dr" | "tun") {
        120
    } else {
        60
    };
    (crate::path::LIFECYCLE_CAPACITY as u64 / 2) / timeout
}

/// `conns` full connections (SYN, ACK, data, FIN) through rvs's worker loop once its
/// table is warm, with its clock at `clock` connections per second: connections per
/// second of wall time, and the table's size at the start and end. Checks the premise:
/// one connection created per SYN, nothing dropped, all forwarded, the table steady.
pub fn lifecycle_rate(mode: &str, clock: u64, conns: u64) -> Result<(f64, (usize, usize))> {
    let mut rig = PathRig::lifecycle(mode, clock)?;
    let (c0, o0, d0, s0, r0) = (
        rig.created(),
        rig.opened(),
        rig.dropped(),
        rig.io.sent,
        rig.io.received,
    );
    let size0 = rig.worker.ipvs.conns.len();
    let t = Instant::now();
    while rig.opened() < o0 + conns {
        rig.burst();
    }
    let dt = t.elapsed().as_secs_f64();
    let size1 = rig.worker.ipvs.conns.len();
    let opened = rig.opened() - o0;
    if rig.created() - c0 != opened {
        bail!(
            "{mode}: {} connections created for {opened} SYNs",
            rig.created() - c0
        );
    }
    if rig.dropped() != d0 || rig.io.sent - s0 != rig.io.received - r0 {
        bail!("{mode}: not everything was forwarded: {:?}", rig.drops());
    }
    let steady = lifecycle_table(mode, clock);
    for s in [size0, size1] {
        if s < steady * 9 / 10 || s > steady * 11 / 10 {
            bail!("{mode}: {s} connections in the table, not about {steady}: not steady");
        }
    }
    Ok((opened as f64 / dt, (size0, size1)))
}
