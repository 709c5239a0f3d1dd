// io_uring: a submission ring and a completion ring in memory the
// application maps from the ring's descriptor, processed synchronously.
//
// The rings and the array of submission entries live in one host memfd
// that the Sentry maps once (to read submissions and post completions) and
// that io_uring's mmap offsets map into the application. As on Linux
// (IORING_FEAT_SINGLE_MMAP), both rings share one region with Linux's
// struct io_rings layout, so IORING_OFF_SQ_RING and IORING_OFF_CQ_RING map
// the same pages and a program may reach either ring's fields through
// either mapping (liburing and gVisor's tests map the CQ ring at the SQ
// ring's offset); IORING_OFF_SQES maps the entries' own region. Nothing
// runs in the background: io_uring_enter consumes the entries the caller
// asks for, performs each at once with the Sentry's own read/write paths,
// and posts its completion before it returns, so every completion a wait
// could ask for is already there and the call never sleeps for one. An
// operation on a file with nothing to read or no room to write completes
// with -EAGAIN rather than wait for an event that io_uring_enter would
// have to sleep through (Linux would poll it in the background).
//
// Operations: NOP, READV, WRITEV, FSYNC, READ_FIXED, WRITE_FIXED, SENDMSG,
// RECVMSG, READ and WRITE (with registered buffers for the fixed ones), in
// the submitting task's context (its descriptors, root and credentials);
// any other opcode completes with -EINVAL. No setup flags but CQSIZE and CLAMP, no
// registered files, no SQ polling thread.
//
// Every value the application controls is checked before use: the setup
// sizes (bounded by IORING_MAX_ENTRIES), the mmap offset and length
// against the region's size, ring indexes (masked, and an SQ array entry
// past the ring counts as dropped), and a fixed operation's buffer against
// the registered range it names.

import CMoat
import Glibc

func registerIoUring(_ t: SyscallTable) {
    t[425] = sysIoUringSetup
    t[426] = sysIoUringEnter
    t[427] = sysIoUringRegister
}

/// IORING_MAX_ENTRIES; completion rings may be twice as large.
private let maxEntries: UInt32 = 32768
private let sqeSize = 64, cqeSize = 16
/// Field offsets inside the rings' region (io_sqring_offsets), Linux's:
/// each head and tail on a cache line of its own. The SQ index array
/// follows the completion entries, cache-line aligned (`sqArray`).
private enum SQOff { static let head = 0, tail = 64, mask = 256, entries = 264, dropped = 272, flags = 276 }
/// Field offsets inside the same region (io_cqring_offsets).
private enum CQOff { static let head = 128, tail = 192, mask = 260, entries = 268, flags = 280, overflow = 284, cqes = 320 }
/// Where the SQ index array starts for a CQ ring of `cq` entries.
private func sqArrayOffset(cq: UInt32) -> Int { (CQOff.cqes + Int(cq) * cqeSize + 63) & ~63 }

private let IORING_SETUP_CQSIZE: UInt32 = 8, IORING_SETUP_CLAMP: UInt32 = 16
private let IORING_FEAT_SINGLE_MMAP: UInt32 = 1, IORING_FEAT_SUBMIT_STABLE: UInt32 = 1 << 2, IORING_FEAT_RW_CUR_POS: UInt32 = 1 << 3
private let IORING_ENTER_EXT_ARG: UInt32 = 8

private func roundUpPow2(_ n: UInt32) -> UInt32 {
    var p: UInt32 = 1
    while p < n { p <<= 1 }
    return p
}

private func pageUpInt(_ n: Int) -> Int { (n + 4095) & ~4095 }

final class IoUringFD: FileDescription {
    let sqEntries: UInt32, cqEntries: UInt32
    let memfd: Int32
    /// The Sentry's mapping of the whole memfd.
    private let base: UnsafeMutableRawPointer
    private let total: Int
    /// Regions of the memfd: (offset, length) of the rings and of the SQE array.
    let ringsRegion: (Int, Int), sqesRegion: (Int, Int)
    /// The SQ index array's offset in the rings' region.
    let sqArray: Int
    /// IORING_REGISTER_BUFFERS: (address, length) per buffer index.
    var buffers: [(base: UInt64, len: UInt64)]? = nil

    private init(sq: UInt32, cq: UInt32, memfd: Int32, base: UnsafeMutableRawPointer, total: Int,
                 regions: ((Int, Int), (Int, Int))) {
        sqEntries = sq; cqEntries = cq; self.memfd = memfd; self.base = base; self.total = total
        (ringsRegion, sqesRegion) = regions
        sqArray = sqArrayOffset(cq: cq)
        super.init(flags: O_RDWR, path: nil)
    }

    /// A ring pair of `sq` submission and `cq` completion entries (powers of
    /// two, bounded by the caller), or -errno.
    static func make(sq: UInt32, cq: UInt32) -> Result<IoUringFD, Errno> {
        let ringsLen = pageUpInt(sqArrayOffset(cq: cq) + Int(sq) * 4)
        let sqesLen = pageUpInt(Int(sq) * sqeSize)
        let total = ringsLen + sqesLen
        let fd = hostMemfd("moat-io_uring")
        if fd < 0 { return .failure(Errno(ENOMEM)) }
        guard ftruncate(fd, off_t(total)) == 0 else { close(fd); return .failure(Errno(ENOMEM)) }
        let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let b = p, b != MAP_FAILED else { close(fd); return .failure(Errno(ENOMEM)) }
        let u = IoUringFD(sq: sq, cq: cq, memfd: fd, base: b, total: total,
                          regions: ((0, ringsLen), (ringsLen, sqesLen)))
        u.store(SQOff.mask, sq - 1); u.store(SQOff.entries, sq)
        u.store(CQOff.mask, cq - 1); u.store(CQOff.entries, cq)
        return .success(u)
    }

    override func release() {
        munmap(base, total)
        close(memfd)
    }
    /// Readable while completions wait, writable while the SQ has room
    /// (Linux's io_uring_poll).
    override func readiness() -> Int16 {
        let queued = load(SQOff.tail) &- load(SQOff.head)
        return Int16((ready > 0 ? pollReadable : 0) | (queued < sqEntries ? pollWritable : 0))
    }
    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[io_uring]".utf8) }

    // The offsets below are the Sentry's own (a field of the rings' region,
    // which starts the memfd, or an index already masked to the ring),
    // never an application value.
    private func load(_ off: Int) -> UInt32 { base.load(fromByteOffset: off, as: UInt32.self) }
    private func store(_ off: Int, _ v: UInt32) { base.storeBytes(of: v, toByteOffset: off, as: UInt32.self) }

    /// The memfd region an mmap offset names, if `len` fits in it.
    func region(forMmapOffset off: UInt64, len: UInt64) -> (offset: Int, length: Int)? {
        let r: (Int, Int)
        switch off & 0xf800_0000 {                                              // IORING_OFF_MMAP_MASK, as Linux reads it
        case 0, 0x800_0000: r = ringsRegion      // IORING_OFF_SQ_RING, IORING_OFF_CQ_RING
        case 0x1000_0000: r = sqesRegion         // IORING_OFF_SQES
        default: return nil
        }
        return len <= UInt64(r.1) ? r : nil
    }

    /// Consumes up to `want` submissions (at most a ring's worth, as Linux:
    /// a tail the application moved far ahead cannot make this loop long),
    /// completing each; returns how many.
    func submit(_ t: Task, _ asked: UInt32) -> Int {
        let mask = sqEntries - 1, want = min(asked, sqEntries)
        var head = load(SQOff.head)
        let tail = load(SQOff.tail)
        var done = 0
        while UInt32(done) < want && head != tail {
            let idx = load(sqArray + Int(head & mask) * 4)
            head &+= 1
            store(SQOff.head, head)
            if idx >= sqEntries {                                               // past the SQE array: dropped
                store(SQOff.dropped, load(SQOff.dropped) &+ 1)
                continue
            }
            // A copy of the entry: the application may reuse the slot at once.
            var sqe = [UInt8](repeating: 0, count: sqeSize)
            sqe.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: base + sqesRegion.0 + Int(idx) * sqeSize, count: sqeSize)) }
            let userData = get64(sqe, 32)
            // An entry Linux rejects before issuing it (an unknown opcode or
            // flag) completes with its error and ends the submission: it
            // counts, the entries after it stay queued.
            let malformed = sqe[0] > 58 || sqe[1] & ~0x7f != 0                  // IORING_OP_LAST (6.18): 59
            let res = malformed ? -EINVAL : perform(t, sqe)
            // IOSQE_CQE_SKIP_SUCCESS: no completion for a success.
            if !(sqe[1] & 0x40 != 0 && res >= 0) { post(userData, res) }
            done += 1
            if malformed { break }
        }
        return done
    }

    /// Posts a completion; a full ring counts an overflow (the entry is lost,
    /// as on Linux without IORING_FEAT_NODROP).
    private func post(_ userData: UInt64, _ res: Int32) {
        let head = load(CQOff.head), tail = load(CQOff.tail)
        if tail &- head >= cqEntries {
            store(CQOff.overflow, load(CQOff.overflow) &+ 1)
            return
        }
        let at = CQOff.cqes + Int(tail & (cqEntries - 1)) * cqeSize
        base.storeBytes(of: userData, toByteOffset: at, as: UInt64.self)
        base.storeBytes(of: res, toByteOffset: at + 8, as: Int32.self)
        base.storeBytes(of: UInt32(0), toByteOffset: at + 12, as: UInt32.self)
        store(CQOff.tail, tail &+ 1)
    }

    /// Completions posted and not yet consumed.
    var ready: UInt32 { load(CQOff.tail) &- load(CQOff.head) }

    /// One submission entry, synchronously: its result (a count or -errno).
    private func perform(_ t: Task, _ sqe: [UInt8]) -> Int32 {
        let opcode = sqe[0], sqFlags = sqe[1]
        let fd = Int32(bitPattern: get32(sqe, 4))
        let off = get64(sqe, 8), addr = get64(sqe, 16)
        let len = get32(sqe, 24), opFlags = get32(sqe, 28)
        let bufIndex = Int(UInt16(sqe[40]) | UInt16(sqe[41]) << 8)
        let ioprio = Int32(UInt16(sqe[2]) | UInt16(sqe[3]) << 8)
        if sqFlags & 0x01 != 0 { return -EBADF }                                // IOSQE_FIXED_FILE: no registered files
        if sqFlags & 0x20 != 0 { return -EINVAL }                               // IOSQE_BUFFER_SELECT: no buffer groups
        // -1 (IORING_FEAT_RW_CUR_POS): the file's own position.
        let pos: Int64? = off == UInt64.max ? nil : Int64(bitPattern: off)
        if let p = pos, p < 0 { return -EINVAL }
        // A read or write's I/O priority is checked as ioprio_set's (Linux's io_prep_rw).
        if [1, 2, 4, 5, 22, 23].contains(opcode) && ioprio != 0 {
            let e = checkIoprio(t, ioprio)
            if e != 0 { return Int32(e) }
        }
        let r: Int
        switch opcode {
        case 0:                                                                 // IORING_OP_NOP
            r = 0
        case 1, 2:                                                              // READV, WRITEV
            if opFlags & ~0xff != 0 { return -EOPNOTSUPP }
            if len > 1024 { return -EINVAL }
            r = withoutBlocking(t, fd) { sysReadv(t, fd, addr, Int32(len), pos, write: opcode == 2) }
        case 3:                                                                 // FSYNC (IORING_FSYNC_DATASYNC 1)
            if opFlags & ~1 != 0 { return -EINVAL }
            r = SyscallTable.shared.handlers[opFlags & 1 != 0 ? 75 : 74].map { $0(t, Args(a0: UInt64(UInt32(bitPattern: fd)), a1: 0, a2: 0, a3: 0, a4: 0, a5: 0)) } ?? err(EINVAL)
        case 4, 5:                                                              // READ_FIXED, WRITE_FIXED
            guard let bufs = buffers, bufIndex < bufs.count else { return -EFAULT }
            let b = bufs[bufIndex]
            let (end, over) = addr.addingReportingOverflow(UInt64(len))
            if over || addr < b.base || end > b.base + b.len { return -EFAULT }
            r = withoutBlocking(t, fd) { opcode == 4 ? sysRead(t, fd, addr, Int(len), pos) : sysWrite(t, fd, addr, Int(len), pos) }
        case 9, 10:                                                             // SENDMSG, RECVMSG (msg_flags in op flags)
            r = withoutBlocking(t, fd) { opcode == 9 ? sysSendMsg(t, fd, addr, Int32(bitPattern: opFlags)) : sysRecvMsg(t, fd, addr, Int32(bitPattern: opFlags)) }
        case 22, 23:                                                            // READ, WRITE
            if opFlags != 0 { return -EOPNOTSUPP }
            r = withoutBlocking(t, fd) { opcode == 22 ? sysRead(t, fd, addr, Int(len), pos) : sysWrite(t, fd, addr, Int(len), pos) }
        default:
            return -EINVAL
        }
        // A restart request has no meaning in a completion: interrupted.
        if r < -4095 || (r <= -512 && r >= -516) { return -EINTR }
        return Int32(clamping: r)
    }
}

/// Runs `body` with the descriptor `fd` non-blocking (see the header): a
/// call that cannot block never lets another task see the flag.
func withoutBlocking(_ t: Task, _ fd: Int32, _ body: () -> Int) -> Int {
    guard let f = t.fds.get(fd), f.flags & O_NONBLOCK == 0 else { return body() }
    f.flags |= O_NONBLOCK
    t.keepsKernelLock += 1
    defer { f.flags &= ~O_NONBLOCK; t.keepsKernelLock -= 1 }
    return body()
}

/// io_uring_setup(entries, params).
func sysIoUringSetup(_ t: Task, _ a: Args) -> Int {
    guard var p = t.copyIn(a.a1, 120) else { return err(EFAULT) }
    for i in stride(from: 28, to: 40, by: 4) where get32(p, i) != 0 { return err(EINVAL) }   // resv
    let flags = get32(p, 8)
    if flags & ~(IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP) != 0 { return err(EINVAL) }
    var entries = a.uint(0)
    if entries == 0 { return err(EINVAL) }
    if entries > maxEntries {
        if flags & IORING_SETUP_CLAMP == 0 { return err(EINVAL) }
        entries = maxEntries
    }
    let sq = roundUpPow2(entries)
    var cq = 2 * sq
    if flags & IORING_SETUP_CQSIZE != 0 {
        var want = get32(p, 4)
        if want == 0 { return err(EINVAL) }
        if want > 2 * maxEntries {
            if flags & IORING_SETUP_CLAMP == 0 { return err(EINVAL) }
            want = 2 * maxEntries
        }
        cq = roundUpPow2(want)
        if cq < sq { return err(EINVAL) }
    }
    let u: IoUringFD
    switch IoUringFD.make(sq: sq, cq: cq) { case .success(let x): u = x; case .failure(let e): return e.ret }
    put32(&p, 0, Int32(bitPattern: sq)); put32(&p, 4, Int32(bitPattern: cq))
    put32(&p, 20, Int32(bitPattern: IORING_FEAT_SINGLE_MMAP | IORING_FEAT_SUBMIT_STABLE | IORING_FEAT_RW_CUR_POS))
    let sqOff: [Int] = [SQOff.head, SQOff.tail, SQOff.mask, SQOff.entries, SQOff.flags, SQOff.dropped, u.sqArray]
    let cqOff: [Int] = [CQOff.head, CQOff.tail, CQOff.mask, CQOff.entries, CQOff.overflow, CQOff.cqes, CQOff.flags]
    for i in 40..<120 { p[i] = 0 }
    for (i, v) in sqOff.enumerated() { put32(&p, 40 + 4 * i, Int32(v)) }
    for (i, v) in cqOff.enumerated() { put32(&p, 80 + 4 * i, Int32(v)) }
    if !t.copyOut(a.a1, p) { u.release(); return err(EFAULT) }
    let fd = t.fds.install(u, cloexec: true, limit: fdLimit(t))
    if fd < 0 { u.release() }
    return fd
}

/// io_uring_enter(fd, to_submit, min_complete, flags, argp, argsz).
func sysIoUringEnter(_ t: Task, _ a: Args) -> Int {
    guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let u = f as? IoUringFD else { return err(EOPNOTSUPP) }
    let flags = a.uint(3)
    // GETEVENTS, SQ_WAKEUP and SQ_WAIT (no SQ thread: nothing to do), EXT_ARG.
    if flags & ~UInt32(0xf) != 0 { return err(EINVAL) }
    if a.a4 != 0 {
        if flags & IORING_ENTER_EXT_ARG != 0 ? a.a5 != 24 : a.a5 != 8 { return err(EINVAL) }
        if t.copyIn(a.a4, Int(a.a5)) == nil { return err(EFAULT) }
    }
    // IORING_ENTER_GETEVENTS waits for min_complete completions: every
    // completion is posted by the time submit returns and none comes later,
    // so there is nothing to wait for.
    return u.submit(t, a.uint(1))
}

/// io_uring_register(fd, opcode, arg, nr_args): buffers only.
func sysIoUringRegister(_ t: Task, _ a: Args) -> Int {
    guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let u = f as? IoUringFD else { return err(EOPNOTSUPP) }
    let nr = a.uint(3)
    switch a.uint(1) {
    case 0:                                                                     // IORING_REGISTER_BUFFERS
        if u.buffers != nil { return err(EBUSY) }
        if nr == 0 || nr > 16384 { return err(EINVAL) }
        guard let v = t.copyIn(a.a2, Int(nr) * 16) else { return err(EFAULT) }
        var bufs: [(base: UInt64, len: UInt64)] = []
        for i in 0..<Int(nr) {
            let b = get64(v, 16 * i), l = get64(v, 16 * i + 8)
            // Linux: a NULL base only with a zero length (a sparse slot);
            // otherwise a length of 1 byte to 1 GiB, without wrapping.
            if b == 0 { if l != 0 { return err(EFAULT) } }
            else if l == 0 || l > 1 << 30 { return err(EFAULT) }
            else if b.addingReportingOverflow(l + 4095).overflow { return err(EOVERFLOW) }
            bufs.append((b, l))
        }
        u.buffers = bufs
        return 0
    case 1:                                                                     // IORING_UNREGISTER_BUFFERS
        if a.a2 != 0 || nr != 0 { return err(EINVAL) }
        if u.buffers == nil { return err(ENXIO) }
        u.buffers = nil
        return 0
    default:
        return err(EINVAL)
    }
}
