#!/usr/bin/env bash
# Wall time of the real programs (Tests/IntegrationTests/apps/NN-*.sh, the
# scripts of the real-program suite) natively, in Moat and in gVisor's runsc
# (ptrace platform), side by side in one run: seconds per program (median of
# --reps), the slowdown against native, the geometric mean of the slowdowns,
# and whether each sandbox's stdout and exit status matched native.
#
#   bench/apps.sh [--reps N] [--runtimes native,moat,runsc] [--only 01-nginx.sh,...]
#                 [--moat PATH] [--out FILE]
#
# As root. The rootfs is rootfs/debian-apps.sh's (built if missing). Native
# runs go through Tests/IntegrationTests/apps/native.sh; Moat runs
# `moat run --network none`; runsc runs `runsc --network=none
# --platform=ptrace do -root ROOTFS`. The report is Markdown on stdout and
# in bench/results/apps-<date>-<host>.md (or --out).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P); repo=$(cd "$here/.." && pwd -P)
apps=$repo/Tests/IntegrationTests/apps
reps=1; runtimes=native,moat,runsc; only=""; out=""
moat=${MOAT:-}
while [ $# -gt 0 ]; do
    case $1 in
        --reps) reps=$2; shift 2 ;;
        --runtimes) runtimes=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --moat) moat=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "bench/apps.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench/apps.sh: run as root" >&2; exit 1; }
if [ -z "$moat" ]; then
    for c in "$repo/.build/release/moat" "$repo/.build/debug/moat"; do [ -x "$c" ] && { moat=$c; break; }; done
fi
rootfs=$(bash "$repo/rootfs/debian-apps.sh")
work=$(mktemp -d "$repo/.cache/bench-apps.XXXXXX" 2>/dev/null || { mkdir -p "$repo/.cache"; mktemp -d "$repo/.cache/bench-apps.XXXXXX"; })
trap 'rm -rf "$work"' EXIT
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
wrapper='/bin/bash -c "$1"; exit $?'
runsc=$(command -v runsc || true)

# run RUNTIME SCRIPT_TEXT OUTFILE: runs once; prints the seconds taken, on
# /proc/uptime (monotonic: tests elsewhere may set the wall clock meanwhile).
run() {
    local rt=$1 text=$2 o=$3 s e rc
    s=$(cut -d" " -f1 /proc/uptime)
    case $rt in
        native) rm -rf "$work/ov"; mkdir -p "$work/ov"
                "$apps/native.sh" "$rootfs" "$work/ov" "$text" >"$o" 2>"$o.err" </dev/null && rc=0 || rc=$? ;;
        moat)   (umask 022; timeout 600 "$moat" run --network none --rootfs "$rootfs" --env PATH=$path --env HOME=/root \
                    --env LANG=C -- /bin/bash -c "$wrapper" run "$text") >"$o" 2>"$o.err" </dev/null && rc=0 || rc=$? ;;
        runsc)  (umask 022; cd "$work"; TMPDIR=$work timeout 600 "$runsc" --ignore-cgroups --platform=ptrace --network=none \
                    do -root "$rootfs" -- /usr/bin/env -i PATH=$path HOME=/root LANG=C /bin/bash -c "$wrapper" run "$text") \
                    >"$o" 2>"$o.err" </dev/null && rc=0 || rc=$? ;;
    esac
    e=$(cut -d" " -f1 /proc/uptime)
    echo "exit $rc" >>"$o"
    echo "$e - $s" | bc
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

IFS=, read -ra rts <<<"$runtimes"
declare -A avail
for rt in "${rts[@]}"; do
    case $rt in
        native) avail[$rt]=yes ;;
        moat) [ -n "$moat" ] && [ -x "$moat" ] && avail[$rt]=yes || avail[$rt]="no moat binary (swift build -c release --product moat)" ;;
        runsc) [ -n "$runsc" ] && avail[$rt]=yes || avail[$rt]="runsc not installed" ;;
        *) echo "bench/apps.sh: unknown runtime $rt" >&2; exit 2 ;;
    esac
done

report="# Real programs: wall time natively, in Moat and in runsc

$(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname), $(nproc) CPUs; median of $reps run(s) each; moat: ${moat:-none}; rootfs: $rootfs

| program |"
for rt in "${rts[@]}"; do report+=" $rt (s) |"; [ "$rt" = native ] || report+=" $rt slowdown |"; done
report+=$'\n|---|'
for rt in "${rts[@]}"; do report+="---:|"; [ "$rt" = native ] || report+="---:|"; done
report+=$'\n'
declare -A logsum count
for f in "$apps"/[0-9]*.sh; do
    name=$(basename "$f")
    if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
    text=$(cat "$f")
    declare -A secs=()
    row="| $name |"
    for rt in "${rts[@]}"; do
        if [ "${avail[$rt]}" != yes ]; then row+=" n/a |"; [ "$rt" = native ] || row+=" |"; continue; fi
        times=()
        for i in $(seq 1 "$reps"); do times+=("$(run "$rt" "$text" "$work/$rt.$name.out")"); done
        secs[$rt]=$(printf '%s\n' "${times[@]}" | median)
        cell=$(printf '%.2f' "${secs[$rt]}")
        if [ "$rt" != native ]; then
            if [ -f "$work/native.$name.out" ] && ! cmp -s "$work/native.$name.out" "$work/$rt.$name.out"; then cell+=" (output differs)"; fi
        fi
        row+=" $cell |"
        if [ "$rt" != native ]; then
            if [ -n "${secs[native]:-}" ]; then
                x=$(echo "${secs[$rt]} / ${secs[native]}" | bc -l)
                row+=" $(printf '%.2fx' "$x") |"
                logsum[$rt]=$(echo "${logsum[$rt]:-0} + l($x)" | bc -l); count[$rt]=$(( ${count[$rt]:-0} + 1 ))
            else row+=" |"; fi
        fi
        echo "bench/apps.sh: $name $rt ${secs[$rt]}s" >&2
    done
    report+="$row"$'\n'
    unset secs
done
row="| **geometric mean** |"
for rt in "${rts[@]}"; do
    row+=" |"
    [ "$rt" = native ] && continue
    if [ -n "${count[$rt]:-}" ]; then row+=" **$(printf '%.2fx' "$(echo "e(${logsum[$rt]} / ${count[$rt]})" | bc -l)")** |"; else row+=" |"; fi
done
report+="$row"$'\n'
for rt in "${rts[@]}"; do [ "${avail[$rt]}" = yes ] || report+=$'\n'"$rt unavailable: ${avail[$rt]}"; done
mkdir -p "$here/results"
: "${out:=$here/results/apps-$(date +%Y-%m-%d)-$(hostname).md}"
printf '%s\n' "$report" | tee "$out"
