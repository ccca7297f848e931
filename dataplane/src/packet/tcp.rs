//! TCP segments (RFC 9293): header, options and payload views.

use super::checksum;
use super::{Error, Result};
use std::net::Ipv4Addr;

/// Byte offsets of the header fields the fast path patches in place.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const DATA_OFFSET: usize = 12;
    pub const CHECKSUM: usize = 16;
}

/// The largest TCP header (data offset 15 words).
pub const MAX_HEADER_LEN: usize = 60;

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

#[derive(Debug)]
pub struct TcpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const MIN_HEADER_LEN: usize = 20;

    /// `buf` is the IP payload: exactly the segment.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < Self::MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(b[12] >> 4) * 4;
        if hl < Self::MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(TcpPacket { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    pub fn seq(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    pub fn ack(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[8], b[9], b[10], b[11]])
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[12] >> 4) * 4
    }
    pub fn flags(&self) -> u8 {
        self.b()[13]
    }
    pub fn window(&self) -> u16 {
        u16::from_be_bytes([self.b()[14], self.b()[15]])
    }
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[16], self.b()[17]])
    }
    pub fn options(&self) -> &[u8] {
        &self.b()[Self::MIN_HEADER_LEN..self.header_len()]
    }
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.b().len() as u16;
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::protocol::TCP, len);
        checksum::finish(checksum::accumulate(acc, self.b())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    pub fn set_src_port(&mut self, p: u16) {
        self.bm()[0..2].copy_from_slice(&p.to_be_bytes());
    }
    pub fn set_dst_port(&mut self, p: u16) {
        self.bm()[2..4].copy_from_slice(&p.to_be_bytes());
    }
    pub fn set_checksum(&mut self, c: u16) {
        self.bm()[16..18].copy_from_slice(&c.to_be_bytes());
    }
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.b().len() as u16;
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::protocol::TCP, len);
        let c = checksum::finish(checksum::accumulate(acc, self.b()));
        self.set_checksum(c);
    }
}

/// One TCP option from the options area; unknown kinds are returned raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    Timestamps(u32, u32),
    Other { kind: u8, data: &'a [u8] },
}

/// Iterates over an options area; stops at End-of-options or at the first malformed
/// option (a length that runs past the area), never panicking.
pub fn options(mut area: &[u8]) -> impl Iterator<Item = Result<TcpOption<'_>>> {
    std::iter::from_fn(move || loop {
        let (&kind, rest) = area.split_first()?;
        match kind {
            0 => return None,
            1 => {
                area = rest;
                continue;
            }
            _ => {
                let len = match rest.first() {
                    Some(&l) if usize::from(l) >= 2 && usize::from(l) <= area.len() => {
                        usize::from(l)
                    }
                    _ => {
                        area = &[];
                        return Some(Err(Error::Malformed));
                    }
                };
                let data = &area[2..len];
                area = &area[len..];
                let opt = match (kind, data.len()) {
                    (2, 2) => TcpOption::Mss(u16::from_be_bytes([data[0], data[1]])),
                    (3, 1) => TcpOption::WindowScale(data[0]),
                    (4, 0) => TcpOption::SackPermitted,
                    (8, 8) => TcpOption::Timestamps(
                        u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
                        u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
                    ),
                    _ => TcpOption::Other { kind, data },
                };
                return Some(Ok(opt));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn() -> Vec<u8> {
        let mut b = vec![0u8; 24];
        b[0..2].copy_from_slice(&40000u16.to_be_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[4..8].copy_from_slice(&1u32.to_be_bytes());
        b[12] = 6 << 4;
        b[13] = flags::SYN;
        b[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
        b
    }

    #[test]
    fn fields_and_checksum() {
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 100));
        let mut b = syn();
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.fill_checksum_v4(s, d);
        assert!(t.verify_checksum_v4(s, d));
        assert!(!t.verify_checksum_v4(s, Ipv4Addr::new(198, 18, 0, 101)));
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.flags(), flags::SYN);
        let opts: Vec<_> = options(t.options()).collect();
        assert_eq!(opts, vec![Ok(TcpOption::Mss(1460))]);
    }

    #[test]
    fn bad_header_lengths() {
        let mut b = syn();
        b[12] = 4 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        b[12] = 15 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn malformed_options_stop_iteration() {
        let area = [1, 1, 2, 9, 0, 0];
        let v: Vec<_> = options(&area).collect();
        assert_eq!(v, vec![Err(Error::Malformed)]);
        let area = [4, 2, 3, 3, 7, 0, 99];
        let v: Vec<_> = options(&area).collect();
        assert_eq!(
            v,
            vec![Ok(TcpOption::SackPermitted), Ok(TcpOption::WindowScale(7))]
        );
        assert_eq!(options(&[5, 1]).count(), 1);
    }
}
