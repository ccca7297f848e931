//! The rvs fast path.
//!
//! `packet` and `net` work on plain byte buffers through the `frame::Frame` trait;
//! `worker` runs the per-lcore loop; `io` (feature `dpdk`) is the one module that talks
//! to DPDK. `testing` (feature `testing`) holds fixtures for tests, benchmarks and fuzz
//! targets, and is never part of the daemon.

pub mod frame;
pub mod ipvs;
pub mod net;
pub mod packet;
pub mod params;
pub mod snapshot;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod worker;

#[cfg(feature = "dpdk")]
pub mod io;
