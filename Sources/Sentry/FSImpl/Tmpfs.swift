// tmpfs: files that live in Sentry memory.

import CMoat
import Glibc

private var nextTmpIno: UInt64 = 1000

final class TmpfsInode: Inode {
    var entries: [[UInt8]: Inode] = [:]
    var order: [[UInt8]] = []
    var data: [UInt8] = []
    var target: [UInt8] = []
    let devID: UInt64
    /// Once a regular file is mapped MAP_SHARED its bytes move to a host
    /// memfd (which can be handed to a stub); -1 while they live in `data`.
    /// In an overlay's upper layer with a `store`, a Gofer-made disk file
    /// instead (`onDisk`; FSImpl/UpperStore.swift).
    var memfd: Int32 = -1
    /// Where the upper layer's host files come from (nil: memfds), shared
    /// by the inodes of that layer as `blocks` is.
    var store: UpperStore?
    /// `memfd` is a disk file from `store`.
    var onDisk = false
    /// File seals (memfd_create); tmpfs files start sealed against sealing.
    var seals: UInt32 = F_SEAL_SEAL_
    /// The mount's block limit (size=, nr_blocks=), shared by its inodes;
    /// nil for a tmpfs without one (nothing is counted then).
    var blocks: TmpfsBlocks?
    /// With a limit: the pages of the file that hold blocks (written or
    /// allocated; a truncate up allocates none, as shmem's holes).
    var pages = Set<Int>()

    /// Charges the pages of [start, end) not yet held, all or none
    /// (fallocate): false when the mount lacks room (ENOSPC).
    func allocate(_ start: Int, _ end: Int) -> Bool {
        guard let b = blocks, end > start else { return true }
        let want = (start / 4096..<(end + 4095) / 4096).filter { !pages.contains($0) }
        if !b.take(want.count) { return false }
        pages.formUnion(want)
        return true
    }

    /// How many of `count` bytes from `pos` a write may put: up to the
    /// first page the mount has no room for (a short write; 0: ENOSPC).
    func writable(_ pos: Int, _ count: Int) -> Int {
        guard let b = blocks, count > 0 else { return count }
        var page = pos / 4096
        let last = (pos + count - 1) / 4096
        while page <= last {
            if !pages.contains(page) {
                if !b.take(1) { return max(0, page * 4096 - pos) }
                pages.insert(page)
            }
            page += 1
        }
        return count
    }

    /// Gives back the pages past the first `size` bytes.
    func freePages(past size: Int64) {
        guard let b = blocks, !pages.isEmpty else { return }
        let first = Int(size / 4096) + (size % 4096 == 0 ? 0 : 1)
        let gone = pages.filter { $0 >= first }
        pages.subtract(gone)
        b.used -= gone.count
    }

    deinit {
        if memfd >= 0 { close(memfd) }
        if let b = blocks { b.used -= pages.count }
    }

    /// Moves the file's bytes to a memfd (or the store's disk file) and
    /// returns it (or -errno).
    func promoteToMemfd() -> Int32 {
        if memfd >= 0 { return memfd }
        var fd = store?.newFile() ?? -1
        let disk = fd >= 0
        if !disk {
            fd = hostMemfd("moat-tmpfs")
        }
        if fd < 0 { return -moat_errno() }
        // Sized first, then only the pages holding something are written:
        // zero pages stay holes (no host memory; a SysV segment's shm_rss
        // counts only touched pages, as on Linux).
        // (Not for an empty file: a disk file system may take a truncate
        // to 0 as a file being replaced and write its pages out when it is
        // closed, as ext4's auto_da_alloc does.)
        if !data.isEmpty && ftruncate(fd, off_t(data.count)) != 0 { close(fd); return -EIO }
        var off = 0
        while off < data.count {
            let end = min(off + 4096, data.count)
            let zero = data.withUnsafeBytes { b in b[off..<end].allSatisfy { $0 == 0 } }
            while !zero && off < end {
                let w = data.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress! + off, end - off, off) }
                if w <= 0 { close(fd); return -EIO }
                off += w
            }
            off = end
        }
        memfd = fd
        onDisk = disk
        data = []
        return fd
    }

    /// fallocate's FALLOC_FL_PUNCH_HOLE: the range reads as zeros; the size
    /// stays. EPERM under a write seal. A memfd's data extents in the range
    /// (SEEK_DATA/SEEK_HOLE) are overwritten with zeros: the Sentry's own
    /// confinement does not let it fallocate, and a sparse file's holes
    /// need nothing.
    func punchHole(_ off: Int64, _ len: Int64) -> Int {
        if seals & (F_SEAL_WRITE_ | F_SEAL_FUTURE_WRITE_) != 0 { return err(EPERM) }
        if memfd >= 0 {
            let end = min(off &+ len < off ? Int64.max : off &+ len, Int64(fileLength))
            let zeros = [UInt8](repeating: 0, count: 1 << 16)
            var pos = off
            while pos < end {
                let data = Int64(lseek(memfd, off_t(pos), 3 /* SEEK_DATA */))
                if data < 0 || data >= end { break }
                let hole = min(Int64(lseek(memfd, off_t(data), 4 /* SEEK_HOLE */)), end)
                var p = data
                while p < hole {
                    let n = Int(min(Int64(zeros.count), hole - p))
                    let w = zeros.withUnsafeBytes { Glibc.pwrite(memfd, $0.baseAddress!, n, off_t(p)) }
                    if w <= 0 { return err(EIO) }
                    p += Int64(w)
                }
                pos = max(hole, data + 1)
            }
        }
        let lo = Int(min(off, Int64(data.count))), hi = Int(min(off &+ len < off ? Int64.max : off &+ len, Int64(data.count)))
        if lo < hi { data.withUnsafeMutableBytes { _ = memset($0.baseAddress! + lo, 0, hi - lo) } }
        mtime = nowTimespec(); ctime = mtime
        return 0
    }

    /// Past this size a regular file's bytes live in a memfd (see write).
    static let bigFile = 1 << 20

    /// Maps [pos, pos+count) of the memfd, clipped at its end, read-only
    /// into the Sentry and runs `body` on it: a read then costs one copy
    /// between the file's pages and the application instead of two through
    /// a scratch buffer (the pages exist: mapping them faults nothing new;
    /// writes go through scratch, see TmpfsFileFD.write). nil when there is
    /// no memfd or the mapping fails (the caller then takes the copying
    /// path); else body's result.
    func withMapping(pos: Int, count: Int, _ body: (UnsafeMutableRawPointer, Int) -> Int) -> Int? {
        if memfd < 0 || pos < 0 || count < 0 { return nil }
        let len = fileLength
        if pos >= len { return 0 }
        let n = min(count, len - pos)
        if n == 0 { return body(UnsafeMutableRawPointer(bitPattern: 4096)!, 0) }
        let start = pos & ~4095
        let mapLen = pos + n - start
        let p = mmap(nil, mapLen, PROT_READ, MAP_SHARED, memfd, off_t(start))
        guard let base = p, base != MAP_FAILED else { return nil }
        defer { munmap(base, mapLen) }
        return body(base + (pos - start), n)
    }

    var fileLength: Int {
        if memfd < 0 { return data.count }
        var st = Glibc.stat(); fstat(memfd, &st); return Int(st.st_size)
    }

    init(mode: UInt32, dev: UInt64, uid: UInt32 = 0, gid: UInt32 = 0) {
        nextTmpIno += 1
        devID = dev
        super.init(ino: nextTmpIno, mode: mode, dev: dev)
        self.uid = uid; self.gid = gid
        nlink = mode & S_IFMT_ == S_IFDIR_ ? 2 : 1
    }

    override var size: Int64 {
        if isDir { return 4096 }
        if isSymlink { return Int64(target.count) }
        return Int64(fileLength)
    }
    override var fsMagic: Int64 { 0x01021994 }

    /// tmpfs charges whole pages: st_blocks counts 512-byte units of the
    /// pages a file holds; directories and short (inline) symlinks hold none.
    override func stat() -> Result<Stat, Errno> {
        guard case .success(var s) = super.stat() else { return super.stat() }
        if isRegular && memfd >= 0 && onDisk {
            s.blocks = UpperStore.blocks(memfd, size: Int(s.size))
        } else if isRegular && memfd >= 0 {
            // A memfd is sparse: what its pages hold (a file truncated to
            // Int64.max holds nothing).
            var h = Glibc.stat()
            s.blocks = fstat(memfd, &h) == 0 ? Int64(h.st_blocks) : 0
        } else if isRegular { s.blocks = (s.size + 4095) / 4096 * 8 }
        else if isSymlink { s.blocks = target.count >= 128 ? 8 : 0 }
        else { s.blocks = 0 }
        return .success(s)
    }

    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        if let i = entries[name] { return .success(i) }
        return .failure(Errno(ENOENT))
    }

    override func readdir() -> Result<[DirEntry], Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        return .success(order.compactMap { n in entries[n].map { DirEntry(ino: $0.ino, type: dtype($0.mode), name: n) } })
    }

    private func add(_ name: [UInt8], _ i: Inode) -> Result<Inode, Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        if entries[name] != nil { return .failure(Errno(EEXIST)) }
        entries[name] = i
        order.append(name)
        mtime = nowTimespec(); ctime = mtime
        if i.isDir { nlink += 1 }
        return .success(i)
    }

    /// A new inode of this file system (with its block limit, if any).
    private func child(_ mode: UInt32, _ uid: UInt32, _ gid: UInt32) -> TmpfsInode {
        let i = TmpfsInode(mode: mode, dev: devID, uid: uid, gid: gid)
        i.blocks = blocks
        i.store = store
        return i
    }

    override func create(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32, flags: Int32) -> Result<(Inode, FileDescription?), Errno> {
        add(name, child(S_IFREG_ | (mode & 0o7777), uid, gid)).map { ($0, nil) }
    }
    override func createTmpfile(mode: UInt32, uid: UInt32, gid: UInt32, exclusive: Bool) -> Result<Inode, Errno> {
        let i = child(S_IFREG_ | (mode & 0o7777), uid, gid)
        i.nlink = 0
        return .success(i)
    }
    override func mkdir(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        add(name, child(S_IFDIR_ | (mode & 0o7777), uid, gid))
    }
    override func symlink(_ name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        let i = child(S_IFLNK_ | 0o777, uid, gid)
        i.target = target
        // A target that does not fit in the inode takes a page (shmem's
        // SHORT_SYMLINK_LEN: 128 bytes with its NUL).
        if target.count >= 128, let b = blocks {
            if !b.take(1) { return .failure(Errno(ENOSPC)) }
            i.pages = [0]
        }
        let r = add(name, i)
        if case .failure = r { i.freePages(past: 0) }
        return r
    }
    override func link(_ name: [UInt8], _ target: Inode) -> Result<Inode, Errno> {
        guard let t = target as? TmpfsInode, t.devID == devID else { return .failure(Errno(EXDEV)) }
        if t.isDir { return .failure(Errno(EPERM)) }
        let r = add(name, t)
        if case .success = r { t.nlink += 1; t.ctime = nowTimespec() }
        return r
    }
    override func mknod(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        let fmt = mode & S_IFMT_
        if fmt != S_IFIFO_ && fmt != S_IFREG_ && fmt != S_IFSOCK_ && fmt != 0 { return .failure(Errno(EPERM)) }
        return add(name, child((fmt == 0 ? S_IFREG_ : fmt) | (mode & 0o7777), uid, gid))
    }
    override func mknodDevice(_ name: [UInt8], mode: UInt32, rdev: UInt64, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        let fmt = mode & S_IFMT_
        if fmt != S_IFCHR_ && fmt != S_IFBLK_ { return .failure(Errno(EINVAL)) }
        let i = child(fmt | (mode & 0o7777), uid, gid)
        i.rdev = rdev
        return add(name, i)
    }
    override func unlink(_ name: [UInt8], dir: Bool) -> Result<Void, Errno> {
        guard let i = entries[name] else { return .failure(Errno(ENOENT)) }
        if dir {
            guard let d = i as? TmpfsInode, d.isDir else { return .failure(Errno(ENOTDIR)) }
            if !d.entries.isEmpty { return .failure(Errno(ENOTEMPTY)) }
            nlink -= 1
            d.nlink = 0
        } else {
            if i.isDir { return .failure(Errno(EISDIR)) }
            i.nlink -= 1
            i.ctime = nowTimespec()
            if i.nlink == 0, let t = i as? TmpfsInode, t.isSymlink { t.freePages(past: 0) }
        }
        entries[name] = nil
        order.removeAll { $0 == name }
        mtime = nowTimespec(); ctime = mtime
        return .success(())
    }
    override func rename(_ old: [UInt8], to newDir: Inode, _ new: [UInt8], flags: UInt32) -> Result<Void, Errno> {
        guard let nd = newDir as? TmpfsInode, nd.devID == devID else { return .failure(Errno(EXDEV)) }
        guard let src = entries[old] else { return .failure(Errno(ENOENT)) }
        if flags & 2 != 0 {                                             // RENAME_EXCHANGE
            guard let dst = nd.entries[new] else { return .failure(Errno(ENOENT)) }
            entries[old] = dst
            nd.entries[new] = src
            if src.isDir != dst.isDir && nd !== self {
                let moved: Int64 = src.isDir ? 1 : -1   // directories leaving self
                nlink = UInt64(Int64(nlink) - moved); nd.nlink = UInt64(Int64(nd.nlink) + moved)
            }
            renamed(src, to: nd, dst)
            return .success(())
        }
        if let dst = nd.entries[new] {
            if dst === src { return .success(()) }
            if flags & 1 != 0 { return .failure(Errno(EEXIST)) } // RENAME_NOREPLACE
            if src.isDir {
                guard dst.isDir else { return .failure(Errno(ENOTDIR)) }
                if let d = dst as? TmpfsInode, !d.entries.isEmpty { return .failure(Errno(ENOTEMPTY)) }
            } else if dst.isDir { return .failure(Errno(EISDIR)) }
            _ = nd.unlink(new, dir: dst.isDir)
        }
        entries[old] = nil
        order.removeAll { $0 == old }
        nd.entries[new] = src
        nd.order.append(new)
        if src.isDir && nd !== self { nlink -= 1; nd.nlink += 1 }
        renamed(src, to: nd)
        return .success(())
    }
    /// A rename changes both directories (mtime, ctime) and the moved
    /// objects' ctime, as Linux's shmem_rename2.
    func renamed(_ moved: Inode, to nd: Inode, _ other: Inode? = nil) {
        let now = nowTimespec()
        mtime = now; ctime = now; nd.mtime = now; nd.ctime = now
        moved.ctime = now; other?.ctime = now
    }
    override func readlink() -> Result<[UInt8], Errno> {
        // Reading a link and following it both count as an access.
        if isSymlink { touchAtime() }
        return isSymlink ? .success(target) : .failure(Errno(EINVAL))
    }
    /// relatime (the default mount option): atime moves to now when it is
    /// not after mtime or ctime, or is a day old.
    override func touchAtime() {
        let now = nowTimespec()
        if atime <= mtime || atime <= ctime || now.0 - atime.0 >= 86400 { atime = now }
    }
    override func setattr(_ a: SetAttr) -> Result<Void, Errno> {
        if let s = a.size {
            if isDir { return .failure(Errno(EISDIR)) }
            if s < 0 { return .failure(Errno(EINVAL)) }
            if (s < Int64(fileLength) && seals & F_SEAL_SHRINK_ != 0) || (s > Int64(fileLength) && seals & F_SEAL_GROW_ != 0) {
                return .failure(Errno(EPERM))
            }
            // A file grown past bigFile moves to a host memfd, which is
            // sparse: sizes up to Linux's MAX_LFS_FILESIZE (Int64.max) hold
            // no memory until written.
            if memfd < 0 && s > Int64(TmpfsInode.bigFile) && !isDir {
                let r = promoteToMemfd()
                if r < 0 { return .failure(Errno(-r)) }
            }
            if memfd < 0 && s > 1 << 32 { return .failure(Errno(EFBIG)) }
            if memfd >= 0 {
                if ftruncate(memfd, Int(s)) != 0 { return .failure(Errno(errno)) }
            } else if Int(s) < data.count { data.removeSubrange(Int(s)...) } else { zeroExtend(&data, to: Int(s)) }
            freePages(past: s)
            mtime = nowTimespec()
        }
        return super.setattr(a)
    }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if isDir { return .success(DirectoryFD(flags: flags, path: nil)) }
        if mode & S_IFMT_ == S_IFIFO_ { return fifoOpen(self, t, flags) }
        if mode & S_IFMT_ == S_IFCHR_ || mode & S_IFMT_ == S_IFBLK_ { return openDeviceNode(t, self, flags: flags) }
        // A socket file has no open (Linux's sock_no_open), whatever the flags.
        if mode & S_IFMT_ == S_IFSOCK_ { return .failure(Errno(ENXIO)) }
        // Linux truncates on O_TRUNC even for a read-only open (the caller
        // checked write permission), and stamps the times even when the
        // file was already empty.
        if flags & O_TRUNC != 0 && mode & S_IFMT_ == S_IFREG_ {
            // Truncating shrinks: not past F_SEAL_SHRINK (a memfd reopened
            // through /proc/self/fd), as Linux's shmem_setattr.
            if seals & F_SEAL_SHRINK_ != 0 && fileLength > 0 { return .failure(Errno(EPERM)) }
            data.removeAll()
            if memfd >= 0 { _ = ftruncate(memfd, 0) }
            freePages(past: 0)
            mtime = nowTimespec(); ctime = mtime
        }
        return .success(TmpfsFileFD(node: self, flags: flags))
    }
}

final class TmpfsFileFD: FileDescription {
    let node: TmpfsInode
    init(node: TmpfsInode, flags: Int32) { self.node = node; super.init(flags: flags, path: nil) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !readable { return err(EBADF) }
        if count > 0 && flags & O_NOATIME == 0 && (path?.mount.flags ?? 0) & MountFlags.noatime == 0 { node.touchAtime() }
        if node.memfd >= 0 {
            // A regular file's read returns all it has (not one chunk):
            // mapped and copied once, or through the task's scratch buffer.
            let pos = off ?? offset
            if pos < 0 { return err(EINVAL) }
            // A big read: one pread by the task's stub from the memfd into
            // the application's memory (Task.stubPread).
            if count >= HostFileFD.mappedReadMin, let r = t.stubPread(node.memfd, buf, count, at: Int(pos)) {
                if off == nil { offset = pos + Int64(r) }
                return r
            }
            // A fault part-way returns the bytes before it; none at all, EFAULT.
            if let r = node.withMapping(pos: Int(pos), count: count, { p, n in
                if n == 0 { return 0 }
                let w = t.memWrite(buf, p, n)
                return w > 0 ? w : -1
            }) {
                if r < 0 { return err(EFAULT) }
                if off == nil { offset = pos + Int64(r) }
                return r
            }
            // Not mappable: through the scratch buffer, a chunk at a time.
            var total = 0
            while total < count {
                let n = min(count - total, t.scratch.count)
                let r = t.scratch.withUnsafeMutableBytes { Glibc.pread(node.memfd, $0.baseAddress!, n, Int(pos) + total) }
                if r < 0 { if total == 0 { return err(errno) }; break }
                if !t.scratch.withUnsafeBytes({ t.copyOut(buf &+ UInt64(total), $0.baseAddress!, r) }) {
                    if total == 0 { return err(EFAULT) }; break
                }
                total += r
                if r < n { break }
            }
            if off == nil { offset = pos + Int64(total) }
            return total
        }
        return node.data.withUnsafeBytes { readFromBytes(t, $0, self, buf, count, off) }
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !writable { return err(EBADF) }
        if count == 0 { return 0 }
        if node.seals & (F_SEAL_WRITE_ | F_SEAL_FUTURE_WRITE_) != 0 { return err(EPERM) }
        if node.seals & F_SEAL_GROW_ != 0 && Int((off ?? offset)) + count > node.fileLength { return err(EPERM) }
        if (off ?? offset) < 0 { return err(EINVAL) }                        // never a negative index
        // Past Linux's MAX_LFS_FILESIZE (Int64.max) nothing is written.
        if (off ?? offset) > Int64.max - Int64(count) { return err(EFBIG) }
        // A file growing past bigFile moves to a memfd, which the
        // application's bytes then reach a scratch buffer at a time (below);
        // a memfd is sparse, so a write far past the end (CPython's mmap
        // tests write one byte at 5.6 GB) holds one page. Only a file that
        // could not move is bounded by what `data` can hold. A write big
        // enough for the stub's one-copy pwrite (below) moves the file at
        // once: a new file written 1 MiB at a time had its first MiB copied
        // into `data` and then again into the memfd at the second write.
        // A mount with a block limit: the bytes that fit (ENOSPC for none).
        var count = count
        if node.blocks != nil {
            count = node.writable(flags & O_APPEND != 0 ? node.fileLength : Int(off ?? offset), count)
            if count == 0 { return err(ENOSPC) }
        }
        if node.memfd < 0 && (Int(off ?? offset) + count > TmpfsInode.bigFile || count >= Task.stubWriteMin) {
            _ = node.promoteToMemfd()
        }
        if node.memfd < 0 && ((off ?? offset) > 1 << 32 || count > 1 << 30) { return err(EFBIG) }
        if node.memfd >= 0 {
            var pos = Int(off ?? offset)
            if flags & O_APPEND != 0 { pos = node.fileLength }  // even pwrite appends
            // A big write: one pwrite by the task's stub from the
            // application's memory into the memfd, one copy (pwrite fills
            // new pages without zeroing them, see below).
            if count >= Task.stubWriteMin, let w = t.stubPwrite(node.memfd, buf, count, at: pos) {
                node.mtime = nowTimespec(); node.ctime = node.mtime
                if off == nil { offset = Int64(pos + w) }
                return w
            }
            // process_vm_readv into the task's scratch buffer, then pwrite:
            // two copies, but into memory already mapped and in cache. The
            // one-copy way (map the grown range, copy into the mapping) paid
            // a page fault, a zeroed page and an unmap per 4 KiB of new file
            // and was ~1.8x slower for 1 MiB writes (bench/results/2026-12-06-bytes-write.md);
            // pwrite fills whole new pages without zeroing them. A fault
            // part-way writes the readable prefix, as Linux does.
            var done = 0
            while done < count {
                let n = min(count - done, t.scratch.count)
                let got = t.scratch.withUnsafeMutableBytes { t.memRead(buf &+ UInt64(done), $0.baseAddress!, n) }
                if got <= 0 { break }
                let w = t.scratch.withUnsafeBytes { Glibc.pwrite(node.memfd, $0.baseAddress!, got, pos + done) }
                if w < 0 {
                    if errno == EINTR { continue }
                    if done == 0 { return err(errno) }
                    break
                }
                done += w
                if w < got || got < n { break }
            }
            if done == 0 { return err(EFAULT) }
            node.mtime = nowTimespec(); node.ctime = node.mtime
            if off == nil { offset = Int64(pos + done) }
            return done
        }
        let bytes = t.copyInPrefix(buf, count)
        if bytes.isEmpty { return err(EFAULT) }
        let n = bytes.count
        var pos = Int(off ?? offset)
        if flags & O_APPEND != 0 { pos = node.data.count }
        let end = pos + n
        if end > node.data.count { zeroExtend(&node.data, to: end) }
        node.data.replaceSubrange(pos..<end, with: bytes)
        node.mtime = nowTimespec(); node.ctime = node.mtime
        if off == nil { offset = Int64(end) }
        return n
    }
    override func fileSize() -> Int64 { Int64(node.fileLength) }
    override func truncate(_ size: Int64) -> Int {
        switch node.setattr(SetAttr(size: size)) { case .success: return 0; case .failure(let e): return e.ret }
    }
}

/// Grows `a` with zero bytes to `n` (a memset: appending a repeated element
/// one at a time made a 300 MB fallocate take most of a minute).
func zeroExtend(_ a: inout [UInt8], to n: Int) {
    let extra = n - a.count
    if extra <= 0 { return }
    // No reserveCapacity(n): an exact reservation per write would copy the
    // whole file on every append; append grows the storage geometrically.
    a.append(contentsOf: [UInt8](unsafeUninitializedCapacity: extra) { b, c in
        memset(b.baseAddress!, 0, extra); c = extra
    })
}

/// A tmpfs mount's limits (mount options size= and nr_blocks=, in pages,
/// and nr_inodes=), shared by the inodes of that mount: what they hold is counted
/// and a write or fallocate past it is ENOSPC, as shmem's per-superblock
/// accounting; statfs reports it.
final class TmpfsBlocks {
    /// The limit in pages (nil: none, only nr_inodes= was given; a
    /// reconfiguration may change it).
    var max: Int?
    /// nr_inodes= (statfs's f_files; not enforced).
    var maxInodes: UInt64?
    var used = 0
    init(max: Int?, maxInodes: UInt64? = nil) { self.max = max; self.maxInodes = maxInodes }
    func take(_ n: Int) -> Bool {
        if let m = max, used + n > m { return false }
        used += n
        return true
    }
}

/// A host memfd_create(2) of the Sentry's own (not the application's):
/// the fd, or -1 with errno set. `flags`: MFD_CLOEXEC by default.
func hostMemfd(_ name: String, flags: UInt32 = 1 /* MFD_CLOEXEC */) -> Int32 {
    name.withCString { Int32(truncatingIfNeeded: moat_syscall6(319, Int(bitPattern: $0), Int(flags), 0, 0, 0, 0)) }
}
