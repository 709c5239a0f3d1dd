// Linux native AIO: io_setup, io_destroy, io_submit, io_getevents,
// io_pgetevents, io_cancel.
//
// A context is a completion ring in the application's own memory, as on
// Linux: io_setup maps a shared anonymous region ("/[aio] (deleted)" in
// /proc/PID/maps), writes struct aio_ring at its start and returns the
// region's address as the context id. libaio reads that header and reaps
// completions from the ring itself when its magic and features allow, so
// the layout is Linux's: a 32-byte header { id, nr, head, tail, magic,
// compat_features, incompat_features, header_length } followed by `nr`
// struct io_event of 32 bytes { data, obj, res, res2 }. The Sentry keeps
// its own copy of the tail and of the ring's size (the application may
// scribble over the header); the head is the application's, read back and
// reduced modulo the size whenever events are reaped.
//
// Nothing runs in the background: io_submit performs each iocb at once in
// the submitting task's context (its descriptors and credentials, the
// Sentry's own read/write/fsync paths) and posts its completion before it
// returns, signalling the iocb's eventfd (IOCB_FLAG_RESFD). A read of a
// pipe or socket with nothing to read therefore waits inside io_submit, as
// Linux's does for files without asynchronous support; RWF_NOWAIT makes it
// complete with -EAGAIN instead. io_getevents only collects what is in the
// ring and waits (interruptibly, up to its timeout) for another thread's
// submissions. io_cancel finds nothing in flight to cancel (EINVAL, as
// Linux for a request that already completed). IOCB_CMD_POLL is refused
// (EINVAL, as kernels before 4.18): it is the one command whose completion
// would have to come later.
//
// Contexts belong to an address space (MemoryManager): a forked child or an
// exec'd image sees none of its parent's (EINVAL), as on Linux. They are
// counted against fs.aio-max-nr by the nr_events each was asked for.

import CMoat
import Glibc

func registerAIO(_ t: SyscallTable) {
    t[206] = sysIoSetup
    t[207] = { t, a in                                                        // io_destroy
        guard let c = AIOContexts.shared.lookup(t, a.a0) else { return err(EINVAL) }
        AIOContexts.shared.remove(c)
        c.dead = true
        c.waiters.notifyAll()
        _ = t.mm.unmap(t, addr: c.base, len: c.mapLength)
        return 0
    }
    t[209] = sysIoSubmit
    t[208] = { t, a in sysIoGetevents(t, a, withMask: false) }               // io_getevents
    t[333] = { t, a in sysIoGetevents(t, a, withMask: true) }                 // io_pgetevents
    t[210] = { t, a in                                                        // io_cancel
        // The iocb's key first (EFAULT, then EINVAL unless KIOCB_KEY 0),
        // then the context; every request completed at submission, so none
        // is found.
        guard let key = t.readI32(a.a1 &+ 8) else { return err(EFAULT) }
        if key != 0 { return err(EINVAL) }
        guard AIOContexts.shared.lookup(t, a.a0) != nil else { return err(EINVAL) }
        return err(EINVAL)
    }
}

/// fs.aio-max-nr, Linux's default: the most events all contexts together
/// may ask for.
let aioMaxNr: UInt64 = 65536
/// AIO_RING_MAGIC, the header's size, and io_event's size.
private let ringMagic: UInt32 = 0xa10a_10a1
private let ringHeader = 32, eventSize = 32
private let iocbSize = 64

/// One io_setup context.
final class AIOContext {
    /// The address space it belongs to (not kept alive by it).
    weak var mm: MemoryManager?
    let mmID: UInt64
    /// The ring's address (the context id: mremap moves it, as Linux's
    /// aio_ring_mremap) and mapped length.
    var base: UInt64
    let mapLength: UInt64
    /// Slots in the ring (Linux's ctx->nr_events) and what io_setup was asked for (counted against aio-max-nr).
    let nrEvents: UInt32, maxReqs: UInt32
    /// The header's id: the context's slot in its address space's table.
    let slot: UInt32
    /// The Sentry's copy of the ring's tail.
    var tail: UInt32 = 0
    var dead = false
    /// Tasks in io_getevents on this context.
    var waiters = WaitQueue()

    init(mm: MemoryManager, base: UInt64, mapLength: UInt64, nrEvents: UInt32, maxReqs: UInt32, slot: UInt32) {
        self.mm = mm; mmID = mm.id; self.base = base; self.mapLength = mapLength
        self.nrEvents = nrEvents; self.maxReqs = maxReqs; self.slot = slot
    }

    /// The application's head, reduced to the ring (nil when the ring is gone).
    func head(_ t: Task) -> UInt32? {
        t.readI32(base + 8).map { UInt32(bitPattern: $0) % nrEvents }
    }

    /// Completed events not yet reaped.
    func pending(_ t: Task) -> UInt32 {
        guard let h = head(t) else { return 0 }
        return (tail &+ nrEvents &- h) % nrEvents
    }

    /// Posts one completion (Linux's aio_complete): the event at the tail,
    /// then the new tail in the header; the eventfd, then the waiters.
    func complete(_ t: Task, obj: UInt64, data: UInt64, res: Int, resfd: EventFD?) {
        var ev = [UInt8](repeating: 0, count: eventSize)
        put64(&ev, 0, data); put64(&ev, 8, obj); put64(&ev, 16, UInt64(bitPattern: Int64(res)))
        _ = t.copyOut(base + UInt64(ringHeader) + UInt64(tail) * UInt64(eventSize), ev)
        tail = (tail + 1) % nrEvents
        _ = t.writeI32(base + 12, Int32(bitPattern: tail))
        if let e = resfd {
            e.counter = e.counter < UInt64.max - 1 ? e.counter + 1 : e.counter   // eventfd_signal
            e.waiters.notifyAll()
        }
        waiters.notifyAll()
    }

    /// Copies up to `max` events to `out` and moves the head past them
    /// (Linux's aio_read_events_ring): the count, or -EFAULT when the copy
    /// fails (the head stays).
    func reap(_ t: Task, _ out: UInt64, _ max: Int) -> Int {
        guard max > 0, var h = head(t), h != tail else { return 0 }
        var n = 0
        while n < max && h != tail {
            let run = min(Int((h <= tail ? tail : nrEvents) - h), max - n)
            guard let evs = t.copyIn(base + UInt64(ringHeader) + UInt64(h) * UInt64(eventSize), run * eventSize),
                  t.copyOut(out &+ UInt64(n * eventSize), evs) else { return err(EFAULT) }
            n += run
            h = (h + UInt32(run)) % nrEvents
        }
        _ = t.writeI32(base + 8, Int32(bitPattern: h))
        return n
    }
}

/// Every live context, by address space. Requires: Kernel.mu held.
final class AIOContexts {
    static let shared = AIOContexts()
    private var byMM: [UInt64: [AIOContext]] = [:]

    /// Events asked for by live contexts (fs.aio-nr); forgets contexts whose
    /// address space is gone (exit, exec) first.
    var total: UInt64 {
        purge()
        return byMM.values.reduce(0) { $0 + $1.reduce(0) { $0 + UInt64($1.maxReqs) } }
    }

    private func purge() {
        for (k, l) in byMM where l.first?.mm == nil { byMM[k] = nil }
    }

    /// The context `id` names in `t`'s address space, as Linux's
    /// lookup_ioctx: the header's id (read from the application's memory)
    /// picks the slot, whose ring must be at `id`.
    func lookup(_ t: Task, _ id: UInt64) -> AIOContext? {
        guard let l = byMM[t.mm.id], let slot = t.readI32(id) else { return nil }
        return l.first { $0.slot == UInt32(bitPattern: slot) && $0.base == id && !$0.dead }
    }

    /// The live context whose ring is mapped at `addr` in `t`'s address space.
    func ring(_ t: Task, at addr: UInt64) -> AIOContext? {
        byMM[t.mm.id]?.first { $0.base == addr && !$0.dead }
    }

    func add(_ t: Task, make: (UInt32) -> AIOContext?) -> AIOContext? {
        purge()
        let l = byMM[t.mm.id] ?? []
        var slot: UInt32 = 0
        while l.contains(where: { $0.slot == slot }) { slot += 1 }
        guard let c = make(slot) else { return nil }
        byMM[t.mm.id, default: []].append(c)
        return c
    }

    func remove(_ c: AIOContext) {
        byMM[c.mmID]?.removeAll { $0 === c }
        if byMM[c.mmID]?.isEmpty == true { byMM[c.mmID] = nil }
    }
}

/// io_setup(nr_events, ctxp).
func sysIoSetup(_ t: Task, _ a: Args) -> Int {
    guard let old = t.readU64(a.a1) else { return err(EFAULT) }
    let asked = a.uint(0)
    if old != 0 || asked == 0 { return err(EINVAL) }
    // Linux's ioctx_alloc: room for at least four events per CPU, doubled;
    // too many for its ring is EINVAL, none (the doubling wrapped) or more
    // than aio-max-nr EAGAIN; all in Linux's unsigned 32 bits.
    let cpus = UInt32(clamping: max(1, sysconf(Int32(_SC_NPROCESSORS_CONF))))
    let doubled = max(asked, cpus &* 4) &* 2
    if doubled > 0x1000_0000 / UInt32(eventSize) { return err(EINVAL) }
    if doubled == 0 || UInt64(asked) > aioMaxNr || AIOContexts.shared.total + UInt64(asked) > aioMaxNr { return err(EAGAIN) }
    // aio_setup_ring: two slots more, then as many as the pages hold.
    let bytes = UInt64(ringHeader) + (UInt64(doubled) + 2) * UInt64(eventSize)
    let len = pageUp(bytes)
    let nr = UInt32((len - UInt64(ringHeader)) / UInt64(eventSize))
    guard let at = t.mm.findFree(len) else { return err(ENOMEM) }
    let ctx = AIOContexts.shared.add(t) { slot in
        let r = t.mm.mapAnonymous(t, addr: at, len: len, prot: PROT_READ | PROT_WRITE, shared: true, name: "/[aio] (deleted)")
        return r < 0 ? nil : AIOContext(mm: t.mm, base: at, mapLength: len, nrEvents: nr, maxReqs: asked, slot: slot)
    }
    guard let c = ctx else { return err(EAGAIN) }
    var hdr = [UInt8](repeating: 0, count: ringHeader)
    let fields: [UInt32] = [c.slot, nr, 0, 0, ringMagic, 1 /* AIO_RING_COMPAT_FEATURES */, 0, UInt32(ringHeader)]
    for (i, v) in fields.enumerated() { put32(&hdr, 4 * i, Int32(bitPattern: v)) }
    if !t.copyOut(at, hdr) || !t.writeU64(a.a1, at) {
        AIOContexts.shared.remove(c)
        _ = t.mm.unmap(t, addr: at, len: len)
        return err(EFAULT)
    }
    return 0
}

/// io_submit(ctx_id, nr, iocbpp): how many iocbs were submitted, or the
/// first one's error when none was.
func sysIoSubmit(_ t: Task, _ a: Args) -> Int {
    let nr = a.long(1)
    if nr < 0 { return err(EINVAL) }
    guard let c = AIOContexts.shared.lookup(t, a.a0) else { return err(EINVAL) }
    let n = min(nr, Int(c.nrEvents))
    var i = 0, ret = 0
    while i < n {
        guard let p = t.readU64(a.a2 &+ UInt64(i) * 8) else { ret = err(EFAULT); break }
        ret = submitOne(t, c, p)
        if ret != 0 { break }
        i += 1
    }
    return i > 0 ? i : ret
}

/// One iocb, as Linux's io_submit_one and __io_submit_one check it: 0 once
/// its completion is posted, or the error that refused it.
/// struct iocb { u64 aio_data; u32 aio_key; u32 aio_rw_flags; u16
/// aio_lio_opcode; s16 aio_reqprio; u32 aio_fildes; u64 aio_buf; u64
/// aio_nbytes; s64 aio_offset; u64 aio_reserved2; u32 aio_flags; u32
/// aio_resfd }.
private func submitOne(_ t: Task, _ c: AIOContext, _ addr: UInt64) -> Int {
    guard let cb = t.copyIn(addr, iocbSize) else { return err(EFAULT) }
    let rwFlags = get32(cb, 12), opcode = UInt16(cb[16]) | UInt16(cb[17]) << 8
    let reqprio = UInt16(cb[18]) | UInt16(cb[19]) << 8
    let fd = Int32(bitPattern: get32(cb, 20))
    let buf = get64(cb, 24), nbytes = get64(cb, 32), offset = Int64(bitPattern: get64(cb, 40))
    let flags = get32(cb, 56), resfd = Int32(bitPattern: get32(cb, 60))
    if get64(cb, 48) != 0 || Int64(bitPattern: nbytes) < 0 { return err(EINVAL) }   // aio_reserved2; a size past ssize_t
    // A free request: the ring keeps one slot empty (reqs_available).
    if c.pending(t) >= c.nrEvents - 1 { return err(EAGAIN) }
    guard let f = t.fds.getIO(fd) else { return err(EBADF) }
    var eventfd: EventFD? = nil
    if flags & 1 != 0 {                                                       // IOCB_FLAG_RESFD
        guard let e = t.fds.get(resfd) else { return err(EBADF) }
        guard let ev = e as? EventFD else { return err(EINVAL) }
        eventfd = ev
    }
    if !t.writeI32(addr + 8, 0) { return err(EFAULT) }                        // aio_key = KIOCB_KEY
    let res: Int
    switch opcode {
    case 0, 1, 7, 8:                                                          // PREAD, PWRITE, PREADV, PWRITEV
        let write = opcode == 1 || opcode == 8, vectored = opcode >= 7
        if flags & 2 != 0 {                                                   // IOCB_FLAG_IOPRIO: ioprio_check_cap
            let cls = reqprio >> 13, level = reqprio & 0x1fff
            switch cls {
            case 1 where !t.creds.has(Cap.sysNice) && !t.creds.has(Cap.sysAdmin): return err(EPERM)
            case 1, 2: if level >= 8 { return err(EINVAL) }
            case 3: break
            case 0: if level != 0 { return err(EINVAL) }
            default: return err(EINVAL)
            }
        }
        // kiocb_set_rw_flags: unknown RWF_* flags, then APPEND with NOAPPEND.
        if rwFlags & ~0xff != 0 { return err(EOPNOTSUPP) }
        if rwFlags & 0x30 == 0x30 { return err(EINVAL) }
        if write ? !f.writable : !f.readable { return err(EBADF) }
        // The buffer (import_ubuf: in user space) or the vector (import_iovec).
        if vectored {
            if nbytes > 1024 { return err(EINVAL) }
            guard let v = t.copyIn(buf, Int(nbytes) * 16) else { return err(EFAULT) }
            if case .failure(let e) = decodeIovecs(v, count: Int(nbytes)) { return e.ret }
        } else if buf > userAddressEnd || min(nbytes, UInt64(maxRWCount)) > userAddressEnd - buf {
            return err(EFAULT)
        }
        if offset < 0 { return err(EINVAL) }                                  // rw_verify_area
        // A file without a position (pipe, socket) ignores the offset.
        let pos: Int64? = f.seekable ? offset : nil
        // rw_verify_area: at most MAX_RW_COUNT moves (aio_nbytes is any u64).
        let count = Int(min(nbytes, UInt64(maxRWCount)))
        let run = {
            vectored ? sysReadv(t, fd, buf, Int32(nbytes), pos, write: write)
                : write ? sysWrite(t, fd, buf, count, pos) : sysRead(t, fd, buf, count, pos)
        }
        let r = rwFlags & 8 != 0 ? withoutBlocking(t, fd, run) : run()        // RWF_NOWAIT
        // A restart has no meaning in a completion (aio_rw_done): EINTR.
        res = r < -4095 || (r <= -512 && r >= -516) ? err(EINTR) : r
    case 2, 3:                                                                // FSYNC, FDSYNC
        if buf != 0 || offset != 0 || nbytes != 0 || rwFlags != 0 { return err(EINVAL) }
        let h = SyscallTable.shared.handlers[opcode == 3 ? 75 : 74]
        res = h.map { $0(t, Args(a0: UInt64(UInt32(bitPattern: fd)), a1: 0, a2: 0, a3: 0, a4: 0, a5: 0)) } ?? err(EINVAL)
    default:                                                                  // POLL (see the header), NOOP, unknown
        return err(EINVAL)
    }
    c.complete(t, obj: addr, data: get64(cb, 0), res: res, resfd: eventfd)
    return 0
}

/// io_getevents(ctx_id, min_nr, nr, events, timeout) and io_pgetevents
/// (`withMask`: a sixth argument, struct __aio_sigset { const sigset_t
/// *sigmask; size_t sigsetsize }, the mask in force while it waits).
private func sysIoGetevents(_ t: Task, _ a: Args, withMask: Bool) -> Int {
    let minNr = a.long(1), nr = a.long(2)
    // The timeout is relative and not validated: one at or below zero
    // looks once; one past the clock's range waits without end.
    var deadline: Int64? = nil
    if a.a4 != 0 {
        guard let s = t.readU64(a.a4), let ns = t.readU64(a.a4 &+ 8) else { return err(EFAULT) }
        let sec = Int64(bitPattern: s)
        if sec < Int64.max / 1_000_000_000 - 1 {
            deadline = Kernel.now(CLOCK_MONOTONIC) &+ sec &* 1_000_000_000 &+ Int64(bitPattern: ns)
        }
    }
    var mask: UInt64? = nil
    if withMask && a.a5 != 0 {
        guard let p = t.readU64(a.a5), let size = t.readU64(a.a5 &+ 8) else { return err(EFAULT) }
        if p != 0 {
            if size != 8 { return err(EINVAL) }
            guard let m = t.readU64(p) else { return err(EFAULT) }
            mask = m
        }
    }
    if let m = mask { t.setTemporarySignalMask(m) }
    var r = collectEvents(t, a.a0, minNr, nr, a.a3, deadline)
    if r == 0 && t.interruptPending() { r = withMask ? -ERESTARTNOHAND : err(EINTR) }
    if mask != nil && r != -ERESTARTNOHAND { t.restoreSignalMask() }
    return r
}

/// Linux's read_events: events until `minNr` are there, the deadline
/// passes or a signal comes; what was collected (or the error when none).
private func collectEvents(_ t: Task, _ id: UInt64, _ minNr: Int, _ nr: Int, _ out: UInt64, _ deadline: Int64?) -> Int {
    guard let c = AIOContexts.shared.lookup(t, id) else { return err(EINVAL) }
    if minNr < 0 || minNr > nr { return err(EINVAL) }
    var got = 0
    while true {
        let r = c.reap(t, out &+ UInt64(got * eventSize), nr - got)
        if r < 0 { return got > 0 ? got : r }
        got += r
        if c.dead { return got > 0 ? got : err(EINVAL) }
        if got >= minNr { return got }
        if let d = deadline, Kernel.now(CLOCK_MONOTONIC) >= d { return got }
        c.waiters.add(t)
        let b = t.block(deadline: deadline)
        c.waiters.remove(t)
        if b == .interrupted { return got }
    }
}
