// `moat run --platform kvm`: busybox commands run with their threads as KVM
// vCPUs (Sources/Sentry/Kernel/KVMTasks.swift) and must print what they
// print natively in a chroot of the same root filesystem; what the KVM
// platform cannot do yet (fork) must fail cleanly and quickly, and the
// Sentry must still be confined (its seccomp filter loaded, no privilege).
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

    /// Commands whose output must match a native run. None of them forks
    /// (busybox sh runs the last command of -c in place, with exec).
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

    /// fork is not there yet: the shell must be told (EAGAIN, "can't
    /// fork") and exit, not hang or crash the Sentry.
    @Test func forkFailsCleanly() async throws {
        guard try Self.prerequisites() else { return }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let r = await runProcess([moat, "run", "--platform", "kvm", "--rootfs", rootfs, "--",
                                  "/bin/sh", "-c", "echo before; /bin/true; echo after"], env: Self.env, timeout: 60)
        #expect(!r.timedOut)
        #expect(r.stdoutText.hasPrefix("before\n"), "stdout: \(r.stdoutText)")
        // Either the fork works (a later platform) or it fails with EAGAIN.
        let forked = r.stdoutText == "before\nafter\n" && r.exitStatus == 0
        let refused = r.stderrText.contains("can't fork") && r.exitStatus != 0 && r.exitStatus < 128
        #expect(forked || refused, "status \(r.exitStatus), stderr: \(r.stderrText)")
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
        for _ in 0..<100 {
            let r = await runProcess([moat, "debug", "\(p.processIdentifier)"], env: Integration.hostEnvironment(), timeout: 30)
            procs = ConfinementTests.parse(r.stdoutText)
            if procs.contains(where: { $0.role == "Sentry" && $0.fields["seccomp"]?.hasPrefix("seccomp: filter") == true }) { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let sentry = try #require(procs.first { $0.role == "Sentry" }, "no Sentry in:\n\(procs)")
        #expect(sentry.fields["seccomp"]?.hasPrefix("seccomp: filter") == true, "\(sentry.fields)")
        let uid = try #require(ConfinementTests.uids(sentry).first)
        #expect(uid != "0")
    }
}
