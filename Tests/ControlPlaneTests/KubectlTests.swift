import Foundation
import XCTest
@testable import ControlPlane

/// kubectl against a `moat controlplane` process: apply (with kubectl's default
/// validation), get in JSON/YAML/by label, scale, rollout status/history/undo, get -w,
/// delete. Skipped, with the reason printed, when kubectl is not installed.
class KubectlTests: XCTestCase {
    class var backend: Backend { .sqlite }
    var dir: TempDir!
    var etcd: EtcdProcess?
    var cp: ControlPlaneProcess!
    var kubelets: FakeKubelets!
    var kubectlPath = ""

    static func findKubectl() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return (path.split(separator: ":").map { "\($0)/kubectl" } + ["/usr/bin/kubectl", "/usr/local/bin/kubectl"])
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    override func setUp() async throws {
        guard let k = Self.findKubectl() else {
            throw XCTSkip("kubectl is not installed (Debian's kubernetes-client conflicts with the image's kubectl package; install either)")
        }
        kubectlPath = k
        try requireBackend(Self.backend)
        dir = try TempDir()
        if Self.backend == .etcd { etcd = try await EtcdProcess() }
        cp = try ControlPlaneProcess(backend: Self.backend, dataDir: dir.path, etcd: etcd)
        try await cp.start()
        kubelets = FakeKubelets(client: cp.client)
        for i in 0..<2 { try await kubelets.addNode("node-\(i)") }
        kubelets.start()
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: moat, cluster: {server: "http://127.0.0.1:\(cp.port)"}}]
            contexts: [{name: moat, context: {cluster: moat, user: test, namespace: default}}]
            users: [{name: test, user: {}}]
            current-context: moat
            """.write(toFile: dir.path + "/kubeconfig", atomically: true, encoding: .utf8)
    }

    override func tearDown() async throws {
        await kubelets?.stop()
        if let cp, (testRun?.totalFailureCount ?? 0) > 0 { print("--- controlplane log ---\n\(cp.process?.log.suffix(3000) ?? "")") }
        cp?.stop()
        etcd?.stop()
        if let dir { try? FileManager.default.removeItem(atPath: dir.path) }
        etcd = nil; cp = nil; kubelets = nil; dir = nil
    }

    struct Result { var code: Int32; var out: String; var err: String }

    /// Runs kubectl; `untilKilledAfter` ends a command that would run forever (get -w).
    @discardableResult
    func kubectl(_ args: [String], stdin: String? = nil, timeout: Double = 30, untilKilledAfter: Double? = nil,
                 file: StaticString = #filePath, line: UInt = #line) async throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: kubectlPath)
        p.arguments = ["--kubeconfig", dir.path + "/kubeconfig", "--request-timeout", "20s"] + args
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir.path  // discovery cache under the temp dir
        env["KUBECONFIG"] = nil
        p.environment = env
        let outURL = URL(fileURLWithPath: dir.path + "/kubectl.out"), errURL = URL(fileURLWithPath: dir.path + "/kubectl.err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer { try? out.close(); try? err.close() }
        p.standardOutput = out
        p.standardError = err
        let inPipe = Pipe()
        p.standardInput = inPipe
        try p.run()
        if let stdin { inPipe.fileHandleForWriting.write(stdin.data(using: .utf8)!) }
        try? inPipe.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(untilKilledAfter ?? timeout)
        while p.isRunning && Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        let killed = p.isRunning
        if killed { p.terminate() }
        p.waitUntilExit()
        let r = Result(code: p.terminationStatus, out: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                       err: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
        if killed && untilKilledAfter == nil { XCTFail("kubectl \(args.joined(separator: " ")) timed out: \(r.err)", file: file, line: line) }
        return r
    }

    /// kubectl that must succeed.
    @discardableResult
    func ok(_ args: String..., stdin: String? = nil, file: StaticString = #filePath, line: UInt = #line) async throws -> String {
        let r = try await kubectl(args, stdin: stdin, file: file, line: line)
        XCTAssertEqual(r.code, 0, "kubectl \(args.joined(separator: " ")): \(r.err)\(r.out)", file: file, line: line)
        return r.out
    }

    func manifest(image: String) -> String {
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          labels: {app: web}
        spec:
          replicas: 2
          selector:
            matchLabels: {app: web}
          strategy:
            type: RollingUpdate
            rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
              - name: main
                image: \(image)
                ports: [{containerPort: 80}]
        """
    }

    func podImages() async throws -> [String] {
        let out = try await ok("get", "pods", "-l", "app=web", "-o", "json")
        return try JSON.parse(out)["items"].array!.filter { $0.deletionTimestamp == nil }
            .compactMap { $0[path: "spec", "containers"].array?.first?["image"].string }
    }

    func testDeploymentLifecycleWithKubectl() async throws {
        // apply, with kubectl's default (strict) validation.
        var out = try await ok("apply", "-f", "-", stdin: manifest(image: "nginx:1.0"))
        XCTAssertTrue(out.contains("deployment.apps/web created"), out)
        out = try await ok("rollout", "status", "deployment/web", "--timeout=60s")
        XCTAssertTrue(out.contains("successfully rolled out"), out)

        // get as JSON, YAML, and by label.
        let d = try JSON.parse(try await ok("get", "deployment", "web", "-o", "json"))
        XCTAssertEqual(d[path: "spec", "replicas"], 2)
        XCTAssertEqual(d[path: "status", "availableReplicas"], 2)
        let yaml = try await ok("get", "deploy", "web", "-o", "yaml")
        XCTAssertTrue(yaml.contains("kind: Deployment") && yaml.contains("image: nginx:1.0"), yaml)
        let byLabel = try await ok("get", "pods", "-l", "app=web", "--no-headers")
        XCTAssertEqual(byLabel.split(separator: "\n").filter { $0.contains("Running") }.count, 2, byLabel)
        let none = try await ok("get", "pods", "-l", "app=nothing", "-o", "name")
        XCTAssertEqual(none.trimmingCharacters(in: .whitespacesAndNewlines), "")

        // scale.
        out = try await ok("scale", "deployment/web", "--replicas=3")
        XCTAssertTrue(out.contains("scaled"), out)
        try await eventually("3 pods", timeout: 20) { try await self.podImages().count == 3 }

        // A second apply changes the image: revision 2.
        out = try await ok("apply", "-f", "-", stdin: manifest(image: "nginx:2.0").replacingOccurrences(of: "replicas: 2", with: "replicas: 3"))
        XCTAssertTrue(out.contains("deployment.apps/web configured"), out)
        _ = try await ok("rollout", "status", "deployment/web", "--timeout=60s")
        let images = try await podImages()
        XCTAssertEqual(images, ["nginx:2.0", "nginx:2.0", "nginx:2.0"])
        let history = try await ok("rollout", "history", "deployment/web")
        XCTAssertTrue(history.contains("1 ") && history.contains("2 "), history)

        // rollout undo returns to revision 1's template.
        out = try await ok("rollout", "undo", "deployment/web")
        XCTAssertTrue(out.contains("rolled back"), out)
        _ = try await ok("rollout", "status", "deployment/web", "--timeout=60s")
        try await eventually("back on nginx:1.0", timeout: 30) { try await self.podImages() == ["nginx:1.0", "nginx:1.0", "nginx:1.0"] }

        // delete: the deployment goes, and the garbage collector takes its pods.
        out = try await ok("delete", "deployment", "web")
        XCTAssertTrue(out.contains("deleted"), out)
        try await eventually("pods collected", timeout: 30) { try await self.podImages().isEmpty }
    }

    func testGetWatchStreamsChanges() async throws {
        // (From a manifest: ProtobufCreateTests covers `kubectl create configmap NAME`, which sends protobuf.)
        _ = try await ok("create", "-f", "-", stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\ndata: {k: v}\n")
        let creator = Task {
            try await Task.sleep(nanoseconds: 800_000_000)
            _ = try await self.cp.client.create(.configmaps, namespace: "default", ["metadata": ["name": "second"]])
        }
        let r = try await kubectl(["get", "configmaps", "-w", "--no-headers"], untilKilledAfter: 3)
        try await creator.value
        XCTAssertTrue(r.out.contains("first"), r.out + r.err)
        XCTAssertTrue(r.out.contains("second"), "the watch did not show the configmap created while it ran: \(r.out) \(r.err)")
    }
}

/// The same tests on etcd (each restated: XCTest on Linux does not discover inherited tests).
final class EtcdKubectlTests: KubectlTests {
    override class var backend: Backend { .etcd }
    override func testDeploymentLifecycleWithKubectl() async throws { try await super.testDeploymentLifecycleWithKubectl() }
    override func testGetWatchStreamsChanges() async throws { try await super.testGetWatchStreamsChanges() }
}
