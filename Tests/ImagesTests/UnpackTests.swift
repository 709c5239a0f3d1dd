// Layer unpacking: whiteouts, opaque directories, hard links, symlinks,
// compression, diff-id checks, and hostile archives that must not write
// outside the target directory.

import Foundation
import Glibc
@testable import Images
import XCTest

final class UnpackTests: XCTestCase {
    func apply(_ layers: [[UInt8]], into dir: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        var a = LayerApplier(rootFD: fd)
        for l in layers { try a.apply(BytesReader(l)) }
    }

    func testWhiteoutsOpaqueDirsHardLinksSymlinks() throws {
        let dir = try tempDir(); defer { _ = try? sh("rm -rf \(dir)") }
        var l1 = TarWriter()
        l1.dir("./"); l1.dir("a/"); l1.file("a/f1", "one"); l1.file("a/f2", "two", mode: 0o750)
        l1.dir("o/"); l1.file("o/old", "old"); l1.dir("o/sub/"); l1.file("o/sub/deep", "d")
        l1.file("gone", "x"); l1.dir("gonedir/"); l1.file("gonedir/in", "x")
        var l2 = TarWriter()
        l2.file("a/.wh.f1", "")
        l2.file("o/new", "new")            // made by this layer before the opaque marker: kept
        l2.file("o/.wh..wh..opq", "")
        l2.file(".wh.gone", ""); l2.file(".wh.gonedir", "")
        l2.hardlink("h", to: "a/f2")
        l2.symlink("s", to: "/etc/passwd")  // dangling inside, harmless: never followed
        l2.file("a/f2", "TWO")              // replaces; h keeps the old inode
        try apply([l1.finished(), l2.finished()], into: dir)

        let fm = FileManager.default
        XCTAssertFalse(fm.fileExists(atPath: dir + "/a/f1"))
        XCTAssertEqual(readText(dir + "/a/f2"), "TWO")
        XCTAssertEqual(readText(dir + "/h"), "two")
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir + "/o").sorted(), ["new"])
        XCTAssertFalse(fm.fileExists(atPath: dir + "/gone"))
        XCTAssertFalse(fm.fileExists(atPath: dir + "/gonedir"))
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: dir + "/s"), "/etc/passwd")
        var st = stat()
        XCTAssertEqual(stat(dir + "/h", &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o750)
        XCTAssertEqual(st.st_mtim.tv_sec, 1_700_000_000)
        XCTAssertEqual(st.st_nlink, 1)
        XCTAssertFalse(fm.fileExists(atPath: dir + "/a/.wh.f1"))
    }

    func testHardLinkSharesInode() throws {
        let dir = try tempDir(); defer { _ = try? sh("rm -rf \(dir)") }
        var l = TarWriter()
        l.file("x", "data"); l.hardlink("y", to: "./x")
        try apply([l.finished()], into: dir)
        var a = stat(), b = stat()
        stat(dir + "/x", &a); stat(dir + "/y", &b)
        XCTAssertEqual(a.st_ino, b.st_ino)
        XCTAssertEqual(a.st_nlink, 2)
    }

    /// Every hostile layer is refused, and nothing appears outside.
    func testHostileLayersNeverWriteOutside() throws {
        let base = try tempDir(); defer { _ = try? sh("rm -rf \(base)") }
        let outside = base + "/outside"
        mkdir(outside, 0o755)
        var cases: [(String, [[UInt8]])] = []
        var t = TarWriter(); t.file("../outside/dotdot", "x"); cases.append(("dotdot", [t.finished()]))
        t = TarWriter(); t.file("a/../../outside/dotdot2", "x"); cases.append(("dotdot-inner", [t.finished()]))
        t = TarWriter(); t.file(outside + "/absolute", "x"); cases.append(("absolute", [t.finished()]))
        t = TarWriter(); t.symlink("esc", to: outside); t.file("esc/viasymlink", "x"); cases.append(("symlink", [t.finished()]))
        t = TarWriter(); t.symlink("esc2", to: "../outside"); t.dir("esc2/")
        t.file("esc2/viadirsymlink", "x"); cases.append(("symlink-dir", [t.finished()]))
        // A symlink planted by a lower layer, used by an upper one.
        var lower = TarWriter(); lower.symlink("lib", to: outside)
        var upper = TarWriter(); upper.file("lib/fromupper", "x")
        cases.append(("symlink-across-layers", [lower.finished(), upper.finished()]))
        t = TarWriter(); t.hardlink("hl", to: "../outside/target"); cases.append(("hardlink-dotdot", [t.finished()]))
        t = TarWriter(); t.symlink("p", to: "/etc"); t.hardlink("hl", to: "p/passwd"); cases.append(("hardlink-via-symlink", [t.finished()]))
        t = TarWriter(); t.symlink("w", to: outside); t.file("w/.wh.victim", "")
        cases.append(("whiteout-via-symlink", [t.finished()]))
        FileManager.default.createFile(atPath: outside + "/victim", contents: Data("keep".utf8))

        for (name, layers) in cases {
            let dir = base + "/root-" + name
            mkdir(dir, 0o755)
            if name == "symlink-dir" {
                // The directory entry replaces the symlink; the file lands inside.
                XCTAssertNoThrow(try apply(layers, into: dir), name)
                XCTAssertEqual(readText(dir + "/esc2/viadirsymlink"), "x")
            } else {
                XCTAssertThrowsError(try apply(layers, into: dir), name) { e in
                    guard case ImageError.unsafeLayer = e else { return XCTFail("\(name): \(e)") }
                }
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outside), ["victim"], name)
        }
        XCTAssertEqual(readText("/etc/passwd")?.isEmpty, false)
        XCTAssertEqual(readText(outside + "/victim"), "keep")
    }

    func testCompressedLayersAndDiffIDCheck() throws {
        try requireTools(["gzip", "zstd"])
        let dir = try tempDir(); defer { _ = try? sh("rm -rf \(dir)") }
        var l = TarWriter(); l.dir("d/"); l.file("d/f", String(repeating: "moat ", count: 50_000))
        let tar = l.finished()
        let tarPath = dir + "/layer.tar"
        FileManager.default.createFile(atPath: tarPath, contents: Data(tar))
        try sh("cd \(dir) && gzip -k layer.tar && zstd -q layer.tar")
        let diffID = Digest.of(tar)
        for name in ["layer.tar", "layer.tar.gz", "layer.tar.zst"] {
            let out = dir + "/out-" + name
            mkdir(out, 0o755)
            let fd = open(dir + "/" + name, O_RDONLY)
            defer { close(fd) }
            let hashing = HashingReader(try openLayer(fd: fd))
            let root = open(out, O_RDONLY | O_DIRECTORY); defer { close(root) }
            var a = LayerApplier(rootFD: root)
            try a.apply(hashing)
            var buf = [UInt8](repeating: 0, count: 4096)
            while try buf.withUnsafeMutableBytes({ try hashing.read($0) }) > 0 {}
            XCTAssertEqual(hashing.digest, diffID, name)
            XCTAssertEqual(readText(out + "/d/f")?.count, 250_000, name)
        }
        // A truncated gzip stream is an error, not a short file.
        try sh("cd \(dir) && head -c $(( $(stat -c %s layer.tar.gz) / 2 )) layer.tar.gz > cut.gz")
        let fd = open(dir + "/cut.gz", O_RDONLY); defer { close(fd) }
        let out = dir + "/out-cut"; mkdir(out, 0o755)
        let root = open(out, O_RDONLY | O_DIRECTORY); defer { close(root) }
        var a = LayerApplier(rootFD: root)
        XCTAssertThrowsError(try a.apply(try openLayer(fd: fd)))
    }

    func testReferences() throws {
        let r = try ImageReference(parsing: "busybox")
        XCTAssertEqual(r.description, "docker.io/library/busybox:latest")
        let l = try ImageReference(parsing: "127.0.0.1:5000/test/multi")
        XCTAssertEqual(l.registry, "127.0.0.1:5000"); XCTAssertEqual(l.repository, "test/multi"); XCTAssertEqual(l.tag, "latest")
        let d = try ImageReference(parsing: "localhost/x@sha256:" + String(repeating: "a", count: 64))
        XCTAssertNil(d.tag); XCTAssertEqual(d.registry, "localhost")
        for bad in ["", "UPPER/case", "x@sha256:12", "a b", "x:"] {
            XCTAssertThrowsError(try ImageReference(parsing: bad), bad)
        }
        let (scheme, p) = Session.parseChallenge(#"Bearer realm="https://auth/token",service="reg",scope="repository:a/b:pull""#)
        XCTAssertEqual(scheme, "Bearer"); XCTAssertEqual(p["realm"], "https://auth/token")
        XCTAssertEqual(p["service"], "reg"); XCTAssertEqual(p["scope"], "repository:a/b:pull")
    }
}
