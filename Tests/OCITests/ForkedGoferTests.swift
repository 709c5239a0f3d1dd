// `moat create` forks its Gofer (Sandbox.spawnGofer) when it has one thread,
// as `moat run` does: that Gofer must come out exactly as confined as a
// re-executed one (MOAT_SPAWN=exec), with an exec's environment and command
// line and nothing of create's environment in its memory. The Sentry stays
// re-executed: a layout of its own, not the Gofer's.

import Foundation
import Glibc
import XCTest
@testable import OCI

final class ForkedGoferTests: XCTestCase {
    struct Gofer { var pid: pid_t; var sentry: pid_t }

    /// All of a /proc file (OCI's readFile reads to the end; Foundation's
    /// readers stop after the first page of a file that reports size 0).
    func procFile(_ path: String) -> String? {
        readFile(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// What must not differ between a forked and a re-executed Gofer.
    func confinement(_ pid: pid_t) throws -> [String] {
        let status = try XCTUnwrap(procFile("/proc/\(pid)/status"))
        let keep = ["Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"]
        var out = status.split(separator: "\n").filter { l in keep.contains { l.hasPrefix($0 + ":") } }.map(String.init)
        // Which namespaces are the host's (this test's) and which its own.
        for ns in ["mnt", "net", "pid", "ipc", "uts", "user", "cgroup"] {
            let mine = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)")) ?? "?"
            let its = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(ns)")) ?? "?"
            out.append("\(ns) \(its == mine ? "host" : "own")")
        }
        out.append("root " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/root")) ?? "?"))
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        out += fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
            .map { $0.replacingOccurrences(of: #"\[[0-9]+\]"#, with: "[N]", options: .regularExpression) }.sorted()
        return out
    }

    /// Whether /proc/PID/cmdline lies on its stack, where an exec puts it
    /// (a forked child's is a page of its own: moat_fork_start).
    func commandLineOnStack(_ pid: pid_t) throws -> Bool {
        let stat = try XCTUnwrap(procFile("/proc/\(pid)/stat"))
        let fields = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
        let argStart = try XCTUnwrap(UInt64(fields[48 - 3]))   // stat(5) field 48, counted after ") "
        let maps = try XCTUnwrap(procFile("/proc/\(pid)/maps"))
        let stack = try XCTUnwrap(maps.split(separator: "\n").first { $0.hasSuffix("[stack]") })
        let r = stack.prefix { $0 != " " }.split(separator: "-").compactMap { UInt64($0, radix: 16) }
        return r.count == 2 && r[0] <= argStart && argStart < r[1]
    }

    /// Whether `needle` is in any readable private mapping of `pid`.
    func memoryHolds(_ pid: pid_t, _ needle: String) throws -> Bool {
        let maps = try XCTUnwrap(procFile("/proc/\(pid)/maps"))
        let fd = open("/proc/\(pid)/mem", O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let n = Data(needle.utf8)
        for line in maps.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 2, f[1].hasPrefix("r"), f[1].hasSuffix("p") else { continue }
            let r = f[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            guard r.count == 2, r[1] - r[0] <= 256 << 20 else { continue }
            var buf = Data(count: Int(r[1] - r[0]))
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(r[0])) }
            if got > 0, buf.prefix(got).range(of: n) != nil { return true }
        }
        return false
    }

    /// Where the moat binary's first mapping starts in `pid`.
    func base(_ pid: pid_t) -> String? {
        procFile("/proc/\(pid)/maps")?.split(separator: "\n").first { $0.hasSuffix("/moat") || $0.hasSuffix("/moat-sandbox") }.map { String($0.prefix { $0 != "-" }) }
    }

    func testForkedGoferMatchesReexecutedOne() throws {
        let moat = try requireSandbox()
        let s = OCIScratch(moat: moat)
        defer { s.cleanUp() }
        let secret = "moat-oci-secret-" + UUID().uuidString
        let b = s.bundle("b", args: ["/bin/sleep", "30"])
        func create(_ id: String, spawn: String?) throws -> Gofer {
            var env = ProcessInfo.processInfo.environment
            env["MOAT_TEST_SECRET"] = secret
            env["MOAT_SPAWN"] = spawn
            s.ids.append(id)
            let o = runProgram(moat, ["--root", s.root, "create", "--bundle", b, id], env: env)
            XCTAssertEqual(o.status, 0, o.stderr)
            let state = try XCTUnwrap(procFile(s.root + "/" + id + "/state.json"))
            let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(state.utf8)) as? [String: Any])
            let gofer = try XCTUnwrap(j["goferPid"] as? Int), sentry = try XCTUnwrap(j["pid"] as? Int)
            return Gofer(pid: pid_t(gofer), sentry: pid_t(sentry))
        }
        let forked = try create("forked", spawn: nil)
        let execed = try create("execed", spawn: "exec")
        XCTAssertFalse(try commandLineOnStack(forked.pid), "the Gofer of moat create was not forked")
        XCTAssertTrue(try commandLineOnStack(execed.pid), "MOAT_SPAWN=exec: the Gofer was not re-executed")
        XCTAssertEqual(try confinement(forked.pid), try confinement(execed.pid))
        for g in [forked, execed] {
            let environ = (procFile("/proc/\(g.pid)/environ") ?? "").split(separator: "\0").map(String.init)
            XCTAssertEqual(environ.filter { !$0.hasPrefix("MOAT_STARTUP=") }, ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
            XCTAssertEqual((procFile("/proc/\(g.pid)/cmdline") ?? "").split(separator: "\0").prefix(2), ["moat", "gofer"])
            XCTAssertFalse(try memoryHolds(g.pid, secret), "the Gofer's memory holds create's environment")
            XCTAssertNotNil(base(g.pid))
            XCTAssertNotEqual(base(g.pid), base(g.sentry), "the Sentry shares the Gofer's layout")
        }
        // The scan finds the secret where it is (the check is able to fail).
        XCTAssertTrue(try memoryHolds(getpid(), secret), "the memory scan found the secret nowhere")
    }
}
