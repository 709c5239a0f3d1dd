import Foundation
import XCTest
@testable import ControlPlane

/// A temporary directory removed on deinit.
final class TempDir {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "moat-cp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    var dbPath: String { path + "/moat.db" }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct TimedOut: Error, CustomStringConvertible { let description: String }

/// Polls `condition` until it holds or `timeout` passes.
func eventually(_ what: String, timeout: Double = 10, interval: Double = 0.02,
                _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(nanoseconds: UInt64(interval * 1e9))
    }
    if try await condition() { return }
    throw TimedOut(description: "timed out after \(timeout)s waiting for: \(what)")
}

/// Awaits `op` but fails after `seconds`.
func withDeadline<T: Sendable>(_ seconds: Double, _ op: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await op() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            throw TimedOut(description: "operation exceeded \(seconds)s")
        }
        let r = try await group.next()!
        group.cancelAll()
        return r
    }
}

/// A store + registry, optionally served over HTTP on an ephemeral port.
final class TestCluster: @unchecked Sendable {
    let dir: TempDir
    let store: SQLiteStore
    let registry: APIRegistry
    var serverTask: Task<Void, Error>?
    var port = 0
    var local: LocalAPIClient { LocalAPIClient(registry: registry) }

    init(dir: TempDir? = nil, retainedEvents: Int64 = 50_000) async throws {
        self.dir = try dir ?? TempDir()
        store = try SQLiteStore(path: self.dir.dbPath, retainedEvents: retainedEvents)
        registry = APIRegistry(store: store)
        try await registry.bootstrap()
    }

    /// Starts the HTTP server and waits for it to be bound.
    func serve(authorizer: Authorizer? = nil) async throws -> HTTPAPIClient {
        let server = APIServer(registry: registry, authorizer: authorizer, logLevel: .critical)
        let (stream, cont) = AsyncStream<Int>.makeStream()
        serverTask = Task { try await server.run(host: "127.0.0.1", port: 0) { cont.yield($0) } }
        port = try await withDeadline(10) { for await p in stream { return p }; return 0 }
        XCTAssertGreaterThan(port, 0)
        return HTTPAPIClient(port: port)
    }

    func stop() async {
        serverTask?.cancel()
        _ = await serverTask?.result
        serverTask = nil
        store.close()
    }
}

/// Stands in for kubelets: heartbeats its nodes and moves pods bound to them to Running
/// and Ready (or Succeeded, for pods whose restartPolicy is not Always, when `completeJobs`).
final class FakeKubelets: @unchecked Sendable {
    let client: any APIClient
    private let lock = NSLock()
    private var alive: Set<String> = []
    var completeJobs = true
    private var task: Task<Void, Never>?

    init(client: any APIClient) { self.client = client }

    func addNode(_ name: String, cpu: String = "4", memory: String = "8Gi", labels: [String: String] = [:], taints: [JSON] = []) async throws {
        var node: JSON = ["apiVersion": "v1", "kind": "Node", "metadata": ["name": .string(name)],
                          "status": ["capacity": ["cpu": .string(cpu), "memory": .string(memory), "pods": "110"],
                                     "allocatable": ["cpu": .string(cpu), "memory": .string(memory), "pods": "110"]]]
        var l = labels; l["kubernetes.io/hostname"] = name
        node.labels = l
        if !taints.isEmpty { node[path: "spec", "taints"] = .array(taints) }
        node.setCondition(type: "Ready", status: "True", reason: "KubeletReady")
        node[path: "status", "conditions"] = .array((node["status"]["conditions"].array ?? []).map { var c = $0; c["lastHeartbeatTime"] = .string(Timestamp.now()); return c })
        _ = try await client.create(.nodes, namespace: "", node)
        lock.withLock { _ = alive.insert(name) }
    }

    func stopHeartbeat(_ name: String) { lock.withLock { _ = alive.remove(name) } }

    func start() {
        task = Task {
            var lastBeat = Date.distantPast
            while !Task.isCancelled {
                let names = lock.withLock { alive }
                if Date().timeIntervalSince(lastBeat) > 0.5 {
                    lastBeat = Date()
                    for n in names {
                        let c: JSON = ["type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": .string(Timestamp.now()), "lastTransitionTime": .string(Timestamp.now())]
                        _ = try? await client.patch(.nodes, namespace: "", name: n, ["status": ["conditions": [c]]], subresource: "status")
                    }
                }
                if let pods = try? await client.list(.pods) {
                    for p in pods where p.phase == "Pending" && p.deletionTimestamp == nil {
                        guard let node = p.nodeName, names.contains(node) else { continue }
                        var s = p
                        let finish = completeJobs && p["spec"]["restartPolicy"].string != "Always"
                        s[path: "status", "phase"] = finish ? "Succeeded" : "Running"
                        s.setCondition(type: "Ready", status: finish ? "False" : "True")
                        _ = try? await client.update(.pods, s, subresource: "status")
                    }
                }
                try? await Task.sleep(nanoseconds: 30_000_000)
            }
        }
    }

    func stop() async { task?.cancel(); _ = await task?.value }
}

func podJSON(_ name: String, image: String = "nginx:1.0", labels: [String: String] = [:], cpu: String? = nil) -> JSON {
    var c: JSON = ["name": "main", "image": .string(image)]
    if let cpu { c[path: "resources", "requests", "cpu"] = .string(cpu) }
    var p: JSON = ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(name)], "spec": ["containers": [c]]]
    if !labels.isEmpty { p.labels = labels }
    return p
}

func deploymentJSON(_ name: String, replicas: Int, image: String = "nginx:1.0", maxSurge: JSON = 1, maxUnavailable: JSON = 0) -> JSON {
    ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": .string(name)],
     "spec": ["replicas": .int(replicas), "selector": ["matchLabels": ["app": .string(name)]],
              "strategy": ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": maxSurge, "maxUnavailable": maxUnavailable]],
              "template": ["metadata": ["labels": ["app": .string(name)]],
                           "spec": ["containers": [["name": "main", "image": .string(image)]]]]]]
}
