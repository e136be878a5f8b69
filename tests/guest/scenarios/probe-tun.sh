#!/bin/sh
# Issue 3, TUN part: `vipcheck probe --method tun` against real tunnel real servers, with a
# DR sanity pass on the same topology. Runs in the guest (Debian kernel: ipip, ip6_tunnel).
#
# One bridge; a director namespace and real servers:
#   tun-good   192.0.2.11  tunl0 up with the VIP on it, rp_filter off, listener  -> up
#   tun-lo     192.0.2.12  tunl0 up, VIP on lo, listener                         -> up
#   tun-novip  192.0.2.13  tunl0 up, no VIP                                      -> down
#   dr-only    192.0.2.14  VIP on lo, tunl0 left down (a DR real server)         -> down, does not decapsulate
#   no-tunl    192.0.2.15  no tunnel device at all (fb_tunnels_only_for_init_net) -> down, does not decapsulate
#   tun6-good  2001:db8::21  ip6tnl0 up, VIP6 on lo, listener                    -> up
#                            (and the IPv4 VIP on lo, but ip6tnl0 takes only IPv6 -> down)
#   dr6-only   2001:db8::22  VIP6 on lo, ip6tnl0 down                            -> down, does not decapsulate
#   tun46      2001:db8::23  an ip6tnl device (mode any, any remote) up, IPv4 VIP on lo:
#                            the IPv4 VIP through an IPv6 tunnel                  -> up
# Needs VIPCHECK_BIN (the vipcheck binary, absolute path).
set -u
. "$(dirname "$0")/../lib.sh"

VIP=192.0.2.100
VIP6=2001:db8::100
PORT=80
bin=${VIPCHECK_BIN:?VIPCHECK_BIN must name the vipcheck binary}
start=$(uptime_s)

note "topology"
bridge_up
# What every LVS real server gets (copied into each new namespace): answer ARP only for
# addresses on the receiving interface, announce with the best local address, and accept
# decapsulated packets whose reply leaves by another interface (rp_filter off).
sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
plan_ns dir 192.0.2.1/24 2001:db8::1/64
plan_ns tun-good 192.0.2.11/24
in_ns tun-good link set tunl0 up
in_ns tun-good addr add $VIP/32 dev tunl0
plan_ns tun-lo 192.0.2.12/24
in_ns tun-lo link set tunl0 up
in_ns tun-lo addr add $VIP/32 dev lo
plan_ns tun-novip 192.0.2.13/24
in_ns tun-novip link set tunl0 up
plan_ns dr-only 192.0.2.14/24
in_ns dr-only addr add $VIP/32 dev lo
plan_ns tun6-good 192.0.2.21/24 2001:db8::21/64
in_ns tun6-good link set ip6tnl0 up
in_ns tun6-good addr add $VIP6/128 dev lo nodad
in_ns tun6-good addr add $VIP/32 dev lo
plan_ns dr6-only 192.0.2.22/24 2001:db8::22/64
in_ns dr6-only addr add $VIP6/128 dev lo nodad
plan_ns tun46 192.0.2.23/24 2001:db8::23/64
in_ns tun46 link add t46 type ip6tnl mode any local 2001:db8::23
in_ns tun46 link set t46 up
in_ns tun46 addr add $VIP/32 dev lo
apply_plan
# Namespaces made from here on get no fallback tunnel device: a host whose kernel has the
# ipip module but no tunnel configured.
sysctl -qw net.core.fb_tunnels_only_for_init_net=1
plan_ns no-tunl 192.0.2.15/24
in_ns no-tunl addr add $VIP/32 dev lo
apply_plan
sysctl -qw net.core.fb_tunnels_only_for_init_net=0
mkdir -p /run/www
for ns in tun-good tun-lo tun6-good dr-only dr6-only tun46; do
    mkdir -p "/run/www/$ns"
    echo "$ns" >"/run/www/$ns/index.html"
    ip netns exec "$ns" busybox httpd -p "[::]:$PORT" -h "/run/www/$ns"
done
note "topology ready in $(seconds_since "$start")s"

# Facts about the topology itself, independent of vipcheck.
if ip -n no-tunl link show tunl0 >/dev/null 2>&1; then
    fail "topology: no-tunl has no tunnel device"
else
    pass "topology: no-tunl has no tunnel device"
fi
if ip -n dr-only link show tunl0 | grep -q 'state DOWN'; then
    pass "topology: dr-only's tunl0 is down"
else
    fail "topology: dr-only's tunl0 is down"
fi

probe() { ip netns exec dir "$bin" probe --timeout 1s "$@"; }

note "TUN, IPv4"
expect_status "tun good (VIP on tunl0) = up" 0 '^up' \
    probe --method tun --vip $VIP --rip 192.0.2.11 --port $PORT
expect_status "tun good (VIP on lo) = up" 0 '^up' \
    probe --method tun --vip $VIP --rip 192.0.2.12 --port $PORT
expect_status "tun good, icmp only = up" 0 '^up' \
    probe --method tun --vip $VIP --rip 192.0.2.11 --check icmp
expect_status "tun tunnel but no VIP = down" 1 '^down' \
    probe --method tun --vip $VIP --rip 192.0.2.13 --port $PORT
expect_status "tun tunl0 down (DR real server) = down, does not decapsulate" 1 'decapsulat' \
    probe --method tun --vip $VIP --rip 192.0.2.14 --port $PORT
expect_status "tun no tunnel device = down, does not decapsulate" 1 'decapsulat' \
    probe --method tun --vip $VIP --rip 192.0.2.15 --port $PORT
expect_status "tun ldirectord convention = up" 0 '^up' \
    probe --method tun $VIP $PORT 192.0.2.11 $PORT

note "TUN, IPv6"
expect_status "tun6 good = up" 0 '^up' \
    probe --method tun --vip $VIP6 --rip 2001:db8::21 --port $PORT
expect_status "tun6 ip6tnl0 down (DR real server) = down, does not decapsulate" 1 'decapsulat' \
    probe --method tun --vip $VIP6 --rip 2001:db8::22 --port $PORT
expect_status "tun IPv4 VIP in IPv6 to an IPv6 real server = up" 0 '^up' \
    probe --method tun --vip $VIP --rip 2001:db8::23 --port $PORT
expect_status "tun IPv4 VIP in IPv6 to a tunnel that takes only IPv6 = down" 1 '^down' \
    probe --method tun --vip $VIP --rip 2001:db8::21 --port $PORT
expect_status "tun IPv4 VIP in IPv6, no VIP there = down" 1 '^down' \
    probe --method tun --vip 192.0.2.99 --rip 2001:db8::23 --port $PORT

note "application check through the VIP over the tunnel (issue 7)"
# busybox httpd listens on [::]:80 on every real server and serves the namespace's name.
# A session costs a few process starts more than a probe under TCG: a longer budget.
app_probe() { ip netns exec dir "$bin" probe --timeout 4s "$@"; }
expect_status "tun http through the VIP, right body = up" 0 '^up' \
    app_probe --method tun --vip $VIP --rip 192.0.2.12 --port $PORT \
    --check http --expect-body tun-lo
expect_status "tun http through the VIP, wrong body = down" 1 'does not contain' \
    app_probe --method tun --vip $VIP --rip 192.0.2.12 --port $PORT \
    --check http --expect-body tun-good
expect_status "tun tcp-session to a closed port = down, refused" 1 'refused' \
    app_probe --method tun --vip $VIP --rip 192.0.2.12 --port 81 --check tcp-session
expect_status "tun6 http through the VIP = up" 0 '^up' \
    app_probe --method tun --vip $VIP6 --rip 2001:db8::21 --port $PORT \
    --check http --expect-body tun6-good
expect_status "tun http, IPv4 VIP in IPv6 = up" 0 '^up' \
    app_probe --method tun --vip $VIP --rip 2001:db8::23 --port $PORT \
    --check http --expect-body tun46
if [ -z "$(ip netns exec dir nft list ruleset 2>&1)" ]; then
    pass "no nftables table left on the director"
else
    fail "no nftables table left on the director"
fi

note "DR sanity on the same topology"
expect_status "dr good = up" 0 '^up' \
    probe --method dr --vip $VIP --rip 192.0.2.14 --port $PORT
expect_status "dr no VIP = down" 1 '^down' \
    probe --method dr --vip $VIP --rip 192.0.2.13 --port $PORT
expect_status "dr6 good = up" 0 '^up' \
    probe --method dr --vip $VIP6 --rip 2001:db8::22 --port $PORT

note "probes done in $(seconds_since "$start")s"
finish
