/// # ControlPlane
///
/// A minimal Kubernetes-style control plane.
///
/// Components (one direction of dependency, top to bottom):
/// - `Model/`: `JSON` (generic object value with typed accessors), `ResourceType` (the
///   served kinds), label/field selectors, quantities.
/// - `Store/`: the `Store` protocol (revisioned objects + event log + watch) and
///   `SQLiteStore` (GRDB, WAL, synchronous=FULL). etcd v3 is a documented TODO.
/// - `API/`: `APIRegistry` (defaulting, validation, optimistic concurrency, finalizers,
///   subresources, watch translation; the only user of the `Store`), `APIServer`
///   (Hummingbird HTTP front end, discovery, bearer-token auth + roles), `APIClient` with
///   `HTTPAPIClient` (raw-socket HTTP) and `LocalAPIClient` (in-process).
/// - `Controllers/`: `WorkQueue`, `Informer`, `ControllerLoop`, and the ReplicaSet,
///   Deployment, Job, garbage-collector and node-lifecycle controllers.
/// - `Scheduler/`: `Scheduler` and `Predicates`.
///
/// Controllers and the scheduler only use an `APIClient`, never the store.
///
/// Lock/actor ownership:
/// - `SQLiteStore`: GRDB's writer queue serialises writes, revision allocation, event-log
///   appends and watcher registration; `lock` guards the watcher table only.
/// - `APIRegistry`, `APIServer`: stateless (`Sendable`); all state lives in the store.
/// - `WorkQueue`: an actor owning the queue, dirty and processing sets and backoff counts.
/// - `Informer`/`InformerFactory`: `lock` guards the cache, handler list and sync waiters;
///   the cache is written only by the informer's own task.
/// - `Scheduler`: `lock` guards the map of bindings it assumed but has not yet observed.
/// - `RawHTTPConnection`: used by one thread at a time; `lock` only for shutdown.

import ArgumentParser
import Foundation
import Logging

/// Options shared by `moat apiserver` and `moat controlplane`.
public struct ControlPlaneOptions: ParsableArguments {
    @Option(help: "Address to serve plain HTTP on, host:port.")
    public var listen: String = "127.0.0.1:6443"

    @Option(name: .customLong("data-dir"), help: "Directory holding the SQLite database (moat.db).")
    public var dataDir: String = "./moat-data"

    @Option(name: .customLong("token-file"), help: "Static bearer token file (token,user,uid,\"groups\"); open access if omitted.")
    public var tokenFile: String?

    public init() {}

    func hostPort() throws -> (String, Int) {
        guard let i = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: i)...]) else {
            throw ValidationError("--listen must be host:port")
        }
        var host = String(listen[..<i])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    func openRegistry() async throws -> APIRegistry {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: (dataDir as NSString).appendingPathComponent("moat.db"))
        let registry = APIRegistry(store: store)
        try await registry.bootstrap()
        return registry
    }

    func authorizer() throws -> Authorizer? {
        try tokenFile.map { try Authorizer(tokenFile: $0) }
    }
}

public struct APIServerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "apiserver", abstract: "Serve the Kubernetes-style API over HTTP, backed by an embedded SQLite store.")

    @OptionGroup public var options: ControlPlaneOptions

    public init() {}

    public func run() async throws {
        let (host, port) = try options.hostPort()
        let registry = try await options.openRegistry()
        let server = APIServer(registry: registry, authorizer: try options.authorizer())
        try await server.run(host: host, port: port) { bound in
            FileHandle.standardError.write("moat apiserver listening on http://\(host):\(bound)\n".data(using: .utf8)!)
        }
    }
}

public struct ControlPlaneCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "controlplane", abstract: "Run the API server, controllers and scheduler in one process.")

    @OptionGroup public var options: ControlPlaneOptions

    public init() {}

    public func run() async throws {
        let (host, port) = try options.hostPort()
        let registry = try await options.openRegistry()
        let server = APIServer(registry: registry, authorizer: try options.authorizer())
        // Controllers use the in-process client: same API semantics, no token needed.
        let manager = ControllerManager(client: LocalAPIClient(registry: registry))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.run(host: host, port: port) { bound in
                    FileHandle.standardError.write("moat controlplane listening on http://\(host):\(bound)\n".data(using: .utf8)!)
                }
            }
            group.addTask { await manager.run() }
            try await group.next()
            group.cancelAll()
        }
    }
}
