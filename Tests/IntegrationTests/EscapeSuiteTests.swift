// The extended escape suite (programs/escape_extended.c) inside Moat: raw
// syscalls with random arguments from many threads, games with the stub
// page, other processes' memory and signals, descriptor exhaustion, huge
// argv/env and deep paths. Nothing may reach the host marker next to the
// root, nothing may break, the host's mounts stay as they were; the
// harmless sections (argv, paths) also run natively in a chroot of the same
// rootfs and must print the same.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Escape suite, extended (inside moat)")
struct EscapeSuiteTests {
    static var canRun: Bool { Integration.canRunNative && Integration.gccPath != nil }

    @Test(.enabled(if: EscapeSuiteTests.canRun || ProcessInfo.processInfo.environment["CI"] == "true", "needs root, chroot and gcc"))
    func nothingEscapesNothingBreaks() async throws {
        try await runSuite(platform: differentialPlatform)
    }

    /// The KVM row: the same suite with `--platform kvm` (its stub-page
    /// section then finds nothing mapped there).
    @Test(.enabled(if: EscapeSuiteTests.canRun || ProcessInfo.processInfo.environment["CI"] == "true", "needs root, chroot and gcc"))
    func kvm() async throws {
        guard try KVMRunTests.prerequisites() else { return }
        try await runSuite(platform: "kvm")
    }

    private func runSuite(platform: String?) async throws {
        try #require(Self.canRun, "CI=true: the escape suite needs root, chroot(8) and gcc")
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let scratch = try Integration.makeScratchDir(group: "escape2", name: "suite" + (platform.map { "-" + $0 } ?? ""))
        defer { if let problem = Integration.removeScratch(scratch) { print("warning: \(problem)") } }
        let binary = scratch + "/prog"
        let cc = await runProcess([Integration.gccPath!, "-static", "-O1", "-pthread", "-w", "-o", binary,
                                   Integration.programsDir + "/escape_extended.c"], env: ["PATH=" + Integration.fixedPath], timeout: 180)
        try #require(cc.exitStatus == 0, "gcc failed:\n\(cc.stderrText)")
        let inMoat = scratch + "/root", native = scratch + "/native"
        for r in [inMoat, native] {
            try Integration.makeRootfsCopy(of: rootfs, at: r)
            try FileManager.default.copyItem(atPath: binary, toPath: r + "/work/prog")
            try? FileManager.default.createDirectory(atPath: r + "/tmp", withIntermediateDirectories: true)
            chmod(r + "/tmp", 0o1777)
        }
        let marker = scratch + "/moat-escape-secret"
        try Data("host secret\n".utf8).write(to: URL(fileURLWithPath: marker))
        let outsideBefore = (try? FileManager.default.contentsOfDirectory(atPath: scratch))?.sorted() ?? []
        let mountsBefore = Integration.currentMountPoints().filter { !$0.hasPrefix(Integration.scratchRoot) }

        let run = await runProcess([moat, "run"] + platformArguments(platform)
                                   + ["--no-overlay", "--rootfs", inMoat, "--env", "MOAT_ESCAPE_MARKER=" + marker,
                                    "--", "/work/prog"], env: Integration.hostEnvironment(), timeout: 600)
        let out = run.stdoutText
        print("escape_extended in moat\(platform.map { " (--platform " + $0 + ")" } ?? ""):\n\(out.split(separator: "\n").filter { !$0.hasPrefix("ok threads: a process") }.joined(separator: "\n"))")
        #expect(run.exitStatus == 0 && !run.timedOut, "moat run: status \(run.exitStatus)\(run.timedOut ? " (timed out)" : "")\n\(out.suffix(3000))\n\(run.stderrText.suffix(2000))")
        #expect(out.contains("\ndone\n"), "the suite did not finish:\n\(out.suffix(3000))")
        // Random calls may crash a process, but never by a host SIGILL: the
        // uretprobe/uprobe calls the host runs ahead of seccomp once did.
        #expect(!out.contains("died of signal 4\n"), "a process died of SIGILL:\n\(out.suffix(3000))")
        let bad = out.split(separator: "\n").filter { $0.hasPrefix("ESCAPED") || $0.hasPrefix("BROKEN") }
        #expect(bad.isEmpty, "\(bad.joined(separator: "\n"))")
        for s in ["threads", "stubpage", "procs", "fds", "argv", "paths"] { #expect(out.contains("== \(s)\n"), "section \(s) did not run") }
        let outsideAfter = (try? FileManager.default.contentsOfDirectory(atPath: scratch))?.sorted() ?? []
        #expect(outsideBefore == outsideAfter, "files appeared next to the root: \(Set(outsideAfter).subtracting(outsideBefore))")
        #expect(Integration.currentMountPoints().filter { !$0.hasPrefix(Integration.scratchRoot) } == mountsBefore, "the host mount table changed")

        // The harmless sections natively, for the same answers.
        let nat = await runProcess([Integration.chrootPath!, native, "/work/prog", "argv", "paths"], env: ["PATH=" + Integration.fixedPath], timeout: 120)
        #expect(nat.exitStatus == 0, "native run failed: \(nat.stdoutText)\(nat.stderrText)")
        func lines(_ text: String, _ prefix: String) -> [Substring] { text.split(separator: "\n").filter { $0.hasPrefix(prefix) } }
        for p in ["ok argv", "ok paths"] {
            #expect(lines(out, p) == lines(nat.stdoutText, p), "\(p): moat and native differ:\nmoat:\n\(lines(out, p).joined(separator: "\n"))\nnative:\n\(lines(nat.stdoutText, p).joined(separator: "\n"))")
        }
    }
}
