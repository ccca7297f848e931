//! IPVS end to end: real DPDK (net_af_packet) in a director namespace, a kernel client
//! making HTTP requests (fresh TCP connections) to the VIP, and kernel real servers that
//! answer with their own name.
//!
//! Addressing (one bridge, two subnets): client 198.18.1.1/24 (default route via the
//! director's 198.18.1.2), VIP 198.18.1.100, real servers 198.18.0.11-13/24, director
//! 198.18.0.2/24 on the server side, FULLNAT local address 198.18.0.3.

use std::time::Duration;
use testkit::lab::{lab as lab_with, rs_list, Lab, Mode, VIP};
use testkit::net::{self, get_many, tally, v4, HttpConn};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

fn lab(mode: Mode, services: &str, workers: usize) -> Lab {
    lab_with(std::path::Path::new(RVSD), mode, services, workers)
}

/// Each server's count within `slack` of `want` (0 slack: exact). Every worker schedules
/// on its own copy, so with N workers an rr split may be off by up to N.
fn near(m: &std::collections::BTreeMap<String, usize>, want: &[usize], slack: usize) {
    let got = counts(m);
    let slack = if slack <= 1 { 0 } else { slack };
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.abs_diff(*w) <= slack,
            "got {got:?}, want {want:?} (slack {slack})"
        );
    }
    assert_eq!(got.iter().sum::<usize>(), want.iter().sum::<usize>());
}

fn counts(m: &std::collections::BTreeMap<String, usize>) -> Vec<usize> {
    ["rs1", "rs2", "rs3"]
        .iter()
        .map(|n| m.get(*n).copied().unwrap_or(0))
        .collect()
}

fn nat_rr_splits_exactly_evenly(workers: usize) {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{}",
        rs_list("nat", &[1, 1, 1])
    );
    let l = lab(Mode::Nat, &svc, workers);
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 60));
    near(&m, &[20, 20, 20], workers);
    let _ = &l.rs;
}

fn config_text(l: &Lab) -> String {
    let d = &l.t.rvsd_ref(0);
    std::fs::read_to_string(&d.config).unwrap()
}

fn nat_wrr_follows_weights(workers: usize) {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: wrr\n    real_servers:\n{}",
        rs_list("nat", &[3, 2, 1])
    );
    let l = lab(Mode::Nat, &svc, workers);
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 60));
    // wrr's cycle is 6 picks; each worker runs its own.
    near(&m, &[30, 20, 10], 3 * (workers - 1));
}

fn dr_replies_go_straight_to_the_client(workers: usize) {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{}",
        rs_list("dr", &[1, 1, 1])
    );
    let mut l = lab(Mode::Dr, &svc, workers);
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 30));
    near(&m, &[10, 10, 10], workers);
    let s = &l.t.rvsd(0).services()[0];
    assert_eq!(s.stats.0[0], 30);
    assert_eq!(s.stats.0[2], 0, "no reply passed the director");
    assert!(s.stats.0[1] >= 30 * 4);
}

fn fullnat_sources_from_the_lip_and_carries_toa(workers: usize) {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    local_addresses: [\"198.18.0.3\"]\n    toa: true\n    real_servers:\n{}",
        rs_list("fullnat", &[1, 1, 1])
    );
    let l = lab(Mode::FullNat, &svc, workers);
    let client_ns = l.client.ns.clone();
    let (res, frames) = net::capture(&l.rs[0].ns, "eth0", Duration::from_millis(200), move || {
        get_many(&client_ns, v4(VIP, 80), 30)
    });
    let m = tally(&res);
    near(&m, &[10, 10, 10], workers);
    // The real server saw the LIP as the peer, and a TOA option naming the client.
    let peers = l.servers[0].peers.lock().unwrap().clone();
    assert_eq!(peers.len(), counts(&m)[0]);
    assert!(
        peers.iter().all(|p| p.ip().to_string() == "198.18.0.3"),
        "{peers:?}"
    );
    let mut toa = 0;
    for f in &frames {
        let Ok(d) = dataplane::packet::dissect(f) else {
            continue;
        };
        if let dataplane::packet::L3Summary::Ip {
            dst,
            l4: dataplane::packet::L4Summary::Tcp { checksum_ok, .. },
            ..
        } = d.l3
        {
            if dst.to_string() != "198.18.0.11" {
                continue;
            }
            assert!(
                checksum_ok,
                "every segment to the real server has a valid checksum"
            );
            let ip = dataplane::packet::Ipv4Packet::new_checked(&f[14..]).unwrap();
            let t = dataplane::packet::TcpPacket::new_checked(ip.payload()).unwrap();
            for o in dataplane::packet::tcp::options(t.options()).flatten() {
                if let dataplane::packet::tcp::TcpOption::Other { kind: 254, data } = o {
                    assert_eq!(
                        &data[2..6],
                        &[198, 18, 1, 1],
                        "TOA carries the client address"
                    );
                    toa += 1;
                }
            }
        }
    }
    assert!(
        toa >= counts(&m)[0],
        "TOA seen on {toa} segments for {} connections",
        counts(&m)[0]
    );
}

fn persistence_keeps_a_client_on_one_server(workers: usize) {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    persistence: {{ timeout: 360 }}\n    real_servers:\n{}",
        rs_list("nat", &[1, 1, 1])
    );
    let mut l = lab(Mode::Nat, &svc, workers);
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 30));
    assert_eq!(m.len(), 1, "one server for one client: {m:?}");
    let s = &l.t.rvsd(0).services()[0];
    assert_eq!(s.persistent.map(|p| p.0), Some(360));
    assert_eq!(
        s.servers.iter().map(|r| r.persist).sum::<u64>(),
        1,
        "one template"
    );
}

fn weight_zero_keeps_existing_connections_and_gets_no_new_ones(workers: usize) {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{}",
        rs_list("nat", &[1, 1, 1])
    );
    let mut l = lab(Mode::Nat, &svc, workers);
    // A keep-alive connection, pinned to whichever server rr gives first (rs1).
    let held = net::in_ns(&l.client.ns, || {
        let mut c = HttpConn::connect(v4(VIP, 80), Duration::from_secs(5)).unwrap();
        let first = c.get().unwrap();
        (c, first)
    });
    let (mut conn, first) = held;
    assert_eq!(first, "rs1");
    let text = config_text(&l).replace(
        "198.18.0.11:80\", forward: nat, weight: 1",
        "198.18.0.11:80\", forward: nat, weight: 0",
    );
    l.t.rvsd(0).reload(&text);
    // The established connection still reaches rs1...
    for _ in 0..5 {
        assert_eq!(conn.get().unwrap(), "rs1");
    }
    // ...and new connections never do.
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 20));
    assert_eq!(m.get("rs1"), None, "{m:?}");
    near(&m, &[0, 10, 10], workers);
    let rs1 = &l.t.rvsd(0).services()[0].servers[0];
    assert_eq!(
        (rs1.weight, rs1.active),
        (0, 1),
        "the held connection is still active on rs1"
    );
}

fn tun_encapsulates_toward_the_real_server(workers: usize) {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{}",
        rs_list("tun", &[1, 0, 0])
    );
    let l = lab(Mode::Dr, &svc, workers);
    // This kernel has no ipip module, so the real server cannot answer: check what rvs
    // sends it instead, with our parser and with tshark.
    let client_ns = l.client.ns.clone();
    let (_, frames) = net::capture(&l.rs[0].ns, "eth0", Duration::from_millis(300), move || {
        net::in_ns(&client_ns, || {
            let _ = std::net::TcpStream::connect_timeout(
                &v4(VIP, 80).into(),
                Duration::from_millis(500),
            );
        })
    });
    let ipip: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f.len() > 34 && f[12..14] == [8, 0] && f[23] == 4)
        .collect();
    assert!(
        !ipip.is_empty(),
        "no IPIP frame among {} captured",
        frames.len()
    );
    let f = ipip[0];
    let outer = dataplane::packet::Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(outer.verify_checksum());
    assert_eq!(
        (outer.src().to_string(), outer.dst().to_string()),
        ("198.18.0.2".into(), "198.18.0.11".into())
    );
    let inner = dataplane::packet::Ipv4Packet::new_checked(outer.payload()).unwrap();
    assert!(inner.verify_checksum());
    assert_eq!(
        (inner.src().to_string(), inner.dst().to_string()),
        ("198.18.1.1".into(), VIP.into())
    );
    let t = dataplane::packet::TcpPacket::new_checked(inner.payload()).unwrap();
    assert_eq!(t.dst_port(), 80);
    assert!(t.verify_checksum_v4(inner.src(), inner.dst()));
    // tshark decodes both headers without complaint.
    let pcap = l.t.dir.join("tun.pcap");
    net::write_pcap(&pcap, &ipip.iter().map(|f| f.to_vec()).collect::<Vec<_>>());
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-V",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ])
        .output()
        .expect("tshark (scripts/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Protocol: IPIP (4)") || text.contains("Protocol: IPIP"),
        "{text}"
    );
    assert!(text.contains("Transmission Control Protocol"), "{text}");
    assert!(
        !text.contains("Malformed") && !text.contains("[incorrect"),
        "{text}"
    );
}

#[test]
fn two_workers_nat_and_fullnat_use_the_redirect_rings() {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{}  - vip: \"{VIP}:8080\"\n    scheduler: rr\n    local_addresses: [\"198.18.0.3\"]\n    real_servers:\n{}",
        rs_list("nat", &[1, 1, 1]),
        rs_list("fullnat", &[1, 1, 1])
    );
    let mut l = lab(Mode::Nat, &svc, 2);
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 60));
    assert_eq!(m.values().sum::<usize>(), 60);
    assert_eq!(m.len(), 3, "{m:?}");
    let m = tally(&get_many(&l.client.ns, v4(VIP, 8080), 60));
    assert_eq!(m.values().sum::<usize>(), 60);
    // Closing segments may still be in a ring when the last request returns: read the
    // counters once the rings have drained (out stops differing from in).
    let mut c = l.t.rvsd(0).counters();
    let sums = |c: &ctrlplane::ctl::Counters| -> (u64, u64) {
        (
            c.workers.iter().map(|w| w.redirected_out).sum(),
            c.workers.iter().map(|w| w.redirected_in).sum(),
        )
    };
    for _ in 0..100 {
        if sums(&c).0 == sums(&c).1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        c = l.t.rvsd(0).counters();
    }
    let (out, inn) = sums(&c);
    assert!(out > 0 && out == inn, "redirects out {out}, in {inn}");
    assert_eq!(c.drops("redirect_full"), 0);
}

/// ICMP errors about a connection cross the director translated (the kernel's
/// ip_vs_out_icmp): a UDP datagram to a real-server port where nothing listens brings
/// that server's "port unreachable" back to the client. The client's connected socket
/// then fails with ECONNREFUSED, which its kernel reports only when the error reached it
/// with valid IP and ICMP checksums and its quote names the client:port -> VIP:port it
/// sent (the quote's addresses and ports translated back). The outer source and the
/// quoted checksums are checked field by field at packet level
/// (`icmp_errors_are_translated_both_ways`). NAT and FULLNAT.
fn icmp_errors_reach_the_client_translated(workers: usize) {
    for (mode, fwd, extra) in [
        (Mode::Nat, "nat", ""),
        (
            Mode::FullNat,
            "fullnat",
            "    local_addresses: [\"198.18.0.3\"]\n",
        ),
    ] {
        let svc = format!(
            "  - vip: \"{VIP}:53\"\n    protocol: udp\n    scheduler: rr\n{extra}    real_servers:\n      - {{ address: \"198.18.0.11:5353\", forward: {fwd} }}\n"
        );
        let l = lab(mode, &svc, workers);
        let refused = net::in_ns(&l.client.ns, || {
            let s = std::net::UdpSocket::bind("198.18.1.1:0").expect("bind");
            s.connect(v4(VIP, 53)).expect("connect");
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 64];
            // A few tries: the first datagram may wait for ARP on the way.
            (0..10).any(|_| {
                let _ = s.send(b"query");
                matches!(s.recv(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
            })
        });
        assert!(
            refused,
            "{fwd}: the client's socket never saw the translated port unreachable"
        );
        // The datagrams themselves were forwarded to the real server (and answered
        // there by its kernel), not dropped by the director.
        let c = l.t.rvsd_ref(0).counters();
        assert_eq!(c.drops("no_dest") + c.drops("l4_malformed"), 0, "{fwd}");
    }
}

/// Each scenario with one worker and with two.
macro_rules! with_workers {
    ($($name:ident),*) => {$(
        mod $name {
            #[test]
            fn one_worker() {
                super::$name(1)
            }
            #[test]
            fn two_workers() {
                super::$name(2)
            }
        }
    )*};
}

with_workers!(
    nat_rr_splits_exactly_evenly,
    nat_wrr_follows_weights,
    dr_replies_go_straight_to_the_client,
    fullnat_sources_from_the_lip_and_carries_toa,
    persistence_keeps_a_client_on_one_server,
    weight_zero_keeps_existing_connections_and_gets_no_new_ones,
    tun_encapsulates_toward_the_real_server,
    icmp_errors_reach_the_client_translated
);
