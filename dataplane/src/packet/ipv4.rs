//! IPv4 headers (RFC 791), options included, with checked lengths.

use super::checksum;
use super::{Error, Result};
use std::net::Ipv4Addr;

pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const VRRP: u8 = 112;
}

/// Byte offsets of the header fields the fast path patches in place.
pub mod field {
    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const PROTOCOL: usize = 9;
    pub const TTL: usize = 8;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// The flags/fragment-offset word: don't fragment, more fragments, offset (8-byte
/// units).
pub const DONT_FRAG: u16 = 0x4000;
pub const MORE_FRAGS: u16 = 0x2000;
pub const FRAG_OFFSET: u16 = 0x1fff;

/// A view of an IPv4 packet. `new_checked` guarantees that the header (with options) and
/// the whole `total_length` lie inside the buffer, so no accessor can panic. Bytes after
/// `total_length` (Ethernet padding) are outside `payload()`.
#[derive(Debug)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const MIN_HEADER_LEN: usize = 20;

    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < Self::MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if hl < Self::MIN_HEADER_LEN || total < hl {
            return Err(Error::Malformed);
        }
        if b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }
    pub fn into_inner(self) -> T {
        self.buf
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }
    pub fn has_options(&self) -> bool {
        self.header_len() > Self::MIN_HEADER_LEN
    }
    pub fn dscp_ecn(&self) -> u8 {
        self.b()[1]
    }
    pub fn total_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.b()[2], self.b()[3]]))
    }
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }
    /// Flags and fragment offset, as on the wire.
    pub fn frag_word(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    pub fn dont_frag(&self) -> bool {
        self.frag_word() & DONT_FRAG != 0
    }
    pub fn more_frags(&self) -> bool {
        self.frag_word() & MORE_FRAGS != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(self.frag_word() & FRAG_OFFSET) * 8
    }
    /// True for any fragment of a fragmented datagram, first one included.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[10], self.b()[11]])
    }
    pub fn src(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    pub fn options(&self) -> &[u8] {
        &self.b()[Self::MIN_HEADER_LEN..self.header_len()]
    }
    pub fn header(&self) -> &[u8] {
        &self.b()[..self.header_len()]
    }
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.bm()[1] = v;
    }
    pub fn set_total_len(&mut self, len: u16) {
        self.bm()[2..4].copy_from_slice(&len.to_be_bytes());
    }
    pub fn set_ident(&mut self, v: u16) {
        self.bm()[4..6].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_frag_word(&mut self, v: u16) {
        self.bm()[6..8].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.bm()[8] = v;
    }
    pub fn set_protocol(&mut self, v: u8) {
        self.bm()[9] = v;
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.bm()[10..12].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.bm()[12..16].copy_from_slice(&a.octets());
    }
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.bm()[16..20].copy_from_slice(&a.octets());
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }
    /// Decrements the TTL and patches the checksum incrementally (RFC 1624).
    pub fn decrement_ttl(&mut self) {
        let old = u16::from_be_bytes([self.b()[8], self.b()[9]]);
        let ttl = self.ttl().wrapping_sub(1);
        self.set_ttl(ttl);
        let new = u16::from_be_bytes([self.b()[8], self.b()[9]]);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.bm()[h..t]
    }
}

/// Header fields for `emit`; options are not emitted (rvs never originates them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Writes a 20-byte header with a valid checksum at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let total = 20 + self.payload_len;
        let total = u16::try_from(total).map_err(|_| Error::Malformed)?;
        let h = buf.get_mut(..20).ok_or(Error::Truncated)?;
        h[0] = 0x45;
        h[1] = self.dscp_ecn;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        h[6..8].copy_from_slice(&(if self.dont_frag { DONT_FRAG } else { 0 }).to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 28];
        Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            protocol: protocol::UDP,
            payload_len: 8,
            ttl: 64,
            ident: 7,
            dont_frag: true,
            dscp_ecn: 0,
        }
        .emit(&mut b)
        .unwrap();
        b
    }

    #[test]
    fn emit_parse_roundtrip() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.src(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.payload().len(), 8);
        assert!(p.dont_frag() && !p.is_fragment() && !p.has_options());
    }

    #[test]
    fn padding_is_not_payload() {
        let mut b = sample();
        b.extend_from_slice(&[0xee; 18]); // Ethernet minimum-size padding
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut b = sample();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv4Packet::new_checked(&b[..27]).unwrap_err(),
            Error::Truncated
        );
        b[0] = 0x44; // IHL 16 bytes
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        b[0] = 0x4f; // IHL 60 bytes > total length 28
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn options_and_fragments() {
        let mut b = [0u8; 32];
        b[0] = 0x46;
        b[2..4].copy_from_slice(&32u16.to_be_bytes());
        b[6..8].copy_from_slice(&0x2001u16.to_be_bytes()); // MF, offset 8
        b[20] = 1; // NOP option
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.has_options());
        assert_eq!(p.options().len(), 4);
        assert!(p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 8);
        assert_eq!(p.payload().len(), 8);
    }
}
