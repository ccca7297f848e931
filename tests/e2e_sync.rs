//! Connection sync end to end: two rvsd directors (testkit::ha) following VRRP, a
//! connection made through the MASTER found in the BACKUP's table, and carrying on
//! through it, on the same real server, when the MASTER dies.

use std::time::Duration;
use testkit::eventually;
use testkit::ha::{
    director_config, instance, instances, nat_service, service, state, HaLab, LIP, TAKEOVER,
};
use testkit::lab::{Mode, VIP};
use testkit::net::{sample, v4};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

fn path() -> &'static std::path::Path {
    std::path::Path::new(RVSD)
}

/// How the pair talks and runs.
#[derive(Clone, Copy, Default)]
struct Pair {
    /// Workers per director (1 when 0).
    workers: usize,
    /// VRRP adverts and sync messages unicast to the other director, and the LAN's
    /// bridge dropping every multicast packet, so that nothing works without them.
    unicast: bool,
}

/// Starts A (priority 150) and B (100) with connection sync following VI_1 over a
/// `fwd` service with `svc_extra`, and waits for A MASTER and B BACKUP.
fn start_pair(mode: Mode, fwd: &str, svc_extra: &str, pair: Pair) -> HaLab {
    let mut l = HaLab::with_mode(mode);
    if pair.unicast {
        let rules = l.t.dir.join("no-multicast.nft");
        std::fs::write(
            &rules,
            "table bridge rvst_mcast {\n chain mcast {\n  type filter hook forward priority 0;\n  ip daddr 224.0.0.0/4 drop\n }\n}\n",
        )
        .unwrap();
        l.t.on_bridge(&["nft", "-f", rules.to_str().unwrap()]);
    }
    let svc = service(fwd, svc_extra);
    for (i, prio) in [(0, 150), (1, 100)] {
        let (me, peer) = (2 + i, 3 - i);
        let (vrrp_extra, sync_peer) = if pair.unicast {
            (
                format!(
                    "    unicast_src_ip: 198.18.0.{me}\n    unicast_peer: [\"198.18.0.{peer}\"]\n"
                ),
                format!(", peer: 198.18.0.{peer}"),
            )
        } else {
            (String::new(), String::new())
        };
        let sync = format!(
            "lvs_sync_daemon: {{ interface: lan0, syncid: 1, vrrp_instance: VI_1{sync_peer} }}\n"
        );
        let cfg = director_config(
            i,
            &format!("{}{sync}", instance(prio, 3, "0.1", &vrrp_extra)),
            &svc,
        )
        .replace("workers: 1,", &format!("workers: {},", pair.workers.max(1)));
        l.start(i, path(), &cfg);
    }
    eventually("A MASTER, B BACKUP", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER" && state(l.rvsd(1)) == "BACKUP").then_some(())
    });
    let b = &instances(l.rvsd(1))[0];
    assert!(b.adverts_received > 0, "B hears A: {b:?}");
    l
}

/// The connections in the sync messages among `frames`, as tshark's `ipvs` decoder
/// reads them: `syncid caddr cport vaddr vport daddr dport`, one per connection.
fn sync_messages(l: &HaLab, frames: &[Vec<u8>]) -> Vec<String> {
    // UDP to port 8848 (IPv4, no options: the UDP header at 34).
    let sync: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| f.len() > 42 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == [0x22, 0x90])
        .cloned()
        .collect();
    assert!(!sync.is_empty(), "no sync message captured");
    let pcap = l.t.dir.join("sync.pcap");
    testkit::net::write_pcap(&pcap, &sync);
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-d",
            "udp.port==8848,ipvs",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
        ])
        .args(["-e", "ipvs.syncid", "-e", "ipvs.caddr", "-e", "ipvs.cport"])
        .args([
            "-e",
            "ipvs.vaddr",
            "-e",
            "ipvs.vport",
            "-e",
            "ipvs.daddr",
            "-e",
            "ipvs.dport",
        ])
        .output()
        .expect("tshark (scripts/setup.sh installs it)");
    // One line per message; a field with several connections lists them with commas.
    let mut conns = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<Vec<&str>> = line.split('\t').map(|c| c.split(',').collect()).collect();
        if cols.len() != 7 {
            continue;
        }
        for k in 0..cols[1].len() {
            let at = |c: usize| cols[c].get(k).copied().unwrap_or("");
            conns.push(format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                cols[0].first().copied().unwrap_or(""),
                at(1),
                at(2),
                at(3),
                at(4),
                at(5),
                at(6)
            ));
        }
    }
    conns
}

/// Connections the client holds across the takeover: with two workers, each sits in
/// the BACKUP's table of the worker its packets go to, or stalls (2^-6 odds of passing
/// by luck with the placement broken).
const HELD: usize = 6;

/// Connection sync: long-lived keep-alive connections through a `fwd` service, opened
/// on A, are synced to B (the kernel's protocol, syncid 1, following VRRP); A is killed;
/// each carries on through B, on the same real server, with no reset.
fn an_established_connection_survives(mode: Mode, fwd: &str, svc_extra: &str, pair: Pair) {
    let mut l = start_pair(mode, fwd, svc_extra, pair);
    // A client thread holds the connections. `true` asks it for one request on each;
    // `false` for a round every 20 ms until the next message.
    type Round = Vec<Result<(String, u16), String>>;
    let (ask, asked) = std::sync::mpsc::channel::<bool>();
    // Each round with the moment it completed.
    let (tell, told) = std::sync::mpsc::channel::<(std::time::Instant, Round)>();
    let ns = l.client.ns.clone();
    let client = std::thread::spawn(move || {
        testkit::net::enter(&ns);
        let mut held: Vec<_> = (0..HELD)
            .map(|_| {
                testkit::net::HttpConn::connect(v4(VIP, 80), Duration::from_secs(5))
                    .expect("connect to the VIP")
            })
            .collect();
        let mut round = || -> Round {
            held.iter_mut()
                .map(|c| {
                    c.get()
                        .map(|name| (name, c.local_port()))
                        .map_err(|e| e.to_string())
                })
                .collect()
        };
        while let Ok(once) = asked.recv() {
            if once {
                let r = round();
                let _ = tell.send((std::time::Instant::now(), r));
                continue;
            }
            loop {
                let r = round();
                let _ = tell.send((std::time::Instant::now(), r));
                std::thread::sleep(Duration::from_millis(20));
                if asked.try_recv().is_ok() {
                    break;
                }
            }
        }
    });
    let one = || {
        ask.send(true).unwrap();
        told.recv().unwrap().1
    };
    // What A sends while the connections start, as the client's interface sees it (the
    // bridge floods the sync group's multicast).
    let rs_of = |name: &str| format!("198.18.0.{}", 10 + name[2..].parse::<u8>().unwrap());
    let b_sock = l.rvsd(1).socket.clone();
    let (first, frames) = testkit::net::capture(&l.client.ns, "eth0", Duration::ZERO, || {
        let first: Vec<(String, u16)> = one()
            .into_iter()
            .map(|r| r.expect("first request"))
            .collect();
        for _ in 0..3 {
            let again: Vec<String> = one()
                .into_iter()
                .map(|r| r.expect("request on A").0)
                .collect();
            assert_eq!(again, first.iter().map(|f| f.0.clone()).collect::<Vec<_>>());
        }
        // B has every connection: listed with the same client port and real server.
        eventually("B holds the synced connections", TAKEOVER, || {
            let Ok(ctrlplane::ctl::Response::Connections { conns }) =
                ctrlplane::ctl::call(&b_sock, &ctrlplane::ctl::Request::Connections)
            else {
                return None;
            };
            first
                .iter()
                .all(|(server, port)| {
                    conns.iter().any(|c| {
                        c.cport == *port
                            && c.state == "ESTABLISHED"
                            && c.daddr.to_string() == rs_of(server)
                    })
                })
                .then_some(())
        });
        first
    });
    // Wireshark's decoder of the kernel's sync protocol reads every held connection in
    // A's messages: the bytes are ip_vs_sync.c's. (Not FULLNAT's: the decoder ignores
    // a connection's size field and misreads what follows rvs's optional local-address
    // parameter, which the kernel skips by that size.)
    if !pair.unicast && fwd != "fullnat" {
        let decoded = sync_messages(&l, &frames);
        for (server, port) in &first {
            let want = format!("1\t198.18.1.1\t{port}\t{VIP}\t80\t{}\t80", rs_of(server));
            assert!(decoded.contains(&want), "{want:?} not in {decoded:?}");
        }
    }
    // The connections keep carrying requests, a round every 20 ms, while the master
    // dies and B takes over: every one is answered, by the same server.
    ask.send(false).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (killed, killed_unix) = (std::time::Instant::now(), std::time::SystemTime::now());
    l.kill(0);
    eventually("B MASTER", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    ask.send(true).unwrap();
    drop(ask);
    client.join().unwrap();
    let timed: Vec<(std::time::Instant, Round)> = told.try_iter().collect();
    assert!(
        timed.len() >= 20,
        "only {} rounds across the takeover",
        timed.len()
    );
    // No stall beyond the takeover: the longest wait between answered rounds is at most
    // the takeover B measured (kill to MASTER) twice over, TCP's retransmission backoff
    // for what was sent into the gap, plus a second. Relative to this run's takeover,
    // not a fixed duration.
    let became = instances(l.rvsd(1))[0].last_transition_unix;
    let killed_s = killed_unix
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let takeover = Duration::from_secs_f64((became - killed_s).max(0.0));
    let longest = timed
        .windows(2)
        .filter(|w| w[1].0 > killed)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    assert!(
        longest <= takeover * 2 + Duration::from_secs(1),
        "a stall of {longest:?} for a takeover of {takeover:?}"
    );
    let got: Vec<Round> = timed.into_iter().map(|(_, r)| r).collect();
    for r in &got {
        let servers: Vec<Result<&str, &String>> =
            r.iter().map(|x| x.as_ref().map(|x| x.0.as_str())).collect();
        let want: Vec<Result<&str, &String>> = first.iter().map(|f| Ok(f.0.as_str())).collect();
        assert_eq!(servers, want, "{got:?}");
    }
    // B received it as the sync protocol says, and counts what it got.
    let m = testkit::net::scrape_metrics(&l.dirs[1].ns);
    assert!(
        sample(
            &m,
            "rvs_sync_connections_total",
            &["direction=\"received\""]
        ) > Some(0),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l == "rvs_sync_messages_bad_total 0"),
        "{m}"
    );
    assert!(
        sample(&m, "rvs_sync_messages_total", &["direction=\"received\""]) > Some(0),
        "{m}"
    );
}

#[test]
fn an_established_nat_connection_survives_the_masters_death() {
    an_established_connection_survives(Mode::Nat, "nat", "", Pair::default());
}

#[test]
fn an_established_fullnat_connection_survives_with_two_workers_on_each_director() {
    an_established_connection_survives(
        Mode::FullNat,
        "fullnat",
        &format!("    local_addresses: [\"{LIP}\"]\n"),
        Pair {
            workers: 2,
            unicast: false,
        },
    );
}

/// Unicast VRRP (`unicast_src_ip`, `unicast_peer`) and unicast sync (`peer`) on a LAN
/// that drops every multicast packet.
#[test]
fn unicast_adverts_and_sync_carry_a_nat_connection_without_multicast() {
    an_established_connection_survives(
        Mode::Nat,
        "nat",
        "",
        Pair {
            workers: 1,
            unicast: true,
        },
    );
}

#[test]
fn an_established_dr_connection_survives_the_masters_death() {
    an_established_connection_survives(Mode::Dr, "dr", "", Pair::default());
}

#[test]
fn an_established_fullnat_connection_survives_the_masters_death() {
    an_established_connection_survives(
        Mode::FullNat,
        "fullnat",
        &format!("    local_addresses: [\"{LIP}\"]\n"),
        Pair::default(),
    );
}

/// A persistent client stays on its real server across the takeover: the MASTER syncs
/// the persistence template with the connection, and the BACKUP's next connection from
/// that client follows the template, not the BACKUP's own scheduler.
#[test]
fn a_persistent_client_keeps_its_server_across_the_takeover() {
    let mut l = start_pair(
        Mode::Nat,
        "nat",
        "    persistence: { timeout: 60 }\n",
        Pair::default(),
    );
    for a in ["198.18.1.9/24", "198.18.1.10/24"] {
        l.client.run(&["ip", "addr", "add", a, "dev", "eth0"]);
    }
    // One fresh connection from `src`: the name of the server that answered.
    let fetch = |l: &HaLab, src: &str| l.client.fetch_from(src, &format!("http://{VIP}/"));
    // rr on A: the other client takes rs1, ours rs2, and stays there.
    assert_eq!(fetch(&l, "198.18.1.9"), "rs1");
    for _ in 0..3 {
        assert_eq!(fetch(&l, "198.18.1.1"), "rs2");
    }
    let b_sock = l.rvsd(1).socket.clone();
    eventually("B holds our template, bound to rs2", TAKEOVER, || {
        let Ok(ctrlplane::ctl::Response::Connections { conns }) =
            ctrlplane::ctl::call(&b_sock, &ctrlplane::ctl::Request::Connections)
        else {
            return None;
        };
        conns
            .iter()
            .any(|c| {
                c.cport == 0
                    && c.caddr.to_string() == "198.18.1.1"
                    && c.daddr.to_string() == "198.18.0.12"
            })
            .then_some(())
    });
    l.kill(0);
    eventually("B MASTER", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    eventually("the client's ARP entry moved to B", TAKEOVER, || {
        (l.client_mac_for(VIP) == Some(l.mac_of(1))).then_some(())
    });
    // B's scheduler has picked nothing yet, so it would give rs1: the template gives rs2.
    for _ in 0..3 {
        assert_eq!(fetch(&l, "198.18.1.1"), "rs2", "the template lost");
    }
    // A client B never heard of shows where B's scheduler stands.
    assert_eq!(fetch(&l, "198.18.1.10"), "rs1");
}

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// `rvsadm ARGS` against director `i`: its standard output (it must succeed).
fn rvsadm(l: &HaLab, i: usize, args: &[&str]) -> String {
    l.rvsd(i).rvsadm(RVSADM, args)
}

/// ipvsadm's way: `--start-daemon master|backup --mcast-interface IF --syncid N`,
/// `-L --daemon` in ipvsadm's words, `--stop-daemon`; a connection made on the master
/// reaches the backup's table.
#[test]
fn ipvsadm_starts_and_stops_the_sync_daemons() {
    let mut l = HaLab::new();
    let a = director_config(0, &instance(150, 3, "0.1", ""), &nat_service());
    let b = director_config(1, &instance(100, 3, "0.1", ""), &nat_service());
    l.start(0, path(), &a);
    l.start(1, path(), &b);
    eventually("A MASTER", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER").then_some(())
    });
    assert_eq!(rvsadm(&l, 0, &["-L", "--daemon"]), "");
    rvsadm(
        &l,
        0,
        &[
            "--start-daemon",
            "master",
            "--mcast-interface",
            "lan0",
            "--syncid",
            "3",
        ],
    );
    rvsadm(
        &l,
        1,
        &[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            "lan0k",
            "--syncid",
            "3",
        ],
    );
    assert_eq!(
        rvsadm(&l, 0, &["-L", "--daemon"]),
        "master sync daemon (mcast=lan0, syncid=3)\n"
    );
    // ipvsadm echoes the interface it was given (here the kernel twin's name).
    assert_eq!(
        rvsadm(&l, 1, &["-L", "--daemon"]),
        "backup sync daemon (mcast=lan0k, syncid=3)\n"
    );
    // A second master is refused, as ipvsadm's kernel does.
    let again = std::process::Command::new(RVSADM)
        .arg("--socket")
        .arg(&l.rvsd(0).socket)
        .args(["--start-daemon", "master"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));
    // A keep-alive connection through A appears in B's table.
    let ns = l.client.ns.clone();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        testkit::net::enter(&ns);
        let mut c = testkit::net::HttpConn::connect(v4(VIP, 80), Duration::from_secs(5)).unwrap();
        for _ in 0..4 {
            c.get().unwrap();
        }
        port_tx.send(c.local_port()).unwrap();
        let _ = wait.recv();
    });
    let port = port_rx.recv().unwrap();
    let b_sock = l.rvsd(1).socket.clone();
    eventually(
        "B holds the connection",
        TAKEOVER,
        || match ctrlplane::ctl::call(&b_sock, &ctrlplane::ctl::Request::Connections) {
            Ok(ctrlplane::ctl::Response::Connections { conns }) => {
                conns.iter().any(|c| c.cport == port).then_some(())
            }
            _ => None,
        },
    );
    drop(done);
    t.join().unwrap();
    rvsadm(&l, 1, &["--stop-daemon", "backup"]);
    assert_eq!(rvsadm(&l, 1, &["-L", "--daemon"]), "");
    rvsadm(&l, 0, &["--stop-daemon", "master"]);
    assert_eq!(rvsadm(&l, 0, &["-L", "--daemon"]), "");
    // Stopped means stopped: a new connection through A never reaches B.
    let ns = l.client.ns.clone();
    let port = testkit::net::in_ns(&ns, || {
        let mut c = testkit::net::HttpConn::connect(v4(VIP, 80), Duration::from_secs(5)).unwrap();
        for _ in 0..4 {
            c.get().unwrap();
        }
        c.local_port()
    });
    std::thread::sleep(Duration::from_secs(2));
    let Ok(ctrlplane::ctl::Response::Connections { conns }) =
        ctrlplane::ctl::call(&b_sock, &ctrlplane::ctl::Request::Connections)
    else {
        panic!("B's connections");
    };
    assert!(
        !conns.iter().any(|c| c.cport == port),
        "synced after --stop-daemon: {conns:?}"
    );
}
