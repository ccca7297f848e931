//! Code that runs inside a test host's namespace: HTTP real servers that answer with
//! their name, an HTTP client, and a raw capture of an interface.
//!
//! A thread that calls setns(2) lives in that namespace from then on, and sockets it
//! creates stay there; so each helper runs on a thread of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
    // SAFETY: setns on a valid namespace fd affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({ns}): {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread inside `ns` and returns its result.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// An HTTP server answering every request with `name`, keeping connections open
/// (HTTP/1.1 keep-alive) until the client closes them, or closing after the answer when
/// the request says `Connection: close` (or is HTTP/1.0 without keep-alive), as a real
/// web server does. Stops when dropped.
pub struct HttpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Peer addresses of accepted connections (for FULLNAT: the LIPs).
    pub peers: Arc<Mutex<Vec<SocketAddr>>>,
}

impl HttpServer {
    pub fn start(ns: &str, bind: SocketAddrV4, name: &str) -> HttpServer {
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (ns, name, stop2, peers2) = (
            ns.to_string(),
            name.to_string(),
            stop.clone(),
            peers.clone(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let l = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind} in {ns}: {e}"));
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, peer)) => {
                        peers2.lock().unwrap().push(peer);
                        let name = name.clone();
                        let stop3 = stop2.clone();
                        conns.push(std::thread::spawn(move || serve(s, &name, &stop3)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
                conns.retain(|c| !c.is_finished());
            }
            for c in conns {
                let _ = c.join();
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("server started");
        HttpServer {
            stop,
            thread: Some(thread),
            peers,
        }
    }
}

/// Answers HTTP requests on one connection with `name` until the client closes it, a
/// request asks to close it, or `stop` is set.
pub fn serve(s: TcpStream, name: &str, stop: &AtomicBool) {
    s.set_nonblocking(false).ok();
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut line = String::new();
    let mut in_request = false;
    let mut close = false;
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line == "\r\n" || line == "\n" {
                    if in_request {
                        let body = format!("{name}\n");
                        let conn = if close { "close" } else { "keep-alive" };
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
                            body.len()
                        );
                        if w.write_all(resp.as_bytes()).is_err() || close {
                            let _ = w.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                    }
                    in_request = false;
                } else {
                    if !in_request {
                        // The request line: HTTP/1.0 closes unless asked not to.
                        close = line.trim_end().ends_with("HTTP/1.0");
                    }
                    let l = line.to_ascii_lowercase();
                    if let Some(v) = l.strip_prefix("connection:") {
                        close = v.contains("close") || (close && !v.contains("keep-alive"));
                    }
                    in_request = true;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One keep-alive HTTP connection.
pub struct HttpConn {
    s: BufReader<TcpStream>,
}

impl HttpConn {
    pub fn connect(to: SocketAddrV4, timeout: Duration) -> std::io::Result<HttpConn> {
        let s = TcpStream::connect_timeout(&to.into(), timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(HttpConn {
            s: BufReader::new(s),
        })
    }
    /// Sends a GET and returns the body (the server's name).
    pub fn get(&mut self) -> std::io::Result<String> {
        self.s
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: rvs\r\n\r\n")?;
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.s.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body)?;
        Ok(String::from_utf8_lossy(&body).trim().to_string())
    }
    pub fn local_port(&self) -> u16 {
        self.s.get_ref().local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// `n` requests, each on a fresh TCP connection, from inside `ns`: the answers (server
/// names) or the errors.
pub fn get_many(ns: &str, to: SocketAddrV4, n: usize) -> Vec<Result<String, String>> {
    in_ns(ns, move || {
        (0..n)
            .map(|_| {
                HttpConn::connect(to, Duration::from_secs(5))
                    .and_then(|mut c| c.get())
                    .map_err(|e| e.to_string())
            })
            .collect()
    })
}

/// One answer of a `ClientLoop`: when it came, and the server's name or the error.
type Answer = (Instant, Result<String, String>);

/// A client that keeps asking, each request on a fresh connection, from inside a
/// namespace until dropped: what a user sees across a failure. Every answer is kept
/// with the time it came back.
pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Answer>>>,
    thread: Option<JoinHandle<()>>,
}

impl ClientLoop {
    pub fn start(ns: &str, to: SocketAddrV4) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ns, s, l) = (ns.to_string(), stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns);
            while !s.load(Ordering::Relaxed) {
                let r = HttpConn::connect(to, Duration::from_secs(2))
                    .and_then(|mut c| c.get())
                    .map_err(|e| e.to_string());
                l.lock().unwrap().push((Instant::now(), r));
                // A steady trickle, not a flood: the lab shares two cores.
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        ClientLoop {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The answers that came back after `t`, once there are at least `n` of them
    /// (panics after `within`).
    pub fn after(&self, t: Instant, n: usize, within: Duration) -> Vec<Result<String, String>> {
        let deadline = Instant::now() + within;
        loop {
            let got: Vec<_> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|(at, _)| *at > t)
                .map(|(_, r)| r.clone())
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "client loop: {} of {n} answers after {within:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts answers per server name; panics (with the errors) if any request failed.
pub fn tally(results: &[Result<String, String>]) -> std::collections::BTreeMap<String, usize> {
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} of {} requests failed: {:?}",
        errors.len(),
        results.len(),
        &errors[..errors.len().min(5)]
    );
    let mut m = std::collections::BTreeMap::new();
    for r in results.iter().flatten() {
        *m.entry(r.clone()).or_insert(0) += 1;
    }
    m
}

/// Captures frames on `ifname` inside `ns` (a raw AF_PACKET socket) while `during` runs
/// and for `linger` after; returns them.
pub fn capture<T>(
    ns: &str,
    ifname: &str,
    linger: Duration,
    during: impl FnOnce() -> T,
) -> (T, Vec<Vec<u8>>) {
    let (out, frames) = capture_timed(ns, ifname, linger, during);
    (out, frames.into_iter().map(|(_, f)| f).collect())
}

/// `capture`, with the moment each frame was received.
pub fn capture_timed<T>(
    ns: &str,
    ifname: &str,
    linger: Duration,
    during: impl FnOnce() -> T,
) -> (T, Vec<(Instant, Vec<u8>)>) {
    let (ns2, ifname) = (ns.to_string(), ifname.to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let cap = std::thread::spawn(move || {
        enter(&ns2);
        // SAFETY: plain socket calls with checked results.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let cname = std::ffi::CString::new(ifname).unwrap();
        let idx = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = idx as i32;
        let rc = unsafe {
            libc::bind(
                fd,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind raw socket");
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        tx.send(()).unwrap();
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        while !stop2.load(Ordering::Relaxed) {
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n > 0 {
                frames.push((Instant::now(), buf[..n as usize].to_vec()));
            }
        }
        unsafe { libc::close(fd) };
        frames
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("capture started");
    let out = during();
    let end = Instant::now() + linger;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    (out, cap.join().expect("capture thread"))
}

/// Sends `frames` out of `ifname` inside `ns`, over and over until `stop` is set, paced
/// at `pps` frames per second (0: as fast as a raw socket allows); returns how many were
/// sent.
pub fn blast(
    ns: &str,
    ifname: &str,
    frames: Vec<Vec<u8>>,
    pps: u64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    let (ns, ifname) = (ns.to_string(), ifname.to_string());
    std::thread::spawn(move || {
        enter(&ns);
        // SAFETY: plain socket calls with checked results.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let cname = std::ffi::CString::new(ifname).unwrap();
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        sll.sll_halen = 6;
        let mut sent = 0u64;
        let start = Instant::now();
        'outer: while !stop.load(Ordering::Relaxed) {
            for f in &frames {
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
                if pps > 0 && sent.is_multiple_of(64) {
                    // Hold the schedule: frame n leaves at n / pps seconds.
                    let due = Duration::from_secs_f64(sent as f64 / pps as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let rc = unsafe {
                    libc::sendto(
                        fd,
                        f.as_ptr() as *const libc::c_void,
                        f.len(),
                        0,
                        &sll as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if rc > 0 {
                    sent += 1;
                }
            }
        }
        unsafe { libc::close(fd) };
        sent
    })
}

/// GET http://127.0.0.1:9469/metrics (rvsd's default listener) inside `ns`: the whole
/// answer, status line included (checked to be 200).
pub fn scrape_metrics(ns: &str) -> String {
    let text = in_ns(ns, || {
        let mut s = TcpStream::connect("127.0.0.1:9469").expect("metrics endpoint");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    });
    assert!(
        text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
        "{text}"
    );
    text
}

/// The value of the sample of `name` whose labels include every one of `labels` (each
/// written as exposed: `rs="198.18.0.12:80"`); None when no sample has them.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<u64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        // The exact name: `rvs_real_server_up{`, not a longer name sharing its start.
        let set = series.strip_prefix(name)?.strip_prefix('{')?;
        let set = set.strip_suffix('}')?;
        let have: Vec<&str> = set.split(',').collect();
        if labels.iter().all(|l| have.contains(l)) {
            value.parse().ok()
        } else {
            None
        }
    })
}

/// Writes frames as a pcap file (for tshark).
pub fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    dataplane::packet::pcap::write_file(path, frames).expect("write pcap");
}

pub fn v4(a: &str, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(a.parse::<Ipv4Addr>().expect("address"), port)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request on a fresh connection to a server on loopback; the answer and
    /// whether the server then closed the connection.
    fn ask(addr: SocketAddr, request: &str) -> (String, bool) {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let closed = loop {
            match c.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        (String::from_utf8_lossy(&got).into_owned(), closed)
    }

    #[test]
    fn connection_close_is_honoured_and_keep_alive_is_the_default() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            for s in l.incoming().take(3) {
                serve(s.unwrap(), "rs1", &stop2);
            }
        });
        let (a, closed) = ask(
            addr,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            a.contains("Connection: close") && a.ends_with("rs1\n"),
            "{a}"
        );
        assert!(closed, "closed after the answer");
        let (a, closed) = ask(addr, "GET / HTTP/1.0\r\n\r\n");
        assert!(a.contains("Connection: close") && closed, "{a}");
        let (a, closed) = ask(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(a.contains("Connection: keep-alive"), "{a}");
        assert!(!closed, "kept open for the next request");
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }
}
