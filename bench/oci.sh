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
#   bench/oci.sh [--moat PATH] [--rootfs DIR] [--out FILE] [--reps N] [--runtimes LIST] [--rows LIST]
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
ONLY=native,runc,runsc,moat
ROWS=run,oci-run,cycle

while [ $# -gt 0 ]; do
    case "$1" in
        --moat) MOAT=${2:?}; shift 2 ;;
        --rootfs) ROOTFS_SRC=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --reps) REPS=${2:?}; shift 2 ;;
        --runtimes) ONLY=${2:?}; shift 2 ;;
        --rows) ROWS=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

declare -A LABEL=([native]="native (chroot)" [moat]="Moat" [runc]="runc" [runsc]="runsc (ptrace)")
declare -A CMD VER RESULT
CMD[native]=$(command -v chroot || true)
CMD[moat]="$MOAT"; CMD[runc]=$(command -v runc || true); CMD[runsc]=$(command -v runsc || true)
FLAGS_runsc=(--platform=ptrace --network=none)
[ -n "${CMD[moat]}" ] && VER[moat]="git $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (work tree modified)') ($(basename "$(dirname "$MOAT")") build)"
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
        run/moat) C=("$MOAT" run --rootfs "$WORK/rootfs" -- /bin/true) ;;
        run/*|oci-run/*) C=("${CMD[$rt]}" "${flags[@]}" --root "$state" run --bundle "$WORK" "r$row") ;;
        cycle/*) C=(python3 "$CYCLE" "${CMD[$rt]}" "$state" "$WORK" c1 "${flags[@]}") ;;
    esac
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
IFS=, read -r -a RTS <<< "$ONLY"
IFS=, read -r -a ROWLIST <<< "$ROWS"
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
