// Helpers for driving the `moat` binary as an engine would: a private
// --root per test, bundles built from runtime-spec/bundles or the default
// spec, and cleanup of every container the test made.

import Foundation
import XCTest
@testable import OCI

struct Outcome {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum OCITestEnv {
    static let repo: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// $MOAT_BIN, else the moat built beside this test bundle.
    static let moat: String? = {
        if let m = ProcessInfo.processInfo.environment["MOAT_BIN"] { return m }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var dir = exe
        for _ in 0..<6 {
            dir.deleteLastPathComponent()
            let cand = dir.appendingPathComponent("moat").path
            if FileManager.default.isExecutableFile(atPath: cand) { return cand }
        }
        for c in [".build-oci/debug/moat", ".build/debug/moat"] where FileManager.default.isExecutableFile(atPath: repo + "/" + c) {
            return repo + "/" + c
        }
        return nil
    }()

    static let rootfs: String = ProcessInfo.processInfo.environment["MOAT_ROOTFS"] ?? repo + "/.cache/rootfs/busybox"

    static func which(_ name: String) -> String? {
        for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
            if FileManager.default.isExecutableFile(atPath: d + "/" + name) { return d + "/" + name }
        }
        return nil
    }
}

/// Runs a program to completion, with optional stdin and timeout. Output
/// goes to files, not pipes: a container's processes inherit the stdio of
/// `create` and outlive it, and would hold pipes open. posix_spawn and
/// waitpid are used directly (Foundation's Process missed some exits).
func runProgram(_ path: String, _ args: [String], stdin: String? = nil, timeout: Double = 60, env: [String: String]? = nil) -> Outcome {
    let base = NSTemporaryDirectory() + "moat-oci-io-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(base + ".out"); unlink(base + ".err"); unlink(base + ".in") }
    FileManager.default.createFile(atPath: base + ".in", contents: (stdin ?? "").data(using: .utf8))
    let inFD = open(stdin == nil ? "/dev/null" : base + ".in", O_RDONLY)
    let outFD = open(base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let errFD = open(base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    defer { close(inFD); close(outFD); close(errFD) }
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_adddup2(&fa, inFD, 0)
    posix_spawn_file_actions_adddup2(&fa, outFD, 1)
    posix_spawn_file_actions_adddup2(&fa, errFD, 2)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var none = sigset_t(); sigemptyset(&none)
    var all = sigset_t(); sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &none)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let environment = env ?? ProcessInfo.processInfo.environment
    let cargs = ([path] + args).map { strdup($0) } + [nil]
    let cenv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { cargs.forEach { free($0) }; cenv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &fa, &attr, cargs, cenv)
    if rc != 0 { return Outcome(status: -1, stdout: "", stderr: "cannot run \(path): \(String(cString: strerror(rc)))") }
    var st: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let w = waitpid(pid, &st, WNOHANG)
        if w == pid { break }
        if w < 0 && errno != EINTR { break }
        if Date() > deadline { kill(pid, SIGKILL); _ = waitpid(pid, &st, 0); break }
        usleep(2_000)
    }
    let o = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    let e = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
    let status = st & 0x7f != 0 ? 128 + (st & 0x7f) : (st >> 8) & 0xff
    return Outcome(status: status, stdout: o, stderr: e)
}

/// A scratch --root and bundles for one test; `cleanUp` force-deletes
/// every container left and removes the directories.
final class OCIScratch {
    let dir: String
    let root: String
    let moat: String
    var ids: [String] = []

    init(moat: String) {
        self.moat = moat
        dir = NSTemporaryDirectory() + "moat-oci-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        root = dir + "/root"
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// `moat --root ROOT ARGS`.
    @discardableResult
    func moat(_ args: [String], global: [String] = [], stdin: String? = nil, timeout: Double = 60) -> Outcome {
        runProgram(moat, ["--root", root] + global + args, stdin: stdin, timeout: timeout)
    }

    /// A bundle whose config is the default spec with `edit` applied.
    func bundle(_ name: String, args: [String], edit: (inout [String: Any]) -> Void = { _ in }) -> String {
        let b = dir + "/" + name
        try? FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
        let text = SpecTemplate.defaultConfig(args: args, terminal: false).serialized()
        var cfg = try! JSONSerialization.jsonObject(with: text.data(using: .utf8)!) as! [String: Any]
        cfg["root"] = ["path": OCITestEnv.rootfs, "readonly": true]
        edit(&cfg)
        let data = try! JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted])
        FileManager.default.createFile(atPath: b + "/config.json", contents: data)
        return b
    }

    /// `runc run` of the bundle (as ID-runc, deleted after), for a
    /// comparison; nil when runc is not installed, a failure under CI=true.
    func runc(bundle: String, _ id: String, timeout: Double) -> Outcome? {
        guard let runc = OCITestEnv.which("runc") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("CI=true: runc is needed for the comparison") }
            return nil
        }
        let runcRoot = dir + "/runc-root"
        let r = runProgram(runc, ["--root", runcRoot, "run", "--bundle", bundle, id + "-runc"], timeout: timeout)
        _ = runProgram(runc, ["--root", runcRoot, "delete", "--force", id + "-runc"])
        return r
    }

    func create(_ id: String, bundle: String, extra: [String] = []) -> Outcome {
        ids.append(id)
        return moat(["create", "--bundle", bundle] + extra + [id])
    }

    func status(_ id: String) -> String? {
        let o = moat(["state", id])
        guard o.status == 0, let j = try? JSON.parse(o.stdout) else { return nil }
        return j["status"]?.stringValue
    }

    func waitForStatus(_ id: String, _ want: String, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if status(id) == want { return true }
            usleep(50_000)
        }
        return false
    }

    func cleanUp() {
        for id in ids { moat(["delete", "--force", id]) }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Skips unless the moat binary, root and the busybox rootfs are present.
func requireSandbox() throws -> String {
    guard getuid() == 0 else { throw XCTSkip("needs root (namespaces, cgroups, ptrace)") }
    guard let m = OCITestEnv.moat else { throw XCTSkip("no moat binary (build it: swift build --product moat)") }
    guard FileManager.default.fileExists(atPath: OCITestEnv.rootfs + "/bin/busybox") else {
        throw XCTSkip("no busybox rootfs at \(OCITestEnv.rootfs) (build it: bash rootfs/busybox.sh)")
    }
    return m
}
