//! Plain-data parameters of the DPDK layer: what the control plane decides and `io`
//! carries out. Kept outside `io` so that configuration code and tests need no DPDK.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hugepages {
    /// Use hugepages when enough are free, else fall back to `--no-huge`.
    #[default]
    Auto,
    On,
    Off,
}

/// What the EAL needs; built by the control plane from the config.
#[derive(Debug, Clone)]
pub struct EalParams {
    /// CPUs to run on; the first hosts the main (control) lcore.
    pub cores: Vec<usize>,
    pub workers: usize,
    pub file_prefix: String,
    pub hugepages: Hugepages,
    /// Memory to reserve with `--no-huge` (and the minimum free for `auto`).
    pub memory_mb: usize,
    /// Devices: PCI addresses (`-a`) or vdev strings (`--vdev`).
    pub devices: Vec<String>,
    /// Passed verbatim at the end (e.g. `--log-level=pmd.net.af_packet:debug`).
    pub extra_args: Vec<String>,
}

/// True for `0000:03:00.0` or `03:00.0`: a PCI address rather than a vdev string.
pub fn is_pci_address(dev: &str) -> bool {
    let parts: Vec<&str> = dev.split(':').collect();
    (parts.len() == 2 || parts.len() == 3)
        && parts.last().is_some_and(|l| l.contains('.'))
        && parts.iter().all(|p| {
            p.split('.')
                .all(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
        })
}

/// The DPDK device name of a device string: the vdev name before the first comma, or the
/// PCI address.
pub fn device_name(dev: &str) -> &str {
    dev.split(',').next().unwrap_or(dev)
}

fn free_hugepages_mb() -> usize {
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") / 1024
}

impl EalParams {
    /// The EAL command line. Every instance is private (`--in-memory` with hugepages,
    /// `--no-shconf` without): no shared config and no hugepage files left behind even
    /// after a crash, so tests can run many daemons side by side.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["rvsd".to_string()];
        // lcore 0 = main on the first core; worker i on the following cores, wrapping
        // round, so that more workers than cores still run (sharing, with the adaptive
        // idle policy).
        let cores: &[usize] = if self.cores.is_empty() {
            &[0]
        } else {
            &self.cores
        };
        let mut map = vec![format!("0@{}", cores[0])];
        for i in 0..self.workers {
            map.push(format!("{}@{}", i + 1, cores[(i + 1) % cores.len()]));
        }
        a.push(format!("--lcores={}", map.join(",")));
        a.push("--main-lcore=0".into());
        a.push(format!("--file-prefix={}", self.file_prefix));
        let huge = match self.hugepages {
            Hugepages::On => true,
            Hugepages::Off => false,
            Hugepages::Auto => free_hugepages_mb() >= self.memory_mb,
        };
        if huge {
            a.push("--in-memory".into());
        } else {
            // --no-huge implies legacy memory, which --in-memory refuses; --no-shconf
            // gives the same privacy (anonymous memory leaves no files).
            a.push("--no-huge".into());
            a.push("--no-shconf".into());
            a.push("-m".into());
            a.push(self.memory_mb.to_string());
        }
        let mut pci = false;
        for d in &self.devices {
            if is_pci_address(d) {
                pci = true;
                a.push("-a".into());
                a.push(d.clone());
            } else {
                a.push(format!("--vdev={d}"));
            }
        }
        if !pci {
            a.push("--no-pci".into());
        }
        if let Some(dir) = pmd_dir() {
            a.push("-d".into());
            a.push(dir);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// Debian installs the PMDs as plugins in /usr/lib/<triplet>/dpdk/pmds-<abi>. EAL also
/// has that path built in; passing it explicitly makes the vdevs work even where a
/// distribution did not.
fn pmd_dir() -> Option<String> {
    for base in [
        "/usr/lib/x86_64-linux-gnu/dpdk",
        "/usr/lib/aarch64-linux-gnu/dpdk",
        "/usr/local/lib/dpdk",
    ] {
        if let Ok(rd) = std::fs::read_dir(base) {
            let mut dirs: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path().to_string_lossy().into_owned())
                .filter(|p| p.contains("pmds-"))
                .collect();
            dirs.sort();
            if let Some(d) = dirs.pop() {
                return Some(d);
            }
        }
    }
    None
}

/// What a worker does when its queues are empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdlePolicy {
    /// Poll without pause: lowest latency, one full core per worker (bare metal).
    Busy,
    /// After a few empty polls, yield the core to other runnable threads; after a longer
    /// run, sleep for a short time that doubles up to a cap; return to polling at the
    /// first packet. Lets a worker share a core.
    #[default]
    Adaptive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_or_vdev() {
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.1"));
        assert!(!is_pci_address("net_af_packet0,iface=veth-d"));
        assert!(!is_pci_address("net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap"));
        assert_eq!(device_name("net_af_packet0,iface=veth-d"), "net_af_packet0");
    }

    #[test]
    fn command_line() {
        let p = EalParams {
            cores: vec![0, 1],
            workers: 2,
            file_prefix: "t".into(),
            hugepages: Hugepages::Off,
            memory_mb: 128,
            devices: vec!["net_null0".into()],
            extra_args: vec![],
        };
        let a = p.args();
        assert!(a.contains(&"--lcores=0@0,1@1,2@0".to_string()), "{a:?}");
        assert!(a.contains(&"--no-huge".to_string()));
        assert!(a.contains(&"--vdev=net_null0".to_string()));
        assert!(a.contains(&"--no-pci".to_string()));
        assert!(a.contains(&"--no-shconf".to_string()));
        assert!(
            !a.contains(&"--in-memory".to_string()),
            "--in-memory conflicts with --no-huge"
        );
        let on = EalParams {
            hugepages: Hugepages::On,
            ..p
        }
        .args();
        assert!(on.contains(&"--in-memory".to_string()) && !on.contains(&"--no-huge".to_string()));
    }
}
