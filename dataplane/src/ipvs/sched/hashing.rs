//! Source and destination hashing (sh, dh): 256 buckets filled from the real servers,
//! the kernel's `hash_32` (golden-ratio multiply, top 8 bits) to pick a bucket.

use super::{DestLoad, ServerKey};
use std::net::Ipv4Addr;

pub const BUCKETS: usize = 256;
const BITS: u32 = 8;
/// Linux's GOLDEN_RATIO_32.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// Linux's `hash_32(val, bits)`.
#[inline]
pub fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// Bucket -> index of the real server in the service (u16::MAX = empty service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketTable {
    pub buckets: [u16; BUCKETS],
}

const EMPTY: u16 = u16::MAX;

/// ip_vs_sh_reassign: each real server fills `weight` consecutive buckets (at least one),
/// cycling over the servers until all 256 are filled.
pub fn sh_table(dests: &[ServerKey]) -> BucketTable {
    let mut t = BucketTable {
        buckets: [EMPTY; BUCKETS],
    };
    if dests.is_empty() {
        return t;
    }
    let (mut p, mut count) = (0usize, 0u32);
    for b in t.buckets.iter_mut() {
        *b = p as u16;
        count += 1;
        if count >= dests[p].weight {
            p = (p + 1) % dests.len();
            count = 0;
        }
    }
    t
}

/// ip_vs_dh_assign: buckets filled round robin over the servers, weights ignored.
pub fn dh_table(dests: &[ServerKey]) -> BucketTable {
    let mut t = BucketTable {
        buckets: [EMPTY; BUCKETS],
    };
    if !dests.is_empty() {
        for (i, b) in t.buckets.iter_mut().enumerate() {
            *b = (i % dests.len()) as u16;
        }
    }
    t
}

impl BucketTable {
    fn at(&self, i: u32) -> Option<usize> {
        match self.buckets[(i as usize) % BUCKETS] {
            EMPTY => None,
            d => Some(usize::from(d)),
        }
    }

    /// ip_vs_sh_schedule: hash of source address (+ port with sh-port); with sh-fallback
    /// the following buckets are tried when the chosen server is unavailable.
    pub fn pick_sh(
        &self,
        dests: &[DestLoad],
        saddr: Ipv4Addr,
        port: u16,
        fallback: bool,
    ) -> Option<usize> {
        let h = hash_32(u32::from(saddr).wrapping_add(u32::from(port)), BITS);
        let first = self.at(h)?;
        if dests.get(first).is_some_and(|d| d.available()) {
            return Some(first);
        }
        if !fallback {
            return None;
        }
        (1..BUCKETS as u32)
            .filter_map(|off| self.at((h + off) % BUCKETS as u32))
            .find(|&d| dests.get(d).is_some_and(|d| d.available()))
    }

    /// ip_vs_dh_schedule: hash of the destination address; no fallback.
    pub fn pick_dh(&self, dests: &[DestLoad], daddr: Ipv4Addr) -> Option<usize> {
        let d = self.at(hash_32(u32::from(daddr), BITS))?;
        dests.get(d).is_some_and(|x| x.available()).then_some(d)
    }
}
