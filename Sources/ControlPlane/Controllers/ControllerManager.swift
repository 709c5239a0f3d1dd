import Foundation

/// Runs every controller and the scheduler against one `APIClient`.
public final class ControllerManager: Sendable {
    public struct Options: Sendable {
        public var resync: Double = 30
        public var nodeGracePeriod: Double = 40
        public var podEvictionTimeout: Double = 300
        public var nodeMonitorInterval: Double = 2
        public var enableScheduler = true
        /// Pod CIDRs for Nodes (NodeIPAMController) from this range, with this mask size; nil: none.
        public var clusterCIDR: IPv4CIDR? = nil
        public var nodeCIDRMaskSize = 24
        public init() {}
    }

    public let client: any APIClient
    public let informers: InformerFactory
    public let replicaSets: ReplicaSetController
    public let deployments: DeploymentController
    public let jobs: JobController
    public let daemonSets: DaemonSetController
    public let endpoints: EndpointsController
    public let garbageCollector: GarbageCollector
    public let nodeLifecycle: NodeLifecycleController
    public let nodeIPAM: NodeIPAMController?
    public let scheduler: Scheduler?

    public init(client: any APIClient, options: Options = Options()) {
        self.client = client
        let f = InformerFactory(client: client)
        informers = f
        replicaSets = ReplicaSetController(client: client, informers: f, resync: options.resync)
        deployments = DeploymentController(client: client, informers: f, resync: options.resync)
        jobs = JobController(client: client, informers: f, resync: options.resync)
        daemonSets = DaemonSetController(client: client, informers: f, resync: options.resync)
        endpoints = EndpointsController(client: client, informers: f, resync: options.resync)
        garbageCollector = GarbageCollector(client: client, informers: f, resync: options.resync)
        nodeLifecycle = NodeLifecycleController(client: client, gracePeriod: options.nodeGracePeriod,
                                                evictionTimeout: options.podEvictionTimeout, interval: options.nodeMonitorInterval)
        nodeIPAM = options.clusterCIDR.map { NodeIPAMController(client: client, informers: f, clusterCIDR: $0, maskSize: options.nodeCIDRMaskSize, resync: options.resync) }
        scheduler = options.enableScheduler ? Scheduler(client: client, informers: f, resync: min(options.resync, 10)) : nil
    }

    /// Runs until the calling task is cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.informers.run() }
            group.addTask {
                await self.informers.waitForSync()
                await withTaskGroup(of: Void.self) { g in
                    g.addTask { await self.replicaSets.loop.run() }
                    g.addTask { await self.deployments.loop.run() }
                    g.addTask { await self.jobs.loop.run() }
                    g.addTask { await self.daemonSets.loop.run() }
                    g.addTask { await self.endpoints.loop.run() }
                    g.addTask { await self.garbageCollector.loop.run() }
                    g.addTask { await self.nodeLifecycle.run() }
                    if let ipam = self.nodeIPAM { g.addTask { await ipam.loop.run() } }
                    if let s = self.scheduler { g.addTask { await s.loop.run() } }
                }
            }
        }
    }
}
