#!/bin/sh
# Benchmark the HTTP check the generated checks run through the VIP (`vipcheck probe ...
# --check http --http-path /index.html`: route and neighbour lookups, VIP checks, session,
# nftables guard and helper) against `curl` to the real server's management address, in
# network namespaces: same process boundary, cold cache against cold and warm against
# warm, the two tools taking turns. Whole process trees: wall to the command's exit, CPU of
# every process it starts (a child subreaper reaps the session helper too). Needs root,
# curl and nf_tables. Prints every figure with the command that produced it.
#   VIPCHECK_BENCH_RUNS=200 scripts/bench-appcheck.sh
#   VIPCHECK_BENCH_BIN=target/release/vipcheck scripts/bench-appcheck.sh   # a PIE build
# By default it measures the binary an operator installs (scripts/build-release.sh).
# Target: vipcheck's wall time within 2x of curl's.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${VIPCHECK_BENCH_BIN:-}" ]; then
    built=$(scripts/build-release.sh --quiet)   # a failed build stops here (set -e)
    VIPCHECK_BENCH_BIN=$(readlink -f "$(printf '%s\n' "$built" | tail -1)")
    export VIPCHECK_BENCH_BIN
fi
exec cargo bench --locked --bench appcheck
