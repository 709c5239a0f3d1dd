#!/usr/bin/env bash
# bench/mem.sh: memory of idle sandboxes -- `sleep` in a busybox rootfs --
# summed over every host process of each sandbox (bench/lib/idle_mem.py reads
# their smaps_rollup), for 1 and for 20 sandboxes side by side, with Moat,
# runsc and runc. PSS splits shared pages among the processes that map them;
# USS is what a process alone holds; "each further" is (20 sandboxes - 1) / 19,
# what one more idle sandbox costs.
#
#   bench/mem.sh [--moat PATH] [--moat-base PATH] [--rootfs DIR] [--out FILE] [--tsv FILE] [--counts 1,20]
#                [--runtimes LIST] [--detail]
#
# Run as root, on an otherwise quiet host (PSS depends on who else maps the
# same files). A runtime that is missing or fails says `n/a (...)`.
set -uo pipefail

BENCH_NAME=mem.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
IDLE="$BENCH_DIR/lib/idle_mem.py"
COUNTS=1,20
DETAIL=
ONLY=runc,runsc,moat

bench_options "$@"
set -- "${BENCH_REST[@]}"
while [ $# -gt 0 ]; do
    case "$1" in
        --counts) COUNTS=${2:?}; shift 2 ;;
        --detail) DETAIL=--detail; shift ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "run as root"
bench_find_moat
bench_add_base
bench_busybox_rootfs
[ -n "$OUT" ] || OUT="$BENCH_DIR/results/$(date -u +%F)-mem-$(hostname -s).md"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/moat-mem-bench.XXXXXX")
chmod 755 "$WORK"
# Container ids start with this (unique per run): the cgroups runc and runsc
# made for the killed sandboxes are found by it and removed.
ID="mb$$-"
delete_all() {
    bench_delete_containers runc "$WORK/state-runc"
    bench_delete_containers runsc "$WORK/state-runsc"
    bench_delete_containers "$MOAT" "$WORK/state-moat"
    [ -z "$MOAT_BASE" ] || bench_delete_containers "$MOAT_BASE" "$WORK/state-moat-base"
    bench_remove_cgroups "$ID"
}
cleanup() { delete_all; rm -rf "$WORK"; }
trap cleanup EXIT

cp -a "$ROOTFS_SRC" "$WORK/rootfs"
bench_bundle "$WORK" "$WORK/rootfs" true /bin/sleep 3600

declare -A LABEL=([moat]="Moat (\`moat run\`)" [moat-base]="Moat baseline (\`moat run\`)" [runc]="runc (\`runc run\`)" [runsc]="runsc ptrace (\`runsc run\`)")
declare -A CMD VER RES
CMD[moat]="$MOAT"; CMD[moat-base]="$MOAT_BASE"; CMD[runc]=$(command -v runc || true); CMD[runsc]=$(command -v runsc || true)
[ -n "${CMD[moat]}" ] && VER[moat]=$(bench_moat_version)
[ -n "${CMD[moat-base]}" ] && VER[moat-base]="binary $MOAT_BASE"
[ -n "${CMD[runc]}" ] && VER[runc]=$(runc --version | sed -n 1p)
[ -n "${CMD[runsc]}" ] && VER[runsc]=$(runsc --version 2>/dev/null | sed -n 1p)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=, read -r -a RTS <<< "$ONLY"
IFS=, read -r -a NS <<< "$COUNTS"
for rt in "${RTS[@]}"; do
    [ -n "${CMD[$rt]:-}" ] || continue
    mkdir -p "$WORK/state-$rt"
    case $rt in
        moat|moat-base) C=("${CMD[$rt]}" run --rootfs "$WORK/rootfs" -- /bin/sleep 3600) ;;
        runc) C=(runc --root "$WORK/state-$rt" run --bundle "$WORK" "${ID}{i}") ;;
        runsc) C=(runsc --platform=ptrace --network=none --root "$WORK/state-$rt" run --bundle "$WORK" "${ID}{i}") ;;
    esac
    for n in "${NS[@]}"; do
        log "$rt: $n idle sandboxes"
        # --detail: one line per process (pid, PSS, USS, command) on stderr.
        out=$(python3 "$IDLE" --count "$n" $DETAIL -- "${C[@]}")
        for k in status error procs pss_mb uss_mb pss_total_mb uss_total_mb sbx_mb sbx_total_mb; do
            RES[$rt/$n/$k]=$(sed -n "s/^$k=//p" <<< "$out")
        done
        delete_all
        sleep 1
    done
done

cell() { # runtime count key
    local rt=$1 n=$2 k=$3
    if [ -z "${CMD[$rt]:-}" ]; then echo "n/a (not installed)"; return; fi
    if [ "${RES[$rt/$n/status]:-}" != ok ]; then echo "n/a (${RES[$rt/$n/error]:-no result})"; return; fi
    echo "${RES[$rt/$n/$k]}"
}
further() { # runtime key: (total at max count - total at 1) / (max - 1)
    local rt=$1 k=$2 lo=${NS[0]} hi=${NS[${#NS[@]}-1]}
    [ "${RES[$rt/$lo/status]:-}" = ok ] && [ "${RES[$rt/$hi/status]:-}" = ok ] && [ "$hi" -gt "$lo" ] || { echo "n/a"; return; }
    python3 -c "print(f'{(${RES[$rt/$hi/${k}_total_mb]} - ${RES[$rt/$lo/${k}_total_mb]}) / ($hi - $lo):.1f}')"
}
for rt in "${RTS[@]}"; do
    for n in "${NS[@]}"; do
        bench_tsv "mem${n}_pss" "$rt" "$(cell "$rt" "$n" pss_mb)"
        bench_tsv "mem${n}_uss" "$rt" "$(cell "$rt" "$n" uss_mb)"
        bench_tsv "mem${n}_procs" "$rt" "$(cell "$rt" "$n" procs)"
        bench_tsv "mem${n}_sbx" "$rt" "$(cell "$rt" "$n" sbx_mb)"
    done
    if [ "${#NS[@]}" -gt 1 ]; then
        bench_tsv mem_further_pss "$rt" "$(further "$rt" pss)"
        bench_tsv mem_further_uss "$rt" "$(further "$rt" uss)"
    fi
done
{
    echo "# Idle sandboxes: memory summed over their host processes"
    echo
    echo "$(date -u +%F), $(nproc) vCPU, Linux $(uname -r); load average before the run: $LOAD_BEFORE."
    echo
    echo "| runtime | version |"
    echo "| --- | --- |"
    for rt in "${RTS[@]}"; do echo "| ${LABEL[$rt]} | ${VER[$rt]:-not installed} |"; done
    echo
    printf '| MB per sandbox |'; for rt in "${RTS[@]}"; do printf ' %s |' "${LABEL[$rt]}"; done; echo
    printf '| --- |'; for rt in "${RTS[@]}"; do printf ' ---: |'; done; echo
    for n in "${NS[@]}"; do
        printf '| %s sandbox(es): host processes each |' "$n"; for rt in "${RTS[@]}"; do printf ' %s |' "$(cell "$rt" "$n" procs)"; done; echo
        printf '| %s sandbox(es): PSS each |' "$n"; for rt in "${RTS[@]}"; do printf ' %s |' "$(cell "$rt" "$n" pss_mb)"; done; echo
        printf '| %s sandbox(es): USS each |' "$n"; for rt in "${RTS[@]}"; do printf ' %s |' "$(cell "$rt" "$n" uss_mb)"; done; echo
        printf '| %s sandbox(es): pages only that sandbox maps, each |' "$n"; for rt in "${RTS[@]}"; do printf ' %s |' "$(cell "$rt" "$n" sbx_mb)"; done; echo
    done
    if [ "${#NS[@]}" -gt 1 ]; then
        printf '| each further sandbox: PSS |'; for rt in "${RTS[@]}"; do printf ' %s |' "$(further "$rt" pss)"; done; echo
        printf '| each further sandbox: USS |'; for rt in "${RTS[@]}"; do printf ' %s |' "$(further "$rt" uss)"; done; echo
    fi
    echo
    echo "Each sandbox runs \`/bin/sleep 3600\` from a read-only busybox rootfs; its host processes are the"
    echo "process tree of the command that started it (for Moat: launcher, Gofer, Sentry, master stub, the"
    echo "application's stub). Figures are taken once every tree has stopped changing (3 samples 0.5 s apart)."
    echo "USS sums each process's private pages; \"pages only that sandbox maps\" counts a page that two of"
    echo "one sandbox's processes share (a forked Gofer's or Sentry's pages shared with their launcher) too:"
    echo "at 20 sandboxes it is what one more sandbox holds of its own (bench/lib/idle_mem.py)."
} | tee "$OUT"
