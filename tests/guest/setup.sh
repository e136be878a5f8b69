#!/bin/bash
# Prepares what the test guest boots: the current Debian cloud kernel (downloaded with
# apt, unpacked, never installed) and a small initramfs (static busybox, the modules the
# scenarios need, our /init). Everything lands in tests/guest/work/ and is reused: a
# step whose output is already there and up to date is skipped.
#
# Needs (Debian 12, root for nothing but apt): apt, dpkg, busybox-static, gzip
# (busybox provides cpio and depmod). Usage: tests/guest/setup.sh [--force]
set -euo pipefail

guest_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$guest_dir/work
mkdir -p "$work"

# Only one setup at a time: cargo runs test binaries in parallel.
exec 9>"$work/.setup.lock"
flock 9

if [[ ${1:-} == --force ]]; then
    rm -rf "$work/kernel" "$work/initramfs.gz" "$work/initramfs.stamp"
fi

say() { printf 'guest-setup: %s\n' "$*" >&2; }

# Modules loaded at boot (their dependencies come along from modules.dep).
boot_modules=(
    virtio_pci virtiofs overlay
    veth bridge
    ipip ip6_tunnel tunnel4 tunnel6 ip_tunnel
    ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_dh ip_vs_sed ip_vs_nq
    ip_vs_lblc ip_vs_lblcr ip_vs_mh ip_vs_fo ip_vs_ovf
    nf_tables  # the application check's owner table (drops the director's RSTs)
    fou fou6 gre ip_gre ip6_gre  # GUE and GRE tunnels (issue 15)
)

busybox_bin() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        if [[ -x $b ]] && "$b" --list | grep -qx depmod; then
            if file_is_static "$b"; then echo "$b"; return 0; fi
        fi
    done
    say "no static busybox found: apt-get install busybox-static"
    return 1
}

file_is_static() {
    ! ldd "$1" >/dev/null 2>&1
}

fetch_kernel() {
    if [[ -f $work/kernel/release && -f $work/kernel/vmlinuz ]]; then
        say "kernel $(cat "$work/kernel/release") already unpacked"
        return 0
    fi
    # The meta package depends on the current ABI (it changes with security updates):
    # ask apt which one that is instead of naming it here.
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)
    if [[ -z $pkg ]]; then
        say "apt does not know linux-image-cloud-amd64; running apt-get update"
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-cloud-amd64 |
            sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1)
    fi
    [[ -n $pkg ]] || { say "cannot resolve linux-image-cloud-amd64"; return 1; }

    mkdir -p "$work/debs"
    local deb
    deb=$(ls "$work/debs/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
    if [[ -z $deb ]]; then
        say "downloading $pkg"
        (cd "$work/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg") ||
            { apt-get update -qq && (cd "$work/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg"); }
        deb=$(ls "$work/debs/${pkg}"_*.deb | head -n 1)
    fi

    local tmp=$work/kernel.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    dpkg -x "$deb" "$tmp"
    local release
    release=$(ls "$tmp/lib/modules")
    # The package leaves modules.dep to the installer; build it with busybox's depmod.
    "$(busybox_bin)" depmod -b "$tmp" "$release"
    cp "$tmp/boot/vmlinuz-$release" "$tmp/vmlinuz"
    echo "$release" >"$tmp/release"
    rm -rf "$work/kernel"
    mv "$tmp" "$work/kernel"
    say "kernel $release unpacked"
}

# Prints every module file (relative to the modules dir) that the boot modules need.
module_closure() {
    local dep_file=$1 m line
    for m in "${boot_modules[@]}"; do
        line=$(grep -E "(^|/)${m}\.ko(\.[a-z]+)?:" "$dep_file") || {
            # Built into this kernel: nothing to copy.
            if grep -qE "/${m}\.ko" "$(dirname "$dep_file")/modules.builtin" 2>/dev/null; then
                continue
            fi
            say "module $m is neither a module nor built in"
            return 1
        }
        printf '%s\n' "${line%%:*}"
        for d in ${line#*:}; do printf '%s\n' "$d"; done
    done | sort -u
}

build_initramfs() {
    local release mods
    release=$(cat "$work/kernel/release")
    mods=$work/kernel/lib/modules/$release
    # Rebuild when the kernel, the /init or the module list changed.
    local want
    want=$( { echo "$release"; printf '%s\n' "${boot_modules[@]}"; cat "$guest_dir/init"; } |
        sha256sum | cut -d' ' -f1)
    if [[ -f $work/initramfs.gz && $(cat "$work/initramfs.stamp" 2>/dev/null) == "$want" ]]; then
        say "initramfs up to date"
        return 0
    fi
    local bb root
    bb=$(busybox_bin)
    root=$(mktemp -d "$work/initramfs.XXXXXX")
    mkdir -p "$root"/{bin,sbin,dev,proc,sys,host,rw,root} "$root/lib/modules/$release"
    cp "$bb" "$root/bin/busybox"
    local applet
    for applet in $("$bb" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
    done
    local f
    while read -r f; do
        mkdir -p "$root/lib/modules/$release/$(dirname "$f")"
        cp "$mods/$f" "$root/lib/modules/$release/$f"
    done < <(module_closure "$mods/modules.dep")
    cp "$mods"/modules.builtin* "$mods"/modules.order "$root/lib/modules/$release/" 2>/dev/null || true
    "$bb" depmod -b "$root" "$release"
    printf '%s\n' "${boot_modules[@]}" >"$root/modules.boot"
    install -m 0755 "$guest_dir/init" "$root/init"
    (cd "$root" && find . | "$bb" cpio -o -H newc 2>/dev/null) | gzip -1 >"$work/initramfs.gz.tmp"
    mv "$work/initramfs.gz.tmp" "$work/initramfs.gz"
    echo "$want" >"$work/initramfs.stamp"
    rm -rf "$root"
    say "initramfs built: $(du -k "$work/initramfs.gz" | cut -f1) KiB, $(module_closure "$mods/modules.dep" | wc -l) modules"
}

fetch_kernel
build_initramfs
