// The real-program suite (issue 15): the programs people put in containers,
// each doing real work in a script under Tests/IntegrationTests/apps/ that
// prints only deterministic lines, run natively and in Moat on the Debian
// root filesystem rootfs/debian-apps.sh builds (cached by content under
// /var/cache/moat/rootfs). stdout and exit status must match; wall times
// are printed side by side (never asserted; bench/ has the figures).
//
// Native run: a private mount, network, IPC and pid namespace; the cached
// rootfs is the lower layer of a kernel overlay (upper in the scratch
// directory), with procfs, a tmpfs /tmp, a minimal /dev (device nodes, a
// new devpts, /dev/shm) and loopback up; then
//   chroot ROOT /usr/bin/env -i PATH=... HOME=/root LANG=C /bin/bash -c WRAPPER run SCRIPT
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
        return names.filter { $0.hasSuffix(".sh") && (only?.contains($0) ?? true) }.sorted()
    }()
    static let unsharePath: String? = ["/usr/bin/unshare", "/bin/unshare"].first { access($0, X_OK) == 0 }
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    /// The script runs in a child of pid 1 (never as init itself).
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

    static let nativeSetup = """
        set -e
        L=$1; S=$2; SCRIPT=$3; R=$S/root
        mkdir -p "$S/up" "$S/wk" "$R"
        mount -t overlay overlay -o "lowerdir=$L,upperdir=$S/up,workdir=$S/wk" "$R"
        ip link set lo up
        mount -t proc proc "$R/proc"
        mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
        mount -t tmpfs -o mode=755 tmpfs "$R/dev"
        for n in 'null 1 3' 'zero 1 5' 'full 1 7' 'random 1 8' 'urandom 1 9' 'tty 5 0'; do
            set -- $n; mknod "$R/dev/$1" c "$2" "$3"; chmod 666 "$R/dev/$1"
        done
        mkdir "$R/dev/pts" "$R/dev/shm"
        mount -t devpts devpts "$R/dev/pts" -o newinstance,ptmxmode=0666
        ln -s pts/ptmx "$R/dev/ptmx"
        mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
        ln -s /proc/self/fd "$R/dev/fd"
        for i in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${i%%:*}" "$R/dev/${i#*:}"; done
        cd /
        umask 022
        exec chroot "$R" /usr/bin/env -i PATH=\(path) HOME=/root LANG=C /bin/bash -c '\(wrapper)' run "$SCRIPT"
        """

    static func native(rootfs: String, scratch: String, script: String) async -> ProcessResult {
        await runProcess([unsharePath!, "-m", "-n", "-i", "-p", "-f", "--propagation", "private",
                          "/bin/sh", "-c", nativeSetup, "setup", rootfs, scratch, script],
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
