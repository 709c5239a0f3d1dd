// open and create: host fd donation, flag handling, ownership and modes.

import Foundation
import Glibc
import XCTest
import GoferProtocol

final class OpenCreateTests: GoferTestCase {
    func testOpenDonatesAWorkingFD() throws {
        tree.write("f", "hello")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0

        let rfd = try ok(client.open(f, flags: O_RDONLY))
        defer { close(rfd) }
        XCTAssertEqual(readAll(rfd), "hello")
        XCTAssertEqual(fcntl(rfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "received fd must be close-on-exec")
        XCTAssertEqual(fcntl(rfd, F_GETFL) & O_NONBLOCK, 0, "O_NONBLOCK only when asked for")
        XCTAssertEqual(fcntl(rfd, F_GETFL) & O_ACCMODE, O_RDONLY)

        let wfd = try ok(client.open(f, flags: O_RDWR))
        XCTAssertEqual(pwrite(wfd, "HE", 2, 0), 2)
        close(wfd)
        XCTAssertEqual(tree.read("f"), "HEllo")

        let afd = try ok(client.open(f, flags: O_WRONLY | O_APPEND))
        XCTAssertEqual(writeString(afd, "!"), 1)
        close(afd)
        XCTAssertEqual(tree.read("f"), "HEllo!")

        let tfd = try ok(client.open(f, flags: O_WRONLY | O_TRUNC))
        XCTAssertEqual(writeString(tfd, "new"), 3)
        close(tfd)
        XCTAssertEqual(tree.read("f"), "new")

        let nfd = try ok(client.open(f, flags: O_RDONLY | O_NONBLOCK))
        XCTAssertEqual(fcntl(nfd, F_GETFL) & O_NONBLOCK, O_NONBLOCK)
        close(nfd)
    }

    func testOpenFlagValidation() throws {
        tree.write("f", "x")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        fails(client.open(f, flags: O_RDONLY | O_CREAT), EINVAL)
        fails(client.open(f, flags: O_RDWR | O_EXCL), EINVAL)
        fails(client.open(f, flags: O_ACCMODE), EINVAL)
        fails(client.open(f, flags: O_RDONLY | O_DIRECTORY), ENOTDIR)
        // O_NOFOLLOW and O_CLOEXEC are accepted (they are always applied anyway).
        let fd = try ok(client.open(f, flags: O_RDONLY | O_NOFOLLOW | O_CLOEXEC))
        close(fd)
        fails(client.open(999_999, flags: O_RDONLY), EBADF)
    }

    func testOpenDirectories() throws {
        tree.mkdir("d")
        tree.write("d/x", "")
        let root = try attachRoot()
        let d = try ok(client.walk(root, b("d"))).0
        let fd = try ok(client.open(d, flags: O_RDONLY | O_DIRECTORY))
        defer { close(fd) }
        var st = stat()
        XCTAssertEqual(fstat(fd, &st), 0)
        XCTAssertEqual(UInt64(st.st_ino), UInt64(tree.lstat("d")!.st_ino))
        XCTAssertEqual(faccessat(fd, "x", F_OK, 0), 0, "a donated directory fd works as a dirfd")
        fails(client.open(d, flags: O_WRONLY), EISDIR)
        fails(client.open(d, flags: O_RDONLY | O_TRUNC), EISDIR)
        let rfd = try ok(client.open(root, flags: O_RDONLY))
        close(rfd)
    }

    func testOpenRefusesSpecialFiles() throws {
        XCTAssertEqual(mkfifo(tree.path("fifo"), 0o644), 0)
        let root = try attachRoot()
        let fifo = try ok(client.walk(root, b("fifo")))
        XCTAssertEqual(fifo.1.fileType, UInt32(S_IFIFO))
        fails(client.open(fifo.0, flags: O_RDONLY), ENXIO, "a FIFO must not block or be opened")
        if mknod(tree.path("null"), mode_t(S_IFCHR | 0o666), dev_t(0x103) /* makedev(1, 3) */) == 0 {
            let dev = try ok(client.walk(root, b("null"))).0
            fails(client.open(dev, flags: O_RDWR), EPERM, "device nodes are never opened")
        }
    }

    func testOpenAfterHostReplacedTheFileIsESTALE() throws {
        tree.write("f", "one")
        let root = try attachRoot()
        let f = try ok(client.walk(root, b("f"))).0
        unlink(tree.path("f"))
        tree.write("f", "two") // a different inode now
        fails(client.open(f, flags: O_RDONLY), ESTALE)
        // Walking again finds the new file.
        let g = try ok(client.walk(root, b("f"))).0
        let fd = try ok(client.open(g, flags: O_RDONLY))
        XCTAssertEqual(readAll(fd), "two")
        close(fd)
    }

    func testCreate() throws {
        let root = try attachRoot()
        let (fid, st, fd) = try ok(client.create(root, b("new"), flags: O_RDWR, mode: 0o640, uid: 1234, gid: 5678))
        defer { close(fd) }
        XCTAssertTrue(st.isRegular)
        XCTAssertEqual(st.mode & 0o7777, 0o640)
        XCTAssertEqual(st.uid, 1234)
        XCTAssertEqual(st.gid, 5678)
        XCTAssertEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC)
        XCTAssertEqual(writeString(fd, "data"), 4)
        XCTAssertEqual(tree.read("new"), "data")
        let host = tree.lstat("new")!
        XCTAssertEqual(host.st_uid, 1234)
        XCTAssertEqual(host.st_gid, 5678)
        XCTAssertEqual(UInt32(host.st_mode) & 0o7777, 0o640)
        XCTAssertEqual(try ok(client.stat(fid)).size, 4)
        // The FID can be reopened later.
        let again = try ok(client.open(fid, flags: O_RDONLY))
        XCTAssertEqual(readAll(again), "data")
        close(again)

        fails(client.create(root, b("new"), flags: O_RDWR, mode: 0o600, uid: 0, gid: 0), EEXIST)
        fails(client.create(root, b(".."), flags: O_RDWR, mode: 0o600, uid: 0, gid: 0), EINVAL)
        fails(client.create(root, b("a/b"), flags: O_RDWR, mode: 0o600, uid: 0, gid: 0), EINVAL)
        fails(client.create(root, b("x"), flags: O_RDWR | O_DIRECTORY, mode: 0o600, uid: 0, gid: 0), EINVAL)
        fails(client.create(root, b("x"), flags: O_RDWR, mode: 0o600, uid: UInt32.max, gid: 0), EINVAL)
        XCTAssertFalse(tree.exists("x"), "failed create leaves nothing behind")
    }

    func testCreateModeIsExactAndIgnoresUmask() throws {
        let root = try attachRoot()
        let old = umask(0o077)
        defer { umask(old) }
        let (_, st, fd) = try ok(client.create(root, b("m"), flags: O_WRONLY, mode: 0o4755, uid: 0, gid: 0))
        close(fd)
        XCTAssertEqual(st.mode & 0o7777, 0o4755)
        XCTAssertEqual(UInt32(tree.lstat("m")!.st_mode) & 0o7777, 0o4755)
    }

    func testCreateDoesNotFollowADanglingSymlink() throws {
        tree.symlink("dangling", tree.outside + "/created-through-link")
        let root = try attachRoot()
        fails(client.create(root, b("dangling"), flags: O_WRONLY, mode: 0o644, uid: 0, gid: 0), EEXIST)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tree.outside + "/created-through-link"))
    }
}
