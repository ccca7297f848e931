//! keepalived.conf reading: the language (lex, tree), the conversion of each block, and
//! the errors, each at its file and line.

use super::*;
use crate::config::Config;
use std::collections::BTreeMap;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-ka-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn eth0() -> BTreeMap<String, String> {
    [("eth0".to_string(), "lan0".to_string())].into()
}

/// Converts `text` written to a file in a fresh directory (with `more` files beside).
fn convert_text(name: &str, text: &str, more: &[(&str, &str)]) -> Result<Converted> {
    let d = dir(name);
    for (f, t) in more {
        let p = d.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, t).unwrap();
    }
    let path = d.join("keepalived.conf");
    std::fs::write(&path, text).unwrap();
    let ifs = eth0();
    convert_file(
        &path,
        &Options {
            interfaces: &ifs,
            config_id: "lb1".into(),
        },
    )
}

fn pos_line(e: &KaError) -> usize {
    e.pos.line
}

#[test]
fn words_quotes_braces_and_comments() {
    let p = Pos {
        file: "f".into(),
        line: 1,
    };
    assert_eq!(
        lex::words(r#"notify "/bin/echo a b" x{y}  ! a comment"#, &p).unwrap(),
        ["notify", "/bin/echo a b", "x", "{", "y", "}"]
    );
    assert_eq!(
        lex::words("# all comment", &p).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        lex::words(r#"script "test ! -e /x # y""#, &p).unwrap(),
        ["script", "test ! -e /x # y"]
    );
    assert!(lex::words(r#"script "open"#, &p).is_err());
}

#[test]
fn blocks_nest_on_one_line_or_several() {
    let text = "virtual_server 198.18.1.100 80\n{\n  real_server 198.18.0.11 80 { weight 2 }\n  real_server 198.18.0.12 80 {\n    TCP_CHECK { connect_timeout 3 }\n  }\n}\n";
    let d = dir("tree");
    std::fs::write(d.join("k.conf"), text).unwrap();
    let lines = lex::read(&d.join("k.conf"), "x").unwrap();
    let t = tree::build(lines).unwrap();
    assert_eq!(t.len(), 1);
    let vs = &t[0];
    assert_eq!(vs.words, ["virtual_server", "198.18.1.100", "80"]);
    assert_eq!(vs.body().len(), 2);
    assert_eq!(vs.body()[0].body()[0].words, ["weight", "2"]);
    let tcp = &vs.body()[1].body()[0];
    assert_eq!(tcp.word(0), "TCP_CHECK");
    assert_eq!(tcp.body()[0].words, ["connect_timeout", "3"]);
    assert_eq!(tcp.pos.line, 5);
}

#[test]
fn unbalanced_braces_are_placed() {
    let e = convert_text(
        "open",
        "global_defs {\n  router_id x\n\nvrrp_script s {\n}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(pos_line(&e), 1, "{e}");
    assert!(e.to_string().contains("never closed"), "{e}");
    let e = convert_text("close", "global_defs {\n}\n}\n", &[]).unwrap_err();
    assert_eq!(pos_line(&e), 3, "{e}");
    assert!(e.to_string().contains("closes no block"), "{e}");
}

#[test]
fn includes_globs_conditionals_and_parameters() {
    let main = "$VIP=198.18.1.100\n$RS=real_server\n$CHECK=TCP_CHECK {\\\n  connect_timeout 3\\\n}\n@lb1 include conf.d/*.conf\n@^lb1 include missing.conf\nvirtual_server ${VIP} 80 {\n  lb_algo rr\n  lb_kind NAT\n@lb2 persistence_timeout 10\n@^lb2 persistence_timeout 50\n  $RS 198.18.0.11 80 {\n    $CHECK\n  }\n}\n";
    let c = convert_text(
        "inc",
        main,
        &[
            ("conf.d/a.conf", "vrrp_script chk {\n  script \"true\"\n}\n"),
            (
                "conf.d/b.conf",
                "vrrp_script chk2 {\n  script \"false\"\n}\n",
            ),
        ],
    )
    .unwrap();
    // Both included files, in name order.
    let names: Vec<&str> = c
        .vrrp_scripts
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["chk", "chk2"]);
    let s = &c.services[0];
    assert_eq!(s["vip"], "198.18.1.100:80");
    assert_eq!(s["persistence"]["timeout"], 50, "@^lb2 kept, @lb2 dropped");
    assert_eq!(s["real_servers"][0]["address"], "198.18.0.11:80");
    assert_eq!(s["real_servers"][0]["forward"], "nat");
    // A multi-line definition expands to its lines.
    assert_eq!(s["real_servers"][0]["checks"][0]["type"], "tcp_check");
    assert_eq!(s["real_servers"][0]["checks"][0]["connect_timeout"], 3.0);
    // An included file's lines are placed in it.
    assert!(c
        .origin_of("vrrp_scripts[1]")
        .is_some_and(|p| p.file.ends_with("b.conf") && p.line == 1));
    // A missing include is an error at the include line.
    let e = convert_text("noinc", "include nothing/*.conf\n", &[]).unwrap_err();
    assert_eq!(pos_line(&e), 1);
    assert!(e.to_string().contains("no file matches"), "{e}");
    // An undefined parameter too.
    let e = convert_text("nodef", "\nvirtual_server $NOPE 80 {\n}\n", &[]).unwrap_err();
    assert_eq!(pos_line(&e), 2, "{e}");
}

const LVS_DR: &str = r#"
global_defs {
   notification_email {
     admin@example.test
   }
   smtp_server 198.18.0.1
   router_id LVS_DEVEL
   vrrp_garp_master_delay 1
   lvs_sync_daemon eth0 VI_1 id 7
}

vrrp_script chk_web {
    script "/usr/bin/true"
    interval 2
    weight -20
    fall 2
    rise 3
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        198.18.1.100/24 dev eth0
        198.18.1.101
    }
    track_script {
        chk_web
    }
    notify_master "/usr/local/bin/master.sh VI_1"
}

virtual_server 198.18.1.100 80 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol TCP
    sorry_server 198.18.0.200 80

    real_server 198.18.0.11 80 {
        weight 1
        HTTP_GET {
            url {
              path /
              digest 640205b7b0fc66c1ea91c463fac6334d
              status_code 200-299 301
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
    real_server 198.18.0.12 80 {
        weight 2
        TCP_CHECK {
            connect_port 80
            connect_timeout 3
        }
    }
}
"#;

#[test]
fn the_lvs_dr_example_converts_block_by_block() {
    let c = convert_text("dr", LVS_DR, &[]).unwrap();
    let vi = &c.vrrp_instances[0];
    assert_eq!(vi["name"], "VI_1");
    assert_eq!(vi["interface"], "lan0", "eth0 mapped");
    assert_eq!(vi["state"], "MASTER");
    assert_eq!(vi["virtual_router_id"], 51);
    assert_eq!(vi["priority"], 150);
    assert_eq!(vi["garp_master_delay"], 1.0, "the global default");
    assert_eq!(vi["authentication"]["auth_pass"], "s3cret");
    assert_eq!(vi["virtual_ipaddress"][0], "198.18.1.100/24");
    assert_eq!(vi["virtual_ipaddress"][1], "198.18.1.101/32");
    assert_eq!(vi["track_script"][0], "chk_web");
    assert_eq!(vi["notify_master"], "/usr/local/bin/master.sh VI_1");
    let sc = &c.vrrp_scripts[0];
    assert_eq!(
        (
            &sc["script"],
            &sc["interval"],
            &sc["weight"],
            &sc["fall"],
            &sc["rise"]
        ),
        (
            &Value::from("/usr/bin/true"),
            &Value::from(2.0),
            &Value::from(-20),
            &Value::from(2),
            &Value::from(3)
        )
    );
    let sync = c.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        (&sync["interface"], &sync["vrrp_instance"], &sync["syncid"]),
        (&Value::from("lan0"), &Value::from("VI_1"), &Value::from(7))
    );
    let s = &c.services[0];
    assert_eq!(s["vip"], "198.18.1.100:80");
    assert_eq!(s["scheduler"], "rr");
    assert_eq!(s["protocol"], "tcp");
    assert_eq!(s["delay_loop"], 6.0);
    assert_eq!(s["persistence"]["timeout"], 50);
    assert_eq!(s["persistence"]["netmask"], "255.255.255.0");
    assert_eq!(s["sorry_server"]["address"], "198.18.0.200:80");
    assert_eq!(s["sorry_server"]["forward"], "dr");
    let r1 = &s["real_servers"][0];
    assert_eq!(r1["forward"], "dr");
    let http = &r1["checks"][0];
    assert_eq!(http["type"], "http_get");
    assert_eq!(http["retry"], 3, "nb_get_retry");
    assert_eq!(http["url"][0]["digest"], "640205b7b0fc66c1ea91c463fac6334d");
    assert_eq!(http["url"][0]["status_code"][1], "301");
    assert_eq!(s["real_servers"][1]["weight"], 2);
    assert_eq!(s["real_servers"][1]["checks"][0]["type"], "tcp_check");
    // Keywords that change nothing: one warning each, placed.
    let w = c.warnings.join("\n");
    for k in ["notification_email", "smtp_server", "router_id"] {
        assert_eq!(w.matches(&format!(": {k}: ")).count(), 1, "{w}");
    }
    assert!(w.contains("keepalived.conf:6: smtp_server"), "{w}");
}

/// With ports in the YAML and the keepalived.conf named there, the whole loads as one
/// configuration, and rvs's validation reports at keepalived's line.
#[test]
fn a_yaml_naming_the_file_loads_it_and_places_later_errors_there() {
    let d = dir("yaml");
    std::fs::write(d.join("keepalived.conf"), LVS_DR).unwrap();
    let yaml = "ports:\n  - { name: lan0, device: net_null0, addresses: [\"198.18.1.2/24\", \"198.18.0.2/24\"], kernel: { name: lan0k } }\nkeepalived: { config: keepalived.conf, interfaces: { eth0: lan0 } }\n";
    let file = d.join("rvs.yaml");
    std::fs::write(&file, yaml).unwrap();
    let cfg = Config::load(&file).unwrap();
    assert_eq!(cfg.services.len(), 1);
    assert_eq!(cfg.services[0].real_servers.len(), 2);
    assert_eq!(cfg.vrrp_instances[0].interface, "lan0");
    assert_eq!(cfg.lvs_sync_daemon.as_ref().unwrap().syncid, 7);
    // Saved, it is plain YAML that loads back to the same.
    let saved = serde_yaml::to_string(&cfg).unwrap();
    assert!(!saved.contains("keepalived"), "{saved}");
    let again = Config::parse(&saved, "saved.yaml").unwrap();
    assert_eq!(again.services, cfg.services);
    assert_eq!(again.vrrp_instances, cfg.vrrp_instances);
    // A real server outside every port's subnet: rvs's own check, at keepalived's line.
    let bad = LVS_DR.replace("real_server 198.18.0.12 80", "real_server 203.0.113.12 80");
    std::fs::write(d.join("keepalived.conf"), &bad).unwrap();
    let e = Config::load(&file).unwrap_err().to_string();
    let line = bad
        .lines()
        .position(|l| l.contains("203.0.113.12"))
        .unwrap()
        + 1;
    assert!(
        e.contains(&format!(
            "keepalived.conf:{line}: services[0].real_servers[1]"
        )),
        "{e}"
    );
}

#[test]
fn what_rvs_cannot_honour_is_refused_at_its_line_with_what_to_do() {
    let cases: &[(&str, &str)] = &[
        ("virtual_server fwmark 1 {\n}\n", "firewall marks"),
        ("vrrp_instance VI_1 {\n  interface eth0\n  use_vmac\n}\n", "virtual MAC"),
        ("vrrp_instance VI_1 {\n  interface eth1\n}\n", "not mapped"),
        ("vrrp_instance VI_1 {\n  track_interface {\n    eth0\n  }\n}\n", "link state"),
        ("global_defs {\n  vrrp_strict\n}\n", "strict"),
        ("virtual_server 198.18.1.100 80 {\n  lb_kind MASQ\n}\n", "NAT, DR, TUN or FNAT"),
        ("virtual_server 198.18.1.100 80 {\n  lb_algo fastest\n}\n", "not a scheduler"),
        ("virtual_server 198.18.1.100 80 {\n  real_server 198.18.0.300 80 {\n  }\n}\n", "not an IPv4 address"),
        ("virtual_server 198.18.1.100 80 {\n  real_server 198.18.0.11 80 {\n    BFD_CHECK {\n    }\n  }\n}\n", "no BFD"),
        ("vrrp_sync_grup G {\n}\n", "not a top-level keyword"),
        ("virtual_server 198.18.1.100 80 {\n  delay_lop 3\n}\n", "not a virtual_server keyword"),
    ];
    for (text, want) in cases {
        let e = convert_text("refuse", text, &[]).unwrap_err();
        let s = e.to_string();
        assert!(s.contains(want), "{text:?}: {s}");
        // At the offending line: the last line that is not a closing brace.
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().starts_with('}'))
            .last()
            .unwrap()
            .0
            + 1;
        let line = if *want == "not mapped" { 2 } else { line };
        let line = if *want == "link state" { 2 } else { line };
        let line = if *want == "firewall marks" { 1 } else { line };
        assert_eq!(pos_line(&e), line, "{text:?}: {s}");
    }
}

#[test]
fn groups_ranges_local_addresses_and_track_files() {
    let text = "virtual_server_group WEB {\n  198.18.1.100-101 80\n  198.18.1.110 8080\n}\nlocal_address_group LIPS {\n  198.18.0.5-6 dpdk0\n}\ntrack_file maint {\n  file /run/maint\n  weight -2 reverse\n}\nvirtual_server group WEB {\n  lb_algo wrr\n  lb_kind FNAT\n  laddr_group_name LIPS\n  real_server 198.18.0.11 80 {\n    FILE_CHECK {\n      track_file maint\n    }\n  }\n}\n";
    let c = convert_text("groups", text, &[]).unwrap();
    let vips: Vec<&str> = c
        .services
        .iter()
        .map(|s| s["vip"].as_str().unwrap())
        .collect();
    assert_eq!(
        vips,
        ["198.18.1.100:80", "198.18.1.101:80", "198.18.1.110:8080"]
    );
    for s in &c.services {
        assert_eq!(s["local_addresses"][1], "198.18.0.6");
        assert_eq!(s["real_servers"][0]["forward"], "fullnat");
        let f = &s["real_servers"][0]["checks"][0];
        assert_eq!(
            (&f["track_file"], &f["weight"], &f["reverse"]),
            (
                &Value::from("/run/maint"),
                &Value::from(-2),
                &Value::from(true)
            )
        );
    }
}
