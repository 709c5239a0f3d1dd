import Foundation

/// Assigns unbound pods to nodes.
///
/// Watches pods and nodes; every pod with no `spec.nodeName` (and schedulerName
/// default-scheduler) is queued. Scheduling a pod: filter the nodes (`Predicates`), score
/// the survivors (least allocated + spreading of pods with the same controller), bind
/// through the `pods/{name}/binding` subresource. A pod that fits nowhere gets a
/// `PodScheduled=False` condition with reason `Unschedulable` and a message counting why
/// each node was rejected; it is retried with backoff and whenever nodes change.
///
/// Bound-pod accounting uses a live pod list plus an "assumed" map of bindings this
/// scheduler made (guarded by `lock`), so back-to-back decisions never double-book.
public final class Scheduler: @unchecked Sendable {
    public static let name = "default-scheduler"
    let client: any APIClient
    let pods: Informer
    let nodes: Informer
    public let queue = WorkQueue(baseDelay: 0.2, maxDelay: 5)
    let resync: Double
    private let lock = NSLock()
    private var assumed: [String: String] = [:]  // pod uid -> node

    public init(client: any APIClient, informers: InformerFactory, resync: Double = 10) {
        self.client = client
        self.pods = informers.informer(.pods)
        self.nodes = informers.informer(.nodes)
        self.resync = resync
        let queue = self.queue, pods = self.pods
        pods.addHandler { type, pod, _ in
            if type != "DELETED", Self.needsScheduling(pod) { await queue.add(pod.key) }
            if type == "DELETED" || pod.nodeName != nil {
                // Freed capacity (or a new binding seen by the cache): retry pending pods.
                if type == "DELETED" { for p in pods.list() where Self.needsScheduling(p) { await queue.add(p.key) } }
            }
        }
        nodes.addHandler { _, _, _ in
            for p in pods.list() where Self.needsScheduling(p) { await queue.add(p.key) }
        }
    }

    static func needsScheduling(_ p: JSON) -> Bool {
        p.nodeName == nil && p.deletionTimestamp == nil && Pods.isActive(p)
            && (p["spec"]["schedulerName"].string ?? name) == name
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "scheduler", queue: queue, workers: 1, resyncInterval: resync,
                       resyncKeys: { [pods] in pods.list().filter(Self.needsScheduling).map(\.key) },
                       reconcile: { [self] in try await self.schedule($0) })
    }

    struct Unschedulable: Error { let message: String }

    public func schedule(_ key: String) async throws {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let pod = try await client.getIfExists(.pods, namespace: parts[0], name: parts[1]),
              Self.needsScheduling(pod) else { return }
        let nodeList = try await client.list(.nodes)
        let allPods = try await client.list(.pods)
        // Bound pods per node, including our own bindings the list may not show yet.
        var boundByNode: [String: [JSON]] = [:]
        let assumedNow = lock.withLock { assumed }
        var seen = Set<String>()
        for p in allPods where p.deletionTimestamp == nil && p.phase != "Succeeded" && p.phase != "Failed" {
            let node = p.nodeName ?? assumedNow[p.uid]
            if let node { boundByNode[node, default: []].append(p); seen.insert(p.uid) }
        }
        lock.withLock { for uid in assumed.keys where !seen.contains(uid) || allPods.contains(where: { $0.uid == uid && $0.nodeName != nil }) { assumed[uid] = nil } }

        var reasons: [String: Int] = [:]
        var feasible: [(JSON, [JSON])] = []
        for node in nodeList {
            let bound = boundByNode[node.name] ?? []
            if let why = Predicates.reject(pod: pod, node: node, bound: bound, cluster: boundByNode, nodes: nodeList) { reasons[why, default: 0] += 1 }
            else { feasible.append((node, bound)) }
        }
        guard !feasible.isEmpty else {
            let detail = reasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            let msg = "0/\(nodeList.count) nodes are available" + (detail.isEmpty ? "." : ": \(detail).")
            try await markUnschedulable(pod, message: msg)
            throw Unschedulable(message: msg)  // retried with backoff
        }
        let best = feasible.max { a, b in
            let sa = Predicates.score(pod: pod, node: a.0, bound: a.1, allBound: boundByNode)
            let sb = Predicates.score(pod: pod, node: b.0, bound: b.1, allBound: boundByNode)
            return sa != sb ? sa < sb : a.0.name > b.0.name
        }!.0
        do {
            try await client.bind(namespace: pod.namespace, pod: pod.name, node: best.name)
            lock.withLock { assumed[pod.uid] = best.name }
        } catch let e as APIError where e.isConflict || e.isNotFound {
            return  // bound by someone else or gone
        }
    }

    func markUnschedulable(_ pod: JSON, message: String) async throws {
        if let c = pod.condition("PodScheduled"), c["status"].string == "False", c["message"].string == message { return }
        var tmp = pod
        tmp.setCondition(type: "PodScheduled", status: "False", reason: "Unschedulable", message: message)
        _ = try? await client.patch(.pods, namespace: pod.namespace, name: pod.name,
                                    ["status": ["conditions": tmp["status"]["conditions"]]], subresource: "status")
    }
}
