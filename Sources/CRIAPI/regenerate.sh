#!/usr/bin/env bash
# Regenerates api.pb.swift and api.grpc.swift from proto/api.proto.
#
# proto/api.proto is ../shared/specs/cri-api/api.proto with the
# `[debug_redact = true]` field options removed (Debian's protoc 3.21 rejects
# them; they only affect how Go's generated code prints secrets):
#   sed -E 's/ \[debug_redact = true\]//' SPEC > proto/api.proto
#
# Needs protoc (Debian: protobuf-compiler). The two plugins are built once,
# in a scratch package outside the tree, from the same swift-protobuf and
# grpc-swift-protobuf versions the package depends on.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
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
protoc --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
       --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
       -I proto --swift_out=. --swift_opt=Visibility=Public \
       --grpc-swift-2_out=. --grpc-swift-2_opt=Visibility=Public proto/api.proto
