#!/bin/bash
# Developer helper: runs one real-program script natively (native.sh) and
# in Moat the way RealProgramTests.swift does, and diffs stdout and exit
# status.  usage: run-one.sh NAME.sh   (as root; MOAT_BIN picks the binary)
set -u
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../../.." && pwd)
name=$(basename "$1"); script=$(cat "$here/$name")
rootfs=$(bash "$repo/rootfs/debian-apps.sh") || exit 1
moat=${MOAT_BIN:-$repo/.build/debug/moat}
tmp=$repo/.cache/tmp/appsone/$name; rm -rf "$tmp"; mkdir -p "$tmp/s"
s=$(cut -d" " -f1 /proc/uptime)
"$here/native.sh" "$rootfs" "$tmp/s" "$script" >"$tmp/native.out" 2>"$tmp/native.err" </dev/null; echo "exit $?" >>"$tmp/native.out"
m=$(cut -d" " -f1 /proc/uptime)
(umask 022; timeout "${MOAT_APPS_TIMEOUT:-300}" "$moat" run --network none --rootfs "$rootfs" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env HOME=/root --env LANG=C \
    -- /bin/bash -c '/bin/bash -c "$1"; exit $?' run "$script") >"$tmp/moat.out" 2>"$tmp/moat.err" </dev/null
echo "exit $?" >>"$tmp/moat.out"
e=$(cut -d" " -f1 /proc/uptime)
printf '%s: native %.2fs, moat %.2fs\n' "$name" "$(echo "$m - $s" | bc)" "$(echo "$e - $m" | bc)"
diff -u "$tmp/native.out" "$tmp/moat.out" && echo "SAME ($(wc -l <"$tmp/native.out") lines)"
