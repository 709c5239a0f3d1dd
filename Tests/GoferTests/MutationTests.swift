// mkdir, symlink, link, mknod, unlink, rename, setattr.

import Foundation
import Glibc
import XCTest
@testable import Gofer
import GoferProtocol

final class MutationTests: GoferTestCase {
    func testMkdir() throws {
        let root = try attachRoot()
        let old = umask(0o077)
        defer { umask(old) }
        let (d, st) = try ok(client.mkdir(root, b("dir"), mode: 0o2751, uid: 42, gid: 43))
        XCTAssertTrue(st.isDirectory)
        XCTAssertEqual(st.mode & 0o7777, 0o2751)
        XCTAssertEqual(st.uid, 42)
        XCTAssertEqual(st.gid, 43)
        let host = tree.lstat("dir")!
        XCTAssertEqual(UInt32(host.st_mode) & 0o7777, 0o2751)
        XCTAssertEqual(host.st_uid, 42)
        // The new FID is a usable directory.
        let (sub, _) = try ok(client.mkdir(d, b("sub"), mode: 0o755, uid: 0, gid: 0))
        XCTAssertTrue(tree.exists("dir/sub"))
        XCTAssertEqual(try ok(client.getdents(d)).map(\.name), [b("sub")])
        XCTAssertEqual(try ok(client.getdents(sub)), [])
        fails(client.mkdir(root, b("dir"), mode: 0o755, uid: 0, gid: 0), EEXIST)
        fails(client.mkdir(root, b(".."), mode: 0o755, uid: 0, gid: 0), EINVAL)
        tree.write("file", "")
        let f = try ok(client.walk(root, b("file"))).0
        fails(client.mkdir(f, b("x"), mode: 0o755, uid: 0, gid: 0), ENOTDIR)
    }

    func testSymlink() throws {
        let root = try attachRoot()
        let (l, st) = try ok(client.symlink(root, b("link"), target: b("../../etc/passwd"), uid: 7, gid: 8))
        XCTAssertTrue(st.isSymlink)
        XCTAssertEqual(st.uid, 7)
        XCTAssertEqual(st.gid, 8)
        XCTAssertEqual(try ok(client.readlink(l)), b("../../etc/passwd"))
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink(tree.path("link"), &buf, 64)
        XCTAssertEqual(String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self), "../../etc/passwd")
        XCTAssertEqual(tree.lstat("link")!.st_uid, 7)
        fails(client.symlink(root, b("link"), target: b("x"), uid: 0, gid: 0), EEXIST)
        fails(client.symlink(root, b("e"), target: [], uid: 0, gid: 0), ENOENT)
        fails(client.symlink(root, b("e"), target: [0x61, 0], uid: 0, gid: 0), EINVAL)
        fails(client.symlink(root, b("e"), target: [UInt8](repeating: 0x61, count: 4096), uid: 0, gid: 0), ENAMETOOLONG)
        let long = [UInt8](repeating: 0x61, count: 4095)
        let (ll, _) = try ok(client.symlink(root, b("long"), target: long, uid: 0, gid: 0))
        XCTAssertEqual(try ok(client.readlink(ll)), long)
    }

    func testLink() throws {
        tree.write("f", "content")
        tree.mkdir("d")
        tree.symlink("sl", "/")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        let d = try ok(client.walk(root, b("d"))).0
        let (g, st) = try ok(client.link(d, b("g"), target: f))
        XCTAssertEqual(st.nlink, 2)
        XCTAssertEqual(st.ino, UInt64(tree.lstat("f")!.st_ino))
        XCTAssertEqual(tree.read("d/g"), "content")
        let fd = try ok(client.open(g, flags: O_RDONLY))
        XCTAssertEqual(readAll(fd), "content")
        close(fd)
        fails(client.link(d, b("g"), target: f), EEXIST)
        fails(client.link(root, b("dirlink"), target: d), EPERM, "hard links to directories")
        fails(client.link(root, b("x"), target: 0xDEAD_BEEF), EBADF, "only issued FIDs can be linked")
        // Linking a symlink links the link itself, never what it points to.
        let sl = try ok(client.walk(root, b("sl"))).0
        let (sl2, sst) = try ok(client.link(root, b("sl2"), target: sl))
        XCTAssertTrue(sst.isSymlink)
        XCTAssertEqual(try ok(client.readlink(sl2)), b("/"))
    }

    func testMknod() throws {
        let root = try attachRoot()
        let (_, fifo) = try ok(client.mknod(root, b("fifo"), mode: UInt32(S_IFIFO) | 0o620, uid: 5, gid: 6))
        XCTAssertEqual(fifo.fileType, UInt32(S_IFIFO))
        XCTAssertEqual(fifo.mode & 0o7777, 0o620)
        XCTAssertEqual(fifo.uid, 5)
        let (_, sock) = try ok(client.mknod(root, b("sock"), mode: UInt32(S_IFSOCK) | 0o755, uid: 0, gid: 0))
        XCTAssertEqual(sock.fileType, UInt32(S_IFSOCK))
        XCTAssertEqual(sock.mode & 0o7777, 0o755)
        let (_, reg) = try ok(client.mknod(root, b("reg"), mode: 0o644, uid: 0, gid: 0))
        XCTAssertTrue(reg.isRegular)
        XCTAssertEqual(UInt32(tree.lstat("reg")!.st_mode) & 0o7777, 0o644)
        fails(client.mknod(root, b("chr"), mode: UInt32(S_IFCHR) | 0o666, uid: 0, gid: 0), EPERM)
        fails(client.mknod(root, b("blk"), mode: UInt32(S_IFBLK) | 0o666, uid: 0, gid: 0), EPERM)
        fails(client.mknod(root, b("dir"), mode: UInt32(S_IFDIR) | 0o755, uid: 0, gid: 0), EINVAL)
        fails(client.mknod(root, b("fifo"), mode: UInt32(S_IFIFO) | 0o600, uid: 0, gid: 0), EEXIST)
        XCTAssertFalse(tree.exists("chr") || tree.exists("blk") || tree.exists("dir"))
    }

    func testUnlink() throws {
        tree.write("f", "")
        tree.mkdir("d")
        tree.mkdir("full")
        tree.write("full/x", "")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        try ok(client.unlink(root, b("f"), flags: 0))
        XCTAssertFalse(tree.exists("f"))
        fails(client.open(f, flags: O_RDONLY), ESTALE, "an unlinked file's FID can no longer be opened")
        XCTAssertEqual(try ok(client.stat(f)).nlink, 0, "but it can still be stat'ed")
        fails(client.unlink(root, b("f"), flags: 0), ENOENT)
        fails(client.unlink(root, b("d"), flags: 0), EISDIR)
        fails(client.unlink(root, b("full"), flags: AT_REMOVEDIR), ENOTEMPTY)
        try ok(client.unlink(root, b("d"), flags: AT_REMOVEDIR))
        XCTAssertFalse(tree.exists("d"))
        fails(client.unlink(root, b(".."), flags: AT_REMOVEDIR), EINVAL)
        fails(client.unlink(root, b("full"), flags: 0x1234), EINVAL)
        let full = try ok(client.walk(root, b("full"))).0
        fails(client.unlink(full, b("x"), flags: AT_REMOVEDIR), ENOTDIR)
    }

    func testRename() throws {
        tree.write("a", "A")
        tree.write("b", "B")
        tree.mkdir("d")
        let root = try attachRoot()
        let d = try ok(client.walk(root, b("d"))).0
        let a = try ok(client.walk(root, b("a"))).0
        let bFid = try ok(client.walk(root, b("b"))).0

        // A FID follows its file across a rename done through the Gofer.
        try ok(client.rename(root, b("a"), d, b("moved"), flags: 0))
        XCTAssertEqual(tree.read("d/moved"), "A")
        var fd = try ok(client.open(a, flags: O_RDONLY))
        XCTAssertEqual(readAll(fd), "A")
        close(fd)

        fails(client.rename(d, b("moved"), root, b("b"), flags: HostSys.RENAME_NOREPLACE), EEXIST)
        fails(client.rename(root, b("nope"), root, b("x"), flags: 0), ENOENT)
        fails(client.rename(root, b("b"), root, b("x"), flags: 3), EINVAL)
        fails(client.rename(root, b("b"), root, b("x"), flags: 4), EINVAL)
        fails(client.rename(root, b(".."), root, b("x"), flags: 0), EINVAL)

        try ok(client.rename(d, b("moved"), root, b("b"), flags: HostSys.RENAME_EXCHANGE))
        XCTAssertEqual(tree.read("b"), "A")
        XCTAssertEqual(tree.read("d/moved"), "B")
        fd = try ok(client.open(bFid, flags: O_RDONLY))
        XCTAssertEqual(readAll(fd), "B", "exchange moves both FIDs")
        close(fd)
        fd = try ok(client.open(a, flags: O_RDONLY))
        XCTAssertEqual(readAll(fd), "A")
        close(fd)

        // Replacing rename: the displaced file's FID goes stale.
        try ok(client.rename(root, b("b"), d, b("moved"), flags: 0))
        fails(client.open(bFid, flags: O_RDONLY), ESTALE)
        fd = try ok(client.open(a, flags: O_RDONLY))
        XCTAssertEqual(readAll(fd), "A")
        close(fd)

        // Directories can be moved; their FIDs keep working.
        try ok(client.rename(root, b("d"), root, b("d2"), flags: 0))
        XCTAssertEqual(try ok(client.getdents(d)).map(\.name), [b("moved")])
        fails(client.rename(root, b("d2"), d, b("inside"), flags: 0), EINVAL, "into itself")
    }

    func testSetattr() throws {
        tree.write("f", "0123456789")
        tree.mkdir("d")
        tree.symlink("l", "f")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        let d = try ok(client.walk(root, b("d"))).0
        let l = try ok(client.walk(root, b("l"))).0

        var a = GoferSetAttr()
        a.size = 4
        try ok(client.setattr(f, a))
        XCTAssertEqual(tree.read("f"), "0123")

        a = GoferSetAttr()
        a.mode = 0o4711
        a.uid = 100
        a.gid = 200
        try ok(client.setattr(f, a))
        var st = try ok(client.stat(f))
        XCTAssertEqual(st.mode & 0o7777, 0o4711, "mode applies after chown, keeping set-id bits")
        XCTAssertEqual(st.uid, 100)
        XCTAssertEqual(st.gid, 200)

        a = GoferSetAttr()
        a.atime = (sec: 1_000_000, nsec: 5)
        a.mtime = (sec: 2_000_000, nsec: 7)
        try ok(client.setattr(f, a))
        st = try ok(client.stat(f))
        XCTAssertEqual(st.atimeSec, 1_000_000)
        XCTAssertEqual(st.atimeNsec, 5)
        XCTAssertEqual(st.mtimeSec, 2_000_000)
        XCTAssertEqual(st.mtimeNsec, 7)

        a = GoferSetAttr()
        a.mtime = (sec: 3_000_000, nsec: 0)   // atime left alone
        try ok(client.setattr(f, a))
        st = try ok(client.stat(f))
        XCTAssertEqual(st.atimeSec, 1_000_000)
        XCTAssertEqual(st.mtimeSec, 3_000_000)

        a = GoferSetAttr()
        a.atime = (sec: 0, nsec: GoferSetAttr.utimeNow)
        try ok(client.setattr(f, a))
        XCTAssertGreaterThan(try ok(client.stat(f)).atimeSec, 1_000_000_000)

        a = GoferSetAttr()
        a.mode = 0o700
        try ok(client.setattr(d, a))
        XCTAssertEqual(UInt32(tree.lstat("d")!.st_mode) & 0o7777, 0o700)

        // Symlinks: owner and times apply to the link itself; no chmod.
        a = GoferSetAttr()
        a.uid = 9
        a.mtime = (sec: 12345, nsec: 0)
        try ok(client.setattr(l, a))
        XCTAssertEqual(tree.lstat("l")!.st_uid, 9)
        XCTAssertEqual(tree.lstat("l")!.st_mtim.tv_sec, 12345)
        XCTAssertEqual(tree.lstat("f")!.st_uid, 100, "target untouched")
        a = GoferSetAttr()
        a.mode = 0o777
        fails(client.setattr(l, a), EOPNOTSUPP)

        a = GoferSetAttr()
        a.size = 0
        fails(client.setattr(d, a), EISDIR)
        a.size = -1
        fails(client.setattr(f, a), EINVAL)
        a = GoferSetAttr()
        a.atime = (sec: 0, nsec: 1_000_000_000)
        fails(client.setattr(f, a), EINVAL)
        try ok(client.setattr(f, GoferSetAttr()), "empty setattr is a no-op")
    }

    func testChmodFallbackWithoutFchmodat2() throws {
        tree.write("f", "")
        tree.mkdir("d")
        XCTAssertEqual(mkfifo(tree.path("p"), 0o600), 0)
        let root = try attachRoot()
        let (_, _) = try ok(client.mknod(root, b("s"), mode: UInt32(S_IFSOCK) | 0o600, uid: 0, gid: 0))
        Server.forceChmodFallback = true
        defer { Server.forceChmodFallback = false }
        for name in ["f", "d", "p", "s"] {
            let fid = try ok(client.walk(root, b(name))).0
            var a = GoferSetAttr()
            a.mode = 0o751
            try ok(client.setattr(fid, a), name)
            XCTAssertEqual(UInt32(tree.lstat(name)!.st_mode) & 0o7777, 0o751, name)
        }
        let (_, fifo) = try ok(client.mknod(root, b("p2"), mode: UInt32(S_IFIFO) | 0o640, uid: 0, gid: 0))
        XCTAssertEqual(fifo.mode & 0o7777, 0o640)
    }
}

final class ReadOnlyTests: GoferTestCase {
    override var serveReadOnly: Bool { true }

    func testEveryMutationIsEROFS() throws {
        tree.write("f", "data")
        tree.mkdir("d")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        fails(client.create(root, b("n"), flags: O_RDWR, mode: 0o644, uid: 0, gid: 0), EROFS, "create")
        fails(client.mkdir(root, b("n"), mode: 0o755, uid: 0, gid: 0), EROFS, "mkdir")
        fails(client.symlink(root, b("n"), target: b("f"), uid: 0, gid: 0), EROFS, "symlink")
        fails(client.link(root, b("n"), target: f), EROFS, "link")
        fails(client.mknod(root, b("n"), mode: UInt32(S_IFIFO) | 0o644, uid: 0, gid: 0), EROFS, "mknod")
        fails(client.unlink(root, b("f"), flags: 0), EROFS, "unlink")
        fails(client.rename(root, b("f"), root, b("g"), flags: 0), EROFS, "rename")
        var a = GoferSetAttr()
        a.mode = 0o777
        fails(client.setattr(f, a), EROFS, "setattr")
        fails(client.open(f, flags: O_WRONLY), EROFS)
        fails(client.open(f, flags: O_RDWR), EROFS)
        fails(client.open(f, flags: O_RDONLY | O_TRUNC), EROFS)
        XCTAssertEqual(tree.read("f"), "data")
        XCTAssertFalse(tree.exists("n") || tree.exists("g"))

        // Reading still works.
        let fd = try ok(client.open(f, flags: O_RDONLY))
        XCTAssertEqual(readAll(fd), "data")
        close(fd)
        XCTAssertEqual(Set(try ok(client.getdents(root)).map(\.name)), [b("f"), b("d")])
    }
}
