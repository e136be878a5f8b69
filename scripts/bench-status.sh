#!/bin/sh
# Benchmark `vipcheck status` over 1,000 pairs (100 DR real servers x 10 ports) in network
# namespaces (needs root): wall time, CPU, peak memory, and every verdict checked.
#   VIPCHECK_BENCH_RUNS=5 VIPCHECK_BENCH_ARGS="--timeout 500ms" scripts/bench-status.sh
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench status
