//! The director every throughput figure is measured on: one virtual service at
//! 198.18.1.100:80 over four real servers, a client-side port and a server-side port.
//! `rvs-bench` runs it in rvsd on DPDK vdevs; the `worker_path` micro-benchmark runs the
//! same configuration in a bare worker. One definition, so both measure the same thing.

use crate::trace::{Profile, TraceSpec};
use dataplane::packet::MacAddr;
use std::net::Ipv4Addr;

/// The MAC of the first net_pcap port: frames of the trace are addressed to it.
pub const PORT_MAC: MacAddr = MacAddr([2, 0x70, 0x63, 0x61, 0x70, 0]);

/// A trace of `profile` towards the benchmark's service (64-byte frames, seed 1).
pub fn spec(profile: Profile, flows: u32, rounds: u32) -> TraceSpec {
    TraceSpec {
        profile,
        flows,
        rounds,
        size: 64,
        seed: 1,
        vip: Ipv4Addr::new(198, 18, 1, 100),
        vport: 80,
        servers: (11..15)
            .map(|d| (Ipv4Addr::new(198, 18, 0, d), 80))
            .collect(),
        dst_mac: PORT_MAC,
        src_mac: MacAddr([2, 0, 0, 0, 0, 0xc1]),
    }
}

/// The MAC of the second net_pcap port (the warm-up port): net_pcap numbers its ports'
/// MACs in creation order.
pub const WARM_PORT_MAC: MacAddr = MacAddr([2, 0x70, 0x63, 0x61, 0x70, 1]);

/// rvsd's configuration: `head` (eal, dataplane, ...) followed by the ports on the given
/// devices (and a warm-up port, whose SYNs open the connections before the measured
/// trace's data segments), the real servers' neighbours, and one rr service forwarding
/// by `mode` (dr, tun, nat, fullnat; `none` for no service at all).
pub fn director_yaml(
    head: &str,
    mode: &str,
    in_device: &str,
    out_device: &str,
    warm_device: Option<&str>,
) -> String {
    let laddr = if mode == "fullnat" {
        "    local_addresses: [\"198.18.0.3\", \"198.18.0.4\", \"198.18.0.5\", \"198.18.0.6\"]\n"
    } else {
        ""
    };
    let servers: String = (11..15)
        .map(|d| format!("      - {{ address: \"198.18.0.{d}:80\", forward: {mode} }}\n"))
        .collect();
    let neigh: String = (11..15)
        .map(|d| {
            format!(
                "  - {{ address: \"198.18.0.{d}\", mac: \"02:00:00:00:00:{d}\", port: out0 }}\n"
            )
        })
        .collect();
    let services = if mode == "none" {
        "services: []\n".to_string()
    } else {
        format!(
            "services:\n  - vip: \"198.18.1.100:80\"\n    scheduler: rr\n{laddr}    real_servers:\n{servers}"
        )
    };
    let warm = warm_device
        .map(|d| {
            format!("  - {{ name: warm0, device: \"{d}\", addresses: [\"198.18.2.2/24\"] }}\n")
        })
        .unwrap_or_default();
    format!(
        r#"{head}ports:
  - {{ name: in0, device: "{in_device}", addresses: ["198.18.1.2/24"] }}
  - {{ name: out0, device: "{out_device}", addresses: ["198.18.0.2/24"] }}
{warm}neighbours:
{neigh}{services}"#
    )
}
