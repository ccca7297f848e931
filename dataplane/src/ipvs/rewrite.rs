//! Byte-level rewrites of the forwarding methods on a frame whose header was parsed into
//! an `IpHdr`: addresses and ports (NAT, FULLNAT), IPIP encapsulation (TUN), the TOA
//! option (FULLNAT) and the translation of an ICMP error's quote. Checksums are patched
//! incrementally (RFC 1624) except where bytes are inserted.

use super::icmp::quoted;
use crate::frame::Frame;
use crate::packet::ipv4::{self, field as ip, protocol, Ipv4Repr};
use crate::packet::{checksum, icmp, tcp, udp, IpHdr, TcpPacket};
use crate::stats::DropReason;
use std::net::Ipv4Addr;

#[inline]
fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
#[inline]
fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// What a rewrite changes in a packet rvs routes: source and/or destination address
/// and port, and the TTL (decremented by one unless `keep_ttl`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nat {
    pub src: Option<(Ipv4Addr, u16)>,
    pub dst: Option<(Ipv4Addr, u16)>,
    pub keep_ttl: bool,
}

/// One's-complement difference (RFC 1624 eqn. 3's ~m + m') of a 32-bit field, as two
/// 16-bit words; summed over every change and folded once per checksum.
#[inline]
fn diff32(old: u32, new: u32) -> u32 {
    u32::from(!(old >> 16) as u16) + u32::from(!(old as u16)) + (new >> 16) + (new & 0xffff)
}

#[inline]
fn diff16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// Applies `n` to the TCP or UDP packet `h`, patching the IP and L4 checksums with one
/// fold each (RFC 1624), however many fields change.
#[inline]
pub fn l4(frame: &mut [u8], h: &IpHdr, n: &Nat) -> Result<(), DropReason> {
    let (sport_off, dport_off, csum_off) = match h.proto {
        protocol::TCP => (
            tcp::field::SRC_PORT,
            tcp::field::DST_PORT,
            tcp::field::CHECKSUM,
        ),
        protocol::UDP => (
            udp::field::SRC_PORT,
            udp::field::DST_PORT,
            udp::field::CHECKSUM,
        ),
        _ => return Err(DropReason::L4Malformed),
    };
    let buf = frame
        .get_mut(h.l3()..h.end())
        .ok_or(DropReason::L4Malformed)?;
    let t = h.l4() - h.l3();
    if !h.l4_ok || buf.len() < t + csum_off + 2 {
        return Err(DropReason::L4Malformed);
    }
    let ipc = rd16(buf, ip::CHECKSUM);
    let l4c = rd16(buf, t + csum_off);
    // UDP checksum 0 means "none": it stays 0.
    let l4_on = !(h.proto == protocol::UDP && l4c == 0);
    let (mut ipd, mut l4d) = (0u32, 0u32);
    if !n.keep_ttl {
        // The TTL shares its 16-bit word with the protocol byte.
        let old = rd16(buf, ip::TTL);
        buf[ip::TTL] = buf[ip::TTL].wrapping_sub(1);
        ipd += diff16(old, rd16(buf, ip::TTL));
    }
    for (addr_off, port_off, new) in [
        (ip::SRC, t + sport_off, n.src),
        (ip::DST, t + dport_off, n.dst),
    ] {
        let Some((a, p)) = new else { continue };
        let (oa, na) = (rd32(buf, addr_off), u32::from(a));
        let d = diff32(oa, na);
        ipd += d;
        l4d += d + diff16(rd16(buf, port_off), p);
        buf[addr_off..addr_off + 4].copy_from_slice(&na.to_be_bytes());
        buf[port_off..port_off + 2].copy_from_slice(&p.to_be_bytes());
    }
    let ipc = checksum::finish(u32::from(!ipc) + ipd);
    buf[ip::CHECKSUM..ip::CHECKSUM + 2].copy_from_slice(&ipc.to_be_bytes());
    if l4_on {
        let mut l4c = checksum::finish(u32::from(!l4c) + l4d);
        if h.proto == protocol::UDP && l4c == 0 {
            l4c = 0xffff;
        }
        buf[t + csum_off..t + csum_off + 2].copy_from_slice(&l4c.to_be_bytes());
    }
    Ok(())
}

/// Rewrites only the IP addresses of the packet `h` (a non-first fragment: no L4 header
/// to patch; the first fragment's L4 checksum update covers the whole datagram).
pub fn ip(frame: &mut [u8], h: &IpHdr, src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) {
    if let Some(b) = frame.get_mut(h.l3()..h.end()) {
        ip_at(b, src, dst);
    }
}

/// `ip` on a buffer that starts with a valid IPv4 header.
fn ip_at(buf: &mut [u8], src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) {
    if buf.len() < ipv4::Ipv4Packet::<&[u8]>::MIN_HEADER_LEN {
        return;
    }
    let mut ipc = rd16(buf, ip::CHECKSUM);
    for (off, new) in [(ip::SRC, src), (ip::DST, dst)] {
        let Some(a) = new else { continue };
        ipc = checksum::update32(ipc, rd32(buf, off), a.into());
        buf[off..off + 4].copy_from_slice(&a.octets());
    }
    buf[ip::CHECKSUM..ip::CHECKSUM + 2].copy_from_slice(&ipc.to_be_bytes());
}

/// Translates the ICMP error `h`: the outer addresses, and the quoted packet's addresses
/// and ports; then the quoted IP checksum, the ICMP checksum (recomputed) and the outer
/// IP checksum. The quoted L4 checksum is left as is, as the kernel does (it may be
/// truncated anyway).
pub fn icmp(
    frame: &mut [u8],
    h: &IpHdr,
    outer: (Option<Ipv4Addr>, Option<Ipv4Addr>),
    q_src: Option<(Ipv4Addr, u16)>,
    q_dst: Option<(Ipv4Addr, u16)>,
) -> Result<(), DropReason> {
    let buf = frame
        .get_mut(h.l3()..h.end())
        .ok_or(DropReason::IcmpMalformed)?;
    let hl = h.l4() - h.l3();
    let q = buf
        .get(hl..)
        .and_then(quoted)
        .ok_or(DropReason::IcmpMalformed)?;
    let qip = hl + q.off;
    for (addr_off, port_off, new) in [
        (ip::SRC, tcp::field::SRC_PORT, q_src),
        (ip::DST, tcp::field::DST_PORT, q_dst),
    ] {
        let Some((a, p)) = new else { continue };
        buf[qip + addr_off..qip + addr_off + 4].copy_from_slice(&a.octets());
        buf[qip + q.hl + port_off..qip + q.hl + port_off + 2].copy_from_slice(&p.to_be_bytes());
    }
    let qc = qip + ip::CHECKSUM;
    buf[qc..qc + 2].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&buf[qip..qip + q.hl]);
    buf[qc..qc + 2].copy_from_slice(&c.to_be_bytes());
    let icsum = hl + icmp::field::CHECKSUM;
    buf[icsum..icsum + 2].copy_from_slice(&[0, 0]);
    let ic = checksum::checksum(&buf[hl..]);
    buf[icsum..icsum + 2].copy_from_slice(&ic.to_be_bytes());
    ip_at(buf, outer.0, outer.1);
    Ok(())
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

/// IPIP (RFC 2003): puts an outer IPv4 header between the Ethernet header and the packet
/// `h`. The outer header copies TOS and DF from the inner one.
pub fn ipip_encap<F: Frame>(
    frame: &mut F,
    h: &IpHdr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mtu: u16,
    ident: u16,
) -> Encap {
    const OUTER: usize = ipv4::Ipv4Packet::<&[u8]>::MIN_HEADER_LEN;
    let (l3, inner_len, df) = (h.l3(), usize::from(h.len), h.dont_frag());
    if inner_len + OUTER > usize::from(mtu) {
        return if df {
            Encap::FragNeeded(mtu.saturating_sub(OUTER as u16))
        } else {
            Encap::Failed
        };
    }
    // Drop any Ethernet padding, then make room in front.
    if !frame.set_len(l3 + inner_len) || !frame.prepend(OUTER) {
        return Encap::Failed;
    }
    let b = frame.data_mut();
    b.copy_within(OUTER..OUTER + l3, 0);
    let outer = Ipv4Repr {
        src,
        dst,
        protocol: protocol::IPIP,
        payload_len: inner_len,
        ttl: 64,
        ident,
        dont_frag: df,
        dscp_ecn: h.tos,
    };
    if outer.emit(&mut b[l3..]).is_err() {
        return Encap::Failed;
    }
    Encap::Done
}

/// TCP option kind of TOA ("TCP option address"), as DPVS and the Linux toa module use.
pub const TOA_KIND: u8 = 254;
pub const TOA_LEN: usize = 8;
/// The option's layout: kind, length, the client's port, the client's IPv4 address.
mod toa {
    pub const KIND: usize = 0;
    pub const LEN: usize = 1;
    pub const PORT: usize = 2;
    pub const ADDR: usize = 4;
}

/// Inserts a TOA option (kind 254, length 8, client port, client IPv4 address) at the end
/// of the TCP options of the packet `h`, growing the frame by 8 bytes. Returns false
/// (and leaves the packet untouched) when the options area or the MTU has no room.
pub fn insert_toa<F: Frame>(
    frame: &mut F,
    h: &IpHdr,
    client: Ipv4Addr,
    cport: u16,
    mtu: u16,
) -> bool {
    let (l3, l4, end) = (h.l3(), h.l4(), h.end());
    let thl = match frame.data().get(l4..end).map(TcpPacket::new_checked) {
        Some(Ok(t)) if h.proto == protocol::TCP => t.header_len(),
        _ => return false,
    };
    if thl + TOA_LEN > tcp::MAX_HEADER_LEN || usize::from(h.len) + TOA_LEN > usize::from(mtu) {
        return false;
    }
    if !frame.set_len(end) || !frame.set_len(end + TOA_LEN) {
        return false;
    }
    let b = frame.data_mut();
    let opt = l4 + thl;
    b.copy_within(opt..end, opt + TOA_LEN);
    b[opt + toa::KIND] = TOA_KIND;
    b[opt + toa::LEN] = TOA_LEN as u8;
    b[opt + toa::PORT..opt + toa::ADDR].copy_from_slice(&cport.to_be_bytes());
    b[opt + toa::ADDR..opt + TOA_LEN].copy_from_slice(&client.octets());
    // The data offset, in 32-bit words, is the high nibble of its byte.
    let doff = l4 + tcp::field::DATA_OFFSET;
    b[doff] = (((thl + TOA_LEN) / 4) as u8) << 4 | (b[doff] & 0x0f);
    // New IP total length and header checksum, then the TCP checksum over the grown
    // segment (insertion changes too much for an incremental update).
    let new_total = (usize::from(h.len) + TOA_LEN) as u16;
    b[l3 + ip::TOTAL_LEN..l3 + ip::TOTAL_LEN + 2].copy_from_slice(&new_total.to_be_bytes());
    let Ok(mut ipk) = ipv4::Ipv4Packet::new_checked(&mut b[l3..end + TOA_LEN]) else {
        return false;
    };
    ipk.fill_checksum();
    let (s, d) = (ipk.src(), ipk.dst());
    match TcpPacket::new_checked(ipk.payload_mut()) {
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
    use crate::packet::build::{self, ip, L};
    use crate::packet::ipv4::Ipv4Packet;
    use crate::packet::{dissect, L3Summary, L4Summary};
    use proptest::prelude::*;

    /// A rewrite that keeps the TTL.
    fn dnat(src: Option<(Ipv4Addr, u16)>, dst: Option<(Ipv4Addr, u16)>) -> Nat {
        Nat {
            src,
            dst,
            keep_ttl: true,
        }
    }

    fn hdr(f: &[u8]) -> IpHdr {
        IpHdr::parse_v4(f, 14).expect("a valid IPv4 packet")
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
        let mut f = build::tcp(L, (ip(1), 40000), (ip(100), 80), (7, 0), 0x02, &[], b"");
        let h = hdr(&f);
        assert!(l4(&mut f, &h, &dnat(None, Some((ip(11), 8080)))).is_ok());
        assert!(checksums_ok(&f));
        let t = dissect(&f).unwrap();
        assert!(
            matches!(t.l3, L3Summary::Ip { dst, l4: L4Summary::Tcp { dst_port: 8080, src_port: 40000, .. }, .. } if dst == std::net::IpAddr::from(ip(11)))
        );
        let h = hdr(&f);
        assert!(l4(&mut f, &h, &dnat(Some((ip(3), 5000)), None)).is_ok());
        assert!(checksums_ok(&f));
        let mut u = build::udp(L, (ip(1), 53), (ip(100), 53), b"query");
        let h = hdr(&u);
        assert!(l4(&mut u, &h, &dnat(Some((ip(3), 6000)), Some((ip(12), 5353)))).is_ok());
        assert!(checksums_ok(&u));
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut u = build::udp(L, (ip(1), 53), (ip(100), 53), b"q");
        u[40..42].copy_from_slice(&[0, 0]);
        let h = hdr(&u);
        assert!(l4(&mut u, &h, &dnat(None, Some((ip(12), 53)))).is_ok());
        assert_eq!(&u[40..42], &[0, 0]);
    }

    proptest! {
        #[test]
        fn rewrites_of_any_segment_verify(sp in any::<u16>(), dp in any::<u16>(), a in any::<u32>(), b in any::<u32>(),
                                          np in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..64), udp in any::<bool>(), ttl in any::<bool>()) {
            let (s, d) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
            let mut f = if udp { build::udp(L, (s, sp), (d, dp), &data) } else { build::tcp(L, (s, sp), (d, dp), (1, 2), 0x18, &[], &data) };
            let h = hdr(&f);
            let n = Nat { src: Some((Ipv4Addr::from(b ^ a), np)), dst: Some((Ipv4Addr::from(a.rotate_left(7)), np ^ 0x5555)), keep_ttl: ttl };
            prop_assert!(l4(&mut f, &h, &n).is_ok());
            prop_assert_eq!(f[14 + 8], if ttl { 64 } else { 63 }, "TTL decremented unless kept");
            prop_assert!(checksums_ok(&f));
        }
    }

    #[test]
    fn ipip_outer_header() {
        let inner = build::tcp(L, (ip(1), 40000), (ip(100), 80), (7, 0), 0x02, &[], b"");
        let mut f = HeapFrame::from_bytes(&inner);
        let h = hdr(&inner);
        assert_eq!(ipip_encap(&mut f, &h, ip(2), ip(11), 1500, 9), Encap::Done);
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
            (7, 0),
            0x18,
            &[],
            &[0u8; 1460],
        );
        let mut f = HeapFrame::from_bytes(&inner);
        assert_eq!(
            ipip_encap(&mut f, &hdr(&inner), ip(2), ip(11), 1500, 9),
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
            (7, 0),
            0x02,
            &[2, 4, 5, 0xb4],
            b"",
        );
        let mut f = HeapFrame::from_bytes(&syn);
        let h = hdr(&syn);
        assert!(l4(
            f.data_mut(),
            &h,
            &dnat(Some((ip(3), 5000)), Some((ip(11), 80)))
        )
        .is_ok());
        assert!(insert_toa(&mut f, &h, ip(1), 40000, 1500));
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
        let full = build::tcp(L, (ip(1), 1), (ip(100), 80), (7, 0), 0x02, &[1; 40], b"");
        let mut g = HeapFrame::from_bytes(&full);
        assert!(!insert_toa(&mut g, &hdr(&full), ip(1), 1, 1500));
    }
}
