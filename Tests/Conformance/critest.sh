#!/usr/bin/env bash
# critest (cri-tools' CRI conformance suite) against `moat cri` and against
# containerd 1.6 + runc on the same machine, with the same critest binary, the
# same flags, the same images (a loopback registry) and the same CNI network.
#
#   critest.sh run OUT [moat|moat-spdy|containerd|containerd-spdy|containerd-runsc ...]
#                                        (default: moat containerd containerd-spdy)
#     *-spdy: exec/attach over SPDY (critest's default) instead of
#     WebSocket; every other run uses WebSocket.
#   critest.sh table OUT                 pass/fail counts per runtime from OUT/*.log,
#                                        then each failed spec and where it failed
#   critest.sh compare OUT               issue 12's comparison: `moat cri` and containerd
#                                        1.6 + runc side by side in one run (same critest,
#                                        flags, images, network: exec/attach over SPDY, which
#                                        containerd 1.6 speaks), then the table; fails if either
#                                        run did not finish, or if the host has a mount, network
#                                        namespace, link, cgroup or process more than before.
#   critest.sh ci OUT                    CI's run (test.sh): `moat cri` only, every
#                                        spec but the known failures (ci_skips below,
#                                        each explained in CRITEST.md); fails when a
#                                        spec fails. A missing prerequisite skips it,
#                                        and fails it under CI=true.
#
# bench/cri.sh sources this file (CRITEST_SH_LIB=1) for the images, the
# registry and the runtimes.
#
# Everything runs inside one `unshare --net --mount --pid --ipc` namespace made here:
# the CNI bridge, the pods' addresses, the host ports of port mappings and the
# registry all stay in it, and every mount containerd or Moat makes goes away
# with it, as do the System V segments critest makes with ipcmk. /run/netns
# is a private tmpfs there, so containerd's cni-* network namespace files
# never reach the host's. The script's inner shell is the pid
# namespace's init: however it ends (normal exit, error, signal, SIGKILL of
# the outer unshare), the kernel kills every process left in the namespace --
# containerd, its daemonized shims, runc/runsc containers, `moat cri` and its
# detached pod Sentries. containerd gets its own config, root, state and socket
# under OUT; its cgroups are removed on every exit path the shell sees.
#
# Environment: CRITEST (default /var/cache/moat/bin/critest, built by
# cri-tools.sh when missing), MOAT (default
# .build/debug/moat), CRITEST_FLAGS (extra flags, e.g. -ginkgo.focus=...),
# MOAT_CRI_FLAGS (extra flags of `moat cri`, e.g. --debug: step timings).
# Images: critest names images under registry.k8s.io and gcr.io; both runtimes
# get those registries mirrored to a loopback registry (containerd's
# registry.mirrors, `moat cri --registry-mirror`), where this script pushes
# images built from the busybox test rootfs: busybox
# (sh), nginx (an nginx look-alike: busybox httpd on :80 under a "master
# process"), httpd (busybox httpd), ipcs, pause (a sleeping shell) and the
# k8s-staging-cri-tools/test-image-* family (users, groups, tags).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
critest=${CRITEST:-/var/cache/moat/bin/critest}
moat=${MOAT:-$repo/.build/debug/moat}
port=5055

die() { echo "critest.sh: $*" >&2; exit 1; }

# The specs skipped on every runtime, and why (documented in CRITEST.md):
#  - apparmor / SELinux: not enabled on this kernel for either runtime;
#  - image pulls by a fixed upstream digest (the digest names an image on
#    gcr.io that a local registry cannot hold);
#  - benchmark specs are not run without -benchmark anyway.
skips=(
    -ginkgo.skip='AppArmor|apparmor|SELinux|selinux'
    -ginkgo.skip='digest'
    # Exec and attach stream over WebSocket (Kubernetes' v4/v5 channel
    # protocols) by default, which containerd 1.6 does not speak; the *-spdy
    # runs use SPDY. Port-forward is always SPDY (its WebSocket form tunnels
    # SPDY anyway).
)
websocket=(-websocket-exec -websocket-attach)
# Known failures of `moat cri`, skipped by `ci` only (CRITEST.md says why each
# fails; a full `run` still runs them). Anything else failing fails CI.
ci_skips=(
    -ginkgo.skip='should support HostPID'
    -ginkgo.skip='HostIpc is true'
    -ginkgo.skip="mount with 'rshared'|mount with 'rslave'"
    -ginkgo.skip='Privileged is true|should support adding capability'
    -ginkgo.skip='MaskedPaths'
)
# Extra critest arguments of this run (`ci` sets them).
extra=()

# A missing prerequisite: a failure under CI, a skip elsewhere.
missing() {
    if [ "${CI:-}" = true ]; then die "missing prerequisite under CI: $*"; fi
    echo "$(basename "$0"): skipped: missing prerequisite: $*" >&2
    exit 0
}

# ---- images --------------------------------------------------------------

build_images() {
    local out=$1 rootfs="$repo/.cache/rootfs/busybox" work
    bash "$repo/rootfs/busybox.sh" >/dev/null
    work=$(mktemp -d)
    local L="$out/layout"
    rm -rf "$L"
    umoci init --layout "$L" >/dev/null
    umoci new --image "$L:base" >/dev/null
    umoci unpack --image "$L:base" "$work/b" >/dev/null
    cp -a "$rootfs/." "$work/b/rootfs/"
    # As in the busybox image critest expects, the applets are hard links
    # (masking /bin/ls must not mask the shell behind a symbolic link).
    find "$work/b/rootfs" -type l -lname '/bin/busybox' | while read -r l; do
        rm "$l"; ln "$work/b/rootfs/bin/busybox" "$l"
    done
    # Users and groups the test images need (www-data, default-user with a
    # group defined only in the image), and nginx's page.
    cat >> "$work/b/rootfs/etc/passwd" <<'EOF'
www-data:x:33:33:www-data:/var/www:/bin/sh
default-user:x:1000:1000::/home/default-user:/bin/sh
EOF
    sed -i '/^user:/d' "$work/b/rootfs/etc/passwd" "$work/b/rootfs/etc/group"
    cat >> "$work/b/rootfs/etc/group" <<'EOF'
www-data:x:33:
default-user:x:1000:
group-defined-in-image:x:50000:default-user
EOF
    # nonewprivs: a set-user-ID root program that prints its effective uid.
    printf '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("Effective uid: %%d\\n", geteuid());return 0;}\n' > "$work/nnp.c"
    gcc -static -O2 -o "$work/b/rootfs/usr/local/bin/nnp" "$work/nnp.c" 2>/dev/null ||
        { mkdir -p "$work/b/rootfs/usr/local/bin"; gcc -static -O2 -o "$work/b/rootfs/usr/local/bin/nnp" "$work/nnp.c"; }
    chmod 4755 "$work/b/rootfs/usr/local/bin/nnp"
    # What critest's namespace specs expect of the nginx image: a process
    # named nginx whose command line reads "nginx: master process ...",
    # writing /var/run/nginx.pid, serving :80 (busybox httpd, its child).
    cat > "$work/nginx.c" <<'EOF2'
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (strncmp(argv[0], "nginx: ", 7) != 0) {
        execl("/usr/sbin/nginx", "nginx: master process nginx -g daemon off;", (char *)0);
        return 127;
    }
    FILE *f = fopen("/var/run/nginx.pid", "w");
    if (f) { fprintf(f, "%d\n", (int)getpid()); fclose(f); }
    pid_t c = fork();
    if (c == 0) { execl("/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www", (char *)0); _exit(127); }
    int st = 0;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
EOF2
    gcc -static -O2 -o "$work/b/rootfs/usr/sbin/nginx" "$work/nginx.c"
    mkdir -p "$work/b/rootfs/var/run"
    # ipcs -m (busybox's applet is not in this busybox build): the System V
    # shared memory segments of the caller's IPC namespace.
    cat > "$work/ipcs.c" <<'EOF2'
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
int main(void) {
    struct shm_info info;
    int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
    printf("\n------ Shared Memory Segments --------\nkey        shmid      owner      perms      bytes      nattch     status\n");
    for (int i = 0; i <= max; i++) {
        struct shmid_ds ds;
        int id = shmctl(i, SHM_STAT, &ds);
        if (id < 0) continue;
        printf("0x%08x %-10d %-10d %-10o %-10lu %-10lu\n", (unsigned)ds.shm_perm.__key, id, (int)ds.shm_perm.uid,
               (unsigned)(ds.shm_perm.mode & 0777), (unsigned long)ds.shm_segsz, (unsigned long)ds.shm_nattch);
    }
    return 0;
}
EOF2
    gcc -static -O2 -o "$work/b/rootfs/usr/bin/ipcs" "$work/ipcs.c"
    # pgrep (critest checks that a timed-out exec left no process behind);
    # this busybox has no such applet.
    cat > "$work/b/rootfs/usr/bin/pgrep" <<'EOF'
#!/bin/sh
found=1
for d in /proc/[0-9]*; do
    read -r n < "$d/comm" 2>/dev/null || continue
    case $n in *"$1"*) echo "${d#/proc/}"; found=0 ;; esac
done
exit $found
EOF
    chmod 755 "$work/b/rootfs/usr/bin/pgrep"
    mkdir -p "$work/b/rootfs/www"
    echo '<html><body>Welcome to nginx!</body></html>' > "$work/b/rootfs/www/index.html"
    umoci repack --image "$L:base" "$work/b" >/dev/null
    umoci config --image "$L:base" --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.cmd sh >/dev/null
    rm -rf "$work"
    tag() { umoci config --image "$L:base" --tag "$1" "${@:2}" >/dev/null; }
    tag busybox
    tag nginx --clear=config.cmd --config.cmd nginx --config.exposedports 80/tcp
    # Apache's image logs a line naming httpd when it starts; critest's
    # container-log spec looks for it.
    tag httpd --clear=config.cmd --config.cmd sh --config.cmd -c \
        --config.cmd 'echo "httpd: serving /www on port 80"; exec httpd -f -p 80 -h /www' --config.exposedports 80/tcp
    tag httpd-12003 --clear=config.cmd --config.cmd httpd --config.cmd -f --config.cmd -p --config.cmd 12003 \
        --config.cmd -h --config.cmd /www
    tag nonewprivs --clear=config.cmd --config.cmd /usr/local/bin/nnp
    tag pause --clear=config.cmd --config.entrypoint sh --config.entrypoint -c \
        --config.entrypoint 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done'
    tag user-uid --config.user 1002
    tag user-username --config.user www-data
    tag user-uid-group --config.user 1003:1003
    tag user-username-group --config.user www-data:www-data
    tag predefined-group --config.user 1000
    tag latest --config.env VARIANT=latest
    tag tag-test --config.env VARIANT=tag-test
    tag tag-all --config.env VARIANT=tag-all
    tag one --config.env VARIANT=1
    tag two --config.env VARIANT=2
    tag three --config.env VARIANT=3
    tag same --config.env VARIANT=same
}

push_images() {
    local out=$1 L="$out/layout" s=k8s-staging-cri-tools
    p() { skopeo copy -q --dest-tls-verify=false "oci:$L:$1" "docker://127.0.0.1:$port/$2" >/dev/null; }
    p busybox e2e-test-images/busybox:1.29-2
    p busybox e2e-test-images/busybox:latest
    p nginx e2e-test-images/nginx:1.14-2
    p httpd e2e-test-images/httpd:2.4.39-4
    p nonewprivs e2e-test-images/nonewprivs:1.3
    p httpd-12003 $s/hostnet-nginx-amd64:latest
    p pause pause:3.9
    p user-uid $s/test-image-user-uid:latest
    p user-username $s/test-image-user-username:latest
    p user-uid-group $s/test-image-user-uid-group:latest
    p user-username-group $s/test-image-user-username-group:latest
    p predefined-group $s/test-image-predefined-group:latest
    p latest $s/test-image-latest:latest
    p tag-test $s/test-image-tag:test
    p tag-all $s/test-image-tag:all
    p one $s/test-image-1:latest
    p two $s/test-image-2:latest
    p three $s/test-image-3:latest
    for t in 1 2 3; do p same $s/test-image-tags:$t; done
}

# ---- network -------------------------------------------------------------

cni_config() {
    mkdir -p "$1"
    cat > "$1/10-critest.conflist" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "critest",
  "plugins": [
    {"type": "bridge", "bridge": "cni-critest", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# ---- runtimes ------------------------------------------------------------

start_containerd() {
    local d=$1 runtime=$2
    mkdir -p "$d/root" "$d/state" "$d/opt"
    cni_config "$d/cni"
    # runsc 2022 refuses its default --network=sandbox on this kernel ("cannot
    # run with network enabled in root network namespace"): it takes a network
    # namespace where /proc/sys/net/core/rmem_default exists for the host's,
    # and since Linux 6.x every namespace has that file. --network=host makes
    # the sandbox use the host stack of the namespace it joins, which is the
    # pod's CNI namespace; the runc shim passes no flags, hence a wrapper.
    # Under the runc shim (Debian ships no runsc shim) runsc 2022 cannot start
    # an app container inside its pod's sandbox (StartContainer hangs, see
    # field-facts.md), so the wrapper also drops the CRI annotations that ask
    # for that: each container then gets a sandbox of its own, in the pod's
    # network namespace. That costs runsc a second sandbox per pod (its PSS
    # row counts the pause sandbox too), not what its own shim would do.
    cat > "$d/runsc" <<'EOF'
#!/bin/sh
prev=
for a in "$@"; do
    if [ "$prev" = --bundle ] && [ -f "$a/config.json" ]; then
        jq 'if .annotations["io.kubernetes.cri.container-type"] == "container"
            then .annotations |= with_entries(select(.key | startswith("io.kubernetes.cri.") | not)) else . end' \
            "$a/config.json" > "$a/config.json.runsc" && mv "$a/config.json.runsc" "$a/config.json"
    fi
    prev=$a
done
exec /usr/bin/runsc --network=host "$@"
EOF
    chmod 755 "$d/runsc"
    cat > "$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://127.0.0.1:$port"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."gcr.io"]
    endpoint = ["http://127.0.0.1:$port"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."k8s.gcr.io"]
    endpoint = ["http://127.0.0.1:$port"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://127.0.0.1:$port"]
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "$runtime"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
      BinaryName = "$d/runsc"
EOF
    containerd --config "$d/config.toml" >"$d/containerd.log" 2>&1 &
    echo $! > "$d/containerd.pid"
    for _ in $(seq 1 100); do [ -S "$d/containerd.sock" ] && return 0; sleep 0.1; done
    tail -20 "$d/containerd.log" >&2; die "containerd did not start"
}

stop_containerd() {
    local d=$1 pid
    [ -f "$d/containerd.pid" ] || return 0
    pid=$(cat "$d/containerd.pid")
    # Shims are children of init (they daemonize); find them by their -address.
    local shims
    shims=$(pgrep -f -- "-address $d/containerd.sock" || true)
    kill "$pid" 2>/dev/null || true
    for s in $shims; do kill -9 -- "$s" 2>/dev/null || true; done
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$d/containerd.pid"
}

start_moat() {
    local d=$1
    mkdir -p "$d/root" "$d/state"
    cni_config "$d/cni"
    # shellcheck disable=SC2086 # MOAT_CRI_FLAGS: extra flags, e.g. --debug
    "$moat" cri ${MOAT_CRI_FLAGS:-} --listen "unix://$d/moat.sock" --root "$d/root" --state "$d/state" \
        --cni-conf-dir "$d/cni" --cni-bin-dir /usr/lib/cni \
        --registry-mirror "registry.k8s.io=http://127.0.0.1:$port" --registry-mirror "gcr.io=http://127.0.0.1:$port" \
        --registry-mirror "k8s.gcr.io=http://127.0.0.1:$port" >"$d/moat.log" 2>&1 &
    echo $! > "$d/moat.pid"
    for _ in $(seq 1 100); do [ -S "$d/moat.sock" ] && return 0; sleep 0.1; done
    tail -20 "$d/moat.log" >&2; die "moat cri did not start"
}

stop_moat() {
    local d=$1 pid
    [ -f "$d/moat.pid" ] || return 0
    pid=$(cat "$d/moat.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    # Pod Sentries are detached from `moat cri`; their pid files are in the state dir.
    local f
    for f in $(find "$d/state" -name '*.pid' 2>/dev/null); do
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$d/moat.pid"
}

run_critest() {
    local sock=$1 log=$2 transport=("${websocket[@]}")
    [ "${3:-}" = spdy ] && transport=()
    echo "critest -runtime-endpoint unix://$sock -image-endpoint unix://$sock -ginkgo.no-color -ginkgo.timeout=55m ${skips[*]} ${extra[*]} ${transport[*]} ${CRITEST_FLAGS:-}" > "$log"
    # In the background, so a signal to this shell (the namespace's init)
    # is handled at once rather than after critest ends.
    timeout 3600 "$critest" -runtime-endpoint "unix://$sock" -image-endpoint "unix://$sock" \
        -ginkgo.no-color -ginkgo.timeout=55m \
        "${skips[@]}" "${extra[@]}" "${transport[@]}" ${CRITEST_FLAGS:-} >> "$log" 2>&1 &
    wait $! || true
    tail -5 "$log"
}

# Runs inside the private namespaces.
inner() {
    out=$1; shift
    ip link set lo up
    mkdir -p /run/netns && mount -t tmpfs -o mode=755 critest-netns /run/netns
    reg="$out/registry"
    mkdir -p "$reg"
    trap 'for r in "$out"/run-*; do stop_containerd "$r"; stop_moat "$r"; done; bash "$repo/Tests/Support/registry.sh" stop "$reg"; kill_rest; remove_cgroups "$out/cgroups.before"' EXIT
    # As the pid namespace's init this shell gets no default signal actions:
    # turn them into an exit so the EXIT trap runs.
    trap 'exit 130' INT TERM HUP
    bash "$repo/Tests/Support/registry.sh" start "$reg" "$port"
    push_images "$out"
    local r
    for r in "$@"; do
        local d="$out/run-$r"
        rm -rf "$d"; mkdir -p "$d"
        echo "== $r"
        case $r in
            moat) start_moat "$d"; run_critest "$d/moat.sock" "$out/$r.log"; stop_moat "$d" ;;
            moat-spdy) start_moat "$d"; run_critest "$d/moat.sock" "$out/$r.log" spdy; stop_moat "$d" ;;
            containerd) start_containerd "$d" runc; run_critest "$d/containerd.sock" "$out/$r.log"; stop_containerd "$d" ;;
            containerd-spdy) start_containerd "$d" runc; run_critest "$d/containerd.sock" "$out/$r.log" spdy; stop_containerd "$d" ;;
            containerd-runsc) start_containerd "$d" runsc; run_critest "$d/containerd.sock" "$out/$r.log"; stop_containerd "$d" ;;
            *) die "unknown runtime $r" ;;
        esac
    done
}

# Everything else in the pid namespace (runsc sandboxes outlive their
# shims), so that the cgroups they were in can go. This shell is the
# namespace's init: kill -1 reaches only the namespace's processes.
kill_rest() {
    kill -KILL -1 2>/dev/null || true
    sleep 1
}

# containerd + runc (and runsc) leave cgroups behind when killed mid-run, and
# even after a clean run critest's pods leave "test.slice:cri-containerd:ID"
# directories at the top of each hierarchy. The outer shell lists every cgroup
# before the run (cgroup_list > FILE) and afterwards removes, deepest first,
# the ones that appeared since and that a CRI runtime names (k8s.io,
# cri-containerd, runsc, *.slice, kubepods), so another tool's cgroups made
# meanwhile are left alone. rmdir only removes empty cgroups: the pid
# namespace is gone by then, so they are.
cgroup_list() { find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | sort || true; }
remove_cgroups() {
    local before=${1:-/dev/null} d
    find /sys/fs/cgroup -depth -mindepth 2 -type d 2>/dev/null |
        grep -E 'k8s\.io|cri-containerd|runsc|\.slice|kubepods' | grep -vxF -f "$before" |
        while read -r d; do rmdir "$d" 2>/dev/null || true; done || true
    return 0
}

# What a run must not leave on the host (compare checks it; $1: the run's OUT, which every
# path of it is under): mounts of the run, CNI network namespaces (cni-*, as containerd names
# them), its bridge, the runtimes' cgroups, processes of the run. Only the run's own marks,
# so another tool working on the machine meanwhile does not count.
host_state() {
    awk -v o="$1" 'index($4, o) || index($5, o) || $0 ~ /critest-netns/ {print "mount " $5}' /proc/self/mountinfo | sort -u
    ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print "netns " $1}' | sort
    ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^cni-critest/ {print "link " $2}'
    cgroup_list | grep -E 'k8s\.io|cri-containerd|runsc|\.slice|kubepods' | sed 's/^/cgroup /' || true
    ps -eo pid=,args= | grep -F -- "$1" | grep -vE "critest\.sh compare|grep -F" | sed 's/^ *[0-9]* /process /' || true
}

table() {
    local out=$1 f
    echo "| runtime | passed | failed | skipped | pending |"
    echo "|---|---|---|---|---|"
    for f in "$out"/*.log; do
        local line
        line=$(grep -E '^(Ran [0-9]+ of|FAIL!|SUCCESS!)' "$f" | tail -1)
        local p fl pe sk
        p=$(grep -oE '[0-9]+ Passed' "$f" | tail -1 | cut -d' ' -f1)
        fl=$(grep -oE '[0-9]+ Failed' "$f" | tail -1 | cut -d' ' -f1)
        pe=$(grep -oE '[0-9]+ Pending' "$f" | tail -1 | cut -d' ' -f1)
        sk=$(grep -oE '[0-9]+ Skipped' "$f" | tail -1 | cut -d' ' -f1)
        echo "| $(basename "$f" .log) | ${p:-?} | ${fl:-?} | ${sk:-?} | ${pe:-?} |"
    done
    echo
    local names=() n
    for f in "$out"/*.log; do names+=("$(basename "$f" .log)"); done
    echo "| failed spec | $(IFS='|'; echo "${names[*]}" | sed 's/|/ | /g') |"
    echo "|---|$(for n in "${names[@]}"; do printf -- '---|'; done)"
    cat "$out"/*.log | sed -n 's/^  \[FAIL\] \[k8s.io\] //p' | sed 's/ \[It\]//; s/ \[BeforeEach\]//' | sort -u | while read -r spec; do
        local row="| $spec |"
        for n in "${names[@]}"; do
            if sed -n 's/^  \[FAIL\] \[k8s.io\] //p' "$out/$n.log" | sed 's/ \[It\]//; s/ \[BeforeEach\]//' | grep -qxF -- "$spec"; then
                row+=" FAIL |"
            else
                row+=" |"
            fi
        done
        echo "$row"
    done
}

# What compare and ci need (and the extra commands named): skipped without, failed under CI.
prerequisites() {
    [ "$(id -u)" = 0 ] || missing "root"
    local c
    for c in umoci skopeo docker-registry gcc unshare "$@"; do
        command -v "$c" >/dev/null || missing "$c (.ci/setup installs it)"
    done
    [ -x /usr/lib/cni/bridge ] || missing "the CNI plugins in /usr/lib/cni (.ci/setup installs them)"
    [ -x "$moat" ] || missing "moat at $moat (swift build --product moat)"
    if [ ! -x "$critest" ] && [ -z "${CRITEST:-}" ]; then
        bash "$here/cri-tools.sh" >/dev/null || missing "critest (Tests/Conformance/cri-tools.sh could not build it)"
    fi
    [ -x "$critest" ] || missing "critest at $critest"
}

[ "${CRITEST_SH_LIB:-}" = 1 ] && return 0

cmd=${1:-}; shift || true
case $cmd in
    run)
        [ $# -ge 1 ] || die "usage: run OUT [runtime...]"
        out=$(mkdir -p "$1" && cd "$1" && pwd -P); shift
        [ $# -gt 0 ] || set -- moat containerd containerd-spdy
        [ "$(id -u)" = 0 ] || die "needs root"
        if [ ! -x "$critest" ] && [ -z "${CRITEST:-}" ]; then bash "$here/cri-tools.sh" >/dev/null; fi
        [ -x "$critest" ] || die "no critest at $critest"
        build_images "$out"
        cgroup_list > "$out/cgroups.before"
        trap 'remove_cgroups "$out/cgroups.before"' EXIT
        trap 'exit 130' INT TERM HUP
        unshare --net --mount --propagation private --pid --ipc --fork --mount-proc --kill-child \
            -- bash "$0" inner "$out" "$@"
        ;;
    compare)
        [ $# -ge 1 ] || die "usage: compare OUT"
        out=$(mkdir -p "$1" && cd "$1" && pwd -P)
        prerequisites containerd runc
        rm -f "$out"/*.log
        build_images "$out"
        cgroup_list > "$out/cgroups.before"
        host_state "$out" > "$out/host.before"
        trap 'remove_cgroups "$out/cgroups.before"' EXIT
        trap 'exit 130' INT TERM HUP
        unshare --net --mount --propagation private --pid --ipc --fork --mount-proc --kill-child \
            -- bash "$0" inner "$out" moat-spdy containerd-spdy
        remove_cgroups "$out/cgroups.before"
        host_state "$out" > "$out/host.after"
        table "$out" | tee "$out/table.md"
        for r in moat-spdy containerd-spdy; do
            grep -qE '^Ran [0-9]+ of [0-9]+' "$out/$r.log" || die "critest on $r did not finish; log: $out/$r.log"
        done
        if ! diff "$out/host.before" "$out/host.after" | grep '^>' > "$out/host.left"; then :; fi
        [ -s "$out/host.left" ] && { cat "$out/host.left" >&2; die "host state left behind (above; $out/host.left)"; }
        echo "critest.sh: moat cri $(grep -oE '[0-9]+ Passed' "$out/moat-spdy.log" | tail -1), containerd + runc $(grep -oE '[0-9]+ Passed' "$out/containerd-spdy.log" | tail -1); no host state left"
        ;;
    ci)
        [ $# -ge 1 ] || die "usage: ci OUT"
        out=$(mkdir -p "$1" && cd "$1" && pwd -P)
        prerequisites
        build_images "$out"
        cgroup_list > "$out/cgroups.before"
        trap 'remove_cgroups "$out/cgroups.before"' EXIT
        trap 'exit 130' INT TERM HUP
        CRITEST_EXTRA=ci unshare --net --mount --propagation private --pid --ipc --fork --mount-proc --kill-child \
            -- bash "$0" inner "$out" moat
        passed=$(grep -oE '[0-9]+ Passed' "$out/moat.log" | tail -1 | cut -d' ' -f1)
        if ! grep -q '^SUCCESS!' "$out/moat.log" || [ "${passed:-0}" -lt 50 ]; then
            table "$out" >&2
            die "critest on moat cri: a spec outside the known failures failed (or too few ran: ${passed:-0}); log: $out/moat.log"
        fi
        echo "critest.sh: moat cri passed all ${passed} specs run ($(grep -oE 'Ran [0-9]+ of [0-9]+' "$out/moat.log" | tail -1))"
        ;;
    inner) [ "${CRITEST_EXTRA:-}" = ci ] && extra=("${ci_skips[@]}"); inner "$@" ;;
    table) table "$1" ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
