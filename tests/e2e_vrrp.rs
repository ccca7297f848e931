//! VRRP end to end: two rvsd directors on one LAN (testkit::ha), with the client's ARP
//! entry for the VIP as the witness of who answers, and Debian's keepalived as the peer.

use std::time::Duration;
use testkit::eventually;
use testkit::ha::{
    director_config, instance, instances, nat_service, state, HaLab, TAKEOVER, VIRTUAL,
};
use testkit::keepalived::Keepalived;
use testkit::lab::VIP;
use testkit::net::sample;

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

fn path() -> &'static std::path::Path {
    std::path::Path::new(RVSD)
}

#[test]
fn the_backup_takes_over_when_the_master_dies_and_the_master_preempts_back() {
    let mut l = HaLab::new();
    let a = director_config(0, &instance(150, 3, "0.1", ""), &nat_service());
    let b = director_config(1, &instance(100, 3, "0.1", ""), &nat_service());
    l.start(0, path(), &a);
    l.start(1, path(), &b);
    eventually("A MASTER, B BACKUP", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER" && state(l.rvsd(1)) == "BACKUP").then_some(())
    });
    let ib = &instances(l.rvsd(1))[0];
    assert_eq!(ib.master, Some("198.18.0.2".parse().unwrap()), "{ib:?}");
    assert!(ib.adverts_received > 0 && ib.dropped.is_empty(), "{ib:?}");
    // Prometheus says the same: A master (2), B backup (1) having heard A.
    let vi = "instance=\"VI_1\"";
    let ma = testkit::net::scrape_metrics(&l.dirs[0].ns);
    let mb = testkit::net::scrape_metrics(&l.dirs[1].ns);
    assert_eq!(sample(&ma, "rvs_vrrp_state", &[vi]), Some(2), "{ma}");
    assert_eq!(sample(&mb, "rvs_vrrp_state", &[vi]), Some(1), "{mb}");
    assert_eq!(sample(&mb, "rvs_vrrp_priority", &[vi]), Some(100));
    // A went INIT -> BACKUP -> MASTER, B INIT -> BACKUP.
    assert_eq!(
        sample(&ma, "rvs_vrrp_transitions_total", &[vi]),
        Some(2),
        "{ma}"
    );
    assert_eq!(
        sample(&mb, "rvs_vrrp_transitions_total", &[vi]),
        Some(1),
        "{mb}"
    );
    assert!(sample(&ma, "rvs_vrrp_adverts_total", &[vi, "direction=\"sent\""]) > Some(0));
    assert!(
        sample(
            &mb,
            "rvs_vrrp_adverts_total",
            &[vi, "direction=\"received\""]
        ) > Some(0)
    );
    l.serves(6);
    assert_eq!(l.client_mac_for(VIP), Some(l.mac_of(0)));

    // kill -9 of the master: B takes over, the client's ARP entry follows (GARP).
    l.kill(0);
    eventually("B MASTER", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    assert_eq!(
        instances(l.rvsd(1))[0].last_cause,
        "no advert within the master down interval"
    );
    eventually("the client's ARP entry moved to B", TAKEOVER, || {
        (l.client_mac_for(VIP) == Some(l.mac_of(1))).then_some(())
    });
    l.serves(6);

    // A returns with the higher priority: it preempts, B steps back.
    l.start(0, path(), &a);
    eventually("A MASTER again", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER" && state(l.rvsd(1)) == "BACKUP").then_some(())
    });
    eventually("the client's ARP entry back on A", TAKEOVER, || {
        (l.client_mac_for(VIP) == Some(l.mac_of(0))).then_some(())
    });
    l.serves(6);

    // A graceful stop: priority 0, B takes over.
    l.stop(0);
    eventually("B MASTER after A's priority 0", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    // It heard the step-down and took over on the skew timer it starts, not on the
    // master down interval: takeover within the skew time.
    let ib = &instances(l.rvsd(1))[0];
    assert!(ib.priority_zero_received >= 1, "{ib:?}");
    assert_eq!(ib.last_cause, "the master sent priority 0", "{ib:?}");
    l.serves(6);
    assert!(
        l.rvsd(1)
            .log_text()
            .contains("(VI_1) Entering MASTER STATE"),
        "keepalived's words in the log"
    );
    if std::env::var("RVS_TEST_SHOW").is_ok() {
        eprintln!("{}", l.rvsd(1).log_text());
    }
}

#[test]
fn nopreempt_keeps_the_running_master() {
    let mut l = HaLab::new();
    let a = director_config(
        0,
        &instance(150, 3, "0.1", "    nopreempt: true\n"),
        &nat_service(),
    );
    let b = director_config(1, &instance(100, 3, "0.1", ""), &nat_service());
    // B alone becomes MASTER; A then joins with the higher priority but nopreempt.
    l.start(1, path(), &b);
    eventually("B MASTER", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    l.start(0, path(), &a);
    eventually("A BACKUP, hearing B", TAKEOVER, || {
        let i = &instances(l.rvsd(0))[0];
        (i.state.word() == "BACKUP" && i.adverts_received >= 20).then_some(())
    });
    assert_eq!(state(l.rvsd(1)), "MASTER");
    assert_eq!(state(l.rvsd(0)), "BACKUP");
    l.serves(3);
}

/// keepalived's configuration of the same virtual router (VRRP only).
fn keepalived_conf(priority: u8, version: u8, advert: &str, extra: &str, global: &str) -> String {
    format!(
        "global_defs {{\n  router_id ka\n  script_user root\n  enable_script_security\n{global}}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  version {version}\n  advert_int {advert}\n{extra}  virtual_ipaddress {{\n    198.18.1.100/24\n    198.18.1.254/24\n    198.18.0.254/24\n    198.18.0.5/24\n  }}\n  notify {{NOTIFY}}\n}}\n"
    )
}

/// Whether keepalived put the VIP on its interface (it does as MASTER).
fn keepalived_holds_vip(ka: &testkit::Host) -> bool {
    ka.run(&["ip", "-4", "addr", "show", "dev", "eth0"])
        .contains("198.18.1.100/24")
}

/// rvsd and keepalived on one LAN: each becomes MASTER or BACKUP as the priorities say,
/// in both directions, and each takes over when the other dies.
fn interop(version: u8, advert: &str, rvsd_extra: &str, ka_extra: &str, ka_global: &str) {
    let mut l = HaLab::new();
    let ka_host = l.add_peer();
    let dir = l.t.dir.clone();
    // rvsd 150 over keepalived 100: rvsd is MASTER.
    let a = director_config(
        0,
        &instance(150, version, advert, rvsd_extra),
        &nat_service(),
    );
    l.start(0, path(), &a);
    eventually("rvsd MASTER alone", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER").then_some(())
    });
    let mut ka = Keepalived::start(
        &ka_host,
        &dir,
        "ka",
        &keepalived_conf(100, version, advert, ka_extra, ka_global),
    );
    eventually("keepalived BACKUP under rvsd", TAKEOVER, || {
        (ka.state() == "BACKUP").then_some(())
    });
    // keepalived says BACKUP as it starts: it only stays BACKUP past its master-down
    // interval (3 adverts + skew) if it accepts rvsd's adverts.
    let advert_s: f64 = advert.parse().unwrap();
    std::thread::sleep(Duration::from_secs_f64(advert_s * 3.0 + 1.0));
    assert_eq!(ka.state(), "BACKUP", "{}", ka.log_text());
    assert!(
        !ka.log_text().contains("Entering MASTER STATE"),
        "{}",
        ka.log_text()
    );
    let i = &instances(l.rvsd(0))[0];
    assert_eq!(i.state.word(), "MASTER", "{i:?}\n{}", ka.log_text());
    assert!(!keepalived_holds_vip(&ka_host));
    l.serves(3);

    // rvsd dies: keepalived takes the addresses and the client follows it.
    l.kill(0);
    eventually("keepalived MASTER", TAKEOVER, || {
        (ka.state() == "MASTER" && keepalived_holds_vip(&ka_host)).then_some(())
    });
    eventually(
        "the client's ARP entry on keepalived's host",
        TAKEOVER,
        || (l.client_mac_for(VIP) == Some(ka_host.mac.clone())).then_some(()),
    );

    // rvsd returns below keepalived: it stays BACKUP, hearing keepalived's adverts.
    let low = director_config(
        0,
        &instance(90, version, advert, rvsd_extra),
        &nat_service(),
    );
    l.start(0, path(), &low);
    eventually("rvsd BACKUP under keepalived", TAKEOVER, || {
        let i = &instances(l.rvsd(0))[0];
        (i.state.word() == "BACKUP" && i.adverts_received >= 3).then_some(())
    });
    let i = &instances(l.rvsd(0))[0];
    assert_eq!(i.master, Some("198.18.0.4".parse().unwrap()), "{i:?}");
    assert!(
        i.dropped.is_empty(),
        "keepalived's adverts all accepted: {i:?}"
    );
    assert_eq!(ka.state(), "MASTER");

    // keepalived dies: rvsd takes over and serves.
    ka.kill();
    drop(ka);
    eventually("rvsd MASTER after keepalived died", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER").then_some(())
    });
    eventually("the client's ARP entry back on rvsd", TAKEOVER, || {
        (l.client_mac_for(VIP) == Some(l.mac_of(0))).then_some(())
    });
    l.serves(3);

    // A better keepalived joins: rvsd, MASTER, yields to it.
    let ka = Keepalived::start(
        &ka_host,
        &dir,
        "ka2",
        &keepalived_conf(200, version, advert, ka_extra, ka_global),
    );
    eventually("keepalived MASTER over rvsd", TAKEOVER, || {
        (ka.state() == "MASTER" && state(l.rvsd(0)) == "BACKUP").then_some(())
    });
    assert_eq!(
        instances(l.rvsd(0))[0].master,
        Some("198.18.0.4".parse().unwrap())
    );
}

#[test]
fn keepalived_peer_v2_with_pass_authentication() {
    interop(
        2,
        "1",
        "    authentication: { auth_type: PASS, auth_pass: s3cret }\n",
        "  authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }\n",
        "",
    );
}

#[test]
fn keepalived_peer_v3_fast_with_the_pseudo_header_checksum() {
    interop(3, "0.1", "", "", "");
}

/// `v3_checksum_as_v2` (RFC 9568's checksum, without the IPv4 pseudo-header): Debian's
/// keepalived 2.2.7 does not have the option, so two rvsd speak it to each other, tshark
/// checks the checksum of what rvsd sends in that variant (and finds it wrong in the
/// other), and keepalived, which knows only the pseudo-header variant, refuses it.
#[test]
fn v3_checksum_as_v2_between_rvsd_checked_by_tshark() {
    let mut l = HaLab::new();
    let as_v2 = "    v3_checksum_as_v2: true\n";
    let a = director_config(0, &instance(150, 3, "0.1", as_v2), &nat_service());
    let b = director_config(1, &instance(100, 3, "0.1", as_v2), &nat_service());
    l.start(0, path(), &a);
    l.start(1, path(), &b);
    eventually("A MASTER, B BACKUP hearing it", TAKEOVER, || {
        let ib = &instances(l.rvsd(1))[0];
        (state(l.rvsd(0)) == "MASTER" && ib.state.word() == "BACKUP" && ib.adverts_received >= 5)
            .then_some(())
    });
    assert!(instances(l.rvsd(1))[0].dropped.is_empty());

    // What A sends, as the client's interface receives it (the bridge floods multicast).
    let ((), frames) =
        testkit::net::capture(&l.client.ns, "eth0", Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(500))
        });
    let adverts: Vec<Vec<u8>> = frames
        .into_iter()
        .filter(|f| f.len() > 34 && f[12..14] == [8, 0] && f[23] == 112)
        .collect();
    assert!(adverts.len() >= 3, "{} adverts captured", adverts.len());
    let pcap = l.t.dir.join("vrrp.pcap");
    testkit::net::write_pcap(&pcap, &adverts);
    let status = |as_v2: bool| -> Vec<String> {
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args([
                "-o",
                &format!(
                    "vrrp.v3_checksum_as_in_v2:{}",
                    if as_v2 { "TRUE" } else { "FALSE" }
                ),
                "-T",
                "fields",
                "-e",
                "vrrp.checksum.status",
                "-e",
                "vrrp.prio",
            ])
            .output()
            .expect("tshark (scripts/setup.sh installs it)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    // 1 is Good, 0 Bad (Wireshark's checksum status); A advertises priority 150.
    let good = status(true);
    assert!(
        !good.is_empty() && good.iter().all(|l| l == "1\t150"),
        "{good:?}"
    );
    let bad = status(false);
    assert!(
        !bad.is_empty() && bad.iter().all(|l| l.starts_with("0\t")),
        "{bad:?}"
    );

    // keepalived (pseudo-header only) refuses these adverts.
    let ka_host = l.add_peer();
    let dir = l.t.dir.clone();
    let ka = Keepalived::start(
        &ka_host,
        &dir,
        "ka",
        &keepalived_conf(100, 3, "0.1", "", ""),
    );
    eventually("keepalived refuses the as_v2 checksum", TAKEOVER, || {
        ka.log_text()
            .contains("Invalid VRRPv3 checksum")
            .then_some(())
    });
}

/// Both directors MASTER while their adverts are blocked on the LAN; once unblocked one
/// MASTER remains and it announces its addresses again with gratuitous ARPs, since the
/// other may have taken them meanwhile (keepalived issue #166).
#[test]
fn a_split_brain_heals_with_one_master_that_announces_itself() {
    let mut l = HaLab::new();
    let a = director_config(
        0,
        &instance(150, 3, "0.1", "    garp_master_delay: 0\n"),
        &nat_service(),
    );
    let b = director_config(
        1,
        &instance(100, 3, "0.1", "    garp_master_delay: 0\n"),
        &nat_service(),
    );
    l.start(0, path(), &a);
    l.start(1, path(), &b);
    eventually("A MASTER, B BACKUP", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER" && state(l.rvsd(1)) == "BACKUP").then_some(())
    });
    // The bridge drops VRRP: B stops hearing A and becomes MASTER too.
    let rules = l.t.dir.join("block.nft");
    std::fs::write(
        &rules,
        "table bridge rvst_vrrp {\n chain vrrp_fwd {\n  type filter hook forward priority 0;\n  ip protocol 112 drop\n }\n}\n",
    )
    .unwrap();
    l.t.on_bridge(&["nft", "-f", rules.to_str().unwrap()]);
    eventually("both MASTER", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER" && state(l.rvsd(1)) == "MASTER").then_some(())
    });
    let a_transitions = instances(l.rvsd(0))[0].transitions;
    // Healed: B hears the better master and steps back; A, which never left MASTER,
    // announces its addresses again. The client's interface sees it.
    let d0 = l.rvsd(0).socket.clone();
    let d1 = l.rvsd(1).socket.clone();
    let bridge = l.t.id.clone();
    let ((), frames) = testkit::net::capture(
        &l.client.ns,
        "eth0",
        Duration::from_millis(300),
        move || {
            testkit::sh(&[
                "ip",
                "netns",
                "exec",
                &format!("{bridge}-br"),
                "nft",
                "delete",
                "table",
                "bridge",
                "rvst_vrrp",
            ]);
            let st =
                |s: &std::path::Path| match ctrlplane::ctl::call(s, &ctrlplane::ctl::Request::Vrrp)
                {
                    Ok(ctrlplane::ctl::Response::Vrrp { instances }) => instances[0].state.word(),
                    _ => "",
                };
            eventually("one MASTER: A", TAKEOVER, || {
                (st(&d0) == "MASTER" && st(&d1) == "BACKUP").then_some(())
            });
        },
    );
    assert_eq!(
        instances(l.rvsd(0))[0].transitions,
        a_transitions,
        "A stayed MASTER throughout"
    );
    let vip: std::net::Ipv4Addr = VIP.parse().unwrap();
    let a_mac: dataplane::packet::MacAddr = l.mac_of(0).parse().unwrap();
    let garps = frames
        .iter()
        .filter(|f| f.len() >= 42 && f[12..14] == [8, 6])
        .filter_map(|f| dataplane::packet::ArpPacket::new_checked(&f[14..]).ok())
        .filter(|a| {
            a.operation() == 1
                && a.sender_ip() == vip
                && a.target_ip() == vip
                && a.sender_mac() == a_mac
        })
        .count();
    assert!(garps > 0, "no gratuitous ARP from A after the split healed");
    l.serves(6);
    assert_eq!(
        l.client_mac_for(VIP),
        Some(l.mac_of(0)),
        "B's MAC is {}; the client's neighbours: {}",
        l.mac_of(1),
        l.client.run(&["ip", "neigh"])
    );
}

/// vrrp_script tracking: a failing script with a negative weight lowers the priority
/// below the backup's (which then takes over); one with weight 0 puts the instance in
/// FAULT; both recover.
#[test]
fn a_tracked_script_lowers_the_priority_or_faults() {
    let mut l = HaLab::new();
    let dir = l.t.dir.clone();
    let (low, fault) = (dir.join("lower"), dir.join("fault"));
    let scripts = format!(
        "vrrp_scripts:\n  - {{ name: chk_low, script: \"test ! -e {}\", interval: 0.1, weight: -60 }}\n  - {{ name: chk_fault, script: \"test ! -e {}\", interval: 0.1, fall: 2, rise: 2 }}\n",
        low.display(),
        fault.display()
    );
    let a = director_config(
        0,
        &format!(
            "{scripts}{}",
            instance(150, 3, "0.1", "    track_script: [chk_low, chk_fault]\n")
        ),
        &nat_service(),
    );
    let b = director_config(1, &instance(100, 3, "0.1", ""), &nat_service());
    l.start(0, path(), &a);
    l.start(1, path(), &b);
    eventually("A MASTER at 150", TAKEOVER, || {
        let i = &instances(l.rvsd(0))[0];
        (i.state.word() == "MASTER" && i.priority == 150 && state(l.rvsd(1)) == "BACKUP")
            .then_some(())
    });
    // 150 - 60 = 90 < 100: B preempts.
    std::fs::write(&low, "").unwrap();
    eventually("A at 90, B MASTER", TAKEOVER, || {
        let i = &instances(l.rvsd(0))[0];
        (i.priority == 90 && i.state.word() == "BACKUP" && state(l.rvsd(1)) == "MASTER")
            .then_some(())
    });
    std::fs::remove_file(&low).unwrap();
    eventually("A back to 150 and MASTER", TAKEOVER, || {
        let i = &instances(l.rvsd(0))[0];
        (i.priority == 150 && i.state.word() == "MASTER").then_some(())
    });
    // Weight 0: FAULT, and B carries on.
    std::fs::write(&fault, "").unwrap();
    eventually("A in FAULT, B MASTER", TAKEOVER, || {
        (state(l.rvsd(0)) == "FAULT" && state(l.rvsd(1)) == "MASTER").then_some(())
    });
    l.serves(3);
    std::fs::remove_file(&fault).unwrap();
    eventually("A out of FAULT and MASTER again", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER" && state(l.rvsd(1)) == "BACKUP").then_some(())
    });
}

/// A sync group moves together; `track_service` follows the health quorum of a virtual
/// service; notify scripts get keepalived's arguments (`INSTANCE name STATE priority`,
/// `GROUP name STATE 0`).
#[test]
fn a_sync_group_faults_together_when_its_service_loses_quorum() {
    let mut l = HaLab::new();
    let rec = testkit::Recorder::new(&l.t.dir);
    // Each director's lines start with its name (both write one log).
    let two = |who: &str, prio: u8, track: &str| {
        format!(
            "vrrp_instances:\n  - {{ name: VI_1, interface: lan0, virtual_router_id: 51, priority: {prio}, version: 3, advert_int: 0.1, virtual_ipaddress: [{VIRTUAL}], notify: \"{n}\"{track} }}\n  - {{ name: VI_2, interface: lan0, virtual_router_id: 52, priority: {prio}, version: 3, advert_int: 0.1, virtual_ipaddress: [\"198.18.1.101/24\"], notify: \"{n}\" }}\nvrrp_sync_groups:\n  - {{ name: G1, group: [VI_1, VI_2], notify: \"{n}\" }}\n",
            n = format!("{} {who}", rec.script.display())
        )
    };
    let checked: String = (11..14)
        .map(|d| {
            format!("      - {{ address: \"198.18.0.{d}:80\", forward: nat, checks: [{{ type: tcp_check, connect_timeout: 0.5, retry: 0 }}] }}\n")
        })
        .collect();
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    delay_loop: 0.2\n    warmup: 0\n    real_servers:\n{checked}"
    );
    let a = director_config(
        0,
        &two(
            "A",
            150,
            ", track_service: [{ vip: \"198.18.1.100:80\", weight: 0 }]",
        ),
        &svc,
    );
    let b = director_config(1, &two("B", 100, ""), &nat_service());
    l.start(0, path(), &a);
    l.start(1, path(), &b);
    eventually("A MASTER of both, B BACKUP of both", TAKEOVER, || {
        let (ia, ib) = (instances(l.rvsd(0)), instances(l.rvsd(1)));
        (ia.iter().all(|i| i.state.word() == "MASTER")
            && ib.iter().all(|i| i.state.word() == "BACKUP"))
        .then_some(())
    });
    let notes = || rec.lines().join("\n");
    eventually("A's notify scripts ran", TAKEOVER, || {
        let n = notes();
        (n.contains("INSTANCE VI_1 MASTER 150")
            && n.contains("INSTANCE VI_2 MASTER 150")
            && n.contains("GROUP G1 MASTER 0"))
        .then_some(())
    });
    // The group's script once per change, however many members moved.
    let once = |line: &str| notes().lines().filter(|l| *l == line).count() == 1;
    assert!(once("A GROUP G1 MASTER 0"), "{}", notes());
    // Every real server stops: A's service loses its quorum, VI_1 faults and VI_2 with
    // it (one group); B takes both.
    l.servers.clear();
    eventually("A FAULT on both, B MASTER on both", TAKEOVER, || {
        let (ia, ib) = (instances(l.rvsd(0)), instances(l.rvsd(1)));
        (ia.iter().all(|i| i.state.word() == "FAULT")
            && ib.iter().all(|i| i.state.word() == "MASTER"))
        .then_some(())
    });
    eventually("the FAULT notifications", TAKEOVER, || {
        let n = notes();
        (n.contains("INSTANCE VI_1 FAULT 150")
            && n.contains("GROUP G1 FAULT 0")
            && n.contains("B GROUP G1 MASTER 0"))
        .then_some(())
    });
    assert!(once("A GROUP G1 FAULT 0"), "{}", notes());
    assert!(once("A GROUP G1 MASTER 0"), "{}", notes());
    assert!(once("B GROUP G1 MASTER 0"), "{}", notes());
}
