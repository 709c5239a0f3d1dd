// swift-tools-version:6.0
import PackageDescription

// Module map (one module per component; see README "Architecture"):
//   CMoat          C shims: variadic ptrace, raw clone, the stub code page, BPF structs.
//   Platform       how application code is run and trapped (Ptrace/ now; systrap later).
//   GoferProtocol  the Sentry<->Gofer wire format and the client the Sentry uses.
//   Gofer          the file server confined to the container root.
//   Sentry         the emulated kernel: tasks, memory, signals, VFS, syscalls.
//   Sandbox        starts and supervises a Gofer + Sentry pair (moat run, OCI runtime).
//   ControlPlane   API server, store, scheduler, controllers.
//   moat           the only executable: parses arguments, nothing else.
let package = Package(
    name: "moat",
    products: [
        .executable(name: "moat", targets: ["moat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
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
        .target(name: "ControlPlane", dependencies: [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "moat", dependencies: [
            "Sandbox", "Sentry", "Gofer", "ControlPlane", "OCI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "SentryTests", dependencies: ["Sentry", "Platform", "CMoat"]),
        .testTarget(name: "GoferTests", dependencies: ["Gofer", "GoferProtocol"]),
        .testTarget(name: "ControlPlaneTests", dependencies: ["ControlPlane"]),
        .testTarget(name: "OCITests", dependencies: ["OCI"]),
        .testTarget(name: "IntegrationTests", dependencies: [], exclude: ["scripts", "programs", "debian", "fs"]),
    ],
    swiftLanguageModes: [.v5]
)
