//! Transmitting a burst of frames on a queue outside the worker loop (the traffic
//! generator's sending side is in bench; this is the one DPDK call it needs).

use super::mbuf::Mbuf;
use super::port::Port;
use crate::frame::BURST;
use arrayvec::ArrayVec;
use dpdk_sys as sys;

impl Port {
    /// Hands `frames` to the driver on tx queue 0 and returns how many it took; the
    /// rest are freed. Takes the port exclusively: a DPDK tx queue has one user at a
    /// time, and rvsd's workers never see a `Port` (they use queue ids of their own).
    pub fn tx_burst(&mut self, frames: ArrayVec<Mbuf, BURST>) -> usize {
        let mut raw: ArrayVec<*mut sys::rte_mbuf, BURST> =
            frames.into_iter().map(Mbuf::into_raw).collect();
        // SAFETY: `raw` holds `raw.len()` (<= BURST, so the u16 cast is exact) valid
        // single-segment mbufs that we own (released by `into_raw`); the driver takes
        // ownership of the first `n` it accepts and leaves the rest to us. `self` is a
        // started port, so its queues are set up, and queue 0 exists (`Port::start`
        // sets up at least one); `&mut self` keeps any other user of this `Port` off the
        // queue meanwhile.
        let n = usize::from(unsafe {
            sys::rvs_eth_tx_burst(self.id, 0, raw.as_mut_ptr(), raw.len() as u16)
        });
        for &m in &raw[n..] {
            // SAFETY: the driver did not take `raw[n..]`: each is a valid mbuf we own,
            // freed once here and never used again.
            unsafe { sys::rvs_pktmbuf_free(m) };
        }
        n
    }
}
