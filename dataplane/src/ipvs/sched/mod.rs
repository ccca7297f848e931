//! IPVS schedulers with the kernel's semantics (net/netfilter/ipvs/ip_vs_*.c).
//!
//! A scheduler picks one real server of a service for a new connection. Everything here
//! works on `DestLoad`, the view one worker has of each real server (weight, its own
//! active/inactive connection counts, overloaded flag), and returns an index into the
//! service's real servers. Each worker owns a `Scheduler` per service (rr position, wrr
//! weights, lblc cache, twos RNG); tables that are costly to build (Maglev, sh/dh buckets)
//! are built once per configuration by the control plane and shared read-only.

mod hashing;
mod lblc;
mod maglev;

pub use hashing::{dh_table, sh_table, BucketTable};
pub use lblc::{LblcState, LblcrState};
pub use maglev::MaglevTable;

use std::net::Ipv4Addr;
use std::sync::Arc;

/// The scheduling algorithms, by their ipvsadm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Mh,
    Fo,
    Ovf,
    Twos,
}

impl SchedKind {
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Mh,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Twos,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Dh => "dh",
            SchedKind::Sh => "sh",
            SchedKind::Mh => "mh",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Twos => "twos",
        }
    }
    pub fn from_name(s: &str) -> Option<SchedKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl std::fmt::Display for SchedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Scheduler flags (`ipvsadm -b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags {
    pub sh_fallback: bool,
    pub sh_port: bool,
    pub mh_fallback: bool,
    pub mh_port: bool,
}

impl SchedFlags {
    pub fn parse(name: &str) -> Option<SchedFlags> {
        let mut f = SchedFlags::default();
        match name {
            "sh-fallback" => f.sh_fallback = true,
            "sh-port" => f.sh_port = true,
            "mh-fallback" => f.mh_fallback = true,
            "mh-port" => f.mh_port = true,
            _ => return None,
        }
        Some(f)
    }
    pub fn union(self, o: SchedFlags) -> SchedFlags {
        SchedFlags {
            sh_fallback: self.sh_fallback || o.sh_fallback,
            sh_port: self.sh_port || o.sh_port,
            mh_fallback: self.mh_fallback || o.mh_fallback,
            mh_port: self.mh_port || o.mh_port,
        }
    }
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.sh_fallback {
            v.push("sh-fallback");
        }
        if self.sh_port {
            v.push("sh-port");
        }
        if self.mh_fallback {
            v.push("mh-fallback");
        }
        if self.mh_port {
            v.push("mh-port");
        }
        v
    }
}

/// One worker's view of one real server at scheduling time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestLoad {
    /// Stable identity of the real server (assigned by the control plane).
    pub id: u32,
    pub weight: u32,
    pub active: u32,
    pub inactive: u32,
    /// Over its upper connection threshold (`-x`).
    pub overloaded: bool,
}

impl DestLoad {
    /// Usable for new connections: weight > 0 and not overloaded.
    #[inline]
    pub fn available(&self) -> bool {
        self.weight > 0 && !self.overloaded
    }
    /// The kernel's `ip_vs_dest_conn_overhead`: active connections weigh 256 inactive ones.
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }
}

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub saddr: Ipv4Addr,
    pub sport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
}

/// What the table builders know of a real server: its endpoint and weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerKey {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
}

/// The tables a service's scheduler needs, built once per configuration.
#[derive(Debug, Clone, Default)]
pub enum SchedTables {
    #[default]
    None,
    Buckets(Arc<BucketTable>),
    Maglev(Arc<MaglevTable>),
}

impl SchedTables {
    /// Builds what `kind` needs for these real servers (in service order).
    pub fn build(kind: SchedKind, dests: &[ServerKey]) -> SchedTables {
        match kind {
            SchedKind::Sh => SchedTables::Buckets(Arc::new(sh_table(dests))),
            SchedKind::Dh => SchedTables::Buckets(Arc::new(dh_table(dests))),
            SchedKind::Mh => {
                SchedTables::Maglev(Arc::new(MaglevTable::build(dests, maglev::DEFAULT_SIZE)))
            }
            _ => SchedTables::None,
        }
    }
}

/// One worker's scheduler of one service.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub kind: SchedKind,
    pub flags: SchedFlags,
    tables: SchedTables,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    None,
    /// rr: index and id of the last pick (None: before the first, or the list head).
    Rr(Option<(usize, u32)>),
    /// wrr: the kernel's mark: current list position (None = list head), current
    /// weight, max weight, gcd step.
    Wrr {
        cl: Option<usize>,
        cw: i64,
        mw: i64,
        di: i64,
    },
    Lblc(LblcState),
    Lblcr(LblcrState),
    Twos(u64),
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The greatest common divisor of the positive weights; 0 when there are none (as the
/// kernel's ip_vs_wrr_gcd_weight and ip_vs_mh_gcd_weight compute it).
pub(crate) fn weight_gcd(weights: impl Iterator<Item = u32>) -> u32 {
    weights
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g == 0 { w } else { gcd(w, g) })
}

impl Scheduler {
    /// A fresh scheduler for `dests`. `seed` differentiates workers' random choices (twos).
    pub fn new(
        kind: SchedKind,
        flags: SchedFlags,
        tables: SchedTables,
        dests: &[DestLoad],
        seed: u64,
    ) -> Scheduler {
        let state = match kind {
            SchedKind::Rr => State::Rr(None),
            SchedKind::Wrr => {
                let (di, mw) = wrr_params(dests);
                State::Wrr {
                    cl: None,
                    cw: mw,
                    mw,
                    di,
                }
            }
            SchedKind::Lblc => State::Lblc(LblcState::default()),
            SchedKind::Lblcr => State::Lblcr(LblcrState::default()),
            SchedKind::Twos => State::Twos(seed | 1),
            _ => State::None,
        };
        Scheduler {
            kind,
            flags,
            tables,
            state,
        }
    }

    /// Keeps the state that survives a change of the real servers (the kernel's
    /// `upd_dest`/`add_dest` hooks): rr position, the wrr mark, lblc caches.
    pub fn update(&mut self, tables: SchedTables, dests: &[DestLoad]) {
        self.tables = tables;
        match &mut self.state {
            State::Rr(last) => {
                if let Some((i, id)) = *last {
                    *last = match dests.iter().position(|d| d.id == id) {
                        Some(ni) => Some((ni, id)),
                        // ip_vs_rr_del_dest: the place steps back to the removed
                        // server's predecessor (those before it keep their order), or
                        // to the list head; the next pick is the server after it.
                        None => i
                            .checked_sub(1)
                            .and_then(|p| dests.get(p))
                            .map(|d| (i - 1, d.id)),
                    };
                }
            }
            State::Wrr { cl, cw, mw, di } => {
                // ip_vs_wrr_dest_changed
                let (ndi, nmw) = wrr_params(dests);
                *cl = None;
                *di = ndi;
                *mw = nmw;
                if *cw > *mw || *cw == 0 {
                    *cw = *mw;
                } else if *di > 1 {
                    *cw = (*cw / *di) * *di + 1;
                }
            }
            _ => {}
        }
    }

    /// Picks a real server for a new connection, or None when none is available.
    pub fn pick(&mut self, dests: &[DestLoad], flow: &Flow, now_s: u64) -> Option<usize> {
        match self.kind {
            SchedKind::Rr => {
                let State::Rr(last) = &mut self.state else {
                    return None;
                };
                let n = dests.len();
                let start = last.map_or(0, |(l, _)| l + 1);
                let pick = (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| dests[i].available())?;
                *last = Some((pick, dests[pick].id));
                Some(pick)
            }
            SchedKind::Wrr => self.pick_wrr(dests),
            SchedKind::Lc => {
                let mut best: Option<usize> = None;
                for (i, d) in dests.iter().enumerate() {
                    if d.available() && best.is_none_or(|b| d.overhead() < dests[b].overhead()) {
                        best = Some(i);
                    }
                }
                best
            }
            SchedKind::Wlc => wlc(dests, DestLoad::overhead),
            SchedKind::Sed => wlc(dests, |d| u64::from(d.active) + 1),
            SchedKind::Nq => {
                if let Some(i) = dests.iter().position(|d| d.available() && d.active == 0) {
                    return Some(i);
                }
                wlc(dests, |d| u64::from(d.active) + 1)
            }
            SchedKind::Fo => {
                let mut best: Option<usize> = None;
                for (i, d) in dests.iter().enumerate() {
                    if d.available() && best.is_none_or(|b| d.weight > dests[b].weight) {
                        best = Some(i);
                    }
                }
                best
            }
            SchedKind::Ovf => {
                let mut best: Option<usize> = None;
                for (i, d) in dests.iter().enumerate() {
                    if d.available()
                        && d.active <= d.weight
                        && best.is_none_or(|b| d.weight > dests[b].weight)
                    {
                        best = Some(i);
                    }
                }
                best
            }
            SchedKind::Twos => {
                let State::Twos(rng) = &mut self.state else {
                    return None;
                };
                twos(dests, rng)
            }
            SchedKind::Sh => {
                let SchedTables::Buckets(t) = &self.tables else {
                    return None;
                };
                let port = if self.flags.sh_port { flow.sport } else { 0 };
                t.pick_sh(dests, flow.saddr, port, self.flags.sh_fallback)
            }
            SchedKind::Dh => {
                let SchedTables::Buckets(t) = &self.tables else {
                    return None;
                };
                t.pick_dh(dests, flow.daddr)
            }
            SchedKind::Mh => {
                let SchedTables::Maglev(t) = &self.tables else {
                    return None;
                };
                let port = if self.flags.mh_port { flow.sport } else { 0 };
                t.pick(dests, flow.saddr, port, self.flags.mh_fallback)
            }
            SchedKind::Lblc => {
                let State::Lblc(s) = &mut self.state else {
                    return None;
                };
                s.pick(dests, flow.daddr, now_s)
            }
            SchedKind::Lblcr => {
                let State::Lblcr(s) = &mut self.state else {
                    return None;
                };
                s.pick(dests, flow.daddr, now_s)
            }
        }
    }

    /// Periodic housekeeping (lblc/lblcr cache expiry), called about once a minute.
    pub fn expire(&mut self, now_s: u64) {
        match &mut self.state {
            State::Lblc(s) => s.expire(now_s),
            State::Lblcr(s) => s.expire(now_s),
            _ => {}
        }
    }

    /// The kernel's ip_vs_wrr_schedule, with its list head modelled as `None`.
    fn pick_wrr(&mut self, dests: &[DestLoad]) -> Option<usize> {
        let State::Wrr { cl, cw, mw, di } = &mut self.state else {
            return None;
        };
        if *mw == 0 {
            return None;
        }
        let last = *cl;
        let mut pos = *cl; // iteration continues after pos
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            // list_for_each_entry_continue from pos to the end of the list
            let first = pos.map_or(0, |p| p + 1);
            for (i, d) in dests.iter().enumerate().skip(first) {
                if !d.overloaded && i64::from(d.weight) >= *cw {
                    *cl = Some(i);
                    return Some(i);
                }
                if Some(i) == stop {
                    *cl = Some(i);
                    return None;
                }
            }
            pos = None; // back at the head
            *cw -= *di;
            if *cw <= 0 {
                *cw = *mw;
                if last_pass || last.is_none() {
                    *cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = *cw <= *di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

/// gcd of the positive weights (1 if none) and the kernel's `mw = max - (gcd - 1)`.
fn wrr_params(dests: &[DestLoad]) -> (i64, i64) {
    let g = weight_gcd(dests.iter().map(|d| d.weight));
    let di = if g == 0 { 1 } else { i64::from(g) };
    let max = i64::from(dests.iter().map(|d| d.weight).max().unwrap_or(0));
    let mw = if max == 0 { 0 } else { max - (di - 1) };
    (di, mw)
}

/// The weighted-least pattern shared by wlc, sed and nq: least `overhead / weight`,
/// compared without division; the first of equals wins.
fn wlc(dests: &[DestLoad], overhead: impl Fn(&DestLoad) -> u64) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.available() {
            continue;
        }
        match best {
            None => best = Some(i),
            Some(b) => {
                let l = &dests[b];
                if u128::from(overhead(l)) * u128::from(d.weight)
                    > u128::from(overhead(d)) * u128::from(l.weight)
                {
                    best = Some(i);
                }
            }
        }
    }
    best
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// ip_vs_twos: two weighted-random picks, keep the one with the lower overhead/weight.
fn twos(dests: &[DestLoad], rng: &mut u64) -> Option<usize> {
    let total: u64 = dests
        .iter()
        .filter(|d| d.available())
        .map(|d| u64::from(d.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let mut r1 = xorshift(rng) % total;
    let mut r2 = xorshift(rng) % total;
    let (mut c1, mut c2) = (None, None);
    for (i, d) in dests.iter().enumerate().filter(|(_, d)| d.available()) {
        let w = u64::from(d.weight);
        if c1.is_none() {
            if r1 < w {
                c1 = Some(i);
            } else {
                r1 -= w;
            }
        }
        if c2.is_none() {
            if r2 < w {
                c2 = Some(i);
            } else {
                r2 -= w;
            }
        }
    }
    match (c1, c2) {
        (Some(a), Some(b)) => {
            let (da, db) = (&dests[a], &dests[b]);
            if u128::from(db.overhead()) * u128::from(da.weight)
                < u128::from(da.overhead()) * u128::from(db.weight)
            {
                Some(b)
            } else {
                Some(a)
            }
        }
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
