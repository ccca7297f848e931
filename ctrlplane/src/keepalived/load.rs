//! The converted sections added to a loaded rvs configuration, or printed as YAML.

use super::{convert_file, default_config_id, Converted, KaError, KeepalivedConf, Options, Pos};
use crate::config::VrrpSyncGroupConf;
use crate::config::{Config, LvsSyncConf, ServiceConf, VrrpInstanceConf, VrrpScriptConf};
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::path::Path;

/// Reads `k.config` (relative to the YAML file `yaml_file`'s directory) and appends
/// what it converts to `cfg`'s services and VRRP sections. Returns the conversion (its
/// origins place later validation errors, its warnings are for the log).
pub fn merge(cfg: &mut Config, k: &KeepalivedConf, yaml_file: &str) -> Result<Converted, KaError> {
    let path = match Path::new(yaml_file).parent() {
        Some(dir) if k.config.is_relative() => dir.join(&k.config),
        _ => k.config.clone(),
    };
    let opts = Options {
        interfaces: &k.interfaces,
        config_id: k.config_id.clone().unwrap_or_else(default_config_id),
    };
    let c = convert_file(&path, &opts)?;
    add(cfg, c, &path)
}

/// The converted sections, typed as rvs's.
#[derive(serde::Serialize, Default)]
struct Sections {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<ServiceConf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vrrp_scripts: Vec<VrrpScriptConf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vrrp_instances: Vec<VrrpInstanceConf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vrrp_sync_groups: Vec<VrrpSyncGroupConf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lvs_sync_daemon: Option<LvsSyncConf>,
}

impl Sections {
    /// Types every item; one that does not fit rvs's types is reported at its
    /// keepalived line (`first[name]`: where the items will sit in the whole list).
    fn of(c: &Converted, first: impl Fn(&str) -> usize, path: &Path) -> Result<Sections, KaError> {
        let at = |key: String| {
            c.origin_of(&key).cloned().unwrap_or(Pos {
                file: path.display().to_string(),
                line: 0,
            })
        };
        fn list<T: DeserializeOwned>(
            items: &[Value],
            name: &str,
            first: usize,
            at: &impl Fn(String) -> Pos,
        ) -> Result<Vec<T>, KaError> {
            items
                .iter()
                .enumerate()
                .map(|(i, v)| typed(v.clone(), &at(format!("{name}[{}]", first + i))))
                .collect()
        }
        Ok(Sections {
            services: list(&c.services, "services", first("services"), &at)?,
            vrrp_scripts: list(&c.vrrp_scripts, "vrrp_scripts", first("vrrp_scripts"), &at)?,
            vrrp_instances: list(
                &c.vrrp_instances,
                "vrrp_instances",
                first("vrrp_instances"),
                &at,
            )?,
            vrrp_sync_groups: list(
                &c.vrrp_sync_groups,
                "vrrp_sync_groups",
                first("vrrp_sync_groups"),
                &at,
            )?,
            lvs_sync_daemon: c
                .lvs_sync_daemon
                .clone()
                .map(|v| typed(v, &at("lvs_sync_daemon".into())))
                .transpose()?,
        })
    }
}

/// Appends converted sections to `cfg` (see `merge`).
pub fn add(cfg: &mut Config, mut c: Converted, path: &Path) -> Result<Converted, KaError> {
    // Indexes in the converted lists become indexes after the YAML's own items.
    let offset = |name: &str| match name {
        "services" => cfg.services.len(),
        "vrrp_scripts" => cfg.vrrp_scripts.len(),
        "vrrp_instances" => cfg.vrrp_instances.len(),
        "vrrp_sync_groups" => cfg.vrrp_sync_groups.len(),
        _ => 0,
    };
    for (key, _) in c.origins.iter_mut() {
        let Some((name, rest)) = key.split_once('[') else {
            continue;
        };
        if let Some((n, tail)) = rest.split_once(']') {
            if let Ok(n) = n.parse::<usize>() {
                *key = format!("{name}[{}]{tail}", n + offset(name));
            }
        }
    }
    let s = Sections::of(&c, offset, path)?;
    if let Some(sync) = s.lvs_sync_daemon {
        if cfg.lvs_sync_daemon.is_some() {
            return Err(KaError {
                pos: c.origin_of("lvs_sync_daemon").cloned().unwrap_or(Pos {
                    file: path.display().to_string(),
                    line: 0,
                }),
                message: "lvs_sync_daemon: the YAML has one too; keep one of them".into(),
            });
        }
        cfg.lvs_sync_daemon = Some(sync);
    }
    cfg.services.extend(s.services);
    cfg.vrrp_scripts.extend(s.vrrp_scripts);
    cfg.vrrp_instances.extend(s.vrrp_instances);
    cfg.vrrp_sync_groups.extend(s.vrrp_sync_groups);
    c.lvs_sync_daemon = None;
    Ok(c)
}

fn typed<T: DeserializeOwned>(v: Value, pos: &Pos) -> Result<T, KaError> {
    serde_yaml::from_value(v).map_err(|e| KaError {
        pos: pos.clone(),
        message: e.to_string(),
    })
}

/// `rvsadm --convert-keepalived`: the keepalived.conf at `path` as rvs YAML. With
/// `base` (an rvs YAML with the ports), the whole configuration, validated, as
/// `--save-config` writes it; without, the converted sections alone (to paste into
/// one). Returns the YAML and the warnings.
pub fn to_yaml(
    path: &Path,
    opts: &Options,
    base: Option<&Path>,
) -> Result<(String, Vec<String>), String> {
    let c = convert_file(path, opts).map_err(|e| e.to_string())?;
    let warnings = c.warnings.clone();
    let yaml = match base {
        Some(b) => {
            let mut cfg = Config::load(b).map_err(|e| e.to_string())?;
            let c = add(&mut cfg, c, path).map_err(|e| e.to_string())?;
            if let Some((key, message)) = cfg.validate().into_iter().next() {
                return Err(match c.origin_of(&key) {
                    Some(pos) => format!("{pos}: {key}: {message}"),
                    None => format!("{}: {key}: {message}", b.display()),
                });
            }
            serde_yaml::to_string(&cfg)
        }
        None => serde_yaml::to_string(&Sections::of(&c, |_| 0, path).map_err(|e| e.to_string())?),
    }
    .map_err(|e| e.to_string())?;
    Ok((yaml, warnings))
}
