//! Transmitting a prepared list of frames on a port at a target rate: the traffic
//! generator's sending side.

use super::mbuf::MbufPool;
use super::port::Port;
use crate::frame::Frame;
use crate::worker::BURST;
use dpdk_sys as sys;
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

/// Sends `frames` in order, cycling, on queue 0 of `port`, until `count` frames were
/// offered (if given), `duration` passed (if given) or `stop` is set. `pps` 0 sends as
/// fast as the driver takes them; otherwise bursts are paced to the rate.
pub fn transmit(
    port: &Port,
    pool: MbufPool,
    frames: &[Vec<u8>],
    pps: u64,
    count: Option<u64>,
    duration: Option<Duration>,
    stop: &AtomicBool,
) -> TxReport {
    let mut r = TxReport::default();
    if frames.is_empty() {
        return r;
    }
    let start = Instant::now();
    let mut next = 0usize;
    let mut offered = 0u64;
    let mut burst: Vec<*mut sys::rte_mbuf> = Vec::with_capacity(BURST);
    loop {
        if stop.load(Ordering::Relaxed)
            || count.is_some_and(|c| offered >= c)
            || duration.is_some_and(|d| start.elapsed() >= d)
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
        let want = count.map_or(BURST as u64, |c| (c - offered).min(BURST as u64)) as usize;
        burst.clear();
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
            burst.push(m.into_raw());
        }
        // SAFETY: `burst` holds `burst.len()` (<= BURST, so the u16 cast is exact) valid,
        // single-segment mbufs that this function owns (from `pool.alloc`, released with
        // `into_raw`); the driver takes ownership of the first `n` it accepts and leaves
        // the rest to us. `port` is alive, so it is started with all its queues set up;
        // queue 0 is among them as long as `port.queues >= 1` (rvs-pktgen's port has 1).
        // A tx queue takes one user at a time: the caller must not transmit on queue 0 of
        // this port from anywhere else meanwhile (rvs-pktgen sends from one thread only).
        let n = usize::from(unsafe {
            sys::rvs_eth_tx_burst(port.id, 0, burst.as_mut_ptr(), burst.len() as u16)
        });
        r.sent += n as u64;
        for &m in &burst[n..] {
            // SAFETY: the driver did not take `burst[n..]`, so each is still a valid mbuf we
            // own; it is freed once here and its pointer is never used again (`burst` is
            // cleared before the next fill).
            unsafe { sys::rvs_pktmbuf_free(m) };
            r.dropped += 1;
        }
    }
    r.elapsed = start.elapsed();
    r
}
