#!/bin/bash
# natlab: a small internet in Linux network namespaces, for the end-to-end tests of NAT traversal and relaying.
#
#   natlab.sh up [KIND ...]   build it, one gamer behind each home router (KIND: cone | symmetric; default: cone cone)
#   natlab.sh down            remove it: kill what still runs in its namespaces, delete them
#   natlab.sh check           print what this machine lacks (one line each), exit 1 if anything
#
# Every name starts with $LR_NS (default "lr"), so concurrent test runs each build their own lab:
#   $LR_NS-pub    the "internet": bridge br0 with 203.0.113.10/24 (TEST-NET-3, RFC 5737); servers run here
#   $LR_NS-natN   home router N (1..9): WAN w$N 203.0.113.(20+N)/24 on the bridge, LAN lN 192.168.N.1/24
#   $LR_NS-peerN  gamer N: eN 192.168.N.2/24, default route via its router
#
# Home routers are Linux NAT (iptables MASQUERADE on the WAN) with the usual firewall of a home router: nothing
# unsolicited reaches the router itself. The kinds, in RFC 4787 terms:
#   cone       endpoint-independent mapping, port-preserving when the port is free; filtering depends on the
#              address and port (conntrack), so both sides sending at once opens the path
#   symmetric  MASQUERADE --random-fully: a new random external port for each destination; punching cannot
#              work, traffic has to go through a relay
#
# Use:   LR_NS=lrx123 test/e2e/natlab.sh up cone symmetric
#        ip netns exec lrx123-peer1 ping 203.0.113.10
#        LR_NS=lrx123 test/e2e/natlab.sh down
# Needs root and iproute2, iptables; the WireGuard tests also need wireguard-tools, wireguard-go, iputils-ping
# (Debian package names; .ci/run installs them). Only addresses inside the namespaces are used: nothing reaches
# the host's own network. This kernel may lack netem (no delay); loss can be added on a router with
#   ip netns exec $LR_NS-natN iptables -I FORWARD -m statistic --mode random --probability 0.2 -j DROP
set -eu
P=${LR_NS:-lr}
# Namespace names become paths under /run/netns; keep them to plain characters so nothing else can be named.
[[ "$P" =~ ^[a-z][a-z0-9-]{0,15}$ ]] || { echo "natlab: LR_NS must be 1-16 of [a-z0-9-], starting with a letter" >&2; exit 2; }
MAX=9

# The Debian package that brings each command, for the message that says what to install.
declare -A PKG=([ip]=iproute2 [iptables]=iptables [wg]=wireguard-tools [wireguard-go]=wireguard-go [ping]=iputils-ping)

check() {
  local missing=0
  [ "$(id -u)" = 0 ] || { echo "not root (network namespaces need it)"; missing=1; }
  for c in ip iptables wg wireguard-go ping; do
    command -v "$c" >/dev/null || { echo "missing $c (apt-get install ${PKG[$c]})"; missing=1; }
  done
  return $missing
}

names() {
  echo "$P-pub"
  for i in $(seq 1 $MAX); do echo "$P-nat$i $P-peer$i"; done
}

down() {
  local existing
  existing=$(ip netns list 2>/dev/null | awk '{print $1}')
  for n in $(names); do
    grep -qx -- "$n" <<<"$existing" || continue
    # Processes left inside (servers, wireguard-go) would keep the namespace's devices alive.
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$n" 2>/dev/null || true
  done
}

up() {
  local kinds=("$@")
  [ ${#kinds[@]} -gt 0 ] || kinds=(cone cone)
  [ ${#kinds[@]} -le $MAX ] || { echo "natlab: at most $MAX gamers" >&2; exit 2; }
  for k in "${kinds[@]}"; do
    case "$k" in cone | symmetric) ;; *) echo "natlab: unknown NAT kind \"$k\" (cone | symmetric)" >&2; exit 2 ;; esac
  done
  down
  trap 'down' ERR # a half-built lab is removed, not left behind
  local pub=$P-pub
  ip netns add "$pub"
  ip -n "$pub" link set lo up
  ip -n "$pub" link add br0 type bridge
  ip -n "$pub" link set br0 up
  ip -n "$pub" addr add 203.0.113.10/24 dev br0
  local desc=""
  for i in $(seq 1 ${#kinds[@]}); do
    local nat=$P-nat$i peer=$P-peer$i kind=${kinds[$((i - 1))]}
    ip netns add "$nat"
    ip netns add "$peer"
    ip -n "$nat" link set lo up
    ip -n "$peer" link set lo up
    # WAN: router N on the bridge of the "internet"
    ip link add "w$i" netns "$nat" type veth peer name "p$i" netns "$pub"
    ip -n "$pub" link set "p$i" master br0
    ip -n "$pub" link set "p$i" up
    ip -n "$nat" addr add "203.0.113.$((20 + i))/24" dev "w$i"
    ip -n "$nat" link set "w$i" up
    # LAN: the gamer behind it
    ip link add "l$i" netns "$nat" type veth peer name "e$i" netns "$peer"
    ip -n "$nat" addr add "192.168.$i.1/24" dev "l$i"
    ip -n "$nat" link set "l$i" up
    ip -n "$peer" addr add "192.168.$i.2/24" dev "e$i"
    ip -n "$peer" link set "e$i" up
    ip -n "$peer" route add default via "192.168.$i.1"
    ip netns exec "$nat" sysctl -qw net.ipv4.ip_forward=1
    local random=()
    [ "$kind" = symmetric ] && random=(--random-fully)
    ip netns exec "$nat" iptables -t nat -A POSTROUTING -o "w$i" -j MASQUERADE "${random[@]}"
    ip netns exec "$nat" iptables -A INPUT -i "w$i" -m conntrack --ctstate NEW -j DROP
    desc="$desc $peer behind a $kind NAT ($nat, 203.0.113.$((20 + i))),"
  done
  trap - ERR
  echo "natlab up:${desc} servers at 203.0.113.10 in $pub"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  check) check ;;
  down) down ;;
  up) up "$@" ;;
  *) sed -n '2,5p' "$0" >&2; exit 2 ;;
esac
