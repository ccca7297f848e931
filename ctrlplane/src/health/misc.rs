//! MISC_CHECK: runs `misc_path` (a command line, through /bin/sh so that arguments and
//! quoting work as in keepalived.conf) with `misc_timeout`; exit 0 is up, 1 down, and
//! with `misc_dynamic` 2-255 is up with weight code - 2 (check_misc.c). The one place a
//! check owns a process: the script's.

use std::time::Duration;
use tokio::process::Command;

pub async fn check(path: &str, timeout: Duration, dynamic: bool) -> Result<Option<u32>, String> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {path:?}: {e}"))?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => s.map_err(|e| format!("{path:?}: {e}"))?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!("Misc check to {path:?} timed out"));
        }
    };
    match status.code() {
        Some(0) => Ok(None),
        Some(c) if dynamic && c >= 2 => Ok(Some(c as u32 - 2)),
        Some(c) => Err(format!("Misc check {path:?} exited with status {c}")),
        None => Err(format!("Misc check {path:?} was killed by a signal")),
    }
}
