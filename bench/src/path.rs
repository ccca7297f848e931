//! rvs's own per-packet cost, without DPDK: the throughput benchmark's director and
//! traffic run through the production worker loop (`WorkerCore::poll`: control polling,
//! rx counters, prefetch, dispatch, rewrite, neighbour output, tx buffering and flush)
//! with a clock that advances, in rx bursts of 32 copied into recycled frames as
//! net_pcap's replay copies into fresh mbufs. Used by the `worker_path` micro-benchmark,
//! by `rvs-bench path` and `rvs-bench lifecycle` (fixed amounts of work, for callgrind's
//! instruction counts, which this shared machine's timing noise cannot disturb) and for
//! the connection lifecycle rate.

use crate::setup::{director_yaml, spec, PORT_MAC};
use crate::trace::{generate, Lifecycle, Profile};
use arrayvec::ArrayVec;
use ctrlplane::config::Config;
use ctrlplane::snapshot::PortHw;
use dataplane::frame::{Frame, HeapFrame, Io};
use dataplane::snapshot::SnapshotCell;
use dataplane::stats::DropReason;
use dataplane::worker::{WorkerCore, WorkerParts, BURST};
use std::sync::Arc;

/// Where port 0's frames come from.
pub enum Source {
    /// A trace replayed over and over, as net_pcap's `infinite_rx` replays a file.
    Trace { frames: Vec<Vec<u8>>, next: usize },
    /// New connections without end.
    Lifecycle(Lifecycle),
}

/// The rig's `Io`: port 0 receives the source in bursts, copied into recycled frames as
/// net_pcap's replay copies into fresh mbufs; sent frames are queued until `flush`, then
/// taken back for reuse, as a PMD returns mbufs to the pool after transmission.
pub struct RecycleIo {
    free: Vec<HeapFrame>,
    queued: Vec<HeapFrame>,
    pub source: Source,
    pub received: u64,
    pub sent: u64,
}

impl RecycleIo {
    fn new(source: Source) -> RecycleIo {
        RecycleIo {
            free: Vec::new(),
            queued: Vec::new(),
            source,
            received: 0,
            sent: 0,
        }
    }
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
        if port != 0 {
            return;
        }
        while !rx.is_full() {
            let bytes = match &mut self.source {
                Source::Trace { frames, next } => {
                    let Some(b) = frames.get(*next) else {
                        return;
                    };
                    *next = (*next + 1) % frames.len();
                    b.as_slice()
                }
                Source::Lifecycle(l) => l.next_frame(),
            };
            let mut f = self.free.pop().unwrap_or_default();
            f.set_len(bytes.len());
            f.data_mut().copy_from_slice(bytes);
            rx.push(f);
            self.received += 1;
        }
    }
    fn flush(&mut self) {
        for mut f in self.queued.drain(..) {
            f.reset();
            self.free.push(f);
        }
    }
}

/// Bursts per millisecond of the rig's clock for traces: 256 bursts of 32 frames, about
/// 8 Mpps, so timers (neighbour ticks, connection expiry) run as often per packet as in
/// rvsd.
const BURSTS_PER_MS: u64 = 256;

/// The lifecycle rig's connection table.
pub const LIFECYCLE_CAPACITY: usize = 1 << 20;

/// How long a lifecycle connection stays in the table after its FIN, with the kernel's
/// timeouts: a client's FIN leaves a NAT or FULLNAT connection in CLOSE_WAIT (60 s) and
/// a DR or TUN one, which sees no replies, in FIN_WAIT (120 s).
pub fn lifecycle_timeout(mode: &str) -> u64 {
    if matches!(mode, "dr" | "tun") {
        120
    } else {
        60
    }
}

/// The table's steady size with the rig's clock at `clock` connections per second:
/// once warm it expires as many connections per second as open.
pub fn lifecycle_table(mode: &str, clock: u64) -> usize {
    (clock * lifecycle_timeout(mode)) as usize
}

enum Clock {
    PerBurst,
    /// The clock advances by a second per this many connections opened.
    PerConnection(u64),
}

pub struct PathRig {
    pub worker: WorkerCore<HeapFrame>,
    pub io: RecycleIo,
    polls: u64,
    clock: Clock,
}

impl PathRig {
    fn director(
        mode: &str,
        source: Source,
        capacity: usize,
        clock: Clock,
    ) -> anyhow::Result<PathRig> {
        let yaml = director_yaml("", mode, "net_null0", "net_null1", None);
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
                ..WorkerParts::alone(cell, capacity)
            },
        );
        let mut rig = PathRig {
            worker,
            io: RecycleIo::new(source),
            polls: 0,
            clock,
        };
        rig.worker.start(&mut rig.io);
        Ok(rig)
    }

    /// A worker serving `mode` (dr, tun, nat, fullnat) over `flows` open connections,
    /// replaying 64 data segments per flow: the SYNs are replayed once first, as the
    /// throughput benchmark's warm-up port does, so every counted packet is a data
    /// segment of an established connection.
    pub fn new(mode: &str, flows: u32) -> anyhow::Result<PathRig> {
        let mut syns = Vec::new();
        generate(&spec(Profile::Syn, flows, 1), |f| syns.push(f.to_vec()));
        let mut segments = Vec::new();
        generate(&spec(Profile::Segments, flows, 64), |f| {
            segments.push(f.to_vec())
        });
        let warm = syns.len().div_ceil(BURST);
        let source = Source::Trace {
            frames: syns,
            next: 0,
        };
        let capacity = (flows as usize * 2).max(65536);
        let mut rig = PathRig::director(mode, source, capacity, Clock::PerBurst)?;
        for _ in 0..warm {
            rig.burst();
        }
        rig.io.source = Source::Trace {
            frames: segments,
            next: 0,
        };
        let drops = rig.drops();
        anyhow::ensure!(drops.is_empty(), "{mode}: the worker dropped {drops:?}");
        let open = rig.worker.ipvs.conns.len();
        anyhow::ensure!(
            open == flows as usize,
            "{mode}: {open} connections open, not {flows}"
        );
        rig.io.sent = 0;
        rig.io.received = 0;
        Ok(rig)
    }

    /// A worker serving `mode` fed new connections without end (`Lifecycle`), its
    /// clock at `clock` connections per second, warmed up by twice a timeout's worth of
    /// connections: its table is at its steady size (`lifecycle_table`) and expiring.
    /// Timers run as often per second of the clock as in rvsd, so expiry's cost is
    /// counted in full, never deferred past the measurement.
    pub fn lifecycle(mode: &str, clock: u64) -> anyhow::Result<PathRig> {
        let source = Source::Lifecycle(Lifecycle::new(&spec(Profile::Syn, 1, 1)));
        let mut rig = PathRig::director(
            mode,
            source,
            LIFECYCLE_CAPACITY,
            Clock::PerConnection(clock.max(1)),
        )?;
        while rig.opened() < 2 * lifecycle_timeout(mode) * clock {
            rig.burst();
        }
        Ok(rig)
    }

    /// Connections opened so far (lifecycle rigs).
    pub fn opened(&self) -> u64 {
        match &self.io.source {
            Source::Lifecycle(l) => l.opened(),
            Source::Trace { .. } => 0,
        }
    }

    /// One turn of the production worker loop (`WorkerCore::poll`, as `io::run_worker`
    /// runs it), with the rig's clock advancing.
    pub fn burst(&mut self) {
        self.polls += 1;
        let now = match self.clock {
            Clock::PerBurst => 1000 + self.polls / BURSTS_PER_MS,
            Clock::PerConnection(k) => 1000 + self.opened() * 1000 / k,
        };
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

    /// Every drop so far.
    pub fn dropped(&self) -> u64 {
        DropReason::ALL
            .iter()
            .map(|&r| self.worker.stats.drops(r))
            .sum()
    }

    /// Connections the worker has created so far.
    pub fn created(&self) -> u64 {
        let s = &self.worker.ipvs.stats.services;
        s.iter().map(|t| t.conns.get()).sum()
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

    /// The lifecycle's premise, as the benchmark checks it on every run: once warm,
    /// every connection is new (one created per SYN), every frame is forwarded, and the
    /// table stays at its steady size because expiry removes as many as open.
    #[test]
    fn the_lifecycle_opens_a_connection_per_syn_and_expiry_keeps_the_table_level() {
        for mode in ["dr", "tun", "nat", "fullnat"] {
            let clock = 1024;
            let (_, (a, b)) = crate::throughput::lifecycle_rate(mode, clock, 20 * clock)
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
            // (lifecycle_rate refuses a table off its steady size by a tenth.)
            let steady = lifecycle_table(mode, clock);
            assert!(a.abs_diff(steady) < steady / 100, "{mode}: {a} vs {steady}");
            assert!(b.abs_diff(a) < a / 10, "{mode}: {a} then {b}");
        }
    }
}
