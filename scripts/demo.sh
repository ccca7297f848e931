#!/usr/bin/env bash
# The demo: builds rvs, makes a namespace topology (a client, two directors, three real
# servers, one bridge), starts rvsd on a DPDK af_packet port in each director, and shows
# it answering ARP and ping, balancing HTTP over the real servers with NAT (round robin),
# health-checking them from the director's kernel (a real server dies: traffic avoids
# it; it comes back: back in rotation), counting what it drops, and high availability:
# VRRP elects the first director MASTER, connections are synced to the second, the
# master is killed and the backup carries on. It ends with `rvsadm -L -n`, then tears
# everything down. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "building rvs"
cargo build --quiet --bins -p rvs -p testkit
RVSD=$PWD/target/debug/rvsd
RVSADM=$PWD/target/debug/rvsadm
WEB=$PWD/target/debug/rvs-webserver
SOCK=/run/rvs/demo.sock
SOCKB=/run/rvs/demo-b.sock
BR=rvsdemo-br
HOSTS="client dir dirb rs1 rs2 rs3"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for h in $HOSTS; do ip netns del "rvsdemo-$h" 2>/dev/null || true; done
  ip netns del $BR 2>/dev/null || true
}
trap cleanup EXIT

say "topology: client 198.18.1.1 -- bridge -- directors A (198.18.x.2) and B (198.18.x.3), VRRP VIP 198.18.1.100 and gateways 198.18.{1,0}.254 -- rs1..rs3 198.18.0.11-13"
ip netns add $BR
ip netns exec $BR sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $BR link add br0 type bridge; ip -n $BR link set br0 up
for h in $HOSTS; do
  ns=rvsdemo-$h
  ip netns add "$ns"
  ip -n "$ns" link add eth0 type veth peer name "p-$h" netns $BR
  ip -n $BR link set "p-$h" master br0; ip -n $BR link set "p-$h" up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  # Kernel peers put real checksums and segment sizes on the wire for the DPDK port.
  ip netns exec "$ns" ethtool -K eth0 tx off tso off gso off gro off >/dev/null 2>&1 || true
  ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up
done
ip -n rvsdemo-client addr add 198.18.1.1/24 dev eth0
ip -n rvsdemo-client route add default via 198.18.1.254
for i in 1 2 3; do
  ns=rvsdemo-rs$i
  ip -n "$ns" addr add "198.18.0.1$i/24" dev eth0
  ip -n "$ns" route add default via 198.18.0.254
  ip netns exec "$ns" "$WEB" --listen "198.18.0.1$i:80" --name "rs$i" & pids+=($!)
done
rs2_pid=${pids[1]}
# Polls `rvsadm --health` until real server $1 is $2 (UP or DOWN), for at most 20 s.
wait_health() {
  for _ in $(seq 200); do
    "$RVSADM" --socket $SOCK --health | grep -q " $1 .* $2 " && return 0
    sleep 0.1
  done
  echo "(still not $2 after 20 s)"; return 1
}
# Polls `rvsadm --vrrp` on socket $1 until VI_1 is $2 (MASTER or BACKUP), for 20 s.
wait_vrrp() {
  for _ in $(seq 200); do
    "$RVSADM" --socket "$1" --vrrp | grep -q "^VI_1 .* $2 " && return 0
    sleep 0.1
  done
  echo "(still not $2 after 20 s)"; return 1
}
ip netns exec rvsdemo-dir "$RVSD" --config conf/demo.yaml --check
ip netns exec rvsdemo-dirb "$RVSD" --config conf/demo-b.yaml --check

say "starting rvsd in both directors"
ip netns exec rvsdemo-dir "$RVSD" --config conf/demo.yaml > /tmp/rvsdemo.log 2>&1 &
rvsd_pid=$!
ip netns exec rvsdemo-dirb "$RVSD" --config conf/demo-b.yaml > /tmp/rvsdemo-b.log 2>&1 &
rvsdb_pid=$!
pids+=($rvsd_pid $rvsdb_pid)
for s in $SOCK $SOCKB; do
  for _ in $(seq 100); do "$RVSADM" --socket $s --status >/dev/null 2>&1 && break; sleep 0.1; done
done
"$RVSADM" --socket $SOCK --status

say "VRRP (v3, 0.1 s adverts): A is MASTER of the VIP and the gateways, B is BACKUP"
wait_vrrp $SOCK MASTER
wait_vrrp $SOCKB BACKUP
"$RVSADM" --socket $SOCK --vrrp
"$RVSADM" --socket $SOCKB --vrrp

say "client pings the director"
ip netns exec rvsdemo-client ping -c 2 -i 0.2 198.18.1.2

say "client fetches http://198.18.1.100/ six times: NAT, round robin over rs1..rs3"
for _ in 1 2 3 4 5 6; do ip netns exec rvsdemo-client curl -s --max-time 3 http://198.18.1.100/; done

say "health checks (HTTP_GET every 0.5 s, from the director's kernel at the DIP): rvsadm --health"
wait_health 198.18.0.13:80 UP
"$RVSADM" --socket $SOCK --health

say "rs2's web server dies: within delay_loop x (retry + 1) + connect_timeout it is taken out"
kill -TERM "$rs2_pid"
wait_health 198.18.0.12:80 DOWN
"$RVSADM" --socket $SOCK --health
for _ in 1 2 3 4 5 6; do ip netns exec rvsdemo-client curl -s --max-time 3 http://198.18.1.100/; done

say "rs2 comes back: one successful check and it is in rotation again"
ip netns exec rvsdemo-rs2 "$WEB" --listen "198.18.0.12:80" --name "rs2" & pids+=($!)
wait_health 198.18.0.12:80 UP
for _ in 1 2 3 4 5 6; do ip netns exec rvsdemo-client curl -s --max-time 3 http://198.18.1.100/; done

say "traffic for an address rvsd does not own is dropped and counted"
ip -n rvsdemo-client neigh replace 198.18.1.99 lladdr "$(ip netns exec rvsdemo-dir cat /sys/class/net/eth0/address)" dev eth0
ip netns exec rvsdemo-client ping -c 2 -i 0.2 -W 1 198.18.1.99 || true
"$RVSADM" --socket $SOCK --counters

say "connection sync: B's table already holds A's connections (rvsadm -L -c -n on B)"
"$RVSADM" --socket $SOCKB -L -n --daemon
"$RVSADM" --socket $SOCKB -L -c -n | head -8

say "the master dies (kill -9): B takes over the addresses within 0.4 s and carries on"
kill -KILL $rvsd_pid; wait $rvsd_pid 2>/dev/null || true
wait_vrrp $SOCKB MASTER
"$RVSADM" --socket $SOCKB --vrrp
for _ in 1 2 3 4 5 6; do ip netns exec rvsdemo-client curl -s --max-time 3 http://198.18.1.100/; done

say "what forwards now, on B: rvsadm -L -n"
"$RVSADM" --socket $SOCKB -L -n
kill -TERM $rvsdb_pid; wait $rvsdb_pid || echo "rvsd exited with status $? (log: /tmp/rvsdemo-b.log)"
