//! Builders for whole frames: used by tests, the traffic generator and anything else that
//! needs a well-formed packet without hand-writing bytes. Test-only: compiled for the
//! crate's own tests and with feature `testing` (benchmarks, fuzz targets).

use super::ethernet::{self, ethertype, MacAddr};
use super::ipv4::{protocol, Ipv4Repr};
use super::{arp, checksum};
use std::net::Ipv4Addr;

/// The link of the unit tests' frames: one host to another.
pub const L: Link = Link {
    src: MacAddr([2, 0, 0, 0, 0, 1]),
    dst: MacAddr([2, 0, 0, 0, 0, 2]),
};

/// 198.18.0.`d`: the unit tests' addresses, in the benchmarking range.
pub fn ip(d: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, d)
}

/// Ethernet endpoints of a frame.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub src: MacAddr,
    pub dst: MacAddr,
}

fn ip_repr(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) -> Ipv4Repr {
    Ipv4Repr {
        src,
        dst,
        protocol: proto,
        payload_len,
        ttl: 64,
        ident: 0x1234,
        dont_frag: true,
        dscp_ecn: 0,
    }
}

/// A 60-byte ARP frame (padded to the Ethernet minimum).
pub fn arp_frame(
    link: Link,
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    ethernet::emit_header(&mut f, link.dst, link.src, ethertype::ARP)
        .expect("60 bytes hold a header");
    arp::emit(&mut f[14..], op, sha, spa, tha, tpa).expect("46 bytes hold ARP");
    f
}

/// An ICMP echo request or reply with `data` as payload.
pub fn icmp_echo(
    link: Link,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    msg_type: u8,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    let icmp_len = 8 + data.len();
    let mut f = vec![0u8; 14 + 20 + icmp_len];
    ethernet::emit_header(&mut f, link.dst, link.src, ethertype::IPV4).expect("room");
    ip_repr(src, dst, protocol::ICMP, icmp_len)
        .emit(&mut f[14..])
        .expect("room");
    let icmp = &mut f[34..];
    icmp[0] = msg_type;
    icmp[4..6].copy_from_slice(&ident.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    icmp[8..].copy_from_slice(data);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    pad(f)
}

/// An ICMP error (`msg_type`, `code`) from `src` about the IPv4 packet `orig` (starting
/// at its IP header), sent to the packet's source and quoting its IP header and the first
/// 8 bytes behind it, as RFC 792 asks.
pub fn icmp_error(link: Link, src: Ipv4Addr, orig: &[u8], msg_type: u8, code: u8) -> Vec<u8> {
    let hl = usize::from(orig[0] & 0x0f) * 4;
    let quote = &orig[..orig.len().min(hl + 8)];
    let to = Ipv4Addr::new(orig[12], orig[13], orig[14], orig[15]);
    let icmp_len = 8 + quote.len();
    let mut f = vec![0u8; 14 + 20 + icmp_len];
    ethernet::emit_header(&mut f, link.dst, link.src, ethertype::IPV4).expect("room");
    ip_repr(src, to, protocol::ICMP, icmp_len)
        .emit(&mut f[14..])
        .expect("room");
    let icmp = &mut f[34..];
    icmp[0] = msg_type;
    icmp[1] = code;
    icmp[8..].copy_from_slice(quote);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    pad(f)
}

/// A UDP datagram with a correct checksum.
pub fn udp(link: Link, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), data: &[u8]) -> Vec<u8> {
    let udp_len = 8 + data.len();
    let mut f = vec![0u8; 14 + 20 + udp_len];
    ethernet::emit_header(&mut f, link.dst, link.src, ethertype::IPV4).expect("room");
    ip_repr(src.0, dst.0, protocol::UDP, udp_len)
        .emit(&mut f[14..])
        .expect("room");
    let u = &mut f[34..];
    u[0..2].copy_from_slice(&src.1.to_be_bytes());
    u[2..4].copy_from_slice(&dst.1.to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    u[8..].copy_from_slice(data);
    let acc = checksum::pseudo_header_v4(src.0, dst.0, protocol::UDP, udp_len as u16);
    let c = checksum::finish(checksum::accumulate(acc, u));
    u[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    pad(f)
}

/// A TCP segment (20-byte header plus `options`, which must be a multiple of 4 bytes)
/// with sequence and acknowledgement numbers `(seq, ack)`.
pub fn tcp(
    link: Link,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    (seq, ack): (u32, u32),
    flags: u8,
    options: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let hl = 20 + options.len();
    let tcp_len = hl + data.len();
    let mut f = vec![0u8; 14 + 20 + tcp_len];
    ethernet::emit_header(&mut f, link.dst, link.src, ethertype::IPV4).expect("room");
    ip_repr(src.0, dst.0, protocol::TCP, tcp_len)
        .emit(&mut f[14..])
        .expect("room");
    let t = &mut f[34..];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t[20..hl].copy_from_slice(options);
    t[hl..].copy_from_slice(data);
    let acc = checksum::pseudo_header_v4(src.0, dst.0, protocol::TCP, tcp_len as u16);
    let c = checksum::finish(checksum::accumulate(acc, t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    pad(f)
}

/// Pads to the 60-byte Ethernet minimum (without FCS), as a NIC would.
fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{dissect, L3Summary, L4Summary};

    #[test]
    fn built_frames_dissect_with_valid_checksums() {
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        for f in [
            icmp_echo(L, a, b, 8, 1, 2, b"hello"),
            udp(L, (a, 1000), (b, 53), b"q"),
            tcp(L, (a, 40000), (b, 80), (1, 0), 0x02, &[2, 4, 5, 0xb4], b""),
        ] {
            match dissect(&f).unwrap().l3 {
                L3Summary::Ip {
                    checksum_ok: true,
                    l4,
                    ..
                } => match l4 {
                    L4Summary::Icmp { checksum_ok, .. }
                    | L4Summary::Udp { checksum_ok, .. }
                    | L4Summary::Tcp { checksum_ok, .. } => assert!(checksum_ok),
                    L4Summary::Opaque => panic!("opaque"),
                },
                other => panic!("{other:?}"),
            }
        }
        let f = arp_frame(L, 1, L.src, a, MacAddr::ZERO, b);
        assert!(matches!(
            dissect(&f).unwrap().l3,
            L3Summary::Arp { op: 1, .. }
        ));
    }
}
