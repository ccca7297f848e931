//! UDP_CHECK: sends `payload` to the target from a connected socket. With
//! `require_reply`, a reply that matches (X nibbles are wildcards) within
//! connect_timeout is success; without, success is the absence of an ICMP port
//! unreachable (which a connected socket reports as ECONNREFUSED) within connect_timeout,
//! as keepalived relies on (its man page advises connect_timeout of 4 s or more).
//! As in keepalived's check_udp.c, a required reply must be `min_reply_length` to
//! `max_reply_length` bytes long (0 and 255 by default), and only as many bytes as both
//! the reply and `require_reply` have are compared.

use super::resolve::Probe;
use tokio::net::UdpSocket;

pub async fn check(
    p: &Probe,
    payload: &[u8],
    reply: Option<&[(u8, u8)]>,
    lengths: (u16, u16),
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
            Some(want) if !matches(&buf[..n], want, lengths) => Err(format!(
                "UDP reply from {words} ({n} bytes) does not match require_reply"
            )),
            _ => Ok(None),
        },
        Ok(Err(e)) => Err(format!("UDP check to {words} failed: {e}")),
        Err(_) if reply.is_some() => Err(format!("no UDP reply from {words}")),
        Err(_) => Ok(None),
    }
}

/// The reply has an accepted length and agrees with the wanted bytes over their common
/// length, wildcards aside.
pub fn matches(got: &[u8], want: &[(u8, u8)], (min, max): (u16, u16)) -> bool {
    (usize::from(min)..=usize::from(max)).contains(&got.len())
        && want.iter().zip(got).all(|(&(v, m), &g)| g & m == v & m)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards() {
        let want = super::super::resolve::hex("0aXbff", true).unwrap();
        let any = (0, 255);
        assert!(super::matches(&[0x0a, 0x3b, 0xff, 9], &want, any));
        assert!(!super::matches(&[0x0a, 0x3c, 0xff], &want, any));
        // keepalived compares the common length only: a short reply can match...
        assert!(super::matches(&[0x0a, 0x3b], &want, any));
        // ...unless min_reply_length refuses it; and 256 bytes are too long by default.
        assert!(!super::matches(&[0x0a, 0x3b], &want, (3, 255)));
        let mut long = vec![0x0a, 0x3b, 0xff];
        long.resize(256, 0);
        assert!(!super::matches(&long, &want, any));
        assert!(super::matches(&long, &want, (0, 300)));
    }
}
