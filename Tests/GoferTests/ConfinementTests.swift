// Gofer.run in a real child process: the test binary re-executes itself with
// a filter selecting `testChildEntryPoint`, which (only when the environment
// says so) calls Gofer.run on an inherited socket. The parent then checks the
// child through the protocol and through /proc: capabilities, no_new_privs,
// open fds, mount table, and exit status.

import Foundation
import Glibc
import XCTest
@testable import Gofer
import GoferProtocol

final class ConfinementTests: XCTestCase {
    static let rootEnv = "MOAT_GOFER_TEST_CHILD_ROOT"
    static let readOnlyEnv = "MOAT_GOFER_TEST_CHILD_RO"
    static let scratchEnv = "MOAT_GOFER_TEST_CHILD_SCRATCH"
    static let childSocketFD: Int32 = 200

    /// The child's body; does nothing in a normal test run.
    func testChildEntryPoint() {
        guard let root = getenv(Self.rootEnv) else { return }
        Gofer.run(root: String(cString: root), socketFD: Self.childSocketFD,
                  readOnly: getenv(Self.readOnlyEnv) != nil, scratch: getenv(Self.scratchEnv) != nil)
    }

    struct Child {
        var pid: pid_t
        var client: GoferClient?
        var stderrPath: String
    }

    var tree: TempTree!

    override func setUpWithError() throws {
        if getenv(Self.rootEnv) != nil { return } // we are the child: no tree of our own
        guard geteuid() == 0 else { throw XCTSkip("Gofer.run needs root (mount namespace, capabilities)") }
        tree = try TempTree()
    }

    override func tearDownWithError() throws {
        tree?.remove()
    }

    func spawnGofer(root: String, readOnly: Bool, scratch: Bool = false) throws -> Child {
        let (c, s) = try GoferClient.socketPair().get()
        defer { close(s) }
        let stderrPath = tree.base + "/child-stderr"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, s, Self.childSocketFD)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let args = [exe, "GoferTests.ConfinementTests/testChildEntryPoint"]
        var env = ProcessInfo.processInfo.environment
        env[Self.rootEnv] = root
        if readOnly { env[Self.readOnlyEnv] = "1" } else { env[Self.readOnlyEnv] = nil }
        env[Self.scratchEnv] = scratch ? "1" : nil
        let envStrings = env.map { "\($0.key)=\($0.value)" }

        var cArgs = args.map { strdup($0) } + [nil]
        var cEnv = envStrings.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, &cArgs, &cEnv)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        return Child(pid: pid, client: GoferClient(socketFD: c), stderrPath: stderrPath)
    }

    /// Waits up to 20 s for the child; kills it on timeout. Returns its wait status.
    func reap(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        for _ in 0..<2000 {
            if waitpid(pid, &status, WNOHANG) == pid { return status }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        XCTFail("confined Gofer did not exit")
        return nil
    }

    func procStatus(_ pid: pid_t) -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { out[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return out
    }

    func testRunConfinesTheProcess() throws {
        tree.write("hello", "hi")
        tree.symlink("toRoot", "/")
        var child = try spawnGofer(root: tree.root, readOnly: false)
        try checkConfined(child)
        child.client = nil // hang up: the Gofer exits 0
        let status = reap(child.pid)
        XCTAssertEqual(status.map { ($0 >> 8) & 0xFF }, 0, "exit code")
        XCTAssertEqual(status.map { $0 & 0x7F }, 0, "not killed by a signal")
    }

    private func checkConfined(_ child: Child) throws {
        let client = child.client!
        // Serving only starts after confinement, so once attach answers the
        // process is in its final state.
        let root = try client.attach().get().0
        let st: [String: String]? = procStatus(child.pid)
        XCTAssertEqual(st?["NoNewPrivs"], "1")
        var mask: UInt64 = 0
        for cap in Confinement.keptCapabilities { mask |= 1 << UInt64(cap) }
        let expected = String(format: "%016llx", mask)
        XCTAssertEqual(st?["CapEff"], expected)
        XCTAssertEqual(st?["CapPrm"], expected)
        XCTAssertEqual(st?["CapBnd"], expected)
        XCTAssertEqual(st?["CapInh"], "0000000000000000")
        XCTAssertEqual(st?["CapAmb"], "0000000000000000")

        // Only the socket and the served root are open (stdio closed too).
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.pid)/fd")
        XCTAssertEqual(fds.count, 2, "open fds: \(fds)")
        let targets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child.pid)/fd/\($0)") }
        XCTAssertTrue(targets.contains { $0.hasPrefix("socket:") }, "\(targets)")

        // The mount namespace holds nothing but the served tree.
        let mounts = try String(contentsOfFile: "/proc/\(child.pid)/mountinfo", encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(mounts.count, 1, "\(mounts)")
        XCTAssertEqual(mounts.first?.split(separator: " ")[4], "/")

        // And it still serves: read, create, symlinks stay links.
        let (hello, _) = try client.walk(root, b("hello")).get()
        let fd = try client.open(hello, flags: O_RDONLY).get()
        var buf = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(pread(fd, &buf, 8, 0), 2)
        close(fd)
        let (_, _, wfd) = try client.create(root, b("made"), flags: O_WRONLY, mode: 0o644, uid: 0, gid: 0).get()
        XCTAssertEqual(write(wfd, "ok", 2), 2)
        close(wfd)
        XCTAssertEqual(tree.read("made"), "ok")
        XCTAssertTrue(try client.walk(root, b("toRoot")).get().1.isSymlink)
    }

    func testReadOnlyRunMountsTheTreeReadOnly() throws {
        tree.write("f", "data")
        var child = try spawnGofer(root: tree.root, readOnly: true)
        do {
            let client = child.client!
            let root = try client.attach().get().0
            let mounts = try String(contentsOfFile: "/proc/\(child.pid)/mountinfo", encoding: .utf8)
            let opts = mounts.split(separator: "\n").first?.split(separator: " ")[5] ?? ""
            XCTAssertTrue(opts.split(separator: ",").contains("ro"), "mount options \(opts)")
            if case .failure(let e) = client.mkdir(root, b("d"), mode: 0o755, uid: 0, gid: 0) {
                XCTAssertEqual(e.rawValue, EROFS)
            } else {
                XCTFail("mkdir succeeded read-only")
            }
        }
        child.client = nil
        XCTAssertEqual(reap(child.pid).map { ($0 >> 8) & 0xFF }, 0)
        XCTAssertFalse(tree.exists("d"))
    }

    /// --scratch on a read-only run: unnamed files in the tree's host file
    /// system, while the tree stays read-only and unchanged, before and
    /// after the Gofer ends.
    func testReadOnlyRunMakesScratchFilesOnly() throws {
        tree.write("f", "data")
        let before = try FileManager.default.contentsOfDirectory(atPath: tree.root).sorted()
        var treeStat = stat()
        XCTAssertEqual(stat(tree.root, &treeStat), 0)
        var child = try spawnGofer(root: tree.root, readOnly: true, scratch: true)
        do {
            let client = child.client!
            let root = try client.attach().get().0
            let fd = try client.scratch().get()
            var st = stat()
            XCTAssertEqual(fstat(fd, &st), 0)
            XCTAssertEqual(UInt32(st.st_mode) & UInt32(S_IFMT), UInt32(S_IFREG))
            XCTAssertEqual(UInt64(st.st_nlink), 0, "unnamed")
            XCTAssertEqual(st.st_size, 0)
            XCTAssertEqual(st.st_dev, treeStat.st_dev, "in the tree's host file system")
            XCTAssertEqual(pwrite(fd, "bytes", 5, 4096), 5)
            var buf = [UInt8](repeating: 1, count: 4)
            XCTAssertEqual(pread(fd, &buf, 4, 0), 4)
            XCTAssertEqual(buf, [0, 0, 0, 0])
            // Never linkable (O_EXCL), from this side either.
            XCTAssertNotEqual(linkat(fd, "", AT_FDCWD, tree.path("named"), 0x1000 /* AT_EMPTY_PATH */), 0)
            close(fd)
            // The tree itself stays read-only, and its mount table one mount.
            if case .failure(let e) = client.mkdir(root, b("d"), mode: 0o755, uid: 0, gid: 0) {
                XCTAssertEqual(e.rawValue, EROFS)
            } else {
                XCTFail("mkdir succeeded read-only")
            }
            let mounts = try String(contentsOfFile: "/proc/\(child.pid)/mountinfo", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(mounts.count, 1, "\(mounts)")
        }
        child.client = nil
        XCTAssertEqual(reap(child.pid).map { ($0 >> 8) & 0xFF }, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tree.root).sorted(), before)
    }

    /// Without --scratch the request is refused.
    func testScratchNeedsTheFlag() throws {
        var child = try spawnGofer(root: tree.root, readOnly: true)
        do {
            _ = try child.client!.attach().get()
            if case .failure(let e) = child.client!.scratch() { XCTAssertEqual(e.rawValue, EPERM) } else { XCTFail("scratch without --scratch") }
        }
        child.client = nil
        XCTAssertEqual(reap(child.pid).map { ($0 >> 8) & 0xFF }, 0)
    }

    func testRunFailsClosed() throws {
        var child = try spawnGofer(root: tree.base + "/does-not-exist", readOnly: false)
        let status = reap(child.pid)
        XCTAssertEqual(status.map { ($0 >> 8) & 0xFF }, 1, "exit code")
        let message = (try? String(contentsOfFile: child.stderrPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(message.contains("moat gofer:"), "stderr: \(message)")
        if case .failure(let e) = child.client!.attach() { XCTAssertEqual(e.rawValue, EIO) } else { XCTFail() }
        child.client = nil

        child = try spawnGofer(root: "relative/path", readOnly: false)
        XCTAssertEqual(reap(child.pid).map { ($0 >> 8) & 0xFF }, 1)
        child.client = nil
    }
}
