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
//!   rvs-bench lifecycle MODE [CONNS]          full connections through that path
//!   rvs-bench instructions [--out FILE]       instructions per packet and connection
//!   rvs-bench kernel [--quick] [--out FILE]   the exception path's throughput (iperf3)

use anyhow::{bail, Context, Result};
use ctrlplane::ctl::{call, Request, Response};
use rvs_bench::setup::{director_yaml, spec, WARM_PORT_MAC};
use rvs_bench::trace::{generate, Profile, TraceSpec};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WARMUP: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    dpdk: String,
    memory_gib: u64,
}

#[derive(Serialize, Clone)]
struct Case {
    program: String,
    mode: String,
    flows: u32,
    workers: usize,
    mpps: f64,
    ns_per_packet: f64,
    /// rvs figure / testpmd 5tswap on the same trace.
    ratio_to_5tswap: Option<f64>,
    note: String,
}

/// Full connections per second through rvs's own worker loop (no DPDK I/O): SYN, ACK,
/// data, FIN per connection, every one new, on a table kept full by expiry.
#[derive(Serialize)]
struct LifecycleCase {
    mode: String,
    connections_per_s: f64,
    /// Every run's rate, in order.
    runs: Vec<f64>,
    /// Connections in the table during the measurement (steady: expiry keeps pace).
    table_connections: usize,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    trace_frame_bytes: usize,
    cases: Vec<Case>,
    /// SYN-only insert rate on DPDK: a trace of unique SYNs into an empty table, one
    /// worker, DR (no handshake, no expiry).
    syn_only_inserts_per_s: f64,
    syn_only_flows: u32,
    lifecycle_conns_per_clock_s: u64,
    lifecycle: Vec<LifecycleCase>,
    /// Memory per tracked connection, its share of the indexes included, as the
    /// connection table allocates it.
    bytes_per_connection: usize,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let out = |c: &str, a: &[&str]| {
        Command::new(c)
            .args(a)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: u64 = mem
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Machine {
        cpu,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        kernel: out("uname", &["-r"]),
        dpdk: out("pkg-config", &["--modversion", "libdpdk"]),
        memory_gib: kb / 1024 / 1024,
    }
}

fn write_trace(path: &Path, spec: &TraceSpec) -> Result<u64> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    dataplane::packet::pcap::write_header(&mut w)?;
    let mut n = 0u64;
    let mut res = Ok(());
    generate(spec, |f| {
        if res.is_ok() {
            res = dataplane::packet::pcap::write_frame(&mut w, n, f);
            n += 1;
        }
    });
    res?;
    w.flush()?;
    Ok(n)
}

/// The measured trace of `flows` flows (data segments only: 64 per flow at 1k flows, one
/// at 1M, where every replayed packet holds an mbuf) and its warm-up (one SYN per flow,
/// for the warm-up port). Returns both paths and the measured trace's frame count.
fn segment_traces(dir: &Path, flows: u32) -> Result<(PathBuf, PathBuf, u64)> {
    let rounds = if flows <= 1000 { 64 } else { 1 };
    let trace = dir.join(format!("seg-{flows}.pcap"));
    let packets = write_trace(&trace, &spec(Profile::Segments, flows, rounds))?;
    let warm = dir.join(format!("warm-{flows}.pcap"));
    let mut syn = spec(Profile::Syn, flows, 1);
    syn.dst_mac = WARM_PORT_MAC;
    write_trace(&warm, &syn)?;
    eprintln!(
        "trace {}: {packets} data segments of 64 B over {flows} connections opened by {}",
        trace.display(),
        warm.display()
    );
    Ok((trace, warm, packets))
}

/// Memory and mbufs to hold a replayed trace of `packets` frames plus queues.
fn sizing(packets: u64, workers: usize) -> (u64, u64) {
    let mbufs = packets * workers as u64 + 16384;
    // A 2 KiB mbuf takes about 4 KiB of EAL memory with --no-huge (headers, alignment,
    // per-lcore caches and the ring): measured, a 2.5 KiB budget fails at 2M mbufs.
    let mb = (mbufs * 4096) / (1 << 20) + 512;
    (mbufs, mb)
}

/// dpdk-testpmd on the same vdevs; the median Rx-pps of port 0 over the window.
fn testpmd(trace: &Path, packets: u64, mode: &str) -> Result<f64> {
    let (mbufs, mb) = sizing(packets, 1);
    let mut child = Command::new("dpdk-testpmd")
        .args([
            "-l",
            "0-1",
            "--no-huge",
            "-m",
            &mb.to_string(),
            "--no-pci",
            "--file-prefix",
            "rvsbench-tp",
            "--no-shconf",
        ])
        .arg(format!(
            "--vdev=net_pcap0,rx_pcap={},infinite_rx=1",
            trace.display()
        ))
        .arg("--vdev=net_null0,no-rx=1")
        .args([
            "--",
            &format!("--forward-mode={mode}"),
            "--stats-period",
            "1",
            "--nb-cores=1",
            &format!("--total-num-mbufs={mbufs}"),
            "--auto-start",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("dpdk-testpmd (apt-get install dpdk)")?;
    let out = child.stdout.take().expect("piped");
    let start = Instant::now();
    let mut rates = Vec::new();
    let mut block_port = 0;
    for line in BufReader::new(out).lines() {
        let line = line?;
        if line.contains("Port statistics") {
            block_port = 0;
        }
        if let Some(v) = line.trim().strip_prefix("Rx-pps:") {
            if block_port == 0 && start.elapsed() > WARMUP {
                if let Some(n) = v
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<f64>().ok())
                {
                    rates.push(n);
                }
            }
            block_port += 1;
        }
        if start.elapsed() > WARMUP + WINDOW + Duration::from_secs(2) && rates.len() >= 4 {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    rates.retain(|r| *r > 0.0);
    if rates.is_empty() {
        bail!("testpmd {mode} reported no rate");
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Ok(rates[rates.len() / 2])
}

struct Rvsd {
    child: Child,
    socket: PathBuf,
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; SIGTERM lets it close its ports.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Starts rvsd on the trace with one service of `mode` (`none`: no service at all). A
/// `warm` trace is replayed once, on a port of its own, before and while the trace is
/// (its SYNs open the connections whose data segments the trace replays).
#[allow(clippy::too_many_arguments)]
fn rvsd(
    dir: &Path,
    name: &str,
    mode: &str,
    trace: &Path,
    warm: Option<&Path>,
    packets: u64,
    workers: usize,
    flows: u32,
) -> Result<Rvsd> {
    let (mbufs, mb) = sizing(packets, workers);
    let socket = dir.join(format!("{name}.sock"));
    let rx = (0..workers)
        .map(|_| format!("rx_pcap={}", trace.display()))
        .collect::<Vec<_>>()
        .join(",");
    let head = format!(
        r#"eal: {{ cores: "0-1", file_prefix: rvsbench, hugepages: off, memory_mb: {mb} }}
dataplane: {{ workers: {workers}, idle: busy, mbufs: {mbufs}, rx_desc: 1024, tx_desc: 1024 }}
ipvs: {{ connections: {conns} }}
metrics: {{ listen: "" }}
control: {{ socket: "{socket}" }}
"#,
        conns = (u64::from(flows) * 2).max(65536),
        socket = socket.display(),
    );
    let warm = warm.map(|w| {
        let rx = (0..workers)
            .map(|_| format!("rx_pcap={}", w.display()))
            .collect::<Vec<_>>()
            .join(",");
        format!("net_pcap1,{rx}")
    });
    let cfg = director_yaml(
        &head,
        mode,
        &format!("net_pcap0,{rx},infinite_rx=1"),
        "net_null0,no-rx=1",
        warm.as_deref(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, cfg)?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let exe = rvsd_exe()?;
    let child = Command::new(&exe)
        .arg("--config")
        .arg(&path)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("{}", exe.display()))?;
    let r = Rvsd { child, socket };
    let start = Instant::now();
    while call(&r.socket, &Request::Status).is_err() {
        if start.elapsed() > Duration::from_secs(180) {
            bail!(
                "rvsd did not start; see {}",
                dir.join(format!("{name}.log")).display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(r)
}

/// The rvsd next to this binary, or `$RVS_BENCH_RVSD` (to compare two builds).
fn rvsd_exe() -> Result<PathBuf> {
    match std::env::var_os("RVS_BENCH_RVSD") {
        Some(p) => Ok(PathBuf::from(p)),
        None => Ok(std::env::current_exe()?.with_file_name("rvsd")),
    }
}

fn counters(r: &Rvsd) -> Result<(u64, u64, u64)> {
    match call(&r.socket, &Request::Counters)? {
        Response::Counters(c) => Ok((
            c.workers.iter().map(|w| w.rx_packets).sum(),
            c.workers.iter().map(|w| w.tx_packets).sum(),
            c.workers.iter().flat_map(|w| &w.drops).map(|d| d.1).sum(),
        )),
        other => bail!("unexpected {other:?}"),
    }
}

/// Connections the services have opened so far.
fn opened(r: &Rvsd) -> Result<u64> {
    match call(&r.socket, &Request::List { service: None })? {
        Response::Listing { services, .. } => Ok(services.iter().map(|s| s.stats.0[0]).sum()),
        other => bail!("unexpected {other:?}"),
    }
}

/// Received pps over the window, checking that the packets were forwarded and, with
/// `flows`, that the warm-up opened exactly one connection per flow (so every measured
/// packet was a data segment of an established connection).
fn measure(r: &Rvsd, flows: Option<u32>) -> Result<(f64, String)> {
    std::thread::sleep(WARMUP);
    if let Some(flows) = flows {
        let open = opened(r)?;
        if open != u64::from(flows) {
            bail!(
                "the warm-up opened {open} connections, not one per flow ({flows}): not measuring"
            );
        }
    }
    let (rx0, tx0, d0) = counters(r)?;
    let t0 = Instant::now();
    std::thread::sleep(WINDOW);
    let (rx1, tx1, d1) = counters(r)?;
    let dt = t0.elapsed().as_secs_f64();
    let (rx, tx, drops) = (rx1 - rx0, tx1 - tx0, d1 - d0);
    let note = format!(
        "forwarded {:.1}%, dropped {:.1}%",
        100.0 * tx as f64 / rx.max(1) as f64,
        100.0 * drops as f64 / rx.max(1) as f64
    );
    Ok((rx as f64 / dt, note))
}

/// New connections per second. rvsd starts with no service, so the replayed SYNs are
/// dropped; at t0 the service is added through the control socket, and from then on the
/// replay opens every flow once. The connection count is sampled every 10 ms and the rate
/// is the slope between 10% and 90% of the flows.
fn cps(r: &Rvsd, flows: u32) -> Result<f64> {
    use ctrlplane::ipvsadm::parse::parse_line;
    let conns = || opened(r);
    let mut commands = vec![parse_line("-A -t 198.18.1.100:80 -s rr")?.expect("a command")];
    for d in 11..15 {
        commands.push(
            parse_line(&format!("-a -t 198.18.1.100:80 -r 198.18.0.{d}:80 -g"))?
                .expect("a command"),
        );
    }
    std::thread::sleep(WARMUP);
    call(&r.socket, &Request::Ipvs { commands })?;
    let start = Instant::now();
    let mut samples = Vec::new();
    loop {
        let c = conns()?;
        samples.push((start.elapsed().as_secs_f64(), c as f64));
        if c >= u64::from(flows) || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let n = f64::from(flows);
    let a = samples.iter().find(|s| s.1 >= 0.1 * n);
    let b = samples.iter().find(|s| s.1 >= 0.9 * n);
    match (a, b) {
        (Some(a), Some(b)) if b.0 > a.0 => Ok((b.1 - a.1) / (b.0 - a.0)),
        _ => bail!(
            "the connection count did not grow through 10%..90% of {flows}: {:?}",
            &samples[..samples.len().min(5)]
        ),
    }
}

fn case(
    program: &str,
    mode: &str,
    flows: u32,
    workers: usize,
    pps: f64,
    ratio: Option<f64>,
    note: String,
) -> Case {
    let mpps = pps / 1e6;
    eprintln!(
        "  {program:<8} {mode:<8} {flows:>8} flows {workers} worker(s): {mpps:6.2} Mpps  {note}"
    );
    Case {
        program: program.into(),
        mode: mode.into(),
        flows,
        workers,
        mpps: (mpps * 100.0).round() / 100.0,
        ns_per_packet: if pps > 0.0 {
            (1e9 / pps * workers as f64 * 10.0).round() / 10.0
        } else {
            0.0
        },
        ratio_to_5tswap: ratio.map(|r| (r * 100.0).round() / 100.0),
        note,
    }
}

fn median_index(v: &[f64]) -> usize {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap_or(std::cmp::Ordering::Equal));
    idx[idx.len() / 2]
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[median_index(v)]
}

fn throughput(quick: bool, out: &Path) -> Result<()> {
    let reps = if quick { 1 } else { 3 };
    let dir = std::env::temp_dir().join("rvs-bench");
    std::fs::create_dir_all(&dir)?;
    let mut cases = Vec::new();
    let sizes: &[u32] = if quick { &[1000] } else { &[1000, 1_000_000] };
    for &flows in sizes {
        // The same mix at every flow count: data segments of established connections,
        // opened by the warm-up port's SYNs.
        let (trace, warm, packets) = segment_traces(&dir, flows)?;
        let io = testpmd(&trace, packets, "io")?;
        cases.push(case("testpmd", "io", flows, 1, io, None, String::new()));
        // This is a shared VM whose speed drifts by +-15% within minutes, so every rvs
        // run is paired with a testpmd 5tswap run right before it, and the reported
        // figures are medians over `reps` pairs: the ratio compares like with like.
        let mut swaps = Vec::new();
        let mut rows = Vec::new();
        for (mode, workers) in [("dr", 1), ("tun", 1), ("nat", 1), ("fullnat", 1), ("dr", 2)] {
            if workers > 1 && flows > 1000 {
                continue;
            }
            let (mut rates, mut ratios, mut notes) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..reps {
                let swap = testpmd(&trace, packets, "5tswap")?;
                swaps.push(swap);
                let name = format!("{mode}-{workers}w-{flows}");
                let r = rvsd(
                    &dir,
                    &name,
                    mode,
                    &trace,
                    Some(&warm),
                    packets,
                    workers,
                    flows,
                )?;
                let (pps, note) = measure(&r, Some(flows))?;
                drop(r);
                eprintln!(
                    "    pair: 5tswap {:.2} Mpps, rvs {mode} {:.2} Mpps = {:.2}",
                    swap / 1e6,
                    pps / 1e6,
                    pps / swap
                );
                rates.push(pps);
                ratios.push(pps / swap);
                notes.push(note);
            }
            let note = format!(
                "{}; median of {reps} paired runs, ratios {}",
                notes[median_index(&rates)],
                ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            rows.push(case(
                "rvs",
                mode,
                flows,
                workers,
                median(&rates),
                Some(median(&ratios)),
                note,
            ));
        }
        cases.push(case(
            "testpmd",
            "5tswap",
            flows,
            1,
            median(&swaps),
            None,
            format!("median of {} runs", swaps.len()),
        ));
        cases.extend(rows);
    }
    let cps_flows = if quick { 200_000 } else { 1_000_000 };
    let trace = dir.join(format!("syn-{cps_flows}.pcap"));
    let packets = write_trace(&trace, &spec(Profile::Syn, cps_flows, 1))?;
    let r = rvsd(&dir, "cps", "none", &trace, None, packets, 1, cps_flows)?;
    let cps = cps(&r, cps_flows)?;
    drop(r);
    eprintln!(
        "  rvs SYN-only inserts: {cps:.0}/s (SYN-only trace of {cps_flows} unique flows, 1 worker)"
    );
    let mut lifecycle = Vec::new();
    for mode in ["dr", "tun", "nat", "fullnat"] {
        let mut runs = Vec::new();
        let mut table = 0;
        for _ in 0..reps.max(5) {
            let (rate, t) = lifecycle_rate(mode, 1 << 20)?;
            runs.push(rate.round());
            table = t;
        }
        let c = LifecycleCase {
            mode: mode.into(),
            connections_per_s: median(&runs),
            runs,
            table_connections: table,
        };
        eprintln!(
            "  rvs {mode:<8} full connections: {:.0}/s (runs {:?}, {} in the table)",
            c.connections_per_s, c.runs, c.table_connections
        );
        lifecycle.push(c);
    }
    let report = Report {
        machine: machine(),
        trace_frame_bytes: 64,
        cases,
        syn_only_inserts_per_s: cps.round(),
        syn_only_flows: cps_flows,
        lifecycle_conns_per_clock_s: rvs_bench::path::LIFECYCLE_CONNS_PER_S,
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

/// `conns` full connections (SYN, ACK, data, FIN) through rvs's worker loop once its
/// table is warm, in connections per second of wall time, and the table's size. Checks
/// the premise first: one connection created per SYN, nothing dropped, all forwarded.
fn lifecycle_rate(mode: &str, conns: u64) -> Result<(f64, usize)> {
    let mut rig = rvs_bench::path::PathRig::lifecycle(mode)?;
    let (c0, o0, d0, s0, r0) = (
        rig.created(),
        rig.opened(),
        rig.dropped(),
        rig.io.sent,
        rig.io.received,
    );
    let t = Instant::now();
    while rig.opened() < o0 + conns {
        rig.burst();
    }
    let dt = t.elapsed().as_secs_f64();
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
    Ok((opened as f64 / dt, rig.worker.ipvs.conns.len()))
}

/// One mode at one flow count against testpmd 5tswap on the same trace, for A/B runs and
/// profiling: `rvs-bench case dr 1000 [--hold SECS]`. With --hold, rvsd keeps running
/// that long after the measurement (attach `perf record -t <worker tid>` meanwhile).
fn single(mode: &str, flows: u32, hold: u64) -> Result<()> {
    let dir = std::env::temp_dir().join("rvs-bench");
    std::fs::create_dir_all(&dir)?;
    let (trace, warm, packets) = segment_traces(&dir, flows)?;
    // RVS_BENCH_SWAP=<pps> skips testpmd (A/B runs of two rvsd builds).
    let swap = match std::env::var("RVS_BENCH_SWAP")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(v) => v,
        None => testpmd(&trace, packets, "5tswap")?,
    };
    case("testpmd", "5tswap", flows, 1, swap, None, String::new());
    let r = rvsd(
        &dir,
        &format!("{mode}-{flows}"),
        mode,
        &trace,
        Some(&warm),
        packets,
        1,
        flows,
    )?;
    let (pps, note) = measure(&r, Some(flows))?;
    let c = case("rvs", mode, flows, 1, pps, Some(pps / swap), note);
    eprintln!("  ratio to 5tswap: {:.2}", c.ratio_to_5tswap.unwrap_or(0.0));
    if hold > 0 {
        eprintln!("  rvsd pid {} held for {hold} s", r.child.id());
        std::thread::sleep(Duration::from_secs(hold));
    }
    Ok(())
}

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
    // the table level), two lengths again.
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
        "flows": 1000,
        "instructions_per_packet": per,
        "instructions_per_connection": per_conn,
        "lifecycle_conns_per_clock_s": rvs_bench::path::LIFECYCLE_CONNS_PER_S,
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
            let (rate, table) = lifecycle_rate(mode, conns)?;
            eprintln!("{mode}: {conns} connections, {rate:.0}/s, {table} in the table");
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
            let report = serde_json::json!({ "machine": machine(), "seconds": secs, "tool": "iperf3, TCP, one stream", "every_round": all });
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
            let report = serde_json::json!({ "machine": machine(), "seconds_per_load": secs, "rounds": rounds, "wrk": "1 thread, 16 connections", "flood_pps_target": rvs_bench::e2e::FLOOD_PPS, "targets": targets, "every_round": all, "rotated": true });
            std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        _ => bail!("usage: rvs-bench throughput|e2e|kernel [--quick] [--out FILE] [--only TARGET] | case MODE FLOWS [--hold SECS] | path MODE [BURSTS] | instructions [--out FILE]"),
    }
}
