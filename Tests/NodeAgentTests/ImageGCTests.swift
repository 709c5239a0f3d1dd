// Image garbage collection by disk usage (Sources/NodeAgent/ImageGC.swift):
// the choice itself (least recently used first, down to the low threshold,
// never an image in use, a pinned one or one seen too recently), and a pass
// of the agent against a real `moat cri` whose store holds images imported
// from an OCI layout, one of them used by a container: with the thresholds at
// 0 every other image goes and that one stays (the runtime also refuses to
// remove it); with the high threshold at 100 nothing goes. The pass reads the
// real usage of the image file system, so only those two settings give an
// answer that does not depend on the disk. Needs root, umoci and python3 for
// the layout (Tests/Support/registry.sh images): skipped without them, failed
// under CI=true.

import CRIAPI
import ControlPlane
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Glibc
@testable import NodeAgent
import XCTest

final class ImageGCTests: XCTestCase {
    func testLeastRecentlyUsedFirstDownToTheLowThreshold() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        func c(_ id: String, _ mib: UInt64, used: Double, first: Double = -3600, pinned: Bool = false) -> ImageGC.Candidate {
            .init(id: id, size: mib << 20, pinned: pinned, firstSeen: now.addingTimeInterval(first), lastUsed: now.addingTimeInterval(used))
        }
        let images = [c("a", 10, used: -100), c("b", 10, used: -300), c("c", 10, used: -200), c("in-use", 50, used: -1000),
                      c("pinned", 50, used: -2000, pinned: true), c("new", 50, used: -30, first: -30)]
        let cap: UInt64 = 1000 << 20
        func pick(used mib: UInt64, _ p: ImageGCPolicy) -> (UInt64, [String]) {
            let r = ImageGC.select(images, inUse: ["in-use"], capacity: cap, available: cap - (mib << 20), policy: p, now: now)
            return (r.bytesToFree, r.remove.map(\.id))
        }
        let kubelet = ImageGCPolicy(high: 85, low: 80, minimumAge: 120)
        // 86 % used: 60 MiB to free; the three old unused images (30 MiB) all go, oldest use first.
        XCTAssertEqual(pick(used: 860, kubelet).0, 60 << 20)
        XCTAssertEqual(pick(used: 860, kubelet).1, ["b", "c", "a"])
        // Under the high threshold: nothing, however far above the low one.
        XCTAssertEqual(pick(used: 849, kubelet).1, [])
        // 85 % used, low 84: 10 MiB to free, the least recently used image is enough.
        XCTAssertEqual(pick(used: 850, ImageGCPolicy(high: 85, low: 84, minimumAge: 120)).1, ["b"])
        // High threshold 100: never, even on a full disk.
        XCTAssertEqual(pick(used: 1000, ImageGCPolicy(high: 100, low: 80, minimumAge: 120)).1, [])
        // Without a minimum age the new image is a candidate too (used last, so last).
        XCTAssertEqual(pick(used: 1000, ImageGCPolicy(high: 0, low: 0, minimumAge: 0)).1, ["b", "c", "a", "new"])
    }

    func testAPassAgainstMoatCRIRemovesUnusedImagesAndKeepsTheOneInUse() async throws {
        func require(_ ok: Bool, _ what: String) throws {
            if ok { return }
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("missing prerequisite under CI: \(what)") }
            throw XCTSkip("missing prerequisite: \(what)")
        }
        let repo = NodeAgentTests.repo, moat = repo + "/.build/debug/moat"
        try require(geteuid() == 0, "root")
        try require(FileManager.default.isExecutableFile(atPath: moat), "the moat binary (swift build)")
        for t in ["umoci", "python3"] {
            try require(["/usr/bin/", "/usr/local/bin/", "/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + t) }, "\(t) (.ci/setup installs it)")
        }
        let dir = NSTemporaryDirectory() + "moat-imagegc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var cri: Process? = nil
        defer {
            if let p = cri, p.isRunning { p.terminate(); p.waitUntilExit() }
            for pod in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/state/pods")) ?? [] {
                if let t = try? String(contentsOfFile: dir + "/state/pods/\(pod)/pod.state", encoding: .utf8) {
                    for l in t.split(separator: "\n") where l.hasPrefix("pid=") { if let p = pid_t(l.dropFirst(4)) { kill(p, SIGKILL) } }
                }
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
        let layout = try run("/bin/bash", [repo + "/Tests/Support/registry.sh", "images"]).trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try run(moat, ["image", "import", "--root", dir + "/root", "--name", "gc", layout])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: moat)
        p.arguments = ["cri", "--listen", "unix://\(dir)/cri.sock", "--root", dir + "/root", "--state", dir + "/state"]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice; p.standardInput = FileHandle.nullDevice
        try p.run()
        cri = p
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: dir + "/cri.sock") { usleep(50_000) }

        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: dir + "/cri.sock"), transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { grpc in
            let rt = RuntimeClient(wrapping: grpc), img = ImageClient(wrapping: grpc)
            let before = try await img.listImages(Runtime_V1_ListImagesRequest()).images
            XCTAssertGreaterThanOrEqual(before.count, 2, "images imported: \(before.map(\.repoTags))")
            guard let used = before.first(where: { $0.repoTags.contains { $0.hasSuffix(":single") } }) ?? before.first else { return }
            // A container of a running pod uses it, by the reference it was created with.
            var pc = Runtime_V1_PodSandboxConfig()
            pc.metadata.name = "gc"; pc.metadata.namespace = "default"; pc.metadata.uid = "uid-gc"
            pc.logDirectory = dir + "/logs"
            var rp = Runtime_V1_RunPodSandboxRequest(); rp.config = pc
            let pod = try await rt.runPodSandbox(rp).podSandboxID
            var cc = Runtime_V1_CreateContainerRequest()
            cc.podSandboxID = pod; cc.sandboxConfig = pc
            cc.config.metadata.name = "main"; cc.config.image.image = used.repoTags.first ?? used.id
            cc.config.command = ["sleep", "1000"]; cc.config.logPath = "main/0.log"
            let c = try await rt.createContainer(cc).containerID
            var sc = Runtime_V1_StartContainerRequest(); sc.containerID = c
            _ = try await rt.startContainer(sc)

            func agent(_ policy: ImageGCPolicy) -> NodeAgent {
                var o = NodeAgentOptions(server: "http://127.0.0.1:1", criSocket: dir + "/cri.sock", nodeName: "gc")
                o.imageGC = policy
                return NodeAgent(options: o, api: HTTPAPIClient(host: "127.0.0.1", port: 1, token: nil), runtime: rt, images: img)
            }
            // The agent itself knows the image is in use (the runtime would refuse anyway).
            let inUse = try await agent(ImageGCPolicy()).imagesInUse(before)
            XCTAssertEqual(inUse, [used.id])
            let none = try await agent(ImageGCPolicy(high: 100, low: 80, minimumAge: 0)).collectImages()
            XCTAssertEqual(none, [])
            let kept = try await img.listImages(Runtime_V1_ListImagesRequest()).images
            XCTAssertEqual(kept.count, before.count)

            let removed = try await agent(ImageGCPolicy(high: 0, low: 0, minimumAge: 0)).collectImages()
            XCTAssertEqual(Set(removed), Set(before.map(\.id)).subtracting([used.id]))
            let after = try await img.listImages(Runtime_V1_ListImagesRequest()).images
            XCTAssertEqual(after.map(\.id), [used.id])

            var s = Runtime_V1_StopPodSandboxRequest(); s.podSandboxID = pod
            _ = try await rt.stopPodSandbox(s)
            var r = Runtime_V1_RemovePodSandboxRequest(); r.podSandboxID = pod
            _ = try await rt.removePodSandbox(r)
        }
    }

    /// Runs a program to its end; its standard output, or an error with its exit status.
    private func run(_ path: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "ImageGCTests", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "\(path) \(args) exited with \(p.terminationStatus)"])
        }
        return String(decoding: data, as: UTF8.self)
    }
}
