#!/bin/sh
# Issue 15: records, once, the frames the kernel's own IPVS sends to a TUN real server in
# each encapsulation (GUE nocsum/csum/remcsum, GRE nocsum/csum; IPv4 and IPv6 outer), as
# programmed by the real keepalived. Prints "CAPTURE <name> <hex>" lines; the committed
# fixtures/wire/*.hex were cut from them (see fixtures/wire/README.md).
#
#   client  192.0.2.50 2001:db8::50   routes the VIPs via the director
#   lb      192.0.2.1  2001:db8::1    keepalived + IPVS, VIPs on lo, forwarding on
#   rs      192.0.2.11 2001:db8::11   captures on eth0 (nothing decapsulates there)
set -u
here=$(dirname "$0")
. "$here/../lib.sh"

VIP=198.51.100.100
VIP6=2001:db8:1::100
note "topology"
bridge_up
plan_ns client 192.0.2.50/24 2001:db8::50/64
in_ns client route add $VIP/32 via 192.0.2.1
in_ns client route add $VIP6/128 via 2001:db8::1
plan_ns lb 192.0.2.1/24 2001:db8::1/64
in_ns lb addr add $VIP/32 dev lo
in_ns lb addr add $VIP6/128 dev lo
plan_ns rs 192.0.2.11/24 2001:db8::11/64
apply_plan
nsysctl lb net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

ka=/run/ka-capture
mkdir -p $ka
# One virtual service per encapsulation: the tunnel options live on the real server.
{
    port=8000
    for vip in $VIP $VIP6; do
        rip=192.0.2.11
        [ "$vip" = "$VIP6" ] && rip=2001:db8::11
        for tun in "gue port 6080" "gue port 6080 csum" "gue port 6080 remcsum" "gre" "gre csum"; do
            port=$((port + 1))
            cat <<CONF
virtual_server $vip $port {
    lb_algo rr
    lb_kind TUN
    protocol TCP
    real_server $rip $port {
        lvs_method TUN type $tun
    }
}
CONF
        done
    done
} >$ka/keepalived.conf
ip netns exec lb keepalived -n -l -G -D -f $ka/keepalived.conf -p $ka/k.pid \
    -c $ka/c.pid >$ka/log 2>&1 &
ka_pid=$!
i=0
while [ "$(ip netns exec lb ipvsadm -Ln | grep -c -- '->.*Tunnel')" -lt 10 ] && [ $i -lt 100 ]; do
    sleep 0.2
    i=$((i + 1))
done
ip netns exec lb ipvsadm -Ln
ip netns exec rs perl "$here/../fixtures/capture-frames.pl" 10 20 >$ka/frames &
cap=$!
sleep 1
n=0
for port in 8001 8002 8003 8004 8005; do
    ip netns exec client timeout 1 busybox nc $VIP $port </dev/null >/dev/null 2>&1
done
for port in 8006 8007 8008 8009 8010; do
    ip netns exec client timeout 1 busybox nc $VIP6 $port </dev/null >/dev/null 2>&1
done
wait $cap
sed 's/^/CAPTURE /' $ka/frames
kill $ka_pid 2>/dev/null
wait $ka_pid 2>/dev/null
n=$(grep -c FRAME $ka/frames)
if [ "$n" -ge 10 ]; then pass "captured $n frames"; else fail "captured $n frames"; cat $ka/log; fi
finish
