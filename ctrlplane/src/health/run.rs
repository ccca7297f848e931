//! One probe's life: a first check after a random part of its warm-up (so that probes
//! spread over the interval instead of firing together), then keepalived's rhythm -
//! every `delay_loop` while nothing changes, `delay_before_retry` between the retries of
//! a failure - and keepalived's counting: `retry = N` means N + 1 consecutive failures
//! take a server down (one failure at start-up, unless `alpha`), one success brings it
//! back. A probe never waits for another: each is its own task.

use super::resolve::{Probe, Spec};
use super::{dns, file, http, misc, ping, smtp, tcp, udp, Attempt};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What --health and the metrics show of a probe.
#[derive(Debug, Clone)]
pub struct ProbeState {
    pub up: bool,
    /// Failures since the last success.
    pub failures: u32,
    /// Retries used in the current run of failures (keepalived's `retry_it`).
    retry_it: u32,
    pub last: Option<Attempt>,
    pub changed_at: SystemTime,
    /// MISC_CHECK with misc_dynamic: the weight its exit code asked for.
    pub weight: Option<u32>,
    pub ok_total: u64,
    pub failed_total: u64,
    pub seconds_total: f64,
}

impl ProbeState {
    pub fn new(p: &Probe) -> ProbeState {
        ProbeState {
            up: !p.alpha,
            failures: 0,
            // At start-up one failure is enough (check_data.c), unless alpha, where
            // the server is down already.
            retry_it: if p.alpha { 0 } else { p.retry },
            last: None,
            changed_at: SystemTime::now(),
            weight: None,
            ok_total: 0,
            failed_total: 0,
            seconds_total: 0.0,
        }
    }

    /// The state of a check that `p` replaces after a reload changed only its timing.
    pub fn carried(p: &Probe, old: ProbeState) -> ProbeState {
        // A retried failure run starts again under the new retry count.
        let retry_it = if old.up { 0 } else { p.retry };
        ProbeState { retry_it, ..old }
    }

    /// Counts one attempt; returns the delay to the next and whether what the server's
    /// health depends on (up, dynamic weight) changed.
    pub fn record(&mut self, p: &Probe, a: Attempt) -> (Duration, bool) {
        self.seconds_total += a.duration.as_secs_f64();
        let before = (self.up, self.weight);
        let delay = match &a.result {
            Ok(weight) => {
                self.ok_total += 1;
                self.failures = 0;
                self.retry_it = 0;
                self.up = true;
                // misc_dynamic: exit 0 leaves the weight unchanged, 2-255 sets it.
                if weight.is_some() {
                    self.weight = *weight;
                }
                p.delay_loop
            }
            Err(_) => {
                self.failed_total += 1;
                self.failures += 1;
                if self.up && self.retry_it < p.retry {
                    self.retry_it += 1;
                    p.delay_before_retry
                } else {
                    self.retry_it = 0;
                    self.up = false;
                    p.delay_loop
                }
            }
        };
        self.last = Some(a);
        let changed = before != (self.up, self.weight);
        if changed {
            self.changed_at = SystemTime::now();
        }
        (delay, changed)
    }
}

/// A random part of `max`, different for every probe and every start.
fn spread(p: &Probe, max: Duration) -> Duration {
    let h = std::collections::hash_map::RandomState::new().hash_one(p);
    let ms = max.as_millis() as u64;
    Duration::from_millis(if ms == 0 { 0 } else { h % ms })
}

/// One attempt of `p`, bounded in time.
async fn attempt(p: &Probe) -> Attempt {
    let start = Instant::now();
    let result = match &p.spec {
        Spec::Tcp => tcp::check(p).await,
        Spec::Http {
            tls,
            urls,
            verify,
            sni,
            http11,
            close,
        } => {
            let how = http::How {
                tls: *tls,
                verify: *verify,
                sni: sni.as_deref(),
                http11: *http11,
                close: *close,
            };
            http::check(p, urls, &how).await
        }
        Spec::Misc {
            path,
            timeout,
            dynamic,
        } => misc::check(path, *timeout, *dynamic).await,
        Spec::Udp {
            payload,
            reply,
            lengths,
        } => udp::check(p, payload, reply.as_deref(), *lengths).await,
        Spec::Dns { qtype, name } => dns::check(p, qtype, name).await,
        Spec::Ping => ping::check(p).await,
        Spec::Smtp { helo } => smtp::check(p, helo).await,
        Spec::File {
            path,
            weight,
            reverse,
            base,
        } => file::check(path, *weight, *reverse, *base).await,
    };
    Attempt {
        result,
        duration: start.elapsed(),
        at: SystemTime::now(),
    }
}

/// Runs `p` until the task is aborted, calling `changed` after every change.
pub async fn run(p: Probe, state: Arc<Mutex<ProbeState>>, changed: Arc<dyn Fn() + Send + Sync>) {
    if let Some(w) = p.warmup {
        tokio::time::sleep(spread(&p, w)).await;
    }
    loop {
        let a = attempt(&p).await;
        let words = p.target_words();
        let kind = p.kind.keyword();
        let (delay, transition, up) = match state.lock() {
            Ok(mut s) => {
                let failed = a.result.as_ref().err().cloned();
                let (d, t) = s.record(&p, a);
                if let Some(why) = failed {
                    tracing::warn!("{kind} on service {words} failed: {why}");
                }
                (d, t, s.up)
            }
            Err(_) => return,
        };
        if transition {
            if up {
                tracing::info!("{kind} on service {words} success.");
            } else {
                tracing::warn!("{kind} on service {words} failed after retries.");
            }
            changed();
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CheckType;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn probe(retry: u32, alpha: bool) -> Probe {
        Probe {
            kind: CheckType::TcpCheck,
            target: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 11), 80),
            bind: None,
            delay_loop: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(1),
            retry,
            delay_before_retry: Duration::from_secs(2),
            warmup: None,
            alpha,
            spec: Spec::Tcp,
        }
    }

    fn ok() -> Attempt {
        Attempt {
            result: Ok(None),
            duration: Duration::from_millis(1),
            at: SystemTime::now(),
        }
    }

    fn fail() -> Attempt {
        Attempt {
            result: Err("refused".into()),
            duration: Duration::from_millis(1),
            at: SystemTime::now(),
        }
    }

    #[test]
    fn retry_n_means_n_plus_one_failures_and_one_success_recovers() {
        let p = probe(2, false);
        let mut s = ProbeState::new(&p);
        // Up and then a success: nothing changes.
        assert_eq!(s.record(&p, ok()), (Duration::from_secs(6), false));
        // Three failures with retry 2: the first two retry after delay_before_retry.
        assert_eq!(s.record(&p, fail()), (Duration::from_secs(2), false));
        assert_eq!(s.record(&p, fail()), (Duration::from_secs(2), false));
        assert_eq!(s.record(&p, fail()), (Duration::from_secs(6), true));
        assert!(!s.up);
        assert_eq!(s.failures, 3);
        // Down, failing: checked every delay_loop, no change.
        assert_eq!(s.record(&p, fail()), (Duration::from_secs(6), false));
        // One success.
        assert_eq!(s.record(&p, ok()), (Duration::from_secs(6), true));
        assert!(s.up);
        assert_eq!((s.failures, s.ok_total, s.failed_total), (0, 2, 4));
    }

    #[test]
    fn at_start_one_failure_is_enough_and_alpha_starts_down() {
        let p = probe(3, false);
        let mut s = ProbeState::new(&p);
        assert!(s.up);
        assert_eq!(s.record(&p, fail()), (Duration::from_secs(6), true));
        assert!(!s.up);
        let p = probe(3, true);
        let mut s = ProbeState::new(&p);
        assert!(!s.up);
        assert_eq!(s.record(&p, ok()), (Duration::from_secs(6), true));
        // Once up, retries count as usual.
        assert_eq!(s.record(&p, fail()), (Duration::from_secs(2), false));
    }

    #[test]
    fn a_dynamic_weight_change_is_a_change() {
        let p = probe(0, false);
        let mut s = ProbeState::new(&p);
        let w = |n| Attempt {
            result: Ok(Some(n)),
            duration: Duration::ZERO,
            at: SystemTime::now(),
        };
        assert!(s.record(&p, w(5)).1);
        assert!(!s.record(&p, w(5)).1);
        assert!(s.record(&p, w(7)).1);
        assert_eq!(s.weight, Some(7));
        // Exit 0: up, weight unchanged.
        assert!(!s.record(&p, ok()).1);
        assert_eq!(s.weight, Some(7));
    }

    /// The first checks of probes started together (a reload, a start with a thousand
    /// servers) spread evenly over the warmup (the delay_loop by default): 1,000 draws
    /// fall about 100 in each tenth (the bounds are more than five standard deviations
    /// wide, so chance does not fail this; a constant or a skew does).
    #[test]
    fn warmups_spread_evenly_over_the_interval() {
        let p = probe(0, false);
        let max = Duration::from_secs(10);
        let mut tenths = [0u32; 10];
        for _ in 0..1000 {
            let d = spread(&p, max);
            assert!(d < max);
            tenths[(d.as_millis() / 1000) as usize] += 1;
        }
        assert!(tenths.iter().all(|n| (50..=150).contains(n)), "{tenths:?}");
    }
}
