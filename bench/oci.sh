#!/usr/bin/env bash
# bench/oci.sh: start-up of a trivial container, /bin/true from a busybox
# rootfs, with native (chroot), runc, runsc and Moat side by side in one run,
# each timed by bench/lib/measure.py. Rows:
#   run      one foreground command that makes, runs, waits for and removes
#            the container: `chroot ROOTFS /bin/true`, `runc run --bundle B`,
#            `runsc run --bundle B`, `moat run --rootfs ROOTFS -- /bin/true`;
#   oci-run  the OCI runtime's own `run --bundle B` (Moat's and the others');
#   cycle    the OCI lifecycle as an engine drives it: create, start, wait for
#            the container's process to exit, delete (bench/lib/oci_cycle.py).
# Prints a Markdown report and writes it to --out.
#
#   bench/oci.sh [--moat PATH] [--rootfs DIR] [--out FILE] [--tsv FILE] [--reps N]
#                [--runtimes LIST] [--rows LIST] [--moat-base PATH]
#
# Run as root. A runtime that is missing or fails says `n/a (...)` in its cell.
set -uo pipefail

BENCH_NAME=oci.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MEASURE="$BENCH_DIR/lib/measure.py"
CYCLE="$BENCH_DIR/lib/oci_cycle.py"
REPS=10
ONLY=native,runc,runsc,moat
ONLY_ROWS=run,oci-run,cycle

bench_options "$@"
for a in "${BENCH_REST[@]}"; do
    case "$a" in
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $a" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "run as root"
bench_find_moat
bench_add_base
bench_busybox_rootfs
[ -n "$OUT" ] || OUT="$BENCH_DIR/results/$(date -u +%F)-oci-$(hostname -s).md"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/moat-oci-bench.XXXXXX")
# Container ids start with this (unique per run), so that their cgroups can be found.
ID="ob$$-"
cleanup() {
    bench_delete_containers "$MOAT" "$WORK/state-moat"
    [ -z "$MOAT_BASE" ] || bench_delete_containers "$MOAT_BASE" "$WORK/state-moat-base"
    bench_delete_containers runc "$WORK/state-runc"
    bench_delete_containers runsc "$WORK/state-runsc"
    bench_remove_cgroups "$ID"
    rm -rf "$WORK"
}
trap cleanup EXIT

# One bundle for all: runc wants a real (non-symlink) absolute rootfs.
cp -a "$ROOTFS_SRC" "$WORK/rootfs"
bench_bundle "$WORK" "$WORK/rootfs" true /bin/true

declare -A LABEL=([native]="native (chroot)" [moat]="Moat" [moat-base]="Moat baseline" [runc]="runc" [runsc]="runsc (ptrace)")
declare -A CMD VER RESULT
CMD[native]=$(command -v chroot || true)
CMD[moat]="$MOAT"; CMD[moat-base]="$MOAT_BASE"; CMD[runc]=$(command -v runc || true); CMD[runsc]=$(command -v runsc || true)
FLAGS_runsc=(--platform=ptrace --network=none)
[ -n "${CMD[moat]}" ] && VER[moat]=$(bench_moat_version)
[ -n "${CMD[moat-base]}" ] && VER[moat-base]="binary $MOAT_BASE"
[ -n "${CMD[runc]}" ] && VER[runc]=$(runc --version | sed -n 1p)
[ -n "${CMD[runsc]}" ] && VER[runsc]=$(runsc --version 2>/dev/null | sed -n 1p)
VER[native]="chroot (coreutils)"

# The command of row $1 for runtime $2, in the array C; false if the cell does not apply.
row_cmd() {
    local row=$1 rt=$2 state="$WORK/state-$2"
    local flags=()
    [ "$rt" = runsc ] && flags=("${FLAGS_runsc[@]}")
    case "$row/$rt" in
        run/native|oci-run/native) C=(chroot "$WORK/rootfs" /bin/true) ;;
        cycle/native) return 1 ;;
        run/moat|run/moat-base) C=("${CMD[$rt]}" run --rootfs "$WORK/rootfs" -- /bin/true) ;;
        run/*|oci-run/*) C=("${CMD[$rt]}" "${flags[@]}" --root "$state" run --bundle "$WORK" "${ID}r$row") ;;
        cycle/*) C=(python3 "$CYCLE" "${CMD[$rt]}" "$state" "$WORK" "${ID}c1" "${flags[@]}") ;;
    esac
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=, read -r -a RTS <<< "$ONLY"
IFS=, read -r -a ROWLIST <<< "$ONLY_ROWS"
for row in "${ROWLIST[@]}"; do
    for rt in "${RTS[@]}"; do
        if [ -z "${CMD[$rt]:-}" ]; then RESULT[$row/$rt]="n/a (not installed)"; continue; fi
        if ! row_cmd "$row" "$rt"; then RESULT[$row/$rt]="—"; continue; fi
        mkdir -p "$WORK/state-$rt"
        log "$row, $rt: $REPS runs"
        out=$(python3 "$MEASURE" --reps "$REPS" --warmup 1 --timeout 60 --label "oci-$row-$rt" -- "${C[@]}")
        if grep -q '^status=ok' <<< "$out"; then
            RESULT[$row/$rt]=$(sed -n 's/^value=//p' <<< "$out")
        else
            RESULT[$row/$rt]="n/a ($(sed -n 's/^error=//p' <<< "$out"))"
        fi
        bench_tsv "$row" "$rt" "${RESULT[$row/$rt]}"
    done
done

declare -A ROWLABEL=(
    [run]="\`run\`: one foreground command (Moat: \`moat run --rootfs\`)"
    [oci-run]="OCI \`run --bundle\` (create + start + wait + delete in one)"
    [cycle]="OCI cycle: \`create\`, \`start\`, wait, \`delete\`"
)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
    echo "# Start-up: a trivial container, natively and under runc, runsc and Moat"
    echo
    echo "$(date -u +%F), $(nproc) vCPU, $cpu, Linux $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME");"
    echo "load average before the run: $LOAD_BEFORE (the machine may be shared)."
    echo
    echo "| runtime | version |"
    echo "| --- | --- |"
    for rt in "${RTS[@]}"; do echo "| ${LABEL[$rt]} | ${VER[$rt]:-not installed} |"; done
    echo
    printf '| wall ms, median (min–max) of %s |' "$REPS"; for rt in "${RTS[@]}"; do printf ' %s |' "${LABEL[$rt]}"; done; echo
    printf '| --- |'; for rt in "${RTS[@]}"; do printf ' ---: |'; done; echo
    for row in "${ROWLIST[@]}"; do
        printf '| %s |' "${ROWLABEL[$row]:-$row}"
        for rt in "${RTS[@]}"; do printf ' %s |' "${RESULT[$row/$rt]}"; done; echo
    done
    echo
    echo "The bundle runs \`/bin/true\` from a busybox rootfs, read-only, with /proc and a /dev tmpfs,"
    echo "in new pid, network, ipc, uts and mount namespaces. \`run\`: \`chroot ROOTFS /bin/true\`,"
    echo "\`runc run --bundle B\`, \`runsc run --bundle B\`, \`moat run --rootfs ROOTFS -- /bin/true\`"
    echo "(Moat's own network namespace, its default). \`cycle\`: \`RUNTIME --root STATE create --bundle B"
    echo "--pid-file F c1\`, \`start c1\`, wait until the pid in F has exited (polled every 0.5 ms),"
    echo "\`delete c1\`. One untimed warm-up run per cell first. runsc runs with --platform=ptrace"
    echo "--network=none. Moat's figures include its Gofer and Sentry start-up, the stub, confinement"
    echo "and (OCI) cgroup setup; \`moat --debug\` prints where the time goes (startup lines in the log)."
} | tee "$OUT"
