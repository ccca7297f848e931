//! Real-server accounting of one worker: what it knows of each real-server slot (weight,
//! thresholds, its share of the active, inactive and persistent connections), binding
//! and unbinding connections as the kernel's `ip_vs_bind_dest`/`ip_vs_unbind_dest` do,
//! and publishing the counts for the control plane.

use super::conn::{flags as cf, NIL};
use super::engine::IpvsWorker;
use super::sched::DestLoad;
use super::service::Service;
use crate::net::NetConfig;
use crate::stats::DropReason;
use std::net::Ipv4Addr;

/// Where packets to a real server leave: resolved once per snapshot.
#[derive(Debug, Clone, Copy)]
pub(super) struct DestRoute {
    /// The real server's address this route was resolved for: a slot may be reused for
    /// another server while connections of the old one live on (on a worker that had
    /// not yet adopted the removal), so the cache answers only for this address.
    addr: Ipv4Addr,
    port: u16,
    pub mtu: u16,
    pub next_hop: Ipv4Addr,
    /// The director's address toward it (the outer source of TUN); unspecified: none.
    src: Ipv4Addr,
}

impl DestRoute {
    pub fn resolve(net: &NetConfig, addr: Ipv4Addr) -> Option<DestRoute> {
        let nh = net.routes.lookup(addr)?;
        Some(DestRoute {
            addr,
            port: u16::try_from(nh.port).ok()?,
            mtu: net.ports.get(nh.port).map_or(1500, |p| p.mtu),
            next_hop: nh.next_hop,
            src: net
                .owned
                .source_for(nh.port, addr)
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
        })
    }
    #[inline]
    pub fn port(&self) -> usize {
        usize::from(self.port)
    }
    /// The outer source address for IPIP toward this real server.
    pub fn src(&self) -> Option<Ipv4Addr> {
        (!self.src.is_unspecified()).then_some(self.src)
    }
}

/// What a worker knows about a real-server slot.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DestRt {
    /// Its route; None: no route (packets to it are dropped as no_route).
    pub route: Option<DestRoute>,
    pub present: bool,
    pub svc: u32,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub overloaded: bool,
    pub persist_timeout: u32,
    pub active: u32,
    pub inactive: u32,
    pub persist: u32,
}

impl DestRt {
    /// The route to this real server at `addr`: the cached one while it is configured;
    /// looked up afresh for one that was removed (its connections may live on, with
    /// expire_nodest_conn off, after the routes changed).
    #[inline]
    pub fn route_to(&self, addr: Ipv4Addr, net: &NetConfig) -> Result<DestRoute, DropReason> {
        match self.route {
            Some(r) if self.present && r.addr == addr => Ok(r),
            _ => DestRoute::resolve(net, addr).ok_or(DropReason::NoRoute),
        }
    }

    fn total(&self) -> u32 {
        self.active + self.inactive
    }

    /// ip_vs_unbind_dest's rules for leaving the overloaded state.
    pub fn update_overload(&mut self) {
        if self.l_threshold != 0 {
            if self.total() < self.l_threshold {
                self.overloaded = false;
            }
        } else if self.u_threshold != 0 {
            if self.total() * 4 < self.u_threshold * 3 {
                self.overloaded = false;
            }
        } else {
            self.overloaded = false;
        }
    }

    pub fn load(&self, id: u32) -> DestLoad {
        DestLoad {
            id,
            weight: self.weight,
            active: self.active,
            inactive: self.inactive,
            overloaded: self.overloaded,
        }
    }
}

/// The loads of a service's real servers, in the service's order, for its scheduler.
pub(super) fn loads_into(svc: &Service, dests: &[DestRt], out: &mut Vec<DestLoad>) {
    out.clear();
    out.extend(svc.dests.iter().map(|rs| {
        dests
            .get(rs.slot as usize)
            .copied()
            .unwrap_or_default()
            .load(rs.slot)
    }));
}

impl IpvsWorker {
    /// ip_vs_bind_dest: a new connection counts as inactive; the upper threshold may make
    /// its real server overloaded.
    pub(super) fn bind_dest(&mut self, slot: u32) {
        let Some(d) = self.dests.get_mut(slot as usize) else {
            return;
        };
        d.inactive += 1;
        if d.u_threshold != 0 && d.total() >= d.u_threshold {
            d.overloaded = true;
        }
        self.publish_dest(slot);
        if let Some(s) = self.stats.dests.get(slot as usize) {
            s.traffic.conns.inc();
        }
    }

    /// A template binds its real server as a persistent connection.
    pub(super) fn bind_template(&mut self, slot: u32) {
        if let Some(d) = self.dests.get_mut(slot as usize) {
            d.persist += 1;
        }
        self.publish_dest(slot);
    }

    /// A TCP connection entering or leaving ESTABLISHED moves between the real server's
    /// inactive and active counts (ip_vs_set_state's accounting).
    pub(super) fn account_state(&mut self, ci: u32, established: bool) {
        let e = self.conns.get_mut(ci);
        let slot = e.dest;
        let Some(d) = self.dests.get_mut(slot as usize) else {
            return;
        };
        if e.flags & cf::INACTIVE == 0 && !established {
            d.active = d.active.saturating_sub(1);
            d.inactive += 1;
            e.flags |= cf::INACTIVE;
        } else if e.flags & cf::INACTIVE != 0 && established {
            d.inactive = d.inactive.saturating_sub(1);
            d.active += 1;
            e.flags &= !cf::INACTIVE;
        } else {
            return;
        }
        self.publish_dest(slot);
    }

    /// ip_vs_unbind_dest + removal: counters down, thresholds re-checked, template
    /// released.
    pub(super) fn unbind_and_remove(&mut self, ci: u32) {
        let c = *self.conns.get(ci);
        if let Some(d) = self.dests.get_mut(c.dest as usize) {
            if c.is_template() {
                d.persist = d.persist.saturating_sub(1);
            } else if c.flags & cf::INACTIVE != 0 {
                d.inactive = d.inactive.saturating_sub(1);
            } else {
                d.active = d.active.saturating_sub(1);
            }
            d.update_overload();
            self.publish_dest(c.dest);
        }
        if c.control != NIL {
            let t = self.conns.get_mut(c.control);
            t.n_control = t.n_control.saturating_sub(1);
        }
        self.conns.remove(ci);
        self.publish_conns();
    }

    /// The control plane reads these counts for `ipvsadm -L` (ActiveConn, InActConn).
    pub(super) fn publish_dest(&self, slot: u32) {
        if let (Some(d), Some(s)) = (
            self.dests.get(slot as usize),
            self.stats.dests.get(slot as usize),
        ) {
            s.active.reset();
            s.active.add(u64::from(d.active));
            s.inactive.reset();
            s.inactive.add(u64::from(d.inactive));
            s.persist.reset();
            s.persist.add(u64::from(d.persist));
        }
        self.publish_conns();
    }

    fn publish_conns(&self) {
        self.stats.conns.reset();
        self.stats.conns.add(self.conns.len() as u64);
    }

    /// Number of connections per real-server slot of this worker (for tests and lists).
    pub fn dest_counts(&self, slot: u32) -> (u32, u32, u32) {
        self.dests
            .get(slot as usize)
            .map_or((0, 0, 0), |d| (d.active, d.inactive, d.persist))
    }
}
