// Handlers that change existing entries: unlink, rename, setattr. Renames
// and unlinks done here also update the node cache so FIDs keep naming the
// file they named before (or become orphaned when it is gone).

import Glibc
import GoferProtocol

extension Server {
    func unlinkOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let dirFID = try r.u64()
        let flags = try r.i32()
        let name = try r.name()
        try r.finish()
        guard let dir = node(dirFID) else { return .err(EBADF) }
        if flags & ~HostSys.AT_REMOVEDIR != 0 { return .err(EINVAL) }
        if refusesWrite(dir) { return .err(EROFS) }
        if HostSys.withCString(name, { unlinkat(dir.fd, $0, flags) }) != 0 { return .err(HostSys.lastError) }
        dir.takeChild(name)?.orphaned = true
        return .ok
    }

    func renameOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let oldFID = try r.u64()
        let newFID = try r.u64()
        let flags = try r.u32()
        let oldName = try r.name()
        let newName = try r.name()
        try r.finish()
        guard let oldDir = node(oldFID), let newDir = node(newFID) else { return .err(EBADF) }
        let known = HostSys.RENAME_NOREPLACE | HostSys.RENAME_EXCHANGE
        if flags & ~known != 0 || flags == known { return .err(EINVAL) }
        if refusesWrite(oldDir) || refusesWrite(newDir) { return .err(EROFS) }
        let e = HostSys.renameat2(oldDir.fd, oldName, newDir.fd, newName, flags)
        if e != 0 { return .err(e) }

        if oldDir === newDir && oldName == newName { return .ok }
        let moved = oldDir.takeChild(oldName)
        let displaced = newDir.takeChild(newName)
        if flags & HostSys.RENAME_EXCHANGE != 0 {
            if let moved { reattach(moved, newDir, newName) }
            if let displaced { reattach(displaced, oldDir, oldName) }
        } else {
            displaced?.orphaned = true
            if let moved { reattach(moved, newDir, newName) }
        }
        return .ok
    }

    /// Records that `node` now lives at (dir, name) — but only if that entry
    /// really is its inode and the move cannot make the node graph cyclic
    /// (possible only if the cache was stale); otherwise it is orphaned.
    private func reattach(_ node: Node, _ dir: Node, _ name: [UInt8]) {
        var st = stat()
        let rc = HostSys.withCString(name) { fstatat(dir.fd, $0, &st, AT_SYMLINK_NOFOLLOW) }
        if rc != 0 || !node.matches(st) || node.isAncestor(of: dir) {
            node.orphaned = true
            return
        }
        node.move(to: dir, name: name)
    }

    func setattrOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let a = try SetAttrRequest(from: &r)
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        if a.mask & ~SetAttrMask.all != 0 { return .err(EINVAL) }
        if a.mask == 0 { return .ok }
        if refusesWrite(n) { return .err(EROFS) }
        let setA = a.mask & SetAttrMask.atime != 0
        let setM = a.mask & SetAttrMask.mtime != 0
        if setA && !SetAttrRequest.validNsec(a.atimeNsec) { return .err(EINVAL) }
        if setM && !SetAttrRequest.validNsec(a.mtimeNsec) { return .err(EINVAL) }
        if a.mask & SetAttrMask.uid != 0 && a.uid == UInt32.max { return .err(EINVAL) }
        if a.mask & SetAttrMask.gid != 0 && a.gid == UInt32.max { return .err(EINVAL) }

        if a.mask & SetAttrMask.size != 0 {
            if a.size < 0 { return .err(EINVAL) }
            switch n.type {
            case UInt32(S_IFREG): break
            case UInt32(S_IFDIR): return .err(EISDIR)
            default: return .err(EINVAL)
            }
            let o = openRegular(n, O_WRONLY)
            if o.status != 0 { return o }
            let rc = ftruncate(o.fd, off_t(a.size))
            let e = rc == 0 ? 0 : HostSys.lastError
            Glibc.close(o.fd)
            if e != 0 { return .err(e) }
        }
        if a.mask & (SetAttrMask.uid | SetAttrMask.gid) != 0 {
            let uid = a.mask & SetAttrMask.uid != 0 ? a.uid : UInt32.max
            let gid = a.mask & SetAttrMask.gid != 0 ? a.gid : UInt32.max
            if fchownat(n.fd, "", uid, gid, HostSys.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
                return .err(HostSys.lastError)
            }
        }
        if a.mask & SetAttrMask.mode != 0 {
            let e = chmodNode(n, a.mode & 0o7777)
            if e != 0 { return .err(e) }
        }
        if setA || setM {
            var times = (timespec(tv_sec: Int(a.atimeSec), tv_nsec: Int(setA ? a.atimeNsec : GoferSetAttr.utimeOmit)),
                         timespec(tv_sec: Int(a.mtimeSec), tv_nsec: Int(setM ? a.mtimeNsec : GoferSetAttr.utimeOmit)))
            let rc = withUnsafePointer(to: &times) { p in
                p.withMemoryRebound(to: timespec.self, capacity: 2) {
                    utimensat(n.fd, "", $0, HostSys.AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
                }
            }
            if rc != 0 { return .err(HostSys.lastError) }
        }
        return .ok
    }

    /// chmod without following symlinks and without naming the file: through
    /// the node's handle with fchmodat2(AT_EMPTY_PATH) (Linux >= 6.6). Older
    /// kernels fall back to a real fd on the inode (directories, regular files,
    /// FIFOs) or, for sockets only, to fchmodat by name after checking that the
    /// name is still the same non-symlink inode.
    func chmodNode(_ n: Node, _ mode: UInt32) -> Int32 {
        if !Server.forceChmodFallback {
            let e = HostSys.fchmodEmptyPath(n.fd, mode)
            if e != ENOSYS && e != EINVAL { return e }
        }
        switch n.type {
        case UInt32(S_IFLNK):
            return EOPNOTSUPP
        case UInt32(S_IFDIR):
            let fd = openat(n.fd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 { return HostSys.lastError }
            defer { Glibc.close(fd) }
            return fchmod(fd, mode_t(mode)) == 0 ? 0 : HostSys.lastError
        case UInt32(S_IFREG) where n.unnamed:
            return fchmod(n.fd, mode_t(mode)) == 0 ? 0 : HostSys.lastError
        case UInt32(S_IFREG), UInt32(S_IFIFO):
            guard let parent = n.parent, !n.orphaned else { return ESTALE }
            let fd = HostSys.withCString(n.name) {
                openat(parent.fd, $0, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
            }
            if fd < 0 { return HostSys.lastError }
            defer { Glibc.close(fd) }
            var st = stat()
            if fstat(fd, &st) != 0 || !n.matches(st) { return ESTALE }
            return fchmod(fd, mode_t(mode)) == 0 ? 0 : HostSys.lastError
        case UInt32(S_IFSOCK):
            guard let parent = n.parent, !n.orphaned else { return ESTALE }
            var st = stat()
            let rc = HostSys.withCString(n.name) { fstatat(parent.fd, $0, &st, AT_SYMLINK_NOFOLLOW) }
            if rc != 0 { return HostSys.lastError }
            if !n.matches(st) || UInt32(st.st_mode) & UInt32(S_IFMT) != UInt32(S_IFSOCK) { return ESTALE }
            // Residual race: the name could be swapped for a symlink between
            // these two calls. Only on kernels without fchmodat2.
            let c = HostSys.withCString(n.name) { fchmodat(parent.fd, $0, mode_t(mode), 0) }
            return c == 0 ? 0 : HostSys.lastError
        default:
            return EPERM
        }
    }

    /// Test hook: exercise the pre-fchmodat2 path on new kernels.
    nonisolated(unsafe) static var forceChmodFallback = false
}
