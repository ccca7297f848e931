//! rvsadm: administers rvsd with ipvsadm's command line and output, plus a few rvs
//! options (--status, --counters, --reload, --save-config, --socket, --json).

use ctrlplane::ctl::{self, Counters, Request, Response, Status};
use ctrlplane::ipvsadm::{format, parse, Command};
use std::io::Read;
use std::path::PathBuf;

const USAGE: &str = "rvsadm (ipvsadm-compatible administration of rvsd)
Usage:
  rvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags] [--laddr ADDR[,ADDR...]] [--toa]
  rvsadm -D virtual-service
  rvsadm -C
  rvsadm -R
  rvsadm -S [-n]
  rvsadm -a|e virtual-service -r server-address [options]
  rvsadm -d virtual-service -r server-address
  rvsadm -L|l [virtual-service] [options]
  rvsadm -Z [virtual-service]
  rvsadm --set tcp tcpfin udp
  rvsadm --start-daemon master|backup [--mcast-interface port] [--syncid N] | --stop-daemon master|backup
  rvsadm -L --daemon
  rvsadm --status | --counters | --health | --vrrp | --reload | --save-config FILE
  rvsadm --convert-keepalived FILE [--interfaces eth0=lan0[,...]] [--config RVS.yaml] [--config-id ID]
Options:
  --tcp-service  -t service-address   service-address is host[:port]
  --udp-service  -u service-address
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos (default wlc)
  --persistent   -p [timeout]         persistent service (default 360 s)
  --netmask      -M netmask           persistent granularity mask
  --sched-flags  -b flags             sh-fallback, sh-port, mh-fallback, mh-port
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           full NAT (rvs), with the service's --laddr local addresses
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --numeric      -n                   numeric output of addresses and ports
  --connection   -c                   output of current IPVS connections
  --stats / --rate / --thresholds / --persistent-conn / --timeout / --exact / --sort
  --socket PATH                       rvsd's control socket (or RVS_SOCKET; default /run/rvs/rvsd.sock)
  --json                              raw JSON answers for --status, --counters, --health and --vrrp
  --convert-keepalived FILE           print a keepalived.conf as rvs YAML (no rvsd needed): with
                                      --config, the whole configuration as --save-config writes it
";

struct Opts {
    socket: PathBuf,
    json: bool,
    /// --convert-keepalived's: keepalived interface names onto rvs ports, the rvs YAML
    /// to merge into, and the config id for `@` lines.
    interfaces: std::collections::BTreeMap<String, String>,
    base: Option<PathBuf>,
    config_id: Option<String>,
    rvs_cmd: Option<RvsCmd>,
    rest: Vec<String>,
}

enum RvsCmd {
    Status,
    Counters,
    Reload,
    SaveConfig(PathBuf),
    Health,
    Vrrp,
    ConvertKeepalived(PathBuf),
}

fn usage_error(msg: &str) -> ! {
    eprintln!("rvsadm: {msg}\nTry `rvsadm -h' or 'rvsadm --help' for more information.");
    std::process::exit(2);
}

fn split_options(args: Vec<String>) -> Opts {
    let mut o = Opts {
        socket: std::env::var_os("RVS_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/rvs/rvsd.sock")),
        json: false,
        interfaces: Default::default(),
        base: None,
        config_id: None,
        rvs_cmd: None,
        rest: Vec::new(),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut set = |c: RvsCmd| {
            if o.rvs_cmd.is_some() {
                usage_error("only one command may be given at a time");
            }
            o.rvs_cmd = Some(c);
        };
        match a.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "-v" | "--version" => {
                println!(
                    "rvsadm {} (ipvsadm 1.31 command line, IPVS {})",
                    rvs::VERSION,
                    format::IPVS_VERSION
                );
                std::process::exit(0);
            }
            "--socket" => {
                o.socket = it
                    .next()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| usage_error("--socket needs a path"))
            }
            s if s.starts_with("--socket=") => o.socket = PathBuf::from(&s[9..]),
            "--json" => o.json = true,
            "--status" => set(RvsCmd::Status),
            "--counters" => set(RvsCmd::Counters),
            "--reload" => set(RvsCmd::Reload),
            "--health" => set(RvsCmd::Health),
            "--vrrp" => set(RvsCmd::Vrrp),
            "--convert-keepalived" => {
                let f = it
                    .next()
                    .unwrap_or_else(|| usage_error("--convert-keepalived needs a file name"));
                set(RvsCmd::ConvertKeepalived(PathBuf::from(f)))
            }
            "--interfaces" => {
                let list = it
                    .next()
                    .unwrap_or_else(|| usage_error("--interfaces needs eth0=lan0[,...]"));
                for pair in list.split(',') {
                    let Some((k, v)) = pair.split_once('=') else {
                        usage_error(&format!("--interfaces: {pair:?} is not NAME=PORT"));
                    };
                    o.interfaces.insert(k.to_string(), v.to_string());
                }
            }
            "--config" => {
                o.base =
                    Some(PathBuf::from(it.next().unwrap_or_else(|| {
                        usage_error("--config needs an rvs YAML file")
                    })))
            }
            "--config-id" => {
                o.config_id = Some(
                    it.next()
                        .unwrap_or_else(|| usage_error("--config-id needs an id")),
                )
            }
            "--save-config" => {
                let f = it
                    .next()
                    .unwrap_or_else(|| usage_error("--save-config needs a file name"));
                set(RvsCmd::SaveConfig(PathBuf::from(f)))
            }
            _ => o.rest.push(a),
        }
    }
    if o.rvs_cmd.is_some() && !o.rest.is_empty() {
        usage_error(&format!(
            "unexpected arguments with an rvs command: {}",
            o.rest.join(" ")
        ));
    }
    o
}

fn main() {
    let o = split_options(std::env::args().skip(1).collect());
    let code = match run(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    };
    std::process::exit(code);
}

fn call(o: &Opts, req: Request) -> Result<Response, String> {
    ctl::call(&o.socket, &req).map_err(|e| match e {
        ctl::CtlError::Remote(m) => m,
        e => format!("rvsadm: {e}"),
    })
}

fn run(o: &Opts) -> Result<(), String> {
    if let Some(c) = &o.rvs_cmd {
        return run_rvs(o, c);
    }
    let cmd = parse::parse(&o.rest).unwrap_or_else(|e| usage_error(&e.0));
    match cmd {
        Command::List(key, f) => {
            if f.daemon {
                let Response::Sync { daemon } = call(o, Request::Sync)? else {
                    return Err("unexpected answer".into());
                };
                print!("{}", format_daemon(daemon.as_ref()));
            } else if f.timeout {
                let Response::Listing {
                    timeouts: (a, b, c),
                    ..
                } = call(o, Request::List { service: None })?
                else {
                    return Err("unexpected answer".into());
                };
                print!("{}", format::timeouts(a, b, c));
            } else if f.connections {
                let Response::Connections { mut conns } = call(o, Request::Connections)? else {
                    return Err("unexpected answer".into());
                };
                conns.sort_by_key(|c| {
                    (
                        c.proto,
                        u32::from(c.caddr),
                        c.cport,
                        u32::from(c.vaddr),
                        c.vport,
                    )
                });
                print!("{}", format::connections(&conns, f.numeric));
            } else {
                let Response::Listing { services, size, .. } =
                    call(o, Request::List { service: key })?
                else {
                    return Err("unexpected answer".into());
                };
                print!("{}", format::list(&services, &f, size));
            }
        }
        Command::Save(numeric) => {
            let Response::Listing { services, .. } = call(o, Request::Save)? else {
                return Err("unexpected answer".into());
            };
            print!("{}", format::save(&services, numeric));
        }
        Command::Restore => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| format!("rvsadm: reading standard input: {e}"))?;
            let mut commands = Vec::new();
            for (n, line) in input.lines().enumerate() {
                match parse::parse_line(line) {
                    Ok(Some(c)) if c.is_change() => commands.push(c),
                    Ok(Some(_)) => {
                        return Err(format!(
                            "rvsadm: line {}: only changes can be restored: {line}",
                            n + 1
                        ))
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("rvsadm: line {}: {}: {line}", n + 1, e.0)),
                }
            }
            call(o, Request::Ipvs { commands })?;
        }
        c => {
            call(o, Request::Ipvs { commands: vec![c] })?;
        }
    }
    Ok(())
}

/// `--convert-keepalived FILE`: local, no rvsd needed.
fn convert_keepalived(o: &Opts, file: &std::path::Path) -> Result<(), String> {
    let opts = ctrlplane::keepalived::Options {
        interfaces: &o.interfaces,
        config_id: o
            .config_id
            .clone()
            .unwrap_or_else(ctrlplane::keepalived::default_config_id),
    };
    let (yaml, warnings) = ctrlplane::keepalived::load::to_yaml(file, &opts, o.base.as_deref())?;
    for w in warnings {
        eprintln!("rvsadm: {w} (accepted, no effect)");
    }
    print!("{yaml}");
    Ok(())
}

fn run_rvs(o: &Opts, c: &RvsCmd) -> Result<(), String> {
    let req = match c {
        RvsCmd::Status => Request::Status,
        RvsCmd::Counters => Request::Counters,
        RvsCmd::Reload => Request::Reload,
        RvsCmd::SaveConfig(_) => Request::ConfigYaml,
        RvsCmd::Health => Request::Health,
        RvsCmd::Vrrp => Request::Vrrp,
        RvsCmd::ConvertKeepalived(file) => return convert_keepalived(o, file),
    };
    let resp = call(o, req)?;
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&resp).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    match (resp, c) {
        (Response::Status(s), _) => print!("{}", format_status(&s)),
        (Response::Counters(c), _) => print!("{}", format_counters(&c)),
        (Response::Health { checks }, _) => print!("{}", format_health(&checks)),
        (Response::Vrrp { instances }, _) => print!("{}", format_vrrp(&instances)),
        (Response::Reloaded { generation }, _) => {
            println!("configuration reloaded (generation {generation})")
        }
        (Response::ConfigYaml { yaml }, RvsCmd::SaveConfig(path)) => {
            std::fs::write(path, yaml)
                .map_err(|e| format!("rvsadm: cannot write {}: {e}", path.display()))?;
            println!("running configuration saved to {}", path.display());
        }
        (other, _) => return Err(format!("rvsadm: unexpected answer {other:?}")),
    }
    Ok(())
}

/// ipvsadm's `-L --daemon`: a line per running sync daemon.
fn format_daemon(d: Option<&ctrlplane::sync::SyncStatus>) -> String {
    let Some(d) = d else {
        return String::new();
    };
    let mut o = String::new();
    for (on, role) in [(d.master, "master"), (d.backup, "backup")] {
        if on {
            o += &format!(
                "{role} sync daemon (mcast={}, syncid={})\n",
                d.interface, d.syncid
            );
        }
    }
    o
}

/// One line per VRRP instance: its state, priority, master and timers.
fn format_vrrp(v: &[ctrlplane::vrrp::InstanceStatus]) -> String {
    if v.is_empty() {
        return "no VRRP instances configured\n".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut o = format!(
        "{:<12} {:<8} {:>4} {:>2} {:<7} {:>9} {:<15} {:>7} {:>8} {:>6}  {}\n",
        "Instance",
        "Port",
        "VRID",
        "v",
        "State",
        "Priority",
        "Master",
        "Advert",
        "Since(s)",
        "Trans",
        "Virtual addresses"
    );
    for i in v {
        let since = if i.last_transition_unix > 0.0 {
            format!("{:.0}", (now - i.last_transition_unix).max(0.0))
        } else {
            "-".into()
        };
        o += &format!(
            "{:<12} {:<8} {:>4} {:>2} {:<7} {:>4}/{:<4} {:<15} {:>6}s {:>8} {:>6}  {}\n",
            i.name,
            i.interface,
            i.vrid,
            i.version,
            i.state.word(),
            i.priority,
            i.base_priority,
            i.master
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            i.advert_int,
            since,
            i.transitions,
            i.virtual_ipaddress.join(" ")
        );
    }
    o
}

/// One line per checker: what it checks, its state and its last result.
fn format_health(checks: &[ctrlplane::health::CheckStatus]) -> String {
    if checks.is_empty() {
        return "no health checks configured\n".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut o = format!(
        "{:<26} {:<21} {:<10} {:<5} {:>5} {:>9} {:>8}  {}\n",
        "Service", "RealServer", "Check", "State", "Fails", "Took(ms)", "Since(s)", "Last result"
    );
    for c in checks {
        let since = if c.last_change_unix > 0.0 {
            format!("{:.0}", (now - c.last_change_unix).max(0.0))
        } else {
            "-".into()
        };
        o += &format!(
            "{:<26} {:<21} {:<10} {:<5} {:>5} {:>9.1} {:>8}  {}\n",
            c.service,
            c.real_server,
            c.check,
            if c.up { "UP" } else { "DOWN" },
            c.consecutive_failures,
            c.last_duration_ms,
            since,
            if c.last_result.is_empty() {
                "(not checked yet)"
            } else {
                &c.last_result
            }
        );
    }
    o
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
        "{:<7} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>6}\n",
        "Worker", "RxPkts", "RxBytes", "TxPkts", "TxBytes", "Conns", "Redirects", "Gen"
    );
    for w in &c.workers {
        o += &format!(
            "{:<7} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>6}\n",
            w.worker,
            w.rx_packets,
            w.rx_bytes,
            w.tx_packets,
            w.tx_bytes,
            w.connections,
            w.redirected_out,
            w.generation
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
