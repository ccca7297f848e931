//! mbufs as `Frame`s, and mbuf pools.

use super::IoError;
use crate::frame::Frame;
use dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// An owned single-segment mbuf. Dropping it frees it back to its pool.
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf at a time; the pool is thread-safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf from rx or alloc.
    ///
    /// # Safety
    /// `m` must be a valid mbuf not owned by anything else.
    pub unsafe fn from_raw(m: *mut sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(m).map(Mbuf)
    }
    /// Gives up ownership (to tx burst).
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: valid while owned.
        unsafe { self.0.as_ref() }
    }
    pub fn nb_segs(&self) -> u16 {
        self.m().nb_segs
    }
}

/// The data of a raw mbuf.
///
/// # Safety
/// `m` must be a valid mbuf that stays alive and unmodified for `'a`.
#[inline]
pub unsafe fn data_of<'a>(m: *const sys::rte_mbuf) -> &'a [u8] {
    let m = &*m;
    // buf_addr + data_off .. + data_len lies inside the mbuf's data room.
    std::slice::from_raw_parts(
        (m.buf_addr as *const u8).add(usize::from(m.data_off)),
        usize::from(m.data_len),
    )
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: we own a valid mbuf.
        unsafe { data_of(self.0.as_ptr()) }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m();
        let (addr, off, len) = (
            m.buf_addr as *mut u8,
            usize::from(m.data_off),
            usize::from(m.data_len),
        );
        // SAFETY: as above, and we own the mbuf exclusively.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }
    fn set_len(&mut self, len: usize) -> bool {
        let cur = usize::from(self.m().data_len);
        let p = self.0.as_ptr();
        if len >= cur {
            let Ok(n) = u16::try_from(len - cur) else {
                return false;
            };
            // SAFETY: p is a valid owned mbuf.
            n == 0 || unsafe { !sys::rvs_pktmbuf_append(p, n).is_null() }
        } else {
            let Ok(n) = u16::try_from(cur - len) else {
                return false;
            };
            unsafe { sys::rvs_pktmbuf_trim(p, n) == 0 }
        }
    }
    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        unsafe { !sys::rvs_pktmbuf_prepend(self.0.as_ptr(), n).is_null() }
    }
    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        unsafe { !sys::rvs_pktmbuf_adj(self.0.as_ptr(), n).is_null() }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own it.
        unsafe { sys::rvs_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// A packet mbuf pool. Pools live as long as the EAL (DPDK frees them at clean-up).
#[derive(Clone, Copy)]
pub struct MbufPool(NonNull<sys::rte_mempool>);

unsafe impl Send for MbufPool {}
unsafe impl Sync for MbufPool {}

impl MbufPool {
    /// `count` mbufs of the default 2 KiB data room with a per-lcore cache.
    pub fn create(name: &str, count: u32, socket: i32) -> Result<MbufPool, IoError> {
        let cname = CString::new(name).map_err(|_| IoError::Pool(format!("{name:?}: bad name")))?;
        let cache = 256.min(count / 4);
        let room = (sys::RTE_MBUF_DEFAULT_BUF_SIZE) as u16;
        // SAFETY: EAL is initialised; the name is a valid C string.
        let p =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, room, socket) };
        NonNull::new(p).map(MbufPool).ok_or_else(|| {
            IoError::Pool(format!(
                "{name:?} of {count} mbufs: {}; lower `dataplane.mbufs` or give the EAL more memory \
                 (`eal.memory_mb`, or reserve hugepages)",
                super::rte_error(0)
            ))
        })
    }
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.0.as_ptr()
    }
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid for the life of the EAL.
        unsafe { Mbuf::from_raw(sys::rvs_pktmbuf_alloc(self.0.as_ptr())) }
    }
}
