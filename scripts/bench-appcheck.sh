#!/usr/bin/env bash
# Benchmark: per-probe wall and CPU time of `vipcheck appcheck --check http` through the
# VIP, against `curl` to the management address (what keepalived's HTTP_GET checks), in
# the same run, in network namespaces built here and removed on exit.
#
# Usage (root): scripts/bench-appcheck.sh [RUNS]      (default 200)
# Env: VIPCHECK=path/to/vipcheck (default: target/release/vipcheck, built when missing)
# Needs: ip, python3, curl, hyperfine, jq.
# Target: vipcheck's mean wall time within 2x of curl's.
set -euo pipefail

runs=${1:-200}
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "skipped: needs root (network namespaces, packet sockets)" >&2
    exit 0
fi
for tool in ip python3 curl hyperfine jq; do
    command -v "$tool" >/dev/null || { echo "bench-appcheck: needs $tool" >&2; exit 1; }
done
bin=${VIPCHECK:-target/release/vipcheck}
if [[ -z ${VIPCHECK:-} ]]; then
    cargo build --release --quiet
fi
bin=$(realpath "$bin")

tag=vcb$$
d=${tag}d r=${tag}r b=${tag}b
work=$(mktemp -d)
cleanup() {
    for n in "$d" "$r" "$b"; do
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

for n in "$d" "$r" "$b"; do
    ip netns add "$n"
    ip -n "$n" link set lo up
done
ip -n "$b" link add br0 type bridge
ip -n "$b" link set br0 up
ip -n "$b" link add pd type veth peer name eth0 netns "$d"
ip -n "$b" link add pr type veth peer name eth0 netns "$r"
ip -n "$b" link set pd master br0 up
ip -n "$b" link set pr master br0 up
ip -n "$d" link set eth0 address 02:00:5e:00:00:01 up
ip -n "$r" link set eth0 address 02:00:5e:00:00:11 up
ip -n "$d" addr add 192.0.2.1/24 dev eth0
ip -n "$r" addr add 192.0.2.11/24 dev eth0
ip netns exec "$r" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
ip -n "$r" addr add 192.0.2.20/32 dev lo

echo "vipcheck bench page" >"$work/index.html"
ip netns exec "$r" python3 -m http.server --bind 192.0.2.20 80 --directory "$work" \
    >/dev/null 2>&1 &
ip netns exec "$r" python3 -m http.server --bind 192.0.2.11 8080 --directory "$work" \
    >/dev/null 2>&1 &
for _ in $(seq 100); do
    if ip netns exec "$d" curl -sf -o /dev/null http://192.0.2.11:8080/ &&
        ip netns exec "$r" ss -ltnH 'sport = :80' | grep -q .; then
        break
    fi
    sleep 0.1
done

check=("$bin" appcheck --iface eth0 --src 192.0.2.1 --next-hop-mac 02:00:5e:00:00:11
    --vip 192.0.2.20 --rip 192.0.2.11 --port 80 --check http --http-path /index.html
    --expect-body bench --timeout 2s)
# One check by hand first: it must say up, or the timings mean nothing.
ip netns exec "$d" "${check[@]}"

# hyperfine counts the probe and its waited-for children. The reset helper (forked
# twice, reaped by init) is left out: it only forks, waits on a pipe and exits.
ip netns exec "$d" hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/h.json" \
    -n "vipcheck appcheck (through the VIP)" "${check[*]}" \
    -n "curl (management address)" "curl -sf -o /dev/null http://192.0.2.11:8080/index.html" \
    >/dev/null

jq -r '.results[] | "\(.command): wall mean \(.mean*1000|.*100|round/100) ms (sd \(.stddev*1000|.*100|round/100), median \(.median*1000|.*100|round/100)), user \(.user*1000|.*100|round/100) ms, system \(.system*1000|.*100|round/100) ms"' "$work/h.json"
jq -r '.results as $r | "ratio vipcheck/curl: wall mean \($r[0].mean/$r[1].mean|.*100|round/100)x, median \($r[0].median/$r[1].median|.*100|round/100)x, cpu \(($r[0].user+$r[0].system)/($r[1].user+$r[1].system)|.*100|round/100)x (target: wall within 2x)"' "$work/h.json"
