//! L2/L3 of the director: owned addresses, ARP, neighbours, routes and ICMP echo.
//!
//! `NetStack::input` takes every received frame that the IPVS layer did not claim and
//! either answers it (ARP reply, echo reply), learns from it (ARP), or drops it with a
//! reason. rvs is not a router: traffic for addresses it does not own is dropped.

pub mod addr;
pub mod neigh;
pub mod route;

#[cfg(test)]
mod tests;

use crate::frame::{Frame, Io};
use crate::packet::{
    arp, ethernet::ethertype, icmp, ArpPacket, Error, IcmpPacket, Ipv4Packet, MacAddr,
};
use crate::snapshot::Snapshot;
use crate::stats::{DropReason, WorkerStats};
use neigh::{NeighParams, NeighTable};
use std::net::Ipv4Addr;

/// A neighbour learned from the wire, to be shared with the other workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub port: usize,
}

pub struct NetStack<F> {
    pub neigh: NeighTable<F>,
}

/// TTL of packets rvs originates or answers (Linux's default).
pub const DEFAULT_TTL: u8 = 64;

impl<F: Frame> NetStack<F> {
    pub fn new(params: NeighParams) -> Self {
        NetStack {
            neigh: NeighTable::new(params),
        }
    }

    /// Handles one received frame with no IPVS in the way (tests, tools). Returns a
    /// neighbour learned from it, if any.
    pub fn input<I: Io<Frame = F>>(
        &mut self,
        frame: F,
        port: usize,
        snap: &Snapshot,
        now: u64,
        io: &mut I,
        stats: &WorkerStats,
    ) -> Option<Learned> {
        let l2 = self.l2_filter(&frame, port, snap, stats)?;
        match l2.ethertype {
            ethertype::ARP => self.arp_input(frame, l2.l3_offset, port, snap, now, io, stats),
            ethertype::IPV4 => {
                if ipv4_validate(&frame, l2.l3_offset, stats) {
                    self.ipv4_local(frame, l2.l3_offset, snap, now, io, stats);
                }
                None
            }
            ethertype::IPV6 => drop(stats, DropReason::Ipv6),
            _ => drop(stats, DropReason::UnknownEthertype),
        }
    }

    /// The link-layer checks every frame passes first: well-formed, for us (our MAC,
    /// broadcast or multicast), not our own, untagged. None when dropped (and counted).
    pub fn l2_filter(
        &self,
        frame: &F,
        port: usize,
        snap: &Snapshot,
        stats: &WorkerStats,
    ) -> Option<crate::packet::L2Info> {
        let l2 = match crate::packet::parse_l2(frame.data()) {
            Ok(l2) => l2,
            Err(Error::Truncated) => return drop_l2(stats, DropReason::L2Truncated),
            Err(Error::Malformed) => return drop_l2(stats, DropReason::L2Malformed),
        };
        let Some(pinfo) = snap.ports.get(port) else {
            return drop_l2(stats, DropReason::NoRoute);
        };
        if l2.src == pinfo.mac {
            return drop_l2(stats, DropReason::OwnFrame);
        }
        if !l2.dst.is_multicast() && l2.dst != pinfo.mac {
            return drop_l2(stats, DropReason::OtherHost);
        }
        if l2.vlan.is_some() {
            return drop_l2(stats, DropReason::Vlan);
        }
        Some(l2)
    }

    /// ARP: answer requests for owned addresses, learn senders.
    #[allow(clippy::too_many_arguments)]
    pub fn arp_input<I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        l3: usize,
        port: usize,
        snap: &Snapshot,
        now: u64,
        io: &mut I,
        stats: &WorkerStats,
    ) -> Option<Learned> {
        let Some(my_mac) = snap.ports.get(port).map(|p| p.mac) else {
            return drop(stats, DropReason::NoRoute);
        };
        let (op, sha, spa, tpa) = match frame.data().get(l3..).map(ArpPacket::new_checked) {
            Some(Ok(a)) => (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip()),
            _ => return drop(stats, DropReason::ArpMalformed),
        };
        let for_us = snap.owned.owned_on(tpa, port) && spa != tpa;
        // Learn the sender when the packet is addressed to us (as Linux does); otherwise
        // only refresh an entry we already have (gratuitous ARP, replies to others).
        let changed = self
            .neigh
            .learn(spa, sha, port, for_us, now, snap, io, stats);
        let learned = changed.then_some(Learned {
            ip: spa,
            mac: sha,
            port,
        });
        if !for_us {
            stats.dropped(DropReason::ArpNotOurs);
            return learned;
        }
        match op {
            arp::OP_REQUEST => {
                // Answer in place: the request's buffer becomes the reply.
                let b = frame.data_mut();
                let ok = crate::packet::ethernet::emit_header(b, sha, my_mac, ethertype::ARP)
                    .is_ok()
                    && b.get_mut(l3..).is_some_and(|a| {
                        arp::emit(a, arp::OP_REPLY, my_mac, tpa, sha, spa).is_ok()
                    });
                if ok {
                    stats.arp_replies.inc();
                    io.send(port, frame);
                } else {
                    stats.dropped(DropReason::ArpMalformed);
                }
            }
            // A reply to us has done its job by being learned above.
            arp::OP_REPLY => stats.arp_replies_received.inc(),
            _ => stats.dropped(DropReason::ArpMalformed),
        }
        learned
    }

    /// Local delivery of a validated IPv4 packet: ICMP echo for owned addresses; the
    /// rest is dropped with its reason.
    pub fn ipv4_local<I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        l3: usize,
        snap: &Snapshot,
        now: u64,
        io: &mut I,
        stats: &WorkerStats,
    ) {
        let Some(Ok(ip)) = frame.data().get(l3..).map(Ipv4Packet::new_checked) else {
            return stats.dropped(DropReason::Ipv4Truncated);
        };
        // Weak host model, like Linux: an owned address is answered on any port.
        if snap.owned.get(ip.dst()).is_none() {
            return stats.dropped(DropReason::NotLocal);
        }
        if ip.is_fragment() {
            return stats.dropped(DropReason::Ipv4Fragment);
        }
        if ip.protocol() != crate::packet::ipv4::protocol::ICMP {
            return stats.dropped(DropReason::L4Unhandled);
        }
        let (src, dst) = (ip.src(), ip.dst());
        match IcmpPacket::new_checked(ip.payload()) {
            Err(_) => return stats.dropped(DropReason::IcmpMalformed),
            Ok(i) if !i.verify_checksum() => return stats.dropped(DropReason::IcmpBadChecksum),
            Ok(i) if i.msg_type() != icmp::kind::ECHO_REQUEST => {
                return stats.dropped(DropReason::IcmpUnhandled)
            }
            Ok(_) => {}
        }
        let Some(nh) = snap.routes.lookup(src) else {
            return stats.dropped(DropReason::NoRoute);
        };
        // Turn the request into the reply in place. Bounds were checked above, so the
        // views below cannot fail; the error arms are for the type system only.
        let Some(Ok(mut ip)) = frame.data_mut().get_mut(l3..).map(Ipv4Packet::new_checked) else {
            return stats.dropped(DropReason::Ipv4Truncated);
        };
        ip.set_src(dst);
        ip.set_dst(src);
        ip.set_ttl(DEFAULT_TTL);
        ip.fill_checksum();
        match IcmpPacket::new_checked(ip.payload_mut()) {
            Ok(mut i) => i.make_echo_reply(),
            Err(_) => return stats.dropped(DropReason::IcmpMalformed),
        }
        stats.icmp_echo_replies.inc();
        self.neigh
            .output(frame, nh.port, nh.next_hop, now, snap, io, stats);
    }

    /// Announces every owned address on `port` with a gratuitous ARP request (sender and
    /// target both the address, broadcast), as Linux does when an address comes up.
    pub fn announce<I: Io<Frame = F>>(
        &mut self,
        port: usize,
        snap: &Snapshot,
        io: &mut I,
        stats: &WorkerStats,
    ) -> usize {
        let Some(p) = snap.ports.get(port) else {
            return 0;
        };
        let mut n = 0;
        for a in snap.owned.iter().filter(|a| a.port == port) {
            let ip = a.net.addr;
            if neigh::emit_arp(
                arp::OP_REQUEST,
                MacAddr::BROADCAST,
                p.mac,
                ip,
                MacAddr::ZERO,
                ip,
                port,
                io,
                stats,
            ) {
                n += 1;
            }
        }
        n
    }
}

/// IPv4 header checks done once for every IPv4 frame: lengths, version, checksum.
pub fn ipv4_validate<F: Frame>(frame: &F, l3: usize, stats: &WorkerStats) -> bool {
    let Some(buf) = frame.data().get(l3..) else {
        stats.dropped(DropReason::Ipv4Truncated);
        return false;
    };
    match Ipv4Packet::new_checked(buf) {
        Ok(ip) if ip.verify_checksum() => true,
        Ok(_) => {
            stats.dropped(DropReason::Ipv4BadChecksum);
            false
        }
        Err(Error::Truncated) => {
            stats.dropped(DropReason::Ipv4Truncated);
            false
        }
        Err(Error::Malformed) => {
            stats.dropped(DropReason::Ipv4Malformed);
            false
        }
    }
}

#[inline]
fn drop_l2(stats: &WorkerStats, reason: DropReason) -> Option<crate::packet::L2Info> {
    stats.dropped(reason);
    None
}

#[inline]
fn drop(stats: &WorkerStats, reason: DropReason) -> Option<Learned> {
    stats.dropped(reason);
    None
}
