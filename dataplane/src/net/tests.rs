//! Packet-level tests of the L2/L3 stack: frames in, frames out, checked field by field.

use super::*;
use crate::frame::{CaptureIo, HeapFrame};
use crate::net::neigh::NeighParams;
use crate::net::route::Route;
use crate::packet::build::{self, Link};
use crate::packet::{
    dissect, icmp::kind, ArpPacket, EthernetFrame, IcmpPacket, Ipv4Packet, L3Summary, L4Summary,
};
use crate::snapshot::{PortInfo, Snapshot, SnapshotCell, StaticNeigh};
use crate::stats::{DropReason, WorkerStats};
use crate::worker::{Mailboxes, Msg, Redirect, WorkerCore, WorkerParts};
use proptest::prelude::*;
use std::sync::Arc;

const DMAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd0]);
const CMAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xc1]);
const GWMAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x91]);
const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const FAR: Ipv4Addr = Ipv4Addr::new(198, 19, 9, 9);

fn snap(neighbours: Vec<StaticNeigh>) -> Snapshot {
    let ports = vec![PortInfo {
        name: "lan0".into(),
        mac: DMAC,
        mtu: 1500,
        addresses: vec!["198.18.0.2/24".parse().unwrap()],
        kernel: None,
    }];
    let routes = [Route {
        prefix: "0.0.0.0/0".parse().unwrap(),
        via: Some(GW),
        port: 0,
    }];
    Snapshot::new(ports, &routes, neighbours, NeighParams::default())
}

/// A worker with no virtual service, driven one frame at a time through the one
/// dispatcher (`WorkerCore::handle`), as the daemon drives it.
struct Rig {
    w: WorkerCore<HeapFrame>,
    cell: Arc<SnapshotCell>,
    mail: Arc<Mailboxes>,
    io: CaptureIo,
    stats: Arc<WorkerStats>,
}

impl Rig {
    fn new() -> Self {
        let cell = Arc::new(SnapshotCell::new(snap(vec![])));
        // A second mailbox receives what this worker shares with the others.
        let mail = Arc::new(Mailboxes::new(2, 64));
        let parts = WorkerParts::new(
            cell.clone(),
            mail.clone(),
            Arc::new(Redirect::new(1, 16)),
            64,
        );
        let stats = parts.stats.clone();
        Rig {
            w: WorkerCore::new(0, parts),
            cell,
            mail,
            io: CaptureIo::default(),
            stats,
        }
    }
    /// Hands a frame to the worker; returns the neighbour it shared with the others.
    fn rx(&mut self, bytes: &[u8], now: u64) -> Option<Learned> {
        self.w
            .handle(HeapFrame::from_bytes(bytes), 0, now, &mut self.io);
        match self.mail.pop(1) {
            Some(Msg::Neigh(l)) => Some(l),
            _ => None,
        }
    }
    /// Runs the neighbour timers at `now`.
    fn tick(&mut self, now: u64) {
        self.w.neigh_timers(now, &mut self.io);
    }
    fn take(&mut self) -> Vec<Vec<u8>> {
        self.io
            .sent
            .drain(..)
            .map(|(p, f)| {
                assert_eq!(p, 0);
                f.data().to_vec()
            })
            .collect()
    }
    fn drops(&self, r: DropReason) -> u64 {
        self.stats.drops(r)
    }
}

fn to_dir(src: MacAddr) -> Link {
    Link { src, dst: DMAC }
}

fn arp_request_from_client(target: Ipv4Addr) -> Vec<u8> {
    build::arp_frame(
        Link {
            src: CMAC,
            dst: MacAddr::BROADCAST,
        },
        arp::OP_REQUEST,
        CMAC,
        CIP,
        MacAddr::ZERO,
        target,
    )
}

#[test]
fn answers_arp_for_owned_address_and_learns_sender() {
    let mut r = Rig::new();
    let learned = r.rx(&arp_request_from_client(DIP), 0);
    assert_eq!(
        learned,
        Some(Learned {
            ip: CIP,
            mac: CMAC,
            port: 0
        })
    );
    let out = r.take();
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(
        (eth.dst(), eth.src(), eth.ethertype()),
        (CMAC, DMAC, ethertype::ARP)
    );
    let a = ArpPacket::new_checked(eth.payload()).unwrap();
    assert_eq!(a.operation(), arp::OP_REPLY);
    assert_eq!((a.sender_mac(), a.sender_ip()), (DMAC, DIP));
    assert_eq!((a.target_mac(), a.target_ip()), (CMAC, CIP));
    assert_eq!(r.w.neigh.lookup(CIP), Some(CMAC));
    assert_eq!(r.stats.arp_replies.get(), 1);
}

#[test]
fn ignores_arp_for_other_addresses() {
    let mut r = Rig::new();
    assert_eq!(
        r.rx(&arp_request_from_client(Ipv4Addr::new(198, 18, 0, 77)), 0),
        None
    );
    assert!(r.take().is_empty());
    assert_eq!(r.drops(DropReason::ArpNotOurs), 1);
    assert_eq!(
        r.w.neigh.lookup(CIP),
        None,
        "no entry created from ARP not aimed at us"
    );
}

#[test]
fn answers_ping_on_the_connected_subnet() {
    let mut r = Rig::new();
    r.rx(&arp_request_from_client(DIP), 0);
    r.take();
    r.rx(
        &build::icmp_echo(
            to_dir(CMAC),
            CIP,
            DIP,
            kind::ECHO_REQUEST,
            7,
            3,
            b"abcdefgh",
        ),
        10,
    );
    let out = r.take();
    assert_eq!(out.len(), 1);
    let d = dissect(&out[0]).unwrap();
    assert_eq!((d.l2.dst, d.l2.src), (CMAC, DMAC));
    match d.l3 {
        L3Summary::Ip {
            src,
            dst,
            ttl,
            checksum_ok,
            l4:
                L4Summary::Icmp {
                    msg_type,
                    checksum_ok: icmp_ok,
                    ..
                },
            ..
        } => {
            assert_eq!((src, dst), (DIP.into(), CIP.into()));
            assert_eq!(ttl, DEFAULT_TTL);
            assert!(checksum_ok && icmp_ok);
            assert_eq!(msg_type, kind::ECHO_REPLY);
        }
        other => panic!("{other:?}"),
    }
    let ip = Ipv4Packet::new_checked(&out[0][14..]).unwrap();
    let i = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (i.echo_ident(), i.echo_seq(), i.data()),
        (7, 3, &b"abcdefgh"[..])
    );
    assert_eq!(r.stats.icmp_echo_replies.get(), 1);
}

#[test]
fn ping_from_afar_resolves_the_gateway_then_flushes() {
    let mut r = Rig::new();
    r.rx(
        &build::icmp_echo(to_dir(GWMAC), FAR, DIP, kind::ECHO_REQUEST, 1, 1, b"x"),
        0,
    );
    let out = r.take();
    assert_eq!(out.len(), 1, "the reply waits; an ARP request goes out");
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert!(eth.dst().is_broadcast());
    let a = ArpPacket::new_checked(eth.payload()).unwrap();
    assert_eq!(
        (a.operation(), a.sender_ip(), a.target_ip()),
        (arp::OP_REQUEST, DIP, GW)
    );
    // A second echo waits in the same queue without a second request.
    r.rx(
        &build::icmp_echo(to_dir(GWMAC), FAR, DIP, kind::ECHO_REQUEST, 1, 2, b"x"),
        1,
    );
    assert!(r.take().is_empty());
    // The gateway answers: both replies leave toward its MAC.
    let reply = build::arp_frame(
        Link {
            src: GWMAC,
            dst: DMAC,
        },
        arp::OP_REPLY,
        GWMAC,
        GW,
        DMAC,
        DIP,
    );
    assert_eq!(
        r.rx(&reply, 2),
        Some(Learned {
            ip: GW,
            mac: GWMAC,
            port: 0
        })
    );
    let out = r.take();
    assert_eq!(out.len(), 2);
    for f in &out {
        let d = dissect(f).unwrap();
        assert_eq!(d.l2.dst, GWMAC);
        assert!(matches!(d.l3, L3Summary::Ip { dst, .. } if dst == std::net::IpAddr::from(FAR)));
    }
}

#[test]
fn unanswered_resolution_retries_then_drops() {
    let mut r = Rig::new();
    r.rx(
        &build::icmp_echo(to_dir(GWMAC), FAR, DIP, kind::ECHO_REQUEST, 1, 1, b"x"),
        0,
    );
    assert_eq!(r.take().len(), 1);
    let p = NeighParams::default();
    r.tick(p.retrans_ms / 2);
    assert!(r.take().is_empty(), "not yet time to retry");
    r.tick(p.retrans_ms);
    r.tick(2 * p.retrans_ms);
    assert_eq!(r.take().len(), 2, "two retries: max_probes requests in all");
    assert_eq!(r.stats.arp_requests.get(), u64::from(p.max_probes));
    r.tick(3 * p.retrans_ms);
    assert!(r.take().is_empty());
    assert_eq!(r.drops(DropReason::NeighFailed), 1);
    assert!(r.w.neigh.is_empty());
}

#[test]
fn pending_queue_keeps_the_newest() {
    let mut r = Rig::new();
    for seq in 0..(neigh::QUEUE_LEN as u16 + 3) {
        r.rx(
            &build::icmp_echo(to_dir(GWMAC), FAR, DIP, kind::ECHO_REQUEST, 1, seq, b"x"),
            0,
        );
    }
    r.take();
    assert_eq!(r.drops(DropReason::NeighQueueFull), 3);
    let reply = build::arp_frame(
        Link {
            src: GWMAC,
            dst: DMAC,
        },
        arp::OP_REPLY,
        GWMAC,
        GW,
        DMAC,
        DIP,
    );
    r.rx(&reply, 1);
    let seqs: Vec<u16> = r
        .take()
        .iter()
        .map(|f| {
            IcmpPacket::new_checked(Ipv4Packet::new_checked(&f[14..]).unwrap().payload())
                .unwrap()
                .echo_seq()
        })
        .collect();
    assert_eq!(seqs, (3..neigh::QUEUE_LEN as u16 + 3).collect::<Vec<_>>());
}

#[test]
fn stale_entry_is_refreshed_while_used_and_forgotten_when_silent() {
    let mut r = Rig::new();
    r.rx(&arp_request_from_client(DIP), 0);
    r.take();
    let p = NeighParams::default();
    let t = p.reachable_ms + 1;
    r.rx(
        &build::icmp_echo(to_dir(CMAC), CIP, DIP, kind::ECHO_REQUEST, 1, 1, b"x"),
        t,
    );
    let out = r.take();
    assert_eq!(out.len(), 2, "a refresh request, and the reply still sent");
    assert!(out
        .iter()
        .any(|f| matches!(dissect(f).unwrap().l3, L3Summary::Arp { op: 1, .. })));
    assert!(out
        .iter()
        .any(|f| matches!(dissect(f).unwrap().l3, L3Summary::Ip { .. })));
    // No answer to max_probes refreshes: the entry is dropped and resolved afresh.
    for k in 1..u64::from(p.max_probes) {
        r.rx(
            &build::icmp_echo(to_dir(CMAC), CIP, DIP, kind::ECHO_REQUEST, 1, 1, b"x"),
            t + k * p.retrans_ms,
        );
    }
    r.take();
    r.rx(
        &build::icmp_echo(to_dir(CMAC), CIP, DIP, kind::ECHO_REQUEST, 1, 9, b"x"),
        t + u64::from(p.max_probes) * p.retrans_ms,
    );
    let out = r.take();
    assert_eq!(out.len(), 1);
    assert!(matches!(
        dissect(&out[0]).unwrap().l3,
        L3Summary::Arp { op: 1, .. }
    ));
    assert_eq!(r.w.neigh.lookup(CIP), None, "incomplete again");
}

#[test]
fn permanent_neighbours_are_used_and_never_overwritten() {
    let mut r = Rig::new();
    r.cell.publish(snap(vec![StaticNeigh {
        ip: GW,
        mac: GWMAC,
        port: 0,
    }]));
    r.w.poll_control(0, &mut r.io);
    let spoof = build::arp_frame(
        Link {
            src: CMAC,
            dst: DMAC,
        },
        arp::OP_REPLY,
        CMAC,
        GW,
        DMAC,
        DIP,
    );
    r.rx(&spoof, 0);
    assert_eq!(r.w.neigh.lookup(GW), Some(GWMAC));
    r.rx(
        &build::icmp_echo(to_dir(GWMAC), FAR, DIP, kind::ECHO_REQUEST, 1, 1, b"x"),
        1,
    );
    let out = r.take();
    assert_eq!(out.len(), 1);
    assert_eq!(dissect(&out[0]).unwrap().l2.dst, GWMAC);
    assert_eq!(r.w.neigh.entries(0)[0].state, "PERMANENT");
}

#[test]
fn drops_are_counted_by_reason() {
    let mut r = Rig::new();
    let ping = build::icmp_echo(to_dir(CMAC), CIP, DIP, kind::ECHO_REQUEST, 1, 1, b"abcd");
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (ping[..10].to_vec(), DropReason::L2Truncated),
        (
            build::icmp_echo(
                Link {
                    src: CMAC,
                    dst: GWMAC,
                },
                CIP,
                DIP,
                kind::ECHO_REQUEST,
                1,
                1,
                b"",
            ),
            DropReason::OtherHost,
        ),
        (
            build::icmp_echo(
                Link {
                    src: DMAC,
                    dst: DMAC,
                },
                CIP,
                DIP,
                kind::ECHO_REQUEST,
                1,
                1,
                b"",
            ),
            DropReason::OwnFrame,
        ),
        (
            build::icmp_echo(to_dir(CMAC), CIP, FAR, kind::ECHO_REQUEST, 1, 1, b""),
            DropReason::NotLocal,
        ),
        (
            {
                let mut f = ping.clone();
                f[24] ^= 0xff;
                f
            },
            DropReason::Ipv4BadChecksum,
        ),
        (
            {
                let mut f = ping.clone();
                f[14] = 0x44;
                f
            },
            DropReason::Ipv4Malformed,
        ),
        (
            {
                let mut f = ping.clone();
                f[16] = 0x05;
                f
            },
            DropReason::Ipv4Truncated,
        ),
        (
            {
                let mut f = ping.clone();
                f[20] = 0x20;
                fix_ip(&mut f);
                f
            },
            DropReason::Ipv4Fragment,
        ),
        (
            {
                let mut f = ping.clone();
                f[23] = 17;
                fix_ip(&mut f);
                f
            },
            DropReason::L4Unhandled,
        ),
        (
            {
                let mut f = ping.clone();
                f[40] ^= 0xff;
                f
            },
            DropReason::IcmpBadChecksum,
        ),
        (
            build::icmp_echo(to_dir(CMAC), CIP, DIP, kind::ECHO_REPLY, 1, 1, b""),
            DropReason::IcmpUnhandled,
        ),
        (
            {
                let mut f = ping.clone();
                f[12..14].copy_from_slice(&[0x86, 0xdd]);
                f
            },
            DropReason::Ipv6,
        ),
        (
            {
                let mut f = ping.clone();
                f[12..14].copy_from_slice(&[0x88, 0xcc]);
                f
            },
            DropReason::UnknownEthertype,
        ),
        (
            {
                let mut f = arp_request_from_client(DIP);
                f[15] = 6;
                f
            },
            DropReason::ArpMalformed,
        ),
    ];
    for (i, (frame, reason)) in cases.into_iter().enumerate() {
        let before = r.drops(reason);
        r.rx(&frame, 0);
        assert_eq!(r.drops(reason), before + 1, "case {i}: {reason:?}");
        assert!(r.take().is_empty(), "case {i}: nothing sent");
    }
}

fn fix_ip(f: &mut [u8]) {
    let mut ip = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
    ip.fill_checksum();
}

#[test]
fn gratuitous_arp_announces_every_owned_address() {
    let mut r = Rig::new();
    r.w.start(&mut r.io);
    let out = r.take();
    assert_eq!(out.len(), 1, "one gratuitous ARP for the one owned address");
    match dissect(&out[0]).unwrap().l3 {
        L3Summary::Arp {
            op: 1,
            sender: (m, s),
            target: (_, t),
        } => {
            assert_eq!((m, s, t), (DMAC, DIP, DIP));
        }
        other => panic!("{other:?}"),
    }
    assert!(dissect(&out[0]).unwrap().l2.dst.is_broadcast());
}

#[test]
fn allocation_failure_is_counted() {
    let mut r = Rig::new();
    r.io.exhausted = true;
    r.rx(
        &build::icmp_echo(to_dir(GWMAC), FAR, DIP, kind::ECHO_REQUEST, 1, 1, b"x"),
        0,
    );
    assert_eq!(r.drops(DropReason::AllocFailed), 1);
}

proptest! {
    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120), et in 0usize..3) {
        let mut r = Rig::new();
        let mut f = bytes;
        if f.len() >= 14 {
            f[0..6].copy_from_slice(&DMAC.0);
            f[12..14].copy_from_slice(&[[0x08, 0x00], [0x08, 0x06], [0x81, 0x00]][et]);
        }
        r.rx(&f, 0);
        let total: u64 = DropReason::ALL.iter().map(|d| r.drops(*d)).sum();
        prop_assert_eq!(total + crate::stats::handled(&r.stats), 1, "every frame is answered, consumed or dropped with one reason");
    }
}

#[test]
fn a_changed_mac_is_used_at_once_despite_the_cache() {
    let mut r = Rig::new();
    r.rx(&arp_request_from_client(DIP), 0);
    r.take();
    let ping = || build::icmp_echo(to_dir(CMAC), CIP, DIP, kind::ECHO_REQUEST, 1, 1, b"x");
    r.rx(&ping(), 1);
    r.rx(&ping(), 2);
    assert!(
        r.take().iter().all(|f| dissect(f).unwrap().l2.dst == CMAC),
        "served from the cache"
    );
    // The client moves to another MAC and says so (gratuitous ARP for itself).
    let new = MacAddr([2, 0, 0, 0, 0, 0xc9]);
    let garp = build::arp_frame(
        Link {
            src: new,
            dst: MacAddr::BROADCAST,
        },
        arp::OP_REQUEST,
        new,
        CIP,
        MacAddr::ZERO,
        CIP,
    );
    r.rx(&garp, 3);
    r.take();
    r.rx(&ping(), 4);
    let out = r.take();
    assert_eq!(
        dissect(&out[0]).unwrap().l2.dst,
        new,
        "the next reply goes to the new MAC"
    );
}
