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
        // SAFETY: `cname` is a valid NUL-terminated string and `id` a valid, writable u16,
        // both outliving the call; DPDK only reads the name and writes `id` on success.
        // Ethdev control calls are not thread-safe: ports are set up from one thread.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(err(format!(
                "no such DPDK port {dname:?} (the EAL did not create it: for a vdev check its \
                 arguments and that the interface exists; for PCI check the device is bound to a DPDK driver)"
            )));
        }
        let mut info: sys::rte_eth_dev_info = Default::default();
        // SAFETY: `id` was just returned by DPDK for an existing port (DPDK checks it again
        // anyway); `info` is a valid, writable `rte_eth_dev_info` that DPDK zeroes and fills.
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
        // SAFETY: `id` is a valid port; `conf` is a valid all-zero `rte_eth_conf` (DPDK's
        // defaults) that DPDK copies. The queue counts were checked against the device's
        // maxima above; DPDK refuses (-EBUSY) to reconfigure a started port.
        let rc = unsafe { sys::rte_eth_dev_configure(id, p.queues, p.queues, &conf) };
        if rc != 0 {
            return Err(err(format!("configure failed: {}", super::rte_error(rc))));
        }
        // SAFETY: takes a port id only, which DPDK checks; `id` is a valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..p.queues {
            // SAFETY: the port is configured with `p.queues` rx queues and not started, so
            // `q` is in range (DPDK checks both). A null rx_conf selects the driver's
            // defaults. `pool` is a valid pktmbuf pool that the queue keeps using: pools
            // are never freed before EAL clean-up, and the port is closed (on drop) before
            // that. DPDK validates `rx_desc` against the device's limits.
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
            // SAFETY: as for rx: the port is configured with `p.queues` tx queues and not
            // started, `q` is in range, a null tx_conf selects the driver's defaults, and
            // DPDK validates `tx_desc`.
            let rc =
                unsafe { sys::rte_eth_tx_queue_setup(id, q, p.tx_desc, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(err(format!(
                    "tx queue {q} setup failed: {}",
                    super::rte_error(rc)
                )));
            }
        }
        // SAFETY: `id` is a valid port, configured, with all its queues set up above; no
        // lcore polls it yet (workers are launched after every port has started).
        let rc = unsafe { sys::rte_eth_dev_start(id) };
        if rc != 0 {
            return Err(err(format!("start failed: {}", super::rte_error(rc))));
        }
        // Multicast is needed for VRRP; not every PMD supports toggling it.
        // SAFETY: both take only the port id, which DPDK checks; `id` is a valid, started
        // port. Their errors (-ENOTSUP from some PMDs) are deliberately ignored.
        unsafe {
            sys::rte_eth_allmulticast_enable(id);
            if p.promiscuous {
                sys::rte_eth_promiscuous_enable(id);
            }
        }
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: `id` is a valid port and `mac` a valid, writable `rte_ether_addr`; if the
        // call fails `mac` keeps its all-zero default.
        unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
        let mut mtu = 1500u16;
        // SAFETY: `id` is a valid port and `mtu` a valid, writable u16; if the call fails
        // `mtu` keeps 1500.
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

impl Port {
    /// Gives the port `mac` (a kernel twin takes its DPDK port's MAC, so that the
    /// kernel's frames leave with the port's address and replies come back to it).
    pub fn set_mac(&mut self, mac: MacAddr) -> Result<(), IoError> {
        let mut a = sys::rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: `self.id` is a started port; `a` is a valid `rte_ether_addr` that DPDK
        // only reads during the call.
        let rc = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.id, &mut a) };
        if rc != 0 {
            return Err(IoError::Port {
                name: self.name.clone(),
                device: self.device.clone(),
                what: format!("cannot set MAC {mac}: {}", super::rte_error(rc)),
            });
        }
        self.mac = mac;
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: DPDK checks the port id (an unknown or already closed port gets -ENODEV,
        // ignored here); this `Port` configured and started it, and the EAL is still up:
        // callers drop their `Port`s before the `Eal`. Stopping and closing free the queues,
        // so no lcore may be polling them: rvsd joins its workers (`WorkerHandles::wait`)
        // before it drops the ports, and rvs-pktgen transmits on the calling thread. This
        // ordering is the callers' duty; the types do not enforce it (and a
        // `launch_workers` that fails part-way must stop the workers it did launch).
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
        tracing::info!(port = %self.name, "port stopped and closed");
    }
}
