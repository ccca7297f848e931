//! The director's whole L2/L3 input path (ARP, neighbour learning, ICMP echo, drops)
//! over arbitrary frames, against a fixed configuration with no virtual service, through
//! the worker's one dispatcher (`WorkerCore::handle`, as rvsd runs it). Nothing may
//! panic, and every frame must be either answered or counted.
#![no_main]
use dataplane::frame::{CaptureIo, HeapFrame};
use dataplane::net::neigh::NeighParams;
use dataplane::net::route::Route;
use dataplane::packet::MacAddr;
use dataplane::snapshot::{PortInfo, Snapshot, SnapshotCell};
use dataplane::stats::{handled, DropReason, WorkerStats};
use dataplane::worker::{WorkerCore, WorkerParts};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let ports = vec![PortInfo {
        name: "lan0".into(),
        mac: MacAddr([2, 0, 0, 0, 0, 0xd0]),
        mtu: 1500,
        addresses: vec!["198.18.0.2/24".parse().unwrap()],
        // A kernel twin: what goes up to it is accounted for too (`to_kernel`).
        kernel: Some(1),
    }];
    let routes = [Route { prefix: "0.0.0.0/0".parse().unwrap(), via: Some("198.18.0.1".parse().unwrap()), port: 0 }];
    let snap = Snapshot::new(ports, &routes, vec![], NeighParams::default());
    let parts = WorkerParts::alone(Arc::new(SnapshotCell::new(snap)), 16);
    let stats = parts.stats.clone();
    let mut w = WorkerCore::<HeapFrame>::new(0, parts);
    let mut io = CaptureIo::default();
    // Feed the frame twice: as is, and with our MAC as destination so that it gets past
    // the L2 filter. Each must be accounted for exactly once: answered, consumed, or
    // dropped with one reason.
    let mut f = data.to_vec();
    let accounted = |s: &WorkerStats| DropReason::ALL.iter().map(|r| s.drops(*r)).sum::<u64>() + handled(s);
    w.handle(HeapFrame::from_bytes(&f), 0, 0, &mut io);
    assert_eq!(accounted(&stats), 1);
    if f.len() >= 6 {
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xd0]);
        w.handle(HeapFrame::from_bytes(&f), 0, 1, &mut io);
        assert_eq!(accounted(&stats), 2);
    }
    // Timers over whatever state the frames left.
    w.neigh_timers(10_000, &mut io);
});
