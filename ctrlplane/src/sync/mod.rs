//! Connection sync, the control plane's half: keepalived's `lvs_sync_daemon` and the
//! kernel's sync threads in one task of the control plane's runtime. As MASTER it drains
//! the workers' rings every 20 ms into version 1 messages (`msg`) sent to the group (or a
//! unicast peer) through the port's kernel twin; as BACKUP it receives them, checks the
//! syncid, and posts each connection to the worker that will own its packets. The
//! MASTER role follows the named VRRP instance (keepalived ties the sync daemon to it);
//! without one, a director is both.

pub mod msg;

use crate::config::{Config, LvsSyncConf};
use dataplane::ipvs::sync::{sync_owner, SyncConn, SyncRings};
use dataplane::snapshot::SnapshotCell;
use dataplane::worker::{Mailboxes, Msg};
use serde::{Deserialize, Serialize};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// What `-L --daemon` and the metrics show.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub conns_sent: AtomicU64,
    pub conns_received: AtomicU64,
    /// Received messages refused (bad format or another syncid) and connections a
    /// worker's mailbox had no room for.
    pub messages_bad: AtomicU64,
    pub conns_undelivered: AtomicU64,
}

/// A snapshot of `SyncStats` and the role, for the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub interface: String,
    pub syncid: u8,
    /// Sending (a master) and receiving (a backup).
    pub master: bool,
    pub backup: bool,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub conns_sent: u64,
    pub conns_received: u64,
    pub messages_bad: u64,
    pub conns_undelivered: u64,
}

pub struct SyncDaemon {
    pub conf: LvsSyncConf,
    pub rings: Arc<SyncRings>,
    pub stats: Arc<SyncStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn socket(ifname: &str, conf: &LvsSyncConf) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(ifname.as_bytes()))?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, conf.port).into())?;
    let index = crate::vrrp::net::ifindex(ifname)?;
    s.join_multicast_v4_n(&conf.group.0, &InterfaceIndexOrAddress::Index(index))?;
    // The kernel's sync_mcast_ttl default: one hop.
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(false)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl SyncDaemon {
    /// Starts sending and receiving on `handle`'s runtime.
    pub fn start(
        handle: &tokio::runtime::Handle,
        cfg: &Config,
        rings: Arc<SyncRings>,
        mail: Arc<Mailboxes>,
        cell: Arc<SnapshotCell>,
    ) -> Result<Option<SyncDaemon>, String> {
        let Some(conf) = cfg.lvs_sync_daemon.clone() else {
            return Ok(None);
        };
        let ifname = cfg
            .ports
            .iter()
            .find(|p| p.name == conf.interface)
            .and_then(|p| p.kernel.as_ref())
            .map(|k| k.name.clone())
            .ok_or_else(|| {
                format!(
                    "lvs_sync_daemon: port {:?} has no kernel twin",
                    conf.interface
                )
            })?;
        let _g = handle.enter();
        let s = socket(&ifname, &conf)
            .map_err(|e| format!("lvs_sync_daemon: UDP {} on {ifname}: {e}", conf.port))?;
        // SAFETY: the socket is owned by the AsyncFd for its whole life, so its
        // descriptor stays valid and the same until the AsyncFd drops it.
        let s = Arc::new(unsafe { AsyncFd::register(s) }.map_err(|e| e.to_string())?);
        let stats = Arc::new(SyncStats::default());
        // Without a VRRP instance to follow, always a master (and always a backup).
        rings
            .master
            .store(conf.vrrp_instance.is_none(), Ordering::Relaxed);
        let tasks = vec![
            tokio::spawn(send(s.clone(), conf.clone(), rings.clone(), stats.clone())),
            tokio::spawn(receive(s, conf.clone(), mail, cell, stats.clone())),
        ];
        tracing::info!(interface = %conf.interface, syncid = conf.syncid, "sync daemon started");
        Ok(Some(SyncDaemon {
            conf,
            rings,
            stats,
            tasks,
        }))
    }

    /// Follows the VRRP instance's state: MASTER sends, otherwise only receives.
    pub fn set_master(&self, master: bool) {
        let was = self.rings.master.swap(master, Ordering::Relaxed);
        if was != master {
            tracing::info!(
                "Starting IPVS sync daemon as {} (syncid {})",
                if master { "master" } else { "backup" },
                self.conf.syncid
            );
        }
    }

    pub fn status(&self) -> SyncStatus {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SyncStatus {
            interface: self.conf.interface.clone(),
            syncid: self.conf.syncid,
            master: self.rings.master.load(Ordering::Relaxed),
            backup: true,
            messages_sent: g(&self.stats.messages_sent),
            messages_received: g(&self.stats.messages_received),
            conns_sent: g(&self.stats.conns_sent),
            conns_received: g(&self.stats.conns_received),
            messages_bad: g(&self.stats.messages_bad),
            conns_undelivered: g(&self.stats.conns_undelivered),
        }
    }
}

impl Drop for SyncDaemon {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn send(
    s: Arc<AsyncFd<Socket>>,
    conf: LvsSyncConf,
    rings: Arc<SyncRings>,
    stats: Arc<SyncStats>,
) {
    let to: SockAddr = SocketAddrV4::new(conf.peer.map_or(conf.group.0, |p| p.0), conf.port).into();
    let mut batch: Vec<SyncConn> = Vec::with_capacity(4096);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        batch.clear();
        for w in 0..rings.workers() {
            rings.drain(w, 4096, &mut batch);
        }
        if batch.is_empty() {
            continue;
        }
        for m in msg::encode(conf.syncid, &batch, usize::from(conf.maxlen)) {
            match s.get_ref().send_to(&m, &to) {
                Ok(_) => {
                    stats.messages_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!("sync: cannot send to {:?}: {e}", to.as_socket()),
            }
        }
        stats
            .conns_sent
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
}

async fn receive(
    s: Arc<AsyncFd<Socket>>,
    conf: LvsSyncConf,
    mail: Arc<Mailboxes>,
    cell: Arc<SnapshotCell>,
    stats: Arc<SyncStats>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok(mut guard) = s.readable().await else {
            return;
        };
        let n = match guard.try_io(|x| std::io::Read::read(&mut x.get_ref(), &mut buf)) {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => continue,
        };
        stats.messages_received.fetch_add(1, Ordering::Relaxed);
        let conns = match msg::decode(&buf[..n]) {
            Ok((id, c)) if conf.syncid == 0 || id == conf.syncid => c,
            _ => {
                stats.messages_bad.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        // Entries skipped for an unknown mandatory option count as undelivered.
        let skipped = usize::from(buf[4]).saturating_sub(conns.len());
        stats
            .conns_undelivered
            .fetch_add(skipped as u64, Ordering::Relaxed);
        let snap = cell.load();
        // A template goes to the worker of the connection synced right after it (the
        // master sends them in that order), so that they meet again.
        let mut pending: Option<SyncConn> = None;
        let workers = mail.workers();
        let post = |w: usize, c: SyncConn| {
            stats.conns_received.fetch_add(1, Ordering::Relaxed);
            if !mail.post(w, Msg::Sync(c)) {
                stats.conns_undelivered.fetch_add(1, Ordering::Relaxed);
            }
        };
        for c in conns {
            if c.template {
                if let Some(t) = pending.replace(c) {
                    post(sync_owner(&snap.ipvs, &t, workers), t);
                }
                continue;
            }
            let w = sync_owner(&snap.ipvs, &c, workers);
            if let Some(t) = pending.take() {
                post(w, t);
            }
            post(w, c);
        }
        if let Some(t) = pending {
            post(sync_owner(&snap.ipvs, &t, workers), t);
        }
    }
}
