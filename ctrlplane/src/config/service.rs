//! Virtual services and their real servers (`services:`).

use super::health::{is_false, with_check_keys, CheckConf, SorryServerConf};
use super::values::{Addr, Endpoint};
use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::SchedKind;
use dataplane::ipvs::service::Proto;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

with_check_keys! {
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
    /// A failed real server stays at weight 0 instead of leaving the service.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inhibit_on_failure: bool,
    /// Real servers start down until their first successful check.
    #[serde(default, skip_serializing_if = "is_false")]
    pub alpha: bool,
    /// Run quorum_down and notify_down scripts at shutdown.
    #[serde(default, skip_serializing_if = "is_false")]
    pub omega: bool,
    /// The sum of live real servers' weights the service needs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<String>,
    /// Takes the traffic while the quorum is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServerConf>,
    /// The sorry server stays in the service at weight 0 while the quorum holds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sorry_server_inhibit: bool,
}
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

with_check_keys! {
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
    /// Overrides the service's `inhibit_on_failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
    /// Scripts run when the server goes up or down (keepalived's arguments appended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<String>,
    /// The server is down while any of them fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckConf>,
}
}

fn default_fwd() -> Fwd {
    Fwd::Dr
}
fn default_weight() -> u32 {
    1
}

impl ServiceConf {
    /// The port real server `r` is reached on: its own, or (0) the VIP's, as ipvsadm
    /// reads `-r RIP` without a port.
    pub fn rs_port(&self, r: &RealServerConf) -> u16 {
        if r.address.port == 0 {
            self.vip.port
        } else {
            r.address.port
        }
    }

    /// A service with every optional key at its default (ipvsadm -A builds on it).
    pub fn bare(vip: Endpoint, protocol: Proto) -> ServiceConf {
        ServiceConf {
            vip,
            protocol,
            scheduler: default_sched(),
            flags: Vec::new(),
            persistence: None,
            local_addresses: Vec::new(),
            toa: false,
            real_servers: Vec::new(),
            delay_loop: None,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            inhibit_on_failure: false,
            alpha: false,
            omega: false,
            quorum: None,
            hysteresis: None,
            quorum_up: None,
            quorum_down: None,
            sorry_server: None,
            sorry_server_inhibit: false,
        }
    }
}

impl RealServerConf {
    /// A real server with every optional key at its default (ipvsadm -a builds on it).
    pub fn bare(address: Endpoint) -> RealServerConf {
        RealServerConf {
            address,
            forward: default_fwd(),
            weight: default_weight(),
            upper_threshold: 0,
            lower_threshold: 0,
            delay_loop: None,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            inhibit_on_failure: None,
            notify_up: None,
            notify_down: None,
            checks: Vec::new(),
        }
    }
}
