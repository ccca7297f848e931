//! Worker lcores: launch on EAL lcores, poll rx queues in bursts, transmit in bursts,
//! back off when idle.

use super::mbuf::{Mbuf, MbufPool};
use super::IoError;
use crate::frame::{Frame, Io};
use crate::ipvs::stats::IpvsStats;
use crate::params::IdlePolicy;
use crate::snapshot::SnapshotCell;
use crate::stats::{DropReason, WorkerStats};
use crate::worker::{Mailboxes, Redirect, WorkerCore, WorkerParts, BURST};
use arrayvec::ArrayVec;
use dpdk_sys as sys;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IDLE_POLLS_BEFORE_YIELD: u32 = 8;
const IDLE_POLLS_BEFORE_SLEEP: u32 = 256;
const SLEEP_MIN: Duration = Duration::from_micros(10);
const SLEEP_MAX: Duration = Duration::from_micros(500);

/// Everything one worker lcore needs, moved onto it at launch.
pub struct WorkerCtx {
    pub id: usize,
    /// DPDK port ids, indexed by the config's port index.
    pub ports: Vec<u16>,
    pub queue: u16,
    pub pool: MbufPool,
    pub cell: Arc<SnapshotCell>,
    pub mail: Arc<Mailboxes>,
    pub redirect: Arc<Redirect<Mbuf>>,
    pub stats: Arc<WorkerStats>,
    pub ipvs_stats: Arc<IpvsStats>,
    pub conn_capacity: usize,
    pub stop: Arc<AtomicBool>,
    pub idle: IdlePolicy,
    pub burst: usize,
    pub sync: Option<Arc<crate::ipvs::sync::SyncRings>>,
}

/// The lcores running workers; `wait` joins them.
pub struct WorkerHandles {
    lcores: Vec<u32>,
}

impl WorkerHandles {
    /// Waits for every worker to return; the number that failed (panicked).
    pub fn wait(self) -> usize {
        self.lcores
            .iter()
            // SAFETY: the EAL is initialised and `l` is a worker lcore this process
            // launched; waiting on it only blocks until it returns.
            .filter(|&&l| unsafe { sys::rte_eal_wait_lcore(l) } != 0)
            .count()
    }
}

/// Launches one worker per context on the EAL's worker lcores, in order.
pub fn launch_workers(ctxs: Vec<WorkerCtx>) -> Result<WorkerHandles, IoError> {
    let mut lcores = Vec::new();
    // SAFETY: the EAL is initialised (launching needs it); the lcore iterator only
    // reads its configuration.
    let mut l = unsafe { sys::rte_get_next_lcore(u32::MAX, 1, 0) };
    while l < sys::RTE_MAX_LCORE && lcores.len() < ctxs.len() {
        lcores.push(l);
        // SAFETY: as above; `l` came from the previous call.
        l = unsafe { sys::rte_get_next_lcore(l, 1, 0) };
    }
    if lcores.len() < ctxs.len() {
        return Err(IoError::Lcore(format!(
            "{} workers but only {} worker lcores",
            ctxs.len(),
            lcores.len()
        )));
    }
    let mut launched = Vec::new();
    let stops: Vec<Arc<AtomicBool>> = ctxs.iter().map(|c| c.stop.clone()).collect();
    for (ctx, &lcore) in ctxs.into_iter().zip(&lcores) {
        let id = ctx.id;
        let arg = Box::into_raw(Box::new(ctx)) as *mut c_void;
        // SAFETY: `arg` is a leaked Box<WorkerCtx> that `trampoline` takes back exactly
        // once, on `lcore`, which is an idle worker lcore of this EAL.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc != 0 {
            // SAFETY: the launch failed, so `trampoline` never ran and the box leaked
            // above is still ours to take back, once.
            drop(unsafe { Box::from_raw(arg as *mut WorkerCtx) });
            // The workers already running must stop before the caller drops the ports
            // they poll.
            for s in &stops {
                s.store(true, Ordering::Relaxed);
            }
            let failed = WorkerHandles { lcores: launched }.wait();
            tracing::warn!(failed, "workers launched before the failure stopped");
            return Err(IoError::Lcore(format!(
                "launching worker {id} on lcore {lcore}: {}",
                super::rte_error(rc)
            )));
        }
        tracing::info!(worker = id, lcore, "worker launched");
        launched.push(lcore);
    }
    Ok(WorkerHandles { lcores: launched })
}

/// # Safety
/// `arg` must be a pointer from `Box::into_raw(Box<WorkerCtx>)`, passed exactly once.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: the caller's contract: `arg` is a leaked Box<WorkerCtx>, given once.
    let ctx = unsafe { Box::from_raw(arg as *mut WorkerCtx) };
    // A panic must not unwind into C; it ends this worker with an error instead.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run_worker(*ctx))) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// The `Io` of a worker: allocation from its pool, buffered transmission on its queue.
struct DpdkIo<'a> {
    pool: MbufPool,
    queue: u16,
    ports: &'a [u16],
    tx: Vec<ArrayVec<*mut sys::rte_mbuf, BURST>>,
    /// Bytes queued in `tx[port]`, summed as frames are queued (their headers are hot
    /// then) rather than re-read from every mbuf at flush.
    tx_bytes: Vec<u64>,
    stats: &'a WorkerStats,
    /// Frames asked of the driver per rx burst (1..=BURST).
    burst: u16,
}

impl DpdkIo<'_> {
    fn flush_port(&mut self, port: usize) {
        let Some(buf) = self.tx.get_mut(port) else {
            return;
        };
        if buf.is_empty() {
            return;
        }
        let queued_bytes = std::mem::take(&mut self.tx_bytes[port]);
        // SAFETY: `buf` holds `len` valid mbufs owned by this worker; the port and this
        // worker's queue are started and no other lcore transmits on the queue.
        let n = usize::from(unsafe {
            sys::rvs_eth_tx_burst(
                self.ports[port],
                self.queue,
                buf.as_mut_ptr(),
                buf.len() as u16,
            )
        });
        let pc = &self.stats.ports[port];
        let unsent: u64 = buf[n..]
            .iter()
            // SAFETY: the driver did not take buf[n..]: they are valid mbufs, still ours.
            .map(|&m| u64::from(unsafe { (*m).data_len }))
            .sum();
        let sent_bytes = queued_bytes.saturating_sub(unsent);
        pc.tx_packets.add(n as u64);
        pc.tx_bytes.add(sent_bytes);
        self.stats.tx_packets.add(n as u64);
        self.stats.tx_bytes.add(sent_bytes);
        for &m in &buf[n..] {
            // SAFETY: an mbuf the driver did not take, still ours, freed exactly once.
            unsafe { sys::rvs_pktmbuf_free(m) };
            pc.tx_dropped.inc();
            self.stats.dropped(DropReason::TxFull);
        }
        buf.clear();
    }
}

impl Io for DpdkIo<'_> {
    type Frame = Mbuf;
    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }
    #[inline]
    fn send(&mut self, port: usize, frame: Mbuf) {
        if port >= self.tx.len() {
            self.stats.dropped(DropReason::NoRoute);
            return;
        }
        if self.tx[port].is_full() {
            self.flush_port(port);
        }
        self.tx_bytes[port] += frame.data().len() as u64;
        self.tx[port].push(frame.into_raw());
    }
    #[inline]
    fn rx_burst(&mut self, port: usize, rx: &mut ArrayVec<Mbuf, BURST>) {
        let Some(&pid) = self.ports.get(port) else {
            return;
        };
        let mut raw = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        // SAFETY: `raw` has room for BURST pointers and `burst` <= BURST; the port and
        // this worker's queue were configured and started before the worker launched,
        // and no other lcore polls this queue.
        let n = usize::from(unsafe {
            sys::rvs_eth_rx_burst(pid, self.queue, raw.as_mut_ptr(), self.burst)
        });
        for &m in &raw[..n] {
            // SAFETY: rx burst handed us ownership of these n valid mbufs.
            let Some(m) = (unsafe { Mbuf::from_raw(m) }) else {
                continue;
            };
            if m.nb_segs() != 1 {
                // Received, so counted as such, and dropped: the fast path works on
                // single-segment frames only.
                let pc = &self.stats.ports[port];
                pc.rx_packets.inc();
                pc.rx_bytes.add(m.data().len() as u64);
                self.stats.rx_packets.inc();
                self.stats.rx_bytes.add(m.data().len() as u64);
                self.stats.dropped(DropReason::MultiSegment);
                continue;
            }
            rx.push(m);
        }
    }
    fn flush(&mut self) {
        for p in 0..self.tx.len() {
            self.flush_port(p);
        }
    }
}

fn run_worker(ctx: WorkerCtx) {
    let base = Instant::now();
    let stats = ctx.stats.clone();
    let mut core = WorkerCore::<Mbuf>::new(
        ctx.id,
        WorkerParts {
            stats: ctx.stats.clone(),
            ipvs_stats: ctx.ipvs_stats.clone(),
            sync: ctx.sync.clone(),
            ..WorkerParts::new(
                ctx.cell.clone(),
                ctx.mail.clone(),
                ctx.redirect.clone(),
                ctx.conn_capacity,
            )
        },
    );
    let mut io = DpdkIo {
        pool: ctx.pool,
        queue: ctx.queue,
        ports: &ctx.ports,
        tx: (0..ctx.ports.len()).map(|_| ArrayVec::new()).collect(),
        tx_bytes: vec![0; ctx.ports.len()],
        stats: &stats,
        burst: ctx.burst.clamp(1, BURST) as u16,
    };
    core.start(&mut io);
    io.flush();
    let mut idle_polls = 0u32;
    let mut sleep = SLEEP_MIN;
    while !ctx.stop.load(Ordering::Relaxed) {
        let now = base.elapsed().as_millis() as u64;
        let got = core.poll(now, &mut io);
        if got > 0 {
            idle_polls = 0;
            sleep = SLEEP_MIN;
        } else if ctx.idle == IdlePolicy::Adaptive {
            idle_polls += 1;
            if idle_polls >= IDLE_POLLS_BEFORE_SLEEP {
                std::thread::sleep(sleep);
                stats.idle_sleeps.inc();
                sleep = (sleep * 2).min(SLEEP_MAX);
            } else if idle_polls >= IDLE_POLLS_BEFORE_YIELD {
                // Between packets of a busy flow: hand the core to whatever else is
                // runnable on it (clients, servers, the kernel's softirqs on a shared
                // machine) without a timer, so the next packet waits at most one
                // time slice of theirs rather than a sleep.
                // SAFETY: sched_yield takes no arguments and cannot fail in a way that
                // matters here.
                unsafe { libc::sched_yield() };
            }
        }
    }
    io.flush();
    tracing::info!(worker = ctx.id, "worker stopped");
}
