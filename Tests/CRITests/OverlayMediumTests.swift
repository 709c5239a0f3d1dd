// The writable layer of pod containers (CRI): by default (`moat cri
// --overlay-medium self`) a 64 MiB file written into a container's root
// keeps its bytes in an unnamed disk file the container's root Gofer made,
// not in host memory; a container annotated dev.moat.overlay-medium=memory
// keeps them in a memfd (the control), and any other value is refused.
// The bytes read back intact either way. Needs root.

import CRIAPI
import Foundation
import GRPCCore
import XCTest

/// What a set of host processes hold: bytes of the memfds and of the
/// unnamed regular disk files in their fd tables (each file once), and the
/// sum of their resident sets.
struct PodHostHoldings {
    var memfdBytes = 0, memfds = 0
    var unnamedBytes = 0
    var rss = 0

    init(_ pids: [pid_t]) {
        var seen = Set<[UInt64]>()
        for p in pids {
            if let s = try? String(contentsOfFile: "/proc/\(p)/status", encoding: .utf8),
               let l = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
               let kb = Int(l.split(separator: " ").dropFirst().first ?? "") {
                rss += kb * 1024
            }
            for f in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/fd")) ?? [] {
                let path = "/proc/\(p)/fd/" + f
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) else { continue }
                var st = stat()
                guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
                guard seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { continue }
                if target.hasPrefix("/memfd:") {
                    memfds += 1; memfdBytes += Int(st.st_blocks) * 512
                } else if st.st_nlink == 0 {
                    unnamedBytes += Int(st.st_blocks) * 512
                }
            }
        }
    }
}

final class CRIOverlayMediumTests: XCTestCase {
    static let size = 64 << 20
    static let script = "yes abcdefgh | head -c \(size) > /big && md5sum /big"

    /// The pod's Sentry with its stubs, and the Gofers its zygote forked.
    func podProcesses(_ sentry: pid_t) -> [pid_t] {
        let zygotes = allProcesses().filter { p in
            let c = (try? String(contentsOfFile: "/proc/\(p)/cmdline", encoding: .utf8)) ?? ""
            return c.contains("\0--zygote\0") && c.contains("\0--sentry\0\(sentry):")
        }
        return processTree(sentry) + zygotes.flatMap { processTree($0) }
    }

    func testPodContainersKeepBigFilesOnDiskUnlessAnnotated() async throws {
        try CRITestEnv.requireRoot()
        guard FileManager.default.fileExists(atPath: CRITestEnv.rootfs + "/bin/busybox") else {
            return try CRITestEnv.missing("the busybox rootfs (bash rootfs/busybox.sh)")
        }
        let expected = String(runHost("yes abcdefgh | head -c \(Self.size) | md5sum").prefix(32))
        let cri = try CRIProcess(extraArgs: ["--rootfs-image", "busybox=" + CRITestEnv.rootfs])
        try cri.start()
        defer { cri.stop(); cri.removeDirectory() }
        let pc = podConfig(name: "writer")
        let mib = 1 << 20
        try await cri.withClient { rt in
            var r = Runtime_V1_RunPodSandboxRequest(); r.config = pc
            let pod = try await rt.runPodSandbox(r).podSandboxID
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod; ps.verbose = true
            let sentry = pid_t(try await rt.podSandboxStatus(ps).info["sentryPid"] ?? "") ?? 0
            XCTAssertGreaterThan(sentry, 0)

            func container(_ name: String, annotations: [String: String]) async throws -> String {
                var c = Runtime_V1_CreateContainerRequest()
                c.podSandboxID = pod; c.sandboxConfig = pc
                c.config.metadata.name = name
                c.config.image.image = "busybox"
                c.config.command = ["sleep", "1000"]
                c.config.annotations = annotations
                let id = try await rt.createContainer(c).containerID
                var s = Runtime_V1_StartContainerRequest(); s.containerID = id
                _ = try await rt.startContainer(s)
                return id
            }
            func write(_ id: String) async throws -> (PodHostHoldings, PodHostHoldings) {
                let before = PodHostHoldings(podProcesses(sentry))
                var e = Runtime_V1_ExecSyncRequest(); e.containerID = id; e.cmd = ["sh", "-c", Self.script]
                var options = CallOptions.defaults
                options.timeout = .seconds(600)
                let out = try await rt.execSync(e, options: options)
                XCTAssertEqual(out.exitCode, 0, String(decoding: out.stderr, as: UTF8.self))
                XCTAssertEqual(String(String(decoding: out.stdout, as: UTF8.self).prefix(32)), expected, "the bytes read back intact")
                let after = PodHostHoldings(podProcesses(sentry))
                e.cmd = ["md5sum", "/big"]
                let again = try await rt.execSync(e, options: options)
                XCTAssertEqual(String(String(decoding: again.stdout, as: UTF8.self).prefix(32)), expected)
                return (before, after)
            }

            let onDisk = try await container("self", annotations: [:])
            let (b1, a1) = try await write(onDisk)
            print("pod container, medium self: memfd bytes \(b1.memfdBytes / mib) -> \(a1.memfdBytes / mib) MiB (\(b1.memfds) -> \(a1.memfds) memfds), "
                  + "unnamed disk files \(b1.unnamedBytes / mib) -> \(a1.unnamedBytes / mib) MiB, RSS \(b1.rss / mib) -> \(a1.rss / mib) MiB")
            XCTAssertGreaterThanOrEqual(a1.unnamedBytes - b1.unnamedBytes, Self.size, "the file's bytes are in an unnamed disk file")
            XCTAssertLessThan(a1.memfdBytes - b1.memfdBytes, 16 * mib, "no memfd grew by the file")
            XCTAssertLessThan(a1.rss - b1.rss, 32 * mib, "the pod's Sentry, stubs and Gofers did not grow by the file")

            let inMemory = try await container("memory", annotations: ["dev.moat.overlay-medium": "memory"])
            let (b2, a2) = try await write(inMemory)
            print("pod container, medium memory: memfd bytes \(b2.memfdBytes / mib) -> \(a2.memfdBytes / mib) MiB, "
                  + "unnamed disk files \(b2.unnamedBytes / mib) -> \(a2.unnamedBytes / mib) MiB")
            XCTAssertGreaterThanOrEqual(a2.memfdBytes - b2.memfdBytes, Self.size, "medium memory keeps the file in a memfd")
            XCTAssertLessThan(a2.unnamedBytes - b2.unnamedBytes, 16 * mib)

            await assertRPCError(.invalidArgument, mentioning: "self or memory") {
                _ = try await container("bad", annotations: ["dev.moat.overlay-medium": "disk"])
            }
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
        }
    }

    /// kill -9 of `moat cri`, the pod's Sentry, its stubs and Gofers with a
    /// 64 MiB unnamed file held: no mount of the rootfs or of the test's
    /// directory appears in the host's table, and the file system gets the
    /// space back (printed: other writers share the file system; run with
    /// MOAT_ROOTFS on a file system of its own for a clean figure).
    func testKill9LeavesNoMountAndFreesTheFile() async throws {
        try CRITestEnv.requireRoot()
        guard FileManager.default.fileExists(atPath: CRITestEnv.rootfs + "/bin/busybox") else {
            return try CRITestEnv.missing("the busybox rootfs (bash rootfs/busybox.sh)")
        }
        let cri = try CRIProcess(extraArgs: ["--rootfs-image", "busybox=" + CRITestEnv.rootfs])
        try cri.start()
        defer { cri.stop(); cri.removeDirectory() }
        func ours() -> [String] {
            ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
                .filter { $0.contains(CRITestEnv.rootfs) || $0.contains(cri.dir) }
        }
        func freeBytes() -> Int {
            var v = statvfs()
            return statvfs(CRITestEnv.rootfs, &v) == 0 ? Int(v.f_bavail) * Int(v.f_frsize) : 0
        }
        let mountsBefore = ours(), freeBefore = freeBytes()
        let pc = podConfig(name: "killed")
        let (pod, sentry) = try await cri.withClient { rt in
            var r = Runtime_V1_RunPodSandboxRequest(); r.config = pc
            let pod = try await rt.runPodSandbox(r).podSandboxID
            var ps = Runtime_V1_PodSandboxStatusRequest(); ps.podSandboxID = pod; ps.verbose = true
            let sentry = pid_t(try await rt.podSandboxStatus(ps).info["sentryPid"] ?? "") ?? 0
            var c = Runtime_V1_CreateContainerRequest()
            c.podSandboxID = pod; c.sandboxConfig = pc
            c.config.metadata.name = "w"; c.config.image.image = "busybox"; c.config.command = ["sleep", "1000"]
            let id = try await rt.createContainer(c).containerID
            var s = Runtime_V1_StartContainerRequest(); s.containerID = id
            _ = try await rt.startContainer(s)
            var e = Runtime_V1_ExecSyncRequest(); e.containerID = id; e.cmd = ["sh", "-c", Self.script]
            var options = CallOptions.defaults
            options.timeout = .seconds(600)
            let out = try await rt.execSync(e, options: options)
            XCTAssertEqual(out.exitCode, 0, String(decoding: out.stderr, as: UTF8.self))
            return (pod, sentry)
        }
        XCTAssertGreaterThan(sentry, 0)
        let tree = podProcesses(sentry)
        let held = PodHostHoldings(tree)
        XCTAssertGreaterThanOrEqual(held.unnamedBytes, Self.size)
        let freeHeld = freeBytes()
        cri.stop(signal: SIGKILL)
        for p in tree { kill(p, SIGKILL) }
        for _ in 0..<200 where tree.contains(where: { kill($0, 0) == 0 && !isZombie($0) }) { usleep(50_000) }
        XCTAssertFalse(tree.contains(where: { kill($0, 0) == 0 && !isZombie($0) }), "the pod's processes are gone")
        usleep(200_000)
        let freeAfter = freeBytes()
        let mib = 1 << 20
        print("kill -9 of a pod holding \(held.unnamedBytes / mib) MiB of unnamed files: free space on the rootfs's file system "
              + "\(freeBefore / mib) MiB before, \(freeHeld / mib) held, \(freeAfter / mib) after")
        XCTAssertEqual(ours(), mountsBefore, "no mount left behind")
        try cri.start()
        try await cri.withClient { rt in
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
        }
    }

    func testUnknownDefaultMediumIsRefused() throws {
        try CRITestEnv.requireRoot()
        let cri = try CRIProcess(extraArgs: ["--overlay-medium", "disk"])
        defer { cri.removeDirectory() }
        let (status, out) = try cri.startExpectingRefusal()
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("self or memory"), out)
    }
}

private func runHost(_ script: String) -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script]
    let pipe = Pipe()
    p.standardOutput = pipe
    try? p.run()
    let d = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: d, as: UTF8.self)
}
