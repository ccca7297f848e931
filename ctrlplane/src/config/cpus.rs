//! CPU lists ("0-3,6") and the CPUs online on this host.

/// The CPUs that exist and are online. Not the thread's affinity: once the EAL has pinned
/// the daemon's main thread, that is a single CPU, and a reload must still accept the
/// configuration it started with.
pub fn online_cpus() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()).ok())
        .unwrap_or_else(|| {
            (0..std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1))
                .collect()
        })
}

/// Parses "0-3,6" into [0,1,2,3,6].
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("{s:?} is not a CPU list; write it like \"0-1\" or \"0,2-3\"");
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| bad())?,
                b.trim().parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let a = part.parse::<usize>().map_err(|_| bad())?;
                (a, a)
            }
        };
        if a > b || b > 1023 {
            return Err(bad());
        }
        for c in a..=b {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}
