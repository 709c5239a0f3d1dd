import Foundation

/// Leader election through the API, on a `coordination.k8s.io/v1` Lease.
///
/// The Lease's `spec.holderIdentity`, `renewTime` and `leaseDurationSeconds` say who leads
/// and until when. A candidate takes the lease when it is unheld or its holder has not
/// renewed for `leaseDuration`; the leader renews every `retryPeriod`. Every write carries
/// the resourceVersion it read, so two candidates racing for an expired lease cannot both
/// win: one gets 409 Conflict. A leader that fails to renew for `renewDeadline` steps down
/// (it stops its work before another candidate can take over, since
/// renewDeadline < leaseDuration). Expiry is judged on the candidate's own clock from when
/// it last *observed* a change of the lease, so clocks need not agree.
public final class LeaderElector: @unchecked Sendable {
    public struct Config: Sendable {
        public var namespace = "kube-system"
        public var name = "moat-controller-manager"
        public var identity: String
        public var leaseDuration: Double = 15
        public var renewDeadline: Double = 10
        public var retryPeriod: Double = 2
        public init(identity: String) { self.identity = identity }
    }

    public let client: any APIClient
    public let config: Config
    private let lock = NSLock()
    /// The last lease record seen and when it was first seen (local clock). Guarded by: lock
    private var observed: (record: JSON, at: Date)?
    private var leading = false  // Guarded by: lock

    public init(client: any APIClient, config: Config) {
        self.client = client; self.config = config
    }

    public var isLeader: Bool { lock.withLock { leading } }

    /// The identity the Lease currently names, as last observed.
    public var observedHolder: String? { lock.withLock { observed?.record[path: "spec", "holderIdentity"].string } }

    /// Campaigns until elected, runs `work` while leading, and returns when leadership is
    /// lost (after cancelling `work`) or the calling task is cancelled (after releasing the
    /// lease so a standby can take over at once).
    public func run(_ work: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled {
            if (try? await tryAcquireOrRenew()) == true { break }
            try? await Task.sleep(nanoseconds: UInt64(config.retryPeriod * 1e9))
        }
        if Task.isCancelled { return }
        lock.withLock { leading = true }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await work() }
            group.addTask {
                var lastRenew = Date()
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: UInt64(self.config.retryPeriod * 1e9))
                    if Task.isCancelled { break }
                    if (try? await self.tryAcquireOrRenew()) == true { lastRenew = Date(); continue }
                    if Date().timeIntervalSince(lastRenew) > self.config.renewDeadline { break }
                }
            }
            await group.next()  // the renew loop ended (lost) or work returned
            group.cancelAll()
        }
        lock.withLock { leading = false }
        if Task.isCancelled { await release() }
    }

    /// One attempt: create the Lease, renew it if we hold it, or take it if it expired.
    /// Returns whether we hold it afterwards.
    @discardableResult
    public func tryAcquireOrRenew(now: Date = Date()) async throws -> Bool {
        let stamp = Self.microTime(now)
        guard let lease = try await client.getIfExists(.leases, namespace: config.namespace, name: config.name) else {
            let l: JSON = ["apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": ["name": .string(config.name), "namespace": .string(config.namespace)],
                           "spec": ["holderIdentity": .string(config.identity), "leaseDurationSeconds": .int(Int(config.leaseDuration)),
                                    "acquireTime": .string(stamp), "renewTime": .string(stamp), "leaseTransitions": 0]]
            do {
                let created = try await client.create(.leases, namespace: config.namespace, l)
                observe(created, now)
                return true
            } catch let e as APIError where e.isAlreadyExists { return false }
        }
        observe(lease, now)
        let holder = lease[path: "spec", "holderIdentity"].string ?? ""
        var spec = lease["spec"]
        if holder != config.identity {
            let firstSeen = lock.withLock { observed?.at } ?? now
            let duration = Double(lease[path: "spec", "leaseDurationSeconds"].int ?? Int(config.leaseDuration))
            guard holder.isEmpty || now.timeIntervalSince(firstSeen) >= duration else { return false }
            spec["holderIdentity"] = .string(config.identity)
            spec["acquireTime"] = .string(stamp)
            spec["leaseTransitions"] = .int((spec["leaseTransitions"].int ?? 0) + 1)
        }
        spec["renewTime"] = .string(stamp)
        spec["leaseDurationSeconds"] = .int(Int(config.leaseDuration))
        var updated = lease
        updated["spec"] = spec
        do {
            let written = try await client.update(.leases, updated)  // carries resourceVersion: 409 if raced
            observe(written, now)
            return true
        } catch let e as APIError where e.isConflict {
            return false
        }
    }

    /// Gives the lease up (empties the holder) if we hold it.
    public func release() async {
        guard let lease = try? await client.getIfExists(.leases, namespace: config.namespace, name: config.name),
              lease[path: "spec", "holderIdentity"].string == config.identity else { return }
        var l = lease
        l[path: "spec", "holderIdentity"] = .null
        l[path: "spec", "leaseDurationSeconds"] = 1
        _ = try? await client.update(.leases, l)
    }

    private func observe(_ lease: JSON, _ now: Date) {
        lock.withLock {
            let record = lease["spec"]
            if observed?.record != record { observed = (record, now) }
        }
    }

    static func microTime(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
        return f.string(from: d)
    }
}
