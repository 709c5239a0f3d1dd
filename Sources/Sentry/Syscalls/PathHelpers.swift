import CMoat
import Glibc
import GoferProtocol

let AT_FDCWD_: Int32 = -100
let AT_SYMLINK_NOFOLLOW_: Int32 = 0x100
let AT_REMOVEDIR_: Int32 = 0x200
let AT_SYMLINK_FOLLOW_: Int32 = 0x400
let AT_EMPTY_PATH_: Int32 = 0x1000

extension Task {
    /// The directory a *at() call starts from.
    /// Where a walk of `path` starts: an absolute path ignores dirfd, which
    /// is then not even checked (Linux's path_init).
    func startPath(_ dirfd: Int32, for path: [UInt8]) -> Result<Path, Errno> {
        path.first == 47 ? .success(fs.root) : startPath(dirfd)
    }

    func startPath(_ dirfd: Int32) -> Result<Path, Errno> {
        if dirfd == AT_FDCWD_ { return .success(fs.cwd) }
        guard let f = fds.get(dirfd) else { return .failure(Errno(EBADF)) }
        guard let p = f.path else { return .failure(Errno(ENOTDIR)) }
        if !p.inode.isDir { return .failure(Errno(ENOTDIR)) }
        return .success(p)
    }

    func readPath(_ addr: UInt64) -> Result<[UInt8], Errno> {
        let (s, tooLong) = copyInString(addr, max: 4095)
        if tooLong { return .failure(Errno(ENAMETOOLONG)) }
        guard let b = s else { return .failure(Errno(EFAULT)) }
        return .success(b)
    }

    /// Resolves (dirfd, path) to a Path, with AT_EMPTY_PATH support.
    func lookup(_ dirfd: Int32, _ addr: UInt64, follow: Bool, emptyOK: Bool = false) -> Result<Path, Errno> {
        readPath(addr).flatMap { lookup(dirfd, path: $0, follow: follow, emptyOK: emptyOK) }
    }

    /// `lookup` of a path already copied in.
    func lookup(_ dirfd: Int32, path: [UInt8], follow: Bool, emptyOK: Bool = false) -> Result<Path, Errno> {
        if path.isEmpty {
            if emptyOK {
                if dirfd == AT_FDCWD_ { return .success(fs.cwd) }
                guard let f = fds.get(dirfd) else { return .failure(Errno(EBADF)) }
                guard let p = f.path else { return .failure(Errno(EBADF)) }
                return .success(p)
            }
            return .failure(Errno(ENOENT))
        }
        let start: Path
        switch startPath(dirfd, for: path) { case .success(let s): start = s; case .failure(let e): return .failure(e) }
        return kernel.vfs.resolve(fs, start: start, path, follow: follow, searcher: searcher)
    }

    func lookupParent(_ dirfd: Int32, _ addr: UInt64) -> Result<(Path, [UInt8]), Errno> {
        lookupParentSlash(dirfd, addr).map { ($0.0, $0.1) }
    }

    /// Like lookupParent, and whether the path ended in a slash (which
    /// requires the last component to be a directory).
    func lookupParentSlash(_ dirfd: Int32, _ addr: UInt64) -> Result<(Path, [UInt8], Bool), Errno> {
        readPath(addr).flatMap { lookupParentSlash(dirfd, path: $0) }
    }

    /// `lookupParentSlash` of a path already copied in.
    func lookupParentSlash(_ dirfd: Int32, path: [UInt8]) -> Result<(Path, [UInt8], Bool), Errno> {
        let start: Path
        switch startPath(dirfd, for: path) { case .success(let s): start = s; case .failure(let e): return .failure(e) }
        return kernel.vfs.resolveParent(fs, start: start, path, searcher: searcher).map { ($0.0, $0.1, path.last == 47) }
    }

    /// The credentials path walks check search permission against: none
    /// for a caller whose capabilities let it search any directory.
    var searcher: Credentials? { creds.has(Cap.dacReadSearch) || creds.has(Cap.dacOverride) ? nil : creds }

    /// Unix permission check (mask: 4 read, 2 write, 1 execute/search).
    func mayAccess(_ i: Inode, _ mask: UInt32) -> Bool {
        creds.permits(i, mask)
    }
}

extension Credentials {
    /// Unix permission check against the fs ids, then the overrides
    /// CAP_DAC_OVERRIDE (anything but executing a file no one may execute)
    /// and CAP_DAC_READ_SEARCH (reading files, reading and searching
    /// directories) give.
    func permits(_ i: Inode, _ mask: UInt32) -> Bool {
        if let g = hostACLInode(i), i.uid != fsuid, !i.isSymlink {
            // A host file's ACL, read through the Gofer once and cached, is
            // asked only when it can matter: not for its owner (USER_OBJ is
            // the owner's mode bits), not when a capability decides anyway.
            if capabilityPermits(i, mask) { return true }
            if case .success(let acl?) = g.hostACL(.access) { return aclPermits(i, acl, mask) }
            return modePermits(i, mask)
        }
        if XattrStore.anyACL, let acl = Kernel.shared?.xattrs.accessACL(i) {
            if aclPermits(i, acl, mask) { return true }
        } else if modePermits(i, mask) {
            return true
        }
        return capabilityPermits(i, mask)
    }

    /// The owner, group or other bits of the mode.
    private func modePermits(_ i: Inode, _ mask: UInt32) -> Bool {
        var perm: UInt32
        if i.uid == fsuid { perm = (i.mode >> 6) & 7 }
        else if inGroup(i.gid) || fsgid == i.gid { perm = (i.mode >> 3) & 7 }
        else { perm = i.mode & 7 }
        return perm & mask == mask
    }

    private func capabilityPermits(_ i: Inode, _ mask: UInt32) -> Bool {
        // In a user namespace, over files whose owner and group it maps.
        if i.isDir {
            if mask & 2 == 0 && capable(Cap.dacReadSearch, over: i.uid, i.gid) { return true }
            return capable(Cap.dacOverride, over: i.uid, i.gid)
        }
        if mask == 4 && capable(Cap.dacReadSearch, over: i.uid, i.gid) { return true }
        if capable(Cap.dacOverride, over: i.uid, i.gid) { return mask & 1 == 0 || i.mode & 0o111 != 0 }
        return false
    }
}
