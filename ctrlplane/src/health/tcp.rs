//! TCP_CHECK: success is a TCP connection established within connect_timeout
//! (check_tcp.c), from `bindto:bind_port` when given.

use super::resolve::Probe;
use tokio::net::{TcpSocket, TcpStream};

/// A connection to the probe's target, or keepalived's words for why not.
pub async fn connect(p: &Probe) -> Result<TcpStream, String> {
    let go = async {
        let s = TcpSocket::new_v4()?;
        if let Some(b) = p.bind {
            s.set_reuseaddr(true)?;
            s.bind(b.into())?;
        }
        s.connect(p.target.into()).await
    };
    match tokio::time::timeout(p.connect_timeout, go).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!(
            "TCP connection to {} failed: {e}",
            p.target_words()
        )),
        Err(_) => Err(format!(
            "TCP connection to {} timed out after {:?}",
            p.target_words(),
            p.connect_timeout
        )),
    }
}

pub async fn check(p: &Probe) -> Result<Option<u32>, String> {
    connect(p).await.map(|_| None)
}
