#!/usr/bin/env bash
# Builds the vipcheck binary to install on a director: optimised, statically linked and
# not position-independent. keepalived and ldirectord start `vipcheck probe` as a new
# process on every check, so start-up is most of a probe's cost: a static binary skips the
# dynamic loader's relocations and page faults (scripts/bench-probe.sh measures both
# builds; see README, "Measured").
#
# The target is named explicitly so that these flags apply to vipcheck only, not to the
# build's own proc-macros. Output: target/x86_64-unknown-linux-gnu/release/vipcheck
# (or under $CARGO_TARGET_DIR).
#   scripts/build-release.sh && install -m 0755 target/x86_64-unknown-linux-gnu/release/vipcheck /usr/local/bin/
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --locked --bin vipcheck --target "$triple" "$@"
echo "${CARGO_TARGET_DIR:-target}/$triple/release/vipcheck"
