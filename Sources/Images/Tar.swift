// A streaming tar reader (ustar, GNU long names, PAX extended headers):
// enough for image layers and docker-archive tarballs. It only parses;
// Unpack.swift decides what reaches the disk.

import Glibc

struct TarEntry {
    enum Kind { case file, hardLink, symlink, charDevice, blockDevice, directory, fifo, other(UInt8) }
    var name: String
    var linkName: String
    var kind: Kind
    var mode: UInt32
    var uid: Int
    var gid: Int
    var size: Int64
    var mtime: Int64
    var devMajor: UInt32
    var devMinor: UInt32
}

final class TarReader {
    let input: ByteReader
    /// Bytes of the current entry's data not yet read, and its padding.
    private var remaining: Int64 = 0
    private var padding: Int64 = 0
    private var globalPax: [String: String] = [:]

    init(_ input: ByteReader) { self.input = input }

    /// The next entry, or nil at the end of the archive. Unread data of the
    /// previous entry is skipped.
    func next() throws -> TarEntry? {
        try skipRest()
        var pax: [String: String] = [:]
        var longName: String?, longLink: String?
        while true {
            var block = [UInt8](repeating: 0, count: 512)
            let n = try readBlock(&block)
            if n == 0 { return nil }
            if block.allSatisfy({ $0 == 0 }) { return nil }  // end-of-archive marker
            guard verifyChecksum(block) else { throw ImageError.corrupt("tar: bad header checksum") }
            let type = block[156]
            let size = try number(block, 124, 12)
            guard size >= 0 else { throw ImageError.corrupt("tar: negative size") }
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let data = try readData(size)
                let records = parsePax(data)
                if type == UInt8(ascii: "x") { pax.merge(records) { $1 } } else { globalPax.merge(records) { $1 } }
                continue
            case UInt8(ascii: "L"):
                longName = cString(try readData(size)); continue
            case UInt8(ascii: "K"):
                longLink = cString(try readData(size)); continue
            default: break
            }
            let all = globalPax.merging(pax) { $1 }
            var name = field(block, 0, 100)
            let magic = field(block, 257, 6)
            if magic.hasPrefix("ustar") {
                let prefix = field(block, 345, 155)
                if !prefix.isEmpty && magic == "ustar" { name = prefix + "/" + name }
            }
            if let l = longName { name = l }
            if let p = all["path"] { name = p }
            var link = field(block, 157, 100)
            if let l = longLink { link = l }
            if let p = all["linkpath"] { link = p }
            var entry = TarEntry(
                name: name, linkName: link, kind: .file,
                mode: UInt32(truncatingIfNeeded: try number(block, 100, 8)),
                uid: Int(try all["uid"].flatMap { Int64($0) } ?? number(block, 108, 8)),
                gid: Int(try all["gid"].flatMap { Int64($0) } ?? number(block, 116, 8)),
                size: all["size"].flatMap { Int64($0) } ?? size,
                mtime: try all["mtime"].flatMap { Int64($0.split(separator: ".").first ?? "") } ?? number(block, 136, 12),
                devMajor: UInt32(truncatingIfNeeded: try number(block, 329, 8)),
                devMinor: UInt32(truncatingIfNeeded: try number(block, 337, 8)))
            switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): entry.kind = .file
            case UInt8(ascii: "1"): entry.kind = .hardLink
            case UInt8(ascii: "2"): entry.kind = .symlink
            case UInt8(ascii: "3"): entry.kind = .charDevice
            case UInt8(ascii: "4"): entry.kind = .blockDevice
            case UInt8(ascii: "5"): entry.kind = .directory
            case UInt8(ascii: "6"): entry.kind = .fifo
            default: entry.kind = .other(type)
            }
            if case .file = entry.kind {} else if entry.kind.isSizeless { entry.size = 0 }
            guard entry.size >= 0 else { throw ImageError.corrupt("tar: negative size") }
            remaining = entry.size
            padding = (512 - entry.size % 512) % 512
            return entry
        }
    }

    /// Reads the current entry's data; 0 at its end.
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if remaining == 0 { return 0 }
        let want = Int(min(Int64(buffer.count), remaining))
        let n = try input.read(UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]))
        if n == 0 { throw ImageError.corrupt("tar: truncated entry") }
        remaining -= Int64(n)
        return n
    }

    /// The whole current entry (for small entries: headers, manifests).
    func readAll(limit: Int64 = 64 << 20) throws -> [UInt8] {
        guard remaining <= limit else { throw ImageError.corrupt("tar: entry too large") }
        var out = [UInt8](repeating: 0, count: Int(remaining))
        try out.withUnsafeMutableBytes { try input.readFully($0) }
        remaining = 0
        return out
    }

    private func skipRest() throws {
        var scratch = [UInt8](repeating: 0, count: 32 * 1024)
        var left = remaining + padding
        while left > 0 {
            let want = Int(min(Int64(scratch.count), left))
            let n = try scratch.withUnsafeMutableBytes { try input.read(UnsafeMutableRawBufferPointer(rebasing: $0[..<want])) }
            if n == 0 { throw ImageError.corrupt("tar: truncated archive") }
            left -= Int64(n)
        }
        remaining = 0; padding = 0
    }

    private func readData(_ size: Int64) throws -> [UInt8] {
        remaining = size
        padding = (512 - size % 512) % 512
        let data = try readAll(limit: 16 << 20)
        try skipRest()
        return data
    }

    private func readBlock(_ block: inout [UInt8]) throws -> Int {
        var done = 0
        while done < 512 {
            let n = try block.withUnsafeMutableBytes { try input.read(UnsafeMutableRawBufferPointer(rebasing: $0[done...])) }
            if n == 0 {
                if done == 0 { return 0 }
                throw ImageError.corrupt("tar: truncated header")
            }
            done += n
        }
        return done
    }

    private func verifyChecksum(_ b: [UInt8]) -> Bool {
        guard let stored = try? number(b, 148, 8) else { return false }
        var sum: Int64 = 0
        for i in 0..<512 { sum += Int64((148..<156).contains(i) ? 32 : b[i]) }
        return sum == stored
    }

    private func field(_ b: [UInt8], _ off: Int, _ len: Int) -> String {
        cString(Array(b[off..<off + len]))
    }

    private func cString(_ bytes: [UInt8]) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    /// Octal (space/NUL terminated) or GNU base-256 numbers.
    private func number(_ b: [UInt8], _ off: Int, _ len: Int) throws -> Int64 {
        if b[off] & 0x80 != 0 {
            var v: Int64 = Int64(b[off] & 0x7f)
            for i in off + 1..<off + len {
                guard v < (Int64.max >> 8) else { throw ImageError.corrupt("tar: number out of range") }
                v = v << 8 | Int64(b[i])
            }
            return v
        }
        var v: Int64 = 0
        var seen = false
        for i in off..<off + len {
            let c = b[i]
            if c == 0 || c == 32 { if seen { break } else { continue } }
            guard c >= 48 && c <= 55 else { throw ImageError.corrupt("tar: bad number field") }
            guard v < (Int64.max >> 3) else { throw ImageError.corrupt("tar: number out of range") }
            v = v * 8 + Int64(c - 48); seen = true
        }
        return v
    }

    /// "LEN key=value\n" records.
    private func parsePax(_ data: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < data.count {
            var j = i
            while j < data.count && data[j] != 32 { j += 1 }
            guard j < data.count, let len = Int(String(decoding: data[i..<j], as: UTF8.self)), len > 0,
                  i + len <= data.count else { break }
            let rec = data[(j + 1)..<(i + len - 1)]  // without the newline
            if let eq = rec.firstIndex(of: UInt8(ascii: "=")) {
                out[String(decoding: rec[rec.startIndex..<eq], as: UTF8.self)] =
                    String(decoding: rec[(eq + 1)...], as: UTF8.self)
            }
            i += len
        }
        return out
    }
}

extension TarEntry.Kind {
    /// Entries whose size field carries no data.
    var isSizeless: Bool {
        switch self {
        case .hardLink, .symlink, .charDevice, .blockDevice, .directory, .fifo: return true
        default: return false
        }
    }
}
