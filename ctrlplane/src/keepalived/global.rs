//! `global_defs` and the top-level keywords that are neither VRRP nor LVS blocks.

use super::tree::Stmt;
use super::{err, map, put, Cx, Result};
use serde_yaml::Value;

/// What `global_defs` sets for the rest of the file.
#[derive(Debug, Default)]
pub struct Globals {
    pub garp_master_delay: Option<f64>,
    pub garp_master_repeat: Option<u32>,
    pub garp_master_refresh: Option<f64>,
    pub vrrp_version: Option<u8>,
    pub lvs_sync_daemon: Option<Value>,
}

/// keepalived keywords that change nothing for a director: accepted, with one warning
/// saying why.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "notification_email",
        "rvs sends no e-mail; use notify scripts",
    ),
    (
        "notification_email_from",
        "rvs sends no e-mail; use notify scripts",
    ),
    ("smtp_server", "rvs sends no e-mail; use notify scripts"),
    ("smtp_helo_name", "rvs sends no e-mail; use notify scripts"),
    (
        "smtp_connect_timeout",
        "rvs sends no e-mail; use notify scripts",
    ),
    ("smtp_alert", "rvs sends no e-mail; use notify scripts"),
    ("smtp_alert_vrrp", "rvs sends no e-mail; use notify scripts"),
    (
        "smtp_alert_checker",
        "rvs sends no e-mail; use notify scripts",
    ),
    ("email_from", "rvs sends no e-mail; use notify scripts"),
    (
        "router_id",
        "a name for keepalived's e-mails and logs; rvs logs its own",
    ),
    (
        "enable_traps",
        "rvs has no SNMP; use the Prometheus metrics",
    ),
    (
        "enable_snmp_vrrp",
        "rvs has no SNMP; use the Prometheus metrics",
    ),
    (
        "enable_snmp_checker",
        "rvs has no SNMP; use the Prometheus metrics",
    ),
    (
        "enable_snmp_rfc",
        "rvs has no SNMP; use the Prometheus metrics",
    ),
    (
        "enable_snmp_rfcv2",
        "rvs has no SNMP; use the Prometheus metrics",
    ),
    (
        "enable_snmp_rfcv3",
        "rvs has no SNMP; use the Prometheus metrics",
    ),
    ("snmp_socket", "rvs has no SNMP; use the Prometheus metrics"),
    (
        "enable_dbus",
        "rvs has no D-Bus interface; use rvsadm --vrrp",
    ),
    (
        "script_user",
        "scripts run as rvsd's user (rvs has no per-script user)",
    ),
    (
        "enable_script_security",
        "scripts run as rvsd's user; keep them root-owned",
    ),
    (
        "max_auto_priority",
        "rvs's process priority is set by its service manager",
    ),
    ("vrrp_no_swap", "rvs's memory is locked by DPDK"),
    ("checker_no_swap", "rvs's memory is locked by DPDK"),
    (
        "vrrp_priority",
        "keepalived's process priorities: rvs is one process",
    ),
    (
        "checker_priority",
        "keepalived's process priorities: rvs is one process",
    ),
    (
        "vrrp_rlimit_rttime",
        "keepalived's process limits: rvs is one process",
    ),
    (
        "checker_rlimit_rttime",
        "keepalived's process limits: rvs is one process",
    ),
    ("vrrp_cpu_affinity", "rvs places its threads with eal.cores"),
    (
        "checker_cpu_affinity",
        "rvs places its threads with eal.cores",
    ),
    ("vrrp_process_name", "rvs is one process"),
    ("checker_process_name", "rvs is one process"),
    ("process_names", "rvs is one process"),
    ("lvs_flush", "rvs's tables hold only what is configured"),
    ("dynamic_interfaces", "rvs's ports are fixed at start"),
    ("checker_log_all_failures", "rvs logs every failed check"),
    ("vrrp_startup_delay", "rvs's ports are up when VRRP starts"),
    (
        "vrrp_notify_priority_changes",
        "rvs reports priorities in rvsadm --vrrp and the metrics",
    ),
    (
        "vrrp_skip_check_adv_addr",
        "rvs does not compare the advert's address list",
    ),
];

/// Looks `w` up in the no-effect list; adds the warning if there.
pub fn no_effect(cx: &mut Cx, s: &Stmt) -> bool {
    match NO_EFFECT.iter().find(|(k, _)| *k == s.word(0)) {
        Some((_, why)) => {
            cx.ignored(s, why);
            true
        }
        None => false,
    }
}

pub fn global_defs(cx: &mut Cx, g: &Stmt) -> Result<()> {
    for s in g.body() {
        if no_effect(cx, s) {
            continue;
        }
        let w = s.word(0);
        match w {
            "vrrp_garp_master_delay" => cx.globals.garp_master_delay = Some(secs(s)?),
            "vrrp_garp_master_repeat" => cx.globals.garp_master_repeat = Some(num(s)?),
            "vrrp_garp_master_refresh" => cx.globals.garp_master_refresh = Some(secs(s)?),
            "vrrp_version" => {
                let v: u8 = num(s)?;
                if v != 2 && v != 3 {
                    return err(&s.pos, "vrrp_version: 2 or 3");
                }
                cx.globals.vrrp_version = Some(v);
            }
            "vrrp_mcast_group4" if s.arg()? == "224.0.0.18" => {}
            "lvs_sync_daemon" => {
                cx.globals.lvs_sync_daemon = Some(sync_daemon(cx, s)?);
                cx.origin("lvs_sync_daemon".into(), &s.pos);
            }
            "vrrp_strict" => {
                return err(
                    &s.pos,
                    "vrrp_strict: rvs does not enforce RFC-strict mode (it accepts authentication and unicast); remove the keyword",
                )
            }
            "vrrp_garp_interval" | "vrrp_gna_interval" => {
                return err(
                    &s.pos,
                    format!("{w}: rvs sends each burst of gratuitous ARPs back to back; remove it or set 0"),
                )
            }
            "lvs_timeouts" => {
                return err(
                    &s.pos,
                    "lvs_timeouts: set `ipvs.timeouts` (tcp, tcpfin, udp) in rvs's YAML instead",
                )
            }
            "vrrp_mcast_group4" | "vrrp_mcast_group6" => {
                return err(
                    &s.pos,
                    format!("{w}: rvs sends adverts to 224.0.0.18 only; use unicast_peer for another path"),
                )
            }
            _ => {
                return err(
                    &s.pos,
                    format!("{w}: not a global_defs keyword rvs knows; check its spelling, or remove it"),
                )
            }
        }
    }
    Ok(())
}

/// `lvs_sync_daemon <INTERFACE> <VRRP_INSTANCE> [id <SYNC_ID>] [maxlen <LEN>]
/// [port <PORT>] [ttl <TTL>] [group <IP>]`.
fn sync_daemon(cx: &Cx, s: &Stmt) -> Result<Value> {
    let a = s.args();
    if a.len() < 2 {
        return err(
            &s.pos,
            "lvs_sync_daemon: <interface> <vrrp_instance> [id N] [maxlen N] [port N] [group IP]",
        );
    }
    let mut m = map();
    put(&mut m, "interface", cx.port(&s.pos, &a[0])?);
    put(&mut m, "vrrp_instance", a[1].clone());
    let mut i = 2;
    while i < a.len() {
        let Some(v) = a.get(i + 1) else {
            return err(&s.pos, format!("lvs_sync_daemon: {} needs a value", a[i]));
        };
        let n = |what: &str| -> Result<u64> {
            v.parse().or_else(|_| {
                err(
                    &s.pos,
                    format!("lvs_sync_daemon: {what} {v:?} is not a number"),
                )
            })
        };
        match a[i].as_str() {
            "id" => put(&mut m, "syncid", n("id")?),
            "maxlen" => put(&mut m, "maxlen", n("maxlen")?),
            "port" => put(&mut m, "port", n("port")?),
            "group" => put(&mut m, "group", address(s, v)?),
            "ttl" if v == "1" => {}
            "ttl" => {
                return err(
                    &s.pos,
                    "lvs_sync_daemon: ttl: rvs sends sync messages one hop (ttl 1), as the kernel's default",
                )
            }
            o => return err(&s.pos, format!("lvs_sync_daemon: unknown option {o:?}")),
        }
        i += 2;
    }
    Ok(Value::Mapping(m))
}

/// A top-level keyword that is not one of the blocks rvs converts.
pub fn top_level_other(cx: &mut Cx, s: &Stmt, w: &str) -> Result<()> {
    if no_effect(cx, s) {
        return Ok(());
    }
    let why = match w {
        "net_namespace" | "net_namespace_ipvs" => {
            "rvs runs in the namespace it is started in; start rvsd there"
        }
        "instance" => "rvs runs one instance per YAML file",
        "static_ipaddress" | "static_routes" | "static_rules" => {
            "put the director's own addresses and routes in the YAML `ports` and `routes`"
        }
        "vrrp_track_process" | "vrrp_track_file" | "track_bfd" | "bfd_instance" => {
            "rvs tracks vrrp_script and service quorum (track_service); use a vrrp_script"
        }
        "garp_group" => "rvs sends gratuitous ARPs per instance (garp_master_*)",
        "linkbeat_use_polling" => "rvs's ports are DPDK ports; link state is not tracked",
        "SSL" => "SSL_GET presents no client certificate in rvs; remove the SSL block",
        _ => "not a top-level keyword rvs knows; check its spelling, or remove it",
    };
    err(&s.pos, format!("{w}: {why}"))
}

/// A number argument.
pub fn num<T: std::str::FromStr>(s: &Stmt) -> Result<T> {
    let a = s.arg()?;
    a.parse().or_else(|_| {
        err(
            &s.pos,
            format!("{}: {a:?} is not a valid number here", s.word(0)),
        )
    })
}

/// Seconds (keepalived accepts fractions for most timers).
pub fn secs(s: &Stmt) -> Result<f64> {
    let v: f64 = num(s)?;
    if !v.is_finite() || v < 0.0 {
        return err(&s.pos, format!("{}: seconds must be 0 or more", s.word(0)));
    }
    Ok(v)
}

/// An IPv4 address word.
pub fn address(s: &Stmt, a: &str) -> Result<String> {
    match a.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => Ok(ip.to_string()),
        Err(_) if a.contains(':') => err(
            &s.pos,
            format!(
                "{}: {a}: rvs balances IPv4 only for now (IPv6 is planned)",
                s.word(0)
            ),
        ),
        Err(_) => err(
            &s.pos,
            format!("{}: {a:?} is not an IPv4 address", s.word(0)),
        ),
    }
}
