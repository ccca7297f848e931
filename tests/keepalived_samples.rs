//! Every keepalived.conf sample Debian's keepalived package ships
//! (/usr/share/doc/keepalived/samples, installed by scripts/setup.sh) passes
//! `rvsd --check` with an interface map, or is refused only for a keyword rvs cannot
//! honour, named in the message with its line. Checking sends nothing: the samples'
//! own addresses are fine here.

use std::path::Path;

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

/// What `rvsd --check` must say of a sample.
enum Expect {
    Valid,
    /// Refused at this keyword (the message names it, with the file and a line).
    Refused(&'static str),
}
use Expect::*;

/// Each sample and its outcome; `config_id` for the one with `@high`/`@low` lines.
const TABLE: &[(&str, Expect)] = &[
    ("keepalived.conf.HTTP_GET.port", Valid),
    ("keepalived.conf.IPv6", Refused("IPv4 only")),
    ("keepalived.conf.PING_CHECK", Valid),
    (
        "keepalived.conf.SMTP_CHECK",
        Refused("host: rvs checks one host per SMTP_CHECK"),
    ),
    // keepalived itself drops AH here ("incompatible with AH authentication").
    ("keepalived.conf.SSL_GET", Refused("auth_type AH")),
    ("keepalived.conf.UDP_CHECK", Valid),
    // With config id `high`: its `@high net_namespace high` line comes first.
    ("keepalived.conf.conditional_conf", Refused("net_namespace")),
    (
        "keepalived.conf.fwmark",
        Refused("fwmark: rvs has no firewall marks"),
    ),
    ("keepalived.conf.inhibit", Valid),
    ("keepalived.conf.misc_check", Valid),
    ("keepalived.conf.misc_check_arg", Valid),
    ("keepalived.conf.quorum", Valid),
    ("keepalived.conf.sample", Valid),
    ("keepalived.conf.status_code", Valid),
    ("keepalived.conf.track_interface", Refused("static_routes")),
    (
        "keepalived.conf.virtual_server_group",
        Refused("fwmark: rvs has no firewall marks"),
    ),
    ("keepalived.conf.virtualhost", Valid),
    ("keepalived.conf.vrrp", Valid),
    (
        "keepalived.conf.vrrp.localcheck",
        Refused("track_interface"),
    ),
    // Members written without `group { }`: keepalived says "Unknown keyword 'VI_2'".
    (
        "keepalived.conf.vrrp.lvs_syncd",
        Refused("VI_2: not a vrrp_sync_group keyword"),
    ),
    ("keepalived.conf.vrrp.routes", Refused("static_routes")),
    ("keepalived.conf.vrrp.rules", Refused("static_rules")),
    ("keepalived.conf.vrrp.scripts", Valid),
    (
        "keepalived.conf.vrrp.static_ipaddress",
        Refused("static_ipaddress"),
    ),
    ("keepalived.conf.vrrp.sync", Valid),
];

/// Ports whose subnets hold the samples' addresses, each with a kernel twin (VRRP
/// needs one), and keepalived's interface names mapped onto them.
fn yaml(sample: &Path) -> String {
    let lan0: Vec<String> = [
        "192.168.200.254/24",
        "192.168.201.254/24",
        "192.168.100.254/24",
        "10.10.10.254/24",
        "10.0.0.254/24",
        "172.16.1.254/24",
    ]
    .iter()
    .map(|a| format!("\"{a}\""))
    .collect();
    format!(
        "ports:\n  - {{ name: lan0, device: net_null0, addresses: [{}], kernel: {{ name: lan0k }} }}\n  - {{ name: lan1, device: net_null1, addresses: [\"192.168.100.253/24\"], kernel: {{ name: lan1k }} }}\nkeepalived: {{ config: \"{}\", config_id: high, interfaces: {{ eth0: lan0, eth1: lan1, eth0.1: lan0 }} }}\n",
        lan0.join(", "),
        sample.display()
    )
}

#[test]
fn debian_samples_check_or_are_refused_for_a_named_keyword() {
    let dir = std::env::temp_dir().join(format!("rvst-samples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The table names every sample the package has.
    let mut shipped: Vec<String> = std::fs::read_dir(SAMPLES)
        .unwrap_or_else(|e| panic!("{SAMPLES}: {e} (scripts/setup.sh installs keepalived)"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("keepalived.conf."))
        .collect();
    shipped.sort();
    let mut named: Vec<String> = TABLE.iter().map(|(n, _)| n.to_string()).collect();
    named.sort();
    assert_eq!(shipped, named, "samples and table differ");
    let mut failures = Vec::new();
    for (name, expect) in TABLE {
        let sample = Path::new(SAMPLES).join(name);
        let y = dir.join(format!("{name}.yaml"));
        std::fs::write(&y, yaml(&sample)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--config")
            .arg(&y)
            .arg("--check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        match expect {
            Valid if !out.status.success() => failures.push(format!("{name}: refused: {err}")),
            Refused(word) => {
                let placed = format!("{}:", sample.display());
                if out.status.success() {
                    failures.push(format!("{name}: accepted, expected refused at {word:?}"));
                } else if !err.contains(word) || !err.contains(&placed) {
                    failures.push(format!("{name}: expected {word:?} at a line of it: {err}"));
                }
            }
            Valid => {}
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
