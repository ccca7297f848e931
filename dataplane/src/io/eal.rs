//! EAL start-up and clean-up.

use super::IoError;
use crate::params::EalParams;
use std::ffi::CString;
use std::os::raw::c_char;

/// The running EAL; cleaned up (memory released) on drop.
pub struct Eal {
    pub args: Vec<String>,
}

impl Eal {
    pub fn init(params: &EalParams) -> Result<Eal, IoError> {
        let args = params.args();
        tracing::info!(args = %args.join(" "), "starting EAL");
        // Owned, writable NUL-terminated buffers rather than `CString::as_ptr`: the EAL may
        // write into the argument strings (`--socket-mem 512,512` is split in place), and
        // writing through a pointer taken from a shared borrow would be undefined.
        let mut cargs: Vec<Vec<u8>> = args
            .iter()
            .map(|a| {
                CString::new(a.as_str())
                    .map(CString::into_bytes_with_nul)
                    .map_err(|_| IoError::Eal(format!("argument {a:?} contains NUL")))
            })
            .collect::<Result<_, _>>()?;
        let mut argv: Vec<*mut c_char> = cargs
            .iter_mut()
            .map(|c| c.as_mut_ptr().cast::<c_char>())
            .collect();
        argv.push(std::ptr::null_mut());
        // SAFETY: `argv` holds `argv.len() - 1` pointers to NUL-terminated buffers that we
        // own mutably (the EAL may permute the array and write inside the strings, as its
        // documentation allows), followed by NULL. `cargs` and `argv` outlive the call and
        // are not touched while it runs. The EAL takes no ownership of them and copies what
        // it keeps (prefixes, device arguments, plugin paths), so dropping both afterwards
        // is fine. A second call (after success) fails with EALREADY rather than
        // re-initialising.
        let rc = unsafe { dpdk_sys::rte_eal_init((argv.len() - 1) as i32, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(IoError::Eal(format!(
                "{} with arguments `{}`; check that the devices exist, that you are root, \
                 and that hugepages are reserved or `eal.hugepages: off` is set",
                // rte_eal_init returns -1 and says why in rte_errno.
                super::rte_error(0),
                args.join(" ")
            )));
        }
        Ok(Eal { args })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the only `Eal`s rvs makes come from a successful `init`, which succeeds at
        // most once per process, so this runs at most once and only on an initialised EAL
        // (the public `args` field would let other code build an `Eal` without `init`;
        // nothing does).
        // After it no DPDK call may be made; that is the callers' side of the contract, not
        // enforced by types: both binaries drop their `Port`s, and join the worker lcores
        // (`WorkerHandles::wait`), before the `Eal`, and use no mbuf or pool afterwards.
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}
