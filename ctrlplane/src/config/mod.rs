//! The configuration model, YAML loading and validation.
//!
//! Loading is two passes: serde_yaml checks types and unknown keys (and reports the path
//! and position itself); `validate` then checks what types cannot (references between
//! sections, ranges, duplicates) and reports the position through `locate`. Every error
//! names the file, line, column and key, and says what to do.

pub mod locate;

use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::{SchedFlags, SchedKind};
use dataplane::ipvs::service::Proto;
use dataplane::net::addr::Ipv4Net;
use dataplane::packet::MacAddr;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use dataplane::params::{Hugepages, IdlePolicy};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConf,
    #[serde(default)]
    pub dataplane: DataplaneConf,
    pub ports: Vec<PortConf>,
    #[serde(default)]
    pub routes: Vec<RouteConf>,
    #[serde(default)]
    pub neighbours: Vec<NeighConf>,
    #[serde(default)]
    pub control: ControlConf,
    #[serde(default)]
    pub ipvs: IpvsConf,
    #[serde(default)]
    pub metrics: MetricsConf,
    #[serde(default)]
    pub services: Vec<ServiceConf>,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConf {
    /// ADDRESS:PORT to serve /metrics on (loopback by default); "" turns it off.
    pub listen: String,
}

impl Default for MetricsConf {
    fn default() -> Self {
        MetricsConf {
            listen: "127.0.0.1:9469".into(),
        }
    }
}

/// Global IPVS settings (the kernel's sysctls and `ipvsadm --set`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpvsConf {
    /// Connection-table entries per worker (72 bytes each, allocated at start).
    pub connections: usize,
    pub expire_nodest_conn: bool,
    pub expire_quiescent_template: bool,
    pub timeouts: TimeoutConf,
}

impl Default for IpvsConf {
    fn default() -> Self {
        IpvsConf {
            connections: 1 << 20,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            timeouts: TimeoutConf::default(),
        }
    }
}

/// `ipvsadm --set tcp tcpfin udp`, in seconds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConf {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

impl Default for TimeoutConf {
    fn default() -> Self {
        TimeoutConf {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConf {
    /// "VIP:PORT"; port 0 (all ports) needs persistence.
    pub vip: Endpoint,
    #[serde(default = "default_proto")]
    pub protocol: Proto,
    #[serde(default = "default_sched")]
    pub scheduler: SchedKind,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub persistence: Option<PersistenceConf>,
    /// FULLNAT local addresses (LIPs).
    #[serde(default)]
    pub local_addresses: Vec<Addr>,
    /// FULLNAT: pass the client address to real servers as a TCP option (TOA).
    #[serde(default)]
    pub toa: bool,
    #[serde(default)]
    pub real_servers: Vec<RealServerConf>,
}

fn default_proto() -> Proto {
    Proto::Tcp
}
fn default_sched() -> SchedKind {
    SchedKind::Wlc
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceConf {
    pub timeout: u32,
    pub netmask: Addr,
}

impl Default for PersistenceConf {
    fn default() -> Self {
        PersistenceConf {
            timeout: 360,
            netmask: Addr(Ipv4Addr::BROADCAST),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerConf {
    /// "RIP[:PORT]"; without a port, the service's.
    pub address: Endpoint,
    #[serde(default = "default_fwd")]
    pub forward: Fwd,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub upper_threshold: u32,
    #[serde(default)]
    pub lower_threshold: u32,
}

fn default_fwd() -> Fwd {
    Fwd::Dr
}
fn default_weight() -> u32 {
    1
}

/// "ADDRESS[:PORT]" (port 0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl TryFrom<String> for Endpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let bad =
            || format!("invalid endpoint {s:?}: expected ADDRESS:PORT such as 198.18.0.100:80");
        let (a, p) = match t.rsplit_once(':') {
            Some((a, p)) => (a, p.parse::<u16>().map_err(|_| bad())?),
            None => (t, 0),
        };
        Ok(Endpoint {
            addr: a.parse().map_err(|_| bad())?,
            port: p,
        })
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        format!("{}:{}", e.addr, e.port)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EalConf {
    /// CPU list, as for taskset: "0-1", "0,2-3". The first CPU runs the control plane.
    pub cores: String,
    pub file_prefix: String,
    pub hugepages: Hugepages,
    pub memory_mb: usize,
    pub extra_args: Vec<String>,
}

impl Default for EalConf {
    fn default() -> Self {
        EalConf {
            cores: "0-1".into(),
            file_prefix: "rvs".into(),
            hugepages: Hugepages::Auto,
            memory_mb: 256,
            extra_args: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConf {
    pub workers: usize,
    pub burst: usize,
    pub idle: IdlePolicy,
    /// mbufs in the packet pool (all ports, all workers).
    pub mbufs: u32,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub neighbour: NeighbourConf,
}

impl Default for DataplaneConf {
    fn default() -> Self {
        DataplaneConf {
            workers: 1,
            burst: 32,
            idle: IdlePolicy::Adaptive,
            mbufs: 16383,
            rx_desc: 1024,
            tx_desc: 1024,
            neighbour: NeighbourConf::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeighbourConf {
    pub retrans_ms: u64,
    pub max_probes: u8,
    pub reachable_s: u64,
    pub max_entries: usize,
}

impl Default for NeighbourConf {
    fn default() -> Self {
        let d = dataplane::net::neigh::NeighParams::default();
        NeighbourConf {
            retrans_ms: d.retrans_ms,
            max_probes: d.max_probes,
            reachable_s: d.reachable_ms / 1000,
            max_entries: d.max_entries,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortConf {
    pub name: String,
    /// A PCI address (0000:03:00.0) or a DPDK vdev string (net_af_packet0,iface=eth1).
    pub device: String,
    #[serde(default)]
    pub addresses: Vec<Prefix>,
    #[serde(default)]
    pub promiscuous: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConf {
    pub prefix: Prefix,
    #[serde(default)]
    pub via: Option<Addr>,
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NeighConf {
    pub address: Addr,
    pub mac: Mac,
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConf {
    pub socket: PathBuf,
}

impl Default for ControlConf {
    fn default() -> Self {
        ControlConf {
            socket: PathBuf::from("/run/rvs/rvsd.sock"),
        }
    }
}

/// Strings that parse as a value, keeping the text for saving back.
macro_rules! parsed_string {
    ($name:ident, $inner:ty) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(pub $inner);
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.trim()
                    .parse::<$inner>()
                    .map($name)
                    .map_err(|e| e.to_string())
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.to_string()
            }
        }
    };
}

parsed_string!(Prefix, Ipv4Net);
parsed_string!(Mac, MacAddr);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Addr(pub Ipv4Addr);
impl TryFrom<String> for Addr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.trim()
            .parse::<Ipv4Addr>()
            .map(Addr)
            .map_err(|_| format!("invalid IPv4 address {s:?}"))
    }
}
impl From<Addr> for String {
    fn from(v: Addr) -> String {
        v.0.to_string()
    }
}

/// A configuration error, positioned in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Unpositioned { file: String, message: String },
}

/// The most workers a director runs (one rx/tx queue pair each per port).
pub const MAX_WORKERS: usize = 64;

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates; `file` is only used in messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = serde_yaml::from_str(text).map_err(|e| serde_error(e, file))?;
        let problems = cfg.validate();
        if let Some((key, message)) = problems.into_iter().next() {
            let (line, column) = locate::locate(text, &key).unwrap_or((1, 1));
            return Err(ConfigError::Invalid {
                file: file.into(),
                line,
                column,
                key,
                message,
            });
        }
        Ok(cfg)
    }

    /// Checks everything serde cannot; returns (key path, message) for each problem.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |k: String, m: String| errs.push((k, m));

        match parse_cpu_list(&self.eal.cores) {
            Err(m) => err("eal.cores".into(), m),
            Ok(cpus) => {
                let online = online_cpus();
                if let Some(c) = cpus.iter().find(|c| !online.contains(c)) {
                    let list = online
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(",");
                    err(
                        "eal.cores".into(),
                        format!("CPU {c} is not online here (online CPUs: {list})"),
                    );
                }
            }
        }
        if self.eal.file_prefix.is_empty() || self.eal.file_prefix.contains('/') {
            err(
                "eal.file_prefix".into(),
                "must be a non-empty name without '/'".into(),
            );
        }
        if self.eal.memory_mb < 64 {
            err(
                "eal.memory_mb".into(),
                format!(
                    "{} MiB is too little for the EAL; use at least 64",
                    self.eal.memory_mb
                ),
            );
        }
        let d = &self.dataplane;
        if d.workers == 0 || d.workers > MAX_WORKERS {
            err(
                "dataplane.workers".into(),
                format!("{} workers: use 1 to {MAX_WORKERS}", d.workers),
            );
        }
        if d.burst == 0 || d.burst > dataplane::worker::BURST {
            err(
                "dataplane.burst".into(),
                format!("{}: use 1 to {}", d.burst, dataplane::worker::BURST),
            );
        }
        let need = (u32::from(d.rx_desc) + u32::from(d.tx_desc))
            * (self.ports.len() * d.workers) as u32
            + 1024;
        if d.mbufs < need {
            err(
                "dataplane.mbufs".into(),
                format!(
                    "{} mbufs cannot fill {} rx+tx descriptors on every queue; use at least {need}",
                    d.mbufs,
                    u32::from(d.rx_desc) + u32::from(d.tx_desc)
                ),
            );
        }
        if d.neighbour.max_probes == 0 || d.neighbour.retrans_ms == 0 {
            err(
                "dataplane.neighbour".into(),
                "retrans_ms and max_probes must be at least 1".into(),
            );
        }

        if self.ports.is_empty() {
            err("ports".into(), "at least one port is needed".into());
        }
        if self.ports.len() > dataplane::stats::MAX_PORTS {
            err(
                "ports".into(),
                format!(
                    "{} ports; at most {} are supported",
                    self.ports.len(),
                    dataplane::stats::MAX_PORTS
                ),
            );
        }
        let mut names = HashSet::new();
        let mut devices = HashSet::new();
        let mut addrs = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            if p.name.is_empty() {
                err(format!("ports[{i}].name"), "a port needs a name".into());
            } else if !names.insert(p.name.as_str()) {
                err(
                    format!("ports[{i}].name"),
                    format!("port name {:?} is used twice", p.name),
                );
            }
            let dev = p.device.split(',').next().unwrap_or("");
            if dev.is_empty() {
                err(format!("ports[{i}].device"), "give a PCI address such as 0000:03:00.0 or a vdev such as net_af_packet0,iface=eth1".into());
            } else if !devices.insert(dev) {
                err(
                    format!("ports[{i}].device"),
                    format!("device {dev:?} is used by two ports"),
                );
            }
            for (j, a) in p.addresses.iter().enumerate() {
                if !addrs.insert(a.0.addr) {
                    err(
                        format!("ports[{i}].addresses[{j}]"),
                        format!("{} is configured twice", a.0.addr),
                    );
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            match self.ports.iter().find(|p| p.name == r.port) {
                None => err(
                    format!("routes[{i}].port"),
                    format!("no port named {:?} (ports: {})", r.port, self.port_names()),
                ),
                Some(p) => {
                    if let Some(via) = r.via {
                        if !p
                            .addresses
                            .iter()
                            .any(|a| a.0.len < 32 && a.0.contains(via.0))
                        {
                            err(format!("routes[{i}].via"), format!("gateway {} is not on a subnet of port {:?}; add an address in its subnet to the port", via.0, p.name));
                        }
                    }
                }
            }
        }
        for (i, n) in self.neighbours.iter().enumerate() {
            if !self.ports.iter().any(|p| p.name == n.port) {
                err(
                    format!("neighbours[{i}].port"),
                    format!("no port named {:?} (ports: {})", n.port, self.port_names()),
                );
            }
            if n.mac.0.is_multicast() || n.mac.0 == MacAddr::ZERO {
                err(
                    format!("neighbours[{i}].mac"),
                    format!("{} is not a unicast MAC address", n.mac.0),
                );
            }
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            err(
                "metrics.listen".into(),
                format!(
                    "{:?} is not ADDRESS:PORT (use \"\" to turn metrics off)",
                    self.metrics.listen
                ),
            );
        }
        self.validate_services(&mut err);
        if self.control.socket.as_os_str().is_empty() {
            err(
                "control.socket".into(),
                "give a path for the control socket".into(),
            );
        }
        errs
    }

    fn validate_services(&self, err: &mut impl FnMut(String, String)) {
        if self.ipvs.connections == 0 {
            err(
                "ipvs.connections".into(),
                "the connection table needs at least one entry".into(),
            );
        }
        let connected = |a: Ipv4Addr| {
            self.ports
                .iter()
                .flat_map(|p| &p.addresses)
                .any(|n| n.0.len < 32 && n.0.contains(a))
        };
        let mut keys = HashSet::new();
        if self.services.len() > dataplane::ipvs::service::SVC_SLOTS {
            err(
                "services".into(),
                format!(
                    "{} services; at most {}",
                    self.services.len(),
                    dataplane::ipvs::service::SVC_SLOTS
                ),
            );
        }
        for (i, s) in self.services.iter().enumerate() {
            let at = |k: &str| format!("services[{i}].{k}");
            if !keys.insert((s.protocol, s.vip)) {
                err(
                    at("vip"),
                    format!(
                        "{} {} is defined twice",
                        s.protocol.name(),
                        String::from(s.vip)
                    ),
                );
            }
            if s.vip.port == 0 && s.persistence.is_none() {
                err(
                    at("vip"),
                    "port 0 (all ports) is only allowed with persistence, as in LVS".into(),
                );
            }
            if self
                .ports
                .iter()
                .flat_map(|p| &p.addresses)
                .any(|n| n.0.addr == s.vip.addr)
            {
                err(
                    at("vip"),
                    format!(
                        "{} is a port address (DIP); give the service its own VIP",
                        s.vip.addr
                    ),
                );
            }
            for f in &s.flags {
                if SchedFlags::parse(f).is_none() {
                    err(
                        at("flags"),
                        format!(
                            "unknown flag {f:?}: use sh-fallback, sh-port, mh-fallback or mh-port"
                        ),
                    );
                }
            }
            if let Some(p) = &s.persistence {
                if p.timeout == 0 {
                    err(
                        at("persistence.timeout"),
                        "a persistence timeout of 0 persists nothing; omit persistence instead"
                            .into(),
                    );
                }
            }
            let fullnat = s.real_servers.iter().any(|r| r.forward == Fwd::FullNat);
            if fullnat && s.local_addresses.is_empty() {
                err(
                    at("local_addresses"),
                    "FULLNAT real servers need local addresses (LIPs) for the service".into(),
                );
            }
            if s.toa && !fullnat {
                err(at("toa"), "toa only applies to FULLNAT real servers".into());
            }
            let mut rss = HashSet::new();
            for (j, r) in s.real_servers.iter().enumerate() {
                let rat = |k: &str| format!("services[{i}].real_servers[{j}].{k}");
                let port = if r.address.port == 0 {
                    s.vip.port
                } else {
                    r.address.port
                };
                if !rss.insert((r.address.addr, port)) {
                    err(
                        rat("address"),
                        format!("{}:{port} is listed twice", r.address.addr),
                    );
                }
                if matches!(r.forward, Fwd::Dr | Fwd::Tun)
                    && r.address.port != 0
                    && r.address.port != s.vip.port
                {
                    err(
                        rat("address"),
                        format!(
                            "{:?} forwarding cannot change the port: use {} or omit the port",
                            r.forward, s.vip.port
                        ),
                    );
                }
                if r.forward == Fwd::Dr && !connected(r.address.addr) {
                    err(
                        rat("address"),
                        format!(
                            "direct routing needs {} on the subnet of a port address",
                            r.address.addr
                        ),
                    );
                }
                if r.upper_threshold != 0 && r.lower_threshold > r.upper_threshold {
                    err(
                        rat("lower_threshold"),
                        "the lower threshold must not exceed the upper one".into(),
                    );
                }
            }
        }
    }

    fn port_names(&self) -> String {
        self.ports
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    pub fn cpus(&self) -> Vec<usize> {
        parse_cpu_list(&self.eal.cores).unwrap_or_else(|_| vec![0])
    }

    /// The device string handed to the EAL: for net_af_packet with several workers,
    /// `qpairs=N` is added when missing, since every worker needs its own queue pair.
    pub fn eal_device(&self, port: &PortConf) -> String {
        let w = self.dataplane.workers;
        if port.device.starts_with("net_af_packet") && w > 1 && !port.device.contains("qpairs=") {
            format!("{},qpairs={w}", port.device)
        } else {
            port.device.clone()
        }
    }
}

fn serde_error(e: serde_yaml::Error, file: &str) -> ConfigError {
    let msg = e.to_string();
    match e.location() {
        Some(loc) => {
            // serde_yaml's text is "path: message at line L column C"; split it so the
            // position leads, as in every other error.
            let body = msg.rsplit_once(" at line ").map(|(b, _)| b).unwrap_or(&msg);
            let (key, message) = match body.split_once(": ") {
                Some((k, m)) if !k.contains(' ') => (k.to_string(), m.to_string()),
                _ => ("(document)".to_string(), body.to_string()),
            };
            ConfigError::Invalid {
                file: file.into(),
                line: loc.line(),
                column: loc.column(),
                key,
                message,
            }
        }
        None => ConfigError::Unpositioned {
            file: file.into(),
            message: msg,
        },
    }
}

/// The CPUs that exist and are online. Not the thread's affinity: once the EAL has pinned
/// the daemon's main thread, that is a single CPU, and a reload must still accept the
/// configuration it started with.
pub fn online_cpus() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()).ok())
        .unwrap_or_else(|| {
            (0..std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1))
                .collect()
        })
}

/// Parses "0-3,6" into [0,1,2,3,6].
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("{s:?} is not a CPU list; write it like \"0-1\" or \"0,2-3\"");
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| bad())?,
                b.trim().parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let a = part.parse::<usize>().map_err(|_| bad())?;
                (a, a)
            }
        };
        if a > b || b > 1023 {
            return Err(bad());
        }
        for c in a..=b {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
