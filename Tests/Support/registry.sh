#!/usr/bin/env bash
# A throwaway OCI distribution registry on loopback for tests (Debian's
# docker-registry), and the test images pushed into it with skopeo.
#
#   registry.sh start DIR PORT [--auth USER:PASS]   serve on 127.0.0.1:PORT, state in DIR
#   registry.sh stop DIR                            stop it (idempotent)
#   registry.sh images                              build the test OCI layout; prints its path
#   registry.sh push PORT LAYOUT:TAG NAME:TAG [--auth USER:PASS]
#   registry.sh seed PORT [--auth USER:PASS]        push every test image as test/TAG:latest
#
# The test layout (cached under /var/cache/moat/images, keyed by the busybox
# binary and this script) has these tags, built from rootfs/busybox.sh's tree
# with umoci:
#   single  one layer: the busybox rootfs
#   multi   three layers: busybox; /data/{a, b (hard link to a), gone, opq/x,
#           link -> a}; then /data/gone deleted (a whiteout) and /data/opq
#           replaced by a fresh directory holding y
#   index   an OCI index: linux/arm64 -> multi, linux/amd64 -> single
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
cache=${MOAT_IMAGE_CACHE:-/var/cache/moat/images}

die() { echo "registry.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing (bash .ci/setup installs it)"; }

start() {
    local dir=$1 port=$2 auth=${4:-}
    [ "${3:-}" = "--auth" ] || auth=""
    need docker-registry
    mkdir -p "$dir/storage"
    stop "$dir" 2>/dev/null || true
    {
        echo "version: 0.1"
        echo "log: {level: warn}"
        echo "storage:"
        echo "  filesystem: {rootdirectory: $dir/storage}"
        echo "  delete: {enabled: true}"
        echo "http: {addr: 127.0.0.1:$port}"
        if [ -n "$auth" ]; then
            need htpasswd
            htpasswd -Bbn "${auth%%:*}" "${auth#*:}" > "$dir/htpasswd"
            echo "auth:"
            echo "  htpasswd: {realm: moat-test, path: $dir/htpasswd}"
        fi
    } > "$dir/config.yml"
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 < /dev/null &
    echo $! > "$dir/registry.pid"
    for _ in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
        case $code in 200|401) return 0 ;; esac
        kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || { cat "$dir/registry.log" >&2; die "registry exited"; }
        sleep 0.1
    done
    cat "$dir/registry.log" >&2
    die "registry did not answer on 127.0.0.1:$port"
}

stop() {
    local dir=$1 pid
    [ -f "$dir/registry.pid" ] || return 0
    pid=$(cat "$dir/registry.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/registry.pid"
}

# Prints the cached layout's path, building it when missing.
images() {
    need umoci; need python3
    bash "$repo/rootfs/busybox.sh" >/dev/null
    local rootfs="$repo/.cache/rootfs/busybox"
    local key
    key=$( { sha256sum < "$rootfs/bin/busybox"; sha256sum < "$0"; } | sha256sum | cut -c1-16)
    local out="$cache/test-$key"
    if [ -f "$out/index.json" ]; then echo "$out"; return 0; fi
    mkdir -p "$cache"
    exec 8>"$cache/test.lock"
    flock 8
    if [ -f "$out/index.json" ]; then echo "$out"; return 0; fi
    tmp="$cache/test-$key.tmp.$$"
    work=$(mktemp -d)
    trap 'rm -rf "${work:-}" "${tmp:-}"' EXIT
    umoci init --layout "$tmp" >/dev/null
    umoci new --image "$tmp:single" >/dev/null
    umoci unpack --image "$tmp:single" "$work/b" >/dev/null
    cp -a "$rootfs/." "$work/b/rootfs/"
    umoci repack --image "$tmp:single" "$work/b" >/dev/null
    umoci config --image "$tmp:single" --config.cmd /bin/sh --config.env PATH=/bin:/sbin:/usr/bin \
        --config.workingdir /work --config.user 0:0 >/dev/null
    # multi: two more layers on top of single.
    umoci config --image "$tmp:single" --tag multi >/dev/null
    rm -rf "$work/b"
    umoci unpack --image "$tmp:multi" "$work/b" >/dev/null
    mkdir -p "$work/b/rootfs/data/opq"
    echo hello > "$work/b/rootfs/data/a"
    ln "$work/b/rootfs/data/a" "$work/b/rootfs/data/b"
    echo bye > "$work/b/rootfs/data/gone"
    echo x > "$work/b/rootfs/data/opq/x"
    ln -s a "$work/b/rootfs/data/link"
    umoci repack --image "$tmp:multi" "$work/b" >/dev/null
    rm -rf "$work/b"
    umoci unpack --image "$tmp:multi" "$work/b" >/dev/null
    rm -f "$work/b/rootfs/data/gone"
    rm -rf "$work/b/rootfs/data/opq"; mkdir "$work/b/rootfs/data/opq"
    echo y > "$work/b/rootfs/data/opq/y"
    umoci repack --image "$tmp:multi" "$work/b" >/dev/null
    umoci config --image "$tmp:multi" --config.env MULTI=1 --config.cmd cat --config.cmd /data/a >/dev/null
    umoci gc --layout "$tmp"
    # index: a multi-platform index over the two manifests.
    python3 - "$tmp" <<'PY'
import hashlib, json, os, sys
layout = sys.argv[1]
index = json.load(open(os.path.join(layout, "index.json")))
by = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
def plat(m, arch):
    m = dict(m); m.pop("annotations", None); m["platform"] = {"architecture": arch, "os": "linux"}; return m
sub = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
       "manifests": [plat(by["multi"], "arm64"), plat(by["single"], "amd64")]}
data = json.dumps(sub, sort_keys=True).encode()
digest = hashlib.sha256(data).hexdigest()
open(os.path.join(layout, "blobs", "sha256", digest), "wb").write(data)
index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
    "digest": "sha256:" + digest, "size": len(data),
    "annotations": {"org.opencontainers.image.ref.name": "index"}})
json.dump(index, open(os.path.join(layout, "index.json"), "w"))
PY
    mv "$tmp" "$out"
    echo "$out"
}

push() {
    local port=$1 src=$2 dst=$3 creds=()
    need skopeo
    [ "${4:-}" = "--auth" ] && creds=(--dest-creds "$5")
    skopeo copy -q --all --dest-tls-verify=false "${creds[@]}" "oci:$src" "docker://127.0.0.1:$port/$dst" >/dev/null
}

seed() {
    local port=$1 layout t
    layout=$(images)
    for t in single multi index; do push "$port" "$layout:$t" "test/$t:latest" "${@:2}"; done
}

cmd=${1:-}; shift || true
case $cmd in
    start) [ $# -ge 2 ] || die "usage: start DIR PORT [--auth USER:PASS]"; start "$@" ;;
    stop) [ $# -ge 1 ] || die "usage: stop DIR"; stop "$1" ;;
    images) images ;;
    push) [ $# -ge 3 ] || die "usage: push PORT LAYOUT:TAG NAME:TAG [--auth USER:PASS]"; push "$@" ;;
    seed) [ $# -ge 1 ] || die "usage: seed PORT [--auth USER:PASS]"; seed "$@" ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
