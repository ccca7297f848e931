//! The LVS lab of the end-to-end tests and benchmarks: a client, a director running rvsd
//! on net_af_packet, and three kernel real servers answering HTTP with their names.
//!
//! Addressing (one bridge, two subnets): client 198.18.1.1/24 (default route via the
//! director's 198.18.1.2), VIP 198.18.1.100, real servers 198.18.0.11-13/24, director
//! 198.18.0.2/24 on the server side, FULLNAT local address 198.18.0.3.

use crate::net::{v4, HttpServer};
use crate::{Host, Topology};
use std::path::Path;

pub const VIP: &str = "198.18.1.100";

/// How the real servers are set up.
pub struct Lab {
    pub t: Topology,
    pub client: Host,
    /// The director's namespace (rvsd runs there; its kernel twin too, when asked).
    pub dir: Host,
    pub rs: Vec<Host>,
    pub servers: Vec<HttpServer>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Nat,
    Dr,
    FullNat,
}

/// Adds the three real servers rs1-3 (198.18.0.11-13), set up for `mode`, each answering
/// HTTP on port 80 with its name.
pub fn real_servers(t: &mut Topology, mode: Mode) -> (Vec<Host>, Vec<HttpServer>) {
    let rs = real_server_hosts(t, mode);
    let servers = rs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let bind = if mode == Mode::Dr {
                v4("0.0.0.0", 80)
            } else {
                v4(&format!("198.18.0.{}", 11 + i), 80)
            };
            HttpServer::start(&h.ns, bind, &format!("rs{}", i + 1))
        })
        .collect();
    (rs, servers)
}

/// The hosts of `real_servers`, addressed and routed for `mode`, with nothing listening
/// yet (a benchmark puts its own web server there).
pub fn real_server_hosts(t: &mut Topology, mode: Mode) -> Vec<Host> {
    let mut rs = Vec::new();
    for i in 0..3 {
        let h = t.add_host(
            &format!("rs{}", i + 1),
            Some(&format!("198.18.0.{}/24", 11 + i)),
        );
        match mode {
            Mode::Nat => {
                h.run(&["ip", "route", "add", "default", "via", "198.18.0.2"]);
            }
            Mode::Dr => {
                // The VIP on loopback, never announced: the classic LVS-DR real server.
                for (k, v) in [
                    ("all.arp_ignore", "1"),
                    ("all.arp_announce", "2"),
                    ("eth0.arp_ignore", "1"),
                    ("eth0.arp_announce", "2"),
                ] {
                    h.run(&["sysctl", "-qw", &format!("net.ipv4.conf.{k}={v}")]);
                }
                h.run(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
                h.run(&["ip", "route", "add", "198.18.1.0/24", "dev", "eth0"]);
            }
            Mode::FullNat => {} // no route to the client subnet at all
        }
        rs.push(h);
    }
    rs
}

/// Builds the topology, configures the real servers for `mode` and starts `rvsd` with
/// `services` (YAML list items, indented by 2) and `workers`.
pub fn lab(rvsd: &Path, mode: Mode, services: &str, workers: usize) -> Lab {
    lab_port(rvsd, mode, services, workers, "")
}

/// `lab` with more keys for the director's port (YAML lines indented by 4).
pub fn lab_port(rvsd: &Path, mode: Mode, services: &str, workers: usize, port: &str) -> Lab {
    let mut t = Topology::new();
    let client = t.add_host("client", Some("198.18.1.1/24"));
    client.run(&["ip", "route", "add", "default", "via", "198.18.1.2"]);
    let dir = t.add_host("dir", None);
    let (rs, servers) = real_servers(&mut t, mode);
    let cfg = format!(
        r#"
eal: {{ cores: "0-1", file_prefix: rvst, hugepages: auto, memory_mb: 256 }}
dataplane: {{ workers: {workers}, idle: adaptive, mbufs: 8191, rx_desc: 512, tx_desc: 512 }}
ipvs: {{ connections: 65536 }}
ports:
  - name: lan0
    device: "net_af_packet0,iface=eth0"
    addresses: ["198.18.0.2/24", "198.18.1.2/24"]
{port}control: {{ socket: "{{SOCKET}}" }}
services:
{services}
"#
    );
    t.start_rvsd(&dir, rvsd, &cfg);
    Lab {
        t,
        client,
        dir,
        rs,
        servers,
    }
}

/// YAML real-server items for 198.18.0.11.. with `fwd` and these weights.
pub fn rs_list(fwd: &str, weights: &[u32]) -> String {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            format!(
                "      - {{ address: \"198.18.0.{}:80\", forward: {fwd}, weight: {w} }}\n",
                11 + i
            )
        })
        .collect()
}
