// Plumbing for the standalone tests: the built `moat` executable, a state
// root of the test's own, the test registry of Tests/Support/registry.sh
// (started once per test class, stopped on every exit path), and running
// commands with a timeout the way a person at a shell would. A missing
// prerequisite skips on a developer machine and fails under CI=true.

import Foundation
import Glibc
import XCTest

let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Skips on a developer machine, fails under CI=true.
func missing(_ what: String) throws -> Never {
    if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(what) }
    throw XCTSkip(what)
}

/// A prerequisite that is missing (reported by the test that needs it).
struct Missing: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct Outcome {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut = false
    var all: String { "status \(status)\(timedOut ? " (timed out)" : "")\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// Runs `argv` with stdin from `stdin` (or /dev/null); output through files
/// so a daemon it leaves behind never holds the test on a pipe.
func runProgram(_ argv: [String], stdin: String? = nil, timeout: Double = 60) -> Outcome {
    let base = NSTemporaryDirectory() + "moat-standalone-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { for s in [".out", ".err", ".in"] { unlink(base + s) } }
    _ = FileManager.default.createFile(atPath: base + ".in", contents: Data((stdin ?? "").utf8))
    // posix_spawn and waitpid: Foundation's Process may never see a child exit here.
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdin == nil ? "/dev/null" : base + ".in", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for c in cargs { free(c) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, nil, &cargs, environ)
    if rc != 0 { return Outcome(status: -1, stdout: "", stderr: "cannot run \(argv[0]): \(String(cString: strerror(rc)))") }
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false, status: Int32 = 0
    while true {
        let w = waitpid(pid, &status, WNOHANG)
        if w == pid || (w < 0 && errno != EINTR) { break }
        if !timedOut && Date() > deadline { timedOut = true; kill(pid, SIGKILL) }
        usleep(10_000)
    }
    let code: Int32 = status & 0x7f != 0 ? 128 + (status & 0x7f) : (status >> 8) & 0xff
    let read = { (s: String) in (try? String(contentsOfFile: base + s, encoding: .utf8)) ?? "" }
    return Outcome(status: code, stdout: read(".out"), stderr: read(".err"), timedOut: timedOut)
}

/// The `moat` executable built next to this test bundle (or $MOAT_BIN).
func moatBinary() throws -> String {
    if let e = ProcessInfo.processInfo.environment["MOAT_BIN"], !e.isEmpty { return e }
    var candidates: [String] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // .../debug/moatPackageTests.xctest/... or .../debug/moatPackageTests.xctest
        while dir.path != "/" && !FileManager.default.isExecutableFile(atPath: dir.path + "/moat") { dir.deleteLastPathComponent() }
        candidates.append(dir.path + "/moat")
    }
    candidates.append(repoRoot + "/.build/debug/moat")
    guard let m = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        try missing("no moat executable (looked at \(candidates.joined(separator: ", "))): swift build --product moat")
    }
    return m
}

func tempDir(_ tag: String) -> String {
    var t = Array("/tmp/moat-\(tag)-XXXXXX".utf8CString)
    _ = mkdtemp(&t)
    return String(cString: t)
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// The test registry (Tests/Support/registry.sh) seeded with the test images.
final class TestRegistry {
    let dir: String
    let port: Int
    var image: String { "127.0.0.1:\(port)/test/single" }
    static let script = repoRoot + "/Tests/Support/registry.sh"

    init() throws {
        for t in ["docker-registry", "skopeo", "umoci", "curl"] where runProgram(["/bin/sh", "-c", "command -v \(t)"]).status != 0 {
            throw Missing("\(t) is missing (bash .ci/setup installs it)")
        }
        dir = tempDir("registry")
        port = freePort()
        for step in [["start", dir, String(port)], ["seed", String(port)]] {
            let o = runProgram(["/bin/bash", Self.script] + step, timeout: 600)
            if o.status != 0 { stop(); throw Missing("registry.sh \(step[0]) failed: \(o.all)") }
        }
    }

    func stop() {
        _ = runProgram(["/bin/bash", Self.script, "stop", dir])
        _ = runProgram(["/bin/rm", "-rf", dir])
    }
}

/// A test's moat: its own state root, and every sandbox it made removed
/// (and checked gone) at the end.
struct Moat {
    let binary: String
    let root: String

    init() throws {
        binary = try moatBinary()
        // Made by moat itself: a state root that does not exist yet is fine.
        root = tempDir("standalone") + "/state"
    }

    @discardableResult
    func callAsFunction(_ args: [String], stdin: String? = nil, timeout: Double = 60) -> Outcome {
        // --root after the (sub)command: `moat image export --root R ...`.
        let n = args.first == "image" ? 2 : 1
        return runProgram([binary] + args.prefix(n) + ["--root", root] + args.dropFirst(n), stdin: stdin, timeout: timeout)
    }

    /// The record of a sandbox (moat inspect), as JSON.
    func inspect(_ name: String) -> [String: Any]? {
        let o = self(["inspect", name])
        guard o.status == 0, let a = try? JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [[String: Any]] else { return nil }
        return a.first
    }

    /// Polls `moat logs` until its output contains `text`.
    func waitForLog(_ name: String, _ text: String, seconds: Double = 30) -> Outcome {
        let deadline = Date().addingTimeInterval(seconds)
        var o = self(["logs", name])
        while !(o.stdout + o.stderr).contains(text) && Date() < deadline {
            usleep(100_000)
            o = self(["logs", name])
        }
        return o
    }

    /// Removes every sandbox left and the state root.
    func cleanUp() {
        let ids = self(["ps", "-a", "-q"]).stdout.split(separator: "\n").map(String.init)
        if !ids.isEmpty { self(["rm", "-f"] + ids) }
        _ = runProgram(["/bin/rm", "-rf", URL(fileURLWithPath: root).deletingLastPathComponent().path])
    }
}

/// Polls `condition` every 50 ms for up to `seconds`; whether it held.
@discardableResult
func waitUntil(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        usleep(50_000)
    }
    return true
}

func isAlive(_ pid: Int32) -> Bool {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let c = s.lastIndex(of: ")") else { return false }
    let state = s[s.index(after: c)...].split(separator: " ").first
    return state != "Z" && state != "X"
}
