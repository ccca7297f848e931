//! The daemon's sections of the configuration: EAL, dataplane, ports, routes,
//! neighbours, control socket, IPVS globals and metrics. Each has its defaults here.

use super::values::{Addr, Mac, Prefix};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use dataplane::params::{Hugepages, IdlePolicy};

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
    /// The exception path: a kernel interface twin of this port (same MAC, the port's
    /// addresses), which gets what rvs does not consume and whose traffic leaves here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelConf>,
}

/// A port's kernel twin (DPVS's KNI device).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConf {
    /// The kernel interface's name (at most 15 characters, as Linux allows).
    pub name: String,
    /// The DPDK device that makes it; by default `net_tap_<name>,iface=<name>`. Where
    /// the kernel has vhost-net, DPDK recommends
    /// `virtio_user_<name>,path=/dev/vhost-net,queues=N,queue_size=1024,iface=<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
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
