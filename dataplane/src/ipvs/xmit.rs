//! Packet rewrites of the forwarding methods, on a frame whose IPv4 header starts at
//! `l3`. Checksums are patched incrementally (RFC 1624) except where bytes are inserted.

use crate::frame::Frame;
use crate::packet::checksum;
use crate::packet::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use crate::packet::{ethernet, icmp};
use std::net::Ipv4Addr;

/// Rewrites source and/or destination address and port of a TCP or UDP packet, patching
/// the IP and L4 checksums. The L4 header must be complete (checked by the caller).
pub fn rewrite(buf: &mut [u8], src: Option<(Ipv4Addr, u16)>, dst: Option<(Ipv4Addr, u16)>) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(&*buf) else {
        return false;
    };
    let (hl, proto, total) = (ip.header_len(), ip.protocol(), ip.total_len());
    let csum_off = match proto {
        protocol::TCP if total >= hl + 20 => hl + 16,
        protocol::UDP if total >= hl + 8 => hl + 6,
        _ => return false,
    };
    let rd16 = |b: &[u8], o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
    let rd32 = |b: &[u8], o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut ipc = rd16(buf, 10);
    let mut l4c = rd16(buf, csum_off);
    // UDP checksum 0 means "none": it stays 0.
    let l4_on = !(proto == protocol::UDP && l4c == 0);
    for (addr_off, port_off, new) in [(12usize, hl, src), (16usize, hl + 2, dst)] {
        let Some((a, p)) = new else { continue };
        let (oa, na) = (rd32(buf, addr_off), u32::from(a));
        let (op, np) = (rd16(buf, port_off), p);
        ipc = checksum::update32(ipc, oa, na);
        if l4_on {
            l4c = checksum::update32(l4c, oa, na);
            l4c = checksum::update16(l4c, op, np);
        }
        buf[addr_off..addr_off + 4].copy_from_slice(&na.to_be_bytes());
        buf[port_off..port_off + 2].copy_from_slice(&np.to_be_bytes());
    }
    if proto == protocol::UDP && l4_on && l4c == 0 {
        l4c = 0xffff;
    }
    buf[10..12].copy_from_slice(&ipc.to_be_bytes());
    buf[csum_off..csum_off + 2].copy_from_slice(&l4c.to_be_bytes());
    true
}

/// Rewrites only the IP addresses (a non-first fragment: no L4 header to patch; the first
/// fragment's L4 checksum update covers the whole datagram).
pub fn rewrite_ip(buf: &mut [u8], src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) -> bool {
    if Ipv4Packet::new_checked(&*buf).is_err() {
        return false;
    }
    let mut ipc = u16::from_be_bytes([buf[10], buf[11]]);
    for (off, new) in [(12usize, src), (16usize, dst)] {
        let Some(a) = new else { continue };
        let old = u32::from_be_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]);
        ipc = checksum::update32(ipc, old, a.into());
        buf[off..off + 4].copy_from_slice(&a.octets());
    }
    buf[10..12].copy_from_slice(&ipc.to_be_bytes());
    true
}

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
    let q = icmp.get(8..)?;
    if q.len() < 20 || q[0] >> 4 != 4 {
        return None;
    }
    let hl = usize::from(q[0] & 0x0f) * 4;
    if hl < 20 || q.len() < hl + 4 {
        return None;
    }
    let a = |o: usize| Ipv4Addr::new(q[o], q[o + 1], q[o + 2], q[o + 3]);
    Some(Quoted {
        proto: q[9],
        src: a(12),
        dst: a(16),
        sport: u16::from_be_bytes([q[hl], q[hl + 1]]),
        dport: u16::from_be_bytes([q[hl + 2], q[hl + 3]]),
        off: 8,
        hl,
    })
}

/// Translates an ICMP error packet (IPv4 at the start of `buf`): the outer addresses,
/// and the quoted packet's addresses and ports; then the quoted IP checksum, the ICMP
/// checksum (recomputed) and the outer IP checksum. The quoted L4 checksum is left as
/// is, as the kernel does (it may be truncated anyway).
pub fn rewrite_icmp(
    buf: &mut [u8],
    outer_src: Option<Ipv4Addr>,
    outer_dst: Option<Ipv4Addr>,
    q_src: Option<(Ipv4Addr, u16)>,
    q_dst: Option<(Ipv4Addr, u16)>,
) -> bool {
    let (hl, total) = match Ipv4Packet::new_checked(&*buf) {
        Ok(ip) => (ip.header_len(), ip.total_len()),
        Err(_) => return false,
    };
    let Some(q) = buf.get(hl..total).and_then(quoted) else {
        return false;
    };
    let qip = hl + q.off;
    for (addr_off, port_off, new) in [(12usize, 0usize, q_src), (16usize, 2usize, q_dst)] {
        let Some((a, p)) = new else { continue };
        buf[qip + addr_off..qip + addr_off + 4].copy_from_slice(&a.octets());
        buf[qip + q.hl + port_off..qip + q.hl + port_off + 2].copy_from_slice(&p.to_be_bytes());
    }
    buf[qip + 10..qip + 12].copy_from_slice(&[0, 0]);
    let qc = checksum::checksum(&buf[qip..qip + q.hl]);
    buf[qip + 10..qip + 12].copy_from_slice(&qc.to_be_bytes());
    buf[hl + 2..hl + 4].copy_from_slice(&[0, 0]);
    let ic = checksum::checksum(&buf[hl..total]);
    buf[hl + 2..hl + 4].copy_from_slice(&ic.to_be_bytes());
    rewrite_ip(&mut buf[..total], outer_src, outer_dst)
}

/// Outcome of an encapsulation attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    Done,
    /// The packet has DF set and would exceed the MTU: tell the sender this MTU.
    FragNeeded(u16),
    /// Too big without DF (rvs does not fragment), or no room in the buffer.
    Failed,
}

/// IPIP (RFC 2003): puts an outer IPv4 header between the Ethernet header (at 0..l3) and
/// the packet. The outer header copies TOS and DF from the inner one.
pub fn ipip_encap<F: Frame>(
    frame: &mut F,
    l3: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mtu: u16,
    ident: u16,
) -> Encap {
    let (inner_len, tos, df) = match frame.data().get(l3..).map(Ipv4Packet::new_checked) {
        Some(Ok(ip)) => (ip.total_len(), ip.dscp_ecn(), ip.dont_frag()),
        _ => return Encap::Failed,
    };
    if inner_len + 20 > usize::from(mtu) {
        return if df {
            Encap::FragNeeded(mtu.saturating_sub(20))
        } else {
            Encap::Failed
        };
    }
    // Drop any Ethernet padding, then make room in front.
    if !frame.set_len(l3 + inner_len) || !frame.prepend(20) {
        return Encap::Failed;
    }
    let b = frame.data_mut();
    b.copy_within(20..20 + l3, 0);
    let outer = Ipv4Repr {
        src,
        dst,
        protocol: protocol::IPIP,
        payload_len: inner_len,
        ttl: 64,
        ident,
        dont_frag: df,
        dscp_ecn: tos,
    };
    if outer.emit(&mut b[l3..]).is_err() {
        return Encap::Failed;
    }
    Encap::Done
}

/// Builds an ICMP error (`kind`/`code`, with `info` in bytes 4-7: the next-hop MTU for
/// fragmentation-needed) about the IPv4 packet `orig`, from `src` to the original
/// sender, behind a blank Ethernet header. At most 576 bytes, as RFC 1812 asks.
pub fn icmp_error<F: Frame>(
    frame: &mut F,
    orig: &[u8],
    src: Ipv4Addr,
    kind: u8,
    code: u8,
    info: u32,
) -> Option<Ipv4Addr> {
    let ip = Ipv4Packet::new_checked(orig).ok()?;
    let to = ip.src();
    let quote = ip.total_len().min(576 - 28).min(orig.len());
    let icmp_len = 8 + quote;
    if !frame.set_len(14 + 20 + icmp_len) {
        return None;
    }
    let b = frame.data_mut();
    ethernet::emit_header(
        b,
        ethernet::MacAddr::ZERO,
        ethernet::MacAddr::ZERO,
        ethernet::ethertype::IPV4,
    )
    .ok()?;
    Ipv4Repr {
        src,
        dst: to,
        protocol: protocol::ICMP,
        payload_len: icmp_len,
        ttl: 64,
        ident: 0,
        dont_frag: false,
        dscp_ecn: 0xc0,
    }
    .emit(&mut b[14..])
    .ok()?;
    let m = &mut b[34..];
    m[0] = kind;
    m[1] = code;
    m[2..4].copy_from_slice(&[0, 0]);
    m[4..8].copy_from_slice(&info.to_be_bytes());
    m[8..8 + quote].copy_from_slice(&orig[..quote]);
    let c = checksum::checksum(m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Some(to)
}

/// ICMP "time exceeded in transit".
pub const TIME_EXCEEDED: (u8, u8) = (icmp::kind::TIME_EXCEEDED, 0);
/// ICMP "port unreachable" (no real server available, as the kernel answers).
pub const PORT_UNREACHABLE: (u8, u8) = (icmp::kind::DEST_UNREACHABLE, 3);
/// ICMP "fragmentation needed and DF set".
pub const FRAG_NEEDED: (u8, u8) = (icmp::kind::DEST_UNREACHABLE, icmp::kind::CODE_FRAG_NEEDED);

/// TCP option kind of TOA ("TCP option address"), as DPVS and the Linux toa module use.
pub const TOA_KIND: u8 = 254;
pub const TOA_LEN: usize = 8;

/// Inserts a TOA option (kind 254, length 8, client port, client IPv4 address) at the end
/// of the TCP options of the packet at `l3`, growing the frame by 8 bytes. Returns false
/// (and leaves the packet untouched) when the options area or the MTU has no room.
pub fn insert_toa<F: Frame>(
    frame: &mut F,
    l3: usize,
    client: Ipv4Addr,
    cport: u16,
    mtu: u16,
) -> bool {
    let (hl, total, thl) = match frame.data().get(l3..).map(Ipv4Packet::new_checked) {
        Some(Ok(ip)) if ip.protocol() == protocol::TCP => {
            let p = ip.payload();
            if p.len() < 20 {
                return false;
            }
            (ip.header_len(), ip.total_len(), usize::from(p[12] >> 4) * 4)
        }
        _ => return false,
    };
    if thl + TOA_LEN > 60 || total + TOA_LEN > usize::from(mtu) {
        return false;
    }
    let end = l3 + total;
    if !frame.set_len(end) || !frame.set_len(end + TOA_LEN) {
        return false;
    }
    let b = frame.data_mut();
    let opt_end = l3 + hl + thl;
    b.copy_within(opt_end..end, opt_end + TOA_LEN);
    b[opt_end] = TOA_KIND;
    b[opt_end + 1] = TOA_LEN as u8;
    b[opt_end + 2..opt_end + 4].copy_from_slice(&cport.to_be_bytes());
    b[opt_end + 4..opt_end + 8].copy_from_slice(&client.octets());
    let tcp_off = l3 + hl;
    b[tcp_off + 12] = (((thl + TOA_LEN) / 4) as u8) << 4 | (b[tcp_off + 12] & 0x0f);
    // New IP total length and header checksum, then the TCP checksum over the grown
    // segment (insertion changes too much for an incremental update).
    let new_total = (total + TOA_LEN) as u16;
    b[l3 + 2..l3 + 4].copy_from_slice(&new_total.to_be_bytes());
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut b[l3..end + TOA_LEN]) else {
        return false;
    };
    ip.fill_checksum();
    let (s, d) = (ip.src(), ip.dst());
    match crate::packet::TcpPacket::new_checked(ip.payload_mut()) {
        Ok(mut t) => {
            t.fill_checksum_v4(s, d);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::HeapFrame;
    use crate::packet::build::{self, Link};
    use crate::packet::{dissect, L3Summary, L4Summary, MacAddr, TcpPacket};
    use proptest::prelude::*;

    const L: Link = Link {
        src: MacAddr([2, 0, 0, 0, 0, 1]),
        dst: MacAddr([2, 0, 0, 0, 0, 2]),
    };
    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, d)
    }

    /// Valid IP header and L4 checksums, by recomputation in `dissect`.
    fn checksums_ok(f: &[u8]) -> bool {
        match dissect(f).unwrap().l3 {
            L3Summary::Ip {
                checksum_ok,
                l4:
                    L4Summary::Tcp {
                        checksum_ok: l4, ..
                    }
                    | L4Summary::Udp {
                        checksum_ok: l4, ..
                    },
                ..
            } => checksum_ok && l4,
            _ => false,
        }
    }

    #[test]
    fn dnat_and_snat_keep_checksums_valid() {
        let mut f = build::tcp(L, (ip(1), 40000), (ip(100), 80), 7, 0, 0x02, &[], b"");
        assert!(rewrite(&mut f[14..], None, Some((ip(11), 8080))));
        assert!(checksums_ok(&f));
        let t = dissect(&f).unwrap();
        assert!(
            matches!(t.l3, L3Summary::Ip { dst, l4: L4Summary::Tcp { dst_port: 8080, src_port: 40000, .. }, .. } if dst == std::net::IpAddr::from(ip(11)))
        );
        assert!(rewrite(&mut f[14..], Some((ip(3), 5000)), None));
        assert!(checksums_ok(&f));
        let mut u = build::udp(L, (ip(1), 53), (ip(100), 53), b"query");
        assert!(rewrite(
            &mut u[14..],
            Some((ip(3), 6000)),
            Some((ip(12), 5353))
        ));
        assert!(checksums_ok(&u));
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut u = build::udp(L, (ip(1), 53), (ip(100), 53), b"q");
        u[40..42].copy_from_slice(&[0, 0]);
        assert!(rewrite(&mut u[14..], None, Some((ip(12), 53))));
        assert_eq!(&u[40..42], &[0, 0]);
    }

    proptest! {
        #[test]
        fn rewrites_of_any_segment_verify(sp in any::<u16>(), dp in any::<u16>(), a in any::<u32>(), b in any::<u32>(),
                                          np in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..64), udp in any::<bool>()) {
            let (s, d) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
            let mut f = if udp { build::udp(L, (s, sp), (d, dp), &data) } else { build::tcp(L, (s, sp), (d, dp), 1, 2, 0x18, &[], &data) };
            prop_assert!(rewrite(&mut f[14..], Some((Ipv4Addr::from(b ^ a), np)), Some((Ipv4Addr::from(a.rotate_left(7)), np ^ 0x5555))));
            prop_assert!(checksums_ok(&f));
        }
    }

    #[test]
    fn ipip_outer_header() {
        let inner = build::tcp(L, (ip(1), 40000), (ip(100), 80), 7, 0, 0x02, &[], b"");
        let mut f = HeapFrame::from_bytes(&inner);
        assert_eq!(ipip_encap(&mut f, 14, ip(2), ip(11), 1500, 9), Encap::Done);
        let b = f.data();
        assert_eq!(&b[..14], &inner[..14], "Ethernet header kept in front");
        let outer = Ipv4Packet::new_checked(&b[14..]).unwrap();
        assert!(outer.verify_checksum());
        assert_eq!(
            (outer.src(), outer.dst(), outer.protocol(), outer.ttl()),
            (ip(2), ip(11), protocol::IPIP, 64)
        );
        assert!(outer.dont_frag(), "DF copied from the inner packet");
        let inner_ip = 54 - 14; // the 40-byte inner packet, without Ethernet padding
        assert_eq!(outer.payload(), &inner[14..14 + inner_ip]);
    }

    #[test]
    fn ipip_too_big_with_df_asks_for_a_smaller_mtu() {
        let inner = build::tcp(
            L,
            (ip(1), 40000),
            (ip(100), 80),
            7,
            0,
            0x18,
            &[],
            &[0u8; 1460],
        );
        let mut f = HeapFrame::from_bytes(&inner);
        assert_eq!(
            ipip_encap(&mut f, 14, ip(2), ip(11), 1500, 9),
            Encap::FragNeeded(1480)
        );
        assert_eq!(f.data(), &inner[..], "untouched");
    }

    #[test]
    fn toa_is_inserted_after_the_options() {
        let syn = build::tcp(
            L,
            (ip(1), 40000),
            (ip(100), 80),
            7,
            0,
            0x02,
            &[2, 4, 5, 0xb4],
            b"",
        );
        let mut f = HeapFrame::from_bytes(&syn);
        assert!(rewrite(
            &mut f.data_mut()[14..],
            Some((ip(3), 5000)),
            Some((ip(11), 80))
        ));
        assert!(insert_toa(&mut f, 14, ip(1), 40000, 1500));
        assert!(checksums_ok(f.data()));
        let ipk = Ipv4Packet::new_checked(&f.data()[14..]).unwrap();
        let t = TcpPacket::new_checked(ipk.payload()).unwrap();
        let opts: Vec<_> = crate::packet::tcp::options(t.options()).collect();
        assert_eq!(opts.len(), 2);
        match opts[1] {
            Ok(crate::packet::tcp::TcpOption::Other {
                kind: TOA_KIND,
                data,
            }) => {
                assert_eq!(data, &[0x9c, 0x40, 198, 18, 0, 1]);
            }
            ref o => panic!("{o:?}"),
        }
        // A full options area has no room.
        let full = build::tcp(L, (ip(1), 1), (ip(100), 80), 7, 0, 0x02, &[1; 40], b"");
        let mut g = HeapFrame::from_bytes(&full);
        assert!(!insert_toa(&mut g, 14, ip(1), 1, 1500));
    }

    #[test]
    fn icmp_errors_quote_the_packet() {
        let orig = build::udp(L, (ip(1), 53), (ip(100), 53), b"hello");
        let mut f = HeapFrame::new();
        let to = icmp_error(
            &mut f,
            &orig[14..],
            ip(2),
            FRAG_NEEDED.0,
            FRAG_NEEDED.1,
            1480,
        )
        .unwrap();
        assert_eq!(to, ip(1));
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
