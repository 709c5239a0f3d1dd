import Foundation

/// A list+watch cache of one resource type, fed through an `APIClient`.
///
/// `run()` lists, then watches from the list's resourceVersion; when a watch ends it
/// resumes from the last seen resourceVersion, and on an error (e.g. 410 Gone) it relists
/// and reports the differences as events, so handlers stay level-correct. Handlers run
/// in order on the informer task and should only enqueue work. `cache`, `handlers` and
/// the sync state are guarded by `lock`.
public final class Informer: @unchecked Sendable {
    public typealias Handler = @Sendable (_ type: String, _ obj: JSON, _ old: JSON?) async -> Void

    public let client: any APIClient
    public let resource: ResourceType
    private let lock = NSLock()
    private var cache: [String: JSON] = [:]
    private var handlers: [Handler] = []
    private var synced = false
    private var syncWaiters: [CheckedContinuation<Void, Never>] = []

    public init(client: any APIClient, resource: ResourceType) {
        self.client = client; self.resource = resource
    }

    public func addHandler(_ h: @escaping Handler) { lock.withLock { handlers.append(h) } }

    public func get(_ key: String) -> JSON? { lock.withLock { cache[key] } }
    public func get(namespace: String, name: String) -> JSON? { get(namespace.isEmpty ? name : "\(namespace)/\(name)") }
    public func list() -> [JSON] { lock.withLock { Array(cache.values) } }
    public func list(namespace: String) -> [JSON] { lock.withLock { cache.values.filter { $0.namespace == namespace } } }
    public var keys: [String] { lock.withLock { Array(cache.keys) } }
    public var hasSynced: Bool { lock.withLock { synced } }

    /// Waits until the first list has been loaded.
    public func waitForSync() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = lock.withLock { () -> Bool in
                if synced { return true }
                syncWaiters.append(c); return false
            }
            if done { c.resume() }
        }
    }

    private func notify(_ type: String, _ obj: JSON, _ old: JSON?) async {
        for h in lock.withLock({ handlers }) { await h(type, obj, old) }
    }

    public func run() async {
        var backoff = 0.05
        while !Task.isCancelled {
            do {
                let l = try await client.list(resource, namespace: nil, options: ListOptions())
                var rv = l["metadata"]["resourceVersion"].string ?? "0"
                let items = l["items"].array ?? []
                var fresh: [String: JSON] = [:]
                for o in items { fresh[o.key] = o }
                let (old, waiters) = lock.withLock { () -> ([String: JSON], [CheckedContinuation<Void, Never>]) in
                    let old = cache; cache = fresh; synced = true
                    let w = syncWaiters; syncWaiters = []
                    return (old, w)
                }
                for (k, o) in fresh {
                    if let prev = old[k] {
                        if prev.resourceVersion != o.resourceVersion { await notify("MODIFIED", o, prev) }
                    } else { await notify("ADDED", o, nil) }
                }
                for (k, o) in old where fresh[k] == nil { await notify("DELETED", o, nil) }
                for w in waiters { w.resume() }
                backoff = 0.05
                // Watch, resuming from the last seen revision whenever a watch ends cleanly.
                while !Task.isCancelled {
                    let stream = try await client.watch(resource, namespace: nil, options: ListOptions(resourceVersion: rv))
                    for try await ev in stream {
                        let o = ev.object
                        rv = o.resourceVersion.isEmpty ? rv : o.resourceVersion
                        let prev = lock.withLock { () -> JSON? in
                            let p = cache[o.key]
                            if ev.type == "DELETED" { cache.removeValue(forKey: o.key) } else { cache[o.key] = o }
                            return p
                        }
                        await notify(ev.type, o, prev)
                    }
                }
            } catch {
                if Task.isCancelled { break }
                try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
                backoff = min(backoff * 2, 2)
            }
        }
    }
}

/// Shares one informer per resource type between controllers.
public final class InformerFactory: @unchecked Sendable {
    public let client: any APIClient
    private let lock = NSLock()
    private var informers: [ResourceType: Informer] = [:]

    public init(client: any APIClient) { self.client = client }

    public func informer(_ rt: ResourceType) -> Informer {
        lock.withLock {
            if let i = informers[rt] { return i }
            let i = Informer(client: client, resource: rt)
            informers[rt] = i
            return i
        }
    }

    /// Runs every informer created so far (create them all before calling).
    public func run() async {
        let all = lock.withLock { Array(informers.values) }
        await withTaskGroup(of: Void.self) { group in
            for i in all { group.addTask { await i.run() } }
        }
    }

    public func waitForSync() async {
        for i in lock.withLock({ Array(informers.values) }) { await i.waitForSync() }
    }
}
