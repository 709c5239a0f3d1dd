#!/usr/bin/env bash
# bench/oci.sh: the OCI lifecycle of a trivial container -- create, start,
# wait for /bin/true to exit, delete -- with Moat, runc and runsc side by
# side in one run, each driven the same way (bench/lib/oci_cycle.py), timed
# by bench/lib/measure.py. Prints a Markdown report and writes it to --out.
#
#   bench/oci.sh [--moat PATH] [--rootfs DIR] [--out FILE] [--reps N] [--runtimes LIST]
#
# Run as root. A runtime that is missing or fails says `n/a (...)` in its cell.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
MEASURE="$BENCH_DIR/lib/measure.py"
CYCLE="$BENCH_DIR/lib/oci_cycle.py"

MOAT=${MOAT:-}
ROOTFS_SRC=
OUT=
REPS=10
ONLY=moat,runc,runsc

while [ $# -gt 0 ]; do
    case "$1" in
        --moat) MOAT=${2:?}; shift 2 ;;
        --rootfs) ROOTFS_SRC=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --reps) REPS=${2:?}; shift 2 ;;
        --runtimes) ONLY=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "oci.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { echo "oci.sh: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

if [ -z "$MOAT" ]; then
    for c in "$REPO/.build/release/moat" "$REPO/.build-oci/release/moat" "$REPO/.build/debug/moat" "$REPO/.build-oci/debug/moat"; do
        [ -x "$c" ] && { MOAT=$c; break; }
    done
fi
[ -n "$ROOTFS_SRC" ] || ROOTFS_SRC="$REPO/.cache/rootfs/busybox"
[ -x "$ROOTFS_SRC/bin/busybox" ] || bash "$REPO/rootfs/busybox.sh" >&2 || die "no rootfs"
[ -n "$OUT" ] || OUT="$BENCH_DIR/results/$(date -u +%F)-oci-$(hostname -s).md"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/moat-oci-bench.XXXXXX")
cleanup() {
    for rt in moat runc runsc; do
        [ -d "$WORK/state-$rt" ] || continue
        for d in "$WORK/state-$rt"/*/; do
            [ -d "$d" ] || continue
            case $rt in
                moat) "$MOAT" --root "$WORK/state-$rt" delete --force "$(basename "$d")" ;;
                runc) runc --root "$WORK/state-$rt" delete --force "$(basename "$d")" ;;
                runsc) runsc --root "$WORK/state-$rt" delete --force "$(basename "$d")" ;;
            esac
        done 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# One bundle for all: runc wants a real (non-symlink) absolute rootfs.
cp -a "$ROOTFS_SRC" "$WORK/rootfs"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
cfg = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/", "noNewPrivileges": True,
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
    "root": {"path": w + "/rootfs", "readonly": True},
    "hostname": "bench",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
    "linux": {"namespaces": [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount"]]},
}
json.dump(cfg, open(w + "/config.json", "w"), indent=1)
PY

declare -A LABEL=([moat]="Moat" [runc]="runc" [runsc]="runsc (ptrace)")
declare -A CMD VER RESULT
CMD[moat]="$MOAT"; CMD[runc]=$(command -v runc || true); CMD[runsc]=$(command -v runsc || true)
FLAGS_runsc=(--platform=ptrace --network=none)
[ -n "${CMD[moat]}" ] && VER[moat]="git $(git -C "$REPO" rev-parse --short HEAD) ($(basename "$(dirname "$MOAT")") build)"
[ -n "${CMD[runc]}" ] && VER[runc]=$(runc --version | sed -n 1p)
[ -n "${CMD[runsc]}" ] && VER[runsc]=$(runsc --version 2>/dev/null | sed -n 1p)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=, read -r -a RTS <<< "$ONLY"
for rt in "${RTS[@]}"; do
    if [ -z "${CMD[$rt]:-}" ]; then RESULT[$rt]="n/a (not installed)"; continue; fi
    mkdir -p "$WORK/state-$rt"
    flags=()
    [ "$rt" = runsc ] && flags=("${FLAGS_runsc[@]}")
    log "$rt: $REPS cycles"
    out=$(python3 "$MEASURE" --reps "$REPS" --warmup 1 --timeout 60 --label "oci-cycle-$rt" \
          -- python3 "$CYCLE" "${CMD[$rt]}" "$WORK/state-$rt" "$WORK" c1 "${flags[@]}")
    if grep -q '^status=ok' <<< "$out"; then
        RESULT[$rt]=$(sed -n 's/^value=//p' <<< "$out")
    else
        RESULT[$rt]="n/a ($(sed -n 's/^error=//p' <<< "$out"))"
    fi
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
    echo "# OCI lifecycle: create + start + delete of a trivial container"
    echo
    echo "$(date -u +%F), $(nproc) vCPU, $cpu, Linux $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME");"
    echo "load average before the run: $LOAD_BEFORE (the machine may be shared)."
    echo
    echo "| runtime | version |"
    echo "| --- | --- |"
    for rt in "${RTS[@]}"; do echo "| ${LABEL[$rt]} | ${VER[$rt]:-not installed} |"; done
    echo
    printf '| |'; for rt in "${RTS[@]}"; do printf ' %s |' "${LABEL[$rt]}"; done; echo
    printf '| --- |'; for rt in "${RTS[@]}"; do printf ' ---: |'; done; echo
    printf '| cycle, ms, median (min-max) of %s |' "$REPS"
    for rt in "${RTS[@]}"; do printf ' %s |' "${RESULT[$rt]}"; done; echo
    echo
    echo "Each cycle: \`RUNTIME --root STATE create --bundle B --pid-file F c1\`, \`start c1\`,"
    echo "wait until the pid in F has exited (polled every 0.5 ms), \`delete c1\`; the bundle runs"
    echo "\`/bin/true\` from a busybox rootfs, read-only, with /proc and a /dev tmpfs. One untimed"
    echo "warm-up cycle first. runsc runs with --platform=ptrace --network=none. Moat's figure"
    echo "includes its Gofer and Sentry start-up, the stub, confinement and cgroup setup."
} | tee "$OUT"
