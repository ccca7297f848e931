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
            rport: s.rs_port(r),
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
        /// http_protocol 1.1 (else 1.0), and whether `Connection: close` is sent.
        http11: bool,
        close: bool,
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
        /// The reply's accepted length, bounds included.
        lengths: (u16, u16),
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
        /// keepalived's track-file `weight` (0: the value only says up or down) and
        /// `reverse`.
        weight: i32,
        reverse: bool,
        /// The real server's configured weight, which a weighted value moves.
        base: u32,
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

/// A check that cannot be probed: the key of the check at fault (relative to the check,
/// as `url[0].digest`) and why, so that the error points at the offending key.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeError {
    pub key: String,
    pub message: String,
}

fn at(key: impl Into<String>) -> impl FnOnce(String) -> ProbeError {
    let key = key.into();
    move |message| ProbeError { key, message }
}

/// The probe of check `c` of real server `r` in service `s`.
pub fn probe(s: &ServiceConf, r: &RealServerConf, c: &CheckConf) -> Result<Probe, ProbeError> {
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
    // A missing key is reported at the check's `type`, which asked for it.
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| at("type")(format!("{} needs {what}", c.kind.keyword())))
    };
    let spec = match c.kind {
        CheckType::TcpCheck => Spec::Tcp,
        CheckType::HttpGet | CheckType::SslGet => {
            if c.url.is_empty() {
                return Err(at("type")(format!(
                    "{} needs at least one url",
                    c.kind.keyword()
                )));
            }
            let urls = c
                .url
                .iter()
                .enumerate()
                .map(|(k, u)| {
                    if let Some(d) = &u.digest {
                        if d.len() != 32 || !d.chars().all(|x| x.is_ascii_hexdigit()) {
                            return Err(at(format!("url[{k}].digest"))(format!(
                                "{d:?}: 32 hex digits (an MD5)"
                            )));
                        }
                    }
                    if let Some(re) = &u.regex {
                        regex::bytes::Regex::new(re)
                            .map_err(|e| at(format!("url[{k}].regex"))(e.to_string()))?;
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
                .collect::<Result<Vec<_>, ProbeError>>()?;
            let (http11, close) = match c.http_protocol.as_deref() {
                None | Some("1.0") => (false, false),
                Some("1.0C") | Some("1.0c") => (false, true),
                Some("1.1") => (true, true),
                Some(other) => {
                    return Err(at("http_protocol")(format!(
                        "{other:?}: keepalived's http_protocol is 1.0, 1.0C or 1.1"
                    )))
                }
            };
            Spec::Http {
                http11,
                close,
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
            payload: hex(c.payload.as_deref().unwrap_or(""), false)
                .map_err(at("payload"))?
                .into_iter()
                .map(|(v, _)| v)
                .collect(),
            reply: c
                .require_reply
                .as_deref()
                .map(|r| hex(r, true))
                .transpose()
                .map_err(at("require_reply"))?,
            lengths: (
                c.min_reply_length.unwrap_or(0),
                c.max_reply_length.unwrap_or(255),
            ),
        },
        CheckType::DnsCheck => {
            let qtype = c.dns_type.clone().unwrap_or_else(|| "SOA".into());
            let name = c.name.clone().unwrap_or_else(|| ".".into());
            // A type or name the query cannot carry is refused at load, not failed forever.
            super::dns::query(0, &name, &qtype).map_err(|m| {
                let key = if m.starts_with("DNS type") {
                    "dns_type"
                } else {
                    "name"
                };
                at(key)(m)
            })?;
            Spec::Dns { qtype, name }
        }
        CheckType::PingCheck => Spec::Ping,
        CheckType::SmtpCheck => Spec::Smtp {
            helo: c
                .helo_name
                .clone()
                .unwrap_or_else(|| "smtpchecker.keepalived.org".into()),
        },
        CheckType::FileCheck => Spec::File {
            path: need(&c.track_file, "track_file")?,
            weight: c.weight.unwrap_or(0),
            reverse: c.reverse,
            base: r.weight,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const PORTS: &str =
        "ports: [{ name: lan0, device: net_null0, addresses: [\"198.18.0.2/24\"] }]\n";

    #[test]
    fn keepalived_inheritance_and_defaults() {
        let yaml = format!("{PORTS}services:\n  - vip: \"198.18.0.100:80\"\n    delay_loop: 2\n    connect_timeout: 3\n    alpha: true\n    real_servers:\n      - address: \"198.18.0.11\"\n        forward: nat\n        retry: 4\n        checks:\n          - {{ type: tcp_check, connect_timeout: 0.5, connect_port: 8080 }}\n          - {{ type: http_get, url: [{{ path: /health, status_code: [200, \"301-302\"] }}] }}\n          - {{ type: misc_check, misc_path: /bin/true }}\n          - {{ type: dns_check, name: example.test. }}\n");
        let cfg = Config::parse(&yaml, "t.yaml").unwrap();
        let all = probes(&cfg);
        let (rs, ps) = &all[0];
        assert_eq!(rs.rs(), "[198.18.0.11]:tcp:80");
        let tcp = &ps[0];
        assert_eq!(tcp.target.to_string(), "198.18.0.11:8080");
        assert_eq!(tcp.delay_loop, Duration::from_secs(2), "from the service");
        assert_eq!(
            tcp.connect_timeout,
            Duration::from_millis(500),
            "the check's own"
        );
        assert_eq!(tcp.retry, 4, "from the real server");
        assert_eq!(tcp.delay_before_retry, Duration::from_secs(1));
        assert_eq!(
            tcp.warmup,
            Some(Duration::from_secs(2)),
            "warmup: the delay_loop"
        );
        assert!(tcp.alpha);
        let http = &ps[1];
        assert_eq!(
            http.connect_timeout,
            Duration::from_secs(3),
            "from the service"
        );
        assert_eq!(
            http.delay_before_retry,
            Duration::from_secs(3),
            "HTTP_GET's default"
        );
        match &http.spec {
            Spec::Http { urls, tls, .. } => {
                assert!(!tls);
                assert_eq!(urls[0].status, vec![(200, 200), (301, 302)]);
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(ps[2].retry, 4, "an explicit retry wins over MISC_CHECK's 0");
        match &ps[3].spec {
            Spec::Dns { qtype, name } => {
                assert_eq!((qtype.as_str(), name.as_str()), ("SOA", "example.test."))
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(
            ps[3].delay_before_retry,
            Duration::from_secs(2),
            "DNS_CHECK: the delay_loop"
        );
    }

    #[test]
    fn identical_checks_are_one_probe() {
        let yaml = format!("{PORTS}services:\n  - vip: \"198.18.0.100:80\"\n    real_servers: [{{ address: \"198.18.0.11:80\", forward: nat, checks: [{{ type: tcp_check }}] }}]\n  - vip: \"198.18.0.101:80\"\n    real_servers: [{{ address: \"198.18.0.11:80\", forward: nat, checks: [{{ type: tcp_check }}] }}]\n");
        let cfg = Config::parse(&yaml, "t.yaml").unwrap();
        let all = probes(&cfg);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1[0], all[1].1[0]);
    }

    #[test]
    fn a_bad_check_is_refused_with_its_position() {
        let yaml = format!("{PORTS}services:\n  - vip: \"198.18.0.100:80\"\n    real_servers:\n      - address: \"198.18.0.11:80\"\n        forward: nat\n        checks:\n          - {{ type: http_get, url: [{{ path: /, digest: nothex }}] }}\n");
        let e = Config::parse(&yaml, "t.yaml").unwrap_err().to_string();
        // At the offending key itself: line 8, where `digest:` starts.
        let col = yaml.lines().nth(7).unwrap().find("digest:").unwrap() + 1;
        assert!(
            e.starts_with(&format!(
                "t.yaml:8:{col}: services[0].real_servers[0].checks[0].url[0].digest: "
            )),
            "{e}"
        );
        let bad_hex = yaml.replace(
            "http_get, url: [{ path: /, digest: nothex }]",
            "udp_check, payload: \"0g\"",
        );
        let e = Config::parse(&bad_hex, "t.yaml").unwrap_err().to_string();
        let col = bad_hex.lines().nth(7).unwrap().find("payload:").unwrap() + 1;
        assert!(
            e.starts_with(&format!(
                "t.yaml:8:{col}: services[0].real_servers[0].checks[0].payload: "
            )),
            "{e}"
        );
        let bad_secs = yaml
            .replace("digest: nothex", "status_code: 200")
            .replace("checks:", "delay_loop: -1\n        checks:");
        let e = Config::parse(&bad_secs, "t.yaml").unwrap_err().to_string();
        assert!(
            e.contains("services[0].real_servers[0].delay_loop: -1"),
            "{e}"
        );
        let bad_code = yaml.replace("digest: nothex", "status_code: \"299-200\"");
        let e = Config::parse(&bad_code, "t.yaml").unwrap_err().to_string();
        assert!(e.contains("invalid status code"), "{e}");
    }

    /// More mistakes, each at its own key: an unknown checker, a negative misc_timeout,
    /// a quorum of 0. (file:line:column: key: ...)
    #[test]
    fn more_check_errors_are_positioned() {
        let base = format!("{PORTS}services:\n  - vip: \"198.18.0.100:80\"\n    quorum: 2\n    real_servers:\n      - address: \"198.18.0.11:80\"\n        forward: nat\n        checks:\n          - {{ type: misc_check, misc_path: \"true\", misc_timeout: 1 }}\n");
        Config::parse(&base, "t.yaml").expect("the base is valid");
        let at = |text: &str, token: &str| {
            let (n, line) = text
                .lines()
                .enumerate()
                .find(|(_, l)| l.contains(token))
                .unwrap();
            format!("t.yaml:{}:{}:", n + 1, line.find(token).unwrap() + 1)
        };
        for (text, token, key) in [
            (
                base.replace("type: misc_check", "type: http_gett"),
                "http_gett",
                "services[0].real_servers[0].checks[0].type",
            ),
            (
                base.replace("misc_timeout: 1", "misc_timeout: -1"),
                "misc_timeout:",
                "services[0].real_servers[0].checks[0].misc_timeout",
            ),
            (
                base.replace("quorum: 2", "quorum: 0"),
                "quorum:",
                "services[0].quorum",
            ),
        ] {
            let e = Config::parse(&text, "t.yaml").unwrap_err().to_string();
            let want = format!("{} {key}", at(&text, token));
            assert!(e.starts_with(&want), "{e}\nwanted {want}");
        }
    }
}
