//! IPVS: virtual services, real servers, schedulers, connections, forwarding.
//!
//! One concern per file, in the style of the kernel's and DPVS's `ip_vs_*.c`:
//! - `engine`: a worker's IPVS state, snapshot adoption, timers, classification;
//! - `owner`: which worker owns a packet's connection;
//! - `schedule` (with `sched/`, the schedulers): new connections and templates;
//! - `laddr`: FULLNAT local addresses and ports;
//! - `xmit`: forwarding per method, `rewrite`: the byte-level rewrites they use;
//! - `frag`: IP fragments; `icmp`: ICMP errors, translated and originated;
//! - `dest`: real-server accounting; `list`: the `ipvsadm -L -c` listing;
//! - `conn`: the connection table; `state`: the TCP state machine; `service`: the
//!   IPVS part of the snapshot; `stats`: counters; `sync`: connection sync (what a
//!   MASTER hands over, what a BACKUP installs).
//!
//! Every packet arrives with its header parsed once (`packet::IpHdr`) and leaves with
//! `Ok(Verdict)` or `Err(DropReason)`, counted once by the worker.

pub mod conn;
mod dest;
pub mod engine;
mod frag;
pub mod icmp;
mod laddr;
pub mod list;
pub mod owner;
pub mod rewrite;
pub mod sched;
mod schedule;
pub mod service;
pub mod state;
pub mod stats;
pub mod sync;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
mod xmit;

pub use engine::{Cx, IpvsWorker, Outcome, Verdict, NO_HINT};
pub use list::ConnDump;
pub use owner::owner;
