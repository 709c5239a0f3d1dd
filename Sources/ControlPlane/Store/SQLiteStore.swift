import Foundation
import GRDB

/// Embedded `Store` backend on SQLite (via GRDB).
///
/// Durability: the database runs in WAL mode with `synchronous = FULL`, so a write is
/// fsynced to the WAL before `create`/`update`/`delete` return; an acknowledged write
/// survives kill -9 or power loss.
///
/// Concurrency: all writes and watch registrations run on GRDB's single writer queue, so
/// the revision counter, the event log and watcher registration are totally ordered: a
/// watcher registered at revision r sees the backlog (> fromRevision, ≤ r) followed by
/// every live event (> r) with no gap and no duplicate. Reads use the pool's concurrent
/// readers (snapshot isolation). Writes that queue up while one commits are committed
/// together (group commit: one fsync per batch, one savepoint and revision per write).
/// `watchers`, the write queue and the closed flag are guarded by `lock`.
///
/// Expiry: an object written with a TTL carries its expiry time (`objects.expires_at`, wall
/// clock, so it survives restarts); a write without one clears it, as a put without a lease
/// does in etcd. A sweep task, started with the first expiring object, wakes when the earliest
/// one is due (at least once a second while any is pending) and deletes what is due through the
/// ordinary write path, so watchers see each expiry as a DELETED event.
public final class SQLiteStore: Store, @unchecked Sendable {
    private let pool: DatabasePool
    private let lock = NSLock()
    private var watchers: [UUID: Watcher] = [:]
    private var isClosed = false
    private var pending: [PendingWrite] = []   // Guarded by: lock
    private var committing = false             // Guarded by: lock (a drain task is running)
    /// The earliest expiry (seconds since 1970) a sweep should look at; infinity when none.
    private var nextExpiry = Double.infinity   // Guarded by: lock
    private var sweeper: Task<Void, Never>?    // Guarded by: lock
    /// Number of most recent events retained in the event log for watch resumption.
    public let retainedEvents: Int64

    private struct Watcher {
        let resource: String
        let namespace: String?
        let continuation: AsyncThrowingStream<StoreEvent, Error>.Continuation
    }

    /// Opens (creating if needed) the database at `path`.
    public init(path: String, retainedEvents: Int64 = 50_000) throws {
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        config.busyMode = .timeout(10)
        self.retainedEvents = max(1, retainedEvents)
        pool = try DatabasePool(path: path, configuration: config)
        // DatabasePool lowers the writer to synchronous=NORMAL when it enables WAL; commits
        // happen only on the writer connection, so raise it back to FULL there.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS objects (
                    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    value BLOB NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
                    PRIMARY KEY (resource, namespace, name));
                CREATE TABLE IF NOT EXISTS events (
                    rev INTEGER PRIMARY KEY, type TEXT NOT NULL,
                    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    value BLOB NOT NULL, create_rev INTEGER NOT NULL, prev BLOB);
                CREATE INDEX IF NOT EXISTS events_by_resource ON events(resource, rev);
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                INSERT OR IGNORE INTO meta(key, value) VALUES ('revision', 0), ('compacted', 0);
                """)
            // Databases from before expiry get the column; only expiring objects are indexed.
            if try !db.columns(in: "objects").contains(where: { $0.name == "expires_at" }) {
                try db.execute(sql: "ALTER TABLE objects ADD COLUMN expires_at REAL")
            }
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS objects_by_expiry ON objects(expires_at) WHERE expires_at IS NOT NULL")
        }
        if let first = try pool.read({ db in try Double.fetchOne(db, sql: "SELECT MIN(expires_at) FROM objects") }) { expiring(first) }
    }

    /// The journal mode and synchronous level in force, for tests and diagnostics.
    public func pragmas() throws -> (journalMode: String, synchronous: Int) {
        try pool.write { db in
            let jm = try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? ""
            let sync = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            return (jm, sync)
        }
    }

    // MARK: Reads

    public func get(_ key: ObjectKey) async throws -> StoredObject? {
        try await pool.read { db in try Self.fetchObject(db, key) }
    }

    public func list(resource: String, namespace: String?) async throws -> (items: [StoredObject], revision: Int64) {
        try await pool.read { db in
            let rev = try Self.meta(db, "revision")
            var sql = "SELECT * FROM objects WHERE resource = ?"
            var args: [DatabaseValueConvertible] = [resource]
            if let namespace { sql += " AND namespace = ?"; args.append(namespace) }
            sql += " ORDER BY namespace, name"
            let rows = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args))
            return (rows.map(Self.object(from:)), rev)
        }
    }

    public func currentRevision() async throws -> Int64 {
        try await pool.read { db in try Self.meta(db, "revision") }
    }

    public func compactedRevision() async throws -> Int64 {
        try await pool.read { db in try Self.meta(db, "compacted") }
    }

    // MARK: Writes

    public func create(_ key: ObjectKey, value: Data) async throws -> StoredObject {
        try await create(key, value: value, expiresAt: nil)
    }

    public func create(_ key: ObjectKey, value: Data, ttl: Duration) async throws -> StoredObject {
        try await create(key, value: value, expiresAt: Self.expiry(ttl))
    }

    public func create(_ key: ObjectKey, value: Data, ttl: Duration?, parent: ObjectKey) async throws -> StoredObject {
        try await create(key, value: value, expiresAt: ttl.map(Self.expiry), parent: parent)
    }

    private func create(_ key: ObjectKey, value: Data, expiresAt: Double?, parent: ObjectKey? = nil) async throws -> StoredObject {
        try await write { db, rev in
            if let parent, try Self.fetchObject(db, parent) == nil { throw StoreError.notFound(parent) }
            if try Self.fetchObject(db, key) != nil { throw StoreError.alreadyExists(key) }
            try db.cachedStatement(sql: "INSERT INTO objects(resource, namespace, name, value, create_rev, mod_rev, expires_at) VALUES (?,?,?,?,?,?,?)")
                .execute(arguments: [key.resource, key.namespace, key.name, value, rev, rev, expiresAt])
            if let expiresAt { self.expiring(expiresAt) }
            return StoreEvent(type: .added, object: StoredObject(key: key, value: value, createRevision: rev, modRevision: rev))
        }.object
    }

    public func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?) async throws -> StoredObject {
        try await update(key, value: value, expectedRevision: expectedRevision, expiresAt: nil)
    }

    public func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?, ttl: Duration) async throws -> StoredObject {
        try await update(key, value: value, expectedRevision: expectedRevision, expiresAt: Self.expiry(ttl))
    }

    private func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?, expiresAt: Double?) async throws -> StoredObject {
        try await write { db, rev in
            guard let cur = try Self.fetchObject(db, key) else { throw StoreError.notFound(key) }
            if let expectedRevision, expectedRevision != cur.modRevision {
                throw StoreError.conflict(key, expected: expectedRevision, actual: cur.modRevision)
            }
            try db.cachedStatement(sql: "UPDATE objects SET value = ?, mod_rev = ?, expires_at = ? WHERE resource = ? AND namespace = ? AND name = ?")
                .execute(arguments: [value, rev, expiresAt, key.resource, key.namespace, key.name])
            if let expiresAt { self.expiring(expiresAt) }
            return StoreEvent(type: .modified, object: StoredObject(key: key, value: value, createRevision: cur.createRevision, modRevision: rev),
                              previousValue: cur.value)
        }.object
    }

    // MARK: Expiry

    private static func expiry(_ ttl: Duration) -> Double {
        let c = ttl.components
        return Date().timeIntervalSince1970 + Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    /// Notes an object due at `time`: the sweep wakes for it (and is started if it is not running).
    private func expiring(_ time: Double) {
        lock.withLock {
            nextExpiry = min(nextExpiry, time)
            if sweeper == nil, !isClosed {
                sweeper = Task { [weak self] in
                    while !Task.isCancelled, let wait = await self?.sweepIfDue() {
                        try? await Task.sleep(for: .milliseconds(wait))
                    }
                }
            }
        }
    }

    /// Deletes the objects that are due, if any is; returns how many milliseconds to wait
    /// before looking again, nil when the store is closed.
    private func sweepIfDue() async -> Int? {
        let (due, closed) = lock.withLock { (nextExpiry, isClosed) }
        if closed { return nil }
        let now = Date().timeIntervalSince1970
        if due > now { return Int(min(due - now, 1) * 1000) + 1 }
        let keys = (try? await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT resource, namespace, name FROM objects WHERE expires_at <= ?", arguments: [now])
                .map { ObjectKey(resource: $0["resource"], namespace: $0["namespace"], name: $0["name"]) }
        }) ?? []
        for key in keys {
            // Deleted only if still due: a write since the read may have renewed or cleared its expiry.
            _ = try? await write { db, rev in
                guard let cur = try Self.fetchObject(db, key),
                      let at = try Double.fetchOne(db.cachedStatement(sql: "SELECT expires_at FROM objects WHERE resource = ? AND namespace = ? AND name = ?"),
                                                   arguments: [key.resource, key.namespace, key.name]), at <= now else { throw StoreError.notFound(key) }
                try db.cachedStatement(sql: "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?")
                    .execute(arguments: [key.resource, key.namespace, key.name])
                return StoreEvent(type: .deleted, object: StoredObject(key: key, value: cur.value, createRevision: cur.createRevision, modRevision: rev),
                                  previousValue: cur.value)
            }
        }
        // The next due time, read on the writer queue so that no expiring write slips between
        // this read and the assignment (such a write lowers nextExpiry itself, after this).
        _ = try? await pool.writeWithoutTransaction { db in
            let next = try Double.fetchOne(db, sql: "SELECT MIN(expires_at) FROM objects") ?? .infinity
            self.lock.withLock { self.nextExpiry = next }
        }
        return 50
    }

    public func delete(_ key: ObjectKey, expectedRevision: Int64?) async throws -> StoredObject {
        try await write { db, rev in
            guard let cur = try Self.fetchObject(db, key) else { throw StoreError.notFound(key) }
            if let expectedRevision, expectedRevision != cur.modRevision {
                throw StoreError.conflict(key, expected: expectedRevision, actual: cur.modRevision)
            }
            try db.cachedStatement(sql: "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?")
                .execute(arguments: [key.resource, key.namespace, key.name])
            return StoreEvent(type: .deleted, object: StoredObject(key: key, value: cur.value, createRevision: cur.createRevision, modRevision: rev),
                              previousValue: cur.value)
        }.object
    }

    typealias WriteBody = @Sendable (Database, Int64) throws -> StoreEvent

    /// A write waiting for the next group commit.
    private struct PendingWrite {
        let body: WriteBody
        let done: CheckedContinuation<StoreEvent, Error>
    }

    /// Runs `body` at the next revision and records its event; returns once it is durable.
    ///
    /// Group commit: writes that arrive while a commit is in progress are queued and
    /// committed together in one transaction (one fsync), each inside its own savepoint
    /// with its own revision, so one write's failure (e.g. a conflict) does not affect
    /// the others. Events are published to watchers after the commit, in revision order,
    /// still on the writer queue.
    private func write(_ body: @escaping WriteBody) async throws -> StoreEvent {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<StoreEvent, Error>) in
            let start = lock.withLock { () -> Bool? in
                if isClosed { return nil }
                pending.append(PendingWrite(body: body, done: c))
                if committing { return false }
                committing = true
                return true
            }
            switch start {
            case nil: c.resume(throwing: StoreError.closed)
            case true?: Task { await self.drain() }
            case false?: break
            }
        }
    }

    /// Commits queued writes in batches until the queue is empty.
    private func drain() async {
        while true {
            let batch: [PendingWrite] = lock.withLock {
                let b = Array(pending.prefix(512))
                pending.removeFirst(b.count)
                if b.isEmpty { committing = false }
                return b
            }
            if batch.isEmpty { return }
            var results: [Result<StoreEvent, Error>]
            do {
                results = try await pool.writeWithoutTransaction { db -> [Result<StoreEvent, Error>] in
                    var results = [Result<StoreEvent, Error>](repeating: .failure(StoreError.closed), count: batch.count)
                    var events: [StoreEvent] = []
                    try db.inTransaction {
                        var rev = try Self.meta(db, "revision")
                        for (i, w) in batch.enumerated() {
                            try db.execute(sql: "SAVEPOINT op")
                            do {
                                let ev = try w.body(db, rev + 1)
                                try db.cachedStatement(sql: "INSERT INTO events(rev, type, resource, namespace, name, value, create_rev, prev) VALUES (?,?,?,?,?,?,?,?)")
                                    .execute(arguments: [ev.revision, ev.type.rawValue, ev.object.key.resource, ev.object.key.namespace, ev.object.key.name,
                                                         ev.object.value, ev.object.createRevision, ev.type == .modified ? ev.previousValue : nil])
                                try db.execute(sql: "RELEASE SAVEPOINT op")
                                rev += 1
                                results[i] = .success(ev)
                                events.append(ev)
                            } catch {
                                try db.execute(sql: "ROLLBACK TO SAVEPOINT op")
                                try db.execute(sql: "RELEASE SAVEPOINT op")
                                results[i] = .failure(error)
                            }
                        }
                        try db.cachedStatement(sql: "UPDATE meta SET value = ? WHERE key = 'revision'").execute(arguments: [rev])
                        return .commit
                    }
                    if let first = events.first, let last = events.last, first.revision / 256 != last.revision / 256 || first.revision % 256 == 0 {
                        try? self.compact(db, keepingAfter: last.revision - self.retainedEvents)
                    }
                    for ev in events { self.publish(ev) }
                    return results
                }
            } catch {
                results = batch.map { _ in .failure(error) }  // the transaction failed as a whole
            }
            for (w, r) in zip(batch, results) { w.done.resume(with: r) }
        }
    }

    /// Drops events with revision ≤ `revision`; watches from before it then get `.revisionCompacted`.
    public func compact(toRevision revision: Int64) async throws {
        try await pool.writeWithoutTransaction { db in try self.compact(db, keepingAfter: revision) }
    }

    private func compact(_ db: Database, keepingAfter revision: Int64) throws {
        try db.inTransaction {
            let cur = try Self.meta(db, "compacted")
            guard revision > cur else { return .commit }
            try db.execute(sql: "DELETE FROM events WHERE rev <= ?", arguments: [revision])
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'compacted'", arguments: [revision])
            return .commit
        }
    }

    // MARK: Watch

    public func watch(resource: String, namespace: String?, fromRevision: Int64) async throws -> AsyncThrowingStream<StoreEvent, Error> {
        if lock.withLock({ isClosed }) { throw StoreError.closed }
        let (stream, continuation) = AsyncThrowingStream<StoreEvent, Error>.makeStream(bufferingPolicy: .unbounded)
        let id = UUID()
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.lock.withLock { _ = self.watchers.removeValue(forKey: id) }
        }
        try await pool.writeWithoutTransaction { db in
            let compacted = try Self.meta(db, "compacted")
            if fromRevision < compacted {
                throw StoreError.revisionCompacted(requested: fromRevision, compacted: compacted)
            }
            var sql = "SELECT * FROM events WHERE resource = ? AND rev > ?"
            var args: [DatabaseValueConvertible] = [resource, fromRevision]
            if let namespace { sql += " AND namespace = ?"; args.append(namespace) }
            sql += " ORDER BY rev"
            for row in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)) {
                let key = ObjectKey(resource: row["resource"], namespace: row["namespace"], name: row["name"])
                let obj = StoredObject(key: key, value: row["value"], createRevision: row["create_rev"], modRevision: row["rev"])
                let type = StoreEventType(rawValue: row["type"]) ?? .modified
                let prevColumn: Data? = row["prev"]
                let prev: Data? = type == .deleted ? obj.value : prevColumn
                continuation.yield(StoreEvent(type: type, object: obj, previousValue: prev))
            }
            self.lock.withLock {
                self.watchers[id] = Watcher(resource: resource, namespace: namespace, continuation: continuation)
            }
        }
        return stream
    }

    private func publish(_ ev: StoreEvent) {
        let targets = lock.withLock {
            watchers.values.filter { $0.resource == ev.object.key.resource && ($0.namespace == nil || $0.namespace == ev.object.key.namespace) }
        }
        for w in targets { w.continuation.yield(ev) }
    }

    /// Number of live watchers (diagnostics/tests).
    public var watcherCount: Int { lock.withLock { watchers.count } }

    public func close() {
        let ws: [Watcher] = lock.withLock {
            isClosed = true
            sweeper?.cancel()
            let all = Array(watchers.values); watchers.removeAll(); return all
        }
        for w in ws { w.continuation.finish(throwing: StoreError.closed) }
        try? pool.close()
    }

    // MARK: Helpers

    private static func meta(_ db: Database, _ key: String) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = ?"), arguments: [key]) ?? 0
    }

    private static func fetchObject(_ db: Database, _ key: ObjectKey) throws -> StoredObject? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM objects WHERE resource = ? AND namespace = ? AND name = ?"),
                         arguments: [key.resource, key.namespace, key.name]).map(object(from:))
    }

    private static func object(from row: Row) -> StoredObject {
        StoredObject(key: ObjectKey(resource: row["resource"], namespace: row["namespace"], name: row["name"]),
                     value: row["value"], createRevision: row["create_rev"], modRevision: row["mod_rev"])
    }
}
