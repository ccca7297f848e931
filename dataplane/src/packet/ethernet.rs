//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.

use super::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    /// The address as the low 48 bits of a u64 (in memory order), for comparisons
    /// that take one instruction.
    #[inline]
    pub fn bits(&self) -> u64 {
        mac_bits(&self.0)
    }
    /// Group bit set: broadcast or multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        b.get(..6).map(|s| {
            let mut m = [0u8; 6];
            m.copy_from_slice(s);
            MacAddr(m)
        })
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error for a MAC address string that is not six hex octets separated by ':' or '-'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 02:00:00:00:00:01")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.is_empty() || part.len() > 2 {
                return Err(MacParseError(s.to_string()));
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| MacParseError(s.to_string()))?;
            n += 1;
        }
        if n != 6 {
            return Err(MacParseError(s.to_string()));
        }
        Ok(MacAddr(out))
    }
}

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// A view of an Ethernet II frame.
#[derive(Debug)]
pub struct EthernetFrame<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = 14;

    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buf })
    }
    pub fn into_inner(self) -> T {
        self.buf
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn dst(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[0..6]).unwrap_or_default()
    }
    pub fn src(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[6..12]).unwrap_or_default()
    }
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.b()[12], self.b()[13]])
    }
    pub fn payload(&self) -> &[u8] {
        &self.b()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    pub fn set_dst(&mut self, m: MacAddr) {
        self.bm()[0..6].copy_from_slice(&m.0);
    }
    pub fn set_src(&mut self, m: MacAddr) {
        self.bm()[6..12].copy_from_slice(&m.0);
    }
    pub fn set_ethertype(&mut self, t: u16) {
        self.bm()[12..14].copy_from_slice(&t.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.bm()[Self::HEADER_LEN..]
    }
}

/// A view of one VLAN tag: TCI followed by the encapsulated ethertype (the TPID is the
/// outer frame's ethertype).
#[derive(Debug)]
pub struct VlanTag<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const HEADER_LEN: usize = 4;

    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(VlanTag { buf })
    }
    pub fn vlan_id(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[0], b[1]]) & 0x0fff
    }
    pub fn priority(&self) -> u8 {
        self.buf.as_ref()[0] >> 5
    }
    pub fn ethertype(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }
}

/// Writes a 14-byte Ethernet header at the start of `buf` (which must hold it).
#[inline]
fn mac_bits(m: &[u8; 6]) -> u64 {
    u64::from(u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
        | u64::from(u16::from_le_bytes([m[4], m[5]])) << 32
}

/// The header of an untagged frame, its addresses as `MacAddr::bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Untagged {
    pub dst: u64,
    pub src: u64,
    pub ethertype: u16,
}

impl Untagged {
    /// The destination's group bit: broadcast or multicast.
    #[inline]
    pub fn dst_is_multicast(&self) -> bool {
        self.dst & 0x01 != 0
    }
}

/// The common case of `packet::parse_l2`: an untagged frame, read from its 14-byte
/// header as an array (no bounds checks). None for anything else (tagged, or too
/// short), which `parse_l2` then handles.
#[inline]
pub fn untagged(frame: &[u8]) -> Option<Untagged> {
    let h: &[u8; 14] = frame.get(..14)?.try_into().ok()?;
    let ethertype = u16::from_be_bytes([h[12], h[13]]);
    if ethertype == ethertype::VLAN || ethertype == ethertype::QINQ {
        return None;
    }
    Some(Untagged {
        dst: mac_bits(&[h[0], h[1], h[2], h[3], h[4], h[5]]),
        src: mac_bits(&[h[6], h[7], h[8], h[9], h[10], h[11]]),
        ethertype,
    })
}

pub fn emit_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) -> Result<()> {
    let h = buf
        .get_mut(..EthernetFrame::<&[u8]>::HEADER_LEN)
        .ok_or(Error::Truncated)?;
    h[0..6].copy_from_slice(&dst.0);
    h[6..12].copy_from_slice(&src.0);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_print() {
        let m: MacAddr = "02:00:5e:00:01:0a".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x5e, 0, 1, 0x0a]);
        assert_eq!(m.to_string(), "02:00:5e:00:01:0a");
        assert_eq!("02-00-5e-00-01-0a".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:00",
            "02:00:5e:00:01:0a:0b",
            "zz:00:00:00:00:00",
            "020:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!m.is_multicast());
    }

    #[test]
    fn frame_fields() {
        let mut b = [0u8; 20];
        emit_header(
            &mut b,
            MacAddr::BROADCAST,
            MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype::ARP,
        )
        .unwrap();
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload().len(), 6);
        assert_eq!(
            EthernetFrame::new_checked(&b[..13]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn vlan_tag() {
        let t = VlanTag::new_checked(&[0xa0, 0x64, 0x08, 0x00][..]).unwrap();
        assert_eq!(t.vlan_id(), 100);
        assert_eq!(t.priority(), 5);
        assert_eq!(t.ethertype(), ethertype::IPV4);
        assert!(VlanTag::new_checked(&[0u8; 3][..]).is_err());
    }
}
