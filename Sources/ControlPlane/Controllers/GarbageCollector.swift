import Foundation

/// Deletes objects whose owners are gone, and implements the `orphan` and
/// `foregroundDeletion` finalizers.
///
/// Keys are `dep|<resource>|<namespace>|<name>` (check one dependent's owners) and
/// `own|<resource>|<namespace>|<name>` (process a deleting owner's finalizers). Owner
/// existence is always confirmed with a live GET including the uid, never from a cache,
/// so a lagging cache cannot cause a wrong deletion.
public final class GarbageCollector: Sendable {
    public static let resources: [ResourceType] = [.pods, .replicasets, .deployments, .daemonsets, .jobs,
                                                   .services, .endpoints, .configmaps, .secrets]
    let client: any APIClient
    let informers: [Informer]
    public let queue = WorkQueue()
    let resync: Double

    public init(client: any APIClient, informers factory: InformerFactory, resync: Double = 30) {
        self.client = client
        self.resync = resync
        let informers = Self.resources.map { factory.informer($0) }
        self.informers = informers
        let queue = self.queue
        for inf in informers {
            let rt = inf.resource
            inf.addHandler { type, obj, _ in
                if !obj.ownerReferences.isEmpty { await queue.add(Self.key("dep", rt, obj)) }
                if obj.deletionTimestamp != nil, obj.finalizers.contains(where: { $0 == "orphan" || $0 == "foregroundDeletion" }) {
                    await queue.add(Self.key("own", rt, obj))
                }
                if type == "DELETED" {
                    for other in informers {
                        for dep in other.list() where dep.ownerReferences.contains(where: { $0.uid == obj.uid }) {
                            await queue.add(Self.key("dep", other.resource, dep))
                        }
                    }
                }
            }
        }
    }

    static func key(_ kind: String, _ rt: ResourceType, _ obj: JSON) -> String {
        "\(kind)|\(rt.storageName)|\(obj.namespace)|\(obj.name)"
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "garbagecollector", queue: queue, workers: 2, resyncInterval: resync,
                       resyncKeys: { [informers] in
                           informers.flatMap { inf in inf.list().filter { !$0.ownerReferences.isEmpty }.map { Self.key("dep", inf.resource, $0) } }
                       },
                       reconcile: { [self] in try await self.reconcile($0) })
    }

    public func reconcile(_ key: String) async throws {
        let p = key.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard p.count == 4, let rt = ResourceType.all.first(where: { $0.storageName == p[1] }) else { return }
        guard let obj = try await client.getIfExists(rt, namespace: p[2], name: p[3]) else { return }
        if p[0] == "dep" { try await checkDependent(rt, obj) } else { try await processOwner(rt, obj) }
    }

    /// Deletes `obj` if none of its owners exist any more; deletes it too when an owner is
    /// being deleted in the foreground.
    func checkDependent(_ rt: ResourceType, _ obj: JSON) async throws {
        let refs = obj.ownerReferences
        guard !refs.isEmpty, obj.deletionTimestamp == nil else { return }
        var anyAlive = false
        var foregroundOwner = false
        for ref in refs {
            guard let ort = ResourceType.forKind(ref.kind) else { anyAlive = true; continue }
            let owner = try await client.getIfExists(ort, namespace: ort.namespaced ? obj.namespace : "", name: ref.name)
            if let owner, owner.uid == ref.uid {
                anyAlive = true
                if owner.deletionTimestamp != nil, owner.finalizers.contains("foregroundDeletion") { foregroundOwner = true }
            }
        }
        if !anyAlive || foregroundOwner {
            do {
                try await client.delete(rt, namespace: obj.namespace, name: obj.name,
                                        options: .init(preconditionUID: obj.uid, propagationPolicy: foregroundOwner ? "Foreground" : "Background"))
            } catch let e as APIError where e.isNotFound {}
        }
    }

    func dependents(of owner: JSON) -> [(ResourceType, JSON)] {
        informers.flatMap { inf in
            inf.list().filter { $0.ownerReferences.contains { $0.uid == owner.uid } }.map { (inf.resource, $0) }
        }
    }

    func processOwner(_ rt: ResourceType, _ obj: JSON) async throws {
        guard obj.deletionTimestamp != nil else { return }
        if obj.finalizers.contains("orphan") {
            for (drt, dep) in dependents(of: obj) {
                guard let live = try await client.getIfExists(drt, namespace: dep.namespace, name: dep.name) else { continue }
                let refs = live.ownerReferences.filter { $0.uid != obj.uid }
                _ = try await client.patch(drt, namespace: live.namespace, name: live.name,
                    ["metadata": ["resourceVersion": .string(live.resourceVersion), "ownerReferences": refs.isEmpty ? .null : .array(refs.map(\.json))]])
            }
            try await removeFinalizer("orphan", rt, obj)
        } else if obj.finalizers.contains("foregroundDeletion") {
            var remaining = 0
            for (drt, dep) in dependents(of: obj) {
                guard let live = try await client.getIfExists(drt, namespace: dep.namespace, name: dep.name),
                      live.ownerReferences.contains(where: { $0.uid == obj.uid }) else { continue }
                remaining += 1
                if live.deletionTimestamp == nil {
                    do { try await client.delete(drt, namespace: live.namespace, name: live.name, options: .init(preconditionUID: live.uid, propagationPolicy: "Foreground")) }
                    catch let e as APIError where e.isNotFound {}
                }
            }
            if remaining == 0 { try await removeFinalizer("foregroundDeletion", rt, obj) } else {
                await queue.addAfter(Self.key("own", rt, obj), delay: 0.2)
            }
        }
    }

    func removeFinalizer(_ f: String, _ rt: ResourceType, _ obj: JSON) async throws {
        let rest = obj.finalizers.filter { $0 != f }
        _ = try await client.patch(rt, namespace: obj.namespace, name: obj.name,
            ["metadata": ["resourceVersion": .string(obj.resourceVersion), "finalizers": rest.isEmpty ? .null : .array(rest.map(JSON.string))]])
    }
}
