//! keepalived's inheritance and defaults: each checker of each real server resolved
//! into a `Probe`, the complete description of one periodic check. Two checkers that
//! resolve to the same probe (same target, type, keys and timing) share it: one probe
//! per distinct target and check per interval, however many services list the server
//! (keepalived runs one per service and real server: its issues #2111, #2358).

use crate::config::{CheckConf, CheckType, Config, RealServerConf, ServiceConf};
use dataplane::ipvs::service::Proto;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// keepalived's defaults (check_data.c, check_api.c, check_http.c, check_dns.c,
/// check_misc.c): delay_loop 60 s, connect_timeout 5 s, retry 1 (DNS 3, MISC 0),
/// delay_before_retry 1 s (HTTP/SSL 3 s, DNS the delay_loop).
const DELAY_LOOP: f64 = 60.0;
const CONNECT_TIMEOUT: f64 = 5.0;

/// A real server as the health checker knows it: its service and its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RsKey {
    pub proto: Proto,
    pub vip: Ipv4Addr,
    pub vport: u16,
    pub rip: Ipv4Addr,
    pub rport: u16,
}

impl RsKey {
    pub fn of(s: &ServiceConf, r: &RealServerConf) -> RsKey {
        RsKey {
            proto: s.protocol,
            vip: s.vip.addr,
            vport: s.vip.port,
            rip: r.address.addr,
            rport: if r.address.port == 0 {
                s.vip.port
            } else {
                r.address.port
            },
        }
    }

    /// keepalived's way of writing it: `[198.18.0.11]:tcp:80`.
    pub fn rs(&self) -> String {
        format!("[{}]:{}:{}", self.rip, proto_word(self.proto), self.rport)
    }

    pub fn vs(&self) -> String {
        format!("[{}]:{}:{}", self.vip, proto_word(self.proto), self.vport)
    }
}

fn proto_word(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

/// One URL of an HTTP_GET / SSL_GET probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    pub path: String,
    pub status: Vec<(u16, u16)>,
    /// Lower-case hex MD5 of the body.
    pub digest: Option<String>,
    pub virtualhost: Option<String>,
    pub regex: Option<String>,
    pub regex_no_match: bool,
}

/// What a probe does, by checker type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Spec {
    Tcp,
    Http {
        tls: bool,
        urls: Vec<Url>,
        verify: bool,
        sni: Option<String>,
    },
    Misc {
        path: String,
        timeout: Duration,
        dynamic: bool,
    },
    Udp {
        payload: Vec<u8>,
        /// (value, mask) per byte: X nibbles are wildcards.
        reply: Option<Vec<(u8, u8)>>,
    },
    Dns {
        qtype: String,
        name: String,
    },
    Ping,
    Smtp {
        helo: String,
    },
    File {
        path: String,
    },
}

/// One periodic check, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    pub kind: CheckType,
    pub target: SocketAddrV4,
    pub bind: Option<SocketAddrV4>,
    pub delay_loop: Duration,
    pub connect_timeout: Duration,
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// The longest random delay before the first check (None: none).
    pub warmup: Option<Duration>,
    /// Whether it starts down (the service's `alpha`).
    pub alpha: bool,
    pub spec: Spec,
}

impl Probe {
    /// keepalived's words for the probe's target: `[198.18.0.11]:tcp:80`.
    pub fn target_words(&self) -> String {
        format!("[{}]:tcp:{}", self.target.ip(), self.target.port())
    }
}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0))
}

/// Parses hex (`"0a1B"`); with `wild`, `X`/`x` nibbles match anything.
pub fn hex(s: &str, wild: bool) -> Result<Vec<(u8, u8)>, String> {
    let digits: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{s:?}: an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let mut v = 0u8;
            let mut m = 0u8;
            for &c in pair {
                v <<= 4;
                m <<= 4;
                match c.to_digit(16) {
                    Some(d) => {
                        v |= d as u8;
                        m |= 0xf;
                    }
                    None if wild && (c == 'X' || c == 'x') => {}
                    None => return Err(format!("{s:?}: {c:?} is not a hex digit")),
                }
            }
            Ok((v, m))
        })
        .collect()
}

/// The probe of check `c` of real server `r` in service `s`.
pub fn probe(s: &ServiceConf, r: &RealServerConf, c: &CheckConf) -> Result<Probe, String> {
    // checker, then real server, then service, then the type's default.
    macro_rules! pick {
        ($k:ident) => {
            c.$k.or(r.$k).or(s.$k)
        };
    }
    let key = RsKey::of(s, r);
    let delay_loop = secs(pick!(delay_loop).unwrap_or(DELAY_LOOP));
    let retry = pick!(retry).unwrap_or(match c.kind {
        CheckType::DnsCheck => 3,
        CheckType::MiscCheck => 0,
        _ => 1,
    });
    let delay_before_retry = match pick!(delay_before_retry) {
        Some(v) => secs(v),
        None => match c.kind {
            CheckType::HttpGet | CheckType::SslGet => Duration::from_secs(3),
            CheckType::DnsCheck => delay_loop,
            _ => Duration::from_secs(1),
        },
    };
    // warmup: random up to delay_loop by default; 0 turns it off.
    let warmup = match pick!(warmup) {
        Some(w) if w <= 0.0 => None,
        Some(w) => Some(secs(w)),
        None => Some(delay_loop),
    };
    let ip = pick!(connect_ip).map(|a| a.0).unwrap_or(key.rip);
    let port = pick!(connect_port).unwrap_or(key.rport);
    let bind = match (pick!(bindto), pick!(bind_port)) {
        (None, None) => None,
        (a, p) => Some(SocketAddrV4::new(
            a.map(|a| a.0).unwrap_or(Ipv4Addr::UNSPECIFIED),
            p.unwrap_or(0),
        )),
    };
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| format!("{} needs {what}", c.kind.keyword()))
    };
    let spec = match c.kind {
        CheckType::TcpCheck => Spec::Tcp,
        CheckType::HttpGet | CheckType::SslGet => {
            if c.url.is_empty() {
                return Err(format!("{} needs at least one url", c.kind.keyword()));
            }
            let urls = c
                .url
                .iter()
                .map(|u| {
                    if let Some(d) = &u.digest {
                        if d.len() != 32 || !d.chars().all(|x| x.is_ascii_hexdigit()) {
                            return Err(format!("digest {d:?}: 32 hex digits (an MD5)"));
                        }
                    }
                    if let Some(re) = &u.regex {
                        regex::bytes::Regex::new(re).map_err(|e| format!("regex: {e}"))?;
                    }
                    Ok(Url {
                        path: u.path.clone(),
                        status: u.status_code.clone().unwrap_or_default().0,
                        digest: u.digest.as_ref().map(|d| d.to_ascii_lowercase()),
                        virtualhost: u.virtualhost.clone(),
                        regex: u.regex.clone(),
                        regex_no_match: u.regex_no_match,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Spec::Http {
                tls: c.kind == CheckType::SslGet,
                urls,
                verify: c.verify_certificate,
                sni: c.sni_name.clone(),
            }
        }
        CheckType::MiscCheck => Spec::Misc {
            path: need(&c.misc_path, "misc_path")?,
            // misc_timeout 0 or absent: the delay_loop (check_misc.c).
            timeout: match c.misc_timeout {
                Some(t) if t > 0.0 => secs(t),
                _ => delay_loop,
            },
            dynamic: c.misc_dynamic,
        },
        CheckType::UdpCheck => Spec::Udp {
            payload: hex(c.payload.as_deref().unwrap_or(""), false)?
                .into_iter()
                .map(|(v, _)| v)
                .collect(),
            reply: c
                .require_reply
                .as_deref()
                .map(|r| hex(r, true))
                .transpose()?,
        },
        CheckType::DnsCheck => Spec::Dns {
            qtype: c.dns_type.clone().unwrap_or_else(|| "SOA".into()),
            name: c.name.clone().unwrap_or_else(|| ".".into()),
        },
        CheckType::PingCheck => Spec::Ping,
        CheckType::SmtpCheck => Spec::Smtp {
            helo: c
                .helo_name
                .clone()
                .unwrap_or_else(|| "smtpchecker.keepalived.org".into()),
        },
        CheckType::FileCheck => Spec::File {
            path: need(&c.track_file, "track_file")?,
        },
    };
    Ok(Probe {
        kind: c.kind,
        target: SocketAddrV4::new(ip, port),
        bind,
        delay_loop,
        connect_timeout: secs(pick!(connect_timeout).unwrap_or(CONNECT_TIMEOUT)),
        retry,
        delay_before_retry,
        warmup,
        alpha: s.alpha,
        spec,
    })
}

/// Every real server with checks, and its probes, in configuration order.
pub fn probes(cfg: &Config) -> Vec<(RsKey, Vec<Probe>)> {
    let mut out = Vec::new();
    for s in &cfg.services {
        for r in &s.real_servers {
            if r.checks.is_empty() {
                continue;
            }
            // Validation refused a config whose checks do not resolve.
            let ps: Vec<Probe> = r
                .checks
                .iter()
                .filter_map(|c| probe(s, r, c).ok())
                .collect();
            out.push((RsKey::of(s, r), ps));
        }
    }
    out
}
