//! What health changes in the snapshot, as keepalived changes IPVS (ipwrapper.c): a
//! failed real server leaves its service, or stays at weight 0 with
//! `inhibit_on_failure`; a MISC_CHECK with `misc_dynamic` sets the weight; while a
//! service's quorum is lost its sorry server takes the traffic (the live servers leave),
//! and with `sorry_server_inhibit` it waits at weight 0 while the quorum holds. Applied to
//! a copy of the configuration that only the snapshot builder sees: the running
//! configuration (and so `-S`, `--save-config`) keeps the configured servers and weights.

use super::resolve::RsKey;
use crate::config::{Config, RealServerConf, ServiceConf};
use std::collections::{HashMap, HashSet};

/// The health of one real server with checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RsHealth {
    pub up: bool,
    /// A weight asked by a MISC_CHECK with misc_dynamic.
    pub weight: Option<u32>,
}

/// Service key: protocol, VIP, port.
pub type SvcKey = (dataplane::ipvs::service::Proto, std::net::Ipv4Addr, u16);

pub fn svc_key(s: &ServiceConf) -> SvcKey {
    (s.protocol, s.vip.addr, s.vip.port)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Real servers without an entry (no checks) are up.
    pub servers: HashMap<RsKey, RsHealth>,
    /// Services whose quorum is lost.
    pub quorum_lost: HashSet<SvcKey>,
}

impl Overlay {
    pub fn health(&self, s: &ServiceConf, r: &RealServerConf) -> RsHealth {
        self.servers
            .get(&RsKey::of(s, r))
            .copied()
            .unwrap_or(RsHealth {
                up: true,
                weight: None,
            })
    }

    /// The sum of the weights of `s`'s live real servers (keepalived's weight_sum).
    pub fn live_weight(&self, s: &ServiceConf) -> u64 {
        s.real_servers
            .iter()
            .map(|r| (r, self.health(s, r)))
            .filter(|(_, h)| h.up)
            .map(|(r, h)| u64::from(h.weight.unwrap_or(r.weight)))
            .sum()
    }
}

/// Whether a failed `r` of `s` stays at weight 0.
pub fn inhibited(s: &ServiceConf, r: &RealServerConf) -> bool {
    r.inhibit_on_failure.unwrap_or(s.inhibit_on_failure)
}

/// The configuration the snapshot is built from: `cfg` with `o` applied.
pub fn effective(cfg: &Config, o: &Overlay) -> Config {
    let mut out = cfg.clone();
    for (s, orig) in out.services.iter_mut().zip(&cfg.services) {
        let lost = o.quorum_lost.contains(&svc_key(orig));
        let mut kept = Vec::new();
        for r in &orig.real_servers {
            let h = o.health(orig, r);
            let mut r = r.clone();
            if let Some(w) = h.weight {
                r.weight = w;
            }
            if !h.up {
                if !inhibited(orig, &r) {
                    continue;
                }
                r.weight = 0;
            }
            if lost && orig.sorry_server.is_some() {
                // While the quorum is lost the sorry server alone serves.
                continue;
            }
            kept.push(r);
        }
        if let Some(sorry) = &orig.sorry_server {
            if lost || orig.sorry_server_inhibit {
                let mut r = RealServerConf::bare(sorry.address);
                r.forward = sorry.forward;
                r.weight = if lost { 1 } else { 0 };
                // A configured real server at the same address keeps its place.
                if !kept.iter().any(|k| k.address == r.address) {
                    kept.push(r);
                }
            }
        }
        s.real_servers = kept;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const YAML: &str = "ports: [{ name: lan0, device: net_null0, addresses: [\"198.18.0.2/24\"] }]\nservices:\n  - vip: \"198.18.0.100:80\"\n    scheduler: rr\n    sorry_server: { address: \"198.18.0.14:80\" }\n    real_servers:\n      - { address: \"198.18.0.11:80\", forward: nat, weight: 2 }\n      - { address: \"198.18.0.12:80\", forward: nat, inhibit_on_failure: true }\n      - { address: \"198.18.0.13:80\", forward: nat }\n";

    fn servers(c: &Config) -> Vec<(String, u32)> {
        c.services[0]
            .real_servers
            .iter()
            .map(|r| (r.address.addr.to_string(), r.weight))
            .collect()
    }

    #[test]
    fn removal_inhibition_dynamic_weight_and_sorry_server() {
        let cfg = Config::parse(YAML, "t.yaml").unwrap();
        let s = &cfg.services[0];
        let key = |i: usize| RsKey::of(s, &s.real_servers[i]);
        let mut o = Overlay::default();
        assert_eq!(
            effective(&cfg, &o),
            cfg,
            "no health: the configuration as it is"
        );
        o.servers.insert(
            key(0),
            RsHealth {
                up: false,
                weight: None,
            },
        );
        o.servers.insert(
            key(1),
            RsHealth {
                up: false,
                weight: None,
            },
        );
        o.servers.insert(
            key(2),
            RsHealth {
                up: true,
                weight: Some(5),
            },
        );
        assert_eq!(
            servers(&effective(&cfg, &o)),
            vec![("198.18.0.12".into(), 0), ("198.18.0.13".into(), 5)]
        );
        assert_eq!(o.live_weight(s), 5);
        // Quorum lost: the sorry server alone.
        o.quorum_lost.insert(svc_key(s));
        assert_eq!(
            servers(&effective(&cfg, &o)),
            vec![("198.18.0.14".into(), 1)]
        );
        // The running configuration is untouched.
        assert_eq!(servers(&cfg).len(), 3);
        // sorry_server_inhibit: waiting at weight 0 while the quorum holds.
        let mut inh = cfg.clone();
        inh.services[0].sorry_server_inhibit = true;
        let e = effective(&inh, &Overlay::default());
        assert_eq!(servers(&e).last(), Some(&("198.18.0.14".into(), 0)));
    }
}
