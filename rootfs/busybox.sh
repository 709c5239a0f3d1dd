#!/bin/sh
# Build a minimal busybox root filesystem from Debian's busybox-static.
#
#   rootfs/busybox.sh [OUTDIR]
#
# OUTDIR defaults to $REPO/.cache/rootfs/busybox. The build is idempotent:
# a stamp file next to OUTDIR (OUTDIR.stamp) records the checksums of the
# busybox binary and of this script; when both still match, nothing is done.
# The tree is assembled in a temporary directory beside OUTDIR and renamed
# into place, so an interrupted build never leaves a half-built rootfs.
#
# Layout: /bin/busybox plus an absolute symlink (-> /bin/busybox) for every
# applet path printed by `busybox --list-full`; /etc/{passwd,group,hostname};
# /root, /home/user, /tmp (1777), /work (scratch dir for tests) and empty
# mount points /proc, /dev, /sys.
set -eu

BUSYBOX=${BUSYBOX:-/bin/busybox}

script_dir=$(cd "$(dirname "$0")" && pwd -P)
script_path="$script_dir/$(basename "$0")"
REPO=$(cd "$script_dir/.." && pwd -P)
OUTDIR=${1:-"$REPO/.cache/rootfs/busybox"}

if [ ! -x "$BUSYBOX" ]; then
    echo "busybox.sh: $BUSYBOX not found." >&2
    echo "Install Debian's statically linked busybox first:" >&2
    echo "    apt-get install busybox-static" >&2
    exit 1
fi

case "$OUTDIR" in
    /*) ;;
    *) OUTDIR="$(pwd -P)/$OUTDIR" ;;
esac
OUTDIR=${OUTDIR%/}
parent=$(dirname "$OUTDIR")
mkdir -p "$parent"

STAMP="$OUTDIR.stamp"
want="busybox=$(sha256sum "$BUSYBOX" | cut -d' ' -f1) script=$(sha256sum "$script_path" | cut -d' ' -f1)"

up_to_date() {
    [ -f "$STAMP" ] && [ -x "$OUTDIR/bin/busybox" ] && [ "$(cat "$STAMP")" = "$want" ]
}

if up_to_date; then
    exit 0
fi

# Serialize concurrent builders (several test processes may start at once).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUTDIR.lock"
    flock 9
    if up_to_date; then
        exit 0
    fi
    # Holding the lock, leftovers of builders that were SIGKILLed are stale.
    rm -rf "$OUTDIR".tmp.* "$OUTDIR".old.*
fi

tmp="$OUTDIR.tmp.$$"
old="$OUTDIR.old.$$"
cleanup() {
    rm -rf "$tmp" "$old"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$tmp"
mkdir -p "$tmp"
chmod 755 "$tmp"

# Directory skeleton.
for d in bin sbin usr usr/bin usr/sbin etc root home home/user tmp proc dev sys work var var/tmp; do
    mkdir -p "$tmp/$d"
done
chmod 755 "$tmp/bin" "$tmp/sbin" "$tmp/usr" "$tmp/usr/bin" "$tmp/usr/sbin" \
    "$tmp/etc" "$tmp/home" "$tmp/proc" "$tmp/dev" "$tmp/sys" "$tmp/var" "$tmp/work"
chmod 700 "$tmp/root"
chmod 755 "$tmp/home/user"
chown 1000:1000 "$tmp/home/user" 2>/dev/null || true
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"

# The binary and its applet links.
cp "$BUSYBOX" "$tmp/bin/busybox"
chmod 755 "$tmp/bin/busybox"
"$BUSYBOX" --list-full | while IFS= read -r applet; do
    case "$applet" in
        ''|bin/busybox) continue ;;
    esac
    mkdir -p "$tmp/$(dirname "$applet")"
    ln -sf /bin/busybox "$tmp/$applet"
done
# `--list-full` may omit sh on some builds; a rootfs without /bin/sh is useless.
[ -e "$tmp/bin/sh" ] || [ -L "$tmp/bin/sh" ] || ln -s /bin/busybox "$tmp/bin/sh"

# Accounts and identity.
cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$tmp/etc/group" <<'EOF'
root:x:0:
user:x:1000:
nogroup:x:65534:
EOF
echo moat >"$tmp/etc/hostname"
cat >"$tmp/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost
EOF
chmod 644 "$tmp/etc/passwd" "$tmp/etc/group" "$tmp/etc/hostname" "$tmp/etc/hosts"

# Publish: swap the finished tree into place.
rm -f "$STAMP"
if [ -e "$OUTDIR" ] || [ -L "$OUTDIR" ]; then
    mv "$OUTDIR" "$old"
fi
mv "$tmp" "$OUTDIR"
echo "$want" >"$STAMP.tmp.$$"
mv "$STAMP.tmp.$$" "$STAMP"
echo "busybox.sh: built $OUTDIR" >&2
