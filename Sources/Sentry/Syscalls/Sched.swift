// Scheduling policy and I/O priority: sched_{set,get}{scheduler,param,attr},
// sched_get_priority_{min,max}, sched_rr_get_interval, ioprio_{set,get}.
//
// Moat schedules nothing itself: the host runs every task alike. These
// calls store what the program asked for and report it back, checking the
// arguments in Linux's order and refusing what an unprivileged caller may
// not ask for (a real-time or deadline policy without CAP_SYS_NICE, as
// RLIMIT_RTPRIO/RLIMIT_NICE permit; another user's task).

import Glibc

private let SCHED_OTHER_: Int32 = 0, SCHED_FIFO_: Int32 = 1, SCHED_RR_: Int32 = 2, SCHED_BATCH_: Int32 = 3
private let SCHED_IDLE_: Int32 = 5, SCHED_DEADLINE_: Int32 = 6
private let RESET_ON_FORK: Int32 = 0x4000_0000
/// sched_attr.sched_flags: RESET_ON_FORK, RECLAIM, DL_OVERRUN, KEEP_POLICY,
/// KEEP_PARAMS, UTIL_CLAMP_MIN, UTIL_CLAMP_MAX.
private let FLAG_RESET_ON_FORK: UInt64 = 0x01, FLAG_KEEP_POLICY: UInt64 = 0x08, FLAG_KEEP_PARAMS: UInt64 = 0x10
private let FLAG_UTIL_CLAMP: UInt64 = 0x60, FLAGS_ALL: UInt64 = 0x7f
private let ATTR_SIZE_VER0 = 48, ATTR_SIZE_VER1 = 56

private func isRT(_ p: Int32) -> Bool { p == SCHED_FIFO_ || p == SCHED_RR_ }
private func isFair(_ p: Int32) -> Bool { p == SCHED_OTHER_ || p == SCHED_BATCH_ || p == SCHED_IDLE_ }
private func validPolicy(_ p: Int32) -> Bool { isFair(p) || isRT(p) || p == SCHED_DEADLINE_ }

/// What fork copies: the policy and its parameters, unless the parent
/// asked for SCHED_RESET_ON_FORK (then a real-time or deadline child runs
/// SCHED_OTHER and a negative nice is reset to 0).
func inheritSched(_ child: Task, from t: Task) {
    child.ioprio = t.ioprio
    if t.schedResetOnFork {
        if !isFair(t.schedPolicy) { child.schedPolicy = SCHED_OTHER_; child.schedPriority = 0 } else {
            child.schedPolicy = t.schedPolicy
        }
        if child.nice < 0 { child.nice = 0 }
        return
    }
    child.schedPolicy = t.schedPolicy
    child.schedPriority = t.schedPriority
    child.schedDeadline = t.schedDeadline
}

private struct SchedAttr {
    var policy: Int32           // -1: keep the task's (sched_setparam, SCHED_FLAG_KEEP_POLICY)
    var flags: UInt64 = 0
    var nice: Int32
    var priority: UInt32
    var runtime: UInt64 = 0, deadline: UInt64 = 0, period: UInt64 = 0
}

/// Linux's deadline parameter check: a deadline, a runtime of at least
/// 1024 ns, runtime <= deadline <= period (a zero period is the deadline).
private func deadlineParamsValid(_ a: SchedAttr) -> Bool {
    if a.deadline == 0 || a.runtime < 1024 { return false }
    if a.deadline & (1 << 63) != 0 || a.period & (1 << 63) != 0 { return false }
    let period = a.period == 0 ? a.deadline : a.period
    return a.runtime <= a.deadline && a.deadline <= period
}

/// The common part of sched_setscheduler, sched_setparam and sched_setattr
/// once the task is found: the policy and parameter checks (EINVAL), then
/// the permission checks (EPERM), then the store.
private func setScheduler(_ t: Task, _ x: Task, _ attrIn: SchedAttr, user: Bool) -> Int {
    var a = attrIn
    let resetOnFork: Bool
    if a.policy < 0 {
        a.policy = x.schedPolicy
        resetOnFork = x.schedResetOnFork
    } else {
        resetOnFork = a.flags & FLAG_RESET_ON_FORK != 0
    }
    guard validPolicy(a.policy) else { return err(EINVAL) }
    if a.flags & ~FLAGS_ALL != 0 { return err(EINVAL) }
    if a.priority > 99 { return err(EINVAL) }
    if a.policy == SCHED_DEADLINE_ && !deadlineParamsValid(a) { return err(EINVAL) }
    if isRT(a.policy) != (a.priority != 0) { return err(EINVAL) }
    if !t.creds.has(Cap.sysNice) {
        let nice = isFair(a.policy) ? a.nice : x.nice
        if nice < x.nice { return err(EPERM) }                               // RLIMIT_NICE allows no lowering
        if isRT(a.policy) {
            let rtprio = t.tg.rlimits[14].cur                                   // RLIMIT_RTPRIO
            if a.policy != x.schedPolicy && rtprio == 0 { return err(EPERM) }
            if Int32(a.priority) > x.schedPriority && UInt64(a.priority) > rtprio { return err(EPERM) }
        }
        if a.policy == SCHED_DEADLINE_ { return err(EPERM) }
        if x.schedPolicy == SCHED_IDLE_ && a.policy != SCHED_IDLE_ { return err(EPERM) }
        if x.tg !== t.tg && t.creds.euid != x.creds.uid && t.creds.euid != x.creds.euid { return err(EPERM) }
        if x.schedResetOnFork && !resetOnFork { return err(EPERM) }
    }
    x.schedPolicy = a.policy
    x.schedPriority = isRT(a.policy) ? Int32(a.priority) : 0
    x.schedDeadline = a.policy == SCHED_DEADLINE_
        ? (a.runtime, a.deadline, a.period == 0 ? a.deadline : a.period) : (0, 0, 0)
    x.schedResetOnFork = resetOnFork
    if user && isFair(a.policy) && a.flags & FLAG_KEEP_PARAMS == 0 { x.nice = a.nice }
    return 0
}

/// sched_setscheduler (policy >= 0) and sched_setparam (policy -1).
private func sysSetScheduler(_ t: Task, pid: Int32, policy: Int32, param: UInt64) -> Int {
    if policy < -1 { return err(EINVAL) }
    if param == 0 || pid < 0 { return err(EINVAL) }
    guard let p = t.readI32(param) else { return err(EFAULT) }
    guard let x = schedTarget(t, pid) else { return err(ESRCH) }
    var a = SchedAttr(policy: policy & ~RESET_ON_FORK, nice: x.nice, priority: UInt32(bitPattern: p))
    if policy >= 0 && policy & RESET_ON_FORK != 0 { a.flags = FLAG_RESET_ON_FORK }
    if policy == -1 { a.policy = -1 }
    return setScheduler(t, x, a, user: false)
}

func registerSched(_ t: SyscallTable) {
    t[144] = { t, a in sysSetScheduler(t, pid: a.int(0), policy: a.int(1) < 0 ? -2 : a.int(1), param: a.a2) } // sched_setscheduler
    t[142] = { t, a in sysSetScheduler(t, pid: a.int(0), policy: -1, param: a.a1) } // sched_setparam
    t[145] = { t, a in                                                        // sched_getscheduler
        if a.int(0) < 0 { return err(EINVAL) }
        guard let x = schedTarget(t, a.int(0)) else { return err(ESRCH) }
        return Int(x.schedPolicy | (x.schedResetOnFork ? RESET_ON_FORK : 0))
    }
    t[143] = { t, a in                                                        // sched_getparam
        if a.a1 == 0 || a.int(0) < 0 { return err(EINVAL) }
        guard let x = schedTarget(t, a.int(0)) else { return err(ESRCH) }
        return t.writeI32(a.a1, x.schedPriority) ? 0 : err(EFAULT)
    }
    t[146] = { _, a in                                                        // sched_get_priority_max
        let p = a.int(0)
        return isRT(p) ? 99 : (validPolicy(p) ? 0 : err(EINVAL))
    }
    t[147] = { _, a in                                                        // sched_get_priority_min
        let p = a.int(0)
        return isRT(p) ? 1 : (validPolicy(p) ? 0 : err(EINVAL))
    }
    t[148] = { t, a in                                                        // sched_rr_get_interval
        if a.int(0) < 0 { return err(EINVAL) }
        guard let x = schedTarget(t, a.int(0)) else { return err(ESRCH) }
        // SCHED_FIFO and deadline tasks have no time slice; round-robin's is
        // Linux's default 100 ms, and a fair task is reported the same.
        let ns: Int64 = x.schedPolicy == SCHED_FIFO_ || x.schedPolicy == SCHED_DEADLINE_ ? 0 : 100_000_000
        return t.copyOut(a.a1, withUnsafeBytes(of: (ns / 1_000_000_000, ns % 1_000_000_000)) { Array($0) }) ? 0 : err(EFAULT)
    }
    t[314] = { t, a in                                                        // sched_setattr
        if a.a1 == 0 || a.int(0) < 0 || a.uint(2) != 0 { return err(EINVAL) }
        // struct sched_attr: size, policy (u32), flags (u64), nice (s32),
        // priority (u32), runtime, deadline, period (u64), util_min/max (u32).
        guard let sz = t.readI32(a.a1) else { return err(EFAULT) }
        var size = Int(UInt32(bitPattern: sz))
        if size == 0 { size = ATTR_SIZE_VER0 }
        if size < ATTR_SIZE_VER0 || size > 4096 {
            return t.writeI32(a.a1, Int32(ATTR_SIZE_VER1)) ? err(E2BIG) : err(EFAULT)
        }
        guard let b = t.copyIn(a.a1, size) else { return err(EFAULT) }
        if size > ATTR_SIZE_VER1 && b[ATTR_SIZE_VER1...].contains(where: { $0 != 0 }) {
            return t.writeI32(a.a1, Int32(ATTR_SIZE_VER1)) ? err(E2BIG) : err(EFAULT)
        }
        var at = SchedAttr(policy: Int32(bitPattern: get32(b, 4)), flags: get64(b, 8),
                           nice: max(-20, min(19, Int32(bitPattern: get32(b, 16)))), priority: get32(b, 20),
                           runtime: get64(b, 24), deadline: get64(b, 32), period: get64(b, 40))
        if at.policy < 0 { return err(EINVAL) }
        if at.flags & FLAG_UTIL_CLAMP != 0 && size < ATTR_SIZE_VER1 { return err(EINVAL) }
        if at.flags & FLAG_KEEP_POLICY != 0 { at.policy = -1 }
        guard let x = schedTarget(t, a.int(0)) else { return err(ESRCH) }
        if at.flags & FLAG_KEEP_PARAMS != 0 {
            at.nice = x.nice; at.priority = UInt32(x.schedPriority)
            (at.runtime, at.deadline, at.period) = x.schedDeadline
        }
        return setScheduler(t, x, at, user: true)
    }
    t[315] = { t, a in                                                        // sched_getattr
        let usize = Int(a.uint(2))
        if a.a1 == 0 || a.int(0) < 0 || usize > 4096 || usize < ATTR_SIZE_VER0 || a.uint(3) != 0 { return err(EINVAL) }
        guard let x = schedTarget(t, a.int(0)) else { return err(ESRCH) }
        let size = min(usize, ATTR_SIZE_VER1)
        var b = [UInt8](repeating: 0, count: ATTR_SIZE_VER1)
        put32(&b, 0, Int32(size))
        put32(&b, 4, x.schedPolicy)
        put64(&b, 8, x.schedResetOnFork ? FLAG_RESET_ON_FORK : 0)
        put32(&b, 16, isFair(x.schedPolicy) ? x.nice : 0)
        put32(&b, 20, x.schedPriority)
        put64(&b, 24, x.schedDeadline.runtime)
        put64(&b, 32, x.schedDeadline.deadline)
        put64(&b, 40, x.schedDeadline.period)
        put32(&b, 52, 1024)                                                   // util_max: no clamp
        return t.copyOut(a.a1, Array(b[0..<size])) ? 0 : err(EFAULT)
    }
    t[251] = sysIoprioSet
    t[252] = sysIoprioGet
}

// ioprio: class in bits 13-15 (NONE 0, RT 1, BE 2, IDLE 3), level in 0-2,
// hints in 3-12. `which` is IOPRIO_WHO_PROCESS (1), _PGRP (2), _USER (3).

private func ioprioTargets(_ t: Task, _ which: Int32, _ who: Int32) -> Result<[Task], Errno> {
    // The same three kinds as getpriority's PRIO_PROCESS/PGRP/USER, numbered from 1.
    priorityTargets(t, which &- 1, who)
}

/// Linux's ioprio_check_cap: an I/O priority `v` the caller may ask for
/// (ioprio_set, an io_uring read or write), or -errno.
func checkIoprio(_ t: Task, _ v: Int32) -> Int {
    let cls = (v >> 13) & 7, data = v & 0x1fff, level = data & 7
    if v < 0 || v >= 1 << 16 { return err(EINVAL) }
    switch cls {
    case 1:                                                                   // RT: CAP_SYS_ADMIN or CAP_SYS_NICE
        if !t.creds.has(Cap.sysAdmin) && !t.creds.has(Cap.sysNice) { return err(EPERM) }
        if level >= 8 { return err(EINVAL) }
    case 2: if level >= 8 { return err(EINVAL) }
    case 3: break
    case 0: if data != 0 { return err(EINVAL) }
    default: return err(EINVAL)
    }
    return 0
}

private func sysIoprioSet(_ t: Task, _ a: Args) -> Int {
    let v = a.int(2)
    let e = checkIoprio(t, v)
    if e != 0 { return e }
    let ts: [Task]
    switch ioprioTargets(t, a.int(0), a.int(1)) { case .failure(let e): return e.ret; case .success(let x): ts = x }
    for x in ts where x.tg !== t.tg && t.creds.euid != x.creds.uid && t.creds.uid != x.creds.uid
        && !t.creds.has(Cap.sysNice) { return err(EPERM) }
    for x in ts { x.ioprio = v }
    return 0
}

private func sysIoprioGet(_ t: Task, _ a: Args) -> Int {
    switch ioprioTargets(t, a.int(0), a.int(1)) {
    case .failure(let e): return e.ret
    case .success(let ts):
        // Several tasks: the best, RT before BE before IDLE, then the lowest
        // level; a task that set nothing counts as BE at level 4.
        func rank(_ v: Int32) -> (Int32, Int32) {
            let c = v >> 13
            return c == 0 ? (2, 4) : (c, v & 7)
        }
        if ts.count == 1 { return Int(ts[0].ioprio) }
        var best = ts[0].ioprio
        for x in ts.dropFirst() where rank(x.ioprio) < rank(best) { best = x.ioprio }
        return Int(best)
    }
}
