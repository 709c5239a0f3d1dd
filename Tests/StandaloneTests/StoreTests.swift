// The records of standalone sandboxes without starting any: names and ids,
// -v and --restart parsing, and a "running" record whose processes are gone.

import Foundation
import Glibc
@testable import Standalone
import XCTest

final class StoreTests: XCTestCase {
    func testNamesIdsAndLookup() throws {
        let root = tempDir("store")
        defer { _ = runProgram(["/bin/rm", "-rf", root]) }
        let store = try StandaloneStore(root: root)
        let a = try store.create(name: "alpha", spec: SandboxSpec(rootfs: "/", argv: ["true"]))
        let b = try store.create(name: nil, spec: SandboxSpec(rootfs: "/", argv: ["true"]))
        XCTAssertEqual(a.id.count, 32)
        XCTAssertFalse(b.name.isEmpty)
        XCTAssertEqual(try store.find("alpha").id, a.id)
        XCTAssertEqual(try store.find(String(a.id.prefix(5))).id, a.id)
        XCTAssertEqual(try store.find(b.name).id, b.id)
        XCTAssertThrowsError(try store.create(name: "alpha", spec: SandboxSpec(rootfs: "/", argv: ["true"]))) {
            XCTAssert("\($0)".contains("in use by sandbox \(a.id.prefix(12))"))
        }
        for bad in ["", "-x", "a/b", "a b", String(repeating: "n", count: 65)] {
            XCTAssertThrowsError(try store.create(name: bad, spec: SandboxSpec(rootfs: "/", argv: ["true"])), bad)
        }
        XCTAssertThrowsError(try store.find("zz-none")) { XCTAssert("\($0)".contains("no such sandbox")) }
        XCTAssertEqual(try store.list().map(\.id), [a.id, b.id])
        // A record that cannot be read: said so, and removed with force only.
        try "{not json".write(toFile: root + "/standalone/" + b.id + "/record.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try store.list().map(\.id), [a.id])
        XCTAssertThrowsError(try store.find(b.id)) { XCTAssert("\($0)".contains("cannot be read: moat rm -f"), "\($0)") }
        XCTAssertThrowsError(try store.remove(b.id, force: false))
        XCTAssertNoThrow(try store.remove(b.id, force: true))
        XCTAssertEqual(access(root + "/standalone/" + b.id, F_OK), -1)
    }

    func testRunningRecordWithDeadProcessesReadsExited() throws {
        let root = tempDir("store")
        defer { _ = runProgram(["/bin/rm", "-rf", root]) }
        let store = try StandaloneStore(root: root)
        let r = try store.create(name: "gone", spec: SandboxSpec(rootfs: "/", argv: ["true"]))
        // A pid that exists but started at another time is not the Sentry.
        let rec = try store.update(r.id) { $0.state = .running; $0.sentryPid = getpid(); $0.sentryStart = 1 }
        let live = store.live(rec)
        XCTAssertEqual(live.state, .exited)
        XCTAssertEqual(live.exitCode, 137)
        let me = try store.update(r.id) { $0.sentryStart = processStartTime(getpid()) ?? 0 }
        XCTAssertEqual(store.live(me).state, .running)
    }

    func testVolumeAndRestartParsing() throws {
        let dir = tempDir("vol")
        defer { rmdir(dir) }
        XCTAssertEqual(try SandboxSpec.Volume.parse(dir + ":/data"), .init(host: dir, container: "/data", readOnly: false))
        XCTAssertEqual(try SandboxSpec.Volume.parse(dir + ":/data:ro"), .init(host: dir, container: "/data", readOnly: true))
        for bad in ["named:/data", dir + ":rel", dir + ":/d:bogus", "/nonexistent-moat:/d", dir] {
            XCTAssertThrowsError(try SandboxSpec.Volume.parse(bad), bad)
        }
        var s = SandboxSpec(rootfs: "/", argv: ["true"])
        for (p, want) in [("no", "false false 0"), ("always", "true false \(Int.max)"), ("on-failure", "false true \(Int.max)"), ("on-failure:3", "false true 3")] {
            s.restart = p
            let got = try s.restartPolicy()
            XCTAssertEqual("\(got.always) \(got.onFailure) \(got.max)", want, p)
        }
        for bad in ["sometimes", "on-failure:x", "on-failure:-1"] {
            s.restart = bad
            XCTAssertThrowsError(try s.restartPolicy(), bad)
        }
    }

    func testEnvironmentMerge() throws {
        let file = tempDir("env") + "/env"
        defer { _ = runProgram(["/bin/rm", "-rf", URL(fileURLWithPath: file).deletingLastPathComponent().path]) }
        try "# comment\n\nA=file\nB=file\r\n".write(toFile: file, atomically: true, encoding: .utf8)
        setenv("MOAT_TEST_FROM_HOST", "host", 1)
        let env = try RunEnvironment.merge(image: ["PATH=/bin", "A=image", "C=image"], envFiles: [file],
                                           given: ["B=flag", "MOAT_TEST_FROM_HOST", "MOAT_TEST_UNSET_XYZ"], uid: 1000, tty: true)
        XCTAssertEqual(env, ["PATH=/bin", "A=file", "C=image", "B=flag", "MOAT_TEST_FROM_HOST=host", "HOME=/", "TERM=xterm"])
        XCTAssertEqual(try RunEnvironment.merge(image: [], envFiles: [], given: [], uid: 0, tty: false).last, "HOME=/root")
        XCTAssertThrowsError(try RunEnvironment.merge(image: [], envFiles: ["/nonexistent-env"], given: [], uid: 0, tty: false))
        XCTAssertEqual(RunEnvironment.bytes("64m"), 64 << 20)
        XCTAssertEqual(RunEnvironment.bytes("512"), 512)
        XCTAssertNil(RunEnvironment.bytes("lots"))
    }
}
