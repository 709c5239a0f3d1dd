// RuntimeService: the runtime.v1 RuntimeService over gRPC. Thin: each
// handler validates the request's shape, calls the runtime actor and builds
// the reply; errors become gRPC statuses in `rpc`.

import CRIAPI
import Foundation
import Glibc
import GRPCCore
import Sandbox

public let moatCRIVersion = "0.1.0"

struct RuntimeService: Runtime_V1_RuntimeService.SimpleServiceProtocol {
    let runtime: CRIRuntime
    let streaming: StreamingServer

    func version(request: Runtime_V1_VersionRequest, context: ServerContext) async throws -> Runtime_V1_VersionResponse {
        var r = Runtime_V1_VersionResponse()
        r.version = "0.1.0"
        r.runtimeName = "moat"
        r.runtimeVersion = moatCRIVersion
        r.runtimeApiVersion = "v1"
        return r
    }

    func status(request: Runtime_V1_StatusRequest, context: ServerContext) async throws -> Runtime_V1_StatusResponse {
        var r = Runtime_V1_StatusResponse()
        var rt = Runtime_V1_RuntimeCondition(); rt.type = "RuntimeReady"; rt.status = true
        var net = Runtime_V1_RuntimeCondition(); net.type = "NetworkReady"
        let (ok, why) = await runtime.networkReady()
        net.status = ok
        if !ok { net.reason = "NetworkPluginNotReady"; net.message = why }
        r.status.conditions = [rt, net]
        // The default handler ("") and its name. Read-only mounts are
        // recursive: the Gofer serving one refuses writes below it, into
        // whatever the host has mounted there too.
        r.runtimeHandlers = ["", "moat"].map { name in
            var h = Runtime_V1_RuntimeHandler()
            h.name = name
            h.features.recursiveReadOnlyMounts = true
            return h
        }
        if request.verbose {
            let notes = await runtime.recoveryNotes
            r.info["recovery"] = notes.joined(separator: "\n")
            r.info["podCIDR"] = await runtime.podCIDR
        }
        return r
    }

    func runtimeConfig(request: Runtime_V1_RuntimeConfigRequest, context: ServerContext) async throws -> Runtime_V1_RuntimeConfigResponse {
        var r = Runtime_V1_RuntimeConfigResponse()
        r.linux.cgroupDriver = .cgroupfs
        return r
    }

    func updateRuntimeConfig(request: Runtime_V1_UpdateRuntimeConfigRequest, context: ServerContext) async throws -> Runtime_V1_UpdateRuntimeConfigResponse {
        try await rpc {
            let cidr = request.runtimeConfig.networkConfig.podCidr
            if !cidr.isEmpty {
                let parts = cidr.split(separator: "/")
                guard parts.count == 2, let bits = Int(parts[1]), bits >= 0, bits <= 128 else {
                    throw CRIError.invalidArgument("runtime_config.network_config.pod_cidr \(cidr.debugDescription) is not a CIDR")
                }
            }
            await runtime.updateRuntimeConfig(podCIDR: cidr)
            return Runtime_V1_UpdateRuntimeConfigResponse()
        }
    }

    // MARK: Pods

    func runPodSandbox(request: Runtime_V1_RunPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_RunPodSandboxResponse {
        try await rpc {
            var r = Runtime_V1_RunPodSandboxResponse()
            r.podSandboxID = try await runtime.runPodSandbox(request)
            return r
        }
    }

    func stopPodSandbox(request: Runtime_V1_StopPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_StopPodSandboxResponse {
        try await rpc {
            // Stopping what is not there succeeds, as removing does (kubelet
            // repeats stops after a restart of either side).
            do { try await runtime.stopPodSandbox(request.podSandboxID) } catch CRIError.notFound {}
            return Runtime_V1_StopPodSandboxResponse()
        }
    }

    func removePodSandbox(request: Runtime_V1_RemovePodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_RemovePodSandboxResponse {
        try await rpc {
            _ = try require(request.podSandboxID, "pod_sandbox_id")
            try await runtime.removePodSandbox(request.podSandboxID)
            return Runtime_V1_RemovePodSandboxResponse()
        }
    }

    func podSandboxStatus(request: Runtime_V1_PodSandboxStatusRequest, context: ServerContext) async throws -> Runtime_V1_PodSandboxStatusResponse {
        try await rpc {
            let (p, cs) = try await runtime.podStatus(request.podSandboxID)
            var r = Runtime_V1_PodSandboxStatusResponse()
            r.status = podStatusMessage(p)
            r.containersStatuses = cs.map(containerStatusMessage)
            r.timestamp = nowNanos()
            if request.verbose {
                r.info["stateDir"] = p.stateDir
                if let sb = await runtime.sandbox(p.id) { r.info["sentryPid"] = String(sb.sentryPid) }
                if !p.reason.isEmpty { r.info["reason"] = p.reason }
            }
            return r
        }
    }

    func listPodSandbox(request: Runtime_V1_ListPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_ListPodSandboxResponse {
        try await rpc {
            var r = Runtime_V1_ListPodSandboxResponse()
            r.items = await podList(request.hasFilter ? request.filter : nil)
            return r
        }
    }

    func streamPodSandboxes(request: Runtime_V1_StreamPodSandboxesRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxesResponse>, context: ServerContext) async throws {
        try await rpc {
            try await sendInParts(await podList(request.hasFilter ? request.filter : nil), response) { var r = Runtime_V1_StreamPodSandboxesResponse(); r.podSandboxes = $0; return r }
        }
    }

    private func podList(_ f: Runtime_V1_PodSandboxFilter?) async -> [Runtime_V1_PodSandbox] {
        await runtime.listPods(f).map { p in
            var s = Runtime_V1_PodSandbox()
            let st = podStatusMessage(p)
            s.id = p.id; s.metadata = st.metadata; s.state = st.state; s.createdAt = p.createdAt
            s.labels = p.labels; s.annotations = p.annotations; s.runtimeHandler = p.runtimeHandler
            return s
        }
    }

    // MARK: Containers

    func createContainer(request: Runtime_V1_CreateContainerRequest, context: ServerContext) async throws -> Runtime_V1_CreateContainerResponse {
        try await rpc {
            var r = Runtime_V1_CreateContainerResponse()
            r.containerID = try await runtime.createContainer(request)
            return r
        }
    }

    func startContainer(request: Runtime_V1_StartContainerRequest, context: ServerContext) async throws -> Runtime_V1_StartContainerResponse {
        try await rpc {
            try await runtime.startContainer(request.containerID)
            return Runtime_V1_StartContainerResponse()
        }
    }

    func stopContainer(request: Runtime_V1_StopContainerRequest, context: ServerContext) async throws -> Runtime_V1_StopContainerResponse {
        try await rpc {
            guard request.timeout >= 0 else { throw CRIError.invalidArgument("timeout \(request.timeout) is negative") }
            do { try await runtime.stopContainer(request.containerID, timeout: request.timeout) } catch CRIError.notFound {}
            return Runtime_V1_StopContainerResponse()
        }
    }

    func removeContainer(request: Runtime_V1_RemoveContainerRequest, context: ServerContext) async throws -> Runtime_V1_RemoveContainerResponse {
        try await rpc {
            _ = try require(request.containerID, "container_id")
            try await runtime.removeContainer(request.containerID)
            return Runtime_V1_RemoveContainerResponse()
        }
    }

    func listContainers(request: Runtime_V1_ListContainersRequest, context: ServerContext) async throws -> Runtime_V1_ListContainersResponse {
        try await rpc {
            var r = Runtime_V1_ListContainersResponse()
            r.containers = await containerList(request.hasFilter ? request.filter : nil)
            return r
        }
    }

    func streamContainers(request: Runtime_V1_StreamContainersRequest, response: RPCWriter<Runtime_V1_StreamContainersResponse>, context: ServerContext) async throws {
        try await rpc {
            try await sendInParts(await containerList(request.hasFilter ? request.filter : nil), response) { var r = Runtime_V1_StreamContainersResponse(); r.containers = $0; return r }
        }
    }

    private func containerList(_ f: Runtime_V1_ContainerFilter?) async -> [Runtime_V1_Container] {
        await runtime.listContainers(f).map { c in
            var x = Runtime_V1_Container()
            x.id = c.id; x.podSandboxID = c.podID
            x.metadata.name = c.name; x.metadata.attempt = c.attempt
            x.image.image = c.image; x.imageRef = c.imageRef; x.imageID = c.imageID
            x.state = stateEnum(c.state); x.createdAt = c.createdAt
            x.labels = c.labels; x.annotations = c.annotations
            return x
        }
    }

    func containerStatus(request: Runtime_V1_ContainerStatusRequest, context: ServerContext) async throws -> Runtime_V1_ContainerStatusResponse {
        try await rpc {
            var r = Runtime_V1_ContainerStatusResponse()
            r.status = containerStatusMessage(try await runtime.containerStatus(request.containerID))
            return r
        }
    }

    func updateContainerResources(request: Runtime_V1_UpdateContainerResourcesRequest, context: ServerContext) async throws -> Runtime_V1_UpdateContainerResourcesResponse {
        try await rpc {
            if request.hasLinux {
                try await runtime.updateResources(request.containerID, request.linux)
            } else {
                _ = try await runtime.container(request.containerID)
            }
            return Runtime_V1_UpdateContainerResourcesResponse()
        }
    }

    func reopenContainerLog(request: Runtime_V1_ReopenContainerLogRequest, context: ServerContext) async throws -> Runtime_V1_ReopenContainerLogResponse {
        try await rpc {
            let (c, sb) = try await runtime.runningSandbox(request.containerID)
            let id = c.id, path = c.logPath
            guard !path.isEmpty else { throw CRIError.failedPrecondition("container \(id) has no log file") }
            try await offload { try sb.reopenLog(id, path: path) }
            return Runtime_V1_ReopenContainerLogResponse()
        }
    }

    func execSync(request: Runtime_V1_ExecSyncRequest, context: ServerContext) async throws -> Runtime_V1_ExecSyncResponse {
        try await rpc {
            guard !request.cmd.isEmpty else { throw CRIError.invalidArgument("cmd is required") }
            guard request.timeout >= 0 else { throw CRIError.invalidArgument("timeout \(request.timeout) is negative") }
            let (c, sb) = try await runtime.runningSandbox(request.containerID)
            return try await execSyncIn(sb, container: c, argv: request.cmd, timeout: Int(request.timeout))
        }
    }

    func exec(request: Runtime_V1_ExecRequest, context: ServerContext) async throws -> Runtime_V1_ExecResponse {
        try await rpc {
            guard !request.cmd.isEmpty else { throw CRIError.invalidArgument("cmd is required") }
            guard request.stdin || request.stdout || request.stderr else {
                throw CRIError.invalidArgument("one of stdin, stdout and stderr must be true")
            }
            if request.tty && request.stderr { throw CRIError.invalidArgument("tty and stderr cannot both be true") }
            let (c, _) = try await runtime.runningSandbox(request.containerID)
            var r = Runtime_V1_ExecResponse()
            r.url = streaming.register(ExecStreamRequest(containerID: c.id, cmd: request.cmd, tty: request.tty,
                                                         stdin: request.stdin, stdout: request.stdout, stderr: request.stderr))
            return r
        }
    }

    func attach(request: Runtime_V1_AttachRequest, context: ServerContext) async throws -> Runtime_V1_AttachResponse {
        try await rpc {
            guard request.stdin || request.stdout || request.stderr else {
                throw CRIError.invalidArgument("one of stdin, stdout and stderr must be true")
            }
            let (c, _) = try await runtime.runningSandbox(request.containerID)
            var r = Runtime_V1_AttachResponse()
            var s = ExecStreamRequest(containerID: c.id, cmd: [], tty: request.tty,
                                      stdin: request.stdin, stdout: request.stdout, stderr: request.stderr && !request.tty)
            s.attach = true
            r.url = streaming.register(s)
            return r
        }
    }

    func portForward(request: Runtime_V1_PortForwardRequest, context: ServerContext) async throws -> Runtime_V1_PortForwardResponse {
        try await rpc {
            let pod = try await runtime.pod(request.podSandboxID)
            guard pod.state == "ready", let sb = await runtime.sandbox(pod.id) else {
                throw CRIError.failedPrecondition("pod sandbox \(pod.id) is not ready")
            }
            for p in request.port where !(1...65535).contains(p) {
                throw CRIError.invalidArgument("port \(p) is not a TCP port (1-65535)")
            }
            var r = Runtime_V1_PortForwardResponse()
            r.url = streaming.register(PortForwardStreamRequest(podID: pod.id, netns: sb.networkNamespacePath, ports: request.port))
            return r
        }
    }

    // MARK: Stats

    func containerStats(request: Runtime_V1_ContainerStatsRequest, context: ServerContext) async throws -> Runtime_V1_ContainerStatsResponse {
        try await rpc {
            let c = try await runtime.container(request.containerID)
            var r = Runtime_V1_ContainerStatsResponse()
            r.stats = await stats(of: c)
            return r
        }
    }

    func listContainerStats(request: Runtime_V1_ListContainerStatsRequest, context: ServerContext) async throws -> Runtime_V1_ListContainerStatsResponse {
        try await rpc {
            var r = Runtime_V1_ListContainerStatsResponse()
            r.stats = await containerStatsList(request.filter)
            return r
        }
    }

    func streamContainerStats(request: Runtime_V1_StreamContainerStatsRequest, response: RPCWriter<Runtime_V1_StreamContainerStatsResponse>, context: ServerContext) async throws {
        try await rpc {
            try await sendInParts(await containerStatsList(request.filter), response) { var r = Runtime_V1_StreamContainerStatsResponse(); r.containerStats = $0; return r }
        }
    }

    private func containerStatsList(_ f: Runtime_V1_ContainerStatsFilter) async -> [Runtime_V1_ContainerStats] {
        var out: [Runtime_V1_ContainerStats] = []
        for c in await runtime.allContainers().sorted(by: { $0.createdAt < $1.createdAt }) {
            if !f.id.isEmpty && !c.id.hasPrefix(f.id) { continue }
            if !f.podSandboxID.isEmpty && !c.podID.hasPrefix(f.podSandboxID) { continue }
            if !f.labelSelector.allSatisfy({ c.labels[$0.key] == $0.value }) { continue }
            out.append(await stats(of: c))
        }
        return out
    }

    func podSandboxStats(request: Runtime_V1_PodSandboxStatsRequest, context: ServerContext) async throws -> Runtime_V1_PodSandboxStatsResponse {
        try await rpc {
            let (p, _) = try await runtime.podStatus(request.podSandboxID)
            var r = Runtime_V1_PodSandboxStatsResponse()
            r.stats = await podStats(of: p)
            return r
        }
    }

    func listPodSandboxStats(request: Runtime_V1_ListPodSandboxStatsRequest, context: ServerContext) async throws -> Runtime_V1_ListPodSandboxStatsResponse {
        try await rpc {
            var r = Runtime_V1_ListPodSandboxStatsResponse()
            r.stats = await podStatsList(request.filter)
            return r
        }
    }

    func streamPodSandboxStats(request: Runtime_V1_StreamPodSandboxStatsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxStatsResponse>, context: ServerContext) async throws {
        try await rpc {
            try await sendInParts(await podStatsList(request.filter), response) { var r = Runtime_V1_StreamPodSandboxStatsResponse(); r.podSandboxStats = $0; return r }
        }
    }

    private func podStatsList(_ f: Runtime_V1_PodSandboxStatsFilter) async -> [Runtime_V1_PodSandboxStats] {
        var out: [Runtime_V1_PodSandboxStats] = []
        for p in await runtime.listPods(nil) where p.state == "ready" {
            if !f.id.isEmpty && !p.id.hasPrefix(f.id) { continue }
            if !f.labelSelector.allSatisfy({ p.labels[$0.key] == $0.value }) { continue }
            out.append(await podStats(of: p))
        }
        return out
    }

    private func stats(of c: ContainerRecord) async -> Runtime_V1_ContainerStats {
        var s = Runtime_V1_ContainerStats()
        s.attributes.id = c.id
        s.attributes.metadata.name = c.name; s.attributes.metadata.attempt = c.attempt
        s.attributes.labels = c.labels; s.attributes.annotations = c.annotations
        let now = nowNanos()
        s.cpu.timestamp = now; s.memory.timestamp = now; s.writableLayer.timestamp = now
        s.writableLayer.fsID.mountpoint = runtime.options.root
        if c.state == "running", let sb = await runtime.sandbox(c.podID) {
            let id = c.id
            if let st = try? await offload({ try sb.stats(id) }) {
                s.cpu.usageCoreNanoSeconds.value = st.cpuNanoseconds
                s.memory.workingSetBytes.value = st.memoryWorkingSetBytes
                s.writableLayer.usedBytes.value = st.writableLayerBytes
                return s
            }
        }
        s.cpu.usageCoreNanoSeconds.value = 0
        s.memory.workingSetBytes.value = 0
        s.writableLayer.usedBytes.value = 0
        return s
    }

    private func podStats(of p: PodRecord) async -> Runtime_V1_PodSandboxStats {
        var s = Runtime_V1_PodSandboxStats()
        s.attributes.id = p.id
        s.attributes.metadata = podStatusMessage(p).metadata
        s.attributes.labels = p.labels; s.attributes.annotations = p.annotations
        var cpu: UInt64 = 0, mem: UInt64 = 0
        for c in await runtime.containersOf(p.id) {
            let cs = await stats(of: c)
            cpu += cs.cpu.usageCoreNanoSeconds.value
            mem += cs.memory.workingSetBytes.value
            s.linux.containers.append(cs)
        }
        let now = nowNanos()
        s.linux.cpu.timestamp = now; s.linux.cpu.usageCoreNanoSeconds.value = cpu
        s.linux.memory.timestamp = now; s.linux.memory.workingSetBytes.value = mem
        return s
    }

    // MARK: Events, checkpoints, metrics

    func getContainerEvents(request: Runtime_V1_GetEventsRequest, response: RPCWriter<Runtime_V1_ContainerEventResponse>, context: ServerContext) async throws {
        let (id, stream) = await runtime.subscribe()
        do {
            for await e in stream { try await response.write(e) }
        } catch {
            await runtime.unsubscribe(id)
            throw error
        }
        await runtime.unsubscribe(id)
    }

    func checkpointContainer(request: Runtime_V1_CheckpointContainerRequest, context: ServerContext) async throws -> Runtime_V1_CheckpointContainerResponse {
        throw RPCError(code: .unimplemented, message: "checkpointing is not supported")
    }

    func checkpointPod(request: Runtime_V1_CheckpointPodRequest, context: ServerContext) async throws -> Runtime_V1_CheckpointPodResponse {
        throw RPCError(code: .unimplemented, message: "checkpointing is not supported")
    }

    func restorePod(request: Runtime_V1_RestorePodRequest, context: ServerContext) async throws -> Runtime_V1_RestorePodResponse {
        throw RPCError(code: .unimplemented, message: "checkpointing is not supported")
    }

    // The cAdvisor-style metrics endpoints are not offered (kubelet then keeps
    // using ListPodSandboxStats); an empty answer would claim support for
    // metrics that are never reported.
    func listMetricDescriptors(request: Runtime_V1_ListMetricDescriptorsRequest, context: ServerContext) async throws -> Runtime_V1_ListMetricDescriptorsResponse {
        throw RPCError(code: .unimplemented, message: "CRI metrics are not implemented; use ListPodSandboxStats")
    }

    func listPodSandboxMetrics(request: Runtime_V1_ListPodSandboxMetricsRequest, context: ServerContext) async throws -> Runtime_V1_ListPodSandboxMetricsResponse {
        throw RPCError(code: .unimplemented, message: "CRI metrics are not implemented; use ListPodSandboxStats")
    }

    func streamPodSandboxMetrics(request: Runtime_V1_StreamPodSandboxMetricsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxMetricsResponse>, context: ServerContext) async throws {
        throw RPCError(code: .unimplemented, message: "StreamPodSandboxMetrics is not implemented; use ListPodSandboxMetrics")
    }

    func updatePodSandboxResources(request: Runtime_V1_UpdatePodSandboxResourcesRequest, context: ServerContext) async throws -> Runtime_V1_UpdatePodSandboxResourcesResponse {
        try await rpc {
            _ = try await runtime.pod(request.podSandboxID)
            return Runtime_V1_UpdatePodSandboxResourcesResponse()
        }
    }
}

/// The Stream* calls send long lists in parts of 100 (at least one part,
/// possibly empty, so a client always gets an answer).
func sendInParts<T, M>(_ items: [T], _ response: RPCWriter<M>, _ make: ([T]) -> M) async throws {
    if items.isEmpty { return try await response.write(make([])) }
    for start in stride(from: 0, to: items.count, by: 100) {
        try await response.write(make(Array(items[start..<min(start + 100, items.count)])))
    }
}
