import Foundation

/// Marks nodes whose kubelet stopped heartbeating and evicts their pods.
///
/// A node's heartbeat is the later of its Ready condition's `lastHeartbeatTime` and the
/// `renewTime` of its Lease in kube-node-lease (which its agent renews more often than it
/// posts the Node's status). A node whose heartbeat is older than `gracePeriod` gets
/// Ready=Unknown (reason NodeStatusUnknown) and the `node.kubernetes.io/unreachable`
/// NoExecute taint. Once a node has been not-ready for longer than `evictionTimeout`, the
/// pods bound to it are deleted so their controllers replace them elsewhere. A node that
/// heartbeats again loses the taint.
///
/// It also taints nodes by their pressure conditions (MemoryPressure, DiskPressure,
/// PIDPressure, which the node agent's eviction manager sets): a NoSchedule taint
/// node.kubernetes.io/memory-pressure etc. while the condition is True, so the scheduler
/// places no new pods there (pods that ask for resources tolerate memory pressure: Defaults).
public final class NodeLifecycleController: Sendable {
    public static let unreachableTaint = "node.kubernetes.io/unreachable"
    public static let memoryPressureTaint = "node.kubernetes.io/memory-pressure"
    /// Condition type and the NoSchedule taint it brings.
    public static let conditionTaints = [("MemoryPressure", memoryPressureTaint),
                                         ("DiskPressure", "node.kubernetes.io/disk-pressure"),
                                         ("PIDPressure", "node.kubernetes.io/pid-pressure")]
    let client: any APIClient
    public let gracePeriod: Double
    public let evictionTimeout: Double
    public let interval: Double

    public init(client: any APIClient, gracePeriod: Double = 40, evictionTimeout: Double = 300, interval: Double = 2) {
        self.client = client; self.gracePeriod = gracePeriod; self.evictionTimeout = evictionTimeout; self.interval = interval
    }

    public func run() async {
        while !Task.isCancelled {
            try? await check()
            try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
        }
    }

    public func check(now: Date = Date()) async throws {
        for node in try await client.list(.nodes) {
            let ready = node.condition("Ready")
            let status = ready?["status"].string ?? "Unknown"
            var heartbeat = (ready?["lastHeartbeatTime"].string).flatMap(Timestamp.parse)
                ?? node.creationTimestamp.flatMap(Timestamp.parse) ?? now
            if let lease = try? await client.getIfExists(.leases, namespace: "kube-node-lease", name: node.name),
               let renewed = lease[path: "spec", "renewTime"].string.flatMap(Timestamp.parse), renewed > heartbeat {
                heartbeat = renewed
            }
            var taints = node["spec"]["taints"].array ?? []
            if let t = Self.pressureTaints(node, taints, now: now) {
                _ = try await client.patch(.nodes, namespace: "", name: node.name, ["spec": ["taints": t.isEmpty ? .null : .array(t)]])
                taints = t
            }
            let hasTaint = taints.contains { $0["key"].string == Self.unreachableTaint }
            if status == "True" {
                if now.timeIntervalSince(heartbeat) > gracePeriod {
                    var n = node
                    n.setCondition(type: "Ready", status: "Unknown", reason: "NodeStatusUnknown",
                                   message: "Kubelet stopped posting node status.", now: Timestamp.string(now))
                    _ = try await client.patch(.nodes, namespace: "", name: node.name,
                                               ["status": ["conditions": n["status"]["conditions"]]], subresource: "status")
                    if !hasTaint {
                        let t: JSON = ["key": .string(Self.unreachableTaint), "effect": "NoExecute", "timeAdded": .string(Timestamp.string(now))]
                        _ = try await client.patch(.nodes, namespace: "", name: node.name, ["spec": ["taints": .array(taints + [t])]])
                    }
                } else if hasTaint {
                    let rest = taints.filter { $0["key"].string != Self.unreachableTaint }
                    _ = try await client.patch(.nodes, namespace: "", name: node.name, ["spec": ["taints": rest.isEmpty ? .null : .array(rest)]])
                }
                continue
            }
            let since = (ready?["lastTransitionTime"].string).flatMap(Timestamp.parse) ?? heartbeat
            guard now.timeIntervalSince(since) > evictionTimeout else { continue }
            let opts = ListOptions(fieldSelector: FieldSelector(terms: [.init(field: "spec.nodeName", value: node.name, negated: false)]))
            for pod in try await client.list(.pods, namespace: nil, options: opts)["items"].array ?? [] where pod.deletionTimestamp == nil {
                do { try await client.delete(.pods, namespace: pod.namespace, name: pod.name, options: .init(preconditionUID: pod.uid)) }
                catch let e as APIError where e.isNotFound {}
            }
        }
    }

    /// The node's taints with a NoSchedule pressure taint for each pressure condition that is
    /// True and none for one that is not; nil when that is what it has.
    static func pressureTaints(_ node: JSON, _ taints: [JSON], now: Date) -> [JSON]? {
        var out = taints
        for (type, key) in conditionTaints {
            let on = node.condition(type)?["status"].string == "True"
            let has = out.contains { $0["key"].string == key && $0["effect"].string == "NoSchedule" }
            if on && !has {
                out.append(["key": .string(key), "effect": "NoSchedule", "timeAdded": .string(Timestamp.string(now))])
            } else if !on && has {
                out.removeAll { $0["key"].string == key && $0["effect"].string == "NoSchedule" }
            }
        }
        return out == taints ? nil : out
    }
}
