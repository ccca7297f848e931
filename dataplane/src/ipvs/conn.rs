//! The connection table of one worker.
//!
//! Entries live in a preallocated slab (no allocation after start-up) and are 64 bytes,
//! one cache line. Two chained hash indexes find them: IN by the client's view
//! `<proto, caddr, cport, vaddr, vport>` (templates share it, with the TEMPLATE flag and
//! cport 0), OUT by the real server's view of a reply (`<proto, daddr, dport, caddr,
//! cport>` for NAT, `<..., laddr, lport>` for FULLNAT); DR and TUN see no replies and are
//! not in OUT. Chains are u32 indexes, so the indexes cost 8 bytes per entry.
//!
//! Expiry uses a hashed timer wheel of one-second slots. A packet that extends a
//! connection's life only stores the new expiry; the entry stays where it is and is moved
//! when its old slot comes round (amortised O(1), no per-packet list surgery). Only a
//! shorter expiry (a state change such as ESTABLISHED -> CLOSE) relinks at once.

use std::net::Ipv4Addr;

pub const NIL: u32 = u32::MAX;
/// A chain link to a wheel slot head is tagged with this bit and holds the slot number.
const SLOT_TAG: u32 = 0x8000_0000;
pub const WHEEL_SLOTS: u32 = 1024;

/// Forwarding methods, stored in the low bits of `Conn::flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Fwd {
    #[serde(alias = "masq", alias = "masquerade")]
    Nat = 0,
    #[serde(alias = "route", alias = "gate")]
    Dr = 1,
    #[serde(alias = "tunnel", alias = "ipip")]
    Tun = 2,
    #[serde(alias = "fnat")]
    FullNat = 3,
}

impl Fwd {
    pub fn from_bits(b: u8) -> Fwd {
        match b & 3 {
            0 => Fwd::Nat,
            1 => Fwd::Dr,
            2 => Fwd::Tun,
            _ => Fwd::FullNat,
        }
    }
    /// ipvsadm's name in listings.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Fwd::Nat => "Masq",
            Fwd::Dr => "Route",
            Fwd::Tun => "Tunnel",
            Fwd::FullNat => "FullNat",
        }
    }
    /// Replies pass through the director (and update the state machine).
    pub fn sees_replies(self) -> bool {
        matches!(self, Fwd::Nat | Fwd::FullNat)
    }
}

pub mod flags {
    pub const FWD_MASK: u8 = 0x03;
    pub const TEMPLATE: u8 = 0x04;
    /// Counted in the real server's inactive connections (not ESTABLISHED).
    pub const INACTIVE: u8 = 0x08;
    /// No reply seen yet: the INPUT_ONLY state table applies (always for DR/TUN).
    pub const NOOUTPUT: u8 = 0x10;
    /// Linked in the OUT index.
    pub const HASHED_OUT: u8 = 0x20;
}

pub const STATE_FREE: u8 = 0xff;

/// One connection or persistence template. Addresses are host-order u32.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub caddr: u32,
    pub vaddr: u32,
    pub daddr: u32,
    pub laddr: u32,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub lport: u16,
    pub proto: u8,
    pub state: u8,
    pub flags: u8,
    /// Packets counted toward the next sync (`ipvs::sync`), modulo the sync period.
    pub sync_pkts: u8,
    /// Expiry, in seconds of the worker's clock.
    pub expires: u32,
    /// The real server's slot (see `ipvs::DEST_SLOTS`).
    pub dest: u32,
    /// The template this connection was scheduled by, or NIL.
    pub control: u32,
    /// Connections controlled by this template.
    pub n_control: u32,
    next_in: u32,
    next_out: u32,
    t_next: u32,
    t_prev: u32,
}

const _: () = assert!(std::mem::size_of::<Conn>() == 64);

impl Conn {
    /// A connection from `client` to `vip` (address, port), bound to the real server
    /// `dest` (its address and port, and its slot).
    pub fn new(
        proto: u8,
        client: (Ipv4Addr, u16),
        vip: (Ipv4Addr, u16),
        dest: (Ipv4Addr, u16),
        fwd: Fwd,
        slot: u32,
    ) -> Conn {
        let ((caddr, cport), (vaddr, vport), (daddr, dport)) = (client, vip, dest);
        Conn {
            caddr: caddr.into(),
            vaddr: vaddr.into(),
            daddr: daddr.into(),
            laddr: 0,
            cport,
            vport,
            dport,
            lport: 0,
            proto,
            state: 0,
            // Like __ip_vs_update_dest: new connections start inactive, and those whose
            // replies bypass the director use the INPUT_ONLY state table.
            flags: fwd as u8
                | flags::INACTIVE
                | if fwd.sees_replies() {
                    0
                } else {
                    flags::NOOUTPUT
                },
            sync_pkts: 0,
            expires: 0,
            dest: slot,
            control: NIL,
            n_control: 0,
            next_in: NIL,
            next_out: NIL,
            t_next: NIL,
            t_prev: NIL,
        }
    }
    pub fn fwd(&self) -> Fwd {
        Fwd::from_bits(self.flags)
    }
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }
    pub fn in_key(&self) -> Key {
        Key {
            proto: self.proto,
            saddr: self.caddr,
            sport: self.cport,
            daddr: self.vaddr,
            dport: self.vport,
        }
    }
    /// The key replies from the real server carry, if this connection sees replies.
    pub fn out_key(&self) -> Option<Key> {
        match self.fwd() {
            Fwd::Nat => Some(Key {
                proto: self.proto,
                saddr: self.daddr,
                sport: self.dport,
                daddr: self.caddr,
                dport: self.cport,
            }),
            Fwd::FullNat => Some(Key {
                proto: self.proto,
                saddr: self.daddr,
                sport: self.dport,
                daddr: self.laddr,
                dport: self.lport,
            }),
            _ => None,
        }
    }
}

/// A lookup key: a packet's <proto, src, sport, dst, dport>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub proto: u8,
    pub saddr: u32,
    pub sport: u16,
    pub daddr: u32,
    pub dport: u16,
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

pub struct ConnTable {
    slab: Vec<Conn>,
    free: u32,
    len: usize,
    in_heads: Vec<u32>,
    out_heads: Vec<u32>,
    mask: u32,
    seed: u64,
    wheel: Vec<u32>,
    /// Last second whose slot was processed.
    wheel_now: u32,
}

impl ConnTable {
    /// A table of `capacity` entries (all allocated now), with `seed` keying the hash so
    /// that clients cannot aim at one chain.
    pub fn new(capacity: usize, seed: u64) -> ConnTable {
        let capacity = capacity.clamp(1, (SLOT_TAG - 1) as usize);
        let buckets = capacity.next_power_of_two();
        let mut slab = Vec::with_capacity(capacity);
        let none = (Ipv4Addr::UNSPECIFIED, 0);
        let blank = Conn::new(0, none, none, none, Fwd::Nat, NIL);
        for i in 0..capacity {
            let mut c = blank;
            c.state = STATE_FREE;
            c.next_in = if i + 1 < capacity {
                (i + 1) as u32
            } else {
                NIL
            };
            slab.push(c);
        }
        ConnTable {
            slab,
            free: 0,
            len: 0,
            in_heads: vec![NIL; buckets],
            out_heads: vec![NIL; buckets],
            mask: (buckets - 1) as u32,
            seed: seed | 1,
            wheel: vec![NIL; WHEEL_SLOTS as usize],
            wheel_now: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slab.len()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes per entry including both hash indexes.
    pub fn bytes_per_entry(&self) -> usize {
        std::mem::size_of::<Conn>()
            + (self.in_heads.len() + self.out_heads.len()) * 4 / self.slab.len()
    }

    #[inline]
    fn bucket(&self, k: &Key) -> usize {
        let a = (u64::from(k.saddr) << 32 | u64::from(k.daddr)) ^ self.seed;
        let b = (u64::from(k.sport) << 24 | u64::from(k.dport) << 8 | u64::from(k.proto))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = (a ^ b).wrapping_mul(0xff51_afd7_ed55_8ccd);
        ((h >> 32) as u32 & self.mask) as usize
    }

    /// Prefetches the IN chain head of `k` (called for a whole burst before lookups);
    /// returns the bucket, for `prefetch_chain` and the `_at` lookups.
    #[inline]
    pub fn prefetch_in(&self, k: &Key) -> u32 {
        let b = self.bucket(k);
        if let Some(h) = self.in_heads.get(b) {
            prefetch(h);
        }
        b as u32
    }

    /// Second stage, once the head prefetched by `prefetch_in` has arrived: prefetches
    /// the first entry of the chain, so that a lookup's two dependent loads both hit.
    #[inline]
    pub fn prefetch_chain(&self, bucket: u32) {
        if let Some(&i) = self.in_heads.get(bucket as usize) {
            if let Some(c) = self.slab.get(i as usize) {
                prefetch(c);
            }
        }
    }

    #[inline]
    pub fn get(&self, i: u32) -> &Conn {
        &self.slab[i as usize]
    }
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut Conn {
        &mut self.slab[i as usize]
    }

    #[inline]
    fn find(
        &self,
        heads: &[u32],
        bucket: usize,
        k: &Key,
        out: bool,
        want: impl Fn(&Conn) -> bool,
    ) -> Option<u32> {
        let mut i = *heads.get(bucket)?;
        while i != NIL {
            let c = self.slab.get(i as usize)?;
            let hit = if out {
                c.out_key().as_ref() == Some(k)
            } else {
                // The IN view field by field, cheapest first: no Key is built.
                c.cport == k.sport
                    && c.caddr == k.saddr
                    && c.vport == k.dport
                    && c.vaddr == k.daddr
                    && c.proto == k.proto
            };
            if hit && want(c) {
                return Some(i);
            }
            i = if out { c.next_out } else { c.next_in };
        }
        None
    }

    /// The bucket of `k` in either index (IN and OUT hash alike): computed once per
    /// packet, by the prefetch pass, and handed to the `_at` lookups.
    #[inline]
    pub fn bucket_of(&self, k: &Key) -> u32 {
        self.bucket(k) as u32
    }

    /// A connection (not a template) by the client's view of a packet.
    #[inline]
    pub fn lookup_in(&self, k: &Key) -> Option<u32> {
        self.lookup_in_at(self.bucket_of(k), k)
    }
    /// `lookup_in` with the bucket of `k` already known.
    #[inline]
    pub fn lookup_in_at(&self, bucket: u32, k: &Key) -> Option<u32> {
        self.find(&self.in_heads, bucket as usize, k, false, |c| {
            !c.is_template()
        })
    }
    /// A connection by the real server's view of a reply.
    #[inline]
    pub fn lookup_out(&self, k: &Key) -> Option<u32> {
        self.lookup_out_at(self.bucket_of(k), k)
    }
    /// `lookup_out` with the bucket of `k` already known.
    #[inline]
    pub fn lookup_out_at(&self, bucket: u32, k: &Key) -> Option<u32> {
        self.find(&self.out_heads, bucket as usize, k, true, |_| true)
    }
    /// A persistence template by `<proto, caddr & mask, 0, vaddr, vport>`.
    pub fn lookup_template(&self, k: &Key) -> Option<u32> {
        self.find(&self.in_heads, self.bucket(k), k, false, Conn::is_template)
    }

    /// Inserts `c`, indexed both ways and armed to expire at `c.expires`.
    pub fn insert(&mut self, mut c: Conn) -> Result<u32, TableFull> {
        if self.free == NIL {
            return Err(TableFull);
        }
        let i = self.free;
        self.free = self.slab[i as usize].next_in;
        let kb = self.bucket(&c.in_key());
        c.next_in = self.in_heads[kb];
        self.in_heads[kb] = i;
        c.next_out = NIL;
        c.flags &= !flags::HASHED_OUT;
        if let Some(ok) = c.out_key() {
            let ob = self.bucket(&ok);
            c.next_out = self.out_heads[ob];
            self.out_heads[ob] = i;
            c.flags |= flags::HASHED_OUT;
        }
        let exp = c.expires;
        self.slab[i as usize] = c;
        self.link_timer(i, exp);
        self.len += 1;
        Ok(i)
    }

    /// For a connection in state `state`: sets its expiry as `set_expires` does and
    /// returns true; otherwise changes nothing and returns false. One index into the
    /// table for the state machine's commonest case (an ACK on an established
    /// connection).
    #[inline(always)]
    pub fn extend_in_state(&mut self, i: u32, state: u8, expires: u32) -> bool {
        let Some(c) = self.slab.get_mut(i as usize) else {
            return false;
        };
        if c.state != state {
            return false;
        }
        let old = c.expires;
        c.expires = expires;
        if expires < old {
            self.unlink_timer(i);
            self.link_timer(i, expires);
        }
        true
    }

    /// Sets a new expiry. Later: stored only. Sooner: moved to its slot now.
    #[inline]
    pub fn set_expires(&mut self, i: u32, expires: u32) {
        let c = &mut self.slab[i as usize];
        let old = c.expires;
        c.expires = expires;
        if expires < old {
            self.unlink_timer(i);
            self.link_timer(i, expires);
        }
    }

    /// Removes an entry from both indexes and the wheel, and frees it.
    pub fn remove(&mut self, i: u32) {
        let c = self.slab[i as usize];
        if c.state == STATE_FREE {
            return;
        }
        let kb = self.bucket(&c.in_key());
        unlink_chain(&mut self.in_heads[kb], &mut self.slab, i, false);
        if c.flags & flags::HASHED_OUT != 0 {
            if let Some(ok) = c.out_key() {
                let ob = self.bucket(&ok);
                unlink_chain(&mut self.out_heads[ob], &mut self.slab, i, true);
            }
        }
        self.unlink_timer(i);
        let e = &mut self.slab[i as usize];
        e.state = STATE_FREE;
        e.next_in = self.free;
        self.free = i;
        self.len -= 1;
    }

    fn link_timer(&mut self, i: u32, expires: u32) {
        let s = expires % WHEEL_SLOTS;
        let head = self.wheel[s as usize];
        {
            let c = &mut self.slab[i as usize];
            c.t_prev = SLOT_TAG | s;
            c.t_next = head;
        }
        if head != NIL {
            self.slab[head as usize].t_prev = i;
        }
        self.wheel[s as usize] = i;
    }

    fn unlink_timer(&mut self, i: u32) {
        let (p, n) = {
            let c = &self.slab[i as usize];
            (c.t_prev, c.t_next)
        };
        if p == NIL {
            return; // not linked
        }
        if p & SLOT_TAG != 0 {
            self.wheel[(p & !SLOT_TAG) as usize] = n;
        } else {
            self.slab[p as usize].t_next = n;
        }
        if n != NIL {
            self.slab[n as usize].t_prev = p;
        }
        let c = &mut self.slab[i as usize];
        c.t_prev = NIL;
        c.t_next = NIL;
    }

    /// Advances the wheel to `now` (seconds) and appends every entry whose expiry has
    /// passed to `expired`; they stay in the table (unlinked from the wheel) for the
    /// caller to `remove` or re-arm with `rearm`. Entries whose expiry was extended are
    /// moved to their new slot.
    pub fn collect_expired(&mut self, now: u32, expired: &mut Vec<u32>) {
        if now <= self.wheel_now {
            return;
        }
        // After a long stall, one full turn of the wheel visits every slot.
        let from = if now - self.wheel_now > WHEEL_SLOTS {
            now - WHEEL_SLOTS + 1
        } else {
            self.wheel_now + 1
        };
        for t in from..=now {
            let s = (t % WHEEL_SLOTS) as usize;
            // Detach the whole slot first: entries re-linked below may land in it again.
            let mut i = std::mem::replace(&mut self.wheel[s], NIL);
            while i != NIL {
                let next = self.slab[i as usize].t_next;
                {
                    let c = &mut self.slab[i as usize];
                    c.t_prev = NIL;
                    c.t_next = NIL;
                }
                let exp = self.slab[i as usize].expires;
                if exp <= now {
                    expired.push(i);
                } else {
                    self.link_timer(i, exp);
                }
                i = next;
            }
        }
        self.wheel_now = now;
    }

    /// Arms an entry taken out by `collect_expired` again (a template that still has
    /// connections).
    pub fn rearm(&mut self, i: u32, expires: u32) {
        self.unlink_timer(i);
        self.slab[i as usize].expires = expires;
        self.link_timer(i, expires);
    }

    /// Live entries, for listings.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state != STATE_FREE)
            .map(|(i, c)| (i as u32, c))
    }
}

fn unlink_chain(head: &mut u32, slab: &mut [Conn], i: u32, out: bool) {
    let next_of = |c: &Conn| if out { c.next_out } else { c.next_in };
    if *head == i {
        *head = next_of(&slab[i as usize]);
        return;
    }
    let mut p = *head;
    while p != NIL {
        let n = next_of(&slab[p as usize]);
        if n == i {
            let after = next_of(&slab[i as usize]);
            if out {
                slab[p as usize].next_out = after;
            } else {
                slab[p as usize].next_in = after;
            }
            return;
        }
        p = n;
    }
}

#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; any address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const T as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, d)
    }

    fn conn(cport: u16, fwd: Fwd, expires: u32) -> Conn {
        let mut c = Conn::new(6, (ip(1), cport), (ip(100), 80), (ip(11), 8080), fwd, 0);
        c.expires = expires;
        c
    }

    #[test]
    fn entries_are_one_cache_line_and_indexes_are_small() {
        let t = ConnTable::new(1 << 16, 1);
        assert_eq!(std::mem::size_of::<Conn>(), 64);
        assert_eq!(std::mem::align_of::<Conn>(), 64);
        assert_eq!(t.bytes_per_entry(), 72);
    }

    #[test]
    fn lookups_in_both_directions() {
        let mut t = ConnTable::new(16, 7);
        let i = t.insert(conn(40000, Fwd::Nat, 10)).unwrap();
        let c = *t.get(i);
        assert_eq!(t.lookup_in(&c.in_key()), Some(i));
        let reply = Key {
            proto: 6,
            saddr: ip(11).into(),
            sport: 8080,
            daddr: ip(1).into(),
            dport: 40000,
        };
        assert_eq!(t.lookup_out(&reply), Some(i));
        assert_eq!(
            t.lookup_template(&c.in_key()),
            None,
            "a connection is not a template"
        );
        let mut fnat = conn(40001, Fwd::FullNat, 10);
        fnat.laddr = ip(3).into();
        fnat.lport = 5000;
        let j = t.insert(fnat).unwrap();
        let reply = Key {
            proto: 6,
            saddr: ip(11).into(),
            sport: 8080,
            daddr: ip(3).into(),
            dport: 5000,
        };
        assert_eq!(t.lookup_out(&reply), Some(j));
        let dr = t.insert(conn(40002, Fwd::Dr, 10)).unwrap();
        assert!(t.get(dr).out_key().is_none());
        t.remove(i);
        assert_eq!(t.lookup_in(&c.in_key()), None);
        assert_eq!(
            t.lookup_out(&Key {
                proto: 6,
                saddr: ip(11).into(),
                sport: 8080,
                daddr: ip(1).into(),
                dport: 40000
            }),
            None
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn templates_share_the_in_index_but_not_lookups() {
        let mut t = ConnTable::new(16, 7);
        let mut tpl = conn(0, Fwd::Dr, 360);
        tpl.flags |= flags::TEMPLATE;
        let ti = t.insert(tpl).unwrap();
        let k = t.get(ti).in_key();
        assert_eq!(t.lookup_template(&k), Some(ti));
        assert_eq!(t.lookup_in(&k), None);
    }

    #[test]
    fn a_full_table_refuses_and_frees_slots_on_remove() {
        let mut t = ConnTable::new(4, 1);
        let ids: Vec<u32> = (0..4)
            .map(|p| t.insert(conn(p, Fwd::Nat, 5)).unwrap())
            .collect();
        assert_eq!(t.insert(conn(9, Fwd::Nat, 5)), Err(TableFull));
        t.remove(ids[2]);
        assert!(t.insert(conn(9, Fwd::Nat, 5)).is_ok());
        // Existing entries were not disturbed.
        for p in [0u16, 1, 3] {
            assert!(t.lookup_in(&conn(p, Fwd::Nat, 0).in_key()).is_some());
        }
    }

    #[test]
    fn wheel_expires_on_time_and_honours_extensions() {
        let mut t = ConnTable::new(64, 3);
        let a = t.insert(conn(1, Fwd::Nat, 5)).unwrap();
        let b = t.insert(conn(2, Fwd::Nat, 5)).unwrap();
        let c = t.insert(conn(3, Fwd::Nat, 2000)).unwrap(); // beyond one turn of the wheel
        t.set_expires(b, 60); // extended: stays in slot 5, moves when visited
        let mut out = Vec::new();
        t.collect_expired(4, &mut out);
        assert!(out.is_empty());
        t.collect_expired(5, &mut out);
        assert_eq!(out, vec![a]);
        t.remove(a);
        out.clear();
        t.collect_expired(59, &mut out);
        assert!(out.is_empty());
        t.collect_expired(60, &mut out);
        assert_eq!(out, vec![b]);
        out.clear();
        t.collect_expired(1999, &mut out);
        assert!(out.is_empty(), "visited at 976 but not due");
        t.collect_expired(2000, &mut out);
        assert_eq!(out, vec![c]);
    }

    #[test]
    fn shortening_relinks_at_once() {
        let mut t = ConnTable::new(8, 3);
        let a = t.insert(conn(1, Fwd::Nat, 900)).unwrap();
        t.set_expires(a, 10);
        let mut out = Vec::new();
        t.collect_expired(10, &mut out);
        assert_eq!(out, vec![a]);
        t.rearm(a, 20);
        out.clear();
        t.collect_expired(20, &mut out);
        assert_eq!(out, vec![a]);
    }

    #[test]
    fn remove_in_the_middle_of_chains() {
        // A one-bucket table: every entry chains in the same bucket and slot.
        let mut t = ConnTable::new(1, 3);
        let mut t2 = ConnTable::new(8, 3);
        t2.mask = 0;
        let ids: Vec<u32> = (0..5)
            .map(|p| t2.insert(conn(p, Fwd::Nat, 7)).unwrap())
            .collect();
        t2.remove(ids[2]);
        t2.remove(ids[0]);
        for (p, id) in ids.iter().enumerate() {
            let found = t2.lookup_in(&conn(p as u16, Fwd::Nat, 0).in_key());
            assert_eq!(found.is_some(), p != 0 && p != 2, "port {p} id {id}");
        }
        let mut out = Vec::new();
        t2.collect_expired(7, &mut out);
        out.sort();
        assert_eq!(out, vec![ids[1], ids[3], ids[4]]);
        assert!(t.insert(conn(1, Fwd::Nat, 1)).is_ok());
    }
}
