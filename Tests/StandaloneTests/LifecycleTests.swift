// `moat run IMAGE`, ps, logs, stop, kill, rm and inspect driven as a person
// would, with an image pulled from the test registry: a detached sandbox
// with a volume, a foreground one with --rm, the truth of `moat ps` after
// kill -9 of a sandbox's processes, and errors a person can act on.

import Dispatch
import Foundation
import Glibc
import XCTest

final class LifecycleTests: XCTestCase {
    nonisolated(unsafe) static var registry: Result<TestRegistry, Error>?

    override class func setUp() {
        registry = Result { try TestRegistry() }
    }

    override class func tearDown() {
        if case .success(let r) = registry { r.stop() }
        registry = nil
    }

    var image: String {
        get throws {
            switch Self.registry {
            case .success(let r): return r.image
            case .failure(let e): try missing("the test registry: \(e)")
            case nil: try missing("the test registry was not started")
            }
        }
    }

    func testDetachedRunWithVolumeLogsStopRm() throws {
        let image = try image
        let moat = try Moat()
        defer { moat.cleanUp() }
        let vol = tempDir("vol"), roVol = tempDir("rovol")
        defer { _ = runProgram(["/bin/rm", "-rf", vol, roVol]) }
        chmod(vol, 0o777)   // the application runs as 1000:1000
        try "from the host\n".write(toFile: vol + "/in", atomically: true, encoding: .utf8)
        try "keep\n".write(toFile: roVol + "/k", atomically: true, encoding: .utf8)
        let envFile = vol + "/../" + URL(fileURLWithPath: vol).lastPathComponent + ".env"
        try "# a comment\nFROM_FILE=f1\nBOTH=file\n".write(toFile: envFile, atomically: true, encoding: .utf8)
        defer { unlink(envFile) }
        let script = """
            echo "env=$FROM_FILE,$BOTH,$GIVEN cwd=$(pwd) id=$(id -u):$(id -g) host=$(hostname)"
            cat /data/in; echo to-stderr >&2
            echo written-inside > /data/out
            (echo nope > /ro/k) 2>/dev/null || echo ro-refused
            echo ready; exec sleep 1000
            """
        let run = moat(["run", "-d", "--name", "web", "-v", vol + ":/data", "-v", roVol + ":/ro:ro", "--env-file", envFile,
                        "-e", "BOTH=flag", "--env", "GIVEN=g", "-w", "/tmp", "-u", "1000:1000", "--hostname", "box",
                        image, "sh", "-c", script], timeout: 120)
        XCTAssertEqual(run.status, 0, run.all)
        let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(id.count, 32, run.all)

        let logs = moat.waitForLog("web", "ready")
        XCTAssertEqual(logs.stdout, "env=f1,flag,g cwd=/tmp id=1000:1000 host=box\nfrom the host\nro-refused\nready\n", logs.all)
        XCTAssertEqual(logs.stderr, "to-stderr\n")
        XCTAssertEqual(try String(contentsOfFile: vol + "/out", encoding: .utf8), "written-inside\n")
        XCTAssertEqual(try String(contentsOfFile: roVol + "/k", encoding: .utf8), "keep\n")

        let ps = moat(["ps"])
        let line = ps.stdout.split(separator: "\n").first { $0.hasSuffix("web") }
        XCTAssertNotNil(line, ps.all)
        XCTAssert(line?.hasPrefix(String(id.prefix(12))) == true, ps.all)
        XCTAssert(line?.contains(" Up ") == true, ps.all)
        // A name is one sandbox's.
        let again = moat(["run", "-d", "--name", "web", image, "true"])
        XCTAssertEqual(again.status, 125, again.all)
        XCTAssert(again.stderr.contains("the name web is in use"), again.all)
        // Running: rm refuses without -f.
        let rm = moat(["rm", "web"])
        XCTAssertEqual(rm.status, 125, rm.all)
        XCTAssert(rm.stderr.contains("is running"), rm.all)

        // sleep ignores nothing: SIGTERM ends it (143) well before -t.
        let stop = moat(["stop", "-t", "20", "web"])
        XCTAssertEqual(stop.status, 0, stop.all)
        let rec = try XCTUnwrap(moat.inspect(String(id.prefix(6))))
        XCTAssertEqual(rec["state"] as? String, "exited")
        XCTAssertEqual(rec["exitCode"] as? Int, 143)
        XCTAssertFalse(isAlive(Int32(rec["sentryPid"] as? Int ?? 0)))
        XCTAssertFalse(moat(["ps"]).stdout.contains("web"))
        XCTAssert(moat(["ps", "-a"]).stdout.contains("Exited (143)"))
        // The log outlives the sandbox until rm.
        XCTAssert(moat(["logs", "web"]).stdout.contains("ready"))
        XCTAssertEqual(moat(["rm", "web"]).status, 0)
        XCTAssertEqual(moat(["ps", "-a", "-q"]).stdout, "")
        XCTAssertEqual(moat(["logs", "web"]).status, 125)
    }

    /// kill -9 of every process of a sandbox, its supervisor included:
    /// moat ps tells the truth from pid + start time, and rm cleans up.
    func testPsAfterKill9() throws {
        let image = try image
        let moat = try Moat()
        defer { moat.cleanUp() }
        for name in ["a", "b"] {
            let run = moat(["run", "-d", "--name", name, image, "sh", "-c", "echo up; exec sleep 1000"], timeout: 120)
            XCTAssertEqual(run.status, 0, run.all)
            _ = moat.waitForLog(name, "up")
        }
        // a: the sandbox's own processes (the Sentry's session: Sentry, stubs); b: also its supervisor.
        for name in ["a", "b"] {
            let rec = try XCTUnwrap(moat.inspect(name))
            let sentry = Int32(rec["sentryPid"] as? Int ?? 0), supervisor = Int32(rec["supervisorPid"] as? Int ?? 0)
            XCTAssert(sentry > 0 && isAlive(sentry) && supervisor > 0 && isAlive(supervisor), "\(rec)")
            if name == "b" { kill(supervisor, SIGKILL) }
            kill(-sentry, SIGKILL)
            for _ in 0..<100 where isAlive(sentry) { usleep(20_000) }
        }
        // c: only its supervisor is killed; the application then exits by itself.
        let c = moat(["run", "-d", "--name", "c", image, "sh", "-c", "echo up; sleep 1000; exit 5"], timeout: 120)
        XCTAssertEqual(c.status, 0, c.all)
        _ = moat.waitForLog("c", "up")
        let crec = try XCTUnwrap(moat.inspect("c"))
        kill(Int32(crec["supervisorPid"] as? Int ?? 0), SIGKILL)
        for _ in 0..<100 where isAlive(Int32(crec["supervisorPid"] as? Int ?? 0)) { usleep(20_000) }
        XCTAssert(moat(["ps"]).stdout.contains(" c\n"), "still running unsupervised")
        XCTAssertEqual(moat(["exec", "c", "sh", "-c", "kill $(pidof sleep)"]).status, 0)
        var cState = ""
        for _ in 0..<100 where !cState.contains("Exited") { usleep(50_000); cState = moat(["ps", "-a"]).stdout }
        XCTAssert(cState.contains("Exited (5)"), cState)
        XCTAssertEqual(moat(["rm", "c"]).status, 0)
        XCTAssertFalse(isAlive(Int32(crec["sentryPid"] as? Int ?? 0)), "rm ends the unsupervised Sentry")

        let ps = moat(["ps"])
        XCTAssertEqual(ps.stdout.split(separator: "\n").count, 1, "only the header: \(ps.all)")
        let all = moat(["ps", "-a"])
        XCTAssertEqual(all.stdout.components(separatedBy: "Exited (137)").count, 3, all.all)
        XCTAssertEqual(moat.inspect("b")?["state"] as? String, "exited")
        let kill = moat(["kill", "a"])
        XCTAssertEqual(kill.status, 125, kill.all)
        XCTAssert(kill.stderr.contains("not running"), kill.all)
        // Each one named is tried: a failure in the middle is said, the others go.
        let rm = moat(["rm", "a", "nosuch", "b"])
        XCTAssertEqual(rm.status, 125, rm.all)
        XCTAssertEqual(rm.stdout, "a\nb\n", rm.all)
        XCTAssert(rm.stderr.contains("no such sandbox: nosuch"), rm.all)
        XCTAssertEqual(moat(["ps", "-a", "-q"]).stdout, "")
    }

    /// A foreground run: the application's stdio is ours, its status is
    /// moat's, --rm leaves no record; --read-only and --entrypoint apply.
    func testForegroundRmReadOnlyEntrypoint() throws {
        let image = try image
        let moat = try Moat()
        defer { moat.cleanUp() }
        let o = moat(["run", "--rm", "--name", "fg", "--read-only", "--tmpfs", "/scratch", "--entrypoint", "/bin/sh", image,
                      "-c", "read line; echo got $line; touch /scratch/ok && touch /x 2>/dev/null || echo read-only >&2; exit 3"],
                     stdin: "hello\n", timeout: 120)
        XCTAssertEqual(o.status, 3, o.all)
        XCTAssertEqual(o.stdout, "got\n", "no -i: stdin is empty. \(o.all)")
        XCTAssertEqual(o.stderr.split(separator: "\n").last, "read-only", o.all)
        XCTAssertFalse(o.stderr.contains("scratch"), "the --tmpfs is writable: \(o.all)")
        XCTAssertEqual(moat(["ps", "-a", "-q"]).stdout, "")
        let h = moat(["run", "--rm", "--name", "hosts", "--hostname", "hh", "--add-host", "db:10.1.2.3", "--dns", "192.0.2.53", image,
                      "sh", "-c", "grep -E 'hh|db' /etc/hosts; cat /etc/resolv.conf"], timeout: 120)
        XCTAssertEqual(h.stdout, "127.0.1.1\thh\n10.1.2.3\tdb\nnameserver 192.0.2.53\n", h.all)
        let i = moat(["run", "--rm", "-i", image, "sh", "-c", "read line; echo got $line"], stdin: "hello\n", timeout: 120)
        XCTAssertEqual(i.stdout, "got hello\n", i.all)
        // --rm of a detached sandbox: gone once it exits.
        let d = moat(["run", "-d", "--rm", "--name", "brief", image, "true"], timeout: 120)
        XCTAssertEqual(d.status, 0, d.all)
        var left = "x"
        for _ in 0..<100 where !left.isEmpty { usleep(50_000); left = moat(["ps", "-a", "-q"]).stdout }
        XCTAssertEqual(left, "")
    }

    func testErrorsSayWhatToDo() throws {
        let image = try image
        let moat = try Moat()
        defer { moat.cleanUp() }
        func expect(_ args: [String], _ text: String, status: Int32 = 125, line: UInt = #line) {
            let o = moat(args, timeout: 120)
            XCTAssertEqual(o.status, status, o.all, line: line)
            XCTAssert(o.stderr.contains(text), o.all, line: line)
            XCTAssertFalse(o.stderr.contains("Usage:"), o.all, line: line)
        }
        for cmd in [["logs"], ["stop"], ["kill"], ["rm"], ["inspect"]] { expect(cmd + ["nosuch"], "no such sandbox: nosuch (moat ps -a lists them)") }
        expect(["run", "-d", "-v", "/nonexistent-moat-dir:/x", image, "true"], "the host path /nonexistent-moat-dir does not exist")
        expect(["run", "-d", "-v", "relative:/x", image, "true"], "expected HOST:CONTAINER[:ro] with absolute paths")
        expect(["run", "-d", image.replacingOccurrences(of: "single", with: "nope"), "true"], "manifest unknown")
        expect(["run", "-d", "--name", "bad/name", image, "true"], "--name bad/name: use letters")
        expect(["run", "-d", "-u", "nobody-here", image, "true"], "nobody-here")
        // moat run -d returns for good: its supervisor keeps none of the
        // caller's descriptors (here a pipe as fd 3 that cat waits on).
        let piped = runProgram(["/bin/sh", "-c", "'\(moat.binary)' run --root '\(moat.root)' -d --name piped \(image) sleep 1000 3>&1 | cat"], timeout: 30)
        XCTAssertFalse(piped.timedOut, piped.all)
        XCTAssertEqual(piped.stdout.count, 33, piped.all)
        XCTAssertEqual(moat(["rm", "-f", "piped"]).status, 0)
        // Two runs racing for one name: exactly one gets it.
        let results = UnsafeMutableBufferPointer<Int32>.allocate(capacity: 4)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { i in results[i] = moat(["run", "-d", "--name", "race", image, "sleep", "100"], timeout: 120).status }
        XCTAssertEqual(results.filter { $0 == 0 }.count, 1, "\(Array(results))")
        XCTAssertEqual(results.filter { $0 == 125 }.count, 3, "\(Array(results))")
        XCTAssertEqual(moat(["rm", "-f", "race"]).status, 0)
        // A command that cannot start: 127 (not found) and 126 (not executable), as in the foreground.
        expect(["run", "-d", "--name", "nc", image, "nosuchcmd"], "exec nosuchcmd: executable file not found in $PATH", status: 127)
        expect(["run", "--name", "nc", image, "nosuchcmd"], "exec nosuchcmd: executable file not found in $PATH", status: 127)
        expect(["run", "--rm", "--name", "nc", image, "/etc/passwd"], "Permission denied", status: 126)
        expect(["run", "-d", "-w", "/nonexistent", image, "pwd"], "cannot use /nonexistent as the working directory")
        // Nothing was left behind by the failures.
        XCTAssertEqual(moat(["ps", "-a", "-q"]).stdout, "")
    }
}
