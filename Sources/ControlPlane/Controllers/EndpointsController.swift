import Foundation

/// Keeps an Endpoints object named after each Service with a selector: the IPs of the
/// selected pods (ready ones in `addresses`, others in `notReadyAddresses`) and the
/// service's ports resolved against each pod (`targetPort` by number, or by the name of a
/// container port). Pods without an IP yet or being deleted are left out. Pods that
/// resolve the same ports share a subset. Services without a selector are left alone
/// (their Endpoints are managed by hand); a deleted Service's Endpoints are deleted.
public final class EndpointsController: Sendable {
    let client: any APIClient
    let services: Informer
    public let queue = WorkQueue()
    let resync: Double

    public init(client: any APIClient, informers: InformerFactory, resync: Double = 30) {
        self.client = client
        self.services = informers.informer(.services)
        self.resync = resync
        let queue = self.queue, services = self.services
        services.addHandler { _, svc, _ in await queue.add(svc.key) }
        informers.informer(.pods).addHandler { _, pod, old in
            for svc in services.list(namespace: pod.namespace) {
                guard let sel = svc["spec"]["selector"].object, !sel.isEmpty else { continue }
                let s = LabelSelector(requirements: sel.compactMap { k, v in v.string.map { .equals(k, $0) } })
                if s.matches(pod.labels) || (old.map { s.matches($0.labels) } ?? false) { await queue.add(svc.key) }
            }
        }
    }

    public var loop: ControllerLoop {
        ControllerLoop(name: "endpoints", queue: queue, workers: 2, resyncInterval: resync,
                       resyncKeys: { [services] in services.keys }, reconcile: { [self] in try await self.reconcile($0) })
    }

    public func reconcile(_ key: String) async throws {
        let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return }
        let (ns, name) = (parts[0], parts[1])
        let existing = try await client.getIfExists(.endpoints, namespace: ns, name: name)
        guard let svc = try await client.getIfExists(.services, namespace: ns, name: name), svc.deletionTimestamp == nil else {
            if existing != nil {
                do { try await client.delete(.endpoints, namespace: ns, name: name) } catch let e as APIError where e.isNotFound {}
            }
            return
        }
        guard let sel = svc["spec"]["selector"].object, !sel.isEmpty else { return }
        let selector = LabelSelector(requirements: sel.compactMap { k, v in v.string.map { .equals(k, $0) } })
        let pods = try await client.list(.pods, namespace: ns, labelSelector: selector)
        let subsets = Self.subsets(service: svc, pods: pods)
        var ep: JSON = existing ?? ["apiVersion": "v1", "kind": "Endpoints", "metadata": ["name": .string(name), "namespace": .string(ns)]]
        let before = ep
        ep[path: "metadata", "labels"] = svc["metadata"]["labels"]
        ep["subsets"] = subsets.isEmpty ? .null : .array(subsets)
        if existing == nil {
            _ = try await client.create(.endpoints, namespace: ns, ep)  // 409 if raced: retried
        } else if ep != before {
            _ = try await client.update(.endpoints, ep)  // carries resourceVersion: 409 on a race, retried
        }
    }

    /// The Endpoints subsets for `service` over `pods` (already selected).
    public static func subsets(service: JSON, pods: [JSON]) -> [JSON] {
        var groups: [JSON: (ready: [JSON], notReady: [JSON])] = [:]
        for pod in pods.sorted(by: { $0.name < $1.name }) {
            guard pod.deletionTimestamp == nil, let ip = pod["status"]["podIP"].string, !ip.isEmpty,
                  pod.phase != "Succeeded", pod.phase != "Failed" else { continue }
            var ports: [JSON] = []
            for sp in service["spec"]["ports"].array ?? [] {
                guard let port = resolve(sp["targetPort"].isNull ? sp["port"] : sp["targetPort"], in: pod) else { continue }
                var p: JSON = ["port": .int(port), "protocol": sp["protocol"].isNull ? "TCP" : sp["protocol"]]
                if let n = sp["name"].string, !n.isEmpty { p["name"] = .string(n) }
                ports.append(p)
            }
            let key = JSON.array(ports)
            var addr: JSON = ["ip": .string(ip),
                              "targetRef": ["kind": "Pod", "namespace": .string(pod.namespace), "name": .string(pod.name), "uid": .string(pod.uid)]]
            if let node = pod.nodeName { addr["nodeName"] = .string(node) }
            var g = groups[key] ?? ([], [])
            if Pods.isReady(pod) { g.ready.append(addr) } else { g.notReady.append(addr) }
            groups[key] = g
        }
        return groups.sorted { $0.key.text < $1.key.text }.map { ports, g in
            var s: JSON = [:]
            if !g.ready.isEmpty { s["addresses"] = .array(g.ready) }
            if !g.notReady.isEmpty { s["notReadyAddresses"] = .array(g.notReady) }
            if case .array(let a) = ports, !a.isEmpty { s["ports"] = ports }
            return s
        }
    }

    /// A target port: a number, or the name of a container port on the pod.
    static func resolve(_ target: JSON, in pod: JSON) -> Int? {
        if let n = target.int { return n }
        if let s = target.string {
            if let n = Int(s) { return n }
            for c in pod["spec"]["containers"].array ?? [] {
                for p in c["ports"].array ?? [] where p["name"].string == s { return p["containerPort"].int }
            }
        }
        return nil
    }
}
