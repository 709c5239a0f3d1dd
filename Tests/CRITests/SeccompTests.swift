// Seccomp profiles per container over the real socket: a Localhost profile
// (an OCI JSON file) denying chmod makes chmod fail with EPERM in that
// container only; RuntimeDefault and Localhost show as filter mode 2 in
// /proc/self/status, no profile as 0; an unreadable or malformed profile is
// refused at CreateContainer with InvalidArgument. Needs root.

import CRIAPI
import Foundation
import XCTest

extension CRIPodTests {
    func testSeccompProfilesPerContainer() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        let profile = cri.dir + "/block-chmod.json"
        try #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}]}"#
            .write(toFile: profile, atomically: true, encoding: .utf8)
        let pc = podConfig(name: "scmp", logDirectory: cri.dir + "/logs")
        try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            let local = try await startContainer(rt, pod: pod, pc, name: "local", command: ["sleep", "1000"]) { c in
                c.linux.securityContext.seccomp.profileType = .localhost
                c.linux.securityContext.seccomp.localhostRef = profile
            }
            let def = try await startContainer(rt, pod: pod, pc, name: "default", command: ["sleep", "1000"]) { c in
                c.linux.securityContext.seccomp.profileType = .runtimeDefault
            }
            let none = try await startContainer(rt, pod: pod, pc, name: "none", command: ["sleep", "1000"])
            let probe = ["sh", "-c", "grep Seccomp: /proc/self/status; chmod 400 / && echo chmod-ok"]
            let l = try await execSync(rt, local, probe)
            XCTAssertEqual(String(decoding: l.stdout, as: UTF8.self), "Seccomp:\t2\n")
            XCTAssertTrue(String(decoding: l.stderr, as: UTF8.self).contains("Operation not permitted"), String(decoding: l.stderr, as: UTF8.self))
            XCTAssertNotEqual(l.exitCode, 0)
            let d = try await execSync(rt, def, probe)
            XCTAssertEqual(String(decoding: d.stdout, as: UTF8.self), "Seccomp:\t2\nchmod-ok\n")
            let n = try await execSync(rt, none, probe)
            XCTAssertEqual(String(decoding: n.stdout, as: UTF8.self), "Seccomp:\t0\nchmod-ok\n")

            // Bad profiles are refused before anything starts.
            try "{not json".write(toFile: cri.dir + "/bad.json", atomically: true, encoding: .utf8)
            for (ref, says) in [(cri.dir + "/missing.json", "cannot read"), (cri.dir + "/bad.json", "not a JSON object"), ("relative.json", "absolute")] {
                var c = Runtime_V1_CreateContainerRequest()
                c.podSandboxID = pod; c.sandboxConfig = pc
                c.config.metadata.name = "bad"; c.config.image.image = "busybox"; c.config.command = ["true"]
                c.config.linux.securityContext.seccomp.profileType = .localhost
                c.config.linux.securityContext.seccomp.localhostRef = ref
                await assertRPCError(.invalidArgument, mentioning: says) { try await rt.createContainer(c) }
            }
        }
    }
}
