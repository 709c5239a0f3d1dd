// epoll and eventfd.
//
// Level-triggered readiness comes from each file's readiness(), the same
// source poll uses. An edge-triggered entry reports what is ready when a
// bit rose since the previous look, or when the file was woken since the
// entry's last report (its wakeups() moved): as on Linux, where each wakeup
// of the file re-arms the entry. The second rule catches the edge a waiter
// never saw, e.g. a full pipe drained while the epoll waiter slept.
// EPOLLONESHOT disables an entry after one report.
//
// A wait looks only at the entries that may have something to report (a
// ready list, as Linux's): each entry keeps a link in its file's wait queues
// for as long as it is registered, and a wakeup of the file puts the entry
// on the list; a level-triggered entry stays there while it is ready. Files
// backed by a host fd (inet sockets, host streams) are registered,
// edge-triggered, in one host epoll instance of the Sentry's per
// application instance, whose events put their entries on the list the
// same way: a server with thousands of idle connections pays per wait for
// the ones that moved, not for all of them. Entries whose changes nothing
// reports (a file without a wait queue, a nested epoll instance, a host fd
// the host refuses twice) are looked at on every wait, as before.

import CMoat
import Glibc

let EPOLLET_: UInt32 = 1 << 31
let EPOLLONESHOT_: UInt32 = 1 << 30
let EPOLLEXCLUSIVE_: UInt32 = 1 << 28
let EPOLLWAKEUP_: UInt32 = 1 << 29

/// An entry's standing place in its file's wait queues: each wakeup of the
/// file puts the entry on its instance's ready list and wakes the
/// instance's waiters (Linux's ep_poll_callback). It must not look at the
/// file: the file's queue is being notified.
final class EpollLink: Waiter {
    weak var ep: EpollFD?
    let fd: Int32
    private(set) var joined = false
    init(ep: EpollFD, fd: Int32) { self.ep = ep; self.fd = fd }
    func joinedQueue() { joined = true }
    func wake() {
        guard let ep = ep else { return }
        ep.pending.insert(fd)
        ep.waiters.notifyAll()
    }
}

final class EpollFD: FileDescription {
    struct Interest {
        var file: FileDescription
        var events: UInt32
        var data: UInt64
        var disabled = false
        var lastReported: UInt32 = 0
        /// file.wakeups() at the last report.
        var seenWakeups: UInt64
        /// Edges the host epoll reported for the file's host fd, and their
        /// count at the last report (each one re-arms an EPOLLET entry too).
        var hostEdges: UInt64 = 0
        var seenHostEdges: UInt64 = 0
        /// The entry's link in the file's wait queues, if it has queues.
        var link: EpollLink? = nil
        /// The host fd registered in the instance's host epoll, or -1.
        var hostFD: Int32 = -1
        init(file: FileDescription, events: UInt32, data: UInt64) {
            self.file = file; self.events = events; self.data = data; seenWakeups = file.wakeups(for: events)
        }
        /// The events of interest ready now (level), hang-up and error always.
        var levelNow: UInt32 {
            UInt32(UInt16(bitPattern: file.readiness())) & ((events & 0xffff) | UInt32(POLLERR | POLLHUP))
        }
        /// Woken since the last report: everything ready counts as new.
        var rearmed: Bool { file.wakeups(for: events) != seenWakeups || hostEdges != seenHostEdges }
    }
    /// Keyed by fd number and description, as Linux keys (fd, file).
    var interest: [Int32: Interest] = [:]
    var waiters = WaitQueue()
    /// Entries that may have something to report: woken since they were
    /// last looked at, or level-triggered and ready then.
    var pending = Set<Int32>()
    /// Entries looked at on every wait: nothing tells of their changes.
    private var scanned = Set<Int32>()
    /// The Sentry's host epoll instance for the host-backed entries (-1
    /// until the first one).
    private var hostEp: Int32 = -1

    init(flags: Int32) { super.init(flags: flags, path: nil) }

    override var seekable: Bool { false }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    /// Readable on the host while the host epoll has events not yet taken:
    /// a poll of this instance, or an instance that watches it, waits on it.
    /// Asked for it, a small set moves its host fds there too (else nothing
    /// would tell such a waiter of them).
    override var pollHostFD: Int32 {
        if !useHostEp { startHostEp() }
        return hostEp
    }

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

    // MARK: - Entries

    /// Registers a new entry (`interest[fd]` set) with whatever will tell
    /// of its file's changes, and puts it on the ready list for a first look
    /// (Linux polls a file as it is added).
    func attach(_ fd: Int32) {
        guard var e = interest[fd] else { return }
        let link = EpollLink(ep: self, fd: fd)
        // A nested instance: its own queue only (its scanned entries change;
        // waits join them). It stays scanned: its host fd, if it gets one,
        // is polled by the waits.
        if let inner = e.file as? EpollFD { inner.waiters.add(link) } else { e.file.addWaiter(link) }
        var reported = link.joined
        if link.joined { e.link = link }
        if e.file is EpollFD {
            reported = false
        } else if e.file.pollHostFD >= 0 {
            if !useHostEp || hostRegister(&e, fd, op: 1) == false { reported = false }
        }
        interest[fd] = e
        if reported { scanned.remove(fd) } else { scanned.insert(fd) }
        pending.insert(fd)
        if !useHostEp && interest.count > EpollFD.hostEpFrom { startHostEp() }
    }

    /// A small set polls its host fds directly, as before: one look and one
    /// poll per wait cost less than the host epoll's extra calls (taking
    /// its events, then looking). Past this many entries the host fds move
    /// to the host epoll, for good.
    static let hostEpFrom = 16
    private var useHostEp = false

    private func startHostEp() {
        useHostEp = true
        for fd in Array(scanned) {
            guard var e = interest[fd], e.link != nil, e.hostFD < 0, !(e.file is EpollFD),
                  e.file.refs > 0, e.file.pollHostFD >= 0 else { continue }
            if hostRegister(&e, fd, op: 1) {
                interest[fd] = e
                scanned.remove(fd)
                pending.insert(fd)
            }
        }
    }

    /// Takes an entry out: off its file's queues and the host epoll.
    func detach(_ fd: Int32) {
        guard let e = interest.removeValue(forKey: fd) else { return }
        if let l = e.link {
            if let inner = e.file as? EpollFD { inner.waiters.remove(l) } else { e.file.removeWaiter(l) }
            l.ep = nil
        }
        // Only while the file still owns that host fd: a closed one left
        // the host epoll by itself, and its number may be another file's.
        if e.hostFD >= 0 && e.file.refs > 0 && e.file.pollHostFD == e.hostFD {
            _ = moat_hostep_ctl(hostEp, 2, e.hostFD, 0, 0)
        }
        scanned.remove(fd)
        pending.remove(fd)
    }

    /// EPOLL_CTL_MOD: new events and data, looked at afresh.
    func modify(_ fd: Int32, events: UInt32, data: UInt64) {
        guard let old = interest[fd] else { return }
        var e = Interest(file: old.file, events: events, data: data)
        e.link = old.link
        e.hostFD = old.hostFD
        e.hostEdges = old.hostEdges; e.seenHostEdges = old.hostEdges
        if e.hostFD >= 0 && e.file.pollHostFD == e.hostFD && hostRegister(&e, fd, op: 3) == false {
            scanned.insert(fd)
        }
        interest[fd] = e
        pending.insert(fd)
    }

    /// Registers the entry's host fd, edge-triggered for its events (the
    /// host's keyed wakeups then match the entry's as Linux's would).
    /// False when the host refuses (the same host file added twice, under
    /// two fds): the entry is then scanned and polled by every wait.
    private func hostRegister(_ e: inout Interest, _ fd: Int32, op: Int32) -> Bool {
        if hostEp < 0 {
            let ep = moat_hostep_create()
            if ep < 0 { return false }
            hostEp = ep
        }
        let h = e.file.pollHostFD
        let mask = UInt32(pollReadable | pollWritable | POLLPRI | POLLRDBAND_ | POLLWRBAND_ | POLLRDHUP_)
        if moat_hostep_ctl(hostEp, op, h, (e.events & mask) | EPOLLET_, UInt64(UInt32(bitPattern: fd))) != 0 {
            e.hostFD = -1
            return false
        }
        e.hostFD = h
        return true
    }

    /// Takes the host epoll's events: their entries go on the ready list.
    private func drainHost() {
        guard hostEp >= 0 else { return }
        let batch = 64
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: batch) { keys in
            while true {
                let n = moat_hostep_take(hostEp, keys.baseAddress!, Int32(batch))
                if n <= 0 { return }
                for i in 0..<Int(n) {
                    let fd = Int32(truncatingIfNeeded: keys[i])
                    if interest[fd] != nil { interest[fd]!.hostEdges &+= 1; pending.insert(fd) }
                }
                if n < batch { return }
            }
        }
    }

    /// A host-backed file that changed its host fd (an inet socket moved to
    /// an egress socket at connect; it wakes its queue when it does) is
    /// registered again under the new one.
    private func refreshHost(_ e: inout Interest, _ fd: Int32) {
        guard e.hostFD >= 0, e.file.pollHostFD != e.hostFD, e.file.pollHostFD >= 0 else { return }
        if hostRegister(&e, fd, op: 1) == false { scanned.insert(fd) }
    }

    /// Drops entries whose description was closed everywhere (Linux drops
    /// them at the last close). A whole pass costs one look at every entry:
    /// it runs every wait for small sets, every few dozen for big ones.
    private var waitsSincePrune = 0
    func prune() {
        waitsSincePrune += 1
        if interest.count > 64 && waitsSincePrune < interest.count / 16 { return }
        waitsSincePrune = 0
        let gone = interest.compactMap { $0.value.file.refs > 0 ? nil : $0.key }
        for fd in gone { detach(fd) }
    }

    /// The files a waiter joins for one wait: those of the scanned entries
    /// (the rest reach the instance's own queue through their links).
    func scannedFiles() -> [FileDescription] { scanned.compactMap { interest[$0]?.file } }

    /// Host fds a wait polls: the instance's host epoll, and the host fds
    /// of scanned entries. For edge-triggered entries only the events not
    /// yet reported: a still-ready host fd would end the poll at once, again
    /// and again, and the wait would spin.
    func hostPollFDs() -> [pollfd] {
        var out: [pollfd] = []
        if hostEp >= 0 { out.append(pollfd(fd: hostEp, events: Int16(POLLIN), revents: 0)) }
        for fd in scanned {
            guard let e = interest[fd], e.file.pollHostFD >= 0, !e.disabled, e.file.refs > 0 else { continue }
            var ev = e.events & 0xffff
            if e.events & EPOLLET_ != 0 && !e.rearmed {
                ev &= ~e.lastReported
                if e.lastReported & UInt32(POLLHUP | POLLERR) != 0 || ev == 0 { continue }
            }
            out.append(pollfd(fd: e.file.pollHostFD, events: Int16(truncatingIfNeeded: ev), revents: 0))
        }
        return out
    }

    /// Ready entries now, as (events, data) with ET/ONESHOT applied.
    /// The look starts after the last entry reported: with more ready
    /// entries than a wait takes, each gets its turn (Linux moves reported
    /// entries to the tail of its ready list).
    private var resumeAfter: Int32 = -1

    func collect(max: Int) -> [(UInt32, UInt64)] {
        drainHost()
        prune()
        var out: [(UInt32, UInt64)] = []
        let keys = pending.union(scanned).sorted()
        if keys.isEmpty { return out }
        let first = keys.firstIndex { $0 > resumeAfter } ?? 0
        for k in keys.indices {
            let fd = keys[(first + k) % keys.count]
            guard var e = interest[fd], !e.disabled, e.file.refs > 0 else { pending.remove(fd); continue }
            refreshHost(&e, fd)
            let now = e.levelNow
            var report = now
            if e.events & EPOLLET_ != 0 && !e.rearmed { report = now & ~e.lastReported }
            e.lastReported = now
            if report != 0 && out.count < max {
                out.append((report, e.data))
                resumeAfter = fd
                e.seenWakeups = e.file.wakeups(for: e.events)
                e.seenHostEdges = e.hostEdges
                if e.events & EPOLLONESHOT_ != 0 { e.disabled = true }
                // Level-triggered: looked at again next wait, while ready.
                if e.events & (EPOLLONESHOT_ | EPOLLET_) != 0 { pending.remove(fd) }
            } else if report != 0 {
                e.lastReported = now & ~report // not reported yet: keep it pending
            } else {
                pending.remove(fd)
            }
            interest[fd] = e
        }
        return out
    }

    override func readiness() -> Int16 {
        drainHost()
        for fd in pending.union(scanned) {
            guard let e = interest[fd], !e.disabled, e.file.refs > 0 else { continue }
            if e.levelNow != 0 { return Int16(pollReadable) }
        }
        return 0
    }
    override func addWaiter(_ t: Waiter) { waiters.add(t); for f in scannedFiles() { f.addWaiter(t) } }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t); for f in scannedFiles() { f.removeWaiter(t) } }
    override func release() {
        for fd in Array(interest.keys) { detach(fd) }
        if hostEp >= 0 { close(hostEp); hostEp = -1 }
    }
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
    // /proc/PID/mounts and mountinfo poll (BytesFD.changes).
    if target is TmpfsFileFD || target is DirectoryFD || (target as? BytesFD).map({ $0.changes == nil }) == true
        || (target as? HostFileFD).map({ !$0.isStream }) == true
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
    if let old = e.interest[fd], old.file.refs == 0 { e.detach(fd) }
    switch op {
    case 1: // EPOLL_CTL_ADD
        if e.interest[fd] != nil { return err(EEXIST) }
        if let inner = target as? EpollFD {
            if events & EPOLLEXCLUSIVE_ != 0 { return err(EINVAL) }
            if !e.canWatch(inner) { return err(ELOOP) }
            inner.noteWatched(by: e)
        }
        e.interest[fd] = EpollFD.Interest(file: target, events: events, data: data)
        e.attach(fd)
    case 2: // EPOLL_CTL_DEL
        if e.interest[fd] == nil { return err(ENOENT) }
        e.detach(fd)
    case 3: // EPOLL_CTL_MOD
        guard e.interest[fd] != nil else { return err(ENOENT) }
        if events & EPOLLEXCLUSIVE_ != 0 { return err(EINVAL) }
        e.modify(fd, events: events, data: data)
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
        // Woken through the instance's queue (its entries' links), the
        // scanned entries' own queues, or the host: the instance's host
        // epoll and the scanned entries' host fds.
        let host = ep.hostPollFDs()
        let joined = ep.scannedFiles()
        ep.waiters.add(t)
        for f in joined { f.addWaiter(t) }
        var r: Task.BlockResult
        if !host.isEmpty {
            var pfds = host
            var ms: Int32 = -1
            if let d = deadline { ms = Int32(clamping: max(0, (d - Kernel.now(CLOCK_MONOTONIC) + 999_999) / 1_000_000)) }
            r = t.hostPoll(&pfds, timeoutMs: ms).0
        } else {
            r = t.block(deadline: deadline)
        }
        ep.waiters.remove(t)
        for f in joined { f.removeWaiter(t) }
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
