//! UDP_CHECK: sends `payload` to the target from a connected socket. With
//! `require_reply`, a reply that matches (X nibbles are wildcards) within
//! connect_timeout is success; without, success is the absence of an ICMP port
//! unreachable (which a connected socket reports as ECONNREFUSED) within connect_timeout,
//! as keepalived relies on (its man page advises connect_timeout of 4 s or more).

use super::resolve::Probe;
use tokio::net::UdpSocket;

pub async fn check(
    p: &Probe,
    payload: &[u8],
    reply: Option<&[(u8, u8)]>,
) -> Result<Option<u32>, String> {
    let words = p.target_words().replace(":tcp:", ":udp:");
    let bind = p
        .bind
        .map(std::net::SocketAddr::V4)
        .unwrap_or(([0, 0, 0, 0], 0).into());
    let s = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    s.connect(p.target)
        .await
        .map_err(|e| format!("UDP connect to {words}: {e}"))?;
    s.send(payload)
        .await
        .map_err(|e| format!("UDP send to {words}: {e}"))?;
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(p.connect_timeout, s.recv(&mut buf)).await {
        Ok(Ok(n)) => match reply {
            Some(want) if !matches(&buf[..n], want) => Err(format!(
                "UDP reply from {words} does not match require_reply"
            )),
            _ => Ok(None),
        },
        Ok(Err(e)) => Err(format!("UDP check to {words} failed: {e}")),
        Err(_) if reply.is_some() => Err(format!("no UDP reply from {words}")),
        Err(_) => Ok(None),
    }
}

/// The reply starts with the wanted bytes, wildcards aside.
pub fn matches(got: &[u8], want: &[(u8, u8)]) -> bool {
    got.len() >= want.len() && want.iter().zip(got).all(|(&(v, m), &g)| g & m == v & m)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards() {
        let want = super::super::resolve::hex("0aXbff", true).unwrap();
        assert!(super::matches(&[0x0a, 0x3b, 0xff, 9], &want));
        assert!(!super::matches(&[0x0a, 0x3c, 0xff], &want));
        assert!(!super::matches(&[0x0a, 0x3b], &want));
    }
}
