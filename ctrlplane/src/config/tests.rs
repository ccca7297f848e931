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

fn err_of(text: &str) -> (usize, String, String) {
    match Config::parse(text, "t.yaml") {
        Err(ConfigError::Invalid {
            line, key, message, ..
        }) => (line, key, message),
        other => panic!("expected a positioned error, got {other:?}"),
    }
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

#[test]
fn type_errors_name_line_and_key() {
    let (line, key, msg) = err_of(&GOOD.replace("workers: 1", "workers: many"));
    assert_eq!((line, key.as_str()), (3, "dataplane.workers"));
    assert!(msg.contains("invalid type"), "{msg}");
    let (line, key, _) = err_of(&GOOD.replace("    device:", "    devise:"));
    assert_eq!((line, key.as_str()), (6, "ports[0]"));
    let (line, key, msg) = err_of(&GOOD.replace("198.18.0.2/24", "198.18.0.2/33"));
    assert_eq!((line, key.as_str()), (7, "ports[0].addresses"));
    assert!(msg.contains("198.18.0.2/33"), "{msg}");
}

#[test]
fn reference_errors_name_line_and_key() {
    let (line, key, msg) =
        err_of(&GOOD.replace("port: lan0 }\nneighbours", "port: lan9 }\nneighbours"));
    assert_eq!((line, key.as_str()), (9, "routes[0].port"));
    assert!(msg.contains("lan9") && msg.contains("lan0"), "{msg}");
    let (line, key, _) = err_of(&GOOD.replace("via: \"198.18.0.1\"", "via: \"198.19.0.1\""));
    assert_eq!((line, key.as_str()), (9, "routes[0].via"));
    let (line, key, _) = err_of(&GOOD.replace("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff"));
    assert_eq!((line, key.as_str()), (11, "neighbours[0].mac"));
    let (line, key, _) = err_of(&GOOD.replace("cores: \"0-1\"", "cores: \"1-0\""));
    assert_eq!((line, key.as_str()), (2, "eal.cores"));
    let (line, key, _) = err_of(&GOOD.replace("workers: 1", "workers: 0"));
    assert_eq!((line, key.as_str()), (3, "dataplane.workers"));
}

#[test]
fn duplicates_are_rejected() {
    let two = GOOD.replace(
        "routes:",
        "  - name: lan0\n    device: \"net_af_packet1,iface=veth-e\"\n    addresses: [\"198.18.0.2/24\"]\nroutes:",
    );
    let (line, key, msg) = err_of(&two);
    assert_eq!((line, key.as_str()), (8, "ports[1].name"));
    assert!(msg.contains("twice"), "{msg}");
}

#[test]
fn syntax_errors_are_positioned() {
    match Config::parse("ports: [\n  - name: x\n", "t.yaml") {
        Err(e @ ConfigError::Invalid { .. }) => {
            assert!(e.to_string().starts_with("t.yaml:"), "{e}")
        }
        other => panic!("{other:?}"),
    }
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
    let cases: Vec<(String, &str, usize)> = vec![
        (SVC.replace("1.100:80\"", "1.100:0\""), "services[0].vip", 5),
        (
            SVC.replace("    local_addresses: [\"198.18.0.3\"]\n", ""),
            "services[0].local_addresses",
            5,
        ),
        (
            SVC.replace(
                "\"198.18.0.12\", forward: dr",
                "\"198.19.0.12\", forward: dr",
            ),
            "services[0].real_servers[1].address",
            10,
        ),
        (
            SVC.replace(
                "\"198.18.0.12\", forward: dr",
                "\"198.18.0.12:81\", forward: dr",
            ),
            "services[0].real_servers[1].address",
            10,
        ),
        (
            SVC.replace("0.13:8443", "0.11:8080"),
            "services[0].real_servers[2].address",
            11,
        ),
        (
            SVC.replace("scheduler: wrr", "scheduler: wrr\n    flags: [sh-nonsense]"),
            "services[0].flags",
            7,
        ),
        (SVC.replace("1.100:80", "1.2:80"), "services[0].vip", 5),
    ];
    for (text, key, line) in cases {
        let (l, k, m) = err_of(&text);
        assert_eq!((k.as_str(), l), (key, line), "{m}");
    }
    // Type errors come from serde with their path.
    let (_, k, m) = err_of(&SVC.replace("scheduler: wrr", "scheduler: fastest"));
    assert!(k.starts_with("services[0]"), "{k}: {m}");
    assert!(
        m.contains("fastest") || m.contains("unknown variant"),
        "{m}"
    );
}

#[test]
fn duplicate_services_are_rejected() {
    let dup = SVC.to_string() + "  - vip: \"198.18.1.100:80\"\n    real_servers: []\n";
    let (_, k, m) = err_of(&dup);
    assert_eq!(k, "services[1].vip", "{m}");
}
