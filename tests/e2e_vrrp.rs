//! VRRP end to end: two rvsd directors on one LAN (testkit::ha), with the client's ARP
//! entry for the VIP as the witness of who answers, and Debian's keepalived as the peer.

use std::time::Duration;
use testkit::eventually;
use testkit::ha::{director_config, instances, nat_service, state, HaLab, VIRTUAL};
use testkit::lab::VIP;
use testkit::net::{get_many, tally, v4};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
/// Far longer than any takeover below (at most 3 × 1 s + skew), for a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(20);

fn instance(priority: u8, version: u8, advert: &str, extra: &str) -> String {
    format!(
        "vrrp_instances:\n  - name: VI_1\n    interface: lan0\n    virtual_router_id: 51\n    priority: {priority}\n    version: {version}\n    advert_int: {advert}\n    virtual_ipaddress: [{VIRTUAL}]\n{extra}"
    )
}

fn path() -> &'static std::path::Path {
    std::path::Path::new(RVSD)
}

/// The client reaches the service: `n` fresh requests, none failing.
fn serves(l: &HaLab, n: usize) {
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), n));
    assert_eq!(m.values().sum::<usize>(), n, "{m:?}");
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
    serves(&l, 6);
    assert_eq!(l.client_mac_for(VIP), Some(l.mac_of(0)));

    // kill -9 of the master: B takes over, the client's ARP entry follows (GARP).
    l.kill(0);
    eventually("B MASTER", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    eventually("the client's ARP entry moved to B", TAKEOVER, || {
        (l.client_mac_for(VIP) == Some(l.mac_of(1))).then_some(())
    });
    serves(&l, 6);

    // A returns with the higher priority: it preempts, B steps back.
    l.start(0, path(), &a);
    eventually("A MASTER again", TAKEOVER, || {
        (state(l.rvsd(0)) == "MASTER" && state(l.rvsd(1)) == "BACKUP").then_some(())
    });
    eventually("the client's ARP entry back on A", TAKEOVER, || {
        (l.client_mac_for(VIP) == Some(l.mac_of(0))).then_some(())
    });
    serves(&l, 6);

    // A graceful stop: priority 0, B takes over.
    l.stop(0);
    eventually("B MASTER after A's priority 0", TAKEOVER, || {
        (state(l.rvsd(1)) == "MASTER").then_some(())
    });
    serves(&l, 6);
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
    serves(&l, 3);
}
