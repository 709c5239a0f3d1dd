// What a standalone sandbox takes from the host and gives back: published
// ports (reachable on loopback; a taken port is an error that says so),
// --restart on-failure, cgroup limits (set while it runs, removed on every
// exit path, kill -9 included) and --cap-add/--cap-drop.

import Foundation
import Glibc
import XCTest

final class ResourcesTests: XCTestCase {
    nonisolated(unsafe) static var registry: Result<TestRegistry, Error>?
    override class func setUp() { registry = Result { try TestRegistry() } }
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

    /// Connects to 127.0.0.1:port and reads until the peer closes; nil when refused.
    func fetch(_ port: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { return nil }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testPublishedPortAndPortInUse() throws {
        let image = try image
        let moat = try Moat()
        defer { moat.cleanUp() }
        let port = freePort()
        let run = moat(["run", "-d", "--name", "web", "-p", "127.0.0.1:\(port):8080", image, "sh", "-c",
                        "echo up; while true; do echo hello-from-the-sandbox | nc -l -p 8080; done"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.all)
        _ = moat.waitForLog("web", "up")
        var got: String? = nil
        for _ in 0..<50 where got?.contains("hello") != true { got = fetch(port); if got?.contains("hello") != true { usleep(100_000) } }
        XCTAssertEqual(got, "hello-from-the-sandbox\n")
        XCTAssert(moat(["ps"]).stdout.contains("127.0.0.1:\(port)->8080"))
        let taken = moat(["run", "-d", "--name", "web2", "-p", "127.0.0.1:\(port):8080", image, "true"])
        XCTAssertEqual(taken.status, 125, taken.all)
        XCTAssert(taken.stderr.contains("127.0.0.1:\(port)") && taken.stderr.contains("in use"), taken.all)
        XCTAssertEqual(moat(["ps", "-a", "-q"]).stdout.split(separator: "\n").count, 1, "the failed run left no record")
        XCTAssertEqual(moat(["stop", "-t", "1", "web"]).status, 0)
        XCTAssertNil(fetch(port), "the host port is closed with the sandbox")
    }

    func testRestartOnFailure() throws {
        let image = try image
        let moat = try Moat()
        defer { moat.cleanUp() }
        let run = moat(["run", "-d", "--name", "flaky", "--restart", "on-failure:2", image, "sh", "-c", "echo run; exit 3"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.all)
        var rec: [String: Any] = [:]
        for _ in 0..<200 {
            rec = moat.inspect("flaky") ?? [:]
            if rec["state"] as? String == "exited", rec["restarts"] as? Int == 2, !isAlive(Int32(rec["supervisorPid"] as? Int ?? 0)) { break }
            usleep(50_000)
        }
        XCTAssertEqual(rec["restarts"] as? Int, 2, "\(rec)")
        XCTAssertEqual(rec["exitCode"] as? Int, 3, "\(rec)")
        XCTAssertEqual(moat(["logs", "flaky"]).stdout, "run\nrun\nrun\n")
        // Success ends it: no restart.
        let ok = moat(["run", "-d", "--name", "fine", "--restart", "on-failure", image, "sh", "-c", "echo once"], timeout: 120)
        XCTAssertEqual(ok.status, 0, ok.all)
        waitUntil { moat.inspect("fine")?["state"] as? String == "exited" }
        usleep(500_000)
        XCTAssertEqual(moat.inspect("fine")?["restarts"] as? Int, 0)
        XCTAssertEqual(moat(["logs", "fine"]).stdout, "once\n")
        // always: restarted after success too, until moat stop, after which it stays down.
        let always = moat(["run", "-d", "--name", "always", "--restart", "always", image, "sh", "-c", "echo run; sleep 0.2"], timeout: 120)
        XCTAssertEqual(always.status, 0, always.all)
        waitUntil { moat.inspect("always")?["restarts"] as? Int ?? 0 >= 2 }
        XCTAssertGreaterThanOrEqual(moat.inspect("always")?["restarts"] as? Int ?? 0, 2)
        XCTAssertEqual(moat(["stop", "always"]).status, 0)
        let after = moat.inspect("always")?["restarts"] as? Int
        usleep(1_000_000)
        XCTAssertEqual(moat.inspect("always")?["state"] as? String, "exited")
        XCTAssertEqual(moat.inspect("always")?["restarts"] as? Int, after, "no restart after moat stop")

        let bad = moat(["run", "-d", "--restart", "sometimes", image, "true"])
        XCTAssertEqual(bad.status, 125, bad.all)
        XCTAssert(bad.stderr.contains("expected no, always, unless-stopped or on-failure[:N]"), bad.all)
    }

    /// The cgroup directories of a sandbox (v2, or v1's memory, cpu and pids).
    func cgroups(_ id: String) -> [String] {
        let base = "/sys/fs/cgroup", rel = "/moat-standalone/" + id.prefix(12)
        let all = access(base + "/cgroup.controllers", F_OK) == 0 ? [base + rel] : ["memory", "cpu", "pids"].map { base + "/" + $0 + rel }
        return all.filter { access($0, F_OK) == 0 }
    }

    func read(_ path: String) -> String { ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }

    func testLimitsAndTheirRemoval() throws {
        let image = try image
        guard Integration.isRoot else { try missing("cgroup limits need root") }
        let moat = try Moat()
        defer { moat.cleanUp() }
        for name in ["stopped", "killed"] {
            let run = moat(["run", "-d", "--name", name, "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", image, "sleep", "1000"], timeout: 120)
            XCTAssertEqual(run.status, 0, run.all)
        }
        for name in ["stopped", "killed"] {
            let rec = try XCTUnwrap(moat.inspect(name))
            let id = try XCTUnwrap(rec["id"] as? String)
            let dirs = cgroups(id)
            XCTAssertEqual(dirs.count, access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? 1 : 3, "\(dirs)")
            let values = dirs.map { d in ["memory.max", "memory.limit_in_bytes", "pids.max", "cpu.max", "cpu.cfs_quota_us"].filter { access(d + "/" + $0, F_OK) == 0 }.map { read(d + "/" + $0) } }.flatMap { $0 }
            XCTAssert(values.contains("67108864") && values.contains("50") && values.contains { $0.hasPrefix("50000") }, "\(values)")
            // The Sentry is inside.
            let sentry = rec["sentryPid"] as? Int ?? 0
            XCTAssert(dirs.allSatisfy { read($0 + "/cgroup.procs").split(separator: "\n").contains(Substring(String(sentry))) }, "\(dirs)")
            if name == "stopped" {
                XCTAssertEqual(moat(["stop", "-t", "1", name]).status, 0)
            } else {
                kill(Int32(rec["supervisorPid"] as? Int ?? 0), SIGKILL)
                kill(-Int32(sentry), SIGKILL)
                for _ in 0..<100 where isAlive(Int32(sentry)) { usleep(20_000) }
                XCTAssertEqual(moat(["rm", name]).status, 0)
            }
            XCTAssertEqual(cgroups(id), [], "\(name): its cgroups are gone")
        }
        // Past --memory the kernel kills the biggest process of the sandbox:
        // the application's (awk dies of SIGKILL) or the Sentry (the whole
        // sandbox ends with 137). Never the supervisor, which still reports
        // and cleans up (a killed supervisor would leave its record and cgroup).
        let oom = moat(["run", "--rm", "--name", "oom", "--memory", "48m", image, "sh", "-c",
                        "echo start; awk 'BEGIN { s = \"x\"; while (length(s) < 400000000) s = s s; print length(s) }'; echo awk=$?"],
                   timeout: 120)
        XCTAssert(oom.status == 137 && oom.stdout == "start\n" || oom.status == 0 && oom.stdout == "start\nawk=137\n", oom.all)
        XCTAssertFalse(moat(["ps", "-a"]).stdout.contains("oom"), "--rm removed it")
        XCTAssertEqual(["memory", "pids", "cpu", ""].filter { access("/sys/fs/cgroup/\($0)/moat-standalone", F_OK) == 0 }, [])

        let bad = moat(["run", "-d", "--memory", "lots", image, "true"])
        XCTAssertEqual(bad.status, 125, bad.all)
        XCTAssert(bad.stderr.contains("--memory lots"), bad.all)
    }

    func testCapabilities() throws {
        let image = try image
        let moat = try Moat()
        defer { moat.cleanUp() }
        let o = moat(["run", "--rm", "--name", "caps", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE,chown", image,
                      "grep", "-E", "^Cap(Bnd|Eff)", "/proc/self/status"], timeout: 120)
        XCTAssertEqual(o.stdout, "CapEff:\t0000000000000401\nCapBnd:\t0000000000000401\n", o.all)
        let d = moat(["run", "--rm", "--name", "caps2", "--cap-drop", "chown", image, "chown", "1:1", "/tmp"])
        XCTAssertNotEqual(d.status, 0, d.all)
        XCTAssert(d.stderr.contains("Operation not permitted"), d.all)
        let bad = moat(["run", "--rm", "--name", "caps3", "--cap-add", "FLY", image, "true"])
        XCTAssertEqual(bad.status, 125, bad.all)
        XCTAssert(bad.stderr.contains("unknown capability FLY"), bad.all)
    }
}

enum Integration { static var isRoot: Bool { geteuid() == 0 } }
