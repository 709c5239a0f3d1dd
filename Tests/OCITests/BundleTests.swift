// The bundles under runtime-spec/bundles, each run with `moat run`: its
// stdout and exit status must be the ones recorded next to it.

import Foundation
import XCTest
@testable import OCI

final class BundleTests: XCTestCase {
    func testRuntimeSpecBundles() throws {
        let moat = try requireSandbox()
        let s = OCIScratch(moat: moat)
        defer { s.cleanUp() }
        let dir = OCITestEnv.repo + "/runtime-spec/bundles"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let b = s.dir + "/bundle-" + name
            try FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(dir)/\(name)/config.json", toPath: b + "/config.json")
            try FileManager.default.createSymbolicLink(atPath: b + "/rootfs", withDestinationPath: OCITestEnv.rootfs)
            let want = try String(contentsOfFile: "\(dir)/\(name)/expected.stdout", encoding: .utf8)
            let status = Int32(try String(contentsOfFile: "\(dir)/\(name)/expected.status", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            s.ids.append(name)
            let o = s.moat(["run", "--bundle", b, name])
            XCTAssertEqual(o.status, status, "\(name): \(o.stderr)")
            XCTAssertEqual(o.stdout, want, "\(name)")
            XCTAssertEqual(s.moat(["state", name]).status, 1, "\(name): run deletes the container")
        }
    }
}
