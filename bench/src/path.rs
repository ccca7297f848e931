//! rvs's own per-packet cost, without DPDK: the throughput benchmark's director and
//! trace run through the production worker loop (`WorkerCore::poll`: control polling,
//! rx counters, prefetch, dispatch, rewrite, neighbour output, tx buffering and flush)
//! with a clock that advances, in rx bursts of 32 copied into recycled frames as
//! net_pcap's replay copies into fresh mbufs. Used by the `worker_path` micro-benchmark
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

/// The rig's `Io`: port 0 receives the trace in bursts, copied into recycled frames as
/// net_pcap's replay copies into fresh mbufs; sent frames are queued until `flush`, then
/// taken back for reuse, as a PMD returns mbufs to the pool after transmission.
#[derive(Default)]
pub struct RecycleIo {
    free: Vec<HeapFrame>,
    queued: Vec<HeapFrame>,
    trace: Vec<Vec<u8>>,
    next: usize,
    pub sent: u64,
}

impl Io for RecycleIo {
    type Frame = HeapFrame;
    fn alloc(&mut self) -> Option<HeapFrame> {
        Some(self.free.pop().unwrap_or_default())
    }
    fn send(&mut self, _port: usize, frame: HeapFrame) {
        self.sent += 1;
        self.queued.push(frame);
    }
    fn rx_burst(&mut self, port: usize, rx: &mut ArrayVec<HeapFrame, BURST>) {
        if port != 0 || self.trace.is_empty() {
            return;
        }
        while !rx.is_full() {
            let mut f = self.free.pop().unwrap_or_default();
            let bytes = &self.trace[self.next];
            self.next = (self.next + 1) % self.trace.len();
            f.set_len(bytes.len());
            f.data_mut().copy_from_slice(bytes);
            rx.push(f);
        }
    }
    fn flush(&mut self) {
        for mut f in self.queued.drain(..) {
            f.reset();
            self.free.push(f);
        }
    }
}

/// Bursts per millisecond of the rig's clock: 256 bursts of 32 frames, about 8 Mpps,
/// so timers (neighbour ticks, connection expiry) run as often per packet as in rvsd.
const BURSTS_PER_MS: u64 = 256;

pub struct PathRig {
    pub worker: WorkerCore<HeapFrame>,
    pub io: RecycleIo,
    polls: u64,
}

impl PathRig {
    /// A worker serving `mode` (dr, tun, nat, fullnat) with the connections of an
    /// established-TCP trace of `flows` flows already open.
    pub fn new(mode: &str, flows: u32) -> anyhow::Result<PathRig> {
        let mut trace = Vec::new();
        generate(&spec(Profile::Established, flows, 64), |f| {
            trace.push(f.to_vec())
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
        // A fixed seed: the connection table's layout, and so the instruction count,
        // is the same in every run.
        let worker = WorkerCore::<HeapFrame>::new(
            0,
            WorkerParts {
                seed: 0x5eed,
                ..WorkerParts::alone(cell, (flows as usize * 2).max(65536))
            },
        );
        let bursts = trace.len() / BURST + 1;
        let mut rig = PathRig {
            worker,
            io: RecycleIo {
                trace,
                ..RecycleIo::default()
            },
            polls: 0,
        };
        rig.worker.start(&mut rig.io);
        for _ in 0..bursts {
            rig.burst();
        }
        let drops = rig.drops();
        anyhow::ensure!(drops.is_empty(), "{mode}: the worker dropped {drops:?}");
        rig.io.sent = 0;
        Ok(rig)
    }

    /// One turn of the production worker loop (`WorkerCore::poll`, as `io::run_worker`
    /// runs it), with the rig's clock advancing.
    pub fn burst(&mut self) {
        self.polls += 1;
        let now = 1000 + self.polls / BURSTS_PER_MS;
        self.worker.poll(now, &mut self.io);
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
