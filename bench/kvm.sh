#!/bin/bash
# bench/kvm.sh: the cost of one application syscall round trip three ways:
#   native    getppid on the host (bench/programs/getppid.c),
#   ptrace    the bare PTRACE_SYSEMU floor (bench/ptrace_floor.c), the least
#             any ptrace sandbox pays per syscall,
#   kvm       Moat's KVM platform (`moat kvm-bench`): guest syscall -> VM exit
#             -> registers to the host -> rax back -> resume, as the Sentry
#             would answer it.
# Usage: bench/kvm.sh [--moat PATH] [--reps N] [--calls N]. Needs root (for
# /dev/kvm) and gcc. Prints a Markdown table (medians of --reps runs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
moat=${MOAT:-}
reps=5
calls=200000
while [ $# -gt 0 ]; do
    case "$1" in
        --moat) moat=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        *) echo "usage: $0 [--moat PATH] [--reps N] [--calls N]" >&2; exit 2 ;;
    esac
done
if [ -z "$moat" ]; then
    for c in "$here/../.build/release/moat" "$here/../.build/debug/moat"; do
        [ -x "$c" ] && { moat=$c; break; }
    done
fi
[ -x "$moat" ] || { echo "no moat binary (swift build --product moat, or --moat PATH)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/getppid" "$here/programs/getppid.c"
gcc -O2 -o "$work/ptrace_floor" "$here/ptrace_floor.c"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
measure() {  # command... -> median ns_per_call over $reps runs
    for _ in $(seq "$reps"); do "$@" | sed -n 's/^ns_per_call=//p'; done | median
}
native=$(measure "$work/getppid" "$calls")
floor=$(measure "$work/ptrace_floor" "$calls")
kvm=$(measure "$moat" kvm-bench "$calls")
echo "| syscall round trip ($calls calls, median of $reps) | ns/call |"
echo "| --- | ---: |"
printf '| native (host getppid) | %.0f |\n' "$native"
printf '| ptrace floor (PTRACE_SYSEMU) | %.0f |\n' "$floor"
printf '| Moat KVM platform (VM exit) | %.0f |\n' "$kvm"
