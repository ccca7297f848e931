//! rvs's own per-packet cost, without DPDK: the throughput benchmark's director and
//! trace run through a bare worker (L2 filter, IPv4 checks, connection lookup, state,
//! counters, rewrite, neighbour output) in rx bursts of 32, copied into recycled frames
//! as net_pcap's replay copies into fresh mbufs. Used by the `worker_path` micro-benchmark
//! and by `rvs-bench path` (a fixed amount of work, for callgrind's instruction counts,
//! which this shared machine's timing noise cannot disturb).

use crate::setup::{director_yaml, spec, PORT_MAC};
use crate::trace::{generate, Profile};
use arrayvec::ArrayVec;
use ctrlplane::config::Config;
use ctrlplane::snapshot::PortHw;
use dataplane::frame::{Frame, HeapFrame, Io};
use dataplane::snapshot::SnapshotCell;
use dataplane::stats::DropReason;
use dataplane::worker::{WorkerCore, WorkerParts, BURST};
use std::sync::Arc;

/// An `Io` that takes sent frames back for reuse, as a PMD returns mbufs to the pool.
#[derive(Default)]
pub struct RecycleIo {
    free: Vec<HeapFrame>,
    pub sent: u64,
}

impl Io for RecycleIo {
    type Frame = HeapFrame;
    fn alloc(&mut self) -> Option<HeapFrame> {
        Some(self.free.pop().unwrap_or_default())
    }
    fn send(&mut self, _port: usize, mut frame: HeapFrame) {
        self.sent += 1;
        frame.reset();
        self.free.push(frame);
    }
}

pub struct PathRig {
    pub worker: WorkerCore<HeapFrame>,
    pub io: RecycleIo,
    frames: Vec<Vec<u8>>,
    next: usize,
}

impl PathRig {
    /// A worker serving `mode` (dr, tun, nat, fullnat) with the connections of an
    /// established-TCP trace of `flows` flows already open.
    pub fn new(mode: &str, flows: u32) -> anyhow::Result<PathRig> {
        let mut frames = Vec::new();
        generate(&spec(Profile::Established, flows, 64), |f| {
            frames.push(f.to_vec())
        });
        let yaml = director_yaml("", mode, "net_null0", "net_null1");
        let cfg = Config::parse(&yaml, "bench.yaml")?;
        let hw = PortHw {
            mac: PORT_MAC,
            mtu: 1500,
        };
        let cell = Arc::new(SnapshotCell::new(ctrlplane::snapshot::build(
            &cfg,
            &[hw, hw],
        )));
        let worker = WorkerCore::<HeapFrame>::new(
            0,
            WorkerParts::alone(cell, (flows as usize * 2).max(65536)),
        );
        let mut rig = PathRig {
            worker,
            io: RecycleIo::default(),
            frames,
            next: 0,
        };
        rig.worker.start(&mut rig.io);
        for _ in 0..rig.frames.len() / BURST + 1 {
            rig.burst();
        }
        let drops = rig.drops();
        anyhow::ensure!(drops.is_empty(), "{mode}: the worker dropped {drops:?}");
        rig.io.sent = 0;
        Ok(rig)
    }

    /// One rx burst: copy, prefetch pass, handle (as `io::run_worker` does).
    pub fn burst(&mut self) {
        let mut rx: ArrayVec<HeapFrame, BURST> = ArrayVec::new();
        for _ in 0..BURST {
            let mut f = self.io.alloc().unwrap_or_default();
            let bytes = &self.frames[self.next];
            self.next = (self.next + 1) % self.frames.len();
            f.set_len(bytes.len());
            f.data_mut().copy_from_slice(bytes);
            rx.push(f);
        }
        let mut hints = [0u32; BURST];
        for (h, f) in hints.iter_mut().zip(&rx) {
            *h = self.worker.prefetch_bytes(f.data());
        }
        for &h in &hints {
            self.worker.prefetch_conn(h);
        }
        for f in rx {
            self.worker.handle(f, 0, 1000, &mut self.io);
        }
    }

    /// Drop reasons with a non-zero count.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .filter(|&&r| self.worker.stats.drops(r) > 0)
            .map(|&r| (r.name(), self.worker.stats.drops(r)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmarks measure forwarding, not drops: on the benchmark's director every
    /// packet of the trace must leave, for every forwarding method.
    #[test]
    fn every_method_forwards_the_whole_trace() {
        for mode in ["dr", "tun", "nat", "fullnat"] {
            let mut rig = PathRig::new(mode, 100).expect("the benchmark's director");
            for _ in 0..50 {
                rig.burst();
            }
            assert_eq!(rig.drops(), vec![], "{mode}");
            assert_eq!(rig.io.sent, 50 * BURST as u64, "{mode}");
        }
    }
}
