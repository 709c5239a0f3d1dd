/// # ControlPlane
///
/// A minimal Kubernetes-style control plane.
///
/// Components (one direction of dependency, top to bottom):
/// - `Model/`: `JSON` (generic object value with typed accessors), `ResourceType` (the
///   served kinds), label/field selectors, quantities.
/// - `Store/`: the `Store` protocol (revisioned objects + event log + watch) and
///   `SQLiteStore` (GRDB, WAL, synchronous=FULL) and `EtcdStore` (etcd v3 gRPC).
/// - `API/`: `APIRegistry` (defaulting, validation, optimistic concurrency, finalizers,
///   subresources, watch translation; the only user of the `Store`), `APIServer`
///   (Hummingbird HTTP front end, discovery, bearer-token auth + roles), `APIClient` with
///   `HTTPAPIClient` (raw-socket HTTP) and `LocalAPIClient` (in-process).
/// - `Controllers/`: `WorkQueue`, `Informer`, `ControllerLoop`, and the ReplicaSet,
///   Deployment, Job, garbage-collector and node-lifecycle controllers.
/// - `Scheduler/`: `Scheduler` and `Predicates`.
///
/// Controllers and the scheduler only use an `APIClient`, never the store.
///
/// Lock/actor ownership:
/// - `SQLiteStore`: GRDB's writer queue serialises writes, revision allocation, event-log
///   appends and watcher registration; `lock` guards the watcher table only.
/// - `APIRegistry`, `APIServer`: stateless (`Sendable`); all state lives in the store.
/// - `WorkQueue`: an actor owning the queue, dirty and processing sets and backoff counts.
/// - `Informer`/`InformerFactory`: `lock` guards the cache, handler list and sync waiters;
///   the cache is written only by the informer's own task.
/// - `Scheduler`: `lock` guards the map of bindings it assumed but has not yet observed.
/// - `RawHTTPConnection`: used by one thread at a time; `lock` only for shutdown.

import ArgumentParser
import Foundation
import Logging

/// Options shared by `moat apiserver` and `moat controlplane`.
public struct ControlPlaneOptions: ParsableArguments {
    @Option(help: "Address to serve HTTP (HTTPS with --tls-cert-file) on, host:port.")
    public var listen: String = "127.0.0.1:6443"

    @Option(name: .customLong("data-dir"), help: "Directory holding the SQLite database (moat.db).")
    public var dataDir: String = "./moat-data"

    @Option(help: "Storage backend: sqlite (embedded, in --data-dir) or etcd (--etcd-endpoints).")
    public var store: String = "sqlite"

    @Option(name: .customLong("etcd-endpoints"), help: "Comma-separated etcd client URLs, for --store etcd.")
    public var etcdEndpoints: String = "http://127.0.0.1:2379"

    @Option(name: .customLong("etcd-prefix"), help: "Key prefix under which objects are kept in etcd.")
    public var etcdPrefix: String = "/registry"

    @Option(name: .customLong("etcd-cafile"), help: "CA (PEM) that signed the etcd members' certificates, for https endpoints (default: the system's).")
    public var etcdCAFile: String?

    @Option(name: .customLong("etcd-certfile"), help: "Client certificate (PEM) for etcd's --client-cert-auth; needs --etcd-keyfile.")
    public var etcdCertFile: String?

    @Option(name: .customLong("etcd-keyfile"), help: "The etcd client certificate's private key (PEM).")
    public var etcdKeyFile: String?

    @Option(name: .customLong("token-file"), help: "Static bearer token file (token,user,uid,\"groups\"); open access if omitted.")
    public var tokenFile: String?

    @Option(name: .customLong("tls-cert-file"), help: "Serve HTTPS with this certificate (PEM); needs --tls-private-key-file and --client-ca-file.")
    public var tlsCertFile: String?

    @Option(name: .customLong("tls-private-key-file"), help: "The serving certificate's private key (PEM).")
    public var tlsKeyFile: String?

    @Option(name: .customLong("client-ca-file"), help: "CA whose client certificates authenticate users (CN: user, O: groups).")
    public var clientCAFile: String?

    @Option(name: .customLong("local-socket"), help: "Also serve plain HTTP on this Unix socket (for components on this machine).")
    public var localSocket: String?

    @Option(name: .customLong("event-ttl"), help: "How long Events are kept after their last update (like 1h, 30m, 90s; 0: for ever).")
    public var eventTTL: String = "1h"

    public init() {}

    func hostPort() throws -> (String, Int) {
        guard let i = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: i)...]) else {
            throw ValidationError("--listen must be host:port")
        }
        var host = String(listen[..<i])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    func openStore() throws -> any Store {
        switch store {
        case "sqlite":
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            return try SQLiteStore(path: (dataDir as NSString).appendingPathComponent("moat.db"))
        case "etcd":
            if (etcdCertFile == nil) != (etcdKeyFile == nil) { throw ValidationError("--etcd-certfile and --etcd-keyfile go together") }
            return try EtcdStore(endpoints: [etcdEndpoints], prefix: etcdPrefix,
                                 tls: .init(caFile: etcdCAFile, certFile: etcdCertFile, keyFile: etcdKeyFile))
        default:
            throw ValidationError("--store must be sqlite or etcd")
        }
    }

    func openRegistry(serviceCIDR: IPv4CIDR = .defaultServices) async throws -> APIRegistry {
        guard let ttl = parseDuration(eventTTL) else { throw ValidationError("--event-ttl \(eventTTL): expected a duration like 1h, 30m or 90s") }
        let store = try openStore()
        let registry = APIRegistry(store: store, serviceCIDR: serviceCIDR, eventTTL: ttl == .zero ? nil : ttl)
        try await registry.bootstrap()
        return registry
    }

    func authorizer() throws -> Authorizer? {
        if let f = tokenFile { return try Authorizer(tokenFile: f) }
        // With HTTPS, access is never open: no token file means client certificates only.
        return tls() == nil ? nil : Authorizer(users: [:])
    }

    func tls() -> APIServerTLS? {
        guard let c = tlsCertFile, let k = tlsKeyFile, let ca = clientCAFile else { return nil }
        return APIServerTLS(certificate: c, key: k, clientCA: ca)
    }

    func validateTLS() throws {
        let given = [tlsCertFile, tlsKeyFile, clientCAFile].compactMap { $0 }.count
        if given != 0 && given != 3 { throw ValidationError("--tls-cert-file, --tls-private-key-file and --client-ca-file go together") }
    }

    /// `serve(host, port)` on --listen and, with --local-socket, on that socket too.
    func listeners() throws -> [(String, Int)] {
        try validateTLS()
        return [try hostPort()] + (localSocket.map { [($0, 0)] } ?? [])
    }

    var scheme: String { tls() == nil ? "http" : "https" }
}

/// A duration as Kubernetes' flags write them (Go's: "1h", "1h30m", "90s", "1.5s", "500ms"),
/// or a bare number of seconds; nil if it is neither or negative.
func parseDuration(_ text: String) -> Duration? {
    if let s = Double(text) { return s >= 0 ? .milliseconds(Int64(s * 1000)) : nil }
    let units: [(String, Double)] = [("ms", 0.001), ("h", 3600), ("m", 60), ("s", 1)]
    var rest = Substring(text), total = 0.0
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
        let number = rest.prefix { $0.isNumber || $0 == "." }
        guard let n = Double(number) else { return nil }
        rest = rest.dropFirst(number.count)
        guard let (u, scale) = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
        rest = rest.dropFirst(u.count)
        total += n * scale
    }
    return .milliseconds(Int64(total * 1000))
}

public struct APIServerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "apiserver", abstract: "Serve the Kubernetes-style API over HTTP, backed by SQLite or etcd.")

    @OptionGroup public var options: ControlPlaneOptions

    public init() {}

    public func run() async throws {
        let listeners = try options.listeners()
        let registry = try await options.openRegistry()
        let server = APIServer(registry: registry, authorizer: try options.authorizer(), tls: options.tls())
        let scheme = options.scheme
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (host, port) in listeners {
                group.addTask {
                    try await server.run(host: host, port: port) { bound in
                        FileHandle.standardError.write("moat apiserver listening on \(host.hasPrefix("/") ? "unix://\(host)" : "\(scheme)://\(host):\(bound)")\n".data(using: .utf8)!)
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

public struct ControlPlaneCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "controlplane",
        abstract: "Run the API server, controllers and scheduler in one process.",
        discussion: """
            Controllers run only while this process holds the Lease kube-system/moat-controller-manager, \
            so several processes can share one store (--store etcd) and exactly one of them reconciles.
            """)

    @OptionGroup public var options: ControlPlaneOptions

    @Option(name: .customLong("leader-elect"), help: "Take part in leader election before running controllers (true/false).")
    public var leaderElect: Bool = true

    @Option(name: .customLong("identity"), help: "Leader-election identity (default: hostname_pid).")
    public var identity: String?

    @Option(name: .customLong("lease-duration"), help: "Seconds a leader's lease lasts without renewal.")
    public var leaseDuration: Double = 15

    @Option(name: .customLong("node-grace-period"), help: "Seconds without a heartbeat before a node is marked not ready.")
    public var nodeGracePeriod: Double = 40

    @Option(name: .customLong("pod-eviction-timeout"), help: "Seconds a node stays not ready before its pods are evicted.")
    public var podEvictionTimeout: Double = 300

    @Option(name: .customLong("resync"), help: "Seconds between full resyncs of each controller.")
    public var resync: Double = 30

    @Option(name: .customLong("dns-listen"), help: "Serve the cluster DNS (NAME.NAMESPACE.svc.DOMAIN) on this UDP address, IPv4:port.")
    public var dnsListen: String?

    @Option(name: .customLong("cluster-domain"), help: "The cluster's DNS domain.")
    public var clusterDomain: String = "cluster.local"

    @Option(name: .customLong("service-cidr"), help: "The range Services' ClusterIPs come from (IPv4).")
    public var serviceCIDR: String = "10.96.0.0/12"

    @Option(name: .customLong("cluster-cidr"), help: "Give each Node a pod CIDR (spec.podCIDR) from this range (IPv4).")
    public var clusterCIDR: String?

    @Option(name: .customLong("node-cidr-mask-size"), help: "The prefix length of each Node's pod CIDR.")
    public var nodeCIDRMaskSize: Int = 24

    @Option(name: .customLong("dns-service-ip"), help: "Keep the Service kube-system/kube-dns (port 53) on this ClusterIP: the address pods' resolv.conf names.")
    public var dnsServiceIP: String?

    public init() {}

    public func run() async throws {
        let listeners = try options.listeners()
        guard let cidr = IPv4CIDR(serviceCIDR) else { throw ValidationError("--service-cidr must be an IPv4 CIDR with a prefix of 8 to 30 bits") }
        var dns: (String, Int)?
        if let d = dnsListen {
            guard let i = d.lastIndex(of: ":"), let port = Int(d[d.index(after: i)...]), IPv4CIDR.parse(String(d[..<i])) != nil else {
                throw ValidationError("--dns-listen must be IPv4:port")
            }
            dns = (String(d[..<i]), port)
        }
        let registry = try await options.openRegistry(serviceCIDR: cidr)
        let server = APIServer(registry: registry, authorizer: try options.authorizer(), tls: options.tls())
        let scheme = options.scheme
        let domain = clusterDomain
        // Controllers use the in-process client: same API semantics, no token needed.
        let client = LocalAPIClient(registry: registry)
        var o = ControllerManager.Options()
        o.nodeGracePeriod = nodeGracePeriod
        o.podEvictionTimeout = podEvictionTimeout
        o.resync = resync
        if let c = clusterCIDR {
            guard let cidr = IPv4CIDR(c), (cidr.prefix...30).contains(nodeCIDRMaskSize) else {
                throw ValidationError("--cluster-cidr must be an IPv4 CIDR and --node-cidr-mask-size a prefix inside it, at most 30")
            }
            o.clusterCIDR = cidr; o.nodeCIDRMaskSize = nodeCIDRMaskSize
        }
        o.nodeMonitorInterval = min(2, max(0.1, nodeGracePeriod / 4))
        let managerOptions = o
        let me = identity ?? "\(ProcessInfo.processInfo.hostName)_\(getpid())"
        var config = LeaderElector.Config(identity: me)
        config.leaseDuration = leaseDuration
        config.renewDeadline = leaseDuration * 2 / 3
        config.retryPeriod = max(0.2, leaseDuration / 7.5)
        let elector = LeaderElector(client: client, config: config)
        let elect = leaderElect
        // Not a member of the group below, whose first finished task ends the command.
        if let ip = dnsServiceIP { Task { await Self.ensureDNSService(client, ip: ip) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (host, port) in listeners {
                group.addTask {
                    try await server.run(host: host, port: port) { bound in
                        FileHandle.standardError.write("moat controlplane listening on \(host.hasPrefix("/") ? "unix://\(host)" : "\(scheme)://\(host):\(bound)")\n".data(using: .utf8)!)
                    }
                }
            }
            if let (dnsHost, dnsPort) = dns {
                group.addTask {
                    try await ClusterDNS(client: client, domain: domain).run(host: dnsHost, port: dnsPort) { bound in
                        FileHandle.standardError.write("moat controlplane: cluster DNS on \(dnsHost):\(bound) (udp)\n".data(using: .utf8)!)
                    }
                }
            }
            group.addTask {
                if !elect { await ControllerManager(client: client, options: managerOptions).run(); return }
                // Each term gets fresh controllers (fresh caches and queues).
                while !Task.isCancelled {
                    await elector.run {
                        FileHandle.standardError.write("moat controlplane: \(me) is the leader\n".data(using: .utf8)!)
                        await ControllerManager(client: client, options: managerOptions).run()
                    }
                    if !Task.isCancelled { FileHandle.standardError.write("moat controlplane: \(me) lost the lease\n".data(using: .utf8)!) }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

extension ControlPlaneCommand {
    /// The kube-dns Service on its fixed ClusterIP (no selector: the node's service proxy relays
    /// its port to the DNS server), made once; an existing one is left as it is.
    static func ensureDNSService(_ client: any APIClient, ip: String) async {
        let svc: JSON = ["apiVersion": "v1", "kind": "Service",
                         "metadata": ["name": "kube-dns", "namespace": "kube-system", "labels": ["k8s-app": "kube-dns"]],
                         "spec": ["clusterIP": .string(ip), "ports": [["name": "dns", "port": 53, "protocol": "UDP"],
                                                                      ["name": "dns-tcp", "port": 53, "protocol": "TCP"]]]]
        for _ in 0..<50 {
            do { _ = try await client.create(.services, namespace: "kube-system", svc); return }
            catch let e as APIError where e.code < 500 { return }   // there already (or the address is held)
            catch { try? await Task.sleep(nanoseconds: 200_000_000) }
        }
    }
}

/// `moat controlplane-bench` (hidden): scheduler throughput on simulated nodes; see
/// `SchedulerBench` and bench/README.md.
public struct ControlPlaneBenchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "controlplane-bench", abstract: "Measure scheduler throughput on simulated nodes.", shouldDisplay: false)

    @Option(help: "Simulated nodes.") public var nodes: Int = 1000
    @Option(help: "Pods to schedule in each phase.") public var pods: Int = 10000
    @Option(help: "Concurrent writers creating nodes and pods.") public var concurrency: Int = 16
    @Option(help: "Phases to run: stream, burst, or both.") public var phases: String = "both"
    @Option(name: .customLong("max-in-flight-binds"), help: "Bindings the scheduler may have outstanding.") public var maxInFlightBinds: Int = 32
    @Option(help: "Storage backend: sqlite or etcd.") public var store: String = "sqlite"
    @Option(name: .customLong("etcd-endpoints"), help: "etcd client URLs, for --store etcd.") public var etcdEndpoints: String = "http://127.0.0.1:2379"
    @Option(name: .customLong("data-dir"), help: "Where the SQLite databases go (default: a new temporary directory, removed afterwards).")
    public var dataDir: String?

    public init() {}

    public func run() async throws {
        let list = phases == "both" ? ["stream", "burst"] : [phases]
        for p in list where !["stream", "burst"].contains(p) { throw ValidationError("--phases must be stream, burst or both") }
        let base = dataDir ?? NSTemporaryDirectory() + "moat-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { if dataDir == nil { try? FileManager.default.removeItem(atPath: base) } }
        func say(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
        print("| phase | store | nodes | pods | pods/s bound | pods/s created | p50 latency | p99 latency | max latency | nodes used |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for (i, phase) in list.enumerated() {
            let s: any Store
            switch store {
            case "sqlite": s = try SQLiteStore(path: base + "/bench-\(phase).db")
            case "etcd": s = try EtcdStore(endpoints: [etcdEndpoints], prefix: "/moat-bench-\(UUID().uuidString.prefix(8))-\(i)")
            default: throw ValidationError("--store must be sqlite or etcd")
            }
            defer { s.close() }
            let r = try await SchedulerBench.run(phase: phase, store: s, nodes: nodes, pods: pods, concurrency: concurrency,
                                                  maxInFlightBinds: maxInFlightBinds, log: say)
            let ms = { (x: Double) in String(format: "%.1f ms", x * 1000) }
            let lat = phase == "stream" ? [ms(r.p50), ms(r.p99), ms(r.max)] : ["n/a", "n/a", "n/a"]
            print("| \(phase) | \(store) | \(r.nodes) | \(r.pods) | \(String(format: "%.0f", r.podsPerSecond)) | \(String(format: "%.0f", r.createPerSecond)) | "
                  + lat.joined(separator: " | ") + " | \(r.nodesUsed) |")
        }
    }
}
