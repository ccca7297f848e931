//! The control socket: one JSON request per line, one JSON response per line, over a Unix
//! stream socket. Every message carries the protocol version `v`; a daemon answers a
//! request of another version with an error that says which it speaks.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Counters,
    /// ipvsadm commands, applied all or nothing.
    Ipvs {
        commands: Vec<crate::ipvsadm::Command>,
    },
    /// The services (one, or all) with counters and rates, for -L and -S.
    List {
        service: Option<crate::ipvsadm::ServiceKey>,
    },
    /// The configured services (what health overlays is left out), for -S.
    Save,
    /// Every worker's connections, for -L -c.
    Connections,
    /// The running configuration as YAML.
    ConfigYaml,
    /// Re-read the config file and apply it (as SIGHUP does).
    Reload,
    /// Every health checker's state.
    Health,
    /// Every VRRP instance's state.
    Vrrp,
    /// The sync daemon's role and counters (`-L --daemon`).
    Sync,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Status(Status),
    Counters(Counters),
    Applied {
        generation: u64,
    },
    Listing {
        services: Vec<crate::ipvsadm::format::ServiceView>,
        timeouts: (u32, u32, u32),
        size: usize,
    },
    Connections {
        conns: Vec<crate::ipvsadm::format::ConnView>,
    },
    ConfigYaml {
        yaml: String,
    },
    Reloaded {
        generation: u64,
    },
    Health {
        checks: Vec<crate::health::CheckStatus>,
    },
    Vrrp {
        instances: Vec<crate::vrrp::InstanceStatus>,
    },
    Sync {
        daemon: Option<crate::sync::SyncStatus>,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub v: u32,
    #[serde(flatten)]
    pub body: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub workers: usize,
    pub generation: u64,
    pub config: String,
    pub ports: Vec<PortStatus>,
    pub eal_args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub name: String,
    pub device: String,
    pub mac: String,
    pub mtu: u16,
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counters {
    pub workers: Vec<WorkerCounters>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WorkerCounters {
    pub worker: usize,
    pub generation: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub arp_requests: u64,
    pub arp_replies: u64,
    pub arp_replies_received: u64,
    pub icmp_echo_replies: u64,
    /// Frames passed up to the kernel twins, and frames they sent out.
    #[serde(default)]
    pub to_kernel: u64,
    #[serde(default)]
    pub from_kernel: u64,
    pub loops: u64,
    pub idle_sleeps: u64,
    pub connections: u64,
    pub redirected_out: u64,
    pub redirected_in: u64,
    pub ports: Vec<PortCounters>,
    /// Only reasons with a non-zero count, in the order of `DropReason::ALL`.
    pub drops: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortCounters {
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

impl Counters {
    /// The sum of one drop reason over all workers.
    pub fn drops(&self, reason: &str) -> u64 {
        self.workers
            .iter()
            .flat_map(|w| &w.drops)
            .filter(|(r, _)| r == reason)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Reads every worker's counters (each written by its worker alone).
pub fn read_counters(
    stats: &[Arc<dataplane::stats::WorkerStats>],
    ipvs: &[Arc<dataplane::ipvs::stats::IpvsStats>],
    port_names: &[String],
) -> Counters {
    use dataplane::stats::DropReason;
    Counters {
        workers: stats
            .iter()
            .enumerate()
            .map(|(i, s)| WorkerCounters {
                worker: i,
                generation: s.snapshot_generation.get(),
                rx_packets: s.rx_packets.get(),
                rx_bytes: s.rx_bytes.get(),
                tx_packets: s.tx_packets.get(),
                tx_bytes: s.tx_bytes.get(),
                arp_requests: s.arp_requests.get(),
                arp_replies: s.arp_replies.get(),
                arp_replies_received: s.arp_replies_received.get(),
                icmp_echo_replies: s.icmp_echo_replies.get(),
                to_kernel: s.to_kernel.get(),
                from_kernel: s.from_kernel.get(),
                loops: s.loops.get(),
                idle_sleeps: s.idle_sleeps.get(),
                connections: ipvs.get(i).map_or(0, |x| x.conns.get()),
                redirected_out: ipvs.get(i).map_or(0, |x| x.redirected_out.get()),
                redirected_in: ipvs.get(i).map_or(0, |x| x.redirected_in.get()),
                ports: port_names
                    .iter()
                    .zip(s.ports.iter())
                    .map(|(n, p)| PortCounters {
                        port: n.clone(),
                        rx_packets: p.rx_packets.get(),
                        rx_bytes: p.rx_bytes.get(),
                        tx_packets: p.tx_packets.get(),
                        tx_bytes: p.tx_bytes.get(),
                        tx_dropped: p.tx_dropped.get(),
                    })
                    .collect(),
                drops: DropReason::ALL
                    .iter()
                    .map(|r| (r.name().to_string(), s.drops(*r)))
                    .filter(|(_, n)| *n > 0)
                    .collect(),
            })
            .collect(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach rvsd at {path}: {err}. Is rvsd running? Point at its socket with --socket PATH or RVS_SOCKET=PATH (the path is control.socket in its config)")]
    Connect { path: String, err: std::io::Error },
    #[error("control socket {path}: {what}")]
    Socket { path: String, what: String },
    #[error("rvsd answered: {0}")]
    Remote(String),
}

/// Sends one request and waits for its response.
pub fn call(path: &Path, req: &Request) -> Result<Response, CtlError> {
    let p = path.display().to_string();
    let mut s = UnixStream::connect(path).map_err(|err| CtlError::Connect {
        path: p.clone(),
        err,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut line = serde_json::to_string(&Envelope {
        v: PROTOCOL_VERSION,
        body: req,
    })
    .expect("requests serialise");
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(|e| CtlError::Socket {
        path: p.clone(),
        what: e.to_string(),
    })?;
    let mut reply = String::new();
    BufReader::new(&s)
        .read_line(&mut reply)
        .map_err(|e| CtlError::Socket {
            path: p.clone(),
            what: e.to_string(),
        })?;
    let env: Envelope<Response> = serde_json::from_str(&reply).map_err(|e| CtlError::Socket {
        path: p.clone(),
        what: format!("bad response: {e}"),
    })?;
    match env.body {
        Response::Error { message } => Err(CtlError::Remote(message)),
        r => Ok(r),
    }
}

/// A listening control socket served by a background thread.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `path` (creating its directory, replacing a stale socket but refusing to
    /// take over one that a live daemon answers on) and serves requests with `handler`.
    pub fn start<H>(path: &Path, handler: H) -> Result<Server, CtlError>
    where
        H: Fn(Request) -> Response + Send + 'static,
    {
        let p = path.display().to_string();
        let sock_err = |what: String| CtlError::Socket {
            path: p.clone(),
            what,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| sock_err(format!("cannot create {}: {e}", dir.display())))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(sock_err(
                    "another rvsd is listening here; stop it or set control.socket to another path"
                        .into(),
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| sock_err(format!("cannot remove stale socket: {e}")))?;
        }
        let listener =
            UnixListener::bind(path).map_err(|e| sock_err(format!("cannot bind: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| sock_err(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-ctl".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => serve(s, &handler),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "control socket accept failed");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .map_err(|e| sock_err(format!("cannot start thread: {e}")))?;
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

/// One request line as a client sends it: its envelope, then its body.
pub fn decode_request(line: &str) -> Result<Request, String> {
    match serde_json::from_str::<Envelope<Request>>(line) {
        Ok(env) if env.v == PROTOCOL_VERSION => Ok(env.body),
        Ok(env) => Err(format!(
            "protocol version {} not supported; this rvsd speaks {PROTOCOL_VERSION}",
            env.v
        )),
        Err(e) => Err(format!("bad request: {e}")),
    }
}

fn serve<H: Fn(Request) -> Response>(s: UnixStream, handler: &H) {
    s.set_nonblocking(false).ok();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut line = String::new();
    if BufReader::new(&s).read_line(&mut line).is_err() {
        return;
    }
    let resp = match decode_request(&line) {
        Ok(req) => handler(req),
        Err(message) => Response::Error { message },
    };
    let mut out = serde_json::to_string(&Envelope {
        v: PROTOCOL_VERSION,
        body: resp,
    })
    .unwrap_or_default();
    out.push('\n');
    let _ = (&s).write_all(out.as_bytes());
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_response_over_a_real_socket() {
        let dir = std::env::temp_dir().join(format!("rvs-ctl-test-{}", std::process::id()));
        let path = dir.join("s.sock");
        let server = Server::start(&path, |req| match req {
            Request::Counters => Response::Counters(Counters {
                workers: vec![WorkerCounters {
                    worker: 0,
                    drops: vec![("not_local".into(), 3)],
                    ..Default::default()
                }],
            }),
            _ => Response::Error {
                message: "no".into(),
            },
        })
        .unwrap();
        match call(&path, &Request::Counters).unwrap() {
            Response::Counters(c) => assert_eq!(c.drops("not_local"), 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(call(&path, &Request::Status), Err(CtlError::Remote(m)) if m == "no"));
        assert!(
            Server::start(&path, |_| Response::Error {
                message: String::new()
            })
            .is_err(),
            "a live socket is not taken over"
        );
        drop(server);
        assert!(!path.exists(), "socket removed on shutdown");
        match call(&path, &Request::Status) {
            Err(e @ CtlError::Connect { .. }) => assert!(e.to_string().contains("RVS_SOCKET")),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn every_response_encodes() {
        let r = Response::Listing {
            services: vec![],
            timeouts: (900, 120, 300),
            size: 4096,
        };
        let s = serde_json::to_string(&Envelope {
            v: 1,
            body: r.clone(),
        })
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Envelope<Response>>(&s).unwrap().body,
            r
        );
    }

    #[test]
    fn wire_format_is_tagged_and_versioned() {
        let s = serde_json::to_string(&Envelope {
            v: 1,
            body: Request::Counters,
        })
        .unwrap();
        assert_eq!(s, r#"{"v":1,"cmd":"counters"}"#);
    }
}
