# Sourced by scenarios/keepalived-ipvs.sh and scenarios/keepalived-agent.sh (after lib.sh,
# with VIP, VIP2, VIP6, S1, S2, S6 and ka set): the director "lb", a client "cl" and the
# real servers of tests/guest/fixtures/keepalived*.conf on one bridge, each serving
# `server=NAME` over HTTP; the expected IPVS states; ka_start / ka_stop (keepalived in the
# director's namespace) and traffic (which calls the scenario's own `explain` when it
# fails). ipvs_state and wait_state are in lib.sh.
mkdir -p "$ka" /run/www
start=$(uptime_s)

# name address role: every real server of the config, in the order the tables print them.
servers="$S1 192.0.2.11 good1 good
$S1 192.0.2.12 good2 good
$S1 192.0.2.13 novip no-VIP
$S1 192.0.2.14 nolisten VIP,no-listener
$S1 192.0.2.15 fwd forwarder,no-VIP
$S2 192.0.2.21 tungood good(TUN)
$S2 192.0.2.22 tundr DR-only,no-tunnel
$S6 2001:db8::31 good6 good
$S6 2001:db8::32 novip6 no-VIP"
all_state="$S1=192.0.2.11,192.0.2.12,192.0.2.13,192.0.2.14,192.0.2.15 $S2=192.0.2.21,192.0.2.22 $S6=2001:db8::31,2001:db8::32"
good_state="$S1=192.0.2.11,192.0.2.12 $S2=192.0.2.21 $S6=2001:db8::31"
without_good1="$S1=192.0.2.12 $S2=192.0.2.21 $S6=2001:db8::31"

note "topology"
director_lb "$VIP" "$VIP2" "$VIP6"
plan_ns cl 192.0.2.50/24 2001:db8::50/64
plan_ns good1 192.0.2.11/24
in_ns good1 addr add $VIP/32 dev lo
plan_ns good2 192.0.2.12/24
in_ns good2 addr add $VIP/32 dev lo
plan_ns novip 192.0.2.13/24
plan_ns nolisten 192.0.2.14/24
in_ns nolisten addr add $VIP/32 dev lo
plan_ns fwd 192.0.2.15/24
in_ns fwd route add $VIP/32 via 192.0.2.1
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
echo "$servers" | while read -r _svc _rip ns _role; do
    mkdir -p "/run/www/$ns"
    printf 'server=%s' "$ns" >"/run/www/$ns/index.html"
    listen="[::]:80"
    [ "$ns" != nolisten ] || listen=192.0.2.14:80
    ip netns exec "$ns" busybox httpd -p "$listen" -h "/run/www/$ns"
done
note "topology ready in $(seconds_since "$start")s"

ka_pid=
ka_log=
ka_start() { # ka_start CONFIG TAG
    ka_log=$ka/$2.log
    ip netns exec lb keepalived -n -l -G -D -C -f "$1" -p "$ka/$2.pid" \
        -c "$ka/$2.checkers.pid" >"$ka_log" 2>&1 &
    ka_pid=$!
    note "keepalived ($2) started, pid $ka_pid"
}
ka_stop() {
    [ -n "$ka_pid" ] || return 0
    ka_kill
    if [ -z "$(ip netns exec lb ipvsadm -Ln | awk '$1 == "TCP"')" ]; then
        pass "keepalived stopped and removed its virtual servers"
    else
        fail "keepalived stopped and removed its virtual servers"
        ip netns exec lb ipvsadm -Ln
        ip netns exec lb ipvsadm -C
    fi
}

# traffic NAME URL COUNT: COUNT new connections from the client; prints "answered/COUNT by
# name=n ...". With EXPECT (names) set: passes when every one is answered, and only by
# (and by each of) those; each connection may then take 3 s (a slow TCG guest is no
# failure). Without EXPECT (the baseline, which has dead servers in the pool) 1 s.
traffic() {
    name=$1 url=$2 count=$3
    urls=
    i=0
    while [ $i -lt "$count" ]; do urls="$urls $url"; i=$((i + 1)); done
    limits="--connect-timeout 0.5 -m 1"
    [ -z "${EXPECT:-}" ] || limits="--connect-timeout 2 -m 3"
    # shellcheck disable=SC2086
    out=$(ip netns exec cl curl -sg $limits -H 'Connection: close' -w '\n' $urls)
    summary=$(printf '%s\n' "$out" | awk -v n="$count" '
        /^server=/ { sub(/^server=/, ""); c[$0]++; a++ }
        END {
            s = ""
            for (k in c) s = s " " k "=" c[k]
            printf "%d/%d%s", a, n, s
        }')
    echo "    $name: $summary answered"
    [ -n "${EXPECT:-}" ] || return 0
    ok=1
    case $summary in "$count/$count"*) ;; *) ok=0 ;; esac
    for who in $(printf '%s\n' "$out" | sed -n 's/^server=//p' | sort -u); do
        case " $EXPECT " in *" $who "*) ;; *) ok=0 ;; esac
    done
    for who in $EXPECT; do
        printf '%s\n' "$out" | grep -qx "server=$who" || ok=0
    done
    if [ $ok -eq 1 ]; then pass "$name"; else fail "$name: $summary, wanted all by [$EXPECT]"; explain; fi
}
