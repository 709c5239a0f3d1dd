// A Gofer serving read-only but not recursively (`moat gofer --read-only
// --non-recursive`, the CRI's readonly mount without recursive_read_only)
// refuses a write exactly where the host mount holding the node is
// read-only: here a read-only bind mount inside the served tree, with a
// writable tmpfs mounted below it. Needs root (it mounts; every mount is
// undone on the way out); skips without it, fails under CI=true.

import Foundation
import Glibc
import XCTest
import GoferProtocol

final class PerMountReadOnlyTests: GoferTestCase {
    override var serveReadOnly: Bool { true }
    override var serveRecursive: Bool { false }

    func testWritesAreRefusedOnlyOnReadOnlyHostMounts() throws {
        guard geteuid() == 0 else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { return XCTFail("needs root (mounts)") }
            throw XCTSkip("needs root (mounts)")
        }
        tree.mkdir("ro")
        tree.mkdir("ro/sub")
        let ro = tree.path("ro"), sub = tree.path("ro/sub")
        guard mount(ro, ro, nil, UInt(MS_BIND), nil) == 0 else { return XCTFail("bind mount: \(String(cString: strerror(errno)))") }
        defer { umount2(ro, Int32(MNT_DETACH)) }
        XCTAssertEqual(mount(nil, ro, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil), 0, "remount read-only")
        guard mount("tmpfs", sub, "tmpfs", 0, "size=1m") == 0 else { return XCTFail("tmpfs: \(String(cString: strerror(errno)))") }
        defer { umount2(sub, Int32(MNT_DETACH)) }

        let root = try attachRoot()
        // The served root's own mount (the test's /tmp) is writable.
        let (_, _, top) = try ok(client.create(root, b("top"), flags: O_WRONLY, mode: 0o644, uid: 0, gid: 0), "create on a writable mount")
        close(top)
        // The read-only bind: every kind of write is refused.
        let roFID = try ok(client.walk(root, b("ro"))).0
        fails(client.create(roFID, b("f"), flags: O_WRONLY, mode: 0o644, uid: 0, gid: 0), EROFS, "create")
        fails(client.mkdir(roFID, b("d"), mode: 0o755, uid: 0, gid: 0), EROFS, "mkdir")
        // Below it, the tmpfs keeps its own (writable) access.
        let subFID = try ok(client.walk(roFID, b("sub"))).0
        let (_, _, f) = try ok(client.create(subFID, b("f"), flags: O_WRONLY, mode: 0o644, uid: 0, gid: 0), "create on the tmpfs below")
        XCTAssertEqual(write(f, "x", 1), 1)
        close(f)
        _ = try ok(client.mkdir(subFID, b("d"), mode: 0o755, uid: 0, gid: 0), "mkdir on the tmpfs below")
        XCTAssertTrue(FileManager.default.fileExists(atPath: sub + "/f"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: sub + "/d"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: ro + "/f"))
    }
}
