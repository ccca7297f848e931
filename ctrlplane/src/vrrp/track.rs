//! keepalived's `vrrp_script`: a command run every `interval` (through /bin/sh, killed
//! with its process group after `timeout`), whose exit status 0 is a success. The script
//! counts as failed after `fall` failures in a row and as ok again after `rise`
//! successes. It starts as ok, as keepalived's scripts do without `init_fail`.

use crate::config::VrrpScriptConf;
use std::time::Duration;

/// The rise/fall counting of one script.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub ok: bool,
    run: u32,
    rise: u32,
    fall: u32,
}

impl Tracker {
    pub fn new(c: &VrrpScriptConf) -> Tracker {
        Tracker {
            ok: true,
            run: 0,
            rise: c.rise.max(1),
            fall: c.fall.max(1),
        }
    }

    /// Counts one run; true when `ok` changed.
    pub fn record(&mut self, success: bool) -> bool {
        if success == self.ok {
            self.run = 0;
            return false;
        }
        self.run += 1;
        let need = if success { self.rise } else { self.fall };
        if self.run >= need {
            self.ok = success;
            self.run = 0;
            return true;
        }
        false
    }
}

/// One run of `script` bounded by `timeout`: whether it exited 0.
pub async fn run_once(script: &str, timeout: Duration) -> bool {
    // MISC_CHECK's runner: a process group of its own, killed whole on timeout.
    crate::health::misc::check(script, timeout, false)
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(rise: u32, fall: u32) -> VrrpScriptConf {
        VrrpScriptConf {
            name: "chk".into(),
            script: "true".into(),
            interval: 1.0,
            timeout: None,
            weight: 0,
            rise,
            fall,
        }
    }

    #[test]
    fn rise_and_fall() {
        let mut t = Tracker::new(&conf(2, 3));
        assert!(t.ok);
        assert!(!t.record(false));
        assert!(!t.record(false));
        assert!(!t.record(true), "a success breaks the run of failures");
        assert!(!t.record(false));
        assert!(!t.record(false));
        assert!(t.record(false), "the third failure in a row");
        assert!(!t.ok);
        assert!(!t.record(true));
        assert!(t.record(true), "the second success in a row");
        assert!(t.ok);
    }

    #[tokio::test]
    async fn exit_status() {
        assert!(run_once("exit 0", Duration::from_secs(5)).await);
        assert!(!run_once("exit 1", Duration::from_secs(5)).await);
        assert!(!run_once("sleep 5", Duration::from_millis(100)).await);
    }
}
