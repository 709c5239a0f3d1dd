// What a container sees of its own cgroup (issue 15): programs size
// themselves from it (the JVM's heap from memory.max, Go's GOMAXPROCS and
// .NET's thread pool from cpu.max), so the same bundle must show the same
// limits under Moat (the Sentry's cgroup2 file system at /sys/fs/cgroup)
// as under runc: memory.max, cpu.max and pids.max from linux.resources or
// "max", the memory, cpu and pids controllers, "0::/" in /proc/self/cgroup
// (the container is the root of its cgroup namespace) and the read-only
// mount of the default spec. Moat always presents cgroup v2; runc on a
// v1 (or hybrid) host presents v1 files, which the script reads as the
// v2 values they stand for, so the comparison holds on either host, but
// for /proc/self/cgroup: runc (1.1) gives a container a cgroup namespace
// only on a v2 host, so elsewhere its line is the host's path.

import Foundation
import XCTest
@testable import OCI

final class CgroupViewTests: XCTestCase {
    var s: OCIScratch!

    override func setUpWithError() throws { s = OCIScratch(moat: try requireSandbox()) }
    override func tearDown() { s?.cleanUp() }

    /// Prints the container's view of its cgroup in v2 terms.
    static let script = """
        cd /sys/fs/cgroup || exit 9
        if [ -f cgroup.controllers ]; then
          echo "memory.max $(cat memory.max)"
          echo "cpu.max $(cat cpu.max)"
          echo "pids.max $(cat pids.max)"
          c=" $(cat cgroup.controllers) "
          for x in cpu memory pids; do case "$c" in *" $x "*) echo "controller $x";; esac; done
        else
          m=$(cat memory/memory.limit_in_bytes); case "$m" in 92233720368547*) m=max;; esac
          echo "memory.max $m"
          q=$(cat cpu/cpu.cfs_quota_us); [ "$q" = -1 ] && q=max
          echo "cpu.max $q $(cat cpu/cpu.cfs_period_us)"
          echo "pids.max $(cat pids/pids.max)"
          for x in cpu memory pids; do [ -d $x ] && echo "controller $x"; done
        fi
        grep '^0::' /proc/self/cgroup
        mkdir /sys/fs/cgroup/x 2>/dev/null && echo "mkdir made a cgroup" || echo "mkdir refused"
        """

    /// Runs the script in a bundle with `resources` under Moat and, when
    /// runc is installed (always under CI), under runc.
    func view(_ name: String, resources: [String: Any]) -> (moat: Outcome, runc: Outcome?) {
        let b = s.bundle(name, args: ["sh", "-c", Self.script]) { cfg in
            var linux = cfg["linux"] as? [String: Any] ?? [:]
            var res = linux["resources"] as? [String: Any] ?? [:]
            for (k, v) in resources { res[k] = v }
            linux["resources"] = res
            cfg["linux"] = linux
        }
        s.ids.append(name)
        let m = s.moat(["run", "--bundle", b, name], timeout: 120)
        return (m, s.runc(bundle: b, name, timeout: 120))
    }

    func check(_ name: String, resources: [String: Any], expected: [String]) {
        let (m, r) = view(name, resources: resources)
        XCTAssertEqual(m.status, 0, "moat: \(m.stdout)\(m.stderr)")
        XCTAssertEqual(m.stdout.split(separator: "\n").map(String.init), expected, "moat: \(m.stderr)")
        if let r {
            XCTAssertEqual(r.status, 0, "runc: \(r.stdout)\(r.stderr)")
            let v2 = Cgroups.isV2
            XCTAssertEqual(r.stdout.split(separator: "\n").map(String.init).filter { v2 || !$0.hasPrefix("0::") },
                           expected.filter { v2 || !$0.hasPrefix("0::") }, "runc: \(r.stderr)")
        }
    }

    func testLimitsOfTheBundleAreWhatTheContainerSees() {
        check("cgview-limits",
              resources: ["memory": ["limit": 256 << 20], "cpu": ["quota": 50000, "period": 100000], "pids": ["limit": 64]],
              expected: ["memory.max 268435456", "cpu.max 50000 100000", "pids.max 64",
                         "controller cpu", "controller memory", "controller pids", "0::/", "mkdir refused"])
    }

    func testNoLimitsShowMax() {
        check("cgview-max", resources: [:],
              expected: ["memory.max max", "cpu.max max 100000", "pids.max max",
                         "controller cpu", "controller memory", "controller pids", "0::/", "mkdir refused"])
    }
}
