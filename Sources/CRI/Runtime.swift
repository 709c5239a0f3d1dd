// Runtime: the pods' and containers' state machine behind the gRPC calls.
// One actor owns every record; sandbox calls (which block on the pod
// Sentry's control socket) run off the actor's executor, and the records
// they change are re-read afterwards (the actor is re-entrant). A record is
// written to disk before the sandbox is asked to do anything, so a crash at
// any point leaves a record a restart can finish or clean up.

import CRIAPI
import Dispatch
import Foundation
import Glibc
import Images
import Sandbox

public struct CRIOptions: Sendable {
    public var listen = "unix:///run/moat/cri.sock"
    public var root = "/var/lib/moat"
    public var state = "/run/moat"
    public var cniConfDir: String? = nil
    public var cniBinDir: String? = nil
    public var streamingAddress = "127.0.0.1:0"
    public var debug = false
    /// The containers' writable layers: self (unnamed files on the image
    /// root's host file system) or memory (memfds); the annotation
    /// dev.moat.overlay-medium of a container or pod overrides it.
    public var overlayMedium = "self"
    public init() {}
}

/// Runs a blocking call on a Dispatch thread so the actor and the
/// cooperative pool stay free.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        DispatchQueue.global().async { c.resume(with: Result { try body() }) }
    }
}

/// What a CNI ADD run during a Sentry's start-up produced (written on that
/// one thread, read after it returned).
final class CNIOutcome: @unchecked Sendable {
    var netns: String?
    var ip = ""
}

func processAlive(_ pid: pid_t) -> Bool { pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) }

/// Told which containers use which images, so that the image store refuses
/// to remove an image a container still uses. Marks are re-sent for every
/// recorded container when `moat cri` restarts.
public protocol ImageUseTracker: Sendable {
    func markInUse(_ imageID: String, by containerID: String)
    func release(_ imageID: String, by containerID: String)
}

actor CRIRuntime {
    let options: CRIOptions
    let images: (any ImageResolver)?
    let imageUse: (any ImageUseTracker)?
    private var store: RecordStore
    private var pods: [String: PodRecord] = [:]
    private var containers: [String: ContainerRecord] = [:]
    private var sandboxes: [String: PodSandbox] = [:]
    /// Sandboxes stopped (or found dead) but not yet destroyed: RemovePodSandbox
    /// calls `destroy` on them.
    private var stoppedSandboxes: [String: PodSandbox] = [:]
    /// The write ends of the stdin pipes of containers made with stdin
    /// (attach writes into them); `once`: closed after the first attach.
    /// Not recovered across a restart of `moat cri` (the container then
    /// sees end of file on its stdin).
    private var stdinWriters: [String: (fd: Int32, once: Bool)] = [:]
    /// Names being created (pod key, or pod id + container key) so that a
    /// concurrent duplicate is refused while the first is still starting.
    private var reserved = Set<String>()
    private(set) var podCIDR = ""
    private var subscribers: [UUID: AsyncStream<Runtime_V1_ContainerEventResponse>.Continuation] = [:]
    /// Problems met while recovering (kept for Status's info).
    private(set) var recoveryNotes: [String] = []

    init(options: CRIOptions, images: (any ImageResolver)?, imageUse: (any ImageUseTracker)? = nil) throws {
        self.options = options
        self.images = images
        self.imageUse = imageUse
        try makeDirectories(options.root, mode: 0o711)
        try makeDirectories(options.state + "/pods", mode: 0o711)
        store = try RecordStore(root: options.root)
    }

    // MARK: Recovery

    /// Reads the records and reconnects to every pod whose Sentry is still
    /// there; the others read NOTREADY with their containers exited.
    func recover() async {
        var notes: [String] = []
        let ps = store.loadAll(.pods, PodRecord.self, problems: &notes)
        let cs = store.loadAll(.containers, ContainerRecord.self, problems: &notes)
        for p in ps { pods[p.id] = p }
        for c in cs {
            if pods[c.podID] == nil {
                notes.append("container \(c.id) belongs to no known pod; record dropped")
                store.delete(.containers, c.id)
                continue
            }
            containers[c.id] = c
            for i in c.imagesInUse { imageUse?.markInUse(i, by: c.id) }
        }
        for p in ps {
            let dir = p.stateDir
            let sb = try? await offload({ try PodSandbox.reconnect(stateDir: dir) })
            if p.state == "ready" {
                if let sb { sandboxes[p.id] = sb } else {
                    markPodGone(p.id, reason: "the pod's Sentry was gone when moat cri restarted")
                }
            } else if let sb {
                // A Sentry the records call stopped: the server died while
                // starting or stopping it. Stop it now, destroy it on removal.
                _ = try? await offload { try sb.stop(timeoutSeconds: 0) }
                stoppedSandboxes[p.id] = sb
                notes.append("pod \(p.id): its Sentry was still running though not ready; stopped")
            }
        }
        recoveryNotes = notes
    }

    /// The pod's Sentry died (or was never reached again): the pod is
    /// NOTREADY and its live containers exited with an unknown status.
    private func markPodGone(_ id: String, reason: String) {
        guard var p = pods[id] else { return }
        if let sb = sandboxes.removeValue(forKey: id) { stoppedSandboxes[id] = sb }
        if p.state != "notready" {
            p.state = "notready"; p.reason = reason
            pods[id] = p
            try? store.save(.pods, id, p)
        }
        for c in containers.values where c.podID == id && c.state != "exited" {
            var u = c
            let wasRunning = c.state == "running"
            u.state = "exited"; u.exitCode = 255; u.finishedAt = nowNanos()
            u.reason = "Unknown"; u.message = reason
            if !wasRunning { u.startedAt = 0 }
            containers[c.id] = u
            try? store.save(.containers, c.id, u)
            emit(u, .containerStoppedEvent)
        }
    }

    /// The live sandbox of a ready pod, or nil (and the pod marked gone)
    /// when its Sentry has died.
    private func liveSandbox(_ podID: String) -> PodSandbox? {
        guard let sb = sandboxes[podID] else { return nil }
        // A pid of 0 says nothing (not known); only a pid that is gone does.
        if sb.sentryPid > 0 && !processAlive(sb.sentryPid) {
            markPodGone(podID, reason: "the pod's Sentry exited")
            return nil
        }
        return sb
    }

    // MARK: Lookup

    /// A pod by id or unique id prefix (crictl passes truncated ids).
    func pod(_ id: String, field: String = "pod_sandbox_id") throws -> PodRecord {
        _ = try require(id, field)
        if let p = pods[id] { return p }
        let m = pods.keys.filter { $0.hasPrefix(id) }
        if m.count == 1 { return pods[m[0]]! }
        if m.count > 1 { throw CRIError.invalidArgument("\(field) \(id) is ambiguous") }
        throw CRIError.notFound("pod sandbox \(id) not found")
    }

    func container(_ id: String, field: String = "container_id") throws -> ContainerRecord {
        _ = try require(id, field)
        if let c = containers[id] { return c }
        let m = containers.keys.filter { $0.hasPrefix(id) }
        if m.count == 1 { return containers[m[0]]! }
        if m.count > 1 { throw CRIError.invalidArgument("\(field) \(id) is ambiguous") }
        throw CRIError.notFound("container \(id) not found")
    }

    // MARK: Runtime config

    func updateRuntimeConfig(podCIDR cidr: String) {
        podCIDR = cidr
    }

    // MARK: Pods

    func runPodSandbox(_ r: Runtime_V1_RunPodSandboxRequest) async throws -> String {
        guard r.hasConfig else { throw CRIError.invalidArgument("config is required") }
        let c = r.config
        guard c.hasMetadata else { throw CRIError.invalidArgument("config.metadata is required") }
        let name = try requireSafeName(c.metadata.name, "config.metadata.name")
        let uid = try require(c.metadata.uid, "config.metadata.uid")
        let ns = try requireSafeName(c.metadata.namespace, "config.metadata.namespace")
        if !r.runtimeHandler.isEmpty && r.runtimeHandler != "moat" {
            throw CRIError.invalidArgument("runtime_handler \(r.runtimeHandler.debugDescription) is not supported (only \"moat\")")
        }
        let key = "\(name)_\(ns)_\(uid)_\(c.metadata.attempt)"
        if reserved.contains(key) || pods.values.contains(where: { podKey($0) == key }) {
            throw CRIError.alreadyExists("a pod sandbox named \(key) already exists")
        }
        let nsOpts = c.linux.securityContext.namespaceOptions
        let hostNet = nsOpts.network == .node
        for (i, pm) in c.portMappings.enumerated() {
            guard pm.containerPort > 0, pm.containerPort < 65536, pm.hostPort >= 0, pm.hostPort < 65536 else {
                throw CRIError.invalidArgument("config.port_mappings[\(i)]: ports must be in 1..65535")
            }
        }
        // The UTS name holds at most 64 bytes; an empty one means the node's.
        guard c.hostname.utf8.count <= 64, !c.hostname.contains("\0") else {
            throw CRIError.invalidArgument("config.hostname: at most 64 bytes, no NUL")
        }
        let id = newID()
        var hostname = c.hostname
        if hostname.isEmpty {
            var buf = [CChar](repeating: 0, count: 256)
            gethostname(&buf, 255)
            hostname = String(cString: buf)
        }
        func mode(_ m: Runtime_V1_NamespaceMode) -> String {
            switch m { case .node: return "node"; case .container: return "container"; case .target: return "target"; default: return "pod" }
        }
        var rec = PodRecord(
            id: id, name: name, uid: uid, namespace: ns, attempt: c.metadata.attempt, createdAt: nowNanos(),
            state: "notready", labels: c.labels, annotations: c.annotations, hostname: hostname,
            logDirectory: c.logDirectory, runtimeHandler: r.runtimeHandler,
            stateDir: options.state + "/pods/" + id, networkMode: mode(nsOpts.network),
            pidMode: mode(nsOpts.pid), ipcMode: mode(nsOpts.ipc))
        rec.portMappings = c.portMappings.map {
            PortMappingRecord(containerPort: $0.containerPort, hostPort: $0.hostPort, hostIP: $0.hostIp,
                              proto: $0.protocol == .udp ? "udp" : $0.protocol == .sctp ? "sctp" : "tcp")
        }
        rec.dnsServers = c.dnsConfig.servers; rec.dnsSearches = c.dnsConfig.searches; rec.dnsOptions = c.dnsConfig.options
        if !c.logDirectory.isEmpty { try makeDirectories(c.logDirectory) }

        var pc = PodConfig(id: id, stateDir: rec.stateDir)
        pc.hostname = hostname
        pc.dnsServers = rec.dnsServers; pc.dnsSearches = rec.dnsSearches; pc.dnsOptions = rec.dnsOptions
        pc.network = hostNet ? .host : .loopback
        pc.sysctls = c.linux.sysctls
        pc.cgroupParent = c.linux.cgroupParent.isEmpty ? nil : c.linux.cgroupParent
        pc.debug = options.debug
        pc.goferZygote = true

        let podConfig = pc
        var cni: CNINetwork? = nil
        if let dir = options.cniConfDir, !hostNet {
            do { cni = try CNINetwork.load(confDir: dir, binDir: options.cniBinDir ?? "/usr/lib/cni") } catch {
                throw CRIError.failedPrecondition("the pod network is not ready: \(error)")
            }
            cni?.podCIDR = podCIDR
            if cni?.needsPodCIDR == true {
                guard !podCIDR.isEmpty else {
                    throw CRIError.failedPrecondition("the pod network is not ready: it takes the node's pod CIDR, which the runtime does not know yet (UpdateRuntimeConfig)")
                }
                rec.podCIDR = podCIDR
            }
        }
        // Named in the first record, before ADD runs: a restart after a
        // crash in the middle of ADD, or after a host crash lost the
        // (unsynced) ready record, still runs DEL and frees the address.
        if let cni { rec.cniNetwork = cni.name }
        reserved.insert(key)
        defer { reserved.remove(key) }
        var clock = StepClock("runp " + id, enabled: options.debug)
        defer { clock.log() }
        // The record first: a crash from here on leaves something a restart
        // can clean up.
        try store.save(.pods, id, rec)
        pods[id] = rec
        clock.mark("record")
        // The pod network (CNI ADD: bridge, host-local and portmap, three
        // plugin processes) is set up in the Sentry's network namespace
        // while the Sentry starts, not after it: each costs about 100 ms on
        // a loaded 2-CPU VM (debug build), and they were one after the other.
        let maps = rec.portMappings
        let added = CNIOutcome()
        var network: (@Sendable (String) throws -> Void)? = nil
        if let cni {
            network = { netns in
                added.netns = netns
                added.ip = try cni.add(containerID: id, netns: netns, podName: name, podNamespace: ns,
                                       podUID: uid, portMappings: maps).ip
            }
        }
        let addNetwork = network
        let sb: PodSandbox
        do {
            let steps = clock.sub()
            sb = try await offload { try PodSandbox.start(podConfig, whileStarting: addNetwork, mark: steps?.mark) }
            if let steps { clock.take(steps) }
        } catch {
            // A CNI ADD that failed half way, or a Sentry that failed after
            // it, must not keep the pod's address (host-local) or rules.
            if let cni, let netns = added.netns {
                _ = try? await offload { try cni.del(containerID: id, netns: netns, portMappings: maps) }
            }
            pods[id] = nil
            store.delete(.pods, id)
            removeTree(rec.stateDir)
            throw error
        }
        sandboxes[id] = sb
        rec.state = "ready"
        if let cni {
            rec.ip = added.ip; rec.cniNetwork = cni.name; rec.cniNetnsPath = sb.networkNamespacePath
        }
        pods[id] = rec
        try store.save(.pods, id, rec, durable: false)
        clock.mark("record")
        return id
    }

    private func podKey(_ p: PodRecord) -> String { "\(p.name)_\(p.namespace)_\(p.uid)_\(p.attempt)" }

    /// Whether the pod network is usable (Status's NetworkReady).
    func networkReady() -> (Bool, String) {
        guard let dir = options.cniConfDir else { return (true, "") }
        do {
            let cni = try CNINetwork.load(confDir: dir, binDir: options.cniBinDir ?? "/usr/lib/cni")
            if cni.needsPodCIDR && podCIDR.isEmpty { return (false, "the CNI network \(cni.name) takes the node's pod CIDR, not known yet") }
            return (true, "")
        } catch {
            return (false, "\(error)")
        }
    }

    func stopPodSandbox(_ idArg: String) async throws {
        let p = try pod(idArg)
        let id = p.id
        // Statuses the Sentry can still report: a container that already
        // exited keeps its own exit code.
        for c in containers.values where c.podID == id && c.state == "running" { await refresh(c.id) }
        // The network first, while the recorded namespace path certainly is
        // the pod's (after the Sentry is gone its pid may be reused; then
        // DEL gets no namespace and only releases what the plugins hold).
        if var rec = pods[id], !rec.cniNetwork.isEmpty, let dir = options.cniConfDir,
           var cni = try? CNINetwork.load(confDir: dir, binDir: options.cniBinDir ?? "/usr/lib/cni") {
            cni.podCIDR = rec.podCIDR ?? podCIDR
            let net = cni
            let ns = liveSandbox(id) != nil ? rec.cniNetnsPath : ""
            let maps = rec.portMappings
            _ = try? await offload { try net.del(containerID: id, netns: ns, portMappings: maps) }
            rec.cniNetwork = ""
            pods[id] = rec
            try store.save(.pods, id, rec)
        }
        if let sb = sandboxes[id] {
            try await offload { try sb.stop(timeoutSeconds: 10) }
            stoppedSandboxes[id] = sb
        }
        sandboxes[id] = nil
        for c in containers.values where c.podID == id && c.state != "exited" {
            var u = c
            if u.state == "running" {
                u.exitCode = 137; u.reason = "Error"; u.message = "the pod sandbox was stopped"
            } else {
                u.exitCode = 0; u.reason = "Created"
            }
            u.state = "exited"; u.finishedAt = nowNanos()
            containers[c.id] = u
            try? store.save(.containers, c.id, u)
            emit(u, .containerStoppedEvent)
        }
        guard var rec = pods[id] else { return }
        rec.state = "notready"
        pods[id] = rec
        try store.save(.pods, id, rec)
    }

    func removePodSandbox(_ idArg: String) async throws {
        let p: PodRecord
        do { p = try pod(idArg) } catch CRIError.notFound { return }
        // Stop first when anything is still up: the Sentry, or a CNI
        // attachment (a pod whose Sentry died still holds its IP).
        if p.state == "ready" || sandboxes[p.id] != nil || !p.cniNetwork.isEmpty { try await stopPodSandbox(p.id) }
        for c in containers.values where c.podID == p.id {
            containers[c.id] = nil
            dropStdin(c.id)
            for i in c.imagesInUse { imageUse?.release(i, by: c.id) }
            store.delete(.containers, c.id)
            removeTree(store.dir + "/containers/" + c.id)
            emit(c, .containerDeletedEvent)
        }
        // Whatever the Sentry left: `destroy` on the sandbox when we have it
        // (or can reach it again), and its state directory in any case.
        if let sb = stoppedSandboxes.removeValue(forKey: p.id) {
            try await offload { try sb.destroy() }
        } else if let sb = try? await offload({ try PodSandbox.reconnect(stateDir: p.stateDir) }) {
            try await offload { try sb.stop(timeoutSeconds: 0); try sb.destroy() }
        }
        removeTree(p.stateDir)
        pods[p.id] = nil
        store.delete(.pods, p.id)
    }

    func podStatus(_ idArg: String) throws -> (PodRecord, [ContainerRecord]) {
        let p = try pod(idArg)
        if p.state == "ready" { _ = liveSandbox(p.id) }
        return (pods[p.id]!, containers.values.filter { $0.podID == p.id })
    }

    func listPods(_ f: Runtime_V1_PodSandboxFilter?) -> [PodRecord] {
        for p in pods.values where p.state == "ready" { _ = liveSandbox(p.id) }
        return pods.values.filter { p in
            guard let f else { return true }
            if !f.id.isEmpty && !p.id.hasPrefix(f.id) { return false }
            if f.hasState && (f.state.state == .sandboxReady) != (p.state == "ready") { return false }
            return f.labelSelector.allSatisfy { p.labels[$0.key] == $0.value }
        }.sorted { $0.createdAt < $1.createdAt }
    }

    // MARK: Containers

    func createContainer(_ r: Runtime_V1_CreateContainerRequest) async throws -> String {
        let p = try pod(r.podSandboxID)
        guard r.hasConfig else { throw CRIError.invalidArgument("config is required") }
        guard r.config.hasMetadata else { throw CRIError.invalidArgument("config.metadata is required") }
        let name = try requireSafeName(r.config.metadata.name, "config.metadata.name")
        let imageName = try require(r.config.image.image, "config.image.image")
        guard p.state == "ready", let sb = liveSandbox(p.id) else {
            throw CRIError.failedPrecondition("pod sandbox \(p.id) is not ready")
        }
        let key = p.id + "/" + name + "_\(r.config.metadata.attempt)"
        if reserved.contains(key) || containers.values.contains(where: {
            $0.podID == p.id && $0.name == name && $0.attempt == r.config.metadata.attempt
        }) {
            throw CRIError.alreadyExists("pod \(p.id) already has a container named \(name) (attempt \(r.config.metadata.attempt))")
        }
        guard let images else { throw CRIError.failedPrecondition("no image store is configured") }
        reserved.insert(key)
        defer { reserved.remove(key) }
        var clock = StepClock("create " + p.id + "/" + name, enabled: options.debug)
        defer { clock.log() }
        guard let image = try await images.resolve(imageName) else {
            throw CRIError.notFound("image \(imageName) not found")
        }
        // Image volumes: each image must be there already (kubelet pulls it).
        var volumeImages: [String: ResolvedImage] = [:]
        for (i, m) in r.config.mounts.enumerated() where m.hasImage && !m.image.image.isEmpty && volumeImages[m.image.image] == nil {
            guard let vi = try await images.resolve(m.image.image) else {
                throw CRIError.notFound("config.mounts[\(i)].image: image \(m.image.image) not found")
            }
            volumeImages[m.image.image] = vi
        }
        clock.mark("image")
        let id = newID()
        let dir = store.dir + "/containers/" + id
        try makeDirectories(dir, mode: 0o711)
        let plan: ContainerPlan
        do {
            plan = try planContainer(id: id, request: r, pod: p, image: image, volumeImages: volumeImages, containerDir: dir,
                                 overlayMedium: options.overlayMedium)
            try plan.prepareHost()
        } catch {
            removeTree(dir); throw error
        }
        clock.mark("plan")
        try store.save(.containers, id, plan.record)
        clock.mark("record")
        containers[id] = plan.record
        var cfg = plan.config
        var stdinPipe: [Int32] = [-1, -1]
        if r.config.stdin {
            guard pipe(&stdinPipe) == 0 else { throw CRIError.internalError("pipe: \(String(cString: strerror(errno)))") }
            for fd in stdinPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            cfg.stdinFD = stdinPipe[0]
            stdinWriters[id] = (stdinPipe[1], r.config.stdinOnce)
        }
        let config = cfg
        defer { if stdinPipe[0] >= 0 { close(stdinPipe[0]) } }
        do {
            let steps = clock.sub()
            try await offload { try sb.createContainer(config, mark: steps?.mark) }
            if let steps { clock.take(steps) }
        } catch {
            dropStdin(id)
            containers[id] = nil
            store.delete(.containers, id)
            removeTree(dir)
            throw error
        }
        guard pods[p.id] != nil else {
            // The pod was removed while this container was being made.
            containers[id] = nil
            dropStdin(id)
            store.delete(.containers, id)
            removeTree(dir)
            throw CRIError.notFound("pod sandbox \(p.id) was removed")
        }
        for i in plan.record.imagesInUse { imageUse?.markInUse(i, by: id) }
        emit(plan.record, .containerCreatedEvent)
        return id
    }

    func startContainer(_ idArg: String) async throws {
        let c = try container(idArg)
        guard c.state == "created" else {
            throw CRIError.failedPrecondition("container \(c.id) is \(c.state), not created")
        }
        guard let sb = liveSandbox(c.podID) else {
            throw CRIError.failedPrecondition("the pod sandbox of container \(c.id) is not ready")
        }
        let key = "start/" + c.id
        guard !reserved.contains(key) else { throw CRIError.failedPrecondition("container \(c.id) is already starting") }
        reserved.insert(key)
        defer { reserved.remove(key) }
        var clock = StepClock("start " + c.id, enabled: options.debug)
        defer { clock.log() }
        try await offload { try sb.startContainer(c.id) }
        clock.mark("sentry")
        guard var u = containers[c.id] else { return }
        u.state = "running"; u.startedAt = nowNanos()
        containers[c.id] = u
        try store.save(.containers, c.id, u, durable: false)
        clock.mark("record")
        emit(u, .containerStartedEvent)
    }

    /// Brings a container's record up to date with its Sentry; returns it.
    @discardableResult
    func refresh(_ id: String) async -> ContainerRecord? {
        guard let c = containers[id] else { return nil }
        guard c.state == "running" else { return c }
        guard let sb = liveSandbox(c.podID) else { return containers[id] }
        guard let st = try? await offload({ try sb.containerStatus(id) }) else { return containers[id] }
        guard st.state == .exited, var u = containers[id], u.state == "running" else { return containers[id] }
        u.state = "exited"
        u.exitCode = st.exitCode
        u.finishedAt = st.finishedAt != 0 ? st.finishedAt : nowNanos()
        u.reason = u.oomKilled == true ? "OOMKilled" : !st.reason.isEmpty ? st.reason : (st.exitCode == 0 ? "Completed" : "Error")
        u.message = readTerminationMessage(u.terminationMessageHostPath)
        containers[id] = u
        try? store.save(.containers, id, u)
        emit(u, .containerStoppedEvent)
        return u
    }

    func stopContainer(_ idArg: String, timeout: Int64) async throws {
        let c = try container(idArg)
        guard await refresh(c.id)?.state == "running", let sb = liveSandbox(c.podID) else { return }
        let id = c.id
        if timeout > 0 && c.stopSignal != SIGKILL {
            let sig = c.stopSignal
            try await offload { try sb.signalContainer(id, sig) }
            let deadline = nowNanos() + timeout * 1_000_000_000
            while nowNanos() < deadline {
                try? await Task.sleep(nanoseconds: 50_000_000)
                if await refresh(id)?.state != "running" { return }
            }
        }
        _ = try? await offload { try sb.signalContainer(id, SIGKILL) }
        for _ in 0..<200 {
            if await refresh(id)?.state != "running" { return }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        throw CRIError.internalError("container \(id) did not exit after SIGKILL")
    }

    func removeContainer(_ idArg: String) async throws {
        let c: ContainerRecord
        do { c = try container(idArg) } catch CRIError.notFound { return }
        if await refresh(c.id)?.state == "running" { try await stopContainer(c.id, timeout: 0) }
        if let sb = liveSandbox(c.podID) {
            let id = c.id
            do { try await offload { try sb.removeContainer(id) } } catch let e as PodError where e.kind == .notFound {}
        }
        containers[c.id] = nil
        dropStdin(c.id)
        for i in c.imagesInUse { imageUse?.release(i, by: c.id) }
        store.delete(.containers, c.id)
        removeTree(store.dir + "/containers/" + c.id)
        emit(c, .containerDeletedEvent)
    }

    func containerStatus(_ idArg: String) async throws -> ContainerRecord {
        let c = try container(idArg)
        return await refresh(c.id) ?? c
    }

    func listContainers(_ f: Runtime_V1_ContainerFilter?) async -> [ContainerRecord] {
        for id in containers.keys { await refresh(id) }
        return containers.values.filter { c in
            guard let f else { return true }
            if !f.id.isEmpty && !c.id.hasPrefix(f.id) { return false }
            if !f.podSandboxID.isEmpty && !c.podID.hasPrefix(f.podSandboxID) { return false }
            if f.hasState && stateEnum(c.state) != f.state.state { return false }
            return f.labelSelector.allSatisfy { c.labels[$0.key] == $0.value }
        }.sorted { $0.createdAt < $1.createdAt }
    }

    /// The sandbox of a running container (FailedPrecondition otherwise).
    func runningSandbox(_ idArg: String) async throws -> (ContainerRecord, PodSandbox) {
        let c = try container(idArg)
        guard await refresh(c.id)?.state == "running", let sb = liveSandbox(c.podID) else {
            throw CRIError.failedPrecondition("container \(c.id) is not running")
        }
        return (c, sb)
    }

    /// Memory limits: the Sentry holds the memory of all the pod's
    /// containers, so no cgroup can limit one of them; `moat cri` samples
    /// the resident memory of each limited container's address spaces and
    /// kills a container that went over (reason OOMKilled, exit 137), as
    /// the kernel's OOM killer would within a cgroup. Called periodically;
    /// a burst between two samples (200 ms) can go over unnoticed, and
    /// pages the Sentry filled that the application never touched are not
    /// counted: a limit, not a hard cap.
    func enforceMemoryLimits() async {
        for c in containers.values where c.state == "running" && (c.memoryLimit ?? 0) > 0 {
            guard let sb = liveSandbox(c.podID) else { continue }
            let id = c.id, limit = UInt64(c.memoryLimit ?? 0)
            guard let st = try? await offload({ try sb.stats(id) }), st.memoryWorkingSetBytes > limit,
                  var u = containers[id], u.state == "running" else { continue }
            u.oomKilled = true
            containers[id] = u
            try? store.save(.containers, id, u)
            _ = try? await offload { try sb.signalContainer(id, SIGKILL) }
        }
    }

    /// UpdateContainerResources: the memory limit (other resources are
    /// accepted and not enforced).
    func updateResources(_ idArg: String, _ r: Runtime_V1_LinuxContainerResources) throws {
        var c = try container(idArg)
        c.memoryLimit = try memoryLimit(r, "linux")
        containers[c.id] = c
        try store.save(.containers, c.id, c)
    }

    /// A descriptor writing to the container's stdin for one attach
    /// (nil if it was made without stdin, or its stdin was closed).
    func attachStdin(_ id: String) -> Int32? {
        guard let w = stdinWriters[id] else { return nil }
        let d = fcntl(w.fd, F_DUPFD_CLOEXEC, 0)
        return d >= 0 ? d : nil
    }

    /// An attach ended: a stdin_once container's stdin closes for good.
    func attachEnded(_ id: String) {
        if stdinWriters[id]?.once == true { dropStdin(id) }
    }

    private func dropStdin(_ id: String) {
        if let w = stdinWriters.removeValue(forKey: id) { close(w.fd) }
    }

    func containersOf(_ podID: String) -> [ContainerRecord] { containers.values.filter { $0.podID == podID } }
    func allContainers() -> [ContainerRecord] { Array(containers.values) }
    func sandbox(_ podID: String) -> PodSandbox? { liveSandbox(podID) }

    // MARK: Events

    func subscribe() -> (UUID, AsyncStream<Runtime_V1_ContainerEventResponse>) {
        let (stream, cont) = AsyncStream<Runtime_V1_ContainerEventResponse>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let id = UUID()
        subscribers[id] = cont
        return (id, stream)
    }

    func unsubscribe(_ id: UUID) { subscribers[id]?.finish(); subscribers[id] = nil }

    /// Ends every event stream (a graceful shutdown waits for open calls).
    func finishSubscribers() {
        for s in subscribers.values { s.finish() }
        subscribers.removeAll()
    }

    private func emit(_ c: ContainerRecord, _ type: Runtime_V1_ContainerEventType) {
        guard !subscribers.isEmpty else { return }
        var e = Runtime_V1_ContainerEventResponse()
        e.containerID = c.id
        e.containerEventType = type
        e.createdAt = nowNanos()
        if let p = pods[c.podID] { e.podSandboxStatus = podStatusMessage(p) }
        e.containersStatuses = [containerStatusMessage(c)]
        for s in subscribers.values { s.yield(e) }
    }
}

func stateEnum(_ s: String) -> Runtime_V1_ContainerState {
    switch s {
    case "created": return .containerCreated
    case "running": return .containerRunning
    case "exited": return .containerExited
    default: return .containerUnknown
    }
}

func podStatusMessage(_ p: PodRecord) -> Runtime_V1_PodSandboxStatus {
    var s = Runtime_V1_PodSandboxStatus()
    s.id = p.id
    s.metadata.name = p.name; s.metadata.uid = p.uid; s.metadata.namespace = p.namespace; s.metadata.attempt = p.attempt
    s.state = p.state == "ready" ? .sandboxReady : .sandboxNotready
    s.createdAt = p.createdAt
    if !p.ip.isEmpty { s.network.ip = p.ip } else { s.network = Runtime_V1_PodSandboxNetworkStatus() }
    func mode(_ m: String) -> Runtime_V1_NamespaceMode {
        switch m { case "node": return .node; case "container": return .container; case "target": return .target; default: return .pod }
    }
    s.linux.namespaces.options.network = mode(p.networkMode)
    s.linux.namespaces.options.pid = mode(p.pidMode)
    s.linux.namespaces.options.ipc = mode(p.ipcMode)
    s.labels = p.labels; s.annotations = p.annotations
    s.runtimeHandler = p.runtimeHandler
    return s
}

func containerStatusMessage(_ c: ContainerRecord) -> Runtime_V1_ContainerStatus {
    var s = Runtime_V1_ContainerStatus()
    s.id = c.id
    s.metadata.name = c.name; s.metadata.attempt = c.attempt
    s.state = stateEnum(c.state)
    s.createdAt = c.createdAt; s.startedAt = c.startedAt; s.finishedAt = c.finishedAt
    s.exitCode = c.exitCode
    s.image.image = c.image
    s.imageRef = c.imageRef
    s.imageID = c.imageID
    s.reason = c.reason; s.message = c.message
    s.labels = c.labels; s.annotations = c.annotations
    s.mounts = c.mounts.map { m in
        var x = Runtime_V1_Mount(); x.containerPath = m.containerPath; x.hostPath = m.hostPath; x.readonly = m.readOnly
        if let image = m.image { x.image.image = image; x.image.imageRef = m.imageID ?? "" }
        return x
    }
    s.logPath = c.logPath
    if let d = c.execDefaults {
        s.user.linux.uid = Int64(d.uid)
        s.user.linux.gid = Int64(d.gid)
        s.user.linux.supplementalGroups = d.additionalGids.map(Int64.init)
    }
    return s
}
