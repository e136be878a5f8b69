#!/bin/sh
# Benchmark `vipcheck probe` against the original report's nping recipe in network
# namespaces (needs root, nping from the nmap package). Prints medians and the ratio.
#   VIPCHECK_BENCH_RUNS=50 VIPCHECK_BENCH_BASELINE_RUNS=5 scripts/bench-probe.sh
#   VIPCHECK_BENCH_BIN=target/release/vipcheck scripts/bench-probe.sh   # a PIE build instead
# By default it measures the binary an operator installs (scripts/build-release.sh).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${VIPCHECK_BENCH_BIN:-}" ]; then
    VIPCHECK_BENCH_BIN=$(readlink -f "$(scripts/build-release.sh --quiet | tail -1)")
    export VIPCHECK_BENCH_BIN
fi
exec cargo bench --bench probe
