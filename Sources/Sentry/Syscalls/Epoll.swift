// epoll and eventfd.
//
// Level-triggered readiness comes from each file's readiness(), the same
// source poll uses. An edge-triggered entry reports what is ready when a
// bit rose since the previous look, or when the file was woken since the
// entry's last report (its wakeups() moved): as on Linux, where each wakeup
// of the file re-arms the entry. The second rule catches the edge a waiter
// never saw, e.g. a full pipe drained while the epoll waiter slept.
// EPOLLONESHOT disables an entry after one report.

import CMoat
import Glibc

let EPOLLET_: UInt32 = 1 << 31
let EPOLLONESHOT_: UInt32 = 1 << 30
let EPOLLEXCLUSIVE_: UInt32 = 1 << 28
let EPOLLWAKEUP_: UInt32 = 1 << 29

final class EpollFD: FileDescription {
    struct Interest {
        var file: FileDescription
        var events: UInt32
        var data: UInt64
        var disabled = false
        var lastReported: UInt32 = 0
        /// file.wakeups() at the last report.
        var seenWakeups: UInt64
        init(file: FileDescription, events: UInt32, data: UInt64) {
            self.file = file; self.events = events; self.data = data; seenWakeups = file.wakeups(for: events)
        }
        /// Woken since the last report: everything ready counts as new.
        var rearmed: Bool { file.wakeups(for: events) != seenWakeups }
    }
    /// Keyed by fd number and description, as Linux keys (fd, file).
    var interest: [Int32: Interest] = [:]
    var waiters = WaitQueue()

    init(flags: Int32) { super.init(flags: flags, path: nil) }

    override var seekable: Bool { false }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }

    /// Whether `other` is this instance or watched by it, directly or
    /// through nested instances.
    func reaches(_ other: EpollFD, _ seen: inout Set<ObjectIdentifier>) -> Bool {
        if self === other { return true }
        if !seen.insert(ObjectIdentifier(self)).inserted { return false }
        return interest.values.contains { ($0.file as? EpollFD)?.reaches(other, &seen) ?? false }
    }

    func reaches(_ other: EpollFD) -> Bool {
        var seen = Set<ObjectIdentifier>()
        return reaches(other, &seen)
    }

    /// The epoll instances that added this one (weak; an entry counts while
    /// it is still in that instance's interest list).
    private struct Watcher { weak var ep: EpollFD? }
    private var watchers: [Watcher] = []

    private func watches(_ inner: EpollFD) -> Bool {
        refs > 0 && interest.values.contains { $0.file === inner && $0.file.refs > 0 }
    }

    /// Levels of epoll instances from here down (1: watches no instance).
    /// `memo` keeps each instance's answer: fan-in must not blow up.
    func depthDown(_ memo: inout [ObjectIdentifier: Int]) -> Int {
        if let d = memo[ObjectIdentifier(self)] { return d }
        var d = 1
        for i in interest.values where i.file.refs > 0 {
            if let inner = i.file as? EpollFD { d = max(d, 1 + inner.depthDown(&memo)) }
        }
        memo[ObjectIdentifier(self)] = d
        return d
    }

    /// Levels of epoll instances from here up (1: no instance watches it).
    func depthUp(_ memo: inout [ObjectIdentifier: Int]) -> Int {
        if let d = memo[ObjectIdentifier(self)] { return d }
        watchers.removeAll { $0.ep.map { !$0.watches(self) } ?? true }
        var d = 1
        for w in watchers { if let ep = w.ep { d = max(d, 1 + ep.depthUp(&memo)) } }
        memo[ObjectIdentifier(self)] = d
        return d
    }

    /// Adds `inner` to this instance's interest list unless that makes a
    /// cycle or a path of more than five instances, which Linux refuses with
    /// ELOOP (its EP_MAX_NESTS: four levels below the outermost).
    func canWatch(_ inner: EpollFD) -> Bool {
        if inner.reaches(self) { return false }
        var up = [ObjectIdentifier: Int](), down = [ObjectIdentifier: Int]()
        return depthUp(&up) + inner.depthDown(&down) <= 5
    }

    func noteWatched(by outer: EpollFD) { watchers.append(Watcher(ep: outer)) }

    /// Drops entries whose description was closed everywhere.
    func prune() {
        let gone = interest.compactMap { $0.value.file.refs > 0 ? nil : $0.key }
        if gone.isEmpty { return }
        for fd in gone { interest[fd] = nil }
        keysGeneration += 1
    }

    /// Ready entries now, as (fd, events) with ET/ONESHOT applied.
    /// The scan starts after the last entry reported: with more ready
    /// entries than a wait takes, each gets its turn (Linux moves reported
    /// entries to the tail of its ready list).
    private var resumeAfter: Int32 = -1

    /// The interest's fds in order, kept between waits while the set does
    /// not change (a wait over many entries sorted them all every time).
    private var sortedKeys: [Int32] = []
    private var sortedGeneration = -1
    /// Bumped whenever an fd joins or leaves the interest.
    var keysGeneration = 0

    func collect(max: Int) -> [(UInt32, UInt64)] {
        prune()
        var out: [(UInt32, UInt64)] = []
        if sortedGeneration != keysGeneration { sortedKeys = interest.keys.sorted(); sortedGeneration = keysGeneration }
        let keys = sortedKeys
        let first = keys.firstIndex { $0 > resumeAfter } ?? 0
        for k in keys.indices {
            let fd = keys[(first + k) % keys.count]
            guard var e = interest[fd], !e.disabled else { continue }
            let want = (e.events & 0xffff) | UInt32(POLLERR | POLLHUP)
            let now = UInt32(UInt16(bitPattern: e.file.readiness())) & want
            var report = now
            if e.events & EPOLLET_ != 0 && !e.rearmed { report = now & ~e.lastReported }
            e.lastReported = now
            if report != 0 && out.count < max {
                out.append((report, e.data))
                resumeAfter = fd
                e.seenWakeups = e.file.wakeups(for: e.events)
                if e.events & EPOLLONESHOT_ != 0 { e.disabled = true }
            } else if report != 0 {
                e.lastReported = now & ~report // not reported yet: keep it pending
            }
            interest[fd] = e
        }
        return out
    }

    override func readiness() -> Int16 {
        prune()
        for e in interest.values where !e.disabled {
            let want = (e.events & 0xffff) | UInt32(POLLERR | POLLHUP)
            if UInt32(UInt16(bitPattern: e.file.readiness())) & want != 0 { return Int16(pollReadable) }
        }
        return 0
    }
    override func addWaiter(_ t: Task) { waiters.add(t); for e in interest.values { e.file.addWaiter(t) } }
    override func removeWaiter(_ t: Task) { waiters.remove(t); for e in interest.values { e.file.removeWaiter(t) } }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 2
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[eventpoll]".utf8) }
}

func registerEpoll(_ t: SyscallTable) {
    t[213] = { t, a in a.int(0) <= 0 ? err(EINVAL) : newEpoll(t, 0) }                  // epoll_create
    t[291] = { t, a in a.int(0) & ~O_CLOEXEC != 0 ? err(EINVAL) : newEpoll(t, a.int(0)) } // epoll_create1
    t[233] = sysEpollCtl
    t[232] = { t, a in sysEpollWait(t, a.int(0), a.a1, a.int(2), a.int(3) < 0 ? nil : Int64(a.int(3)) * 1_000_000, sigmask: 0) } // epoll_wait
    t[281] = { t, a in sysEpollWait(t, a.int(0), a.a1, a.int(2), a.int(3) < 0 ? nil : Int64(a.int(3)) * 1_000_000, sigmask: a.a4) } // epoll_pwait
    t[441] = { t, a in                                                                  // epoll_pwait2
        var timeout: Int64? = nil
        if a.a3 != 0 {
            switch readTimespecArg(t, a.a3) {
            case .success(let (sec, ns)): timeout = sec > 1 << 32 ? Int64.max / 4 : sec * 1_000_000_000 + ns
            case .failure(let e): return e.ret
            }
        }
        return sysEpollWait(t, a.int(0), a.a1, a.int(2), timeout, sigmask: a.a4)
    }
    t[290] = { t, a in                                                                  // eventfd2
        let flags = a.int(1)
        if flags & ~(O_CLOEXEC | O_NONBLOCK | 1) != 0 { return err(EINVAL) }
        let f = EventFD(initial: UInt64(a.uint(0)), flags: O_RDWR | (flags & O_NONBLOCK), semaphore: flags & 1 != 0)
        let fd = t.fds.install(f, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
        if fd < 0 { f.release() }
        return fd
    }
    t[283] = { t, a in                                                                  // timerfd_create
        let clock = a.int(0), flags = a.int(1)
        if ![0, 1, 7, 8, 9].contains(clock) { return err(EINVAL) }
        if flags & ~(O_CLOEXEC | O_NONBLOCK) != 0 { return err(EINVAL) }
        let f = TimerFD(kernel: t.kernel, clock: clockid_t(clock), flags: O_RDWR | (flags & O_NONBLOCK))
        let fd = t.fds.install(f, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
        if fd < 0 { f.release() }
        return fd
    }
    t[286] = { t, a in                                                                  // timerfd_settime
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        guard let tf = f as? TimerFD else { return err(EINVAL) }
        let flags = a.int(1)
        if flags & ~Int32(3) != 0 { return err(EINVAL) }
        guard let b = t.copyIn(a.a2, 32) else { return err(EFAULT) }
        let isec = Int64(bitPattern: get64(b, 0)), insec = Int64(bitPattern: get64(b, 8))
        let vsec = Int64(bitPattern: get64(b, 16)), vnsec = Int64(bitPattern: get64(b, 24))
        if isec < 0 || vsec < 0 || insec < 0 || insec >= 1_000_000_000 || vnsec < 0 || vnsec >= 1_000_000_000 { return err(EINVAL) }
        if a.a3 != 0 { let r = writeItimerspec(t, a.a3, tf); if r != 0 { return r } }
        var value = min(vsec, 1 << 32) * 1_000_000_000 + vnsec
        let interval = min(isec, 1 << 32) * 1_000_000_000 + insec
        if flags & 1 != 0 && value > 0 { // TFD_TIMER_ABSTIME: value is on the timer's clock
            value = max(1, value - Kernel.now(tf.clock))
        }
        tf.arm(value: value, interval: interval)
        return 0
    }
    t[287] = { t, a in                                                                  // timerfd_gettime
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        guard let tf = f as? TimerFD else { return err(EINVAL) }
        return writeItimerspec(t, a.a1, tf)
    }
    t[289] = { t, a in sysSignalfd(t, a.int(0), a.a1, a.a2, a.int(3)) }                 // signalfd4
    t[282] = { t, a in sysSignalfd(t, a.int(0), a.a1, a.a2, 0) }                        // signalfd
    t[284] = { t, a in                                                                  // eventfd
        let f = EventFD(initial: UInt64(a.uint(0)), flags: O_RDWR, semaphore: false)
        return t.fds.install(f, cloexec: false, limit: fdLimit(t))
    }
}

private func newEpoll(_ t: Task, _ flags: Int32) -> Int {
    t.fds.install(EpollFD(flags: O_RDWR), cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
}

func sysEpollCtl(_ t: Task, _ a: Args) -> Int {
    let epfd = a.int(0), op = a.int(1), fd = a.int(2)
    guard let ep = t.fds.getIO(epfd) else { return err(EBADF) }
    guard let target = t.fds.getIO(fd) else { return err(EBADF) }
    guard let e = ep as? EpollFD else { return err(EINVAL) }
    if fd == epfd || target === ep { return err(EINVAL) }
    // Regular files and directories are always ready: Linux refuses them.
    // So are mem's null, zero and full, which have no poll in Linux either.
    if target is TmpfsFileFD || target is DirectoryFD || target is BytesFD || (target as? HostFileFD).map({ !$0.isStream }) == true
        || (target as? DeviceFD).map({ [.null, .zero, .full].contains($0.kind) }) == true {
        return err(EPERM)
    }
    var events: UInt32 = 0, data: UInt64 = 0
    if op != 2 {
        guard let b = t.copyIn(a.a3, 12) else { return err(EFAULT) }
        events = get32(b, 0)
        data = get64(b, 4)
    }
    // Only this fd's entry can matter here: an entry whose description was
    // closed everywhere is gone (a whole prune per call made registering N
    // descriptors cost N^2: CPython's test_selectors registers 65,000).
    if let old = e.interest[fd], old.file.refs == 0 { e.interest[fd] = nil; e.keysGeneration += 1 }
    switch op {
    case 1: // EPOLL_CTL_ADD
        if e.interest[fd] != nil { return err(EEXIST) }
        if let inner = target as? EpollFD {
            if events & EPOLLEXCLUSIVE_ != 0 { return err(EINVAL) }
            if !e.canWatch(inner) { return err(ELOOP) }
            inner.noteWatched(by: e)
        }
        e.interest[fd] = EpollFD.Interest(file: target, events: events, data: data)
        e.keysGeneration += 1
    case 2: // EPOLL_CTL_DEL
        if e.interest.removeValue(forKey: fd) == nil { return err(ENOENT) }
        e.keysGeneration += 1
    case 3: // EPOLL_CTL_MOD
        guard e.interest[fd] != nil else { return err(ENOENT) }
        if events & EPOLLEXCLUSIVE_ != 0 { return err(EINVAL) }
        e.interest[fd] = EpollFD.Interest(file: target, events: events, data: data)
    default:
        return err(EINVAL)
    }
    e.waiters.notifyAll()
    return 0
}

func sysEpollWait(_ t: Task, _ epfd: Int32, _ events: UInt64, _ maxEvents: Int32, _ timeout: Int64?, sigmask: UInt64) -> Int {
    guard let f = t.fds.get(epfd) else { return err(EBADF) }
    guard let ep = f as? EpollFD else { return err(EINVAL) }
    if maxEvents <= 0 || maxEvents > (Int32.max / 12) { return err(EINVAL) }
    if sigmask != 0 {
        guard let m = t.readU64(sigmask) else { return err(EFAULT) }
        t.setTemporarySignalMask(m)
    }
    let deadline = timeout.map { Kernel.now(CLOCK_MONOTONIC) &+ $0 }
    var interrupted = false
    while true {
        let ready = ep.collect(max: Int(maxEvents))
        if !ready.isEmpty {
            var b = [UInt8](repeating: 0, count: ready.count * 12)
            for (i, r) in ready.enumerated() {
                put32(&b, i * 12, Int32(bitPattern: r.0))
                put64(&b, i * 12 + 4, r.1)
            }
            if sigmask != 0 { t.restoreSignalMask() }
            return t.copyOut(events, b) ? ready.count : err(EFAULT)
        }
        if interrupted { return -ERESTARTNOHAND }
        if let d = deadline, Kernel.now(CLOCK_MONOTONIC) >= d {
            if sigmask != 0 { t.restoreSignalMask() }
            return 0
        }
        // Host-backed files (stdio, inet sockets) among the interest: wait in
        // a host poll. For edge-triggered entries only the events not yet
        // reported: a still-ready host fd would end the poll at once, again
        // and again, and the wait would spin.
        let host = ep.interest.values.compactMap { e -> pollfd? in
            guard e.file.pollHostFD >= 0 && !e.disabled else { return nil }
            var ev = e.events & 0xffff
            if e.events & EPOLLET_ != 0 && !e.rearmed {
                ev &= ~e.lastReported
                if e.lastReported & UInt32(POLLHUP | POLLERR) != 0 || ev == 0 { return nil }
            }
            return pollfd(fd: e.file.pollHostFD, events: Int16(truncatingIfNeeded: ev), revents: 0)
        }
        ep.addWaiter(t)
        var r: Task.BlockResult
        if !host.isEmpty {
            var pfds = host
            var ms: Int32 = -1
            if let d = deadline { ms = Int32(clamping: max(0, (d - Kernel.now(CLOCK_MONOTONIC) + 999_999) / 1_000_000)) }
            r = t.hostPoll(&pfds, timeoutMs: ms).0
        } else {
            r = t.block(deadline: deadline)
        }
        ep.removeWaiter(t)
        if r == .interrupted { interrupted = true }
    }
}

func writeItimerspec(_ t: Task, _ addr: UInt64, _ tf: TimerFD) -> Int {
    tf.update()
    let left = tf.deadline > 0 ? max(1, tf.deadline - Kernel.now(CLOCK_MONOTONIC)) : 0
    var b = [UInt8](repeating: 0, count: 32)
    put64(&b, 0, UInt64(tf.interval / 1_000_000_000)); put64(&b, 8, UInt64(tf.interval % 1_000_000_000))
    put64(&b, 16, UInt64(left / 1_000_000_000)); put64(&b, 24, UInt64(left % 1_000_000_000))
    return t.copyOut(addr, b) ? 0 : err(EFAULT)
}

func sysSignalfd(_ t: Task, _ fd: Int32, _ maskAddr: UInt64, _ size: UInt64, _ flags: Int32) -> Int {
    if size != 8 { return err(EINVAL) }
    if flags & ~(O_CLOEXEC | O_NONBLOCK) != 0 { return err(EINVAL) }
    guard let m = t.readU64(maskAddr) else { return err(EFAULT) }
    if fd != -1 {
        guard let f = t.fds.get(fd) else { return err(EBADF) }
        guard let sf = f as? SignalFD else { return err(EINVAL) }
        sf.mask = m & ~unblockableMask
        return Int(fd)
    }
    let f = SignalFD(mask: m, flags: O_RDWR | (flags & O_NONBLOCK))
    return t.fds.install(f, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
}
