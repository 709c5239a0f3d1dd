import Foundation
import XCTest
@testable import ControlPlane

/// The `Store` contract, on SQLite here and on etcd in `EtcdStoreTests`. Revisions are
/// checked relative to the revision the store starts at (a fresh etcd starts at 1).
class StoreTests: XCTestCase {
    class var backend: Backend { .sqlite }
    let key = ObjectKey(resource: "configmaps", namespace: "default", name: "a")
    var dir: TempDir!
    var etcd: EtcdProcess?
    var opened: [any Store] = []

    override func setUp() async throws {
        try requireBackend(Self.backend)
        dir = try TempDir()
        if Self.backend == .etcd { etcd = try await EtcdProcess() }
    }

    override func tearDown() async throws {
        for s in opened { s.close() }
        opened = []
        etcd?.stop()
        etcd = nil
        if let dir { try? FileManager.default.removeItem(atPath: dir.path) }
        dir = nil
    }

    /// Opens (or reopens) the store under test over this test's data.
    func open() throws -> any Store {
        let s: any Store = Self.backend == .sqlite ? try SQLiteStore(path: dir.dbPath) : try EtcdStore(endpoints: [etcd!.endpoint])
        opened.append(s)
        return s
    }

    /// A create that requires its parent (a namespace) checks it in the same write: missing
    /// parent is `.notFound(parent)` and writes nothing (not even a revision), a present one
    /// lets the create through, and an existing key is still `.alreadyExists`.
    func testCreateRequiringAParent() async throws {
        let store = try open()
        let ns = ObjectKey(resource: "namespaces", namespace: "", name: "team")
        let obj = ObjectKey(resource: "configmaps", namespace: "team", name: "c")
        let base = try await store.currentRevision()
        do { _ = try await store.create(obj, value: Data("1".utf8), ttl: nil, parent: ns); XCTFail("created without its parent") }
        catch StoreError.notFound(let k) { XCTAssertEqual(k, ns) }
        do { _ = try await store.create(obj, value: Data("1".utf8), ttl: .seconds(60), parent: ns); XCTFail("created (expiring) without its parent") }
        catch StoreError.notFound(let k) { XCTAssertEqual(k, ns) }
        let none = try await store.get(obj)
        XCTAssertNil(none)
        let unchanged = try await store.currentRevision()
        XCTAssertEqual(unchanged, base, "a refused create changed the store")
        _ = try await store.create(ns, value: Data("ns".utf8))
        let c = try await store.create(obj, value: Data("1".utf8), ttl: nil, parent: ns)
        XCTAssertEqual(c.modRevision, base + 2)
        XCTAssertEqual(c.createRevision, base + 2)
        let got = try await store.get(obj)
        XCTAssertEqual(got?.value, Data("1".utf8))
        do { _ = try await store.create(obj, value: Data("2".utf8), ttl: nil, parent: ns); XCTFail("duplicate create succeeded") }
        catch StoreError.alreadyExists(let k) { XCTAssertEqual(k, obj) }
    }

    func testCreateUpdateConflictDelete() async throws {
        let store = try open()
        let base = try await store.currentRevision()
        let c = try await store.create(key, value: Data("1".utf8))
        XCTAssertEqual(c.modRevision, base + 1)
        do { _ = try await store.create(key, value: Data("x".utf8)); XCTFail("duplicate create succeeded") }
        catch StoreError.alreadyExists(_) {}
        let u = try await store.update(key, value: Data("2".utf8), expectedRevision: c.modRevision)
        XCTAssertEqual(u.modRevision, base + 2)
        XCTAssertEqual(u.createRevision, base + 1)
        do { _ = try await store.update(key, value: Data("3".utf8), expectedRevision: c.modRevision); XCTFail("stale update succeeded") }
        catch StoreError.conflict(_, let expected, let actual) { XCTAssertEqual(expected, base + 1); XCTAssertEqual(actual, base + 2) }
        do { _ = try await store.delete(key, expectedRevision: c.modRevision); XCTFail("stale delete succeeded") }
        catch StoreError.conflict(_, _, _) {}
        let got = try await store.get(key)
        XCTAssertEqual(got?.value, Data("2".utf8))
        XCTAssertEqual(got?.modRevision, base + 2)
        let d = try await store.delete(key, expectedRevision: nil)
        XCTAssertEqual(d.modRevision, base + 3)
        XCTAssertEqual(d.value, Data("2".utf8))
        let gone = try await store.get(key)
        XCTAssertNil(gone)
        do { _ = try await store.update(key, value: Data(), expectedRevision: nil); XCTFail("update of a missing key succeeded") }
        catch StoreError.notFound(_) {}
        do { _ = try await store.delete(key, expectedRevision: nil); XCTFail("delete of a missing key succeeded") }
        catch StoreError.notFound(_) {}
        let rev = try await store.currentRevision()
        XCTAssertEqual(rev, base + 3)
    }

    func testListIsConsistentWithRevision() async throws {
        let store = try open()
        let base = try await store.currentRevision()
        for i in 0..<5 { _ = try await store.create(ObjectKey(resource: "pods", namespace: i % 2 == 0 ? "a" : "b", name: "p\(i)"), value: Data()) }
        _ = try await store.create(ObjectKey(resource: "podsx", namespace: "a", name: "other"), value: Data())  // a resource sharing a name prefix
        let all = try await store.list(resource: "pods", namespace: nil)
        XCTAssertEqual(all.items.count, 5)
        XCTAssertEqual(all.revision, base + 6)
        let a = try await store.list(resource: "pods", namespace: "a")
        XCTAssertEqual(a.items.map(\.key.name), ["p0", "p2", "p4"])
        XCTAssertEqual(a.items.map(\.key.namespace), ["a", "a", "a"])
    }

    func testWatchResumesFromRevisionThenLive() async throws {
        let store = try open()
        let base = try await store.currentRevision()
        for i in 0..<3 { _ = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p\(i)"), value: Data("\(i)".utf8)) }
        _ = try await store.create(ObjectKey(resource: "nodes", namespace: "", name: "n"), value: Data())  // other resource: filtered
        let stream = try await store.watch(resource: "pods", namespace: nil, fromRevision: base + 1)
        _ = try await store.update(ObjectKey(resource: "pods", namespace: "ns", name: "p0"), value: Data("x".utf8), expectedRevision: nil)
        _ = try await store.delete(ObjectKey(resource: "pods", namespace: "ns", name: "p1"), expectedRevision: nil)
        let events = try await withDeadline(5) {
            var out: [StoreEvent] = []
            for try await e in stream { out.append(e); if out.count == 4 { break } }
            return out
        }
        XCTAssertEqual(events.map(\.revision), [2, 3, 5, 6].map { base + $0 })
        XCTAssertEqual(events.map(\.type), [.added, .added, .modified, .deleted])
        XCTAssertEqual(events[2].previousValue, Data("0".utf8))
        XCTAssertEqual(events[2].object.createRevision, base + 1)
        XCTAssertEqual(events[3].object.value, Data("1".utf8))
        XCTAssertEqual(events[3].object.key, ObjectKey(resource: "pods", namespace: "ns", name: "p1"))
    }

    func testCompactedRevisionIsGone() async throws {
        let store = try open()
        let base = try await store.currentRevision()
        for i in 0..<10 { _ = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p\(i)"), value: Data()) }
        try await store.compact(toRevision: base + 6)
        do { _ = try await store.watch(resource: "pods", namespace: nil, fromRevision: base + 3); XCTFail("watch from compacted revision succeeded") }
        catch StoreError.revisionCompacted(let r, _) { XCTAssertEqual(r, base + 3) }
        let s = try await store.watch(resource: "pods", namespace: nil, fromRevision: base + 6)
        let first = try await withDeadline(5) { for try await e in s { return e.revision }; return -1 }
        XCTAssertEqual(first, base + 7)
        let compacted = try await store.compactedRevision()
        XCTAssertEqual(compacted, base + 6)
    }

    func testDurableAcrossReopenAndWatchResume() async throws {
        var base: Int64 = 0
        do {
            let store = try open()
            if let s = store as? SQLiteStore {
                let p = try s.pragmas()
                XCTAssertEqual(p.journalMode.lowercased(), "wal")
                XCTAssertEqual(p.synchronous, 2, "synchronous must be FULL")
            }
            base = try await store.currentRevision()
            for i in 0..<4 { _ = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p\(i)"), value: Data("\(i)".utf8)) }
            store.close()
        }
        let store = try open()
        let rev = try await store.currentRevision()
        XCTAssertEqual(rev, base + 4)
        let got = try await store.get(ObjectKey(resource: "pods", namespace: "ns", name: "p3"))
        XCTAssertEqual(got?.value, Data("3".utf8))
        let s = try await store.watch(resource: "pods", namespace: "ns", fromRevision: base + 2)
        let revs = try await withDeadline(5) { var r: [Int64] = []; for try await e in s { r.append(e.revision); if r.count == 2 { break } }; return r }
        XCTAssertEqual(revs, [base + 3, base + 4])
        let next = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p9"), value: Data())
        XCTAssertEqual(next.modRevision, base + 5)
    }

    func testClosedStoreEndsWatches() async throws {
        let store = try open()
        let s = try await store.watch(resource: "pods", namespace: nil, fromRevision: try await store.currentRevision())
        store.close()
        do {
            try await withDeadline(5) { for try await _ in s {} }
            XCTFail("watch ended without an error")
        } catch StoreError.closed {}
    }

    func testConcurrentWritersConflictAndLoseNothing() async throws {
        let store = try open()
        _ = try await store.create(key, value: Data("0".utf8))
        let writers = 4, increments = 15
        let key = self.key
        let conflicts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<writers {
                group.addTask {
                    var conflicts = 0
                    for _ in 0..<increments {
                        while true {
                            let cur = try await store.get(key)!
                            let n = Int(String(decoding: cur.value, as: UTF8.self))! + 1
                            do { _ = try await store.update(key, value: Data(String(n).utf8), expectedRevision: cur.modRevision); break }
                            catch StoreError.conflict(_, _, _) { conflicts += 1 }
                        }
                    }
                    return conflicts
                }
            }
            return try await group.reduce(0, +)
        }
        let final = try await store.get(key)!
        XCTAssertEqual(String(decoding: final.value, as: UTF8.self), String(writers * increments))
        XCTAssertGreaterThan(conflicts, 0, "expected some optimistic-concurrency conflicts")
    }

    /// Objects written with a TTL are deleted once it has passed, each with a DELETED event;
    /// an object without one stays, and so does one whose TTL a plain update cleared, while a
    /// TTL given on update makes an object expire. On etcd the keys written with the TTL
    /// share one lease (as kube-apiserver's Events do); the others have none.
    func testObjectsWithATTLExpire() async throws {
        let store = try open()
        let ttl = Duration.seconds(3)
        func key(_ n: String) -> ObjectKey { ObjectKey(resource: "events", namespace: "ns", name: n) }
        for i in 0..<3 { _ = try await store.create(key("e\(i)"), value: Data("e\(i)".utf8), ttl: ttl) }
        _ = try await store.create(key("kept"), value: Data("kept".utf8))
        let c = try await store.create(key("cleared"), value: Data("1".utf8), ttl: ttl)
        _ = try await store.update(key("cleared"), value: Data("2".utf8), expectedRevision: c.modRevision)
        let l = try await store.create(key("later"), value: Data("1".utf8))
        _ = try await store.update(key("later"), value: Data("2".utf8), expectedRevision: l.modRevision, ttl: ttl)
        let expiring: Set = ["e0", "e1", "e2", "later"]
        let from = try await store.currentRevision()
        let all = try await store.list(resource: "events", namespace: "ns").items.map(\.key.name)
        XCTAssertEqual(Set(all), expiring.union(["kept", "cleared"]))
        if let etcd = self.etcd, let s = store as? EtcdStore {
            let leases = try etcdLeases(etcd.endpoint, prefix: s.prefix + "/events/ns/")
            let shared = Set(expiring.map { leases[$0] ?? 0 })
            XCTAssertEqual(shared.count, 1, "one lease for the keys written with the TTL: \(leases)")
            XCTAssertNotEqual(shared.first, 0, "no lease on the expiring keys: \(leases)")
            XCTAssertEqual(leases["kept"], 0)
            XCTAssertEqual(leases["cleared"], 0, "a plain update keeps the key's lease")
        }
        let stream = try await store.watch(resource: "events", namespace: nil, fromRevision: from)
        let gone = try await withDeadline(60) {
            var out: [StoreEvent] = []
            for try await e in stream { out.append(e); if out.count == expiring.count { break } }
            return out
        }
        XCTAssertEqual(gone.map(\.type), Array(repeating: .deleted, count: expiring.count))
        XCTAssertEqual(Set(gone.map(\.object.key.name)), expiring)
        XCTAssertEqual(Set(gone.map { String(decoding: $0.object.value, as: UTF8.self) }), ["e0", "e1", "e2", "2"])
        let left = try await store.list(resource: "events", namespace: "ns").items.map(\.key.name)
        XCTAssertEqual(left, ["cleared", "kept"])
    }

    /// The lease of each key under `prefix`, read through etcd's JSON gateway (not Moat's client).
    func etcdLeases(_ endpoint: String, prefix: String) throws -> [String: Int64] {
        var end = Array(prefix.utf8); end[end.count - 1] += 1
        let body = #"{"key":"\#(Data(prefix.utf8).base64EncodedString())","range_end":"\#(Data(end).base64EncodedString())"}"#
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-sS", "--max-time", "5", "-X", "POST", "-d", body, endpoint + "/v3/kv/range"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        var leases: [String: Int64] = [:]
        for kv in json?["kvs"] as? [[String: Any]] ?? [] {
            guard let k = (kv["key"] as? String).flatMap({ Data(base64Encoded: $0) }) else { continue }
            // The gateway writes int64s as strings and leaves out zeros.
            leases[String(String(decoding: k, as: UTF8.self).dropFirst(prefix.count))] = Int64(kv["lease"] as? String ?? "0") ?? 0
        }
        return leases
    }
}

/// The same tests on etcd. (XCTest on Linux does not discover inherited test methods,
/// so each is restated.)
final class EtcdStoreTests: StoreTests {
    override class var backend: Backend { .etcd }
    override func testCreateUpdateConflictDelete() async throws { try await super.testCreateUpdateConflictDelete() }
    override func testCreateRequiringAParent() async throws { try await super.testCreateRequiringAParent() }
    override func testListIsConsistentWithRevision() async throws { try await super.testListIsConsistentWithRevision() }
    override func testWatchResumesFromRevisionThenLive() async throws { try await super.testWatchResumesFromRevisionThenLive() }
    override func testCompactedRevisionIsGone() async throws { try await super.testCompactedRevisionIsGone() }
    override func testDurableAcrossReopenAndWatchResume() async throws { try await super.testDurableAcrossReopenAndWatchResume() }
    override func testClosedStoreEndsWatches() async throws { try await super.testClosedStoreEndsWatches() }
    override func testConcurrentWritersConflictAndLoseNothing() async throws { try await super.testConcurrentWritersConflictAndLoseNothing() }
    override func testObjectsWithATTLExpire() async throws { try await super.testObjectsWithATTLExpire() }
}
