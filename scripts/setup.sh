#!/usr/bin/env bash
# Installs what rvs needs on Debian 12 and reserves hugepages. Idempotent: it only
# installs what is missing. Run as root. Used by scripts/test.sh and scripts/demo.sh.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (DPDK, hugepages and network namespaces need it)" >&2
  exit 1
fi

packages=(
  build-essential pkg-config clang libclang-dev   # bindgen and the C shim
  dpdk dpdk-dev libdpdk-dev                       # DPDK 22.11 and its PMD plugins
  iproute2 iputils-ping iputils-arping ethtool curl  # namespace topologies, tests and demo
  tshark                                          # decodes what rvs sends, in packet tests
  dnsmasq-base openssl python3                    # real DNS, TLS and SMTP (smtpd) servers for health checks
  keepalived                                      # the real VRRP peer of the HA tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer for it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
    [ -x "$c" ] && export PATH="$(dirname "$c"):$PATH"
  done
fi
command -v cargo >/dev/null 2>&1 || { echo "setup.sh: no Rust toolchain (cargo) found; install Rust 1.75 or newer" >&2; exit 1; }

# Hugepages: rvs runs without them (eal.hugepages: auto falls back to --no-huge), but
# DPDK is at home with them. 2 MiB pages; rvs uses --in-memory, so no hugetlbfs mount
# is needed and no files are left behind.
want=${RVS_HUGEPAGES:-512}
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$hp" ] && [ "$(cat "$hp")" -lt "$want" ]; then
  echo "$want" > "$hp" 2>/dev/null || true
  echo "setup.sh: hugepages (2 MiB) reserved: $(cat "$hp") of $want wanted"
fi

# Namespaces left by an interrupted demo.
for ns in $(ip netns list 2>/dev/null | awk '/^rvsdemo-/{print $1}'); do ip netns del "$ns" || true; done
exit 0
