//! L2/L3 of the director: owned addresses, ARP, neighbours, routes and ICMP echo.
//!
//! The worker (`worker::WorkerCore::dispatch`, the one dispatcher) runs every received
//! frame through `l2_filter` and `ipv4_input`, offers IPv4 to the IPVS engine, and hands
//! ARP and what the engine passes on to `arp_input` and `ipv4_local`, which answer it
//! (ARP reply, echo reply), learn from it (ARP), or drop it with a reason. rvs is not a
//! router: traffic for addresses it does not own is dropped. Every function here reads
//! only the L2/L3 part of the snapshot (`NetConfig`).
//!
//! A port with a kernel twin (the exception path, `up`) passes it what rvs does not
//! consume and the kernel may want: TCP, UDP and other protocols to the port's own
//! addresses (health checks' replies, ssh), ICMP other than echo requests (errors about
//! the kernel's probes, echo replies to its pings), fragments to those addresses, link
//! multicast and broadcast (VRRP, OSPF), ARP that rvs does not answer (replies to the
//! kernel's requests), and IPv6. DPVS does the same with its KNI device.

pub mod addr;
pub mod config;
pub mod neigh;
pub mod route;

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;

pub use config::{NetConfig, PortInfo, StaticNeigh};

use crate::frame::{Frame, Io};
use crate::packet::iphdr::Invalid;
use crate::packet::{
    arp, ethernet::ethertype, icmp, ArpPacket, Error, EthernetFrame, IcmpPacket, IpHdr, Ipv4Packet,
    MacAddr,
};
use crate::stats::{DropReason, WorkerStats};
use neigh::{ArpMsg, NeighTable};
use std::net::Ipv4Addr;

/// What the L2/L3 code works with while it handles a packet: its part of the snapshot,
/// the time, the I/O and the worker's counters. The worker builds it from its own parts;
/// the IPVS engine's context (`ipvs::Cx`) carries one.
pub struct Cx<'a, I> {
    pub cfg: &'a NetConfig,
    pub now_ms: u64,
    pub io: &'a mut I,
    pub stats: &'a WorkerStats,
}

/// A neighbour learned from the wire, to be shared with the other workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub port: usize,
}

/// TTL of packets rvs originates or answers (Linux's default).
pub const DEFAULT_TTL: u8 = 64;

/// Where a frame's network layer starts and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L3Start {
    pub ethertype: u16,
    pub offset: usize,
}

/// The link-layer checks every frame passes first: well-formed, for us (our MAC,
/// broadcast or multicast), not our own, untagged.
#[inline]
pub fn l2_filter(frame: &[u8], port: usize, cfg: &NetConfig) -> Result<L3Start, DropReason> {
    let pinfo = cfg.ports.get(port);
    // The untagged case, checked in place on the header's bytes.
    if let (Some(h), Some(p)) = (crate::packet::ethernet::untagged(frame), pinfo) {
        let mac = p.mac.bits();
        if h.src == mac {
            return Err(DropReason::OwnFrame);
        }
        if !h.dst_is_multicast() && h.dst != mac {
            return Err(DropReason::OtherHost);
        }
        return Ok(L3Start {
            ethertype: h.ethertype,
            offset: EthernetFrame::<&[u8]>::HEADER_LEN,
        });
    }
    let l2 = crate::packet::parse_l2(frame).map_err(|e| match e {
        Error::Truncated => DropReason::L2Truncated,
        Error::Malformed => DropReason::L2Malformed,
    })?;
    let pinfo = pinfo.ok_or(DropReason::NoRoute)?;
    if l2.src == pinfo.mac {
        return Err(DropReason::OwnFrame);
    }
    if !l2.dst.is_multicast() && l2.dst != pinfo.mac {
        return Err(DropReason::OtherHost);
    }
    if l2.vlan.is_some() {
        return Err(DropReason::Vlan);
    }
    Ok(L3Start {
        ethertype: l2.ethertype,
        offset: l2.l3_offset,
    })
}

/// Passes `frame`, which arrived on `port`, up to that port's kernel twin; without one it
/// is dropped for `reason`.
#[inline]
pub fn up<F: Frame, I: Io<Frame = F>>(
    frame: F,
    port: usize,
    reason: DropReason,
    cx: &mut Cx<'_, I>,
) -> Result<(), DropReason> {
    match cx.cfg.kernel_of(port) {
        Some(k) => {
            cx.stats.to_kernel.inc();
            cx.io.send(k, frame);
            Ok(())
        }
        None => Err(reason),
    }
}

/// IPv4 header checks done once for every IPv4 frame (lengths, version, checksum), and
/// the one parse of its header that every later stage reads.
#[inline]
pub fn ipv4_input(frame: &[u8], l3: usize) -> Result<IpHdr, DropReason> {
    IpHdr::parse_v4(frame, l3).map_err(|e| match e {
        Invalid::Truncated => DropReason::Ipv4Truncated,
        Invalid::Malformed => DropReason::Ipv4Malformed,
        Invalid::BadChecksum => DropReason::Ipv4BadChecksum,
    })
}

/// ARP: answer requests for owned addresses, learn senders. Returns a neighbour learned
/// (to share with the other workers) and what became of the frame: a learned sender
/// may come with a drop (a gratuitous ARP for another address refreshes an entry).
pub fn arp_input<F: Frame, I: Io<Frame = F>>(
    neigh: &mut NeighTable<F>,
    mut frame: F,
    l3: usize,
    port: usize,
    cx: &mut Cx<'_, I>,
) -> (Option<Learned>, Result<(), DropReason>) {
    let Some(my_mac) = cx.cfg.ports.get(port).map(|p| p.mac) else {
        return (None, Err(DropReason::NoRoute));
    };
    let (op, sha, spa, tpa) = match frame.data().get(l3..).map(ArpPacket::new_checked) {
        Some(Ok(a)) => (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip()),
        _ => return (None, Err(DropReason::ArpMalformed)),
    };
    let for_us = cx.cfg.owned.owned_on(tpa, port) && spa != tpa;
    // Learn the sender when the packet is addressed to us (as Linux does); otherwise
    // only refresh an entry we already have (gratuitous ARP, replies to others).
    let changed = neigh.learn(spa, sha, port, for_us, cx);
    let learned = changed.then_some(Learned {
        ip: spa,
        mac: sha,
        port,
    });
    if !for_us {
        // Announcements and requests for other hosts: the kernel keeps its own table.
        return (learned, up(frame, port, DropReason::ArpNotOurs, cx));
    }
    let verdict = match op {
        arp::OP_REQUEST => {
            // Answer in place: the request's buffer becomes the reply.
            let b = frame.data_mut();
            let ok = crate::packet::ethernet::emit_header(b, sha, my_mac, ethertype::ARP).is_ok()
                && b.get_mut(l3..)
                    .is_some_and(|a| arp::emit(a, arp::OP_REPLY, my_mac, tpa, sha, spa).is_ok());
            if ok {
                cx.stats.arp_replies.inc();
                cx.io.send(port, frame);
                Ok(())
            } else {
                Err(DropReason::ArpMalformed)
            }
        }
        // A reply to us has done its job by being learned above, unless the kernel
        // asked too (its own neighbour table resolves the health checks' targets).
        arp::OP_REPLY => match cx.cfg.kernel_of(port) {
            Some(_) => up(frame, port, DropReason::ArpNotOurs, cx),
            None => {
                cx.stats.arp_replies_received.inc();
                Ok(())
            }
        },
        _ => Err(DropReason::ArpMalformed),
    };
    (learned, verdict)
}

/// Local delivery of an IPv4 packet that arrived on `port`: ICMP echo for owned
/// addresses; what the kernel twin wants goes up (see the module's comment); the rest is
/// dropped with its reason.
pub fn ipv4_local<F: Frame, I: Io<Frame = F>>(
    neigh: &mut NeighTable<F>,
    mut frame: F,
    h: &IpHdr,
    port: usize,
    cx: &mut Cx<'_, I>,
) -> Result<(), DropReason> {
    // Weak host model, like Linux: an owned address is answered on any port.
    if cx.cfg.owned.get(h.dst).is_none() {
        if h.dst.is_multicast() || h.dst.is_broadcast() {
            return up(frame, port, DropReason::NotLocal, cx);
        }
        return Err(DropReason::NotLocal);
    }
    // The kernel has the ports' own addresses, not the VIPs.
    let kernels = cx.cfg.is_port_address(h.dst);
    if h.is_fragment() {
        return match kernels {
            true => up(frame, port, DropReason::Ipv4Fragment, cx),
            false => Err(DropReason::Ipv4Fragment),
        };
    }
    if h.proto != crate::packet::ipv4::protocol::ICMP {
        return match kernels {
            true => up(frame, port, DropReason::L4Unhandled, cx),
            false => Err(DropReason::L4Unhandled),
        };
    }
    match frame
        .data()
        .get(h.l4()..h.end())
        .map(IcmpPacket::new_checked)
    {
        Some(Ok(i)) if !i.verify_checksum() => return Err(DropReason::IcmpBadChecksum),
        Some(Ok(i)) if i.msg_type() != icmp::kind::ECHO_REQUEST => {
            return match kernels {
                true => up(frame, port, DropReason::IcmpUnhandled, cx),
                false => Err(DropReason::IcmpUnhandled),
            };
        }
        Some(Ok(_)) => {}
        _ => return Err(DropReason::IcmpMalformed),
    }
    let nh = cx.cfg.routes.lookup(h.src).ok_or(DropReason::NoRoute)?;
    // Turn the request into the reply in place.
    let mut ip = frame
        .data_mut()
        .get_mut(h.l3()..h.end())
        .map(Ipv4Packet::new_checked)
        .and_then(Result::ok)
        .ok_or(DropReason::Ipv4Truncated)?;
    ip.set_src(h.dst);
    ip.set_dst(h.src);
    ip.set_ttl(DEFAULT_TTL);
    ip.fill_checksum();
    IcmpPacket::new_checked(ip.payload_mut())
        .map_err(|_| DropReason::IcmpMalformed)?
        .make_echo_reply();
    cx.stats.icmp_echo_replies.inc();
    neigh.output(frame, nh.port, nh.next_hop, cx)
}

/// Announces every owned address on `port` with a gratuitous ARP request (sender and
/// target both the address, broadcast), as Linux does when an address comes up.
pub fn announce<I: Io>(port: usize, cx: &mut Cx<'_, I>) -> usize {
    let Some(mac) = cx.cfg.ports.get(port).map(|p| p.mac) else {
        return 0;
    };
    let mut n = 0;
    let cfg = cx.cfg;
    for a in cfg.owned.iter().filter(|a| a.port == port) {
        let ip = a.net.addr;
        let garp = ArpMsg {
            op: arp::OP_REQUEST,
            eth_dst: MacAddr::BROADCAST,
            sender: (mac, ip),
            target: (MacAddr::ZERO, ip),
        };
        if neigh::emit_arp(&garp, port, cx) {
            n += 1;
        }
    }
    n
}
