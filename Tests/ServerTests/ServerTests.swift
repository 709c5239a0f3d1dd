// `moat server`: the one-machine cluster from one command. The stock kubectl, with the
// kubeconfig the server wrote and nothing else, creates a Deployment whose pods reach
// Running in Moat sandboxes, deletes it, and SIGTERM stops every component and pod
// (no process, mount or socket of the server left). Needs root and kubectl: skipped
// without them, failed under CI=true.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The eviction thresholds of the nodes these tests start, unless a test is about eviction:
/// memory only. kubelet's default disk thresholds (imagefs.available<15%, nodefs.available<10%)
/// would make a test's outcome depend on how full the machine's shared disk is: below them a
/// node reports DiskPressure and refuses new pods.
let testEvictionHard = "memory.available<100Mi"

final class MoatServerTests: XCTestCase {
    var dir = ""
    var server: Process?

    static var repo: String {
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { u.deleteLastPathComponent() }
        return u.path
    }
    var data: String { dir + "/data" }
    /// The network namespace (a path) kubectl runs in, when the server runs in one (ThreeNodeTests).
    var kubectlNetns: String? = nil
    /// A loopback address of the test's own for the cluster DNS (port 53).
    let dnsAddress = "127.77.\(getpid() % 250).10"

    func require(_ ok: Bool, _ what: String) throws {
        if ok { return }
        if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("missing prerequisite under CI: \(what)"); throw XCTSkip(what) }
        throw XCTSkip("missing prerequisite: \(what)")
    }

    override func setUp() async throws {
        try require(geteuid() == 0, "root")
        try require(FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl"), "kubectl (/usr/bin/kubectl; .ci/setup installs it)")
        try require(FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl (.ci/setup installs it)")
        try require(FileManager.default.fileExists(atPath: Self.repo + "/.cache/rootfs/busybox/bin/busybox"), "the busybox rootfs (bash rootfs/busybox.sh)")
        try require(FileManager.default.isExecutableFile(atPath: Self.repo + "/.build/debug/moat"), "the moat binary (swift build)")
        dir = "/tmp/moat-srv-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() async throws {
        if let s = server, s.isRunning {
            s.terminate()
            let deadline = Date().addingTimeInterval(120)
            while s.isRunning && Date() < deadline { usleep(50_000) }
            if s.isRunning { kill(s.processIdentifier, SIGKILL) }
        }
        // Whatever a failure left: processes that name the test's directory.
        for pid in processes(mentioning: dir) { kill(pid, SIGKILL) }
        for pid in sentryPIDs() { kill(pid, SIGKILL) }
        if (testRun?.totalFailureCount ?? 0) > 0 {
            print("--- server.log\n" + String(((try? String(contentsOfFile: dir + "/server.log", encoding: .utf8)) ?? "").suffix(3000)))
            for f in ["controlplane", "cri", "node"] {
                print("--- \(f).log\n" + String(((try? String(contentsOfFile: data + "/logs/\(f).log", encoding: .utf8)) ?? "").suffix(3000)))
            }
        }
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    func freePort() -> Int {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(s) }
        var a = sockaddr_in(); a.sin_family = sa_family_t(AF_INET); a.sin_addr.s_addr = UInt32(0x7f000001).bigEndian
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    func startServer(port: Int, images: [String] = [], extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.repo + "/.build/debug/moat")
        p.arguments = ["server", "--data-dir", data, "--listen", "127.0.0.1:\(port)", "--node-name", "s1", "--cluster-dns", dnsAddress,
                       "--eviction-hard", testEvictionHard,
                       "--rootfs-image", "busybox=" + Self.repo + "/.cache/rootfs/busybox"] + images.flatMap { ["--rootfs-image", $0] } + extra
        FileManager.default.createFile(atPath: dir + "/server.log", contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/server.log"))
        h.seekToEndOfFile()
        p.standardOutput = h; p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        server = p
        return p
    }

    /// kubectl with one of the server's kubeconfigs only (no environment, no home directory config).
    func kubectl(_ args: [String], as kubeconfig: String = "kubeconfig") throws -> (code: Int32, out: String) {
        let a = ["--kubeconfig", data + "/" + kubeconfig, "--request-timeout", "20s"] + args
        if let ns = kubectlNetns { return try run("/usr/bin/nsenter", ["--net=" + ns, "--", "/usr/bin/kubectl"] + a) }
        return try run("/usr/bin/kubectl", a)
    }

    /// `kubectl create KIND ...` as JSON through `kubectl apply` (ProtobufCreateTests covers the
    /// protobuf that kubectl's typed create sends).
    func create(_ args: [String], as kubeconfig: String = "kubeconfig") throws -> (code: Int32, out: String) {
        let made = try kubectl(["create"] + args.prefix(while: { $0 != "--" }) + ["--dry-run=client", "-o", "json"] + args.drop(while: { $0 != "--" }), as: kubeconfig)
        guard made.code == 0 else { return made }
        try made.out.write(toFile: dir + "/made.json", atomically: true, encoding: .utf8)
        return try kubectl(["apply", "-f", dir + "/made.json"], as: kubeconfig)
    }

    func run(_ tool: String, _ args: [String]) throws -> (code: Int32, out: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir; env["KUBECONFIG"] = nil
        p.environment = env
        let out = Pipe()
        p.standardOutput = out; p.standardError = out; p.standardInput = FileHandle.nullDevice
        try p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: d, as: UTF8.self))
    }

    func waitFor(_ what: String, timeout: Double = 60, _ ok: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try ok() { return }
            usleep(250_000)
        }
        XCTFail("timed out waiting for \(what)")
        throw XCTSkip("gave up")
    }

    func podPhases() throws -> [String] {
        let r = try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.status.phase} {end}"])
        return r.code == 0 ? r.out.split(separator: " ").map(String.init) : []
    }

    /// Pids of the pods' Sentries, from the runtime's state directory.
    func sentryPIDs() -> [pid_t] {
        let pods = data + "/run/pods"
        return ((try? FileManager.default.contentsOfDirectory(atPath: pods)) ?? []).flatMap { id -> [pid_t] in
            let t = (try? String(contentsOfFile: "\(pods)/\(id)/pod.state", encoding: .utf8)) ?? ""
            return t.split(separator: "\n").filter { $0.hasPrefix("pid=") }.compactMap { pid_t($0.dropFirst(4)) }
        }
    }

    /// Processes whose command line names `path` (the server's components do).
    func processes(mentioning path: String) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { e -> pid_t? in
            guard let pid = pid_t(e), pid != getpid(),
                  let cmd = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { return nil }
            return String(decoding: cmd, as: UTF8.self).contains(path) ? pid : nil
        }
    }

    /// Whether `pid` is one of the server's components (`moat controlplane`, `cri` or
    /// `node`), not a pod's own process: a pod's Sentry and its Gofer zygote name the
    /// data directory too.
    func isComponent(_ pid: pid_t) -> Bool {
        let argv = (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()).split(separator: 0)
        return argv.count > 1 && ["controlplane", "cri", "node"].contains(String(decoding: argv[1], as: UTF8.self))
    }

    func alive(_ pid: pid_t) -> Bool {
        if kill(pid, 0) != 0 { return false }
        // A zombie is gone for our purposes.
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !stat.contains(") Z ")
    }

    func startAndWaitReady(images: [String] = [], extra: [String] = []) throws -> (Process, Int) {
        let port = freePort()
        let p = try startServer(port: port, images: images, extra: extra)
        try waitFor("the kubeconfig", timeout: 90) { FileManager.default.fileExists(atPath: data + "/kubeconfig") }
        try waitFor("node s1 Ready", timeout: 60) { try kubectl(["get", "node", "s1"]).out.contains(" Ready ") }
        return (p, port)
    }

    /// The HTTP status of a GET with curl, trusting the server's CA; `extra` adds credentials.
    func status(_ port: Int, _ path: String, _ extra: [String] = []) throws -> String {
        try run("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", data + "/pki/ca.crt"] + extra
                + ["https://127.0.0.1:\(port)" + path]).out
    }

    func testServerRunsADeploymentAndStopsCleanly() throws {
        let (p, port) = try startAndWaitReady()
        XCTAssertEqual(try kubectl(["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"]).out, "https://127.0.0.1:\(port)")

        let made = try create(["deployment", "web", "--image=busybox", "--replicas=2", "--", "sleep", "3600"])
        XCTAssertEqual(made.code, 0, made.out)
        try waitFor("2 web pods Running", timeout: 90) { try podPhases() == ["Running", "Running"] }
        XCTAssertEqual(sentryPIDs().filter(alive).count, 2, "one Sentry per pod")
        // The node's pod CIDR, from the controller (--cluster-cidr 10.244.0.0/16), kept through the agent's heartbeats.
        try waitFor("node s1's pod CIDR", timeout: 30) { try kubectl(["get", "node", "s1", "-o", "jsonpath={.spec.podCIDR}"]).out == "10.244.0.0/24" }
        let deleted = try kubectl(["delete", "deployment", "web"])
        XCTAssertEqual(deleted.code, 0, deleted.out)
        try waitFor("the web pods gone", timeout: 90) { try podPhases().isEmpty }
        try waitFor("their Sentries gone", timeout: 30) { sentryPIDs().filter(alive).isEmpty }

        // Pods still running at SIGTERM are stopped with everything else.
        XCTAssertEqual(try create(["deployment", "web", "--image=busybox", "--", "sleep", "3600"]).code, 0)
        try waitFor("the new web pod Running", timeout: 90) { try podPhases() == ["Running"] }
        let sentries = sentryPIDs().filter(alive)
        XCTAssertEqual(sentries.count, 1)
        let components = processes(mentioning: data)
        XCTAssertGreaterThanOrEqual(components.count, 3, "controlplane, cri and node run as children")
        // The parent confined itself (Sandbox/DaemonConfinement.swift): in every thread,
        // no-new-privs, a seccomp filter, and a bounding set without what none of its
        // children keeps (its children ran pods above, so it kept what they need).
        for t in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p.processIdentifier)/task")) ?? [] {
            let status = (try? String(contentsOfFile: "/proc/\(p.processIdentifier)/task/\(t)/status", encoding: .utf8)) ?? ""
            var f: [String: String] = [:]
            for line in status.split(separator: "\n") {
                let kv = line.split(separator: ":", maxSplits: 1)
                if kv.count == 2 { f[String(kv[0])] = kv[1].trimmingCharacters(in: .whitespaces) }
            }
            XCTAssertEqual(f["NoNewPrivs"], "1", "server thread \(t): \(f)")
            XCTAssertEqual(f["Seccomp"], "2", "server thread \(t): \(f)")
            let bnd = UInt64(f["CapBnd"] ?? "", radix: 16) ?? UInt64.max
            XCTAssertEqual(f["CapEff"], f["CapBnd"], "server thread \(t)")
            // sys_module 16, sys_rawio 17, sys_boot 22, sys_time 25, mac_admin 33, syslog 34
            for bit in [16, 17, 22, 25, 33, 34] { XCTAssertEqual(bnd & (1 << UInt64(bit)), 0, "server thread \(t) keeps capability \(bit): CapBnd \(f["CapBnd"] ?? "?")") }
            XCTAssertNotEqual(bnd & (1 << 21), 0, "server thread \(t): its moat cri needs sys_admin")
        }

        p.terminate()
        try waitFor("moat server to exit", timeout: 120) { !p.isRunning }
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertEqual(sentries.filter(alive), [], "pod Sentries left running")
        XCTAssertEqual(components.filter(alive), [], "components left running")
        XCTAssertEqual(processes(mentioning: dir), [], "processes naming the data directory")
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        XCTAssertFalse(mounts.contains(dir), "mounts left under the data directory")
        XCTAssertTrue(try kubectl(["get", "nodes"]).code != 0, "the API server still answers")
    }

    /// A SIGKILLed server: its components notice, the agent stops the pods first, and then
    /// the runtime and the API server go too.
    func testComponentsAndPodsDieWithAKilledServer() throws {
        let (p, _) = try startAndWaitReady()
        XCTAssertEqual(try create(["deployment", "web", "--image=busybox", "--", "sleep", "3600"]).code, 0)
        try waitFor("the web pod Running", timeout: 90) { try podPhases() == ["Running"] }
        let sentries = sentryPIDs().filter(alive)
        XCTAssertEqual(sentries.count, 1)
        let components = processes(mentioning: data).filter { $0 != p.processIdentifier && isComponent($0) }
        XCTAssertEqual(components.count, 3, "controlplane, cri and node")
        kill(p.processIdentifier, SIGKILL)
        try waitFor("the components to exit", timeout: 90) { components.filter(alive).isEmpty }
        XCTAssertEqual(sentries.filter(alive), [], "pod Sentries left running")
        XCTAssertEqual(processes(mentioning: dir), [], "processes naming the data directory")
    }

    func testSecureByDefault() throws {
        var (p, port) = try startAndWaitReady()
        // Only HTTPS; no credentials or a wrong token: 401.
        XCTAssertEqual(try status(port, "/api/v1/namespaces/default/pods"), "401")
        XCTAssertEqual(try status(port, "/api/v1/namespaces/default/pods", ["-H", "Authorization: Bearer nope"]), "401")
        XCTAssertEqual(try status(port, "/api/v1/namespaces/default/pods", ["--cert", data + "/pki/admin.crt", "--key", data + "/pki/admin.key"]), "200")
        XCTAssertNotEqual(try run("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/api/v1/pods"]).out.contains("PodList"), true, "plain HTTP served")

        // A pod on s1 and one bound to another node.
        let pods = """
            apiVersion: v1
            kind: Pod
            metadata: {name: here}
            spec: {nodeName: s1, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: elsewhere}
            spec: {nodeName: s2, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}
            """
        try pods.write(toFile: dir + "/pods.yaml", atomically: true, encoding: .utf8)
        let applied = try kubectl(["apply", "-f", dir + "/pods.yaml"])
        XCTAssertEqual(applied.code, 0, applied.out)
        try waitFor("pod here Running", timeout: 90) { try kubectl(["get", "pod", "here", "-o", "jsonpath={.status.phase}"]).out == "Running" }

        // The node's identity: its own Node and pods, nothing of another node's.
        let node = "pki/node-s1.kubeconfig"
        XCTAssertEqual(try kubectl(["get", "node", "s1"], as: node).code, 0)
        XCTAssertEqual(try kubectl(["get", "pod", "here"], as: node).code, 0)
        for args in [["get", "pod", "elsewhere"], ["get", "node", "s2"], ["get", "pods"], ["delete", "pod", "elsewhere"],
                     ["get", "secrets"], ["apply", "-f", dir + "/pods.yaml"]] {
            let r = try kubectl(args, as: node)
            XCTAssertNotEqual(r.code, 0, "node identity: kubectl \(args)")
            XCTAssertTrue(r.out.contains("Forbidden"), "node identity: kubectl \(args): \(r.out)")
        }
        // Read-only: reads, but no create.
        XCTAssertEqual(try kubectl(["get", "pods"], as: "pki/viewer.kubeconfig").code, 0)
        let refused = try create(["deployment", "x", "--image=busybox"], as: "pki/viewer.kubeconfig")
        XCTAssertTrue(refused.code != 0 && refused.out.contains("Forbidden"), refused.out)

        // A restart reuses the CA and the certificates: the old kubeconfig still works.
        let ca = try Data(contentsOf: URL(fileURLWithPath: data + "/pki/ca.crt"))
        let config = try Data(contentsOf: URL(fileURLWithPath: data + "/kubeconfig"))
        p.terminate()
        try waitFor("moat server to exit", timeout: 120) { !p.isRunning }
        XCTAssertEqual(p.terminationStatus, 0)
        try FileManager.default.removeItem(atPath: data + "/kubeconfig")
        let again = try startServer(port: port)
        p = again
        try waitFor("the kubeconfig", timeout: 90) { FileManager.default.fileExists(atPath: data + "/kubeconfig") }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: data + "/pki/ca.crt")), ca, "the CA changed on restart")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: data + "/kubeconfig")), config, "the kubeconfig changed on restart")
        try waitFor("pod here Running again", timeout: 90) { try kubectl(["get", "pod", "here", "-o", "jsonpath={.status.phase}"]).out == "Running" }
    }

    /// One DNS query over UDP; returns the reply's rcode and its A records.
    func resolve(_ name: String) throws -> (rcode: Int, addresses: [String]) {
        var q: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") { q.append(UInt8(label.utf8.count)); q += Array(label.utf8) }
        q += [0, 0, 1, 0, 1]
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in(); a.sin_family = sa_family_t(AF_INET); a.sin_port = UInt16(53).bigEndian
        inet_pton(AF_INET, dnsAddress, &a.sin_addr)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, q, q.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buf, buf.count, 0)
        guard n >= 12, buf[0] == 0x12, buf[1] == 0x34 else { throw XCTSkip("no DNS reply from \(dnsAddress)") }
        let answers = Int(buf[6]) << 8 | Int(buf[7])
        var out: [String] = []
        // Answers follow the echoed question; each A record here is 16 bytes (name pointer).
        var i = 12 + q.count - 12
        for _ in 0..<answers where i + 16 <= n {
            out.append("\(buf[i + 12]).\(buf[i + 13]).\(buf[i + 14]).\(buf[i + 15])")
            i += 16
        }
        return (Int(buf[3] & 0x0F), out)
    }

    func testServicesGetClusterIPsAndDNSNames() throws {
        let (p, _) = try startAndWaitReady()
        defer { p.terminate() }
        XCTAssertEqual(try create(["deployment", "web", "--image=busybox", "--", "sleep", "3600"]).code, 0)
        let svc = try create(["service", "clusterip", "web", "--tcp=80:8080"])
        XCTAssertEqual(svc.code, 0, svc.out)
        let ip = try kubectl(["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]).out
        let octets = ip.split(separator: ".").compactMap { Int($0) }
        XCTAssertTrue(octets.count == 4 && octets[0] == 10 && (96...111).contains(octets[1]), "ClusterIP \(ip) outside 10.96.0.0/12")
        // The same address again is refused; another service gets another one.
        let dup = """
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dup"}, "spec": {"clusterIP": "\(ip)", "ports": [{"port": 80}]}}
            """
        try dup.write(toFile: dir + "/dup.json", atomically: true, encoding: .utf8)
        let refused = try kubectl(["apply", "-f", dir + "/dup.json"])
        XCTAssertNotEqual(refused.code, 0)
        XCTAssertTrue(refused.out.contains("already allocated"), refused.out)
        XCTAssertEqual(try create(["service", "clusterip", "other", "--tcp=81:81"]).code, 0)
        XCTAssertNotEqual(try kubectl(["get", "service", "other", "-o", "jsonpath={.spec.clusterIP}"]).out, ip)
        XCTAssertEqual(try kubectl(["get", "endpoints", "web"]).code, 0)

        // DNS: the service's name, a missing one, a name outside the cluster.
        try waitFor("web.default.svc.cluster.local in DNS", timeout: 30) { try resolve("web.default.svc.cluster.local").addresses == [ip] }
        XCTAssertEqual(try resolve("WEB.default.svc.cluster.local.").addresses, [ip])
        XCTAssertEqual(try resolve("nope.default.svc.cluster.local").rcode, 3)
        XCTAssertEqual(try resolve("example.com").rcode, 5)

        // A pod's resolv.conf names the cluster DNS and the namespace's search path.
        try waitFor("the web pod Running", timeout: 90) { try podPhases() == ["Running"] }
        let pod = try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]).out
        let conf = try kubectl(["exec", pod, "--", "cat", "/etc/resolv.conf"])
        XCTAssertTrue(conf.out.contains("nameserver 10.96.0.10"), "the kube-dns ClusterIP: " + conf.out)
        XCTAssertEqual(try kubectl(["get", "service", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"]).out, "10.96.0.10")
        XCTAssertTrue(conf.out.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), conf.out)
    }
}
