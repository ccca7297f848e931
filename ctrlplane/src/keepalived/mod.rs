//! keepalived's configuration language, read as rvs configuration: an existing
//! keepalived.conf runs unchanged (`keepalived: { config, interfaces }` in the YAML), or
//! is converted once (`rvsadm --convert-keepalived`).
//!
//! Three steps, one module each: `lex` reads the file as keepalived does (includes with
//! globs, `!`/`#` comments, `@` conditional lines, `$` parameters, quoted strings) into
//! lines of words; `tree` nests them into blocks; `global`, `vrrp` and `lvs` (with
//! `check` for the checker blocks) turn the blocks into the YAML of rvs's sections, each
//! item remembering the keepalived line it came from, so that a problem rvs finds later
//! (validation) is still reported at that line.
//!
//! Differences are said plainly: a keyword rvs cannot honour is an error naming what rvs
//! does instead; a keyword that changes nothing for a director is accepted with one
//! warning naming it.

mod check;
mod global;
mod lex;
pub mod load;
mod lvs;
mod tree;
mod vrrp;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tree::Stmt;

/// `keepalived:` in rvs's YAML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeepalivedConf {
    /// The keepalived.conf (relative paths: from the YAML file's directory).
    pub config: PathBuf,
    /// keepalived's interface names onto rvs ports (`eth0: lan0`).
    #[serde(default)]
    pub interfaces: BTreeMap<String, String>,
    /// What `@name` lines are compared with (keepalived's `-i`/`--config-id`; default
    /// the host name up to its first dot, as keepalived's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_id: Option<String>,
}

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A keepalived.conf error: `FILE:LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct KaError {
    pub pos: Pos,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, KaError>;

pub(crate) fn err<T>(pos: &Pos, message: impl Into<String>) -> Result<T> {
    Err(KaError {
        pos: pos.clone(),
        message: message.into(),
    })
}

/// rvs's sections made from a keepalived.conf, as YAML values, with the keepalived line
/// each item came from.
#[derive(Debug, Default)]
pub struct Converted {
    pub services: Vec<Value>,
    pub vrrp_scripts: Vec<Value>,
    pub vrrp_instances: Vec<Value>,
    pub vrrp_sync_groups: Vec<Value>,
    pub lvs_sync_daemon: Option<Value>,
    /// (YAML key of an item, e.g. `services[2].real_servers[0]`, where it came from),
    /// the most specific last.
    pub origins: Vec<(String, Pos)>,
    /// Keywords accepted that change nothing for a director, one line each.
    pub warnings: Vec<String>,
}

impl Converted {
    /// The keepalived line a YAML key (`services[2].real_servers[0].checks[1].url`)
    /// comes from: its most specific origin.
    pub fn origin_of(&self, key: &str) -> Option<&Pos> {
        self.origins
            .iter()
            .filter(|(k, _)| {
                key == k
                    || key
                        .strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
            })
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| p)
    }
}

/// What conversion needs besides the file.
pub struct Options<'a> {
    pub interfaces: &'a BTreeMap<String, String>,
    pub config_id: String,
}

/// The config id keepalived uses by default: the host name up to its first dot.
pub fn default_config_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Reads and converts the keepalived.conf at `path`.
pub fn convert_file(path: &Path, opts: &Options) -> Result<Converted> {
    let lines = lex::read(path, &opts.config_id)?;
    let stmts = tree::build(lines)?;
    convert(&stmts, opts)
}

/// Reads and converts keepalived.conf `text` (named `name` in messages), resolving
/// includes from the current directory (the fuzz target's way in).
pub fn convert_text(text: &str, name: &str, opts: &Options) -> Result<Converted> {
    let lines = lex::read_text(text, name, &opts.config_id)?;
    let stmts = tree::build(lines)?;
    convert(&stmts, opts)
}

/// Converts parsed statements (the top level of a keepalived.conf).
pub fn convert(stmts: &[Stmt], opts: &Options) -> Result<Converted> {
    let mut out = Converted::default();
    let mut cx = Cx {
        opts,
        globals: global::Globals::default(),
        out: &mut out,
    };
    // global_defs first: its vrrp_* defaults apply to every instance, wherever it is.
    for s in stmts.iter().filter(|s| s.word(0) == "global_defs") {
        global::global_defs(&mut cx, s)?;
    }
    let groups = lvs::groups(stmts)?;
    for s in stmts {
        match s.word(0) {
            "global_defs" => {}
            "vrrp_script" => vrrp::script(&mut cx, s)?,
            "vrrp_instance" => vrrp::instance(&mut cx, s)?,
            "vrrp_sync_group" => vrrp::sync_group(&mut cx, s)?,
            "virtual_server" => lvs::virtual_server(&mut cx, s, &groups)?,
            // Read by `lvs::groups` when a virtual server names them.
            "virtual_server_group" | "local_address_group" | "track_file" => {}
            w => global::top_level_other(&mut cx, s, w)?,
        }
    }
    if let Some(sync) = cx.globals.lvs_sync_daemon.take() {
        cx.out.lvs_sync_daemon = Some(sync);
    }
    Ok(out)
}

/// The conversion's state: options, global defaults, and what was made so far.
pub(crate) struct Cx<'a, 'o> {
    pub opts: &'a Options<'a>,
    pub globals: global::Globals,
    pub out: &'o mut Converted,
}

impl Cx<'_, '_> {
    /// The rvs port a keepalived interface name maps to.
    pub fn port(&self, pos: &Pos, ifname: &str) -> Result<String> {
        match self.opts.interfaces.get(ifname) {
            Some(p) => Ok(p.clone()),
            None => err(
                pos,
                format!(
                    "interface {ifname}: not mapped to an rvs port; add it to `keepalived.interfaces` (`{ifname}: lan0`), or `--interfaces {ifname}=lan0` to --convert-keepalived"
                ),
            ),
        }
    }

    /// One warning line for a keyword that changes nothing.
    pub fn ignored(&mut self, s: &Stmt, why: &str) {
        self.out
            .warnings
            .push(format!("{}: {}: {why}", s.pos, s.word(0)));
    }

    pub fn origin(&mut self, key: String, pos: &Pos) {
        self.out.origins.push((key, pos.clone()));
    }
}

/// A YAML mapping built key by key.
pub(crate) fn map() -> Mapping {
    Mapping::new()
}

pub(crate) fn put(m: &mut Mapping, key: &str, v: impl Into<Value>) {
    m.insert(Value::String(key.into()), v.into());
}

#[cfg(test)]
mod tests;
