import Foundation

/// Server-side printing: `meta.k8s.io/v1` Table responses for clients that ask for them
/// (kubectl's `Accept: application/json;as=Table;...`), with per-kind columns.
enum Table {
    static func wanted(_ accept: String?) -> Bool { (accept ?? "").contains("as=Table") }

    struct Column { let name: String; let type: String; let priority: Int; let cell: (JSON) -> JSON }

    static func age(_ o: JSON, now: Date = Date()) -> JSON {
        guard let t = o.creationTimestamp.flatMap(Timestamp.parse) else { return "<unknown>" }
        return .string(humanDuration(max(0, now.timeIntervalSince(t))))
    }

    static func humanDuration(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 120 { return "\(s)s" }
        let m = s / 60, h = s / 3600, d = s / 86400
        if m < 10 { return s % 60 == 0 ? "\(m)m" : "\(m)m\(s % 60)s" }
        if m < 180 { return "\(m)m" }
        if h < 8 { return m % 60 == 0 ? "\(h)h" : "\(h)h\(m % 60)m" }
        if h < 48 { return "\(h)h" }
        if d < 8 { return h % 24 == 0 ? "\(d)d" : "\(d)d\(h % 24)h" }
        if d < 730 { return "\(d)d" }
        return "\(d / 365)y\(d % 365)d"
    }

    static func int(_ j: JSON) -> JSON { .int(j.int ?? 0) }

    static func columns(_ rt: ResourceType) -> [Column] {
        let name = Column(name: "Name", type: "string", priority: 0) { .string($0.name) }
        let ageCol = Column(name: "Age", type: "string", priority: 0) { age($0) }
        switch rt.kind {
        case "Pod":
            return [name,
                    Column(name: "Ready", type: "string", priority: 0) { p in
                        let n = p["spec"]["containers"].array?.count ?? 0
                        return .string("\(Pods.isReady(p) ? n : 0)/\(n)")
                    },
                    Column(name: "Status", type: "string", priority: 0) { p in
                        if p.deletionTimestamp != nil { return "Terminating" }
                        let inits = p["status"]["initContainerStatuses"].array ?? []
                        let done = inits.filter { $0["state"]["terminated"]["exitCode"].int == 0 }.count
                        if done < inits.count, inits.contains(where: { ($0["state"]["terminated"]["exitCode"].int ?? 0) != 0 || !$0["lastState"]["terminated"].isNull }) {
                            return p.phase == "Failed" ? "Init:Error" : "Init:CrashLoopBackOff"
                        }
                        if p.phase == "Pending", done < inits.count { return .string("Init:\(done)/\(inits.count)") }
                        return .string(p.phase ?? "Unknown")
                    },
                    Column(name: "Restarts", type: "integer", priority: 0) { p in
                        .int((p["status"]["containerStatuses"].array ?? []).reduce(0) { $0 + ($1["restartCount"].int ?? 0) })
                    },
                    ageCol,
                    Column(name: "Node", type: "string", priority: 1) { .string($0.nodeName ?? "<none>") }]
        case "Deployment":
            return [name,
                    Column(name: "Ready", type: "string", priority: 0) { d in .string("\(d["status"]["readyReplicas"].int ?? 0)/\(d.replicas ?? 0)") },
                    Column(name: "Up-to-date", type: "integer", priority: 0) { int($0["status"]["updatedReplicas"]) },
                    Column(name: "Available", type: "integer", priority: 0) { int($0["status"]["availableReplicas"]) },
                    ageCol]
        case "ReplicaSet":
            return [name,
                    Column(name: "Desired", type: "integer", priority: 0) { .int($0.replicas ?? 0) },
                    Column(name: "Current", type: "integer", priority: 0) { int($0["status"]["replicas"]) },
                    Column(name: "Ready", type: "integer", priority: 0) { int($0["status"]["readyReplicas"]) },
                    ageCol]
        case "DaemonSet":
            return [name,
                    Column(name: "Desired", type: "integer", priority: 0) { int($0["status"]["desiredNumberScheduled"]) },
                    Column(name: "Current", type: "integer", priority: 0) { int($0["status"]["currentNumberScheduled"]) },
                    Column(name: "Ready", type: "integer", priority: 0) { int($0["status"]["numberReady"]) },
                    ageCol]
        case "Job":
            return [name,
                    Column(name: "Completions", type: "string", priority: 0) { j in
                        .string("\(j["status"]["succeeded"].int ?? 0)/\(j["spec"]["completions"].int.map(String.init) ?? "1")")
                    },
                    ageCol]
        case "Node":
            return [name,
                    Column(name: "Status", type: "string", priority: 0) { n in
                        let s = n.condition("Ready")?["status"].string
                        var out = s == "True" ? "Ready" : (s == "False" ? "NotReady" : "Unknown")
                        if n["spec"]["unschedulable"].bool == true { out += ",SchedulingDisabled" }
                        return .string(out)
                    },
                    Column(name: "Roles", type: "string", priority: 0) { _ in "<none>" },
                    ageCol,
                    Column(name: "Version", type: "string", priority: 0) { .string($0["status"]["nodeInfo"]["kubeletVersion"].string ?? "") }]
        case "Service":
            return [name,
                    Column(name: "Type", type: "string", priority: 0) { .string($0["spec"]["type"].string ?? "ClusterIP") },
                    Column(name: "Cluster-IP", type: "string", priority: 0) { .string($0["spec"]["clusterIP"].string ?? "<none>") },
                    Column(name: "Ports", type: "string", priority: 0) { s in
                        .string((s["spec"]["ports"].array ?? []).map { "\($0["port"].int ?? 0)/\($0["protocol"].string ?? "TCP")" }.joined(separator: ","))
                    },
                    ageCol]
        case "Namespace":
            return [name, Column(name: "Status", type: "string", priority: 0) { .string($0.phase ?? "Active") }, ageCol]
        case "Event":
            return [Column(name: "Last Seen", type: "string", priority: 0) { e in
                        guard let t = (e["lastTimestamp"].string ?? e["eventTime"].string).flatMap(Timestamp.parse) else { return age(e) }
                        return .string(humanDuration(max(0, Date().timeIntervalSince(t))))
                    },
                    Column(name: "Type", type: "string", priority: 0) { .string($0["type"].string ?? "") },
                    Column(name: "Reason", type: "string", priority: 0) { .string($0["reason"].string ?? "") },
                    Column(name: "Object", type: "string", priority: 0) { e in
                        .string((e["involvedObject"]["kind"].string ?? "").lowercased() + "/" + (e["involvedObject"]["name"].string ?? ""))
                    },
                    Column(name: "Message", type: "string", priority: 0) { .string($0["message"].string ?? "") }]
        case "ConfigMap", "Secret":
            return [name, Column(name: "Data", type: "integer", priority: 0) { .int(($0["data"].object?.count ?? 0) + ($0["binaryData"].object?.count ?? 0)) }, ageCol]
        default:
            return [name, ageCol]
        }
    }

    static func render(_ rt: ResourceType, items: [JSON], resourceVersion: String?) -> JSON {
        let cols = columns(rt)
        let defs: [JSON] = cols.map { ["name": .string($0.name), "type": .string($0.type), "format": $0.name == "Name" ? "name" : "",
                                       "description": "", "priority": .int($0.priority)] }
        let rows: [JSON] = items.map { o in
            ["cells": .array(cols.map { $0.cell(o) }),
             "object": ["kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]]]
        }
        var t: JSON = ["kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": [:], "columnDefinitions": .array(defs), "rows": .array(rows)]
        if let resourceVersion { t[path: "metadata", "resourceVersion"] = .string(resourceVersion) }
        return t
    }
}
