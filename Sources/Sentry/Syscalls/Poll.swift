// poll, ppoll, select, pselect6.

import CMoat
import Glibc

/// The poll bits beyond POLLIN/POLLOUT (asm-generic/poll.h). Files report
/// them like Linux does: a program may wait for POLLRDNORM alone.
let POLLRDNORM_: Int32 = 0x040
let POLLRDBAND_: Int32 = 0x080
let POLLWRNORM_: Int32 = 0x100
let POLLWRBAND_: Int32 = 0x200
/// "Readable" and "writable" as most Linux files say it.
let pollReadable = POLLIN | POLLRDNORM_
let pollWritable = POLLOUT | POLLWRNORM_

func registerPoll(_ t: SyscallTable) {
    t[7] = { t, a in                                                          // poll
        let ms = a.int(2)
        let r = sysPoll(t, a.a0, a.long(1), ms < 0 ? nil : Kernel.now(CLOCK_MONOTONIC) + Int64(ms) * 1_000_000)
        // Never restarted after a handler, SA_RESTART or not (signal(7)).
        return r == -ERESTARTSYS ? -ERESTARTNOHAND : r
    }
    t[271] = { t, a in                                                        // ppoll
        var deadline: Int64? = nil, zero = false
        if a.a2 != 0 {
            switch readTimespecArg(t, a.a2) {
            case .success(let (sec, ns)): deadline = Kernel.now(CLOCK_MONOTONIC) &+ sec &* 1_000_000_000 &+ ns; zero = sec == 0 && ns == 0
            case .failure(let e): return e.ret
            }
        }
        if a.a3 != 0 {
            if a.a4 != 8 { return err(EINVAL) }                               // sigsetsize: the kernel's sigset_t
            guard let m = t.readU64(a.a3) else { return err(EFAULT) }
            t.setTemporarySignalMask(m)
        }
        var r = sysPoll(t, a.a0, a.long(1), deadline)
        if r == -ERESTARTSYS { r = -ERESTARTNOHAND }
        if a.a3 != 0 && r != -ERESTARTNOHAND { t.restoreSignalMask() }
        return writeTimeLeft(t, a.a2, deadline, zero: zero, usec: false, r)
    }
    t[23] = { t, a in                                                         // select
        var deadline: Int64? = nil, zero = false
        if a.a4 != 0 {
            guard let s = t.readU64(a.a4), let u = t.readU64(a.a4 &+ 8) else { return err(EFAULT) }
            let sec = Int64(bitPattern: s), us = Int64(bitPattern: u)
            if sec < 0 || us < 0 { return err(EINVAL) }
            deadline = Kernel.now(CLOCK_MONOTONIC) &+ sec &* 1_000_000_000 &+ min(us, 999_999_999) &* 1000
            zero = sec == 0 && us == 0
        }
        var r = sysSelect(t, a.int(0), a.a1, a.a2, a.a3, deadline)
        if r == -ERESTARTSYS { r = -ERESTARTNOHAND }
        return writeTimeLeft(t, a.a4, deadline, zero: zero, usec: true, r)
    }
    t[270] = { t, a in                                                        // pselect6
        var deadline: Int64? = nil, zero = false
        if a.a4 != 0 {
            switch readTimespecArg(t, a.a4) {
            case .success(let (sec, ns)): deadline = Kernel.now(CLOCK_MONOTONIC) &+ sec &* 1_000_000_000 &+ ns; zero = sec == 0 && ns == 0
            case .failure(let e): return e.ret
            }
        }
        var masked = false
        if a.a5 != 0 {
            // { const sigset_t *ss; size_t ss_len }
            guard let p = t.readU64(a.a5), let len = t.readU64(a.a5 &+ 8) else { return err(EFAULT) }
            if p != 0 {
                if len != 8 { return err(EINVAL) }
                guard let m = t.readU64(p) else { return err(EFAULT) }
                t.setTemporarySignalMask(m)
                masked = true
            }
        }
        var r = sysSelect(t, a.int(0), a.a1, a.a2, a.a3, deadline)
        if r == -ERESTARTSYS { r = -ERESTARTNOHAND }
        if masked && r != -ERESTARTNOHAND { t.restoreSignalMask() }
        return writeTimeLeft(t, a.a4, deadline, zero: zero, usec: false, r)
    }
}

/// Linux's poll_select_finish: ppoll, pselect6 and select write the time
/// left (never below zero) back over the caller's timeout, unless it was
/// zero, whatever the outcome; a restart then waits only for what is left.
/// `usec`: a struct timeval (select). When the write faults, a restart
/// becomes EINTR (the time left is lost).
private func writeTimeLeft(_ t: Task, _ addr: UInt64, _ deadline: Int64?, zero: Bool, usec: Bool, _ r: Int) -> Int {
    guard addr != 0, let d = deadline, !zero, t.personality & Personality.stickyTimeouts == 0 else { return r }
    let left = max(0, d &- Kernel.now(CLOCK_MONOTONIC))
    var b = [UInt8](repeating: 0, count: 16)
    put64(&b, 0, UInt64(left / 1_000_000_000))
    put64(&b, 8, UInt64(usec ? left % 1_000_000_000 / 1000 : left % 1_000_000_000))
    if t.copyOut(addr, b) { return r }
    return r == -ERESTARTNOHAND ? err(EINTR) : r
}

/// Waits until one of `files` reports an event in `events`, the deadline
/// passes or a signal arrives. Returns the revents per file.
/// Requires: Kernel.mu held.
func waitEvents(_ t: Task, _ files: [FileDescription?], _ events: [Int16], _ deadline: Int64?) -> Result<[Int16], SysErr> {
    var revents = [Int16](repeating: 0, count: files.count)
    let always = Int16(POLLHUP | POLLERR | POLLNVAL)
    var interrupted = false
    while true {
        var ready = 0
        var hostIdx: [Int] = []
        for (i, f) in files.enumerated() {
            guard let f = f else { revents[i] = Int16(POLLNVAL); ready += 1; continue }
            if f.pollHostFD >= 0 { hostIdx.append(i) }
            let r = f.readiness() & (events[i] | always)
            revents[i] = r
            if r != 0 { ready += 1 }
        }
        if ready > 0 { return .success(revents) }
        // Readiness that came with the signal is reported first.
        if interrupted { return .failure(SysErr(-ERESTARTSYS)) }
        if let d = deadline, Kernel.now(CLOCK_MONOTONIC) >= d { return .success(revents) }
        if !hostIdx.isEmpty {
            var pfds = hostIdx.map { pollfd(fd: files[$0]!.pollHostFD, events: events[$0], revents: 0) }
            for f in files { f?.addWaiter(t) }
            var ms: Int32 = -1
            if let d = deadline { ms = Int32(clamping: max(0, (d - Kernel.now(CLOCK_MONOTONIC) + 999_999) / 1_000_000)) }
            let (r, _) = t.hostPoll(&pfds, timeoutMs: ms)
            for f in files { f?.removeWaiter(t) }
            if r == .interrupted { interrupted = true }
            continue
        }
        for f in files { f?.addWaiter(t) }
        let r = t.block(deadline: deadline)
        for f in files { f?.removeWaiter(t) }
        if r == .interrupted { interrupted = true }
    }
}

func sysPoll(_ t: Task, _ addr: UInt64, _ n: Int, _ deadline: Int64?) -> Int {
    if n < 0 || n > fdLimit(t) { return err(EINVAL) }
    guard let b = t.copyIn(addr, n * 8) else { return err(EFAULT) }
    var files: [FileDescription?] = []
    var events: [Int16] = []
    var skip: [Bool] = []
    for i in 0..<n {
        let fd = Int32(bitPattern: get32(b, i * 8))
        let ev = Int16(truncatingIfNeeded: get32(b, i * 8 + 4) & 0xffff)
        skip.append(fd < 0)
        files.append(fd < 0 ? DummyFD() : t.fds.get(fd))
        events.append(fd < 0 ? 0 : ev)
    }
    switch waitEvents(t, files, events, deadline) {
    case .failure(let e): return e.r
    case .success(var rev):
        var out = b
        var count = 0
        for i in 0..<n {
            if skip[i] { rev[i] = 0 }
            out[i * 8 + 6] = UInt8(truncatingIfNeeded: UInt16(bitPattern: rev[i]))
            out[i * 8 + 7] = UInt8(truncatingIfNeeded: UInt16(bitPattern: rev[i]) >> 8)
            if rev[i] != 0 { count += 1 }
        }
        return t.copyOut(addr, out) ? count : err(EFAULT)
    }
}

/// A placeholder for negative fds in poll: never ready.
final class DummyFD: FileDescription {
    init() { super.init(flags: 0, path: nil) }
    override func readiness() -> Int16 { 0 }
}

/// What select's read and write sets wait for (Linux's POLLIN_SET, POLLOUT_SET).
private let selectIn = POLLIN | POLLRDNORM_ | POLLRDBAND_
private let selectOut = POLLOUT | POLLWRNORM_ | POLLWRBAND_

func sysSelect(_ t: Task, _ nfds: Int32, _ r: UInt64, _ w: UInt64, _ e: UInt64, _ deadline: Int64?) -> Int {
    if nfds < 0 || nfds > 1024 * 64 { return err(EINVAL) }
    let bytes = (Int(nfds) + 63) / 64 * 8
    func load(_ a: UInt64) -> [UInt8]?? { a == 0 ? .some(nil) : (t.copyIn(a, bytes).map { .some($0) } ?? nil) }
    guard let rs = load(r), let ws = load(w), let es = load(e) else { return err(EFAULT) }
    func isSet(_ s: [UInt8]?, _ fd: Int) -> Bool { s.map { $0[fd / 8] & (1 << UInt8(fd % 8)) != 0 } ?? false }
    var files: [FileDescription?] = []
    var events: [Int16] = []
    var fdOf: [Int] = []
    for fd in 0..<Int(nfds) {
        var ev: Int32 = 0
        if isSet(rs, fd) { ev |= selectIn }
        if isSet(ws, fd) { ev |= selectOut }
        if isSet(es, fd) { ev |= POLLPRI }
        if ev == 0 { continue }
        guard let f = t.fds.get(Int32(fd)) else { return err(EBADF) }
        files.append(f); events.append(Int16(ev)); fdOf.append(fd)
    }
    switch waitEvents(t, files, events, deadline) {
    case .failure(let x): return x.r
    case .success(let rev):
        var ro = [UInt8](repeating: 0, count: bytes), wo = ro, eo = ro
        var count = 0
        for (i, fd) in fdOf.enumerated() {
            let bit = UInt8(1 << (fd % 8))
            if rev[i] & Int16(selectIn | POLLHUP | POLLERR) != 0 && events[i] & Int16(POLLIN) != 0 { ro[fd / 8] |= bit; count += 1 }
            if rev[i] & Int16(selectOut | POLLERR) != 0 && events[i] & Int16(POLLOUT) != 0 { wo[fd / 8] |= bit; count += 1 }
            if rev[i] & Int16(POLLPRI) != 0 && events[i] & Int16(POLLPRI) != 0 { eo[fd / 8] |= bit; count += 1 }
        }
        if r != 0 && !t.copyOut(r, ro) { return err(EFAULT) }
        if w != 0 && !t.copyOut(w, wo) { return err(EFAULT) }
        if e != 0 && !t.copyOut(e, eo) { return err(EFAULT) }
        return count
    }
}
