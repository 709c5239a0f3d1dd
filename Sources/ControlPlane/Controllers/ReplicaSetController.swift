import Foundation

/// Keeps the number of active pods owned by each ReplicaSet equal to `spec.replicas`.
///
/// Level-triggered: watch events on replica sets and pods only enqueue the replica set's
/// key; `reconcile` reads the current state through the API (never the store) and acts.
/// Pods without a controller that match the selector are adopted; owned pods that stop
/// matching are released. Status (replicas/ready/available/observedGeneration) is written
/// through the status subresource.
public final class ReplicaSetController: Sendable {
    let client: any APIClient
    let replicaSets: Informer
    let pods: Informer
    public let queue = WorkQueue()
    let resync: Double

    public init(client: any APIClient, informers: InformerFactory, resync: Double = 30) {
        self.client = client
        self.replicaSets = informers.informer(.replicasets)
        self.pods = informers.informer(.pods)
        self.resync = resync
        let queue = self.queue, replicaSets = self.replicaSets
        replicaSets.addHandler { _, obj, _ in await queue.add(obj.key) }
        pods.addHandler { _, pod, old in
            for p in [pod, old].compactMap({ $0 }) {
                if let ref = p.controllerRef {
                    if ref.kind == "ReplicaSet" { await queue.add("\(p.namespace)/\(ref.name)") }
                } else if p.deletionTimestamp == nil {
                    // Orphans: any replica set whose selector matches may adopt it.
                    for rs in replicaSets.list(namespace: p.namespace) where LabelSelector(json: rs.selector).matches(p.labels) {
                        await queue.add(rs.key)
                    }
                }
            }
        }
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "replicaset", queue: queue, workers: 2, resyncInterval: resync,
                       resyncKeys: { [replicaSets] in replicaSets.keys }, reconcile: { [self] in try await self.reconcile($0) })
    }

    public func reconcile(_ key: String) async throws {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return }
        guard let rs = try await client.getIfExists(.replicasets, namespace: parts[0], name: parts[1]),
              rs.deletionTimestamp == nil else { return }
        let selector = LabelSelector(json: rs.selector)
        var owned: [JSON] = []
        var pending: Error?
        for p in try await client.list(.pods, namespace: rs.namespace) where Pods.isActive(p) {
            if let ref = p.controllerRef {
                guard ref.uid == rs.uid else { continue }
                if selector.matches(p.labels) { owned.append(p) } else {
                    do { try await release(p, from: rs) } catch { pending = error }
                }
            } else if selector.matches(p.labels) {
                do { owned.append(try await adopt(p, by: rs)) } catch { pending = error }
            }
        }
        // A failed adoption or release leaves the count uncertain: creating or deleting now
        // could overshoot (an orphan we failed to adopt would be adopted next time as a
        // surplus pod). Retry the whole sync instead.
        if let pending { throw pending }
        let want = rs.replicas ?? 1
        var created = 0, deleted = 0
        if owned.count < want {
            let n = want - owned.count
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<n {
                    group.addTask {
                        _ = try await self.client.create(.pods, namespace: rs.namespace,
                                                         Pods.fromTemplate(rs.template, owner: rs, generateName: rs.name + "-"))
                    }
                }
                for try await _ in group { created += 1 }
            }
        } else if owned.count > want {
            let victims = owned.sorted(by: Pods.deletionOrder).prefix(owned.count - want)
            for v in victims {
                do {
                    try await client.delete(.pods, namespace: v.namespace, name: v.name, options: .init(preconditionUID: v.uid))
                } catch let e as APIError where e.isNotFound {}
                deleted += 1
            }
            let gone = Set(victims.map(\.uid))
            owned.removeAll { gone.contains($0.uid) }
        }
        try await updateStatus(rs, owned: owned, extra: created)
    }

    /// Sets `rs` as the pod's controller, guarded by the pod's resourceVersion; on a
    /// conflict (the scheduler or a kubelet wrote the pod meanwhile) it re-reads and retries.
    func adopt(_ pod: JSON, by rs: JSON) async throws -> JSON {
        var cur = pod
        for attempt in 0..<3 {
            if let ref = cur.controllerRef {
                if ref.uid == rs.uid { return cur }
                throw APIError.conflict(.pods, cur.name, "pod was adopted by \(ref.kind)/\(ref.name)")
            }
            var refs = cur.ownerReferences
            refs.append(OwnerReference(controller: rs))
            let patch: JSON = ["metadata": ["resourceVersion": .string(cur.resourceVersion), "ownerReferences": .array(refs.map(\.json))]]
            do {
                return try await client.patch(.pods, namespace: cur.namespace, name: cur.name, patch)
            } catch let e as APIError where e.isConflict && attempt < 2 {
                cur = try await client.get(.pods, namespace: cur.namespace, name: cur.name)
                guard cur.deletionTimestamp == nil, LabelSelector(json: rs.selector).matches(cur.labels) else { throw e }
            }
        }
        throw APIError.conflict(.pods, pod.name)
    }

    func release(_ pod: JSON, from rs: JSON) async throws {
        let refs = pod.ownerReferences.filter { $0.uid != rs.uid }
        let patch: JSON = ["metadata": ["resourceVersion": .string(pod.resourceVersion),
                                        "ownerReferences": refs.isEmpty ? .null : .array(refs.map(\.json))]]
        _ = try await client.patch(.pods, namespace: pod.namespace, name: pod.name, patch)
    }

    func updateStatus(_ rs: JSON, owned: [JSON], extra: Int) async throws {
        let ready = owned.filter(Pods.isReady).count
        let templateLabels = LabelSelector(requirements: rs.template.labels.map { .equals($0.key, $0.value) })
        var status = rs["status"]
        status["replicas"] = .int(owned.count + extra)
        status["fullyLabeledReplicas"] = .int(owned.filter { templateLabels.matches($0.labels) }.count + extra)
        status["readyReplicas"] = .int(ready)
        status["availableReplicas"] = .int(ready)
        status["observedGeneration"] = .int(rs.generation)
        if status != rs["status"] {
            _ = try await client.patch(.replicasets, namespace: rs.namespace, name: rs.name, ["status": status], subresource: "status")
        }
    }
}
