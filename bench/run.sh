#!/usr/bin/env bash
# bench/run.sh: Moat next to native execution, runc, a bare ptrace loop and
# gVisor's runsc (ptrace platform). Prints a Markdown report and writes it to --out.
#
#   bench/run.sh [--moat PATH] [--moat-base PATH] [--rootfs DIR] [--out FILE] [--quick]
#                [--reps N] [--runtimes LIST] [--rows LIST] [--mem auto|cgroup2|cgroup1|time]
#
# Start-up rows come from bench/oci.sh, idle memory from bench/mem.sh, real
# programs from bench/apps.sh, all called from here; a scaling section follows
# the main table. See bench/README.md for what each figure means. Run as root
# (chroot, cgroups, runc, runsc all need it). Extending: add a bench_*
# function and a line to ROWS.
set -uo pipefail

BENCH_NAME=run.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MEASURE="$BENCH_DIR/lib/measure.py"

# ---------------------------------------------------------------- options --
QUICK=0
REPS=
MOAT_BASE=
MEM_MODE=auto
ONLY=
ONLY_ROWS=

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

  --moat PATH      moat binary (default: $MOAT, else .build/release/moat, .build-rel/release/moat, .build/debug/moat)
  --moat-base PATH a second moat binary (another commit's build), measured in the same run as the
                   column moat-base, so that a change is judged before/after under the same conditions
  --rootfs DIR     rootfs to copy the programs into (default: rootfs/busybox.sh's output)
  --out FILE       report file (default: bench/results/<date>-<hostname>.md)
  --quick          fewer repetitions and shorter loops (a smoke test, not a result)
  --reps N         repetitions per cell (default 5, --quick 3)
  --runtimes LIST  comma-separated subset of: native,floor,floor-pinned,runc,moat,moat-ptrace,runsc
                   (default native,floor-pinned,runc,moat,runsc)
  --rows LIST      comma-separated subset of row keys (e.g. net_tcprr,ring,scale_threads); see ROWS
  --mem MODE       how peak memory is taken (default auto: cgroup v2, cgroup v1, GNU time)
EOF
}

bench_options "$@"
set -- "${BENCH_REST[@]}"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --mem) MEM_MODE=${2:?--mem needs a mode}; shift 2 ;;
        --mem=*) MEM_MODE=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    : "${REPS:=3}"
    N_NATIVE=500000     # getppid loop length, native
    N_SANDBOX=5000      # getppid loop length, moat and runsc
    N_FLOOR=20000       # round trips, ptrace floor
    N_FSOP=2000         # open/stat/read4k loop length
    FS_MIB=16           # sequential read/write size
    SCALE_SECS=0.3      # seconds per scaling run
else
    : "${REPS:=5}"
    N_NATIVE=2000000
    N_SANDBOX=20000
    N_FLOOR=100000
    N_FSOP=20000
    FS_MIB=64
    SCALE_SECS=1
fi
SCALE_REPS=3            # runs per scaling cell
N_RING=$([ "$QUICK" = 1 ] && echo 5000 || echo 20000)  # token-ring hops (64 threads)
N_FILES=1000            # small files created then deleted
N_FORK=$([ "$QUICK" = 1 ] && echo 50 || echo 200)   # fork+exec+wait iterations
N_TCPRR=$([ "$QUICK" = 1 ] && echo 2000 || echo 10000)  # TCP round trips
N_EPOLL_IDLE=500    # idle connections beside the active one (each end under a 1024-fd limit)
WRK_SECS=$([ "$QUICK" = 1 ] && echo 2 || echo 5)        # seconds per wrk run
WARMUP=1
TIMEOUT_SYSCALL=120     # seconds per run
TIMEOUT_START=60


[ "$(id -u)" = 0 ] || die "run as root (chroot, cgroups and runsc need it)"
PYTHON=$(command -v python3) || die "python3 is required"
command -v gcc >/dev/null || die "gcc is required (apt-get install gcc libc6-dev)"

# ------------------------------------------------------------- work area --
mkdir -p "$REPO/.cache/bench"
WORK=$(mktemp -d "$REPO/.cache/bench/run.XXXXXX") || die "cannot create a work dir"
# A physical path: runsc's sandbox cannot start from a TMPDIR reached
# through a symbolic link (its chroot setup fails with EOF on the sync file).
WORK=$(cd "$WORK" && pwd -P)
# runsc's sandbox (uid nobody) builds its chroot under $TMPDIR = $WORK/tmp.
chmod 755 "$WORK"
CG_TAG="run$$"
ID="rb$$-"              # container ids (runc), so that their cgroups can be found

cleanup() {
    local d p
    # Transient cgroups that a killed measure.py could not remove (ours only).
    for d in $(find /sys/fs/cgroup -maxdepth 8 -type d -name "moat-bench.$CG_TAG.*" 2>/dev/null); do
        [ -d "$d" ] || continue
        for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        rmdir "$d" 2>/dev/null
    done
    # runsc do keeps its state in $TMPDIR (= $WORK/tmp) and removes it on
    # exit; whatever a killed run left there goes with $WORK.
    bench_delete_containers runc "$WORK/runc-state"
    bench_remove_cgroups "$ID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
# A run killed with -9 could not clean up: remove the empty transient cgroups
# of runs whose shell is gone (moat-bench.runPID.*), so they do not pile up.
for d in $(find /sys/fs/cgroup -maxdepth 8 -type d -name 'moat-bench.run*' 2>/dev/null); do
    pid=${d##*/moat-bench.run}; pid=${pid%%.*}
    [ -n "$pid" ] && [ "$pid" != "$$" ] && ! kill -0 "$pid" 2>/dev/null && rmdir "$d" 2>/dev/null
done
trap 'exit 143' TERM

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$WORK/progs" "$WORK/tmp"

# ------------------------------------------------------------ build step --
log "building bench programs in $WORK/progs"
for src in "$BENCH_DIR"/programs/*.c; do
    name=$(basename "$src" .c)
    gcc -O2 -static -pthread -o "$WORK/progs/$name" "$src" || die "cannot build $src"
done
# The floor runs on the host as a tracer, not inside a rootfs: no -static.
gcc -O2 -o "$WORK/ptrace_floor" "$BENCH_DIR/ptrace_floor.c" || die "cannot build ptrace_floor.c"

bench_busybox_rootfs
[ -d "$ROOTFS_SRC" ] || die "rootfs $ROOTFS_SRC does not exist"
ROOT="$WORK/rootfs"
cp -a "$ROOTFS_SRC" "$ROOT" || die "cannot copy $ROOTFS_SRC"
mkdir -p "$ROOT/bench"
cp "$WORK"/progs/* "$ROOT/bench/"
[ -e "$ROOT/bin/true" ] || [ -L "$ROOT/bin/true" ] || die "rootfs has no /bin/true"
# File-system benchmarks read a file of the rootfs and write under /bench.
dd if=/dev/zero of="$ROOT/bench/data" bs=1M count="$FS_MIB" status=none || die "cannot create the data file"
mkdir -p "$ROOT/bench/files"

# -------------------------------------------------------------- runtimes --
# Columns of the table. A runtime may be unavailable; then its cells say why.
RUNTIMES=(native floor-pinned runc moat runsc)
declare -A RT_LABEL=(
    [native]="native (chroot)"
    [floor]="ptrace floor"
    [floor-pinned]="ptrace floor, 1 CPU"
    [runc]="runc"
    [moat]="moat"
    [moat-ptrace]="moat --platform ptrace"
    [moat-base]="moat, baseline build"
    [runsc]="runsc (ptrace)"
)
declare -A UNAVAIL=()

if [ -n "$ONLY" ]; then
    IFS=, read -r -a RUNTIMES <<<"$ONLY"
    for rt in "${RUNTIMES[@]}"; do
        [ -n "${RT_LABEL[$rt]:-}" ] || die "unknown runtime '$rt' (native,floor,floor-pinned,runc,moat,moat-ptrace,moat-base,runsc)"
    done
fi

CHROOT=$(command -v chroot) || UNAVAIL[native]="chroot not found"
RUNSC=$(command -v runsc) || UNAVAIL[runsc]="runsc not installed (apt-get install runsc)"
RUNC=$(command -v runc) || UNAVAIL[runc]="runc not installed (apt-get install runc)"
bench_find_moat
if [ -z "$MOAT" ]; then
    UNAVAIL[moat]="moat not built; swift build -c release, or pass --moat"
elif [ ! -x "$MOAT" ]; then
    UNAVAIL[moat]="$MOAT is not executable"
fi
[ -n "${UNAVAIL[moat]:-}" ] && UNAVAIL[moat-ptrace]=${UNAVAIL[moat]}
# --moat-base adds its column right after moat's (unless --runtimes chose).
if [ -n "$MOAT_BASE" ]; then
    [ -x "$MOAT_BASE" ] || die "--moat-base $MOAT_BASE is not executable"
    MOAT_BASE=$(realpath "$MOAT_BASE")
    if [ -z "$ONLY" ]; then
        rts=(); for rt in "${RUNTIMES[@]}"; do rts+=("$rt"); [ "$rt" = moat ] && rts+=(moat-base); done
        RUNTIMES=("${rts[@]}")
    fi
else
    UNAVAIL[moat-base]="no --moat-base given"
fi

# in_rootfs RUNTIME PROG [ARGS...]: set CMD to run PROG inside the rootfs copy.
in_rootfs() {
    local rt=$1; shift
    case "$rt" in
        native) CMD=("$CHROOT" "$ROOT" "$@") ;;
        # A bundle per command (runc run deletes the container when it ends).
        runc)   RUNC_N=$((${RUNC_N:-0} + 1))
                mkdir -p "$WORK/runc/$RUNC_N"
                bench_bundle "$WORK/runc/$RUNC_N" "$ROOT" false "$@"
                CMD=("$RUNC" --root "$WORK/runc-state" run --bundle "$WORK/runc/$RUNC_N" "$ID$RUNC_N") ;;
        moat)   CMD=("$MOAT" run --rootfs "$ROOT" -- "$@") ;;
        # Every syscall a ptrace stop (no seccomp-notification fast path).
        moat-ptrace) CMD=("$MOAT" run --platform ptrace --rootfs "$ROOT" -- "$@") ;;
        moat-base) CMD=("$MOAT_BASE" run --rootfs "$ROOT" -- "$@") ;;
        # --ignore-cgroups keeps runsc's gofer and sandbox in our transient
        # cgroup (otherwise it moves them into a /runsc-* cgroup of its own);
        # do -root runs the rootfs copy instead of the host's /. `do` keeps
        # its state in a runsc-do* directory under $TMPDIR (its --root state
        # directory is overridden) and removes it when the command ends.
        runsc)  CMD=("$RUNSC" --ignore-cgroups --platform=ptrace --network=none
                     do -root "$ROOT" "$@") ;;
        *) return 1 ;;
    esac
}

# The environment every measured command gets, and nothing else.
ENV_ARGS=(--env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
          --env "HOME=/root" --env "LANG=C" --env "TMPDIR=$WORK/tmp")

# Peak memory needs a memory cgroup or GNU time; install the latter if neither.
probe=$("$PYTHON" "$MEASURE" --probe --mem "$MEM_MODE")
if [ "$probe" = mem_method=none ] && [ "$MEM_MODE" = auto -o "$MEM_MODE" = time ] \
   && [ ! -x /usr/bin/time ] && command -v apt-get >/dev/null; then
    log "no memory cgroup here; installing GNU time for peak RSS"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >&2; }
fi

RESULTS_DIR="$BENCH_DIR/results"
mkdir -p "$RESULTS_DIR/raw"
STAMP_DATE=$(date +%Y-%m-%d)
HOST=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)
RAW="$RESULTS_DIR/raw/$STAMP_DATE-$HOST.jsonl"
: "${OUT:=$RESULTS_DIR/$STAMP_DATE-$HOST.md}"

# measure LABEL [measure.py options] -- CMD...: sets M_STATUS M_VALUE M_MEM
# M_MEM_METHOD M_ERROR from measure.py's key=value output.
measure() {
    local label=$1; shift
    local out
    M_STATUS=error M_VALUE= M_MEM= M_MEM_METHOD= M_ERROR="measure.py failed"
    out=$("$PYTHON" "$MEASURE" --reps "$REPS" --warmup "$WARMUP" --cg-tag "$CG_TAG" \
          --raw "$RAW" --label "$label" "${ENV_ARGS[@]}" "$@")
    while IFS= read -r line; do
        case "$line" in
            status=*) M_STATUS=${line#status=} ;;
            value=*) M_VALUE=${line#value=} ;;
            mem=*) M_MEM=${line#mem=} ;;
            mem_method=*) M_MEM_METHOD=${line#mem_method=} ;;
            error=*) M_ERROR=${line#error=} ;;
        esac
    done <<<"$out"
}

# ----------------------------------------------------------------- cells --
declare -A CELL=()       # CELL[row/runtime] = text
declare -A DONE=()       # DONE[function/runtime] = 1
declare -A NOTES=()      # extra lines for the Method section, keyed by topic

set_cell() { CELL["$1/$2"]=$3; }
na() { echo "n/a (error: $1)"; }
not_applicable() { echo "—"; }

# ------------------------------------------------------------ benchmarks --
# A benchmark is a function taking a runtime name and filling one or more
# rows with set_cell ROW RUNTIME TEXT. It runs once per runtime even when it
# fills several rows.

# Syscall round trip: getppid loop, µs per call.
bench_syscall() {
    local rt=$1
    case "$rt" in
        native|runc)  in_rootfs "$rt" /bench/getppid "$N_NATIVE" ;;
        floor)        CMD=("$WORK/ptrace_floor" "$N_FLOOR") ;;
        floor-pinned) CMD=("$WORK/ptrace_floor" -p "$N_FLOOR") ;;
        moat|moat-ptrace|moat-base|runsc) in_rootfs "$rt" /bench/getppid "$N_SANDBOX" ;;
    esac
    measure "syscall/$rt" --metric ns_per_call --scale 1000 --mem none \
        --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then
        set_cell syscall "$rt" "$M_VALUE"
    else
        set_cell syscall "$rt" "$(na "$M_ERROR")"
    fi
}

# Rows filled by another script for every runtime at once (the *_all
# functions run once; the main loop passes no runtime). Their cells are the
# scripts' own figures, read back from --tsv; a runtime they do not cover
# gets "—".
# fill_from_tsv FILE ROWMAP [AS]: ROWMAP is "theirs:ours,..."; runtimes as
# named here, or (AS) only the file's moat column, put in column AS.
fill_from_tsv() {
    local file=$1 map=$2 as=${3:-} row rt val pair
    [ -f "$file" ] || return 0
    while IFS=$'\t' read -r row rt val; do
        if [ -n "$as" ]; then [ "$rt" = moat ] || continue; rt=$as; fi
        for pair in ${map//,/ }; do
            [ "${pair%%:*}" = "$row" ] && set_cell "${pair#*:}" "$rt" "$val"
        done
    done <"$file"
}
# every_runtime ROWS TEXT: TEXT in every cell of ROWS not set yet (space-separated).
every_runtime() {
    local rows=$1 text=$2 r rt
    for r in $rows; do
        for rt in "${RUNTIMES[@]}"; do [ -n "${CELL[$r/$rt]:-}" ] || set_cell "$r" "$rt" "$text"; done
    done
}
sub_runtimes() {  # sub_runtimes LIST: the runtimes of LIST this run has and can use
    local rt out=()
    for rt in ${1//,/ }; do
        [[ " ${RUNTIMES[*]} " == *" $rt "* ]] && [ -z "${UNAVAIL[$rt]:-}" ] && out+=("$rt")
    done
    local IFS=,; echo "${out[*]}"
}

# Start-up (bench/oci.sh): `moat run --rootfs R -- /bin/true` against
# `runc run`/`runsc run` of a bundle of the same rootfs, and the OCI cycle
# create + start + wait + delete. $REPS*2 runs a cell (start-up is noisy).
bench_oci_all() {
    # moat-base in the same oci.sh run as the others (--moat-base), so that
    # a change's before and after share its conditions.
    local rts; rts=$(sub_runtimes native,runc,runsc,moat,moat-base)
    if [ -n "$rts" ]; then
        bash "$BENCH_DIR/oci.sh" --moat "${MOAT:-}" ${MOAT_BASE:+--moat-base "$MOAT_BASE"} --rootfs "$ROOTFS_SRC" \
            --reps $((REPS * 2)) --runtimes "$rts" --rows run,cycle --out "$WORK/oci.md" --tsv "$WORK/oci.tsv" >/dev/null \
            || log "oci.sh failed"
        fill_from_tsv "$WORK/oci.tsv" run:startup_run,cycle:startup_cycle
        [ -f "$WORK/oci.md" ] && SUBREPORTS+=("$WORK/oci.md")
    fi
    every_runtime "startup_run startup_cycle" "$(not_applicable)"
}

# Idle memory (bench/mem.sh): 1 and 20 sleeping sandboxes.
mem_rowmap() {  # mem.sh's row names for COUNTS ("1,20") to ours
    local n=${1#*,}
    echo "mem1_pss:mem1_pss,mem1_uss:mem1_uss,mem${n}_pss:memN_pss,mem${n}_uss:memN_uss,mem${n}_sbx:memN_sbx,mem_further_pss:mem_further_pss,mem_further_uss:mem_further_uss"
}
bench_mem_all() {
    local rts counts; rts=$(sub_runtimes runc,runsc,moat,moat-base)
    counts=$([ "$QUICK" = 1 ] && echo 1,4 || echo 1,20)
    if [ -n "$rts" ]; then
        bash "$BENCH_DIR/mem.sh" --moat "${MOAT:-}" ${MOAT_BASE:+--moat-base "$MOAT_BASE"} --rootfs "$ROOTFS_SRC" \
            --counts "$counts" --runtimes "$rts" --out "$WORK/mem.md" --tsv "$WORK/mem.tsv" >/dev/null || log "mem.sh failed"
        fill_from_tsv "$WORK/mem.tsv" "$(mem_rowmap "$counts")"
        [ -f "$WORK/mem.md" ] && SUBREPORTS+=("$WORK/mem.md")
    fi
    every_runtime "mem1_pss mem1_uss memN_pss memN_uss memN_sbx mem_further_pss mem_further_uss" "$(not_applicable)"
}

# Real programs (bench/apps.sh, the held-out set of the real-program suite):
# geometric mean of the slowdowns against native.
bench_apps_all() {
    local rts line; rts=$(sub_runtimes native,moat,runsc)
    if [[ ",$rts," == *",native,"* ]]; then
        bash "$BENCH_DIR/apps.sh" --moat "${MOAT:-}" --runtimes "$rts" --out "$WORK/apps.md" >/dev/null 2>"$WORK/apps.err" \
            || log "apps.sh failed: $(tail -1 "$WORK/apps.err")"
        if [ -f "$WORK/apps.md" ]; then
            SUBREPORTS+=("$WORK/apps.md")
            set_cell apps native "1.00x"
            # | **geometric mean** | | | **2.31x** | | **6.42x** |: one empty cell per seconds column.
            line=$(grep -F '**geometric mean**' "$WORK/apps.md")
            local i=0 rt
            for rt in ${rts//,/ }; do
                [ "$rt" = native ] && continue
                i=$((i + 1))
                val=$(awk -F'|' -v k=$((2 + 2 * i)) '{gsub(/[* ]/, "", $(k+1)); print $(k+1)}' <<<"$line")
                [ -n "$val" ] && set_cell apps "$rt" "$val"
            done
        fi
    fi
    every_runtime apps "$(not_applicable)"
}

# File-system operations (bench/programs/fsops.c), one row each. The file
# read is part of the rootfs (served by the Gofer under moat, by runsc's
# gofer under runsc); writes go wherever each runtime sends them by default
# (moat: its in-memory overlay; native: the host file system).
fs_cell() {
    local row=$1 rt=$2 metric=$3 scale=$4; shift 4
    case "$rt" in
        floor|floor-pinned) set_cell "$row" "$rt" "$(not_applicable)"; return ;;
    esac
    in_rootfs "$rt" /bench/fsops "$@"
    measure "$row/$rt" --metric "$metric" --scale "$scale" --mem none --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then set_cell "$row" "$rt" "$M_VALUE"; else set_cell "$row" "$rt" "$(na "$M_ERROR")"; fi
}
bench_fs_open()     { fs_cell fs_open "$1" ns_per_op 1000 open /bench/data "$N_FSOP"; }
bench_fs_stat()     { fs_cell fs_stat "$1" ns_per_op 1000 stat /bench/data "$N_FSOP"; }
bench_fs_read4k()   { fs_cell fs_read4k "$1" ns_per_op 1000 read4k /bench/data "$N_FSOP"; }
bench_fs_seqread()  { fs_cell fs_seqread "$1" mib_per_s 1 seqread /bench/data; }
bench_fs_seqwrite() { fs_cell fs_seqwrite "$1" mib_per_s 1 seqwrite /bench/files/big "$FS_MIB"; }
bench_fs_pipe()     { fs_cell fs_pipe "$1" mib_per_s 1 pipe - "$FS_MIB"; }
bench_fs_files()    { fs_cell fs_files "$1" ms_total 1 files /bench/files "$N_FILES"; }

# Real userland (the Debian rootfs from rootfs/debian.sh, copied once).
debian_root() {
    if [ -z "${DEB_ROOT:-}" ]; then
        DEB_ROOT=none
        local src="$REPO/.cache/rootfs/debian"
        if [ -x "$src/usr/bin/python3" ]; then
            cp -a "$src" "$WORK/debian" && DEB_ROOT="$WORK/debian"
        fi
    fi
    [ "$DEB_ROOT" != none ]
}
# in_debian RUNTIME PROG [ARGS...]: like in_rootfs, on the Debian copy.
in_debian() {
    local saved=$ROOT
    ROOT=$DEB_ROOT; in_rootfs "$@"; ROOT=$saved
}
userland_cell() {
    local row=$1 rt=$2; shift 2
    case "$rt" in
        floor|floor-pinned) set_cell "$row" "$rt" "$(not_applicable)"; return ;;
    esac
    if ! debian_root; then set_cell "$row" "$rt" "$(na "no Debian rootfs: run rootfs/debian.sh")"; return; fi
    in_debian "$rt" "$@"
    measure "$row/$rt" --mem none --timeout "$TIMEOUT_START" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then set_cell "$row" "$rt" "$M_VALUE"; else set_cell "$row" "$rt" "$(na "$M_ERROR")"; fi
}
bench_py_start()  { userland_cell py_start "$1" /usr/bin/python3 -c pass; }
bench_py_import() { userland_cell py_import "$1" /usr/bin/python3 -c "$PY_IMPORTS"; }
PY_IMPORTS="import json, asyncio, sqlite3, decimal, email.parser, http.client, argparse, logging, subprocess, threading"
# fork+exec+wait of /bin/true and a CPU loop: timed inside the program.
bench_forkexec() {
    local rt=$1
    case "$rt" in floor|floor-pinned) set_cell forkexec "$rt" "$(not_applicable)"; return ;; esac
    in_rootfs "$rt" /bench/forkexec "$N_FORK"
    measure "forkexec/$rt" --metric us_per_iter --mem none --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then set_cell forkexec "$rt" "$M_VALUE"; else set_cell forkexec "$rt" "$(na "$M_ERROR")"; fi
}
bench_cpuloop() {
    local rt=$1
    case "$rt" in floor|floor-pinned) set_cell cpuloop "$rt" "$(not_applicable)"; return ;; esac
    in_rootfs "$rt" /bench/cpuloop
    measure "cpuloop/$rt" --metric ms --mem none --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then set_cell cpuloop "$rt" "$M_VALUE"; else set_cell cpuloop "$rt" "$(na "$M_ERROR")"; fi
}

# Wake-ups: a token passed around 64 threads, each blocked on its own
# condition variable (bench/programs/ring.c), µs per hop.
bench_ring() {
    local rt=$1
    case "$rt" in floor|floor-pinned) set_cell ring "$rt" "$(not_applicable)"; return ;; esac
    in_rootfs "$rt" /bench/ring 64 "$N_RING"
    measure "ring/$rt" --metric us_per_hop --mem none --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then set_cell ring "$rt" "$M_VALUE"; else set_cell ring "$rt" "$(na "$M_ERROR")"; fi
}

# Scaling (a second table): bench/programs/scale.c runs T threads each doing
# one independent call for $SCALE_SECS s and prints the aggregate rate; and
# K sandboxes side by side, each one thread, their rates summed. Native,
# moat and runsc only (runc runs the calls on the host kernel, as native).
SCALE_THREADS="1 2 4 16 64"
SCALE_SANDBOXES="1 2 4"
SCALE_CALLS="getppid stat pread"
declare -A SCALE=()       # SCALE[threads|sandboxes/call/N/runtime] = median kops/s
scale_runtimes() { local r; r=$(sub_runtimes native,moat,moat-base,runsc); echo "${r//,/ }"; }
bench_scale_threads_all() {
    local call t rt reps
    for call in $SCALE_CALLS; do
        for t in $SCALE_THREADS; do
            for rt in $(scale_runtimes); do
                in_rootfs "$rt" /bench/scale "$call" "$t" "$SCALE_SECS" /bench/data
                log "scale: $call, $t threads, ${RT_LABEL[$rt]}"
                REPS=$SCALE_REPS measure "scale/$call/$t/$rt" --metric kops_per_s --mem none \
                    --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
                if [ "$M_STATUS" = ok ]; then SCALE[threads/$call/$t/$rt]=$M_VALUE
                else SCALE[threads/$call/$t/$rt]=$(na "$M_ERROR"); fi
            done
        done
    done
}
# side_by_side K: K copies of CMD at once; echoes the sum of their kops_per_s, or fails.
side_by_side() {
    local k=$1 i pids=() sum=0 v; shift
    for i in $(seq "$k"); do
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C \
            TMPDIR="$WORK/tmp" "$@" >"$WORK/sbs.$i" 2>&1 </dev/null &
        pids+=($!)
    done
    for i in $(seq "$k"); do wait "${pids[$((i - 1))]}" || return 1; done
    for i in $(seq "$k"); do
        v=$(sed -n 's/^kops_per_s=//p' "$WORK/sbs.$i"); [ -n "$v" ] || return 1
        sum=$(awk -v a="$sum" -v b="$v" 'BEGIN {print a + b}')
    done
    echo "$sum"
}
bench_scale_sandboxes_all() {
    local call k rt r vals
    for call in getppid pread; do
        for k in $SCALE_SANDBOXES; do
            for rt in $(scale_runtimes); do
                log "scale: $call, $k sandboxes side by side, ${RT_LABEL[$rt]}"
                in_rootfs "$rt" /bench/scale "$call" 1 "$SCALE_SECS" /bench/data
                side_by_side "$k" "${CMD[@]}" >/dev/null   # warm-up
                vals=()
                for r in $(seq "$SCALE_REPS"); do
                    v=$(side_by_side "$k" "${CMD[@]}") && vals+=("$v")
                done
                if [ "${#vals[@]}" -eq 0 ]; then SCALE[sandboxes/$call/$k/$rt]=$(na "a run failed: $(head -c 200 "$WORK/sbs.1" | tr '\n' ' ')")
                else SCALE[sandboxes/$call/$k/$rt]=$(printf '%s\n' "${vals[@]}" | sort -g | awk '{v[NR]=$1} END {printf "%.1f (%.1f–%.1f)", v[int((NR+1)/2)], v[1], v[NR]}')
                fi
            done
        done
    done
}

# Networking. TCP round trip: bench/programs/tcprr.c inside the sandbox
# (client and echo server both inside, on loopback).
bench_net_tcprr() {
    local rt=$1
    case "$rt" in
        floor|floor-pinned) set_cell net_tcprr "$rt" "$(not_applicable)"; return ;;
    esac
    in_rootfs "$rt" /bench/tcprr "$N_TCPRR"
    measure "net_tcprr/$rt" --metric ns_per_rt --scale 1000 --mem none --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then set_cell net_tcprr "$rt" "$M_VALUE"; else set_cell net_tcprr "$rt" "$(na "$M_ERROR")"; fi
}

# The same round trip with the echo side an epoll server that also holds
# $N_EPOLL_IDLE idle connections in its set (a server with many keep-alive
# clients): what each wait costs for the entries that did not move.
bench_net_epoll_idle() {
    local rt=$1
    case "$rt" in
        floor|floor-pinned) set_cell net_epoll_idle "$rt" "$(not_applicable)"; return ;;
    esac
    in_rootfs "$rt" /bench/tcprr "$N_TCPRR" "$N_EPOLL_IDLE"
    measure "net_epoll_idle/$rt" --metric ns_per_rt --scale 1000 --mem none --timeout "$TIMEOUT_SYSCALL" -- "${CMD[@]}"
    if [ "$M_STATUS" = ok ]; then set_cell net_epoll_idle "$rt" "$M_VALUE"; else set_cell net_epoll_idle "$rt" "$(na "$M_ERROR")"; fi
}

# HTTP requests/s: bench/programs/httpd.c inside the sandbox, wrk on the
# host (2 threads, 16 keep-alive connections, $WRK_SECS s per run). Row
# net_http_host: the server on the host's network (native; moat --network
# host; runsc --network=host); row net_http_pub: through a published port
# (moat -p, the launcher's proxy into the sandbox's own namespace).
http_run() {  # http_run ROW RT ADDR PORT CMD...: REPS wrk runs against ADDR:PORT, a server started by CMD
    local row=$1 rt=$2 addr=$3 port=$4; shift 4
    local pid i out rps vals=()
    "$@" >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 100); do (exec 3<>/dev/tcp/"$addr"/"$port") 2>/dev/null && break; sleep 0.1; done
    wrk -t2 -c16 -d1s "http://$addr:$port/" >/dev/null 2>&1   # warm-up
    for i in $(seq "$REPS"); do
        out=$(wrk -t2 -c16 -d"${WRK_SECS}s" "http://$addr:$port/" 2>&1)
        rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
        if ! grep -q "Non-2xx\|Socket errors: connect [1-9]" <<<"$out" && [ -n "$rps" ] && [ "$rps" -gt 0 ]; then vals+=("$rps"); fi
    done
    # Let the runtime end on TERM (runsc do removes its veth then); KILL
    # only if it is still there after 10 s.
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    if [ "${#vals[@]}" -eq 0 ]; then set_cell "$row" "$rt" "$(na "no successful wrk run")"; return; fi
    set_cell "$row" "$rt" "$(printf '%s\n' "${vals[@]}" | sort -n | awk '{v[NR]=$1} END {printf "%d (%d–%d)", v[int((NR+1)/2)], v[1], v[NR]}')"
}
bench_net_http() {
    local rt=$1 port=$((18000 + RANDOM % 2000)) secs=$((REPS * (WRK_SECS + 1) + 15))
    case "$rt" in
        floor|floor-pinned) set_cell net_http_host "$rt" "$(not_applicable)"; set_cell net_http_pub "$rt" "$(not_applicable)"; return ;;
    esac
    if ! command -v wrk >/dev/null; then
        set_cell net_http_host "$rt" "$(na "wrk not installed (apt-get install wrk)")"; set_cell net_http_pub "$rt" "$(na "wrk not installed")"; return
    fi
    case "$rt" in
        native) http_run net_http_host "$rt" 127.0.0.1 "$port" "$CHROOT" "$ROOT" /bench/httpd "$port" "$secs"
                set_cell net_http_pub "$rt" "$(not_applicable)" ;;
        moat)   http_run net_http_host "$rt" 127.0.0.1 "$port" "$MOAT" run --rootfs "$ROOT" --network host -- /bench/httpd "$port" "$secs"
                http_run net_http_pub "$rt" 127.0.0.1 "$port" "$MOAT" run --rootfs "$ROOT" -p "$port:8080" -- /bench/httpd 8080 "$secs" ;;
        moat-ptrace)
                http_run net_http_host "$rt" 127.0.0.1 "$port" "$MOAT" run --platform ptrace --rootfs "$ROOT" --network host -- /bench/httpd "$port" "$secs"
                set_cell net_http_pub "$rt" "$(not_applicable)" ;;
        moat-base)
                http_run net_http_host "$rt" 127.0.0.1 "$port" "$MOAT_BASE" run --rootfs "$ROOT" --network host -- /bench/httpd "$port" "$secs"
                http_run net_http_pub "$rt" 127.0.0.1 "$port" "$MOAT_BASE" run --rootfs "$ROOT" -p "$port:8080" -- /bench/httpd 8080 "$secs" ;;
        # runsc do always gives the sandbox a veth with its own address
        # (192.168.10.2); --network=host makes it use the host kernel's
        # stack (hostinet) behind it instead of netstack.
        runsc)  http_run net_http_host "$rt" 192.168.10.2 "$port" "$RUNSC" --ignore-cgroups --platform=ptrace --network=host do -root "$ROOT" /bench/httpd "$port" "$secs"
                set_cell net_http_pub "$rt" "$(not_applicable)" ;;
    esac
}

# Rows of the table: key|function|label|target|check. The check (moat's
# median against a number or another runtime's median) marks the target met
# or not: "le N", "le_x RUNTIME F" (≤ F times its median), "ge_x RUNTIME F",
# "within RUNTIME F" (|moat/it - 1| ≤ F); several joined by ";" must all hold.
# Keys starting with scale_ are the scaling section, not rows of the table.
ROWS=(
    "startup_run|bench_oci_all|Start-up: \`moat run --rootfs R -- /bin/true\` vs \`runc run\`/\`runsc run\` of a bundle of R, wall ms|moat ≤ runc|le_x runc 1"
    "startup_cycle|bench_oci_all|Start-up: OCI create + start + wait + delete, wall ms|moat ≤ runc|le_x runc 1"
    "mem1_pss|bench_mem_all|Idle memory, 1 sleeping sandbox: PSS summed over its host processes, MB|moat ≤ 15 MB|le 15"
    "mem1_uss|bench_mem_all|Idle memory, 1 sleeping sandbox: USS (private), MB|—|"
    "memN_pss|bench_mem_all|Idle memory, 20 sleeping sandboxes: PSS each, MB|—|"
    "memN_uss|bench_mem_all|Idle memory, 20 sleeping sandboxes: USS each (per process: misses what a sandbox's processes share), MB|—|"
    "memN_sbx|bench_mem_all|Idle memory, 20 sleeping sandboxes: pages only that sandbox maps (its USS as a whole), MB each|moat ≤ 4 MB|le 4"
    "mem_further_pss|bench_mem_all|Idle memory: PSS each further sandbox adds, MB|—|"
    "mem_further_uss|bench_mem_all|Idle memory: USS each further sandbox adds (per process, as above), MB|—|"
    "fs_seqread|bench_fs_seqread|Sequential read of a rootfs file (1 MiB reads), MiB/s|moat ≥ runsc and ≥ ½ native|ge_x runsc 1;ge_x native 0.5"
    "fs_seqwrite|bench_fs_seqwrite|Sequential write of a new file (1 MiB writes), MiB/s|moat ≥ runsc and ≥ ½ native|ge_x runsc 1;ge_x native 0.5"
    "fs_pipe|bench_fs_pipe|Pipe between two processes (1 MiB writes and reads), MiB/s|moat ≥ runsc and ≥ ½ native|ge_x runsc 1;ge_x native 0.5"
    "forkexec|bench_forkexec|fork + exec /bin/true + wait, µs per iteration|moat ≤ 1500 µs|le 1500"
    "net_tcprr|bench_net_tcprr|TCP round trip on loopback inside the sandbox (64 B each way), µs|moat ≤ 1.5× native|le_x native 1.5"
    "net_epoll_idle|bench_net_epoll_idle|TCP round trip, echo side in epoll_wait with $N_EPOLL_IDLE idle connections in its set, µs|moat ≤ 1.5× native|le_x native 1.5"
    "ring|bench_ring|Condvar token ring, 64 threads, µs per hop|moat ≤ 1.5× native|le_x native 1.5"
    "apps|bench_apps_all|Real programs (bench/apps.sh), wall time vs native, geometric mean|—|"
    "syscall|bench_syscall|Syscall round trip (getppid), µs/call|moat ≤ 15 µs|le 15"
    "fs_open|bench_fs_open|open+close of a rootfs file, µs|moat ≤ ½ runsc|le_x runsc 0.5"
    "fs_stat|bench_fs_stat|stat of a rootfs file, µs|moat ≤ ½ runsc|le_x runsc 0.5"
    "fs_read4k|bench_fs_read4k|4 KiB pread of a rootfs file, µs|moat ≤ ½ runsc|le_x runsc 0.5"
    "fs_files|bench_fs_files|Create then delete $N_FILES small files, ms|moat ≤ ½ runsc|le_x runsc 0.5"
    "py_start|bench_py_start|python3 -c pass (Debian rootfs), wall ms|—|"
    "py_import|bench_py_import|python3 importing 10 stdlib modules, wall ms|—|"
    "cpuloop|bench_cpuloop|CPU-bound loop (no syscalls), ms|moat within 5% of native|within native 0.05"
    "net_http_host|bench_net_http|HTTP requests/s from the host (wrk), server on the host network|—|"
    "net_http_pub|bench_net_http|HTTP requests/s from the host (wrk), through a published port (-p)|—|"
    "scale_threads|bench_scale_threads_all|Scaling: threads|—|"
    "scale_sandboxes|bench_scale_sandboxes_all|Scaling: sandboxes side by side|—|"
)

if [ -n "$ONLY_ROWS" ]; then
    kept=()
    for row in "${ROWS[@]}"; do
        [[ ",$ONLY_ROWS," == *",${row%%|*},"* ]] && kept+=("$row")
    done
    [ "${#kept[@]}" -gt 0 ] || die "--rows $ONLY_ROWS matches no row"
    ROWS=("${kept[@]}")
fi

# -------------------------------------------------------------------- run --
SUBREPORTS=()
for row in "${ROWS[@]}"; do
    IFS='|' read -r key fn label target check <<<"$row"
    if [[ "$fn" == *_all ]]; then
        [ -n "${DONE[$fn]:-}" ] && continue
        log "$fn"
        "$fn"
        DONE[$fn]=1
        for rt in "${RUNTIMES[@]}"; do
            [ -n "${UNAVAIL[$rt]:-}" ] && [ -z "${CELL[$key/$rt]:-}" ] && set_cell "$key" "$rt" "$(na "${UNAVAIL[$rt]}")"
        done
        continue
    fi
    for rt in "${RUNTIMES[@]}"; do
        if [ -n "${UNAVAIL[$rt]:-}" ]; then
            set_cell "$key" "$rt" "$(na "${UNAVAIL[$rt]}")"
            continue
        fi
        [ -n "${DONE[$fn/$rt]:-}" ] && continue
        log "$fn: ${RT_LABEL[$rt]}"
        "$fn" "$rt"
        DONE[$fn/$rt]=1
    done
done

# median CELL: the leading number of a cell ("12.3 (11.0–13.1)", "2.31x"), or nothing.
median() { sed -n 's/^\([0-9][0-9.]*\).*/\1/p' <<<"$1"; }
# verdict KEY CHECK: "met (…)" or "not met (…)" for moat's median, "—" without a check.
verdict() {
    local key=$1 check=$2 m spec op a b ref r ok=1 why=()
    [ -n "$check" ] || { echo "—"; return; }
    m=$(median "${CELL[$key/moat]:-}")
    [ -n "$m" ] || { echo "no figure"; return; }
    IFS=';' read -r -a specs <<<"$check"
    for spec in "${specs[@]}"; do
        read -r op a b <<<"$spec"
        case "$op" in
            le) r=$(awk -v m="$m" -v n="$a" 'BEGIN {print (m <= n) ? 1 : 0}'); why+=("$m vs ≤ $a") ;;
            le_x|ge_x|within)
                ref=$(median "${CELL[$key/$a]:-}")
                [ -n "$ref" ] || { why+=("no $a figure"); ok=0; continue; }
                case "$op" in
                    le_x) r=$(awk -v m="$m" -v x="$ref" -v f="$b" 'BEGIN {print (m <= x * f) ? 1 : 0}')
                          why+=("$m vs ≤ $(awk -v x="$ref" -v f="$b" 'BEGIN {printf "%g", x * f}') ($([ "$b" = 1 ] || echo "${b}× ")$a)") ;;
                    ge_x) r=$(awk -v m="$m" -v x="$ref" -v f="$b" 'BEGIN {print (m >= x * f) ? 1 : 0}')
                          why+=("$m vs ≥ $(awk -v x="$ref" -v f="$b" 'BEGIN {printf "%g", x * f}') ($([ "$b" = 1 ] || echo "${b}× ")$a)") ;;
                    within) r=$(awk -v m="$m" -v x="$ref" -v f="$b" 'BEGIN {d = m / x - 1; if (d < 0) d = -d; print (d <= f) ? 1 : 0}')
                          why+=("$m vs $ref ($a)") ;;
                esac ;;
        esac
        [ "$r" = 1 ] || ok=0
    done
    local joined; joined=$(printf '%s; ' "${why[@]}"); joined=${joined%; }
    if [ "$ok" = 1 ]; then echo "**met** ($joined)"; else echo "not met ($joined)"; fi
}

# ----------------------------------------------------------------- report --
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
virt=$(systemd-detect-virt 2>/dev/null || true)
if grep -qw hypervisor /proc/cpuinfo; then virt="${virt:+$virt, }hypervisor flag set"; fi
moat_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -1)" ]; then moat_rev="$moat_rev (work tree modified)"; fi
runsc_ver="not installed"
if [ -n "$RUNSC" ]; then runsc_ver=$("$RUNSC" --version 2>/dev/null | sed -n 1p); fi
gcc_ver=$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)
bb_ver=$("$ROOT/bin/busybox" 2>/dev/null | sed -n '1s/^BusyBox \([^ ]*\).*/\1/p')

report() {
    local row key fn label target rt line
    echo "# Moat benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $HOST"
    echo
    echo "## Machine"
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| CPUs (nproc) | $(nproc) |"
    echo "| CPU model | ${cpu_model:-unknown} |"
    echo "| virtualization | ${virt:-none detected} |"
    echo "| kernel | $(uname -sr) |"
    echo "| memory | $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
    echo "| date | $(date -u '+%Y-%m-%dT%H:%M:%SZ') |"
    echo "| load average (1, 5, 15 min) | $LOAD_BEFORE before the run, $(cut -d' ' -f1-3 /proc/loadavg) after (the machine may be shared) |"
    echo
    echo "## Versions"
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| moat | git $moat_rev; binary: ${MOAT:-not built}$(case "$MOAT" in */release/*) echo " (release build)" ;; */debug/*) echo " (debug build)" ;; esac) |"
    [ -n "$MOAT_BASE" ] && echo "| moat, baseline build | binary: $MOAT_BASE ($("$MOAT_BASE" --version 2>/dev/null | head -1 || echo "no --version")) |"
    echo "| runsc | $runsc_ver |"
    echo "| gcc (bench programs) | $gcc_ver |"
    echo "| rootfs | busybox ${bb_ver:-?} from $ROOTFS_SRC |"
    echo
    echo "## Results"
    echo
    echo "Each cell: median (min–max) of $REPS runs, after $WARMUP untimed warm-up run."
    [ "$QUICK" = 1 ] && echo "**--quick run: shorter loops and fewer runs; a smoke test, not a result.**"
    echo
    line="| benchmark |"
    for rt in "${RUNTIMES[@]}"; do line+=" ${RT_LABEL[$rt]} |"; done
    echo "$line target | moat against the target |"
    line="| --- |"
    for rt in "${RUNTIMES[@]}"; do line+=" ---: |"; done
    echo "$line --- | --- |"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r key fn label target check <<<"$row"
        [[ "$key" == scale_* ]] && continue
        line="| $label |"
        for rt in "${RUNTIMES[@]}"; do line+=" ${CELL[$key/$rt]:-—} |"; done
        echo "$line $target | $(verdict "$key" "$check") |"
    done
    echo
    scale_report
    local f
    for f in "${SUBREPORTS[@]}"; do
        echo "## From $(basename "$f" | sed 's/\.md$//').sh (called by run.sh)"
        echo
        sed '1{/^# /d}' "$f" | sed 's/^## /### /'
        echo
    done
    echo "## Method"
    echo
    echo "- **Syscall round trip**: \`bench/programs/getppid.c\` (static) calls \`syscall(SYS_getppid)\` N times and"
    echo "  prints the mean ns per call, timed with \`clock_gettime(CLOCK_MONOTONIC)\` inside the program"
    echo "  (start-up excluded). N = $N_NATIVE native, $N_SANDBOX under moat and runsc."
    echo "- **ptrace floor**: \`bench/ptrace_floor.c\`, a bare C tracer: the child loops on getppid, the parent"
    echo "  does PTRACE_SYSEMU, waitpid, PTRACE_GETREGS, PTRACE_SETREGS (fake rax) per call; N = $N_FLOOR round"
    echo "  trips after 2000 warm-up ones. \"1 CPU\" pins tracer and tracee to one CPU (\`-p\`). It is the least a"
    echo "  ptrace-based sandbox can pay per syscall."
    echo "- **Start-up** and **idle memory**: \`bench/oci.sh\` (wall time of the whole command, $((REPS * 2)) runs a cell) and"
    echo "  \`bench/mem.sh\` (\`sleep\` sandboxes, smaps_rollup summed over each sandbox's host processes), called by"
    echo "  this script; their own reports follow the tables. Moat's OCI cycle is \`moat create/start/delete\`."
    echo "- **runc**: each program of a row runs as \`runc run\` of a bundle of the same rootfs copy (writable, /proc, a"
    echo "  /dev tmpfs, new pid/net/ipc/uts/mount namespaces); figures timed inside the program are the host kernel's, as native."
    echo "- **Token ring**: \`bench/programs/ring.c\` passes a token around 64 threads, each waiting on its own pthread"
    echo "  condition variable, $N_RING hops; µs per hop (each hop wakes a blocked thread)."
    echo "- **Real programs**: \`bench/apps.sh\` (the held-out real-program scripts, one run each), geometric mean of"
    echo "  wall time against native."
    echo "- **File system**: \`bench/programs/fsops.c\` (static) times its own loop with CLOCK_MONOTONIC: open+close,"
    echo "  stat and 4 KiB pread of /bench/data (a $FS_MIB MiB file of the rootfs) $N_FSOP times each; a sequential read"
    echo "  of that file and a sequential write of $FS_MIB MiB to a new file, in 1 MiB calls; $FS_MIB MiB through a pipe"
    echo "  from a forked child to its parent (1 MiB writes and reads, fork and wait included); creating $N_FILES"
    echo "  100-byte files and then deleting them. Each runtime writes where it does by default: native to the host"
    echo "  file system, moat to its in-memory overlay, runsc to its own default."
    echo "- **Userland**: \`python3 -c pass\` and python3 importing \`$PY_IMPORTS\` on a copy of the Debian"
    echo "  bookworm rootfs from rootfs/debian.sh (wall time of the whole command, as for /bin/true);"
    echo "  \`bench/programs/forkexec.c\` forks, execs /bin/true and waits $N_FORK times (timed inside);"
    echo "  \`bench/programs/cpuloop.c\` runs 60 million xorshift iterations between two clock reads."
    echo "- **Networking**: \`bench/programs/tcprr.c\` (static) forks an echo server and times $N_TCPRR 64-byte"
    echo "  request/response round trips over loopback TCP (TCP_NODELAY) inside the sandbox (moat: its own network"
    echo "  namespace; runsc: --network=none, its netstack loopback); the epoll row runs it with the echo side an epoll"
    echo "  server holding $N_EPOLL_IDLE idle connections besides the active one. HTTP: \`bench/programs/httpd.c\` (static, one"
    echo "  thread, poll, keep-alive) in the sandbox; \`wrk -t2 -c16 -d${WRK_SECS}s\` on the host, $REPS runs after a 1 s"
    echo "  warm-up; the cell is the median (min–max) of Requests/sec. \"host network\": native chroot, moat"
    echo "  \`--network host\`, runsc \`--network=host\` (the host kernel's stack; \`runsc do\` still puts the"
    echo "  sandbox behind its own veth, 192.168.10.2, which wrk targets). \"published port\": moat \`-p PORT:8080\` (a proxy in the"
    echo "  launcher relays each connection into the sandbox's namespace); runsc \`do\` has no port publishing."
    echo "- Every command runs with a clean environment (PATH, HOME, LANG=C, TMPDIR) and stdin from /dev/null."
    echo "- Commands:"
    for rt in "${RUNTIMES[@]}"; do
        case "$rt" in
            floor) echo "  - ${RT_LABEL[$rt]}: \`\$WORK/ptrace_floor $N_FLOOR\`" ;;
            floor-pinned) echo "  - ${RT_LABEL[$rt]}: \`\$WORK/ptrace_floor -p $N_FLOOR\`" ;;
            *)  MOAT=${MOAT:-moat} RUNSC=${RUNSC:-runsc} in_rootfs "$rt" /bin/true
                echo "  - ${RT_LABEL[$rt]}: \`${CMD[*]//$WORK/\$WORK}\`" ;;
        esac
    done
    echo "  - \$WORK is a temporary directory under .cache/bench, removed afterwards; rootfs is a copy of the"
    echo "    rootfs above with the programs in /bench."
    echo "- runsc runs with \`--ignore-cgroups\` so that its processes stay in the measuring cgroup (this also"
    echo "  skips its cgroup set-up, 15–30 ms of its start-up here)."
    echo "- The unpinned ptrace floor, runsc and moat depend on where the scheduler puts tracer and tracee: on"
    echo "  this kind of nested VM a wake-up of an idle vCPU is slow, so their spread is wide; the pinned floor"
    echo "  is the stable reference."
    echo "- Raw samples: \`${RAW#$REPO/}\` (not committed)."
}

# scale_report: the scaling tables (kops/s, median (min–max) of $SCALE_REPS;
# each sandboxed figure's median also as a share of native's).
scale_report() {
    local kind call n rt line rts nat v
    rts=$(scale_runtimes)
    for kind in threads sandboxes; do
        [ -n "${DONE[bench_scale_${kind}_all]:-}" ] || continue
        if [ "$kind" = threads ]; then
            echo "## Scaling: threads of one process doing independent calls"
            echo
            echo "Aggregate thousands of calls per second over all threads (\`bench/programs/scale.c\`, ${SCALE_SECS} s a run,"
            echo "median (min–max) of $SCALE_REPS runs; in brackets, moat's and runsc's median against native's). This machine has $(nproc) CPUs."
        else
            echo "## Scaling: sandboxes side by side"
            echo
            echo "K copies of \`scale CALL 1 ${SCALE_SECS}\`, each its own sandbox (native: its own chroot), started together;"
            echo "their rates summed (thousands of calls per second, median (min–max) of $SCALE_REPS)."
        fi
        echo
        line="| call | $([ "$kind" = threads ] && echo threads || echo sandboxes) |"
        for rt in $rts; do line+=" ${RT_LABEL[$rt]} |"; done
        echo "$line"
        line="| --- | ---: |"; for rt in $rts; do line+=" ---: |"; done; echo "$line"
        local calls ns
        if [ "$kind" = threads ]; then calls=$SCALE_CALLS ns=$SCALE_THREADS; else calls="getppid pread" ns=$SCALE_SANDBOXES; fi
        for call in $calls; do
            for n in $ns; do
                line="| $call | $n |"
                nat=$(median "${SCALE[$kind/$call/$n/native]:-}")
                for rt in $rts; do
                    v=${SCALE[$kind/$call/$n/$rt]:-—}
                    if [ "$rt" != native ] && [ -n "$nat" ] && [ -n "$(median "$v")" ]; then
                        v+=" [$(awk -v a="$(median "$v")" -v b="$nat" 'BEGIN {printf "%.1f%%", 100 * a / b}')]"
                    fi
                    line+=" $v |"
                done
                echo "$line"
            done
        done
        echo
    done
}

report_text=$(report)
printf '%s\n' "$report_text"
mkdir -p "$(dirname "$OUT")"
printf '%s\n' "$report_text" >"$OUT"
log "report written to $OUT"
