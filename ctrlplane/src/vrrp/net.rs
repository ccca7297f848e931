//! VRRP's sockets, on a port's kernel twin (the exception path): adverts through a raw
//! IPv4 socket of protocol 112, and gratuitous ARPs through a packet socket. What the
//! kernel sends on the twin leaves through the DPDK port; what rvs does not consume
//! (link multicast, unicast to the DIP) comes up to it.

use super::packet::{GROUP, PROTO_VRRP};
use dataplane::packet::{arp, MacAddr};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

/// The interface index of `ifname`.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// The MAC address of `ifname` (the twin has the port's).
pub fn mac_of(ifname: &str) -> io::Result<MacAddr> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))?;
    s.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("MAC {s:?}")))
}

/// The raw socket of one instance: receives protocol 112 on `ifname` (the multicast
/// group joined there), sends with TTL 255 (RFC 5798 §5.1.1.3) from `src` when given.
pub fn advert_socket(ifname: &str, src: Option<Ipv4Addr>) -> io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(PROTO_VRRP))),
    )?;
    // Bound to the twin: adverts (multicast included) leave through it.
    s.bind_device(Some(ifname.as_bytes()))?;
    let index = ifindex(ifname)?;
    s.join_multicast_v4_n(&GROUP, &InterfaceIndexOrAddress::Index(index))?;
    s.set_multicast_ttl_v4(255)?;
    s.set_ttl(255)?;
    // Our own adverts must not come back to us.
    s.set_multicast_loop_v4(false)?;
    if let Some(a) = src {
        s.bind(&SocketAddrV4::new(a, 0).into())?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Sends a VRRP message to `dst` (the group, or a unicast peer).
pub fn send_advert(s: &Socket, msg: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
    s.send_to(msg, &SockAddr::from(SocketAddrV4::new(dst, 0)))
}

/// A packet socket on the twin for gratuitous ARPs.
pub struct Garp {
    fd: Socket,
    index: u32,
    mac: MacAddr,
}

impl Garp {
    pub fn open(ifname: &str) -> io::Result<Garp> {
        let proto = (libc::ETH_P_ARP as u16).to_be();
        let fd = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(proto))),
        )?;
        fd.set_nonblocking(true)?;
        Ok(Garp {
            fd,
            index: ifindex(ifname)?,
            mac: mac_of(ifname)?,
        })
    }

    /// One gratuitous ARP request for `ip` (sender and target both `ip`, broadcast), as
    /// keepalived and Linux send them.
    pub fn announce(&self, ip: Ipv4Addr) -> io::Result<()> {
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        f[6..12].copy_from_slice(&self.mac.0);
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        arp::emit(
            &mut f[14..],
            arp::OP_REQUEST,
            self.mac,
            ip,
            MacAddr::ZERO,
            ip,
        )
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ARP"))?;
        // SAFETY: sockaddr_ll is plain data; zeroed then filled with valid values.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.index as i32;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        // SAFETY: the buffer and the address live across the call, with their lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
