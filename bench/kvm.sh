#!/bin/bash
# bench/kvm.sh: Moat's KVM platform next to native, Moat ptrace and Moat fast.
#
# Part 1, the raw trap (no Sentry): one syscall round trip three ways:
#   native    getppid on the host (bench/programs/getppid.c),
#   ptrace    the bare PTRACE_SYSEMU floor (bench/ptrace_floor.c), the least
#             any ptrace sandbox pays per syscall,
#   kvm       `moat kvm-bench`: guest syscall -> VM exit -> registers to the
#             host -> rax back -> resume, as the Sentry answers one.
# Part 2, whole programs (static, bench/programs/) run natively (chroot),
# under gVisor's `runsc --platform=ptrace do` (when runsc is installed) and
# under `moat run --platform ptrace|fast|kvm`: syscall round trip (getppid),
# first-touch page fault and mmap/munmap churn (memchurn), fork+exec
# (forkexec), the rows that moving FPU state costs (fpswitch: a signal round
# trip, whose frame carries the XSAVE area, and two threads yielding to each
# other, which on the KVM platform swaps XSAVE areas on the shared vCPU) and
# a CPU loop (cpuloop); then python3's start-up (`python3 -c pass`, wall
# time) in the Debian root file system (--debian-rootfs, default
# rootfs/debian.sh's output; the row is left out without one).
# --moat-before PATH adds "Moat fast (before)" and "Moat KVM (before)"
# columns: another moat binary (say, main's) on those platforms, so a change
# is measured in the same run.
# --rows REGEX runs only the part-2 rows whose label matches (grep -E), and
# skips parts 0 and 1 and python3 (a change that touches one row is then
# measured in minutes, not a quarter of an hour on KVM).
#
# Usage: bench/kvm.sh [--moat PATH] [--moat-before PATH] [--rootfs DIR] [--debian-rootfs DIR] [--reps N] [--calls N] [--rows REGEX].
# Needs root (chroot, /dev/kvm) and gcc. Prints Markdown tables (medians of
# --reps runs).
#
# What bare metal would change: this machine's /dev/kvm is kvm_pvm (a KVM
# flavour for nested guests: the guest runs at hardware CPL 3 under shadow
# page tables, and every syscall and page fault of the application is a
# round trip through the outer hypervisor), which is why a KVM exit costs
# ~100x a native syscall here. On bare metal with VMX/SVM and EPT a VM exit
# is ~1 us and guest page faults are handled by the guest's own page tables
# without an exit; gVisor publishes ~1 us per trap for its KVM platform on
# bare metal, against ~15 us for a ptrace stop. The Sentry's half (decoding,
# the handler) is the same on both platforms; the difference is the trap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
moat=${MOAT:-}
before=
rootfs=
debian=
reps=5
calls=200000
only=
while [ $# -gt 0 ]; do
    case "$1" in
        --moat) moat=$2; shift 2 ;;
        --moat-before) before=$2; shift 2 ;;
        --rootfs) rootfs=$2; shift 2 ;;
        --debian-rootfs) debian=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        --rows) only=$2; shift 2 ;;
        *) echo "usage: $0 [--moat PATH] [--moat-before PATH] [--rootfs DIR] [--debian-rootfs DIR] [--reps N] [--calls N] [--rows REGEX]" >&2; exit 2 ;;
    esac
done
if [ -z "$moat" ]; then
    for c in "$here/../.build/release/moat" "$here/../.build/debug/moat"; do
        [ -x "$c" ] && { moat=$c; break; }
    done
fi
[ -x "$moat" ] || { echo "no moat binary (swift build --product moat, or --moat PATH)" >&2; exit 1; }
[ -z "$before" ] || [ -x "$before" ] || { echo "--moat-before: no executable at $before" >&2; exit 1; }
[ -n "$rootfs" ] || rootfs="$here/../.cache/rootfs/busybox"
[ -x "$rootfs/bin/busybox" ] || { echo "no busybox rootfs at $rootfs (bash rootfs/busybox.sh, or --rootfs DIR)" >&2; exit 1; }
[ -n "$debian" ] || debian="$here/../.cache/rootfs/debian"
runsc=$(command -v runsc || true)
# A physical path that runsc's sandbox (uid nobody) can reach: its `do`
# builds its chroot and keeps its state under $TMPDIR.
work=$(cd "$(mktemp -d)" && pwd -P)
chmod 755 "$work"
mkdir -m 1777 "$work/tmp"
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/getppid" "$here/programs/getppid.c"
gcc -O2 -o "$work/ptrace_floor" "$here/ptrace_floor.c"

median() { sort -g | awk 'NF {a[++n]=$1} END {if (n == 0) print "n/a"; else print (n%2) ? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2}'; }
measure() {  # key command... -> median of key=VALUE over $reps runs ("n/a" if none printed it)
    local key=$1; shift
    for _ in $(seq "$reps"); do "$@" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$key=//p" || true; done | median
}
if [ -z "$only" ]; then
native=$(measure ns_per_call "$work/getppid" "$calls")
floor=$(measure ns_per_call "$work/ptrace_floor" "$calls")
kvm=$(measure ns_per_call "$moat" kvm-bench "$calls")
kvm_cpu=$(measure cpu_ns_per_call "$moat" kvm-bench "$calls")
gcc -O2 -o "$work/kvm_trap" "$here/kvm_trap.c"
# Part 0: one trap taken apart (bench/kvm_trap.c): thread CPU time per trap,
# which a machine shared with other builders does not inflate, and wall time.
echo "| KVM trap, no Sentry ($calls traps, median of $reps) | CPU ns/trap | KVM_RUN CPU ns | register ioctls CPU ns | wall ns/trap |"
echo "| --- | ---: | ---: | ---: | ---: |"
for mode in exit iretq doorbell; do
    line="| $mode"
    for key in ns_cpu run_cpu ioctl_cpu ns_wall; do
        line="$line | $(measure "$key" "$work/kvm_trap" "$mode" "$calls")"
    done
    echo "$line |"
done
echo
echo "| syscall round trip ($calls calls, median of $reps) | ns/call |"
echo "| --- | ---: |"
printf '| native (host getppid) | %.0f |\n' "$native"
printf '| ptrace floor (PTRACE_SYSEMU) | %.0f |\n' "$floor"
printf '| Moat KVM platform (VM exit, no Sentry) | %.0f |\n' "$kvm"
printf '| Moat KVM platform, CPU time of the driver thread | %.0f |\n' "$kvm_cpu"
echo
fi

# Part 2: a private copy of the rootfs with the static programs in /bench.
root="$work/root"
cp -a "$rootfs" "$root"
mkdir -p "$root/bench"
for p in getppid memchurn forkexec fpswitch cpuloop; do
    gcc -O2 -static -pthread -o "$root/bench/$p" "$here/programs/$p.c"
done
sys_calls=$((calls / 10))
rows=(
    "syscall round trip (ns)|ns_per_call|/bench/getppid $sys_calls"
    "page fault, first touch (ns)|ns_per_fault|/bench/memchurn fault 5000"
    "mmap+touch+munmap 64 KiB (us)|us_per_iter|/bench/memchurn churn 500"
    "fork + exec + wait (us)|us_per_iter|/bench/forkexec 50"
    "signal round trip, AVX live (ns)|ns_per_signal|/bench/fpswitch signal $((sys_calls / 10))"
    "thread switch: 2 threads yielding, AVX live (ns/yield)|ns_per_yield|/bench/fpswitch yield $((sys_calls / 10))"
    "CPU loop, 60M iterations (ms)|ms|/bench/cpuloop 60"
)
# run_in SIDE ROOT CMD...: CMD under one side of the table.
run_in() {
    local side=$1 r=$2; shift 2
    case "$side" in
        native) chroot "$r" "$@" ;;
        runsc) TMPDIR="$work/tmp" "$runsc" --ignore-cgroups --platform=ptrace --network=none do -root "$r" "$@" ;;
        fast-before) "$before" run --platform fast --rootfs "$r" -- "$@" ;;
        kvm-before) "$before" run --platform kvm --rootfs "$r" -- "$@" ;;
        *) "$moat" run --platform "$side" --rootfs "$r" -- "$@" ;;
    esac
}
# wall_ms SIDE ROOT CMD...: prints ms=<wall time of CMD> (for programs that time nothing themselves).
wall_ms() {
    local t0; t0=$(date +%s%N)
    run_in "$@" >/dev/null 2>&1 || return 0
    echo "ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
}
sides=(native)
[ -n "$runsc" ] && sides+=(runsc)
sides+=(ptrace fast kvm)
[ -n "$before" ] && sides+=(fast-before kvm-before)
declare -A title=([native]=native [runsc]="runsc (ptrace)" [ptrace]="Moat ptrace" [fast]="Moat fast" [kvm]="Moat KVM"
                  [fast-before]="Moat fast (before)" [kvm-before]="Moat KVM (before)")
head="| program (median of $reps)"; rule="| ---"
for side in "${sides[@]}"; do head="$head | ${title[$side]}"; rule="$rule | ---:"; done
echo "$head |"; echo "$rule |"
for row in "${rows[@]}"; do
    IFS='|' read -r label key cmd <<<"$row"
    if [ -n "$only" ] && ! grep -qE -- "$only" <<<"$label"; then continue; fi
    line="| $label"
    for side in "${sides[@]}"; do
        # shellcheck disable=SC2086
        line="$line | $(measure "$key" run_in "$side" "$root" $cmd)"
    done
    echo "$line |"
done
if [ -z "$only" ] && [ -x "$debian/usr/bin/python3" ]; then
    # A private copy, as for the programs: each side starts from the same files.
    cp -a "$debian" "$work/debian"
    line="| python3 -c pass, start-up (wall ms)"
    for side in "${sides[@]}"; do line="$line | $(measure ms wall_ms "$side" "$work/debian" /usr/bin/python3 -c pass)"; done
    echo "$line |"
fi
