#!/usr/bin/env bash
# vipcheck's main job on the bundled example: show the checks a rewrite adds (a unified
# diff), write the result to a temp dir, and let real keepalived validate it.
# Usage: scripts/demo.sh [CONFIG]   (default: fixtures/examples/keepalived.conf)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-fixtures/examples/keepalived.conf}
if [ "$(id -u)" -eq 0 ]; then
    scripts/install-deps.sh
fi
cargo build --release --quiet
vipcheck=target/release/vipcheck

echo "== vipcheck rewrite --dry-run $config"
set +e
"$vipcheck" rewrite --dry-run "$config"
rc=$?
set -e
case $rc in
    0) echo "(no changes pending)" ;;
    1) echo "(exit 1: changes pending, as with diff)" ;;
    *) exit "$rc" ;;
esac

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$vipcheck" rewrite "$config" -o "$out/"
main="$out/$(basename "$config")"
if command -v keepalived >/dev/null 2>&1 || [ -x /usr/sbin/keepalived ]; then
    echo "== keepalived --config-test on the rewritten config"
    PATH=$PATH:/usr/sbin keepalived --config-test -f "$main" && echo "keepalived accepts it"
fi
echo "== rewriting the result again changes nothing"
"$vipcheck" rewrite --dry-run "$main" && echo "idempotent: no changes"
