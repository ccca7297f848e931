//! Health checks end to end: rvsd with a kernel twin (checks leave from the DIP through
//! the exception path), three kernel HTTP real servers, and keepalived's checkers with
//! test intervals of a few tenths of a second. What forwards is read from rvsd's
//! listing (what `rvsadm -L -n` prints) and the checkers from `rvsadm --health`.

use std::time::Duration;
use testkit::eventually;
use testkit::health::{all3, all_up, checks, forwarding, is, Daemon, DETECT};
use testkit::lab::{lab_port, Lab, Mode, VIP};
use testkit::net::{get_many, sample, tally, v4, ClientLoop, HttpServer};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// The health lab with the same keys on every real server.
fn health_lab(service_keys: &str, rs_keys: &str) -> Lab {
    health_lab_with(service_keys, |_| rs_keys.to_string())
}

fn health_lab_with(service_keys: &str, rs_keys: impl Fn(u8) -> String) -> Lab {
    testkit::health::lab(std::path::Path::new(RVSD), service_keys, rs_keys)
}

/// An HTTP_GET check of `/` with `retry` (keepalived's: retry + 1 failures in a row
/// take a server out).
fn http_get(retry: u32) -> String {
    format!("        checks:\n          - {{ type: http_get, url: [{{ path: /, status_code: 200 }}], connect_timeout: 0.5, retry: {retry}, delay_before_retry: 0.2 }}\n")
}

fn server_names(l: &Lab, n: usize) -> std::collections::BTreeMap<String, usize> {
    tally(&get_many(&l.client.ns, v4(VIP, 80), n))
}

/// `rvsadm ARGS` against the lab's rvsd: its standard output.
fn rvsadm(l: &Lab, args: &[&str]) -> String {
    l.t.rvsd_ref(0).rvsadm(RVSADM, args)
}

/// The weight `rvsadm -L -n` shows for a real server, None when it is not listed.
fn listed_weight(l: &Lab, rs: &str) -> Option<u32> {
    let out = rvsadm(l, &["-L", "-n"]);
    out.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 4 && f[0] == "->" && f[1] == rs).then(|| f[3].parse().unwrap())
    })
}

/// The checker of a real server that has one check.
fn check_of(d: &testkit::Rvsd, rs: &str) -> ctrlplane::health::CheckStatus {
    let all = checks(d);
    let mut mine = all.iter().filter(|c| c.real_server == rs);
    match (mine.next(), mine.next()) {
        (Some(c), None) => c.clone(),
        _ => panic!("not one checker for {rs}: {all:?}"),
    }
}

/// rvsd's metrics, from inside the director's namespace.
fn scrape(l: &Lab) -> String {
    testkit::net::scrape_metrics(&l.dir.ns)
}

/// The State column `rvsadm --health` shows for a real server's checker.
fn health_state(l: &Lab, rs: &str) -> String {
    let out = rvsadm(l, &["--health"]);
    // Service ("TCP 198.18.1.100:80"), RealServer, Check, State, ...
    out.lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 4 && f[2] == rs).then(|| f[4].to_string())
        })
        .unwrap_or_else(|| panic!("{rs} not in --health:\n{out}"))
}

#[test]
fn a_dead_server_leaves_and_comes_back() {
    const RS2: &str = "198.18.0.12:80";
    // rs2's label as exposed; its gauge and its checker's failure counter.
    const RS2_LABEL: &str = "rs=\"198.18.0.12:80\"";
    let rs2_up = |text: &str| sample(text, "rvs_real_server_up", &[RS2_LABEL]);
    let rs2_failed = |text: &str| {
        sample(
            text,
            "rvs_health_checks_total",
            &[RS2_LABEL, "result=\"failed\""],
        )
    };
    let mut l = health_lab("    delay_loop: 0.3\n    warmup: 0\n", &http_get(2));
    all_up(l.t.rvsd_ref(0));
    let d = l.t.rvsd_ref(0);
    assert_eq!(forwarding(d), all3());
    for x in 11..14 {
        let rs = format!("198.18.0.{x}:80");
        assert_eq!(listed_weight(&l, &rs), Some(1), "{rs}");
        assert_eq!(health_state(&l, &rs), "UP", "{rs}");
    }
    let m = scrape(&l);
    assert_eq!(rs2_up(&m), Some(1), "{m}");
    let failed_before = rs2_failed(&m).expect("rs2's failure counter");
    // The checks came from the DIP, through the kernel twin.
    let peers = l.servers[0].peers.lock().unwrap().clone();
    assert!(
        peers.iter().any(|p| p.ip().to_string() == "198.18.0.2"),
        "{peers:?}"
    );

    // A user keeps asking while rs2's server stops: its connections are refused.
    let client = ClientLoop::start(&l.client.ns, v4(VIP, 80));
    drop(l.servers.remove(1));
    // retry 2: up through two failures in a row, down at the third, never sooner.
    let rs2 = eventually("rs2 seen down", DETECT, || {
        let c = check_of(d, RS2);
        if c.up {
            assert!(
                c.consecutive_failures <= 2,
                "up after three failures: {c:?}"
            );
            None
        } else {
            Some(c)
        }
    });
    assert!(
        rs2.consecutive_failures >= 3,
        "retry 2: three failures: {rs2:?}"
    );
    assert_eq!(rs2.check, "HTTP_GET");
    assert!(rs2.last_result.contains("198.18.0.12"), "{rs2:?}");
    eventually("rs2 taken out", DETECT, || {
        (listed_weight(&l, RS2).is_none()).then_some(())
    });
    let down_at = std::time::Instant::now();
    assert_eq!(health_state(&l, RS2), "DOWN");
    let d = l.t.rvsd_ref(0);
    assert_eq!(forwarding(d).len(), 2);
    // The same, as a program reads it: `rvsadm --health --json`.
    let out = rvsadm(&l, &["--health", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("--health --json");
    let rows = json["checks"].as_array().expect("checks");
    for row in rows {
        let down = row["real_server"] == RS2;
        assert_eq!(row["up"], !down, "{row}");
    }
    assert!(rows.iter().any(|r| r["real_server"] == RS2), "{json}");
    // Prometheus: rs2 down, its failures counted.
    let m = scrape(&l);
    assert_eq!(rs2_up(&m), Some(0), "{m}");
    let failed_down = rs2_failed(&m).expect("rs2's failure counter");
    assert!(
        failed_down >= failed_before + 3,
        "{failed_before} -> {failed_down}"
    );
    // keepalived's words for it (ipwrapper.c), in rvsd's log.
    let removed = "Removing service [198.18.0.12]:tcp:80 from VS [198.18.1.100]:tcp:80";
    eventually("the removal logged", DETECT, || {
        d.log_text().contains(removed).then_some(())
    });
    // From the moment it is out, the user sees no failed request and none from rs2.
    let seen = client.after(down_at, 40, DETECT);
    let m = tally(&seen);
    assert_eq!(m.get("rs2"), None, "{m:?}");
    // The configuration still lists rs2: health is an overlay.
    let saved = match ctrlplane::ctl::call(&d.socket, &ctrlplane::ctl::Request::ConfigYaml) {
        Ok(ctrlplane::ctl::Response::ConfigYaml { yaml }) => yaml,
        other => panic!("{other:?}"),
    };
    assert!(saved.contains(RS2), "{saved}");
    assert!(rvsadm(&l, &["-S", "-n"]).contains("-r 198.18.0.12:80"));

    // Back: in rotation again, and still no failed request.
    l.servers.insert(
        1,
        HttpServer::start(&l.rs[1].ns, v4("198.18.0.12", 80), "rs2"),
    );
    eventually("rs2 back", DETECT, || {
        (listed_weight(&l, RS2) == Some(1)).then_some(())
    });
    let up_at = std::time::Instant::now();
    assert_eq!(health_state(&l, RS2), "UP");
    let m = scrape(&l);
    assert_eq!(rs2_up(&m), Some(1), "{m}");
    let added = "Adding service [198.18.0.12]:tcp:80 to VS [198.18.1.100]:tcp:80";
    let d = l.t.rvsd_ref(0);
    eventually("the return logged", DETECT, || {
        d.log_text().contains(added).then_some(())
    });
    let seen = client.after(up_at, 30, DETECT);
    let m = tally(&seen);
    assert!(m.get("rs2").is_some_and(|n| *n > 0), "{m:?}");
    let all_after_down = client.after(down_at, 1, DETECT);
    tally(&all_after_down);
    drop(client);
    let m = server_names(&l, 30);
    assert_eq!(
        m.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{m:?}"
    );
}

#[test]
fn inhibit_on_failure_keeps_a_dead_server_at_weight_zero() {
    let mut l = health_lab(
        "    delay_loop: 0.3\n    warmup: 0\n    inhibit_on_failure: true\n",
        "        checks: [{ type: tcp_check, connect_timeout: 0.5, retry: 0 }]\n",
    );
    all_up(l.t.rvsd_ref(0));
    drop(l.servers.remove(2));
    eventually("rs3 at weight 0", DETECT, || {
        (listed_weight(&l, "198.18.0.13:80") == Some(0)).then_some(())
    });
    assert_eq!(health_state(&l, "198.18.0.13:80"), "DOWN");
    assert_eq!(forwarding(l.t.rvsd_ref(0)).len(), 3);
    // -S writes the configured weight, not the inhibited one.
    let saved = rvsadm(&l, &["-S", "-n"]);
    assert!(saved.contains("-r 198.18.0.13:80 -m -w 1"), "{saved}");
    let m = server_names(&l, 20);
    assert_eq!(m.get("rs3"), None, "{m:?}");
}

/// HTTP_GET's tests: the status code must be in the set, the body's MD5 the digest.
#[test]
fn a_wrong_status_or_digest_marks_a_server_down() {
    // md5("rs1\n"), as `keepalived --genhash` computes it: the body only.
    let out = std::process::Command::new("sh")
        .args(["-c", "printf 'rs1\\n' | md5sum"])
        .output()
        .unwrap();
    let rs1_md5 = String::from_utf8_lossy(&out.stdout)[..32].to_string();
    let digest_check = format!("        checks:\n          - {{ type: http_get, url: [{{ path: /, digest: \"{rs1_md5}\" }}], connect_timeout: 0.5, retry: 0 }}\n");
    let l = health_lab("    delay_loop: 0.3\n    warmup: 0\n", &digest_check);
    let d = l.t.rvsd_ref(0);
    // Only rs1's body has that digest.
    eventually("rs2 and rs3 down on their digest", DETECT, || {
        (forwarding(d) == vec![("198.18.0.11:80".to_string(), 1)]).then_some(())
    });
    let c = checks(d);
    let rs2 = c
        .iter()
        .find(|c| c.real_server == "198.18.0.12:80")
        .unwrap();
    assert!(rs2.last_result.starts_with("MD5 digest error"), "{rs2:?}");
    drop(l);

    let l = health_lab(
        "    delay_loop: 0.3\n    warmup: 0\n",
        "        checks: [{ type: http_get, url: [{ path: /, status_code: \"500-599\" }], connect_timeout: 0.5, retry: 0 }]\n",
    );
    let d = l.t.rvsd_ref(0);
    eventually("every server down on its status code", DETECT, || {
        forwarding(d).is_empty().then_some(())
    });
    let c = checks(d);
    assert!(
        c.iter()
            .all(|c| c.last_result.contains("status_code [200]")),
        "{c:?}"
    );
}

/// MISC_CHECK: exit 0 up, 1 down, and with misc_dynamic 2-255 up at weight code - 2.
#[test]
fn misc_check_exit_codes_and_dynamic_weights() {
    let dir = std::env::temp_dir().join(format!("rvst-misc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let code = |d: u8, c: u8| std::fs::write(dir.join(format!("rs{d}")), c.to_string()).unwrap();
    code(11, 0);
    code(12, 1);
    code(13, 7);
    // One script per server: the address is its argument.
    let script = dir.join("check.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nread c < {}/rs$1\nexit $c\n", dir.display()),
    )
    .unwrap();
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: wrr\n    delay_loop: 0.3\n    warmup: 0\n    real_servers:\n{}",
        (11..14)
            .map(|d| format!("      - address: \"198.18.0.{d}:80\"\n        forward: nat\n        checks: [{{ type: misc_check, misc_path: \"sh {} {d}\", misc_dynamic: true }}]\n", script.display()))
            .collect::<String>()
    );
    let l = lab_port(
        std::path::Path::new(RVSD),
        Mode::Nat,
        &svc,
        1,
        "    kernel: { name: lan0k }\n",
    );
    let d = l.t.rvsd_ref(0);
    let want = |v: &[(u8, u32)]| -> Vec<(String, u32)> {
        v.iter()
            .map(|(d, w)| (format!("198.18.0.{d}:80"), *w))
            .collect()
    };
    eventually("rs2 out, rs3 at weight 5", DETECT, || {
        (forwarding(d) == want(&[(11, 1), (13, 5)])).then_some(())
    });
    code(12, 2);
    code(13, 0);
    // Exit 0 with misc_dynamic: up, "weight unchanged" (keepalived's man page).
    eventually("rs2 back at weight 0, rs3 still at 5", DETECT, || {
        (forwarding(d) == want(&[(11, 1), (12, 0), (13, 5)])).then_some(())
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload changes no checker's state: not one that leaves the checks alone, and not
/// one that only retimes them (keepalived issue #1720: a dead server must not come back
/// for a while after a reload). Counters that restarted would betray a restarted check.
#[test]
fn a_reload_keeps_the_checkers_state() {
    let mut l = health_lab(
        "    delay_loop: 0.3\n    warmup: 0\n",
        "        checks: [{ type: tcp_check, connect_timeout: 0.5, retry: 0 }]\n",
    );
    all_up(l.t.rvsd_ref(0));
    drop(l.servers.remove(0));
    let d = l.t.rvsd_ref(0);
    eventually("rs1 down", DETECT, || {
        is(d, "198.18.0.11:80", false).then_some(())
    });
    let text = std::fs::read_to_string(&d.config).unwrap();
    // Another scheduler; then the checks retimed as well.
    let reloads = [
        text.replace("scheduler: rr", "scheduler: wrr"),
        text.replace("scheduler: rr", "scheduler: wrr")
            .replace("delay_loop: 0.3", "delay_loop: 0.25"),
    ];
    // A user keeps asking through both reloads (once rs1 is out of the table).
    eventually("rs1 out", DETECT, || {
        (forwarding(d).len() == 2).then_some(())
    });
    let client = ClientLoop::start(&l.client.ns, v4(VIP, 80));
    for next in &reloads {
        let before = checks(d);
        assert_eq!(before.len(), 3);
        let t0 = std::time::Instant::now();
        d.reload(next);
        // Over many check intervals, rs1 never comes back.
        let until = std::time::Instant::now() + Duration::from_millis(1500);
        while std::time::Instant::now() < until {
            assert_eq!(forwarding(d).len(), 2, "rs1 came back after the reload");
            std::thread::sleep(Duration::from_millis(50));
        }
        let after = checks(d);
        let elapsed = t0.elapsed().as_secs_f64();
        assert_eq!(after.len(), 3);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(
                (b.up, b.last_change_unix),
                (a.up, a.last_change_unix),
                "{a:?}"
            );
            let ran = a.checks_ok + a.checks_failed - (b.checks_ok + b.checks_failed);
            assert!(ran > 0, "the same check, still counting: {b:?} -> {a:?}");
            // No re-check storm: at most one check per (shortest) interval, plus the
            // one a reload may start at once. Load only makes checks later, so this
            // bound cannot fail on a slow machine.
            let bound = (elapsed / 0.25).ceil() as u64 + 2;
            assert!(ran <= bound, "{ran} checks in {elapsed:.2} s: {a:?}");
        }
        // Nobody saw a failure (tally panics on one) or rs1 (a brief flap would put it
        // back for a moment).
        let seen = client.after(t0, 20, DETECT);
        assert_eq!(tally(&seen).get("rs1"), None, "{seen:?}");
    }
}

/// Every server down: the sorry server answers; keepalived's quorum with hysteresis,
/// its quorum and notify scripts, and `alpha` at start-up.
#[test]
fn the_sorry_server_quorum_scripts_notify_and_alpha() {
    let dir = std::env::temp_dir().join(format!("rvst-scripts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = |n: &str| dir.join(n).display().to_string();
    let service = format!(
        "    delay_loop: 0.3\n    warmup: 0\n    alpha: true\n    quorum: 2\n    hysteresis: 1\n    quorum_up: \"touch {}\"\n    quorum_down: \"touch {}\"\n    sorry_server: {{ address: \"198.18.0.11:8080\", forward: nat }}\n",
        f("quorum-up"),
        f("quorum-down")
    );
    let rs = format!(
        "        notify_up: \"touch {}-$(echo up)\"\n        notify_down: \"touch {}\"\n        checks: [{{ type: tcp_check, connect_timeout: 0.5, retry: 0 }}]\n",
        f("rs"),
        f("rs-down")
    );
    let mut l = health_lab(&service, &rs);
    let _sorry = HttpServer::start(&l.rs[0].ns, v4("198.18.0.11", 8080), "sorry");
    let d = l.t.rvsd_ref(0);
    // alpha: every server starts down, so the quorum (sum 0) starts lost; the first
    // successes bring them in and the quorum back at 3 >= quorum + hysteresis.
    eventually("all three in after their first check", DETECT, || {
        (forwarding(d) == all3()).then_some(())
    });
    let exists = |n: &str| dir.join(n).exists();
    eventually("quorum_up and notify_up ran", DETECT, || {
        (exists("quorum-up") && exists("rs-up")).then_some(())
    });
    // Two servers die: weight 1 is not below quorum - hysteresis = 1, the quorum holds.
    drop(l.servers.remove(2));
    drop(l.servers.remove(1));
    let d = l.t.rvsd_ref(0);
    eventually("two servers out", DETECT, || {
        (forwarding(d) == vec![("198.18.0.11:80".to_string(), 1)]).then_some(())
    });
    assert!(
        !exists("quorum-down"),
        "hysteresis holds the quorum at weight 1"
    );
    eventually("notify_down ran", DETECT, || {
        exists("rs-down").then_some(())
    });
    // The last one: the sorry server alone.
    drop(l.servers.remove(0));
    let d = l.t.rvsd_ref(0);
    eventually("the sorry server alone", DETECT, || {
        (forwarding(d) == vec![("198.18.0.11:8080".to_string(), 1)]).then_some(())
    });
    eventually("quorum_down ran", DETECT, || {
        exists("quorum-down").then_some(())
    });
    let m = server_names(&l, 6);
    assert_eq!(m.get("sorry"), Some(&6), "{m:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A held connection to a server whose check fails keeps going with expire_nodest_conn
/// off, and ends with it on. The check is a MISC_CHECK the test controls, one flag file
/// per server, so the server itself stays up and only the one holding the connection
/// fails: the other two must stay in the service throughout.
#[test]
fn a_held_connection_follows_expire_nodest_conn() {
    let dir = std::env::temp_dir().join(format!("rvst-nodest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flag = |x: u8| dir.join(format!("fail-198.18.0.{x}"));
    let rs_keys = |x: u8| {
        format!(
            "        checks: [{{ type: misc_check, misc_path: \"test ! -e {}\" }}]\n",
            flag(x).display()
        )
    };
    for expire in [false, true] {
        for x in 11..14 {
            let _ = std::fs::remove_file(flag(x));
        }
        let l = health_lab_with("    delay_loop: 0.3\n    warmup: 0\n", rs_keys);
        let d = l.t.rvsd_ref(0);
        if expire {
            let text = std::fs::read_to_string(&d.config).unwrap().replace(
                "ipvs: { connections: 65536 }",
                "ipvs: { connections: 65536, expire_nodest_conn: true }",
            );
            d.reload(&text);
        }
        eventually("up", DETECT, || (forwarding(d) == all3()).then_some(()));
        let ns = l.client.ns.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (back, answers) = std::sync::mpsc::channel::<Result<String, String>>();
        // One keep-alive connection, held in the client's namespace.
        let client = std::thread::spawn(move || {
            testkit::net::enter(&ns);
            let mut c =
                testkit::net::HttpConn::connect(v4(VIP, 80), Duration::from_secs(3)).unwrap();
            back.send(c.get().map_err(|e| e.to_string())).unwrap();
            rx.recv().unwrap();
            back.send(c.get().map_err(|e| e.to_string())).unwrap();
        });
        let first = answers.recv().unwrap().unwrap();
        // rsN answers from 198.18.0.(10 + N): fail that server's check only.
        let held = first
            .strip_prefix("rs")
            .and_then(|n| n.parse::<u8>().ok())
            .map(|n| 10 + n)
            .unwrap_or_else(|| panic!("not a server's name: {first:?}"));
        let held_rs = format!("198.18.0.{held}:80");
        let others: Vec<(String, u32)> = all3().into_iter().filter(|r| r.0 != held_rs).collect();
        assert_eq!(others.len(), 2, "{held_rs} is not one of the three");
        std::fs::write(flag(held), "").unwrap();
        eventually("the held connection's server out", DETECT, || {
            let now = forwarding(d);
            assert!(
                others.iter().all(|o| now.contains(o)),
                "a server whose check passes left: {now:?}"
            );
            (now == others).then_some(())
        });
        for (rs, _) in &others {
            assert!(is(d, rs, true), "{rs}: {:?}", checks(d));
        }
        tx.send(()).unwrap();
        let second = answers.recv_timeout(Duration::from_secs(10)).unwrap();
        client.join().unwrap();
        if expire {
            assert!(second.is_err(), "expire_nodest_conn ends it: {second:?}");
        } else {
            assert_eq!(second, Ok(first), "the held connection keeps its server");
        }
        // Whatever became of the held connection, the other two still forward.
        assert_eq!(forwarding(d), others);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A process in a namespace, killed when dropped.
/// Every other checker against real servers: rs1 runs a TCP listener on 8080, a UDP
/// echo on 9999, dnsmasq and an `openssl s_server`; rs2 runs none of them; rs3 is pinged
/// at an address nobody has. Each check must pass where its server runs and fail, with
/// its reason, where it does not.
#[test]
fn tcp_connect_port_udp_dns_ssl_and_ping_checks() {
    let checks_yaml = "        checks:\n          - { type: tcp_check, connect_port: 8080 }\n          - { type: udp_check, connect_port: 9999, payload: \"68656c6c6f\", require_reply: \"68656cXX6f\" }\n          - { type: dns_check, connect_port: 53, dns_type: A, name: rs.test. }\n          - { type: ssl_get, connect_port: 4443, url: [{ path: / }] }\n          - { type: ping_check }\n";
    let rs = format!(
        "      - address: \"198.18.0.11:80\"\n        forward: nat\n{checks_yaml}      - address: \"198.18.0.12:80\"\n        forward: nat\n{checks_yaml}      - address: \"198.18.0.13:80\"\n        forward: nat\n        checks: [{{ type: ping_check, connect_ip: \"198.18.0.99\" }}]\n"
    );
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    delay_loop: 0.5\n    warmup: 0\n    connect_timeout: 1\n    retry: 0\n    real_servers:\n{rs}"
    );
    let l = lab_port(
        std::path::Path::new(RVSD),
        Mode::Nat,
        &svc,
        1,
        "    kernel: { name: lan0k }\n",
    );
    let rs1 = &l.rs[0];
    let _tcp = HttpServer::start(&rs1.ns, v4("198.18.0.11", 8080), "tcp");
    // UDP echo.
    let ns = rs1.ns.clone();
    let _udp = std::thread::spawn(move || {
        testkit::net::enter(&ns);
        let s = std::net::UdpSocket::bind("198.18.0.11:9999").unwrap();
        let mut b = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            let _ = s.send_to(&b[..n], from);
        }
    });
    let _dns = Daemon(rs1.spawn(&[
        "dnsmasq",
        "--no-daemon",
        "--port=53",
        "--listen-address=198.18.0.11",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--address=/rs.test/198.18.0.11",
    ]));
    let dir = l.t.dir.clone();
    let _tls = testkit::health::tls_server(rs1, &dir, "198.18.0.11:4443");
    let d = l.t.rvsd_ref(0);
    eventually("rs1 up on every check, rs2 and rs3 down", DETECT, || {
        (forwarding(d) == vec![("198.18.0.11:80".to_string(), 1)]).then_some(())
    });
    let c = checks(d);
    let of = |rs: &str, kind: &str| {
        c.iter()
            .find(|x| x.real_server == rs && x.check == kind)
            .unwrap_or_else(|| panic!("no {kind} on {rs}: {c:?}"))
            .clone()
    };
    for kind in [
        "TCP_CHECK",
        "UDP_CHECK",
        "DNS_CHECK",
        "SSL_GET",
        "PING_CHECK",
    ] {
        let a = of("198.18.0.11:80", kind);
        assert!(a.up && a.last_result == "ok", "rs1 {kind}: {a:?}");
    }
    assert_eq!(of("198.18.0.11:80", "TCP_CHECK").target, "198.18.0.11:8080");
    // rs2 answers ping but runs none of the services.
    assert!(of("198.18.0.12:80", "PING_CHECK").up);
    for kind in ["TCP_CHECK", "UDP_CHECK", "DNS_CHECK", "SSL_GET"] {
        let b = of("198.18.0.12:80", kind);
        assert!(
            !b.up && b.last_result != "ok" && !b.last_result.is_empty(),
            "rs2 {kind}: {b:?}"
        );
    }
    let p = of("198.18.0.13:80", "PING_CHECK");
    assert!(!p.up && p.target.starts_with("198.18.0.99"), "{p:?}");
    let m = server_names(&l, 6);
    assert_eq!(m.get("rs1"), Some(&6), "{m:?}");
}

/// SMTP_CHECK against Python's smtpd (a real SMTP server: greeting, HELO, QUIT) and
/// FILE_CHECK with a weight: the file's value moves the real server's weight, as
/// keepalived's track_file does.
#[test]
fn smtp_check_and_a_weighted_track_file() {
    let file = std::env::temp_dir().join(format!("rvst-track-{}", std::process::id()));
    std::fs::write(&file, "0\n").unwrap();
    let rs_keys = format!(
        "        checks:\n          - {{ type: smtp_check, connect_port: 25, helo_name: rvs.test }}\n          - {{ type: file_check, track_file: \"{}\", weight: 3 }}\n",
        file.display()
    );
    let l = health_lab(
        "    delay_loop: 0.3\n    warmup: 0\n    connect_timeout: 1\n    retry: 0\n",
        &rs_keys,
    );
    let mut smtpd: Vec<Daemon> = (0..3)
        .map(|i| {
            Daemon(l.rs[i].spawn(&[
                "/usr/bin/python3",
                "-W",
                "ignore",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
                &format!("198.18.0.{}:25", 11 + i),
            ]))
        })
        .collect();
    eventually("every server up at its weight", DETECT, || {
        (forwarding(l.t.rvsd_ref(0)) == all3()).then_some(())
    });
    let smtp = checks(l.t.rvsd_ref(0));
    assert!(
        smtp.iter()
            .filter(|c| c.check == "SMTP_CHECK")
            .all(|c| c.up && c.last_result == "ok"),
        "{smtp:?}"
    );

    // The prober writes 2: weight 1 + 2 × 3.
    std::fs::write(&file, "2\n").unwrap();
    eventually("weights moved by the file", DETECT, || {
        (11..14)
            .all(|x| listed_weight(&l, &format!("198.18.0.{x}:80")) == Some(7))
            .then_some(())
    });

    // rs2's SMTP server stops: it leaves, whatever the file says.
    drop(smtpd.remove(1));
    eventually("rs2 out", DETECT, || {
        listed_weight(&l, "198.18.0.12:80").is_none().then_some(())
    });
    let rs2 = checks(l.t.rvsd_ref(0))
        .into_iter()
        .find(|c| c.real_server == "198.18.0.12:80" && c.check == "SMTP_CHECK")
        .unwrap();
    assert!(!rs2.up && rs2.last_result != "ok", "{rs2:?}");

    // A negative value takes the weight to 0 (quiescent), not below.
    std::fs::write(&file, "-1\n").unwrap();
    eventually("weights at 0", DETECT, || {
        (listed_weight(&l, "198.18.0.11:80") == Some(0)
            && listed_weight(&l, "198.18.0.13:80") == Some(0))
        .then_some(())
    });
    let _ = std::fs::remove_file(&file);
}
