//! Prometheus metrics in the text exposition format, served over HTTP at /metrics.
//!
//! Each scrape builds a fresh registry from the same summed views `rvsadm -L --stats`
//! shows (services, real servers) and from the workers' and ports' counters, so the two
//! always agree.

use crate::director::Director;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SvcLabels {
    proto: String,
    vip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RsLabels {
    proto: String,
    vip: String,
    rs: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    proto: String,
    vip: String,
    rs: String,
    check: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    proto: String,
    vip: String,
    rs: String,
    check: String,
    target: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabels {
    worker: String,
    port: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    worker: String,
    reason: String,
}

fn counter<
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
>(
    reg: &mut Registry,
    name: &str,
    help: &str,
) -> Family<L, Counter> {
    let f = Family::<L, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauge<
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
>(
    reg: &mut Registry,
    name: &str,
    help: &str,
) -> Family<L, Gauge> {
    let f = Family::<L, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

/// Renders every metric.
pub fn render(
    d: &Director,
    workers: &[Arc<dataplane::stats::WorkerStats>],
    ipvs: &[Arc<dataplane::ipvs::stats::IpvsStats>],
) -> String {
    let mut reg = Registry::default();
    let names = [
        "connections",
        "packets_in",
        "packets_out",
        "bytes_in",
        "bytes_out",
    ];
    let helps = [
        "Connections scheduled",
        "Packets from clients",
        "Packets to clients",
        "Bytes from clients",
        "Bytes to clients",
    ];
    let svc: Vec<Family<SvcLabels, Counter>> = names
        .iter()
        .zip(helps)
        .map(|(n, h)| {
            counter(
                &mut reg,
                &format!("rvs_service_{n}"),
                &format!("{h}, per virtual service"),
            )
        })
        .collect();
    let rs: Vec<Family<RsLabels, Counter>> = names
        .iter()
        .zip(helps)
        .map(|(n, h)| {
            counter(
                &mut reg,
                &format!("rvs_real_server_{n}"),
                &format!("{h}, per real server"),
            )
        })
        .collect();
    let active = gauge::<RsLabels>(
        &mut reg,
        "rvs_real_server_active_connections",
        "ESTABLISHED TCP connections (ActiveConn)",
    );
    let inactive = gauge::<RsLabels>(
        &mut reg,
        "rvs_real_server_inactive_connections",
        "Other connections (InActConn)",
    );
    let persist = gauge::<RsLabels>(
        &mut reg,
        "rvs_real_server_persistent_connections",
        "Persistence templates (PersistConn)",
    );
    let weight = gauge::<RsLabels>(&mut reg, "rvs_real_server_weight", "Weight (0 = quiescent)");
    for s in d.services(None).unwrap_or_default() {
        let proto = s.key.proto.name().to_lowercase();
        let vip = format!("{}:{}", s.key.addr, s.key.port);
        let l = SvcLabels {
            proto: proto.clone(),
            vip: vip.clone(),
        };
        for (f, v) in svc.iter().zip(s.stats.0) {
            f.get_or_create(&l).inc_by(v);
        }
        for r in &s.servers {
            let l = RsLabels {
                proto: proto.clone(),
                vip: vip.clone(),
                rs: format!("{}:{}", r.addr, r.port),
            };
            for (f, v) in rs.iter().zip(r.stats.0) {
                f.get_or_create(&l).inc_by(v);
            }
            active.get_or_create(&l).set(r.active as i64);
            inactive.get_or_create(&l).set(r.inactive as i64);
            persist.get_or_create(&l).set(r.persist as i64);
            weight.get_or_create(&l).set(i64::from(r.weight));
        }
    }
    health(&mut reg, d);
    vrrp(&mut reg, d);
    sync(&mut reg, d);
    sync_workers(&mut reg, ipvs);
    let port_names: Vec<String> = d.cfg.ports.iter().map(|p| p.name.clone()).collect();
    let c = crate::ctl::read_counters(workers, ipvs, &port_names);
    let w_rx = counter::<WorkerLabels>(
        &mut reg,
        "rvs_worker_rx_packets",
        "Packets received by a worker",
    );
    let w_tx = counter::<WorkerLabels>(
        &mut reg,
        "rvs_worker_tx_packets",
        "Packets transmitted by a worker",
    );
    let w_conns = gauge::<WorkerLabels>(
        &mut reg,
        "rvs_worker_connections",
        "Entries in a worker's connection table",
    );
    let w_redir = counter::<WorkerLabels>(
        &mut reg,
        "rvs_worker_redirected",
        "Packets handed to the owning worker",
    );
    let p_names = [
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "tx_dropped",
    ];
    let port: Vec<Family<PortLabels, Counter>> = p_names
        .iter()
        .map(|n| {
            counter(
                &mut reg,
                &format!("rvs_port_{n}"),
                &format!("Port {}", n.replace('_', " ")),
            )
        })
        .collect();
    let drops = counter::<DropLabels>(&mut reg, "rvs_drops", "Packets dropped, by reason");
    for w in &c.workers {
        let wl = WorkerLabels {
            worker: w.worker.to_string(),
        };
        w_rx.get_or_create(&wl).inc_by(w.rx_packets);
        w_tx.get_or_create(&wl).inc_by(w.tx_packets);
        w_conns.get_or_create(&wl).set(w.connections as i64);
        w_redir.get_or_create(&wl).inc_by(w.redirected_out);
        for p in &w.ports {
            let pl = PortLabels {
                worker: w.worker.to_string(),
                port: p.port.clone(),
            };
            for (f, v) in port.iter().zip([
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.tx_dropped,
            ]) {
                f.get_or_create(&pl).inc_by(v);
            }
        }
        for (reason, n) in &w.drops {
            drops
                .get_or_create(&DropLabels {
                    worker: w.worker.to_string(),
                    reason: reason.clone(),
                })
                .inc_by(*n);
        }
    }
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// The health checkers: each real server's state (up while all its checks pass), each
/// check's results and its last duration.
fn health(reg: &mut Registry, d: &Director) {
    let up = gauge::<RsLabels>(
        reg,
        "rvs_real_server_up",
        "1 while every health check of the real server passes (0 when it is taken out or inhibited)",
    );
    let total = counter::<ResultLabels>(reg, "rvs_health_checks", "Health checks run, by result");
    let last = Family::<CheckLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    reg.register(
        "rvs_health_check_duration_seconds",
        "How long the last health check took",
        last.clone(),
    );
    let mut rs_up: std::collections::HashMap<RsLabels, bool> = Default::default();
    for c in d.health_status() {
        let (proto, vip) = c
            .service
            .split_once(' ')
            .map(|(p, v)| (p.to_lowercase(), v.to_string()))
            .unwrap_or_default();
        let rl = RsLabels {
            proto: proto.clone(),
            vip: vip.clone(),
            rs: c.real_server.clone(),
        };
        *rs_up.entry(rl).or_insert(true) &= c.up;
        let cl = CheckLabels {
            proto,
            vip,
            rs: c.real_server.clone(),
            check: c.check.clone(),
            target: c.target.clone(),
        };
        for (result, n) in [("ok", c.checks_ok), ("failed", c.checks_failed)] {
            total
                .get_or_create(&ResultLabels {
                    proto: cl.proto.clone(),
                    vip: cl.vip.clone(),
                    rs: cl.rs.clone(),
                    check: cl.check.clone(),
                    target: cl.target.clone(),
                    result: result.into(),
                })
                .inc_by(n);
        }
        last.get_or_create(&cl).set(c.last_duration_ms / 1000.0);
    }
    for (l, u) in rs_up {
        up.get_or_create(&l).set(i64::from(u));
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceDirLabels {
    instance: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceReasonLabels {
    instance: String,
    reason: String,
}

/// VRRP instances: state as keepalived's MIB numbers it (0 init, 1 backup, 2 master,
/// 3 fault), effective priority, transitions, adverts sent and received, drops by reason.
fn vrrp(reg: &mut Registry, d: &Director) {
    let state = gauge::<InstanceLabels>(
        reg,
        "rvs_vrrp_state",
        "VRRP instance state: 0 init, 1 backup, 2 master, 3 fault",
    );
    let prio = gauge::<InstanceLabels>(reg, "rvs_vrrp_priority", "Effective VRRP priority");
    let trans = counter::<InstanceLabels>(
        reg,
        "rvs_vrrp_transitions",
        "VRRP state changes since start",
    );
    let adverts =
        counter::<InstanceDirLabels>(reg, "rvs_vrrp_adverts", "VRRP adverts, by direction");
    let dropped = counter::<InstanceReasonLabels>(
        reg,
        "rvs_vrrp_adverts_dropped",
        "Received VRRP adverts dropped, by reason",
    );
    for i in d.vrrp_status() {
        let l = InstanceLabels {
            instance: i.name.clone(),
        };
        use crate::vrrp::fsm::State;
        let v = match i.state {
            State::Init => 0,
            State::Backup => 1,
            State::Master => 2,
            State::Fault => 3,
        };
        state.get_or_create(&l).set(v);
        prio.get_or_create(&l).set(i64::from(i.priority));
        trans.get_or_create(&l).inc_by(i.transitions);
        for (dir, n) in [("sent", i.adverts_sent), ("received", i.adverts_received)] {
            adverts
                .get_or_create(&InstanceDirLabels {
                    instance: i.name.clone(),
                    direction: dir.into(),
                })
                .inc_by(n);
        }
        for (reason, n) in &i.dropped {
            dropped
                .get_or_create(&InstanceReasonLabels {
                    instance: i.name.clone(),
                    reason: reason.clone(),
                })
                .inc_by(*n);
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

/// Connection sync: messages and connections sent and received, bad messages,
/// connections no worker mailbox could take, and the role (1 while MASTER).
fn sync(reg: &mut Registry, d: &Director) {
    let Some(s) = d.sync_status() else {
        return;
    };
    let messages = counter::<DirectionLabels>(reg, "rvs_sync_messages", "Connection sync messages");
    let conns = counter::<DirectionLabels>(
        reg,
        "rvs_sync_connections",
        "Connections carried by sync messages",
    );
    for (dir, m, c) in [
        ("sent", s.messages_sent, s.conns_sent),
        ("received", s.messages_received, s.conns_received),
    ] {
        let l = DirectionLabels {
            direction: dir.into(),
        };
        messages.get_or_create(&l).inc_by(m);
        conns.get_or_create(&l).inc_by(c);
    }
    let bad = Counter::<u64>::default();
    bad.inc_by(s.messages_bad);
    reg.register(
        "rvs_sync_messages_bad",
        "Sync messages refused (malformed, another syncid)",
        bad,
    );
    let lost = Counter::<u64>::default();
    lost.inc_by(s.conns_undelivered);
    reg.register(
        "rvs_sync_connections_undelivered",
        "Synced connections a worker's mailbox had no room for",
        lost,
    );
    let master = Gauge::<i64>::default();
    master.set(i64::from(s.master));
    reg.register(
        "rvs_sync_master",
        "1 while the sync daemon sends (MASTER)",
        master,
    );
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerOnly {
    worker: String,
}

/// The workers' side of connection sync: handed to the sender (and dropped for a full
/// ring) on a MASTER; installed (and refused) on a BACKUP.
fn sync_workers(reg: &mut Registry, ipvs: &[Arc<dataplane::ipvs::stats::IpvsStats>]) {
    type Read = fn(&dataplane::ipvs::stats::IpvsStats) -> u64;
    let fams: Vec<(Family<WorkerOnly, Counter>, Read)> = vec![
        (
            counter(reg, "rvs_sync_worker_handed", "Connections a worker handed to the sync sender"),
            |s| s.sync_handed.get(),
        ),
        (
            counter(reg, "rvs_sync_worker_dropped", "Connections to sync dropped: the worker's sync ring was full"),
            |s| s.sync_dropped.get(),
        ),
        (
            counter(reg, "rvs_sync_worker_installed", "Synced connections a worker installed"),
            |s| s.sync_installed.get(),
        ),
        (
            counter(reg, "rvs_sync_worker_refused", "Synced connections refused (unknown service or real server, bad state, full table)"),
            |s| s.sync_refused.get(),
        ),
    ];
    for (i, s) in ipvs.iter().enumerate() {
        let l = WorkerOnly {
            worker: i.to_string(),
        };
        for (f, get) in &fams {
            f.get_or_create(&l).inc_by(get(s));
        }
    }
}

/// The /metrics endpoint; stops when dropped.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(
        listen: SocketAddr,
        director: Arc<Mutex<Director>>,
        workers: Vec<Arc<dataplane::stats::WorkerStats>>,
        ipvs: Vec<Arc<dataplane::ipvs::stats::IpvsStats>>,
    ) -> Result<MetricsServer, String> {
        let server = tiny_http::Server::http(listen)
            .map_err(|e| format!("metrics.listen {listen}: {e}; set metrics.listen to a free ADDRESS:PORT, or to \"\" to turn metrics off"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let resp = if req.url() == "/metrics" {
                        let body = match director.lock() {
                            Ok(d) => render(&d, &workers, &ipvs),
                            Err(_) => String::new(),
                        };
                        let ct = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                        )
                        .expect("static header");
                        tiny_http::Response::from_string(body).with_header(ct)
                    } else {
                        tiny_http::Response::from_string("rvs: metrics are at /metrics\n")
                            .with_status_code(404)
                    };
                    let _ = req.respond(resp);
                }
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        tracing::info!(%listen, "metrics at /metrics");
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::snapshot::PortHw;

    #[test]
    fn names_labels_and_values() {
        let yaml = "ports: [{ name: lan0, device: net_null0, addresses: [\"10.0.0.1/24\", \"192.0.2.1/24\"] }]\nservices:\n  - vip: \"192.0.2.10:80\"\n    real_servers: [{ address: \"10.0.0.11:80\", forward: nat, weight: 3 }]\n";
        let cfg = Config::parse(yaml, "t.yaml").unwrap();
        let ipvs: Vec<Arc<dataplane::ipvs::stats::IpvsStats>> =
            vec![Arc::default(), Arc::default()];
        let workers: Vec<Arc<dataplane::stats::WorkerStats>> = vec![Arc::default(), Arc::default()];
        let d = Director::new(
            cfg,
            "t.yaml".into(),
            vec![PortHw {
                mac: dataplane::packet::MacAddr([2, 0, 0, 0, 0, 1]),
                mtu: 1500,
            }],
            ipvs.clone(),
            None,
        );
        let slot = d.cell().load().ipvs.services[0].dests[0].slot as usize;
        // Counters from two workers are summed.
        ipvs[0].dests[slot].traffic.inpkts.add(5);
        ipvs[1].dests[slot].traffic.inpkts.add(7);
        ipvs[1].services[0].conns.add(2);
        workers[1].dropped(dataplane::stats::DropReason::NotLocal);
        let text = render(&d, &workers, &ipvs);
        for want in [
            "# TYPE rvs_service_connections counter",
            "rvs_service_connections_total{proto=\"tcp\",vip=\"192.0.2.10:80\"} 2",
            "rvs_real_server_packets_in_total{proto=\"tcp\",vip=\"192.0.2.10:80\",rs=\"10.0.0.11:80\"} 12",
            "rvs_real_server_weight{proto=\"tcp\",vip=\"192.0.2.10:80\",rs=\"10.0.0.11:80\"} 3",
            "rvs_drops_total{worker=\"1\",reason=\"not_local\"} 1",
            "rvs_port_rx_packets_total{worker=\"0\",port=\"lan0\"} 0",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
