#!/bin/sh
# The home network of issue 13 in network namespaces, all named pvr-*:
#   pvr-home (the provider, 192.168.77.2) -- pvr-router (NAT; 192.168.77.1 | 11.0.0.1, miniupnpd
#   when asked) -- pvr-inet (the chain and the tenant, 11.0.0.2 | 11.0.1.2) -- pvr-relay (sshd, 11.0.1.3)
#   pvr-dc (a provider in a data centre, public 11.0.2.2) -- pvr-inet (11.0.2.1)
# IPv6 as an ISP gives it: the home's /64 2a0b:7700:77::/64 routed (not NATed) through the router,
# the relay and pvr-inet on global addresses too.
# 11.0.0.0/16 and 2a0b:7700::/32 stand for the internet: public ranges (miniupnpd refuses reserved
# ones as its external address, and the daemon does not count documentation ranges as public) that
# exist only inside these namespaces, none of which has a route out.
# usage: topology.sh up | down | miniupnpd-chains
set -eu
IPT=iptables-legacy
nsx() { ns=$1; shift; ip netns exec "$ns" "$@"; }

down() {
  # pvr-host only names the host's own namespace: deleting the name leaves the namespace alone.
  for ns in pvr-home pvr-router pvr-inet pvr-relay pvr-dc pvr-host; do ip netns del "$ns" 2>/dev/null || true; done
  # veths die with their namespace; one left in the root namespace by a failed `up` does not.
  for link in pvr-h0 pvr-r0 pvr-r1 pvr-i0 pvr-i1 pvr-l0 pvr-i2 pvr-d0; do ip link del "$link" 2>/dev/null || true; done
}

pair() { # pair <ns-a> <if-a> <addr-a> <ns-b> <if-b> <addr-b>
  ip link add "$2" type veth peer name "$5"
  ip link set "$2" netns "$1"
  ip link set "$5" netns "$4"
  nsx "$1" ip addr add "$3" dev "$2"
  nsx "$4" ip addr add "$6" dev "$5"
  nsx "$1" ip link set "$2" up
  nsx "$4" ip link set "$5" up
}

v6() { # v6 <ns> <if> <addr>: nodad, so the address is usable at once
  nsx "$1" ip -6 addr add "$3" dev "$2" nodad
}

up() {
  down
  for ns in pvr-home pvr-router pvr-inet pvr-relay pvr-dc; do
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
  done
  pair pvr-home pvr-h0 192.168.77.2/24 pvr-router pvr-r0 192.168.77.1/24
  pair pvr-router pvr-r1 11.0.0.1/24 pvr-inet pvr-i0 11.0.0.2/24
  pair pvr-inet pvr-i1 11.0.1.2/24 pvr-relay pvr-l0 11.0.1.3/24
  pair pvr-inet pvr-i2 11.0.2.1/24 pvr-dc pvr-d0 11.0.2.2/24
  v6 pvr-home pvr-h0 2a0b:7700:77::2/64
  v6 pvr-router pvr-r0 2a0b:7700:77::1/64
  v6 pvr-router pvr-r1 2a0b:7700:0::1/64
  v6 pvr-inet pvr-i0 2a0b:7700:0::2/64
  v6 pvr-inet pvr-i1 2a0b:7700:1::2/64
  v6 pvr-relay pvr-l0 2a0b:7700:1::3/64
  nsx pvr-home ip route add default via 192.168.77.1
  nsx pvr-home ip -6 route add default via 2a0b:7700:77::1
  nsx pvr-router ip route add default via 11.0.0.2
  nsx pvr-router ip -6 route add default via 2a0b:7700:0::2
  nsx pvr-inet ip -6 route add 2a0b:7700:77::/64 via 2a0b:7700:0::1
  nsx pvr-relay ip route add default via 11.0.1.2
  nsx pvr-relay ip -6 route add default via 2a0b:7700:1::2
  nsx pvr-dc ip route add default via 11.0.2.1
  nsx pvr-router sysctl -qw net.ipv4.ip_forward=1
  nsx pvr-inet sysctl -qw net.ipv4.ip_forward=1
  nsx pvr-router sysctl -qw net.ipv6.conf.all.forwarding=1
  nsx pvr-inet sysctl -qw net.ipv6.conf.all.forwarding=1
  nsx pvr-router $IPT -t nat -A POSTROUTING -o pvr-r1 -j MASQUERADE
  # A name for this (the host's) namespace, where Docker runs the leases: host-net-bin enters it.
  ip netns attach pvr-host $$
}

# The chains miniupnpd 2.3.1 (iptables build) adds its rules to; Debian's init script that
# creates them is broken, so they are made here, hooked where that script hooks them.
chains() {
  # Made once per topology: a second router case finds them there.
  nsx pvr-router $IPT -t nat -S MINIUPNPD >/dev/null 2>&1 && return 0
  nsx pvr-router $IPT -t nat -N MINIUPNPD
  nsx pvr-router $IPT -t nat -N MINIUPNPD-POSTROUTING
  nsx pvr-router $IPT -t mangle -N MINIUPNPD
  nsx pvr-router $IPT -t filter -N MINIUPNPD
  nsx pvr-router $IPT -t nat -I PREROUTING -i pvr-r1 -j MINIUPNPD
  nsx pvr-router $IPT -t nat -I POSTROUTING -o pvr-r1 -j MINIUPNPD-POSTROUTING
  nsx pvr-router $IPT -t mangle -I PREROUTING -i pvr-r1 -j MINIUPNPD
  nsx pvr-router $IPT -t filter -I FORWARD -i pvr-r1 ! -o pvr-r1 -j MINIUPNPD
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  miniupnpd-chains) chains ;;
  *) echo "usage: $0 up|down|miniupnpd-chains" >&2; exit 2 ;;
esac
