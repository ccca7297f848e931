//! The one module that talks to DPDK: EAL start-up, ports, mbufs, lcores and the polling
//! loop. Everything it hands upward is a `Frame`.
//!
//! Every `unsafe` block here carries a `// SAFETY:` comment saying why it is sound, and
//! every `unsafe fn` a `# Safety` section with its caller's obligations.
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

mod eal;
mod mbuf;
mod port;
mod run;
mod tx;

pub use eal::Eal;
pub use mbuf::{Mbuf, MbufPool};
pub use port::{Port, PortParams};
pub use run::{launch_workers, WorkerCtx, WorkerHandles};

use std::ffi::CStr;

/// Errors from DPDK set-up, with the DPDK error text and what to try.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("EAL initialisation failed: {0}")]
    Eal(String),
    #[error("port {name:?} ({device}): {what}")]
    Port {
        name: String,
        device: String,
        what: String,
    },
    #[error("mbuf pool {0}")]
    Pool(String),
    #[error("lcores: {0}")]
    Lcore(String),
}

/// The text of the current `rte_errno` (or of `code` when given a negative return value).
pub(crate) fn rte_error(code: i32) -> String {
    let e = if code < 0 {
        -code
    } else {
        // SAFETY: rvs_errno takes no arguments and only reads `rte_errno`, a per-thread
        // (`__thread`) variable that exists whether or not the EAL is initialised.
        unsafe { dpdk_sys::rvs_errno() }
    };
    // SAFETY: rte_strerror accepts any int and always returns a non-null, NUL-terminated
    // string: either a static one or this thread's own per-lcore buffer. Nothing else
    // writes that buffer, and it is copied out by `to_string_lossy` below before this
    // thread can call rte_strerror again, so it stays valid and unchanged for as long
    // as `s` is used.
    let s = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(e)) };
    format!("{} (errno {e})", s.to_string_lossy())
}
