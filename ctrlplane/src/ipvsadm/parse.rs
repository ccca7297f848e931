//! ipvsadm 1.31's command line, plus rvs's additions (`--fullnat`, `--laddr`, `--toa`).

use super::{Command, ListFormat, ServerOpts, ServiceKey, ServiceOpts};
use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::{SchedFlags, SchedKind};
use dataplane::ipvs::service::Proto;
use std::net::Ipv4Addr;

/// A command-line error, worded like ipvsadm's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(m.into()))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arg {
    None,
    Required,
    Optional,
}

/// (short, long, argument, name used in messages)
const OPTIONS: &[(Option<char>, &str, Arg, &str)] = &[
    (Some('A'), "add-service", Arg::None, "add-service"),
    (Some('E'), "edit-service", Arg::None, "edit-service"),
    (Some('D'), "delete-service", Arg::None, "delete-service"),
    (Some('C'), "clear", Arg::None, "clear"),
    (Some('R'), "restore", Arg::None, "restore"),
    (Some('S'), "save", Arg::None, "save"),
    (Some('a'), "add-server", Arg::None, "add-server"),
    (Some('e'), "edit-server", Arg::None, "edit-server"),
    (Some('d'), "delete-server", Arg::None, "delete-server"),
    (Some('L'), "list", Arg::None, "list"),
    (Some('l'), "list", Arg::None, "list"),
    (Some('Z'), "zero", Arg::None, "zero"),
    (None, "set", Arg::Required, "set"),
    (None, "start-daemon", Arg::Required, "start-daemon"),
    (None, "stop-daemon", Arg::Required, "stop-daemon"),
    (None, "mcast-interface", Arg::Required, "mcast-interface"),
    (None, "syncid", Arg::Required, "syncid"),
    (None, "daemon", Arg::None, "daemon"),
    (Some('t'), "tcp-service", Arg::Required, "tcp-service"),
    (Some('u'), "udp-service", Arg::Required, "udp-service"),
    (None, "sctp-service", Arg::Required, "sctp-service"),
    (Some('f'), "fwmark-service", Arg::Required, "fwmark-service"),
    (Some('s'), "scheduler", Arg::Required, "scheduler"),
    (Some('p'), "persistent", Arg::Optional, "persistent"),
    (Some('M'), "netmask", Arg::Required, "netmask"),
    (Some('b'), "sched-flags", Arg::Required, "sched-flags"),
    (Some('r'), "real-server", Arg::Required, "real-server"),
    (Some('g'), "gatewaying", Arg::None, "forward"),
    (Some('i'), "ipip", Arg::None, "forward"),
    (Some('m'), "masquerading", Arg::None, "forward"),
    (None, "fullnat", Arg::None, "forward"),
    (Some('w'), "weight", Arg::Required, "weight"),
    (Some('x'), "u-threshold", Arg::Required, "u-threshold"),
    (Some('y'), "l-threshold", Arg::Required, "l-threshold"),
    (None, "laddr", Arg::Required, "laddr"),
    (None, "toa", Arg::None, "toa"),
    (Some('n'), "numeric", Arg::None, "numeric"),
    (Some('c'), "connection", Arg::None, "connection"),
    (None, "stats", Arg::None, "stats"),
    (None, "rate", Arg::None, "rate"),
    (None, "thresholds", Arg::None, "thresholds"),
    (None, "persistent-conn", Arg::None, "persistent-conn"),
    (None, "timeout", Arg::None, "timeout"),
    (None, "exact", Arg::None, "exact"),
    (None, "sort", Arg::None, "sort"),
    (None, "nosort", Arg::None, "nosort"),
    (Some('o'), "ops", Arg::None, "ops"),
    (Some('6'), "ipv6", Arg::None, "ipv6"),
];

const COMMANDS: &[&str] = &[
    "add-service",
    "edit-service",
    "delete-service",
    "clear",
    "restore",
    "save",
    "add-server",
    "edit-server",
    "delete-server",
    "list",
    "zero",
    "set",
    "start-daemon",
    "stop-daemon",
];

/// Which options each command accepts (ipvsadm's commands_v_options table, in words).
fn allowed(cmd: &str, opt: &str) -> bool {
    let svc = ["tcp-service", "udp-service"];
    let list = [
        "numeric",
        "connection",
        "stats",
        "rate",
        "thresholds",
        "persistent-conn",
        "timeout",
        "exact",
        "sort",
        "nosort",
        "daemon",
    ];
    match cmd {
        "add-service" | "edit-service" => {
            svc.contains(&opt)
                || [
                    "scheduler",
                    "persistent",
                    "netmask",
                    "sched-flags",
                    "laddr",
                    "toa",
                    "ops",
                ]
                .contains(&opt)
        }
        "delete-service" => svc.contains(&opt),
        "add-server" | "edit-server" => {
            svc.contains(&opt)
                || [
                    "real-server",
                    "forward",
                    "weight",
                    "u-threshold",
                    "l-threshold",
                ]
                .contains(&opt)
        }
        "delete-server" => svc.contains(&opt) || opt == "real-server",
        "list" => svc.contains(&opt) || list.contains(&opt),
        "save" => opt == "numeric",
        "start-daemon" => ["mcast-interface", "syncid"].contains(&opt),
        "zero" => svc.contains(&opt),
        _ => false,
    }
}

/// One parsed option: its long name, the name used in messages, and its value.
type Token = (&'static str, &'static str, Option<String>);

/// Splits the arguments into options with values, expanding short clusters.
fn tokens(args: &[String]) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(&(_, lname, arg, msg)) = OPTIONS.iter().find(|o| o.1 == name) else {
                return err(format!("unrecognized option '--{name}'"));
            };
            let value = match (arg, inline) {
                (Arg::None, Some(_)) => return err(format!("option '--{name}' takes no argument")),
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => {
                    if lname == "set" {
                        // --set takes three values.
                        let vals: Vec<String> =
                            args.get(i..i + 3).map(|v| v.to_vec()).unwrap_or_default();
                        if vals.len() != 3 {
                            return err("--set needs three values: tcp tcpfin udp");
                        }
                        i += 3;
                        Some(vals.join(" "))
                    } else {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            ParseError(format!("option '--{name}' needs an argument"))
                        })?;
                        i += 1;
                        Some(v)
                    }
                }
                (Arg::Optional, None) => match args.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.clone())
                    }
                    _ => None,
                },
            };
            out.push((lname, msg, value));
        } else if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) {
            let chars: Vec<char> = cluster.chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                let Some(&(_, lname, arg, msg)) = OPTIONS.iter().find(|o| o.0 == Some(c)) else {
                    return err(format!("invalid option -- '{c}'"));
                };
                let rest: String = chars[k..].iter().collect();
                let value = match arg {
                    Arg::None => None,
                    Arg::Required | Arg::Optional if !rest.is_empty() => {
                        k = chars.len();
                        Some(rest)
                    }
                    Arg::Required => {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            ParseError(format!("option requires an argument -- '{c}'"))
                        })?;
                        i += 1;
                        Some(v)
                    }
                    Arg::Optional => match args.get(i) {
                        Some(v) if !v.starts_with('-') => {
                            i += 1;
                            Some(v.clone())
                        }
                        _ => None,
                    },
                };
                out.push((lname, msg, value));
            }
        } else {
            return err(format!("unexpected argument '{a}'"));
        }
    }
    Ok(out)
}

/// The services(5) file that names ports.
const SERVICES: &str = "/etc/services";

/// The text of /etc/services, read only when a port is given by name.
fn etc_services() -> Option<String> {
    std::fs::read_to_string(SERVICES).ok()
}

/// A port number, or a service name looked up in the services(5) text that `services`
/// gives.
fn parse_port(s: &str, proto: Proto, services: &dyn Fn() -> Option<String>) -> Option<u16> {
    if let Ok(p) = s.parse::<u16>() {
        return Some(p);
    }
    port_by_name(&services()?, s, proto)
}

/// The port of service `s` (its name or an alias) for `proto` in a services(5) text:
/// `name port/proto [aliases...] [# comment]`, the first match wins (as getservbyname).
fn port_by_name(text: &str, s: &str, proto: Proto) -> Option<u16> {
    let want = match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    text.lines().find_map(|l| {
        let l = l.split('#').next()?;
        let mut f = l.split_whitespace();
        let name = f.next()?;
        let (port, p) = f.next()?.split_once('/')?;
        let aliases: Vec<&str> = f.collect();
        ((name == s || aliases.contains(&s)) && p == want)
            .then(|| port.parse().ok())
            .flatten()
    })
}

/// `host[:port]` with a numeric IPv4 address.
fn parse_endpoint(
    s: &str,
    proto: Proto,
    what: &str,
    services: &dyn Fn() -> Option<String>,
) -> Result<(Ipv4Addr, Option<u16>), ParseError> {
    if s.starts_with('[') {
        return err(format!("IPv6 {what} addresses are not supported yet: {s}"));
    }
    let (h, p) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let addr: Ipv4Addr = h.parse().map_err(|_| {
        ParseError(format!(
            "illegal {what} address {h:?}: give a numeric IPv4 address"
        ))
    })?;
    let port = match p {
        Some(p) => Some(
            parse_port(p, proto, services)
                .ok_or_else(|| ParseError(format!("illegal {what} port {p:?}")))?,
        ),
        None => None,
    };
    Ok((addr, port))
}

fn number(v: &str, what: &str, max: u64) -> Result<u32, ParseError> {
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(n as u32),
        _ => err(format!("illegal {what} specified: {v:?}")),
    }
}

/// Parses one ipvsadm command line (without the program name).
pub fn parse(args: &[String]) -> Result<Command, ParseError> {
    parse_with(args, &etc_services)
}

/// `parse`, with port names looked up in the services(5) text that `services` gives.
fn parse_with(
    args: &[String],
    services: &dyn Fn() -> Option<String>,
) -> Result<Command, ParseError> {
    let toks = tokens(args)?;
    let cmds: Vec<&str> = toks
        .iter()
        .filter(|t| COMMANDS.contains(&t.0))
        .map(|t| t.0)
        .collect();
    let cmd = match cmds.as_slice() {
        [] if toks.is_empty() => "list",
        [] => "list",
        [c] => *c,
        _ => return err("only one command may be given at a time"),
    };
    let mut key_proto: Option<(Proto, String)> = None;
    let mut sopts = ServiceOpts::default();
    let mut ropts = ServerOpts::default();
    let mut rs: Option<String> = None;
    let mut fmt = ListFormat::default();
    let mut set = None;
    let (mut daemon_role, mut mcast, mut syncid) = (None, None, 0u8);
    // Commands that carry a value (--set's three, --start-daemon's role).
    let valued = |n: &str| ["set", "start-daemon", "stop-daemon"].contains(&n);
    for (name, msg, value) in &toks {
        if COMMANDS.contains(name) && !valued(name) {
            continue;
        }
        match *name {
            "sctp-service" => return err("SCTP services are not supported by rvs"),
            "fwmark-service" => {
                return err(
                    "firewall-mark services are not supported by rvs (rvs classifies by VIP:port)",
                )
            }
            "ipv6" => return err("IPv6 services are not supported yet"),
            "ops" => return err("one-packet scheduling (-o) is not supported yet"),
            _ => {}
        }
        if !valued(name) && !allowed(cmd, msg) {
            return err(format!("Illegal '{msg}' option with the '{cmd}' command"));
        }
        let v = value.clone().unwrap_or_default();
        match *name {
            "set" => set = Some(v),
            "start-daemon" | "stop-daemon" => {
                daemon_role = Some(match v.as_str() {
                    "master" => true,
                    "backup" => false,
                    _ => return err(format!("{v:?}: the sync daemon is master or backup")),
                })
            }
            "mcast-interface" => mcast = Some(v),
            "syncid" => syncid = number(&v, "syncid", 255)? as u8,
            "daemon" => fmt.daemon = true,
            "tcp-service" | "udp-service" => {
                if key_proto.is_some() {
                    return err("only one service may be given");
                }
                key_proto = Some((
                    if *name == "tcp-service" {
                        Proto::Tcp
                    } else {
                        Proto::Udp
                    },
                    v,
                ));
            }
            "scheduler" => {
                sopts.scheduler = Some(
                    SchedKind::from_name(&v)
                        .ok_or_else(|| ParseError(format!("Scheduler not found: {v}")))?,
                )
            }
            "persistent" => {
                sopts.persistent = Some(if v.is_empty() {
                    360
                } else {
                    number(&v, "persistence timeout", u64::from(u32::MAX))?
                })
            }
            "netmask" => {
                sopts.netmask = Some(
                    v.parse()
                        .map_err(|_| ParseError(format!("illegal netmask {v:?}")))?,
                )
            }
            "sched-flags" => {
                let flags: Vec<String> = v.split(',').map(str::to_string).collect();
                if let Some(bad) = flags.iter().find(|f| SchedFlags::parse(f).is_none()) {
                    return err(format!("invalid scheduler flag {bad:?}: use sh-fallback, sh-port, mh-fallback or mh-port"));
                }
                sopts.sched_flags = Some(flags);
            }
            "laddr" => {
                let l: Result<Vec<Ipv4Addr>, _> =
                    v.split(',').map(|a| a.parse::<Ipv4Addr>()).collect();
                sopts.laddrs =
                    Some(l.map_err(|_| ParseError(format!("illegal local address list {v:?}")))?);
            }
            "toa" => sopts.toa = true,
            "real-server" => rs = Some(v),
            "gatewaying" => ropts.fwd = Some(Fwd::Dr),
            "ipip" => ropts.fwd = Some(Fwd::Tun),
            "masquerading" => ropts.fwd = Some(Fwd::Nat),
            "fullnat" => ropts.fwd = Some(Fwd::FullNat),
            "weight" => ropts.weight = Some(number(&v, "weight", 65535)?),
            "u-threshold" => {
                ropts.u_threshold = Some(number(&v, "upper threshold", u64::from(u32::MAX))?)
            }
            "l-threshold" => {
                ropts.l_threshold = Some(number(&v, "lower threshold", u64::from(u32::MAX))?)
            }
            "numeric" => fmt.numeric = true,
            "connection" => fmt.connections = true,
            "stats" => fmt.stats = true,
            "rate" => fmt.rate = true,
            "thresholds" => fmt.thresholds = true,
            "persistent-conn" => fmt.persistent_conn = true,
            "timeout" => fmt.timeout = true,
            "exact" => fmt.exact = true,
            "sort" => fmt.sort = true,
            "nosort" => fmt.sort = false,
            _ => {}
        }
    }
    let key = match &key_proto {
        Some((proto, s)) => {
            let (addr, port) = parse_endpoint(s, *proto, "service", services)?;
            Some(ServiceKey {
                proto: *proto,
                addr,
                port: port.unwrap_or(0),
            })
        }
        None => None,
    };
    let need_key = || {
        key.ok_or_else(|| {
            ParseError("No service specified: give -t VIP:PORT or -u VIP:PORT".into())
        })
    };
    let server = |k: ServiceKey| -> Result<(Ipv4Addr, u16), ParseError> {
        let s = rs
            .as_deref()
            .ok_or_else(|| ParseError("No destination specified: give -r RIP[:PORT]".into()))?;
        let (a, p) = parse_endpoint(s, k.proto, "destination", services)?;
        Ok((a, p.unwrap_or(k.port)))
    };
    Ok(match cmd {
        "add-service" => Command::AddService(need_key()?, sopts),
        "edit-service" => Command::EditService(need_key()?, sopts),
        "delete-service" => Command::DeleteService(need_key()?),
        "clear" => Command::Clear,
        "restore" => Command::Restore,
        "save" => Command::Save(fmt.numeric),
        "add-server" => {
            let k = need_key()?;
            let (a, p) = server(k)?;
            Command::AddServer(k, a, p, ropts)
        }
        "edit-server" => {
            let k = need_key()?;
            let (a, p) = server(k)?;
            Command::EditServer(k, a, p, ropts)
        }
        "delete-server" => {
            let k = need_key()?;
            let (a, p) = server(k)?;
            Command::DeleteServer(k, a, p)
        }
        "zero" => Command::Zero(key),
        "set" => {
            let v: Vec<&str> = set.as_deref().unwrap_or("").split_whitespace().collect();
            let n = |s: &str| number(s, "timeout", u64::from(u32::MAX));
            match v.as_slice() {
                [a, b, c] => Command::SetTimeouts(n(a)?, n(b)?, n(c)?),
                _ => return err("--set needs three values: tcp tcpfin udp"),
            }
        }
        "start-daemon" => Command::StartDaemon {
            master: daemon_role.unwrap_or(true),
            interface: mcast,
            syncid,
        },
        "stop-daemon" => Command::StopDaemon {
            master: daemon_role.unwrap_or(true),
        },
        _ => Command::List(key, fmt),
    })
}

/// Parses one line of `-R` input: an ipvsadm command with or without the leading
/// program name; blank lines and comments give None.
pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
    let mut words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    if words.first().is_some_and(|w| w.starts_with('#')) || words.is_empty() {
        return Ok(None);
    }
    if words.first().is_some_and(|w| {
        w == "ipvsadm" || w == "rvsadm" || w.ends_with("/ipvsadm") || w.ends_with("/rvsadm")
    }) {
        words.remove(0);
    }
    parse(&words).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(&s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    }
    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            proto: Proto::Tcp,
            addr: Ipv4Addr::new(192, 0, 2, 10),
            port,
        }
    }

    #[test]
    fn services() {
        assert_eq!(
            p("-A -t 192.0.2.10:80 -s rr").unwrap(),
            Command::AddService(
                key(80),
                ServiceOpts {
                    scheduler: Some(SchedKind::Rr),
                    ..Default::default()
                }
            )
        );
        let c = p("--add-service --tcp-service=192.0.2.10:443 -s wlc -p 600 -M 255.255.255.0 -b sh-port,sh-fallback").unwrap();
        let Command::AddService(k, o) = c else {
            panic!()
        };
        assert_eq!(k, key(443));
        assert_eq!(
            (o.persistent, o.netmask),
            (Some(600), Some(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(o.sched_flags.unwrap(), vec!["sh-port", "sh-fallback"]);
        let Command::AddService(k, o) = p("-A -t 192.0.2.10 -p").unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.port, o.persistent),
            (0, Some(360)),
            "-p without a value is 360, a service without a port is port 0"
        );
        assert_eq!(
            p("-D -u 192.0.2.10:53").unwrap(),
            Command::DeleteService(ServiceKey {
                proto: Proto::Udp,
                addr: Ipv4Addr::new(192, 0, 2, 10),
                port: 53
            })
        );
        let Command::EditService(_, o) =
            p("-E -t 192.0.2.10:80 -s mh --laddr 198.18.0.3,198.18.0.4 --toa").unwrap()
        else {
            panic!()
        };
        assert_eq!(o.laddrs.unwrap().len(), 2);
        assert!(o.toa);
    }

    #[test]
    fn servers() {
        let Command::AddServer(k, a, port, o) =
            p("-a -t 192.0.2.10:80 -r 10.0.0.11 -m -w 3 -x 100 -y 50").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (k, a, port),
            (key(80), Ipv4Addr::new(10, 0, 0, 11), 80),
            "the server port defaults to the service's"
        );
        assert_eq!(
            o,
            ServerOpts {
                fwd: Some(Fwd::Nat),
                weight: Some(3),
                u_threshold: Some(100),
                l_threshold: Some(50)
            }
        );
        let Command::EditServer(_, _, port, o) =
            p("-e -t 192.0.2.10:80 -r 10.0.0.11:8080 --fullnat -w 0").unwrap()
        else {
            panic!()
        };
        assert_eq!((port, o.fwd, o.weight), (8080, Some(Fwd::FullNat), Some(0)));
        assert!(matches!(
            p("-d -t 192.0.2.10:80 -r 10.0.0.11").unwrap(),
            Command::DeleteServer(_, _, 80)
        ));
        assert_eq!(
            p("-a -t 192.0.2.10:80 -r 10.0.0.11 -g").unwrap(),
            p("--add-server -t 192.0.2.10:80 --real-server 10.0.0.11 --gatewaying").unwrap()
        );
    }

    #[test]
    fn lists_and_others() {
        let Command::List(None, f) = p("-Ln").unwrap() else {
            panic!()
        };
        assert!(f.numeric && !f.stats);
        let Command::List(Some(k), f) = p("-L -n -t 192.0.2.10:80 --stats --exact").unwrap() else {
            panic!()
        };
        assert_eq!(k, key(80));
        assert!(f.stats && f.exact);
        let Command::List(None, f) = p("-lnc").unwrap() else {
            panic!()
        };
        assert!(f.connections);
        assert!(
            matches!(p("").unwrap(), Command::List(None, _)),
            "no arguments lists, as ipvsadm"
        );
        assert_eq!(p("-S -n").unwrap(), Command::Save(true));
        assert_eq!(p("-C").unwrap(), Command::Clear);
        assert_eq!(p("-R").unwrap(), Command::Restore);
        assert_eq!(p("-Z").unwrap(), Command::Zero(None));
        assert_eq!(
            p("--set 3600 120 30").unwrap(),
            Command::SetTimeouts(3600, 120, 30)
        );
        assert!(matches!(
            p("-L --timeout").unwrap(),
            Command::List(None, ListFormat { timeout: true, .. })
        ));
        assert_eq!(
            p("--start-daemon master --mcast-interface lan0 --syncid 7").unwrap(),
            Command::StartDaemon {
                master: true,
                interface: Some("lan0".into()),
                syncid: 7
            }
        );
        assert_eq!(
            p("--stop-daemon backup").unwrap(),
            Command::StopDaemon { master: false }
        );
        assert!(p("--start-daemon both").is_err());
        assert!(matches!(
            p("-L --daemon").unwrap(),
            Command::List(None, ListFormat { daemon: true, .. })
        ));
    }

    #[test]
    fn errors_read_like_ipvsadm() {
        for (line, want) in [
            ("-A -s rr", "No service specified"),
            ("-a -t 192.0.2.10:80", "No destination specified"),
            (
                "-A -t 192.0.2.10:80 -s fastest",
                "Scheduler not found: fastest",
            ),
            (
                "-A -t 192.0.2.10:80 -w 3",
                "Illegal 'weight' option with the 'add-service' command",
            ),
            (
                "-a -t 192.0.2.10:80 -r 10.0.0.1 -s rr",
                "Illegal 'scheduler' option with the 'add-server' command",
            ),
            ("-A -D -t 192.0.2.10:80", "only one command"),
            (
                "-A -t 192.0.2.10:80 --bogus",
                "unrecognized option '--bogus'",
            ),
            ("-A -t 192.0.2.10:80 -q", "invalid option -- 'q'"),
            ("-A -t 192.0.2.300:80", "illegal service address"),
            ("-a -t 192.0.2.10:80 -r 10.0.0.1 -w 70000", "illegal weight"),
            ("-A -f 7 -s rr", "firewall-mark services are not supported"),
            ("-A -t 192.0.2.10:80 -b sh-nope", "invalid scheduler flag"),
            ("--set 1 2", "three values"),
        ] {
            let e = p(line).unwrap_err().0;
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn restore_lines() {
        assert_eq!(
            parse_line("ipvsadm -A -t 192.0.2.10:80 -s rr").unwrap(),
            p("-A -t 192.0.2.10:80 -s rr").ok()
        );
        assert_eq!(
            parse_line("-a -t 192.0.2.10:80 -r 10.0.0.11:80 -g -w 1").unwrap(),
            p("-a -t 192.0.2.10:80 -r 10.0.0.11:80 -g -w 1").ok()
        );
        assert_eq!(parse_line("   ").unwrap(), None);
        assert_eq!(parse_line("# comment").unwrap(), None);
    }

    fn with_services(s: &str) -> Result<Command, ParseError> {
        let args: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        parse_with(&args, &|| Some(crate::ipvsadm::SERVICES_TEXT.to_string()))
    }

    #[test]
    fn ports_by_name_in_a_services_text() {
        let t = crate::ipvsadm::SERVICES_TEXT;
        assert_eq!(port_by_name(t, "http", Proto::Tcp), Some(80));
        assert_eq!(port_by_name(t, "www", Proto::Tcp), Some(80), "an alias");
        assert_eq!(port_by_name(t, "webcache", Proto::Tcp), Some(8080));
        assert_eq!(port_by_name(t, "domain", Proto::Udp), Some(53));
        assert_eq!(port_by_name(t, "https", Proto::Udp), Some(443));
        assert_eq!(port_by_name(t, "http", Proto::Udp), None, "tcp only");
        assert_eq!(port_by_name(t, "ssh", Proto::Udp), None);
        assert_eq!(port_by_name(t, "HTTP", Proto::Tcp), None, "names are exact");
        assert_eq!(
            port_by_name(t, "Protocol", Proto::Tcp),
            None,
            "comments are not aliases"
        );
        assert_eq!(port_by_name(t, "Network", Proto::Tcp), None);
        assert_eq!(port_by_name("", "http", Proto::Tcp), None);
    }

    #[test]
    fn service_names_from_the_services_file() {
        let Command::AddService(k, _) = with_services("-A -t 192.0.2.10:http").unwrap() else {
            panic!()
        };
        assert_eq!(k.port, 80);
        let Command::AddServer(k, a, port, _) =
            with_services("-a -u 192.0.2.10:domain -r 10.0.0.11:https").unwrap()
        else {
            panic!()
        };
        assert_eq!((k.proto, k.port), (Proto::Udp, 53));
        assert_eq!((a, port), (Ipv4Addr::new(10, 0, 0, 11), 443));
        assert_eq!(
            with_services("-A -u 192.0.2.10:http"),
            Err(ParseError("illegal service port \"http\"".into())),
            "http is a tcp service only"
        );
        assert_eq!(
            with_services("-A -t 192.0.2.10:gopher"),
            Err(ParseError("illegal service port \"gopher\"".into()))
        );
        // Numbers need no services file; a name without one is an error.
        let none = |s: &str| {
            let args: Vec<String> = s.split_whitespace().map(str::to_string).collect();
            parse_with(&args, &|| None)
        };
        assert_eq!(none("-A -t 192.0.2.10:80"), p("-A -t 192.0.2.10:80"));
        assert_eq!(
            none("-A -t 192.0.2.10:http"),
            Err(ParseError("illegal service port \"http\"".into()))
        );
    }
}
