#!/bin/bash
# Developer helper: runs one real-program script natively and in Moat the
# way RealProgramTests.swift does, and diffs stdout and exit status.
# usage: run-one.sh NAME.sh   (as root, from anywhere; MOAT_BIN to pick a binary)
set -u
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../../.." && pwd)
name=$(basename "$1"); script=$(cat "$here/$name")
rootfs=$(bash "$repo/rootfs/debian-apps.sh") || exit 1
moat=${MOAT_BIN:-$repo/.build/debug/moat}
tmp=$repo/.cache/tmp/appsone/$name; rm -rf "$tmp"; mkdir -p "$tmp/s"
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
wrapper='/bin/bash -c "$1"; exit $?'
setup='set -e
L=$1; S=$2; SCRIPT=$3; R=$S/root; W=$4
mkdir -p "$S/up" "$S/wk" "$R"
mount -t overlay overlay -o "lowerdir=$L,upperdir=$S/up,workdir=$S/wk" "$R"
ip link set lo up
mount -t proc proc "$R/proc"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    set -- $n; mknod "$R/dev/$1" c "$2" "$3"; chmod 666 "$R/dev/$1"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts devpts "$R/dev/pts" -o newinstance,ptmxmode=0666
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
for i in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${i%%:*}" "$R/dev/${i#*:}"; done
cd /
umask 022
exec chroot "$R" /usr/bin/env -i PATH='"$path"' HOME=/root LANG=C /bin/bash -c "$W" run "$SCRIPT"'
s=$(date +%s.%N)
unshare -m -n -i -p -f --propagation private /bin/sh -c "$setup" setup "$rootfs" "$tmp/s" "$script" "$wrapper" \
    >"$tmp/native.out" 2>"$tmp/native.err" </dev/null; echo "exit $?" >>"$tmp/native.out"
m=$(date +%s.%N)
(umask 022; timeout "${MOAT_APPS_TIMEOUT:-300}" "$moat" run --network none --rootfs "$rootfs" --env PATH=$path --env HOME=/root --env LANG=C \
    -- /bin/bash -c "$wrapper" run "$script") >"$tmp/moat.out" 2>"$tmp/moat.err" </dev/null; echo "exit $?" >>"$tmp/moat.out"
e=$(date +%s.%N)
printf '%s: native %.2fs, moat %.2fs\n' "$name" "$(echo "$m - $s" | bc)" "$(echo "$e - $m" | bc)"
diff -u "$tmp/native.out" "$tmp/moat.out" && echo "SAME ($(wc -l <"$tmp/native.out") lines)"
