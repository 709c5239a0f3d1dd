#!/usr/bin/env bash
# bench/mem.sh: memory of idle sandboxes -- `sleep` in a busybox rootfs --
# summed over every host process of each sandbox (bench/lib/idle_mem.py reads
# their smaps_rollup), for 1 and for 20 sandboxes side by side, with Moat,
# runsc and runc. PSS splits shared pages among the processes that map them;
# USS is what a process alone holds; "each further" is (20 sandboxes - 1) / 19,
# what one more idle sandbox costs.
#
#   bench/mem.sh [--moat PATH] [--rootfs DIR] [--out FILE] [--counts 1,20] [--runtimes LIST]
#
# Run as root, on an otherwise quiet host (PSS depends on who else maps the
# same files). A runtime that is missing or fails says `n/a (...)`.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
IDLE="$BENCH_DIR/lib/idle_mem.py"

MOAT=${MOAT:-}
ROOTFS_SRC=
OUT=
COUNTS=1,20
ONLY=runc,runsc,moat

while [ $# -gt 0 ]; do
    case "$1" in
        --moat) MOAT=${2:?}; shift 2 ;;
        --rootfs) ROOTFS_SRC=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --counts) COUNTS=${2:?}; shift 2 ;;
        --runtimes) ONLY=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "mem.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { echo "mem.sh: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
if [ -z "$MOAT" ]; then
    for c in "$REPO/.build/release/moat" "$REPO/.build/debug/moat"; do [ -x "$c" ] && { MOAT=$c; break; }; done
fi
[ -n "$ROOTFS_SRC" ] || ROOTFS_SRC="$REPO/.cache/rootfs/busybox"
[ -x "$ROOTFS_SRC/bin/busybox" ] || bash "$REPO/rootfs/busybox.sh" >&2 || die "no rootfs"
[ -n "$OUT" ] || OUT="$BENCH_DIR/results/$(date -u +%F)-mem-$(hostname -s).md"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/moat-mem-bench.XXXXXX")
chmod 755 "$WORK"
cleanup() {
    for rt in runc runsc moat; do
        [ -d "$WORK/state-$rt" ] || continue
        for d in "$WORK/state-$rt"/*/; do
            [ -d "$d" ] || continue
            case $rt in
                runc) runc --root "$WORK/state-$rt" delete --force "$(basename "$d")" ;;
                runsc) runsc --root "$WORK/state-$rt" delete --force "$(basename "$d")" ;;
                moat) "$MOAT" --root "$WORK/state-$rt" delete --force "$(basename "$d")" ;;
            esac
        done 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

cp -a "$ROOTFS_SRC" "$WORK/rootfs"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
cfg = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/sleep", "3600"],
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/", "noNewPrivileges": True},
    "root": {"path": w + "/rootfs", "readonly": True},
    "hostname": "bench",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=65536k"]}],
    "linux": {"namespaces": [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount"]]},
}
json.dump(cfg, open(w + "/config.json", "w"), indent=1)
PY

declare -A LABEL=([moat]="Moat (\`moat run\`)" [runc]="runc (\`runc run\`)" [runsc]="runsc ptrace (\`runsc run\`)")
declare -A CMD VER RES
CMD[moat]="$MOAT"; CMD[runc]=$(command -v runc || true); CMD[runsc]=$(command -v runsc || true)
[ -n "${CMD[moat]}" ] && VER[moat]="git $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (work tree modified)') ($(basename "$(dirname "$MOAT")") build)"
[ -n "${CMD[runc]}" ] && VER[runc]=$(runc --version | sed -n 1p)
[ -n "${CMD[runsc]}" ] && VER[runsc]=$(runsc --version 2>/dev/null | sed -n 1p)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=, read -r -a RTS <<< "$ONLY"
IFS=, read -r -a NS <<< "$COUNTS"
for rt in "${RTS[@]}"; do
    [ -n "${CMD[$rt]:-}" ] || continue
    mkdir -p "$WORK/state-$rt"
    case $rt in
        moat) C=("$MOAT" run --rootfs "$WORK/rootfs" -- /bin/sleep 3600) ;;
        runc) C=(runc --root "$WORK/state-$rt" run --bundle "$WORK" "m{i}") ;;
        runsc) C=(runsc --platform=ptrace --network=none --root "$WORK/state-$rt" run --bundle "$WORK" "m{i}") ;;
    esac
    for n in "${NS[@]}"; do
        log "$rt: $n idle sandboxes"
        out=$(python3 "$IDLE" --count "$n" -- "${C[@]}")
        for k in status error procs pss_mb uss_mb pss_total_mb uss_total_mb; do
            RES[$rt/$n/$k]=$(sed -n "s/^$k=//p" <<< "$out")
        done
        cleanup_state=$(ls "$WORK/state-$rt" 2>/dev/null)
        for id in $cleanup_state; do
            [ -d "$WORK/state-$rt/$id" ] || continue
            "${CMD[$rt]}" --root "$WORK/state-$rt" delete --force "$id" >/dev/null 2>&1
        done
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
    done
    if [ "${#NS[@]}" -gt 1 ]; then
        printf '| each further sandbox: PSS |'; for rt in "${RTS[@]}"; do printf ' %s |' "$(further "$rt" pss)"; done; echo
        printf '| each further sandbox: USS |'; for rt in "${RTS[@]}"; do printf ' %s |' "$(further "$rt" uss)"; done; echo
    fi
    echo
    echo "Each sandbox runs \`/bin/sleep 3600\` from a read-only busybox rootfs; its host processes are the"
    echo "process tree of the command that started it (for Moat: launcher, Gofer, Sentry, master stub, the"
    echo "application's stub). Figures are taken once every tree has stopped changing (3 samples 0.5 s apart)."
} | tee "$OUT"
