//! ipvsadm's listings, byte for byte (print_title, print_service_entry, print_largenum,
//! list_conn and the -S rules of ipvsadm 1.31), with `FullNat` / `--fullnat` for FULLNAT.

use super::{ListFormat, ServiceKey};
use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::service::Proto;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The version ipvsadm prints for the kernel's IPVS; rvs speaks the same protocol.
pub const IPVS_VERSION: &str = "1.2.1";

/// Five counters: totals (conns, inpkts, outpkts, inbytes, outbytes) or rates (cps,
/// inpps, outpps, inbps, outbps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Five(pub [u64; 5]);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub fwd: Fwd,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub active: u64,
    pub inactive: u64,
    pub persist: u64,
    pub stats: Five,
    pub rates: Five,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub key: ServiceKey,
    pub scheduler: String,
    pub flags: Vec<String>,
    /// (timeout, netmask)
    pub persistent: Option<(u32, Ipv4Addr)>,
    pub laddrs: Vec<Ipv4Addr>,
    pub toa: bool,
    pub stats: Five,
    pub rates: Five,
    pub servers: Vec<ServerView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnView {
    pub proto: Proto,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
    pub state: String,
    /// Seconds until expiry.
    pub expires: u32,
}

/// ipvsadm's print_largenum: 9 columns, K/M/G/T above 10^8 unless exact.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let s = i.to_string();
        let w = if s.len() <= 8 { 9 } else { s.len() + 1 };
        return format!("{i:>w$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// The services(5) file that names ports.
const SERVICES: &str = "/etc/services";

/// The service name of a port from /etc/services, as getservbyport would give.
fn port_name(port: u16, proto: Proto) -> Option<String> {
    port_name_in(&std::fs::read_to_string(SERVICES).ok()?, port, proto)
}

/// The service name of a port in a services(5) text (`name port/proto [aliases...]
/// [# comment]`): the first entry for the port and protocol.
fn port_name_in(text: &str, port: u16, proto: Proto) -> Option<String> {
    let want = format!(
        "{port}/{}",
        match proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    );
    text.lines().find_map(|l| {
        let mut f = l.split('#').next()?.split_whitespace();
        let name = f.next()?;
        (f.next()? == want).then(|| name.to_string())
    })
}

/// `addr:port`; without -n the port is named from /etc/services (addresses stay
/// numeric: rvs does no reverse DNS, which would stall on a director without resolvers).
pub fn addrport(addr: Ipv4Addr, port: u16, proto: Proto, numeric: bool) -> String {
    addrport_with(addr, port, proto, numeric, port_name)
}

/// `addrport`, with the port named by `name`.
fn addrport_with(
    addr: Ipv4Addr,
    port: u16,
    proto: Proto,
    numeric: bool,
    name: impl FnOnce(u16, Proto) -> Option<String>,
) -> String {
    if !numeric && port != 0 {
        if let Some(n) = name(port, proto) {
            return format!("{addr}:{n}");
        }
    }
    format!("{addr}:{port}")
}

fn svc_name(s: &ServiceView, numeric: bool) -> String {
    let mut n = format!(
        "{}  {}",
        s.key.proto.name(),
        addrport(s.key.addr, s.key.port, s.key.proto, numeric)
    );
    n.truncate(33);
    n
}

fn dest_name(s: &ServiceView, d: &ServerView, numeric: bool) -> String {
    let mut n = addrport(d.addr, d.port, s.key.proto, numeric);
    n.truncate(28);
    n
}

fn sorted_servers(s: &ServiceView) -> Vec<&ServerView> {
    let mut v: Vec<&ServerView> = s.servers.iter().collect();
    v.sort_by_key(|d| (u32::from(d.addr), d.port));
    v
}

/// `-L` (and `-l`) in every format but `-c` and `--timeout`. `size` is what ipvsadm shows
/// as the connection table size.
pub fn list(services: &[ServiceView], f: &ListFormat, size: usize) -> String {
    let mut o = format!("IP Virtual Server version {IPVS_VERSION} (size={size})\n");
    o += &if f.stats {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if f.rate {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if f.thresholds {
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if f.persistent_conn {
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string()
    };
    let mut svcs: Vec<&ServiceView> = services.iter().collect();
    if f.sort {
        svcs.sort_by_key(|s| (s.key.proto, u32::from(s.key.addr), s.key.port));
    }
    for s in svcs {
        let name = svc_name(s, f.numeric);
        if f.stats {
            let _ = write!(o, "{name:<33}");
            for v in s.stats.0 {
                o += &largenum(v, f.exact);
            }
        } else if f.rate {
            let _ = write!(o, "{name:<33}");
            for v in s.rates.0 {
                o += &largenum(v, f.exact);
            }
        } else {
            let _ = write!(o, "{name} {}", s.scheduler);
            service_suffix(&mut o, s);
        }
        o.push('\n');
        for d in sorted_servers(s) {
            let dn = dest_name(s, d, f.numeric);
            if f.stats {
                let _ = write!(o, "  -> {dn:<28}");
                for v in d.stats.0 {
                    o += &largenum(v, f.exact);
                }
                o.push('\n');
            } else if f.rate {
                let _ = write!(
                    o,
                    "  -> {dn:<28} {:>8} {:>8} {:>8}",
                    d.rates.0[0], d.rates.0[1], d.rates.0[2]
                );
                o += &largenum(d.rates.0[3], f.exact);
                o += &largenum(d.rates.0[4], f.exact);
                o.push('\n');
            } else if f.thresholds {
                let _ = writeln!(
                    o,
                    "  -> {dn:<28} {:<10} {:<10} {:<10} {:<10}",
                    d.u_threshold, d.l_threshold, d.active, d.inactive
                );
            } else if f.persistent_conn {
                let _ = writeln!(
                    o,
                    "  -> {dn:<28} {:<9} {:<11} {:<10} {:<10}",
                    d.weight, d.persist, d.active, d.inactive
                );
            } else {
                let _ = writeln!(
                    o,
                    "  -> {dn:<28} {:<7} {:<6} {:<10} {:<10}",
                    d.fwd.ipvsadm_name(),
                    d.weight,
                    d.active,
                    d.inactive
                );
            }
        }
    }
    o
}

/// ` (flags)`, ` persistent T`, ` mask M` after the scheduler.
fn service_suffix(o: &mut String, s: &ServiceView) {
    if !s.flags.is_empty() {
        let _ = write!(o, " ({})", s.flags.join(","));
    }
    if let Some((t, mask)) = s.persistent {
        let _ = write!(o, " persistent {t}");
        if mask != Ipv4Addr::BROADCAST {
            let _ = write!(o, " mask {mask}");
        }
    }
}

/// `-L --timeout`.
pub fn timeouts(tcp: u32, tcpfin: u32, udp: u32) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
}

/// `-L -c`: the connection entries (ipvsadm's list_conn).
pub fn connections(conns: &[ConnView], numeric: bool) -> String {
    let mut o = String::from("IPVS connection entries\n");
    o += "pro expire state       source             virtual            destination\n";
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let _ = writeln!(
            o,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.proto.name(),
            expire,
            c.state,
            addrport(c.caddr, c.cport, c.proto, numeric),
            addrport(c.vaddr, c.vport, c.proto, numeric),
            addrport(c.daddr, c.dport, c.proto, numeric)
        );
    }
    o
}

fn fwd_switch(f: Fwd) -> &'static str {
    match f {
        Fwd::Nat => "-m",
        Fwd::Dr => "-g",
        Fwd::Tun => "-i",
        Fwd::FullNat => "--fullnat",
    }
}

/// `-S`: the rules that `-R` reads back.
pub fn save(services: &[ServiceView], numeric: bool) -> String {
    let mut o = String::new();
    for s in services {
        let opt = match s.key.proto {
            Proto::Tcp => "-t",
            Proto::Udp => "-u",
        };
        let name = format!(
            "{opt} {}",
            addrport(s.key.addr, s.key.port, s.key.proto, numeric)
        );
        let _ = write!(o, "-A {name} -s {}", s.scheduler);
        if !s.flags.is_empty() {
            let _ = write!(o, " -b {}", s.flags.join(","));
        }
        if let Some((t, mask)) = s.persistent {
            let _ = write!(o, " -p {t}");
            if mask != Ipv4Addr::BROADCAST {
                let _ = write!(o, " -M {mask}");
            }
        }
        if !s.laddrs.is_empty() {
            let l: Vec<String> = s.laddrs.iter().map(|a| a.to_string()).collect();
            let _ = write!(o, " --laddr {}", l.join(","));
        }
        if s.toa {
            o += " --toa";
        }
        o.push('\n');
        for d in &s.servers {
            let _ = write!(
                o,
                "-a {name} -r {} {} -w {}",
                addrport(d.addr, d.port, s.key.proto, numeric),
                fwd_switch(d.fwd),
                d.weight
            );
            if d.u_threshold != 0 {
                let _ = write!(o, " -x {}", d.u_threshold);
            }
            if d.l_threshold != 0 {
                let _ = write!(o, " -y {}", d.l_threshold);
            }
            o.push('\n');
        }
    }
    o
}

#[cfg(test)]
mod tests;
