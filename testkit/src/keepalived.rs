//! Debian's keepalived as a real VRRP peer in a test namespace: VRRP only (`-P`), in the
//! foreground, in a process group of its own so that a test can `kill -9` all of it.
//! Its state is read from what a `notify` script writes and from whether it put the
//! virtual addresses on its interface.

use crate::Host;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Keepalived {
    child: Option<Child>,
    pub state_file: PathBuf,
    pub log: PathBuf,
}

impl Keepalived {
    /// Starts keepalived in `host` with `conf`; `{NOTIFY}` in it is replaced by a notify
    /// script that records the state. Files go in `dir`.
    pub fn start(host: &Host, dir: &Path, name: &str, conf: &str) -> Keepalived {
        let state_file = dir.join(format!("{name}.state"));
        let notify = dir.join(format!("{name}-notify.sh"));
        std::fs::write(
            &notify,
            format!("#!/bin/sh\necho \"$3\" > {}\n", state_file.display()),
        )
        .expect("notify script");
        Command::new("chmod")
            .arg("755")
            .arg(&notify)
            .status()
            .expect("chmod");
        let conf_path = dir.join(format!("{name}.conf"));
        std::fs::write(
            &conf_path,
            conf.replace("{NOTIFY}", &notify.display().to_string()),
        )
        .expect("keepalived.conf");
        let log = dir.join(format!("{name}.log"));
        let logf = std::fs::File::create(&log).expect("log");
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &host.ns,
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-P",
            "-R",
        ])
        .arg("-f")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.join(format!("{name}.pid")))
        .arg("-r")
        .arg(dir.join(format!("{name}-vrrp.pid")))
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf);
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let child = c.spawn().expect("keepalived (apt-get install keepalived)");
        Keepalived {
            child: Some(child),
            state_file,
            log,
        }
    }

    /// The state its notify script recorded last (MASTER, BACKUP, FAULT), "" before.
    pub fn state(&self) -> String {
        std::fs::read_to_string(&self.state_file)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9` of keepalived and its VRRP child (its whole process group).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals the process group keepalived was started in.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- keepalived ----\n{}", self.log_text());
        }
        self.kill();
    }
}
