#!/usr/bin/env bash
# Runs every vipcheck test: formatting, lints, unit, CLI, golden, corpus, network-namespace
# and guest-VM tests. As root it first installs the Debian packages the tests drive
# (keepalived, ldirectord, qemu, lintian, ...) and builds the Debian package that
# tests/deb_package.rs installs. Privileged tests skip (saying so) when not root,
# unless VIPCHECK_REQUIRE_PRIVILEGED=1, which turns every skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
    scripts/install-deps.sh
fi
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
scripts/check-deps.sh
if [ "$(id -u)" -eq 0 ] && [ -z "${VIPCHECK_DEB:-}" ]; then
    # The package test (tests/deb_package.rs) installs this .deb, and tests/static_release.rs
    # runs its static binary; building it here keeps the release build out of the tests'
    # time limits.
    bin=$(scripts/build-release.sh | tail -n 1)
    deb=$(VIPCHECK_DEB_BIN=$bin scripts/build-deb.sh | tail -n 1)
    VIPCHECK_DEB=$(readlink -f "$deb")
    export VIPCHECK_DEB
    # The guest-VM tests run this same tree's release binary (tests/guest/harness.rs).
    VIPCHECK_GUEST_BIN=$(readlink -f "$bin")
    export VIPCHECK_GUEST_BIN
fi
# Every test target is built first. The guest-VM tests (tests/guest_*.rs: qemu under TCG)
# spend most of their time waiting for keepalived's check rounds, so after the others
# they run as two streams side by side (about 4 minutes less than one after the other);
# each stream's output is printed when it ends.
cargo test --locked --no-run
guests=()
others=()
for f in tests/*.rs; do
    t=$(basename "$f" .rs)
    case $t in
    guest_*) guests+=(--test "$t") ;;
    *) others+=(--test "$t") ;;
    esac
done
status=0
cargo test --locked --no-fail-fast --lib --bins "${others[@]}" || status=1
cargo test --locked --no-fail-fast --doc || status=1
stream_a=()
stream_b=()
for ((i = 0; i < ${#guests[@]}; i += 2)); do
    if (((i / 2) % 2 == 0)); then stream_a+=("${guests[@]:i:2}"); else stream_b+=("${guests[@]:i:2}"); fi
done
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
if ((${#stream_a[@]})); then
    cargo test --locked --no-fail-fast "${stream_a[@]}" >"$logs/a" 2>&1 &
    pids+=("$!:a")
fi
if ((${#stream_b[@]})); then
    cargo test --locked --no-fail-fast "${stream_b[@]}" >"$logs/b" 2>&1 &
    pids+=("$!:b")
fi
for p in "${pids[@]}"; do
    wait "${p%%:*}" || status=1
    cat "$logs/${p#*:}"
done
exit $status
