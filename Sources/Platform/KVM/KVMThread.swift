// A vCPU of the KVM platform running one application thread: it enters the
// guest with the Sentry's view of the registers and comes back with a
// StopReason, exactly like PtraceThread.run().
//
// An exit leaves the vCPU in one of two places. In guest ring 0 at one of
// our `out` instructions (exceptions; syscalls on hardware KVM): the entry
// writes an iretq frame (rip, cs, rflags, rsp, ss) on the ring-0 stack and
// sets the user registers plus rip = the resume trampoline and rsp = that
// frame. In user mode (syscalls on kvm_pvm, whose SYSCALL stays in user
// mode, and host signals that stopped ring 3): the entry just sets the user
// registers, unless the address space changed (a CR3 reload is ring-0
// work), in which case the vCPU is first put back in ring 0 with
// KVM_SET_SREGS. Registers go through the kvm_run area (KVM_CAP_SYNC_REGS)
// where KVM has it, so a syscall round trip is one KVM_RUN and no other
// ioctl.
//
// The Sentry's registers are the ptrace layout (user_regs_struct) so the
// kernel code is the same for both platforms; at a syscall stop rip is the
// instruction after `syscall`, orig_rax the number and rax -ENOSYS, as
// ptrace shows them. FS and GS bases are MSRs, written only when they change
// (user code cannot change them: CR4.FSGSBASE stays off).
//
// Contexts and vCPUs: a KVMThread is an application thread's context
// (registers, address space, saved FPU state) on a hardware vCPU
// (KVMVCPU). The threads of one process share their process's vCPU; each
// process has its own (the Sentry's KVMTasks.swift says why: shadow
// paging). One vCPU of the machine runs guest code at a time (KVMTurn: the
// ring-0 pages are shared): `run` takes the turn and gives it back at the
// stop, so a thread blocked in the Sentry holds nothing. A context that
// comes back within its time slice (`KVMVCPU.sliceNs` since it last got the
// turn from the line: a syscall the Sentry answered, as a native thread
// keeps its CPU across one) goes ahead of the line; the others wait in FIFO
// order. The head of the line kicks the running context out of the guest
// when it has waited a slice (a host signal; the kick handler sets
// immediate_exit), which is the preemption: a CPU-bound guest cannot
// starve the others, and a kicked context has used its slice.
// The FPU state moves with the context, saved and loaded only when a vCPU
// changes hands between contexts.
//
// XSAVE: the guest runs with CR4.OSXSAVE and XCR0 = every user feature
// both KVM and the host kernel enable (x87, SSE, AVX, AVX-512, PKRU, AMX;
// KVMVCPU.enableXSave), so CPUID shows XSAVE, OSXSAVE and AVX as on the
// host and applications use AVX as they do natively. A context's FPU state
// is therefore its whole XSAVE area (KVM_GET_XSAVE/KVM_SET_XSAVE, or
// KVM_GET_XSAVE2 where the area outgrows 4 KiB): on a vCPU switch, in
// signal frames (the Sentry's XSAVE sigframe over getXState), across
// fork/clone and in the tracer's NT_X86_XSTATE regset.
//
// Not done yet: more vCPUs (per-vCPU ring-0 pages).

import CMoat
import Glibc

public final class KVMThread {
    public let machine: KVMMachine
    /// The hardware vCPU this context runs on (shared, see above).
    public let cpu: KVMVCPU
    var vcpu: Int32 { cpu.fd }
    var runArea: UnsafeMutableRawPointer { cpu.runArea }
    /// The XSAVE area (KVM's buffer, `machine.xsaveSize` bytes) while
    /// another context holds the vCPU (nil: the initial state, or it is in
    /// the vCPU now).
    var savedXSave: [UInt8]?
    /// When this context last got the turn from the line (CLOCK_MONOTONIC
    /// ns): its time slice runs from there (KVMTurn).
    var sliceStart: Int64 = .min / 2
    /// The application thread's registers (valid after a stop; used as is at
    /// the next run).
    public var regs = Registers()
    /// The address space the thread runs in. Switching it (exec) forces a
    /// CR3 reload with a TLB flush at the next entry, whatever generation
    /// the new one has.
    public var addressSpace: KVMAddressSpace? {
        didSet { cpu.flushedGeneration = .max }
    }
    /// The vCPU fd (the Sentry's seccomp filter allows its ioctls by fd).
    public var fd: Int32 { cpu.fd }
    /// The host signal that kicks a vCPU out of the guest (CMoat/kvm.c,
    /// moat_kvm_kick_init): a real-time signal nothing else in the Sentry
    /// uses (SIGRTMIN+6), so it is never ignored nor forwarded.
    public static let kickSignal: Int32 = 40
    /// KVM_RUN's EAGAIN/ENOMEM in a row (retried, see loopUntilStop).
    private var transientRunFailures = 0
    /// Why the last run returned .gone (a VM-level failure), for the log.
    public private(set) var lastError: String?
    /// The last exception that became a fault, for --debug logs.
    public private(set) var lastFault = ""
    /// VM exits taken (including page faults resolved without the Sentry).
    public private(set) var exits: UInt64 = 0

    private var inKernel: Bool { get { cpu.inKernel } set { cpu.inKernel = newValue } }
    private var kernelSregs: kvm_sregs { cpu.kernelSregs }
    private var loadedCR3: UInt64 { get { cpu.loadedCR3 } set { cpu.loadedCR3 = newValue } }
    private var flushedGeneration: UInt64 { get { cpu.flushedGeneration } set { cpu.flushedGeneration = newValue } }
    private var appliedFS: UInt64 { get { cpu.appliedFS } set { cpu.appliedFS = newValue } }
    private var appliedGS: UInt64 { get { cpu.appliedGS } set { cpu.appliedGS = newValue } }

    static let msrSTAR: UInt32 = 0xc000_0081
    static let msrLSTAR: UInt32 = 0xc000_0082
    static let msrCSTAR: UInt32 = 0xc000_0083
    static let msrFMASK: UInt32 = 0xc000_0084
    static let msrFSBase: UInt32 = 0xc000_0100
    static let msrGSBase: UInt32 = 0xc000_0101
    static let msrKernelGSBase: UInt32 = 0xc000_0102

    init(machine: KVMMachine, cpu: KVMVCPU) {
        self.machine = machine
        self.cpu = cpu
    }

    /// Flags user code may hold: CF PF AF ZF SF TF DF OF AC ID (IF and bit 1
    /// forced on; IOPL, NT, VM and the rest forced off).
    static let userFlags: UInt64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000

    @inline(__always) static func canonical(_ a: UInt64) -> Bool { a < KVMAddressSpace.userEnd }
    static let syscallEntry = KernelLayout.syscallEntry

    /// Runs the thread until its next syscall, fault or interruption.
    public func run() -> StopReason {
        guard let asp = addressSpace else { lastError = "no address space"; return .gone }
        guard cpu.acquire(self) else { lastError = "cannot switch the vCPU's FPU state"; return .gone }
        defer { cpu.release() }
        // Kicks to this host thread now stop this vCPU (a TLS store after
        // the first time).
        moat_kvm_kick_bind(runArea, Self.kickSignal)
        while true {
            if !Self.canonical(regs.rip) || !Self.canonical(regs.rsp) {
                // iretq would fault in ring 0; Linux sends SIGSEGV for a bad rip.
                regs.orig_rax = .max
                return .fault(signo: SIGSEGV, code: 0x80, addr: 0)
            }
            guard enter(asp) else { return .gone }
            switch loopUntilStop(asp) {
            case .some(let r): return r
            case .none: continue  // a page fault the platform resolved
            }
        }
    }

    /// Programs the vCPU to return to user mode with `regs`.
    private func enter(_ asp: KVMAddressSpace) -> Bool {
        let flush = asp.cr3 != loadedCR3 || asp.generation != flushedGeneration
        if !inKernel && flush {
            var s = kernelSregs
            s.cr3 = loadedCR3
            if moat_kvm_set_sregs(vcpu, &s) < 0 { lastError = "KVM_SET_SREGS failed"; return false }
            appliedFS = .max
            appliedGS = .max
            inKernel = true
        }
        if regs.fs_base != appliedFS || regs.gs_base != appliedGS {
            guard Self.canonical(regs.fs_base) || regs.fs_base >= 0xffff_8000_0000_0000,
                  Self.canonical(regs.gs_base) || regs.gs_base >= 0xffff_8000_0000_0000 else {
                lastError = "non-canonical FS/GS base"
                return false
            }
            let idx: [UInt32] = [Self.msrFSBase, Self.msrGSBase]
            let val: [UInt64] = [regs.fs_base, regs.gs_base]
            if moat_kvm_set_msrs(vcpu, idx, val, 2) != 2 { lastError = "KVM_SET_MSRS failed"; return false }
            appliedFS = regs.fs_base
            appliedGS = regs.gs_base
        }
        let flags = (regs.eflags & Self.userFlags) | 0x202
        var k = kvm_regs()
        k.rax = regs.rax; k.rbx = regs.rbx; k.rcx = regs.rcx; k.rdx = regs.rdx
        k.rsi = regs.rsi; k.rdi = regs.rdi; k.rbp = regs.rbp
        k.r8 = regs.r8; k.r9 = regs.r9; k.r10 = regs.r10; k.r11 = regs.r11
        k.r12 = regs.r12; k.r13 = regs.r13; k.r14 = regs.r14; k.r15 = regs.r15
        if inKernel {
            let frame = KernelLayout.stackTop - 40
            let words: [UInt64] = [regs.rip, UInt64(KernelLayout.userCS), flags, regs.rsp, UInt64(KernelLayout.userSS)]
            let mem = machine.memory
            let frameGPA = KernelPage.stackLow * 4096 + (frame - KernelLayout.va(KernelPage.stackLow))
            for (i, w) in words.enumerated() { mem.store64(frameGPA + UInt64(i) * 8, w) }
            if flush {
                mem.store64(KernelPage.data * 4096, asp.cr3)
                loadedCR3 = asp.cr3
                flushedGeneration = asp.generation
                // The next guest instruction is the CR3 reload: pages unmapped
                // before it can go back to the machine now.
                asp.releasePending()
            }
            k.rsp = frame
            k.rip = KernelLayout.va(KernelPage.code, flush ? KernelLayout.resumeFlush : KernelLayout.resume)
            k.rflags = 2
        } else {
            // Still in user mode with the right CR3 (a flush took the branch
            // above): resume the application where it stands.
            k.rsp = regs.rsp
            k.rip = regs.rip
            k.rflags = flags
        }
        if !cpu.setRegs(&k) { lastError = "KVM_SET_REGS failed"; return false }
        return true
    }

    /// Copies the general registers of a stop into `regs` (rip, rflags and
    /// rsp are set by the caller from where the stop put them).
    /// A stop at SYSCALL: rcx and r11 hold the return rip and rflags it
    /// saved, rax the number; the Sentry's answer replaces ENOSYS.
    private func syscallStop(_ k: kvm_regs) -> StopReason {
        regs.rip = k.rcx
        regs.eflags = k.r11
        regs.orig_rax = k.rax
        regs.rax = UInt64(bitPattern: -Int64(ENOSYS))
        return .syscall
    }

    private func takeGPRs(_ k: kvm_regs) {
        regs.rax = k.rax; regs.rbx = k.rbx; regs.rcx = k.rcx; regs.rdx = k.rdx
        regs.rsi = k.rsi; regs.rdi = k.rdi; regs.rbp = k.rbp
        regs.r8 = k.r8; regs.r9 = k.r9; regs.r10 = k.r10; regs.r11 = k.r11
        regs.r12 = k.r12; regs.r13 = k.r13; regs.r14 = k.r14; regs.r15 = k.r15
        regs.cs = UInt64(KernelLayout.userCS)
        regs.ss = UInt64(KernelLayout.userSS)
    }

    /// KVM_RUN until something the Sentry must see; nil when the platform
    /// resolved a page fault and the thread should simply be entered again.
    private func loopUntilStop(_ asp: KVMAddressSpace) -> StopReason? {
        let codeVA = KernelLayout.va(KernelPage.code)
        while true {
            let r = moat_kvm_run(vcpu)
            if r == -EINTR {
                // The kick handler may have set immediate_exit; the next
                // KVM_RUN must enter again (a later kick sets it anew).
                moat_kvm_set_immediate_exit(runArea, 0)
                // A host signal (a kick from the Sentry). Where is the vCPU?
                var s = kvm_sregs()
                var k = kvm_regs()
                guard moat_kvm_get_sregs(vcpu, &s) >= 0, moat_kvm_get_regs(vcpu, &k) >= 0 else {
                    lastError = "KVM_GET_REGS failed"
                    return .gone
                }
                if s.cs.dpl == 3 {
                    takeGPRs(k)
                    inKernel = false
                    if k.rip == Self.syscallEntry {
                        // kvm_pvm delivers SYSCALL as a user-mode jump to
                        // LSTAR (see `exception`); a kick can land between
                        // that jump and the fault that reports it. It is
                        // the syscall: rcx and r11 hold what SYSCALL saved.
                        regs.rsp = k.rsp
                        return syscallStop(k)
                    }
                    regs.rip = k.rip; regs.rsp = k.rsp; regs.eflags = k.rflags
                    regs.orig_rax = .max
                    return .interrupted
                }
                let off = k.rip &- codeVA
                if off >= KernelLayout.resume && off < 0x1000 {
                    // Still on the way out to user (or not entered at all:
                    // immediate_exit): `regs` is unchanged and the next run
                    // starts the trampoline afresh. The CR3 reload `enter`
                    // recorded may not have run: take the CR3 the vCPU
                    // really holds and make the next entry flush, or it
                    // would return to user with the previous address
                    // space's (or unmapped pages') translations.
                    loadedCR3 = s.cr3
                    flushedGeneration = .max
                    return .interrupted
                }
                continue  // between a trap and its `out`: let it exit
            }
            if (r == -EAGAIN || r == -ENOMEM) && transientRunFailures < 1000 {
                // Host memory pressure (KVM could not allocate shadow pages
                // or pin a guest page) or a busy vCPU: nothing ran, and
                // the same entry works once the host recovers. Linux would
                // make the task wait, not kill it. About a second at most.
                transientRunFailures += 1
                var ts = timespec(tv_sec: 0, tv_nsec: 1_000_000)
                nanosleep(&ts, nil)
                continue
            }
            transientRunFailures = 0
            exits &+= 1
            if r < 0 {
                lastError = "KVM_RUN: \(String(cString: strerror(-r)))"
                return .gone
            }
            let reason = moat_kvm_exit_reason(runArea)
            if reason == UInt32(KVM_EXIT_MMIO) && moat_kvm_exit_mmio_addr(runArea) & ~0xfff == machine.doorbellGPA {
                return doorbell()
            }
            guard reason == UInt32(KVM_EXIT_IO), moat_kvm_exit_io_direction(runArea) == UInt8(KVM_EXIT_IO_OUT) else {
                lastError = describeExit(reason)
                return .gone
            }
            var k = kvm_regs()
            guard cpu.getRegs(&k) else { lastError = "KVM_GET_REGS failed"; return .gone }
            switch moat_kvm_exit_io_port(runArea) {
            case KernelLayout.exceptionPort:
                return exception(k, asp)
            default:
                lastError = "exit through unexpected port \(moat_kvm_exit_io_port(runArea))"
                return .gone
            }
        }
    }

    /// An exit at the doorbell: the syscall page's store (the syscall, in
    /// ring 0 on hardware KVM or in user mode on kvm_pvm), or application
    /// code touching the doorbell page itself, which gets SIGSEGV as for any
    /// kernel address. The vCPU stays where the exit left it.
    private func doorbell() -> StopReason {
        var k = kvm_regs()
        var s = kvm_sregs()
        guard cpu.getRegs(&k), cpu.getSregs(&s) else { lastError = "KVM_GET_REGS failed"; return .gone }
        inKernel = s.cs.dpl == 0
        if k.rip == KernelLayout.syscallDoorbellRip {
            takeGPRs(k)
            regs.rsp = k.rsp
            return syscallStop(k)
        }
        // Not the syscall page: finish the access KVM emulated (a load waits
        // for its data) without running the guest, so the registers are
        // final, then report it. The fault names the doorbell; rip is past
        // the access (the emulator has retired it).
        moat_kvm_set_immediate_exit(runArea, 1)
        _ = moat_kvm_run(vcpu)
        moat_kvm_set_immediate_exit(runArea, 0)
        guard moat_kvm_get_regs(vcpu, &k) >= 0 else { lastError = "KVM_GET_REGS failed"; return .gone }
        takeGPRs(k)
        regs.rip = k.rip
        regs.rsp = k.rsp
        regs.eflags = k.rflags
        regs.orig_rax = .max
        lastFault = "doorbell access at rip 0x\(String(k.rip, radix: 16))"
        return .fault(signo: SIGSEGV, code: 2, addr: KernelLayout.doorbell)
    }

    /// An exception exit: the frame is vector, error code, rip, cs, rflags,
    /// rsp, ss at the ring-0 rsp.
    private func exception(_ k: kvm_regs, _ asp: KVMAddressSpace) -> StopReason? {
        let stackLowVA = KernelLayout.va(KernelPage.stackLow)
        guard k.rsp >= stackLowVA, k.rsp + 56 <= KernelLayout.stackTop else {
            lastError = "exception frame outside the ring-0 stack"
            return .gone
        }
        let gpa = KernelPage.stackLow * 4096 + (k.rsp - stackLowVA)
        let f = (0..<7).map { machine.memory.load64(gpa + UInt64($0) * 8) }
        let (vector, err, rip, cs, rflags, rsp) = (f[0], f[1], f[2], f[3], f[4], f[5])
        if cs & 3 != 3 {
            lastError = "exception \(vector) in guest ring 0 at \(String(rip, radix: 16)) error \(err)"
            return .gone
        }
        takeGPRs(k)
        regs.rip = rip
        regs.eflags = rflags
        regs.rsp = rsp
        regs.orig_rax = .max
        var cr2: UInt64 = 0
        if vector == 14 {
            var s = kvm_sregs()
            guard cpu.getSregs(&s) else { lastError = "KVM_GET_SREGS failed"; return .gone }
            cr2 = s.cr2
            if rip == Self.syscallEntry && cr2 == rip && err & 0x14 == 0x14 {
                // The PVM flavour of KVM (kvm_pvm, on the machines Moat is
                // tested on) runs the guest at hardware CPL 3 and delivers a
                // user SYSCALL as a jump to LSTAR that stays in user mode:
                // the fetch of our supervisor-only entry page then faults,
                // with rcx = return rip and r11 = rflags as SYSCALL left them.
                // A user-mode instruction fetch fault at exactly LSTAR is
                // therefore the syscall. (A program that jumps there itself
                // only gets the syscall it could have made anyway.)
                return syscallStop(k)
            }
            if asp.resolveFault(cr2, errorCode: err) { return nil }
        }
        lastFault = "vector \(vector) error \(err) rip 0x\(String(rip, radix: 16)) cr2 0x\(String(cr2, radix: 16))"
        if vector == 14 && asp.beyondEnd(cr2) {
            return .fault(signo: SIGBUS, code: 2, addr: cr2)   // BUS_ADRERR: a file page past its end
        }
        let (signo, code, addr) = Self.signal(vector: vector, error: err, rip: rip, cr2: cr2,
                                              mapped: vector == 14 && asp.region(containing: cr2) != nil)
        return .fault(signo: signo, code: code, addr: addr)
    }

    /// The signal Linux sends for an exception from user mode.
    static func signal(vector: UInt64, error: UInt64, rip: UInt64, cr2: UInt64, mapped: Bool) -> (Int32, Int32, UInt64) {
        let kernel: Int32 = 0x80  // SI_KERNEL
        switch vector {
        case 0: return (SIGFPE, 1, rip)              // #DE: FPE_INTDIV
        case 1: return (SIGTRAP, 4, rip)             // #DB: TRAP_HWBKPT-ish single step
        case 3: return (SIGTRAP, kernel, 0)          // #BP (int3)
        case 6: return (SIGILL, 2, rip)              // #UD: ILL_ILLOPN
        case 12: return (SIGBUS, kernel, 0)          // #SS
        case 14:                                     // #PF: MAPERR or ACCERR
            return (SIGSEGV, (error & 1 != 0 || mapped) ? 2 : 1, cr2)
        case 16, 19: return (SIGFPE, 0, rip)         // x87 / SIMD floating point
        case 17: return (SIGBUS, 1, cr2)             // #AC: BUS_ADRALN
        default: return (SIGSEGV, kernel, 0)         // #GP and the rest
        }
    }

    private func describeExit(_ reason: UInt32) -> String {
        switch Int32(reason) {
        case KVM_EXIT_HLT: return "guest halted"
        case KVM_EXIT_SHUTDOWN: return "guest triple fault"
        case KVM_EXIT_FAIL_ENTRY: return "VM entry failed (hardware reason \(moat_kvm_exit_hw_reason(runArea)))"
        case KVM_EXIT_INTERNAL_ERROR: return "KVM internal error \(moat_kvm_exit_internal_suberror(runArea))"
        case KVM_EXIT_MMIO: return "guest touched memory outside guest RAM"
        default: return "unexpected VM exit \(reason)"
        }
    }

    /// The context's XSAVE area as KVM moves it: in the vCPU if this
    /// context ran last, else the copy saved when it left.
    private func loadXSave() -> [UInt8]? {
        cpu.withState(of: self) { inCPU in
            if !inCPU { return savedXSave ?? cpu.initialXSave }
            var a = [UInt8](repeating: 0, count: machine.xsaveSize)
            return cpu.getXSave(&a) ? a : nil
        }
    }
    /// Replaces it. KVM checks an area it loads now (this context holds the
    /// vCPU); a saved one is loaded, and checked, at the next switch, so
    /// callers pass only areas whose header and MXCSR they checked.
    private func storeXSave(_ a: [UInt8]) -> Bool {
        cpu.withState(of: self) { inCPU in
            if inCPU { return cpu.setXSave(a) }
            savedXSave = a
            return true
        }
    }

    /// exec: the new program starts from the initial FPU/XSAVE state, as
    /// on Linux (an AVX register the old program set reads zero). The
    /// context's own area is replaced, in the vCPU or saved.
    public func resetFPU() -> Bool { storeXSave(cpu.initialXSave) }

    /// The x87/SSE part (the FXSAVE layout of the area's first 512 bytes).
    public func getFP(_ fp: inout FPRegisters) -> Bool {
        guard let a = loadXSave() else { return false }
        withUnsafeMutableBytes(of: &fp) { d in a.withUnsafeBytes { d.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<d.count])) } }
        return true
    }
    /// Writes it, as PTRACE_SETFPREGS does on Linux: the legacy area
    /// changes (MXCSR without reserved bits, which KVM refuses), x87 and SSE
    /// count as in use (XSTATE_BV bits 0 and 1), AVX and the rest stay.
    public func setFP(_ fp: inout FPRegisters) -> Bool {
        guard var a = loadXSave() else { return false }
        fp.mxcsr &= 0xffff
        withUnsafeBytes(of: &fp) { a.replaceSubrange(0..<464, with: $0[..<464]) }
        a[512] |= 3
        return storeXSave(a)
    }
    /// The standard-format area for the guest's XCR0 (CPUID 0xD.0 EBX
    /// bytes), with the XCR0 in the first software-reserved word as Linux's
    /// regset has it (KVM writes the host's feature mask there).
    public func getXState() -> Result<[UInt8], HostErrno> {
        guard var a = loadXSave() else { return .failure(HostErrno(EIO)) }
        a.removeSubrange(machine.xstateSize...)
        a.replaceSubrange(464..<512, with: repeatElement(0, count: 48))
        withUnsafeBytes(of: machine.guestXCR0.littleEndian) { a.replaceSubrange(464..<472, with: $0) }
        return .success(a)
    }
    /// The guest's XSAVE layout: set up once per machine (enableXSave).
    public func xstateLayout() -> XStateLayout? {
        XStateLayout(size: machine.xstateSize, xcr0: machine.guestXCR0)
    }
    /// Loads such an area (checked by the caller: the Sentry's ptrace
    /// regset and sigreturn); KVM's own check answers EINVAL where it runs.
    public func setXState(_ area: [UInt8]) -> Int {
        guard area.count == machine.xstateSize else { return -Int(EINVAL) }
        var a = [UInt8](repeating: 0, count: machine.xsaveSize)
        a.replaceSubrange(0..<area.count, with: area)
        a.replaceSubrange(464..<512, with: repeatElement(0, count: 48))
        return storeXSave(a) ? 0 : -Int(EINVAL)
    }
}

// The Sentry's view of a KVM thread: memory operations go to the address
// space it runs in (EFAULT without one).
extension KVMThread: PlatformContext {
    public func mapAnonymous(_ addr: UInt64, _ len: UInt64, prot: Int32, shared: Bool) -> Int {
        addressSpace?.mapAnonymous(addr, len, prot: prot, shared: shared) ?? -Int(EFAULT)
    }
    public func unmap(_ addr: UInt64, _ len: UInt64) -> Int {
        addressSpace?.unmap(addr, len) ?? -Int(EFAULT)
    }
    public func protect(_ addr: UInt64, _ len: UInt64, prot: Int32) -> Int {
        addressSpace?.protect(addr, len, prot: prot) ?? -Int(EFAULT)
    }
    public func read(_ addr: UInt64, _ buf: UnsafeMutableRawPointer, _ len: Int) -> Int {
        guard let a = addressSpace else { return -Int(EFAULT) }
        let n = a.read(addr, buf, len)
        return n == 0 && len > 0 ? -Int(EFAULT) : n
    }
    public func compareExchange32(_ addr: UInt64, expected: UInt32, new: UInt32) -> Int {
        addressSpace?.compareExchange32(addr, expected: expected, new: new) ?? -Int(EFAULT)
    }
    public func futexOp32(_ addr: UInt64, op: Int, operand: UInt32) -> Int {
        if op < 0 || op > 4 { return -Int(EINVAL) }
        return addressSpace?.fetchUpdate32(addr) { futexOpResult(op, $0, operand) } ?? -Int(EFAULT)
    }
    public func write(_ addr: UInt64, _ buf: UnsafeRawPointer, _ len: Int) -> Int {
        guard let a = addressSpace else { return -Int(EFAULT) }
        let n = a.write(addr, buf, len)
        return n == 0 && len > 0 ? -Int(EFAULT) : n
    }
}

/// The machine's hardware vCPU: its fd and kvm_run area, the ring-0 state
/// it was set up with, what it has loaded (CR3, FS/GS bases), and which
/// context holds it. Contexts take it with `acquire` (FIFO tickets) and give
/// it back with `release`.
public final class KVMVCPU {
    unowned let machine: KVMMachine
    public let fd: Int32
    let runArea: UnsafeMutableRawPointer
    private let runSize: Int
    var inKernel = true
    var kernelSregs = kvm_sregs()
    var loadedCR3: UInt64 = KernelPage.pml4 * 4096
    var flushedGeneration: UInt64 = .max
    var appliedFS: UInt64 = 0
    var appliedGS: UInt64 = 0

    /// How long a context waits for the vCPU before it kicks the holder
    /// out of the guest (a Linux-like time slice).
    static let sliceNs: Int64 = 10_000_000
    /// The XSAVE area of a context that never ran: x87 and SSE at their
    /// reset values (FCW 0x37f, MXCSR 0x1f80) and in use (XSTATE_BV 3),
    /// every other component in its init state.
    lazy var initialXSave: [UInt8] = {
        var a = [UInt8](repeating: 0, count: machine.xsaveSize)
        a[0] = 0x7f; a[1] = 0x03
        a[24] = 0x80; a[25] = 0x1f
        a[512] = 3
        return a
    }()

    /// The context whose FPU state is in the vCPU.
    private weak var fpOwner: KVMThread?

    init(machine: KVMMachine, vcpu: Int32) throws {
        self.machine = machine
        self.fd = vcpu
        guard let p = mmap(nil, machine.runSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0), p != MAP_FAILED else {
            let e = errno
            close(vcpu)
            throw KVMError.host("mmap kvm_run", e)
        }
        runArea = p
        runSize = machine.runSize
        syncRegs = machine.syncRegs
        // KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS: stored at every exit.
        if syncRegs { moat_kvm_sync_enable(p, 3) }
        do {
            var supported: UInt64 = 0
            _ = try check(moat_kvm_set_supported_cpuid(machine.kvm, vcpu, &supported), "KVM_SET_CPUID2")
            try setupRing0()
            try enableXSave(supported: supported)
        } catch {
            munmap(runArea, machine.runSize)
            close(vcpu)
            throw error
        }
    }

    deinit {
        munmap(runArea, runSize)
        close(fd)
    }

    /// Registers through the kvm_run area where KVM syncs them (no ioctl),
    /// else through the ioctls. A set takes effect at the next KVM_RUN.
    private let syncRegs: Bool
    func getRegs(_ k: inout kvm_regs) -> Bool {
        if syncRegs { moat_kvm_sync_get_regs(runArea, &k); return true }
        return moat_kvm_get_regs(fd, &k) >= 0
    }
    func setRegs(_ k: inout kvm_regs) -> Bool {
        if syncRegs { moat_kvm_sync_set_regs(runArea, &k); return true }
        return moat_kvm_set_regs(fd, &k) >= 0
    }
    /// The segment registers at the last exit.
    func getSregs(_ s: inout kvm_sregs) -> Bool {
        if syncRegs { moat_kvm_sync_get_sregs(runArea, &s); return true }
        return moat_kvm_get_sregs(fd, &s) >= 0
    }

    private func setupRing0() throws {
        let vcpu = fd
        var s = kvm_sregs()
        _ = try check(moat_kvm_get_sregs(vcpu, &s), "KVM_GET_SREGS")
        func seg(_ sel: UInt16, type: UInt8, dpl: UInt8, code: Bool) -> kvm_segment {
            var g = kvm_segment()
            g.base = 0
            g.limit = 0xffff_ffff
            g.selector = sel
            g.type = type
            g.present = 1
            g.dpl = dpl
            g.db = code ? 0 : 1
            g.s = 1
            g.l = code ? 1 : 0
            g.g = 1
            return g
        }
        s.cs = seg(KernelLayout.kernelCS, type: 11, dpl: 0, code: true)
        s.ss = seg(KernelLayout.kernelSS, type: 3, dpl: 0, code: false)
        // Data segments hold the user selector from the start, so iretq to
        // ring 3 never nulls them (which could clear the FS base).
        let ud = seg(KernelLayout.userSS, type: 3, dpl: 3, code: false)
        s.ds = ud; s.es = ud; s.fs = ud; s.gs = ud
        var tr = kvm_segment()
        tr.base = KernelLayout.va(KernelPage.gdt, KernelLayout.tssOffset)
        tr.limit = 103
        tr.selector = KernelLayout.tss
        tr.type = 11
        tr.present = 1
        s.tr = tr
        s.ldt = kvm_segment()
        s.ldt.unusable = 1
        s.gdt.base = KernelLayout.va(KernelPage.gdt)
        s.gdt.limit = 0x47
        s.idt.base = KernelLayout.va(KernelPage.idt)
        s.idt.limit = 32 * 16 - 1
        // PE, MP, ET, NE, WP, PG.
        s.cr0 = 0x8001_0033
        // PAE, PGE, OSFXSR, OSXMMEXCPT (SSE for user code), OSXSAVE (XSAVE
        // and XGETBV for user code; KVM then sets CPUID.1:ECX.OSXSAVE).
        s.cr4 = 0x6a0 | 0x4_0000
        s.cr3 = loadedCR3
        // SCE, LME, LMA, NXE.
        s.efer = 0xd01
        _ = try check(moat_kvm_set_sregs(vcpu, &s), "KVM_SET_SREGS")
        _ = try check(moat_kvm_get_sregs(vcpu, &kernelSregs), "KVM_GET_SREGS")

        let star = UInt64(KernelLayout.kernelCS) << 32 | UInt64(KernelLayout.userCS - 16) << 48
        let entry = KernelLayout.syscallEntry
        // FMASK clears TF, IF, DF, IOPL, NT, AC on entry.
        let idx: [UInt32] = [KVMThread.msrSTAR, KVMThread.msrLSTAR, KVMThread.msrCSTAR, KVMThread.msrFMASK,
                             KVMThread.msrFSBase, KVMThread.msrGSBase, KVMThread.msrKernelGSBase]
        let val: [UInt64] = [star, entry, entry, 0x4_7700, 0, 0, 0]
        let n = try check(moat_kvm_set_msrs(vcpu, idx, val, Int32(idx.count)), "KVM_SET_MSRS")
        if n != idx.count { throw KVMError.host("KVM_SET_MSRS", EINVAL) }
    }


    /// XCR0 as Linux sets it on this CPU, within what KVM lets a guest
    /// have (KVM_GET_SUPPORTED_CPUID leaf 0xD, passed to the vCPU as is, so
    /// leaf 1's XSAVE, leaf 7's AVX2/AVX-512 and leaf 0xD's sizes agree
    /// with it; KVM recomputes 0xD.0 EBX and CPUID.1 OSXSAVE from XCR0 and
    /// CR4): the user features the host kernel enabled (its own XCR0), x87
    /// and SSE always. AMX is in it where KVM offers AMX to guests
    /// (KVMMachine asks for the guest permission first; the area then
    /// outgrows 4 KiB and KVM_GET_XSAVE2 moves it; Linux would also make
    /// the process ask, ARCH_REQ_XCOMP_PERM, which a guest without an XFD
    /// trap cannot enforce, so AMX would simply work there). This host's
    /// KVM (kvm_pvm) offers x87|SSE|AVX|AVX-512|PKRU (0x2e7) even with the
    /// permission, and its guests run with the host's XCR0 loaded, so a
    /// guest XGETBV reads the host's 0x602e7 (AMX bits included) while
    /// CPUID leaf 0xD lists 0x2e7 and leaf 7 no AMX: applications (glibc)
    /// key AMX on leaf 7 and leave it alone, and the XSAVE area KVM moves
    /// has every component the guest can use.
    private func enableXSave(supported: UInt64) throws {
        let xcr0 = (supported & moat_host_xcr0()) | 3
        _ = try check(moat_kvm_set_xcr0(fd, xcr0), "KVM_SET_XCRS")
        machine.guestXCR0 = xcr0
        machine.xstateSize = Int(moat_xstate_size(xcr0))
    }

    func getXSave(_ a: inout [UInt8]) -> Bool {
        a.withUnsafeMutableBytes { moat_kvm_get_xsave(fd, $0.baseAddress, Int32($0.count)) } >= 0
    }
    func setXSave(_ a: [UInt8]) -> Bool {
        a.withUnsafeBytes { moat_kvm_set_xsave(fd, $0.baseAddress) } >= 0
    }

    /// Takes the machine's turn for `ctx` and loads its FPU state if
    /// another context used this vCPU last.
    func acquire(_ ctx: KVMThread) -> Bool {
        let inSlice = Int64(moat_monotonic_ns()) &- ctx.sliceStart < Self.sliceNs
        machine.turn.take(kickWhenSlow: true, ahead: inSlice)
        if !inSlice { ctx.sliceStart = Int64(moat_monotonic_ns()) }
        if switchFP(to: ctx) { return true }
        machine.turn.give()
        return false
    }

    func release() { machine.turn.give() }

    /// Runs `body` holding the turn, telling it whether `ctx`'s FPU state
    /// is the one in this vCPU (else it is `ctx.savedXSave`).
    func withState<R>(of ctx: KVMThread, _ body: (Bool) -> R) -> R {
        machine.turn.take(kickWhenSlow: false, ahead: false)
        defer { machine.turn.give() }
        return body(fpOwner === ctx)
    }

    /// Saves the previous owner's XSAVE area into it and loads `ctx`'s:
    /// two ioctls of `machine.xsaveSize` bytes, only when the vCPU changes
    /// hands (a thread that keeps it pays nothing per syscall). The buffer
    /// `ctx` gives up is reused for the next owner that leaves.
    private func switchFP(to ctx: KVMThread) -> Bool {
        if fpOwner === ctx { return true }
        if let prev = fpOwner {
            var a = spare ?? [UInt8](repeating: 0, count: machine.xsaveSize)
            spare = nil
            if !getXSave(&a) { return false }
            prev.savedXSave = a
        }
        if !setXSave(ctx.savedXSave ?? initialXSave) { return false }
        spare = ctx.savedXSave
        ctx.savedXSave = nil
        fpOwner = ctx
        return true
    }
    private var spare: [UInt8]?
}

/// Whose turn it is to run guest code (one vCPU runs at a time: the ring-0
/// pages are shared), a run queue of one CPU. The turn goes from hand to
/// hand: first to the contexts back within their slice (`ahead`, in
/// arrival order), then to the line (FIFO). Each waiter sleeps on a
/// condition of its own; a hand-over wakes the new holder and the new head,
/// which alone keeps time: when it has waited a slice it kicks the holder
/// out of the guest (preemption). A waiter that only needs the vCPU's state
/// (`kickWhenSlow: false`) kicks at once and whenever it wakes.
///
/// Why: with one FIFO and one condition broadcast to every waiter, every
/// syscall sent its thread to the back of the line behind every other
/// runnable thread, and every waiter woke at each hand-over and kicked the
/// holder each slice. 64 Python threads in semaphore ping-pong (GIL waits
/// of 5 ms timing out behind the line, 4x the futex calls of the fast
/// platform) took 25-50 s where the fast platform takes 1.7 s and native
/// 1.4 s: a CI run's 90 s hang bound fired under load.
final class KVMTurn {
    private final class Waiter {
        var cond = pthread_cond_t()
        var granted = false
    }
    private var mu = pthread_mutex_t()
    private var condAttr = pthread_condattr_t()
    private var busy = false
    /// The host thread holding the turn (0: none), the one a waiter kicks.
    private var holder: pid_t = 0
    private var ahead: [Waiter] = []
    private var line: [Waiter] = []
    private var head: Waiter? { ahead.first ?? line.first }

    init() {
        pthread_mutex_init(&mu, nil)
        pthread_condattr_init(&condAttr)
        pthread_condattr_setclock(&condAttr, CLOCK_MONOTONIC)
    }

    func take(kickWhenSlow: Bool, ahead goAhead: Bool) {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        if !busy {
            busy = true
            holder = moat_gettid()
            return
        }
        let w = Waiter()
        pthread_cond_init(&w.cond, &condAttr)
        defer { pthread_cond_destroy(&w.cond) }
        if goAhead { ahead.append(w) } else { line.append(w) }
        while !w.granted {
            if !kickWhenSlow && holder > 0 { _ = moat_tgkill(getpid(), holder, KVMThread.kickSignal) }
            if !kickWhenSlow || head === w {
                let d = Int64(moat_monotonic_ns()) + KVMVCPU.sliceNs
                var ts = timespec(tv_sec: Int(d / 1_000_000_000), tv_nsec: Int(d % 1_000_000_000))
                if pthread_cond_timedwait(&w.cond, &mu, &ts) == ETIMEDOUT && !w.granted
                    && head === w && holder > 0 {
                    _ = moat_tgkill(getpid(), holder, KVMThread.kickSignal)
                }
            } else {
                // Behind the head: woken when the turn or the head reaches it.
                pthread_cond_wait(&w.cond, &mu)
            }
        }
        holder = moat_gettid()
    }

    func give() {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        holder = 0
        let next: Waiter
        if !ahead.isEmpty { next = ahead.removeFirst() }
        else if !line.isEmpty { next = line.removeFirst() }
        else { busy = false; return }
        next.granted = true
        pthread_cond_signal(&next.cond)
        if let h = head { pthread_cond_signal(&h.cond) }
    }
}
