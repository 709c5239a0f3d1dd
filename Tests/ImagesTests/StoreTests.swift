// The store: digest checks, import of an OCI layout and a docker-archive,
// the unpacked multi-layer image, removal refused while in use, garbage,
// simultaneous removals.

import Foundation
import Glibc
@testable import Images
import XCTest

final class StoreTests: XCTestCase {
    func testDigestMismatchRejected() throws {
        let root = try tempDir(); defer { _ = try? sh("rm -rf \(root)") }
        let store = try ImageStore(root: root)
        let good = Digest.of(Array("abc".utf8))
        XCTAssertEqual(try store.putBlob(Array("abc".utf8), expected: good), good)
        XCTAssertThrowsError(try store.putBlob(Array("abd".utf8), expected: Digest.of(Array("zzz".utf8)))) { e in
            guard case ImageError.digestMismatch = e else { return XCTFail("\(e)") }
        }
        // Already stored: the bytes are still checked.
        XCTAssertThrowsError(try store.putBlob(Array("abd".utf8), expected: good))
        let w = try store.blobWriter()
        try Array("abc".utf8).withUnsafeBytes { try w.write($0) }
        XCTAssertThrowsError(try w.commit(expectedDigest: good, expectedSize: 4))
        // Nothing but the one good blob, and no temporary left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/blobs/sha256"), [String(good.dropFirst(7))])
    }

    func testImportOCILayoutAndRemoveInUse() async throws {
        let layout = try TestRegistry.layout()
        let root = try tempDir(); defer { _ = try? sh("rm -rf \(root)") }
        let store = try ImageStore(root: root)
        let imported = try await store.importImages(from: layout, name: "localhost/test")
        // single and index (resolved to amd64 = single) share a manifest.
        XCTAssertEqual(imported.count, 2)
        let multi = try XCTUnwrap(try store.find("localhost/test:multi"))
        XCTAssertEqual(multi.layers.count, 3)
        XCTAssertEqual(multi.config.env, ["PATH=/bin:/sbin:/usr/bin", "MULTI=1"])
        XCTAssertEqual(multi.config.cmd, ["cat", "/data/a"])
        let single = try XCTUnwrap(try store.find("localhost/test:index"))
        XCTAssertEqual(single.tags.sorted(), ["localhost/test:index", "localhost/test:single"])
        XCTAssertEqual(try store.find(String(multi.id.dropFirst(7).prefix(12)))?.id, multi.id)

        let resolved = try XCTUnwrap(try store.resolve("localhost/test:multi"))
        checkMulti(resolved.rootfs)
        XCTAssertEqual(resolved.config.workingDir, "/work")

        store.markInUse(multi.id, by: "ctr1")
        XCTAssertThrowsError(try store.remove("localhost/test:multi")) { e in
            guard case ImageError.inUse = e else { return XCTFail("\(e)") }
        }
        store.release(multi.id, by: "ctr1")
        try store.remove(multi.id)
        XCTAssertNil(try store.find("localhost/test:multi"))
        XCTAssertThrowsError(try store.remove("localhost/test:multi")) { e in
            guard case ImageError.notFound = e else { return XCTFail("\(e)") }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: resolved.rootfs), "rootfs collected")
        // single's layer is shared with multi and must survive.
        let singleRoot = try XCTUnwrap(try store.resolve("localhost/test:single")).rootfs
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: singleRoot + "/bin/busybox"))
        let usage = try store.usage()
        XCTAssertGreaterThan(usage.bytes, 1_000_000)
        XCTAssertGreaterThan(usage.inodes, 100)
    }

    /// Removals of one image at the same time all succeed, and listings meanwhile never fail
    /// on a blob that a removal collected after they read the index (critest's "simultaneous
    /// RemoveImage calls"); a listed image whose blob is missing is still an error.
    func testSimultaneousRemovalsAndListings() async throws {
        let layout = try TestRegistry.layout()
        let root = try tempDir(); defer { _ = try? sh("rm -rf \(root)") }
        let store = try ImageStore(root: root)
        let errors = NSLock()
        var failures: [String] = []
        for _ in 0..<12 {
            _ = try await store.importImages(from: layout, name: "localhost/test")
            DispatchQueue.concurrentPerform(iterations: 6) { i in
                do {
                    if i % 2 == 0 { try store.removeIfPresent("localhost/test:multi") }
                    for _ in 0..<5 { _ = try store.images() }
                } catch { errors.withLock { failures.append("\(error)") } }
            }
            XCTAssertNil(try store.find("localhost/test:multi"))
        }
        XCTAssertEqual(failures, [])
        // The race itself, step by step: a listing reads the index, a removal collects the
        // image's blobs, the listing reads the blobs. The image is gone, not an error.
        _ = try await store.importImages(from: layout, name: "localhost/test")
        let stale = try store.readIndex()
        try store.removeIfPresent("localhost/test:multi")
        XCTAssertEqual(try store.images(listed: stale).flatMap(\.tags).sorted(), ["localhost/test:index", "localhost/test:single"])
        try store.removeIfPresent("localhost/test:multi")
        // Corruption is not hidden: a listed image without its manifest blob.
        let single = try XCTUnwrap(try store.find("localhost/test:single"))
        unlink(root + "/blobs/sha256/" + single.manifestDigest.dropFirst(7))
        XCTAssertThrowsError(try store.images()) { e in
            guard case ImageError.notFound = e else { return XCTFail("\(e)") }
        }
    }

    func testImportDockerArchive() async throws {
        let layout = try TestRegistry.layout()
        try requireTools(["skopeo"])
        let root = try tempDir(); defer { _ = try? sh("rm -rf \(root)") }
        try sh("skopeo copy -q oci:\(layout):multi docker-archive:\(root)/multi.tar:example.com/team/multi:v1")
        let store = try ImageStore(root: root + "/store")
        let imported = try await store.importImages(from: root + "/multi.tar")
        XCTAssertEqual(imported.count, 1)
        XCTAssertEqual(imported.first?.tags, ["example.com/team/multi:v1"])
        let resolved = try XCTUnwrap(try store.resolve("example.com/team/multi:v1"))
        checkMulti(resolved.rootfs)
        XCTAssertEqual(resolved.config.cmd, ["cat", "/data/a"])
    }
}

/// The multi-layer test image, unpacked: hard link, whiteout, opaque dir, symlink.
func checkMulti(_ rootfs: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(readText(rootfs + "/data/a"), "hello\n")
    var a = stat(), b = stat()
    stat(rootfs + "/data/a", &a); stat(rootfs + "/data/b", &b)
    XCTAssertEqual(a.st_ino, b.st_ino, "hard link")
    XCTAssertFalse(FileManager.default.fileExists(atPath: rootfs + "/data/gone"), "whiteout")
    XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: rootfs + "/data/opq")) ?? [], ["y"])
    XCTAssertEqual(try? FileManager.default.destinationOfSymbolicLink(atPath: rootfs + "/data/link"), "a")
    XCTAssertTrue(FileManager.default.isExecutableFile(atPath: rootfs + "/bin/busybox"))
}

