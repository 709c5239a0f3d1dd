// The streaming server's WebSocket side without a pod: a registered exec
// whose container does not exist upgrades (protocol negotiated), then ends
// with a Failure status on channel 3 and a close; tokens are single-use.

import Foundation
import XCTest
@testable import CRI
import SPDY

final class CRIStreamingTests: XCTestCase {
    func testUpgradeNegotiatesProtocolAndReportsFailureOnTheErrorChannel() async throws {
        let dir = NSTemporaryDirectory() + "moat-cri-stream-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = CRIOptions()
        o.root = dir + "/root"; o.state = dir + "/state"
        let runtime = try CRIRuntime(options: o, images: nil)
        let streaming = StreamingServer(runtime: runtime)
        try await streaming.start(address: "127.0.0.1:0")
        defer { streaming.stop() }
        let url = streaming.register(ExecStreamRequest(containerID: "nope", cmd: ["true"], tty: false, stdin: false, stdout: true, stderr: true))
        let r = try await Task.detached { try WebSocketTestClient.exec(url, protocols: ["v4.channel.k8s.io"]) }.value
        XCTAssertEqual(r.httpStatus, 101)
        XCTAssertEqual(r.protocolChosen, "v4.channel.k8s.io")
        XCTAssertTrue(r.text(3).contains(#""status":"Failure""#), r.text(3))
        XCTAssertTrue(r.text(3).contains("not found"), r.text(3))
        let again = try await Task.detached { try WebSocketTestClient.exec(url) }.value
        XCTAssertEqual(again.httpStatus, 404)
        // An unsupported subprotocol is not upgraded either.
        let url2 = streaming.register(ExecStreamRequest(containerID: "nope", cmd: ["true"], tty: false, stdin: false, stdout: true, stderr: false))
        let old = try await Task.detached { try WebSocketTestClient.exec(url2, protocols: ["channel.k8s.io"]) }.value
        XCTAssertEqual(old.httpStatus, 404)
    }
}

/// The SPDY framing on its own: the dictionary SPDY/3 defines, and malformed
/// input ending in an error, never a crash.
final class CRISPDYCodecTests: XCTestCase {
    func testDictionaryAndMalformedFrames() throws {
        XCTAssertEqual(spdyDictionary.count, 1423)
        XCTAssertEqual(Array(spdyDictionary.prefix(11)), [0, 0, 0, 7] + Array("options".utf8))
        XCTAssertEqual(Array(spdyDictionary.suffix(6)), Array("enq=0.".utf8))
        // SPDY/2 is refused; so is a frame larger than the limit.
        XCTAssertThrowsError(try SPDYCodec().feed([0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]))
        XCTAssertThrowsError(try SPDYCodec().feed([0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff]))
        // A SYN_STREAM whose header block is not zlib.
        XCTAssertThrowsError(try SPDYCodec().feed([0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]))
        // Partial frames wait for the rest; PING and DATA parse.
        let c = SPDYCodec()
        XCTAssertEqual(try c.feed([0x80, 3, 0, 6, 0, 0, 0]), [])
        XCTAssertEqual(try c.feed([4, 0, 0, 0, 9, 0, 0, 0, 5, 1, 0, 0, 2, 104, 105]),
                       [.ping(id: 9), .data(id: 5, bytes: [104, 105], fin: true)])
        // Random input: frames or an error, whatever it is.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<64, using: &rng)
            var b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if b.count > 3, Bool.random(using: &rng) { b[0] = 0x80; b[1] = 3 }
            _ = try? SPDYCodec().feed(b)
        }
    }
}
