//! rvsd: the rvs daemon. Brings up the EAL, the ports and the worker lcores from a YAML
//! config, serves the control socket, reloads on SIGHUP and shuts down cleanly on
//! SIGINT/SIGTERM (ports stopped and closed, EAL memory released).

use anyhow::{bail, Context, Result};
use clap::Parser;
use ctrlplane::config::Config;
use ctrlplane::ctl::{self, PortStatus, Request, Response, Status};
use ctrlplane::director::Director;
use ctrlplane::snapshot::PortHw;
use dataplane::io::{self, Eal, MbufPool, Port, PortParams, WorkerCtx};
use dataplane::ipvs::stats::IpvsStats;
use dataplane::params::EalParams;
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
    director: Arc<Mutex<Director>>,
    stats: Vec<Arc<WorkerStats>>,
    ipvs_stats: Vec<Arc<IpvsStats>>,
    stop: Arc<AtomicBool>,
    // Field order is drop order: workers are joined explicitly before these go.
    server: Option<ctl::Server>,
    metrics: Option<ctrlplane::metrics::MetricsServer>,
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
            devices: cfg
                .ports
                .iter()
                .map(|p| cfg.eal_device(p))
                .chain(cfg.kernel_twins().map(|(_, k)| cfg.kernel_device(k)))
                .collect(),
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
        // The kernel twins, after the ports (their I/O indexes follow the ports'), each
        // with its port's MAC.
        for (i, k) in cfg.kernel_twins() {
            let pp = PortParams {
                name: k.name.clone(),
                device: cfg.kernel_device(k),
                queues: w as u16,
                rx_desc: cfg.dataplane.rx_desc,
                tx_desc: cfg.dataplane.tx_desc,
                promiscuous: false,
            };
            let what = || {
                format!(
                    "{}: ports[{i}].kernel {:?} cannot start",
                    config_path.display(),
                    k.name
                )
            };
            let mut twin = Port::start(&pp, pool).with_context(what)?;
            twin.set_mac(ports[i].mac).with_context(what)?;
            ports.push(twin);
        }
        ctrlplane::kernel::bring_up(&cfg)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: the kernel exception path", config_path.display()))?;
        let hw: Vec<PortHw> = ports[..cfg.ports.len()]
            .iter()
            .map(|p| PortHw {
                mac: p.mac,
                mtu: p.mtu,
            })
            .collect();
        // Room for bursts of synced connections (a BACKUP installs them from here).
        let mail = Arc::new(Mailboxes::new(w, 16384));
        let redirect = Arc::new(Redirect::new(w, 4096));
        let stats: Vec<Arc<WorkerStats>> =
            (0..w).map(|_| Arc::new(WorkerStats::default())).collect();
        let ipvs_stats: Vec<Arc<IpvsStats>> =
            (0..w).map(|_| Arc::new(IpvsStats::default())).collect();
        let conn_capacity = cfg.ipvs.connections;
        // Connection sync's rings, one per worker: the daemon starts from the
        // configuration or later from ipvsadm's --start-daemon.
        let sync_rings = Some(dataplane::ipvs::sync::SyncRings::new(w, 16384));
        let (idle, burst) = (cfg.dataplane.idle, cfg.dataplane.burst);
        let director = Director::new(
            cfg,
            config_path,
            hw.clone(),
            ipvs_stats.clone(),
            Some(mail.clone()),
        );
        let cell = director.cell();
        let director = Arc::new(Mutex::new(director));
        // The health checker's runtime; the main loop takes its changes into the
        // director. Started before the workers, so that with `alpha` no real server
        // gets traffic before its first check.
        let health =
            ctrlplane::health::Health::start().context("starting the health checker's runtime")?;
        if let Ok(mut d) = director.lock() {
            d.attach_health(health);
            // VRRP before the workers too: a BACKUP must not answer for its addresses.
            d.attach_vrrp()
                .map_err(anyhow::Error::msg)
                .context("starting VRRP")?;
            if let Some(r) = &sync_rings {
                d.attach_sync(r.clone())
                    .map_err(anyhow::Error::msg)
                    .context("starting the sync daemon")?;
            }
        }
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
                conn_capacity,
                stop: stop.clone(),
                idle,
                burst,
                sync: sync_rings.clone(),
            })
            .collect();
        let workers = io::launch_workers(ctxs)?;
        let mut d = Daemon {
            director,
            stats,
            ipvs_stats,
            stop,
            server: None,
            metrics: None,
            ports,
            _eal: eal,
            workers: Some(workers),
        };
        d.server = Some(d.start_control(params.args(), hw)?);
        let listen = d
            .director
            .lock()
            .map(|x| x.cfg.metrics.listen.clone())
            .unwrap_or_default();
        if !listen.is_empty() {
            let addr = listen
                .parse()
                .with_context(|| format!("metrics.listen {listen:?}"))?;
            let m = ctrlplane::metrics::MetricsServer::start(
                addr,
                d.director.clone(),
                d.stats.clone(),
                d.ipvs_stats.clone(),
            )
            .map_err(anyhow::Error::msg)?;
            d.metrics = Some(m);
        }
        Ok(d)
    }

    fn start_control(&self, eal_args: Vec<String>, hw: Vec<PortHw>) -> Result<ctl::Server> {
        let director = self.director.clone();
        let stats = self.stats.clone();
        let ipvs_stats = self.ipvs_stats.clone();
        let started = Instant::now();
        let socket = director
            .lock()
            .expect("director lock")
            .cfg
            .control
            .socket
            .clone();
        let server = ctl::Server::start(&socket, move |req| {
            let Ok(mut d) = director.lock() else {
                return Response::Error {
                    message: "internal error: director lock poisoned".into(),
                };
            };
            match req {
                Request::Status => Response::Status(Status {
                    version: rvs::VERSION.to_string(),
                    pid: std::process::id(),
                    uptime_s: started.elapsed().as_secs(),
                    workers: stats.len(),
                    generation: d.cell().generation(),
                    config: d.config_path.display().to_string(),
                    ports: d
                        .cfg
                        .ports
                        .iter()
                        .zip(&hw)
                        .map(|(p, h)| PortStatus {
                            name: p.name.clone(),
                            device: d.cfg.eal_device(p),
                            mac: h.mac.to_string(),
                            mtu: h.mtu,
                            addresses: p.addresses.iter().map(|a| a.0.to_string()).collect(),
                        })
                        .collect(),
                    eal_args: eal_args.clone(),
                }),
                Request::Counters => {
                    let names: Vec<String> = d
                        .cfg
                        .ports
                        .iter()
                        .map(|p| p.name.clone())
                        .chain(d.cfg.kernel_twins().map(|(_, k)| k.name.clone()))
                        .collect();
                    Response::Counters(ctl::read_counters(&stats, &ipvs_stats, &names))
                }
                Request::Ipvs { commands } => match d.apply(&commands) {
                    Ok(generation) => Response::Applied { generation },
                    Err(message) => Response::Error { message },
                },
                Request::List { service } => match d.services(service) {
                    Ok(services) => Response::Listing {
                        services,
                        timeouts: d.timeouts(),
                        size: d.table_size(),
                    },
                    Err(message) => Response::Error { message },
                },
                Request::Save => Response::Listing {
                    services: d.configured_services(),
                    timeouts: d.timeouts(),
                    size: d.table_size(),
                },
                Request::Connections => Response::Connections {
                    conns: d.connections(),
                },
                Request::ConfigYaml => Response::ConfigYaml {
                    yaml: d.config_yaml(),
                },
                Request::Reload => match d.reload() {
                    Ok(generation) => Response::Reloaded { generation },
                    Err(message) => Response::Error { message },
                },
                Request::Health => Response::Health {
                    checks: d.health_status(),
                },
                Request::Vrrp => Response::Vrrp {
                    instances: d.vrrp_status(),
                },
                Request::Sync => Response::Sync {
                    daemon: d.sync_status(),
                },
            }
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
        let mut next_estimate = Instant::now() + Duration::from_secs(2);
        while !term.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            if let Ok(mut d) = self.director.lock() {
                d.refresh_health();
                d.refresh_vrrp();
            }
            if hup.swap(false, Ordering::Relaxed) {
                if let Ok(mut d) = self.director.lock() {
                    if let Err(e) = d.reload() {
                        tracing::error!("reload rejected, running configuration unchanged: {e}");
                    }
                }
            }
            if Instant::now() >= next_estimate {
                next_estimate += Duration::from_secs(2);
                if let Ok(mut d) = self.director.lock() {
                    d.estimate();
                }
            }
        }
        tracing::info!("shutting down");
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Ok(mut d) = self.director.lock() {
            // Priority 0 first, while the ports still carry it.
            d.stop_vrrp();
            d.stop_health();
        }
        self.server.take();
        self.metrics.take();
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
