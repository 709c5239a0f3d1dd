import Foundation

/// Assigns unbound pods to nodes.
///
/// Watches pods and nodes; every pod with no `spec.nodeName` (and schedulerName
/// default-scheduler) is queued. Scheduling a pod: filter the nodes, score the survivors
/// (least allocated + spreading of pods with the same controller), bind through the
/// `pods/{name}/binding` subresource. A pod that fits nowhere gets a `PodScheduled=False`
/// condition with reason `Unschedulable` and a message counting why each node was
/// rejected; it is retried with backoff and whenever nodes change.
///
/// Decisions are made one pod at a time from `SchedulerCache`, an incremental view of
/// each node's allocatable resources and the pods counted on it, fed by the pod and node
/// informers. A decision is *assumed* into the cache at once and bound asynchronously (at
/// most `maxInFlightBinds` at a time), so the next decision already sees it; a failed
/// binding is forgotten and the pod retried. In a large cluster only enough nodes to find
/// `feasibleNodesToFind` feasible ones are examined per pod, starting where the previous
/// search stopped, so every node is visited in turn.
public final class Scheduler: @unchecked Sendable {
    public static let name = "default-scheduler"
    let client: any APIClient
    let pods: Informer
    let nodes: Informer
    public let queue = WorkQueue(baseDelay: 0.2, maxDelay: 5)
    let resync: Double
    let cache = SchedulerCache()
    let binds: BindLimiter
    public let maxInFlightBinds: Int

    public init(client: any APIClient, informers: InformerFactory, resync: Double = 10, maxInFlightBinds: Int = 32) {
        self.client = client
        self.pods = informers.informer(.pods)
        self.nodes = informers.informer(.nodes)
        self.resync = resync
        self.maxInFlightBinds = maxInFlightBinds
        self.binds = BindLimiter(limit: maxInFlightBinds)
        let queue = self.queue, pods = self.pods, cache = self.cache
        pods.addHandler { type, pod, _ in
            cache.update(pod: pod, deleted: type == "DELETED")
            if type != "DELETED", Self.needsScheduling(pod) { await queue.add(pod.key) }
            // Freed capacity: retry pending pods.
            if type == "DELETED" { for p in pods.list() where Self.needsScheduling(p) { await queue.add(p.key) } }
        }
        nodes.addHandler { type, node, old in
            cache.update(node: node, deleted: type == "DELETED")
            if type == "MODIFIED", let old, Self.schedulingInputs(old) == Self.schedulingInputs(node) { return }
            for p in pods.list() where Self.needsScheduling(p) { await queue.add(p.key) }
        }
    }

    static func needsScheduling(_ p: JSON) -> Bool {
        p.nodeName == nil && p.deletionTimestamp == nil && Pods.isActive(p)
            && (p["spec"]["schedulerName"].string ?? name) == name
    }

    /// What a node change must touch to possibly make a pending pod fit (heartbeats do not).
    static func schedulingInputs(_ node: JSON) -> [JSON] {
        [node.condition("Ready")?["status"] ?? .null, node["metadata"]["labels"], node["spec"]["taints"],
         node["spec"]["unschedulable"], node["status"]["allocatable"], node["status"]["capacity"]]
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "scheduler", queue: queue, workers: 1, resyncInterval: resync,
                       resyncKeys: { [pods] in pods.list().filter(Self.needsScheduling).map(\.key) },
                       reconcile: { [self] in try await self.schedule($0) })
    }

    struct Unschedulable: Error { let message: String }

    /// Number of feasible nodes to find before choosing among them.
    static func feasibleNodesToFind(_ total: Int) -> Int {
        if total <= 100 { return total }
        let pct = max(5, 50 - total / 125)
        return max(100, total * pct / 100)
    }

    public func schedule(_ key: String) async throws {
        guard let pod = pods.get(key), Self.needsScheduling(pod), !cache.isAssumed(pod.uid) else { return }
        let want = PodRequest(pod)
        guard let chosen = cache.choose(for: want, toFind: Self.feasibleNodesToFind(cache.nodeCount)) else {
            let msg = cache.unschedulableMessage(for: pod)
            try await markUnschedulable(pod, message: msg)
            throw Unschedulable(message: msg)  // retried with backoff
        }
        await binds.acquire()
        Task {
            defer { Task { await self.binds.release() } }
            do {
                try await self.client.bind(pod, node: chosen)
            } catch let e as APIError where e.isConflict || e.isNotFound {
                self.cache.forget(pod.uid)  // bound by someone else, or gone
            } catch {
                self.cache.forget(pod.uid)
                await self.queue.addRateLimited(key)
            }
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

/// A pod's scheduling needs, extracted once per decision.
struct PodRequest {
    let pod: JSON
    let uid: String
    let cpu: Int64
    let memory: Int64
    let owner: String?
    let nodeSelector: [String: String]
    let tolerates: Bool  // has tolerations (else any NoSchedule/NoExecute taint rejects)
    let affinityTerms: [JSON]
    /// Inter-pod (anti-)affinity needs the whole cluster: such pods take the slow path.
    let needsClusterView: Bool

    init(_ pod: JSON) {
        self.pod = pod
        uid = pod.uid
        (cpu, memory) = Pods.requests(pod)
        owner = pod.controllerRef?.uid
        nodeSelector = (pod["spec"]["nodeSelector"].object ?? [:]).compactMapValues { $0.string }
        tolerates = !(pod["spec"]["tolerations"].array ?? []).isEmpty
        affinityTerms = pod[path: "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"].array ?? []
        let aff = pod["spec"]["affinity"]
        needsClusterView = !aff["podAffinity"].isNull || !aff["podAntiAffinity"].isNull
    }
}

/// Per-node accounting for the scheduler. All state is guarded by `lock`; methods never
/// suspend while holding it.
final class SchedulerCache: @unchecked Sendable {
    struct PodEntry { let pod: JSON; let cpu: Int64; let memory: Int64; let owner: String? }
    /// A class, so the per-pod scan over hundreds of nodes does not copy dictionaries.
    final class NodeInfo {
        var node: JSON = .null
        var present = false
        var schedulable = false      // Ready=True and not cordoned
        var hasTaints = false
        var labels: [String: String] = [:]
        var allocCPU: Int64? = nil
        var allocMemory: Int64? = nil
        var allocPods: Int = .max
        var pods: [String: PodEntry] = [:]
        var usedCPU: Int64 = 0
        var usedMemory: Int64 = 0
    }

    private let lock = NSLock()
    private var infos: [String: NodeInfo] = [:]              // Guarded by: lock
    private var order: [String] = []                         // Guarded by: lock (present nodes, sorted)
    private var start = 0                                    // Guarded by: lock
    private var placed: [String: String] = [:]               // Guarded by: lock (pod uid -> node)
    private var assumed: Set<String> = []                    // Guarded by: lock (placed by us, not yet seen bound)
    private var owners: [String: [String: Int]] = [:]        // Guarded by: lock (owner uid -> node -> pods)

    var nodeCount: Int { lock.withLock { order.count } }
    func isAssumed(_ uid: String) -> Bool { lock.withLock { assumed.contains(uid) } }

    func update(node: JSON, deleted: Bool) {
        lock.withLock {
            let info = infos[node.name] ?? NodeInfo()
            let wasPresent = info.present
            if deleted {
                info.present = false
                info.node = .null
            } else {
                info.present = true
                info.node = node
                info.schedulable = node.condition("Ready")?["status"].string == "True" && node["spec"]["unschedulable"].bool != true
                info.hasTaints = !(node["spec"]["taints"].array ?? []).isEmpty
                info.labels = node.labels
                let alloc = node["status"]["allocatable"].isNull ? node["status"]["capacity"] : node["status"]["allocatable"]
                info.allocCPU = alloc["cpu"].isNull ? nil : Quantity.milliCPU(alloc["cpu"])
                info.allocMemory = alloc["memory"].isNull ? nil : Quantity.bytes(alloc["memory"])
                info.allocPods = Quantity.parse(alloc["pods"]).map { Int($0) } ?? .max
            }
            infos[node.name] = info
            if wasPresent != info.present { order = infos.filter { $0.value.present }.map(\.key).sorted() }
        }
    }

    func update(pod: JSON, deleted: Bool) {
        lock.withLock {
            if deleted || pod.deletionTimestamp != nil || pod.phase == "Succeeded" || pod.phase == "Failed" {
                removeLocked(pod.uid)
            } else if let node = pod.nodeName {
                assumed.remove(pod.uid)
                placeLocked(pod, PodRequest(pod), on: node)
            }
        }
    }

    /// Drops an assumed placement whose binding failed.
    func forget(_ uid: String) {
        lock.withLock { if assumed.remove(uid) != nil { removeLocked(uid) } }
    }

    /// Requires: lock held.
    private func placeLocked(_ pod: JSON, _ r: PodRequest, on node: String) {
        if let cur = placed[r.uid] {
            if cur == node { infos[node]?.pods[r.uid] = PodEntry(pod: pod, cpu: r.cpu, memory: r.memory, owner: r.owner); return }
            removeLocked(r.uid)
        }
        let info = infos[node] ?? NodeInfo()
        info.pods[r.uid] = PodEntry(pod: pod, cpu: r.cpu, memory: r.memory, owner: r.owner)
        info.usedCPU += r.cpu
        info.usedMemory += r.memory
        infos[node] = info
        placed[r.uid] = node
        if let o = r.owner { owners[o, default: [:]][node, default: 0] += 1 }
    }

    /// Requires: lock held.
    private func removeLocked(_ uid: String) {
        guard let node = placed.removeValue(forKey: uid) else { return }
        assumed.remove(uid)
        guard let info = infos[node], let e = info.pods.removeValue(forKey: uid) else { return }
        info.usedCPU -= e.cpu
        info.usedMemory -= e.memory
        infos[node] = info
        if let o = e.owner {
            owners[o]?[node, default: 1] -= 1
            if owners[o]?[node] == 0 { owners[o]?[node] = nil }
            if owners[o]?.isEmpty == true { owners[o] = nil }
        }
    }

    /// Requires: lock held. Why `info` cannot take the pod, nil if it can (cluster-wide
    /// affinity excepted).
    private func rejectLocked(_ r: PodRequest, _ info: NodeInfo) -> Bool {
        guard info.present, info.schedulable else { return true }
        if info.hasTaints, Predicates.untoleratedTaint(pod: r.pod, node: info.node) != nil { return true }
        for (k, v) in r.nodeSelector where info.labels[k] != v { return true }
        if !r.affinityTerms.isEmpty, !r.affinityTerms.contains(where: { Predicates.termMatches($0, info.labels) }) { return true }
        if let c = info.allocCPU, r.cpu > 0, info.usedCPU + r.cpu > c { return true }
        if let m = info.allocMemory, r.memory > 0, info.usedMemory + r.memory > m { return true }
        if info.pods.count + 1 > info.allocPods { return true }
        return false
    }

    /// Picks a node for the pod and assumes the pod onto it; nil when none fits.
    func choose(for r: PodRequest, toFind: Int) -> String? {
        lock.withLock {
            guard !order.isEmpty else { return nil }
            var clusterPods: [String: [JSON]] = [:], nodeJSON: [JSON] = []
            if r.needsClusterView {
                for (n, info) in infos { clusterPods[n] = info.pods.values.map(\.pod) }
                nodeJSON = infos.values.filter(\.present).map(\.node)
            }
            let ownerCounts = r.owner.flatMap { owners[$0] } ?? [:]
            let most = Double(ownerCounts.values.max() ?? 0)
            var best: (score: Double, name: String)?
            var found = 0, visited = 0
            let n = order.count
            while visited < n && found < toFind {
                let name = order[(start + visited) % n]
                visited += 1
                guard let info = infos[name], !rejectLocked(r, info) else { continue }
                if r.needsClusterView, Predicates.interPodAffinity(pod: r.pod, node: info.node, cluster: clusterPods, nodes: nodeJSON) != nil { continue }
                found += 1
                func free(_ used: Int64, _ cap: Int64?) -> Double {
                    guard let cap, cap > 0 else { return 0.5 }
                    return max(0, Double(cap - used) / Double(cap))
                }
                let least = 50 * (free(info.usedCPU + r.cpu, info.allocCPU) + free(info.usedMemory + r.memory, info.allocMemory))
                let here = Double(ownerCounts[name] ?? 0)
                let spread = most == 0 ? 100 : 100 * (most - here) / most
                let score = least + spread - Double(info.pods.count) * 0.01
                if best == nil || score > best!.score || (score == best!.score && name < best!.name) { best = (score, name) }
            }
            start = (start + visited) % n
            guard let chosen = best?.name else { return nil }
            placeLocked(r.pod, r, on: chosen)
            assumed.insert(r.uid)
            return chosen
        }
    }

    /// "0/N nodes are available: ..." counting each node's first reason (the slow path).
    func unschedulableMessage(for pod: JSON) -> String {
        lock.withLock {
            let present = infos.values.filter(\.present)
            var cluster: [String: [JSON]] = [:]
            for (n, info) in infos { cluster[n] = info.pods.values.map(\.pod) }
            let nodes = present.map(\.node)
            var reasons: [String: Int] = [:]
            for info in present {
                let why = Predicates.reject(pod: pod, node: info.node, bound: cluster[info.node.name] ?? [], cluster: cluster, nodes: nodes)
                    ?? "node(s) were not chosen"
                reasons[why, default: 0] += 1
            }
            let detail = reasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            return "0/\(present.count) nodes are available" + (detail.isEmpty ? "." : ": \(detail).")
        }
    }
}

/// Caps the number of bindings in flight.
actor BindLimiter {
    let limit: Int
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    init(limit: Int) { self.limit = max(1, limit) }

    func acquire() async {
        if inFlight < limit { inFlight += 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { inFlight -= 1 } else { waiters.removeFirst().resume() }
    }
}
