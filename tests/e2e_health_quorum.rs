//! Health end to end, the service-level rules: `alpha` with a server that is dead from
//! the start, the quorum with hysteresis on the way down and back up, the sorry server
//! arriving and leaving (and waiting at weight 0 with `sorry_server_inhibit`), and the
//! scripts run exactly as configured, in order.

use std::time::{Duration, Instant};
use testkit::eventually;
use testkit::health::{all3, checks, forwarding, DETECT};
use testkit::lab::VIP;
use testkit::net::{get_many, tally, v4, HttpServer};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

/// rs3's check goes to an address nobody has, so it fails only at its connect_timeout
/// (1.5 s): it is dead from the start. With `alpha` it never enters the table; without,
/// it serves until that first failure (at start one failure is enough).
fn rs3_dead_from_the_start(alpha: bool) -> (Vec<Vec<(String, u32)>>, testkit::lab::Lab) {
    let service = format!("    delay_loop: 0.3\n    warmup: 0\n    alpha: {alpha}\n");
    let l = testkit::health::lab(std::path::Path::new(RVSD), &service, |d| {
        let ip = if d == 13 { 99 } else { d };
        let ip = format!("198.18.0.{ip}");
        format!("        checks: [{{ type: tcp_check, connect_ip: \"{ip}\", connect_timeout: 1.5, retry: 0 }}]\n")
    });
    // What forwards, from the first moment rvsd answers until rs3's checker gave up.
    let d = l.t.rvsd_ref(0);
    let mut seen = Vec::new();
    let deadline = Instant::now() + DETECT;
    loop {
        seen.push(forwarding(d));
        let rs3_down = checks(d)
            .iter()
            .any(|c| c.real_server == "198.18.0.13:80" && !c.up && c.checks_failed >= 1);
        if rs3_down {
            break;
        }
        assert!(Instant::now() < deadline, "rs3's checker never gave up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (seen, l)
}

#[test]
fn alpha_keeps_a_server_dead_from_the_start_out_of_the_table() {
    let rs3 = ("198.18.0.13:80".to_string(), 1);
    // Without alpha (keepalived's default) a server starts up: rs3 serves at first.
    let (seen, l) = rs3_dead_from_the_start(false);
    assert!(seen[0].contains(&rs3), "{:?}", seen[0]);
    drop(l);
    // With alpha every server starts down: rs3 never enters, rs1 and rs2 do at their
    // first success.
    let (seen, l) = rs3_dead_from_the_start(true);
    assert!(seen.iter().all(|s| !s.contains(&rs3)), "{seen:?}");
    let d = l.t.rvsd_ref(0);
    eventually("rs1 and rs2 in", DETECT, || {
        (forwarding(d) == all3()[..2].to_vec()).then_some(())
    });
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 6));
    assert_eq!(m.get("rs3"), None, "{m:?}");
}

/// quorum 2, hysteresis 1 over three servers of weight 1: lost below 1 (all down), back
/// only at 3. While it is lost the sorry server alone serves, even with two servers
/// healthy again; with `sorry_server_inhibit` it waits at weight 0 while the quorum
/// holds. The scripts run with exactly their configured arguments, each once, in order.
#[test]
fn the_quorum_returns_at_quorum_plus_hysteresis_and_the_sorry_server_leaves() {
    let dir = std::env::temp_dir().join(format!("rvst-quorum-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rec = testkit::Recorder::new(&dir);
    let r = rec.script.display();
    let service = format!(
        "    delay_loop: 0.3\n    warmup: 0\n    quorum: 2\n    hysteresis: 1\n    quorum_up: \"{r} quorum up\"\n    quorum_down: \"{r} quorum down\"\n    sorry_server: {{ address: \"198.18.0.11:8080\", forward: nat }}\n    sorry_server_inhibit: true\n"
    );
    let mut l = testkit::health::lab(std::path::Path::new(RVSD), &service, |d| {
        format!("        notify_up: \"{r} up rs{}\"\n        notify_down: \"{r} down rs{}\"\n        checks: [{{ type: tcp_check, connect_timeout: 0.5, retry: 0 }}]\n", d - 10, d - 10)
    });
    let _sorry = HttpServer::start(&l.rs[0].ns, v4("198.18.0.11", 8080), "sorry");
    let sorry = |w: u32| ("198.18.0.11:8080".to_string(), w);
    let with_sorry = |mut v: Vec<(String, u32)>, w: u32| {
        v.push(sorry(w));
        v.sort();
        v
    };
    let d = l.t.rvsd_ref(0);
    // The quorum holds: the three servers, the sorry server waiting at weight 0.
    eventually("three servers, the sorry server at 0", DETECT, || {
        (forwarding(d) == with_sorry(all3(), 0)).then_some(())
    });
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 6));
    assert_eq!(m.get("sorry"), None, "{m:?}");
    let lines = || rec.lines();
    // All three die: the sorry server alone, at its weight.
    l.servers.clear();
    let d = l.t.rvsd_ref(0);
    eventually("the sorry server alone", DETECT, || {
        (forwarding(d) == vec![sorry(1)]).then_some(())
    });
    eventually("down and quorum down", DETECT, || {
        let mut v = lines();
        v.sort();
        (v == ["down rs1", "down rs2", "down rs3", "quorum down"]).then_some(())
    });
    // Two come back: weight 2 < quorum + hysteresis = 3, the quorum stays lost.
    for i in [0, 1] {
        let ip = format!("198.18.0.{}", 11 + i);
        l.servers.push(HttpServer::start(
            &l.rs[i].ns,
            v4(&ip, 80),
            &format!("rs{}", i + 1),
        ));
    }
    eventually("rs1 and rs2 healthy", DETECT, || {
        let c = checks(d);
        ["198.18.0.11:80", "198.18.0.12:80"]
            .iter()
            .all(|rs| c.iter().any(|x| x.real_server == *rs && x.up))
            .then_some(())
    });
    // Their recovery is seen (notify_up), yet over several intervals the sorry server
    // keeps the service alone.
    eventually("notify_up of rs1 and rs2", DETECT, || {
        (lines().len() == 6).then_some(())
    });
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        assert_eq!(
            forwarding(d),
            vec![sorry(1)],
            "the quorum came back below 3"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 4));
    assert_eq!(m.get("sorry"), Some(&4), "{m:?}");
    // The third: the quorum is back, the real servers serve, the sorry server waits.
    l.servers
        .push(HttpServer::start(&l.rs[2].ns, v4("198.18.0.13", 80), "rs3"));
    eventually("three servers again, the sorry server at 0", DETECT, || {
        (forwarding(d) == with_sorry(all3(), 0)).then_some(())
    });
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 6));
    assert_eq!(m.get("sorry"), None, "{m:?}");
    eventually("quorum up, once, after the third server", DETECT, || {
        (lines().len() == 8).then_some(())
    });
    let v = lines();
    let mut first4 = v[..4].to_vec();
    first4.sort();
    assert_eq!(first4, ["down rs1", "down rs2", "down rs3", "quorum down"]);
    let mut ups = v[4..6].to_vec();
    ups.sort();
    assert_eq!(ups, ["up rs1", "up rs2"]);
    // rs3's notify_up and quorum_up come from the same check: either order.
    let mut last = v[6..].to_vec();
    last.sort();
    assert_eq!(last, ["quorum up", "up rs3"], "{v:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A health change rebuilds the service, and keeps what the schedulers know: a
/// persistent client stays on its server when another server fails, and rr carries on
/// from where it was (the kernel's `ip_vs_rr_del_dest` steps its place back from a
/// removed server) instead of starting again at the first.
#[test]
fn persistence_and_the_rr_place_survive_another_servers_failure() {
    let mut l = testkit::health::lab(
        std::path::Path::new(RVSD),
        "    delay_loop: 0.3\n    warmup: 0\n    persistence: { timeout: 60 }\n",
        |_| "        checks: [{ type: tcp_check, connect_timeout: 0.5, retry: 0 }]\n".into(),
    );
    for a in ["198.18.1.9/24", "198.18.1.10/24"] {
        l.client.run(&["ip", "addr", "add", a, "dev", "eth0"]);
    }
    let d = l.t.rvsd_ref(0);
    testkit::health::all_up(d);
    let url = format!("http://{VIP}/");
    let fetch = |src: &str| l.client.fetch_from(src, &url);
    // rr: client .1 takes rs1, client .9 rs2; each stays.
    assert_eq!(fetch("198.18.1.1"), "rs1");
    assert_eq!(fetch("198.18.1.9"), "rs2");
    assert_eq!(fetch("198.18.1.1"), "rs1");
    // rs2 dies and leaves the service.
    drop(l.servers.remove(1));
    eventually("rs2 out", DETECT, || {
        (forwarding(d).len() == 2).then_some(())
    });
    let fetch = |src: &str| l.client.fetch_from(src, &url);
    for _ in 0..3 {
        assert_eq!(fetch("198.18.1.1"), "rs1", "the persistent client moved");
    }
    // rr's place was rs2; stepped back to rs1, the next new client goes to rs3 (a
    // scheduler started afresh would say rs1).
    assert_eq!(fetch("198.18.1.10"), "rs3");
}
