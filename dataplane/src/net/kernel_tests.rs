//! The exception path: what a port with a kernel twin passes up, what it keeps, and
//! what the kernel sends going out through the port unchanged.

use super::*;
use crate::frame::{CaptureIo, HeapFrame};
use crate::net::neigh::NeighParams;
use crate::packet::build::{self, Link};
use crate::packet::{checksum, icmp::kind, ipv4::protocol, tcp::flags as tf};
use crate::snapshot::{PortInfo, Snapshot, SnapshotCell};
use crate::stats::{DropReason, WorkerStats};
use crate::worker::{Mailboxes, Redirect, WorkerCore, WorkerParts};
use std::sync::Arc;

const DMAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd0]);
const CMAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xc1]);
const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The wire port and its kernel twin's I/O index.
const WIRE: usize = 0;
const TWIN: usize = 1;

struct Rig {
    w: WorkerCore<HeapFrame>,
    io: CaptureIo,
    stats: Arc<WorkerStats>,
}

impl Rig {
    fn new(kernel: Option<usize>) -> Rig {
        let ports = vec![PortInfo {
            name: "lan0".into(),
            mac: DMAC,
            mtu: 1500,
            addresses: vec!["198.18.0.2/24".parse().unwrap()],
            kernel,
        }];
        let mut s = Snapshot::new(ports, &[], vec![], NeighParams::default());
        // A VIP: owned by rvs, unknown to the kernel.
        s.net.own(VIP);
        let cell = Arc::new(SnapshotCell::new(s));
        let parts = WorkerParts::new(
            cell,
            Arc::new(Mailboxes::new(1, 16)),
            Arc::new(Redirect::new(1, 16)),
            64,
        );
        let stats = parts.stats.clone();
        Rig {
            w: WorkerCore::new(0, parts),
            io: CaptureIo::default(),
            stats,
        }
    }
    /// One frame from the wire; what was sent, with its port.
    fn rx(&mut self, bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
        self.w
            .handle(HeapFrame::from_bytes(bytes), WIRE, 0, &mut self.io);
        self.take()
    }
    fn take(&mut self) -> Vec<(usize, Vec<u8>)> {
        self.io
            .sent
            .drain(..)
            .map(|(p, f)| (p, f.data().to_vec()))
            .collect()
    }
    fn drops(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.stats.drops(r)).sum()
    }
}

fn link() -> Link {
    Link {
        src: CMAC,
        dst: DMAC,
    }
}

/// The client's broadcast ARP request for `target`.
fn who_has(target: Ipv4Addr) -> Vec<u8> {
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

fn syn_to(dst: Ipv4Addr, port: u16) -> Vec<u8> {
    build::tcp(link(), (CIP, 40000), (dst, port), (1, 0), tf::SYN, &[], b"")
}

/// VRRP (protocol 112) to 224.0.0.18 at the group's link multicast MAC.
fn vrrp_advert() -> Vec<u8> {
    let mut f = build::udp(
        Link {
            src: CMAC,
            dst: MacAddr([0x01, 0, 0x5e, 0, 0, 0x12]),
        },
        (CIP, 0),
        (Ipv4Addr::new(224, 0, 0, 18), 0),
        &[0x31, 1, 100, 1, 0, 1, 0, 0],
    );
    f[23] = protocol::VRRP;
    f[24..26].fill(0);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn ipv6_frame() -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(&CMAC.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60]);
    f.resize(14 + 40, 0);
    f
}

#[test]
fn what_the_kernel_wants_goes_up_unchanged() {
    let reply = build::icmp_echo(link(), CIP, DIP, kind::ECHO_REPLY, 7, 1, b"pong");
    let syn = syn_to(DIP, 22);
    // The kernel's probe to a closed UDP port, and the port unreachable it earns.
    let probe = build::udp(link(), (DIP, 40001), (CIP, 9), b"probe");
    let error = build::icmp_error(link(), CIP, &probe[14..], kind::DEST_UNREACHABLE, 3);
    let udp = build::udp(link(), (CIP, 53), (DIP, 40000), b"answer");
    let arp_reply = build::arp_frame(link(), arp::OP_REPLY, CMAC, CIP, DMAC, DIP);
    let arp_other = who_has(Ipv4Addr::new(198, 18, 0, 77));
    let mut frag = build::udp(link(), (CIP, 53), (DIP, 40000), &[7; 64]);
    frag[20] = 0x20; // more fragments
    frag[24..26].fill(0);
    let c = checksum::checksum(&frag[14..34]);
    frag[24..26].copy_from_slice(&c.to_be_bytes());
    let cases: [(&str, Vec<u8>); 9] = [
        ("TCP to the DIP with no service", syn),
        ("UDP to the DIP", udp),
        ("an echo reply to the DIP", reply),
        ("an ICMP error to the DIP", error),
        ("an ARP reply to the DIP", arp_reply),
        ("an ARP request for another host", arp_other),
        ("VRRP to 224.0.0.18", vrrp_advert()),
        ("IPv6", ipv6_frame()),
        ("a fragment to the DIP", frag),
    ];
    let mut r = Rig::new(Some(TWIN));
    for (i, (what, f)) in cases.iter().enumerate() {
        assert_eq!(r.rx(f), vec![(TWIN, f.clone())], "{what}");
        assert_eq!(r.stats.to_kernel.get(), i as u64 + 1, "{what}");
    }
    assert_eq!(r.drops(), 0);
    // The ARP reply was learned on the way up, too.
    assert!(r.w.neigh.lookup(CIP).is_some());

    // Without a twin, the same frames are dropped, each for its reason.
    let mut r = Rig::new(None);
    for (what, f) in &cases {
        let out = r.rx(f);
        assert!(out.is_empty(), "{what}: {out:?}");
    }
    assert_eq!(r.stats.to_kernel.get(), 0);
    // (The ARP reply to us is consumed by being learned, not dropped.)
    assert_eq!(r.drops(), cases.len() as u64 - 1);
}

#[test]
fn rvs_keeps_what_it_answers_and_what_is_not_the_kernels() {
    let mut r = Rig::new(Some(TWIN));
    // An ARP request for the DIP is answered by rvs itself, on the wire.
    let who_has = who_has(DIP);
    let out = r.rx(&who_has);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, WIRE);
    assert_eq!(
        u16::from_be_bytes([out[0].1[20], out[0].1[21]]),
        arp::OP_REPLY
    );
    // An echo request too.
    let ping = build::icmp_echo(link(), CIP, DIP, kind::ECHO_REQUEST, 7, 1, b"ping");
    let out = r.rx(&ping);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, WIRE);
    assert_eq!(out[0].1[34], kind::ECHO_REPLY);
    // A VIP is not the kernel's: TCP to a VIP port with no service is dropped here.
    assert!(r.rx(&syn_to(VIP, 81)).is_empty());
    assert_eq!(r.stats.drops(DropReason::L4Unhandled), 1);
    // Nor is unicast for an address nobody here owns.
    assert!(r.rx(&syn_to(Ipv4Addr::new(198, 18, 0, 99), 80)).is_empty());
    assert_eq!(r.stats.drops(DropReason::NotLocal), 1);
    assert_eq!(r.stats.to_kernel.get(), 0);
}

#[test]
fn what_the_kernel_sends_leaves_through_its_port_as_it_is() {
    let mut r = Rig::new(Some(TWIN));
    let from_kernel: Vec<Vec<u8>> = (0..40u16)
        .map(|i| {
            build::tcp(
                Link {
                    src: DMAC,
                    dst: CMAC,
                },
                (DIP, 22),
                (CIP, 40000 + i),
                (9, 2),
                tf::SYN | tf::ACK,
                &[],
                b"",
            )
        })
        .collect();
    for f in &from_kernel {
        r.io.inbox.push_back((TWIN, HeapFrame::from_bytes(f)));
    }
    // Two polls: a burst holds 32.
    r.w.poll(0, &mut r.io);
    r.w.poll(1, &mut r.io);
    let out = r.take();
    assert_eq!(out.len(), from_kernel.len());
    for ((p, f), sent) in out.iter().zip(&from_kernel) {
        assert_eq!((*p, f), (WIRE, sent));
    }
    assert_eq!(r.stats.from_kernel.get(), 40);
    assert_eq!(r.stats.ports[TWIN].rx_packets.get(), 40);
    // Nothing the kernel sent was taken for wire traffic.
    assert_eq!(r.stats.rx_packets.get(), 0);
    assert_eq!(r.drops(), 0);
}
