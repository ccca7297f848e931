//! rvs control plane: the configuration model, the snapshot builder and the control
//! socket. It never touches a worker's private state: it publishes snapshots and reads
//! counters.

pub mod config;
pub mod ctl;
pub mod director;
pub mod ha;
pub mod health;
pub mod ipvsadm;
pub mod keepalived;
pub mod kernel;
pub mod metrics;
pub mod snapshot;
pub mod sync;
pub mod vrrp;
