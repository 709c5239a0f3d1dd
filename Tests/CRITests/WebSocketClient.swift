// A minimal WebSocket client for the tests, written against RFC 6455 and
// the remotecommand channel protocol (v5.channel.k8s.io): enough to run an
// exec through `moat cri`'s streaming server the way crictl does, without
// a Kubernetes client library.

import Foundation
import Glibc

struct StreamResult {
    var httpStatus = 0
    var protocolChosen = ""
    var channels: [UInt8: [UInt8]] = [:]
    func text(_ ch: UInt8) -> String { String(decoding: channels[ch] ?? [], as: UTF8.self) }
}

enum WebSocketTestClient {
    /// Connects to an http://HOST:PORT/PATH URL, upgrades, optionally sends
    /// `stdin` (then v5's end-of-stdin), and collects every channel until the
    /// server closes.
    /// With `after`, the stdin (and `resize`, a channel 4 message sent just before it) waits
    /// until stdout has shown that text.
    static func exec(_ url: String, stdin: [UInt8]? = nil, protocols: [String] = ["v5.channel.k8s.io"],
                     after: String? = nil, resize: (columns: Int, rows: Int)? = nil) throws -> StreamResult {
        guard let u = URL(string: url), let host = u.host, let port = u.port else { throw CRITestError("bad URL \(url)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw CRITestError("connect \(url): \(String(cString: strerror(errno)))") }
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let req = "GET \(u.path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: \(protocols.joined(separator: ", "))\r\n\r\n"
        try writeAll(fd, Array(req.utf8))
        var buf: [UInt8] = []
        var result = StreamResult()
        // The response head.
        while true {
            if let r = find(buf, Array("\r\n\r\n".utf8)) {
                let head = String(decoding: buf[..<r], as: UTF8.self)
                buf.removeFirst(r + 4)
                let lines = head.components(separatedBy: "\r\n")
                result.httpStatus = Int(lines[0].split(separator: " ")[1]) ?? 0
                for l in lines where l.lowercased().hasPrefix("sec-websocket-protocol:") {
                    result.protocolChosen = l.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
                }
                break
            }
            guard try readMore(fd, &buf) else { return result }
        }
        guard result.httpStatus == 101 else { return result }
        var sent = false
        func send() throws {
            sent = true
            if let resize { try writeAll(fd, frame(opcode: 2, [4] + Array("{\"Width\":\(resize.columns),\"Height\":\(resize.rows)}".utf8))) }
            if let stdin {
                try writeAll(fd, frame(opcode: 2, [0] + stdin))
                try writeAll(fd, frame(opcode: 2, [255, 0]))
            }
        }
        if after == nil { try send() }
        while true {
            while let (opcode, payload, used) = parseFrame(buf) {
                buf.removeFirst(used)
                if opcode == 8 { return result }
                if (opcode == 1 || opcode == 2), let ch = payload.first {
                    result.channels[ch, default: []] += payload.dropFirst()
                }
            }
            if !sent, let after, result.text(1).contains(after) { try send() }
            guard try readMore(fd, &buf) else { return result }
        }
    }

    static func readMore(_ fd: Int32, _ buf: inout [UInt8]) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &chunk, chunk.count)
        if n < 0 { throw CRITestError("read: \(String(cString: strerror(errno)))") }
        if n == 0 { return false }
        buf += chunk[0..<n]
        return true
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { throw CRITestError("write: \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where Array(hay[i..<i + needle.count]) == needle { return i }
        return nil
    }

    /// A masked client frame.
    static func frame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = [0x80 | opcode]
        if payload.count < 126 { f.append(0x80 | UInt8(payload.count)) } else {
            f.append(0x80 | 126); f += [UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        f += mask
        f += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return f
    }

    /// An unmasked server frame: (opcode, payload, bytes used), or nil when
    /// incomplete.
    static func parseFrame(_ b: [UInt8]) -> (UInt8, [UInt8], Int)? {
        guard b.count >= 2 else { return nil }
        let opcode = b[0] & 0x0f
        var len = Int(b[1] & 0x7f), off = 2
        if len == 126 { guard b.count >= 4 else { return nil }; len = Int(b[2]) << 8 | Int(b[3]); off = 4 }
        else if len == 127 {
            guard b.count >= 10 else { return nil }
            len = b[2..<10].reduce(0) { $0 << 8 | Int($1) }; off = 10
        }
        guard b.count >= off + len else { return nil }
        return (opcode, Array(b[off..<off + len]), off + len)
    }
}
