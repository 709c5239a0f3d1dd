import Foundation

/// Identity of a stored object: resource storage name (e.g. "pods", "deployments.apps"),
/// namespace ("" for cluster-scoped objects) and name.
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    public var resource: String
    public var namespace: String
    public var name: String
    public init(resource: String, namespace: String, name: String) {
        self.resource = resource; self.namespace = namespace; self.name = name
    }
    public var description: String { namespace.isEmpty ? "\(resource)/\(name)" : "\(resource)/\(namespace)/\(name)" }
}

/// An object as the store holds it: opaque bytes plus the revisions at which it was
/// created and last modified. The API layer injects `modRevision` as
/// `metadata.resourceVersion`; the stored bytes never carry it.
public struct StoredObject: Sendable, Equatable {
    public var key: ObjectKey
    public var value: Data
    public var createRevision: Int64
    public var modRevision: Int64
    public init(key: ObjectKey, value: Data, createRevision: Int64, modRevision: Int64) {
        self.key = key; self.value = value; self.createRevision = createRevision; self.modRevision = modRevision
    }
}

public enum StoreEventType: String, Sendable {
    case added = "ADDED", modified = "MODIFIED", deleted = "DELETED"
}

/// One change, as recorded in the event log. For deletions `object.value` is the last
/// value before deletion and `object.modRevision` is the revision of the deletion.
public struct StoreEvent: Sendable, Equatable {
    public var type: StoreEventType
    public var object: StoredObject
    /// The value before this change (nil for creations); lets watchers with selectors
    /// turn "stopped matching" into a DELETED event.
    public var previousValue: Data?
    public init(type: StoreEventType, object: StoredObject, previousValue: Data? = nil) {
        self.type = type; self.object = object; self.previousValue = previousValue
    }
    public var revision: Int64 { object.modRevision }
}

public enum StoreError: Error, Equatable, CustomStringConvertible {
    case alreadyExists(ObjectKey)
    case notFound(ObjectKey)
    /// The object's current revision differs from the one the writer expected.
    case conflict(ObjectKey, expected: Int64, actual: Int64)
    /// A watch asked for history that has been compacted away (HTTP 410 Gone).
    case revisionCompacted(requested: Int64, compacted: Int64)
    /// A watch asked for a revision in the future.
    case futureRevision(requested: Int64, current: Int64)
    case closed

    public var description: String {
        switch self {
        case .alreadyExists(let k): return "\(k) already exists"
        case .notFound(let k): return "\(k) not found"
        case .conflict(let k, let e, let a): return "\(k): expected revision \(e), found \(a)"
        case .revisionCompacted(let r, let c): return "revision \(r) has been compacted (oldest available \(c))"
        case .futureRevision(let r, let c): return "revision \(r) is newer than the current revision \(c)"
        case .closed: return "store closed"
        }
    }
}

/// The storage interface the API server uses. It is the only component that talks to a
/// `Store`; controllers and the scheduler go through the API.
///
/// Semantics (modelled on a revisioned key-value store):
/// - every successful write increments one global revision and appends an event to the
///   event log in the same transaction;
/// - `update`/`delete` with `expectedRevision` fail with `.conflict` unless the object's
///   `modRevision` equals it;
/// - `watch(fromRevision: r)` delivers, in order, every event with revision > r and then
///   live events; if events after `r` were compacted it throws `.revisionCompacted`.
///
/// Backends: `SQLiteStore` (embedded, default) and `EtcdStore` (etcd v3 through its gRPC
/// API; revision = etcd revision). `StoreTests`, `APIServerTests` and
/// `ControllerTests` run against both.
public protocol Store: Sendable {
    func get(_ key: ObjectKey) async throws -> StoredObject?
    /// Objects of a resource (optionally in one namespace) and the revision the list is consistent at.
    func list(resource: String, namespace: String?) async throws -> (items: [StoredObject], revision: Int64)
    /// Creates an object; returns the new revision.
    func create(_ key: ObjectKey, value: Data) async throws -> StoredObject
    /// Replaces an object; `expectedRevision` nil means unconditional.
    func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?) async throws -> StoredObject
    /// `create` of an object that the store deletes (a DELETED event to watches) once `ttl`
    /// has passed, give or take the backend's granularity (etcd: a lease shared by the keys
    /// written in one window; SQLite: a sweep). Used for Events (`--event-ttl`).
    func create(_ key: ObjectKey, value: Data, ttl: Duration) async throws -> StoredObject
    /// `create` (expiring after `ttl` when given) that also requires `parent` to exist, checked
    /// in the same transaction as the create: a namespaced object's namespace. Fails with
    /// `.notFound(parent)` when the parent is missing (before `.alreadyExists(key)`). One
    /// transaction instead of a read and a write: on etcd, one round trip per create.
    func create(_ key: ObjectKey, value: Data, ttl: Duration?, parent: ObjectKey) async throws -> StoredObject
    /// `update` that (re)sets the object's expiry to `ttl` from now. A plain `update` clears it.
    func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?, ttl: Duration) async throws -> StoredObject
    /// Deletes an object; returns the deleted object with `modRevision` set to the deletion revision.
    func delete(_ key: ObjectKey, expectedRevision: Int64?) async throws -> StoredObject
    /// Events after `fromRevision` for a resource (optionally one namespace), then live events.
    func watch(resource: String, namespace: String?, fromRevision: Int64) async throws -> AsyncThrowingStream<StoreEvent, Error>
    func currentRevision() async throws -> Int64
    /// Oldest revision a watch may start from.
    func compactedRevision() async throws -> Int64
    /// Drops history at or before `revision`: watches from earlier revisions then fail
    /// with `.revisionCompacted`.
    func compact(toRevision revision: Int64) async throws
    func close()
}
