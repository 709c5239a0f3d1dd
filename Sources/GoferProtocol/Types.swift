// Public value types shared by the Gofer client (used by the Sentry) and the
// Gofer server. Everything here is plain data; see Wire.swift for how it is
// laid out on the socket.

/// A file identifier handed out by the Gofer. Opaque to the Sentry; 0 is never
/// a valid FID. Each FID pins one host file (an O_PATH fd in the Gofer) until
/// `GoferClient.close(_:)` releases it.
public typealias FID = UInt64

/// A Linux errno value. Every failing client call reports one of these; a lost
/// or broken connection to the Gofer is always `EIO`.
public struct GoferErrno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(_ v: Int32) { rawValue = v }
    public var description: String { "GoferErrno(\(rawValue))" }
}

/// Mirrors the host `struct stat` of a file, as `fstatat(..., AT_SYMLINK_NOFOLLOW)`
/// reported it (so a symlink reports itself, never its target).
public struct GoferStat: Sendable, Equatable {
    public var dev: UInt64
    public var ino: UInt64
    public var nlink: UInt64
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var rdev: UInt64
    public var size: Int64
    public var blksize: Int64
    public var blocks: Int64
    public var atimeSec: Int64
    public var atimeNsec: Int64
    public var mtimeSec: Int64
    public var mtimeNsec: Int64
    public var ctimeSec: Int64
    public var ctimeNsec: Int64

    public init(dev: UInt64, ino: UInt64, nlink: UInt64, mode: UInt32, uid: UInt32, gid: UInt32,
                rdev: UInt64, size: Int64, blksize: Int64, blocks: Int64,
                atimeSec: Int64, atimeNsec: Int64, mtimeSec: Int64, mtimeNsec: Int64,
                ctimeSec: Int64, ctimeNsec: Int64) {
        self.dev = dev; self.ino = ino; self.nlink = nlink; self.mode = mode
        self.uid = uid; self.gid = gid; self.rdev = rdev; self.size = size
        self.blksize = blksize; self.blocks = blocks
        self.atimeSec = atimeSec; self.atimeNsec = atimeNsec
        self.mtimeSec = mtimeSec; self.mtimeNsec = mtimeNsec
        self.ctimeSec = ctimeSec; self.ctimeNsec = ctimeNsec
    }

    public init() {
        self.init(dev: 0, ino: 0, nlink: 0, mode: 0, uid: 0, gid: 0, rdev: 0, size: 0,
                  blksize: 0, blocks: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0,
                  mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0)
    }

    /// The `S_IFMT` bits of `mode`.
    public var fileType: UInt32 { mode & 0o170000 }
    public var isDirectory: Bool { fileType == 0o040000 }
    public var isSymlink: Bool { fileType == 0o120000 }
    public var isRegular: Bool { fileType == 0o100000 }
}

/// One directory entry. `type` is a `DT_*` value; `name` is never "." or "..".
public struct GoferDirent: Sendable, Equatable {
    public var ino: UInt64
    public var type: UInt8
    public var name: [UInt8]
    public init(ino: UInt64, type: UInt8, name: [UInt8]) {
        self.ino = ino; self.type = type; self.name = name
    }
}

/// Which attributes `GoferClient.setattr` changes; `nil` leaves one alone.
///
/// Times: `nsec` may be `GoferSetAttr.utimeNow` (set to the Gofer host's
/// current time) or `GoferSetAttr.utimeOmit` (leave unchanged), exactly like
/// Linux `utimensat(2)`; otherwise it must be in 0..<1_000_000_000.
/// The Gofer applies, in this order: size, owner (uid/gid), mode, times — so a
/// mode set together with an owner change keeps its set-id bits, and explicit
/// times win over the mtime change a truncate makes.
public struct GoferSetAttr: Sendable {
    public static let utimeNow: Int64 = (1 << 30) - 1
    public static let utimeOmit: Int64 = (1 << 30) - 2

    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: Int64?
    public var atime: (sec: Int64, nsec: Int64)?
    public var mtime: (sec: Int64, nsec: Int64)?
    public init() {}
}

/// Mirrors the host `struct statfs`.
public struct GoferStatFS: Sendable, Equatable {
    public var type: Int64
    public var bsize: Int64
    public var blocks: UInt64
    public var bfree: UInt64
    public var bavail: UInt64
    public var files: UInt64
    public var ffree: UInt64
    public var namelen: Int64
    public var frsize: Int64
    public var flags: Int64

    public init(type: Int64, bsize: Int64, blocks: UInt64, bfree: UInt64, bavail: UInt64,
                files: UInt64, ffree: UInt64, namelen: Int64, frsize: Int64, flags: Int64) {
        self.type = type; self.bsize = bsize; self.blocks = blocks; self.bfree = bfree
        self.bavail = bavail; self.files = files; self.ffree = ffree
        self.namelen = namelen; self.frsize = frsize; self.flags = flags
    }

    public init() {
        self.init(type: 0, bsize: 0, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0,
                  namelen: 0, frsize: 0, flags: 0)
    }
}
