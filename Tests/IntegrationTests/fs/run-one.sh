#!/bin/bash
# Developer helper: build one program and diff native vs moat on a busybox copy.
# usage: [MOAT_BIN=path/to/moat] run-one.sh NAME.c   (as root, from the repo)
set -u
src=$1; name=$(basename "$src" .c)
repo=$(cd "$(dirname "$0")/../../.." && pwd)
tmp=$repo/.cache/tmp/fsone/$name; rm -rf "$tmp"; mkdir -p "$tmp"
gcc -static -O1 -o "$tmp/prog" "$src" || exit 1
for side in native moat overlay; do
  cp -a "$repo/.cache/rootfs/busybox" "$tmp/$side"; mkdir -p "$tmp/$side/work"; cp "$tmp/prog" "$tmp/$side/work/prog"; echo "kept by the image" >"$tmp/$side/tmp/from-image"
done
unshare -m -i sh -c "mount -t proc proc $tmp/native/proc && for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9; do IFS=: read a b c <<E
\$n
E
mknod $tmp/native/dev/\$a c \$b \$c 2>/dev/null; done; mkdir -p $tmp/native/dev/pts; mount -t devpts devpts $tmp/native/dev/pts -o newinstance,ptmxmode=0666 && ln -sf pts/ptmx $tmp/native/dev/ptmx; cd / && chroot $tmp/native /bin/sh -c 'umask 022; cd /work && ./prog'" >"$tmp/native.out" 2>&1; echo "exit $?" >>"$tmp/native.out"
(umask 022; "${MOAT_BIN:-$repo/.build/debug/moat}" run --no-overlay --rootfs "$tmp/moat" --cwd /work -- /work/prog) >"$tmp/moat.out" 2>&1; echo "exit $?" >>"$tmp/moat.out"
(umask 022; "${MOAT_BIN:-$repo/.build/debug/moat}" run --rootfs "$tmp/overlay" --cwd /work -- /work/prog) >"$tmp/overlay.out" 2>&1; echo "exit $?" >>"$tmp/overlay.out"
diff -u "$tmp/native.out" "$tmp/moat.out" && echo "SAME ($(wc -l <"$tmp/native.out") lines)"
diff -u "$tmp/native.out" "$tmp/overlay.out" && echo "SAME with overlay"
