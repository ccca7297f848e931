//! The configuration model, YAML loading and validation.
//!
//! Loading is two passes: serde_yaml checks types and unknown keys (and reports the path
//! and position itself); `validate` then checks what types cannot (references between
//! sections, ranges, duplicates) and reports the position through `locate`. Every error
//! names the file, line, column and key, and says what to do.
//!
//! The model is split by concern, and every type is re-exported here:
//! `sections` (eal, dataplane, ports, routes, neighbours, control, ipvs, metrics),
//! `service` (virtual services and real servers), `values` (addresses, prefixes, MACs
//! and endpoints written as strings), `validate` (the second pass) and `cpus` (CPU lists).

mod cpus;
mod health;
pub mod locate;
mod sections;
mod service;
mod validate;
mod values;
mod vrrp;

pub use cpus::{online_cpus, parse_cpu_list};
pub use health::{CheckConf, CheckType, SorryServerConf, StatusCodes, UrlConf};
pub use sections::{
    ControlConf, DataplaneConf, EalConf, Hugepages, IdlePolicy, IpvsConf, KernelConf, MetricsConf,
    NeighConf, NeighbourConf, PortConf, RouteConf, TimeoutConf,
};
pub use service::{PersistenceConf, RealServerConf, ServiceConf};
pub use values::{Addr, Endpoint, Mac, Prefix};
pub use vrrp::{
    AuthConf, LvsSyncConf, TrackScriptConf, TrackServiceConf, VrrpInstanceConf, VrrpScriptConf,
    VrrpStateConf, VrrpSyncGroupConf,
};

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConf,
    #[serde(default)]
    pub dataplane: DataplaneConf,
    pub ports: Vec<PortConf>,
    #[serde(default)]
    pub routes: Vec<RouteConf>,
    #[serde(default)]
    pub neighbours: Vec<NeighConf>,
    #[serde(default)]
    pub control: ControlConf,
    #[serde(default)]
    pub ipvs: IpvsConf,
    #[serde(default)]
    pub metrics: MetricsConf,
    #[serde(default)]
    pub services: Vec<ServiceConf>,
    /// keepalived's `vrrp_script` blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_scripts: Vec<VrrpScriptConf>,
    /// keepalived's `vrrp_instance` blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_instances: Vec<VrrpInstanceConf>,
    /// keepalived's `vrrp_sync_group` blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_sync_groups: Vec<VrrpSyncGroupConf>,
    /// keepalived's `lvs_sync_daemon`: connection sync with the peer director.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvs_sync_daemon: Option<LvsSyncConf>,
    /// A keepalived.conf whose services and VRRP blocks are added to the sections
    /// above when the file is loaded (and re-read on every reload). Not saved: a saved
    /// configuration holds what it produced.
    #[serde(default, skip_serializing)]
    pub keepalived: Option<crate::keepalived::KeepalivedConf>,
}

/// A configuration error, positioned in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Unpositioned { file: String, message: String },
    /// In the keepalived.conf the YAML names (`FILE:LINE: message`).
    #[error("{0}")]
    Keepalived(#[from] crate::keepalived::KaError),
}

/// The most workers a director runs (one rx/tx queue pair each per port).
pub const MAX_WORKERS: usize = 64;

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates; `file` names the YAML in messages, and its directory is
    /// where a relative `keepalived.config` is found.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = serde_yaml::from_str(text).map_err(|e| serde_error(e, file))?;
        let ka = match cfg.keepalived.clone() {
            Some(k) => Some(crate::keepalived::load::merge(&mut cfg, &k, file)?),
            None => None,
        };
        let problems = cfg.validate();
        if let Some((key, message)) = problems.into_iter().next() {
            // A problem in what the keepalived.conf made is reported at its line.
            if let Some(pos) = ka.as_ref().and_then(|k| k.origin_of(&key)) {
                return Err(ConfigError::Keepalived(crate::keepalived::KaError {
                    pos: pos.clone(),
                    message: format!("{key}: {message}"),
                }));
            }
            let (line, column) = locate::locate(text, &key).unwrap_or((1, 1));
            return Err(ConfigError::Invalid {
                file: file.into(),
                line,
                column,
                key,
                message,
            });
        }
        if let Some(k) = &ka {
            for w in &k.warnings {
                tracing::warn!("{w} (accepted, no effect)");
            }
        }
        Ok(cfg)
    }

    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// The ports' kernel twins, in order: each with its port's index. Their I/O port
    /// indexes follow the configured ports' (`kernel_index`).
    pub fn kernel_twins(&self) -> impl Iterator<Item = (usize, &KernelConf)> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.kernel.as_ref().map(|k| (i, k)))
    }

    /// The I/O port index of the kernel twin of port `i`.
    pub fn kernel_index(&self, i: usize) -> Option<usize> {
        self.ports.get(i)?.kernel.as_ref()?;
        let before = self.ports[..i]
            .iter()
            .filter(|p| p.kernel.is_some())
            .count();
        Some(self.ports.len() + before)
    }

    /// Every I/O port: the configured ports, then their kernel twins.
    pub fn io_ports(&self) -> usize {
        self.ports.len() + self.kernel_twins().count()
    }

    /// The DPDK device of a kernel twin.
    pub fn kernel_device(&self, k: &KernelConf) -> String {
        match &k.device {
            Some(d) => d.clone(),
            None => format!("net_tap_{},iface={}", k.name, k.name),
        }
    }

    pub fn cpus(&self) -> Vec<usize> {
        parse_cpu_list(&self.eal.cores).unwrap_or_else(|_| vec![0])
    }

    /// The device string handed to the EAL: for net_af_packet with several workers,
    /// `qpairs=N` is added when missing, since every worker needs its own queue pair.
    pub fn eal_device(&self, port: &PortConf) -> String {
        let w = self.dataplane.workers;
        if port.device.starts_with("net_af_packet") && w > 1 && !port.device.contains("qpairs=") {
            format!("{},qpairs={w}", port.device)
        } else {
            port.device.clone()
        }
    }
}

fn serde_error(e: serde_yaml::Error, file: &str) -> ConfigError {
    let msg = e.to_string();
    match e.location() {
        Some(loc) => {
            // serde_yaml's text is "path: message at line L column C"; split it so the
            // position leads, as in every other error.
            let body = msg.rsplit_once(" at line ").map(|(b, _)| b).unwrap_or(&msg);
            let (key, message) = match body.split_once(": ") {
                Some((k, m)) if !k.contains(' ') => (k.to_string(), m.to_string()),
                _ => ("(document)".to_string(), body.to_string()),
            };
            ConfigError::Invalid {
                file: file.into(),
                line: loc.line(),
                column: loc.column(),
                key,
                message,
            }
        }
        None => ConfigError::Unpositioned {
            file: file.into(),
            message: msg,
        },
    }
}

#[cfg(test)]
mod tests;
