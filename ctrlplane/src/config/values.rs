//! Scalar values written as strings in the YAML (addresses, prefixes, MACs, endpoints),
//! parsed on load and written back as text.

use dataplane::net::addr::Ipv4Net;
use dataplane::packet::MacAddr;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Deserializes a type from a string through its `TryFrom<String>`, with the check made
/// inside the deserializer's visit of the string (not after it, as `#[serde(try_from)]`
/// does): a YAML error then points at the offending scalar, its line, column and path
/// (`ports[0].addresses[0]`), not at the enclosing mapping or sequence.
macro_rules! deserialize_via_try_from {
    ($name:ident) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        $name::try_from(s.to_string()).map_err(E::custom)
                    }
                }
                d.deserialize_str(Visitor)
            }
        }
    };
}

/// "ADDRESS[:PORT]" (port 0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl TryFrom<String> for Endpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let bad =
            || format!("invalid endpoint {s:?}: expected ADDRESS:PORT such as 198.18.0.100:80");
        let (a, p) = match t.rsplit_once(':') {
            Some((a, p)) => (a, p.parse::<u16>().map_err(|_| bad())?),
            None => (t, 0),
        };
        Ok(Endpoint {
            addr: a.parse().map_err(|_| bad())?,
            port: p,
        })
    }
}

deserialize_via_try_from!(Endpoint);

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        format!("{}:{}", e.addr, e.port)
    }
}

/// Strings that parse as a value, keeping the text for saving back.
macro_rules! parsed_string {
    ($name:ident, $inner:ty) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(into = "String")]
        pub struct $name(pub $inner);
        deserialize_via_try_from!($name);
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.trim()
                    .parse::<$inner>()
                    .map($name)
                    .map_err(|e| e.to_string())
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.to_string()
            }
        }
    };
}

parsed_string!(Prefix, Ipv4Net);
parsed_string!(Mac, MacAddr);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Addr(pub Ipv4Addr);
deserialize_via_try_from!(Addr);
impl TryFrom<String> for Addr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.trim()
            .parse::<Ipv4Addr>()
            .map(Addr)
            .map_err(|_| format!("invalid IPv4 address {s:?}"))
    }
}
impl From<Addr> for String {
    fn from(v: Addr) -> String {
        v.0.to_string()
    }
}
