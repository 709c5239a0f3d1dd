import CMoat
import Glibc

/// An open file description: shared by dup'd fds and across fork.
/// Subclasses implement the operations their files support.
class FileDescription {
    var flags: Int32
    var offset: Int64 = 0
    var path: Path?
    var refs = 0
    /// Set once a lock was taken through this description.
    var lockKey: FileLocks.Key?
    /// The file this description counts among its writers (Inode.writers),
    /// until its last reference goes (`dropWriter`).
    var countedWriter: Inode?
    func dropWriter() { countedWriter?.writers -= 1; countedWriter = nil }
    /// F_SETOWN / F_SETSIG state (AsyncIO.swift); nil until first set.
    var asyncOwner: AsyncOwner?
    /// What the opener's Landlock domain refused this file for later
    /// (truncation, device ioctls: Landlock.truncate, .ioctlDev); 0 for a
    /// file opened outside any domain.
    var landlockDenied: UInt64 = 0
    /// A descriptor fanotify handed to a listener: nothing done through it
    /// raises an event (Linux's FMODE_NONOTIFY).
    var fsnotifySilent = false
    var inode: Inode? { path?.inode }
    /// A pipe's or socket's own inode (Linux's pipefs/sockfs one), for a
    /// file with no place in the tree: its owner and mode, which fstat
    /// shows and fchown/fchmod change (sysFSetattr). nil: none kept.
    var ownInode: Inode? { nil }

    init(flags: Int32, path: Path?) { self.flags = flags; self.path = path }

    /// Access mode 3 (O_RDWR|O_WRONLY) is neither: open(2) checks read and
    /// write permission and returns a descriptor for ioctls only.
    var readable: Bool { (flags & O_ACCMODE == O_RDONLY || flags & O_ACCMODE == O_RDWR) && flags & O_PATH == 0 }
    var writable: Bool { (flags & O_ACCMODE == O_WRONLY || flags & O_ACCMODE == O_RDWR) && flags & O_PATH == 0 }
    var nonblocking: Bool { flags & O_NONBLOCK != 0 }
    /// F_GETFL: what open(2) or the call that made the description set
    /// (open adds O_LARGEFILE; pipe(2), socket(2) and anonymous files have
    /// none), less O_CLOEXEC, which belongs to the descriptor.
    var statusFlags: Int32 { flags & ~O_CLOEXEC }
    /// statfs's f_type for a description with no inode in the tree: Linux's
    /// anon_inodefs (eventfd, epoll, timerfd, signalfd, inotify).
    var statfsMagic: Int64 { inode?.fsMagic ?? 0x09041934 }

    /// Reads into application memory at `buf`; `off` nil means the file offset.
    func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    func seek(_ off: Int64, _ whence: Int32) -> Int {
        var base: Int64
        switch whence {
        case SEEK_SET: base = 0
        case SEEK_CUR: base = offset
        case SEEK_END: base = fileSize()
        case SEEK_DATA, SEEK_HOLE:
            // No holes are tracked: the whole file is data and the one
            // hole is the implicit one at its end (lseek(2) allows this).
            let size = fileSize()
            if off < 0 || off >= size { return err(ENXIO) }
            offset = whence == SEEK_DATA ? off : size
            return Int(offset)
        default: return err(EINVAL)
        }
        let n = base &+ off
        if n < 0 { return err(EINVAL) }
        offset = n
        return Int(n)
    }
    func fileSize() -> Int64 { (try? inode?.stat().get().size) ?? 0 }
    var seekable: Bool { true }
    /// getdents64 records, or with `legacy` the old getdents's struct
    /// linux_dirent (the type in the record's last byte, after the name).
    func getdents(_ t: Task, _ buf: UInt64, _ count: Int, legacy: Bool = false) -> Int { err(ENOTDIR) }
    func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int { err(ENOTTY) }
    func stat() -> Result<Stat, Errno> { inode?.stat() ?? .failure(Errno(EBADF)) }
    func truncate(_ size: Int64) -> Int { err(EINVAL) }
    func sync() -> Int { 0 }

    /// Poll: the events ready now, with the same bits Linux reports for the
    /// kind of file (POLLRDNORM beside POLLIN and so on; see Poll.swift).
    /// Files without a poll method are always ready (Linux's DEFAULT_POLLMASK).
    func readiness() -> Int16 { Int16(pollReadable | pollWritable) }
    /// A host fd to poll instead, for host-backed streams (stdio).
    var pollHostFD: Int32 { -1 }
    func addWaiter(_ t: Waiter) {}
    func removeWaiter(_ t: Waiter) {}
    /// A counter that moves whenever the file's readiness may have changed
    /// (a wakeup of its wait queue, or an EAGAIN seen on a host-backed
    /// stream); 0 for files that do not count. Edge-triggered epoll uses it
    /// to report a still-ready file again after a change it never observed.
    func wakeups() -> UInt64 { 0 }
    /// The wakeups an epoll entry for `events` counts: a file whose wakeups
    /// carry what they are about (data arrived, room made) leaves out those
    /// about none of the entry's events, as Linux's ep_poll_callback skips a
    /// keyed wakeup that matches none of them.
    func wakeups(for events: UInt32) -> UInt64 { wakeups() }
    /// Joins the wait queues whose wakeups raise this description's I/O
    /// signal (O_ASYNC); false for files without signal-driven I/O (Linux's
    /// files without fasync: FIOASYNC fails there with ENOTTY).
    func registerAsync() -> Bool { false }
    /// The last reference is gone.
    func release() {}
    /// Name for /proc/[pid]/fd links: the path as the reader sees it from
    /// its root (a chrooted reader does not see the directories above).
    func linkName(_ k: Kernel) -> [UInt8] {
        if let p = path { return k.vfs.pathString(p, root: currentTask?.fs.root) + (p.dentry.dead ? Array(" (deleted)".utf8) : []) }
        return Array("anon_inode:[unknown]".utf8)
    }
}

/// Copies a byte buffer to the application at the description's offset semantics.
func readFromBytes(_ t: Task, _ data: UnsafeRawBufferPointer, _ fd: FileDescription, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
    let pos = off ?? fd.offset
    if pos < 0 { return err(EINVAL) }                       // never read before the buffer
    if pos >= data.count { return 0 }
    let n = min(count, data.count - Int(pos))
    if n == 0 { return 0 }
    // Into a buffer that runs into an unmapped page: the bytes before it, as on Linux.
    let w = t.memWrite(buf, data.baseAddress! + Int(pos), n)
    if w <= 0 { return err(EFAULT) }
    if off == nil { fd.offset = pos + Int64(w) }
    return w
}

/// Directory listing shared by every file system: a snapshot taken at open
/// (refreshed at offset 0) and served as linux_dirent64 (or linux_dirent) records.
final class DirectoryFD: FileDescription {
    var entries: [DirEntry]? = nil

    override func getdents(_ t: Task, _ buf: UInt64, _ count: Int, legacy: Bool = false) -> Int {
        guard let ino = inode else { return err(EBADF) }
        if entries == nil || offset == 0 {
            switch ino.readdir() {
            case .success(var e):
                let selfIno = ino.ino
                let parentIno = path?.dentry.parent?.inode.ino ?? selfIno
                e.insert(DirEntry(ino: parentIno, type: 4, name: [46, 46]), at: 0)
                e.insert(DirEntry(ino: selfIno, type: 4, name: [46]), at: 0)
                entries = e
            case .failure(let x): return x.ret
            }
        }
        let all = entries!
        var out = [UInt8]()
        var ends = [Int]()  // where each record ends in out
        var i = Int(offset)
        while i < all.count {
            let e = all[i]
            // linux_dirent64: ino, off, reclen, type, name, NUL.
            // linux_dirent: ino, off, reclen, name, NUL, padding, type.
            let nameAt = legacy ? 18 : 19
            let reclen = (nameAt + e.name.count + (legacy ? 2 : 1) + 7) & ~7
            if out.count + reclen > count { break }
            var rec = [UInt8](repeating: 0, count: reclen)
            put64(&rec, 0, e.ino)
            put64(&rec, 8, UInt64(i + 1))
            rec[16] = UInt8(reclen & 0xff); rec[17] = UInt8(reclen >> 8)
            rec[legacy ? reclen - 1 : 18] = e.type
            rec.replaceSubrange(nameAt..<nameAt + e.name.count, with: e.name)
            out.append(contentsOf: rec)
            ends.append(out.count)
            i += 1
        }
        if out.isEmpty && i < all.count { return err(EINVAL) }
        if !t.copyOut(buf, out) {
            // As Linux, records go out one by one: a buffer that is shorter
            // than the count claims (an unmapped page after it) gets the
            // records that fit, and the next call goes on from there.
            var done = 0, start = 0
            for end in ends {
                if !t.copyOut(buf &+ UInt64(start), Array(out[start..<end])) { break }
                start = end; done += 1
            }
            if done == 0 { return err(EFAULT) }
            offset += Int64(done)
            return start
        }
        offset = Int64(i)
        return out.count
    }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EISDIR) }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EISDIR) }
    override func seek(_ off: Int64, _ whence: Int32) -> Int {
        if whence == SEEK_SET && off >= 0 { offset = off; return Int(off) }
        if whence == SEEK_CUR && offset + off >= 0 { offset += off; return Int(offset) }
        // SEEK_END: from the directory's size, 0 as procfs has it (Linux
        // accepts it there: the next getdents starts over).
        // A tmpfs directory has no end to seek from (Linux's dcache_dir_lseek: EINVAL).
        if whence == SEEK_END && off >= 0 && path?.mount.fsType != "tmpfs" { offset = off; return Int(off) }
        return err(EINVAL)
    }
}

/// A file whose whole content is generated at open (procfs files).
final class BytesFD: FileDescription {
    var data: [UInt8]
    init(data: [UInt8], flags: Int32, path: Path?) { self.data = data; super.init(flags: flags, path: path) }
    /// For generated text (procfs): made at the first read and again at
    /// each read from the start, as a seq_file is, so that a reader that
    /// seeks back sees the present state.
    var generate: ((Task) -> [UInt8])?
    private var generated = false
    /// True once what the file shows is gone (a reaped process's
    /// /proc/PID files): reads are ESRCH.
    var gone: (() -> Bool)?
    /// A counter of changes to what the file shows (a mount namespace's
    /// events for /proc/PID/mounts and mountinfo): poll reports
    /// POLLERR|POLLPRI once for each change past the last one it reported,
    /// as Linux's mounts_poll.
    var changes: (() -> Int)? { didSet { seenChange = changes?() ?? 0 } }
    private var seenChange = 0
    override func readiness() -> Int16 {
        guard let c = changes else { return super.readiness() }
        let now = c()
        if now == seenChange { return Int16(pollReadable) }
        seenChange = now
        return Int16(pollReadable | POLLERR | POLLPRI)
    }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if gone?() == true { return err(ESRCH) }
        if let g = generate, !generated || (off ?? offset) == 0 {
            data = g(t)
            generated = true
        }
        return data.withUnsafeBytes { readFromBytes(t, $0, self, buf, count, off) }
    }
    /// A file a write changes (a few /proc files): it takes the bytes
    /// written, whole, and returns an errno or nil.
    var store: ((Task, [UInt8]) -> Int32?)?
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        guard let store else { return err(EIO) }
        if count > 4096 { return err(EINVAL) }
        guard let b = t.copyIn(buf, count) else { return err(EFAULT) }
        if let e = store(t, b) { return err(e) }
        return count
    }
    override func fileSize() -> Int64 {
        if let g = generate, !generated, let t = currentTask { data = g(t); generated = true }
        return Int64(data.count)
    }
    /// Most procfs files are seq_files: seq_lseek seeks only from the start
    /// or the current offset (EINVAL otherwise).
    var seqFile = true
    override func seek(_ off: Int64, _ whence: Int32) -> Int {
        if seqFile && whence != SEEK_SET && whence != SEEK_CUR { return err(EINVAL) }
        return super.seek(off, whence)
    }
}
