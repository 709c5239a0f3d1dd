// The Sentry <-> Gofer wire format, version 2 (opcodes 18-22 are new in 2).
//
// Transport: one AF_UNIX SOCK_SEQPACKET socket; every request and every reply
// is exactly one packet. All integers are little-endian. Host fds travel only
// from the Gofer to the Sentry, as SCM_RIGHTS on a reply (at most one per
// reply); fds sent towards the Gofer are discarded by its kernel unread.
//
//   request  = { u32 payloadLength, u16 opcode, u16 reserved=0 } payload
//   reply    = { u32 payloadLength, u16 status, u16 opcode-echo } payload
//
// `status` is 0 for success or a Linux errno value (1...4095); an error reply
// has an empty payload. The reply's last header field echoes the request's
// opcode so a desynchronised peer is caught at once. Requests are answered in
// order, one at a time; `close` is the only request that gets no reply.
//
// Payload primitives:
//   name   = u16 length (1...255) + bytes (no "/", no NUL, not "." or "..")
//   target = u16 length (1...4095) + bytes (no NUL)  (symlink contents)
//   stat   = 120 bytes: u64 dev, u64 ino, u64 nlink, u32 mode, u32 uid, u32 gid,
//            u32 pad, u64 rdev, i64 size, i64 blksize, i64 blocks,
//            i64 atimeSec, i64 atimeNsec, i64 mtimeSec, i64 mtimeNsec,
//            i64 ctimeSec, i64 ctimeNsec
//   statfs = 80 bytes: i64 type, i64 bsize, u64 blocks, u64 bfree, u64 bavail,
//            u64 files, u64 ffree, i64 namelen, i64 frsize, i64 flags
//
// Opcodes (request payload -> reply payload); flag values are the host's
// Linux values (Sentry and Gofer always run on the same host):
//   1 version  {u32 version, u32 maxMessage} -> {u32 version, u32 maxMessage}
//              must be the first request; a mismatch gets EPROTONOSUPPORT and
//              the Gofer hangs up. Any other first request: the Gofer hangs up.
//   2 attach   {} -> {u64 fid, stat}                           (the served root)
//   3 walk     {u64 dir, u16 n (1...maxWalkNames), n*name}
//              -> {i32 errno, u16 count, count*{u64 fid, stat}}
//              walks name by name; stops after a symlink (no error) or before
//              descending through a non-directory (ENOTDIR), or at the first
//              failure (its errno). count may be 0 only with errno != 0.
//   4 stat     {u64 fid} -> {stat}
//   5 open     {u64 fid, i32 flags} -> {} + 1 fd
//   6 create   {u64 dir, i32 flags, u32 mode, u32 uid, u32 gid, name}
//              -> {u64 fid, stat} + 1 fd
//   7 mkdir    {u64 dir, u32 mode, u32 uid, u32 gid, name} -> {u64 fid, stat}
//   8 symlink  {u64 dir, u32 uid, u32 gid, name, target} -> {u64 fid, stat}
//   9 link     {u64 dir, u64 target, name} -> {u64 fid, stat}
//  10 mknod    {u64 dir, u32 mode, u32 uid, u32 gid, name} -> {u64 fid, stat}
//  11 unlink   {u64 dir, i32 flags, name} -> {}
//  12 rename   {u64 oldDir, u64 newDir, u32 flags, name old, name new} -> {}
//  13 readlink {u64 fid} -> {target}
//  14 getdents {u64 fid, u64 cookie} -> {u64 nextCookie, u8 eof, u8 pad,
//              u16 count (<= maxDirentsPerReply), count*{u64 ino, u8 type,
//              u8 nameLength, bytes}}      cookie 0 = start of the directory
//  15 setattr  {u64 fid, u32 mask, u32 mode, u32 uid, u32 gid, i64 size,
//              i64 atimeSec, i64 atimeNsec, i64 mtimeSec, i64 mtimeNsec} -> {}
//              mask bits: SetAttrMask
//  16 statfs   {u64 fid} -> {statfs}
//  17 close    {u16 n (1...maxCloseFIDs), n*u64 fid}   (no reply)
//
// Version 2 added extended attributes and unnamed files:
//   xname  = u16 length (6...255) + bytes: "user." and at least one more byte,
//            no NUL (only the user namespace reaches the host; see XattrOps.swift)
//   value  = u32 length (0...maxXattrValue) + bytes
//  18 getxattr    {u64 fid, xname} -> {value}
//  19 setxattr    {u64 fid, u32 flags (XATTR_CREATE=1 | XATTR_REPLACE=2),
//                 xname, value} -> {}
//  20 listxattr   {u64 fid} -> {value}  the user.* names, each NUL-terminated
//                 (at most maxXattrList bytes)
//  21 removexattr {u64 fid, xname} -> {}
//              Regular files and directories only; on anything else get is
//              ENODATA, list is empty and set/remove are EPERM (what Linux
//              gives for user.* there).
//  22 tmpfile  {u64 dir, i32 flags, u32 mode, u32 uid, u32 gid}
//              -> {u64 fid, stat} + 1 fd
//              an unnamed regular file in `dir` (open(2)'s O_TMPFILE) owned by
//              uid/gid with exactly `mode & 0o7777`. flags: O_WRONLY or
//              O_RDWR, optionally O_EXCL (never linkable) and the flags
//              `create` passes through. The FID keeps the file alive and can
//              be given to `link` (as its target) to name it, and to `open`.
//  23 scratch  {} -> {} + 1 fd
//              a new, empty, unnamed and never linkable regular file (O_TMPFILE
//              | O_EXCL, read-write) for the Sentry's own use: the bytes of the
//              overlay's upper layer (FSImpl/UpperStore.swift). It is made in
//              the served root's host file system, through a writable clone of
//              the root's mount the Gofer took at start-up (`moat gofer
//              --scratch`, Confinement.swift), even when it serves the tree
//              read-only: the tree itself does not change, and the file's
//              blocks go back to the file system with its last fd, whatever
//              way the sandbox ends. EPERM without --scratch; ENOSYS from a
//              Gofer older than this opcode; the host's errno (EROFS,
//              EOPNOTSUPP, ENOSPC...) when it cannot make one.
//  24 getacl   {u64 fid, u8 kind (0 access, 1 default)} -> {value}
//              the host's system.posix_acl_access (kind 0) or
//              system.posix_acl_default (kind 1) of a regular file or
//              directory, as the host stores it: ids are host ids (the
//              Sentry's kernel ids, as stat's owners are). ENODATA when it has
//              none (and for other file types); EOPNOTSUPP from a host file
//              system without ACLs; ENOSYS from a Gofer older than this opcode.
//  25 setacl   {u64 fid, u8 kind, value} -> {}
//              an empty value removes the ACL; any other must pass
//              GoferACL.validate (Linux's format and validity rules: version
//              2, whole 8-byte entries, known tags, permissions within rwx,
//              base entries once and in order, a mask with named entries, no
//              id -1 on a named entry), else EINVAL without touching the
//              file. The ids are host ids, translated by the Sentry exactly
//              as a chown's. A default ACL is for a directory only (EACCES
//              otherwise); symlinks and other file types get EOPNOTSUPP. The
//              host kernel then does what it does for its own setfacl: sets
//              the mode from an access ACL, drops one a mode can say.
//              These are the only two system.* names that reach the host;
//              see Gofer/XattrOps.swift for why.
//
// A request whose payload does not parse exactly (short, trailing bytes, bad
// lengths) gets EINVAL; an unknown opcode gets ENOSYS; an unknown FID gets
// EBADF. A packet that is truncated, shorter than a header or whose header
// length disagrees with the packet size makes the Gofer hang up.

/// Protocol constants and limits shared by both ends.
public enum GoferWire {
    public static let version: UInt32 = 2
    public static let headerSize = 8
    /// Largest packet (header included) either side sends or accepts. Kept well
    /// under the default AF_UNIX datagram send buffer (net.core.wmem_default).
    public static let maxMessage = 128 * 1024
    public static let maxNameLength = 255
    public static let maxTargetLength = 4095
    public static let maxWalkNames = 128
    public static let maxDirentsPerReply = 512
    /// Soft cap on the getdents reply payload; always below maxMessage.
    public static let maxDirentPayload = 96 * 1024
    public static let maxCloseFIDs = 1024
    public static let statSize = 120
    public static let statfsSize = 80
    /// Longest extended attribute name (XATTR_NAME_MAX).
    public static let maxXattrName = 255
    /// Largest extended attribute value (XATTR_SIZE_MAX).
    public static let maxXattrValue = 65536
    /// Largest listxattr result (XATTR_LIST_MAX).
    public static let maxXattrList = 65536
}

/// Request opcodes.
public enum GoferOp: UInt16, Sendable {
    case version = 1
    case attach = 2
    case walk = 3
    case stat = 4
    case open = 5
    case create = 6
    case mkdir = 7
    case symlink = 8
    case link = 9
    case mknod = 10
    case unlink = 11
    case rename = 12
    case readlink = 13
    case getdents = 14
    case setattr = 15
    case statfs = 16
    case close = 17
    case getxattr = 18
    case setxattr = 19
    case listxattr = 20
    case removexattr = 21
    case tmpfile = 22
    case scratch = 23
    case getacl = 24
    case setacl = 25
}

/// `setattr` mask bits.
public enum SetAttrMask {
    public static let mode: UInt32 = 1 << 0
    public static let uid: UInt32 = 1 << 1
    public static let gid: UInt32 = 1 << 2
    public static let size: UInt32 = 1 << 3
    public static let atime: UInt32 = 1 << 4
    public static let mtime: UInt32 = 1 << 5
    public static let all: UInt32 = (1 << 6) - 1
}

/// The only failure a wire decode can report; the receiver turns it into
/// EINVAL (server) or a dead connection (client).
package struct WireError: Error {
    package init() {}
}

/// Appends little-endian values to a caller-owned buffer. Overflowing the
/// buffer sets `overflow` and drops the write instead of trapping.
package struct WireWriter {
    package let base: UnsafeMutableRawPointer
    package let capacity: Int
    package private(set) var count: Int
    package private(set) var overflow = false

    package init(base: UnsafeMutableRawPointer, capacity: Int, start: Int = 0) {
        self.base = base; self.capacity = capacity; self.count = start
    }

    @inline(__always)
    private mutating func reserve(_ n: Int) -> Bool {
        if overflow || n > capacity - count { overflow = true; return false }
        return true
    }

    @inline(__always)
    package mutating func u8(_ v: UInt8) {
        guard reserve(1) else { return }
        base.storeBytes(of: v, toByteOffset: count, as: UInt8.self); count += 1
    }
    @inline(__always)
    package mutating func u16(_ v: UInt16) {
        guard reserve(2) else { return }
        base.storeBytes(of: v.littleEndian, toByteOffset: count, as: UInt16.self); count += 2
    }
    @inline(__always)
    package mutating func u32(_ v: UInt32) {
        guard reserve(4) else { return }
        base.storeBytes(of: v.littleEndian, toByteOffset: count, as: UInt32.self); count += 4
    }
    @inline(__always)
    package mutating func u64(_ v: UInt64) {
        guard reserve(8) else { return }
        base.storeBytes(of: v.littleEndian, toByteOffset: count, as: UInt64.self); count += 8
    }
    @inline(__always) package mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    @inline(__always) package mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }

    package mutating func bytes(_ p: UnsafeRawBufferPointer) {
        guard p.count > 0 else { return }
        guard reserve(p.count) else { return }
        (base + count).copyMemory(from: p.baseAddress!, byteCount: p.count)
        count += p.count
    }

    package mutating func bytes(_ a: [UInt8]) {
        a.withUnsafeBytes { bytes($0) }
    }

    /// u16 length + bytes.
    package mutating func string16(_ a: [UInt8]) {
        guard a.count <= Int(UInt16.max) else { overflow = true; return }
        u16(UInt16(a.count)); bytes(a)
    }

    /// u32 length + bytes.
    package mutating func bytes32(_ a: [UInt8]) {
        guard a.count <= Int(UInt32.max) else { overflow = true; return }
        u32(UInt32(a.count)); bytes(a)
    }

    /// Writes `v` at an earlier offset (e.g. a count known only at the end).
    package func patchU16(at offset: Int, _ v: UInt16) {
        precondition(offset >= 0 && offset + 2 <= count)
        base.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    package var remaining: Int { overflow ? 0 : capacity - count }
}

/// Reads little-endian values from a received packet; every read is bounds
/// checked and fails with `WireError` instead of trapping.
package struct WireReader {
    package let base: UnsafeRawPointer
    package let count: Int
    package private(set) var offset: Int

    package init(base: UnsafeRawPointer, count: Int, start: Int = 0) {
        self.base = base; self.count = count; self.offset = start
    }

    package var remaining: Int { count - offset }

    @inline(__always)
    private mutating func take(_ n: Int) throws(WireError) -> Int {
        guard n <= count - offset else { throw WireError() }
        let o = offset; offset += n; return o
    }

    @inline(__always)
    package mutating func u8() throws(WireError) -> UInt8 {
        base.load(fromByteOffset: try take(1), as: UInt8.self)
    }
    @inline(__always)
    package mutating func u16() throws(WireError) -> UInt16 {
        UInt16(littleEndian: base.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self))
    }
    @inline(__always)
    package mutating func u32() throws(WireError) -> UInt32 {
        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self))
    }
    @inline(__always)
    package mutating func u64() throws(WireError) -> UInt64 {
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self))
    }
    @inline(__always) package mutating func i32() throws(WireError) -> Int32 { Int32(bitPattern: try u32()) }
    @inline(__always) package mutating func i64() throws(WireError) -> Int64 { Int64(bitPattern: try u64()) }

    package mutating func bytes(_ n: Int) throws(WireError) -> [UInt8] {
        let o = try take(n)
        return [UInt8](UnsafeRawBufferPointer(start: base + o, count: n))
    }

    /// A u16-length-prefixed byte string of at most `max` bytes.
    package mutating func string16(max: Int) throws(WireError) -> [UInt8] {
        let n = Int(try u16())
        guard n <= max else { throw WireError() }
        return try bytes(n)
    }

    /// A u16-length-prefixed path component that passes `GoferNames.isValidName`.
    package mutating func name() throws(WireError) -> [UInt8] {
        let n = try string16(max: GoferWire.maxNameLength)
        guard GoferNames.isValidName(n) else { throw WireError() }
        return n
    }

    /// A u16-length-prefixed extended attribute name that passes
    /// `GoferNames.validateXattrName`.
    package mutating func xattrName() throws(WireError) -> [UInt8] {
        let n = try string16(max: GoferWire.maxXattrName)
        guard GoferNames.validateXattrName(n) == 0 else { throw WireError() }
        return n
    }

    /// A u32-length-prefixed byte string of at most `max` bytes.
    package mutating func bytes32(max: Int) throws(WireError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= max else { throw WireError() }
        return try bytes(n)
    }

    /// A getacl/setacl kind byte: 0 (access) or 1 (default).
    package mutating func aclKind() throws(WireError) -> GoferACLKind {
        guard let k = GoferACLKind(rawValue: try u8()) else { throw WireError() }
        return k
    }

    /// Fails unless every byte of the payload was consumed.
    package func finish() throws(WireError) {
        guard offset == count else { throw WireError() }
    }
}

/// Validation shared by both ends.
public enum GoferNames {
    /// A single path component the Gofer will look up: 1...255 bytes, no "/"
    /// or NUL, and not "." or "..".
    public static func isValidName(_ name: [UInt8]) -> Bool {
        validateName(name) == 0
    }

    /// 0 if valid, else the errno a caller should see (EINVAL / ENAMETOOLONG).
    public static func validateName(_ name: [UInt8]) -> Int32 {
        let n = name.count
        if n == 0 { return 22 /* EINVAL */ }
        if n > GoferWire.maxNameLength { return 36 /* ENAMETOOLONG */ }
        if n == 1 && name[0] == 0x2E { return 22 }
        if n == 2 && name[0] == 0x2E && name[1] == 0x2E { return 22 }
        for b in name where b == 0x2F || b == 0 { return 22 }
        return 0
    }

    /// 0 if `name` is an extended attribute name the Gofer serves: in the
    /// user namespace, "user." plus at least one byte, at most 255 bytes, no
    /// NUL. Else the errno Linux gives for it: ERANGE for an empty or too
    /// long name, EINVAL for the bare prefix, EOPNOTSUPP for another namespace.
    public static func validateXattrName(_ name: [UInt8]) -> Int32 {
        if name.isEmpty || name.count > GoferWire.maxXattrName { return 34 /* ERANGE */ }
        if name.contains(0) { return 22 }
        let prefix: [UInt8] = Array("user.".utf8)
        guard name.starts(with: prefix) else { return 95 /* EOPNOTSUPP */ }
        if name.count == prefix.count { return 22 /* EINVAL */ }
        return 0
    }

    /// 0 if `target` may be stored as a symlink body, else an errno.
    public static func validateTarget(_ target: [UInt8]) -> Int32 {
        if target.isEmpty { return 2 /* ENOENT, as symlink(2) */ }
        if target.count > GoferWire.maxTargetLength { return 36 /* ENAMETOOLONG */ }
        for b in target where b == 0 { return 22 }
        return 0
    }
}
