import Foundation

/// Discovery documents (/api, /apis, resource lists, /version) that kubectl reads to map
/// kinds and short names to URLs.
enum Discovery {
    static let verbs: [JSON] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    /// The document for a non-resource path, or nil if `segs` is not a discovery path.
    static func respond(_ segs: [String]) -> JSON? {
        switch segs.count {
        case 0:
            return ["paths": .array((["/api", "/api/v1", "/apis", "/version", "/healthz"] +
                ResourceType.groupVersions.filter { !$0.group.isEmpty }.map { "/apis/\($0.group)/\($0.version)" }).map(JSON.string))]
        case 1 where segs[0] == "version":
            return ["major": "1", "minor": "20", "gitVersion": "v1.20.0-moat", "gitCommit": "", "gitTreeState": "clean",
                    "buildDate": "2024-01-01T00:00:00Z", "goVersion": "swift", "compiler": "swift", "platform": "linux/amd64"]
        case 1 where segs[0] == "api":
            return ["kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": ""]]]
        case 1 where segs[0] == "apis":
            let groups = Dictionary(grouping: ResourceType.groupVersions.filter { !$0.group.isEmpty }, by: { $0.group })
            return ["kind": "APIGroupList", "apiVersion": "v1",
                    "groups": .array(groups.keys.sorted().map { group(group: $0, versions: groups[$0]!.map(\.version)) })]
        case 2 where segs[0] == "api" && segs[1] == "v1":
            return resourceList(group: "", version: "v1")
        case 2 where segs[0] == "apis":
            let versions = ResourceType.groupVersions.filter { $0.group == segs[1] }.map(\.version)
            return versions.isEmpty ? nil : group(group: segs[1], versions: versions, withKind: true)
        case 3 where segs[0] == "apis":
            guard ResourceType.groupVersions.contains(where: { $0.group == segs[1] && $0.version == segs[2] }) else { return nil }
            return resourceList(group: segs[1], version: segs[2])
        default:
            return nil
        }
    }

    static func group(group: String, versions: [String], withKind: Bool = false) -> JSON {
        let vs: [JSON] = versions.map { ["groupVersion": .string("\(group)/\($0)"), "version": .string($0)] }
        var g: JSON = ["name": .string(group), "versions": .array(vs), "preferredVersion": vs[0]]
        if withKind { g["kind"] = "APIGroup"; g["apiVersion"] = "v1" }
        return g
    }

    static func resourceList(group: String, version: String) -> JSON {
        var resources: [JSON] = []
        for rt in ResourceType.all where rt.group == group && rt.version == version {
            var r: JSON = ["name": .string(rt.plural), "singularName": .string(rt.singular), "namespaced": .bool(rt.namespaced),
                           "kind": .string(rt.kind), "verbs": .array(verbs)]
            if !rt.shortNames.isEmpty { r["shortNames"] = .array(rt.shortNames.map(JSON.string)) }
            if ["pods", "deployments", "replicasets", "daemonsets", "jobs", "services"].contains(rt.plural) { r["categories"] = ["all"] }
            resources.append(r)
            for sub in rt.subresources {
                var s: JSON = ["name": .string("\(rt.plural)/\(sub)"), "singularName": "", "namespaced": .bool(rt.namespaced)]
                switch sub {
                case "scale": s["kind"] = "Scale"; s["group"] = "autoscaling"; s["version"] = "v1"; s["verbs"] = ["get", "patch", "update"]
                case "binding": s["kind"] = "Binding"; s["verbs"] = ["create"]
                case "log": s["kind"] = "Pod"; s["verbs"] = ["get"]
                case "exec": s["kind"] = "PodExecOptions"; s["verbs"] = ["create", "get"]
                default: s["kind"] = .string(rt.kind); s["verbs"] = ["get", "patch", "update"]
                }
                resources.append(s)
            }
        }
        return ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"),
                "resources": .array(resources)]
    }
}
