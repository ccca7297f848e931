use super::*;
use dataplane::ipvs::conn::Fwd;
use dataplane::ipvs::sched::SchedKind;
use dataplane::ipvs::service::Proto;
use std::net::Ipv4Addr;
use std::path::PathBuf;

const GOOD: &str = r#"
eal: { cores: "0-1", file_prefix: rvs, hugepages: auto }
dataplane: { workers: 1, burst: 32, idle: adaptive }
ports:
  - name: lan0
    device: "net_af_packet0,iface=veth-d"
    addresses: ["198.18.0.2/24"]
routes:
  - { prefix: "0.0.0.0/0", via: "198.18.0.1", port: lan0 }
neighbours:
  - { address: "198.18.0.1", mac: "02:00:00:00:00:01", port: lan0 }
control: { socket: /run/rvs/rvsd.sock }
"#;

/// A positioned error: ((line, column), key, message).
fn err_of(text: &str) -> ((usize, usize), String, String) {
    match Config::parse(text, "t.yaml") {
        Err(ConfigError::Invalid {
            line,
            column,
            key,
            message,
            ..
        }) => ((line, column), key, message),
        other => panic!("expected a positioned error, got {other:?}"),
    }
}

/// The 1-based (line, column) where `token` starts in `text`: the token an error must
/// point at. `token` may carry context after it to make it unique.
fn pos_of(text: &str, token: &str) -> (usize, usize) {
    let i = text
        .find(token)
        .unwrap_or_else(|| panic!("{token:?} is not in the text"));
    assert_eq!(text.matches(token).count(), 1, "{token:?} is ambiguous");
    let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
    (text[..i].matches('\n').count() + 1, i - line_start + 1)
}

#[test]
fn positions_are_counted_from_one() {
    assert_eq!(pos_of("a: 1\nb: [x, y]\n", "y]"), (2, 8));
    assert_eq!(pos_of("a: 1\n", "a:"), (1, 1));
}

#[test]
fn the_issue_example_parses() {
    let c = Config::parse(GOOD, "t.yaml").unwrap();
    assert_eq!(c.ports[0].addresses[0].0.to_string(), "198.18.0.2/24");
    assert_eq!(c.routes[0].via.unwrap().0, Ipv4Addr::new(198, 18, 0, 1));
    assert_eq!(c.dataplane.idle, IdlePolicy::Adaptive);
    assert_eq!(c.cpus(), vec![0, 1]);
    assert_eq!(c.neighbours[0].mac.0.to_string(), "02:00:00:00:00:01");
}

#[test]
fn defaults_fill_missing_sections() {
    let c = Config::parse("ports: [{ name: p, device: net_null0 }]\n", "t.yaml").unwrap();
    assert_eq!(c.dataplane.workers, 1);
    assert_eq!(c.eal.hugepages, Hugepages::Auto);
    assert_eq!(c.control.socket, PathBuf::from("/run/rvs/rvsd.sock"));
}

/// Type errors (found by serde) point at the offending value, or at an unknown key.
#[test]
fn type_errors_name_line_and_key() {
    let t = GOOD.replace("workers: 1", "workers: many");
    let (pos, key, msg) = err_of(&t);
    assert_eq!((pos, key.as_str()), ((3, 23), "dataplane.workers"));
    assert_eq!(pos, pos_of(&t, "many"));
    assert!(msg.contains("invalid type"), "{msg}");
    let t = GOOD.replace("    device:", "    devise:");
    let (pos, key, msg) = err_of(&t);
    assert_eq!((pos, key.as_str()), ((6, 5), "ports[0]"));
    assert_eq!(pos, pos_of(&t, "devise:"));
    assert!(msg.contains("devise"), "{msg}");
    let t = GOOD.replace("198.18.0.2/24", "198.18.0.2/33");
    let (pos, key, msg) = err_of(&t);
    assert_eq!((pos, key.as_str()), ((7, 17), "ports[0].addresses[0]"));
    assert_eq!(pos, pos_of(&t, "\"198.18.0.2/33\""));
    assert!(msg.contains("198.18.0.2/33"), "{msg}");
    // Values checked as they are read (addresses, MACs, endpoints): at the value, in
    // flow and block mappings alike.
    let t = GOOD.replace("02:00:00:00:00:01", "02:00:00:00:00:0g");
    let (pos, key, msg) = err_of(&t);
    assert_eq!(
        (pos, key.as_str()),
        ((11, 35), "neighbours[0].mac"),
        "{msg}"
    );
    assert_eq!(pos, pos_of(&t, "\"02:00:00:00:00:0g\""));
    let t = SVC.replace("0.13:8443", "0.13:84x3");
    let (pos, key, msg) = err_of(&t);
    assert_eq!(
        (pos, key.as_str()),
        ((11, 20), "services[0].real_servers[2].address"),
        "{msg}"
    );
    assert_eq!(pos, pos_of(&t, "\"198.18.0.13:84x3\""));
    assert!(msg.contains("198.18.0.13:84x3"), "{msg}");
    let t = SVC.replace("vip: \"198.18.1.100:80\"", "vip: \"198.18.1.100:http\"");
    let (pos, key, msg) = err_of(&t);
    assert_eq!((pos, key.as_str()), ((5, 10), "services[0].vip"), "{msg}");
    assert_eq!(pos, pos_of(&t, "\"198.18.1.100:http\""));
}

/// Errors found after parsing (validation) point at the key they name.
#[test]
fn reference_errors_name_line_and_key() {
    let cases = [
        (
            GOOD.replace("port: lan0 }\nneighbours", "port: lan9 }\nneighbours"),
            "routes[0].port",
            (9, 47),
            "port: lan9",
        ),
        (
            GOOD.replace("via: \"198.18.0.1\"", "via: \"198.19.0.1\""),
            "routes[0].via",
            (9, 28),
            "via: \"198.19.0.1\"",
        ),
        (
            GOOD.replace("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff"),
            "neighbours[0].mac",
            (11, 30),
            "mac: \"ff:ff:ff:ff:ff:ff\"",
        ),
        (
            GOOD.replace("cores: \"0-1\"", "cores: \"1-0\""),
            "eal.cores",
            (2, 8),
            "cores: \"1-0\"",
        ),
        (
            GOOD.replace("workers: 1", "workers: 0"),
            "dataplane.workers",
            (3, 14),
            "workers: 0",
        ),
    ];
    for (text, key, pos, token) in cases {
        let (p, k, msg) = err_of(&text);
        assert_eq!((p, k.as_str()), (pos, key), "{msg}");
        assert_eq!(p, pos_of(&text, token), "{key}");
        if key == "routes[0].port" {
            assert!(msg.contains("lan9") && msg.contains("lan0"), "{msg}");
        }
    }
}

#[test]
fn duplicates_are_rejected() {
    let two = GOOD.replace(
        "routes:",
        "  - name: lan0\n    device: \"net_af_packet1,iface=veth-e\"\n    addresses: [\"198.18.0.2/24\"]\nroutes:",
    );
    let (pos, key, msg) = err_of(&two);
    assert_eq!((pos, key.as_str()), ((8, 5), "ports[1].name"));
    assert_eq!(
        pos,
        pos_of(&two, "name: lan0\n    device: \"net_af_packet1")
    );
    assert!(msg.contains("twice"), "{msg}");
}

/// A syntax error (found by the YAML parser) points at the offending token.
fn syntax_err_of(text: &str) -> ((usize, usize), String, String) {
    let e = Config::parse(text, "t.yaml").expect_err("a syntax error");
    match &e {
        ConfigError::Invalid {
            line, column, key, ..
        } => ((*line, *column), key.clone(), e.to_string()),
        other => panic!("expected a positioned error, got {other:?}"),
    }
}

#[test]
fn syntax_errors_are_positioned() {
    // A block sequence entry inside a flow sequence: the `-` is the offending token.
    let t = "ports: [\n  - name: x\n";
    let (pos, key, e) = syntax_err_of(t);
    assert!(e.starts_with("t.yaml:"), "{e}");
    assert_eq!(pos, (2, 3), "{e}");
    assert_eq!(pos, pos_of(t, "- name"), "{e}");
    assert_eq!(key, "(document)", "{e}");
    assert!(e.starts_with("t.yaml:2:3: (document): "), "{e}");
    // A flow mapping closed by `]`.
    let t = GOOD.replace("idle: adaptive }", "idle: adaptive ]");
    let (pos, key, e) = syntax_err_of(&t);
    assert_eq!(pos, (3, 52), "{e}");
    assert_eq!(pos, pos_of(&t, "]\nports"), "{e}");
    assert_eq!(key, "(document)", "{e}");
    assert!(e.starts_with("t.yaml:3:52: (document): "), "{e}");
}

#[test]
fn af_packet_gets_a_queue_pair_per_worker() {
    let mut c = Config::parse(GOOD, "t.yaml").unwrap();
    assert_eq!(c.eal_device(&c.ports[0]), "net_af_packet0,iface=veth-d");
    c.dataplane.workers = 2;
    assert_eq!(
        c.eal_device(&c.ports[0]),
        "net_af_packet0,iface=veth-d,qpairs=2"
    );
}

#[test]
fn cpu_lists() {
    assert_eq!(parse_cpu_list("0-1").unwrap(), vec![0, 1]);
    assert_eq!(parse_cpu_list("0,2-3").unwrap(), vec![0, 2, 3]);
    for bad in ["", "a", "3-1", "0-", "0,,1"] {
        assert!(parse_cpu_list(bad).is_err(), "{bad}");
    }
}

#[test]
fn saved_yaml_loads_back_identically() {
    let c = Config::parse(GOOD, "t.yaml").unwrap();
    let text = serde_yaml::to_string(&c).unwrap();
    assert_eq!(Config::parse(&text, "saved.yaml").unwrap(), c);
}

const SVC: &str = r#"
ports:
  - { name: lan0, device: net_null0, addresses: ["198.18.0.2/24", "198.18.1.2/24"] }
services:
  - vip: "198.18.1.100:80"
    scheduler: wrr
    local_addresses: ["198.18.0.3"]
    real_servers:
      - { address: "198.18.0.11:8080", forward: nat, weight: 3 }
      - { address: "198.18.0.12", forward: dr }
      - { address: "198.18.0.13:8443", forward: fullnat }
"#;

#[test]
fn services_parse_with_defaults() {
    let c = Config::parse(SVC, "s.yaml").unwrap();
    let s = &c.services[0];
    assert_eq!(
        (s.vip.addr, s.vip.port, s.protocol, s.scheduler),
        (
            Ipv4Addr::new(198, 18, 1, 100),
            80,
            Proto::Tcp,
            SchedKind::Wrr
        )
    );
    assert_eq!(s.real_servers[1].address.port, 0, "no port: the service's");
    assert_eq!(s.real_servers[1].weight, 1);
    assert_eq!(s.real_servers[0].forward, Fwd::Nat);
    assert_eq!(c.ipvs.connections, 1 << 20);
    let c2 = Config::parse(&SVC.replace("    scheduler: wrr\n", ""), "s.yaml").unwrap();
    assert_eq!(
        c2.services[0].scheduler,
        SchedKind::Wlc,
        "wlc is the default, as in ipvsadm"
    );
    let masq = Config::parse(&SVC.replace("forward: nat", "forward: masq"), "s.yaml").unwrap();
    assert_eq!(
        masq.services[0].real_servers[0].forward,
        Fwd::Nat,
        "ipvsadm's names are accepted"
    );
}

#[test]
fn service_errors_name_line_and_key() {
    // (text, key, position, the token at that position)
    let cases: Vec<(String, &str, (usize, usize), &str)> = vec![
        (
            SVC.replace("1.100:80\"", "1.100:0\""),
            "services[0].vip",
            (5, 5),
            "vip: \"198.18.1.100:0\"",
        ),
        (
            // A missing key: the service's mapping, which starts at its first key.
            SVC.replace("    local_addresses: [\"198.18.0.3\"]\n", ""),
            "services[0].local_addresses",
            (5, 5),
            "vip:",
        ),
        (
            SVC.replace(
                "\"198.18.0.12\", forward: dr",
                "\"198.19.0.12\", forward: dr",
            ),
            "services[0].real_servers[1].address",
            (10, 11),
            "address: \"198.19.0.12\"",
        ),
        (
            SVC.replace(
                "\"198.18.0.12\", forward: dr",
                "\"198.18.0.12:81\", forward: dr",
            ),
            "services[0].real_servers[1].address",
            (10, 11),
            "address: \"198.18.0.12:81\"",
        ),
        (
            SVC.replace("0.13:8443", "0.11:8080"),
            "services[0].real_servers[2].address",
            (11, 11),
            "address: \"198.18.0.11:8080\", forward: fullnat",
        ),
        (
            SVC.replace("scheduler: wrr", "scheduler: wrr\n    flags: [sh-nonsense]"),
            "services[0].flags",
            (7, 5),
            "flags:",
        ),
        (
            SVC.replace("1.100:80", "1.2:80"),
            "services[0].vip",
            (5, 5),
            "vip: \"198.18.1.2:80\"",
        ),
    ];
    for (text, key, pos, token) in cases {
        let (p, k, m) = err_of(&text);
        assert_eq!((k.as_str(), p), (key, pos), "{m}");
        assert_eq!(p, pos_of(&text, token), "{key}: {m}");
    }
    // Type errors come from serde with their path, at the offending value.
    let t = SVC.replace("scheduler: wrr", "scheduler: fastest");
    let (p, k, m) = err_of(&t);
    assert!(k.starts_with("services[0]"), "{k}: {m}");
    assert_eq!(k, "services[0].scheduler", "{m}");
    assert_eq!(p, (6, 16), "{k}: {m}");
    assert_eq!(p, pos_of(&t, "fastest"), "{k}: {m}");
    assert!(
        m.contains("fastest") || m.contains("unknown variant"),
        "{m}"
    );
}

#[test]
fn duplicate_services_are_rejected() {
    let dup = SVC.to_string() + "  - vip: \"198.18.1.100:80\"\n    real_servers: []\n";
    let (p, k, m) = err_of(&dup);
    assert_eq!(k, "services[1].vip", "{m}");
    assert_eq!(p, (12, 5), "{m}");
    assert_eq!(
        p,
        pos_of(&dup, "vip: \"198.18.1.100:80\"\n    real_servers: []")
    );
}

#[test]
fn a_kernel_twin_is_placed_after_the_ports_and_its_name_checked() {
    let t = GOOD.replace(
        "    addresses: [\"198.18.0.2/24\"]\n",
        "    addresses: [\"198.18.0.2/24\"]\n    kernel: { name: lan0k }\n",
    );
    let c = Config::parse(&t, "t.yaml").unwrap();
    assert_eq!(c.io_ports(), 2);
    assert_eq!(c.kernel_index(0), Some(1));
    let k = c.ports[0].kernel.as_ref().unwrap();
    assert_eq!(c.kernel_device(k), "net_tap_lan0k,iface=lan0k");
    // The snapshot's port knows its twin.
    let hw = [crate::snapshot::PortHw {
        mac: dataplane::packet::MacAddr([2, 0, 0, 0, 0, 1]),
        mtu: 1500,
    }];
    assert_eq!(crate::snapshot::build(&c, &hw).net.kernel_of(0), Some(1));
    // A name Linux would refuse, pointed at.
    let bad = t.replace("name: lan0k", "name: a-name-far-too-long");
    let (pos, key, msg) = err_of(&bad);
    assert_eq!(key, "ports[0].kernel.name", "{msg}");
    assert_eq!(pos, pos_of(&bad, "name: a-name-far-too-long"), "{msg}");
    assert!(msg.contains("1 to 15"), "{msg}");
    // Adding a twin is a restart, not a reload.
    let plain = Config::parse(GOOD, "t.yaml").unwrap();
    assert!(crate::snapshot::restart_needed(&plain, &c).is_some());
}

#[test]
fn vrrp_and_sync_errors_name_line_and_key() {
    let base =
        "ports:\n  - name: lan0\n    device: net_null0\n    addresses: [\"198.18.0.2/24\"]\n";
    let inst = "vrrp_instances:\n  - name: VI_1\n    interface: lan0\n    virtual_router_id: 51\n    version: 3\n    advert_int: 50\n    virtual_ipaddress: [\"198.18.0.100/24\"]\n";
    // No kernel twin on lan0: VRRP's adverts need the exception path.
    let t = format!("{base}{inst}");
    let (p, k, m) = err_of(&t);
    assert_eq!(k, "vrrp_instances[0].interface", "{m}");
    assert_eq!(p, pos_of(&t, "interface: lan0"), "{m}");
    assert!(m.contains("kernel twin"), "{m}");
    // With the twin: v3's interval is at most 40.95 s.
    let twin = base.replace("addresses:", "kernel: { name: lan0k }\n    addresses:");
    let t = format!("{twin}{inst}");
    let (p, k, m) = err_of(&t);
    assert_eq!(
        (k.as_str(), p),
        ("vrrp_instances[0].advert_int", pos_of(&t, "advert_int: 50")),
        "{m}"
    );
    // The sync daemon must name an instance that exists.
    let t = format!(
        "{twin}{}lvs_sync_daemon: {{ interface: lan0, vrrp_instance: VI_9 }}\n",
        inst.replace("advert_int: 50", "advert_int: 0.1")
    );
    let (_, k, m) = err_of(&t);
    assert_eq!(k, "lvs_sync_daemon.vrrp_instance", "{m}");
    assert!(m.contains("VI_9"), "{m}");
}
