// Host threads must not leak: after 1,000 short-lived application threads
// and a 64-thread futex ping-pong have come and gone, the Sentry and the
// stub processes hold as many host threads as before the first one was made.
// A stub process may hold one more: the spare stub thread new stub threads
// and processes are cloned from (Sentry/Kernel/FastPath.swift), made when
// the process first takes the fast path. It parks in a loop of its own on
// the stub page, so the test knows it by the address it waits at and
// counts it apart: at most one per stub process, never in the leak count.
// The program (programs/thread_churn.c) marks its phases with files in
// /work, which the test watches in the (write-through) rootfs copy while it
// samples the host's /proc.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("Host thread leak under thread churn")
struct ThreadLeakTests {

    @Test(.enabled(if: Integration.isRoot && Integration.gccPath != nil, "needs root and gcc"))
    func noHostThreadLeak() async throws {
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let scratch = try Integration.makeScratchDir(group: "threadleak", name: "churn")
        defer { if let problem = Integration.removeScratch(scratch) { print("warning: \(problem)") } }
        let binary = scratch + "/prog"
        let cc = await runProcess([Integration.gccPath!, "-static", "-O1", "-pthread", "-w", "-o", binary,
                                   Integration.programsDir + "/thread_churn.c"], env: ["PATH=" + Integration.fixedPath], timeout: 180)
        try #require(cc.exitStatus == 0, "gcc failed:\n\(cc.stderrText)")
        let root = scratch + "/root"
        try Integration.makeRootfsCopy(of: rootfs, at: root)
        try FileManager.default.copyItem(atPath: binary, toPath: root + "/work/prog")

        let p = Process()
        p.executableURL = URL(fileURLWithPath: moat)
        p.arguments = ["run", "--no-overlay", "--rootfs", root, "--", "/work/prog"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }

        // A hang guard, not a timing: the futex ping-pong wakes all 64
        // threads per hop, which on a loaded 2-CPU machine running the other
        // suites in parallel takes far longer than the 7 s it takes alone.
        func waitFor(_ file: String, seconds: Int = 30) -> Bool {
            for _ in 0..<(seconds * 20) {
                if access(root + file, F_OK) == 0 { return true }
                if !p.isRunning { return false }
                usleep(50_000)
            }
            return false
        }
        try #require(waitFor("/work/phase1"), "the program never started")
        usleep(500_000)
        let before = threadCounts(launcher: p.processIdentifier)
        try #require(waitFor("/work/phase2", seconds: 300), "the program never finished its threads (moat run \(p.isRunning ? "still running" : "exited \(p.terminationStatus)"))")
        usleep(300_000)
        let after = threadCounts(launcher: p.processIdentifier)
        p.waitUntilExit()
        print("host threads: Sentry \(before.sentry) -> \(after.sentry), stubs \(before.stubs) -> \(after.stubs), of them spares \(before.spares) -> \(after.spares)")
        #expect(p.terminationStatus == 0, "moat run exited \(p.terminationStatus)")
        #expect(before.sentry > 0, "no Sentry found under the launcher")
        // One thread of slack for a helper the Sentry may start lazily.
        #expect(after.sentry <= before.sentry + 1, "Sentry threads: \(before.sentry) before, \(after.sentry) after")
        #expect(after.stubs - after.spares <= before.stubs - before.spares,
                "stub threads other than spares: \(before.stubs - before.spares) before, \(after.stubs - after.spares) after")
        #expect(before.mostSpares <= 1 && after.mostSpares <= 1,
                "a stub process holds \(max(before.mostSpares, after.mostSpares)) spare threads (one at most)")
    }

    /// Host threads of the launcher's Sentry child, and of the Sentry's
    /// children (the stubs); of the latter, how many are spares, and the
    /// most spares one stub process holds.
    private func threadCounts(launcher: Int32) -> (sentry: Int, stubs: Int, spares: Int, mostSpares: Int) {
        let procs = allProcesses()
        guard let sentry = procs.first(where: { $0.ppid == launcher && $0.cmdline.contains("sentry") })?.pid else { return (0, 0, 0, 0) }
        var stubs = 0, spares = 0, most = 0
        for p in procs where p.ppid == sentry {
            stubs += threads(of: p.pid)
            let n = spareThreads(of: p.pid)
            spares += n
            most = max(most, n)
        }
        return (threads(of: sentry), stubs, spares, most)
    }

    /// Where a spare waits: the stub page is at 0x7fffffffe000 in every
    /// stub process (CMoat's MOAT_STUB_ADDR) and the spare's loop at its
    /// +0x30, `mov $34, %eax; syscall` (stub.c fails to build if it moves),
    /// so a spare blocked in pause(2) reports the pc 0x7fffffffe037.
    private static let sparePC = "0x7fffffffe037"

    /// Threads of a stub process blocked in pause(2) in the spare's loop
    /// (/proc/TID/syscall: the number, six arguments, sp, pc).
    private func spareThreads(of pid: Int32) -> Int {
        let tids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tids.filter { tid in
            guard let s = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/syscall", encoding: .utf8) else { return false }
            let f = s.split(whereSeparator: { $0 == " " || $0 == "\n" })
            return f.count == 9 && f[0] == "34" && f[8] == ThreadLeakTests.sparePC
        }.count
    }

    private func allProcesses() -> [(pid: Int32, ppid: Int32, cmdline: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { n in
            guard let pid = Int32(n), let stat = try? String(contentsOfFile: "/proc/\(n)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, let ppid = Int32(fields[1]) else { return nil }
            let cmd = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(n)/cmdline"))).map { String(decoding: $0, as: UTF8.self) } ?? ""
            return (pid, ppid, cmd.replacingOccurrences(of: "\0", with: " "))
        }
    }

    private func threads(of pid: Int32) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("Threads:") {
            return Int(line.dropFirst(8).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }
}
