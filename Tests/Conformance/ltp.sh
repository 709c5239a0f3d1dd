#!/usr/bin/env bash
# The Linux Test Project's syscall tests, natively and in Moat, side by side.
#
#   Tests/Conformance/ltp.sh build [DIR|@FILE...] build LTP (only syscalls/DIR..., or the
#                                               directories of the tests FILE names)
#   Tests/Conformance/ltp.sh run [-o OUT] [-t SECS] [-j N] [-s SIDES] [NAME|@FILE...]
#                                               run tests from runtest/syscalls
#   Tests/Conformance/ltp.sh table OUT...        Markdown table from run outputs
#
# Source: the LTP mirror that the `fetch` tool leaves under /work/.mirror
# (or $LTP_GIT_DIR, a bare git dir). Nothing of LTP is committed: the tree is
# extracted, configured and built under $LTP_CACHE (default
# /var/cache/moat/ltp/<commit>), and rebuilt only when missing. The tests are
# linked statically (LDFLAGS=-static) so that they run in the busybox root
# file system that the other integration tests already use (and that needs no
# network to build): a dynamic build would need a glibc rootfs (debootstrap)
# whose libc also differs from the one the tests were compiled against.
#
# run: every test runs on each side of SIDES (default "native moat"; add
# runsc or use -s "native runsc moat" for all three), each under a watchdog
# of SECS (default 60):
#   native  chroot into a copy of the rootfs, in new mount/IPC/UTS/PID
#           namespaces (a shell is pid 1 as in Moat), fresh /proc, /tmp,
#           /dev/shm, device nodes;
#   moat    .build/debug/moat run --rootfs <the same copy> (in-memory overlay);
#   runsc   gVisor's `runsc --platform=ptrace --network=none do -root <the
#           same copy>` (a sandbox with a tmpfs overlay over that root), as
#           the reference for what a userspace kernel is expected to pass.
# Result per side: PASS (exit 0), FAIL (1), BROK (2), WARN (4), CONF (32,
# skipped: missing feature), other exit codes as EXIT<n>, HANG when the
# watchdog fired, HOSTONLY for a test not run natively because it changes
# host state no namespace isolates (the clock, swap, modules; see one_test). For a Moat HANG the test runs again with --strace and the
# tail of that log goes to OUT/hangs/<name>.strace. Lines "name native moat
# runsc" ("-" for a side not run) are written to OUT/results (default
# .cache/ltp/<date>); logs to OUT/logs.
# NAME may be a runtest name or a pattern ("pipe*"); @FILE reads names from a
# file (one per line, # comments). No names: every test of runtest/syscalls.
# Needs root (chroot, namespaces) and a built `moat` (swift build --product moat).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
git_dir="${LTP_GIT_DIR:-/work/.mirror/linux-test-project+ltp/repo}"

ltp_commit() { git --git-dir="$git_dir" rev-parse HEAD; }

# LTP's configure decides from what the machine has whether the io_* tests
# can use libaio (without it they build to skip): a build with libaio is
# kept apart from one without, so installing it never reuses the old build.
cache_dir() {
    local c; c="$(ltp_commit)"
    local aio=""; [ -e /usr/include/libaio.h ] && aio="-aio"
    echo "${LTP_CACHE:-/var/cache/moat/ltp/${c:0:12}$aio}"
}

need_tools() {
    local miss=()
    for p in autoconf automake make gcc pkg-config; do command -v "$p" >/dev/null || miss+=("$p"); done
    if [ ${#miss[@]} -gt 0 ]; then
        echo "ltp.sh: missing ${miss[*]} (run .ci/setup)" >&2; exit 1
    fi
}

# build [DIR...]: configure once, then build the library and the named
# syscall test directories (all of testcases/kernel/syscalls without names)
# and install them into $cache/install/opt/ltp. Failures of single tests to
# compile are tolerated (make -k); a missing library is not.
cmd_build() {
    [ -d "$git_dir" ] || { echo "ltp.sh: no LTP git dir at $git_dir (fetch github:linux-test-project/ltp)" >&2; exit 1; }
    need_tools
    local cache; cache="$(cache_dir)"
    mkdir -p "$cache"
    exec 8>"$cache/.lock"
    flock 8
    local src="$cache/src"
    if [ ! -f "$src/.configured" ]; then
        rm -rf "$src"; mkdir -p "$src"
        git --git-dir="$git_dir" archive "$(ltp_commit)" | tar -x -C "$src"
        (cd "$src" && make autotools >"$cache/autotools.log" 2>&1 &&
            ./configure LDFLAGS=-static >"$cache/configure.log" 2>&1) || {
            echo "ltp.sh: configure failed; see $cache/configure.log" >&2; exit 1; }
        touch "$src/.configured"
    fi
    local jobs; jobs="$(nproc)"
    if [ ! -f "$src/.lib-built" ]; then
        make -C "$src/lib" -j"$jobs" >"$cache/lib.log" 2>&1 || { echo "ltp.sh: lib build failed; see $cache/lib.log" >&2; exit 1; }
        make -C "$src/libs" -j"$jobs" -k >"$cache/libs.log" 2>&1 || true
        touch "$src/.lib-built"
    fi
    # @FILE: the directories holding the tests FILE names.
    local dirs=() d a n
    for a in "$@"; do
        if [ "${a#@}" != "$a" ]; then
            while read -r n; do
                n="${n%%#*}"; n="$(echo $n)"; [ -n "$n" ] || continue
                # NAME_64 (the 64-bit-offset build) comes from NAME.c.
                d="$(cd "$src/testcases/kernel/syscalls" && ls -d */"${n%_64}".c 2>/dev/null | head -1 || true)"
                [ -n "$d" ] || { echo "ltp.sh: no source for $n" >&2; exit 1; }
                dirs+=("${d%%/*}")
            done <"${a#@}"
        else dirs+=("$a"); fi
    done
    if [ $# -gt 0 ]; then mapfile -t dirs < <(printf '%s\n' "${dirs[@]}" | sort -u); fi
    if [ ${#dirs[@]} -eq 0 ]; then
        [ -f "$src/.all-built" ] || {
            make -C "$src/testcases/kernel/syscalls" -j"$jobs" -k >"$cache/syscalls.log" 2>&1 || true
            make -C "$src/testcases/kernel/syscalls" -k install DESTDIR="$cache/install" >"$cache/install.log" 2>&1 || true
            touch "$src/.all-built"
        }
    else
        for d in "${dirs[@]}"; do
            [ -f "$src/.built-$d" ] || [ -f "$src/.all-built" ] && continue
            [ -d "$src/testcases/kernel/syscalls/$d" ] || { echo "ltp.sh: no syscalls/$d in LTP" >&2; exit 1; }
            make -C "$src/testcases/kernel/syscalls/$d" -j"$jobs" -k >>"$cache/dirs.log" 2>&1 || true
            make -C "$src/testcases/kernel/syscalls/$d" -k install DESTDIR="$cache/install" >>"$cache/dirs.log" 2>&1 || true
            touch "$src/.built-$d"
        done
    fi
    mkdir -p "$cache/install/opt/ltp/runtest"
    cp "$src/runtest/syscalls" "$cache/install/opt/ltp/runtest/syscalls"
    echo "$cache/install/opt/ltp"
}

# The rootfs every side runs in: the busybox rootfs plus /opt/ltp (hard links
# into the install tree, so it is cheap to remake). One per run (removed when
# the run ends), so that runs in parallel never share or remove each other's.
make_root() {
    local cache="$1" root="$1/root.$$"
    sh "$repo/rootfs/busybox.sh" "$cache/busybox" >/dev/null
    rm -rf "$root"
    cp -a "$cache/busybox" "$root"
    mkdir -p "$root/opt" "$root/dev/shm" "$root/tmp" "$root/work"
    chmod 1777 "$root/tmp" "$root/dev/shm"
    cp -al "$cache/install/opt/ltp" "$root/opt/ltp"
    echo "$root"
}

verdict() {
    case "$1" in
        -1) echo HOSTONLY ;;
        0) echo PASS ;; 1) echo FAIL ;; 2) echo BROK ;; 4) echo WARN ;; 32) echo CONF ;;
        124|137) echo HANG ;; *) echo "EXIT$1" ;;
    esac
}

# The test must not be pid 1: LTP's library takes a parent pid of 1 for a
# sign that its main process died. A shell (pid 1 on both sides) waits for it.
wrap='cd /tmp; "$@"; exit $?'
export wrap
ltp_env=(TMPDIR=/tmp LTPROOT=/opt/ltp PATH=/opt/ltp/testcases/bin:/bin:/sbin:/usr/bin:/usr/sbin
         LTP_TIMEOUT_MUL="${LTP_TIMEOUT_MUL:-4}" LTP_COLORIZE_OUTPUT=0 HOME=/root)

# One test natively: a PID namespace makes it pid 1 and takes every process
# it left behind down with it when the watchdog fires.
run_native() {
    local root="$1" secs="$2" log="$3"; shift 3
    local envs=() e
    for e in "${ltp_env[@]}"; do envs+=("$e"); done
    timeout -s KILL "$secs" unshare -m -i -u -p -f --kill-child sh -c '
        root=$1; shift
        mount --make-rprivate /
        mount -t proc proc "$root/proc"
        mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
        mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
        mkdir -p "$root/dev/shm" "$root/dev/pts"
        mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
        for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
            IFS=: read a b c <<E
$n
E
            mknod -m 666 "$root/dev/$a" c "$b" "$c"
        done
        mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 && ln -sf pts/ptmx "$root/dev/ptmx"
        hostname moat
        cd "$root" && exec chroot "$root" /usr/bin/env -i "$@"' sh "$root" "${envs[@]}" /bin/sh -c "$wrap" sh "$@" \
        >"$log" 2>&1 </dev/null
}

run_moat() {
    local root="$1" secs="$2" log="$3"; shift 3
    local envs=() e
    for e in "${ltp_env[@]}"; do envs+=(--env "$e"); done
    timeout -s KILL "$secs" "${MOAT_BIN:-$repo/.build/debug/moat}" run --rootfs "$root" --cwd /tmp "${envs[@]}" -- /bin/sh -c "$wrap" sh "$@" \
        >"$log" 2>&1 </dev/null
}

# One test under gVisor (the runsc column): the same root, environment and
# wrapper shell. runsc is optional: without it the column reads "-".
run_runsc() {
    local root="$1" secs="$2" log="$3"; shift 3
    timeout -s KILL "$secs" "${RUNSC_BIN:-runsc}" --network=none --platform="${RUNSC_PLATFORM:-ptrace}" \
        do -root "$root" -cwd /tmp /usr/bin/env -i "${ltp_env[@]}" /bin/sh -c "$wrap" sh "$@" \
        >"$log" 2>&1 </dev/null
}

# Names to run: runtest lines "name binary args..." selected by the arguments.
select_tests() {
    local runtest="$1"; shift
    local pats=() a
    for a in "$@"; do
        if [ "${a#@}" != "$a" ]; then
            while read -r l; do l="${l%%#*}"; l="$(echo $l)"; [ -n "$l" ] && pats+=("$l"); done <"${a#@}"
        else pats+=("$a"); fi
    done
    grep -v '^#' "$runtest" | grep -v '^\s*$' | while read -r name rest; do
        if [ ${#pats[@]} -eq 0 ]; then echo "$name $rest"; continue; fi
        for a in "${pats[@]}"; do
            # shellcheck disable=SC2254
            case "$name" in $a) echo "$name $rest"; break ;; esac
        done
    done
}

cmd_run() {
    local out="" secs=60 jobs=1 sides="native moat"
    while [ $# -gt 0 ]; do
        case "$1" in
            -o) out="$2"; shift 2 ;; -t) secs="$2"; shift 2 ;; -j) jobs="$2"; shift 2 ;;
            -s) sides="$2"; shift 2 ;;
            *) break ;;
        esac
    done
    [ "$(id -u)" = 0 ] || { echo "ltp.sh run: needs root" >&2; exit 1; }
    case " $sides " in *" moat "*)
        [ -x "${MOAT_BIN:-$repo/.build/debug/moat}" ] || { echo "ltp.sh run: build moat first (swift build --product moat)" >&2; exit 1; } ;;
    esac
    case " $sides " in *" runsc "*)
        command -v "${RUNSC_BIN:-runsc}" >/dev/null || { echo "ltp.sh run: no runsc (apt-get install runsc)" >&2; exit 1; } ;;
    esac
    local cache; cache="$(cache_dir)"
    local ltp="$cache/install/opt/ltp"
    [ -d "$ltp/testcases/bin" ] || { echo "ltp.sh run: LTP not built (ltp.sh build)" >&2; exit 1; }
    out="${out:-$repo/.cache/ltp/$(date -u +%Y%m%d-%H%M%S)}"
    mkdir -p "$out/logs" "$out/hangs"
    local root; root="$(make_root "$cache")"
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" EXIT
    : >"$out/results"
    export -f run_native run_moat run_runsc verdict one_test
    export repo root out secs sides
    export LTP_ENV_STR="${ltp_env[*]}"
    # LTP_RUNTEST: another runtest file of the tree (containers: the
    # userns tests, built with `make -C testcases/kernel/containers/userns
    # install DESTDIR=$cache/install` in the cache's src).
    local runtest="$ltp/runtest/${LTP_RUNTEST:-syscalls}"
    [ -f "$runtest" ] || runtest="$cache/src/runtest/${LTP_RUNTEST:-syscalls}"
    select_tests "$runtest" "$@" >"$out/selected"
    xargs -a "$out/selected" -d '\n' -P "$jobs" -I{} bash -c 'one_test "$@"' _ {}
    sort -o "$out/results" "$out/results"
    echo "$out/results"
}

one_test() {
    read -r -a ltp_env <<<"$LTP_ENV_STR"
    # shellcheck disable=SC2086
    set -- $1
    local name="$1"; shift
    local bin="$1"
    local has_n=- has_m=- has_r=- s
    for s in $sides; do case $s in native) has_n=NOTBUILT ;; moat) has_m=NOTBUILT ;; runsc) has_r=NOTBUILT ;; esac; done
    if [ ! -x "$root/opt/ltp/testcases/bin/$bin" ]; then
        echo "$name $has_n $has_m $has_r" >>"$out/results"; return
    fi
    local nrc=0 mrc=0 rrc=0 nv=- mv=- rv=-
    # Tests that change what no namespace isolates (the wall clock, swap,
    # kernel modules, the kernel log, accounting) never run natively: a
    # test killed by the watchdog would leave the host changed (a killed
    # clock_settime03 once left it in 2038).
    case "$name" in
        clock_settime*|clock_adjtime*|adjtimex*|settimeofday*|stime*|leapsec*|syslog*|swapon*|swapoff*|\
        reboot*|init_module*|finit_module*|delete_module*|acct*|quotactl*|sysctl*|ioperm*|iopl*|vhangup*)
            nrc=-1 ;;
        *) [ "$has_n" = - ] || run_native "$root" "$secs" "$out/logs/$name.native" "$@" || nrc=$? ;;
    esac
    [ "$has_n" = - ] || nv="$(verdict $nrc)"
    if [ "$has_r" != - ]; then run_runsc "$root" "$secs" "$out/logs/$name.runsc" "$@" || rrc=$?; rv="$(verdict $rrc)"; fi
    if [ "$has_m" != - ]; then run_moat "$root" "$secs" "$out/logs/$name.moat" "$@" || mrc=$?; mv="$(verdict $mrc)"; fi
    if [ "$mv" = HANG ]; then
        # Again with the strace log: its tail shows where each thread is stuck.
        timeout -s KILL "$secs" "${MOAT_BIN:-$repo/.build/debug/moat}" run --rootfs "$root" --cwd /tmp --strace \
            --log "$out/hangs/$name.full" $(for e in "${ltp_env[@]}"; do printf -- '--env %s ' "$e"; done) -- /bin/sh -c "$wrap" sh "$@" \
            >/dev/null 2>&1 </dev/null || true
        tail -n 40 "$out/hangs/$name.full" >"$out/hangs/$name.strace" 2>/dev/null || true
        rm -f "$out/hangs/$name.full"
    fi
    echo "$name $nv $mv $rv" >>"$out/results"
}

# table RESULTS...: a Markdown table from results files (a later file
# overrides an earlier one for the same test). The reason for a difference
# comes from Tests/Conformance/ltp-reasons.txt ("name reason...", a name may
# end in * to cover a family); failing that, from the first TFAIL/TBROK/TCONF
# line of the test's Moat log next to its results file.
cmd_table() {
    local reasons="$repo/Tests/Conformance/ltp-reasons.txt" auto r n
    auto="$(mktemp)"
    for r in "$@"; do
        while read -r n _; do
            [ -f "$(dirname "$r")/logs/$n.moat" ] || continue
            l="$(grep -m1 -E 'TFAIL|TBROK|TCONF' "$(dirname "$r")/logs/$n.moat" | cut -c1-160 | tr '|' '/' || true)"
            [ -n "$l" ] && echo "$n Moat: \`${l}\`"
        done <"$r"
    done >"$auto"
    # Field by field: a later file's verdict overrides an earlier one's, "-"
    # (side not run) overrides nothing; old two-column files have no runsc.
    cat "$@" | awk '{ if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1; n_[$1] = "-"; m_[$1] = "-"; r_[$1] = "-" }
                      if ($2 != "" && $2 != "-") n_[$1] = $2; if ($3 != "" && $3 != "-") m_[$1] = $3
                      if ($4 != "" && $4 != "-") r_[$1] = $4 }
                    END { for (i = 1; i <= k; i++) print order[i], n_[order[i]], m_[order[i]], r_[order[i]] }' |
        sort -k1,1 | awk -v reasons="$reasons" -v auto="$auto" '
        BEGIN {
            while ((getline l < reasons) > 0) { if (l ~ /^#/ || l == "") continue; n = l; sub(/ .*/, "", n); r = l; sub(/^[^ ]+ +/, "", r)
                if (n ~ /\*$/) { pre[++np_] = substr(n, 1, length(n) - 1); prer[np_] = r } else why[n] = r }
            while ((getline l < auto) > 0) { n = l; sub(/ .*/, "", n); r = l; sub(/^[^ ]+ +/, "", r); if (!(n in au)) au[n] = r }
        }
        { nat[$1] = $2; mo[$1] = $3; rs[$1] = $4; names[++k] = $1
          if ($2 == "PASS") np++; if ($3 == "PASS") mp++; if ($4 == "PASS") rp++
          if ($2 == "PASS" && $3 == "PASS") bp++
          if ($4 == "PASS" && $3 != "PASS") rnm++
          if ($3 == "PASS" && $4 != "PASS") mnr++
          if ($2 != $3 || ($4 == "PASS" && $3 != "PASS")) nd++ }
        END {
            printf "Totals: %d tests; native PASS %d, runsc PASS %d, Moat PASS %d, native and Moat both PASS %d; %d differ.\n", k, np, rp, mp, bp, nd
            printf "runsc PASS but Moat not: %d; Moat PASS but runsc not: %d.\n\n", rnm, mnr
            print "| test | native | runsc | Moat | reason for the difference |"
            print "|---|---|---|---|---|"
            for (i = 1; i <= k; i++) {
                n = names[i]; r = ""
                if (nat[n] != mo[n] || (rs[n] == "PASS" && mo[n] != "PASS")) {
                    if (n in why) r = why[n]
                    else { for (j = 1; j <= np_; j++) if (index(n, pre[j]) == 1) { r = prer[j]; break } }
                    if (r == "") r = (n in au) ? au[n] : "not yet analysed"
                }
                printf "| %s | %s | %s | %s | %s |\n", n, nat[n], rs[n], mo[n], r
            }
        }'
    rm -f "$auto"
}

# Sourced (by gvisor-syscalls.sh, for run_native/run_moat/run_runsc and
# make_root) it only defines its functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    run) shift; cmd_run "$@" ;;
    table) shift; cmd_table "$@" ;;
    *) sed -n '2,30p' "$0" >&2; exit 2 ;;
esac
