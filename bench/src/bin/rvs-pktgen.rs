//! rvs-pktgen: writes deterministic pcap traces for rvs's benchmarks.
//!
//!   rvs-pktgen --profile established --flows 1000 --rounds 64 --size 64 --out dr-1k.pcap

use anyhow::{Context, Result};
use clap::Parser;
use dataplane::packet::MacAddr;
use rvs_bench::trace::{generate, Profile, TraceSpec};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "rvs-pktgen",
    about = "Generate deterministic pcap traces for rvs benchmarks"
)]
struct Args {
    #[arg(long, value_enum, default_value = "established")]
    profile: Profile,
    /// Concurrent flows (1 to 10,000,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    flows: u32,
    /// Data packets per flow (established, udp, mix, nat-replies, malformed).
    #[arg(long, default_value_t = 16)]
    rounds: u32,
    /// Frame size with FCS, 64 to 1518.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(64..=1518))]
    size: u16,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The virtual service, VIP:PORT.
    #[arg(long, default_value = "198.18.1.100:80")]
    vip: String,
    /// Real servers for reply profiles, comma-separated RIP:PORT.
    #[arg(
        long,
        default_value = "198.18.0.11:80,198.18.0.12:80,198.18.0.13:80,198.18.0.14:80"
    )]
    servers: String,
    /// Destination MAC of client frames (the director port's; net_pcap ports use
    /// 02:70:63:61:70:NN).
    #[arg(long, default_value = "02:70:63:61:70:00")]
    dst_mac: String,
    #[arg(long, default_value = "02:00:00:00:00:c1")]
    src_mac: String,
    /// Write the trace to this pcap file.
    #[arg(long, short, required_unless_present = "tx")]
    out: Option<PathBuf>,
    /// Transmit the trace on this DPDK device instead (a PCI address or a vdev string,
    /// e.g. net_af_packet0,iface=eth1).
    #[arg(long)]
    tx: Option<String>,
    /// Packets per second on --tx (0: as fast as the port takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Stop --tx after this many frames.
    #[arg(long)]
    count: Option<u64>,
    /// Stop --tx after this many seconds (default 10 when --count is not given).
    #[arg(long)]
    seconds: Option<f64>,
}

fn endpoint(s: &str) -> Result<(Ipv4Addr, u16)> {
    let (a, p) = s
        .split_once(':')
        .with_context(|| format!("{s:?}: expected ADDRESS:PORT"))?;
    Ok((
        a.parse().with_context(|| format!("{s:?}: bad address"))?,
        p.parse().with_context(|| format!("{s:?}: bad port"))?,
    ))
}

fn main() -> Result<()> {
    let a = Args::parse();
    let (vip, vport) = endpoint(&a.vip)?;
    let servers = a
        .servers
        .split(',')
        .map(endpoint)
        .collect::<Result<Vec<_>>>()?;
    let spec = TraceSpec {
        profile: a.profile,
        flows: a.flows,
        rounds: a.rounds,
        size: usize::from(a.size),
        seed: a.seed,
        vip,
        vport,
        servers,
        dst_mac: a
            .dst_mac
            .parse::<MacAddr>()
            .map_err(|e| anyhow::anyhow!("--dst-mac: {e}"))?,
        src_mac: a
            .src_mac
            .parse::<MacAddr>()
            .map_err(|e| anyhow::anyhow!("--src-mac: {e}"))?,
    };
    if let Some(dev) = &a.tx {
        return transmit(&a, &spec, dev);
    }
    let out = a.out.clone().context("--out or --tx is needed")?;
    let file =
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    dataplane::packet::pcap::write_header(&mut w)?;
    let mut n = 0u64;
    let mut err = None;
    generate(&spec, |f| {
        if err.is_none() {
            if let Err(e) = dataplane::packet::pcap::write_frame(&mut w, n, f) {
                err = Some(e);
            }
            n += 1;
        }
    });
    if let Some(e) = err {
        return Err(e).with_context(|| format!("writing {}", out.display()));
    }
    w.flush()?;
    eprintln!(
        "{}: {n} frames ({:?}, {} flows, {} B)",
        out.display(),
        a.profile,
        a.flows,
        a.size
    );
    Ok(())
}

/// Sends the trace on a DPDK port (EAL on CPUs 0-1; hugepages when reserved).
fn transmit(a: &Args, spec: &TraceSpec, dev: &str) -> Result<()> {
    use dataplane::io::{Eal, MbufPool, Port, PortParams};
    use dataplane::params::{EalParams, Hugepages};
    let mut frames = Vec::new();
    generate(spec, |f| frames.push(f.to_vec()));
    let params = EalParams {
        cores: vec![0, 1],
        workers: 0,
        file_prefix: format!("rvs-pktgen-{}", std::process::id()),
        hugepages: Hugepages::Auto,
        memory_mb: 512,
        devices: vec![dev.to_string()],
        extra_args: vec![],
    };
    let _eal = Eal::init(&params)?;
    let pool = MbufPool::create("pktgen", 16383, 0)?;
    let mut port = Port::start(
        &PortParams {
            name: "tx".into(),
            device: dev.into(),
            queues: 1,
            rx_desc: 512,
            tx_desc: 1024,
            promiscuous: false,
        },
        pool,
    )?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let duration = match (a.count, a.seconds) {
        (_, Some(s)) => Some(std::time::Duration::from_secs_f64(s)),
        (Some(_), None) => None,
        (None, None) => Some(std::time::Duration::from_secs(10)),
    };
    let until = rvs_bench::tx::Until {
        count: a.count,
        duration,
    };
    let r = rvs_bench::tx::transmit(&mut port, pool, &frames, a.rate, until, &stop);
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    println!(
        "sent {} frames in {:.3} s ({:.0} pps), {} not taken",
        r.sent,
        secs,
        r.sent as f64 / secs,
        r.dropped
    );
    drop(port);
    Ok(())
}
