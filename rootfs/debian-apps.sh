#!/usr/bin/env bash
# Builds the root filesystem of the real-program suite
# (Tests/IntegrationTests/RealProgramTests.swift): Debian bookworm minbase
# plus the servers and toolchains people put in containers, and the static
# Go test program (Tests/IntegrationTests/apps/go, built on the host with
# Debian's golang-go, CGO_ENABLED=0) at /usr/local/bin/gotest.
#
#   rootfs/debian-apps.sh          prints the rootfs directory, building it if missing
#
# Cached by content under ${MOAT_CACHE:-/var/cache/moat}/rootfs/: the
# directory's name carries a hash of this script, the package list and the
# Go sources, so any change builds a new one (older ones are removed). Built
# in a temporary directory under flock and renamed into place. Needs root,
# debootstrap and golang-go (installed if missing), and the mirror this
# machine's apt uses (rootfs/apt-mirror.sh). Nothing built is committed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MOAT_CACHE:-/var/cache/moat}/rootfs"
packages="bash coreutils procps util-linux findutils grep sed gawk diffutils curl ca-certificates \
nginx-light redis-server redis-tools postgresql nodejs openjdk-17-jdk-headless \
gcc make libc6-dev git openssl tar gzip xz-utils python3"
gosrc="$repo/Tests/IntegrationTests/apps/go"
hash=$( { cat "$0"; echo "$packages"; cat "$gosrc"/*.go; } | sha256sum | cut -c1-16)
out="$cache/debian-apps-$hash"
if [ -d "$out" ]; then echo "$out"; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "rootfs/debian-apps.sh: needs root" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null 2>&1 || apt-get install -y -qq debootstrap >/dev/null
[ -x /usr/lib/go/bin/go ] || apt-get install -y -qq golang-go >/dev/null
gobin=/usr/lib/go/bin/go
mirror="$("$repo/rootfs/apt-mirror.sh" bookworm)"
mkdir -p "$cache"
exec 9>"$cache/debian-apps.lock"
flock 9
if [ -d "$out" ]; then echo "$out"; exit 0; fi
tmp="$(mktemp -d "$cache/debian-apps.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log="$tmp/log"
fail() { echo "rootfs/debian-apps.sh: $1; last lines of the log:" >&2; tail -15 "$log" >&2; exit 1; }
debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$log" 2>&1 || fail "debootstrap failed"
root="$tmp/root"
# No service starts while installing (policy-rc.d), and the install runs in
# a private mount namespace so its /proc never outlives it.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
# shellcheck disable=SC2016
unshare -m --propagation private /bin/sh -c '
    mount -t proc proc "$1/proc" && mount -t tmpfs tmpfs "$1/tmp" &&
    chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C \
        /bin/sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $2 && apt-get clean"
' sh "$root" "$packages" >>"$log" 2>&1 || fail "apt-get install failed"
rm -f "$root/usr/sbin/policy-rc.d"
rm -rf "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin
# The static Go program.
gowork="$tmp/go"
mkdir -p "$gowork"
cp "$gosrc"/*.go "$gowork/"
(cd "$gowork" && env HOME="$tmp" GOCACHE="$tmp/gocache" GOPATH="$tmp/gopath" GO111MODULE=off CGO_ENABLED=0 \
    "$gobin" build -o "$root/usr/local/bin/gotest" . ) >>"$log" 2>&1 || fail "go build failed"
mkdir -p "$root/work"
echo moat > "$root/etc/hostname"
mv "$root" "$out"
# Older builds of this rootfs are no longer needed.
for old in "$cache"/debian-apps-*; do [ "$old" = "$out" ] || rm -rf "$old"; done
echo "$out"
