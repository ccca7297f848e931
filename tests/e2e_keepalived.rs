//! keepalived.conf end to end: the LVS documentation's DR example (rr, DR, persistence
//! 50, HTTP_GET with a digest per server, a vrrp_instance holding the VIP), rewritten to
//! test addresses, run by rvsd unchanged and, converted by `rvsadm --convert-keepalived`,
//! as YAML: the client is balanced with persistence, a server whose page changes is
//! taken out by the digest check, and the VRRP instance owns the VIP. Also: a broken
//! keepalived.conf is refused at its line, and a running rvsd keeps its configuration
//! when a reload finds one.

use testkit::eventually;
use testkit::ha::{state, HaLab, TAKEOVER};
use testkit::health::{checks, forwarding, DETECT};
use testkit::lab::{Mode, VIP};
use testkit::net::{v4, HttpServer};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// MD5 of what the lab's server `name` answers (its name and a newline), as
/// `keepalived --genhash` prints it.
fn digest(name: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {name} | md5sum"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..32].to_string()
}

/// The example, in keepalived's words (delay_loop shortened for a test).
fn keepalived_conf() -> String {
    let rs: String = (1..4)
        .map(|i| {
            format!(
                "    real_server 198.18.0.{} 80 {{\n        weight 1\n        HTTP_GET {{\n            url {{\n                path /\n                digest {}\n            }}\n            connect_timeout 1\n            retry 0\n            delay_before_retry 0.5\n        }}\n    }}\n",
                10 + i,
                digest(&format!("rs{i}"))
            )
        })
        .collect();
    format!(
        "! Configuration File for keepalived (the LVS DR example, test addresses)\nglobal_defs {{\n   notification_email {{\n     admin@example.test\n   }}\n   router_id LVS_DR\n}}\n\nvrrp_instance VI_1 {{\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    advert_int 1\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n\nvirtual_server {VIP} 80 {{\n    delay_loop 0.5\n    lb_algo rr\n    lb_kind DR\n    persistence_timeout 50\n    protocol TCP\n\n{rs}}}\n"
    )
}

/// rvsd's YAML around it: the director's port, its kernel twin, the control socket.
fn yaml(extra: &str) -> String {
    format!(
        "eal: {{ cores: \"0-1\", file_prefix: rvst-ka, hugepages: auto, memory_mb: 256 }}\ndataplane: {{ workers: 1, idle: adaptive, mbufs: 8191, rx_desc: 512, tx_desc: 512 }}\nports:\n  - name: lan0\n    device: \"net_af_packet0,iface=eth0\"\n    addresses: [\"198.18.0.2/24\", \"198.18.1.2/24\"]\n    kernel: {{ name: lan0k }}\ncontrol: {{ socket: \"{{SOCKET}}\" }}\n{extra}"
    )
}

/// Runs the example under rvsd from `config` and checks what it must do.
fn runs_the_example(l: &mut HaLab, config: &str) {
    l.start(0, std::path::Path::new(RVSD), config);
    let d = l.rvsd(0);
    eventually("VI_1 MASTER", TAKEOVER, || {
        (state(d) == "MASTER").then_some(())
    });
    testkit::health::all_up(d);
    let listed = l.rvsd(0).rvsadm(RVSADM, &["-L", "-n"]);
    assert!(
        listed.contains("TCP  198.18.1.100:80 rr persistent 50"),
        "{listed}"
    );
    assert!(listed.contains("198.18.0.12:80"), "{listed}");
    // Two clients, each on its own server, each staying there.
    l.client
        .run(&["ip", "addr", "add", "198.18.1.9/24", "dev", "eth0"]);
    let url = format!("http://{VIP}/");
    let one = l.client.fetch_from("198.18.1.1", &url);
    let nine = l.client.fetch_from("198.18.1.9", &url);
    assert_ne!(one, nine, "rr gave both clients one server");
    for _ in 0..3 {
        assert_eq!(l.client.fetch_from("198.18.1.1", &url), one);
        assert_eq!(l.client.fetch_from("198.18.1.9", &url), nine);
    }
    // rs2's page changes: its digest no longer matches, it leaves the service.
    drop(l.servers.remove(1));
    l.servers.insert(
        1,
        HttpServer::start(&l.rs[1].ns, v4("0.0.0.0", 80), "rs2-changed"),
    );
    let d = l.rvsd(0);
    eventually("rs2 out on its digest", DETECT, || {
        (!forwarding(d).iter().any(|(rs, _)| rs == "198.18.0.12:80")).then_some(())
    });
    let c = checks(d);
    let rs2 = c
        .iter()
        .find(|x| x.real_server == "198.18.0.12:80")
        .unwrap();
    assert!(!rs2.up && rs2.last_result.contains("digest"), "{rs2:?}");
}

#[test]
fn the_lvs_dr_example_runs_unchanged() {
    let mut l = HaLab::with_mode(Mode::Dr);
    let conf = l.t.dir.join("keepalived.conf");
    std::fs::write(&conf, keepalived_conf()).unwrap();
    let cfg = yaml(&format!(
        "keepalived: {{ config: \"{}\", interfaces: {{ eth0: lan0 }} }}\n",
        conf.display()
    ));
    runs_the_example(&mut l, &cfg);
    // The keyword that changes nothing was named once in the log.
    let log = l.rvsd(0).log_text();
    assert_eq!(log.matches("notification_email").count(), 1, "{log}");
}

#[test]
fn the_same_file_converted_runs_the_same() {
    let mut l = HaLab::with_mode(Mode::Dr);
    let conf = l.t.dir.join("keepalived.conf");
    std::fs::write(&conf, keepalived_conf()).unwrap();
    let base = l.t.dir.join("base.yaml");
    std::fs::write(&base, yaml("")).unwrap();
    let out = std::process::Command::new(RVSADM)
        .arg("--convert-keepalived")
        .arg(&conf)
        .args(["--interfaces", "eth0=lan0", "--config"])
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let converted = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!converted.contains("keepalived"), "{converted}");
    for key in ["persistence:", "digest:", "vrrp_instances:", "forward: dr"] {
        assert!(converted.contains(key), "{key} missing:\n{converted}");
    }
    // The warning is rvsadm's, on its standard error.
    assert!(String::from_utf8_lossy(&out.stderr).contains("notification_email"));
    runs_the_example(&mut l, &converted);
}

/// Broken keepalived.conf input: `rvsd --check` names the file and line; a running
/// rvsd keeps its configuration when a reload finds such a file.
#[test]
fn a_broken_file_is_refused_at_its_line_and_a_reload_keeps_the_running_config() {
    let dir = std::env::temp_dir().join(format!("rvst-ka-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = keepalived_conf();
    let cases: Vec<(String, usize, &str)> = vec![
        // (text, line, what the message says)
        (
            good.replacen("    protocol TCP\n", "    protocol TCP\n    {\n", 1),
            0,
            "never closed",
        ),
        (
            format!("{good}}}\n"),
            good.lines().count() + 1,
            "closes no block",
        ),
        (
            good.replace("vrrp_instance VI_1 {", "vrrp_instanc VI_1 {"),
            9,
            "not a top-level keyword",
        ),
        (
            good.replace("real_server 198.18.0.12 80", "real_server 198.18.0.312 80"),
            0,
            "not an IPv4 address",
        ),
        (
            format!("include {}/missing/*.conf\n{good}", dir.display()),
            1,
            "no file matches",
        ),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        let conf = dir.join(format!("k{i}.conf"));
        std::fs::write(&conf, text).unwrap();
        let y = dir.join(format!("r{i}.yaml"));
        std::fs::write(
            &y,
            yaml(&format!(
                "keepalived: {{ config: \"{}\", interfaces: {{ eth0: lan0 }} }}\n",
                conf.display()
            ))
            .replace("{SOCKET}", "/tmp/unused.sock"),
        )
        .unwrap();
        let out = std::process::Command::new(RVSD)
            .arg("--config")
            .arg(&y)
            .arg("--check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(what), "case {i}: {err}");
        let at = if *line == 0 {
            // The line that holds the offending word.
            let needle = match *what {
                "never closed" => "virtual_server",
                _ => "198.18.0.312",
            };
            text.lines().position(|l| l.contains(needle)).unwrap() + 1
        } else {
            *line
        };
        assert!(
            err.contains(&format!("{}:{at}:", conf.display())),
            "case {i}: line {at}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    // A running rvsd: a reload that meets a broken file changes nothing.
    let mut l = HaLab::with_mode(Mode::Dr);
    let conf = l.t.dir.join("keepalived.conf");
    std::fs::write(&conf, &good).unwrap();
    let cfg = yaml(&format!(
        "keepalived: {{ config: \"{}\", interfaces: {{ eth0: lan0 }} }}\n",
        conf.display()
    ));
    l.start(0, std::path::Path::new(RVSD), &cfg);
    let d = l.rvsd(0);
    testkit::health::all_up(d);
    let before = d.rvsadm(RVSADM, &["-L", "-n"]);
    std::fs::write(&conf, good.replace("lb_algo rr", "lb_algo rr\n    {")).unwrap();
    let r = std::process::Command::new(RVSADM)
        .arg("--socket")
        .arg(&d.socket)
        .arg("--reload")
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("keepalived.conf:"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(d.rvsadm(RVSADM, &["-L", "-n"]), before);
    l.serves(3);
}
