import Foundation

/// Scheduling filters and scores, as pure functions over JSON objects.
public enum Predicates {
    /// Why `node` cannot run `pod` (a phrase counted in the Unschedulable message), or nil if it can.
    /// `bound` are the active pods already on the node; `cluster` maps node name to its bound
    /// pods and `nodes` lists all nodes, for inter-pod (anti-)affinity.
    public static func reject(pod: JSON, node: JSON, bound: [JSON], cluster: [String: [JSON]] = [:], nodes: [JSON] = []) -> String? {
        if node.condition("Ready")?["status"].string != "True" { return "node(s) were not ready" }
        if node["spec"]["unschedulable"].bool == true { return "node(s) were unschedulable" }
        if let taint = untoleratedTaint(pod: pod, node: node) {
            return "node(s) had taint {\(taint["key"].string ?? ""): \(taint["value"].string ?? "")}, that the pod didn't tolerate"
        }
        for (k, v) in pod["spec"]["nodeSelector"].object ?? [:] where node.labels[k] != v.string {
            return "node(s) didn't match node selector"
        }
        let required = pod[path: "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"]
        if let terms = required["nodeSelectorTerms"].array, !terms.isEmpty,
           !terms.contains(where: { termMatches($0, node.labels) }) {
            return "node(s) didn't match Pod's node affinity"
        }
        let alloc = node["status"]["allocatable"].isNull ? node["status"]["capacity"] : node["status"]["allocatable"]
        let req = Pods.requests(pod)
        var usedCPU: Int64 = 0, usedMem: Int64 = 0
        for p in bound { let r = Pods.requests(p); usedCPU += r.cpu; usedMem += r.memory }
        if !alloc["cpu"].isNull, req.cpu > 0, usedCPU + req.cpu > Quantity.milliCPU(alloc["cpu"]) { return "Insufficient cpu" }
        if !alloc["memory"].isNull, req.memory > 0, usedMem + req.memory > Quantity.bytes(alloc["memory"]) { return "Insufficient memory" }
        if let maxPods = Quantity.parse(alloc["pods"]), Double(bound.count + 1) > maxPods { return "Too many pods" }
        if !nodes.isEmpty, let why = interPodAffinity(pod: pod, node: node, cluster: cluster, nodes: nodes) { return why }
        return nil
    }

    /// The first NoSchedule/NoExecute taint on the node that the pod does not tolerate.
    public static func untoleratedTaint(pod: JSON, node: JSON) -> JSON? {
        let tolerations = pod["spec"]["tolerations"].array ?? []
        for taint in node["spec"]["taints"].array ?? [] {
            let effect = taint["effect"].string ?? ""
            guard effect == "NoSchedule" || effect == "NoExecute" else { continue }
            let tolerated = tolerations.contains { t in
                if let e = t["effect"].string, !e.isEmpty, e != effect { return false }
                let op = t["operator"].string ?? "Equal"
                let key = t["key"].string ?? ""
                if op == "Exists" { return key.isEmpty || key == taint["key"].string }
                return key == taint["key"].string && (t["value"].string ?? "") == (taint["value"].string ?? "")
            }
            if !tolerated { return taint }
        }
        return nil
    }

    static func termMatches(_ term: JSON, _ labels: [String: String]) -> Bool {
        let exprs = term["matchExpressions"].array ?? []
        if exprs.isEmpty && (term["matchFields"].array ?? []).isEmpty { return false }
        return exprs.allSatisfy { e in
            let key = e["key"].string ?? ""
            let values = (e["values"].array ?? []).compactMap { $0.string }
            let v = labels[key]
            switch e["operator"].string ?? "" {
            case "In": return v.map(values.contains) ?? false
            case "NotIn": return v.map { !values.contains($0) } ?? true
            case "Exists": return v != nil
            case "DoesNotExist": return v == nil
            case "Gt": return Int(v ?? "").flatMap { x in Int(values.first ?? "").map { x > $0 } } ?? false
            case "Lt": return Int(v ?? "").flatMap { x in Int(values.first ?? "").map { x < $0 } } ?? false
            default: return false
            }
        }
    }

    /// Required pod affinity / anti-affinity over topology domains defined by node labels.
    static func interPodAffinity(pod: JSON, node: JSON, cluster: [String: [JSON]], nodes: [JSON]) -> String? {
        let aff = pod["spec"]["affinity"]
        func podsInDomain(_ topologyKey: String) -> [JSON] {
            guard let value = node.labels[topologyKey] else { return [] }
            return nodes.filter { $0.labels[topologyKey] == value }.flatMap { cluster[$0.name] ?? [] }
        }
        func matching(_ term: JSON) -> Bool {
            let sel = LabelSelector(json: term["labelSelector"])
            let namespaces = (term["namespaces"].array ?? []).compactMap { $0.string }
            let nsSet = namespaces.isEmpty ? [pod.namespace] : namespaces
            return podsInDomain(term["topologyKey"].string ?? "").contains { nsSet.contains($0.namespace) && sel.matches($0.labels) }
        }
        for term in aff[path: "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution"].array ?? [] where matching(term) {
            return "node(s) didn't match pod anti-affinity rules"
        }
        for term in aff[path: "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution"].array ?? [] where !matching(term) {
            return "node(s) didn't match pod affinity rules"
        }
        return nil
    }

    /// Higher is better: least-allocated (0–100) plus spreading of pods that share the
    /// pod's controller (0–100, fewer siblings on the node scores higher).
    public static func score(pod: JSON, node: JSON, bound: [JSON], allBound: [String: [JSON]]) -> Double {
        let alloc = node["status"]["allocatable"].isNull ? node["status"]["capacity"] : node["status"]["allocatable"]
        let req = Pods.requests(pod)
        var usedCPU = req.cpu, usedMem = req.memory
        for p in bound { let r = Pods.requests(p); usedCPU += r.cpu; usedMem += r.memory }
        func free(_ used: Int64, _ cap: Int64) -> Double { cap <= 0 ? 0.5 : max(0, Double(cap - used) / Double(cap)) }
        let least = 50 * (free(usedCPU, Quantity.milliCPU(alloc["cpu"])) + free(usedMem, Quantity.bytes(alloc["memory"])))
        var spread = 100.0
        if let owner = pod.controllerRef?.uid {
            let counts = allBound.mapValues { $0.filter { $0.controllerRef?.uid == owner }.count }
            let here = Double(counts[node.name] ?? 0), most = Double(counts.values.max() ?? 0)
            spread = most == 0 ? 100 : 100 * (most - here) / most
        }
        // Fewer pods overall is a weak tie-breaker.
        return least + spread - Double(bound.count) * 0.01
    }
}
