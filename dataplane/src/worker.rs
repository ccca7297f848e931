//! The per-lcore worker: everything a worker does between rx and tx, independent of DPDK.
//!
//! `io::run_worker` runs `WorkerCore::poll` over real ports, the benchmark rig over
//! frames in memory; tests and fuzz targets hand it frames one at a time
//! (`WorkerCore::handle`) or in bursts (`rx_burst`), through the same dispatcher. A
//! worker owns its neighbour table, its connection table and its scheduler copies; it
//! shares nothing writable with other workers: what it must tell them travels through
//! their mailboxes and redirect rings, and configuration reaches it as snapshots.

use crate::frame::{Frame, Io};
use crate::ipvs::stats::IpvsStats;
use crate::ipvs::{self, owner, IpvsWorker, Verdict, NO_HINT};
use crate::net::neigh::NeighTable;
use crate::net::{self, Learned};
use crate::packet::ethernet::ethertype;
use crate::packet::IpHdr;
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::stats::{DropReason, WorkerStats};
use arrayvec::ArrayVec;
use crossbeam::queue::ArrayQueue;
use std::sync::Arc;

pub use crate::frame::BURST;

/// Redirected packets a worker handles per poll at most.
pub const REDIRECT_DRAIN: usize = 8 * BURST;

/// How often the worker runs its timers (neighbour retries), in milliseconds.
pub const TICK_MS: u64 = 100;

/// Messages to a worker.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A neighbour learned by another worker.
    Neigh(Learned),
    /// The control plane asks for this worker's connections (answered between bursts).
    DumpConns(crossbeam::channel::Sender<Vec<ipvs::ConnDump>>),
    /// A connection the sync MASTER sent, to install (this worker will own it).
    Sync(ipvs::sync::SyncConn),
}

/// One bounded lock-free queue per worker. A full mailbox drops the message: everything
/// sent here is an optimisation the receiver can also reach by itself (it resolves its
/// own neighbours).
pub struct Mailboxes {
    boxes: Vec<ArrayQueue<Msg>>,
}

impl Mailboxes {
    pub fn new(workers: usize, capacity: usize) -> Self {
        Mailboxes {
            boxes: (0..workers)
                .map(|_| ArrayQueue::new(capacity.max(1)))
                .collect(),
        }
    }
    /// Posts to one worker; false when its mailbox is full.
    pub fn post(&self, to: usize, msg: Msg) -> bool {
        self.boxes.get(to).is_some_and(|b| b.push(msg).is_ok())
    }
    pub fn workers(&self) -> usize {
        self.boxes.len()
    }
    pub fn post_others(&self, from: usize, msg: Msg) {
        for (i, b) in self.boxes.iter().enumerate() {
            if i != from {
                let _ = b.push(msg.clone());
            }
        }
    }
    pub fn pop(&self, id: usize) -> Option<Msg> {
        self.boxes.get(id)?.pop()
    }
}

/// A packet on its way to the worker that owns its connection: the frame, the port it
/// arrived on, and its parsed header (so that the owner does not parse it again).
type Redirected<F> = (F, u16, IpHdr);

/// Per-worker rings carrying packets to the worker that owns their connection.
pub struct Redirect<F> {
    rings: Vec<ArrayQueue<Redirected<F>>>,
}

impl<F> Redirect<F> {
    pub fn new(workers: usize, capacity: usize) -> Self {
        Redirect {
            rings: (0..workers)
                .map(|_| ArrayQueue::new(capacity.max(1)))
                .collect(),
        }
    }
    pub fn workers(&self) -> usize {
        self.rings.len()
    }
}

/// What a worker is built from.
pub struct WorkerParts<F> {
    pub cell: Arc<SnapshotCell>,
    pub mail: Arc<Mailboxes>,
    pub redirect: Arc<Redirect<F>>,
    pub stats: Arc<WorkerStats>,
    pub ipvs_stats: Arc<IpvsStats>,
    /// Connection-table entries of this worker.
    pub conn_capacity: usize,
    /// Seeds the connection-table hash and the schedulers' randomness: different in
    /// every process (hash flooding), fixed where runs must repeat (benchmarks).
    pub seed: u64,
    /// Connection sync's rings, when the director syncs.
    pub sync: Option<Arc<crate::ipvs::sync::SyncRings>>,
}

impl<F> WorkerParts<F> {
    /// Parts with fresh counters, for workers sharing `mail` and `redirect`.
    pub fn new(
        cell: Arc<SnapshotCell>,
        mail: Arc<Mailboxes>,
        redirect: Arc<Redirect<F>>,
        conn_capacity: usize,
    ) -> Self {
        WorkerParts {
            cell,
            mail,
            redirect,
            stats: Arc::default(),
            ipvs_stats: Arc::default(),
            conn_capacity,
            seed: 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()),
            sync: None,
        }
    }
    /// Parts of a worker that is the only one (tests, benchmarks, fuzzing).
    pub fn alone(cell: Arc<SnapshotCell>, conn_capacity: usize) -> Self {
        Self::new(
            cell,
            Arc::new(Mailboxes::new(1, 16)),
            Arc::new(Redirect::new(1, 16)),
            conn_capacity,
        )
    }
}

/// What the first pass found a received frame to be. Its parsed header travels beside
/// it (for ARP, only `l3` is set).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Dropped (and counted) by the first pass.
    Dropped,
    Arp,
    Ipv4,
    /// IPv4 handed over by the worker that received it: this worker owns it.
    Redirected,
    /// For the port's kernel twin as it is (IPv6, other ethertypes).
    Kernel,
}

/// A frame's kind and its connection-table bucket from the prefetch pass (or NO_HINT).
#[derive(Clone, Copy)]
struct Seen {
    kind: Kind,
    bucket: u32,
}

pub struct WorkerCore<F> {
    pub id: usize,
    snap: Arc<Snapshot>,
    cell: Arc<SnapshotCell>,
    mail: Arc<Mailboxes>,
    redirect: Arc<Redirect<F>>,
    pub stats: Arc<WorkerStats>,
    pub neigh: NeighTable<F>,
    pub ipvs: IpvsWorker,
    next_tick: u64,
    next_ipvs_tick: u64,
}

impl<F: Frame> WorkerCore<F> {
    pub fn new(id: usize, parts: WorkerParts<F>) -> Self {
        let snap = parts.cell.load();
        let workers = parts.redirect.workers().max(1);
        let seed = parts.seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut ipvs = IpvsWorker::new(id, workers, parts.conn_capacity, parts.ipvs_stats, seed);
        if let Some(r) = parts.sync {
            ipvs.attach_sync(r);
        }
        ipvs.adopt(&snap.ipvs, &snap.net);
        WorkerCore {
            id,
            neigh: NeighTable::new(snap.net.neigh_params),
            ipvs,
            snap,
            cell: parts.cell,
            mail: parts.mail,
            redirect: parts.redirect,
            stats: parts.stats,
            next_tick: 0,
            next_ipvs_tick: 0,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// Runs once when the worker starts: installs static neighbours, and worker 0 sends a
    /// gratuitous ARP for every owned address on every port.
    pub fn start<I: Io<Frame = F>>(&mut self, io: &mut I) {
        self.apply_snapshot(0, io);
        if self.id == 0 {
            let mut cx = net::Cx {
                cfg: &self.snap.net,
                now_ms: 0,
                io,
                stats: &self.stats,
            };
            for p in 0..self.snap.net.ports.len() {
                net::announce(p, &mut cx);
            }
        }
    }

    /// One turn of the worker loop, the same in the daemon (`io::run_worker`) and in the
    /// benchmark rig: control work, then a burst from every port, then transmission.
    /// Returns the number of frames received.
    #[inline]
    pub fn poll<I: Io<Frame = F>>(&mut self, now: u64, io: &mut I) -> usize {
        self.poll_control(now, io);
        let mut got = 0;
        for port in 0..self.snap.net.ports.len() {
            let mut rx = ArrayVec::new();
            io.rx_burst(port, &mut rx);
            got += rx.len();
            self.rx_burst(rx, port, now, io);
            if let Some(k) = self.snap.net.kernel_of(port) {
                got += self.kernel_out(k, port, io);
            }
        }
        io.flush();
        self.stats.loops.inc();
        got
    }

    /// Once per loop iteration: adopt a new snapshot, read the mailbox, run timers, and
    /// handle what other workers redirected here.
    /// What the kernel twin `k` of `port` sent leaves through `port` as it is: the
    /// kernel has the port's MAC and addresses, and resolves its own neighbours.
    fn kernel_out<I: Io<Frame = F>>(&mut self, k: usize, port: usize, io: &mut I) -> usize {
        let mut rx = ArrayVec::<F, BURST>::new();
        io.rx_burst(k, &mut rx);
        let n = rx.len();
        if n > 0 {
            let bytes: u64 = rx.iter().map(|f| f.data().len() as u64).sum();
            if let Some(pc) = self.stats.ports.get(k) {
                pc.rx_packets.add(n as u64);
                pc.rx_bytes.add(bytes);
            }
            self.stats.from_kernel.add(n as u64);
            for f in rx {
                io.send(port, f);
            }
        }
        n
    }

    #[inline]
    pub fn poll_control<I: Io<Frame = F>>(&mut self, now: u64, io: &mut I) {
        if self.cell.generation() != self.snap.generation {
            self.snap = self.cell.load();
            self.apply_snapshot(now, io);
        }
        while let Some(msg) = self.mail.pop(self.id) {
            match msg {
                Msg::DumpConns(reply) => {
                    let _ = reply.send(self.ipvs.dump(now));
                }
                Msg::Sync(c) => {
                    self.ipvs.set_clock(now);
                    if !self.ipvs.install_synced(&c, &self.snap.ipvs) {
                        self.ipvs.stats.sync_refused.inc();
                    }
                }
                Msg::Neigh(l) => {
                    let mut cx = net::Cx {
                        cfg: &self.snap.net,
                        now_ms: now,
                        io,
                        stats: &self.stats,
                    };
                    self.neigh.learn(l.ip, l.mac, l.port, true, &mut cx);
                }
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK_MS;
            self.neigh_timers(now, io);
        }
        if now >= self.next_ipvs_tick {
            self.next_ipvs_tick = now + 1000 - now % 1000;
            self.ipvs.tick(now);
        }
        self.ipvs.set_clock(now);
        // Packets other workers passed to us. Up to eight bursts per poll: with N workers
        // a worker may receive (N-1)/N of every other worker's burst, and a ring that is
        // drained slower than it fills drops (redirect_full).
        for _ in 0..REDIRECT_DRAIN {
            let Some((f, port, h)) = self.redirect.rings.get(self.id).and_then(|r| r.pop()) else {
                break;
            };
            self.ipvs.stats.redirected_in.inc();
            let seen = Seen {
                kind: Kind::Redirected,
                bucket: NO_HINT,
            };
            self.dispatch(f, seen, &h, usize::from(port), now, io);
        }
    }

    /// Retries outstanding ARP requests and gives up on unanswered ones.
    pub fn neigh_timers<I: Io<Frame = F>>(&mut self, now: u64, io: &mut I) {
        let mut cx = net::Cx {
            cfg: &self.snap.net,
            now_ms: now,
            io,
            stats: &self.stats,
        };
        self.neigh.tick(&mut cx);
    }

    fn apply_snapshot<I: Io<Frame = F>>(&mut self, now: u64, io: &mut I) {
        let snap = self.snap.clone();
        self.neigh.set_params(snap.net.neigh_params);
        self.neigh
            .retain_permanent(|ip| snap.net.neighbours.iter().any(|n| n.ip == ip));
        let mut cx = net::Cx {
            cfg: &snap.net,
            now_ms: now,
            io,
            stats: &self.stats,
        };
        for n in &snap.net.neighbours {
            self.neigh.add_permanent(n.ip, n.mac, n.port, &mut cx);
        }
        self.ipvs.adopt(&snap.ipvs, &snap.net);
        self.stats.snapshot_generation.reset();
        self.stats.snapshot_generation.add(snap.generation);
    }

    /// Handles one received burst. Three passes: the link layer and the one parse of
    /// each IPv4 header, with a prefetch of its connection bucket; a prefetch of the
    /// connections those buckets hold; then every frame in order, so that the lookups
    /// find both in cache. Counters once per burst.
    #[inline]
    pub fn rx_burst<I: Io<Frame = F>>(
        &mut self,
        rx: ArrayVec<F, BURST>,
        port: usize,
        now: u64,
        io: &mut I,
    ) {
        if rx.is_empty() {
            return;
        }
        let n = rx.len() as u64;
        let mut bytes = 0u64;
        self.ipvs.set_clock(now);
        // Headers are parsed into place once and read by reference afterwards; frames
        // stay where the driver put them.
        let mut hdrs = [IpHdr::EMPTY; BURST];
        let mut seen = [Seen {
            kind: Kind::Dropped,
            bucket: NO_HINT,
        }; BURST];
        let lookups = !self.snap.ipvs.is_empty();
        for ((f, h), s) in rx.iter().zip(&mut hdrs).zip(&mut seen) {
            let data = f.data();
            bytes += data.len() as u64;
            match classify(data, port, &self.snap, h) {
                Ok(kind) => {
                    s.kind = kind;
                    if kind == Kind::Ipv4 && lookups {
                        s.bucket = self.ipvs.prefetch(h);
                    }
                }
                Err(r) => self.stats.dropped(r),
            }
        }
        for s in &seen[..rx.len()] {
            self.ipvs.prefetch_conn(s.bucket);
        }
        if let Some(pc) = self.stats.ports.get(port) {
            pc.rx_packets.add(n);
            pc.rx_bytes.add(bytes);
        }
        self.stats.rx_packets.add(n);
        self.stats.rx_bytes.add(bytes);
        for ((f, h), s) in rx.into_iter().zip(&hdrs).zip(&seen) {
            self.dispatch(f, *s, h, port, now, io);
        }
    }

    /// Handles one received frame: the same path as a burst's frames, without the
    /// prefetch passes and the rx counters (tests and fuzz targets drive this).
    pub fn handle<I: Io<Frame = F>>(&mut self, frame: F, port: usize, now: u64, io: &mut I) {
        let mut h = IpHdr::EMPTY;
        self.ipvs.set_clock(now);
        match classify(frame.data(), port, &self.snap, &mut h) {
            Ok(kind) => {
                let seen = Seen {
                    kind,
                    bucket: NO_HINT,
                };
                self.dispatch(frame, seen, &h, port, now, io);
            }
            Err(r) => self.stats.dropped(r),
        }
    }

    /// The one dispatcher: ARP to `net`, IPv4 to its owning worker, then the IPVS engine,
    /// then local delivery. Whatever is dropped on the way is counted here, once.
    /// Always inlined, like the engine's per-packet steps below it: as calls, their
    /// register saves and restores cost more than a tenth of a DR packet.
    #[inline(always)]
    fn dispatch<I: Io<Frame = F>>(
        &mut self,
        frame: F,
        seen: Seen,
        h: &IpHdr,
        port: usize,
        now: u64,
        io: &mut I,
    ) {
        // Disjoint borrows of the worker's parts: no Arc clone per packet.
        let WorkerCore {
            id,
            snap,
            neigh,
            ipvs,
            stats,
            mail,
            redirect,
            ..
        } = self;
        let (snap, stats, id) = (&**snap, &**stats, *id);
        let mut net = net::Cx {
            cfg: &snap.net,
            now_ms: now,
            io,
            stats,
        };
        let result = match seen.kind {
            Kind::Arp => {
                let (learned, r) = net::arp_input(neigh, frame, h.l3(), port, &mut net);
                if let Some(l) = learned {
                    mail.post_others(id, Msg::Neigh(l));
                }
                r
            }
            Kind::Dropped => Ok(()),
            Kind::Kernel => net::up(frame, port, DropReason::UnknownEthertype, &mut net),
            Kind::Ipv4 | Kind::Redirected => {
                let workers = redirect.workers();
                if seen.kind == Kind::Ipv4 && workers > 1 && !snap.ipvs.is_empty() {
                    let o = owner(&snap.ipvs, h, frame.data(), workers);
                    if o != id {
                        return match redirect.rings[o].push((frame, port as u16, *h)) {
                            Ok(()) => ipvs.stats.redirected_out.inc(),
                            Err(_) => stats.dropped(DropReason::Redirect),
                        };
                    }
                }
                let mut cx = ipvs::Cx {
                    ipvs: &snap.ipvs,
                    neigh,
                    net,
                };
                match ipvs.process(frame, h, seen.bucket, &mut cx) {
                    Ok(Verdict::Pass(f)) => net::ipv4_local(cx.neigh, f, h, port, &mut cx.net),
                    Ok(Verdict::Done) => Ok(()),
                    Err(r) => Err(r),
                }
            }
        };
        if let Err(r) = result {
            stats.dropped(r);
        }
    }
}

/// The first pass over a received frame: link-layer checks, then what it is, with its
/// IPv4 header parsed into `h` (for ARP, only where it starts).
#[inline]
fn classify(frame: &[u8], port: usize, snap: &Snapshot, h: &mut IpHdr) -> Result<Kind, DropReason> {
    let l2 = net::l2_filter(frame, port, &snap.net)?;
    let l3 = l2.offset;
    match l2.ethertype {
        ethertype::IPV4 => {
            *h = net::ipv4_input(frame, l3)?;
            Ok(Kind::Ipv4)
        }
        ethertype::ARP => {
            h.l3 = l3 as u16;
            Ok(Kind::Arp)
        }
        _ if snap.net.kernel_of(port).is_some() => Ok(Kind::Kernel),
        ethertype::IPV6 => Err(DropReason::Ipv6),
        _ => Err(DropReason::UnknownEthertype),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{CaptureIo, HeapFrame};
    use crate::net::neigh::NeighParams;
    use crate::packet::build::{self, Link};
    use crate::packet::{arp, MacAddr};
    use crate::snapshot::{PortInfo, StaticNeigh};
    use std::net::Ipv4Addr;

    fn snapshot(neighbours: Vec<StaticNeigh>) -> Snapshot {
        let ports = vec![PortInfo {
            name: "lan0".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 0xd0]),
            mtu: 1500,
            addresses: vec!["198.18.0.2/24".parse().unwrap()],
            kernel: None,
        }];
        Snapshot::new(ports, &[], neighbours, NeighParams::default())
    }

    #[test]
    fn learned_neighbours_reach_the_other_workers() {
        let cell = Arc::new(SnapshotCell::new(snapshot(vec![])));
        let mail = Arc::new(Mailboxes::new(2, 16));
        let redirect = Arc::new(Redirect::new(2, 16));
        let mut w0 = WorkerCore::<HeapFrame>::new(
            0,
            WorkerParts::new(cell.clone(), mail.clone(), redirect.clone(), 1024),
        );
        let mut w1 = WorkerCore::<HeapFrame>::new(
            1,
            WorkerParts::new(cell.clone(), mail.clone(), redirect.clone(), 1024),
        );
        let mut io = CaptureIo::default();
        let cmac = MacAddr([2, 0, 0, 0, 0, 0xc1]);
        let req = build::arp_frame(
            Link {
                src: cmac,
                dst: MacAddr::BROADCAST,
            },
            arp::OP_REQUEST,
            cmac,
            Ipv4Addr::new(198, 18, 0, 1),
            MacAddr::ZERO,
            Ipv4Addr::new(198, 18, 0, 2),
        );
        w0.handle(HeapFrame::from_bytes(&req), 0, 0, &mut io);
        assert_eq!(w1.neigh.lookup(Ipv4Addr::new(198, 18, 0, 1)), None);
        w1.poll_control(1, &mut io);
        assert_eq!(w1.neigh.lookup(Ipv4Addr::new(198, 18, 0, 1)), Some(cmac));
    }

    #[test]
    fn a_published_snapshot_is_adopted_at_the_next_poll() {
        let cell = Arc::new(SnapshotCell::new(snapshot(vec![])));
        let mut w = WorkerCore::<HeapFrame>::new(0, WorkerParts::alone(cell.clone(), 1024));
        let mut io = CaptureIo::default();
        w.start(&mut io);
        assert_eq!(
            io.sent.len(),
            1,
            "one gratuitous ARP for the one owned address"
        );
        let gw = StaticNeigh {
            ip: Ipv4Addr::new(198, 18, 0, 254),
            mac: MacAddr([2, 0, 0, 0, 0, 0x91]),
            port: 0,
        };
        let g = cell.publish(snapshot(vec![gw]));
        assert_eq!(w.snapshot().generation, 1);
        w.poll_control(0, &mut io);
        assert_eq!(w.snapshot().generation, g);
        assert_eq!(w.stats.snapshot_generation.get(), g);
        assert_eq!(w.neigh.lookup(gw.ip), Some(gw.mac));
        // Removing it from config removes the permanent entry.
        cell.publish(snapshot(vec![]));
        w.poll_control(0, &mut io);
        assert_eq!(w.neigh.lookup(gw.ip), None);
    }
}
