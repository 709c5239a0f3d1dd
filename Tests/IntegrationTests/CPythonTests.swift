// CPython's own regression tests as a conformance subset: the modules listed
// in Tests/Conformance/cpython-ci.txt run natively (chroot in fresh
// namespaces) and in Moat through Tests/Conformance/cpython.sh, on the
// real-program rootfs plus Debian's libpython3.11-testsuite (built once,
// cached by content). Every case that passes natively must pass in Moat;
// each that does not is reported with its module's log tails.
//
// Without root the suite is skipped on a developer machine and FAILS under
// CI=true. The whole comparison over more modules is `cpython.sh run` +
// `cpython.sh table` (Tests/Conformance/CPYTHON.md).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum CPythonSuite {
    static let script = Integration.repoRoot + "/Tests/Conformance/cpython.sh"
    static let list = Integration.repoRoot + "/Tests/Conformance/cpython-ci.txt"
    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
    static var prerequisites: String? { Integration.canRunNative ? nil : "needs root and chroot(8)" }
    static var shouldRun: Bool { isCI || prerequisites == nil }
    static var modules: [String] {
        ((try? String(contentsOfFile: list, encoding: .utf8)) ?? "").split(separator: "\n")
            .map { String($0.split(separator: "#", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}

@Suite("CPython's regression tests (native chroot vs moat run)")
struct CPythonTests {
    @Test(.enabled(if: CPythonSuite.shouldRun, "needs root (fails instead under CI=true)"))
    func subsetMatchesNative() async throws {
        if let missing = CPythonSuite.prerequisites {
            Issue.record(Comment(rawValue: "CPython subset cannot run: \(missing)"))
            return
        }
        let moat: String
        switch Integration.moatBinary {
        case .success(let m): moat = m
        case .failure(let e): Issue.record(Comment(rawValue: "\(e)")); return
        }
        let modules = CPythonSuite.modules
        #expect(!modules.isEmpty, "no modules in \(CPythonSuite.list)")
        var env = Integration.hostEnvironment()
        env.append("MOAT_BIN=\(moat)")
        let out = try Integration.makeScratchDir(group: "cpython", name: "subset")
        let run = await runProcess(["/bin/bash", CPythonSuite.script, "run", "-o", out, "-t", "600"] + modules,
                                   env: env, cwd: Integration.repoRoot, timeout: 3600)
        guard run.exitStatus == 0 else {
            Issue.record(Comment(rawValue: "cpython.sh run failed:\n" + describeRun(run)))
            return
        }
        let check = await runProcess(["/bin/bash", CPythonSuite.script, "check", out],
                                     env: env, cwd: Integration.repoRoot, timeout: 300)
        if check.exitStatus != 0 {
            var report = "cases that pass natively and not in Moat:\n" + check.stdoutText + check.stderrText
            let failing = Set(check.stdoutText.split(separator: "\n").compactMap { $0.split(separator: ":").first.map(String.init) })
            for m in failing.sorted() {
                let log = (try? String(contentsOfFile: out + "/moat/\(m).log", encoding: .utf8)) ?? "(no log)"
                report += "\n--- moat \(m).log (tail)\n" + trimmedTail(log, lines: 40)
            }
            Issue.record(Comment(rawValue: report))
        } else if ProcessInfo.processInfo.environment["MOAT_IT_KEEP"] != "1" {
            _ = Integration.removeScratch(out)
        }
    }
}
