//! A whole worker (L2/L3 and IPVS with NAT, DR, TUN, FULLNAT+TOA, persistence, UDP)
//! over arbitrary frames: nothing may panic. The input is split into frames, each sent
//! as is and with the director's MAC as destination, in bursts through `rx_burst` (the
//! entry rvsd's workers use: classification, prefetch with bucket hints, dispatch);
//! time advances between bursts so that timers and expiry run too.
#![no_main]
use dataplane::frame::{CaptureIo, HeapFrame};
use dataplane::snapshot::SnapshotCell;
use dataplane::worker::{WorkerCore, WorkerParts, BURST};
use arrayvec::ArrayVec;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// Built once: the Maglev table and the counter arrays are costly, and read-only here.
static SHARED: OnceLock<(Arc<SnapshotCell>, Arc<dataplane::ipvs::stats::IpvsStats>)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (cell, ipvs_stats) = SHARED.get_or_init(|| (Arc::new(SnapshotCell::new(dataplane::testing::robustness_snapshot())), Arc::default()));
    let parts = WorkerParts {
        ipvs_stats: ipvs_stats.clone(),
        ..WorkerParts::alone(cell.clone(), 256)
    };
    let mut w = WorkerCore::<HeapFrame>::new(0, parts);
    let mut io = CaptureIo::default();
    w.start(&mut io);
    let mut now = 0u64;
    let mut burst = ArrayVec::<HeapFrame, BURST>::new();
    for chunk in data.split(|b| *b == 0xA5) {
        let mut f = chunk.to_vec();
        burst.push(HeapFrame::from_bytes(&f));
        if f.len() >= 6 {
            f[..6].copy_from_slice(&dataplane::testing::ROBUSTNESS_DIRECTOR_MAC.0);
            burst.push(HeapFrame::from_bytes(&f));
        }
        if burst.len() >= BURST - 1 {
            w.rx_burst(std::mem::take(&mut burst), 0, now, &mut io);
            now += 7_000;
            w.poll_control(now, &mut io);
            io.sent.clear();
        }
    }
    w.rx_burst(burst, 0, now, &mut io);
    w.poll_control(now + 7_000, &mut io);
});
