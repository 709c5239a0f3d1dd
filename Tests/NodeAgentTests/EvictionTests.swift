// Node-pressure eviction's decisions (Eviction.swift) and the control plane's
// answer to a pressure condition, without root: thresholds parse as kubelet
// writes them and are crossed as it counts them; pods rank for eviction as
// kubelet ranks them; a pressure condition stays True through its transition
// period; the node lifecycle controller taints a node by its pressure
// conditions and lifts the taints again; the API server gives pods that ask
// for resources the memory-pressure toleration, so the scheduler keeps only
// BestEffort pods off such a node; a Failed pod no longer counts as a
// ReplicaSet's active replica. The whole chain against `moat cri` is
// NodeAgentTests.testNodePressureEviction.

import ControlPlane
import Foundation
import XCTest
@testable import NodeAgent

final class EvictionTests: XCTestCase {
    func testThresholdsParseAndCross() throws {
        let t = try EvictionThreshold.parse("memory.available<100Mi, nodefs.available<10%,pid.available<1000")
        XCTAssertEqual(t, [.init(signal: .memoryAvailable, value: .quantity(100 << 20)),
                           .init(signal: .nodefsAvailable, value: .percent(10)),
                           .init(signal: .pidAvailable, value: .quantity(1000))])
        XCTAssertEqual(EvictionThreshold.defaults.map(\.signal), [.memoryAvailable, .nodefsAvailable, .nodefsInodesFree, .imagefsAvailable])
        XCTAssertThrowsError(try EvictionThreshold.parse("memory.free<1Gi"))
        XCTAssertThrowsError(try EvictionThreshold.parse("nodefs.available<120%"))
        XCTAssertThrowsError(try EvictionThreshold.parse("memory.available>1Gi"))
        XCTAssertEqual(try EvictionThreshold.parse(""), [])

        let obs: [EvictionThreshold.Signal: EvictionObservation] = [
            .memoryAvailable: .init(available: 99 << 20, capacity: 8 << 30),
            .nodefsAvailable: .init(available: 11, capacity: 100),
            .pidAvailable: .init(available: 1000, capacity: 4_000_000),
        ]
        // 99Mi < 100Mi crosses; 11% is not under 10%; 1000 is not under 1000.
        XCTAssertEqual(Eviction.met(t, obs).map(\.signal), [.memoryAvailable])
        var less = obs
        less[.nodefsAvailable] = .init(available: 9, capacity: 100)
        less[.memoryAvailable] = .init(available: 100 << 20, capacity: 8 << 30)
        XCTAssertEqual(Eviction.met(t, less).map(\.signal), [.nodefsAvailable])
        // A signal not observed crosses nothing.
        XCTAssertEqual(Eviction.met(t, [:]), [])
    }

    func testPressureConditionKeepsThroughTheTransitionPeriod() {
        let now = Date()
        let last = ["MemoryPressure": now.addingTimeInterval(-20), "DiskPressure": now.addingTimeInterval(-400)]
        XCTAssertEqual(Eviction.conditions(lastMet: last, now: now, transition: 300), ["MemoryPressure"])
        XCTAssertEqual(Eviction.conditions(lastMet: last, now: now, transition: 10), [])
        XCTAssertEqual(Eviction.conditions(lastMet: ["PIDPressure": now], now: now, transition: 0), ["PIDPressure"])
    }

    func testRankUsageAboveRequestsThenPriorityThenExcess() {
        let mi: UInt64 = 1 << 20
        let pods = [
            EvictionCandidate(uid: "guaranteed", priority: 0, usage: 30 * mi, request: 512 * mi),
            EvictionCandidate(uid: "burstable-within", priority: 0, usage: 30 * mi, request: 256 * mi),
            EvictionCandidate(uid: "besteffort-small", priority: 0, usage: 20 * mi, request: 0),
            EvictionCandidate(uid: "besteffort-big", priority: 0, usage: 40 * mi, request: 0),
            EvictionCandidate(uid: "important-over", priority: 1000, usage: 90 * mi, request: 10 * mi),
            EvictionCandidate(uid: "low-within", priority: -5, usage: 1 * mi, request: 100 * mi),
        ]
        XCTAssertEqual(Eviction.rank(pods).map(\.uid),
                       ["besteffort-big", "besteffort-small", "important-over", "low-within", "burstable-within", "guaranteed"])
    }

    func testPressureTaintsAndTheMemoryPressureToleration() async throws {
        let dir = NSTemporaryDirectory() + "moat-evict-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = APIRegistry(store: try SQLiteStore(path: dir + "/moat.db"))
        try await registry.bootstrap()
        let client = LocalAPIClient(registry: registry)
        _ = try await client.create(.nodes, namespace: "", ["metadata": ["name": "n1"]])
        func conditions(memory: String, disk: String) async throws {
            let now = Timestamp.now()
            _ = try await client.patch(.nodes, namespace: "", name: "n1", ["status": ["conditions": [
                ["type": "Ready", "status": "True", "lastHeartbeatTime": .string(now), "lastTransitionTime": .string(now)],
                ["type": "MemoryPressure", "status": .string(memory), "lastHeartbeatTime": .string(now), "lastTransitionTime": .string(now)],
                ["type": "DiskPressure", "status": .string(disk), "lastHeartbeatTime": .string(now), "lastTransitionTime": .string(now)],
            ]]], subresource: "status")
        }
        func taints() async throws -> [String] {
            try await client.get(.nodes, namespace: "", name: "n1")[path: "spec", "taints"].array?.map { "\($0["key"].string ?? ""):\($0["effect"].string ?? "")" } ?? []
        }
        let controller = NodeLifecycleController(client: client, gracePeriod: 40)
        try await conditions(memory: "True", disk: "False")
        try await controller.check()
        var now = try await taints()
        XCTAssertEqual(now, ["node.kubernetes.io/memory-pressure:NoSchedule"])

        // A BestEffort pod gets no toleration and is kept off; one that asks for memory tolerates it.
        let best = try await client.create(.pods, namespace: "default", ["metadata": ["name": "best"], "spec": ["containers": [["name": "c", "image": "busybox"]]]])
        let burst = try await client.create(.pods, namespace: "default", ["metadata": ["name": "burst"], "spec": ["containers": [
            ["name": "c", "image": "busybox", "resources": ["requests": ["memory": "10Mi"]]]]]])
        XCTAssertEqual(best[path: "spec", "tolerations"].array ?? [], [])
        XCTAssertEqual(burst[path: "spec", "tolerations"].array?.compactMap { $0["key"].string }, ["node.kubernetes.io/memory-pressure"])
        let node = try await client.get(.nodes, namespace: "", name: "n1")
        XCTAssertEqual(Predicates.reject(pod: best, node: node, bound: [])?.contains("memory-pressure"), true)
        XCTAssertNil(Predicates.reject(pod: burst, node: node, bound: []))

        // Disk pressure too: both taints; it keeps every pod off.
        try await conditions(memory: "True", disk: "True")
        try await controller.check()
        now = try await taints()
        XCTAssertEqual(Set(now), ["node.kubernetes.io/memory-pressure:NoSchedule", "node.kubernetes.io/disk-pressure:NoSchedule"])
        let pressed = try await client.get(.nodes, namespace: "", name: "n1")
        XCTAssertNotNil(Predicates.reject(pod: burst, node: pressed, bound: []))

        // Pressure over: the taints go.
        try await conditions(memory: "False", disk: "False")
        try await controller.check()
        now = try await taints()
        XCTAssertEqual(now, [])

        // An evicted pod is no active replica: its ReplicaSet replaces it.
        var evicted = burst
        evicted[path: "status", "phase"] = "Failed"
        evicted[path: "status", "reason"] = "Evicted"
        XCTAssertFalse(Pods.isActive(evicted))
    }
}
