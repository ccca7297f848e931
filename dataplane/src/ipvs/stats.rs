//! Per-worker IPVS counters, indexed by service and real-server slot, published to the
//! control plane (each written by its worker only).

use super::service::{DEST_SLOTS, SVC_SLOTS};
use super::state::Dir;
use crate::stats::Counter;

/// Traffic of one service or real server.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Connections scheduled.
    pub conns: Counter,
    pub inpkts: Counter,
    pub outpkts: Counter,
    pub inbytes: Counter,
    pub outbytes: Counter,
}

impl Traffic {
    #[inline(always)]
    fn count(&self, dir: Dir, bytes: u64) {
        let (pkts, octets) = match dir {
            Dir::Input => (&self.inpkts, &self.inbytes),
            Dir::Output => (&self.outpkts, &self.outbytes),
        };
        pkts.inc();
        octets.add(bytes);
    }
}

#[derive(Debug, Default)]
pub struct DestCounters {
    pub traffic: Traffic,
    pub active: Counter,
    pub inactive: Counter,
    /// Persistence templates pointing at this real server.
    pub persist: Counter,
}

#[derive(Debug)]
pub struct IpvsStats {
    pub dests: Box<[DestCounters]>,
    pub services: Box<[Traffic]>,
    /// Connections (and templates) in this worker's table.
    pub conns: Counter,
    /// Packets passed to the owning worker / received from other workers.
    pub redirected_out: Counter,
    pub redirected_in: Counter,
    /// FULLNAT packets forwarded without TOA for lack of room.
    pub toa_skipped: Counter,
    /// ICMP errors about tracked connections translated and forwarded.
    pub icmp_translated: Counter,
    /// Connections handed to the sync sender, or dropped because its ring was full.
    pub sync_handed: Counter,
    pub sync_dropped: Counter,
    /// Connections a MASTER synced, installed here.
    pub sync_installed: Counter,
    /// Synced connections refused: no such service or real server here, a bad state,
    /// or a full table.
    pub sync_refused: Counter,
}

impl IpvsStats {
    /// A packet of real server `dest` of service `svc`: toward it (Input) or a reply
    /// from it (Output).
    #[inline]
    pub fn count(&self, dir: Dir, dest: usize, svc: usize, bytes: u64) {
        if let Some(d) = self.dests.get(dest) {
            d.traffic.count(dir, bytes);
        }
        if let Some(s) = self.services.get(svc) {
            s.count(dir, bytes);
        }
    }
}

impl Default for IpvsStats {
    fn default() -> Self {
        IpvsStats {
            dests: (0..DEST_SLOTS).map(|_| DestCounters::default()).collect(),
            services: (0..SVC_SLOTS).map(|_| Traffic::default()).collect(),
            conns: Counter::default(),
            redirected_out: Counter::default(),
            redirected_in: Counter::default(),
            toa_skipped: Counter::default(),
            icmp_translated: Counter::default(),
            sync_handed: Counter::default(),
            sync_dropped: Counter::default(),
            sync_installed: Counter::default(),
            sync_refused: Counter::default(),
        }
    }
}
