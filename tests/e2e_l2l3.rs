//! End to end, with real DPDK and real kernel hosts: rvsd runs on a net_af_packet vdev in
//! a director namespace; a client namespace on the same bridge talks to it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::{Host, Topology};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

fn config(workers: usize) -> String {
    format!(
        r#"
eal: {{ cores: "0-1", file_prefix: rvst, hugepages: auto, memory_mb: 256 }}
dataplane: {{ workers: {workers}, burst: 32, idle: adaptive, mbufs: 8191, rx_desc: 512, tx_desc: 512 }}
ports:
  - name: lan0
    device: "net_af_packet0,iface=eth0"
    addresses: ["198.18.0.2/24"]
routes:
  - {{ prefix: "0.0.0.0/0", via: "198.18.0.1", port: lan0 }}
control: {{ socket: "{{SOCKET}}" }}
"#
    )
}

/// client (198.18.0.1) and director (rvsd, 198.18.0.2) on one bridge.
fn setup(workers: usize) -> (Topology, Host, Host) {
    let mut t = Topology::new();
    let client = t.add_host("client", Some("198.18.0.1/24"));
    let dir = t.add_host("dir", None);
    t.start_rvsd(&dir, Path::new(RVSD), &config(workers));
    (t, client, dir)
}

fn ping(h: &Host, dst: &str, count: u32) -> bool {
    h.exec(&[
        "ping",
        "-c",
        &count.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
        dst,
    ])
    .status
    .success()
}

#[test]
fn client_pings_the_director_and_learns_its_mac() {
    let (mut t, client, dir) = setup(1);
    assert!(
        ping(&client, "198.18.0.2", 5),
        "ping to the director's address"
    );
    let neigh = client.run(&["ip", "neigh", "show", "198.18.0.2"]);
    assert!(
        neigh.contains(&dir.mac),
        "client's ARP entry {neigh:?} holds the port MAC {}",
        dir.mac
    );
    let status = t.rvsd(0).status();
    assert_eq!(
        status.ports[0].mac, dir.mac,
        "rvsd reports the MAC of the interface it drives"
    );
    let c = t.rvsd(0).counters();
    let replies: u64 = c.workers.iter().map(|w| w.icmp_echo_replies).sum();
    assert!(replies >= 5, "{replies} echo replies counted");
    assert!(
        c.workers
            .iter()
            .map(|w| w.arp_replies + w.arp_requests)
            .sum::<u64>()
            >= 1,
        "ARP took part"
    );
}

#[test]
fn traffic_to_addresses_rvsd_does_not_own_is_dropped_and_counted() {
    let (mut t, client, dir) = setup(1);
    // Nobody answers ARP for .99: the client's ARP is counted, not answered.
    assert!(!ping(&client, "198.18.0.99", 2));
    // Point .99 at the director's MAC: the IP packets reach rvsd, which does not own .99.
    client.run(&[
        "ip",
        "neigh",
        "replace",
        "198.18.0.99",
        "lladdr",
        &dir.mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    assert!(
        !ping(&client, "198.18.0.99", 3),
        "no reply for an address rvsd does not own"
    );
    // UDP to the director's own address, where nothing listens.
    client.run(&[
        "bash",
        "-c",
        "for i in 1 2; do echo x > /dev/udp/198.18.0.2/9; done",
    ]);
    let c = testkit::eventually("the drops counted", Duration::from_secs(10), || {
        let c = t.rvsd(0).counters();
        (c.drops("arp_not_ours") >= 1 && c.drops("not_local") >= 3 && c.drops("l4_unhandled") >= 2)
            .then_some(c)
    });
    assert!(
        c.drops("arp_not_ours") >= 1,
        "ARP for .99: {:?}",
        c.workers[0].drops
    );
    assert!(
        c.drops("not_local") >= 3,
        "pings to .99: {:?}",
        c.workers[0].drops
    );
    assert!(
        c.drops("l4_unhandled") >= 2,
        "UDP to the DIP: {:?}",
        c.workers[0].drops
    );
    // The same numbers through the CLI.
    let out = Command::new(RVSADM)
        .args(["--counters", "--socket"])
        .arg(&t.rvsd(0).socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("not_local")),
        "{text}"
    );
}

#[test]
fn two_workers_answer_through_their_own_queues() {
    let (mut t, client, _dir) = setup(2);
    assert!(ping(&client, "198.18.0.2", 5));
    // Sixteen more sources: the port's rx hash spreads flows over both queues (all on
    // one queue by chance: 2 in 65536).
    for i in 0..16 {
        let src = format!("198.18.0.{}", 160 + i);
        client.run(&["ip", "addr", "add", &format!("{src}/24"), "dev", "eth0"]);
        let ok = client
            .exec(&[
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                "-I",
                &src,
                "198.18.0.2",
            ])
            .status
            .success();
        assert!(ok, "ping from {src}");
    }
    let c = t.rvsd(0).counters();
    assert_eq!(c.workers.len(), 2);
    assert!(c.workers.iter().map(|w| w.icmp_echo_replies).sum::<u64>() >= 5 + 32);
    for (i, w) in c.workers.iter().enumerate() {
        assert!(
            w.icmp_echo_replies > 0,
            "worker {i} answered nothing: {:?}",
            c.workers
                .iter()
                .map(|w| w.icmp_echo_replies)
                .collect::<Vec<_>>()
        );
    }
    let status = t.rvsd(0).status();
    assert!(
        status.ports[0].device.contains("qpairs=2"),
        "{:?}",
        status.ports[0].device
    );
}

/// Free 2 MiB hugepages of the machine.
fn free_hugepages() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn sigterm_stops_cleanly() {
    let free_before = free_hugepages();
    let (mut t, client, _dir) = setup(1);
    assert!(ping(&client, "198.18.0.2", 1));
    // With enough free hugepages (256 MiB: 128) rvsd runs on them (hugepages: auto);
    // they must all come back when it stops.
    let used = free_before >= 128 && free_hugepages() < free_before;
    if free_before >= 128 {
        assert!(used, "hugepages were free but rvsd did not use them");
    }
    let st = t.rvsd(0).stop().expect("it was running");
    assert!(st.success(), "exit status {st}");
    let log = t.rvsd(0).log_text();
    assert!(
        log.contains("worker stopped") && log.contains("port stopped and closed"),
        "{log}"
    );
    // EAL memory released: every hugepage rvsd held is free again (and, private
    // memory, no hugepage file names it).
    testkit::eventually("hugepages returned", Duration::from_secs(5), || {
        (free_hugepages() >= free_before).then_some(())
    });
    let leftovers: Vec<_> = std::fs::read_dir("/dev/hugepages")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("rvst"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!t.rvsd(0).socket.exists(), "control socket removed");
}

#[test]
fn sighup_reload_applies_a_valid_file_and_rejects_a_broken_one() {
    let (mut t, client, _dir) = setup(1);
    let d = t.rvsd(0);
    let pid = d.pid().unwrap() as i32;
    let cfg = std::fs::read_to_string(&d.config).unwrap();
    // Add a second owned address and reload: it answers ping.
    std::fs::write(
        &d.config,
        cfg.replace(
            r#"["198.18.0.2/24"]"#,
            r#"["198.18.0.2/24", "198.18.0.3/24"]"#,
        ),
    )
    .unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    testkit::eventually("the reload applied", Duration::from_secs(10), || {
        (t.rvsd(0).status().generation >= 2).then_some(())
    });
    assert!(
        ping(&client, "198.18.0.3", 2),
        "the reloaded address answers"
    );
    // A broken file is rejected with file, line and key; the running config stays.
    let d = t.rvsd(0);
    std::fs::write(&d.config, cfg.replace("port: lan0 }", "port: lan7 }")).unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let log = testkit::eventually("the reload rejected", Duration::from_secs(10), || {
        let log = t.rvsd(0).log_text();
        log.contains("reload rejected").then_some(log)
    });
    assert!(
        log.contains("reload rejected") && log.contains("routes[0].port") && log.contains(":9:"),
        "{log}"
    );
    assert_eq!(t.rvsd(0).status().generation, 2);
    assert!(
        ping(&client, "198.18.0.3", 1),
        "still running the last good config"
    );
}

#[test]
fn a_port_that_cannot_start_fails_with_a_clear_message() {
    testkit::require_root();
    let dir = std::env::temp_dir().join(format!("rvst-badport-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.yaml");
    let text = config(1)
        .replace("iface=eth0", "iface=rvs-no-such-if")
        .replace("{SOCKET}", &dir.join("s.sock").display().to_string());
    std::fs::write(&cfg, text).unwrap();
    let start = std::time::Instant::now();
    let out = Command::new(RVSD)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        out.status.code(),
        Some(1),
        "an error exit, not a crash: {err}"
    );
    assert!(
        err.contains("rvsd: error:") && err.contains("net_af_packet0"),
        "{err}"
    );
    assert!(start.elapsed().as_secs() < 60, "no hang");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_rejects_a_broken_config_with_line_and_key() {
    let dir = std::env::temp_dir().join(format!("rvst-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, config(1)).unwrap();
    let out = Command::new(RVSD)
        .arg("--config")
        .arg(&good)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, config(1).replace("workers: 1,", "workers: lots,")).unwrap();
    let out = Command::new(RVSD)
        .arg("--config")
        .arg(&bad)
        .arg("--check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.yaml:3:") && err.contains("dataplane.workers"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_af_xdp_port_answers_too() {
    let mut t = Topology::new();
    let client = t.add_host("client", Some("198.18.0.1/24"));
    let dir = t.add_host("dir", None);
    t.start_rvsd(
        &dir,
        Path::new(RVSD),
        &config(1).replace("net_af_packet0,iface=eth0", "net_af_xdp0,iface=eth0"),
    );
    assert!(
        ping(&client, "198.18.0.2", 3),
        "ping through an AF_XDP port"
    );
    assert!(t.rvsd(0).status().ports[0]
        .device
        .starts_with("net_af_xdp0"));
}
