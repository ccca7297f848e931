//! IPVS: virtual services, real servers, schedulers, connections, forwarding.

pub mod conn;
pub mod sched;
pub mod service;
pub mod state;
pub mod xmit;
