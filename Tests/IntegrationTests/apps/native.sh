#!/bin/sh
# Runs one real-program script natively, the way the suite compares it:
#   native.sh ROOTFS SCRATCH SCRIPT_TEXT
# In private mount, network, IPC and pid namespaces: ROOTFS is the lower
# layer of a kernel overlay (upper and work directories in SCRATCH, which
# must exist), with procfs, a tmpfs /tmp, a minimal /dev (device nodes, a
# new devpts, /dev/shm) and loopback up; then
#   chroot ROOT env -i PATH=... HOME=/root LANG=C /bin/bash -c WRAPPER run SCRIPT_TEXT
# Every mount and daemon ends with the namespaces. Used by
# RealProgramTests.swift, run-one.sh and bench/apps.sh.
[ $# = 3 ] || { echo "usage: native.sh ROOTFS SCRATCH SCRIPT_TEXT" >&2; exit 2; }
exec unshare -m -n -i -p -f --propagation private /bin/sh -c '
set -e
L=$1; S=$2; SCRIPT=$3; R=$S/root
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
# The script runs in a child of pid 1, never as init itself (as in Moat).
exec chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C \
    /bin/bash -c "/bin/bash -c \"\$1\"; exit \$?" run "$SCRIPT"
' setup "$@"
