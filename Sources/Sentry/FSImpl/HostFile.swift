// Files backed by a host fd: regular files donated by the Gofer, and the
// sandbox's stdio inherited from the launcher. The Sentry never opens these
// by path; it only reads and writes fds it was given.

import CMoat
import Glibc

final class HostFileFD: FileDescription {
    let fd: Int32
    /// Pipes, ttys and sockets: may block, have no offset.
    let isStream: Bool
    let isTTY: Bool
    /// The fd's offset is shared with the world outside the sandbox (stdio
    /// redirected to a file): use the host's offset, not our own.
    var hostOffset = false

    init(fd: Int32, flags: Int32, path: Path?, hostOffset: Bool = false) {
        self.fd = fd
        self.hostOffset = hostOffset
        var st = Glibc.stat()
        fstat(fd, &st)
        let fmt = st.st_mode & S_IFMT
        isStream = fmt == S_IFIFO || fmt == S_IFSOCK || fmt == S_IFCHR
        isTTY = isatty(fd) == 1
        super.init(flags: flags, path: path)
    }

    override var seekable: Bool { !isStream }
    override var statfsMagic: Int64 { inode?.fsMagic ?? 0x01021994 }
    override var pollHostFD: Int32 { isStream ? fd : -1 }
    /// Epoll waiters: a read or write on a host stream (or its EAGAIN) is
    /// the one change of it the Sentry sees; it re-arms edge-triggered
    /// entries (see wakeups(), and InetSocketFD's waiters).
    private var waiters = WaitQueue()
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }
    /// Host streams accept O_ASYNC (no signal is raised).
    override func registerAsync() -> Bool { isStream }

    /// Waits (mu released) until the host fd is ready for `events`.
    private func waitReady(_ t: Task, _ events: Int16) -> Int {
        if nonblocking { return 0 }
        while true {
            var p = [pollfd(fd: fd, events: events, revents: 0)]
            let (r, _) = t.hostPoll(&p, timeoutMs: -1)
            if r == .interrupted { return -ERESTARTSYS }
            if p[0].revents != 0 { return 0 }
        }
    }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !readable { return err(EBADF) }
        if count == 0 { return 0 }
        if isStream || (hostOffset && off == nil) {
            if off != nil { return err(ESPIPE) }
            let w = isStream ? waitReady(t, Int16(POLLIN)) : 0
            if w < 0 { return w }
            let n = min(count, t.scratch.count)
            let r = t.scratch.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, n) }
            if r < 0 {
                let e = errno
                if e == EAGAIN { waiters.notifyAll() }
                return err(e)
            }
            if isStream { waiters.notifyAll() }
            if !t.scratch.withUnsafeBytes({ t.copyOut(buf, $0.baseAddress!, r) }) { return err(EFAULT) }
            return r
        }
        let pos = off ?? offset
        if pos < 0 { return err(EINVAL) }
        // A big read: one pread by the task's stub into the application's
        // memory (Task.stubPread). Only here, with mu held as the stub's
        // kept fds and the VMAs need; preadUnlocked keeps the mapping path
        // so that threads reading files go on without the lock.
        if count >= HostFileFD.mappedReadMin, let r = t.stubPread(fd, buf, count, at: Int(pos)) {
            if off == nil { offset = pos + Int64(r) }
            return r
        }
        let r = readAt(t, buf, count, pos)
        if off == nil && r > 0 { offset = pos + Int64(r) }
        return r
    }

    /// pread64 of a regular file with Kernel.mu given up for the host reads
    /// and the copies to the application (Task.withoutKernelLock), so that
    /// threads reading files do not queue behind each other's copies. The
    /// description is pinned by a reference meanwhile: a close or dup2 by
    /// another thread drops its own reference, not the last one, and the
    /// host fd stays open until ours is dropped, under mu again (as Linux's
    /// fput at the end of the call; the close event follows then). No file
    /// offset is read or moved. Requires: mu held; a readable, seekable
    /// description, `count` > 0 and `pos` >= 0 (sysPread checked them).
    func preadUnlocked(_ t: Task, _ buf: UInt64, _ count: Int, _ pos: Int64) -> Int {
        if isStream || !readable { return read(t, buf, count, pos) }
        refs += 1
        let r = t.withoutKernelLock { readAt(t, buf, count, pos) }
        FDTable.drop(self)
        return r
    }

    /// Reads at `pos` of a regular file into application memory at `buf`;
    /// the bytes read or -errno. Touches no shared state: the host fd, the
    /// task's scratch buffer and its memory, so it may run without mu.
    private func readAt(_ t: Task, _ buf: UInt64, _ count: Int, _ pos: Int64) -> Int {
        var pos = pos
        if count >= HostFileFD.mappedReadMin, let r = mappedRead(t, buf, count, pos) { return r }
        var done = 0
        while done < count {
            let n = min(count - done, t.scratch.count)
            let r = t.scratch.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress!, n, Int(pos)) }
            if r < 0 { if errno == EINTR { continue }; return done > 0 ? done : err(errno) }
            if r == 0 { break }
            // A buffer that runs into an unmapped page takes the bytes
            // before it (the copy stops there), as on Linux.
            let w = t.scratch.withUnsafeBytes { t.memWrite(buf &+ UInt64(done), $0.baseAddress!, r) }
            if w < r {
                done += max(w, 0)
                if done == 0 { return err(EFAULT) }
                pos += Int64(max(w, 0))
                break
            }
            done += r
            pos += Int64(r)
            if r < n { break }
        }
        return done
    }

    /// Reads at least this big map the file instead of going through the
    /// 64 KiB scratch buffer (a mapping costs a few µs; a 64 KiB copy about 5).
    static let mappedReadMin = 256 << 10

    /// A big read of a regular file: [pos, pos+count) clipped at the end of
    /// the file is mapped read-only into the Sentry and copied to the
    /// application in one process_vm_writev, one copy instead of a pread
    /// into scratch and a copy out per 64 KiB. The Sentry never touches the
    /// mapping itself, so a file truncated meanwhile under it only shortens
    /// the copy (the kernel's copy stops at the missing page; no SIGBUS).
    /// nil when the mapping path cannot say (not mappable, nothing copied):
    /// the caller then takes the scratch path, which gives Linux's answer.
    private func mappedRead(_ t: Task, _ buf: UInt64, _ count: Int, _ pos: Int64) -> Int? {
        var st = Glibc.stat()
        if fstat(fd, &st) != 0 || st.st_mode & S_IFMT != S_IFREG { return nil }
        let size = Int64(st.st_size)
        if pos >= size { return nil }
        let n = Int(min(Int64(count), size - pos))
        let start = pos & ~4095
        let mapLen = Int(pos - start) + n
        guard let base = mmap(nil, mapLen, PROT_READ, MAP_SHARED, fd, off_t(start)), base != MAP_FAILED else { return nil }
        defer { munmap(base, mapLen) }
        let w = t.memWrite(buf, base + Int(pos - start), n)
        return w > 0 ? w : nil
    }

    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !writable { return err(EBADF) }
        if count == 0 { return 0 }
        var done = 0
        var pos = off ?? offset
        if !isStream && off == nil && flags & O_APPEND != 0 {
            var st = Glibc.stat(); fstat(fd, &st); pos = Int64(st.st_size)
        }
        // A big write of a regular file: one pwrite by the task's stub from
        // the application's memory (Task.stubPwrite).
        if !isStream && !(hostOffset && off == nil) && count >= Task.stubWriteMin,
           let w = t.stubPwrite(fd, buf, count, at: Int(pos)) {
            if off == nil { offset = pos + Int64(w) }
            return w
        }
        while done < count {
            let n = min(count - done, t.scratch.count)
            let got = t.scratch.withUnsafeMutableBytes { t.memRead(buf &+ UInt64(done), $0.baseAddress!, n) }
            // Ran into unmapped memory: what was written counts (and moves
            // the offset, below); EFAULT only when nothing was.
            if got <= 0 { if done == 0 { return err(EFAULT) }; break }
            var r: Int
            if isStream || (hostOffset && off == nil) {
                let w = isStream ? waitReady(t, Int16(POLLOUT)) : 0
                if w < 0 { return done > 0 ? done : w }
                r = t.scratch.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, got) }
            } else {
                r = t.scratch.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress!, got, Int(pos)) }
            }
            if r < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EPIPE { t.sendSelfSignal(SIGPIPE) }
                if e == EAGAIN && isStream && !nonblocking { continue }
                if e == EAGAIN { waiters.notifyAll() }
                if done == 0 { return err(e) }
                break
            }
            done += r
            pos += Int64(r)
            if isStream { waiters.notifyAll() }
            if r < got { if !isStream { break } }
        }
        if off == nil && !isStream { offset = pos }
        return done
    }

    override func seek(_ off: Int64, _ whence: Int32) -> Int {
        if isStream { return err(ESPIPE) }
        if hostOffset {
            let r = lseek(fd, Int(off), whence)
            return r < 0 ? err(errno) : r
        }
        if whence == SEEK_DATA || whence == SEEK_HOLE {
            let r = lseek(fd, Int(off), whence)
            if r < 0 { return err(errno) }
            offset = Int64(r)
            return Int(r)
        }
        return super.seek(off, whence)
    }

    override func fileSize() -> Int64 {
        var st = Glibc.stat(); fstat(fd, &st); return Int64(st.st_size)
    }

    override func stat() -> Result<Stat, Errno> {
        if let ino = inode, !(ino is StdioInode) { return ino.stat() }
        var st = Glibc.stat()
        if fstat(fd, &st) != 0 { return .failure(Errno(errno)) }
        var s = Stat()
        s.dev = UInt64(st.st_dev); s.ino = UInt64(st.st_ino); s.nlink = UInt64(st.st_nlink)
        s.mode = st.st_mode; s.uid = st.st_uid; s.gid = st.st_gid; s.rdev = UInt64(st.st_rdev)
        s.size = Int64(st.st_size); s.blksize = Int64(st.st_blksize); s.blocks = Int64(st.st_blocks)
        s.atime = (Int64(st.st_atim.tv_sec), Int64(st.st_atim.tv_nsec))
        s.mtime = (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec))
        s.ctime = (Int64(st.st_ctim.tv_sec), Int64(st.st_ctim.tv_nsec))
        if isTTY { s.dev = ConsoleNode.dev; s.ino = ConsoleNode.ino; s.rdev = ConsoleNode.rdev }
        return .success(s)
    }

    override func truncate(_ size: Int64) -> Int {
        if isStream { return err(EINVAL) }
        return ftruncate(fd, Int(size)) == 0 ? 0 : err(errno)
    }
    override func sync() -> Int { isStream ? 0 : (fsync(fd) == 0 ? 0 : err(errno)) }

    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        guard isTTY else {
            if cmd == 0x541B /* FIONREAD */ && isStream {
                var n: Int32 = 0
                if Glibc.ioctl(fd, UInt(0x541B), &n) != 0 { return err(errno) }
                return t.writeI32(arg, n) ? 0 : err(EFAULT)
            }
            return err(ENOTTY)
        }
        return ttyIoctl(t, fd, cmd, arg)
    }

    override func readiness() -> Int16 {
        if !isStream { return Int16(pollReadable | pollWritable) }
        var p = pollfd(fd: fd, events: Int16(pollReadable | pollWritable | POLLPRI), revents: 0)
        _ = poll(&p, 1, 0)
        return p.revents
    }

    override func release() { close(fd) }

    override func linkName(_ k: Kernel) -> [UInt8] {
        if let p = path, !(p.inode is StdioInode) { return k.vfs.pathString(p, root: currentTask?.fs.root) }
        var st = Glibc.stat(); fstat(fd, &st)
        let fmt = st.st_mode & S_IFMT
        if fmt == S_IFIFO { return Array("pipe:[\(st.st_ino)]".utf8) }
        if fmt == S_IFSOCK { return Array("socket:[\(st.st_ino)]".utf8) }
        if isTTY { return Array("/dev/console".utf8) }
        if fmt == S_IFCHR && st.st_rdev == (1 << 8 | 3) { return Array("/dev/null".utf8) }
        return Array("/dev/pts/0".utf8)
    }
}

/// Terminal ioctls on a host tty that is the sandbox's stdio: only a fixed
/// list, each with its argument size known, is passed through.
func ttyIoctl(_ t: Task, _ fd: Int32, _ cmd: UInt64, _ arg: UInt64) -> Int {
    switch cmd {
    case 0x5401: // TCGETS: the kernel's struct termios is 36 bytes (glibc's
        // own is 60, but the ioctl and the application use the kernel's).
        var buf = [UInt8](repeating: 0, count: 36)
        if buf.withUnsafeMutableBytes({ Glibc.ioctl(fd, UInt(cmd), $0.baseAddress!) }) != 0 { return err(errno) }
        return t.copyOut(arg, buf) ? 0 : err(EFAULT)
    case 0x5402, 0x5403, 0x5404: // TCSETS, TCSETSW, TCSETSF
        guard var buf = t.copyIn(arg, 36) else { return err(EFAULT) }
        return buf.withUnsafeMutableBytes({ Glibc.ioctl(fd, UInt(cmd), $0.baseAddress!) }) == 0 ? 0 : err(errno)
    case 0x5413: // TIOCGWINSZ
        var ws = winsize()
        if Glibc.ioctl(fd, UInt(cmd), &ws) != 0 { return err(errno) }
        return withUnsafeBytes(of: &ws) { t.copyOut(arg, $0.baseAddress!, 8) } ? 0 : err(EFAULT)
    case 0x5414: // TIOCSWINSZ
        guard var b = t.copyIn(arg, 8) else { return err(EFAULT) }
        return b.withUnsafeMutableBytes({ Glibc.ioctl(fd, UInt(cmd), $0.baseAddress!) }) == 0 ? 0 : err(errno)
    case 0x540F: // TIOCGPGRP: the sandbox's foreground group is emulated.
        return t.writeI32(arg, t.vpid(t.kernel.foregroundPgid)) ? 0 : err(EFAULT)
    case 0x5410: // TIOCSPGRP
        guard let p = t.readI32(arg) else { return err(EFAULT) }
        t.kernel.foregroundPgid = t.gpid(p)
        return 0
    case 0x5429: // TIOCGSID
        return t.writeI32(arg, t.vpid(t.tg.sid)) ? 0 : err(EFAULT)
    case 0x541B: // FIONREAD
        var n: Int32 = 0
        if Glibc.ioctl(fd, UInt(cmd), &n) != 0 { return err(errno) }
        return t.writeI32(arg, n) ? 0 : err(EFAULT)
    case 0x540E, 0x5422: // TIOCSCTTY, TIOCNOTTY
        return 0
    default:
        return err(ENOTTY)
    }
}

/// The inode behind the launcher-provided stdio fds.
final class StdioInode: Inode {}
