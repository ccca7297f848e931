//! mbufs as `Frame`s, and mbuf pools.

use super::IoError;
use crate::frame::Frame;
use dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// An owned single-segment mbuf. Dropping it frees it back to its pool.
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an `Mbuf` is the only owner of its mbuf (see `from_raw`), so moving it moves all
// access to the mbuf with it; an mbuf has no affinity to the thread that received or
// allocated it. Freeing it on another thread is fine: `rte_pktmbuf_free` returns it to its
// pool through the pool's multi-producer/multi-consumer ring, and the per-lcore cache it
// may go through belongs to the calling thread's own lcore id (non-EAL threads have none
// and bypass the cache).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf from rx or alloc; `None` if `m` is null.
    ///
    /// # Safety
    /// `m` must be null or point to a valid packet mbuf (from a pktmbuf pool) that the
    /// caller owns and hands over: nothing else may read, write or free the mbuf or its
    /// data afterwards (a freshly allocated or received mbuf, not one whose data is shared
    /// with a clone). The EAL must stay initialised, and the mbuf's pool alive, for as long
    /// as the returned `Mbuf` lives. The frame methods see only the first segment.
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
        // SAFETY: the pointer is non-null and, by `from_raw`'s contract, points to a valid,
        // initialised `rte_mbuf` that this `Mbuf` owns exclusively; nothing writes the
        // header while the returned shared borrow of `self` lives (the DPDK calls that
        // change it take `&mut self` in the methods below).
        unsafe { self.0.as_ref() }
    }
    pub fn nb_segs(&self) -> u16 {
        self.m().nb_segs
    }
}

/// The data of a raw mbuf (its first segment).
///
/// # Safety
/// `m` must point to a valid packet mbuf (header and data room initialised, as for any
/// mbuf from a pktmbuf pool) that stays alive, and whose header and data are not written,
/// for `'a`.
#[inline]
pub unsafe fn data_of<'a>(m: *const sys::rte_mbuf) -> &'a [u8] {
    // SAFETY: the caller guarantees `m` points to a valid mbuf header that nobody writes
    // for `'a`, so a shared reference to it is sound.
    let m = unsafe { &*m };
    // SAFETY: DPDK keeps `data_off + data_len <= buf_len` for every mbuf (the pktmbuf
    // append/prepend/adj/trim calls check head- and tailroom), so `buf_addr + data_off`
    // and the `data_len` bytes after it lie inside the one data-room allocation. The bytes
    // are initialised memory (received or written packet data, or older contents of the
    // pool's memory), `u8` needs no alignment, `data_len` fits in `isize`, and the caller
    // guarantees no one writes them for `'a`.
    unsafe {
        std::slice::from_raw_parts(
            (m.buf_addr as *const u8).add(usize::from(m.data_off)),
            usize::from(m.data_len),
        )
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: `self` owns a valid packet mbuf (see `from_raw`); it stays alive while
        // `self` is borrowed, and its header and data are only written through `&mut self`,
        // which the returned borrow of `self` excludes.
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
        // SAFETY: as in `data_of`, `addr + off .. + len` lies inside the mbuf's data room
        // and is initialised. `self` owns the mbuf and its data exclusively (see
        // `from_raw`), so no one else can read or write these bytes, and the returned
        // borrow of `&mut self` excludes every other access through `self` while it lives.
        // The shared borrow `m` of the header has ended.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }
    fn set_len(&mut self, len: usize) -> bool {
        let cur = usize::from(self.m().data_len);
        let p = self.0.as_ptr();
        if len >= cur {
            let Ok(n) = u16::try_from(len - cur) else {
                return false;
            };
            // SAFETY: `p` is the valid packet mbuf `self` owns exclusively (`&mut self`).
            // rte_pktmbuf_append checks the tailroom and returns NULL, changing nothing, when
            // `n` bytes do not fit; otherwise it grows data_len and pkt_len within it.
            n == 0 || unsafe { !sys::rvs_pktmbuf_append(p, n).is_null() }
        } else {
            let Ok(n) = u16::try_from(cur - len) else {
                return false;
            };
            // SAFETY: `p` is the valid packet mbuf `self` owns exclusively (`&mut self`).
            // rte_pktmbuf_trim checks `n` against the last segment's data_len and fails
            // (-1), changing nothing, if it is larger.
            unsafe { sys::rvs_pktmbuf_trim(p, n) == 0 }
        }
    }
    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: the pointer is the valid packet mbuf `self` owns exclusively
        // (`&mut self`). rte_pktmbuf_prepend checks the headroom and returns NULL, changing
        // nothing, when `n` bytes do not fit.
        unsafe { !sys::rvs_pktmbuf_prepend(self.0.as_ptr(), n).is_null() }
    }
    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: the pointer is the valid packet mbuf `self` owns exclusively
        // (`&mut self`). rte_pktmbuf_adj returns NULL, changing nothing, when `n` exceeds
        // data_len.
        unsafe { !sys::rvs_pktmbuf_adj(self.0.as_ptr(), n).is_null() }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: `self` is the sole owner of this valid mbuf (ownership leaves only
        // through `into_raw`, which forgets `self`), so it is freed exactly once and never
        // used again; the EAL and pool are still alive by `from_raw`'s contract.
        unsafe { sys::rvs_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// A packet mbuf pool. Pools live as long as the EAL (DPDK frees them at clean-up).
#[derive(Clone, Copy)]
pub struct MbufPool(NonNull<sys::rte_mempool>);

// SAFETY: `MbufPool` is only a pointer to a pool that is never freed before EAL clean-up;
// the pool itself lives in shared (hugepage) memory, not in any thread.
unsafe impl Send for MbufPool {}
// SAFETY: the only operation through a shared `MbufPool` is `alloc`, and pool get/put are
// safe from several threads at once: the pool uses DPDK's default multi-producer/
// multi-consumer ring ops (unless single-producer/consumer ops are forced with
// `--mbuf-pool-ops-name` in `eal.extra_args`), and each thread's per-lcore cache is
// indexed by its own lcore id (non-EAL threads use none).
unsafe impl Sync for MbufPool {}

impl MbufPool {
    /// `count` mbufs of the default 2 KiB data room with a per-lcore cache.
    pub fn create(name: &str, count: u32, socket: i32) -> Result<MbufPool, IoError> {
        let cname = CString::new(name).map_err(|_| IoError::Pool(format!("{name:?}: bad name")))?;
        let cache = 256.min(count / 4);
        let room = (sys::RTE_MBUF_DEFAULT_BUF_SIZE) as u16;
        // SAFETY: `cname` is a valid NUL-terminated string that outlives the call (DPDK
        // copies the name into the pool). `cache` <= 256 <= RTE_MEMPOOL_CACHE_MAX_SIZE and
        // `room` (2176) fits the u16; DPDK checks the rest and returns NULL with rte_errno
        // set on failure. The EAL must be initialised first; that is the caller's duty
        // (both binaries create the pool right after `Eal::init`), not checked here.
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
        // SAFETY: the pointer is a pktmbuf pool from `create`, never freed and valid for the
        // life of the EAL. rte_pktmbuf_alloc returns NULL or a freshly reset, direct mbuf
        // with a reference count of one that nothing else references: exactly what
        // `from_raw` needs to take ownership of it.
        unsafe { Mbuf::from_raw(sys::rvs_pktmbuf_alloc(self.0.as_ptr())) }
    }
}
