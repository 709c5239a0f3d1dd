// Differential tests: every script in Tests/IntegrationTests/scripts/ is run
// twice on private copies of the busybox rootfs -- natively under chroot(8)
// with a real procfs, and inside Moat with `moat run` -- and the two runs must
// agree on stdout, stderr, exit status and the file tree left under /work.
//
// Requirements: root and chroot(8) (otherwise the tests are skipped), busybox-static
// (`apt-get install busybox-static`) for rootfs/busybox.sh, and a `moat` binary
// ($MOAT_BIN, the one built beside this test binary, $REPO/.build/debug/moat,
// or one built on demand with `swift build --product moat`).
//
// The native reference run is
//   env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
//     chroot COPY_A /bin/sh -c 'umask 022 && ulimit -c 0 && cd /work && /bin/sh ./test.sh; exit $?'
// with procfs mounted on COPY_A/proc (always unmounted afterwards) and
// null/zero/full/random/urandom/tty nodes plus /dev/fd and /dev/std* links
// created in COPY_A/dev. The Moat run is
//   moat run --no-overlay --rootfs COPY_B --cwd /work --env PATH=... --env HOME=/root -- /bin/sh -c '/bin/sh ./test.sh; exit $?'
// started with the same umask and core limit. In both, the script's shell is a
// child of another shell: inside Moat the first process is the pid
// namespace's init, which Linux shields from signals it does not handle
// (`kill -TERM $$` must not kill init), and a native run has no such init.
// Both get stdin from /dev/null,
// default signal dispositions, their own session, and a timeout.
//
// Knobs: MOAT_BIN (moat executable), MOAT_IT_TIMEOUT (seconds per run, default
// 60), MOAT_IT_JOBS (scripts in parallel), MOAT_IT_KEEP=1 (keep the copies),
// MOAT_IT_PLATFORM (the `--platform` of every Moat run of the differential
// suites; default: Moat's own default).
//
// The KVM row: `kvm(_:)` runs every script again with `--platform kvm`
// (except the few listed in kvmExcluded, each with its reason), so a
// regression of the KVM platform fails CI like one of the default platform.
// See scripts/README.md for how to write a script.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// All differential scripts, discovered from the source tree.
let busyboxScripts: [String] = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: Integration.scriptsDir)) ?? []
    return names.filter { $0.hasSuffix(".sh") }.sorted()
}()

/// Per-run wall-clock limit (native and Moat alike).
let differentialTimeout: Double = {
    if let s = ProcessInfo.processInfo.environment["MOAT_IT_TIMEOUT"], let v = Double(s) { return v }
    return 60
}()

/// Bounds how many scripts run at once (each one runs two process trees).
actor Gate {
    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []
    init(_ n: Int) { available = n }
    func acquire() async {
        if available > 0 { available -= 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }
    func release() {
        if waiters.isEmpty { available += 1 } else { waiters.removeFirst().resume() }
    }
}

/// How many scripts run concurrently: $MOAT_IT_JOBS, default max(2, cores).
let differentialGate = Gate({
    if let s = ProcessInfo.processInfo.environment["MOAT_IT_JOBS"], let n = Int(s), n > 0 { return n }
    return max(2, ProcessInfo.processInfo.activeProcessorCount)
}())

/// Set MOAT_IT_KEEP=1 to keep the per-test rootfs copies for inspection.
let keepScratch = ProcessInfo.processInfo.environment["MOAT_IT_KEEP"].map { !$0.isEmpty && $0 != "0" } ?? false

/// The platform every differential Moat run uses ($MOAT_IT_PLATFORM), nil
/// for Moat's default.
let differentialPlatform: String? = {
    guard let p = ProcessInfo.processInfo.environment["MOAT_IT_PLATFORM"], !p.isEmpty else { return nil }
    return p
}()

/// `--platform P` for `moat run`, or nothing.
func platformArguments(_ platform: String?) -> [String] {
    platform.map { ["--platform", $0] } ?? []
}

/// Busybox scripts the KVM row leaves out, and why (each is a known gap of
/// the KVM platform, not of the script).
let kvmExcluded: [String: String] = [:]

struct ScriptRun {
    var result: ProcessResult
    var tree: [TreeEntry]
}

@Suite("Busybox differential (native chroot vs moat run)")
struct BusyboxDifferentialTests {

    @Test(.enabled(if: Integration.canRunNative, "needs root and chroot(8) for the native reference run"),
          arguments: busyboxScripts)
    func script(_ name: String) async throws {
        try await run(name, platform: differentialPlatform)
    }

    @Test(.enabled(if: Integration.canRunNative, "needs root and chroot(8) for the native reference run"),
          arguments: busyboxScripts.filter { kvmExcluded[$0] == nil })
    func kvm(_ name: String) async throws {
        guard try KVMRunTests.prerequisites() else { return }
        try await run(name, platform: "kvm")
    }

    private func run(_ name: String, platform: String?) async throws {
        await differentialGate.acquire()
        defer { Task { await differentialGate.release() } }

        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let scriptPath = Integration.scriptsDir + "/" + name
        let scratch = try Integration.makeScratchDir(group: "bbdiff" + (platform.map { "-" + $0 } ?? ""), name: name)
        var cleanupProblem: String?
        defer {
            if keepScratch {
                print("\(name): kept rootfs copies in \(scratch)")
            } else if let problem = Integration.removeScratch(scratch) {
                print("warning: \(problem)")
            }
        }

        let nativeRoot = scratch + "/native"
        let moatRoot = scratch + "/moat"
        for root in [nativeRoot, moatRoot] {
            try Integration.makeRootfsCopy(of: rootfs, at: root)
            try installScript(scriptPath, into: root)
        }

        let native = try await runNative(root: nativeRoot, cleanupProblem: &cleanupProblem)
        let sandboxed = await runMoat(moat, root: moatRoot, platform: platform)

        if let cleanupProblem { Issue.record(Comment(rawValue: cleanupProblem)) }
        if native.result.timedOut {
            Issue.record(Comment(rawValue: "\(name): the NATIVE run timed out after \(differentialTimeout)s; the script is broken\n"
                + describeRun(native.result)))
            return
        }
        let report = compareRuns(name: name + (platform.map { " (--platform \($0))" } ?? ""), native: native, sandboxed: sandboxed, timeout: differentialTimeout,
                                 treeWhat: "files under /work", treeLabels: ("native /work", "moat /work"))
        if let report {
            Issue.record(Comment(rawValue: report))
        }
    }

    // MARK: running

    private func installScript(_ script: String, into root: String) throws {
        let dest = root + "/work/test.sh"
        let data = try Data(contentsOf: URL(fileURLWithPath: script))
        try data.write(to: URL(fileURLWithPath: dest))
        chmod(dest, 0o644)
    }

    /// Reference run: chroot with procfs mounted and a handful of device
    /// nodes, the fixed minimal environment, umask 022 and no core files.
    private func runNative(root: String, cleanupProblem: inout String?) async throws -> ScriptRun {
        try Integration.populateDev(root + "/dev")
        let procDir = root + "/proc"
        guard mount("proc", procDir, "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) == 0 else {
            throw HarnessError("mount -t proc proc \(procDir) failed: \(String(cString: strerror(errno)))")
        }
        let result = await runProcess(
            [Integration.chrootPath!, root, "/bin/sh", "-c",
             "umask 022 && ulimit -c 0 && cd /work && /bin/sh ./test.sh; exit $?"],
            env: ["PATH=" + Integration.fixedPath, "HOME=/root"],
            timeout: differentialTimeout)
        if let problem = unmountProc(procDir) { cleanupProblem = problem }
        return ScriptRun(result: result, tree: snapshotTree(root + "/work"))
    }

    /// Sandboxed run via `moat run`. The host-side wrapper only fixes umask and
    /// the core-size limit for the moat process, mirroring the native run.
    private func runMoat(_ moat: String, root: String, platform: String?) async -> ScriptRun {
        let argv = ["/bin/sh", "-c", "umask 022 && ulimit -c 0 && exec \"$0\" \"$@\"",
                    moat, "run"] + platformArguments(platform) + ["--no-overlay", "--rootfs", root, "--cwd", "/work",
                    "--env", "PATH=" + Integration.fixedPath, "--env", "HOME=/root",
                    "--", "/bin/sh", "-c", "/bin/sh ./test.sh; exit $?"]
        let result = await runProcess(argv, env: Integration.hostEnvironment(), timeout: differentialTimeout)
        return ScriptRun(result: result, tree: snapshotTree(root + "/work"))
    }

    /// Unmounts procfs, retrying while stragglers die, then lazily.
    private func unmountProc(_ procDir: String) -> String? {
        for _ in 0..<100 {
            if umount2(procDir, 0) == 0 { return nil }
            if errno == EINVAL || errno == ENOENT { return nil } // not mounted
            usleep(20_000)
        }
        if umount2(procDir, Int32(MNT_DETACH)) == 0 { return nil }
        return "could not unmount \(procDir): \(String(cString: strerror(errno)))"
    }

}
