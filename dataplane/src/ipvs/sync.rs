//! Connection synchronisation, the worker's half (the kernel's `ip_vs_sync_conn` and
//! `ip_vs_proc_conn`). On a MASTER a worker hands connections worth syncing to the
//! control plane through its own bounded ring (no lock, no allocation: a full ring drops
//! and counts); the control plane batches them into the kernel's version 1 messages. On
//! a BACKUP the control plane posts each received connection to the worker that will own
//! its packets, which installs it bound to the same real server, so a takeover finds
//! established connections where their next packet looks for them.
//!
//! When a connection is synced follows `ip_vs_sync_conn_needed` with the default
//! sysctls (`sync_threshold` 3, `sync_period` 50): TCP only in ESTABLISHED, FIN_WAIT,
//! CLOSE, CLOSE_WAIT and TIME_WAIT, at once on a change into one of those other than
//! ESTABLISHED, otherwise on the 3rd packet and every 50th after; UDP on the same count.
//! Only the client's packets count (the kernel counts `in_pkts`), so a NAT connection
//! is not synced twice as often as the kernel would. A state change a reply causes (the
//! real server's FIN) is synced at once; the kernel notices it on the client's next
//! packet, through `old_state`, which rvs has no room for in a 64-byte entry.
//! A connection's persistence template is synced with it.

use super::conn::{flags as cf, Conn, Fwd, Key, NIL};
use super::engine::IpvsWorker;
use super::service::IpvsTable;
use super::state::{Dir, TcpState};
use crate::packet::ipv4::protocol;
use crossbeam::queue::ArrayQueue;
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub const SYNC_THRESHOLD: u8 = 3;
pub const SYNC_PERIOD: u8 = 50;

/// A connection as the sync protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn {
    pub proto: u8,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
    /// FULLNAT's local address and port (rvs's extension; 0 otherwise).
    pub laddr: Ipv4Addr,
    pub lport: u16,
    pub fwd: Fwd,
    pub template: bool,
    /// The kernel's state number (TCP states; 0 for UDP and templates).
    pub state: u8,
    /// Seconds left.
    pub timeout: u32,
}

/// The rings between the workers and the control plane's sync sender.
pub struct SyncRings {
    rings: Vec<ArrayQueue<SyncConn>>,
    /// Set while this director is the sync MASTER: workers hand connections over.
    pub master: AtomicBool,
}

impl SyncRings {
    pub fn new(workers: usize, capacity: usize) -> Arc<SyncRings> {
        Arc::new(SyncRings {
            rings: (0..workers.max(1))
                .map(|_| ArrayQueue::new(capacity.max(1)))
                .collect(),
            master: AtomicBool::new(false),
        })
    }
    /// Takes what worker `w` handed over, at most `max` entries.
    pub fn drain(&self, w: usize, max: usize, out: &mut Vec<SyncConn>) {
        if let Some(r) = self.rings.get(w) {
            for _ in 0..max {
                match r.pop() {
                    Some(c) => out.push(c),
                    None => break,
                }
            }
        }
    }
    pub fn workers(&self) -> usize {
        self.rings.len()
    }
    fn push(&self, w: usize, c: SyncConn) -> bool {
        self.rings.get(w).is_some_and(|r| r.push(c).is_ok())
    }
}

fn syncable_tcp(state: u8) -> bool {
    const S: [u8; 5] = [
        TcpState::Established as u8,
        TcpState::FinWait as u8,
        TcpState::Close as u8,
        TcpState::CloseWait as u8,
        TcpState::TimeWait as u8,
    ];
    S.contains(&state)
}

impl SyncConn {
    fn of(c: &Conn, now_s: u32) -> SyncConn {
        SyncConn {
            proto: c.proto,
            caddr: c.caddr.into(),
            cport: c.cport,
            vaddr: c.vaddr.into(),
            vport: c.vport,
            daddr: c.daddr.into(),
            dport: c.dport,
            laddr: c.laddr.into(),
            lport: c.lport,
            fwd: Fwd::from_bits(c.flags & cf::FWD_MASK),
            template: c.is_template(),
            state: c.state,
            timeout: c.expires.saturating_sub(now_s),
        }
    }
}

impl IpvsWorker {
    /// Called after each packet of connection `ci` moved its state machine: counts the
    /// client's packets and hands the connection over when the kernel's rule says so.
    /// Only while this director is the sync MASTER (read once per burst).
    #[inline(always)]
    pub(super) fn sync_after(&mut self, ci: u32, changed: bool, dir: Dir) {
        if self.sync_master {
            self.sync_conn(ci, changed, dir);
        }
    }

    #[inline(never)]
    fn sync_conn(&mut self, ci: u32, changed: bool, dir: Dir) {
        let c = self.conns.get_mut(ci);
        if c.proto == protocol::TCP && !syncable_tcp(c.state) {
            return;
        }
        let now_forced =
            changed && c.proto == protocol::TCP && c.state != TcpState::Established as u8;
        if dir == Dir::Input {
            c.sync_pkts = (c.sync_pkts + 1) % SYNC_PERIOD;
        }
        let counted = dir == Dir::Input && c.sync_pkts == SYNC_THRESHOLD;
        if !now_forced && !counted {
            return;
        }
        let (conn, control) = (*c, c.control);
        if control != NIL {
            let t = *self.conns.get(control);
            self.sync_push(SyncConn::of(&t, self.now_s));
        }
        self.sync_push(SyncConn::of(&conn, self.now_s));
    }

    fn sync_push(&mut self, s: SyncConn) {
        let ok = self.sync.as_ref().is_some_and(|r| r.push(self.worker, s));
        if ok {
            self.stats.sync_handed.inc();
        } else {
            self.stats.sync_dropped.inc();
        }
    }

    /// Installs (or refreshes) a connection a MASTER synced: bound to the real server of
    /// the same address and port in the same service, in the state and with the time
    /// left it had there. Returns false when there is no such service or real server
    /// (the kernel keeps such a connection unbound; rvs has no unbound connections and
    /// counts it instead) or the table is full.
    pub fn install_synced(&mut self, s: &SyncConn, ipvs: &IpvsTable) -> bool {
        let Some(svc) = ipvs.services.iter().find(|v| {
            v.proto as u8 == s.proto && v.vip == s.vaddr && (v.port == s.vport || v.port == 0)
        }) else {
            return false;
        };
        let Some(rs) = svc
            .dests
            .iter()
            .find(|d| d.addr == s.daddr && (d.port == s.dport || s.template))
        else {
            return false;
        };
        let key = Key {
            proto: s.proto,
            saddr: s.caddr.into(),
            sport: s.cport,
            daddr: s.vaddr.into(),
            dport: s.vport,
        };
        let existing = if s.template {
            self.conns.lookup_template(&key)
        } else {
            self.conns.lookup_in(&key)
        };
        if s.proto == protocol::TCP && usize::from(s.state) >= super::state::TCP_STATES {
            return false;
        }
        // From the wire: at most a week, however large the value.
        let expires = self.now_s.saturating_add(s.timeout.clamp(1, 7 * 86_400));
        if let Some(ci) = existing {
            let established = s.state == TcpState::Established as u8;
            if s.proto == protocol::TCP && !s.template && self.conns.get(ci).state != s.state {
                self.account_state(ci, established);
            }
            self.conns.get_mut(ci).state = s.state;
            self.conns.set_expires(ci, expires);
            return true;
        }
        let mut c = Conn::new(
            s.proto,
            (s.caddr, s.cport),
            (s.vaddr, s.vport),
            (s.daddr, s.dport),
            rs.fwd,
            rs.slot,
        );
        c.state = s.state;
        c.expires = expires;
        if s.template {
            c.flags |= cf::TEMPLATE;
            c.flags &= !cf::INACTIVE;
        }
        if s.fwd == Fwd::FullNat {
            c.laddr = s.laddr.into();
            c.lport = s.lport;
        }
        // A synced connection has seen its replies on the master.
        c.flags &= !cf::NOOUTPUT;
        let Ok(ci) = self.conns.insert(c) else {
            return false;
        };
        if s.template {
            self.bind_template(rs.slot);
        } else {
            self.bind_dest(rs.slot);
            if s.proto == protocol::TCP && s.state == TcpState::Established as u8 {
                self.account_state(ci, true);
            }
            // Its template, synced just before it, controls it again.
            if let Some(pers) = svc.persistence {
                let masked = u32::from(s.caddr) & u32::from(pers.netmask);
                let tkey = Key {
                    proto: s.proto,
                    saddr: masked,
                    sport: 0,
                    daddr: s.vaddr.into(),
                    dport: svc.port,
                };
                if let Some(ti) = self.conns.lookup_template(&tkey) {
                    self.conns.get_mut(ci).control = ti;
                    self.conns.get_mut(ti).n_control += 1;
                }
            }
        }
        self.stats.sync_installed.inc();
        true
    }
}

/// The worker that will own a synced connection's packets once this director is MASTER
/// (the owner function of `owner`, computed from the connection rather than a packet;
/// standby services included).
pub fn sync_owner(ipvs: &IpvsTable, s: &SyncConn, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    if s.fwd == Fwd::FullNat && s.lport != 0 {
        return usize::from(s.lport) % workers;
    }
    let by_ip = s.template
        || s.proto == protocol::UDP
        || ipvs
            .services
            .iter()
            .find(|v| {
                v.proto as u8 == s.proto && v.vip == s.vaddr && (v.port == s.vport || v.port == 0)
            })
            .is_some_and(|v| v.client_ip_owned);
    super::owner::endpoint_owner(s.caddr, if by_ip { 0 } else { s.cport }, workers)
}
