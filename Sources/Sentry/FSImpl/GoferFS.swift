// The gofer-backed file system: every node is a FID on the Gofer, every
// open regular file a host fd the Gofer donated.

import CMoat
import Glibc
import GoferProtocol

final class GoferInode: Inode {
    let client: GoferClient
    let fid: FID
    var cachedSize: Int64

    /// Set when the Gofer serves the tree read-only under the overlay: the
    /// sandbox can change nothing in it, so attributes, listings and link
    /// targets learned once stay true, and repeated stat, readdir and
    /// readlink need no round trip (the host is not expected to change an
    /// image under a running sandbox). Only the root's tree: bind mounts
    /// are live views of host directories and are never frozen.
    let frozen: Bool
    /// A read-only host fd kept from the first read-only open: later ones
    /// dup it instead of asking the Gofer (every description reads with
    /// pread at its own offset, so sharing the host offset is harmless).
    /// Bounded, so that walking a large tree cannot exhaust the Sentry's fds.
    private var readFD: Int32 = -1
    nonisolated(unsafe) private static var keptFDs = 0
    private static let maxKeptFDs = 256
    private var cachedListing: [DirEntry]? = nil
    /// The names in `cachedListing`: under a read-only tree, a lookup of
    /// any other name fails without asking the Gofer.
    private var listedNames: Set<[UInt8]>? = nil
    private var cachedTarget: [UInt8]? = nil
    /// The host fd the Gofer donated with an O_TMPFILE file, for the open
    /// that follows its creation.
    private var tmpfileFD: Int32 = -1

    init(client: GoferClient, fid: FID, stat: GoferStat, frozen: Bool = false) {
        self.client = client
        self.frozen = frozen
        self.fid = fid
        self.cachedSize = stat.size
        super.init(ino: stat.ino, mode: stat.mode, dev: stat.dev)
        apply(stat)
    }

    deinit {
        client.close(fid)
        if readFD >= 0 { close(readFD); GoferInode.keptFDs -= 1 }
        if tmpfileFD >= 0 { close(tmpfileFD) }
    }

    private func apply(_ s: GoferStat) {
        mode = s.mode; uid = s.uid; gid = s.gid; nlink = s.nlink; rdev = s.rdev
        cachedSize = s.size
        atime = (s.atimeSec, s.atimeNsec); mtime = (s.mtimeSec, s.mtimeNsec); ctime = (s.ctimeSec, s.ctimeNsec)
    }

    private func wrap<T>(_ r: Result<T, GoferErrno>) -> Result<T, Errno> {
        r.mapError { Errno($0.rawValue) }
    }

    override var size: Int64 { cachedSize }

    override func stat() -> Result<Stat, Errno> {
        if frozen {
            var out = Stat()
            out.dev = dev; out.ino = ino; out.nlink = nlink; out.mode = mode; out.uid = uid; out.gid = gid
            out.rdev = rdev; out.size = cachedSize; out.blksize = 4096; out.blocks = (cachedSize + 511) / 512
            out.atime = atime; out.mtime = mtime; out.ctime = ctime
            return .success(out)
        }
        return statResult(client.stat(fid))
    }

    /// stat() for a syscall of `t`: the Gofer round trip runs with
    /// Kernel.mu given up (Task.withoutKernelLock). The caller's reference
    /// keeps this inode, and so its FID, alive meanwhile; the client
    /// serialises its own calls; the attributes are applied under mu again.
    func stat(for t: Task) -> Result<Stat, Errno> {
        if frozen { return stat() }
        let (c, f) = (client, fid)
        return statResult(t.withoutKernelLock { c.stat(f) })
    }

    private func statResult(_ r: Result<GoferStat, GoferErrno>) -> Result<Stat, Errno> {
        switch r {
        case .success(let s):
            apply(s)
            var out = Stat()
            out.dev = s.dev; out.ino = s.ino; out.nlink = s.nlink; out.mode = s.mode; out.uid = s.uid; out.gid = s.gid
            out.rdev = s.rdev; out.size = s.size; out.blksize = s.blksize; out.blocks = s.blocks
            out.atime = (s.atimeSec, s.atimeNsec); out.mtime = (s.mtimeSec, s.mtimeNsec); out.ctime = (s.ctimeSec, s.ctimeNsec)
            return .success(out)
        case .failure(let e): return .failure(Errno(e.rawValue))
        }
    }

    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        if frozen, let names = listedNames, !names.contains(name) { return .failure(Errno(ENOENT)) }
        let r: Result<Inode, Errno> = wrap(client.walk(fid, name)).map { GoferInode(client: client, fid: $0.0, stat: $0.1, frozen: frozen) }
        if frozen, listedNames == nil, case .failure(let e) = r, e.code == ENOENT {
            // A directory asked about one missing name is usually asked
            // about more (a PATH or sys.path search, files the overlay
            // creates over it, each looked up twice): one listing answers
            // all of them without a round trip to the Gofer each.
            _ = readdir()
        }
        return r
    }

    override func readdir() -> Result<[DirEntry], Errno> {
        if let l = cachedListing { return .success(l) }
        let r = wrap(client.getdents(fid)).map { $0.map { DirEntry(ino: $0.ino, type: $0.type, name: $0.name) } }
        if frozen, case .success(let l) = r {
            cachedListing = l
            listedNames = Set(l.map(\.name))
        }
        return r
    }

    override func create(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32, flags: Int32) -> Result<(Inode, FileDescription?), Errno> {
        let hostFlags = (flags & (O_ACCMODE | O_APPEND))
        switch client.create(fid, name, flags: hostFlags, mode: mode & 0o7777, uid: uid, gid: gid) {
        case .success(let (f, st, hostfd)):
            let ino = GoferInode(client: client, fid: f, stat: st, frozen: frozen)
            return .success((ino, HostFileFD(fd: hostfd, flags: flags, path: nil)))
        case .failure(let e): return .failure(Errno(e.rawValue))
        }
    }

    /// O_TMPFILE on a write-through tree: the Gofer makes the unnamed file
    /// and its FID keeps it alive; `link` with that FID as target names it.
    override func createTmpfile(mode: UInt32, uid: UInt32, gid: UInt32, exclusive: Bool) -> Result<Inode, Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        switch client.tmpfile(fid, flags: O_RDWR | (exclusive ? O_EXCL : 0), mode: mode & 0o7777, uid: uid, gid: gid) {
        case .success(let (f, st, hostfd)):
            let ino = GoferInode(client: client, fid: f, stat: st, frozen: frozen)
            ino.tmpfileFD = hostfd
            return .success(ino)
        case .failure(let e): return .failure(Errno(e.rawValue))
        }
    }

    override func mkdir(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        wrap(client.mkdir(fid, name, mode: mode & 0o7777, uid: uid, gid: gid)).map { GoferInode(client: client, fid: $0.0, stat: $0.1, frozen: frozen) }
    }

    override func symlink(_ name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        wrap(client.symlink(fid, name, target: target, uid: uid, gid: gid)).map { GoferInode(client: client, fid: $0.0, stat: $0.1, frozen: frozen) }
    }

    override func link(_ name: [UInt8], _ target: Inode) -> Result<Inode, Errno> {
        guard let t = target as? GoferInode, t.client === client else { return .failure(Errno(EXDEV)) }
        return wrap(client.link(fid, name, target: t.fid)).map { GoferInode(client: client, fid: $0.0, stat: $0.1, frozen: frozen) }
    }

    override func mknod(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        wrap(client.mknod(fid, name, mode: mode, uid: uid, gid: gid)).map { GoferInode(client: client, fid: $0.0, stat: $0.1, frozen: frozen) }
    }

    override func unlink(_ name: [UInt8], dir: Bool) -> Result<Void, Errno> {
        wrap(client.unlink(fid, name, flags: dir ? 0x200 : 0))
    }

    override func rename(_ old: [UInt8], to newDir: Inode, _ new: [UInt8], flags: UInt32) -> Result<Void, Errno> {
        guard let nd = newDir as? GoferInode, nd.client === client else { return .failure(Errno(EXDEV)) }
        return wrap(client.rename(fid, old, nd.fid, new, flags: flags))
    }

    override func readlink() -> Result<[UInt8], Errno> {
        if !isSymlink { return .failure(Errno(EINVAL)) }
        if let t = cachedTarget { return .success(t) }
        let r = wrap(client.readlink(fid))
        if frozen, case .success(let t) = r { cachedTarget = t }
        return r
    }

    override func setattr(_ a: SetAttr) -> Result<Void, Errno> {
        var g = GoferSetAttr()
        g.mode = a.mode; g.uid = a.uid; g.gid = a.gid; g.size = a.size
        if let t = a.atime { g.atime = (sec: t.0, nsec: t.1) }
        if let t = a.mtime { g.mtime = (sec: t.0, nsec: t.1) }
        let r = wrap(client.setattr(fid, g))
        if case .success = r { _ = stat() }
        return r
    }

    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if isDir { return .success(DirectoryFD(flags: flags, path: nil)) }
        let fmt = mode & S_IFMT_
        if fmt == S_IFIFO_ { return fifoOpen(self, t, flags) }
        if fmt != S_IFREG_ { return .failure(Errno(fmt == S_IFSOCK_ ? ENXIO : EACCES)) }
        if tmpfileFD >= 0 {
            // The O_TMPFILE open itself (read-write on the host; the
            // description enforces the mode it was opened with).
            let fd = tmpfileFD
            tmpfileFD = -1
            return .success(HostFileFD(fd: fd, flags: flags, path: nil))
        }
        let hostFlags = flags & (O_ACCMODE | O_TRUNC | O_APPEND)
        if hostFlags == O_RDONLY && readFD >= 0 {
            let d = fcntl(readFD, F_DUPFD_CLOEXEC, 0)
            if d >= 0 { return .success(HostFileFD(fd: d, flags: flags, path: nil)) }
        }
        switch client.open(fid, flags: hostFlags) {
        case .success(let hostfd):
            if hostFlags == O_RDONLY && readFD < 0 && GoferInode.keptFDs < GoferInode.maxKeptFDs {
                let k = fcntl(hostfd, F_DUPFD_CLOEXEC, 0)
                if k >= 0 { readFD = k; GoferInode.keptFDs += 1 }
            }
            return .success(HostFileFD(fd: hostfd, flags: flags, path: nil))
        case .failure(let e): return .failure(Errno(e.rawValue))
        }
    }

    // MARK: Extended attributes (user.* only; see FileExtras.swift)

    func getUserXattr(_ name: [UInt8]) -> Result<[UInt8], Errno> { wrap(client.getxattr(fid, name)) }

    func setUserXattr(_ name: [UInt8], _ value: [UInt8], flags: Int32) -> Result<Void, Errno> {
        wrap(client.setxattr(fid, name, value, flags: flags))
    }

    /// The names, in the host's order.
    func listUserXattrs() -> Result<[[UInt8]], Errno> {
        wrap(client.listxattr(fid)).map { l in l.split(separator: 0, omittingEmptySubsequences: true).map { Array($0) } }
    }

    func removeUserXattr(_ name: [UInt8]) -> Result<Void, Errno> { wrap(client.removexattr(fid, name)) }

    // MARK: POSIX ACLs of a write-through file (see Syscalls/PosixACL.swift)

    /// The host's access and default ACLs as last read or set, in kernel
    /// ids: .some(nil) when it has none, nil when not known yet. Permission
    /// checks and file creation use them; a set, a chmod or a getxattr
    /// replaces or forgets them.
    var cachedACL: [ACLEntry]?? = nil
    var cachedDefaultACL: [ACLEntry]?? = nil

    /// The host's ACL of `kind`, from the cache unless `refresh`. EOPNOTSUPP
    /// from a host file system without ACLs (or a Gofer older than getacl),
    /// none from then on.
    func hostACL(_ kind: GoferACLKind, refresh: Bool = false) -> Result<[ACLEntry]?, Errno> {
        if !refresh, let c = kind == .access ? cachedACL : cachedDefaultACL { return .success(c) }
        if isSymlink || (kind == .default && !isDir) { return .success(nil) }
        let got: [ACLEntry]?
        switch client.getacl(fid, kind) {
        case .success(let v):
            guard let es = decodeHostACL(v) else { return .failure(Errno(EIO)) }
            got = es.isEmpty ? nil : es
        case .failure(let e) where e.rawValue == ENODATA:
            got = nil
        case .failure(let e) where e.rawValue == EOPNOTSUPP || e.rawValue == ENOSYS:
            // Never any ACL here: remembered as none, reported as Linux does.
            if kind == .access { cachedACL = .some(nil) } else { cachedDefaultACL = .some(nil) }
            return .failure(Errno(EOPNOTSUPP))
        case .failure(let e):
            return .failure(Errno(e.rawValue))
        }
        if kind == .access { cachedACL = .some(got) } else { cachedDefaultACL = .some(got) }
        return .success(got)
    }

    /// Sets (entries in kernel ids) or removes (nil) the host ACL of `kind`.
    func setHostACL(_ kind: GoferACLKind, _ entries: [ACLEntry]?) -> Result<Void, Errno> {
        let r = client.setacl(fid, kind, entries.map(encodeACL) ?? [])
        switch r {
        case .success: break
        case .failure(let e) where e.rawValue == ENOSYS: return .failure(Errno(EOPNOTSUPP))
        case .failure(let e): return .failure(Errno(e.rawValue))
        }
        // What the host keeps (an access ACL a mode can say is not stored)
        // is read again when next needed.
        if kind == .access { cachedACL = nil } else { cachedDefaultACL = .some(entries) }
        return .success(())
    }

    override var cacheable: Bool { true }
    override var fsMagic: Int64 { 0x01021997 } // V9FS_MAGIC, as gVisor reports gofer mounts
}
