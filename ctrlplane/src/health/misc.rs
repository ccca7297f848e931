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

    /// Whether process `pid` has ended. A zombie counts: once the killed shell is gone
    /// the child is reaped by init, which may take a while (or, in a container whose
    /// init does not reap, never), so kill(pid, 0) alone could keep saying "alive".
    fn ended(pid: i32) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return true;
        };
        // "pid (comm) S ...": the state follows the last ')' (comm may hold one too).
        let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        matches!(after_comm.trim_start().chars().next(), Some('Z' | 'X'))
    }

    /// A script whose child outlives it: the timeout kills the child too. The child
    /// reports its pid, and the test waits for that very process to end, so a kill that
    /// misses it fails the test rather than passing on timing.
    #[tokio::test]
    async fn a_timeout_kills_the_whole_script() {
        let pidfile = std::env::temp_dir().join(format!("rvs-misc-{}.pid", std::process::id()));
        let _ = std::fs::remove_file(&pidfile);
        let script = format!("sleep 30 & echo $! > {}; sleep 5", pidfile.display());
        // Long enough for the shell to write the pid even on a loaded machine.
        let r = check(&script, Duration::from_millis(500), false).await;
        assert!(r.unwrap_err().contains("timed out"));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .expect("the script wrote its child's pid before the timeout");
        let _ = std::fs::remove_file(&pidfile);
        // The child would sleep 30 s: well past this deadline unless it was killed.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !ended(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "the script's child {pid} survived its timeout"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
