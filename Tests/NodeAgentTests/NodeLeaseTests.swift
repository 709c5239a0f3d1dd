// The node Lease is a heartbeat: the node lifecycle controller counts a
// renewed Lease in kube-node-lease as a sign of life even when the Node's
// status (which the agent posts less often) is old, and marks the node
// Unknown once neither is recent. Runs on the API library directly (SQLite
// store in a temporary directory); no root needed.

import ControlPlane
import Foundation
import XCTest

final class NodeLeaseTests: XCTestCase {
    func testLeaseRenewalKeepsTheNodeReady() async throws {
        let dir = NSTemporaryDirectory() + "moat-lease-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = APIRegistry(store: try SQLiteStore(path: dir + "/moat.db"))
        try await registry.bootstrap()
        let client = LocalAPIClient(registry: registry)
        let start = Date()
        let old = Timestamp.string(start.addingTimeInterval(-100))
        _ = try await client.create(.nodes, namespace: "", ["metadata": ["name": "n1"]])
        _ = try await client.patch(.nodes, namespace: "", name: "n1",
                                   ["status": ["conditions": [["type": "Ready", "status": "True", "lastHeartbeatTime": .string(old), "lastTransitionTime": .string(old)]]]],
                                   subresource: "status")
        _ = try await client.create(.leases, namespace: "kube-node-lease",
                                    ["metadata": ["name": "n1"], "spec": ["holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2000-01-01T00:00:00.000000Z"]])
        let controller = NodeLifecycleController(client: client, gracePeriod: 40)

        // A fresh Lease: Ready stays True although the status heartbeat is 100 s old.
        _ = try await client.patch(.leases, namespace: "kube-node-lease", name: "n1",
                                   ["spec": ["renewTime": .string(Timestamp.string(start).dropLast() + ".250000Z")]])
        try await controller.check(now: start.addingTimeInterval(5))
        var ready = try await client.get(.nodes, namespace: "", name: "n1").condition("Ready")?["status"].string
        XCTAssertEqual(ready, "True")

        // Neither renewed for longer than the grace period: Unknown.
        try await controller.check(now: start.addingTimeInterval(60))
        ready = try await client.get(.nodes, namespace: "", name: "n1").condition("Ready")?["status"].string
        XCTAssertEqual(ready, "Unknown")
    }
}
