// The server's FID table and node cache, tested directly.

import Glibc
import XCTest
@testable import Gofer
import GoferProtocol

final class FIDTableTests: XCTestCase {
    private func makeNode(parent: Node? = nil, name: String = "") -> Node {
        let fd = open("/", 0o10000000 /* O_PATH */ | O_CLOEXEC)
        var st = stat()
        XCTAssertEqual(fstat(fd, &st), 0)
        return Node(fd: fd, parent: parent, name: b(name), st: st)
    }

    func testBoundedAndGenerationTagged() throws {
        var table = FIDTable(limit: 3)
        let n = makeNode()
        let a = try XCTUnwrap(table.insert(n))
        let b1 = try XCTUnwrap(table.insert(n))
        let c = try XCTUnwrap(table.insert(n))
        XCTAssertNil(table.insert(n), "full table must refuse (ENFILE)")
        XCTAssertEqual(table.count, 3)
        XCTAssertNotEqual(a, 0)
        XCTAssertEqual(Set([a, b1, c]).count, 3)

        table.remove(b1)
        XCTAssertNil(table.lookup(b1))
        let d = try XCTUnwrap(table.insert(n), "a freed slot is reused")
        XCTAssertNotEqual(d, b1, "but under a new generation")
        XCTAssertEqual(d & 0xFFFF_FFFF, b1 & 0xFFFF_FFFF)
        XCTAssertNil(table.lookup(b1), "the old FID stays dead")
        XCTAssertTrue(table.lookup(d) === n)
        table.remove(b1) // removing a stale FID is a no-op
        XCTAssertTrue(table.lookup(d) === n)
        XCTAssertNil(table.lookup(0))
        XCTAssertNil(table.lookup(UInt64.max))
        table.removeAll()
        XCTAssertEqual(table.count, 0)
        XCTAssertNil(table.lookup(a))
    }

    func testReleaseFreesUnreferencedAncestorsOnly() throws {
        var table = FIDTable()
        weak var weakMid: Node?
        weak var weakLeaf: Node?
        let root = makeNode()
        var leafFID: FID = 0
        do {
            let mid = makeNode(parent: root, name: "mid")
            root.setChild(b("mid"), mid)
            let leaf = makeNode(parent: mid, name: "leaf")
            mid.setChild(b("leaf"), leaf)
            weakMid = mid
            weakLeaf = leaf
            leafFID = try XCTUnwrap(table.insert(leaf))
        }
        XCTAssertNotNil(weakMid, "kept alive by its child")
        XCTAssertTrue(root.child(b("mid")) === weakMid)
        table.remove(leafFID)
        XCTAssertNil(weakLeaf)
        XCTAssertNil(weakMid, "ancestor freed with its last child")
        XCTAssertNil(root.child(b("mid")), "and unhooked from the cache")
    }
}
