#!/bin/sh
# Issue 17: `vipcheck status --ipvs` audits the real IPVS table, built here with ipvsadm.
# Runs in the guest.
#
# Director "lb" (holds the VIPs, IPVS) and real servers on one bridge:
#   192.0.2.100:80 DR    good1 .11 (VIP on lo) | novip .13 | nolisten .14 (VIP, web server
#                        on its own address only) | fwd .15 (no VIP, forwards to the
#                        director) | quiet .16 (no VIP, weight 0: quiesced)
#   192.0.2.101:80 TUN   tungood .21 (tunl0 up, VIP) | tundr .22 (VIP, no tunnel) |
#                        .23 GUE port 6080 (no host: probed over GUE, down)
#   [2001:db8::100]:80 DR good6 ::31 (VIP) | novip6 ::32
#   192.0.2.102:80 NAT   .41:8080 (no host: NAT is not applicable)
#   fwmark 5 DR          good2 .12 (VIP 192.0.2.103 on lo)
# Then: the drift report against tests/guest/fixtures/ipvs-drift.conf; the captured
# netlink answers printed for fixtures/ipvs (VIPCHECK_IPVS_PRINT_CAPTURE=1); and, with
# IPVS unloaded, `status --ipvs` says so, exits 2 and asks the kernel for no module.
# Needs VIPCHECK_BIN (absolute path of the vipcheck binary).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

bin=${VIPCHECK_BIN:?VIPCHECK_BIN must name the vipcheck binary}
VIP=192.0.2.100
VIP2=192.0.2.101
VIP6=2001:db8::100
VIP3=192.0.2.102
VIPF=192.0.2.103
work=/tmp/ipvs-audit
mkdir -p "$work" /run/www
start=$(uptime_s)

note "topology"
director_lb "$VIP" "$VIP2" "$VIP3" "$VIPF" "$VIP6"
plan_ns good1 192.0.2.11/24
in_ns good1 addr add $VIP/32 dev lo
plan_ns good2 192.0.2.12/24
in_ns good2 addr add $VIPF/32 dev lo
plan_ns novip 192.0.2.13/24
plan_ns nolisten 192.0.2.14/24
in_ns nolisten addr add $VIP/32 dev lo
plan_ns fwd 192.0.2.15/24
in_ns fwd route add $VIP/32 via 192.0.2.1
plan_ns quiet 192.0.2.16/24
plan_ns tungood 192.0.2.21/24
in_ns tungood link set tunl0 up
in_ns tungood addr add $VIP2/32 dev lo
plan_ns tundr 192.0.2.22/24
in_ns tundr addr add $VIP2/32 dev lo
plan_ns good6 192.0.2.31/24 2001:db8::31/64
in_ns good6 addr add $VIP6/128 dev lo nodad
plan_ns novip6 192.0.2.32/24 2001:db8::32/64
apply_plan
nsysctl fwd net.ipv4.ip_forward=1
for ns in good1 good2 novip nolisten tungood tundr good6; do
    listen="[::]:80"
    [ "$ns" != nolisten ] || listen=192.0.2.14:80
    mkdir -p "/run/www/$ns"
    ip netns exec "$ns" busybox httpd -p "$listen" -h "/run/www/$ns"
done

ip netns exec lb ipvsadm -R <<RULES
-A -t $VIP:80 -s wlc
-a -t $VIP:80 -r 192.0.2.11:80 -g -w 1
-a -t $VIP:80 -r 192.0.2.13:80 -g -w 1
-a -t $VIP:80 -r 192.0.2.14:80 -g -w 1
-a -t $VIP:80 -r 192.0.2.15:80 -g -w 1
-a -t $VIP:80 -r 192.0.2.16:80 -g -w 0
-A -t $VIP2:80 -s rr
-a -t $VIP2:80 -r 192.0.2.21:80 -i -w 1
-a -t $VIP2:80 -r 192.0.2.22:80 -i -w 1
-A -t [$VIP6]:80 -s rr
-a -t [$VIP6]:80 -r [2001:db8::31]:80 -g -w 1
-a -t [$VIP6]:80 -r [2001:db8::32]:80 -g -w 1
-A -t $VIP3:80 -s rr
-a -t $VIP3:80 -r 192.0.2.41:8080 -m -w 1
-A -f 5 -s rr
-a -f 5 -r 192.0.2.12:0 -g -w 1
RULES
[ $? -eq 0 ] || fail "ipvsadm -R builds the table"
# ipvsadm -R does not know the tunnel options: one command for the GUE destination.
ip netns exec lb ipvsadm -a -t $VIP2:80 -r 192.0.2.23:80 -i -w 1 --tun-type gue \
    --tun-port 6080 --tun-remcsum || fail "ipvsadm adds a GUE destination"
ip netns exec lb ipvsadm -Ln --tun-info | sed 's/^/    | /'
note "topology ready in $(seconds_since "$start")s"

# ---- the audit, as JSON: one line per destination row ----
rows() { jq -r '.destinations[] | "\(.service) \(.rip) \(.method) w=\(.weight) up=\(.up) act=\(.act_first) q=\(.quiesced)"' "$1"; }
expect_rows() { # NAME FILE EXPECTED
    got=$(rows "$2")
    if [ "$got" = "$3" ]; then
        pass "$1"
    else
        fail "$1"
        printf '%s\n' "--- wanted" "$3" "--- got" "$got" | sed 's/^/    /'
    fi
}
t0=$(uptime_s)
ip netns exec lb "$bin" status --ipvs --json --timeout 5s --fwmark-vip 5=$VIPF >"$work/audit.json"
rc=$?
note "status --ipvs --json took $(seconds_since "$t0")s, exit $rc"
cat "$work/audit.json" | head -n 400 | sed 's/^/    | /'
if [ $rc -eq 1 ]; then pass "status --ipvs exits 1 when a checked destination is down"; else fail "status --ipvs exits 1 when a checked destination is down (exit $rc)"; fi
expect_rows "status --ipvs: every destination's row" "$work/audit.json" "192.0.2.100:80/tcp 192.0.2.11 dr w=1 up=true act=false q=false
192.0.2.100:80/tcp 192.0.2.13 dr w=1 up=false act=true q=false
192.0.2.100:80/tcp 192.0.2.14 dr w=1 up=false act=true q=false
192.0.2.100:80/tcp 192.0.2.15 dr w=1 up=false act=true q=false
192.0.2.100:80/tcp 192.0.2.16 dr w=0 up=false act=false q=true
192.0.2.101:80/tcp 192.0.2.21 tun w=1 up=true act=false q=false
192.0.2.101:80/tcp 192.0.2.22 tun w=1 up=false act=true q=false
192.0.2.101:80/tcp 192.0.2.23 tun w=1 up=false act=true q=false
192.0.2.102:80/tcp 192.0.2.41 nat w=1 up=null act=false q=false
[2001:db8::100]:80/tcp 2001:db8::31 dr w=1 up=true act=false q=false
[2001:db8::100]:80/tcp 2001:db8::32 dr w=1 up=false act=true q=false
fwmark 5 192.0.2.12 dr w=1 up=true act=false q=false"
reason() { jq -r --arg r "$2" '.destinations[] | select(.rip == $r) | .reason' "$1"; }
expect_reason() { # NAME FILE RIP REGEX
    got=$(reason "$2" "$3")
    if printf '%s\n' "$got" | grep -qiE -- "$4"; then pass "$1"; else fail "$1: reason [$got] does not match /$4/"; fi
}
expect_reason "the forwarder's reason says it forwards" "$work/audit.json" 192.0.2.15 "forward"
expect_reason "the NAT destination is not applicable" "$work/audit.json" 192.0.2.41 "not applicable"
expect_reason "the GUE destination is probed, and down: no such host" "$work/audit.json" 192.0.2.23 "no ARP reply from 192\.0\.2\.23"
tun=$(jq -c '.destinations[] | select(.rip == "192.0.2.23") | .tunnel' "$work/audit.json")
if [ "$tun" = '{"type":"gue","port":6080,"csum":"remcsum"}' ]; then pass "the GUE destination's tunnel type, port and flags"; else fail "the GUE destination's tunnel: $tun"; fi
conns=$(jq -r '[.destinations[] | .active_conns, .inactive_conns] | map(type == "number") | all' "$work/audit.json")
if [ "$conns" = true ]; then pass "every row has its connection counts"; else fail "connection counts missing"; fi

# ---- the table: the destinations to act on first ----
expect_status "status --ipvs table: six to act on first" 1 "Act first: 6 destination" \
    ip netns exec lb "$bin" status --ipvs --timeout 5s --fwmark-vip 5=$VIPF --color never
expect_status "status --ipvs table: a quiesced destination is shown as such" 1 "192\.0\.2\.16 .*0 quiesced" \
    ip netns exec lb "$bin" status --ipvs --timeout 5s --fwmark-vip 5=$VIPF --color never
expect_status "status --ipvs without --fwmark-vip: the fwmark row asks for it" 1 "no VIP known for fwmark 5 \(give --fwmark-vip 5=VIP\)" \
    ip netns exec lb "$bin" status --ipvs --timeout 5s --color never
expect_status "status --ipvs --prometheus: gauges for probed and weights for all" 1 \
    'vipcheck_ipvs_destination_weight\{service="192\.0\.2\.102:80/tcp",real="192\.0\.2\.41",method="nat"\} 1' \
    ip netns exec lb "$bin" status --ipvs --prometheus --timeout 5s --fwmark-vip 5=$VIPF
ip netns exec lb "$bin" status --ipvs --prometheus --timeout 5s --fwmark-vip 5=$VIPF >"$work/prom.txt"
if grep -q 'vipcheck_real_server_up{vip="192.0.2.100",port="80",proto="tcp",real="192.0.2.11",method="dr"} 1' "$work/prom.txt" &&
    grep -q 'vipcheck_real_server_up{vip="192.0.2.100",port="80",proto="tcp",real="192.0.2.13",method="dr"} 0' "$work/prom.txt"; then
    pass "status --ipvs --prometheus: up and down gauges"
else
    fail "status --ipvs --prometheus: up and down gauges"
fi

# ---- the drift report ----
t0=$(uptime_s)
ip netns exec lb "$bin" status "$here/../fixtures/ipvs-drift.conf" --ipvs --json --timeout 5s >"$work/drift.json"
rc=$?
note "status CONFIG --ipvs --json took $(seconds_since "$t0")s, exit $rc"
jq '.drift' "$work/drift.json" | sed 's/^/    | /'
drift=$(jq -c '.drift' "$work/drift.json")
want='{"services_only_in_config":["192.0.2.104:80/tcp"],"services_only_in_kernel":["fwmark 5"],"destinations_only_in_config":[{"service":"192.0.2.100:80/tcp","real":"192.0.2.17","port":80,"method":"DR"}],"destinations_only_in_kernel":[{"service":"192.0.2.100:80/tcp","real":"192.0.2.16","port":80,"method":"DR"}],"differences":[{"service":"192.0.2.100:80/tcp","real":"192.0.2.15","field":"method","config":"TUN","kernel":"DR"},{"service":"192.0.2.102:80/tcp","real":"192.0.2.41","field":"port","config":"8081","kernel":"8080"}]}'
if [ "$drift" = "$want" ]; then pass "status CONFIG --ipvs: the drift report"; else fail "status CONFIG --ipvs: the drift report"; echo "    wanted $want"; echo "    got    $drift"; fi
expect_status "status CONFIG --ipvs table: a drift section" 1 "service only in the config: +192\.0\.2\.104:80/tcp" \
    ip netns exec lb "$bin" status "$here/../fixtures/ipvs-drift.conf" --ipvs --timeout 5s --color never

# ---- the agent fed by the kernel's table: agent --ipvs ----
st=$work/agent-state
mkdir -p "$st"
ip netns exec lb "$bin" agent --ipvs --interval 2s --timeout 5s --fwmark-vip 5=$VIPF \
    --state-dir "$st" --listen 127.0.0.1:9874 >"$work/agent.log" 2>&1 &
agent_pid=$!
# Each expected file and its verdict (0 up, 1 down); NAT has none.
want_files="tcp_192.0.2.100_80_192.0.2.11=0 tcp_192.0.2.100_80_192.0.2.13=1
tcp_192.0.2.100_80_192.0.2.14=1 tcp_192.0.2.100_80_192.0.2.15=1 tcp_192.0.2.100_80_192.0.2.16=1
tcp_192.0.2.101_80_192.0.2.21=0 tcp_192.0.2.101_80_192.0.2.22=1 tcp_192.0.2.101_80_192.0.2.23=1
tcp_2001-db8--100_80_2001-db8--31=0 tcp_2001-db8--100_80_2001-db8--32=1
tcp_192.0.2.103_any_192.0.2.12=0"
files_match() { # every wanted file holds its value (builtins only: cheap under TCG)
    for w in $want_files; do
        f=${w%=*}
        [ -f "$st/$f" ] || return 1
        read -r v <"$st/$f" || return 1
        [ "$v" = "${w#*=}" ] || return 1
    done
    return 0
}
t0=$(uptime_s)
i=0
until files_match || [ $i -ge 120 ]; do sleep 0.5; i=$((i + 1)); done
if files_match; then
    pass "agent --ipvs: every DR/TUN destination's verdict file is right"
else
    fail "agent --ipvs: verdict files"
    for f in "$st"/*; do [ -f "$f" ] && echo "    $(basename "$f")=$(cat "$f")"; done
    sed 's/^/    agent: /' "$work/agent.log"
fi
note "agent --ipvs: files right after $(seconds_since "$t0")s"
n=$(ls "$st" | grep -vc '^\.')
if [ "$n" -eq 11 ]; then pass "agent --ipvs: no file for the NAT destination"; else fail "agent --ipvs: $n files, wanted 11"; fi
# Following the table: a destination removed from IPVS loses its file.
ip netns exec lb ipvsadm -d -t $VIP:80 -r 192.0.2.13:80
i=0
while [ -f "$st/tcp_192.0.2.100_80_192.0.2.13" ] && [ $i -lt 40 ]; do sleep 0.5; i=$((i + 1)); done
if [ ! -f "$st/tcp_192.0.2.100_80_192.0.2.13" ] && [ -f "$st/tcp_192.0.2.100_80_192.0.2.11" ]; then
    pass "agent --ipvs follows the table: a removed destination loses its file"
else
    fail "agent --ipvs follows the table: a removed destination loses its file"
fi
kill "$agent_pid" 2>/dev/null
wait "$agent_pid"
rc=$?
if [ $rc -eq 0 ]; then pass "agent --ipvs stops on SIGTERM with exit 0"; else fail "agent --ipvs exit $rc on SIGTERM"; fi

# ---- captured answers for the unit tests (fixtures/ipvs) ----
if [ "${VIPCHECK_IPVS_PRINT_CAPTURE:-}" = 1 ]; then
    mkdir -p "$work/capture"
    VIPCHECK_IPVS_CAPTURE=$work/capture ip netns exec lb "$bin" status --ipvs --json --timeout 1s >/dev/null
    for f in "$work"/capture/*.bin; do
        echo "CAPTURE-BEGIN $(basename "$f")"
        base64 -w 76 "$f"
        echo "CAPTURE-END"
    done
fi

# ---- without CAP_NET_ADMIN: exit 2 with the hint ----
expect_status "status --ipvs unprivileged: exits 2 and names CAP_NET_ADMIN" 2 "needs CAP_NET_ADMIN" \
    ip netns exec lb setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" status --ipvs

# ---- without IPVS: exit 2, and no module requested ----
ip netns exec lb ipvsadm -C
for m in $(awk '$1 ~ /^ip_vs_/ { print $1 }' /proc/modules); do rmmod "$m"; done
rmmod ip_vs || fail "rmmod ip_vs"
if grep -q '^ip_vs ' /proc/modules; then fail "ip_vs unloaded"; else pass "ip_vs unloaded"; fi
# The kernel runs this "modprobe" for every module request: it logs the request. The
# path is seen from the guest's initramfs root, where this chroot is /newroot.
cat >"$work/modprobe" <<'MP'
#!/bin/sh
echo "$*" >>/newroot/tmp/ipvs-audit/modprobe.log
exit 1
MP
chmod +x "$work/modprobe"
old_modprobe=$(cat /proc/sys/kernel/modprobe)
echo "/newroot$work/modprobe" >/proc/sys/kernel/modprobe
: >"$work/modprobe.log"
expect_status "status --ipvs without IPVS: says so, exits 2" 2 "IPVS is not in this kernel" \
    ip netns exec lb "$bin" status --ipvs
if [ -s "$work/modprobe.log" ]; then
    fail "status --ipvs asked the kernel for no module: $(cat "$work/modprobe.log")"
else
    pass "status --ipvs asked the kernel for no module"
fi
# The control: asking the controller for the family by name does request the module.
genl ctrl get name IPVS >/dev/null 2>&1
if grep -q 'net-pf-16-proto-16-family-IPVS' "$work/modprobe.log"; then
    pass "control: a by-name family lookup requests net-pf-16-proto-16-family-IPVS"
else
    fail "control: a by-name family lookup requests the module (log: $(cat "$work/modprobe.log"))"
fi
echo "$old_modprobe" >/proc/sys/kernel/modprobe
note "scenario took $(seconds_since "$start")s"
finish
