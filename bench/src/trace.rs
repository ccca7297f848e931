//! Trace profiles: which packets, in which order.

use dataplane::packet::build::{self, Link};
use dataplane::packet::checksum;
use dataplane::packet::tcp::flags as tf;
use dataplane::packet::MacAddr;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// One SYN per flow, every flow new: connection setup rate.
    Syn,
    /// A SYN per flow, then `rounds` data segments per flow, interleaved over flows.
    Established,
    /// `rounds` data segments per flow, interleaved, and no SYN: replayed over
    /// connections that a `Syn` trace opened beforehand (the throughput rows' mix).
    Segments,
    /// `rounds` UDP datagrams per flow, interleaved.
    Udp,
    /// Established TCP and UDP flows alternating.
    Mix,
    /// Established TCP with the NAT reply direction: after the SYNs, every client
    /// segment is followed by the real server's reply (servers assigned round robin in
    /// flow order, as rr on one worker schedules them).
    NatReplies,
    /// Valid packets damaged in every way the wire can: truncations, bad lengths and
    /// checksums, IP options, TTL 1, fragments, unknown protocols.
    Malformed,
    /// SYNs from random sources and ports (a SYN flood).
    Synflood,
}

/// Everything a trace is made from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TraceSpec {
    pub profile: Profile,
    pub flows: u32,
    pub rounds: u32,
    /// Frame size including the 4-byte FCS (64 = minimum Ethernet frame).
    pub size: usize,
    pub seed: u64,
    pub vip: Ipv4Addr,
    pub vport: u16,
    /// Real servers, for reply profiles.
    pub servers: Vec<(Ipv4Addr, u16)>,
    #[serde(skip)]
    pub dst_mac: MacAddr,
    #[serde(skip)]
    pub src_mac: MacAddr,
}

/// Client endpoint of flow `i`: addresses spread over 198.19.0.0/16 first (so flows hash
/// over workers), then ports.
pub fn client(i: u32) -> (Ipv4Addr, u16) {
    let ip = u32::from(Ipv4Addr::new(198, 19, 0, 0)) + (i % 65536);
    (Ipv4Addr::from(ip), 1024 + (i / 65536) as u16)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, deterministic, plenty for traffic.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Payload to reach `size` for a TCP (54-byte headers) or UDP (42-byte headers) frame.
fn payload(size: usize, headers: usize, fill: u8) -> Vec<u8> {
    vec![fill; size.saturating_sub(4).saturating_sub(headers)]
}

/// Builds the trace, calling `emit` for every frame in order.
pub fn generate(spec: &TraceSpec, mut emit: impl FnMut(&[u8])) {
    let mut rng = Rng(spec.seed | 1);
    let to_vip = Link {
        src: spec.src_mac,
        dst: spec.dst_mac,
    };
    let v = (spec.vip, spec.vport);
    let tcp_data = payload(spec.size, 54, 0x5a);
    let udp_data = payload(spec.size, 42, 0xa5);
    let syn = |i: u32| build::tcp(to_vip, client(i), v, (1000 + i, 0), tf::SYN, &[], b"");
    let seg = |i: u32, r: u32| {
        build::tcp(
            to_vip,
            client(i),
            v,
            (1001 + i + r * tcp_data.len() as u32, 1),
            tf::ACK | tf::PSH,
            &[],
            &tcp_data,
        )
    };
    match spec.profile {
        Profile::Syn => (0..spec.flows).for_each(|i| emit(&syn(i))),
        Profile::Established => {
            (0..spec.flows).for_each(|i| emit(&syn(i)));
            for r in 0..spec.rounds {
                (0..spec.flows).for_each(|i| emit(&seg(i, r)));
            }
        }
        Profile::Segments => {
            for r in 0..spec.rounds {
                (0..spec.flows).for_each(|i| emit(&seg(i, r)));
            }
        }
        Profile::Udp => {
            for _ in 0..spec.rounds {
                (0..spec.flows).for_each(|i| emit(&build::udp(to_vip, client(i), v, &udp_data)));
            }
        }
        Profile::Mix => {
            (0..spec.flows)
                .filter(|i| i % 2 == 0)
                .for_each(|i| emit(&syn(i)));
            for r in 0..spec.rounds {
                for i in 0..spec.flows {
                    if i % 2 == 0 {
                        emit(&seg(i, r));
                    } else {
                        emit(&build::udp(to_vip, client(i), v, &udp_data));
                    }
                }
            }
        }
        Profile::NatReplies => {
            let n = spec.servers.len().max(1) as u32;
            (0..spec.flows).for_each(|i| emit(&syn(i)));
            let from_rs = Link {
                src: spec.src_mac,
                dst: spec.dst_mac,
            };
            for r in 0..spec.rounds {
                for i in 0..spec.flows {
                    emit(&seg(i, r));
                    if let Some(&rs) = spec.servers.get((i % n) as usize) {
                        emit(&build::tcp(
                            from_rs,
                            rs,
                            client(i),
                            (1, 1001 + i),
                            tf::ACK,
                            &[],
                            &tcp_data,
                        ));
                    }
                }
            }
        }
        Profile::Malformed => {
            for i in 0..spec.flows.max(1) * spec.rounds.max(1) {
                let mut f = if i % 2 == 0 {
                    seg(i % spec.flows.max(1), 0)
                } else {
                    build::udp(to_vip, client(i), v, &udp_data)
                };
                damage(&mut f, &mut rng);
                emit(&f);
            }
        }
        Profile::Synflood => {
            for _ in 0..spec.flows {
                let ip = Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(198, 19, 0, 0)) + rng.below(65536) as u32,
                );
                let port = 1024 + rng.below(64512) as u16;
                emit(&build::tcp(
                    to_vip,
                    (ip, port),
                    v,
                    (rng.next() as u32, 0),
                    tf::SYN,
                    &[],
                    b"",
                ));
            }
        }
    }
}

/// An endless stream of TCP connections as the director sees them from the client side:
/// SYN, ACK, one data segment, FIN+ACK per connection, every connection from a client
/// endpoint not used before (198.19.0.0/16 times 64,512 ports: 4 billion connections).
/// Every 32 frames hold the SYNs of 8 new connections, the ACKs of the 8 before them,
/// the data of the 8 before those and the FINs of the 8 before those, so a burst mixes
/// every step of the handshake like a busy director's does.
pub struct Lifecycle {
    templates: [Vec<u8>; 4],
    frame: Vec<u8>,
    pos: u64,
}

impl Lifecycle {
    /// Frames per connection.
    pub const FRAMES: u64 = 4;

    pub fn new(spec: &TraceSpec) -> Lifecycle {
        let link = Link {
            src: spec.src_mac,
            dst: spec.dst_mac,
        };
        let v = (spec.vip, spec.vport);
        let data = payload(spec.size, 54, 0x5a);
        let c = client(0);
        let t = |seq: u32, flags: u8, d: &[u8]| build::tcp(link, c, v, (seq, 1), flags, &[], d);
        Lifecycle {
            templates: [
                build::tcp(link, c, v, (1000, 0), tf::SYN, &[], b""),
                t(1001, tf::ACK, b""),
                t(1001, tf::ACK | tf::PSH, &data),
                t(1001 + data.len() as u32, tf::FIN | tf::ACK, b""),
            ],
            frame: Vec::new(),
            pos: 0,
        }
    }

    /// Connections whose SYN has been produced.
    pub fn opened(&self) -> u64 {
        self.pos.div_ceil(32) * 8
    }

    /// The next frame: a template with the connection's client address and port written
    /// in and both checksums adjusted.
    pub fn next_frame(&mut self) -> &[u8] {
        let (burst, q) = (self.pos / 32, (self.pos % 32) as usize);
        self.pos += 1;
        let step = q / 8;
        // The first bursts' ACKs, data and FINs belong to connections that never sent
        // a SYN (flow numbers below 24): they are only ever part of a warm-up.
        let flow = ((burst + 3 - step as u64) * 8 + (q % 8) as u64) as u32;
        let (ip0, port0) = client(0);
        let ip = u32::from(ip0) + flow % 65536;
        let port = port0 + ((flow / 65536) % 64512) as u16;
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(&self.templates[step]);
        let word = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
        let put = |f: &mut [u8], at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_be_bytes());
        f[26..30].copy_from_slice(&ip.to_be_bytes());
        f[34..36].copy_from_slice(&port.to_be_bytes());
        let ipc = checksum::update32(word(f, 24), u32::from(ip0), ip);
        put(f, 24, ipc);
        let tc = checksum::update32(word(f, 50), u32::from(ip0), ip);
        let tc = checksum::update16(tc, port0, port);
        put(f, 50, tc);
        &self.frame
    }
}

/// One random kind of damage to a well-formed Ethernet/IPv4 frame.
fn damage(f: &mut Vec<u8>, rng: &mut Rng) {
    let fix_ip = |f: &mut Vec<u8>| {
        if let Ok(mut ip) = dataplane::packet::Ipv4Packet::new_checked(&mut f[14..]) {
            ip.fill_checksum();
        }
    };
    match rng.below(10) {
        0 => {
            let n = 14 + rng.below(40) as usize;
            f.truncate(n.min(f.len())); // cut inside the headers
        }
        1 => f[16] = 0xff,  // IP total length beyond the frame
        2 => f[24] ^= 0x5a, // bad IP checksum
        3 => {
            f[14] = 0x46; // IP options that the total length does not cover
            fix_ip(f);
        }
        4 => {
            f[22] = 1; // TTL 1
            fix_ip(f);
        }
        5 => {
            f[20] = 0x20; // a first fragment (MF)
            fix_ip(f);
        }
        6 => {
            f[20] = 0x00;
            f[21] = 0x10; // a later fragment, offset 128
            fix_ip(f);
        }
        7 => {
            f[23] = 99; // unknown protocol
            fix_ip(f);
        }
        8 => {
            if let Some(b) = f.get_mut(34 + 12) {
                *b = 0xf0; // TCP data offset past the segment
            }
        }
        _ => {
            let i = 14 + rng.below((f.len() - 14) as u64) as usize;
            f[i] = rng.next() as u8; // any one byte
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::packet::{dissect, L3Summary, L4Summary};

    fn spec(profile: Profile, flows: u32, rounds: u32, size: usize) -> TraceSpec {
        TraceSpec {
            profile,
            flows,
            rounds,
            size,
            seed: 7,
            vip: Ipv4Addr::new(198, 18, 1, 100),
            vport: 80,
            servers: vec![
                (Ipv4Addr::new(198, 18, 0, 11), 80),
                (Ipv4Addr::new(198, 18, 0, 12), 80),
            ],
            dst_mac: MacAddr([2, 0x70, 0x63, 0x61, 0x70, 0]),
            src_mac: MacAddr([2, 0, 0, 0, 0, 0xc1]),
        }
    }

    fn frames(s: &TraceSpec) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        generate(s, |f| v.push(f.to_vec()));
        v
    }

    #[test]
    fn lifecycle_connections_are_new_whole_and_valid() {
        let mut l = Lifecycle::new(&spec(Profile::Syn, 1, 1, 64));
        let mut seen: std::collections::HashMap<(Ipv4Addr, u16), Vec<u8>> = Default::default();
        for _ in 0..32 * 40 {
            let f = l.next_frame().to_vec();
            assert_eq!(f.len(), 60);
            assert_eq!(checksum::checksum(&f[14..34]), 0, "IP checksum");
            let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
            let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
            let tcp_len = u16::from_be_bytes([f[16], f[17]]) - 20;
            let acc = checksum::pseudo_header_v4(src, dst, 6, tcp_len);
            let end = 34 + tcp_len as usize;
            assert_eq!(
                checksum::finish(checksum::accumulate(acc, &f[34..end])),
                0,
                "TCP checksum"
            );
            let port = u16::from_be_bytes([f[34], f[35]]);
            seen.entry((src, port)).or_default().push(f[47]);
        }
        assert_eq!(l.opened(), 40 * 8);
        let whole = vec![tf::SYN, tf::ACK, tf::ACK | tf::PSH, tf::FIN | tf::ACK];
        let complete = seen.values().filter(|v| **v == whole).count();
        // Flows 24 to 319 get all four frames in order; those below 24 lack their SYN
        // (warm-up only), those above lack their end.
        assert_eq!(complete, 40 * 8 - 24, "{seen:?}");
        assert!(seen
            .values()
            .all(|v| v.len() <= 4 && (v[0] == tf::SYN || v.len() < 4)));
    }

    #[test]
    fn sizes_counts_and_validity() {
        for size in [64usize, 128, 512, 1518] {
            let f = frames(&spec(Profile::Established, 10, 3, size));
            assert_eq!(f.len(), 10 + 30);
            assert!(f[10..].iter().all(|x| x.len() == size - 4), "{size}");
            for x in &f {
                match dissect(x).unwrap().l3 {
                    L3Summary::Ip {
                        checksum_ok: true,
                        l4:
                            L4Summary::Tcp {
                                checksum_ok: true, ..
                            },
                        ..
                    } => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        let u = frames(&spec(Profile::Udp, 5, 2, 64));
        assert_eq!(u.len(), 10);
        let syn = frames(&spec(Profile::Syn, 1000, 1, 64));
        let uniq: std::collections::HashSet<_> = syn.iter().map(|f| f[26..38].to_vec()).collect();
        assert_eq!(uniq.len(), 1000, "every SYN a new flow");
    }

    #[test]
    fn deterministic_from_the_seed() {
        let a = frames(&spec(Profile::Synflood, 100, 1, 64));
        assert_eq!(a, frames(&spec(Profile::Synflood, 100, 1, 64)));
        let mut other = spec(Profile::Synflood, 100, 1, 64);
        other.seed = 8;
        assert_ne!(a, frames(&other));
        assert_eq!(
            frames(&spec(Profile::Malformed, 50, 2, 64)),
            frames(&spec(Profile::Malformed, 50, 2, 64))
        );
    }

    #[test]
    fn nat_replies_follow_round_robin() {
        let f = frames(&spec(Profile::NatReplies, 4, 1, 64));
        assert_eq!(f.len(), 4 + 8);
        let srcs: Vec<String> = f[4..]
            .iter()
            .skip(1)
            .step_by(2)
            .map(|x| match dissect(x).unwrap().l3 {
                L3Summary::Ip { src, .. } => src.to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(
            srcs,
            ["198.18.0.11", "198.18.0.12", "198.18.0.11", "198.18.0.12"]
        );
    }

    #[test]
    fn malformed_traces_are_damaged_yet_never_crash_a_parser() {
        let f = frames(&spec(Profile::Malformed, 200, 1, 64));
        let bad = f
            .iter()
            .filter(|x| {
                !matches!(
                    dissect(x).map(|d| d.l3),
                    Ok(L3Summary::Ip {
                        checksum_ok: true,
                        l4: L4Summary::Tcp {
                            checksum_ok: true,
                            ..
                        } | L4Summary::Udp {
                            checksum_ok: true,
                            ..
                        },
                        ..
                    })
                )
            })
            .count();
        assert!(bad > 150, "{bad} of 200 damaged");
    }

    #[test]
    fn clients_stay_in_the_benchmark_range() {
        for i in [0u32, 65535, 65536, 999_999] {
            let (ip, port) = client(i);
            assert_eq!(ip.octets()[..2], [198, 19]);
            assert!(port >= 1024);
        }
    }
}
