// CreateContainer's decisions, checked without a sandbox: how the request's
// command and args combine with the image's entrypoint and cmd, env
// precedence, users named in the image's own /etc/passwd, stop signals,
// capabilities, mounts and the generated files, and the refusals.

import CRIAPI
import Foundation
import Glibc
import Images
import Sandbox
import XCTest
@testable import CRI

final class CRIContainerSpecTests: XCTestCase {
    func image(entrypoint: [String] = [], cmd: [String] = []) -> ImageConfig {
        var c = ImageConfig(); c.entrypoint = entrypoint; c.cmd = cmd; return c
    }

    func testCommandAndArgsCombineWithTheImageAsKubeletExpects() throws {
        let img = image(entrypoint: ["/entry"], cmd: ["default-arg"])
        XCTAssertEqual(try mergedArgv(command: [], args: [], image: img), ["/entry", "default-arg"])
        XCTAssertEqual(try mergedArgv(command: [], args: ["x"], image: img), ["/entry", "x"])
        // A command replaces the entrypoint, and then the image's cmd is not used.
        XCTAssertEqual(try mergedArgv(command: ["/bin/sh"], args: [], image: img), ["/bin/sh"])
        XCTAssertEqual(try mergedArgv(command: ["/bin/sh"], args: ["-c", "true"], image: img), ["/bin/sh", "-c", "true"])
        XCTAssertEqual(try mergedArgv(command: [], args: [], image: image(entrypoint: [""], cmd: ["/bin/ls"])), ["/bin/ls"])
        XCTAssertThrowsError(try mergedArgv(command: [], args: [], image: image())) { e in
            XCTAssertTrue("\(e)".contains("config.command"), "\(e)")
        }
    }

    func testEnvPrecedence() {
        var kv = Runtime_V1_KeyValue(); kv.key = "B"; kv.value = Data("from-request".utf8)
        let env = mergedEnv(image: ["A=1", "B=from-image", "PATH=/img"], request: [kv], hostname: "h")
        XCTAssertEqual(env, ["PATH=/img", "HOSTNAME=h", "A=1", "B=from-request"])
        XCTAssertEqual(mergedEnv(image: [], request: [], hostname: ""), [defaultPath])
    }

    func testUsersFromTheImagesOwnFiles() throws {
        let root = NSTemporaryDirectory() + "moat-cri-users-\(getpid())"
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n".write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\nstaff:x:50:\n".write(toFile: root + "/etc/group", atomically: true, encoding: .utf8)
        XCTAssertTrue(try resolveUser("", rootfs: root) == (0, 0))
        XCTAssertTrue(try resolveUser("app", rootfs: root) == (1000, 1001))
        XCTAssertTrue(try resolveUser("1000", rootfs: root) == (1000, 1001))
        XCTAssertTrue(try resolveUser("4242", rootfs: root) == (4242, 0))
        XCTAssertTrue(try resolveUser("app:staff", rootfs: root) == (1000, 50))
        XCTAssertTrue(try resolveUser("7:8", rootfs: root) == (7, 8))
        XCTAssertThrowsError(try resolveUser("ghost", rootfs: root))
        XCTAssertThrowsError(try resolveUser("app:nogroup", rootfs: root))
    }

    func testStopSignalsAndCapabilities() throws {
        XCTAssertEqual(signalNumber("SIGTERM"), SIGTERM)
        XCTAssertEqual(signalNumber("kill"), SIGKILL)
        XCTAssertEqual(signalNumber("3"), 3)
        XCTAssertNil(signalNumber("SIGNOPE"))
        var cfg = ImageConfig(); cfg.stopSignal = "SIGQUIT"
        XCTAssertEqual(stopSignal(.runtimeDefault, image: cfg), SIGQUIT)
        XCTAssertEqual(stopSignal(.sigusr1, image: cfg), SIGUSR1)
        XCTAssertEqual(stopSignal(.runtimeDefault, image: ImageConfig()), SIGTERM)

        var sc = Runtime_V1_LinuxContainerSecurityContext()
        XCTAssertNil(try capabilityMask(sc))
        sc.capabilities.dropCapabilities = ["ALL"]
        sc.capabilities.addCapabilities = ["NET_BIND_SERVICE"]
        XCTAssertEqual(try capabilityMask(sc), 1 << 10)
        sc.capabilities.addCapabilities = ["CAP_NOT_A_THING"]
        XCTAssertThrowsError(try capabilityMask(sc)) { XCTAssertTrue("\($0)".contains("capabilities"), "\($0)") }
        sc.privileged = true
        let all = try capabilityMask(sc) ?? 0
        XCTAssertEqual((all >> 21) & 1, 1, "privileged lacks CAP_SYS_ADMIN")
        XCTAssertEqual((all >> 10) & 1, 1)
    }

    func testPlanMountsGeneratedFilesLogPathAndRefusals() throws {
        let dir = NSTemporaryDirectory() + "moat-cri-plan-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/ctr", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pod = PodRecord(id: "p", name: "web", uid: "u", namespace: "default", attempt: 0, createdAt: 0, state: "ready",
                            labels: [:], annotations: [:], hostname: "web", logDirectory: dir + "/logs", runtimeHandler: "",
                            stateDir: dir + "/state", networkMode: "pod", pidMode: "pod", ipcMode: "pod",
                            dnsServers: ["10.0.0.10"], dnsSearches: ["svc.local"], dnsOptions: ["ndots:5"])
        let img = ResolvedImage(id: "sha256:x", references: ["busybox", "busybox@sha256:y"], rootfs: dir, config: image(cmd: ["/bin/sh"]))
        var r = Runtime_V1_CreateContainerRequest()
        r.config.metadata.name = "c"; r.config.image.image = "busybox"
        r.config.logPath = "c/0.log"
        var m = Runtime_V1_Mount(); m.containerPath = "/data"; m.hostPath = dir + "/made-by-cri"; m.readonly = true
        r.config.mounts = [m]
        r.config.annotations = [terminationMessagePathAnnotation: "/dev/termination-log"]
        let plan = try planContainer(id: "cid", request: r, pod: pod, image: img, containerDir: dir + "/ctr")
        XCTAssertEqual(plan.config.process.argv, ["/bin/sh"])
        XCTAssertEqual(plan.config.logPath, dir + "/logs/c/0.log")
        // Planning only reads the host; prepareHost makes what the plan needs.
        for path in [dir + "/logs/c", dir + "/made-by-cri", dir + "/ctr/termination-log"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path), "planning made \(path)")
        }
        try plan.prepareHost()
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/logs/c"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/made-by-cri"), "a missing host path becomes a directory")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/ctr/termination-log"))
        XCTAssertEqual(plan.record.imageRef, "busybox@sha256:y")
        XCTAssertEqual(plan.record.terminationMessageHostPath, dir + "/ctr/termination-log")
        var byPath: [String: ContainerMount] = [:]
        for mount in plan.config.mounts { byPath[mount.containerPath] = mount }
        XCTAssertEqual(byPath["/data"], ContainerMount(containerPath: "/data", kind: .bind(hostPath: dir + "/made-by-cri"), readOnly: true,
                                                       recursiveReadOnly: false))
        XCTAssertEqual(byPath["/dev/termination-log"]?.kind, .bind(hostPath: dir + "/ctr/termination-log"))
        guard case .file(let resolv, _)? = byPath["/etc/resolv.conf"]?.kind else { return XCTFail("no /etc/resolv.conf") }
        XCTAssertEqual(String(decoding: resolv, as: UTF8.self), "search svc.local\nnameserver 10.0.0.10\noptions ndots:5\n")
        guard case .file(let hosts, _)? = byPath["/etc/hosts"]?.kind else { return XCTFail("no /etc/hosts") }
        XCTAssertTrue(String(decoding: hosts, as: UTF8.self).contains("localhost"))
        guard case .file(let hn, _)? = byPath["/etc/hostname"]?.kind else { return XCTFail("no /etc/hostname") }
        XCTAssertEqual(hn, Array("web\n".utf8))
        XCTAssertEqual(plan.record.execDefaults?.env, plan.config.process.env)

        // Refusals name the field.
        for (field, mutate) in [
            ("config.mounts[0].container_path", { (r: inout Runtime_V1_CreateContainerRequest) in r.config.mounts[0].containerPath = "data" }),
            ("config.mounts[0].host_path", { (r: inout Runtime_V1_CreateContainerRequest) in r.config.mounts[0].hostPath = "rel" }),
            ("config.log_path", { (r: inout Runtime_V1_CreateContainerRequest) in r.config.logPath = "../escape.log" }),
            ("config.working_dir", { (r: inout Runtime_V1_CreateContainerRequest) in r.config.workingDir = "relative" }),
            ("run_as_user", { (r: inout Runtime_V1_CreateContainerRequest) in r.config.linux.securityContext.runAsUser.value = -1 }),
        ] as [(String, (inout Runtime_V1_CreateContainerRequest) -> Void)] {
            var bad = r
            mutate(&bad)
            XCTAssertThrowsError(try planContainer(id: "cid2", request: bad, pod: pod, image: img, containerDir: dir + "/ctr")) { e in
                XCTAssertTrue("\(e)".contains(field), "\(e) does not name \(field)")
            }
        }
    }
}
