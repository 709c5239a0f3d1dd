/// The static table of resource types served by the API server.
public struct ResourceType: Sendable, Hashable {
    /// API group; "" for the core group.
    public let group: String
    public let version: String
    /// Plural lower-case name used in URLs, e.g. "deployments".
    public let plural: String
    public let singular: String
    public let kind: String
    public let namespaced: Bool
    public let shortNames: [String]
    /// Subresources served in addition to the main resource, e.g. ["status", "scale"].
    public let subresources: [String]

    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    public var groupVersion: String { apiVersion }
    /// Store key prefix; unique across groups.
    public var storageName: String { group.isEmpty ? plural : "\(plural).\(group)" }
    public var listKind: String { kind + "List" }

    public static let namespaces = ResourceType(group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"], subresources: ["status"])
    public static let pods = ResourceType(group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: ["po"], subresources: ["status", "binding", "log", "exec", "attach", "portforward"])
    public static let nodes = ResourceType(group: "", version: "v1", plural: "nodes", singular: "node", kind: "Node", namespaced: false, shortNames: ["no"], subresources: ["status"])
    public static let services = ResourceType(group: "", version: "v1", plural: "services", singular: "service", kind: "Service", namespaced: true, shortNames: ["svc"], subresources: ["status"])
    public static let endpoints = ResourceType(group: "", version: "v1", plural: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: true, shortNames: ["ep"], subresources: [])
    public static let configmaps = ResourceType(group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, shortNames: ["cm"], subresources: [])
    public static let secrets = ResourceType(group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true, shortNames: [], subresources: [])
    public static let events = ResourceType(group: "", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"], subresources: [])
    public static let deployments = ResourceType(group: "apps", version: "v1", plural: "deployments", singular: "deployment", kind: "Deployment", namespaced: true, shortNames: ["deploy"], subresources: ["status", "scale"])
    public static let replicasets = ResourceType(group: "apps", version: "v1", plural: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true, shortNames: ["rs"], subresources: ["status", "scale"])
    public static let daemonsets = ResourceType(group: "apps", version: "v1", plural: "daemonsets", singular: "daemonset", kind: "DaemonSet", namespaced: true, shortNames: ["ds"], subresources: ["status"])
    public static let jobs = ResourceType(group: "batch", version: "v1", plural: "jobs", singular: "job", kind: "Job", namespaced: true, shortNames: [], subresources: ["status"])
    /// Leases are used for leader election between redundant controller managers.
    public static let leases = ResourceType(group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease", namespaced: true, shortNames: [], subresources: [])

    public static let all: [ResourceType] = [
        namespaces, pods, nodes, services, endpoints, configmaps, secrets, events,
        deployments, replicasets, daemonsets, jobs, leases,
    ]

    /// Look up by group and plural name.
    public static func lookup(group: String, plural: String) -> ResourceType? {
        all.first { $0.group == group && $0.plural == plural }
    }

    public static func forKind(_ kind: String) -> ResourceType? {
        all.first { $0.kind == kind }
    }

    /// Group/version pairs served, with their resources.
    public static var groupVersions: [(group: String, version: String)] {
        var seen: [String] = []
        var out: [(String, String)] = []
        for r in all where !seen.contains(r.apiVersion) {
            seen.append(r.apiVersion); out.append((r.group, r.version))
        }
        return out
    }
}
