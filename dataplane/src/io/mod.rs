//! The one module that talks to DPDK: EAL start-up, ports, mbufs, lcores and the polling
//! loop. Everything it hands upward is a `Frame`.

mod eal;
mod mbuf;
mod port;
mod run;
mod tx;

pub use eal::Eal;
pub use mbuf::{Mbuf, MbufPool};
pub use port::{Port, PortParams};
pub use run::{launch_workers, WorkerCtx, WorkerHandles};
pub use tx::{transmit, TxReport};

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
        unsafe { dpdk_sys::rvs_errno() }
    };
    // SAFETY: rte_strerror returns a pointer to a static or thread-local string.
    let s = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(e)) };
    format!("{} (errno {e})", s.to_string_lossy())
}
