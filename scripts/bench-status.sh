#!/bin/sh
# Benchmark `vipcheck status` over 1,000 pairs (100 DR real servers x 10 ports) in network
# namespaces (needs root): wall time, CPU of every process, peak memory, and every verdict
# and the exit code checked.
#   VIPCHECK_BENCH_RUNS=5 VIPCHECK_BENCH_ARGS="--timeout 500ms" scripts/bench-status.sh
#   VIPCHECK_BENCH_BIN=target/release/vipcheck scripts/bench-status.sh   # a PIE build
# By default it measures the binary an operator installs (scripts/build-release.sh).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${VIPCHECK_BENCH_BIN:-}" ]; then
    built=$(scripts/build-release.sh --quiet)   # a failed build stops here (set -e)
    VIPCHECK_BENCH_BIN=$(readlink -f "$(printf '%s\n' "$built" | tail -1)")
    export VIPCHECK_BENCH_BIN
fi
exec cargo bench --locked --bench status
