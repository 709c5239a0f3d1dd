// `moat cri` as kubelet meets it before any pod: Version, Status,
// RuntimeConfig, UpdateRuntimeConfig; the socket's mode, a stale socket
// replaced, a second server refused; malformed requests answered with the
// status code a caller can act on. No root needed: nothing here starts a
// sandbox.

import CRIAPI
import Foundation
import GRPCCore
import XCTest

final class CRIServerTests: XCTestCase {
    /// kubelet and crictl are grpc-go clients, and grpc-go PINGs the server after about every
    /// response it receives (bandwidth estimation). swift-nio-http2 closes a connection after
    /// 200 PINGs in 30 s unless moat cri answers them first (HTTP2PingAnswerer): without it
    /// this client's connection was dropped about every 200 calls (5 times in 1000).
    func testGrpcGoClientKeepsItsConnection() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(); cri.removeDirectory() }
        let client = cri.dir + "/grpc-go-calls"
        let built = try run("/bin/bash", [CRITestEnv.repo + "/Tests/Conformance/cri-tools.sh", "go-build",
                                          CRITestEnv.repo + "/Tests/CRITests/programs/grpc_go_calls.go", client])
        guard built.status == 0 else {
            return try CRITestEnv.missing("the grpc-go client (Tests/Conformance/cri-tools.sh go-build): \(built.output)")
        }
        try cri.start()
        let r = try run(client, [cri.socket, "600"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(r.output.trimmingCharacters(in: .whitespacesAndNewlines), "calls=600 failed=0 connections=1")
    }

    private func run(_ exe: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe; p.standardError = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    func testVersionStatusAndRuntimeConfig() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(); cri.removeDirectory() }
        try cri.start()
        try await cri.withClient { rt in
            let v = try await rt.version(Runtime_V1_VersionRequest())
            XCTAssertEqual(v.runtimeName, "moat")
            XCTAssertEqual(v.runtimeApiVersion, "v1")
            XCTAssertFalse(v.runtimeVersion.isEmpty)

            let s = try await rt.status(Runtime_V1_StatusRequest())
            let conds = Dictionary(uniqueKeysWithValues: s.status.conditions.map { ($0.type, $0.status) })
            XCTAssertEqual(conds["RuntimeReady"], true)
            XCTAssertEqual(conds["NetworkReady"], true)

            let rc = try await rt.runtimeConfig(Runtime_V1_RuntimeConfigRequest())
            XCTAssertEqual(rc.linux.cgroupDriver, .cgroupfs)

            var u = Runtime_V1_UpdateRuntimeConfigRequest()
            u.runtimeConfig.networkConfig.podCidr = "10.88.0.0/16"
            _ = try await rt.updateRuntimeConfig(u)
            var verbose = Runtime_V1_StatusRequest(); verbose.verbose = true
            do { let v = try await rt.status(verbose).info["podCIDR"]; XCTAssertEqual(v, "10.88.0.0/16") }
            u.runtimeConfig.networkConfig.podCidr = "10.88.0.0"
            await assertRPCError(.invalidArgument, mentioning: "pod_cidr") { try await rt.updateRuntimeConfig(u) }
        }
    }

    func testNetworkNotReadyWithoutCNIConfig() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(); cri.removeDirectory() }
        let conf = cri.dir + "/cni-empty"
        try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
        let withCNI = try CRIProcess(dir: cri.dir, extraArgs: ["--cni-conf-dir", conf])
        defer { withCNI.stop() }
        try withCNI.start()
        try await withCNI.withClient { rt in
            let s = try await rt.status(Runtime_V1_StatusRequest())
            let net = s.status.conditions.first { $0.type == "NetworkReady" }
            XCTAssertEqual(net?.status, false)
            XCTAssertEqual(net?.reason, "NetworkPluginNotReady")
            // A pod that needs the network is refused before anything starts.
            var r = Runtime_V1_RunPodSandboxRequest()
            r.config = podConfig(name: "netless")
            await assertRPCError(.failedPrecondition, mentioning: "network") { try await rt.runPodSandbox(r) }
            do { let v = try await rt.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.count; XCTAssertEqual(v, 0) }
        }
    }

    func testSocketIsPrivateStaleSocketReplacedSecondServerRefused() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(); cri.removeDirectory() }
        // A socket file nobody listens on, as a killed server leaves it.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in cri.socket.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        close(fd)
        XCTAssertEqual(chmod(cri.socket, 0o777), 0)

        try cri.start()
        let attrs = try FileManager.default.attributesOfItem(atPath: cri.socket)
        XCTAssertEqual(attrs[.posixPermissions] as? Int, 0o600)
        try await cri.withClient { rt in _ = try await rt.version(Runtime_V1_VersionRequest()) }

        // Same socket, other root: the live server is not displaced.
        let other = try CRIProcess(dir: cri.dir + "/other")
        let second = try CRIProcess(dir: cri.dir, extraArgs: ["--root", other.root, "--state", other.state])
        let (st2, log2) = try second.startExpectingRefusal()
        XCTAssertNotEqual(st2, 0)
        XCTAssertTrue(log2.contains("another server is listening"), log2)
        // Same root, other socket: the root's lock refuses it.
        let third = try CRIProcess(dir: cri.dir + "/third")
        let sameRoot = try CRIProcess(dir: third.dir, extraArgs: ["--root", cri.root])
        let (st3, log3) = try sameRoot.startExpectingRefusal()
        XCTAssertNotEqual(st3, 0)
        XCTAssertTrue(log3.contains("lock"), log3)
        try await cri.withClient { rt in _ = try await rt.version(Runtime_V1_VersionRequest()) }
    }

    func testMalformedRequestsGetActionableStatusCodes() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(); cri.removeDirectory() }
        try cri.start()
        try await cri.withClient { rt in
            await assertRPCError(.invalidArgument, mentioning: "config") {
                try await rt.runPodSandbox(Runtime_V1_RunPodSandboxRequest())
            }
            for (field, mutate) in [
                ("config.metadata.name", { (c: inout Runtime_V1_PodSandboxConfig) in c.metadata.name = "" }),
                ("config.metadata.namespace", { (c: inout Runtime_V1_PodSandboxConfig) in c.metadata.namespace = "" }),
                ("config.metadata.uid", { (c: inout Runtime_V1_PodSandboxConfig) in c.metadata.uid = "" }),
                ("config.metadata.name", { (c: inout Runtime_V1_PodSandboxConfig) in c.metadata.name = "../escape" }),
                ("config.hostname", { (c: inout Runtime_V1_PodSandboxConfig) in c.hostname = String(repeating: "h", count: 65) }),
                ("config.port_mappings[0]", { (c: inout Runtime_V1_PodSandboxConfig) in
                    var pm = Runtime_V1_PortMapping(); pm.containerPort = 70000; c.portMappings = [pm] }),
            ] as [(String, (inout Runtime_V1_PodSandboxConfig) -> Void)] {
                var r = Runtime_V1_RunPodSandboxRequest()
                r.config = podConfig(name: "bad")
                mutate(&r.config)
                await assertRPCError(.invalidArgument, mentioning: field) { try await rt.runPodSandbox(r) }
            }
            var handler = Runtime_V1_RunPodSandboxRequest()
            handler.config = podConfig(name: "h")
            handler.runtimeHandler = "runc"
            await assertRPCError(.invalidArgument, mentioning: "runtime_handler") { try await rt.runPodSandbox(handler) }

            let unknown = String(repeating: "ab", count: 32)
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = unknown
            await assertRPCError(.notFound) { try await rt.podSandboxStatus(ps) }
            ps.podSandboxID = ""
            await assertRPCError(.invalidArgument, mentioning: "pod_sandbox_id") { try await rt.podSandboxStatus(ps) }
            var sp = Runtime_V1_StopPodSandboxRequest(); sp.podSandboxID = unknown
            // Stopping or removing what is not there succeeds (kubelet repeats
            // them); an empty id is still refused.
            _ = try await rt.stopPodSandbox(sp)
            var stopC = Runtime_V1_StopContainerRequest(); stopC.containerID = unknown
            _ = try await rt.stopContainer(stopC)
            sp.podSandboxID = ""
            await assertRPCError(.invalidArgument, mentioning: "pod_sandbox_id") { try await rt.stopPodSandbox(sp) }
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = unknown
            _ = try await rt.removePodSandbox(rp)
            var rc = Runtime_V1_RemoveContainerRequest(); rc.containerID = unknown
            _ = try await rt.removeContainer(rc)

            var cc = Runtime_V1_CreateContainerRequest(); cc.podSandboxID = unknown
            cc.config.metadata.name = "c"; cc.config.image.image = "busybox"
            await assertRPCError(.notFound, mentioning: "pod sandbox") { try await rt.createContainer(cc) }
            var cs = Runtime_V1_ContainerStatusRequest(); cs.containerID = unknown
            await assertRPCError(.notFound, mentioning: "container") { try await rt.containerStatus(cs) }
            cs.containerID = ""
            await assertRPCError(.invalidArgument, mentioning: "container_id") { try await rt.containerStatus(cs) }
            var sc = Runtime_V1_StartContainerRequest(); sc.containerID = unknown
            await assertRPCError(.notFound) { try await rt.startContainer(sc) }
            var st = Runtime_V1_StopContainerRequest(); st.containerID = ""
            await assertRPCError(.invalidArgument, mentioning: "container_id") { try await rt.stopContainer(st) }
            var ex = Runtime_V1_ExecSyncRequest(); ex.containerID = unknown
            await assertRPCError(.invalidArgument, mentioning: "cmd") { try await rt.execSync(ex) }
            ex.cmd = ["true"]
            await assertRPCError(.notFound) { try await rt.execSync(ex) }
            var stats = Runtime_V1_ContainerStatsRequest(); stats.containerID = unknown
            await assertRPCError(.notFound) { try await rt.containerStats(stats) }

            do { let v = try await rt.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.count; XCTAssertEqual(v, 0) }
            do { let v = try await rt.listContainers(Runtime_V1_ListContainersRequest()).containers.count; XCTAssertEqual(v, 0) }
            // The streaming lists answer too (one empty part).
            let parts = try await rt.streamPodSandboxes(Runtime_V1_StreamPodSandboxesRequest()) { response in
                var n = 0
                for try await m in response.messages { n += 1; XCTAssertEqual(m.podSandboxes.count, 0) }
                return n
            }
            XCTAssertEqual(parts, 1)
            // The server is still there after all of that.
            _ = try await rt.version(Runtime_V1_VersionRequest())
        }
    }

    func testStreamingServerServesOnlyLiveTokensAndExecIsValidated() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(); cri.removeDirectory() }
        try cri.start()
        // The line is written just after the socket is ready: under load it can come a little later.
        for _ in 0..<100 where !cri.log.contains("streaming on ") { usleep(50_000) }
        guard let r = cri.log.range(of: "streaming on ") else { return XCTFail(cri.log) }
        let base = cri.log[r.upperBound...].split(separator: "\n")[0]
        XCTAssertTrue(base.hasPrefix("http://127.0.0.1:"), String(base))
        // An unknown token: no upgrade, a 404 that says why.
        let res = try WebSocketTestClient.exec(base + "/exec/0123456789abcdef")
        XCTAssertEqual(res.httpStatus, 404)
        try await cri.withClient { rt in
            var e = Runtime_V1_ExecRequest()
            e.containerID = String(repeating: "cd", count: 32)
            e.cmd = ["sh"]
            await assertRPCError(.invalidArgument, mentioning: "stdin") { try await rt.exec(e) }
            e.stdout = true; e.stderr = true; e.tty = true
            await assertRPCError(.invalidArgument, mentioning: "tty") { try await rt.exec(e) }
            e.tty = false
            await assertRPCError(.notFound) { try await rt.exec(e) }
            e.cmd = []
            await assertRPCError(.invalidArgument, mentioning: "cmd") { try await rt.exec(e) }
        }
    }

    func testSIGTERMEndsOpenEventStreamsAndExits() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(signal: SIGKILL); cri.removeDirectory() }
        try cri.start()
        let pid = cri.pid
        let sock = cri.socket
        try await cri.withClient { rt in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try? await rt.getContainerEvents(Runtime_V1_GetEventsRequest()) { response in
                        for try await _ in response.messages {}
                    }
                }
                try await Task.sleep(nanoseconds: 300_000_000)
                kill(pid, SIGTERM)
                var status: Int32 = 0
                var exited = false
                for _ in 0..<200 {
                    if waitpid(pid, &status, WNOHANG) == pid { exited = true; break }
                    try await Task.sleep(nanoseconds: 50_000_000)
                }
                XCTAssertTrue(exited, "moat cri did not exit on SIGTERM with an event stream open")
                XCTAssertFalse(FileManager.default.fileExists(atPath: sock), "the socket outlived the server")
                group.cancelAll()
            }
        }
    }
}
