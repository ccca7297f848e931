//! Checker options end to end, each against a real server that makes the difference:
//! UDP_CHECK with a reply that does not match, and without `require_reply` (a silent
//! port passes, a closed one fails on the ICMP error); SMTP_CHECK's `helo_name` as the
//! server receives it; SSL_GET with and without `verify_certificate` against a
//! self-signed server; MISC_CHECK's `misc_timeout` 0 meaning delay_loop.

use testkit::eventually;
use testkit::health::{checks, Daemon, DETECT};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

#[test]
fn udp_replies_helo_certificates_and_misc_timeouts() {
    let dir = std::env::temp_dir().join(format!("rvst-checkers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // rs1: three UDP checks and an SSL_GET that does not verify; rs2: SMTP with a HELO
    // name, an SSL_GET of rs1's server that verifies, a script that outlasts nothing
    // with misc_timeout 0 (delay_loop, 1 s); rs3: the same script with 0.2 s.
    let rs_keys = |d: u8| {
        match d {
        11 => "        checks:\n          - { type: udp_check, connect_port: 9999, payload: \"68656c6c6f\", require_reply: \"776f726c64\" }\n          - { type: udp_check, connect_port: 9997, payload: \"68656c6c6f\" }\n          - { type: udp_check, connect_port: 9998, payload: \"68656c6c6f\" }\n          - { type: ssl_get, connect_port: 4443, url: [{ path: / }] }\n".to_string(),
        12 => "        checks:\n          - { type: smtp_check, connect_port: 25, helo_name: helo.rvs.test }\n          - { type: ssl_get, connect_ip: \"198.18.0.11\", connect_port: 4443, verify_certificate: true, url: [{ path: / }] }\n          - { type: misc_check, misc_path: \"sleep 0.6\", misc_timeout: 0 }\n".to_string(),
        _ => "        checks: [{ type: misc_check, misc_path: \"sleep 0.6\", misc_timeout: 0.2 }]\n".to_string(),
    }
    };
    let l = testkit::health::lab(
        std::path::Path::new(RVSD),
        "    delay_loop: 1\n    warmup: 0\n    connect_timeout: 0.5\n    retry: 0\n",
        rs_keys,
    );
    let (rs1, rs2) = (&l.rs[0], &l.rs[1]);
    // UDP on rs1: 9999 echoes ("hello", not "world"), 9997 reads and never answers,
    // 9998 is closed (the kernel answers port unreachable).
    for (port, echo) in [(9999u16, true), (9997, false)] {
        let ns = rs1.ns.clone();
        std::thread::spawn(move || {
            testkit::net::enter(&ns);
            let s = std::net::UdpSocket::bind(("198.18.0.11", port)).unwrap();
            let mut b = [0u8; 1500];
            while let Ok((n, from)) = s.recv_from(&mut b) {
                if echo {
                    let _ = s.send_to(&b[..n], from);
                }
            }
        });
    }
    let _tls = testkit::health::tls_server(rs1, &dir, "198.18.0.11:4443");
    // Python's smtpd, its conversation (-d) in a file.
    let smtp_log = dir.join("smtpd.log");
    let _smtpd = Daemon(rs2.spawn(&[
        "sh",
        "-c",
        &format!(
            "exec /usr/bin/python3 -W ignore -m smtpd -n -d -c DebuggingServer 198.18.0.12:25 2>{}",
            smtp_log.display()
        ),
    ]));

    let d = l.t.rvsd_ref(0);
    let of = |rs: &str, kind: &str, target: &str| {
        checks(d)
            .into_iter()
            .find(|c| c.real_server == rs && c.check == kind && c.target == target)
            .unwrap_or_else(|| panic!("no {kind} to {target} on {rs}: {:?}", checks(d)))
    };
    // Every checker has run twice (the first SMTP may meet smtpd still starting).
    eventually("every check ran twice", DETECT, || {
        checks(d)
            .iter()
            .all(|c| c.checks_ok + c.checks_failed >= 2)
            .then_some(())
    });
    let rs1 = "198.18.0.11:80";
    let mismatch = of(rs1, "UDP_CHECK", "198.18.0.11:9999");
    assert!(!mismatch.up && mismatch.last_result != "ok", "{mismatch:?}");
    let silent = of(rs1, "UDP_CHECK", "198.18.0.11:9997");
    assert!(
        silent.up && silent.last_result == "ok",
        "no reply, no error: {silent:?}"
    );
    let closed = of(rs1, "UDP_CHECK", "198.18.0.11:9998");
    assert!(
        !closed.up && closed.last_result != "ok",
        "port unreachable: {closed:?}"
    );
    let lax = of(rs1, "SSL_GET", "198.18.0.11:4443");
    assert!(lax.up && lax.last_result == "ok", "{lax:?}");

    let rs2 = "198.18.0.12:80";
    eventually("SMTP up", DETECT, || {
        of(rs2, "SMTP_CHECK", "198.18.0.12:25").up.then_some(())
    });
    let said = std::fs::read_to_string(&smtp_log).unwrap_or_default();
    assert!(said.contains("HELO helo.rvs.test"), "{said}");
    let strict = of(rs2, "SSL_GET", "198.18.0.11:4443");
    assert!(
        !strict.up && strict.last_result.to_lowercase().contains("certificate"),
        "a self-signed certificate verified: {strict:?}"
    );
    let misc0 = checks(d)
        .into_iter()
        .find(|c| c.real_server == rs2 && c.check == "MISC_CHECK")
        .unwrap();
    assert!(
        misc0.up && misc0.checks_failed == 0,
        "misc_timeout 0 is delay_loop (1 s): {misc0:?}"
    );
    let misc02 = checks(d)
        .into_iter()
        .find(|c| c.real_server == "198.18.0.13:80" && c.check == "MISC_CHECK")
        .unwrap();
    assert!(
        !misc02.up && misc02.last_result != "ok",
        "timed out at 0.2 s: {misc02:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
