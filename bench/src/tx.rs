//! The traffic generator's sending side: a prepared list of frames transmitted on a
//! DPDK port at a target rate (`rvs-pktgen --tx`).

use arrayvec::ArrayVec;
use dataplane::frame::{Frame, BURST};
use dataplane::io::{MbufPool, Port};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a transmission did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxReport {
    pub sent: u64,
    /// Frames the driver did not take (its queue was full) or that had no mbuf.
    pub dropped: u64,
    pub elapsed: Duration,
}

/// When to stop sending.
#[derive(Debug, Clone, Copy, Default)]
pub struct Until {
    /// After this many frames were offered.
    pub count: Option<u64>,
    /// After this long.
    pub duration: Option<Duration>,
}

/// Sends `frames` in order, cycling, on queue 0 of `port`, until `until` or `stop`.
/// `pps` 0 sends as fast as the driver takes them; otherwise bursts are paced to the
/// rate.
pub fn transmit(
    port: &mut Port,
    pool: MbufPool,
    frames: &[Vec<u8>],
    pps: u64,
    until: Until,
    stop: &AtomicBool,
) -> TxReport {
    let mut r = TxReport::default();
    if frames.is_empty() {
        return r;
    }
    let start = Instant::now();
    let mut next = 0usize;
    let mut offered = 0u64;
    loop {
        if stop.load(Ordering::Relaxed)
            || until.count.is_some_and(|c| offered >= c)
            || until.duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        if pps > 0 {
            let due = Duration::from_secs_f64(offered as f64 / pps as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                if wait > Duration::from_micros(50) {
                    std::thread::sleep(wait);
                }
                continue;
            }
        }
        let want = until
            .count
            .map_or(BURST as u64, |c| (c - offered).min(BURST as u64)) as usize;
        let mut burst = ArrayVec::new();
        for _ in 0..want {
            let f = &frames[next];
            next = (next + 1) % frames.len();
            offered += 1;
            let Some(mut m) = pool.alloc() else {
                r.dropped += 1;
                continue;
            };
            if !m.set_len(f.len()) {
                r.dropped += 1;
                continue;
            }
            m.data_mut().copy_from_slice(f);
            burst.push(m);
        }
        let tried = burst.len() as u64;
        let n = port.tx_burst(burst) as u64;
        r.sent += n;
        r.dropped += tried - n;
    }
    r.elapsed = start.elapsed();
    r
}
