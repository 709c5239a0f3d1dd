// ServiceIPs: ClusterIP allocation for Services from the service CIDR (default 10.96.0.0/12).
//
// Each allocated address is a key of its own in the store (resource "serviceipallocations",
// name = the address, value = the owning Service), created with the store's create-only
// semantics: two API servers (or two requests) can never hand out the same address, and a
// Service asking for an address already held is refused (422). An allocation whose Service
// does not exist (an API server died between the two writes) is reclaimed after a minute.
// The first address of the range (10.96.0.1) is left for the `kubernetes` Service.
//
// NodePorts the same way: a NodePort or LoadBalancer Service's ports without a nodePort get a
// free one from 30000-32767, each held by a key of its own ("servicenodeportallocations",
// name = the port); one asked for outside the range or held by another Service is refused
// (422). A Service's ports share one node port across protocols only when they ask for it.

import Foundation

public struct IPv4CIDR: Sendable, Equatable, CustomStringConvertible {
    public let base: UInt32
    public let prefix: Int

    public init?(_ s: String) {
        let parts = s.split(separator: "/")
        guard parts.count == 2, let p = Int(parts[1]), (8...30).contains(p), let a = Self.parse(String(parts[0])) else { return nil }
        prefix = p
        base = a & (UInt32.max << (32 - p))
    }

    public static func parse(_ s: String) -> UInt32? {
        let o = s.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard o.count == 4, s.split(separator: ".", omittingEmptySubsequences: false).count == 4 else { return nil }
        return o.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public static func format(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)" }

    public var size: UInt32 { 1 << (32 - prefix) }
    public func contains(_ a: UInt32) -> Bool { a & (UInt32.max << (32 - prefix)) == base }
    public var description: String { "\(Self.format(base))/\(prefix)" }

    public static let defaultServices = IPv4CIDR("10.96.0.0/12")!
}

extension APIRegistry {
    static let allocationResource = "serviceipallocations"
    /// Seconds before an allocation without its Service may be taken over.
    static let staleAllocation: TimeInterval = 60

    func allocationKey(_ ip: String) -> ObjectKey { ObjectKey(resource: Self.allocationResource, namespace: "", name: ip) }

    /// Whether the Service gets a ClusterIP (headless "None" and ExternalName do not).
    static func wantsClusterIP(_ svc: JSON) -> Bool {
        svc["spec"]["type"].string != "ExternalName" && svc["spec"]["clusterIP"].string != "None"
    }

    static let nodePortResource = "servicenodeportallocations"
    /// Where NodePorts come from.
    public static let nodePortRange = 30000...32767

    func nodePortKey(_ port: Int) -> ObjectKey { ObjectKey(resource: Self.nodePortResource, namespace: "", name: String(port)) }

    /// Before a Service is stored: its ClusterIP and its NodePorts.
    func allocateClusterIP(_ svc: inout JSON) async throws {
        try await allocateIP(&svc)
        do { try await allocateNodePorts(&svc) } catch {
            await releaseIP(svc)
            throw error
        }
    }

    /// The node ports of a NodePort or LoadBalancer Service: the ones asked for, checked and
    /// claimed, and a free one for each port without.
    func allocateNodePorts(_ svc: inout JSON) async throws {
        let type = svc["spec"]["type"].string ?? "ClusterIP"
        guard type == "NodePort" || type == "LoadBalancer" else { return }
        var ports = svc["spec"]["ports"].array ?? []
        var taken: [Int] = []
        do {
            for i in ports.indices {
                if let asked = ports[i]["nodePort"].int, asked != 0 {
                    guard Self.nodePortRange.contains(asked) else {
                        throw APIError.invalid(.services, svc.name, [.invalid("spec.ports[\(i)].nodePort", "\(asked)",
                                                                              "provided port is not in the valid range. The range of valid ports is \(Self.nodePortRange.lowerBound)-\(Self.nodePortRange.upperBound)")])
                    }
                    if taken.contains(asked) { continue }
                    guard try await claim(nodePortKey(asked), for: svc, holds: { Self.nodePorts($0).contains(asked) }) else {
                        throw APIError.invalid(.services, svc.name, [.invalid("spec.ports[\(i)].nodePort", "\(asked)", "provided port is already allocated")])
                    }
                    taken.append(asked)
                    continue
                }
                let size = Self.nodePortRange.count
                let start = Int.random(in: 0..<size)
                var got: Int? = nil
                for j in 0..<size {
                    let p = Self.nodePortRange.lowerBound + (start + j) % size
                    if taken.contains(p) { continue }
                    if try await claim(nodePortKey(p), for: svc, holds: { Self.nodePorts($0).contains(p) }) { got = p; break }
                }
                guard let got else { throw APIError.internalError("no free node port in \(Self.nodePortRange)") }
                taken.append(got)
                ports[i][path: "nodePort"] = .int(got)
            }
        } catch {
            for p in taken { await release(nodePortKey(p), of: svc) }
            throw error
        }
        if !ports.isEmpty { svc[path: "spec", "ports"] = .array(ports) }
    }

    static func nodePorts(_ svc: JSON) -> [Int] { (svc["spec"]["ports"].array ?? []).compactMap { $0["nodePort"].int }.filter { $0 != 0 } }

    /// Takes the address the Service asks for, or the next free one.
    func allocateIP(_ svc: inout JSON) async throws {
        guard Self.wantsClusterIP(svc) else { return }
        let cidr = serviceCIDR
        if let asked = svc["spec"]["clusterIP"].string, !asked.isEmpty {
            guard let a = IPv4CIDR.parse(asked), cidr.contains(a), a != cidr.base, a != cidr.base + cidr.size - 1 else {
                throw APIError.invalid(.services, svc.name, [.invalid("spec.clusterIP", asked, "must be an address inside the service range \(cidr)")])
            }
            guard try await claim(allocationKey(asked), for: svc, holds: { $0["spec"]["clusterIP"].string == asked }) else {
                throw APIError.invalid(.services, svc.name, [.invalid("spec.clusterIP", asked, "provided IP is already allocated")])
            }
            svc[path: "spec", "clusterIPs"] = [.string(asked)]
            return
        }
        // Start at a random offset so concurrent creators rarely race for one address.
        let usable = cidr.size - 3   // not the network, .1 (kubernetes) or broadcast
        let start = UInt32.random(in: 0..<usable)
        for i in 0..<min(usable, 4096) {
            let ip = IPv4CIDR.format(cidr.base + 2 + (start + i) % usable)
            if try await claim(allocationKey(ip), for: svc, holds: { $0["spec"]["clusterIP"].string == ip }) {
                svc[path: "spec", "clusterIP"] = .string(ip)
                svc[path: "spec", "clusterIPs"] = [.string(ip)]
                return
            }
        }
        throw APIError.internalError("no free ClusterIP in \(cidr)")
    }

    /// Creates the allocation key (an address's or a node port's); false if another Service
    /// holds it (`holds`: whether a stored Service still uses it).
    func claim(_ key: ObjectKey, for svc: JSON, holds: (JSON) -> Bool) async throws -> Bool {
        let owner: JSON = ["namespace": .string(svc.namespace), "name": .string(svc.name), "time": .double(Date().timeIntervalSince1970)]
        let value = owner.serialized()
        do {
            _ = try await store.create(key, value: value)
            return true
        } catch StoreError.alreadyExists(_) {
            guard let held = try await store.get(key), let o = try? JSON.parse(held.value) else { return false }
            if Date().timeIntervalSince1970 - (o["time"].double ?? 0) < Self.staleAllocation { return false }
            let ns = o["namespace"].string ?? "", name = o["name"].string ?? ""
            if let s = try await store.get(storeKey(.services, ns, name)), let cur = try? JSON.parse(s.value), holds(cur) {
                return false
            }
            // Its Service is gone (or holds another one): take the allocation over, if nobody else just did.
            do { _ = try await store.update(key, value: value, expectedRevision: held.modRevision); return true }
            catch StoreError.conflict(_, _, _) { return false }
        }
    }

    /// After a Service is gone (or its create failed): frees its address and node ports if it still holds them.
    func releaseClusterIP(_ svc: JSON) async {
        await releaseIP(svc)
        for p in Set(Self.nodePorts(svc)) { await release(nodePortKey(p), of: svc) }
    }

    func releaseIP(_ svc: JSON) async {
        guard let ip = svc["spec"]["clusterIP"].string, IPv4CIDR.parse(ip) != nil else { return }
        await release(allocationKey(ip), of: svc)
    }

    /// Deletes an allocation key if this Service holds it.
    func release(_ key: ObjectKey, of svc: JSON) async {
        guard let held = try? await store.get(key), let o = try? JSON.parse(held.value),
              o["namespace"].string == svc.namespace, o["name"].string == svc.name else { return }
        _ = try? await store.delete(key, expectedRevision: held.modRevision)
    }
}
