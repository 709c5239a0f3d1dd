import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest
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
