#!/bin/sh
# Benchmark (not a test) of `vipcheck status --ipvs`, in the qemu guest (the host kernel
# has no IPVS). Run on the host as root: it boots the guest (tests/guest/run.sh) and runs
# itself there.
#   1. `status --ipvs --json` over 1,000 DR destinations (50 services on VIP ports
#      8000..8049 x 20 real servers: 16 good, one each with no VIP, no listener, a
#      forwarder, and a good one at weight 0), every row's verdict checked.
#   2. Reading the table: `status --ipvs` over the same 1,000 destinations as NAT (nothing
#      to probe: the cost is reading, parsing and printing the table) against
#      `ipvsadm -Ln` on the same table; both exit codes and row counts checked; and
#      `vipcheck --version`, the binary's start-up alone, for scale.
# Figures: wall and CPU (user + system of the process and its waited-for children, GNU
# time) per run, the median of VIPCHECK_BENCH_RUNS (default 5) runs. Under TCG emulation:
# compare figures with each other, not with the host's.
#   VIPCHECK_BENCH_BIN=target/debug/vipcheck scripts/bench-ipvs.sh   # default: the
#   release build if there is one, else the debug build
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [ ! -e /proc/net/ip_vs ]; then
    bin=${VIPCHECK_BENCH_BIN:-}
    if [ -z "$bin" ]; then
        bin=$root/target/release/vipcheck
        [ -x "$bin" ] || bin=$root/target/debug/vipcheck
    fi
    bin=$(readlink -f "$bin")
    [ -x "$bin" ] || { echo "bench-ipvs: no vipcheck binary at $bin (cargo build)" >&2; exit 2; }
    "$root/tests/guest/setup.sh" >/dev/null || exit 2
    VIPCHECK_BIN=$bin VIPCHECK_BENCH_RUNS=${VIPCHECK_BENCH_RUNS:-5} \
        exec "$root/tests/guest/run.sh" --timeout 900 "$here/bench-ipvs.sh"
fi

# ---- in the guest ----
. "$root/tests/guest/lib.sh"
bin=${VIPCHECK_BIN:?VIPCHECK_BIN must name the vipcheck binary}
runs=${VIPCHECK_BENCH_RUNS:-5}
VIP=192.0.2.100
work=/tmp/bench-ipvs
mkdir -p "$work"
echo "binary: $bin"

note "topology: director, 20 real servers"
bridge_up
sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
plan_ns lb 192.0.2.1/24
in_ns lb addr add $VIP/32 dev eth0
# Real server i is 192.0.2.(10+i); 3: no VIP, 5: no listener, 7: forwarder, 9: weight 0.
i=1
while [ $i -le 20 ]; do
    plan_ns "rs$i" "192.0.2.$((10 + i))/24"
    case $i in
        3) ;;
        7) in_ns "rs$i" route add $VIP/32 via 192.0.2.1 ;;
        *) in_ns "rs$i" addr add $VIP/32 dev lo ;;
    esac
    i=$((i + 1))
done
apply_plan
nsysctl rs7 net.ipv4.ip_forward=1
listener='
import socket, sys, time
socks = []
for p in range(8000, 8050):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("192.0.2.100", p))
    s.listen(64)
    socks.append(s)
print("listening", flush=True)
time.sleep(3600)
'
i=1
while [ $i -le 20 ]; do
    case $i in 3 | 5 | 7) ;; *)
        ip netns exec "rs$i" python3 -c "$listener" >"$work/listen.$i" 2>&1 &
        ;;
    esac
    i=$((i + 1))
done

# table FORWARD: 50 services x 20 destinations, -g (DR) or -m (NAT).
table() {
    {
        p=8000
        while [ $p -lt 8050 ]; do
            echo "-A -t $VIP:$p -s wlc"
            i=1
            while [ $i -le 20 ]; do
                w=1
                [ $i -ne 9 ] || w=0
                echo "-a -t $VIP:$p -r 192.0.2.$((10 + i)):$p $1 -w $w"
                i=$((i + 1))
            done
            p=$((p + 1))
        done
    } | ip netns exec lb ipvsadm -R
}
ip netns exec lb ipvsadm -C
table -g || fail "ipvsadm -R (DR table)"
n=$(ip netns exec lb ipvsadm -Ln | grep -c -- '->.*Route')
[ "$n" -eq 1000 ] || fail "the DR table has $n destinations, wanted 1000"
# Wait for every listener (python's start-up is slow under TCG).
t0=$(uptime_s)
while [ "$(cat "$work"/listen.* 2>/dev/null | grep -c listening)" -lt 17 ]; do
    if awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { exit !(b - a > 300) }'; then
        fail "listeners did not start"
        break
    fi
    sleep 1
done
note "topology ready"

# measure NAME OUTFILE WANT_EXIT COMMAND...: one run, figures appended to $work/NAME.
measure() {
    name=$1 outfile=$2 want=$3
    shift 3
    ip netns exec lb /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >"$outfile" 2>"$work/stderr"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit $rc, wanted $want"
        head -n 5 "$work/stderr"
    fi
    # GNU time prints a "Command exited with non-zero status" line first then.
    tail -n 1 "$work/time" >>"$work/$name"
}
# median NAME: "wall W s, cpu C s (user U + sys S)" of the runs' medians.
median() {
    for col in 1 2 3; do
        awk -v c=$col '{ print $c }' "$work/$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
    done | tr '\n' ' ' | awk '{ printf "wall %.2f s, cpu %.2f s (user %.2f + sys %.2f)", $1, $2 + $3, $2, $3 }'
}

note "1. status --ipvs --json over 1,000 DR destinations, $runs runs"
# Every run's rows: 16 good + the weight-0 good one up (850), the other three down (150).
# (--timeout 5s: under TCG a loaded guest answers slowly; 2 s gave false "did not answer".)
check_audit() { # RUN
    up=$(jq '[.destinations[] | select(.up == true)] | length' "$work/audit.json")
    down=$(jq '[.destinations[] | select(.up == false)] | length' "$work/audit.json")
    act=$(jq '[.destinations[] | select(.act_first)] | length' "$work/audit.json")
    wrong=$(jq -r '.destinations[] | select(
          (.rip == "192.0.2.13" and (.up or (.reason | test("did not answer") | not)))
       or (.rip == "192.0.2.15" and (.up or (.reason | test("closed") | not)))
       or (.rip == "192.0.2.17" and (.up or (.reason | test("forwarded") | not)))
       or ((.rip | IN("192.0.2.13", "192.0.2.15", "192.0.2.17") | not) and (.up | not))
     ) | "\(.service) \(.rip) \(.up) \(.reason)"' "$work/audit.json" | head -n 10)
    if [ "$up" -eq 850 ] && [ "$down" -eq 150 ] && [ "$act" -eq 150 ] && [ -z "$wrong" ]; then
        pass "status --ipvs run $1: 850 up, 150 down (all to act on first), every verdict right"
    else
        fail "status --ipvs run $1 verdicts: $up up, $down down, $act to act on first; wrong rows:"
        printf '%s\n' "$wrong" | sed 's/^/    /'
    fi
}
r=1
while [ $r -le "$runs" ]; do
    measure probe "$work/audit.json" 1 "$bin" status --ipvs --json --timeout 5s
    check_audit $r
    r=$((r + 1))
done
probe_fig=$(median probe)

note "2. reading the table: 1,000 NAT destinations, $runs runs each"
ip netns exec lb ipvsadm -C
table -m || fail "ipvsadm -R (NAT table)"
check_reads() { # RUN
    n_v=$(jq '.destinations | length' "$work/read.json")
    n_t=$(grep -c ' NAT ' "$work/read.txt")
    n_i=$(grep -c -- '-> .*Masq' "$work/ipvsadm.txt")
    if [ "$n_v" -eq 1000 ] && [ "$n_t" -eq 1000 ] && [ "$n_i" -eq 1000 ]; then
        pass "run $1: each lists the 1,000 destinations"
    else
        fail "run $1: destinations listed: vipcheck json $n_v, vipcheck table $n_t, ipvsadm $n_i"
    fi
}
r=1
while [ $r -le "$runs" ]; do
    measure read_vipcheck "$work/read.txt" 0 "$bin" status --ipvs --color never
    measure read_vipcheck_json "$work/read.json" 0 "$bin" status --ipvs --json
    measure read_ipvsadm "$work/ipvsadm.txt" 0 ipvsadm -Ln
    measure startup "$work/version.txt" 0 "$bin" --version
    check_reads $r
    r=$((r + 1))
done

echo "FIGURES (median of $runs runs, guest under TCG, $(basename "$bin"))"
echo "  status --ipvs --json, 1,000 DR destinations probed:  $probe_fig"
echo "  status --ipvs (table), 1,000 NAT destinations read:   $(median read_vipcheck)"
echo "  status --ipvs --json, 1,000 NAT destinations read:    $(median read_vipcheck_json)"
echo "  ipvsadm -Ln, the same table:                           $(median read_ipvsadm)"
echo "  vipcheck --version (the binary's start-up alone):      $(median startup)"
ip netns exec lb ipvsadm -C
finish
