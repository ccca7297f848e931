//! The checker blocks of a `real_server` (`HTTP_GET`, `TCP_CHECK`, ...) as rvs's
//! `checks`, and the global `track_file` blocks FILE_CHECK names.

use super::global::{address, no_effect, num, secs};
use super::tree::Stmt;
use super::{err, map, put, Cx, Result};
use serde_yaml::{Mapping, Value};
use std::collections::HashMap;

const CHECKERS: &[(&str, &str)] = &[
    ("HTTP_GET", "http_get"),
    ("SSL_GET", "ssl_get"),
    ("TCP_CHECK", "tcp_check"),
    ("MISC_CHECK", "misc_check"),
    ("UDP_CHECK", "udp_check"),
    ("DNS_CHECK", "dns_check"),
    ("PING_CHECK", "ping_check"),
    ("SMTP_CHECK", "smtp_check"),
    ("FILE_CHECK", "file_check"),
    ("BFD_CHECK", ""),
];

pub fn is_checker(w: &str) -> bool {
    CHECKERS.iter().any(|(k, _)| *k == w)
}

/// `track_file NAME { file PATH; weight N [reverse] }` blocks, by name.
#[derive(Default)]
pub struct TrackFiles(HashMap<String, (String, Option<(i32, bool)>)>);

impl TrackFiles {
    pub fn define(&mut self, b: &Stmt) -> Result<()> {
        let name = b.arg()?.to_string();
        let (mut file, mut weight) = (None, None);
        for s in b.body() {
            match s.word(0) {
                "file" => file = Some(s.arg()?.to_string()),
                "weight" => weight = Some(file_weight(s)?),
                "init_file" => {
                    return err(
                        &s.pos,
                        "init_file: rvs reads the file as it is; create it before starting rvsd",
                    )
                }
                w => return err(&s.pos, format!("{w}: not a track_file keyword rvs knows")),
            }
        }
        let Some(file) = file else {
            return err(&b.pos, format!("track_file {name}: `file` is missing"));
        };
        self.0.insert(name, (file, weight));
        Ok(())
    }
}

/// `weight N [reverse]`.
fn file_weight(s: &Stmt) -> Result<(i32, bool)> {
    let bad = || err(&s.pos, "weight: <n> [reverse] expected");
    match s.args() {
        [w] => w.parse().map(|w| (w, false)).or_else(|_| bad()),
        [w, r] if r == "reverse" => w.parse().map(|w| (w, true)).or_else(|_| bad()),
        _ => bad(),
    }
}

/// One checker block; `vhost` is the virtual server's `virtualhost` (the default of
/// its urls').
pub fn checker(cx: &mut Cx, b: &Stmt, vhost: Option<&str>, files: &TrackFiles) -> Result<Mapping> {
    let kind = CHECKERS
        .iter()
        .find(|(k, _)| *k == b.word(0))
        .map(|(_, t)| *t)
        .unwrap_or_default();
    if kind.is_empty() {
        return err(
            &b.pos,
            "BFD_CHECK: rvs has no BFD; use a TCP_CHECK or PING_CHECK with a short delay_loop",
        );
    }
    let mut m = map();
    put(&mut m, "type", kind);
    let mut urls = Vec::new();
    for s in b.body() {
        if no_effect(cx, s) {
            continue;
        }
        let w = s.word(0);
        match (kind, w) {
            (_, "connect_ip" | "bindto") => put(&mut m, w, address(s, s.arg()?)?),
            (_, "connect_port" | "bind_port") => put(&mut m, w, num::<u16>(s)?),
            (_, "connect_timeout" | "delay_before_retry" | "warmup" | "delay_loop") => {
                put(&mut m, w, secs(s)?)
            }
            (_, "retry" | "nb_get_retry") => put(&mut m, "retry", num::<u32>(s)?),
            ("http_get" | "ssl_get", "url") => urls.push(Value::Mapping(url(s, vhost)?)),
            ("http_get" | "ssl_get", "http_protocol") => match s.arg()? {
                p @ ("1.0" | "1.0C" | "1.1") => put(&mut m, "http_protocol", p),
                o => return err(&s.pos, format!("http_protocol: 1.0, 1.0C or 1.1, not {o}")),
            },
            ("http_get" | "ssl_get", "fast_recovery") => cx.ignored(
                s,
                "rvs checks every url at each check already (keepalived's fast_recovery)",
            ),
            ("ssl_get", "enable_sni") => {
                cx.ignored(s, "rvs always sends SNI (the virtualhost)")
            }
            ("http_get" | "ssl_get", "tls_compliant") => {
                cx.ignored(s, "rvs's TLS (rustls) always closes compliantly")
            }
            ("misc_check", "misc_path") => put(&mut m, "misc_path", s.args().join(" ")),
            ("misc_check", "misc_timeout") => put(&mut m, "misc_timeout", secs(s)?),
            ("misc_check", "misc_dynamic") => put(&mut m, "misc_dynamic", true),
            ("misc_check", "user") => cx.ignored(s, "scripts run as rvsd's user"),
            ("udp_check", "payload" | "require_reply") => {
                put(&mut m, w, s.args().concat())
            }
            ("udp_check", "min_reply_length" | "max_reply_length") => {
                put(&mut m, w, num::<u16>(s)?)
            }
            ("dns_check", "type") => put(&mut m, "dns_type", s.arg()?),
            ("dns_check", "name") => put(&mut m, "name", s.arg()?),
            ("smtp_check", "helo_name") => put(&mut m, "helo_name", s.arg()?),
            ("smtp_check", "host") => {
                return err(
                    &s.pos,
                    "host: rvs checks one host per SMTP_CHECK; write one SMTP_CHECK per host (connect_ip, connect_port)",
                )
            }
            ("file_check", "track_file") => {
                let name = s.arg()?;
                let Some((file, weight)) = files.0.get(name) else {
                    return err(&s.pos, format!("track_file {name}: no track_file block of that name"));
                };
                put(&mut m, "track_file", file.clone());
                if let Some((w, rev)) = weight {
                    put(&mut m, "weight", i64::from(*w));
                    if *rev {
                        put(&mut m, "reverse", true);
                    }
                }
            }
            ("file_check", "weight") => {
                let (w, rev) = file_weight(s)?;
                put(&mut m, "weight", i64::from(w));
                if rev {
                    put(&mut m, "reverse", true);
                }
            }
            _ => {
                return err(
                    &s.pos,
                    format!("{w}: not a {} keyword rvs knows; check its spelling, or remove it", b.word(0)),
                )
            }
        }
    }
    if !urls.is_empty() {
        put(&mut m, "url", urls);
    }
    Ok(m)
}

/// `url { path ..; digest ..; status_code ..; virtualhost ..; regex ..; regex_no_match }`.
fn url(b: &Stmt, vhost: Option<&str>) -> Result<Mapping> {
    let mut m = map();
    for s in b.body() {
        let w = s.word(0);
        match w {
            "path" | "digest" | "virtualhost" | "regex" => put(&mut m, w, s.arg()?),
            "regex_no_match" => put(&mut m, "regex_no_match", true),
            "status_code" => {
                // keepalived: one or more codes or ranges (`200-299 301`).
                let codes: Vec<Value> = s.args().iter().cloned().map(Value::from).collect();
                if codes.is_empty() {
                    return err(&s.pos, "status_code: a code or range is missing");
                }
                put(&mut m, "status_code", codes);
            }
            "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => {
                return err(
                    &s.pos,
                    format!("{w}: rvs matches `regex` over the whole body, with no options"),
                )
            }
            _ => return err(&s.pos, format!("{w}: not a url keyword rvs knows")),
        }
    }
    if !m.contains_key("path") {
        return err(&b.pos, "url: `path` is missing");
    }
    if let (Some(v), false) = (vhost, m.contains_key("virtualhost")) {
        put(&mut m, "virtualhost", v);
    }
    Ok(m)
}
