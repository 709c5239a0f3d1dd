// Clocks and sleeps.

import CMoat
import Glibc
import Platform

func registerTime(_ t: SyscallTable) {
    t[228] = { t, a in                                                        // clock_gettime
        let id = a.int(0)
        var ts = timespec()
        let hostClock: clockid_t
        switch id {
        case 0, 1, 4, 5, 6, 7, 11: hostClock = clockid_t(id)  // REALTIME, MONOTONIC, RAW, *_COARSE, BOOTTIME, TAI
        case 2: return writeTimespec(t, a.a1, t.tg.sampleCPU())              // CLOCK_PROCESS_CPUTIME_ID
        case 3: _ = t.tg.sampleCPU(); return writeTimespec(t, a.a1, t.cpuNs) // CLOCK_THREAD_CPUTIME_ID
        case ..<0: // a CPU clock of a pid or tid (clock_getcpuclockid, pthread_getcpuclockid)
            guard let ns = cpuClockOf(t, id) else { return err(EINVAL) }
            return writeTimespec(t, a.a1, ns)
        default: return err(EINVAL)
        }
        // The clocks the vDSO serves from CLOCK_MONOTONIC's base (BOOTTIME
        // too: a sandbox never suspends): its value, where the program's
        // image has it (Kernel/VDSO.swift), so the two never disagree.
        if id == 1 || id == 4 || id == 6 || id == 7, t.thread.hasStub || KVMTasks.tscIsHost, let ns = VDSO.shared?.monotonicNow() {
            return writeTimespec(t, a.a1, ns)
        }
        clock_gettime(hostClock, &ts)
        return writeTimespec(t, a.a1, Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }
    t[229] = { t, a in                                                        // clock_getres
        let id = a.int(0)
        if id < 0 && cpuClockOf(t, id) == nil { return err(EINVAL) }
        // 10 is unused; the alarm clocks (8, 9) need an RTC device (Linux
        // without one: EINVAL), as clock_gettime says.
        if id > 11 || id == 8 || id == 9 || id == 10 { return err(EINVAL) }
        if a.a1 == 0 { return 0 }
        return writeTimespec(t, a.a1, id == 5 || id == 6 ? 4_000_000 : 1)
    }
    t[96] = { t, a in                                                         // gettimeofday
        if a.a0 != 0 {
            let ns = Kernel.now(CLOCK_REALTIME)
            var b = [UInt8](repeating: 0, count: 16)
            put64(&b, 0, UInt64(ns / 1_000_000_000)); put64(&b, 8, UInt64((ns % 1_000_000_000) / 1000))
            if !t.copyOut(a.a0, b) { return err(EFAULT) }
        }
        if a.a1 != 0 && !t.copyOut(a.a1, [UInt8](repeating: 0, count: 8)) { return err(EFAULT) }
        return 0
    }
    t[201] = { t, a in                                                        // time
        let s = Kernel.now(CLOCK_REALTIME) / 1_000_000_000
        if a.a0 != 0 && !t.writeU64(a.a0, UInt64(s)) { return err(EFAULT) }
        return Int(s)
    }
    t[35] = { t, a in sysNanosleep(t, a.a0, a.a1, clock: CLOCK_MONOTONIC, absolute: false) }   // nanosleep
    t[219] = { t, _ in                                                        // restart_syscall
        guard let f = t.restartBlock else { return err(EINTR) }
        t.restartBlock = nil
        return f(t)
    }
    t[230] = { t, a in                                                        // clock_nanosleep
        let id = a.int(0)
        if id == 2 || id < 0 { return cpuClockNanosleep(t, id, a.a2, a.a3, absolute: a.int(1) & 1 != 0) }
        if id != 0 && id != 1 && id != 7 { return err(id == 3 ? EOPNOTSUPP : EINVAL) }   // CLOCK_THREAD_CPUTIME_ID: no nsleep
        return sysNanosleep(t, a.a2, a.a3, clock: clockid_t(id), absolute: a.int(1) & 1 != 0)
    }
    t[100] = { t, a in                                                        // times
        if a.a0 != 0 {
            var b = [UInt8](repeating: 0, count: 32)
            put64(&b, 0, UInt64(t.tg.sampleCPU() / 10_000_000)); put64(&b, 8, UInt64(t.tg.stimeNs / 10_000_000))
            put64(&b, 16, UInt64(t.tg.childUtimeNs / 10_000_000)); put64(&b, 24, UInt64(t.tg.childStimeNs / 10_000_000))
            if !t.copyOut(a.a0, b) { return err(EFAULT) }
        }
        return Int((Kernel.now(CLOCK_MONOTONIC) - t.kernel.bootMonotonicNs) / 10_000_000)
    }
    t[38] = { t, a in                                                         // setitimer
        let which = a.int(0)
        if which < 0 || which > 2 { return err(EINVAL) }
        var value: Int64 = 0, interval: Int64 = 0
        if a.a1 != 0 {
            guard let b = t.copyIn(a.a1, 32) else { return err(EFAULT) }
            let isec = Int64(bitPattern: get64(b, 0)), iusec = Int64(bitPattern: get64(b, 8))
            let vsec = Int64(bitPattern: get64(b, 16)), vusec = Int64(bitPattern: get64(b, 24))
            if iusec < 0 || iusec >= 1_000_000 || vusec < 0 || vusec >= 1_000_000 || isec < 0 || vsec < 0 { return err(EINVAL) }
            interval = min(isec, 1 << 30) * 1_000_000_000 + iusec * 1000
            value = min(vsec, 1 << 30) * 1_000_000_000 + vusec * 1000
        }
        // ITIMER_VIRTUAL and ITIMER_PROF count the process's CPU time.
        let old = which == 0 ? t.kernel.timers.setReal(t.tg, value: value, interval: interval)
            : t.kernel.timers.setCPU(t.tg, which: which, value: value, interval: interval)
        if a.a2 != 0 {
            var b = [UInt8](repeating: 0, count: 32)
            put64(&b, 0, UInt64(old.1 / 1_000_000_000)); put64(&b, 8, UInt64(old.1 % 1_000_000_000 / 1000))
            put64(&b, 16, UInt64(old.0 / 1_000_000_000)); put64(&b, 24, UInt64(old.0 % 1_000_000_000 / 1000))
            if !t.copyOut(a.a2, b) { return err(EFAULT) }
        }
        return 0
    }
    t[36] = { t, a in                                                         // getitimer
        let which = a.int(0)
        if which < 0 || which > 2 { return err(EINVAL) }
        let cur = which == 0 ? t.kernel.timers.getReal(t.tg) : t.kernel.timers.getCPU(t.tg, which: which)
        var b = [UInt8](repeating: 0, count: 32)
        put64(&b, 0, UInt64(cur.1 / 1_000_000_000)); put64(&b, 8, UInt64(cur.1 % 1_000_000_000 / 1000))
        put64(&b, 16, UInt64(cur.0 / 1_000_000_000)); put64(&b, 24, UInt64(cur.0 % 1_000_000_000 / 1000))
        return t.copyOut(a.a1, b) ? 0 : err(EFAULT)
    }
    t[37] = { t, a in                                                         // alarm
        let old = t.kernel.timers.setReal(t.tg, value: Int64(a.uint(0)) * 1_000_000_000, interval: 0)
        return Int((old.0 + 999_999_999) / 1_000_000_000)
    }
    t[164] = sysSettimeofday
    t[227] = sysClockSettime
    t[98] = { t, a in                                                         // getrusage
        let who = a.int(0)
        if who != 0 && who != -1 && who != 1 { return err(EINVAL) }
        // RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD: the CPU times and
        // the peak resident set (the process's for a thread, as Linux's).
        let ns = who == 0 ? t.tg.sampleCPU() : who == -1 ? t.tg.childUtimeNs : { _ = t.tg.sampleCPU(); return t.cpuNs }()
        let rss: Int64
        if who == -1 { rss = t.tg.childMaxRSSKB } else {
            guard let r = sampleMaxRSS(t, scratch: a.a1) else { return err(EFAULT) }
            rss = r
        }
        var b = [UInt8](repeating: 0, count: 144)
        put64(&b, 0, UInt64(ns / 1_000_000_000)); put64(&b, 8, UInt64(ns % 1_000_000_000 / 1000))
        put64(&b, 32, UInt64(rss))
        return t.copyOut(a.a1, b) ? 0 : err(EFAULT)
    }
}

// Setting a clock. The sandbox's clocks are the host's, which no sandbox
// may change: every caller is answered as Linux answers one without
// CAP_SYS_TIME (EPERM), after the checks Linux makes first (a bad
// address, an invalid time or a clock that cannot be set), so that a
// program probing the errors sees Linux's. Not ENOSYS: the calls exist,
// the permission is what is missing (as in a container without
// CAP_SYS_TIME).

/// Largest second count settimeofday accepts (Linux: KTIME_SEC_MAX less
/// thirty years of uptime).
private let settodSecMax: Int64 = Int64.max / 1_000_000_000 - 30 * 365 * 86_400

func sysSettimeofday(_ t: Task, _ a: Args) -> Int {
    var sec: Int64 = 0, usec: Int64 = 0
    if a.a0 != 0 {
        guard let b = t.copyIn(a.a0, 16) else { return err(EFAULT) }
        sec = Int64(bitPattern: get64(b, 0)); usec = Int64(bitPattern: get64(b, 8))
        if usec < 0 || usec > 1_000_000 { return err(EINVAL) }
    }
    if a.a1 != 0 && t.copyIn(a.a1, 8) == nil { return err(EFAULT) }
    // The whole time is checked after the timezone's copy (exactly one
    // second of microseconds passes the first check, not this one).
    if sec < 0 || sec >= settodSecMax || usec == 1_000_000 { return err(EINVAL) }
    return err(EPERM)
}

func sysClockSettime(_ t: Task, _ a: Args) -> Int {
    let id = a.int(0)
    switch id {
    case 0:                                                                   // CLOCK_REALTIME
        guard let b = t.copyIn(a.a1, 16) else { return err(EFAULT) }
        let sec = Int64(bitPattern: get64(b, 0)), ns = Int64(bitPattern: get64(b, 8))
        if sec < 0 || sec >= settodSecMax || ns < 0 || ns >= 1_000_000_000 { return err(EINVAL) }
        return err(EPERM)
    case ..<0:                                                                // a pid's or tid's CPU clock: copied, checked, refused
        if t.copyIn(a.a1, 16) == nil { return err(EFAULT) }
        if cpuClockOf(t, id) == nil { return err(EINVAL) }
        return err(EPERM)
    default: return err(EINVAL)                                               // no clock_set (the caller's own CPU clocks too), or no such clock
    }
}

/// A struct timespec argument, checked as the kernel checks it: EFAULT if
/// unreadable, EINVAL for a negative time or nanoseconds out of range.
func readTimespecArg(_ t: Task, _ addr: UInt64) -> Result<(sec: Int64, nsec: Int64), Errno> {
    guard let s = t.readU64(addr), let n = t.readU64(addr &+ 8) else { return .failure(Errno(EFAULT)) }
    let sec = Int64(bitPattern: s), ns = Int64(bitPattern: n)
    if sec < 0 || ns < 0 || ns >= 1_000_000_000 { return .failure(Errno(EINVAL)) }
    return .success((sec, ns))
}

func writeTimespec(_ t: Task, _ addr: UInt64, _ ns: Int64) -> Int {
    var b = [UInt8](repeating: 0, count: 16)
    put64(&b, 0, UInt64(ns / 1_000_000_000)); put64(&b, 8, UInt64(ns % 1_000_000_000))
    return t.copyOut(addr, b) ? 0 : err(EFAULT)
}

func sysNanosleep(_ t: Task, _ req: UInt64, _ rem: UInt64, clock: clockid_t, absolute: Bool) -> Int {
    let sec: Int64, ns: Int64
    switch readTimespecArg(t, req) { case .success(let v): (sec, ns) = v; case .failure(let e): return e.ret }
    let dur = sec > Int64.max / 2_000_000_000 ? Int64.max / 4 : sec * 1_000_000_000 + ns
    let deadline: Int64
    if absolute {
        deadline = Kernel.now(CLOCK_MONOTONIC) + max(0, dur - Kernel.now(clock))
    } else {
        deadline = Kernel.now(CLOCK_MONOTONIC) + dur
    }
    return sleepUntil(t, deadline, rem: absolute ? 0 : rem, absolute: absolute)
}

/// The rest of a sleep until `deadline` (CLOCK_MONOTONIC ns). Interrupted:
/// the time left goes to `rem` (nonzero for a relative sleep) and a
/// relative sleep's restart (no handler ran: a stop, an ignored signal)
/// continues towards the same deadline through restart_syscall, as Linux's
/// hrtimer_nanosleep_restart: time spent stopped counts as time slept.
private func sleepUntil(_ t: Task, _ deadline: Int64, rem: UInt64, absolute: Bool) -> Int {
    while true {
        let r = t.block(deadline: deadline)
        if r == .timedOut { return 0 }
        if r == .interrupted {
            // A time left that cannot be written is EFAULT, and no restart
            // (Linux's hrtimer_nanosleep: the copy-out's error wins).
            if rem != 0, writeTimespec(t, rem, max(0, deadline - Kernel.now(CLOCK_MONOTONIC))) < 0 { return err(EFAULT) }
            if absolute { return -ERESTARTNOHAND }
            t.restartBlock = { t in sleepUntil(t, deadline, rem: rem, absolute: false) }
            return -ERESTART_RESTARTBLOCK
        }
    }
}

/// clock_nanosleep on a CPU-time clock: the process's own
/// (CLOCK_PROCESS_CPUTIME_ID) or one made from a pid; a thread's clock is
/// EINVAL when it is the caller's own (it could never advance), as Linux's
/// posix_cpu_nsleep. The sleeper wakes now and then to sample the clock:
/// the process's CPU time grows at most one second per online CPU each
/// second, so each wait is the CPU time still due over the CPU count.
/// Interrupted: EINTR with the CPU time left in `rem` (relative sleeps),
/// or a restart. Requires: mu held.
func cpuClockNanosleep(_ t: Task, _ id: Int32, _ req: UInt64, _ rem: UInt64, absolute: Bool) -> Int {
    let clock = id == 2 ? ~Int32(0) << 3 | 2 : id
    if clock & 4 != 0 && (~(clock >> 3) == 0 || t.kernel.task(~(clock >> 3), by: t) === t) { return err(EINVAL) }
    guard let start = cpuClockOf(t, clock) else { return err(EINVAL) }
    let sec: Int64, ns: Int64
    switch readTimespecArg(t, req) { case .success(let v): (sec, ns) = v; case .failure(let e): return e.ret }
    let dur = sec > Int64.max / 2_000_000_000 ? Int64.max / 4 : sec * 1_000_000_000 + ns
    let target = absolute ? dur : start + dur
    let cpus = Int64(max(1, onlineCPUMask.nonzeroBitCount))
    while true {
        // The clock's owner gone (a process reaped, a thread exited): the
        // clock reads as stopped, and so does the sleep end.
        guard let now = cpuClockOf(t, clock) else { return 0 }
        if now >= target { return 0 }
        let wait = max(1_000_000, (target - now) / cpus)
        if t.block(deadline: Kernel.now(CLOCK_MONOTONIC) + wait) == .interrupted {
            if !absolute && rem != 0 { _ = writeTimespec(t, rem, max(0, target - (cpuClockOf(t, clock) ?? target))) }
            t.restartBlock = nil   // a restart runs the call again, from its arguments
            return absolute ? -ERESTARTNOHAND : -ERESTART_RESTARTBLOCK
        }
    }
}

/// The CPU time behind a clock id made from a pid or tid (Linux's
/// MAKE_PROCESS_CPUCLOCK / MAKE_THREAD_CPUCLOCK: ~id << 3, bit 2 for a
/// thread, low bits the kind; pid 0 is the caller). A thread clock names a
/// thread of the caller's process. nil: no such clock.
func cpuClockOf(_ t: Task, _ id: Int32) -> Int64? {
    let kind = id & 3, perThread = id & 4 != 0, pid = ~(id >> 3)
    if kind == 3 { return nil }   // CPUCLOCK_MAX
    if perThread {
        let task = pid == 0 ? t : t.kernel.task(pid, by: t)
        guard let x = task, x.tg === t.tg, !x.exited else { return nil }
        _ = x.tg.sampleCPU()
        return x.cpuNs
    }
    let tg = pid == 0 ? t.tg : t.kernel.group(pid, by: t)
    guard let g = tg, !g.reaped else { return nil }
    return g.sampleCPU()
}

/// A call into Linux's legacy vsyscall page (an old static binary's, or a
/// Go runtime's <= 1.2, time or gettimeofday), which the platform reports
/// as an execute fault at the entry point with the registers of the call:
/// emulated as Linux's "xonly" vsyscall mode does it. The entry points are
/// gettimeofday (+0), time (+0x400) and getcpu (+0x800); anything else in
/// the page, or a return address that cannot be read, is a SIGSEGV. The
/// call goes through the ordinary dispatch (the container's seccomp
/// profile, --strace); one that faults on its pointer kills with SIGSEGV
/// at the entry point instead of returning EFAULT, as on Linux; otherwise
/// the result is in rax and the `ret` is emulated. Only under ptrace: on
/// KVM a resume after an emulated call at +0 failed (KVM internal error),
/// so there a call into the page stays the SIGSEGV it always was.
/// Requires: mu held.
func emulateVsyscall(_ t: Task) {
    let saved = t.thread.regs
    let nr: UInt64
    switch saved.rip &- vsyscallPage {
    case 0: nr = 96            // gettimeofday
    case 0x400: nr = 201       // time
    case 0x800: nr = 309       // getcpu (its cache argument is not passed)
    default: t.forceFault(signo: SIGSEGV, code: 0x80 /* SI_KERNEL */, addr: 0); return
    }
    guard let caller = t.readU64(saved.rsp) else {
        t.forceFault(signo: SIGSEGV, code: 0x80 /* SI_KERNEL */, addr: 0); return
    }
    var regs = saved
    regs.orig_rax = nr
    if nr == 309 { regs.rdx = 0 }
    t.thread.regs = regs
    dispatchSyscall(t)
    var out = t.thread.regs
    if Int64(bitPattern: out.rax) == -Int64(EFAULT) {
        // The bad pointer (the first one given, when it is not clear which).
        t.thread.regs = saved
        t.thread.markDirty()
        t.forceFault(signo: SIGSEGV, code: 1 /* SEGV_MAPERR */, addr: saved.rdi != 0 ? saved.rdi : saved.rsi)
        return
    }
    out.rdx = saved.rdx
    out.orig_rax = UInt64.max
    out.rip = caller
    out.rsp = saved.rsp &+ 8
    t.thread.regs = out
    t.thread.markDirty()
}

/// The process's peak resident set in KiB (ru_maxrss), sampled now and kept
/// in ThreadGroup.maxRSSKB. Under ptrace the stub process is the
/// application's process, so the host's own figure is the answer: an
/// injected getrusage(RUSAGE_SELF) into `scratch`, 144 writable bytes of
/// application memory (the caller's rusage buffer, or stack space of a
/// process that is exiting); nil when the host cannot write there
/// (EFAULT). Without a stub (KVM) Moat knows no resident set and counts
/// every mapping as resident, as /proc/PID/statm does. Requires: mu held.
func sampleMaxRSS(_ t: Task, scratch: UInt64) -> Int64? {
    var kb: Int64
    if t.thread.hasStub {
        let r = t.thread.inject(98 /* getrusage */, 0 /* RUSAGE_SELF */, scratch)
        if r == -Int(EFAULT) { return nil }
        kb = r == 0 ? Int64(bitPattern: t.readU64(scratch &+ 32) ?? 0) : 0
    } else {
        kb = Int64(t.mm.vmas.reduce(UInt64(0)) { $0 + ($1.end - $1.start) } / 1024)
    }
    t.tg.maxRSSKB = max(t.tg.maxRSSKB, kb)
    return t.tg.maxRSSKB
}
