// pidfd: a file description that names a process (pidfd_open, and what
// pidfd_send_signal, pidfd_getfd and waitid(P_PIDFD) take). It polls
// readable once the process has exited (zombie or reaped), as Linux's does;
// reading or writing it is EINVAL.

import Glibc

final class PidFD: FileDescription {
    let tg: ThreadGroup
    /// A PIDFD_THREAD pidfd of a thread that is not the leader: readable
    /// once that thread has exited (a leader's, like a process's, once the
    /// whole group has).
    let thread: Task?

    init(tg: ThreadGroup, flags: Int32, thread: Task? = nil) {
        self.tg = tg
        self.thread = thread
        super.init(flags: O_RDWR | flags, path: nil)
    }

    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func readiness() -> Int16 {
        if tg.reaped { return Int16(POLLIN | POLLRDNORM | POLLHUP) }
        if let x = thread, x.exited { return Int16(POLLIN | POLLRDNORM | POLLHUP) }   // a thread leaves no zombie: gone at once
        return tg.zombie ? Int16(POLLIN | POLLRDNORM) : 0
    }
    override func addWaiter(_ t: Waiter) { tg.exitWaiters.add(t) }
    override func removeWaiter(_ t: Waiter) { tg.exitWaiters.remove(t) }
    override func wakeups() -> UInt64 { tg.exitWaiters.wakeups }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 2
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[pidfd]".utf8) }
}

/// The process a pidfd names: a PidFD, or (as Linux accepts for
/// pidfd_send_signal) a directory fd of /proc/PID.
func pidfdGroup(_ f: FileDescription) -> ThreadGroup? {
    if let p = f as? PidFD { return p.tg }
    return (f.inode as? ProcNode)?.pidGroup
}
