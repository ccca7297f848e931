//! IPv4 prefixes and the set of addresses the director owns (DIPs now; VIPs and LIPs
//! join it later).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length, as in `198.18.0.2/24`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then_some(Ipv4Net { addr, len })
    }
    /// The netmask, without a branch for /0 (route lookups test it per route).
    #[inline]
    pub fn mask(&self) -> u32 {
        ((u64::from(u32::MAX) << 32) >> self.len.min(32)) as u32
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IPv4 prefix {0:?}: expected ADDRESS/LENGTH such as 198.18.0.2/24")]
pub struct NetParseError(pub String);

impl FromStr for Ipv4Net {
    type Err = NetParseError;
    /// `a.b.c.d/len`; a bare address means /32.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NetParseError(s.to_string());
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| err())?),
            None => (s, 32),
        };
        let addr = a.parse::<Ipv4Addr>().map_err(|_| err())?;
        Ipv4Net::new(addr, l).ok_or_else(err)
    }
}

/// An address the director answers for, and the port it lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedAddr {
    pub net: Ipv4Net,
    pub port: usize,
}

/// The owned addresses, looked up on every packet: a small open-addressed map would do
/// too, but a hash map with a fast hasher is plenty for tens of addresses.
#[derive(Debug, Clone, Default)]
pub struct OwnedAddrs {
    map: ahash::AHashMap<Ipv4Addr, OwnedAddr>,
}

impl OwnedAddrs {
    pub fn insert(&mut self, a: OwnedAddr) {
        self.map.insert(a.net.addr, a);
    }
    #[inline]
    pub fn get(&self, ip: Ipv4Addr) -> Option<&OwnedAddr> {
        self.map.get(&ip)
    }
    /// True when `ip` is owned on `port`.
    #[inline]
    pub fn owned_on(&self, ip: Ipv4Addr, port: usize) -> bool {
        self.map.get(&ip).is_some_and(|a| a.port == port)
    }
    pub fn iter(&self) -> impl Iterator<Item = &OwnedAddr> {
        self.map.values()
    }
    /// The source address for a packet this director originates toward `dst` on `port`:
    /// an owned address on that port whose subnet holds `dst`, else any one on the port.
    pub fn source_for(&self, port: usize, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let mut fallback = None;
        for a in self.map.values().filter(|a| a.port == port) {
            if a.net.len < 32 && a.net.contains(dst) {
                return Some(a.net.addr);
            }
            fallback = fallback.or(Some(a.net.addr));
        }
        fallback
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_of_every_length() {
        for len in 0..=32u8 {
            let want = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            let n = Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 2), len).unwrap();
            assert_eq!(n.mask(), want, "/{len}");
        }
    }

    #[test]
    fn prefix_parse_and_contains() {
        let n: Ipv4Net = "198.18.0.2/24".parse().unwrap();
        assert_eq!(n.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert!(n.contains(Ipv4Addr::new(198, 18, 0, 200)));
        assert!(!n.contains(Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!("198.18.0.2".parse::<Ipv4Net>().unwrap().len, 32);
        let any: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(Ipv4Addr::new(1, 2, 3, 4)));
        for bad in ["198.18.0.2/33", "198.18.0/24", "x/1", "198.18.0.2/"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
        assert_eq!(n.to_string(), "198.18.0.2/24");
    }

    #[test]
    fn source_selection() {
        let mut o = OwnedAddrs::default();
        o.insert(OwnedAddr {
            net: "198.18.0.2/24".parse().unwrap(),
            port: 0,
        });
        o.insert(OwnedAddr {
            net: "198.19.0.2/24".parse().unwrap(),
            port: 0,
        });
        o.insert(OwnedAddr {
            net: "198.18.5.2/24".parse().unwrap(),
            port: 1,
        });
        assert_eq!(
            o.source_for(0, Ipv4Addr::new(198, 19, 0, 9)),
            Some(Ipv4Addr::new(198, 19, 0, 2))
        );
        assert_eq!(
            o.source_for(1, Ipv4Addr::new(198, 19, 0, 9)),
            Some(Ipv4Addr::new(198, 18, 5, 2))
        );
        assert_eq!(o.source_for(2, Ipv4Addr::new(198, 19, 0, 9)), None);
        assert!(o.owned_on(Ipv4Addr::new(198, 18, 0, 2), 0));
        assert!(!o.owned_on(Ipv4Addr::new(198, 18, 0, 2), 1));
    }
}
