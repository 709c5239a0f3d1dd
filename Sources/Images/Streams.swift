// Byte streams for layers: a file descriptor, and the gzip (zlib) and zstd
// (libzstd) decompressors over it, plus a hashing tap so the uncompressed
// digest (the layer's diff id) is checked while the layer is unpacked.

import Crypto
import CZlib
import CZstd
import Glibc

/// A pull-style byte source; `read` returns 0 at the end.
public protocol ByteReader: AnyObject {
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ByteReader {
    /// Fills `buffer` completely, or throws at a premature end.
    func readFully(_ buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = try read(UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { throw ImageError.corrupt("unexpected end of data") }
            done += n
        }
    }
}

final class FDReader: ByteReader {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw ImageError.system("read", errno)
        }
    }
}

/// Feeds whatever is read through SHA-256.
final class HashingReader: ByteReader {
    let inner: ByteReader
    var hasher = SHA256()
    var count: Int64 = 0
    init(_ inner: ByteReader) { self.inner = inner }
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(buffer)
        if n > 0 { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<n])); count += Int64(n) }
        return n
    }
    var digest: String { Digest.string(hasher.finalize()) }
}

final class GzipReader: ByteReader {
    let inner: ByteReader
    var stream = z_stream()
    var input = [UInt8](repeating: 0, count: 64 * 1024)
    var inPos = 0, inLen = 0
    var inputEOF = false
    var finished = false
    init(_ inner: ByteReader) throws {
        self.inner = inner
        guard moat_inflate_init(&stream) == Z_OK else { throw ImageError.corrupt("zlib: cannot initialise inflate") }
    }
    deinit { inflateEnd(&stream) }
    private func fill() throws {
        if inPos == inLen && !inputEOF {
            inLen = try input.withUnsafeMutableBytes { try inner.read($0) }
            inPos = 0
            if inLen == 0 { inputEOF = true }
        }
    }
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if finished || buffer.count == 0 { return 0 }
        while true {
            try fill()
            let (rc, out): (Int32, Int) = input.withUnsafeMutableBufferPointer { inBuf in
                stream.next_in = inBuf.baseAddress! + inPos
                stream.avail_in = UInt32(inLen - inPos)
                stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = UInt32(buffer.count)
                let rc = inflate(&stream, Z_NO_FLUSH)
                inPos = inLen - Int(stream.avail_in)
                return (rc, buffer.count - Int(stream.avail_out))
            }
            switch rc {
            case Z_OK: break
            case Z_BUF_ERROR:
                if out == 0 && inputEOF { throw ImageError.corrupt("gzip: truncated stream") }
            case Z_STREAM_END:
                // Concatenated gzip members continue; the end of input ends it.
                try fill()
                if inPos == inLen { finished = true } else { inflateReset(&stream) }
            default:
                throw ImageError.corrupt("gzip: " + (stream.msg.map { String(cString: $0) } ?? "inflate error \(rc)"))
            }
            if out > 0 || finished { return out }
        }
    }
}

final class ZstdReader: ByteReader {
    let inner: ByteReader
    let dstream: OpaquePointer
    var input = [UInt8](repeating: 0, count: 128 * 1024)
    var inPos = 0, inLen = 0
    var inputEOF = false
    var lastHint = 1
    init(_ inner: ByteReader) throws {
        self.inner = inner
        guard let d = ZSTD_createDStream() else { throw ImageError.corrupt("zstd: cannot create a stream") }
        dstream = d
        ZSTD_initDStream(d)
    }
    deinit { ZSTD_freeDStream(dstream) }
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if buffer.count == 0 { return 0 }
        while true {
            if inPos == inLen && !inputEOF {
                inLen = try input.withUnsafeMutableBytes { try inner.read($0) }
                inPos = 0
                if inLen == 0 { inputEOF = true }
            }
            if inputEOF && inPos == inLen {
                if lastHint != 0 { throw ImageError.corrupt("zstd: truncated stream") }
                return 0
            }
            var out = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
            let hint: Int = input.withUnsafeBytes { inBuf in
                var inb = ZSTD_inBuffer(src: inBuf.baseAddress, size: inLen, pos: inPos)
                let r = ZSTD_decompressStream(dstream, &out, &inb)
                inPos = inb.pos
                return r
            }
            if ZSTD_isError(hint) != 0 {
                throw ImageError.corrupt("zstd: " + String(cString: ZSTD_getErrorName(hint)))
            }
            lastHint = hint
            if out.pos > 0 { return out.pos }
        }
    }
}

/// Opens a layer blob and returns a reader of its uncompressed tar stream,
/// choosing the decompressor from the first bytes (gzip, zstd or plain tar).
func openLayer(fd: Int32) throws -> ByteReader {
    var magic = [UInt8](repeating: 0, count: 4)
    let n = magic.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, 0) }
    let raw = FDReader(fd: fd)
    if n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b { return try GzipReader(raw) }
    if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] { return try ZstdReader(raw) }
    return raw
}

/// sha256 digests as OCI writes them.
enum Digest {
    static func string(_ d: SHA256.Digest) -> String {
        let hexDigits = Array("0123456789abcdef")
        var s = "sha256:"
        for b in d { s.append(hexDigits[Int(b >> 4)]); s.append(hexDigits[Int(b & 15)]) }
        return s
    }
    static func of(_ bytes: [UInt8]) -> String { string(SHA256.hash(data: bytes)) }
    /// The hex part of a "sha256:HEX" digest, or nil when malformed.
    static func hex(_ digest: String) -> String? {
        guard digest.hasPrefix("sha256:") else { return nil }
        let h = digest.dropFirst(7)
        guard h.count == 64, h.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else { return nil }
        return String(h)
    }
}
