#!/usr/bin/env bash
# Builds a Debian bookworm root filesystem for Moat's userland tests:
# debootstrap minbase plus bash, coreutils, python3, perl, gzip, procps, tar.
#
#   rootfs/debian.sh [OUTDIR]     (default: <repo>/.cache/rootfs/debian)
#
# Cached: a stamp keyed on this script's checksum skips the build when
# nothing changed. Built into a temporary directory and renamed into place,
# so an interrupted build never leaves a half rootfs. Nothing built is
# committed. Needs root, debootstrap (installed if missing) and a Debian
# mirror: the one this machine's apt uses (rootfs/apt-mirror.sh), or
# $MOAT_DEBIAN_MIRROR.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/.cache/rootfs/debian}"
mirror="$("$repo/rootfs/apt-mirror.sh" bookworm)"
packages="bash,coreutils,python3,perl,gzip,procps,tar"
stamp="$out.stamp"
want="$(sha256sum "$0" | cut -d' ' -f1) $packages"

if [ -d "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then echo "rootfs/debian.sh: needs root" >&2; exit 1; fi
command -v debootstrap >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
# Another builder may have finished while we waited.
if [ -d "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
tmp="$(mktemp -d "$out.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include="$packages" bookworm "$tmp/root" "$mirror" >"$tmp/log" 2>&1 || {
    echo "rootfs/debian.sh: debootstrap failed; last lines:" >&2; tail -5 "$tmp/log" >&2; exit 1; }
mkdir -p "$tmp/root/work"
echo moat > "$tmp/root/etc/hostname"
rm -rf "$out" "$stamp"
mv "$tmp/root" "$out"
echo "$want" > "$stamp"
