#!/usr/bin/env bash
# The test command: installs what is missing, then formatting, lints, and every test
# (unit, packet-level, and end to end with real DPDK in network namespaces). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== the fuzz targets build and run (a smoke: scripts/fuzz.sh fuzzes them for real)"
(cd fuzz && cargo build --quiet --bins)
for t in $(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v rvs-fuzz); do
  # Not coverage-guided here (stable toolchain): random inputs up to a frame's size,
  # enough to catch a target that panics on its own or on short, odd input.
  fuzz/target/debug/"$t" -runs=3000 -seed=1 -max_len=1600 -len_control=0 2>&1 | tail -1
done
echo "== cargo test"
status=0
# The fast path with no DPDK at all, as README promises.
cargo test -p dataplane --no-default-features 2>&1 | tee target/test.log || status=$?
# One test at a time: end-to-end tests each pin rvsd to both cores and read
# machine-wide state (hugepages), and two at once would disturb each other. Every
# binary runs even when an earlier one fails.
cargo test --workspace --no-fail-fast -- --test-threads=1 2>&1 | tee -a target/test.log || status=$?
# Leftovers are bugs: every test tears down what it made.
left=$(ip netns list | grep -c '^rvst-' || true)
if [ "$left" -ne 0 ]; then
  echo "tests left $left network namespace(s) behind:" >&2
  ip netns list | grep '^rvst-' >&2
  exit 1
fi
# Tests keep every rvsd's config under /tmp/rvst-*; a benchmark's rvsd (rvsb-, rvs-bench)
# running meanwhile is not a leftover.
if pgrep -a -x rvsd | grep -q '/rvst-'; then
  echo "tests left rvsd running: $(pgrep -a -x rvsd | grep '/rvst-')" >&2
  exit 1
fi
# One closing line with the totals over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log
exit "$status"
