#!/usr/bin/env bash
# Pods through the CRI, side by side in one run: `moat cri`, containerd 1.6 +
# runc, and containerd 1.6 + gVisor's runsc (through containerd's runc shim
# with BinaryName, as Tests/Conformance/critest.sh configures it). The same
# crictl, images (a loopback registry), CNI bridge and pod/container configs
# for all three. Measures:
#
#   - pod start latency: RunPodSandbox -> CreateContainer -> StartContainer ->
#     the container listed running, one pod at a time (REPS runs, median);
#   - PODS pods (default 50) started concurrently: wall time until all run,
#     and how many made it;
#   - host memory per idle pod: PSS (smaps_rollup) summed over every host
#     process that appeared while those pods started (sandboxes, shims, pause
#     and app processes, Gofers, stubs), the runtime daemon itself excluded
#     and reported apart, divided by the number of running pods; the largest
#     contributors by process name are listed.
#
#   bench/cri.sh [OUT_DIR] [moat|moat=PATH|containerd|containerd-runsc ...]
#
# moat=PATH runs another moat binary in the same run (before/after figures
# of a change under the same load).
#
# containerd + runsc goes through a wrapper (Tests/Conformance/critest.sh,
# start_containerd) that gives runsc --network=host and one sandbox per
# container: runsc 2022 under the runc shim cannot do otherwise on this kernel.
#
# Environment: MOAT (default .build/release/moat, else .build/debug/moat),
# CRICTL (default /var/cache/moat/bin/crictl), PODS, REPS. Needs root,
# containerd, runc, runsc, skopeo, umoci, docker-registry. Everything runs in
# private network, mount, IPC and pid namespaces whose init is the script's
# inner shell: pods, shims, Sentries and the registry are torn down on every
# exit path (the kernel kills whatever is left when that shell ends), and the
# PSS sums see only this run's processes.
set -euo pipefail

bench_here=$(cd "$(dirname "$0")" && pwd -P)
bench_repo=$(cd "$bench_here/.." && pwd -P)
if [ -z "${MOAT:-}" ]; then
    MOAT=$bench_repo/.build/release/moat
    [ -x "$MOAT" ] || MOAT=$bench_repo/.build/debug/moat
fi
export MOAT
CRITEST_SH_LIB=1 source "$bench_repo/Tests/Conformance/critest.sh"
crictl_bin=${CRICTL:-/var/cache/moat/bin/crictl}
pods=${PODS:-50}
reps=${REPS:-5}
image=registry.k8s.io/e2e-test-images/busybox:1.29-2

cc() { timeout 120 "$crictl_bin" -r "unix://$sock" -i "unix://$sock" -t 60s "$@"; }

configs() {
    local w=$1 i
    mkdir -p "$w/cfg" "$w/logs"
    for i in $(seq 0 $((pods + reps + 1))); do
        cat > "$w/cfg/pod-$i.json" <<EOF
{"metadata": {"name": "bench-$i", "namespace": "bench", "uid": "bench-uid-$i", "attempt": 0},
 "log_directory": "$w/logs/bench-$i", "linux": {}}
EOF
        cat > "$w/cfg/ctr-$i.json" <<EOF
{"metadata": {"name": "idle"}, "image": {"image": "$image"},
 "command": ["sleep", "36000"], "log_path": "idle/0.log", "linux": {}}
EOF
    done
}

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# Starts pod i; prints its container id once the container runs. With a
# third argument, appends to that file how long each step took, in ms:
# runp, create, start, and until `ps` lists the container running.
start_pod() {
    local w=$1 i=$2 phases=${3:-} p c t a b d
    t=$(date +%s%N)
    p=$(cc runp "$w/cfg/pod-$i.json") || return 1
    a=$(ms_since "$t"); t=$(date +%s%N)
    c=$(cc create "$p" "$w/cfg/ctr-$i.json" "$w/cfg/pod-$i.json") || return 1
    b=$(ms_since "$t"); t=$(date +%s%N)
    cc start "$c" >/dev/null || return 1
    d=$(ms_since "$t"); t=$(date +%s%N)
    for _ in $(seq 1 600); do
        if [ -n "$(cc ps -q --id "$c" --state Running 2>/dev/null)" ]; then
            [ -z "$phases" ] || echo "$a $b $d $(ms_since "$t")" >> "$phases"
            echo "$c"; return 0
        fi
        sleep 0.05
    done
    return 1
}

remove_all() { cc rmp -f -a >/dev/null 2>&1 || true; }

pss_of() { awk '/^Pss:/ {print $2; exit}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

bench_runtime() {
    local r=$1 d=$2 w=$2/work daemon
    mkdir -p "$w"
    case $r in
        moat) start_moat "$d"; sock=$d/moat.sock; daemon=$(cat "$d/moat.pid") ;;
        moat=*) moat=${r#moat=} start_moat "$d"; sock=$d/moat.sock; daemon=$(cat "$d/moat.pid") ;;
        containerd) start_containerd "$d" runc; sock=$d/containerd.sock; daemon=$(cat "$d/containerd.pid") ;;
        containerd-runsc) start_containerd "$d" runsc; sock=$d/containerd.sock; daemon=$(cat "$d/containerd.pid") ;;
        *) die "unknown runtime $r" ;;
    esac
    configs "$w"
    cc pull "$image" >/dev/null
    # Warm-up: pulls the pause image (containerd) and fills caches.
    local warm
    warm=$(start_pod "$w" $((pods + reps + 1))) || echo "warm-up pod did not start" >&2
    remove_all

    local i t0 t1 lat=()
    for i in $(seq 1 "$reps"); do
        t0=$(date +%s%N)
        if start_pod "$w" $((pods + i)) "$w/phases" >/dev/null; then
            t1=$(date +%s%N); lat+=($(( (t1 - t0) / 1000000 )))
        fi
    done
    remove_all
    local lat_med lat_min lat_max
    lat_med=$(printf '%s\n' "${lat[@]}" | median)
    lat_min=$(printf '%s\n' "${lat[@]}" | sort -n | head -1)
    lat_max=$(printf '%s\n' "${lat[@]}" | sort -n | tail -1)
    local k phase=""
    for k in 1 2 3 4; do phase+="${phase:+ / }$(awk -v k=$k '{print $k}' "$w/phases" 2>/dev/null | median)"; done

    # The processes present before the batch are not the pods'.
    local before=" $(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ') "
    local daemon_pss0
    daemon_pss0=$(pss_of "$daemon")
    t0=$(date +%s%N)
    local starters=()
    for i in $(seq 0 $((pods - 1))); do
        ( start_pod "$w" "$i" > "$w/started-$i" 2>/dev/null || rm -f "$w/started-$i" ) &
        starters+=($!)
    done
    # Only these: a bare `wait` would also wait for the runtime daemon,
    # itself a background job of this shell.
    wait "${starters[@]}" || true
    t1=$(date +%s%N)
    local wall=$(( (t1 - t0) / 1000000 )) running
    # The batch's own containers (runsc may still list earlier pods it failed
    # to remove).
    running=$(cat "$w"/started-* 2>/dev/null | grep -c . || true)
    sleep 5
    local total=0 pid comm pss
    : > "$w/pss"
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        case $before in *" $pid "*) continue ;; esac
        [ "$pid" = "$daemon" ] && continue
        pss=$(pss_of "$pid"); [ -n "$pss" ] || pss=0
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || echo '?')
        echo "$comm $pss" >> "$w/pss"
        total=$((total + pss))
    done
    local daemon_pss per_pod=n/a
    daemon_pss=$(pss_of "$daemon")
    [ "$running" -gt 0 ] && per_pod=$(awk -v t="$total" -v n="$running" 'BEGIN {printf "%.1f", t / n / 1024}')
    local top
    top=$(awk '{s[$1] += $2; n[$1]++} END {for (c in s) printf "%s %d %d\n", c, n[c], s[c]}' "$w/pss" | sort -k3 -nr | head -5 |
        awk -v p="$running" '{printf "%s%s ×%d %.1f MB", (NR > 1 ? ", " : ""), $1, $2, (p > 0 ? $3 / p / 1024 : 0)}')
    remove_all
    case $r in moat*) stop_moat "$d" ;; *) stop_containerd "$d" ;; esac
    echo "| $r | $lat_med | $lat_min–$lat_max | $phase | $wall | $running/$pods | $per_pod | $(awk -v a="$daemon_pss0" -v b="$daemon_pss" 'BEGIN {printf "%.0f → %.0f", a / 1024, b / 1024}') | $top |" >> "$out/table"
}

bench_inner() {
    out=$1; shift
    ip link set lo up
    mkdir -p /run/netns && mount -t tmpfs -o mode=755 bench-netns /run/netns
    reg="$out/registry"
    mkdir -p "$reg"
    trap 'for r in "$out"/run-*; do [ -d "$r" ] || continue; (sock=$r/moat.sock; [ -S "$r/containerd.sock" ] && sock=$r/containerd.sock; remove_all); stop_containerd "$r"; stop_moat "$r"; done; bash "$repo/Tests/Support/registry.sh" stop "$reg"; kill_rest; remove_cgroups "$out/cgroups.before"' EXIT
    trap 'exit 130' INT TERM HUP
    bash "$repo/Tests/Support/registry.sh" start "$reg" "$port"
    local L="$out/layout"
    skopeo copy -q --dest-tls-verify=false "oci:$L:busybox" "docker://127.0.0.1:$port/e2e-test-images/busybox:1.29-2" >/dev/null
    skopeo copy -q --dest-tls-verify=false "oci:$L:pause" "docker://127.0.0.1:$port/pause:3.9" >/dev/null
    : > "$out/table"
    local r
    for r in "$@"; do
        local rd="$out/run-$(echo "$r" | tr -c 'a-zA-Z0-9-\n' '_')"
        rm -rf "$rd"; mkdir -p "$rd"
        echo "== $r" >&2
        bench_runtime "$r" "$rd" || echo "| $r | failed: see $rd | | | | | | | |" >> "$out/table"
    done
}

bench_main() {
    case ${1:-} in
        inner) shift; bench_inner "$@"; return ;;
        -h|--help) sed -n '2,24p' "$0"; return ;;
    esac
    [ "$(id -u)" = 0 ] || die "needs root"
    # Built (once per version) by Tests/Conformance/cri-tools.sh when missing.
    [ -x "$crictl_bin" ] || [ -n "${CRICTL:-}" ] || bash "$bench_repo/Tests/Conformance/cri-tools.sh" >/dev/null || true
    [ -x "$crictl_bin" ] || die "no crictl at $crictl_bin (Tests/Conformance/cri-tools.sh builds it)"
    [ -x "$MOAT" ] || die "no moat at $MOAT (swift build -c release --product moat)"
    local o=${1:-$(mktemp -d /tmp/bench-cri.XXXXXX)}
    [ $# -gt 0 ] && shift
    [ $# -gt 0 ] || set -- moat containerd containerd-runsc
    o=$(mkdir -p "$o" && cd "$o" && pwd -P)
    build_images "$o"
    cgroup_list > "$o/cgroups.before"
    trap "remove_cgroups '$o/cgroups.before'" EXIT
    trap 'exit 130' INT TERM HUP
    unshare --net --mount --propagation private --pid --ipc --fork --mount-proc --kill-child -- bash "$0" inner "$o" "$@"
    echo "pods: $pods concurrent, $reps sequential; moat: $MOAT; $(nproc) CPUs; $(date -u +%F)"
    echo
    echo "| runtime | pod start, median ms | min–max ms | runp / create / start / seen running, median ms | $pods pods concurrently, ms | running | PSS per idle pod, MB | daemon PSS before → after, MB | largest per pod (process ×count MB/pod) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    cat "$o/table"
}

bench_main "$@"
