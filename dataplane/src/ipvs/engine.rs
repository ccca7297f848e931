//! The IPVS engine of one worker: its state (connections, real-server accounting,
//! scheduler copies, fragments), adoption of new snapshots, timers, and the
//! classification of each packet as inbound (client to VIP), a reply (real server to
//! client or LIP) or a new connection. The other files of `ipvs` add one concern each to
//! `IpvsWorker`: `owner` (which worker), `schedule` (scheduling and templates), `laddr`
//! (FULLNAT local ports), `xmit` (forwarding per method), `frag`, `icmp`, `dest`
//! (real-server accounting) and `list` (`ipvsadm -L -c`). Everything here is this
//! worker's own.

use super::conn::{flags as cf, ConnTable, Key};
use super::dest::{loads_into, DestRoute, DestRt};
use super::frag::Frags;
use super::laddr::LocalPorts;
use super::sched::{DestLoad, Scheduler};
use super::service::{IpvsTable, DEST_SLOTS, SVC_SLOTS};
use super::state::{self, Dir, TcpState, Timeouts};
use super::stats::IpvsStats;
use crate::frame::{Frame, Io};
use crate::net::neigh::NeighTable;
use crate::net::NetConfig;
use crate::packet::ipv4::protocol;
use crate::packet::tcp::flags as tf;
use crate::packet::IpHdr;
use crate::stats::DropReason;
use std::sync::Arc;

/// What the engine works with while it handles one packet: its part of the snapshot
/// (the IPVS table), the worker's neighbour table (for output) and the L2/L3 context
/// (the rest of the snapshot, the time, the I/O, the worker's counters). The worker
/// builds it from its own parts; nothing in it is shared writable state.
pub struct Cx<'a, F, I> {
    pub ipvs: &'a IpvsTable,
    pub neigh: &'a mut NeighTable<F>,
    pub net: crate::net::Cx<'a, I>,
}

impl<F: Frame, I: Io<Frame = F>> Cx<'_, F, I> {
    /// Routes `frame` toward `dst` and hands it to the neighbour table.
    #[inline]
    pub fn route_out(&mut self, frame: F, dst: std::net::Ipv4Addr) -> Result<(), DropReason> {
        let nh = self.net.cfg.routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        self.neigh
            .output(frame, nh.port, nh.next_hop, &mut self.net)
    }
}

/// What the engine did with a packet it did not drop.
pub enum Verdict<F> {
    /// Not IPVS traffic: the frame goes on to local delivery.
    Pass(F),
    /// Forwarded or answered.
    Done,
}

/// A packet the engine drops: `Err(reason)`, counted once by the worker.
pub type Outcome<F> = Result<Verdict<F>, DropReason>;

pub(super) struct SvcRt {
    pub version: u64,
    pub sched: Scheduler,
}

pub struct IpvsWorker {
    pub conns: ConnTable,
    pub(super) dests: Vec<DestRt>,
    pub(super) svcs: Vec<Option<SvcRt>>,
    pub stats: Arc<IpvsStats>,
    expired: Vec<u32>,
    pub(super) loads: Vec<DestLoad>,
    pub(super) workers: usize,
    pub(super) timeouts: Timeouts,
    pub(super) lports: LocalPorts,
    pub(super) ip_ident: u16,
    last_sched_expire: u64,
    /// The engine's clock in seconds (connection expiry), set once per burst.
    pub(super) now_s: u32,
    seed: u64,
    pub(super) frags: Frags,
    /// Connection sync: the ring to the control plane, and whether this director is
    /// the sync MASTER (read once per burst).
    pub(super) sync: Option<std::sync::Arc<super::sync::SyncRings>>,
    pub(super) sync_master: bool,
    pub(super) worker: usize,
}

/// `IpvsWorker::prefetch` found nothing to look up.
pub const NO_HINT: u32 = u32::MAX;

impl Key {
    /// The lookup key of a TCP/UDP packet: <proto, src, sport, dst, dport>.
    #[inline]
    pub fn of(h: &IpHdr) -> Key {
        Key {
            proto: h.proto,
            saddr: h.src.into(),
            sport: h.sport,
            daddr: h.dst.into(),
            dport: h.dport,
        }
    }
}

impl IpvsWorker {
    pub fn new(
        worker: usize,
        workers: usize,
        capacity: usize,
        stats: Arc<IpvsStats>,
        seed: u64,
    ) -> IpvsWorker {
        let workers = workers.max(1);
        IpvsWorker {
            conns: ConnTable::new(capacity, seed ^ 0x5bd1_e995),
            dests: vec![DestRt::default(); DEST_SLOTS],
            svcs: (0..SVC_SLOTS).map(|_| None).collect(),
            stats,
            expired: Vec::with_capacity(1024),
            loads: Vec::with_capacity(64),
            workers,
            timeouts: Timeouts::default(),
            lports: LocalPorts::new(worker, workers),
            ip_ident: worker as u16,
            last_sched_expire: 0,
            now_s: 0,
            seed,
            frags: Frags::default(),
            sync: None,
            sync_master: false,
            worker,
        }
    }

    /// Adopts the services of a new snapshot: real-server slots are refreshed, and the
    /// scheduler of a service is rebuilt only when its version changed, so an unchanged
    /// service keeps its rr position and lblc cache. Connections are never touched.
    ///
    /// Each real server's route (next hop, port, MTU, tunnel source) is resolved here,
    /// once per snapshot, rather than per packet, like the kernel's per-destination route
    /// cache (`__ip_vs_dst_check`).
    pub fn adopt(&mut self, ipvs: &IpvsTable, net: &NetConfig) {
        self.timeouts = ipvs.timeouts;
        for d in self.dests.iter_mut() {
            d.present = false;
        }
        let mut live = vec![false; SVC_SLOTS];
        let mut loads = Vec::new();
        for svc in &ipvs.services {
            let slot = svc.slot as usize;
            if slot >= SVC_SLOTS {
                continue;
            }
            live[slot] = true;
            for rs in &svc.dests {
                let Some(d) = self.dests.get_mut(rs.slot as usize) else {
                    continue;
                };
                d.present = true;
                d.svc = svc.slot;
                d.weight = rs.weight;
                // Thresholds apply to the whole director; each worker holds its share.
                d.u_threshold = rs.u_threshold.div_ceil(self.workers as u32);
                d.l_threshold = rs.l_threshold.div_ceil(self.workers as u32);
                d.persist_timeout = svc.persistence.map_or(0, |p| p.timeout);
                d.route = DestRoute::resolve(net, rs.addr);
                d.update_overload();
            }
            loads_into(svc, &self.dests, &mut loads);
            match &mut self.svcs[slot] {
                Some(rt) if rt.version == svc.version => {}
                Some(rt) if rt.sched.kind == svc.sched && rt.sched.flags == svc.flags => {
                    rt.sched.update(svc.tables.clone(), &loads);
                    rt.version = svc.version;
                }
                other => {
                    *other = Some(SvcRt {
                        version: svc.version,
                        sched: Scheduler::new(
                            svc.sched,
                            svc.flags,
                            svc.tables.clone(),
                            &loads,
                            self.seed ^ u64::from(svc.slot),
                        ),
                    });
                }
            }
        }
        for (slot, rt) in self.svcs.iter_mut().enumerate() {
            if !live[slot] {
                *rt = None;
            }
        }
    }

    /// A VRRP BACKUP holds synced connections but forwards none of them: their VIP (or
    /// FULLNAT local address) stands by. Only a director with addresses on standby pays
    /// more than one test.
    #[inline(always)]
    fn standby_check(&self, ci: u32, ipvs: &IpvsTable) -> Result<(), DropReason> {
        if ipvs.has_standby() {
            let c = self.conns.get(ci);
            if ipvs.is_standby(c.vaddr.into()) || (c.laddr != 0 && ipvs.is_standby(c.laddr.into()))
            {
                return Err(DropReason::Standby);
            }
        }
        Ok(())
    }

    /// Connects this worker to the connection sync rings.
    pub fn attach_sync(&mut self, rings: std::sync::Arc<super::sync::SyncRings>) {
        self.sync = Some(rings);
    }

    /// Sets the engine's clock: the worker calls it before each burst (and each frame
    /// handled on its own), so a packet pays no division for its expiry time.
    #[inline]
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_s = (now_ms / 1000) as u32;
        self.sync_master = self
            .sync
            .as_ref()
            .is_some_and(|r| r.master.load(std::sync::atomic::Ordering::Relaxed));
    }

    /// Prefetches the connection-table bucket of a parsed TCP/UDP packet. Called for a
    /// whole rx burst before it is processed, so the cache misses overlap. Returns a hint
    /// for `prefetch_conn` (NO_HINT when there is nothing to look up).
    #[inline]
    pub fn prefetch(&self, h: &IpHdr) -> u32 {
        if !h.l4_ok {
            return NO_HINT;
        }
        self.conns.prefetch_in(&Key::of(h))
    }

    /// The second prefetch stage for a hint of `prefetch`: the connection entry itself.
    #[inline]
    pub fn prefetch_conn(&self, hint: u32) {
        if hint != NO_HINT {
            self.conns.prefetch_chain(hint);
        }
    }

    /// Once a second or so: expire connections and templates, fragments, age lblc
    /// caches.
    pub fn tick(&mut self, now_ms: u64) {
        let now_s = (now_ms / 1000) as u32;
        let mut expired = std::mem::take(&mut self.expired);
        expired.clear();
        self.conns.collect_expired(now_s, &mut expired);
        for &ci in &expired {
            let c = *self.conns.get(ci);
            if c.is_template() && c.n_control > 0 {
                // A template outlives its connections (ip_vs_conn_expire's n_control).
                let t = self
                    .dests
                    .get(c.dest as usize)
                    .map_or(60, |d| d.persist_timeout.max(1));
                self.conns.rearm(ci, now_s + t);
            } else {
                self.unbind_and_remove(ci);
            }
        }
        self.expired = expired;
        self.frags.expire(now_ms);
        if now_ms / 1000 >= self.last_sched_expire + 60 {
            self.last_sched_expire = now_ms / 1000;
            for rt in self.svcs.iter_mut().flatten() {
                rt.sched.expire(now_ms / 1000);
            }
        }
    }

    /// Handles an IPv4 packet whose header the worker has validated and parsed into `h`.
    /// `bucket` is its connection-table bucket from `prefetch`, or NO_HINT.
    #[inline(always)]
    pub fn process<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: F,
        h: &IpHdr,
        bucket: u32,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        if cx.ipvs.is_empty() {
            return Ok(Verdict::Pass(frame));
        }
        // A whole TCP or UDP header (l4_ok) is the common case: one test admits it.
        if !h.l4_ok {
            return self.process_other(frame, h, cx);
        }
        let key = Key::of(h);
        let bucket = if bucket == NO_HINT {
            self.conns.bucket_of(&key)
        } else {
            bucket
        };
        if let Some(ci) = self.conns.lookup_in_at(bucket, &key) {
            self.standby_check(ci, cx.ipvs)?;
            self.track_fragment(h, ci, Dir::Input, cx.net.now_ms);
            return self.inbound(ci, frame, h, cx);
        }
        if let Some(ci) = self.conns.lookup_out_at(bucket, &key) {
            self.standby_check(ci, cx.ipvs)?;
            self.track_fragment(h, ci, Dir::Output, cx.net.now_ms);
            return self.outbound(ci, frame, h, cx);
        }
        let Some(svc) = cx.ipvs.lookup(h.proto, h.dst, h.dport) else {
            return no_service(frame, h, cx.ipvs);
        };
        if h.proto == protocol::TCP
            && (h.tcp_flags & tf::SYN == 0 || h.tcp_flags & (tf::RST | tf::ACK) != 0)
        {
            // Only a SYN opens a TCP connection (no sloppy_tcp).
            return Err(DropReason::NoConn);
        }
        match self.schedule(svc, h, cx.ipvs, self.now_s) {
            Ok(ci) => {
                self.track_fragment(h, ci, Dir::Input, cx.net.now_ms);
                self.inbound(ci, frame, h, cx)
            }
            Err(DropReason::NoDest) => {
                // The kernel answers ICMP port unreachable when no server is available.
                self.send_icmp(&frame, h, super::icmp::PORT_UNREACHABLE, 0, cx);
                Err(DropReason::NoDest)
            }
            Err(reason) => Err(reason),
        }
    }

    /// What is not a TCP/UDP packet with its whole header: ICMP, later fragments,
    /// malformed TCP/UDP, other protocols.
    #[inline(never)]
    fn process_other<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: F,
        h: &IpHdr,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        // Echo requests, errors and fragments to a VIP this director stands by for.
        if standby(cx.ipvs, h) {
            return Err(DropReason::Standby);
        }
        match h.proto {
            protocol::TCP | protocol::UDP => {}
            protocol::ICMP => return self.icmp_error(frame, h, cx),
            _ => return Ok(Verdict::Pass(frame)),
        }
        if h.is_later_fragment() {
            return self.later_fragment(frame, h, cx);
        }
        // Only error paths ask: two set lookups not paid per forwarded packet.
        if ours(cx.ipvs, h) {
            return Err(DropReason::L4Malformed);
        }
        Ok(Verdict::Pass(frame))
    }

    /// State transition and expiry for a packet of connection `ci` (set_tcp_state).
    #[inline(always)]
    pub(super) fn transition(&mut self, ci: u32, h: &IpHdr, dir: Dir) {
        let now_s = self.now_s;
        // Most segments: an ACK keeps an established connection established in every
        // state table (a test holds the tables to that); only its expiry moves. (Only
        // TCP has flags: `tcp_flags` is 0 for UDP.)
        if h.tcp_flags & (tf::SYN | tf::FIN | tf::RST | tf::ACK) == tf::ACK {
            let t = now_s + self.timeouts.tcp(TcpState::Established);
            if self
                .conns
                .extend_in_state(ci, TcpState::Established as u8, t)
            {
                self.sync_after(ci, false, dir);
                return;
            }
        }
        let c = self.conns.get(ci);
        let (new, timeout) = if h.proto == protocol::TCP {
            let input_only = c.flags & cf::NOOUTPUT != 0;
            let n = state::tcp_next(TcpState::from_u8(c.state), h.tcp_flags, dir, input_only);
            (n as u8, self.timeouts.tcp(n))
        } else {
            (state::UDP_STATE, self.timeouts.udp)
        };
        let changed = new != c.state;
        if h.proto == protocol::TCP && changed {
            self.account_state(ci, new == TcpState::Established as u8);
        }
        self.conns.get_mut(ci).state = new;
        self.conns.set_expires(ci, now_s + timeout);
        self.sync_after(ci, changed, dir);
    }
}

/// A TCP/UDP packet of no connection and no service: out of line, so that the
/// forwarding path stays as it was compiled before it.
#[cold]
#[inline(never)]
fn no_service<F>(frame: F, h: &IpHdr, ipvs: &IpvsTable) -> Outcome<F> {
    if ipvs.is_lip(h.dst) {
        return Err(DropReason::NoConn);
    }
    // A VRRP BACKUP's VIP: not its traffic (nor its kernel twin's).
    if standby(ipvs, h) {
        return Err(DropReason::Standby);
    }
    Ok(Verdict::Pass(frame))
}

/// The packet is addressed to a virtual address this director stands by for (a VRRP
/// BACKUP's): on the paths that do not forward, one test when nothing stands by.
fn standby(ipvs: &IpvsTable, h: &IpHdr) -> bool {
    ipvs.has_standby() && ipvs.is_standby(h.dst)
}

/// The packet is addressed to a VIP or a LIP: a malformed or untracked one is dropped
/// rather than passed on to local delivery.
pub(super) fn ours(ipvs: &IpvsTable, h: &IpHdr) -> bool {
    ipvs.is_vip(h.dst) || ipvs.is_lip(h.dst)
}
