import Foundation

extension APIRegistry {
    // MARK: Watch

    /// Watch a resource. With no resourceVersion (or "0") the stream starts with an ADDED
    /// event for every current object. With a resourceVersion it resumes strictly after it,
    /// or throws 410 Gone when that history has been compacted.
    ///
    /// Selectors are applied to both the old and new value of each change, so an object that
    /// stops matching is delivered as DELETED and one that starts matching as ADDED.
    public func watch(_ rt: ResourceType, namespace: String?, options: ListOptions = ListOptions()) async throws -> AsyncThrowingStream<WatchEvent, Error> {
        let ns = rt.namespaced ? namespace.flatMap { $0.isEmpty ? nil : $0 } : nil
        var initial: [WatchEvent] = []
        let from: Int64
        if let rvs = options.resourceVersion, !rvs.isEmpty, rvs != "0" {
            guard let rv = Int64(rvs) else { throw APIError.badRequest("invalid resourceVersion \"\(rvs)\"") }
            from = rv
        } else {
            let l = try await list(rt, namespace: ns, options: options)
            initial = (l["items"].array ?? []).map { WatchEvent(type: "ADDED", object: $0) }
            from = Int64(l["metadata"]["resourceVersion"].string ?? "0") ?? 0
        }
        let source: AsyncThrowingStream<StoreEvent, Error>
        do {
            source = try await store.watch(resource: rt.storageName, namespace: ns, fromRevision: from)
        } catch {
            throw mapStoreError(error, rt, "")
        }
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, Error>.makeStream(bufferingPolicy: .unbounded)
        for e in initial { continuation.yield(e) }
        let pump = Task {
            do {
                for try await ev in source {
                    if let out = self.translate(ev, options) { continuation.yield(out) }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: self.mapStoreError(error, rt, ""))
            }
        }
        continuation.onTermination = { _ in pump.cancel() }
        return stream
    }

    func translate(_ ev: StoreEvent, _ options: ListOptions) -> WatchEvent? {
        guard var obj = try? JSON.parse(ev.object.value) else { return nil }
        obj.resourceVersion = String(ev.revision)
        let newMatches = options.matches(obj)
        let everything = options.labelSelector.isEmpty && options.fieldSelector.terms.isEmpty
        let oldMatches: Bool = everything ? ev.previousValue != nil
            : ev.previousValue.flatMap { try? JSON.parse($0) }.map(options.matches) ?? false
        switch ev.type {
        case .added: return newMatches ? WatchEvent(type: "ADDED", object: obj) : nil
        case .deleted: return newMatches ? WatchEvent(type: "DELETED", object: obj) : nil
        case .modified:
            switch (oldMatches, newMatches) {
            case (true, true): return WatchEvent(type: "MODIFIED", object: obj)
            case (false, true): return WatchEvent(type: "ADDED", object: obj)
            case (true, false): return WatchEvent(type: "DELETED", object: obj)
            case (false, false): return nil
            }
        }
    }

    // MARK: Scale subresource

    /// The `autoscaling/v1` Scale view of a deployment or replica set.
    public func getScale(_ rt: ResourceType, namespace: String, name: String) async throws -> JSON {
        guard rt.subresources.contains("scale") else { throw APIError.notFoundPath("\(rt.plural)/scale") }
        return scale(of: try await get(rt, namespace: namespace, name: name))
    }

    func scale(of obj: JSON) -> JSON {
        var meta: JSON = [:]
        for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] { meta[f] = obj["metadata"][f] }
        return ["kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
                "spec": ["replicas": .int(obj.replicas ?? 0)],
                "status": ["replicas": .int(obj["status"]["replicas"].int ?? 0),
                           "selector": .string(LabelSelector(json: obj.selector).queryString)]]
    }

    /// PUT or PATCH of the scale subresource: only `spec.replicas` is taken.
    public func updateScale(_ rt: ResourceType, namespace: String, name: String, patch: JSON? = nil, scale body: JSON? = nil) async throws -> JSON {
        guard rt.subresources.contains("scale") else { throw APIError.notFoundPath("\(rt.plural)/scale") }
        let rvString = (body ?? patch ?? .null)["metadata"]["resourceVersion"].string
        let precondition = rvString.flatMap { $0.isEmpty ? nil : Int64($0) }
        let updated = try await guaranteedUpdate(rt, namespace, name, precondition: precondition, subresource: nil) { cur in
            let curScale = self.scale(of: cur)
            let newScale = body ?? curScale.mergePatched(with: patch ?? [:])
            guard let r = newScale["spec"]["replicas"].int else {
                throw APIError.invalid(rt, name, [.required("spec.replicas")])
            }
            if r < 0 { throw APIError.invalid(rt, name, [.invalid("spec.replicas", String(r), "must be greater than or equal to 0")]) }
            var o = cur
            o.replicas = r
            return o
        }
        return scale(of: updated)
    }

    // MARK: Binding subresource

    /// Binds a pod to a node (pods/{name}/binding). Fails with 409 if the pod is already bound.
    ///
    /// `current` is the pod as the caller last saw it (the scheduler's informer copy, with its
    /// resourceVersion). The binding is written at that revision first: when nothing changed
    /// the pod since, the usual case, that is one store write and no read (on etcd, one round
    /// trip instead of two per pod). If the pod changed, it is read and the binding retried.
    public func bind(namespace: String, pod: String, binding: JSON, current: JSON? = nil) async throws -> JSON {
        guard let node = binding["target"]["name"].string, !node.isEmpty else {
            throw APIError.invalid(.pods, pod, [.required("target.name")])
        }
        let uid = binding["metadata"]["uid"].string
        let bound = { (cur: JSON) throws -> JSON in
            if let uid, !uid.isEmpty, uid != cur.uid { throw APIError.conflict(.pods, pod, "UID precondition failed") }
            if let existing = cur.nodeName {
                throw APIError.conflict(.pods, pod, "pod \(pod) is already assigned to node \"\(existing)\"")
            }
            if cur.deletionTimestamp != nil { throw APIError.conflict(.pods, pod, "pod is being deleted") }
            var o = cur
            o[path: "spec", "nodeName"] = .string(node)
            o.setCondition(type: "PodScheduled", status: "True")
            return o
        }
        let done: JSON = ["kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Success", "code": 201]
        if let current, current.namespace == namespace, current.name == pod, let rv = Int64(current.resourceVersion), rv > 0 {
            let seen = StoredObject(key: storeKey(.pods, namespace, pod), value: Data(), createRevision: 0, modRevision: rv)
            do {
                _ = try await commitUpdate(.pods, seen, current, try bound(current), subresource: "binding-internal", decodeResult: false)
                return done
            } catch StoreError.conflict(_, _, _) {
                // Changed since the caller saw it: read it and decide again below.
            } catch {
                throw mapStoreError(error, .pods, pod)
            }
        }
        _ = try await guaranteedUpdate(.pods, namespace, pod, precondition: nil, subresource: "binding-internal", mutate: bound)
        return done
    }
}
