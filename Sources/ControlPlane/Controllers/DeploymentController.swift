import Foundation

/// Rolls Deployments out through ReplicaSets.
///
/// Each distinct pod template gets a ReplicaSet named `<deployment>-<hash>` labelled with
/// `pod-template-hash`. The ReplicaSet matching the current template is "new"; others are
/// "old". RollingUpdate grows the new set while the total stays ≤ replicas + maxSurge and
/// shrinks old sets while available pods stay ≥ replicas − maxUnavailable; Recreate scales
/// old sets to zero first. Revisions are recorded in the
/// `deployment.kubernetes.io/revision` annotation; a rollback is setting the template back,
/// which makes the old ReplicaSet new again with the next revision number. Old sets beyond
/// `revisionHistoryLimit` are deleted.
public final class DeploymentController: Sendable {
    public static let revisionAnnotation = "deployment.kubernetes.io/revision"
    public static let hashLabel = "pod-template-hash"

    let client: any APIClient
    let deployments: Informer
    let replicaSets: Informer
    public let queue = WorkQueue()
    let resync: Double

    public init(client: any APIClient, informers: InformerFactory, resync: Double = 30) {
        self.client = client
        self.deployments = informers.informer(.deployments)
        self.replicaSets = informers.informer(.replicasets)
        self.resync = resync
        let queue = self.queue, deployments = self.deployments
        deployments.addHandler { _, d, _ in await queue.add(d.key) }
        replicaSets.addHandler { _, rs, old in
            for r in [rs, old].compactMap({ $0 }) {
                if let ref = r.controllerRef {
                    if ref.kind == "Deployment" { await queue.add("\(r.namespace)/\(ref.name)") }
                } else {
                    for d in deployments.list(namespace: r.namespace) where LabelSelector(json: d.selector).matches(r.labels) {
                        await queue.add(d.key)
                    }
                }
            }
        }
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "deployment", queue: queue, workers: 2, resyncInterval: resync,
                       resyncKeys: { [deployments] in deployments.keys }, reconcile: { [self] in try await self.reconcile($0) })
    }

    static func revision(_ o: JSON) -> Int { Int(o.annotations[revisionAnnotation] ?? "") ?? 0 }

    /// The template without the hash label, for comparing a ReplicaSet with a Deployment.
    static func stripHash(_ template: JSON) -> JSON {
        var t = template.pruned(dropEmpty: true)
        t[path: "metadata", "labels", hashLabel] = .null
        if t["metadata"]["labels"].object?.isEmpty == true { t[path: "metadata", "labels"] = .null }
        return t
    }

    public func reconcile(_ key: String) async throws {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return }
        guard let d = try await client.getIfExists(.deployments, namespace: parts[0], name: parts[1]),
              d.deletionTimestamp == nil else { return }
        let selector = LabelSelector(json: d.selector)

        // Owned replica sets (adopting orphans that match).
        var owned: [JSON] = []
        for rs in try await client.list(.replicasets, namespace: d.namespace) {
            if let ref = rs.controllerRef {
                if ref.uid == d.uid { owned.append(rs) }
            } else if rs.deletionTimestamp == nil, selector.matches(rs.labels) {
                var refs = rs.ownerReferences; refs.append(OwnerReference(controller: d))
                owned.append(try await client.patch(.replicasets, namespace: rs.namespace, name: rs.name,
                    ["metadata": ["resourceVersion": .string(rs.resourceVersion), "ownerReferences": .array(refs.map(\.json))]]))
            }
        }
        let template = Self.stripHash(d.template)
        let hash = stableHash(template)
        var newRS = owned.first { $0.labels[Self.hashLabel] == hash }
            ?? owned.first { Self.stripHash($0.template) == template }
        var olds = owned.filter { $0.uid != newRS?.uid }
        let maxRevision = owned.map(Self.revision).max() ?? 0

        let replicas = d.replicas ?? 1
        let isRecreate = d[path: "spec", "strategy", "type"].string == "Recreate"
        if newRS == nil {
            let oldActive = olds.contains { ($0.replicas ?? 0) > 0 || ($0["status"]["replicas"].int ?? 0) > 0 }
            let initial: Int
            if olds.isEmpty { initial = replicas }
            else if isRecreate { initial = oldActive ? 0 : replicas }
            else { initial = 0 }
            newRS = try await createReplicaSet(d, template: template, hash: hash, replicas: initial, revision: maxRevision + 1)
        } else if Self.revision(newRS!) < maxRevision || Self.revision(newRS!) == 0 {
            // Rolled back to an older template: it becomes the newest revision.
            newRS = try await client.patch(.replicasets, namespace: d.namespace, name: newRS!.name,
                ["metadata": ["annotations": [Self.revisionAnnotation: .string(String(maxRevision + 1))]]])
        }
        guard var new = newRS else { return }

        if isRecreate {
            try await recreate(d, new: &new, olds: &olds, replicas: replicas)
        } else {
            try await rollingUpdate(d, new: &new, olds: &olds, replicas: replicas)
        }
        try await cleanup(d, olds: olds)
        try await updateStatus(d, new: new, all: [new] + olds, replicas: replicas)
    }

    func createReplicaSet(_ d: JSON, template: JSON, hash: String, replicas: Int, revision: Int) async throws -> JSON {
        var t = template
        t[path: "metadata", "labels", Self.hashLabel] = .string(hash)
        var sel = d.selector
        sel[path: "matchLabels", Self.hashLabel] = .string(hash)
        var rs: JSON = ["apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": [:],
                        "spec": ["replicas": .int(replicas), "selector": sel, "template": t]]
        rs.name = "\(d.name)-\(hash)"
        rs.namespace = d.namespace
        rs.labels = t.labels
        rs.annotations = [Self.revisionAnnotation: String(revision), "deployment.kubernetes.io/desired-replicas": String(d.replicas ?? 1)]
        rs.ownerReferences = [OwnerReference(controller: d)]
        do {
            return try await client.create(.replicasets, namespace: d.namespace, rs)
        } catch let e as APIError where e.isAlreadyExists {
            let existing = try await client.get(.replicasets, namespace: d.namespace, name: rs.name)
            guard existing.controllerRef?.uid == d.uid else { throw e }
            return existing
        }
    }

    func scale(_ rs: inout JSON, to n: Int) async throws {
        guard rs.replicas != n else { return }
        rs = try await client.patch(.replicasets, namespace: rs.namespace, name: rs.name, ["spec": ["replicas": .int(n)]])
    }

    static func available(_ rs: JSON) -> Int { rs["status"]["availableReplicas"].int ?? 0 }

    func rollingUpdate(_ d: JSON, new: inout JSON, olds: inout [JSON], replicas: Int) async throws {
        let ru = d[path: "spec", "strategy", "rollingUpdate"]
        let maxSurge = (IntOrPercent(ru["maxSurge"]) ?? IntOrPercent(.string("25%"))!).scaled(replicas, roundUp: true)
        var maxUnavailable = (IntOrPercent(ru["maxUnavailable"]) ?? IntOrPercent(.string("25%"))!).scaled(replicas, roundUp: false)
        if maxSurge == 0 && maxUnavailable == 0 { maxUnavailable = 1 }
        maxUnavailable = min(maxUnavailable, replicas)

        let activeOlds = olds.filter { ($0.replicas ?? 0) > 0 }
        if activeOlds.isEmpty {
            try await scale(&new, to: replicas)
            return
        }
        // Scale up the new set within the surge budget, counting for each set the larger of
        // what it should have and what it still has: an old set just scaled down keeps its
        // pods until its ReplicaSet controller deletes them, and counting only its new spec
        // let the new set's pods arrive first (6 live pods for replicas 4 + maxSurge 1, seen
        // on etcd in EtcdProcessClusterTests).
        let total = ([new] + olds).reduce(0) { $0 + max($1.replicas ?? 0, $1["status"]["replicas"].int ?? 0) }
        let newCount = new.replicas ?? 0
        if newCount < replicas {
            let room = replicas + maxSurge - total
            if room > 0 { try await scale(&new, to: min(replicas, newCount + room)) }
        } else if newCount > replicas {
            try await scale(&new, to: replicas)
        }
        // Scale down old sets while keeping enough pods available.
        let minAvailable = replicas - maxUnavailable
        let allSpec = ([new] + olds).reduce(0) { $0 + ($1.replicas ?? 0) }
        let newUnavailable = max(0, (new.replicas ?? 0) - Self.available(new))
        var budget = allSpec - minAvailable - newUnavailable
        if budget <= 0 { return }
        olds.sort { Self.revision($0) < Self.revision($1) }
        // First drop old pods that are not available anyway.
        for i in olds.indices where budget > 0 {
            let unhealthy = (olds[i].replicas ?? 0) - Self.available(olds[i])
            if unhealthy > 0 {
                let n = min(unhealthy, budget)
                try await scale(&olds[i], to: (olds[i].replicas ?? 0) - n)
                budget -= n
            }
        }
        // Then scale down available old pods, oldest revision first.
        let availableAll = ([new] + olds).reduce(0) { $0 + min(Self.available($1), $1.replicas ?? 0) }
        var remaining = min(budget, availableAll - minAvailable)
        for i in olds.indices where remaining > 0 {
            let n = min(olds[i].replicas ?? 0, remaining)
            if n > 0 {
                try await scale(&olds[i], to: (olds[i].replicas ?? 0) - n)
                remaining -= n
            }
        }
    }

    func recreate(_ d: JSON, new: inout JSON, olds: inout [JSON], replicas: Int) async throws {
        var oldPodsRemain = false
        for i in olds.indices {
            if (olds[i].replicas ?? 0) > 0 { try await scale(&olds[i], to: 0) }
            if (olds[i]["status"]["replicas"].int ?? 0) > 0 { oldPodsRemain = true }
        }
        if !oldPodsRemain {
            // Confirm with a live pod list: status may lag behind the scale-down.
            let pods = try await client.list(.pods, namespace: d.namespace)
            let oldUIDs = Set(olds.map(\.uid))
            oldPodsRemain = pods.contains { Pods.isActive($0) && oldUIDs.contains($0.controllerRef?.uid ?? "") }
        }
        if !oldPodsRemain { try await scale(&new, to: replicas) }
    }

    func cleanup(_ d: JSON, olds: [JSON]) async throws {
        let limit = d[path: "spec", "revisionHistoryLimit"].int ?? 10
        let idle = olds.filter { ($0.replicas ?? 0) == 0 && ($0["status"]["replicas"].int ?? 0) == 0 && $0.deletionTimestamp == nil }
            .sorted { Self.revision($0) < Self.revision($1) }
        guard idle.count > limit else { return }
        for rs in idle.prefix(idle.count - limit) {
            do { try await client.delete(.replicasets, namespace: rs.namespace, name: rs.name, options: .init(preconditionUID: rs.uid)) }
            catch let e as APIError where e.isNotFound {}
        }
    }

    func updateStatus(_ d: JSON, new: JSON, all: [JSON], replicas: Int) async throws {
        let sum = { (f: String) in all.reduce(0) { $0 + ($1["status"][f].int ?? 0) } }
        let available = sum("availableReplicas")
        let updated = new["status"]["replicas"].int ?? 0
        let total = sum("replicas")
        var status = d["status"]
        status["observedGeneration"] = .int(d.generation)
        status["replicas"] = .int(total)
        status["updatedReplicas"] = .int(updated)
        status["readyReplicas"] = .int(sum("readyReplicas"))
        status["availableReplicas"] = .int(available)
        status["unavailableReplicas"] = .int(max(0, total - available))
        let ru = d[path: "spec", "strategy", "rollingUpdate"]
        let maxUnavailable = (IntOrPercent(ru["maxUnavailable"]) ?? IntOrPercent(.int(0))!).scaled(replicas, roundUp: false)
        var tmp = JSON.object(["status": status])
        let isAvailable = available >= replicas - maxUnavailable
        tmp.setCondition(type: "Available", status: isAvailable ? "True" : "False",
                         reason: isAvailable ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                         message: isAvailable ? "Deployment has minimum availability." : "Deployment does not have minimum availability.")
        let complete = updated == replicas && total == replicas && available >= replicas && (new.replicas ?? 0) == replicas
        tmp.setCondition(type: "Progressing", status: "True",
                         reason: complete ? "NewReplicaSetAvailable" : "ReplicaSetUpdated",
                         message: complete ? "ReplicaSet \"\(new.name)\" has successfully progressed." : "ReplicaSet \"\(new.name)\" is progressing.")
        status = tmp["status"]
        if status != d["status"] {
            // Keep condition timestamps from churning the object: compare without them first.
            _ = try await client.patch(.deployments, namespace: d.namespace, name: d.name, ["status": status], subresource: "status")
        }
        let rev = new.annotations[Self.revisionAnnotation] ?? ""
        if !rev.isEmpty, d.annotations[Self.revisionAnnotation] != rev {
            _ = try await client.patch(.deployments, namespace: d.namespace, name: d.name,
                                       ["metadata": ["annotations": [Self.revisionAnnotation: .string(rev)]]])
        }
    }
}
