// ptrace(2) between the sandbox's own tasks, emulated in the Sentry: no host
// ptrace is involved (the host already traces every stub; the application's
// tracer and tracee are both Sentry tasks). What is there: PTRACE_TRACEME,
// ATTACH, SEIZE, DETACH, CONT, KILL, PEEKTEXT/PEEKDATA, POKETEXT/POKEDATA,
// signal-delivery stops reported to the tracer's wait, and the legacy
// SIGTRAP after a traced task's execve, and PEEKUSER/POKEUSER of the x86
// debug registers (kept and read back; no hardware breakpoint is armed, so
// a watchpoint never fires), and the FPU state: PTRACE_GETREGSET and
// SETREGSET of NT_X86_XSTATE (the XSAVE area) and NT_PRFPREG (its legacy
// FXSAVE part), and PTRACE_GETFPREGS/SETFPREGS. A tracee's FPU state is
// taken by its own driver thread when it enters a ptrace stop (only that
// thread may touch its platform thread) and loaded back when it leaves the
// stop if the tracer changed it; the tracer's writes are checked as Linux
// checks them (reserved XSAVE header bits, MXCSR), so an invalid state
// never reaches the CPU. The general-purpose registers, single-stepping and
// the PTRACE_O_* event options answer EIO.

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
        saveFPUForTracer(p)
        p.regs = thread.regs
        tracer.notifyChildEvent(tg)
        var ci = SigInfo(signo: SIGCHLD)
        ci.code = 4 // CLD_TRAPPED
        ci.pid = vpid(tid); ci.status = info.signo
        tracer.sendSignal(SIGCHLD, ci)
        while p.stopped && ptrace === p && !exitRequested && !tg.exiting {
            _ = block(deadline: nil, stopWait: true)
        }
        p.stopped = false
        p.regs = nil
        restoreFPUFromTracer(p)
        if exitRequested || tg.exiting { return nil }
        let sig = p.resumeSignal
        if sig == 0 { return nil }
        return sig == info.signo ? info : SigInfo(signo: sig)
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
        guard p.fpuDirty, ptrace === p else { return }
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
        if t.ptrace != nil { return err(EPERM) }
        t.ptrace = PtraceState(tracer: parent)
        return 0
    }
    guard pid > 0, let target = k.task(pid, by: t), !target.tg.zombie else { return err(ESRCH) }
    if req == PTRACE_ATTACH || req == PTRACE_SEIZE {
        if req == PTRACE_SEIZE && (addr != 0 || data != 0) { return err(EINVAL) }  // no PTRACE_O_* events
        if target.tg === t.tg { return err(EPERM) }
        if target.ptrace != nil { return err(EPERM) }
        if !mayAttach(t, target.tg) { return err(EPERM) }
        target.ptrace = PtraceState(tracer: t.tg)
        if target.tg.parent !== t.tg || target.tid != target.tg.tgid { t.tg.tracesNonChildren = true }
        if req == PTRACE_ATTACH && target.tg.stopped {
            // Already in a group stop: that stop becomes a ptrace stop the
            // tracer's wait reports (SIGSTOP), as Linux traps a stopped
            // tracee at attach; a SIGSTOP sent now would only stop it again
            // after it is resumed, and the wait found nothing to report.
            target.ptrace!.stopped = true
            target.ptrace!.stopSignal = target.tg.stopSignal
            target.ptrace!.reported = false
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
    case PTRACE_GETREGS:
        // struct user_regs_struct, as the stop found it (read only here).
        guard var r = p.regs else { return err(EIO) }
        return t.memWrite(data, &r, MemoryLayout<Registers>.size) == MemoryLayout<Registers>.size ? 0 : err(EFAULT)
    case PTRACE_GETREGSET where addr == NT_PRSTATUS:
        var iov = (base: UInt64(0), len: UInt64(0))
        if t.memRead(data, &iov, 16) != 16 { return err(EFAULT) }
        guard var r = p.regs else { return err(EIO) }
        if iov.len % 8 != 0 { return err(EINVAL) }
        let n = Int(min(iov.len, UInt64(MemoryLayout<Registers>.size)))
        if n > 0 && t.memWrite(iov.base, &r, n) != n { return err(EFAULT) }
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
