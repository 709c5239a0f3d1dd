// eventfd: a counter with read/write/poll semantics, in Sentry memory.

import CMoat
import Glibc

final class EventFD: FileDescription {
    var counter: UInt64
    let semaphore: Bool
    var waiters = WaitQueue()

    init(initial: UInt64, flags: Int32, semaphore: Bool) {
        counter = initial
        self.semaphore = semaphore
        super.init(flags: flags, path: nil)
    }

    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if count < 8 { return err(EINVAL) }
        while counter == 0 {
            if nonblocking { return err(EAGAIN) }
            waiters.add(t)
            let r = t.block(deadline: nil)
            waiters.remove(t)
            if r == .interrupted && counter == 0 { return -ERESTARTSYS }
        }
        let v: UInt64 = semaphore ? 1 : counter
        if !t.writeU64(buf, v) { return err(EFAULT) }
        counter -= v
        waiters.notifyAll()
        return 8
    }

    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if count < 8 { return err(EINVAL) }
        guard let v = t.readU64(buf) else { return err(EFAULT) }
        if v == UInt64.max { return err(EINVAL) }
        while UInt64.max - 1 - counter < v {
            if nonblocking { return err(EAGAIN) }
            waiters.add(t)
            let r = t.block(deadline: nil)
            waiters.remove(t)
            if r == .interrupted && UInt64.max - 1 - counter < v { return -ERESTARTSYS }
        }
        counter += v
        waiters.notifyAll()
        return 8
    }

    override func readiness() -> Int16 {
        var r: Int32 = 0
        if counter > 0 { r |= POLLIN }
        if counter < UInt64.max - 1 { r |= POLLOUT }
        return Int16(r)
    }
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 1
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[eventfd]".utf8) }
}
