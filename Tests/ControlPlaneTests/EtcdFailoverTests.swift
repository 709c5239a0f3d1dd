import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest
import GRPCCore
@testable import ControlPlane

/// `EtcdStore` on a 3-member etcd cluster (Debian's etcd-server, members on loopback): the
/// member the store talks to is killed with SIGKILL while four writers create objects and a
/// watch follows them. No write fails (the store retries on the other members), every
/// acknowledged write is in the surviving members, and the watch, re-established on another
/// member from the revision after its last event, delivers every write exactly once, in order.
final class EtcdFailoverTests: XCTestCase {
    func testWritesAndWatchesFailOverWhenTheMemberInUseDies() async throws {
        try requireBackend(.etcd)
        let members = try await EtcdProcess.cluster(size: 3)
        defer { for m in members { m.stop() } }
        let store = try EtcdStore(endpoints: members.map(\.endpoint))
        defer { store.close() }
        let base = try await store.currentRevision()
        let events = try await store.watch(resource: "configmaps", namespace: nil, fromRevision: base)

        let writers = 4, perWriter = 40
        let acked = try await withThrowingTaskGroup(of: [(String, Int64)].self) { group in
            for w in 0..<writers {
                group.addTask {
                    var done: [(String, Int64)] = []
                    for i in 0..<perWriter {
                        let key = ObjectKey(resource: "configmaps", namespace: "default", name: "w\(w)-\(i)")
                        let o = try await store.create(key, value: Data("\(w)/\(i)".utf8))
                        // and an update guarded by the revision the create returned
                        let u = try await store.update(key, value: Data("\(w)/\(i)/2".utf8), expectedRevision: o.modRevision)
                        done.append((key.name, o.modRevision)); done.append((key.name, u.modRevision))
                        try await Task.sleep(nanoseconds: 10_000_000)
                    }
                    return done
                }
            }
            group.addTask {
                try await Task.sleep(nanoseconds: 600_000_000)
                members[0].kill()
                return []
            }
            var all: [(String, Int64)] = []
            for try await part in group { all += part }
            return all
        }
        XCTAssertFalse(members[0].isRunning, "member 0 was not killed")
        XCTAssertEqual(acked.count, 2 * writers * perWriter)

        // Every acknowledged write is in the surviving members, at its acknowledged revision.
        let check = try EtcdStore(endpoints: members.dropFirst().map(\.endpoint))
        defer { check.close() }
        let (items, _) = try await check.list(resource: "configmaps", namespace: nil)
        XCTAssertEqual(items.count, writers * perWriter)
        let last = Dictionary(acked.map { ($0.0, $0.1) }, uniquingKeysWith: max)
        for o in items {
            XCTAssertEqual(o.modRevision, last[o.key.name], o.key.name)
            XCTAssertTrue(String(decoding: o.value, as: UTF8.self).hasSuffix("/2"), o.key.name)
        }

        // The watch saw each acknowledged revision once, in order, across the failover.
        let expected = acked.map(\.1).sorted()
        let seen = try await withDeadline(60) {
            var revs: [Int64] = []
            for try await e in events {
                revs.append(e.revision)
                if revs.count >= expected.count { break }
            }
            return revs
        }
        XCTAssertEqual(seen, expected)
    }
}

/// A write whose member goes away leaves its outcome unknown to the store, which retries it.
/// These tests make that happen on purpose (EtcdStore.attemptHook throws `unavailable` before
/// or after an attempt reaches etcd) on one real etcd, and check that the store tells its own
/// applied write from another writer's identical one.
final class EtcdAmbiguousWriteTests: XCTestCase {
    var etcd: EtcdProcess!
    var store: EtcdStore!
    let key = ObjectKey(resource: "configmaps", namespace: "default", name: "counter")

    override func setUp() async throws {
        try requireBackend(.etcd)
        etcd = try await EtcdProcess()
        store = try EtcdStore(endpoints: [etcd.endpoint])
    }

    override func tearDown() async throws {
        store?.close()
        etcd?.stop()
    }

    /// Two writers read the counter at the same revision and both write "1". The first
    /// attempt of A never reaches etcd (its member went away), and B's identical write lands
    /// meanwhile; A's retry must report a conflict, not take B's write for its own (which
    /// would lose one increment).
    func testAnIdenticalWriteByAnotherWriterIsAConflict() async throws {
        let o = try await store.create(key, value: Data("0".utf8))
        let other = try EtcdStore(endpoints: [etcd.endpoint])
        defer { other.close() }
        let key = self.key
        store.attemptHook = { what, attempt, sent in
            if what == "update", attempt == 0, !sent {
                _ = try await other.update(key, value: Data("1".utf8), expectedRevision: o.modRevision)
                throw memberWentAway
            }
        }
        do {
            let u = try await store.update(key, value: Data("1".utf8), expectedRevision: o.modRevision)
            XCTFail("the other writer's update was taken as this one's (revision \(u.modRevision)): an increment is lost")
        } catch StoreError.conflict(_, let expected, _) {
            XCTAssertEqual(expected, o.modRevision)
        }
        XCTAssertGreaterThan(store.failedAttemptCount, 0)
    }

    /// The first attempt is applied, then its answer is lost: the retry recognises it.
    func testAnAppliedUpdateWhoseAnswerWasLostSucceeds() async throws {
        let o = try await store.create(key, value: Data("0".utf8))
        store.attemptHook = { what, attempt, sent in
            if what == "update", attempt == 0, sent { throw memberWentAway }
        }
        let u = try await store.update(key, value: Data("1".utf8), expectedRevision: o.modRevision)
        let now = try await store.get(key)
        XCTAssertEqual(now?.modRevision, u.modRevision)
        XCTAssertEqual(now?.value, Data("1".utf8))
    }

    /// Same for create and delete: the retried delete returns what it deleted, not not-found.
    func testAnAppliedCreateAndDeleteWhoseAnswersWereLostSucceed() async throws {
        store.attemptHook = { what, attempt, sent in
            if what == "create" || what == "delete", attempt == 0, sent { throw memberWentAway }
        }
        let c = try await store.create(key, value: Data("0".utf8))
        let d = try await store.delete(key, expectedRevision: c.modRevision)
        XCTAssertEqual(d.value, Data("0".utf8))
        XCTAssertGreaterThan(d.modRevision, c.modRevision)
        let gone = try await store.get(key)
        XCTAssertNil(gone)
        XCTAssertEqual(store.failedAttemptCount, 2)
    }

    /// The same for a create that requires its namespace (the API's one-transaction create):
    /// the retry finds the object it wrote and returns it, not already-exists; and a retry
    /// whose namespace was deleted meanwhile by someone else is still refused as not found.
    func testAnAppliedCreateInANamespaceWhoseAnswerWasLostSucceeds() async throws {
        let ns = ObjectKey(resource: "namespaces", namespace: "", name: "default")
        _ = try await store.create(ns, value: Data("ns".utf8))
        store.attemptHook = { what, attempt, sent in
            if what == "create", attempt == 0, sent { throw memberWentAway }
        }
        let c = try await store.create(key, value: Data("0".utf8), ttl: nil, parent: ns)
        let now = try await store.get(key)
        XCTAssertEqual(now?.modRevision, c.modRevision)
        XCTAssertEqual(now?.value, Data("0".utf8))
        XCTAssertEqual(store.failedAttemptCount, 1)

        let other = try EtcdStore(endpoints: [etcd.endpoint])
        defer { other.close() }
        let second = ObjectKey(resource: "configmaps", namespace: "default", name: "second")
        store.attemptHook = { what, attempt, sent in
            if what == "create", attempt == 0, !sent {
                _ = try await other.delete(ns, expectedRevision: nil)
                throw memberWentAway
            }
        }
        do {
            _ = try await store.create(second, value: Data("1".utf8), ttl: nil, parent: ns)
            XCTFail("created in a namespace that was deleted before the create reached etcd")
        } catch StoreError.notFound(let k) { XCTAssertEqual(k, ns) }
    }

    /// Writes in flight together when no lease is current wait for one grant: 32 expiring
    /// creates at once on a fresh store grant two leases (the write marker's and the one for
    /// their TTL), not one per write; all 32 keys are written.
    func testWritesInFlightTogetherShareOneLeaseGrant() async throws {
        let store = self.store!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<32 {
                group.addTask {
                    let k = ObjectKey(resource: "events", namespace: "default", name: "e\(i)")
                    _ = try await store.create(k, value: Data("\(i)".utf8), ttl: .seconds(300))
                }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(store.leaseGrantCount, 2, "one grant for the marker's lease and one for the events' TTL")
        let (items, _) = try await store.list(resource: "events", namespace: "default")
        XCTAssertEqual(items.count, 32)
    }

    /// etcd's server sends an HTTP/2 PING for about every request (grpc-go's bandwidth
    /// estimation); swift-nio-http2 drops a connection that receives more than 200 control
    /// frames in 30 s unless they are answered before it sees them (HTTP2PingAnswerer).
    /// 600 writes in a row must not lose the connection once.
    func testABurstOfWritesKeepsItsConnection() async throws {
        var rev = try await store.create(key, value: Data("0".utf8)).modRevision
        for i in 1...600 {
            rev = try await store.update(key, value: Data(String(i).utf8), expectedRevision: rev).modRevision
        }
        XCTAssertEqual(store.failedAttemptCount, 0, "the connection to etcd was dropped during the burst")
    }
}

/// What EtcdAmbiguousWriteTests throw from EtcdStore.attemptHook.
let memberWentAway = RPCError(code: .unavailable, message: "test: the member went away")
