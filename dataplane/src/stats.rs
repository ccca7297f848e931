//! Counters written by exactly one worker and read by the control plane.
//!
//! Each counter is an `AtomicU64` updated with a relaxed load + store (no locked
//! read-modify-write: there is one writer), so reads from another thread are well defined
//! and the hot path pays nothing more than a plain increment.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Only the owning worker, or the control plane while the owner is stopped, may reset.
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why the fast path dropped (or declined) a packet. Every packet that is not
        /// forwarded or answered lands in exactly one of these.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum DropReason { $(#[doc = $doc] $variant,)* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();
            /// The stable snake_case name used by rvsadm and the metrics.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
            pub fn describe(self) -> &'static str {
                match self { $(DropReason::$variant => $doc,)* }
            }
        }
    };
}

drop_reasons! {
    L2Truncated => "l2_truncated", "frame shorter than its Ethernet/VLAN headers";
    L2Malformed => "l2_malformed", "more than two VLAN tags";
    OtherHost => "other_host", "unicast frame for another MAC address";
    OwnFrame => "own_frame", "frame sent by this port (looped back)";
    Vlan => "vlan", "VLAN-tagged frame on a port without VLANs";
    UnknownEthertype => "unknown_ethertype", "neither IPv4 nor ARP";
    Ipv6 => "ipv6", "IPv6 is not handled yet";
    ArpMalformed => "arp_malformed", "ARP that is not Ethernet/IPv4 or is truncated";
    ArpNotOurs => "arp_not_ours", "ARP for an address this director does not own";
    Ipv4Truncated => "ipv4_truncated", "IPv4 total length beyond the frame";
    Ipv4Malformed => "ipv4_malformed", "bad IPv4 version or header length";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum mismatch";
    Ipv4Fragment => "ipv4_fragment", "IPv4 fragment to an owned address";
    NotLocal => "not_local", "IPv4 destination not owned by this director";
    IcmpMalformed => "icmp_malformed", "ICMP shorter than its header";
    IcmpBadChecksum => "icmp_bad_checksum", "ICMP checksum mismatch";
    IcmpUnhandled => "icmp_unhandled", "ICMP type other than echo request to an owned address";
    L4Unhandled => "l4_unhandled", "TCP/UDP/other protocol to an owned address with no service";
    NoRoute => "no_route", "no route to the destination of a packet to send";
    NeighQueueFull => "neigh_queue_full", "too many packets waiting for one ARP resolution";
    NeighFailed => "neigh_failed", "ARP resolution timed out";
    NeighTableFull => "neigh_table_full", "neighbour table full";
    AllocFailed => "alloc_failed", "no mbuf to build a packet";
    TxFull => "tx_full", "transmit queue full";
    MultiSegment => "multi_segment", "multi-segment mbuf (jumbo frames are not supported)";
    L4Malformed => "l4_malformed", "TCP/UDP header truncated or malformed in IPVS traffic";
    Standby => "standby", "traffic of a VIP this director stands by for (VRRP BACKUP)";
    NoConn => "no_conn", "TCP segment other than SYN, or a packet to a LIP, with no connection";
    NoDest => "no_dest", "no real server available (all weight 0 or overloaded)";
    ConnTableFull => "conn_table_full", "connection table full: new connection refused";
    NoLocalPort => "no_local_port", "FULLNAT: no free local address/port";
    NoDestConn => "nodest_conn", "connection of a removed real server (expire_nodest_conn)";
    TtlExceeded => "ttl_exceeded", "TTL expired in transit (ICMP time exceeded sent)";
    FragNeeded => "frag_needed", "tunnel packet too big with DF (ICMP fragmentation needed sent)";
    TooBig => "too_big", "tunnel packet too big without DF (rvs does not fragment)";
    Redirect => "redirect_full", "redirect ring to the owning worker full";
    FragUntracked => "frag_untracked", "IP fragment whose first fragment was not seen (or expired)";
}

/// The most ports one director drives (config validation enforces it).
pub const MAX_PORTS: usize = 16;

/// Per-port traffic of one worker (its queue on that port).
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Frames the driver would not take (queue full); counted also as `tx_full`.
    pub tx_dropped: Counter,
}

/// Frames a worker answered or consumed without dropping them; with the drop counters
/// this accounts for every received frame.
pub fn handled(s: &WorkerStats) -> u64 {
    s.arp_replies.get()
        + s.arp_replies_received.get()
        + s.icmp_echo_replies.get()
        + s.to_kernel.get()
}

/// One worker's counters. Allocated once per worker; aligned so that two workers never
/// share a cache line.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub arp_replies: Counter,
    pub arp_requests: Counter,
    pub arp_replies_received: Counter,
    pub icmp_echo_replies: Counter,
    /// Frames passed up to a kernel twin (the exception path), and frames the kernel
    /// sent that left through its port.
    pub to_kernel: Counter,
    pub from_kernel: Counter,
    pub snapshot_generation: Counter,
    pub loops: Counter,
    pub idle_sleeps: Counter,
    pub ports: [PortCounters; MAX_PORTS],
    drops: Drops,
}

/// One counter per drop reason (arrays this long have no derived Default).
#[derive(Debug)]
struct Drops([Counter; DropReason::COUNT]);

impl Default for Drops {
    fn default() -> Self {
        Drops(std::array::from_fn(|_| Counter::default()))
    }
}

impl WorkerStats {
    #[inline]
    pub fn dropped(&self, reason: DropReason) {
        self.drops.0[reason as usize].inc();
    }
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.0[reason as usize].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.name()), "{}", r.name());
            assert!(r
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()));
            assert!(!r.describe().is_empty());
        }
    }

    #[test]
    fn counters() {
        let s = WorkerStats::default();
        s.dropped(DropReason::NotLocal);
        s.dropped(DropReason::NotLocal);
        s.rx_packets.add(5);
        assert_eq!(s.drops(DropReason::NotLocal), 2);
        assert_eq!(s.drops(DropReason::TxFull), 0);
        assert_eq!(s.rx_packets.get(), 5);
        assert_eq!(std::mem::align_of::<WorkerStats>(), 64);
    }
}
