import Foundation
import XCTest
@testable import ControlPlane

final class StoreTests: XCTestCase {
    let key = ObjectKey(resource: "configmaps", namespace: "default", name: "a")

    func testCreateUpdateConflictDelete() async throws {
        let dir = try TempDir()
        let store = try SQLiteStore(path: dir.dbPath)
        defer { store.close() }
        let c = try await store.create(key, value: Data("1".utf8))
        XCTAssertEqual(c.modRevision, 1)
        do { _ = try await store.create(key, value: Data("x".utf8)); XCTFail("duplicate create succeeded") }
        catch StoreError.alreadyExists(_) {}
        let u = try await store.update(key, value: Data("2".utf8), expectedRevision: c.modRevision)
        XCTAssertEqual(u.modRevision, 2)
        XCTAssertEqual(u.createRevision, 1)
        do { _ = try await store.update(key, value: Data("3".utf8), expectedRevision: c.modRevision); XCTFail("stale update succeeded") }
        catch StoreError.conflict(_, let expected, let actual) { XCTAssertEqual(expected, 1); XCTAssertEqual(actual, 2) }
        let got = try await store.get(key)
        XCTAssertEqual(got?.value, Data("2".utf8))
        let d = try await store.delete(key, expectedRevision: nil)
        XCTAssertEqual(d.modRevision, 3)
        let gone = try await store.get(key)
        XCTAssertNil(gone)
        let rev = try await store.currentRevision()
        XCTAssertEqual(rev, 3)
    }

    func testListIsConsistentWithRevision() async throws {
        let dir = try TempDir()
        let store = try SQLiteStore(path: dir.dbPath)
        defer { store.close() }
        for i in 0..<5 { _ = try await store.create(ObjectKey(resource: "pods", namespace: i % 2 == 0 ? "a" : "b", name: "p\(i)"), value: Data()) }
        let all = try await store.list(resource: "pods", namespace: nil)
        XCTAssertEqual(all.items.count, 5)
        XCTAssertEqual(all.revision, 5)
        let a = try await store.list(resource: "pods", namespace: "a")
        XCTAssertEqual(a.items.map(\.key.name), ["p0", "p2", "p4"])
    }

    func testWatchResumesFromRevisionThenLive() async throws {
        let dir = try TempDir()
        let store = try SQLiteStore(path: dir.dbPath)
        defer { store.close() }
        for i in 0..<3 { _ = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p\(i)"), value: Data("\(i)".utf8)) }
        _ = try await store.create(ObjectKey(resource: "nodes", namespace: "", name: "n"), value: Data())  // other resource: filtered
        let stream = try await store.watch(resource: "pods", namespace: nil, fromRevision: 1)
        _ = try await store.update(ObjectKey(resource: "pods", namespace: "ns", name: "p0"), value: Data("x".utf8), expectedRevision: nil)
        _ = try await store.delete(ObjectKey(resource: "pods", namespace: "ns", name: "p1"), expectedRevision: nil)
        let events = try await withDeadline(5) {
            var out: [StoreEvent] = []
            for try await e in stream { out.append(e); if out.count == 4 { break } }
            return out
        }
        XCTAssertEqual(events.map(\.revision), [2, 3, 5, 6])
        XCTAssertEqual(events.map(\.type), [.added, .added, .modified, .deleted])
        XCTAssertEqual(events[2].previousValue, Data("0".utf8))
        XCTAssertEqual(events[3].object.value, Data("1".utf8))
    }

    func testCompactedRevisionIsGone() async throws {
        let dir = try TempDir()
        let store = try SQLiteStore(path: dir.dbPath)
        defer { store.close() }
        for i in 0..<10 { _ = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p\(i)"), value: Data()) }
        try await store.compact(toRevision: 6)
        do { _ = try await store.watch(resource: "pods", namespace: nil, fromRevision: 3); XCTFail("watch from compacted revision succeeded") }
        catch StoreError.revisionCompacted(let r, let c) { XCTAssertEqual(r, 3); XCTAssertEqual(c, 6) }
        let s = try await store.watch(resource: "pods", namespace: nil, fromRevision: 6)
        let first = try await withDeadline(5) { for try await e in s { return e.revision }; return -1 }
        XCTAssertEqual(first, 7)
    }

    func testDurableAcrossReopenAndWatchResume() async throws {
        let dir = try TempDir()
        do {
            let store = try SQLiteStore(path: dir.dbPath)
            let p = try store.pragmas()
            XCTAssertEqual(p.journalMode.lowercased(), "wal")
            XCTAssertEqual(p.synchronous, 2, "synchronous must be FULL")
            for i in 0..<4 { _ = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p\(i)"), value: Data("\(i)".utf8)) }
            store.close()
        }
        let store = try SQLiteStore(path: dir.dbPath)
        defer { store.close() }
        let rev = try await store.currentRevision()
        XCTAssertEqual(rev, 4)
        let got = try await store.get(ObjectKey(resource: "pods", namespace: "ns", name: "p3"))
        XCTAssertEqual(got?.value, Data("3".utf8))
        let s = try await store.watch(resource: "pods", namespace: "ns", fromRevision: 2)
        let revs = try await withDeadline(5) { var r: [Int64] = []; for try await e in s { r.append(e.revision); if r.count == 2 { break } }; return r }
        XCTAssertEqual(revs, [3, 4])
        let next = try await store.create(ObjectKey(resource: "pods", namespace: "ns", name: "p9"), value: Data())
        XCTAssertEqual(next.modRevision, 5)
    }

    func testConcurrentWritersConflictAndLoseNothing() async throws {
        let dir = try TempDir()
        let store = try SQLiteStore(path: dir.dbPath)
        defer { store.close() }
        _ = try await store.create(key, value: Data("0".utf8))
        let writers = 4, increments = 15
        let conflicts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<writers {
                group.addTask {
                    var conflicts = 0
                    for _ in 0..<increments {
                        while true {
                            let cur = try await store.get(self.key)!
                            let n = Int(String(decoding: cur.value, as: UTF8.self))! + 1
                            do { _ = try await store.update(self.key, value: Data(String(n).utf8), expectedRevision: cur.modRevision); break }
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
}
