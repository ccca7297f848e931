//! Virtual services and real servers as the workers see them: part of the immutable
//! snapshot, built by the control plane.

use super::conn::Fwd;
use super::sched::{SchedFlags, SchedKind, SchedTables};
use super::state::Timeouts;
use std::net::Ipv4Addr;

/// Real-server slots: a real server keeps its slot for life, and a slot is reused only
/// after no worker holds a connection to its previous owner. Per-worker counters are
/// arrays indexed by slot.
pub const DEST_SLOTS: usize = 4096;
/// Service slots, likewise.
pub const SVC_SLOTS: usize = 1024;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Proto {
    Tcp = 6,
    Udp = 17,
}

impl Proto {
    pub fn from_u8(p: u8) -> Option<Proto> {
        match p {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
    /// ipvsadm's name.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    pub timeout: u32,
    pub netmask: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub slot: u32,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub fwd: Fwd,
    pub weight: u32,
    /// Upper and lower connection thresholds (`-x`, `-y`); 0 = unset.
    pub u_threshold: u32,
    pub l_threshold: u32,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub slot: u32,
    pub proto: Proto,
    pub vip: Ipv4Addr,
    /// 0 = every port (only with persistence, as in LVS).
    pub port: u16,
    pub sched: SchedKind,
    pub flags: SchedFlags,
    pub persistence: Option<Persistence>,
    /// FULLNAT local addresses (LIPs).
    pub local_addrs: Vec<Ipv4Addr>,
    /// FULLNAT: carry the client address to the real server in a TCP option (TOA).
    pub toa: bool,
    pub dests: Vec<RealServer>,
    pub tables: SchedTables,
    /// Connections are owned by the worker of the client address alone (not address and
    /// port): set by `IpvsTable::new` for persistent services.
    pub client_ip_owned: bool,
    /// Changes whenever the real servers, their weights or the scheduler change, so that
    /// workers know to update their scheduler copy; unchanged services keep their state.
    pub version: u64,
}

impl Service {
    /// The scheduler tables (Maglev, sh/dh buckets) for `sched` over these real servers.
    pub fn build_tables(sched: super::sched::SchedKind, dests: &[RealServer]) -> SchedTables {
        let keys: Vec<super::sched::ServerKey> = dests
            .iter()
            .map(|d| super::sched::ServerKey {
                addr: d.addr,
                port: d.port,
                weight: d.weight,
            })
            .collect();
        SchedTables::build(sched, &keys)
    }
}

/// The IPVS part of the snapshot.
#[derive(Debug, Clone, Default)]
pub struct IpvsTable {
    pub services: Vec<Service>,
    index: ahash::AHashMap<(u8, u32, u16), usize>,
    vips: ahash::AHashSet<u32>,
    /// Real-server endpoints whose replies belong to a worker chosen by client address
    /// alone (see `client_ip_owned`).
    ip_owned_rs: ahash::AHashSet<(u8, u32, u16)>,
    lips: ahash::AHashSet<u32>,
    /// VIPs of VRRP instances that are not MASTER here: their services keep their slots
    /// and scheduler state but take no traffic, and the addresses are not owned.
    standby: ahash::AHashSet<u32>,
    pub timeouts: Timeouts,
    /// Drop a connection on its next packet once its real server was removed.
    pub expire_nodest_conn: bool,
    /// Expire templates of weight-0 real servers so their clients are rescheduled.
    pub expire_quiescent_template: bool,
}

impl IpvsTable {
    pub fn new(
        services: Vec<Service>,
        timeouts: Timeouts,
        expire_nodest_conn: bool,
        expire_quiescent_template: bool,
    ) -> Self {
        let mut t = IpvsTable {
            services,
            timeouts,
            expire_nodest_conn,
            expire_quiescent_template,
            ..Default::default()
        };
        // Persistence needs every connection of a client on the worker that holds its
        // template, so such services (and replies from their real servers, which may also
        // serve other services) are owned by client address alone.
        for s in t.services.iter().filter(|s| s.persistence.is_some()) {
            for d in &s.dests {
                t.ip_owned_rs.insert((s.proto as u8, d.addr.into(), d.port));
            }
        }
        for s in t.services.iter_mut() {
            let shared = s.dests.iter().any(|d| {
                t.ip_owned_rs
                    .contains(&(s.proto as u8, d.addr.into(), d.port))
            });
            s.client_ip_owned = s.persistence.is_some() || shared;
        }
        for (i, s) in t.services.iter().enumerate() {
            t.index.insert((s.proto as u8, s.vip.into(), s.port), i);
            t.vips.insert(s.vip.into());
            for l in &s.local_addrs {
                t.lips.insert((*l).into());
            }
        }
        t
    }
    /// The service for a packet to `vip:port`: the exact port first, then the port-0
    /// (all ports) service of that address.
    #[inline]
    pub fn lookup(&self, proto: u8, vip: Ipv4Addr, port: u16) -> Option<&Service> {
        let v = u32::from(vip);
        self.index
            .get(&(proto, v, port))
            .or_else(|| self.index.get(&(proto, v, 0)))
            .map(|&i| &self.services[i])
    }
    /// Stands an address by (a VRRP BACKUP's VIP or FULLNAT local address): services
    /// on it stay in the table, with their slots and scheduler state, but no packet
    /// finds them and the address is not answered.
    pub fn stand_by(&mut self, addr: Ipv4Addr) {
        let v = u32::from(addr);
        self.index.retain(|k, _| k.1 != v);
        self.vips.remove(&v);
        self.lips.remove(&v);
        self.standby.insert(v);
    }
    #[inline]
    pub fn has_standby(&self) -> bool {
        !self.standby.is_empty()
    }
    pub fn is_standby(&self, a: Ipv4Addr) -> bool {
        self.standby.contains(&u32::from(a))
    }
    #[inline]
    pub fn is_vip(&self, a: Ipv4Addr) -> bool {
        self.vips.contains(&u32::from(a))
    }
    #[inline]
    pub fn is_lip(&self, a: Ipv4Addr) -> bool {
        self.lips.contains(&u32::from(a))
    }
    /// True when replies from this real-server endpoint are owned by client address alone.
    #[inline]
    pub fn reply_ip_owned(&self, proto: u8, rs: Ipv4Addr, port: u16) -> bool {
        !self.ip_owned_rs.is_empty() && self.ip_owned_rs.contains(&(proto, rs.into(), port))
    }

    pub fn by_slot(&self, slot: u32) -> Option<&Service> {
        self.services.iter().find(|s| s.slot == slot)
    }
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}
