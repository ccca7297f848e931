//! IP fragments: a datagram's later fragments carry no ports, so they follow the
//! connection of its first fragment, remembered here by <src, dst, IP id, proto>, with
//! only their addresses rewritten. Untracked ones are dropped.

use super::conn::{self, Fwd, Key};
use super::engine::{ours, Cx, IpvsWorker, Outcome, Verdict};
use super::rewrite;
use super::state::Dir;
use crate::frame::{Frame, Io};
use crate::packet::IpHdr;
use crate::stats::DropReason;
use std::net::Ipv4Addr;

/// Fragments of one datagram are followed this long (Linux's ipfrag_time).
const FRAG_TIMEOUT_MS: u64 = 30_000;
const FRAG_TABLE_MAX: usize = 65536;

/// <src, dst, IP id, proto> of a fragmented datagram.
type FragKey = (u32, u32, u16, u8);

fn key_of(h: &IpHdr) -> FragKey {
    (h.src.into(), h.dst.into(), h.ident, h.proto)
}

/// The connection a datagram's first fragment belonged to, its key (to detect reuse of
/// the slot), the direction, and when to forget it.
#[derive(Debug, Clone, Copy)]
struct FragEntry {
    conn: u32,
    key: Key,
    dir: Dir,
    expires_ms: u64,
}

/// Fragmented datagrams in flight.
#[derive(Default)]
pub(super) struct Frags {
    map: ahash::AHashMap<FragKey, FragEntry>,
}

impl Frags {
    pub fn expire(&mut self, now_ms: u64) {
        if !self.map.is_empty() {
            self.map.retain(|_, f| f.expires_ms > now_ms);
        }
    }
}

impl IpvsWorker {
    /// Remembers the connection of a first fragment for the fragments that follow it.
    #[inline]
    pub(super) fn track_fragment(&mut self, h: &IpHdr, conn: u32, dir: Dir, now_ms: u64) {
        if h.is_fragment() {
            self.track_fragment_slow(h, conn, dir, now_ms);
        }
    }

    #[inline(never)]
    fn track_fragment_slow(&mut self, h: &IpHdr, conn: u32, dir: Dir, now_ms: u64) {
        let k = key_of(h);
        let map = &mut self.frags.map;
        if map.len() < FRAG_TABLE_MAX || map.contains_key(&k) {
            map.insert(
                k,
                FragEntry {
                    conn,
                    key: self.conns.get(conn).in_key(),
                    dir,
                    expires_ms: now_ms + FRAG_TIMEOUT_MS,
                },
            );
        }
    }

    /// A fragment after the first: it follows the connection of its datagram's first
    /// fragment, with only the addresses rewritten.
    pub(super) fn later_fragment<F: Frame, I: Io<Frame = F>>(
        &mut self,
        mut frame: F,
        h: &IpHdr,
        cx: &mut Cx<'_, F, I>,
    ) -> Outcome<F> {
        let fk = key_of(h);
        let now_ms = cx.net.now_ms;
        let entry = self.frags.map.get(&fk).copied().filter(|e| {
            e.expires_ms > now_ms && {
                let c = self.conns.get(e.conn);
                c.state != conn::STATE_FREE && !c.is_template() && c.in_key() == e.key
            }
        });
        if h.is_last_fragment() {
            self.frags.map.remove(&fk);
        }
        let Some(e) = entry else {
            if ours(cx.ipvs, h) || cx.net.cfg.owned.get(h.dst).is_none() {
                return Err(DropReason::FragUntracked);
            }
            return Ok(Verdict::Pass(frame));
        };
        let c = *self.conns.get(e.conn);
        let (daddr, caddr) = (Ipv4Addr::from(c.daddr), Ipv4Addr::from(c.caddr));
        let traffic = &self.stats.dests[c.dest as usize].traffic;
        let len = u64::from(h.len);
        let to = match e.dir {
            Dir::Input => {
                traffic.inpkts.inc();
                traffic.inbytes.add(len);
                match c.fwd() {
                    Fwd::Dr => daddr,
                    Fwd::Tun => return self.tunnel(frame, h, c.dest, daddr, cx),
                    Fwd::Nat | Fwd::FullNat => {
                        self.ttl(&mut frame, h, cx)?;
                        let src = (c.fwd() == Fwd::FullNat).then(|| Ipv4Addr::from(c.laddr));
                        rewrite::ip(frame.data_mut(), h, src, Some(daddr));
                        daddr
                    }
                }
            }
            Dir::Output => {
                traffic.outpkts.inc();
                traffic.outbytes.add(len);
                self.ttl(&mut frame, h, cx)?;
                let dst = (c.fwd() == Fwd::FullNat).then_some(caddr);
                rewrite::ip(frame.data_mut(), h, Some(Ipv4Addr::from(c.vaddr)), dst);
                caddr
            }
        };
        cx.route_out(frame, to)?;
        Ok(Verdict::Done)
    }
}
