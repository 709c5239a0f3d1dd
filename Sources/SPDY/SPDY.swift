// SPDY/3.1 framing: the part of the protocol Kubernetes' streaming clients
// (port-forward, SPDY exec/attach) speak after an HTTP `Upgrade: SPDY/3.1`,
// or inside a WebSocket binary stream. `moat cri`'s streaming server uses it
// as the server (it parses the client's frames: SYN_STREAM with its
// zlib-compressed header block, DATA, RST_STREAM, PING, SETTINGS,
// WINDOW_UPDATE, GOAWAY, and builds SYN_REPLY, DATA, RST_STREAM, PING); the
// API server uses it as a client toward a runtime's streaming server (it
// opens streams with SYN_STREAM and parses SYN_REPLY). Header blocks share one zlib stream per direction for the whole
// connection, primed with the dictionary SPDY/3 defines; the client's
// compressor uses that dictionary, so inflating needs it. Malformed input is
// a SPDYError (the connection is closed), never a crash.

import CZlib
import Foundation

public struct SPDYError: Error, CustomStringConvertible {
    public var description: String
    public init(_ s: String) { description = s }
}

public enum SPDYFrame: Equatable, Sendable {
    case synStream(id: UInt32, headers: [String: String], fin: Bool)
    case synReply(id: UInt32)
    case data(id: UInt32, bytes: [UInt8], fin: Bool)
    case rstStream(id: UInt32, status: UInt32)
    case ping(id: UInt32)
    case goAway
    case other(type: UInt16)
}

/// The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1):
/// length-prefixed header names and values, then a run of common text.
public let spdyDictionary: [UInt8] = {
    let words = ["options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
                 "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
                 "content-base", "content-encoding", "content-language", "content-length", "content-location",
                 "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
                 "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
                 "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
                 "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
                 "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
                 "public", "set-cookie", "keep-alive", "origin"]
    var d: [UInt8] = []
    for w in words {
        let n = UInt32(w.utf8.count)
        d += [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
        d += Array(w.utf8)
    }
    d += Array(("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        + "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
        + "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
        + "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        + "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        + "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.").utf8)
    return d
}()

/// One connection's SPDY state: the input not yet parsed and the two zlib
/// streams. Not thread-safe: one owner (the channel's event loop) feeds it
/// and builds the frames it sends.
public final class SPDYCodec {
    private var input: [UInt8] = []
    private let inflater = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private let deflater = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    /// Largest frame accepted (a header block or a data frame).
    public static let maxFrame = 1 << 20

    public init() {
        inflater.initialize(to: z_stream())
        deflater.initialize(to: z_stream())
        _ = moat_inflate_init_zlib(inflater)
        _ = moat_deflate_init_zlib(deflater, Z_DEFAULT_COMPRESSION)
        _ = spdyDictionary.withUnsafeBufferPointer { deflateSetDictionary(deflater, $0.baseAddress, UInt32($0.count)) }
    }

    deinit {
        inflateEnd(inflater); deflateEnd(deflater)
        inflater.deallocate(); deflater.deallocate()
    }

    /// Adds bytes from the connection; returns every complete frame.
    public func feed(_ bytes: [UInt8]) throws -> [SPDYFrame] {
        input += bytes
        var frames: [SPDYFrame] = []
        var pos = 0
        defer { input.removeFirst(pos) }
        while input.count - pos >= 8 {
            let length = Int(input[pos + 5]) << 16 | Int(input[pos + 6]) << 8 | Int(input[pos + 7])
            guard length <= Self.maxFrame else { throw SPDYError("SPDY frame of \(length) bytes is too large") }
            guard input.count - pos >= 8 + length else { break }
            let flags = input[pos + 4]
            let body = Array(input[(pos + 8)..<(pos + 8 + length)])
            let word0 = be32(input, pos)
            pos += 8 + length
            if word0 & 0x8000_0000 == 0 {
                frames.append(.data(id: word0, bytes: body, fin: flags & 1 != 0))
                continue
            }
            let version = UInt16((word0 >> 16) & 0x7fff), type = UInt16(word0 & 0xffff)
            guard version == 3 else { throw SPDYError("SPDY version \(version) is not supported (3 is)") }
            switch type {
            case 1:
                guard body.count >= 10 else { throw SPDYError("short SYN_STREAM") }
                let id = be32(body, 0) & 0x7fff_ffff
                frames.append(.synStream(id: id, headers: try headers(Array(body[10...])), fin: flags & 1 != 0))
            case 2:
                guard body.count >= 4 else { throw SPDYError("short SYN_REPLY") }
                _ = try headers(Array(body[4...]))
                frames.append(.synReply(id: be32(body, 0) & 0x7fff_ffff))
            case 3:
                guard body.count >= 8 else { throw SPDYError("short RST_STREAM") }
                frames.append(.rstStream(id: be32(body, 0) & 0x7fff_ffff, status: be32(body, 4)))
            case 6:
                guard body.count >= 4 else { throw SPDYError("short PING") }
                frames.append(.ping(id: be32(body, 0)))
            case 7: frames.append(.goAway)
            case 8:
                // HEADERS: keep the compression context in step.
                guard body.count >= 4 else { throw SPDYError("short HEADERS") }
                _ = try headers(Array(body[4...]))
                frames.append(.other(type: type))
            default: frames.append(.other(type: type))
            }
        }
        return frames
    }

    /// Inflates one header block and decodes its name/value pairs (names
    /// lowercased; several values of one name are NUL-separated, as sent).
    private func headers(_ block: [UInt8]) throws -> [String: String] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        try block.withUnsafeBufferPointer { inBuf in
            inflater.pointee.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            inflater.pointee.avail_in = UInt32(inBuf.count)
            while true {
                let (rc, n) = chunk.withUnsafeMutableBufferPointer { ob -> (Int32, Int) in
                    inflater.pointee.next_out = ob.baseAddress
                    inflater.pointee.avail_out = UInt32(ob.count)
                    let rc = inflate(inflater, Z_SYNC_FLUSH)
                    return (rc, ob.count - Int(inflater.pointee.avail_out))
                }
                out += chunk[0..<n]
                guard out.count <= Self.maxFrame else { throw SPDYError("SPDY header block is too large") }
                if rc == Z_NEED_DICT {
                    let r = spdyDictionary.withUnsafeBufferPointer { inflateSetDictionary(inflater, $0.baseAddress, UInt32($0.count)) }
                    guard r == Z_OK else { throw SPDYError("SPDY header block: the peer's compression dictionary is not SPDY/3's") }
                    continue
                }
                if rc == Z_BUF_ERROR || (rc == Z_OK && inflater.pointee.avail_in == 0 && inflater.pointee.avail_out > 0) { break }
                guard rc == Z_OK else { throw SPDYError("SPDY header block: zlib error \(rc)") }
            }
        }
        var h: [String: String] = [:]
        guard out.count >= 4 else { throw SPDYError("SPDY header block has no count") }
        let count = Int(be32(out, 0))
        var p = 4
        for _ in 0..<count {
            guard out.count - p >= 4 else { throw SPDYError("truncated SPDY header block") }
            let nl = Int(be32(out, p)); p += 4
            guard nl <= out.count - p else { throw SPDYError("truncated SPDY header name") }
            let name = String(decoding: out[p..<(p + nl)], as: UTF8.self).lowercased(); p += nl
            guard out.count - p >= 4 else { throw SPDYError("truncated SPDY header block") }
            let vl = Int(be32(out, p)); p += 4
            guard vl <= out.count - p else { throw SPDYError("truncated SPDY header value") }
            h[name] = String(decoding: out[p..<(p + vl)], as: UTF8.self); p += vl
        }
        return h
    }

    private func compress(_ headers: [(String, String)]) -> [UInt8] {
        var raw: [UInt8] = []
        func put(_ n: Int) { raw += [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] }
        put(headers.count)
        for (k, v) in headers {
            // Lowercasing can change a name's UTF-8 length ("İ" is 2 bytes, "i̇" 3): count what is sent.
            let name = Array(k.lowercased().utf8)
            put(name.count); raw += name; put(v.utf8.count); raw += Array(v.utf8)
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        raw.withUnsafeBufferPointer { inBuf in
            deflater.pointee.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            deflater.pointee.avail_in = UInt32(inBuf.count)
            repeat {
                let n = chunk.withUnsafeMutableBufferPointer { ob -> Int in
                    deflater.pointee.next_out = ob.baseAddress
                    deflater.pointee.avail_out = UInt32(ob.count)
                    _ = deflate(deflater, Z_SYNC_FLUSH)
                    return ob.count - Int(deflater.pointee.avail_out)
                }
                out += chunk[0..<n]
            } while deflater.pointee.avail_out == 0
        }
        return out
    }

    private func control(_ type: UInt16, flags: UInt8, _ body: [UInt8]) -> [UInt8] {
        var f: [UInt8] = [0x80, 3, UInt8(type >> 8), UInt8(type & 0xff), flags]
        f += [UInt8(body.count >> 16 & 0xff), UInt8(body.count >> 8 & 0xff), UInt8(body.count & 0xff)]
        return f + body
    }

    /// A client's SYN_STREAM opening stream `id` (odd, increasing) with these headers.
    public func synStream(_ id: UInt32, headers: [(String, String)], fin: Bool = false) -> [UInt8] {
        control(1, flags: fin ? 1 : 0, u32(id & 0x7fff_ffff) + u32(0) + [0, 0] + compress(headers))
    }

    public func synReply(_ id: UInt32, headers: [(String, String)] = []) -> [UInt8] {
        control(2, flags: 0, u32(id & 0x7fff_ffff) + compress(headers))
    }

    public func rstStream(_ id: UInt32, status: UInt32) -> [UInt8] { control(3, flags: 0, u32(id & 0x7fff_ffff) + u32(status)) }

    public func ping(_ id: UInt32) -> [UInt8] { control(6, flags: 0, u32(id)) }

    public func goAway(lastStream: UInt32) -> [UInt8] { control(7, flags: 0, u32(lastStream) + u32(0)) }

    /// DATA frames carrying `bytes` on stream `id`: one frame, or as many as it takes to keep
    /// each within `maxFrame` (what the peer accepts), with `fin` on the last only.
    public func data(_ id: UInt32, _ bytes: ArraySlice<UInt8>, fin: Bool) -> [UInt8] {
        var out: [UInt8] = []
        var rest = bytes
        repeat {
            let part = rest.prefix(Self.maxFrame)
            rest = rest.dropFirst(part.count)
            out += u32(id & 0x7fff_ffff)
            out += [fin && rest.isEmpty ? 1 : 0, UInt8(part.count >> 16 & 0xff), UInt8(part.count >> 8 & 0xff), UInt8(part.count & 0xff)]
            out += part
        } while !rest.isEmpty
        return out
    }
}

private func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}

private func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
