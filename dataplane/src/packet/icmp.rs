//! ICMP for IPv4 (RFC 792): echo and the error messages rvs translates or originates.

use super::checksum;
use super::{Error, Result};

/// Byte offsets of the header fields rvs writes.
pub mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// The 4 bytes after the checksum: unused, or the next-hop MTU (RFC 1191).
    pub const REST: usize = 4;
}

pub mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    /// Code of DEST_UNREACHABLE meaning "fragmentation needed and DF set".
    pub const CODE_FRAG_NEEDED: u8 = 4;
}

#[derive(Debug)]
pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    /// `buf` is the whole ICMP message (the IP payload).
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IcmpPacket { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn msg_type(&self) -> u8 {
        self.b()[0]
    }
    pub fn code(&self) -> u8 {
        self.b()[1]
    }
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// Echo identifier (bytes 4-5), meaningful for echo messages.
    pub fn echo_ident(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }
    pub fn echo_seq(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    /// Next-hop MTU of a fragmentation-needed message (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    /// Everything after the 8-byte header: echo data, or the quoted datagram of an error.
    pub fn data(&self) -> &[u8] {
        &self.b()[Self::HEADER_LEN..]
    }
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.b()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        self.buf.as_mut()[0] = t;
    }
    pub fn set_code(&mut self, c: u8) {
        self.buf.as_mut()[1] = c;
    }
    pub fn set_checksum(&mut self, c: u16) {
        self.buf.as_mut()[2..4].copy_from_slice(&c.to_be_bytes());
    }
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.b());
        self.set_checksum(c);
    }
    /// Turns an echo request into an echo reply in place, patching the checksum.
    pub fn make_echo_reply(&mut self) {
        let old = u16::from_be_bytes([self.b()[0], self.b()[1]]);
        self.set_msg_type(kind::ECHO_REPLY);
        let new = u16::from_be_bytes([self.b()[0], self.b()[1]]);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_reply_in_place() {
        let mut b = vec![
            kind::ECHO_REQUEST,
            0,
            0,
            0,
            0x12,
            0x34,
            0,
            1,
            b'p',
            b'i',
            b'n',
            b'g',
        ];
        IcmpPacket::new_checked(&mut b[..]).unwrap().fill_checksum();
        let mut p = IcmpPacket::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        p.make_echo_reply();
        assert_eq!(p.msg_type(), kind::ECHO_REPLY);
        assert!(p.verify_checksum());
        assert_eq!(p.data(), b"ping");
        assert_eq!(
            IcmpPacket::new_checked(&b[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
