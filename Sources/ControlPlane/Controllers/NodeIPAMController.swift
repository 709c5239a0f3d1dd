import Foundation

/// Gives each Node a pod CIDR (spec.podCIDR and spec.podCIDRs): the lowest subnet of
/// `--cluster-cidr` with the node mask size (default /24) that no other Node holds. A Node that
/// registers with its own podCIDR keeps it (and that subnet counts as taken); a deleted Node's
/// subnet is free again. One worker, so two Nodes never get the same subnet from this process;
/// only the leader runs controllers. The node agents and their CNI configuration use it to give
/// pods addresses routed between nodes.
public final class NodeIPAMController: Sendable {
    let client: any APIClient
    let nodes: Informer
    public let clusterCIDR: IPv4CIDR
    public let maskSize: Int
    public let queue = WorkQueue()
    let resync: Double
    /// Subnets handed out that the informer may not show yet, by node name.
    private let pending = Pending()

    final class Pending: @unchecked Sendable {
        let lock = NSLock()
        var byNode: [String: UInt32] = [:]
    }

    public init(client: any APIClient, informers: InformerFactory, clusterCIDR: IPv4CIDR, maskSize: Int = 24, resync: Double = 30) {
        self.client = client
        self.nodes = informers.informer(.nodes)
        self.clusterCIDR = clusterCIDR
        self.maskSize = max(clusterCIDR.prefix, min(30, maskSize))
        self.resync = resync
        let queue = self.queue
        nodes.addHandler { _, node, _ in if node["spec"]["podCIDR"].string == nil { await queue.add(node.name) } }
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "nodeipam", queue: queue, workers: 1, resyncInterval: resync,
                       resyncKeys: { [nodes] in nodes.list().filter { $0["spec"]["podCIDR"].string == nil }.map(\.name) },
                       reconcile: { [self] in try await self.reconcile($0) })
    }

    /// The subnets of the cluster CIDR in order, as base addresses.
    var subnets: StrideTo<UInt64> {
        stride(from: UInt64(clusterCIDR.base), to: UInt64(clusterCIDR.base) + UInt64(clusterCIDR.size), by: Int(UInt64(1) << (32 - maskSize)))
    }

    public func reconcile(_ name: String) async throws {
        guard let node = try await client.getIfExists(.nodes, namespace: "", name: name), node.deletionTimestamp == nil,
              node["spec"]["podCIDR"].string == nil else { return }
        let all = nodes.list()
        let live = Set(all.map(\.name))
        var used = Set(all.compactMap { $0["spec"]["podCIDR"].string.flatMap { IPv4CIDR($0)?.base } })
        pending.lock.withLock {
            pending.byNode = pending.byNode.filter { live.contains($0.key) || $0.key == name }
            used.formUnion(pending.byNode.values)
        }
        guard let free = subnets.first(where: { !used.contains(UInt32($0)) }) else {
            throw APIError.internalError("no free pod CIDR of /\(maskSize) in \(clusterCIDR) for node \(name)")
        }
        let cidr = "\(IPv4CIDR.format(UInt32(free)))/\(maskSize)"
        var updated = node
        updated[path: "spec", "podCIDR"] = .string(cidr)
        updated[path: "spec", "podCIDRs"] = [.string(cidr)]
        _ = try await client.update(.nodes, updated)   // carries resourceVersion: a changed Node is retried
        pending.lock.withLock { pending.byNode[name] = UInt32(free) }
    }
}
