#!/usr/bin/env bash
# Runs the fuzz targets (cargo-fuzz, libFuzzer) for SECONDS each (default 60).
# Stable Rust is used with RUSTC_BOOTSTRAP=1 for the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in packet_parse l2l3_input worker_input vrrp_advert sync_message control_inputs; do
  echo "== fuzzing $t for ${secs}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs" -max_len=2048
done
