//! Which worker owns a packet's connection: a pure function of the packet (and the IPVS
//! table), so that both directions of a connection meet on one worker. Packets that
//! arrive elsewhere are handed over through the redirect rings (`worker::Redirect`).

use super::icmp::quoted;
use super::service::IpvsTable;
use crate::packet::ipv4::protocol;
use crate::packet::IpHdr;
use std::net::Ipv4Addr;

/// The endpoints an owner is computed from.
struct Tuple {
    proto: u8,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    /// A fragment: ports may be missing, so only addresses count.
    frag: bool,
}

/// The worker that owns the connection of the packet `h` (with `frame` its whole frame,
/// read only for the quote of an ICMP error).
///
/// NAT, DR and TUN hash the client endpoint (the source of a request, the destination of
/// a NAT reply); the client address alone for UDP, for IP fragments (later fragments carry
/// no ports) and for persistent services (a client's connections must meet its template).
/// FULLNAT replies go to the worker whose share of local ports holds their destination
/// port. An ICMP error belongs to the connection of the packet it quotes.
pub fn owner(ipvs: &IpvsTable, h: &IpHdr, frame: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    match h.proto {
        protocol::TCP | protocol::UDP => tuple_owner(
            ipvs,
            &Tuple {
                proto: h.proto,
                src: h.src,
                sport: h.sport,
                dst: h.dst,
                dport: h.dport,
                frag: h.is_fragment() || !h.l4_ok,
            },
            workers,
        ),
        protocol::ICMP if !ipvs.is_empty() && !h.is_fragment() => {
            match frame.get(h.l4()..h.end()).and_then(quoted) {
                // The quoted packet travelled the other way.
                Some(q) if matches!(q.proto, protocol::TCP | protocol::UDP) => tuple_owner(
                    ipvs,
                    &Tuple {
                        proto: q.proto,
                        src: q.dst,
                        sport: q.dport,
                        dst: q.src,
                        dport: q.sport,
                        frag: false,
                    },
                    workers,
                ),
                _ => 0,
            }
        }
        _ => 0,
    }
}

fn tuple_owner(ipvs: &IpvsTable, t: &Tuple, workers: usize) -> usize {
    if ipvs.is_lip(t.dst) {
        // A later FULLNAT reply fragment has no port to go by; it is dropped (and
        // counted) unless it lands on the owner.
        return usize::from(t.dport) % workers;
    }
    let ip_only = t.frag || t.proto == protocol::UDP;
    let (addr, port) = if ipvs.is_vip(t.dst) {
        let by_ip = ip_only
            || ipvs
                .lookup(t.proto, t.dst, t.dport)
                .is_some_and(|s| s.client_ip_owned);
        (t.src, if by_ip { 0 } else { t.sport })
    } else {
        let by_ip = ip_only || ipvs.reply_ip_owned(t.proto, t.src, t.sport);
        (t.dst, if by_ip { 0 } else { t.dport })
    };
    endpoint_hash(addr, port) % workers
}

/// The worker of a client endpoint (address, and port unless 0).
pub fn endpoint_owner(a: Ipv4Addr, p: u16, workers: usize) -> usize {
    endpoint_hash(a, p) % workers.max(1)
}

fn endpoint_hash(a: Ipv4Addr, p: u16) -> usize {
    let x = (u64::from(u32::from(a)) << 16 | u64::from(p)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 40) as usize
}
