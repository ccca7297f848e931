//! Traffic generation for rvs's benchmarks and robustness work.
//!
//! Every trace is a pure function of its `TraceSpec` (the seed included), so a benchmark
//! can be reproduced bit for bit.

pub mod dpdk;
pub mod e2e;
pub mod failover;
pub mod health;
pub mod kernel;
pub mod path;
pub mod setup;
pub mod throughput;
pub mod trace;
pub mod tx;
