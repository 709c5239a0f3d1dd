// `moat run`'s plain foreground form is read without ArgumentParser
// (Sources/moat/FastRun.swift, for start-up time). Differential: each
// command line runs twice, once as `--rootfs DIR` (the fast reading) and
// once as `--rootfs=DIR`, a form the fast reading declines, so that Run and
// RunSetup read it as before; the application must see the same thing
// (environment, directory, ids, hostname, network, exit status, errors).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("moat run: the fast argument reading matches Run's")
struct FastRunTests {
    static let script = "env | sort; pwd; id; hostname; cat /proc/net/dev | wc -l; echo data > /tmp/f && cat /tmp/f"

    static let cases: [[String]] = [
        ["--", "/bin/sh", "-c", script],
        ["-e", "A=1", "-e", "HOME=/x", "--env", "A=2", "-e", "FASTRUN_FROM_HOST", "-w", "/etc", "--hostname", "h1",
         "--", "/bin/sh", "-c", script],
        ["-u", "nobody", "--workdir", "/tmp", "--network", "none", "--", "/bin/sh", "-c", script],
        ["--user", "1000:1000", "--cwd", "/home", "--network", "host", "--read-only", "--", "/bin/sh", "-c", script],
        ["--no-overlay", "--read-only", "-u", "user", "--", "/bin/sh", "-c", "id; exit 7"],
        ["--", "--help"],
        ["-u", "nosuchuser", "--", "/bin/true"],
        ["--network", "nowhere", "--", "/bin/true"],
        ["--overlay-medium", "memory", "--", "/bin/sh", "-c", "dd if=/dev/zero of=/big bs=1M count=2 2>/dev/null; ls -ls /big"],
        ["--overlay-medium", "disk", "--", "/bin/true"],
    ]

    @Test(arguments: cases)
    func sameAsRun(_ args: [String]) async throws {
        guard Integration.isRoot else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true", "CI=true: this test needs root")
            return
        }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let env = Integration.hostEnvironment() + ["FASTRUN_FROM_HOST=host value"]
        let fast = await runProcess([moat, "run", "--rootfs", rootfs] + args, env: env, timeout: 60)
        let full = await runProcess([moat, "run", "--rootfs=\(rootfs)"] + args, env: env, timeout: 60)
        #expect(!fast.timedOut && !full.timedOut)
        #expect(fast.exitStatus == full.exitStatus, "\(args): status \(fast.exitStatus) (fast) vs \(full.exitStatus)\n\(fast.stderrText)\n\(full.stderrText)")
        #expect(fast.stdoutText == full.stdoutText, "\(args): stdout\n\(fast.stdoutText)\nvs\n\(full.stdoutText)")
        #expect(fast.stderrText == full.stderrText, "\(args): stderr\n\(fast.stderrText)\nvs\n\(full.stderrText)")
    }

    /// Forms the fast reading leaves to Run still get Run's answers.
    @Test func helpAndErrorsStayRuns() async throws {
        let moat = try Integration.moatBinary.get()
        let env = Integration.hostEnvironment()
        let help = await runProcess([moat, "run", "--rootfs", "/nonexistent", "--help"], env: env, timeout: 30)
        #expect(help.exitStatus == 0 && help.stdoutText.contains("USAGE: moat run"), "\(help.stdoutText)\(help.stderrText)")
        let noCommand = await runProcess([moat, "run", "--rootfs", "/nonexistent", "--"], env: env, timeout: 30)
        #expect(noCommand.exitStatus == 125 && noCommand.stderrText.contains("a command to run is required"), "\(noCommand.stderrText)")
    }
}
