// seccomp(2) and prctl(PR_SET_SECCOMP / PR_GET_SECCOMP): an application's
// own syscall filters (Kernel/SeccompFilters.swift), and the verdict every
// syscall gets from them and from the container's profile before its
// handler runs (seccompVerdict, called by dispatchSyscall).

import Glibc

func registerSeccomp(_ t: SyscallTable) {
    t[317] = { t, a in sysSeccomp(t, op: a.uint(0), flags: a.uint(1), uargs: a.a2) }
}

private let SECCOMP_SET_MODE_STRICT: UInt32 = 0, SECCOMP_SET_MODE_FILTER: UInt32 = 1
private let SECCOMP_GET_ACTION_AVAIL: UInt32 = 2, SECCOMP_GET_NOTIF_SIZES: UInt32 = 3

/// SECCOMP_FILTER_FLAG_*.
enum SeccompFlag {
    static let tsync: UInt32 = 1, log: UInt32 = 2, specAllow: UInt32 = 4, newListener: UInt32 = 8
    static let tsyncESRCH: UInt32 = 16, waitKillableRecv: UInt32 = 32
    static let all: UInt32 = 63
}

func sysSeccomp(_ t: Task, op: UInt32, flags: UInt32, uargs: UInt64) -> Int {
    switch op {
    case SECCOMP_SET_MODE_STRICT:
        if flags != 0 || uargs != 0 { return err(EINVAL) }
        return setStrictMode(t)
    case SECCOMP_SET_MODE_FILTER:
        return setFilterMode(t, flags: flags, progAddr: uargs)
    case SECCOMP_GET_ACTION_AVAIL:
        if flags != 0 { return err(EINVAL) }
        guard let b = t.copyIn(uargs, 4) else { return err(EFAULT) }
        return SeccompRet.known.contains(get32(b, 0)) ? 0 : err(EOPNOTSUPP)
    case SECCOMP_GET_NOTIF_SIZES:
        if flags != 0 { return err(EINVAL) }
        // struct seccomp_notif_sizes: the sizes of seccomp_notif, seccomp_notif_resp, seccomp_data.
        let sizes: [UInt8] = [80, 0, 24, 0, 64, 0]
        return t.copyOut(uargs, sizes) ? 0 : err(EFAULT)
    default:
        return err(EINVAL)
    }
}

/// prctl(PR_SET_SECCOMP, mode, filter).
func prctlSetSeccomp(_ t: Task, mode: UInt64, filter: UInt64) -> Int {
    switch mode {
    case 1: return setStrictMode(t)
    case 2: return setFilterMode(t, flags: 0, progAddr: filter)
    default: return err(EINVAL)
    }
}

/// prctl(PR_GET_SECCOMP): the calling thread's mode (a thread in strict
/// mode never gets here: prctl is not one of its four calls). The
/// container's profile makes every thread's mode 2, as runc's filter does.
func prctlGetSeccomp(_ t: Task) -> Int {
    if t.seccomp.mode != .disabled { return t.seccomp.mode.rawValue }
    return t.kernel.seccompFilter(t.tg) != nil ? 2 : 0
}

private func setStrictMode(_ t: Task) -> Int {
    if t.seccomp.mode == .filter { return err(EINVAL) }
    t.seccomp.mode = .strict
    t.hasSeccomp = true
    return 0
}

/// SECCOMP_SET_MODE_FILTER, with Linux's order of checks: the flags, the
/// program (length, privilege, copy, validity), then under the thread
/// group's view the mode, a second listener, the chain's length and TSYNC.
private func setFilterMode(_ t: Task, flags: UInt32, progAddr: UInt64) -> Int {
    if flags & ~SeccompFlag.all != 0 { return err(EINVAL) }
    if flags & SeccompFlag.tsync != 0 && flags & SeccompFlag.newListener != 0 && flags & SeccompFlag.tsyncESRCH == 0 { return err(EINVAL) }
    if flags & SeccompFlag.waitKillableRecv != 0 && flags & SeccompFlag.newListener == 0 { return err(EINVAL) }
    // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    guard let fprog = t.copyIn(progAddr, 16) else { return err(EFAULT) }
    let len = Int(fprog[0]) | Int(fprog[1]) << 8
    if len == 0 || len > ClassicBPF.maxInstructions { return err(EINVAL) }
    if !t.creds.noNewPrivs && !t.creds.has(Cap.sysAdmin) { return err(EACCES) }
    if get64(fprog, 8) == 0 { return err(EINVAL) }                       // no program: Linux's bpf_check_basics_ok
    guard let bytes = t.copyIn(get64(fprog, 8), len * 8) else { return err(EFAULT) }
    guard let program = ClassicBPF(bytes, use: .seccomp(dataSize: 64)) else { return err(EINVAL) }

    var listener: SeccompListener? = nil
    var listenerFD = -1
    if flags & SeccompFlag.newListener != 0 {
        let l = SeccompListener(waitKillable: flags & SeccompFlag.waitKillableRecv != 0)
        listenerFD = t.fds.install(l, cloexec: true, limit: fdLimit(t))
        if listenerFD < 0 { return listenerFD }
        listener = l
    }
    func fail(_ r: Int) -> Int {
        if listenerFD >= 0 { _ = t.fds.close(Int32(listenerFD)) }
        return r
    }
    if t.seccomp.mode == .strict { return fail(err(EINVAL)) }
    if listener != nil && t.seccomp.filter?.hasOpenListener == true { return fail(err(EBUSY)) }
    let f = SeccompFilter(program: program, parent: t.seccomp.filter, log: flags & SeccompFlag.log != 0, listener: listener)
    if f.pathInstructions > SeccompFilter.maxPathInstructions { return fail(err(ENOMEM)) }
    listener?.filter = f
    if flags & SeccompFlag.tsync != 0 {
        // Every other thread must be unfiltered or have a prefix of the
        // caller's chain; the first that is not is named (its thread id),
        // or ESRCH with TSYNC_ESRCH.
        let others = t.tg.tasks.filter { $0 !== t && !$0.exited }
        if let bad = others.first(where: { $0.seccomp.mode == .strict || !(t.seccomp.filter?.extends($0.seccomp.filter) ?? ($0.seccomp.filter == nil)) }) {
            return fail(flags & SeccompFlag.tsyncESRCH != 0 ? err(ESRCH) : Int(t.vpid(bad.tid)))
        }
        for o in others {
            o.seccomp = SeccompState(mode: .filter, filter: f)
            o.hasSeccomp = true
            // A sibling that had no_new_privs makes them all have it, or a
            // thread without it would hold filters it could not have set.
            if t.creds.noNewPrivs { o.creds.noNewPrivs = true }
        }
    }
    t.seccomp = SeccompState(mode: .filter, filter: f)
    t.hasSeccomp = true
    return listenerFD >= 0 ? listenerFD : 0
}

/// The four calls strict mode allows: read, write, exit, rt_sigreturn.
private let strictModeCalls: Set<Int> = [0, 1, 60, 15]

/// What the seccomp filters say of the call `t` stopped at: nil to run
/// it, else the value to return without running it (having killed the
/// thread or process, or queued its SIGSYS, as the action says). A
/// SECCOMP_RET_TRACE stop's tracer may change the call and its arguments
/// (`nr`, `a` are then the new ones). `afterTrace`: the recheck after such
/// a stop, where RET_TRACE allows (Linux's recheck_after_trace).
/// Requires: Kernel.mu held.
func seccompVerdict(_ t: Task, _ nr: inout Int, _ a: inout Args, afterTrace: Bool = false) -> Int? {
    let profile = t.kernel.seccompFilter(t.tg)
    if !t.hasSeccomp && profile == nil { return nil }
    if t.seccomp.mode == .strict {
        if strictModeCalls.contains(nr) { return nil }
        return seccompKill(t, signal: SIGKILL, wholeProcess: false)
    }
    var ret = profile?.verdict(nr, a) ?? SeccompRet.allow
    var by: SeccompFilter? = nil
    let ip = t.thread.regs.rip
    var data: [UInt8]? = nil
    if let chain = t.seccomp.filter {
        let d = seccompData(nr: nr, ip: ip, a)
        data = d
        let (r, f) = chain.evaluate(d)
        if SeccompRet.isMoreRestrictive(r, than: ret) { ret = r; by = f }
    }
    let value = ret & SeccompRet.dataMask
    switch ret & SeccompRet.actionMask {
    case SeccompRet.allow:
        return nil
    case SeccompRet.log:
        if by?.log == true { Log.shared.info("[pid \(t.tid)] seccomp: \(syscallName(nr)) logged by the application's filter") }
        return nil
    case SeccompRet.errno:
        return -Int(min(value, 4095))
    case SeccompRet.trace:
        if afterTrace { return nil }
        return seccompTraceStop(t, &nr, &a, data: value)
    case SeccompRet.userNotif:
        guard let l = by?.listener, !l.closed else { return err(ENOSYS) }
        return l.notify(t, data: data ?? seccompData(nr: nr, ip: ip, a))
    case SeccompRet.trap:
        var info = SigInfo(signo: SIGSYS)
        info.code = 1                                                   // SYS_SECCOMP
        info.errno_ = Int32(value)
        info.sysCall = (addr: ip, nr: Int32(truncatingIfNeeded: nr), arch: auditArchX86_64)
        t.forceSignal(info)
        // The registers are the call's, rolled back: rax holds its number.
        return nr
    case SeccompRet.killThread:
        return seccompKill(t, signal: SIGSYS, wholeProcess: false)
    default:                                                            // KILL_PROCESS and any unknown action
        return seccompKill(t, signal: SIGSYS, wholeProcess: true)
    }
}

/// SECCOMP_RET_TRACE: without a tracer that asked for
/// PTRACE_O_TRACESECCOMP the call fails with ENOSYS. With one, the task
/// stops (PTRACE_EVENT_SECCOMP, the filter's data as the event message,
/// rax -ENOSYS); the tracer may skip the call (orig_rax -1: its result is
/// the rax it left) or change it, and what it leaves goes through the
/// filters again. Requires: Kernel.mu held.
private func seccompTraceStop(_ t: Task, _ nr: inout Int, _ a: inout Args, data: UInt32) -> Int? {
    guard let p = t.ptrace, p.tracer != nil, p.options & PTRACE_O_TRACESECCOMP != 0 else { return err(ENOSYS) }
    let notif = t.thread.inNotif
    if notif {
        // A fast-path call: the rest of the registers come in first.
        let n = t.thread.regs.orig_rax
        t.thread.materialize()
        t.thread.regs.orig_rax = n
    }
    t.thread.regs.rax = UInt64(bitPattern: -Int64(ENOSYS))
    t.thread.markDirty()
    guard t.ptraceEvent(PTRACE_EVENT_SECCOMP, option: PTRACE_O_TRACESECCOMP, msg: UInt64(data)) else {
        t.skipReturn = true
        return 0
    }
    t.thread.wantFast = false
    let r = t.thread.regs
    // The host thread of a materialized call keeps -1 there (no host restart).
    if notif { t.thread.regs.orig_rax = UInt64.max; t.thread.markDirty() }
    let newNr = Int(Int64(bitPattern: r.orig_rax))
    if newNr < 0 { return Int(Int64(bitPattern: r.rax)) }                   // skipped by the tracer
    nr = newNr
    a = Args(a0: r.rdi, a1: r.rsi, a2: r.rdx, a3: r.r10, a4: r.r8, a5: r.r9)
    return seccompVerdict(t, &nr, &a, afterTrace: true)
}

/// Ends the thread, or its whole process when it asks so or is the last
/// thread, as if killed by `signal` (the process's exit status says so).
private func seccompKill(_ t: Task, signal: Int32, wholeProcess: Bool) -> Int {
    let live = t.tg.tasks.filter { !$0.exited && !$0.exitRequested }.count
    if wholeProcess || live <= 1 {
        // As Linux, with a core dump where one is due (SIGSYS, SYS_SECCOMP).
        var info = SigInfo(signo: signal)
        info.code = 1
        t.dieOfSignal(signal, info)
    } else {
        t.exitStatus = signal                                           // its PTRACE_EVENT_EXIT message
        t.exitRequested = true
    }
    t.skipReturn = true
    return 0
}
