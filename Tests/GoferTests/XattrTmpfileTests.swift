// Protocol version 2: user.* extended attributes on the host file, and
// O_TMPFILE files that link names later.

import Foundation
import Glibc
import XCTest
import GoferProtocol

/// The host's xattr calls for checking from outside (not in the Glibc module).
enum HostXattr {
    private typealias GetFn = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    private typealias SetFn = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32
    private static let getFn = unsafeBitCast(dlsym(nil, "lgetxattr")!, to: GetFn.self)
    private static let setFn = unsafeBitCast(dlsym(nil, "lsetxattr")!, to: SetFn.self)

    static func get(_ path: String, _ name: String) -> String? {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { getFn(path, name, $0.baseAddress, $0.count) }
        return n < 0 ? nil : String(decoding: buf[..<n], as: UTF8.self)
    }

    static func bytes(_ path: String, _ name: String) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { getFn(path, name, $0.baseAddress, $0.count) }
        return n < 0 ? nil : Array(buf[..<n])
    }

    @discardableResult
    static func set(_ path: String, _ name: String, _ value: String) -> Int32 {
        let v = Array(value.utf8)
        return v.withUnsafeBytes { setFn(path, name, $0.baseAddress, $0.count, 0) } == 0 ? 0 : errno
    }
}

final class XattrTests: GoferTestCase {
    func testUserXattrsReachTheHostFile() throws {
        tree.write("f", "data")
        tree.mkdir("d")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        let d = try ok(client.walk(root, b("d"))).0

        try ok(client.setxattr(f, b("user.a"), b("1"), flags: 0))
        XCTAssertEqual(HostXattr.get(tree.path("f"), "user.a"), "1")
        XCTAssertEqual(try ok(client.getxattr(f, b("user.a"))), b("1"))
        fails(client.setxattr(f, b("user.a"), b("2"), flags: 1), EEXIST, "XATTR_CREATE")
        fails(client.setxattr(f, b("user.b"), b("2"), flags: 2), ENODATA, "XATTR_REPLACE")
        fails(client.setxattr(f, b("user.a"), b("2"), flags: 3), EEXIST, "both flags, present")
        fails(client.setxattr(f, b("user.b"), b("2"), flags: 3), ENODATA, "both flags, absent")
        fails(client.getxattr(f, b("user.b")), ENODATA)
        try ok(client.setxattr(f, b("user.a"), [], flags: 2))
        XCTAssertEqual(try ok(client.getxattr(f, b("user.a"))), [])

        // Set on the host: seen through the Gofer, and only user.* names are listed.
        XCTAssertEqual(HostXattr.set(tree.path("f"), "user.host", "h"), 0)
        XCTAssertEqual(HostXattr.set(tree.path("f"), "trusted.hidden", "t"), 0)
        let list = try ok(client.listxattr(f))
        XCTAssertEqual(Set(list.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }), ["user.a", "user.host"])
        XCTAssertEqual(list.last, 0)
        try ok(client.removexattr(f, b("user.host")))
        fails(client.removexattr(f, b("user.host")), ENODATA)
        XCTAssertNil(HostXattr.get(tree.path("f"), "user.host"))

        // Directories too, through their own handle.
        try ok(client.setxattr(d, b("user.dir"), b("dv"), flags: 0))
        XCTAssertEqual(HostXattr.get(tree.path("d"), "user.dir"), "dv")
        XCTAssertEqual(try ok(client.listxattr(d)), b("user.dir") + [0])

        // A 64 KiB value fits a reply; more is E2BIG before anything is sent.
        fails(client.setxattr(f, b("user.big"), [UInt8](repeating: 1, count: GoferWire.maxXattrValue + 1), flags: 0), E2BIG)
    }

    /// The two POSIX ACLs reach the host file through getacl/setacl, with
    /// the host kernel keeping the mode in step.
    func testACLsReachTheHostFile() throws {
        tree.write("f", "data")
        tree.mkdir("d")
        tree.symlink("l", "f")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        let d = try ok(client.walk(root, b("d"))).0
        let l = try ok(client.walk(root, b("l"))).0
        func acl(_ es: [(UInt16, UInt16, UInt32)]) -> [UInt8] {
            var out: [UInt8] = [2, 0, 0, 0]
            for e in es {
                withUnsafeBytes(of: e.0.littleEndian) { out += $0 }
                withUnsafeBytes(of: e.1.littleEndian) { out += $0 }
                withUnsafeBytes(of: e.2.littleEndian) { out += $0 }
            }
            return out
        }
        let u = GoferACL.undefinedID
        let named = acl([(1, 6, u), (2, 4, 1000), (4, 4, u), (0x10, 6, u), (0x20, 0, u)])
        fails(client.getacl(f, .access), ENODATA)
        try ok(client.setacl(f, .access, named))
        XCTAssertEqual(try ok(client.getacl(f, .access)), named)
        XCTAssertEqual(HostXattr.bytes(tree.path("f"), "system.posix_acl_access"), named)
        XCTAssertEqual((tree.lstat("f")?.st_mode ?? 0) & 0o777, 0o660, "the mask is the group bits")
        fails(client.setacl(f, .default, named), EACCES, "a default ACL on a file")
        fails(client.setacl(l, .access, named), EOPNOTSUPP, "a symlink")
        fails(client.setacl(f, .access, Array(named.dropLast(8))), EINVAL, "no OTHER: refused by the client")
        try ok(client.setacl(d, .default, named))
        XCTAssertEqual(try ok(client.getacl(d, .default)), named)
        try ok(client.setacl(f, .access, []))
        fails(client.getacl(f, .access), ENODATA)
        XCTAssertNil(HostXattr.get(tree.path("f"), "system.posix_acl_access"))
    }

    func testOnlyTheUserNamespaceCrosses() throws {
        tree.write("f", "data")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        fails(client.setxattr(f, b("trusted.x"), b("1"), flags: 0), EOPNOTSUPP)
        fails(client.setxattr(f, b("security.capability"), b("1"), flags: 0), EOPNOTSUPP)
        fails(client.getxattr(f, b("system.posix_acl_access")), EOPNOTSUPP)
        fails(client.removexattr(f, b("trusted.x")), EOPNOTSUPP)
        fails(client.setxattr(f, b("user."), b("1"), flags: 0), EINVAL)
        fails(client.setxattr(f, [], b("1"), flags: 0), ERANGE)
        fails(client.setxattr(f, b("user." + String(repeating: "n", count: 251)), b("1"), flags: 0), ERANGE)
        fails(client.setxattr(f, b("user.a"), b("1"), flags: 4), EINVAL)
        XCTAssertNil(HostXattr.get(tree.path("f"), "trusted.x"))
        XCTAssertNil(HostXattr.get(tree.path("f"), "security.capability"))
    }

    func testSymlinksAndSpecialFilesHaveNoUserXattrs() throws {
        tree.write("f", "data")
        tree.symlink("l", "f")
        XCTAssertEqual(mkfifo(tree.path("p"), 0o644), 0)
        let root = try attachRoot()
        for name in ["l", "p"] {
            let n = try ok(client.walk(root, b(name))).0
            fails(client.setxattr(n, b("user.a"), b("1"), flags: 0), EPERM, name)
            fails(client.getxattr(n, b("user.a")), ENODATA, name)
            fails(client.removexattr(n, b("user.a")), EPERM, name)
            XCTAssertEqual(try ok(client.listxattr(n)), [], name)
        }
        // The symlink was not followed to its target.
        XCTAssertNil(HostXattr.get(tree.path("f"), "user.a"))
    }

    func testRenamedAwayFileIsStale() throws {
        tree.write("f", "data")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        // Replaced behind the Gofer's back: the reopen by name notices.
        XCTAssertEqual(rename(tree.path("f"), tree.path("g")), 0)
        tree.write("f", "other")
        fails(client.setxattr(f, b("user.a"), b("1"), flags: 0), ESTALE)
        XCTAssertNil(HostXattr.get(tree.path("f"), "user.a"))
    }
}

final class TmpfileTests: GoferTestCase {
    func testTmpfileThenLink() throws {
        tree.mkdir("d")
        let root = try attachRoot()
        let d = try ok(client.walk(root, b("d"))).0
        let (t, st, fd) = try ok(client.tmpfile(d, flags: O_RDWR, mode: 0o640, uid: 42, gid: 43))
        XCTAssertTrue(st.isRegular)
        XCTAssertEqual(st.nlink, 0)
        XCTAssertEqual(st.mode & 0o7777, 0o640)
        XCTAssertEqual(st.uid, 42)
        XCTAssertEqual(st.gid, 43)
        XCTAssertEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC)
        XCTAssertEqual(writeString(fd, "tmp"), 3)
        XCTAssertEqual(try ok(client.getdents(d)), [], "an O_TMPFILE file has no name")

        // It takes xattrs, a chmod, a truncate and a second open while unnamed.
        try ok(client.setxattr(t, b("user.t"), b("v"), flags: 0))
        var a = GoferSetAttr()
        a.mode = 0o604
        try ok(client.setattr(t, a))
        // (A duplicate of the Gofer's fd, so it shares the host offset: read with pread as the Sentry does.)
        let again = try ok(client.open(t, flags: O_RDONLY))
        var three = [UInt8](repeating: 0, count: 3)
        XCTAssertEqual(pread(again, &three, 3, 0), 3)
        XCTAssertEqual(three, b("tmp"))
        close(again)

        let (n, nst) = try ok(client.link(d, b("named"), target: t))
        XCTAssertEqual(nst.nlink, 1)
        XCTAssertEqual(tree.read("d/named"), "tmp")
        XCTAssertEqual(HostXattr.get(tree.path("d/named"), "user.t"), "v")
        XCTAssertEqual(UInt32(tree.lstat("d/named")!.st_mode) & 0o7777, 0o604)
        fails(client.link(d, b("named"), target: t), EEXIST)
        // The donated fd writes the now-named file.
        XCTAssertEqual(pwrite(fd, "T", 1, 0), 1)
        close(fd)
        XCTAssertEqual(tree.read("d/named"), "Tmp")
        XCTAssertEqual(try ok(client.stat(n)).nlink, 1)
        client.close(t)
        XCTAssertEqual(tree.read("d/named"), "Tmp", "closing the tmpfile FID leaves the named file")
    }

    func testExclusiveTmpfileCannotBeLinked() throws {
        let root = try attachRoot()
        let (t, _, fd) = try ok(client.tmpfile(root, flags: O_WRONLY | O_EXCL, mode: 0o600, uid: 0, gid: 0))
        defer { close(fd) }
        fails(client.link(root, b("x"), target: t), ENOENT)
        XCTAssertFalse(tree.exists("x"))
    }

    func testTmpfileArguments() throws {
        tree.write("f", "data")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        fails(client.tmpfile(root, flags: O_RDONLY, mode: 0o600, uid: 0, gid: 0), EINVAL, "read-only")
        fails(client.tmpfile(root, flags: O_RDWR | O_DIRECTORY, mode: 0o600, uid: 0, gid: 0), EINVAL, "O_DIRECTORY")
        fails(client.tmpfile(f, flags: O_RDWR, mode: 0o600, uid: 0, gid: 0), ENOTDIR)
        fails(client.tmpfile(0xDEAD_0000_0001, flags: O_RDWR, mode: 0o600, uid: 0, gid: 0), EBADF)
    }
}

final class ReadOnlyXattrTmpfileTests: GoferTestCase {
    override var serveReadOnly: Bool { true }

    func testReadsWorkChangesAreEROFS() throws {
        tree.write("f", "data")
        XCTAssertEqual(HostXattr.set(tree.path("f"), "user.img", "i"), 0)
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        XCTAssertEqual(try ok(client.getxattr(f, b("user.img"))), b("i"))
        XCTAssertEqual(try ok(client.listxattr(f)), b("user.img") + [0])
        fails(client.setxattr(f, b("user.a"), b("1"), flags: 0), EROFS)
        fails(client.removexattr(f, b("user.img")), EROFS)
        fails(client.tmpfile(root, flags: O_RDWR, mode: 0o600, uid: 0, gid: 0), EROFS)
        XCTAssertEqual(HostXattr.get(tree.path("f"), "user.img"), "i")
    }
}
