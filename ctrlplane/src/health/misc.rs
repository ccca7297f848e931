//! MISC_CHECK: runs `misc_path` (a command line, through /bin/sh so that arguments and
//! quoting work as in keepalived.conf) with `misc_timeout`; exit 0 is up, 1 down, and
//! with `misc_dynamic` 2-255 is up with weight code - 2 (check_misc.c). The one place a
//! check owns a process: the script's. It runs in a process group of its own, so that a
//! timeout kills whatever the script started too (as keepalived's `kill(-pid)` does),
//! not only the shell.

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
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {path:?}: {e}"))?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => s.map_err(|e| format!("{path:?}: {e}"))?,
        Err(_) => {
            if let Some(pid) = child.id() {
                // SAFETY: signals the script's own process group, created at spawn.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A script whose child outlives it: the timeout kills the child too.
    #[tokio::test]
    async fn a_timeout_kills_the_whole_script() {
        let mark = std::env::temp_dir().join(format!("rvs-misc-{}", std::process::id()));
        let _ = std::fs::remove_file(&mark);
        let script = format!("(sleep 0.5; touch {}) & sleep 5", mark.display());
        let r = check(&script, Duration::from_millis(100), false).await;
        assert!(r.unwrap_err().contains("timed out"));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(!mark.exists(), "the script's child survived its timeout");
    }

    #[tokio::test]
    async fn exit_codes() {
        let t = Duration::from_secs(5);
        assert_eq!(check("exit 0", t, false).await, Ok(None));
        assert!(check("exit 1", t, true).await.is_err());
        assert_eq!(check("exit 7", t, true).await, Ok(Some(5)));
        assert!(check("exit 7", t, false).await.is_err());
    }
}
