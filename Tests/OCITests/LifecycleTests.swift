// Plain bundles through create/start/state/kill/delete, as an engine drives
// them, including the lifecycle errors and the exit codes runc gives (1 for
// each of: start twice, delete a running container, kill a stopped one).

import Foundation
import XCTest
@testable import OCI

final class LifecycleTests: XCTestCase {
    var s: OCIScratch!

    override func setUpWithError() throws {
        s = OCIScratch(moat: try requireSandbox())
    }

    override func tearDown() {
        s?.cleanUp()
        if let s { XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/" + (s.ids.first ?? "none"))) }
    }

    func testCreateStartKillDelete() throws {
        let b = s.bundle("b", args: ["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 1; done"])
        let pidFile = s.dir + "/init.pid"
        let c = s.create("c1", bundle: b, extra: ["--pid-file", pidFile])
        XCTAssertEqual(c.status, 0, c.stderr)
        let st = try JSON.parse(s.moat(["state", "c1"]).stdout)
        XCTAssertEqual(st["status"]?.stringValue, "created")
        XCTAssertEqual(st["id"]?.stringValue, "c1")
        XCTAssertEqual(st["bundle"]?.stringValue, URL(fileURLWithPath: b).resolvingSymlinksInPath().path)
        let pid = st["pid"]?.intValue ?? 0
        XCTAssertGreaterThan(pid, 0)
        XCTAssertEqual(try String(contentsOfFile: pidFile, encoding: .utf8), String(pid))
        XCTAssertEqual(kill(pid_t(pid), 0), 0, "the sandbox process is alive")

        XCTAssertEqual(s.moat(["start", "c1"]).status, 0)
        XCTAssertEqual(s.status("c1"), "running")

        let again = s.moat(["start", "c1"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("cannot start an already running container"), again.stderr)

        let del = s.moat(["delete", "c1"])
        XCTAssertEqual(del.status, 1)
        XCTAssertTrue(del.stderr.contains("cannot delete container c1 that is not stopped: running"), del.stderr)

        XCTAssertEqual(s.moat(["kill", "c1", "TERM"]).status, 0)
        XCTAssertTrue(s.waitForStatus("c1", "stopped"))

        let k = s.moat(["kill", "c1", "KILL"])
        XCTAssertEqual(k.status, 1)
        XCTAssertTrue(k.stderr.contains("container not running"), k.stderr)

        let start = s.moat(["start", "c1"])
        XCTAssertEqual(start.status, 1)
        XCTAssertTrue(start.stderr.contains("cannot start a container that has stopped"), start.stderr)

        XCTAssertEqual(s.moat(["delete", "c1"]).status, 0)
        let gone = s.moat(["state", "c1"])
        XCTAssertEqual(gone.status, 1)
        XCTAssertTrue(gone.stderr.contains("does not exist"), gone.stderr)
        XCTAssertEqual(s.moat(["delete", "c1"]).status, 1)
        XCTAssertEqual(s.moat(["delete", "--force", "c1"]).status, 0)
        XCTAssertNil(processStartTime(Int32(pid)), "the sandbox process is gone (or a zombie)")
    }

    func testDuplicateIDAndBadIDs() throws {
        let b = s.bundle("b", args: ["sleep", "100"])
        XCTAssertEqual(s.create("dup", bundle: b).status, 0)
        let second = s.create("dup", bundle: b)
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.contains("already exists"), second.stderr)
        XCTAssertEqual(s.moat(["state", "dup"]).status, 0, "the first container is untouched")
        XCTAssertEqual(s.moat(["create", "--bundle", b, "../x"]).status, 1)
        XCTAssertEqual(s.moat(["delete", "--force", "dup"]).status, 0)
    }

    func testRunForegroundExitStatusAndOutput() throws {
        let b = s.bundle("b", args: ["sh", "-c", "echo out; echo err >&2; exit 3"])
        s.ids.append("r1")
        let o = s.moat(["run", "--bundle", b, "r1"])
        XCTAssertEqual(o.status, 3)
        XCTAssertEqual(o.stdout, "out\n")
        XCTAssertEqual(o.stderr, "err\n")
        XCTAssertEqual(s.moat(["state", "r1"]).status, 1, "run removes the container")
    }

    func testKillCreatedContainerAndSignalNumbers() throws {
        let b = s.bundle("b", args: ["sleep", "100"])
        XCTAssertEqual(s.create("k1", bundle: b).status, 0)
        XCTAssertEqual(s.moat(["kill", "k1", "15"]).status, 0)
        XCTAssertTrue(s.waitForStatus("k1", "stopped"))
        XCTAssertEqual(s.moat(["kill", "k1", "NOTASIGNAL"]).status, 1)
        XCTAssertEqual(s.moat(["delete", "k1"]).status, 0)
    }

    func testKillAllSignalsEveryProcess() throws {
        // kill --all with a catchable signal goes through the Sentry's control
        // socket to every process; the container ends when they have.
        let b = s.bundle("b", args: ["sh", "-c", "trap 'echo init got TERM' TERM; sleep 100 & wait; wait"])
        XCTAssertEqual(s.create("kall", bundle: b).status, 0)
        XCTAssertEqual(s.moat(["start", "kall"]).status, 0)
        usleep(300_000)
        XCTAssertEqual(s.moat(["kill", "--all", "kall", "TERM"]).status, 0)
        XCTAssertTrue(s.waitForStatus("kall", "stopped"))
        XCTAssertEqual(s.moat(["delete", "kall"]).status, 0)
    }

    func testKillAllWithSIGKILL() throws {
        let b = s.bundle("b", args: ["sh", "-c", "sleep 100 & sleep 100"])
        XCTAssertEqual(s.create("ka", bundle: b).status, 0)
        XCTAssertEqual(s.moat(["start", "ka"]).status, 0)
        XCTAssertEqual(s.moat(["kill", "--all", "ka", "KILL"]).status, 0)
        XCTAssertTrue(s.waitForStatus("ka", "stopped"))
        XCTAssertEqual(s.moat(["delete", "ka"]).status, 0)
    }

    func testConfigErrorNamesPathInStderrAndJSONLog() throws {
        let b = s.bundle("bad", args: ["true"]) { cfg in
            var p = cfg["process"] as! [String: Any]
            p["user"] = ["uid": "root", "gid": 0]
            cfg["process"] = p
        }
        let log = s.dir + "/log.json"
        s.ids.append("bad")
        let o = s.moat(["create", "--bundle", b, "bad"], global: ["--log", log, "--log-format", "json"])
        XCTAssertEqual(o.status, 1)
        XCTAssertTrue(o.stderr.contains("config.json: process.user.uid: expected an unsigned integer"), o.stderr)
        let line = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        let j = try JSON.parse(line)
        XCTAssertEqual(j["level"]?.stringValue, "error")
        XCTAssertEqual(j["msg"]?.stringValue, "config.json: process.user.uid: expected an unsigned integer")
        XCTAssertNotNil(j["time"]?.stringValue)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/bad"), "no state left behind")
    }

    func testMissingCommandFailsCreate() throws {
        let b = s.bundle("b", args: ["/no/such/program"])
        let o = s.create("nc", bundle: b)
        XCTAssertEqual(o.status, 1)
        XCTAssertTrue(o.stderr.contains("no such file or directory"), o.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/nc"))
    }

    func testProcessConfigIsHonored() throws {
        let b = s.bundle("b", args: ["sh", "-c", "echo $(id -u):$(id -g):$(id -G); pwd; hostname; umask; ulimit -n; echo $FOO; cat /proc/kcore | wc -c"]) { cfg in
            var p = cfg["process"] as! [String: Any]
            p["user"] = ["uid": 1000, "gid": 1000, "umask": 0o027, "additionalGids": [10, 20]]
            p["cwd"] = "/tmp"
            p["env"] = ["PATH=/bin:/usr/bin", "FOO=bar"]
            p["rlimits"] = [["type": "RLIMIT_NOFILE", "soft": 77, "hard": 100]]
            cfg["process"] = p
            cfg["hostname"] = "oci-host"
        }
        s.ids.append("p1")
        let o = s.moat(["run", "--bundle", b, "p1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "1000:1000:1000 10 20\n/tmp\noci-host\n0027\n77\nbar\n0\n")
    }

    /// /proc/self/mountinfo lists the config's mounts in order with their type and
    /// source as configured (runtime-tools' runtimetest and `findmnt` read it); an
    /// mqueue mount is the sandbox's POSIX message queues, writable unless "ro".
    func testMountinfoShowsConfiguredMounts() throws {
        let b = s.bundle("b", args: ["sh", "-c", "cut -d' ' -f5- /proc/self/mountinfo"])
        s.ids.append("m1")
        let o = s.moat(["run", "--bundle", b, "m1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let lines = o.stdout.split(separator: "\n").map(String.init)
        // Each mount's own flags, from its options, as runc's mounts show them
        // (runc: "/dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755").
        let want = ["/proc rw,relatime - proc proc rw", "/dev rw,nosuid - tmpfs tmpfs rw",
                    "/dev/pts rw,nosuid,noexec,relatime - devpts devpts rw",
                    "/dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw",
                    "/dev/mqueue rw,nosuid,nodev,noexec,relatime - mqueue mqueue rw",
                    "/sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro"]
        XCTAssertEqual(lines.first?.hasPrefix("/ "), true, o.stdout)
        XCTAssertEqual(lines.filter { want.contains($0) }, want, o.stdout)
    }

    /// linux.namespaces on the host side: the Sentry gets new mount, uts, ipc, cgroup and
    /// network namespaces (loopback up), joins one given by path, and a path of the
    /// wrong type fails create.
    func testSandboxHostNamespacesFollowTheConfig() throws {
        let b = s.bundle("b", args: ["sleep", "30"]) { cfg in
            var l = cfg["linux"] as! [String: Any]
            l["namespaces"] = ["pid", "network", "ipc", "mount", "cgroup"].map { ["type": $0] } + [["type": "uts", "path": "/proc/\(getpid())/ns/uts"]]
            cfg["linux"] = l
        }
        XCTAssertEqual(s.create("n1", bundle: b, extra: []).status, 0)
        let pid = try JSON.parse(s.moat(["state", "n1"]).stdout)["pid"]?.intValue ?? 0
        func ns(_ p: String, _ n: String) -> String { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/ns/\(n)")) ?? "?" }
        for n in ["mnt", "ipc", "cgroup", "net", "pid"] { XCTAssertNotEqual(ns("\(pid)", n), ns("self", n), n) }
        XCTAssertEqual(ns("\(pid)", "uts"), ns("self", "uts"), "joined by path")
        XCTAssertEqual(s.moat(["start", "n1"]).status, 0)
        XCTAssertEqual(s.moat(["kill", "n1", "KILL"]).status, 0)

        let wrong = s.bundle("w", args: ["true"]) { cfg in
            var l = cfg["linux"] as! [String: Any]
            l["namespaces"] = [["type": "pid"], ["type": "ipc", "path": "/proc/self/ns/uts"]]
            cfg["linux"] = l
        }
        let w = s.create("n2", bundle: wrong)
        XCTAssertEqual(w.status, 1)
        XCTAssertTrue(w.stderr.contains("ipc namespace /proc/self/ns/uts: not a ipc namespace"), w.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/n2"))
    }

    func testLoopbackIsUpInANewNetworkNamespace() throws {
        let b = s.bundle("b", args: ["sh", "-c", "(nc -l -p 1234 &); sleep 0.5; echo lo-up | nc -w 1 127.0.0.1 1234; sleep 0.3"]) { cfg in
            cfg["mounts"] = (cfg["mounts"] as! [[String: Any]]) + [["destination": "/tmp", "type": "tmpfs", "source": "tmpfs"]]
        }
        s.ids.append("l1")
        let o = s.moat(["run", "--bundle", b, "l1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "lo-up\n")
    }

    /// /dev/pts can be listed (it failed with ENXIO): a pty opened through /dev/ptmx
    /// (a link to pts/ptmx under a devpts mount) shows up in it.
    func testDevPtsListsOpenPtys() throws {
        let b = s.bundle("b", args: ["sh", "-c", "readlink /dev/ptmx; exec 3<>/dev/ptmx; ls /dev/pts"])
        s.ids.append("pts")
        let o = s.moat(["run", "--bundle", b, "pts"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "pts/ptmx\n0\nptmx\n")
    }

    /// linux.devices: nodes with the configured type, numbers, mode and owner; one the
    /// Sentry emulates works, any other opens with ENXIO (no host device is exposed).
    func testConfiguredDeviceNodes() throws {
        let b = s.bundle("b", args: ["sh", "-c", "stat -c '%A %u %g %t:%T %n' /dev/n /dev/x1 /dev/x2 /dev/x3; echo ok > /dev/n && echo null-works; cat /dev/x1 2>&1 || true"]) { cfg in
            var l = cfg["linux"] as! [String: Any]
            l["devices"] = [["path": "/dev/x1", "type": "c", "major": 10, "minor": 666, "fileMode": 0o646, "uid": 7, "gid": 8],
                            ["path": "/dev/x2", "type": "b", "major": 8, "minor": 3, "fileMode": 0o600],
                            ["path": "/dev/x3", "type": "p", "fileMode": 0o644],
                            ["path": "/dev/n", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666]]
            cfg["linux"] = l
        }
        s.ids.append("dev")
        let o = s.moat(["run", "--bundle", b, "dev"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, """
            crw-rw-rw- 0 0 1:3 /dev/n
            crw-r--rw- 7 8 a:29a /dev/x1
            brw------- 0 0 8:3 /dev/x2
            prw-r--r-- 0 0 0:0 /dev/x3
            null-works
            cat: can't open '/dev/x1': No such device or address

            """)
    }

    func testBindMountsOfDirectoriesAndFiles() throws {
        let host = s.dir + "/hostdir"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try "from host\n".write(toFile: host + "/in.txt", atomically: true, encoding: .utf8)
        let file = s.dir + "/hosts-file"
        try "10.0.0.1 bound\n".write(toFile: file, atomically: true, encoding: .utf8)
        let b = s.bundle("b", args: ["sh", "-c", "cat /work/in.txt; echo written > /work/out.txt; cat /etc/hosts; cat /tmp/ro/in.txt; echo x > /tmp/ro/y 2>/dev/null || echo ro refused"]) { cfg in
            var mounts = cfg["mounts"] as! [[String: Any]]
            mounts.append(["destination": "/work", "type": "bind", "source": host, "options": ["rbind", "rw"]])
            mounts.append(["destination": "/etc/hosts", "type": "bind", "source": file, "options": ["bind", "ro"]])
            mounts.append(["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]])
            mounts.append(["destination": "/tmp/ro", "type": "bind", "source": host, "options": ["bind", "ro"]])
            cfg["mounts"] = mounts
            var root = cfg["root"] as! [String: Any]
            root["readonly"] = false
            cfg["root"] = root
            cfg["annotations"] = ["dev.moat.overlay": "true"]
        }
        s.ids.append("bind")
        let o = s.moat(["run", "--bundle", b, "bind"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "from host\n10.0.0.1 bound\nfrom host\nro refused\n")
        XCTAssertEqual(try String(contentsOfFile: host + "/out.txt", encoding: .utf8), "written\n")
    }

    /// Engines bind several files of one directory (hosts, hostname, resolv.conf) and may
    /// bind a directory twice: mounts of one source share its Gofer, and every one is made.
    func testBindMountsSharingASourceAreAllMade() throws {
        let host = s.dir + "/engine"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try "10.0.0.2 h\n".write(toFile: host + "/hosts", atomically: true, encoding: .utf8)
        try "named\n".write(toFile: host + "/hostname", atomically: true, encoding: .utf8)
        let b = s.bundle("b", args: ["sh", "-c", "cat /etc/hosts /etc/hostname /mnt/a/hostname /mnt/b/hosts; grep -c ' /mnt/[ab] ' /proc/self/mountinfo"]) { cfg in
            var mounts = cfg["mounts"] as! [[String: Any]]
            mounts.append(["destination": "/etc/hosts", "type": "bind", "source": host + "/hosts", "options": ["bind", "ro"]])
            mounts.append(["destination": "/etc/hostname", "type": "bind", "source": host + "/hostname", "options": ["bind", "ro"]])
            mounts.append(["destination": "/mnt/a", "source": host, "options": ["bind", "ro"]])
            mounts.append(["destination": "/mnt/b", "source": host, "options": ["rbind", "ro"]])
            cfg["mounts"] = mounts
            cfg["root"] = ["path": OCITestEnv.rootfs, "readonly": false]
            cfg["annotations"] = ["dev.moat.overlay": "true"]
        }
        s.ids.append("shared")
        let o = s.moat(["run", "--bundle", b, "shared"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "10.0.0.2 h\nnamed\nnamed\n10.0.0.2 h\n2\n")
    }

    func testExecIntoRunningContainer() throws {
        let b = s.bundle("b", args: ["sleep", "100"])
        XCTAssertEqual(s.create("e1", bundle: b).status, 0)
        XCTAssertEqual(s.moat(["start", "e1"]).status, 0)
        let o = s.moat(["exec", "--env", "X=1", "--cwd", "/etc", "e1", "sh", "-c", "echo $X $(pwd); exit 4"])
        XCTAssertEqual(o.status, 4, o.stderr)
        XCTAssertEqual(o.stdout, "1 /etc\n")
        // The process sees init (pid 1) in the same pid namespace.
        let ps = s.moat(["exec", "e1", "cat", "/proc/1/cmdline"])
        XCTAssertEqual(ps.stdout, "sleep\u{0}100\u{0}")
        // --process FILE, as containerd's shim passes it.
        let pf = s.dir + "/process.json"
        try #"{"args": ["sh", "-c", "echo from file; exit 2"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}"#
            .write(toFile: pf, atomically: true, encoding: .utf8)
        let f = s.moat(["exec", "--process", pf, "e1"])
        XCTAssertEqual(f.status, 2)
        XCTAssertEqual(f.stdout, "from file\n")
        let missing = s.moat(["exec", "e1", "/no/such"])
        XCTAssertNotEqual(missing.status, 0)
        // --detach --pid-file: the pid is a host process that exits with the status.
        let pidFile = s.dir + "/exec.pid"
        let d = s.moat(["exec", "--detach", "--pid-file", pidFile, "e1", "sh", "-c", "sleep 0.3; exit 6"])
        XCTAssertEqual(d.status, 0, d.stderr)
        let epid = Int32(try String(contentsOfFile: pidFile, encoding: .utf8)) ?? 0
        XCTAssertGreaterThan(epid, 0)
        // Not our child (it is the detached waiter): poll for its end.
        let deadline = Date().addingTimeInterval(10)
        while processStartTime(epid) != nil && Date() < deadline { usleep(50_000) }
        XCTAssertNil(processStartTime(epid))

        XCTAssertEqual(s.moat(["kill", "e1", "KILL"]).status, 0)
        XCTAssertTrue(s.waitForStatus("e1", "stopped"))
        let late = s.moat(["exec", "e1", "true"])
        XCTAssertEqual(late.status, 1)
        XCTAssertEqual(s.moat(["delete", "e1"]).status, 0)
    }

    func testHooksGetStateAndFailuresStopCreate() throws {
        let out = s.dir + "/hook.out"
        let b = s.bundle("b", args: ["true"]) { cfg in
            cfg["hooks"] = [
                "createRuntime": [["path": "/bin/sh", "args": ["sh", "-c", "cat > \(out).create"]]],
                "poststart": [["path": "/bin/sh", "args": ["sh", "-c", "cat > \(out).poststart"]]],
                "poststop": [["path": "/bin/sh", "args": ["sh", "-c", "cat > \(out).poststop; echo $HOOKVAR >> \(out).poststop"], "env": ["HOOKVAR=hv"]]],
            ]
        }
        XCTAssertEqual(s.create("h1", bundle: b).status, 0)
        let created = try JSON.parse(String(contentsOfFile: out + ".create", encoding: .utf8))
        XCTAssertEqual(created["id"]?.stringValue, "h1")
        XCTAssertEqual(created["status"]?.stringValue, "creating")
        XCTAssertGreaterThan(created["pid"]?.intValue ?? 0, 0)
        XCTAssertEqual(s.moat(["start", "h1"]).status, 0)
        XCTAssertEqual(try JSON.parse(String(contentsOfFile: out + ".poststart", encoding: .utf8))["status"]?.stringValue, "running")
        XCTAssertTrue(s.waitForStatus("h1", "stopped"))
        XCTAssertEqual(s.moat(["delete", "h1"]).status, 0)
        let post = try String(contentsOfFile: out + ".poststop", encoding: .utf8)
        XCTAssertTrue(post.hasSuffix("hv\n"), post)

        let failing = s.bundle("f", args: ["true"]) { cfg in
            cfg["hooks"] = ["createRuntime": [["path": "/bin/sh", "args": ["sh", "-c", "exit 9"]]]]
        }
        let f = s.create("h2", bundle: failing)
        XCTAssertEqual(f.status, 1)
        XCTAssertTrue(f.stderr.contains("createRuntime hook #0 (/bin/sh): exit status 9"), f.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/h2"))

        let slow = s.bundle("t", args: ["true"]) { cfg in
            cfg["hooks"] = ["createContainer": [["path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1]]]
        }
        let t = s.create("h3", bundle: slow)
        XCTAssertEqual(t.status, 1)
        XCTAssertTrue(t.stderr.contains("timed out"), t.stderr)
    }

    /// prestart runs at create, before createRuntime; its failure fails create and
    /// leaves nothing. A failing poststart or poststop hook is a warning: the hooks
    /// after it still run (runtime.md lifecycle steps 3, 9, 13).
    func testPrestartAtCreateAndFailedPostHooksDoNotStopTheRest() throws {
        let out = s.dir + "/order.out"
        func hook(_ word: String) -> [String: Any] { ["path": "/bin/sh", "args": ["sh", "-c", "echo \(word) >> \(out)"]] }
        let fail: [String: Any] = ["path": "/bin/false", "args": ["false"]]
        let b = s.bundle("b", args: ["true"]) { cfg in
            cfg["hooks"] = [
                "prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")],
                "poststart": [fail, hook("poststart")], "poststop": [fail, hook("poststop")],
            ]
        }
        XCTAssertEqual(s.create("p1", bundle: b).status, 0)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "prestart\ncreateRuntime\n")
        let st = s.moat(["start", "p1"])
        XCTAssertEqual(st.status, 0, st.stderr)
        XCTAssertTrue(st.stderr.contains("poststart hook #0 (/bin/false): exit status 1"), st.stderr)
        XCTAssertTrue(s.waitForStatus("p1", "stopped"))
        let del = s.moat(["delete", "p1"])
        XCTAssertEqual(del.status, 0, del.stderr)
        XCTAssertTrue(del.stderr.contains("poststop hook #0 (/bin/false): exit status 1"), del.stderr)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "prestart\ncreateRuntime\npoststart\npoststop\n")

        let failing = s.bundle("f", args: ["true"]) { cfg in
            cfg["hooks"] = ["prestart": [fail], "createRuntime": [hook("never")]]
        }
        let f = s.create("p2", bundle: failing)
        XCTAssertEqual(f.status, 1)
        XCTAssertTrue(f.stderr.contains("prestart hook #0 (/bin/false): exit status 1"), f.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/p2"))
        XCTAssertFalse(try String(contentsOfFile: out, encoding: .utf8).contains("never"))
    }

    func testConcurrentContainersAndList() throws {
        let b = s.bundle("b", args: ["sleep", "100"])
        let ids = (0..<4).map { "cc\($0)" }
        s.ids += ids
        let g = DispatchGroup()
        var results = [Int32](repeating: -1, count: ids.count)
        let lock = NSLock()
        for (i, id) in ids.enumerated() {
            g.enter()
            DispatchQueue.global().async {
                let o = runProgram(self.s.moat, ["--root", self.s.root, "create", "--bundle", b, id])
                lock.lock(); results[i] = o.status; lock.unlock()
                g.leave()
            }
        }
        g.wait()
        XCTAssertEqual(results, [0, 0, 0, 0])
        let list = s.moat(["list", "--format", "json"])
        let arr = try JSON.parse(list.stdout).arrayValue ?? []
        XCTAssertEqual(Set(arr.compactMap { $0["id"]?.stringValue }), Set(ids))
        XCTAssertEqual(s.moat(["list", "-q"]).stdout, ids.map { $0 + "\n" }.joined())
        for id in ids { XCTAssertEqual(s.moat(["delete", id]).status, 0) }
    }

    func testCgroupLimitsAppliedAndRemoved() throws {
        let b = s.bundle("b", args: ["sleep", "100"]) { cfg in
            var l = cfg["linux"] as! [String: Any]
            l["cgroupsPath"] = "/moat-test/cg\(getpid())"
            l["resources"] = ["memory": ["limit": 512 * 1024 * 1024], "pids": ["limit": 64], "cpu": ["shares": 512]]
            cfg["linux"] = l
        }
        XCTAssertEqual(s.create("cg", bundle: b).status, 0)
        let dirs = Cgroups.isV2 ? ["/sys/fs/cgroup/moat-test/cg\(getpid())"]
            : ["memory", "pids", "cpu"].map { "/sys/fs/cgroup/\($0)/moat-test/cg\(getpid())" }
        if Cgroups.isV2 {
            XCTAssertEqual(try String(contentsOfFile: dirs[0] + "/pids.max", encoding: .utf8), "64\n")
        } else {
            XCTAssertEqual(try String(contentsOfFile: dirs[0] + "/memory.limit_in_bytes", encoding: .utf8), "536870912\n")
            XCTAssertEqual(try String(contentsOfFile: dirs[1] + "/pids.max", encoding: .utf8), "64\n")
            XCTAssertEqual(try String(contentsOfFile: dirs[2] + "/cpu.shares", encoding: .utf8), "512\n")
        }
        let procs = try String(contentsOfFile: dirs[0] + "/cgroup.procs", encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThanOrEqual(procs.count, 3, "Sentry, Gofer and a stub are inside")
        XCTAssertFalse(procs.contains { $0 == String(getpid()) })
        let upd = s.moat(["update", "--pids-limit", "32", "cg"])
        XCTAssertEqual(upd.status, 0, upd.stderr)
        XCTAssertEqual(try String(contentsOfFile: (Cgroups.isV2 ? dirs[0] : dirs[1]) + "/pids.max", encoding: .utf8), "32\n")
        let stats = s.moat(["events", "--stats", "cg"])
        XCTAssertEqual(try JSON.parse(stats.stdout)["type"]?.stringValue, "stats")
        XCTAssertEqual(s.moat(["delete", "--force", "cg"]).status, 0)
        for d in dirs { XCTAssertFalse(FileManager.default.fileExists(atPath: d), d) }
        for c in ["memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer"] { rmdir("/sys/fs/cgroup/\(c)/moat-test") }
        rmdir("/sys/fs/cgroup/moat-test")
    }

    /// cgroup v1: cpuset (cpus, mems; each new level inherits its parent's so processes
    /// can join), memory swappiness, the OOM killer switch and device rules.
    func testCgroupV1CpusetAndMemoryKnobs() throws {
        if Cgroups.isV2 || access("/sys/fs/cgroup/cpuset", F_OK) != 0 { throw XCTSkip("needs cgroup v1 with cpuset") }
        let rel = "/moat-test-cs/cg\(getpid())"
        let b = s.bundle("b", args: ["sleep", "100"]) { cfg in
            var l = cfg["linux"] as! [String: Any]
            l["cgroupsPath"] = rel
            l["resources"] = ["cpu": ["cpus": "0", "mems": "0"], "memory": ["swappiness": 10, "disableOOMKiller": true],
                              "devices": [["allow": false, "access": "rwm"], ["allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"]]]
            cfg["linux"] = l
        }
        XCTAssertEqual(s.create("cs", bundle: b).status, 0)
        func read(_ c: String, _ f: String) -> String? { try? String(contentsOfFile: "/sys/fs/cgroup/\(c)\(rel)/\(f)", encoding: .utf8) }
        XCTAssertEqual(read("cpuset", "cpuset.cpus"), "0\n")
        XCTAssertEqual(read("cpuset", "cpuset.mems"), "0\n")
        XCTAssertGreaterThanOrEqual(read("cpuset", "cgroup.procs")?.split(separator: "\n").count ?? 0, 3)
        XCTAssertEqual(read("memory", "memory.swappiness"), "10\n")
        XCTAssertTrue(read("memory", "memory.oom_control")?.hasPrefix("oom_kill_disable 1") ?? false)
        // The config's rules in order, then what the sandbox's own processes open.
        let devices = read("devices", "devices.list") ?? ""
        XCTAssertTrue(devices.hasPrefix("c 10:229 rwm\nc 1:3 rwm\n"), devices)
        XCTAssertTrue(s.waitForStatus("cs", "created"))
        XCTAssertEqual(s.moat(["delete", "--force", "cs"]).status, 0)
        XCTAssertNil(read("cpuset", "cpuset.cpus"))
        for c in ["memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer"] { rmdir("/sys/fs/cgroup/\(c)/moat-test-cs") }
    }

    /// resources.network (v1 net_cls): applied when the host has the controller, else
    /// create fails (as runc's does) instead of dropping it; nothing is left behind.
    func testNetworkClassIDIsAppliedOrRefused() throws {
        if Cgroups.isV2 { throw XCTSkip("net_cls is cgroup v1") }
        let rel = "/moat-test-net/cg\(getpid())"
        let b = s.bundle("b", args: ["sleep", "100"]) { cfg in
            var l = cfg["linux"] as! [String: Any]
            l["cgroupsPath"] = rel
            l["resources"] = ["network": ["classID": 1048577]]
            cfg["linux"] = l
        }
        let c = s.create("net", bundle: b)
        if access("/sys/fs/cgroup/net_cls", F_OK) == 0 {
            XCTAssertEqual(c.status, 0, c.stderr)
            XCTAssertEqual(try String(contentsOfFile: "/sys/fs/cgroup/net_cls\(rel)/net_cls.classid", encoding: .utf8), "1048577\n")
            XCTAssertEqual(s.moat(["delete", "--force", "net"]).status, 0)
        } else {
            XCTAssertEqual(c.status, 1)
            XCTAssertTrue(c.stderr.contains("cannot set net_cls.classid"), c.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids\(rel)"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/net"))
        for c in ["memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "net_cls"] { rmdir("/sys/fs/cgroup/\(c)/moat-test-net") }
    }

    /// A relative cgroupsPath lives under /moat; delete removes the levels create made.
    func testRelativeCgroupsPathLeavesNothingBehind() throws {
        let rel = "moat-rel-\(getpid())/a/b"
        let b = s.bundle("b", args: ["true"]) { cfg in
            var l = cfg["linux"] as! [String: Any]
            l["cgroupsPath"] = rel
            cfg["linux"] = l
        }
        XCTAssertEqual(s.create("rel", bundle: b).status, 0)
        let top = (Cgroups.isV2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/pids") + "/moat/moat-rel-\(getpid())"
        XCTAssertTrue(FileManager.default.fileExists(atPath: top + "/a/b"))
        XCTAssertEqual(s.moat(["delete", "--force", "rel"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: top), "\(top) is left behind")
    }

    func testPauseResume() throws {
        let b = s.bundle("b", args: ["sleep", "100"])
        XCTAssertEqual(s.create("pz", bundle: b).status, 0)
        XCTAssertEqual(s.moat(["start", "pz"]).status, 0)
        let p = s.moat(["pause", "pz"])
        if p.status != 0 && p.stderr.contains("freezer") { throw XCTSkip("no freezer controller") }
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(s.status("pz"), "paused")
        XCTAssertEqual(s.moat(["resume", "pz"]).status, 0)
        XCTAssertEqual(s.status("pz"), "running")
        XCTAssertEqual(s.moat(["delete", "--force", "pz"]).status, 0)
    }

    func testSpecAndFeatures() throws {
        let d = s.dir + "/specdir"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertEqual(s.moat(["spec", "--bundle", d]).status, 0)
        _ = try Spec.decode(String(contentsOfFile: d + "/config.json", encoding: .utf8))
        XCTAssertEqual(s.moat(["spec", "--bundle", d]).status, 1, "spec does not overwrite")
        let f = try JSON.parse(s.moat(["features"]).stdout)
        XCTAssertEqual(f["ociVersionMin"]?.stringValue, "1.0.0")
        XCTAssertNotNil(f["linux"]?["namespaces"])
    }
}
