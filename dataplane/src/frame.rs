//! The packet-buffer abstraction the fast path works on.
//!
//! `io` implements `Frame` over DPDK mbufs; `HeapFrame` implements it over plain memory
//! for unit tests, packet-level tests and tools. Everything between rx and tx is generic
//! over it, so no test needs an EAL, hugepages or root.

/// A single-segment packet buffer that can be edited in place and grown or shrunk at
/// both ends within its head- and tailroom.
pub trait Frame {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows (within tailroom) or shrinks the data to `len` bytes.
    fn set_len(&mut self, len: usize) -> bool;
    /// Adds `n` bytes in front of the data (within headroom).
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front of the data.
    fn adj(&mut self, n: usize) -> bool;
}

/// What the fast path needs from the I/O layer: received frames, buffers for packets it
/// originates (ARP requests, ICMP errors) and a way to queue a frame for transmission on
/// a port. A frame handed to `send` is owned by the I/O layer from then on (sent, or
/// freed and counted); `flush` hands what is queued to the driver.
pub trait Io {
    type Frame: Frame;
    fn alloc(&mut self) -> Option<Self::Frame>;
    fn send(&mut self, port: usize, frame: Self::Frame);
    /// Appends up to a burst of frames received on `port` to `rx`. Frames the fast path
    /// cannot take (multi-segment mbufs) are dropped and counted here, never returned.
    fn rx_burst(&mut self, _port: usize, _rx: &mut arrayvec::ArrayVec<Self::Frame, BURST>) {}
    /// Transmits everything `send` queued.
    fn flush(&mut self) {}
}

/// Burst size of rx and tx (DPDK's customary 32).
pub const BURST: usize = 32;

/// A frame in ordinary heap memory, laid out like an mbuf (headroom, data, tailroom).
/// One pointer wide, like the mbuf pointer it stands in for, so that passing frames by
/// value costs what it costs in the daemon.
#[derive(Clone, PartialEq, Eq)]
pub struct HeapFrame(Box<HeapBuf>);

#[derive(Clone, PartialEq, Eq)]
struct HeapBuf {
    head: usize,
    len: usize,
    buf: [u8; HeapFrame::CAPACITY],
}

impl HeapFrame {
    pub const HEADROOM: usize = 128;
    pub const CAPACITY: usize = 2048;

    pub fn new() -> Self {
        HeapFrame(Box::new(HeapBuf {
            head: Self::HEADROOM,
            len: 0,
            buf: [0; Self::CAPACITY],
        }))
    }
    /// Empties the frame and restores its headroom, as an mbuf returning to its pool.
    pub fn reset(&mut self) {
        self.0.head = Self::HEADROOM;
        self.0.len = 0;
    }
    /// A frame holding a copy of `bytes` (truncated to the capacity after headroom).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut f = Self::new();
        let n = bytes.len().min(Self::CAPACITY - Self::HEADROOM);
        let h = f.0.head;
        f.0.buf[h..h + n].copy_from_slice(&bytes[..n]);
        f.0.len = n;
        f
    }
}

impl Default for HeapFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HeapFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeapFrame({} bytes)", self.0.len)
    }
}

impl Frame for HeapFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.0.buf[self.0.head..self.0.head + self.0.len]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let b = &mut *self.0;
        &mut b.buf[b.head..b.head + b.len]
    }
    fn set_len(&mut self, len: usize) -> bool {
        if self.0.head + len > Self::CAPACITY {
            return false;
        }
        self.0.len = len;
        true
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.0.head {
            return false;
        }
        self.0.head -= n;
        self.0.len += n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.0.len {
            return false;
        }
        self.0.head += n;
        self.0.len -= n;
        true
    }
}

/// An `Io` that keeps everything it is given: the harness for packet-level tests (and
/// fuzz targets; feature `testing`).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Default)]
pub struct CaptureIo {
    pub sent: Vec<(usize, HeapFrame)>,
    /// Frames waiting to be received, with their port.
    pub inbox: std::collections::VecDeque<(usize, HeapFrame)>,
    /// When set, `alloc` fails (to test allocation-failure paths).
    pub exhausted: bool,
}

#[cfg(any(test, feature = "testing"))]
impl Io for CaptureIo {
    type Frame = HeapFrame;
    fn alloc(&mut self) -> Option<HeapFrame> {
        (!self.exhausted).then(HeapFrame::new)
    }
    fn send(&mut self, port: usize, frame: HeapFrame) {
        self.sent.push((port, frame));
    }
    fn rx_burst(&mut self, port: usize, rx: &mut arrayvec::ArrayVec<HeapFrame, BURST>) {
        while !rx.is_full() {
            match self.inbox.iter().position(|(p, _)| *p == port) {
                Some(i) => rx.extend(self.inbox.remove(i).map(|(_, f)| f)),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_frame_room() {
        let mut f = HeapFrame::from_bytes(&[1, 2, 3]);
        assert!(f.prepend(2));
        assert_eq!(f.data(), &[0, 0, 1, 2, 3]);
        assert!(f.adj(2));
        assert_eq!(f.data(), &[1, 2, 3]);
        assert!(!f.adj(4));
        assert!(!f.prepend(HeapFrame::HEADROOM + 1));
        assert!(f.set_len(60));
        assert!(!f.set_len(HeapFrame::CAPACITY));
    }
}
