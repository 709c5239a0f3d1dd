// The seccomp user-notification listener (seccomp_unotify(2)): the file
// SECCOMP_FILTER_FLAG_NEW_LISTENER returns. A thread whose filter answers
// SECCOMP_RET_USER_NOTIF for a call waits while a supervisor (usually
// another process, handed the fd) receives a notification describing the
// call (SECCOMP_IOCTL_NOTIF_RECV), may install files into the waiting
// process (NOTIF_ADDFD), and answers with a return value or an error, or
// lets the call run (NOTIF_SEND, SECCOMP_USER_NOTIF_FLAG_CONTINUE).
// Everything happens under Kernel.mu: the waiting task and the supervisor
// are both Sentry tasks.

import Glibc

final class SeccompListener: FileDescription {
    final class Notification {
        enum State { case waiting, received, replied }
        let id: UInt64
        let task: Task
        let data: [UInt8]
        var state = State.waiting
        /// What the call returns (error if not 0, else val), or nil to run it.
        var result: Int? = nil
        init(id: UInt64, task: Task, data: [UInt8]) { self.id = id; self.task = task; self.data = data }
    }

    /// The filter this listener serves (set when it is installed).
    weak var filter: SeccompFilter?
    /// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: once received, a call waits
    /// for its answer through signals (only a kill ends the wait).
    let waitKillable: Bool
    private(set) var closed = false
    private var notifications: [Notification] = []
    /// Notification ids start at an arbitrary point, as Linux's random
    /// cookie does, and count up.
    private var nextID: UInt64
    private var waiters = WaitQueue()

    init(waitKillable: Bool) {
        self.waitKillable = waitKillable
        nextID = UInt64(bitPattern: Kernel.now(CLOCK_MONOTONIC)) &* 0x9e37_79b9_7f4a_7c15
        super.init(flags: O_RDWR, path: nil)
    }

    // MARK: - The filtered thread's side

    /// Queues a notification for the call `t` made and waits for its
    /// answer: nil to run the call, else the value it returns. A signal
    /// before the answer withdraws it and restarts the call (which the
    /// filters then see again); closing the listener answers ENOSYS.
    /// Requires: Kernel.mu held.
    func notify(_ t: Task, data: [UInt8]) -> Int? {
        let n = Notification(id: nextID, task: t, data: data)
        nextID &+= 1
        notifications.append(n)
        waiters.notifyAll()
        defer { notifications.removeAll { $0 === n } }
        while n.state != .replied {
            if closed { return err(ENOSYS) }
            let r = t.block(deadline: nil, killable: n.state == .received && waitKillable)
            if r == .interrupted && n.state != .replied {
                // Withdrawn: the supervisor's answer to it now finds nothing (ENOENT).
                waiters.notifyAll()
                return -ERESTARTSYS
            }
        }
        return n.result
    }

    /// A thread holding `chain` left: a supervisor polling for the end of
    /// the filtered processes (EPOLLHUP) looks again. Requires: mu held.
    static func userLeft(_ chain: SeccompFilter) {
        var w: SeccompFilter? = chain
        while let f = w {
            if let l = f.listener, !l.closed { l.waiters.notifyAll() }
            w = f.parent
        }
    }

    /// Whether a live thread still holds the filter (its "users" in Linux).
    private var hasUsers: Bool {
        guard let f = filter else { return false }
        return Kernel.shared?.tasks.values.contains { !$0.exited && $0.seccomp.filter?.extends(f) == true } ?? false
    }

    // MARK: - The supervisor's side

    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        switch cmd {
        case 0xc050_2100: return receive(t, arg)                    // SECCOMP_IOCTL_NOTIF_RECV
        case 0xc018_2101: return send(t, arg)                       // SECCOMP_IOCTL_NOTIF_SEND
        case 0x4008_2102, 0x8008_2102:                              // SECCOMP_IOCTL_NOTIF_ID_VALID (and its first, _IOR, number)
            guard let id = t.readU64(arg) else { return err(EFAULT) }
            return find(id)?.state == .received ? 0 : err(ENOENT)
        case 0x4018_2103: return addFD(t, arg)                      // SECCOMP_IOCTL_NOTIF_ADDFD
        case 0x4008_2104:                                           // SECCOMP_IOCTL_NOTIF_SET_FLAGS
            // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP is a scheduling hint: nothing to do here.
            return arg & ~1 == 0 ? 0 : err(EINVAL)
        default: return err(ENOTTY)
        }
    }

    private func find(_ id: UInt64) -> Notification? { notifications.first { $0.id == id } }

    /// NOTIF_RECV: the struct seccomp_notif given must be zeroed; waits for
    /// a call not yet received and fills in its id, the caller's thread id
    /// as the supervisor numbers it (0 if it cannot see it), and its
    /// seccomp_data.
    private func receive(_ t: Task, _ arg: UInt64) -> Int {
        guard let given = t.copyIn(arg, 80) else { return err(EFAULT) }
        if given.contains(where: { $0 != 0 }) { return err(EINVAL) }
        while true {
            if let n = notifications.first(where: { $0.state == .waiting }) {
                var b = [UInt8](repeating: 0, count: 80)
                put64(&b, 0, n.id)
                put32(&b, 8, t.kernel.sees(t, n.task.tg) ? t.vpid(n.task.tid) : 0)
                b.replaceSubrange(16..<80, with: n.data)
                if !t.copyOut(arg, b) { return err(EFAULT) }
                n.state = .received
                waiters.notifyAll()
                return 0
            }
            waiters.add(t)
            let r = t.block(deadline: nil)
            waiters.remove(t)
            if r == .interrupted { return err(EINTR) }
        }
    }

    /// NOTIF_SEND: struct seccomp_notif_resp { id, val, error, flags }.
    private func send(_ t: Task, _ arg: UInt64) -> Int {
        guard let b = t.copyIn(arg, 24) else { return err(EFAULT) }
        let id = get64(b, 0), val = Int64(bitPattern: get64(b, 8)), error = Int32(bitPattern: get32(b, 16))
        let flags = get32(b, 20)
        let cont = flags & 1 != 0                                   // SECCOMP_USER_NOTIF_FLAG_CONTINUE
        if flags & ~1 != 0 || (cont && (error != 0 || val != 0)) { return err(EINVAL) }
        guard let n = find(id) else { return err(ENOENT) }
        if n.state != .received { return err(EINPROGRESS) }
        n.state = .replied
        n.result = cont ? nil : (error != 0 ? Int(error) : Int(val))
        n.task.wake()
        waiters.notifyAll()
        return 0
    }

    /// NOTIF_ADDFD: struct seccomp_notif_addfd { id, flags, srcfd, newfd,
    /// newfd_flags }: a copy of the supervisor's srcfd goes into the
    /// waiting process's table (at newfd with SECCOMP_ADDFD_FLAG_SETFD);
    /// with SECCOMP_ADDFD_FLAG_SEND its number is also the call's answer.
    /// Returns that number.
    private func addFD(_ t: Task, _ arg: UInt64) -> Int {
        guard let b = t.copyIn(arg, 24) else { return err(EFAULT) }
        let id = get64(b, 0), flags = get32(b, 8)
        let srcfd = Int32(bitPattern: get32(b, 12)), newfd = Int32(bitPattern: get32(b, 16))
        let newfdFlags = Int32(bitPattern: get32(b, 20))
        let setFD: UInt32 = 1, sendFD: UInt32 = 2
        if flags & ~(setFD | sendFD) != 0 || newfdFlags & ~O_CLOEXEC != 0 { return err(EINVAL) }
        if flags & setFD == 0 && newfd != 0 { return err(EINVAL) }
        guard let file = t.fds.get(srcfd) else { return err(EBADF) }
        guard let n = find(id) else { return err(ENOENT) }
        if n.state != .received { return err(EINPROGRESS) }
        let target = n.task
        let cloexec = newfdFlags & O_CLOEXEC != 0
        let fd: Int
        if flags & setFD != 0 {
            if newfd < 0 || Int(newfd) >= fdLimit(target) { return err(EBADF) }
            target.fds.installAt(file, newfd, cloexec: cloexec)
            fd = Int(newfd)
        } else {
            fd = target.fds.install(file, cloexec: cloexec, limit: fdLimit(target))
            if fd < 0 { return fd }
        }
        if flags & sendFD != 0 {
            n.state = .replied
            n.result = fd
            target.wake()
            waiters.notifyAll()
        }
        return fd
    }

    // MARK: - The file

    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    override func readiness() -> Int16 {
        var r: Int32 = 0
        if notifications.contains(where: { $0.state == .waiting }) { r |= POLLIN | POLLRDNORM }
        if notifications.contains(where: { $0.state == .received }) { r |= POLLOUT | POLLWRNORM }
        if !hasUsers { r |= POLLHUP }
        return Int16(r)
    }
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }

    /// The last descriptor is gone: calls waiting for an answer get ENOSYS,
    /// and so do later USER_NOTIF answers of the filter.
    override func release() {
        closed = true
        for n in notifications where n.state != .replied { n.task.wake() }
    }

    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 1
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:seccomp notify".utf8) }
}
