//! SMTP_CHECK: the server's 220 greeting, `HELO <helo_name>` answered by 250, then QUIT
//! (check_smtp.c), all within connect_timeout.

use super::resolve::Probe;
use super::tcp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Reads one SMTP reply (continuation lines `250-...` up to the final `250 ...`).
async fn reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<u16, String> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or("not an SMTP reply")?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

pub async fn check(p: &Probe, helo: &str) -> Result<Option<u32>, String> {
    let words = p.target_words();
    let go = async {
        let s = tcp::connect(p).await?;
        let mut s = BufReader::new(s);
        let c = reply(&mut s).await?;
        if c != 220 {
            return Err(format!("bad SMTP greeting {c}"));
        }
        s.get_mut()
            .write_all(format!("HELO {helo}\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let c = reply(&mut s).await?;
        if c != 250 {
            return Err(format!("HELO answered {c}"));
        }
        let _ = s.get_mut().write_all(b"QUIT\r\n").await;
        Ok(None)
    };
    match tokio::time::timeout(p.connect_timeout, go).await {
        Ok(r) => r.map_err(|e| format!("SMTP check to {words} failed: {e}")),
        Err(_) => Err(format!("SMTP check to {words} timed out")),
    }
}
