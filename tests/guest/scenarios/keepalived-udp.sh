#!/bin/sh
# Issue 14: a UDP (DNS) service under the real keepalived and the real IPVS, its config
# rewritten by `vipcheck rewrite --app-check` so each real server's DNS_CHECK also runs
# through the VIP. Runs in the guest.
#
# Namespaces on one bridge: director "lb" (holds the VIPs, runs keepalived and IPVS),
# client "cl" 192.0.2.50 / 2001:db8::50, and real servers, each with dnsmasq answering
# www.example.test A and who.example.test TXT "NAME":
#   192.0.2.110:53 DR   dns1 .11, dns2 .12 (VIP on lo) | mgmtonly .13 (VIP on lo, dnsmasq
#                       on its own address only) | novip .14 (no VIP)
#   192.0.2.111:53 TUN  tundns .21 (tunl0 up, VIP on lo) | notun .22 (VIP on lo, no tunnel)
#   [2001:db8::110]:53 DR dns6 ::31 (VIP on lo) | novip6 ::32
# Needs VIPCHECK_BIN (absolute path of the vipcheck binary).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

bin=${VIPCHECK_BIN:?VIPCHECK_BIN must name the vipcheck binary}
VIP=192.0.2.110
VIP2=192.0.2.111
VIP6=2001:db8::110
S1=$VIP:53
S2=$VIP2:53
S6="[$VIP6]:53"
ka=/tmp/ka-udp
mkdir -p "$ka"
start=$(uptime_s)
good_state="$S1=192.0.2.11,192.0.2.12 $S2=192.0.2.21 $S6=2001:db8::31"

note "topology"
director_lb "$VIP" "$VIP2" "$VIP6"
plan_ns cl 192.0.2.50/24 2001:db8::50/64
plan_ns dns1 192.0.2.11/24
in_ns dns1 addr add $VIP/32 dev lo
plan_ns dns2 192.0.2.12/24
in_ns dns2 addr add $VIP/32 dev lo
plan_ns mgmtonly 192.0.2.13/24
in_ns mgmtonly addr add $VIP/32 dev lo
plan_ns novip 192.0.2.14/24
plan_ns tundns 192.0.2.21/24
in_ns tundns link set tunl0 up
in_ns tundns addr add $VIP2/32 dev lo
plan_ns notun 192.0.2.22/24
in_ns notun addr add $VIP2/32 dev lo
plan_ns dns6 192.0.2.31/24 2001:db8::31/64
in_ns dns6 addr add $VIP6/128 dev lo nodad
plan_ns novip6 192.0.2.32/24 2001:db8::32/64
apply_plan

# dnsmasq NS [LISTEN-ADDRESS]: no upstream, no hosts file, its own answers only; on every
# address (bound as they come) unless one is given.
dnsmasq_in() {
    ns=$1
    bind="--bind-dynamic"
    [ -z "${2:-}" ] || bind="--bind-interfaces --listen-address=$2"
    # shellcheck disable=SC2086
    ip netns exec "$ns" dnsmasq --conf-file=/dev/null --no-resolv --no-hosts $bind \
        --pid-file="$ka/dnsmasq.$ns.pid" --user=root --group=root \
        --address=/www.example.test/192.0.2.53 --txt-record=who.example.test,"$ns" ||
        fail "dnsmasq starts in $ns"
}
for ns in dns1 dns2 novip tundns notun dns6 novip6; do dnsmasq_in "$ns"; done
dnsmasq_in mgmtonly 192.0.2.13
note "topology ready in $(seconds_since "$start")s"

ka_pid=
ka_log=$ka/keepalived.log
cleanup() {
    ka_kill
    for f in "$ka"/dnsmasq.*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
}
trap cleanup EXIT
explain() {
    echo "    IPVS table:"
    ip netns exec lb ipvsadm -Ln | sed 's/^/    | /'
    echo "    keepalived log (tail):"
    tail -n 25 "$ka_log" | sed 's/^/    | /'
}

# queries NAME SERVER COUNT EXPECT: COUNT DNS queries from the client through the VIP
# (each from a new source port: a new IPVS connection); passes when every one is answered
# and only by (and by each of) the servers named in EXPECT. dig may try twice, 4 s each
# (its own start takes seconds on a loaded TCG guest; a retry keeps the source port, so
# it stays on the same real server).
queries() {
    name=$1 server=$2 count=$3 expect=$4
    out=
    i=0
    while [ $i -lt "$count" ]; do
        a=$(ip netns exec cl dig +short +tries=2 +time=4 @"$server" who.example.test TXT 2>/dev/null |
            grep -v '^;' | head -n 1 | tr -d '"')
        out="$out${a:-NONE}
"
        i=$((i + 1))
    done
    summary=$(printf '%s' "$out" | sort | uniq -c | awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $1 }')
    echo "    $name: $summary"
    ok=1
    for who in $(printf '%s' "$out" | sort -u); do
        case " $expect " in *" $who "*) ;; *) ok=0 ;; esac
    done
    for who in $expect; do
        printf '%s' "$out" | grep -qx "$who" || ok=0
    done
    if [ $ok -eq 1 ]; then pass "$name"; else fail "$name: $summary, wanted all by [$expect]"; explain; fi
}

note "vipcheck rewrite --app-check"
cp "$here/../fixtures/keepalived-udp.conf" "$ka/keepalived.conf"
out_conf=$ka/keepalived.vipcheck.conf
expect_status "vipcheck rewrite --app-check writes the config" 0 '' \
    "$bin" rewrite "$ka/keepalived.conf" -o "$out_conf" --probe-path "$bin" --app-check \
    --probe-timeout 8s
n=$(grep -c -- '--check dns --dns-name=www.example.test --dns-type=A' "$out_conf" 2>/dev/null)
if [ "${n:-0}" -eq 8 ]; then
    pass "every real server's DNS_CHECK runs through the VIP too"
else
    fail "$n of 8 generated checks run the DNS query through the VIP"
    cat "$out_conf" | sed 's/^/    | /'
fi
expect_status "keepalived -t accepts the rewritten config" 0 '' keepalived -t -f "$out_conf"

ip netns exec lb keepalived -n -l -G -D -C -f "$out_conf" -p "$ka/ka.pid" \
    -c "$ka/ka.checkers.pid" >"$ka_log" 2>&1 &
ka_pid=$!
note "keepalived started, pid $ka_pid"
# Eight debug-build probes start together every round (delay_loop 12-15) on a TCG guest: a
# generous probe timeout (8 s, misc_timeout 9) keeps a slow start from killing a good one.
wait_state "vipcheck: exactly the good real servers are in IPVS" "$good_state" 90
note "client DNS queries through the VIPs"
queries "vipcheck: $S1 answered only by dns1, dns2" $VIP 8 "dns1 dns2"
queries "vipcheck: $S2 answered only by tundns" $VIP2 4 "tundns"
queries "vipcheck: $S6 answered only by dns6" $VIP6 4 "dns6"
note "one probe by hand: the TUN real server without a tunnel"
expect_status "vipcheck probe: notun does not decapsulate" 1 'does not decapsulate' \
    ip netns exec lb "$bin" probe --vip $VIP2 --rip 192.0.2.22 --port 53 --proto udp \
    --method tun --check dns --dns-name www.example.test --timeout 2s
expect_status "vipcheck probe: mgmtonly has nothing on the VIP" 1 'nothing listens on udp/53' \
    ip netns exec lb "$bin" probe --vip $VIP --rip 192.0.2.13 --port 53 --proto udp \
    --check dns --dns-name www.example.test --timeout 2s
ka_kill
note "scenario took $(seconds_since "$start")s"
finish
