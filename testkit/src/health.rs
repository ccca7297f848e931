//! Helpers for health-check tests: a NAT lab whose real servers carry checks, and
//! rvsd's view of its real servers and checkers.

use crate::eventually;
use crate::lab::{lab_port, Lab, Mode, VIP};
use crate::Rvsd;
use std::path::Path;
use std::time::Duration;

/// Longer than any detection in the tests: delay_loop × (retry + 1) + connect_timeout,
/// plus an interval, with room for a loaded machine.
pub const DETECT: Duration = Duration::from_secs(20);

/// A NAT lab (rvsd at `rvsd`, with a kernel twin, one worker) whose service carries
/// `service_keys` (YAML lines at 4 spaces) and whose real server 198.18.0.d (d in
/// 11..14) carries `rs_keys(d)` (at 8 spaces).
pub fn lab(rvsd: &Path, service_keys: &str, rs_keys: impl Fn(u8) -> String) -> Lab {
    let rs: String = (11u8..14)
        .map(|d| {
            format!(
                "      - address: \"198.18.0.{d}:80\"\n        forward: nat\n{}",
                rs_keys(d)
            )
        })
        .collect();
    let svc =
        format!("  - vip: \"{VIP}:80\"\n    scheduler: rr\n{service_keys}    real_servers:\n{rs}");
    lab_port(rvsd, Mode::Nat, &svc, 1, "    kernel: { name: lan0k }\n")
}

/// The three real servers at weight 1, as `forwarding` lists them.
pub fn all3() -> Vec<(String, u32)> {
    (11..14).map(|d| (format!("198.18.0.{d}:80"), 1)).collect()
}

/// Waits until every real server of the lab was checked and is up.
pub fn all_up(d: &Rvsd) {
    eventually("every server checked and up", DETECT, || {
        (11..14)
            .all(|x| is(d, &format!("198.18.0.{x}:80"), true))
            .then_some(())
    });
}

/// A child process killed and reaped when dropped (a server a test runs).
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (address:port, weight) of every real server rvsd forwards to in its first service.
pub fn forwarding(d: &Rvsd) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = d
        .services()
        .first()
        .map(|s| {
            s.servers
                .iter()
                .map(|r| (format!("{}:{}", r.addr, r.port), r.weight))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every checker's state, as `rvsadm --health` shows it.
pub fn checks(d: &Rvsd) -> Vec<ctrlplane::health::CheckStatus> {
    match ctrlplane::ctl::call(&d.socket, &ctrlplane::ctl::Request::Health) {
        Ok(ctrlplane::ctl::Response::Health { checks }) => checks,
        other => panic!("health: {other:?}"),
    }
}

/// Whether the checker(s) of `real_server` ("198.18.0.12:80") are all `up`, each
/// checked at least once.
pub fn is(d: &Rvsd, real_server: &str, up: bool) -> bool {
    let c = checks(d);
    let mine: Vec<_> = c.iter().filter(|c| c.real_server == real_server).collect();
    !mine.is_empty()
        && mine
            .iter()
            .all(|c| c.up == up && c.checks_ok + c.checks_failed > 0)
}

/// `openssl s_server -www` on `addr` (`198.18.0.11:4443`) in `h`, with a self-signed
/// certificate for CN=rs1 made in `dir`: a real TLS server for SSL_GET.
pub fn tls_server(h: &crate::Host, dir: &Path, addr: &str) -> Daemon {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let gen = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rs1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/setup.sh installs it)");
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    Daemon(h.spawn(&[
        "openssl",
        "s_server",
        "-quiet",
        "-www",
        "-accept",
        addr,
        "-cert",
        &cert.display().to_string(),
        "-key",
        &key.display().to_string(),
    ]))
}
