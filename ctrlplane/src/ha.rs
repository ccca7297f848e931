//! The director's high-availability half: VRRP (which decides the owned addresses) and
//! connection sync (whose role follows VRRP, or ipvsadm's --start-daemon).

use crate::config::LvsSyncConf;
use crate::director::Director;
use crate::health::Health;
use crate::ipvsadm::Command;
use crate::sync::SyncDaemon;
use dataplane::ipvs::sync::SyncRings;
use std::sync::Arc;

impl Director {
    /// Starts connection sync over the workers' `rings` (on the control plane's
    /// runtime), when the configuration asks for it.
    pub fn attach_sync(&mut self, rings: Arc<SyncRings>) -> Result<(), String> {
        self.sync_rings = Some(rings);
        self.start_sync()?;
        if self.sync.is_some() {
            self.sync_roles = (true, true);
        }
        Ok(())
    }

    fn start_sync(&mut self) -> Result<(), String> {
        let (Some(handle), Some(mail), Some(rings)) = (
            self.health.as_ref().and_then(Health::handle),
            &self.mail,
            &self.sync_rings,
        ) else {
            return Err("the control plane's runtime is not running".into());
        };
        self.sync = None;
        self.sync = SyncDaemon::start(
            &handle,
            &self.cfg,
            rings.clone(),
            mail.clone(),
            self.cell.clone(),
        )?;
        self.follow_sync_role();
        Ok(())
    }

    /// ipvsadm's `--start-daemon master|backup --mcast-interface IF --syncid N` and
    /// `--stop-daemon master|backup`, when no VRRP instance drives the daemon: a master
    /// sends, a backup receives (rvs's daemon always listens while it runs).
    pub(crate) fn sync_daemon_command(&mut self, c: &Command) -> Result<(), String> {
        match c {
            Command::StartDaemon {
                master,
                interface,
                syncid,
            } => {
                let port = match interface {
                    Some(i) => self
                        .cfg
                        .ports
                        .iter()
                        .find(|p| &p.name == i || p.kernel.as_ref().is_some_and(|k| &k.name == i))
                        .ok_or_else(|| {
                            format!("--mcast-interface {i}: no such port or kernel twin")
                        })?,
                    None => self.cfg.ports.iter().find(|p| p.kernel.is_some()).ok_or(
                        "no port has a kernel twin for the sync daemon: add `kernel:` to one",
                    )?,
                };
                if port.kernel.is_none() {
                    return Err(format!(
                        "port {:?} has no kernel twin: sync messages use the exception path",
                        port.name
                    ));
                }
                let port_name = port.name.clone();
                let conf = LvsSyncConf {
                    interface: port.name.clone(),
                    vrrp_instance: None,
                    syncid: *syncid,
                    ..self.cfg.lvs_sync_daemon.clone().unwrap_or(LvsSyncConf {
                        interface: String::new(),
                        vrrp_instance: None,
                        syncid: 0,
                        maxlen: 1472,
                        port: crate::sync::msg::PORT,
                        group: crate::config::Addr(crate::sync::msg::GROUP),
                        peer: None,
                    })
                };
                let running_same =
                    self.sync.is_some()
                        && self.cfg.lvs_sync_daemon.as_ref().is_some_and(|c| {
                            c.interface == conf.interface && c.syncid == conf.syncid
                        });
                if *master && self.sync_roles.0 || !*master && self.sync_roles.1 {
                    return Err("Sync daemon is already running".into());
                }
                if !running_same {
                    self.cfg.lvs_sync_daemon = Some(conf);
                    self.start_sync()?;
                }
                if *master {
                    self.sync_roles.0 = true;
                } else {
                    self.sync_roles.1 = true;
                }
                // `-L --daemon` names the interface as it was given, as ipvsadm does.
                self.sync_label = Some(interface.clone().unwrap_or_else(|| port_name.clone()));
            }
            Command::StopDaemon { master } => {
                if *master {
                    self.sync_roles.0 = false;
                } else {
                    self.sync_roles.1 = false;
                }
                if self.sync_roles == (false, false) {
                    self.sync = None;
                    self.sync_label = None;
                    self.cfg.lvs_sync_daemon = None;
                    if let Some(r) = &self.sync_rings {
                        r.master.store(false, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
        if let Some(s) = &self.sync {
            if s.conf.vrrp_instance.is_none() {
                s.set_master(self.sync_roles.0);
            }
        }
        Ok(())
    }

    /// The sync daemon is MASTER while its VRRP instance is (keepalived's rule).
    fn follow_sync_role(&self) {
        let Some(s) = &self.sync else {
            return;
        };
        if let Some(name) = &s.conf.vrrp_instance {
            let master = self
                .vrrp_status()
                .iter()
                .any(|i| &i.name == name && i.state == crate::vrrp::fsm::State::Master);
            s.set_master(master);
        }
    }

    /// The sync daemon's role and counters, for `-L --daemon` and the metrics.
    pub fn sync_status(&self) -> Option<crate::sync::SyncStatus> {
        self.sync.as_ref().map(|s| {
            let mut st = s.status();
            if s.conf.vrrp_instance.is_none() {
                st.backup = self.sync_roles.1;
            }
            if let Some(l) = &self.sync_label {
                st.interface = l.clone();
            }
            st
        })
    }

    /// Starts the configuration's VRRP instances on the health checker's runtime (one
    /// runtime for the control plane); from now on VRRP decides which virtual addresses
    /// are owned. Without instances nothing changes.
    pub fn attach_vrrp(&mut self) -> Result<(), String> {
        let Some(handle) = self.health.as_ref().and_then(Health::handle) else {
            return Err("the control plane's runtime is not running".into());
        };
        self.vrrp = crate::vrrp::Vrrp::start(&handle, &self.cfg)?;
        if let Some(v) = &self.vrrp {
            v.quorum(self.overlay.quorum_lost.clone());
            self.ha = v.ha();
            self.publish();
        }
        Ok(())
    }

    /// Takes VRRP's address overlay if an instance changed state; publishes then.
    pub fn refresh_vrrp(&mut self) {
        if let Some(ha) = self.vrrp.as_ref().and_then(crate::vrrp::Vrrp::poll) {
            if ha != self.ha {
                self.ha = ha;
                self.publish();
            }
            self.follow_sync_role();
        }
    }

    /// Stops VRRP (a MASTER sends priority 0 first) and connection sync.
    pub fn stop_vrrp(&mut self) {
        self.sync = None;
        if let Some(v) = self.vrrp.take() {
            v.stop();
        }
    }

    /// Every VRRP instance's state, for `rvsadm --vrrp`.
    pub fn vrrp_status(&self) -> Vec<crate::vrrp::InstanceStatus> {
        self.vrrp.as_ref().map(|v| v.status()).unwrap_or_default()
    }
}
