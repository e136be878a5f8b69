#!/usr/bin/env bash
# Benchmarks `vipcheck watch` (not a test): the time from a saved change of keepalived.conf
# to the reload signal reaching keepalived (debounce, rewrite and `keepalived --config-test`
# included), median of SAVES saves; then the watcher's CPU use while idle for IDLE seconds.
# A stand-in daemon (a shell trap) takes keepalived's place and stamps every SIGHUP.
#
#   scripts/bench-watch.sh                 # 30 saves, 60 s idle, --debounce 100ms
#   SAVES=10 IDLE=10 DEBOUNCE=50ms scripts/bench-watch.sh
#   VIPCHECK=target/release/vipcheck scripts/bench-watch.sh   # skip the build
#
# Targets (issue 4): median <= 250 ms, idle CPU ~0.
set -euo pipefail
cd "$(dirname "$0")/.."

SAVES=${SAVES:-30}
IDLE=${IDLE:-60}
DEBOUNCE=${DEBOUNCE:-100ms}
CONFIG=${CONFIG:-fixtures/rewrite/keepalived/dr_basic.conf}

if [ -z "${VIPCHECK:-}" ]; then
    cargo build --release --quiet
    VIPCHECK=target/release/vipcheck
fi
VIPCHECK=$(readlink -f "$VIPCHECK")

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cp "$CONFIG" "$work/keepalived.conf"

# The stand-in daemon: its pid in a pidfile, one nanosecond timestamp per SIGHUP.
: > "$work/hups"
sh -c 'trap "date +%s%N >> \"$2\"" HUP
echo $$ > "$1.tmp" && mv "$1.tmp" "$1"
i=0; while [ $i -lt 36000 ]; do sleep 0.1 & wait $!; i=$((i+1)); done' \
    standin "$work/daemon.pid" "$work/hups" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/daemon.pid" ] && break; sleep 0.02; done

"$VIPCHECK" watch "$work/keepalived.conf" -o "$work/out.conf" --reload keepalived \
    --pidfile "$work/daemon.pid" --debounce "$DEBOUNCE" 2> "$work/watch.log" &
watcher=$!
pids+=("$watcher")
for _ in $(seq 250); do grep -q "watching" "$work/watch.log" && break; sleep 0.02; done
grep -q "watching" "$work/watch.log" || { cat "$work/watch.log"; echo "watch did not start" >&2; exit 1; }
if ! [ -s "$work/out.conf" ]; then
    cat "$work/watch.log"
    echo "the first pass wrote no output (is the keepalived parser in this build?)" >&2
    exit 1
fi

hups() { wc -l < "$work/hups"; }
# The first pass wrote out.conf and reloaded once; let that signal land.
sleep 0.3
base=$(hups)

latencies=()
for i in $(seq "$SAVES"); do
    before=$(hups)
    # An editor's save: write a temp file, rename it over the config.
    { cat "$work/keepalived.conf"; echo "# save $i"; } > "$work/.keepalived.conf.new"
    t0=$(date +%s%N)
    mv "$work/.keepalived.conf.new" "$work/keepalived.conf"
    for _ in $(seq 1000); do [ "$(hups)" -gt "$before" ] && break; sleep 0.005; done
    if [ "$(hups)" -le "$before" ]; then
        cat "$work/watch.log"
        echo "save $i: no reload within 5 s" >&2
        exit 1
    fi
    t1=$(tail -n 1 "$work/hups")
    latencies+=($(( (t1 - t0) / 1000000 )))
    sleep 0.3
done

median=$(printf '%s\n' "${latencies[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}')
min=$(printf '%s\n' "${latencies[@]}" | sort -n | head -n 1)
max=$(printf '%s\n' "${latencies[@]}" | sort -n | tail -n 1)
echo "save -> reload signal over $SAVES saves (debounce $DEBOUNCE): median ${median} ms, min ${min} ms, max ${max} ms"
reloads=$(( $(hups) - base ))
[ "$reloads" -eq "$SAVES" ] || echo "warning: $reloads reloads for $SAVES saves" >&2

# Idle CPU: utime + stime (fields 14 and 15 of /proc/PID/stat, in clock ticks).
ticks() { awk '{print $14 + $15}' "/proc/$watcher/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks)
sleep "$IDLE"
c1=$(ticks)
awk -v d=$((c1 - c0)) -v hz="$hz" -v s="$IDLE" \
    'BEGIN {printf "idle CPU over %d s: %d ticks = %.3f s CPU (%.4f%%)\n", s, d, d/hz, 100*d/hz/s}'
