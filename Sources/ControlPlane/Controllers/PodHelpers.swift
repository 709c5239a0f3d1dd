import Foundation

/// Small pod predicates and builders shared by controllers and the scheduler.
public enum Pods {
    /// Not being deleted and not finished.
    public static func isActive(_ p: JSON) -> Bool {
        p.deletionTimestamp == nil && p.phase != "Succeeded" && p.phase != "Failed"
    }

    public static func isReady(_ p: JSON) -> Bool {
        p.condition("Ready")?["status"].string == "True"
    }

    /// A pod built from a controller's template, owned by `owner`.
    public static func fromTemplate(_ template: JSON, owner: JSON, generateName: String) -> JSON {
        var pod: JSON = ["apiVersion": "v1", "kind": "Pod", "metadata": [:], "spec": template["spec"]]
        if let l = template["metadata"]["labels"].object { pod[path: "metadata", "labels"] = .object(l) }
        if let a = template["metadata"]["annotations"].object { pod[path: "metadata", "annotations"] = .object(a) }
        pod[path: "metadata", "generateName"] = .string(generateName)
        pod.namespace = owner.namespace
        pod.ownerReferences = [OwnerReference(controller: owner)]
        return pod
    }

    /// Kubernetes' QoS class: Guaranteed when every container has cpu and memory limits equal
    /// to its requests, BestEffort when none asks for anything, Burstable otherwise.
    public static func qosClass(_ pod: JSON) -> String {
        let cs = (pod["spec"]["containers"].array ?? []) + (pod["spec"]["initContainers"].array ?? [])
        var any = false, guaranteed = true
        for c in cs {
            let req = c["resources"]["requests"], lim = c["resources"]["limits"]
            if !(req.object ?? [:]).isEmpty || !(lim.object ?? [:]).isEmpty { any = true }
            for r in ["cpu", "memory"] {
                guard let l = Quantity.parse(lim[r]) else { guaranteed = false; continue }
                if let q = Quantity.parse(req[r]), q != l { guaranteed = false }
            }
        }
        return !any ? "BestEffort" : (guaranteed ? "Guaranteed" : "Burstable")
    }

    /// CPU (millicores) and memory (bytes) requested by a pod's containers.
    public static func requests(_ p: JSON) -> (cpu: Int64, memory: Int64) {
        var cpu: Int64 = 0, mem: Int64 = 0
        for c in p["spec"]["containers"].array ?? [] {
            cpu += Quantity.milliCPU(c["resources"]["requests"]["cpu"])
            mem += Quantity.bytes(c["resources"]["requests"]["memory"])
        }
        // Init containers run before the others, so the effective request is the max.
        for c in p["spec"]["initContainers"].array ?? [] {
            cpu = max(cpu, Quantity.milliCPU(c["resources"]["requests"]["cpu"]))
            mem = max(mem, Quantity.bytes(c["resources"]["requests"]["memory"]))
        }
        return (cpu, mem)
    }

    /// Order in which surplus pods are deleted: unscheduled, pending, not ready, newest first.
    public static func deletionOrder(_ a: JSON, _ b: JSON) -> Bool {
        func rank(_ p: JSON) -> [Int] {
            [p.nodeName == nil ? 0 : 1,
             p.phase == "Pending" ? 0 : (p.phase == "Running" ? 2 : 1),
             isReady(p) ? 1 : 0]
        }
        let ra = rank(a), rb = rank(b)
        if ra != rb { return ra.lexicographicallyPrecedes(rb) }
        return (a.creationTimestamp ?? "") > (b.creationTimestamp ?? "")
    }
}

/// A stable short hash of a JSON value (FNV-1a over its canonical serialisation),
/// used for `pod-template-hash`.
public func stableHash(_ j: JSON) -> String {
    var h: UInt64 = 0xcbf29ce484222325
    for b in j.serialized() { h ^= UInt64(b); h = h &* 0x100000001b3 }
    let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
    var out = ""
    var x = h
    for _ in 0..<10 { out.append(alphabet[Int(x % UInt64(alphabet.count))]); x /= UInt64(alphabet.count) }
    return out
}
