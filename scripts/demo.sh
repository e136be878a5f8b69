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
export PATH=$PATH:/usr/sbin
case $config in
    *.cf)
        if command -v ldirectord >/dev/null 2>&1; then
            echo "== ldirectord reads the rewritten config (ldirectord -d FILE status)"
            set +e
            ldirectord -d "$main" status >/dev/null 2>&1
            lrc=$?
            set -e
            # ldirectord's `status` exits 3 ("not running") once the config parsed.
            if [ "$lrc" -eq 3 ]; then echo "ldirectord accepts it"; else echo "ldirectord rejects it ($lrc)"; exit 1; fi
        fi ;;
    *)
        if command -v keepalived >/dev/null 2>&1; then
            echo "== keepalived --config-test on the rewritten config"
            keepalived --config-test -f "$main" && echo "keepalived accepts it"
        fi ;;
esac
echo "== rewriting the result again changes nothing"
"$vipcheck" rewrite --dry-run "$main" && echo "idempotent: no changes"
