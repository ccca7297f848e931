//! The high-availability lab: two directors running rvsd with VRRP on one LAN, three NAT
//! real servers, and a client on the LAN's other subnet that reaches the VIP on-link (so
//! its ARP entry for the VIP is the one a router in front of the directors would hold).
//!
//! Addressing: client 198.18.1.1/24 (default route via the VRRP address 198.18.1.254);
//! director A 198.18.0.2 and 198.18.1.2, director B 198.18.0.3 and 198.18.1.3; a
//! keepalived peer, when a test adds one, 198.18.0.4 and 198.18.1.4; VIP 198.18.1.100;
//! real servers 198.18.0.11-13 whose default route is the VRRP address 198.18.0.254.
//! Every director's port has a kernel twin (lan0k), which VRRP's adverts use.

use crate::lab::{Mode, VIP};
use crate::net::{get_many, tally, v4, HttpServer};
use crate::{Host, Rvsd, Topology};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Far longer than any takeover in the tests (at most 3 × 1 s + skew), for a loaded
/// machine.
pub const TAKEOVER: Duration = Duration::from_secs(20);

/// The addresses VRRP moves: the service's VIP, the two gateways, and the FULLNAT local
/// address (whose replies must reach the MASTER).
pub const VIRTUAL: &str =
    "\"198.18.1.100/24\", \"198.18.1.254/24\", \"198.18.0.254/24\", \"198.18.0.5/24\"";
/// FULLNAT's local address, one of `VIRTUAL`.
pub const LIP: &str = "198.18.0.5";

pub struct HaLab {
    pub t: Topology,
    pub client: Host,
    /// Director A and B's namespaces.
    pub dirs: [Host; 2],
    pub rs: Vec<Host>,
    pub servers: Vec<HttpServer>,
    /// Which of the topology's rvsd each director runs now (None: stopped).
    running: [Option<usize>; 2],
}

/// The configuration of director `i` (0: A, 1: B) with `vrrp` (YAML of the
/// `vrrp_instances` list items and any other top-level sections, at column 0) and
/// `services` (list items indented by 2).
pub fn director_config(i: usize, vrrp: &str, services: &str) -> String {
    let d = 2 + i;
    format!(
        r#"
eal: {{ cores: "0-1", file_prefix: rvst-ha{i}, hugepages: auto, memory_mb: 256 }}
dataplane: {{ workers: 1, idle: adaptive, mbufs: 8191, rx_desc: 512, tx_desc: 512 }}
ipvs: {{ connections: 65536 }}
ports:
  - name: lan0
    device: "net_af_packet0,iface=eth0"
    addresses: ["198.18.0.{d}/24", "198.18.1.{d}/24"]
    kernel: {{ name: lan0k }}
control: {{ socket: "{{SOCKET}}" }}
services:
{services}
{vrrp}
"#
    )
}

/// One VRRP instance, VI_1 on lan0 (VRID 51) over `VIRTUAL`, as the YAML of a
/// `vrrp_instances` list; `extra` adds keys (indented by 4).
pub fn instance(priority: u8, version: u8, advert: &str, extra: &str) -> String {
    format!(
        "vrrp_instances:\n  - name: VI_1\n    interface: lan0\n    virtual_router_id: 51\n    priority: {priority}\n    version: {version}\n    advert_int: {advert}\n    virtual_ipaddress: [{VIRTUAL}]\n{extra}"
    )
}

/// A NAT service on the VIP over the three real servers.
pub fn nat_service() -> String {
    service("nat", "")
}

/// A service on the VIP over the three real servers with forwarding `fwd` and more
/// service keys (`extra`, indented by 4).
pub fn service(fwd: &str, extra: &str) -> String {
    let rs: String = (11..14)
        .map(|d| format!("      - {{ address: \"198.18.0.{d}:80\", forward: {fwd} }}\n"))
        .collect();
    format!("  - vip: \"{VIP}:80\"\n    scheduler: rr\n{extra}    real_servers:\n{rs}")
}

impl Default for HaLab {
    fn default() -> Self {
        Self::new()
    }
}

impl HaLab {
    pub fn new() -> HaLab {
        Self::with_mode(Mode::Nat)
    }

    /// The lab with real servers set up for `mode` (NAT and FULLNAT: default route via
    /// the VRRP address 198.18.0.254; DR: the VIP on loopback and the client's subnet
    /// on-link, as `lab::real_server_hosts` does).
    pub fn with_mode(mode: Mode) -> HaLab {
        let mut t = Topology::new();
        let client = t.add_host("client", Some("198.18.1.1/24"));
        client.run(&["ip", "route", "add", "default", "via", "198.18.1.254"]);
        let dirs = [t.add_host("dira", None), t.add_host("dirb", None)];
        let rs = crate::lab::real_server_hosts(&mut t, mode);
        for h in &rs {
            h.run(&["ip", "route", "replace", "default", "via", "198.18.0.254"]);
        }
        let servers = rs
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let bind = if mode == Mode::Dr {
                    "0.0.0.0".to_string()
                } else {
                    format!("198.18.0.{}", 11 + i)
                };
                HttpServer::start(&h.ns, crate::net::v4(&bind, 80), &format!("rs{}", i + 1))
            })
            .collect();
        HaLab {
            t,
            client,
            dirs,
            rs,
            servers,
            running: [None, None],
        }
    }

    /// A host for a keepalived peer on the LAN: 198.18.0.4/24 and 198.18.1.4/24.
    pub fn add_peer(&mut self) -> Host {
        let h = self.t.add_host("ka", Some("198.18.0.4/24"));
        h.run(&["ip", "addr", "add", "198.18.1.4/24", "dev", "eth0"]);
        h
    }

    /// Starts rvsd on director `i` with `config`.
    pub fn start(&mut self, i: usize, rvsd: &Path, config: &str) {
        let host = self.dirs[i].clone();
        self.t.start_rvsd(&host, rvsd, config);
        self.running[i] = Some(self.t.daemons_len() - 1);
    }

    /// Director `i`'s running rvsd.
    pub fn rvsd(&self, i: usize) -> &Rvsd {
        self.t.rvsd_ref(self.running[i].expect("director running"))
    }

    /// `kill -9` of director `i`'s rvsd: no priority 0, no goodbye.
    pub fn kill(&mut self, i: usize) {
        let n = self.running[i].take().expect("director running");
        self.t.rvsd(n).kill();
    }

    /// A graceful stop (SIGTERM): a MASTER sends priority 0 first.
    pub fn stop(&mut self, i: usize) {
        let n = self.running[i].take().expect("director running");
        let st = self.t.rvsd(n).stop();
        assert!(st.is_some_and(|s| s.success()), "rvsd stopped with {st:?}");
    }

    /// The MAC the client's kernel holds for `ip` (its neighbour entry), if any.
    pub fn client_mac_for(&self, ip: &str) -> Option<String> {
        let out = self.client.run(&["ip", "neigh", "show", ip, "dev", "eth0"]);
        let f: Vec<&str> = out.split_whitespace().collect();
        f.iter()
            .position(|w| *w == "lladdr")
            .and_then(|k| f.get(k + 1))
            .map(|m| m.to_string())
    }

    /// The client reaches the service: `n` fresh requests, none failing.
    pub fn serves(&self, n: usize) {
        let m = tally(&get_many(&self.client.ns, v4(VIP, 80), n));
        assert_eq!(m.values().sum::<usize>(), n, "{m:?}");
    }

    /// The MACs that answer the client's ARP requests for `ip` (arping, broadcasting
    /// every request so that every responder is heard).
    pub fn arp_responders(&self, ip: &str) -> BTreeSet<String> {
        // Two broadcast requests a second apart. arping exits 1 when nobody answers
        // (the empty set), 2 when it could not run.
        let out = self
            .client
            .exec(&["arping", "-b", "-c", "2", "-w", "3", "-I", "eth0", ip]);
        assert_ne!(
            out.status.code(),
            Some(2),
            "arping: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("reply from"))
            .filter_map(|l| {
                let (_, rest) = l.split_once('[')?;
                Some(rest.split_once(']')?.0.to_lowercase())
            })
            .collect()
    }

    /// Whether the client's ping of `ip` sent to `mac` (a permanent neighbour entry)
    /// is answered. The entry is removed afterwards.
    pub fn ping_via(&self, ip: &str, mac: &str) -> bool {
        self.client.run(&[
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        let ok = self
            .client
            .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", ip])
            .status
            .success();
        self.client.run(&["ip", "neigh", "del", ip, "dev", "eth0"]);
        ok
    }

    /// The MAC of director `i`'s port (its kernel twin carries the same).
    pub fn mac_of(&self, i: usize) -> String {
        self.dirs[i].mac.clone()
    }
}

/// Every VRRP instance of `d`, as `rvsadm --vrrp` shows them.
pub fn instances(d: &Rvsd) -> Vec<ctrlplane::vrrp::InstanceStatus> {
    match ctrlplane::ctl::call(&d.socket, &ctrlplane::ctl::Request::Vrrp) {
        Ok(ctrlplane::ctl::Response::Vrrp { instances }) => instances,
        other => panic!("vrrp: {other:?}"),
    }
}

/// The state word (MASTER, BACKUP, FAULT, INIT) of `d`'s first instance.
pub fn state(d: &Rvsd) -> String {
    instances(d)
        .first()
        .map(|i| i.state.word().to_string())
        .unwrap_or_default()
}
