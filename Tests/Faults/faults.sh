#!/usr/bin/env bash
# Fault injection: kill -9 one of Moat's processes at a random moment, many
# times, and check that nothing is left on the host and no acknowledged
# state is lost.
#
#   Tests/Faults/faults.sh [-n ROUNDS] [-s SCENARIO]... [-m MOAT] [-r ROOTFS]
#
# Scenarios (default: run, oci, api, node and control; cri and cri-cni need crictl, built by
# Tests/Conformance/cri-tools.sh), each ROUNDS times
# (default 100):
#   run  `moat run` of a busy shell (forks, file writes through the Gofer,
#        a published port); the victim is the launcher, the Gofer, the
#        Sentry or a stub, after 0-1.5 s. The launcher must end within
#        15 s, every process of the sandbox must be gone, the port free,
#        and no mount of the root file system left in the host's table.
#   oci  runc's command line: create + start a container with its own
#        cgroup, kill -9 its Gofer, Sentry, a stub or the container's init
#        pid; `moat state` must say stopped, `moat delete` must succeed and
#        leave no process, state directory or cgroup.
#   api  `moat apiserver` on SQLite under a stream of creates; kill -9 it,
#        restart it: every create it acknowledged (201) must be there.
#   cri  `moat cri` with a pod (crictl runp/create/start); the victim is the
#        server, the pod's Sentry, its container's Gofer or a stub. A
#        restarted server reports what runs; stopp + rmp leave no process,
#        mount, state directory, cgroup or network namespace.
#   cri-cni  the same with a CNI network (bridge, host-local, portmap) whose
#        plugins run in a node namespace the script makes: no veth, address
#        lease or portmap rule of the pod may be left there.
#   node `moat controlplane` + `moat cri` + `moat node` with a Deployment of
#        two pods; one pod is deleted and the agent killed -9 around it,
#        then restarted: the runtime must agree with the API (Sentries ==
#        Running pods == replicas), the untouched pod keeps its sandbox and
#        never restarts; deleting the Deployment leaves nothing behind.
#   control  the same cluster; `moat controlplane` (API server, scheduler,
#        controllers) killed -9 0-1.5 s after a scale or a rolling update
#        was acknowledged, then restarted: the change is still there and
#        within 60 s pods, pod Sentries and the Deployment's status agree
#        with it (no pod of an old template left, none twice).
#
# Prints one line per scenario (rounds, victims, failures); exits 1 if any
# round failed, with what was left behind. Needs root. Loopback only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rounds=100 scenarios=() moat="$repo/.build/debug/moat" rootfs="$repo/.cache/rootfs/busybox"
while [ $# -gt 0 ]; do
    case "$1" in
        -n) rounds="$2"; shift 2 ;;
        -s) scenarios+=("$2"); shift 2 ;;
        -m) moat="$2"; shift 2 ;;
        -r) rootfs="$2"; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "faults.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(run oci api node control)
[ "$(id -u)" = 0 ] || { echo "faults.sh: needs root" >&2; exit 2; }
[ -x "$moat" ] || { echo "faults.sh: no moat binary at $moat" >&2; exit 2; }
[ -x "$rootfs/bin/busybox" ] || { echo "faults.sh: no busybox rootfs at $rootfs (bash rootfs/busybox.sh)" >&2; exit 2; }

work=$(mktemp -d /tmp/moat-faults.XXXXXX)
tag="mfi$$"
failures=0
cleanup() {
    # Whatever a failed or interrupted round left: kill it, so the script
    # itself leaves nothing. Sandboxes carry the tag (names, hostnames: a
    # pod's Sentry outlives a killed moat cri, and its Gofers end with it);
    # the servers of the cluster and cri scenarios carry the work directory.
    for p in $(pgrep -f "$tag|$work" 2>/dev/null); do [ "$p" != $$ ] && kill -9 "$p" 2>/dev/null || true; done
    for m in $(awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
    ip netns del "$tag-node" 2>/dev/null || true
    undo_netns_mount
    for id in $(ls "$work/ocistate" 2>/dev/null); do "$moat" --root "$work/ocistate" delete --force "$id" >/dev/null 2>&1 || true; done
    for d in /sys/fs/cgroup/*/"$tag"-* /sys/fs/cgroup/"$tag"-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done
    if [ -n "${MOAT_FAULTS_KEEP:-}" ]; then echo "faults.sh: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Network namespaces made since the scenario began ($base_netns) and still
# there; one another run removed meanwhile does not count.
check_netns_left() {
    local new; new=$(comm -13 <(echo "$base_netns") <(netns_list))
    [ -z "$new" ] || fail "network namespaces left: $(echo $new | head -c 200)"
}
netns_mount_ours=0
undo_netns_mount() {
    [ "${netns_mount_ours:-0}" = 1 ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ] && umount /run/netns 2>/dev/null && netns_mount_ours=0
    return 0
}
fail() { echo "  FAIL [$scenario round $round, victim $victim]: $*" >&2; failures=$((failures + 1)); }
rand_ms() { echo $((RANDOM % $1)); }
sleep_ms() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The pid and start time of every descendant of $1 (and $1): "pid:start ...".
tree() {
    local todo=("$1") out=() p
    while [ ${#todo[@]} -gt 0 ]; do
        p=${todo[0]}; todo=("${todo[@]:1}")
        [ -r "/proc/$p/stat" ] || continue
        out+=("$p:$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$p/stat" 2>/dev/null)")
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do todo+=("$c"); done
    done
    echo "${out[@]}"
}
# Those of a tree (from `tree`) that still run (same pid, same start time).
alive() {
    local left=() e p s
    for e in $1; do
        p=${e%%:*}; s=${e#*:}
        [ -r "/proc/$p/stat" ] && [ "$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$p/stat" 2>/dev/null)" = "$s" ] && left+=("$p($({ tr '\0' ' ' < /proc/"$p"/cmdline; } 2>/dev/null | cut -c1-60))")
    done
    echo "${left[@]}"
}
# Role of a pid inside a sandbox: launcher, gofer, zygote, sentry, stub, app.
# A stub is any child of a Sentry (its cmdline is the Sentry's, or empty). A
# pod's Gofer zygote (`moat gofer --zygote`) is not a container's Gofer:
# killing it ends no container (the Gofers it forked live on), so it is never
# the "gofer" victim whose container must end.
arg1() { { tr '\0' '\n' < "/proc/$1/cmdline"; } 2>/dev/null | sed -n 2p; }
ppid_of() { awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$1/stat" 2>/dev/null; }
role() {
    local pp; pp=$(ppid_of "$1")
    if [ -n "$pp" ] && [ "$(arg1 "$pp")" = sentry ] && [ "$(arg1 "$(ppid_of "$pp")")" != sentry ]; then echo stub; return; fi
    case "$(arg1 "$1")" in
        sentry) echo sentry ;;
        gofer) if tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q -- ' --zygote'; then echo zygote; else echo gofer; fi ;;
        run|create|start) echo launcher ;;
        *) echo app ;;
    esac
}
pick() { # pick ROLE TREE...: one pid of that role, at random, or nothing
    local e p want=$1 found=(); shift
    for e in $*; do p=${e%%:*}; [ "$(role "$p")" = "$want" ] && found+=("$p"); done
    [ ${#found[@]} -gt 0 ] && echo "${found[$((RANDOM % ${#found[@]}))]}"
    return 0
}
# The workload's output keeps growing, with no failed fork or exec in it.
healthy() {
    local a b; a=$(stat -c %s "$1"); sleep 1; b=$(stat -c %s "$1")
    [ "$b" -gt "$a" ] && ! grep -q -i 'cannot allocate\|can.t fork\|not found' "$1"
}
host_mounts() { grep -c -- "$rootfs\|$work" /proc/1/mountinfo || true; }

scenario_run() {
    local victims=(launcher gofer sentry stub) base_mounts; base_mounts=$(host_mounts)
    for round in $(seq 1 "$rounds"); do
        victim=${victims[$((RANDOM % 4))]}
        local port; port=$(free_port)
        "$moat" run --rootfs "$rootfs" --hostname "$tag-$round" -p "127.0.0.1:$port:8080" -- \
            sh -c 'httpd -p 8080 -h /etc; i=0; while true; do echo $i > /tmp/f$((i % 8)); cat /tmp/f* >/dev/null; ls / >/dev/null; echo $i; i=$((i + 1)); done' \
            >"$work/run.out" 2>&1 &
        local launcher=$!
        sleep_ms "$(rand_ms 1500)"
        local t; t=$(tree "$launcher")
        local pid; pid=$(pick "$victim" $t)
        if [ -z "$pid" ]; then
            # Not started that far yet (or no stub at this instant): the launcher then.
            victim=launcher; pid=$launcher
        fi
        kill -9 "$pid" 2>/dev/null || true
        local waited=0
        while kill -0 "$launcher" 2>/dev/null && [ $waited -lt 30 ]; do sleep 0.1; waited=$((waited + 1)); done
        if [ "$victim" = stub ] && kill -0 "$launcher" 2>/dev/null; then
            # A stub of one process (not the master) may die alone, as that
            # process would of SIGKILL; the sandbox must then go on working.
            # Or it was the shell's own address space: the shell dies when it
            # next runs (after its child), and the sandbox ends with it.
            if ! healthy "$work/run.out"; then
                while kill -0 "$launcher" 2>/dev/null && [ $waited -lt 150 ]; do sleep 0.1; waited=$((waited + 1)); done
                kill -0 "$launcher" 2>/dev/null && fail "the sandbox stopped working after a stub was killed, and did not end: $(grep -m1 -i 'cannot\|can.t' "$work/run.out")"
            fi
            kill -9 "$launcher" 2>/dev/null || true
        fi
        while kill -0 "$launcher" 2>/dev/null && [ $waited -lt 150 ]; do sleep 0.1; waited=$((waited + 1)); done
        if kill -0 "$launcher" 2>/dev/null; then fail "the launcher did not end within 15 s"; kill -9 "$launcher" 2>/dev/null || true; fi
        wait "$launcher" 2>/dev/null || true
        local left=""; for _ in $(seq 150); do left=$(alive "$t"); [ -z "$left" ] && break; sleep 0.1; done
        [ -z "$left" ] || fail "processes left: $left"
        port_free "$port" || fail "port $port still served"
        [ "$(host_mounts)" = "$base_mounts" ] || fail "host mounts of the rootfs changed: $(grep -- "$rootfs\|$work" /proc/1/mountinfo | head -3)"
        count[$victim]=$((${count[$victim]:-0} + 1))
    done
}

ocistatus() { "$moat" --root "$work/ocistate" state "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || echo "?"; }

scenario_oci() {
    local victims=(gofer sentry stub stub) bundle="$work/bundle"
    mkdir -p "$bundle" "$work/ocistate"
    ln -sfn "$rootfs" "$bundle/rootfs"
    (cd "$bundle" && "$moat" spec >/dev/null 2>&1) || true
    [ -f "$bundle/config.json" ] || { echo "faults.sh: moat spec made no config.json" >&2; failures=$((failures + 1)); return; }
    python3 - "$bundle/config.json" "$tag" <<'PY'
import json, sys
p, tag = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "i=0; while true; do echo $i > /tmp/f; cat /tmp/f >/dev/null; ls / >/dev/null; echo $i; i=$((i + 1)); done"]
c["root"] = {"path": "rootfs", "readonly": False}
c.setdefault("linux", {})["cgroupsPath"] = "/" + tag + "-CID"
json.dump(c, open(p, "w"))
PY
    for round in $(seq 1 "$rounds"); do
        victim=${victims[$((RANDOM % 4))]}
        local id="$tag-$round"
        sed -i "s/$tag-[A-Za-z0-9-]*\"/$id\"/" "$bundle/config.json"
        if ! "$moat" --root "$work/ocistate" create --bundle "$bundle" "$id" >"$work/oci.out" 2>&1 </dev/null; then
            fail "create failed: $(tail -3 "$work/oci.out")"; continue
        fi
        "$moat" --root "$work/ocistate" start "$id" >>"$work/oci.out" 2>&1 || { fail "start failed: $(tail -3 "$work/oci.out")"; }
        local init gofer
        read -r init gofer < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["pid"], s.get("goferPid", 0))' "$work/ocistate/$id/state.json" 2>/dev/null || echo "0 0")
        sleep_ms "$(rand_ms 1500)"
        local t; t="$(tree "$init") $(tree "$gofer")"
        local pid; pid=$(pick "$victim" $t)
        [ -n "$pid" ] || { victim=sentry; pid=$init; }
        kill -9 "$pid" 2>/dev/null || true
        local st="" waited=0
        if [ "$victim" = stub ]; then
            sleep 2
            if [ "$(ocistatus "$id")" = running ] && healthy "$work/oci.out"; then
                "$moat" --root "$work/ocistate" kill "$id" KILL >/dev/null 2>&1 || true
            fi
        fi
        while [ $waited -lt 150 ]; do
            st=$(ocistatus "$id")
            [ "$st" = stopped ] && break
            sleep 0.1; waited=$((waited + 1))
        done
        [ "$st" = stopped ] || fail "moat state says '$st' 15 s after the kill$([ "$victim" = stub ] && echo ", and the container stopped working: $(grep -m1 -i 'cannot\|can.t' "$work/oci.out")")"
        "$moat" --root "$work/ocistate" delete "$id" >"$work/oci.out" 2>&1 || { fail "delete failed: $(tail -3 "$work/oci.out")"; "$moat" --root "$work/ocistate" delete --force "$id" >/dev/null 2>&1 || true; }
        local left=""; for _ in $(seq 150); do left=$(alive "$t"); [ -z "$left" ] && break; sleep 0.1; done
        [ -z "$left" ] || fail "processes left: $left"
        [ ! -e "$work/ocistate/$id" ] || fail "state directory left: $work/ocistate/$id"
        local cg; cg=$(ls -d /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/"$id" 2>/dev/null | head -3 || true)
        [ -z "$cg" ] || fail "cgroups left: $cg"
        count[$victim]=$((${count[$victim]:-0} + 1))
    done
}

scenario_api() {
    local data="$work/api" port; port=$(free_port)
    mkdir -p "$data"
    local acked="$work/acked"; : > "$acked"
    local server=0 n=0
    start_api() {
        "$moat" apiserver --listen "127.0.0.1:$port" --data-dir "$data" >"$work/api.out" 2>&1 &
        server=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/v1/namespaces" >/dev/null 2>&1 && return 0; sleep 0.1; done
        return 1
    }
    lost() { # how many acknowledged names one LIST does not show
        curl -sf "http://127.0.0.1:$port/api/v1/namespaces/default/configmaps" | python3 -c '
import json, sys
have = {i["metadata"]["name"] for i in json.load(sys.stdin).get("items", [])}
print(sum(1 for n in open(sys.argv[1]).read().split() if n not in have))' "$acked" 2>/dev/null || echo "all (the LIST failed)"
    }
    for round in $(seq 1 "$rounds"); do
        victim=apiserver
        start_api || { fail "the API server did not come up: $(tail -3 "$work/api.out")"; kill -9 "$server" 2>/dev/null; continue; }
        # Every acknowledged create from earlier rounds is still there.
        local missing; missing=$(lost)
        [ "$missing" = 0 ] || fail "$missing acknowledged ConfigMaps lost after a kill -9"
        ( while true; do
            n=$((n + 1)); name="cm-$round-$n"
            code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
                "http://127.0.0.1:$port/api/v1/namespaces/default/configmaps" \
                -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"$name\"},\"data\":{\"k\":\"$round\"}}" 2>/dev/null || true)
            [ "$code" = 201 ] && echo "$name" >> "$acked"
          done ) &
        local writer=$!
        sleep_ms "$((50 + $(rand_ms 500)))"
        kill -9 "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        sleep 0.2
        kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true
        count[$victim]=$((${count[$victim]:-0} + 1))
    done
    start_api || fail "the API server did not come up at the end"
    local missing total; total=$(wc -l < "$acked"); missing=$(lost)
    [ "$missing" = 0 ] || fail "$missing of $total acknowledged ConfigMaps lost"
    kill -9 "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
    echo "  api: $total creates acknowledged across $rounds kills, $missing lost"
}

# `moat cri` with one pod (a container writing in a loop) per round; the
# victim is the CRI server itself, the pod's Sentry, a Gofer or a stub.
# Killing the server must not touch the pod: the restarted server finds its
# records, and what it reports has to agree with what runs (the pod READY
# while its Sentry lives, NOTREADY with the container EXITED once it is
# gone; a container whose root Gofer died EXITED, its pod still READY). Then StopPodSandbox + RemovePodSandbox must leave no process,
# mount, cgroup, state directory or network namespace.
#
# cri-cni: the same with a CNI network (bridge with host-local addresses,
# then portmap with a host port), its plugins run inside a node network
# namespace the script makes (wrapper scripts: `ip netns exec`), so no
# bridge, veth or rule touches the host's own namespace. After each round,
# the node namespace must hold no veth, no address lease and no portmap
# rule of the pod, whatever was killed: RemovePodSandbox runs CNI DEL even
# when the pod's namespace died with its Sentry.
scenario_cri() {
    local cni=${1:-}
    local crictl="${CRICTL:-/var/cache/moat/bin/crictl}"
    # Built (once per version) by Tests/Conformance/cri-tools.sh when missing.
    [ -x "$crictl" ] || [ -n "${CRICTL:-}" ] || bash "$repo/Tests/Conformance/cri-tools.sh" >/dev/null || true
    [ -x "$crictl" ] || { echo "faults.sh: the cri scenarios need crictl (Tests/Conformance/cri-tools.sh builds it)" >&2; failures=$((failures + 1)); return; }
    local d="$work/cri$cni" server=0
    mkdir -p "$d/logs"
    local sock="$d/cri.sock"
    local cri=("$moat" cri --listen "unix://$sock" --root "$d/root" --state "$d/state" --rootfs-image "busybox=$rootfs")
    local node="$tag-node" ports=""
    if [ -n "$cni" ]; then
        for b in bridge host-local portmap; do
            [ -x "/usr/lib/cni/$b" ] || { echo "faults.sh: cri-cni needs /usr/lib/cni/$b (containernetworking-plugins)" >&2; failures=$((failures + 1)); return; }
        done
        command -v iptables-save >/dev/null || { echo "faults.sh: cri-cni needs iptables" >&2; failures=$((failures + 1)); return; }
        mkdir -p "$d/cni/bin" "$d/cni/conf"
        # iproute2 makes /run/netns a mount point (a bind mount onto itself) with its first
        # namespace and never undoes it: undone at the end when this run made it.
        mountpoint -q /run/netns 2>/dev/null || netns_mount_ours=1
        ip netns add "$node" || { fail "cannot make the node namespace"; return; }
        ip -n "$node" link set lo up
        for b in bridge host-local portmap; do
            printf '#!/bin/sh\nexec ip netns exec %s /usr/lib/cni/%s "$@"\n' "$node" "$b" >"$d/cni/bin/$b"
            chmod 755 "$d/cni/bin/$b"
        done
        cat >"$d/cni/conf/10-faults.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "faults", "plugins": [
  {"type": "bridge", "bridge": "faultbr0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$d/cni/ipam", "ranges": [[{"subnet": "10.99.41.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
JSON
        cri+=(--cni-conf-dir "$d/cni/conf" --cni-bin-dir "$d/cni/bin")
        ports=',"port_mappings":[{"protocol":0,"container_port":8080,"host_port":18080}]'
    fi
    # The pod's traces in the node namespace: veths, address leases, portmap rules.
    cni_left() {
        [ -n "$cni" ] || return 0
        local v l r
        v=$(ip -n "$node" -o link show type veth 2>/dev/null | awk -F': ' '{ print $2 }' | tr '\n' ' ')
        l=$(ls "$d/cni/ipam/faults" 2>/dev/null | grep -v -e '^last_reserved_ip' -e '^lock$' | tr '\n' ' ')
        r=$(ip netns exec "$node" iptables-save 2>/dev/null | grep -c -- "$1" || true)
        [ -z "$v" ] || echo "veths: $v"
        [ -z "$l" ] || echo "leases: $l"
        [ "$r" = 0 ] || echo "$r iptables lines naming the pod"
    }
    c() { "$crictl" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 20s "$@"; }
    start_cri() {
        "${cri[@]}" >>"$d/cri.out" 2>&1 &
        server=$!
        for _ in $(seq 100); do c version >/dev/null 2>&1 && return 0; sleep 0.1; done
        return 1
    }
    local base_netns; base_netns=$(netns_list)
    start_cri || { fail "moat cri did not come up: $(tail -3 "$d/cri.out")"; kill -9 "$server" 2>/dev/null; return; }
    local victims=(cri sentry gofer stub)
    for round in $(seq 1 "$rounds"); do
        victim=${FAULT_VICTIM:-${victims[$((RANDOM % 4))]}}
        cat >"$d/pod.json" <<JSON
{"metadata":{"name":"fault-$round","namespace":"faults","uid":"$tag-$round","attempt":0},
 "hostname":"${tag}f$round","log_directory":"$d/logs/$round","linux":{}$ports}
JSON
        cat >"$d/ctr.json" <<JSON
{"metadata":{"name":"writer","attempt":0},"image":{"image":"busybox"},
 "command":["sh","-c","i=0; while true; do echo \$i > /tmp/f; cat /tmp/f; i=\$((i + 1)); done"],
 "log_path":"writer.log","linux":{}}
JSON
        local pod ctr
        pod=$(c runp "$d/pod.json" 2>"$d/err") || { fail "runp failed: $(tail -3 "$d/err")"; continue; }
        ctr=$(c create "$pod" "$d/ctr.json" "$d/pod.json" 2>"$d/err") || { fail "create failed: $(tail -3 "$d/err")"; }
        [ -n "$ctr" ] && { c start "$ctr" >/dev/null 2>"$d/err" || fail "start failed: $(tail -3 "$d/err")"; }
        sleep_ms "$(rand_ms 1500)"
        # The pod's processes: every descendant of the server now (the
        # pod's Sentry and Gofers are its children until it dies).
        local t; t=$(tree "$server")
        local pid
        if [ "$victim" = cri ]; then pid=$server; else pid=$(pick "$victim" $t); fi
        [ -n "$pid" ] || { victim=sentry; pid=$(pick sentry $t); }
        [ -n "$pid" ] || { fail "no Sentry in the pod's process tree"; }
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        if [ "$victim" = cri ]; then
            wait "$server" 2>/dev/null || true
            start_cri || { fail "moat cri did not come back: $(tail -3 "$d/cri.out")"; }
        fi
        # What the server reports must agree with what runs, within 15 s.
        local sentry_alive=no st="" cst="" waited=0
        for e in $t; do p=${e%%:*}; [ "$(role "$p")" = sentry ] && [ -n "$(alive "$e")" ] && sentry_alive=yes; done
        while [ $waited -lt 150 ]; do
            st=$(c inspectp -o go-template --template '{{.status.state}}' "$pod" 2>/dev/null || echo "?")
            cst=$(c inspect -o go-template --template '{{.status.state}}' "$ctr" 2>/dev/null || echo "?")
            if [ "$victim" = cri ] || [ "$victim" = stub ]; then
                [ "$st" = SANDBOX_READY ] && [ "$cst" = CONTAINER_RUNNING ] && break
                [ "$st" = SANDBOX_NOTREADY ] && [ "$cst" = CONTAINER_EXITED ] && break
            elif [ "$victim" = gofer ]; then
                [ "$cst" = CONTAINER_EXITED ] && break
            else
                [ "$st" = SANDBOX_NOTREADY ] && [ "$cst" = CONTAINER_EXITED ] && break
            fi
            sleep 0.1; waited=$((waited + 1))
        done
        if [ "$victim" = cri ]; then
            [ "$sentry_alive" = yes ] && [ "$st" != SANDBOX_READY ] && fail "the pod's Sentry survived the server's kill, yet the restarted server says $st"
            [ "$sentry_alive" = yes ] && [ "$cst" != CONTAINER_RUNNING ] && fail "the pod's Sentry survived the server's kill, yet its container is $cst"
        elif [ "$victim" = gofer ]; then
            # The container's root Gofer: that container ends, the pod stays.
            [ "$cst" = CONTAINER_EXITED ] || fail "the container is '$cst' 15 s after its gofer was killed"
        elif [ "$victim" != stub ]; then
            [ "$st" = SANDBOX_NOTREADY ] || fail "the pod is '$st' 15 s after its $victim was killed"
            [ "$cst" = CONTAINER_EXITED ] || fail "the container is '$cst' 15 s after the pod's $victim was killed"
        fi
        c stopp "$pod" >/dev/null 2>"$d/err" || fail "stopp failed: $(tail -3 "$d/err")"
        c rmp "$pod" >/dev/null 2>"$d/err" || fail "rmp failed: $(tail -3 "$d/err")"
        local left=""; for _ in $(seq 150); do left=$(alive "$(for e in $t; do [ "${e%%:*}" != "$server" ] && echo "$e"; done)"); [ -z "$left" ] && break; sleep 0.1; done
        [ -z "$left" ] || fail "processes left: $left"
        left=$(alive "$(tree "$server" | tr ' ' '\n' | grep -v "^$server:")")
        [ -z "$left" ] || fail "the server still has children after rmp: $left"
        [ "$(host_mounts)" = 0 ] || fail "mounts left: $(grep -- "$work" /proc/1/mountinfo | head -3 | cut -d' ' -f5)"
        local cg; cg=$(find /sys/fs/cgroup -maxdepth 3 -name "*${pod:0:12}*" 2>/dev/null | head -3)
        [ -z "$cg" ] || fail "cgroups left: $cg"
        [ -z "$(ls "$d/state/pods/$pod" 2>/dev/null)" ] || fail "state directory left: $d/state/pods/$pod"
        check_netns_left
        local traces; traces=$(cni_left "$pod")
        [ -z "$traces" ] || fail "the pod's network is left in the node namespace: $traces"
        count[$victim]=$((${count[$victim]:-0} + 1))
    done
    kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
    [ -z "$cni" ] || ip netns del "$node" 2>/dev/null || true
    undo_netns_mount
}

# A one-node cluster for the node and control scenarios, in $work/$1:
# `moat controlplane` (API server, scheduler and controllers on SQLite),
# `moat cri` and `moat node`, each restartable, and a Deployment of busybox
# pods labelled app=$tag. Globals: d, api, cp, cri, agent, base_netns.
cluster_up() {
    d="$work/$1"; mkdir -p "$d/logs"
    cp_port=$(free_port)
    api="http://127.0.0.1:$cp_port" cp=0 cri=0 agent=0
    base_netns=$(netns_list)
    start_cp
    "$moat" cri --listen "unix://$d/cri.sock" --root "$d/root" --state "$d/state" --rootfs-image "busybox=$rootfs" >"$d/cri.out" 2>&1 &
    cri=$!
    for _ in $(seq 100); do curl -sf "$api/healthz" >/dev/null 2>&1 && [ -S "$d/cri.sock" ] && break; sleep 0.1; done
    start_agent
}
# The control plane on the cluster's port and data (cluster_up's first start,
# or again after a kill).
start_cp() {
    "$moat" controlplane --listen "127.0.0.1:$cp_port" --data-dir "$d/cp" >>"$d/cp.out" 2>&1 &
    cp=$!
}
# The control plane again; true once it answers.
restart_cp() {
    start_cp
    for _ in $(seq 150); do curl -sf "$api/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
start_agent() {
    "$moat" node --server "$api" --cri "unix://$d/cri.sock" --name "$tag" --log-directory "$d/logs" \
        --root "$d/agent" --port 0 --eviction-hard 'memory.available<100Mi' >>"$d/node.out" 2>&1 &
    agent=$!
}
# Named network namespaces, but for the cri-cni scenario's own node namespace.
netns_list() { { ls /run/netns 2>/dev/null | grep -v -x "$tag-node" || true; } | sort; }
# pods: "name phase restarts deleting round" for each pod of the Deployment
# (round: the pod's annotation "round", or -).
pods() {
    curl -sf "$api/api/v1/namespaces/default/pods?labelSelector=app%3D$tag" | python3 -c '
import json, sys
for p in json.load(sys.stdin).get("items", []):
    cs = p.get("status", {}).get("containerStatuses") or [{}]
    print(p["metadata"]["name"], p.get("status", {}).get("phase", "-"), cs[0].get("restartCount", 0),
          "deleting" if p["metadata"].get("deletionTimestamp") else "-",
          (p["metadata"].get("annotations") or {}).get("round", "-"))' 2>/dev/null
}
sentries() { local e; for e in $(tree "$cri"); do [ "$(role "${e%%:*}")" = sentry ] && echo "$e"; done; return 0; }
create_deployment() { # create_deployment REPLICAS
    curl -sf -H 'Content-Type: application/json' -X POST "$api/apis/apps/v1/namespaces/default/deployments" -d "{
      \"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"$tag\"},
      \"spec\":{\"replicas\":$1,\"selector\":{\"matchLabels\":{\"app\":\"$tag\"}},
        \"template\":{\"metadata\":{\"labels\":{\"app\":\"$tag\"}},\"spec\":{\"terminationGracePeriodSeconds\":1,
          \"containers\":[{\"name\":\"c\",\"image\":\"busybox\",\"command\":[\"sh\",\"-c\",\"trap 'exit 0' TERM; while true; do sleep 1; done\"]}]}}}}" \
        >/dev/null
}
# converged REPLICAS [ROUND]: that many pods, all Running and none deleting
# (all with the annotation round=ROUND, if given), and as many pod Sentries.
converged() {
    local p; p=$(pods)
    [ "$(printf '%s' "$p" | grep -c .)" = "$1" ] \
        && [ "$(printf '%s' "$p" | awk -v r="${2:-}" '$2 == "Running" && $4 == "-" && (r == "" || $5 == r)' | grep -c .)" = "$1" ] \
        && [ "$(sentries | grep -c .)" = "$1" ]
}
# wait_until COMMAND...: up to 60 s.
wait_until() {
    local waited=0
    until "$@"; do sleep 0.2; waited=$((waited + 1)); [ $waited -lt 300 ] || return 1; done
}
# Deleting the Deployment stops every sandbox; then every process stops,
# and nothing of the cluster may be left on the host.
cluster_down() {
    curl -sf -X DELETE "$api/apis/apps/v1/namespaces/default/deployments/$tag" >/dev/null || fail "cannot delete the Deployment"
    no_pods() { [ -z "$(pods)" ] && [ -z "$(sentries)" ]; }
    wait_until no_pods || true
    [ -z "$(sentries)" ] || fail "pod Sentries left after the Deployment was deleted: $(sentries | wc -l)"
    local t p; t=$(tree "$cri")
    for p in "$agent" "$cri" "$cp"; do
        [ "$p" -gt 0 ] || continue
        kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
    done
    local left; left=$(alive "$t")
    [ -z "$left" ] || fail "processes left: $left"
    [ "$(host_mounts)" = 0 ] || fail "mounts left: $(grep -- "$work" /proc/1/mountinfo | head -3 | cut -d' ' -f5)"
    check_netns_left
    [ -z "$(ls "$d/state/pods" 2>/dev/null)" ] || fail "pod state left: $(ls "$d/state/pods" | head -3)"
}

# `moat controlplane` + `moat cri` + `moat node` running a Deployment of
# two pods; each round one pod is deleted (the agent stops its sandbox and
# makes its replacement) and the agent is killed -9 at a random moment
# around that (every other round within 0.3 s of the replacement's sandbox
# being made, between its CreateContainer and StartContainer), then
# restarted. Within 60 s the runtime must agree with the
# API: as many pod Sentries as Running pods, both equal to the replicas,
# the pod that was not deleted still in the same Sentry (an agent restart
# leaves healthy sandboxes alone) and never restarted. At the end, deleting
# the Deployment stops every sandbox; nothing is left behind.
scenario_node() {
    cluster_up node
    create_deployment 2 || { fail "cannot create the Deployment"; cluster_down; return; }
    wait_until converged 2 || { fail "the Deployment never ran: $(pods | tr '\n' ';') sentries: $(sentries | wc -l)"; cluster_down; return; }
    for round in $(seq 1 "$rounds"); do
        victim=agent
        local before victim_pod keep
        before=$(sentries)
        victim_pod=$(pods | awk 'NR == 1 { print $1 }'); keep=$(pods | awk 'NR == 2 { print $1 }')
        local made; made=$(grep -c ": sandbox " "$d/node.out" || true)
        curl -sf -X DELETE "$api/api/v1/namespaces/default/pods/$victim_pod" >/dev/null || fail "cannot delete pod $victim_pod"
        if [ $((round % 2)) = 0 ]; then
            # Every other round, the moment the replacement's sandbox is made:
            # the agent dies between RunPodSandbox, CreateContainer and
            # StartContainer.
            for _ in $(seq 500); do [ "$(grep -c ": sandbox " "$d/node.out" || true)" -gt "$made" ] && break; sleep 0.01; done
            sleep_ms "$(rand_ms 300)"
        else
            sleep_ms "$(rand_ms 1500)"
        fi
        kill -9 "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true
        sleep_ms "$(rand_ms 500)"
        start_agent
        replaced() { converged 2 && ! pods | grep -q "^$victim_pod "; }
        wait_until replaced || fail "no agreement 60 s after the restart: pods $(pods | tr '\n' ';') sentries $(sentries | wc -l)"
        # The pod nobody touched kept its sandbox and never restarted.
        [ "$(pods | awk -v k="$keep" '$1 == k { print $3 }')" = 0 ] || fail "pod $keep restarted: $(pods | tr '\n' ';')"
        local same=0 e; for e in $before; do alive "$e" | grep -q . && same=$((same + 1)); done
        [ "$same" = 1 ] || fail "$same of the round's two Sentries still run (expected the untouched pod's alone)"
        count[$victim]=$((${count[$victim]:-0} + 1))
    done
    cluster_down
}

# `moat controlplane` (the API server, the scheduler and every controller in
# one process) killed -9 while it acts on a change, then restarted on the
# same data. Each round scales the Deployment (1-3 replicas) or rolls it to a
# new template (annotation round=N), and the kill comes 0-1.5 s after the
# change was acknowledged, while ReplicaSets are made or scaled and pods
# created, bound or deleted. After the restart the change must be there,
# and within 60 s the cluster must agree with it: as many Running pods as
# replicas, all of the new template, none left over from an old ReplicaSet
# and none twice, one pod Sentry each, and the Deployment's status saying so.
scenario_control() {
    cluster_up control
    create_deployment 2 || { fail "cannot create the Deployment"; cluster_down; return; }
    wait_until converged 2 || { fail "the Deployment never ran: $(pods | tr '\n' ';') sentries: $(sentries | wc -l)"; cluster_down; return; }
    local replicas=2 stamp="" patch code got
    deployment() { # "replicas round generation observedGeneration status.replicas updated available"
        curl -sf "$api/apis/apps/v1/namespaces/default/deployments/$tag" | python3 -c '
import json, sys
d = json.load(sys.stdin); s = d.get("status", {})
print(d["spec"].get("replicas"), (d["spec"]["template"]["metadata"].get("annotations") or {}).get("round", "-"),
      d["metadata"].get("generation"), s.get("observedGeneration"), s.get("replicas"), s.get("updatedReplicas"), s.get("availableReplicas"))' 2>/dev/null
    }
    agrees() { # the pods and the Deployment's status both match its spec
        converged "$replicas" "$stamp" && deployment | awk -v r="$replicas" '$3 == $4 && $5 == r && $6 == r && $7 == r' | grep -q .
    }
    for round in $(seq 1 "$rounds"); do
        victim=controlplane
        if [ $((round % 2)) = 1 ]; then
            replicas=$((1 + RANDOM % 3)); patch="{\"spec\":{\"replicas\":$replicas}}"
        else
            stamp=$round; patch="{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"round\":\"$round\"}}}}}"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/merge-patch+json' \
            "$api/apis/apps/v1/namespaces/default/deployments/$tag" -d "$patch" 2>/dev/null || true)
        [ "$code" = 200 ] || fail "the change was not acknowledged (HTTP $code)"
        sleep_ms "$(rand_ms 1500)"
        kill -9 "$cp" 2>/dev/null || true; wait "$cp" 2>/dev/null || true
        sleep_ms "$(rand_ms 500)"
        restart_cp || { fail "the control plane did not come back: $(tail -3 "$d/cp.out")"; break; }
        got=$(deployment)
        [ "$(echo "$got" | awk '{ print $1, $2 }')" = "$replicas ${stamp:--}" ] \
            || fail "the acknowledged change is not there after the restart: spec $got, expected replicas $replicas round ${stamp:--}"
        wait_until agrees \
            || fail "no agreement 60 s after the restart (replicas $replicas round ${stamp:--}): pods $(pods | tr '\n' ';') sentries $(sentries | wc -l) deployment $(deployment)"
        count[$victim]=$((${count[$victim]:-0} + 1))
    done
    cluster_down
}

status=0
for scenario in "${scenarios[@]}"; do
    declare -A count=()
    before=$failures
    round=0 victim=-
    case "$scenario" in
        run) scenario_run ;;
        oci) scenario_oci ;;
        api) scenario_api ;;
        cri) scenario_cri ;;
        cri-cni) scenario_cri -cni ;;
        node) scenario_node ;;
        control) scenario_control ;;
        *) echo "faults.sh: unknown scenario $scenario" >&2; exit 2 ;;
    esac
    summary=""; for k in "${!count[@]}"; do summary+=" $k=${count[$k]}"; done
    echo "$scenario: $rounds rounds, kills:$summary, failures: $((failures - before))"
    unset count
done
[ $failures = 0 ]
