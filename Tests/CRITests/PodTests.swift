// Pods and containers over the real socket: a pod whose two containers
// share localhost, CRI-format logs, ExecSync (output, exit code, timeout),
// filters, stop and remove; a restart of `moat cri` with the pod running
// (recovered) and a kill -9 of `moat cri` and the pod's processes (reported
// exited, then removable, nothing left). Needs root.

import CRIAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import XCTest

typealias RuntimeClient = Runtime_V1_RuntimeService.Client<HTTP2ClientTransport.Posix>

final class CRIPodTests: XCTestCase {
    func server() throws -> CRIProcess {
        try CRITestEnv.requireRoot()
        guard FileManager.default.fileExists(atPath: CRITestEnv.rootfs + "/bin/busybox") else {
            return try CRITestEnv.missing("the busybox rootfs (bash rootfs/busybox.sh)")
        }
        let cri = try CRIProcess(extraArgs: ["--rootfs-image", "busybox=" + CRITestEnv.rootfs])
        try cri.start()
        return cri
    }

    func runPod(_ rt: RuntimeClient, _ config: Runtime_V1_PodSandboxConfig) async throws -> String {
        var r = Runtime_V1_RunPodSandboxRequest()
        r.config = config
        return try await rt.runPodSandbox(r).podSandboxID
    }

    func startContainer(_ rt: RuntimeClient, pod: String, _ podConfig: Runtime_V1_PodSandboxConfig, name: String,
                        command: [String], labels: [String: String] = [:],
                        configure: (inout Runtime_V1_ContainerConfig) -> Void = { _ in }) async throws -> String {
        var c = Runtime_V1_CreateContainerRequest()
        c.podSandboxID = pod
        c.sandboxConfig = podConfig
        c.config.metadata.name = name
        c.config.image.image = "busybox"
        c.config.command = command
        c.config.labels = labels
        c.config.logPath = name + "/0.log"
        configure(&c.config)
        let id = try await rt.createContainer(c).containerID
        var s = Runtime_V1_StartContainerRequest(); s.containerID = id
        _ = try await rt.startContainer(s)
        return id
    }

    func status(_ rt: RuntimeClient, _ id: String) async throws -> Runtime_V1_ContainerStatus {
        var r = Runtime_V1_ContainerStatusRequest(); r.containerID = id
        return try await rt.containerStatus(r).status
    }

    func execSync(_ rt: RuntimeClient, _ id: String, _ cmd: [String], timeout: Int64 = 0) async throws -> Runtime_V1_ExecSyncResponse {
        var r = Runtime_V1_ExecSyncRequest(); r.containerID = id; r.cmd = cmd; r.timeout = timeout
        // A runtime that never answers fails the test (DeadlineExceeded) instead of hanging it.
        var options = CallOptions.defaults
        if timeout > 0 { options.timeout = .seconds(timeout + 60) }
        return try await rt.execSync(r, options: options)
    }

    func testPodWithTwoContainersSharingLocalhostLogsExecFiltersStopRemove() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        let logs = cri.dir + "/logs"
        let pc = podConfig(name: "web", labels: ["app": "web"], logDirectory: logs)
        try await cri.withClient { rt in
            let t0 = Date()
            let pod = try await runPod(rt, pc)
            let server = try await startContainer(rt, pod: pod, pc, name: "server", command: [
                "sh", "-c", "echo out-line; echo err-line >&2; while :; do echo hello-from-server | nc -l -p 8080; done",
            ], labels: ["role": "server"])
            print("CRI pod start latency (RunPodSandbox to container running): \(String(format: "%.0f", Date().timeIntervalSince(t0) * 1000)) ms")
            let client = try await startContainer(rt, pod: pod, pc, name: "client", command: ["sleep", "1000"], labels: ["role": "client"])
            do { let v = try await status(rt, server).state; XCTAssertEqual(v, .containerRunning) }

            // The client reaches the server over the pod's loopback.
            var got = ""
            for _ in 0..<20 where !got.contains("hello-from-server") {
                let r = try await execSync(rt, client, ["sh", "-c", "nc 127.0.0.1 8080 & sleep 1; kill $! 2>/dev/null; true"])
                got = String(decoding: r.stdout, as: UTF8.self)
            }
            XCTAssertTrue(got.contains("hello-from-server"), got)

            // Logs in the CRI format.
            let log = try String(contentsOfFile: logs + "/server/0.log", encoding: .utf8)
            let lines = log.split(separator: "\n").map(String.init)
            let re = try NSRegularExpression(pattern: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (stdout|stderr) [FP] "#)
            for l in lines {
                XCTAssertNotNil(re.firstMatch(in: l, range: NSRange(l.startIndex..., in: l)), l)
            }
            XCTAssertTrue(lines.contains { $0.hasSuffix(" stdout F out-line") }, log)
            XCTAssertTrue(lines.contains { $0.hasSuffix(" stderr F err-line") }, log)

            // ExecSync: output, exit code, timeout.
            let r = try await execSync(rt, client, ["sh", "-c", "echo o; echo e >&2; exit 3"])
            XCTAssertEqual(String(decoding: r.stdout, as: UTF8.self), "o\n")
            XCTAssertEqual(String(decoding: r.stderr, as: UTF8.self), "e\n")
            XCTAssertEqual(r.exitCode, 3)
            await assertRPCError(.deadlineExceeded) { try await self.execSync(rt, client, ["sleep", "30"], timeout: 1) }

            // Exec through the streaming server, as crictl exec -i does.
            var ex = Runtime_V1_ExecRequest()
            ex.containerID = client; ex.cmd = ["sh", "-c", "cat; echo to-err >&2; exit 4"]
            ex.stdin = true; ex.stdout = true; ex.stderr = true
            let url = try await rt.exec(ex).url
            let streamed = try WebSocketTestClient.exec(url, stdin: Array("through-stdin\n".utf8))
            XCTAssertEqual(streamed.httpStatus, 101)
            XCTAssertEqual(streamed.protocolChosen, "v5.channel.k8s.io")
            XCTAssertEqual(streamed.text(1), "through-stdin\n")
            XCTAssertEqual(streamed.text(2), "to-err\n")
            XCTAssertTrue(streamed.text(3).contains("NonZeroExitCode") && streamed.text(3).contains("\"4\""), streamed.text(3))
            // A URL works once.
            XCTAssertEqual(try WebSocketTestClient.exec(url).httpStatus, 404)

            // Filters.
            var lf = Runtime_V1_ListContainersRequest()
            lf.filter.labelSelector = ["role": "server"]
            do { let v = try await rt.listContainers(lf).containers.map(\.id); XCTAssertEqual(v, [server]) }
            lf = Runtime_V1_ListContainersRequest()
            lf.filter.podSandboxID = pod
            lf.filter.state.state = .containerRunning
            do { let v = try await rt.listContainers(lf).containers.map(\.id); XCTAssertEqual(Set(v), [server, client]) }
            var pf = Runtime_V1_ListPodSandboxRequest()
            pf.filter.labelSelector = ["app": "web"]
            do { let v = try await rt.listPodSandbox(pf).items.map(\.id); XCTAssertEqual(v, [pod]) }
            pf.filter.labelSelector = ["app": "db"]
            do { let v = try await rt.listPodSandbox(pf).items.count; XCTAssertEqual(v, 0) }

            // What a sandbox cannot do is refused by name.
            var dev = Runtime_V1_CreateContainerRequest()
            dev.podSandboxID = pod; dev.config.metadata.name = "dev"; dev.config.image.image = "busybox"
            var d = Runtime_V1_Device(); d.hostPath = "/dev/kmsg"; d.containerPath = "/dev/kmsg"
            dev.config.devices = [d]
            await assertRPCError(.invalidArgument, mentioning: "config.devices") { try await rt.createContainer(dev) }
            dev.config.devices = []
            dev.config.image.image = "no-such-image"
            await assertRPCError(.notFound, mentioning: "no-such-image") { try await rt.createContainer(dev) }

            // A duplicate pod name is refused.
            var dup = Runtime_V1_RunPodSandboxRequest(); dup.config = pc
            await assertRPCError(.alreadyExists) { try await rt.runPodSandbox(dup) }

            // Stop one container: exited with a reason; stopping again is fine.
            var sc = Runtime_V1_StopContainerRequest(); sc.containerID = client; sc.timeout = 2
            _ = try await rt.stopContainer(sc)
            _ = try await rt.stopContainer(sc)
            let cs = try await status(rt, client)
            XCTAssertEqual(cs.state, .containerExited)
            XCTAssertEqual(cs.reason, "Error")
            XCTAssertTrue([137, 143].contains(cs.exitCode), "\(cs.exitCode)")
            var start = Runtime_V1_StartContainerRequest(); start.containerID = client
            await assertRPCError(.failedPrecondition) { try await rt.startContainer(start) }

            // Stop and remove the pod: gone, twice.
            var sp = Runtime_V1_StopPodSandboxRequest(); sp.podSandboxID = pod
            _ = try await rt.stopPodSandbox(sp)
            _ = try await rt.stopPodSandbox(sp)
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod
            do { let v = try await rt.podSandboxStatus(ps).status.state; XCTAssertEqual(v, .sandboxNotready) }
            do { let v = try await status(rt, server).state; XCTAssertEqual(v, .containerExited) }
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
            _ = try await rt.removePodSandbox(rp)
            do { let v = try await rt.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.count; XCTAssertEqual(v, 0) }
            do { let v = try await rt.listContainers(Runtime_V1_ListContainersRequest()).containers.count; XCTAssertEqual(v, 0) }
        }
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: cri.state + "/pods")) ?? [], [])
    }

    func testRestartWithPodRunningRecoversIt() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        let pc = podConfig(name: "survivor")
        let (pod, c) = try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            return (pod, try await startContainer(rt, pod: pod, pc, name: "sleeper", command: ["sleep", "1000"]))
        }
        cri.stop()
        try cri.start()
        try await cri.withClient { rt in
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod
            do { let v = try await rt.podSandboxStatus(ps).status.state; XCTAssertEqual(v, .sandboxReady) }
            do { let v = try await status(rt, c).state; XCTAssertEqual(v, .containerRunning) }
            do { let v = try await execSync(rt, c, ["echo", "still-here"]).stdout; XCTAssertEqual(v, Data("still-here\n".utf8)) }
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
        }
    }

    func testKill9OfEverythingThenRestartReportsExitedAndCleansUp() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        let pc = podConfig(name: "victim")
        let (pod, c, sentry) = try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            let c = try await startContainer(rt, pod: pod, pc, name: "sleeper", command: ["sleep", "1000"])
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod; ps.verbose = true
            return (pod, c, pid_t(try await rt.podSandboxStatus(ps).info["sentryPid"] ?? "") ?? 0)
        }
        XCTAssertGreaterThan(sentry, 0)
        cri.stop(signal: SIGKILL)
        let tree = processTree(sentry)
        for p in tree { kill(p, SIGKILL) }
        for _ in 0..<100 where tree.contains(where: { kill($0, 0) == 0 && !isZombie($0) }) { usleep(50_000) }
        try cri.start()
        try await cri.withClient { rt in
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod
            do { let v = try await rt.podSandboxStatus(ps).status.state; XCTAssertEqual(v, .sandboxNotready) }
            let cs = try await status(rt, c)
            XCTAssertEqual(cs.state, .containerExited)
            XCTAssertFalse(cs.reason.isEmpty)
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
            do { let v = try await rt.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.count; XCTAssertEqual(v, 0) }
        }
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: cri.state + "/pods")) ?? [], [])
        let left = allProcesses().filter { p in
            ((try? String(contentsOfFile: "/proc/\(p)/cmdline", encoding: .utf8)) ?? "").contains(cri.dir)
        }
        XCTAssertEqual(left.filter { $0 != cri.pid }, [], "processes left from the killed pod")
    }
}

func allProcesses() -> [pid_t] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
}

func isZombie(_ p: pid_t) -> Bool {
    guard let s = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8), let r = s.lastIndex(of: ")") else { return true }
    return s[s.index(r, offsetBy: 2)] == "Z"
}

/// A process and all its descendants.
func processTree(_ root: pid_t) -> [pid_t] {
    var parent: [pid_t: pid_t] = [:]
    for p in allProcesses() {
        guard let s = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8), let r = s.lastIndex(of: ")") else { continue }
        let f = s[s.index(after: r)...].split(separator: " ")
        if f.count > 1, let pp = pid_t(f[1]) { parent[p] = pp }
    }
    var out = [root]
    var changed = true
    while changed {
        changed = false
        for (p, pp) in parent where out.contains(pp) && !out.contains(p) { out.append(p); changed = true }
    }
    return out
}
