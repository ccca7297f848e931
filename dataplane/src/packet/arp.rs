//! ARP for IPv4 over Ethernet (RFC 826). Other hardware/protocol types are rejected.

use super::ethernet::{ethertype, MacAddr};
use super::{Error, Result};
use std::net::Ipv4Addr;

pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet (28 bytes).
#[derive(Debug)]
pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const LEN: usize = 28;

    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < Self::LEN {
            return Err(Error::Truncated);
        }
        let htype = u16::from_be_bytes([b[0], b[1]]);
        let ptype = u16::from_be_bytes([b[2], b[3]]);
        if htype != 1 || ptype != ethertype::IPV4 || b[4] != 6 || b[5] != 4 {
            return Err(Error::Malformed);
        }
        Ok(ArpPacket { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn operation(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    pub fn sender_mac(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[8..14]).unwrap_or_default()
    }
    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[14], b[15], b[16], b[17])
    }
    pub fn target_mac(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[18..24]).unwrap_or_default()
    }
    pub fn target_ip(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[24], b[25], b[26], b[27])
    }
}

/// Writes a complete Ethernet/IPv4 ARP packet into the first 28 bytes of `buf`.
pub fn emit(
    buf: &mut [u8],
    op: u16,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> Result<()> {
    let b = buf
        .get_mut(..ArpPacket::<&[u8]>::LEN)
        .ok_or(Error::Truncated)?;
    b[0..2].copy_from_slice(&1u16.to_be_bytes());
    b[2..4].copy_from_slice(&ethertype::IPV4.to_be_bytes());
    b[4] = 6;
    b[5] = 4;
    b[6..8].copy_from_slice(&op.to_be_bytes());
    b[8..14].copy_from_slice(&sender_mac.0);
    b[14..18].copy_from_slice(&sender_ip.octets());
    b[18..24].copy_from_slice(&target_mac.0);
    b[24..28].copy_from_slice(&target_ip.octets());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_then_parse() {
        let mut b = [0u8; 28];
        let me = MacAddr([2, 0, 0, 0, 0, 2]);
        emit(
            &mut b,
            OP_REQUEST,
            me,
            Ipv4Addr::new(198, 18, 0, 2),
            MacAddr::ZERO,
            Ipv4Addr::new(198, 18, 0, 1),
        )
        .unwrap();
        let a = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(a.operation(), OP_REQUEST);
        assert_eq!(a.sender_mac(), me);
        assert_eq!(a.sender_ip(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(a.target_ip(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(a.target_mac(), MacAddr::ZERO);
    }

    #[test]
    fn rejects_short_and_foreign() {
        assert_eq!(
            ArpPacket::new_checked(&[0u8; 27][..]).unwrap_err(),
            Error::Truncated
        );
        let mut b = [0u8; 28];
        emit(
            &mut b,
            OP_REPLY,
            MacAddr::ZERO,
            Ipv4Addr::UNSPECIFIED,
            MacAddr::ZERO,
            Ipv4Addr::UNSPECIFIED,
        )
        .unwrap();
        b[5] = 16; // IPv6-sized protocol address
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
    }
}
