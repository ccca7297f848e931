//! Maglev hashing (the `mh` scheduler): a prime-sized lookup table in which each real
//! server owns a share of entries proportional to its weight, filled from per-server
//! permutations (offset, skip) so that removing one server moves few others' flows.
//! Follows ip_vs_mh.c (turns = weight / gcd, scaled down by `rshift` so the largest
//! needs at most 64 turns per round), with rvs's own fixed-seed hash so that every
//! director builds the same table, and the Maglev paper's M = 65537 by default.

use super::{DestLoad, ServerKey};
use std::net::Ipv4Addr;

pub const DEFAULT_SIZE: usize = 65537;
/// ip_vs_mh's IP_VS_MH_TAB_BITS (CONFIG_IP_VS_MH_TAB_INDEX 12 / 2).
const TURN_BITS: u32 = 6;
const EMPTY: u16 = u16::MAX;

#[derive(Clone, PartialEq, Eq)]
pub struct MaglevTable {
    pub lookup: Vec<u16>,
}

impl std::fmt::Debug for MaglevTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaglevTable(M={})", self.lookup.len())
    }
}

/// A 64-bit mix (murmur3's fmix64) of the key with a seed: fixed, so tables are
/// reproducible across processes and directors.
#[inline]
fn mix(mut x: u64, seed: u64) -> u64 {
    x ^= seed;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const SEED1: u64 = 2_654_435_761;
const SEED2: u64 = 2_654_446_892;

#[inline]
fn key(addr: Ipv4Addr, port: u16, offset: u32) -> u64 {
    u64::from(
        offset
            .wrapping_add(u32::from(port))
            .wrapping_add(u32::from(addr)),
    )
}

impl MaglevTable {
    /// Builds the table for the real servers (in service order). `size` must be prime.
    pub fn build(dests: &[ServerKey], size: usize) -> MaglevTable {
        let mut lookup = vec![EMPTY; size];
        let g = super::weight_gcd(dests.iter().map(|d| d.weight));
        if g == 0 || dests.len() >= usize::from(EMPTY) {
            return MaglevTable { lookup };
        }
        let mw = dests.iter().map(|d| d.weight).max().unwrap_or(0) / g;
        let fls = 32 - mw.leading_zeros();
        let rshift = fls.saturating_sub(TURN_BITS);
        let m = size as u64;
        struct Setup {
            skip: u64,
            perm: u64,
            turns: u32,
        }
        let mut setup: Vec<Setup> = dests
            .iter()
            .map(|d| {
                let k = key(d.addr, d.port, 0);
                let offset = mix(k, SEED1) % m;
                let skip = mix(k, SEED2) % (m - 1) + 1;
                let t = (d.weight / g) >> rshift;
                let turns = if t > 0 { t } else { u32::from(d.weight != 0) };
                Setup {
                    skip,
                    perm: offset,
                    turns,
                }
            })
            .collect();
        let mut taken = vec![false; size];
        let mut n = 0usize;
        'fill: loop {
            for (i, s) in setup.iter_mut().enumerate() {
                for _ in 0..s.turns {
                    let mut c = s.perm;
                    while taken[c as usize] {
                        s.perm += s.skip;
                        if s.perm >= m {
                            s.perm -= m;
                        }
                        c = s.perm;
                    }
                    taken[c as usize] = true;
                    lookup[c as usize] = i as u16;
                    n += 1;
                    if n == size {
                        break 'fill;
                    }
                }
            }
        }
        MaglevTable { lookup }
    }

    fn slot(&self, addr: Ipv4Addr, port: u16, offset: u32) -> usize {
        (mix(key(addr, port, offset), SEED1) % self.lookup.len() as u64) as usize
    }

    /// ip_vs_mh_get / ip_vs_mh_get_fallback.
    pub fn pick(
        &self,
        dests: &[DestLoad],
        saddr: Ipv4Addr,
        port: u16,
        fallback: bool,
    ) -> Option<usize> {
        if self.lookup.is_empty() {
            return None;
        }
        let ihash = self.slot(saddr, port, 0);
        let d = self.lookup[ihash];
        if d == EMPTY {
            return None;
        }
        let ok = |d: u16| dests.get(usize::from(d)).is_some_and(|x| x.available());
        if ok(d) {
            return Some(usize::from(d));
        }
        if !fallback {
            return None;
        }
        let m = self.lookup.len() as u32;
        for off in 0..m {
            let roff = (off + ihash as u32) % m;
            let d = self.lookup[self.slot(saddr, port, roff)];
            if d == EMPTY {
                return None;
            }
            if ok(d) {
                return Some(usize::from(d));
            }
        }
        None
    }
}
