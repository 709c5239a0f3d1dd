// The whole chain, with real components: the stock kubectl talks to `moat
// controlplane` (API server, controllers, scheduler); `moat node` runs the
// pods the scheduler binds to its Node through `moat cri`, one Sentry per
// pod. A Deployment's pods become Running and Ready with their output in
// CRI log files; kubectl logs, exec, cp, port-forward and attach reach them
// through the API server and the agent; a crashing pod backs off with its restart count and last
// exit code; deleting the pods removes their sandboxes; a stopped agent
// leaves its Node NotReady. Needs root and kubectl: skipped without them,
// failed under CI=true.
//
// With MOAT_NODE_CRI=unix:///PATH the agent talks to that CRI endpoint
// instead of a `moat cri` of its own: Tests/Conformance/node-containerd.sh
// runs this suite against containerd 1.6 + runc that way (the agent speaks
// standard CRI), images coming from its loopback registry.

import Foundation
import XCTest
@testable import NodeAgent
#if canImport(Glibc)
import Glibc
#endif

/// The eviction thresholds of the nodes these tests start, unless a test is about eviction:
/// memory only. kubelet's default disk thresholds (imagefs.available<15%, nodefs.available<10%)
/// would make a test's outcome depend on how full the machine's shared disk is: below them a
/// node reports DiskPressure and refuses new pods.
let testEvictionHard = "memory.available<100Mi"

final class NodeAgentTests: XCTestCase {
    var dir = ""
    var procs: [Process] = []
    var port = 0

    /// Another runtime's CRI endpoint (MOAT_NODE_CRI), else nil: `moat cri`.
    static let externalCRI = ProcessInfo.processInfo.environment["MOAT_NODE_CRI"].flatMap { $0.isEmpty ? nil : $0 }
    var criEndpoint: String { Self.externalCRI ?? "unix://\(dir)/cri.sock" }

    /// The external runtime's socket path (MOAT_NODE_CRI without unix://).
    static var externalSocket: String? { externalCRI.map { $0.hasPrefix("unix://") ? String($0.dropFirst(7)) : $0 } }

    /// The runtime's pod sandboxes: Sentry state directories of `moat cri`,
    /// or what the external runtime lists over CRI.
    func sandboxCount() async -> Int? {
        if let sock = Self.externalSocket { return try? await NodeAgentMain.sandboxIDs(criSocket: sock).count }
        return (try? FileManager.default.contentsOfDirectory(atPath: dir + "/state/pods"))?.count
    }

    func waitForSandboxes(_ n: Int, timeout: Double) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last: Int?
        while Date() < deadline {
            last = await sandboxCount()
            if last == n { return }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        XCTFail("timed out waiting for \(n) sandboxes (the runtime has \(last.map(String.init) ?? "?"))")
    }

    static var repo: String {
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { u.deleteLastPathComponent() }
        return u.path
    }

    func require(_ ok: Bool, _ what: String) throws {
        if ok { return }
        if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("missing prerequisite under CI: \(what)"); throw XCTSkip(what) }
        throw XCTSkip("missing prerequisite: \(what)")
    }

    override func setUp() async throws {
        try require(geteuid() == 0, "root")
        try require(FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl"), "kubectl (/usr/bin/kubectl; .ci/setup installs it)")
        try require(FileManager.default.fileExists(atPath: Self.repo + "/.cache/rootfs/busybox/bin/busybox"), "the busybox rootfs (bash rootfs/busybox.sh)")
        try require(FileManager.default.isExecutableFile(atPath: Self.repo + "/.build/debug/moat"), "the moat binary (swift build)")
        dir = NSTemporaryDirectory() + "moat-node-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        port = freePort()
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: moat, cluster: {server: "http://127.0.0.1:\(port)"}}]
            contexts: [{name: moat, context: {cluster: moat, user: test, namespace: default}}]
            users: [{name: test, user: {}}]
            current-context: moat
            """.write(toFile: dir + "/kubeconfig", atomically: true, encoding: .utf8)
    }

    override func tearDown() async throws {
        for p in procs.reversed() where p.isRunning { p.terminate() }
        for p in procs { let deadline = Date().addingTimeInterval(10); while p.isRunning && Date() < deadline { usleep(20_000) } }
        for p in procs where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        // The external runtime outlives the test: its pods must not.
        if let sock = Self.externalSocket { await NodeAgentMain.stopAllPods(criSocket: sock) }
        // Pod Sentries outlive the runtime by design; kill what a failure left.
        for pod in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/state/pods")) ?? [] {
            if let t = try? String(contentsOfFile: dir + "/state/pods/\(pod)/pod.state", encoding: .utf8) {
                for l in t.split(separator: "\n") where l.hasPrefix("pid=") { if let p = pid_t(l.dropFirst(4)) { kill(p, SIGKILL) } }
            }
        }
        if (testRun?.totalFailureCount ?? 0) > 0 {
            for f in ["cp.log", "cri.log", "node.log"] { print("--- \(f)\n" + String(((try? String(contentsOfFile: dir + "/" + f, encoding: .utf8)) ?? "").suffix(3000))) }
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

    @discardableResult
    func start(_ args: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.repo + "/.build/debug/moat")
        p.arguments = args
        FileManager.default.createFile(atPath: dir + "/" + log, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/" + log))
        p.standardOutput = h; p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        procs.append(p)
        return p
    }

    func kubectl(_ args: [String], stdin: String? = nil) throws -> (code: Int32, out: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/kubectl")
        p.arguments = ["--kubeconfig", dir + "/kubeconfig", "--request-timeout", "20s"] + args
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir; env["KUBECONFIG"] = nil
        p.environment = env
        let out = Pipe(), inp = Pipe()
        p.standardOutput = out; p.standardError = out; p.standardInput = inp
        try p.run()
        if let s = stdin { inp.fileHandleForWriting.write(Data(s.utf8)) }
        try? inp.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// One HTTP/1.0 GET to 127.0.0.1:port; the whole answer.
    static func httpGet(port: Int, path: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port)).bigEndian
        a.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { return "connect: \(String(cString: strerror(errno)))" }
        let req = Array("GET \(path) HTTP/1.0\r\n\r\n".utf8)
        _ = req.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var got: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            got += buf[0..<n]
        }
        return String(decoding: got, as: UTF8.self)
    }

    func pods() throws -> [[String: Any]] {
        let r = try kubectl(["get", "pods", "-o", "json"])
        guard r.code == 0, let j = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any] else { return [] }
        return j["items"] as? [[String: Any]] ?? []
    }

    func waitFor(_ what: String, timeout: Double = 60, _ ok: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try ok() { return }
            usleep(250_000)
        }
        XCTFail("timed out waiting for \(what)")
    }

    /// Control plane, CRI runtime and node agent n1, Ready; returns the agent's process.
    func startCluster(images: [String] = []) throws -> Process {
        try start(["controlplane", "--listen", "127.0.0.1:\(port)", "--data-dir", dir + "/cp"], log: "cp.log")
        if Self.externalCRI != nil {
            try waitFor("the API server", timeout: 30) { try kubectl(["get", "--raw", "/healthz"]).code == 0 }
            return try startAgent()
        }
        try start(["cri", "--listen", "unix://\(dir)/cri.sock", "--root", dir + "/root", "--state", dir + "/state",
                   "--rootfs-image", "busybox=" + Self.repo + "/.cache/rootfs/busybox"] + images.flatMap { ["--rootfs-image", $0] }, log: "cri.log")
        try waitFor("the API server and the CRI socket", timeout: 30) {
            guard FileManager.default.fileExists(atPath: dir + "/cri.sock") else { return false }
            return try kubectl(["get", "--raw", "/healthz"]).code == 0
        }
        return try startAgent()
    }

    func startAgent(log: String = "node.log", _ extra: [String] = []) throws -> Process {
        // Unless a test sets its own thresholds, only memory: kubelet's default disk thresholds
        // would make the outcome depend on how full this machine's disk is (TestSupport).
        let eviction = extra.contains("--eviction-hard") ? [] : ["--eviction-hard", testEvictionHard]
        let node = try start(["node", "--server", "http://127.0.0.1:\(port)", "--cri", criEndpoint,
                              "--name", "n1", "--log-directory", dir + "/logs", "--root", dir + "/node", "--port", "0"] + eviction + extra, log: log)
        try waitFor("node n1 Ready", timeout: 30) { try kubectl(["get", "node", "n1"]).out.contains(" Ready ") }
        return node
    }

    /// The cached Debian root file system with python3 (rootfs/debian-apps.sh builds it when missing).
    func debianRootfs() throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.repo + "/rootfs/debian-apps.sh"]
        let out = Pipe()
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let dir = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        try require(p.terminationStatus == 0 && FileManager.default.isExecutableFile(atPath: dir + "/usr/bin/python3"),
                    "the Debian rootfs with python3 (rootfs/debian-apps.sh)")
        return dir
    }

    /// The CRI log of a pod's container (first instance).
    func containerLog(_ pod: String, _ container: String, attempt: Int = 0) throws -> String {
        let r = try kubectl(["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"])
        return (try? String(contentsOfFile: dir + "/logs/default_\(pod)_\(r.out)/\(container)/\(attempt).log", encoding: .utf8)) ?? ""
    }

    func testKubectlToSchedulerToNodeAgentToCRIToSentry() async throws {
        let node = try startCluster()

        let deployment = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 2
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers:
                  - name: main
                    image: busybox
                    command: ["sh", "-c", "echo hello from $(hostname); exec httpd -f -p 8080"]
            """
        XCTAssertEqual(try kubectl(["apply", "-f", "-"], stdin: deployment).code, 0)
        try waitFor("2 pods Running and Ready") {
            let ps = try pods()
            return ps.count == 2 && ps.allSatisfy { p in
                let st = p["status"] as? [String: Any] ?? [:]
                let cs = (st["containerStatuses"] as? [[String: Any]])?.first
                return st["phase"] as? String == "Running" && cs?["ready"] as? Bool == true
            }
        }
        // Each pod's output is in its CRI log file, and it runs in its own sandbox.
        for p in try pods() {
            let meta = p["metadata"] as? [String: Any] ?? [:]
            let name = meta["name"] as? String ?? "", uid = meta["uid"] as? String ?? ""
            let log = dir + "/logs/default_\(name)_\(uid)/main/0.log"
            var text = ""
            try waitFor("the log of \(name)", timeout: 20) {
                text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                return text.contains("stdout F hello from \(name)")
            }
        }
        let sandboxes = await sandboxCount()
        XCTAssertEqual(sandboxes, 2)
        // The agent's endpoint token never leaves the API server.
        for args in [["get", "node", "n1", "-o", "yaml"], ["get", "nodes", "-o", "json"], ["get", "nodes", "--show-labels"]] {
            let r = try kubectl(args)
            XCTAssertEqual(r.code, 0, r.out)
            XCTAssertFalse(r.out.contains("proxy-token"), r.out)
        }
        // kubectl logs, through the API server to the agent.
        let first = (try pods().first?["metadata"] as? [String: Any])?["name"] as? String ?? ""
        let logs = try kubectl(["logs", first])
        XCTAssertEqual(logs.code, 0, logs.out)
        XCTAssertEqual(logs.out, "hello from \(first)\n")

        // kubectl exec over WebSocket, through the API server and the agent to the runtime's stream:
        // stdout, stderr, the exit status, and stdin with -i.
        let ex = try kubectl(["exec", first, "--", "sh", "-c", "echo out-$(hostname); echo err >&2; exit 3"])
        XCTAssertEqual(ex.code, 3, ex.out)
        XCTAssertTrue(ex.out.contains("out-\(first)\n") && ex.out.contains("err\n"), ex.out)
        let cat = try kubectl(["exec", "-i", first, "--", "sh", "-c", "tr a-z A-Z"], stdin: "piped through\n")
        XCTAssertEqual(cat.code, 0, cat.out)
        XCTAssertEqual(cat.out, "PIPED THROUGH\n")

        // kubectl cp (tar over exec), both ways.
        try "copied in\n".write(toFile: dir + "/to-pod", atomically: true, encoding: .utf8)
        let cpIn = try kubectl(["cp", dir + "/to-pod", "\(first):/tmp/in"])
        XCTAssertEqual(cpIn.code, 0, cpIn.out)
        let cpOut = try kubectl(["cp", "\(first):/tmp/in", dir + "/from-pod"])
        XCTAssertEqual(cpOut.code, 0, cpOut.out)
        XCTAssertEqual(try? String(contentsOfFile: dir + "/from-pod", encoding: .utf8), "copied in\n")
        // kubectl exec -it, with kubectl on a terminal (script(1) gives it one): the process inside
        // has a terminal too (the runtime's: a pseudo-terminal in the pod's Sentry for `moat cri`).
        let tty = Process()
        tty.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        tty.arguments = ["-qec", "/usr/bin/kubectl --kubeconfig \(dir)/kubeconfig exec -it \(first) -- sh -c '[ -t 0 ] && [ -t 1 ] && echo via-it-on-a-tty; exit 4'", "/dev/null"]
        let ttyOut = Pipe()
        tty.standardOutput = ttyOut; tty.standardError = ttyOut; tty.standardInput = Pipe()
        try tty.run()
        let ttyText = String(decoding: ttyOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        tty.waitUntilExit()
        XCTAssertTrue(ttyText.contains("via-it-on-a-tty"), ttyText)
        XCTAssertEqual(tty.terminationStatus, 4)

        // kubectl port-forward: SPDY tunnelled in a WebSocket to the API server, relayed to the
        // runtime's PortForward stream, which connects to the pod's localhost:8080 (httpd).
        let pf = Process()
        pf.executableURL = URL(fileURLWithPath: "/usr/bin/kubectl")
        pf.arguments = ["--kubeconfig", dir + "/kubeconfig", "port-forward", "--address", "127.0.0.1", "pod/" + first, ":8080"]
        var pfEnv = ProcessInfo.processInfo.environment
        pfEnv["HOME"] = dir; pfEnv["KUBECONFIG"] = nil
        pf.environment = pfEnv
        let pfOut = Pipe()
        pf.standardOutput = pfOut; pf.standardError = pfOut; pf.standardInput = Pipe()
        try pf.run()
        defer { if pf.isRunning { pf.terminate() }; pf.waitUntilExit() }
        var pfText = "", localPort = 0
        try waitFor("kubectl port-forward to listen", timeout: 30) {
            pfText += String(decoding: pfOut.fileHandleForReading.availableData, as: UTF8.self)
            if let r = pfText.range(of: "Forwarding from 127.0.0.1:"), let end = pfText[r.upperBound...].firstIndex(of: " ") {
                localPort = Int(pfText[r.upperBound..<end]) ?? 0
            }
            return localPort > 0 || !pf.isRunning
        }
        XCTAssertGreaterThan(localPort, 0, pfText)
        for _ in 0..<2 {  // two connections over the one session
            let page = try Self.httpGet(port: localPort, path: "/etc/hostname")
            XCTAssertTrue(page.hasPrefix("HTTP/1.") && page.contains(first), page)
        }
        pf.terminate()

        // kubectl attach -i: stdin into the container's stdin, its output back; the stream ends
        // when the container exits. stdinOnce: the client's end of input ends the container's
        // stdin and the attach stays for its output (without it, containerd ends the attach
        // when the client's stdin ends, as Docker does).
        let talker = """
            apiVersion: v1
            kind: Pod
            metadata: {name: talker}
            spec:
              restartPolicy: Never
              containers:
              - name: main
                image: busybox
                stdin: true
                stdinOnce: true
                command: ["sh", "-c", "read l; echo got-$l"]
            """
        XCTAssertEqual(try kubectl(["apply", "-f", "-"], stdin: talker).code, 0)
        try waitFor("talker Running") {
            let r = try kubectl(["get", "pod", "talker", "-o", "jsonpath={.status.phase}"])
            return r.out == "Running"
        }
        let att = try kubectl(["attach", "-i", "talker"], stdin: "hello-attach\n")
        XCTAssertTrue(att.out.contains("got-hello-attach"), att.out)
        XCTAssertEqual(try kubectl(["delete", "pod", "talker"]).code, 0)

        // kubectl logs -f streams until the container exits; --tail keeps the last lines.
        let counter = """
            apiVersion: v1
            kind: Pod
            metadata: {name: counter}
            spec:
              restartPolicy: Never
              containers:
              - {name: c, image: busybox, command: ["sh", "-c", "for i in 1 2 3 4; do echo line $i; sleep 1; done"]}
            """
        XCTAssertEqual(try kubectl(["apply", "-f", "-"], stdin: counter).code, 0)
        try waitFor("counter's first line", timeout: 30) { try containerLog("counter", "c").contains("line 1") }
        let followed = try kubectl(["logs", "-f", "counter"])
        XCTAssertEqual(followed.out, "line 1\nline 2\nline 3\nline 4\n")
        XCTAssertEqual(try kubectl(["logs", "--tail=2", "counter"]).out, "line 3\nline 4\n")
        XCTAssertEqual(try kubectl(["logs", "--limit-bytes=9", "counter"]).out, "line 1\nli")
        XCTAssertEqual(try kubectl(["logs", "--since=1h", "counter"]).out, "line 1\nline 2\nline 3\nline 4\n")
        XCTAssertEqual(try kubectl(["delete", "pod", "counter"]).code, 0)

        // A container that keeps failing backs off, with its count and last exit code.
        let crasher = """
            apiVersion: v1
            kind: Pod
            metadata: {name: crasher}
            spec:
              containers:
              - name: c
                image: busybox
                command: ["sh", "-c", "exit 3"]
            """
        XCTAssertEqual(try kubectl(["apply", "-f", "-"], stdin: crasher).code, 0)
        try waitFor("crasher to back off", timeout: 60) {
            let r = try kubectl(["get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].state.waiting.reason}"])
            let f = r.out.split(separator: " ")
            return f.count == 3 && (Int(f[0]) ?? 0) >= 1 && f[1] == "3" && f[2] == "CrashLoopBackOff"
        }

        // Deleting the pods removes their sandboxes.
        XCTAssertEqual(try kubectl(["delete", "deployment", "web"]).code, 0)
        XCTAssertEqual(try kubectl(["delete", "pod", "crasher"]).code, 0)
        try await waitForSandboxes(0, timeout: 60)
        // A stopped agent leaves its node NotReady.
        node.terminate()
        try waitFor("node n1 NotReady", timeout: 30) { try kubectl(["get", "node", "n1"]).out.contains("NotReady") }
    }

    /// A ConfigMap and a Secret reach a container as files (configMap, secret, projected volumes,
    /// with items and a subPath) and as environment (keyRefs, envFrom, $(VAR) expansion, fieldRef);
    /// emptyDir (disk and memory) and downwardAPI volumes are there; the node heartbeats through its Lease.
    func testConfigMapAndSecretAsFilesAndEnvironment() async throws {
        _ = try startCluster()
        try waitFor("the Lease of n1 in kube-node-lease", timeout: 30) {
            try kubectl(["get", "lease", "n1", "-n", "kube-node-lease", "-o", "jsonpath={.spec.holderIdentity}"]).out == "n1"
        }
        let objects = """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings}
            data: {greeting: hello-from-configmap, "app.conf": "mode=fast"}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: creds}
            stringData: {password: s3cr3t-value}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: configured, labels: {tier: backend}}
            spec:
              restartPolicy: Never
              volumes:
              - {name: cfg, configMap: {name: settings}}
              - {name: sec, secret: {secretName: creds, items: [{key: password, path: nested/pw}]}}
              - name: all
                projected: {sources: [{configMap: {name: settings, items: [{key: greeting, path: g}]}}, {secret: {name: creds}}]}
              - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
              - {name: scratch, emptyDir: {}}
              - {name: mem, emptyDir: {medium: Memory}}
              containers:
              - name: main
                image: busybox
                command: ["sh", "-c"]
                args:
                - |
                  echo "file-greeting=$(cat /etc/cfg/greeting)"
                  echo "file-conf=$(cat /etc/cfg/app.conf)"
                  echo "file-pw=$(cat /etc/sec/nested/pw)"
                  echo "projected=$(cat /etc/all/g),$(cat /etc/all/password)"
                  echo "conf-subpath=$(cat /conf)"
                  echo "labels=$(cat /etc/info/labels)"
                  echo "env-greeting=$GREETING env-pw=$PASSWORD env-from=$CFG_greeting expanded=$EXPANDED pod=$POD_NAME"
                  echo data > /scratch/f && echo data > /mem/f && echo "written=$(cat /scratch/f)$(cat /mem/f)"
                  echo $(GREETING) > /dev/null
                env:
                - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
                - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
                - {name: EXPANDED, value: "x-$(GREETING)-$(UNDEFINED)"}
                - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
                envFrom: [{prefix: CFG_, configMapRef: {name: settings}}]
                volumeMounts:
                - {name: cfg, mountPath: /etc/cfg}
                - {name: sec, mountPath: /etc/sec}
                - {name: all, mountPath: /etc/all}
                - {name: info, mountPath: /etc/info}
                - {name: cfg, mountPath: /conf, subPath: app.conf}
                - {name: scratch, mountPath: /scratch}
                - {name: mem, mountPath: /mem}
            """
        let r = try kubectl(["apply", "-f", "-"], stdin: objects)
        XCTAssertEqual(r.code, 0, r.out)
        try waitFor("the pod to succeed", timeout: 60) {
            try kubectl(["get", "pod", "configured", "-o", "jsonpath={.status.phase}"]).out == "Succeeded"
        }
        let log = try containerLog("configured", "main")
        for line in ["file-greeting=hello-from-configmap", "file-conf=mode=fast", "file-pw=s3cr3t-value",
                     "projected=hello-from-configmap,s3cr3t-value", "conf-subpath=mode=fast", #"labels=tier="backend""#,
                     "env-greeting=hello-from-configmap env-pw=s3cr3t-value env-from=hello-from-configmap expanded=x-hello-from-configmap-$(UNDEFINED) pod=configured",
                     "written=datadata"] {
            XCTAssertTrue(log.contains(line), "\(line) not in the log:\n\(log)")
        }
        // The API keeps a Secret's stringData as base64 data, and refuses paths that climb out of a volume.
        XCTAssertEqual(try kubectl(["get", "secret", "creds", "-o", "jsonpath={.data.password} {.stringData}"]).out,
                       Data("s3cr3t-value".utf8).base64EncodedString() + " ")
        let climbing = """
            apiVersion: v1
            kind: Pod
            metadata: {name: climbs}
            spec:
              volumes: [{name: cfg, configMap: {name: settings, items: [{key: greeting, path: ../../etc/x}]}}]
              containers: [{name: c, image: busybox, volumeMounts: [{name: cfg, mountPath: /x, subPath: ../..}, {name: none, mountPath: /y}]}]
            """
        let refused = try kubectl(["apply", "-f", "-"], stdin: climbing)
        XCTAssertNotEqual(refused.code, 0)
        for want in ["spec.volumes[0].configMap.items[0].path", "spec.containers[0].volumeMounts[0].subPath", "spec.containers[0].volumeMounts[1].name: Not found"] {
            XCTAssertTrue(refused.out.contains(want), "\(want) not in: \(refused.out)")
        }
        // A pod whose ConfigMap is missing waits with CreateContainerConfigError, and runs once it exists.
        let waiting = """
            apiVersion: v1
            kind: Pod
            metadata: {name: waits}
            spec:
              restartPolicy: Never
              containers:
              - {name: main, image: busybox, command: ["sh", "-c", "echo got=$V"], env: [{name: V, valueFrom: {configMapKeyRef: {name: later, key: k}}}]}
            """
        XCTAssertEqual(try kubectl(["apply", "-f", "-"], stdin: waiting).code, 0)
        try waitFor("CreateContainerConfigError", timeout: 30) {
            try kubectl(["get", "pod", "waits", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"]).out == "CreateContainerConfigError"
        }
        // (kubectl apply: `kubectl create configmap` sends protobuf, which the API server does not read.)
        let made = try kubectl(["apply", "-f", "-"], stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {k: now}\n")
        XCTAssertEqual(made.code, 0, made.out)
        try waitFor("the waiting pod to run", timeout: 30) { try containerLog("waits", "main").contains("got=now") }
        // A running pod sees its ConfigMap change.
        let watcher = """
            apiVersion: v1
            kind: Pod
            metadata: {name: watcher}
            spec:
              volumes: [{name: cfg, configMap: {name: settings}}]
              containers:
              - {name: w, image: busybox, command: ["sh", "-c", "while true; do echo seen=$(cat /cfg/greeting); sleep 0.5; done"], volumeMounts: [{name: cfg, mountPath: /cfg}]}
            """
        XCTAssertEqual(try kubectl(["apply", "-f", "-"], stdin: watcher).code, 0)
        try waitFor("the watcher to see the greeting", timeout: 30) { try containerLog("watcher", "w").contains("seen=hello-from-configmap") }
        let changed = try kubectl(["apply", "-f", "-"], stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {greeting: changed-greeting}\n")
        XCTAssertEqual(changed.code, 0, changed.out)
        try waitFor("the watcher to see the new greeting", timeout: 60) { try containerLog("watcher", "w").contains("seen=changed-greeting") }

        // Init containers run in order, each to success, before the containers; a failing one fails a Never pod.
        let initialized = """
            apiVersion: v1
            kind: Pod
            metadata: {name: initialized}
            spec:
              restartPolicy: Never
              volumes: [{name: work, emptyDir: {}}]
              initContainers:
              - {name: first, image: busybox, command: ["sh", "-c", "echo one > /work/f"], volumeMounts: [{name: work, mountPath: /work}]}
              - {name: second, image: busybox, command: ["sh", "-c", "echo two >> /work/f"], volumeMounts: [{name: work, mountPath: /work}]}
              containers:
              - {name: main, image: busybox, command: ["sh", "-c", "echo main-saw $(cat /work/f)"], volumeMounts: [{name: work, mountPath: /work}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: badinit}
            spec:
              restartPolicy: Never
              initContainers: [{name: fails, image: busybox, command: ["sh", "-c", "echo init-failing; exit 7"]}]
              containers: [{name: main, image: busybox, command: ["sh", "-c", "echo should not run"]}]
            """
        XCTAssertEqual(try kubectl(["apply", "-f", "-"], stdin: initialized).code, 0)
        try waitFor("the initialized pod to succeed", timeout: 60) {
            try kubectl(["get", "pod", "initialized", "-o", "jsonpath={.status.phase}"]).out == "Succeeded"
        }
        XCTAssertTrue(try containerLog("initialized", "main").contains("main-saw one two"))
        try waitFor("the pod with a failing init container to fail", timeout: 60) {
            try kubectl(["get", "pod", "badinit", "-o", "jsonpath={.status.phase} {.status.initContainerStatuses[0].state.terminated.exitCode}"]).out == "Failed 7"
        }
        XCTAssertEqual(try kubectl(["get", "pod", "badinit", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}"]).out, "PodInitializing")
        XCTAssertEqual(try kubectl(["logs", "badinit", "-c", "fails"]).out, "init-failing\n")
        let table = try kubectl(["get", "pod", "badinit", "initialized"]).out
        XCTAssertTrue(table.contains("Init:Error") && table.contains("Completed") == false && table.contains("Succeeded"), table)

        // Deleted pods leave no volume directories behind (tmpfs unmounted).
        XCTAssertEqual(try kubectl(["delete", "pod", "configured", "waits", "initialized", "badinit", "watcher", "--grace-period=1"]).code, 0)
        try waitFor("the pods' directories removed", timeout: 30) {
            ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/node/pods")) ?? []).isEmpty
        }
    }

    /// A failing liveness probe (exec) restarts the container and restartCount shows it; a readiness
    /// probe (httpGet, into the pod's network namespace) drives `ready` and the pod's Ready
    /// condition both ways; a tcpSocket startup probe gates them.
    func testProbes() async throws {
        _ = try startCluster()
        let pod = """
            apiVersion: v1
            kind: Pod
            metadata: {name: probed}
            spec:
              volumes: [{name: data, emptyDir: {}}]
              containers:
              - name: live
                image: busybox
                command: ["sh", "-c", "if [ -f /data/ran ]; then touch /tmp/alive; fi; touch /data/ran; exec sleep 1000"]
                volumeMounts: [{name: data, mountPath: /data}]
                livenessProbe: {exec: {command: [test, -f, /tmp/alive]}, periodSeconds: 1, failureThreshold: 2}
              - name: web
                image: busybox
                command: ["sh", "-c", "mkdir -p /www; (sleep 2; echo ok > /www/ready; sleep 6; rm /www/ready) & exec httpd -f -p 8080 -h /www"]
                ports: [{name: http, containerPort: 8080}]
                startupProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
                readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 1, failureThreshold: 1}
            """
        let r = try kubectl(["apply", "-f", "-"], stdin: pod)
        XCTAssertEqual(r.code, 0, r.out)
        func field(_ path: String) throws -> String { try kubectl(["get", "pod", "probed", "-o", "jsonpath={\(path)}"]).out }
        try waitFor("web to become ready through its readiness probe", timeout: 60) {
            try field(".status.containerStatuses[?(@.name==\"web\")].ready") == "true"
        }
        try waitFor("the liveness probe to restart live, which then stays", timeout: 60) {
            try field(".status.containerStatuses[?(@.name==\"live\")].restartCount") == "1"
                && field(".status.containerStatuses[?(@.name==\"live\")].ready") == "true"
        }
        try waitFor("the pod Ready", timeout: 30) { try field(".status.conditions[?(@.type==\"Ready\")].status") == "True" }
        try waitFor("web to become unready when /ready is gone", timeout: 60) {
            try field(".status.containerStatuses[?(@.name==\"web\")].ready") == "false"
                && field(".status.conditions[?(@.type==\"Ready\")].status") == "False"
        }
        XCTAssertEqual(try field(".status.containerStatuses[?(@.name==\"web\")].restartCount"), "0")
        // The agent's events, through kubectl get events and kubectl describe.
        let events = try kubectl(["get", "events"])
        XCTAssertEqual(events.code, 0, events.out)
        for want in ["Warning   Unhealthy   pod/probed   Liveness probe failed", "Normal    Killing     pod/probed   Container live failed liveness probe, will be restarted",
                     "Normal    Started     pod/probed   Started container web"] {
            XCTAssertTrue(events.out.contains(want), "\(want) not in:\n\(events.out)")
        }
        let described = try kubectl(["describe", "pod", "probed"])
        XCTAssertEqual(described.code, 0, described.out)
        for want in ["Restart Count:  1", "Liveness:", "exec [test -f /tmp/alive] delay=0s timeout=1s period=1s #success=1 #failure=2", "Readiness:", "http-get http://:http/ready", "Killing", "Unhealthy"] {
            XCTAssertTrue(described.out.contains(want), "\(want) not in:\n\(described.out)")
        }
    }

    /// kubectl delete marks a running pod Terminating; the agent runs its preStop hook, sends
    /// SIGTERM (which the pod handles), SIGKILLs one that ignores it after its grace period,
    /// and then the pod objects are gone.
    func testGracefulDeletion() async throws {
        _ = try startCluster()
        let host = dir + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        let pods = """
            apiVersion: v1
            kind: Pod
            metadata: {name: polite}
            spec:
              terminationGracePeriodSeconds: 20
              volumes: [{name: host, hostPath: {path: "\(host)"}}]
              containers:
              - name: c
                image: busybox
                command: ["sh", "-c", "trap 'echo term > /host/term; exit 0' TERM; echo up > /host/up; while true; do sleep 0.2; done"]
                volumeMounts: [{name: host, mountPath: /host}]
                lifecycle: {preStop: {exec: {command: ["sh", "-c", "echo bye > /host/prestop"]}}}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: stubborn}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - {name: c, image: busybox, command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]}
            """
        let r = try kubectl(["apply", "-f", "-"], stdin: pods)
        XCTAssertEqual(r.code, 0, r.out)
        try waitFor("both pods running", timeout: 60) {
            try kubectl(["get", "pods", "-o", "jsonpath={.items[*].status.phase}"]).out == "Running Running"
                && FileManager.default.fileExists(atPath: host + "/up")
        }
        let d = try kubectl(["delete", "pod", "polite", "stubborn", "--wait=false"])
        XCTAssertEqual(d.code, 0, d.out)
        let marked = try kubectl(["get", "pod", "polite", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}"])
        XCTAssertEqual(marked.out, "20", "polite was not kept for a graceful deletion: \(marked.out)")
        try waitFor("both pods gone", timeout: 60) { try kubectl(["get", "pods", "-o", "name"]).out.isEmpty }
        XCTAssertEqual(try? String(contentsOfFile: host + "/prestop", encoding: .utf8), "bye\n")
        XCTAssertEqual(try? String(contentsOfFile: host + "/term", encoding: .utf8), "term\n")
        try await waitForSandboxes(0, timeout: 30)
    }

    /// A restarted agent picks its pods up from CRI without restarting them; a Job runs to
    /// completion; a Deployment of 3 python http.server pods becomes Ready through HTTP readiness probes.
    func testAgentRestartJobAndPythonDeployment() async throws {
        let debian = try debianRootfs()
        let agent = try startCluster(images: ["python=" + debian])
        let objects = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: py}
            spec:
              replicas: 3
              selector: {matchLabels: {app: py}}
              template:
                metadata: {labels: {app: py}}
                spec:
                  containers:
                  - name: web
                    image: python
                    imagePullPolicy: Never
                    command: ["python3", "-m", "http.server", "8000"]
                    resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 100m, memory: 256Mi}}
                    readinessProbe: {httpGet: {path: /, port: 8000}, periodSeconds: 1}
            ---
            apiVersion: batch/v1
            kind: Job
            metadata: {name: once}
            spec:
              completions: 2
              template:
                spec:
                  restartPolicy: Never
                  containers:
                  - {name: c, image: busybox, command: ["sh", "-c", "echo job done"]}
            """
        let r = try kubectl(["apply", "-f", "-"], stdin: objects)
        XCTAssertEqual(r.code, 0, r.out)
        try waitFor("the job to complete", timeout: 90) {
            try kubectl(["get", "job", "once", "-o", "jsonpath={.status.succeeded}"]).out == "2"
        }
        try waitFor("3 python pods Ready", timeout: 120) {
            try kubectl(["get", "deployment", "py", "-o", "jsonpath={.status.readyReplicas}"]).out == "3"
        }
        func containers() throws -> String {
            try kubectl(["get", "pods", "-l", "app=py", "-o", "jsonpath={range .items[*]}{.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}"]).out
        }
        XCTAssertEqual(Set(try kubectl(["get", "pods", "-l", "app=py", "-o", "jsonpath={.items[*].status.qosClass}"]).out.split(separator: " ")), ["Guaranteed"])
        XCTAssertTrue(try kubectl(["get", "events"]).out.contains("Container image \"python\" already present on machine"))
        let before = try containers()
        print("python pods before the agent restart:\n" + before)
        XCTAssertEqual(before.split(separator: "\n").count, 3, before)

        // Restart the agent: the same containers, not restarted, Ready again.
        agent.terminate()
        agent.waitUntilExit()
        _ = try startAgent(log: "node2.log")
        try waitFor("3 python pods Ready after the agent restart", timeout: 60) {
            try kubectl(["get", "deployment", "py", "-o", "jsonpath={.status.readyReplicas}"]).out == "3"
                && kubectl(["get", "node", "n1"]).out.contains(" Ready ")
        }
        XCTAssertEqual(try containers(), before)
        let sandboxes = await sandboxCount()
        XCTAssertEqual(sandboxes, 3 + 2)
    }

    /// Node-pressure eviction for real: four pods run (two BestEffort, one of them a
    /// Deployment's; one Burstable within its request; one Guaranteed), then the agent restarts
    /// with a memory threshold above the machine's total memory, which the node is certain to
    /// cross. The node gets MemoryPressure and the memory-pressure taint; the pods are evicted
    /// one per pass, the BestEffort ones first and the Guaranteed one last (the order of their
    /// Evicted events, whose names carry nanoseconds); each is Failed with reason Evicted and
    /// a message naming memory, and none is started again; the Deployment's replacement stays
    /// Pending, kept off by the taint. With eviction off nothing is evicted and the test fails.
    func testNodePressureEviction() async throws {
        let agent = try startCluster()
        let objects = """
            apiVersion: v1
            kind: Pod
            metadata: {name: best}
            spec:
              terminationGracePeriodSeconds: 30
              containers: [{name: c, image: busybox, command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: burst}
            spec:
              containers:
              - {name: c, image: busybox, command: ["sleep", "3600"], resources: {requests: {memory: 256Mi}}}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: guar}
            spec:
              containers:
              - {name: c, image: busybox, command: ["sleep", "3600"], resources: {requests: {cpu: 100m, memory: 512Mi}, limits: {cpu: 100m, memory: 512Mi}}}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 1
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
            """
        let r = try kubectl(["apply", "-f", "-"], stdin: objects)
        XCTAssertEqual(r.code, 0, r.out)
        try waitFor("four pods running", timeout: 90) {
            try kubectl(["get", "pods", "-o", "jsonpath={.items[*].status.phase}"]).out == "Running Running Running Running"
        }
        XCTAssertEqual(try kubectl(["get", "node", "n1", "-o", "jsonpath={.spec.taints}"]).out, "", "the node was tainted before any pressure")
        let webPod = try kubectl(["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]).out
        XCTAssertTrue(webPod.hasPrefix("web-"), webPod)
        XCTAssertEqual(try kubectl(["get", "pod", "burst", "-o", "jsonpath={.spec.tolerations[*].key}"]).out, "node.kubernetes.io/memory-pressure")

        // A threshold this machine always crosses.
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let totalKi = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        try require(totalKi > 0, "MemTotal in /proc/meminfo")
        agent.terminate()
        agent.waitUntilExit()
        _ = try startAgent(log: "node2.log", ["--eviction-hard", "memory.available<\(totalKi + (1 << 20))Ki"])

        var failedSeen: [String] = []
        func failed() throws -> Set<String> {
            Set(try pods().compactMap { p -> String? in
                let m = p["metadata"] as? [String: Any], s = p["status"] as? [String: Any]
                return s?["phase"] as? String == "Failed" ? m?["name"] as? String : nil
            })
        }
        try waitFor("every pod evicted", timeout: 120) {
            let f = try failed()
            // Never a Guaranteed or Burstable pod while a BestEffort one still runs.
            if f.contains("guar") { XCTAssertTrue(f.isSuperset(of: ["best", "burst", webPod]), "guar evicted before \(f)") }
            if f.contains("burst") { XCTAssertTrue(f.isSuperset(of: ["best", webPod]), "burst evicted before \(f)") }
            failedSeen = f.sorted()
            return f.isSuperset(of: ["best", "burst", "guar", webPod])
        }
        print("evicted: \(failedSeen)")
        for name in ["best", "burst", "guar", webPod] {
            XCTAssertEqual(try kubectl(["get", "pod", name, "-o", "jsonpath={.status.reason}"]).out, "Evicted", name)
            let msg = try kubectl(["get", "pod", name, "-o", "jsonpath={.status.message}"]).out
            XCTAssertTrue(msg.contains("low on resource: memory"), "\(name): \(msg)")
        }
        // The order of eviction, from the Evicted events' names (pod.NANOSECONDS in hex); a
        // replacement the agent rejected before the taint was there has one too.
        let events = try kubectl(["get", "events", "-o", "jsonpath={range .items[*]}{.reason} {.involvedObject.name} {.metadata.name}{\"\\n\"}{end}"]).out
        let order = events.split(separator: "\n").compactMap { l -> (String, UInt64)? in
            let f = l.split(separator: " ")
            guard f.count == 3, f[0] == "Evicted", let hex = f[2].split(separator: ".").last, let t = UInt64(hex, radix: 16) else { return nil }
            return (String(f[1]), t)
        }.sorted { $0.1 < $1.1 }.map(\.0).filter { ["best", "burst", "guar", webPod].contains($0) }
        print("eviction order: \(order)")
        XCTAssertEqual(order.count, 4, events)
        XCTAssertEqual(Set(order.prefix(2)), ["best", webPod], "BestEffort pods first: \(order)")
        XCTAssertEqual(order.dropFirst(2), ["burst", "guar"], "then Burstable within its request, Guaranteed last: \(order)")

        // The node: MemoryPressure and its NoSchedule taint.
        XCTAssertEqual(try kubectl(["get", "node", "n1", "-o", "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].status}"]).out, "True")
        try waitFor("the memory-pressure taint", timeout: 30) {
            try kubectl(["get", "node", "n1", "-o", "jsonpath={.spec.taints[*].key}"]).out.contains("node.kubernetes.io/memory-pressure")
        }
        // The Deployment replaced its pod; the BestEffort replacement is kept off the node. (A
        // replacement made before the taint was there was bound, rejected by the agent and is
        // Failed too, so the one to find is any replacement, not the first.)
        try waitFor("the Deployment's replacement pod, unschedulable for the taint", timeout: 60) {
            try pods().contains { p in
                guard let m = p["metadata"] as? [String: Any], m["name"] as? String != webPod,
                      (m["labels"] as? [String: Any])?["app"] as? String == "web",
                      let spec = p["spec"] as? [String: Any], let st = p["status"] as? [String: Any] else { return false }
                let conds = st["conditions"] as? [[String: Any]] ?? []
                return spec["nodeName"] == nil && st["phase"] as? String == "Pending"
                    && conds.contains { $0["type"] as? String == "PodScheduled" && ($0["message"] as? String ?? "").contains("memory-pressure") }
            }
        }
        // Evicted pods stay down: no sandbox of theirs runs, and they stay Failed.
        let ready = try await NodeAgentMain.sandboxIDs(criSocket: Self.externalSocket ?? dir + "/cri.sock", readyOnly: true)
        XCTAssertEqual(ready, [], "an evicted pod's sandbox is running")
        XCTAssertTrue(try failed().isSuperset(of: ["best", "burst", "guar", webPod]))
    }
}
