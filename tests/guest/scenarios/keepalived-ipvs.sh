#!/bin/sh
# Issue 5: the real keepalived programs the real IPVS from an operator's keepalived.conf,
# first as written (baseline), then as rewritten by `vipcheck rewrite`. Runs in the guest.
#
# Namespaces on one bridge: director "lb" (holds the VIPs, runs keepalived and IPVS),
# client "cl" 192.0.2.50 / 2001:db8::50, and real servers:
#   192.0.2.100:80 DR    good1 .11, good2 .12 (VIP on lo) | novip .13 | nolisten .14 (VIP,
#                        web server on the management address only) | fwd .15 (no VIP,
#                        ip_forward=1, route to the VIP via the director)
#   192.0.2.101:80 TUN   tungood .21 (tunl0 up, VIP on lo) | tundr .22 (VIP on lo, no tunnel)
#   [2001:db8::100]:80 DR good6 ::31 (VIP on lo) | novip6 ::32
# Every web server's page is "server=NAME", so the client sees who answered.
# Needs VIPCHECK_BIN (absolute path of the vipcheck binary).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

bin=${VIPCHECK_BIN:?VIPCHECK_BIN must name the vipcheck binary}
VIP=192.0.2.100
VIP2=192.0.2.101
VIP6=2001:db8::100
S1=$VIP:80
S2=$VIP2:80
S6="[$VIP6]:80"
ka=/tmp/ka
. "$here/../keepalived-site.sh"
trap 'ka_stop >/dev/null 2>&1' EXIT
explain() {
    echo "    IPVS table:"
    ip netns exec lb ipvsadm -Ln | sed 's/^/    | /'
    echo "    keepalived log (tail):"
    tail -n 25 "$ka_log" | sed 's/^/    | /'
}

# -------- baseline: the config as the operator wrote it --------
cp "$here/../fixtures/keepalived.conf" "$ka/keepalived.conf"
ka_start "$ka/keepalived.conf" baseline
wait_state "baseline: keepalived programs every real server" "$all_state" 30
# Give the health checks a round (delay_loop 6) and a retry (1 s later) to drop anyone they
# would drop.
sleep 9
baseline_state=$(ipvs_state)
if [ "$baseline_state" = "$all_state" ]; then
    pass "baseline: the management-address checks keep the misconfigured real servers"
else
    fail "baseline: the management-address checks keep the misconfigured real servers: [$baseline_state]"
fi
note "baseline traffic (recorded, not asserted)"
traffic "baseline $S1" "http://$VIP/" 10
traffic "baseline $S2" "http://$VIP2/" 4
traffic "baseline $S6" "http://[$VIP6]/" 4
ka_stop

# -------- the same config after `vipcheck rewrite` --------
note "vipcheck rewrite"
out_conf=$ka/keepalived.vipcheck.conf
if expect_status "vipcheck rewrite writes the config" 0 '' \
    "$bin" rewrite "$ka/keepalived.conf" -o "$out_conf" --probe-path "$bin" &&
    [ -s "$out_conf" ]; then
    rewritten=1
    n=$(grep -c 'MISC_CHECK' "$out_conf")
    if [ "$n" -eq 9 ]; then pass "rewrite added a MISC_CHECK to each of the 9 real servers"; else fail "rewrite added $n MISC_CHECKs, wanted 9"; fi
    diff -u "$ka/keepalived.conf" "$out_conf" | head -n 60 | sed 's/^/    | /'
else
    rewritten=0
    fail "vipcheck rewrite: no rewritten config; the rewritten half is not run"
fi

if [ $rewritten -eq 1 ]; then
    expect_status "keepalived -t accepts the rewritten config" 0 '' keepalived -t -f "$out_conf"
    misc_timeout=$(sed -n 's/^ *misc_timeout \([0-9]*\).*/\1/p' "$out_conf" | head -n 1)
    # A failing check is noticed at the next round (delay_loop 6 s) after the probe's own
    # timeout (below misc_timeout); keepalived's MISC_CHECK has no retry unless one is
    # written; a second attempt and 3 s of process start-up under TCG are slack.
    # (delay_loop 6, not less: each probe costs the TCG guest about 0.5 s of CPU.)
    bound=$((6 + 2 * ${misc_timeout:-3} + 3))
    ka_start "$out_conf" vipcheck
    settled_state=
    wait_state "vipcheck: exactly the good real servers are in IPVS" "$good_state" 40
    vipcheck_state=${settled_state:-$(ipvs_state)}
    note "client traffic through the rewritten config"
    EXPECT="good1 good2" traffic "vipcheck: $S1 answered only by good1, good2" "http://$VIP/" 12
    EXPECT="tungood" traffic "vipcheck: $S2 answered only by tungood" "http://$VIP2/" 4
    EXPECT="good6" traffic "vipcheck: $S6 answered only by good6" "http://[$VIP6]/" 4

    note "break good1 (remove its VIP); bound ${bound}s"
    ip -n good1 addr del $VIP/32 dev lo
    wait_state "vipcheck: good1 without its VIP is removed" "$without_good1" "$bound"
    EXPECT="good2" traffic "vipcheck: $S1 answered only by good2 while good1 is broken" "http://$VIP/" 6
    ip -n good1 addr add $VIP/32 dev lo
    wait_state "vipcheck: good1 with its VIP again is back" "$good_state" "$bound"
    EXPECT="good1 good2" traffic "vipcheck: $S1 answered by good1 and good2 again" "http://$VIP/" 6
    ka_stop
else
    vipcheck_state="(not run)"
fi

note "real servers in IPVS: baseline (operator's config) vs after vipcheck rewrite"
echo "$servers" | awk -v base=" $baseline_state " -v vip=" $vipcheck_state " '
    function member(state, svc, rip, i, parts, n, list) {
        i = index(state, " " svc "=")
        if (i == 0) return "out"
        list = substr(state, i + length(svc) + 2)
        sub(/ .*/, "", list)
        n = split(list, parts, ",")
        for (i = 1; i <= n; i++) if (parts[i] == rip) return "IN"
        return "out"
    }
    BEGIN { printf "    %-20s %-14s %-20s %-9s %s\n", "SERVICE", "REAL-SERVER", "ROLE", "BASELINE", "VIPCHECK" }
    { printf "    %-20s %-14s %-20s %-9s %s\n", $1, $2, $4, member(base, $1, $2), member(vip, $1, $2) }'
note "scenario took $(seconds_since "$start")s"
finish
