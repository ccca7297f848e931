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
    #[arg(long, short)]
    out: PathBuf,
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
    let file = std::fs::File::create(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
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
        return Err(e).with_context(|| format!("writing {}", a.out.display()));
    }
    w.flush()?;
    eprintln!(
        "{}: {n} frames ({:?}, {} flows, {} B)",
        a.out.display(),
        a.profile,
        a.flows,
        a.size
    );
    Ok(())
}
