// Pid namespaces of a pod (Sentry/Kernel/PidNamespaces.swift), as critest's
// NamespaceOption ContainerPID and PodPID specs and Linux have them:
//  - CONTAINER: each container's first process is pid 1 of a namespace of
//    its own; an exec'd process joins it; another container's processes,
//    numbered from 1 too, are not seen.
//  - POD: the containers share one namespace whose pid 1 is the pod's init
//    (/proc/1/cmdline "/pause"); each sees the other's processes; init
//    survives SIGKILL from inside and reaps the orphans it inherits.

import CRIAPI
import Foundation
import XCTest

extension CRIPodTests {
    private func text(_ r: Runtime_V1_ExecSyncResponse) -> String { String(decoding: r.stdout, as: UTF8.self) }

    /// The command lines of every process `id` sees, one per line, NULs as spaces.
    private func visible(_ rt: RuntimeClient, _ id: String) async throws -> String {
        text(try await execSync(rt, id, ["sh", "-c", "for d in /proc/[0-9]*; do echo \"${d#/proc/}: $(tr '\\0' ' ' < $d/cmdline)\"; done"]))
    }

    func testContainerPidNamespaceStartsAtOneAndHidesOtherContainers() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        var pc = podConfig(name: "pidns-container")
        pc.linux.securityContext.namespaceOptions.pid = .container
        try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            let a = try await startContainer(rt, pod: pod, pc, name: "a", command: ["sleep", "1000"])
            let b = try await startContainer(rt, pod: pod, pc, name: "b", command: ["sleep", "1001"])
            for (id, own, other) in [(a, "sleep 1000", "sleep 1001"), (b, "sleep 1001", "sleep 1000")] {
                let first = text(try await execSync(rt, id, ["cat", "/proc/1/cmdline"]))
                XCTAssertEqual(first, own.replacingOccurrences(of: " ", with: "\0") + "\0")
                let seen = try await visible(rt, id)
                XCTAssertTrue(seen.split(separator: "\n").contains("1: \(own) "), seen)
                XCTAssertFalse(seen.contains(other), "another container's process is visible: \(seen)")
                // An exec'd process is in the namespace: small pids, its parent (outside) is 0.
                let ids = text(try await execSync(rt, id, ["sh", "-c", "echo $$ $PPID; (read p c s pp rest < /proc/self/stat; echo $p $pp); true"]))
                let f = ids.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
                XCTAssertEqual(f.count, 4, ids)
                if f.count == 4 {
                    XCTAssertGreaterThan(f[0], 1, ids); XCTAssertLessThan(f[0], 100, ids)
                    XCTAssertEqual(f[1], 0, ids)
                    XCTAssertEqual(f[3], f[0], "the subshell's parent is the shell: \(ids)")
                }
                // Signals to pid 1 from inside do not kill init (SIGKILL is ignored, as on Linux).
                _ = try await execSync(rt, id, ["kill", "-9", "1"])
                let state = try await status(rt, id).state
                XCTAssertEqual(state, .containerRunning)
            }
            var sp = Runtime_V1_StopPodSandboxRequest(); sp.podSandboxID = pod
            _ = try await rt.stopPodSandbox(sp)
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
        }
    }

    func testPodPidNamespaceHasAnInitAtOneThatReapsOrphans() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        var pc = podConfig(name: "pidns-pod")
        pc.linux.securityContext.namespaceOptions.pid = .pod
        try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            let a = try await startContainer(rt, pod: pod, pc, name: "a", command: ["sleep", "1000"])
            let b = try await startContainer(rt, pod: pod, pc, name: "b", command: ["sleep", "1001"])
            let cmdline = text(try await execSync(rt, a, ["cat", "/proc/1/cmdline"]))
            XCTAssertEqual(cmdline, "/pause\0")
            let stat = text(try await execSync(rt, b, ["cut", "-d ", "-f1-2", "/proc/1/stat"]))
            XCTAssertEqual(stat, "1 (pause)\n")
            for id in [a, b] {
                let seen = try await visible(rt, id)
                XCTAssertTrue(seen.contains("sleep 1000") && seen.contains("sleep 1001"), "the pod's processes are shared: \(seen)")
                XCTAssertFalse(seen.split(separator: "\n").contains { $0.hasPrefix("1: sleep") }, seen)
            }
            _ = try await execSync(rt, a, ["kill", "-9", "1"])
            let after = text(try await execSync(rt, b, ["cat", "/proc/1/cmdline"]))
            XCTAssertEqual(after, "/pause\0", "init survives SIGKILL from inside")
            // An orphan (its shell has exited) goes to init, which reaps it
            // when it exits: no zombie is left behind.
            let orphan = text(try await execSync(rt, a, ["sh", "-c", "sleep 1 >/dev/null 2>&1 & echo $!"])).trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertNotNil(Int(orphan), orphan)
            let parent = text(try await execSync(rt, a, ["sh", "-c", "cut -d' ' -f4 /proc/\(orphan)/stat 2>/dev/null || echo gone"]))
            XCTAssertTrue(parent == "1\n" || parent == "gone\n", "the orphan's parent: \(parent)")
            var state = ""
            for _ in 0..<100 {
                state = text(try await execSync(rt, b, ["sh", "-c", "cut -d' ' -f3 /proc/\(orphan)/stat 2>/dev/null || echo gone"]))
                if state == "gone\n" { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            XCTAssertEqual(state, "gone\n", "the orphan was not reaped")
            var sp = Runtime_V1_StopPodSandboxRequest(); sp.podSandboxID = pod
            _ = try await rt.stopPodSandbox(sp)
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
        }
    }
}
