//! VRRP end to end, what operators rely on beyond the election: the owner (priority 255)
//! taking over at once, the gratuitous ARPs `garp_master_*` schedule, a VIP answered
//! (ARP, ping) only by the MASTER, notify scripts with keepalived's arguments at every
//! change including the stop, and `rvsadm --vrrp` in text and JSON.

use std::time::{Duration, Instant};
use testkit::eventually;
use testkit::ha::{director_config, instance, instances, nat_service, state, HaLab, TAKEOVER};
use testkit::lab::VIP;
use testkit::net::sample;

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

fn path() -> &'static std::path::Path {
    std::path::Path::new(RVSD)
}

/// The moments of the gratuitous ARPs for the VIP sent from `mac`, grouped into bursts
/// (frames less than 0.4 s apart).
fn garp_bursts(frames: &[(Instant, Vec<u8>)], mac: &str) -> Vec<Vec<Instant>> {
    let vip: std::net::Ipv4Addr = VIP.parse().unwrap();
    let mac: dataplane::packet::MacAddr = mac.parse().unwrap();
    let mut bursts: Vec<Vec<Instant>> = Vec::new();
    for (t, f) in frames {
        if f.len() < 42 || f[12..14] != [8, 6] {
            continue;
        }
        let Ok(a) = dataplane::packet::ArpPacket::new_checked(&f[14..]) else {
            continue;
        };
        if a.operation() != 1 || a.sender_ip() != vip || a.target_ip() != vip {
            continue;
        }
        if a.sender_mac() != mac {
            continue;
        }
        match bursts.last_mut() {
            Some(b) if t.duration_since(*b.last().unwrap()) < Duration::from_millis(400) => {
                b.push(*t)
            }
            _ => bursts.push(vec![*t]),
        }
    }
    bursts
}

/// The owner (priority 255, `state: MASTER`) joins a pair whose MASTER is B: it becomes
/// MASTER at once (never BACKUP), advertises 255, and announces the VIP in bursts of
/// `garp_master_repeat`, again `garp_master_delay` later, then every
/// `garp_master_refresh`. Only the MASTER answers ARP and ping for the VIP, whose
/// traffic a BACKUP drops (counted as `standby`); the BACKUP's own address still answers.
#[test]
fn an_owner_takes_over_at_once_and_announces_as_the_garp_settings_say() {
    let mut l = HaLab::new();
    let b = director_config(
        1,
        &instance(100, 3, "0.1", "    garp_master_delay: 0\n"),
        &nat_service(),
    );
    l.start(1, path(), &b);
    eventually("B MASTER alone", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    let a = director_config(
        0,
        &instance(
            255,
            3,
            "0.1",
            "    state: MASTER\n    garp_master_delay: 2.5\n    garp_master_repeat: 2\n    garp_master_refresh: 1\n",
        ),
        &nat_service(),
    );
    let ns = l.client.ns.clone();
    let ((), frames) = testkit::net::capture_timed(&ns, "eth0", Duration::ZERO, || {
        l.start(0, path(), &a);
        eventually("A MASTER", TAKEOVER, || {
            (state(l.rvsd(0)) == "MASTER").then_some(())
        });
        // Nominally the bursts at 0, 2.5, 3.5 and 4.5 s.
        std::thread::sleep(Duration::from_millis(6500));
    });
    let ia = &instances(l.rvsd(0))[0];
    assert_eq!(ia.transitions, 1, "straight to MASTER: {ia:?}");
    assert!(!l.rvsd(0).log_text().contains("Entering BACKUP STATE"));
    let ib = &instances(l.rvsd(1))[0];
    assert_eq!(ib.state.word(), "BACKUP", "{ib:?}");
    assert_eq!(ib.master, Some("198.18.0.2".parse().unwrap()));
    // A's adverts, as the LAN carries them: priority 255.
    let a_mac = l.mac_of(0).replace(':', "");
    let adverts: Vec<u8> = frames
        .iter()
        .map(|(_, f)| f)
        .filter(|f| f.len() > 36 && f[12..14] == [8, 0] && f[23] == 112)
        .filter(|f| {
            f[6..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                == a_mac
        })
        .map(|f| f[14 + 20 + 2])
        .collect();
    assert!(adverts.len() >= 10, "{} adverts from A", adverts.len());
    assert!(adverts.iter().all(|p| *p == 255), "{adverts:?}");

    let bursts = garp_bursts(&frames, &l.mac_of(0));
    let sizes: Vec<usize> = bursts.iter().map(Vec::len).collect();
    // The first burst, a second delay_later, then at least two refreshes.
    assert!(bursts.len() >= 4, "bursts of gratuitous ARPs: {sizes:?}");
    // The first group also holds the announcements the new MASTER makes on hearing B's
    // last adverts (priority 100), as keepalived does: at least one burst's worth.
    assert!(
        sizes[0] >= 2 && sizes[1..].iter().all(|n| *n == 2),
        "garp_master_repeat 2: {sizes:?}"
    );
    let gaps: Vec<Duration> = bursts
        .windows(2)
        .map(|w| w[1][0].duration_since(w[0][0]))
        .collect();
    // Timers fire no earlier than asked: lower bounds only, which load cannot break.
    // The delay is longer than the refresh, so a delay taken as the refresh fails.
    assert!(
        gaps[0] >= Duration::from_millis(2450),
        "garp_master_delay 2.5: {gaps:?}"
    );
    assert!(
        gaps[1..].iter().all(|g| *g >= Duration::from_millis(950)),
        "garp_master_refresh 1: {gaps:?}"
    );
    // B announced the VIP when it became MASTER alone (its burst may fall in the
    // capture); never once A had taken over.
    let a_first = bursts[0][0];
    let b_after: Vec<usize> = garp_bursts(&frames, &l.mac_of(1))
        .iter()
        .filter(|b| b[0] > a_first)
        .map(Vec::len)
        .collect();
    assert!(
        b_after.is_empty(),
        "the BACKUP announced the VIP: {b_after:?}"
    );

    // ARP and ping for the VIP: the MASTER only.
    let (ma, mb) = (l.mac_of(0), l.mac_of(1));
    assert_eq!(
        l.arp_responders(VIP).into_iter().collect::<Vec<_>>(),
        vec![ma.clone()]
    );
    assert_eq!(
        l.arp_responders("198.18.1.3")
            .into_iter()
            .collect::<Vec<_>>(),
        vec![mb.clone()],
        "the BACKUP's own address"
    );
    let standby_drops = |l: &HaLab| {
        let m = testkit::net::scrape_metrics(&l.dirs[1].ns);
        sample(&m, "rvs_drops_total", &["reason=\"standby\""]).unwrap_or(0)
    };
    let before = standby_drops(&l);
    assert!(l.ping_via(VIP, &ma), "the MASTER answers ping for the VIP");
    assert!(
        !l.ping_via(VIP, &mb),
        "the BACKUP answered ping for the VIP"
    );
    // Nor does the BACKUP serve the VIP's service: a connection sent to its MAC fails.
    l.client.run(&[
        "ip",
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &mb,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let via_b = l
        .client
        .exec(&["curl", "-s", "-m", "2", &format!("http://{VIP}/")]);
    l.client.run(&["ip", "neigh", "del", VIP, "dev", "eth0"]);
    assert!(!via_b.status.success(), "the BACKUP served the VIP");
    let after = standby_drops(&l);
    assert!(after >= before + 3, "standby drops {before} -> {after}");

    // The owner dies: B takes the VIP and answers it.
    l.kill(0);
    eventually("B MASTER", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    eventually("only B answers ARP for the VIP", TAKEOVER, || {
        (l.arp_responders(VIP).into_iter().collect::<Vec<_>>() == vec![mb.clone()]).then_some(())
    });
    assert!(l.ping_via(VIP, &mb));
    l.serves(3);
}

/// `rvsadm --vrrp` of director `i`, whitespace-split rows (header first).
fn vrrp_rows(l: &HaLab, i: usize) -> Vec<Vec<String>> {
    l.rvsd(i)
        .rvsadm(RVSADM, &["--vrrp"])
        .lines()
        .map(|r| r.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Every notify script with keepalived's arguments, at every change: BACKUP at start,
/// MASTER alone, BACKUP under a better peer, FAULT from a tracked script, BACKUP again,
/// and STOP on a graceful stop (`notify_stop` and `notify ... STOP`). `rvsadm --vrrp`
/// shows each state in text and JSON.
#[test]
fn notify_scripts_run_with_keepalived_arguments_at_every_change() {
    let mut l = HaLab::new();
    let dir = l.t.dir.clone();
    let (rec, fault) = (testkit::Recorder::new(&dir), dir.join("fault"));
    let r = rec.script.display();
    let extra = format!(
        "    notify_master: \"{r} master\"\n    notify_backup: \"{r} backup\"\n    notify_fault: \"{r} fault\"\n    notify_stop: \"{r} stop\"\n    notify: \"{r}\"\n    track_script: [chk]\n"
    );
    let scripts = format!(
        "vrrp_scripts:\n  - {{ name: chk, script: \"test ! -e {}\", interval: 0.1 }}\n",
        fault.display()
    );
    let a = director_config(
        0,
        &format!("{scripts}{}", instance(100, 3, "0.1", &extra)),
        &nat_service(),
    );
    // The lines the scripts wrote: the generic `notify`'s, and the others'.
    let lines = || -> (Vec<String>, Vec<String>) {
        rec.lines()
            .into_iter()
            .partition(|l| l.starts_with("INSTANCE"))
    };
    let mut want_generic: Vec<String> = Vec::new();
    let mut want_own: Vec<String> = Vec::new();
    // Waits for the lines a step adds, then checks all so far (a later step's lines
    // may already be there on a slow machine: only the first ones are compared).
    let mut step = |what: &str, word: &str, own: &str| {
        want_generic.push(format!("INSTANCE VI_1 {word} 100"));
        want_own.push(own.to_string());
        let (ng, no) = (want_generic.len(), want_own.len());
        let (g, o) = eventually(what, TAKEOVER, || {
            let (g, o) = lines();
            (g.len() >= ng && o.len() >= no).then_some((g, o))
        });
        assert_eq!((&g[..ng], &o[..no]), (&want_generic[..], &want_own[..]));
    };

    l.start(0, path(), &a);
    step("BACKUP at start", "BACKUP", "backup");
    step("MASTER alone", "MASTER", "master");
    let rows = vrrp_rows(&l, 0);
    assert_eq!(
        rows[0],
        [
            "Instance",
            "Port",
            "VRID",
            "v",
            "State",
            "Priority",
            "Master",
            "Advert",
            "Since(s)",
            "Trans",
            "Virtual",
            "addresses"
        ]
    );
    assert_eq!(
        rows[1][..8],
        [
            "VI_1",
            "lan0",
            "51",
            "3",
            "MASTER",
            "100/100",
            "198.18.0.2",
            "0.1s"
        ]
    );
    assert!(rows[1][8].parse::<u64>().is_ok(), "{:?}", rows[1]);
    assert_eq!(rows[1][9], "2", "INIT to BACKUP to MASTER");
    assert_eq!(
        rows[1][10..],
        [
            "198.18.1.100/24",
            "198.18.1.254/24",
            "198.18.0.254/24",
            "198.18.0.5/24"
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&l.rvsd(0).rvsadm(RVSADM, &["--vrrp", "--json"])).unwrap();
    assert_eq!(json["kind"], "vrrp", "{json}");
    let i0 = json
        .pointer("/instances/0")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(i0["name"], "VI_1");
    assert_eq!(i0["state"], "MASTER", "{i0}");
    assert_eq!(i0["priority"], 100);
    assert_eq!(i0["master"], "198.18.0.2");
    assert_eq!(i0["advert_int"], 0.1);
    assert_eq!(i0["transitions"], 2);

    let b = director_config(1, &instance(150, 3, "0.1", ""), &nat_service());
    l.start(1, path(), &b);
    step("BACKUP under B", "BACKUP", "backup");
    assert_eq!(
        vrrp_rows(&l, 0)[1][4..7],
        ["BACKUP", "100/100", "198.18.0.3"]
    );
    std::fs::write(&fault, "").unwrap();
    step("FAULT", "FAULT", "fault");
    assert_eq!(vrrp_rows(&l, 0)[1][4], "FAULT");
    std::fs::remove_file(&fault).unwrap();
    step("BACKUP after the fault", "BACKUP", "backup");
    l.stop(0);
    step("STOP", "STOP", "stop");
}
