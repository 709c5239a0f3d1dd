// inotify: events for changes made inside the sandbox.
//
// Watches are keyed by the inode object they were added on (kept alive by
// the watch); the dentry cache gives one object per file for the file
// systems here. The syscall paths that change files call the `inotify*`
// hooks below, which cost one comparison while no watch exists.

import CMoat
import Glibc

let IN_ACCESS_: UInt32 = 0x1, IN_MODIFY_: UInt32 = 0x2, IN_ATTRIB_: UInt32 = 0x4
let IN_CLOSE_WRITE_: UInt32 = 0x8, IN_CLOSE_NOWRITE_: UInt32 = 0x10, IN_OPEN_: UInt32 = 0x20
let IN_MOVED_FROM_: UInt32 = 0x40, IN_MOVED_TO_: UInt32 = 0x80, IN_CREATE_: UInt32 = 0x100
let IN_DELETE_: UInt32 = 0x200, IN_DELETE_SELF_: UInt32 = 0x400, IN_MOVE_SELF_: UInt32 = 0x800
let IN_IGNORED_: UInt32 = 0x8000, IN_ISDIR_: UInt32 = 0x4000_0000
private let IN_ALL_EVENTS: UInt32 = 0xfff
private let IN_ONLYDIR: UInt32 = 0x0100_0000, IN_DONT_FOLLOW: UInt32 = 0x0200_0000, IN_EXCL_UNLINK: UInt32 = 0x0400_0000
private let IN_MASK_CREATE: UInt32 = 0x1000_0000, IN_MASK_ADD: UInt32 = 0x2000_0000, IN_ONESHOT: UInt32 = 0x8000_0000

final class InotifyWatch {
    unowned let owner: InotifyFD
    let wd: Int32
    var mask: UInt32
    let inode: Inode
    init(owner: InotifyFD, wd: Int32, mask: UInt32, inode: Inode) { self.owner = owner; self.wd = wd; self.mask = mask; self.inode = inode }
}

/// Every watch in the sandbox, by watched inode.
final class InotifyRegistry {
    var byInode: [ObjectIdentifier: [InotifyWatch]] = [:]
    /// dnotify's marks (Dnotify.swift), by directory.
    var dnotifyMarks: [ObjectIdentifier: [DnotifyMark]] = [:]
    /// Watches and dnotify marks: the hooks below do nothing while it is 0.
    var count = 0
    var nextCookie: UInt32 = 1
    /// Watched inodes unlinked while open: DELETE_SELF waits for their last close.
    var goneAtClose: Set<ObjectIdentifier> = []

    func add(_ w: InotifyWatch) { byInode[ObjectIdentifier(w.inode), default: []].append(w); count += 1 }
    func remove(_ w: InotifyWatch) {
        let k = ObjectIdentifier(w.inode)
        byInode[k]?.removeAll { $0 === w }
        if byInode[k]?.isEmpty == true { byInode[k] = nil }
        count -= 1
    }

    /// Queues `mask` for the watches on `inode` (with `name` when the
    /// event is about an entry of a watched directory).
    /// `unlinkedChild`: an event of a file no longer linked in `inode`, the
    /// directory it was in, which watches with IN_EXCL_UNLINK do not hear.
    func emit(_ inode: Inode, _ mask: UInt32, name: [UInt8] = [], cookie: UInt32 = 0, unlinkedChild: Bool = false) {
        // dnotify hears about a directory's entries and the directory itself.
        if !dnotifyMarks.isEmpty && (!name.isEmpty || inode.isDir) && !unlinkedChild { dnotify(inode, Self.dnotifyBits(mask)) }
        guard let ws = byInode[ObjectIdentifier(inode)] else { return }
        for w in ws where w.mask & mask & IN_ALL_EVENTS != 0 || mask & IN_IGNORED_ != 0 {
            if unlinkedChild && w.mask & IN_EXCL_UNLINK != 0 { continue }
            w.owner.queue(wd: w.wd, mask: mask, cookie: cookie, name: name)
            if w.mask & IN_ONESHOT != 0 && mask & IN_IGNORED_ == 0 { w.owner.drop(w) }
        }
    }

    /// The inode is gone: DELETE_SELF, then IGNORED, and the watches end.
    func gone(_ inode: Inode) {
        for m in dnotifyMarks[ObjectIdentifier(inode)] ?? [] { removeDnotify(m) }
        guard let ws = byInode[ObjectIdentifier(inode)] else { return }
        emit(inode, IN_DELETE_SELF_)
        for w in ws { w.owner.drop(w) }
    }
}

final class InotifyFD: FileDescription {
    unowned let kernel: Kernel
    var watches: [Int32: InotifyWatch] = [:]
    var nextWD: Int32 = 1
    var events: [[UInt8]] = []
    /// Whether IN_Q_OVERFLOW is among the unread events: Linux queues it
    /// once until read (a flag, since scanning a full queue for it on every
    /// event past the limit made inotify05's 16384 overflows quadratic).
    private var overflowQueued = false
    var waiters = WaitQueue()
    /// fs.inotify.max_queued_events when this instance was made: the
    /// event past it is replaced by one IN_Q_OVERFLOW (wd -1), queued
    /// once until read, as Linux's overflow event.
    let maxEvents: Int
    init(kernel: Kernel, flags: Int32) {
        self.kernel = kernel
        maxEvents = kernel.sysctl.entries["fs/inotify/max_queued_events"].flatMap { Int($0.value) } ?? 16384
        super.init(flags: flags, path: nil)
    }
    private static let overflowEvent: [UInt8] = {
        var e = [UInt8](repeating: 0, count: 16)
        put32(&e, 0, -1); put32(&e, 4, 0x4000)                               // IN_Q_OVERFLOW
        return e
    }()

    func queue(wd: Int32, mask: UInt32, cookie: UInt32, name: [UInt8]) {
        // struct inotify_event, the name NUL-padded to a multiple of 16.
        let len = name.isEmpty ? 0 : (name.count + 1 + 15) & ~15
        var e = [UInt8](repeating: 0, count: 16 + len)
        put32(&e, 0, wd); put32(&e, 4, Int32(bitPattern: mask)); put32(&e, 8, Int32(bitPattern: cookie))
        put32(&e, 12, Int32(len))
        e.replaceSubrange(16..<16 + name.count, with: name)
        if events.count >= maxEvents {
            if overflowQueued { return }
            overflowQueued = true
            events.append(InotifyFD.overflowEvent)
            waiters.notifyAll()
            return
        }
        // An event identical to the last unread one is merged into it.
        if events.last == e { return }
        events.append(e)
        waiters.notifyAll()
    }

    /// Ends a watch with IN_IGNORED.
    func drop(_ w: InotifyWatch) {
        guard watches[w.wd] === w else { return }
        watches[w.wd] = nil
        kernel.inotify.remove(w)
        queue(wd: w.wd, mask: IN_IGNORED_, cookie: 0, name: [])
    }

    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if let e = waiters.wait(t, nonblocking: nonblocking, until: { !events.isEmpty }) { return e }
        if count < events[0].count { return err(EINVAL) }
        var out: [UInt8] = []
        var n = 0
        var readOverflow = false
        while n < events.count && out.count + events[n].count <= count {
            if overflowQueued && events[n] == InotifyFD.overflowEvent { readOverflow = true }
            out += events[n]; n += 1
        }
        if !t.copyOut(buf, out) { return err(EFAULT) }
        events.removeFirst(n)
        if readOverflow { overflowQueued = false }
        return out.count
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    override func readiness() -> Int16 { events.isEmpty ? 0 : Int16(pollReadable) }
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == 0x541B { return t.writeI32(arg, Int32(events.reduce(0) { $0 + $1.count })) ? 0 : err(EFAULT) } // FIONREAD
        return err(ENOTTY)
    }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.blksize = 4096; return .success(s)
    }
    override func release() {
        for w in watches.values { kernel.inotify.remove(w) }
        watches.removeAll()
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("anon_inode:inotify".utf8) }
}

func registerInotify(_ t: SyscallTable) {
    t[253] = { t, _ in sysInotifyInit(t, 0) }                 // inotify_init
    t[294] = { t, a in sysInotifyInit(t, a.int(0)) }          // inotify_init1
    t[254] = sysInotifyAddWatch
    t[255] = { t, a in                                        // inotify_rm_watch
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        guard let ino = f as? InotifyFD else { return err(EINVAL) }
        guard let w = ino.watches[a.int(1)] else { return err(EINVAL) }
        ino.drop(w)
        return 0
    }
}

private func sysInotifyInit(_ t: Task, _ flags: Int32) -> Int {
    if flags & ~(O_NONBLOCK | O_CLOEXEC) != 0 { return err(EINVAL) }
    let f = InotifyFD(kernel: t.kernel, flags: O_RDONLY | (flags & O_NONBLOCK))
    let fd = t.fds.install(f, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

private func sysInotifyAddWatch(_ t: Task, _ a: Args) -> Int {
    guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let ino = f as? InotifyFD else { return err(EINVAL) }
    let mask = a.uint(2)
    if mask & IN_ALL_EVENTS == 0 { return err(EINVAL) }
    if mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0 { return err(EINVAL) }
    let p: Path
    switch t.lookup(AT_FDCWD_, a.a1, follow: mask & IN_DONT_FOLLOW == 0) {
    case .success(let x): p = x
    case .failure(let e): return e.ret
    }
    if mask & IN_ONLYDIR != 0 && !p.inode.isDir { return err(ENOTDIR) }
    if !t.mayAccess(p.inode, 4) { return err(EACCES) }
    let keep = mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK)
    if let w = ino.watches.values.first(where: { $0.inode === p.inode }) {
        if mask & IN_MASK_CREATE != 0 { return err(EEXIST) }
        w.mask = mask & IN_MASK_ADD != 0 ? w.mask | keep : keep
        return Int(w.wd)
    }
    let w = InotifyWatch(owner: ino, wd: ino.nextWD, mask: keep, inode: p.inode)
    ino.nextWD += 1
    ino.watches[w.wd] = w
    t.kernel.inotify.add(w)
    return Int(w.wd)
}

// MARK: - Hooks called by the syscalls that change files

extension Kernel {
    /// An event about the file at `p`: to its own watches and, with its
    /// name, to its directory's.
    /// `inodeEvent`: a change of the file itself (truncate, attributes),
    /// which IN_EXCL_UNLINK does not silence, unlike what is done through
    /// an open file (open, read, write, close: Linux's path events).
    @inline(__always) func inotifyFile(_ p: Path?, _ mask: UInt32, inodeEvent: Bool = false) {
        if inotify.count == 0 && fanotify.marks == 0 { return }
        guard let p = p else { return }
        inotifyFileSlow(p, mask, inodeEvent: inodeEvent || mask & IN_ATTRIB_ != 0)
    }

    /// An event about what was done through `f`: none for a description
    /// fanotify handed to a listener (Linux's FMODE_NONOTIFY).
    @inline(__always) func inotifyFile(_ f: FileDescription, _ mask: UInt32, inodeEvent: Bool = false) {
        if f.fsnotifySilent { return }
        inotifyFile(f.path, mask, inodeEvent: inodeEvent)
    }

    private func inotifyFileSlow(_ p: Path, _ mask: UInt32, inodeEvent: Bool) {
        let unlinked = p.dentry.dead && !inodeEvent
        let m = mask | (p.inode.isDir ? IN_ISDIR_ : 0)
        // The parent's watch hears first, then the file's own (Linux's order);
        // after an unlink still the directory it was in, under its old name,
        // unless the watch asked for IN_EXCL_UNLINK.
        if let parent = p.dentry.parent, p.dentry !== p.mount.root {
            inotify.emit(parent.inode, m, name: p.dentry.name, unlinkedChild: unlinked)
        }
        // An unlinked file's own watches with IN_EXCL_UNLINK stop hearing
        // what is done through its open files too.
        inotify.emit(p.inode, m, unlinkedChild: unlinked)
        // fanotify (Fanotify.swift) hears the same file events.
        if fanotify.marks > 0 { fanotify.emit(p, UInt64(mask), by: currentTask) }
    }

    /// An event for the inode's own watches only, not its directory's: a
    /// link count change (Linux's fsnotify_link_count).
    @inline(__always) func inotifyInode(_ i: Inode, _ mask: UInt32) {
        if inotify.count == 0 { return }
        inotify.emit(i, mask | (i.isDir ? IN_ISDIR_ : 0))
    }

    /// An entry of `dir` named `name` was created or deleted.
    @inline(__always) func inotifyEntry(_ dir: Inode, _ name: [UInt8], _ mask: UInt32, isDir: Bool) {
        if inotify.count == 0 { return }
        inotify.emit(dir, mask | (isDir ? IN_ISDIR_ : 0), name: name)
    }

    /// `name` was unlinked from `dir` (or, with dir nil, replaced by a
    /// rename): the inode's own watches learn that its links changed, the
    /// directory's that the entry went, and the inode's that it is gone
    /// when no link is left.
    /// An inode no longer linked goes at once when nothing holds it (Linux's
    /// d_delete: its DELETE_SELF and IGNORED before the directory's
    /// DELETE), else at its last close (inotifyClosed).
    @inline(__always) func inotifyUnlinked(_ dir: Inode?, _ name: [UInt8], _ ino: Inode) {
        if inotify.count == 0 { return }
        if !ino.isDir { inotify.emit(ino, IN_ATTRIB_) }
        let links = (try? ino.stat().get().nlink) ?? 0
        if ino.isDir || links == 0 {
            if inotify.byInode[ObjectIdentifier(ino)] != nil && isHeld(ino) {
                inotify.goneAtClose.insert(ObjectIdentifier(ino))
            } else {
                inotify.gone(ino)
            }
        }
        if let d = dir { inotify.emit(d, IN_DELETE_ | (ino.isDir ? IN_ISDIR_ : 0), name: name) }
    }

    /// The last close of `f`: an unlinked file waiting for it goes now,
    /// unless another open file or a working directory still holds it.
    func inotifyClosed(_ f: FileDescription) {
        guard !inotify.goneAtClose.isEmpty, let ino = f.inode, inotify.goneAtClose.contains(ObjectIdentifier(ino)) else { return }
        if isHeld(ino, except: f) { return }
        inotify.goneAtClose.remove(ObjectIdentifier(ino))
        inotify.gone(ino)
    }

    /// Whether an open file (other than `except`) or a working directory is on `ino`.
    private func isHeld(_ ino: Inode, except: FileDescription? = nil) -> Bool {
        var seenFS = Set<ObjectIdentifier>(), seenFDs = Set<ObjectIdentifier>()
        for tg in threadGroups.values {
            for task in tg.tasks {
                if seenFS.insert(ObjectIdentifier(task.fs)).inserted, task.fs.cwd.inode === ino { return true }
                if seenFDs.insert(ObjectIdentifier(task.fds)).inserted,
                   task.fds.entries.contains(where: { $0.map { $0.file !== except && $0.file.inode === ino } ?? false }) { return true }
            }
        }
        return false
    }

    /// A rename: MOVED_FROM and MOVED_TO share a cookie; the moved object's
    /// own watches get MOVE_SELF.
    @inline(__always) func inotifyRename(_ from: Inode, _ oldName: [UInt8], _ to: Inode, _ newName: [UInt8], _ moved: Inode) {
        if inotify.count == 0 { return }
        let cookie = inotify.nextCookie
        inotify.nextCookie &+= 1
        let d = moved.isDir ? IN_ISDIR_ : 0
        inotify.emit(from, IN_MOVED_FROM_ | d, name: oldName, cookie: cookie)
        inotify.emit(to, IN_MOVED_TO_ | d, name: newName, cookie: cookie)
        inotify.emit(moved, IN_MOVE_SELF_)                  // no IN_ISDIR here, as in Linux
        // dnotify's DN_RENAME: a rename within one directory, told to it.
        if from === to { inotify.dnotify(from, DN_RENAME_) }
    }
}
