//! Packet-level tests of the IPVS engine: a worker driven with in-memory frames.

use super::conn::Fwd;
use super::sched::{SchedFlags, SchedKind};
use super::service::{IpvsTable, Persistence, Proto, RealServer, Service};
use super::state::Timeouts;
use crate::frame::{CaptureIo, Frame, HeapFrame};
use crate::net::neigh::NeighParams;
use crate::packet::build::{self, Link};
use crate::packet::tcp::flags as tf;
use crate::packet::{dissect, IpHdr, Ipv4Packet, L3Summary, L4Summary, MacAddr};
use crate::snapshot::{PortInfo, Snapshot, SnapshotCell, StaticNeigh};
use crate::stats::{DropReason, WorkerStats};
use crate::worker::{Mailboxes, Redirect, WorkerCore, WorkerParts};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

pub(super) const DMAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xd0]);
pub(super) const CMAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc1]);
pub(super) const RMAC: [MacAddr; 2] = [
    MacAddr([2, 0, 0, 0, 0, 0x11]),
    MacAddr([2, 0, 0, 0, 0, 0x12]),
];
pub(super) const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub(super) const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
pub(super) const LIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
pub(super) const RIP: [Ipv4Addr; 2] =
    [Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 12)];

pub(super) fn service(fwd: Fwd, weights: &[u32], persistence: Option<u32>) -> Service {
    let dests: Vec<RealServer> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| RealServer {
            slot: i as u32,
            addr: RIP[i],
            port: 8080,
            fwd,
            weight: w,
            u_threshold: 0,
            l_threshold: 0,
        })
        .collect();
    Service {
        slot: 0,
        proto: Proto::Tcp,
        vip: VIP,
        port: 80,
        sched: SchedKind::Rr,
        flags: SchedFlags::default(),
        persistence: persistence.map(|t| Persistence {
            timeout: t,
            netmask: Ipv4Addr::BROADCAST,
        }),
        local_addrs: vec![LIP],
        toa: false,
        tables: Service::build_tables(SchedKind::Rr, &dests),
        dests,
        version: 1,
        client_ip_owned: false,
    }
}

fn udp_service(fwd: Fwd) -> Service {
    Service {
        slot: 1,
        proto: Proto::Udp,
        port: 53,
        ..service(fwd, &[1], None)
    }
}

pub(super) fn snapshot(services: Vec<Service>, nodest: bool) -> Snapshot {
    let ports = vec![PortInfo {
        name: "lan0".into(),
        mac: DMAC,
        mtu: 1500,
        addresses: vec![
            "198.18.0.2/24".parse().unwrap(),
            "198.18.1.2/24".parse().unwrap(),
        ],
        kernel: None,
    }];
    let neigh = vec![
        StaticNeigh {
            ip: CIP,
            mac: CMAC,
            port: 0,
        },
        StaticNeigh {
            ip: RIP[0],
            mac: RMAC[0],
            port: 0,
        },
        StaticNeigh {
            ip: RIP[1],
            mac: RMAC[1],
            port: 0,
        },
    ];
    Snapshot::new(ports, &[], neigh, NeighParams::default()).with_ipvs(IpvsTable::new(
        services,
        Timeouts::default(),
        nodest,
        false,
    ))
}

/// The owner of the IPv4 packet `ip` (starting at its IP header).
pub(super) fn owner(snap: &Snapshot, ip: &[u8], workers: usize) -> usize {
    let h = IpHdr::parse_v4(ip, 0).expect("a valid IPv4 packet");
    super::owner(&snap.ipvs, &h, ip, workers)
}

pub(super) struct Rig {
    pub(super) w: WorkerCore<HeapFrame>,
    cell: Arc<SnapshotCell>,
    io: CaptureIo,
    stats: Arc<WorkerStats>,
}

impl Rig {
    pub(super) fn new(snap: Snapshot, capacity: usize) -> Rig {
        let cell = Arc::new(SnapshotCell::new(snap));
        let parts = WorkerParts::alone(cell.clone(), capacity);
        let stats = parts.stats.clone();
        let mut w = WorkerCore::new(0, parts);
        let mut io = CaptureIo::default();
        w.start(&mut io);
        io.sent.clear();
        Rig { w, cell, io, stats }
    }
    pub(super) fn rx(&mut self, f: Vec<u8>, now_ms: u64) -> Vec<Vec<u8>> {
        self.w.poll_control(now_ms, &mut self.io);
        self.w
            .handle(HeapFrame::from_bytes(&f), 0, now_ms, &mut self.io);
        self.io
            .sent
            .drain(..)
            .map(|(_, f)| f.data().to_vec())
            .collect()
    }
    pub(super) fn drops(&self, r: DropReason) -> u64 {
        self.stats.drops(r)
    }
}

pub(super) fn to_dir(src: MacAddr) -> Link {
    Link { src, dst: DMAC }
}

pub(super) fn ip_of(f: &[u8]) -> Ipv4Packet<&[u8]> {
    Ipv4Packet::new_checked(&f[14..]).unwrap()
}

/// (src, sport, dst, dport, flags) of a TCP frame, after checking every checksum.
pub(super) fn tcp_of(f: &[u8]) -> (IpAddr, u16, IpAddr, u16, u8) {
    match dissect(f).unwrap().l3 {
        L3Summary::Ip {
            src,
            dst,
            checksum_ok: true,
            l4:
                L4Summary::Tcp {
                    src_port,
                    dst_port,
                    flags,
                    checksum_ok: true,
                    ..
                },
            ..
        } => (src, src_port, dst, dst_port, flags),
        other => panic!("not a valid TCP frame: {other:?}"),
    }
}

pub(super) fn syn(cport: u16) -> Vec<u8> {
    build::tcp(
        to_dir(CMAC),
        (CIP, cport),
        (VIP, 80),
        (1000, 0),
        tf::SYN,
        &[],
        b"",
    )
}

#[test]
fn nat_handshake_field_by_field_with_state_and_counters() {
    let mut r = Rig::new(
        snapshot(vec![service(Fwd::Nat, &[1, 1], None)], false),
        1024,
    );
    let out = r.rx(syn(40000), 0);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(
        (&f[0..6], &f[6..12]),
        (&RMAC[0].0[..], &DMAC.0[..]),
        "to the real server's MAC, from ours"
    );
    assert_eq!(tcp_of(f), (CIP.into(), 40000, RIP[0].into(), 8080, tf::SYN));
    assert_eq!(ip_of(f).ttl(), 63, "TTL decremented where rvs routes");
    assert_eq!(
        r.w.ipvs.dest_counts(0),
        (0, 1, 0),
        "a new connection is inactive"
    );
    // The real server answers: the reply leaves from the VIP to the client.
    let synack = build::tcp(
        to_dir(RMAC[0]),
        (RIP[0], 8080),
        (CIP, 40000),
        (5000, 1001),
        tf::SYN | tf::ACK,
        &[],
        b"",
    );
    let out = r.rx(synack, 1);
    assert_eq!(&out[0][0..6], &CMAC.0[..]);
    assert_eq!(
        tcp_of(&out[0]),
        (VIP.into(), 80, CIP.into(), 40000, tf::SYN | tf::ACK)
    );
    let ack = build::tcp(
        to_dir(CMAC),
        (CIP, 40000),
        (VIP, 80),
        (1001, 5001),
        tf::ACK,
        &[],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let out = r.rx(ack, 2);
    assert_eq!(tcp_of(&out[0]).2, IpAddr::from(RIP[0]));
    assert_eq!(
        r.w.ipvs.dest_counts(0),
        (1, 0, 0),
        "ESTABLISHED counts as active"
    );
    let s = &r.w.ipvs.stats;
    assert_eq!(
        (
            s.dests[0].traffic.conns.get(),
            s.dests[0].traffic.inpkts.get(),
            s.dests[0].traffic.outpkts.get()
        ),
        (1, 2, 1)
    );
    // The next connection goes to the other server (rr).
    let out = r.rx(syn(40001), 3);
    assert_eq!(tcp_of(&out[0]).2, IpAddr::from(RIP[1]));
    // Established connections expire after 900 s, half-open ones after the SYN_RECV 60 s.
    r.w.poll_control(3 + 61_000, &mut r.io);
    assert_eq!(r.w.ipvs.conns.len(), 1);
    r.w.poll_control(3 + 901_000, &mut r.io);
    assert_eq!(r.w.ipvs.conns.len(), 0);
    assert_eq!(r.w.ipvs.dest_counts(0), (0, 0, 0));
}

#[test]
fn only_a_syn_opens_and_other_segments_are_counted() {
    let mut r = Rig::new(snapshot(vec![service(Fwd::Nat, &[1], None)], false), 1024);
    let ack = build::tcp(
        to_dir(CMAC),
        (CIP, 40000),
        (VIP, 80),
        (1, 1),
        tf::ACK,
        &[],
        b"",
    );
    assert!(r.rx(ack, 0).is_empty());
    assert_eq!(r.drops(DropReason::NoConn), 1);
    assert_eq!(r.w.ipvs.conns.len(), 0);
}

#[test]
fn dr_rewrites_only_the_mac() {
    let mut r = Rig::new(snapshot(vec![service(Fwd::Dr, &[1], None)], false), 1024);
    let inp = syn(40000);
    let out = r.rx(inp.clone(), 0);
    assert_eq!(&out[0][0..6], &RMAC[0].0[..]);
    assert_eq!(&out[0][6..12], &DMAC.0[..]);
    assert_eq!(&out[0][12..], &inp[12..], "nothing but the MACs changes");
}

#[test]
fn fullnat_translates_both_ways_and_partitions_ports() {
    let mut r = Rig::new(
        snapshot(vec![service(Fwd::FullNat, &[1], None)], false),
        1024,
    );
    let out = r.rx(syn(40000), 0);
    let (src, lport, dst, dport, _) = tcp_of(&out[0]);
    assert_eq!((src, dst, dport), (LIP.into(), RIP[0].into(), 8080));
    assert!(lport >= 1024);
    let reply = build::tcp(
        to_dir(RMAC[0]),
        (RIP[0], 8080),
        (LIP, lport),
        (1, 1001),
        tf::SYN | tf::ACK,
        &[],
        b"",
    );
    let out = r.rx(reply, 1);
    assert_eq!(
        tcp_of(&out[0]),
        (VIP.into(), 80, CIP.into(), 40000, tf::SYN | tf::ACK)
    );
    // A packet to the LIP with no connection is not ours to deliver.
    let stray = build::tcp(
        to_dir(RMAC[0]),
        (RIP[0], 8080),
        (LIP, lport.wrapping_add(1)),
        (1, 1),
        tf::ACK,
        &[],
        b"",
    );
    assert!(r.rx(stray, 2).is_empty());
    assert_eq!(r.drops(DropReason::NoConn), 1);
}

#[test]
fn icmp_errors_are_translated_both_ways() {
    let mut r = Rig::new(snapshot(vec![udp_service(Fwd::Nat)], false), 1024);
    let q = build::udp(to_dir(CMAC), (CIP, 5353), (VIP, 53), b"query");
    let fwd = r.rx(q, 0).remove(0);
    // The real server says port unreachable about the packet it got (CIP -> RIP:8080).
    let b = build::icmp_error(to_dir(RMAC[0]), RIP[0], &fwd[14..], 3, 3);
    let out = r.rx(b, 1);
    assert_eq!(out.len(), 1, "forwarded to the client");
    let o = ip_of(&out[0]);
    assert!(o.verify_checksum());
    assert_eq!((o.src(), o.dst()), (VIP, CIP), "outer source is the VIP");
    let m = crate::packet::IcmpPacket::new_checked(o.payload()).unwrap();
    assert!(m.verify_checksum());
    assert_eq!((m.msg_type(), m.code()), (3, 3), "type and code kept");
    // The quote, read by hand: the quoted IP header (20 bytes) and UDP ports.
    let q = m.data();
    assert_eq!(q.len(), 28, "IP header and 8 bytes quoted");
    assert_eq!(&q[12..16], &CIP.octets(), "quoted source");
    assert_eq!(&q[16..20], &VIP.octets(), "quoted destination: the VIP");
    assert_eq!(&q[20..22], &5353u16.to_be_bytes(), "quoted source port");
    assert_eq!(&q[22..24], &53u16.to_be_bytes(), "quoted destination port");
    assert_eq!(
        crate::packet::checksum::checksum(&q[..20]),
        0,
        "quoted IP header checksum patched"
    );
    // The other way: a router near the client says unreachable about the VIP's reply.
    let reply = build::udp(to_dir(RMAC[0]), (RIP[0], 8080), (CIP, 5353), b"answer");
    let to_client = r.rx(reply, 2).remove(0);
    let mut b = build::icmp_error(
        to_dir(CMAC),
        Ipv4Addr::new(198, 18, 1, 254),
        &to_client[14..],
        11,
        0,
    );
    // Addressed to the VIP, which sent the quoted packet.
    let mut ip = Ipv4Packet::new_checked(&mut b[14..]).unwrap();
    ip.set_dst(VIP);
    ip.fill_checksum();
    let out = r.rx(b, 3);
    assert_eq!(out.len(), 1, "forwarded to the real server");
    let o = ip_of(&out[0]);
    assert_eq!(o.dst(), RIP[0]);
    assert_eq!(
        o.src(),
        Ipv4Addr::new(198, 18, 1, 254),
        "outer source unchanged (NAT)"
    );
    assert!(o.verify_checksum());
    let m = crate::packet::IcmpPacket::new_checked(o.payload()).unwrap();
    assert!(m.verify_checksum());
    assert_eq!((m.msg_type(), m.code()), (11, 0));
    let q = m.data();
    assert_eq!(
        &q[12..16],
        &RIP[0].octets(),
        "quoted source: the real server"
    );
    assert_eq!(&q[16..20], &CIP.octets(), "quoted destination");
    assert_eq!(&q[20..22], &8080u16.to_be_bytes(), "quoted source port");
    assert_eq!(
        &q[22..24],
        &5353u16.to_be_bytes(),
        "quoted destination port"
    );
    assert_eq!(
        crate::packet::checksum::checksum(&q[..20]),
        0,
        "quoted IP header checksum patched"
    );
    assert_eq!(r.w.ipvs.stats.icmp_translated.get(), 2);
}

/// A UDP datagram of `len` payload bytes as two IPv4 fragments (first carries the UDP
/// header and 24 bytes).
fn fragments(id: u16, len: usize) -> (Vec<u8>, Vec<u8>) {
    let whole = build::udp(to_dir(CMAC), (CIP, 5353), (VIP, 53), &vec![7u8; len]);
    let ip = ip_of(&whole);
    let payload = ip.payload().to_vec();
    let mk = |off: usize, data: &[u8], more: bool| {
        let mut f = whole[..34].to_vec();
        f.extend_from_slice(data);
        let total = (20 + data.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let word = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&word.to_be_bytes());
        let mut p = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
        p.fill_checksum();
        f
    };
    (mk(0, &payload[..32], true), mk(32, &payload[32..], false))
}

#[test]
fn fragments_follow_their_first_fragment() {
    let mut r = Rig::new(snapshot(vec![udp_service(Fwd::Nat)], false), 1024);
    let (first, second) = fragments(77, 100);
    let a = r.rx(first, 0);
    let b = r.rx(second, 1);
    assert_eq!((a.len(), b.len()), (1, 1));
    let (ia, ib) = (ip_of(&a[0]), ip_of(&b[0]));
    assert_eq!(
        (ia.dst(), ib.dst()),
        (RIP[0], RIP[0]),
        "both to the same real server"
    );
    assert!(ia.verify_checksum() && ib.verify_checksum());
    assert_eq!(ib.frag_offset(), 32);
    // Reassembled, the datagram's UDP checksum still verifies after the rewrite.
    let mut whole = ia.payload().to_vec();
    whole.extend_from_slice(ib.payload());
    let u = crate::packet::UdpPacket::new_checked(&whole[..]).unwrap();
    assert_eq!(u.dst_port(), 8080);
    assert!(u.verify_checksum_v4(CIP, RIP[0]));
    // A later fragment whose first was never seen is dropped, not mis-forwarded.
    let (_, orphan) = fragments(78, 100);
    assert!(r.rx(orphan, 2).is_empty());
    assert_eq!(r.drops(DropReason::FragUntracked), 1);
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut r = Rig::new(snapshot(vec![service(Fwd::Nat, &[1], None)], false), 1024);
    let mut f = syn(40000);
    f[22] = 1;
    let mut ip = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
    ip.fill_checksum();
    let out = r.rx(f, 0);
    assert_eq!(r.drops(DropReason::TtlExceeded), 1);
    assert!(matches!(
        dissect(&out[0]).unwrap().l3,
        L3Summary::Ip {
            l4: L4Summary::Icmp {
                msg_type: 11,
                code: 0,
                checksum_ok: true
            },
            ..
        }
    ));
    assert_eq!(ip_of(&out[0]).dst(), CIP);
}

#[test]
fn no_available_server_answers_port_unreachable() {
    let mut r = Rig::new(
        snapshot(vec![service(Fwd::Nat, &[0, 0], None)], false),
        1024,
    );
    let out = r.rx(syn(40000), 0);
    assert_eq!(r.drops(DropReason::NoDest), 1);
    assert!(matches!(
        dissect(&out[0]).unwrap().l3,
        L3Summary::Ip {
            l4: L4Summary::Icmp {
                msg_type: 3,
                code: 3,
                ..
            },
            ..
        }
    ));
}

#[test]
fn a_full_table_refuses_new_connections_only() {
    let mut r = Rig::new(snapshot(vec![service(Fwd::Nat, &[1], None)], false), 2);
    assert_eq!(r.rx(syn(1), 0).len(), 1);
    assert_eq!(r.rx(syn(2), 0).len(), 1);
    assert!(r.rx(syn(3), 0).is_empty());
    assert_eq!(r.drops(DropReason::ConnTableFull), 1);
    let again = build::tcp(
        to_dir(CMAC),
        (CIP, 1),
        (VIP, 80),
        (1001, 1),
        tf::ACK,
        &[],
        b"x",
    );
    assert_eq!(
        r.rx(again, 1).len(),
        1,
        "existing connections are untouched"
    );
}

#[test]
fn removed_servers_keep_or_drop_their_connections() {
    for nodest in [false, true] {
        let mut r = Rig::new(
            snapshot(vec![service(Fwd::Nat, &[1, 1], None)], nodest),
            1024,
        );
        r.rx(syn(40000), 0);
        // Reload without server 0.
        let mut svc = service(Fwd::Nat, &[1, 1], None);
        svc.dests.remove(0);
        svc.version = 2;
        r.cell.publish(snapshot(vec![svc], nodest));
        let out = r.rx(data(40000), 1);
        if nodest {
            assert!(out.is_empty());
            assert_eq!(r.drops(DropReason::NoDestConn), 1);
            assert_eq!(r.w.ipvs.conns.len(), 0);
        } else {
            assert_eq!(
                tcp_of(&out[0]).2,
                IpAddr::from(RIP[0]),
                "still forwarded to the removed server"
            );
        }
    }
}

#[test]
fn templates_pin_clients_and_outlive_their_connections() {
    let mut r = Rig::new(
        snapshot(vec![service(Fwd::Nat, &[1, 1], Some(100))], false),
        1024,
    );
    for p in 0..6 {
        let out = r.rx(syn(40000 + p), 0);
        assert_eq!(
            tcp_of(&out[0]).2,
            IpAddr::from(RIP[0]),
            "every connection of the client to one server"
        );
    }
    assert_eq!(
        r.w.ipvs.dest_counts(0),
        (0, 6, 1),
        "6 connections and 1 template"
    );
    // Connections (SYN_RECV, 60 s) go; the template (100 s) waits for them, then goes.
    r.w.poll_control(61_000, &mut r.io);
    assert_eq!(r.w.ipvs.dest_counts(0), (0, 0, 1));
    r.w.poll_control(101_000, &mut r.io);
    assert_eq!(r.w.ipvs.dest_counts(0), (0, 0, 0));
    assert_eq!(r.w.ipvs.conns.len(), 0);
    // A fresh template may pick the other server now (rr moved on).
    let out = r.rx(syn(41000), 102_000);
    assert_eq!(tcp_of(&out[0]).2, IpAddr::from(RIP[1]));
}

#[test]
fn owner_is_the_same_for_both_directions() {
    let nat = snapshot(vec![service(Fwd::Nat, &[1, 1], None)], false);
    for workers in [2usize, 3, 4] {
        for cport in 40000..40050u16 {
            let req = build::tcp(
                to_dir(CMAC),
                (CIP, cport),
                (VIP, 80),
                (1, 0),
                tf::SYN,
                &[],
                b"",
            );
            let rep = build::tcp(
                to_dir(RMAC[0]),
                (RIP[0], 8080),
                (CIP, cport),
                (1, 0),
                tf::SYN | tf::ACK,
                &[],
                b"",
            );
            assert_eq!(
                owner(&nat, &req[14..], workers),
                owner(&nat, &rep[14..], workers)
            );
            // ICMP errors quoting what rvs sent either way belong to the same worker: the
            // request as forwarded (client -> real server) and the reply as forwarded
            // (VIP -> client).
            let fwd_req = build::tcp(
                to_dir(CMAC),
                (CIP, cport),
                (RIP[0], 8080),
                (1, 0),
                tf::SYN,
                &[],
                b"",
            );
            let fwd_rep = build::tcp(
                to_dir(RMAC[0]),
                (VIP, 80),
                (CIP, cport),
                (1, 0),
                tf::SYN | tf::ACK,
                &[],
                b"",
            );
            for quoted in [&fwd_req, &fwd_rep] {
                let e = build::icmp_error(
                    to_dir(CMAC),
                    Ipv4Addr::new(198, 18, 1, 254),
                    &quoted[14..],
                    3,
                    1,
                );
                assert_eq!(
                    owner(&nat, &e[14..], workers),
                    owner(&nat, &req[14..], workers)
                );
            }
        }
        // Ports spread the connections of one client over the workers...
        let seen: std::collections::HashSet<usize> = (40000..40050u16)
            .map(|p| {
                owner(
                    &nat,
                    &build::tcp(to_dir(CMAC), (CIP, p), (VIP, 80), (1, 0), tf::SYN, &[], b"")[14..],
                    workers,
                )
            })
            .collect();
        assert_eq!(seen.len(), workers);
        // ...except for persistent services, and for UDP.
        let pers = snapshot(vec![service(Fwd::Nat, &[1, 1], Some(300))], false);
        let seen: std::collections::HashSet<usize> = (40000..40050u16)
            .map(|p| {
                owner(
                    &pers,
                    &build::tcp(to_dir(CMAC), (CIP, p), (VIP, 80), (1, 0), tf::SYN, &[], b"")[14..],
                    workers,
                )
            })
            .collect();
        assert_eq!(seen.len(), 1);
        // FULLNAT replies by local port.
        let fnat = snapshot(vec![service(Fwd::FullNat, &[1], None)], false);
        let rep = build::tcp(
            to_dir(RMAC[0]),
            (RIP[0], 8080),
            (LIP, 5003),
            (1, 0),
            tf::ACK,
            &[],
            b"",
        );
        assert_eq!(owner(&fnat, &rep[14..], workers), 5003 % workers);
        // All fragments of a datagram agree.
        let u = snapshot(vec![udp_service(Fwd::Nat)], false);
        let (a, b) = fragments(9, 100);
        assert_eq!(owner(&u, &a[14..], workers), owner(&u, &b[14..], workers));
    }
}

#[test]
fn two_workers_redirect_to_the_owner() {
    let snap = snapshot(vec![service(Fwd::Nat, &[1], None)], false);
    let cell = Arc::new(SnapshotCell::new(snap));
    let mail = Arc::new(Mailboxes::new(2, 4));
    let redirect = Arc::new(Redirect::new(2, 64));
    let mk = |id| {
        WorkerCore::<HeapFrame>::new(
            id,
            WorkerParts::new(cell.clone(), mail.clone(), redirect.clone(), 64),
        )
    };
    let mut w = [mk(0), mk(1)];
    let mut io = CaptureIo::default();
    let snap = cell.load();
    // Find a client port owned by worker 1, and hand its SYN to worker 0.
    let p = (40000..41000u16)
        .find(|&p| owner(&snap, &syn(p)[14..], 2) == 1)
        .unwrap();
    w[0].handle(HeapFrame::from_bytes(&syn(p)), 0, 0, &mut io);
    assert!(io.sent.is_empty(), "worker 0 does not process it");
    assert_eq!(w[0].ipvs.stats.redirected_out.get(), 1);
    w[1].poll_control(1, &mut io);
    assert_eq!(io.sent.len(), 1, "worker 1 forwards it");
    assert_eq!(w[1].ipvs.conns.len(), 1);
    assert_eq!(w[0].ipvs.conns.len(), 0);
}

/// What a worker did with one frame, from its counters and its output.
#[derive(Debug)]
struct Fate {
    /// Drop reasons counted, all reasons together.
    drops: u64,
    /// Answered or consumed without a drop (`stats::handled`: ARP and echo replies).
    answered: u64,
    /// Forwarded by the IPVS engine: its per-real-server packet counters (in and out),
    /// translated ICMP errors, packets passed to another worker.
    forwarded: u64,
    sent: Vec<Vec<u8>>,
}

impl Rig {
    fn tally(&self) -> (u64, u64, u64) {
        let drops = DropReason::ALL.iter().map(|d| self.drops(*d)).sum();
        let s = &self.w.ipvs.stats;
        let forwarded = s
            .dests
            .iter()
            .map(|d| d.traffic.inpkts.get() + d.traffic.outpkts.get())
            .sum::<u64>()
            + s.icmp_translated.get()
            + s.redirected_out.get();
        (drops, crate::stats::handled(&self.stats), forwarded)
    }
    /// Hands one frame to the worker and reports what became of it.
    fn fate(&mut self, f: &[u8], now_ms: u64) -> Fate {
        self.w.poll_control(now_ms, &mut self.io);
        self.io.sent.clear();
        let before = self.tally();
        self.w
            .handle(HeapFrame::from_bytes(f), 0, now_ms, &mut self.io);
        let after = self.tally();
        Fate {
            drops: after.0 - before.0,
            answered: after.1 - before.1,
            forwarded: after.2 - before.2,
            sent: self
                .io
                .sent
                .drain(..)
                .map(|(_, f)| f.data().to_vec())
                .collect(),
        }
    }
}

impl Fate {
    /// Forwarded (or answered), with no drop counted: what a well-formed packet of a
    /// known connection gets.
    fn is_forwarded(&self) -> bool {
        self.drops == 0 && self.answered == 0 && self.forwarded == 1 && self.sent.len() == 1
    }

    /// Every frame is accounted for exactly once: dropped with one reason (and then at
    /// most an ICMP error sent about it), answered (one reply sent), or forwarded (one
    /// frame sent, counted by the engine). Every frame sent is IPv4 with valid header
    /// checksums, the inner header of IPIP included, and the ICMP messages the worker
    /// makes have valid checksums.
    fn check(&self) {
        assert!(self.drops <= 1, "more than one drop reason: {self:?}");
        assert!(self.answered <= 1 && self.forwarded <= 1, "{self:?}");
        assert!(
            self.sent.len() <= 1,
            "one frame in, more than one out: {self:?}"
        );
        match (self.drops, self.answered) {
            (1, 0) => {}
            (0, 1) => assert_eq!(
                (self.sent.len(), self.forwarded),
                (1, 0),
                "answered: {self:?}"
            ),
            (0, 0) => assert!(
                self.forwarded == 1 && self.sent.len() == 1,
                "neither dropped, answered nor forwarded: lost: {self:?}"
            ),
            _ => panic!("dropped and answered: {self:?}"),
        }
        for f in &self.sent {
            // The IPv4 header: forwarded packets keep whatever L4 header they came with
            // (as the kernel forwards them), so only the IP layer is checked here.
            let l2 = crate::packet::parse_l2(f).expect("a sent frame's Ethernet header");
            assert_eq!(
                l2.ethertype, 0x0800,
                "a sent frame that is not IPv4: {f:02x?}"
            );
            let ip = Ipv4Packet::new_checked(&f[l2.l3_offset..])
                .unwrap_or_else(|e| panic!("a sent IPv4 header that does not parse: {e:?}"));
            assert!(
                ip.verify_checksum(),
                "IPv4 header checksum of a sent frame: {f:02x?}"
            );
            if ip.protocol() == 4 {
                let inner = Ipv4Packet::new_checked(ip.payload()).expect("an inner header");
                assert!(
                    inner.verify_checksum(),
                    "inner IPv4 header checksum: {f:02x?}"
                );
            }
            if self.drops + self.answered == 1 {
                // Made by the worker: an ICMP error about a dropped packet, or a reply.
                let l4 = match dissect(f) {
                    Ok(d) => match d.l3 {
                        L3Summary::Ip { l4, .. } => l4,
                        other => panic!("{other:?}"),
                    },
                    Err(e) => panic!("an ICMP message the worker made does not parse: {e:?}"),
                };
                assert!(
                    matches!(l4, L4Summary::Icmp { checksum_ok: true, msg_type, .. } if [0, 3, 11].contains(&msg_type)),
                    "{l4:?}"
                );
            }
        }
    }
}

proptest::proptest! {
    // Arbitrary bytes behind a valid-looking Ethernet/IPv4 header, to every VIP port and
    // protocol: each frame is accounted for exactly once (forwarded, answered, or
    // dropped with one reason), every frame sent has valid IPv4 checksums, and the table
    // stays consistent.
    #[test]
    fn arbitrary_packets_are_each_accounted_for_once_by_a_worker(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
        proto in proptest::prop_oneof![proptest::strategy::Just(6u8), proptest::strategy::Just(17u8), proptest::strategy::Just(1u8)],
        dport in 78u16..86, frag in 0u16..4, flags in proptest::prelude::any::<u8>(), from_rs in proptest::prelude::any::<bool>(),
    ) {
        let mut r = Rig::new(crate::testing::robustness_snapshot(), 64);
        // Open a few connections first so that replies and ICMP can match something:
        // one per forwarding method (NAT, DR, TUN, FULLNAT), each SYN forwarded.
        for p in 0..4u16 {
            let fate = r.fate(&build::tcp(to_dir(CMAC), (CIP, 40000 + p), (VIP, 80 + p), (1, 0), tf::SYN, &[], b""), 0);
            fate.check();
            proptest::prop_assert!(fate.is_forwarded(), "SYN to port {}: {:?}", 80 + p, fate);
        }
        // A real frame of the protocol: a TCP segment or a UDP datagram (to the VIP or as a
        // real server's reply), or ICMP: an error quoting what rvs forwarded for the NAT
        // connection (from its real server, or from a router near the client about the
        // reply), or an echo request to the VIP.
        let mut f = match proto {
            17 if from_rs => build::udp(to_dir(RMAC[0]), (RIP[0], 8080), (CIP, 40000), &body),
            17 => build::udp(to_dir(CMAC), (CIP, 40000), (VIP, dport), &body),
            1 if flags & 1 == 1 => build::icmp_echo(to_dir(CMAC), CIP, VIP, 8, 1, 1, &body),
            1 => {
                let (kind, code) = if flags & 2 == 0 { (3, flags >> 4 & 0x0f) } else { (11, 0) };
                if from_rs {
                    let fwd = build::tcp(to_dir(DMAC), (CIP, 40000), (RIP[0], 8080), (1, 0), tf::SYN, &[], &body);
                    build::icmp_error(to_dir(RMAC[0]), RIP[0], &fwd[14..], kind, code)
                } else {
                    let reply = build::tcp(to_dir(DMAC), (VIP, 80), (CIP, 40000), (1, 2), tf::SYN | tf::ACK, &[], &body);
                    let mut e = build::icmp_error(to_dir(CMAC), Ipv4Addr::new(198, 18, 1, 254), &reply[14..], kind, code);
                    // Addressed to the VIP, which sent the quoted packet.
                    let mut ip = Ipv4Packet::new_checked(&mut e[14..]).unwrap();
                    ip.set_dst(VIP);
                    ip.fill_checksum();
                    e
                }
            }
            _ if from_rs => build::tcp(to_dir(RMAC[0]), (RIP[0], 8080), (CIP, 40000), (1, 1), flags, &[], &body),
            _ => build::tcp(to_dir(CMAC), (CIP, 40000), (VIP, dport), (1, 1), flags, &[], &body),
        };
        let word: u16 = match frag { 0 => 0, 1 => 0x2000, 2 => 0x2001, _ => 0x0001 };
        f[20..22].copy_from_slice(&word.to_be_bytes());
        let mut ip = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
        ip.fill_checksum();
        let fate = r.fate(&f, 1);
        fate.check();
        if proto == 1 && flags & 1 == 0 && !from_rs && frag == 0 {
            // It quotes the NAT connection's reply as rvs sent it: translated and passed
            // to the real server, whatever the quote's length and the error's code.
            proptest::prop_assert!(fate.is_forwarded(), "an ICMP error about a tracked connection: {:?}", fate);
        }
        if proto == 6 && frag == 0 && fate.drops == 0 {
            // A whole TCP segment with a valid checksum leaves with a valid checksum
            // (IPIP aside: its outer packet has no TCP header).
            for out in &fate.sent {
                if let L3Summary::Ip { l4: l4 @ L4Summary::Tcp { .. }, .. } = dissect(out).unwrap().l3 {
                    proptest::prop_assert!(matches!(l4, L4Summary::Tcp { checksum_ok: true, .. }), "{:?}", l4);
                }
            }
        }
        r.w.poll_control(2_000_000, &mut r.io);
        proptest::prop_assert!(r.w.ipvs.conns.len() <= 64);
    }
}

#[test]
fn unchanged_services_keep_scheduler_state_across_publishes() {
    // wrr over weights 2,1: A A B A A B ...; the mark must survive an unrelated publish.
    let mut svc = service(Fwd::Nat, &[2, 1], None);
    svc.sched = SchedKind::Wrr;
    let mut r = Rig::new(snapshot(vec![svc.clone()], false), 1024);
    let pick = |r: &mut Rig, p: u16, now: u64| tcp_of(&r.rx(syn(p), now)[0]).2;
    assert_eq!(pick(&mut r, 1, 0), IpAddr::from(RIP[0]));
    // Same version (e.g. another service changed): the next pick continues the sequence.
    r.cell.publish(snapshot(vec![svc.clone()], false));
    assert_eq!(pick(&mut r, 2, 1), IpAddr::from(RIP[0]));
    assert_eq!(pick(&mut r, 3, 2), IpAddr::from(RIP[1]));
    // A new version (its servers changed) updates the mark as ip_vs_wrr_dest_changed
    // does: back to the list head, current weight kept (1), so A then B - where the old
    // mark, kept, would have given A then A.
    svc.version = 2;
    r.cell.publish(snapshot(vec![svc], false));
    assert_eq!(pick(&mut r, 4, 3), IpAddr::from(RIP[0]));
    assert_eq!(pick(&mut r, 5, 4), IpAddr::from(RIP[1]));
}

/// A client's data segment on connection `cport`.
pub(super) fn data(cport: u16) -> Vec<u8> {
    build::tcp(
        to_dir(CMAC),
        (CIP, cport),
        (VIP, 80),
        (1001, 1),
        tf::ACK,
        &[],
        b"x",
    )
}

#[test]
fn a_route_change_moves_established_connections_to_the_new_next_hop() {
    // Real servers are reached through a router from the next snapshot on: the
    // per-real-server route cache is refreshed when the worker adopts it.
    let gw = Ipv4Addr::new(198, 18, 0, 254);
    let gw_mac = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let mut r = Rig::new(snapshot(vec![service(Fwd::Dr, &[1], None)], false), 1024);
    let out = r.rx(syn(40000), 0);
    assert_eq!(&out[0][0..6], &RMAC[0].0[..]);
    let mut next = snapshot(vec![service(Fwd::Dr, &[1], None)], false);
    let routes = [crate::net::route::Route {
        prefix: "198.18.0.11/32".parse().unwrap(),
        via: Some(gw),
        port: 0,
    }];
    let mut neigh = next.net.neighbours.clone();
    neigh.push(StaticNeigh {
        ip: gw,
        mac: gw_mac,
        port: 0,
    });
    let ipvs = std::mem::take(&mut next.ipvs);
    let next = Snapshot::new(
        next.net.ports.clone(),
        &routes,
        neigh,
        NeighParams::default(),
    )
    .with_ipvs(ipvs);
    r.cell.publish(next);
    let out = r.rx(data(40000), 1);
    assert_eq!(&out[0][0..6], &gw_mac.0[..], "through the router now");
    assert_eq!(
        ip_of(&out[0]).dst(),
        VIP,
        "DR: the packet itself is unchanged"
    );
}

#[test]
fn a_reused_slot_never_sends_an_old_connection_to_the_new_server() {
    // Slot 0 is RIP[0] with a connection open; the next snapshot gives slot 0 to
    // RIP[1] (a slot freed and taken again while this worker still held the old
    // connection, expire_nodest_conn off). The old connection stays on RIP[0].
    let mut r = Rig::new(snapshot(vec![service(Fwd::Dr, &[1], None)], false), 1024);
    r.rx(syn(40000), 0);
    let mut svc = service(Fwd::Dr, &[1], None);
    svc.dests[0].addr = RIP[1];
    svc.version = 2;
    r.cell.publish(snapshot(vec![svc], false));
    let out = r.rx(data(40000), 1);
    assert_eq!(&out[0][0..6], &RMAC[0].0[..], "still the old server's MAC");
    // A new connection goes to the slot's new server.
    let out = r.rx(syn(40001), 2);
    assert_eq!(&out[0][0..6], &RMAC[1].0[..]);
}

#[test]
fn tun_encapsulates_toward_the_real_server_field_by_field() {
    let mut r = Rig::new(snapshot(vec![service(Fwd::Tun, &[1], None)], false), 1024);
    let inp = syn(40000);
    let out = r.rx(inp.clone(), 0);
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(&f[0..6], &RMAC[0].0[..], "to the real server's MAC");
    let outer = ip_of(f);
    assert!(outer.verify_checksum());
    assert_eq!(outer.protocol(), crate::packet::ipv4::protocol::IPIP);
    assert_eq!(
        outer.src(),
        Ipv4Addr::new(198, 18, 0, 2),
        "the DIP toward it"
    );
    assert_eq!(outer.dst(), RIP[0]);
    assert_eq!(outer.ttl(), 64);
    assert!(outer.dont_frag(), "DF copied from the inner packet");
    assert_eq!(
        outer.payload(),
        &inp[14..14 + 40],
        "the client's packet, whole and unchanged (VIP, TTL and all)"
    );
    // Too big for the MTU with DF: fragmentation needed, with the tunnel's MTU.
    let big = build::tcp(
        to_dir(CMAC),
        (CIP, 40000),
        (VIP, 80),
        (1001, 1),
        tf::ACK,
        &[],
        &[0u8; 1460],
    );
    let out = r.rx(big, 1);
    assert_eq!(r.drops(DropReason::FragNeeded), 1);
    let icmp = ip_of(&out[0]);
    assert_eq!(icmp.dst(), CIP);
    let m = crate::packet::IcmpPacket::new_checked(icmp.payload()).unwrap();
    assert_eq!((m.msg_type(), m.code(), m.next_hop_mtu()), (3, 4, 1480));
}

#[test]
fn a_burst_accounts_for_every_frame_once() {
    // The production entry (`rx_burst`: classification, prefetch with bucket hints,
    // dispatch) over a mixed burst.
    let mut r = Rig::new(
        snapshot(vec![service(Fwd::Nat, &[1, 1], None)], false),
        1024,
    );
    let mut bad_sum = syn(40001);
    bad_sum[14 + 10] ^= 0xff;
    let mut other_host = syn(40002);
    other_host[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    // A SYN and its connection's next segment in one burst: the second was prefetched
    // before the first created the connection, and must find it all the same.
    let frames = [
        syn(40000),
        data(40000),
        bad_sum,
        other_host,
        data(40009), // no connection
        syn(40003),
        vec![0u8; 10], // truncated
    ];
    let mut rx = arrayvec::ArrayVec::new();
    for f in &frames {
        rx.push(HeapFrame::from_bytes(f));
    }
    r.w.rx_burst(rx, 0, 0, &mut r.io);
    let flags: Vec<u8> = r.io.sent.iter().map(|(_, f)| tcp_of(f.data()).4).collect();
    assert_eq!(
        flags,
        vec![tf::SYN, tf::ACK, tf::SYN],
        "the SYNs and the segment that followed one in the same burst"
    );
    assert_eq!(r.drops(DropReason::Ipv4BadChecksum), 1);
    assert_eq!(r.drops(DropReason::OtherHost), 1);
    assert_eq!(r.drops(DropReason::NoConn), 1);
    assert_eq!(r.drops(DropReason::L2Truncated), 1);
    let dropped: u64 = DropReason::ALL.iter().map(|&d| r.drops(d)).sum();
    assert_eq!(dropped + 3, frames.len() as u64, "every frame once");
    assert_eq!(r.stats.rx_packets.get(), frames.len() as u64);
    assert_eq!(r.w.ipvs.conns.len(), 2);
}
