// config.json's credentials reach the application: process.capabilities and
// noNewPrivileges (/proc/self/status and what the sets allow),
// linux.uidMappings/gidMappings (/proc/self/uid_map, gid_map) and
// linux.sysctl (the sandbox's /proc/sys).

import Foundation
import XCTest
@testable import OCI

final class CredentialsTests: XCTestCase {
    var s: OCIScratch!

    override func setUpWithError() throws {
        s = OCIScratch(moat: try requireSandbox())
    }

    override func tearDown() {
        s?.cleanUp()
    }

    static let statusLines = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status"

    func run(_ id: String, _ script: String, edit: @escaping (inout [String: Any]) -> Void) -> Outcome {
        let b = s.bundle(id, args: ["sh", "-c", script], edit: edit)
        s.ids.append(id)
        return s.moat(["run", "--bundle", b, id])
    }

    func setProcess(_ cfg: inout [String: Any], _ change: (inout [String: Any]) -> Void) {
        var p = cfg["process"] as! [String: Any]
        change(&p)
        cfg["process"] = p
    }

    func testCapabilitiesAndNoNewPrivsReachRoot() throws {
        let docker = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
                      "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
                      "CAP_AUDIT_WRITE"]
        // As runc's exec does for root: permitted and effective become the
        // bounding set (plus inheritable) whatever permitted said.
        let o = run("caps", Self.statusLines + "; hostname other 2>&1; echo hostname=$?") { cfg in
            self.setProcess(&cfg) { p in
                p["capabilities"] = ["bounding": docker, "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]]
                p["noNewPrivileges"] = false
            }
        }
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, """
            CapInh:\t0000000000000000
            CapPrm:\t00000000a80425fb
            CapEff:\t00000000a80425fb
            CapBnd:\t00000000a80425fb
            CapAmb:\t0000000000000000
            NoNewPrivs:\t0
            hostname: sethostname: Operation not permitted
            hostname=1

            """)
    }

    func testDefaultSpecCapabilitiesLimitRoot() throws {
        // The default spec: AUDIT_WRITE, KILL, NET_BIND_SERVICE; no_new_privs.
        let o = run("dflt", Self.statusLines + "; echo x > /dev/shm/f && chown 1000 /dev/shm/f 2>&1; chmod 0 /dev/shm/f; cat /dev/shm/f 2>&1; echo end") { _ in }
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, """
            CapInh:\t0000000000000000
            CapPrm:\t0000000020000420
            CapEff:\t0000000020000420
            CapBnd:\t0000000020000420
            CapAmb:\t0000000000000000
            NoNewPrivs:\t1
            chown: /dev/shm/f: Operation not permitted
            cat: can't open '/dev/shm/f': Permission denied
            end

            """)
    }

    func testAmbientCapabilitiesReachANonRootUser() throws {
        let o = run("amb", "id -u; " + Self.statusLines) { cfg in
            self.setProcess(&cfg) { p in
                let c = ["CAP_NET_BIND_SERVICE"]
                p["user"] = ["uid": 1000, "gid": 1000]
                p["capabilities"] = ["bounding": c + ["CAP_KILL"], "effective": c, "permitted": c, "inheritable": c, "ambient": c]
            }
        }
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, """
            1000
            CapInh:\t0000000000000400
            CapPrm:\t0000000000000400
            CapEff:\t0000000000000400
            CapBnd:\t0000000000000420
            CapAmb:\t0000000000000400
            NoNewPrivs:\t1

            """)
    }

    func testNoCapabilitiesObjectMeansNone() throws {
        let o = run("none", "grep CapEff /proc/self/status") { cfg in
            self.setProcess(&cfg) { p in p.removeValue(forKey: "capabilities") }
        }
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "CapEff:\t0000000000000000\n")
    }

    func testExecGetsItsProcessCapabilities() throws {
        let b = s.bundle("ex", args: ["sleep", "100"])
        XCTAssertEqual(s.create("ex", bundle: b).status, 0)
        XCTAssertEqual(s.moat(["start", "ex"]).status, 0)
        // Without --process: the container's process (the default spec's sets, no_new_privs).
        let same = s.moat(["exec", "ex", "sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"])
        XCTAssertEqual(same.stdout, "CapEff:\t0000000020000420\nNoNewPrivs:\t1\n", same.stderr)
        // process.json's own sets; none given means none.
        let pf = s.dir + "/process.json"
        try #"{"args": ["sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]}}"#
            .write(toFile: pf, atomically: true, encoding: .utf8)
        let own = s.moat(["exec", "--process", pf, "ex"])
        XCTAssertEqual(own.stdout, "CapEff:\t0000000000000021\nNoNewPrivs:\t0\n", own.stderr)
        try #"{"args": ["sh", "-c", "grep CapEff /proc/self/status"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}"#
            .write(toFile: pf, atomically: true, encoding: .utf8)
        let none = s.moat(["exec", "--process", pf, "ex"])
        XCTAssertEqual(none.stdout, "CapEff:\t0000000000000000\n", none.stderr)
        XCTAssertEqual(s.moat(["kill", "ex", "KILL"]).status, 0)
        XCTAssertTrue(s.waitForStatus("ex", "stopped"))
    }

    func testUIDAndGIDMaps() throws {
        let identity = run("idmap", "cat /proc/self/uid_map /proc/1/gid_map") { _ in }
        XCTAssertEqual(identity.status, 0, identity.stderr)
        XCTAssertEqual(identity.stdout, "         0          0 4294967295\n         0          0 4294967295\n")

        let mapped = run("map", "cat /proc/self/uid_map /proc/self/gid_map; id -u") { cfg in
            var l = cfg["linux"] as! [String: Any]
            var ns = l["namespaces"] as! [[String: Any]]
            ns.append(["type": "user"])
            l["namespaces"] = ns
            l["uidMappings"] = [["containerID": 0, "hostID": 100000, "size": 65536]]
            l["gidMappings"] = [["containerID": 0, "hostID": 200000, "size": 1000], ["containerID": 1000, "hostID": 300000, "size": 1]]
            cfg["linux"] = l
        }
        XCTAssertEqual(mapped.status, 0, mapped.stderr)
        XCTAssertEqual(mapped.stdout, """
                     0     100000      65536
                     0     200000       1000
                  1000     300000          1
            0

            """)
    }

    func testSysctlValuesAndWrites() throws {
        func withSysctl(_ values: [String: String], caps: [String]? = nil) -> (inout [String: Any]) -> Void {
            { cfg in
                var l = cfg["linux"] as! [String: Any]
                l["sysctl"] = values
                cfg["linux"] = l
                if let c = caps {
                    var p = cfg["process"] as! [String: Any]
                    p["capabilities"] = ["bounding": c, "effective": c, "permitted": c]
                    cfg["process"] = p
                }
            }
        }
        let read = run("sys", "cd /proc/sys; cat kernel/msgmax net/ipv4/ping_group_range net/ipv4/tcp_keepalive_time net/core/somaxconn kernel/hostname; echo 1 > kernel/msgmax || echo refused") {
            withSysctl(["kernel.msgmax": "4096", "net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.tcp_keepalive_time": "600"])(&$0)
        }
        XCTAssertEqual(read.status, 0, read.stderr)
        XCTAssertEqual(read.stdout, "4096\n0\t2147483647\n600\n4096\nmoat\nrefused\n")
        XCTAssertTrue(read.stderr.contains("Permission denied"), read.stderr)

        // CAP_SYS_ADMIN writes kernel.*, CAP_NET_ADMIN net.*; only the sandbox sees them.
        let hostMsgmax = (try? String(contentsOfFile: "/proc/sys/kernel/msgmax", encoding: .utf8)) ?? ""
        let write = run("sysw", "cd /proc/sys; echo 123 > kernel/msgmax; echo sandbox > kernel/hostname; hostname; cat kernel/msgmax; echo 7 > net/ipv4/tcp_fin_timeout || echo refused; echo many > kernel/msgmnb || echo invalid; cat kernel/msgmnb") {
            withSysctl(["kernel.msgmax": "4096"], caps: ["CAP_SYS_ADMIN"])(&$0)
        }
        XCTAssertEqual(write.status, 0, write.stderr)
        XCTAssertEqual(write.stdout, "sandbox\n123\nrefused\ninvalid\n16384\n")
        XCTAssertEqual((try? String(contentsOfFile: "/proc/sys/kernel/msgmax", encoding: .utf8)) ?? "", hostMsgmax)

        // Keys Moat cannot present, and read-only ones, fail create.
        for (key, id) in [("abi.vsyscall32", "bad1"), ("kernel.osrelease", "bad2")] {
            let b = s.bundle(id, args: ["true"], edit: withSysctl([key: "1"]))
            let o = s.create(id, bundle: b)
            XCTAssertNotEqual(o.status, 0, "\(key) was accepted")
            XCTAssertTrue(o.stderr.contains("sysctl \(key)"), o.stderr)
        }
    }
}
