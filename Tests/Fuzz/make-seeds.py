#!/usr/bin/env python3
# Writes the hand-made seed inputs of each fuzz target into corpus/TARGET/
# (seed-*). libFuzzer grows the corpora from these; `fuzz.sh --update-corpus`
# merges what it found back in. Run from anywhere: python3 make-seeds.py
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

def rec(tag, payload):
    return bytes([tag]) + struct.pack("<H", len(payload)) + payload

def s16(b):
    return struct.pack("<H", len(b)) + b

ROOT = 1 << 32          # first FID the Gofer issues: slot 0, generation 1
SECOND = (1 << 32) | 1  # the next one

# gofer-server: [flags] then records [op][len u16][payload]
u64 = lambda v: struct.pack("<Q", v)
u32 = lambda v: struct.pack("<I", v)
i32 = lambda v: struct.pack("<i", v)
WALK, STAT, OPEN, CREATE, MKDIR, SYMLINK, LINK, MKNOD, UNLINK, RENAME, READLINK, GETDENTS, SETATTR, STATFS, CLOSE, GETX, SETX, LISTX, REMX, TMPFILE = 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22
put("gofer-server", "walk-stat", b"\0" + rec(WALK, u64(ROOT) + struct.pack("<H", 1) + s16(b"d")) + rec(STAT, u64(SECOND)))
put("gofer-server", "walk-up", b"\0" + rec(WALK, u64(ROOT) + struct.pack("<H", 2) + s16(b"up") + s16(b"f")) + rec(READLINK, u64(SECOND)))
put("gofer-server", "getdents", b"\0" + rec(GETDENTS, u64(ROOT) + u64(0)) + rec(STATFS, u64(ROOT)))
put("gofer-server", "open-file", b"\0" + rec(WALK, u64(ROOT) + struct.pack("<H", 1) + s16(b"f")) + rec(OPEN, u64(SECOND) + i32(2)))
put("gofer-server", "create", b"\0" + rec(CREATE, u64(ROOT) + i32(0o102) + u32(0o644) + u32(0) + u32(0) + s16(b"new")))
put("gofer-server", "mkdir-rename-unlink", b"\0" + rec(MKDIR, u64(ROOT) + u32(0o755) + u32(0) + u32(0) + s16(b"x"))
    + rec(RENAME, u64(ROOT) + u64(ROOT) + u32(0) + s16(b"x") + s16(b"y")) + rec(UNLINK, u64(ROOT) + i32(0x200) + s16(b"y")))
put("gofer-server", "symlink-link", b"\0" + rec(SYMLINK, u64(ROOT) + u32(0) + u32(0) + s16(b"s") + s16(b"/etc/passwd"))
    + rec(WALK, u64(ROOT) + struct.pack("<H", 1) + s16(b"f")) + rec(LINK, u64(ROOT) + u64(SECOND) + s16(b"hard")))
put("gofer-server", "setattr", b"\0" + rec(SETATTR, u64(ROOT) + u32(0x3f) + u32(0o700) + u32(1) + u32(1) + struct.pack("<q", 3)
    + struct.pack("<qq", 1, 2) + struct.pack("<qq", 3, 4)))
put("gofer-server", "xattr", b"\0" + rec(SETX, u64(ROOT) + s16(b"user.x") + struct.pack("<I", 2) + b"ab" + i32(0))
    + rec(GETX, u64(ROOT) + s16(b"user.x")) + rec(LISTX, u64(ROOT)) + rec(REMX, u64(ROOT) + s16(b"user.x")))
put("gofer-server", "close", b"\0" + rec(CLOSE, struct.pack("<H", 1) + u64(ROOT)) + rec(STAT, u64(ROOT)))
put("gofer-server", "tmpfile", b"\0" + rec(TMPFILE, u64(ROOT) + i32(2) + u32(0o600) + u32(0) + u32(0)))
put("gofer-server", "raw-short", b"\0" + rec(0x80, b"\x01\x00"))
put("gofer-server", "no-handshake", b"\x02" + rec(STAT, u64(ROOT)))

# gofer-client: [flags] then records [call][len][reply body]; a stat is 120 bytes.
stat = u64(1) + u64(2) + u64(1) + u32(0o40755) + u32(0) + u32(0) + u32(0) + u64(0) + struct.pack("<qqq", 4096, 4096, 8) + b"\0" * 48
fidstat = u64(ROOT) + stat
put("gofer-client", "attach-stat", b"\0" + rec(0, fidstat) + rec(2, stat))
put("gofer-client", "walk", b"\0" + rec(1, i32(0) + struct.pack("<H", 1) + fidstat))
put("gofer-client", "walkmany", b"\0" + rec(0x21, i32(2) + struct.pack("<H", 2) + fidstat + fidstat))
dirent = u64(5) + u64(1) + bytes([4]) + s16(b"name")
put("gofer-client", "getdents", b"\0" + rec(12, struct.pack("<H", 1) + dirent))
put("gofer-client", "readlink", b"\0" + rec(11, s16(b"target")))
put("gofer-client", "listxattr", b"\0" + rec(17, struct.pack("<I", 7) + b"user.x\0"))
put("gofer-client", "error", b"\0" + rec(0x42, struct.pack("<H", 2)))

# oci-config: [kind][JSON]
config = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0, "additionalGids": [1]},
                "args": ["sh", "-c", "true"], "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"],
                                 "inheritable": [], "ambient": []},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": True},
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "moat",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777", "size=65536k"]},
               {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]}],
    "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]},
    "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}, {"type": "mount"}],
              "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "resources": {"memory": {"limit": 1048576}, "cpu": {"shares": 512, "quota": 1000, "period": 100000},
                            "pids": {"limit": 10}, "devices": [{"allow": False, "access": "rwm"}]},
              "sysctl": {"net.ipv4.ip_forward": "1"},
              "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                          "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
                                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"], "cgroupsPath": "/moat/x"},
    "annotations": {"a": "b"},
}
put("oci-config", "config", b"\0" + json.dumps(config).encode())
put("oci-config", "process", b"\1" + json.dumps(config["process"]).encode())
put("oci-config", "resources", b"\2" + json.dumps(config["linux"]["resources"]).encode())
put("oci-config", "plan", b"\3" + json.dumps({"argv": ["/bin/sh"], "env": ["A=b"], "cwd": "/", "uid": 0, "gid": 0, "hostname": "h",
                                                "goferFD": 3, "logFD": -1, "debug": False, "strace": False, "overlay": True}).encode())

# api-object: [kind][bytes]
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
       "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh"], "args": ["-c", "sleep 1"],
                                "env": [{"name": "A", "value": "b"}, {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                "ports": [{"containerPort": 80}], "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                                "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "x"}],
                                "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1}}],
                "initContainers": [{"name": "i", "image": "busybox"}],
                "volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}},
                            {"name": "cm", "configMap": {"name": "c", "items": [{"key": "k", "path": "p"}]}}]}}
deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]},
                   "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"]}}}
svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
put("api-object", "pod", b"\0" + json.dumps(pod).encode())
put("api-object", "deployment", b"\0" + json.dumps(deploy).encode())
put("api-object", "service", b"\0" + json.dumps(svc).encode())
put("api-object", "secret", b"\0" + json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}, "data": {"c": "ZA=="}}).encode())
put("api-object", "merge", b"\1" + json.dumps(pod).encode() + b"\0" + json.dumps({"metadata": {"labels": {"app": None}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}).encode())
put("api-object", "jsonpatch", b"\2" + json.dumps(pod).encode() + b"\0" + json.dumps([{"op": "add", "path": "/metadata/labels/x", "value": "y"},
    {"op": "move", "from": "/spec/containers/0", "path": "/spec/containers/-"}, {"op": "test", "path": "/kind", "value": "Pod"}]).encode())
put("api-object", "selector", b"\3app=web,tier in (a,b),!gone,x!=y")
put("api-object", "quantity", b"\x031.5Gi")

# elf: a minimal static x86-64 executable header: one PT_LOAD, a PT_INTERP, PT_GNU_STACK.
def elf(phdrs, etype=2):
    eh = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    eh += struct.pack("<HHIQQQIHHHHHH", etype, 62, 1, 0x401000, 64, 0, 0, 64, 56, len(phdrs), 64, 0, 0)
    body = b"".join(struct.pack("<IIQQQQQQ", *p) for p in phdrs)
    return eh + body + b"/lib/ld.so\0" + b"\xcc" * 64
put("elf", "static", elf([(1, 5, 0, 0x400000, 0x400000, 0x200, 0x1000, 0x1000), (0x6474e551, 6, 0, 0, 0, 0, 0, 16)]))
put("elf", "interp", elf([(3, 4, 64 + 3 * 56, 0, 0, 11, 11, 1), (1, 5, 0, 0, 0, 0x200, 0x1000, 0x1000), (0x6474e551, 7, 0, 0, 0, 0, 0, 16)], etype=3))

# syscall-args: [kind % 6][struct bytes]: 0 iovecs, 1 control messages,
# 2 msghdr (+ iovecs), 3 clone_args, 4 sockaddr_un, 5 an IPv4 address.
iov = lambda pairs: b"".join(struct.pack("<Qq", b, n) for b, n in pairs)
cmsg = lambda level, typ, data: struct.pack("<QiI", 16 + len(data), level, typ) + data + b"\0" * ((-len(data)) % 8)
put("syscall-args", "iovecs", b"\0" + iov([(0x1000, 16), (0x2000, 0x7fff_0000), (0x3000, 0x10000), (0, 0)]))
put("syscall-args", "iovec-negative", b"\0" + iov([(0x1000, 16), (0x2000, -1)]))
put("syscall-args", "cmsg-rights-creds", b"\1" + cmsg(1, 1, i32(3) + i32(4)) + cmsg(1, 2, u32(1) + u32(0) + u32(0)))
put("syscall-args", "cmsg-huge-second", b"\1" + cmsg(1, 1, i32(3)) + struct.pack("<QiI", 2**64 - 1, 1, 1))
put("syscall-args", "msghdr", b"\2" + u64(0x1000) + u32(16) + u32(0) + u64(0x2000) + u64(2) + u64(0x3000) + u64(64) + i32(0) + u32(0)
    + iov([(0x4000, 8), (0x5000, 8)]))
clone = lambda flags, sig=0, stack=0, size=0, tls=0: u64(flags) + u64(0) + u64(0) + u64(0) + u64(sig) + u64(stack) + u64(size) + u64(tls) + u64(0) + u64(0) + u64(0)
put("syscall-args", "clone3-fork", b"\3" + clone(0, 17))
put("syscall-args", "clone3-thread", b"\3" + clone(0x7d0f00, 0, 0x7f0000, 0x10000, 0x7f8000))
put("syscall-args", "clone3-bigger", b"\3" + clone(0x100, 17) + b"\0" * 40)
put("syscall-args", "sun-path", b"\4" + struct.pack("<H", 1) + b"/run/app.sock\0")
put("syscall-args", "sun-abstract", b"\4" + struct.pack("<H", 1) + b"\0name")
put("syscall-args", "ipv4", b"\5" + bytes([10, 96, 0, 10]))

# cri-container: [even][CreateContainerRequest protobuf] or [odd][seccomp profile JSON].
def varint(v):
    out = b""
    while True:
        b, v = v & 0x7f, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out
def pb(field, value):
    if isinstance(value, bool) or isinstance(value, int):
        return varint(field << 3) + varint(int(value) & (2**64 - 1))
    if isinstance(value, str):
        value = value.encode()
    return varint(field << 3 | 2) + varint(len(value)) + value
kv = lambda k, v: pb(1, k) + pb(2, v)
meta = pb(1, pb(1, "app") + pb(2, 0))
imagespec = pb(2, pb(1, "busybox"))
sec = pb(1, pb(1, "NET_BIND_SERVICE") + pb(2, "ALL")) + pb(5, pb(1, 33)) + pb(12, pb(1, 44)) + pb(8, 1000) + pb(11, True) \
    + pb(13, "/proc/kcore") + pb(14, "/proc/sys") + pb(15, pb(1, 0))
config = meta + imagespec + pb(3, "/bin/sh") + pb(4, "-c") + pb(4, "echo hi") + pb(5, "/work") + pb(6, kv("A", "b")) \
    + pb(7, pb(1, "/data") + pb(2, "/var/lib/app") + pb(3, True)) + pb(10, kv("io.kubernetes.container.terminationMessagePath", "/dev/termination-log")) \
    + pb(11, "app/0.log") + pb(15, pb(2, sec))
put("cri-container", "full", b"\0" + pb(1, "podid") + pb(2, config))
put("cri-container", "minimal", b"\0" + pb(2, meta + imagespec))
put("cri-container", "escape-log", b"\0" + pb(2, meta + imagespec + pb(11, "../../etc/x.log")))
put("cri-container", "device", b"\0" + pb(2, meta + imagespec + pb(8, pb(1, "/dev/sda") + pb(2, "/dev/sda") + pb(3, "rwm"))))
put("cri-container", "profile", b"\1" + json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
    {"name": "personality", "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}).encode())

# spdy: [mode % 3][piece seed] then bytes (modes 0, 2) or a frame script (mode 1).
import zlib
def ctl(t, flags, body):
    return struct.pack(">HHB", 0x8003, t, flags) + len(body).to_bytes(3, "big") + body
def spdy_data(sid, body, fin=0):
    return struct.pack(">IB", sid, fin) + len(body).to_bytes(3, "big") + body
def header_block(pairs):
    raw = struct.pack(">I", len(pairs)) + b"".join(struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v for k, v in pairs)
    c = zlib.compressobj()  # no dictionary: the parser must take a plain zlib stream as well
    return c.compress(raw) + c.flush(zlib.Z_SYNC_FLUSH)
syn = ctl(1, 0, struct.pack(">IIH", 1, 0, 0) + header_block([(b"streamtype", b"stdin"), (b"port", b"8080")]))
put("spdy", "raw-session", b"\0\7" + syn + spdy_data(1, b"hello") + ctl(6, 0, struct.pack(">I", 1)) + ctl(3, 0, struct.pack(">II", 1, 5)) + ctl(7, 0, struct.pack(">II", 1, 0)))
put("spdy", "raw-oversized", b"\0\1" + struct.pack(">IB", 1, 0) + b"\xff\xff\xff")
put("spdy", "raw-version2", b"\0\2" + struct.pack(">HHB", 0x8002, 1, 0) + b"\0\0\x0a" + b"\0" * 10)
put("spdy", "primed-data", b"\2\3" + spdy_data(1, b"x" * 100, 1) + ctl(8, 0, struct.pack(">I", 1) + b"\x78"))
# Script ops: [op][stream id u32] then 0/1 SYN_STREAM [n][name len, name, value len, value]...,
# 2 SYN_REPLY, 3 DATA [n][n bytes], 4 large DATA [n] (n * 9973 bytes), 5 RST_STREAM [status u32], 6 PING.
def op(o, sid, rest=b""):
    return bytes([o]) + struct.pack(">I", sid) + rest
def hdrs(pairs):
    return bytes([len(pairs)]) + b"".join(bytes([len(k)]) + k + bytes([len(v)]) + v for k, v in pairs)
exec_streams = b"".join(op(0, 2 * i + 1, hdrs([(b"streamtype", role)])) for i, role in enumerate([b"error", b"stdin", b"stdout", b"resize"]))
put("spdy", "kubectl-exec", b"\1\5" + exec_streams + op(3, 3, b"\4ls\n\0") + op(3, 3, b"\1") + op(6, 1) + op(5, 5, struct.pack(">I", 5)))
put("spdy", "large-data", b"\1\0" + op(0, 1, hdrs([(b"StreamType", b"data"), (b"PORT", b"80"), (b"port", b"81")])) + op(4, 1, b"\xd3") + op(2, 0x80000001))
# A name whose lowercase is longer in UTF-8 ("İ" is 2 bytes, "i̇" 3): the sender once
# counted the name before lowercasing it, and the receiver read a corrupt header block.
put("spdy", "dotted-capital-i", b"\1\5" + op(0, 1, hdrs([("İX".encode(), b"v")])))
