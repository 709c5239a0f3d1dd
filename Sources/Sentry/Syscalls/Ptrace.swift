// ptrace(2) between the sandbox's own tasks, emulated in the Sentry: no host
// ptrace is involved (the host already traces every stub; the application's
// tracer and tracee are both Sentry tasks). What is there: PTRACE_TRACEME,
// ATTACH, SEIZE (with options), INTERRUPT and LISTEN, DETACH, CONT, SYSCALL,
// SYSEMU, SINGLESTEP, KILL, PEEK/POKE of memory and of struct user (the
// general registers, checked as Linux's putreg checks them; the x86 debug
// registers, kept and read back though no hardware breakpoint is armed),
// GETREGS/SETREGS and GET/SETREGSET of NT_PRSTATUS, GET/SETSIGINFO,
// GET/SETSIGMASK, SETOPTIONS and GETEVENTMSG, and the stops ptrace(2)
// describes: signal-delivery stops, group stops (PTRACE_EVENT_STOP for a
// seized tracee), syscall-entry and -exit stops (SIGTRAP, or SIGTRAP|0x80
// with PTRACE_O_TRACESYSGOOD), and the fork, vfork, clone, vfork-done and
// exec events (a new child of a traced task is traced too); a traced
// process's exit is its tracer's to collect before its parent may;
// PTRACE_O_EXITKILL; PTRACE_EVENT_EXIT (ptraceExitStop: a thread on its
// way out stops with its exit status as the event message, until its
// tracer resumes or detaches it, a group exit begun after it, the tracer's
// end or the sandbox's) and
// PTRACE_EVENT_SECCOMP (Syscalls/Seccomp.swift: a filter's
// SECCOMP_RET_TRACE; the message is the filter's data).
//
// The FPU state: PTRACE_GETREGSET and SETREGSET of NT_X86_XSTATE (the XSAVE
// area) and NT_PRFPREG (its legacy FXSAVE part), and GETFPREGS/SETFPREGS.
// A tracee's registers and FPU state are taken by its own driver thread
// when it enters a ptrace stop (only that thread may touch its platform
// thread) and loaded back when it leaves the stop if the tracer changed
// them; the tracer's writes are checked as Linux checks them (segment
// selectors, the flags a program may change, reserved XSAVE header bits,
// MXCSR), so an invalid state never reaches the CPU. The code and stack
// segments cannot be changed at all (Linux would let a tracer switch a
// tracee to 32-bit code; the sandbox's stubs run 64-bit code only).
//
// A task stopped for syscalls runs under PTRACE_SYSEMU on the host (never
// the seccomp fast path), so every call reaches the Sentry with its
// registers; its calls are not served without the kernel lock either.

import Glibc
import Platform

private let PTRACE_TRACEME = 0, PTRACE_PEEKTEXT = 1, PTRACE_PEEKDATA = 2, PTRACE_POKETEXT = 4, PTRACE_POKEDATA = 5
private let PTRACE_PEEKUSER = 3, PTRACE_POKEUSER = 6
/// offsetof(struct user, u_debugreg) on x86-64, and the struct's size.
private let userDebugRegs: UInt64 = 848, userSize: UInt64 = 912
private let PTRACE_GETFPREGS = 14, PTRACE_SETFPREGS = 15, PTRACE_GETREGSET = 0x4204, PTRACE_SETREGSET = 0x4205
private let NT_PRSTATUS: UInt64 = 1, NT_PRFPREG: UInt64 = 2, NT_X86_XSTATE: UInt64 = 0x202
private let PTRACE_GETREGS = 12
/// The legacy FXSAVE area that starts an XSAVE area, and the XSAVE header
/// after it (xstate_bv, xcomp_bv, 48 reserved bytes).
private let fxsaveSize = 512, xsaveHeaderSize = 64
private let PTRACE_CONT = 7, PTRACE_KILL = 8, PTRACE_ATTACH = 16, PTRACE_DETACH = 17, PTRACE_SEIZE = 0x4206
private let PTRACE_SETREGS = 13, PTRACE_SINGLESTEP = 9, PTRACE_SYSCALL = 24, PTRACE_SYSEMU = 31, PTRACE_SYSEMU_SINGLESTEP = 32
private let PTRACE_SETOPTIONS = 0x4200, PTRACE_GETEVENTMSG = 0x4201, PTRACE_GETSIGINFO = 0x4202, PTRACE_SETSIGINFO = 0x4203
private let PTRACE_INTERRUPT = 0x4207, PTRACE_LISTEN = 0x4208, PTRACE_GETSIGMASK = 0x420a, PTRACE_SETSIGMASK = 0x420b
/// PTRACE_O_*: every option Linux knows (PTRACE_O_MASK).
let PTRACE_O_TRACESYSGOOD: UInt64 = 1, PTRACE_O_TRACEFORK: UInt64 = 2, PTRACE_O_TRACEVFORK: UInt64 = 4
let PTRACE_O_TRACECLONE: UInt64 = 8, PTRACE_O_TRACEEXEC: UInt64 = 0x10, PTRACE_O_TRACEVFORKDONE: UInt64 = 0x20
let PTRACE_O_TRACEEXIT: UInt64 = 0x40, PTRACE_O_TRACESECCOMP: UInt64 = 0x80
private let PTRACE_O_EXITKILL: UInt64 = 0x100000, PTRACE_O_SUSPEND_SECCOMP: UInt64 = 0x200000, ptraceOptionsMask: UInt64 = 0x3000ff
/// PTRACE_EVENT_*: the event in bits 8-15 of a stop's status.
let PTRACE_EVENT_FORK: Int32 = 1, PTRACE_EVENT_VFORK: Int32 = 2, PTRACE_EVENT_CLONE: Int32 = 3
let PTRACE_EVENT_EXEC: Int32 = 4, PTRACE_EVENT_VFORK_DONE: Int32 = 5, PTRACE_EVENT_EXIT: Int32 = 6
let PTRACE_EVENT_SECCOMP: Int32 = 7
let PTRACE_EVENT_STOP: Int32 = 128
/// The trap flag, and the flags a tracer may change (Linux's FLAG_MASK:
/// CF PF AF ZF SF TF DF OF NT RF AC).
private let eflagsTF: UInt64 = 0x100, eflagsUserMask: UInt64 = 0x54dd5
/// The size of struct user_regs_struct: PEEKUSER/POKEUSER below it address a register.
private let userRegsSize = UInt64(MemoryLayout<Registers>.size)

/// A traced task's side of the relationship. Guarded by Kernel.mu.
final class PtraceState {
    /// The tracing process (its threads share the tracees, as in Linux
    /// where any thread of the tracer's group may wait for them).
    weak var tracer: ThreadGroup?
    /// In a ptrace stop, reported to wait as `stopSignal` (a signal, with
    /// a PTRACE_EVENT_* in bits 8-15 for an event stop).
    var stopped = false
    var stopSignal: Int32 = 0
    /// The stop was reported to the tracer's wait.
    var reported = false
    /// The signal to deliver on resumption (0: suppressed).
    var resumeSignal: Int32 = 0
    /// The stop's siginfo (PTRACE_GETSIGINFO): the signal's in a
    /// signal-delivery stop, a SIGTRAP one in syscall and event stops, none
    /// in a group stop (EINVAL).
    var siginfo: SigInfo? = nil
    /// PTRACE_O_* options; attached by PTRACE_SEIZE.
    var options: UInt64 = 0
    var seized = false
    /// How the tracer resumed the tracee last.
    enum Resume { case cont, syscall, sysemu }
    var resume = Resume.cont
    /// PTRACE_SINGLESTEP: the trap flag was set for one instruction.
    var stepping = false
    /// PTRACE_GETEVENTMSG: the last event's value (a new child's pid, ...).
    var eventMsg: UInt64 = 0
    /// An event stop to make before the task runs again (PTRACE_INTERRUPT,
    /// PTRACE_EVENT_EXEC): its wait code and event message.
    var pendingStop: (code: Int32, msg: UInt64)? = nil
    /// The current group stop was reported to the tracer (it then runs on
    /// when the tracer resumes it, as on Linux); PTRACE_LISTEN keeps it in
    /// the group stop until SIGCONT, which makes it trap again.
    var groupStopReported = false
    var listening = false
    /// The tracer changed `regs` (written back when the stop ends).
    var regsDirty = false
    /// DR0-DR7 as the tracer set them (PTRACE_POKEUSER).
    var debugRegs = [UInt64](repeating: 0, count: 8)
    /// The tracee's FPU state while it is in a ptrace stop: its XSAVE area
    /// (`hasXState`) or, on a platform without XSAVE, its FXSAVE area;
    /// empty when it could not be read. `fpuDirty`: the tracer changed it.
    var fpu: [UInt8] = []
    var hasXState = false
    var fpuDirty = false
    /// The tracee's general registers as it entered a signal-delivery stop
    /// (taken on its own thread, as the FPU state is); nil in a stop that
    /// did not take them (a group stop found at attach).
    var regs: Registers? = nil
    /// In a PTRACE_EVENT_EXIT stop, which a group exit begun after it
    /// (a SIGKILL, exit_group) or the sandbox's end ends (`exitStopKilled`).
    var inExitStop = false
    var exitStopKilled = false
    init(tracer: ThreadGroup) { self.tracer = tracer }
}

extension ThreadGroup {
    /// A thread of the group is traced: signals it ignores still stop it.
    var traced: Bool { tasks.contains { $0.ptrace != nil } }

    /// The tracer is gone: its tracees are detached and resumed, or killed
    /// if it asked for that (PTRACE_O_EXITKILL). Requires: Kernel.mu held.
    func detachTracees() {
        for t in kernel.tasks.values where t.ptrace != nil && (t.ptrace!.tracer == nil || t.ptrace!.tracer === self) {
            let kill = t.ptrace!.options & PTRACE_O_EXITKILL != 0
            t.ptrace = nil
            if kill { t.tg.beginExit(code: SIGKILL, bySignal: true) }
            t.wake()
        }
    }

    /// A group exit (or the sandbox's end) ends its threads'
    /// PTRACE_EVENT_EXIT stops, as Linux's zap wakes them. Requires: Kernel.mu held.
    func endExitStops() {
        for t in tasks { if let p = t.ptrace, p.inExitStop { p.exitStopKilled = true; t.wake() } }
    }
}

extension Task {
    /// Enters a ptrace stop reported to the tracer's wait as `code`, with
    /// `info` for PTRACE_GETSIGINFO, and waits to be resumed. Returns false
    /// when the task must exit instead (a SIGKILL, its group's exit).
    /// Requires: Kernel.mu held, on the task's own driver thread.
    /// `atExit`: the PTRACE_EVENT_EXIT stop of a task already leaving,
    /// which only its tracer, the tracer's end or endExitStops ends.
    @discardableResult
    func ptraceStop(code: Int32, info: SigInfo?, resumeSignal: Int32 = 0, atExit: Bool = false) -> Bool {
        guard let p = ptrace, let tracer = p.tracer else { ptrace = nil; return !(exitRequested || tg.exiting) }
        if !atExit && (exitRequested || tg.exiting) { return false }
        if p.stepping {
            // A single step ends at the first stop after it.
            thread.regs.eflags &= ~eflagsTF
            thread.markDirty()
            p.stepping = false
        }
        p.stopped = true
        p.stopSignal = code
        p.reported = false
        p.resumeSignal = resumeSignal
        p.siginfo = info
        p.listening = false
        // A call served as a seccomp notification has only its number and
        // arguments in `regs`: the rest come in first. The tracer sees the
        // call's number; the host thread keeps -1 there (no host restart).
        var notifNr: UInt64? = nil
        if thread.inNotif {
            notifNr = thread.regs.orig_rax
            thread.materialize()
        }
        saveFPUForTracer(p)
        p.regs = thread.regs
        if let nr = notifNr { p.regs!.orig_rax = nr }
        p.regsDirty = false
        tracer.notifyChildEvent(tg)
        var ci = SigInfo(signo: SIGCHLD)
        ci.code = 4 // CLD_TRAPPED
        ci.pid = vpid(tid); ci.status = code & 0x7f
        tracer.sendSignal(SIGCHLD, ci)
        if atExit {
            p.inExitStop = true
            p.exitStopKilled = false
            while p.stopped && ptrace === p && !p.exitStopKilled { _ = block(deadline: nil, exitStop: true) }
            p.inExitStop = false
        } else {
            while p.stopped && ptrace === p && !exitRequested && !tg.exiting {
                _ = block(deadline: nil, stopWait: true)
            }
        }
        p.stopped = false
        // What the tracer wrote stands even if it detached meanwhile (Linux
        // writes a stopped tracee's registers at once).
        if p.regsDirty, var r = p.regs {
            if notifNr != nil { r.orig_rax = thread.regs.orig_rax }
            thread.regs = r
            thread.markDirty()
        }
        p.regsDirty = false
        p.regs = nil
        restoreFPUFromTracer(p)
        if exitRequested || tg.exiting { return false }
        ptraceSyscalls = ptrace === p && p.resume != .cont
        guard ptrace === p else { return true }
        if p.resume != .cont { thread.wantFast = false }
        if p.stepping {
            thread.regs.eflags |= eflagsTF
            thread.markDirty()
            thread.wantFast = false
        }
        return true
    }

    /// A traced task took `info`: it stops, its tracer's wait reports the
    /// stop, and it waits to be resumed. Returns the signal to deliver
    /// then (nil: none; the tracer suppressed it), or nil with exit set
    /// when the task must die. Requires: Kernel.mu held.
    func ptraceSignalStop(_ info: SigInfo) -> SigInfo? {
        guard let p = ptrace, p.tracer != nil else { ptrace = nil; return info }
        guard ptraceStop(code: info.signo, info: info, resumeSignal: info.signo) else { return nil }
        let sig = p.resumeSignal
        if sig == 0 { return nil }
        // The siginfo as the tracer left it (PTRACE_SETSIGINFO) if the
        // signal is the one it names; another signal comes from the tracer.
        if let si = p.siginfo, si.signo == sig { return si }
        var fromTracer = SigInfo(signo: sig)
        if let tr = p.tracer { fromTracer.pid = vpid(tr.tgid) }
        return fromTracer
    }

    /// An event stop (SIGTRAP with PTRACE_EVENT_* `event`), if the tracer
    /// asked for it with `option`; `msg` for PTRACE_GETEVENTMSG. Returns
    /// false when the task must exit. Requires: Kernel.mu held.
    @discardableResult
    func ptraceEvent(_ event: Int32, option: UInt64, msg: UInt64) -> Bool {
        guard let p = ptrace, p.options & option != 0 else { return true }
        return trapStop(p, code: SIGTRAP | event << 8, msg: msg)
    }

    /// PTRACE_EVENT_EXIT, if the tracer asked for it: the task, on its way
    /// out (exit, exit_group, a fatal signal, another thread's execve),
    /// stops with its exit status as the event message. Its group's death
    /// by a signal or exit_group gives the group's status, a thread's own
    /// exit its own. Requires: Kernel.mu held, on the task's driver thread.
    func ptraceExitStop() {
        guard let p = ptrace, p.tracer != nil, p.options & PTRACE_O_TRACEEXIT != 0 else { return }
        p.eventMsg = UInt64(UInt32(bitPattern: tg.exiting ? tg.exitCode : exitStatus))
        let code = SIGTRAP | PTRACE_EVENT_EXIT << 8
        var info = SigInfo(signo: SIGTRAP)
        info.code = code; info.pid = vpid(tid); info.uid = creds.uid
        ptraceStop(code: code, info: info, atExit: true)
    }

    /// Before the task runs again: an event stop the tracer asked for
    /// (PTRACE_INTERRUPT) or that a call left (exec), and a group stop the
    /// tracer has not seen. Returns nil when there was none, else whether
    /// the task may go on. Requires: Kernel.mu held.
    func ptracePendingStop() -> Bool? {
        guard let p = ptrace, p.tracer != nil else { return nil }
        if let e = p.pendingStop {
            p.pendingStop = nil
            return trapStop(p, code: e.code, msg: e.msg)
        }
        if !tg.stopped {
            p.groupStopReported = false
            // PTRACE_LISTEN: the group stop ended (SIGCONT); trap again.
            if p.listening { p.listening = false; return trapStop(p, code: SIGTRAP | PTRACE_EVENT_STOP << 8, msg: 0) }
            return nil
        }
        // Reported: the task runs on once resumed, or (PTRACE_LISTEN)
        // stays in its group stop.
        if p.groupStopReported { return nil }
        // A group stop becomes a ptrace stop the tracer's wait reports
        // (PTRACE_EVENT_STOP for a seized tracee); no siginfo.
        p.groupStopReported = true
        return ptraceStop(code: p.seized ? tg.stopSignal | PTRACE_EVENT_STOP << 8 : tg.stopSignal, info: nil)
    }

    /// A SIGTRAP stop with wait code `code` (an event in bits 8-15).
    private func trapStop(_ p: PtraceState, code: Int32, msg: UInt64) -> Bool {
        p.eventMsg = msg
        var info = SigInfo(signo: SIGTRAP)
        info.code = code; info.pid = vpid(tid); info.uid = creds.uid
        return ptraceStop(code: code, info: info)
    }

    /// Whether the task must stop before it runs on (prepareToRun) though
    /// no signal is pending: PTRACE_INTERRUPT. Requires: Kernel.mu held.
    var ptraceStopPending: Bool { ptrace?.pendingStop != nil }

    /// The call a traced task stopped at, with syscall stops when its tracer
    /// resumed it with PTRACE_SYSCALL or PTRACE_SYSEMU: an entry stop (rax
    /// -ENOSYS, orig_rax the call), where the tracer may change the call, its
    /// arguments or skip it (orig_rax -1; under SYSEMU it is always skipped,
    /// rax being what the tracer left), then the call, then an exit stop
    /// (PTRACE_SYSCALL) showing its result, which the tracer may change.
    /// Requires: Kernel.mu held.
    func ptraceSyscall() {
        guard let p = ptrace, p.tracer != nil else {
            ptraceSyscalls = false
            dispatchSyscall(self)
            return
        }
        let code = SIGTRAP | (p.options & PTRACE_O_TRACESYSGOOD != 0 ? 0x80 : 0)
        var info = SigInfo(signo: SIGTRAP)
        info.code = code; info.pid = vpid(tid); info.uid = creds.uid
        if p.resume != .cont {
            if thread.inNotif {
                // Rare (traced tasks resume under SYSEMU): the registers
                // come in first.
                let nr = thread.regs.orig_rax
                thread.materialize()
                thread.regs.orig_rax = nr
            }
            thread.regs.rax = UInt64(bitPattern: -Int64(ENOSYS))
            thread.markDirty()
            let emulate = p.resume == .sysemu
            guard ptraceStop(code: code, info: info) else { return }
            thread.wantFast = false
            if emulate { return }
            if Int64(bitPattern: thread.regs.orig_rax) < 0 { return }          // skipped by the tracer
        }
        dispatchSyscall(self)
        thread.wantFast = false
        // An event the call left (exec) comes before its exit stop, as on Linux.
        if let q = ptrace, q === p, let e = p.pendingStop {
            p.pendingStop = nil
            guard trapStop(p, code: e.code, msg: e.msg) else { return }
        }
        // The exit stop is for a tracer that asks for it now (it may have
        // resumed the task from an event stop inside the call).
        guard let q = ptrace, q === p, p.resume == .syscall else { return }
        // It shows a restart request as Linux's registers hold it
        // (-ERESTART*); a tracer that changes rax cancels the restart.
        let restart = restartCode
        if restart != 0 { thread.regs.rax = UInt64(bitPattern: Int64(restart)) }
        let shown = thread.regs.rax
        guard ptraceStop(code: code, info: info) else { return }
        if restart != 0 {
            if thread.regs.rax == shown { thread.regs.rax = UInt64(bitPattern: -Int64(EINTR)) } else { restartCode = 0 }
            thread.markDirty()
        }
        thread.wantFast = false
    }

    /// On entering a ptrace stop, on the tracee's own thread.
    private func saveFPUForTracer(_ p: PtraceState) {
        p.fpuDirty = false
        switch thread.getXState() {
        case .success(let area) where area.count >= fxsaveSize + xsaveHeaderSize:
            p.fpu = area; p.hasXState = true
        default:
            var fp = FPRegisters()
            p.hasXState = false
            p.fpu = thread.getFP(&fp) ? withUnsafeBytes(of: &fp) { Array($0) } : []
        }
    }

    /// On leaving it: what the tracer wrote goes back into the thread.
    private func restoreFPUFromTracer(_ p: PtraceState) {
        defer { p.fpu = []; p.fpuDirty = false }
        guard p.fpuDirty else { return }
        if p.hasXState {
            let r = thread.setXState(p.fpu)
            if r < 0 { Log.shared.info("ptrace: the host refused a checked XSAVE area (errno \(-r))") }
        } else if p.fpu.count >= MemoryLayout<FPRegisters>.size {
            var fp = FPRegisters()
            withUnsafeMutableBytes(of: &fp) { d in p.fpu.withUnsafeBytes { d.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<d.count])) } }
            _ = thread.setFP(&fp)
        }
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
        if t.ptrace != nil || !Yama.shared.mayTraceMe(t, parent: parent) { return err(EPERM) }
        t.ptrace = PtraceState(tracer: parent)
        return 0
    }
    guard pid > 0, let target = k.task(pid, by: t), !target.tg.zombie else { return err(ESRCH) }
    if req == PTRACE_ATTACH || req == PTRACE_SEIZE {
        if req == PTRACE_SEIZE {
            // Unknown options are EIO here (EINVAL for PTRACE_SETOPTIONS).
            if addr != 0 || data & ~ptraceOptionsMask != 0 { return err(EIO) }
            if let e = checkOptions(t, data) { return e }
        }
        if target.tg === t.tg { return err(EPERM) }
        if target.ptrace != nil { return err(EPERM) }
        if !mayAttach(t, target.tg) || !Yama.shared.mayAttach(t, target) { return err(EPERM) }
        let p = PtraceState(tracer: t.tg)
        if req == PTRACE_SEIZE { p.seized = true; p.options = data }
        target.ptrace = p
        if target.tg.parent !== t.tg || target.tid != target.tg.tgid { t.tg.tracesNonChildren = true }
        if req == PTRACE_ATTACH && target.tg.stopped {
            // Already in a group stop: that stop becomes a ptrace stop the
            // tracer's wait reports (SIGSTOP), as Linux traps a stopped
            // tracee at attach; a SIGSTOP sent now would only stop it again
            // after it is resumed, and the wait found nothing to report.
            p.stopped = true
            p.stopSignal = target.tg.stopSignal
            p.reported = false
            p.groupStopReported = true
            t.tg.notifyChildEvent(target.tg)
        } else if req == PTRACE_ATTACH {
            // To the thread attached, not its process: another thread could
            // take a group-wide SIGSTOP and the tracee would never report a
            // ptrace stop (Linux's ptrace_attach sends it to the task).
            var info = SigInfo(signo: SIGSTOP)
            info.pid = t.vpid(t.tg.tgid); info.uid = t.creds.uid
            target.sendSignal(SIGSTOP, info)
        }
        return 0
    }
    // Every other request needs a tracee of ours, stopped (but KILL,
    // INTERRUPT and LISTEN's own rules).
    guard let p = target.ptrace, p.tracer === t.tg else { return err(ESRCH) }
    if req == PTRACE_KILL {
        target.tg.beginExit(code: SIGKILL, bySignal: true)
        return 0
    }
    if req == PTRACE_INTERRUPT || req == PTRACE_LISTEN {
        // Only for a tracee attached by PTRACE_SEIZE (EIO otherwise).
        if !p.seized { return err(EIO) }
        if req == PTRACE_INTERRUPT {
            // A stop (PTRACE_EVENT_STOP) at the next chance: a blocking
            // call is interrupted (and restarted after), running code kicked.
            if !p.stopped && p.pendingStop == nil { p.pendingStop = (SIGTRAP | PTRACE_EVENT_STOP << 8, 0) }
            target.kick()
            return 0
        }
        // LISTEN: only from a group stop (an event stop of a stopped group).
        guard p.stopped, target.tg.stopped, p.stopSignal >> 8 == PTRACE_EVENT_STOP else { return err(EIO) }
        p.stopped = false
        p.listening = true
        target.wake()
        return 0
    }
    // A tracee in a group stop (attached while stopped) is as good as in a
    // ptrace stop for reading, writing and detaching it: Linux turns that
    // stop into a ptrace stop before PTRACE_ATTACH returns.
    let peeks = [PTRACE_PEEKTEXT, PTRACE_PEEKDATA, PTRACE_POKETEXT, PTRACE_POKEDATA, PTRACE_PEEKUSER, PTRACE_POKEUSER, PTRACE_DETACH]
    if !p.stopped && !(target.tg.stopped && peeks.contains(req)) { return err(ESRCH) }
    switch req {
    case PTRACE_CONT, PTRACE_DETACH, PTRACE_SYSCALL, PTRACE_SYSEMU, PTRACE_SINGLESTEP, PTRACE_SYSEMU_SINGLESTEP:
        if data > 64 { return err(EIO) }
        p.resumeSignal = Int32(data)
        p.stopped = false
        switch req {
        case PTRACE_SYSCALL: p.resume = .syscall
        case PTRACE_SYSEMU, PTRACE_SYSEMU_SINGLESTEP: p.resume = .sysemu
        default: p.resume = .cont
        }
        p.stepping = req == PTRACE_SINGLESTEP || req == PTRACE_SYSEMU_SINGLESTEP
        if req == PTRACE_DETACH { target.ptrace = nil }
        target.wake()
        return 0
    case PTRACE_SETOPTIONS:
        if let e = checkOptions(t, data) { return e }
        p.options = data
        return 0
    case PTRACE_GETEVENTMSG:
        var v = p.eventMsg
        return t.memWrite(data, &v, 8) == 8 ? 0 : err(EFAULT)
    case PTRACE_GETSIGINFO:
        guard let si = p.siginfo else { return err(EINVAL) }                    // a group stop has none
        return t.copyOut(data, si.bytes()) ? 0 : err(EFAULT)
    case PTRACE_SETSIGINFO:
        guard p.siginfo != nil else { return err(EINVAL) }
        guard let b = t.copyIn(data, 32) else { return err(EFAULT) }
        var si = suppliedSigInfo(Int32(bitPattern: get32(b, 0)), b).info
        // A fault's address and a syscall stop's fields are kept as given.
        if p.siginfo!.isFault { si.isFault = true; si.addr = get64(b, 16) }
        p.siginfo = si
        return 0
    case PTRACE_GETSIGMASK, PTRACE_SETSIGMASK:
        // addr: the size of the kernel's sigset_t.
        if addr != 8 { return err(EINVAL) }
        if req == PTRACE_GETSIGMASK {
            var m = target.sigMask
            return t.memWrite(data, &m, 8) == 8 ? 0 : err(EFAULT)
        }
        var m: UInt64 = 0
        if t.memRead(data, &m, 8) != 8 { return err(EFAULT) }
        target.sigMask = m & ~(sigBit(SIGKILL) | sigBit(SIGSTOP))
        return 0
    case PTRACE_PEEKTEXT, PTRACE_PEEKDATA:
        var word: UInt64 = 0
        if target.memRead(addr, &word, 8) != 8 { return err(EIO) }
        return t.memWrite(data, &word, 8) == 8 ? 0 : err(EFAULT)
    case PTRACE_POKETEXT, PTRACE_POKEDATA:
        var word = data
        return target.memWrite(addr, &word, 8) == 8 ? 0 : err(EIO)
    case PTRACE_PEEKUSER, PTRACE_POKEUSER:
        // Linux: an offset inside struct user, 8-aligned, else EIO. The
        // general registers and the debug registers are emulated (DR4 and
        // DR5 do not exist); the rest of struct user reads as 0.
        if addr & 7 != 0 || addr >= userSize { return err(EIO) }
        if addr < userRegsSize {
            guard var r = p.regs else { return err(EIO) }
            if req == PTRACE_PEEKUSER {
                var word = withUnsafeBytes(of: &r) { $0.load(fromByteOffset: Int(addr), as: UInt64.self) }
                return t.memWrite(data, &word, 8) == 8 ? 0 : err(EFAULT)
            }
            withUnsafeMutableBytes(of: &r) { $0.storeBytes(of: data, toByteOffset: Int(addr), as: UInt64.self) }
            return setRegs(p, r)
        }
        guard addr >= userDebugRegs else {
            if req == PTRACE_POKEUSER { return err(EIO) }
            var zero: UInt64 = 0
            return t.memWrite(data, &zero, 8) == 8 ? 0 : err(EFAULT)
        }
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
    case PTRACE_GETREGS:
        // struct user_regs_struct, as the stop found it.
        guard var r = p.regs else { return err(EIO) }
        return t.memWrite(data, &r, MemoryLayout<Registers>.size) == MemoryLayout<Registers>.size ? 0 : err(EFAULT)
    case PTRACE_SETREGS:
        guard p.regs != nil else { return err(EIO) }
        var r = Registers()
        if t.memRead(data, &r, MemoryLayout<Registers>.size) != MemoryLayout<Registers>.size { return err(EFAULT) }
        return setRegs(p, r)
    case PTRACE_GETREGSET where addr == NT_PRSTATUS, PTRACE_SETREGSET where addr == NT_PRSTATUS:
        var iov = (base: UInt64(0), len: UInt64(0))
        if t.memRead(data, &iov, 16) != 16 { return err(EFAULT) }
        guard var r = p.regs else { return err(EIO) }
        if iov.len % 8 != 0 { return err(EINVAL) }
        let n = Int(min(iov.len, userRegsSize))
        if req == PTRACE_GETREGSET {
            if n > 0 && t.memWrite(iov.base, &r, n) != n { return err(EFAULT) }
        } else {
            // A prefix of the registers replaces theirs (Linux's regset_set).
            if n > 0 && t.memRead(iov.base, &r, n) != n { return err(EFAULT) }
            let e = setRegs(p, r)
            if e != 0 { return e }
        }
        iov.len = UInt64(n)
        return t.memWrite(data + 8, &iov.len, 8) == 8 ? 0 : err(EFAULT)
    case PTRACE_GETREGSET, PTRACE_SETREGSET:
        // data: a struct iovec whose length the call sets to what it copied.
        var iov = (base: UInt64(0), len: UInt64(0))
        if t.memRead(data, &iov, 16) != 16 { return err(EFAULT) }
        guard let size = fpuRegsetSize(p, type: addr) else { return err(EINVAL) }
        if size < 0 { return err(Int32(-size)) }
        // Linux: a length that is no multiple of the regset's 8-byte unit
        // is EINVAL; a longer one is cut to the regset's size.
        if iov.len % 8 != 0 { return err(EINVAL) }
        let n = Int(min(iov.len, UInt64(size)))
        if req == PTRACE_GETREGSET {
            if n > 0 && p.fpu.withUnsafeBytes({ t.memWrite(iov.base, $0.baseAddress!, n) }) != n { return err(EFAULT) }
        } else {
            // Only a whole area is accepted (XSAVE: EFAULT, FXSAVE: EINVAL).
            if n != size { return err(addr == NT_X86_XSTATE ? EFAULT : EINVAL) }
            var buf = [UInt8](repeating: 0, count: n)
            if buf.withUnsafeMutableBytes({ t.memRead(iov.base, $0.baseAddress!, n) }) != n { return err(EFAULT) }
            let r = setFPU(p, buf, xsave: addr == NT_X86_XSTATE)
            if r != 0 { return r }
        }
        iov.len = UInt64(n)
        return t.memWrite(data + 8, &iov.len, 8) == 8 ? 0 : err(EFAULT)
    case PTRACE_GETFPREGS, PTRACE_SETFPREGS:
        guard let size = fpuRegsetSize(p, type: NT_PRFPREG), size > 0 else { return err(EIO) }
        if req == PTRACE_GETFPREGS {
            return p.fpu.withUnsafeBytes({ t.memWrite(data, $0.baseAddress!, size) }) == size ? 0 : err(EFAULT)
        }
        var buf = [UInt8](repeating: 0, count: size)
        if buf.withUnsafeMutableBytes({ t.memRead(data, $0.baseAddress!, size) }) != size { return err(EFAULT) }
        return setFPU(p, buf, xsave: false)
    default:
        return err(EIO)
    }
}

/// PTRACE_SETOPTIONS' (and PTRACE_SEIZE's) options: Linux's bits only;
/// suspending seccomp needs CAP_SYS_ADMIN. nil when they are acceptable.
private func checkOptions(_ t: Task, _ options: UInt64) -> Int? {
    if options & ~ptraceOptionsMask != 0 { return err(EINVAL) }
    if options & PTRACE_O_SUSPEND_SECCOMP != 0 && !t.creds.has(Cap.sysAdmin) { return err(EPERM) }
    return nil
}

/// The tracer's new general registers for a stopped tracee, checked as
/// Linux's putreg checks them: data segment selectors null or of user
/// privilege, fs_base and gs_base user addresses (EIO otherwise), and of
/// the flags only those a program may change. The code and stack segments
/// stay as they are (EIO for another value: see the header).
private func setRegs(_ p: PtraceState, _ new: Registers) -> Int {
    guard let cur = p.regs else { return err(EIO) }
    if new.cs != cur.cs || new.ss != cur.ss { return err(EIO) }
    for sel in [new.ds, new.es, new.fs, new.gs] where sel > 0xffff || (sel != 0 && sel & 3 != 3) { return err(EIO) }
    if new.fs_base >= taskSizeMax || new.gs_base >= taskSizeMax { return err(EIO) }
    var r = new
    r.eflags = (cur.eflags & ~eflagsUserMask) | (new.eflags & eflagsUserMask)
    p.regs = r
    p.regsDirty = true
    return 0
}

/// The size of an FPU regset of a stopped tracee, -errno when the tracee's
/// state lacks it (ENODEV: XSAVE on a platform without it; EIO: the state
/// could not be read), nil for a regset type that is not emulated.
private func fpuRegsetSize(_ p: PtraceState, type: UInt64) -> Int? {
    switch type {
    case NT_PRFPREG: return p.fpu.count >= fxsaveSize ? fxsaveSize : -Int(EIO)
    case NT_X86_XSTATE:
        if p.fpu.isEmpty { return -Int(EIO) }
        return p.hasXState ? p.fpu.count : -Int(ENODEV)
    default: return nil
    }
}

private func load<T: FixedWidthInteger>(_ b: [UInt8], _ off: Int, _: T.Type) -> T {
    b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: off, as: T.self) }
}

/// The tracer's new FPU state for a stopped tracee, checked as Linux checks
/// it (arch/x86/kernel/fpu: xfpregs_set, copy_uabi_to_xstate): MXCSR may
/// set no bit outside the CPU's MXCSR mask; an XSAVE header must be in the
/// standard format (xcomp_bv 0), name only features the CPU saves and keep
/// its reserved bytes zero. Any violation is EINVAL and changes nothing.
private func setFPU(_ p: PtraceState, _ new: [UInt8], xsave: Bool) -> Int {
    let cur = p.fpu
    // The mask the CPU reported in the saved area (0 means the default).
    var mask = load(cur, 28, UInt32.self)
    if mask == 0 { mask = 0xffbf }
    if load(new, 24, UInt32.self) & ~mask != 0 { return err(EINVAL) }
    var next = cur
    if xsave {
        let features = load(new, fxsaveSize, UInt64.self)
        if load(new, fxsaveSize + 8, UInt64.self) != 0 { return err(EINVAL) }
        if new[(fxsaveSize + 16)..<(fxsaveSize + xsaveHeaderSize)].contains(where: { $0 != 0 }) { return err(EINVAL) }
        // The features this CPU saves: the XCR0 mask that the kernel's
        // regset keeps in the first software-reserved bytes (offset 464,
        // where debuggers read it), or x87|SSE.
        let xcr0 = load(cur, 464, UInt64.self)
        let supported = xcr0 != 0 ? xcr0 : 3
        if features & ~supported != 0 { return err(EINVAL) }
        next = new
        // The kernel's own software-reserved bytes stay.
        next.replaceSubrange(464..<fxsaveSize, with: cur[464..<fxsaveSize])
    } else {
        next.replaceSubrange(0..<464, with: new[0..<464])
        // x87 and SSE state now count as in use (XSTATE_BV bits 0 and 1).
        if p.hasXState {
            let bv = load(next, fxsaveSize, UInt64.self) | 3
            withUnsafeBytes(of: bv) { next.replaceSubrange(fxsaveSize..<(fxsaveSize + 8), with: $0) }
        }
    }
    p.fpu = next
    p.fpuDirty = true
    return 0
}
