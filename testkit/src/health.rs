//! Helpers for health-check tests: rvsd's view of its real servers and checkers.

use crate::Rvsd;

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
