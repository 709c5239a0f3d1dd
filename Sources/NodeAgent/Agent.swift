// The node agent: what kubelet is to a Kubernetes node, for Moat's control
// plane. It registers its Node, heartbeats through its Lease and its Ready
// condition, and drives
// every pod bound to it (spec.nodeName) to its spec through the Container
// Runtime Interface only, so it works against `moat cri` and against any
// other CRI runtime.
//
// The sync is level-triggered: every pass reads the pods from the API server
// and the sandboxes and containers from the runtime, and closes the gap:
// a pod with no ready sandbox gets one; a container that is missing is
// created and started; one that exited is restarted as the pod's
// restartPolicy says, after a back-off (10 s doubling to 5 min); a sandbox
// whose pod is gone is stopped and removed. The pod's status (phase,
// conditions, IP, container statuses) is written back when it changes.
// The runtime's labels (io.kubernetes.pod.uid, io.kubernetes.container.name)
// are the agent's only memory, so a restarted agent picks up where it was
// without restarting healthy containers.
//
// This file: the Node, the heartbeat, the sync loop over all pods, graceful
// termination and sandbox teardown. Pods.swift syncs one pod; Volumes.swift
// prepares volumes and environment; Probes.swift runs probes and hooks;
// Events.swift records events; NodeServer.swift serves logs and exec to the
// API server; ImageGC.swift removes unused images when the disk fills.

import CRIAPI
import ControlPlane
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

public struct NodeAgentOptions: Sendable {
    /// The API server, http://HOST:PORT or unix:///PATH.
    public var server: String
    public var token: String? = nil
    /// The CRI socket path.
    public var criSocket: String
    public var nodeName: String
    public var podCIDR: String? = nil
    /// Where the pods' container logs go (kubelet's /var/log/pods layout).
    public var logDirectory = "/var/log/pods"
    /// The agent's own state: the pods' volumes (emptyDir, ConfigMap and Secret files) under pods/UID/volumes.
    public var root = "/var/lib/moat/node"
    /// Seconds between two syncs, and between two heartbeats.
    public var syncInterval = 1.0
    public var heartbeatInterval = 10.0
    /// Seconds between two posts of the Node's status when the Lease carries the heartbeat.
    public var statusInterval = 60.0
    /// The agent's HTTP endpoint for the API server (container logs): address and port (0: any free port).
    public var address = "127.0.0.1"
    public var port = 10250
    /// Stop and remove every pod sandbox on the runtime when the agent exits (`moat server`:
    /// the node's pods live no longer than the server).
    public var stopPodsOnExit = false
    /// The cluster DNS server pods get in their resolv.conf (dnsPolicy ClusterFirst), and the domain.
    public var clusterDNS: String? = nil
    public var clusterDomain = "cluster.local"
    /// The service proxy (ServiceProxy.swift): on with a service CIDR; pods' DNS queries to
    /// clusterDNS are relayed to dnsUpstream (IPv4:port) when both are set.
    public var serviceCIDR: String? = nil
    public var dnsUpstream: String? = nil
    /// Image garbage collection (ImageGC.swift): thresholds, and seconds between two passes.
    public var imageGC = ImageGCPolicy()
    public var imageGCInterval = 300.0
    /// Node-pressure eviction (Eviction.swift): hard thresholds (none: no eviction), and how long
    /// a pressure condition stays True after its signal last crossed a threshold.
    public var evictionHard = EvictionThreshold.defaults
    public var evictionPressureTransitionPeriod = 300.0
    public init(server: String, criSocket: String, nodeName: String) {
        self.server = server; self.criSocket = criSocket; self.nodeName = nodeName
    }
}

public struct NodeAgentError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

typealias RuntimeClient = Runtime_V1_RuntimeService.Client<HTTP2ClientTransport.Posix>
typealias ImageClient = Runtime_V1_ImageService.Client<HTTP2ClientTransport.Posix>

public enum NodeAgentMain {
    /// Runs until the task is cancelled; then marks the node not ready.
    public static func run(_ o: NodeAgentOptions) async throws {
        let api: HTTPAPIClient
        if o.server.hasPrefix("unix:///") {
            // The API server's local socket (`moat server`).
            api = HTTPAPIClient(host: String(o.server.dropFirst(7)), port: 0, token: o.token)
        } else {
            guard let url = URL(string: o.server), let host = url.host, let port = url.port, url.scheme == "http" else {
                throw NodeAgentError("--server \(o.server): expected http://HOST:PORT or unix:///PATH")
            }
            api = HTTPAPIClient(host: host, port: port, token: o.token)
        }
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: o.criSocket), transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { grpc in
            let agent = NodeAgent(options: o, api: api, runtime: RuntimeClient(wrapping: grpc), images: ImageClient(wrapping: grpc))
            let (bound, cont) = AsyncStream<Int>.makeStream()
            let server = Task { do { try await agent.serve { cont.yield($0); cont.finish() } } catch { agent.log.error("node endpoint: \(error)"); cont.finish() } }
            defer { server.cancel() }
            var it = bound.makeAsyncIterator()
            guard let port = await it.next() else { throw NodeAgentError("cannot listen on \(o.address):\(o.port)") }
            agent.boundPort = port
            try await agent.register()
            await agent.loop()
            try? await agent.markNotReady()
        }
        if o.stopPodsOnExit { await stopAllPods(criSocket: o.criSocket) }
    }

    /// The ids of the sandboxes the runtime at `criSocket` holds (ready or not, or only ready ones).
    static func sandboxIDs(criSocket: String, readyOnly: Bool = false) async throws -> [String] {
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: criSocket), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { grpc in
            try await RuntimeClient(wrapping: grpc).listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items
                .filter { !readyOnly || $0.state == .sandboxReady }.map(\.id)
        }
    }

    /// Stops and removes every sandbox the runtime holds, over a client of its own: the agent's
    /// was closed with the cancelled task, and this one must not be cancelled half way.
    static func stopAllPods(criSocket: String) async {
        let log = Logger(label: "moat.node")
        await Task.detached {
            do {
                let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: criSocket), transportSecurity: .plaintext)
                try await withGRPCClient(transport: transport) { grpc in
                    let runtime = RuntimeClient(wrapping: grpc)
                    for sb in try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items {
                        var s = Runtime_V1_StopPodSandboxRequest(); s.podSandboxID = sb.id
                        var r = Runtime_V1_RemovePodSandboxRequest(); r.podSandboxID = sb.id
                        do { _ = try await runtime.stopPodSandbox(s); _ = try await runtime.removePodSandbox(r) } catch {
                            log.error("stopping sandbox \(sb.id) on exit: \(error)")
                        }
                    }
                }
            } catch { log.error("stopping the pods on exit: \(error)") }
        }.value
    }
}

final class NodeAgent: @unchecked Sendable {
    let o: NodeAgentOptions
    let api: any APIClient
    let runtime: RuntimeClient
    let images: ImageClient
    let log = Logger(label: "moat.node")
    /// Back-off of a crashing container (pod uid + name): next allowed start and delay.
    var backoff: [String: (next: Date, delay: Double)] = [:]
    var runtimeVersion = ""
    var nodeUID = ""
    /// When each pod's volume files were last brought up to date (Pods.swift). Sync loop only.
    var volumesRefreshed: [String: Date] = [:]
    /// When the Node's status was last posted.
    var lastStatus: Date?
    /// Events already written (Events.swift): name, count, last time. Sync loop only.
    var recorded: [String: (name: String, count: Int, last: Date)] = [:]
    let lock = NSLock()
    /// Pods (uid) being stopped for a graceful deletion. Guarded by: lock
    var terminating = Set<String>()
    /// The node endpoint's port and the token the API server must present there.
    var boundPort = 0
    let proxyToken = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
    /// Probe state per container ID (Probes.swift).
    var probes: [String: ProbeState] = [:]
    /// The service proxy, with --service-cidr; its pods' namespaces by sandbox ID (ServiceProxy.swift).
    let proxy: ServiceProxy?
    var sandboxNamespaces: [String: String] = [:]
    /// The pod CIDR last passed to the runtime. Guarded by: lock
    var runtimePodCIDR = ""
    /// When images were first seen and last seen in use (ImageGC.swift). Sync loop only.
    let imageUse = ImageUseRecord()
    /// The eviction manager's record of pressure (Eviction.swift). Its posted conditions and
    /// transitions are guarded by: lock; the rest is sync loop only.
    let eviction = EvictionState()

    init(options: NodeAgentOptions, api: any APIClient, runtime: RuntimeClient, images: ImageClient) {
        o = options; self.api = api; self.runtime = runtime; self.images = images
        proxy = Self.makeProxy(options, log: Logger(label: "moat.node"))
    }

    // MARK: the node

    func nodeStatus(ready: Bool) -> JSON {
        let mem = ProcessInfo.processInfo.physicalMemory / 1024
        let capacity: JSON = ["cpu": .string(String(ProcessInfo.processInfo.activeProcessorCount)),
                              "memory": .string("\(mem)Ki"), "pods": "110", "ephemeral-storage": .string("\(diskKi())Ki")]
        let now = Timestamp.now()
        func cond(_ t: String, _ s: String, _ reason: String, _ msg: String) -> JSON {
            ["type": .string(t), "status": .string(s), "reason": .string(reason), "message": .string(msg),
             "lastHeartbeatTime": .string(now), "lastTransitionTime": .string(now)]
        }
        return [
            "capacity": capacity, "allocatable": capacity,
            "conditions": .array([
                cond("Ready", ready ? "True" : "False", ready ? "KubeletReady" : "KubeletNotReady",
                     ready ? "moat node is posting ready status" : "moat node stopped"),
            ] + pressureConditions(now: now)),
            "addresses": [["type": "InternalIP", "address": .string(hostIP)], ["type": "Hostname", "address": .string(o.nodeName)]],
            "daemonEndpoints": ["kubeletEndpoint": ["Port": .int(boundPort)]],
            "nodeInfo": ["containerRuntimeVersion": .string(runtimeVersion), "kubeletVersion": "v1.30.0-moat",
                         "operatingSystem": "linux", "architecture": "amd64"],
        ]
    }

    func diskKi() -> UInt64 {
        var s = statvfs()
        guard statvfs(o.logDirectory.isEmpty ? "/" : "/", &s) == 0 else { return 0 }
        return UInt64(s.f_blocks) * UInt64(s.f_frsize) / 1024
    }

    func register() async throws {
        let v = try await runtime.version(Runtime_V1_VersionRequest())
        runtimeVersion = "\(v.runtimeName)://\(v.runtimeVersion)"
        var node: JSON = ["apiVersion": "v1", "kind": "Node",
                          "metadata": ["name": .string(o.nodeName), "labels": ["kubernetes.io/hostname": .string(o.nodeName), "kubernetes.io/os": "linux"]]]
        if let c = o.podCIDR { node["spec"] = ["podCIDR": .string(c)] }
        if let n = try await api.getIfExists(.nodes, namespace: "", name: o.nodeName) {
            nodeUID = n.uid
        } else {
            do { nodeUID = try await api.create(.nodes, namespace: "", node).uid } catch let e as APIError where e.isAlreadyExists {}
        }
        try await heartbeat()
        log.info("node \(o.nodeName) registered with \(runtimeVersion)")
    }

    /// Renews the node's Lease in kube-node-lease (the cheap heartbeat, every time) and posts
    /// the Node's status (every `statusInterval`, and at once at start).
    func heartbeat() async throws {
        try await renewLease()
        let node = try await api.getIfExists(.nodes, namespace: "", name: o.nodeName)
        await passPodCIDR(node)
        // The status again before its time when the Node is not Ready=True: the lifecycle
        // controller marked it Unknown (a heartbeat came late), and only a posted status takes
        // that back (else its pods are evicted from a live node).
        if let last = lastStatus, Date().timeIntervalSince(last) < o.statusInterval,
           node?.condition("Ready")?["status"].string == "True" { return }
        try await postStatus()
    }

    /// Posts the Node's status (and its annotations).
    func postStatus() async throws {
        // The annotations again too: the API never shows the token, so an update of the Node by
        // someone else (get, edit, put) drops it.
        _ = try await api.patch(.nodes, namespace: "", name: o.nodeName, ["metadata": ["annotations": .object([NodeProxy.tokenAnnotation: .string(proxyToken), NodeProxy.gracefulDeletionAnnotation: "true"])]])
        _ = try await api.patch(.nodes, namespace: "", name: o.nodeName, ["status": nodeStatus(ready: true)], subresource: "status")
        lastStatus = Date()
    }

    /// The Node's pod CIDR (--pod-cidr, or the NodeIPAM controller's) to the runtime, whose
    /// CNI network takes it when its host-local range names no subnet. Sent with every
    /// heartbeat (a restarted runtime forgets it), and on every sync until it was sent once.
    func passPodCIDR(_ node: JSON?) async {
        guard let cidr = node?["spec"]["podCIDR"].string, !cidr.isEmpty else { return }
        var r = Runtime_V1_UpdateRuntimeConfigRequest()
        r.runtimeConfig.networkConfig.podCidr = cidr
        do {
            _ = try await runtime.updateRuntimeConfig(r)
            if lock.withLock({ let first = runtimePodCIDR != cidr; runtimePodCIDR = cidr; return first }) {
                log.info("pod CIDR \(cidr) passed to the runtime")
            }
        } catch {
            log.info("UpdateRuntimeConfig: \(error)")
        }
    }

    static let leaseNamespace = "kube-node-lease"

    func renewLease() async throws {
        let spec: JSON = ["holderIdentity": .string(o.nodeName), "leaseDurationSeconds": 40, "renewTime": .string(Self.microTime(Date()))]
        if try await api.getIfExists(.leases, namespace: Self.leaseNamespace, name: o.nodeName) != nil {
            _ = try await api.patch(.leases, namespace: Self.leaseNamespace, name: o.nodeName, ["spec": spec])
            return
        }
        var lease: JSON = ["apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": ["name": .string(o.nodeName), "namespace": .string(Self.leaseNamespace)], "spec": spec]
        if !nodeUID.isEmpty {
            // Owned by the Node, so the garbage collector removes it with the Node.
            lease[path: "metadata", "ownerReferences"] = [["apiVersion": "v1", "kind": "Node", "name": .string(o.nodeName), "uid": .string(nodeUID)]]
        }
        do { _ = try await api.create(.leases, namespace: Self.leaseNamespace, lease) } catch let e as APIError where e.isAlreadyExists {}
    }

    /// The node's address as pods see it (status.hostIP).
    var hostIP: String { o.address == "0.0.0.0" ? "127.0.0.1" : o.address }

    /// A MicroTime: RFC 3339 with microseconds, as Lease.spec.renewTime is.
    static func microTime(_ d: Date) -> String {
        let whole = Timestamp.string(d)
        let us = Int((d.timeIntervalSince1970 - d.timeIntervalSince1970.rounded(.down)) * 1e6)
        return whole.dropLast() + "." + String(String(us + 1_000_000).dropFirst()) + "Z"
    }

    func markNotReady() async throws {
        _ = try await api.patch(.nodes, namespace: "", name: o.nodeName, ["status": nodeStatus(ready: false)], subresource: "status")
    }

    func loop() async {
        var lastBeat = Date(), lastImageGC = Date()
        while !Task.isCancelled {
            do { try await sync() } catch { log.info("sync: \(error)") }
            if Date().timeIntervalSince(lastBeat) >= o.heartbeatInterval {
                do { try await heartbeat(); lastBeat = Date() } catch { log.info("heartbeat: \(error)") }
            }
            if Date().timeIntervalSince(lastImageGC) >= o.imageGCInterval {
                do { try await collectImages() } catch { log.info("image GC: \(error)") }
                lastImageGC = Date()
            }
            try? await Task.sleep(nanoseconds: UInt64(o.syncInterval * 1e9))
        }
    }

    // MARK: pods

    func sync() async throws {
        if lock.withLock({ runtimePodCIDR.isEmpty }) { await passPodCIDR(try? await api.getIfExists(.nodes, namespace: "", name: o.nodeName)) }
        let opts = ListOptions(fieldSelector: FieldSelector(terms: [.init(field: "spec.nodeName", value: o.nodeName, negated: false)]))
        let pods = try await api.list(.pods, namespace: nil, options: opts)["items"].array ?? []
        let sandboxes = try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items
        var wanted = Set<String>()
        for pod in pods where pod.deletionTimestamp != nil && (pod["metadata"]["deletionGracePeriodSeconds"].int ?? 0) > 0 {
            // Graceful deletion: stop it in the background (it may take the whole grace period).
            let uid = pod.uid
            wanted.insert(uid)
            if lock.withLock({ terminating.insert(uid).inserted }) {
                let mine = sandboxes.filter { $0.labels[Labels.podUID] == uid }
                Task {
                    await self.terminate(pod, mine)
                    self.lock.withLock { _ = self.terminating.remove(uid) }
                }
            }
        }
        for pod in pods where pod.deletionTimestamp == nil {
            guard let uid = pod["metadata"]["uid"].string else { continue }
            wanted.insert(uid)
            let mine = sandboxes.filter { $0.labels[Labels.podUID] == uid }
            // An evicted (or rejected) pod is never started again: its sandbox stays stopped
            // until the pod is deleted, and its controller replaces it.
            if pod.phase == "Failed" && pod["status"]["reason"].string == "Evicted" {
                for sb in mine where sb.state == .sandboxReady {
                    var s = Runtime_V1_StopPodSandboxRequest(); s.podSandboxID = sb.id
                    _ = try? await runtime.stopPodSandbox(s)
                }
                continue
            }
            if mine.isEmpty, pod["status"]["startTime"].isNull, let why = admissionRejection(pod) {
                log.warning("pod \(pod.namespace)/\(pod.name) rejected: \(why)")
                await markEvicted(pod, message: why)
                continue
            }
            do { try await syncPod(pod, sandboxes.filter { $0.labels[Labels.podUID] == uid }) } catch {
                log.info("pod \(pod.namespace)/\(pod.name): \(error)")
            }
        }
        // Sandboxes of pods that are gone (or being deleted).
        for sb in sandboxes where !wanted.contains(sb.labels[Labels.podUID] ?? "") && sb.labels[Labels.podUID] != nil {
            try await teardown(sb.id)
        }
        removeStalePodDirectories(keep: wanted)
        if proxy != nil { await syncProxy(pods) }
        await evictionPass(pods)
        volumesRefreshed = volumesRefreshed.filter { wanted.contains($0.key) }
    }

    enum Labels {
        static let podUID = "io.kubernetes.pod.uid", podName = "io.kubernetes.pod.name"
        static let podNamespace = "io.kubernetes.pod.namespace", container = "io.kubernetes.container.name"
    }

    /// Finishes a graceful deletion: preStop hooks, containers stopped within the grace period
    /// (then SIGKILL, by StopContainer's timeout), sandbox and volumes removed, the pod object deleted.
    func terminate(_ pod: JSON, _ sandboxes: [Runtime_V1_PodSandbox]) async {
        let grace = pod["metadata"]["deletionGracePeriodSeconds"].int ?? grace(pod)
        log.info("pod \(pod.namespace)/\(pod.name): stopping (grace \(grace)s)")
        for sb in sandboxes {
            var lf = Runtime_V1_ListContainersRequest(); lf.filter.podSandboxID = sb.id
            let running = ((try? await runtime.listContainers(lf))?.containers ?? []).filter { $0.state == .containerRunning }
            let podIP = await sandboxIP(sb.id)
            await withTaskGroup(of: Void.self) { g in
                for c in running {
                    let spec = (pod["spec"]["containers"].array ?? []).first { $0["name"].string == c.labels[Labels.container] }
                    g.addTask { await self.stopContainer(spec, containerID: c.id, sandboxID: sb.id, podIP: podIP, grace: grace, forget: false) }
                }
            }
            do { try await teardown(sb.id) } catch { log.info("pod \(pod.namespace)/\(pod.name): teardown: \(error)") }
        }
        removePodDirectory(pod.uid)
        do {
            try await api.delete(.pods, namespace: pod.namespace, name: pod.name, options: .init(preconditionUID: pod.uid, gracePeriodSeconds: 0))
        } catch let e as APIError where e.isNotFound {
        } catch {
            log.info("pod \(pod.namespace)/\(pod.name): delete: \(error)")
        }
    }

    func teardown(_ sandboxID: String) async throws {
        var s = Runtime_V1_StopPodSandboxRequest(); s.podSandboxID = sandboxID
        _ = try await runtime.stopPodSandbox(s)
        var r = Runtime_V1_RemovePodSandboxRequest(); r.podSandboxID = sandboxID
        _ = try await runtime.removePodSandbox(r)
        log.info("removed sandbox \(sandboxID)")
    }

    func sandboxConfig(_ pod: JSON, attempt: UInt32) -> Runtime_V1_PodSandboxConfig {
        var c = Runtime_V1_PodSandboxConfig()
        c.metadata.name = pod.name
        c.metadata.namespace = pod.namespace
        c.metadata.uid = pod["metadata"]["uid"].string ?? ""
        c.metadata.attempt = attempt
        c.hostname = pod["spec"]["hostname"].string ?? String(pod.name.prefix(63))
        c.logDirectory = o.logDirectory + "/\(pod.namespace)_\(pod.name)_\(c.metadata.uid)"
        c.labels = [Labels.podUID: c.metadata.uid, Labels.podName: pod.name, Labels.podNamespace: pod.namespace]
        for (k, v) in pod["metadata"]["labels"].object ?? [:] { if let s = v.string { c.labels[k] = s } }
        c.linux.securityContext.namespaceOptions.pid = pod["spec"]["shareProcessNamespace"].bool == true ? .pod : .container
        c.linux.securityContext.namespaceOptions.network = pod["spec"]["hostNetwork"].bool == true ? .node : .pod
        c.dnsConfig = dnsConfig(pod)
        return c
    }

    /// The pod's resolv.conf (dnsPolicy): the cluster DNS with the namespace's search path
    /// (ClusterFirst, or ClusterFirstWithHostNet for host-network pods), the pod's own
    /// dnsConfig (None), or the runtime's default (Default, or no --cluster-dns).
    func dnsConfig(_ pod: JSON) -> Runtime_V1_DNSConfig {
        var d = Runtime_V1_DNSConfig()
        let spec = pod["spec"], policy = spec["dnsPolicy"].string ?? "ClusterFirst"
        let host = spec["hostNetwork"].bool == true
        if let server = o.clusterDNS, policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host) {
            let domain = o.clusterDomain
            d.servers = [server]
            d.searches = ["\(pod.namespace).svc.\(domain)", "svc.\(domain)", domain]
            d.options = ["ndots:5"]
        }
        if policy == "None" { d = Runtime_V1_DNSConfig() }
        let own = spec["dnsConfig"]
        d.servers += (own["nameservers"].array ?? []).compactMap(\.string)
        d.searches += (own["searches"].array ?? []).compactMap(\.string)
        d.options += (own["options"].array ?? []).compactMap { o in o["name"].string.map { n in o["value"].string.map { "\(n):\($0)" } ?? n } }
        return d
    }
}
