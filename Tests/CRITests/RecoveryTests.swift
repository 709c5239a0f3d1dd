// Recovery without a live Sentry: records left by a server that died with
// a pod "ready" and a container "running" (the pod's Sentry gone too, as
// after a kill -9 of every Moat process). The restarted server reports the
// pod NOTREADY and the container exited with a reason, removes them and
// what the pod left under --state, and sets aside a record it cannot read
// instead of dropping it silently. No root needed: no sandbox is started.

import CRIAPI
import Foundation
import GRPCCore
import XCTest
@testable import CRI

final class CRIRecoveryTests: XCTestCase {
    func testRecordsOfADeadPodAreReportedExitedThenRemovable() async throws {
        let cri = try CRIProcess()
        defer { cri.stop(); cri.removeDirectory() }
        let podID = String(repeating: "a1", count: 32), ctrID = String(repeating: "b2", count: 32)
        let stateDir = cri.state + "/pods/" + podID
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: stateDir + "/leftover", contents: Data("x".utf8))
        for k in ["pods", "containers"] {
            try FileManager.default.createDirectory(atPath: cri.root + "/cri/" + k, withIntermediateDirectories: true)
        }
        let pod = PodRecord(id: podID, name: "ghost", uid: "u1", namespace: "default", attempt: 0, createdAt: 1,
                            state: "ready", labels: ["app": "ghost"], annotations: [:], hostname: "ghost",
                            logDirectory: "", runtimeHandler: "", stateDir: stateDir, networkMode: "pod",
                            pidMode: "container", ipcMode: "pod")
        var ctr = ContainerRecord(id: ctrID, podID: podID, name: "sleeper", attempt: 0, image: "busybox",
                                  imageRef: "busybox", imageID: "dir:/x", createdAt: 2, labels: [:], annotations: [:],
                                  logPath: "", mounts: [], terminationMessageHostPath: "", stopSignal: SIGTERM)
        ctr.state = "running"; ctr.startedAt = 3
        let enc = JSONEncoder()
        try enc.encode(pod).write(to: URL(fileURLWithPath: cri.root + "/cri/pods/\(podID).json"))
        try enc.encode(ctr).write(to: URL(fileURLWithPath: cri.root + "/cri/containers/\(ctrID).json"))
        try Data("{half a record".utf8).write(to: URL(fileURLWithPath: cri.root + "/cri/pods/broken.json"))

        try cri.start()
        try await cri.withClient { rt in
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = String(podID.prefix(13))
            let st = try await rt.podSandboxStatus(ps)
            XCTAssertEqual(st.status.id, podID)
            XCTAssertEqual(st.status.state, .sandboxNotready)
            XCTAssertEqual(st.status.labels, ["app": "ghost"])
            XCTAssertEqual(st.status.linux.namespaces.options.pid, .container)
            var cs = Runtime_V1_ContainerStatusRequest(); cs.containerID = ctrID
            let c = try await rt.containerStatus(cs).status
            XCTAssertEqual(c.state, .containerExited)
            XCTAssertEqual(c.exitCode, 255)
            XCTAssertEqual(c.reason, "Unknown")
            XCTAssertFalse(c.message.isEmpty)
            XCTAssertGreaterThan(c.finishedAt, c.startedAt)
            var verbose = Runtime_V1_StatusRequest(); verbose.verbose = true
            do { let v = try await rt.status(verbose).info["recovery"] ?? ""; XCTAssertTrue(v.contains("broken.json"), v) }

            // Filters see it as NOTREADY / exited.
            var pf = Runtime_V1_ListPodSandboxRequest(); pf.filter.state.state = .sandboxReady
            do { let v = try await rt.listPodSandbox(pf).items.count; XCTAssertEqual(v, 0) }
            pf.filter.state.state = .sandboxNotready
            do { let v = try await rt.listPodSandbox(pf).items.map(\.id); XCTAssertEqual(v, [podID]) }
            var lf = Runtime_V1_ListContainersRequest(); lf.filter.state.state = .containerExited
            do { let v = try await rt.listContainers(lf).containers.map(\.id); XCTAssertEqual(v, [ctrID]) }

            // A new container cannot go into a pod that is not ready.
            var cc = Runtime_V1_CreateContainerRequest(); cc.podSandboxID = podID
            cc.config.metadata.name = "late"; cc.config.image.image = "busybox"
            await assertRPCError(.failedPrecondition, mentioning: "not ready") { try await rt.createContainer(cc) }

            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = podID
            _ = try await rt.removePodSandbox(rp)
            do { let v = try await rt.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.count; XCTAssertEqual(v, 0) }
            do { let v = try await rt.listContainers(Runtime_V1_ListContainersRequest()).containers.count; XCTAssertEqual(v, 0) }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: stateDir), "the pod's state directory was left behind")
        let left = try FileManager.default.contentsOfDirectory(atPath: cri.root + "/cri/pods")
        XCTAssertEqual(left, ["broken.json.bad"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cri.root + "/cri/containers"), [])

        // And the removal is durable across another restart.
        cri.stop()
        try cri.start()
        try await cri.withClient { rt in
            do { let v = try await rt.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.count; XCTAssertEqual(v, 0) }
        }
    }

    /// The image store's in-use marks are in memory: a restarted server
    /// re-marks the images of every recorded container, and removal
    /// releases them.
    func testImageUseIsReMarkedOnRecoveryAndReleasedOnRemoval() async throws {
        final class Recorder: ImageUseTracker, @unchecked Sendable {
            let lock = NSLock()
            var marks: [String: Set<String>] = [:]
            func markInUse(_ imageID: String, by containerID: String) {
                lock.lock(); marks[imageID, default: []].insert(containerID); lock.unlock()
            }
            func release(_ imageID: String, by containerID: String) {
                lock.lock(); marks[imageID]?.remove(containerID); if marks[imageID]?.isEmpty == true { marks[imageID] = nil }; lock.unlock()
            }
        }
        let dir = NSTemporaryDirectory() + "moat-cri-use-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for k in ["pods", "containers"] {
            try FileManager.default.createDirectory(atPath: dir + "/root/cri/" + k, withIntermediateDirectories: true)
        }
        let pod = PodRecord(id: "p1", name: "p", uid: "u", namespace: "n", attempt: 0, createdAt: 1, state: "notready",
                            labels: [:], annotations: [:], hostname: "p", logDirectory: "", runtimeHandler: "",
                            stateDir: dir + "/state/pods/p1", networkMode: "pod", pidMode: "pod", ipcMode: "pod")
        let c = ContainerRecord(id: "c1", podID: "p1", name: "c", attempt: 0, image: "busybox", imageRef: "busybox",
                                imageID: "sha256:img", createdAt: 2, labels: [:], annotations: [:], logPath: "",
                                mounts: [], terminationMessageHostPath: "", stopSignal: SIGTERM)
        try JSONEncoder().encode(pod).write(to: URL(fileURLWithPath: dir + "/root/cri/pods/p1.json"))
        try JSONEncoder().encode(c).write(to: URL(fileURLWithPath: dir + "/root/cri/containers/c1.json"))
        var o = CRIOptions()
        o.root = dir + "/root"; o.state = dir + "/state"
        let rec = Recorder()
        let runtime = try CRIRuntime(options: o, images: nil, imageUse: rec)
        await runtime.recover()
        XCTAssertEqual(rec.marks, ["sha256:img": ["c1"]])
        try await runtime.removePodSandbox("p1")
        XCTAssertEqual(rec.marks, [:])
    }
}
