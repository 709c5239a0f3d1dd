// Graceful pod deletion in the API, on the library directly (SQLite store in
// a temporary directory; no root): a pod on a Ready node whose agent finishes
// graceful deletions is only marked Terminating; the same pod goes at once
// when deleted again after its node stopped being Ready, and so does a pod on
// a node without such an agent, or with gracePeriodSeconds 0.

import ControlPlane
import Foundation
import XCTest

final class PodDeletionTests: XCTestCase {
    func testGracefulOnlyWhereAnAgentWillFinishIt() async throws {
        let dir = NSTemporaryDirectory() + "moat-poddel-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = APIRegistry(store: try SQLiteStore(path: dir + "/moat.db"))
        try await registry.bootstrap()
        func node(_ name: String, agent: Bool, ready: String) async throws {
            var n: JSON = ["metadata": ["name": .string(name)]]
            if agent { n[path: "metadata", "annotations"] = .object([NodeProxy.gracefulDeletionAnnotation: "true"]) }
            if (try? await registry.get(.nodes, namespace: "", name: name)) == nil { _ = try await registry.create(.nodes, namespace: "", n) }
            _ = try await registry.patch(.nodes, namespace: "", name: name,
                                         ["status": ["conditions": [["type": "Ready", "status": .string(ready)]]]], subresource: "status")
        }
        func pod(_ name: String, on node: String) async throws {
            _ = try await registry.create(.pods, namespace: "default",
                                          ["metadata": ["name": .string(name)],
                                           "spec": ["nodeName": .string(node), "terminationGracePeriodSeconds": 7, "containers": [["name": "c", "image": "busybox"]]]])
        }
        try await node("agent", agent: true, ready: "True")
        try await node("plain", agent: false, ready: "True")
        try await pod("a", on: "agent")
        try await pod("b", on: "plain")
        try await pod("c", on: "agent")

        var r = try await registry.delete(.pods, namespace: "default", name: "a")
        XCTAssertFalse(r.deleted)
        XCTAssertEqual(r.object["metadata"]["deletionGracePeriodSeconds"].int, 7)
        XCTAssertNotNil(r.object.deletionTimestamp)
        // A status write while Terminating does not remove it (only its node does).
        _ = try await registry.patch(.pods, namespace: "default", name: "a", ["status": ["phase": "Running"]], subresource: "status")
        let still = try? await registry.get(.pods, namespace: "default", name: "a")
        XCTAssertNotNil(still)

        r = try await registry.delete(.pods, namespace: "default", name: "b")
        XCTAssertTrue(r.deleted, "a pod on a node without a graceful agent goes at once")
        r = try await registry.delete(.pods, namespace: "default", name: "c", options: .init(gracePeriodSeconds: 0))
        XCTAssertTrue(r.deleted, "gracePeriodSeconds 0 removes at once")

        // The node dies while a is Terminating: deleting a again removes it.
        try await node("agent", agent: true, ready: "Unknown")
        r = try await registry.delete(.pods, namespace: "default", name: "a")
        XCTAssertTrue(r.deleted)
    }
}
