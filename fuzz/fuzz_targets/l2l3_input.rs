//! The director's whole L2/L3 input path (ARP, neighbour learning, ICMP echo, drops)
//! over arbitrary frames, against a fixed configuration. Nothing may panic, and every
//! frame must be either answered or counted.
#![no_main]
use dataplane::frame::{CaptureIo, HeapFrame};
use dataplane::net::neigh::NeighParams;
use dataplane::net::route::Route;
use dataplane::net::NetStack;
use dataplane::packet::MacAddr;
use dataplane::snapshot::{PortInfo, Snapshot};
use dataplane::stats::{handled, DropReason, WorkerStats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ports = vec![PortInfo {
        name: "lan0".into(),
        mac: MacAddr([2, 0, 0, 0, 0, 0xd0]),
        mtu: 1500,
        addresses: vec!["198.18.0.2/24".parse().unwrap()],
    }];
    let routes = [Route { prefix: "0.0.0.0/0".parse().unwrap(), via: Some("198.18.0.1".parse().unwrap()), port: 0 }];
    let snap = Snapshot::new(ports, &routes, vec![], NeighParams::default());
    let mut net = NetStack::<HeapFrame>::new(NeighParams::default());
    let mut io = CaptureIo::default();
    let stats = WorkerStats::default();
    // Feed the frame twice: as is, and with our MAC as destination so that it gets past
    // the L2 filter. Each must be accounted for exactly once: answered, consumed, or
    // dropped with one reason.
    let mut f = data.to_vec();
    let accounted = |s: &WorkerStats| DropReason::ALL.iter().map(|r| s.drops(*r)).sum::<u64>() + handled(s);
    net.input(HeapFrame::from_bytes(&f), 0, &snap, 0, &mut io, &stats);
    assert_eq!(accounted(&stats), 1);
    if f.len() >= 6 {
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xd0]);
        net.input(HeapFrame::from_bytes(&f), 0, &snap, 1, &mut io, &stats);
        assert_eq!(accounted(&stats), 2);
    }
    // Timers over whatever state the frames left.
    net.neigh.tick(10_000, &snap, &mut io, &stats);
});
