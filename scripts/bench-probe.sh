#!/bin/sh
# Benchmark `vipcheck probe` (the command the generated keepalived check runs) against the
# original report's nping recipe, in network namespaces: cold neighbour cache against cold,
# warm against warm; the recipe as fast as nping can (--delay 0) and as written. Whole
# process trees: wall to the command's exit, CPU of every process it starts (a child
# subreaper reaps the probe's background helper too). Needs root and nping (package nmap).
# Prints every figure with the command that produced it.
#   VIPCHECK_BENCH_RUNS=100 VIPCHECK_BENCH_BASELINE_RUNS=11 scripts/bench-probe.sh
#   VIPCHECK_BENCH_BIN=target/release/vipcheck scripts/bench-probe.sh   # a PIE build instead
# By default it measures the binary an operator installs (scripts/build-release.sh).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${VIPCHECK_BENCH_BIN:-}" ]; then
    built=$(scripts/build-release.sh --quiet)   # a failed build stops here (set -e)
    VIPCHECK_BENCH_BIN=$(readlink -f "$(printf '%s\n' "$built" | tail -1)")
    export VIPCHECK_BENCH_BIN
fi
exec cargo bench --locked --bench probe
