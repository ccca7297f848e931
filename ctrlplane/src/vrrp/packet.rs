//! VRRP advertisements on the wire (RFC 3768 for version 2, RFC 5798/9568 for version
//! 3), as keepalived writes and checks them (vrrp.c `vrrp_build_vrrp_v2/v3`,
//! `vrrp_check_packet`):
//!
//! ```text
//! 0: version(4) type(4)=1 | 1: VRID | 2: priority | 3: count of addresses
//! v2 4: auth type | 5: advert interval (s)      v3 4-5: rsvd(4) max advert int (cs, 12)
//! 6-7: checksum | addresses (4 bytes each) | v2: 8 bytes of authentication data
//! ```
//!
//! Version 2's checksum covers the VRRP message; version 3's over IPv4 also covers a
//! pseudo-header {src, dst, 0, 112, length} unless `v3_checksum_as_v2` (keepalived's
//! default includes it; RFC 9568 and other vendors do not). Everything read from the wire
//! is checked and a bad packet is an error value, never a panic.

use dataplane::packet::checksum::checksum;
use std::net::Ipv4Addr;

pub const PROTO_VRRP: u8 = 112;
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const TYPE_ADVERT: u8 = 1;
const AUTH_NONE: u8 = 0;
const AUTH_PASS: u8 = 1;

/// What an advert says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// The advert interval in centiseconds (version 2: seconds × 100).
    pub interval_cs: u16,
    pub addrs: Vec<Ipv4Addr>,
    /// Version 2's simple password (8 bytes, zero padded), if any.
    pub pass: Option<[u8; 8]>,
}

/// How a version 3 IPv4 checksum is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// keepalived's default: with the IPv4 pseudo-header.
    Pseudo,
    /// `v3_checksum_as_v2`: over the VRRP message only.
    Plain,
}

/// Why a received packet was dropped (each one is counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bad {
    Truncated,
    NotVrrp,
    /// TTL other than 255 on a multicast advert.
    Ttl,
    Version,
    Type,
    Length,
    Checksum,
    AuthType,
    AuthPass,
    /// Version 2: an interval other than ours.
    Interval,
}

impl Bad {
    pub fn name(self) -> &'static str {
        match self {
            Bad::Truncated => "truncated",
            Bad::NotVrrp => "not_vrrp",
            Bad::Ttl => "ttl",
            Bad::Version => "version",
            Bad::Type => "type",
            Bad::Length => "length",
            Bad::Checksum => "checksum",
            Bad::AuthType => "auth_type",
            Bad::AuthPass => "auth_pass",
            Bad::Interval => "interval",
        }
    }
}

/// The password as the wire carries it: at most 8 bytes, zero padded (keepalived cuts
/// longer ones to 8).
pub fn pass_bytes(p: &str) -> [u8; 8] {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(p.bytes()) {
        *d = s;
    }
    b
}

fn sum_with(prefix: &[u8], msg: &[u8]) -> u16 {
    let mut all = Vec::with_capacity(prefix.len() + msg.len());
    all.extend_from_slice(prefix);
    all.extend_from_slice(msg);
    checksum(&all)
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = PROTO_VRRP;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

/// The VRRP message of `a` (what follows the IP header), its checksum filled in; `src`
/// and `dst` are the IP addresses it will carry (version 3's pseudo-header).
pub fn encode(a: &Advert, sum: Checksum, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let n = a.addrs.len().min(255);
    let mut m = vec![(a.version << 4) | TYPE_ADVERT, a.vrid, a.priority, n as u8];
    if a.version == 2 {
        m.push(if a.pass.is_some() {
            AUTH_PASS
        } else {
            AUTH_NONE
        });
        m.push((a.interval_cs / 100).clamp(1, 255) as u8);
    } else {
        m.extend_from_slice(&(a.interval_cs & 0x0fff).to_be_bytes());
    }
    m.extend_from_slice(&[0, 0]);
    for ip in &a.addrs[..n] {
        m.extend_from_slice(&ip.octets());
    }
    if a.version == 2 {
        m.extend_from_slice(&a.pass.unwrap_or([0; 8]));
    }
    let c = if a.version == 3 && sum == Checksum::Pseudo {
        sum_with(&pseudo(src, dst, m.len()), &m)
    } else {
        checksum(&m)
    };
    m[6..8].copy_from_slice(&c.to_be_bytes());
    m
}

/// What a receiver expects of an advert beyond the format.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub version: u8,
    pub sum: Checksum,
    /// Multicast adverts must arrive with TTL 255 (not checked for unicast peers).
    pub check_ttl: bool,
    /// Version 2: the interval must equal ours.
    pub interval_cs: u16,
    pub pass: Option<&'a [u8; 8]>,
}

/// A received advert and the IP fields that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub advert: Advert,
}

/// Reads an IPv4 packet as a raw socket delivers it (header included) and checks it as
/// keepalived does; Ethernet padding after the IP total length is allowed.
pub fn decode(ip: &[u8], e: &Expect<'_>) -> Result<Received, Bad> {
    if ip.len() < 20 {
        return Err(Bad::Truncated);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return Err(Bad::Truncated);
    }
    if ip[9] != PROTO_VRRP {
        return Err(Bad::NotVrrp);
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < ihl || total > ip.len() {
        return Err(Bad::Length);
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if e.check_ttl && ip[8] != 255 {
        return Err(Bad::Ttl);
    }
    let m = &ip[ihl..total];
    if m.len() < 8 {
        return Err(Bad::Truncated);
    }
    let version = m[0] >> 4;
    if version != e.version {
        return Err(Bad::Version);
    }
    if m[0] & 0x0f != TYPE_ADVERT {
        return Err(Bad::Type);
    }
    let count = usize::from(m[3]);
    let want = 8 + 4 * count + if version == 2 { 8 } else { 0 };
    if m.len() != want {
        return Err(Bad::Length);
    }
    let ok = if version == 3 && e.sum == Checksum::Pseudo {
        sum_with(&pseudo(src, dst, m.len()), m) == 0
    } else {
        checksum(m) == 0
    };
    if !ok {
        return Err(Bad::Checksum);
    }
    let addrs = m[8..8 + 4 * count]
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    let (interval_cs, pass) = if version == 2 {
        let auth = m[4];
        let data: [u8; 8] = m[want - 8..want].try_into().map_err(|_| Bad::Length)?;
        match (auth, e.pass) {
            (AUTH_NONE, None) => {}
            (AUTH_PASS, Some(p)) => {
                // Compared in constant time, as keepalived does.
                if data.iter().zip(p).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
                    return Err(Bad::AuthPass);
                }
            }
            _ => return Err(Bad::AuthType),
        }
        let cs = u16::from(m[5]) * 100;
        if cs != e.interval_cs {
            return Err(Bad::Interval);
        }
        (cs, (auth == AUTH_PASS).then_some(data))
    } else {
        (u16::from_be_bytes([m[4], m[5]]) & 0x0fff, None)
    };
    Ok(Received {
        src,
        dst,
        advert: Advert {
            version,
            vrid: m[1],
            priority: m[2],
            interval_cs,
            addrs,
            pass,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// An IPv4 header (TTL 255, protocol 112) around `m`.
    fn ip(m: &[u8], ttl: u8, dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, PROTO_VRRP, 0, 0];
        p[2..4].copy_from_slice(&((20 + m.len()) as u16).to_be_bytes());
        p.extend_from_slice(&SRC.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(m);
        p
    }

    fn v(version: u8) -> Advert {
        Advert {
            version,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addrs: vec![Ipv4Addr::new(198, 18, 1, 100)],
            pass: None,
        }
    }

    fn expect(version: u8, sum: Checksum) -> Expect<'static> {
        Expect {
            version,
            sum,
            check_ttl: true,
            interval_cs: 100,
            pass: None,
        }
    }

    /// A VRRPv2 advert as RFC 3768 lays it out, byte by byte: VRID 51, priority 100,
    /// one address, no authentication, 1 s; checksum over the message.
    #[test]
    fn version_2_bytes() {
        let m = encode(&v(2), Checksum::Pseudo, SRC, GROUP);
        assert_eq!(
            m,
            vec![0x21, 51, 100, 1, 0, 1, 0xb3, 0x53, 198, 18, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(checksum(&m), 0);
        let r = decode(&ip(&m, 255, GROUP), &expect(2, Checksum::Pseudo)).unwrap();
        assert_eq!(r.advert, v(2));
        assert_eq!((r.src, r.dst), (SRC, GROUP));
    }

    /// Version 3: 12 bits of centiseconds; keepalived's pseudo-header checksum by
    /// default and the plain one with v3_checksum_as_v2, each refused by the other.
    #[test]
    fn version_3_checksum_variants() {
        let mut a = v(3);
        a.interval_cs = 10;
        let pseudo = encode(&a, Checksum::Pseudo, SRC, GROUP);
        let plain = encode(&a, Checksum::Plain, SRC, GROUP);
        assert_eq!(&pseudo[..6], &[0x31, 51, 100, 1, 0, 10]);
        assert_eq!(pseudo.len(), 12, "no authentication data in version 3");
        assert_ne!(pseudo[6..8], plain[6..8]);
        assert_eq!(checksum(&plain), 0);
        let e = expect(3, Checksum::Pseudo);
        assert_eq!(decode(&ip(&pseudo, 255, GROUP), &e).unwrap().advert, a);
        assert_eq!(decode(&ip(&plain, 255, GROUP), &e), Err(Bad::Checksum));
        let e = expect(3, Checksum::Plain);
        assert_eq!(decode(&ip(&plain, 255, GROUP), &e).unwrap().advert, a);
        assert_eq!(decode(&ip(&pseudo, 255, GROUP), &e), Err(Bad::Checksum));
    }

    #[test]
    fn what_keepalived_refuses() {
        let m = encode(&v(2), Checksum::Plain, SRC, GROUP);
        let e = expect(2, Checksum::Plain);
        assert_eq!(decode(&ip(&m, 254, GROUP), &e), Err(Bad::Ttl));
        let unicast = Expect {
            check_ttl: false,
            ..e
        };
        assert!(decode(&ip(&m, 64, SRC), &unicast).is_ok());
        assert_eq!(
            decode(&ip(&m, 255, GROUP), &expect(3, Checksum::Plain)),
            Err(Bad::Version)
        );
        let mut other = e;
        other.interval_cs = 200;
        assert_eq!(decode(&ip(&m, 255, GROUP), &other), Err(Bad::Interval));
        let mut flipped = m.clone();
        flipped[2] = 99;
        assert_eq!(decode(&ip(&flipped, 255, GROUP), &e), Err(Bad::Checksum));
        assert_eq!(decode(&ip(&m[..10], 255, GROUP), &e), Err(Bad::Length));
        // Ethernet padding after the IP total length is fine.
        let mut padded = ip(&m, 255, GROUP);
        padded.extend_from_slice(&[0; 6]);
        assert!(decode(&padded, &e).is_ok());
        let mut not = ip(&m, 255, GROUP);
        not[9] = 17;
        assert_eq!(decode(&not, &e), Err(Bad::NotVrrp));
    }

    #[test]
    fn simple_password() {
        let mut a = v(2);
        a.pass = Some(pass_bytes("secret-longer-than-8"));
        assert_eq!(a.pass.unwrap(), *b"secret-l");
        let m = encode(&a, Checksum::Plain, SRC, GROUP);
        assert_eq!(m[4], 1, "auth type PASS");
        assert_eq!(&m[12..20], b"secret-l");
        let good = pass_bytes("secret-l");
        let bad = pass_bytes("other");
        let with = |p| Expect {
            pass: p,
            ..expect(2, Checksum::Plain)
        };
        assert_eq!(
            decode(&ip(&m, 255, GROUP), &with(Some(&good)))
                .unwrap()
                .advert,
            a
        );
        assert_eq!(
            decode(&ip(&m, 255, GROUP), &with(Some(&bad))),
            Err(Bad::AuthPass)
        );
        assert_eq!(decode(&ip(&m, 255, GROUP), &with(None)), Err(Bad::AuthType));
    }

    /// Any bytes at all: an error or an advert, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let mut b = vec![0u8; len];
            for byte in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            if len > 9 {
                b[0] = 0x45;
                b[9] = PROTO_VRRP;
            }
            let _ = decode(&b, &expect(2, Checksum::Plain));
            let _ = decode(&b, &expect(3, Checksum::Pseudo));
        }
    }
}
