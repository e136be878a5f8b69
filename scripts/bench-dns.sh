#!/bin/sh
# Benchmark the DNS check through the VIP (`vipcheck probe ... --proto udp --check dns`)
# against `dig @RIP` on the real server's management address, in network namespaces with
# one dnsmasq serving both: same process boundary, cold cache against cold and warm
# against warm, the two tools taking turns; whole process trees (CPU of every process a
# command starts); every run's exit code and answer checked. Needs root, dnsmasq
# (dnsmasq-base) and dig (bind9-dnsutils). Prints every figure with its command.
#   VIPCHECK_BENCH_RUNS=100 scripts/bench-dns.sh
#   VIPCHECK_BENCH_BIN=target/release/vipcheck scripts/bench-dns.sh
# By default it measures the binary an operator installs (scripts/build-release.sh).
# VIPCHECK_BENCH_PROFILE=dev builds the benchmark itself without optimisation (for a
# machine where a release build is not wanted; the measured binary is VIPCHECK_BENCH_BIN).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${VIPCHECK_BENCH_BIN:-}" ]; then
    built=$(scripts/build-release.sh --quiet)   # a failed build stops here (set -e)
    VIPCHECK_BENCH_BIN=$(readlink -f "$(printf '%s\n' "$built" | tail -1)")
    export VIPCHECK_BENCH_BIN
fi
exec cargo bench --locked --profile "${VIPCHECK_BENCH_PROFILE:-bench}" --bench dns
