//! The second loading pass: everything serde cannot check (references between
//! sections, ranges, duplicates), reported as (key path, message) pairs that
//! `Config::parse` positions through `locate`.

use super::cpus::{online_cpus, parse_cpu_list};
use super::{Config, MAX_WORKERS};
use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::SchedFlags;
use dataplane::packet::MacAddr;
use std::collections::HashSet;
use std::net::Ipv4Addr;

impl Config {
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
            * (self.io_ports() * d.workers) as u32
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
        if self.io_ports() > dataplane::stats::MAX_PORTS {
            err(
                "ports".into(),
                format!(
                    "{} ports and kernel twins; at most {} are supported",
                    self.io_ports(),
                    dataplane::stats::MAX_PORTS
                ),
            );
        }
        let mut kernels = HashSet::new();
        for (i, k) in self.kernel_twins() {
            let key = format!("ports[{i}].kernel.name");
            let ok_chars = k
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if k.name.is_empty() || k.name.len() > 15 || !ok_chars {
                err(
                    key,
                    format!(
                        "{:?}: a Linux interface name is 1 to 15 letters, digits, '_', '.' or '-'",
                        k.name
                    ),
                );
            } else if !kernels.insert(k.name.as_str()) {
                err(key, format!("kernel interface {:?} is used twice", k.name));
            }
            if k.device.as_deref().is_some_and(|d| d.trim().is_empty()) {
                err(
                    format!("ports[{i}].kernel.device"),
                    "give a vdev such as net_tap_lan0k,iface=lan0k, or leave it out".into(),
                );
            }
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
        // Whether the port named so has a kernel twin (None: no such port).
        let twin = |name: &str| {
            self.ports
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.kernel.is_some())
        };
        super::vrrp::validate(
            &self.vrrp_scripts,
            &self.vrrp_instances,
            &self.vrrp_sync_groups,
            twin,
            &mut err,
        );
        if let Some(s) = &self.lvs_sync_daemon {
            super::vrrp::validate_sync(s, &self.vrrp_instances, twin, &mut err);
        }
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
                let port = s.rs_port(r);
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
                seconds(
                    &rat,
                    r.delay_loop,
                    r.connect_timeout,
                    r.delay_before_retry,
                    r.warmup,
                    err,
                );
                for (k, c) in r.checks.iter().enumerate() {
                    let cat =
                        |key: &str| format!("services[{i}].real_servers[{j}].checks[{k}].{key}");
                    seconds(
                        &cat,
                        c.delay_loop,
                        c.connect_timeout,
                        c.delay_before_retry,
                        c.warmup,
                        err,
                    );
                    if c.misc_timeout.is_some_and(|t| !t.is_finite() || t < 0.0) {
                        err(cat("misc_timeout"), "seconds must be 0 or more".into());
                    }
                    for (u, url) in c.url.iter().enumerate() {
                        if !url.path.starts_with('/') {
                            err(
                                format!(
                                    "services[{i}].real_servers[{j}].checks[{k}].url[{u}].path"
                                ),
                                format!("{:?}: a path starts with '/'", url.path),
                            );
                        }
                    }
                    if let Err(e) = crate::health::resolve::probe(s, r, c) {
                        err(cat(&e.key), e.message);
                    }
                }
            }
            seconds(
                &at,
                s.delay_loop,
                s.connect_timeout,
                s.delay_before_retry,
                s.warmup,
                err,
            );
            if s.quorum == Some(0) {
                // keepalived resets it to 1 with an error; rvs refuses the file.
                err(
                    at("quorum"),
                    "the quorum is a weight sum of 1 or more (keepalived: [1, 4294967295])".into(),
                );
            }
            if let Some(sorry) = &s.sorry_server {
                if matches!(sorry.forward, Fwd::Dr | Fwd::Tun)
                    && sorry.address.port != 0
                    && sorry.address.port != s.vip.port
                {
                    err(
                        at("sorry_server.address"),
                        format!("{:?} forwarding cannot change the port", sorry.forward),
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
}

/// The health-check durations of one level: finite, not negative, and a delay_loop
/// above zero.
fn seconds(
    at: &dyn Fn(&str) -> String,
    delay_loop: Option<f64>,
    connect_timeout: Option<f64>,
    delay_before_retry: Option<f64>,
    warmup: Option<f64>,
    err: &mut impl FnMut(String, String),
) {
    for (k, v) in [
        ("delay_loop", delay_loop),
        ("connect_timeout", connect_timeout),
        ("delay_before_retry", delay_before_retry),
        ("warmup", warmup),
    ] {
        if let Some(v) = v {
            if !v.is_finite() || v < 0.0 || (k != "warmup" && k != "delay_before_retry" && v == 0.0)
            {
                err(
                    at(k),
                    format!("{v}: give seconds above 0 (fractions allowed)"),
                );
            }
        }
    }
}
