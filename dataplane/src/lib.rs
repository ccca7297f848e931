//! The rvs fast path.
//!
//! `packet` and `net` work on plain byte buffers; `worker` runs the per-lcore loop over a
//! small I/O trait; `io` is the one module that talks to DPDK.

pub mod packet;
