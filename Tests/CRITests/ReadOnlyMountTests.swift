// A read-only host-path mount whose host directory has a writable tmpfs
// mounted below it. As on Linux (and as critest's "non-recursive readonly
// mounts" expects), `readonly` alone makes only the top mount read-only:
// the tmpfs below stays writable; with `recursive_read_only` too, every
// mount below is read-only as well. The Gofer serving the path decides per
// host mount (Sources/Gofer/Server.swift, refusesWrite). Needs root (it
// mounts the tmpfs, and unmounts it on every path out).

import CRIAPI
import Foundation
import XCTest

extension CRIPodTests {
    func testReadOnlyMountIsNonRecursiveUnlessAskedRecursive() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        let host = cri.dir + "/ro-host"
        try FileManager.default.createDirectory(atPath: host + "/tmpfs", withIntermediateDirectories: true)
        guard mount("tmpfs", host + "/tmpfs", "tmpfs", 0, "size=1m") == 0 else {
            return XCTFail("cannot mount a tmpfs below \(host): \(String(cString: strerror(errno)))")
        }
        defer { umount2(host + "/tmpfs", Int32(MNT_DETACH)) }
        let pc = podConfig(name: "rro")
        try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            var ids: [Bool: String] = [:]
            for recursive in [false, true] {
                ids[recursive] = try await startContainer(rt, pod: pod, pc, name: recursive ? "rec" : "top", command: ["sleep", "1000"]) { c in
                    var m = Runtime_V1_Mount()
                    m.hostPath = host; m.containerPath = "/mnt"; m.readonly = true; m.recursiveReadOnly = recursive
                    c.mounts = [m]
                }
            }
            let probe = "touch /mnt/tmpfs/f-$1 2>&1 && echo below-ok; touch /mnt/top-$1 2>&1 && echo top-ok; true"
            let top = String(decoding: try await execSync(rt, ids[false]!, ["sh", "-c", probe, "sh", "n"]).stdout, as: UTF8.self)
            XCTAssertTrue(top.contains("below-ok"), "non-recursive: the tmpfs below must be writable: \(top)")
            XCTAssertFalse(top.contains("top-ok"), "non-recursive: the top must stay read-only: \(top)")
            XCTAssertTrue(top.contains("Read-only file system"), top)
            let rec = String(decoding: try await execSync(rt, ids[true]!, ["sh", "-c", probe, "sh", "r"]).stdout, as: UTF8.self)
            XCTAssertFalse(rec.contains("below-ok"), "recursive: the tmpfs below must be read-only too: \(rec)")
            XCTAssertFalse(rec.contains("top-ok"), rec)
            XCTAssertTrue(rec.contains("Read-only file system"), rec)
            var sp = Runtime_V1_StopPodSandboxRequest(); sp.podSandboxID = pod
            _ = try await rt.stopPodSandbox(sp)
            var rp = Runtime_V1_RemovePodSandboxRequest(); rp.podSandboxID = pod
            _ = try await rt.removePodSandbox(rp)
        }
        // The one write that was allowed reached the host's tmpfs, and only it.
        XCTAssertTrue(FileManager.default.fileExists(atPath: host + "/tmpfs/f-n"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: host + "/tmpfs/f-r"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: host + "/top-n"))
    }
}
