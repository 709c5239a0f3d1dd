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
//   440  end; the FPU state (64-byte aligned) sits above it: the XSAVE
//        area with its software-reserved words and trailing magic (see
//        signalFPState), or the bare FXSAVE area without XSAVE.
private let ucOff = 8
private let mctxOff = ucOff + 40
private let sigmaskOff = ucOff + 296
private let infoOff = 312
private let frameSize = 440
private let fxsaveSize = 512

// The XSAVE signal frame (Linux's struct _fpx_sw_bytes in the legacy area's
// software-reserved bytes at 464: magic1, extended size, features, area
// size; magic2 in the 4 bytes after the area). uc_flags UC_FP_XSTATE says
// the frame has it.
private let fpXStateMagic1: UInt32 = 0x4650_5853
private let fpXStateMagic2: UInt32 = 0x4650_5845
private let ucFPXState: UInt64 = 1
/// AMX tile data: Linux puts it in signal frames only for a process that
/// asked for it (arch_prctl ARCH_REQ_XCOMP_PERM, which Moat does not
/// offer), so frames stay the size sigaltstack users expect.
private let xfeatureTileData: UInt64 = 1 << 18
/// Where each XSAVE component ends in the standard format (CPUID 0xD;
/// 576 for the legacy ones), read once: CPUID traps in a VM.
private let xstateComponentEnd: [Int] = (0..<63).map { Int(moat_xstate_size(1 << UInt64($0))) }
/// Visits only the set bits: it runs twice per signal, and a reduce over
/// all 63 components was a fifth of a debug build's signal round trip.
private func xstateSize(_ features: UInt64) -> Int {
    var size = 576, rest = features & ~(1 << 63)
    while rest != 0 {
        size = max(size, xstateComponentEnd[rest.trailingZeroBitCount])
        rest &= rest - 1
    }
    return size
}

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
                dieOfSignal(sig, info)
                return .exit
            }
        }
        if setupFrame(info, act) {
            // SA_RESETHAND resets the handler only: the flags (SA_SIGINFO) stay, as on Linux.
            if act.flags & UInt64(SA_RESETHAND) != 0 { tg.handlers.actions[Int(sig)].handler = 0 }
            return .delivered
        }
        // The frame could not be written: the application dies of SIGSEGV.
        dieOfSignal(SIGSEGV, SigInfo.kernel(SIGSEGV))
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
            // -ERESTART_RESTARTBLOCK goes on through restart_syscall.
            thread.regs.rax = restartCode == -ERESTART_RESTARTBLOCK && restartBlock != nil ? 219 : restartNr
            restartCode = 0
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
            restartBlock = nil   // a handler runs: the sleep ends with EINTR
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
        let fpState = signalFPState()
        let fpAddr = (sp &- UInt64(fpState?.bytes.count ?? 0)) & ~63
        let frame = ((fpAddr &- UInt64(frameSize)) & ~15) &- 8
        let haveFP = fpState != nil
        // A frame on the alternate stack that would run off its bottom is
        // not written (Linux's get_sigframe: the signal becomes a SIGSEGV
        // that kills, where Moat wrote on below the stack, fault after fault).
        let usesAlt = alreadyOnAlt || (act.flags & UInt64(SA_ONSTACK) != 0 && onAlt)
        if usesAlt && !(frame > altStackSP && frame &- altStackSP <= altStackSize) { return false }

        var b = [UInt8](repeating: 0, count: frameSize)
        put64(&b, 0, act.restorer)
        // uc_flags: UC_SIGCONTEXT_SS, and UC_FP_XSTATE with an XSAVE frame.
        put64(&b, ucOff, 0x2 | (fpState?.xsave == true ? ucFPXState : 0))
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

        if let f = fpState, !copyOut(fpAddr, f.bytes) { return false }
        if !copyOut(frame, b) { return false }
        // The handler starts with the FPU as a new program does (Linux's
        // fpu__clear_user_states): the interrupted state is the frame's alone.
        if haveFP { resetFPForHandler() }

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
            dieOfSignal(SIGSEGV, SigInfo.kernel(SIGSEGV))
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
        if fpAddr != 0 && !restoreSignalFP(fpAddr) {
            // Linux's rt_sigreturn: an FPU state it cannot restore is a
            // bad frame (SIGSEGV).
            dieOfSignal(SIGSEGV, SigInfo.kernel(SIGSEGV))
            return 0
        }
        sigMask = get64(b, sigmaskOff) & ~unblockableMask
        skipReturn = true
        return 0
    }

    /// The FPU state a signal frame holds, as Linux writes it: where the
    /// thread has XSAVE state (platform getXState: the host's on ptrace, the
    /// guest's on KVM), the standard-format XSAVE area of its user features
    /// (XCR0 from the area's first software-reserved word, without AMX tile
    /// data), those software-reserved bytes replaced by the frame's
    /// (magic1, the size with magic2, the features, the area size) and
    /// magic2 after it; else the FXSAVE area alone. So AVX registers a
    /// handler changes come back at sigreturn, and a handler reading
    /// uc_mcontext.fpregs finds them as on Linux. nil: unreadable.
    private func signalFPState() -> (bytes: [UInt8], xsave: Bool)? {
        if case .success(var a) = thread.getXState(), a.count >= 576 {
            let xcr0 = get64(a, 464)
            let features = (xcr0 == 0 ? 3 : xcr0) & ~xfeatureTileData
            let size = min(a.count, xstateSize(features))
            a.removeSubrange(size...)
            put64(&a, 512, get64(a, 512) & features)  // xstate_bv
            a.replaceSubrange(464..<512, with: repeatElement(0, count: 48))
            put32(&a, 464, Int32(bitPattern: fpXStateMagic1))
            put32(&a, 468, Int32(size + 4))
            put64(&a, 472, features)
            put32(&a, 480, Int32(size))
            a += withUnsafeBytes(of: fpXStateMagic2.littleEndian) { Array($0) }
            return (a, true)
        }
        var fp = FPRegisters()
        guard thread.getFP(&fp) else { return nil }
        return (withUnsafeBytes(of: &fp) { Array($0) }, false)
    }

    /// Puts the FPU in its initial state: x87 control word 0x37f, MXCSR
    /// 0x1f80, every register and extended component cleared.
    private func resetFPForHandler() {
        if let layout = thread.xstateLayout(), layout.size >= 576 {
            var area = [UInt8](repeating: 0, count: layout.size)
            put32(&area, 0, 0x37f)
            put32(&area, 24, 0x1f80)
            put64(&area, 464, layout.xcr0 == 0 ? 3 : layout.xcr0)
            put64(&area, 512, 3)                        // x87 and SSE from the area; the rest in their init state
            if thread.setXState(area) == 0 { return }
        }
        var fp = FPRegisters()
        fp.cwd = 0x37f
        fp.mxcsr = 0x1f80
        _ = thread.setFP(&fp)
    }

    /// rt_sigreturn's FPU part, as Linux restores it: an XSAVE frame (magic1,
    /// a size between the header's end and the one this thread's frames
    /// have, magic2 after it) loads the components its xstate_bv names,
    /// within its features and its size, and resets the rest to their init
    /// state; any other frame is an FXSAVE area, whose x87/SSE state loads
    /// and everything beyond resets. MXCSR reserved bits or a header XRSTOR
    /// would refuse (compacted, reserved bytes) make it fail (SIGSEGV).
    private func restoreSignalFP(_ fpAddr: UInt64) -> Bool {
        guard let legacy = copyIn(fpAddr, fxsaveSize) else { return false }
        if get32(legacy, 24) & ~0xffff != 0 { return false }
        // Only the layout: the area is built from the frame, nothing of the
        // thread's current state stays.
        guard let layout = thread.xstateLayout(), layout.size >= 576 else {
            var fp = FPRegisters()
            withUnsafeMutableBytes(of: &fp) { d in legacy.withUnsafeBytes { d.copyMemory(from: $0) } }
            return thread.setFP(&fp)
        }
        let xcr0 = layout.xcr0 == 0 ? 3 : layout.xcr0
        var area = [UInt8](repeating: 0, count: layout.size)
        area.replaceSubrange(0..<464, with: legacy[0..<464])
        var bv: UInt64 = 3
        let size = Int(get32(legacy, 480))
        if get32(legacy, 464) == fpXStateMagic1, size >= 576,
           size <= min(layout.size, xstateSize(xcr0 & ~xfeatureTileData)), Int(get32(legacy, 468)) >= size + 4,
           let x = copyIn(fpAddr, size + 4), get32(x, size) == fpXStateMagic2 {
            if get64(x, 520) != 0 || x[528..<576].contains(where: { $0 != 0 }) { return false }
            area.replaceSubrange(512..<size, with: x[512..<size])
            bv = get64(x, 512) & get64(x, 472) & xcr0
            for i in 2..<63 where bv & (1 << UInt64(i)) != 0 && xstateComponentEnd[i] > size {
                bv &= ~(1 << UInt64(i))
            }
        }
        put64(&area, 512, bv)
        withUnsafeBytes(of: xcr0.littleEndian) { area.replaceSubrange(464..<472, with: $0) }
        return thread.setXState(area) == 0
    }

    /// A fault in application code becomes a synchronous signal that cannot
    /// be blocked or ignored (as Linux's force_sig). Requires: mu held.
    func forceFault(signo: Int32, code: Int32, addr: UInt64) {
        var info = SigInfo(signo: signo)
        info.code = code
        info.addr = addr
        info.isFault = true
        forceSignal(info)
    }

    /// A synchronous signal this thread cannot block or ignore (Linux's
    /// force_sig_info): a blocked or ignored one gets its default action
    /// back and is unblocked. Requires: mu held.
    func forceSignal(_ info: SigInfo) {
        let signo = info.signo
        let act = tg.handlers.actions[Int(signo)]
        if sigMask & sigBit(signo) != 0 || act.handler == 1 {
            tg.handlers.actions[Int(signo)] = SigAction()
            sigMask &= ~sigBit(signo)
        }
        pending.add(signo, info)
    }

    /// What Linux's send_sig(sig, current, 0) does for SIGPIPE on a broken
    /// pipe or socket and SIGXFSZ past RLIMIT_FSIZE: a signal to this
    /// thread, SI_USER with its own pid and uid as the sender's.
    /// Requires: mu held.
    func sendSelfSignal(_ sig: Int32) {
        sendSignal(sig, userSigInfo(sig, to: tg))
    }

    /// The siginfo of a signal this task sends as a user would (kill,
    /// pidfd_send_signal without one of its own, send_sig) to process
    /// `receiver`: SI_USER, with this task's process id and real uid as the
    /// receiver reads them (its pid namespace's number, 0 from outside it;
    /// the uid as its user namespace shows it).
    func userSigInfo(_ sig: Int32, to receiver: ThreadGroup) -> SigInfo {
        var info = SigInfo(signo: sig)
        info.code = 0                                                         // SI_USER
        info.pid = receiver.pidSeen(tg.tgid)
        info.uid = receiver.creds.userNS.showUID(creds.uid)
        return info
    }

    /// Sends a thread-directed signal. Requires: mu held.
    func sendSignal(_ sig: Int32, _ info: SigInfo) {
        if tg.exiting { return }
        if sig == SIGKILL || sig == SIGCONT || (ptrace == nil && sigBit(sig) & stopSignalsMask != 0) {
            // Their effect is on the whole group; a traced thread takes a
            // stop signal itself, into a ptrace stop (PTRACE_ATTACH's SIGSTOP).
            if sig == SIGKILL { tg.beginExit(code: SIGKILL, bySignal: true); return }
            tg.sendSignal(sig, info)
            return
        }
        if ptrace == nil && tg.isIgnored(sig) && (sigMask | realBlocked) & sigBit(sig) == 0 { return }
        pending.add(sig, info)
        kick()
    }
}
