//! The connection listing of `ipvsadm -L -c`: every connection and template of a worker,
//! answered between bursts when the control plane asks (`worker::Msg::DumpConns`).

use super::engine::IpvsWorker;
use super::state::TcpState;
use crate::packet::ipv4::protocol;
use std::net::Ipv4Addr;

/// One connection as listed by `ipvsadm -L -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnDump {
    pub proto: u8,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
    pub state: &'static str,
    pub expires_in: u32,
}

impl IpvsWorker {
    /// Every connection and template of this worker.
    pub fn dump(&self, now_ms: u64) -> Vec<ConnDump> {
        let now_s = (now_ms / 1000) as u32;
        self.conns
            .iter()
            .map(|(_, c)| ConnDump {
                proto: c.proto,
                caddr: c.caddr.into(),
                cport: c.cport,
                vaddr: c.vaddr.into(),
                vport: c.vport,
                daddr: c.daddr.into(),
                dport: c.dport,
                state: if c.proto == protocol::UDP {
                    "UDP"
                } else {
                    TcpState::from_u8(c.state).name()
                },
                expires_in: c.expires.saturating_sub(now_s),
            })
            .collect()
    }
}
