#!/usr/bin/env bash
# The demo: builds rvs, makes a small namespace topology (client -- bridge -- director),
# starts rvsd on a DPDK af_packet port in the director, shows it answering ARP and ping
# and counting what it drops, then stops it and tears everything down. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "building rvs"
cargo build --quiet --bins
RVSD=$PWD/target/debug/rvsd
RVSADM=$PWD/target/debug/rvsadm
SOCK=/run/rvs/demo.sock
CL=rvsdemo-client DIR=rvsdemo-dir BR=rvsdemo-br
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  for ns in $CL $DIR $BR; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

say "topology: $CL (198.18.0.1) -- bridge -- $DIR (rvsd on eth0, owns 198.18.0.2)"
ip netns add $BR; ip netns add $CL; ip netns add $DIR
ip netns exec $BR sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $BR link add br0 type bridge; ip -n $BR link set br0 up
for h in client dir; do
  ns=rvsdemo-$h
  ip -n $ns link add eth0 type veth peer name p-$h netns $BR
  ip -n $BR link set p-$h master br0; ip -n $BR link set p-$h up
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n $ns link set lo up; ip -n $ns link set eth0 up
done
ip -n $CL addr add 198.18.0.1/24 dev eth0
ip netns exec $DIR "$RVSD" --config conf/demo.yaml --check

say "starting rvsd in $DIR"
ip netns exec $DIR "$RVSD" --config conf/demo.yaml > /tmp/rvsdemo.log 2>&1 &
pid=$!
for _ in $(seq 100); do "$RVSADM" --socket $SOCK --status >/dev/null 2>&1 && break; sleep 0.1; done
"$RVSADM" --socket $SOCK --status

say "client pings the director's address"
ip netns exec $CL ping -c 3 -i 0.2 198.18.0.2
say "client's ARP table: the director port's MAC"
ip -n $CL neigh show 198.18.0.2

say "traffic for an address rvsd does not own is dropped and counted"
ip -n $CL neigh replace 198.18.0.99 lladdr "$(ip netns exec $DIR cat /sys/class/net/eth0/address)" dev eth0
ip netns exec $CL ping -c 2 -i 0.2 -W 1 198.18.0.99 || true
"$RVSADM" --socket $SOCK --counters

say "stopping rvsd (SIGTERM): ports closed, EAL memory released"
kill -TERM $pid; wait $pid; echo "rvsd exited with status $?"; pid=""
tail -n 3 /tmp/rvsdemo.log
say "done; namespaces removed"
