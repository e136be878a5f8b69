# Shell helpers sourced by the guest scenarios (POSIX sh: the guest runs the host's dash).
# Every check prints one "PASS: name" or "FAIL: name" line; the Rust side reads them.

fails=0
uptime_s() { cut -d' ' -f1 /proc/uptime; }
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
note() { echo "---- $* [$(uptime_s)s, guest load $(cut -d" " -f1-3 /proc/loadavg)]"; }

# seconds_since START: elapsed guest seconds (one decimal) since START (an uptime_s value).
seconds_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }

# finish: last line of every scenario.
finish() {
    note "end: $fails failure(s)"
    [ "$fails" -eq 0 ]
}

# Building the topology: every `ip` run costs about 0.15 s under TCG, so commands are
# collected in batch files and applied with one `ip -batch` per namespace.
#   plan_ns NAME ADDR/LEN [ADDR6/LEN]  a namespace whose eth0 (veth, peer NAME-h on br0)
#                                      is up and addressed (IPv6 without duplicate detection)
#   in_ns NAME IP-COMMAND...           one more `ip` command for NAME's batch
#   apply_plan                         creates what was planned so far
# IPv4 sysctls under conf/all and conf/default are copied from the guest's root namespace
# into each new namespace, so set those once before apply_plan.
plan_dir=/tmp/vipcheck-topology
pending=
plan_ns() {
    mkdir -p "$plan_dir"
    {
        echo "netns add $1"
        echo "link add $1-h type veth peer name eth0 netns $1"
        echo "link set $1-h master br0 up"
    } >>"$plan_dir/root.batch"
    {
        echo "link set lo up"
        echo "link set eth0 up"
        echo "addr add $2 dev eth0"
        [ -z "${3:-}" ] || echo "addr add $3 dev eth0 nodad"
    } >"$plan_dir/ns.$1"
    pending="$pending $1"
}
in_ns() {
    ns=$1
    shift
    echo "$*" >>"$plan_dir/ns.$ns"
}
apply_plan() {
    ip -batch "$plan_dir/root.batch" || fail "topology: ip -batch (root namespace)"
    rm -f "$plan_dir/root.batch"
    for ns in $pending; do
        ip -n "$ns" -batch "$plan_dir/ns.$ns" || fail "topology: ip -batch in $ns"
    done
    pending=
}

# bridge_up: the shared segment every namespace plugs into.
bridge_up() {
    ip link add br0 type bridge
    ip link set br0 up
    # IPv6 on the bridge itself would only add noise (router solicitations).
    sysctl -qw net.ipv6.conf.br0.disable_ipv6=1
}

# director_lb VIP...: the shared segment, the host's DR ARP and rp_filter settings, and
# the director "lb" (192.0.2.1/24, 2001:db8::1/64) holding each VIP on eth0: an IPv4 one
# as a /32; an IPv6 one as a /128 with preferred_lft 0, so that it is never picked as a
# source address (a /128 would win the longest-prefix rule against the director's /64).
# The namespace is planned: apply_plan creates it with the others.
director_lb() {
    bridge_up
    sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    plan_ns lb 192.0.2.1/24 2001:db8::1/64
    for v in "$@"; do
        case $v in
        *:*) in_ns lb addr add "$v/128" dev eth0 nodad preferred_lft 0 ;;
        *) in_ns lb addr add "$v/32" dev eth0 ;;
        esac
    done
}

# ka_kill: stops the keepalived started as $ka_pid (TERM, up to 10 s, then KILL) and
# forgets it.
ka_kill() {
    [ -n "$ka_pid" ] || return 0
    kill "$ka_pid" 2>/dev/null
    i=0
    while kill -0 "$ka_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$ka_pid" 2>/dev/null
    wait "$ka_pid" 2>/dev/null
    ka_pid=
}

# nsysctl NS KEY=VALUE...: sysctl inside a namespace, quietly.
nsysctl() {
    ns=$1
    shift
    ip netns exec "$ns" sysctl -qw "$@"
}

# expect_status NAME WANT_STATUS PATTERN COMMAND...: runs COMMAND, prints its output,
# passes when it exits WANT_STATUS and its output matches the extended regex PATTERN
# (case-insensitive; empty = anything).
expect_status() {
    name=$1 want=$2 pattern=$3
    shift 3
    out=$("$@" 2>&1)
    got=$?
    printf '%s\n' "$out" | sed 's/^/    | /'
    if [ "$got" -ne "$want" ]; then
        fail "$name (exit $got, wanted $want)"
    elif [ -n "$pattern" ] && ! printf '%s\n' "$out" | grep -qiE -- "$pattern"; then
        fail "$name (output does not match /$pattern/)"
    else
        pass "$name"
    fi
}

# The IPVS table of the director (namespace "lb") as one line: "SERVICE=RIP,RIP ..." sorted.
ipvs_state() {
    ip netns exec lb ipvsadm -Ln | awk '
        $1 == "TCP" || $1 == "UDP" { svc = $2; svcs[svc] = 1; next }
        $1 == "->" && $2 != "RemoteAddress:Port" {
            rip = $2; sub(/:[0-9]+$/, "", rip); gsub(/[][]/, "", rip)
            n[svc]++; m[svc, n[svc]] = rip
        }
        function sortlist(k, i, j, t, s) {
            for (i = 2; i <= n[k]; i++)
                for (j = i; j > 1 && m[k, j - 1] > m[k, j]; j--) {
                    t = m[k, j]; m[k, j] = m[k, j - 1]; m[k, j - 1] = t
                }
            s = ""
            for (i = 1; i <= n[k]; i++) s = s (i > 1 ? "," : "") m[k, i]
            return s
        }
        END {
            c = 0
            for (k in svcs) keys[++c] = k
            for (i = 2; i <= c; i++)
                for (j = i; j > 1 && keys[j - 1] > keys[j]; j--) {
                    t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t
                }
            for (i = 1; i <= c; i++) printf "%s%s=%s", (i > 1 ? " " : ""), keys[i], sortlist(keys[i])
            print ""
        }'
}

# wait_state NAME EXPECTED SECONDS: the table becomes EXPECTED within SECONDS (calls the
# scenario's `explain` when it does not) (then kept in
# settled_state for the summary).
settled_state=
wait_state() {
    t0=$(uptime_s)
    deadline=$(awk -v a="$t0" -v b="$3" 'BEGIN { print a + b }')
    while :; do
        got=$(ipvs_state)
        if [ "$got" = "$2" ]; then
            settled_state=$got
            pass "$1 (after $(seconds_since "$t0")s)"
            return 0
        fi
        if awk -v now="$(uptime_s)" -v d="$deadline" 'BEGIN { exit !(now > d) }'; then
            fail "$1: table is [$got] after $3s, wanted [$2]"
            explain
            return 1
        fi
        sleep 0.5
    done
}
