// rt_sigaction, rt_sigprocmask, kill and friends.

import CMoat
import Glibc

func registerSignal(_ t: SyscallTable) {
    t[13] = { t, a in                                                         // rt_sigaction
        let sig = a.int(0)
        if sig < 1 || sig > 64 || a.a3 != 8 { return err(EINVAL) }
        let old = t.tg.handlers.actions[Int(sig)]
        if a.a1 != 0 {
            if sig == SIGKILL || sig == SIGSTOP { return err(EINVAL) }
            guard let b = t.copyIn(a.a1, 32) else { return err(EFAULT) }
            var act = SigAction(handler: get64(b, 0), flags: get64(b, 8), restorer: get64(b, 16), mask: get64(b, 24))
            act.mask &= ~unblockableMask
            t.tg.handlers.actions[Int(sig)] = act
            // Setting SIG_IGN (or a default-ignore SIG_DFL) discards pending instances.
            if t.tg.isIgnored(sig) {
                t.tg.sharedPending.remove(mask: sigBit(sig))
                for x in t.tg.tasks { x.pending.remove(mask: sigBit(sig)) }
            }
        }
        if a.a2 != 0 {
            var b = [UInt8](repeating: 0, count: 32)
            put64(&b, 0, old.handler); put64(&b, 8, old.flags); put64(&b, 16, old.restorer); put64(&b, 24, old.mask)
            if !t.copyOut(a.a2, b) { return err(EFAULT) }
        }
        return 0
    }
    t[14] = { t, a in                                                         // rt_sigprocmask
        if a.a3 != 8 { return err(EINVAL) }
        let old = t.sigMask
        if a.a1 != 0 {
            guard let m = t.readU64(a.a1) else { return err(EFAULT) }
            switch a.int(0) {
            case SIG_BLOCK: t.sigMask |= m
            case SIG_UNBLOCK: t.sigMask &= ~m
            case SIG_SETMASK: t.sigMask = m
            default: return err(EINVAL)
            }
            t.sigMask &= ~unblockableMask
        }
        if a.a2 != 0 && !t.writeU64(a.a2, old) { return err(EFAULT) }
        return 0
    }
    t[15] = { t, _ in t.sigreturn() }                                          // rt_sigreturn
    t[127] = { t, a in                                                        // rt_sigpending
        if a.a1 > 8 { return err(EINVAL) }
        let p = (t.pending.mask | t.tg.sharedPending.mask) & t.sigMask
        return t.writeU64(a.a0, p) ? 0 : err(EFAULT)
    }
    t[130] = { t, a in                                                        // rt_sigsuspend
        if a.a1 != 8 { return err(EINVAL) }
        guard let m = t.readU64(a.a0) else { return err(EFAULT) }
        t.setTemporarySignalMask(m)
        while t.block(deadline: nil) != .interrupted {}
        return -ERESTARTNOHAND
    }
    t[34] = { t, _ in                                                         // pause
        while t.block(deadline: nil) != .interrupted {}
        return -ERESTARTNOHAND
    }
    t[128] = { t, a in                                                        // rt_sigtimedwait
        if a.a3 != 8 { return err(EINVAL) }
        guard let set = t.readU64(a.a0) else { return err(EFAULT) }
        let want = set & ~unblockableMask
        var deadline: Int64? = nil
        if a.a2 != 0 {
            switch readTimespecArg(t, a.a2) {
            case .success(let (sec, ns)): deadline = Kernel.now(CLOCK_MONOTONIC) &+ sec &* 1_000_000_000 &+ ns
            case .failure(let e): return e.ret
            }
        }
        let saved = t.sigMask
        while true {
            if let i = t.pending.take(blocked: ~want) ?? t.tg.sharedPending.take(blocked: ~want) {
                t.noteTaken(i)
                if a.a1 != 0 && !t.copyOut(a.a1, i.bytes()) { return err(EFAULT) }
                return Int(i.signo)
            }
            // Wait with the awaited signals unblocked for interruption only.
            t.sigMask = saved & ~want
            t.realBlocked = saved
            let r = t.block(deadline: deadline)
            t.sigMask = saved
            t.realBlocked = 0
            if r == .timedOut { return err(EAGAIN) }
            if r == .interrupted && (t.pending.mask | t.tg.sharedPending.mask) & want == 0 { return err(EINTR) }
        }
    }
    t[131] = { t, a in                                                        // sigaltstack
        // Linux's order: the new stack is read (EFAULT), checked (EPERM
        // while running on the current one, then EINVAL, ENOMEM), and the
        // old one is written only when that succeeded.
        let onStack = t.altStackSize > 0 && t.thread.regs.rsp > t.altStackSP && t.thread.regs.rsp <= t.altStackSP &+ t.altStackSize
        var old = [UInt8](repeating: 0, count: 24)
        put64(&old, 0, t.altStackSP)
        put32(&old, 8, onStack ? 1 : t.altStackFlags)
        put64(&old, 16, t.altStackSize)
        if a.a0 != 0 {
            guard let b = t.copyIn(a.a0, 24) else { return err(EFAULT) }
            if onStack { return err(EPERM) }
            let flags = Int32(bitPattern: get32(b, 8))
            let mode = flags & ~Int32(bitPattern: 0x80000000)                // less SS_AUTODISARM
            if mode != 0 && mode != 1 /* SS_ONSTACK: as 0 */ && mode != SS_DISABLE { return err(EINVAL) }
            if mode == SS_DISABLE { t.altStackSP = 0; t.altStackSize = 0; t.altStackFlags = SS_DISABLE } else {
                let size = get64(b, 16)
                if size < 2048 { return err(ENOMEM) }
                t.altStackSP = get64(b, 0); t.altStackSize = size; t.altStackFlags = 0
            }
        }
        if a.a1 != 0 && !t.copyOut(a.a1, old) { return err(EFAULT) }
        return 0
    }
    // Pids named are the caller's pid namespace's (Kernel/PidNamespaces.swift).
    t[62] = { t, a in sysKill(t, t.gpid(a.int(0)), a.int(1)) }                                       // kill
    t[234] = { t, a in sysTgkill(t, t.gpid(a.int(0)), t.gpid(a.int(1)), a.int(2)) }                  // tgkill
    t[200] = { t, a in sysTgkill(t, nil, t.gpid(a.int(0)), a.int(1)) }                                // tkill
    t[129] = { t, a in sysSigqueueinfo(t, tgid: t.gpid(a.int(0)), tid: nil, sig: a.int(1), a.a2) }    // rt_sigqueueinfo
    t[297] = { t, a in sysSigqueueinfo(t, tgid: t.gpid(a.int(0)), tid: t.gpid(a.int(1)), sig: a.int(2), a.a3) } // rt_tgsigqueueinfo
    t[424] = sysPidfdSendSignal
}

/// pidfd_send_signal(pidfd, sig, info, flags): kill(2) to the process a
/// pidfd (or a /proc/PID directory fd) names, which must not have been
/// reaped (ESRCH: its pid may be another process's by now; a zombie takes
/// the signal and ignores it); with `info`, rt_sigqueueinfo's rules for the
/// caller's siginfo. Flags: at most one of PIDFD_SIGNAL_THREAD (its leader
/// thread), _THREAD_GROUP (the default) and _PROCESS_GROUP (its group).
private func sysPidfdSendSignal(_ t: Task, _ a: Args) -> Int {
    let sig = a.int(1), flags = a.uint(3)
    if flags & ~7 != 0 || flags.nonzeroBitCount > 1 { return err(EINVAL) }
    guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let tg = pidfdGroup(f) else { return err(EBADF) }
    if tg.reaped { return err(ESRCH) }
    if flags == 4 && a.a2 == 0 { return sysKill(t, -tg.pgid, sig) }
    if !t.kernel.sees(t, tg) { return err(EINVAL) }
    if sig < 0 || sig > 64 { return err(EINVAL) }
    var info = t.userSigInfo(sig, to: tg)
    if a.a2 != 0 {
        guard let b = t.copyIn(a.a2, 32) else { return err(EFAULT) }
        if Int32(bitPattern: get32(b, 0)) != sig { return err(EINVAL) }
        let supplied = suppliedSigInfo(sig, b)
        if tg !== t.tg && supplied.claimsKernelOrKill { return err(EPERM) }
        info = supplied.info
    }
    if !canSignal(t, tg, sig) { return err(EPERM) }
    if sig == 0 || tg.zombie || t.kernel.initIgnores(tg, sig, from: t) { return 0 }
    // A PIDFD_THREAD pidfd names its thread, by default too.
    let thread = (f as? PidFD)?.thread ?? (flags == 1 ? tg.leader : nil)
    if flags != 2, let x = thread {
        if x.exited { return err(ESRCH) }
        x.sendSignal(sig, info)
    } else { tg.sendSignal(sig, info) }
    return 0
}

/// rt_sigqueueinfo / rt_tgsigqueueinfo: a signal with the caller's own
/// siginfo. As in Linux, a siginfo that claims to come from kill or the
/// kernel (si_code >= 0, or SI_TKILL) may only be sent to oneself (EPERM),
/// so a process cannot forge a kernel-generated signal to another.
private func sysSigqueueinfo(_ t: Task, tgid: Int32, tid: Int32?, sig: Int32, _ uinfo: UInt64) -> Int {
    if let tid = tid, tgid <= 0 || tid <= 0 { return err(EINVAL) }
    guard let b = t.copyIn(uinfo, 32) else { return err(EFAULT) }
    let supplied = suppliedSigInfo(sig, b)
    let own = tid.map { $0 == t.tid } ?? (tgid == t.tg.tgid)
    if supplied.claimsKernelOrKill && !own { return err(EPERM) }
    if sig < 0 || sig > 64 { return err(EINVAL) }
    let k = t.kernel
    let tg: ThreadGroup, thread: Task?
    if let tid = tid {
        guard let x = k.tasks[tid], x.tg.tgid == tgid, !x.exited, k.sees(t, x.tg) else { return err(ESRCH) }
        tg = x.tg; thread = x
    } else {
        // Any thread's id names its process (Linux's kill_proc_info).
        // A zombie not yet reaped takes the signal and ignores it, as kill's does.
        guard let g = k.threadGroups[tgid] ?? k.tasks[tgid]?.tg, !g.reaped, k.sees(t, g) else { return err(ESRCH) }
        tg = g; thread = nil
    }
    if !canSignal(t, tg, sig, thread: thread) { return err(EPERM) }
    if sig == 0 || tg.zombie { return 0 }
    if k.initIgnores(tg, sig, from: t) { return 0 }
    if supplied.info.code < 0 && sigpendingFull(k, tg, sig) { return err(EAGAIN) }
    if let x = thread { x.sendSignal(sig, supplied.info) } else { tg.sendSignal(sig, supplied.info) }
    return 0
}

/// A siginfo the caller supplies (rt_sigqueueinfo, rt_tgsigqueueinfo,
/// pidfd_send_signal; the first 32 bytes): its si_code, si_pid, si_uid and
/// si_value as given, and whether it claims to come from kill or the kernel
/// (si_code >= 0, or SI_TKILL), which Linux lets a process send only to
/// itself, so that it cannot forge a kernel-generated signal to another.
func suppliedSigInfo(_ sig: Int32, _ b: [UInt8]) -> (info: SigInfo, claimsKernelOrKill: Bool) {
    var info = SigInfo(signo: sig)
    info.errno_ = Int32(bitPattern: get32(b, 4))                          // delivered as given, as Linux does
    info.code = Int32(bitPattern: get32(b, 8))
    info.pid = Int32(bitPattern: get32(b, 16)); info.uid = get32(b, 20); info.value = get64(b, 24)
    return (info, info.code >= 0 || info.code == -6)
}

/// kill(2)'s permission rule; `thread`: the target thread (tgkill), whose
/// own credentials count. Threads of one process may always signal each other.
private func canSignal(_ t: Task, _ target: ThreadGroup, _ sig: Int32, thread: Task? = nil) -> Bool {
    if target === t.tg { return true }
    let c = t.creds, d = thread?.creds ?? target.creds
    // Landlock's signal scope: nothing to a process outside the domain.
    if t.landlockScopeDenies(Landlock.scopeSignal, d) { return false }
    if c.capable(Cap.kill, in: d.userNS) { return true }
    if sig == SIGCONT && target.sid == t.tg.sid { return true }
    return c.euid == d.uid || c.euid == d.suid || c.uid == d.uid || c.uid == d.suid
}

func sysKill(_ t: Task, _ pid: Int32, _ sig: Int32) -> Int {
    if sig < 0 || sig > 64 { return err(EINVAL) }
    let k = t.kernel
    var targets: [ThreadGroup]
    if pid > 0 {
        // A thread's id names its whole process, as the leader's does (Linux
        // finds the task by pid and signals its thread group).
        guard let tg = k.threadGroups[pid] ?? k.tasks[pid]?.tg, !tg.reaped, k.sees(t, tg) else { return err(ESRCH) }
        targets = [tg]
    } else if pid == 0 {
        targets = k.threadGroups.values.filter { $0.pgid == t.tg.pgid && !$0.reaped }
    } else if pid == -1 {
        // All but the caller and the init of its own namespace (the init of a
        // namespace below is a target, as on Linux); none is ESRCH (Linux's
        // kill_something_info: an init alone in its namespace, LTP pidns10).
        let own = PidNS.index(t.tg.tgid)
        targets = k.threadGroups.values.filter { !($0.isNamespaceInit && PidNS.index($0.tgid) == own) && $0 !== t.tg && !$0.reaped }
    } else {
        if pid == Int32.min { return err(ESRCH) }
        targets = k.threadGroups.values.filter { $0.pgid == -pid && !$0.reaped }
    }
    targets = targets.filter { k.sees(t, $0) }
    if targets.isEmpty { return err(ESRCH) }
    var sent = false
    for tg in targets where canSignal(t, tg, sig) {
        sent = true
        if sig == 0 || tg.zombie || k.initIgnores(tg, sig, from: t) { continue }
        tg.sendSignal(sig, t.userSigInfo(sig, to: tg))
    }
    return sent ? 0 : err(EPERM)
}

/// tgkill (tkill when `tgid` is nil).
func sysTgkill(_ t: Task, _ tgid: Int32?, _ tid: Int32, _ sig: Int32) -> Int {
    if sig < 0 || sig > 64 || tid <= 0 || (tgid.map { $0 <= 0 } ?? false) { return err(EINVAL) }
    guard let target = t.kernel.tasks[tid], tgid == nil || target.tg.tgid == tgid, t.kernel.sees(t, target.tg) else { return err(ESRCH) }
    if !canSignal(t, target.tg, sig, thread: target) { return err(EPERM) }
    if sig == 0 { return 0 }
    var info = SigInfo(signo: sig)
    info.code = -6 // SI_TKILL
    info.pid = target.tg.pidSeen(t.tg.tgid)
    info.uid = target.creds.userNS.showUID(t.creds.uid)
    if t.kernel.initIgnores(target.tg, sig, from: t) { return 0 }
    if sigpendingFull(t.kernel, target.tg, sig) { return err(EAGAIN) }
    target.sendSignal(sig, info)
    return 0
}

/// RLIMIT_SIGPENDING: a real-time signal whose siginfo its sender made
/// (si_code < 0: tgkill, tkill, sigqueue) needs a queue entry, and the
/// entries pending for the receiver's user are bounded by the receiver's
/// limit: past it Linux's __send_signal fails with EAGAIN. (Standard
/// signals and kill's are delivered without their siginfo instead.)
/// Requires: mu held.
func sigpendingFull(_ k: Kernel, _ tg: ThreadGroup, _ sig: Int32) -> Bool {
    if sig < 32 { return false }
    let limit = tg.rlimits[RL_SIGPENDING].cur
    if limit >= 0x3fffff { return false }                   // the default: not worth a count
    let uid = tg.creds.uid
    var n: UInt64 = 0
    for g in k.threadGroups.values where g.creds.uid == uid {
        n += UInt64(g.sharedPending.infos.count)
        for x in g.tasks { n += UInt64(x.pending.infos.count) }
    }
    return n >= limit
}
