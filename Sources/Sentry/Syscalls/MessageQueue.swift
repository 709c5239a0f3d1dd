// POSIX message queues: mq_open, mq_unlink, mq_timedsend, mq_timedreceive,
// mq_notify and mq_getsetattr, all in the Sentry.
//
// The queues live in an IPC namespace (IPCNamespace.mqueues; the caller's,
// Kernel/IPCNamespaces.swift), as names in one mqueue file system per
// namespace, the one mount(2) of type "mqueue" (by a process of that
// namespace) and an OCI bundle's mqueue mounts (the sandbox's) show (ls
// lists the queues, rm removes one as mq_unlink does): a queue descriptor
// is a file descriptor as on Linux, with fstat, fchmod and fchown,
// poll/select/epoll (readable while a message is queued, writable while
// the queue is not full), a /proc/PID/fd link "/name", and read() giving
// the "QSIZE:... NOTIFY:..." line. A queue outlives mq_unlink until its
// last descriptor is closed. Descriptors are close-on-exec, as Linux makes
// them.
//
// Limits as Linux's: /proc/sys/fs/mqueue (queues_max, msg_max, msgsize_max,
// msg_default, msgsize_default; the namespace's), the hard ceilings
// for CAP_SYS_RESOURCE, and RLIMIT_MSGQUEUE charged to the creator's real
// uid. Messages come out highest priority first, oldest first within one.
//
// A send to a full queue or a receive from an empty one waits in
// Task.block, so a signal (EINTR, or a restart under SA_RESTART) and the
// sandbox's teardown end the wait; the timeout is an absolute
// CLOCK_REALTIME time (ETIMEDOUT). As on Linux, a message sent while a
// receiver waits is handed to that receiver (it never shows in the queue,
// and fires no notification), and a receive from a full queue moves the
// first waiting sender's message in.
//
// mq_notify: SIGEV_NONE, SIGEV_SIGNAL (si_code SI_MESGQ, the sender's pid
// and uid) and SIGEV_THREAD, which glibc builds on a netlink socket: the
// kernel writes the 32-byte cookie the library passed, its last byte saying
// "woken up" or "removed", and the library's helper thread reads it and
// starts the thread. Linux drops a registration when its process closes the
// queue; here when the process closes its last descriptor of that open
// (an open shared with a live other process keeps it), or exits.

import CMoat
import Glibc

private let MQ_PRIO_MAX: UInt32 = 32768
private let HARD_MSGMAX = 65536, HARD_MSGSIZEMAX = 16 << 20
private let MQUEUE_MAGIC: Int64 = 0x1980_0202
/// What Linux charges to RLIMIT_MSGQUEUE per message slot besides the
/// message: its struct msg_msg and (up to MQ_PRIO_MAX slots) a
/// posix_msg_tree_node, 48 bytes each on x86-64.
private let msgHeaderBytes = 48, treeNodeBytes = 48
private let SIGEV_SIGNAL_: Int32 = 0, SIGEV_NONE_: Int32 = 1, SIGEV_THREAD_: Int32 = 2
private let SI_MESGQ: Int32 = -3
private let NOTIFY_COOKIE_LEN = 32, NOTIFY_WOKENUP: UInt8 = 1, NOTIFY_REMOVED: UInt8 = 2
/// st_size of a queue file (Linux's FILENT_SIZE).
private let queueFileSize: Int64 = 80
private let mqueueDev: UInt64 = 0x13

func registerMessageQueue(_ t: SyscallTable) {
    t[240] = sysMqOpen
    t[241] = sysMqUnlink
    t[242] = sysMqTimedsend
    t[243] = sysMqTimedreceive
    t[244] = sysMqNotify
    t[245] = sysMqGetsetattr
}

// MARK: - The queues

/// An IPC namespace's POSIX message queues. Guarded by Kernel.mu.
final class MQueueRegistry {
    /// Named queues, by name (without the leading slash, which glibc strips).
    fileprivate(set) var byName: [[UInt8]: MQueueInode] = [:]
    /// Queues that exist, named or unlinked and still open (Linux's
    /// mq_queues_count, which fs.mqueue.queues_max bounds).
    fileprivate(set) var count = 0
    /// RLIMIT_MSGQUEUE bytes charged, by real uid.
    fileprivate var charged: [UInt32: UInt64] = [:]
    fileprivate var nextIno: UInt64 = 0x4d51_0000
    /// The internal mount the queues are names in (their descriptors' path).
    fileprivate lazy var mount: Mount = {
        self.nextIno += 1
        let d = Dentry(name: [47], parent: nil, inode: MQueueDirInode(self, ino: self.nextIno))
        return Mount(root: d, mountpoint: nil, parent: nil, fsType: "mqueue", source: "mqueue")
    }()

    /// The queues' directory, for every mqueue mount: all show the same queues.
    var rootInode: Inode { mount.root.inode }

    /// fs.mqueue.`key` as the caller's IPC namespace has it, or Linux's default.
    fileprivate func limit(_ t: Task, _ key: String, _ dflt: Int) -> Int {
        t.ipc.sysctl["fs/mqueue/" + key].flatMap { Int($0) } ?? dflt
    }

    /// A new queue named `name` (not in use), as mq_open with O_CREAT.
    fileprivate func create(_ t: Task, _ name: [UInt8], mode: UInt32, attr: (maxmsg: Int, msgsize: Int)?) -> Result<MQueueInode, Errno> {
        let c = t.creds
        let privileged = c.has(Cap.sysResource)
        if count >= limit(t, "queues_max", 256) && !privileged { return .failure(Errno(ENOSPC)) }
        let msgMax = limit(t, "msg_max", 10), sizeMax = limit(t, "msgsize_max", 8192)
        var maxmsg = min(msgMax, limit(t, "msg_default", 10)), msgsize = min(sizeMax, limit(t, "msgsize_default", 8192))
        if let a = attr { maxmsg = a.maxmsg; msgsize = a.msgsize }
        if maxmsg <= 0 || msgsize <= 0 { return .failure(Errno(EINVAL)) }
        if privileged ? (maxmsg > HARD_MSGMAX || msgsize > HARD_MSGSIZEMAX) : (maxmsg > msgMax || msgsize > sizeMax) {
            return .failure(Errno(EINVAL))
        }
        // Both at most their hard ceilings here (the sysctls' ranges keep
        // msg_max and msgsize_max within them): no product overflows, so
        // Linux's EOVERFLOW cannot happen.
        let bytes = UInt64(maxmsg) * UInt64(msgsize) + UInt64(maxmsg * msgHeaderBytes + min(maxmsg, Int(MQ_PRIO_MAX)) * treeNodeBytes)
        let (total, over) = charged[c.uid, default: 0].addingReportingOverflow(bytes)
        if over || total > t.tg.rlimits[RL_MSGQUEUE].cur { return .failure(Errno(EMFILE)) }
        nextIno += 1
        let q = MQueueInode(self, ino: nextIno, mode: S_IFREG_ | mode, maxmsg: maxmsg, msgsize: msgsize, chargedTo: c.uid, bytes: bytes)
        q.uid = c.fsuid; q.gid = c.fsgid
        let root = mount.root
        let d = Dentry(name: name, parent: root, inode: q)
        root.children[name] = d
        q.dentry = d
        byName[name] = q
        count += 1
        charged[c.uid] = total
        root.inode.mtime = nowTimespec(); root.inode.ctime = root.inode.mtime
        return .success(q)
    }

    fileprivate func unlink(_ name: [UInt8], _ q: MQueueInode) {
        byName[name] = nil
        mount.root.children[name] = nil
        q.dentry?.dead = true
        q.named = false
        mount.root.inode.mtime = nowTimespec(); mount.root.inode.ctime = mount.root.inode.mtime
        if q.opens == 0 { destroy(q) }
    }

    /// The queue has neither a name nor a descriptor: its limits are free again.
    fileprivate func destroy(_ q: MQueueInode) {
        count -= 1
        let left = charged[q.chargedTo, default: 0] - min(charged[q.chargedTo, default: 0], q.chargedBytes)
        charged[q.chargedTo] = left == 0 ? nil : left
        q.notify = nil
    }
}

/// The queues' file system's root: every queue by name (for a listing,
/// lookups and unlink, wherever mqueue is mounted). Its registry goes with
/// its IPC namespace; a mount that outlives the namespace is then empty.
final class MQueueDirInode: Inode {
    weak var registry: MQueueRegistry?
    init(_ r: MQueueRegistry, ino: UInt64) {
        registry = r
        super.init(ino: ino, mode: S_IFDIR_ | 0o1777, dev: mqueueDev)
        nlink = 2
    }
    override var fsMagic: Int64 { MQUEUE_MAGIC }
    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        registry?.byName[name].map { .success($0) } ?? .failure(Errno(ENOENT))
    }
    /// ls of a mount (the VFS sets the path).
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> { .success(DirectoryFD(flags: flags, path: nil)) }
    /// rm of a queue: mq_unlink by another name (the VFS has checked the
    /// sticky directory's permission).
    override func unlink(_ name: [UInt8], dir: Bool) -> Result<Void, Errno> {
        guard let r = registry, let q = r.byName[name] else { return .failure(Errno(ENOENT)) }
        if dir { return .failure(Errno(ENOTDIR)) }
        r.unlink(name, q)
        return .success(())
    }
    override func readdir() -> Result<[DirEntry], Errno> {
        .success((registry?.byName ?? [:]).sorted { $0.value.ino < $1.value.ino }.map { DirEntry(ino: $0.value.ino, type: 8, name: $0.key) })
    }
}

/// A task asleep in mq_timedsend (with its message) or mq_timedreceive
/// (handed one): `ready` once the other side has done the transfer.
final class MQWaiter {
    unowned let task: Task
    var msg: (prio: UInt32, data: [UInt8])?
    var ready = false
    init(_ t: Task, msg: (prio: UInt32, data: [UInt8])? = nil) { task = t; self.msg = msg }
}

/// A registration made with mq_notify.
struct MQNotify {
    weak var owner: ThreadGroup?
    /// The owner's address space when it registered: an exec since then
    /// (a new one) gets no signal, as Linux's self_exec_id check.
    let space: UInt64
    let kind: Int32, signo: Int32, value: UInt64
    /// SIGEV_THREAD: glibc's netlink socket and the cookie to write to it.
    let socket: NetlinkSocketFD?
    let cookie: [UInt8]
    /// The owner is still there (Linux drops the registration when its
    /// process exits: the exit closes the queue).
    var live: Bool { owner.map { !$0.exiting && !$0.zombie } ?? false }
}

/// One queue. Guarded by Kernel.mu. Its registry (weak: the registry
/// holds its named queues) is gone once its IPC namespace is, while a
/// descriptor may still hold the queue.
final class MQueueInode: Inode {
    weak var registry: MQueueRegistry?
    let maxmsg: Int, msgsize: Int
    /// Queued messages, highest priority first, oldest first within one.
    fileprivate(set) var messages: [(prio: UInt32, data: [UInt8])] = []
    /// Bytes of message data queued (QSIZE).
    fileprivate var qsize = 0
    fileprivate var receivers: [MQWaiter] = [], senders: [MQWaiter] = []
    /// poll, select and epoll waiters.
    fileprivate var pollers = WaitQueue()
    fileprivate var notify: MQNotify?
    /// Open descriptions; the queue ends when it has neither these nor a name.
    fileprivate var opens = 0
    fileprivate var named = true
    weak var dentry: Dentry?
    let chargedTo: UInt32, chargedBytes: UInt64

    init(_ r: MQueueRegistry, ino: UInt64, mode: UInt32, maxmsg: Int, msgsize: Int, chargedTo: UInt32, bytes: UInt64) {
        registry = r; self.maxmsg = maxmsg; self.msgsize = msgsize; self.chargedTo = chargedTo; chargedBytes = bytes
        super.init(ino: ino, mode: mode, dev: mqueueDev)
    }

    override var size: Int64 { queueFileSize }
    override var fsMagic: Int64 { MQUEUE_MAGIC }
    /// Found by name only while it has one: a dentry cache elsewhere (a
    /// mount of the directory) must not keep an unlinked queue.
    override var cacheable: Bool { false }
    override func stat() -> Result<Stat, Errno> {
        super.stat().map { var s = $0; s.blocks = 0; return s }
    }
    /// Reopened through /proc/PID/fd/N.
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        guard let d = dentry, let r = registry else { return .failure(Errno(ENOENT)) }
        return .success(MQueueFD(self, flags: flags, path: Path(mount: r.mount, dentry: d)))
    }

    private func touch() { mtime = nowTimespec(); atime = mtime; ctime = mtime }

    /// Queues a message behind those of its priority and above.
    private func insert(_ m: (prio: UInt32, data: [UInt8])) {
        var lo = 0, hi = messages.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if messages[mid].prio >= m.prio { lo = mid + 1 } else { hi = mid }
        }
        messages.insert(m, at: lo)
        qsize += m.data.count
    }

    fileprivate func send(_ t: Task, _ m: (prio: UInt32, data: [UInt8]), nonblocking: Bool, deadline: Int64?) -> Int {
        if messages.count >= maxmsg {
            if nonblocking { return err(EAGAIN) }
            let w = MQWaiter(t, msg: m)
            senders.append(w)
            return sleep(t, w, deadline: deadline)
        }
        touch()
        if !receivers.isEmpty {
            let r = receivers.removeFirst()
            r.msg = m; r.ready = true
            r.task.wake()
            return 0
        }
        insert(m)
        if messages.count == 1 { fireNotification(sender: t) }
        pollers.notifyAll()
        return 0
    }

    fileprivate func receive(_ t: Task, nonblocking: Bool, deadline: Int64?) -> Result<(prio: UInt32, data: [UInt8]), Errno> {
        if messages.isEmpty {
            if nonblocking { return .failure(Errno(EAGAIN)) }
            let w = MQWaiter(t)
            receivers.append(w)
            let r = sleep(t, w, deadline: deadline)
            if r != 0 { return .failure(Errno(Int32(-r))) }
            return .success(w.msg!)
        }
        let m = messages.removeFirst()
        qsize -= m.data.count
        touch()
        // Room now: the first waiting sender's message goes in.
        if !senders.isEmpty {
            let s = senders.removeFirst()
            insert(s.msg!)
            s.ready = true
            s.task.wake()
        } else {
            pollers.notifyAll()
        }
        return .success(m)
    }

    /// Waits for the other side to take or give a message. Returns 0 once
    /// it did (which wins over a signal or timeout that came too), else
    /// -ERESTARTSYS or -ETIMEDOUT with the waiter withdrawn.
    private func sleep(_ t: Task, _ w: MQWaiter, deadline: Int64?) -> Int {
        while true {
            let r = t.block(deadline: deadline)
            if w.ready { return 0 }
            if r == .woken { continue }
            receivers.removeAll { $0 === w }
            senders.removeAll { $0 === w }
            return r == .interrupted ? -ERESTARTSYS : err(ETIMEDOUT)
        }
    }

    /// The queue went from empty to one message with no receiver waiting:
    /// the registered process is told, and the registration ends.
    private func fireNotification(sender t: Task) {
        guard let n = notify else { return }
        notify = nil
        guard n.live, let owner = n.owner else { return }
        switch n.kind {
        case SIGEV_SIGNAL_:
            if n.signo == 0 || owner.tasks.first?.mm.id != n.space { return }
            var info = SigInfo(signo: n.signo)
            info.code = SI_MESGQ
            info.pid = owner.pidSeen(t.tg.tgid)                               // as the owner's namespace numbers the sender
            info.uid = t.creds.uid
            info.value = n.value
            owner.sendSignal(n.signo, info)
        case SIGEV_THREAD_:
            var c = n.cookie
            c[NOTIFY_COOKIE_LEN - 1] = NOTIFY_WOKENUP
            n.socket?.deliverFromKernel(c)
        default:
            break
        }
    }

    fileprivate func removeNotification() {
        guard let n = notify else { return }
        notify = nil
        if n.kind == SIGEV_THREAD_ {
            var c = n.cookie
            c[NOTIFY_COOKIE_LEN - 1] = NOTIFY_REMOVED
            n.socket?.deliverFromKernel(c)
        }
    }

    /// read(2) of the queue: "QSIZE:%-10lu NOTIFY:%-5d SIGNO:%-5d NOTIFY_PID:%-6d\n".
    fileprivate func statusLine(_ t: Task) -> [UInt8] {
        func left(_ v: CustomStringConvertible, _ w: Int) -> String {
            let s = v.description
            return s + String(repeating: " ", count: max(0, w - s.count))
        }
        let n = notify.flatMap { $0.live ? $0 : nil }
        let kind = n?.kind ?? 0, signo = n.map { $0.kind == SIGEV_SIGNAL_ ? $0.signo : 0 } ?? 0
        let pid = n?.owner.map { t.vpid($0.tgid) } ?? 0
        return Array("QSIZE:\(left(qsize, 10)) NOTIFY:\(left(kind, 5)) SIGNO:\(left(signo, 5)) NOTIFY_PID:\(left(pid, 6))\n".utf8)
    }
}

/// An open queue (a queue descriptor).
final class MQueueFD: FileDescription {
    let queue: MQueueInode

    init(_ q: MQueueInode, flags: Int32, path: Path) {
        queue = q
        q.opens += 1
        super.init(flags: flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC), path: path)
    }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        let r = queue.statusLine(t).withUnsafeBytes { readFromBytes(t, $0, self, buf, count, off) }
        if r > 0 { queue.atime = nowTimespec(); queue.ctime = queue.atime }
        return r
    }
    override func readiness() -> Int16 {
        var r: Int32 = 0
        if !queue.messages.isEmpty { r |= pollReadable }
        if queue.messages.count < queue.maxmsg { r |= pollWritable }
        return Int16(r)
    }
    override func addWaiter(_ t: Waiter) { queue.pollers.add(t) }
    override func removeWaiter(_ t: Waiter) { queue.pollers.remove(t) }
    override func wakeups() -> UInt64 { queue.pollers.wakeups }
    override func release() {
        // Closing the queue ends the closer's own registration (Linux's flush).
        if let n = queue.notify, let me = currentTask, n.owner === me.tg { queue.removeNotification() }
        queue.opens -= 1
        if queue.opens == 0 && !queue.named { queue.registry?.destroy(queue) }
    }
}

// MARK: - The calls

/// A name as the kernel takes it (glibc strips the leading slash): no
/// slash in it, not "." or "..", at most NAME_MAX bytes.
private func mqNameError(_ n: [UInt8]) -> Int32? {
    if n.contains(47) || n == [46] || n == [46, 46] { return EACCES }
    return n.count > 255 ? ENAMETOOLONG : nil
}

/// The name argument: EFAULT, ENAMETOOLONG past PATH_MAX, ENOENT when
/// empty (getname), then the lookup's checks.
private func mqName(_ t: Task, _ addr: UInt64) -> Result<[UInt8], Errno> {
    switch t.readPath(addr) {
    case .failure(let e): return .failure(e)
    case .success(let n):
        if n.isEmpty { return .failure(Errno(ENOENT)) }
        return .success(n)
    }
}

/// The absolute CLOCK_REALTIME timeout at `addr` as a CLOCK_MONOTONIC
/// deadline (nil: none; one too far to matter is none too).
private func mqDeadline(_ t: Task, _ addr: UInt64) -> Result<Int64?, Errno> {
    if addr == 0 { return .success(nil) }
    switch readTimespecArg(t, addr) {
    case .failure(let e): return .failure(e)
    case .success(let (sec, ns)):
        let (abs, o) = sec.multipliedReportingOverflow(by: 1_000_000_000)
        if o || abs > Int64.max / 2 { return .success(nil) }
        return .success(Kernel.now(CLOCK_MONOTONIC) &+ (abs + ns - Kernel.now(CLOCK_REALTIME)))
    }
}

private func mqFD(_ t: Task, _ fd: Int32) -> MQueueFD? { t.fds.get(fd) as? MQueueFD }

func sysMqOpen(_ t: Task, _ a: Args) -> Int {
    let oflag = a.int(1), mode = a.uint(2)
    // struct mq_attr (mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs, 4 reserved
    // longs) is read first, whatever oflag says.
    var attr: (maxmsg: Int, msgsize: Int)? = nil
    if a.a3 != 0 {
        guard let b = t.copyIn(a.a3, 64) else { return err(EFAULT) }
        attr = (Int(Int64(bitPattern: get64(b, 8))), Int(Int64(bitPattern: get64(b, 16))))
    }
    let name: [UInt8]
    switch mqName(t, a.a0) { case .success(let n): name = n; case .failure(let e): return e.ret }
    // Linux takes the descriptor before looking the name up.
    if (t.fds.entries.firstIndex { $0 == nil } ?? t.fds.entries.count) >= fdLimit(t) { return err(EMFILE) }
    if let e = mqNameError(name) { return err(e) }
    let reg = t.ipc.mqueues
    let q: MQueueInode
    if let existing = reg.byName[name] {
        if oflag & (O_CREAT | O_EXCL) == O_CREAT | O_EXCL { return err(EEXIST) }
        if oflag & O_ACCMODE == O_ACCMODE { return err(EINVAL) }
        let want: UInt32 = oflag & O_ACCMODE == O_RDONLY ? 4 : oflag & O_ACCMODE == O_WRONLY ? 2 : 6
        if !t.mayAccess(existing, want) { return err(EACCES) }
        q = existing
    } else {
        if oflag & O_CREAT == 0 { return err(ENOENT) }
        switch reg.create(t, name, mode: mode & ~t.fs.umask & 0o7777, attr: attr) {
        case .success(let n): q = n
        case .failure(let e): return e.ret
        }
    }
    guard let d = q.dentry else { return err(ENOENT) }
    let f = MQueueFD(q, flags: oflag, path: Path(mount: reg.mount, dentry: d))
    let fd = t.fds.install(f, cloexec: true, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

func sysMqUnlink(_ t: Task, _ a: Args) -> Int {
    let name: [UInt8]
    switch mqName(t, a.a0) { case .success(let n): name = n; case .failure(let e): return e.ret }
    if let e = mqNameError(name) { return err(e) }
    let reg = t.ipc.mqueues
    guard let q = reg.byName[name] else { return err(ENOENT) }
    // The queues' directory is sticky and root's (01777): the queue's
    // owner, root or CAP_FOWNER may remove it; Linux says EACCES to others.
    let c = t.creds
    if c.fsuid != q.uid && c.fsuid != 0 && !c.has(Cap.fowner) { return err(EACCES) }
    reg.unlink(name, q)
    return 0
}

func sysMqTimedsend(_ t: Task, _ a: Args) -> Int {
    let deadline: Int64?
    switch mqDeadline(t, a.a4) { case .success(let d): deadline = d; case .failure(let e): return e.ret }
    let prio = a.uint(3)
    if prio >= MQ_PRIO_MAX { return err(EINVAL) }
    guard let f = mqFD(t, a.int(0)), f.writable else { return err(EBADF) }
    let q = f.queue
    if a.a2 > UInt64(q.msgsize) { return err(EMSGSIZE) }
    guard let data = t.copyIn(a.a1, Int(a.a2)) else { return err(EFAULT) }
    return q.send(t, (prio, data), nonblocking: f.nonblocking, deadline: deadline)
}

func sysMqTimedreceive(_ t: Task, _ a: Args) -> Int {
    let deadline: Int64?
    switch mqDeadline(t, a.a4) { case .success(let d): deadline = d; case .failure(let e): return e.ret }
    guard let f = mqFD(t, a.int(0)), f.readable else { return err(EBADF) }
    let q = f.queue
    if a.a2 < UInt64(q.msgsize) { return err(EMSGSIZE) }
    switch q.receive(t, nonblocking: f.nonblocking, deadline: deadline) {
    case .failure(let e): return e.ret
    case .success(let m):
        // The message is gone from the queue even when it cannot be stored.
        if a.a3 != 0 && !t.writeI32(a.a3, Int32(bitPattern: m.prio)) { return err(EFAULT) }
        if !m.data.isEmpty && !t.copyOut(a.a1, m.data) { return err(EFAULT) }
        return m.data.count
    }
}

func sysMqNotify(_ t: Task, _ a: Args) -> Int {
    var reg: MQNotify? = nil
    if a.a1 != 0 {
        // struct sigevent: sigev_value, sigev_signo, sigev_notify, then the
        // union (64 bytes in all).
        guard let b = t.copyIn(a.a1, 64) else { return err(EFAULT) }
        let value = get64(b, 0), signo = Int32(bitPattern: get32(b, 8)), kind = Int32(bitPattern: get32(b, 12))
        if kind != SIGEV_NONE_ && kind != SIGEV_SIGNAL_ && kind != SIGEV_THREAD_ { return err(EINVAL) }
        if kind == SIGEV_SIGNAL_ && (signo < 0 || signo > 64) { return err(EINVAL) }
        var socket: NetlinkSocketFD? = nil, cookie: [UInt8] = []
        if kind == SIGEV_THREAD_ {
            // The cookie at sigev_value, and the netlink socket (sigev_signo) to write it to.
            guard let c = t.copyIn(value, NOTIFY_COOKIE_LEN) else { return err(EFAULT) }
            guard let s = t.fds.get(signo) else { return err(EBADF) }
            guard let st = try? s.stat().get(), st.mode & S_IFMT_ == S_IFSOCK_ else { return err(ENOTSOCK) }
            guard let nl = s as? NetlinkSocketFD else { return err(EINVAL) }
            socket = nl; cookie = c
        }
        reg = MQNotify(owner: t.tg, space: t.mm.id, kind: kind, signo: signo, value: value, socket: socket, cookie: cookie)
    }
    guard let f = mqFD(t, a.int(0)) else { return err(EBADF) }
    let q = f.queue
    guard let n = reg else {
        // Only the owner's own registration is removed; anyone else's
        // stays, silently (as Linux).
        if let cur = q.notify, cur.owner === t.tg { q.removeNotification(); q.atime = nowTimespec(); q.ctime = q.atime }
        return 0
    }
    if let cur = q.notify, cur.live { return err(EBUSY) }
    q.notify = n
    q.atime = nowTimespec(); q.ctime = q.atime
    return 0
}

func sysMqGetsetattr(_ t: Task, _ a: Args) -> Int {
    var newFlags: Int64? = nil
    if a.a1 != 0 {
        guard let b = t.copyIn(a.a1, 64) else { return err(EFAULT) }
        newFlags = Int64(bitPattern: get64(b, 0))
    }
    if let nf = newFlags, nf & ~Int64(O_NONBLOCK) != 0 { return err(EINVAL) }
    guard let f = mqFD(t, a.int(0)) else { return err(EBADF) }
    let q = f.queue
    var old = [UInt8](repeating: 0, count: 64)
    put64(&old, 0, UInt64(f.flags & O_NONBLOCK)); put64(&old, 8, UInt64(q.maxmsg))
    put64(&old, 16, UInt64(q.msgsize)); put64(&old, 24, UInt64(q.messages.count))
    if let nf = newFlags {
        if nf & Int64(O_NONBLOCK) != 0 { f.flags |= O_NONBLOCK } else { f.flags &= ~O_NONBLOCK }
        q.atime = nowTimespec(); q.ctime = q.atime
    }
    if a.a2 != 0 && !t.copyOut(a.a2, old) { return err(EFAULT) }
    return 0
}
