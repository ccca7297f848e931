//! The exception path's throughput: iperf3 (TCP, both directions) between a client and
//! a server on the director's kernel, through rvs's kernel twin (net_af_packet port,
//! net_tap twin), against the same-run baseline of the director's kernel owning the
//! interface itself. DPVS publishes the same comparison for KNI and virtio-user
//! (test/kni.md); its figures are another machine's, quoted as context only.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use testkit::{Host, Topology};

const DIP: &str = "198.18.1.2";

/// What the figures are, as the report says it.
pub const SETUP: &str = "iperf3, TCP, one stream per direction, between a client and a server on the director's kernel: through rvs's kernel twin (net_af_packet port, net_tap twin, one worker, adaptive idle) and, as the same-run baseline, with the director's kernel owning the interface itself; rounds alternate which path goes first. Each rvs run checks that its bytes crossed the twin (rvs's to_kernel and from_kernel counters).";

#[derive(Serialize, Clone, Debug)]
pub struct Round {
    /// "kernel" (the director's kernel on its own interface) or "rvs (kernel twin)".
    pub path: String,
    /// Client to the director's kernel, and back (-R), in Gbit/s.
    pub to_director_gbps: f64,
    pub from_director_gbps: f64,
}

/// Received bits per second of an `iperf3 -J` run.
fn received_bps(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 -J output")?;
    if let Some(e) = v.get("error") {
        bail!("iperf3: {e}");
    }
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .context("no end.sum_received.bits_per_second in iperf3's output")
}

fn iperf(client: &Host, secs: u32, reverse: bool) -> Result<(f64, u64)> {
    let t = secs.to_string();
    let mut args = vec!["iperf3", "-c", DIP, "-t", &t, "-J"];
    if reverse {
        args.push("-R");
    }
    let out = client.exec(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    let bps = received_bps(&text)?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let bytes = v
        .pointer("/end/sum_received/bytes")
        .and_then(|b| b.as_u64())
        .unwrap_or(0);
    Ok((bps, bytes))
}

/// One round: both paths, in the order given.
fn round(rvsd: &Path, secs: u32, rvs_first: bool) -> Result<Vec<Round>> {
    let mut t = Topology::new();
    let client = t.add_host("client", Some("198.18.1.1/24"));
    let lb = t.add_host("lb", None);
    let _server = Stopped(lb.spawn(&["iperf3", "-s"]));
    testkit::eventually(
        "iperf3 -s listening",
        std::time::Duration::from_secs(10),
        || {
            lb.run(&["ss", "-ltnH", "sport", "= :5201"])
                .contains("5201")
                .then_some(())
        },
    );
    let mut out = Vec::new();
    for rvs in [rvs_first, !rvs_first] {
        if rvs {
            let cfg = format!(
                "eal: {{ cores: \"0-1\", file_prefix: rvsbench-kni, hugepages: auto, memory_mb: 512 }}\ndataplane: {{ workers: 1, idle: adaptive, mbufs: 16383, rx_desc: 1024, tx_desc: 1024 }}\nmetrics: {{ listen: \"\" }}\nports:\n  - {{ name: lan0, device: \"net_af_packet0,iface=eth0,framecnt=8192\", addresses: [\"{DIP}/24\"], kernel: {{ name: lan0k }} }}\ncontrol: {{ socket: \"{{SOCKET}}\" }}\n"
            );
            t.start_rvsd(&lb, rvsd, &cfg);
            let before = t.last_rvsd().counters();
            let (to, to_bytes) = iperf(&client, secs, false)?;
            let (from, from_bytes) = iperf(&client, secs, true)?;
            let after = t.last_rvsd().counters();
            // The premise: the bytes really crossed the twin, both ways.
            let sum = |c: &ctrlplane::ctl::Counters,
                       f: fn(&ctrlplane::ctl::WorkerCounters) -> u64| {
                c.workers.iter().map(f).sum::<u64>()
            };
            let up = sum(&after, |w| w.to_kernel) - sum(&before, |w| w.to_kernel);
            let down = sum(&after, |w| w.from_kernel) - sum(&before, |w| w.from_kernel);
            if up < to_bytes / 1500 || down < from_bytes / 65536 {
                bail!(
                    "iperf3's traffic did not cross the kernel twin: {up} frames up, {down} down"
                );
            }
            t.last_rvsd().stop();
            out.push(Round {
                path: "rvs (kernel twin)".into(),
                to_director_gbps: to / 1e9,
                from_director_gbps: from / 1e9,
            });
        } else {
            lb.run(&["ip", "addr", "add", &format!("{DIP}/24"), "dev", "eth0"]);
            let (to, _) = iperf(&client, secs, false)?;
            let (from, _) = iperf(&client, secs, true)?;
            lb.run(&["ip", "addr", "flush", "dev", "eth0"]);
            out.push(Round {
                path: "kernel".into(),
                to_director_gbps: to / 1e9,
                from_director_gbps: from / 1e9,
            });
        }
    }
    Ok(out)
}

/// A child process killed and reaped when dropped, on every path.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `rounds` rounds, alternating which path goes first.
pub fn run(rvsd: &Path, secs: u32, rounds: usize) -> Result<Vec<Vec<Round>>> {
    (0..rounds)
        .map(|r| {
            eprintln!("round {} of {rounds}", r + 1);
            let rs = round(rvsd, secs, r % 2 == 1)?;
            for x in &rs {
                eprintln!(
                    "  {:<18} to the director {:6.2} Gbit/s, from it {:6.2} Gbit/s",
                    x.path, x.to_director_gbps, x.from_director_gbps
                );
            }
            Ok(rs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn iperf3_json() {
        let j = r#"{"end": {"sum_received": {"bytes": 1000, "bits_per_second": 2.5e9}}}"#;
        assert_eq!(super::received_bps(j).unwrap(), 2.5e9);
        assert!(super::received_bps(r#"{"error": "unable to connect"}"#).is_err());
        assert!(super::received_bps("{}").is_err());
    }
}
