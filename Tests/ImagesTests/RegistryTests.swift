// Pulls from a real registry (Debian's docker-registry on 127.0.0.1, filled
// by skopeo through Tests/Support/registry.sh): anonymous, basic auth and
// its failures, index resolution, unknown manifests, concurrent pulls.

import Foundation
@testable import Images
import XCTest

final class RegistryTests: XCTestCase {
    func testPullAnonymousIndexAndConcurrent() async throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        let root = try tempDir(); defer { _ = try? sh("rm -rf \(root)") }
        let store = try ImageStore(root: root)
        let client = RegistryClient()

        let start = Date()
        // Two pulls of the same image at once, into one store.
        async let a = client.pull("\(registry.host)/test/multi:latest", into: store)
        async let b = client.pull("\(registry.host)/test/multi", into: store)
        let (ia, ib) = try await (a, b)
        print("pull of test/multi (3 layers, twice concurrently): \(Date().timeIntervalSince(start))s")
        XCTAssertEqual(ia.id, ib.id)
        XCTAssertEqual(ia.layers.count, 3)
        let resolved = try XCTUnwrap(try store.resolve("\(registry.host)/test/multi:latest"))
        checkMulti(resolved.rootfs)
        XCTAssertEqual(try store.find(ia.repoDigests[0])?.id, ia.id)

        let idx = try await client.pull("\(registry.host)/test/index:latest", into: store)
        let single = try await client.pull("\(registry.host)/test/single:latest", into: store)
        XCTAssertEqual(idx.id, single.id, "index resolved to linux/amd64")

        do {
            _ = try await client.pull("\(registry.host)/test/nope:latest", into: store)
            XCTFail("pulled a missing image")
        } catch let e as ImageError {
            guard case .notFound = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("unknown"), "\(e)")
        }
        XCTAssertEqual(try store.images().count, 2)
    }

    func testPullWithBasicAuth() async throws {
        let registry = try TestRegistry(auth: "moat:s3cret")
        defer { registry.stop() }
        let root = try tempDir(); defer { _ = try? sh("rm -rf \(root)") }
        let store = try ImageStore(root: root)
        let ref = "\(registry.host)/test/single:latest"
        for bad in [RegistryAuth(), RegistryAuth(username: "moat", password: "wrong")] {
            do {
                _ = try await RegistryClient().pull(ref, auth: bad, into: store)
                XCTFail("pulled with \(bad)")
            } catch let e as ImageError {
                guard case .unauthorized = e else { return XCTFail("\(e)") }
                XCTAssertTrue("\(e)".hasPrefix("unauthorized: "), "\(e)")
            }
        }
        let auth = RegistryAuth(auth: Data("moat:s3cret".utf8).base64EncodedString())
        let image = try await RegistryClient().pull(ref, auth: auth, into: store)
        XCTAssertEqual(image.tags, [try ImageReference(parsing: ref).description])
    }

    /// A mirrored registry is fetched from the mirror; the image keeps its
    /// upstream name. Malformed mirror specs are refused with the spec named.
    func testPullThroughMirror() async throws {
        let registry = try TestRegistry()
        defer { registry.stop() }
        let root = try tempDir(); defer { _ = try? sh("rm -rf \(root)") }
        let store = try ImageStore(root: root)
        let mirrors = try RegistryClient.parseMirrors(["registry.example.invalid=http://\(registry.host)/"])
        XCTAssertEqual(mirrors, ["registry.example.invalid": "http://\(registry.host)"])
        let image = try await RegistryClient(mirrors: mirrors).pull("registry.example.invalid/test/single:latest", into: store)
        XCTAssertEqual(image.tags, ["registry.example.invalid/test/single:latest"])
        XCTAssertNotNil(try store.resolve("registry.example.invalid/test/single:latest"))
        for bad in ["=http://x", "reg", "reg=ftp://x", "reg=http://"] {
            XCTAssertThrowsError(try RegistryClient.parseMirrors([bad])) { e in
                XCTAssertTrue("\(e)".contains(bad.debugDescription), "\(e)")
            }
        }
    }
}
