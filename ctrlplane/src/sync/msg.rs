//! The kernel's connection sync messages, version 1 (net/netfilter/ipvs/ip_vs_sync.c),
//! byte for byte: an 8-byte header `0 | syncid | size | count | version 1 | 0 0`, then
//! per connection the 36-byte IPv4 entry `type 0 | protocol | ver+size | flags | state |
//! cport | vport | dport | fwmark | timeout (s) | caddr | vaddr | daddr`, options after
//! it, each entry padded to 4 bytes. FULLNAT (which the kernel does not have) travels as
//! an optional parameter (IPVS_OPT_F_PARAM, 0x40, | 8: local address and port) that the
//! kernel skips. An entry with a mandatory option rvs does not know is skipped alone.
//! Decoding never panics: a bad message is an error value, counted.

use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sync::SyncConn;
use std::net::Ipv4Addr;

pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const PORT: u16 = 8848;
const HEADER: usize = 8;
const ENTRY_V4: usize = 36;
/// IP_VS_CONN_F_*: forwarding (low 3 bits), INACTIVE, TEMPLATE.
const F_MASQ: u32 = 0x0000;
const F_TUNNEL: u32 = 0x0002;
const F_DROUTE: u32 = 0x0003;
const F_FWD_MASK: u32 = 0x0007;
const F_INACTIVE: u32 = 0x0100;
const F_TEMPLATE: u32 = 0x1000;
/// IPVS_OPT_F_PARAM = 1 << (IPVS_OPT_PARAM - 1): optional, skipped by receivers that do
/// not know it.
const OPT_F_PARAM: u8 = 0x40;
const OPT_FULLNAT: u8 = OPT_F_PARAM | 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bad {
    Truncated,
    /// Version 0 (or anything but 1).
    Version,
    Size,
    /// An entry that is not IPv4 or whose size does not fit.
    Entry,
}

/// One message's worth of connections (at most `maxlen` bytes each).
pub fn encode(syncid: u8, conns: &[SyncConn], maxlen: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut m = Vec::new();
    let mut n = 0u8;
    let flush = |m: &mut Vec<u8>, n: &mut u8, out: &mut Vec<Vec<u8>>| {
        if *n > 0 {
            let size = m.len() as u16;
            m[2..4].copy_from_slice(&size.to_be_bytes());
            m[4] = *n;
            out.push(std::mem::take(m));
            *n = 0;
        }
    };
    for c in conns {
        let e = entry(c);
        if m.is_empty() {
            m.extend_from_slice(&[0, syncid, 0, 0, 0, 1, 0, 0]);
        }
        if m.len() + e.len() > maxlen.max(HEADER + 48) || n == u8::MAX {
            flush(&mut m, &mut n, &mut out);
            m.extend_from_slice(&[0, syncid, 0, 0, 0, 1, 0, 0]);
        }
        m.extend_from_slice(&e);
        n += 1;
    }
    flush(&mut m, &mut n, &mut out);
    out
}

fn entry(c: &SyncConn) -> Vec<u8> {
    let fwd = match c.fwd {
        Fwd::Nat | Fwd::FullNat => F_MASQ,
        Fwd::Tun => F_TUNNEL,
        Fwd::Dr => F_DROUTE,
    };
    let mut flags = fwd;
    if c.template {
        flags |= F_TEMPLATE;
    } else if c.proto == 6 && c.state != 1 {
        flags |= F_INACTIVE;
    }
    let mut e = Vec::with_capacity(48);
    e.push(0); // type: IPv4
    e.push(c.proto);
    e.extend_from_slice(&[0, 0]); // ver_size, below
    e.extend_from_slice(&flags.to_be_bytes());
    e.extend_from_slice(&u16::from(c.state).to_be_bytes());
    e.extend_from_slice(&c.cport.to_be_bytes());
    e.extend_from_slice(&c.vport.to_be_bytes());
    e.extend_from_slice(&c.dport.to_be_bytes());
    e.extend_from_slice(&0u32.to_be_bytes()); // fwmark
    e.extend_from_slice(&c.timeout.to_be_bytes());
    e.extend_from_slice(&c.caddr.octets());
    e.extend_from_slice(&c.vaddr.octets());
    e.extend_from_slice(&c.daddr.octets());
    if c.fwd == Fwd::FullNat {
        e.extend_from_slice(&[OPT_FULLNAT, 6]);
        e.extend_from_slice(&c.laddr.octets());
        e.extend_from_slice(&c.lport.to_be_bytes());
    }
    let size = e.len() as u16;
    e[2..4].copy_from_slice(&(size & 0x0fff).to_be_bytes());
    while e.len() % 4 != 0 {
        e.push(0);
    }
    e
}

/// A message: its syncid and connections.
pub fn decode(m: &[u8]) -> Result<(u8, Vec<SyncConn>), Bad> {
    if m.len() < HEADER {
        return Err(Bad::Truncated);
    }
    if m[0] != 0 || m[5] != 1 {
        return Err(Bad::Version);
    }
    let size = usize::from(u16::from_be_bytes([m[2], m[3]]));
    if size != m.len() {
        return Err(Bad::Size);
    }
    let (syncid, count) = (m[1], usize::from(m[4]));
    let mut conns = Vec::with_capacity(count);
    let mut p = HEADER;
    for _ in 0..count {
        let e = m.get(p..).ok_or(Bad::Truncated)?;
        if e.len() < ENTRY_V4 {
            return Err(Bad::Truncated);
        }
        if e[0] != 0 {
            return Err(Bad::Entry); // IPv6 (type bit 0) is not carried here yet
        }
        let len = usize::from(u16::from_be_bytes([e[2], e[3]]) & 0x0fff);
        if len < ENTRY_V4 || len > e.len() {
            return Err(Bad::Entry);
        }
        let be16 = |i: usize| u16::from_be_bytes([e[i], e[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        let ip = |i: usize| Ipv4Addr::new(e[i], e[i + 1], e[i + 2], e[i + 3]);
        let flags = be32(4);
        let mut c = SyncConn {
            proto: e[1],
            state: be16(8).min(255) as u8,
            cport: be16(10),
            vport: be16(12),
            dport: be16(14),
            timeout: be32(20),
            caddr: ip(24),
            vaddr: ip(28),
            daddr: ip(32),
            laddr: Ipv4Addr::UNSPECIFIED,
            lport: 0,
            fwd: match flags & F_FWD_MASK {
                F_TUNNEL => Fwd::Tun,
                F_DROUTE => Fwd::Dr,
                _ => Fwd::Nat,
            },
            template: flags & F_TEMPLATE != 0,
        };
        // Options: type, length, data.
        let mut o = ENTRY_V4;
        let mut keep = true;
        while o + 2 <= len {
            let (t, l) = (e[o], usize::from(e[o + 1]));
            let data = e.get(o + 2..o + 2 + l).ok_or(Bad::Entry)?;
            if o + 2 + l > len {
                return Err(Bad::Entry);
            }
            match t {
                OPT_FULLNAT if l == 6 => {
                    c.fwd = Fwd::FullNat;
                    c.laddr = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
                    c.lport = u16::from_be_bytes([data[4], data[5]]);
                }
                // SEQ_DATA (NAT sequence deltas: rvs never changes sequence numbers
                // without the SYN proxy), PE_DATA and PE_NAME (persistence engines rvs
                // has not) and any optional parameter are skipped.
                1..=3 => {}
                t if t & OPT_F_PARAM != 0 => {}
                // A mandatory option rvs does not know: this entry cannot be used.
                _ => keep = false,
            }
            o += 2 + l;
        }
        if keep {
            conns.push(c);
        }
        p += (len + 3) & !3;
    }
    Ok((syncid, conns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(fwd: Fwd) -> SyncConn {
        SyncConn {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 1, 1),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 1, 100),
            vport: 80,
            daddr: Ipv4Addr::new(198, 18, 0, 11),
            dport: 80,
            laddr: Ipv4Addr::UNSPECIFIED,
            lport: 0,
            fwd,
            template: false,
            state: 1,
            timeout: 900,
        }
    }

    /// The kernel's layout, field by field, for an established NAT connection.
    #[test]
    fn kernel_layout() {
        let m = encode(7, &[conn(Fwd::Nat)], 1472);
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.len(), 8 + 36);
        assert_eq!(&m[..8], &[0, 7, 0, 44, 1, 1, 0, 0]);
        let e = &m[8..];
        assert_eq!(&e[..4], &[0, 6, 0, 36], "type IPv4, TCP, version 0 size 36");
        assert_eq!(&e[4..8], &[0, 0, 0, 0], "flags: MASQ, active");
        assert_eq!(&e[8..10], &[0, 1], "state ESTABLISHED");
        assert_eq!(&e[10..16], &[0x9c, 0x40, 0, 80, 0, 80]);
        assert_eq!(&e[16..20], &[0; 4], "fwmark");
        assert_eq!(&e[20..24], &900u32.to_be_bytes());
        assert_eq!(
            &e[24..36],
            &[198, 18, 1, 1, 198, 18, 1, 100, 198, 18, 0, 11]
        );
        assert_eq!(decode(m).unwrap(), (7, vec![conn(Fwd::Nat)]));
    }

    #[test]
    fn methods_templates_and_fullnat_round_trip() {
        let mut t = conn(Fwd::Dr);
        t.template = true;
        t.cport = 0;
        t.state = 0;
        let mut f = conn(Fwd::FullNat);
        f.laddr = Ipv4Addr::new(198, 18, 0, 3);
        f.lport = 5001;
        let mut u = conn(Fwd::Tun);
        u.proto = 17;
        u.state = 0;
        let all = vec![t, f, u, conn(Fwd::Nat)];
        let m = encode(1, &all, 1472);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0][8 + 4..8 + 8], [0, 0, 0x10, 0x03], "TEMPLATE | DROUTE");
        assert_eq!(m[0].len() % 4, 0);
        assert_eq!(decode(&m[0]).unwrap(), (1, all));
    }

    #[test]
    fn split_at_maxlen() {
        let many: Vec<SyncConn> = (0..100).map(|_| conn(Fwd::Nat)).collect();
        let m = encode(1, &many, 200);
        assert!(m.iter().all(|x| x.len() <= 200));
        let back: Vec<SyncConn> = m.iter().flat_map(|x| decode(x).unwrap().1).collect();
        assert_eq!(back.len(), 100);
    }

    #[test]
    fn bad_messages() {
        let m = encode(1, &[conn(Fwd::Nat)], 1472).remove(0);
        assert_eq!(decode(&m[..6]), Err(Bad::Truncated));
        let mut v0 = m.clone();
        v0[0] = 1;
        assert_eq!(decode(&v0), Err(Bad::Version));
        assert_eq!(decode(&m[..m.len() - 4]), Err(Bad::Size));
        let mut more = m.clone();
        more[4] = 2;
        assert_eq!(decode(&more), Err(Bad::Truncated));
        // An unknown mandatory option costs its entry only; an optional one nothing.
        let two = encode(1, &[conn(Fwd::Nat), conn(Fwd::Nat)], 1472).remove(0);
        for (t, kept) in [(0x05u8, 1usize), (0x45, 2)] {
            let mut m = two.clone();
            // Append a 2-byte option (type t, length 0) to the first entry, padded.
            let mut e1 = m[8..44].to_vec();
            e1.extend_from_slice(&[t, 0]);
            e1[3] = 38;
            e1.extend_from_slice(&[0, 0]);
            let mut rebuilt = m[..8].to_vec();
            rebuilt.extend_from_slice(&e1);
            rebuilt.extend_from_slice(&m[44..]);
            let size = rebuilt.len() as u16;
            rebuilt[2..4].copy_from_slice(&size.to_be_bytes());
            m = rebuilt;
            assert_eq!(decode(&m).unwrap().1.len(), kept, "option type {t:#x}");
        }
        let mut x = 0x9e37_79b9u32;
        for len in 0..120 {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if len >= 8 {
                b[0] = 0;
                b[5] = 1;
                b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            }
            let _ = decode(&b);
        }
    }
}
