// userfaultfd(2)'s file: the messages of threads waiting on a fault in a
// registered range (read, poll), and the ioctls that register ranges and
// resolve faults. The pages themselves and the fault path are in
// MM/Userfault.swift; the syscall is in Syscalls/Userfaultfd.swift.
//
// Offered: UFFDIO_API, REGISTER (MISSING, WP, MINOR on shared memory),
// UNREGISTER, WAKE, COPY, ZEROPAGE, MOVE, WRITEPROTECT, CONTINUE, POISON;
// the features that shape fault messages (THREAD_ID, EXACT_ADDRESS,
// SIGBUS). Not offered: the non-cooperative events (EVENT_FORK, REMAP,
// REMOVE, UNMAP), hugetlbfs and the asynchronous write protection; asking
// for them is EINVAL as on a kernel without them. The fd works on the
// address space it was made in: from another process (it was passed over a
// socket, or inherited by a fork) its ioctls are EINVAL.

import CMoat
import Glibc

/// UFFD_FEATURE_* bits.
enum UffdFeature {
    static let pagefaultFlagWP: UInt64 = 1 << 0
    static let missingShmem: UInt64 = 1 << 5
    static let sigbus: UInt64 = 1 << 7
    static let threadID: UInt64 = 1 << 8
    static let minorShmem: UInt64 = 1 << 10
    static let exactAddress: UInt64 = 1 << 11
    static let poison: UInt64 = 1 << 14
    static let move: UInt64 = 1 << 16
    static let supported = pagefaultFlagWP | missingShmem | sigbus | threadID | minorShmem | exactAddress | poison | move
}

/// struct uffd_msg (32 bytes): the one event offered, a page fault.
enum UffdMsg {
    static let size = 32
    static let eventPagefault: UInt8 = 0x12
    static let flagWrite: UInt64 = 1, flagWP: UInt64 = 2, flagMinor: UInt64 = 4
}

/// The ioctl numbers (_IOWR/_IOR of type 0xAA and the struct's size).
private enum UffdIoctl {
    static let api: UInt64 = 0xC018_AA3F
    static let register: UInt64 = 0xC020_AA00
    static let unregister: UInt64 = 0x8010_AA01
    static let wake: UInt64 = 0x8010_AA02
    static let copy: UInt64 = 0xC028_AA03
    static let zeropage: UInt64 = 0xC020_AA04
    static let move: UInt64 = 0xC028_AA05
    static let writeProtect: UInt64 = 0xC018_AA06
    static let `continue`: UInt64 = 0xC020_AA07
    static let poison: UInt64 = 0xC020_AA08
    /// UFFDIO_API's answer: the ioctls of the fd (REGISTER, UNREGISTER, API).
    static let apiBits: UInt64 = 1 << 0 | 1 << 1 | 1 << 0x3F
    /// REGISTER's answer: the ioctls of a range (WAKE ... POISON).
    static let rangeBits: UInt64 = 1 << 2 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8
}

final class UserfaultFD: FileDescription {
    /// The address space whose faults this fd hears (weak: its registered
    /// mappings hold the fd).
    private weak var mm: MemoryManager?
    let userModeOnly: Bool
    /// UFFDIO_API done: the features asked for.
    private var apiDone = false
    private(set) var features: UInt64 = 0
    private var released = false

    /// A thread waiting on a fault, and its message until read.
    private final class Fault {
        let task: Task, address: UInt64, flags: UInt64
        var read = false, woken = false
        init(task: Task, address: UInt64, flags: UInt64) { self.task = task; self.address = address; self.flags = flags }
    }
    private var faults: [Fault] = []
    private var readers = WaitQueue()

    init(mm: MemoryManager, flags: Int32, userModeOnly: Bool) {
        self.mm = mm
        self.userModeOnly = userModeOnly
        super.init(flags: flags, path: nil)
    }

    // MARK: The faulting side

    /// Posts the fault of `t` at `addr` and waits until a handler wakes it
    /// (a resolving ioctl, WAKE) or the fd goes; a signal ends the wait
    /// too, and the access faults again after it. Requires: mu held.
    func waitForHandler(_ t: Task, addr: UInt64, flags: UInt64) {
        if released { return }
        let f = Fault(task: t, address: features & UffdFeature.exactAddress != 0 ? addr : pageDown(addr), flags: flags)
        faults.append(f)
        readers.notifyAll()
        while !f.woken && !released {
            if t.block(deadline: nil) == .interrupted { break }
        }
        faults.removeAll { $0 === f }
    }

    /// Wakes the threads waiting on a page of [start, end).
    private func wake(_ start: UInt64, _ end: UInt64) {
        for f in faults where !f.woken && pageDown(f.address) >= start && pageDown(f.address) < end {
            f.woken = true
            f.task.wake()
        }
    }

    // MARK: The handler's side

    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !apiDone || count < UffdMsg.size { return err(EINVAL) }
        while !faults.contains(where: { !$0.read }) {
            if nonblocking { return err(EAGAIN) }
            readers.add(t)
            let r = t.block(deadline: nil)
            readers.remove(t)
            if r == .interrupted && !faults.contains(where: { !$0.read }) { return -ERESTARTSYS }
        }
        var out: [UInt8] = []
        for f in faults where !f.read && out.count + UffdMsg.size <= count {
            var m = [UInt8](repeating: 0, count: UffdMsg.size)
            m[0] = UffdMsg.eventPagefault
            put64(&m, 8, f.flags)
            put64(&m, 16, f.address)
            if features & UffdFeature.threadID != 0 { put32(&m, 24, Int32(f.task.tid)) }
            out += m
            f.read = true
        }
        if !t.copyOut(buf, out) { return err(EFAULT) }
        return out.count
    }

    /// As Linux: an fd before UFFDIO_API, or one without O_NONBLOCK (whose
    /// read may block though poll said it would not: a fault can be woken
    /// before its message is read), polls as an error.
    override func readiness() -> Int16 {
        if !apiDone || !nonblocking { return Int16(POLLERR) }
        return faults.contains(where: { !$0.read }) ? Int16(POLLIN) : 0
    }
    override func addWaiter(_ t: Waiter) { readers.add(t) }
    override func removeWaiter(_ t: Waiter) { readers.remove(t) }
    override func wakeups() -> UInt64 { readers.wakeups }

    override func release() {
        released = true
        for f in faults { f.woken = true; f.task.wake() }
        mm?.unregister(self, by: currentTask)
        readers.notifyAll()
    }

    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 1
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[userfaultfd]".utf8) }

    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == UffdIoctl.api { return api(t, arg) }
        if !apiDone { return err(EINVAL) }
        // The pages are changed by injecting into the address space's stub:
        // only its own threads can (see the file comment).
        guard let mm, mm === t.mm, t.thread.hasStub else { return err(EINVAL) }
        switch cmd {
        case UffdIoctl.register: return register(t, mm, arg)
        case UffdIoctl.unregister, UffdIoctl.wake:
            guard let b = t.copyIn(arg, 16) else { return err(EFAULT) }
            guard let (start, end) = range(mm, get64(b, 0), get64(b, 8)) else { return err(EINVAL) }
            if cmd == UffdIoctl.unregister { mm.unregister(self, start, end, by: t) }
            wake(start, end)
            return 0
        case UffdIoctl.copy, UffdIoctl.move: return copyOrMove(t, mm, arg, move: cmd == UffdIoctl.move)
        case UffdIoctl.zeropage, UffdIoctl.continue, UffdIoctl.poison: return fill(t, mm, arg, cmd)
        case UffdIoctl.writeProtect: return writeProtect(t, mm, arg)
        default: return err(EINVAL)
        }
    }

    /// UFFDIO_API: the handshake, once; it reports every feature offered.
    private func api(_ t: Task, _ arg: UInt64) -> Int {
        guard let b = t.copyIn(arg, 24) else { return err(EFAULT) }
        let want = get64(b, 8)
        if apiDone || get64(b, 0) != 0xAA || want & ~UffdFeature.supported != 0 {
            // Linux clears the answer on failure.
            _ = t.copyOut(arg + 8, [UInt8](repeating: 0, count: 16))
            return err(EINVAL)
        }
        var out = b
        put64(&out, 8, UffdFeature.supported)
        put64(&out, 16, UffdIoctl.apiBits)
        if !t.copyOut(arg, out) { return err(EFAULT) }
        apiDone = true
        features = want
        return 0
    }

    /// A page-aligned, non-empty range of the application's part of the
    /// address space, as [start, end); nil: EINVAL.
    private func range(_ mm: MemoryManager, _ start: UInt64, _ len: UInt64) -> (UInt64, UInt64)? {
        if start & 4095 != 0 || len & 4095 != 0 || len == 0 || start < mm.minAddr { return nil }
        if start &+ len < start || start + len > mm.appTop { return nil }
        return (start, start + len)
    }

    /// Whether [start, end) is wholly mapped and registered with this fd
    /// (for `mode`, when given).
    private func registered(_ mm: MemoryManager, _ start: UInt64, _ end: UInt64, mode: UInt8 = 0) -> Bool {
        mm.fullyMapped(start, end) && mm.vmas[mm.overlapping(start, end)].allSatisfy { $0.uffd === self && $0.uffdMode & mode == mode }
    }

    private func register(_ t: Task, _ mm: MemoryManager, _ arg: UInt64) -> Int {
        guard var b = t.copyIn(arg, 32) else { return err(EFAULT) }
        let rawMode = get64(b, 16)
        if rawMode == 0 || rawMode & ~7 != 0 { return err(EINVAL) }
        let mode = UInt8(rawMode)
        guard let (start, end) = range(mm, get64(b, 0), get64(b, 8)) else { return err(EINVAL) }
        let span = mm.overlapping(start, end)
        if span.isEmpty { return err(ENOMEM) }
        for v in mm.vmas[span] {
            // Anonymous memory or shared memory; minor faults on shared
            // memory only. One fd per range.
            if v.flags & (MAP_ANONYMOUS | MAP_SHARED) == 0 { return err(EINVAL) }
            if mode & UffdMode.minor != 0 && v.flags & MAP_SHARED == 0 { return err(EINVAL) }
            if let other = v.uffd, other !== self { return err(EBUSY) }
        }
        // The pages the host holds already are present: no missing fault,
        // and a fill there is EEXIST.
        let fresh = mm.vmas[span].filter { $0.uffd == nil }.map { (max($0.start, start), min($0.end, end)) }
        for (a, z) in fresh {
            guard let resident = mm.residentPages(t, a, z) else { return err(ENOMEM) }
            for (i, r) in resident.enumerated() where r { mm.markPages(a + UInt64(i) * pageSize, a + UInt64(i + 1) * pageSize, UffdPage.present, on: true) }
        }
        mm.split(at: start)
        mm.split(at: end)
        for i in mm.overlapping(start, end) { mm.vmas[i].uffd = self; mm.vmas[i].uffdMode = mode }
        mm.mergeAdjacent()
        mm.syncHostProt(t, start, end)
        var ioctls = UffdIoctl.rangeBits
        if mode & UffdMode.wp == 0 { ioctls &= ~(1 << 6) }
        if mode & UffdMode.minor == 0 { ioctls &= ~(1 << 7) }
        put64(&b, 24, ioctls)
        return t.copyOut(arg, b) ? 0 : err(EFAULT)
    }

    /// Writes `bytes` into the missing pages at `dst` (same mm as `t`):
    /// writable on the host just for the copy, then as hostProt says.
    private func place(_ t: Task, _ mm: MemoryManager, _ dst: UInt64, _ bytes: [UInt8], wp: Bool) -> Bool {
        let end = dst + UInt64(bytes.count)
        if t.thread.protect(dst, UInt64(bytes.count), prot: PROT_READ | PROT_WRITE) < 0 { return false }
        let ok = t.copyOut(dst, bytes)
        mm.markPages(dst, end, UffdPage.present, on: true)
        if wp { mm.markPages(dst, end, UffdPage.writeProtected, on: true) }
        mm.syncHostProt(t, dst, end)
        return ok
    }

    /// How many leading pages of [start, end) are not present (the run a
    /// fill may take; a present page first is EEXIST).
    private func missingRun(_ mm: MemoryManager, _ start: UInt64, _ end: UInt64, bit: UInt8 = UffdPage.present | UffdPage.poisoned) -> UInt64 {
        var p = start
        while p < end && (mm.uffdPages[p] ?? 0) & bit == 0 { p += pageSize }
        return p - start
    }

    /// Ends a fill of `done` of `len` bytes as Linux: the count (or -errno
    /// when nothing was done) in the struct's result field, EAGAIN for a
    /// short one, the waiters on the filled pages woken.
    private func finish(_ t: Task, _ resultAt: UInt64, _ start: UInt64, _ done: UInt64, _ len: UInt64, error: Int32, wake: Bool) -> Int {
        let value = done > 0 ? Int64(done) : -Int64(error)
        if !t.writeU64(resultAt, UInt64(bitPattern: value)) { return err(EFAULT) }
        if done == 0 { return err(error) }
        if wake { self.wake(start, start + done) }
        return done == len ? 0 : err(EAGAIN)
    }

    /// UFFDIO_COPY and UFFDIO_MOVE (struct: dst, src, len, mode, result).
    private func copyOrMove(_ t: Task, _ mm: MemoryManager, _ arg: UInt64, move: Bool) -> Int {
        guard let b = t.copyIn(arg, 40) else { return err(EFAULT) }
        let dst = get64(b, 0), src = get64(b, 8), len = get64(b, 16), mode = get64(b, 24)
        // COPY: DONTWAKE 1, WP 2; MOVE: DONTWAKE 1, ALLOW_SRC_HOLES 2.
        if mode & ~3 != 0 { return err(EINVAL) }
        guard let (start, end) = range(mm, dst, len), range(mm, src, len) != nil else { return err(EINVAL) }
        // A move's source and destination may not overlap.
        if move && src < end && start < src + len { return err(EINVAL) }
        if !registered(mm, start, end) { return err(ENOENT) }
        if move && !mm.vmas[mm.overlapping(src, src + len)].allSatisfy({ $0.flags & (MAP_ANONYMOUS | MAP_SHARED) == MAP_ANONYMOUS }) {
            return err(EINVAL)
        }
        let n = missingRun(mm, start, end)
        var error = EEXIST
        if n > 0 {
            guard let bytes = t.copyIn(src, Int(n)) else {
                return finish(t, arg + 32, start, 0, len, error: EFAULT, wake: false)
            }
            if !place(t, mm, start, bytes, wp: !move && mode & 2 != 0) { error = EFAULT }
            // A move leaves the source empty, as after MADV_DONTNEED.
            else if move { _ = t.thread.inject(28 /* madvise */, src, n, 4 /* MADV_DONTNEED */); mm.pagesDropped(t, src, src + n) }
        }
        return finish(t, arg + 32, start, error == EFAULT ? 0 : n, len, error: error, wake: mode & 1 == 0)
    }

    /// UFFDIO_ZEROPAGE, CONTINUE and POISON (struct: range, mode, result).
    private func fill(_ t: Task, _ mm: MemoryManager, _ arg: UInt64, _ cmd: UInt64) -> Int {
        guard let b = t.copyIn(arg, 32) else { return err(EFAULT) }
        let mode = get64(b, 16)
        // DONTWAKE 1 for all three; CONTINUE has WP 2 too.
        if mode & ~(cmd == UffdIoctl.continue ? 3 : 1) != 0 { return err(EINVAL) }
        guard let (start, end) = range(mm, get64(b, 0), get64(b, 8)) else { return err(EINVAL) }
        if !registered(mm, start, end, mode: cmd == UffdIoctl.continue ? UffdMode.minor : 0) { return err(ENOENT) }
        let n = missingRun(mm, start, end)
        if n > 0 {
            switch cmd {
            case UffdIoctl.zeropage:
                if !place(t, mm, start, [UInt8](repeating: 0, count: Int(n)), wp: false) {
                    return finish(t, arg + 24, start, 0, end - start, error: EFAULT, wake: false)
                }
            case UffdIoctl.continue:
                // The shared object's page as it is now.
                mm.markPages(start, start + n, UffdPage.present, on: true)
                if mode & 2 != 0 { mm.markPages(start, start + n, UffdPage.writeProtected, on: true) }
                mm.syncHostProt(t, start, start + n)
            default:
                mm.markPages(start, start + n, UffdPage.poisoned, on: true)
                mm.syncHostProt(t, start, start + n)
            }
        }
        return finish(t, arg + 24, start, n, end - start, error: EEXIST, wake: mode & 1 == 0)
    }

    /// UFFDIO_WRITEPROTECT (struct: range, mode: WP 1, DONTWAKE 2).
    private func writeProtect(_ t: Task, _ mm: MemoryManager, _ arg: UInt64) -> Int {
        guard let b = t.copyIn(arg, 24) else { return err(EFAULT) }
        let mode = get64(b, 16)
        if mode & ~3 != 0 || mode == 3 { return err(EINVAL) }
        guard let (start, end) = range(mm, get64(b, 0), get64(b, 8)) else { return err(EINVAL) }
        if !registered(mm, start, end, mode: UffdMode.wp) { return err(ENOENT) }
        mm.markPages(start, end, UffdPage.writeProtected, on: mode & 1 != 0)
        mm.syncHostProt(t, start, end)
        if mode == 0 { wake(start, end) }
        return 0
    }
}
