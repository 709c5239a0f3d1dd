// The streaming server's WebSocket side without a pod: a registered exec
// whose container does not exist upgrades (protocol negotiated), then ends
// with a Failure status on channel 3 and a close; tokens are single-use.

import Foundation
import XCTest
@testable import CRI

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
