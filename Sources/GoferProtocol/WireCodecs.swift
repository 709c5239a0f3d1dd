// Encoding and decoding of the composite values in Wire.swift.

extension WireWriter {
    package mutating func stat(_ s: GoferStat) {
        u64(s.dev); u64(s.ino); u64(s.nlink)
        u32(s.mode); u32(s.uid); u32(s.gid); u32(0)
        u64(s.rdev); i64(s.size); i64(s.blksize); i64(s.blocks)
        i64(s.atimeSec); i64(s.atimeNsec)
        i64(s.mtimeSec); i64(s.mtimeNsec)
        i64(s.ctimeSec); i64(s.ctimeNsec)
    }

    package mutating func statfs(_ s: GoferStatFS) {
        i64(s.type); i64(s.bsize); u64(s.blocks); u64(s.bfree); u64(s.bavail)
        u64(s.files); u64(s.ffree); i64(s.namelen); i64(s.frsize); i64(s.flags)
    }
}

extension WireReader {
    package mutating func stat() throws(WireError) -> GoferStat {
        var s = GoferStat()
        s.dev = try u64(); s.ino = try u64(); s.nlink = try u64()
        s.mode = try u32(); s.uid = try u32(); s.gid = try u32()
        _ = try u32()
        s.rdev = try u64(); s.size = try i64(); s.blksize = try i64(); s.blocks = try i64()
        s.atimeSec = try i64(); s.atimeNsec = try i64()
        s.mtimeSec = try i64(); s.mtimeNsec = try i64()
        s.ctimeSec = try i64(); s.ctimeNsec = try i64()
        return s
    }

    package mutating func statfs() throws(WireError) -> GoferStatFS {
        var s = GoferStatFS()
        s.type = try i64(); s.bsize = try i64(); s.blocks = try u64(); s.bfree = try u64()
        s.bavail = try u64(); s.files = try u64(); s.ffree = try u64()
        s.namelen = try i64(); s.frsize = try i64(); s.flags = try i64()
        return s
    }
}

/// The decoded fields of a `setattr` request.
package struct SetAttrRequest {
    package var mask: UInt32
    package var mode: UInt32
    package var uid: UInt32
    package var gid: UInt32
    package var size: Int64
    package var atimeSec: Int64
    package var atimeNsec: Int64
    package var mtimeSec: Int64
    package var mtimeNsec: Int64

    package init(_ a: GoferSetAttr) {
        mask = 0; mode = 0; uid = 0; gid = 0; size = 0
        atimeSec = 0; atimeNsec = GoferSetAttr.utimeOmit
        mtimeSec = 0; mtimeNsec = GoferSetAttr.utimeOmit
        if let v = a.mode { mask |= SetAttrMask.mode; mode = v }
        if let v = a.uid { mask |= SetAttrMask.uid; uid = v }
        if let v = a.gid { mask |= SetAttrMask.gid; gid = v }
        if let v = a.size { mask |= SetAttrMask.size; size = v }
        if let v = a.atime { mask |= SetAttrMask.atime; atimeSec = v.sec; atimeNsec = v.nsec }
        if let v = a.mtime { mask |= SetAttrMask.mtime; mtimeSec = v.sec; mtimeNsec = v.nsec }
    }

    package init(from r: inout WireReader) throws(WireError) {
        mask = try r.u32(); mode = try r.u32(); uid = try r.u32(); gid = try r.u32()
        size = try r.i64()
        atimeSec = try r.i64(); atimeNsec = try r.i64()
        mtimeSec = try r.i64(); mtimeNsec = try r.i64()
    }

    package func encode(into w: inout WireWriter) {
        w.u32(mask); w.u32(mode); w.u32(uid); w.u32(gid); w.i64(size)
        w.i64(atimeSec); w.i64(atimeNsec); w.i64(mtimeSec); w.i64(mtimeNsec)
    }

    /// True if a time's nsec is acceptable to utimensat(2).
    package static func validNsec(_ n: Int64) -> Bool {
        (0..<1_000_000_000).contains(n) || n == GoferSetAttr.utimeNow || n == GoferSetAttr.utimeOmit
    }
}
