// ServiceIPs: ClusterIP allocation for Services from the service CIDR (default 10.96.0.0/12).
//
// Each allocated address is a key of its own in the store (resource "serviceipallocations",
// name = the address, value = the owning Service), created with the store's create-only
// semantics: two API servers (or two requests) can never hand out the same address, and a
// Service asking for an address already held is refused (422). An allocation whose Service
// does not exist (an API server died between the two writes) is reclaimed after a minute.
// The first address of the range (10.96.0.1) is left for the `kubernetes` Service.

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

    /// Before a Service is stored: takes the address it asks for, or the next free one.
    func allocateClusterIP(_ svc: inout JSON) async throws {
        guard Self.wantsClusterIP(svc) else { return }
        let cidr = serviceCIDR
        if let asked = svc["spec"]["clusterIP"].string, !asked.isEmpty {
            guard let a = IPv4CIDR.parse(asked), cidr.contains(a), a != cidr.base, a != cidr.base + cidr.size - 1 else {
                throw APIError.invalid(.services, svc.name, [.invalid("spec.clusterIP", asked, "must be an address inside the service range \(cidr)")])
            }
            guard try await claim(asked, for: svc) else {
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
            if try await claim(ip, for: svc) {
                svc[path: "spec", "clusterIP"] = .string(ip)
                svc[path: "spec", "clusterIPs"] = [.string(ip)]
                return
            }
        }
        throw APIError.internalError("no free ClusterIP in \(cidr)")
    }

    /// Creates the allocation key; false if another Service holds the address.
    func claim(_ ip: String, for svc: JSON) async throws -> Bool {
        let owner: JSON = ["namespace": .string(svc.namespace), "name": .string(svc.name), "time": .double(Date().timeIntervalSince1970)]
        let value = owner.serialized()
        do {
            _ = try await store.create(allocationKey(ip), value: value)
            return true
        } catch StoreError.alreadyExists(_) {
            guard let held = try await store.get(allocationKey(ip)), let o = try? JSON.parse(held.value) else { return false }
            if Date().timeIntervalSince1970 - (o["time"].double ?? 0) < Self.staleAllocation { return false }
            let ns = o["namespace"].string ?? "", name = o["name"].string ?? ""
            if let s = try await store.get(storeKey(.services, ns, name)), let cur = try? JSON.parse(s.value), cur["spec"]["clusterIP"].string == ip {
                return false
            }
            // Its Service is gone (or holds another address): take the allocation over, if nobody else just did.
            do { _ = try await store.update(allocationKey(ip), value: value, expectedRevision: held.modRevision); return true }
            catch StoreError.conflict(_, _, _) { return false }
        }
    }

    /// After a Service is gone (or its create failed): frees its address if it still holds it.
    func releaseClusterIP(_ svc: JSON) async {
        guard let ip = svc["spec"]["clusterIP"].string, IPv4CIDR.parse(ip) != nil,
              let held = try? await store.get(allocationKey(ip)), let o = try? JSON.parse(held.value),
              o["namespace"].string == svc.namespace, o["name"].string == svc.name else { return }
        _ = try? await store.delete(allocationKey(ip), expectedRevision: held.modRevision)
    }
}
