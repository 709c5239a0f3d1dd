import Foundation

/// Scheduler throughput on simulated nodes (`moat controlplane-bench`).
///
/// The API registry, the store and the scheduler run in this process, as in
/// `moat controlplane`; nodes are plain Node objects (no kubelet is needed to bind).
/// Two phases, each on a fresh store:
/// - *stream*: the scheduler runs while the pods are created as fast as `concurrency`
///   writers can; reports creation-to-binding latency (p50/p99/max, from just before the
///   create call to the moment a watch sees `spec.nodeName`) and pods bound per second.
/// - *burst*: every pod is created first, then the scheduler starts; pods bound per second
///   from the scheduler's start to the last binding is the scheduler's own throughput
///   (decisions plus binding writes).
public enum SchedulerBench {
    public struct Result: Sendable {
        public var phase: String
        public var pods: Int
        public var nodes: Int
        public var seconds: Double
        public var podsPerSecond: Double
        public var createPerSecond: Double
        public var p50: Double
        public var p99: Double
        public var max: Double
        public var nodesUsed: Int
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Times keyed by pod name, written by several tasks. Guarded by `lock`.
    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var created: [String: Double] = [:]
        private var bound: [String: (Double, String)] = [:]
        func create(_ n: String) { let t = now(); lock.withLock { created[n] = t } }
        func bind(_ n: String, _ node: String) { let t = now(); lock.withLock { if bound[n] == nil { bound[n] = (t, node) } } }
        var boundCount: Int { lock.withLock { bound.count } }
        var snapshot: ([String: Double], [String: (Double, String)]) { lock.withLock { (created, bound) } }
        func now() -> Double { Date().timeIntervalSinceReferenceDate }
    }

    static func node(_ i: Int) -> JSON {
        var n: JSON = ["apiVersion": "v1", "kind": "Node", "metadata": ["name": .string(String(format: "node-%04d", i))],
                       "status": ["capacity": ["cpu": "8", "memory": "32Gi", "pods": "110"],
                                  "allocatable": ["cpu": "8", "memory": "32Gi", "pods": "110"]]]
        n.labels = ["kubernetes.io/hostname": n.name, "topology.kubernetes.io/zone": "zone-\(i % 3)"]
        n.setCondition(type: "Ready", status: "True", reason: "KubeletReady")
        return n
    }

    static func pod(_ i: Int) -> JSON {
        ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(String(format: "bench-%05d", i)), "labels": ["app": "bench"]],
         "spec": ["containers": [["name": "main", "image": "registry.local/bench:1",
                                  "resources": ["requests": ["cpu": "100m", "memory": "128Mi"]]]]]]
    }

    /// Runs `body(i)` for i in 0..<count on `concurrency` tasks.
    static func parallel(_ count: Int, _ concurrency: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for k in 0..<max(1, concurrency) {
                group.addTask { for i in stride(from: k, to: count, by: max(1, concurrency)) { try await body(i) } }
            }
            try await group.waitForAll()
        }
    }

    public static func run(phase: String, store: any Store, nodes: Int, pods: Int, concurrency: Int = 16, maxInFlightBinds: Int = 32,
                           timeout: Double = 600, log: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let registry = APIRegistry(store: store)
        try await registry.bootstrap()
        let client = LocalAPIClient(registry: registry)
        try await parallel(nodes, concurrency) { i in _ = try await client.create(.nodes, namespace: "", node(i)) }
        log("\(phase): \(nodes) nodes created")

        let clock = Clock()
        let rv = try await registry.list(.pods, namespace: nil)["metadata"]["resourceVersion"].string ?? "0"
        let events = try await registry.watch(.pods, namespace: nil, options: ListOptions(resourceVersion: rv))
        let observer = Task {
            for try await e in events {
                if let n = e.object.nodeName { clock.bind(e.object.name, n) }
                if clock.boundCount >= pods { return }
            }
        }
        defer { observer.cancel() }

        let informers = InformerFactory(client: client)
        let scheduler = Scheduler(client: client, informers: informers, resync: 30, maxInFlightBinds: maxInFlightBinds)
        let informerTask = Task { await informers.run() }
        defer { informerTask.cancel() }
        var schedulerTask: Task<Void, Never>?
        defer { schedulerTask?.cancel() }
        var schedulerStart = 0.0
        func startScheduler() async {
            await informers.waitForSync()
            schedulerStart = clock.now()
            schedulerTask = Task { await scheduler.loop.run() }
        }

        if phase == "stream" { await startScheduler() }
        let createStart = clock.now()
        try await parallel(pods, concurrency) { i in
            let p = pod(i)
            clock.create(p.name)
            _ = try await client.create(.pods, namespace: "default", p)
        }
        let createSeconds = clock.now() - createStart
        log("\(phase): \(pods) pods created in \(String(format: "%.2f", createSeconds)) s")
        if phase == "burst" { await startScheduler() }

        let deadline = Date().addingTimeInterval(timeout)
        while clock.boundCount < pods {
            if Date() > deadline { throw Failure(description: "\(phase): only \(clock.boundCount)/\(pods) pods bound after \(timeout) s") }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let (created, bound) = clock.snapshot
        let lastBind = bound.values.map(\.0).max() ?? createStart
        let from = phase == "burst" ? schedulerStart : createStart
        var latencies = bound.compactMap { name, b in created[name].map { b.0 - $0 } }.sorted()
        if latencies.isEmpty { latencies = [0] }
        func pct(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1)] }
        let seconds = lastBind - from
        return Result(phase: phase, pods: pods, nodes: nodes, seconds: seconds, podsPerSecond: Double(pods) / seconds,
                      createPerSecond: Double(pods) / createSeconds, p50: pct(0.5), p99: pct(0.99), max: latencies.last!,
                      nodesUsed: Set(bound.values.map(\.1)).count)
    }
}
