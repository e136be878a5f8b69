#!/usr/bin/env bash
# Installs the Debian packages vipcheck's tests and examples use. Run as root on Debian 12.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get install)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(
    keepalived ldirectord ipvsadm
    iproute2 nftables kmod procps
    curl nmap openssl python3 jq perl iputils-ping time
    qemu-system-x86 busybox-static
    e2fsprogs
    dpkg-dev binutils lintian man-db libcap2-bin
    dnsmasq-base bind9-dnsutils
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
