// A pod's containers get Gofers forked by the pod's own zygote
// (Sandbox/GoferZygote.swift) instead of re-executed: such a Gofer must be
// confined exactly as a re-executed one (a server run with
// MOAT_SPAWN=exec), share its address layout with its own pod's zygote
// only (not with moat cri, not with the pod's Sentry, not with another
// pod's Gofer), and the zygote must go with its pod. Needs root.

import CRIAPI
import Foundation
import Glibc
import XCTest

final class CRIGoferZygoteTests: XCTestCase {
    func proc(_ pid: pid_t, _ file: String) -> String {
        // FileHandle reads /proc files (size 0) to their end.
        guard let h = FileHandle(forReadingAtPath: "/proc/\(pid)/\(file)") else { return "" }
        defer { try? h.close() }
        return String(decoding: h.readDataToEndOfFile(), as: UTF8.self)
    }

    func argv(_ pid: pid_t) -> [String] { proc(pid, "cmdline").split(separator: "\0").map(String.init) }

    func parent(_ pid: pid_t) -> pid_t {
        let s = proc(pid, "stat")
        guard let r = s.lastIndex(of: ")") else { return 0 }
        return pid_t(s[s.index(r, offsetBy: 2)...].split(separator: " ")[1]) ?? 0
    }

    /// The Gofers serving a container root (`moat gofer --root DIR`) whose parent is `of`.
    func gofers(childrenOf of: pid_t) -> [pid_t] {
        allProcesses().filter { p in parent(p) == of && Array(argv(p).prefix(3)) == ["moat", "gofer", "--root"] }
    }

    /// The zygote of the pod whose state directory is `dir`.
    func zygote(_ dir: String) -> [pid_t] {
        allProcesses().filter { p in let a = argv(p); return a.contains("--zygote") && a.contains(dir) }
    }

    /// Ids, capabilities, no_new_privs, seccomp, ignored signals, which namespaces are the
    /// host's, its root and its fds (the server's directory read as DIR).
    func confinement(_ pid: pid_t, _ server: CRIProcess) -> [String] {
        let keep = ["Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters", "SigIgn"]
        var out = proc(pid, "status").split(separator: "\n").map(String.init).filter { l in keep.contains { l.hasPrefix($0 + ":") } }
        let fm = FileManager.default
        for ns in ["mnt", "net", "pid", "ipc", "uts", "user", "cgroup"] {
            let same = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)")) == (try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(ns)"))
            out.append("\(ns) \(same ? "host" : "own")")
        }
        out.append("root " + ((try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pid)/root")) ?? "?"))
        let fds = (try? fm.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        out += fds.compactMap { try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
            .map { $0.replacingOccurrences(of: #"\[[0-9]+\]"#, with: "[N]", options: .regularExpression)
                .replacingOccurrences(of: server.dir, with: "DIR") }.sorted()
        return out
    }

    /// Where the command line lies: on the stack after an exec, in a page
    /// of its own in a forked child (moat_fork_start).
    func commandLineOnStack(_ pid: pid_t) throws -> Bool {
        let stat = proc(pid, "stat")
        let fields = stat[try XCTUnwrap(stat.range(of: ")", options: .backwards)).upperBound...].split(separator: " ")
        let argStart = try XCTUnwrap(UInt64(fields[48 - 3]))
        let stack = try XCTUnwrap(proc(pid, "maps").split(separator: "\n").first { $0.hasSuffix("[stack]") })
        let r = stack.prefix { $0 != " " }.split(separator: "-").compactMap { UInt64($0, radix: 16) }
        return r.count == 2 && r[0] <= argStart && argStart < r[1]
    }

    /// The start of the moat binary's first mapping.
    func base(_ pid: pid_t) -> String? {
        proc(pid, "maps").split(separator: "\n").first { $0.hasSuffix("/moat") || $0.hasSuffix("/moat-sandbox") }.map { String($0.prefix { $0 != "-" }) }
    }

    struct PodProcs { var pod: String; var sentry: pid_t; var zygote: pid_t?; var gofer: pid_t }

    func startPod(_ cri: CRIProcess, _ name: String, zygote: Bool) async throws -> PodProcs {
        try await cri.withClient { rt in
            let pc = podConfig(name: name)
            var r = Runtime_V1_RunPodSandboxRequest(); r.config = pc
            let pod = try await rt.runPodSandbox(r).podSandboxID
            var c = Runtime_V1_CreateContainerRequest()
            c.podSandboxID = pod; c.sandboxConfig = pc
            c.config.metadata.name = "c"; c.config.image.image = "busybox"; c.config.command = ["sleep", "1000"]
            let id = try await rt.createContainer(c).containerID
            var s = Runtime_V1_StartContainerRequest(); s.containerID = id
            _ = try await rt.startContainer(s)
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod; ps.verbose = true
            let sentry = pid_t(try await rt.podSandboxStatus(ps).info["sentryPid"] ?? "") ?? 0
            let zs = self.zygote(cri.state + "/pods/" + pod)
            guard zygote else {
                XCTAssertEqual(zs, [], "MOAT_SPAWN=exec: a zygote was started")
                let g = self.gofers(childrenOf: cri.pid)
                XCTAssertEqual(g.count, 1, "the re-executed Gofer is not moat cri's child")
                return PodProcs(pod: pod, sentry: sentry, zygote: nil, gofer: try XCTUnwrap(g.first))
            }
            XCTAssertEqual(zs.count, 1, "the pod has no zygote of its own")
            let z = try XCTUnwrap(zs.first)
            let g = self.gofers(childrenOf: z)
            XCTAssertEqual(g.count, 1, "the container's Gofer was not forked by its pod's zygote")
            return PodProcs(pod: pod, sentry: sentry, zygote: z, gofer: try XCTUnwrap(g.first))
        }
    }

    func testContainerGofersAreForkedByTheirPodsOwnZygote() async throws {
        try CRITestEnv.requireRoot()
        guard FileManager.default.fileExists(atPath: CRITestEnv.rootfs + "/bin/busybox") else {
            return try CRITestEnv.missing("the busybox rootfs (bash rootfs/busybox.sh)")
        }
        // The reference: a server that re-executes every Gofer.
        let execed = try CRIProcess(extraArgs: ["--rootfs-image", "busybox=" + CRITestEnv.rootfs])
        defer { execed.stop(); execed.removeDirectory() }
        setenv("MOAT_SPAWN", "exec", 1)
        do { defer { unsetenv("MOAT_SPAWN") }; try execed.start() }
        let ref = try await startPod(execed, "ref", zygote: false)
        XCTAssertTrue(try commandLineOnStack(ref.gofer), "MOAT_SPAWN=exec: the Gofer was not re-executed")

        let cri = try CRIProcess(extraArgs: ["--rootfs-image", "busybox=" + CRITestEnv.rootfs])
        defer { cri.stop(); cri.removeDirectory() }
        try cri.start()
        let a = try await startPod(cri, "zyg-a", zygote: true)
        let b = try await startPod(cri, "zyg-b", zygote: true)
        for p in [a, b] {
            XCTAssertFalse(try commandLineOnStack(p.gofer), "the Gofer of pod \(p.pod) was re-executed, not forked")
            XCTAssertEqual(confinement(p.gofer, cri), confinement(ref.gofer, execed), "a forked Gofer is confined unlike a re-executed one")
            XCTAssertEqual(Array(argv(p.gofer).prefix(2)), ["moat", "gofer"])
            XCTAssertNotNil(base(p.gofer))
            XCTAssertEqual(base(p.gofer), base(try XCTUnwrap(p.zygote)), "the forked Gofer's layout is not its zygote's")
            XCTAssertNotEqual(base(p.gofer), base(p.sentry), "the pod's Sentry shares its Gofer's layout")
            XCTAssertNotEqual(base(p.gofer), base(cri.pid), "a pod's Gofer shares moat cri's layout")
        }
        XCTAssertNotEqual(base(a.gofer), base(b.gofer), "two pods' Gofers share a layout")

        // The zygote goes with its pod.
        try await cri.withClient { rt in
            var r = Runtime_V1_RemovePodSandboxRequest(); r.podSandboxID = a.pod
            _ = try await rt.removePodSandbox(r)
        }
        let z = try XCTUnwrap(a.zygote)
        for _ in 0..<100 where kill(z, 0) == 0 && !isZombie(z) { usleep(50_000) }
        XCTAssertTrue(kill(z, 0) != 0 || isZombie(z), "the zygote of a removed pod is still running")
        XCTAssertEqual(zygote(cri.state + "/pods/" + b.pod).count, 1, "removing one pod ended another's zygote")
    }
}
