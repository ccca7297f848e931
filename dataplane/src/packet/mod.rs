//! Zero-copy, bounds-checked views over packet bytes, one file per protocol.
//!
//! Each view is built with `new_checked`, which validates every length the accessors rely
//! on; after that no accessor can panic. Nothing here knows about DPDK: the views work on
//! any `AsRef<[u8]>`, which keeps them unit-testable and fuzzable.

pub mod arp;
#[cfg(any(test, feature = "testing"))]
pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod iphdr;
pub mod ipv4;
pub mod ipv6;
pub mod pcap;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::{EthernetFrame, MacAddr, VlanTag};
pub use icmp::IcmpPacket;
pub use iphdr::IpHdr;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::Ipv6Packet;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;

use std::net::{IpAddr, Ipv4Addr};

/// Why a view could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("packet truncated")]
    Truncated,
    #[error("malformed header")]
    Malformed,
}

pub type Result<T> = std::result::Result<T, Error>;

/// The link-layer part of a frame: where L3 starts and what it is, after at most two VLAN
/// tags (802.1ad outer + 802.1Q inner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Info {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// Innermost VLAN id, if tagged.
    pub vlan: Option<u16>,
    pub ethertype: u16,
    pub l3_offset: usize,
}

/// Parses the Ethernet header and any VLAN tags.
pub fn parse_l2(frame: &[u8]) -> Result<L2Info> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut off = EthernetFrame::<&[u8]>::HEADER_LEN;
    let mut vlan = None;
    for _ in 0..2 {
        if ethertype != ethernet::ethertype::VLAN && ethertype != ethernet::ethertype::QINQ {
            break;
        }
        let tag = VlanTag::new_checked(frame.get(off..).ok_or(Error::Truncated)?)?;
        vlan = Some(tag.vlan_id());
        ethertype = tag.ethertype();
        off += VlanTag::<&[u8]>::HEADER_LEN;
    }
    if ethertype == ethernet::ethertype::VLAN || ethertype == ethernet::ethertype::QINQ {
        return Err(Error::Malformed); // more than two tags
    }
    Ok(L2Info {
        dst: eth.dst(),
        src: eth.src(),
        vlan,
        ethertype,
        l3_offset: off,
    })
}

/// A summary of every layer of a frame, for tests, tools and the fuzz target. The hot path
/// uses the views directly instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dissection {
    pub l2: L2Info,
    pub l3: L3Summary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L3Summary {
    Arp {
        op: u16,
        sender: (MacAddr, Ipv4Addr),
        target: (MacAddr, Ipv4Addr),
    },
    Ip {
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        ttl: u8,
        fragment: bool,
        checksum_ok: bool,
        l4: L4Summary,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4Summary {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
        payload_len: usize,
        checksum_ok: bool,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        payload_len: usize,
        checksum_ok: bool,
    },
    Icmp {
        msg_type: u8,
        code: u8,
        checksum_ok: bool,
    },
    /// Not parsed: a non-first fragment, an unknown protocol, or IPv6 (checksums not
    /// checked here).
    Opaque,
}

/// Parses every layer it knows, validating lengths and checksums.
pub fn dissect(frame: &[u8]) -> Result<Dissection> {
    let l2 = parse_l2(frame)?;
    let l3buf = frame.get(l2.l3_offset..).ok_or(Error::Truncated)?;
    let l3 = match l2.ethertype {
        ethernet::ethertype::ARP => {
            let a = ArpPacket::new_checked(l3buf)?;
            L3Summary::Arp {
                op: a.operation(),
                sender: (a.sender_mac(), a.sender_ip()),
                target: (a.target_mac(), a.target_ip()),
            }
        }
        ethernet::ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3buf)?;
            let (src, dst) = (ip.src(), ip.dst());
            let l4 = if ip.frag_offset() != 0 {
                L4Summary::Opaque
            } else {
                match ip.protocol() {
                    ipv4::protocol::TCP => {
                        let t = TcpPacket::new_checked(ip.payload())?;
                        L4Summary::Tcp {
                            src_port: t.src_port(),
                            dst_port: t.dst_port(),
                            flags: t.flags(),
                            payload_len: t.payload().len(),
                            checksum_ok: !ip.more_frags() && t.verify_checksum_v4(src, dst),
                        }
                    }
                    ipv4::protocol::UDP => {
                        let u = UdpPacket::new_checked(ip.payload())?;
                        L4Summary::Udp {
                            src_port: u.src_port(),
                            dst_port: u.dst_port(),
                            payload_len: u.payload().len(),
                            checksum_ok: !ip.more_frags() && u.verify_checksum_v4(src, dst),
                        }
                    }
                    ipv4::protocol::ICMP => {
                        let i = IcmpPacket::new_checked(ip.payload())?;
                        L4Summary::Icmp {
                            msg_type: i.msg_type(),
                            code: i.code(),
                            checksum_ok: !ip.more_frags() && i.verify_checksum(),
                        }
                    }
                    _ => L4Summary::Opaque,
                }
            };
            L3Summary::Ip {
                src: src.into(),
                dst: dst.into(),
                protocol: ip.protocol(),
                ttl: ip.ttl(),
                fragment: ip.is_fragment(),
                checksum_ok: ip.verify_checksum(),
                l4,
            }
        }
        ethernet::ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3buf)?;
            let l4 = match ip.next_header() {
                ipv4::protocol::TCP => {
                    let t = TcpPacket::new_checked(ip.payload())?;
                    L4Summary::Tcp {
                        src_port: t.src_port(),
                        dst_port: t.dst_port(),
                        flags: t.flags(),
                        payload_len: t.payload().len(),
                        checksum_ok: verify_l4_v6(&ip, ipv4::protocol::TCP),
                    }
                }
                ipv4::protocol::UDP => {
                    let u = UdpPacket::new_checked(ip.payload())?;
                    L4Summary::Udp {
                        src_port: u.src_port(),
                        dst_port: u.dst_port(),
                        payload_len: u.payload().len(),
                        checksum_ok: verify_l4_v6(&ip, ipv4::protocol::UDP),
                    }
                }
                _ => L4Summary::Opaque,
            };
            L3Summary::Ip {
                src: ip.src().into(),
                dst: ip.dst().into(),
                protocol: ip.next_header(),
                ttl: ip.hop_limit(),
                fragment: false,
                checksum_ok: true,
                l4,
            }
        }
        _ => L3Summary::Other,
    };
    Ok(Dissection { l2, l3 })
}

fn verify_l4_v6<T: AsRef<[u8]>>(ip: &Ipv6Packet<T>, proto: u8) -> bool {
    let p = ip.payload();
    let acc = checksum::pseudo_header_v6(&ip.src_bytes(), &ip.dst_bytes(), proto, p.len() as u32);
    checksum::finish(checksum::accumulate(acc, p)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_vlan_tags_then_ipv4() {
        let mut f = vec![0xffu8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00]);
        let mut ip = vec![0u8; 28];
        Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            protocol: ipv4::protocol::UDP,
            payload_len: 8,
            ttl: 1,
            ident: 0,
            dont_frag: false,
            dscp_ecn: 0,
        }
        .emit(&mut ip)
        .unwrap();
        ip[24..26].copy_from_slice(&8u16.to_be_bytes());
        f.extend_from_slice(&ip);
        let d = dissect(&f).unwrap();
        assert_eq!(d.l2.vlan, Some(20));
        assert_eq!(d.l2.l3_offset, 22);
        match d.l3 {
            L3Summary::Ip {
                ttl: 1,
                checksum_ok: true,
                l4: L4Summary::Udp { payload_len: 0, .. },
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn three_vlan_tags_are_malformed() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0x00]);
        assert_eq!(parse_l2(&f).unwrap_err(), Error::Malformed);
    }

    proptest! {
        // Whatever the bytes, dissect returns; it never panics.
        #[test]
        fn dissect_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                et in prop_oneof![Just(0x0800u16), Just(0x0806), Just(0x86dd), Just(0x8100), any::<u16>()]) {
            let mut f = bytes;
            if f.len() >= 14 {
                f[12..14].copy_from_slice(&et.to_be_bytes());
                if et == 0x0800 && f.len() > 14 { f[14] = 0x45; }
            }
            let _ = dissect(&f);
        }

        // The untagged fast path says what parse_l2 says, or leaves the frame to it.
        #[test]
        fn untagged_agrees_with_parse_l2(bytes in proptest::collection::vec(any::<u8>(), 0..40),
                                         et in prop_oneof![Just(0x0800u16), Just(0x8100), Just(0x88a8), any::<u16>()]) {
            let mut f = bytes;
            if f.len() >= 14 {
                f[12..14].copy_from_slice(&et.to_be_bytes());
            }
            match ethernet::untagged(&f) {
                Some(h) => {
                    let l2 = parse_l2(&f).expect("parsed");
                    prop_assert_eq!((h.dst, h.src, h.ethertype), (l2.dst.bits(), l2.src.bits(), l2.ethertype));
                    prop_assert_eq!(h.dst_is_multicast(), l2.dst.is_multicast());
                    prop_assert_eq!((l2.vlan, l2.l3_offset), (None, 14));
                }
                None => prop_assert!(f.len() < 14 || et == 0x8100 || et == 0x88a8),
            }
        }
    }
}
