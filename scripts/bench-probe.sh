#!/bin/sh
# Benchmark `vipcheck probe` against the original report's nping recipe in network
# namespaces (needs root, nping from the nmap package). Prints medians and the ratio.
#   VIPCHECK_BENCH_RUNS=50 VIPCHECK_BENCH_BASELINE_RUNS=5 scripts/bench-probe.sh
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench probe
