import Foundation

/// A watch event as served by the API: `type` is ADDED, MODIFIED, DELETED (or ERROR/BOOKMARK on the wire).
public struct WatchEvent: Sendable, Equatable {
    public var type: String
    public var object: JSON
    public init(type: String, object: JSON) { self.type = type; self.object = object }
}

/// Options for list and watch.
public struct ListOptions: Sendable {
    public var labelSelector: LabelSelector = .everything
    public var fieldSelector = FieldSelector()
    /// For watch: start after this revision; nil/"" /"0" means "current state, then changes".
    public var resourceVersion: String?
    public init(labelSelector: LabelSelector = .everything, fieldSelector: FieldSelector = FieldSelector(), resourceVersion: String? = nil) {
        self.labelSelector = labelSelector; self.fieldSelector = fieldSelector; self.resourceVersion = resourceVersion
    }
    func matches(_ obj: JSON) -> Bool { labelSelector.matches(obj.labels) && fieldSelector.matches(obj) }
}

/// The API semantics, independent of HTTP: defaulting, validation, optimistic concurrency,
/// finalizers, subresources. The HTTP server and `LocalAPIClient` both call into it; it is
/// the only component that touches the `Store`. Stateless apart from the store, so it is
/// safe to call from any task.
public final class APIRegistry: Sendable {
    public let store: any Store

    /// Where Services' ClusterIPs come from (ServiceIPs.swift).
    public let serviceCIDR: IPv4CIDR
    /// How long an Event lives after its last write (kube-apiserver's --event-ttl); nil: for ever.
    public let eventTTL: Duration?
    public init(store: any Store, serviceCIDR: IPv4CIDR = .defaultServices, eventTTL: Duration? = .seconds(3600)) {
        self.store = store; self.serviceCIDR = serviceCIDR; self.eventTTL = eventTTL
    }

    /// The time to live of objects of `rt` in the store: Events expire, nothing else does.
    func ttl(_ rt: ResourceType) -> Duration? { rt == .events ? eventTTL : nil }

    /// The store's create, with the kind's time to live if it has one. A namespaced object's
    /// namespace must exist: the store checks that in the create's own transaction (one
    /// round trip on etcd, not a read and then a write), and 404s on the namespace otherwise.
    func storeCreate(_ rt: ResourceType, _ key: ObjectKey, _ value: Data) async throws -> StoredObject {
        if rt.namespaced {
            let ns = storeKey(.namespaces, "", key.namespace)
            do {
                return try await store.create(key, value: value, ttl: ttl(rt), parent: ns)
            } catch StoreError.notFound(let k) where k == ns {
                throw APIError.notFound(.namespaces, key.namespace)
            }
        }
        if let ttl = ttl(rt) { return try await store.create(key, value: value, ttl: ttl) }
        return try await store.create(key, value: value)
    }

    /// The store's update, renewing the kind's time to live if it has one (a plain update would clear it).
    func storeUpdate(_ rt: ResourceType, _ key: ObjectKey, _ value: Data, expectedRevision: Int64?) async throws -> StoredObject {
        if let ttl = ttl(rt) { return try await store.update(key, value: value, expectedRevision: expectedRevision, ttl: ttl) }
        return try await store.update(key, value: value, expectedRevision: expectedRevision)
    }

    /// Creates the namespaces every cluster has.
    public func bootstrap() async throws {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            do { _ = try await create(.namespaces, namespace: "", ["metadata": ["name": .string(ns)]]) } catch let e as APIError where e.isAlreadyExists {}
        }
    }

    // MARK: Encoding

    func storeKey(_ rt: ResourceType, _ namespace: String, _ name: String) -> ObjectKey {
        ObjectKey(resource: rt.storageName, namespace: rt.namespaced ? namespace : "", name: name)
    }

    func decode(_ so: StoredObject) throws -> JSON {
        var obj = try JSON.parse(so.value)
        obj.resourceVersion = String(so.modRevision)
        return obj
    }

    func encode(_ obj: JSON) -> Data {
        var o = obj
        o.resourceVersion = ""
        return o.serialized()
    }

    func mapStoreError(_ error: Error, _ rt: ResourceType, _ name: String) -> Error {
        switch error {
        case StoreError.alreadyExists: return APIError.alreadyExists(rt, name)
        case StoreError.notFound: return APIError.notFound(rt, name)
        case StoreError.conflict: return APIError.conflict(rt, name)
        case StoreError.revisionCompacted(let r, let c): return APIError.gone("too old resource version: \(r) (\(c))")
        default: return error
        }
    }

    // MARK: Read

    func getStored(_ rt: ResourceType, _ namespace: String, _ name: String) async throws -> (StoredObject, JSON) {
        guard let so = try await store.get(storeKey(rt, namespace, name)) else { throw APIError.notFound(rt, name) }
        return (so, try decode(so))
    }

    public func get(_ rt: ResourceType, namespace: String, name: String) async throws -> JSON {
        try await getStored(rt, namespace, name).1
    }

    /// A `<Kind>List` object with `metadata.resourceVersion` set to the revision the list is consistent at.
    public func list(_ rt: ResourceType, namespace: String?, options: ListOptions = ListOptions()) async throws -> JSON {
        let ns = rt.namespaced ? namespace.flatMap { $0.isEmpty ? nil : $0 } : nil
        let (items, rev) = try await store.list(resource: rt.storageName, namespace: ns)
        let objs = try items.map(decode).filter(options.matches)
        return ["kind": .string(rt.listKind), "apiVersion": .string(rt.apiVersion),
                "metadata": ["resourceVersion": .string(String(rev))], "items": .array(objs)]
    }

    // MARK: Create

    private static let nameAlphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    public func create(_ rt: ResourceType, namespace: String, _ body: JSON) async throws -> JSON {
        guard case .object = body else { throw APIError.badRequest("the request body must be a JSON object") }
        if let k = body.kind, !k.isEmpty, k != rt.kind {
            throw APIError.badRequest("the API version in the data (\(body.apiVersion ?? "")) does not match the expected API version (\(rt.apiVersion)) or kind \(k) is not \(rt.kind)")
        }
        var obj = body.pruned()
        if rt.namespaced {
            if !obj.namespace.isEmpty, !namespace.isEmpty, obj.namespace != namespace {
                throw APIError.badRequest("the namespace of the provided object does not match the namespace sent on the request")
            }
            if obj.namespace.isEmpty { obj.namespace = namespace.isEmpty ? "default" : namespace }
        } else {
            obj.namespace = ""
        }
        let generate = obj.name.isEmpty ? obj["metadata"]["generateName"].string : nil
        for attempt in 0..<8 {
            if let generate, !generate.isEmpty {
                obj.name = generate + String((0..<5).map { _ in Self.nameAlphabet.randomElement()! })
            }
            var o = obj
            o.uid = UUID().uuidString.lowercased()
            o[path: "metadata", "creationTimestamp"] = .string(Timestamp.now())
            o[path: "metadata", "deletionTimestamp"] = .null
            o[path: "metadata", "selfLink"] = .null
            o.generation = 1
            o.resourceVersion = ""
            if rt.kind == "Job" { Defaults.jobSelector(&o) }
            Defaults.apply(rt, &o)
            let errs = Validation.validate(rt, o)
            if !errs.isEmpty { throw APIError.invalid(rt, o.name.isEmpty ? (generate ?? "") : o.name, errs) }
            if rt == .services { try await allocateClusterIP(&o) }
            do {
                let so = try await storeCreate(rt, storeKey(rt, o.namespace, o.name), encode(o))
                return try decode(so)
            } catch StoreError.alreadyExists(_) where generate != nil && attempt < 7 {
                if rt == .services { await releaseClusterIP(o) }
                continue
            } catch {
                if rt == .services { await releaseClusterIP(o) }
                throw mapStoreError(error, rt, o.name)
            }
        }
        throw APIError.alreadyExists(rt, obj.name)
    }

    // MARK: Update

    /// PUT. A non-empty `metadata.resourceVersion` in `body` is a precondition (409 when stale);
    /// without one the update is unconditional.
    public func update(_ rt: ResourceType, namespace: String, name: String, _ body: JSON, subresource: String? = nil) async throws -> JSON {
        guard case .object = body else { throw APIError.badRequest("the request body must be a JSON object") }
        if !body.name.isEmpty, body.name != name {
            throw APIError.badRequest("the name of the object (\(body.name)) does not match the name on the URL (\(name))")
        }
        let precondition = body.resourceVersion.isEmpty ? nil : Int64(body.resourceVersion)
        if !body.resourceVersion.isEmpty, precondition == nil {
            throw APIError.invalid(rt, name, [.invalid("metadata.resourceVersion", body.resourceVersion, "must be an integer")])
        }
        return try await guaranteedUpdate(rt, namespace, name, precondition: precondition, subresource: subresource) { _ in body }
    }

    public enum PatchType: Sendable { case merge, strategic, json }

    /// PATCH with a JSON merge patch, an approximate strategic merge patch, or a JSON patch.
    public func patch(_ rt: ResourceType, namespace: String, name: String, _ patch: JSON, type: PatchType = .merge, subresource: String? = nil) async throws -> JSON {
        if type == .json {
            guard case .array = patch else { throw APIError.badRequest("a JSON patch must be an array") }
        } else {
            guard case .object = patch else { throw APIError.badRequest("the patch must be a JSON object") }
        }
        let rvInPatch = patch["metadata"]["resourceVersion"].string
        let precondition = rvInPatch.flatMap { Int64($0) }
        return try await guaranteedUpdate(rt, namespace, name, precondition: precondition, subresource: subresource) { cur in
            var patched: JSON
            switch type {
            case .merge: patched = cur.mergePatched(with: patch)
            case .strategic: patched = cur.strategicMergePatched(with: patch)
            case .json:
                do { patched = try JSONPatch.apply(patch, to: cur) } catch { throw APIError(code: 422, reason: "Invalid", message: "\(error)") }
            }
            patched.resourceVersion = cur.resourceVersion
            return patched
        }
    }

    /// Read-modify-write with retry on conflict unless the caller gave an explicit precondition.
    func guaranteedUpdate(_ rt: ResourceType, _ namespace: String, _ name: String, precondition: Int64?, subresource: String?,
                          mutate: (JSON) throws -> JSON) async throws -> JSON {
        do {
            for _ in 0..<16 {
                let (so, cur) = try await self.getStored(rt, namespace, name)
                if let precondition, precondition != so.modRevision { throw APIError.conflict(rt, name) }
                let proposed = try mutate(cur)
                do {
                    return try await self.commitUpdate(rt, so, cur, proposed, subresource: subresource)
                } catch StoreError.conflict(_, _, _) where precondition == nil {
                    continue
                } catch {
                    throw self.mapStoreError(error, rt, name)
                }
            }
            throw APIError.conflict(rt, name)
        }
    }

    /// Builds the new object from `proposed` according to the subresource rules, validates,
    /// and writes it at `so.modRevision` (throws `StoreError.conflict` when raced). A caller
    /// that discards the result passes `decodeResult: false`: the written bytes are then not
    /// parsed back (what is returned is the object as built, without its resourceVersion).
    func commitUpdate(_ rt: ResourceType, _ so: StoredObject, _ cur: JSON, _ proposed: JSON, subresource: String?,
                      decodeResult: Bool = true) async throws -> JSON {
        var new: JSON
        let hasStatus = rt.subresources.contains("status")
        if subresource == "status" {
            new = cur
            new["status"] = proposed["status"]
        } else if subresource == nil {
            new = proposed.pruned()
            new.namespace = cur.namespace
            new.name = cur.name
            for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                new[path: "metadata", f] = cur["metadata"][f]
            }
            if hasStatus { new["status"] = cur["status"] }
            if rt.kind == "Job" { new[path: "spec", "selector"] = cur[path: "spec", "selector"] }
            Defaults.apply(rt, &new)
            if new["spec"] != cur["spec"] { new.generation = cur.generation + 1 }
        } else if subresource == "binding-internal" {
            new = proposed
        } else {
            throw APIError.notFoundPath("\(rt.plural)/\(subresource!)")
        }
        new.kind = rt.kind
        new.apiVersion = rt.apiVersion
        let errs = Validation.validate(rt, new, old: cur)
        if !errs.isEmpty { throw APIError.invalid(rt, cur.name, errs) }
        new.resourceVersion = ""
        var curCmp = cur; curCmp.resourceVersion = ""
        if new == curCmp { return cur }  // no-op updates do not bump the revision
        let key = storeKey(rt, cur.namespace, cur.name)
        // (A pod in graceful deletion stays until its node removes it: PodDeletion.swift.)
        if new.deletionTimestamp != nil, new.finalizers.isEmpty, !(rt == .pods && (new["metadata"]["deletionGracePeriodSeconds"].int ?? 0) > 0) {
            let deleted = try await store.delete(key, expectedRevision: so.modRevision)
            if rt == .services { await releaseClusterIP(new) }
            var obj = new
            obj.resourceVersion = String(deleted.modRevision)
            return obj
        }
        let written = try await storeUpdate(rt, key, encode(new), expectedRevision: so.modRevision)
        return decodeResult ? try decode(written) : new
    }

    // MARK: Delete

    public struct DeleteOptions: Sendable {
        public var preconditionUID: String?
        public var preconditionResourceVersion: String?
        /// "Background" (default), "Foreground" or "Orphan".
        public var propagationPolicy: String?
        /// For pods: how long the node may take to stop them (0: remove the object now). See PodDeletion.swift.
        public var gracePeriodSeconds: Int?
        public init(preconditionUID: String? = nil, preconditionResourceVersion: String? = nil, propagationPolicy: String? = nil,
                    gracePeriodSeconds: Int? = nil) {
            self.preconditionUID = preconditionUID; self.preconditionResourceVersion = preconditionResourceVersion
            self.propagationPolicy = propagationPolicy; self.gracePeriodSeconds = gracePeriodSeconds
        }
        public init(json: JSON) {
            self.init(preconditionUID: json["preconditions"]["uid"].string,
                      preconditionResourceVersion: json["preconditions"]["resourceVersion"].string,
                      propagationPolicy: json["propagationPolicy"].string ?? (json["orphanDependents"].bool == true ? "Orphan" : nil),
                      gracePeriodSeconds: json["gracePeriodSeconds"].int)
        }
    }

    /// Deletes an object, or marks it with a deletionTimestamp while finalizers remain.
    /// Returns the object (its final state or the marked object) and whether it is gone.
    @discardableResult
    public func delete(_ rt: ResourceType, namespace: String, name: String, options: DeleteOptions = DeleteOptions()) async throws -> (object: JSON, deleted: Bool) {
        if rt == .pods, let marked = try await gracefulPodDelete(namespace: namespace, name: name, options: options) { return (marked, false) }
        for _ in 0..<16 {
            let (so, cur) = try await getStored(rt, namespace, name)
            if let uid = options.preconditionUID, uid != cur.uid {
                throw APIError.conflict(rt, name, "Precondition failed: UID in precondition: \(uid), UID in object meta: \(cur.uid)")
            }
            if let rv = options.preconditionResourceVersion, rv != cur.resourceVersion {
                throw APIError.conflict(rt, name, "Precondition failed: ResourceVersion in precondition: \(rv), ResourceVersion in object meta: \(cur.resourceVersion)")
            }
            var new = cur
            switch options.propagationPolicy {
            case "Orphan": if !new.finalizers.contains("orphan") { new.finalizers.append("orphan") }
            case "Foreground": if !new.finalizers.contains("foregroundDeletion") { new.finalizers.append("foregroundDeletion") }
            default: break
            }
            let key = storeKey(rt, cur.namespace, cur.name)
            do {
                if !new.finalizers.isEmpty {
                    if new.deletionTimestamp == nil {
                        new[path: "metadata", "deletionTimestamp"] = .string(Timestamp.now())
                        new[path: "metadata", "deletionGracePeriodSeconds"] = 0
                    }
                    if new == cur { return (cur, false) }
                    return (try decode(try await storeUpdate(rt, key, encode(new), expectedRevision: so.modRevision)), false)
                }
                let gone = try await store.delete(key, expectedRevision: so.modRevision)
                if rt == .services { await releaseClusterIP(cur) }
                var obj = cur
                obj.resourceVersion = String(gone.modRevision)
                if rt.kind == "Namespace" { try await deleteNamespaceContents(cur.name) }
                return (obj, true)
            } catch StoreError.conflict(_, _, _) {
                continue
            } catch {
                throw mapStoreError(error, rt, name)
            }
        }
        throw APIError.conflict(rt, name)
    }

    /// Deletes every object matching `options` in a namespace (or cluster-wide).
    public func deleteCollection(_ rt: ResourceType, namespace: String?, options: ListOptions, deleteOptions: DeleteOptions = DeleteOptions()) async throws -> JSON {
        let l = try await list(rt, namespace: namespace, options: options)
        var out: [JSON] = []
        for item in l["items"].array ?? [] {
            do { out.append(try await delete(rt, namespace: item.namespace, name: item.name, options: deleteOptions).object) }
            catch let e as APIError where e.isNotFound {}
        }
        var res = l; res["items"] = .array(out)
        return res
    }

    private func deleteNamespaceContents(_ ns: String) async throws {
        for rt in ResourceType.all where rt.namespaced {
            let (items, _) = try await store.list(resource: rt.storageName, namespace: ns)
            for so in items { _ = try? await store.delete(so.key, expectedRevision: nil) }
        }
    }
}
