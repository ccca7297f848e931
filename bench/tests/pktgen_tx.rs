//! rvs-pktgen --tx puts the trace on a real DPDK port: sent through net_pcap's tx_pcap,
//! the file holds exactly the generated frames, in order, cycling.

use rvs_bench::trace::{generate, Profile, TraceSpec};
use std::process::Command;

#[test]
fn frames_on_the_port_are_the_trace() {
    let dir = std::env::temp_dir().join(format!("rvs-pktgen-tx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("tx.pcap");
    let o = Command::new(env!("CARGO_BIN_EXE_rvs-pktgen"))
        .args([
            "--profile",
            "udp",
            "--flows",
            "10",
            "--rounds",
            "5",
            "--size",
            "128",
            "--seed",
            "3",
            "--count",
            "120",
            "--tx",
        ])
        .arg(format!("net_pcap0,tx_pcap={}", out.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("sent 120 frames"), "{text}");
    let got = dataplane::packet::pcap::read(&mut std::fs::File::open(&out).unwrap()).unwrap();
    let spec = TraceSpec {
        profile: Profile::Udp,
        flows: 10,
        rounds: 5,
        size: 128,
        seed: 3,
        vip: "198.18.1.100".parse().unwrap(),
        vport: 80,
        servers: vec![],
        dst_mac: "02:70:63:61:70:00".parse().unwrap(),
        src_mac: "02:00:00:00:00:c1".parse().unwrap(),
    };
    let mut want = Vec::new();
    generate(&spec, |f| want.push(f.to_vec()));
    assert_eq!(want.len(), 50);
    let cycled: Vec<Vec<u8>> = want.iter().cycle().take(120).cloned().collect();
    assert_eq!(got, cycled);
    let _ = std::fs::remove_dir_all(&dir);
}
