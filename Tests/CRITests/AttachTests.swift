// Attach and the security-context paths over the real socket: attach to a
// stdin/stdin_once shell (its output from the moment of attaching, stdin
// into the shell, the stream ending when the shell exits at end of stdin);
// masked and read-only paths as the application sees them; ReopenContainerLog
// after the log was moved away; image volumes (read-only, sub-paths that
// must stay inside the image); per-container memory in stats, memory limits
// (OOMKilled) and UpdateContainerResources; RunAsGroup without a user
// refused. Needs root.

import CRIAPI
import Foundation
import XCTest

extension CRIPodTests {
    func testAttachPathsImageVolumesMemoryAndLogReopen() async throws {
        let t = self
        let cri = try t.server()
        defer { cri.stop(); cri.removeDirectory() }
        let logs = cri.dir + "/logs"
        let pc = podConfig(name: "att", logDirectory: logs)
        try await cri.withClient { rt in
            let pod = try await t.runPod(rt, pc)

            // Attach to a shell reading its stdin.
            let shell = try await t.startContainer(rt, pod: pod, pc, name: "shell", command: ["sh"]) { c in
                c.stdin = true; c.stdinOnce = true
            }
            var a = Runtime_V1_AttachRequest()
            a.containerID = shell; a.stdin = true; a.stdout = true; a.stderr = true
            let url = try await rt.attach(a).url
            XCTAssertTrue(url.contains("/attach/"), url)
            let r = try WebSocketTestClient.exec(url, stdin: Array("echo hello-attach; echo to-err >&2\n".utf8))
            XCTAssertEqual(r.httpStatus, 101)
            XCTAssertEqual(r.text(1), "hello-attach\n")
            XCTAssertEqual(r.text(2), "to-err\n")
            XCTAssertTrue(r.text(3).contains("Success"), r.text(3))
            // stdin_once: the end of the attach's stdin ended the shell.
            var exited = false
            for _ in 0..<100 where !exited {
                exited = try await t.status(rt, shell).state == .containerExited
                if !exited { try await Task.sleep(nanoseconds: 50_000_000) }
            }
            XCTAssertTrue(exited)
            // The log has what the attached client saw.
            let log = try String(contentsOfFile: logs + "/shell/0.log", encoding: .utf8)
            XCTAssertTrue(log.contains(" stdout F hello-attach"), log)
            // Nothing to attach to any more; a container without stdin can be
            // attached for its output only.
            await assertRPCError(.failedPrecondition) { try await rt.attach(a) }

            // Masked and read-only paths; the log reopened after a rotation.
            let box = try await t.startContainer(rt, pod: pod, pc, name: "box", command: ["sh", "-c", "while :; do echo tick; sleep 1; done"]) { c in
                c.linux.securityContext.maskedPaths = ["/etc/passwd", "/root", "/proc/kcore", "/no/such/path"]
                c.linux.securityContext.readonlyPaths = ["/tmp", "/no/such/dir"]
            }
            // A masked file reads as the null device; a masked directory is
            // empty and read-only.
            let passwd = try await t.execSync(rt, box, ["sh", "-c", "[ -c /etc/passwd ] && wc -c < /etc/passwd"])
            XCTAssertEqual(passwd.exitCode, 0, String(decoding: passwd.stderr, as: UTF8.self))
            XCTAssertEqual(String(decoding: passwd.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), "0")
            let root = try await t.execSync(rt, box, ["sh", "-c", "ls -A /root | wc -l; touch /root/x"])
            XCTAssertEqual(String(decoding: root.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), "0")
            XCTAssertNotEqual(root.exitCode, 0)
            let tmp = try await t.execSync(rt, box, ["touch", "/tmp/test"])
            XCTAssertNotEqual(tmp.exitCode, 0)
            XCTAssertEqual(String(decoding: tmp.stderr, as: UTF8.self), "touch: /tmp/test: Read-only file system\n")
            let other = try await t.execSync(rt, box, ["touch", "/root-is-writable"])
            XCTAssertEqual(other.exitCode, 0, String(decoding: other.stderr, as: UTF8.self))

            let boxLog = logs + "/box/0.log"
            try FileManager.default.moveItem(atPath: boxLog, toPath: boxLog + ".1")
            var ro = Runtime_V1_ReopenContainerLogRequest(); ro.containerID = box
            _ = try await rt.reopenContainerLog(ro)
            // The container's next line goes to the new file.
            var reopened = ""
            for _ in 0..<100 where !reopened.contains("tick") {
                reopened = (try? String(contentsOfFile: boxLog, encoding: .utf8)) ?? ""
                if !reopened.contains("tick") { try await Task.sleep(nanoseconds: 50_000_000) }
            }
            XCTAssertTrue(reopened.contains(" stdout F tick"), reopened)

            // An image volume: read-only, a sub-path of the image, reported
            // in the status with the image's id.
            func imageMount(_ sub: String, readOnly: Bool = true) -> Runtime_V1_Mount {
                var m = Runtime_V1_Mount(); m.containerPath = "/iv"; m.readonly = readOnly
                m.image.image = "busybox"; m.imageSubPath = sub
                return m
            }
            let iv = try await t.startContainer(rt, pod: pod, pc, name: "iv", command: ["sleep", "1000"]) { c in
                c.mounts = [imageMount("bin")]
            }
            let ivls = try await t.execSync(rt, iv, ["sh", "-c", "ls /iv/busybox && touch /iv/x"])
            XCTAssertEqual(String(decoding: ivls.stdout, as: UTF8.self), "/iv/busybox\n")
            XCTAssertNotEqual(ivls.exitCode, 0, "an image volume is writable")
            let ivStatus = try await t.status(rt, iv)
            let ivMount = try XCTUnwrap(ivStatus.mounts.first { $0.containerPath == "/iv" })
            XCTAssertEqual(ivMount.image.image, "busybox")
            XCTAssertFalse(ivMount.image.imageRef.isEmpty)
            for (sub, readOnly, field) in [("bin", false, "read-only"), ("no-such-dir", true, "image_sub_path"),
                                           ("../etc", true, "image_sub_path"), ("bin/sh", true, "image_sub_path")] {
                var bad = Runtime_V1_CreateContainerRequest()
                bad.podSandboxID = pod; bad.sandboxConfig = pc
                bad.config.metadata.name = "iv-bad"; bad.config.image.image = "busybox"
                bad.config.mounts = [imageMount(sub, readOnly: readOnly)]
                await assertRPCError(.invalidArgument, mentioning: field) { try await rt.createContainer(bad) }
            }

            // Per-container memory in stats; a container over its memory
            // limit is killed with reason OOMKilled.
            // dd keeps touching its 30 MB buffer.
            let big = try await t.startContainer(rt, pod: pod, pc, name: "big", command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=30M"])
            try await Task.sleep(nanoseconds: 1_000_000_000)
            var cs = Runtime_V1_ContainerStatsRequest(); cs.containerID = big
            let bigMem = try await rt.containerStats(cs).stats.memory.workingSetBytes.value
            cs.containerID = box
            let boxMem = try await rt.containerStats(cs).stats.memory.workingSetBytes.value
            XCTAssertGreaterThan(bigMem, boxMem + 25_000_000, "big \(bigMem) box \(boxMem)")
            XCTAssertGreaterThan(boxMem, 0)
            let hog = try await t.startContainer(rt, pod: pod, pc, name: "hog", command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=24M"]) { c in
                c.linux.resources.memoryLimitInBytes = 16 << 20
            }
            var hogStatus = try await t.status(rt, hog)
            for _ in 0..<200 where hogStatus.state != .containerExited {
                try await Task.sleep(nanoseconds: 50_000_000)
                hogStatus = try await t.status(rt, hog)
            }
            XCTAssertEqual(hogStatus.reason, "OOMKilled")
            XCTAssertEqual(hogStatus.exitCode, 137)
            // A limit raised by UpdateContainerResources lets the same run on.
            var ur = Runtime_V1_UpdateContainerResourcesRequest(); ur.containerID = big
            ur.linux.memoryLimitInBytes = 1 << 30
            _ = try await rt.updateContainerResources(ur)
            ur.linux.memoryLimitInBytes = 100
            await assertRPCError(.invalidArgument, mentioning: "memory_limit_in_bytes") { try await rt.updateContainerResources(ur) }
            try await Task.sleep(nanoseconds: 500_000_000)
            do { let v = try await t.status(rt, big).state; XCTAssertEqual(v, .containerRunning) }

            // A group without a user is refused.
            var bad = Runtime_V1_CreateContainerRequest()
            bad.podSandboxID = pod; bad.sandboxConfig = pc
            bad.config.metadata.name = "group-only"; bad.config.image.image = "busybox"
            bad.config.linux.securityContext.runAsGroup.value = 1002
            await assertRPCError(.invalidArgument, mentioning: "run_as_group") { try await rt.createContainer(bad) }

            var sp = Runtime_V1_StopPodSandboxRequest(); sp.podSandboxID = pod
            _ = try await rt.stopPodSandbox(sp)
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
        }
    }
}
