//! FULLNAT local addresses and ports (DPVS's `ip_vs_laddr.c`): each worker allocates only
//! ports of its own share (port % workers == worker), so that a real server's replies to
//! a local port come back to the worker that owns the connection.

use super::conn::{ConnTable, Key};
use super::service::Service;
use std::net::Ipv4Addr;

/// Ports below this are never used as local ports.
const FIRST_PORT: u32 = 1024;
/// Ports tried per local address before moving to the next one.
const TRIES_PER_ADDR: u32 = 4096;

/// The allocation cursors of one worker.
pub(super) struct LocalPorts {
    worker: u32,
    workers: u32,
    port_cursor: u32,
    addr_cursor: usize,
}

impl LocalPorts {
    pub fn new(worker: usize, workers: usize) -> Self {
        LocalPorts {
            worker: worker as u32,
            workers: workers.max(1) as u32,
            port_cursor: 0,
            addr_cursor: 0,
        }
    }

    /// A local address and port of this worker's share for a connection to
    /// `raddr:rport`, not in use toward that real server; round robin over the
    /// service's local addresses.
    pub fn alloc(
        &mut self,
        conns: &ConnTable,
        svc: &Service,
        raddr: Ipv4Addr,
        rport: u16,
        proto: u8,
    ) -> Option<(Ipv4Addr, u16)> {
        if svc.local_addrs.is_empty() {
            return None;
        }
        let w = self.workers;
        let share = (65536 - FIRST_PORT) / w;
        for _ in 0..svc.local_addrs.len() {
            self.addr_cursor = (self.addr_cursor + 1) % svc.local_addrs.len();
            let laddr = svc.local_addrs[self.addr_cursor];
            for _ in 0..share.min(TRIES_PER_ADDR) {
                self.port_cursor = (self.port_cursor + 1) % share;
                let p = FIRST_PORT + self.port_cursor * w;
                let p = p - p % w + self.worker;
                let Ok(lport) = u16::try_from(p) else {
                    continue;
                };
                if lport < FIRST_PORT as u16 {
                    continue;
                }
                let k = Key {
                    proto,
                    saddr: raddr.into(),
                    sport: rport,
                    daddr: laddr.into(),
                    dport: lport,
                };
                if conns.lookup_out(&k).is_none() {
                    return Some((laddr, lport));
                }
            }
        }
        None
    }
}
