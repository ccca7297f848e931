//! The IPVS engine of one worker: classifies IPv4 TCP/UDP packets as inbound (client to
//! VIP), replies (real server to client or LIP) or new connections, runs the scheduler,
//! the state machine and the timers, and transmits with the connection's forwarding
//! method. Everything it touches is this worker's own.

use super::conn::{self, flags as cf, Conn, ConnTable, Fwd, Key, NIL};
use super::sched::{DestLoad, Flow, Scheduler};
use super::service::{Service, DEST_SLOTS, SVC_SLOTS};
use super::state::{self, Dir, TcpState, Timeouts};
use super::stats::IpvsStats;
use super::xmit;
use crate::frame::{Frame, Io};
use crate::net::NetStack;
use crate::packet::ipv4::protocol;
use crate::packet::tcp::flags as tf;
use crate::packet::Ipv4Packet;
use crate::snapshot::Snapshot;
use crate::stats::{DropReason, WorkerStats};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// What a worker knows about a real-server slot.
#[derive(Debug, Clone, Copy, Default)]
struct DestRt {
    present: bool,
    svc: u32,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    overloaded: bool,
    persist_timeout: u32,
    active: u32,
    inactive: u32,
    persist: u32,
}

impl DestRt {
    fn total(&self) -> u32 {
        self.active + self.inactive
    }
}

struct SvcRt {
    version: u64,
    sched: Scheduler,
}

/// What the engine works with while it handles one packet: the snapshot, the time, the
/// L2/L3 stack (for output), the I/O and the worker's counters.
pub struct Cx<'a, F, I> {
    pub snap: &'a Snapshot,
    pub now_ms: u64,
    pub net: &'a mut NetStack<F>,
    pub io: &'a mut I,
    pub wstats: &'a WorkerStats,
}

/// The result of looking at a packet.
pub enum Verdict<F> {
    /// Not IPVS traffic: the frame goes on to local delivery.
    Pass(F),
    /// Forwarded, answered or dropped (and counted).
    Done,
}

pub struct IpvsWorker {
    pub conns: ConnTable,
    dests: Vec<DestRt>,
    svcs: Vec<Option<SvcRt>>,
    pub stats: Arc<IpvsStats>,
    expired: Vec<u32>,
    loads: Vec<DestLoad>,
    worker: usize,
    workers: usize,
    timeouts: Timeouts,
    lport_cursor: u32,
    lip_cursor: usize,
    ip_ident: u16,
    last_sched_expire: u64,
    seed: u64,
    /// Fragmented datagrams in flight: (src, dst, IP id, proto) -> the connection their
    /// first fragment belongs to, its key (to detect reuse of the slot), the direction,
    /// and when to forget them.
    frags: ahash::AHashMap<(u32, u32, u16, u8), FragEntry>,
}

#[derive(Debug, Clone, Copy)]
struct FragEntry {
    conn: u32,
    key: Key,
    dir: Dir,
    expires_ms: u64,
}

/// Fragments of one datagram are followed this long (Linux's ipfrag_time).
const FRAG_TIMEOUT_MS: u64 = 30_000;
const FRAG_TABLE_MAX: usize = 65536;

/// The worker that owns the connection a packet belongs to: a pure function of the
/// packet (and the snapshot), so that both directions of a connection meet on one worker.
/// NAT, DR and TUN hash the client endpoint (the source of a request, the destination of
/// a NAT reply); the client address alone for UDP, for IP fragments (later fragments carry
/// no ports) and for persistent services (a client's connections must meet its template).
/// FULLNAT replies go to the worker whose share of local ports holds their destination
/// port. An ICMP error belongs to the connection of the packet it quotes.
pub fn owner(snap: &Snapshot, ip: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let Ok(p) = Ipv4Packet::new_checked(ip) else {
        return 0;
    };
    let ipvs = &snap.ipvs;
    let proto = p.protocol();
    let l4 = p.payload();
    match proto {
        protocol::TCP | protocol::UDP => {
            if p.frag_offset() != 0 || l4.len() < 4 {
                return tuple_owner(snap, proto, p.src(), 0, p.dst(), 0, true, workers);
            }
            let sport = u16::from_be_bytes([l4[0], l4[1]]);
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            tuple_owner(
                snap,
                proto,
                p.src(),
                sport,
                p.dst(),
                dport,
                p.is_fragment(),
                workers,
            )
        }
        protocol::ICMP if !ipvs.is_empty() && !p.is_fragment() => match l4.first() {
            Some(&(3 | 11)) => match xmit::quoted(l4) {
                // The quoted packet travelled the other way.
                Some(q) if matches!(q.proto, protocol::TCP | protocol::UDP) => tuple_owner(
                    snap, q.proto, q.dst, q.dport, q.src, q.sport, false, workers,
                ),
                _ => 0,
            },
            _ => 0,
        },
        _ => 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn tuple_owner(
    snap: &Snapshot,
    proto: u8,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    frag: bool,
    workers: usize,
) -> usize {
    let ipvs = &snap.ipvs;
    if ipvs.is_lip(dst) {
        // A later FULLNAT reply fragment has no port to go by; it is dropped (and
        // counted) unless it lands on the owner.
        return usize::from(dport) % workers;
    }
    let ip_only = frag || proto == protocol::UDP;
    let (addr, port) = if ipvs.is_vip(dst) {
        let by_ip = ip_only
            || ipvs
                .lookup(proto, dst, dport)
                .is_some_and(|s| s.client_ip_owned);
        (src, if by_ip { 0 } else { sport })
    } else {
        let by_ip = ip_only || ipvs.reply_ip_owned(proto, src, sport);
        (dst, if by_ip { 0 } else { dport })
    };
    endpoint_hash(addr, port) % workers
}

fn endpoint_hash(a: Ipv4Addr, p: u16) -> usize {
    let x = (u64::from(u32::from(a)) << 16 | u64::from(p)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 40) as usize
}

/// The addresses an ICMP error is translated to: outer source and destination, quoted
/// source and destination endpoints (`xmit::rewrite_icmp`'s arguments; None = unchanged).
type IcmpRewrite = (
    Option<Ipv4Addr>,
    Option<Ipv4Addr>,
    Option<(Ipv4Addr, u16)>,
    Option<(Ipv4Addr, u16)>,
);

/// `IpvsWorker::prefetch` found nothing to look up.
pub const NO_HINT: u32 = u32::MAX;

/// Parsed essentials of a TCP/UDP packet.
#[derive(Clone, Copy)]
struct Pkt {
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    len: u64,
}

impl IpvsWorker {
    pub fn new(
        worker: usize,
        workers: usize,
        capacity: usize,
        stats: Arc<IpvsStats>,
        seed: u64,
    ) -> IpvsWorker {
        IpvsWorker {
            conns: ConnTable::new(capacity, seed ^ 0x5bd1_e995),
            dests: vec![DestRt::default(); DEST_SLOTS],
            svcs: (0..SVC_SLOTS).map(|_| None).collect(),
            stats,
            expired: Vec::with_capacity(1024),
            loads: Vec::with_capacity(64),
            worker,
            workers: workers.max(1),
            timeouts: Timeouts::default(),
            lport_cursor: 0,
            lip_cursor: 0,
            ip_ident: worker as u16,
            last_sched_expire: 0,
            seed,
            frags: ahash::AHashMap::new(),
        }
    }

    /// Adopts the services of a new snapshot: real-server slots are refreshed, and the
    /// scheduler of a service is rebuilt only when its version changed, so an unchanged
    /// service keeps its rr position and lblc cache. Connections are never touched.
    pub fn adopt(&mut self, snap: &Snapshot) {
        let ipvs = &snap.ipvs;
        self.timeouts = ipvs.timeouts;
        for d in self.dests.iter_mut() {
            d.present = false;
        }
        let mut live = vec![false; SVC_SLOTS];
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
                update_overload(d);
            }
            let loads = loads_of(svc, &self.dests);
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

    /// Prefetches the connection-table bucket a frame will be looked up in (IPv4 TCP/UDP
    /// behind an untagged Ethernet header; anything else is skipped). Called for a whole
    /// rx burst before it is processed, so the cache misses overlap. Returns a hint for
    /// `prefetch_conn` (NO_HINT when there is nothing to look up).
    #[inline]
    pub fn prefetch(&self, frame: &[u8]) -> u32 {
        let Some(ip) = frame.get(14..34) else {
            return NO_HINT;
        };
        if frame[12..14] != [0x08, 0x00] {
            return NO_HINT;
        }
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let proto = ip[9];
        if proto != protocol::TCP && proto != protocol::UDP {
            return NO_HINT;
        }
        let Some(ports) = frame.get(14 + hl..14 + hl + 4) else {
            return NO_HINT;
        };
        let key = Key {
            proto,
            saddr: u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
            sport: u16::from_be_bytes([ports[0], ports[1]]),
            daddr: u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]),
            dport: u16::from_be_bytes([ports[2], ports[3]]),
        };
        self.conns.prefetch_in(&key)
    }

    /// The second prefetch stage for a hint of `prefetch`: the connection entry itself.
    #[inline]
    pub fn prefetch_conn(&self, hint: u32) {
        if hint != NO_HINT {
            self.conns.prefetch_chain(hint);
        }
    }

    /// Once a second or so: expire connections and templates, age lblc caches.
    pub fn tick<F: Frame, I: Io<Frame = F>>(&mut self, now_ms: u64, _io: &mut I) {
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
        if !self.frags.is_empty() {
            self.frags.retain(|_, f| f.expires_ms > now_ms);
        }
        if now_ms / 1000 >= self.last_sched_expire + 60 {
            self.last_sched_expire = now_ms / 1000;
            for rt in self.svcs.iter_mut().flatten() {
                rt.sched.expire(now_ms / 1000);
            }
        }
    }

    /// Handles an IPv4 packet whose header the caller has validated. `l3` is the offset
    /// of the IPv4 header in the frame.
    #[allow(clippy::too_many_arguments)]
    pub fn process<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: F,
        l3: usize,
        snap: &Snapshot,
        now_ms: u64,
        net: &mut NetStack<F>,
        io: &mut I,
        wstats: &WorkerStats,
    ) -> Verdict<F> {
        let mut cx = Cx {
            snap,
            now_ms,
            net,
            io,
            wstats,
        };
        if snap.ipvs.is_empty() {
            return Verdict::Pass(frame);
        }
        let Some(ip) = frame
            .data()
            .get(l3..)
            .and_then(|b| Ipv4Packet::new_checked(b).ok())
        else {
            return Verdict::Pass(frame);
        };
        let proto = ip.protocol();
        if proto == protocol::ICMP {
            return self.icmp_error(frame, l3, &mut cx);
        }
        if proto != protocol::TCP && proto != protocol::UDP {
            return Verdict::Pass(frame);
        }
        let (src, dst) = (ip.src(), ip.dst());
        // Only error paths need it: two set lookups not paid per forwarded packet.
        let ours = || snap.ipvs.is_vip(dst) || snap.ipvs.is_lip(dst);
        let frag_key = ip
            .is_fragment()
            .then(|| (u32::from(src), u32::from(dst), ip.ident(), proto));
        if ip.frag_offset() != 0 {
            let last = !ip.more_frags();
            let len = ip.total_len() as u64;
            return self.later_fragment(
                frame,
                l3,
                frag_key.unwrap_or_default(),
                last,
                len,
                ours(),
                &mut cx,
            );
        }
        let l4 = ip.payload();
        let (sport, dport, tcp_flags) = match proto {
            protocol::TCP
                if l4.len() >= 20
                    && usize::from(l4[12] >> 4) * 4 >= 20
                    && usize::from(l4[12] >> 4) * 4 <= l4.len() =>
            {
                (
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]]),
                    l4[13],
                )
            }
            protocol::UDP if l4.len() >= 8 => (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
                0,
            ),
            _ => {
                if ours() {
                    wstats.dropped(DropReason::L4Malformed);
                    return Verdict::Done;
                }
                return Verdict::Pass(frame);
            }
        };
        let pkt = Pkt {
            proto,
            src,
            dst,
            sport,
            dport,
            tcp_flags,
            len: ip.total_len() as u64,
        };
        let key = Key {
            proto,
            saddr: src.into(),
            sport,
            daddr: dst.into(),
            dport,
        };
        let now_s = (now_ms / 1000) as u32;
        if let Some(ci) = self.conns.lookup_in(&key) {
            self.track_fragments(frag_key, ci, Dir::Input, now_ms);
            return self.inbound(ci, frame, l3, pkt, now_s, &mut cx);
        }
        if let Some(ci) = self.conns.lookup_out(&key) {
            self.track_fragments(frag_key, ci, Dir::Output, now_ms);
            return self.outbound(ci, frame, l3, pkt, now_s, &mut cx);
        }
        let Some(svc) = snap.ipvs.lookup(proto, dst, dport) else {
            if snap.ipvs.is_lip(dst) {
                wstats.dropped(DropReason::NoConn);
                return Verdict::Done;
            }
            return Verdict::Pass(frame);
        };
        if proto == protocol::TCP
            && (tcp_flags & tf::SYN == 0 || tcp_flags & (tf::RST | tf::ACK) != 0)
        {
            // Only a SYN opens a TCP connection (no sloppy_tcp).
            wstats.dropped(DropReason::NoConn);
            return Verdict::Done;
        }
        match self.schedule(svc, &pkt, snap, now_s) {
            Ok(ci) => {
                self.track_fragments(frag_key, ci, Dir::Input, now_ms);
                self.inbound(ci, frame, l3, pkt, now_s, &mut cx)
            }
            Err(reason) => {
                if reason == DropReason::NoDest {
                    // The kernel answers ICMP port unreachable when no server is available.
                    self.send_icmp(&frame, l3, xmit::PORT_UNREACHABLE, 0, &mut cx);
                }
                wstats.dropped(reason);
                Verdict::Done
            }
        }
    }

    /// Remembers the connection of a first fragment for the fragments that follow it.
    #[inline]
    fn track_fragments(
        &mut self,
        key: Option<(u32, u32, u16, u8)>,
        conn: u32,
        dir: Dir,
        now_ms: u64,
    ) {
        if key.is_some() {
            self.track_fragments_slow(key, conn, dir, now_ms);
        }
    }

    #[inline(never)]
    fn track_fragments_slow(
        &mut self,
        key: Option<(u32, u32, u16, u8)>,
        conn: u32,
        dir: Dir,
        now_ms: u64,
    ) {
        if let Some(k) = key {
            if self.frags.len() < FRAG_TABLE_MAX || self.frags.contains_key(&k) {
                let ck = self.conns.get(conn).in_key();
                self.frags.insert(
                    k,
                    FragEntry {
                        conn,
                        key: ck,
                        dir,
                        expires_ms: now_ms + FRAG_TIMEOUT_MS,
                    },
                );
            }
        }
    }

    /// A fragment after the first: it follows the connection of its datagram's first
    /// fragment, with only the addresses rewritten. Untracked ones are dropped.
    #[allow(clippy::too_many_arguments)]
    fn later_fragment<F: Frame, I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        l3: usize,
        fk: (u32, u32, u16, u8),
        last: bool,
        len: u64,
        ours: bool,
        cx: &mut Cx<'_, F, I>,
    ) -> Verdict<F> {
        let entry = self.frags.get(&fk).copied().filter(|e| {
            e.expires_ms > cx.now_ms && {
                let c = self.conns.get(e.conn);
                c.state != conn::STATE_FREE && !c.is_template() && c.in_key() == e.key
            }
        });
        if last {
            self.frags.remove(&fk);
        }
        let Some(e) = entry else {
            if ours || cx.snap.owned.get(Ipv4Addr::from(fk.1)).is_none() {
                cx.wstats.dropped(DropReason::FragUntracked);
                return Verdict::Done;
            }
            return Verdict::Pass(frame);
        };
        let c = *self.conns.get(e.conn);
        let (daddr, caddr) = (Ipv4Addr::from(c.daddr), Ipv4Addr::from(c.caddr));
        let traffic = &self.stats.dests[c.dest as usize].traffic;
        let to = match e.dir {
            Dir::Input => {
                traffic.inpkts.inc();
                traffic.inbytes.add(len);
                match c.fwd() {
                    Fwd::Dr => daddr,
                    Fwd::Tun => return self.encap_and_send(frame, l3, daddr, cx),
                    Fwd::Nat | Fwd::FullNat => {
                        if !self.ttl_ok(&mut frame, l3, cx) {
                            return Verdict::Done;
                        }
                        let src = (c.fwd() == Fwd::FullNat).then(|| Ipv4Addr::from(c.laddr));
                        xmit::rewrite_ip(&mut frame.data_mut()[l3..], src, Some(daddr));
                        daddr
                    }
                }
            }
            Dir::Output => {
                traffic.outpkts.inc();
                traffic.outbytes.add(len);
                if !self.ttl_ok(&mut frame, l3, cx) {
                    return Verdict::Done;
                }
                let dst = (c.fwd() == Fwd::FullNat).then_some(caddr);
                xmit::rewrite_ip(
                    &mut frame.data_mut()[l3..],
                    Some(Ipv4Addr::from(c.vaddr)),
                    dst,
                );
                caddr
            }
        };
        self.route_out(frame, to, cx);
        Verdict::Done
    }

    /// ICMP errors (destination unreachable, time exceeded) that quote a packet of a
    /// tracked connection are translated and passed to the other side, as the kernel's
    /// ip_vs_in_icmp / ip_vs_out_icmp do. Anything else goes on to local delivery.
    fn icmp_error<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: F,
        l3: usize,
        cx: &mut Cx<'_, F, I>,
    ) -> Verdict<F> {
        let q = {
            let Some(Ok(ip)) = frame.data().get(l3..).map(Ipv4Packet::new_checked) else {
                return Verdict::Pass(frame);
            };
            let m = ip.payload();
            if ip.is_fragment() || !matches!(m.first(), Some(3 | 11)) {
                return Verdict::Pass(frame);
            }
            match xmit::quoted(m) {
                Some(q) if matches!(q.proto, protocol::TCP | protocol::UDP) => q,
                _ => return Verdict::Pass(frame),
            }
        };
        // The quoted packet travelled the other way; turned round, it is either a client's
        // view of a connection (rvs had sent it toward the client) or a real server's
        // reply view (rvs had forwarded it to the real server).
        let turned = Key {
            proto: q.proto,
            saddr: q.dst.into(),
            sport: q.dport,
            daddr: q.src.into(),
            dport: q.sport,
        };
        if let Some(ci) = self.conns.lookup_in(&turned) {
            let c = *self.conns.get(ci);
            let (daddr, laddr) = (Ipv4Addr::from(c.daddr), Ipv4Addr::from(c.laddr));
            let fnat = c.fwd() == Fwd::FullNat;
            let rewrite = match c.fwd() {
                Fwd::Dr => None,
                Fwd::Tun => {
                    self.stats.icmp_translated.inc();
                    return self.encap_and_send(frame, l3, daddr, cx);
                }
                Fwd::Nat | Fwd::FullNat => Some((
                    fnat.then_some(laddr),
                    Some(daddr),
                    Some((daddr, c.dport)),
                    fnat.then_some((laddr, c.lport)),
                )),
            };
            return self.pass_icmp(frame, l3, rewrite, daddr, cx);
        }
        if let Some(ci) = self.conns.lookup_out(&turned) {
            let c = *self.conns.get(ci);
            let (vaddr, caddr) = (Ipv4Addr::from(c.vaddr), Ipv4Addr::from(c.caddr));
            let fnat = c.fwd() == Fwd::FullNat;
            let rewrite = (
                Some(vaddr),
                fnat.then_some(caddr),
                fnat.then_some((caddr, c.cport)),
                Some((vaddr, c.vport)),
            );
            return self.pass_icmp(frame, l3, Some(rewrite), caddr, cx);
        }
        Verdict::Pass(frame)
    }

    /// Forwards a translated ICMP error toward `to`. With `rewrite` (outer source and
    /// destination, quoted source and destination, as `xmit::rewrite_icmp` takes them)
    /// the packet is routed by rvs: TTL first, then the rewrite; without, it only has its
    /// MACs changed (DR).
    fn pass_icmp<F: Frame, I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        l3: usize,
        rewrite: Option<IcmpRewrite>,
        to: Ipv4Addr,
        cx: &mut Cx<'_, F, I>,
    ) -> Verdict<F> {
        if let Some((src, dst, q_src, q_dst)) = rewrite {
            if !self.ttl_ok(&mut frame, l3, cx) {
                return Verdict::Done;
            }
            if !xmit::rewrite_icmp(&mut frame.data_mut()[l3..], src, dst, q_src, q_dst) {
                cx.wstats.dropped(DropReason::IcmpMalformed);
                return Verdict::Done;
            }
        }
        self.stats.icmp_translated.inc();
        self.route_out(frame, to, cx);
        Verdict::Done
    }

    /// IPIP toward `daddr` and out, or the ICMP/drop the encapsulation calls for.
    fn encap_and_send<F: Frame, I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        l3: usize,
        daddr: Ipv4Addr,
        cx: &mut Cx<'_, F, I>,
    ) -> Verdict<F> {
        let Some(nh) = cx.snap.routes.lookup(daddr) else {
            cx.wstats.dropped(DropReason::NoRoute);
            return Verdict::Done;
        };
        let Some(src) = cx.snap.owned.source_for(nh.port, daddr) else {
            cx.wstats.dropped(DropReason::NoRoute);
            return Verdict::Done;
        };
        let mtu = cx.snap.ports.get(nh.port).map_or(1500, |p| p.mtu);
        self.ip_ident = self.ip_ident.wrapping_add(self.workers as u16);
        match xmit::ipip_encap(&mut frame, l3, src, daddr, mtu, self.ip_ident) {
            xmit::Encap::Done => cx.net.neigh.output(
                frame,
                nh.port,
                nh.next_hop,
                cx.now_ms,
                cx.snap,
                cx.io,
                cx.wstats,
            ),
            xmit::Encap::FragNeeded(m) => {
                self.send_icmp(&frame, l3, xmit::FRAG_NEEDED, u32::from(m), cx);
                cx.wstats.dropped(DropReason::FragNeeded);
            }
            xmit::Encap::Failed => cx.wstats.dropped(DropReason::TooBig),
        }
        Verdict::Done
    }

    /// Creates the connection for the first packet of a flow (and its persistence
    /// template), or says why not.
    fn schedule(
        &mut self,
        svc: &Service,
        p: &Pkt,
        snap: &Snapshot,
        now_s: u32,
    ) -> Result<u32, DropReason> {
        let slot = svc.slot as usize;
        let mut template = NIL;
        let mut chosen: Option<usize> = None;
        if let Some(pers) = svc.persistence {
            let masked = Ipv4Addr::from(u32::from(p.src) & u32::from(pers.netmask));
            let tkey = Key {
                proto: p.proto,
                saddr: masked.into(),
                sport: 0,
                daddr: p.dst.into(),
                dport: svc.port,
            };
            if let Some(ti) = self.conns.lookup_template(&tkey) {
                let t = *self.conns.get(ti);
                let d = self.dests[t.dest as usize];
                let quiescent = snap.ipvs.expire_quiescent_template && d.weight == 0;
                if d.present && !quiescent {
                    if let Some(i) = svc.dests.iter().position(|r| r.slot == t.dest) {
                        chosen = Some(i);
                        template = ti;
                        // Each use extends the template's life.
                        self.conns.set_expires(ti, now_s + pers.timeout);
                    }
                } else if t.n_control == 0 {
                    self.unbind_and_remove(ti);
                }
            }
            if chosen.is_none() {
                let i = self.pick(svc, p, now_s).ok_or(DropReason::NoDest)?;
                let rs = &svc.dests[i];
                let mut t = Conn::new(
                    p.proto,
                    masked,
                    0,
                    p.dst,
                    svc.port,
                    rs.addr,
                    if svc.port == 0 { 0 } else { rs.port },
                    rs.fwd,
                    rs.slot,
                );
                t.flags |= cf::TEMPLATE;
                t.flags &= !cf::INACTIVE;
                t.state = 0;
                t.expires = now_s + pers.timeout;
                template = self
                    .conns
                    .insert(t)
                    .map_err(|_| DropReason::ConnTableFull)?;
                self.dests[rs.slot as usize].persist += 1;
                self.publish_dest(rs.slot);
                chosen = Some(i);
            }
        }
        let i = match chosen {
            Some(i) => i,
            None => self.pick(svc, p, now_s).ok_or(DropReason::NoDest)?,
        };
        let rs = &svc.dests[i];
        let dport = if rs.port == 0 { p.dport } else { rs.port };
        let mut c = Conn::new(
            p.proto, p.src, p.sport, p.dst, p.dport, rs.addr, dport, rs.fwd, rs.slot,
        );
        if rs.fwd == Fwd::FullNat {
            let (laddr, lport) = self
                .alloc_local(svc, rs.addr, dport, p.proto)
                .ok_or(DropReason::NoLocalPort)?;
            c.laddr = laddr.into();
            c.lport = lport;
        }
        c.state = TcpState::None as u8;
        c.expires = now_s
            + if p.proto == protocol::TCP {
                self.timeouts.tcp(TcpState::None)
            } else {
                self.timeouts.udp
            };
        c.control = template;
        let ci = self
            .conns
            .insert(c)
            .map_err(|_| DropReason::ConnTableFull)?;
        if template != NIL {
            self.conns.get_mut(template).n_control += 1;
        }
        // ip_vs_bind_dest: a new connection counts as inactive; thresholds apply.
        let d = &mut self.dests[rs.slot as usize];
        d.inactive += 1;
        if d.u_threshold != 0 && d.total() >= d.u_threshold {
            d.overloaded = true;
        }
        self.publish_dest(rs.slot);
        self.stats.dests[rs.slot as usize].traffic.conns.inc();
        if slot < SVC_SLOTS {
            self.stats.services[slot].conns.inc();
        }
        Ok(ci)
    }

    fn pick(&mut self, svc: &Service, p: &Pkt, now_s: u32) -> Option<usize> {
        let rt = self.svcs.get_mut(svc.slot as usize)?.as_mut()?;
        self.loads.clear();
        for rs in &svc.dests {
            let d = &self.dests[rs.slot as usize];
            self.loads.push(DestLoad {
                id: rs.slot,
                weight: d.weight,
                active: d.active,
                inactive: d.inactive,
                overloaded: d.overloaded,
            });
        }
        let flow = Flow {
            saddr: p.src,
            sport: p.sport,
            daddr: p.dst,
            dport: p.dport,
        };
        rt.sched.pick(&self.loads, &flow, u64::from(now_s))
    }

    /// A local address and port for a FULLNAT connection: ports of this worker's share
    /// (port % workers == worker) so replies come back to it, unused for this real server.
    fn alloc_local(
        &mut self,
        svc: &Service,
        raddr: Ipv4Addr,
        rport: u16,
        proto: u8,
    ) -> Option<(Ipv4Addr, u16)> {
        if svc.local_addrs.is_empty() {
            return None;
        }
        let w = self.workers as u32;
        let share = (65536 - 1024) / w;
        for _ in 0..svc.local_addrs.len() {
            self.lip_cursor = (self.lip_cursor + 1) % svc.local_addrs.len();
            let laddr = svc.local_addrs[self.lip_cursor];
            for _ in 0..share.min(4096) {
                self.lport_cursor = (self.lport_cursor + 1) % share;
                let lport = (1024 + self.lport_cursor * w) as u16;
                let lport = lport - lport % w as u16 + self.worker as u16;
                if lport < 1024 {
                    continue;
                }
                let k = Key {
                    proto,
                    saddr: raddr.into(),
                    sport: rport,
                    daddr: laddr.into(),
                    dport: lport,
                };
                if self.conns.lookup_out(&k).is_none() {
                    return Some((laddr, lport));
                }
            }
        }
        None
    }

    fn inbound<F: Frame, I: Io<Frame = F>>(
        &mut self,
        ci: u32,
        mut frame: F,
        l3: usize,
        p: Pkt,
        now_s: u32,
        cx: &mut Cx<'_, F, I>,
    ) -> Verdict<F> {
        let c = *self.conns.get(ci);
        let d = self.dests[c.dest as usize];
        if !d.present && cx.snap.ipvs.expire_nodest_conn {
            self.unbind_and_remove(ci);
            cx.wstats.dropped(DropReason::NoDestConn);
            return Verdict::Done;
        }
        self.transition(ci, p, Dir::Input, now_s);
        let t = &self.stats.dests[c.dest as usize].traffic;
        t.inpkts.inc();
        t.inbytes.add(p.len);
        if let Some(s) = self.stats.services.get(d.svc as usize) {
            s.inpkts.inc();
            s.inbytes.add(p.len);
        }
        let (daddr, caddr) = (Ipv4Addr::from(c.daddr), Ipv4Addr::from(c.caddr));
        match c.fwd() {
            Fwd::Dr => {}
            Fwd::Nat | Fwd::FullNat => {
                if !self.ttl_ok(&mut frame, l3, cx) {
                    return Verdict::Done;
                }
                let src = (c.fwd() == Fwd::FullNat).then(|| (Ipv4Addr::from(c.laddr), c.lport));
                if !xmit::rewrite(&mut frame.data_mut()[l3..], src, Some((daddr, c.dport))) {
                    cx.wstats.dropped(DropReason::L4Malformed);
                    return Verdict::Done;
                }
                if c.fwd() == Fwd::FullNat
                    && p.proto == protocol::TCP
                    && self.wants_toa(&c, &p, cx.snap)
                {
                    let mtu = self.route_mtu(cx.snap, daddr);
                    if !xmit::insert_toa(&mut frame, l3, caddr, c.cport, mtu) {
                        // Forwarded without it: the options area or the MTU had no room.
                        self.stats.toa_skipped.inc();
                    }
                }
            }
            Fwd::Tun => return self.encap_and_send(frame, l3, daddr, cx),
        }
        self.route_out(frame, daddr, cx);
        Verdict::Done
    }

    fn outbound<F: Frame, I: Io<Frame = F>>(
        &mut self,
        ci: u32,
        mut frame: F,
        l3: usize,
        p: Pkt,
        now_s: u32,
        cx: &mut Cx<'_, F, I>,
    ) -> Verdict<F> {
        self.conns.get_mut(ci).flags &= !cf::NOOUTPUT;
        self.transition(ci, p, Dir::Output, now_s);
        let c = *self.conns.get(ci);
        let t = &self.stats.dests[c.dest as usize].traffic;
        t.outpkts.inc();
        t.outbytes.add(p.len);
        if let Some(s) = self
            .stats
            .services
            .get(self.dests[c.dest as usize].svc as usize)
        {
            s.outpkts.inc();
            s.outbytes.add(p.len);
        }
        if !self.ttl_ok(&mut frame, l3, cx) {
            return Verdict::Done;
        }
        let caddr = Ipv4Addr::from(c.caddr);
        let dst = (c.fwd() == Fwd::FullNat).then_some((caddr, c.cport));
        if !xmit::rewrite(
            &mut frame.data_mut()[l3..],
            Some((Ipv4Addr::from(c.vaddr), c.vport)),
            dst,
        ) {
            cx.wstats.dropped(DropReason::L4Malformed);
            return Verdict::Done;
        }
        self.route_out(frame, caddr, cx);
        Verdict::Done
    }

    /// TOA goes on the SYN and on the client's packets until the connection is
    /// established (the handshake-completing ACK is what the real server's toa module
    /// reads).
    fn wants_toa(&self, c: &Conn, p: &Pkt, snap: &Snapshot) -> bool {
        let svc = self
            .dests
            .get(c.dest as usize)
            .and_then(|d| snap.ipvs.by_slot(d.svc));
        svc.is_some_and(|s| s.toa)
            && (p.tcp_flags & tf::SYN != 0
                || TcpState::from_u8(c.state) == TcpState::Established
                    && p.tcp_flags & tf::ACK != 0
                    && c.flags & cf::NOOUTPUT == 0)
    }

    fn route_mtu(&self, snap: &Snapshot, dst: Ipv4Addr) -> u16 {
        snap.routes
            .lookup(dst)
            .and_then(|nh| snap.ports.get(nh.port))
            .map_or(1500, |p| p.mtu)
    }

    /// State transition and expiry for a packet of connection `ci` (set_tcp_state).
    #[inline]
    fn transition(&mut self, ci: u32, p: Pkt, dir: Dir, now_s: u32) {
        let c = *self.conns.get(ci);
        let (new, timeout) = if p.proto == protocol::TCP {
            let input_only = c.flags & cf::NOOUTPUT != 0;
            let n = state::tcp_next(TcpState::from_u8(c.state), p.tcp_flags, dir, input_only);
            (n as u8, self.timeouts.tcp(n))
        } else {
            (state::UDP_STATE, self.timeouts.udp)
        };
        if p.proto == protocol::TCP && new != c.state {
            let est = new == TcpState::Established as u8;
            let d = &mut self.dests[c.dest as usize];
            let e = self.conns.get_mut(ci);
            if e.flags & cf::INACTIVE == 0 && !est {
                d.active = d.active.saturating_sub(1);
                d.inactive += 1;
                e.flags |= cf::INACTIVE;
            } else if e.flags & cf::INACTIVE != 0 && est {
                d.inactive = d.inactive.saturating_sub(1);
                d.active += 1;
                e.flags &= !cf::INACTIVE;
            }
            self.publish_dest(c.dest);
        }
        self.conns.get_mut(ci).state = new;
        self.conns.set_expires(ci, now_s + timeout);
    }

    /// ip_vs_unbind_dest + removal: counters down, thresholds re-checked, template
    /// released.
    fn unbind_and_remove(&mut self, ci: u32) {
        let c = *self.conns.get(ci);
        if let Some(d) = self.dests.get_mut(c.dest as usize) {
            if c.is_template() {
                d.persist = d.persist.saturating_sub(1);
            } else if c.flags & cf::INACTIVE != 0 {
                d.inactive = d.inactive.saturating_sub(1);
            } else {
                d.active = d.active.saturating_sub(1);
            }
            update_overload(d);
            self.publish_dest(c.dest);
        }
        if c.control != NIL {
            let t = self.conns.get_mut(c.control);
            t.n_control = t.n_control.saturating_sub(1);
        }
        self.conns.remove(ci);
        self.stats.conns.reset();
        self.stats.conns.add(self.conns.len() as u64);
    }

    fn publish_dest(&self, slot: u32) {
        if let (Some(d), Some(s)) = (
            self.dests.get(slot as usize),
            self.stats.dests.get(slot as usize),
        ) {
            s.active.reset();
            s.active.add(u64::from(d.active));
            s.inactive.reset();
            s.inactive.add(u64::from(d.inactive));
            s.persist.reset();
            s.persist.add(u64::from(d.persist));
        }
        self.stats.conns.reset();
        self.stats.conns.add(self.conns.len() as u64);
    }

    /// Decrements the TTL of a packet rvs routes; at 1 it answers time-exceeded instead.
    fn ttl_ok<F: Frame, I: Io<Frame = F>>(
        &mut self,
        frame: &mut F,
        l3: usize,
        cx: &mut Cx<'_, F, I>,
    ) -> bool {
        let Some(Ok(mut ip)) = frame.data_mut().get_mut(l3..).map(Ipv4Packet::new_checked) else {
            return false;
        };
        if ip.ttl() <= 1 {
            self.send_icmp(frame, l3, xmit::TIME_EXCEEDED, 0, cx);
            cx.wstats.dropped(DropReason::TtlExceeded);
            return false;
        }
        ip.decrement_ttl();
        true
    }

    fn send_icmp<F: Frame, I: Io<Frame = F>>(
        &mut self,
        about: &F,
        l3: usize,
        (kind, code): (u8, u8),
        info: u32,
        cx: &mut Cx<'_, F, I>,
    ) {
        let Some(orig) = about.data().get(l3..) else {
            return;
        };
        let Ok(oip) = Ipv4Packet::new_checked(orig) else {
            return;
        };
        let Some(nh) = cx.snap.routes.lookup(oip.src()) else {
            return;
        };
        let Some(src) = cx.snap.owned.source_for(nh.port, oip.src()) else {
            return;
        };
        let Some(mut f) = cx.io.alloc() else {
            cx.wstats.dropped(DropReason::AllocFailed);
            return;
        };
        if xmit::icmp_error(&mut f, orig, src, kind, code, info).is_some() {
            cx.net.neigh.output(
                f,
                nh.port,
                nh.next_hop,
                cx.now_ms,
                cx.snap,
                cx.io,
                cx.wstats,
            );
        }
    }

    fn route_out<F: Frame, I: Io<Frame = F>>(
        &self,
        frame: F,
        dst: Ipv4Addr,
        cx: &mut Cx<'_, F, I>,
    ) {
        match cx.snap.routes.lookup(dst) {
            Some(nh) => cx.net.neigh.output(
                frame,
                nh.port,
                nh.next_hop,
                cx.now_ms,
                cx.snap,
                cx.io,
                cx.wstats,
            ),
            None => cx.wstats.dropped(DropReason::NoRoute),
        }
    }

    /// Every connection and template of this worker, for `ipvsadm -L -c`.
    pub fn dump(&self, now_ms: u64) -> Vec<crate::worker::ConnDump> {
        let now_s = (now_ms / 1000) as u32;
        self.conns
            .iter()
            .map(|(_, c)| crate::worker::ConnDump {
                proto: c.proto,
                caddr: c.caddr.into(),
                cport: c.cport,
                vaddr: c.vaddr.into(),
                vport: c.vport,
                daddr: c.daddr.into(),
                dport: c.dport,
                state: if c.proto == protocol::UDP {
                    "UDP"
                } else {
                    TcpState::from_u8(c.state).name()
                },
                expires_in: c.expires.saturating_sub(now_s),
            })
            .collect()
    }

    /// Number of connections per real-server slot of this worker (for tests and lists).
    pub fn dest_counts(&self, slot: u32) -> (u32, u32, u32) {
        self.dests
            .get(slot as usize)
            .map_or((0, 0, 0), |d| (d.active, d.inactive, d.persist))
    }
}

fn update_overload(d: &mut DestRt) {
    // ip_vs_unbind_dest's rules for leaving the overloaded state.
    if d.l_threshold != 0 {
        if d.total() < d.l_threshold {
            d.overloaded = false;
        }
    } else if d.u_threshold != 0 {
        if d.total() * 4 < d.u_threshold * 3 {
            d.overloaded = false;
        }
    } else {
        d.overloaded = false;
    }
}

fn loads_of(svc: &Service, dests: &[DestRt]) -> Vec<DestLoad> {
    svc.dests
        .iter()
        .map(|rs| {
            let d = &dests[rs.slot as usize];
            DestLoad {
                id: rs.slot,
                weight: d.weight,
                active: d.active,
                inactive: d.inactive,
                overloaded: d.overloaded,
            }
        })
        .collect()
}
