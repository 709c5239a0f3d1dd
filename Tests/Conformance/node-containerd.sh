#!/usr/bin/env bash
# The node agent's suite (Tests/NodeAgentTests) with the agent pointed at
# containerd 1.6 + runc's CRI instead of `moat cri`: proof that `moat node`
# speaks standard CRI (issue 13's acceptance). containerd runs as critest.sh
# starts it (own config, root, state and socket under OUT; CNI bridge), inside
# one `unshare --net --mount --pid --ipc` namespace made here together with the
# loopback registry it pulls from and the test processes (control plane,
# agent, kubectl): when the script ends, however it ends, the kernel kills
# everything left in it, and the runtime cgroups that appeared are removed.
#
#   node-containerd.sh OUT [CLASSES]   (XCTest classes, comma-separated; default:
#                                      NodeAgentTests.NodeAgentTests)
#
# Images: the tests name `busybox` and `python`, i.e. docker.io/library/...;
# containerd's docker.io mirror is the loopback registry, holding the busybox
# test rootfs (critest.sh's image) and the Debian rootfs with python3
# (rootfs/debian-apps.sh); the python Deployment says imagePullPolicy: Never,
# so `python` is pulled into containerd's k8s.io namespace (ctr) beforehand,
# as --rootfs-image puts it in `moat cri`. Needs root, containerd (with ctr),
# runc, skopeo, umoci, docker-registry, kubectl and the built tests (`swift
# build --build-tests`): it runs the test bundle
# (.build/debug/moatPackageTests.xctest) directly, so a build running meanwhile
# does not block it. A missing prerequisite skips the run (exit 0), and fails
# it under CI=true. test.sh runs this script after the XCTest suites.
set -euo pipefail

CRITEST_SH_LIB=1 source "$(cd "$(dirname "$0")" && pwd -P)/critest.sh"

# An OCI layout tag `python` in $1 from the Debian rootfs with python3.
python_layout() {
    local L=$1 rootfs work
    rootfs=$(bash "$repo/rootfs/debian-apps.sh" | tail -1)
    [ -x "$rootfs/usr/bin/python3" ] || die "no Debian rootfs with python3 (rootfs/debian-apps.sh)"
    work=$(mktemp -d)
    umoci new --image "$L:python" >/dev/null
    umoci unpack --image "$L:python" "$work/b" >/dev/null
    cp -a "$rootfs/." "$work/b/rootfs/"
    umoci repack --image "$L:python" "$work/b" >/dev/null
    umoci config --image "$L:python" --config.env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --config.cmd python3 >/dev/null
    rm -rf "$work"
}

node_inner() {
    out=$1; filter=$2
    ip link set lo up
    mkdir -p /run/netns && mount -t tmpfs -o mode=755 node-netns /run/netns
    reg="$out/registry"; d="$out/run-containerd"
    mkdir -p "$reg"
    trap 'stop_containerd "$d"; bash "$repo/Tests/Support/registry.sh" stop "$reg"; kill_rest; remove_cgroups "$out/cgroups.before"' EXIT
    trap 'exit 130' INT TERM HUP
    bash "$repo/Tests/Support/registry.sh" start "$reg" "$port"
    local L="$out/layout" t
    for t in busybox:library/busybox:latest pause:pause:3.9 python:library/python:latest; do
        skopeo copy -q --dest-tls-verify=false "oci:$L:${t%%:*}" "docker://127.0.0.1:$port/${t#*:}" >/dev/null
    done
    rm -rf "$d"; mkdir -p "$d"
    start_containerd "$d" runc
    # Present before the pods ask for it (imagePullPolicy: Never), under the name
    # the agent's ImageStatus resolves `python` to.
    ctr -a "$d/containerd.sock" -n k8s.io images pull --plain-http "127.0.0.1:$port/library/python:latest" >/dev/null
    ctr -a "$d/containerd.sock" -n k8s.io images tag "127.0.0.1:$port/library/python:latest" docker.io/library/python:latest >/dev/null
    local rc=0
    ( cd "$repo" && MOAT_NODE_CRI="unix://$d/containerd.sock" \
        .build/debug/moatPackageTests.xctest "$filter" ) || rc=$?
    return $rc
}

case ${1:-} in
    inner) shift; node_inner "$@" ;;
    ""|-h|--help) sed -n '2,20p' "$0" >&2; exit 2 ;;
    *)
        out=$(mkdir -p "$1" && cd "$1" && pwd -P)
        filter=${2:-NodeAgentTests.NodeAgentTests}
        [ "$(id -u)" = 0 ] || missing "root"
        for c in containerd ctr runc skopeo umoci docker-registry kubectl unshare; do
            command -v "$c" >/dev/null || missing "$c (.ci/setup installs it)"
        done
        [ -x "$repo/.build/debug/moatPackageTests.xctest" ] || missing "the built tests (swift build --build-tests)"
        build_images "$out"
        python_layout "$out/layout"
        cgroup_list > "$out/cgroups.before"
        trap 'remove_cgroups "$out/cgroups.before"' EXIT
        trap 'exit 130' INT TERM HUP
        unshare --net --mount --propagation private --pid --ipc --fork --mount-proc --kill-child \
            -- bash "$0" inner "$out" "$filter"
        ;;
esac
