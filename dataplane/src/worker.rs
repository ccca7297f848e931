//! The per-lcore worker: everything a worker does between rx and tx, independent of DPDK.
//!
//! `io::run_worker` drives a `WorkerCore` with real ports; tests drive it with
//! `CaptureIo`. A worker owns its neighbour table (and, later, its connection table and
//! scheduler copies); it shares nothing writable with other workers: what it must tell
//! them travels through their mailboxes, and configuration reaches it as snapshots.

use crate::frame::{Frame, Io};
use crate::ipvs::core::{owner, IpvsWorker, Verdict, NO_HINT};
use crate::ipvs::stats::IpvsStats;
use crate::net::{ipv4_validate, Learned, NetStack};
use crate::packet::ethernet::ethertype;
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::stats::DropReason;
use crate::stats::WorkerStats;
use crossbeam::queue::ArrayQueue;
use std::sync::Arc;

/// Burst size of rx and tx (DPDK's customary 32).
pub const BURST: usize = 32;

/// Redirected packets a worker handles per poll at most.
pub const REDIRECT_DRAIN: usize = 8 * BURST;

/// How often the worker runs its timers (neighbour retries), in milliseconds.
pub const TICK_MS: u64 = 100;

/// One connection as listed by `ipvsadm -L -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnDump {
    pub proto: u8,
    pub caddr: std::net::Ipv4Addr,
    pub cport: u16,
    pub vaddr: std::net::Ipv4Addr,
    pub vport: u16,
    pub daddr: std::net::Ipv4Addr,
    pub dport: u16,
    pub state: &'static str,
    pub expires_in: u32,
}

/// Messages to a worker.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A neighbour learned by another worker.
    Neigh(Learned),
    /// The control plane asks for this worker's connections (answered between bursts).
    DumpConns(crossbeam::channel::Sender<Vec<ConnDump>>),
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

/// Per-worker rings carrying packets to the worker that owns their connection.
pub struct Redirect<F> {
    rings: Vec<ArrayQueue<(F, u16)>>,
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

pub struct WorkerCore<F> {
    pub id: usize,
    snap: Arc<Snapshot>,
    cell: Arc<SnapshotCell>,
    mail: Arc<Mailboxes>,
    redirect: Arc<Redirect<F>>,
    pub stats: Arc<WorkerStats>,
    pub net: NetStack<F>,
    pub ipvs: IpvsWorker,
    next_tick: u64,
    next_ipvs_tick: u64,
}

impl<F: Frame> WorkerCore<F> {
    pub fn new(id: usize, parts: WorkerParts<F>) -> Self {
        let snap = parts.cell.load();
        let workers = parts.redirect.workers().max(1);
        let seed = 0x2545_f491_4f6c_dd1d
            ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(std::process::id());
        let mut ipvs = IpvsWorker::new(id, workers, parts.conn_capacity, parts.ipvs_stats, seed);
        ipvs.adopt(&snap);
        WorkerCore {
            id,
            net: NetStack::new(snap.neigh_params),
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
        self.apply_snapshot(io);
        if self.id == 0 {
            for p in 0..self.snap.ports.len() {
                self.net.announce(p, &self.snap, io, &self.stats);
            }
        }
    }

    /// Once per loop iteration: adopt a new snapshot, read the mailbox, run timers.
    #[inline]
    pub fn poll_control<I: Io<Frame = F>>(&mut self, now: u64, io: &mut I) {
        if self.cell.generation() != self.snap.generation {
            self.snap = self.cell.load();
            self.apply_snapshot(io);
        }
        while let Some(msg) = self.mail.pop(self.id) {
            match msg {
                Msg::DumpConns(reply) => {
                    let _ = reply.send(self.ipvs.dump(now));
                }
                Msg::Neigh(l) => {
                    self.net.neigh.learn(
                        l.ip,
                        l.mac,
                        l.port,
                        true,
                        now,
                        &*self.snap,
                        io,
                        &self.stats,
                    );
                }
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK_MS;
            self.net.neigh.tick(now, &*self.snap, io, &self.stats);
        }
        if now >= self.next_ipvs_tick {
            self.next_ipvs_tick = now + 1000 - now % 1000;
            self.ipvs.tick(now, io);
        }
        // Packets other workers passed to us. Up to eight bursts per poll: with N workers
        // a worker may receive (N-1)/N of every other worker's burst, and a ring that is
        // drained slower than it fills drops (redirect_full).
        for _ in 0..REDIRECT_DRAIN {
            let Some((f, port)) = self.redirect.rings.get(self.id).and_then(|r| r.pop()) else {
                break;
            };
            self.ipvs.stats.redirected_in.inc();
            self.dispatch(f, usize::from(port), now, io, true);
        }
    }

    fn apply_snapshot<I: Io<Frame = F>>(&mut self, io: &mut I) {
        let snap = self.snap.clone();
        self.net.neigh.set_params(snap.neigh_params);
        self.net
            .neigh
            .retain_permanent(|ip| snap.neighbours.iter().any(|n| n.ip == ip));
        for n in &snap.neighbours {
            self.net
                .neigh
                .add_permanent(n.ip, n.mac, n.port, &*snap, io, &self.stats);
        }
        self.ipvs.adopt(&snap);
        self.stats.snapshot_generation.reset();
        self.stats.snapshot_generation.add(snap.generation);
    }

    /// Warms the caches for a burst before it is handled, in two passes over the burst:
    /// `prefetch_bytes` on every frame (connection buckets), then `prefetch_conn` on
    /// every hint it returned (the connections). See `IpvsWorker::prefetch`.
    #[inline]
    pub fn prefetch_bytes(&self, frame: &[u8]) -> u32 {
        if self.snap.ipvs.is_empty() {
            return NO_HINT;
        }
        self.ipvs.prefetch(frame)
    }
    #[inline]
    pub fn prefetch_conn(&self, hint: u32) {
        self.ipvs.prefetch_conn(hint);
    }

    /// Handles one received frame.
    #[inline]
    pub fn handle<I: Io<Frame = F>>(&mut self, frame: F, port: usize, now: u64, io: &mut I) {
        self.dispatch(frame, port, now, io, false);
    }

    fn dispatch<I: Io<Frame = F>>(
        &mut self,
        frame: F,
        port: usize,
        now: u64,
        io: &mut I,
        redirected: bool,
    ) {
        // Disjoint borrows of the worker's parts: no Arc clone per packet.
        let WorkerCore {
            id,
            snap,
            net,
            ipvs,
            stats,
            mail,
            redirect,
            ..
        } = self;
        let (snap, stats, id) = (&**snap, &**stats, *id);
        let Some(l2) = net.l2_filter(&frame, port, snap, stats) else {
            return;
        };
        let l3 = l2.l3_offset;
        match l2.ethertype {
            ethertype::ARP => {
                if let Some(l) = net.arp_input(frame, l3, port, snap, now, io, stats) {
                    mail.post_others(id, Msg::Neigh(l));
                }
            }
            ethertype::IPV4 => {
                if !redirected && !ipv4_validate(&frame, l3, stats) {
                    return;
                }
                let workers = redirect.workers();
                if !redirected && workers > 1 && !snap.ipvs.is_empty() {
                    let o = owner(snap, frame.data().get(l3..).unwrap_or(&[]), workers);
                    if o != id {
                        match redirect.rings[o].push((frame, port as u16)) {
                            Ok(()) => ipvs.stats.redirected_out.inc(),
                            Err(_) => stats.dropped(DropReason::Redirect),
                        }
                        return;
                    }
                }
                if let Verdict::Pass(f) = ipvs.process(frame, l3, snap, now, net, io, stats) {
                    net.ipv4_local(f, l3, snap, now, io, stats);
                }
            }
            ethertype::IPV6 => stats.dropped(DropReason::Ipv6),
            _ => stats.dropped(DropReason::UnknownEthertype),
        }
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
        assert_eq!(w1.net.neigh.lookup(Ipv4Addr::new(198, 18, 0, 1)), None);
        w1.poll_control(1, &mut io);
        assert_eq!(
            w1.net.neigh.lookup(Ipv4Addr::new(198, 18, 0, 1)),
            Some(cmac)
        );
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
        assert_eq!(w.net.neigh.lookup(gw.ip), Some(gw.mac));
        // Removing it from config removes the permanent entry.
        cell.publish(snapshot(vec![]));
        w.poll_control(0, &mut io);
        assert_eq!(w.net.neigh.lookup(gw.ip), None);
    }
}
