//! One packet's network and transport essentials, parsed once per packet.
//!
//! The worker validates the IPv4 header and fills an `IpHdr` right after the link layer
//! (as the kernel fills `struct ip_vs_iphdr` in `ip_vs_fill_iph_skb` and DPVS its
//! `dp_vs_iphdr`); the owner function, classification, the state machine and every
//! rewrite read it instead of parsing the header again.
//!
//! The address type is a parameter: `IpHdr` (= `IpHdr<Ipv4Addr>`) today, `IpHdr<Ipv6Addr>`
//! when IPv6 lands. A parameter rather than an enum of families because each family is
//! handled by its own monomorphised path: an IPv4 packet never pays a branch on the
//! family, and IPv4 connection entries keep their 64 bytes while IPv6 ones grow.

use super::checksum;
use super::ipv4::{protocol, Ipv4Packet, DONT_FRAG};
use super::udp::UdpPacket;
use std::net::Ipv4Addr;

/// Why an IPv4 header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Shorter than its header or its total length.
    Truncated,
    /// Bad version or header length.
    Malformed,
    /// Header checksum mismatch.
    BadChecksum,
}

/// The parsed header of one packet. Offsets are from the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHdr<A = Ipv4Addr> {
    pub src: A,
    pub dst: A,
    /// Offset of the IP header.
    pub l3: u16,
    /// Offset of the transport header.
    pub l4: u16,
    /// Length of the IP packet (header and payload, without link-layer padding).
    pub len: u16,
    /// Transport protocol (`packet::ipv4::protocol`).
    pub proto: u8,
    pub ttl: u8,
    /// DSCP and ECN (the old TOS byte).
    pub tos: u8,
    /// Identification, for fragment tracking.
    pub ident: u16,
    /// Fragment offset in 8-byte units and the more-fragments bit (`FRAG_*`).
    pub frag: u16,
    /// Transport ports (0 when `l4_ok` is false).
    pub sport: u16,
    pub dport: u16,
    /// TCP flags (0 for anything else).
    pub tcp_flags: u8,
    /// The transport header is whole: TCP with a valid data offset, UDP with its 8
    /// bytes, in a first (or only) fragment.
    pub l4_ok: bool,
}

/// `IpHdr::frag` bits (the wire's flags/fragment-offset word).
pub use super::ipv4::{FRAG_OFFSET, MORE_FRAGS};

impl<A> IpHdr<A> {
    /// Any fragment of a fragmented datagram, the first one included.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.frag & (MORE_FRAGS | FRAG_OFFSET) != 0
    }
    /// The sender forbids fragmentation.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.frag & DONT_FRAG != 0
    }
    /// A fragment after the first: no transport header.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.frag & FRAG_OFFSET != 0
    }
    /// The last fragment of its datagram.
    #[inline]
    pub fn is_last_fragment(&self) -> bool {
        self.frag & MORE_FRAGS == 0
    }
    #[inline]
    pub fn l3(&self) -> usize {
        usize::from(self.l3)
    }
    #[inline]
    pub fn l4(&self) -> usize {
        usize::from(self.l4)
    }
    /// End of the IP packet in the frame (link-layer padding starts here).
    #[inline]
    pub fn end(&self) -> usize {
        self.l3() + usize::from(self.len)
    }
}

impl IpHdr<Ipv4Addr> {
    /// All zero: a placeholder for a header not parsed (yet).
    pub const EMPTY: IpHdr = IpHdr {
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::UNSPECIFIED,
        l3: 0,
        l4: 0,
        len: 0,
        proto: 0,
        ttl: 0,
        tos: 0,
        ident: 0,
        frag: 0,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        l4_ok: false,
    };

    /// Validates the IPv4 header at `l3` (version, lengths, checksum) and reads what the
    /// fast path needs from it and from the transport header behind it.
    #[inline]
    pub fn parse_v4(frame: &[u8], l3: usize) -> Result<IpHdr, Invalid> {
        let b = frame.get(l3..).ok_or(Invalid::Truncated)?;
        // The fixed header as an array: every field below is read without a bounds
        // check. The same checks as `Ipv4Packet::new_checked`, in the same order.
        let f: &[u8; 20] = b
            .get(..Ipv4Packet::<&[u8]>::MIN_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(Invalid::Truncated)?;
        if f[0] >> 4 != 4 {
            return Err(Invalid::Malformed);
        }
        let hl = usize::from(f[0] & 0x0f) * 4;
        let len = u16::from_be_bytes([f[2], f[3]]);
        if hl < f.len() || usize::from(len) < hl {
            return Err(Invalid::Malformed);
        }
        let ip = b.get(..usize::from(len)).ok_or(Invalid::Truncated)?;
        let sum_ok = if hl == f.len() {
            checksum::header20_ok(f)
        } else {
            ip.get(..hl).is_some_and(|h| checksum::checksum(h) == 0)
        };
        if !sum_ok {
            return Err(Invalid::BadChecksum);
        }
        let frag = u16::from_be_bytes([f[6], f[7]]);
        let proto = f[9];
        let mut h = IpHdr {
            src: Ipv4Addr::new(f[12], f[13], f[14], f[15]),
            dst: Ipv4Addr::new(f[16], f[17], f[18], f[19]),
            l3: l3 as u16,
            l4: (l3 + hl) as u16,
            len,
            proto,
            ttl: f[8],
            tos: f[1],
            ident: u16::from_be_bytes([f[4], f[5]]),
            frag,
            sport: 0,
            dport: 0,
            tcp_flags: 0,
            l4_ok: false,
        };
        if frag & FRAG_OFFSET != 0 {
            return Ok(h);
        }
        let l4 = ip.get(hl..).unwrap_or_default();
        match proto {
            protocol::TCP => {
                // The same checks as `TcpPacket::new_checked`: 20 bytes, and a data
                // offset within the segment.
                let t: Option<&[u8; 20]> = l4.get(..20).and_then(|t| t.try_into().ok());
                if let Some(t) = t {
                    let thl = usize::from(t[12] >> 4) * 4;
                    if thl >= t.len() && thl <= l4.len() {
                        h.sport = u16::from_be_bytes([t[0], t[1]]);
                        h.dport = u16::from_be_bytes([t[2], t[3]]);
                        h.tcp_flags = t[13];
                        h.l4_ok = true;
                    }
                }
            }
            protocol::UDP => {
                if let Some(u) = UdpPacket::ports(l4) {
                    (h.sport, h.dport) = u;
                    h.l4_ok = true;
                }
            }
            _ => {}
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::{self, ip, L};
    use crate::packet::{Error, TcpPacket};

    proptest::proptest! {
        /// The hand-written parse accepts exactly what the checked views accept, and reads
        /// the same fields.
        #[test]
        fn parse_v4_agrees_with_the_checked_views(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                                                  fix in proptest::prelude::any::<bool>()) {
            let mut b = bytes;
            if b.len() >= 20 && fix {
                // Often valid: version 4, a plausible length and a correct checksum.
                b[0] = 0x40 | (b[0] & 0x0f).max(5);
                let len = b.len().min(usize::from(u16::from_be_bytes([b[2], b[3]])).max(20)) as u16;
                b[2..4].copy_from_slice(&len.to_be_bytes());
                let hl = usize::from(b[0] & 0x0f) * 4;
                if hl <= b.len() {
                    b[10] = 0;
                    b[11] = 0;
                    let c = crate::packet::checksum::checksum(&b[..hl]);
                    b[10..12].copy_from_slice(&c.to_be_bytes());
                }
            }
            let view = Ipv4Packet::new_checked(&b[..]);
            match IpHdr::parse_v4(&b, 0) {
                Err(Invalid::Truncated) => proptest::prop_assert_eq!(view.err(), Some(Error::Truncated)),
                Err(Invalid::Malformed) => proptest::prop_assert_eq!(view.err(), Some(Error::Malformed)),
                Err(Invalid::BadChecksum) => proptest::prop_assert!(view.is_ok_and(|v| !v.verify_checksum())),
                Ok(h) => {
                    let v = view.expect("accepted by the view");
                    proptest::prop_assert!(v.verify_checksum());
                    proptest::prop_assert_eq!((h.src, h.dst, h.proto, h.ttl, h.ident), (v.src(), v.dst(), v.protocol(), v.ttl(), v.ident()));
                    proptest::prop_assert_eq!((usize::from(h.len), h.l4(), h.frag), (v.total_len(), v.header_len(), v.frag_word()));
                    let tcp = (v.protocol() == protocol::TCP && v.frag_offset() == 0)
                        .then(|| TcpPacket::new_checked(v.payload()).ok()).flatten();
                    if let Some(t) = tcp {
                        proptest::prop_assert!(h.l4_ok);
                        proptest::prop_assert_eq!((h.sport, h.dport, h.tcp_flags), (t.src_port(), t.dst_port(), t.flags()));
                    } else if v.protocol() == protocol::TCP {
                        proptest::prop_assert!(!h.l4_ok);
                    }
                    if v.protocol() == protocol::UDP {
                        let whole = v.frag_offset() == 0 && v.payload().len() >= 8;
                        proptest::prop_assert_eq!(h.l4_ok, whole);
                        if whole {
                            let p = v.payload();
                            proptest::prop_assert_eq!((h.sport, h.dport), (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_tcp_segment_is_read_whole() {
        let f = build::tcp(L, (ip(1), 40000), (ip(100), 80), (7, 0), 0x12, &[], b"hi");
        let h = IpHdr::parse_v4(&f, 14).unwrap();
        assert_eq!((h.src, h.dst, h.proto), (ip(1), ip(100), protocol::TCP));
        assert_eq!((h.sport, h.dport, h.tcp_flags), (40000, 80, 0x12));
        assert_eq!((h.l3, h.l4, h.len), (14, 34, 42));
        assert_eq!(h.ttl, 64);
        assert!(h.l4_ok && !h.is_fragment());
    }

    #[test]
    fn a_udp_datagram_has_ports_and_no_flags() {
        let f = build::udp(L, (ip(1), 53), (ip(100), 5353), b"q");
        let h = IpHdr::parse_v4(&f, 14).unwrap();
        assert_eq!(
            (h.sport, h.dport, h.tcp_flags, h.l4_ok),
            (53, 5353, 0, true)
        );
    }

    #[test]
    fn a_bad_checksum_and_a_short_header_are_refused() {
        let mut f = build::udp(L, (ip(1), 53), (ip(100), 53), b"q");
        f[14 + 10] ^= 1;
        assert_eq!(IpHdr::parse_v4(&f, 14), Err(Invalid::BadChecksum));
        assert_eq!(IpHdr::parse_v4(&f[..30], 14), Err(Invalid::Truncated));
        f[14] = 0x65;
        assert_eq!(IpHdr::parse_v4(&f, 14), Err(Invalid::Malformed));
    }

    #[test]
    fn a_truncated_tcp_header_is_not_whole() {
        let mut f = build::tcp(L, (ip(1), 1), (ip(100), 80), (7, 0), 0x02, &[], b"");
        // A data offset beyond the segment.
        f[14 + 20 + 12] = 0xf0;
        let h = IpHdr::parse_v4(&f, 14).unwrap();
        assert!(!h.l4_ok);
        assert_eq!((h.sport, h.dport), (0, 0));
    }

    #[test]
    fn a_later_fragment_has_no_transport_header() {
        let mut f = build::udp(L, (ip(1), 53), (ip(100), 53), b"payload!");
        let mut p = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
        p.set_frag_word(MORE_FRAGS | 1);
        p.fill_checksum();
        let h = IpHdr::parse_v4(&f, 14).unwrap();
        assert!(h.is_fragment() && h.is_later_fragment() && !h.is_last_fragment());
        assert!(!h.l4_ok);
    }
}
