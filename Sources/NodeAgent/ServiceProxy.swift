// The node's service proxy: what kube-proxy is to a Kubernetes node, without a rule in the
// host's kernel. Pods' sockets are host sockets in each pod's own network namespace (the
// Sentry's), so the proxy works there:
// - In every pod namespace on this node, the service CIDR is a local route on the pod's `lo`
//   (`ip route replace local CIDR dev lo`, run inside the namespace). A ClusterIP therefore
//   never leaves the pod: where the proxy listens, the connection reaches it; anywhere else it
//   is refused at once, locally (no egress path ever carries it).
// - For each Service port with a ClusterIP, a listener on CLUSTERIP:PORT (TCP or UDP) inside
//   each pod's namespace; connections go round-robin to the ready endpoints (Endpoints
//   objects), the next one tried when one does not answer. An endpoint with a pod IP is
//   reached from the node's namespace; one on 127.0.0.1 (a pod with loopback only) on this
//   node is reached inside that pod's namespace.
// - The cluster DNS: pods' resolv.conf names an address in the service CIDR (--cluster-dns,
//   the kube-dns Service's ClusterIP); the proxy listens there (UDP and TCP port 53) in each
//   pod and relays to the DNS server (--dns-upstream), which the node's namespace reaches.
// - NodePort: a listener on 0.0.0.0:NODEPORT in the node's namespace.
// What it leaves behind: nothing outside pods. Its listeners are sockets of the agent; a
// pod's route lives in the pod's namespace and goes with the pod. ProxyRelay.swift holds
// the sockets and the byte pumps.

import CRIAPI
import ControlPlane
import Foundation
import Logging

final class ServiceProxy: @unchecked Sendable {
    /// A listener's identity: where it listens (nil netns: the node's namespace).
    struct Key: Hashable, Sendable {
        var netns: String?
        var ip: String
        var port: Int
        var udp: Bool
    }
    /// A pod of this node as the proxy sees it.
    struct LocalPod: Sendable {
        var uid: String
        var netns: String
    }

    let serviceCIDR: String
    let dnsIP: String?
    let dnsUpstream: ProxyBackend?
    let log: Logger
    private let lock = NSLock()
    /// Rule name ("ns/svc:port/proto") to its backends. Guarded by: lock
    private var backends: [String: [ProxyBackend]] = [:]
    /// Round-robin positions. Guarded by: lock
    private var next: [String: Int] = [:]
    /// Worker queue only:
    private var listeners: [Key: (rule: String, listener: ProxyListener)] = [:]
    private var routed = Set<String>()
    private var failed: [Key: Date] = [:]
    private let queue = DispatchQueue(label: "moat.node.proxy")
    private var busy = false

    init(serviceCIDR: String, dnsIP: String?, dnsUpstream: ProxyBackend?, log: Logger) {
        self.serviceCIDR = serviceCIDR; self.dnsIP = dnsIP; self.dnsUpstream = dnsUpstream; self.log = log
    }

    /// The backends of a rule, rotated one further on each call.
    func candidates(_ rule: String) -> [ProxyBackend] {
        lock.withLock {
            guard let all = backends[rule], !all.isEmpty else { return [] }
            let i = (next[rule] ?? 0) % all.count
            next[rule] = i + 1
            return Array(all[i...] + all[..<i])
        }
    }

    /// The wanted listeners and backends for these Services, Endpoints and pods.
    static func plan(services: [JSON], endpoints: [JSON], pods: [LocalPod], dnsIP: String?, dnsUpstream: ProxyBackend?)
        -> (listeners: [Key: String], backends: [String: [ProxyBackend]]) {
        var listeners: [Key: String] = [:], backends: [String: [ProxyBackend]] = [:]
        let netnsOf = Dictionary(pods.map { ($0.uid, $0.netns) }, uniquingKeysWith: { a, _ in a })
        var eps: [String: JSON] = [:]
        for e in endpoints { eps["\(e.namespace)/\(e.name)"] = e }
        for svc in services where svc.deletionTimestamp == nil {
            let spec = svc["spec"]
            let ip = spec["clusterIP"].string ?? ""
            let hasIP = !ip.isEmpty && ip != "None"
            for sp in spec["ports"].array ?? [] {
                guard let port = sp["port"].int else { continue }
                let proto = sp["protocol"].string ?? "TCP"
                guard proto == "TCP" || proto == "UDP" else { continue }
                let udp = proto == "UDP"
                let rule = "\(svc.namespace)/\(svc.name):\(port)/\(proto)"
                let name = sp["name"].string ?? ""
                var list: [ProxyBackend] = []
                for subset in eps["\(svc.namespace)/\(svc.name)"]?["subsets"].array ?? [] {
                    let ports = subset["ports"].array ?? []
                    var target = ports.first(where: { ($0["name"].string ?? "") == name && ($0["protocol"].string ?? "TCP") == proto })
                    if target == nil && ports.count == 1 && name.isEmpty { target = ports[0] }
                    guard let tp = target?["port"].int else { continue }
                    for a in subset["addresses"].array ?? [] {
                        guard let aip = a["ip"].string else { continue }
                        if aip == "127.0.0.1" {
                            // A pod with loopback only: reachable only here, inside its namespace.
                            guard let uid = a["targetRef"]["uid"].string, let ns = netnsOf[uid] else { continue }
                            list.append(ProxyBackend(ip: aip, port: tp, netns: ns))
                        } else {
                            list.append(ProxyBackend(ip: aip, port: tp, netns: nil))
                        }
                    }
                }
                backends[rule] = list
                if hasIP {
                    for p in pods { listeners[Key(netns: p.netns, ip: ip, port: port, udp: udp)] = rule }
                }
                if let np = sp["nodePort"].int, np > 0 {
                    listeners[Key(netns: nil, ip: "0.0.0.0", port: np, udp: udp)] = rule
                }
            }
        }
        if let dnsIP, let up = dnsUpstream {
            backends["dns"] = [up]
            for p in pods {
                for udp in [true, false] { listeners[Key(netns: p.netns, ip: dnsIP, port: 53, udp: udp)] = "dns" }
            }
        }
        return (listeners, backends)
    }

    /// Brings the proxy to the state for these objects and pods, in the background (a pass
    /// still running is not queued again: the next sync brings the then current state).
    func update(services: [JSON], endpoints: [JSON], pods: [LocalPod]) {
        let (want, bes) = Self.plan(services: services, endpoints: endpoints, pods: pods, dnsIP: dnsIP, dnsUpstream: dnsUpstream)
        lock.withLock { backends = bes }
        let starting: Bool = lock.withLock { if busy { return false }; busy = true; return true }
        guard starting else { return }
        let live = Set(pods.map(\.netns))
        queue.async { [self] in
            defer { lock.withLock { busy = false } }
            reconcile(want, liveNetns: live)
        }
    }

    /// Worker queue only.
    private func reconcile(_ want: [Key: String], liveNetns: Set<String>) {
        // Gone first, so a namespace is not held open by a listener of a pod that left.
        for (k, l) in listeners where want[k] != l.rule {
            l.listener.stop()
            listeners[k] = nil
        }
        routed = routed.filter { liveNetns.contains($0) }
        failed = failed.filter { Date().timeIntervalSince($0.value) < 5 }
        for (k, rule) in want where listeners[k] == nil && failed[k] == nil {
            if let ns = k.netns, !routed.contains(ns) {
                guard addLocalRoute(ns) else { failed[k] = Date(); continue }
                routed.insert(ns)
            }
            guard let fd = ProxySockets.listen(k.netns, ip: k.ip, port: k.port, udp: k.udp) else {
                failed[k] = Date()
                log.info("service proxy: cannot listen on \(k.ip):\(k.port)\(k.udp ? "/udp" : "") in \(k.netns ?? "the node's namespace"): errno \(errno)")
                continue
            }
            let l = ProxyListener(fd: fd, udp: k.udp) { [weak self] in self?.candidates(rule) ?? [] }
            l.start()
            listeners[k] = (rule, l)
        }
    }

    /// The service CIDR as a local route on the pod's loopback (inside its namespace only).
    private func addLocalRoute(_ netns: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["--net=" + netns, "ip", "route", "replace", "local", serviceCIDR, "dev", "lo", "table", "local"]
        p.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let err = Pipe()
        p.standardError = err; p.standardOutput = FileHandle.nullDevice; p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { log.info("service proxy: nsenter: \(error)"); return false }
        let msg = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            log.info("service proxy: route in \(netns): \(String(decoding: msg, as: UTF8.self))")
            return false
        }
        return true
    }

    /// Closes every listener (the agent is stopping).
    func stopAll() {
        queue.sync {
            for l in listeners.values { l.listener.stop() }
            listeners.removeAll()
        }
    }
}

extension NodeAgent {
    static func makeProxy(_ o: NodeAgentOptions, log: Logger) -> ServiceProxy? {
        guard let cidr = o.serviceCIDR else { return nil }
        var upstream: ProxyBackend? = nil
        if let u = o.dnsUpstream, let i = u.lastIndex(of: ":"), let port = Int(u[u.index(after: i)...]) {
            upstream = ProxyBackend(ip: String(u[..<i]), port: port, netns: nil)
        }
        return ServiceProxy(serviceCIDR: cidr, dnsIP: o.clusterDNS, dnsUpstream: upstream, log: log)
    }

    /// One proxy pass: the Services, their Endpoints and this node's ready pod sandboxes
    /// (host-network pods use the node's namespace and get no listeners of their own).
    func syncProxy(_ pods: [JSON]) async {
        guard let proxy else { return }
        do {
            let services = try await api.list(.services, namespace: nil, options: ListOptions())["items"].array ?? []
            let endpoints = try await api.list(.endpoints, namespace: nil, options: ListOptions())["items"].array ?? []
            let hostNet = Set(pods.filter { $0["spec"]["hostNetwork"].bool == true }.map(\.uid))
            let sandboxes = try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items
            var local: [ServiceProxy.LocalPod] = []
            var seen: [String: String] = [:]
            for sb in sandboxes where sb.state == .sandboxReady {
                guard let uid = sb.labels[Labels.podUID], !hostNet.contains(uid) else { continue }
                var ns = sandboxNamespaces[sb.id]
                if ns == nil { ns = await sandboxNetns(sb.id) }
                guard let ns else { continue }
                seen[sb.id] = ns
                local.append(.init(uid: uid, netns: ns))
            }
            sandboxNamespaces = seen
            proxy.update(services: services, endpoints: endpoints, pods: local)
        } catch {
            log.info("service proxy: \(error)")
        }
    }
}
