#!/usr/bin/env bash
# The benchmarks (not part of the tests): per-core throughput of rvsd against testpmd on
# the same trace and vdevs, new connections per second, criterion micro-benchmarks, then
# BENCHMARKS.md and the plots from the results. Run as root on an otherwise idle machine.
#   bash scripts/bench.sh           # everything (about 45 minutes here)
#   bash scripts/bench.sh --quick   # 1k flows only, fewer micro-benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib
# iperf3's package asks whether to start a daemon: no.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections
for p in wrk haproxy nftables valgrind nginx-light iperf3; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null; done
# HAProxy only runs inside the benchmark's namespace.
systemctl disable --now haproxy >/dev/null 2>&1 || true

echo "== building (release)"
cargo build --release --quiet -p rvs -p rvs-bench
echo "== per-core throughput and connection rate"
./target/release/rvs-bench throughput ${1:-} --out bench/results/throughput.json
echo "== end to end: direct, nftables DNAT, HAProxy, rvs (wrk, SYN flood)"
./target/release/rvs-bench e2e ${1:-} --out bench/results/e2e.json
echo "== the kernel exception path (iperf3 through the kernel twin vs the kernel alone)"
./target/release/rvs-bench kernel ${1:-} --out bench/results/kernel.json
echo "== failover (kill -9 of the VRRP master; keepalived moving a kernel VIP as the anchor)"
./target/release/rvs-bench failover ${1:-} --out bench/results/failover.json
echo "== health checks at scale (1,000 real servers, TCP_CHECK + HTTP_GET each second)"
./target/release/rvs-bench health --out bench/results/health.json
echo "== instructions per packet (callgrind)"
./target/release/rvs-bench instructions --out bench/results/instructions.json
echo "== micro-benchmarks"
if [ "${1:-}" = "--quick" ]; then
  cargo bench -p rvs-bench --bench micro -- --quick conn_table/lookup_hit scheduler_pick | tee bench/results/micro.txt
else
  cargo bench -p rvs-bench --bench micro | tee bench/results/micro.txt
fi
echo "== report"
python3 bench/report.py
