#!/bin/sh
# Smallest guest check: the modules the scenarios rely on are there, network namespaces
# and a bridge work, and the vipcheck binary named by VIPCHECK_BIN runs.
set -u
fails=0
check() { # check DESCRIPTION COMMAND...
    d=$1; shift
    if "$@" >/dev/null 2>&1; then echo "PASS: $d"; else echo "FAIL: $d"; fails=$((fails + 1)); fi
}
echo "kernel $(uname -r)"
for m in ip_vs ipip ip6_tunnel veth bridge; do
    check "module $m loaded" grep -q "^$m " /proc/modules
done
check "ip netns add" ip netns add smoke
check "bridge + veth into a netns" sh -c 'ip link add br-smoke type bridge && ip link add sm-h type veth peer name eth0 netns smoke'
check "IPVS answers (ipvsadm -Ln)" ipvsadm -Ln
check "ipip fallback device in a new netns" ip -n smoke link show tunl0
if [ -n "${VIPCHECK_BIN:-}" ]; then
    check "vipcheck runs ($VIPCHECK_BIN)" "$VIPCHECK_BIN" --version
fi
echo "smoke: $fails failure(s)"
[ "$fails" -eq 0 ]
