#!/usr/bin/env bash
# One node under kubectl: `moat controlplane` + `moat node` + a CRI runtime
# (`moat cri`, or containerd 1.6 + runc as Tests/Conformance/critest.sh
# starts it), all in one run of this script. Measures:
#
#   - deploy: from `kubectl apply` of a REPLICAS-replica Deployment (default
#     50; busybox `sleep`) to every one of its pods Running and Ready, polled
#     every 0.5 s with kubectl;
#   - idle: the Deployment scaled to IDLE pods (default 100), once they are
#     Ready and have settled for SETTLE s (default 20), the node agent's own
#     CPU (user + system, % of one CPU over WINDOW s, default 30) and memory
#     (RSS and PSS of `moat node`), and the runtime daemon's.
#
#   bench/node.sh [OUT_DIR] [moat|containerd ...]       (default: moat containerd)
#
# Environment: MOAT (default .build/release/moat, else .build/debug/moat),
# REPLICAS, IDLE, SETTLE, WINDOW. Needs root, kubectl; containerd, runc,
# skopeo, umoci, docker-registry for the containerd row. Everything runs in
# private network, mount, IPC and pid namespaces whose init is the script's
# inner shell: the kernel kills whatever is left when it ends, and the runtime
# cgroups that appeared are removed.
set -euo pipefail

bench_here=$(cd "$(dirname "$0")" && pwd -P)
bench_repo=$(cd "$bench_here/.." && pwd -P)
if [ -z "${MOAT:-}" ]; then
    MOAT=$bench_repo/.build/release/moat
    [ -x "$MOAT" ] || MOAT=$bench_repo/.build/debug/moat
fi
export MOAT
CRITEST_SH_LIB=1 source "$bench_repo/Tests/Conformance/critest.sh"
replicas=${REPLICAS:-50}
idle=${IDLE:-100}
settle=${SETTLE:-20}
window=${WINDOW:-30}
apiport=6443

kc() { timeout 60 kubectl --kubeconfig "$kcfg" --request-timeout 30s "$@"; }

# Pods of app=bench Running and Ready (every container ready).
ready_count() {
    kc get pods -l app=bench -o jsonpath='{range .items[*]}{.status.phase}{" "}{.status.containerStatuses[*].ready}{"\n"}{end}' 2>/dev/null |
        grep -c '^Running true$' || true
}

wait_ready() {
    local n=$1 limit=$2 t0
    t0=$(date +%s)
    while [ "$(ready_count)" -lt "$n" ]; do
        [ $(( $(date +%s) - t0 )) -lt "$limit" ] || return 1
        sleep 0.5
    done
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
mem_of() { awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} END {printf "%.1f / %.1f", r / 1024, p / 1024}' "/proc/$1/smaps_rollup" 2>/dev/null || echo "n/a"; }

bench_node_runtime() {
    local r=$1 d=$2 sock daemon
    mkdir -p "$d"
    kcfg=$d/kubeconfig
    cat > "$kcfg" <<KC
apiVersion: v1
kind: Config
clusters: [{name: moat, cluster: {server: "http://127.0.0.1:$apiport"}}]
contexts: [{name: moat, context: {cluster: moat, user: bench, namespace: default}}]
users: [{name: bench, user: {}}]
current-context: moat
KC
    "$MOAT" controlplane --listen "127.0.0.1:$apiport" --data-dir "$d/cp" >"$d/cp.log" 2>&1 &
    echo $! > "$d/cp.pid"
    case $r in
        moat)
            "$MOAT" cri --listen "unix://$d/cri.sock" --root "$d/root" --state "$d/state" \
                --rootfs-image "busybox=$repo/.cache/rootfs/busybox" >"$d/cri.log" 2>&1 &
            echo $! > "$d/moat.pid"; daemon=$!; sock=$d/cri.sock
            for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done ;;
        containerd)
            bash "$repo/Tests/Support/registry.sh" start "$reg" "$port"
            skopeo copy -q --dest-tls-verify=false "oci:$out/layout:busybox" "docker://127.0.0.1:$port/library/busybox:latest" >/dev/null
            skopeo copy -q --dest-tls-verify=false "oci:$out/layout:pause" "docker://127.0.0.1:$port/pause:3.9" >/dev/null
            start_containerd "$d" runc; sock=$d/containerd.sock; daemon=$(cat "$d/containerd.pid") ;;
        *) die "unknown runtime $r" ;;
    esac
    for _ in $(seq 1 100); do kc get --raw /healthz >/dev/null 2>&1 && break; sleep 0.2; done
    "$MOAT" node --server "http://127.0.0.1:$apiport" --cri "unix://$sock" --name n1 \
        --log-directory "$d/logs" --root "$d/node" --port 0 >"$d/node.log" 2>&1 &
    local agent=$!
    echo $agent > "$d/node.pid"
    for _ in $(seq 1 150); do kc get node n1 2>/dev/null | grep -q ' Ready ' && break; sleep 0.2; done
    # The image is on the node before the clock starts (kubelet's pull is not
    # what is measured).
    kc apply -f - >/dev/null <<Y
apiVersion: v1
kind: Pod
metadata: {name: warm}
spec: {containers: [{name: c, image: busybox, command: ["sleep", "36000"]}], terminationGracePeriodSeconds: 0}
Y
    for _ in $(seq 1 240); do [ "$(kc get pod warm -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ] && break; sleep 0.5; done
    kc delete pod warm --wait=false >/dev/null 2>&1 || true

    local t0 t1 deploy=failed
    t0=$(date +%s%N)
    kc apply -f - >/dev/null <<Y
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench}
spec:
  replicas: $replicas
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: idle, image: busybox, command: ["sleep", "36000"]}]
Y
    if wait_ready "$replicas" 900; then t1=$(date +%s%N); deploy=$(( (t1 - t0) / 1000000 )); fi

    local cpu_agent=n/a cpu_daemon=n/a mem_agent=n/a mem_daemon=n/a got
    kc scale deployment bench --replicas "$idle" >/dev/null
    wait_ready "$idle" 1800 || true
    got=$(ready_count)
    sleep "$settle"
    local a0 b0 a1 b1 hz
    hz=$(getconf CLK_TCK)
    a0=$(ticks "$agent"); b0=$(ticks "$daemon")
    sleep "$window"
    a1=$(ticks "$agent"); b1=$(ticks "$daemon")
    cpu_agent=$(awk -v d=$((a1 - a0)) -v h="$hz" -v w="$window" 'BEGIN {printf "%.1f", 100 * d / h / w}')
    cpu_daemon=$(awk -v d=$((b1 - b0)) -v h="$hz" -v w="$window" 'BEGIN {printf "%.1f", 100 * d / h / w}')
    mem_agent=$(mem_of "$agent"); mem_daemon=$(mem_of "$daemon")
    echo "| $r | $replicas | $deploy | $got/$idle | $cpu_agent | $mem_agent | $cpu_daemon | $mem_daemon |" >> "$out/table"
    kc delete deployment bench --wait=false >/dev/null 2>&1 || true
    kill "$agent" "$(cat "$d/cp.pid")" 2>/dev/null || true
    case $r in moat) stop_moat "$d" ;; *) stop_containerd "$d" ;; esac
}

node_bench_inner() {
    out=$1; shift
    ip link set lo up
    mkdir -p /run/netns && mount -t tmpfs -o mode=755 bench-netns /run/netns
    reg="$out/registry"
    mkdir -p "$reg"
    trap 'kill_rest; remove_cgroups "$out/cgroups.before"' EXIT
    trap 'exit 130' INT TERM HUP
    : > "$out/table"
    local r
    for r in "$@"; do
        rm -rf "$out/run-$r"; mkdir -p "$out/run-$r"
        echo "== $r" >&2
        bench_node_runtime "$r" "$out/run-$r" || echo "| $r | failed: see $out/run-$r | | | | | | |" >> "$out/table"
        # Nothing of this runtime (pods, Sentries, shims, registry) may
        # disturb the next one: this shell is the namespace's init.
        kill_rest
    done
}

case ${1:-} in
    inner) shift; node_bench_inner "$@"; exit ;;
    -h|--help) sed -n '2,22p' "$0"; exit ;;
esac
[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$MOAT" ] || die "no moat at $MOAT (swift build -c release --product moat)"
command -v kubectl >/dev/null || die "no kubectl"
o=${1:-$(mktemp -d /tmp/bench-node.XXXXXX)}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- moat containerd
o=$(mkdir -p "$o" && cd "$o" && pwd -P)
bash "$repo/rootfs/busybox.sh" >/dev/null
case " $* " in *" containerd "*) build_images "$o" ;; esac
cgroup_list > "$o/cgroups.before"
trap "remove_cgroups '$o/cgroups.before'" EXIT
trap 'exit 130' INT TERM HUP
unshare --net --mount --propagation private --pid --ipc --fork --mount-proc --kill-child -- bash "$0" inner "$o" "$@"
echo "moat: $MOAT ($(git -C "$repo" rev-parse --short HEAD)); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %H:%M UTC')"
echo
echo "| runtime | replicas | apply → all Ready, ms | idle pods Ready | agent CPU % (one CPU) | agent RSS / PSS, MB | runtime CPU % | runtime RSS / PSS, MB |"
echo "|---|---|---|---|---|---|---|---|"
cat "$o/table"
