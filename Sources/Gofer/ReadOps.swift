// Handlers that look files up and read them: attach, walk, stat, open,
// readlink, getdents, statfs. Every lookup is a single component relative to
// a held directory fd with O_NOFOLLOW; nothing here ever resolves a path.

import Glibc
import GoferProtocol

extension Server {
    func attach(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        try r.finish()
        var st = stat()
        let e = Server.statFD(root.fd, &st)
        if e != 0 { return .err(e) }
        return .err(issue(root, st, &w))
    }

    func walk(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let n = Int(try r.u16())
        guard n >= 1, n <= GoferWire.maxWalkNames else { throw WireError() }
        // Decode every name before touching the filesystem.
        var names: [[UInt8]] = []
        names.reserveCapacity(n)
        for _ in 0..<n { names.append(try r.name()) }
        try r.finish()
        guard var cur = node(dirFID) else { return .err(EBADF) }

        let errOffset = w.count
        w.i32(0)
        let countOffset = w.count
        w.u16(0)
        var walked = 0
        var failure: Int32 = 0
        for (i, name) in names.enumerated() {
            var st = stat()
            let (child, e) = lookup(cur, name, &st)
            guard let child else { failure = e; break }
            let ie = issue(child, st, &w)
            if ie != 0 { failure = ie; break }
            walked += 1
            if i == names.count - 1 { break }
            if child.type == UInt32(S_IFLNK) { break }          // the Sentry follows it
            if child.type != UInt32(S_IFDIR) { failure = ENOTDIR; break }
            cur = child
        }
        if walked == 0 && failure == 0 { failure = EIO }
        w.base.storeBytes(of: UInt32(bitPattern: failure).littleEndian, toByteOffset: errOffset, as: UInt32.self)
        w.patchU16(at: countOffset, UInt16(walked))
        return .ok
    }

    /// Looks up one component under `dir` without following a final symlink,
    /// reusing the cached node when it is still the same inode.
    func lookup(_ dir: Node, _ name: [UInt8], _ st: inout stat) -> (Node?, Int32) {
        let fd = HostSys.withCString(name) { openat(dir.fd, $0, HostSys.O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 { return (nil, HostSys.lastError) }
        let e = Server.statFD(fd, &st)
        if e != 0 { Glibc.close(fd); return (nil, e) }
        if let cached = dir.child(name) {
            if cached.matches(st) && !cached.orphaned {
                Glibc.close(fd)
                return (cached, 0)
            }
            cached.orphaned = true
        }
        let node = Node(fd: fd, parent: dir, name: name, st: st)
        dir.setChild(name, node)
        return (node, 0)
    }

    func statOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        var st = stat()
        let e = Server.statFD(n.fd, &st)
        if e != 0 { return .err(e) }
        w.stat(GoferStat(host: st))
        return .ok
    }

    func openOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let flags = try r.i32()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        let fe = GoferOpenFlags.validateOpen(flags)
        if fe != 0 { return .err(fe) }
        if refusesWrite(n) && GoferOpenFlags.wantsWrite(flags) { return .err(EROFS) }
        let host = flags & GoferOpenFlags.openPassThrough
        switch n.type {
        case UInt32(S_IFDIR):
            let fd = openat(n.fd, ".", host | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
            return fd < 0 ? .err(HostSys.lastError) : .fd(fd)
        case UInt32(S_IFREG):
            return openRegular(n, host)
        case UInt32(S_IFLNK): return .err(ELOOP)
        case UInt32(S_IFIFO), UInt32(S_IFSOCK): return .err(ENXIO) // the Sentry implements these itself
        default: return .err(EPERM)                                 // device nodes are never opened
        }
    }

    /// Opens a regular file for I/O via (parent, name) and proves it is the
    /// node's inode before anything else happens to it. O_NONBLOCK is used for
    /// the open itself so a file swapped for a FIFO behind our back cannot
    /// block the Gofer; truncation happens only after the identity check.
    func openRegular(_ n: Node, _ flags: Int32) -> Outcome {
        if n.unnamed { return reopenUnnamed(n, flags) }
        guard let parent = n.parent, !n.orphaned else { return .err(ESTALE) }
        let writable = flags & O_ACCMODE != O_RDONLY
        var openFlags = flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK
        if writable { openFlags &= ~O_TRUNC }  // done below, after the check
        let fd = HostSys.withCString(n.name) { openat(parent.fd, $0, openFlags) }
        if fd < 0 { return .err(HostSys.lastError) }
        var st = stat()
        if fstat(fd, &st) != 0 || !n.matches(st) || UInt32(st.st_mode) & UInt32(S_IFMT) != UInt32(S_IFREG) {
            Glibc.close(fd)
            return .err(ESTALE)
        }
        if writable && flags & O_TRUNC != 0 && ftruncate(fd, 0) != 0 {
            let e = HostSys.lastError
            Glibc.close(fd)
            return .err(e)
        }
        if flags & O_NONBLOCK == 0 {
            let fl = fcntl(fd, F_GETFL)
            if fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 {
                let e = HostSys.lastError
                Glibc.close(fd)
                return .err(e)
            }
        }
        return .fd(fd)
    }

    /// An unnamed (O_TMPFILE) file has no name to open it by: hand out a
    /// duplicate of the read-write fd the node holds. The Sentry keeps its
    /// own offset, access mode and append flag per description (it reads
    /// and writes with pread/pwrite), so sharing the host description is
    /// harmless; the Gofer never changes its status flags.
    func reopenUnnamed(_ n: Node, _ flags: Int32) -> Outcome {
        if flags & O_ACCMODE != O_RDONLY && flags & O_TRUNC != 0 && ftruncate(n.fd, 0) != 0 {
            return .err(HostSys.lastError)
        }
        let fd = fcntl(n.fd, F_DUPFD_CLOEXEC, 0)
        return fd < 0 ? .err(HostSys.lastError) : .fd(fd)
    }

    func readlinkOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        guard n.type == UInt32(S_IFLNK) else { return .err(EINVAL) }
        let cap = GoferWire.maxTargetLength + 1
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: cap) { buf -> Outcome in
            let len = buf.withMemoryRebound(to: CChar.self) { readlinkat(n.fd, "", $0.baseAddress!, cap) }
            if len < 0 { return .err(HostSys.lastError) }
            if len > GoferWire.maxTargetLength { return .err(ENAMETOOLONG) }
            if len == 0 { return .err(EINVAL) }
            w.u16(UInt16(len))
            w.bytes(UnsafeRawBufferPointer(start: buf.baseAddress, count: len))
            return .ok
        }
    }

    func getdentsOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let cookie = try r.u64()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        guard n.type == UInt32(S_IFDIR) else { return .err(ENOTDIR) }
        guard cookie <= UInt64(Int64.max) else { return .err(EINVAL) }
        let dfd = openat(n.fd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if dfd < 0 { return .err(HostSys.lastError) }
        defer { Glibc.close(dfd) }
        if lseek(dfd, off_t(cookie), SEEK_SET) < 0 { return .err(HostSys.lastError) }

        let headerOffset = w.count
        w.u64(0); w.u8(0); w.u8(0); w.u16(0)
        let budget = min(GoferWire.maxDirentPayload, replyLimit - GoferWire.headerSize)
        var next = cookie
        var count = 0
        var eof = false
        fill: while true {
            let got = HostSys.getdents64(dfd, direntBuf, Server.direntBufSize)
            if got < 0 { return .err(Int32(-got)) }
            if got == 0 { eof = true; break }
            var off = 0
            while off < got {
                // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
                guard got - off >= 20 else { return .err(EIO) }
                let ino = direntBuf.loadUnaligned(fromByteOffset: off, as: UInt64.self)
                let dOff = direntBuf.loadUnaligned(fromByteOffset: off + 8, as: Int64.self)
                let reclen = Int(direntBuf.loadUnaligned(fromByteOffset: off + 16, as: UInt16.self))
                let type = direntBuf.load(fromByteOffset: off + 18, as: UInt8.self)
                guard reclen >= 20, reclen <= got - off else { return .err(EIO) }
                let namePtr = (direntBuf + off + 19).assumingMemoryBound(to: UInt8.self)
                var nameLen = 0
                while nameLen < reclen - 19 && namePtr[nameLen] != 0 { nameLen += 1 }
                let isDot = (nameLen == 1 && namePtr[0] == 0x2E) ||
                    (nameLen == 2 && namePtr[0] == 0x2E && namePtr[1] == 0x2E)
                if !isDot {
                    guard nameLen >= 1, nameLen <= GoferWire.maxNameLength else { return .err(EIO) }
                    if count == GoferWire.maxDirentsPerReply || w.count - headerOffset + 10 + nameLen > budget {
                        break fill
                    }
                    w.u64(ino); w.u8(type); w.u8(UInt8(nameLen))
                    w.bytes(UnsafeRawBufferPointer(start: namePtr, count: nameLen))
                    count += 1
                }
                next = UInt64(bitPattern: dOff)
                off += reclen
            }
        }
        if count == 0 && !eof { return .err(EIO) } // cannot happen with a sane buffer; never loop the client
        w.base.storeBytes(of: next.littleEndian, toByteOffset: headerOffset, as: UInt64.self)
        w.base.storeBytes(of: UInt8(eof ? 1 : 0), toByteOffset: headerOffset + 8, as: UInt8.self)
        w.patchU16(at: headerOffset + 10, UInt16(count))
        return .ok
    }

    func statfsOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        let (e, b) = HostSys.fstatfs(n.fd)
        if e != 0 { return .err(e) }
        // struct statfs: type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize, flags
        w.statfs(GoferStatFS(type: b[0], bsize: b[1], blocks: UInt64(bitPattern: b[2]),
                             bfree: UInt64(bitPattern: b[3]), bavail: UInt64(bitPattern: b[4]),
                             files: UInt64(bitPattern: b[5]), ffree: UInt64(bitPattern: b[6]),
                             namelen: b[8], frsize: b[9], flags: b[10]))
        return .ok
    }
}
