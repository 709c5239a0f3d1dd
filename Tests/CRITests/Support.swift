// Helpers for the CRI tests: a `moat cri` process per test (its own socket,
// --root and --state in a temporary directory), a generated runtime.v1
// client over the real Unix socket, and cleanup on every exit path.

import CRIAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc
import XCTest

enum CRITestEnv {
    static let repo: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var ci: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// $MOAT_BIN, else the moat built beside this test bundle, else the
    /// checkout's .build/debug/moat.
    static func moat() throws -> String {
        if let m = ProcessInfo.processInfo.environment["MOAT_BIN"], FileManager.default.isExecutableFile(atPath: m) { return m }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var dir = exe
        for _ in 0..<6 {
            dir.deleteLastPathComponent()
            let cand = dir.appendingPathComponent("moat").path
            if FileManager.default.isExecutableFile(atPath: cand) { return cand }
        }
        let cand = repo + "/.build/debug/moat"
        if FileManager.default.isExecutableFile(atPath: cand) { return cand }
        return try missing("the moat executable (run `swift build --product moat`, or set MOAT_BIN)")
    }

    static var rootfs: String { ProcessInfo.processInfo.environment["MOAT_ROOTFS"] ?? repo + "/.cache/rootfs/busybox" }

    /// Skips on a developer machine, fails under CI=true.
    static func missing<T>(_ what: String) throws -> T {
        if ci { XCTFail("missing prerequisite under CI=true: \(what)"); throw CRITestError("missing \(what)") }
        throw XCTSkip("missing prerequisite: \(what)")
    }

    static func requireRoot() throws {
        if getuid() != 0 { let _: Void = try missing("root") }
    }
}

struct CRITestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// One `moat cri` process. `stop()` (also from deinit) kills it.
final class CRIProcess: @unchecked Sendable {
    let dir: String
    var socket: String { dir + "/cri.sock" }
    var root: String { dir + "/root" }
    var state: String { dir + "/state" }
    let extraArgs: [String]
    private(set) var pid: pid_t = 0
    var logPath: String { dir + "/cri.log" }

    init(dir: String? = nil, extraArgs: [String] = []) throws {
        self.dir = dir ?? NSTemporaryDirectory() + "moat-cri-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: self.dir, withIntermediateDirectories: true)
        self.extraArgs = extraArgs
    }

    var arguments: [String] {
        ["cri", "--listen", "unix://" + socket, "--root", root, "--state", state] + extraArgs
    }

    /// Starts the server and waits until its socket answers.
    func start() throws {
        pid = try spawn(log: logPath)
        for _ in 0..<600 {
            if let st = try? FileManager.default.attributesOfItem(atPath: socket),
               (st[.posixPermissions] as? Int) == 0o600, Self.answers(socket) { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = 0
                throw CRITestError("moat cri exited (status \(status)): \(log)")
            }
            usleep(50_000)
        }
        throw CRITestError("moat cri did not listen within 30 s: \(log)")
    }

    /// Runs a server that must refuse to start; returns its exit status and
    /// what it printed.
    func startExpectingRefusal() throws -> (Int32, String) {
        let out = dir + "/refused-\(UInt32.random(in: 0...UInt32.max)).log"
        let p = try spawn(log: out)
        var status: Int32 = 0
        for _ in 0..<600 {
            if waitpid(p, &status, WNOHANG) == p {
                return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
            }
            usleep(50_000)
        }
        kill(p, SIGKILL); waitpid(p, &status, 0)
        throw CRITestError("moat cri was expected to refuse to start but kept running")
    }

    static func answers(_ path: String) -> Bool {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }

    private func spawn(log logPath: String) throws -> pid_t {
        let moat = try CRITestEnv.moat()
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_addopen(&fa, 2, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        let argv = ([moat] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var p: pid_t = 0
        let rc = posix_spawn(&p, moat, &fa, nil, argv, environ)
        guard rc == 0 else { throw CRITestError("posix_spawn \(moat): \(rc)") }
        return p
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM (graceful) or SIGKILL, then reap.
    func stop(signal sig: Int32 = SIGTERM) {
        guard pid > 0 else { return }
        kill(pid, sig)
        var status: Int32 = 0
        for _ in 0..<200 {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { pid = 0; return }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        pid = 0
    }

    /// Kills what a failed test left running (pod Sentries outlive `moat
    /// cri` by design; their Gofers exit with them), then removes the
    /// test's directory. MOAT_KEEP_LOG=FILE keeps the server's log.
    func removeDirectory() {
        if let keep = ProcessInfo.processInfo.environment["MOAT_KEEP_LOG"] { try? FileManager.default.copyItem(atPath: logPath, toPath: keep) }
        for pod in (try? FileManager.default.contentsOfDirectory(atPath: state + "/pods")) ?? [] {
            guard let text = try? String(contentsOfFile: state + "/pods/" + pod + "/pod.state", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("pid=") {
                if let p = pid_t(line.dropFirst(4)), p > 0 { kill(p, SIGKILL) }
            }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    deinit { stop(signal: SIGKILL) }

    /// Runs `body` with a runtime.v1 client connected to this server.
    func withClient<R: Sendable>(_ body: (Runtime_V1_RuntimeService.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { client in
            try await body(Runtime_V1_RuntimeService.Client(wrapping: client))
        }
    }
}

/// Asserts that `body` fails with this gRPC status code (and, when given, a
/// message naming `mentioning`).
func assertRPCError<T>(_ code: RPCError.Code, mentioning: String? = nil, file: StaticString = #filePath, line: UInt = #line,
                       _ body: () async throws -> T) async {
    do {
        _ = try await body()
        XCTFail("expected \(code), got success", file: file, line: line)
    } catch let e as RPCError {
        XCTAssertEqual(e.code, code, "\(e)", file: file, line: line)
        if let m = mentioning { XCTAssertTrue(e.message.contains(m), "\(e.message.debugDescription) does not mention \(m)", file: file, line: line) }
    } catch {
        XCTFail("expected RPCError \(code), got \(error)", file: file, line: line)
    }
}

func podConfig(name: String, namespace: String = "default", uid: String? = nil, attempt: UInt32 = 0,
               labels: [String: String] = [:], logDirectory: String = "") -> Runtime_V1_PodSandboxConfig {
    var c = Runtime_V1_PodSandboxConfig()
    c.metadata.name = name
    c.metadata.namespace = namespace
    c.metadata.uid = uid ?? "uid-" + name
    c.metadata.attempt = attempt
    c.hostname = name
    c.labels = labels
    c.logDirectory = logDirectory
    return c
}
