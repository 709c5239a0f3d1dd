// Node-pressure eviction, as kubelet does it. Every sync the agent observes the
// eviction signals: memory.available (MemAvailable of /proc/meminfo against
// MemTotal), nodefs.available and nodefs.inodesFree (statvfs of the agent's
// --root), imagefs.available (statvfs of the runtime's ImageFsInfo
// mountpoint) and pid.available (the kernel's pid limit less its tasks). A
// hard threshold (--eviction-hard memory.available<100Mi,nodefs.available<10%)
// that a signal crosses puts the node under pressure: the condition
// MemoryPressure, DiskPressure or PIDPressure turns True, and stays True until
// the signal has been clear for the transition period (so it does not flap);
// NodeLifecycleController taints the node by these conditions, so the
// scheduler sends no more pods (BestEffort ones only, for memory pressure).
//
// While a threshold is crossed the agent reclaims: for a disk signal it first
// removes every unused image (image GC regardless of its thresholds), and if
// that was not enough, or for memory and pids, it evicts one pod per pass:
// the pods whose usage exceeds their requests first, then the lowest
// priority, then the largest usage above requests (usage from the runtime's
// ListContainerStats: memory working set, writable layer). The pod's
// containers are stopped with no grace period, its sandbox stopped, and its
// status becomes phase Failed, reason Evicted, with a message naming the
// signal; an Event says so. An evicted pod is never started again (sync
// skips it); its controller replaces it. While under memory pressure a new
// BestEffort pod bound to the node is rejected the same way, and any new pod
// under disk or pid pressure.
//
// The choice (`Eviction.met`, `Eviction.rank`) is a pure function of the
// thresholds, observations and pods; `evictionPass` feeds it.

import CRIAPI
import ControlPlane
import Foundation
import Glibc

public struct EvictionThreshold: Sendable, Equatable, CustomStringConvertible {
    public enum Signal: String, Sendable, CaseIterable {
        case memoryAvailable = "memory.available", nodefsAvailable = "nodefs.available"
        case nodefsInodesFree = "nodefs.inodesFree", imagefsAvailable = "imagefs.available"
        case pidAvailable = "pid.available"

        /// The node condition this signal drives.
        var condition: String {
            switch self {
            case .memoryAvailable: return "MemoryPressure"
            case .pidAvailable: return "PIDPressure"
            default: return "DiskPressure"
            }
        }
        /// The resource named in the eviction message.
        var resource: String {
            switch self {
            case .memoryAvailable: return "memory"
            case .nodefsAvailable, .imagefsAvailable: return "ephemeral-storage"
            case .nodefsInodesFree: return "inodes"
            case .pidAvailable: return "pids"
            }
        }
    }
    public enum Value: Sendable, Equatable {
        case quantity(UInt64)
        case percent(Double)
    }
    public var signal: Signal
    public var value: Value

    /// The threshold in the signal's unit, for a capacity of `capacity`.
    func limit(capacity: UInt64) -> UInt64 {
        switch value {
        case .quantity(let q): return q
        case .percent(let p): return UInt64((Double(capacity) * p / 100).rounded())
        }
    }

    public var description: String {
        switch value {
        case .quantity(let q): return "\(signal.rawValue)<\(q)"
        case .percent(let p): return "\(signal.rawValue)<\(p)%"
        }
    }

    /// Kubelet's defaults on Linux.
    public static let defaultsText = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%"
    public static let defaults = try! parse(defaultsText)

    /// `SIGNAL<QUANTITY` or `SIGNAL<PERCENT%`, comma separated (a quantity as Kubernetes writes one: 100Mi, 1G, 2000).
    public static func parse(_ s: String) throws -> [EvictionThreshold] {
        var out: [EvictionThreshold] = []
        for term in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !term.isEmpty {
            let parts = term.split(separator: "<", maxSplits: 1).map(String.init)
            guard parts.count == 2, let signal = Signal(rawValue: parts[0]) else {
                throw NodeAgentError("eviction threshold \(term): expected SIGNAL<QUANTITY, SIGNAL one of \(Signal.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let v = parts[1]
            if v.hasSuffix("%") {
                guard let p = Double(v.dropLast()), p >= 0, p <= 100 else { throw NodeAgentError("eviction threshold \(term): bad percentage") }
                out.removeAll { $0.signal == signal }
                out.append(.init(signal: signal, value: .percent(p)))
            } else {
                guard let q = Quantity.parse(v), q >= 0 else { throw NodeAgentError("eviction threshold \(term): bad quantity") }
                out.removeAll { $0.signal == signal }
                out.append(.init(signal: signal, value: .quantity(UInt64(q.rounded()))))
            }
        }
        return out
    }
}

/// What the node has of one signal's resource.
struct EvictionObservation: Equatable {
    var available: UInt64
    var capacity: UInt64

    /// The file system holding `path` in bytes, as kubelet counts them: what an unprivileged
    /// writer may still use (f_bavail) of its whole size; nil when statvfs fails (errno set).
    static func fileSystem(at path: String) -> EvictionObservation? {
        var st = statvfs()
        guard statvfs(path, &st) == 0 else { return nil }
        return .init(available: UInt64(st.f_bavail) * UInt64(st.f_frsize), capacity: UInt64(st.f_blocks) * UInt64(st.f_frsize))
    }
}

/// One pod as eviction sees it.
struct EvictionCandidate: Equatable {
    var uid: String
    var priority: Int
    /// Usage and request of the pressured resource (bytes; 0 when not known or not asked).
    var usage: UInt64
    var request: UInt64
    var exceeds: Bool { usage > request }
}

enum Eviction {
    /// The thresholds that the observations cross now (a signal not observed crosses nothing).
    static func met(_ thresholds: [EvictionThreshold], _ obs: [EvictionThreshold.Signal: EvictionObservation]) -> [EvictionThreshold] {
        thresholds.filter { t in
            guard let o = obs[t.signal] else { return false }
            return o.available < t.limit(capacity: o.capacity)
        }
    }

    /// The pressure conditions that are True at `now`: a condition whose signal crossed a
    /// threshold within the last `transition` seconds (`lastMet`: when each was last seen).
    static func conditions(lastMet: [String: Date], now: Date, transition: TimeInterval) -> Set<String> {
        Set(lastMet.filter { $0.value >= now || now.timeIntervalSince($0.value) < transition }.keys)
    }

    /// The eviction order: usage above requests first, then lower priority, then larger usage above requests.
    static func rank(_ pods: [EvictionCandidate]) -> [EvictionCandidate] {
        pods.sorted { a, b in
            if a.exceeds != b.exceeds { return a.exceeds }
            if a.priority != b.priority { return a.priority < b.priority }
            let da = Int64(clamping: a.usage) - Int64(clamping: a.request), db = Int64(clamping: b.usage) - Int64(clamping: b.request)
            if da != db { return da > db }
            return a.uid < b.uid
        }
    }
}

/// The eviction manager's memory. Sync loop only.
final class EvictionState: @unchecked Sendable {
    /// When each pressure condition's signal last crossed its threshold.
    var lastMet: [String: Date] = [:]
    /// The pressure conditions last put in the Node's status.
    var posted = Set<String>()
    /// When each condition last changed (its lastTransitionTime).
    var transitions: [String: String] = [:]
}

extension NodeAgent {
    /// The node's current observations of every signal.
    func observe() async -> [EvictionThreshold.Signal: EvictionObservation] {
        var obs: [EvictionThreshold.Signal: EvictionObservation] = [:]
        if let m = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            var kv: [String: UInt64] = [:]
            for l in m.split(separator: "\n") {
                let f = l.split(whereSeparator: { $0 == ":" || $0 == " " })
                if f.count >= 2, let v = UInt64(f[1]) { kv[String(f[0])] = v * 1024 }
            }
            if let total = kv["MemTotal"], let avail = kv["MemAvailable"] { obs[.memoryAvailable] = .init(available: avail, capacity: total) }
        }
        try? FileManager.default.createDirectory(atPath: o.root, withIntermediateDirectories: true)
        obs[.nodefsAvailable] = .fileSystem(at: o.root)
        var st = statvfs()
        if statvfs(o.root, &st) == 0, st.f_files > 0 {
            obs[.nodefsInodesFree] = .init(available: UInt64(st.f_favail), capacity: UInt64(st.f_files))
        }
        let mount = (try? await images.imageFsInfo(Runtime_V1_ImageFsInfoRequest()))?.imageFilesystems.first?.fsID.mountpoint ?? ""
        obs[.imagefsAvailable] = .fileSystem(at: mount.isEmpty ? o.root : mount)
        // pid.available: the kernel's limit (the lower of pid_max and threads-max) less its tasks (/proc/loadavg's 4th field).
        func number(_ path: String) -> UInt64? { (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        if let pidMax = number("/proc/sys/kernel/pid_max"), let load = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) {
            let cap = min(pidMax, number("/proc/sys/kernel/threads-max") ?? pidMax)
            let fields = load.split(separator: " ")
            if fields.count >= 4, let tasks = fields[3].split(separator: "/").last.flatMap({ UInt64($0) }) {
                obs[.pidAvailable] = .init(available: cap - min(cap, tasks), capacity: cap)
            }
        }
        return obs
    }

    /// The pressure conditions as the Node's status shows them (all three, True or False).
    func pressureConditions(now: String) -> [JSON] {
        let on = lock.withLock { eviction.posted }
        let transitions = lock.withLock { eviction.transitions }
        let kinds: [(String, String, String, String, String)] = [
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        ]
        return kinds.map { k in
            let p = on.contains(k.0)
            return ["type": .string(k.0), "status": .string(p ? "True" : "False"), "reason": .string(p ? k.3 : k.1),
                    "message": .string(p ? k.4 : k.2), "lastHeartbeatTime": .string(now), "lastTransitionTime": .string(transitions[k.0] ?? now)]
        }
    }

    /// One pass of the eviction manager over the pods bound to the node: updates the pressure
    /// conditions (posting the Node's status when they change) and, while a threshold is
    /// crossed, reclaims: unused images for disk, else one pod evicted. Returns its uid.
    @discardableResult
    func evictionPass(_ pods: [JSON], now: Date = Date()) async -> String? {
        guard !o.evictionHard.isEmpty else { return nil }
        var met = Eviction.met(o.evictionHard, await observe())
        let state = eviction
        for t in met { state.lastMet[t.signal.condition] = now }
        let on = Eviction.conditions(lastMet: state.lastMet, now: now, transition: o.evictionPressureTransitionPeriod)
        if on != lock.withLock({ state.posted }) {
            lock.withLock {
                for c in on.symmetricDifference(state.posted) { state.transitions[c] = Timestamp.string(now) }
                state.posted = on
            }
            log.warning("node conditions: \(on.isEmpty ? "no pressure" : on.sorted().joined(separator: ", "))\(met.isEmpty ? "" : " (\(met.map(\.description).joined(separator: ", ")))")")
            do { try await postStatus() } catch { log.info("posting the node's pressure conditions: \(error)") }
        }
        guard !met.isEmpty else { return nil }
        // Disk: unused images first.
        if met.contains(where: { $0.signal == .imagefsAvailable || $0.signal == .nodefsAvailable || $0.signal == .nodefsInodesFree }) {
            var policy = o.imageGC
            policy.highThresholdPercent = 0; policy.lowThresholdPercent = 0
            if let removed = try? await collectImages(now: now, policy: policy), !removed.isEmpty {
                met = Eviction.met(o.evictionHard, await observe())
                if met.isEmpty { log.info("eviction: image GC relieved the disk pressure"); return nil }
            }
        }
        let t = met[0]
        return await evictOne(pods, for: t)
    }

    /// Evicts the first pod in eviction order for the crossed threshold `t`.
    func evictOne(_ pods: [JSON], for t: EvictionThreshold) async -> String? {
        let active = pods.filter { $0.deletionTimestamp == nil && !Self.isTerminal($0) }
        guard !active.isEmpty else { return nil }
        var usage: [String: UInt64] = [:]
        if t.signal != .pidAvailable, let stats = try? await runtime.listContainerStats(Runtime_V1_ListContainerStatsRequest()).stats {
            for s in stats {
                guard let uid = s.attributes.labels[Labels.podUID] else { continue }
                usage[uid, default: 0] += t.signal == .memoryAvailable ? s.memory.workingSetBytes.value : s.writableLayer.usedBytes.value
            }
        }
        let candidates = active.map { p in
            EvictionCandidate(uid: p.uid, priority: p["spec"]["priority"].int ?? 0, usage: usage[p.uid] ?? 0,
                              request: UInt64(max(0, t.signal == .memoryAvailable ? Pods.requests(p).memory : Self.ephemeralRequest(p))))
        }
        guard let victim = Eviction.rank(candidates).first, let pod = active.first(where: { $0.uid == victim.uid }) else { return nil }
        let obs = await observe()[t.signal]
        let message = "The node was low on resource: \(t.signal.resource). Threshold quantity: \(t.limit(capacity: obs?.capacity ?? 0)), available: \(obs?.available ?? 0). "
            + "The pod was using \(victim.usage), request is \(victim.request)."
        log.warning("evicting pod \(pod.namespace)/\(pod.name): \(message)")
        await evict(pod, message: message)
        return pod.uid
    }

    /// Stops the pod at once (no grace period) and marks it Failed/Evicted with an Event.
    func evict(_ pod: JSON, message: String) async {
        var f = Runtime_V1_ListPodSandboxRequest(); f.filter.labelSelector = [Labels.podUID: pod.uid]
        for sb in (try? await runtime.listPodSandbox(f).items) ?? [] {
            var lf = Runtime_V1_ListContainersRequest(); lf.filter.podSandboxID = sb.id
            for c in ((try? await runtime.listContainers(lf))?.containers ?? []) where c.state == .containerRunning {
                var s = Runtime_V1_StopContainerRequest(); s.containerID = c.id; s.timeout = 0
                do { _ = try await runtime.stopContainer(s) } catch { log.info("evicting \(pod.name): stopping \(c.id): \(error)") }
            }
            var s = Runtime_V1_StopPodSandboxRequest(); s.podSandboxID = sb.id
            do { _ = try await runtime.stopPodSandbox(s) } catch { log.info("evicting \(pod.name): stopping sandbox \(sb.id): \(error)") }
        }
        await markEvicted(pod, message: message)
    }

    /// Phase Failed, reason Evicted, not ready; and the Event.
    func markEvicted(_ pod: JSON, message: String) async {
        let now = Timestamp.now()
        var conditions = pod["status"]["conditions"].array ?? []
        for i in conditions.indices where ["Ready", "ContainersReady"].contains(conditions[i]["type"].string ?? "") && conditions[i]["status"].string != "False" {
            conditions[i]["status"] = "False"; conditions[i]["lastTransitionTime"] = .string(now)
        }
        var status: JSON = ["phase": "Failed", "reason": "Evicted", "message": .string(message)]
        if !conditions.isEmpty { status["conditions"] = .array(conditions) }
        do {
            _ = try await api.patch(.pods, namespace: pod.namespace, name: pod.name, ["status": status], subresource: "status")
        } catch { log.info("pod \(pod.namespace)/\(pod.name): marking evicted: \(error)") }
        await record(pod, container: nil, "Warning", "Evicted", message)
    }

    /// A new pod the node must not take under its current pressure (kubelet's admission):
    /// a BestEffort one under memory pressure, any under disk or pid pressure. The reason, or nil.
    func admissionRejection(_ pod: JSON) -> String? {
        let on = lock.withLock { eviction.posted }
        if on.contains("DiskPressure") { return "The node had condition: [DiskPressure]." }
        if on.contains("PIDPressure") { return "The node had condition: [PIDPressure]." }
        if on.contains("MemoryPressure"), Pods.qosClass(pod) == "BestEffort" { return "The node had condition: [MemoryPressure]." }
        return nil
    }

    static func isTerminal(_ pod: JSON) -> Bool { pod.phase == "Failed" || pod.phase == "Succeeded" }

    /// The pod's ephemeral-storage requests, in bytes.
    static func ephemeralRequest(_ p: JSON) -> Int64 {
        (p["spec"]["containers"].array ?? []).reduce(0) { $0 + Quantity.bytes($1["resources"]["requests"]["ephemeral-storage"]) }
    }
}
