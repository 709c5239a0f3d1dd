#!/usr/bin/env bash
# Regenerates the etcd v3 messages (*.pb.swift) and the KV, Watch and Lease gRPC
# client stubs (rpc.grpc.swift) from the .proto files under proto/.
#
#   ./regenerate.sh                 # from the committed proto/ copies
#   ./regenerate.sh ETCD_SOURCE     # first refresh proto/ from an etcd source tree
#
# proto/ holds etcd's etcdserver/etcdserverpb/rpc.proto, mvcc/mvccpb/kv.proto and
# auth/authpb/auth.proto (tag v3.4.23, the version of Debian's etcd-server), laid out
# under the import paths rpc.proto uses, and changed only so that a stock protoc
# needs nothing else:
#   - the gogoproto and google.api imports and every option from them (they steer
#     Go's code generator and the JSON gateway) are removed;
#   - the Cluster, Maintenance and Auth services are removed (Moat's store uses
#     KV, Watch and Lease; their messages stay).
#
# Needs protoc (Debian: protobuf-compiler) and python3 (only with ETCD_SOURCE). The
# two plugins are built once, in a scratch package outside the tree, as
# Sources/CRIAPI/regenerate.sh does.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ge 1 ]; then
    python3 - "$1" "$here/proto" <<'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
files = {"etcdserver/etcdserverpb/rpc.proto": "etcdserverpb/rpc.proto",
         "mvcc/mvccpb/kv.proto": "etcd/mvcc/mvccpb/kv.proto",
         "auth/authpb/auth.proto": "etcd/auth/authpb/auth.proto"}
for s, d in files.items():
    text = open(os.path.join(src, s)).read()
    text = re.sub(r'^import "(gogoproto|google)/[^"]*";\n', "", text, flags=re.M)
    text = re.sub(r"^option \(gogoproto\.[^;]*;\n", "", text, flags=re.M)
    text = re.sub(r"\[\(gogoproto\.[^\]]*\]", "", text)
    # option (google.api.http) = { ... }; (braces may nest) inside an rpc's braces
    while (i := text.find("option (google.api.http) = {")) >= 0:
        j, depth = text.index("{", i), 0
        while True:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0: break
        assert text[j] == ";"
        text = text[:i].rstrip(" ") + text[j + 1:].lstrip(" \n")
    text = re.sub(r"\{\s*\}", "{}", text)
    for svc in ("Cluster", "Maintenance", "Auth"):
        text = re.sub(r"^service %s \{.*?^\}\n\n?" % svc, "", text, flags=re.M | re.S)
    assert "gogoproto" not in text and "google.api" not in text, s
    os.makedirs(os.path.dirname(os.path.join(dst, d)), exist_ok=True)
    open(os.path.join(dst, d), "w").write(text)
PY
fi
work="${MOAT_PROTOGEN_DIR:-/var/cache/moat/protogen}"
mkdir -p "$work/Sources/Dummy"
cat > "$work/Package.swift" <<'PKG'
// swift-tools-version:6.1
import PackageDescription
let package = Package(name: "protogen",
  dependencies: [
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
  ],
  targets: [ .target(name: "Dummy") ])
PKG
: > "$work/Sources/Dummy/d.swift"
(cd "$work" && swift build -c release --product protoc-gen-grpc-swift-2 && swift build -c release --product protoc-gen-swift)
bin="$work/.build/release"
cd "$here"
protos=(etcd/mvcc/mvccpb/kv.proto etcd/auth/authpb/auth.proto etcdserverpb/rpc.proto)
protoc --plugin=protoc-gen-swift="$bin/protoc-gen-swift" -I proto \
       --swift_out=. --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath "${protos[@]}"
protoc --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" -I proto \
       --grpc-swift-2_out=. --grpc-swift-2_opt=Visibility=Public --grpc-swift-2_opt=FileNaming=DropPath \
       --grpc-swift-2_opt=Server=false etcdserverpb/rpc.proto
