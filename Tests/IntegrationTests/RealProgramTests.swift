// The real-program suite (issue 15): the programs people put in containers,
// each doing real work in a script under Tests/IntegrationTests/apps/ that
// prints only deterministic lines, run natively and in Moat on the Debian
// root filesystem rootfs/debian-apps.sh builds (cached by content under
// /var/cache/moat/rootfs). stdout and exit status must match; wall times
// are printed side by side (never asserted; bench/ has the figures).
//
// Native run: apps/native.sh (private namespaces, the cached rootfs as the
// lower layer of a kernel overlay, procfs, tmpfs /tmp, a minimal /dev,
// loopback up; then chroot and `bash -c WRAPPER run SCRIPT`).
// Moat run: the same command with `moat run --network none` on the same
// rootfs (its in-memory overlay keeps the cache unchanged).
// Daemons the scripts start die with the namespace or the sandbox.
//
// Without root, chroot(8), unshare(1) or a buildable rootfs the tests are
// skipped with the reason, except under CI=true, where they fail.
// Knobs: MOAT_APPS_TIMEOUT (seconds per run, default 300), MOAT_APPS_ONLY
// (comma-separated script names).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum Apps {
    static let scriptsDir = Integration.testsDir + "/apps"
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let timeout: Double = {
        if let s = ProcessInfo.processInfo.environment["MOAT_APPS_TIMEOUT"], let v = Double(s) { return v }
        return 300
    }()
    static let scripts: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: scriptsDir)) ?? []
        let only = ProcessInfo.processInfo.environment["MOAT_APPS_ONLY"].map { Set($0.split(separator: ",").map(String.init)) }
        // NN-name.sh; native.sh and run-one.sh are the harness.
        return names.filter { $0.hasSuffix(".sh") && $0.first?.isNumber == true && (only?.contains($0) ?? true) }.sorted()
    }()
    static let unsharePath: String? = ["/usr/bin/unshare", "/bin/unshare"].first { access($0, X_OK) == 0 }
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    /// The script runs in a child of pid 1 (never as init itself), as native.sh does.
    static let wrapper = "/bin/bash -c \"$1\"; exit $?"

    /// Why the suite cannot run here, if it cannot.
    static var missing: String? {
        if !Integration.canRunNative { return "needs root and chroot(8)" }
        if unsharePath == nil { return "needs unshare(1)" }
        return nil
    }

    /// Builds (or finds) the rootfs once per test process.
    static let rootfs: Result<String, HarnessError> = {
        let res = runSync(["/bin/bash", Integration.repoRoot + "/rootfs/debian-apps.sh"],
                          env: Integration.hostEnvironment(), timeout: 1800)
        let dir = res.stdoutText.split(separator: "\n").last.map(String.init) ?? ""
        guard res.exitStatus == 0, FileManager.default.isExecutableFile(atPath: dir + "/usr/local/bin/gotest") else {
            return .failure(HarnessError("""
                rootfs/debian-apps.sh failed (status \(res.exitStatus)\(res.timedOut ? ", timed out" : "")):
                \(trimmedTail(res.stdoutText + res.stderrText, lines: 30))
                """))
        }
        print("real programs: rootfs \(dir) ready after \(String(format: "%.1f", res.seconds))s")
        return .success(dir)
    }()

    static func native(rootfs: String, scratch: String, script: String) async -> ProcessResult {
        await runProcess(["/bin/sh", scriptsDir + "/native.sh", rootfs, scratch, script],
                         env: ["PATH=" + Integration.fixedPath], timeout: timeout)
    }

    static func moat(_ moat: String, rootfs: String, script: String) async -> ProcessResult {
        await runProcess(["/bin/sh", "-c", "umask 022 && exec \"$0\" \"$@\"", moat, "run", "--network", "none",
                          "--rootfs", rootfs, "--env", "PATH=" + path, "--env", "HOME=/root", "--env", "LANG=C",
                          "--", "/bin/bash", "-c", wrapper, "run", script],
                         env: Integration.hostEnvironment(), timeout: timeout)
    }
}

@Suite("Real programs (native chroot vs moat on the Debian apps rootfs)", .serialized)
struct RealProgramTests {

    @Test(arguments: Apps.scripts)
    func program(_ name: String) async throws {
        if let why = Apps.missing {
            if Apps.inCI { Issue.record(Comment(rawValue: "\(name): cannot run under CI=true: \(why)")) }
            else { print("real programs: \(name) skipped: \(why)") }
            return
        }
        let rootfs: String
        switch Apps.rootfs {
        case .success(let r): rootfs = r
        case .failure(let e):
            if Apps.inCI { Issue.record(Comment(rawValue: "\(name): \(e)")) }
            else { print("real programs: \(name) skipped: \(e)") }
            return
        }
        let moat = try Integration.moatBinary.get()
        let script = try String(contentsOfFile: Apps.scriptsDir + "/" + name, encoding: .utf8)
        let scratch = try Integration.makeScratchDir(group: "apps", name: name)
        defer {
            // The overlay and every mount went with the namespace.
            if let problem = Integration.removeScratch(scratch) { print("warning: \(problem)") }
        }
        let native = await Apps.native(rootfs: rootfs, scratch: scratch, script: script)
        let sandboxed = await Apps.moat(moat, rootfs: rootfs, script: script)
        print(String(format: "real programs: %@ native %.2fs, moat %.2fs (x%.1f)", name, native.seconds, sandboxed.seconds,
                     sandboxed.seconds / max(native.seconds, 0.001)))
        if native.timedOut || native.exitStatus != 0 {
            Issue.record(Comment(rawValue: "\(name): the NATIVE run failed; the script or rootfs is broken\n" + describeRun(native)))
            return
        }
        // stderr is shown but not compared: servers log timing and pids there.
        if let report = compareRuns(name: name, native: ScriptRun(result: native, tree: []),
                                    sandboxed: ScriptRun(result: Apps.withoutStderr(sandboxed, like: native), tree: []),
                                    timeout: Apps.timeout, treeWhat: "", treeLabels: ("", "")) {
            Issue.record(Comment(rawValue: report + "\n\nmoat stderr:\n" + trimmedTail(sandboxed.stderrText, lines: 40)))
        }
    }
}

extension Apps {
    /// `r` with the native run's stderr, so that only stdout and the exit
    /// status are compared.
    static func withoutStderr(_ r: ProcessResult, like native: ProcessResult) -> ProcessResult {
        var c = r
        c.stderr = native.stderr
        return c
    }
}
