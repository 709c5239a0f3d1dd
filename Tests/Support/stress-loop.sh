#!/usr/bin/env bash
# Runs one program in Moat again and again beside busy loops, to bring out
# races that a quiet machine hides (a lost wake-up shows as a run that never
# ends). Each run is killed (SIGKILL to `moat run`) at BOUND seconds; the
# summary counts finished and killed runs and lists every run's wall time.
#
#   Tests/Support/stress-loop.sh [-n RUNS] [-j HOGS] [-t BOUND] [-p PLATFORM]
#                                [-r ROOTFS] -- CMD ARGS...
#
# Defaults: 20 runs, 3 hogs, 40 s, the fast platform, a copy of the Debian
# rootfs (rootfs/debian.sh) made once per call under .cache/tmp. CMD runs
# inside the sandbox; to run a file of the repo, give its path under /repo
# (the repo's Tests directory is copied to /repo/Tests in the copy), e.g.
#
#   Tests/Support/stress-loop.sh -n 20 -j 3 -- /bin/bash /repo/Tests/IntegrationTests/debian/24-python-thread-stress.sh
#
# Exit status: 0 if every run finished with status 0, 1 otherwise. A killed
# run's stdout and stderr are kept in the scratch directory, which is printed.
# Needs root and a built moat (MOAT_BIN, default .build/debug/moat).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
runs=20 hogs=3 bound=40 platform=fast rootfs=""
while getopts "n:j:t:p:r:" o; do
    case "$o" in
        n) runs=$OPTARG ;; j) hogs=$OPTARG ;; t) bound=$OPTARG ;;
        p) platform=$OPTARG ;; r) rootfs=$OPTARG ;;
        *) sed -n 2,20p "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "stress-loop.sh: no command (see the header)" >&2; exit 2; }
moat="${MOAT_BIN:-$repo/.build/debug/moat}"
[ -x "$moat" ] || { echo "stress-loop.sh: no moat at $moat (swift build --product moat --product moat-sandbox)" >&2; exit 2; }
if [ -z "$rootfs" ]; then
    bash "$repo/rootfs/debian.sh" >/dev/null
    rootfs="$repo/.cache/rootfs/debian"
fi
mkdir -p "$repo/.cache/tmp"
scratch="$(mktemp -d "$repo/.cache/tmp/stress-loop.XXXXXX")"
hog_pids=()
cleanup() {
    [ ${#hog_pids[@]} -eq 0 ] || kill "${hog_pids[@]}" 2>/dev/null || true
    rm -rf "$scratch/root"
}
trap cleanup EXIT
cp -a --reflink=auto "$rootfs" "$scratch/root"
mkdir -p "$scratch/root/repo" "$scratch/root/tmp"
cp -a "$repo/Tests" "$scratch/root/repo/Tests"
for _ in $(seq "$hogs"); do (while :; do :; done) & hog_pids+=($!); done

ok=0 killed=0 failed=0 times=()
for i in $(seq "$runs"); do
    start=$(date +%s%N)
    set +e
    timeout -s KILL "$bound" "$moat" run --platform "$platform" --rootfs "$scratch/root" -- "$@" \
        >"$scratch/run-$i.out" 2>"$scratch/run-$i.err"
    rc=$?
    set -e
    t=$(( ($(date +%s%N) - start) / 1000000 ))
    times+=("$((t / 1000)).$(printf %03d $((t % 1000)))")
    if [ $rc -eq 137 ] && [ $t -ge $((bound * 1000)) ]; then
        killed=$((killed + 1)); echo "run $i: killed at ${bound} s (output in $scratch/run-$i.*)"
    elif [ $rc -ne 0 ]; then
        failed=$((failed + 1)); echo "run $i: exit status $rc (output in $scratch/run-$i.*)"
    else
        ok=$((ok + 1)); rm -f "$scratch/run-$i.out" "$scratch/run-$i.err"
    fi
done
echo "platform $platform, $hogs hogs, bound ${bound} s: $ok of $runs finished, $killed killed, $failed failed"
echo "wall times (s): ${times[*]}"
[ $ok -eq "$runs" ] && rm -rf "$scratch" || echo "kept: $scratch"
[ $ok -eq "$runs" ]
