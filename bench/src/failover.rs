//! Failover under load: `kill -9` of the MASTER director, and how long the VIP is gone.
//!
//! Two rvsd directors (testkit::ha: VRRP, connection sync, NAT to three real servers) and,
//! in the same run and on the same kind of lab, the anchor: two keepalived moving a kernel
//! VIP. For each VRRP setting (v2 at 1 s, v3 at 0.1 s) and round:
//!
//! - takeover: the longest gap between echo replies from the VIP, pinged every 10 ms from
//!   the client across the kill (rvs answers ping on the VIPs it owns; keepalived's
//!   kernel does on its). The last reply before the gap is the old master's last
//!   forwarded packet, the first after it the new master's first.
//! - rvs only: established keep-alive connections opened before the kill that fail a
//!   request after it (connection sync keeps them), and fresh connections that fail
//!   once the backup is MASTER.
//!
//! Premises checked before a number is kept: the pings were answered before the kill and
//! after it, the client's ARP entry ends on the survivor's MAC, every established
//! connection served requests before the kill.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::ha::{director_config, nat_service, HaLab, VIRTUAL};
use testkit::keepalived::Keepalived;
use testkit::lab::VIP;
use testkit::net::{v4, HttpConn};

/// Established connections held across the kill.
const HELD: usize = 20;

#[derive(Serialize, Clone, Debug)]
pub struct Round {
    pub target: String,
    pub version: u8,
    pub advert_int: String,
    /// Longest gap between echo replies across the kill, seconds.
    pub takeover_s: f64,
    pub pings_answered: usize,
    /// rvs only (None for the keepalived anchor, whose kernel VIP carries no service).
    pub established_lost: Option<usize>,
    pub established_held: Option<usize>,
    pub fresh_failed_after: Option<usize>,
    pub fresh_tried_after: Option<usize>,
}

/// A ping every 10 ms from `ns` to `ip`, with kernel timestamps; stop() returns the
/// times of the replies.
struct Pinger {
    child: std::process::Child,
}

impl Pinger {
    fn start(ns: &str, ip: &str) -> Result<Pinger> {
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "ping", "-D", "-n", "-i", "0.01", "-W", "1", ip,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ping")?;
        Ok(Pinger { child })
    }
    fn stop(mut self) -> Vec<f64> {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let out = self.child.stdout.take();
        let _ = self.child.wait();
        let Some(out) = out else {
            return Vec::new();
        };
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| {
                l.strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(t, _)| t.parse::<f64>().ok())
            })
            .collect()
    }
}

/// The longest gap between consecutive replies that straddles `kill_at` (unix seconds),
/// and how many replies came before and after it.
fn gap_across(times: &[f64], kill_at: f64) -> Option<(f64, usize, usize)> {
    let before = times.iter().filter(|t| **t <= kill_at).count();
    let after = times.len() - before;
    if before < 10 || after < 10 {
        return None;
    }
    let gap = times
        .windows(2)
        .filter(|w| w[1] >= kill_at)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);
    Some((gap, before, after))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn wait(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + limit;
    while !ok() {
        if Instant::now() > end {
            bail!("{what}: not within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn instance(priority: u8, version: u8, advert: &str) -> String {
    format!(
        "vrrp_instances:\n  - {{ name: VI_1, interface: lan0, virtual_router_id: 51, priority: {priority}, version: {version}, advert_int: {advert}, virtual_ipaddress: [{VIRTUAL}] }}\nlvs_sync_daemon: {{ interface: lan0, syncid: 1, vrrp_instance: VI_1 }}\n"
    )
}

fn state(l: &HaLab, i: usize) -> String {
    testkit::ha::state(l.rvsd(i))
}

/// One rvs round: A (150) and B (100); connections held through A; kill -9 of A.
pub fn rvs_round(rvsd: &Path, version: u8, advert: &str) -> Result<Round> {
    let mut l = HaLab::new();
    l.start(
        0,
        rvsd,
        &director_config(0, &instance(150, version, advert), &nat_service()),
    );
    l.start(
        1,
        rvsd,
        &director_config(1, &instance(100, version, advert), &nat_service()),
    );
    wait("A MASTER, B BACKUP", Duration::from_secs(30), || {
        state(&l, 0) == "MASTER" && state(&l, 1) == "BACKUP"
    })?;
    // Connections held in a client thread: a request each before, one each after.
    let ns = l.client.ns.clone();
    let (go, gone) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel::<usize>();
    let holder = std::thread::spawn(move || -> (usize, usize) {
        testkit::net::enter(&ns);
        let mut conns: Vec<HttpConn> = (0..HELD)
            .filter_map(|_| HttpConn::connect(v4(VIP, 80), Duration::from_secs(5)).ok())
            .collect();
        for _ in 0..3 {
            conns.retain_mut(|c| c.get().is_ok());
        }
        let _ = ready_tx.send(conns.len());
        let _ = gone.recv();
        let held = conns.len();
        let ok = conns
            .iter_mut()
            .map(|c| c.get().is_ok())
            .filter(|x| *x)
            .count();
        (held, held - ok)
    });
    let held = ready.recv().context("holder")?;
    if held != HELD {
        bail!("premise: only {held} of {HELD} connections served requests before the kill");
    }
    // Let the sync messages of the last requests leave (the sender drains every 20 ms).
    std::thread::sleep(Duration::from_millis(200));
    let pinger = Pinger::start(&l.client.ns, VIP)?;
    std::thread::sleep(Duration::from_millis(1500));
    let kill_at = unix_now();
    l.kill(0);
    wait("B MASTER", Duration::from_secs(30), || {
        state(&l, 1) == "MASTER"
    })?;
    // New connections once B is MASTER.
    let tries = 200;
    let fresh = testkit::net::get_many(&l.client.ns, v4(VIP, 80), tries);
    let fresh_failed = fresh.iter().filter(|r| r.is_err()).count();
    std::thread::sleep(Duration::from_millis(1500));
    let times = pinger.stop();
    let _ = go.send(());
    let (_, lost) = holder
        .join()
        .map_err(|_| anyhow::anyhow!("holder thread"))?;
    let Some((gap, _, _)) = gap_across(&times, kill_at) else {
        bail!(
            "premise: the VIP did not answer ping both before and after the kill ({} replies)",
            times.len()
        );
    };
    if l.client_mac_for(VIP) != Some(l.mac_of(1)) {
        bail!("premise: the client's ARP entry for the VIP is not B's MAC");
    }
    Ok(Round {
        target: "rvs".into(),
        version,
        advert_int: advert.into(),
        takeover_s: gap,
        pings_answered: times.len(),
        established_lost: Some(lost),
        established_held: Some(held),
        fresh_failed_after: Some(fresh_failed),
        fresh_tried_after: Some(tries),
    })
}

/// One anchor round: two keepalived moving the VIP on their kernels; the master's link
/// dies (its bridge port goes down), as the reference measurement did: a killed
/// keepalived leaves the VIP on its kernel, which would go on answering.
pub fn keepalived_round(version: u8, advert: &str) -> Result<Round> {
    let mut t = testkit::Topology::new();
    let client = t.add_host("client", Some("198.18.1.1/24"));
    let a = t.add_host("kaa", Some("198.18.1.2/24"));
    let b = t.add_host("kab", Some("198.18.1.3/24"));
    let conf = |prio: u8| {
        format!(
            "global_defs {{\n  router_id ka{prio}\n  script_user root\n  enable_script_security\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {prio}\n  version {version}\n  advert_int {advert}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n  notify {{NOTIFY}}\n}}\n"
        )
    };
    let dir = t.dir.clone();
    let ka = Keepalived::start(&a, &dir, "kaa", &conf(150));
    let kb = Keepalived::start(&b, &dir, "kab", &conf(100));
    wait(
        "keepalived A MASTER, B BACKUP",
        Duration::from_secs(30),
        || ka.state() == "MASTER" && kb.state() == "BACKUP",
    )?;
    let pinger = Pinger::start(&client.ns, VIP)?;
    std::thread::sleep(Duration::from_millis(1500));
    let kill_at = unix_now();
    t.on_bridge(&["ip", "link", "set", &testkit::Topology::port_of(&a), "down"]);
    wait("keepalived B MASTER", Duration::from_secs(30), || {
        kb.state() == "MASTER"
    })?;
    std::thread::sleep(Duration::from_millis(1500));
    let times = pinger.stop();
    let Some((gap, _, _)) = gap_across(&times, kill_at) else {
        bail!("premise: the kernel VIP did not answer ping both before and after the kill");
    };
    Ok(Round {
        target: "keepalived".into(),
        version,
        advert_int: advert.into(),
        takeover_s: gap,
        pings_answered: times.len(),
        established_lost: None,
        established_held: None,
        fresh_failed_after: None,
        fresh_tried_after: None,
    })
}

/// What is measured, for the report.
pub const SETUP: &str = "Two rvsd directors (VRRP, connection sync, NAT to three kernel real servers, af_packet, one worker each) and two keepalived 2.2.7 moving a kernel VIP, on the same kind of namespace LAN; the client pings the VIP every 10 ms across the MASTER's death (rvs: kill -9 of rvsd; keepalived: its link goes down, since a killed keepalived leaves the VIP on its kernel); takeover is the longest gap between echo replies after it. rvs also holds 20 keep-alive HTTP connections opened through the MASTER (one request each after the kill) and opens 200 fresh connections once the backup is MASTER.";

/// Every round of both targets, interleaved so that the machine's drift touches both.
pub fn run(rvsd: &Path, rounds: usize) -> Result<Vec<Round>> {
    let mut all = Vec::new();
    for (version, advert) in [(2u8, "1"), (3u8, "0.1")] {
        for r in 0..rounds {
            let pair = if r % 2 == 0 {
                [
                    rvs_round(rvsd, version, advert)?,
                    keepalived_round(version, advert)?,
                ]
            } else {
                let k = keepalived_round(version, advert)?;
                [rvs_round(rvsd, version, advert)?, k]
            };
            for x in pair {
                eprintln!(
                    "  v{version} {advert:>4} s {:<10} takeover {:.3} s  established lost {:?} of {:?}, fresh failed {:?} of {:?}",
                    x.target, x.takeover_s, x.established_lost, x.established_held, x.fresh_failed_after, x.fresh_tried_after
                );
                all.push(x);
            }
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gap_that_straddles_the_kill() {
        let t: Vec<f64> = (0..20)
            .map(|i| i as f64 * 0.01)
            .chain((0..20).map(|i| 1.0 + i as f64 * 0.01))
            .collect();
        let (gap, before, after) = super::gap_across(&t, 0.195).unwrap();
        assert!((gap - 0.81).abs() < 1e-9, "{gap}");
        assert_eq!((before, after), (20, 20));
        assert!(
            super::gap_across(&t[..5], 0.03).is_none(),
            "too few replies"
        );
    }
}
