//! The neighbour (ARP) table of one worker.
//!
//! Each worker owns its table; what one worker learns from an ARP packet is passed to the
//! others as a message (see `worker`), like DPVS's per-lcore neighbour tables. States
//! follow Linux's neighbour subsystem in a reduced form:
//! - `Permanent`: from config (`ip neigh add ... nud permanent`), never probed or expired.
//! - `Incomplete`: an ARP request is out; up to `queue_len` packets wait for the answer;
//!   requests are retried every `retrans_ms` up to `max_probes` times, then the waiting
//!   packets are dropped (`neigh_failed`) and the entry is forgotten.
//! - `Reachable`: a confirmed MAC. After `reachable_ms` without confirmation it is still
//!   used but refreshed with a request per `retrans_ms`; if `max_probes` refreshes go
//!   unanswered the entry is forgotten and the next packet resolves afresh.

use super::Cx;
use crate::frame::{Frame, Io};
use crate::packet::{arp, ethernet, MacAddr};
use crate::stats::DropReason;
use arrayvec::ArrayVec;
use std::net::Ipv4Addr;

/// Packets that may wait for one resolution (Linux's default `unres_qlen_bytes` is about
/// this many full-size frames).
pub const QUEUE_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighParams {
    pub retrans_ms: u64,
    pub max_probes: u8,
    pub reachable_ms: u64,
    pub max_entries: usize,
}

impl Default for NeighParams {
    fn default() -> Self {
        // Linux defaults: retrans_time 1 s, ucast/mcast probes 3; reachable_time is 30 s
        // randomised, but its gc keeps stale entries far longer: 300 s is closer to what a
        // user sees with `ip neigh`.
        NeighParams {
            retrans_ms: 1000,
            max_probes: 3,
            reachable_ms: 300_000,
            max_entries: 16384,
        }
    }
}

enum State<F> {
    Permanent {
        mac: MacAddr,
    },
    Incomplete {
        probes: u8,
        next_probe: u64,
        queue: ArrayVec<F, QUEUE_LEN>,
    },
    Reachable {
        mac: MacAddr,
        confirmed: u64,
        probes: u8,
        next_probe: u64,
    },
}

struct Entry<F> {
    port: usize,
    state: State<F>,
}

/// A view of one entry for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighView {
    pub ip: Ipv4Addr,
    pub port: usize,
    pub mac: Option<MacAddr>,
    pub state: &'static str,
}

/// What the table needs to know about ports to write headers and ARP requests.
pub trait PortAddrs {
    fn mac(&self, port: usize) -> Option<MacAddr>;
    fn source_ip(&self, port: usize, dst: Ipv4Addr) -> Option<Ipv4Addr>;
}

/// A resolved neighbour in the direct-mapped cache in front of the map.
#[derive(Clone, Copy, Default)]
struct Fast {
    ip: u32,
    port: u32,
    /// Destination and source MAC as they go on the wire: the next hop's, then the
    /// port's own.
    macs: [u8; 12],
    /// Valid while `now` is below this (0: empty).
    until: u64,
}

const FAST_SLOTS: usize = 64;

pub struct NeighTable<F> {
    map: ahash::AHashMap<Ipv4Addr, Entry<F>>,
    params: NeighParams,
    /// Every forwarded packet needs its next hop's MAC; for the few next hops a director
    /// talks to, this cache answers without hashing. Any change to the map clears it.
    fast: [Fast; FAST_SLOTS],
}

#[inline]
fn fast_slot(ip: Ipv4Addr) -> usize {
    (u32::from(ip).wrapping_mul(0x9e37_79b1) >> 26) as usize
}

impl<F: Frame> NeighTable<F> {
    pub fn new(params: NeighParams) -> Self {
        NeighTable {
            map: ahash::AHashMap::with_capacity(64),
            params,
            fast: [Fast::default(); FAST_SLOTS],
        }
    }

    pub fn params(&self) -> NeighParams {
        self.params
    }

    /// Empties the cache in front of the map; every change to the map calls it.
    fn clear_fast(&mut self) {
        self.fast = [Fast::default(); FAST_SLOTS];
    }

    pub fn set_params(&mut self, params: NeighParams) {
        self.clear_fast();
        self.params = params;
    }

    /// Installs (or replaces) a permanent entry, flushing anything that waited for it.
    pub fn add_permanent<I: Io<Frame = F>>(
        &mut self,
        ip: Ipv4Addr,
        mac: MacAddr,
        port: usize,
        cx: &mut Cx<'_, I>,
    ) {
        self.clear_fast();
        let old = self.map.insert(
            ip,
            Entry {
                port,
                state: State::Permanent { mac },
            },
        );
        if let Some(Entry {
            state: State::Incomplete { queue, .. },
            ..
        }) = old
        {
            flush(queue, mac, port, cx);
        }
    }

    /// Removes permanent entries that are not in `keep` (after a config change).
    pub fn retain_permanent(&mut self, keep: impl Fn(Ipv4Addr) -> bool) {
        self.clear_fast();
        self.map
            .retain(|ip, e| !matches!(e.state, State::Permanent { .. }) || keep(*ip));
    }

    /// Sends `frame` (an IPv4 packet behind a 14-byte Ethernet header whose MACs are
    /// filled in here) to `next_hop` on `port`, resolving it first when needed. A frame
    /// that waits for resolution counts as sent; one that cannot be is the error.
    #[inline]
    pub fn output<I: Io<Frame = F>>(
        &mut self,
        frame: F,
        port: usize,
        next_hop: Ipv4Addr,
        cx: &mut Cx<'_, I>,
    ) -> Result<(), DropReason> {
        let f = &self.fast[fast_slot(next_hop)];
        if f.ip == u32::from(next_hop) && f.port == port as u32 && cx.now_ms < f.until {
            return send_with(frame, &f.macs, port, cx);
        }
        self.output_slow(frame, port, next_hop, cx)
    }

    /// `output` past the per-worker cache: kept out of line so that the hash-map probe
    /// it prepares is not paid by every cached send.
    #[inline(never)]
    fn output_slow<I: Io<Frame = F>>(
        &mut self,
        frame: F,
        port: usize,
        next_hop: Ipv4Addr,
        cx: &mut Cx<'_, I>,
    ) -> Result<(), DropReason> {
        let (p, now) = (self.params, cx.now_ms);
        match self.map.get_mut(&next_hop) {
            Some(Entry {
                state: State::Permanent { mac },
                port: eport,
            }) if *eport == port => {
                let mac = *mac;
                if let Some(src) = cx.cfg.mac(port) {
                    self.fast[fast_slot(next_hop)] = Fast {
                        ip: next_hop.into(),
                        port: port as u32,
                        macs: macs(mac, src),
                        until: u64::MAX,
                    };
                }
                send(frame, mac, port, cx)
            }
            Some(Entry {
                state:
                    State::Reachable {
                        mac,
                        confirmed,
                        probes,
                        next_probe,
                    },
                port: eport,
            }) if *eport == port => {
                let mac = *mac;
                let fresh_until = confirmed.saturating_add(p.reachable_ms);
                match cx.cfg.mac(port) {
                    // Until it goes stale, the cache may answer for it.
                    Some(src) if now < fresh_until => {
                        self.fast[fast_slot(next_hop)] = Fast {
                            ip: next_hop.into(),
                            port: port as u32,
                            macs: macs(mac, src),
                            until: fresh_until,
                        };
                    }
                    _ => {}
                }
                if now.saturating_sub(*confirmed) >= p.reachable_ms && now >= *next_probe {
                    if *probes >= p.max_probes {
                        // Unanswered refreshes: forget it and resolve from scratch.
                        self.clear_fast();
                        self.map.remove(&next_hop);
                        return self.output_slow(frame, port, next_hop, cx);
                    }
                    *probes += 1;
                    *next_probe = now + p.retrans_ms;
                    send_request(next_hop, port, cx);
                }
                send(frame, mac, port, cx)
            }
            Some(Entry {
                state: State::Incomplete { queue, .. },
                port: eport,
            }) if *eport == port => {
                if queue.is_full() {
                    // Keep the newest packets, as Linux does: the oldest one is dropped.
                    queue.remove(0);
                    cx.stats.dropped(DropReason::NeighQueueFull);
                }
                queue.push(frame);
                Ok(())
            }
            _ => {
                // Unknown, or known on another port: resolve on this one.
                if !self.map.contains_key(&next_hop) && self.map.len() >= p.max_entries {
                    return Err(DropReason::NeighTableFull);
                }
                let mut queue: ArrayVec<F, QUEUE_LEN> = ArrayVec::new();
                queue.push(frame);
                self.map.insert(
                    next_hop,
                    Entry {
                        port,
                        state: State::Incomplete {
                            probes: 1,
                            next_probe: now + p.retrans_ms,
                            queue,
                        },
                    },
                );
                send_request(next_hop, port, cx);
                Ok(())
            }
        }
    }

    /// Records `ip is-at mac` on `port`. With `create` false only an existing entry is
    /// updated (unsolicited ARP for an address we never asked about is ignored, as Linux
    /// does without arp_accept). Returns true when the table changed, so that the caller
    /// can tell the other workers.
    pub fn learn<I: Io<Frame = F>>(
        &mut self,
        ip: Ipv4Addr,
        mac: MacAddr,
        port: usize,
        create: bool,
        cx: &mut Cx<'_, I>,
    ) -> bool {
        let now = cx.now_ms;
        if ip.is_unspecified() || mac.is_multicast() || mac == MacAddr::ZERO {
            return false;
        }
        // A confirmation or a new MAC: the cache refills from the map on the next packet.
        self.clear_fast();
        let reachable = State::Reachable {
            mac,
            confirmed: now,
            probes: 0,
            next_probe: 0,
        };
        match self.map.get_mut(&ip) {
            Some(Entry {
                state: State::Permanent { .. },
                ..
            }) => false,
            Some(e) => {
                let changed = !matches!(e.state, State::Reachable { mac: m, .. } if m == mac)
                    || e.port != port;
                let old = std::mem::replace(
                    e,
                    Entry {
                        port,
                        state: reachable,
                    },
                );
                if let State::Incomplete { queue, .. } = old.state {
                    flush(queue, mac, port, cx);
                }
                changed
            }
            None if create => {
                if self.map.len() >= self.params.max_entries {
                    cx.stats.dropped(DropReason::NeighTableFull);
                    return false;
                }
                self.map.insert(
                    ip,
                    Entry {
                        port,
                        state: reachable,
                    },
                );
                true
            }
            None => false,
        }
    }

    /// Retries outstanding requests and gives up on the ones that ran out of probes.
    /// Called by the worker a few times per second, not per packet.
    pub fn tick<I: Io<Frame = F>>(&mut self, cx: &mut Cx<'_, I>) {
        let (p, now) = (self.params, cx.now_ms);
        let mut failed: ArrayVec<Ipv4Addr, 32> = ArrayVec::new();
        for (ip, e) in self.map.iter_mut() {
            if let State::Incomplete {
                probes, next_probe, ..
            } = &mut e.state
            {
                if now < *next_probe {
                    continue;
                }
                if *probes >= p.max_probes {
                    if failed.try_push(*ip).is_err() {
                        break; // the rest fail on the next tick
                    }
                } else {
                    *probes += 1;
                    *next_probe = now + p.retrans_ms;
                    send_request(*ip, e.port, cx);
                }
            }
        }
        for ip in failed {
            if let Some(Entry {
                state: State::Incomplete { queue, .. },
                ..
            }) = self.map.remove(&ip)
            {
                for _ in 0..queue.len() {
                    cx.stats.dropped(DropReason::NeighFailed);
                }
            }
        }
    }

    pub fn lookup(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        match self.map.get(&ip)?.state {
            State::Permanent { mac } | State::Reachable { mac, .. } => Some(mac),
            State::Incomplete { .. } => None,
        }
    }

    pub fn entries(&self, now: u64) -> Vec<NeighView> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(ip, e)| {
                let (mac, state) = match &e.state {
                    State::Permanent { mac } => (Some(*mac), "PERMANENT"),
                    State::Incomplete { .. } => (None, "INCOMPLETE"),
                    State::Reachable { mac, confirmed, .. } => {
                        let stale = now.saturating_sub(*confirmed) >= self.params.reachable_ms;
                        (Some(*mac), if stale { "STALE" } else { "REACHABLE" })
                    }
                };
                NeighView {
                    ip: *ip,
                    port: e.port,
                    mac,
                    state,
                }
            })
            .collect();
        v.sort_by_key(|n| n.ip);
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Sends the packets that waited for `mac`; each one that cannot leave is counted.
fn flush<F: Frame, I: Io<Frame = F>>(
    queue: ArrayVec<F, QUEUE_LEN>,
    mac: MacAddr,
    port: usize,
    cx: &mut Cx<'_, I>,
) {
    for f in queue {
        if let Err(r) = send(f, mac, port, cx) {
            cx.stats.dropped(r);
        }
    }
}

/// Writes both MACs of an already-built Ethernet header and queues the frame.
#[inline]
fn send<F: Frame, I: Io<Frame = F>>(
    frame: F,
    dst: MacAddr,
    port: usize,
    cx: &mut Cx<'_, I>,
) -> Result<(), DropReason> {
    let src = cx.cfg.mac(port).ok_or(DropReason::NoRoute)?;
    send_with(frame, &macs(dst, src), port, cx)
}

/// Both MACs as the first 12 bytes of an Ethernet header.
#[inline]
fn macs(dst: MacAddr, src: MacAddr) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[..6].copy_from_slice(&dst.0);
    m[6..].copy_from_slice(&src.0);
    m
}

/// Writes the MACs over the frame's Ethernet header and queues it.
#[inline]
fn send_with<F: Frame, I: Io<Frame = F>>(
    mut frame: F,
    macs: &[u8; 12],
    port: usize,
    cx: &mut Cx<'_, I>,
) -> Result<(), DropReason> {
    let hdr = frame
        .data_mut()
        .get_mut(..ethernet::EthernetFrame::<&[u8]>::HEADER_LEN)
        .ok_or(DropReason::L2Truncated)?;
    hdr[..12].copy_from_slice(macs);
    cx.io.send(port, frame);
    Ok(())
}

/// Broadcasts `who-has ip` on `port`. Best effort: a request that cannot be built is
/// counted, and the next retry tries again.
pub fn send_request<F: Frame, I: Io<Frame = F>>(ip: Ipv4Addr, port: usize, cx: &mut Cx<'_, I>) {
    let (Some(mac), Some(sip)) = (cx.cfg.mac(port), cx.cfg.source_ip(port, ip)) else {
        cx.stats.dropped(DropReason::NoRoute);
        return;
    };
    let req = ArpMsg {
        op: arp::OP_REQUEST,
        eth_dst: MacAddr::BROADCAST,
        sender: (mac, sip),
        target: (MacAddr::ZERO, ip),
    };
    if emit_arp(&req, port, cx) {
        cx.stats.arp_requests.inc();
    }
}

/// An ARP message rvs originates.
#[derive(Debug, Clone, Copy)]
pub struct ArpMsg {
    pub op: u16,
    pub eth_dst: MacAddr,
    pub sender: (MacAddr, Ipv4Addr),
    pub target: (MacAddr, Ipv4Addr),
}

/// Builds a minimum-size (60-byte) Ethernet/ARP frame in a new buffer and queues it.
pub fn emit_arp<F: Frame, I: Io<Frame = F>>(m: &ArpMsg, port: usize, cx: &mut Cx<'_, I>) -> bool {
    let Some(mut f) = cx.io.alloc() else {
        cx.stats.dropped(DropReason::AllocFailed);
        return false;
    };
    if !f.set_len(60) {
        cx.stats.dropped(DropReason::AllocFailed);
        return false;
    }
    let b = f.data_mut();
    b.fill(0);
    let eth = ethernet::EthernetFrame::<&[u8]>::HEADER_LEN;
    let ok = ethernet::emit_header(b, m.eth_dst, m.sender.0, ethernet::ethertype::ARP).is_ok()
        && arp::emit(
            &mut b[eth..],
            m.op,
            m.sender.0,
            m.sender.1,
            m.target.0,
            m.target.1,
        )
        .is_ok();
    if ok {
        cx.io.send(port, f);
    }
    ok
}
