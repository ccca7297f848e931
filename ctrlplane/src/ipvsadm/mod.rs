//! ipvsadm's command line and output, for `rvsadm`.
//!
//! `parse` turns ipvsadm 1.31 arguments (and `-R` restore lines) into a `Command`;
//! `format` prints listings byte for byte as ipvsadm does. Both are pure, so they are
//! tested against literal text.

pub mod format;
pub mod parse;

use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::SchedKind;
use dataplane::ipvs::service::Proto;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// A virtual service address: `-t VIP:PORT` or `-u VIP:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    pub proto: Proto,
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// Service options given on the command line (`None` = not given).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceOpts {
    pub scheduler: Option<SchedKind>,
    /// `-p [timeout]`: Some(timeout).
    pub persistent: Option<u32>,
    pub netmask: Option<Ipv4Addr>,
    pub sched_flags: Option<Vec<String>>,
    /// rvs: FULLNAT local addresses (`--laddr A[,B...]`).
    pub laddrs: Option<Vec<Ipv4Addr>>,
    /// rvs: TOA for FULLNAT (`--toa`).
    pub toa: bool,
}

/// Real-server options (`None` = not given).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerOpts {
    pub fwd: Option<Fwd>,
    pub weight: Option<u32>,
    pub u_threshold: Option<u32>,
    pub l_threshold: Option<u32>,
}

/// How `-L` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListFormat {
    pub numeric: bool,
    pub connections: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub timeout: bool,
    pub exact: bool,
    pub sort: bool,
    /// `--daemon`: the sync daemons instead of the services.
    pub daemon: bool,
}

/// One ipvsadm command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    AddService(ServiceKey, ServiceOpts),
    EditService(ServiceKey, ServiceOpts),
    DeleteService(ServiceKey),
    Clear,
    AddServer(ServiceKey, Ipv4Addr, u16, ServerOpts),
    EditServer(ServiceKey, Ipv4Addr, u16, ServerOpts),
    DeleteServer(ServiceKey, Ipv4Addr, u16),
    /// `-Z [service]`
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`
    SetTimeouts(u32, u32, u32),
    /// `-L [service]`
    List(Option<ServiceKey>, ListFormat),
    /// `-S [-n]`
    Save(bool),
    /// `-R`: commands read from standard input.
    Restore,
    /// `--start-daemon master|backup [--mcast-interface IF] [--syncid N]`
    StartDaemon {
        master: bool,
        interface: Option<String>,
        syncid: u8,
    },
    /// `--stop-daemon master|backup`
    StopDaemon {
        master: bool,
    },
}

impl Command {
    /// True for commands that change the configuration.
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Command::List(..) | Command::Save(_) | Command::Restore
        )
    }
}

/// Lines of a services(5) file (netbase's /etc/services, in the IANA format): the tests
/// of both directions (names to ports, ports to names) read these instead of whatever
/// /etc/services the machine has.
#[cfg(test)]
pub(crate) const SERVICES_TEXT: &str = "\
# Network services, Internet style
#
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
ftp\t\t21/tcp
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
smtp\t\t25/tcp\t\tmail
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
https\t\t443/tcp\t\t\t\t# http protocol over TLS/SSL
https\t\t443/udp\t\t\t\t# HTTP/3
http-alt\t8080/tcp\twebcache\t# WWW caching service
";
