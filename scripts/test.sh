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
    deb=$(scripts/build-deb.sh | tail -n 1)
    VIPCHECK_DEB=$(readlink -f "$deb")
    export VIPCHECK_DEB
fi
cargo test --locked --no-fail-fast
