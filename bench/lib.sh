# bench/lib.sh: what bench/run.sh, oci.sh and mem.sh share, sourced by each:
# the common options, logging, finding the moat binary and the busybox
# rootfs, a one-process OCI bundle, version strings, and removing the
# cgroups that runc and runsc leave behind for containers a benchmark killed.
#
# A script sets BENCH_NAME and its defaults (REPS, ONLY, ONLY_ROWS), then
#   bench_options "$@"; set -- "${BENCH_REST[@]}"
# and parses its own options from what is left.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
MOAT=${MOAT:-}
MOAT_BASE=${MOAT_BASE:-}
ROOTFS_SRC=${ROOTFS_SRC:-}
OUT=${OUT:-}
TSV=${TSV:-}

log() { echo "${BENCH_NAME:-bench}: $*" >&2; }
die() { log "$*"; exit 1; }

# The options every script takes:
#   --moat PATH  --rootfs DIR  --out FILE  --tsv FILE  --reps N  --runtimes LIST  --rows LIST
#   --moat-base PATH  a second moat binary (another commit's build, or a
#                     wrapper that sets an environment variable) measured in
#                     the same run as runtime moat-base: a change's before
# Unknown arguments are left in BENCH_REST, in order.
bench_options() {
    BENCH_REST=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --moat|--moat-base|--rootfs|--out|--tsv|--reps|--runtimes|--rows)
                [ $# -ge 2 ] || die "$1 needs a value"
                bench_set_option "${1#--}" "$2"; shift 2 ;;
            --moat=*|--moat-base=*|--rootfs=*|--out=*|--tsv=*|--reps=*|--runtimes=*|--rows=*)
                local k=${1%%=*}; bench_set_option "${k#--}" "${1#*=}"; shift ;;
            *) BENCH_REST+=("$1"); shift ;;
        esac
    done
}
# oci.sh and mem.sh: with --moat-base, runtime moat-base is measured right
# after moat (unless --runtimes named it or left moat out).
bench_add_base() {
    [ -n "$MOAT_BASE" ] || return 0
    [[ ",$ONLY," == *,moat-base,* ]] && return 0
    [[ ",$ONLY," == *,moat,* ]] || return 0
    ONLY=$(sed 's/\(^\|,\)moat\(,\|$\)/\1moat,moat-base\2/' <<< "$ONLY")
}
bench_set_option() {
    case "$1" in
        moat) MOAT=$2 ;;
        moat-base) MOAT_BASE=$(cd "$(dirname "$2")" && pwd -P)/$(basename "$2") ;;
        rootfs) ROOTFS_SRC=$2 ;;
        out) OUT=$2 ;;
        tsv) TSV=$2 ;;
        reps) REPS=$2 ;;
        runtimes) ONLY=$2 ;;
        rows) ONLY_ROWS=$2 ;;
    esac
}

# MOAT: the given binary, else the release build, else the debug build (absolute path).
bench_find_moat() {
    if [ -z "$MOAT" ]; then
        local c
        for c in "$REPO/.build/release/moat" "$REPO/.build-rel/release/moat" "$REPO/.build/debug/moat"; do
            [ -x "$c" ] && { MOAT=$c; break; }
        done
    fi
    [ -n "$MOAT" ] && [ -x "$MOAT" ] && MOAT=$(cd "$(dirname "$MOAT")" && pwd -P)/$(basename "$MOAT")
}

# "git <commit>[ (work tree modified)] (<release|debug> build)" for a report.
bench_moat_version() {
    local kind
    case "$MOAT" in */release/*) kind=release ;; */debug/*) kind=debug ;; *) kind="binary $MOAT" ;; esac
    # Sandbox processes run the companion binary when it is there (Sources/Sandbox/Launch.swift).
    local companion=", without moat-sandbox"
    [ -x "$MOAT-sandbox" ] && [ "${MOAT_SANDBOX_BINARY:-}" != self ] && companion=", sandboxes run moat-sandbox"
    echo "git $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (work tree modified)') ($kind build$companion)"
}

# ROOTFS_SRC: the given directory, else rootfs/busybox.sh's (built if missing).
bench_busybox_rootfs() {
    [ -n "$ROOTFS_SRC" ] || ROOTFS_SRC="$REPO/.cache/rootfs/busybox"
    [ -x "$ROOTFS_SRC/bin/busybox" ] || sh "$REPO/rootfs/busybox.sh" "$ROOTFS_SRC" >&2 || die "no rootfs (rootfs/busybox.sh failed)"
}

# bench_bundle DIR ROOTFS READONLY(true|false) ARG...: DIR/config.json runs ARGs
# as root from ROOTFS with /proc and a /dev tmpfs, in new pid, network, ipc,
# uts and mount namespaces.
bench_bundle() {
    python3 - "$@" <<'PY'
import json, sys
d, root, ro, args = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4:]
cfg = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"],
                "cwd": "/", "noNewPrivileges": True,
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
    "root": {"path": root, "readonly": ro},
    "hostname": "bench",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
    "linux": {"namespaces": [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount"]]},
}
json.dump(cfg, open(d + "/config.json", "w"), indent=1)
PY
}

# bench_remove_cgroups PREFIX: runc and runsc make a cgroup per container
# (named after its id, runsc's as runsc-<id> too) that stays when the
# container was killed rather than deleted; remove every one whose name
# starts with PREFIX (the caller's container ids all do), killing what is left in it.
bench_remove_cgroups() {
    local prefix=$1 d p
    [ -n "$prefix" ] || return 0
    for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -depth -type d \( -name "$prefix*" -o -name "runsc-$prefix*" \) 2>/dev/null); do
        for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        rmdir "$d" 2>/dev/null || { sleep 0.2; rmdir "$d" 2>/dev/null; }
    done
}

# bench_delete_containers RUNTIME_BINARY STATE_DIR: force-delete every container left in STATE_DIR.
bench_delete_containers() {
    local bin=$1 state=$2 d
    [ -d "$state" ] || return 0
    for d in "$state"/*/; do
        [ -d "$d" ] || continue
        "$bin" --root "$state" delete --force "$(basename "$d")" >/dev/null 2>&1
    done
}

# bench_tsv ROW RUNTIME VALUE: one machine-readable result line for run.sh.
bench_tsv() { [ -z "$TSV" ] || printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$TSV"; }
