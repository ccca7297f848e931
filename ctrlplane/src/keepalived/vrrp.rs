//! `vrrp_script`, `vrrp_instance` and `vrrp_sync_group` blocks, as rvs's
//! `vrrp_scripts`, `vrrp_instances` and `vrrp_sync_groups`.

use super::global::{address, no_effect, num, secs};
use super::tree::Stmt;
use super::{err, map, put, Cx, Result};
use serde_yaml::{Mapping, Value};

/// The block's name: `vrrp_instance VI_1 {`.
fn named(s: &Stmt) -> Result<String> {
    match (s.args(), &s.block) {
        ([n], Some(_)) => Ok(n.clone()),
        (_, None) => err(
            &s.pos,
            format!("{}: a block `{{ ... }}` is expected", s.word(0)),
        ),
        _ => err(&s.pos, format!("{}: one name expected", s.word(0))),
    }
}

/// A script line: every word after the keyword is the command (keepalived joins them;
/// a quoted command is one word already).
fn command(s: &Stmt) -> Result<String> {
    if s.args().is_empty() {
        return err(&s.pos, format!("{}: the script is missing", s.word(0)));
    }
    Ok(s.args().join(" "))
}

pub fn script(cx: &mut Cx, b: &Stmt) -> Result<()> {
    let mut m = map();
    put(&mut m, "name", named(b)?);
    for s in b.body() {
        match s.word(0) {
            "script" => put(&mut m, "script", command(s)?),
            "interval" => put(&mut m, "interval", secs(s)?),
            "timeout" => put(&mut m, "timeout", secs(s)?),
            "rise" => put(&mut m, "rise", num::<u32>(s)?),
            "fall" => put(&mut m, "fall", num::<u32>(s)?),
            "weight" => match s.args() {
                [w] => put(&mut m, "weight", parse_i32(s, w)?),
                [_, r] if r == "reverse" => {
                    return err(
                        &s.pos,
                        "weight ... reverse: rvs has no reversed script weight; negate the script's exit status instead",
                    )
                }
                _ => return err(&s.pos, "weight: <-253..253> expected"),
            },
            "user" => cx.ignored(s, "scripts run as rvsd's user"),
            "init_fail" => {
                return err(
                    &s.pos,
                    "init_fail: rvs starts a script as succeeding until it fails (`fall` times)",
                )
            }
            w => return unknown(s, w, "vrrp_script"),
        }
    }
    if !m.contains_key("script") {
        return err(&b.pos, "vrrp_script: `script` is missing");
    }
    let key = format!("vrrp_scripts[{}]", cx.out.vrrp_scripts.len());
    cx.origin(key, &b.pos);
    cx.out.vrrp_scripts.push(Value::Mapping(m));
    Ok(())
}

fn parse_i32(s: &Stmt, w: &str) -> Result<i32> {
    w.parse()
        .or_else(|_| err(&s.pos, format!("{}: {w:?} is not a number", s.word(0))))
}

fn unknown<T>(s: &Stmt, w: &str, block: &str) -> Result<T> {
    err(
        &s.pos,
        format!("{w}: not a {block} keyword rvs knows; check its spelling, or remove it"),
    )
}

pub fn instance(cx: &mut Cx, b: &Stmt) -> Result<()> {
    let name = named(b)?;
    let idx = cx.out.vrrp_instances.len();
    let key = format!("vrrp_instances[{idx}]");
    cx.origin(key.clone(), &b.pos);
    let mut m = map();
    put(&mut m, "name", name.clone());
    if let Some(v) = cx.globals.vrrp_version {
        put(&mut m, "version", u64::from(v));
    }
    if let Some(v) = cx.globals.garp_master_delay {
        put(&mut m, "garp_master_delay", v);
    }
    if let Some(v) = cx.globals.garp_master_repeat {
        put(&mut m, "garp_master_repeat", u64::from(v));
    }
    if let Some(v) = cx.globals.garp_master_refresh {
        put(&mut m, "garp_master_refresh", v);
    }
    for s in b.body() {
        if no_effect(cx, s) {
            continue;
        }
        let w = s.word(0);
        match w {
            "state" => match s.arg()? {
                "MASTER" | "BACKUP" => put(&mut m, "state", s.arg()?),
                o => return err(&s.pos, format!("state: MASTER or BACKUP, not {o:?}")),
            },
            "interface" => put(&mut m, "interface", cx.port(&s.pos, s.arg()?)?),
            "virtual_router_id" => put(&mut m, "virtual_router_id", num::<u8>(s)?),
            "priority" => put(&mut m, "priority", num::<u8>(s)?),
            "advert_int" => put(&mut m, "advert_int", secs(s)?),
            "version" => put(&mut m, "version", num::<u8>(s)?),
            "nopreempt" => put(&mut m, "nopreempt", true),
            "preempt" => {}
            "preempt_delay" => put(&mut m, "preempt_delay", secs(s)?),
            "garp_master_delay" => put(&mut m, "garp_master_delay", secs(s)?),
            "garp_master_repeat" => put(&mut m, "garp_master_repeat", num::<u32>(s)?),
            "garp_master_refresh" => put(&mut m, "garp_master_refresh", secs(s)?),
            "garp_master_refresh_repeat" if s.arg()? == "1" => {}
            "v3_checksum_as_v2" => put(&mut m, "v3_checksum_as_v2", true),
            "authentication" => put(&mut m, "authentication", auth(s)?),
            "unicast_src_ip" => put(&mut m, "unicast_src_ip", address(s, s.arg()?)?),
            "unicast_peer" => {
                let mut peers = Vec::new();
                for p in s.list() {
                    if p.words.len() > 1 {
                        return err(
                            &p.pos,
                            "unicast_peer: min_ttl/max_ttl: rvs checks no TTL on unicast adverts (as keepalived without them)",
                        );
                    }
                    peers.push(Value::from(address(p, p.word(0))?));
                }
                put(&mut m, "unicast_peer", peers);
            }
            "virtual_ipaddress" => {
                let mut v = Vec::new();
                for a in s.list() {
                    v.push(Value::from(vip(cx, a)?));
                }
                put(&mut m, "virtual_ipaddress", v);
            }
            "track_script" => {
                let mut v = Vec::new();
                for t in s.list() {
                    v.push(match t.words.as_slice() {
                        [n] => Value::from(n.clone()),
                        [n, kw, w] if kw == "weight" => {
                            let mut tm = map();
                            put(&mut tm, "name", n.clone());
                            put(&mut tm, "weight", parse_i32(t, w)?);
                            Value::Mapping(tm)
                        }
                        _ => return err(&t.pos, "track_script: <name> [weight <n>]"),
                    });
                }
                put(&mut m, "track_script", v);
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                put(&mut m, w, command(s)?)
            }
            "lvs_sync_daemon_interface" => {
                // keepalived's old per-instance form of global lvs_sync_daemon.
                let mut sm = map();
                put(&mut sm, "interface", cx.port(&s.pos, s.arg()?)?);
                put(&mut sm, "vrrp_instance", name.clone());
                cx.globals.lvs_sync_daemon = Some(Value::Mapping(sm));
                cx.origin("lvs_sync_daemon".into(), &s.pos);
            }
            "dont_track_primary" => cx.ignored(s, "rvs tracks no interface state"),
            "debug" => cx.ignored(s, "rvs logs with RUST_LOG / tracing levels"),
            "accept" => cx.ignored(s, "a MASTER's addresses always accept traffic in rvs"),
            "mcast_src_ip" => {
                return err(
                    &s.pos,
                    "mcast_src_ip: rvs sends multicast adverts from the port's first address; use unicast_src_ip with unicast_peer for another",
                )
            }
            "use_vmac" | "vmac_xmit_base" => {
                return err(
                    &s.pos,
                    format!("{w}: rvs answers for the VIPs with the port's own MAC (no virtual MAC); gratuitous ARPs move them"),
                )
            }
            "track_interface" => {
                return err(
                    &s.pos,
                    "track_interface: rvs does not track link state; use a vrrp_script (track_script) or track_service",
                )
            }
            "virtual_ipaddress_excluded" | "virtual_routes" | "virtual_rules" => {
                return err(
                    &s.pos,
                    format!("{w}: rvs moves only virtual_ipaddress; list the addresses there"),
                )
            }
            "no_accept" | "strict_mode" => {
                return err(
                    &s.pos,
                    format!("{w}: rvs has no strict mode; a MASTER's addresses accept traffic"),
                )
            }
            _ => return unknown(s, w, "vrrp_instance"),
        }
    }
    cx.out.vrrp_instances.push(Value::Mapping(m));
    Ok(())
}

/// `authentication { auth_type PASS; auth_pass secret }`.
fn auth(b: &Stmt) -> Result<Value> {
    let mut m = Mapping::new();
    for s in b.body() {
        match s.word(0) {
            "auth_type" => match s.arg()? {
                "PASS" => put(&mut m, "auth_type", "PASS"),
                "AH" => {
                    return err(
                        &s.pos,
                        "auth_type AH: IPsec-AH authentication, removed from VRRP by RFC 3768, is not in rvs; use PASS (v2) or none",
                    )
                }
                o => return err(&s.pos, format!("auth_type: PASS, not {o:?}")),
            },
            "auth_pass" => put(&mut m, "auth_pass", s.arg()?),
            w => return unknown(s, w, "authentication"),
        }
    }
    Ok(Value::Mapping(m))
}

/// One `virtual_ipaddress` line: `IP[/LEN] [dev IF] [brd ..] [scope ..] [label ..]`.
fn vip(cx: &Cx, a: &Stmt) -> Result<String> {
    let (ip, len) = match a.word(0).split_once('/') {
        Some((ip, len)) => (ip, len),
        None => (a.word(0), "32"),
    };
    let ip = address(a, ip)?;
    let Some(len) = len.parse::<u8>().ok().filter(|l| *l <= 32) else {
        return err(
            &a.pos,
            format!("virtual_ipaddress: bad prefix length {len:?}"),
        );
    };
    for kv in a.words[1..].chunks(2) {
        match kv {
            [k, v] if k == "dev" => {
                cx.port(&a.pos, v)?;
            }
            [k, _] if k == "brd" || k == "scope" || k == "label" => {}
            [k] if k == "no_track" => {}
            _ => {
                return err(
                    &a.pos,
                    format!("virtual_ipaddress: rvs reads `IP[/len] [dev IF] [brd ..] [scope ..] [label ..]`, not {:?}", kv),
                )
            }
        }
    }
    Ok(format!("{ip}/{len}"))
}

pub fn sync_group(cx: &mut Cx, b: &Stmt) -> Result<()> {
    let mut m = map();
    put(&mut m, "name", named(b)?);
    for s in b.body() {
        if no_effect(cx, s) {
            continue;
        }
        let w = s.word(0);
        match w {
            "group" => {
                let v: Vec<Value> = s.list().iter().map(|g| Value::from(g.word(0))).collect();
                put(&mut m, "group", v);
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                put(&mut m, w, command(s)?)
            }
            "global_tracking" | "sync_group_tracking_weight" => {
                cx.ignored(s, "the group's members keep their own trackers in rvs")
            }
            "track_script" | "track_interface" | "track_file" | "track_process" => {
                return err(
                    &s.pos,
                    format!(
                    "{w}: rvs tracks in each vrrp_instance, not in the sync group; move it there"
                ),
                )
            }
            _ => return unknown(s, w, "vrrp_sync_group"),
        }
    }
    let key = format!("vrrp_sync_groups[{}]", cx.out.vrrp_sync_groups.len());
    cx.origin(key, &b.pos);
    cx.out.vrrp_sync_groups.push(Value::Mapping(m));
    Ok(())
}
