//! The kernel side of the exception path: every port's kernel twin (the interface DPDK
//! made for it) is brought up with the port's own addresses, so the kernel's sockets -
//! health checks, ssh to the DIP, VRRP - use them. On reload the addresses follow the
//! configuration: gone ones are removed, new ones added, the others left alone so that
//! sockets bound to them live on. Done with iproute2's `ip`, which every Linux has.

use crate::config::Config;
use std::process::Command;

/// Runs `ip args...`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// (kernel interface, address/len) of every port with a kernel twin.
fn addresses(cfg: &Config) -> Vec<(String, String)> {
    cfg.kernel_twins()
        .flat_map(|(i, k)| {
            cfg.ports[i]
                .addresses
                .iter()
                .map(move |a| (k.name.clone(), a.0.to_string()))
        })
        .collect()
}

/// Brings every kernel twin up with its port's addresses.
pub fn bring_up(cfg: &Config) -> Result<(), String> {
    for (_, k) in cfg.kernel_twins() {
        ip(&["link", "set", "dev", &k.name, "up"])?;
    }
    for (dev, a) in addresses(cfg) {
        ip(&["addr", "replace", &a, "dev", &dev])?;
    }
    for (_, k) in cfg.kernel_twins() {
        tracing::info!(interface = %k.name, "kernel exception path up");
    }
    Ok(())
}

/// Moves the kernel twins' addresses from `old`'s to `new`'s.
pub fn sync_addresses(old: &Config, new: &Config) -> Result<(), String> {
    let (was, is) = (addresses(old), addresses(new));
    for (dev, a) in was.iter().filter(|x| !is.contains(x)) {
        ip(&["addr", "del", a, "dev", dev])?;
    }
    for (dev, a) in is.iter().filter(|x| !was.contains(x)) {
        ip(&["addr", "replace", a, "dev", dev])?;
    }
    Ok(())
}
