//! The control plane end to end: rvsadm against a running rvsd, with ipvsadm's syntax and
//! output, and configuration changes while traffic flows.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::lab::{lab, rs_list, Lab, Mode, VIP};
use testkit::net::{self, get_many, tally, v4, HttpConn};

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

fn nat_lab(weights: &[u32], workers: usize) -> Lab {
    let svc = format!(
        "  - vip: \"{VIP}:80\"\n    scheduler: rr\n    real_servers:\n{}",
        rs_list("nat", weights)
    );
    lab(Path::new(RVSD), Mode::Nat, &svc, workers)
}

fn rvsadm(l: &Lab, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(RVSADM);
    c.arg("--socket").arg(&l.t.rvsd_ref(0).socket).args(args);
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(l: &Lab, args: &[&str]) -> String {
    let o = rvsadm(l, args, None);
    assert!(
        o.status.success(),
        "rvsadm {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn rvsadm_speaks_ipvsadm() {
    let l = nat_lab(&[1, 1, 1], 1);
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=65536)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  198.18.1.100:80 rr\n",
        "  -> 198.18.0.11:80               Masq    1      0          0         \n",
        "  -> 198.18.0.12:80               Masq    1      0          0         \n",
        "  -> 198.18.0.13:80               Masq    1      0          0         \n",
    );
    assert_eq!(ok(&l, &["-L", "-n"]), want);

    // Add a service and a server at runtime; traffic follows.
    ok(&l, &["-A", "-t", "198.18.1.100:8080", "-s", "wrr"]);
    ok(
        &l,
        &[
            "-a",
            "-t",
            "198.18.1.100:8080",
            "-r",
            "198.18.0.12:80",
            "-m",
            "-w",
            "2",
        ],
    );
    let m = tally(&get_many(&l.client.ns, v4(VIP, 8080), 5));
    assert_eq!(m.get("rs2"), Some(&5), "{m:?}");

    // Stats count it; -Z zeroes it.
    let stats = ok(&l, &["-L", "-n", "--stats", "-t", "198.18.1.100:8080"]);
    // ipvsadm's columns: the service name in 33, each number in 9.
    let line = |conns: u64| format!("{:<33}{:>9}", "TCP  198.18.1.100:8080", conns);
    assert!(
        stats.lines().nth(3).unwrap().starts_with(&line(5)),
        "{stats}"
    );
    ok(&l, &["-Z"]);
    let stats = ok(&l, &["-L", "-n", "--stats", "-t", "198.18.1.100:8080"]);
    assert!(
        stats.lines().nth(3).unwrap().starts_with(&line(0)),
        "{stats}"
    );

    // -L -c shows a held connection.
    let (mut held, port) = net::in_ns(&l.client.ns, || {
        let mut c = HttpConn::connect(v4(VIP, 80), Duration::from_secs(5)).unwrap();
        c.get().unwrap();
        let p = c.local_port();
        (c, p)
    });
    let conns = ok(&l, &["-L", "-n", "-c"]);
    assert!(conns.starts_with("IPVS connection entries\npro expire state       source             virtual            destination\n"), "{conns}");
    let row = conns
        .lines()
        .find(|r| r.contains(&format!("198.18.1.1:{port} ")))
        .unwrap_or_else(|| panic!("{conns}"));
    assert!(
        row.starts_with("TCP 14:") || row.starts_with("TCP 15:00"),
        "{row}"
    );
    assert!(
        row.contains("ESTABLISHED") && row.contains("198.18.1.100:80"),
        "{row}"
    );
    held.get().unwrap();

    // -S / -C / -R round trip, exactly.
    let saved = ok(&l, &["-S", "-n"]);
    assert!(
        saved.contains("-a -t 198.18.1.100:8080 -r 198.18.0.12:80 -m -w 2\n"),
        "{saved}"
    );
    ok(&l, &["-C"]);
    assert_eq!(ok(&l, &["-S", "-n"]), "");
    let o = rvsadm(&l, &["-R"], Some(&saved));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ok(&l, &["-S", "-n"]), saved);

    // The running configuration saves as YAML that rvsd --check accepts.
    let file = l.t.dir.join("saved.yaml");
    ok(&l, &["--save-config", file.to_str().unwrap()]);
    let chk = Command::new(RVSD)
        .arg("--config")
        .arg(&file)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        chk.status.success(),
        "{}",
        String::from_utf8_lossy(&chk.stderr)
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("198.18.1.100:8080"));

    // Errors: usage errors exit 2 with a hint; refused changes exit 1 in the kernel's words.
    let o = rvsadm(&l, &["-A", "-t", "198.18.1.100:80", "-w", "3"], None);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("Illegal 'weight' option with the 'add-service' command")
            && e.contains("Try `rvsadm -h'"),
        "{e}"
    );
    let o = rvsadm(&l, &["-A", "-t", "198.18.1.100:80", "-s", "rr"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "Service already exists"
    );
    let o = Command::new(RVSADM)
        .args(["--socket", "/nonexistent/rvsd.sock", "-L", "-n"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RVS_SOCKET"));
    assert_eq!(
        ok(&l, &["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    ok(&l, &["--set", "3600", "0", "0"]);
    assert_eq!(
        ok(&l, &["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 3600 120 300\n"
    );
}

/// A keep-alive HTTP stream from the client: a request every 10 ms until stopped. Returns
/// the servers that answered and the errors.
struct Stream {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<(Vec<String>, Vec<String>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    fn start(ns: &str) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let (ns, stop2, seen2) = (ns.to_string(), stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            net::enter(&ns);
            let mut c = HttpConn::connect(v4(VIP, 80), Duration::from_secs(5)).expect("connect");
            while !stop2.load(Ordering::Relaxed) {
                match c.get() {
                    Ok(name) => seen2.lock().unwrap().0.push(name),
                    Err(e) => {
                        seen2.lock().unwrap().1.push(e.to_string());
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let s = Stream {
            stop,
            seen,
            thread: Some(thread),
        };
        // Under way: it has had an answer.
        testkit::eventually("the stream's first answer", Duration::from_secs(10), || {
            (s.answers() > 0 || !s.seen.lock().unwrap().1.is_empty()).then_some(())
        });
        s
    }
    fn answers(&self) -> usize {
        self.seen.lock().unwrap().0.len()
    }
    fn finish(mut self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn wait_answers(s: &Stream, more_than: usize) {
    let start = std::time::Instant::now();
    while s.answers() <= more_than + 5 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the stream stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stream_survives_every_kind_of_change() {
    let mut l = nat_lab(&[1, 1, 0], 2);
    let stream = Stream::start(&l.client.ns);
    // (a) a real server added with rvsadm
    ok(
        &l,
        &[
            "-e",
            "-t",
            "198.18.1.100:80",
            "-r",
            "198.18.0.13:80",
            "-m",
            "-w",
            "1",
        ],
    );
    wait_answers(&stream, stream.answers());
    // (b) another service added and removed
    ok(&l, &["-A", "-t", "198.18.1.100:8080", "-s", "rr"]);
    ok(
        &l,
        &[
            "-a",
            "-t",
            "198.18.1.100:8080",
            "-r",
            "198.18.0.11:80",
            "-m",
        ],
    );
    wait_answers(&stream, stream.answers());
    ok(&l, &["-D", "-t", "198.18.1.100:8080"]);
    wait_answers(&stream, stream.answers());
    // (c) the YAML edited with an unrelated change and SIGHUP'd (the file first takes
    //     the running configuration, as an operator would save it)
    let cfg = l.t.rvsd_ref(0).config.clone();
    ok(&l, &["--save-config", cfg.to_str().unwrap()]);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replace("services:\n", "services:\n- vip: 198.18.1.100:9090\n  scheduler: lc\n  real_servers:\n  - { address: \"198.18.0.12:80\", forward: nat }\n");
    l.t.rvsd(0).reload(&text);
    assert!(ok(&l, &["-L", "-n"]).contains("TCP  198.18.1.100:9090 lc"));
    wait_answers(&stream, stream.answers());
    // (d) a broken YAML SIGHUP'd: rejected with line and key, nothing changes
    let before = ok(&l, &["-S", "-n"]);
    std::fs::write(
        &cfg,
        text.replace(
            "scheduler: lc",
            "scheduler: lc\n  persistence: { timeout: forever }",
        ),
    )
    .unwrap();
    let pid = l.t.rvsd_ref(0).pid().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let log = testkit::eventually("the reload rejected", Duration::from_secs(10), || {
        let log = l.t.rvsd_ref(0).log_text();
        log.contains("reload rejected").then_some(log)
    });
    assert!(
        log.contains("reload rejected")
            && log.contains("persistence.timeout")
            && log.contains(".yaml:"),
        "{log}"
    );
    assert_eq!(
        ok(&l, &["-S", "-n"]),
        before,
        "the running configuration is unchanged"
    );
    wait_answers(&stream, stream.answers());
    let (answers, errors) = stream.finish();
    assert!(errors.is_empty(), "the stream broke: {errors:?}");
    assert!(answers.len() > 30);
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "one connection, one server throughout"
    );
}

#[test]
fn reloads_under_load_lose_no_connection() {
    let l = nat_lab(&[1, 1, 1], 2);
    let client = l.client.ns.clone();
    let load = std::thread::spawn(move || get_many(&client, v4(VIP, 80), 2000));
    let cfg = std::fs::read_to_string(&l.t.rvsd_ref(0).config).unwrap();
    let mut reloads = 0;
    while !load.is_finished() {
        // Alternate an unrelated service in and out through SIGHUP, and edit a weight
        // through rvsadm.
        let text = if reloads % 2 == 0 {
            cfg.clone() + "  - { vip: \"198.18.1.100:9999\", scheduler: rr, real_servers: [] }\n"
        } else {
            cfg.clone()
        };
        l.t.rvsd_ref(0).reload(&text);
        ok(
            &l,
            &[
                "-e",
                "-t",
                "198.18.1.100:80",
                "-r",
                "198.18.0.12:80",
                "-m",
                "-w",
                if reloads % 2 == 0 { "2" } else { "1" },
            ],
        );
        reloads += 1;
    }
    let results = load.join().unwrap();
    let m = tally(&results);
    assert_eq!(
        m.values().sum::<usize>(),
        2000,
        "every connection succeeded ({reloads} reloads)"
    );
    assert!(
        reloads >= 5,
        "only {reloads} reloads happened during the load"
    );
}

/// rvsd's metrics, from inside the director's namespace.
fn scrape(l: &Lab) -> String {
    net::scrape_metrics(&l.dir.ns)
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[test]
fn metrics_follow_traffic_and_match_rvsadm() {
    let l = nat_lab(&[1, 1, 1], 2);
    let svc = "rvs_service_connections_total{proto=\"tcp\",vip=\"198.18.1.100:80\"}";
    let before = scrape(&l);
    assert!(
        before.starts_with("HTTP/1.1 200") || before.starts_with("HTTP/1.0 200"),
        "{before}"
    );
    assert_eq!(metric(&before, svc), 0);
    tally(&get_many(&l.client.ns, v4(VIP, 80), 30));
    let mid = scrape(&l);
    assert_eq!(metric(&mid, svc), 30);
    tally(&get_many(&l.client.ns, v4(VIP, 80), 12));
    // Closing handshakes may still be in flight: wait until two scrapes agree.
    let mut after = scrape(&l);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the counters never settled"
        );
        std::thread::sleep(Duration::from_millis(300));
        let again = scrape(&l);
        let body = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("rvs_service_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        if body(&again) == body(&after) {
            break;
        }
        after = again;
    }
    assert_eq!(metric(&after, svc), 42, "counters increase with traffic");
    // The same numbers as rvsadm -L --stats --exact shows.
    let stats = ok(&l, &["-L", "-n", "--stats", "--exact"]);
    let row: Vec<u64> = stats
        .lines()
        .nth(3)
        .unwrap()
        .split_whitespace()
        .skip(2)
        .map(|v| v.parse().unwrap())
        .collect();
    let m = |n: &str| {
        metric(
            &after,
            &format!("rvs_service_{n}_total{{proto=\"tcp\",vip=\"198.18.1.100:80\"}}"),
        )
    };
    assert_eq!(
        row,
        vec![
            m("connections"),
            m("packets_in"),
            m("packets_out"),
            m("bytes_in"),
            m("bytes_out")
        ],
        "{stats}\n{after}"
    );
    let rs1 = stats
        .lines()
        .nth(4)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(rs1, metric(&after, "rvs_real_server_connections_total{proto=\"tcp\",vip=\"198.18.1.100:80\",rs=\"198.18.0.11:80\"}"));
    assert!(after.contains("rvs_worker_rx_packets_total{worker=\"1\"}"));
    assert!(after.contains("rvs_port_tx_packets_total{worker=\"0\",port=\"lan0\"}"));
}
