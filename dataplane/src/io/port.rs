//! Ethernet ports: configure one rx/tx queue pair per worker, start, stop, close.

use super::{IoError, MbufPool};
use crate::packet::MacAddr;
use crate::params::device_name;
use dpdk_sys as sys;
use std::ffi::CString;

#[derive(Debug, Clone)]
pub struct PortParams {
    /// The config name (`lan0`), for messages.
    pub name: String,
    /// The device string given to the EAL.
    pub device: String,
    pub queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub promiscuous: bool,
}

/// A started port; stopped and closed on drop.
pub struct Port {
    pub id: u16,
    pub name: String,
    pub device: String,
    pub mac: MacAddr,
    pub mtu: u16,
    pub queues: u16,
}

impl Port {
    pub fn start(p: &PortParams, pool: MbufPool) -> Result<Port, IoError> {
        let err = |what: String| IoError::Port {
            name: p.name.clone(),
            device: p.device.clone(),
            what,
        };
        let dname = device_name(&p.device);
        let cname = CString::new(dname).map_err(|_| err("device name contains NUL".into()))?;
        let mut id = 0u16;
        // SAFETY: EAL initialised; valid C string and out pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(err(format!(
                "no such DPDK port {dname:?} (the EAL did not create it: for a vdev check its \
                 arguments and that the interface exists; for PCI check the device is bound to a DPDK driver)"
            )));
        }
        let mut info: sys::rte_eth_dev_info = Default::default();
        // SAFETY: valid port id, out pointer.
        let rc = unsafe { sys::rte_eth_dev_info_get(id, &mut info) };
        if rc != 0 {
            return Err(err(format!(
                "cannot read device info: {}",
                super::rte_error(rc)
            )));
        }
        if p.queues > info.max_rx_queues || p.queues > info.max_tx_queues {
            return Err(err(format!(
                "{} workers need {} rx/tx queues but the device has at most {} rx and {} tx \
                 (for net_af_packet add qpairs={} to the device string)",
                p.queues, p.queues, info.max_rx_queues, info.max_tx_queues, p.queues
            )));
        }
        let conf: sys::rte_eth_conf = Default::default();
        let rc = unsafe { sys::rte_eth_dev_configure(id, p.queues, p.queues, &conf) };
        if rc != 0 {
            return Err(err(format!("configure failed: {}", super::rte_error(rc))));
        }
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..p.queues {
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    p.rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(err(format!(
                    "rx queue {q} setup failed: {}",
                    super::rte_error(rc)
                )));
            }
            let rc =
                unsafe { sys::rte_eth_tx_queue_setup(id, q, p.tx_desc, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(err(format!(
                    "tx queue {q} setup failed: {}",
                    super::rte_error(rc)
                )));
            }
        }
        let rc = unsafe { sys::rte_eth_dev_start(id) };
        if rc != 0 {
            return Err(err(format!("start failed: {}", super::rte_error(rc))));
        }
        // Multicast is needed for VRRP; not every PMD supports toggling it.
        unsafe {
            sys::rte_eth_allmulticast_enable(id);
            if p.promiscuous {
                sys::rte_eth_promiscuous_enable(id);
            }
        }
        let mut mac = sys::rte_ether_addr::default();
        unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
        let mut mtu = 1500u16;
        unsafe { sys::rte_eth_dev_get_mtu(id, &mut mtu) };
        let port = Port {
            id,
            name: p.name.clone(),
            device: p.device.clone(),
            mac: MacAddr(mac.addr_bytes),
            mtu,
            queues: p.queues,
        };
        tracing::info!(port = %port.name, id, mac = %port.mac, mtu, queues = p.queues, "port started");
        Ok(port)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the port was started by us and no lcore polls it any more.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
        tracing::info!(port = %self.name, "port stopped and closed");
    }
}
