//! Running the throughput benchmark's programs on DPDK vdevs: dpdk-testpmd (the limit)
//! and rvsd on the same trace (net_pcap replaying it in, net_null out), their counters,
//! and the traces they replay.

use crate::setup::{director_yaml, spec, WARM_PORT_MAC};
use crate::trace::{generate, Profile, TraceSpec};
use anyhow::{bail, Context, Result};
use ctrlplane::ctl::{call, Request, Response};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WARMUP: Duration = Duration::from_secs(3);
pub const WINDOW: Duration = Duration::from_secs(5);

#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    cores: usize,
    kernel: String,
    dpdk: String,
    memory_gib: u64,
}

pub fn machine() -> Machine {
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

pub fn write_trace(path: &Path, spec: &TraceSpec) -> Result<u64> {
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

/// What a run replays: the trace, its frame count, and an optional warm-up trace replayed
/// once on a port of its own before and while the trace is.
pub struct Replay {
    pub trace: PathBuf,
    pub packets: u64,
    pub warm: Option<PathBuf>,
}

/// The measured trace of `flows` flows (data segments only: 64 per flow at 1k flows, one
/// at 1M, where every replayed packet holds an mbuf) and its warm-up (one SYN per flow,
/// for the warm-up port).
pub fn segment_traces(dir: &Path, flows: u32) -> Result<Replay> {
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
    Ok(Replay {
        trace,
        packets,
        warm: Some(warm),
    })
}

/// Memory and mbufs to hold a replayed trace of `packets` frames plus queues.
pub fn sizing(packets: u64, workers: usize) -> (u64, u64) {
    let mbufs = packets * workers as u64 + 16384;
    // A 2 KiB mbuf takes about 4 KiB of EAL memory with --no-huge (headers, alignment,
    // per-lcore caches and the ring): measured, a 2.5 KiB budget fails at 2M mbufs.
    let mb = (mbufs * 4096) / (1 << 20) + 512;
    (mbufs, mb)
}

/// dpdk-testpmd on the same vdevs; the median Rx-pps of port 0 over the window.
pub fn testpmd(trace: &Path, packets: u64, mode: &str) -> Result<f64> {
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

pub struct Rvsd {
    pub child: Child,
    pub socket: PathBuf,
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; SIGTERM lets it close its ports.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Starts rvsd on `replay` with one service of `mode` (`none`: no service at all); the
/// warm-up's SYNs open the connections whose data segments the trace replays.
pub fn rvsd(
    dir: &Path,
    name: &str,
    mode: &str,
    replay: &Replay,
    workers: usize,
    flows: u32,
) -> Result<Rvsd> {
    let (trace, warm) = (&replay.trace, replay.warm.as_deref());
    let (mbufs, mb) = sizing(replay.packets, workers);
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
pub fn rvsd_exe() -> Result<PathBuf> {
    match std::env::var_os("RVS_BENCH_RVSD") {
        Some(p) => Ok(PathBuf::from(p)),
        None => Ok(std::env::current_exe()?.with_file_name("rvsd")),
    }
}

pub fn counters(r: &Rvsd) -> Result<(u64, u64, u64)> {
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
pub fn opened(r: &Rvsd) -> Result<u64> {
    match call(&r.socket, &Request::List { service: None })? {
        Response::Listing { services, .. } => Ok(services.iter().map(|s| s.stats.0[0]).sum()),
        other => bail!("unexpected {other:?}"),
    }
}

/// Connections in the workers' tables now.
pub fn open_now(r: &Rvsd) -> Result<u64> {
    match call(&r.socket, &Request::Counters)? {
        Response::Counters(c) => Ok(c.workers.iter().map(|w| w.connections).sum()),
        other => bail!("unexpected {other:?}"),
    }
}

/// One measurement window of rvsd.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Window {
    /// Received packets per second.
    pub pps: f64,
    pub forwarded_pct: f64,
    pub dropped_pct: f64,
}

/// Received pps over the window, with what share was forwarded and dropped. With
/// `flows`, the warm-up must have opened exactly one connection per flow and those
/// connections must be open before and after the window: every measured packet was a
/// data segment of an established connection, or nothing is recorded.
pub fn measure(r: &Rvsd, flows: Option<u32>) -> Result<Window> {
    std::thread::sleep(WARMUP);
    let check = |when: &str| -> Result<()> {
        if let Some(flows) = flows {
            let (made, open) = (opened(r)?, open_now(r)?);
            if made != u64::from(flows) || open != u64::from(flows) {
                bail!("{when} the window: {made} connections made and {open} open, not one per flow ({flows}): not recorded");
            }
        }
        Ok(())
    };
    check("before")?;
    let (rx0, tx0, d0) = counters(r)?;
    let t0 = Instant::now();
    std::thread::sleep(WINDOW);
    let (rx1, tx1, d1) = counters(r)?;
    let dt = t0.elapsed().as_secs_f64();
    check("after")?;
    let (rx, tx, drops) = (rx1 - rx0, tx1 - tx0, d1 - d0);
    let pct = |n: u64| (1000.0 * n as f64 / rx.max(1) as f64).round() / 10.0;
    Ok(Window {
        pps: rx as f64 / dt,
        forwarded_pct: pct(tx),
        dropped_pct: pct(drops),
    })
}

/// New connections per second. rvsd starts with no service, so the replayed SYNs are
/// dropped; at t0 the service is added through the control socket, and from then on the
/// replay opens every flow once. The connection count is sampled every 10 ms and the rate
/// is the slope between 10% and 90% of the flows.
pub fn cps(r: &Rvsd, flows: u32) -> Result<f64> {
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

pub fn median_index(v: &[f64]) -> usize {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap_or(std::cmp::Ordering::Equal));
    idx[idx.len() / 2]
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[median_index(v)]
}
