// The LTP regression subset: the Linux Test Project syscall tests listed in
// Tests/Conformance/ltp-ci.txt run natively (chroot, namespaces) and in Moat
// through Tests/Conformance/ltp.sh, which builds only their directories
// from the LTP mirror into /var/cache/moat/ltp/<commit> (cached; a fresh
// machine builds in a few minutes). Every listed test must give the same
// verdict on both sides (they all pass natively); a difference fails the
// test with the logs of that test, and a Moat run that hits the watchdog
// with the tail of its --strace log.
//
// Without root or without the LTP mirror ($LTP_GIT_DIR, default
// /work/.mirror/linux-test-project+ltp/repo) the suite is skipped on a
// developer machine and FAILS under CI=true. The full table of every syscall
// test is Tests/Conformance/LTP.md (made by `ltp.sh run` + `ltp.sh table`).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum LTPSuite {
    static let script = Integration.repoRoot + "/Tests/Conformance/ltp.sh"
    static let list = Integration.repoRoot + "/Tests/Conformance/ltp-ci.txt"
    static var gitDir: String {
        ProcessInfo.processInfo.environment["LTP_GIT_DIR"] ?? "/work/.mirror/linux-test-project+ltp/repo"
    }
    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
    static var prerequisites: String? {
        if geteuid() != 0 { return "needs root (chroot, namespaces)" }
        if !FileManager.default.fileExists(atPath: gitDir) { return "no LTP git dir at \(gitDir) (LTP_GIT_DIR)" }
        return nil
    }
    /// Runs on CI always (and fails there when it cannot), elsewhere only when it can.
    static var shouldRun: Bool { isCI || prerequisites == nil }
}

@Suite("LTP syscall subset (native chroot vs moat run)")
struct LTPTests {
    @Test(.enabled(if: LTPSuite.shouldRun, "needs root and the LTP mirror (fails instead under CI=true)"))
    func subsetMatchesNative() async throws {
        if let missing = LTPSuite.prerequisites {
            Issue.record(Comment(rawValue: "LTP subset cannot run: \(missing)"))
            return
        }
        let moat: String
        switch Integration.moatBinary {
        case .success(let m): moat = m
        case .failure(let e): Issue.record(Comment(rawValue: "\(e)")); return
        }
        var env = Integration.hostEnvironment()
        env.append("MOAT_BIN=\(moat)")
        env.append("LTP_GIT_DIR=\(LTPSuite.gitDir)")
        let build = await runProcess(["/bin/bash", LTPSuite.script, "build", "@" + LTPSuite.list],
                                     env: env, cwd: Integration.repoRoot, timeout: 1200)
        guard build.exitStatus == 0 else {
            Issue.record(Comment(rawValue: "ltp.sh build failed:\n" + describeRun(build)))
            return
        }
        let out = try Integration.makeScratchDir(group: "ltp", name: "subset")
        let run = await runProcess(["/bin/bash", LTPSuite.script, "run", "-o", out, "-t", "120", "-j", "2",
                                    "@" + LTPSuite.list],
                                   env: env, cwd: Integration.repoRoot, timeout: 1800)
        guard run.exitStatus == 0,
              let results = try? String(contentsOfFile: out + "/results", encoding: .utf8) else {
            Issue.record(Comment(rawValue: "ltp.sh run failed:\n" + describeRun(run)))
            return
        }
        let lines = results.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let wanted = (try? String(contentsOfFile: LTPSuite.list, encoding: .utf8))?
            .split(separator: "\n").map { String($0.split(separator: "#", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty } ?? []
        #expect(lines.count == wanted.count, "ran \(lines.count) of the \(wanted.count) listed tests")
        var failures: [String] = []
        // Lines are "name native moat runsc" (runsc "-": not run here).
        for l in lines where l.count < 3 || l[1] != l[2] || l[1] != "PASS" {
            let name = l[0], nv = l.count > 1 ? l[1] : "?", mv = l.count > 2 ? l[2] : "?"
            func tail(_ file: String) -> String {
                trimmedTail((try? String(contentsOfFile: file, encoding: .utf8)) ?? "(no log)", lines: 25)
            }
            var report = "\(name): native \(nv), moat \(mv)\n--- native log\n\(tail(out + "/logs/\(name).native"))"
                + "\n--- moat log\n\(tail(out + "/logs/\(name).moat"))"
            if mv == "HANG" { report += "\n--- moat --strace tail\n\(tail(out + "/hangs/\(name).strace"))" }
            failures.append(report)
        }
        for f in failures { Issue.record(Comment(rawValue: f)) }
        if failures.isEmpty && ProcessInfo.processInfo.environment["MOAT_IT_KEEP"] != "1" {
            _ = Integration.removeScratch(out)
        }
    }
}
