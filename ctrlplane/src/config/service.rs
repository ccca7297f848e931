//! Virtual services and their real servers (`services:`).

use super::values::{Addr, Endpoint};
use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::SchedKind;
use dataplane::ipvs::service::Proto;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

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
