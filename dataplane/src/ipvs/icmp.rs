//! ICMP in the IPVS engine: errors (destination unreachable, time exceeded) about tracked
//! connections are translated and passed to the other side, as the kernel's
//! `ip_vs_in_icmp`/`ip_vs_out_icmp` do; and the errors the director originates itself
//! (time exceeded, port unreachable, fragmentation needed).

use super::conn::{Fwd, Key};
use super::engine::{Cx, IpvsWorker, Outcome, Verdict};
use super::rewrite;
use crate::frame::{Frame, Io};
use crate::packet::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use crate::packet::{checksum, ethernet, icmp, tcp, IpHdr};
use crate::stats::DropReason;
use std::net::Ipv4Addr;

/// ICMP "time exceeded in transit".
pub const TIME_EXCEEDED: (u8, u8) = (icmp::kind::TIME_EXCEEDED, 0);
/// ICMP "port unreachable" (no real server available, as the kernel answers).
pub const PORT_UNREACHABLE: (u8, u8) = (icmp::kind::DEST_UNREACHABLE, 3);
/// ICMP "fragmentation needed and DF set".
pub const FRAG_NEEDED: (u8, u8) = (icmp::kind::DEST_UNREACHABLE, icmp::kind::CODE_FRAG_NEEDED);

/// Length of the ICMP error header in front of the quote.
const ICMP_HEADER_LEN: usize = 8;

/// The packet an ICMP error quotes: its header fields and the first 4 bytes of its L4
/// header (the ports). Parsed leniently: a quote is truncated by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// Offset of the quoted IP header inside the ICMP message.
    pub off: usize,
    pub hl: usize,
}

/// Reads the quoted packet of an ICMP error message (`icmp` is the whole ICMP message).
pub fn quoted(icmp: &[u8]) -> Option<Quoted> {
    if !matches!(
        icmp.first(),
        Some(&(icmp::kind::DEST_UNREACHABLE | icmp::kind::TIME_EXCEEDED))
    ) {
        return None;
    }
    let q = icmp.get(ICMP_HEADER_LEN..)?;
    let vihl = *q.get(ipv4::field::VERSION_IHL)?;
    if q.len() < Ipv4Packet::<&[u8]>::MIN_HEADER_LEN || vihl >> 4 != 4 {
        return None;
    }
    let hl = usize::from(vihl & 0x0f) * 4;
    if hl < Ipv4Packet::<&[u8]>::MIN_HEADER_LEN || q.len() < hl + 4 {
        return None;
    }
    // The quote may be cut short, so no checked view: only the fixed header and the
    // ports, whose presence was checked above.
    let a = |o: usize| Ipv4Addr::new(q[o], q[o + 1], q[o + 2], q[o + 3]);
    // TCP and UDP both start with the two ports.
    let port = |o: usize| u16::from_be_bytes([q[hl + o], q[hl + o + 1]]);
    Some(Quoted {
        proto: q[ipv4::field::PROTOCOL],
        src: a(ipv4::field::SRC),
        dst: a(ipv4::field::DST),
        sport: port(tcp::field::SRC_PORT),
        dport: port(tcp::field::DST_PORT),
        off: ICMP_HEADER_LEN,
        hl,
    })
}

/// The addresses an ICMP error is translated to: outer source and destination, quoted
/// source and destination endpoints (`rewrite::icmp`'s arguments; None = unchanged).
struct IcmpRewrite {
    outer: (Option<Ipv4Addr>, Option<Ipv4Addr>),
    q_src: Option<(Ipv4Addr, u16)>,
    q_dst: Option<(Ipv4Addr, u16)>,
}

impl IpvsWorker {
    /// An ICMP error about a tracked connection is translated and forwarded; anything
    /// else goes on to local delivery.
    pub(super) fn icmp_error<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: F,
        h: &IpHdr,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        if h.is_fragment() {
            return Ok(Verdict::Pass(frame));
        }
        let q = match frame.data().get(h.l4()..h.end()).and_then(quoted) {
            Some(q) if matches!(q.proto, protocol::TCP | protocol::UDP) => q,
            _ => return Ok(Verdict::Pass(frame)),
        };
        // The quoted packet travelled the other way; turned round, it is either a client's
        // view of a connection (rvs had sent it toward the client) or a real server's
        // reply view (rvs had forwarded it to the real server).
        let turned = Key {
            proto: q.proto,
            saddr: q.dst.into(),
            sport: q.dport,
            daddr: q.src.into(),
            dport: q.sport,
        };
        if let Some(ci) = self.conns.lookup_in(&turned) {
            let c = *self.conns.get(ci);
            let (daddr, laddr) = (Ipv4Addr::from(c.daddr), Ipv4Addr::from(c.laddr));
            let fnat = c.fwd() == Fwd::FullNat;
            let rewrite = match c.fwd() {
                Fwd::Dr => None,
                Fwd::Tun => {
                    self.stats.icmp_translated.inc();
                    return self.tunnel(frame, h, c.dest, daddr, cx);
                }
                Fwd::Nat | Fwd::FullNat => Some(IcmpRewrite {
                    outer: (fnat.then_some(laddr), Some(daddr)),
                    q_src: Some((daddr, c.dport)),
                    q_dst: fnat.then_some((laddr, c.lport)),
                }),
            };
            return self.pass_icmp(frame, h, rewrite, daddr, cx);
        }
        if let Some(ci) = self.conns.lookup_out(&turned) {
            let c = *self.conns.get(ci);
            let (vaddr, caddr) = (Ipv4Addr::from(c.vaddr), Ipv4Addr::from(c.caddr));
            let fnat = c.fwd() == Fwd::FullNat;
            let rewrite = IcmpRewrite {
                outer: (Some(vaddr), fnat.then_some(caddr)),
                q_src: fnat.then_some((caddr, c.cport)),
                q_dst: Some((vaddr, c.vport)),
            };
            return self.pass_icmp(frame, h, Some(rewrite), caddr, cx);
        }
        Ok(Verdict::Pass(frame))
    }

    /// Forwards a translated ICMP error toward `to`. With a rewrite the packet is routed
    /// by rvs: TTL first, then the rewrite; without, only its MACs change (DR).
    fn pass_icmp<F: Frame, I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        h: &IpHdr,
        rewrite: Option<IcmpRewrite>,
        to: Ipv4Addr,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        if let Some(r) = rewrite {
            self.ttl(&mut frame, h, cx)?;
            rewrite::icmp(frame.data_mut(), h, r.outer, r.q_src, r.q_dst)?;
        }
        self.stats.icmp_translated.inc();
        cx.route_out(frame, to)?;
        Ok(Verdict::Done)
    }

    /// Sends the ICMP error `kind` about the packet `h` of `about` back to its sender.
    /// Best effort: a failure here is not the fate of the packet it is about.
    pub(super) fn send_icmp<F: Frame, I: Io<Frame = F>>(
        &mut self,
        about: &F,
        h: &IpHdr,
        kind: (u8, u8),
        info: u32,
        cx: &mut Cx<'_, F, I>,
    ) {
        let Some(orig) = about.data().get(h.l3()..h.end()) else {
            return;
        };
        let Some(nh) = cx.net.cfg.routes.lookup(h.src) else {
            return;
        };
        let Some(src) = cx.net.cfg.owned.source_for(nh.port, h.src) else {
            return;
        };
        let Some(mut f) = cx.net.io.alloc() else {
            cx.net.stats.dropped(DropReason::AllocFailed);
            return;
        };
        if build_error(&mut f, orig, h.src, src, kind, info) {
            if let Err(r) = cx.neigh.output(f, nh.port, nh.next_hop, &mut cx.net) {
                cx.net.stats.dropped(r);
            }
        }
    }
}

/// Builds an ICMP error (`kind`/`code`, with `info` in bytes 4-7: the next-hop MTU for
/// fragmentation-needed) about the IPv4 packet `orig` (whole, without link-layer
/// padding), from `src` to its sender `to`, behind a blank Ethernet header. At most 576
/// bytes, as RFC 1812 asks.
pub fn build_error<F: Frame>(
    frame: &mut F,
    orig: &[u8],
    to: Ipv4Addr,
    src: Ipv4Addr,
    (kind, code): (u8, u8),
    info: u32,
) -> bool {
    const ETH: usize = ethernet::EthernetFrame::<&[u8]>::HEADER_LEN;
    const IP: usize = Ipv4Packet::<&[u8]>::MIN_HEADER_LEN;
    let quote = orig.len().min(576 - IP - ICMP_HEADER_LEN);
    let icmp_len = ICMP_HEADER_LEN + quote;
    if !frame.set_len(ETH + IP + icmp_len) {
        return false;
    }
    let b = frame.data_mut();
    if ethernet::emit_header(
        b,
        ethernet::MacAddr::ZERO,
        ethernet::MacAddr::ZERO,
        ethernet::ethertype::IPV4,
    )
    .is_err()
    {
        return false;
    }
    let repr = Ipv4Repr {
        src,
        dst: to,
        protocol: protocol::ICMP,
        payload_len: icmp_len,
        ttl: 64,
        ident: 0,
        dont_frag: false,
        dscp_ecn: 0xc0,
    };
    if repr.emit(&mut b[ETH..]).is_err() {
        return false;
    }
    use icmp::field;
    let m = &mut b[ETH + IP..];
    m[field::TYPE] = kind;
    m[field::CODE] = code;
    m[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
    m[field::REST..ICMP_HEADER_LEN].copy_from_slice(&info.to_be_bytes());
    m[ICMP_HEADER_LEN..ICMP_HEADER_LEN + quote].copy_from_slice(&orig[..quote]);
    let c = checksum::checksum(m);
    m[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::HeapFrame;
    use crate::packet::build::{self, ip, L};
    use crate::packet::{dissect, L3Summary, L4Summary};

    #[test]
    fn icmp_errors_quote_the_packet() {
        let orig = build::udp(L, (ip(1), 53), (ip(100), 53), b"hello");
        let mut f = HeapFrame::new();
        let quoted_packet = &orig[14..14 + 33];
        assert!(build_error(
            &mut f,
            quoted_packet,
            ip(1),
            ip(2),
            FRAG_NEEDED,
            1480
        ));
        let d = dissect(f.data()).unwrap();
        match d.l3 {
            L3Summary::Ip {
                src,
                dst,
                checksum_ok: true,
                l4:
                    L4Summary::Icmp {
                        msg_type: 3,
                        code: 4,
                        checksum_ok: true,
                    },
                ..
            } => {
                assert_eq!((src, dst), (ip(2).into(), ip(1).into()));
            }
            other => panic!("{other:?}"),
        }
        let ipk = Ipv4Packet::new_checked(&f.data()[14..]).unwrap();
        let m = crate::packet::IcmpPacket::new_checked(ipk.payload()).unwrap();
        assert_eq!(m.next_hop_mtu(), 1480);
        assert_eq!(m.data(), &orig[14..14 + 33]);
    }
}
