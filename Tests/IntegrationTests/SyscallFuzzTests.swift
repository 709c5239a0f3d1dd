// Runs programs/syscall_fuzz.c -- every syscall number 0..450 with garbage
// arguments -- inside Moat, and checks that (1) the fuzzer survives and (2)
// nothing leaked out of the sandbox: the host's hostname/domainname, mount
// table and wall clock are unchanged, and the rootfs copy is unchanged
// outside /work/tmp (the fuzzer's working directory, where it may create
// files through relative paths).
//
// The fuzzer is NEVER run natively by this test: as root on the host it would
// really attempt sethostname, acct, swapon, adjtimex and friends.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("Syscall fuzzing inside moat")
struct SyscallFuzzTests {

    static var canRun: Bool { Integration.isRoot && Integration.gccPath != nil }

    @Test(.enabled(if: SyscallFuzzTests.canRun, "needs root (to run moat) and gcc (to build the fuzzer)"))
    func fuzzerSurvivesAndHostIsUnchanged() async throws {
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let scratch = try Integration.makeScratchDir(group: "fuzz", name: "syscall_fuzz")
        defer {
            if let problem = Integration.removeScratch(scratch) { print("warning: \(problem)") }
        }

        // Build the fuzzer: static, so it needs nothing from the rootfs.
        let binary = scratch + "/syscall_fuzz"
        let cc = await runProcess(
            [Integration.gccPath!, "-static", "-O1", "-o", binary, Integration.programsDir + "/syscall_fuzz.c"],
            env: ["PATH=" + Integration.fixedPath], timeout: 180)
        try #require(cc.exitStatus == 0, "gcc failed:\n\(cc.stderrText)")

        // Private rootfs copy with the fuzzer in /work and a scratch /work/tmp.
        let root = scratch + "/root"
        try Integration.makeRootfsCopy(of: rootfs, at: root)
        let inRoot = root + "/work/syscall_fuzz"
        try FileManager.default.copyItem(atPath: binary, toPath: inRoot)
        chmod(inRoot, 0o755)
        try FileManager.default.createDirectory(atPath: root + "/work/tmp", withIntermediateDirectories: false)
        chmod(root + "/work/tmp", 0o1777)

        // Host state before.
        let excluded: Set<String> = ["work/tmp"]
        let treeBefore = snapshotTree(root, includeOwner: true, exclude: excluded)
        let hostnameBefore = currentHostname()
        let domainBefore = currentDomainname()
        let mountsBefore = hostMounts(own: scratch)
        let clockOffsetBefore = realtimeMinusMonotonic()

        let argv = ["/bin/sh", "-c", "umask 022 && ulimit -c 0 && exec \"$0\" \"$@\"",
                    moat, "run", "--rootfs", root, "--cwd", "/work/tmp",
                    "--env", "PATH=" + Integration.fixedPath, "--env", "HOME=/root",
                    "--", "/work/syscall_fuzz"]
        let run = await runProcess(argv, env: Integration.hostEnvironment(), timeout: 180)

        // Host state after -- repair what we can before asserting.
        let hostnameAfter = currentHostname()
        if hostnameAfter != hostnameBefore {
            _ = hostnameBefore.withCString { sethostname($0, strlen($0)) }
        }
        let domainAfter = currentDomainname()
        if domainAfter != domainBefore {
            _ = domainBefore.withCString { setdomainname($0, strlen($0)) }
        }
        let mountsAfter = hostMounts(own: scratch)
        let clockOffsetAfter = realtimeMinusMonotonic()
        let treeAfter = snapshotTree(root, includeOwner: true, exclude: excluded)
        let leftoverMounts = Integration.mounts(under: scratch)

        let summary = """
            moat run exit status \(run.exitStatus)\(run.timedOut ? " (TIMED OUT, killed)" : ""), \
            \(String(format: "%.1f", run.seconds))s
            stdout (tail):
            \(trimmedTail(run.stdoutText, lines: 15))
            stderr (tail):
            \(trimmedTail(run.stderrText, lines: 25))
            """

        #expect(!run.timedOut, "the fuzzer did not finish within 180s\n\(summary)")
        #expect(run.exitStatus == 0, "the fuzzer did not exit 0\n\(summary)")
        let survived = run.stdoutText.split(separator: "\n").contains { line in
            line.hasPrefix("survived ") && line.hasSuffix(" calls")
        }
        #expect(survived, "no \"survived N calls\" line on stdout\n\(summary)")

        #expect(hostnameAfter == hostnameBefore,
                "host hostname changed from \(hostnameBefore) to \(hostnameAfter) (restored)")
        #expect(domainAfter == domainBefore,
                "host domainname changed from \(domainBefore) to \(domainAfter) (restored)")
        let newMounts = mountsAfter.subtracting(mountsBefore)
        #expect(newMounts.isEmpty, "new mounts in the test process's namespace: \(newMounts.sorted())")
        #expect(leftoverMounts.isEmpty, "mounts left below the scratch dir: \(leftoverMounts)")
        let drift = abs(clockOffsetAfter - clockOffsetBefore)
        #expect(drift < 2.0, "host wall clock moved by \(drift)s relative to the monotonic clock")
        if treeBefore != treeAfter {
            Issue.record(Comment(rawValue: "rootfs copy changed outside /work/tmp:\n" + unifiedDiff(
                treeBefore.map(\.description), treeAfter.map(\.description),
                labelA: "before", labelB: "after", context: 1)))
        }
    }

    // MARK: host state probes

    private func currentHostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "<gethostname failed>" }
        return String(cString: buf)
    }

    private func currentDomainname() -> String {
        (try? String(contentsOfFile: "/proc/sys/kernel/domainname", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "<unknown>"
    }

    /// Mount points of the test process, ignoring the procfs mounts that the
    /// concurrently running differential suites (busybox: bbdiff, Debian:
    /// debdiff) create for their native runs.
    /// The host's mount points but those of other suites running beside
    /// this one (each in its own scratch group under scratchRoot, e.g. the
    /// differential suites' native chroots, checked by their own suites):
    /// what appears below `own` counts, as does anything outside scratchRoot.
    private func hostMounts(own: String) -> Set<String> {
        let others = Integration.scratchRoot + "/"
        return Set(Integration.currentMountPoints().filter { m in m.hasPrefix(own) || !m.hasPrefix(others) })
    }

    private func realtimeMinusMonotonic() -> Double {
        var rt = timespec(), mono = timespec()
        clock_gettime(CLOCK_REALTIME, &rt)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        return Double(rt.tv_sec - mono.tv_sec) + Double(rt.tv_nsec - mono.tv_nsec) / 1e9
    }
}
