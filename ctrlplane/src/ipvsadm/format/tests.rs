//! Golden tests: literal expected text, trailing spaces included.

use super::*;

fn k(port: u16) -> ServiceKey {
    ServiceKey {
        proto: Proto::Tcp,
        addr: Ipv4Addr::new(192, 0, 2, 10),
        port,
    }
}

fn rs(addr: [u8; 4], port: u16, fwd: Fwd, active: u64, inactive: u64) -> ServerView {
    ServerView {
        addr: Ipv4Addr::from(addr),
        port,
        fwd,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        active,
        inactive,
        persist: 0,
        stats: Five::default(),
        rates: Five::default(),
    }
}

fn svc(
    port: u16,
    sched: &str,
    persistent: Option<(u32, Ipv4Addr)>,
    servers: Vec<ServerView>,
) -> ServiceView {
    ServiceView {
        key: k(port),
        scheduler: sched.into(),
        flags: vec![],
        persistent,
        laddrs: vec![],
        toa: false,
        stats: Five::default(),
        rates: Five::default(),
        servers,
    }
}

fn sample() -> Vec<ServiceView> {
    vec![
        svc(
            80,
            "wlc",
            None,
            vec![rs([10, 0, 0, 11], 80, Fwd::Dr, 12, 87)],
        ),
        svc(
            443,
            "rr",
            Some((360, Ipv4Addr::BROADCAST)),
            vec![rs([10, 0, 0, 11], 443, Fwd::Nat, 3, 0)],
        ),
    ]
}

fn numeric() -> ListFormat {
    ListFormat {
        numeric: true,
        ..Default::default()
    }
}

#[test]
fn list_numeric() {
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  192.0.2.10:80 wlc\n",
        "  -> 10.0.0.11:80                 Route   1      12         87        \n",
        "TCP  192.0.2.10:443 rr persistent 360\n",
        "  -> 10.0.0.11:443                Masq    1      3          0         \n",
    );
    assert_eq!(list(&sample(), &numeric(), 4096), want);
}

#[test]
fn list_flags_mask_fullnat_and_sorting() {
    let mut a = svc(
        0,
        "sh",
        Some((600, Ipv4Addr::new(255, 255, 255, 0))),
        vec![
            rs([10, 0, 0, 12], 0, Fwd::FullNat, 0, 1),
            rs([10, 0, 0, 2], 0, Fwd::Tun, 1, 0),
        ],
    );
    a.flags = vec!["sh-fallback".into(), "sh-port".into()];
    let b = ServiceView {
        key: ServiceKey {
            proto: Proto::Udp,
            addr: Ipv4Addr::new(192, 0, 2, 1),
            port: 53,
        },
        ..svc(53, "rr", None, vec![])
    };
    let f = ListFormat {
        numeric: true,
        sort: true,
        ..Default::default()
    };
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=1048576)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  192.0.2.10:0 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0\n",
        "  -> 10.0.0.2:0                   Tunnel  1      1          0         \n",
        "  -> 10.0.0.12:0                  FullNat 1      0          1         \n",
        "UDP  192.0.2.1:53 rr\n",
    );
    assert_eq!(
        list(&[b, a], &f, 1_048_576),
        want,
        "--sort puts TCP first; servers by address"
    );
}

#[test]
fn largenum_boundaries() {
    let cases = [
        (0u64, "        0"),
        (99_999_999, " 99999999"),
        (100_000_000, "  100000K"),
        (999_999_999, "  999999K"),
        (1_000_000_000, "     1000M"[1..].to_string().leak()),
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "      100G"[1..].to_string().leak()),
        (99_999_999_999_999, "   99999G"),
        (100_000_000_000_000, "      100T"[1..].to_string().leak()),
    ];
    for (n, want) in cases {
        assert_eq!(largenum(n, false), want, "{n}");
    }
    assert_eq!(largenum(1_000_000_000, true), " 1000000000");
    assert_eq!(largenum(5, true), "        5");
}

#[test]
fn list_stats_with_largenum() {
    let mut s = sample();
    s.truncate(1);
    s[0].stats = Five([
        99_999_999,
        100_000_000,
        999_999_999,
        1_000_000_000,
        100_000_000_000,
    ]);
    s[0].servers[0].stats = Five([1, 2, 3, 100_000_000_000_000, 4]);
    let f = ListFormat {
        numeric: true,
        stats: true,
        ..Default::default()
    };
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
        "  -> RemoteAddress:Port\n",
        "TCP  192.0.2.10:80                99999999  100000K  999999K    1000M     100G\n",
        "  -> 10.0.0.11:80                        1        2        3     100T        4\n",
    );
    assert_eq!(list(&s, &f, 4096), want);
    let exact = ListFormat { exact: true, ..f };
    assert!(list(&s, &exact, 4096).contains(
        "TCP  192.0.2.10:80                99999999 100000000 999999999 1000000000 100000000000\n"
    ));
}

#[test]
fn list_rate() {
    let mut s = sample();
    s.truncate(1);
    s[0].rates = Five([10, 2000, 1800, 2_500_000, 150_000_000]);
    s[0].servers[0].rates = Five([10, 2000, 1800, 2_500_000, 150_000_000]);
    let f = ListFormat {
        numeric: true,
        rate: true,
        ..Default::default()
    };
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
        "  -> RemoteAddress:Port\n",
        "TCP  192.0.2.10:80                      10     2000     1800  2500000  150000K\n",
        "  -> 10.0.0.11:80                       10     2000     1800  2500000  150000K\n",
    );
    assert_eq!(list(&s, &f, 4096), want);
}

#[test]
fn list_thresholds_and_persistent_conn() {
    let mut s = sample();
    s[0].servers[0].u_threshold = 100;
    s[0].servers[0].l_threshold = 50;
    s[1].servers[0].persist = 7;
    let t = ListFormat {
        numeric: true,
        thresholds: true,
        ..Default::default()
    };
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
        "  -> RemoteAddress:Port\n",
        "TCP  192.0.2.10:80 wlc\n",
        "  -> 10.0.0.11:80                 100        50         12         87        \n",
        "TCP  192.0.2.10:443 rr persistent 360\n",
        "  -> 10.0.0.11:443                0          0          3          0         \n",
    );
    assert_eq!(list(&s, &t, 4096), want);
    let p = ListFormat {
        numeric: true,
        persistent_conn: true,
        ..Default::default()
    };
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
        "  -> RemoteAddress:Port\n",
        "TCP  192.0.2.10:80 wlc\n",
        "  -> 10.0.0.11:80                 1         0           12         87        \n",
        "TCP  192.0.2.10:443 rr persistent 360\n",
        "  -> 10.0.0.11:443                1         7           3          0         \n",
    );
    assert_eq!(list(&s, &p, 4096), want);
}

#[test]
fn connections_list() {
    let c = |cport, state: &str, expires| ConnView {
        proto: Proto::Tcp,
        caddr: Ipv4Addr::new(198, 51, 100, 7),
        cport,
        vaddr: Ipv4Addr::new(192, 0, 2, 10),
        vport: if cport == 0 { 443 } else { 80 },
        daddr: Ipv4Addr::new(10, 0, 0, 11),
        dport: if cport == 0 { 443 } else { 80 },
        state: state.into(),
        expires,
    };
    let want = concat!(
        "IPVS connection entries\n",
        "pro expire state       source             virtual            destination\n",
        "TCP 14:37  ESTABLISHED 198.51.100.7:51922 192.0.2.10:80      10.0.0.11:80\n",
        "TCP 05:55  NONE        198.51.100.7:0     192.0.2.10:443     10.0.0.11:443\n",
    );
    assert_eq!(
        connections(&[c(51922, "ESTABLISHED", 877), c(0, "NONE", 355)], true),
        want
    );
}

#[test]
fn timeout_line() {
    assert_eq!(
        timeouts(900, 120, 300),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
}

#[test]
fn save_rules() {
    let mut s = sample();
    s[1].servers[0].u_threshold = 10;
    let want = concat!(
        "-A -t 192.0.2.10:80 -s wlc\n",
        "-a -t 192.0.2.10:80 -r 10.0.0.11:80 -g -w 1\n",
        "-A -t 192.0.2.10:443 -s rr -p 360\n",
        "-a -t 192.0.2.10:443 -r 10.0.0.11:443 -m -w 1 -x 10\n",
    );
    assert_eq!(save(&s, true), want);
    let mut f = svc(
        80,
        "sh",
        Some((600, Ipv4Addr::new(255, 255, 0, 0))),
        vec![rs([10, 0, 0, 12], 8080, Fwd::FullNat, 0, 0)],
    );
    f.flags = vec!["sh-port".into()];
    f.laddrs = vec![Ipv4Addr::new(198, 18, 0, 3), Ipv4Addr::new(198, 18, 0, 4)];
    f.toa = true;
    assert_eq!(
        save(&[f], true),
        "-A -t 192.0.2.10:80 -s sh -b sh-port -p 600 -M 255.255.0.0 --laddr 198.18.0.3,198.18.0.4 --toa\n-a -t 192.0.2.10:80 -r 10.0.0.12:8080 --fullnat -w 1\n"
    );
}

#[test]
fn port_names_from_a_services_text() {
    let t = crate::ipvsadm::SERVICES_TEXT;
    assert_eq!(port_name_in(t, 80, Proto::Tcp).as_deref(), Some("http"));
    assert_eq!(
        port_name_in(t, 8080, Proto::Tcp).as_deref(),
        Some("http-alt"),
        "the name, not an alias"
    );
    assert_eq!(port_name_in(t, 53, Proto::Udp).as_deref(), Some("domain"));
    assert_eq!(port_name_in(t, 443, Proto::Udp).as_deref(), Some("https"));
    assert_eq!(port_name_in(t, 80, Proto::Udp), None, "tcp only");
    assert_eq!(port_name_in(t, 8, Proto::Tcp), None, "not 80/tcp's prefix");
    assert_eq!(port_name_in(t, 800, Proto::Tcp), None);
    assert_eq!(port_name_in(t, 1, Proto::Udp), None);
    assert_eq!(port_name_in("", 80, Proto::Tcp), None);
}

#[test]
fn names_without_numeric() {
    let named = |port, proto, numeric| {
        addrport_with(
            Ipv4Addr::new(192, 0, 2, 10),
            port,
            proto,
            numeric,
            |p, pr| port_name_in(crate::ipvsadm::SERVICES_TEXT, p, pr),
        )
    };
    assert_eq!(named(80, Proto::Tcp, false), "192.0.2.10:http");
    assert_eq!(named(53, Proto::Udp, false), "192.0.2.10:domain");
    assert_eq!(
        named(80, Proto::Udp, false),
        "192.0.2.10:80",
        "no name: the number"
    );
    assert_eq!(named(8081, Proto::Tcp, false), "192.0.2.10:8081");
    assert_eq!(named(80, Proto::Tcp, true), "192.0.2.10:80", "-n");
    assert_eq!(named(0, Proto::Tcp, false), "192.0.2.10:0");
    // The public function: -n needs no services file.
    assert_eq!(
        addrport(Ipv4Addr::new(192, 0, 2, 10), 80, Proto::Tcp, true),
        "192.0.2.10:80"
    );
    assert_eq!(
        addrport(Ipv4Addr::new(192, 0, 2, 10), 0, Proto::Tcp, false),
        "192.0.2.10:0"
    );
}
