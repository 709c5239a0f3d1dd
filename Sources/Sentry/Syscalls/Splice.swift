// sendfile, splice, tee, copy_file_range: data moved between two open
// files without passing through the application.
//
// Every file type already knows how to read into and write from "task
// memory"; a transfer points those paths at a Sentry buffer (Task.bounce)
// and moves the data in steps of at most 64 KiB. Only the first step may
// block; once something has moved, a step that would block ends the call
// with a short count, as Linux does for pipes.

import CMoat
import Glibc

func registerSplice(_ t: SyscallTable) {
    t[40] = sysSendfile
    t[275] = sysSplice
    t[276] = sysTee
    t[326] = sysCopyFileRange
    t[278] = sysVmsplice
}

/// vmsplice: user memory into a pipe (its write end) or out of it (its read
/// end). Moat's pipes hold copies, so this is writev/readv on the pipe, with
/// SPLICE_F_NONBLOCK (2) as O_NONBLOCK; SPLICE_F_GIFT changes nothing.
func sysVmsplice(_ t: Task, _ a: Args) -> Int {
    if a.a3 & ~0xf != 0 { return err(EINVAL) }
    guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
    if a.a2 > 1024 { return err(EINVAL) }                                    // UIO_MAXIOV
    guard let p = f as? PipeFD else { return err(EBADF) }
    let toPipe = !p.isReader || p.alsoWriter
    // Into a pipe: Linux waits for room (a free page) and then moves what
    // fits, never waiting again (a block larger than the pipe returns a
    // short count; writev semantics would wait for a reader for ever).
    if toPipe && a.a3 & 2 == 0 && !f.nonblocking {
        let w = waitPipe(t, p.pipe) { $0.capacity - $0.used >= 4096 || $0.readers == 0 }
        if w < 0 { return w }
    }
    return withNonblocking(t, f, toPipe || a.a3 & 2 != 0) { sysReadv(t, a.int(0), a.a1, a.int(2), nil, write: toPipe) }
}

let SPLICE_F_NONBLOCK_: UInt32 = 2
private let transferStep = 64 * 1024

extension Task {
    /// The Sentry buffer transfers go through (allocated on first use).
    var transferBuffer: UnsafeMutableRawBufferPointer {
        if let b = transferStorage { return b }
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: transferStep, alignment: 16)
        transferStorage = b
        return b
    }
}

/// Moves up to `count` bytes from `src` to `dst`. `inPos`/`outPos` are
/// explicit offsets (updated as data moves) or nil for the files' own
/// offsets. Returns the bytes moved or a negative errno.
func transfer(_ t: Task, _ src: FileDescription, _ inPos: inout Int64?, _ dst: FileDescription, _ outPos: inout Int64?,
              _ count: Int, nonblock: Bool) -> Int {
    let buf = t.transferBuffer
    var done = 0
    while done < count {
        var n = min(count - done, transferStep)
        let mayBlock = done == 0 && !nonblock
        // A pipe destination takes only what fits; wait for room first.
        if let p = dst as? PipeFD {
            let pages = !(src is PipeFD)
            var space = pipeRoom(p.pipe, pages: pages)
            if space == 0 && p.pipe.readers > 0 {
                if !mayBlock { if done == 0 { return err(EAGAIN) }; break }
                let r = waitPipe(t, p.pipe) { pipeRoom($0, pages: pages) > 0 || $0.readers == 0 }
                if r < 0 { return r }
                space = pipeRoom(p.pipe, pages: pages)
            }
            if p.pipe.readers > 0 { n = min(n, space) }
        }
        // A file destination takes no more than RLIMIT_FSIZE allows: checked
        // before the source is read, so a pipe's data stays in the pipe
        // (Linux: EFBIG and SIGXFSZ from the write checks, nothing consumed).
        if !(dst is PipeFD) {
            let lim = fileSizeLimit(t, dst, outPos, n)
            if lim < 0 { return done > 0 ? done : lim }
            n = lim
        }
        // A pipe source gives what it holds (reading blocks only if empty).
        if let p = src as? PipeFD, p.pipe.available > 0 { n = min(n, p.pipe.available) }
        var got = withBounce(t, buf) { addr in
            withNonblocking(t, src, !mayBlock) { src.read(t, addr, n, inPos) }
        }
        if got < 0 {
            if done > 0 { break }
            return (got == err(EAGAIN) && !nonblock && !mayBlock) ? 0 : got
        }
        if got == 0 { break }
        got = selfCopyRun(src, inPos, dst, outPos, buf, got, n)
        let put = withBounce(t, buf) { addr in
            withNonblocking(t, dst, !mayBlock && !(dst is PipeFD)) { dst.write(t, addr, got, outPos) }
        }
        let wrote = max(put, 0)
        if wrote < got {
            // Give back what was read but not written, where that is possible.
            if inPos == nil && src.seekable { _ = src.seek(-Int64(got - wrote), SEEK_CUR) }
        }
        if let p = inPos { inPos = p + Int64(wrote) }
        if let p = outPos { outPos = p + Int64(wrote) }
        if put < 0 { return done > 0 ? done : put }
        done += wrote
        if wrote < got { break }
    }
    return done
}

/// Room in a pipe for a transfer. From a file or socket, Linux fills whole
/// free pipe buffers (a page each; the partly filled last one takes
/// nothing more), so the room is the pages not yet holding data; from
/// another pipe it is bytes.
private func pipeRoom(_ q: Pipe, pages: Bool) -> Int {
    let free = q.capacity - q.available
    if !pages { return free }
    let used = (q.available + 4095) / 4096
    return max(0, q.capacity / 4096 - used) * 4096
}

/// A file copied onto its own end (sendfile(fd, fd, &off, n) with the
/// write position just past what was read): each step reads back the bytes
/// the step before wrote, so the data repeats with the period of the gap.
/// Linux copies it step by step; here one step copies up to `n` bytes of
/// the same repeating content (else a 1-byte gap takes n steps). Returns
/// how many bytes of `buf` to write; the source offset moves to match.
private func selfCopyRun(_ src: FileDescription, _ inPos: Int64?, _ dst: FileDescription, _ outPos: Int64?,
                         _ buf: UnsafeMutableRawBufferPointer, _ got: Int, _ n: Int) -> Int {
    guard got < n, let si = src.inode, si.isRegular, si === dst.inode, inPos != nil || src !== dst else { return got }
    let readEnd = inPos.map { $0 + Int64(got) } ?? src.offset
    guard readEnd == (outPos ?? dst.offset) else { return got }
    var filled = got
    while filled < n {
        let k = min(got, n - filled)
        buf.baseAddress!.advanced(by: filled).copyMemory(from: buf.baseAddress!.advanced(by: filled - got), byteCount: k)
        filled += k
    }
    if inPos == nil { src.offset += Int64(filled - got) }
    return filled
}

/// Runs `body` with the task's memory paths pointed at `buf` (Task.bounce):
/// the address it gets reads and writes the Sentry buffer. Sentry-internal
/// transfers and a core dump's own bytes go through it.
func withBounce(_ t: Task, _ buf: UnsafeMutableRawBufferPointer, _ body: (UInt64) -> Int) -> Int {
    t.bounce = buf
    defer { t.bounce = nil }
    return body(Task.bounceBase)
}

/// Runs `body` with O_NONBLOCK set on `f` when `on`. Safe because a call
/// that cannot block never lets another task see the flag.
private func withNonblocking(_ t: Task, _ f: FileDescription, _ on: Bool, _ body: () -> Int) -> Int {
    if !on || f.flags & O_NONBLOCK != 0 { return body() }
    f.flags |= O_NONBLOCK
    t.keepsKernelLock += 1
    defer { f.flags &= ~O_NONBLOCK; t.keepsKernelLock -= 1 }
    return body()
}

/// Blocks until `ready(pipe)`; -ERESTARTSYS when a signal comes first.
private func waitPipe(_ t: Task, _ p: Pipe, _ ready: (Pipe) -> Bool) -> Int {
    while !ready(p) {
        p.waiters.add(t)
        let r = t.block(deadline: nil)
        p.waiters.remove(t)
        if r == .interrupted && !ready(p) { return -ERESTARTSYS }
    }
    return 0
}

/// Reads an optional loff_t argument.
private func readOffset(_ t: Task, _ addr: UInt64) -> Result<Int64?, Errno> {
    if addr == 0 { return .success(nil) }
    guard let v = t.readU64(addr) else { return .failure(Errno(EFAULT)) }
    let o = Int64(bitPattern: v)
    return o < 0 ? .failure(Errno(EINVAL)) : .success(o)
}

func sysSendfile(_ t: Task, _ a: Args) -> Int {
    guard let out = t.fds.getIO(a.int(0)), let inp = t.fds.getIO(a.int(1)) else { return err(EBADF) }
    if !out.writable || !inp.readable { return err(EBADF) }
    if out.flags & O_APPEND != 0 { return err(EINVAL) }
    if inp is DirectoryFD { return err(EINVAL) }
    var inPos: Int64?
    switch readOffset(t, a.a2) { case .success(let o): inPos = o; case .failure(let e): return e.ret }
    if inPos != nil && !inp.seekable { return err(ESPIPE) }
    // Linux's rw_verify_area: a negative count, or one that runs the read
    // position past the largest offset, is EINVAL.
    if Int64(bitPattern: a.a3) < 0 { return err(EINVAL) }
    if let p = inPos, p.addingReportingOverflow(Int64(bitPattern: a.a3)).overflow { return err(EINVAL) }
    let count = Int(min(a.a3, 0x7fff_f000))
    var outPos: Int64? = nil
    let r = transfer(t, inp, &inPos, out, &outPos, count, nonblock: false)
    notifyTransfer(t, inp, out, r)
    if r >= 0, a.a2 != 0, let p = inPos, !t.writeU64(a.a2, UInt64(p)) { return err(EFAULT) }
    return r
}

func sysSplice(_ t: Task, _ a: Args) -> Int {
    let flags = a.uint(5)
    if flags & ~UInt32(0xf) != 0 { return err(EINVAL) }
    guard let inp = t.fds.getIO(a.int(0)), let out = t.fds.getIO(a.int(2)) else { return err(EBADF) }
    if !inp.readable || !out.writable { return err(EBADF) }
    let inPipe = inp as? PipeFD, outPipe = out as? PipeFD
    if inPipe == nil && outPipe == nil { return err(EINVAL) }
    // Files that carry no byte stream (Linux: no splice_read/splice_write)
    // are refused before anything waits on an empty or full pipe.
    if !carriesBytes(inp) || !carriesBytes(out) { return err(EINVAL) }
    // An unconnected unix socket has no stream to splice (Linux: EINVAL).
    if let u = inp as? UnixSockFD, u.conn == nil { return err(EINVAL) }
    if let i = inPipe, let o = outPipe, i.pipe === o.pipe { return err(EINVAL) }
    if out.flags & O_APPEND != 0 { return err(EINVAL) }
    if (inPipe != nil && a.a1 != 0) || (outPipe != nil && a.a3 != 0) { return err(ESPIPE) }
    var inPos: Int64?, outPos: Int64?
    switch readOffset(t, a.a1) { case .success(let o): inPos = o; case .failure(let e): return e.ret }
    switch readOffset(t, a.a3) { case .success(let o): outPos = o; case .failure(let e): return e.ret }
    if (inPos != nil && !inp.seekable) || (outPos != nil && !out.seekable) { return err(ESPIPE) }
    // Linux's rw_verify_area: a position the count would carry past the largest offset is EINVAL.
    for p in [inPos, outPos] { if let p, p.addingReportingOverflow(Int64(min(a.a4, 0x7fff_f000))).overflow { return err(EINVAL) } }
    let count = Int(min(a.a4, 0x7fff_f000))
    if count == 0 { return 0 }
    let nonblock = flags & SPLICE_F_NONBLOCK_ != 0
    // A pipe source that is empty: nothing moves without blocking.
    if let p = inPipe, p.pipe.available == 0, p.pipe.writers > 0, nonblock || inp.nonblocking { return err(EAGAIN) }
    let r = transfer(t, inp, &inPos, out, &outPos, count, nonblock: nonblock)
    notifyTransfer(t, inp, out, r)
    return r >= 0 ? writeBackOffsets(t, a.a1, inPos, a.a3, outPos) ?? r : r
}

func sysTee(_ t: Task, _ a: Args) -> Int {
    let flags = a.uint(3)
    if flags & ~UInt32(0xf) != 0 { return err(EINVAL) }
    guard let inp = t.fds.getIO(a.int(0)), let out = t.fds.getIO(a.int(1)) else { return err(EBADF) }
    guard let src = inp as? PipeFD, let dst = out as? PipeFD, src.isReader, !dst.isReader, src.pipe !== dst.pipe else {
        return err(EINVAL)
    }
    let count = Int(min(a.a2, 0x7fff_f000))
    if count == 0 { return 0 }
    let nonblock = flags & SPLICE_F_NONBLOCK_ != 0 || src.nonblocking
    let s = src.pipe, d = dst.pipe
    if s.available == 0 {
        if s.writers == 0 { return 0 }
        if nonblock { return err(EAGAIN) }
        let r = waitPipe(t, s) { $0.available > 0 || $0.writers == 0 }
        if r < 0 { return r }
        if s.available == 0 { return 0 }
    }
    if d.readers == 0 {
        t.sendSelfSignal(SIGPIPE)
        return err(EPIPE)
    }
    if d.capacity == d.available {
        if nonblock || dst.nonblocking { return err(EAGAIN) }
        let r = waitPipe(t, d) { $0.capacity > $0.available || $0.readers == 0 }
        if r < 0 { return r }
    }
    let n = min(count, s.available, d.capacity - d.available)
    d.buf.append(contentsOf: s.buf[s.head..<s.head + n])
    d.notify()
    return n
}

func sysCopyFileRange(_ t: Task, _ a: Args) -> Int {
    if a.uint(5) != 0 { return err(EINVAL) }
    guard let inp = t.fds.getIO(a.int(0)), let out = t.fds.getIO(a.int(2)) else { return err(EBADF) }
    if !inp.readable || !out.writable || out.flags & O_APPEND != 0 { return err(EBADF) }
    guard let ii = inp.inode, let oi = out.inode else { return err(EINVAL) }
    if ii.isDir || oi.isDir { return err(EISDIR) }
    if !ii.isRegular || !oi.isRegular { return err(EINVAL) }
    var inPos: Int64?, outPos: Int64?
    switch readOffset(t, a.a1) { case .success(let o): inPos = o; case .failure(let e): return e.ret }
    switch readOffset(t, a.a3) { case .success(let o): outPos = o; case .failure(let e): return e.ret }
    let count = Int(min(a.a4, 0x7fff_f000))
    if sameFile(ii, oi) {
        let i0 = inPos ?? inp.offset, o0 = outPos ?? out.offset
        if i0 < o0 + Int64(count) && o0 < i0 + Int64(count) { return err(EINVAL) }
    }
    let r = transfer(t, inp, &inPos, out, &outPos, count, nonblock: false)
    notifyTransfer(t, inp, out, r)
    return r >= 0 ? writeBackOffsets(t, a.a1, inPos, a.a3, outPos) ?? r : r
}

/// Whether `f` is a byte stream splice can move data from or to: not an
/// event or notification descriptor (epoll, eventfd, timerfd, signalfd,
/// inotify, pidfd, an nsfs file, an fsopen/fspick context), a directory or
/// an O_PATH descriptor.
private func carriesBytes(_ f: FileDescription) -> Bool {
    !(f is EpollFD || f is EventFD || f is TimerFD || f is SignalFD || f is InotifyFD || f is DirectoryFD
        || f is PathFD || f is DummyFD || f is IoUringFD || f is PidFD || f is NamespaceFile || f is FanotifyFD
        || f is UserfaultFD || f is SeccompListener || f is LandlockRulesetFD || f is FSContextFD)
}

private func notifyTransfer(_ t: Task, _ src: FileDescription, _ dst: FileDescription, _ moved: Int) {
    if moved <= 0 { return }
    t.kernel.inotifyFile(src, IN_ACCESS_)
    t.kernel.inotifyFile(dst, IN_MODIFY_)
}

/// Stores the updated loff_t arguments of splice and copy_file_range;
/// nil when that worked, else the error to return.
private func writeBackOffsets(_ t: Task, _ inAddr: UInt64, _ inPos: Int64?, _ outAddr: UInt64, _ outPos: Int64?) -> Int? {
    if inAddr != 0, let p = inPos, !t.writeU64(inAddr, UInt64(p)) { return err(EFAULT) }
    if outAddr != 0, let p = outPos, !t.writeU64(outAddr, UInt64(p)) { return err(EFAULT) }
    return nil
}
