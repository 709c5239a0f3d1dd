// Containers of one pod share a Sentry but not their files: each has a
// mount namespace of its own inside it (Sentry/Kernel/Pod.swift). From one
// container, every way out this tries (dot-dot past the root, chroot with a
// working directory left outside, /proc/PID/root and cwd of the other
// container's processes, signals to them) must find nothing of the other
// container, and the image's directory must stay untouched.

import CRIAPI
import Foundation
import XCTest

extension CRIPodTests {
    func testContainersOfAPodCannotReachEachOthersFilesOrProcesses() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        var pc = podConfig(name: "iso")
        // kubelet's default: a pid namespace per container (the proto's
        // zero value, POD, shares one).
        pc.linux.securityContext.namespaceOptions.pid = .container
        let before = try String(contentsOfFile: CRITestEnv.rootfs + "/etc/passwd", encoding: .utf8)
        try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            let b = try await startContainer(rt, pod: pod, pc, name: "b", command: [
                "sh", "-c", "echo secret-of-b > /secret-b; mkdir -p /deep/x; echo b >> /etc/passwd; exec sleep 1001",
            ])
            let a = try await startContainer(rt, pod: pod, pc, name: "a", command: ["sleep", "1000"])
            // B is up and has written its file.
            var ready = false
            for _ in 0..<50 where !ready {
                ready = String(decoding: try await execSync(rt, b, ["cat", "/secret-b"]).stdout, as: UTF8.self) == "secret-of-b\n"
                if !ready { try await Task.sleep(nanoseconds: 100_000_000) }
            }
            XCTAssertTrue(ready, "container b never wrote its file")
            let probe = """
            found=0
            for p in /secret-b /../secret-b /../../b/secret-b /proc/*/root/secret-b /proc/*/cwd/secret-b; do
              [ -e "$p" ] && { echo "FOUND $p"; found=1; }
            done
            ls / /.. /../.. | grep -q secret-b && { echo "LISTED"; found=1; }
            mkdir -p /jail && cd / && chroot /jail /bin/sh -c 'cd ../../../..; ls' 2>/dev/null | grep -q secret-b && { echo CHROOT; found=1; }
            grep -q '^b$' /etc/passwd && { echo "PASSWD"; found=1; }
            echo found=$found
            """
            let r = try await execSync(rt, a, ["sh", "-c", probe])
            let out = String(decoding: r.stdout, as: UTF8.self)
            XCTAssertTrue(out.contains("found=0"), out)
            // B's processes are not A's to see or signal (the pod does not
            // share its pid namespace: each container numbers its own from
            // 1, so A's pids are B's numbers too, naming A's processes).
            let bPids = String(decoding: try await execSync(rt, b, ["sh", "-c", "ls -d /proc/[0-9]* | sed 's|/proc/||' | tr '\\n' ' '"]).stdout, as: UTF8.self)
            XCTAssertFalse(bPids.trimmingCharacters(in: .whitespaces).isEmpty)
            for pid in bPids.split(separator: " ") {
                let k = try await execSync(rt, a, ["sh", "-c", "grep -q '100[1]' /proc/\(pid)/cmdline 2>/dev/null && echo SEEN; true"])
                XCTAssertEqual(String(decoding: k.stdout, as: UTF8.self), "", "pid \(pid) of container b")
                _ = try await execSync(rt, a, ["kill", "-9", String(pid)])
            }
            let still = try await status(rt, b)
            XCTAssertEqual(still.state, .containerRunning)
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            var sp = Runtime_V1_StopPodSandboxRequest(); sp.podSandboxID = pod
            _ = try await rt.stopPodSandbox(sp)
            _ = try await rt.removePodSandbox(rp)
        }
        // B's writes stayed in its private layer.
        XCTAssertEqual(try String(contentsOfFile: CRITestEnv.rootfs + "/etc/passwd", encoding: .utf8), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: CRITestEnv.rootfs + "/secret-b"))
    }
}
