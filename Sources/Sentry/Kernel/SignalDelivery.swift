// Signal delivery: choosing a pending signal, default actions, building the
// x86-64 rt_sigframe on the application stack, and rt_sigreturn.

import CMoat
import Glibc
import Platform

// Layout of the kernel's rt_sigframe on x86-64 (offsets in bytes):
//   0    pretcode (the handler's return address: sa_restorer)
//   8    ucontext: uc_flags 8, uc_link 16, uc_stack 24 (sp, flags, size),
//        uc_mcontext 48 (sigcontext, 256 bytes), uc_sigmask 304
//   312  siginfo (128 bytes)
//   440  end; the FXSAVE area (512 bytes, 64-byte aligned) sits above it.
private let ucOff = 8
private let mctxOff = ucOff + 40
private let sigmaskOff = ucOff + 296
private let infoOff = 312
private let frameSize = 440
private let fpSize = 512

// sigcontext register order (x86-64): r8..r15, rdi, rsi, rbp, rbx, rdx, rax,
// rcx, rsp, rip, eflags, cs/gs/fs/ss, err, trapno, oldmask, cr2, fpstate.

enum DeliveryResult { case delivered, ignored, exit }

extension Task {
    /// Takes the next deliverable signal, thread-directed first. Requires: mu held.
    func takeSignal() -> SigInfo? {
        if let i = pending.take(blocked: sigMask) { return i }
        return tg.sharedPending.take(blocked: sigMask)
    }

    /// A signal leaves a queue (delivered, waited for or read from a
    /// signalfd): a POSIX timer's signal makes timer_getoverrun report the
    /// overrun it carried, as in Linux. Requires: mu held.
    func noteTaken(_ info: SigInfo) {
        if info.code == -2, let tm = tg.posixTimers[info.pid] { tm.overrun = Int32(bitPattern: info.uid) }
    }

    /// Acts on one signal. Requires: mu held.
    func deliver(_ info: SigInfo) -> DeliveryResult {
        let sig = info.signo
        noteTaken(info)
        let act = tg.handlers.actions[Int(sig)]
        if act.handler == 1 { return .ignored }                // SIG_IGN
        if act.handler == 0 {                                  // SIG_DFL
            switch defaultAction(sig) {
            case .ignore, .cont:
                return .ignored
            case .stop:
                if tg.isNamespaceInit && !info.fromHost { return .ignored }  // init ignores default stops
                tg.stopped = true
                tg.stopSignal = sig
                tg.stopReported = false
                if let p = tg.parent {
                    p.notifyChildEvent(tg)
                    if p.handlers.actions[Int(SIGCHLD)].flags & UInt64(SA_NOCLDSTOP) == 0 {
                        var ci = SigInfo(signo: SIGCHLD)
                        ci.code = 5 // CLD_STOPPED
                        ci.pid = vpid(tg.tgid); ci.status = sig
                        p.sendSignal(SIGCHLD, ci)
                    }
                }
                for t in tg.tasks where t !== self { t.kick() }
                return .ignored
            case .terminate, .core:
                // init in its own pid namespace only dies of signals it handles.
                if tg.isNamespaceInit && !info.isFault && !info.fromHost { return .ignored }
                let core: Int32 = defaultAction(sig) == .core && tg.rlimits[RL_CORE].cur > 0 ? 0x80 : 0
                tg.beginExit(code: sig | core, bySignal: true)
                return .exit
            }
        }
        if setupFrame(info, act) {
            if act.flags & UInt64(SA_RESETHAND) != 0 { tg.handlers.actions[Int(sig)] = SigAction() }
            return .delivered
        }
        // The frame could not be written: the application dies of SIGSEGV.
        tg.beginExit(code: SIGSEGV, bySignal: true)
        return .exit
    }

    /// Installs a signal mask for the duration of one call (sigsuspend,
    /// ppoll, pselect6, epoll_pwait); delivering a handler or
    /// restoreSignalMask() puts the old one back.
    func setTemporarySignalMask(_ m: UInt64) {
        savedSigMask = sigMask
        sigMask = m & ~unblockableMask
    }

    func restoreSignalMask() {
        if let m = savedSigMask { sigMask = m; savedSigMask = nil }
    }

    /// Before returning to the application without a handler frame: a
    /// pending restart code re-executes the syscall, and a mask saved by
    /// sigsuspend/ppoll/pselect is restored. (With a handler, setupFrame
    /// decided both, knowing SA_RESTART.)
    func finishRestart(handlerRan: Bool) {
        if handlerRan { return }
        if restartCode != 0 {
            restartCode = 0
            thread.regs.rax = restartNr
            thread.regs.rip &-= 2
            thread.markDirty()
        }
        restoreSignalMask()
    }

    private func setupFrame(_ info: SigInfo, _ act: SigAction) -> Bool {
        var regs = thread.regs
        // Resolve a pending restart against this handler.
        if restartCode != 0 {
            let c = restartCode
            restartCode = 0
            if c == -ERESTARTNOINTR || (c == -ERESTARTSYS && act.flags & UInt64(SA_RESTART) != 0) {
                regs.rax = restartNr
                regs.rip &-= 2
            } else {
                regs.rax = UInt64(bitPattern: Int64(-Int(EINTR)))
            }
        }
        let oldMask = savedSigMask ?? sigMask
        savedSigMask = nil

        var sp = regs.rsp
        let onAlt = altStackFlags & SS_DISABLE == 0 && altStackSize > 0
        let alreadyOnAlt = onAlt && sp > altStackSP && sp <= altStackSP &+ altStackSize
        if act.flags & UInt64(SA_ONSTACK) != 0 && onAlt && !alreadyOnAlt {
            sp = altStackSP &+ altStackSize
        } else {
            sp &-= 128 // red zone
        }
        let fpAddr = (sp &- UInt64(fpSize)) & ~63
        let frame = ((fpAddr &- UInt64(frameSize)) & ~15) &- 8

        var fp = FPRegisters()
        let haveFP = thread.getFP(&fp)
        var b = [UInt8](repeating: 0, count: frameSize)
        put64(&b, 0, act.restorer)
        put64(&b, ucOff, 0x2)             // uc_flags: UC_SIGCONTEXT_SS
        put64(&b, ucOff + 16, altStackSP)
        put32(&b, ucOff + 24, onAlt ? (alreadyOnAlt ? 1 : 0) : SS_DISABLE) // SS_ONSTACK = 1
        put64(&b, ucOff + 32, altStackSize)
        let gregs: [UInt64] = [regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
                               regs.rdi, regs.rsi, regs.rbp, regs.rbx, regs.rdx, regs.rax, regs.rcx,
                               regs.rsp, regs.rip, regs.eflags]
        for (i, v) in gregs.enumerated() { put64(&b, mctxOff + 8 * i, v) }
        // cs, gs, fs, ss as u16s.
        let seg = regs.cs | (regs.gs << 16) | (regs.fs << 32) | (regs.ss << 48)
        put64(&b, mctxOff + 144, seg)
        if info.isFault {
            put64(&b, mctxOff + 152, 4)          // err: user-mode fault
            put64(&b, mctxOff + 160, 14)         // trapno: page fault
            put64(&b, mctxOff + 176, info.addr)  // cr2
        }
        put64(&b, mctxOff + 168, oldMask)
        put64(&b, mctxOff + 184, haveFP ? fpAddr : 0)
        put64(&b, sigmaskOff, oldMask)
        let ib = info.bytes()
        b.replaceSubrange(infoOff..<infoOff + 128, with: ib)

        if haveFP {
            let ok = withUnsafeBytes(of: &fp) { copyOut(fpAddr, $0.baseAddress!, fpSize) }
            if !ok { return false }
        }
        if !copyOut(frame, b) { return false }

        regs.rsp = frame
        regs.rip = act.handler
        regs.rdi = UInt64(info.signo)
        regs.rsi = frame &+ UInt64(infoOff)
        regs.rdx = frame &+ UInt64(ucOff)
        regs.rax = 0
        regs.eflags &= ~UInt64(0x400 | 0x100) // DF, TF
        regs.orig_rax = UInt64.max
        thread.regs = regs
        thread.markDirty()
        var mask = sigMask | act.mask
        if act.flags & UInt64(SA_NODEFER) == 0 { mask |= sigBit(info.signo) }
        sigMask = mask & ~unblockableMask
        if act.flags & UInt64(SA_ONSTACK) != 0 && onAlt && !alreadyOnAlt {
            // SS_AUTODISARM is not modeled.
        }
        return true
    }

    /// rt_sigreturn: restores the context saved by setupFrame.
    func sigreturn() -> Int {
        let frame = thread.regs.rsp &- 8
        guard let b = copyIn(frame, frameSize) else {
            tg.beginExit(code: SIGSEGV, bySignal: true)
            return 0
        }
        var r = thread.regs
        var g = [UInt64](repeating: 0, count: 18)
        for i in 0..<18 { g[i] = get64(b, mctxOff + 8 * i) }
        r.r8 = g[0]; r.r9 = g[1]; r.r10 = g[2]; r.r11 = g[3]; r.r12 = g[4]; r.r13 = g[5]
        r.r14 = g[6]; r.r15 = g[7]; r.rdi = g[8]; r.rsi = g[9]; r.rbp = g[10]; r.rbx = g[11]
        r.rdx = g[12]; r.rax = g[13]; r.rcx = g[14]; r.rsp = g[15]; r.rip = g[16]
        // Only the flags an application may change.
        let userFlags: UInt64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x40000 | 0x200000
        r.eflags = (r.eflags & ~userFlags) | (g[17] & userFlags)
        r.orig_rax = UInt64.max
        thread.regs = r
        thread.markDirty()
        let fpAddr = get64(b, mctxOff + 184)
        if fpAddr != 0, let fb = copyIn(fpAddr, fpSize) {
            var fp = FPRegisters()
            withUnsafeMutableBytes(of: &fp) { dst in fb.withUnsafeBytes { dst.copyMemory(from: $0) } }
            fp.mxcsr &= 0xffff // reserved bits must be clear
            _ = thread.setFP(&fp)
        }
        sigMask = get64(b, sigmaskOff) & ~unblockableMask
        skipReturn = true
        return 0
    }

    /// A fault in application code becomes a synchronous signal that cannot
    /// be blocked or ignored (as Linux's force_sig). Requires: mu held.
    func forceFault(signo: Int32, code: Int32, addr: UInt64) {
        var info = SigInfo(signo: signo)
        info.code = code
        info.addr = addr
        info.isFault = true
        let act = tg.handlers.actions[Int(signo)]
        if sigMask & sigBit(signo) != 0 || act.handler == 1 {
            tg.handlers.actions[Int(signo)] = SigAction()
            sigMask &= ~sigBit(signo)
        }
        pending.add(signo, info)
    }

    /// Sends a thread-directed signal. Requires: mu held.
    func sendSignal(_ sig: Int32, _ info: SigInfo) {
        if tg.exiting { return }
        if sig == SIGKILL || sig == SIGCONT || sigBit(sig) & stopSignalsMask != 0 {
            // Their effect is on the whole group.
            if sig == SIGKILL { tg.beginExit(code: SIGKILL, bySignal: true); return }
            tg.sendSignal(sig, info)
            return
        }
        if ptrace == nil && tg.isIgnored(sig) && (sigMask | realBlocked) & sigBit(sig) == 0 { return }
        pending.add(sig, info)
        kick()
    }
}
