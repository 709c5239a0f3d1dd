#!/usr/bin/env bash
# Service request latency through the node agent's service proxy, next to a direct
# connection to the same pod, in one run: `moat server` in a network namespace of the
# script's own (its pods on a bridge CNI network there), one busybox httpd pod behind a
# NodePort Service, and curl from the node's namespace timing N requests (new connection
# each, `time_total`) to the pod's IP:8080 (direct) and to 127.0.0.1:NODEPORT (the proxy's
# listener: the same relay code a ClusterIP listener in a pod runs). Prints p50/p90/p99 in ms.
#
#   bench/service.sh [N]          (default 300)
#
# Environment: MOAT (default .build/release/moat, else .build/debug/moat). Needs root,
# kubectl, curl, ip, the CNI plugins, and the busybox rootfs (rootfs/busybox.sh). No traffic
# leaves the namespace; on exit the server stops its pods and the namespace is deleted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
if [ -z "${MOAT:-}" ]; then
    MOAT=$repo/.build/release/moat
    [ -x "$MOAT" ] || MOAT=$repo/.build/debug/moat
fi
n=${1:-300}
sh "$repo/rootfs/busybox.sh" >/dev/null
ns=moatsvc$$
work=$(mktemp -d /tmp/moat-svc-bench.XXXXXX)
server=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server"
        for _ in $(seq 1 600); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$server" 2>/dev/null || true
    fi
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { nsenter --net="/run/netns/$ns" -- "$@"; }
mkdir -p "$work/cni"
cat > "$work/cni/10-pods.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "$ns", "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
 "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$work/ipam"}}]}
EOF
nsenter --net="/run/netns/$ns" -- "$MOAT" server --data-dir "$work/data" --listen 127.0.0.1:6443 --node-name bench --cluster-dns 127.0.0.10 \
    --cni-conf-dir "$work/cni" --rootfs-image "busybox=$repo/.cache/rootfs/busybox" >"$work/server.log" 2>&1 &
server=$!
kc() { in_ns kubectl --kubeconfig "$work/data/kubeconfig" --request-timeout 30s "$@"; }
for _ in $(seq 1 300); do [ -f "$work/data/kubeconfig" ] && kc get node bench 2>/dev/null | grep -q ' Ready ' && break; sleep 0.5; done
kc apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: http
        image: busybox
        command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www']
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
EOF
for _ in $(seq 1 300); do
    [ -n "$(kc get endpoints web -o 'jsonpath={.subsets[*].addresses[*].ip}' 2>/dev/null)" ] && break; sleep 0.5
done
pod=$(kc get endpoints web -o 'jsonpath={.subsets[0].addresses[0].ip}')
np=$(kc get service web -o 'jsonpath={.spec.ports[0].nodePort}')
[ -n "$pod" ] && [ -n "$np" ] || { echo "service.sh: the pod or its NodePort never came up" >&2; tail -20 "$work/server.log" >&2; exit 1; }
for _ in $(seq 1 100); do in_ns curl -fsS -o /dev/null "http://127.0.0.1:$np/" 2>/dev/null && break; sleep 0.3; done
# Interleaved, one request of each path in turn, so both see the same load.
for _ in $(seq 1 "$n"); do
    in_ns curl -fsS -o /dev/null -w '%{time_total}\n' "http://$pod:8080/" >> "$work/direct"
    in_ns curl -fsS -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$np/" >> "$work/proxy"
done
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100); if (i<1) i=1; printf "%.2f", a[i]*1000}'; }
echo "# Service latency: $n requests each (interleaved), a new TCP connection per request, moat $( [ "${MOAT#*release}" != "$MOAT" ] && echo release || echo debug) build"
echo
echo "| path | p50 ms | p90 ms | p99 ms |"
echo "| --- | --- | --- | --- |"
echo "| direct to the pod ($pod:8080) | $(pct 50 < "$work/direct") | $(pct 90 < "$work/direct") | $(pct 99 < "$work/direct") |"
echo "| through the service proxy (NodePort $np) | $(pct 50 < "$work/proxy") | $(pct 90 < "$work/proxy") | $(pct 99 < "$work/proxy") |"
