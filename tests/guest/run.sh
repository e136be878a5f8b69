#!/bin/bash
# Boots the test guest (Debian cloud kernel under qemu TCG, host root shared read-only over
# virtiofs) and runs one scenario script in it as root. Prints the guest console with
# host-side timestamps and exits with the script's exit status.
#
#   tests/guest/run.sh [--timeout SECONDS] SCRIPT [ARG...]
#
# SCRIPT is a path on the host (made absolute here); the guest sees the host's files at the
# same paths, as they were when it booted. Environment variables named VIPCHECK_* are passed
# on to the script. Exit status: the script's; 124 when the guest ran out of time;
# 125 when the guest did not report a status (boot failure: see the console).
# Knobs: GUEST_MEM (MiB, 512), GUEST_SMP (2).
set -euo pipefail

guest_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$guest_dir/work
timeout_s=110
if [[ ${1:-} == --timeout ]]; then
    timeout_s=$2
    shift 2
fi
[[ $# -ge 1 ]] || { echo "usage: $0 [--timeout SECONDS] SCRIPT [ARG...]" >&2; exit 2; }
script=$(realpath "$1")
shift

for f in "$work/kernel/vmlinuz" "$work/initramfs.gz"; do
    [[ -f $f ]] || { echo "guest-run: $f is missing: run tests/guest/setup.sh first" >&2; exit 2; }
done
virtiofsd=/usr/lib/qemu/virtiofsd
[[ -x $virtiofsd ]] || { echo "guest-run: $virtiofsd is missing (apt-get install qemu-system-x86)" >&2; exit 2; }

# The job directory must be on the shared root but not under /run: the guest mounts a
# fresh one there.
mkdir -p "$work/jobs"
job_dir=$(mktemp -d "$work/jobs/job.XXXXXX")
vfsd_pid=
cleanup() {
    if [[ -n $vfsd_pid ]]; then
        kill "$vfsd_pid" 2>/dev/null || true
        wait "$vfsd_pid" 2>/dev/null || true
    fi
    rm -rf "$job_dir"
}
trap cleanup EXIT

{
    echo "#!/bin/sh"
    while IFS='=' read -r name _; do
        printf 'export %s=%q\n' "$name" "${!name}"
    done < <(env | grep -E '^VIPCHECK_[A-Za-z0-9_]*=' || true)
    printf 'cd %q || exit 126\n' "$PWD"
    printf 'exec /bin/sh %q' "$script"
    for a in "$@"; do printf ' %q' "$a"; done
    echo
} >"$job_dir/job.sh"

sock=$job_dir/virtiofs.sock
# sandbox=chroot: the namespace sandbox does not work inside this kind of container;
# cache=always: the shared root does not change while the guest runs, and it makes
# process start-up in the guest several times faster.
"$virtiofsd" --socket-path="$sock" -o source=/ -o sandbox=chroot -o cache=always \
    -o log_level=err >"$job_dir/virtiofsd.log" 2>&1 &
vfsd_pid=$!
for _ in $(seq 250); do
    [[ -S $sock ]] && break
    sleep 0.02
done
[[ -S $sock ]] || { echo "guest-run: virtiofsd did not start:" >&2; cat "$job_dir/virtiofsd.log" >&2; exit 125; }

mem=${GUEST_MEM:-512}
now_us() { echo "${EPOCHREALTIME/./}"; }
start_us=$(now_us)
elapsed() { # seconds since start, two decimals
    local d=$(( ($(now_us) - start_us) / 10000 ))
    printf '%d.%02d' $((d / 100)) $((d % 100))
}
stamp() {
    local line
    while IFS= read -r line; do
        line=${line//$'\r'/}
        # SeaBIOS clears the screen with terminal escapes; keep the log plain text.
        line=${line//$'\e'c/}
        while [[ $line =~ $'\e'\[[0-9\;?]*[A-Za-z] ]]; do
            line=${line/"${BASH_REMATCH[0]}"/}
        done
        printf '[%7s] %s\n' "$(elapsed)" "$line"
    done
}

set +e
# -accel tcg: /dev/kvm on these machines cannot run a stock kernel. The virtiofs device
# needs the guest memory to be shareable (memfd, share=on).
timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 \
    -accel tcg,tb-size=64 -cpu max -M q35 -m "$mem" -smp "${GUEST_SMP:-2}" \
    -nodefaults -no-user-config -nographic -no-reboot -monitor none -serial stdio \
    -kernel "$work/kernel/vmlinuz" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 reboot=t tsc=reliable vipcheck.job=$job_dir/job.sh" \
    -object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -numa node,memdev=mem \
    -chardev "socket,id=vfs,path=$sock" -device vhost-user-fs-pci,chardev=vfs,tag=hostroot \
    </dev/null 2>&1 | stamp | tee "$job_dir/console.log"
qemu_rc=${PIPESTATUS[0]}
set -e

rc=$(sed -n 's/^\[ *[0-9.]*\] VIPCHECK-GUEST-EXIT=\([0-9]*\)$/\1/p' "$job_dir/console.log" | tail -n 1)
echo "guest-run: $(elapsed) s wall, qemu status $qemu_rc, script status ${rc:-none}" >&2
if [[ -z $rc ]]; then
    if [[ $qemu_rc -eq 124 || $qemu_rc -eq 137 ]]; then
        echo "guest-run: the guest ran out of time (${timeout_s}s)" >&2
        exit 124
    fi
    echo "guest-run: the guest did not report a status; virtiofsd log:" >&2
    cat "$job_dir/virtiofsd.log" >&2
    exit 125
fi
exit "$rc"
