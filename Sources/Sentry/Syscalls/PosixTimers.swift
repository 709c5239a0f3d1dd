// POSIX interval timers (timer_create and friends), membarrier, and the
// scheduling-policy calls that were missing.

import CMoat
import Glibc

/// One timer_create timer. Guarded by Kernel.mu.
final class PosixTimer {
    let id: Int32
    let clock: Int32
    let notify: Int32            // SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID
    let signo: Int32
    let value: UInt64            // sigev_value, given back in si_value
    let targetTid: Int32
    var interval: Int64 = 0
    var deadline: Int64 = 0      // CLOCK_MONOTONIC ns; 0 when disarmed
    var overrun: Int32 = 0
    var pendingOverrun: Int32 = 0
    var scheduled: Int? = nil
    /// CPU-time clocks: the expiry on the clock itself (CPU ns), and for
    /// CLOCK_THREAD_CPUTIME_ID the thread whose time it counts (the creator).
    var cpuDeadline: Int64 = 0
    weak var owner: Task?
    var isCPU: Bool { clock == CLOCK_PROCESS_CPUTIME_ID || clock == CLOCK_THREAD_CPUTIME_ID }
    init(id: Int32, clock: Int32, notify: Int32, signo: Int32, value: UInt64, targetTid: Int32) {
        self.id = id; self.clock = clock; self.notify = notify; self.signo = signo; self.value = value; self.targetTid = targetTid
    }

    /// The CPU time the timer's clock shows now; nil once its thread is gone.
    /// Requires: Kernel.mu held.
    func cpuNow(_ tg: ThreadGroup) -> Int64? {
        let group = tg.sampleCPU()
        if clock == CLOCK_PROCESS_CPUTIME_ID { return group }
        return owner.map { $0.cpuNs }
    }
}

private let SIGEV_SIGNAL: Int32 = 0, SIGEV_NONE: Int32 = 1, SIGEV_THREAD: Int32 = 2, SIGEV_THREAD_ID: Int32 = 4

func registerPosixTimers(_ t: SyscallTable) {
    t[222] = sysTimerCreate
    t[223] = sysTimerSettime
    t[224] = { t, a in                                                        // timer_gettime
        guard let tm = t.tg.posixTimers[a.int(0)] else { return err(EINVAL) }
        return writeItimerspec(t, a.a1, remaining(tm, t.tg), tm.interval) ? 0 : err(EFAULT)
    }
    t[225] = { t, a in                                                        // timer_getoverrun
        guard let tm = t.tg.posixTimers[a.int(0)] else { return err(EINVAL) }
        return Int(tm.overrun)
    }
    t[226] = { t, a in                                                        // timer_delete
        guard let tm = t.tg.posixTimers.removeValue(forKey: a.int(0)) else { return err(EINVAL) }
        if let s = tm.scheduled { t.kernel.timers.cancel(s) }
        staleQueuedSignal(tm, t.tg)
        return 0
    }
    t[324] = sysMembarrier
}

/// The timer's signal still queued (to the process, or the SIGEV_THREAD_ID
/// thread) is stale once the timer is re-armed or deleted: sigpending still
/// shows it, no dequeue returns it (Linux >= 6.13).
private func staleQueuedSignal(_ tm: PosixTimer, _ tg: ThreadGroup) {
    if tm.notify == SIGEV_NONE { return }
    tg.sharedPending.staleTimerSignal(id: tm.id, signo: tm.signo)
    for x in tg.tasks { x.pending.staleTimerSignal(id: tm.id, signo: tm.signo) }
}

private func remaining(_ tm: PosixTimer, _ tg: ThreadGroup) -> Int64 {
    if tm.deadline == 0 { return 0 }
    if tm.isCPU { return max(1, tm.cpuDeadline - (tm.cpuNow(tg) ?? tm.cpuDeadline)) }
    return max(1, tm.deadline - Kernel.now(CLOCK_MONOTONIC))
}

private func writeItimerspec(_ t: Task, _ addr: UInt64, _ value: Int64, _ interval: Int64) -> Bool {
    let v: [Int64] = [interval / 1_000_000_000, interval % 1_000_000_000, value / 1_000_000_000, value % 1_000_000_000]
    return t.copyOut(addr, v.withUnsafeBytes { Array($0) })
}

func sysTimerCreate(_ t: Task, _ a: Args) -> Int {
    var clock = a.int(0)
    // A CPU clock by id (glibc's timer_create passes CLOCK_PROCESS_CPUTIME_ID
    // and CLOCK_THREAD_CPUTIME_ID this way): this process's or one of its
    // threads'; timers on other processes' clocks are not offered.
    var owner = t
    if clock < 0 {
        let perThread = clock & 4 != 0, pid = ~(clock >> 3)
        guard clock & 3 != 3, cpuClockOf(t, clock) != nil else { return err(EINVAL) }
        if perThread {
            guard let x = pid == 0 ? t : t.kernel.task(pid, by: t), x.tg === t.tg else { return err(EINVAL) }
            owner = x
            clock = CLOCK_THREAD_CPUTIME_ID
        } else {
            if pid != 0 && t.gpid(pid) != t.tg.tgid { return err(EINVAL) }
            clock = CLOCK_PROCESS_CPUTIME_ID
        }
    }
    // The alarm clocks need a real-time clock device, which the sandbox
    // has none of: Linux without one says EOPNOTSUPP here (and EINVAL to
    // clock_gettime, as Moat's clock_gettime does).
    if clock == 8 || clock == 9 { return err(EOPNOTSUPP) }
    guard [CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID,
           11 /* TAI */].contains(clock) else { return err(EINVAL) }
    var notify = SIGEV_SIGNAL, signo = SIGALRM, value: UInt64 = 0, tid: Int32 = 0
    if a.a1 != 0 {
        // struct sigevent: value (8), signo (4), notify (4), tid or function (8)
        guard let b = t.copyIn(a.a1, 24) else { return err(EFAULT) }
        value = get64(b, 0)
        signo = Int32(bitPattern: get32(b, 8))
        notify = Int32(bitPattern: get32(b, 12))
        tid = t.gpid(Int32(bitPattern: get32(b, 16)))
        switch notify {
        case SIGEV_NONE: break
        case SIGEV_SIGNAL, SIGEV_THREAD_ID, SIGEV_THREAD:
            // The kernel takes SIGEV_THREAD (glibc's, normally built on
            // SIGEV_THREAD_ID) as a plain signal to the process.
            if signo < 1 || signo > 64 { return err(EINVAL) }
            if notify == SIGEV_THREAD_ID && !t.tg.tasks.contains(where: { $0.tid == tid }) { return err(EINVAL) }
            if notify == SIGEV_THREAD { notify = SIGEV_SIGNAL }
        default: return err(EINVAL)
        }
    }
    var id: Int32 = 0
    while t.tg.posixTimers[id] != nil { id += 1 }
    if id >= 32768 { return err(EAGAIN) }
    let tm = PosixTimer(id: id, clock: clock, notify: notify, signo: signo, value: a.a1 == 0 ? UInt64(id) : value, targetTid: tid)
    tm.owner = owner
    if !t.writeI32(a.a2, id) { return err(EFAULT) }
    t.tg.posixTimers[id] = tm
    return 0
}

func sysTimerSettime(_ t: Task, _ a: Args) -> Int {
    // Linux's order: no new value is EINVAL, an unreadable one EFAULT, then the timer id.
    if a.a2 == 0 { return err(EINVAL) }
    guard let b = t.copyIn(a.a2, 32) else { return err(EFAULT) }
    guard let tm = t.tg.posixTimers[a.int(0)] else { return err(EINVAL) }
    let flags = a.int(1)                    // bits other than TIMER_ABSTIME are ignored, as by Linux
    let iv = Int64(bitPattern: get64(b, 0)) &* 1_000_000_000 &+ Int64(bitPattern: get64(b, 8))
    let vs = Int64(bitPattern: get64(b, 16)), vn = Int64(bitPattern: get64(b, 24))
    if vn < 0 || vn >= 1_000_000_000 || Int64(bitPattern: get64(b, 8)) < 0 || Int64(bitPattern: get64(b, 8)) >= 1_000_000_000 || vs < 0 {
        return err(EINVAL)
    }
    if a.a3 != 0 && !writeItimerspec(t, a.a3, remaining(tm, t.tg), tm.interval) { return err(EFAULT) }
    if let s = tm.scheduled { t.kernel.timers.cancel(s); tm.scheduled = nil }
    tm.deadline = 0
    staleQueuedSignal(tm, t.tg)
    tm.pendingOverrun = 0
    tm.interval = iv
    var v = vs &* 1_000_000_000 &+ vn
    if v == 0 { return 0 }
    if tm.isCPU {
        // Expiry on the CPU-time clock itself, checked as the time is used.
        guard let now = tm.cpuNow(t.tg) else { return 0 }
        let at = flags & 1 != 0 ? max(v, now) : now &+ v
        armCPU(t.kernel, t.tg, tm, cpuDeadline: at)
        return 0
    }
    if flags & 1 != 0 {                                                     // TIMER_ABSTIME
        // A time already past stays past: the first expiry is at once, and
        // the periods since then count as overruns.
        let onClock: Int64
        switch tm.clock {
        case CLOCK_REALTIME: onClock = Kernel.now(CLOCK_REALTIME)
        case CLOCK_BOOTTIME: onClock = Kernel.now(CLOCK_BOOTTIME)
        case 11: onClock = Kernel.now(clockid_t(11))                               // TAI
        default: onClock = Kernel.now(CLOCK_MONOTONIC)
        }
        v = v &- onClock
        if v == 0 { v = 1 }
    }
    arm(t.kernel, t.tg, tm, at: Kernel.now(CLOCK_MONOTONIC) &+ v)
    return 0
}

private func arm(_ k: Kernel, _ tg: ThreadGroup, _ tm: PosixTimer, at deadline: Int64) {
    tm.deadline = deadline
    tm.scheduled = k.timers.schedule(at: deadline) { [weak tg, weak tm] in
        guard let tg = tg, let tm = tm, !tg.zombie, !tg.exiting, tg.posixTimers[tm.id] === tm else { return }
        tm.scheduled = nil
        let next = expire(tg, tm, deadline: deadline, now: Kernel.now(CLOCK_MONOTONIC))
        if next > 0 { arm(k, tg, tm, at: next) } else { tm.deadline = 0 }
    }
}

/// Arms a timer on a CPU-time clock. The host reports CPU time only when
/// asked, so the timer thread looks when the expiry could first be due (a
/// thread's CPU time grows at most as fast as the wall clock; a process's
/// may grow faster, so it also looks every 10 ms) and again until it is:
/// the signal is never early. Requires: Kernel.mu held.
private func armCPU(_ k: Kernel, _ tg: ThreadGroup, _ tm: PosixTimer, cpuDeadline: Int64) {
    tm.cpuDeadline = cpuDeadline
    let now = tm.cpuNow(tg) ?? cpuDeadline
    var wait = max(1_000_000, cpuDeadline - now)
    if tm.clock == CLOCK_PROCESS_CPUTIME_ID && tg.tasks.count > 1 { wait = min(wait, 10_000_000) }
    let wall = Kernel.now(CLOCK_MONOTONIC) &+ wait
    tm.deadline = wall
    tm.scheduled = k.timers.schedule(at: wall) { [weak tg, weak tm] in
        guard let tg = tg, let tm = tm, !tg.zombie, !tg.exiting, tg.posixTimers[tm.id] === tm else { return }
        tm.scheduled = nil
        // A thread clock whose thread ended stops: the timer never fires.
        guard let used = tm.cpuNow(tg) else { tm.deadline = 0; return }
        if used < tm.cpuDeadline { armCPU(k, tg, tm, cpuDeadline: tm.cpuDeadline); return }
        let next = expire(tg, tm, deadline: tm.cpuDeadline, now: used)
        if next > 0 { armCPU(k, tg, tm, cpuDeadline: next) } else { tm.deadline = 0 }
    }
}

/// One expiry of `tm`, due at `deadline` and seen at `now` (both on the
/// timer's clock): sends its signal (or adds overruns to one still
/// pending) and returns the next expiry, 0 for none.
private func expire(_ tg: ThreadGroup, _ tm: PosixTimer, deadline: Int64, now: Int64) -> Int64 {
    var next: Int64 = 0
    if tm.interval > 0 {
        // Expirations missed while the Sentry was late count as overruns.
        // (Counted, not stepped: a 1 ns period far in the past must not
        // loop; the count saturates at INT_MAX, Linux's DELAYTIMER_MAX.)
        let late = now > deadline ? now - deadline : 0
        let missed = late / tm.interval
        tm.pendingOverrun = Int32(min(Int64(Int32.max), Int64(tm.pendingOverrun) + missed))
        next = deadline &+ (missed &+ 1) &* tm.interval
        if next <= now { next = now &+ tm.interval }
    }
    let target = tm.notify == SIGEV_THREAD_ID ? tg.tasks.first(where: { $0.tid == tm.targetTid }) : nil
    // Its last signal not delivered yet: this expiry (and the missed
    // ones) only add to that signal's overrun, as in Linux.
    let more = Int64(tm.pendingOverrun) + 1
    if tm.notify != SIGEV_NONE,
       (target.map { $0.pending.addTimerOverrun(id: tm.id, signo: tm.signo, more) }
            ?? tg.sharedPending.addTimerOverrun(id: tm.id, signo: tm.signo, more)) != nil {
        tm.pendingOverrun = 0
    } else if tm.notify != SIGEV_NONE, (target?.pending ?? tg.sharedPending).refuses(tm.signo) {
        // The same standard signal already pending from elsewhere (a kill):
        // this one is not queued, and the expiry counts as an overrun of the
        // next signal the timer sends (Linux forwards a timer whose signal
        // was dropped and carries the count).
        tm.pendingOverrun = Int32(min(Int64(Int32.max), more))
    } else if tm.notify != SIGEV_NONE {
        var info = SigInfo(signo: tm.signo)
        info.code = -2                                                  // SI_TIMER
        info.pid = tm.id                                                // si_timerid
        info.uid = UInt32(bitPattern: tm.pendingOverrun)                // si_overrun
        info.value = tm.value
        tm.pendingOverrun = 0
        if let target = target {
            target.sendSignal(tm.signo, info)
        } else {
            tg.sendSignal(tm.signo, info)
        }
    }
    return next
}

/// membarrier: the barrier must reach the application's own threads, which
/// run on host CPUs: the command is made on the application's behalf by its
/// stub, after checking it is one of the process-local ones.
func sysMembarrier(_ t: Task, _ a: Args) -> Int {
    let cmd = a.int(0), flags = a.int(1)
    let QUERY: Int32 = 0, GLOBAL: Int32 = 1, PRIVATE_EXPEDITED: Int32 = 8, REGISTER_PRIVATE_EXPEDITED: Int32 = 16
    let GLOBAL_EXPEDITED: Int32 = 2, REGISTER_GLOBAL_EXPEDITED: Int32 = 4
    let supported = GLOBAL | GLOBAL_EXPEDITED | REGISTER_GLOBAL_EXPEDITED | PRIVATE_EXPEDITED | REGISTER_PRIVATE_EXPEDITED
    if flags != 0 { return err(EINVAL) }
    switch cmd {
    case QUERY: return Int(supported)
    case GLOBAL:
        // Every thread of every sandboxed process is a host thread: the
        // host's global barrier covers them all.
        let r = t.thread.inject(324, UInt64(GLOBAL), 0)
        return r < 0 ? r : 0
    case GLOBAL_EXPEDITED, REGISTER_GLOBAL_EXPEDITED:
        // The host's expedited global barrier reaches every host thread of
        // a process registered for it; registering is the stub's (the
        // process's host memory), so the host keeps it until exec.
        let r = t.thread.inject(324, UInt64(cmd), 0)
        return r < 0 ? r : 0
    case REGISTER_PRIVATE_EXPEDITED:
        t.tg.membarrierRegistered = true
        let r = t.thread.inject(324, UInt64(REGISTER_PRIVATE_EXPEDITED), 0)
        return r < 0 ? r : 0
    case PRIVATE_EXPEDITED:
        if !t.tg.membarrierRegistered { return err(EPERM) }
        return t.thread.inject(324, UInt64(PRIVATE_EXPEDITED), 0)
    default:
        return err(EINVAL)
    }
}
