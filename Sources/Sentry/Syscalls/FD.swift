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
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        switch a.a1 {
        case 0x5421: // FIONBIO
            guard let v = t.readI32(a.a2) else { return err(EFAULT) }
            if v != 0 { f.flags |= O_NONBLOCK } else { f.flags &= ~O_NONBLOCK }
            return 0
        case 0x5451: t.fds.setCloexec(a.int(0), true); return 0  // FIOCLEX
        case 0x5450: t.fds.setCloexec(a.int(0), false); return 0 // FIONCLEX
        default: return f.ioctl(t, a.a1, a.a2)
        }
    }
    t[436] = { t, a in                                                        // close_range
        let first = a.uint(0), last = a.uint(1), flags = a.uint(2)
        if first > last || flags & ~UInt32(6) != 0 { return err(EINVAL) }
        let end = min(Int(last), t.fds.entries.count - 1)
        if end < Int(first) { return 0 }
        for fd in Int(first)...end {
            if flags & 4 != 0 { if t.fds.get(Int32(fd)) != nil { t.fds.setCloexec(Int32(fd), true) } }
            else { _ = t.fds.close(Int32(fd)) }
        }
        return 0
    }
}

func sysDup3(_ t: Task, _ old: Int32, _ new: Int32, _ flags: Int32, dup2: Bool) -> Int {
    guard let f = t.fds.get(old) else { return err(EBADF) }
    if new < 0 || Int(new) >= fdLimit(t) { return err(EBADF) }
    if old == new { return dup2 ? Int(new) : err(EINVAL) }
    if flags & ~O_CLOEXEC != 0 { return err(EINVAL) }
    t.fds.installAt(f, new, cloexec: flags & O_CLOEXEC != 0)
    return Int(new)
}

func sysPipe2(_ t: Task, _ addr: UInt64, _ flags: Int32) -> Int {
    if flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 { return err(EINVAL) }
    let p = Pipe()
    let ino = newPipeIno()
    let r = PipeFD(pipe: p, reader: true, flags: O_RDONLY | (flags & O_NONBLOCK), ino: ino)
    let w = PipeFD(pipe: p, reader: false, flags: O_WRONLY | (flags & O_NONBLOCK), ino: ino)
    let cloexec = flags & O_CLOEXEC != 0
    let rfd = t.fds.install(r, cloexec: cloexec, limit: fdLimit(t))
    if rfd < 0 { r.release(); w.release(); return rfd }
    let wfd = t.fds.install(w, cloexec: cloexec, limit: fdLimit(t))
    if wfd < 0 { _ = t.fds.close(Int32(rfd)); w.release(); return wfd }
    var fds: [Int32] = [Int32(rfd), Int32(wfd)]
    if !fds.withUnsafeBytes({ t.copyOut(addr, $0.baseAddress!, 8) }) {
        _ = t.fds.close(Int32(rfd)); _ = t.fds.close(Int32(wfd))
        return err(EFAULT)
    }
    return 0
}

func sysFcntl(_ t: Task, _ a: Args) -> Int {
    let fd = a.int(0)
    guard let f = t.fds.get(fd) else { return err(EBADF) }
    switch a.int(1) {
    case F_DUPFD, 1030 /* F_DUPFD_CLOEXEC */:
        let min = a.int(2)
        if min < 0 || Int(min) >= fdLimit(t) { return err(EINVAL) }
        return t.fds.install(f, minFD: min, cloexec: a.int(1) == 1030, limit: fdLimit(t))
    case F_GETFD: return t.fds.cloexec(fd) ? 1 : 0
    case F_SETFD: t.fds.setCloexec(fd, a.int(2) & 1 != 0); return 0
    case F_GETFL:
        return Int(f.flags & ~(O_CLOEXEC)) | (f is PipeFD || f is HostFileFD ? 0 : 0x8000 /* O_LARGEFILE */)
    case F_SETFL:
        let settable = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME
        f.flags = (f.flags & ~settable) | (a.int(2) & settable)
        return 0
    case F_GETLK:
        // No other sandbox process holds locks we track yet: report unlocked.
        guard var b = t.copyIn(a.a2, 32) else { return err(EFAULT) }
        b[0] = 2; b[1] = 0 // l_type = F_UNLCK
        return t.copyOut(a.a2, b) ? 0 : err(EFAULT)
    case F_SETLK, F_SETLKW, 36, 37, 38: // + OFD locks: granted (advisory, single holder model)
        return 0
    case 1031, 1032: // F_SETPIPE_SZ, F_GETPIPE_SZ
        return f is PipeFD ? 65536 : err(EBADF)
    case F_GETOWN, F_SETOWN: return 0
    default: return err(EINVAL)
    }
}
