// A second node on the same machine: `moat server --join-node n2` makes n2's identity, and a
// `moat cri` + `moat node` pair of the test's joins through the server's local socket. n2 gets
// its own pod CIDR, runs the pods bound to it, cannot read s1's; when its agent is killed, the
// node goes not ready and its Deployment pod moves to s1 after the (short) eviction timeout.
// (Several nodes in network namespaces of their own, with routes between them: ThreeNodeTests.swift.)

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

extension MoatServerTests {
    func startProcess(_ args: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.repo + "/.build/debug/moat")
        p.arguments = args
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = h; p.standardError = h; p.standardInput = FileHandle.nullDevice
        try p.run()
        return p
    }

    func testASecondNodeJoinsAndItsPodsMoveWhenItDies() throws {
        let (p, _) = try startAndWaitReady(extra: ["--join-node", "n2", "--node-grace-period", "3", "--pod-eviction-timeout", "3"])
        defer { p.terminate() }
        let n2 = dir + "/n2"
        try FileManager.default.createDirectory(atPath: n2, withIntermediateDirectories: true)
        let cri = try startProcess(["cri", "--listen", "unix://\(n2)/cri.sock", "--root", n2 + "/cri", "--state", n2 + "/run",
                                    "--rootfs-image", "busybox=" + Self.repo + "/.cache/rootfs/busybox"], log: n2 + "/cri.log")
        defer {
            // n2's pods outlive its killed agent: their Sentries go first, then the runtime.
            let pods = n2 + "/run/pods"
            for id in (try? FileManager.default.contentsOfDirectory(atPath: pods)) ?? [] {
                let t = (try? String(contentsOfFile: "\(pods)/\(id)/pod.state", encoding: .utf8)) ?? ""
                for l in t.split(separator: "\n") where l.hasPrefix("pid=") { if let pid = pid_t(l.dropFirst(4)) { kill(pid, SIGKILL) } }
            }
            if cri.isRunning { cri.terminate(); cri.waitUntilExit() }
        }
        try waitFor("n2's runtime socket", timeout: 60) { FileManager.default.fileExists(atPath: n2 + "/cri.sock") }
        let agent = try startProcess(["node", "--server", "unix://\(data)/api.sock", "--token-file", data + "/pki/node-n2.token",
                                      "--cri", "unix://\(n2)/cri.sock", "--name", "n2", "--root", n2 + "/node", "--log-directory", n2 + "/logs",
                                      "--port", "0", "--eviction-hard", testEvictionHard], log: n2 + "/node.log")
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        try waitFor("node n2 Ready", timeout: 60) { try kubectl(["get", "node", "n2"]).out.contains(" Ready ") }
        try waitFor("n2's pod CIDR", timeout: 30) { try kubectl(["get", "node", "n2", "-o", "jsonpath={.spec.podCIDR}"]).out == "10.244.1.0/24" }

        // n2's identity: its own pods, not s1's.
        let pods = """
            apiVersion: v1
            kind: Pod
            metadata: {name: on-n2}
            spec: {nodeName: n2, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: on-s1}
            spec: {nodeName: s1, containers: [{name: c, image: busybox, command: [sleep, "3600"]}]}
            """
        try pods.write(toFile: dir + "/pods.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try kubectl(["apply", "-f", dir + "/pods.yaml"]).code, 0)
        try waitFor("both pods Running", timeout: 90) {
            try kubectl(["get", "pods", "on-n2", "on-s1", "-o", "jsonpath={.items[*].status.phase}"]).out == "Running Running"
        }
        let token = try String(contentsOfFile: data + "/pki/node-n2.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        func asN2(_ path: String) throws -> String {
            try run("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", data + "/api.sock",
                                      "-H", "Authorization: Bearer " + token, "http://localhost" + path]).out
        }
        XCTAssertEqual(try asN2("/api/v1/namespaces/default/pods/on-n2"), "200")
        XCTAssertEqual(try asN2("/api/v1/namespaces/default/pods/on-s1"), "403")
        XCTAssertTrue(try run("/usr/bin/curl", ["-sS", "--unix-socket", data + "/api.sock", "-X", "PATCH", "-H", "Authorization: Bearer " + token,
                                                 "-H", "Content-Type: application/merge-patch+json", "-d", "{\"metadata\":{\"labels\":{\"x\":\"y\"}}}",
                                                 "http://localhost/api/v1/nodes/s1"]).out.contains("Forbidden"))
        XCTAssertEqual(try kubectl(["delete", "pod", "on-n2", "on-s1", "--grace-period=1"]).code, 0)

        // A Deployment's pod on n2 (s1 cordoned meanwhile); n2's agent dies: the pod moves to s1.
        XCTAssertEqual(try kubectl(["cordon", "s1"]).code, 0)
        XCTAssertEqual(try kubectl(["create", "deployment", "mover", "--image=busybox", "--", "sleep", "3600"]).code, 0)
        func placement() throws -> [String] {
            try kubectl(["get", "pods", "-l", "app=mover", "-o", "jsonpath={range .items[*]}{.spec.nodeName}={.status.phase} {end}"])
                .out.split(separator: " ").map(String.init).sorted()
        }
        try waitFor("the mover pod Running on n2", timeout: 90) { try placement() == ["n2=Running"] }
        XCTAssertEqual(try kubectl(["uncordon", "s1"]).code, 0)
        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
        try waitFor("node n2 not ready", timeout: 60) { !(try kubectl(["get", "node", "n2"]).out.contains(" Ready ")) }
        try waitFor("the mover pod Running on s1", timeout: 90) { try placement() == ["s1=Running"] }
        print("placement after n2 died: \(try placement())")
    }
}
