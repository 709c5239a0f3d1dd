// `moat image export`: an image pulled from the test registry written as a
// docker-archive tarball and as an OCI layout directory, read back by
// skopeo (another implementation) and imported into a fresh state root
// with the same image id, then run from there.

import Foundation
import Glibc
import XCTest

final class ImageExportTests: XCTestCase {
    func testExportBothFormatsAndImportBack() throws {
        let registry: TestRegistry
        do { registry = try TestRegistry() } catch { try missing("the test registry: \(error)") }
        defer { registry.stop() }
        let image = registry.image
        let moat = try Moat(), other = try Moat()
        defer { moat.cleanUp(); other.cleanUp() }
        let out = tempDir("export")
        defer { _ = runProgram(["/bin/rm", "-rf", out]) }
        let pull = moat(["pull", image], timeout: 120)
        XCTAssertEqual(pull.status, 0, pull.all)
        // Progress: plain lines when stderr is not a terminal, one rewritten line on a terminal.
        XCTAssert(pull.stderr.contains("unpacking\n") && !pull.stderr.contains("\u{1b}"), pull.all)
        if runProgram(["/bin/sh", "-c", "command -v python3"]).status == 0 {
            let driver = """
                import os, pty, sys
                pid, fd = pty.fork()
                if pid == 0: os.execv(sys.argv[1], sys.argv[1:])
                out = b""
                while True:
                    try: d = os.read(fd, 4096)
                    except OSError: break
                    if not d: break
                    out += d
                os.waitpid(pid, 0)
                sys.stdout.write(out.decode(errors="replace"))
                """
            let scratch = try Moat()
            defer { scratch.cleanUp() }
            let tty = runProgram(["/usr/bin/env", "python3", "-c", driver, scratch.binary, "pull", "--root", scratch.root,
                                  image.replacingOccurrences(of: "single", with: "multi")], timeout: 120)
            XCTAssert(tty.stdout.contains("\r\u{1b}[K") && tty.stdout.contains("unpacking"), tty.all)
        }
        let id = moat(["images"]).stdout.split(separator: "\n").dropFirst().first?.split(separator: " ", omittingEmptySubsequences: true)[1]
        XCTAssertNotNil(id)

        let tar = moat(["image", "export", "-o", out + "/img.tar", image])
        XCTAssertEqual(tar.status, 0, tar.all)
        let dir = moat(["image", "export", "--format", "oci", "-o", out + "/layout", image])
        XCTAssertEqual(dir.status, 0, dir.all)

        let viaTar = runProgram(["/usr/bin/env", "skopeo", "inspect", "--raw", "docker-archive:" + out + "/img.tar"])
        XCTAssertEqual(viaTar.status, 0, viaTar.all)
        let viaDir = runProgram(["/usr/bin/env", "skopeo", "inspect", "oci:" + out + "/layout:" + image + ":latest"])
        XCTAssertEqual(viaDir.status, 0, viaDir.all)
        XCTAssert(viaDir.stdout.contains("\"Architecture\": \"amd64\""), viaDir.all)

        for (source, name) in [(out + "/img.tar", "localhost/a"), (out + "/layout", "localhost/b")] {
            let imp = other(["image", "import", "--name", name, source])
            XCTAssertEqual(imp.status, 0, imp.all)
            XCTAssert(imp.stdout.hasPrefix("sha256:" + (id ?? "none")), "\(source): \(imp.all)")
        }
        let run = other(["run", "--rm", image, "echo", "from the import"])
        XCTAssertEqual(run.stdout, "from the import\n", run.all)
        XCTAssertFalse(run.stderr.contains("manifest"), "ran without a pull: \(run.all)")

        let none = moat(["image", "export", "-o", out + "/x.tar", "nosuch"])
        XCTAssertEqual(none.status, 125, none.all)
        XCTAssert(none.stderr.contains("moat images lists them"), none.all)
        let full = moat(["image", "export", "--format", "oci", "-o", out + "/layout", image])
        XCTAssertEqual(full.status, 125, full.all)
        XCTAssert(full.stderr.contains("not an empty directory"), full.all)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["img.tar", "layout"], "no temporary left")
    }
}
