// Real engines from Debian driving `moat` as their OCI runtime:
//   containerd 1.6 + ctr through the runc v2 shim (`ctr run --runc-binary`),
//   podman with `--runtime` on a locally imported image (vfs storage,
//   cgroupfs manager).
// Each runs in private state under a scratch directory, and each scenario
// is compared with runc on the same rootfs when runc is installed. Tests
// skip, saying why, when an engine is absent (.ci/setup installs them).

import Foundation
import XCTest
@testable import OCI

final class ContainerdTests: XCTestCase {
    var dir = ""
    var containerd: Process?
    var ns = ""
    var moat = ""

    override func setUpWithError() throws {
        moat = try requireSandbox()
        guard OCITestEnv.which("containerd") != nil, OCITestEnv.which("ctr") != nil else {
            throw XCTSkip("containerd/ctr not installed (apt-get install containerd)")
        }
        dir = NSTemporaryDirectory() + "moat-ctr-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        ns = "moattest\(getpid())"
        let cfg = """
        version = 2
        root = "\(dir)/root"
        state = "\(dir)/state"
        [grpc]
          address = "\(dir)/c.sock"
        [ttrpc]
          address = "\(dir)/c.sock.ttrpc"
        [debug]
          address = ""
        [metrics]
          address = ""
        [plugins."io.containerd.grpc.v1.cri"]
          disable = true
        """
        try cfg.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: OCITestEnv.which("containerd")!)
        p.arguments = ["--config", dir + "/config.toml"]
        FileManager.default.createFile(atPath: dir + "/containerd.log", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: dir + "/containerd.log")
        p.standardError = FileHandle(forWritingAtPath: dir + "/containerd.log")
        try p.run()
        containerd = p
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if ctr(["version"]).status == 0 { break }
            usleep(100_000)
        }
        // A private copy of the rootfs: containerd's default mounts (/run)
        // create their mount points in it.
        XCTAssertEqual(runProgram("/bin/cp", ["-a", OCITestEnv.rootfs, dir + "/rootfs"]).status, 0)
    }

    override func tearDown() {
        if let p = containerd {
            for id in ["c1", "c2", "r1", "r2"] {
                ctr(["task", "kill", "-s", "KILL", id])
                ctr(["task", "rm", "-f", id])
                ctr(["container", "rm", id])
            }
            p.terminate()
            p.waitUntilExit()
        }
        if !ns.isEmpty {
            let shimRoot = "/run/containerd/runc/" + ns
            let left = (try? FileManager.default.contentsOfDirectory(atPath: shimRoot)) ?? []
            XCTAssertEqual(left, [], "containers left in \(shimRoot)")
            rmdir(shimRoot)
            // Where the shim and ctr put sockets and fifos; removed when
            // empty (another containerd on the host keeps its own).
            for d in ["/run/containerd/runc", "/run/containerd/s", "/run/containerd/fifo", "/run/containerd"] { rmdir(d) }
            // ctr makes the namespace a cgroup parent; moat removes only the container's own.
            for c in ["memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "blkio", "devices", "systemd", "unified", ""] {
                rmdir("/sys/fs/cgroup/\(c)/\(ns)".replacingOccurrences(of: "//", with: "/"))
            }
        }
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    @discardableResult
    func ctr(_ args: [String], timeout: Double = 60) -> Outcome {
        runProgram(OCITestEnv.which("ctr")!, ["-a", dir + "/c.sock", "-n", ns] + args, timeout: timeout)
    }

    func testRunExitStatusAndOutputMatchRunc() throws {
        let cmd = ["/bin/sh", "-c", "echo hello from ctr; echo to stderr >&2; exit 4"]
        let m = ctr(["run", "--rm", "--runc-binary", moat, "--rootfs", dir + "/rootfs", "c1"] + cmd)
        // (ctr --rootfs sets no PATH: the command is absolute for runc's sake.)
        XCTAssertEqual(m.status, 4, m.stderr)
        XCTAssertEqual(m.stdout, "hello from ctr\n")
        XCTAssertTrue(m.stderr.contains("to stderr"), m.stderr)
        if let runc = OCITestEnv.which("runc") {
            let r = ctr(["run", "--rm", "--runc-binary", runc, "--rootfs", dir + "/rootfs", "r1"] + cmd)
            XCTAssertEqual(r.status, m.status, "runc: \(r.stderr)")
            XCTAssertEqual(r.stdout, m.stdout)
        } else {
            print("runc not installed: no comparison")
        }
    }

    func testDetachedExecKillDelete() throws {
        let r = ctr(["run", "-d", "--runc-binary", moat, "--rootfs", dir + "/rootfs", "c2", "sleep", "100"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(ctr(["task", "ls"]).stdout.contains("RUNNING"))
        let e = ctr(["task", "exec", "--exec-id", "e1", "c2", "sh", "-c", "echo exec says hi; exit 3"])
        XCTAssertEqual(e.status, 3, e.stderr)
        XCTAssertEqual(e.stdout, "exec says hi\n")
        XCTAssertEqual(ctr(["task", "kill", "c2"]).status, 0)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline && !ctr(["task", "ls"]).stdout.contains("STOPPED") { usleep(100_000) }
        XCTAssertTrue(ctr(["task", "ls"]).stdout.contains("STOPPED"))
        XCTAssertEqual(ctr(["task", "rm", "c2"]).status, 0)
        XCTAssertEqual(ctr(["container", "rm", "c2"]).status, 0)
    }
}

final class PodmanTests: XCTestCase {
    var dir = ""
    var moat = ""

    override func setUpWithError() throws {
        moat = try requireSandbox()
        guard OCITestEnv.which("podman") != nil else { throw XCTSkip("podman not installed (apt-get install podman)") }
        dir = NSTemporaryDirectory() + "moat-podman-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertEqual(runProgram("/bin/tar", ["-C", OCITestEnv.rootfs, "-cf", dir + "/bb.tar", "."]).status, 0)
        let imp = podman(["import", dir + "/bb.tar", "localhost/moat-busybox:test"])
        XCTAssertEqual(imp.status, 0, imp.stderr)
    }

    override func tearDown() {
        if !dir.isEmpty {
            podman(["rm", "-af", "-t", "0"])
            podman(["rmi", "-af"])
            try? FileManager.default.removeItem(atPath: dir)
            // Defaults podman and runc use whatever the flags: removed only if empty.
            for d in ["/run/moat", "/run/runc", "/run/containers/networks", "/run/containers"] { rmdir(d) }
            // podman's cgroupfs manager leaves its parent cgroups (libpod_parent/conmon) in
            // every hierarchy: removed too, only if empty.
            for h in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
                for d in ["libpod_parent/conmon", "libpod_parent"] { rmdir("/sys/fs/cgroup/\(h)/\(d)") }
            }
            rmdir("/sys/fs/cgroup/libpod_parent/conmon"); rmdir("/sys/fs/cgroup/libpod_parent")
        }
    }

    @discardableResult
    func podman(_ args: [String], runtime: String? = nil, timeout: Double = 90) -> Outcome {
        var a = ["--root", dir + "/storage", "--runroot", dir + "/run", "--storage-driver", "vfs",
                 "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", dir + "/tmp"]
        if let r = runtime { a += ["--runtime", r] }
        return runProgram(OCITestEnv.which("podman")!, a + args, timeout: timeout)
    }

    func testRunRemovesAndReportsStatus() throws {
        let o = podman(["run", "--rm", "--network", "none", "moat-busybox:test", "sh", "-c", "echo hello from podman; exit 5"], runtime: moat)
        XCTAssertEqual(o.status, 5, o.stderr)
        XCTAssertEqual(o.stdout, "hello from podman\n")
        if let runc = OCITestEnv.which("runc") {
            let r = podman(["run", "--rm", "--network", "none", "moat-busybox:test", "sh", "-c", "echo hello from podman; exit 5"], runtime: runc)
            print("podman + runc on the same image: status \(r.status) (moat: \(o.status)); stderr: \(r.stderr.prefix(300))")
        }
    }

    func testTerminal() throws {
        // tty(1) names the terminal: ttyname() must find it in the sandbox
        // (it printed "not a tty" when /proc/self/fd/0 named a host pty).
        let o = podman(["run", "--rm", "-t", "--network", "none", "moat-busybox:test", "sh", "-c", "test -t 1 && echo is a tty; tty"], runtime: moat)
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "is a tty\r\n/dev/console\r\n")
    }

    func testDetachedExecStopRemove() throws {
        let d = podman(["run", "-d", "--name", "p1", "--network", "none", "moat-busybox:test", "sleep", "100"], runtime: moat)
        XCTAssertEqual(d.status, 0, d.stderr)
        let e = podman(["exec", "p1", "sh", "-c", "echo exec in podman; exit 6"], runtime: moat)
        XCTAssertEqual(e.status, 6, e.stderr + podman(["ps", "-a"]).stdout + podman(["logs", "p1"]).stderr)
        XCTAssertEqual(e.stdout, "exec in podman\n")
        XCTAssertEqual(podman(["stop", "-t", "2", "p1"], runtime: moat).status, 0)
        XCTAssertEqual(podman(["rm", "p1"], runtime: moat).status, 0)
        XCTAssertEqual(podman(["ps", "-aq"]).stdout, "")
    }
}
