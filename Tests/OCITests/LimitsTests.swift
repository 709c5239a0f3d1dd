// Resource bombs under config.json limits (programs/bombs.c): a fork bomb
// and a thread bomb under linux.resources.pids, a memory bomb under
// linux.resources.memory. The sandbox must be contained exactly as runc
// contains the same bundle: fork and pthread_create fail with EAGAIN at the
// limit and work again once the children are gone, the memory bomb ends in
// an OOM kill (exit 137), and afterwards the container's cgroups and state
// are gone. How many processes fit under the limit differs (Moat's Sentry,
// Gofer and stubs live in the container's cgroup too), so that figure is
// only required to be positive.

import Foundation
import XCTest

final class LimitsTests: XCTestCase {
    var s: OCIScratch!
    var programDir = ""

    override func setUpWithError() throws {
        s = OCIScratch(moat: try requireSandbox())
        let gcc = OCITestEnv.which("gcc")
        if gcc == nil && ProcessInfo.processInfo.environment["CI"] != "true" { throw XCTSkip("needs gcc") }
        programDir = s.dir + "/bombs"
        try FileManager.default.createDirectory(atPath: programDir, withIntermediateDirectories: true)
        let source = OCITestEnv.repo + "/Tests/OCITests/programs/bombs.c"
        let cc = runProgram(gcc ?? "/usr/bin/gcc", ["-static", "-O1", "-pthread", "-o", programDir + "/bombs", source], timeout: 180)
        XCTAssertEqual(cc.status, 0, "gcc failed: \(cc.stderr)")
    }

    override func tearDown() {
        s?.cleanUp()
    }

    /// A bundle running `/bombs/bombs MODE` with the given resources.
    func bundle(_ name: String, mode: String, resources: [String: Any]) -> String {
        s.bundle(name, args: ["/bombs/bombs", mode]) { cfg in
            var mounts = cfg["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/bombs", "type": "bind", "source": self.programDir, "options": ["rbind", "ro"]])
            cfg["mounts"] = mounts
            var linux = cfg["linux"] as? [String: Any] ?? [:]
            var res = linux["resources"] as? [String: Any] ?? [:]
            for (k, v) in resources { res[k] = v }
            linux["resources"] = res
            cfg["linux"] = linux
        }
    }

    /// Runs the bundle with moat and, when runc is installed (always under
    /// CI), with runc; returns both outcomes.
    func runBoth(_ name: String, mode: String, resources: [String: Any]) throws -> (moat: Outcome, runc: Outcome?) {
        let b = bundle(name, mode: mode, resources: resources)
        s.ids.append(name)
        let m = s.moat(["run", "--bundle", b, name], timeout: 240)
        XCTAssertNil(s.status(name), "\(name): moat still lists the container after run")
        XCTAssertEqual(leftoverCgroups(name), [], "\(name): cgroups left behind")
        return (m, s.runc(bundle: b, name, timeout: 240))
    }

    func leftoverCgroups(_ id: String) -> [String] {
        var left: [String] = []
        let base = "/sys/fs/cgroup"
        for ctrl in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
            for p in [base + "/" + ctrl + "/moat/" + id, base + "/" + ctrl + "/" + id] where FileManager.default.fileExists(atPath: p) {
                left.append(p)
            }
        }
        return left
    }

    func lines(_ o: Outcome) -> [String] {
        o.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("count ") }
    }

    func count(_ o: Outcome) -> Int {
        o.stdout.split(separator: "\n").first { $0.hasPrefix("count ") }.flatMap { Int($0.dropFirst(6)) } ?? -1
    }

    /// A pids bomb: both runtimes print `expected` and exit 0; in Moat at
    /// least one child (`what`) fitted under the limit.
    func checkPidsBomb(_ name: String, mode: String, expected: [String], what: String) throws {
        let (m, r) = try runBoth(name, mode: mode, resources: ["pids": ["limit": 48]])
        XCTAssertEqual(m.status, 0, "moat: \(m.stdout)\(m.stderr)")
        XCTAssertEqual(lines(m), expected, "moat: \(m.stderr)")
        XCTAssertGreaterThan(count(m), 0, "moat: no \(what) fitted under the limit")
        if let r {
            XCTAssertEqual(r.status, 0)
            XCTAssertEqual(lines(r), expected, "runc: \(r.stderr)")
        }
    }

    func testForkBombStopsAtThePidsLimit() throws {
        try checkPidsBomb("forkbomb", mode: "fork",
                          expected: ["fork failed: Resource temporarily unavailable", "reaped all: yes", "fork after: exit 7"], what: "child")
    }

    func testThreadBombStopsAtThePidsLimit() throws {
        try checkPidsBomb("threadbomb", mode: "thread",
                          expected: ["thread create failed: Resource temporarily unavailable",
                                     "fork at the limit: Resource temporarily unavailable", "done"], what: "thread")
    }

    func testMemoryBombIsKilledAtTheMemoryLimit() throws {
        let limit = 96 << 20
        let (m, r) = try runBoth("membomb", mode: "memory", resources: ["memory": ["limit": limit, "swap": limit]])
        XCTAssertEqual(m.status, 137, "moat: \(m.stdout)\(m.stderr)")
        XCTAssertEqual(lines(m), ["touched 16 MiB"], "moat: \(m.stderr)")
        if let r {
            XCTAssertEqual(r.status, 137)
            XCTAssertEqual(lines(r), ["touched 16 MiB"])
        }
    }
}
