//! Health checking keys (keepalived's, named after its keywords): the checks of a real
//! server, the defaults a service and a real server give them, and what a service does
//! when its servers fail (`inhibit_on_failure`, `alpha`, `quorum`, `sorry_server`).
//!
//! Inheritance is keepalived's: a checker's unset key takes its real server's value,
//! whose unset key takes its service's, and then the checker type's default
//! (`health::resolve`).

use super::values::{Addr, Endpoint};
use dataplane::ipvs::conn::Fwd;
use serde::{Deserialize, Serialize};

/// keepalived's check keys, which a service, a real server and a check may each set (a
/// check's unset key takes its real server's, whose unset key takes its service's):
/// declared once here and appended to each of the three structs. Seconds may be
/// fractional.
macro_rules! with_check_keys {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        pub struct $name {
            $($body)*
    #[serde(default, skip_serializing_if = "Option::is_none")]
        pub delay_loop: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connect_timeout: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub delay_before_retry: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub warmup: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connect_ip: Option<Addr>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connect_port: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bindto: Option<Addr>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bind_port: Option<u16>,
        }
    };
}
pub(super) use with_check_keys;

/// keepalived's checker types (its `HTTP_GET`, `TCP_CHECK`, ... in snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    TcpCheck,
    HttpGet,
    SslGet,
    MiscCheck,
    UdpCheck,
    DnsCheck,
    PingCheck,
    SmtpCheck,
    FileCheck,
}

impl CheckType {
    /// keepalived's name for it.
    pub fn keyword(self) -> &'static str {
        match self {
            CheckType::TcpCheck => "TCP_CHECK",
            CheckType::HttpGet => "HTTP_GET",
            CheckType::SslGet => "SSL_GET",
            CheckType::MiscCheck => "MISC_CHECK",
            CheckType::UdpCheck => "UDP_CHECK",
            CheckType::DnsCheck => "DNS_CHECK",
            CheckType::PingCheck => "PING_CHECK",
            CheckType::SmtpCheck => "SMTP_CHECK",
            CheckType::FileCheck => "FILE_CHECK",
        }
    }
}

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

with_check_keys! {
    /// One checker of a real server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConf {
    #[serde(rename = "type")]
    pub kind: CheckType,
    // HTTP_GET, SSL_GET
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub url: Vec<UrlConf>,
    /// SSL_GET: verify the server's certificate (keepalived does not, by default).
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify_certificate: bool,
    /// SSL_GET: the name sent as SNI (and verified when asked); default the virtualhost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_name: Option<String>,
    /// keepalived's `http_protocol`: "1.0" (default), "1.0C" (adds `Connection:
    /// close`) or "1.1" (HTTP/1.1 with `Connection: close`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_protocol: Option<String>,
    // MISC_CHECK
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misc_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misc_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub misc_dynamic: bool,
    // UDP_CHECK: hex bytes; require_reply may use X as a wildcard nibble.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_reply: Option<String>,
    /// With require_reply, a reply shorter or longer fails (keepalived: 0 and 255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reply_length: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reply_length: Option<u16>,
    // DNS_CHECK: keepalived's `type` (A, NS, CNAME, SOA, MX, TXT, AAAA; default SOA) and
    // `name` (default ".").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    // SMTP_CHECK
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helo_name: Option<String>,
    // FILE_CHECK: keepalived's `track_file` and `weight <n> [reverse]`. With weight 0
    // the file's value decides up (0) or down; otherwise value × weight (negated with
    // reverse) is added to the real server's weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub reverse: bool,
}
}

/// One `url` of an HTTP_GET or SSL_GET.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UrlConf {
    pub path: String,
    /// Accepted status codes: `200`, `[200, 301]`, `"200-299"`; default 200-299.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<StatusCodes>,
    /// MD5 of the body, 32 hex digits, as `keepalived --genhash` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// The body must match (or, with `regex_no_match`, must not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub regex_no_match: bool,
}

/// Status code ranges, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCodes(pub Vec<(u16, u16)>);

impl StatusCodes {
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(a, b)| (a..=b).contains(&code))
    }

    fn range(s: &str) -> Result<(u16, u16), String> {
        let bad = || format!("invalid status code {s:?}: use 200, \"200-299\" or a list of them");
        let one = |x: &str| {
            x.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(bad)
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (one(a)?, one(b)?);
                if a > b {
                    return Err(bad());
                }
                Ok((a, b))
            }
            None => one(s).map(|c| (c, c)),
        }
    }
}

impl Default for StatusCodes {
    fn default() -> Self {
        StatusCodes(vec![(200, 299)])
    }
}

impl<'de> Deserialize<'de> for StatusCodes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StatusCodes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a status code, a range \"200-299\" or a list of them")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StatusCodes, E> {
                StatusCodes::range(&v.to_string())
                    .map(|r| StatusCodes(vec![r]))
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StatusCodes, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StatusCodes, E> {
                StatusCodes::range(v)
                    .map(|r| StatusCodes(vec![r]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StatusCodes, A::Error> {
                let mut out = Vec::new();
                while let Some(one) = seq.next_element::<StatusCodes>()? {
                    out.extend(one.0);
                }
                if out.is_empty() {
                    return Err(serde::de::Error::custom("an empty list of status codes"));
                }
                Ok(StatusCodes(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for StatusCodes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        text.serialize(s)
    }
}

/// keepalived's `sorry_server IP PORT` (+ `sorry_server_lvs_method`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SorryServerConf {
    pub address: Endpoint,
    #[serde(default = "default_sorry_fwd")]
    pub forward: Fwd,
}

fn default_sorry_fwd() -> Fwd {
    Fwd::Nat
}
