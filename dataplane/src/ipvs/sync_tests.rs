//! Connection sync at the packet level: what a MASTER worker hands over (and when, by
//! the kernel's rule), and that a BACKUP worker which installed it forwards the next
//! packet of the connection to the same real server.

use super::conn::Fwd;
use super::sync::{SyncConn, SyncRings, SYNC_PERIOD, SYNC_THRESHOLD};
use super::tests::{
    data, ip_of, service, snapshot, syn, tcp_of, to_dir, Rig, CIP, CMAC, RIP, RMAC, VIP,
};
use crate::packet::build;
use crate::packet::tcp::flags as tf;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// A worker that is the sync MASTER of a NAT service over two servers.
fn master() -> (Rig, std::sync::Arc<SyncRings>) {
    let mut r = Rig::new(
        snapshot(vec![service(Fwd::Nat, &[1, 1], None)], false),
        1024,
    );
    let rings = SyncRings::new(1, 64);
    rings.master.store(true, Ordering::Relaxed);
    r.w.ipvs.attach_sync(rings.clone());
    (r, rings)
}

fn handed(rings: &SyncRings) -> Vec<SyncConn> {
    let mut v = Vec::new();
    rings.drain(0, 64, &mut v);
    v
}

fn synack(cport: u16) -> Vec<u8> {
    build::tcp(
        to_dir(RMAC[0]),
        (RIP[0], 8080),
        (CIP, cport),
        (5000, 1001),
        tf::SYN | tf::ACK,
        &[],
        b"",
    )
}

#[test]
fn established_connections_are_handed_over_on_the_3rd_packet_and_every_50th() {
    let (mut r, rings) = master();
    r.rx(syn(40000), 0);
    r.rx(synack(40000), 1);
    assert!(handed(&rings).is_empty(), "not synced before ESTABLISHED");
    // ESTABLISHED from here: packets before the threshold are not synced, it is.
    for t in 1..u64::from(SYNC_THRESHOLD) {
        r.rx(data(40000), 1 + t);
    }
    assert!(handed(&rings).is_empty());
    r.rx(data(40000), 4);
    let h = handed(&rings);
    assert_eq!(h.len(), 1);
    let c = h[0];
    assert_eq!(
        (c.proto, c.caddr, c.cport, c.vaddr, c.vport, c.daddr, c.dport, c.fwd, c.state),
        (6, CIP, 40000, VIP, 80, RIP[0], 8080, Fwd::Nat, 1)
    );
    assert_eq!(c.timeout, 900, "the ESTABLISHED timeout");
    for i in 0..u64::from(SYNC_PERIOD) - 1 {
        r.rx(data(40000), 5 + i);
    }
    assert!(handed(&rings).is_empty());
    r.rx(data(40000), 100);
    assert_eq!(handed(&rings).len(), 1, "again {SYNC_PERIOD} packets later");
    // The client's FIN moves it to CLOSE_WAIT: synced at once.
    let fin = build::tcp(
        to_dir(CMAC),
        (CIP, 40000),
        (VIP, 80),
        (1002, 1),
        tf::FIN | tf::ACK,
        &[],
        b"",
    );
    r.rx(fin, 101);
    let h = handed(&rings);
    assert_eq!(
        (h.len(), h[0].state),
        (1, 7),
        "CLOSE_WAIT (the client's FIN), at once"
    );
    assert_eq!(r.w.ipvs.stats.sync_handed.get(), 3);
}

/// A reply from the real server the first connection went to.
fn reply(cport: u16, flags: u8) -> Vec<u8> {
    build::tcp(
        to_dir(RMAC[0]),
        (RIP[0], 8080),
        (CIP, cport),
        (5001, 1002),
        flags,
        &[],
        b"reply",
    )
}

#[test]
fn only_the_clients_packets_count_and_a_servers_fin_is_synced_at_once() {
    let (mut m, rings) = master();
    m.rx(syn(40000), 0);
    m.rx(synack(40000), 1);
    // Replies do not count towards the threshold (the kernel counts `in_pkts`)...
    for t in 0..10 {
        m.rx(reply(40000, tf::ACK), 2 + t);
    }
    assert!(handed(&rings).is_empty(), "replies counted");
    assert_eq!(m.w.ipvs.stats.sync_handed.get(), 0);
    // ...the client's do: synced on its 3rd.
    for t in 1..u64::from(SYNC_THRESHOLD) {
        m.rx(data(40000), 20 + t);
        m.rx(reply(40000, tf::ACK), 20 + t);
    }
    assert!(handed(&rings).is_empty());
    m.rx(data(40000), 30);
    assert_eq!(handed(&rings).len(), 1, "the client's 3rd packet");
    // The real server's FIN changes the state: synced at once, from the reply.
    m.rx(reply(40000, tf::FIN | tf::ACK), 31);
    let h = handed(&rings);
    assert_eq!(h.len(), 1, "the server's FIN synced at once");
    assert_eq!(h[0].state, 4, "FIN_WAIT");
}

#[test]
fn a_backup_forwards_a_synced_connection_to_the_same_server() {
    let (mut m, rings) = master();
    // The master's first connection went to RIP[0]; make the synced one go to RIP[1].
    m.rx(syn(39999), 0);
    m.rx(syn(40000), 0);
    let sa = build::tcp(
        to_dir(RMAC[1]),
        (RIP[1], 8080),
        (CIP, 40000),
        (5000, 1001),
        tf::SYN | tf::ACK,
        &[],
        b"",
    );
    m.rx(sa, 1);
    for t in 2..5 {
        m.rx(data(40000), t);
    }
    let synced = handed(&rings);
    assert_eq!(synced.len(), 1);
    assert_eq!(synced[0].daddr, RIP[1]);
    // A backup (not a sync master) installs it...
    let mut b = Rig::new(
        snapshot(vec![service(Fwd::Nat, &[1, 1], None)], false),
        1024,
    );
    b.w.ipvs.set_clock(10_000);
    let snap = b.w.snapshot().clone();
    assert!(b.w.ipvs.install_synced(&synced[0], &snap.ipvs));
    assert_eq!(
        b.w.ipvs.dest_counts(1),
        (1, 0, 0),
        "active on the same server"
    );
    // ...and the next data segment goes to RIP[1], where a fresh scheduler would have
    // sent a new connection to RIP[0].
    let out = b.rx(data(40000), 10_001);
    assert_eq!(out.len(), 1);
    assert_eq!(tcp_of(&out[0]).2, IpAddr::from(RIP[1]));
    // Installing it again refreshes it rather than adding a second entry.
    assert!(b.w.ipvs.install_synced(&synced[0], &snap.ipvs));
    assert_eq!(b.w.ipvs.conns.len(), 1);
    assert_eq!(b.w.ipvs.stats.sync_installed.get(), 1);
}

/// TUN (no ipip module in this lab's kernel, so not end to end): the BACKUP encapsulates
/// the synced connection's next segment to the same real server, whole.
#[test]
fn a_synced_tun_connection_is_encapsulated_to_the_same_server() {
    let svc = || snapshot(vec![service(Fwd::Tun, &[1, 1], None)], false);
    let mut m = Rig::new(svc(), 1024);
    let rings = SyncRings::new(1, 64);
    rings.master.store(true, Ordering::Relaxed);
    m.w.ipvs.attach_sync(rings.clone());
    m.rx(syn(39999), 0);
    m.rx(syn(40000), 0);
    // Input only (the replies go straight to the client): ESTABLISHED on the ACK.
    for t in 1..6 {
        m.rx(data(40000), t);
    }
    let synced = handed(&rings);
    let c = synced
        .iter()
        .find(|c| c.cport == 40000)
        .expect("the TUN connection synced");
    assert_eq!((c.fwd, c.daddr, c.state), (Fwd::Tun, RIP[1], 1));
    let mut b = Rig::new(svc(), 1024);
    b.w.ipvs.set_clock(10_000);
    let snap = b.w.snapshot().clone();
    assert!(b.w.ipvs.install_synced(c, &snap.ipvs));
    let inp = data(40000);
    let out = b.rx(inp.clone(), 10_001);
    assert_eq!(out.len(), 1);
    assert_eq!(
        &out[0][0..6],
        &RMAC[1].0[..],
        "to the same real server's MAC"
    );
    let outer = ip_of(&out[0]);
    assert_eq!(
        (outer.protocol(), outer.dst()),
        (crate::packet::ipv4::protocol::IPIP, RIP[1])
    );
    let len = usize::from(u16::from_be_bytes([inp[16], inp[17]]));
    assert_eq!(
        outer.payload(),
        &inp[14..14 + len],
        "the client's segment, whole"
    );
}

#[test]
fn a_connection_of_an_unknown_server_is_refused() {
    let mut b = Rig::new(
        snapshot(vec![service(Fwd::Nat, &[1, 1], None)], false),
        1024,
    );
    let snap = b.w.snapshot().clone();
    let c = SyncConn {
        proto: 6,
        caddr: CIP,
        cport: 1,
        vaddr: VIP,
        vport: 80,
        daddr: std::net::Ipv4Addr::new(198, 18, 0, 99),
        dport: 8080,
        laddr: std::net::Ipv4Addr::UNSPECIFIED,
        lport: 0,
        fwd: Fwd::Nat,
        template: false,
        state: 1,
        timeout: 900,
    };
    assert!(!b.w.ipvs.install_synced(&c, &snap.ipvs));
    assert_eq!(b.w.ipvs.conns.len(), 0);
    let _ = &mut b;
}

/// With several workers, a synced connection goes to the worker that will own its
/// packets: the owner function of a packet of that connection (both directions).
#[test]
fn a_synced_connection_goes_to_the_owner_of_its_packets() {
    use super::sync::sync_owner;
    for fwd in [Fwd::Nat, Fwd::Dr, Fwd::FullNat] {
        for persistence in [None, Some(300)] {
            let snap = snapshot(vec![service(fwd, &[1, 1], persistence)], false);
            for workers in [2, 3, 4] {
                for cport in 40000..40040u16 {
                    let request = data(cport);
                    let by_packet = super::tests::owner(&snap, &request[14..], workers);
                    // FULLNAT: the owner allocated the local port from its share.
                    let lport = if fwd == Fwd::FullNat {
                        (2000 + cport % 97) * workers as u16 + by_packet as u16
                    } else {
                        0
                    };
                    let c = SyncConn {
                        proto: 6,
                        caddr: CIP,
                        cport,
                        vaddr: VIP,
                        vport: 80,
                        daddr: RIP[0],
                        dport: 8080,
                        laddr: super::tests::LIP,
                        lport,
                        fwd,
                        template: false,
                        state: 1,
                        timeout: 900,
                    };
                    let want = sync_owner(&snap.ipvs, &c, workers);
                    assert_eq!(
                        by_packet, want,
                        "{fwd:?} {persistence:?} {workers} workers, client port {cport}"
                    );
                    if fwd == Fwd::FullNat {
                        let reply = build::tcp(
                            to_dir(RMAC[0]),
                            (RIP[0], 8080),
                            (super::tests::LIP, lport),
                            (5000, 1001),
                            tf::ACK,
                            &[],
                            b"",
                        );
                        assert_eq!(super::tests::owner(&snap, &reply[14..], workers), want);
                    }
                }
            }
        }
    }
}

/// A BACKUP holds the synced connection but forwards nothing of it while its VIP stands
/// by (a stale ARP entry, a split brain): dropped as `standby`.
#[test]
fn a_backup_forwards_no_synced_packet_while_its_vip_stands_by() {
    let (mut m, rings) = master();
    m.rx(syn(40000), 0);
    m.rx(synack(40000), 1);
    for t in 2..5 {
        m.rx(data(40000), t);
    }
    let synced = handed(&rings);
    assert_eq!(synced.len(), 1);
    let mut snap = snapshot(vec![service(Fwd::Nat, &[1, 1], None)], false);
    snap.ipvs.stand_by(VIP);
    let mut b = Rig::new(snap, 1024);
    b.w.ipvs.set_clock(10_000);
    let s = b.w.snapshot().clone();
    assert!(b.w.ipvs.install_synced(&synced[0], &s.ipvs));
    assert!(b.rx(data(40000), 10_001).is_empty());
    assert_eq!(b.drops(crate::stats::DropReason::Standby), 1);
    // The reply direction too.
    let reply = build::tcp(
        to_dir(RMAC[0]),
        (RIP[0], 8080),
        (CIP, 40000),
        (5001, 1002),
        tf::ACK,
        &[],
        b"y",
    );
    assert!(b.rx(reply, 10_002).is_empty());
    assert_eq!(b.drops(crate::stats::DropReason::Standby), 2);
    // A new connection and a ping to the VIP: neither forwarded nor handed to the
    // kernel twin, and counted.
    assert!(b.rx(syn(40001), 10_003).is_empty());
    assert_eq!(b.drops(crate::stats::DropReason::Standby), 3);
    let ping = build::icmp_echo(to_dir(CMAC), CIP, VIP, 8, 1, 1, b"ping");
    assert!(b.rx(ping, 10_004).is_empty());
    assert_eq!(b.drops(crate::stats::DropReason::Standby), 4);
    assert_eq!(b.w.ipvs.conns.len(), 1, "no connection opened");
}
