import Foundation

/// Typed accessors over a JSON API object for the fields the control plane needs.
extension JSON {
    public var kind: String? { get { self["kind"].string } set { self["kind"] = newValue.map(JSON.string) ?? .null } }
    public var apiVersion: String? { get { self["apiVersion"].string } set { self["apiVersion"] = newValue.map(JSON.string) ?? .null } }
    public var metadata: JSON { get { self["metadata"] } set { self["metadata"] = newValue } }

    public var name: String {
        get { self["metadata"]["name"].string ?? "" }
        set { self[path: "metadata", "name"] = .string(newValue) }
    }
    public var namespace: String {
        get { self["metadata"]["namespace"].string ?? "" }
        set { self[path: "metadata", "namespace"] = newValue.isEmpty ? .null : .string(newValue) }
    }
    public var uid: String {
        get { self["metadata"]["uid"].string ?? "" }
        set { self[path: "metadata", "uid"] = .string(newValue) }
    }
    public var resourceVersion: String {
        get { self["metadata"]["resourceVersion"].string ?? "" }
        set { self[path: "metadata", "resourceVersion"] = newValue.isEmpty ? .null : .string(newValue) }
    }
    public var generation: Int {
        get { self["metadata"]["generation"].int ?? 0 }
        set { self[path: "metadata", "generation"] = .int(newValue) }
    }
    public var labels: [String: String] {
        get { (self["metadata"]["labels"].object ?? [:]).compactMapValues { $0.string } }
        set { self[path: "metadata", "labels"] = newValue.isEmpty ? .null : .object(newValue.mapValues(JSON.string)) }
    }
    public var annotations: [String: String] {
        get { (self["metadata"]["annotations"].object ?? [:]).compactMapValues { $0.string } }
        set { self[path: "metadata", "annotations"] = newValue.isEmpty ? .null : .object(newValue.mapValues(JSON.string)) }
    }
    public var finalizers: [String] {
        get { (self["metadata"]["finalizers"].array ?? []).compactMap { $0.string } }
        set { self[path: "metadata", "finalizers"] = newValue.isEmpty ? .null : .array(newValue.map(JSON.string)) }
    }
    public var deletionTimestamp: String? { self["metadata"]["deletionTimestamp"].string }
    public var creationTimestamp: String? { self["metadata"]["creationTimestamp"].string }

    public var ownerReferences: [OwnerReference] {
        get { (self["metadata"]["ownerReferences"].array ?? []).compactMap(OwnerReference.init(json:)) }
        set { self[path: "metadata", "ownerReferences"] = newValue.isEmpty ? .null : .array(newValue.map(\.json)) }
    }
    /// The owner reference with `controller: true`, if any.
    public var controllerRef: OwnerReference? { ownerReferences.first { $0.controller } }

    public var replicas: Int? {
        get { self["spec"]["replicas"].int }
        set { self[path: "spec", "replicas"] = newValue.map(JSON.int) ?? .null }
    }
    public var selector: JSON { self["spec"]["selector"] }
    public var template: JSON { self["spec"]["template"] }
    public var nodeName: String? { self["spec"]["nodeName"].string.flatMap { $0.isEmpty ? nil : $0 } }
    public var phase: String? { self["status"]["phase"].string }

    /// `namespace/name` or `name` for cluster-scoped objects.
    public var key: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }

    /// Conditions from status.conditions by type.
    public func condition(_ type: String) -> JSON? {
        (self["status"]["conditions"].array ?? []).first { $0["type"].string == type }
    }

    /// Sets (or replaces) a status condition, keeping lastTransitionTime when the status does not change.
    public mutating func setCondition(type: String, status: String, reason: String? = nil, message: String? = nil,
                                      now: String = Timestamp.now()) {
        var conds = self["status"]["conditions"].array ?? []
        var c: JSON = ["type": .string(type), "status": .string(status)]
        if let reason { c["reason"] = .string(reason) }
        if let message { c["message"] = .string(message) }
        if let i = conds.firstIndex(where: { $0["type"].string == type }) {
            c["lastTransitionTime"] = conds[i]["status"].string == status ? conds[i]["lastTransitionTime"] : .string(now)
            c["lastHeartbeatTime"] = conds[i]["lastHeartbeatTime"]
            conds[i] = c
        } else {
            c["lastTransitionTime"] = .string(now)
            conds.append(c)
        }
        self[path: "status", "conditions"] = .array(conds)
    }
}

public struct OwnerReference: Sendable, Equatable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    public var uid: String
    public var controller: Bool
    public var blockOwnerDeletion: Bool

    public init(apiVersion: String, kind: String, name: String, uid: String, controller: Bool = true, blockOwnerDeletion: Bool = true) {
        self.apiVersion = apiVersion; self.kind = kind; self.name = name; self.uid = uid
        self.controller = controller; self.blockOwnerDeletion = blockOwnerDeletion
    }

    public init?(json: JSON) {
        guard let k = json["kind"].string, let n = json["name"].string, let u = json["uid"].string else { return nil }
        self.init(apiVersion: json["apiVersion"].string ?? "", kind: k, name: n, uid: u,
                  controller: json["controller"].bool ?? false, blockOwnerDeletion: json["blockOwnerDeletion"].bool ?? false)
    }

    /// Owner reference pointing at `owner` as its controller.
    public init(controller owner: JSON) {
        self.init(apiVersion: owner.apiVersion ?? "", kind: owner.kind ?? "", name: owner.name, uid: owner.uid)
    }

    public var json: JSON {
        ["apiVersion": .string(apiVersion), "kind": .string(kind), "name": .string(name), "uid": .string(uid),
         "controller": .bool(controller), "blockOwnerDeletion": .bool(blockOwnerDeletion)]
    }
}

/// RFC 3339 timestamps as used in object metadata.
public enum Timestamp {
    /// "2006-01-02T15:04:05Z" (UTC, whole seconds), formatted without a DateFormatter:
    /// creating one per call was a tenth of the scheduler benchmark's CPU time.
    public static func string(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : String(v) }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
    }
    public static func now() -> String { string(Date()) }
    public static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }
}
