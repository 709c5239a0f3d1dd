#!/usr/bin/env bash
# Scheduler throughput: 10,000 pods on 1,000 simulated nodes (see bench/README.md,
# "Scheduler throughput"). Builds moat in release mode under .build-cp-rel unless
# MOAT points at a binary, runs `moat controlplane-bench`, and writes the report to
# bench/results/<date>-scheduler.md (or --out FILE).
#
#   bench/scheduler/run.sh                     # 1,000 nodes, 10,000 pods, SQLite
#   bench/scheduler/run.sh --store etcd        # on a private etcd started here
#   bench/scheduler/run.sh --store sqlite,etcd # both, one after the other, in one report
#   bench/scheduler/run.sh --nodes 100 --pods 1000 --out /tmp/s.md   # quick check
#   bench/scheduler/run.sh --store etcd --etcd-tmpfs   # diagnostic: etcd's data dir in /dev/shm (its fsyncs cost nothing)
#
# The report records the load average (/proc/loadavg) before and after each store's run:
# on a shared machine the figures move with it.
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=1000 pods=10000 store=sqlite out="bench/results/$(date -u +%Y-%m-%d)-scheduler.md" extra=() etcd_tmpfs=''
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) nodes=$2; shift 2 ;;
        --pods) pods=$2; shift 2 ;;
        --store) store=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --etcd-tmpfs) etcd_tmpfs=1; shift ;;
        *) extra+=("$1"); shift ;;
    esac
done
export PATH="/opt/swift/usr/bin:$PATH"
moat=${MOAT:-}
if [ -z "$moat" ]; then
    swift build -c release --product moat --scratch-path .build-cp-rel >&2
    moat=.build-cp-rel/release/moat
fi

etcd_pid='' tmp=$(mktemp -d) shm=''
# etcd 3.4 has no --unsafe-no-fsync; a data dir on tmpfs is the way to take its fsyncs out.
[ -n "$etcd_tmpfs" ] && shm=$(mktemp -d /dev/shm/moat-bench-etcd.XXXXXX)
cleanup() { [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null; rm -rf "$tmp"; [ -z "$shm" ] || rm -rf "$shm"; }
trap cleanup EXIT
table='' loads=''
for s in ${store//,/ }; do
    args=("${extra[@]}")
    if [ "$s" = etcd ]; then
        # etcd over its gRPC API (EtcdStore), a private single member on loopback.
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        peer=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        etcd --name b --data-dir "${shm:-$tmp}/etcd" --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
            --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
            --initial-cluster "b=http://127.0.0.1:$peer" --logger zap --log-level error >"$tmp/etcd.log" 2>&1 &
        etcd_pid=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
        args+=(--store etcd --etcd-endpoints "http://127.0.0.1:$port")
    elif [ "$s" != sqlite ]; then
        echo "--store: sqlite, etcd or a comma-separated list of them" >&2; exit 2
    fi
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    t=$("$moat" controlplane-bench --nodes "$nodes" --pods "$pods" --data-dir "$tmp/data-$s" "${args[@]}")
    loads+="- $s: load average (1, 5, 15 min) $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"$'\n'
    # one header for all stores
    if [ -z "$table" ]; then table=$t; else table+=$'\n'$(echo "$t" | tail -n +3); fi
    if [ -n "$etcd_pid" ]; then kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; etcd_pid=''; fi
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
{
    echo "# Scheduler throughput, $(date -u +%Y-%m-%d)"
    echo
    echo "Machine: $(nproc) vCPU ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo "Command: \`bench/scheduler/run.sh --nodes $nodes --pods $pods --store $store${etcd_tmpfs:+ --etcd-tmpfs}\` (moat: ${MOAT:-release build})."
    [ -z "$etcd_tmpfs" ] || echo "etcd's data dir was on tmpfs (/dev/shm): its fsyncs cost nothing (a diagnostic, not a durable setup)."
    echo
    printf '%s' "$loads"
    echo
    echo "$table"
} | tee "$out"
