//! rvsd: the rvs daemon. Brings up the EAL, the ports and the worker lcores from a YAML
//! config, serves the control socket, reloads on SIGHUP and shuts down cleanly on
//! SIGINT/SIGTERM (ports stopped and closed, EAL memory released).

use anyhow::{bail, Context, Result};
use clap::Parser;
use ctrlplane::config::Config;
use ctrlplane::ctl::{self, PortStatus, Request, Response, Status};
use ctrlplane::snapshot::{self as snapbuild, PortHw};
use dataplane::io::{self, Eal, MbufPool, Port, PortParams, WorkerCtx};
use dataplane::ipvs::stats::IpvsStats;
use dataplane::params::EalParams;
use dataplane::snapshot::SnapshotCell;
use dataplane::stats::WorkerStats;
use dataplane::worker::{Mailboxes, Redirect};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "rvsd", version = rvs::VERSION, about = "Rust Virtual Server daemon: a kernel-bypass L4 load balancer on DPDK")]
struct Args {
    /// The YAML configuration file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration and exit (0 when valid).
    #[arg(long)]
    check: bool,
    /// Override control.socket from the config.
    #[arg(long, value_name = "PATH", env = "RVS_SOCKET")]
    socket: Option<PathBuf>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let code = match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rvsd: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(args: Args) -> Result<()> {
    let mut cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            if args.check {
                eprintln!("{e}");
                std::process::exit(2);
            }
            bail!("{e}");
        }
    };
    if let Some(s) = &args.socket {
        cfg.control.socket = s.clone();
    }
    if args.check {
        println!(
            "{}: configuration is valid ({} port(s), {} route(s), {} service(s), {} worker(s))",
            args.config.display(),
            cfg.ports.len(),
            cfg.routes.len(),
            cfg.services.len(),
            cfg.dataplane.workers
        );
        return Ok(());
    }
    Daemon::start(cfg, args.config)?.run()
}

struct Daemon {
    cfg: Arc<Mutex<Config>>,
    config_path: PathBuf,
    cell: Arc<SnapshotCell>,
    builder: Arc<Mutex<snapbuild::Builder>>,
    stats: Vec<Arc<WorkerStats>>,
    ipvs_stats: Vec<Arc<IpvsStats>>,
    stop: Arc<AtomicBool>,
    // Field order is drop order: workers are joined explicitly before these go.
    server: Option<ctl::Server>,
    ports: Vec<Port>,
    _eal: Eal,
    workers: Option<io::WorkerHandles>,
}

impl Daemon {
    fn start(cfg: Config, config_path: PathBuf) -> Result<Daemon> {
        let w = cfg.dataplane.workers;
        let params = EalParams {
            cores: cfg.cpus(),
            workers: w,
            file_prefix: cfg.eal.file_prefix.clone(),
            hugepages: cfg.eal.hugepages,
            memory_mb: cfg.eal.memory_mb,
            devices: cfg.ports.iter().map(|p| cfg.eal_device(p)).collect(),
            extra_args: cfg.eal.extra_args.clone(),
        };
        let eal = Eal::init(&params)?;
        let pool = MbufPool::create("rvs_pkt", cfg.dataplane.mbufs, 0)?;
        let mut ports = Vec::new();
        for p in &cfg.ports {
            let pp = PortParams {
                name: p.name.clone(),
                device: cfg.eal_device(p),
                queues: w as u16,
                rx_desc: cfg.dataplane.rx_desc,
                tx_desc: cfg.dataplane.tx_desc,
                promiscuous: p.promiscuous,
            };
            ports.push(Port::start(&pp, pool).with_context(|| {
                format!("{}: port {:?} cannot start", config_path.display(), p.name)
            })?);
        }
        let hw: Vec<PortHw> = ports
            .iter()
            .map(|p| PortHw {
                mac: p.mac,
                mtu: p.mtu,
            })
            .collect();
        let mut builder = snapbuild::Builder::default();
        let cell = Arc::new(SnapshotCell::new(builder.build(&cfg, &hw, |_| false)));
        let mail = Arc::new(Mailboxes::new(w, 1024));
        let redirect = Arc::new(Redirect::new(w, 4096));
        let stats: Vec<Arc<WorkerStats>> =
            (0..w).map(|_| Arc::new(WorkerStats::default())).collect();
        let ipvs_stats: Vec<Arc<IpvsStats>> =
            (0..w).map(|_| Arc::new(IpvsStats::default())).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let ctxs = (0..w)
            .map(|i| WorkerCtx {
                id: i,
                ports: ports.iter().map(|p| p.id).collect(),
                queue: i as u16,
                pool,
                cell: cell.clone(),
                mail: mail.clone(),
                redirect: redirect.clone(),
                stats: stats[i].clone(),
                ipvs_stats: ipvs_stats[i].clone(),
                conn_capacity: cfg.ipvs.connections,
                stop: stop.clone(),
                idle: cfg.dataplane.idle,
                burst: cfg.dataplane.burst,
            })
            .collect();
        let workers = io::launch_workers(ctxs)?;
        let mut d = Daemon {
            cfg: Arc::new(Mutex::new(cfg)),
            config_path,
            cell,
            builder: Arc::new(Mutex::new(builder)),
            stats,
            ipvs_stats,
            stop,
            server: None,
            ports,
            _eal: eal,
            workers: Some(workers),
        };
        d.server = Some(d.start_control(params.args(), hw)?);
        Ok(d)
    }

    fn start_control(&self, eal_args: Vec<String>, hw: Vec<PortHw>) -> Result<ctl::Server> {
        let cfg = self.cfg.clone();
        let cell = self.cell.clone();
        let stats = self.stats.clone();
        let ipvs_stats = self.ipvs_stats.clone();
        let builder = self.builder.clone();
        let path = self.config_path.clone();
        let started = Instant::now();
        let socket = cfg.lock().expect("config lock").control.socket.clone();
        let server = ctl::Server::start(&socket, move |req| match req {
            Request::Status => {
                let c = cfg.lock().expect("config lock");
                Response::Status(Status {
                    version: rvs::VERSION.to_string(),
                    pid: std::process::id(),
                    uptime_s: started.elapsed().as_secs(),
                    workers: stats.len(),
                    generation: cell.generation(),
                    config: path.display().to_string(),
                    ports: c
                        .ports
                        .iter()
                        .zip(&hw)
                        .map(|(p, h)| PortStatus {
                            name: p.name.clone(),
                            device: c.eal_device(p),
                            mac: h.mac.to_string(),
                            mtu: h.mtu,
                            addresses: p.addresses.iter().map(|a| a.0.to_string()).collect(),
                        })
                        .collect(),
                    eal_args: eal_args.clone(),
                })
            }
            Request::Counters => {
                let names: Vec<String> = cfg
                    .lock()
                    .expect("config lock")
                    .ports
                    .iter()
                    .map(|p| p.name.clone())
                    .collect();
                Response::Counters(ctl::read_counters(&stats, &ipvs_stats, &names))
            }
            Request::Services => Response::Services {
                services: ctl::read_services(&cell.load().ipvs, &ipvs_stats),
            },
            Request::Reload => match reload(&cfg, &cell, &builder, &ipvs_stats, &path, &hw) {
                Ok(generation) => Response::Reloaded { generation },
                Err(e) => Response::Error { message: e },
            },
        })?;
        tracing::info!(socket = %socket.display(), "control socket listening");
        Ok(server)
    }

    fn run(mut self) -> Result<()> {
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, term.clone()).context("installing signal handlers")?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
            .context("installing SIGHUP handler")?;
        tracing::info!(pid = std::process::id(), "rvsd running");
        while !term.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            if hup.swap(false, Ordering::Relaxed) {
                let hw: Vec<PortHw> = self
                    .ports
                    .iter()
                    .map(|p| PortHw {
                        mac: p.mac,
                        mtu: p.mtu,
                    })
                    .collect();
                if let Err(e) = reload(
                    &self.cfg,
                    &self.cell,
                    &self.builder,
                    &self.ipvs_stats,
                    &self.config_path,
                    &hw,
                ) {
                    tracing::error!("reload rejected, running configuration unchanged: {e}");
                }
            }
        }
        tracing::info!("shutting down");
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.server.take();
        self.stop.store(true, Ordering::Relaxed);
        let failed = self.workers.take().map(|w| w.wait()).unwrap_or(0);
        self.ports.clear();
        if failed > 0 {
            bail!("{failed} worker(s) ended with an error (see the log above)");
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // On an error path: still stop the lcores before the ports and the EAL go away.
        if self.workers.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// Re-reads the config file, validates it completely and publishes the new snapshot.
/// On any error the running configuration stays as it is.
fn reload(
    cfg: &Mutex<Config>,
    cell: &SnapshotCell,
    builder: &Mutex<snapbuild::Builder>,
    ipvs_stats: &[Arc<IpvsStats>],
    path: &std::path::Path,
    hw: &[PortHw],
) -> Result<u64, String> {
    let mut next = Config::load(path).map_err(|e| e.to_string())?;
    let mut cur = cfg.lock().map_err(|_| "config lock poisoned".to_string())?;
    next.control = cur.control.clone(); // the socket may have been overridden on the command line
    if let Some(why) = snapbuild::restart_needed(&cur, &next) {
        return Err(format!(
            "{}: {why}; restart rvsd to apply it",
            path.display()
        ));
    }
    // A real-server slot is busy while any worker still counts connections on it.
    let in_use = |slot: u32| {
        ipvs_stats.iter().any(|w| {
            let d = &w.dests[slot as usize];
            d.active.get() + d.inactive.get() + d.persist.get() > 0
        })
    };
    let snap = builder
        .lock()
        .map_err(|_| "builder lock poisoned".to_string())?
        .build(&next, hw, in_use);
    let g = cell.publish(snap);
    *cur = next;
    tracing::info!(generation = g, "configuration reloaded");
    Ok(g)
}
