import Foundation

/// What controllers and the scheduler use to reach the API server. Implemented over HTTP
/// (`HTTPAPIClient`) and in-process (`LocalAPIClient`, which calls the same `APIRegistry`
/// the HTTP server uses, so defaulting/validation/concurrency rules are identical).
/// Errors are `APIError`s carrying the server's Status.
public protocol APIClient: Sendable {
    func get(_ rt: ResourceType, namespace: String, name: String) async throws -> JSON
    /// A `<Kind>List` with `metadata.resourceVersion`.
    func list(_ rt: ResourceType, namespace: String?, options: ListOptions) async throws -> JSON
    func create(_ rt: ResourceType, namespace: String, _ obj: JSON) async throws -> JSON
    /// PUT of `obj` (its metadata.resourceVersion, if set, is a precondition).
    func update(_ rt: ResourceType, _ obj: JSON, subresource: String?) async throws -> JSON
    /// JSON merge patch.
    func patch(_ rt: ResourceType, namespace: String, name: String, _ patch: JSON, subresource: String?) async throws -> JSON
    func delete(_ rt: ResourceType, namespace: String, name: String, options: APIRegistry.DeleteOptions) async throws
    func watch(_ rt: ResourceType, namespace: String?, options: ListOptions) async throws -> AsyncThrowingStream<WatchEvent, Error>
    /// POST pods/{name}/binding.
    func bind(namespace: String, pod: String, node: String) async throws
    /// Binds `pod` (as the caller last saw it, say in an informer) to `node`. An in-process
    /// client writes the binding at the pod's resourceVersion when it is still current,
    /// saving the read a binding otherwise starts with; over HTTP it is the plain POST.
    func bind(_ pod: JSON, node: String) async throws
}

extension APIClient {
    public func bind(_ pod: JSON, node: String) async throws { try await bind(namespace: pod.namespace, pod: pod.name, node: node) }
    public func list(_ rt: ResourceType, namespace: String? = nil, labelSelector: LabelSelector = .everything) async throws -> [JSON] {
        try await list(rt, namespace: namespace, options: ListOptions(labelSelector: labelSelector))["items"].array ?? []
    }
    public func update(_ rt: ResourceType, _ obj: JSON) async throws -> JSON { try await update(rt, obj, subresource: nil) }
    public func patch(_ rt: ResourceType, namespace: String, name: String, _ p: JSON) async throws -> JSON {
        try await patch(rt, namespace: namespace, name: name, p, subresource: nil)
    }
    public func delete(_ rt: ResourceType, namespace: String, name: String) async throws {
        try await delete(rt, namespace: namespace, name: name, options: .init())
    }
    /// Get that maps 404 to nil.
    public func getIfExists(_ rt: ResourceType, namespace: String, name: String) async throws -> JSON? {
        do { return try await get(rt, namespace: namespace, name: name) } catch let e as APIError where e.isNotFound { return nil }
    }
}

/// In-process client over an `APIRegistry`.
public struct LocalAPIClient: APIClient {
    public let registry: APIRegistry
    public init(registry: APIRegistry) { self.registry = registry }

    public func get(_ rt: ResourceType, namespace: String, name: String) async throws -> JSON {
        try await registry.get(rt, namespace: namespace, name: name)
    }
    public func list(_ rt: ResourceType, namespace: String?, options: ListOptions) async throws -> JSON {
        try await registry.list(rt, namespace: namespace, options: options)
    }
    public func create(_ rt: ResourceType, namespace: String, _ obj: JSON) async throws -> JSON {
        try await registry.create(rt, namespace: namespace, obj)
    }
    public func update(_ rt: ResourceType, _ obj: JSON, subresource: String?) async throws -> JSON {
        try await registry.update(rt, namespace: obj.namespace, name: obj.name, obj, subresource: subresource)
    }
    public func patch(_ rt: ResourceType, namespace: String, name: String, _ patch: JSON, subresource: String?) async throws -> JSON {
        if subresource == "scale" { return try await registry.updateScale(rt, namespace: namespace, name: name, patch: patch) }
        return try await registry.patch(rt, namespace: namespace, name: name, patch, subresource: subresource)
    }
    public func delete(_ rt: ResourceType, namespace: String, name: String, options: APIRegistry.DeleteOptions) async throws {
        _ = try await registry.delete(rt, namespace: namespace, name: name, options: options)
    }
    public func watch(_ rt: ResourceType, namespace: String?, options: ListOptions) async throws -> AsyncThrowingStream<WatchEvent, Error> {
        try await registry.watch(rt, namespace: namespace, options: options)
    }
    public func bind(namespace: String, pod: String, node: String) async throws {
        _ = try await registry.bind(namespace: namespace, pod: pod, binding: ["target": ["kind": "Node", "name": .string(node)]])
    }
    public func bind(_ pod: JSON, node: String) async throws {
        _ = try await registry.bind(namespace: pod.namespace, pod: pod.name,
                                    binding: ["metadata": ["uid": .string(pod.uid)], "target": ["kind": "Node", "name": .string(node)]], current: pod)
    }
}
