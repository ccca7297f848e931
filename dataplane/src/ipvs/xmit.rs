//! Forwarding per method (the kernel's `ip_vs_xmit.c`): a packet of a known connection
//! is counted, moves the state machine, and leaves rewritten for its method. NAT and
//! FULLNAT route it (TTL, address and port rewrite, TOA on a FULLNAT handshake); DR only
//! changes the MACs; TUN encapsulates it in IPIP. Replies (NAT and FULLNAT only) are
//! rewritten back toward the client.

use super::conn::{flags as cf, Conn, Fwd};
use super::dest::DestRoute;
use super::engine::{Cx, IpvsWorker, Outcome, Verdict};
use super::icmp::{FRAG_NEEDED, TIME_EXCEEDED};
use super::rewrite::{self, Encap, Nat};
use super::state::{Dir, TcpState};
use crate::frame::{Frame, Io};
use crate::packet::ipv4::protocol;
use crate::packet::tcp::flags as tf;
use crate::packet::{IpHdr, Ipv4Packet};
use crate::stats::DropReason;
use std::net::Ipv4Addr;

impl IpvsWorker {
    /// A client's packet of connection `ci`, toward its real server.
    #[inline(always)]
    pub(super) fn inbound<F: Frame, I: Io<Frame = F>>(
        &mut self,
        ci: u32,
        mut frame: F,
        h: &IpHdr,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        let c = *self.conns.get(ci);
        let slot = c.dest as usize;
        let (present, svc, route) = match self.dests.get(slot) {
            Some(d) => (
                d.present,
                d.svc,
                d.route_to(Ipv4Addr::from(c.daddr), cx.net.cfg),
            ),
            None => (false, u32::MAX, Err(DropReason::NoRoute)),
        };
        if !present && cx.ipvs.expire_nodest_conn {
            self.unbind_and_remove(ci);
            return Err(DropReason::NoDestConn);
        }
        self.transition(ci, h, Dir::Input);
        self.stats
            .count(Dir::Input, slot, svc as usize, u64::from(h.len));
        let daddr = Ipv4Addr::from(c.daddr);
        // As the kernel: a routed packet's TTL is checked before its route is used.
        let route = match c.fwd() {
            Fwd::Dr => route?,
            Fwd::Tun => return self.encap_and_send(frame, h, daddr, &route?, cx),
            Fwd::Nat => {
                self.ttl_check(&frame, h, cx)?;
                let nat = Nat {
                    dst: Some((daddr, c.dport)),
                    ..Nat::default()
                };
                rewrite::l4(frame.data_mut(), h, &nat)?;
                route?
            }
            Fwd::FullNat => {
                self.ttl_check(&frame, h, cx)?;
                let route = route?;
                let fnat = Nat {
                    src: Some((Ipv4Addr::from(c.laddr), c.lport)),
                    dst: Some((daddr, c.dport)),
                    keep_ttl: false,
                };
                rewrite::l4(frame.data_mut(), h, &fnat)?;
                if self.wants_toa(&c, h, cx) {
                    let client = Ipv4Addr::from(c.caddr);
                    if !rewrite::insert_toa(&mut frame, h, client, c.cport, route.mtu) {
                        // Forwarded without it: the options area or the MTU had no room.
                        self.stats.toa_skipped.inc();
                    }
                }
                route
            }
        };
        cx.neigh
            .output(frame, route.port(), route.next_hop, &mut cx.net)?;
        Ok(Verdict::Done)
    }

    /// A real server's reply of connection `ci`, back toward the client.
    #[inline]
    pub(super) fn outbound<F: Frame, I: Io<Frame = F>>(
        &mut self,
        ci: u32,
        mut frame: F,
        h: &IpHdr,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        self.conns.get_mut(ci).flags &= !cf::NOOUTPUT;
        self.transition(ci, h, Dir::Output);
        let c = *self.conns.get(ci);
        let svc = self.dests.get(c.dest as usize).map_or(u32::MAX, |d| d.svc);
        self.stats
            .count(Dir::Output, c.dest as usize, svc as usize, u64::from(h.len));
        self.ttl_check(&frame, h, cx)?;
        let caddr = Ipv4Addr::from(c.caddr);
        let back = Nat {
            src: Some((Ipv4Addr::from(c.vaddr), c.vport)),
            dst: (c.fwd() == Fwd::FullNat).then_some((caddr, c.cport)),
            keep_ttl: false,
        };
        rewrite::l4(frame.data_mut(), h, &back)?;
        cx.route_out(frame, caddr)?;
        Ok(Verdict::Done)
    }

    /// TOA goes on the SYN and on the client's packets until the connection is
    /// established (the handshake-completing ACK is what the real server's toa module
    /// reads).
    #[inline]
    fn wants_toa<F, I>(&self, c: &Conn, h: &IpHdr, cx: &Cx<'_, F, I>) -> bool {
        // The packet's own conditions first: they are what most packets fail on.
        h.proto == protocol::TCP
            && (h.tcp_flags & tf::SYN != 0
                || TcpState::from_u8(c.state) == TcpState::Established
                    && h.tcp_flags & tf::ACK != 0
                    && c.flags & cf::NOOUTPUT == 0)
            && self
                .dests
                .get(c.dest as usize)
                .and_then(|d| cx.ipvs.by_slot(d.svc))
                .is_some_and(|s| s.toa)
    }

    /// A packet rvs routes must have a TTL to spare; at 1 it answers time-exceeded and
    /// the packet is dropped. (The rewrite then decrements it.)
    #[inline]
    pub(super) fn ttl_check<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: &F,
        h: &IpHdr,
        cx: &mut Cx<'_, F, I>,
    ) -> Result<(), DropReason> {
        if h.ttl <= 1 {
            self.send_icmp(frame, h, TIME_EXCEEDED, 0, cx);
            return Err(DropReason::TtlExceeded);
        }
        Ok(())
    }

    /// Decrements the TTL of a packet rvs routes whose rewrite does not fold it in
    /// (fragments, ICMP errors: slow paths); at 1 it answers time-exceeded and the
    /// packet is dropped.
    pub(super) fn ttl<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: &mut F,
        h: &IpHdr,
        cx: &mut Cx<'_, F, I>,
    ) -> Result<(), DropReason> {
        self.ttl_check(frame, h, cx)?;
        let mut ip = frame
            .data_mut()
            .get_mut(h.l3()..h.end())
            .map(Ipv4Packet::new_checked)
            .and_then(Result::ok)
            .ok_or(DropReason::Ipv4Truncated)?;
        ip.decrement_ttl();
        Ok(())
    }

    /// IPIP toward the real server `daddr` of slot `dest`, over its cached route.
    pub(super) fn tunnel<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: F,
        h: &IpHdr,
        dest: u32,
        daddr: Ipv4Addr,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        let route = self
            .dests
            .get(dest as usize)
            .copied()
            .unwrap_or_default()
            .route_to(daddr, cx.net.cfg)?;
        self.encap_and_send(frame, h, daddr, &route, cx)
    }

    /// IPIP toward the real server `daddr` over `route` and out, or the ICMP/drop the
    /// encapsulation calls for.
    pub(super) fn encap_and_send<F: Frame, I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        h: &IpHdr,
        daddr: Ipv4Addr,
        route: &DestRoute,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        let src = route.src().ok_or(DropReason::NoRoute)?;
        self.ip_ident = self.ip_ident.wrapping_add(self.workers as u16);
        match rewrite::ipip_encap(&mut frame, h, src, daddr, route.mtu, self.ip_ident) {
            Encap::Done => {
                cx.neigh
                    .output(frame, route.port(), route.next_hop, &mut cx.net)?;
                Ok(Verdict::Done)
            }
            Encap::FragNeeded(m) => {
                self.send_icmp(&frame, h, FRAG_NEEDED, u32::from(m), cx);
                Err(DropReason::FragNeeded)
            }
            Encap::Failed => Err(DropReason::TooBig),
        }
    }
}
