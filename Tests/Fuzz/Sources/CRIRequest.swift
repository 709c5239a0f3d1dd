// What kubelet (or anyone who can reach the CRI socket) sends `moat cri`:
// a CreateContainerRequest, decoded by swift-protobuf and then turned into
// a container of a pod (argv, environment, user, mounts, log path,
// capabilities, seccomp, generated /etc files) by `planContainer`, and
// localhost seccomp profiles read from files the request names. Planning
// only reads the host (the directories and files a plan needs are made
// afterwards by `prepareHost`, which this target never calls), so any
// request can go through it. What a plan promises is checked: nothing
// relative reaches the Sentry as a path, the log file stays in the pod's
// log directory, ids stay in range, devices never pass.

import Foundation
import CRIAPI
import Images
import Sandbox
@testable import CRI

enum CRIRequestFuzz {
    static let target = FuzzTarget(
        name: "cri-container",
        summary: "CRI CreateContainerRequest (protobuf) through container planning; localhost seccomp profiles: [kind][bytes]",
        setUp: setUp,
        run: run)

    nonisolated(unsafe) static var scratch = ""
    nonisolated(unsafe) static var pod: PodRecord! = nil
    nonisolated(unsafe) static var image: ResolvedImage! = nil

    /// A pod and an image with a small root (users and groups to resolve)
    /// in a scratch directory, made once.
    static func setUp() {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        scratch = base + "/moat-fuzz-cri-\(getpid())"
        let fm = FileManager.default
        try? fm.createDirectory(atPath: scratch + "/rootfs/etc", withIntermediateDirectories: true)
        try? fm.createDirectory(atPath: scratch + "/ctr", withIntermediateDirectories: true)
        _ = fm.createFile(atPath: scratch + "/rootfs/etc/passwd", contents: Data("root:x:0:0::/root:/bin/sh\nweb:x:33:44::/:/bin/sh\n".utf8))
        fm.createFile(atPath: scratch + "/rootfs/etc/group", contents: Data("root:x:0:\nweb:x:44:\nextra:x:1000:web\n".utf8))
        atexit { try? FileManager.default.removeItem(atPath: CRIRequestFuzz.scratch) }
        pod = PodRecord(id: "p", name: "web", uid: "u", namespace: "default", attempt: 0, createdAt: 0, state: "ready",
                        labels: [:], annotations: [:], hostname: "web", logDirectory: scratch + "/logs", runtimeHandler: "",
                        stateDir: scratch + "/state", networkMode: "pod", pidMode: "pod", ipcMode: "pod",
                        dnsServers: ["10.96.0.10"], dnsSearches: ["default.svc.cluster.local"], dnsOptions: ["ndots:5"])
        var cfg = ImageConfig()
        cfg.cmd = ["/bin/sh"]; cfg.env = ["PATH=/bin"]; cfg.user = "web"; cfg.workingDir = "/srv"
        image = ResolvedImage(id: "sha256:0", references: ["busybox", "busybox@sha256:1"], rootfs: scratch + "/rootfs", config: cfg)
    }

    static func run(_ input: [UInt8]) {
        guard let kind = input.first else { return }
        let body = Array(input.dropFirst())
        if kind % 2 == 1 { return profile(body) }
        guard let r = try? Runtime_V1_CreateContainerRequest(serializedBytes: body) else { return }
        guard let plan = try? planContainer(id: "cid", request: r, pod: pod, image: image, containerDir: scratch + "/ctr") else { return }
        let c = plan.config, p = c.process
        if p.argv.isEmpty { fatalError("a container without argv was planned") }
        if !p.cwd.hasPrefix("/") { fatalError("a relative working directory was planned: \(p.cwd)") }
        if p.uid == UInt32.max || p.gid == UInt32.max || p.additionalGids.contains(UInt32.max) {
            fatalError("the id -1 was planned: \(p.uid):\(p.gid) \(p.additionalGids)")
        }
        for m in c.mounts {
            if !m.containerPath.hasPrefix("/") { fatalError("a relative mount point was planned: \(m.containerPath)") }
            if case .bind(let host) = m.kind, !host.hasPrefix("/") { fatalError("a relative bind source was planned: \(host)") }
        }
        if let log = c.logPath, !log.isEmpty {
            if !log.hasPrefix(pod.logDirectory + "/") || log.split(separator: "/").contains("..") {
                fatalError("a log file outside the pod's log directory was planned: \(log)")
            }
        }
        for d in plan.hostDirectories where !d.hasPrefix("/") { fatalError("a relative host directory was planned: \(d)") }
        for f in plan.hostFiles where !f.hasPrefix(scratch + "/ctr/") { fatalError("a host file outside the container's directory was planned: \(f)") }
        if !r.config.devices.isEmpty || !r.config.cdiDevices.isEmpty { fatalError("a device was planned into a sandbox") }
    }

    /// A localhost seccomp profile: the bytes as the file a request names.
    static func profile(_ body: [UInt8]) {
        let path = scratch + "/profile.json"
        guard FileManager.default.createFile(atPath: path, contents: Data(body)) else { return }
        guard let p = try? localhostSeccomp(path, field: "f") else { return }
        if !seccompActions.contains(p.defaultAction) { fatalError("unknown default action accepted: \(p.defaultAction)") }
        for r in p.rules {
            if r.names.isEmpty || !seccompActions.contains(r.action) { fatalError("a rule without names or with an unknown action: \(r)") }
            for a in r.args where !(0...5).contains(a.index) || !seccompOps.contains(a.op) { fatalError("an argument condition out of range: \(a)") }
        }
    }
}
