//! IPVS: virtual services, real servers, schedulers, connections, forwarding.

pub mod conn;
pub mod core;
pub mod sched;
pub mod service;
pub mod state;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod xmit;
