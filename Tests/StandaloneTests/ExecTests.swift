// `moat exec`, `top` and `stats` on a running standalone sandbox: exit
// status, stdin with -i, an interactive shell through a terminal with -it
// (driven through a pty by python3, as a person at a terminal would).

import Foundation
import Glibc
import XCTest

final class ExecTests: XCTestCase {
    nonisolated(unsafe) static var registry: Result<TestRegistry, Error>?
    override class func setUp() { registry = Result { try TestRegistry() } }
    override class func tearDown() {
        if case .success(let r) = registry { r.stop() }
        registry = nil
    }

    func started() throws -> Moat {
        let image: String
        switch Self.registry {
        case .success(let r): image = r.image
        case .failure(let e): try missing("the test registry: \(e)")
        case nil: try missing("the test registry was not started")
        }
        let moat = try Moat()
        let run = moat(["run", "-d", "--name", "box", "-e", "FROM_RUN=r", image, "sh", "-c", "echo up; exec sleep 1000"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.all)
        _ = moat.waitForLog("box", "up")
        return moat
    }

    func testExecStatusStdinEnvTopStats() throws {
        let moat = try started()
        defer { moat.cleanUp() }
        let e = moat(["exec", "-e", "X=1", "-w", "/tmp", "box", "sh", "-c", "echo $FROM_RUN $X $(pwd); echo err >&2; exit 6"])
        XCTAssertEqual(e.status, 6, e.all)
        XCTAssertEqual(e.stdout, "r 1 /tmp\n")
        XCTAssertEqual(e.stderr, "err\n")
        let i = moat(["exec", "-i", "box", "sh", "-c", "read a; echo got $a"], stdin: "line\n")
        XCTAssertEqual(i.stdout, "got line\n", i.all)
        let u = moat(["exec", "-u", "1000:1000", "box", "id", "-u"])
        XCTAssertEqual(u.stdout, "1000\n", u.all)
        let named = moat(["exec", "-u", "nobody", "box", "id", "-u"])
        XCTAssertEqual(named.stdout, "65534\n", named.all)
        let unknown = moat(["exec", "-u", "nobody-here", "box", "true"])
        XCTAssertEqual(unknown.status, 125, unknown.all)
        XCTAssert(unknown.stderr.contains("nobody-here is not in the image's /etc/passwd") && !unknown.stderr.contains("Usage"), unknown.all)
        let top = moat(["top", "box"])
        XCTAssertEqual(top.status, 0, top.all)
        XCTAssert(top.stdout.contains("sleep 1000"), top.all)
        let stats = moat(["stats", "box"])
        XCTAssertEqual(stats.status, 0, stats.all)
        XCTAssert(stats.stdout.split(separator: "\n").last?.hasPrefix("box ") == true, stats.all)
        // moat debug by name: the supervisor and every process it started.
        let debug = moat(["debug", "box"])
        XCTAssertEqual(debug.status, 0, debug.all)
        for part in ["launcher: moat standalone-supervise", "Sentry", "Gofer ("] { XCTAssert(debug.stdout.contains(part), debug.all) }
        let none = moat(["exec", "nosuch", "true"])
        XCTAssertEqual(none.status, 125, none.all)
        XCTAssert(none.stderr.contains("no such sandbox: nosuch"), none.all)
        XCTAssertEqual(moat(["stop", "-t", "1", "box"]).status, 0)
        let stopped = moat(["exec", "box", "true"])
        XCTAssertEqual(stopped.status, 125, stopped.all)
        XCTAssert(stopped.stderr.contains("is not running"), stopped.all)
    }

    /// -it: a shell that prompts, runs what is typed and exits with its status.
    func testExecInteractiveTerminal() throws {
        guard runProgram(["/bin/sh", "-c", "command -v python3"]).status == 0 else { try missing("python3 is missing") }
        let moat = try started()
        defer { moat.cleanUp() }
        let driver = """
            import os, pty, select, sys, time
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(sys.argv[1], sys.argv[1:])
            out = b""
            def until(text, seconds=20):
                global out
                end = time.time() + seconds
                while text not in out and time.time() < end:
                    if select.select([fd], [], [], 0.1)[0]:
                        try: d = os.read(fd, 4096)
                        except OSError: return
                        if not d: return
                        out += d
            until(b"# ")
            os.write(fd, b"test -t 0 && echo in-a-tty-$((6*7))\\n")
            until(b"in-a-tty-42")
            os.write(fd, b"exit 7\\n")
            until(b"never", 5)
            _, st = os.waitpid(pid, 0)
            sys.stdout.write(out.decode(errors="replace"))
            sys.exit(os.waitstatus_to_exitcode(st))
            """
        let o = runProgram(["/usr/bin/env", "python3", "-c", driver, moat.binary, "exec", "--root", moat.root, "-it", "box", "sh"], timeout: 60)
        XCTAssertEqual(o.status, 7, o.all)
        XCTAssert(o.stdout.contains("in-a-tty-42\r\n"), o.all)
        // The same in the foreground with a record (--name): moat run -it.
        guard case .success(let r) = Self.registry else { return }
        let run = runProgram(["/usr/bin/env", "python3", "-c", driver, moat.binary, "run", "--root", moat.root, "--rm", "--name", "fg",
                              "-it", r.image, "sh"], timeout: 60)
        XCTAssertEqual(run.status, 7, run.all)
        XCTAssert(run.stdout.contains("in-a-tty-42\r\n"), run.all)
        XCTAssertFalse(moat(["ps", "-a"]).stdout.contains("fg"))
    }
}
