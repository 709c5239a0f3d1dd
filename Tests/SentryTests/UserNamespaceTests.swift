import XCTest
@testable import Sentry

/// The parts of Kernel/UserNamespaces.swift that need no kernel: the
/// uid_map/gid_map line parser (Linux's map_write rules) and the initial
/// namespace's identity mapping. fs/149 checks the rest against Linux.
final class UserNamespaceTests: XCTestCase {
    private func parse(_ s: String) -> [IDExtent]? { UserNamespace.parseMap(Array(s.utf8)) }

    func testWellFormedMaps() {
        XCTAssertEqual(parse("0 1000 1"), [IDExtent(first: 0, lower: 1000, count: 1)])
        XCTAssertEqual(parse("0 1000 1\n"), [IDExtent(first: 0, lower: 1000, count: 1)])
        XCTAssertEqual(parse("  0\t0\t1  \n"), [IDExtent(first: 0, lower: 0, count: 1)])
        XCTAssertEqual(parse("2 0 2\n4 6 2"), [IDExtent(first: 2, lower: 0, count: 2), IDExtent(first: 4, lower: 6, count: 2)])
        // The text ends at a NUL: what follows is ignored.
        XCTAssertEqual(UserNamespace.parseMap(Array("0 0 1\n".utf8) + [0] + Array(" 4 3".utf8)), [IDExtent(first: 0, lower: 0, count: 1)])
        XCTAssertEqual(parse("4294967294 0 1"), [IDExtent(first: 4294967294, lower: 0, count: 1)])
    }

    func testMalformedMaps() {
        for bad in ["", "\n", "0 0", "0 0 0", "x 0 1", "0 0 1 junk", "0 0 1\n\n", "0 0 1\n0 5 1", "0 0 1\n5 0 1",
                    "4294967295 0 1", "0 4294967294 2", "0 0 4294967296", "00 1 1x"] {
            XCTAssertNil(parse(bad), bad)
        }
        let tooMany = (0..<341).map { "\($0) \($0) 1" }.joined(separator: "\n")
        XCTAssertNil(parse(tooMany))
        XCTAssertEqual(parse((0..<340).map { "\($0) \($0) 1" }.joined(separator: "\n"))?.count, 340)
    }

    func testInitialNamespaceMapsEveryID() {
        let root = UserNamespace.root
        XCTAssertTrue(root.isRoot)
        XCTAssertEqual(root.kernelUID(1234), 1234)
        XCTAssertNil(root.kernelUID(UInt32.max))                  // (uid_t)-1 names no one
        XCTAssertEqual(root.showGID(65534), 65534)
        XCTAssertTrue(root.maySetgroups)
        XCTAssertEqual(String(decoding: root.mapText(uid: true, reader: root), as: UTF8.self),
                       "         0          0 4294967295\n")
    }

    func testCapabilitiesInTheInitialNamespace() {
        let rootCreds = Credentials(uid: 0, gid: 0, groups: [])
        XCTAssertTrue(rootCreds.has(Cap.sysAdmin))
        XCTAssertTrue(rootCreds.capable(Cap.setuid, in: .root))
        XCTAssertTrue(rootCreds.capable(Cap.chown, over: 1000, 1000))
        let user = Credentials(uid: 1000, gid: 1000, groups: [])
        XCTAssertFalse(user.has(Cap.sysAdmin))
        XCTAssertFalse(user.capable(Cap.chown, over: 1000, 1000))
        XCTAssertEqual(user.rootUID, 0)
    }
}
