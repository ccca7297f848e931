//! The immutable configuration the workers run on, and its RCU-style publication.
//!
//! The control plane builds a `Snapshot` off the hot path and publishes it with a pointer
//! swap. A worker compares one generation number per burst (a shared line that is only
//! written on publication) and takes its own `Arc` of the new snapshot only when the
//! generation changed, so no reference count is touched per burst. An old snapshot is
//! freed when the last worker that held it has moved on.

use crate::ipvs::service::IpvsTable;
use crate::net::addr::{Ipv4Net, OwnedAddr, OwnedAddrs};
use crate::net::neigh::{NeighParams, PortAddrs};
use crate::net::route::{Route, RouteTable};
use crate::packet::MacAddr;
use arc_swap::ArcSwap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u16,
    pub addresses: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeigh {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub port: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub generation: u64,
    pub ports: Vec<PortInfo>,
    pub owned: OwnedAddrs,
    pub routes: RouteTable,
    pub neighbours: Vec<StaticNeigh>,
    pub neigh_params: NeighParams,
    pub ipvs: IpvsTable,
}

impl Snapshot {
    /// Builds the L2/L3 part from ports, static routes and static neighbours: every port
    /// address becomes an owned address and a connected route.
    pub fn new(
        ports: Vec<PortInfo>,
        routes: &[Route],
        neighbours: Vec<StaticNeigh>,
        neigh_params: NeighParams,
    ) -> Self {
        let mut owned = OwnedAddrs::default();
        let mut table = RouteTable::default();
        for (i, p) in ports.iter().enumerate() {
            for a in &p.addresses {
                owned.insert(OwnedAddr { net: *a, port: i });
                if a.len < 32 {
                    table.add(Route {
                        prefix: *a,
                        via: None,
                        port: i,
                    });
                }
            }
        }
        for r in routes {
            table.add(*r);
        }
        Snapshot {
            generation: 0,
            ports,
            owned,
            routes: table,
            neighbours,
            neigh_params,
            ipvs: IpvsTable::default(),
        }
    }

    /// Adds the virtual services. Their VIPs and FULLNAT local addresses become owned
    /// addresses (answered for ARP and ping) on the port whose subnet holds them, or the
    /// port of the route toward them.
    pub fn with_ipvs(mut self, ipvs: IpvsTable) -> Self {
        for svc in &ipvs.services {
            for a in std::iter::once(svc.vip).chain(svc.local_addrs.iter().copied()) {
                if self.owned.get(a).is_none() {
                    let port = self.port_for(a);
                    self.owned.insert(OwnedAddr {
                        net: Ipv4Net { addr: a, len: 32 },
                        port,
                    });
                }
            }
        }
        self.ipvs = ipvs;
        self
    }

    fn port_for(&self, a: Ipv4Addr) -> usize {
        self.ports
            .iter()
            .position(|p| p.addresses.iter().any(|n| n.len < 32 && n.contains(a)))
            .or_else(|| self.routes.lookup(a).map(|nh| nh.port))
            .unwrap_or(0)
    }
}

impl PortAddrs for Snapshot {
    #[inline]
    fn mac(&self, port: usize) -> Option<MacAddr> {
        self.ports.get(port).map(|p| p.mac)
    }
    fn source_ip(&self, port: usize, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.owned.source_for(port, dst)
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
        }];
        let s = Snapshot::new(ports, &[], vec![], NeighParams::default());
        assert!(s.owned.owned_on(Ipv4Addr::new(198, 18, 0, 100), 0));
        let nh = s.routes.lookup(Ipv4Addr::new(198, 18, 0, 7)).unwrap();
        assert_eq!((nh.port, nh.next_hop), (0, Ipv4Addr::new(198, 18, 0, 7)));
        assert_eq!(s.routes.iter().count(), 1, "a /32 adds no connected route");
    }
}
