import Foundation
import XCTest
@testable import ControlPlane

/// Controllers and the scheduler against a real store through the API, with simulated
/// nodes; on SQLite here and on etcd in `EtcdControllerTests`.
class ControllerTests: XCTestCase {
    class var backend: Backend { .sqlite }
    var cluster: TestCluster!
    var client: (any APIClient)!
    var kubelets: FakeKubelets!
    var manager: ControllerManager!
    var managerTask: Task<Void, Never>?

    func start(http: Bool = false, nodes: Int = 2, options: ControllerManager.Options = ControllerManager.Options()) async throws {
        try requireBackend(Self.backend)
        cluster = try await TestCluster(backend: Self.backend)
        client = http ? try await cluster.serve() : cluster.local
        kubelets = FakeKubelets(client: cluster.local)
        for i in 0..<nodes { try await kubelets.addNode("node-\(i)") }
        kubelets.start()
        var o = options
        o.resync = 1
        manager = ControllerManager(client: client, options: o)
        managerTask = Task { await manager.run() }
    }

    override func tearDown() async throws {
        managerTask?.cancel()
        _ = await managerTask?.value
        await kubelets?.stop()
        await cluster?.stop()
        cluster = nil; client = nil; kubelets = nil; manager = nil; managerTask = nil
    }

    func pods(_ selector: String? = nil) async throws -> [JSON] {
        try await client.list(.pods, namespace: "default", labelSelector: try selector.map(LabelSelector.parse) ?? .everything)
            .filter { $0.deletionTimestamp == nil }
    }

    func deployment(_ name: String) async throws -> JSON { try await client.get(.deployments, namespace: "default", name: name) }

    func testDeploymentScalesUpAndDown() async throws {
        try await start()
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("web", replicas: 3))
        try await eventually("3 running pods") { try await self.pods("app=web").filter { $0.phase == "Running" && $0.nodeName != nil }.count == 3 }
        try await eventually("deployment available") {
            let d = try await self.deployment("web")
            return d[path: "status", "availableReplicas"] == 3 && d[path: "status", "updatedReplicas"] == 3
        }
        let rs = try await client.list(.replicasets, namespace: "default")
        XCTAssertEqual(rs.count, 1)
        XCTAssertEqual(rs[0].controllerRef?.kind, "Deployment")
        XCTAssertEqual(rs[0].annotations[DeploymentController.revisionAnnotation], "1")
        for p in try await pods("app=web") { XCTAssertEqual(p.controllerRef?.uid, rs[0].uid) }

        _ = try await client.patch(.deployments, namespace: "default", name: "web", ["spec": ["replicas": 5]], subresource: "scale")
        try await eventually("5 pods") { try await self.pods("app=web").count == 5 }
        _ = try await client.patch(.deployments, namespace: "default", name: "web", ["spec": ["replicas": 1]])
        try await eventually("1 pod") { try await self.pods("app=web").count == 1 }
        try await eventually("status replicas 1") { try await self.deployment("web")[path: "status", "replicas"] == 1 }
    }

    func testRollingUpdateHonorsSurgeAndRollsBack() async throws {
        try await start()
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("roll", replicas: 4, maxSurge: 1, maxUnavailable: 0))
        try await eventually("initial rollout") { try await self.deployment("roll")[path: "status", "availableReplicas"] == 4 }

        // Sample the pod count throughout the rollout: never above replicas + maxSurge.
        let sampler = Task { () -> Int in
            var most = 0
            while !Task.isCancelled {
                if let n = try? await self.pods("app=roll").count { most = max(most, n) }
                try? await Task.sleep(nanoseconds: 5_000_000)
            }
            return most
        }
        _ = try await client.patch(.deployments, namespace: "default", name: "roll",
            ["spec": ["template": ["spec": ["containers": [["name": "main", "image": "nginx:2.0"]]]]]])
        try await eventually("rollout to nginx:2.0", timeout: 20) {
            let ps = try await self.pods("app=roll")
            let d = try await self.deployment("roll")
            return ps.count == 4 && ps.allSatisfy { $0[path: "spec", "containers"].array?.first?["image"] == "nginx:2.0" && $0.phase == "Running" }
                && d[path: "status", "updatedReplicas"] == 4 && d[path: "status", "availableReplicas"] == 4 && d[path: "status", "replicas"] == 4
        }
        sampler.cancel()
        let most = await sampler.value
        XCTAssertLessThanOrEqual(most, 5, "maxSurge=1 exceeded")
        var sets = try await client.list(.replicasets, namespace: "default")
        XCTAssertEqual(sets.count, 2)
        let byRev = Dictionary(uniqueKeysWithValues: sets.map { ($0.annotations[DeploymentController.revisionAnnotation] ?? "", $0) })
        XCTAssertEqual(byRev["1"]?.replicas, 0)
        XCTAssertEqual(byRev["2"]?.replicas, 4)
        try await eventually("deployment revision annotation 2") { try await self.deployment("roll").annotations[DeploymentController.revisionAnnotation] == "2" }

        // Roll back the way `kubectl rollout undo` does: a JSON patch that puts the revision-1
        // template back (with the empty/null fields typed clients add). The revision-1 set is
        // reused as revision 3.
        var oldTemplate = byRev["1"]!.template
        oldTemplate[path: "metadata", "labels", DeploymentController.hashLabel] = .null
        oldTemplate[path: "metadata", "creationTimestamp"] = .null
        var containers = oldTemplate[path: "spec", "containers"].array!
        containers[0]["resources"] = [:]
        oldTemplate[path: "spec", "containers"] = .array(containers)
        var templateWithNulls = oldTemplate
        templateWithNulls[path: "metadata"] = .object((oldTemplate["metadata"].object ?? [:]).merging(["creationTimestamp": .null]) { a, _ in a })
        _ = try await cluster.registry.patch(.deployments, namespace: "default", name: "roll",
            [["op": "replace", "path": "/spec/template", "value": templateWithNulls]], type: .json)
        try await eventually("rollback", timeout: 20) {
            let ps = try await self.pods("app=roll")
            return ps.count == 4 && ps.allSatisfy { $0[path: "spec", "containers"].array?.first?["image"] == "nginx:1.0" }
        }
        sets = try await client.list(.replicasets, namespace: "default")
        XCTAssertEqual(sets.count, 2)
        let old = sets.first { $0.uid == byRev["1"]?.uid }
        XCTAssertEqual(old?.annotations[DeploymentController.revisionAnnotation], "3")
        try await eventually("old set scaled to 4") { try await self.client.get(.replicasets, namespace: "default", name: old!.name).replicas == 4 }
    }

    func testReplicaSetRecreatesDeletedPodsAndAdoptsOrphans() async throws {
        try await start()
        let rs: JSON = ["apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": ["name": "rs"],
                        "spec": ["replicas": 3, "selector": ["matchLabels": ["app": "rs"]],
                                 "template": ["metadata": ["labels": ["app": "rs"]], "spec": ["containers": [["name": "c", "image": "busybox:1"]]]]]]
        // An orphan pod that matches is adopted, so only two new pods are created.
        _ = try await client.create(.pods, namespace: "default", podJSON("orphan", labels: ["app": "rs"]))
        let created = try await client.create(.replicasets, namespace: "default", rs)
        try await eventually("3 pods") { try await self.pods("app=rs").count == 3 }
        try await eventually("orphan adopted") {
            try await self.client.get(.pods, namespace: "default", name: "orphan").controllerRef?.uid == created.uid
        }
        let before = try await pods("app=rs")
        let victim = before.first { $0.name != "orphan" }!
        try await client.delete(.pods, namespace: "default", name: victim.name)
        try await eventually("replacement pod") {
            let now = try await self.pods("app=rs")
            return now.count == 3 && !now.contains { $0.uid == victim.uid }
        }
        try await eventually("status ready 3") { try await self.client.get(.replicasets, namespace: "default", name: "rs")[path: "status", "readyReplicas"] == 3 }
        // Relabelling a pod releases it; the set makes another.
        _ = try await client.patch(.pods, namespace: "default", name: "orphan", ["metadata": ["labels": ["app": "gone"]]])
        try await eventually("released and replaced") {
            let released = try await self.client.get(.pods, namespace: "default", name: "orphan")
            let n = try await self.pods("app=rs").count
            return released.ownerReferences.isEmpty && n == 3
        }
        let remaining = try await pods("app=rs").count
        XCTAssertEqual(remaining, 3)
    }

    func testGarbageCollectorDeletesDependents() async throws {
        try await start()
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("gc", replicas: 2))
        try await eventually("2 pods") { try await self.pods("app=gc").count == 2 }
        try await client.delete(.deployments, namespace: "default", name: "gc")
        try await eventually("replica sets and pods collected") {
            let rs = try await self.client.list(.replicasets, namespace: "default")
            let ps = try await self.client.list(.pods, namespace: "default", labelSelector: try LabelSelector.parse("app=gc"))
            return rs.isEmpty && ps.isEmpty
        }
        // Orphan propagation keeps the pods but strips their owner reference.
        let rs: JSON = ["apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": ["name": "keep"],
                        "spec": ["replicas": 1, "selector": ["matchLabels": ["app": "keep"]],
                                 "template": ["metadata": ["labels": ["app": "keep"]], "spec": ["containers": [["name": "c", "image": "busybox:1"]]]]]]
        _ = try await client.create(.replicasets, namespace: "default", rs)
        try await eventually("1 pod") { try await self.pods("app=keep").count == 1 }
        try await client.delete(.replicasets, namespace: "default", name: "keep", options: .init(propagationPolicy: "Orphan"))
        try await eventually("rs gone, pod orphaned") {
            let gone = try await self.client.getIfExists(.replicasets, namespace: "default", name: "keep") == nil
            let ps = try await self.pods("app=keep")
            return gone && ps.count == 1 && ps[0].ownerReferences.isEmpty
        }
    }

    func testSchedulerHonorsNodeSelectorTaintsAndResources() async throws {
        try await start(nodes: 0)
        try await kubelets.addNode("small", cpu: "1", labels: ["disk": "hdd"])
        try await kubelets.addNode("ssd", cpu: "4", labels: ["disk": "ssd"])
        try await kubelets.addNode("tainted", cpu: "8", taints: [["key": "dedicated", "value": "gpu", "effect": "NoSchedule"]])
        var p = podJSON("wants-ssd")
        p[path: "spec", "nodeSelector"] = ["disk": "ssd"]
        _ = try await client.create(.pods, namespace: "default", p)
        try await eventually("bound to ssd") { try await self.client.get(.pods, namespace: "default", name: "wants-ssd").nodeName == "ssd" }

        var tol = podJSON("tolerates", cpu: "6")
        tol[path: "spec", "tolerations"] = [["key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"]]
        _ = try await client.create(.pods, namespace: "default", tol)
        try await eventually("bound to tainted") { try await self.client.get(.pods, namespace: "default", name: "tolerates").nodeName == "tainted" }
        let bound = try await client.get(.pods, namespace: "default", name: "tolerates")
        XCTAssertEqual(bound.condition("PodScheduled")?["status"], "True")

        // Needs 3 CPUs and does not tolerate the taint: only "ssd" fits.
        _ = try await client.create(.pods, namespace: "default", podJSON("big", cpu: "3"))
        try await eventually("big on ssd") { try await self.client.get(.pods, namespace: "default", name: "big").nodeName == "ssd" }
        // Another 3-CPU pod fits nowhere now.
        _ = try await client.create(.pods, namespace: "default", podJSON("toobig", cpu: "3"))
        try await eventually("unschedulable condition") {
            let c = try await self.client.get(.pods, namespace: "default", name: "toobig").condition("PodScheduled")
            return c?["status"] == "False" && c?["reason"] == "Unschedulable"
        }
        let msg = try await client.get(.pods, namespace: "default", name: "toobig").condition("PodScheduled")?["message"].string ?? ""
        XCTAssertTrue(msg.hasPrefix("0/3 nodes are available"), msg)
        XCTAssertTrue(msg.contains("Insufficient cpu"), msg)
        XCTAssertTrue(msg.contains("didn't tolerate"), msg)
        let stillPending = try await client.get(.pods, namespace: "default", name: "toobig")
        XCTAssertNil(stillPending.nodeName)
        // Freeing capacity lets it schedule.
        try await client.delete(.pods, namespace: "default", name: "big")
        try await eventually("toobig scheduled after capacity freed") {
            try await self.client.get(.pods, namespace: "default", name: "toobig").nodeName == "ssd"
        }
    }

    func testSchedulerSpreadsReplicasOverHTTP() async throws {
        try await start(http: true, nodes: 3)
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("spread", replicas: 6))
        try await eventually("6 bound pods", timeout: 15) { try await self.pods("app=spread").filter { $0.nodeName != nil }.count == 6 }
        let perNode = Dictionary(grouping: try await pods("app=spread"), by: { $0.nodeName ?? "" }).mapValues(\.count)
        XCTAssertEqual(perNode.count, 3, "\(perNode)")
        XCTAssertTrue(perNode.values.allSatisfy { $0 == 2 }, "\(perNode)")
    }

    func testNodeLifecycleMarksNotReadyAndEvicts() async throws {
        var o = ControllerManager.Options()
        o.nodeGracePeriod = 1.5
        o.podEvictionTimeout = 1
        o.nodeMonitorInterval = 0.2
        try await start(nodes: 2, options: o)
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("ha", replicas: 4))
        try await eventually("4 running") { try await self.pods("app=ha").filter { $0.phase == "Running" }.count == 4 }
        kubelets.stopHeartbeat("node-0")
        try await eventually("node-0 not ready", timeout: 10) {
            try await self.client.get(.nodes, namespace: "", name: "node-0").condition("Ready")?["status"] != "True"
        }
        try await eventually("pods moved off node-0", timeout: 15) {
            let ps = try await self.pods("app=ha")
            return ps.count == 4 && ps.allSatisfy { $0.nodeName == "node-1" && $0.phase == "Running" }
        }
        let node = try await client.get(.nodes, namespace: "", name: "node-0")
        XCTAssertTrue((node[path: "spec", "taints"].array ?? []).contains { $0["key"].string == NodeLifecycleController.unreachableTaint })
    }

    /// Nodes without a pod CIDR get the lowest free /24 of the cluster CIDR; Nodes that brought
    /// their own keep it (and it counts as taken); a deleted Node's subnet is handed out again.
    func testNodesGetDistinctPodCIDRs() async throws {
        var o = ControllerManager.Options()
        o.clusterCIDR = IPv4CIDR("10.244.0.0/16")
        try await start(nodes: 2, options: o)   // node-0 and node-1 bring 10.244.0.0/24 and 10.244.1.0/24
        func bare(_ name: String) async throws {
            _ = try await client.create(.nodes, namespace: "", ["apiVersion": "v1", "kind": "Node", "metadata": ["name": .string(name)]])
        }
        func cidr(_ name: String) async throws -> String? { try await client.get(.nodes, namespace: "", name: name)[path: "spec", "podCIDR"].string }
        try await bare("bare-a")
        try await bare("bare-b")
        try await eventually("both bare nodes have pod CIDRs") {
            let a = try await cidr("bare-a"), b = try await cidr("bare-b")
            return a != nil && b != nil
        }
        let a = try await cidr("bare-a"), b = try await cidr("bare-b"), own = try await cidr("node-0")
        XCTAssertEqual(Set([a, b]), ["10.244.2.0/24", "10.244.3.0/24"])
        XCTAssertEqual(own, "10.244.0.0/24", "a node's own pod CIDR is kept")
        let list = try await client.get(.nodes, namespace: "", name: "bare-a")[path: "spec", "podCIDRs"]
        XCTAssertEqual(list, [.string(a ?? "")])
        let freed = a
        try await client.delete(.nodes, namespace: "", name: "bare-a")
        try await eventually("bare-a gone") { try await self.client.getIfExists(.nodes, namespace: "", name: "bare-a") == nil }
        try await bare("bare-c")
        try await eventually("bare-c has a pod CIDR") { try await cidr("bare-c") != nil }
        let c = try await cidr("bare-c")
        XCTAssertEqual(c, freed, "the lowest free subnet: the deleted node's")
    }

    func testJobRunsToCompletion() async throws {
        try await start()
        let job: JSON = ["apiVersion": "batch/v1", "kind": "Job", "metadata": ["name": "pi"],
                         "spec": ["completions": 3, "parallelism": 2,
                                  "template": ["spec": ["restartPolicy": "Never", "containers": [["name": "c", "image": "perl:5"]]]]]]
        let created = try await client.create(.jobs, namespace: "default", job)
        XCTAssertEqual(created[path: "spec", "selector", "matchLabels", "controller-uid"].string, created.uid)
        try await eventually("job complete", timeout: 15) {
            let j = try await self.client.get(.jobs, namespace: "default", name: "pi")
            return j.condition("Complete")?["status"] == "True" && j[path: "status", "succeeded"] == 3
        }
        let ps = try await client.list(.pods, namespace: "default").filter { $0.controllerRef?.uid == created.uid }
        XCTAssertEqual(ps.count, 3)
        XCTAssertTrue(ps.allSatisfy { $0.phase == "Succeeded" })
    }

    func testJobRetriesFailedPodsUpToBackoffLimit() async throws {
        try await start()
        kubelets.failingImages = ["crash:1"]
        let job: JSON = ["apiVersion": "batch/v1", "kind": "Job", "metadata": ["name": "crash"],
                         "spec": ["backoffLimit": 2, "template": ["spec": ["restartPolicy": "Never", "containers": [["name": "c", "image": "crash:1"]]]]]]
        let created = try await client.create(.jobs, namespace: "default", job)
        try await eventually("job failed", timeout: 20) {
            try await self.client.get(.jobs, namespace: "default", name: "crash").condition("Failed")?["status"] == "True"
        }
        let j = try await client.get(.jobs, namespace: "default", name: "crash")
        XCTAssertEqual(j.condition("Failed")?["reason"], "BackoffLimitExceeded")
        XCTAssertEqual(j[path: "status", "failed"], 3, "backoffLimit 2 allows 3 attempts")
        let ps = try await client.list(.pods, namespace: "default").filter { $0.controllerRef?.uid == created.uid }
        XCTAssertEqual(ps.count, 3)
        XCTAssertTrue(ps.allSatisfy { $0.phase == "Failed" })
    }

    func testDaemonSetFollowsNodesSelectorsAndTaints() async throws {
        try await start(nodes: 2)
        try await kubelets.addNode("tainted", taints: [["key": "dedicated", "value": "db", "effect": "NoSchedule"]])
        try await kubelets.addNode("gpu-0", labels: ["gpu": "true"])
        func dsJSON(_ name: String, nodeSelector: JSON? = nil) -> JSON {
            var spec: JSON = ["containers": [["name": "agent", "image": "agent:1"]]]
            if let nodeSelector { spec["nodeSelector"] = nodeSelector }
            return ["apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": ["name": .string(name)],
                    "spec": ["selector": ["matchLabels": ["app": .string(name)]],
                             "template": ["metadata": ["labels": ["app": .string(name)]], "spec": spec]]]
        }
        func nodesOf(_ app: String) async throws -> [String] {
            try await self.pods("app=\(app)").compactMap(\.nodeName).sorted()
        }
        _ = try await client.create(.daemonsets, namespace: "default", dsJSON("agent"))
        _ = try await client.create(.daemonsets, namespace: "default", dsJSON("gpu", nodeSelector: ["gpu": "true"]))
        try await eventually("one agent per untainted node") { try await nodesOf("agent") == ["gpu-0", "node-0", "node-1"] }
        try await eventually("gpu agent only on the gpu node") { try await nodesOf("gpu") == ["gpu-0"] }
        try await eventually("agent status") {
            let ds = try await self.client.get(.daemonsets, namespace: "default", name: "agent")
            return ds[path: "status", "desiredNumberScheduled"] == 3 && ds[path: "status", "numberReady"] == 3
        }
        // A node joins; another leaves.
        try await kubelets.addNode("node-2")
        try await eventually("agent follows the new node") { try await nodesOf("agent") == ["gpu-0", "node-0", "node-1", "node-2"] }
        try await kubelets.removeNode("node-1")
        try await eventually("agent leaves with the node") { try await nodesOf("agent") == ["gpu-0", "node-0", "node-2"] }
        // Tolerating the taint brings the tainted node in; the update replaces every pod.
        _ = try await client.patch(.daemonsets, namespace: "default", name: "agent",
            ["spec": ["template": ["spec": ["tolerations": [["key": "dedicated", "operator": "Exists", "effect": "NoSchedule"]]]]]])
        try await eventually("agent on the tainted node, all pods updated", timeout: 20) {
            let ps = try await self.pods("app=agent")
            return ps.compactMap(\.nodeName).sorted() == ["gpu-0", "node-0", "node-2", "tainted"]
                && ps.allSatisfy { !($0[path: "spec", "tolerations"].array ?? []).isEmpty && $0.phase == "Running" }
        }
        // Deleting a daemon pod gets it back.
        let victim = try await pods("app=gpu")[0]
        try await client.delete(.pods, namespace: "default", name: victim.name)
        try await eventually("gpu pod recreated") {
            let ps = try await self.pods("app=gpu")
            return ps.count == 1 && ps[0].uid != victim.uid
        }
    }

    func testEndpointsTrackReadyPodIPs() async throws {
        try await start(nodes: 2)
        var d = deploymentJSON("web", replicas: 2)
        d[path: "spec", "template", "spec", "containers"] = [["name": "main", "image": "nginx:1.0", "ports": [["name": "http", "containerPort": 8080]]]]
        _ = try await client.create(.deployments, namespace: "default", d)
        let svc: JSON = ["apiVersion": "v1", "kind": "Service", "metadata": ["name": "web", "labels": ["tier": "front"]],
                         "spec": ["selector": ["app": "web"], "ports": [["name": "web", "port": 80, "targetPort": "http"]]]]
        _ = try await client.create(.services, namespace: "default", svc)
        func addresses() async throws -> [String] {
            let ep = try await self.client.getIfExists(.endpoints, namespace: "default", name: "web")
            return (ep?["subsets"].array ?? []).flatMap { $0["addresses"].array ?? [] }.compactMap { $0["ip"].string }.sorted()
        }
        func podIPs() async throws -> [String] {
            try await self.pods("app=web").filter { $0.phase == "Running" }.compactMap { $0[path: "status", "podIP"].string }.sorted()
        }
        try await eventually("endpoints list both pod IPs") {
            let ips = try await podIPs(), addrs = try await addresses()
            return ips.count == 2 && Set(ips).count == 2 && addrs == ips
        }
        let ep = try await client.get(.endpoints, namespace: "default", name: "web")
        XCTAssertEqual(ep[path: "subsets"].array?.first?["ports"], [["name": "web", "port": 8080, "protocol": "TCP"]])
        XCTAssertEqual(ep.labels, ["tier": "front"])
        for ip in try await addresses() { XCTAssertTrue(ip.hasPrefix("10.244."), ip) }
        _ = try await client.patch(.deployments, namespace: "default", name: "web", ["spec": ["replicas": 3]])
        try await eventually("endpoints follow scale-up") {
            let ips = try await podIPs(), addrs = try await addresses()
            return ips.count == 3 && addrs == ips
        }
        try await client.delete(.services, namespace: "default", name: "web")
        try await eventually("endpoints deleted with the service") {
            try await self.client.getIfExists(.endpoints, namespace: "default", name: "web") == nil
        }
    }
}

/// The same tests on etcd (each restated: XCTest on Linux does not discover inherited tests).
final class EtcdControllerTests: ControllerTests {
    override class var backend: Backend { .etcd }
    override func testDeploymentScalesUpAndDown() async throws { try await super.testDeploymentScalesUpAndDown() }
    override func testRollingUpdateHonorsSurgeAndRollsBack() async throws { try await super.testRollingUpdateHonorsSurgeAndRollsBack() }
    override func testReplicaSetRecreatesDeletedPodsAndAdoptsOrphans() async throws { try await super.testReplicaSetRecreatesDeletedPodsAndAdoptsOrphans() }
    override func testGarbageCollectorDeletesDependents() async throws { try await super.testGarbageCollectorDeletesDependents() }
    override func testSchedulerHonorsNodeSelectorTaintsAndResources() async throws { try await super.testSchedulerHonorsNodeSelectorTaintsAndResources() }
    override func testSchedulerSpreadsReplicasOverHTTP() async throws { try await super.testSchedulerSpreadsReplicasOverHTTP() }
    override func testNodeLifecycleMarksNotReadyAndEvicts() async throws { try await super.testNodeLifecycleMarksNotReadyAndEvicts() }
    override func testJobRunsToCompletion() async throws { try await super.testJobRunsToCompletion() }
    override func testJobRetriesFailedPodsUpToBackoffLimit() async throws { try await super.testJobRetriesFailedPodsUpToBackoffLimit() }
    override func testDaemonSetFollowsNodesSelectorsAndTaints() async throws { try await super.testDaemonSetFollowsNodesSelectorsAndTaints() }
    override func testEndpointsTrackReadyPodIPs() async throws { try await super.testEndpointsTrackReadyPodIPs() }
    func testHeadlessServiceNamesItsReadyPodsInDNSOnEtcd() async throws { try await testHeadlessServiceNamesItsReadyPodsInDNS() }
}
