// ExecSync in pods whose namespace options ask for the node's IPC (HostIpc, as
// critest's NamespaceOption spec does) or the pod's: a command that runs, one
// that exits non-zero, one whose program the image does not have (critest's
// `ipcs -m` before its image had ipcs) and one that leaves a background
// process holding its output all answer, none waits for the timeout. The
// missing program used to hang ExecSync for good: the pod Sentry kept the
// exec's stdout and stderr pipes open after failing to start it.
// Exec with a terminal (crictl exec -it, kubectl exec -it): the process's stdio
// is a pseudo-terminal in the pod's Sentry, sized by the client's resize
// message, with its line discipline (echo, CR read as NL, NL written as CR NL);
// the same command without a terminal sees none. Needs root.

import CRIAPI
import Foundation
import GRPCCore
import XCTest

// Part of CRIPodTests (its pod and container helpers).
extension CRIPodTests {
    func testExecSyncAnswersInHostIpcAndPodIpcPods() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        try await cri.withClient { rt in
            let modes: [Runtime_V1_NamespaceMode] = [.node, .pod]
            for mode in modes {
                var pc = podConfig(name: "ipc-\(mode.rawValue)")
                pc.linux.securityContext.namespaceOptions.ipc = mode
                let pod = try await self.runPod(rt, pc)
                let c = try await self.startContainer(rt, pod: pod, pc, name: "main", command: ["sleep", "1000"])

                let ok = try await self.execSync(rt, c, ["sh", "-c", "echo in-$0", "\(mode)"], timeout: 20)
                XCTAssertEqual(String(decoding: ok.stdout, as: UTF8.self), "in-\(mode)\n")
                XCTAssertEqual(ok.exitCode, 0)
                let bad = try await self.execSync(rt, c, ["sh", "-c", "exit 7"], timeout: 20)
                XCTAssertEqual(bad.exitCode, 7)
                // A program the image does not have: an answer (an error, or exit code 127
                // with the reason on stderr), not a wait until the timeout.
                do {
                    let missing = try await self.execSync(rt, c, ["ipcs", "-m"], timeout: 20)
                    XCTAssertNotEqual(missing.exitCode, 0, "ipcs -m in a \(mode) IPC pod")
                } catch let e as RPCError {
                    XCTAssertNotEqual(e.code, .deadlineExceeded, "ipcs -m in a \(mode) IPC pod: \(e)")
                }
                // Each failed start closes what the pod Sentry was given for it:
                // the exec's stdout and stderr pipes (3 host fds per exec) did not
                // close and the client waited for their end.
                var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod; ps.verbose = true
                let sentry = pid_t(try await rt.podSandboxStatus(ps).info["sentryPid"] ?? "") ?? 0
                XCTAssertGreaterThan(sentry, 0)
                let fdsBefore = hostFDCount(sentry)
                for _ in 0..<10 { _ = try? await self.execSync(rt, c, ["ipcs", "-m"], timeout: 20) }
                XCTAssertLessThan(hostFDCount(sentry), fdsBefore + 10, "host fds of the pod Sentry after 10 failed execs")
                // A command that leaves a process holding its output: the answer
                // comes when the command exits, with what it wrote.
                let bg = try await self.execSync(rt, c, ["sh", "-c", "sleep 1000 & echo started-$!"], timeout: 20)
                XCTAssertTrue(String(decoding: bg.stdout, as: UTF8.self).hasPrefix("started-"), String(decoding: bg.stdout, as: UTF8.self))
                XCTAssertEqual(bg.exitCode, 0)
                // And the pod still answers afterwards.
                let after = try await self.execSync(rt, c, ["echo", "after"], timeout: 20)
                XCTAssertEqual(String(decoding: after.stdout, as: UTF8.self), "after\n")

                var s = Runtime_V1_StopPodSandboxRequest(); s.podSandboxID = pod
                _ = try await rt.stopPodSandbox(s)
                var r = Runtime_V1_RemovePodSandboxRequest(); r.podSandboxID = pod
                _ = try await rt.removePodSandbox(r)
            }
        }
    }

    func testExecWithATerminalGetsAPtyOfTheClientsSize() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        try await cri.withClient { rt in
            let pc = podConfig(name: "tty")
            let pod = try await self.runPod(rt, pc)
            let c = try await self.startContainer(rt, pod: pod, pc, name: "main", command: ["sleep", "1000"])
            let script = "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo on-a-tty; echo start; read x; stty size; echo got-$x; exit 5"
            for tty in [true, false] {
                var ex = Runtime_V1_ExecRequest()
                ex.containerID = c
                ex.cmd = ["sh", "-c", script]
                ex.tty = tty; ex.stdin = true; ex.stdout = true; ex.stderr = !tty
                let url = try await rt.exec(ex).url
                let r = try await Task.detached {
                    try WebSocketTestClient.exec(url, stdin: Array((tty ? "typed\r" : "typed\n").utf8), after: "start", resize: (100, 30))
                }.value
                XCTAssertEqual(r.httpStatus, 101)
                let out = r.text(1)
                XCTAssertTrue(r.text(3).contains("\"5\""), r.text(3))
                if tty {
                    XCTAssertTrue(out.contains("on-a-tty\r\n"), out)     // NL written as CR NL
                    XCTAssertTrue(out.contains("typed\r\n"), out)        // the typed line echoed, its CR read as NL
                    XCTAssertTrue(out.contains("30 100\r\n"), out)       // stty size: rows, columns
                    XCTAssertTrue(out.contains("got-typed\r\n"), out)
                } else {
                    XCTAssertFalse(out.contains("on-a-tty"), out)
                    XCTAssertTrue(out.contains("got-typed\n"), out)
                    XCTAssertFalse(r.text(2).isEmpty)                  // stty: no terminal
                }
            }
        }
    }
}

/// How many fds a host process has open.
private func hostFDCount(_ pid: pid_t) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
}
