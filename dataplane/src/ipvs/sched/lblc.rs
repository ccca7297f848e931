//! Locality-based least-connection (lblc) and its replicated variant (lblcr): per
//! destination address, remember the real server(s) used, so that requests for one
//! destination (a cache, say) keep hitting the same servers.

use super::DestLoad;
use std::net::Ipv4Addr;

/// Entries unused this long are dropped (the kernel's lblc_expiration, 24 h).
pub const EXPIRATION_S: u64 = 24 * 60 * 60;
/// Upper bound of cached destinations per service and worker (the kernel's table is
/// hashed and trimmed; rvs bounds it so a scan of destinations cannot eat memory).
pub const MAX_ENTRIES: usize = 65536;

/// The kernel's `is_overloaded(dest, svc)` for lblc/lblcr: the server has more active
/// connections than its weight while some server is below half of its own.
fn locality_overloaded(d: &DestLoad, dests: &[DestLoad]) -> bool {
    u64::from(d.active) > u64::from(d.weight)
        && dests
            .iter()
            .any(|o| u64::from(o.active) * 2 < u64::from(o.weight))
}

/// The wlc pick used by lblc/lblcr when the cache has no answer.
fn least(dests: &[DestLoad]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, d) in dests.iter().enumerate().filter(|(_, d)| d.available()) {
        match best {
            None => best = Some(i),
            Some(b) => {
                let l = &dests[b];
                if u128::from(l.overhead()) * u128::from(d.weight)
                    > u128::from(d.overhead()) * u128::from(l.weight)
                {
                    best = Some(i);
                }
            }
        }
    }
    best
}

fn index_of(dests: &[DestLoad], id: u32) -> Option<usize> {
    dests.iter().position(|d| d.id == id)
}

#[derive(Debug, Clone, Default)]
pub struct LblcState {
    /// destination address -> (real server id, last use in seconds)
    cache: ahash::AHashMap<Ipv4Addr, (u32, u64)>,
}

impl LblcState {
    pub fn pick(&mut self, dests: &[DestLoad], daddr: Ipv4Addr, now: u64) -> Option<usize> {
        if let Some((id, used)) = self.cache.get_mut(&daddr) {
            if let Some(i) = index_of(dests, *id) {
                let d = &dests[i];
                if d.available() && !locality_overloaded(d, dests) {
                    *used = now;
                    return Some(i);
                }
            }
        }
        let i = least(dests)?;
        if self.cache.len() < MAX_ENTRIES || self.cache.contains_key(&daddr) {
            self.cache.insert(daddr, (dests[i].id, now));
        }
        Some(i)
    }
    pub fn expire(&mut self, now: u64) {
        self.cache
            .retain(|_, (_, used)| now.saturating_sub(*used) < EXPIRATION_S);
    }
    pub fn cached(&self, daddr: Ipv4Addr) -> Option<u32> {
        self.cache.get(&daddr).map(|e| e.0)
    }
}

#[derive(Debug, Clone, Default)]
struct ServerSet {
    ids: Vec<u32>,
    last_mod: u64,
    last_use: u64,
}

#[derive(Debug, Clone, Default)]
pub struct LblcrState {
    cache: ahash::AHashMap<Ipv4Addr, ServerSet>,
}

impl LblcrState {
    pub fn pick(&mut self, dests: &[DestLoad], daddr: Ipv4Addr, now: u64) -> Option<usize> {
        if let Some(set) = self.cache.get_mut(&daddr) {
            set.last_use = now;
            set.ids.retain(|id| index_of(dests, *id).is_some());
            // ip_vs_dest_set_min: least overhead/weight among available members.
            let members: Vec<usize> = set
                .ids
                .iter()
                .filter_map(|id| index_of(dests, *id))
                .collect();
            let min = members
                .iter()
                .copied()
                .filter(|&i| dests[i].available())
                .fold(None, |b: Option<usize>, i| match b {
                    None => Some(i),
                    Some(b)
                        if u128::from(dests[b].overhead()) * u128::from(dests[i].weight)
                            > u128::from(dests[i].overhead()) * u128::from(dests[b].weight) =>
                    {
                        Some(i)
                    }
                    keep => keep,
                });
            // A set that has not changed for the expiration period sheds its most
            // loaded member (ip_vs_dest_set_max), keeping at least one.
            if set.ids.len() > 1 && now.saturating_sub(set.last_mod) > EXPIRATION_S {
                if let Some(max) = members.iter().copied().max_by(|&a, &b| {
                    (u128::from(dests[a].overhead()) * u128::from(dests[b].weight.max(1))).cmp(
                        &(u128::from(dests[b].overhead()) * u128::from(dests[a].weight.max(1))),
                    )
                }) {
                    let id = dests[max].id;
                    set.ids.retain(|x| *x != id);
                    set.last_mod = now;
                }
            }
            let pick = match min {
                Some(i) if !locality_overloaded(&dests[i], dests) => i,
                _ => {
                    let i = least(dests)?;
                    if !set.ids.contains(&dests[i].id) {
                        set.ids.push(dests[i].id);
                        set.last_mod = now;
                    }
                    i
                }
            };
            return Some(pick);
        }
        let i = least(dests)?;
        if self.cache.len() < MAX_ENTRIES {
            self.cache.insert(
                daddr,
                ServerSet {
                    ids: vec![dests[i].id],
                    last_mod: now,
                    last_use: now,
                },
            );
        }
        Some(i)
    }
    pub fn expire(&mut self, now: u64) {
        self.cache
            .retain(|_, s| now.saturating_sub(s.last_use) < EXPIRATION_S);
    }
    pub fn members(&self, daddr: Ipv4Addr) -> Vec<u32> {
        self.cache
            .get(&daddr)
            .map(|s| s.ids.clone())
            .unwrap_or_default()
    }
}
