//! `virtual_server` (and `virtual_server_group`, DPVS's `local_address_group`) with its
//! `real_server`s, as rvs's `services`.

use super::check::{checker, is_checker, TrackFiles};
use super::global::{address, no_effect, num, secs};
use super::tree::Stmt;
use super::{err, map, put, Cx, Pos, Result};
use serde_yaml::{Mapping, Value};
use std::collections::HashMap;

/// The named blocks a virtual server may refer to.
#[derive(Default)]
pub struct Groups {
    /// `virtual_server_group NAME { IP PORT ... }`: (address, port, where).
    vsg: HashMap<String, Vec<(String, u16, Pos)>>,
    /// DPVS's `local_address_group NAME { IP ... }`.
    laddr: HashMap<String, Vec<String>>,
    pub track_files: TrackFiles,
}

/// `A.B.C.D` or keepalived's range `A.B.C.D-E` (the last byte up to E).
fn addresses(s: &Stmt, w: &str) -> Result<Vec<String>> {
    let Some((first, last)) = w.split_once('-') else {
        return Ok(vec![address(s, w)?]);
    };
    let ip: std::net::Ipv4Addr = address(s, first)?.parse().expect("checked");
    let o = ip.octets();
    let end: u8 = match last.parse() {
        Ok(e) if e >= o[3] => e,
        _ => {
            return err(
                &s.pos,
                format!("{w}: a range is A.B.C.D-E with E from D to 255"),
            )
        }
    };
    Ok((o[3]..=end)
        .map(|d| std::net::Ipv4Addr::new(o[0], o[1], o[2], d).to_string())
        .collect())
}

fn port(s: &Stmt, w: &str) -> Result<u16> {
    w.parse()
        .or_else(|_| err(&s.pos, format!("{}: {w:?} is not a port", s.word(0))))
}

/// Reads every `virtual_server_group`, `local_address_group` and `track_file` block.
pub fn groups(stmts: &[Stmt]) -> Result<Groups> {
    let mut g = Groups::default();
    for s in stmts {
        match s.word(0) {
            "virtual_server_group" => {
                let name = s.arg()?.to_string();
                let mut v = Vec::new();
                for e in s.body() {
                    match e.words.as_slice() {
                        [k, _] if k == "fwmark" => return fwmark(&e.pos),
                        [a, p] => {
                            let p = port(e, p)?;
                            for ip in addresses(e, a)? {
                                v.push((ip, p, e.pos.clone()));
                            }
                        }
                        _ => {
                            return err(
                                &e.pos,
                                "virtual_server_group: `IP PORT` or `IP-RANGE PORT` expected",
                            )
                        }
                    }
                }
                g.vsg.insert(name, v);
            }
            "local_address_group" => {
                let name = s.arg()?.to_string();
                let mut v = Vec::new();
                for e in s.body() {
                    // DPVS writes `IP DEVICE` (the kni port); the device is rvs's port.
                    v.extend(addresses(e, e.word(0))?);
                }
                g.laddr.insert(name, v);
            }
            "track_file" => g.track_files.define(s)?,
            _ => {}
        }
    }
    Ok(g)
}

fn fwmark<T>(pos: &Pos) -> Result<T> {
    err(
        pos,
        "fwmark: rvs has no firewall marks (its packets never meet netfilter); list the services as `virtual_server IP PORT`",
    )
}

/// One `virtual_server` block: a service per address (a group gives several).
pub fn virtual_server(cx: &mut Cx, b: &Stmt, groups: &Groups) -> Result<()> {
    let vips: Vec<(String, u16, Pos)> = match b.args() {
        [k, _] if k == "fwmark" => return fwmark(&b.pos),
        [k, name] if k == "group" => groups.vsg.get(name).cloned().map_or_else(
            || {
                err(
                    &b.pos,
                    format!("virtual_server group {name}: no virtual_server_group of that name"),
                )
            },
            Ok,
        )?,
        [ip, p] => {
            let p = port(b, p)?;
            addresses(b, ip)?
                .into_iter()
                .map(|a| (a, p, b.pos.clone()))
                .collect()
        }
        _ => {
            return err(
                &b.pos,
                "virtual_server: `IP PORT`, `group NAME` or `fwmark N` expected",
            )
        }
    };
    let (svc, reals) = service_body(cx, b, groups)?;
    for (ip, p, pos) in vips {
        let idx = cx.out.services.len();
        let mut m = svc.clone();
        put(&mut m, "vip", format!("{ip}:{p}"));
        let mut rs = Vec::new();
        for (k, r) in reals.iter().enumerate() {
            let key = format!("services[{idx}].real_servers[{k}]");
            for (j, cpos) in r.checks.iter().enumerate() {
                cx.origin(format!("{key}.checks[{j}]"), cpos);
            }
            cx.origin(key, &r.pos);
            rs.push(Value::Mapping(r.map.clone()));
        }
        put(&mut m, "real_servers", rs);
        cx.origin(format!("services[{idx}]"), &pos);
        cx.out.services.push(Value::Mapping(m));
    }
    Ok(())
}

/// A converted `real_server`, with where it and each of its checkers came from.
struct Real {
    map: Mapping,
    pos: Pos,
    checks: Vec<Pos>,
}

/// The service's keys (without `vip` and `real_servers`) and its real servers.
fn service_body(cx: &mut Cx, b: &Stmt, groups: &Groups) -> Result<(Mapping, Vec<Real>)> {
    let mut m = map();
    let mut forward = "dr".to_string();
    let mut vhost: Option<String> = None;
    let mut persistence = Mapping::new();
    let mut reals = Vec::new();
    let mut sorry: Option<(Mapping, Pos)> = None;
    // keepalived's protocol default is TCP, its scheduler's none (the kernel's wlc);
    // rvs's are the same.
    for s in b.body() {
        if no_effect(cx, s) {
            continue;
        }
        let w = s.word(0);
        match w {
            "real_server" => continue,
            "lb_algo" | "lvs_sched" => {
                let a = s.arg()?;
                if dataplane::ipvs::sched::SchedKind::from_name(a).is_none() {
                    return err(&s.pos, format!("{w}: {a:?} is not a scheduler rvs has (rr, wrr, lc, wlc, sed, nq, lblc, lblcr, dh, sh, mh, fo, ovf, twos)"));
                }
                put(&mut m, "scheduler", a);
            }
            "lb_kind" | "lvs_method" => forward = method(s)?,
            "protocol" => match s.arg()? {
                "TCP" => put(&mut m, "protocol", "tcp"),
                "UDP" => put(&mut m, "protocol", "udp"),
                o => return err(&s.pos, format!("protocol: TCP or UDP in rvs, not {o}")),
            },
            "persistence_timeout" => put(&mut persistence, "timeout", num::<u32>(s)?),
            "persistence_granularity" => put(&mut persistence, "netmask", address(s, s.arg()?)?),
            "virtualhost" => vhost = Some(s.arg()?.to_string()),
            "delay_loop" | "connect_timeout" | "delay_before_retry" | "warmup" => {
                put(&mut m, w, secs(s)?)
            }
            "retry" => put(&mut m, "retry", num::<u32>(s)?),
            "inhibit_on_failure" | "alpha" | "omega" | "sorry_server_inhibit" => {
                put(&mut m, w, true)
            }
            "quorum" | "hysteresis" => put(&mut m, w, num::<u32>(s)?),
            "quorum_up" | "quorum_down" => put(&mut m, w, s.args().join(" ")),
            "sorry_server" => {
                let [ip, p] = s.args() else {
                    return err(&s.pos, "sorry_server: `IP PORT` expected");
                };
                let mut sm = Mapping::new();
                put(
                    &mut sm,
                    "address",
                    format!("{}:{}", address(s, ip)?, port(s, p)?),
                );
                sorry = Some((sm, s.pos.clone()));
            }
            "sorry_server_lvs_method" => {
                let f = method(s)?;
                match &mut sorry {
                    Some((sm, _)) => put(sm, "forward", f),
                    None => return err(&s.pos, "sorry_server_lvs_method: after sorry_server"),
                }
            }
            "laddr_group_name" => {
                let name = s.arg()?;
                let Some(l) = groups.laddr.get(name) else {
                    return err(
                        &s.pos,
                        format!("laddr_group_name {name}: no local_address_group of that name"),
                    );
                };
                let v: Vec<Value> = l.iter().cloned().map(Value::from).collect();
                put(&mut m, "local_addresses", v);
            }
            "ha_suspend" => cx.ignored(
                s,
                "rvs keeps checking on a BACKUP, so its servers' state is current at a takeover",
            ),
            "ip_family" if s.arg()? == "inet" => {}
            "ops" => put(&mut m, "flags", vec![Value::from("ops")]),
            "syn_proxy" => return err(&s.pos, "syn_proxy: rvs has no SYN proxy yet; remove it"),
            _ => {
                return err(
                    &s.pos,
                    format!(
                    "{w}: not a virtual_server keyword rvs knows; check its spelling, or remove it"
                ),
                )
            }
        }
    }
    if !persistence.is_empty() {
        put(&mut m, "persistence", persistence);
    }
    if let Some((mut sm, _)) = sorry {
        if !sm.contains_key("forward") {
            put(&mut sm, "forward", forward.clone());
        }
        put(&mut m, "sorry_server", sm);
    }
    for s in b.body().iter().filter(|s| s.word(0) == "real_server") {
        reals.push(real_server(cx, s, &forward, vhost.as_deref(), groups)?);
    }
    Ok((m, reals))
}

/// `lb_kind NAT|DR|TUN|FNAT` as rvs's `forward`.
fn method(s: &Stmt) -> Result<String> {
    Ok(match s.arg()? {
        "NAT" => "nat",
        "DR" => "dr",
        "TUN" => "tun",
        "FNAT" | "FULLNAT" => "fullnat",
        o => {
            return err(
                &s.pos,
                format!("{}: NAT, DR, TUN or FNAT, not {o}", s.word(0)),
            )
        }
    }
    .to_string())
}

fn real_server(
    cx: &mut Cx,
    b: &Stmt,
    forward: &str,
    vhost: Option<&str>,
    groups: &Groups,
) -> Result<Real> {
    let mut m = map();
    let mut check_pos = Vec::new();
    let (ip, p) = match b.args() {
        [ip, p] => (address(b, ip)?, port(b, p)?),
        [ip] => (address(b, ip)?, 0),
        _ => return err(&b.pos, "real_server: `IP PORT` expected"),
    };
    put(
        &mut m,
        "address",
        if p == 0 { ip } else { format!("{ip}:{p}") },
    );
    put(&mut m, "forward", forward);
    let mut checks = Vec::new();
    for s in b.body() {
        if no_effect(cx, s) {
            continue;
        }
        let w = s.word(0);
        if is_checker(w) {
            checks.push(Value::Mapping(checker(cx, s, vhost, &groups.track_files)?));
            check_pos.push(s.pos.clone());
            continue;
        }
        match w {
            "weight" => put(&mut m, "weight", num::<u32>(s)?),
            "uthreshold" => put(&mut m, "upper_threshold", num::<u32>(s)?),
            "lthreshold" => put(&mut m, "lower_threshold", num::<u32>(s)?),
            "inhibit_on_failure" => put(&mut m, "inhibit_on_failure", true),
            "notify_up" | "notify_down" => put(&mut m, w, s.args().join(" ")),
            "lvs_method" => put(&mut m, "forward", method(s)?),
            "delay_loop" | "connect_timeout" | "delay_before_retry" | "warmup" => {
                put(&mut m, w, secs(s)?)
            }
            "retry" => put(&mut m, "retry", num::<u32>(s)?),
            _ => {
                return err(
                    &s.pos,
                    format!(
                    "{w}: not a real_server keyword rvs knows; check its spelling, or remove it"
                ),
                )
            }
        }
    }
    if !checks.is_empty() {
        put(&mut m, "checks", checks);
    }
    Ok(Real {
        map: m,
        pos: b.pos.clone(),
        checks: check_pos,
    })
}
