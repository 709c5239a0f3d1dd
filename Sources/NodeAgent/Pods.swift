// One pod's sync, the node agent's main work: its sandbox (a new one when
// the old died), its init containers in order and then its containers
// (created, started, restarted by restartPolicy after a back-off, probed),
// and the pod's status written back when it changed. Agent.swift runs it
// for every pod bound to the node; everything it knows comes from the pod
// object and the runtime's labels, so a restarted agent continues where the
// last one stopped.

import CRIAPI
import ControlPlane
import Foundation
import GRPCCore

extension NodeAgent {
    func syncPod(_ pod: JSON, _ sandboxes: [Runtime_V1_PodSandbox]) async throws {
        var sandbox = sandboxes.filter { $0.state == .sandboxReady }.max { $0.metadata.attempt < $1.metadata.attempt }
        let config: Runtime_V1_PodSandboxConfig
        if let sb = sandbox {
            config = sandboxConfig(pod, attempt: sb.metadata.attempt)
        } else {
            // A new sandbox (the old one, if any, died): its containers start over.
            let attempt = UInt32(sandboxes.map(\.metadata.attempt).max().map { $0 + 1 } ?? 0)
            for old in sandboxes { try? await teardown(old.id) }
            config = sandboxConfig(pod, attempt: attempt)
            var r = Runtime_V1_RunPodSandboxRequest(); r.config = config
            let id = try await runtime.runPodSandbox(r).podSandboxID
            var f = Runtime_V1_ListPodSandboxRequest(); f.filter.id = id
            sandbox = try await runtime.listPodSandbox(f).items.first
            log.info("pod \(pod.namespace)/\(pod.name): sandbox \(id)")
        }
        guard let sb = sandbox else { return }
        let podIP = await sandboxIP(sb.id)
        // ConfigMap, Secret and downward API files follow their sources (every 10 s).
        if let last = volumesRefreshed[pod.uid], Date().timeIntervalSince(last) >= 10 {
            volumesRefreshed[pod.uid] = Date()
            do { _ = try await prepareVolumes(pod, podIP: podIP) } catch { log.info("pod \(pod.namespace)/\(pod.name): volumes: \(error)") }
        } else if volumesRefreshed[pod.uid] == nil {
            volumesRefreshed[pod.uid] = Date()
        }
        var lf = Runtime_V1_ListContainersRequest(); lf.filter.podSandboxID = sb.id
        let existing = try await runtime.listContainers(lf).containers
        // Init containers first, one at a time, each to a successful exit; then the containers.
        var initStatuses: [JSON] = []
        var initialized = true, initFailed = false
        for spec in pod["spec"]["initContainers"].array ?? [] {
            if !initialized {
                initStatuses.append(containerStatus(spec, nil, restarts: 0, waiting: "PodInitializing"))
                continue
            }
            let st = try await syncContainer(pod, spec, existing, sb, config, podIP: podIP, isInit: true)
            initStatuses.append(st)
            let done = st["state"]["terminated"]
            if !done.isNull && done["exitCode"].int == 0 { continue }
            initialized = false
            if !done.isNull && pod["spec"]["restartPolicy"].string == "Never" { initFailed = true }
        }
        var statuses: [JSON] = []
        for spec in pod["spec"]["containers"].array ?? [] {
            if !initialized {
                statuses.append(containerStatus(spec, nil, restarts: 0, waiting: "PodInitializing"))
                continue
            }
            statuses.append(try await syncContainer(pod, spec, existing, sb, config, podIP: podIP, isInit: false))
        }
        try await writeStatus(pod, sandbox: sb, podIP: podIP, statuses, initStatuses: initStatuses, initialized: initialized, initFailed: initFailed)
    }

    /// Drives one container of the pod (starting, restarting after its back-off, probing) and returns its status.
    /// An init container is restarted only after a failure, and is not probed.
    func syncContainer(_ pod: JSON, _ spec: JSON, _ existing: [Runtime_V1_Container], _ sb: Runtime_V1_PodSandbox,
                       _ config: Runtime_V1_PodSandboxConfig, podIP: String, isInit: Bool) async throws -> JSON {
        let uid = pod.uid
        let policy = pod["spec"]["restartPolicy"].string ?? "Always"
        let name = spec["name"].string ?? ""
        let mine = existing.filter { $0.labels[Labels.container] == name }
        let current = mine.max { $0.metadata.attempt < $1.metadata.attempt }
        var st: Runtime_V1_ContainerStatus? = nil
        if let c = current {
            var r = Runtime_V1_ContainerStatusRequest(); r.containerID = c.id
            st = try await runtime.containerStatus(r).status
        }
        let key = uid + "/" + name
        if let s = st, s.state == .containerCreated {
            // Created but never started: the last agent died between
            // CreateContainer and StartContainer. Start it now; one that
            // cannot start goes, and the next pass makes a new one.
            var r = Runtime_V1_StartContainerRequest(); r.containerID = s.id
            do {
                _ = try await runtime.startContainer(r)
                log.info("pod \(pod.namespace)/\(pod.name): container \(name): started (created by an earlier agent)")
                await started(pod, spec, containerID: s.id, sandboxID: sb.id, podIP: podIP)
                var q = Runtime_V1_ContainerStatusRequest(); q.containerID = s.id
                st = try await runtime.containerStatus(q).status
            } catch {
                log.info("pod \(pod.namespace)/\(pod.name): container \(name): cannot start the container an earlier agent created: \(error)")
                var rr = Runtime_V1_RemoveContainerRequest(); rr.containerID = s.id
                _ = try? await runtime.removeContainer(rr)
                return containerStatus(spec, nil, restarts: s.metadata.attempt, waiting: "ContainerCreating")
            }
        }
        let exited = st?.state == .containerExited
        if exited, let id = st?.id { probes[id] = nil }
        let restart = current == nil || (exited && (isInit ? st?.exitCode != 0 && policy != "Never"
                                                            : policy == "Always" || (policy == "OnFailure" && st?.exitCode != 0)))
        if restart {
            if let b = backoff[key], b.next > Date(), current != nil {
                await record(pod, container: name, "Warning", "BackOff", "Back-off restarting failed container \(name) in pod \(pod.name)_\(pod.namespace)(\(uid))")
                return containerStatus(spec, st, restarts: current?.metadata.attempt ?? 0, waiting: "CrashLoopBackOff")
            }
            let attempt = current.map { $0.metadata.attempt + 1 } ?? 0
            if current != nil {
                let delay = min(300, (backoff[key]?.delay ?? 5) * 2)
                backoff[key] = (Date().addingTimeInterval(delay), delay)
                // Keep only the last exited instance, as kubelet does.
                for old in mine where old.id != current!.id {
                    var rr = Runtime_V1_RemoveContainerRequest(); rr.containerID = old.id
                    _ = try? await runtime.removeContainer(rr)
                }
            }
            do {
                let id = try await startContainer(pod, spec, sandbox: sb.id, config, attempt: attempt, podIP: podIP)
                await record(pod, container: name, "Normal", "Created", "Created container \(name)")
                await started(pod, spec, containerID: id, sandboxID: sb.id, podIP: podIP)
                var r = Runtime_V1_ContainerStatusRequest(); r.containerID = id
                st = try await runtime.containerStatus(r).status
            } catch {
                let reason = error is ConfigError ? "CreateContainerConfigError" : "CreateContainerError"
                await record(pod, container: name, "Warning", "Failed", "Error: \(error)")
                return containerStatus(spec, st, restarts: attempt, waiting: reason, message: "\(error)")
            }
            return containerStatus(spec, st, restarts: attempt, waiting: nil, probe: ProbeVerdict(started: false, ready: false))
        } else {
            if let s = st, s.state == .containerRunning, let b = backoff[key],
               Date().timeIntervalSince(Date(timeIntervalSince1970: Double(s.startedAt) / 1e9)) > 600 {
                _ = b
                backoff[key] = nil
            }
            var verdict: ProbeVerdict? = nil
            if let s = st, s.state == .containerRunning, !isInit {
                let v = await runProbes(pod, spec, containerID: s.id, startedAt: Date(timeIntervalSince1970: Double(s.startedAt) / 1e9),
                                        sandboxID: sb.id, podIP: podIP)
                for f in v.failed { await record(pod, container: name, "Warning", "Unhealthy", f) }
                if let why = v.kill {
                    log.info("pod \(pod.namespace)/\(pod.name): container \(name): \(why), restarting")
                    await record(pod, container: name, "Normal", "Killing", "Container \(name) failed \(why.lowercased().replacingOccurrences(of: " failed", with: "")), will be restarted")
                    await stopContainer(spec, containerID: s.id, sandboxID: sb.id, podIP: podIP, grace: grace(pod))
                }
                verdict = v
            }
            return containerStatus(spec, st, restarts: current?.metadata.attempt ?? 0, waiting: nil, probe: verdict)
        }
    }

    /// A container just started: the event, then its postStart hook (a
    /// failed hook stops it, as kubelet does).
    func started(_ pod: JSON, _ spec: JSON, containerID id: String, sandboxID: String, podIP: String) async {
        let name = spec["name"].string ?? ""
        await record(pod, container: name, "Normal", "Started", "Started container \(name)")
        if !(await runHook(spec, "postStart", containerID: id, sandboxID: sandboxID, podIP: podIP)) {
            log.info("pod \(pod.namespace)/\(pod.name): container \(name): postStart hook failed")
            await record(pod, container: name, "Warning", "FailedPostStartHook", "PostStartHook failed")
            await stopContainer(nil, containerID: id, sandboxID: sandboxID, podIP: podIP, grace: grace(pod))
        }
    }

    func startContainer(_ pod: JSON, _ spec: JSON, sandbox: String, _ podConfig: Runtime_V1_PodSandboxConfig, attempt: UInt32, podIP: String) async throws -> String {
        let image = spec["image"].string ?? ""
        let name = spec["name"].string ?? ""
        if try await ensureImage(image, policy: spec["imagePullPolicy"].string ?? "IfNotPresent") {
            await record(pod, container: name, "Normal", "Pulled", "Successfully pulled image \"\(image)\"")
        } else {
            await record(pod, container: name, "Normal", "Pulled", "Container image \"\(image)\" already present on machine")
        }
        var c = Runtime_V1_ContainerConfig()
        c.metadata.name = spec["name"].string ?? ""
        c.metadata.attempt = attempt
        c.image.image = image
        c.command = (spec["command"].array ?? []).compactMap(\.string)
        c.args = (spec["args"].array ?? []).compactMap(\.string)
        c.workingDir = spec["workingDir"].string ?? ""
        let env = try await environment(pod, spec, podIP: podIP)
        let vars = Dictionary(env, uniquingKeysWith: { $1 })
        c.command = c.command.map { Self.expand($0, vars) }
        c.args = c.args.map { Self.expand($0, vars) }
        for (k, v) in env {
            var kv = Runtime_V1_KeyValue()
            kv.key = k
            kv.value = Data(v.utf8)
            c.envs.append(kv)
        }
        c.mounts = try containerMounts(spec, try await prepareVolumes(pod, podIP: podIP))
        c.labels = [Labels.container: c.metadata.name, Labels.podUID: podConfig.metadata.uid,
                    Labels.podName: podConfig.metadata.name, Labels.podNamespace: podConfig.metadata.namespace]
        c.logPath = "\(c.metadata.name)/\(attempt).log"
        c.tty = spec["tty"].bool ?? false
        c.stdin = spec["stdin"].bool ?? false
        c.stdinOnce = spec["stdinOnce"].bool ?? false
        if let u = spec["securityContext"]["runAsUser"].int { c.linux.securityContext.runAsUser.value = Int64(u) }
        c.linux.resources = Self.linuxResources(spec)
        var r = Runtime_V1_CreateContainerRequest()
        r.podSandboxID = sandbox
        r.config = c
        r.sandboxConfig = podConfig
        let id = try await runtime.createContainer(r).containerID
        var s = Runtime_V1_StartContainerRequest(); s.containerID = id
        _ = try await runtime.startContainer(s)
        return id
    }

    /// Pulls the image unless the policy and the store say it is not needed; true when it pulled.
    /// A runtime without an image service (UNIMPLEMENTED) resolves images
    /// itself at CreateContainer.
    func ensureImage(_ ref: String, policy: String) async throws -> Bool {
        do {
            if policy != "Always" {
                var q = Runtime_V1_ImageStatusRequest(); q.image.image = ref
                if try await images.imageStatus(q).hasImage { return false }
                if policy == "Never" { throw NodeAgentError("image \(ref) is not present and imagePullPolicy is Never") }
            }
            var p = Runtime_V1_PullImageRequest(); p.image.image = ref
            _ = try await images.pullImage(p)
            return true
        } catch let e as RPCError where e.code == .unimplemented {
            return false
        }
    }

    /// The container's cpu and memory as CRI Linux resources (shares from requests, quota and memory from limits).
    static func linuxResources(_ spec: JSON) -> Runtime_V1_LinuxContainerResources {
        var r = Runtime_V1_LinuxContainerResources()
        let req = spec["resources"]["requests"], lim = spec["resources"]["limits"]
        let cpuReq = Quantity.parse(req["cpu"]) ?? Quantity.parse(lim["cpu"])
        r.cpuShares = max(2, Int64(((cpuReq ?? 0) * 1024).rounded()))
        if let l = Quantity.parse(lim["cpu"]), l > 0 {
            r.cpuPeriod = 100_000
            r.cpuQuota = max(1000, Int64((l * 100_000).rounded()))
        }
        if let m = Quantity.parse(lim["memory"]), m > 0 { r.memoryLimitInBytes = Int64(m) }
        return r
    }

    /// The pod's terminationGracePeriodSeconds (30 when not set).
    func grace(_ pod: JSON) -> Int { pod["spec"]["terminationGracePeriodSeconds"].int ?? 30 }

    func containerStatus(_ spec: JSON, _ st: Runtime_V1_ContainerStatus?, restarts: UInt32, waiting: String?, message: String = "",
                         probe: ProbeVerdict? = nil) -> JSON {
        var j: JSON = ["name": .string(spec["name"].string ?? ""), "image": .string(spec["image"].string ?? ""),
                       "restartCount": .int(Int(restarts)), "ready": false]
        func ts(_ ns: Int64) -> JSON { .string(Timestamp.string(Date(timeIntervalSince1970: Double(ns) / 1e9))) }
        if let s = st {
            j["containerID"] = .string("moat://" + s.id)
            j["imageID"] = .string(s.imageRef)
        }
        if let w = waiting {
            j["state"] = ["waiting": ["reason": .string(w), "message": .string(message)]]
            if let s = st, s.state == .containerExited {
                j["lastState"] = ["terminated": ["exitCode": .int(Int(s.exitCode)), "reason": .string(s.reason), "startedAt": ts(s.startedAt), "finishedAt": ts(s.finishedAt)]]
            }
            return j
        }
        switch st?.state {
        case .containerRunning?:
            j["state"] = ["running": ["startedAt": ts(st!.startedAt)]]
            j["ready"] = .bool(probe?.ready ?? true)
            j["started"] = .bool(probe?.started ?? true)
        case .containerExited?:
            j["state"] = ["terminated": ["exitCode": .int(Int(st!.exitCode)), "reason": .string(st!.reason),
                                         "message": .string(st!.message), "startedAt": ts(st!.startedAt), "finishedAt": ts(st!.finishedAt)]]
        default:
            j["state"] = ["waiting": ["reason": "ContainerCreating"]]
        }
        return j
    }

    /// The pod's IP from the runtime (its CNI network), or the loopback address when it has none.
    func sandboxIP(_ id: String) async -> String {
        var q = Runtime_V1_PodSandboxStatusRequest(); q.podSandboxID = id
        let ip = (try? await runtime.podSandboxStatus(q))?.status.network.ip ?? ""
        return ip.isEmpty ? "127.0.0.1" : ip
    }

    func writeStatus(_ pod: JSON, sandbox: Runtime_V1_PodSandbox, podIP ip: String, _ statuses: [JSON],
                     initStatuses: [JSON] = [], initialized: Bool = true, initFailed: Bool = false) async throws {
        let running = statuses.filter { !$0["state"]["running"].isNull }.count
        let terminated = statuses.filter { !$0["state"]["terminated"].isNull }
        let policy = pod["spec"]["restartPolicy"].string ?? "Always"
        var phase = "Pending"
        if !statuses.isEmpty && terminated.count == statuses.count && policy != "Always" {
            phase = terminated.allSatisfy { $0["state"]["terminated"]["exitCode"].int == 0 } ? "Succeeded"
                : (policy == "Never" ? "Failed" : "Running")
        } else if running + terminated.count == statuses.count && running > 0 {
            phase = "Running"
        } else if running > 0 || statuses.contains(where: { ($0["restartCount"].int ?? 0) > 0 }) {
            // Started at least once: a container in back-off keeps the pod Running.
            phase = "Running"
        }
        if !initialized { phase = initFailed ? "Failed" : "Pending" }
        let allReady = initialized && !statuses.isEmpty && statuses.allSatisfy { $0["ready"].bool == true }
        let old = pod["status"]
        let started = old["startTime"].string ?? Timestamp.string(Date(timeIntervalSince1970: Double(sandbox.createdAt) / 1e9))
        func cond(_ t: String, _ ok: Bool) -> JSON {
            let prev = (old["conditions"].array ?? []).first { $0["type"].string == t }
            let status = ok ? "True" : "False"
            let since = prev?["status"].string == status ? (prev?["lastTransitionTime"].string ?? Timestamp.now()) : Timestamp.now()
            return ["type": .string(t), "status": .string(status), "lastTransitionTime": .string(since)]
        }
        var status: JSON = [
            "phase": .string(phase), "podIP": .string(ip), "podIPs": [["ip": .string(ip)]], "hostIP": .string(hostIP),
            "hostIPs": [["ip": .string(hostIP)]], "startTime": .string(started), "qosClass": .string(Pods.qosClass(pod)),
            "conditions": [cond("PodScheduled", true), cond("Initialized", initialized), cond("ContainersReady", allReady), cond("Ready", allReady)],
            "containerStatuses": .array(statuses),
        ]
        if !initStatuses.isEmpty { status["initContainerStatuses"] = .array(initStatuses) }
        // Write only what changed (transition times are kept, so a steady pod is not rewritten).
        if status == old { return }
        _ = try await api.patch(.pods, namespace: pod.namespace, name: pod.name, ["status": status], subresource: "status")
    }
}
