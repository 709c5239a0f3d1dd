// The Sentry's side of the Gofer protocol (see Wire.swift for the format).
//
// One request is in flight at a time: calls from many threads are serialised
// by a pthread mutex, and each call reuses two preallocated packet buffers, so
// the hot path (walk/stat/open) allocates nothing beyond the values it returns.
// Anything unexpected from the Gofer — a bad header, a payload that does not
// decode exactly, an fd where none belongs — is treated as a broken
// connection: the socket is shut down, `isDead` becomes true and every call
// from then on fails with EIO.

import Glibc

public final class GoferClient: @unchecked Sendable {
    private let sock: Int32
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let sendBuf: UnsafeMutableRawPointer
    private let recvBuf: UnsafeMutableRawPointer
    private var dead = false
    private var handshaken = false

    /// Takes ownership of `socketFD` (a connected SOCK_SEQPACKET socket). The
    /// version handshake happens on the first call.
    public init(socketFD: Int32) {
        sock = socketFD
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        sendBuf = .allocate(byteCount: GoferWire.maxMessage, alignment: 16)
        recvBuf = .allocate(byteCount: GoferWire.maxMessage, alignment: 16)
    }

    deinit {
        Glibc.close(sock)
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
        sendBuf.deallocate()
        recvBuf.deallocate()
    }

    /// A connected, close-on-exec SOCK_SEQPACKET pair: give `client` to
    /// `GoferClient.init` and `server` to the Gofer process.
    public static func socketPair() -> Result<(client: Int32, server: Int32), GoferErrno> {
        MessageSocket.socketPair().map { (client: $0.0, server: $0.1) }
    }

    /// Blocks until the Gofer's end of the connection is gone (it exited or
    /// was killed), then marks the connection dead. For a watcher thread:
    /// the Sentry learns of the Gofer's death even while no call is made.
    public func waitForDisconnect() {
        var p = pollfd(fd: sock, events: Int16(0x2000) /* POLLRDHUP */, revents: 0)
        while true {
            let r = poll(&p, 1, -1)
            if r < 0 && errno == EINTR { continue }
            if r < 0 || p.revents & Int16(POLLHUP | POLLERR | 0x2000) != 0 { break }
        }
        pthread_mutex_lock(mutex)
        dieLocked()
        pthread_mutex_unlock(mutex)
    }

    /// True once the connection failed; every call then returns EIO.
    public var isDead: Bool {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return dead
    }

    // MARK: - Calls

    /// A new FID for the root of the served tree (performs the handshake if needed).
    public func attach() -> Result<(FID, GoferStat), GoferErrno> {
        call(.attach, { _ in }) { r, _ throws(WireError) in try Self.fidStat(&r) }
    }

    /// Looks up one component of `dir`. Never follows symlinks: a symlink yields a
    /// FID for the link itself. "", ".", ".." and names with "/" or NUL are EINVAL
    /// (the Sentry resolves those itself); names over 255 bytes are ENAMETOOLONG.
    public func walk(_ dir: FID, _ name: [UInt8]) -> Result<(FID, GoferStat), GoferErrno> {
        let e = GoferNames.validateName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        let (walked, err) = walkChunk(dir, CollectionOfOne(name))
        if let first = walked.first { return .success(first) }
        return .failure(err ?? GoferErrno(EIO))
    }

    /// Walks `names` one after another from `dir`, returning a FID per component
    /// walked. Stops early — with `error == nil` — right after a symlink (the
    /// Sentry must resolve it), with ENOTDIR before descending through a
    /// non-directory, or at the first failure (its errno, e.g. ENOENT). Long
    /// walks are split into several requests transparently.
    public func walkMany(_ dir: FID, _ names: [[UInt8]]) -> (walked: [(FID, GoferStat)], error: GoferErrno?) {
        var walked: [(FID, GoferStat)] = []
        var cur = dir
        var start = 0
        while start < names.count {
            // Validate this chunk first; an invalid name ends the walk there.
            var end = min(start + GoferWire.maxWalkNames, names.count)
            var nameError: GoferErrno?
            for i in start..<end {
                let e = GoferNames.validateName(names[i])
                if e != 0 { end = i; nameError = GoferErrno(e); break }
            }
            if end > start {
                let (part, err) = walkChunk(cur, names[start..<end])
                walked.append(contentsOf: part)
                if let err { return (walked, err) }
                if part.count < end - start { return (walked, nil) } // stopped at a symlink
            }
            if let nameError { return (walked, nameError) }
            guard let last = walked.last else { return (walked, GoferErrno(EIO)) }
            start = end
            if start < names.count {
                if last.1.isSymlink { return (walked, nil) }
                if !last.1.isDirectory { return (walked, GoferErrno(ENOTDIR)) }
                cur = last.0
            }
        }
        return (walked, nil)
    }

    private func walkChunk<C: Collection>(_ dir: FID, _ names: C) -> (walked: [(FID, GoferStat)], error: GoferErrno?)
        where C.Element == [UInt8] {
        let requested = names.count
        let r = call(.walk, { w in
            w.u64(dir); w.u16(UInt16(requested))
            for n in names { w.string16(n) }
        }) { r, _ throws(WireError) -> (walked: [(FID, GoferStat)], error: GoferErrno?) in
            let err = try r.i32()
            let count = Int(try r.u16())
            guard count <= requested, (0...4095).contains(err), count > 0 || err != 0 else { throw WireError() }
            var out: [(FID, GoferStat)] = []
            out.reserveCapacity(count)
            for _ in 0..<count { out.append(try Self.fidStat(&r)) }
            return (out, err == 0 ? nil : GoferErrno(err))
        }
        switch r {
        case .success(let v): return v
        case .failure(let e): return ([], e)
        }
    }

    /// The current attributes of `fid` (lstat semantics).
    public func stat(_ fid: FID) -> Result<GoferStat, GoferErrno> {
        call(.stat, { w in w.u64(fid) }) { r, _ throws(WireError) in try r.stat() }
    }

    /// A host fd for `fid`, donated by the Gofer (owned by the caller,
    /// close-on-exec). Allowed flags: access mode, O_TRUNC, O_APPEND,
    /// O_DIRECTORY, O_NONBLOCK, O_DSYNC, O_SYNC (O_NOFOLLOW/O_CLOEXEC/O_NOCTTY/
    /// O_LARGEFILE are accepted and implied); anything else is EINVAL. Only
    /// regular files and directories open: symlinks are ELOOP, FIFOs and
    /// sockets ENXIO, device nodes EPERM. ESTALE when the file behind `fid` was
    /// unlinked or replaced (walk again).
    public func open(_ fid: FID, flags: Int32) -> Result<Int32, GoferErrno> {
        let e = GoferOpenFlags.validateOpen(flags)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.open, expectFD: true, { w in w.u64(fid); w.i32(flags) }) { _, fd throws(WireError) in fd }
    }

    /// Creates and opens a regular file (O_CREAT|O_EXCL semantics, never through a
    /// symlink) owned by uid/gid with exactly `mode & 0o7777` (no umask). Returns
    /// its FID, attributes and a donated host fd. Flags as for `open` minus
    /// O_DIRECTORY.
    public func create(_ dir: FID, _ name: [UInt8], flags: Int32, mode: UInt32, uid: UInt32, gid: UInt32)
        -> Result<(FID, GoferStat, Int32), GoferErrno> {
        var e = GoferNames.validateName(name)
        if e == 0 { e = GoferOpenFlags.validateCreate(flags) }
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.create, expectFD: true, { w in
            w.u64(dir); w.i32(flags); w.u32(mode); w.u32(uid); w.u32(gid); w.string16(name)
        }) { r, fd throws(WireError) in
            let (fid, st) = try Self.fidStat(&r)
            return (fid, st, fd)
        }
    }

    /// Creates a directory owned by uid/gid with exactly `mode & 0o7777`.
    public func mkdir(_ dir: FID, _ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<(FID, GoferStat), GoferErrno> {
        let e = GoferNames.validateName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.mkdir, { w in
            w.u64(dir); w.u32(mode); w.u32(uid); w.u32(gid); w.string16(name)
        }) { r, _ throws(WireError) in try Self.fidStat(&r) }
    }

    /// Creates a symlink (target 1...4095 bytes, no NUL) owned by uid/gid.
    public func symlink(_ dir: FID, _ name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) -> Result<(FID, GoferStat), GoferErrno> {
        var e = GoferNames.validateName(name)
        if e == 0 { e = GoferNames.validateTarget(target) }
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.symlink, { w in
            w.u64(dir); w.u32(uid); w.u32(gid); w.string16(name); w.string16(target)
        }) { r, _ throws(WireError) in try Self.fidStat(&r) }
    }

    /// Creates a hard link named `name` in `dir` to the file of `target` (never a
    /// directory: EPERM). A symlink target links the symlink itself.
    public func link(_ dir: FID, _ name: [UInt8], target: FID) -> Result<(FID, GoferStat), GoferErrno> {
        let e = GoferNames.validateName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.link, { w in w.u64(dir); w.u64(target); w.string16(name) }) { r, _ throws(WireError) in
            try Self.fidStat(&r)
        }
    }

    /// Creates a FIFO, socket or regular file (`mode` carries S_IFMT; 0 means
    /// regular). Device nodes are EPERM, other types EINVAL.
    public func mknod(_ dir: FID, _ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<(FID, GoferStat), GoferErrno> {
        let e = GoferNames.validateName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.mknod, { w in
            w.u64(dir); w.u32(mode); w.u32(uid); w.u32(gid); w.string16(name)
        }) { r, _ throws(WireError) in try Self.fidStat(&r) }
    }

    /// Removes `name` from `dir`; `flags` is 0 or AT_REMOVEDIR. FIDs of the removed
    /// file stay valid for stat but can no longer be opened (ESTALE).
    public func unlink(_ dir: FID, _ name: [UInt8], flags: Int32) -> Result<Void, GoferErrno> {
        let e = GoferNames.validateName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.unlink, { w in w.u64(dir); w.i32(flags); w.string16(name) }) { _, _ throws(WireError) in () }
    }

    /// renameat2 with `flags` 0, RENAME_NOREPLACE (1) or RENAME_EXCHANGE (2). FIDs
    /// of moved files follow them; a replaced file's FIDs go stale.
    public func rename(_ oldDir: FID, _ oldName: [UInt8], _ newDir: FID, _ newName: [UInt8], flags: UInt32) -> Result<Void, GoferErrno> {
        var e = GoferNames.validateName(oldName)
        if e == 0 { e = GoferNames.validateName(newName) }
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.rename, { w in
            w.u64(oldDir); w.u64(newDir); w.u32(flags); w.string16(oldName); w.string16(newName)
        }) { _, _ throws(WireError) in () }
    }

    /// The target of a symlink FID (EINVAL for anything else).
    public func readlink(_ fid: FID) -> Result<[UInt8], GoferErrno> {
        call(.readlink, { w in w.u64(fid) }) { r, _ throws(WireError) in
            let t = try r.string16(max: GoferWire.maxTargetLength)
            guard GoferNames.validateTarget(t) == 0 else { throw WireError() }
            return t
        }
    }

    /// Upper bound on the entries one `getdents` call collects (ENOMEM beyond).
    public static let maxDirectoryEntries = 1 << 22

    /// Every entry of a directory except "." and "..", fetched in pages.
    public func getdents(_ fid: FID) -> Result<[GoferDirent], GoferErrno> {
        var out: [GoferDirent] = []
        var cookie: UInt64 = 0
        while true {
            var eof = false
            let r = call(.getdents, { w in w.u64(fid); w.u64(cookie) }) { r, _ throws(WireError) in
                let next = try r.u64()
                let eofByte = try r.u8()
                _ = try r.u8()
                let count = Int(try r.u16())
                guard count <= GoferWire.maxDirentsPerReply, eofByte <= 1 else { throw WireError() }
                // A page that neither ends the listing nor makes progress would loop forever.
                guard eofByte == 1 || count > 0 else { throw WireError() }
                for _ in 0..<count {
                    let ino = try r.u64()
                    let type = try r.u8()
                    let len = Int(try r.u8())
                    let name = try r.bytes(len)
                    guard GoferNames.isValidName(name) else { throw WireError() }
                    out.append(GoferDirent(ino: ino, type: type, name: name))
                }
                cookie = next
                eof = eofByte == 1
            }
            if case .failure(let e) = r { return .failure(e) }
            if eof { return .success(out) }
            if out.count > Self.maxDirectoryEntries { return .failure(GoferErrno(ENOMEM)) }
        }
    }

    /// Changes the attributes set in `attr` (see `GoferSetAttr` for order and
    /// time semantics). Size only for regular files (EISDIR for directories).
    /// Symlinks: owner and times apply to the link itself; mode is EOPNOTSUPP.
    public func setattr(_ fid: FID, _ attr: GoferSetAttr) -> Result<Void, GoferErrno> {
        let req = SetAttrRequest(attr)
        if req.mask & SetAttrMask.size != 0 && req.size < 0 { return .failure(GoferErrno(EINVAL)) }
        if !SetAttrRequest.validNsec(req.atimeNsec) || !SetAttrRequest.validNsec(req.mtimeNsec) {
            return .failure(GoferErrno(EINVAL))
        }
        return call(.setattr, { w in w.u64(fid); req.encode(into: &w) }) { _, _ throws(WireError) in () }
    }

    /// The host filesystem statistics for the filesystem holding `fid`.
    public func statfs(_ fid: FID) -> Result<GoferStatFS, GoferErrno> {
        call(.statfs, { w in w.u64(fid) }) { r, _ throws(WireError) in try r.statfs() }
    }

    // MARK: Extended attributes (user namespace only) and unnamed files

    /// The value of the extended attribute `name` of `fid` (ENODATA if it has
    /// none). `name` must pass `GoferNames.validateXattrName`.
    public func getxattr(_ fid: FID, _ name: [UInt8]) -> Result<[UInt8], GoferErrno> {
        let e = GoferNames.validateXattrName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.getxattr, { w in w.u64(fid); w.string16(name) }) { r, _ throws(WireError) in
            try r.bytes32(max: GoferWire.maxXattrValue)
        }
    }

    /// Sets an extended attribute; `flags` is any of XATTR_CREATE (1, else
    /// EEXIST) and XATTR_REPLACE (2, else ENODATA), as setxattr(2) takes them.
    public func setxattr(_ fid: FID, _ name: [UInt8], _ value: [UInt8], flags: Int32) -> Result<Void, GoferErrno> {
        let e = GoferNames.validateXattrName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        if value.count > GoferWire.maxXattrValue { return .failure(GoferErrno(E2BIG)) }
        if flags & ~3 != 0 { return .failure(GoferErrno(EINVAL)) }
        return call(.setxattr, { w in w.u64(fid); w.u32(UInt32(flags)); w.string16(name); w.bytes32(value) }) {
            _, _ throws(WireError) in ()
        }
    }

    /// The user.* attribute names of `fid`, each followed by a NUL.
    public func listxattr(_ fid: FID) -> Result<[UInt8], GoferErrno> {
        call(.listxattr, { w in w.u64(fid) }) { r, _ throws(WireError) in
            let l = try r.bytes32(max: GoferWire.maxXattrList)
            guard l.isEmpty || l.last == 0 else { throw WireError() }
            return l
        }
    }

    /// Removes an extended attribute (ENODATA if there is none).
    public func removexattr(_ fid: FID, _ name: [UInt8]) -> Result<Void, GoferErrno> {
        let e = GoferNames.validateXattrName(name)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.removexattr, { w in w.u64(fid); w.string16(name) }) { _, _ throws(WireError) in () }
    }

    /// The host ACL of `kind` of `fid`, in the xattr format with host ids
    /// (ENODATA without one; ENOSYS from a Gofer older than getacl).
    public func getacl(_ fid: FID, _ kind: GoferACLKind) -> Result<[UInt8], GoferErrno> {
        call(.getacl, { w in w.u64(fid); w.u8(kind.rawValue) }) { r, _ throws(WireError) in
            try r.bytes32(max: GoferWire.maxXattrValue)
        }
    }

    /// Sets (a value that passes `GoferACL.validate`, ids already host ids)
    /// or removes (an empty value) the host ACL of `kind` of `fid`.
    public func setacl(_ fid: FID, _ kind: GoferACLKind, _ value: [UInt8]) -> Result<Void, GoferErrno> {
        if !value.isEmpty {
            let e = GoferACL.validate(value)
            if e != 0 { return .failure(GoferErrno(e)) }
        }
        return call(.setacl, { w in w.u64(fid); w.u8(kind.rawValue); w.bytes32(value) }) { _, _ throws(WireError) in () }
    }

    /// open(2) with O_TMPFILE in `dir`: a new unnamed regular file owned by
    /// uid/gid with exactly `mode & 0o7777`. Returns its FID (which keeps it
    /// alive and can be `link`ed to give it a name, unless `flags` has
    /// O_EXCL), its attributes and a donated host fd. Flags: see
    /// `GoferOpenFlags.validateTmpfile`.
    public func tmpfile(_ dir: FID, flags: Int32, mode: UInt32, uid: UInt32, gid: UInt32)
        -> Result<(FID, GoferStat, Int32), GoferErrno> {
        let e = GoferOpenFlags.validateTmpfile(flags)
        if e != 0 { return .failure(GoferErrno(e)) }
        return call(.tmpfile, expectFD: true, { w in
            w.u64(dir); w.i32(flags); w.u32(mode); w.u32(uid); w.u32(gid)
        }) { r, fd throws(WireError) in
            let (fid, st) = try Self.fidStat(&r)
            return (fid, st, fd)
        }
    }

    /// A new unnamed, never linkable, empty regular file for the Sentry's
    /// own data (opcode 23; see Wire.swift), as a donated host fd.
    public func scratch() -> Result<Int32, GoferErrno> {
        call(.scratch, expectFD: true, { _ in }) { _, fd throws(WireError) in fd }
    }

    /// Releases `fid`. Sent without waiting for an answer (the Gofer sends none).
    public func close(_ fid: FID) {
        _ = call(.close, { w in w.u16(1); w.u64(fid) }) { _, _ throws(WireError) in () }
    }

    /// Releases many FIDs with as few messages as possible.
    public func closeMany(_ fids: [FID]) {
        var i = 0
        while i < fids.count {
            let end = min(i + GoferWire.maxCloseFIDs, fids.count)
            let slice = fids[i..<end]
            _ = call(.close, { w in
                w.u16(UInt16(slice.count))
                for f in slice { w.u64(f) }
            }) { _, _ throws(WireError) in () }
            i = end
        }
    }

    // MARK: - Plumbing

    private static func fidStat(_ r: inout WireReader) throws(WireError) -> (FID, GoferStat) {
        let fid = try r.u64()
        guard fid != 0 else { throw WireError() }
        return (fid, try r.stat())
    }

    /// One request/reply exchange under the lock. `decode` sees the reply
    /// payload and the donated fd (-1 unless `expectFD`); it must consume the
    /// whole payload. On any decode failure the connection is declared dead.
    private func call<T>(_ op: GoferOp, expectFD: Bool = false,
                         _ encode: (inout WireWriter) -> Void,
                         _ decode: (inout WireReader, Int32) throws(WireError) -> T) -> Result<T, GoferErrno> {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        if dead { return .failure(GoferErrno(EIO)) }
        if !handshaken {
            if let e = handshakeLocked() { return .failure(e) }
        }
        var fd: Int32 = -1
        switch exchangeLocked(op, expectFD: expectFD, encode, fd: &fd) {
        case .failure(let e):
            return .failure(e)
        case .success(var r):
            do {
                let v = try decode(&r, fd)
                try r.finish()
                return .success(v)
            } catch {
                if fd >= 0 { Glibc.close(fd) }
                dieLocked()
                return .failure(GoferErrno(EIO))
            }
        }
    }

    private func dieLocked() {
        if !dead {
            dead = true
            shutdown(sock, Int32(SHUT_RDWR))
        }
    }

    private func handshakeLocked() -> GoferErrno? {
        var fd: Int32 = -1
        switch exchangeLocked(.version, expectFD: false, { w in
            w.u32(GoferWire.version); w.u32(UInt32(GoferWire.maxMessage))
        }, fd: &fd) {
        case .failure:
            dieLocked()
            return GoferErrno(EIO)
        case .success(var r):
            guard let v = try? r.u32(), let _ = try? r.u32(), (try? r.finish()) != nil, v == GoferWire.version else {
                dieLocked()
                return GoferErrno(EIO)
            }
            handshaken = true
            return nil
        }
    }

    /// Sends one request and receives its reply. A Gofer-reported errno comes
    /// back as `.failure` with the connection intact; anything malformed kills
    /// the connection and yields EIO.
    private func exchangeLocked(_ op: GoferOp, expectFD: Bool, _ encode: (inout WireWriter) -> Void,
                                fd: inout Int32) -> Result<WireReader, GoferErrno> {
        var w = WireWriter(base: sendBuf, capacity: GoferWire.maxMessage, start: GoferWire.headerSize)
        encode(&w)
        if w.overflow { return .failure(GoferErrno(EINVAL)) }
        w.patchU16(at: 4, op.rawValue)
        sendBuf.storeBytes(of: UInt32(w.count - GoferWire.headerSize).littleEndian, toByteOffset: 0, as: UInt32.self)
        sendBuf.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        if MessageSocket.send(sock, sendBuf, w.count) != 0 {
            dieLocked()
            return .failure(GoferErrno(EIO))
        }
        if op == .close {
            return .success(WireReader(base: recvBuf, count: 0))
        }
        var fds = MessageSocket.ReceivedFDs()
        let got = MessageSocket.receive(sock, into: recvBuf, capacity: GoferWire.maxMessage, acceptFDs: true, fds: &fds)
        guard case .message(let n) = got, n >= GoferWire.headerSize else {
            fds.closeAll(); dieLocked()
            return .failure(GoferErrno(EIO))
        }
        let len = Int(UInt32(littleEndian: recvBuf.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        let status = UInt16(littleEndian: recvBuf.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        let echo = UInt16(littleEndian: recvBuf.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        guard len == n - GoferWire.headerSize, echo == op.rawValue, status <= 4095 else {
            fds.closeAll(); dieLocked()
            return .failure(GoferErrno(EIO))
        }
        if status != 0 {
            fds.closeAll()
            if len != 0 { dieLocked(); return .failure(GoferErrno(EIO)) }
            return .failure(GoferErrno(Int32(status)))
        }
        guard fds.count == (expectFD ? 1 : 0) else {
            fds.closeAll(); dieLocked()
            return .failure(GoferErrno(EIO))
        }
        fd = fds.first
        return .success(WireReader(base: recvBuf, count: n, start: GoferWire.headerSize))
    }
}
