//! rvsadm: the administration CLI of rvsd. It will speak ipvsadm's command line for
//! virtual services; today it reads the daemon's status and dataplane counters and asks
//! for a reload.

use anyhow::Result;
use clap::{ArgGroup, Parser};
use ctrlplane::ctl::{self, Counters, Request, Response, Status};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "rvsadm", version = rvs::VERSION, about = "Administer rvsd, the Rust Virtual Server daemon")]
#[command(group(ArgGroup::new("command").required(true).args(["status", "counters", "reload"])))]
struct Args {
    /// Show the daemon, its ports and EAL arguments.
    #[arg(long)]
    status: bool,
    /// Show per-worker and per-port packet counters and drops by reason.
    #[arg(long)]
    counters: bool,
    /// Re-read the daemon's configuration file and apply it (like SIGHUP).
    #[arg(long)]
    reload: bool,
    /// Print the raw JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    /// rvsd's control socket.
    #[arg(
        long,
        value_name = "PATH",
        env = "RVS_SOCKET",
        default_value = "/run/rvs/rvsd.sock"
    )]
    socket: PathBuf,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("rvsadm: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let req = if args.status {
        Request::Status
    } else if args.counters {
        Request::Counters
    } else {
        Request::Reload
    };
    let resp = ctl::call(&args.socket, &req)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
        return Ok(());
    }
    match resp {
        Response::Status(s) => print!("{}", format_status(&s)),
        Response::Counters(c) => print!("{}", format_counters(&c)),
        Response::Services { services } => println!("{}", serde_json::to_string_pretty(&services)?),
        Response::Reloaded { generation } => {
            println!("configuration reloaded (generation {generation})")
        }
        Response::Error { message } => anyhow::bail!("rvsd answered: {message}"),
    }
    Ok(())
}

fn format_status(s: &Status) -> String {
    let mut o = format!(
        "rvsd {} pid {} up {}s, {} worker(s), config {} (generation {})\n",
        s.version, s.pid, s.uptime_s, s.workers, s.config, s.generation
    );
    for p in &s.ports {
        o += &format!(
            "port {:<8} {:<17} mtu {:<5} {}  [{}]\n",
            p.name,
            p.mac,
            p.mtu,
            p.addresses.join(" "),
            p.device
        );
    }
    o += &format!("EAL: {}\n", s.eal_args.join(" "));
    o
}

fn format_counters(c: &Counters) -> String {
    let mut o = format!(
        "{:<7} {:>12} {:>14} {:>12} {:>14} {:>6}\n",
        "Worker", "RxPkts", "RxBytes", "TxPkts", "TxBytes", "Gen"
    );
    for w in &c.workers {
        o += &format!(
            "{:<7} {:>12} {:>14} {:>12} {:>14} {:>6}\n",
            w.worker, w.rx_packets, w.rx_bytes, w.tx_packets, w.tx_bytes, w.generation
        );
    }
    o += &format!(
        "\n{:<7} {:<9} {:>12} {:>14} {:>12} {:>14} {:>10}\n",
        "Worker", "Port", "RxPkts", "RxBytes", "TxPkts", "TxBytes", "TxDropped"
    );
    for w in &c.workers {
        for p in &w.ports {
            o += &format!(
                "{:<7} {:<9} {:>12} {:>14} {:>12} {:>14} {:>10}\n",
                w.worker, p.port, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, p.tx_dropped
            );
        }
    }
    o += "\nAnswered:\n";
    let sum = |f: fn(&ctl::WorkerCounters) -> u64| c.workers.iter().map(f).sum::<u64>();
    o += &format!("  arp_replies {:>14}\n", sum(|w| w.arp_replies));
    o += &format!("  arp_requests {:>13}\n", sum(|w| w.arp_requests));
    o += &format!(
        "  arp_replies_received {:>5}\n",
        sum(|w| w.arp_replies_received)
    );
    o += &format!("  icmp_echo_replies {:>8}\n", sum(|w| w.icmp_echo_replies));
    o += "\nDrops:\n";
    let mut any = false;
    for r in dataplane::stats::DropReason::ALL {
        let n = c.drops(r.name());
        if n > 0 {
            any = true;
            o += &format!("  {:<20} {:>12}  {}\n", r.name(), n, r.describe());
        }
    }
    if !any {
        o += "  (none)\n";
    }
    o
}
