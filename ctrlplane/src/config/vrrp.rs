//! VRRP keys, named after keepalived's keywords: `vrrp_scripts` (its `vrrp_script`
//! blocks), `vrrp_instances` (`vrrp_instance`) and `vrrp_sync_groups`
//! (`vrrp_sync_group`). Defaults are keepalived's (vrrp_data.c, vrrp.h): version 2,
//! advert_int 1 s, priority 100, GARP burst of 5 again after 5 s, script interval 1 s with
//! rise and fall 1.

use super::values::{Addr, Endpoint, Prefix};
use dataplane::ipvs::service::Proto;
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// keepalived's instance states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum VrrpStateConf {
    #[serde(alias = "master")]
    MASTER,
    #[default]
    #[serde(alias = "backup")]
    BACKUP,
}

/// `authentication { auth_type PASS; auth_pass secret }` (VRRPv2 only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConf {
    /// Only PASS: keepalived's AH is IPsec-AH, which RFC 3768 removed.
    pub auth_type: String,
    /// At most 8 characters; longer ones are cut to 8, as keepalived does.
    pub auth_pass: String,
}

/// `vrrp_script`: a command whose exit status (0 ok) a tracking instance follows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpScriptConf {
    pub name: String,
    /// Run through /bin/sh.
    pub script: String,
    /// Seconds between runs (fractional allowed).
    #[serde(default = "one")]
    pub interval: f64,
    /// Seconds a run may take; the interval when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// -253..253; 0 means a failing script puts its instances in FAULT; otherwise the
    /// weight is added to the priority while the script succeeds (positive) or fails
    /// (negative).
    #[serde(default)]
    pub weight: i32,
    /// Successes in a row before a failed script counts as ok again.
    #[serde(default = "one_u32")]
    pub rise: u32,
    /// Failures in a row before an ok script counts as failed.
    #[serde(default = "one_u32")]
    pub fall: u32,
}

fn tcp() -> Proto {
    Proto::Tcp
}
fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn hundred() -> u8 {
    100
}
fn two() -> u8 {
    2
}
fn five() -> f64 {
    5.0
}
fn five_u32() -> u32 {
    5
}

/// A `track_script` entry: a script name, or the name with a weight overriding the
/// script's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TrackScriptConf {
    Name(String),
    Weighted { name: String, weight: i32 },
}

impl TrackScriptConf {
    pub fn name(&self) -> &str {
        match self {
            TrackScriptConf::Name(n) | TrackScriptConf::Weighted { name: n, .. } => n,
        }
    }
    pub fn weight(&self) -> Option<i32> {
        match self {
            TrackScriptConf::Name(_) => None,
            TrackScriptConf::Weighted { weight, .. } => Some(*weight),
        }
    }
}

/// `track_service`: follow a virtual service's health quorum (rvs's; keepalived users
/// do this with a script). Weight 0: lost quorum puts the instance in FAULT; otherwise
/// the weight is added to the priority while the quorum holds (positive) or is lost
/// (negative).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackServiceConf {
    pub vip: Endpoint,
    #[serde(default = "tcp")]
    pub protocol: Proto,
    #[serde(default)]
    pub weight: i32,
}

/// `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstanceConf {
    pub name: String,
    /// The rvs port whose kernel twin sends and receives the adverts.
    pub interface: String,
    #[serde(default)]
    pub state: VrrpStateConf,
    pub virtual_router_id: u8,
    #[serde(default = "hundred")]
    pub priority: u8,
    /// Seconds: whole seconds for version 2, 0.01 to 40.95 for version 3.
    #[serde(default = "one")]
    pub advert_int: f64,
    #[serde(default = "two")]
    pub version: u8,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nopreempt: bool,
    /// Seconds after start (or after seeing a lower-priority master) during which a
    /// higher-priority backup does not preempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicast_src_ip: Option<Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peer: Vec<Addr>,
    /// Owned (ARP, ping, virtual services) only while this instance is MASTER.
    pub virtual_ipaddress: Vec<Prefix>,
    /// Seconds after becoming MASTER before the second burst of gratuitous ARPs.
    #[serde(default = "five")]
    pub garp_master_delay: f64,
    /// Gratuitous ARPs per burst.
    #[serde(default = "five_u32")]
    pub garp_master_repeat: u32,
    /// Seconds between refreshing gratuitous ARPs while MASTER (0: never).
    #[serde(default)]
    pub garp_master_refresh: f64,
    /// VRRPv3 over IPv4 without the pseudo-header in the checksum (RFC 9568's way;
    /// keepalived includes it by default).
    #[serde(default, skip_serializing_if = "is_false")]
    pub v3_checksum_as_v2: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_script: Vec<TrackScriptConf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_service: Vec<TrackServiceConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<String>,
    /// Called with `INSTANCE <name> <STATE> <priority>`, as keepalived's `notify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
}

/// `vrrp_sync_group`: instances that change state together.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpSyncGroupConf {
    pub name: String,
    pub group: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<String>,
    /// Called with `GROUP <name> <STATE> 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
}

impl VrrpInstanceConf {
    /// The advert interval in centiseconds, as a version 3 advert carries it; version 2
    /// rounds to whole seconds as keepalived does.
    pub fn advert_cs(&self) -> u16 {
        if self.version == 2 {
            ((self.advert_int.round().clamp(1.0, 255.0)) as u16) * 100
        } else {
            (self.advert_int * 100.0).round().clamp(1.0, 4095.0) as u16
        }
    }
}

/// Checks of the VRRP sections: (key path, message) per problem.
pub fn validate(
    scripts: &[VrrpScriptConf],
    instances: &[VrrpInstanceConf],
    groups: &[VrrpSyncGroupConf],
    port_has_twin: impl Fn(&str) -> Option<bool>,
    err: &mut impl FnMut(String, String),
) {
    let mut names = std::collections::HashSet::new();
    for (i, s) in scripts.iter().enumerate() {
        let at = |k: &str| format!("vrrp_scripts[{i}].{k}");
        if !names.insert(s.name.as_str()) {
            err(
                at("name"),
                format!("a second vrrp_script named {:?}", s.name),
            );
        }
        if !(s.interval.is_finite() && s.interval > 0.0) {
            err(at("interval"), "seconds, more than 0".into());
        }
        if s.timeout.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            err(at("timeout"), "seconds, more than 0".into());
        }
        if !(-253..=253).contains(&s.weight) {
            err(at("weight"), "-253 to 253, as keepalived allows".into());
        }
        if s.rise == 0 || s.fall == 0 {
            err(
                at(if s.rise == 0 { "rise" } else { "fall" }),
                "1 or more".into(),
            );
        }
    }
    let mut inames = std::collections::HashSet::new();
    let mut vrids = std::collections::HashSet::new();
    for (i, v) in instances.iter().enumerate() {
        let at = |k: &str| format!("vrrp_instances[{i}].{k}");
        if !inames.insert(v.name.as_str()) {
            err(
                at("name"),
                format!("a second vrrp_instance named {:?}", v.name),
            );
        }
        match port_has_twin(&v.interface) {
            None => err(at("interface"), format!("no port named {:?}", v.interface)),
            Some(false) => err(
                at("interface"),
                format!(
                    "port {:?} has no kernel twin: add `kernel: {{ name: ... }}` to it, VRRP's adverts use the exception path",
                    v.interface
                ),
            ),
            Some(true) => {}
        }
        if v.virtual_router_id == 0 {
            err(at("virtual_router_id"), "1 to 255".into());
        } else if !vrids.insert((v.interface.as_str(), v.virtual_router_id)) {
            err(
                at("virtual_router_id"),
                format!(
                    "a second instance with virtual_router_id {} on {:?}",
                    v.virtual_router_id, v.interface
                ),
            );
        }
        if v.priority == 0 {
            err(at("priority"), "1 to 255 (0 is the stop advert)".into());
        }
        match v.version {
            2 if !(v.advert_int.is_finite() && (1.0..=255.0).contains(&v.advert_int.round())) => {
                err(at("advert_int"), "version 2: 1 to 255 whole seconds".into())
            }
            3 if !(v.advert_int.is_finite() && (0.01..=40.95).contains(&v.advert_int)) => {
                err(at("advert_int"), "version 3: 0.01 to 40.95 seconds".into())
            }
            2 | 3 => {}
            _ => err(at("version"), "2 or 3".into()),
        }
        if v.virtual_ipaddress.is_empty() {
            err(at("virtual_ipaddress"), "at least one address".into());
        }
        if v.nopreempt && v.state == VrrpStateConf::MASTER {
            err(
                at("nopreempt"),
                "needs state BACKUP, as keepalived requires".into(),
            );
        }
        if v.preempt_delay
            .is_some_and(|d| !(d.is_finite() && (0.0..=1000.0).contains(&d)))
        {
            err(at("preempt_delay"), "0 to 1000 seconds".into());
        }
        if let Some(a) = &v.authentication {
            if v.version != 2 {
                err(
                    at("authentication"),
                    "VRRPv3 has no authentication (RFC 5798): remove it or use version 2".into(),
                );
            }
            if !a.auth_type.eq_ignore_ascii_case("PASS") {
                err(
                    at("authentication.auth_type"),
                    format!("{:?}: only PASS is supported", a.auth_type),
                );
            }
        }
        for (k, f) in [
            ("garp_master_delay", v.garp_master_delay),
            ("garp_master_refresh", v.garp_master_refresh),
        ] {
            if !(f.is_finite() && f >= 0.0) {
                err(at(k), "seconds, 0 or more".into());
            }
        }
        for (k, t) in v.track_script.iter().enumerate() {
            if !scripts.iter().any(|s| s.name == t.name()) {
                err(
                    at(&format!("track_script[{k}]")),
                    format!("no vrrp_script named {:?}", t.name()),
                );
            }
            if t.weight().is_some_and(|w| !(-253..=253).contains(&w)) {
                err(
                    at(&format!("track_script[{k}].weight")),
                    "-253 to 253".into(),
                );
            }
        }
        for (k, t) in v.track_service.iter().enumerate() {
            if !(-253..=253).contains(&t.weight) {
                err(
                    at(&format!("track_service[{k}].weight")),
                    "-253 to 253".into(),
                );
            }
        }
    }
    let mut in_group = std::collections::HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        for (k, m) in g.group.iter().enumerate() {
            let at = format!("vrrp_sync_groups[{i}].group[{k}]");
            if !instances.iter().any(|v| &v.name == m) {
                err(at, format!("no vrrp_instance named {m:?}"));
            } else if !in_group.insert(m.as_str()) {
                err(at, format!("{m:?} is already in a sync group"));
            }
        }
    }
}

/// keepalived's `lvs_sync_daemon` (ipvsadm's --start-daemon): the kernel's connection
/// sync, master while `vrrp_instance` is MASTER and backup otherwise (both at once
/// without an instance).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LvsSyncConf {
    /// The rvs port whose kernel twin carries the sync messages.
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_instance: Option<String>,
    /// keepalived's `id`: messages of another syncid are ignored (0 takes any).
    #[serde(default)]
    pub syncid: u8,
    /// The largest message, bytes (keepalived's `maxlen`; the kernel's MTU - 28).
    #[serde(default = "maxlen")]
    pub maxlen: u16,
    #[serde(default = "sync_port")]
    pub port: u16,
    #[serde(default = "sync_group")]
    pub group: Addr,
    /// Send to this address instead of the multicast group (unicast sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Addr>,
}

fn maxlen() -> u16 {
    1472
}
fn sync_port() -> u16 {
    8848
}
fn sync_group() -> Addr {
    Addr(std::net::Ipv4Addr::new(224, 0, 0, 81))
}

/// Checks of `lvs_sync_daemon`.
pub fn validate_sync(
    s: &LvsSyncConf,
    instances: &[VrrpInstanceConf],
    port_has_twin: impl Fn(&str) -> Option<bool>,
    err: &mut impl FnMut(String, String),
) {
    match port_has_twin(&s.interface) {
        None => err(
            "lvs_sync_daemon.interface".into(),
            format!("no port named {:?}", s.interface),
        ),
        Some(false) => err(
            "lvs_sync_daemon.interface".into(),
            format!(
                "port {:?} has no kernel twin: sync messages use the exception path",
                s.interface
            ),
        ),
        Some(true) => {}
    }
    if let Some(v) = &s.vrrp_instance {
        if !instances.iter().any(|i| &i.name == v) {
            err(
                "lvs_sync_daemon.vrrp_instance".into(),
                format!("no vrrp_instance named {v:?}"),
            );
        }
    }
    if !(128..=9000).contains(&s.maxlen) {
        err("lvs_sync_daemon.maxlen".into(), "128 to 9000 bytes".into());
    }
}
