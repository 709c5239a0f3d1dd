import Foundation
#if canImport(Glibc)
import Glibc
#endif
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

/// Which `Store` a test class runs against. Each suite is declared once for SQLite and
/// subclassed for etcd (`Etcd*Tests`), so both backends run the same tests.
enum Backend: String, Sendable { case sqlite, etcd }

/// Skips an etcd test, with the reason printed by XCTest, when etcd is not installed.
func requireBackend(_ backend: Backend) throws {
    if backend == .etcd, EtcdProcess.binary == nil {
        if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("missing prerequisite under CI: etcd (apt-get install etcd-server)") }
        throw XCTSkip("etcd is not installed (no \(EtcdProcess.candidates.joined(separator: " or "))); apt-get install etcd-server")
    }
}

/// A free TCP port on loopback (bind to port 0, read it back, close).
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A private etcd on loopback with its own data directory and random ports.
///
/// etcd runs under a small shell watchdog that kills it and removes the data directory
/// when `stop()` is called, and also when the test process dies without calling it.
final class EtcdProcess: @unchecked Sendable {
    static let candidates = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
    static var binary: String? { candidates.first { FileManager.default.isExecutableFile(atPath: $0) } }

    let dir: String
    let clientPort: Int
    private let watchdog: Process
    var endpoint: String { "http://127.0.0.1:\(clientPort)" }

    init() async throws {
        guard let bin = Self.binary else { throw TimedOut(description: "etcd not installed") }
        var lastError: Error = TimedOut(description: "etcd did not start")
        for _ in 0..<3 {
            let dir = NSTemporaryDirectory() + "moat-etcd-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let cport = freeLoopbackPort(), pport = freeLoopbackPort()
            let p = try Self.startWatchdog(bin: bin, name: "t", dir: dir, clientPort: cport, peerPort: pport,
                                           cluster: "t=http://127.0.0.1:\(pport)")
            let probe = try EtcdStore(endpoints: ["http://127.0.0.1:\(cport)"])
            let deadline = Date().addingTimeInterval(10)
            var up = false
            while Date() < deadline, p.isRunning {
                if (try? await probe.currentRevision()) != nil { up = true; break }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            if up {
                self.dir = dir; self.clientPort = cport; self.watchdog = p
                return
            }
            let log = (try? String(contentsOfFile: dir + "/etcd.log", encoding: .utf8)) ?? ""
            lastError = TimedOut(description: "etcd did not start on port \(cport): \(log.suffix(500))")
            p.terminate(); p.waitUntilExit()
        }
        throw lastError
    }

    /// A member of a cluster `cluster` starts: no probe (it answers only once a quorum is up).
    private init(member name: String, dir: String, clientPort: Int, peerPort: Int, cluster: String) throws {
        guard let bin = Self.binary else { throw TimedOut(description: "etcd not installed") }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        watchdog = try Self.startWatchdog(bin: bin, name: name, dir: dir, clientPort: clientPort, peerPort: peerPort, cluster: cluster)
        self.dir = dir; self.clientPort = clientPort
    }

    /// etcd (its pid in dir/pid) under a shell that stops it and removes `dir` on TERM, when
    /// etcd dies, or when the test process does.
    private static func startWatchdog(bin: String, name: String, dir: String, clientPort: Int, peerPort: Int, cluster: String) throws -> Process {
        let args = "--name \(name) --data-dir '\(dir)/data' --listen-client-urls http://127.0.0.1:\(clientPort) " +
            "--advertise-client-urls http://127.0.0.1:\(clientPort) --listen-peer-urls http://127.0.0.1:\(peerPort) " +
            "--initial-advertise-peer-urls http://127.0.0.1:\(peerPort) --initial-cluster \(cluster) " +
            "--initial-cluster-state new --logger zap --log-level error"
        let script = """
            '\(bin)' \(args) >'\(dir)/etcd.log' 2>&1 & e=$!
            echo $e >'\(dir)/pid'
            stop() { kill $e 2>/dev/null; wait $e 2>/dev/null; rm -rf '\(dir)'; exit 0; }
            trap stop TERM INT
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $e 2>/dev/null; do sleep 0.1; done
            stop
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        try p.run()
        return p
    }

    /// `size` members of one new cluster on loopback, once all of them answer.
    static func cluster(size: Int) async throws -> [EtcdProcess] {
        let peers = (0..<size).map { _ in freeLoopbackPort() }, clients = (0..<size).map { _ in freeLoopbackPort() }
        let cluster = (0..<size).map { "m\($0)=http://127.0.0.1:\(peers[$0])" }.joined(separator: ",")
        let members = try (0..<size).map {
            try EtcdProcess(member: "m\($0)", dir: NSTemporaryDirectory() + "moat-etcd-\(UUID().uuidString)", clientPort: clients[$0], peerPort: peers[$0], cluster: cluster)
        }
        for m in members {
            let probe = try EtcdStore(endpoints: [m.endpoint])
            defer { probe.close() }
            probe.retryWindow = .seconds(30)
            do { _ = try await probe.currentRevision() } catch {
                for m in members { m.stop() }
                throw TimedOut(description: "etcd member \(m.endpoint) did not answer: \(error)")
            }
        }
        return members
    }

    /// Kills etcd at once (SIGKILL), as a crash would; the watchdog then removes its data.
    func kill() {
        guard let pid = pid_t(((try? String(contentsOfFile: dir + "/pid", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) else { return }
        _ = Glibc.kill(pid, SIGKILL)
        watchdog.waitUntilExit()
    }

    var isRunning: Bool { watchdog.isRunning }

    /// Kills etcd and removes its data directory; waits for both.
    func stop() {
        if watchdog.isRunning { watchdog.terminate() }
        watchdog.waitUntilExit()
    }

    deinit { stop() }
}

/// A child process under a shell watchdog: the watchdog kills it (and removes `cleanup`,
/// if given) when `stop()` is called or when the test process dies first.
final class ManagedProcess: @unchecked Sendable {
    let watchdog: Process
    let logPath: String

    init(_ argv: [String], log: String, cleanup: String? = nil) throws {
        func q(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        logPath = log
        let script = """
            \(argv.map(q).joined(separator: " ")) >>\(q(log)) 2>&1 & c=$!
            stop() { kill $c 2>/dev/null; wait $c 2>/dev/null; \(cleanup.map { "rm -rf \(q($0));" } ?? "") exit 0; }
            trap stop TERM INT
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 0.1; done
            stop
            """
        watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = ["-c", script]
        try watchdog.run()
    }

    var isRunning: Bool { watchdog.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func stop() {
        if watchdog.isRunning { watchdog.terminate() }
        watchdog.waitUntilExit()
    }

    deinit { stop() }
}

/// The `moat` executable next to the test bundle (built by `swift build`), or $MOAT_BIN.
func moatBinary() throws -> String {
    if let env = ProcessInfo.processInfo.environment["MOAT_BIN"], FileManager.default.isExecutableFile(atPath: env) { return env }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("moat").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let bundle = CommandLine.arguments.first { $0.hasSuffix(".xctest") }.map { URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("moat").path }
    if let bundle, FileManager.default.isExecutableFile(atPath: bundle) { return bundle }
    throw XCTSkip("the moat executable was not found next to the tests (run `swift build --product moat` first, or set MOAT_BIN)")
}

/// `moat controlplane` as a separate process on a loopback port, over SQLite in `dir` or
/// over an etcd the caller owns. Restartable on the same port and data.
final class ControlPlaneProcess: @unchecked Sendable {
    let binary: String
    let backend: Backend
    let dataDir: String
    let etcd: EtcdProcess?
    let port: Int
    let extraArgs: [String]
    let identity: String
    private(set) var process: ManagedProcess?
    var client: HTTPAPIClient { HTTPAPIClient(port: port) }

    init(backend: Backend, dataDir: String, etcd: EtcdProcess?, identity: String = "cp-\(UUID().uuidString.prefix(6))",
         port: Int? = nil, extraArgs: [String] = []) throws {
        binary = try moatBinary()
        self.backend = backend; self.dataDir = dataDir; self.etcd = etcd; self.identity = identity
        self.port = port ?? freeLoopbackPort()
        self.extraArgs = extraArgs
    }

    var argv: [String] {
        var a = [binary, "controlplane", "--listen", "127.0.0.1:\(port)", "--data-dir", dataDir, "--identity", identity,
                 "--node-grace-period", "1.5", "--pod-eviction-timeout", "1", "--resync", "1", "--lease-duration", "3"]
        if backend == .etcd, let etcd { a += ["--store", "etcd", "--etcd-endpoints", etcd.endpoint] }
        return a + extraArgs
    }

    /// Starts the process and waits until it answers /healthz.
    func start() async throws {
        let p = try ManagedProcess(argv, log: dataDir + "/controlplane-\(identity).log")
        process = p
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if !p.isRunning { throw TimedOut(description: "moat controlplane exited: \(p.log.suffix(1000))") }
            if let (code, _) = try? await client.raw("GET", "/healthz"), code == 200 { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw TimedOut(description: "moat controlplane did not answer on port \(port): \(p.log.suffix(1000))")
    }

    func stop() { process?.stop(); process = nil }

    deinit { stop() }
}

/// A store + registry on either backend, optionally served over HTTP on an ephemeral port.
final class TestCluster: @unchecked Sendable {
    let backend: Backend
    let dir: TempDir
    /// The etcd this cluster's store talks to (etcd backend only); shared across restarts.
    let etcd: EtcdProcess?
    let store: any Store
    let registry: APIRegistry
    var serverTask: Task<Void, Error>?
    var port = 0
    var local: LocalAPIClient { LocalAPIClient(registry: registry) }

    /// A new cluster; pass `dir` (SQLite) or `etcd` (etcd) from a stopped cluster to reopen its data.
    init(backend: Backend = .sqlite, dir: TempDir? = nil, etcd: EtcdProcess? = nil, retainedEvents: Int64 = 50_000,
         eventTTL: Duration? = .seconds(3600)) async throws {
        self.backend = backend
        self.dir = try dir ?? TempDir()
        switch backend {
        case .sqlite:
            self.etcd = nil
            store = try SQLiteStore(path: self.dir.dbPath, retainedEvents: retainedEvents)
        case .etcd:
            var e = etcd
            if e == nil { e = try await EtcdProcess() }
            self.etcd = e
            store = try EtcdStore(endpoints: [e!.endpoint])
        }
        registry = APIRegistry(store: store, eventTTL: eventTTL)
        try await registry.bootstrap()
    }

    /// A fresh cluster over the same data (same SQLite file or same etcd), as after a
    /// restart; call after `stop(keepData: true)`.
    func reopened() async throws -> TestCluster {
        try await TestCluster(backend: backend, dir: dir, etcd: etcd)
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

    /// Stops the server and closes the store. Unless `keepData`, etcd is stopped and the
    /// data directory removed (XCTest keeps test objects alive, so deinit comes too late).
    func stop(keepData: Bool = false) async {
        serverTask?.cancel()
        _ = await serverTask?.result
        serverTask = nil
        store.close()
        if !keepData {
            etcd?.stop()
            try? FileManager.default.removeItem(atPath: dir.path)
        }
    }
}

/// Stands in for kubelets: heartbeats its nodes and moves pods bound to them to Running
/// and Ready (or Succeeded, for pods whose restartPolicy is not Always, when `completeJobs`;
/// or Failed, for pods of an image named in `failingImages`). Each node gets a /24 from
/// the pod CIDR 10.244.0.0/16 as `spec.podCIDR`, and each pod it starts an IP from it.
final class FakeKubelets: @unchecked Sendable {
    private let lock = NSLock()
    private var _client: any APIClient          // Guarded by: lock
    /// Where the kubelets report; may be switched to another API server.
    var client: any APIClient {
        get { lock.withLock { _client } }
        set { lock.withLock { _client = newValue } }
    }
    private var alive: Set<String> = []          // Guarded by: lock
    private var cidrIndex: [String: Int] = [:]   // Guarded by: lock
    private var nextHost: [String: Int] = [:]    // Guarded by: lock
    var completeJobs = true
    var failingImages: Set<String> = []
    private var task: Task<Void, Never>?

    init(client: any APIClient) { _client = client }

    func addNode(_ name: String, cpu: String = "4", memory: String = "8Gi", labels: [String: String] = [:], taints: [JSON] = []) async throws {
        let index = lock.withLock { () -> Int in
            if let i = cidrIndex[name] { return i }
            let i = cidrIndex.count; cidrIndex[name] = i; return i
        }
        var node: JSON = ["apiVersion": "v1", "kind": "Node", "metadata": ["name": .string(name)],
                          "spec": ["podCIDR": .string("10.244.\(index).0/24")],
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

    /// The node leaves the cluster: heartbeats stop and the Node object is deleted.
    func removeNode(_ name: String) async throws {
        stopHeartbeat(name)
        try await client.delete(.nodes, namespace: "", name: name)
    }

    /// The next pod IP on `node` (10.244.<node index>.<n>, n from 2).
    func allocateIP(on node: String) -> String {
        lock.withLock {
            let i = cidrIndex[node] ?? 255
            let n = nextHost[node, default: 2]
            nextHost[node] = n + 1
            return "10.244.\(i).\(n % 254 + 1)"
        }
    }

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
                        let image = p[path: "spec", "containers"].array?.first?["image"].string ?? ""
                        let fail = failingImages.contains(image)
                        let finish = completeJobs && p["spec"]["restartPolicy"].string != "Always"
                        s[path: "status", "phase"] = fail ? "Failed" : (finish ? "Succeeded" : "Running")
                        s.setCondition(type: "Ready", status: fail || finish ? "False" : "True")
                        if s[path: "status", "podIP"].isNull { s[path: "status", "podIP"] = .string(allocateIP(on: node)) }
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

/// Creates ConfigMap default/counter at 0 and has `writers` tasks each add
/// one `rounds` times with read-modify-update, retrying on 409 Conflict.
/// Returns how many conflicts they met (the final value must be
/// writers * rounds: optimistic concurrency loses nothing).
func incrementCounterConcurrently(_ c: APIClient, writers: Int, rounds: Int) async throws -> Int {
    _ = try await c.create(.configmaps, namespace: "default", ["metadata": ["name": "counter"], "data": ["n": "0"]])
    return try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<writers {
            group.addTask {
                var conflicts = 0
                for _ in 0..<rounds {
                    while true {
                        var cm = try await c.get(.configmaps, namespace: "default", name: "counter")
                        cm[path: "data", "n"] = .string(String(Int(cm[path: "data", "n"].string!)! + 1))
                        do { _ = try await c.update(.configmaps, cm); break }
                        catch let e as APIError where e.code == 409 { conflicts += 1 }
                    }
                }
                return conflicts
            }
        }
        return try await group.reduce(0, +)
    }
}
