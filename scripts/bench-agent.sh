#!/bin/sh
# Benchmark `vipcheck agent` against fork-per-check (keepalived's MISC_CHECK) on 1,000
# pairs (100 DR real servers x 10 ports) at a 1 s interval in network namespaces (needs
# root): CPU of every process and thread, peak memory, verdict-change-to-rename time, and
# every state file and every forked probe's exit code checked.
#   VIPCHECK_BENCH_SECS=30 scripts/bench-agent.sh
#   VIPCHECK_BENCH_BIN=target/release/vipcheck scripts/bench-agent.sh
# By default it measures the binary an operator installs (scripts/build-release.sh).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${VIPCHECK_BENCH_BIN:-}" ]; then
    built=$(scripts/build-release.sh --quiet)   # a failed build stops here (set -e)
    VIPCHECK_BENCH_BIN=$(readlink -f "$(printf '%s\n' "$built" | tail -1)")
    export VIPCHECK_BENCH_BIN
fi
exec cargo bench --locked --bench agent
