// ptrace(2) between the sandbox's own tasks, emulated in the Sentry: no host
// ptrace is involved (the host already traces every stub; the application's
// tracer and tracee are both Sentry tasks). What is there: PTRACE_TRACEME,
// ATTACH, SEIZE, DETACH, CONT, KILL, PEEKTEXT/PEEKDATA, POKETEXT/POKEDATA,
// signal-delivery stops reported to the tracer's wait, and the legacy
// SIGTRAP after a traced task's execve, and PEEKUSER/POKEUSER of the x86
// debug registers (kept and read back; no hardware breakpoint is armed, so
// a watchpoint never fires). Other register access, single-stepping and
// the PTRACE_O_* event options answer EIO.

import Glibc

private let PTRACE_TRACEME = 0, PTRACE_PEEKTEXT = 1, PTRACE_PEEKDATA = 2, PTRACE_POKETEXT = 4, PTRACE_POKEDATA = 5
private let PTRACE_PEEKUSER = 3, PTRACE_POKEUSER = 6
/// offsetof(struct user, u_debugreg) on x86-64, and the struct's size.
private let userDebugRegs: UInt64 = 848, userSize: UInt64 = 912
private let PTRACE_CONT = 7, PTRACE_KILL = 8, PTRACE_ATTACH = 16, PTRACE_DETACH = 17, PTRACE_SEIZE = 0x4206

/// A traced task's side of the relationship. Guarded by Kernel.mu.
final class PtraceState {
    /// The tracing process (its threads share the tracees, as in Linux
    /// where any thread of the tracer's group may wait for them).
    weak var tracer: ThreadGroup?
    /// In a signal-delivery stop, with the signal that caused it.
    var stopped = false
    var stopSignal: Int32 = 0
    /// The stop was reported to the tracer's wait.
    var reported = false
    /// The signal to deliver on resumption (0: suppressed).
    var resumeSignal: Int32 = 0
    /// DR0-DR7 as the tracer set them (PTRACE_POKEUSER).
    var debugRegs = [UInt64](repeating: 0, count: 8)
    init(tracer: ThreadGroup) { self.tracer = tracer }
}

extension ThreadGroup {
    /// A thread of the group is traced: signals it ignores still stop it.
    var traced: Bool { tasks.contains { $0.ptrace != nil } }

    /// The tracer is gone: its tracees are detached and resumed.
    /// Requires: Kernel.mu held.
    func detachTracees() {
        for t in kernel.tasks.values where t.ptrace != nil && (t.ptrace!.tracer == nil || t.ptrace!.tracer === self) {
            t.ptrace = nil
            t.wake()
        }
    }
}

extension Task {
    /// A traced task took `info`: it stops, its tracer's wait reports the
    /// stop, and it waits to be resumed. Returns the signal to deliver
    /// then (nil: none; the tracer suppressed it), or nil with exit set
    /// when the task must die. Requires: Kernel.mu held.
    func ptraceSignalStop(_ info: SigInfo) -> SigInfo? {
        guard let p = ptrace, let tracer = p.tracer else { ptrace = nil; return info }
        p.stopped = true
        p.stopSignal = info.signo
        p.reported = false
        p.resumeSignal = info.signo
        tracer.notifyChildEvent(tg)
        var ci = SigInfo(signo: SIGCHLD)
        ci.code = 4 // CLD_TRAPPED
        ci.pid = tid; ci.status = info.signo
        tracer.sendSignal(SIGCHLD, ci)
        while p.stopped && ptrace === p && !exitRequested && !tg.exiting {
            _ = block(deadline: nil, stopWait: true)
        }
        p.stopped = false
        if exitRequested || tg.exiting { return nil }
        let sig = p.resumeSignal
        if sig == 0 { return nil }
        return sig == info.signo ? info : SigInfo(signo: sig)
    }

    /// Whether the task sleeps in a ptrace stop (block's stop wait).
    var ptraceStopped: Bool { ptrace?.stopped ?? false }
}

func registerPtrace(_ t: SyscallTable) {
    t[101] = sysPtrace
}

private func sysPtrace(_ t: Task, _ a: Args) -> Int {
    let req = Int(Int64(bitPattern: a.a0)), pid = a.int(1), addr = a.a2, data = a.a3
    let k = t.kernel
    if req == PTRACE_TRACEME {
        guard let parent = t.tg.parent else { return err(EPERM) }
        if t.ptrace != nil { return err(EPERM) }
        t.ptrace = PtraceState(tracer: parent)
        return 0
    }
    guard pid > 0, let target = k.tasks[pid], k.sees(t, target.tg), !target.tg.zombie else { return err(ESRCH) }
    if req == PTRACE_ATTACH || req == PTRACE_SEIZE {
        if req == PTRACE_SEIZE && (addr != 0 || data != 0) { return err(EINVAL) }  // no PTRACE_O_* events
        if target.tg === t.tg { return err(EPERM) }
        if target.ptrace != nil { return err(EPERM) }
        if !mayAttach(t, target.tg) { return err(EPERM) }
        target.ptrace = PtraceState(tracer: t.tg)
        if target.tg.parent !== t.tg { t.tg.tracesNonChildren = true }
        if req == PTRACE_ATTACH {
            var info = SigInfo(signo: SIGSTOP)
            info.pid = t.tg.tgid; info.uid = t.creds.uid
            target.tg.sendSignal(SIGSTOP, info)
        }
        return 0
    }
    // Every other request needs a tracee of ours, stopped (but KILL).
    guard let p = target.ptrace, p.tracer === t.tg else { return err(ESRCH) }
    if req == PTRACE_KILL {
        target.tg.beginExit(code: SIGKILL, bySignal: true)
        return 0
    }
    // A tracee in a group stop (attached while stopped) is as good as in a
    // ptrace stop for reading, writing and detaching it: Linux turns that
    // stop into a ptrace stop before PTRACE_ATTACH returns.
    let peeks = [PTRACE_PEEKTEXT, PTRACE_PEEKDATA, PTRACE_POKETEXT, PTRACE_POKEDATA, PTRACE_PEEKUSER, PTRACE_POKEUSER, PTRACE_DETACH]
    if !p.stopped && !(target.tg.stopped && peeks.contains(req)) { return err(ESRCH) }
    switch req {
    case PTRACE_CONT, PTRACE_DETACH:
        if data > 64 { return err(EIO) }
        p.resumeSignal = Int32(data)
        p.stopped = false
        if req == PTRACE_DETACH { target.ptrace = nil }
        target.wake()
        return 0
    case PTRACE_PEEKTEXT, PTRACE_PEEKDATA:
        var word: UInt64 = 0
        if target.memRead(addr, &word, 8) != 8 { return err(EIO) }
        return t.memWrite(data, &word, 8) == 8 ? 0 : err(EFAULT)
    case PTRACE_POKETEXT, PTRACE_POKEDATA:
        var word = data
        return target.memWrite(addr, &word, 8) == 8 ? 0 : err(EIO)
    case PTRACE_PEEKUSER, PTRACE_POKEUSER:
        // Linux: an offset inside struct user, 8-aligned, else EIO. Only
        // the debug registers are emulated; DR4 and DR5 do not exist.
        if addr & 7 != 0 || addr >= userSize { return err(EIO) }
        guard addr >= userDebugRegs else { return err(EIO) }
        let n = Int((addr - userDebugRegs) / 8)
        if n == 4 || n == 5 { return err(EIO) }
        if req == PTRACE_PEEKUSER {
            var word = p.debugRegs[n]
            return t.memWrite(data, &word, 8) == 8 ? 0 : err(EFAULT)
        }
        // A breakpoint address must be a user address.
        if n < 4 && data >= taskSizeMax { return err(EINVAL) }
        p.debugRegs[n] = data
        return 0
    default:
        return err(EIO)
    }
}
