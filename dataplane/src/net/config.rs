//! The L2/L3 part of a snapshot: ports, owned addresses, routes and static neighbours.
//! This is all that `net` reads of the configuration; `snapshot::Snapshot` adds the
//! IPVS table on top.

use super::addr::{Ipv4Net, OwnedAddr, OwnedAddrs};
use super::neigh::{NeighParams, PortAddrs};
use super::route::{Route, RouteTable};
use crate::packet::MacAddr;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u16,
    pub addresses: Vec<Ipv4Net>,
    /// The I/O port index of this port's kernel twin (the exception path), if it has
    /// one: what no worker consumes goes up there, and what the kernel sends on it
    /// leaves through this port.
    pub kernel: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeigh {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub port: usize,
}

#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    pub ports: Vec<PortInfo>,
    pub owned: OwnedAddrs,
    pub routes: RouteTable,
    pub neighbours: Vec<StaticNeigh>,
    pub neigh_params: NeighParams,
}

impl NetConfig {
    /// Builds it from ports, static routes and static neighbours: every port address
    /// becomes an owned address and a connected route.
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
        NetConfig {
            ports,
            owned,
            routes: table,
            neighbours,
            neigh_params,
        }
    }

    /// Owns `a` (a /32) on the port whose subnet holds it, or the port of the route
    /// toward it, unless it is owned already.
    pub fn own(&mut self, a: Ipv4Addr) {
        if self.owned.get(a).is_some() {
            return;
        }
        let port = self
            .ports
            .iter()
            .position(|p| p.addresses.iter().any(|n| n.len < 32 && n.contains(a)))
            .or_else(|| self.routes.lookup(a).map(|nh| nh.port))
            .unwrap_or(0);
        self.owned.insert(OwnedAddr {
            net: Ipv4Net { addr: a, len: 32 },
            port,
        });
    }
}

impl NetConfig {
    /// Whether `a` is one of the ports' own addresses (a DIP, which the kernel twin has
    /// too), as opposed to a VIP that only rvs answers.
    pub fn is_port_address(&self, a: Ipv4Addr) -> bool {
        self.ports
            .iter()
            .any(|p| p.addresses.iter().any(|n| n.addr == a))
    }

    /// The kernel twin of `port`, if it has one.
    #[inline]
    pub fn kernel_of(&self, port: usize) -> Option<usize> {
        self.ports.get(port).and_then(|p| p.kernel)
    }
}

impl PortAddrs for NetConfig {
    #[inline]
    fn mac(&self, port: usize) -> Option<MacAddr> {
        self.ports.get(port).map(|p| p.mac)
    }
    fn source_ip(&self, port: usize, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.owned.source_for(port, dst)
    }
}
