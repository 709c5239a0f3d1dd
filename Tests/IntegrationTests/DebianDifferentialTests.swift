// Differential tests on a real Linux userland: every bash script in
// Tests/IntegrationTests/debian/ runs natively under chroot(8) and inside Moat
// (`moat run`) on the Debian bookworm rootfs built by rootfs/debian.sh, and the
// two runs must agree on stdout, stderr, exit status and the files the script
// leaves in its own directory.
//
// The rootfs is ~320 MB, so it is not copied per script: each test process
// makes ONE private copy for native runs and ONE for Moat runs (cp -a
// --reflink=auto under $REPO/.cache/tmp/debdiff), and every script gets its own
// empty directory /work/<script-basename> in both, which is its cwd and the only
// tree compared. Scripts must therefore stay inside their directory.
//
// Native run (procfs mounted on COPY/proc while any native script runs, always
// unmounted afterwards):
//   env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C \
//     chroot NATIVE /bin/bash -c 'umask 022 && ulimit -c 0 && cd /work/NAME && /bin/bash ./test.sh; exit $?'
// Moat run (writes go through to the copy, so the tree can be compared; same
// umask and core limit on the host side):
//   moat run --no-overlay --rootfs MOAT --cwd /work/NAME --env PATH=... --env HOME=/root --env LANG=C \
//     -- /bin/bash -c '/bin/bash ./test.sh; exit $?'
// As in the busybox suite, the script's shell is never pid 1 inside Moat.
//
// Scripts Moat cannot run yet are listed in `debianKnownIssues` (script name ->
// reason) and wrapped in withKnownIssue: the gap stays visible in the test log
// while CI stays green, and once Moat is fixed the test fails with "known issue
// was not recorded" so the entry gets removed. Everything else must pass.
//
// Skipped (not failed) without root/chroot(8) or when rootfs/debian.sh cannot
// build the rootfs (no network); the reason is printed.
// Knobs: MOAT_BIN, MOAT_IT_JOBS, MOAT_IT_KEEP=1 (as in the busybox suite) and
// MOAT_DEBIAN_TIMEOUT (seconds per run, default 30).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Scripts Moat is known to fail, with the root cause. Keep this small and
/// precise; remove an entry as soon as the script passes.
let debianKnownIssues: [String: String] = [:]

/// Scripts that fail only sometimes, with what is known of the race. They
/// run like the others; a failure is recorded as a known issue, a pass is
/// fine. Remove an entry once its cause is fixed.
let debianIntermittent: [String: String] = [
    "19-bash-jobs-procps.sh":
        "bash's `wait -n` (wait_for_any_job) looks for dead jobs with SIGCHLD blocked, unblocks, then "
        + "looks for running ones; if two jobs end in between, the SIGCHLD handler reaps both and it "
        + "returns 127. Moat's slower children hit that window (1 in 24 runs under load; 0 in 900 "
        + "native runs). The script now staggers the jobs' exits; kept here until that is shown "
        + "stable in CI.",
]

/// All Debian scripts, discovered from the source tree.
let debianScripts: [String] = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: DebianDiff.scriptsDir)) ?? []
    return names.filter { $0.hasSuffix(".sh") }.sorted()
}()

enum DebianDiff {
    static let scriptsDir = Integration.testsDir + "/debian"
    static let fixedPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    static let guestEnv = ["PATH=" + fixedPath, "HOME=/root", "LANG=C"]
    static let scratchGroup = Integration.scratchRoot + "/debdiff"

    /// Per-run wall-clock limit (native and Moat alike): a hang detector,
    /// not a speed bound (speed is bench/'s). The 64-thread ping-pong of
    /// 24-python-thread-stress.sh takes 7.5-9 s on nested KVM on a busy
    /// 2-core machine (0.5 s natively, 1.5 s under ptrace) and once ran past
    /// 30 s beside the other suites of a full CI run.
    static let timeout: Double = {
        if let s = ProcessInfo.processInfo.environment["MOAT_DEBIAN_TIMEOUT"], let v = Double(s) { return v }
        return 90
    }()

    /// Builds (or reuses) the Debian rootfs once per test process.
    static let rootfs: Result<String, HarnessError> = {
        let out = Integration.repoRoot + "/.cache/rootfs/debian"
        let script = Integration.repoRoot + "/rootfs/debian.sh"
        let res = runSync(["/bin/bash", script, out], env: Integration.hostEnvironment(), timeout: 900)
        guard res.exitStatus == 0 else {
            return .failure(HarnessError("""
                rootfs/debian.sh failed (status \(res.exitStatus)\(res.timedOut ? ", timed out" : "")): \
                \(trimmedTail(res.stdoutText + res.stderrText, lines: 10))
                """))
        }
        for need in ["/bin/bash", "/usr/bin/python3", "/usr/bin/perl"]
        where !FileManager.default.isExecutableFile(atPath: out + need) {
            return .failure(HarnessError("rootfs/debian.sh succeeded but \(out)\(need) is missing"))
        }
        return .success(out)
    }()

    /// The two private copies, made on first use.
    static let copies: Result<DebianCopies, HarnessError> = {
        do {
            let root = try rootfs.get()
            return .success(try DebianCopies(from: root))
        } catch let e as HarnessError {
            return .failure(e)
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    /// Condition for the suite: root, chroot(8) and a buildable rootfs. Prints
    /// the reason once when the tests are skipped.
    static let ready: Bool = {
        var reason: String?
        if !Integration.canRunNative {
            reason = "needs root and chroot(8) for the native reference run"
        } else if case .failure(let e) = rootfs {
            reason = "the Debian rootfs is unavailable: \(e.description)"
        }
        if let reason {
            print("Debian differential tests skipped: \(reason)")
            return false
        }
        return true
    }()
}

/// One native and one Moat copy of the rootfs, shared by all scripts of this
/// test process; removed after the last script (or at exit).
final class DebianCopies: @unchecked Sendable {
    let scratch: String
    let native: String
    let moat: String
    private let lock = NSLock()
    private var procUsers = 0
    /// Runs still to come: both rows (the KVM row's only where it runs).
    private var remaining = debianScripts.count
        + (KVMRunTests.missing() == nil ? debianScripts.filter { kvmDebianExcluded[$0] == nil }.count : 0)
    private var removed = false

    init(from rootfs: String) throws {
        DebianCopies.removeStale()
        let fm = FileManager.default
        try fm.createDirectory(atPath: DebianDiff.scratchGroup, withIntermediateDirectories: true)
        var template = Array("\(DebianDiff.scratchGroup)/copies-\(getpid())-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) != nil }) else {
            throw HarnessError("mkdtemp under \(DebianDiff.scratchGroup) failed: errno \(errno)")
        }
        scratch = String(cString: template)
        native = scratch + "/native"
        moat = scratch + "/moat"
        do {
            for dst in [native, moat] {
                let res = runSync(["/bin/cp", "-a", "--reflink=auto", rootfs, dst],
                                  env: ["PATH=" + Integration.fixedPath], timeout: 300)
                guard res.exitStatus == 0 else {
                    throw HarnessError("cp -a --reflink=auto \(rootfs) \(dst) failed (\(res.exitStatus)): \(res.stderrText)")
                }
                for (dir, mode) in [("work", 0o755), ("tmp", 0o1777), ("dev/shm", 0o1777)] {
                    try fm.createDirectory(atPath: dst + "/" + dir, withIntermediateDirectories: true)
                    chmod(dst + "/" + dir, mode_t(mode))
                }
            }
            try Integration.populateDev(native + "/dev")
        } catch {
            _ = Integration.removeScratch(scratch)
            throw error
        }
        let me = self
        DebianCopies.atExitHook = { me.remove() }
        atexit { DebianCopies.atExitHook?() }
    }

    nonisolated(unsafe) static var atExitHook: (() -> Void)?

    /// Copies left by earlier test processes that died (pid no longer alive).
    static func removeStale() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: DebianDiff.scratchGroup)) ?? []
        for n in names where n.hasPrefix("copies-") {
            let parts = n.split(separator: "-")
            guard parts.count >= 3, let pid = pid_t(parts[1]), pid != getpid(),
                  kill(pid, 0) != 0 && errno == ESRCH else { continue }
            _ = Integration.removeScratch(DebianDiff.scratchGroup + "/" + n)
        }
    }

    /// procfs on the native copy is mounted while at least one native run is active.
    func acquireProc() throws {
        lock.lock(); defer { lock.unlock() }
        if procUsers == 0 {
            let procDir = native + "/proc"
            guard mount("proc", procDir, "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) == 0 else {
                throw HarnessError("mount -t proc proc \(procDir) failed: \(String(cString: strerror(errno)))")
            }
        }
        procUsers += 1
    }

    func releaseProc() -> String? {
        lock.lock(); defer { lock.unlock() }
        procUsers -= 1
        return procUsers == 0 ? unmountProc() : nil
    }

    private func unmountProc() -> String? {
        let procDir = native + "/proc"
        for _ in 0..<100 {
            if umount2(procDir, 0) == 0 { return nil }
            if errno == EINVAL || errno == ENOENT { return nil } // not mounted
            usleep(20_000)
        }
        if umount2(procDir, Int32(MNT_DETACH)) == 0 { return nil }
        return "could not unmount \(procDir): \(String(cString: strerror(errno)))"
    }

    /// Called after each script; the last one removes the copies.
    func scriptFinished() -> String? {
        lock.lock()
        remaining -= 1
        let last = remaining <= 0
        lock.unlock()
        return last ? remove() : nil
    }

    @discardableResult
    func remove() -> String? {
        lock.lock(); defer { lock.unlock() }
        if removed { return nil }
        removed = true
        if keepScratch {
            print("Debian differential: kept rootfs copies in \(scratch)")
            return nil
        }
        if procUsers > 0 || !Integration.mounts(under: native + "/proc").isEmpty {
            procUsers = 0
            if let problem = unmountProc() { return problem }
        }
        return Integration.removeScratch(scratch)
    }
}

/// Debian scripts the KVM row leaves out, and why (known gaps of the KVM
/// platform, not of the scripts).
let kvmDebianExcluded: [String: String] = [:]

@Suite("Debian differential (native chroot vs moat run)")
struct DebianDifferentialTests {

    @Test(.enabled("needs root, chroot(8) and the Debian rootfs from rootfs/debian.sh") { DebianDiff.ready },
          arguments: debianScripts)
    func script(_ name: String) async throws {
        try await run(name, platform: differentialPlatform)
    }

    /// The KVM row: every script again with `--platform kvm` (except those
    /// in kvmDebianExcluded, each with its reason), in its own directory
    /// (/work/NAME-kvm) so that it can run beside the main row.
    @Test(.enabled("needs root, chroot(8) and the Debian rootfs from rootfs/debian.sh") { DebianDiff.ready },
          arguments: debianScripts.filter { kvmDebianExcluded[$0] == nil })
    func kvm(_ name: String) async throws {
        guard try KVMRunTests.prerequisites() else { return }
        try await run(name, platform: "kvm", dirSuffix: "-kvm")
    }

    private func run(_ name: String, platform: String?, dirSuffix: String = "") async throws {
        await differentialGate.acquire()
        defer { Task { await differentialGate.release() } }

        let copies = try DebianDiff.copies.get()
        defer {
            if let problem = copies.scriptFinished() { print("warning: \(problem)") }
        }
        let moat = try Integration.moatBinary.get()
        let base = String(name.dropLast(3))
        let dir = "/work/" + base + dirSuffix
        for root in [copies.native, copies.moat] {
            try prepare(dir: root + dir, script: DebianDiff.scriptsDir + "/" + name)
        }

        try copies.acquireProc()
        let nativeResult = await runProcess(
            [Integration.chrootPath!, copies.native, "/bin/bash", "-c",
             "umask 022 && ulimit -c 0 && cd \(dir) && /bin/bash ./test.sh; exit $?"],
            env: DebianDiff.guestEnv, timeout: DebianDiff.timeout)
        let cleanupProblem = copies.releaseProc()
        let native = ScriptRun(result: nativeResult, tree: snapshotTree(copies.native + dir))

        var argv = ["/bin/sh", "-c", "umask 022 && ulimit -c 0 && exec \"$0\" \"$@\"",
                    moat, "run"] + platformArguments(platform)
            + ["--no-overlay", "--rootfs", copies.moat, "--cwd", dir]
        for e in DebianDiff.guestEnv { argv += ["--env", e] }
        argv += ["--", "/bin/bash", "-c", "/bin/bash ./test.sh; exit $?"]
        let moatResult = await runProcess(argv, env: Integration.hostEnvironment(), timeout: DebianDiff.timeout)
        let sandboxed = ScriptRun(result: moatResult, tree: snapshotTree(copies.moat + dir))

        if let cleanupProblem { Issue.record(Comment(rawValue: cleanupProblem)) }
        if native.result.timedOut || native.result.exitStatus == -1 {
            Issue.record(Comment(rawValue: "\(name): the NATIVE run failed to complete; the script or harness is broken\n"
                + describeRun(native.result)))
            return
        }
        let report = compareRuns(name: name + (platform.map { " (--platform \($0))" } ?? ""), native: native, sandboxed: sandboxed, timeout: DebianDiff.timeout,
                                 treeWhat: "files under the script's directory", treeLabels: ("native", "moat"))
        if let reason = debianKnownIssues[name] {
            withKnownIssue(Comment(rawValue: reason)) {
                if let report { Issue.record(Comment(rawValue: report)) }
            }
        } else if let reason = debianIntermittent[name] {
            withKnownIssue(Comment(rawValue: reason), isIntermittent: true) {
                if let report { Issue.record(Comment(rawValue: report)) }
            }
        } else if let report {
            Issue.record(Comment(rawValue: report))
        }
    }

    /// An empty /work/<name> (0755) holding the script as test.sh (0644).
    private func prepare(dir: String, script: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir) || (try? fm.destinationOfSymbolicLink(atPath: dir)) != nil {
            let res = runSync(["/bin/rm", "-rf", "--one-file-system", dir], env: ["PATH=" + Integration.fixedPath], timeout: 60)
            guard res.exitStatus == 0 else { throw HarnessError("rm -rf \(dir) failed: \(res.stderrText)") }
        }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        let data = try Data(contentsOf: URL(fileURLWithPath: script))
        try data.write(to: URL(fileURLWithPath: dir + "/test.sh"))
        chmod(dir + "/test.sh", 0o644)
    }
}
