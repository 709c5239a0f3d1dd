// open, read, write, stat and the path-based file syscalls.

import CMoat
import Glibc

/// A description opened with O_PATH: a position in the tree, no I/O.
final class PathFD: FileDescription {
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EBADF) }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EBADF) }
}

func registerFile(_ t: SyscallTable) {
    t[2] = { t, a in sysOpenat(t, AT_FDCWD_, a.a0, a.int(1), a.uint(2)) }                 // open
    t[257] = { t, a in sysOpenat(t, a.int(0), a.a1, a.int(2), a.uint(3)) }                // openat
    t[85] = { t, a in sysOpenat(t, AT_FDCWD_, a.a0, O_CREAT | O_WRONLY | O_TRUNC, a.uint(1)) } // creat
    t[0] = { t, a in sysRead(t, a.int(0), a.a1, a.long(2), nil) }                         // read
    t[1] = { t, a in sysWrite(t, a.int(0), a.a1, a.long(2), nil) }                        // write
    t[17] = { t, a in badPosition(a.long(3), a.long(2)) ? err(EINVAL) : sysPread(t, a.int(0), a.a1, a.long(2), Int64(a.long(3))) }  // pread64
    t[18] = { t, a in badPosition(a.long(3), a.long(2)) ? err(EINVAL) : sysWrite(t, a.int(0), a.a1, a.long(2), Int64(a.long(3))) } // pwrite64
    t[19] = { t, a in sysReadv(t, a.int(0), a.a1, a.int(2), nil, write: false) }          // readv
    t[20] = { t, a in sysReadv(t, a.int(0), a.a1, a.int(2), nil, write: true) }           // writev
    t[295] = { t, a in sysReadv(t, a.int(0), a.a1, a.int(2), Int64(a.long(3)), write: false) } // preadv
    t[296] = { t, a in sysReadv(t, a.int(0), a.a1, a.int(2), Int64(a.long(3)), write: true) }  // pwritev
    // preadv2/pwritev2: RWF_HIPRI 1, DSYNC 2, SYNC 4, NOWAIT 8, APPEND 16,
    // NOAPPEND 32, ATOMIC 64, DONTCACHE 128; others are EOPNOTSUPP.
    // RWF_APPEND with RWF_NOAPPEND contradict each other (EINVAL, after the
    // unknown-flag check, as Linux's kiocb_set_rw_flags).
    t[327] = { t, a in                                                                    // preadv2
        a.a5 & ~0xff != 0 ? err(EOPNOTSUPP) : a.a5 & 0x30 == 0x30 ? err(EINVAL) :
            sysReadv(t, a.int(0), a.a1, a.int(2), a.long(3) == -1 ? nil : Int64(a.long(3)), write: false)
    }
    t[328] = { t, a in                                                                    // pwritev2
        a.a5 & ~0xff != 0 ? err(EOPNOTSUPP) : a.a5 & 0x30 == 0x30 ? err(EINVAL) :
            sysReadv(t, a.int(0), a.a1, a.int(2), a.long(3) == -1 ? nil : Int64(a.long(3)), write: true)
    }
    t[8] = { t, a in                                                                      // lseek
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        return f.seek(Int64(a.long(1)), a.int(2))
    }
    t[3] = { t, a in                                                                      // close
        guard t.fds.close(a.int(0)) else { return err(EBADF) }
        t.dropStaleStubFD()     // the file may be gone from the Sentry: then from the stub too (StubFD.swift)
        return 0
    }
    t[5] = { t, a in                                                                      // fstat
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        return writeStat(t, f.stat(), a.a1)
    }
    t[4] = { t, a in statPath(t, AT_FDCWD_, a.a0, a.a1, follow: true) }                   // stat
    t[6] = { t, a in statPath(t, AT_FDCWD_, a.a0, a.a1, follow: false) }                  // lstat
    t[262] = { t, a in                                                                    // newfstatat
        let flags = a.int(3)
        if flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_EMPTY_PATH_ | 0x800 | 0x6000) != 0 { return err(EINVAL) }
        if flags & AT_EMPTY_PATH_ != 0, case .success(let p) = t.readPath(a.a1), p.isEmpty, let f = t.fds.get(a.int(0)) {
            return writeStat(t, f.stat(), a.a2)
        }
        return statPath(t, a.int(0), a.a1, a.a2, follow: flags & AT_SYMLINK_NOFOLLOW_ == 0, emptyOK: flags & AT_EMPTY_PATH_ != 0)
    }
    t[332] = sysStatx
    t[217] = { t, a in sysGetdents(t, a, legacy: false) }                                // getdents64
    t[78] = { t, a in sysGetdents(t, a, legacy: true) }                                  // getdents
    t[21] = { t, a in sysAccess(t, AT_FDCWD_, a.a0, a.int(1), 0) }                        // access
    t[269] = { t, a in sysAccess(t, a.int(0), a.a1, a.int(2), 0) }                        // faccessat
    t[439] = { t, a in                                                                    // faccessat2
        if a.int(3) & ~(0x200 | AT_SYMLINK_NOFOLLOW_ | AT_EMPTY_PATH_) != 0 { return err(EINVAL) }
        return sysAccess(t, a.int(0), a.a1, a.int(2), a.int(3))
    }
    t[83] = { t, a in sysMkdirat(t, AT_FDCWD_, a.a0, a.uint(1)) }                         // mkdir
    t[258] = { t, a in sysMkdirat(t, a.int(0), a.a1, a.uint(2)) }                         // mkdirat
    t[84] = { t, a in sysUnlinkat(t, AT_FDCWD_, a.a0, AT_REMOVEDIR_) }                    // rmdir
    // After the call, once the unlinked inode is released: a file deleted
    // from the Sentry is let go by the stub too (StubFD.swift).
    t[87] = { t, a in let r = sysUnlinkat(t, AT_FDCWD_, a.a0, 0); t.dropStaleStubFD(); return r }            // unlink
    t[263] = { t, a in let r = sysUnlinkat(t, a.int(0), a.a1, a.int(2)); t.dropStaleStubFD(); return r }     // unlinkat
    t[82] = { t, a in sysRenameat(t, AT_FDCWD_, a.a0, AT_FDCWD_, a.a1, 0) }               // rename
    t[264] = { t, a in sysRenameat(t, a.int(0), a.a1, a.int(2), a.a3, 0) }                // renameat
    t[316] = { t, a in sysRenameat(t, a.int(0), a.a1, a.int(2), a.a3, a.uint(4)) }        // renameat2
    t[86] = { t, a in sysLinkat(t, AT_FDCWD_, a.a0, AT_FDCWD_, a.a1, 0) }                 // link
    t[265] = { t, a in sysLinkat(t, a.int(0), a.a1, a.int(2), a.a3, a.int(4)) }           // linkat
    t[88] = { t, a in sysSymlinkat(t, a.a0, AT_FDCWD_, a.a1) }                            // symlink
    t[266] = { t, a in sysSymlinkat(t, a.a0, a.int(1), a.a2) }                            // symlinkat
    t[89] = { t, a in sysReadlinkat(t, AT_FDCWD_, a.a0, a.a1, a.long(2)) }                // readlink
    t[267] = { t, a in sysReadlinkat(t, a.int(0), a.a1, a.a2, a.long(3)) }                // readlinkat
    t[90] = { t, a in sysSetattrAt(t, AT_FDCWD_, a.a0, true, SetAttr(mode: a.uint(1) & 0o7777)) }          // chmod
    t[268] = { t, a in sysSetattrAt(t, a.int(0), a.a1, true, SetAttr(mode: a.uint(2) & 0o7777)) }          // fchmodat
    t[91] = { t, a in sysFSetattr(t, a.int(0), SetAttr(mode: a.uint(1) & 0o7777)) }                        // fchmod
    // chown's ids the caller's namespace does not map: EINVAL (chownAttr).
    t[92] = { t, a in chownAttr(t, a.uint(1), a.uint(2)).map { sysSetattrAt(t, AT_FDCWD_, a.a0, true, $0) } ?? err(EINVAL) }   // chown
    t[94] = { t, a in chownAttr(t, a.uint(1), a.uint(2)).map { sysSetattrAt(t, AT_FDCWD_, a.a0, false, $0) } ?? err(EINVAL) }  // lchown
    t[93] = { t, a in chownAttr(t, a.uint(1), a.uint(2)).map { sysFSetattr(t, a.int(0), $0) } ?? err(EINVAL) }                 // fchown
    t[260] = { t, a in                                                                                     // fchownat
        let fl = a.int(4)
        if fl & ~(AT_SYMLINK_NOFOLLOW_ | AT_EMPTY_PATH_) != 0 { return err(EINVAL) }   // before the lookup
        guard let attr = chownAttr(t, a.uint(2), a.uint(3)) else { return err(EINVAL) }
        if fl & AT_EMPTY_PATH_ != 0, a.int(0) != AT_FDCWD_, case .success(let p) = t.readPath(a.a1), p.isEmpty {
            return sysFSetattr(t, a.int(0), attr, emptyPath: true)
        }
        return sysSetattrAt(t, a.int(0), a.a1, fl & AT_SYMLINK_NOFOLLOW_ == 0, attr)
    }
    t[280] = sysUtimensat
    t[235] = { t, a in sysUtimes(t, AT_FDCWD_, a.a0, a.a1) }                              // utimes
    t[261] = { t, a in sysUtimes(t, a.int(0), a.a1, a.a2) }                               // futimesat
    t[132] = { t, a in                                                                    // utime
        if a.a1 == 0 { return sysSetattrAt(t, AT_FDCWD_, a.a0, true, SetAttr(atime: nowTimespec(), mtime: nowTimespec())) }
        guard let at = t.readU64(a.a1), let mt = t.readU64(a.a1 &+ 8) else { return err(EFAULT) }
        return sysSetattrAt(t, AT_FDCWD_, a.a0, true, SetAttr(atime: (Int64(bitPattern: at), 0), mtime: (Int64(bitPattern: mt), 0)))
    }
    t[76] = { t, a in                                                                     // truncate
        if a.long(1) < 0 { return err(EINVAL) }
        switch t.lookup(AT_FDCWD_, a.a0, follow: true) {
        case .success(let p):
            if p.inode.isDir { return err(EISDIR) }
            // A FIFO, a device or a socket is not truncated: EINVAL before
            // any permission check (Linux's vfs_truncate).
            if !p.inode.isRegular { return err(EINVAL) }
            if !t.mayAccess(p.inode, 2) { return err(EACCES) }
            if let e = t.landlockDenies(p, Landlock.truncate) { return e.ret }
            if p.inode.runners > 0 { return err(ETXTBSY) }                    // a running program (get_write_access)
            if UInt64(a.long(1)) > t.tg.rlimits[1].cur {
                t.sendSelfSignal(SIGXFSZ); return err(EFBIG)
            }
            _ = breakLeases(t, p.inode, opener: nil, write: true, nonblocking: false)
            let keep = dropSetIDForWrite(t, p.inode)
            let r = resultCode(p.inode.setattr(SetAttr(size: Int64(a.long(1)))))
            if r == 0 { restoreSetID(keep); t.kernel.inotifyFile(p, IN_MODIFY_, inodeEvent: true) }
            return r
        case .failure(let e): return e.ret
        }
    }
    t[77] = { t, a in                                                                     // ftruncate
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        if a.long(1) < 0 { return err(EINVAL) }
        if !f.writable { return err(EINVAL) }
        if f.landlockDenied & Landlock.truncate != 0 { return err(EACCES) }
        if UInt64(a.long(1)) > t.tg.rlimits[1].cur, f.inode?.isRegular == true {
            t.sendSelfSignal(SIGXFSZ); return err(EFBIG)
        }
        let keep = dropSetIDForWrite(t, f.inode)
        let r = f.truncate(Int64(a.long(1)))
        if r == 0 { restoreSetID(keep); t.kernel.inotifyFile(f, IN_MODIFY_, inodeEvent: true) }
        return r
    }
    t[74] = { t, a in sysFsync(t, a.int(0)) }                                             // fsync
    t[75] = { t, a in sysFsync(t, a.int(0)) }                                             // fdatasync
    t[162] = { _, _ in 0 }                                                                // sync
    t[306] = { t, a in t.fds.getIO(a.int(0)) == nil ? err(EBADF) : 0 }                    // syncfs (an O_PATH fd: EBADF)
    t[277] = { t, a in sysSyncFileRange(t, a.int(0), a.long(1), a.long(2), a.uint(3)) }  // sync_file_range
    t[136] = sysUstat                                                                     // ustat
    t[137] = { t, a in                                                                    // statfs
        let p = t.lookup(AT_FDCWD_, a.a0, follow: true)
        return writeStatfs(t, p.map { $0.inode }, a.a1, mount: try? p.get().mount)
    }
    t[138] = { t, a in                                                                    // fstatfs
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        return writeStatfs(t, .success(f.inode ?? (StdioInode(ino: 0, mode: 0, dev: 0) as Inode)), a.a1, magic: f.statfsMagic, mount: f.path?.mount)
    }
    t[79] = { t, a in                                                                     // getcwd
        if t.fs.cwd.dentry.dead { return err(ENOENT) }
        var reached = false
        var s = t.kernel.vfs.pathString(t.fs.cwd, root: t.fs.root, reached: &reached) + [0]
        if !reached { s = Array("(unreachable)".utf8) + s }
        if a.a1 < UInt64(s.count) { return err(ERANGE) }
        return t.copyOut(a.a0, s) ? s.count : err(EFAULT)
    }
    t[80] = { t, a in                                                                     // chdir
        switch t.lookup(AT_FDCWD_, a.a0, follow: true) {
        case .success(let p):
            if !p.inode.isDir { return err(ENOTDIR) }
            if !t.mayAccess(p.inode, 1) { return err(EACCES) }
            t.fs.cwd = p
            return 0
        case .failure(let e): return e.ret
        }
    }
    t[81] = { t, a in                                                                     // fchdir
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        guard let p = f.path, p.inode.isDir else { return err(ENOTDIR) }
        if !t.mayAccess(p.inode, 1) { return err(EACCES) }
        t.fs.cwd = p
        return 0
    }
    t[161] = { t, a in                                                                    // chroot
        // Linux's order: the lookup, search permission on the directory
        // (EACCES), then CAP_SYS_CHROOT in the caller's user namespace
        // (EPERM; its root may: set-id files it does not map run without
        // their ids, Credentials.afterExec).
        switch t.lookup(AT_FDCWD_, a.a0, follow: true) {
        case .success(let p):
            if !p.inode.isDir { return err(ENOTDIR) }
            if !t.mayAccess(p.inode, 1) { return err(EACCES) }
            if !t.creds.hasOwn(Cap.sysChroot) { return err(EPERM) }
            t.fs.root = p
            return 0
        case .failure(let e): return e.ret
        }
    }
    t[95] = { t, a in let old = t.fs.umask; t.fs.umask = a.uint(0) & 0o777; return Int(old) } // umask
    t[133] = { t, a in sysMknodat(t, AT_FDCWD_, a.a0, a.uint(1), dev: a.uint(2)) }        // mknod
    t[259] = { t, a in sysMknodat(t, a.int(0), a.a1, a.uint(2), dev: a.uint(3)) }         // mknodat
    t[285] = { t, a in                                                                    // fallocate
        // A change of the file's blocks or size is a modification (Linux's
        // vfs_fallocate ends with fsnotify_modify).
        let r = sysFallocate(t, a)
        if r == 0, let f = t.fds.getIO(a.int(0)) { t.kernel.inotifyFile(f, IN_MODIFY_) }
        return r
    }
    t[221] = { t, a in                                                                    // fadvise64: advice only
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }   // O_PATH too
        if f is PipeFD || f is UnixSocketFD || f is UnixSockFD || f is InetSocketFD || f is LoopbackSockFD || f.inode.map({ $0.mode & S_IFMT_ == S_IFIFO_ }) == true { return err(ESPIPE) }
        if a.int(3) < 0 || a.int(3) > 5 || a.long(2) < 0 { return err(EINVAL) }
        return 0
    }
    t[187] = { t, a in                                                                    // readahead: advice only
        // A descriptor open for reading (EBADF) on a regular file (EINVAL:
        // pipes, sockets, directories, as Linux).
        guard let f = t.fds.get(a.int(0)), f.readable else { return err(EBADF) }
        return f.inode.map({ $0.mode & S_IFMT_ == S_IFREG_ }) == true ? 0 : err(EINVAL)
    }
}

/// chown's ids, the caller's namespace's, as kernel ids: -1 changes
/// nothing, an id the namespace does not map is EINVAL (nil).
func chownAttr(_ t: Task, _ u: UInt32, _ g: UInt32) -> SetAttr? {
    let ns = t.creds.userNS
    var a = SetAttr()
    if u != UInt32.max { guard let k = ns.kernelUID(u) else { return nil }; a.uid = k }
    if g != UInt32.max { guard let k = ns.kernelGID(g) else { return nil }; a.gid = k }
    return a
}

extension Stat {
    /// The owner and group as the credentials' user namespace shows them.
    func seen(by c: Credentials) -> Stat {
        if c.userNS.isRoot { return self }
        var s = self
        s.uid = c.userNS.showUID(uid); s.gid = c.userNS.showGID(gid)
        return s
    }
}

func resultCode(_ r: Result<Void, Errno>) -> Int {
    switch r { case .success: return 0; case .failure(let e): return e.ret }
}

/// stat, lstat and newfstatat of a path. The path is copied in and the
/// result copied out with Kernel.mu given up (Task.withoutKernelLock: host
/// process_vm_readv/writev on the task's own stub), and so is a Gofer
/// round trip for the attributes (GoferInode.stat(for:)); the walk and the
/// attributes are taken under mu. Errors come in Linux's order: the path
/// (EFAULT, ENAMETOOLONG), the walk, then the copy out (EFAULT).
func statPath(_ t: Task, _ dirfd: Int32, _ pathAddr: UInt64, _ buf: UInt64, follow: Bool, emptyOK: Bool = false) -> Int {
    let r = t.withoutKernelLock { t.readPath(pathAddr) }
        .flatMap { t.lookup(dirfd, path: $0, follow: follow, emptyOK: emptyOK) }
        .flatMap { p in (p.inode as? GoferInode)?.stat(for: t) ?? p.inode.stat() }
    switch r {
    case .success(let s):
        let bytes = s.seen(by: t.creds).bytes()
        return t.withoutKernelLock { t.copyOut(buf, bytes) } ? 0 : err(EFAULT)
    case .failure(let e): return e.ret
    }
}

func writeStat(_ t: Task, _ r: Result<Stat, Errno>, _ addr: UInt64) -> Int {
    switch r {
    case .success(let s): return t.copyOut(addr, s.seen(by: t.creds).bytes()) ? 0 : err(EFAULT)
    case .failure(let e): return e.ret
    }
}

/// getdents' count: an unsigned int that Linux's filldir holds in an int,
/// so 2^31 and above fit no record (EINVAL, as a count too short does).
private func direntCount(_ c: UInt32) -> Int { c > UInt32(Int32.max) ? 0 : Int(min(c, 1 << 20)) }

private func sysFallocate(_ t: Task, _ a: Args) -> Int {
    // Linux's vfs_fallocate order: the range (EINVAL), write access
    // (EBADF), the kind of file (a pipe or FIFO ESPIPE, a directory
    // EISDIR, anything else not regular ENODEV), the size (EFBIG).
    guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
    let mode = a.int(1)
    let end = Int64(a.long(2)) &+ Int64(a.long(3))
    if a.long(2) < 0 || a.long(3) <= 0 { return err(EINVAL) }
    if !f.writable { return err(EBADF) }
    if f is PipeFD || f.inode.map({ $0.mode & S_IFMT_ == S_IFIFO_ }) == true { return err(ESPIPE) }
    if f.inode?.isDir == true { return err(EISDIR) }
    if !(f.inode?.isRegular ?? false) { return err(ENODEV) }
    if end < 0 { return err(EFBIG) }
    // FALLOC_FL_PUNCH_HOLE (2), with FALLOC_FL_KEEP_SIZE only
    // (EOPNOTSUPP without it, Linux 6.18's vfs_fallocate): tmpfs and
    // memfd files, as Linux's shmem_fallocate (EPERM under a write
    // seal); other files leave it to the caller's fallback (EOPNOTSUPP).
    if mode & 2 != 0 && mode & ~3 == 0 {
        if mode & 1 == 0 { return err(EOPNOTSUPP) }
        guard let tf = f as? TmpfsFileFD else { return err(EOPNOTSUPP) }
        return tf.node.punchHole(Int64(a.long(2)), Int64(a.long(3)))
    }
    // Blocks are accounted only on a tmpfs mounted with a size (the range's
    // pages, all or none: ENOSPC); elsewhere reserving them is only a size
    // change. Range zeroing is left to callers' fallbacks.
    if mode & ~1 != 0 { return err(EOPNOTSUPP) }
    if end > 1 << 40 { return err(EFBIG) }
    if let tf = f as? TmpfsFileFD, tf.node.blocks != nil, !tf.node.allocate(a.long(2), Int(end)) { return err(ENOSPC) }
    if mode & 1 != 0 { return 0 }                                   // FALLOC_FL_KEEP_SIZE
    if f.fileSize() >= end { return 0 }
    // Growing past RLIMIT_FSIZE: SIGXFSZ and EFBIG (inode_newsize_ok).
    if UInt64(end) > t.tg.rlimits[1].cur { t.sendSelfSignal(SIGXFSZ); return err(EFBIG) }
    return f.truncate(end)
}

/// A listing is an access, even one at the end: the directory's atime and
/// an IN_ACCESS|IN_ISDIR for its watchers after the entries are copied out
/// (Linux's iterate_dir; a program waiting for that event, as gVisor's
/// inotify EpollNoDeadlock does, would otherwise wait for ever).
private func sysGetdents(_ t: Task, _ a: Args, legacy: Bool) -> Int {
    guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
    guard let i = f.inode, i.isDir else { return f.getdents(t, a.a1, direntCount(a.uint(2)), legacy: legacy) }
    i.touchAtime()
    let r = f.getdents(t, a.a1, direntCount(a.uint(2)), legacy: legacy)
    t.kernel.inotifyFile(f, IN_ACCESS_)
    return r
}

/// statfs(2) of `r`; `mount`, the mount it was reached through, gives
/// f_flags (Linux's calculate_f_flags: ST_VALID and the mount's flags).
func writeStatfs(_ t: Task, _ r: Result<Inode, Errno>, _ addr: UInt64, magic: Int64? = nil, mount: Mount? = nil) -> Int {
    switch r {
    case .success(let i):
        var b = statfsBytes(i, magic: magic)
        if let m = mount {
            let ST_VALID: UInt64 = 0x20, ST_RELATIME: UInt64 = 0x1000, ST_NOSYMFOLLOW: UInt64 = 0x2000
            var f = ST_VALID | (m.readOnly ? MountFlags.rdonly : 0)
            f |= m.flags & (MountFlags.nosuid | MountFlags.nodev | MountFlags.noexec | MountFlags.noatime | MountFlags.nodiratime)
            if m.flags & MountFlags.relatime != 0 { f |= ST_RELATIME }
            if m.flags & MountFlags.nosymfollow != 0 { f |= ST_NOSYMFOLLOW }
            put64(&b, 80, f)
        }
        return t.copyOut(addr, b) ? 0 : err(EFAULT)
    case .failure(let e): return e.ret
    }
}

/// ustat(2) (deprecated; glibc no longer wraps it): the free blocks and
/// inodes of the mounted file system whose device number is `dev`
/// (EINVAL when no mount has it), as statfs tells them.
func sysUstat(_ t: Task, _ a: Args) -> Int {
    let dev = a.uint(0)
    guard let m = t.kernel.vfs.mounts.first(where: { m in
        if case .success(let st) = m.root.inode.stat() { return UInt32(truncatingIfNeeded: st.dev) == dev }
        return false
    }) else { return err(EINVAL) }
    let sf = statfsBytes(m.root.inode, magic: nil)
    // struct ustat: int f_tfree, (padding), ino_t f_tinode, char f_fname[6], f_fpack[6].
    var b = [UInt8](repeating: 0, count: 32)
    put32(&b, 0, Int32(truncatingIfNeeded: get64(sf, 24)))
    put64(&b, 8, get64(sf, 48))
    return t.copyOut(a.a1, b) ? 0 : err(EFAULT)
}

/// struct statfs of `i`'s file system.
private func statfsBytes(_ i: Inode, magic: Int64?) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 120)
    put64(&b, 0, UInt64(bitPattern: magic ?? i.fsMagic)); put64(&b, 8, 4096)
    // The in-memory overlay over the container's files answers for the
    // file system beneath it, as Linux's overlayfs answers for its upper
    // directory's (and as `df /` in a runc container shows the disk).
    var i = i
    if let o = i as? OverlayInode {
        var r = o
        while let p = r.parent { r = p }
        if let lower = r.lower as? GoferInode { i = lower }
    }
    if let g = i as? GoferInode, case .success(let h) = g.client.statfs(g.fid), h.bsize > 0 {
        // The container's own files: the sizes of the host file system
        // that holds them, as runc's containers see their rootfs's.
        put64(&b, 8, UInt64(h.bsize))
        put64(&b, 16, h.blocks); put64(&b, 24, h.bfree); put64(&b, 32, h.bavail)
        put64(&b, 40, h.files); put64(&b, 48, h.ffree)
        put64(&b, 64, UInt64(max(h.namelen, 0))); put64(&b, 72, UInt64(max(h.frsize, 0)))
        return b
    }
    if i is TmpfsInode || i is OverlayInode {
        // A tmpfs lives in Sentry memory: it reports the size Linux gives
        // a tmpfs mounted without size= (half the RAM; as many inodes as
        // pages), all of it free. What it holds is not counted (the
        // sandbox's memory bounds it, not a mount size). A fixed 4 GiB
        // with 2 free made programs that check for room refuse (CPython's
        // test_largefile wants 6 GB).
        var total: UInt64 = 0, free: UInt64 = 0, procs: UInt64 = 0
        moat_sysinfo(&total, &free, &procs)
        let pages = max(total / 2 / 4096, 1 << 19)
        put64(&b, 16, pages); put64(&b, 24, pages); put64(&b, 32, pages)
        put64(&b, 40, pages); put64(&b, 48, pages)
        // One mounted with a size: that size, less what it holds.
        if let l = (i as? TmpfsInode)?.blocks {
            if let m = l.max {
                let free = UInt64(max(m - l.used, 0))
                put64(&b, 16, UInt64(m)); put64(&b, 24, free); put64(&b, 32, free)
            }
            if let n = l.maxInodes { put64(&b, 40, n); put64(&b, 48, n) }
        }
    } else {
        put64(&b, 16, 1 << 20); put64(&b, 24, 1 << 19); put64(&b, 32, 1 << 19)
        put64(&b, 40, 1 << 20); put64(&b, 48, 1 << 19)
    }
    put64(&b, 64, 255); put64(&b, 72, 4096)
    return b
}

func sysOpenat(_ t: Task, _ dirfd: Int32, _ pathAddr: UInt64, _ flags: Int32, _ mode: UInt32, resolve: UInt64 = 0) -> Int {
    switch t.readPath(pathAddr) {
    case .success(let p): return openAt(t, dirfd, p, flags, mode, resolve: resolve)
    case .failure(let e): return e.ret
    }
}

/// openat of a path already copied in (or one the Sentry names itself: a
/// core dump's file), with every check an application's open gets.
func openAt(_ t: Task, _ dirfd: Int32, _ path: [UInt8], _ flags: Int32, _ mode: UInt32, resolve: UInt64 = 0) -> Int {
    if path.isEmpty { return err(ENOENT) }
    let start: Path
    // RESOLVE_BENEATH / RESOLVE_IN_ROOT walk from dirfd whatever the path.
    let fromDirfd = resolve & 0x18 != 0
    switch fromDirfd ? t.startPath(dirfd) : t.startPath(dirfd, for: path) { case .success(let s): start = s; case .failure(let e): return e.ret }
    let vfs = t.kernel.vfs
    // Linux 6.4+: O_CREAT|O_DIRECTORY is never meaningful.
    if flags & (O_CREAT | O_DIRECTORY) == O_CREAT | O_DIRECTORY && flags & O_TMPFILE_ != O_TMPFILE_ { return err(EINVAL) }
    let walk = VFS.Walk(follow: flags & O_NOFOLLOW == 0, searcher: t.searcher, resolve: resolve)
    if flags & O_TMPFILE_ == O_TMPFILE_ {
        if flags & O_CREAT != 0 { return err(EINVAL) }
        switch vfs.resolve(t.fs, start: start, path, walk) {
        case .success(let dir): return openTmpfile(t, dir, flags, mode)
        case .failure(let e): return e.ret
        }
    }
    var target: Path! = nil
    var created: FileDescription? = nil
    var isNew = false  // made by this open: no permission check (the mode may deny the opener)
    // A dangling symlink as the last component: O_CREAT (without O_EXCL)
    // creates the file it names, as Linux's open_last_lookups follows it.
    var createStart = start, createPath = path, links = 0
    createLoop: while flags & O_CREAT != 0 && flags & O_PATH == 0 {
        let dir: Path, name: [UInt8]
        switch vfs.resolveParent(t.fs, start: createStart, createPath, walk) { case .success(let r): (dir, name) = r; case .failure(let e): return e.ret }
        if createPath.last == 47 || name == [46] || name == [46, 46] { return err(EISDIR) }
        switch dir.dentry.child(name) {
        case .success(let d):
            if flags & O_EXCL != 0 { return err(EEXIST) }
            var p = vfs.crossMounts(Path(mount: dir.mount, dentry: d))
            if p.inode.isSymlink {
                if flags & O_NOFOLLOW != 0 { return err(ELOOP) }
                var w = walk
                w.follow = true
                switch vfs.resolve(t.fs, start: dir, name, w) {
                case .success(let q): p = q
                case .failure(let e):
                    if e.code == ENOENT, case .success(let linkTarget) = p.inode.readlink(), !linkTarget.isEmpty {
                        links += 1
                        if links > 40 { return err(ELOOP) }
                        createStart = dir; createPath = linkTarget
                        continue createLoop
                    }
                    return e.ret
                }
            }
            // O_CREAT never opens a directory (open(2): EISDIR).
            if p.inode.isDir { return err(EISDIR) }
            target = p
        case .failure(let e):
            if e.code != ENOENT { return e.ret }
            if dir.mount.readOnly { return err(EROFS) }
            if !t.mayAccess(dir.inode, 3) { return err(EACCES) }
            if let e = t.landlockDenies(dir, Landlock.makeReg) { return e.ret }
            let c = t.creds
            let (cm, inherited) = creationMode(t, dir.inode, mode, isDir: false)
            let (m, g) = newOwnership(t, dir.inode, cm, isDir: false)
            switch dir.inode.create(name, mode: m, uid: c.fsuid, gid: g, flags: flags) {
            case .success(let (ino, fd)):
                applyInheritedACL(t.kernel, ino, inherited)
                let d = Dentry(name: name, parent: dir.dentry, inode: ino)
                dir.dentry.children[name] = d
                target = Path(mount: dir.mount, dentry: d)
                created = fd
                isNew = true
                t.kernel.inotifyEntry(dir.inode, name, IN_CREATE_, isDir: false)
            case .failure(let e): return e.ret
            }
        }
        break createLoop
    }
    if flags & O_CREAT == 0 || flags & O_PATH != 0 {
        switch vfs.resolve(t.fs, start: start, path, walk) {
        case .success(let p): target = p
        case .failure(let e): return e.ret
        }
        if target.inode.isSymlink && flags & O_PATH == 0 { return err(ELOOP) }
    }
    return openResolved(t, target, flags, created: created, isNew: isNew)
}
/// The second half of openat: `target` resolved (or just made by O_CREAT:
/// `created`, `isNew`), the checks of the open itself, the description and
/// its descriptor. open_by_handle_at opens through here too.
func openResolved(_ t: Task, _ target: Path, _ flags: Int32, created: FileDescription? = nil, isNew: Bool = false) -> Int {
    let acc = flags & O_ACCMODE
    let wantsWrite = acc != O_RDONLY
    let ino = target.inode
    if flags & O_DIRECTORY != 0 && !ino.isDir { return err(ENOTDIR) }
    let file: FileDescription
    if flags & O_PATH != 0 {
        file = PathFD(flags: flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW), path: target)
    } else if let c = created {
        if let e = t.landlockDenies(target, landlockOpenRights(ino, flags, created: true)) { c.release(); return e.ret }
        file = c
    } else {
        // O_TRUNC asks for write access too (open(2): EISDIR even with O_RDONLY).
        if ino.isDir && (wantsWrite || flags & O_TRUNC != 0) { return err(EISDIR) }
        if (wantsWrite || flags & O_TRUNC != 0) && target.mount.readOnly && ino.isRegular { return err(EROFS) }
        var mask: UInt32 = 0
        if acc != O_WRONLY { mask |= 4 }
        if wantsWrite { mask |= 2 }
        if flags & O_TRUNC != 0 { mask |= 2 }
        if !isNew && !(ino is ProcFdTarget) && !t.mayAccess(ino, mask) { return err(EACCES) }
        // A directory has no direct I/O (Linux's do_dentry_open: EINVAL).
        if flags & O_DIRECT != 0 && ino.isDir { return err(EINVAL) }
        // O_NOATIME: only for the file's owner or with CAP_FOWNER (open(2)).
        if flags & O_NOATIME != 0, case .success(let st) = ino.stat(), st.uid != t.creds.fsuid, !t.creds.capable(Cap.fowner, over: st.uid, st.gid) {
            return err(EPERM)
        }
        // A program some process runs may not be opened for writing (nor
        // truncated): Linux's get_write_access, before the open does anything.
        if ino.isRegular && (wantsWrite || flags & O_TRUNC != 0) && ino.runners > 0 { return err(ETXTBSY) }
        // Landlock: a file with no place in the tree (a pipe, a socket
        // reopened through /proc/PID/fd) is no path a rule could name, and
        // Linux lets it be.
        if !(ino is ProcFdTarget), let e = t.landlockDenies(target, landlockOpenRights(ino, flags, created: isNew)) { return e.ret }
        // Access mode 3 opens the file read-write underneath; the
        // description's own flags (set below) allow neither.
        switch ino.open(t, flags: acc == 3 ? (flags & ~O_ACCMODE) | O_RDWR : flags) {
        case .success(let f): file = f
        case .failure(let e): return e.ret
        }
    }
    if flags & O_PATH == 0 && !(ino is ProcFdTarget) { file.landlockDenied = t.landlockDeniedLater(target) }
    // A reopened /proc/self/fd/N without a place in the tree keeps none.
    if file.path == nil && !(ino is ProcFdTarget) { file.path = target }
    // Counted among the file's writers until its last close: exec of it is ETXTBSY meanwhile.
    if flags & O_PATH == 0 && ino.isRegular && (wantsWrite || flags & O_TRUNC != 0) {
        ino.writers += 1
        file.countedWriter = ino
    }
    // The leases this open conflicts with break (breakLeases, FD.swift).
    if flags & O_PATH == 0 && !breakLeases(t, target.inode, opener: file, write: wantsWrite || flags & O_TRUNC != 0,
                                            nonblocking: flags & O_NONBLOCK != 0) {
        if file.refs == 0 { file.dropWriter(); file.release() }
        return err(EWOULDBLOCK)
    }
    // What F_GETFL shows: open(2) adds O_LARGEFILE (64-bit Linux forces
    // it); O_PATH keeps only O_DIRECTORY and O_NOFOLLOW beside it.
    if flags & O_PATH != 0 {
        file.flags = flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW)
    } else if !(ino is ProcFdTarget) {
        file.flags = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC) | O_LARGEFILE_
    }
    let limit = Int(min(t.tg.rlimits[RL_NOFILE].cur, 1 << 20))
    let fd = t.fds.install(file, cloexec: flags & O_CLOEXEC != 0, limit: limit)
    if fd < 0 && file.refs == 0 { file.dropWriter(); file.release() }
    if fd >= 0 && flags & O_PATH == 0 { t.kernel.inotifyFile(file.path, IN_OPEN_) }
    // O_TRUNC of a regular file that was there truncates it: IN_MODIFY,
    // after IN_OPEN (Linux 6.5 on).
    if fd >= 0 && flags & (O_PATH | O_TRUNC) == O_TRUNC && ino.isRegular && !isNew { t.kernel.inotifyFile(file.path, IN_MODIFY_, inodeEvent: true) }
    return fd
}

/// The Landlock rights an open asks of its file: listing for a directory,
/// reading, writing, truncating (O_TRUNC of a file that was there) for others.
func landlockOpenRights(_ i: Inode, _ flags: Int32, created: Bool) -> UInt64 {
    let acc = flags & O_ACCMODE
    let reads = acc == O_RDONLY || acc == O_RDWR
    if i.isDir { return reads ? Landlock.readDir : 0 }
    var r: UInt64 = reads ? Landlock.readFile : 0
    if acc == O_WRONLY || acc == O_RDWR { r |= Landlock.writeFile }
    if flags & O_TRUNC != 0 && !created { r |= Landlock.truncate }
    return r
}

func sysRead(_ t: Task, _ fd: Int32, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
    if let o = off, o < 0 { return err(EINVAL) }                          // pread64/pwrite64 check it first
    guard let f = t.fds.get(fd) else { return err(EBADF) }
    // pread on what has no position (a pipe's write end too) is ESPIPE
    // before the access mode is looked at, as Linux (ksys_pread64).
    if off != nil && !f.seekable && f.flags & O_PATH == 0 { return err(ESPIPE) }
    if !f.readable { return err(EBADF) }
    if count < 0 { return err(EINVAL) }
    let r = f.read(t, buf, min(count, 0x7ffff000), off)
    if r > 0 { t.kernel.inotifyFile(f, IN_ACCESS_) }
    return r
}

/// pread64: sysRead, except that a Gofer-donated regular file is read with
/// Kernel.mu given up during the host reads and copies
/// (HostFileFD.preadUnlocked). Only from the pread64 handler: callers that
/// read as part of a larger step under mu (io_uring's ring, readv's
/// vector) keep sysRead, which keeps the lock.
func sysPread(_ t: Task, _ fd: Int32, _ buf: UInt64, _ count: Int, _ off: Int64) -> Int {
    guard let f = t.fds.get(fd) as? HostFileFD, f.seekable, f.readable, count > 0, off >= 0 else {
        return sysRead(t, fd, buf, count, off)
    }
    let r = f.preadUnlocked(t, buf, min(count, 0x7ffff000), off)
    if r > 0 { t.kernel.inotifyFile(f, IN_ACCESS_) }
    return r
}

func sysWrite(_ t: Task, _ fd: Int32, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
    if let o = off, o < 0 { return err(EINVAL) }                          // pread64/pwrite64 check it first
    guard let f = t.fds.get(fd) else { return err(EBADF) }
    if off != nil && !f.seekable && f.flags & O_PATH == 0 { return err(ESPIPE) }  // as in sysRead
    if !f.writable { return err(EBADF) }
    if count < 0 { return err(EINVAL) }
    let n = fileSizeLimit(t, f, off, min(count, 0x7ffff000))
    if n < 0 { return n }
    let keep = count > 0 ? dropSetIDForWrite(t, f.inode) : nil
    let r = f.write(t, buf, n, off)
    if r > 0 { restoreSetID(keep); t.kernel.inotifyFile(f, IN_MODIFY_) }
    return r
}

/// A write or truncate of a set-id file by a caller without CAP_FSETID
/// drops set-user-ID, and set-group-ID when the group may execute or the
/// caller is outside the group (Linux's file_remove_privs); any write or
/// truncate drops file capabilities. When set-id bits remain, returns the
/// file and mode to put back afterwards: a write-through file is written by
/// the Sentry, which runs as the sandbox's own host id with no capability
/// (Confinement.swift), so the host kernel drops the bits by its own rules,
/// not the application's.
func dropSetIDForWrite(_ t: Task, _ i: Inode?) -> (Inode, UInt32)? {
    guard let i, i.isRegular, !(i is StdioInode) else { return nil }
    dropFileCapability(t.kernel, i)
    guard i.mode & (S_ISUID_ | S_ISGID_) != 0 else { return nil }
    let m = i.mode & 0o7777
    if t.creds.capable(Cap.fsetid, over: i.uid, i.gid) { return (i, m) }
    var clear = m & S_ISUID_
    if m & S_ISGID_ != 0 && (m & 0o010 != 0 || !(i.gid == t.creds.fsgid || t.creds.groups.contains(i.gid))) { clear |= S_ISGID_ }
    if clear != 0 { _ = i.setattr(SetAttr(mode: m & ~clear)) }
    let kept = m & ~clear
    return kept & (S_ISUID_ | S_ISGID_) != 0 ? (i, kept) : nil
}

/// RLIMIT_FSIZE for a write of `count` bytes to a regular file at `off`
/// (nil: the file offset, or the end with O_APPEND): the count that fits, or
/// EFBIG with SIGXFSZ when the write would start at or past the limit.
func fileSizeLimit(_ t: Task, _ f: FileDescription, _ off: Int64?, _ count: Int) -> Int {
    let lim = t.tg.rlimits[1].cur
    guard count > 0, lim < UInt64(Int64.max), f.inode?.isRegular == true else { return count }
    let pos = off ?? (f.flags & O_APPEND != 0 ? f.fileSize() : f.offset)
    if pos < 0 || UInt64(pos) >= lim {
        t.sendSelfSignal(SIGXFSZ)
        return err(EFBIG)
    }
    return min(count, Int(lim - UInt64(pos)))
}

func restoreSetID(_ keep: (Inode, UInt32)?) {
    guard let (i, m) = keep, case .success(let st) = i.stat(), st.mode & 0o7777 != m else { return }
    _ = i.setattr(SetAttr(mode: m))
}

/// Decodes an application's iovec array (`count` pairs of base and length,
/// already copied in) as Linux's import_iovec does: a length negative as a
/// ssize_t is EINVAL; the total is cut to MAX_RW_COUNT by shortening the
/// iovec where it is crossed (and zeroing the rest). Pure, so the fuzz
/// target `syscall-args` feeds it directly; readv/writev, sendmsg/recvmsg
/// and process_vm_readv/writev all take their vectors through it.
func decodeIovecs(_ b: [UInt8], count: Int) -> Result<[(UInt64, Int)], Errno> {
    guard count >= 0, b.count >= count * 16 else { return .failure(Errno(EFAULT)) }
    var out: [(UInt64, Int)] = []
    out.reserveCapacity(count)
    var total = 0
    for i in 0..<count {
        let len = Int64(bitPattern: get64(b, i * 16 + 8))
        if len < 0 { return .failure(Errno(EINVAL)) }
        let base = get64(b, i * 16)
        // Linux's import_iovec: every segment must lie in user address
        // space (access_ok), even an empty one, before anything moves.
        if base > userAddressEnd || UInt64(len) > userAddressEnd - base { return .failure(Errno(EFAULT)) }
        let n = Int(min(len, Int64(maxRWCount - total)))
        total += n
        out.append((base, n))
    }
    return .success(out)
}

/// The end of the user half of the x86-64 address space (4-level paging).
let userAddressEnd: UInt64 = 1 << 47

/// MAX_RW_COUNT: the most one read or write moves (INT_MAX, page aligned).
let maxRWCount = 0x7fff_f000

func sysReadv(_ t: Task, _ fd: Int32, _ iov: UInt64, _ cnt: Int32, _ off: Int64?, write: Bool) -> Int {
    guard let f = t.fds.get(fd) else { return err(EBADF) }
    // Linux's order: a position on an unseekable file (ESPIPE), the mode
    // (EBADF), the vector (EINVAL, EFAULT), then a negative position.
    if off != nil && !f.seekable { return err(ESPIPE) }
    if write ? !f.writable : !f.readable { return err(EBADF) }
    if cnt < 0 || cnt > 1024 { return err(EINVAL) }
    if cnt == 0 { return 0 }
    guard let v = t.copyIn(iov, Int(cnt) * 16) else { return err(EFAULT) }
    // A negative length or position never indexes a buffer (preadv at -1
    // read the Sentry's memory before a tmpfs file's bytes; pwritev at -1
    // crashed the Sentry).
    let vecs: [(UInt64, Int)]
    switch decodeIovecs(v, count: Int(cnt)) { case .success(let d): vecs = d; case .failure(let e): return e.ret }
    if let o = off, o < 0 { return err(EINVAL) }
    // A socket takes the whole vector as one message (Linux: sock_read_iter
    // is recvmsg, sock_write_iter sendmsg), never a message per iovec.
    if off == nil, let r = socketVectorIO(t, fd, f, vecs, write: write) { return r }
    var total = 0
    var pos = off
    let keep = write ? dropSetIDForWrite(t, f.inode) : nil
    defer { if total > 0 { restoreSetID(keep) } }
    for (base, len) in vecs {
        if len == 0 { continue }
        var n = len
        if write {
            n = fileSizeLimit(t, f, pos, len)
            if n < 0 { return total > 0 ? total : n }
        }
        let r = write ? f.write(t, base, n, pos) : f.read(t, base, n, pos)
        if r < 0 { return total > 0 ? total : r }
        total += r
        if pos != nil { pos! += Int64(r) }
        if r < len { break }
    }
    if total > 0 { t.kernel.inotifyFile(f, write ? IN_MODIFY_ : IN_ACCESS_) }
    return total
}

func sysStatx(_ t: Task, _ a: Args) -> Int {
    let flags = a.int(2)
    // Only the lookup flags and one AT_STATX_* sync type; the top mask bit is reserved.
    if flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_EMPTY_PATH_ | 0x800 | 0x6000) != 0 || flags & 0x6000 == 0x6000 { return err(EINVAL) }
    if a.uint(3) & 0x8000_0000 != 0 { return err(EINVAL) }
    var r: Result<Stat, Errno>
    var mount: Mount? = nil
    if flags & AT_EMPTY_PATH_ != 0, case .success(let p) = t.readPath(a.a1), p.isEmpty {
        if a.int(0) == AT_FDCWD_ { r = t.fs.cwd.inode.stat(); mount = t.fs.cwd.mount }
        else if let f = t.fds.get(a.int(0)) { r = f.stat(); mount = f.path?.mount } else { return err(EBADF) }
    } else {
        let p = t.lookup(a.int(0), a.a1, follow: flags & AT_SYMLINK_NOFOLLOW_ == 0)
        mount = try? p.get().mount
        r = p.flatMap { $0.inode.stat() }
    }
    switch r {
    case .success(let st):
        let s = st.seen(by: t.creds)
        var b = [UInt8](repeating: 0, count: 256)
        // STATX_BASIC_STATS, and the mount id, which Linux fills whatever
        // the caller asked for (unknown request bits are ignored).
        let withMount = mount?.id
        put32(&b, 0, withMount == nil ? 0x7ff : 0x17ff)
        if let id = withMount { put64(&b, 144, UInt64(id)) }
        put32(&b, 4, Int32(truncatingIfNeeded: s.blksize))
        put32(&b, 16, Int32(truncatingIfNeeded: s.nlink)); put32(&b, 20, Int32(bitPattern: s.uid)); put32(&b, 24, Int32(bitPattern: s.gid))
        b[28] = UInt8(s.mode & 0xff); b[29] = UInt8((s.mode >> 8) & 0xff)
        put64(&b, 32, s.ino); put64(&b, 40, UInt64(bitPattern: s.size)); put64(&b, 48, UInt64(bitPattern: s.blocks))
        put64(&b, 64, UInt64(bitPattern: s.atime.0)); put32(&b, 72, Int32(truncatingIfNeeded: s.atime.1))
        put64(&b, 96, UInt64(bitPattern: s.ctime.0)); put32(&b, 104, Int32(truncatingIfNeeded: s.ctime.1))
        put64(&b, 112, UInt64(bitPattern: s.mtime.0)); put32(&b, 120, Int32(truncatingIfNeeded: s.mtime.1))
        put32(&b, 128, Int32(truncatingIfNeeded: s.rdev >> 8)); put32(&b, 132, Int32(truncatingIfNeeded: s.rdev & 0xff))
        put32(&b, 136, Int32(truncatingIfNeeded: s.dev >> 8)); put32(&b, 140, Int32(truncatingIfNeeded: s.dev & 0xff))
        return t.copyOut(a.a4, b) ? 0 : err(EFAULT)
    case .failure(let e): return e.ret
    }
}

func sysAccess(_ t: Task, _ dirfd: Int32, _ path: UInt64, _ mode: Int32, _ flags: Int32) -> Int {
    if mode & ~7 != 0 { return err(EINVAL) }
    // Without AT_EACCESS the whole check, walk included, runs with the real
    // ids and their capabilities (Credentials.forAccess), as Linux does.
    let saved = t.creds
    if flags & 0x200 == 0 { t.creds = saved.forAccess }
    defer { t.creds = saved }
    switch t.lookup(dirfd, path, follow: flags & AT_SYMLINK_NOFOLLOW_ == 0, emptyOK: flags & AT_EMPTY_PATH_ != 0) {
    case .success(let p):
        if mode == 0 { return 0 }
        // Writing on a read-only mount: EROFS for a regular file, a
        // directory or a symlink (Linux's sb_permission), not a device.
        if mode & 2 != 0 && p.mount.readOnly && (p.inode.isRegular || p.inode.isDir || p.inode.isSymlink) { return err(EROFS) }
        return t.mayAccess(p.inode, UInt32(mode)) ? 0 : err(EACCES)
    case .failure(let e): return e.ret
    }
}

/// Common shape of the calls that make a name in a directory. `landlock`:
/// the Landlock MAKE_* right the new name needs in its directory (0 when
/// the caller checks its own, as link's reparenting check does).
func withNewName(_ t: Task, _ dirfd: Int32, _ path: UInt64, directory: Bool = false, landlock: UInt64,
                 _ make: (Path, [UInt8]) -> Result<Inode, Errno>) -> Int {
    switch t.lookupParentSlash(dirfd, path) {
    case .success(let (dir, name, slash)):
        if name == [46] || name == [46, 46] { return err(EEXIST) }
        if case .success = dir.dentry.child(name) { return err(EEXIST) }
        // Only a directory's new name may end in a slash (Linux's filename_create: ENOENT).
        if slash && !directory { return err(ENOENT) }
        if dir.mount.readOnly { return err(EROFS) }
        if !t.mayAccess(dir.inode, 3) { return err(EACCES) }
        if landlock != 0, let e = t.landlockDenies(dir, landlock) { return e.ret }
        switch make(dir, name) {
        case .success(let ino):
            dir.dentry.children[name] = Dentry(name: name, parent: dir.dentry, inode: ino)
            t.kernel.inotifyEntry(dir.inode, name, IN_CREATE_, isDir: ino.isDir)
            return 0
        case .failure(let e): return e.ret
        }
    case .failure(let e): return e.ret
    }
}

func sysMkdirat(_ t: Task, _ dirfd: Int32, _ path: UInt64, _ mode: UInt32) -> Int {
    let c = t.creds
    return withNewName(t, dirfd, path, directory: true, landlock: Landlock.makeDir) { dir, name in
        let (cm, inherited) = creationMode(t, dir.inode, mode, isDir: true)
        let (m, g) = newOwnership(t, dir.inode, cm, isDir: true)
        return dir.inode.mkdir(name, mode: m, uid: c.fsuid, gid: g).map { applyInheritedACL(t.kernel, $0, inherited); return $0 }
    }
}

/// The mode and group of a new file in `dir`: a set-group-ID directory
/// gives its group (and, to directories, its set-group-ID bit); a file may
/// keep set-group-ID only if its creator is in its group.
func newOwnership(_ t: Task, _ dir: Inode, _ mode: UInt32, isDir: Bool) -> (UInt32, UInt32) {
    let c = t.creds
    var m = mode, g = c.fsgid
    if dir.mode & S_ISGID_ != 0 {
        g = dir.gid
        if isDir { m |= S_ISGID_ }
    }
    if !isDir && m & S_ISGID_ != 0 && !c.capable(Cap.fsetid, over: dir.uid, dir.gid) && g != c.fsgid && !c.inGroup(g) { m &= ~S_ISGID_ }
    return (m, g)
}

/// `dev`: the kernel's 32-bit device number (glibc's makedev for majors
/// below 4096), kept as the node's st_rdev.
func sysMknodat(_ t: Task, _ dirfd: Int32, _ path: UInt64, _ mode: UInt32, dev: UInt32) -> Int {
    let c = t.creds
    let fmt = mode & S_IFMT_
    if ![0, S_IFREG_, S_IFCHR_, S_IFBLK_, S_IFIFO_, S_IFSOCK_].contains(fmt) { return err(EINVAL) }
    return withNewName(t, dirfd, path, landlock: Landlock.makeRight(fmt == 0 ? S_IFREG_ : fmt)) { dir, name in
        let (cm, inherited) = creationMode(t, dir.inode, mode, isDir: false)
        let (m, g) = newOwnership(t, dir.inode, cm, isDir: false)
        // Device nodes need CAP_MKNOD (checked after the directory's
        // permission, as Linux does) and a file system in Sentry memory: a
        // node there opens only an emulated device (see openDeviceNode).
        if fmt == S_IFCHR_ || fmt == S_IFBLK_ {
            if !c.has(Cap.mknod) { return .failure(Errno(EPERM)) }
            return dir.inode.mknodDevice(name, mode: fmt | m, rdev: UInt64(dev), uid: c.fsuid, gid: g).map { applyInheritedACL(t.kernel, $0, inherited); return $0 }
        }
        return dir.inode.mknod(name, mode: (fmt == 0 ? S_IFREG_ : fmt) | m, uid: c.fsuid, gid: g).map { applyInheritedACL(t.kernel, $0, inherited); return $0 }
    }
}

func sysSymlinkat(_ t: Task, _ target: UInt64, _ dirfd: Int32, _ path: UInt64) -> Int {
    let tgt: [UInt8]
    switch t.readPath(target) { case .success(let p): tgt = p; case .failure(let e): return e.ret }
    if tgt.isEmpty { return err(ENOENT) }
    let c = t.creds
    return withNewName(t, dirfd, path, landlock: Landlock.makeSym) { dir, name in dir.inode.symlink(name, target: tgt, uid: c.fsuid, gid: c.fsgid) }
}

func sysLinkat(_ t: Task, _ olddir: Int32, _ oldpath: UInt64, _ newdir: Int32, _ newpath: UInt64, _ flags: Int32) -> Int {
    if flags & ~(AT_SYMLINK_FOLLOW_ | AT_EMPTY_PATH_) != 0 { return err(EINVAL) }
    let src: Path
    switch t.lookup(olddir, oldpath, follow: flags & AT_SYMLINK_FOLLOW_ != 0, emptyOK: flags & AT_EMPTY_PATH_ != 0) {
    case .success(let p): src = p
    case .failure(let e): return e.ret
    }
    if src.inode.isDir { return err(EPERM) }
    // A file with no links left stays unnamed (O_TMPFILE files excepted).
    if src.inode.nlink == 0 && !src.inode.linkableWhenUnlinked { return err(ENOENT) }
    // fs.protected_hardlinks: only the owner, or someone who could read and
    // write it, may link a regular, non-set-id file.
    let c = t.creds, i = src.inode
    if !c.capable(Cap.fowner, over: i.uid, i.gid) && i.uid != c.fsuid {
        let setid = i.mode & S_ISUID_ != 0 || i.mode & 0o2010 == 0o2010
        if !i.isRegular || setid || !t.mayAccess(i, 6) { return err(EPERM) }
    }
    // Landlock: the link is a reparenting unless made in the file's own
    // directory (it needs the new name's MAKE_* right either way).
    let srcDir = Path(mount: src.mount, dentry: src.dentry.parent ?? src.dentry)
    return withNewName(t, newdir, newpath, landlock: 0) { dir, name in
        if dir.mount !== src.mount { return .failure(Errno(EXDEV)) }
        if let e = t.landlockRefer(src: src, oldDir: srcDir, newDir: dir, dst: nil, exchange: false, removable: false) {
            return .failure(e)
        }
        let r = dir.inode.link(name, src.inode)
        // The new link count is the file's own event; its directory's
        // watches hear only the IN_CREATE of the new name.
        if case .success = r { t.kernel.inotifyInode(src.inode, IN_ATTRIB_) }
        return r
    }
}

func sysUnlinkat(_ t: Task, _ dirfd: Int32, _ path: UInt64, _ flags: Int32) -> Int {
    if flags & ~AT_REMOVEDIR_ != 0 { return err(EINVAL) }
    switch t.readPath(path) {
    case .success(let p): return unlinkAt(t, dirfd, p, flags)
    case .failure(let e): return e.ret
    }
}

/// unlinkat of a path already copied in (flags checked by the caller).
func unlinkAt(_ t: Task, _ dirfd: Int32, _ path: [UInt8], _ flags: Int32) -> Int {
    let isDir = flags & AT_REMOVEDIR_ != 0
    // An empty name is ENOENT whatever dirfd is; the root itself is busy
    // to rmdir and a directory to unlink (Linux's LAST_ROOT).
    if path.isEmpty { return err(ENOENT) }
    if path.allSatisfy({ $0 == 47 }) { return err(isDir ? EBUSY : EISDIR) }
    switch t.lookupParentSlash(dirfd, path: path) {
    case .success(let (dir, name, slash)):
        if name == [46] { return err(isDir ? EINVAL : EISDIR) }
        if name == [46, 46] { return err(isDir ? ENOTEMPTY : EISDIR) }
        let child: Dentry
        switch dir.dentry.child(name) { case .success(let d): child = d; case .failure(let e): return e.ret }
        if !child.mountsHere.isEmpty { return err(EBUSY) }
        if isDir && !child.inode.isDir { return err(ENOTDIR) }
        if !isDir && child.inode.isDir { return err(EISDIR) }
        if slash && !child.inode.isDir { return err(ENOTDIR) }
        if dir.mount.readOnly { return err(EROFS) }
        if !t.mayAccess(dir.inode, 3) { return err(EACCES) }
        if let e = t.landlockDenies(dir, Landlock.removeRight(child.inode)) { return e.ret }
        if stickyDenies(t, dir.inode, child.inode) { return err(EPERM) }
        switch dir.inode.unlink(name, dir: isDir) {
        case .success:
            dir.dentry.children[name] = nil
            child.dead = true
            t.kernel.inotifyUnlinked(dir.inode, name, child.inode)
            return 0
        case .failure(let e): return e.ret
        }
    case .failure(let e): return e.ret
    }
}

func sysRenameat(_ t: Task, _ od: Int32, _ op: UInt64, _ nd: Int32, _ np: UInt64, _ flags: UInt32) -> Int {
    // RENAME_EXCHANGE with RENAME_NOREPLACE or RENAME_WHITEOUT: EINVAL
    // before any lookup (Linux's do_renameat2).
    if flags & ~UInt32(7) != 0 || flags & 3 == 3 || flags & 6 == 6 { return err(EINVAL) }
    let (odir, oname, oslash): (Path, [UInt8], Bool)
    switch t.lookupParentSlash(od, op) { case .success(let r): (odir, oname, oslash) = r; case .failure(let e): return e.ret }
    let (ndir, nname, nslash): (Path, [UInt8], Bool)
    switch t.lookupParentSlash(nd, np) { case .success(let r): (ndir, nname, nslash) = r; case .failure(let e): return e.ret }
    if oname == [46] || oname == [46, 46] { return err(EBUSY) }
    // Linux's do_renameat2: a "." or ".." target is EEXIST under RENAME_NOREPLACE.
    if nname == [46] || nname == [46, 46] { return err(flags & 1 != 0 ? EEXIST : EBUSY) }
    if odir.mount !== ndir.mount { return err(EXDEV) }
    let src: Dentry
    switch odir.dentry.child(oname) { case .success(let d): src = d; case .failure(let e): return e.ret }
    if !src.mountsHere.isEmpty { return err(EBUSY) }
    if (oslash || nslash) && !src.inode.isDir { return err(ENOTDIR) }
    // A directory cannot move into itself.
    if src.inode.isDir {
        var p: Dentry? = ndir.dentry
        while let q = p { if q === src { return err(EINVAL) }; p = q.parent }
    }
    let existing = try? ndir.dentry.child(nname).get()
    if let e = existing {
        // Two names of one file: rename does nothing.
        if e === src || sameFile(e.inode, src.inode) { return 0 }
        if flags & 1 != 0 { return err(EEXIST) }
        if flags & 2 != 0 {
            // An exchange moves the target the other way: it may be of
            // another type, but must not end up inside itself either.
            if e.inode.isDir {
                var p: Dentry? = odir.dentry
                while let q = p { if q === e { return err(EINVAL) }; p = q.parent }
            }
        } else {
            if src.inode.isDir && !e.inode.isDir { return err(ENOTDIR) }
            if !src.inode.isDir && e.inode.isDir { return err(EISDIR) }
        }
    } else if flags & 2 != 0 { return err(ENOENT) }
    if odir.mount.readOnly { return err(EROFS) }
    if !t.mayAccess(odir.inode, 3) || !t.mayAccess(ndir.inode, 3) { return err(EACCES) }
    // A rename removes a name from each side: the sticky rule holds for the
    // file moved out of its directory and for a file it replaces.
    if stickyDenies(t, odir.inode, src.inode) { return err(EPERM) }
    if let e = existing, stickyDenies(t, ndir.inode, e.inode) { return err(EPERM) }
    if let e = t.landlockRefer(src: Path(mount: odir.mount, dentry: src), oldDir: odir, newDir: ndir,
                               dst: existing.map { Path(mount: ndir.mount, dentry: $0) }, exchange: flags & 2 != 0, removable: true) {
        return e.ret
    }
    switch odir.inode.rename(oname, to: ndir.inode, nname, flags: flags) {
    case .success:
        odir.dentry.children[oname] = nil
        if flags & 2 != 0, let e = existing {
            e.name = oname; e.parent = odir.dentry; odir.dentry.children[oname] = e
        } else {
            ndir.dentry.children[nname] = nil
            existing?.dead = true
        }
        src.name = nname
        src.parent = ndir.dentry
        ndir.dentry.children[nname] = src
        t.kernel.inotifyRename(odir.inode, oname, ndir.inode, nname, src.inode)
        if flags & 2 == 0, let e = existing { t.kernel.inotifyUnlinked(nil, nname, e.inode) }
        return 0
    case .failure(let e): return e.ret
    }
}

/// In a sticky directory only the file's owner, the directory's owner or a
/// caller with CAP_FOWNER over the file may remove or rename it (Linux's
/// check_sticky, for unlink, rmdir and both sides of rename).
private func stickyDenies(_ t: Task, _ dir: Inode, _ victim: Inode) -> Bool {
    dir.mode & 0o1000 != 0 && victim.uid != t.creds.fsuid && dir.uid != t.creds.fsuid
        && !t.creds.capable(Cap.fowner, over: victim.uid, victim.gid)
}

func sysReadlinkat(_ t: Task, _ dirfd: Int32, _ path: UInt64, _ buf: UInt64, _ size: Int) -> Int {
    if size <= 0 { return err(EINVAL) }
    switch t.lookup(dirfd, path, follow: false, emptyOK: true) {
    case .success(let p):
        switch p.inode.readlink() {
        case .success(let s):
            let n = min(s.count, size)
            return t.copyOut(buf, Array(s[0..<n])) ? n : err(EFAULT)
        case .failure(let e):
            // An empty path names dirfd itself, never a link: ENOENT (Linux 6.x), not EINVAL.
            if e.ret == err(EINVAL) && t.copyIn(path, 1) == [0] { return err(ENOENT) }
            return e.ret
        }
    case .failure(let e): return e.ret
    }
}

func checkSetattr(_ t: Task, _ i: Inode, _ a: SetAttr) -> Int32? {
    let c = t.creds
    let owner = i.uid == c.fsuid || c.capable(Cap.fowner, over: i.uid, i.gid)
    if a.mode != nil && !owner { return EPERM }
    // chown: the owner may "change" to its own uid; CAP_CHOWN may do any.
    if let u = a.uid, !(i.uid == c.fsuid && u == i.uid) && !c.capable(Cap.chown, over: i.uid, i.gid) { return EPERM }
    if let g = a.gid, !(i.uid == c.fsuid && (g == i.gid || g == c.fsgid || c.groups.contains(g))) && !c.capable(Cap.chown, over: i.uid, i.gid) { return EPERM }
    if (a.atime != nil || a.mtime != nil) && !owner {
        if a.explicitTimes { return EPERM }
        if !t.mayAccess(i, 2) { return EACCES }
    }
    return nil
}

func sysSetattrAt(_ t: Task, _ dirfd: Int32, _ path: UInt64, _ follow: Bool, _ a: SetAttr) -> Int {
    switch t.lookup(dirfd, path, follow: follow) {
    case .success(let p):
        if p.mount.readOnly { return err(EROFS) }
        if let e = checkSetattr(t, p.inode, a) { return err(e) }
        let r = resultCode(p.inode.setattr(withOwnerChangeEffects(p.inode, withChmodEffects(t, p.inode, a))))
        if r == 0 { dropFileCapabilities(t.kernel, p.inode, a) }
        if r == 0 { aclChmod(t.kernel, p.inode, a) }
        if r == 0, let m = inotifyMask(a) { t.kernel.inotifyFile(p, m, inodeEvent: true) }
        return r
    case .failure(let e): return e.ret
    }
}

/// emptyPath: the *at call's AT_EMPTY_PATH form, which names the file an
/// O_PATH descriptor stands for too (the f* calls refuse those: EBADF).
func sysFSetattr(_ t: Task, _ fd: Int32, _ a: SetAttr, emptyPath: Bool = false) -> Int {
    guard let f = emptyPath ? t.fds.get(fd) : t.fds.getIO(fd) else { return err(EBADF) }
    guard let i = f.inode ?? f.ownInode, !(i is StdioInode) else { return 0 }
    if f.path?.mount.readOnly == true { return err(EROFS) }                    // as the path calls: before the owner check
    if let e = checkSetattr(t, i, a) { return err(e) }
    let r = resultCode(i.setattr(withOwnerChangeEffects(i, withChmodEffects(t, i, a))))
    if r == 0 { dropFileCapabilities(t.kernel, i, a) }
    if r == 0 { aclChmod(t.kernel, i, a) }
    if r == 0, let m = inotifyMask(a) { t.kernel.inotifyFile(f, m, inodeEvent: true) }
    return r
}

/// The event an attribute change makes, as Linux's fsnotify_change: owner,
/// group, mode or both times IN_ATTRIB; a size IN_MODIFY; only the access
/// time IN_ACCESS, only the modification time IN_MODIFY (utimensat with
/// one UTIME_OMIT); nil for nothing changed.
private func inotifyMask(_ a: SetAttr) -> UInt32? {
    var m: UInt32 = 0
    if a.uid != nil || a.gid != nil || a.mode != nil { m |= IN_ATTRIB_ }
    if a.size != nil { m |= IN_MODIFY_ }
    switch (a.atime != nil, a.mtime != nil) {
    case (true, true): m |= IN_ATTRIB_
    case (true, false): m |= IN_ACCESS_
    case (false, true): m |= IN_MODIFY_
    case (false, false): break
    }
    return m == 0 ? nil : m
}

/// chmod by a caller outside the file's group and without CAP_FSETID
/// drops set-group-ID from the new mode.
func withChmodEffects(_ t: Task, _ i: Inode, _ a: SetAttr) -> SetAttr {
    guard let m = a.mode, m & S_ISGID_ != 0 else { return a }
    let c = t.creds, g = a.gid ?? i.gid
    if g == c.fsgid || c.groups.contains(g) || c.capable(Cap.fsetid, over: i.uid, i.gid) { return a }
    var b = a
    b.mode = m & ~S_ISGID_
    return b
}

/// chown of a non-directory clears set-user-ID, and set-group-ID when the
/// group may execute (otherwise it marks mandatory locking), even for root.
func withOwnerChangeEffects(_ i: Inode, _ a: SetAttr) -> SetAttr {
    guard a.uid != nil || a.gid != nil, a.mode == nil, !i.isDir else { return a }
    var clear: UInt32 = S_ISUID_
    if i.mode & 0o010 != 0 { clear |= S_ISGID_ }
    if i.mode & clear == 0 { return a }
    var b = a
    b.mode = i.mode & 0o7777 & ~clear
    return b
}

/// A utimensat time: nil for UTIME_OMIT, .some(nil) for a fault,
/// .some(.some((-1, -1))) for an invalid value.
func readTimespec(_ t: Task, _ addr: UInt64) -> (Int64, Int64)?? {
    guard let s = t.readU64(addr), let n = t.readU64(addr &+ 8) else { return .some(nil) }
    let ns = Int64(bitPattern: n)
    if ns == (1 << 30) - 1 { return .some(nowTimespec()) }     // UTIME_NOW
    if ns == (1 << 30) - 2 { return nil }                      // UTIME_OMIT
    if ns < 0 || ns >= 1_000_000_000 { return .some((-1, -1)) }
    return .some((Int64(bitPattern: s), ns))
}

func sysUtimensat(_ t: Task, _ a: Args) -> Int {
    var attr = SetAttr()
    if a.a2 == 0 {
        attr.atime = nowTimespec(); attr.mtime = attr.atime
    } else {
        switch readTimespec(t, a.a2) { case .some(.none): return err(EFAULT); case .some(.some(let v)): attr.atime = v; case .none: break }
        switch readTimespec(t, a.a2 &+ 16) { case .some(.none): return err(EFAULT); case .some(.some(let v)): attr.mtime = v; case .none: break }
        // Both UTIME_OMIT: nothing to do, and Linux does not even look the
        // path up (a missing file is no error).
        if attr.atime == nil && attr.mtime == nil { return 0 }
        if attr.atime?.1 == -1 || attr.mtime?.1 == -1 { return err(EINVAL) }
        for off: UInt64 in [8, 24] {
            let ns = t.readU64(a.a2 &+ off) ?? 0
            if ns != (1 << 30) - 1 && ns != (1 << 30) - 2 { attr.explicitTimes = true }   // not UTIME_NOW/OMIT
        }
    }
    let dirfd = a.int(0), flags = a.int(3)
    // A null path names dirfd itself (no flags allowed); with AT_FDCWD it
    // is a path to read (EFAULT), as Linux's do_utimes.
    if a.a1 == 0 && dirfd != AT_FDCWD_ { return flags != 0 ? err(EINVAL) : sysFSetattr(t, dirfd, attr) }
    if flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_EMPTY_PATH_) != 0 { return err(EINVAL) }
    if flags & AT_EMPTY_PATH_ != 0, dirfd != AT_FDCWD_, case .success(let p) = t.readPath(a.a1), p.isEmpty {
        return sysFSetattr(t, dirfd, attr, emptyPath: true)
    }
    return sysSetattrAt(t, dirfd, a.a1, flags & AT_SYMLINK_NOFOLLOW_ == 0, attr)
}

func sysUtimes(_ t: Task, _ dirfd: Int32, _ path: UInt64, _ tv: UInt64) -> Int {
    var attr = SetAttr()
    if tv == 0 { attr.atime = nowTimespec(); attr.mtime = attr.atime }
    else {
        guard let b = t.copyIn(tv, 32) else { return err(EFAULT) }
        let au = Int64(bitPattern: get64(b, 8)), mu = Int64(bitPattern: get64(b, 24))
        if au < 0 || au >= 1_000_000 || mu < 0 || mu >= 1_000_000 { return err(EINVAL) }
        attr.atime = (Int64(bitPattern: get64(b, 0)), au * 1000)
        attr.mtime = (Int64(bitPattern: get64(b, 16)), mu * 1000)
        attr.explicitTimes = true
    }
    // futimesat with a null path: dirfd itself, or EFAULT with AT_FDCWD.
    if path == 0 && dirfd != AT_FDCWD_ { return sysFSetattr(t, dirfd, attr) }
    return sysSetattrAt(t, dirfd, path, true, attr)
}

/// Whether two inodes are the same file (hard links may be separate objects).
func sameFile(_ a: Inode, _ b: Inode) -> Bool {
    a === b || (a.ino != 0 && a.ino == b.ino && a.dev == b.dev)
}

/// fsync/fdatasync: a file that has no storage to flush (a pipe, a socket,
/// a character device, an event descriptor) gives EINVAL, as in Linux.
/// sync_file_range(2): the arguments are checked as Linux's ksys_sync_file_range
/// does; the data goes to the backing store as fdatasync sends it.
/// Linux's rw_verify_area for pread64/pwrite64: a negative position, or
/// one the count would carry past the largest offset, is EINVAL.
private func badPosition(_ pos: Int, _ count: Int) -> Bool {
    pos < 0 || (count > 0 && pos.addingReportingOverflow(count).overflow)
}

private func sysSyncFileRange(_ t: Task, _ fd: Int32, _ offset: Int, _ nbytes: Int, _ flags: UInt32) -> Int {
    if flags & ~UInt32(7) != 0 || offset < 0 || nbytes < 0 { return err(EINVAL) }
    if offset.addingReportingOverflow(nbytes).overflow { return err(EINVAL) }
    guard let f = t.fds.getIO(fd) else { return err(EBADF) }
    if f is HostFileFD { return f.sync() }
    guard let i = f.inode, i.isRegular || i.isDir || i.isSymlink else { return err(ESPIPE) }
    return flags == 0 ? 0 : f.sync()
}

private func sysFsync(_ t: Task, _ fd: Int32) -> Int {
    guard let f = t.fds.getIO(fd) else { return err(EBADF) }
    if f is HostFileFD { return f.sync() }
    guard let i = f.inode, i.isRegular || i.isDir else { return err(EINVAL) }
    return f.sync()
}
