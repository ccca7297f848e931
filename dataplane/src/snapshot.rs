//! The immutable configuration the workers run on, and its RCU-style publication.
//!
//! The control plane builds a `Snapshot` off the hot path and publishes it with a pointer
//! swap. A worker compares one generation number per burst (a shared line that is only
//! written on publication) and takes its own `Arc` of the new snapshot only when the
//! generation changed, so no reference count is touched per burst. An old snapshot is
//! freed when the last worker that held it has moved on.

use crate::ipvs::service::IpvsTable;
use crate::net::neigh::NeighParams;
use crate::net::route::Route;
use crate::net::NetConfig;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::net::config::{PortInfo, StaticNeigh};

/// What the workers run on: the L2/L3 part, which `net` reads, and the IPVS table, which
/// the `ipvs` engine reads; each layer is handed only its part.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub generation: u64,
    pub net: NetConfig,
    pub ipvs: IpvsTable,
}

impl Snapshot {
    /// Builds the L2/L3 part from ports, static routes and static neighbours (see
    /// `NetConfig::new`), with no virtual service.
    pub fn new(
        ports: Vec<PortInfo>,
        routes: &[Route],
        neighbours: Vec<StaticNeigh>,
        neigh_params: NeighParams,
    ) -> Self {
        Snapshot {
            generation: 0,
            net: NetConfig::new(ports, routes, neighbours, neigh_params),
            ipvs: IpvsTable::default(),
        }
    }

    /// Adds the virtual services. Their VIPs and FULLNAT local addresses become owned
    /// addresses (answered for ARP and ping) on the port whose subnet holds them, or the
    /// port of the route toward them.
    /// Addresses on standby (a VRRP BACKUP's) are not owned.
    pub fn with_ipvs(mut self, ipvs: IpvsTable) -> Self {
        for svc in &ipvs.services {
            for a in std::iter::once(svc.vip).chain(svc.local_addrs.iter().copied()) {
                if !ipvs.is_standby(a) {
                    self.net.own(a);
                }
            }
        }
        self.ipvs = ipvs;
        self
    }
}

/// The publication point shared by the control plane and the workers.
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
}

impl SnapshotCell {
    pub fn new(mut first: Snapshot) -> Self {
        first.generation = 1;
        SnapshotCell {
            current: ArcSwap::from_pointee(first),
            generation: AtomicU64::new(1),
        }
    }
    /// Publishes `next` with the next generation number; returns that number.
    pub fn publish(&self, mut next: Snapshot) -> u64 {
        let g = self.generation.load(Ordering::Relaxed) + 1;
        next.generation = g;
        self.current.store(Arc::new(next));
        // Release: a worker that sees the new number also sees the new pointer.
        self.generation.store(g, Ordering::Release);
        g
    }
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::MacAddr;
    use std::net::Ipv4Addr;

    #[test]
    fn publish_bumps_generation_and_frees_old() {
        let cell = SnapshotCell::new(Snapshot::default());
        let held = cell.load();
        assert_eq!(held.generation, 1);
        let weak = Arc::downgrade(&held);
        assert_eq!(cell.publish(Snapshot::default()), 2);
        assert_eq!(cell.generation(), 2);
        assert_eq!(cell.load().generation, 2);
        assert!(
            weak.upgrade().is_some(),
            "a worker still holds generation 1"
        );
        drop(held);
        assert!(
            weak.upgrade().is_none(),
            "generation 1 is freed once nobody holds it"
        );
    }

    #[test]
    fn port_addresses_become_owned_and_connected() {
        let ports = vec![PortInfo {
            name: "lan0".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            mtu: 1500,
            addresses: vec![
                "198.18.0.2/24".parse().unwrap(),
                "198.18.0.100/32".parse().unwrap(),
            ],
            kernel: None,
        }];
        let s = Snapshot::new(ports, &[], vec![], NeighParams::default());
        assert!(s.net.owned.owned_on(Ipv4Addr::new(198, 18, 0, 100), 0));
        let nh = s.net.routes.lookup(Ipv4Addr::new(198, 18, 0, 7)).unwrap();
        assert_eq!((nh.port, nh.next_hop), (0, Ipv4Addr::new(198, 18, 0, 7)));
        assert_eq!(
            s.net.routes.iter().count(),
            1,
            "a /32 adds no connected route"
        );
    }
}
