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
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| {
                CString::new(a.as_str())
                    .map_err(|_| IoError::Eal(format!("argument {a:?} contains NUL")))
            })
            .collect::<Result<_, _>>()?;
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        // SAFETY: argv is a NULL-terminated array of valid C strings that outlive the call
        // (EAL may permute the array but keeps no pointer into it after returning).
        let rc = unsafe { dpdk_sys::rte_eal_init((argv.len() - 1) as i32, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(IoError::Eal(format!(
                "{} with arguments `{}`; check that the devices exist, that you are root, \
                 and that hugepages are reserved or `eal.hugepages: off` is set",
                super::rte_error(rc),
                args.join(" ")
            )));
        }
        Ok(Eal { args })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, after every port is closed and every lcore has returned.
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}
