// dup, fcntl, pipe, ioctl, close_range.

import CMoat
import Glibc

func fdLimit(_ t: Task) -> Int { Int(min(t.tg.rlimits[RL_NOFILE].cur, 1 << 20)) }

func registerFD(_ t: SyscallTable) {
    t[32] = { t, a in                                                         // dup
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        return t.fds.install(f, cloexec: false, limit: fdLimit(t))
    }
    t[33] = { t, a in sysDup3(t, a.int(0), a.int(1), 0, dup2: true) }         // dup2
    t[292] = { t, a in sysDup3(t, a.int(0), a.int(1), a.int(2), dup2: false) } // dup3
    t[72] = sysFcntl
    t[22] = { t, a in sysPipe2(t, a.a0, 0) }                                  // pipe
    t[293] = { t, a in sysPipe2(t, a.a0, a.int(1)) }                          // pipe2
    t[16] = { t, a in                                                         // ioctl
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }        // not on O_PATH

        switch a.a1 {
        case 0x5421: // FIONBIO
            guard let v = t.readI32(a.a2) else { return err(EFAULT) }
            if v != 0 { f.flags |= O_NONBLOCK } else { f.flags &= ~O_NONBLOCK }
            return 0
        case 0x5451: t.fds.setCloexec(a.int(0), true); return 0  // FIOCLEX
        case 0x5450: t.fds.setCloexec(a.int(0), false); return 0 // FIONCLEX
        case FIOASYNC_:
            guard let v = t.readI32(a.a2) else { return err(EFAULT) }
            if (v != 0) == (f.flags & O_ASYNC != 0) { return 0 }
            if !f.asyncEnabled(t, fd: a.int(0)) { return err(ENOTTY) } // no fasync: Linux's answer
            if v != 0 { f.flags |= O_ASYNC } else { f.flags &= ~O_ASYNC }
            return 0
        // A socket's I/O-signal owner (Linux's sock_ioctl): F_SETOWN's and
        // F_GETOWN's rules, the pid through a pointer.
        case 0x8901 where f.isSocket, 0x8902 where f.isSocket:                  // FIOSETOWN, SIOCSPGRP
            guard let v = t.readI32(a.a2) else { return err(EFAULT) }
            return asyncFcntl(t, f, F_SETOWN, UInt64(UInt32(bitPattern: v))) ?? 0
        case 0x8903 where f.isSocket, 0x8904 where f.isSocket:                  // FIOGETOWN, SIOCGPGRP
            let owner = asyncFcntl(t, f, F_GETOWN, 0) ?? 0
            return t.writeI32(a.a2, Int32(truncatingIfNeeded: owner)) ? 0 : err(EFAULT)
        default:
            // Landlock's IOCTL_DEV: a device opened under a domain that
            // refuses it takes only the commands the VFS itself answers.
            if f.landlockDenied & Landlock.ioctlDev != 0 && !Landlock.vfsIoctls.contains(a.a1) { return err(EACCES) }
            return f.ioctl(t, a.a1, a.a2)
        }
    }
    t[73] = sysFlock
    t[436] = { t, a in                                                        // close_range
        let first = a.uint(0), last = a.uint(1), flags = a.uint(2)
        if first > last || flags & ~UInt32(6) != 0 { return err(EINVAL) }
        // CLOSE_RANGE_UNSHARE: a table shared with CLONE_FILES becomes this
        // task's own copy first, so the others keep their descriptors.
        if flags & 2 != 0 { t.unshareFDTable() }
        let end = min(Int(last), t.fds.entries.count - 1)
        if end < Int(first) { return 0 }
        for fd in Int(first)...end {
            if flags & 4 != 0 { if t.fds.get(Int32(fd)) != nil { t.fds.setCloexec(Int32(fd), true) } }
            else { _ = t.fds.close(Int32(fd)) }
        }
        return 0
    }
}

extension FileDescription {
    /// A socket of any family: sock_ioctl's own commands apply to it.
    var isSocket: Bool { self is UnixSocketFD || self is UnixSockFD || self is InetSocketFD || self is NetlinkSocketFD || self is LoopbackSockFD }
}

func sysDup3(_ t: Task, _ old: Int32, _ new: Int32, _ flags: Int32, dup2: Bool) -> Int {
    if !dup2 && (old == new || flags & ~O_CLOEXEC != 0) { return err(EINVAL) }   // dup3 checks these first
    guard let f = t.fds.get(old) else { return err(EBADF) }
    if new < 0 || Int(new) >= fdLimit(t) { return err(EBADF) }
    if old == new { return Int(new) }
    if flags & ~O_CLOEXEC != 0 { return err(EINVAL) }
    t.fds.installAt(f, new, cloexec: flags & O_CLOEXEC != 0)
    return Int(new)
}

func sysPipe2(_ t: Task, _ addr: UInt64, _ flags: Int32) -> Int {
    if flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 { return err(EINVAL) }
    let p = Pipe()
    let ino = newPipeIno()
    p.ownInode = ownedInode(t, ino: ino, mode: S_IFIFO_ | 0o600, dev: 12)
    let r = PipeFD(pipe: p, reader: true, flags: O_RDONLY | (flags & (O_NONBLOCK | O_DIRECT)), ino: ino)
    let w = PipeFD(pipe: p, reader: false, flags: O_WRONLY | (flags & (O_NONBLOCK | O_DIRECT)), ino: ino)
    return installPair(t, r, w, cloexec: flags & O_CLOEXEC != 0, at: addr)
}

/// A pipe's or socket's own inode (FileDescription.ownInode), owned by
/// its creator's fsuid and fsgid.
func ownedInode(_ t: Task, ino: UInt64, mode: UInt32, dev: UInt64) -> Inode {
    let i = Inode(ino: ino, mode: mode, dev: dev)
    i.uid = t.creds.fsuid; i.gid = t.creds.fsgid
    return i
}

/// Installs two new descriptions (pipe2, socketpair) and writes their fds
/// as int[2] to `addr`; on any failure neither fd stays open.
func installPair(_ t: Task, _ a: FileDescription, _ b: FileDescription, cloexec: Bool, at addr: UInt64) -> Int {
    let fa = t.fds.install(a, cloexec: cloexec, limit: fdLimit(t))
    if fa < 0 { a.release(); b.release(); return fa }
    let fb = t.fds.install(b, cloexec: cloexec, limit: fdLimit(t))
    if fb < 0 { _ = t.fds.close(Int32(fa)); b.release(); return fb }
    var fds: [Int32] = [Int32(fa), Int32(fb)]
    if !fds.withUnsafeBytes({ t.copyOut(addr, $0.baseAddress!, 8) }) {
        _ = t.fds.close(Int32(fa)); _ = t.fds.close(Int32(fb))
        return err(EFAULT)
    }
    return 0
}

func sysFcntl(_ t: Task, _ a: Args) -> Int {
    let fd = a.int(0)
    guard let f = t.fds.get(fd) else { return err(EBADF) }
    // An O_PATH descriptor takes only these (Linux's check_fcntl_cmd).
    if f.flags & O_PATH != 0 && ![F_DUPFD, 1030, F_GETFD, F_SETFD, F_GETFL].contains(a.int(1)) { return err(EBADF) }
    switch a.int(1) {
    case F_DUPFD, 1030 /* F_DUPFD_CLOEXEC */:
        let min = a.int(2)
        if min < 0 || Int(min) >= fdLimit(t) { return err(EINVAL) }
        return t.fds.install(f, minFD: min, cloexec: a.int(1) == 1030, limit: fdLimit(t))
    case F_GETFD: return t.fds.cloexec(fd) ? 1 : 0
    case F_SETFD: t.fds.setCloexec(fd, a.int(2) & 1 != 0); return 0
    case F_GETFL: return Int(f.statusFlags)
    case F_SETFL:
        let settable = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME
        let wasAsync = f.flags & O_ASYNC != 0
        f.flags = (f.flags & ~settable) | (a.int(2) & settable)
        // Files without signal-driven I/O do not keep the flag (as on Linux).
        if !wasAsync && f.flags & O_ASYNC != 0 && !f.asyncEnabled(t, fd: fd) { f.flags &= ~O_ASYNC }
        return 0
    case F_GETLK, F_SETLK, F_SETLKW, 36, 37, 38: // and F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW
        return sysRecordLock(t, f, a.int(1), a.a2)
    case 1031: // F_SETPIPE_SZ
        guard let p = f as? PipeFD else { return err(EBADF) }
        return p.pipe.resize(UInt64(UInt32(truncatingIfNeeded: a.a2)), privileged: t.creds.has(Cap.sysResource),
                             maxSize: t.kernel.sysctl.pipeMaxSize)
    case 1032: // F_GETPIPE_SZ
        guard let p = f as? PipeFD else { return err(EBADF) }
        return p.pipe.capacity
    case F_GETOWN, F_SETOWN, F_SETOWN_EX_, F_GETOWN_EX_, F_SETSIG_, F_GETSIG_:
        return asyncFcntl(t, f, a.int(1), a.a2) ?? err(EINVAL)
    case F_NOTIFY_: return sysDnotify(t, f, fd: a.int(0), a.uint(2))
    case 1024: return sysLease(t, f, set: a.int(2))      // F_SETLEASE
    case 1025: return sysLease(t, f, set: nil)           // F_GETLEASE
    case 1033: return sysSeals(t, f, add: a.uint(2))     // F_ADD_SEALS
    case 1034: return sysSeals(t, f, add: nil)           // F_GET_SEALS
    default: return err(EINVAL)
    }
}

/// flock(2): whole-file locks owned by the open file description.
func sysFlock(_ t: Task, _ a: Args) -> Int {
    guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
    guard let key = lockKey(f) else { return err(EINVAL) }
    let op = a.int(1)
    let nb = op & 4 != 0
    let kind = op & ~4
    if kind != 1 && kind != 2 && kind != 8 { return err(EINVAL) } // LOCK_SH, LOCK_EX, LOCK_UN
    let locks = t.kernel.fileLocks
    let owner = FileLocks.Owner.description(ObjectIdentifier(f))
    f.lockKey = key
    if kind == 8 {
        locks.set(key, owner: owner, exclusive: false, start: 0, end: UInt64.max, pid: t.tg.tgid, flock: true, unlock: true)
        return 0
    }
    while locks.conflict(key, owner: owner, exclusive: kind == 2, start: 0, end: UInt64.max, flock: true) != nil {
        if nb { return err(EWOULDBLOCK) }
        locks.waiters.add(t)
        let r = t.block(deadline: nil)
        locks.waiters.remove(t)
        if r == .interrupted && locks.conflict(key, owner: owner, exclusive: kind == 2, start: 0, end: UInt64.max, flock: true) != nil {
            return -ERESTARTSYS
        }
    }
    locks.set(key, owner: owner, exclusive: kind == 2, start: 0, end: UInt64.max, pid: t.tg.tgid, flock: true, unlock: false)
    return 0
}

/// What a lock on `f` is keyed by: its inode, or for a pipe or a socket
/// (an inode of pipefs or sockfs on Linux, outside the tree here) the
/// device and inode number fstat gives it: both take locks on Linux.
private func lockKey(_ f: FileDescription) -> FileLocks.Key? {
    if let i = f.inode { return FileLocks.key(i) }
    guard case .success(let st) = f.stat() else { return nil }
    return FileLocks.Key(dev: st.dev, ino: st.ino)
}

/// fcntl record locks: POSIX (per process) and OFD (per description).
func sysRecordLock(_ t: Task, _ f: FileDescription, _ cmd: Int32, _ addr: UInt64) -> Int {
    guard let key = lockKey(f) else { return err(EINVAL) }
    guard var b = t.copyIn(addr, 32) else { return err(EFAULT) }
    let type = Int16(bitPattern: UInt16(b[0]) | UInt16(b[1]) << 8)
    let whence = Int16(bitPattern: UInt16(b[2]) | UInt16(b[3]) << 8)
    let lstart = Int64(bitPattern: get64(b, 8)), llen = Int64(bitPattern: get64(b, 16))
    let ofd = cmd == 36 || cmd == 37 || cmd == 38
    if ofd && get32(b, 24) != 0 { return err(EINVAL) } // l_pid must be 0
    var base: Int64
    switch Int32(whence) {
    case SEEK_SET: base = 0
    case SEEK_CUR: base = f.offset
    case SEEK_END: base = f.fileSize()
    default: return err(EINVAL)
    }
    var start = base &+ lstart
    var end: Int64 = llen == 0 ? Int64.max : start &+ llen
    if llen < 0 { end = start; start = start &+ llen }
    if start < 0 || end < start { return err(EINVAL) }
    let exclusive = type == 1 // F_WRLCK
    if type != 0 && type != 1 && type != 2 { return err(EINVAL) }
    let locks = t.kernel.fileLocks
    let owner: FileLocks.Owner = ofd ? .description(ObjectIdentifier(f)) : .process(t.tg.tgid)
    f.lockKey = key
    let s = UInt64(start), e = UInt64(end)
    if cmd == F_GETLK || cmd == 36 {
        if type == 2 { return err(EINVAL) }
        if let c = locks.conflict(key, owner: owner, exclusive: exclusive, start: s, end: e, flock: false) {
            b[0] = c.exclusive ? 1 : 0; b[1] = 0; b[2] = 0; b[3] = 0
            put64(&b, 8, c.start)
            put64(&b, 16, c.end == UInt64(Int64.max) ? 0 : c.end - c.start)
            put32(&b, 24, { if case .description = c.owner { return -1 }; return t.vpidIfSeen(c.pid) }())   // 0: an owner in another pid namespace
        } else {
            b[0] = 2; b[1] = 0
        }
        return t.copyOut(addr, b) ? 0 : err(EFAULT)
    }
    if type == 0 && !f.readable { return err(EBADF) }
    if type == 1 && !f.writable { return err(EBADF) }
    if type == 2 {
        locks.set(key, owner: owner, exclusive: false, start: s, end: e, pid: t.tg.tgid, flock: false, unlock: true)
        return 0
    }
    let wait = cmd == F_SETLKW || cmd == 38
    while let c = locks.conflict(key, owner: owner, exclusive: exclusive, start: s, end: e, flock: false) {
        if !wait { return err(EAGAIN) }
        if !ofd, case .process = c.owner, locks.wouldDeadlock(owner, waitingFor: c.owner) { return err(EDEADLK) }
        if !ofd { locks.blockedOn[owner] = c.owner }
        locks.waiters.add(t)
        let r = t.block(deadline: nil)
        locks.waiters.remove(t)
        if !ofd { locks.blockedOn[owner] = nil }
        if r == .interrupted && locks.conflict(key, owner: owner, exclusive: exclusive, start: s, end: e, flock: false) != nil {
            return -ERESTARTSYS
        }
    }
    locks.set(key, owner: owner, exclusive: exclusive, start: s, end: e, pid: t.tg.tgid, flock: false, unlock: false)
    return 0
}

// MARK: - leases

/// The descriptions open on `key` anywhere in the sandbox (O_PATH ones do
/// not count): what a new lease conflicts with.
private func openDescriptions(_ k: Kernel, _ key: FileLocks.Key) -> [FileDescription] {
    var seen = Set<ObjectIdentifier>()
    var out: [FileDescription] = []
    for t in k.tasks.values {
        for e in t.fds.entries {
            guard let f = e?.file, f.flags & O_PATH == 0, let i = f.inode, FileLocks.key(i) == key else { continue }
            if seen.insert(ObjectIdentifier(f)).inserted { out.append(f) }
        }
    }
    return out
}

/// F_SETLEASE (`set`: F_RDLCK 0, F_WRLCK 1, F_UNLCK 2) and F_GETLEASE (nil),
/// as fcntl(2): a lease is on a regular file, taken by its owner or with
/// CAP_LEASE (EACCES); a read lease needs the file open for writing
/// nowhere, this description included, a write lease needs it open by no
/// other description (EAGAIN); removing a lease that is not there is
/// EAGAIN. How a lease breaks: breakLeases.
func sysLease(_ t: Task, _ f: FileDescription, set: Int32?) -> Int {
    let locks = t.kernel.fileLocks
    let id = ObjectIdentifier(f)
    let mine = locks.leases[id].flatMap { $0.file === f ? $0 : nil }
    guard let set = set else { return mine.map { $0.write ? 1 : 0 } ?? 2 }
    guard let ino = f.inode, ino.isRegular, f.flags & O_PATH == 0 else { return err(EINVAL) }
    if set != 0 && set != 1 && set != 2 { return err(EINVAL) }
    guard case .success(let st) = ino.stat() else { return err(EINVAL) }
    if st.uid != t.creds.fsuid && !t.creds.has(Cap.lease) { return err(EACCES) }
    if set == 2 {
        if mine == nil { return err(EAGAIN) }
        locks.leases[id] = nil
        return 0
    }
    let key = FileLocks.key(ino)
    let others = openDescriptions(t.kernel, key).filter { $0 !== f }
    if set == 0 && (f.writable || others.contains { $0.writable }) { return err(EAGAIN) }
    if set == 1 && !others.isEmpty { return err(EAGAIN) }
    // The break signal goes to the process that took the lease (Linux
    // sets the description's owner, as F_SETOWN would).
    var o = f.asyncOwner ?? AsyncOwner()
    o.kind = .process; o.id = t.tg.tgid
    f.asyncOwner = o
    locks.leases[id] = FileLocks.Lease(file: f, key: key, write: set == 1)
    return 0
}

/// An open of `ino` (`write`: for writing, or truncating) by `opener`, or a
/// truncate(2), breaks the leases of other descriptions it conflicts with
/// (any open for a write lease, a write for a read lease): the holder gets
/// SIGIO, or its F_SETSIG signal, and the lease is gone at once, as on
/// Linux with /proc/sys/fs/lease-break-time 0 (the opener does not wait
/// for the holder). Returns false when the opener, with O_NONBLOCK, must
/// fail with EWOULDBLOCK, as Linux answers when it starts a break.
func breakLeases(_ t: Task, _ ino: Inode, opener: FileDescription?, write: Bool, nonblocking: Bool) -> Bool {
    let locks = t.kernel.fileLocks
    if locks.leases.isEmpty || !ino.isRegular { return true }
    let key = FileLocks.key(ino)
    var broke = false
    for (id, l) in locks.leases where l.key == key {
        guard let holder = l.file, holder.refs > 0 else { locks.leases[id] = nil; continue }
        if holder === opener || !(l.write || write) { continue }
        locks.leases[id] = nil
        broke = true
        guard let o = holder.asyncOwner, o.id != 0 else { continue }
        let sig = o.signal != 0 ? o.signal : SIGIO
        var info = SigInfo(signo: sig)
        info.code = 0x80 // SI_KERNEL
        t.kernel.threadGroup(o.id)?.sendSignal(sig, info)
    }
    return !(broke && nonblocking)
}
