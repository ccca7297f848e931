//! The kernel exception path end to end: rvsd on net_af_packet with a net_tap kernel
//! twin (`kernel: { name: lan0k }`) in the director's namespace. The twin carries the
//! director's own addresses, so the director's kernel serves and connects as any host
//! would - through rvs - while the VIP stays rvs's.

use testkit::lab::{lab_port, rs_list, Lab, Mode, VIP};
use testkit::net::{get_many, tally, v4, HttpServer};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

fn kernel_lab(workers: usize) -> Lab {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{}",
        rs_list("nat", &[1, 1, 1])
    );
    let l = lab_port(
        std::path::Path::new(RVSD),
        Mode::Nat,
        &svc,
        workers,
        "    kernel: { name: lan0k }\n",
    );
    // rvsd gave the twin the port's addresses before it answered on its socket.
    let addrs = l
        .dir
        .run(&["ip", "-4", "-o", "addr", "show", "dev", "lan0k"]);
    for a in ["198.18.0.2/24", "198.18.1.2/24"] {
        assert!(addrs.contains(a), "lan0k lacks {a}: {addrs}");
    }
    let mac = |dev: &str| {
        l.dir
            .run(&["cat", &format!("/sys/class/net/{dev}/address")])
    };
    assert_eq!(mac("lan0k"), mac("eth0"), "the twin has the port's MAC");
    l
}

fn the_directors_kernel_serves_and_connects_through_rvs(workers: usize) {
    let mut l = kernel_lab(workers);
    // A server on the director's kernel, at the DIP, reached from the client.
    let _kernel_server = HttpServer::start(&l.dir.ns, v4("198.18.1.2", 8080), "director");
    let m = tally(&get_many(&l.client.ns, v4("198.18.1.2", 8080), 20));
    assert_eq!(m.get("director"), Some(&20), "{m:?}");
    // The director's kernel reaches a real server (its checks will), sourced from the DIP.
    let m = tally(&get_many(&l.dir.ns, v4("198.18.0.11", 80), 10));
    assert_eq!(m.get("rs1"), Some(&10), "{m:?}");
    let peers = l.servers[0].peers.lock().unwrap().clone();
    assert!(
        !peers.is_empty() && peers.iter().all(|p| p.ip().to_string() == "198.18.0.2"),
        "{peers:?}"
    );
    // ping from the kernel: the echo replies go up.
    let ping = l
        .dir
        .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.0.12"]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    // The VIP is still rvs's alone.
    // Every worker schedules rr on its own copy: within one per worker of even.
    let m = tally(&get_many(&l.client.ns, v4(VIP, 80), 30));
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m.values().all(|n| n.abs_diff(10) <= workers), "{m:?}");
    let c = l.t.rvsd(0).counters();
    let up: u64 = c.workers.iter().map(|w| w.to_kernel).sum();
    let down: u64 = c.workers.iter().map(|w| w.from_kernel).sum();
    // 20 requests in and 10 out, at least 3 segments each way apiece, and the pings.
    assert!(up >= 30 * 3 + 2, "to the kernel: {up}");
    assert!(down >= 30 * 3 + 2, "from the kernel: {down}");
}

#[test]
fn the_directors_kernel_serves_and_connects_through_rvs_1_worker() {
    the_directors_kernel_serves_and_connects_through_rvs(1);
}

#[test]
fn the_directors_kernel_serves_and_connects_through_rvs_2_workers() {
    the_directors_kernel_serves_and_connects_through_rvs(2);
}

/// A reload moves the twin's addresses with the port's, and keeps the rest.
#[test]
fn a_reload_moves_the_kernel_twins_addresses() {
    let l = kernel_lab(1);
    let d = l.t.rvsd_ref(0);
    let text = std::fs::read_to_string(&d.config).unwrap().replace(
        "\"198.18.0.2/24\", \"198.18.1.2/24\"",
        "\"198.18.0.2/24\", \"198.18.1.2/24\", \"198.18.0.9/24\"",
    );
    d.reload(&text);
    let addrs = l
        .dir
        .run(&["ip", "-4", "-o", "addr", "show", "dev", "lan0k"]);
    assert!(addrs.contains("198.18.0.9/24"), "{addrs}");
    let _s = HttpServer::start(&l.dir.ns, v4("198.18.0.9", 8080), "new-address");
    let m = tally(&get_many(&l.rs[0].ns, v4("198.18.0.9", 8080), 3));
    assert_eq!(m.get("new-address"), Some(&3), "{m:?}");
}
