import Foundation
import EtcdAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import HTTP2Ping
import SwiftProtobuf

/// `Store` backend on an etcd v3 cluster, spoken through etcd's own gRPC API (the KV and
/// Watch services of `etcdserverpb`, stubs in the EtcdAPI module) over HTTP/2, in plain
/// text for `http://` endpoints and TLS for `https://` ones.
///
/// Mapping:
/// - key = `<prefix>/<resource>/<namespace>/<name>` (namespace empty for cluster-scoped);
/// - the store revision *is* the etcd revision, so `resourceVersion` = etcd `mod_revision`;
/// - create = Txn(If create_revision == 0 [and the parent's create_revision > 0] then Put
///   else Range [and count the parent]), update/delete =
///   Txn(If mod_revision == expected (or create_revision > 0 when unconditional) then
///   Put/Delete with prev_kv else Range); a failed compare becomes `.notFound`,
///   `.alreadyExists` or `.conflict` from the Range result;
/// - list = Range over the prefix; the response header's revision is the list revision;
/// - watch(fromRevision: r) = Watch(start_revision r+1, prev_kv); a compacted start
///   revision is reported by etcd as a cancelled watch carrying `compact_revision`, which
///   becomes `.revisionCompacted` (HTTP 410 in the API).
///
/// History is dropped only by `compact(toRevision:)`; an unattended cluster should run
/// etcd with `--auto-compaction-retention` (watches from before the compaction get 410).
///
/// Several endpoints (members of one cluster) are used one at a time: every request goes
/// to the current member, and a request that fails because that member is unreachable or
/// cannot serve it (gRPC `unavailable` or `deadlineExceeded`: stopped, no leader, leader
/// changed) moves the store to the next member and is retried there, with backoff, for
/// up to `retryWindow`. A write whose first attempt may have been applied before the
/// member went away is recognised on retry by its *write marker* (below), never by its bytes
/// alone: two writers that read the same object and make the same change send the same
/// bytes, and taking the other's write for one's own loses an update. A watch whose
/// member goes away is re-established on the next one from the revision after the last
/// event it delivered, so its consumer sees one unbroken, gap-free stream.
///
/// Write markers: every write's transaction also puts a fresh sequence number (its nonce)
/// under `<prefix>-meta/writers/<store id>`, a key only this store instance writes, attached
/// to the shared lease for `markerTTL` (`lease(for:)`, as expiring keys use, so the key of a
/// store that is gone expires; a write that meets an expired lease is rejected whole and
/// retried with a new one). Watches and lists under `<prefix>/` never see these keys. When a retried write
/// finds the key changed in a way its own first attempt could explain, the marker's value
/// at that revision (a Range at the revision) says whether that attempt was applied: only
/// that attempt put its nonce. Costs one more Put in each write's transaction.
///
/// One `GRPCClient` (one HTTP/2 connection) per member, running for the store's lifetime;
/// watches are streams on the same connections. Mutable state (current member, watch
/// tasks, closed flag) is guarded by `lock`.
public final class EtcdStore: Store, @unchecked Sendable {
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var secure: Bool
    }

    /// PEM files for `https://` endpoints: the CA that signed the members' certificates
    /// (system roots if nil) and, for etcd's `--client-cert-auth`, a client certificate.
    public struct TLSFiles: Sendable {
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile; self.certFile = certFile; self.keyFile = keyFile
        }
    }

    typealias Transport = HTTP2ClientTransport.Posix

    /// One cluster member: its client connection and the stubs on it.
    final class Member: Sendable {
        let endpoint: Endpoint
        let client: GRPCClient<Transport>
        let kv: Etcdserverpb_KV.Client<Transport>
        let watch: Etcdserverpb_Watch.Client<Transport>
        let lease: Etcdserverpb_Lease.Client<Transport>
        init(_ endpoint: Endpoint, tls: TLSFiles) throws {
            self.endpoint = endpoint
            var v4 = in_addr()
            let target: any ResolvableTarget
            if inet_pton(AF_INET, endpoint.host, &v4) == 1 { target = ResolvableTargets.IPv4(addresses: [.init(host: endpoint.host, port: endpoint.port)]) }
            else if endpoint.host.contains(":") { target = ResolvableTargets.IPv6(addresses: [.init(host: endpoint.host, port: endpoint.port)]) }
            else { target = ResolvableTargets.DNS(host: endpoint.host, port: endpoint.port) }
            var config = Transport.Config.defaults
            // A member that comes back is reconnected to within two seconds.
            config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
            // A member that stops answering (rather than closing its connection) is noticed.
            config.connection.keepalive = .init(time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: false)
            // etcd's PINGs are answered before swift-nio-http2 counts them (see HTTP2PingAnswerer).
            config.channelDebuggingCallbacks.onCreateTCPConnection = { HTTP2PingAnswerer.install(on: $0, role: .client) }
            var security = Transport.TransportSecurity.plaintext
            if endpoint.secure {
                var t = Transport.TransportSecurity.TLS.defaults()
                if let ca = tls.caFile { t.trustRoots = .certificates([.file(path: ca, format: .pem)]) }
                if let cert = tls.certFile, let key = tls.keyFile {
                    t.certificateChain = [.file(path: cert, format: .pem)]
                    t.privateKey = .file(path: key, format: .pem)
                }
                security = .tls(t)
            }
            let transport = try Transport(target: target, transportSecurity: security, config: config)
            client = GRPCClient(transport: transport)
            kv = Etcdserverpb_KV.Client(wrapping: client)
            watch = Etcdserverpb_Watch.Client(wrapping: client)
            lease = Etcdserverpb_Lease.Client(wrapping: client)
        }
    }

    public let endpoints: [Endpoint]
    public let prefix: String
    /// How long a request keeps trying other members before it fails.
    public var retryWindow: Duration = .seconds(30)
    let members: [Member]
    private let lock = NSLock()
    private var current = 0                              // Guarded by: lock
    private var watches: [UUID: Task<Void, Never>] = [:] // Guarded by: lock
    private var isClosed = false                         // Guarded by: lock
    private var runners: [Task<Void, Never>] = []        // Guarded by: lock
    /// The lease keys written with a TTL share, per TTL, and until when it is handed out.
    private var leases: [Duration: (id: Int64, until: ContinuousClock.Instant)] = [:]  // Guarded by: lock
    /// The grant under way per TTL, which writes that find no current lease wait for.
    private var granting: [Duration: Task<Int64, Error>] = [:]  // Guarded by: lock
    /// This store's write-marker key, the last nonce handed out and the marker's lease.
    let markerKey: Data
    private var markerSeq: Int64 = 0                                          // Guarded by: lock
    public var markerTTL: Duration = .seconds(600)
    /// Attempts that failed over to another member (or the same one again), for tests and debugging.
    private var failedAttempts = 0                      // Guarded by: lock
    var failedAttemptCount: Int { lock.withLock { failedAttempts } }
    /// Leases this store has had granted, for tests and debugging.
    private var grants = 0                              // Guarded by: lock
    var leaseGrantCount: Int { lock.withLock { grants } }
    /// Tests only: runs before (`sent: false`) and after (`sent: true`) each attempt of a
    /// request; an `RPCError(code: .unavailable)` thrown there looks like the member going away
    /// before the request reached it, or after it was applied but before the answer came.
    var attemptHook: (@Sendable (_ what: String, _ attempt: Int, _ sent: Bool) async throws -> Void)?

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    /// `endpoints` are URLs like `http://127.0.0.1:2379` or `https://etcd-1:2379`
    /// (comma-separated lists are split; a bare host:port is plain text).
    public init(endpoints: [String], prefix: String = "/registry", tls: TLSFiles = TLSFiles()) throws {
        var eps: [Endpoint] = []
        for raw in endpoints.flatMap({ $0.split(separator: ",").map(String.init) }) {
            var s = raw.trimmingCharacters(in: .whitespaces)
            var secure = false
            if s.hasPrefix("https://") { s.removeFirst(8); secure = true }
            else if s.hasPrefix("http://") { s.removeFirst(7) }
            while s.hasSuffix("/") { s.removeLast() }
            guard let i = s.lastIndex(of: ":"), let port = Int(s[s.index(after: i)...]) else {
                throw Failure(description: "\(raw): expected http://host:port or https://host:port")
            }
            var host = String(s[..<i])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            eps.append(Endpoint(host: host, port: port, secure: secure))
        }
        guard !eps.isEmpty else { throw Failure(description: "no etcd endpoints given") }
        self.endpoints = eps
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        self.markerKey = Data("\(self.prefix)-meta/writers/\(UUID().uuidString)".utf8)
        self.members = try eps.map { try Member($0, tls: tls) }
        runners = members.map { m in Task { do { try await m.client.runConnections() } catch {} } }
    }

    deinit { close() }

    // MARK: Keys

    func etcdKey(_ key: ObjectKey) -> String { "\(prefix)/\(key.resource)/\(key.namespace)/\(key.name)" }

    func rangePrefix(resource: String, namespace: String?) -> String {
        namespace.map { "\(prefix)/\(resource)/\($0)/" } ?? "\(prefix)/\(resource)/"
    }

    func objectKey(_ etcdKey: String) -> ObjectKey? {
        guard etcdKey.hasPrefix(prefix + "/") else { return nil }
        let parts = etcdKey.dropFirst(prefix.count + 1).split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        return ObjectKey(resource: String(parts[0]), namespace: String(parts[1]), name: String(parts[2]))
    }

    /// The smallest key greater than every key starting with `p` (etcd's range_end for a prefix).
    static func prefixEnd(_ p: String) -> Data {
        var b = Array(p.utf8)
        while let last = b.last {
            if last < 0xFF { b[b.count - 1] = last + 1; return Data(b) }
            b.removeLast()
        }
        return Data([0])
    }

    // MARK: Transport

    private func member() -> Member { lock.withLock { members[current % members.count] } }

    /// Moves on from `m` unless another request already has.
    private func failOver(from m: Member) {
        lock.withLock { if members[current % members.count] === m { current += 1 } }
    }

    private var closed: Bool { lock.withLock { isClosed } }

    /// Errors after which another member may succeed.
    static func retryable(_ error: Error) -> Bool {
        guard let e = error as? RPCError else { return false }
        return e.code == .unavailable || e.code == .deadlineExceeded
    }

    static let callOptions: CallOptions = {
        var o = CallOptions.defaults
        o.timeout = .seconds(10)
        o.waitForReady = false  // a member that is down fails at once, and the next is tried
        return o
    }()

    /// Runs `body` against the current member, failing over to the next on retryable
    /// errors until `retryWindow` has passed. `body` is told whether an earlier attempt
    /// failed in a way that leaves its effect unknown.
    func withFailover<R>(_ what: String, _ body: (Member, _ retried: Bool) async throws -> R) async throws -> R {
        let start = ContinuousClock.now
        var delay = Duration.milliseconds(50)
        var attempt = 0
        while true {
            if closed { throw StoreError.closed }
            let m = member()
            do {
                try await attemptHook?(what, attempt, false)
                let r = try await body(m, attempt > 0)
                try await attemptHook?(what, attempt, true)
                return r
            } catch where Self.retryable(error) {
                lock.withLock { failedAttempts += 1 }
                failOver(from: m)
                attempt += 1
                if ContinuousClock.now - start > retryWindow {
                    throw Failure(description: "etcd \(what): no member answered within \(retryWindow): \(error)")
                }
                // A full round over the members without success: wait before the next.
                if attempt % members.count == 0 {
                    try await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(1))
                }
            }
        }
    }

    // MARK: Decoding

    func storedObject(_ kv: Mvccpb_KeyValue) -> StoredObject? {
        guard let key = objectKey(String(decoding: kv.key, as: UTF8.self)) else { return nil }
        return StoredObject(key: key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision)
    }

    // MARK: Reads

    private func range(_ what: String, _ req: Etcdserverpb_RangeRequest) async throws -> Etcdserverpb_RangeResponse {
        try await withFailover(what) { m, _ in try await m.kv.range(req, options: Self.callOptions) }
    }

    public func get(_ key: ObjectKey) async throws -> StoredObject? {
        var req = Etcdserverpb_RangeRequest()
        req.key = Data(etcdKey(key).utf8)
        return try await range("get", req).kvs.first.flatMap(storedObject)
    }

    public func list(resource: String, namespace: String?) async throws -> (items: [StoredObject], revision: Int64) {
        let p = rangePrefix(resource: resource, namespace: namespace)
        var req = Etcdserverpb_RangeRequest()
        req.key = Data(p.utf8)
        req.rangeEnd = Self.prefixEnd(p)
        let r = try await range("list", req)
        let items = r.kvs.compactMap(storedObject)
            .sorted { ($0.key.namespace, $0.key.name) < ($1.key.namespace, $1.key.name) }
        return (items, r.header.revision)
    }

    public func currentRevision() async throws -> Int64 {
        var req = Etcdserverpb_RangeRequest()
        req.key = Data((prefix + "/").utf8)
        req.countOnly = true
        return try await range("revision", req).header.revision
    }

    private var compactMarkKey: Data { Data((prefix + "-meta/compacted").utf8) }

    /// etcd does not report its compaction point through the KV API; this returns the
    /// highest revision this store compacted to (persisted under `<prefix>-meta/compacted`).
    public func compactedRevision() async throws -> Int64 {
        var req = Etcdserverpb_RangeRequest()
        req.key = compactMarkKey
        guard let kv = try await range("compaction mark", req).kvs.first else { return 0 }
        return Int64(String(decoding: kv.value, as: UTF8.self)) ?? 0
    }

    /// Drops history so that watches may resume only from `revision` on. A revision that
    /// etcd has already compacted past (say by its own auto-compaction) is not an error.
    public func compact(toRevision revision: Int64) async throws {
        let cur = try await compactedRevision()
        guard revision > cur else { return }
        var req = Etcdserverpb_CompactionRequest()
        req.revision = revision
        req.physical = true
        do {
            _ = try await withFailover("compact") { m, _ in try await m.kv.compact(req, options: Self.callOptions) }
        } catch let e as RPCError where e.code == .outOfRange && e.message.contains("compacted") {
            // already compacted at or after `revision`
        }
        var mark = Etcdserverpb_PutRequest()
        mark.key = compactMarkKey
        mark.value = Data(String(revision).utf8)
        _ = try await withFailover("compaction mark") { m, _ in try await m.kv.put(mark, options: Self.callOptions) }
    }

    // MARK: Writes

    private func nextNonce() -> Data { Data(String(lock.withLock { markerSeq += 1; return markerSeq }).utf8) }

    /// Whether the write marker held `nonce` at `revision`: true or false, or nil when that
    /// revision has been compacted away and the question cannot be answered.
    private func markerHeld(_ nonce: Data, at revision: Int64) async throws -> Bool? {
        var req = Etcdserverpb_RangeRequest()
        req.key = markerKey
        req.revision = revision
        do {
            return try await range("write marker", req).kvs.first?.value == nonce
        } catch let e as RPCError where e.code == .outOfRange {
            return nil
        }
    }

    /// One compare-and-op transaction on `key`, which also puts `nonce` in the write marker.
    /// On failure the Range of `key` tells why (and, when `parent` is given, whether
    /// `parent` exists: `compare` then includes the check that it does).
    private func txn(_ what: String, _ key: Data, compare: [Etcdserverpb_Compare], success: Etcdserverpb_RequestOp, nonce: Data, parent: Data? = nil)
        async throws -> (ok: Bool, revision: Int64, response: Etcdserverpb_ResponseOp?, current: StoredObject?, parentExists: Bool, retried: Bool) {
        var req = Etcdserverpb_TxnRequest()
        req.compare = compare
        var get = Etcdserverpb_RangeRequest()
        get.key = key
        var failure = Etcdserverpb_RequestOp()
        failure.requestRange = get
        req.failure = [failure]
        if let parent {
            req.failure.append(.with { $0.requestRange = .with { $0.key = parent; $0.countOnly = true } })
        }
        var markerLease = try await lease(for: markerTTL)
        var leaseRetried = false
        while true {
            req.success = [success, Self.putOp(markerKey, nonce, prevKv: false, lease: markerLease)]
            do {
                return try await withFailover(what) { m, retried in
                    let r = try await m.kv.txn(req, options: Self.callOptions)
                    let first = r.responses.first
                    let current = r.succeeded ? nil : first?.responseRange.kvs.first.flatMap(storedObject)
                    let parentExists = r.succeeded || parent == nil || (r.responses.count > 1 && r.responses[1].responseRange.count > 0)
                    return (r.succeeded, r.header.revision, first, current, parentExists, retried)
                }
            } catch let e as RPCError where e.code == .notFound && e.message.contains("lease not found") && !leaseRetried {
                // The marker's lease expired (the store was stopped or starved for minutes):
                // etcd rejected the whole transaction, so it is safe to send it again.
                leaseRetried = true
                forgetLease(markerLease, ttl: markerTTL)
                markerLease = try await lease(for: markerTTL)
            }
        }
    }

    private static func compare(_ key: Data, _ target: Etcdserverpb_Compare.CompareTarget,
                                _ result: Etcdserverpb_Compare.CompareResult, _ revision: Int64) -> Etcdserverpb_Compare {
        var c = Etcdserverpb_Compare()
        c.key = key
        c.target = target
        c.result = result
        if target == .create { c.createRevision = revision } else { c.modRevision = revision }
        return c
    }

    public func create(_ key: ObjectKey, value: Data) async throws -> StoredObject {
        try await create(key, value: value, parent: nil)
    }

    public func create(_ key: ObjectKey, value: Data, ttl: Duration?, parent: ObjectKey) async throws -> StoredObject {
        guard let ttl else { return try await create(key, value: value, parent: parent) }
        return try await withLease(ttl) { try await create(key, value: value, parent: parent) }
    }

    /// The create transaction: the key must not exist, and `parent`, when given, must.
    private func create(_ key: ObjectKey, value: Data, parent: ObjectKey?) async throws -> StoredObject {
        let k = Data(etcdKey(key).utf8)
        let p = parent.map { Data(etcdKey($0).utf8) }
        var compare = [Self.compare(k, .create, .equal, 0)]
        if let p { compare.append(Self.compare(p, .create, .greater, 0)) }
        let nonce = nextNonce()
        let t = try await txn("create", k, compare: compare, success: Self.putOp(k, value, prevKv: false), nonce: nonce, parent: p)
        if !t.ok, t.retried, let cur = t.current, cur.value == value, cur.createRevision == cur.modRevision,
           try await markerHeld(nonce, at: cur.createRevision) != false {
            // The attempt that lost its member had been applied. (Where the history is
            // compacted, the bytes decide: a created object carries its own uid.)
            return cur
        }
        if !t.ok, let parent, !t.parentExists { throw StoreError.notFound(parent) }
        guard t.ok else { throw StoreError.alreadyExists(key) }
        return StoredObject(key: key, value: value, createRevision: t.revision, modRevision: t.revision)
    }

    /// A put of `value` at `key`, attached to `lease`, by default to the task's `putLease` (none
    /// outside `withLease`: a put without a lease detaches the key from any it had, as etcd does).
    private static func putOp(_ key: Data, _ value: Data, prevKv: Bool, lease: Int64? = nil) -> Etcdserverpb_RequestOp {
        let lease = lease ?? putLease
        return .with { $0.requestPut = .with { $0.key = key; $0.value = value; $0.prevKv = prevKv; $0.lease = lease } }
    }

    /// The compare guarding an update or delete: exact revision, or mere existence.
    private static func guardCompare(_ k: Data, _ expectedRevision: Int64?) -> Etcdserverpb_Compare {
        if let expectedRevision { return compare(k, .mod, .equal, expectedRevision) }
        return compare(k, .create, .greater, 0)
    }

    private func failure(_ key: ObjectKey, _ expectedRevision: Int64?, _ current: StoredObject?) -> StoreError {
        guard let current else { return .notFound(key) }
        return .conflict(key, expected: expectedRevision ?? 0, actual: current.modRevision)
    }

    public func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?) async throws -> StoredObject {
        let k = Data(etcdKey(key).utf8)
        let nonce = nextNonce()
        let t = try await txn("update", k, compare: [Self.guardCompare(k, expectedRevision)], success: Self.putOp(k, value, prevKv: true), nonce: nonce)
        if !t.ok, t.retried, let cur = t.current, cur.value == value, cur.modRevision > (expectedRevision ?? 0) {
            switch try await markerHeld(nonce, at: cur.modRevision) {
            case true?: return cur  // the attempt that lost its member had been applied
            case false?: break      // another writer made the same change: a real conflict
            case nil:
                throw Failure(description: "etcd update of \(key): the outcome of an attempt whose member went away is unknown (the history that would tell has been compacted)")
            }
        }
        guard t.ok else { throw failure(key, expectedRevision, t.current) }
        let prev = t.response.flatMap { $0.responsePut.hasPrevKv ? storedObject($0.responsePut.prevKv) : nil }
        return StoredObject(key: key, value: value, createRevision: prev?.createRevision ?? t.revision, modRevision: t.revision)
    }

    public func delete(_ key: ObjectKey, expectedRevision: Int64?) async throws -> StoredObject {
        let k = Data(etcdKey(key).utf8)
        var del = Etcdserverpb_DeleteRangeRequest()
        del.key = k
        del.prevKv = true
        var op = Etcdserverpb_RequestOp()
        op.requestDeleteRange = del
        let nonce = nextNonce()
        let t = try await txn("delete", k, compare: [Self.guardCompare(k, expectedRevision)], success: op, nonce: nonce)
        if !t.ok, t.retried, t.current == nil, let applied = try await appliedDelete(key, nonce) { return applied }
        guard t.ok else { throw failure(key, expectedRevision, t.current) }
        guard let prev = t.response?.responseDeleteRange.prevKvs.first.flatMap(storedObject) else {
            throw StoreError.notFound(key)  // deleted between compare and delete: cannot happen in one txn
        }
        return StoredObject(key: key, value: prev.value, createRevision: prev.createRevision, modRevision: t.revision)
    }

    /// A retried delete that finds the key gone: if the marker still holds this delete's
    /// nonce, the attempt that lost its member removed the key at the marker's revision, and
    /// the key one revision earlier is what it removed. (If a later write of this store has
    /// moved the marker on, the delete is reported as not found, as before.)
    private func appliedDelete(_ key: ObjectKey, _ nonce: Data) async throws -> StoredObject? {
        var m = Etcdserverpb_RangeRequest()
        m.key = markerKey
        guard let marker = try await range("write marker", m).kvs.first, marker.value == nonce else { return nil }
        var before = Etcdserverpb_RangeRequest()
        before.key = Data(etcdKey(key).utf8)
        before.revision = marker.modRevision - 1
        let prev: StoredObject?
        do { prev = try await range("delete check", before).kvs.first.flatMap(storedObject) } catch let e as RPCError where e.code == .outOfRange { return nil }
        guard let prev else { return nil }
        return StoredObject(key: key, value: prev.value, createRevision: prev.createRevision, modRevision: marker.modRevision)
    }

    // MARK: Expiring keys

    /// The lease the puts of this task attach to their key (0: none). The `ttl:` variants of
    /// create and update set it around the ordinary ones, so an expiring key goes through the
    /// same transactions, failover and retry acceptance as any other.
    @TaskLocal static var putLease: Int64 = 0

    /// How long one lease is handed out to keys written with `ttl`: a twentieth of it, at
    /// least a second and at most a minute. The lease is granted for `ttl` plus this window,
    /// so every key lives at least `ttl` (and at most `ttl` plus the window), and etcd keeps
    /// one lease per window rather than one per key.
    static func leaseWindow(_ ttl: Duration) -> Duration { min(max(ttl / 20, .seconds(1)), .seconds(60)) }

    /// The lease for keys written now with `ttl`: the current one while its window lasts, else a
    /// new one. Writes that find the window over together wait for one grant: every write
    /// carries the marker's lease, and without this each of the writes in flight when its
    /// window ended granted a lease of its own (about 20 grants, one round trip each, every
    /// 30 s in the scheduler benchmark, and as many leases for etcd to keep).
    func lease(for ttl: Duration) async throws -> Int64 {
        enum Pick { case current(Int64), grant(Task<Int64, Error>) }
        let now = ContinuousClock.now
        let pick = lock.withLock { () -> Pick in
            if let l = leases[ttl], now < l.until { return .current(l.id) }
            if let g = granting[ttl] { return .grant(g) }
            let g = Task { try await self.grantLease(ttl) }
            granting[ttl] = g
            return .grant(g)
        }
        switch pick {
        case .current(let id): return id
        case .grant(let g): return try await g.value
        }
    }

    /// Grants the lease for `ttl` and hands it out for one window from before the grant was sent.
    private func grantLease(_ ttl: Duration) async throws -> Int64 {
        let start = ContinuousClock.now
        let window = Self.leaseWindow(ttl)
        var req = Etcdserverpb_LeaseGrantRequest()
        let total = (ttl + window).components
        req.ttl = total.seconds + (total.attoseconds > 0 ? 1 : 0)
        do {
            // A grant retried on another member may leave an unused lease behind; it expires on its own.
            let r = try await withFailover("lease grant") { m, _ in try await m.lease.leaseGrant(req, options: Self.callOptions) }
            if !r.error.isEmpty { throw Failure(description: "etcd lease grant: \(r.error)") }
            lock.withLock { leases[ttl] = (r.id, start + window); granting[ttl] = nil; grants += 1 }
            return r.id
        } catch {
            lock.withLock { granting[ttl] = nil }
            throw error
        }
    }

    /// Stops handing out lease `id` for `ttl` (etcd no longer knows it), unless another
    /// request already replaced it.
    private func forgetLease(_ id: Int64, ttl: Duration) {
        lock.withLock { if leases[ttl]?.id == id { leases[ttl] = nil } }
    }

    /// Runs `body` (a create or update) with its put attached to the lease for `ttl`; once
    /// more with a new lease if etcd no longer knows the one it had (revoked by someone else).
    private func withLease<R>(_ ttl: Duration, _ body: () async throws -> R) async throws -> R {
        var attempt = 0
        while true {
            let id = try await lease(for: ttl)
            do {
                return try await Self.$putLease.withValue(id) { try await body() }
            } catch let e as RPCError where e.code == .notFound && e.message.contains("lease") && attempt == 0 {
                attempt += 1
                forgetLease(id, ttl: ttl)
            }
        }
    }

    public func create(_ key: ObjectKey, value: Data, ttl: Duration) async throws -> StoredObject {
        try await withLease(ttl) { try await create(key, value: value) }
    }

    public func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?, ttl: Duration) async throws -> StoredObject {
        try await withLease(ttl) { try await update(key, value: value, expectedRevision: expectedRevision) }
    }

    // MARK: Watch

    /// State one watch's task shares with its gRPC callbacks (only that task touches it).
    private final class WatchState: @unchecked Sendable {
        var lastRevision: Int64
        var created: CheckedContinuation<Void, Error>?
        /// Set when etcd confirms a watch, cleared when its stream fails.
        var established = false
        init(lastRevision: Int64, created: CheckedContinuation<Void, Error>) {
            self.lastRevision = lastRevision; self.created = created
        }
        func confirm() { established = true; created?.resume(); created = nil }
    }

    public func watch(resource: String, namespace: String?, fromRevision: Int64) async throws -> AsyncThrowingStream<StoreEvent, Error> {
        if closed { throw StoreError.closed }
        // etcd may confirm a watch before cancelling it for compaction; check our own
        // compaction mark first so the common case fails here rather than in-stream.
        let compacted = try await compactedRevision()
        if fromRevision < compacted { throw StoreError.revisionCompacted(requested: fromRevision, compacted: compacted) }
        let p = rangePrefix(resource: resource, namespace: namespace)
        let (stream, cont) = AsyncThrowingStream<StoreEvent, Error>.makeStream(bufferingPolicy: .unbounded)
        let id = UUID()
        // The watch task resumes `created` once: when etcd confirms the watch, or with the
        // error that prevented it (a compacted start revision arrives as a cancelled watch).
        try await withCheckedThrowingContinuation { (created: CheckedContinuation<Void, Error>) in
            let state = WatchState(lastRevision: fromRevision, created: created)
            let task = Task { [weak self] in
                guard let self else { state.created?.resume(throwing: StoreError.closed); return }
                do {
                    try await self.runWatch(prefix: p, from: fromRevision, state: state, into: cont)
                    cont.finish()
                } catch {
                    let e: Error = self.closed ? StoreError.closed : error
                    if let c = state.created { state.created = nil; c.resume(throwing: e) }
                    cont.finish(throwing: e)
                }
            }
            let stillOpen = lock.withLock { () -> Bool in
                if isClosed { return false }
                watches[id] = task
                return true
            }
            if !stillOpen { task.cancel() }
            cont.onTermination = { [weak self] _ in
                task.cancel()
                guard let self else { return }
                self.lock.withLock { _ = self.watches.removeValue(forKey: id) }
            }
        }
        return stream
    }

    /// Runs one watch until it is cancelled or fails for good, re-establishing it on the
    /// next member (from the revision after the last delivered event) when its member goes.
    private func runWatch(prefix p: String, from fromRevision: Int64, state: WatchState,
                          into cont: AsyncThrowingStream<StoreEvent, Error>.Continuation) async throws {
        var firstFailure = ContinuousClock.now  // of the failures since the watch was last established
        var failures = 0
        while true {
            try Task.checkCancellation()
            if closed { throw StoreError.closed }
            let m = member()
            var create = Etcdserverpb_WatchCreateRequest()
            create.key = Data(p.utf8)
            create.rangeEnd = Self.prefixEnd(p)
            create.startRevision = state.lastRevision + 1
            create.prevKv = true
            let req = Etcdserverpb_WatchRequest.with { $0.createRequest = create }
            let (done, doneCont) = AsyncStream<Void>.makeStream()
            var options = CallOptions.defaults
            options.waitForReady = false
            do {
                try await m.watch.watch(options: options, requestProducer: { writer in
                    try await writer.write(req)
                    // Keep the request side open (etcd ends the watch when it closes)
                    // until the responses end or the task is cancelled.
                    for await _ in done {}
                }, onResponse: { response in
                    defer { doneCont.finish() }
                    for try await msg in response.messages {
                        if msg.compactRevision > 0 {
                            throw StoreError.revisionCompacted(requested: state.lastRevision, compacted: msg.compactRevision)
                        }
                        if msg.canceled {
                            throw Failure(description: "etcd cancelled the watch: \(msg.cancelReason)")
                        }
                        if msg.created { state.confirm() }
                        for ev in msg.events {
                            guard let e = self.event(ev) else { continue }
                            cont.yield(e)
                            state.lastRevision = e.revision
                        }
                    }
                })
                doneCont.finish()
                // The member ended the stream without an error (it is shutting down).
                throw RPCError(code: .unavailable, message: "etcd watch stream ended")
            } catch where Self.retryable(error) {
                doneCont.finish()
                failOver(from: m)
                if state.established || failures == 0 { firstFailure = ContinuousClock.now; failures = 0 }
                state.established = false
                failures += 1
                if ContinuousClock.now - firstFailure > retryWindow {
                    throw Failure(description: "etcd watch: no member answered within \(retryWindow): \(error)")
                }
                if failures % members.count == 0 { try await Task.sleep(for: .milliseconds(200)) }
            }
        }
    }

    /// A watch event as a `StoreEvent`. Deletions carry the last value (from prev_kv).
    func event(_ ev: Mvccpb_Event) -> StoreEvent? {
        guard var obj = storedObject(ev.kv) else { return nil }
        let prev = ev.hasPrevKv ? storedObject(ev.prevKv) : nil
        if ev.type == .delete {
            obj.value = prev?.value ?? Data()
            obj.createRevision = prev?.createRevision ?? 0
            return StoreEvent(type: .deleted, object: obj, previousValue: prev?.value)
        }
        let added = obj.createRevision == obj.modRevision
        return StoreEvent(type: added ? .added : .modified, object: obj, previousValue: added ? nil : prev?.value)
    }

    public func close() {
        let (ws, rs): ([Task<Void, Never>], [Task<Void, Never>]) = lock.withLock {
            if isClosed { return ([], []) }
            isClosed = true
            let all = Array(watches.values); watches.removeAll()
            let r = runners; runners.removeAll()
            return (all, r)
        }
        for t in ws { t.cancel() }
        if !rs.isEmpty { for m in members { m.client.beginGracefulShutdown() } }
    }
}
