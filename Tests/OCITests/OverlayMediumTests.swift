// The overlay's medium in the OCI runtime (annotation dev.moat.overlay-medium
// beside dev.moat.overlay=true): with self, the default, a 64 MiB file
// written into the container's rootfs keeps its bytes in an unnamed disk
// file the Gofer made (the Sentry holds it: nlink 0, regular, not a memfd),
// not in host memory; with memory it is a memfd (the control: the test sees
// the difference). Either way the bytes read back intact and the bundle's
// rootfs is untouched. A medium that is neither fails `create`.

import Foundation
import XCTest
@testable import OCI

/// What a set of host processes hold: bytes of the memfds and of the
/// unnamed regular disk files in their fd tables (each file once), and the
/// sum of their resident sets.
struct HostHoldings {
    var memfdBytes = 0, memfds = 0
    var unnamedBytes = 0
    var rss = 0

    init(_ pids: [pid_t]) {
        var seen = Set<[UInt64]>()
        for p in pids {
            if let s = try? String(contentsOfFile: "/proc/\(p)/status", encoding: .utf8),
               let l = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
               let kb = Int(l.split(separator: " ").dropFirst().first ?? "") {
                rss += kb * 1024
            }
            for f in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/fd")) ?? [] {
                let path = "/proc/\(p)/fd/" + f
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) else { continue }
                var st = stat()
                guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
                guard seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { continue }
                if target.hasPrefix("/memfd:") {
                    memfds += 1; memfdBytes += Int(st.st_blocks) * 512
                } else if st.st_nlink == 0 {
                    unnamedBytes += Int(st.st_blocks) * 512
                }
            }
        }
    }
}

/// A process and its descendants (the Sentry's stubs hold copies of its fds).
func processTree(_ root: pid_t) -> [pid_t] {
    var parent: [pid_t: pid_t] = [:]
    for p in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap({ pid_t($0) }) {
        guard let s = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8), let r = s.lastIndex(of: ")") else { continue }
        let f = s[s.index(after: r)...].split(separator: " ")
        if f.count > 1, let pp = pid_t(f[1]) { parent[p] = pp }
    }
    var out = [root]
    var changed = true
    while changed {
        changed = false
        for (p, pp) in parent where out.contains(pp) && !out.contains(p) { out.append(p); changed = true }
    }
    return out
}

enum BigWrite {
    static let size = 64 << 20
    /// Writes /big (a pattern, not zeros: a lost page would show) and
    /// prints its MD5, as busybox's and coreutils' md5sum print it.
    static let script = "yes abcdefgh | head -c \(size) > /big && md5sum /big"
    static let expectedMD5: String = {
        let o = runProgram("/bin/sh", ["-c", "yes abcdefgh | head -c \(size) | md5sum"])
        return String(o.stdout.prefix(32))
    }()
}

final class OverlayMediumTests: XCTestCase {
    var s: OCIScratch!

    override func setUpWithError() throws {
        s = OCIScratch(moat: try requireSandbox())
    }

    override func tearDown() {
        s?.cleanUp()
    }

    /// Writes BigWrite's file in a running overlay container with `medium`
    /// (nil: no annotation); returns what the Sentry (with its stubs) and
    /// the Gofer gained.
    func bigWrite(_ id: String, medium: String?) throws -> (before: HostHoldings, after: HostHoldings) {
        let b = s.bundle(id, args: ["sleep", "1000"]) { cfg in
            cfg["root"] = ["path": OCITestEnv.rootfs, "readonly": false]
            var a = ["dev.moat.overlay": "true"]
            if let medium { a["dev.moat.overlay-medium"] = medium }
            cfg["annotations"] = a
        }
        let c = s.create(id, bundle: b)
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertEqual(s.moat(["start", id]).status, 0)
        let st = try JSON.parse(String(contentsOfFile: s.root + "/" + id + "/state.json", encoding: .utf8))
        let sentry = pid_t(st["pid"]?.intValue ?? 0), gofer = pid_t(st["goferPid"]?.intValue ?? 0)
        XCTAssertGreaterThan(sentry, 0); XCTAssertGreaterThan(gofer, 0)
        let before = HostHoldings(processTree(sentry) + [gofer])
        let o = s.moat(["exec", id, "sh", "-c", BigWrite.script], timeout: 600)
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(String(o.stdout.prefix(32)), BigWrite.expectedMD5, "the bytes read back intact")
        let after = HostHoldings(processTree(sentry) + [gofer])
        // Read again through a new process (the file's pages, not a cache of the writer's).
        let again = s.moat(["exec", id, "md5sum", "/big"], timeout: 600)
        XCTAssertEqual(String(again.stdout.prefix(32)), BigWrite.expectedMD5, again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: OCITestEnv.rootfs + "/big"), "the rootfs is untouched")
        XCTAssertEqual(s.moat(["delete", "--force", id]).status, 0)
        return (before, after)
    }

    func testBigFileOnDiskByDefault() throws {
        let (before, after) = try bigWrite("self", medium: nil)
        let mib = 1 << 20
        print("overlay medium self: memfd bytes \(before.memfdBytes / mib) -> \(after.memfdBytes / mib) MiB (\(before.memfds) -> \(after.memfds) memfds), "
              + "unnamed disk files \(before.unnamedBytes / mib) -> \(after.unnamedBytes / mib) MiB, RSS \(before.rss / mib) -> \(after.rss / mib) MiB")
        XCTAssertGreaterThanOrEqual(after.unnamedBytes - before.unnamedBytes, BigWrite.size, "the file's bytes are in an unnamed disk file")
        XCTAssertLessThan(after.memfdBytes - before.memfdBytes, 16 * mib, "no memfd grew by the file")
        XCTAssertLessThan(after.rss - before.rss, 32 * mib, "the Sentry, its stubs and the Gofer did not grow by the file")
    }

    func testBigFileInMemoryWhenAsked() throws {
        let (before, after) = try bigWrite("memory", medium: "memory")
        let mib = 1 << 20
        print("overlay medium memory: memfd bytes \(before.memfdBytes / mib) -> \(after.memfdBytes / mib) MiB (\(before.memfds) -> \(after.memfds) memfds), "
              + "unnamed disk files \(before.unnamedBytes / mib) -> \(after.unnamedBytes / mib) MiB")
        XCTAssertGreaterThanOrEqual(after.memfdBytes - before.memfdBytes, BigWrite.size, "medium memory keeps the file in a memfd")
        XCTAssertLessThan(after.unnamedBytes - before.unnamedBytes, 16 * mib)
    }

    func testUnknownMediumFailsCreate() throws {
        let b = s.bundle("bad", args: ["true"]) { cfg in
            cfg["root"] = ["path": OCITestEnv.rootfs, "readonly": false]
            cfg["annotations"] = ["dev.moat.overlay": "true", "dev.moat.overlay-medium": "disk"]
        }
        let c = s.create("bad", bundle: b)
        XCTAssertEqual(c.status, 1)
        XCTAssertTrue(c.stderr.contains("self or memory"), c.stderr)
    }
}
