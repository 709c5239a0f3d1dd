import CMoat
import Glibc

let AT_FDCWD_: Int32 = -100
let AT_SYMLINK_NOFOLLOW_: Int32 = 0x100
let AT_REMOVEDIR_: Int32 = 0x200
let AT_SYMLINK_FOLLOW_: Int32 = 0x400
let AT_EMPTY_PATH_: Int32 = 0x1000

extension Task {
    /// The directory a *at() call starts from.
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
        let path: [UInt8]
        switch readPath(addr) { case .success(let p): path = p; case .failure(let e): return .failure(e) }
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
        switch startPath(dirfd) { case .success(let s): start = s; case .failure(let e): return .failure(e) }
        if let e = checkWalkPermission(start, path) { return .failure(e) }
        return kernel.vfs.resolve(fs, start: start, path, follow: follow)
    }

    func lookupParent(_ dirfd: Int32, _ addr: UInt64) -> Result<(Path, [UInt8]), Errno> {
        let path: [UInt8]
        switch readPath(addr) { case .success(let p): path = p; case .failure(let e): return .failure(e) }
        let start: Path
        switch startPath(dirfd) { case .success(let s): start = s; case .failure(let e): return .failure(e) }
        return kernel.vfs.resolveParent(fs, start: start, path)
    }

    /// Search permission on the directories of a path is checked by the
    /// final access checks for non-root users only in a simplified form:
    /// the starting directory must be searchable.
    func checkWalkPermission(_ start: Path, _ path: [UInt8]) -> Errno? {
        if tg.creds.isRoot { return nil }
        let d = path.first == 47 ? fs.root : start
        return mayAccess(d.inode, 1) ? nil : Errno(EACCES)
    }

    /// Unix permission check (mask: 4 read, 2 write, 1 execute/search).
    func mayAccess(_ i: Inode, _ mask: UInt32, real: Bool = false) -> Bool {
        let c = tg.creds
        let uid = real ? c.uid : c.fsuid
        if uid == 0 {
            if mask & 1 == 0 || i.isDir { return true }
            return i.mode & 0o111 != 0
        }
        var perm: UInt32
        if i.uid == uid { perm = (i.mode >> 6) & 7 }
        else if c.inGroup(i.gid) || (real ? c.gid : c.fsgid) == i.gid { perm = (i.mode >> 3) & 7 }
        else { perm = i.mode & 7 }
        return perm & mask == mask
    }
}
