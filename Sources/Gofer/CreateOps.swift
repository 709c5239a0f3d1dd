// Handlers that make new directory entries: create, mkdir, symlink, mknod,
// link; and tmpfile, which makes a file without an entry that link may name
// later. Each creates the entry relative to a held directory fd, gives it the
// requested owner and exact mode (umask does not apply) through an fd or an
// O_PATH handle on the new inode (never by name, so a concurrent swap for a
// symlink cannot redirect the chown/chmod), and removes the entry again if
// any later step fails, so a failed call leaves nothing behind.

import Glibc
import GoferProtocol

extension Server {
    func create(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let flags = try r.i32()
        let mode = try r.u32()
        let uid = try r.u32()
        let gid = try r.u32()
        let name = try r.name()
        try r.finish()
        guard let dir = node(dirFID) else { return .err(EBADF) }
        if refusesWrite(dir) { return .err(EROFS) }
        let fe = GoferOpenFlags.validateCreate(flags)
        if fe != 0 { return .err(fe) }
        if uid == UInt32.max || gid == UInt32.max { return .err(EINVAL) }

        let host = (flags & GoferOpenFlags.createPassThrough) | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY
        let fd = HostSys.withCString(name) { openat(dir.fd, $0, host, 0o600) }
        if fd < 0 { return .err(HostSys.lastError) }
        var made = stat()
        var st = stat()
        var e: Int32 = 0
        if fstat(fd, &made) != 0 || fchown(fd, uid, gid) != 0 || fchmod(fd, mode & 0o7777) != 0
            || fstat(fd, &st) != 0 {
            e = HostSys.lastError
        }
        if e == 0 { e = adopt(dir, name, st, &w) }
        if e != 0 {
            Glibc.close(fd)
            removeEntry(dir, name, ifIs: made, flags: 0)
            return .err(e)
        }
        return .fd(fd)
    }

    func mkdirOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let mode = try r.u32()
        let uid = try r.u32()
        let gid = try r.u32()
        let name = try r.name()
        try r.finish()
        guard let dir = node(dirFID) else { return .err(EBADF) }
        if refusesWrite(dir) { return .err(EROFS) }
        if uid == UInt32.max || gid == UInt32.max { return .err(EINVAL) }

        if HostSys.withCString(name, { mkdirat(dir.fd, $0, 0o700) }) != 0 { return .err(HostSys.lastError) }
        let fd = HostSys.withCString(name) { openat(dir.fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        var made = stat()
        var st = stat()
        var e: Int32 = 0
        if fd < 0 || fstat(fd, &made) != 0 || fchown(fd, uid, gid) != 0 || fchmod(fd, mode & 0o7777) != 0
            || fstat(fd, &st) != 0 {
            e = HostSys.lastError
        }
        if e == 0 {
            // The directory fd itself becomes the node's handle.
            let node = Node(fd: fd, parent: dir, name: name, st: st)
            dir.setChild(name, node)
            e = issue(node, st, &w)
            if e != 0 { dir.takeChild(name) }
        } else if fd >= 0 {
            Glibc.close(fd)
        }
        if e != 0 {
            removeEntry(dir, name, ifIs: fd >= 0 ? made : nil, flags: HostSys.AT_REMOVEDIR)
            return .err(e)
        }
        return .ok
    }

    func symlinkOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let uid = try r.u32()
        let gid = try r.u32()
        let name = try r.name()
        let target = try r.string16(max: GoferWire.maxTargetLength)
        try r.finish()
        guard let dir = node(dirFID) else { return .err(EBADF) }
        if refusesWrite(dir) { return .err(EROFS) }
        let te = GoferNames.validateTarget(target)
        if te != 0 { return .err(te) }
        if uid == UInt32.max || gid == UInt32.max { return .err(EINVAL) }

        let rc = HostSys.withCString(target) { t in HostSys.withCString(name) { symlinkat(t, dir.fd, $0) } }
        if rc != 0 { return .err(HostSys.lastError) }
        return finishNewEntry(dir, name, expectType: UInt32(S_IFLNK), uid: uid, gid: gid, mode: nil, &w)
    }

    func mknodOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let mode = try r.u32()
        let uid = try r.u32()
        let gid = try r.u32()
        let name = try r.name()
        try r.finish()
        guard let dir = node(dirFID) else { return .err(EBADF) }
        if refusesWrite(dir) { return .err(EROFS) }
        if uid == UInt32.max || gid == UInt32.max { return .err(EINVAL) }
        var type = mode & UInt32(S_IFMT)
        if type == 0 { type = UInt32(S_IFREG) }
        switch type {
        case UInt32(S_IFREG), UInt32(S_IFIFO), UInt32(S_IFSOCK): break
        case UInt32(S_IFCHR), UInt32(S_IFBLK): return .err(EPERM)
        default: return .err(EINVAL)
        }
        if HostSys.withCString(name, { mknodat(dir.fd, $0, mode_t(type | 0o600), 0) }) != 0 {
            return .err(HostSys.lastError)
        }
        return finishNewEntry(dir, name, expectType: type, uid: uid, gid: gid, mode: mode & 0o7777, &w)
    }

    func linkOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let targetFID = try r.u64()
        let name = try r.name()
        try r.finish()
        guard let dir = node(dirFID), let target = node(targetFID) else { return .err(EBADF) }
        if refusesWrite(dir) { return .err(EROFS) }
        if target.isDirectory { return .err(EPERM) }

        // Link the inode itself (needs CAP_DAC_READ_SEARCH); without it fall
        // back to its (parent, name) without following, then verify the inode.
        var le = HostSys.withCString(name) { n -> Int32 in
            linkat(target.fd, "", dir.fd, n, HostSys.AT_EMPTY_PATH) == 0 ? 0 : HostSys.lastError
        }
        var viaName = false
        if le == ENOENT, let tp = target.parent, !target.orphaned {
            le = HostSys.withCString(target.name) { t in
                HostSys.withCString(name) { n -> Int32 in linkat(tp.fd, t, dir.fd, n, 0) == 0 ? 0 : HostSys.lastError }
            }
            viaName = true
        }
        if le != 0 { return .err(le) }
        var st = stat()
        let (child, e) = lookup(dir, name, &st)
        guard let child else { return .err(e) }
        if viaName && (child.dev != target.dev || child.ino != target.ino) {
            dir.takeChild(name)
            removeEntry(dir, name, ifIs: st, flags: 0)
            return .err(ESTALE)
        }
        let ie = issue(child, st, &w)
        if ie != 0 {
            dir.takeChild(name)
            removeEntry(dir, name, ifIs: st, flags: 0)
            return .err(ie)
        }
        return .ok
    }

    /// open(dir, O_TMPFILE): the node keeps the read-write fd (it is the
    /// only handle on a file with no name) and the Sentry gets a duplicate.
    /// Linking it later goes through `linkOp`, whose linkat(fd, "",
    /// AT_EMPTY_PATH) names the inode itself (CAP_DAC_READ_SEARCH, which the
    /// Gofer keeps); the host refuses that for an O_EXCL file, as it should.
    func tmpfileOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let flags = try r.i32()
        let mode = try r.u32()
        let uid = try r.u32()
        let gid = try r.u32()
        try r.finish()
        guard let dir = node(dirFID) else { return .err(EBADF) }
        guard dir.isDirectory else { return .err(ENOTDIR) }
        if refusesWrite(dir) { return .err(EROFS) }
        let fe = GoferOpenFlags.validateTmpfile(flags)
        if fe != 0 { return .err(fe) }
        if uid == UInt32.max || gid == UInt32.max { return .err(EINVAL) }

        let host = HostSys.O_TMPFILE | O_RDWR | (flags & O_EXCL) | O_CLOEXEC | O_NOCTTY
        let fd = openat(dir.fd, ".", host, 0o600)
        if fd < 0 { return .err(HostSys.lastError) }
        var st = stat()
        if fchown(fd, uid, gid) != 0 || fchmod(fd, mode_t(mode & 0o7777)) != 0 || fstat(fd, &st) != 0 {
            let e = HostSys.lastError
            Glibc.close(fd)
            return .err(e)
        }
        let donated = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if donated < 0 {
            let e = HostSys.lastError
            Glibc.close(fd)
            return .err(e)
        }
        // Not entered in dir's child cache: it has no name there.
        let node = Node(fd: fd, parent: dir, name: [], st: st)
        node.unnamed = true
        node.orphaned = true
        let e = issue(node, st, &w)
        if e != 0 {
            Glibc.close(donated)
            return .err(e)
        }
        return .fd(donated)
    }

    /// `scratch`: an unnamed file for the Sentry's own bytes (the overlay's
    /// upper layer), made in the scratch directory, never in the tree the
    /// Sentry walks: it has no FID, no name and cannot get one (O_EXCL), so
    /// nothing of it outlives its last fd.
    func scratchOp(_ r: inout WireReader) throws(WireError) -> Outcome {
        try r.finish()
        if scratchDir < 0 { return .err(EPERM) }
        let fd = openat(scratchDir, ".", HostSys.O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC | O_NOCTTY, 0o600)
        return fd < 0 ? .err(HostSys.lastError) : .fd(fd)
    }

    // MARK: Helpers

    /// After a symlink/mknod: open an O_PATH handle on the new entry, check it
    /// is what was made, set owner and mode through the handle, issue a FID.
    private func finishNewEntry(_ dir: Node, _ name: [UInt8], expectType: UInt32, uid: UInt32, gid: UInt32,
                                mode: UInt32?, _ w: inout WireWriter) -> Outcome {
        let pfd = HostSys.withCString(name) { openat(dir.fd, $0, HostSys.O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        if pfd < 0 { return .err(HostSys.lastError) }
        var made = stat()
        var e = Server.statFD(pfd, &made)
        var st = made
        if e == 0 && UInt32(made.st_mode) & UInt32(S_IFMT) != expectType { e = ESTALE }
        if e == 0 && fchownat(pfd, "", uid, gid, HostSys.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
            e = HostSys.lastError
        }
        let node = Node(fd: pfd, parent: dir, name: name, st: st)
        if e == 0, let mode { e = chmodNode(node, mode) }
        if e == 0 { e = Server.statFD(pfd, &st) }
        if e == 0 {
            dir.setChild(name, node)
            e = issue(node, st, &w)
            if e != 0 { dir.takeChild(name) }
        }
        if e != 0 {
            removeEntry(dir, name, ifIs: made, flags: 0)
            return .err(e)
        }
        return .ok
    }

    /// After create: issue a FID for the new file through a fresh O_PATH handle.
    private func adopt(_ dir: Node, _ name: [UInt8], _ st: stat, _ w: inout WireWriter) -> Int32 {
        let pfd = HostSys.withCString(name) { openat(dir.fd, $0, HostSys.O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        if pfd < 0 { return HostSys.lastError }
        var pst = stat()
        let e = Server.statFD(pfd, &pst)
        let node = Node(fd: pfd, parent: dir, name: name, st: pst)
        if e != 0 { return e }
        if !node.matches(st) { return ESTALE }
        dir.setChild(name, node)
        let ie = issue(node, st, &w)
        if ie != 0 { dir.takeChild(name) }
        return ie
    }

    /// Best-effort cleanup of an entry this call created: removed only while
    /// it still is the inode we made (when that is known).
    func removeEntry(_ dir: Node, _ name: [UInt8], ifIs made: stat?, flags: Int32) {
        let saved = errno
        defer { errno = saved }
        if let made {
            var now = stat()
            let rc = HostSys.withCString(name) { fstatat(dir.fd, $0, &now, AT_SYMLINK_NOFOLLOW) }
            guard rc == 0, now.st_dev == made.st_dev, now.st_ino == made.st_ino else { return }
        }
        _ = HostSys.withCString(name) { unlinkat(dir.fd, $0, flags) }
    }
}
