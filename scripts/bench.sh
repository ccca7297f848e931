#!/usr/bin/env bash
# The benchmarks (not part of the tests): per-core throughput of rvsd against testpmd on
# the same trace and vdevs, new connections per second, criterion micro-benchmarks, then
# BENCHMARKS.md and the plots from the results. Run as root on an otherwise idle machine.
#   bash scripts/bench.sh           # everything (about 10 minutes here)
#   bash scripts/bench.sh --quick   # 1k flows only, fewer micro-benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib

echo "== building (release)"
cargo build --release --quiet -p rvs -p rvs-bench
echo "== per-core throughput and connection rate"
./target/release/rvs-bench throughput ${1:-} --out bench/results/throughput.json
echo "== micro-benchmarks"
if [ "${1:-}" = "--quick" ]; then
  cargo bench -p rvs-bench --bench micro -- --quick conn_table/lookup_hit scheduler_pick | tee bench/results/micro.txt
else
  cargo bench -p rvs-bench --bench micro | tee bench/results/micro.txt
fi
echo "== report"
python3 bench/report.py
