// timerfd and signalfd.

import CMoat
import Glibc

final class TimerFD: FileDescription {
    let clock: clockid_t
    /// Next expiry in CLOCK_MONOTONIC ns (0: disarmed) and the interval.
    var deadline: Int64 = 0
    var interval: Int64 = 0
    var expirations: UInt64 = 0
    var waiters = WaitQueue()
    var timerID = 0
    unowned let kernel: Kernel

    init(kernel: Kernel, clock: clockid_t, flags: Int32) {
        self.kernel = kernel
        self.clock = clock
        super.init(flags: flags, path: nil)
    }

    /// Counts expirations up to `now`.
    func update() {
        guard deadline > 0 else { return }
        let now = Kernel.now(CLOCK_MONOTONIC)
        if now < deadline { return }
        if interval > 0 {
            let n = (now - deadline) / interval + 1
            expirations &+= UInt64(n)
            deadline = deadline &+ n &* interval
        } else {
            expirations &+= 1
            deadline = 0
        }
    }

    func arm(value: Int64, interval: Int64) {
        kernel.timers.cancel(timerID)
        self.interval = interval
        expirations = 0
        deadline = value > 0 ? Kernel.now(CLOCK_MONOTONIC) &+ value : 0
        scheduleWake()
    }

    private func scheduleWake() {
        guard deadline > 0 else { return }
        timerID = kernel.timers.schedule(at: deadline) { [weak self] in
            guard let s = self else { return }
            s.update()
            s.waiters.notifyAll()
            s.scheduleWake()
        }
    }

    override var seekable: Bool { false }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if count < 8 { return err(EINVAL) }
        while true {
            update()
            if expirations > 0 { break }
            if nonblocking { return err(EAGAIN) }
            waiters.add(t)
            let r = t.block(deadline: deadline > 0 ? deadline : nil)
            waiters.remove(t)
            update()
            if r == .interrupted && expirations == 0 { return -ERESTARTSYS }
        }
        if !t.writeU64(buf, expirations) { return err(EFAULT) }
        expirations = 0
        return 8
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    override func readiness() -> Int16 { update(); return expirations > 0 ? Int16(POLLIN) : 0 }
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func release() { kernel.timers.cancel(timerID) }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[timerfd]".utf8) }
    override func stat() -> Result<Stat, Errno> { var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 3; return .success(s) }
}

/// Reads the calling task's pending signals in `mask` as signalfd_siginfo.
final class SignalFD: FileDescription {
    var mask: UInt64

    init(mask: UInt64, flags: Int32) {
        self.mask = mask & ~unblockableMask
        super.init(flags: flags, path: nil)
    }

    override var seekable: Bool { false }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if count < 128 { return err(EINVAL) }
        while true {
            if let info = t.pending.take(blocked: ~mask) ?? t.tg.sharedPending.take(blocked: ~mask) {
                t.noteTaken(info)
                return t.copyOut(buf, info.signalfdBytes()) ? 128 : err(EFAULT)
            }
            if nonblocking { return err(EAGAIN) }
            // Sleep until a signal arrives; only signals outside our mask
            // and unblocked interrupt the read.
            let r = t.block(deadline: nil)
            if r == .interrupted && (t.pending.mask | t.tg.sharedPending.mask) & mask == 0 { return -ERESTARTSYS }
        }
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    override func readiness() -> Int16 {
        guard let t = currentTask else { return 0 }
        return (t.pending.mask | t.tg.sharedPending.mask) & mask != 0 ? Int16(POLLIN) : 0
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[signalfd]".utf8) }
    override func stat() -> Result<Stat, Errno> { var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 4; return .success(s) }
}
