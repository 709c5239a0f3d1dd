import Foundation

/// `Store` backend on an etcd v3 cluster, spoken through etcd's JSON gateway
/// (`/v3/kv/range`, `/v3/kv/txn`, `/v3/kv/compaction`, `/v3/watch`; keys and values are
/// base64, 64-bit integers are decimal strings).
///
/// Mapping:
/// - key = `<prefix>/<resource>/<namespace>/<name>` (namespace empty for cluster-scoped);
/// - the store revision *is* the etcd revision, so `resourceVersion` = etcd `mod_revision`;
/// - create = Txn(If create_revision == 0 then Put else Range), update/delete =
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
/// Each request is one HTTP exchange on a blocking, kept-alive socket taken from a small
/// per-endpoint pool, run on `ioQueue`; each watch owns a dedicated connection and thread
/// reading the gateway's newline-delimited stream. The mutable state (endpoint rotation
/// index, idle connections, watch table, closed flag) is guarded by `lock`.
public final class EtcdStore: Store, @unchecked Sendable {
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
    }

    public let endpoints: [Endpoint]
    public let prefix: String
    private let lock = NSLock()
    private var next = 0                                   // Guarded by: lock
    private var watches: [UUID: RawHTTPConnection] = [:]   // Guarded by: lock
    private var isClosed = false                           // Guarded by: lock
    private var idle: [String: [RawHTTPConnection]] = [:]  // Guarded by: lock (kept-alive connections per endpoint)
    private let ioQueue = DispatchQueue(label: "moat.etcd.io", attributes: .concurrent)

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    /// `endpoints` are URLs like `http://127.0.0.1:2379` (comma-separated lists are split).
    public init(endpoints: [String], prefix: String = "/registry") throws {
        var eps: [Endpoint] = []
        for raw in endpoints.flatMap({ $0.split(separator: ",").map(String.init) }) {
            var s = raw.trimmingCharacters(in: .whitespaces)
            if s.hasPrefix("https://") { throw Failure(description: "\(s): TLS endpoints are not supported") }
            if s.hasPrefix("http://") { s.removeFirst(7) }
            while s.hasSuffix("/") { s.removeLast() }
            guard let i = s.lastIndex(of: ":"), let port = Int(s[s.index(after: i)...]) else {
                throw Failure(description: "\(raw): expected http://host:port")
            }
            eps.append(Endpoint(host: String(s[..<i]), port: port))
        }
        guard !eps.isEmpty else { throw Failure(description: "no etcd endpoints given") }
        self.endpoints = eps
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
    }

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

    static func b64(_ s: String) -> JSON { .string(Data(s.utf8).base64EncodedString()) }
    static func b64(_ d: Data) -> JSON { .string(d.base64EncodedString()) }
    static func int64(_ j: JSON) -> Int64 { j.string.flatMap { Int64($0) } ?? Int64(j.int ?? 0) }

    // MARK: Transport

    private func endpoint() -> Endpoint {
        lock.withLock { let e = endpoints[next % endpoints.count]; return e }
    }

    private func rotate() { lock.withLock { next += 1 } }

    /// POSTs `body` to `path`, trying each endpoint once on connection failure.
    func post(_ path: String, _ body: JSON) async throws -> JSON {
        if lock.withLock({ isClosed }) { throw StoreError.closed }
        var lastError: Error = Failure(description: "no endpoint answered")
        for _ in 0..<endpoints.count {
            let ep = endpoint()
            do {
                let (code, data) = try await exchange(ep, path, body.serialized())
                let json = (try? JSON.parse(data)) ?? .null
                guard code == 200 else {
                    throw Failure(description: "etcd \(path): HTTP \(code): \(json["error"].string ?? json["message"].string ?? String(decoding: data.prefix(200), as: UTF8.self))")
                }
                return json
            } catch let e as RawHTTPConnection.Failure {
                lastError = e
                rotate()
            }
        }
        throw lastError
    }

    /// One request/response on a kept-alive connection to `ep` (reused from `idle`, or new).
    /// A reused connection the server has meanwhile closed is retried once on a new one.
    private func exchange(_ ep: Endpoint, _ path: String, _ body: Data) async throws -> (Int, Data) {
        try await withCheckedThrowingContinuation { cont in
            ioQueue.async {
                var attempt = 0
                while true {
                    let reused = self.takeIdle(ep)
                    let fresh = reused == nil
                    do {
                        let conn = try reused ?? RawHTTPConnection(host: ep.host, port: ep.port, timeoutSeconds: 30)
                        try conn.send(method: "POST", path: path, host: "\(ep.host):\(ep.port)",
                                      headers: ["Content-Type": "application/json"], body: body, keepAlive: true)
                        let (code, h) = try conn.readHead()
                        var data = Data()
                        try conn.readBody(headers: h) { data.append(contentsOf: $0) }
                        if h["content-length"] != nil || h["transfer-encoding"] != nil, h["connection"]?.lowercased() != "close" {
                            self.putIdle(ep, conn)
                        }
                        cont.resume(returning: (code, data))
                        return
                    } catch {
                        attempt += 1
                        if fresh || attempt > 1 { cont.resume(throwing: error); return }
                    }
                }
            }
        }
    }

    private func takeIdle(_ ep: Endpoint) -> RawHTTPConnection? {
        lock.withLock { idle[ep.host + ":\(ep.port)"]?.popLast() }
    }

    private func putIdle(_ ep: Endpoint, _ conn: RawHTTPConnection) {
        lock.withLock {
            let k = ep.host + ":\(ep.port)"
            if !isClosed, idle[k, default: []].count < 64 { idle[k, default: []].append(conn) }
        }
    }

    // MARK: Decoding

    func storedObject(_ kv: JSON) -> StoredObject? {
        guard let k = kv["key"].string.flatMap({ Data(base64Encoded: $0) }),
              let key = objectKey(String(decoding: k, as: UTF8.self)) else { return nil }
        let value = kv["value"].string.flatMap { Data(base64Encoded: $0) } ?? Data()
        return StoredObject(key: key, value: value, createRevision: Self.int64(kv["create_revision"]),
                            modRevision: Self.int64(kv["mod_revision"]))
    }

    // MARK: Reads

    public func get(_ key: ObjectKey) async throws -> StoredObject? {
        let r = try await post("/v3/kv/range", ["key": Self.b64(etcdKey(key))])
        return (r["kvs"].array ?? []).first.flatMap(storedObject)
    }

    public func list(resource: String, namespace: String?) async throws -> (items: [StoredObject], revision: Int64) {
        let p = rangePrefix(resource: resource, namespace: namespace)
        let r = try await post("/v3/kv/range", ["key": Self.b64(p), "range_end": Self.b64(Self.prefixEnd(p))])
        let items = (r["kvs"].array ?? []).compactMap(storedObject)
            .sorted { ($0.key.namespace, $0.key.name) < ($1.key.namespace, $1.key.name) }
        return (items, Self.int64(r["header"]["revision"]))
    }

    public func currentRevision() async throws -> Int64 {
        let r = try await post("/v3/kv/range", ["key": Self.b64(prefix + "/"), "count_only": true])
        return Self.int64(r["header"]["revision"])
    }

    /// etcd does not report its compaction point through the KV API; this returns the
    /// highest revision this store compacted to (persisted under `<prefix>-meta/compacted`).
    public func compactedRevision() async throws -> Int64 {
        let r = try await post("/v3/kv/range", ["key": Self.b64(prefix + "-meta/compacted")])
        guard let kv = (r["kvs"].array ?? []).first, let v = kv["value"].string.flatMap({ Data(base64Encoded: $0) }) else { return 0 }
        return Int64(String(decoding: v, as: UTF8.self)) ?? 0
    }

    /// Drops history so that watches may resume only from `revision` on.
    public func compact(toRevision revision: Int64) async throws {
        let cur = try await compactedRevision()
        guard revision > cur else { return }
        _ = try await post("/v3/kv/compaction", ["revision": .string(String(revision)), "physical": true])
        _ = try await post("/v3/kv/put", ["key": Self.b64(prefix + "-meta/compacted"), "value": Self.b64(String(revision))])
    }

    // MARK: Writes

    /// One compare-and-op transaction on `key`. On failure the Range of `key` tells why.
    private func txn(_ key: String, compare: JSON, success: JSON) async throws -> (ok: Bool, revision: Int64, response: JSON, current: StoredObject?) {
        let body: JSON = ["compare": [compare], "success": [success], "failure": [["request_range": ["key": Self.b64(key)]]]]
        let r = try await post("/v3/kv/txn", body)
        let ok = r["succeeded"].bool ?? false
        let first = (r["responses"].array ?? []).first ?? .null
        let current = ok ? nil : (first["response_range"]["kvs"].array ?? []).first.flatMap(storedObject)
        return (ok, Self.int64(r["header"]["revision"]), first, current)
    }

    public func create(_ key: ObjectKey, value: Data) async throws -> StoredObject {
        let k = etcdKey(key)
        let t = try await txn(k, compare: ["key": Self.b64(k), "target": "CREATE", "result": "EQUAL", "create_revision": "0"],
                              success: ["request_put": ["key": Self.b64(k), "value": Self.b64(value)]])
        guard t.ok else { throw StoreError.alreadyExists(key) }
        return StoredObject(key: key, value: value, createRevision: t.revision, modRevision: t.revision)
    }

    /// The compare guarding an update or delete: exact revision, or mere existence.
    private func guardCompare(_ k: String, _ expectedRevision: Int64?) -> JSON {
        if let expectedRevision {
            return ["key": Self.b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": .string(String(expectedRevision))]
        }
        return ["key": Self.b64(k), "target": "CREATE", "result": "GREATER", "create_revision": "0"]
    }

    private func failure(_ key: ObjectKey, _ expectedRevision: Int64?, _ current: StoredObject?) -> StoreError {
        guard let current else { return .notFound(key) }
        return .conflict(key, expected: expectedRevision ?? 0, actual: current.modRevision)
    }

    public func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?) async throws -> StoredObject {
        let k = etcdKey(key)
        let t = try await txn(k, compare: guardCompare(k, expectedRevision),
                              success: ["request_put": ["key": Self.b64(k), "value": Self.b64(value), "prev_kv": true]])
        guard t.ok else { throw failure(key, expectedRevision, t.current) }
        let prev = storedObject(t.response["response_put"]["prev_kv"])
        return StoredObject(key: key, value: value, createRevision: prev?.createRevision ?? t.revision, modRevision: t.revision)
    }

    public func delete(_ key: ObjectKey, expectedRevision: Int64?) async throws -> StoredObject {
        let k = etcdKey(key)
        let t = try await txn(k, compare: guardCompare(k, expectedRevision),
                              success: ["request_delete_range": ["key": Self.b64(k), "prev_kv": true]])
        guard t.ok else { throw failure(key, expectedRevision, t.current) }
        guard let prev = (t.response["response_delete_range"]["prev_kvs"].array ?? []).first.flatMap(storedObject) else {
            throw StoreError.notFound(key)  // deleted between compare and delete: cannot happen in one txn
        }
        return StoredObject(key: key, value: prev.value, createRevision: prev.createRevision, modRevision: t.revision)
    }

    // MARK: Watch

    public func watch(resource: String, namespace: String?, fromRevision: Int64) async throws -> AsyncThrowingStream<StoreEvent, Error> {
        if lock.withLock({ isClosed }) { throw StoreError.closed }
        // etcd may confirm a watch before cancelling it for compaction; check our own
        // compaction mark first so the common case fails here rather than in-stream.
        let compacted = try await compactedRevision()
        if fromRevision < compacted { throw StoreError.revisionCompacted(requested: fromRevision, compacted: compacted) }
        let p = rangePrefix(resource: resource, namespace: namespace)
        let req: JSON = ["create_request": ["key": Self.b64(p), "range_end": Self.b64(Self.prefixEnd(p)),
                                            "start_revision": .string(String(fromRevision + 1)), "prev_kv": true]]
        let ep = endpoint()
        let conn: RawHTTPConnection
        do {
            conn = try RawHTTPConnection(host: ep.host, port: ep.port, timeoutSeconds: 0)
            try conn.send(method: "POST", path: "/v3/watch", host: "\(ep.host):\(ep.port)",
                          headers: ["Content-Type": "application/json"], body: req.serialized())
        } catch {
            rotate()
            throw error
        }
        let (stream, cont) = AsyncThrowingStream<StoreEvent, Error>.makeStream(bufferingPolicy: .unbounded)
        let id = UUID()
        lock.withLock { watches[id] = conn }
        cont.onTermination = { [weak self] _ in
            conn.shutdownSocket()
            guard let self else { return }
            self.lock.withLock { _ = self.watches.removeValue(forKey: id) }
        }
        // The reader thread resumes `created` once: when etcd confirms the watch, or with the
        // error that prevented it (a compacted start revision arrives as a cancelled watch).
        try await withCheckedThrowingContinuation { (created: CheckedContinuation<Void, Error>) in
            let thread = Thread { [weak self] in
                var pendingCreation = true
                func fail(_ e: Error) {
                    if pendingCreation { pendingCreation = false; created.resume(throwing: e); cont.finish(throwing: e) }
                    else { cont.finish(throwing: e) }
                }
                do {
                    let (code, headers) = try conn.readHead()
                    guard code == 200 else { throw Failure(description: "etcd watch: HTTP \(code)") }
                    var pending = [UInt8]()
                    try conn.readBody(headers: headers) { bytes in
                        pending.append(contentsOf: bytes)
                        while let nl = pending.firstIndex(of: 0x0A) {
                            let line = Array(pending[..<nl]); pending.removeFirst(nl + 1)
                            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) { continue }
                            let msg = try JSON.parse(Data(line))
                            if let err = msg["error"].object {
                                throw Failure(description: "etcd watch: \(err["message"]?.string ?? "\(JSON.object(err).text)")")
                            }
                            let res = msg["result"]
                            let compacted = Self.int64(res["compact_revision"])
                            if compacted > 0 { throw StoreError.revisionCompacted(requested: fromRevision, compacted: compacted) }
                            if res["canceled"].bool == true {
                                throw Failure(description: "etcd cancelled the watch: \(res["cancel_reason"].string ?? "")")
                            }
                            if pendingCreation, res["created"].bool == true { pendingCreation = false; created.resume() }
                            for ev in res["events"].array ?? [] {
                                if let e = self?.event(ev) { cont.yield(e) }
                            }
                        }
                    }
                    throw (self?.lock.withLock { self?.isClosed ?? true } ?? true) ? StoreError.closed
                        : Failure(description: "etcd watch stream ended")
                } catch {
                    let closed = self.map { s in s.lock.withLock { s.isClosed } } ?? true
                    fail(closed ? StoreError.closed : error)
                }
            }
            thread.start()
        }
        return stream
    }

    /// A gateway watch event as a `StoreEvent`. Deletions carry the last value (from prev_kv).
    func event(_ ev: JSON) -> StoreEvent? {
        guard var obj = storedObject(ev["kv"]) else { return nil }
        let prev = ev["prev_kv"].isNull ? nil : storedObject(ev["prev_kv"])
        if ev["type"].string == "DELETE" {
            obj.value = prev?.value ?? Data()
            obj.createRevision = prev?.createRevision ?? 0
            return StoreEvent(type: .deleted, object: obj, previousValue: prev?.value)
        }
        let added = obj.createRevision == obj.modRevision
        return StoreEvent(type: added ? .added : .modified, object: obj, previousValue: added ? nil : prev?.value)
    }

    public func close() {
        let ws: [RawHTTPConnection] = lock.withLock {
            isClosed = true
            idle.removeAll()  // closed by deinit
            let all = Array(watches.values); watches.removeAll(); return all
        }
        for c in ws { c.shutdownSocket() }
    }
}
