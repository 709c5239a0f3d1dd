import Foundation
import XCTest
@testable import ControlPlane

/// End-to-end: a real `moat controlplane` process on loopback (API server, controllers,
/// scheduler) and nodes simulated by the test over HTTP, on SQLite here and on etcd in
/// `EtcdProcessClusterTests`. The process runs with short node timeouts
/// (grace 1.5 s, eviction 1 s) and a 3 s lease.
class ProcessClusterTests: XCTestCase {
    class var backend: Backend { .sqlite }
    var dir: TempDir!
    var etcd: EtcdProcess?
    var cp: ControlPlaneProcess!
    var client: HTTPAPIClient!
    var kubelets: FakeKubelets!

    override func setUp() async throws {
        try requireBackend(Self.backend)
        dir = try TempDir()
        if Self.backend == .etcd { etcd = try await EtcdProcess() }
        cp = try ControlPlaneProcess(backend: Self.backend, dataDir: dir.path, etcd: etcd)
        try await cp.start()
        client = cp.client
        kubelets = FakeKubelets(client: client)
        for i in 0..<3 { try await kubelets.addNode("node-\(i)") }
        kubelets.start()
    }

    override func tearDown() async throws {
        await kubelets?.stop()
        if let cp, (testRun?.totalFailureCount ?? 0) > 0 { print("--- controlplane log ---\n\(cp.process?.log.suffix(3000) ?? "")") }
        cp?.stop()
        etcd?.stop()
        if let dir { try? FileManager.default.removeItem(atPath: dir.path) }
        etcd = nil; cp = nil; kubelets = nil; dir = nil
    }

    func pods(_ selector: String) async throws -> [JSON] {
        try await client.list(.pods, namespace: "default", labelSelector: try LabelSelector.parse(selector)).filter { $0.deletionTimestamp == nil }
    }

    func testDeploymentScalesRollsWithinAvailabilityAndRollsBack() async throws {
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("web", replicas: 4, maxSurge: 1, maxUnavailable: 1))
        try await eventually("4 available", timeout: 20) {
            try await self.client.get(.deployments, namespace: "default", name: "web")[path: "status", "availableReplicas"] == 4
        }
        // Sample readiness during the update: never fewer than replicas - maxUnavailable = 3
        // ready pods, never more than replicas + maxSurge = 5 pods.
        let c = client!
        let sampler = Task { () -> (Int, Int, Int) in
            var fewestReady = Int.max, most = 0, samples = 0
            while !Task.isCancelled {
                if let ps = try? await c.list(.pods, namespace: "default", labelSelector: try LabelSelector.parse("app=web")) {
                    let live = ps.filter { $0.deletionTimestamp == nil }
                    fewestReady = min(fewestReady, live.filter(Pods.isReady).count)
                    most = max(most, live.count)
                    samples += 1
                }
                try? await Task.sleep(nanoseconds: 10_000_000)
            }
            return (fewestReady, most, samples)
        }
        _ = try await client.patch(.deployments, namespace: "default", name: "web",
            ["spec": ["template": ["spec": ["containers": [["name": "main", "image": "nginx:2.0"]]]]]])
        func rolledTo(_ image: String) async throws -> Bool {
            let ps = try await self.pods("app=web")
            let d = try await self.client.get(.deployments, namespace: "default", name: "web")
            return ps.count == 4 && ps.allSatisfy { $0[path: "spec", "containers"].array?.first?["image"].string == image && Pods.isReady($0) }
                && d[path: "status", "updatedReplicas"] == 4 && d[path: "status", "availableReplicas"] == 4
        }
        try await eventually("rolled to nginx:2.0", timeout: 30) { try await rolledTo("nginx:2.0") }
        sampler.cancel()
        let (fewestReady, most, samples) = await sampler.value
        XCTAssertGreaterThan(samples, 5, "the rollout was not observed")
        XCTAssertGreaterThanOrEqual(fewestReady, 3, "availability fell below replicas - maxUnavailable")
        XCTAssertLessThanOrEqual(most, 5, "more than replicas + maxSurge pods")

        // Roll back: put the first revision's template back.
        let sets = try await client.list(.replicasets, namespace: "default")
        guard let first = sets.first(where: { $0.annotations[DeploymentController.revisionAnnotation] == "1" }) else {
            return XCTFail("no revision-1 replica set in \(sets.map(\.annotations))")
        }
        var template = first.template
        template[path: "metadata", "labels", DeploymentController.hashLabel] = .null
        _ = try await client.patch(.deployments, namespace: "default", name: "web", ["spec": ["template": template]])
        try await eventually("rolled back to nginx:1.0", timeout: 30) { try await rolledTo("nginx:1.0") }

        _ = try await client.patch(.deployments, namespace: "default", name: "web", ["spec": ["replicas": 6]], subresource: "scale")
        try await eventually("scaled up to 6", timeout: 20) { try await self.pods("app=web").filter(Pods.isReady).count == 6 }
        _ = try await client.patch(.deployments, namespace: "default", name: "web", ["spec": ["replicas": 2]], subresource: "scale")
        try await eventually("scaled down to 2", timeout: 20) { try await self.pods("app=web").count == 2 }
    }

    func testDaemonSetFollowsNodesJoiningAndLeaving() async throws {
        let ds: JSON = ["apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": ["name": "agent"],
                        "spec": ["selector": ["matchLabels": ["app": "agent"]],
                                 "template": ["metadata": ["labels": ["app": "agent"]], "spec": ["containers": [["name": "a", "image": "agent:1"]]]]]]
        _ = try await client.create(.daemonsets, namespace: "default", ds)
        func nodes() async throws -> [String] { try await self.pods("app=agent").compactMap(\.nodeName).sorted() }
        try await eventually("one pod per node", timeout: 20) { try await nodes() == ["node-0", "node-1", "node-2"] }
        try await kubelets.addNode("node-3")
        try await eventually("joined node gets a pod", timeout: 20) { try await nodes() == ["node-0", "node-1", "node-2", "node-3"] }
        try await kubelets.removeNode("node-0")
        try await eventually("left node loses its pod", timeout: 20) { try await nodes() == ["node-1", "node-2", "node-3"] }
        // A node that stops heartbeating is not ready after the grace period: its pod goes too.
        kubelets.stopHeartbeat("node-1")
        try await eventually("not-ready node loses its pod", timeout: 20) { try await nodes() == ["node-2", "node-3"] }
    }

    func testJobRetriesUntilBackoffLimit() async throws {
        kubelets.failingImages = ["crash:1"]
        let failing: JSON = ["apiVersion": "batch/v1", "kind": "Job", "metadata": ["name": "crash"],
                             "spec": ["backoffLimit": 2, "template": ["spec": ["restartPolicy": "Never", "containers": [["name": "c", "image": "crash:1"]]]]]]
        let ok: JSON = ["apiVersion": "batch/v1", "kind": "Job", "metadata": ["name": "ok"],
                        "spec": ["completions": 3, "parallelism": 2, "template": ["spec": ["restartPolicy": "Never", "containers": [["name": "c", "image": "ok:1"]]]]]]
        _ = try await client.create(.jobs, namespace: "default", failing)
        _ = try await client.create(.jobs, namespace: "default", ok)
        try await eventually("failing job gives up", timeout: 30) {
            try await self.client.get(.jobs, namespace: "default", name: "crash").condition("Failed")?["status"] == "True"
        }
        try await eventually("good job completes", timeout: 30) {
            try await self.client.get(.jobs, namespace: "default", name: "ok").condition("Complete")?["status"] == "True"
        }
        let crash = try await client.get(.jobs, namespace: "default", name: "crash")
        XCTAssertEqual(crash[path: "status", "failed"], 3)
        XCTAssertEqual(crash.condition("Failed")?["reason"], "BackoffLimitExceeded")
        let okJob = try await client.get(.jobs, namespace: "default", name: "ok")
        XCTAssertEqual(okJob[path: "status", "succeeded"], 3)
    }

    func testPodsAreEvictedFromADeadNode() async throws {
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("ha", replicas: 6))
        try await eventually("6 running", timeout: 20) { try await self.pods("app=ha").filter { $0.phase == "Running" }.count == 6 }
        let onDead = try await pods("app=ha").filter { $0.nodeName == "node-0" }
        XCTAssertFalse(onDead.isEmpty, "spreading should have put pods on node-0")
        kubelets.stopHeartbeat("node-0")
        try await eventually("pods replaced on live nodes", timeout: 30) {
            let ps = try await self.pods("app=ha")
            return ps.count == 6 && ps.allSatisfy { $0.nodeName != "node-0" && $0.phase == "Running" }
        }
        let node = try await client.get(.nodes, namespace: "", name: "node-0")
        XCTAssertEqual(node.condition("Ready")?["status"], "Unknown")
    }

    func testConcurrentWritersGet409AndLoseNothing() async throws {
        let conflicts = try await incrementCounterConcurrently(client!, writers: 6, rounds: 10)
        let final = try await client.get(.configmaps, namespace: "default", name: "counter")
        XCTAssertEqual(final[path: "data", "n"], "60")
        XCTAssertGreaterThan(conflicts, 0)
    }

    func testWatchResumesAcrossAPIServerRestart() async throws {
        let start = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "before"]])
        let stream = try await client.watch(.configmaps, namespace: "default", options: ListOptions(resourceVersion: start.resourceVersion))
        _ = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "seen"]])
        var lastRV = start.resourceVersion
        var names: [String] = []
        do {
            for try await e in stream {
                names.append(e.object.name); lastRV = e.object.resourceVersion
                if names == ["seen"] { cp.stop() }  // the server goes away mid-watch
            }
        } catch {}  // the stream ends with the connection
        XCTAssertEqual(names, ["seen"])
        // While it is down, a write lands in the store directly.
        do {
            let store: any Store = Self.backend == .sqlite ? try SQLiteStore(path: dir.path + "/moat.db") : try EtcdStore(endpoints: [etcd!.endpoint])
            _ = try await APIRegistry(store: store).create(.configmaps, namespace: "default", ["metadata": ["name": "while-down"]])
            store.close()
        }
        try await cp.start()
        let resumed = try await client.watch(.configmaps, namespace: "default", options: ListOptions(resourceVersion: lastRV))
        _ = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "after"]])
        let more = try await withDeadline(10) { var n: [String] = []; for try await e in resumed { n.append(e.object.name); if n.count == 2 { break } }; return n }
        XCTAssertEqual(more, ["while-down", "after"])
    }

    /// Two control planes on one store: exactly one runs controllers; when it dies the other
    /// takes over and keeps reconciling. Needs a store that several processes share with
    /// watches across them, so it runs on etcd only (`EtcdProcessClusterTests`).
    func twoControlPlanesElectOneLeader() async throws {
        let etcd = try XCTUnwrap(etcd)
        let second = try ControlPlaneProcess(backend: .etcd, dataDir: dir.path, etcd: etcd)
        try await second.start()
        defer { second.stop() }
        func holder() async throws -> String? {
            try await self.client.getIfExists(.leases, namespace: "kube-system", name: "moat-controller-manager")?[path: "spec", "holderIdentity"].string
        }
        try await eventually("a leader is elected", timeout: 15) { try await holder() != nil }
        let first = try await holder()
        XCTAssertTrue(first == cp.identity || first == second.identity, "unexpected holder \(first ?? "nil")")
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("ha", replicas: 3))
        try await eventually("deployment reconciled", timeout: 20) { try await self.pods("app=ha").count == 3 }
        // Exactly one process says it leads.
        let leaders = [cp.process?.log ?? "", second.process?.log ?? ""].filter { $0.contains("is the leader") }.count
        XCTAssertEqual(leaders, 1)
        // Kill the leader (SIGTERM: it releases the lease) and keep using the survivor's API.
        let survivor: ControlPlaneProcess
        if first == cp.identity { cp.stop(); survivor = second } else { second.stop(); survivor = cp }
        client = survivor.client
        kubelets.client = survivor.client
        try await eventually("the survivor takes the lease", timeout: 15) { try await holder() == survivor.identity }
        _ = try await client.patch(.deployments, namespace: "default", name: "ha", ["spec": ["replicas": 5]])
        try await eventually("the new leader reconciles", timeout: 20) { try await self.pods("app=ha").count == 5 }
    }
}

/// The same tests on etcd (each restated: XCTest on Linux does not discover inherited tests).
final class EtcdProcessClusterTests: ProcessClusterTests {
    override class var backend: Backend { .etcd }
    override func testDeploymentScalesRollsWithinAvailabilityAndRollsBack() async throws { try await super.testDeploymentScalesRollsWithinAvailabilityAndRollsBack() }
    override func testDaemonSetFollowsNodesJoiningAndLeaving() async throws { try await super.testDaemonSetFollowsNodesJoiningAndLeaving() }
    override func testJobRetriesUntilBackoffLimit() async throws { try await super.testJobRetriesUntilBackoffLimit() }
    override func testPodsAreEvictedFromADeadNode() async throws { try await super.testPodsAreEvictedFromADeadNode() }
    override func testConcurrentWritersGet409AndLoseNothing() async throws { try await super.testConcurrentWritersGet409AndLoseNothing() }
    override func testWatchResumesAcrossAPIServerRestart() async throws { try await super.testWatchResumesAcrossAPIServerRestart() }
    func testTwoControlPlanesElectOneLeader() async throws { try await twoControlPlanesElectOneLeader() }
}
