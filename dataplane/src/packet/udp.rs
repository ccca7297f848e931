//! UDP datagrams (RFC 768).

use super::checksum;
use super::{Error, Result};
use std::net::Ipv4Addr;

#[derive(Debug)]
pub struct UdpPacket<T> {
    buf: T,
}

/// Byte offsets of the header fields the fast path patches in place.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const CHECKSUM: usize = 6;
}

impl UdpPacket<&[u8]> {
    /// The ports of a datagram whose 8-byte header is present, without checking its
    /// length field: IPVS forwards such datagrams as they are, as the kernel does.
    #[inline]
    pub fn ports(b: &[u8]) -> Option<(u16, u16)> {
        match b {
            [s0, s1, d0, d1, _, _, _, _, ..] => Some((
                u16::from_be_bytes([*s0, *s1]),
                u16::from_be_bytes([*d0, *d1]),
            )),
            _ => None,
        }
    }
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    /// `buf` is the IP payload. The UDP length field must fit inside it.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        if len < Self::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buf })
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
    pub fn len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.b()[4], self.b()[5]]))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == Self::HEADER_LEN
    }
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    pub fn payload(&self) -> &[u8] {
        &self.b()[Self::HEADER_LEN..self.len()]
    }
    /// A zero checksum means "not computed" in IPv4 and is accepted.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len() as u16;
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::protocol::UDP, len);
        checksum::finish(checksum::accumulate(acc, &self.b()[..self.len()])) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, p: u16) {
        self.buf.as_mut()[0..2].copy_from_slice(&p.to_be_bytes());
    }
    pub fn set_dst_port(&mut self, p: u16) {
        self.buf.as_mut()[2..4].copy_from_slice(&p.to_be_bytes());
    }
    pub fn set_checksum(&mut self, c: u16) {
        self.buf.as_mut()[6..8].copy_from_slice(&c.to_be_bytes());
    }
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::protocol::UDP, len as u16);
        let c = checksum::finish(checksum::accumulate(acc, &self.b()[..len]));
        // RFC 768: a computed zero is sent as all ones.
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_checksum() {
        let mut b = [0u8; 12];
        b[0..2].copy_from_slice(&53u16.to_be_bytes());
        b[2..4].copy_from_slice(&5353u16.to_be_bytes());
        b[4..6].copy_from_slice(&12u16.to_be_bytes());
        b[8..12].copy_from_slice(b"abcd");
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        assert!(u.verify_checksum_v4(s, d), "zero checksum is accepted");
        u.fill_checksum_v4(s, d);
        assert!(u.verify_checksum_v4(s, d));
        assert_eq!(u.payload(), b"abcd");
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (53, 5353, 12));
    }

    #[test]
    fn length_checks() {
        let mut b = [0u8; 8];
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        b[4..6].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }
}
