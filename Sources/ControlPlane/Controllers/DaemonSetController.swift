import Foundation

/// Runs one pod of each DaemonSet on every ready node it selects.
///
/// A node is eligible when its Ready condition is True, it matches the template's
/// `nodeSelector` (and required node affinity), and every NoSchedule/NoExecute taint on it is
/// tolerated by the template. Daemon pods are created already bound (`spec.nodeName`), so
/// they do not wait for the scheduler. Pods on nodes that left (deleted, not ready, no
/// longer selected), duplicates, and failed pods are deleted; eligible nodes without a pod
/// get one. Level-triggered like the other controllers: DaemonSet, node and pod events
/// only enqueue DaemonSet keys.
///
/// Updates: every pod carries `controller-revision-hash` = hash of the template. With the
/// RollingUpdate strategy, pods of an older template are deleted while fewer than
/// `maxUnavailable` (default 1) desired nodes lack a ready current pod; OnDelete leaves them.
public final class DaemonSetController: Sendable {
    public static let hashLabel = "controller-revision-hash"
    let client: any APIClient
    let daemonSets: Informer
    public let queue = WorkQueue()
    let resync: Double

    public init(client: any APIClient, informers: InformerFactory, resync: Double = 30) {
        self.client = client
        self.daemonSets = informers.informer(.daemonsets)
        self.resync = resync
        let queue = self.queue, daemonSets = self.daemonSets
        daemonSets.addHandler { _, ds, _ in await queue.add(ds.key) }
        informers.informer(.nodes).addHandler { type, node, old in
            // Only changes that can alter eligibility matter; heartbeats do not.
            if type == "MODIFIED", let old, Self.eligibilityInputs(old) == Self.eligibilityInputs(node) { return }
            for k in daemonSets.keys { await queue.add(k) }
        }
        informers.informer(.pods).addHandler { _, p, old in
            for x in [p, old].compactMap({ $0 }) {
                if let ref = x.controllerRef, ref.kind == "DaemonSet" { await queue.add("\(x.namespace)/\(ref.name)") }
            }
        }
    }

    static func eligibilityInputs(_ node: JSON) -> [JSON] {
        [node.condition("Ready")?["status"] ?? .null, node["metadata"]["labels"], node["spec"]["taints"], node["spec"]["unschedulable"]]
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "daemonset", queue: queue, workers: 2, resyncInterval: resync,
                       resyncKeys: { [daemonSets] in daemonSets.keys }, reconcile: { [self] in try await self.reconcile($0) })
    }

    /// Whether a pod built from `template` belongs on `node`.
    public static func shouldRun(template: JSON, on node: JSON) -> Bool {
        guard node.condition("Ready")?["status"].string == "True", node.deletionTimestamp == nil else { return false }
        let probe: JSON = ["spec": template["spec"]]
        for (k, v) in probe["spec"]["nodeSelector"].object ?? [:] where node.labels[k] != v.string { return false }
        let required = probe[path: "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"]
        if let terms = required["nodeSelectorTerms"].array, !terms.isEmpty,
           !terms.contains(where: { Predicates.termMatches($0, node.labels) }) { return false }
        return Predicates.untoleratedTaint(pod: probe, node: node) == nil
    }

    public func reconcile(_ key: String) async throws {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let ds = try await client.getIfExists(.daemonsets, namespace: parts[0], name: parts[1]),
              ds.deletionTimestamp == nil else { return }
        let hash = stableHash(ds.template)
        let nodes = try await client.list(.nodes)
        let pods = try await client.list(.pods, namespace: ds.namespace).filter { $0.controllerRef?.uid == ds.uid && $0.deletionTimestamp == nil }
        var byNode: [String: [JSON]] = [:]
        var stray: [JSON] = []
        for p in pods {
            if let n = p.nodeName { byNode[n, default: []].append(p) } else { stray.append(p) }
        }
        var toDelete = stray
        var toCreate: [String] = []
        var desired = 0, scheduled = 0, ready = 0, updated = 0, misscheduled = 0
        var oldReady: [JSON] = [], unavailable = 0
        let eligible = Set(nodes.filter { Self.shouldRun(template: ds.template, on: $0) }.map(\.name))
        for node in nodes.map(\.name) where !eligible.contains(node) {
            if let ps = byNode[node], !ps.isEmpty { misscheduled += 1; toDelete += ps }
        }
        for (node, ps) in byNode where !nodes.contains(where: { $0.name == node }) { toDelete += ps }  // node deleted
        for node in eligible.sorted() {
            desired += 1
            var ps = byNode[node] ?? []
            let failed = ps.filter { $0.phase == "Failed" || $0.phase == "Succeeded" }
            toDelete += failed
            ps.removeAll { p in failed.contains { $0.uid == p.uid } }
            if ps.count > 1 {
                // Keep one pod, preferring the current template and readiness.
                let sorted = ps.sorted { a, b in
                    let ka = [a.labels[Self.hashLabel] == hash ? 1 : 0, Pods.isReady(a) ? 1 : 0]
                    let kb = [b.labels[Self.hashLabel] == hash ? 1 : 0, Pods.isReady(b) ? 1 : 0]
                    return ka != kb ? kb.lexicographicallyPrecedes(ka) : (a.creationTimestamp ?? "") < (b.creationTimestamp ?? "")
                }
                toDelete += sorted.dropFirst()
                ps = [sorted[0]]
            }
            guard let p = ps.first else { toCreate.append(node); unavailable += 1; continue }
            scheduled += 1
            let isReady = Pods.isReady(p)
            if isReady { ready += 1 }
            if p.labels[Self.hashLabel] == hash {
                updated += 1
                if !isReady { unavailable += 1 }
            } else if isReady {
                oldReady.append(p)
            } else {
                toDelete.append(p); unavailable += 1  // an old pod that is not ready anyway: replace now
            }
        }
        if ds[path: "spec", "updateStrategy", "type"].string != "OnDelete" {
            let maxUnavailable = Self.maxUnavailable(ds, desired: desired)
            for p in oldReady.sorted(by: { $0.name < $1.name }) where unavailable < maxUnavailable {
                toDelete.append(p); unavailable += 1
            }
        }
        var pending: Error?
        for p in toDelete {
            do { try await client.delete(.pods, namespace: p.namespace, name: p.name, options: .init(preconditionUID: p.uid)) }
            catch let e as APIError where e.isNotFound {} catch { pending = error }
        }
        for node in toCreate {
            var pod = Pods.fromTemplate(ds.template, owner: ds, generateName: ds.name + "-")
            pod[path: "spec", "nodeName"] = .string(node)
            var labels = pod.labels; labels[Self.hashLabel] = hash; pod.labels = labels
            do { _ = try await client.create(.pods, namespace: ds.namespace, pod) } catch { pending = error }
        }
        var status = ds["status"]
        status["desiredNumberScheduled"] = .int(desired)
        status["currentNumberScheduled"] = .int(scheduled + toCreate.count)
        status["numberMisscheduled"] = .int(misscheduled)
        status["numberReady"] = .int(ready)
        status["numberAvailable"] = .int(ready)
        status["numberUnavailable"] = .int(max(0, desired - ready))
        status["updatedNumberScheduled"] = .int(updated + toCreate.count)
        status["observedGeneration"] = .int(ds.generation)
        if status != ds["status"] {
            _ = try await client.patch(.daemonsets, namespace: ds.namespace, name: ds.name, ["status": status], subresource: "status")
        }
        if let pending { throw pending }
    }

    static func maxUnavailable(_ ds: JSON, desired: Int) -> Int {
        let v = ds[path: "spec", "updateStrategy", "rollingUpdate", "maxUnavailable"]
        if let i = v.int { return max(1, i) }
        if let s = v.string, s.hasSuffix("%"), let pct = Double(s.dropLast()) {
            return max(1, Int((Double(desired) * pct / 100).rounded(.down)))
        }
        return 1
    }
}
