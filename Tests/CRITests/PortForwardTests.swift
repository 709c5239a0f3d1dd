// PortForward, and exec over SPDY, over the real socket: the URL PortForward returns, upgraded
// to SPDY/3.1 by a client written here (the frames and the compressed
// header blocks as Kubernetes' clients send them), reaches a server that
// listens only on the pod's loopback; a port nobody listens on reports the
// failure on the error stream; bad requests get NotFound/InvalidArgument.
// Exec's URL upgraded to SPDY (v4.channel.k8s.io) runs the command with its
// stdin, stdout and stderr on their streams and the exit status on the
// error stream.
// crictl (SPDY and WebSocket-tunnelled) was checked by hand against the
// same server: see Tests/Conformance/CRITEST.md. Needs root.

import CRIAPI
import CZlib
import Foundation
import Glibc
import GRPCCore
import XCTest
@testable import CRI
import SPDY

/// A minimal SPDY/3 client on a blocking socket.
private final class SPDYTestClient {
    let fd: Int32
    private var zs = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var pending: [UInt8] = []
    private(set) var upgradeResponse = ""

    init(url: String, protocolName: String = "portforward.k8s.io") throws {
        let u = URL(string: url)!
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(u.port!)).bigEndian
        inet_pton(AF_INET, u.host!, &a.sin_addr)
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw CRITestError("connect \(url): \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        zs.initialize(to: z_stream())
        _ = moat_deflate_init_zlib(zs, Z_DEFAULT_COMPRESSION)
        _ = spdyDictionary.withUnsafeBufferPointer { deflateSetDictionary(zs, $0.baseAddress, UInt32($0.count)) }
        send(Array(("POST \(u.path) HTTP/1.1\r\nHost: \(u.host!):\(u.port!)\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            + "X-Stream-Protocol-Version: \(protocolName)\r\nContent-Length: 0\r\n\r\n").utf8))
        var head: [UInt8] = []
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            var b: UInt8 = 0
            guard read(fd, &b, 1) == 1 else { break }
            head.append(b)
        }
        upgradeResponse = String(decoding: head, as: UTF8.self)
    }

    deinit { close(fd); deflateEnd(zs); zs.deallocate() }

    func send(_ b: [UInt8]) {
        var off = 0
        while off < b.count {
            let n = b[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            off += n
        }
    }

    private static func u32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    func synStream(_ id: Int, _ headers: [(String, String)]) {
        var raw = Self.u32(headers.count)
        for (k, v) in headers { raw += Self.u32(k.utf8.count) + Array(k.utf8) + Self.u32(v.utf8.count) + Array(v.utf8) }
        var out = [UInt8](repeating: 0, count: 4096)
        let n = raw.withUnsafeMutableBufferPointer { ib in
            out.withUnsafeMutableBufferPointer { ob -> Int in
                zs.pointee.next_in = ib.baseAddress; zs.pointee.avail_in = UInt32(ib.count)
                zs.pointee.next_out = ob.baseAddress; zs.pointee.avail_out = UInt32(ob.count)
                _ = deflate(zs, Z_SYNC_FLUSH)
                return ob.count - Int(zs.pointee.avail_out)
            }
        }
        let body = Self.u32(id) + Self.u32(0) + [0, 0] + out[0..<n]
        send([0x80, 3, 0, 1, 0] + Self.u32(body.count).suffix(3) + body)
    }

    func data(_ id: Int, _ bytes: [UInt8], fin: Bool) {
        send(Self.u32(id) + [fin ? 1 : 0] + Self.u32(bytes.count).suffix(3) + bytes)
    }

    enum Frame { case control(type: Int, streamID: Int); case data(id: Int, bytes: [UInt8], fin: Bool) }

    func next() -> Frame? {
        while true {
            if pending.count >= 8 {
                let len = Int(pending[5]) << 16 | Int(pending[6]) << 8 | Int(pending[7])
                if pending.count >= 8 + len {
                    let f = Array(pending[0..<(8 + len)])
                    pending.removeFirst(8 + len)
                    let w0 = Int(f[0]) << 24 | Int(f[1]) << 16 | Int(f[2]) << 8 | Int(f[3])
                    if f[0] & 0x80 != 0 {
                        let sid = len >= 4 ? (Int(f[8] & 0x7f) << 24 | Int(f[9]) << 16 | Int(f[10]) << 8 | Int(f[11])) : 0
                        return .control(type: w0 & 0xffff, streamID: sid)
                    }
                    return .data(id: w0, bytes: Array(f[8...]), fin: f[4] & 1 != 0)
                }
            }
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &buf, buf.count)
            if n <= 0 { return nil }
            pending += buf[0..<n]
        }
    }

    /// Reads until every stream in `ids` ended (FIN or reset) or the connection closed.
    func collect(_ ids: Set<Int>) -> [Int: String] {
        var got: [Int: [UInt8]] = [:], ended: Set<Int> = []
        while !ids.isSubset(of: ended), let f = next() {
            switch f {
            case .control(let type, let sid): if type == 3 { ended.insert(sid) }
            case .data(let id, let bytes, let fin):
                got[id, default: []] += bytes
                if fin { ended.insert(id) }
            }
        }
        return got.mapValues { String(decoding: $0, as: UTF8.self) }
    }

    /// Reads until both streams ended; returns what each carried and the replies seen.
    func collect(error e: Int, data d: Int) -> (error: String, data: String, replies: Set<Int>) {
        var errorBytes: [UInt8] = [], dataBytes: [UInt8] = []
        var ended: Set<Int> = [], replies: Set<Int> = []
        while ended.count < 2, let f = next() {
            switch f {
            case .control(let type, let sid):
                if type == 2 { replies.insert(sid) }
                if type == 3 { ended.insert(sid) }
            case .data(let id, let bytes, let fin):
                if id == e { errorBytes += bytes } else if id == d { dataBytes += bytes }
                if fin { ended.insert(id) }
            }
        }
        return (String(decoding: errorBytes, as: UTF8.self), String(decoding: dataBytes, as: UTF8.self), replies)
    }
}

extension CRIPodTests {
    func testPortForwardOverSPDYReachesThePodsLoopback() async throws {
        let cri = try server()
        defer { cri.stop(); cri.removeDirectory() }
        let pc = podConfig(name: "pf", logDirectory: cri.dir + "/logs")
        try await cri.withClient { rt in
            let pod = try await runPod(rt, pc)
            let web = try await startContainer(rt, pod: pod, pc, name: "web", command: [
                "sh", "-c", "mkdir -p /tmp/www && echo hello-through-port-forward > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www",
            ])
            // Wait until the server listens (inside the pod).
            var up = false
            for _ in 0..<100 where !up {
                up = try await execSync(rt, web, ["sh", "-c", "wget -q -O - http://127.0.0.1:8080/index.html"]).exitCode == 0
                if !up { try await Task.sleep(nanoseconds: 100_000_000) }
            }
            XCTAssertTrue(up, "httpd did not start in the pod")

            var q = Runtime_V1_PortForwardRequest()
            q.podSandboxID = pod; q.port = [8080]
            let url = try await rt.portForward(q).url
            XCTAssertTrue(url.contains("/portforward/"), url)

            let (head, ok, refused) = try await Task.detached { () -> (String, (String, String, Set<Int>), (String, String, Set<Int>)) in
                let c = try SPDYTestClient(url: url)
                // Two forwarded connections on one session: one to the
                // server, one to a port nobody listens on.
                c.synStream(1, [("streamtype", "error"), ("port", "8080"), ("requestid", "0")])
                c.synStream(3, [("streamtype", "data"), ("port", "8080"), ("requestid", "0")])
                c.data(3, Array("GET /index.html HTTP/1.0\r\n\r\n".utf8), fin: true)
                let ok = c.collect(error: 1, data: 3)
                c.synStream(5, [("streamtype", "error"), ("port", "8081"), ("requestid", "1")])
                c.synStream(7, [("streamtype", "data"), ("port", "8081"), ("requestid", "1")])
                let refused = c.collect(error: 5, data: 7)
                return (c.upgradeResponse, ok, refused)
            }.value
            XCTAssertTrue(head.hasPrefix("HTTP/1.1 101"), head)
            XCTAssertTrue(head.lowercased().contains("x-stream-protocol-version: portforward.k8s.io"), head)
            XCTAssertEqual(ok.2, [1, 3])
            XCTAssertEqual(ok.0, "")
            XCTAssertTrue(ok.1.contains("hello-through-port-forward"), ok.1)
            XCTAssertTrue(refused.0.contains("error forwarding port 8081"), refused.0)
            XCTAssertTrue(refused.0.contains("refused"), refused.0)
            XCTAssertEqual(refused.1, "")

            // Exec over SPDY (crictl's default transport), stdin to the process, exit code 3.
            var e = Runtime_V1_ExecRequest()
            e.containerID = web; e.cmd = ["sh", "-c", "read l; echo out-$l; echo err-line >&2; exit 3"]
            e.stdin = true; e.stdout = true; e.stderr = true
            let execURL = try await rt.exec(e).url
            let (execHead, streams) = try await Task.detached { () -> (String, [Int: String]) in
                let c = try SPDYTestClient(url: execURL, protocolName: "v4.channel.k8s.io")
                c.synStream(1, [("streamtype", "error")])
                c.synStream(3, [("streamtype", "stdin")])
                c.synStream(5, [("streamtype", "stdout")])
                c.synStream(7, [("streamtype", "stderr")])
                c.data(3, Array("spdy\n".utf8), fin: true)
                return (c.upgradeResponse, c.collect([1, 5, 7]))
            }.value
            XCTAssertTrue(execHead.lowercased().contains("x-stream-protocol-version: v4.channel.k8s.io"), execHead)
            XCTAssertEqual(streams[5], "out-spdy\n")
            XCTAssertEqual(streams[7], "err-line\n")
            XCTAssertTrue(streams[1]?.contains("NonZeroExitCode") == true && streams[1]?.contains(#""message":"3""#) == true,
                          streams[1] ?? "no status")

            // The URL is single-use.
            let again = try await Task.detached { try SPDYTestClient(url: url).upgradeResponse }.value
            XCTAssertFalse(again.hasPrefix("HTTP/1.1 101"), again)

            // Bad requests.
            var bad = q; bad.podSandboxID = "no-such-pod"
            await assertRPCError(.notFound) { try await rt.portForward(bad) }
            bad = q; bad.port = [0]
            await assertRPCError(.invalidArgument, mentioning: "port") { try await rt.portForward(bad) }
            var stop = Runtime_V1_StopPodSandboxRequest(); stop.podSandboxID = pod
            _ = try await rt.stopPodSandbox(stop)
            await assertRPCError(.failedPrecondition) { try await rt.portForward(q) }
        }
    }
}
