//! The rvs fast path.
//!
//! The layers read upward only: `packet` (checked views, the one parsed header
//! `IpHdr`, checksums) -> `net` (the L2/L3 part of the snapshot, ARP, neighbours,
//! routes, ICMP echo) -> `ipvs` (the IPVS part, one file per concern) -> `snapshot`
//! (the two parts, published RCU-style) -> `worker` (the per-lcore loop and its one
//! dispatcher) -> `io` (feature `dpdk`, the one module that talks to DPDK). Everything
//! below `io` works on plain byte buffers through the `frame::Frame` trait. `testing` (feature `testing`) holds fixtures for tests, benchmarks and fuzz
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
