// Shared plumbing for the integration tests: locating the repository, the
// busybox rootfs and the `moat` binary, spawning processes with a timeout,
// snapshotting directory trees and rendering readable diffs.
//
// Everything here uses only Foundation and libc, so the test target has no
// dependency on the Moat modules themselves: it drives the built `moat`
// executable exactly the way a user would.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Integration {
    /// Repository root, derived from this file's location
    /// (Tests/IntegrationTests/IntegrationSupport.swift).
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let testsDir = repoRoot + "/Tests/IntegrationTests"
    static let scriptsDir = testsDir + "/scripts"
    static let programsDir = testsDir + "/programs"

    /// Scratch space for per-test rootfs copies. Lives inside the repository
    /// (.cache is gitignored) so `cp -a` of the rootfs stays on one filesystem.
    static let scratchRoot = repoRoot + "/.cache/tmp"

    static let fixedPath = "/usr/sbin:/usr/bin:/sbin:/bin"

    static var isRoot: Bool { geteuid() == 0 }

    static let chrootPath: String? = ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot", "/bin/chroot"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Native (chroot) runs need root and a chroot binary; without them the
    /// differential tests are skipped rather than failed.
    static var canRunNative: Bool { isRoot && chrootPath != nil }

    static let gccPath: String? = ["/usr/bin/gcc", "/usr/local/bin/gcc", "/bin/gcc"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    // MARK: rootfs

    /// Builds (or reuses) the busybox rootfs once per test process.
    static let rootfs: Result<String, HarnessError> = {
        let out = repoRoot + "/.cache/rootfs/busybox"
        let script = repoRoot + "/rootfs/busybox.sh"
        let res = runSync(["/bin/sh", script, out], env: hostEnvironment(), timeout: 300)
        guard res.exitStatus == 0 else {
            return .failure(HarnessError("""
                rootfs/busybox.sh failed (status \(res.exitStatus)\(res.timedOut ? ", timed out" : "")):
                \(res.stdoutText)\(res.stderrText)
                """))
        }
        guard FileManager.default.isExecutableFile(atPath: out + "/bin/busybox") else {
            return .failure(HarnessError("rootfs/busybox.sh succeeded but \(out)/bin/busybox is missing"))
        }
        return .success(out)
    }()

    // MARK: moat binary

    /// The `moat` executable: $MOAT_BIN, else the one built next to this test
    /// binary, else $REPO/.build/debug/moat, else built with
    /// `swift build --product moat`.
    static let moatBinary: Result<String, HarnessError> = {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["MOAT_BIN"], !env.isEmpty {
            return fm.isExecutableFile(atPath: env)
                ? .success(env) : .failure(HarnessError("MOAT_BIN=\(env) is not an executable file"))
        }
        var candidates: [String] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent + "/moat")
        }
        let defaultPath = repoRoot + "/.build/debug/moat"
        candidates.append(defaultPath)
        if let found = candidates.first(where: { fm.isExecutableFile(atPath: $0) }) {
            return .success(found)
        }
        // `swift test` keeps .build locked while tests run; building into the
        // same scratch path from inside it would wait forever.
        if let holder = swiftPMLockHolder(repoRoot + "/.build"), isAncestor(holder) {
            return .failure(HarnessError("""
                no moat binary found (looked at \(candidates.joined(separator: ", "))), and it cannot be \
                built from inside this test run (SwiftPM process \(holder) holds \(repoRoot)/.build/.lock). \
                Build it first: swift build --product moat (or set MOAT_BIN).
                """))
        }
        let build = runSync(["/bin/sh", "-c", "swift build --product moat && swift build --product moat-sandbox"],
                            env: hostEnvironment(), cwd: repoRoot, timeout: 1800)
        guard build.exitStatus == 0, fm.isExecutableFile(atPath: defaultPath) else {
            return .failure(HarnessError("""
                no moat binary found (looked at \(candidates.joined(separator: ", "))) and \
                `swift build --product moat && swift build --product moat-sandbox` failed with status \(build.exitStatus):
                \(trimmedTail(build.stdoutText + build.stderrText, lines: 40))
                """))
        }
        return .success(defaultPath)
    }()

    /// The live pid recorded in a SwiftPM scratch directory's .lock file.
    static func swiftPMLockHolder(_ scratch: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: scratch + "/.lock", encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
              kill(pid, 0) == 0 || errno == EPERM else { return nil }
        return pid
    }

    /// Whether `pid` is this process or one of its ancestors.
    static func isAncestor(_ pid: pid_t) -> Bool {
        var current = getpid()
        for _ in 0..<64 {
            if current == pid { return true }
            guard current > 1,
                  let stat = try? String(contentsOfFile: "/proc/\(current)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let ppid = pid_t(fields[1]) else { return false }
            current = ppid
        }
        return false
    }

    static func hostEnvironment() -> [String] {
        ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }.sorted()
    }

    // MARK: scratch directories

    /// A fresh private directory under .cache/tmp/<group>/.
    static func makeScratchDir(group: String, name: String) throws -> String {
        let base = scratchRoot + "/" + group
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let safe = name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        var template = Array("\(base)/\(String(safe))-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buf -> Bool in
            mkdtemp(buf.baseAddress!) != nil
        }
        guard made else { throw HarnessError("mkdtemp under \(base) failed: errno \(errno)") }
        return String(cString: template)
    }

    /// `cp -a SRC DST` (DST must not exist).
    static func copyTree(_ src: String, to dst: String) throws {
        let res = runSync(["/bin/cp", "-a", src, dst], env: ["PATH=" + fixedPath], timeout: 120)
        guard res.exitStatus == 0 else {
            throw HarnessError("cp -a \(src) \(dst) failed (\(res.exitStatus)): \(res.stderrText)")
        }
    }

    /// A private copy of the rootfs with empty /work (0755) and /tmp (1777).
    /// The shared cached rootfs is sometimes used by hand (files dropped into
    /// its /work); emptying these keeps every test hermetic.
    static func makeRootfsCopy(of rootfs: String, at dst: String) throws {
        try copyTree(rootfs, to: dst)
        let fm = FileManager.default
        for (dir, mode) in [("work", 0o755), ("tmp", 0o1777)] {
            let path = dst + "/" + dir
            if let names = try? fm.contentsOfDirectory(atPath: path) {
                for n in names { try fm.removeItem(atPath: path + "/" + n) }
            } else {
                try fm.createDirectory(atPath: path, withIntermediateDirectories: false)
            }
            chmod(path, mode_t(mode))
        }
    }

    /// A native chroot has no devtmpfs: creates (or keeps) the device nodes
    /// and /dev/fd, /dev/std* links the scripts use, world-writable.
    static func populateDev(_ dev: String) throws {
        let nodes: [(String, UInt64, UInt64)] = [
            ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
        ]
        for (name, major, minor) in nodes {
            let path = dev + "/" + name
            guard mknod(path, mode_t(S_IFCHR) | 0o666, dev_t((major << 8) | minor)) == 0 || errno == EEXIST else {
                throw HarnessError("mknod \(path) failed: \(String(cString: strerror(errno)))")
            }
            chmod(path, 0o666)
        }
        for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                               ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            symlink(target, dev + "/" + name)
        }
    }

    /// Mount points (from /proc/self/mountinfo) at or below `path`.
    static func mounts(under path: String) -> [String] {
        currentMountPoints().filter { $0 == path || $0.hasPrefix(path + "/") }
    }

    static func currentMountPoints() -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4 else { return nil }
            return unescapeMountField(String(fields[4]))
        }
    }

    static func unescapeMountField(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8]()
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Removes a scratch directory, refusing if anything is still mounted
    /// below it (deleting through a live procfs or bind mount would be bad).
    static func removeScratch(_ path: String) -> String? {
        let live = mounts(under: path)
        if !live.isEmpty {
            return "not removing \(path): still mounted: \(live.joined(separator: ", "))"
        }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            // Fall back to rm -rf (handles odd permissions left by a test).
            let res = runSync(["/bin/rm", "-rf", "--one-file-system", path], env: ["PATH=" + fixedPath], timeout: 120)
            if res.exitStatus != 0 { return "rm -rf \(path) failed: \(res.stderrText)" }
        }
        return nil
    }
}

// MARK: - Process execution

struct ProcessResult {
    /// Exit status; death by signal N is reported as 128+N (like a shell).
    var exitStatus: Int32
    var signaled: Bool
    var timedOut: Bool
    var stdout: Data
    var stderr: Data
    var seconds: Double

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Spawns `argv` with exactly `env`, stdin from /dev/null and stdout/stderr
/// captured through temporary files (not pipes, so stray background
/// processes holding the descriptors cannot stall us). The child gets its own
/// session and process group, default signal dispositions, an empty signal
/// mask and no inherited descriptors above 2. On timeout the whole process
/// group is SIGKILLed. After the child exits, remaining members of its process
/// group are killed as well.
func runProcess(_ argv: [String], env: [String], cwd: String? = nil, timeout: Double) async -> ProcessResult {
    await withCheckedContinuation { cont in
        // Blocking waits go to a plain thread so the cooperative pool is not
        // starved while many tests run concurrently.
        Thread.detachNewThread {
            cont.resume(returning: runSync(argv, env: env, cwd: cwd, timeout: timeout))
        }
    }
}

func runSync(_ argv: [String], env: [String], cwd: String? = nil, timeout: Double) -> ProcessResult {
    let start = Date()
    let fail = { (msg: String) -> ProcessResult in
        ProcessResult(exitStatus: -1, signaled: false, timedOut: false, stdout: Data(),
                      stderr: Data("harness: \(msg)\n".utf8), seconds: 0)
    }
    var outTemplate = Array("/tmp/moat-it-out-XXXXXX".utf8CString)
    var errTemplate = Array("/tmp/moat-it-err-XXXXXX".utf8CString)
    let outFD = outTemplate.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    let errFD = errTemplate.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    let outPath = String(cString: outTemplate)
    let errPath = String(cString: errTemplate)
    defer {
        if outFD >= 0 { close(outFD); unlink(outPath) }
        if errFD >= 0 { close(errFD); unlink(errPath) }
    }
    guard outFD >= 0, errFD >= 0 else { return fail("mkstemp failed: errno \(errno)") }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outFD, 1)
    posix_spawn_file_actions_adddup2(&actions, errFD, 2)
    // Close every inherited descriptor above 2 in the child. The glibc
    // extension is not visible to Swift's Glibc module, so look it up.
    if let sym = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        _ = unsafeBitCast(sym, to: CloseFrom.self)(&actions, 3)
    }

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var all = sigset_t()
    sigfillset(&all)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setsigmask(&attr, &none)
    let POSIX_SPAWN_SETSID_FLAG: Int32 = 0x80 // glibc's POSIX_SPAWN_SETSID
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID_FLAG))

    // A working directory is applied by a tiny /bin/sh trampoline.
    let argv = cwd.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0] + argv } ?? argv
    let cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let cEnv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
    defer {
        cArgv.forEach { free($0) }
        cEnv.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgv, cEnv)
    guard rc == 0 else { return fail("posix_spawn \(argv[0]) failed: \(String(cString: strerror(rc)))") }

    // Poll for exit without reaping (WNOWAIT), so the pid -- and with it the
    // process group id -- stays reserved until the group has been killed.
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    while true {
        var info = siginfo_t()
        let r = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        if r == 0 && info._sifields._sigchld.si_pid == pid { break }
        if r != 0 && errno != EINTR { break }
        if Date() >= deadline {
            timedOut = true
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            break
        }
        usleep(5_000)
    }
    kill(-pid, SIGKILL) // stragglers left behind in the session (e.g. background jobs)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}

    let termsig = status & 0x7f
    let signaled = termsig != 0 && termsig != 0x7f
    let code: Int32 = signaled ? 128 + termsig : (status >> 8) & 0xff
    let out = (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data()
    let err = (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data()
    return ProcessResult(exitStatus: code, signaled: signaled, timedOut: timedOut,
                         stdout: out, stderr: err, seconds: Date().timeIntervalSince(start))
}

// MARK: - Directory tree snapshots

/// One entry of a directory tree: everything that must match between two
/// runs (type, permission bits, size, content hash, symlink target), and
/// nothing that legitimately differs (times, inode numbers, owners unless asked).
struct TreeEntry: Equatable, CustomStringConvertible {
    var path: String
    var kind: String
    var mode: UInt32
    var size: Int64?
    var hash: String?
    var target: String?
    var owner: String?

    var description: String {
        var s = "\(kind) \(String(mode, radix: 8).leftPad(4)) \(path)"
        if let size { s += " size=\(size)" }
        if let hash { s += " fnv=\(hash)" }
        if let target { s += " -> \(target)" }
        if let owner { s += " owner=\(owner)" }
        return s
    }
}

extension String {
    func leftPad(_ n: Int, with c: Character = "0") -> String {
        count >= n ? self : String(repeating: c, count: n - count) + self
    }
}

/// Walks `root` (without following symlinks) and describes every entry
/// relative to it, sorted by path. `exclude` holds relative paths whose
/// subtrees are skipped.
func snapshotTree(_ root: String, includeOwner: Bool = false, exclude: Set<String> = []) -> [TreeEntry] {
    var entries: [TreeEntry] = []
    func visit(_ rel: String) {
        if exclude.contains(rel) { return }
        let full = rel == "." ? root : root + "/" + rel
        var st = stat()
        guard lstat(full, &st) == 0 else {
            entries.append(TreeEntry(path: rel, kind: "unreadable(errno \(errno))", mode: 0))
            return
        }
        var e = TreeEntry(path: rel, kind: "?", mode: UInt32(st.st_mode) & 0o7777)
        if includeOwner { e.owner = "\(st.st_uid):\(st.st_gid)" }
        switch UInt32(st.st_mode) & UInt32(S_IFMT) {
        case UInt32(S_IFREG):
            e.kind = "file"
            e.size = Int64(st.st_size)
            e.hash = fnv1a64(file: full)
        case UInt32(S_IFDIR):
            e.kind = "dir"
        case UInt32(S_IFLNK):
            e.kind = "symlink"
            e.target = (try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?"
        case UInt32(S_IFIFO): e.kind = "fifo"
        case UInt32(S_IFSOCK): e.kind = "socket"
        case UInt32(S_IFCHR): e.kind = "chardev(\(st.st_rdev >> 8 & 0xfff):\(st.st_rdev & 0xff))"
        case UInt32(S_IFBLK): e.kind = "blockdev(\(st.st_rdev >> 8 & 0xfff):\(st.st_rdev & 0xff))"
        default: e.kind = "unknown"
        }
        entries.append(e)
        if e.kind == "dir" {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).sorted()
            for n in names { visit(rel == "." ? n : rel + "/" + n) }
        }
    }
    visit(".")
    return entries.sorted { $0.path < $1.path }
}

/// 64-bit FNV-1a of a file's contents ("unreadable" if it cannot be opened).
func fnv1a64(file: String) -> String {
    let fd = open(file, O_RDONLY | O_NONBLOCK | O_NOFOLLOW)
    guard fd >= 0 else { return "unreadable" }
    defer { close(fd) }
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    let bufSize = 1 << 16
    let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: bufSize, alignment: 8)
    defer { buf.deallocate() }
    while true {
        let n = read(fd, buf.baseAddress, bufSize)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        let p = buf.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for i in 0..<n {
            h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01b3
        }
    }
    return String(h, radix: 16).leftPad(16)
}

// MARK: - Diff rendering

/// Last `lines` lines of `text`.
func trimmedTail(_ text: String, lines: Int) -> String {
    let all = text.split(separator: "\n", omittingEmptySubsequences: false)
    if all.count <= lines { return text }
    return "… (\(all.count - lines) earlier lines omitted)\n" + all.suffix(lines).joined(separator: "\n")
}

/// A unified-style line diff of `a` (expected) and `b` (actual), limited to
/// `maxLines` output lines with long lines shortened.
func unifiedDiff(_ a: [String], _ b: [String], labelA: String, labelB: String,
                 context: Int = 3, maxLines: Int = 80) -> String {
    func clip(_ s: String) -> String {
        let visible = s.replacingOccurrences(of: "\t", with: "\\t")
        return visible.count > 200 ? String(visible.prefix(200)) + "…" : visible
    }
    // Strip the common prefix/suffix, then run an LCS on the middle part.
    var lo = 0
    while lo < a.count && lo < b.count && a[lo] == b[lo] { lo += 1 }
    var hiA = a.count, hiB = b.count
    while hiA > lo && hiB > lo && a[hiA - 1] == b[hiB - 1] { hiA -= 1; hiB -= 1 }
    let midA = Array(a[lo..<hiA]), midB = Array(b[lo..<hiB])

    // ops over the middle: (" ", "-", "+", line)
    var ops: [(Character, String)] = []
    if midA.count * midB.count <= 4_000_000 {
        let n = midA.count, m = midB.count
        var dp = [[Int32]](repeating: [Int32](repeating: 0, count: m + 1), count: n + 1)
        if n > 0 && m > 0 {
            for i in stride(from: n - 1, through: 0, by: -1) {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    dp[i][j] = midA[i] == midB[j] ? dp[i + 1][j + 1] + 1 : max(dp[i + 1][j], dp[i][j + 1])
                }
            }
        }
        var i = 0, j = 0
        while i < n || j < m {
            if i < n && j < m && midA[i] == midB[j] { ops.append((" ", midA[i])); i += 1; j += 1 }
            else if i < n && (j == m || dp[i + 1][j] >= dp[i][j + 1]) { ops.append(("-", midA[i])); i += 1 }
            else { ops.append(("+", midB[j])); j += 1 }
        }
    } else {
        ops = midA.map { ("-", $0) } + midB.map { ("+", $0) }
    }
    let full: [(Character, String)] = a[..<lo].map { (" ", $0) } + ops + a[hiA...].map { (" ", $0) }

    // Keep changed lines plus `context` lines around them.
    var keep = [Bool](repeating: false, count: full.count)
    for (k, op) in full.enumerated() where op.0 != " " {
        for c in max(0, k - context)...min(full.count - 1, k + context) { keep[c] = true }
    }
    var out = ["--- \(labelA)", "+++ \(labelB)"]
    var lineA = 1, lineB = 1
    var k = 0
    while k < full.count {
        if !keep[k] {
            if full[k].0 != "+" { lineA += 1 }
            if full[k].0 != "-" { lineB += 1 }
            k += 1
            continue
        }
        out.append("@@ line \(lineA) / \(lineB) @@")
        while k < full.count && keep[k] {
            out.append("\(full[k].0)\(clip(full[k].1))")
            if full[k].0 != "+" { lineA += 1 }
            if full[k].0 != "-" { lineB += 1 }
            k += 1
        }
    }
    if out.count > maxLines {
        let dropped = out.count - maxLines
        out = Array(out.prefix(maxLines)) + ["… (\(dropped) more diff lines)"]
    }
    return out.joined(separator: "\n")
}

/// Splits captured output into lines for diffing, marking a missing final
/// newline so that it shows up as a difference too.
func diffLines(_ data: Data) -> [String] {
    var text = String(decoding: data, as: UTF8.self)
    if text.isEmpty { return [] }
    var lines: [String]
    if text.hasSuffix("\n") {
        text.removeLast()
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    } else {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[lines.count - 1] += "⏎(no newline at end)"
    }
    return lines.map { $0.replacingOccurrences(of: "\0", with: "\\0") }
}

// MARK: - Differential reports (shared by the busybox and Debian suites)

/// One line of status and the tails of a run's output.
func describeRun(_ r: ProcessResult) -> String {
    """
    exit status \(r.exitStatus)\(r.signaled ? " (signal \(r.exitStatus - 128))" : "")\(r.timedOut ? " TIMED OUT" : ""), \
    \(String(format: "%.2f", r.seconds))s
    stdout (tail):
    \(trimmedTail(r.stdoutText, lines: 20))
    stderr (tail):
    \(trimmedTail(r.stderrText, lines: 20))
    """
}

/// nil when the native and sandboxed runs agree on status, stdout, stderr
/// and files; otherwise a report with a diff per difference.
func compareRuns(name: String, native: ScriptRun, sandboxed: ScriptRun, timeout: Double,
                 treeWhat: String, treeLabels: (String, String)) -> String? {
    var sections: [String] = []
    let n = native.result, m = sandboxed.result
    if m.timedOut {
        sections.append("moat run TIMED OUT after \(Int(timeout))s (killed)")
    }
    if n.exitStatus != m.exitStatus {
        sections.append("exit status: native \(n.exitStatus), moat \(m.exitStatus)"
            + (m.exitStatus == 127 || m.exitStatus == -1 ? "  (moat could not start the command?)" : ""))
    }
    if n.stdout != m.stdout {
        sections.append("stdout differs:\n" + unifiedDiff(diffLines(n.stdout), diffLines(m.stdout),
                                                         labelA: "native", labelB: "moat"))
    }
    if n.stderr != m.stderr {
        sections.append("stderr differs:\n" + unifiedDiff(diffLines(n.stderr), diffLines(m.stderr),
                                                         labelA: "native", labelB: "moat"))
    }
    if native.tree != sandboxed.tree {
        sections.append("\(treeWhat) differ:\n" + unifiedDiff(
            native.tree.map(\.description), sandboxed.tree.map(\.description),
            labelA: treeLabels.0, labelB: treeLabels.1, context: 2))
    }
    if sections.isEmpty { return nil }
    let header = "\(name): native and moat runs differ " + String(
        format: "(native: status %d in %.2fs; moat: status %d in %.2fs)", n.exitStatus, n.seconds, m.exitStatus, m.seconds)
    return header + "\n\n" + sections.joined(separator: "\n\n")
}
