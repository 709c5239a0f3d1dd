// swift-tools-version:6.0
import PackageDescription

// Module map (one module per component; see README "Architecture"):
//   CMoat          C shims: variadic ptrace, raw clone, the stub code page, BPF structs.
//   Platform       how application code is run and trapped (Ptrace/, KVM/).
//   GoferProtocol  the Sentry<->Gofer wire format and the client the Sentry uses.
//   Gofer          the file server confined to the container root.
//   Sentry         the emulated kernel: tasks, memory, signals, VFS, syscalls.
//   Sandbox        starts and supervises a Gofer + Sentry pair (moat run, OCI runtime).
//   SPDY           SPDY/3.1 framing (Kubernetes' streaming protocol): the CRI streaming
//                  server's side and the API server's side toward a runtime.
//   ControlPlane   API server, store, scheduler, controllers.
//   EtcdAPI        etcd v3 messages and KV/Watch/Lease gRPC client stubs, generated once from
//                  Sources/EtcdAPI/proto (see Sources/EtcdAPI/README.md); never edited by hand.
//   CRIAPI         Kubernetes CRI runtime.v1 messages and gRPC stubs, generated once from
//                  Sources/CRIAPI/proto/api.proto (see Sources/CRIAPI/README.md); never edited by hand.
//   Images         the content-addressed image store and the registry client (pull, import, unpack).
//   CRI            `moat cri`: the runtime.v1 RuntimeService/ImageService gRPC server; one Sentry per pod.
//   NodeAgent      `moat node`: the kubelet-like agent that runs the control plane's pods over CRI.
//   Standalone     `moat run -d`, ps, logs, exec, stop, rm...: podman-like sandboxes
//                  without a daemon (records under ROOT/standalone, a supervisor each).
//   SandboxMain    the commands of a sandbox's own processes (moat sentry, gofer, launch).
//   moat           the executable: parses arguments, nothing else.
//   moat-sandbox   its companion: SandboxMain alone, without the control plane, CRI, images
//                  and their libraries, run by every sandbox process when installed next to
//                  moat (Sources/Sandbox/Launch.swift says why).
let package = Package(
    name: "moat",
    products: [
        .executable(name: "moat", targets: ["moat"]),
        .executable(name: "moat-sandbox", targets: ["moat-sandbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.36.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.0.0"),
    ],
    targets: [
        .target(name: "CMoat", linkerSettings: [.linkedLibrary("seccomp"), .linkedLibrary("cap")]),
        .target(name: "Platform", dependencies: ["CMoat"]),
        .target(name: "GoferProtocol", dependencies: ["CMoat"]),
        .target(name: "Gofer", dependencies: ["CMoat", "GoferProtocol"]),
        .target(name: "Sentry", dependencies: ["CMoat", "Platform", "GoferProtocol"]),
        .target(name: "Sandbox", dependencies: ["CMoat", "Sentry", "Gofer"]),
        .target(name: "COCI"),
        .target(name: "OCI", dependencies: ["CMoat", "COCI", "Sandbox", "Sentry", "GoferProtocol"]),
        .target(name: "SandboxMain", dependencies: ["Gofer", "OCI", "Sandbox", "Sentry"]),
        // System C libraries for layer decompression (zlib1g-dev, libzstd-dev).
        .systemLibrary(name: "CZlib"),
        .systemLibrary(name: "CZstd"),
        .target(name: "SPDY", dependencies: ["CZlib"]),
        // Answers grpc-go's bandwidth-estimation PINGs before swift-nio-http2 counts them
        // (HTTP2PingAnswerer.swift): for EtcdStore's client and `moat cri`'s server.
        .target(name: "HTTP2Ping", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        ]),
        .target(name: "EtcdAPI", dependencies: [
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["proto", "README.md", "regenerate.sh"]),
        .target(name: "ControlPlane", dependencies: [
            "SPDY", "EtcdAPI", "HTTP2Ping",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "CRIAPI", dependencies: [
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["proto", "README.md", "regenerate.sh"]),
        .target(name: "Images", dependencies: [
            "CZlib", "CZstd",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "CRI", dependencies: [
            "CRIAPI", "Images", "Sandbox", "Sentry", "OCI", "CMoat", "CZlib", "SPDY", "HTTP2Ping",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
        ]),
        .target(name: "NodeAgent", dependencies: [
            "CRIAPI", "ControlPlane", "CMoat",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Standalone", dependencies: ["Sandbox"]),
        // The Swift runtime and Foundation linked in (still a PIE): every
        // sandbox starts three moat processes (launcher, Gofer, Sentry), and
        // each spent a fifth of its start in ld.so resolving the shared Swift
        // libraries. -static-stdlib alone leaves Foundation's own static
        // dependencies (CoreFoundation, ICU, ...) unresolved; they are named
        // in one group, since they refer to each other.
        .executableTarget(name: "moat", dependencies: [
            "Standalone", "Sandbox", "SandboxMain", "Sentry", "Gofer", "ControlPlane", "OCI", "CRI", "NodeAgent", "Images", "Platform",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        // lld with packed relative relocations (DT_RELR, glibc 2.36): the
        // 4 MB table of 172,000 relative relocations that ld.so read at
        // every start of every moat process becomes 34 KB. No exported
        // symbols: -static-stdlib's link arguments export every symbol of
        // the binary (77,000 in .dynsym), which made each start's dladdr in
        // the Swift runtime's initializers (Backtrace.cpp) scan them all, and
        // nothing looks symbols up in the executable by name.
        ], linkerSettings: [.unsafeFlags([
            "-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
            "-static-stdlib", "-Xlinker", "--start-group",
            "-lFoundation", "-lFoundationInternationalization", "-lFoundationEssentials", "-lCoreFoundation",
            "-l_FoundationICU", "-l_FoundationCShims", "-l_FoundationCollections", "-lswiftSynchronization",
            "-lswiftDispatch", "-ldispatch", "-lBlocksRuntime", "-Xlinker", "--end-group",
        ])]),
        // The same link as moat's, without Foundation and its static dependencies
        // (nothing it links imports Foundation).
        .executableTarget(name: "moat-sandbox", dependencies: ["SandboxMain", "Sentry"], linkerSettings: [.unsafeFlags([
            "-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
            "-static-stdlib", "-lswiftSynchronization",
        ])]),
        // libFuzzer targets (Tests/Fuzz/README.md): a corpus replayer in a
        // normal build, a fuzzer when Tests/Fuzz/fuzz.sh builds it with
        // --sanitize fuzzer.
        .executableTarget(name: "moat-fuzz", dependencies: ["Gofer", "GoferProtocol", "OCI", "Sentry", "ControlPlane", "CRI", "CRIAPI", "Images", "Sandbox", "SPDY"],
                          path: "Tests/Fuzz/Sources"),
        .testTarget(name: "SentryTests", dependencies: ["Sentry", "Platform", "CMoat"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform", "CMoat"]),
        .testTarget(name: "GoferTests", dependencies: ["Gofer", "GoferProtocol"]),
        .testTarget(name: "ControlPlaneTests", dependencies: ["ControlPlane", "Sandbox", .product(name: "GRPCCore", package: "grpc-swift-2")]),
        .testTarget(name: "OCITests", dependencies: ["OCI"], exclude: ["programs"]),
        .testTarget(name: "CRITests", dependencies: [
            "CRI", "CRIAPI", "CZlib", "SPDY",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        ], exclude: ["programs"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images"]),
        .testTarget(name: "StandaloneTests", dependencies: ["Standalone"]),
        .testTarget(name: "NodeAgentTests", dependencies: ["NodeAgent", "CRIAPI", "ControlPlane"]),
        .testTarget(name: "ServerTests", dependencies: []),
        .testTarget(name: "IntegrationTests", dependencies: [], exclude: ["scripts", "programs", "debian", "fs"]),
    ],
    swiftLanguageModes: [.v5]
)
