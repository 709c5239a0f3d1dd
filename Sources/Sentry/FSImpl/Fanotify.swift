// fanotify (fanotify(7)): notification groups over the Sentry's VFS.
//
// A group (fanotify_init) holds marks (fanotify_mark) on inodes, mounts or
// whole file systems; the events inotify's hooks see (Inotify.swift: open,
// read, write, close) and exec's open reach every group with a mark on the
// file, on its directory with FAN_EVENT_ON_CHILD, on its mount or on its
// file system. A read gives struct fanotify_event_metadata records, each
// with a descriptor of the file opened in the reader (with the group's
// event_f_flags), which raises no events itself.
//
// What is left out, and refused so that a caller can tell: permission
// events (FAN_CLASS_CONTENT/PRE_CONTENT groups are made, but a mark asking
// for a *_PERM event is EINVAL: a file access waiting on a listener's
// answer is not modelled), and the FID reporting modes (FAN_REPORT_FID and
// its relatives: EINVAL at fanotify_init, so the directory-entry events
// that need them are EINVAL at fanotify_mark too).

import Glibc

let FAN_ACCESS_: UInt64 = 0x1, FAN_MODIFY_: UInt64 = 0x2, FAN_CLOSE_WRITE_: UInt64 = 0x8
let FAN_CLOSE_NOWRITE_: UInt64 = 0x10, FAN_OPEN_: UInt64 = 0x20, FAN_OPEN_EXEC_: UInt64 = 0x1000
private let FAN_Q_OVERFLOW: UInt64 = 0x4000
private let FAN_ONDIR: UInt64 = 0x4000_0000, FAN_EVENT_ON_CHILD: UInt64 = 0x0800_0000
/// The events a group without FID reporting may ask for.
private let plainEvents: UInt64 = FAN_ACCESS_ | FAN_MODIFY_ | FAN_CLOSE_WRITE_ | FAN_CLOSE_NOWRITE_ | FAN_OPEN_ | FAN_OPEN_EXEC_
/// Events only FID groups get: ATTRIB, MOVED_FROM/TO, CREATE, DELETE,
/// DELETE_SELF, MOVE_SELF, FS_ERROR, RENAME.
private let fidEvents: UInt64 = 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x8000 | 0x1000_0000
/// OPEN_PERM, ACCESS_PERM, OPEN_EXEC_PERM.
private let permEvents: UInt64 = 0x1_0000 | 0x2_0000 | 0x4_0000

private let FAN_CLOEXEC: UInt32 = 0x1, FAN_NONBLOCK: UInt32 = 0x2
private let FAN_CLASS_BITS: UInt32 = 0xc
private let FAN_UNLIMITED_QUEUE: UInt32 = 0x10, FAN_UNLIMITED_MARKS: UInt32 = 0x20, FAN_ENABLE_AUDIT: UInt32 = 0x40
private let FAN_REPORT_PIDFD: UInt32 = 0x80, FAN_REPORT_TID: UInt32 = 0x100
/// FAN_REPORT_FID, DIR_FID, NAME, TARGET_FID, FD_ERROR (0x2000), MNT (0x4000).
private let fidReportFlags: UInt32 = 0x200 | 0x400 | 0x800 | 0x1000 | 0x2000 | 0x4000

private let FAN_MARK_ADD: UInt32 = 0x1, FAN_MARK_REMOVE: UInt32 = 0x2, FAN_MARK_DONT_FOLLOW: UInt32 = 0x4
private let FAN_MARK_ONLYDIR: UInt32 = 0x8, FAN_MARK_MOUNT: UInt32 = 0x10, FAN_MARK_IGNORED_MASK: UInt32 = 0x20
private let FAN_MARK_IGNORED_SURV_MODIFY: UInt32 = 0x40, FAN_MARK_FLUSH: UInt32 = 0x80
private let FAN_MARK_FILESYSTEM: UInt32 = 0x100, FAN_MARK_EVICTABLE: UInt32 = 0x200, FAN_MARK_IGNORE: UInt32 = 0x400

final class FanotifyMark {
    var mask: UInt64 = 0, ignored: UInt64 = 0
    var survivesModify = false
    /// What it is on: kept alive by the mark.
    let inode: Inode?, mount: Mount?, dev: UInt64
    init(inode: Inode?, mount: Mount?, dev: UInt64) { self.inode = inode; self.mount = mount; self.dev = dev }

    /// The events of `mask` this mark asks for on a file (`isDir`), and
    /// those it ignores. A mark hears about directories only with FAN_ONDIR.
    func wants(_ mask: UInt64, isDir: Bool) -> UInt64 {
        if isDir && self.mask & FAN_ONDIR == 0 { return 0 }
        return self.mask & mask
    }
}

/// Every group with a mark, for the hooks.
final class FanotifyRegistry {
    var groups: [ObjectIdentifier: FanotifyFD] = [:]
    /// Marks of all groups: the hooks do nothing while it is 0.
    var marks = 0

    /// An event (`mask`) on the file at `p`, raised by `t`.
    func emit(_ p: Path, _ mask: UInt64, by t: Task?) {
        for g in groups.values { g.consider(p, mask, by: t) }
    }
}

final class FanotifyFD: FileDescription {
    unowned let kernel: Kernel
    let initFlags: UInt32
    /// The flags of the descriptors events carry (fanotify_init's event_f_flags).
    let eventFlags: Int32
    var inodeMarks: [ObjectIdentifier: FanotifyMark] = [:]
    var mountMarks: [ObjectIdentifier: FanotifyMark] = [:]
    var fsMarks: [UInt64: FanotifyMark] = [:]
    struct Event { var mask: UInt64; let path: Path?; let tgid: Int32; let tid: Int32 }
    var events: [Event] = []
    var waiters = WaitQueue()
    /// Linux's default queue depth (FAN_UNLIMITED_QUEUE lifts it).
    var maxEvents: Int { initFlags & FAN_UNLIMITED_QUEUE != 0 ? Int.max : 16384 }

    init(kernel: Kernel, initFlags: UInt32, eventFlags: Int32) {
        self.kernel = kernel; self.initFlags = initFlags; self.eventFlags = eventFlags
        super.init(flags: O_RDONLY | (initFlags & FAN_NONBLOCK != 0 ? O_NONBLOCK : 0), path: nil)
    }

    var permissionClass: Bool { initFlags & FAN_CLASS_BITS != 0 }
    private var markCount: Int { inodeMarks.count + mountMarks.count + fsMarks.count }

    /// Records a change of this group's marks in the registry.
    func marksChanged(before: Int) {
        let r = kernel.fanotify
        r.marks += markCount - before
        r.groups[ObjectIdentifier(self)] = markCount > 0 ? self : nil
    }

    func consider(_ p: Path, _ mask: UInt64, by t: Task?) {
        let ino = p.inode, isDir = ino.isDir
        var want: UInt64 = 0, ignored: UInt64 = 0
        var own: [FanotifyMark] = []
        if let m = inodeMarks[ObjectIdentifier(ino)] { own.append(m) }
        if let m = mountMarks[ObjectIdentifier(p.mount)] { own.append(m) }
        if let m = fsMarks[fanotifyFSKey(p)] { own.append(m) }
        for m in own { want |= m.wants(mask, isDir: isDir); ignored |= m.ignored }
        // The directory's mark, for its entries, with FAN_EVENT_ON_CHILD.
        if let parent = p.dentry.parent, p.dentry !== p.mount.root,
           let m = inodeMarks[ObjectIdentifier(parent.inode)], m.mask & FAN_EVENT_ON_CHILD != 0 {
            want |= m.wants(mask, isDir: isDir)
        }
        // A modification ends the ignore marks that do not survive it.
        if mask & FAN_MODIFY_ != 0 {
            for m in own where !m.survivesModify { m.ignored = 0 }
        }
        let ev = want & ~ignored & (plainEvents | fidEvents)
        if ev == 0 { return }
        queue(Event(mask: ev, path: p, tgid: t?.tg.tgid ?? 0, tid: t?.tid ?? 0))
    }

    private func queue(_ e: Event) {
        // An unread event of the same file by the same thread (among the
        // last 128, as Linux looks) takes this one's bits.
        if let ep = e.path {
            for k in events.indices.reversed().prefix(128) {
                let o = events[k]
                if let op = o.path, op.inode === ep.inode, o.tgid == e.tgid, initFlags & FAN_REPORT_TID == 0 || o.tid == e.tid {
                    events[k].mask |= e.mask
                    return
                }
            }
        }
        if events.count >= maxEvents {
            if events.last?.mask != FAN_Q_OVERFLOW { events.append(Event(mask: FAN_Q_OVERFLOW, path: nil, tgid: 0, tid: 0)) }
        } else {
            events.append(e)
        }
        waiters.notifyAll()
    }

    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    /// struct fanotify_event_metadata records (24 bytes, version 3), each
    /// with a new descriptor of its file in the reader.
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if let e = waiters.wait(t, nonblocking: nonblocking, until: { !events.isEmpty }) { return e }
        if count < 24 { return err(EINVAL) }
        var out: [UInt8] = []
        while !events.isEmpty && out.count + 24 <= count {
            let e = events[0]
            var fd: Int32 = -1
            if let p = e.path {
                let r = openForEvent(t, p)
                if r < 0 {
                    if out.isEmpty { events.removeFirst(); return r }
                    break
                }
                fd = Int32(r)
            }
            events.removeFirst()
            var rec = [UInt8](repeating: 0, count: 24)
            put32(&rec, 0, 24); rec[4] = 3; rec[6] = 24
            put64(&rec, 8, e.mask)
            put32(&rec, 16, fd)
            put32(&rec, 20, e.path == nil ? 0 : t.vpid(initFlags & FAN_REPORT_TID != 0 ? e.tid : e.tgid))
            out += rec
        }
        if !t.copyOut(buf, out) { return err(EFAULT) }
        return out.count
    }

    /// The event's descriptor: the file opened again with event_f_flags,
    /// a description that raises no events of its own.
    private func openForEvent(_ t: Task, _ p: Path) -> Int {
        let flags = eventFlags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC)
        // A program being run cannot be opened for writing (ETXTBSY).
        if flags & O_ACCMODE != O_RDONLY && p.inode.isRegular && p.inode.runners > 0 { return err(ETXTBSY) }
        let file: FileDescription
        switch p.inode.open(t, flags: flags) { case .success(let f): file = f; case .failure(let e): return e.ret }
        if file.path == nil { file.path = p }
        file.flags = flags | O_LARGEFILE_
        file.fsnotifySilent = true
        if flags & O_ACCMODE != O_RDONLY && p.inode.isRegular {
            p.inode.writers += 1
            file.countedWriter = p.inode
        }
        let fd = t.fds.install(file, cloexec: eventFlags & O_CLOEXEC != 0, limit: fdLimit(t))
        if fd < 0 { file.dropWriter(); file.release() }
        return fd
    }

    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        // struct fanotify_response: no permission event is ever pending.
        count < 8 ? err(EINVAL) : err(ENOENT)
    }
    override func readiness() -> Int16 { events.isEmpty ? 0 : Int16(pollReadable) }
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == 0x541B { return t.writeI32(arg, Int32(events.count * 24)) ? 0 : err(EFAULT) } // FIONREAD
        return err(ENOTTY)
    }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.blksize = 4096; return .success(s)
    }
    override func release() {
        let before = markCount
        inodeMarks.removeAll(); mountMarks.removeAll(); fsMarks.removeAll()
        marksChanged(before: before)
        events.removeAll()
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:[fanotify]".utf8) }
}

func registerFanotify(_ t: SyscallTable) {
    t[300] = sysFanotifyInit
    t[301] = sysFanotifyMark
}

/// fanotify_init(flags, event_f_flags): CAP_SYS_ADMIN (Linux lets others
/// in only with FID reporting, which Moat lacks), known flags, one class.
private func sysFanotifyInit(_ t: Task, _ a: Args) -> Int {
    let flags = a.uint(0), eventFlags = a.uint(1)
    if !t.creds.has(Cap.sysAdmin) { return err(EPERM) }
    let known = FAN_CLOEXEC | FAN_NONBLOCK | FAN_CLASS_BITS | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS |
        FAN_ENABLE_AUDIT | FAN_REPORT_PIDFD | FAN_REPORT_TID | fidReportFlags
    if flags & ~known != 0 || flags & FAN_CLASS_BITS == FAN_CLASS_BITS { return err(EINVAL) }
    if flags & FAN_REPORT_PIDFD != 0 && flags & FAN_REPORT_TID != 0 { return err(EINVAL) }
    // Not modelled: FID records and pidfd records (see the header).
    if flags & (fidReportFlags | FAN_REPORT_PIDFD | FAN_ENABLE_AUDIT) != 0 { return err(EINVAL) }
    let allowedEventFlags = UInt32(bitPattern: O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_NOATIME |
                                   O_LARGEFILE_ | O_CLOEXEC | O_DIRECT)
    if eventFlags & ~allowedEventFlags != 0 || Int32(bitPattern: eventFlags) & O_ACCMODE == 3 { return err(EINVAL) }
    let f = FanotifyFD(kernel: t.kernel, initFlags: flags, eventFlags: Int32(bitPattern: eventFlags))
    let fd = t.fds.install(f, cloexec: flags & FAN_CLOEXEC != 0, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

/// fanotify_mark(fd, flags, mask, dirfd, pathname), checked in Linux's order.
private func sysFanotifyMark(_ t: Task, _ a: Args) -> Int {
    let flags = a.uint(1), mask = a.a2, dirfd = a.int(3), pathAddr = a.a4
    let known = FAN_MARK_ADD | FAN_MARK_REMOVE | FAN_MARK_DONT_FOLLOW | FAN_MARK_ONLYDIR | FAN_MARK_MOUNT |
        FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_FLUSH | FAN_MARK_FILESYSTEM |
        FAN_MARK_EVICTABLE | FAN_MARK_IGNORE
    if flags & ~known != 0 { return err(EINVAL) }
    let type = flags & (FAN_MARK_MOUNT | FAN_MARK_FILESYSTEM)
    if type == FAN_MARK_MOUNT | FAN_MARK_FILESYSTEM { return err(EINVAL) }
    let action = flags & (FAN_MARK_ADD | FAN_MARK_REMOVE | FAN_MARK_FLUSH)
    if action != FAN_MARK_ADD && action != FAN_MARK_REMOVE && action != FAN_MARK_FLUSH { return err(EINVAL) }
    if action == FAN_MARK_FLUSH && flags & ~(FAN_MARK_FLUSH | type) != 0 { return err(EINVAL) }
    let valid = plainEvents | fidEvents | permEvents | FAN_ONDIR | FAN_EVENT_ON_CHILD
    if mask & ~valid != 0 { return err(EINVAL) }
    guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let g = f as? FanotifyFD else { return err(EINVAL) }
    if mask & permEvents != 0 {
        // No permission events on a notification group (Linux), nor any
        // in Moat (the header).
        return err(EINVAL)
    }
    let before = g.inodeMarks.count + g.mountMarks.count + g.fsMarks.count
    defer { g.marksChanged(before: before) }
    if action == FAN_MARK_FLUSH {
        switch type {
        case FAN_MARK_MOUNT: g.mountMarks.removeAll()
        case FAN_MARK_FILESYSTEM: g.fsMarks.removeAll()
        default: g.inodeMarks.removeAll()
        }
        return 0
    }
    // Directory-entry events need FID reporting.
    if mask & fidEvents != 0 { return err(EINVAL) }
    let p: Path
    if pathAddr == 0 {
        switch t.lookup(dirfd, path: [], follow: true, emptyOK: true) { case .success(let x): p = x; case .failure(let e): return e.ret }
    } else {
        switch t.lookup(dirfd, pathAddr, follow: flags & FAN_MARK_DONT_FOLLOW == 0) { case .success(let x): p = x; case .failure(let e): return e.ret }
    }
    if flags & FAN_MARK_ONLYDIR != 0 && !p.inode.isDir { return err(ENOTDIR) }
    if !t.mayAccess(p.inode, 4) { return err(EACCES) }
    let ignoring = flags & (FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORE) != 0
    let existing: FanotifyMark?
    switch type {
    case FAN_MARK_MOUNT: existing = g.mountMarks[ObjectIdentifier(p.mount)]
    case FAN_MARK_FILESYSTEM: existing = g.fsMarks[fanotifyFSKey(p)]
    default: existing = g.inodeMarks[ObjectIdentifier(p.inode)]
    }
    if action == FAN_MARK_REMOVE {
        guard let m = existing else { return err(ENOENT) }
        if ignoring { m.ignored &= ~mask } else { m.mask &= ~mask }
        if m.mask & ~(FAN_ONDIR | FAN_EVENT_ON_CHILD) == 0 && m.ignored == 0 {
            switch type {
            case FAN_MARK_MOUNT: g.mountMarks[ObjectIdentifier(p.mount)] = nil
            case FAN_MARK_FILESYSTEM: g.fsMarks[fanotifyFSKey(p)] = nil
            default: g.inodeMarks[ObjectIdentifier(p.inode)] = nil
            }
        }
        return 0
    }
    let m: FanotifyMark
    if let e = existing {
        m = e
    } else {
        switch type {
        case FAN_MARK_MOUNT: m = FanotifyMark(inode: nil, mount: p.mount, dev: 0); g.mountMarks[ObjectIdentifier(p.mount)] = m
        case FAN_MARK_FILESYSTEM: m = FanotifyMark(inode: nil, mount: nil, dev: fanotifyFSKey(p)); g.fsMarks[m.dev] = m
        default: m = FanotifyMark(inode: p.inode, mount: nil, dev: 0); g.inodeMarks[ObjectIdentifier(p.inode)] = m
        }
    }
    if ignoring {
        m.ignored |= mask
        if flags & FAN_MARK_IGNORED_SURV_MODIFY != 0 { m.survivesModify = true }
    } else {
        m.mask |= mask
    }
    return 0
}

/// What a filesystem mark is on: the file system of `p`'s mount, named by
/// its root's device (one for every file of an overlay, whose own inodes
/// may carry their layer's).
private func fanotifyFSKey(_ p: Path) -> UInt64 { p.mount.root.inode.dev }

extension Kernel {
    /// exec's open of `p`: FAN_OPEN with FAN_OPEN_EXEC.
    @inline(__always) func fanotifyExec(_ p: Path, by t: Task) {
        if fanotify.marks == 0 { return }
        fanotify.emit(p, FAN_OPEN_ | FAN_OPEN_EXEC_, by: t)
    }
}
