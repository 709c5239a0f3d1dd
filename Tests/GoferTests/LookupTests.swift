// attach, walk, walkMany, stat, readlink, getdents, statfs, close — and the
// lookups that must not leave the served tree.

import Foundation
import Glibc
import XCTest
import GoferProtocol

final class LookupTests: GoferTestCase {
    func testAttachReturnsTheRoot() throws {
        let (fid, st) = try ok(client.attach())
        XCTAssertNotEqual(fid, 0)
        XCTAssertTrue(st.isDirectory)
        var host = stat()
        XCTAssertEqual(lstat(tree.root, &host), 0)
        XCTAssertEqual(st.ino, UInt64(host.st_ino))
        XCTAssertEqual(st.dev, UInt64(host.st_dev))
        XCTAssertEqual(try ok(client.stat(fid)), st)
        // A second attach gives a distinct FID for the same directory.
        let (fid2, st2) = try ok(client.attach())
        XCTAssertNotEqual(fid, fid2)
        XCTAssertEqual(st2.ino, st.ino)
    }

    func testWalkOneComponent() throws {
        tree.write("file", "hello")
        tree.mkdir("dir")
        let root = try attachRoot()
        let (f, fst) = try ok(client.walk(root, b("file")))
        XCTAssertTrue(fst.isRegular)
        XCTAssertEqual(fst.size, 5)
        XCTAssertEqual(fst.ino, UInt64(tree.lstat("file")!.st_ino))
        let (d, dst) = try ok(client.walk(root, b("dir")))
        XCTAssertTrue(dst.isDirectory)
        XCTAssertEqual(try ok(client.stat(f)).ino, fst.ino)
        XCTAssertEqual(try ok(client.stat(d)).ino, dst.ino)
        fails(client.walk(root, b("missing")), ENOENT)
        fails(client.walk(f, b("x")), ENOTDIR, "walk from a file")
    }

    func testWalkRejectsSpecialNames() throws {
        tree.mkdir("dir")
        let root = try attachRoot()
        for bad in ["..", ".", "", "a/b", "/", "dir/.."] {
            fails(client.walk(root, b(bad)), EINVAL, "walk \(bad)")
        }
        fails(client.walk(root, [0x61, 0x00, 0x62]), EINVAL, "NUL in name")
        fails(client.walk(root, [UInt8](repeating: 0x61, count: 256)), ENAMETOOLONG)
        let r = client.walkMany(root, [b("dir"), b(".."), b("dir")])
        XCTAssertEqual(r.walked.count, 1)
        XCTAssertEqual(r.error, GoferErrno(EINVAL))
    }

    func testWalkMany() throws {
        try FileManager.default.createDirectory(atPath: tree.path("a/b/c"), withIntermediateDirectories: true)
        tree.write("a/b/c/f", "x")
        tree.symlink("a/link", "/etc")
        let root = try attachRoot()

        let all = client.walkMany(root, [b("a"), b("b"), b("c"), b("f")])
        XCTAssertNil(all.error)
        XCTAssertEqual(all.walked.count, 4)
        XCTAssertTrue(all.walked[3].1.isRegular)
        XCTAssertEqual(all.walked[3].1.ino, UInt64(tree.lstat("a/b/c/f")!.st_ino))

        let missing = client.walkMany(root, [b("a"), b("nope"), b("c")])
        XCTAssertEqual(missing.walked.count, 1)
        XCTAssertEqual(missing.error, GoferErrno(ENOENT))

        let throughFile = client.walkMany(root, [b("a"), b("b"), b("c"), b("f"), b("g")])
        XCTAssertEqual(throughFile.walked.count, 4)
        XCTAssertEqual(throughFile.error, GoferErrno(ENOTDIR))

        // A symlink in the middle stops the walk without an error: the Sentry resolves it.
        let viaLink = client.walkMany(root, [b("a"), b("link"), b("passwd")])
        XCTAssertNil(viaLink.error)
        XCTAssertEqual(viaLink.walked.count, 2)
        XCTAssertTrue(viaLink.walked[1].1.isSymlink)

        let none = client.walkMany(root, [])
        XCTAssertEqual(none.walked.count, 0)
        XCTAssertNil(none.error)
    }

    func testWalkManyLongerThanOneRequest() throws {
        // More components than fit in one walk message (maxWalkNames).
        let depth = GoferWire.maxWalkNames + 20
        var rel = ""
        for i in 0..<depth {
            rel += (i == 0 ? "" : "/") + "d"
            tree.mkdir(rel)
        }
        let root = try attachRoot()
        let r = client.walkMany(root, Array(repeating: b("d"), count: depth))
        XCTAssertNil(r.error)
        XCTAssertEqual(r.walked.count, depth)
        XCTAssertEqual(r.walked.last?.1.ino, UInt64(tree.lstat(rel)!.st_ino))
        let tooFar = client.walkMany(root, Array(repeating: b("d"), count: depth + 1))
        XCTAssertEqual(tooFar.walked.count, depth)
        XCTAssertEqual(tooFar.error, GoferErrno(ENOENT))
    }

    func testSymlinksAreNeverFollowed() throws {
        tree.symlink("toRoot", "/")
        tree.symlink("up", "../../..")
        tree.symlink("toSecret", tree.outside + "/secret")
        tree.symlink("relSecret", "../outside/secret")
        let root = try attachRoot()
        for (name, target) in [("toRoot", "/"), ("up", "../../.."), ("toSecret", tree.outside + "/secret"),
                               ("relSecret", "../outside/secret")] {
            let (fid, st) = try ok(client.walk(root, b(name)), name)
            XCTAssertTrue(st.isSymlink, name)
            XCTAssertEqual(st.ino, UInt64(tree.lstat(name)!.st_ino), "\(name) must be the link itself")
            XCTAssertEqual(try ok(client.readlink(fid)), b(target))
            fails(client.open(fid, flags: O_RDONLY), ELOOP, "open \(name)")
            fails(client.walk(fid, b("etc")), ENOTDIR, "walk through \(name)")
            fails(client.getdents(fid), ENOTDIR)
        }
        let r = client.walkMany(root, [b("toRoot"), b("etc"), b("passwd")])
        XCTAssertEqual(r.walked.count, 1)
        XCTAssertNil(r.error)
    }

    func testReadlinkOfNonSymlinkIsEINVAL() throws {
        tree.write("f", "")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        fails(client.readlink(f), EINVAL)
        fails(client.readlink(root), EINVAL)
    }

    func testGetdentsPagesThroughLargeDirectories() throws {
        let count = GoferWire.maxDirentsPerReply * 2 + 37
        tree.mkdir("big")
        var expected = Set<String>()
        for i in 0..<count {
            let name = "entry-\(i)-" + String(repeating: "x", count: i % 200)
            tree.write("big/" + name, "")
            expected.insert(name)
        }
        tree.mkdir("big/sub")
        expected.insert("sub")
        let root = try attachRoot()
        let big = try ok(client.walk(root, b("big"))).0
        let ents = try ok(client.getdents(big))
        XCTAssertEqual(ents.count, expected.count)
        XCTAssertEqual(Set(ents.map { String(decoding: $0.name, as: UTF8.self) }), expected)
        let sub = ents.first { $0.name == b("sub") }
        XCTAssertEqual(sub?.type, UInt8(DT_DIR))
        XCTAssertEqual(sub?.ino, UInt64(tree.lstat("big/sub")!.st_ino))
        XCTAssertEqual(ents.first { $0.name != b("sub") }?.type, UInt8(DT_REG))

        // Empty directory: no entries, not even "." and "..".
        let empty = try ok(client.walk(big, b("sub"))).0
        XCTAssertEqual(try ok(client.getdents(empty)), [])
        tree.write("plain", "")
        fails(client.getdents(try ok(client.walk(root, b("plain"))).0), ENOTDIR)
    }

    func testStatfs() throws {
        let root = try attachRoot()
        let s = try ok(client.statfs(root))
        XCTAssertGreaterThan(s.bsize, 0)
        XCTAssertEqual(s.namelen, 255)
        XCTAssertGreaterThan(s.blocks, 0)
    }

    func testCloseReleasesFID() throws {
        tree.write("f", "")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        client.close(f)
        fails(client.stat(f), EBADF)
        // A new FID never aliases the closed one even if its slot is reused.
        let g = try ok(client.walk(root, b("f"))).0
        XCTAssertNotEqual(f, g)
        fails(client.stat(f), EBADF)
        XCTAssertTrue(try ok(client.stat(g)).isRegular)
        client.closeMany([g, root, 12345])
        fails(client.stat(g), EBADF)
        fails(client.stat(root), EBADF)
        fails(client.stat(0), EBADF)
        XCTAssertFalse(client.isDead)
    }

    func testConcurrentCallsFromManyThreads() throws {
        for i in 0..<8 { tree.write("f\(i)", String(repeating: "y", count: i)) }
        let root = try attachRoot()
        let c = client!
        let failures = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        failures.initialize(repeating: 0, count: 8)
        defer { failures.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for _ in 0..<200 {
                guard case .success(let (fid, st)) = c.walk(root, b("f\(t)")), st.size == Int64(t),
                      case .success(let st2) = c.stat(fid), st2.ino == st.ino else {
                    failures[t] += 1
                    continue
                }
                c.close(fid)
            }
        }
        for t in 0..<8 { XCTAssertEqual(failures[t], 0, "thread \(t)") }
    }
}
