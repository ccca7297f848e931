//! PING_CHECK: an ICMP echo request to the target (from `bindto` when given) answered by
//! an echo reply with our identifier and sequence within connect_timeout. A raw socket
//! (rvsd runs as root) in the tokio reactor.

use super::resolve::Probe;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::Read;
use std::net::{SocketAddr, SocketAddrV4};
use tokio::io::unix::AsyncFd;

/// An echo request: type 8, code 0, `ident`, `seq`, 16 bytes of payload.
pub fn echo(ident: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"rvs PING_CHECK..");
    let c = dataplane::packet::checksum::checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Whether `ip` (an IPv4 packet as a raw socket reads it) is the echo reply we wait for.
pub fn is_reply(ip: &[u8], from: std::net::Ipv4Addr, ident: u16, seq: u16) -> bool {
    let ihl = usize::from(ip.first().map_or(0, |b| b & 0xf)) * 4;
    let Some(icmp) = ip.get(ihl..) else {
        return false;
    };
    ihl >= 20
        && ip.get(12..16) == Some(&from.octets()[..])
        && icmp.len() >= 8
        && icmp[0] == 0
        && icmp[4..6] == ident.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
}

pub async fn check(p: &Probe) -> Result<Option<u32>, String> {
    let who = p.target.ip();
    let go = async {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
            .map_err(|e| format!("ICMP socket (needs root): {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        if let Some(b) = p.bind {
            s.bind(&SocketAddr::V4(SocketAddrV4::new(*b.ip(), 0)).into())
                .map_err(|e| e.to_string())?;
        }
        // SAFETY: `s` is an open socket owned by the AsyncFd for its whole life, so its
        // descriptor stays valid and the same until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register(s) }.map_err(|e| e.to_string())?;
        let ident = (std::process::id() as u16) ^ (p.target.port().rotate_left(7));
        let seq = rand_seq();
        let to: SocketAddr = SocketAddrV4::new(*who, 0).into();
        fd.get_ref()
            .send_to(&echo(ident, seq), &to.into())
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        loop {
            let mut guard = fd.readable().await.map_err(|e| e.to_string())?;
            match guard.try_io(|inner| inner.get_ref().read(&mut buf)) {
                Ok(Ok(n)) if is_reply(&buf[..n], *who, ident, seq) => return Ok(None),
                Ok(Ok(_)) | Err(_) => continue,
                Ok(Err(e)) => return Err(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(p.connect_timeout, go).await {
        Ok(r) => r.map_err(|e| format!("PING_CHECK to {who} failed: {e}")),
        Err(_) => Err(format!(
            "no echo reply from {who} within {:?}",
            p.connect_timeout
        )),
    }
}

fn rand_seq() -> u16 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_and_reply() {
        let e = echo(0x1234, 7);
        assert_eq!(dataplane::packet::checksum::checksum(&e), 0);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 11, 198, 18, 0, 2,
        ];
        let mut reply = e.clone();
        reply[0] = 0;
        ip.extend_from_slice(&reply);
        let from = std::net::Ipv4Addr::new(198, 18, 0, 11);
        assert!(is_reply(&ip, from, 0x1234, 7));
        assert!(!is_reply(&ip, from, 0x1234, 8));
        assert!(!is_reply(
            &ip,
            std::net::Ipv4Addr::new(198, 18, 0, 12),
            0x1234,
            7
        ));
        assert!(!is_reply(&ip[..22], from, 0x1234, 7));
    }
}
