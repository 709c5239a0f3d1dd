import Foundation

/// Per-kind defaulting applied on create and update, before validation.
enum Defaults {
    static func apply(_ rt: ResourceType, _ obj: inout JSON) {
        obj.kind = rt.kind
        obj.apiVersion = rt.apiVersion
        switch rt.kind {
        case "Pod":
            podSpec(&obj["spec"])
            memoryPressureToleration(&obj)
            if obj[path: "status", "phase"].isNull { obj[path: "status", "phase"] = "Pending" }
        case "Deployment":
            if obj.replicas == nil { obj.replicas = 1 }
            var strategy = obj[path: "spec", "strategy"]
            if strategy["type"].isNull { strategy["type"] = "RollingUpdate" }
            if strategy["type"].string == "RollingUpdate" {
                if strategy[path: "rollingUpdate", "maxSurge"].isNull { strategy[path: "rollingUpdate", "maxSurge"] = "25%" }
                if strategy[path: "rollingUpdate", "maxUnavailable"].isNull { strategy[path: "rollingUpdate", "maxUnavailable"] = "25%" }
            }
            obj[path: "spec", "strategy"] = strategy
            if obj[path: "spec", "revisionHistoryLimit"].isNull { obj[path: "spec", "revisionHistoryLimit"] = 10 }
            if obj[path: "spec", "progressDeadlineSeconds"].isNull { obj[path: "spec", "progressDeadlineSeconds"] = 600 }
            podSpec(&obj[path: "spec", "template", "spec"])
        case "Secret":
            // stringData is write-only: it is merged into data (base64), as Kubernetes does.
            if let sd = obj["stringData"].object {
                for (k, v) in sd { obj[path: "data", k] = .string(Data((v.string ?? "").utf8).base64EncodedString()) }
                obj["stringData"] = .null
            }
            if obj["type"].isNull { obj["type"] = "Opaque" }
        case "ReplicaSet":
            if obj.replicas == nil { obj.replicas = 1 }
            podSpec(&obj[path: "spec", "template", "spec"])
        case "DaemonSet":
            if obj[path: "spec", "updateStrategy", "type"].isNull { obj[path: "spec", "updateStrategy", "type"] = "RollingUpdate" }
            if obj[path: "spec", "revisionHistoryLimit"].isNull { obj[path: "spec", "revisionHistoryLimit"] = 10 }
            podSpec(&obj[path: "spec", "template", "spec"])
        case "Job":
            if obj[path: "spec", "parallelism"].isNull { obj[path: "spec", "parallelism"] = 1 }
            if obj[path: "spec", "completions"].isNull { obj[path: "spec", "completions"] = obj[path: "spec", "parallelism"].int == 1 ? 1 : .null }
            if obj[path: "spec", "backoffLimit"].isNull { obj[path: "spec", "backoffLimit"] = 6 }
            if obj[path: "spec", "template", "spec", "restartPolicy"].isNull { obj[path: "spec", "template", "spec", "restartPolicy"] = "Never" }
            podSpec(&obj[path: "spec", "template", "spec"])
        case "Service":
            if obj[path: "spec", "type"].isNull { obj[path: "spec", "type"] = "ClusterIP" }
            if obj[path: "spec", "sessionAffinity"].isNull { obj[path: "spec", "sessionAffinity"] = "None" }
            if var ports = obj[path: "spec", "ports"].array {
                for i in ports.indices {
                    if ports[i]["protocol"].isNull { ports[i]["protocol"] = "TCP" }
                    if ports[i]["targetPort"].isNull { ports[i]["targetPort"] = ports[i]["port"] }
                }
                obj[path: "spec", "ports"] = .array(ports)
            }
        case "Namespace":
            if obj[path: "status", "phase"].isNull { obj[path: "status", "phase"] = "Active" }
        default:
            break
        }
    }

    /// A pod that asks for any resources (QoS Guaranteed or Burstable) tolerates the
    /// memory-pressure taint that a node under memory pressure gets (NodeLifecycleController),
    /// as Kubernetes' admission does: only new BestEffort pods are kept off such a node.
    static func memoryPressureToleration(_ pod: inout JSON) {
        guard case .object = pod["spec"], Pods.qosClass(pod) != "BestEffort" else { return }
        var tolerations = pod[path: "spec", "tolerations"].array ?? []
        let key = NodeLifecycleController.memoryPressureTaint
        if tolerations.contains(where: { $0["key"].string == key && ($0["effect"].string ?? "NoSchedule") == "NoSchedule" }) { return }
        tolerations.append(["key": .string(key), "operator": "Exists", "effect": "NoSchedule"])
        pod[path: "spec", "tolerations"] = .array(tolerations)
    }

    /// Job pods are selected by a generated controller-uid label unless the user chose a manual selector.
    static func jobSelector(_ obj: inout JSON) {
        guard obj[path: "spec", "manualSelector"].bool != true, obj[path: "spec", "selector"].isNull else { return }
        let uid = obj.uid
        obj[path: "spec", "selector"] = ["matchLabels": ["controller-uid": .string(uid)]]
        obj[path: "spec", "template", "metadata", "labels", "controller-uid"] = .string(uid)
        obj[path: "spec", "template", "metadata", "labels", "job-name"] = .string(obj.name)
    }

    static func podSpec(_ spec: inout JSON) {
        guard case .object = spec else { return }
        if spec["restartPolicy"].isNull { spec["restartPolicy"] = "Always" }
        if spec["dnsPolicy"].isNull { spec["dnsPolicy"] = "ClusterFirst" }
        if spec["schedulerName"].isNull { spec["schedulerName"] = "default-scheduler" }
        if spec["terminationGracePeriodSeconds"].isNull { spec["terminationGracePeriodSeconds"] = 30 }
        if var cs = spec["containers"].array {
            for i in cs.indices {
                if cs[i]["imagePullPolicy"].isNull {
                    let image = cs[i]["image"].string ?? ""
                    cs[i]["imagePullPolicy"] = image.hasSuffix(":latest") || !image.contains(":") ? "Always" : "IfNotPresent"
                }
                if cs[i]["terminationMessagePath"].isNull { cs[i]["terminationMessagePath"] = "/dev/termination-log" }
                if cs[i]["terminationMessagePolicy"].isNull { cs[i]["terminationMessagePolicy"] = "File" }
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] where !cs[i][probe].isNull {
                    var p = cs[i][probe]
                    for (k, v) in [("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)] where p[k].isNull {
                        p[k] = .int(v)
                    }
                    if !p["httpGet"].isNull {
                        if p["httpGet"]["scheme"].isNull { p[path: "httpGet", "scheme"] = "HTTP" }
                        if p["httpGet"]["path"].isNull { p[path: "httpGet", "path"] = "/" }
                    }
                    cs[i][probe] = p
                }
                if var ports = cs[i]["ports"].array {
                    for j in ports.indices where ports[j]["protocol"].isNull { ports[j]["protocol"] = "TCP" }
                    cs[i]["ports"] = .array(ports)
                }
            }
            spec["containers"] = .array(cs)
        }
    }
}
