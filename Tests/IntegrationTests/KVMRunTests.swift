// `moat run --platform kvm`: busybox commands run with their threads as KVM
// vCPU contexts (Sources/Sentry/Kernel/KVMTasks.swift) and must print what
// they print natively in a chroot of the same root filesystem: exec, fork
// (pipelines, subshells, background jobs), signals and preemption of a
// CPU-bound job; more processes than the vCPU pool must fail cleanly
// (EAGAIN), and the Sentry must still be confined (its seccomp filter
// loaded, no privilege).
//
// Needs root, chroot(8) and /dev/kvm: skipped without them on a developer
// machine, failed under CI=true (the CI machine has all three).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("KVM platform: moat run --platform kvm")
struct KVMRunTests {
    /// nil when the test may run; else why not (and the test fails under CI).
    static func missing() -> String? {
        if !Integration.isRoot { return "needs root" }
        if Integration.chrootPath == nil { return "needs chroot(8)" }
        if access("/dev/kvm", R_OK | W_OK) != 0 { return "needs /dev/kvm" }
        return nil
    }

    static func prerequisites() throws -> Bool {
        guard let why = missing() else { return true }
        try #require(ProcessInfo.processInfo.environment["CI"] != "true", "CI=true: this test \(why)")
        return false
    }

    static let env = ["PATH=\(Integration.fixedPath)", "HOME=/root"]

    /// Commands whose output must match a native run.
    static let commands: [[String]] = [
        ["/bin/busybox", "echo", "hi"],
        ["/bin/sh", "-c", "echo a; ls /"],
        ["/bin/sh", "-c", "i=0; s=0; while [ $i -lt 300 ]; do i=$((i+1)); s=$((s+i*i)); done; echo $s"],
        ["/bin/busybox", "sha256sum", "/bin/busybox"],
        ["/bin/sh", "-c", "cd /etc; exec ls -ln passwd group"],
        // exec after exec: the new image's page tables must not be the old
        // ones (KVMAddressSpace.reset explains the shadow-paging trap).
        ["/bin/sh", "-c", "exec /bin/sh -c 'exec /bin/busybox head -n 2 /etc/passwd'"],
        ["/bin/sh", "-c", "read a < /etc/passwd; echo \"$a\"; exec cat /etc/passwd /nonexistent"],
        // fork: pipelines, command substitution, subshells, background jobs.
        ["/bin/sh", "-c", "echo a; ls / | head -3; cat /etc/passwd | wc -l; echo b"],
        ["/bin/sh", "-c", "x=$(seq 1 50 | tail -1); echo $x; (echo sub; exit 3); echo $?"],
        ["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; echo looped"],
    ]

    @Test(arguments: commands)
    func matchesNative(_ argv: [String]) async throws {
        guard try Self.prerequisites() else { return }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let native = await runProcess([Integration.chrootPath!, rootfs] + argv, env: Self.env, timeout: 60)
        let kvm = await runProcess([moat, "run", "--platform", "kvm", "--rootfs", rootfs, "--"] + argv,
                                   env: Self.env, timeout: 60)
        #expect(!kvm.timedOut, "timed out: \(argv)")
        #expect(kvm.stdoutText == native.stdoutText, "stdout of \(argv)\nnative:\n\(native.stdoutText)\nkvm:\n\(kvm.stdoutText)\nkvm stderr:\n\(kvm.stderrText)")
        #expect(kvm.stderrText == native.stderrText, "stderr of \(argv)")
        #expect(kvm.exitStatus == native.exitStatus, "status of \(argv): native \(native.exitStatus), kvm \(kvm.exitStatus)")
    }

    /// Background jobs (checked against known output: a native chroot of
    /// the bare rootfs has no /dev/null for their stdin). A CPU-bound job
    /// that makes no syscall must not starve the shell (preemption), and a
    /// signal must reach a shell busy in a loop.
    static let background: [([String], String)] = [
        (["/bin/sh", "-c", "sleep 0.1 & wait; echo waited"], "waited\n"),
        (["/bin/sh", "-c", "while :; do :; done & sleep 0.3; kill $!; wait; echo done"], "done\n"),
        (["/bin/sh", "-c", "trap 'echo got' USR1; (sleep 0.2; kill -USR1 $$) & i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; wait; echo end"],
         "got\nend\n"),
    ]

    @Test(arguments: 0..<background.count)
    func backgroundJobs(_ i: Int) async throws {
        guard try Self.prerequisites() else { return }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let (argv, want) = Self.background[i]
        let r = await runProcess([moat, "run", "--platform", "kvm", "--rootfs", rootfs, "--"] + argv, env: Self.env, timeout: 60)
        #expect(!r.timedOut, "timed out: \(argv)")
        #expect(r.stdoutText == want && r.exitStatus == 0, "\(argv): status \(r.exitStatus), stdout \(r.stdoutText), stderr \(r.stderrText)")
    }

    /// More live processes than the vCPU pool (KVMTasks.poolSize): the
    /// first fork past it fails with EAGAIN ("can't fork", which ends a
    /// non-interactive ash), nothing hangs or crashes. The children sleep
    /// 10 s so that the first are still alive at the 17th fork on a loaded
    /// machine too (with 1 s, 24 slow forks outlived them and all succeeded).
    @Test func moreProcessesThanVCPUsFailCleanly() async throws {
        guard try Self.prerequisites() else { return }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let r = await runProcess([moat, "run", "--platform", "kvm", "--rootfs", rootfs, "--",
                                  "/bin/sh", "-c", "for i in $(seq 1 24); do sleep 10 & done; wait; echo after"],
                                 env: Self.env, timeout: 60)
        #expect(!r.timedOut)
        #expect(r.stderrText.contains("can't fork"), "stderr: \(r.stderrText)")
        #expect(r.exitStatus != 0 && r.exitStatus < 128, "status \(r.exitStatus)")
    }

    /// The Sentry keeps its confinement with a VM: seccomp filter loaded,
    /// not root, no capabilities.
    @Test func sentryStaysConfined() async throws {
        guard try Self.prerequisites() else { return }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: moat)
        p.arguments = ["run", "--platform", "kvm", "--rootfs", rootfs, "--", "sleep", "30"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        var procs: [ConfinementTests.Proc] = []
        // The Sentry is the launcher's child (the network address helper, a
        // fork of the Sentry, confines itself earlier and must not stand in
        // for it); its seccomp filter is the last step of its confinement.
        for _ in 0..<100 {
            let r = await runProcess([moat, "debug", "\(p.processIdentifier)"], env: Integration.hostEnvironment(), timeout: 30)
            procs = ConfinementTests.parse(r.stdoutText)
            if ConfinementTests.sentryConfined(procs, launcher: p.processIdentifier) { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let sentry = try #require(ConfinementTests.sentry(procs, launcher: p.processIdentifier), "no Sentry (child of \(p.processIdentifier)) in:\n\(procs)")
        #expect(sentry.fields["seccomp"]?.hasPrefix("seccomp: filter") == true && sentry.fields["seccomp"]?.hasSuffix("no_new_privs: 1") == true, "\(sentry.fields)")
        #expect(sentry.fields["caps"]?.hasPrefix("caps: eff 0000000000000000 prm 0000000000000000 bnd 0000000000000000") == true, "\(sentry.fields)")
        let uid = try #require(ConfinementTests.uids(sentry).first)
        #expect(uid != "0")
        #expect(ConfinementTests.uids(sentry) == [uid, uid, uid, uid], "\(sentry.fields)")
        try ConfinementTests.checkAddressHelper(procs, sentry: sentry)
    }
}
