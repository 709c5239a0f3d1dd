#!/usr/bin/env bash
# CPython's own regression tests (Debian's libpython3.11-testsuite: the
# `test` package of the python3 the real-program rootfs already has), module
# by module, natively and in Moat, compared case by case. An independent
# suite nobody wrote for Moat: it runs the interpreter's whole system
# interface (os, signals, subprocess, sockets, selectors, ptys, mmap, asyncio,
# multiprocessing...) the way the standard library uses it.
#
#   Tests/Conformance/cpython.sh rootfs                       print the rootfs, building it if missing
#   Tests/Conformance/cpython.sh run [-o OUT] [-s SIDES] [-t SECS] MODULE...
#   Tests/Conformance/cpython.sh table OUT                     Markdown table of a run
#   Tests/Conformance/cpython.sh check OUT                     fails if a case passing natively does not in Moat
#
# The rootfs is rootfs/debian-apps.sh's plus the test package, installed in
# a chroot from the Debian mirror that rootfs came from, cached by content in
# ${MOAT_CACHE:-/var/cache/moat}/rootfs/cpython-tests-<hash> (nothing of it is
# committed). run: each module runs alone (`python3 -m test -v MODULE`) under
# a watchdog of SECS (default 900): natively in a chroot of the rootfs in new
# mount, PID and network namespaces (loopback up, a fresh /tmp, /dev/shm and
# devpts), and in `moat run --network none` (loopback only, in-memory
# overlay): nothing either side sends leaves the machine. Logs:
# OUT/SIDE/MODULE.log.
# Cases that change host state natively (setting CLOCK_REALTIME) and the
# AF_VSOCK ones (they wait for a host vsock peer natively) are left out on
# both sides (--ignore). Needs root and a built `moat` (MOAT_BIN).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${MOAT_CACHE:-/var/cache/moat}/rootfs"
moat="${MOAT_BIN:-$repo/.build/debug/moat}"
ignores=(--ignore '*VSOCK*' --ignore '*settime*')

cmd_rootfs() {
    local base; base="$("$repo/rootfs/debian-apps.sh")"
    local hash; hash=$( { basename "$base"; sed -n '/^cmd_rootfs()/,/^}/p' "$0"; } | sha256sum | cut -c1-16)
    local out="$cache/cpython-tests-$hash"
    if [ -d "$out" ]; then echo "$out"; return; fi
    exec 9>"$cache/cpython-tests.lock"
    flock 9
    if [ -d "$out" ]; then echo "$out"; return; fi
    local tmp; tmp="$(mktemp -d "$cache/cpython-tests.build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    cp -a "$base" "$tmp/root"
    local root="$tmp/root"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # shellcheck disable=SC2016
    unshare -m --propagation private /bin/sh -c '
        mount -t proc proc "$1/proc" && mount -t tmpfs tmpfs "$1/tmp" &&
        chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C \
            /bin/sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends libpython3.11-testsuite && apt-get clean"
    ' sh "$root" >"$tmp/log" 2>&1 || { echo "cpython.sh: apt-get install failed:" >&2; tail -15 "$tmp/log" >&2; exit 1; }
    rm -f "$root/etc/resolv.conf"
    rm -rf "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin
    mv "$root" "$out"
    for old in "$cache"/cpython-tests-*; do [ "$old" = "$out" ] || [ "${old%.lock}" != "$old" ] || rm -rf "$old"; done
    echo "$out"
}

run_native() {   # ROOT MODULE LOG SECS
    # shellcheck disable=SC2016
    timeout -s KILL "$4" unshare -m -n -p -f --propagation private --mount-proc="$1/proc" /bin/sh -c '
        root=$1; shift
        ip link set lo up
        mount -t tmpfs tmpfs "$root/tmp"
        mount -t tmpfs -o mode=755 tmpfs "$root/dev"
        for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
            mknod -m 666 "$root/dev/${n%%:*}" c "$(echo "$n" | cut -d: -f2)" "${n##*:}"
        done
        mkdir "$root/dev/pts" "$root/dev/shm"
        mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
        ln -s pts/ptmx "$root/dev/ptmx"; ln -s /proc/self/fd "$root/dev/fd"
        ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"; ln -s /proc/self/fd/2 "$root/dev/stderr"
        mount -t tmpfs tmpfs "$root/dev/shm"
        exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 python3 -m test -v "$@"
    ' sh "$1" "$2" "${ignores[@]}" >"$3" 2>&1
}

run_moat() {     # ROOT MODULE LOG SECS
    timeout -s KILL "$4" "$moat" run --network none --rootfs "$1" --env PATH=/usr/bin:/bin --env HOME=/root --env LANG=C.UTF-8 \
        -- python3 -m test -v "$2" "${ignores[@]}" >"$3" 2>&1
}

cmd_run() {
    local out="" sides="native moat" secs=900
    while getopts "o:s:t:" o; do
        case $o in o) out=$OPTARG ;; s) sides=$OPTARG ;; t) secs=$OPTARG ;; *) exit 2 ;; esac
    done
    shift $((OPTIND - 1))
    [ $# -gt 0 ] || { echo "cpython.sh run: name the modules (e.g. test_os test_socket)" >&2; exit 2; }
    [ "$(id -u)" = 0 ] || { echo "cpython.sh: needs root" >&2; exit 1; }
    out="${out:-$repo/.cache/cpython/$(date -u +%Y%m%d-%H%M%S)}"
    local root; root="$(cmd_rootfs)"
    local side m rc
    for side in $sides; do
        mkdir -p "$out/$side"
        for m in "$@"; do
            rc=0
            "run_$side" "$root" "$m" "$out/$side/$m.log" "$secs" || rc=$?
            echo "$m $rc" >>"$out/$side/exits"
            echo "cpython.sh: $side $m exit $rc" >&2
        done
    done
    echo "$out"
}

# table OUT: the Markdown table; check OUT: exit 1, listing them, when a
# case that passes natively does not pass in Moat (CI's subset).
cmd_table() {
    python3 - "$1" "$2" <<'EOF'
import os, re, sys
mode, base = sys.argv[1], sys.argv[2]
case = re.compile(r'^(test\w*) \(([\w.]+)\)')
verdicts = ('ok', 'FAIL', 'ERROR', 'skipped', 'expected failure', 'unexpected success')
def parse(path):
    res = {}
    if not os.path.exists(path): return res
    lines = open(path, errors='replace').read().split('\n')
    for i, l in enumerate(lines):
        m = case.match(l)
        if not m or ' ... ' not in l: continue
        tail, j = l.split(' ... ', 1)[1].strip(), i
        # A case that printed something has its verdict on a later line.
        while not tail.startswith(verdicts) and j + 1 < len(lines) and j < i + 40:
            j += 1
            t = lines[j].strip()
            if t.startswith(verdicts) or case.match(lines[j]): tail = t if t.startswith(verdicts) else '?'; break
        v = next((x for x in verdicts if tail.startswith(x)), '?')
        res[m.group(2)] = v
    return res
def exits(side):
    p = f'{base}/{side}/exits'
    return dict(l.split() for l in open(p)) if os.path.exists(p) else {}
ne, me = exits('native'), exits('moat')
mods = [m for m in ne if m in me]
if mode == 'check':
    bad = []
    for m in mods:
        a, b = parse(f'{base}/native/{m}.log'), parse(f'{base}/moat/{m}.log')
        if not a: bad.append(f'{m}: no case ran natively (exit {ne[m]})')
        bad += [f'{m}: {k}: native ok, Moat {b.get(k, "did not run")}' for k, v in a.items() if v == 'ok' and b.get(k) != 'ok']
    print('\n'.join(bad) if bad else f'{len(mods)} modules: every case that passes natively passes in Moat')
    sys.exit(1 if bad else 0)
print('| module | cases | native ok | Moat ok | exit native / Moat | differences |')
print('|---|---:|---:|---:|---|---|')
tn = tm = tc = 0
notes = []
for m in mods:
    a, b = parse(f'{base}/native/{m}.log'), parse(f'{base}/moat/{m}.log')
    keys = sorted(set(a) | set(b))
    na = sum(v == 'ok' for v in a.values()); nb = sum(v == 'ok' for v in b.values())
    tn += na; tm += nb; tc += len(keys)
    diff = [(k, a.get(k, '-'), b.get(k, '-')) for k in keys if a.get(k) != b.get(k)]
    print(f'| {m} | {len(keys)} | {na} | {nb} | {ne[m]} / {me[m]} | {len(diff) or ""} |')
    notes += [f'- {m}: `{k}`: native {x}, Moat {y}' for k, x, y in diff]
print(f'| **all {len(mods)}** | {tc} | {tn} | {tm} | | {len(notes)} |')
if notes: print('\nCases whose verdicts differ:\n'); print('\n'.join(notes))
EOF
}

case "${1:-}" in
    rootfs) cmd_rootfs ;;
    run) shift; cmd_run "$@" ;;
    table) cmd_table table "$2" ;;
    check) cmd_table check "$2" ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
esac
