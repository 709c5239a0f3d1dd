// The ptrace platform.
//
// Memory design: application memory is ordinary anonymous (and, later,
// file-backed) host memory inside the stub process; the Sentry decides every
// mapping and makes it happen by injecting mmap/munmap/mprotect into the stub
// (a `syscall; int3` sequence on the stub page). We chose this over gVisor's
// Sentry-owned memfd because:
//   - fork is a host clone of the stub: the host kernel does copy-on-write,
//     page by page, with no Sentry bookkeeping and no eager copies;
//   - threads (CLONE_VM) and vfork share memory exactly as Linux does;
//   - resident memory is accounted to the sandbox's own host processes, so
//     cgroup limits on the sandbox see the application's memory;
//   - file-backed MAP_SHARED can later map the Gofer-donated host fd into the
//     stub, sharing the host page cache.
// The price: the Sentry reads and writes application memory with
// process_vm_readv/writev (one host call per access instead of a memcpy from
// its own mapping), and each mapping change costs an injected call (two
// ptrace stops). Both are small next to the trap itself.
//
// Threads: a ptraced thread has exactly one tracer *thread*. Each application
// thread is driven by one dedicated Sentry pthread that seizes its stub
// thread and is the only caller of ptrace on it. New stub threads and
// processes are created by injecting clone into an existing stub; the child
// waits in pause() on the stub page, untraced, until its driver seizes it.

import CMoat
import Glibc
import Synchronization

// ptrace constants not exported by Glibc's Swift overlay.
let PTRACE_SYSEMU_: Int = 31
let PTRACE_CONT_: Int = 7
let PTRACE_SEIZE_: Int = 0x4206
let PTRACE_INTERRUPT_: Int = 0x4207
let PTRACE_O_TRACESYSGOOD_: UInt = 1
let PTRACE_O_EXITKILL_: UInt = 1 << 20
let PTRACE_O_TRACESECCOMP_: UInt = 0x80
let PTRACE_EVENT_STOP_: Int32 = 128
let PTRACE_EVENT_SECCOMP_: Int32 = 7
let WALL_: Int32 = 0x40000000
let WNOHANG_: Int32 = 1
let SYS_SECCOMP_: Int32 = 1
let ERESTARTSYS_: Int64 = 512

/// Driver-side handle of one stub thread. Not thread safe: only its driver
/// thread may use it (ptrace requires the tracer thread).
public final class PtraceThread {
    /// Host thread id of the stub thread.
    public private(set) var tid: pid_t
    /// The registers of the application thread. Valid after a stop; written
    /// back before the next resume if `dirty`.
    public var regs = Registers()
    @usableFromInline var dirty = false
    private var savedSig: siginfo_t = siginfo_t()

    // The fast path (CMoat/fastpath.c): a seccomp listener for this thread
    // alone, or -1 (the thread then always runs under PTRACE_SYSEMU).
    public private(set) var listener: Int32 = -1
    /// Written by the SIGCHLD handler when this thread stops (fastpath.c).
    private var wakeFD: Int32 = -1
    /// Host pid of the stub process (for tgkill).
    private var tgid: pid_t = 0
    /// Resume under PTRACE_CONT (fast path) rather than PTRACE_SYSEMU. The
    /// kernel sets it per resume; it only matters when `listener` >= 0.
    public var wantFast = true
    /// The thread sleeps in the host kernel on a notification the driver
    /// holds: `regs` has only the number, the arguments and rip; the other
    /// registers are stale until `materialize()`.
    public private(set) var inNotif = false
    private var notifID: UInt64 = 0
    /// Another thread answered the notification the thread was held in
    /// (`answerElsewhere`): it runs application code again, and the next
    /// `run()` only waits for its next call or stop.
    private var answered = false
    /// `sleepHeld` took a stop's SIGCHLD wake-up: the next wait looks with
    /// waitpid before it sleeps.
    private var stopReported = false
    /// The thread stopped at a traced or trapped syscall (PTRACE_EVENT_SECCOMP
    /// or SIGSYS): before it resumes, orig_rax must be -1 so the host never
    /// runs the call (and no restart logic applies).
    private var skipOnResume = false

    /// Seizes `tid`, which must be a stub thread waiting on the stub page.
    public init(seize tid: pid_t) throws {
        self.tid = tid
        try attach()
    }

    private func attach() throws {
        let opts = PTRACE_O_TRACESYSGOOD_ | PTRACE_O_EXITKILL_ | PTRACE_O_TRACESECCOMP_
        if moat_ptrace(PTRACE_SEIZE_, tid, 0, opts) != 0 { throw HostErrno.current }
        if moat_ptrace(PTRACE_INTERRUPT_, tid, 0, 0) != 0 { throw HostErrno.current }
        var status: Int32 = 0
        while true {
            let r = waitpid(tid, &status, WALL_)
            if r < 0 { if errno == EINTR { continue }; throw HostErrno.current }
            if moat_wifstopped(status) != 0 {
                if status >> 16 == PTRACE_EVENT_STOP_ { break }
                // Some other stop first (a pending host signal): swallow it.
                _ = moat_ptrace(PTRACE_CONT_, tid, 0, 0)
                continue
            }
            throw HostErrno(ESRCH)
        }
        if moat_getregs(tid, &regs) != 0 { throw HostErrno.current }
    }

    /// Replaces the traced stub thread (execve moves a task to a new address space).
    public func reseize(_ newTid: pid_t) throws {
        dropFastPath()
        tid = newTid
        dirty = false
        inNotif = false
        answered = false
        stopReported = false
        skipOnResume = false
        try attach()
    }

    deinit { dropFastPath() }

    private func dropFastPath() {
        if listener >= 0 { close(listener); listener = -1 }
        if wakeFD >= 0 { moat_fast_unregister(tid); close(wakeFD); wakeFD = -1 }
    }

    /// Gives this stub thread its own seccomp filter layer and takes its
    /// listener (CMoat/fastpath.c). The thread must be stopped; `tgid` is its
    /// stub process. Returns false (and the thread stays on PTRACE_SYSEMU)
    /// if the host refuses, e.g. when the filter chain is too long.
    public func enableFastPath(tgid: pid_t) -> Bool {
        dropFastPath()
        self.tgid = tgid
        let SECCOMP_SET_MODE_FILTER: UInt64 = 1, SECCOMP_FILTER_FLAG_NEW_LISTENER: UInt64 = 8
        let remote = inject(317 /* seccomp */, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                            moat_fast_filter_addr())
        if remote < 0 { return false }
        let local = moat_pidfd_getfd(tgid, Int32(remote))
        _ = inject(3 /* close */, UInt64(remote))
        if local < 0 { return false }
        _ = moat_notif_sync(local)
        let efd = eventfd(0, 0o2000000 /* EFD_CLOEXEC */ | 0o4000 /* EFD_NONBLOCK */)
        if efd < 0 { close(local); return false }
        listener = local
        wakeFD = efd
        moat_fast_register(tid, efd)
        return true
    }

    /// Turns a thread held in a notification into an ordinary ptrace stop
    /// with full registers: a host signal (SIGURG) interrupts its wait, the
    /// thread stops to deliver it, and the registers are read. A result the
    /// kernel already set (`dirty`) is kept in rax. Returns false if the
    /// thread is gone.
    @discardableResult
    public func materialize() -> Bool {
        assert(!answered, "materialize of a thread running on after answerElsewhere: its driver must run() it first")
        guard inNotif else { return true }
        _ = moat_tgkill(tgid, tid, SIGURG)
        return finishNotif()
    }

    /// The thread left its notification wait (interrupted by a host signal):
    /// waits for its stop and completes the call there, as `materialize`.
    private func finishNotif() -> Bool {
        inNotif = false
        let result = regs.rax, hadResult = dirty
        if waitStop() == nil { return false }
        if moat_getregs(tid, &regs) != 0 { return false }
        if hadResult { regs.rax = result }
        regs.orig_rax = UInt64.max
        dirty = true
        return true
    }

    @inline(__always) public func markDirty() { dirty = true }

    /// Answers the notification the thread is held in with `value`, from a
    /// thread other than its driver: the stub runs on at once, woken by the
    /// caller's host call alone (CMoat/fastpath.c, moat_fast_sleep, says
    /// how its driver learns of it). The caller must exclude the driver,
    /// which must be asleep in `sleepHeld` (the Sentry: Kernel.mu held, the
    /// task asleep in Task.block). Returns false, having changed nothing,
    /// when the thread is not held in a notification or the host no longer
    /// holds it there (a host signal interrupted it: its driver then
    /// completes the call at the stop, as `run()` does).
    public func answerElsewhere(_ value: Int64) -> Bool {
        guard inNotif, !answered, listener >= 0 else { return false }
        if moat_notif_send(listener, notifID, value) != 0 { return false }
        inNotif = false
        answered = true
        regs.rax = UInt64(bitPattern: value)
        return true
    }

    /// Whether the call the thread was held in was answered by another
    /// thread and the stub runs application code again.
    public var answeredElsewhere: Bool { answered }

    /// The driver's sleep while its thread is held in a notification that
    /// another thread may answer: until the stub needs its driver again
    /// (its next call or a stop), `wakeFD` is written, or the
    /// CLOCK_MONOTONIC `deadline` (ns, nil: none) passes.
    /// A stop's SIGCHLD may be merged into another thread's and never
    /// reach this driver, so the sleep also looks for one every 20 ms
    /// (fastpath.c): the answered stub's next stop (a trapped call, a
    /// kick) always ends it, as its next call does.
    public func sleepHeld(wakeFD taskFD: Int32, deadline: Int64?) {
        let r = moat_fast_sleep(listener, wakeFD, taskFD, tid, deadline ?? -1)
        if r & 2 != 0 { stopReported = true }
    }

    /// After `sleepHeld`, with the caller excluding every `answerElsewhere`
    /// (the Sentry: Kernel.mu held): if a stop ended the sleep while the
    /// thread was not answered, a host signal took the stub out of its
    /// notification (it can stop nowhere else), and the call completes at
    /// that stop now, as `materialize` does. The thread is then no longer
    /// `inNotif`, so its next sleep is an ordinary one (nothing can answer
    /// it), instead of one the pending stop ended every 20 ms.
    public func settleHeld() {
        guard stopReported, inNotif, !answered else { return }
        stopReported = false
        if moat_stop_pending(tid) != 0 { _ = finishNotif() }
    }

    /// Resumes application code until the next syscall, fault or host signal.
    public func run() -> StopReason {
        if answered {
            // Resumed by the answer; what the kernel wrote meanwhile was
            // the same result, already given.
            answered = false
            dirty = false
            return waitFast()
        }
        if inNotif {
            if dirty {
                // The common case: answer the notification with the result.
                dirty = false
                inNotif = false
                if moat_notif_send(listener, notifID, Int64(bitPattern: regs.rax)) == 0 { return waitFast() }
                // The thread was interrupted meanwhile (ENOENT): it is on its
                // way to a signal-delivery stop; complete the call there.
                // The signal was a kick (or noise): report it, as a signal
                // that stops running code is, so that the kernel looks at
                // what the kick was for before the thread runs on (a driver
                // serving calls without the kernel lock, LockFree in the
                // Sentry's Dispatch.swift, would otherwise lose it).
                dirty = true
                inNotif = true
                if !finishNotif() { return .gone }
                return .interrupted
            } else if !materialize() {
                return .gone
            }
        }
        if skipOnResume {
            regs.orig_rax = UInt64.max
            dirty = true
            skipOnResume = false
        }
        if dirty {
            if moat_setregs(tid, &regs) != 0 { return .gone }
            dirty = false
        }
        if listener >= 0 && wantFast {
            if moat_ptrace(PTRACE_CONT_, tid, 0, 0) != 0 { return .gone }
            return waitFast()
        }
        if moat_ptrace(PTRACE_SYSEMU_, tid, 0, 0) != 0 { return .gone }
        guard let status = waitStop() else { return .gone }
        return classify(status)
    }

    /// Waits for the thread's next ptrace stop; nil if it is gone instead.
    private func waitStop() -> Int32? {
        var status: Int32 = 0
        var r: pid_t
        repeat { r = waitpid(tid, &status, WALL_) } while r < 0 && errno == EINTR
        return r < 0 || moat_wifstopped(status) == 0 ? nil : status
    }

    /// Waits, after a PTRACE_CONT or a notification reply, for the thread's
    /// next notification or ptrace stop. A stop wakes the wait through
    /// SIGCHLD; the timeout is a safety net for a SIGCHLD taken by another
    /// driver thread (it costs that many milliseconds, never correctness).
    private func waitFast() -> StopReason {
        var stopFirst = stopReported
        stopReported = false
        while true {
            let w = stopFirst ? 0 : moat_fast_wait(listener, wakeFD, 20)
            stopFirst = false
            if w == 1 {
                var n = moat_notif()
                if moat_notif_recv(listener, &n) == 0 {
                    if n.pid != tid {
                        // Cannot happen: the layer is this thread's own.
                        _ = moat_notif_send(listener, n.id, -Int64(ENOSYS))
                        continue
                    }
                    regs.orig_rax = UInt64(bitPattern: Int64(n.nr))
                    regs.rdi = n.args.0; regs.rsi = n.args.1; regs.rdx = n.args.2
                    regs.r10 = n.args.3; regs.r8 = n.args.4; regs.r9 = n.args.5
                    regs.rip = n.ip
                    regs.rax = UInt64(bitPattern: -Int64(ENOSYS))
                    notifID = n.id
                    inNotif = true
                    dirty = false
                    return .syscall
                }
            }
            var status: Int32 = 0
            let r = waitpid(tid, &status, WALL_ | WNOHANG_)
            if r == 0 { continue }
            if r < 0 { if errno == EINTR { continue }; return .gone }
            if moat_wifstopped(status) == 0 { return .gone }
            return classify(status)
        }
    }

    /// Decodes a ptrace stop.
    private func classify(_ status: Int32) -> StopReason {
        let stopsig = moat_wstopsig(status)
        if moat_getregs(tid, &regs) != 0 { return .gone }
        if stopsig == (SIGTRAP | 0x80) { return .syscall }
        let event = status >> 16
        if event == PTRACE_EVENT_SECCOMP_ {
            // A call from the stub page that is not an injection: the
            // application jumped there. Emulate it; the host must not run it.
            skipOnResume = true
            return .syscall
        }
        if event != 0 {
            // PTRACE_EVENT_STOP (group stop / interrupt): not ours to report.
            return .interrupted
        }
        switch stopsig {
        case SIGSYS:
            if moat_getsiginfo(tid, &savedSig) != 0 { return .gone }
            if moat_siginfo_code(&savedSig) == SYS_SECCOMP_ {
                let at = moat_siginfo_addr(&savedSig)
                if at & ~0xfff == vsyscallPage {
                    // The host's vsyscall emulation ran the filters (the
                    // base filter traps it) and then emulated the `ret`.
                    // Undo that: the call stands at its entry point as a
                    // fault, which the Sentry emulates as Linux would.
                    regs.rip = at
                    regs.rsp &-= 8
                    regs.orig_rax = UInt64.max
                    dirty = true
                    return .fault(signo: SIGSEGV, code: 0x80 /* SI_KERNEL */, addr: at)
                }
                // A call outside the fast set, trapped by the filter (not run).
                skipOnResume = true
                return .syscall
            }
            return .interrupted
        case SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP:
            if moat_getsiginfo(tid, &savedSig) != 0 { return .gone }
            let code = moat_siginfo_code(&savedSig)
            if stopsig == SIGILL && code == 0x80 /* SI_KERNEL */ && regs.rax == UInt64.max
                && (regs.orig_rax == 335 || regs.orig_rax == 336) {
                // uretprobe/uprobe: the host kernel runs them ahead of
                // seccomp (Linux >= 6.14 exempts them from every filter),
                // so under PTRACE_CONT they slip past the fast-path filter.
                // Outside a host uprobe trampoline they do nothing but
                // return -1 with a forced SIGILL. Drop that SIGILL and let
                // the Sentry emulate the call as under PTRACE_SYSEMU, so
                // the answer does not depend on the resume mode.
                skipOnResume = true
                return .syscall
            }
            if code > 0 || stopsig == SIGTRAP {
                // Raised by the CPU (si_code > 0 means kernel-generated).
                return .fault(signo: stopsig, code: code, addr: moat_siginfo_addr(&savedSig))
            }
            return .interrupted
        default:
            // Any other host signal is a kick from the Sentry, or noise
            // (SIGWINCH to the process group...). Suppress it. If it cut a
            // notification wait short, the call never reached the Sentry:
            // rewind so that it runs again once the thread resumes (after a
            // signal handler, if one is delivered now).
            if listener >= 0 && regs.orig_rax != UInt64.max
                && Int64(bitPattern: regs.rax) == -ERESTARTSYS_ {
                regs.rax = regs.orig_rax
                regs.rip &-= 2
                regs.orig_rax = UInt64.max
                dirty = true
            }
            return .interrupted
        }
    }

    /// Runs one host syscall in the stub on the application's behalf. The
    /// caller has validated it. Application registers are preserved.
    public func inject(_ nr: Int, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0,
                       _ a3: UInt64 = 0, _ a4: UInt64 = 0, _ a5: UInt64 = 0,
                       at entry: UInt64 = moat_stub_syscall_addr()) -> Int {
        onStub { r in
            r.rax = UInt64(nr)
            r.rdi = a0; r.rsi = a1; r.rdx = a2; r.r10 = a3; r.r8 = a4; r.r9 = a5
            r.rip = entry
        } result: { out in Int(Int64(bitPattern: out.rax)) }
    }

    /// An atomic compare-and-swap of the 32-bit word at `addr`, run by this
    /// thread itself (`lock cmpxchg` on the stub page). The Sentry cannot get
    /// atomicity any other way: its process_vm_readv/writev are a separate
    /// read and write, and an application thread running at that moment
    /// (a PI mutex unlocking in user space) would have its change
    /// overwritten. Returns the word's old value (the swap happened when it
    /// equals `expected`), or -EFAULT when the word is not writable
    /// application memory, or -ESRCH.
    public func compareExchange32(_ addr: UInt64, expected: UInt32, new: UInt32) -> Int {
        if addr & 3 != 0 || addr >= MOAT_APP_TOP { return -Int(EFAULT) }
        return onStub { r in
            r.rax = UInt64(expected); r.rdi = addr; r.rsi = UInt64(new)
            r.rip = moat_stub_cas_addr()
        } result: { out in Int(UInt32(truncatingIfNeeded: out.rax)) }
    }

    public func futexOp32(_ addr: UInt64, op: Int, operand: UInt32) -> Int {
        if addr & 3 != 0 || addr >= MOAT_APP_TOP { return -Int(EFAULT) }
        if op < 0 || op > 4 { return -Int(EINVAL) }
        return onStub { r in
            r.rdi = addr; r.rsi = UInt64(op); r.rdx = UInt64(operand)
            r.rip = moat_stub_futex_op_addr()
        } result: { out in Int(UInt32(truncatingIfNeeded: out.rax)) }
    }

    /// Runs a sequence on the stub page that ends in int3, with registers set
    /// by `setup`, and reads its result off the registers at the trap. The
    /// application's registers are restored afterwards. A fault in the
    /// sequence (a bad address) ends it with -EFAULT; host signals that
    /// arrive meanwhile (kicks) are dropped.
    private func onStub(_ setup: (inout Registers) -> Void, result: (Registers) -> Int) -> Int {
        if !materialize() { return -Int(ESRCH) }
        // A trapped call stays skipped across the injection (saved below).
        if skipOnResume { regs.orig_rax = UInt64.max; skipOnResume = false }
        let saved = regs
        var r = regs
        r.orig_rax = UInt64.max
        setup(&r)
        if moat_setregs(tid, &r) != 0 { return -Int(ESRCH) }
        var out = -Int(ESRCH)
        while true {
            if moat_ptrace(PTRACE_CONT_, tid, 0, 0) != 0 { return -Int(ESRCH) }
            guard let status = waitStop() else { return -Int(ESRCH) }
            let sig = moat_wstopsig(status)
            if sig == SIGTRAP && status >> 16 == 0 {
                var end = Registers()
                if moat_getregs(tid, &end) != 0 { return -Int(ESRCH) }
                out = result(end)
                break
            }
            if (sig == SIGSEGV || sig == SIGBUS) && status >> 16 == 0 {
                var info = siginfo_t()
                if moat_getsiginfo(tid, &info) != 0 { return -Int(ESRCH) }
                if moat_siginfo_code(&info) > 0 { out = -Int(EFAULT); break }
            }
            // A host signal arrived meanwhile (a kick): drop it and go on.
        }
        // The application's registers go back when the thread next runs
        // (run() writes them while dirty): one PTRACE_SETREGS for a series
        // of injections (an exec's mappings, a fork's clone and its
        // bookkeeping) instead of one after each, which the next
        // injection's own SETREGS overwrote unseen.
        regs = saved
        dirty = true
        return out
    }

    /// Clones this stub thread in the host. The child starts in the pause
    /// loop on the stub page; seize it with `PtraceThread(seize:)`.
    public func cloneStub(flags: UInt64) -> Int {
        inject(56 /* clone */, flags, 0, 0, 0, 0, 0, at: moat_stub_clone_addr())
    }
    /// The same, but the child parks in the spare's own loop (CMoat/stub.c),
    /// where `detachParked(spare: true)` puts it back after each use.
    public func cloneSpare(flags: UInt64) -> Int {
        inject(56 /* clone */, flags, 0, 0, 0, 0, 0, at: moat_stub_spare_clone_addr())
    }

    public func getFP(_ fp: inout FPRegisters) -> Bool {
        if !materialize() { return false }
        return moat_getfpregs(tid, &fp) == 0
    }
    public func setFP(_ fp: inout FPRegisters) -> Bool {
        if !materialize() { return false }
        return moat_setfpregs(tid, &fp) == 0
    }
    /// The stub thread's XSAVE area from the host (the application runs on
    /// the host CPU, so it is exactly its state, AVX and beyond included).
    /// The first read offers 64 KiB, which covers every XSAVE feature the
    /// kernel exposes (AMX: ~11 KiB), and learns the regset's size; it is
    /// the kernel's one user XSAVE size, fixed from boot, so later reads
    /// (two per signal delivered) allocate just that instead of zeroing
    /// 64 KiB and trimming it, which had doubled a signal's round trip.
    public func getXState() -> Result<[UInt8], HostErrno> {
        if !materialize() { return .failure(HostErrno(ESRCH)) }
        let known = PtraceThread.xstateSize.load(ordering: .relaxed)
        var area = [UInt8](repeating: 0, count: known > 0 ? known : 64 << 10)
        let n = area.withUnsafeMutableBytes { moat_getxstate(tid, $0.baseAddress, $0.count) }
        if n < 0 { return .failure(.current) }
        if known == 0 {
            // The XCR0 first: a reader that sees the size sees it too.
            if n >= 472 { PtraceThread.xstateXCR0.store(area.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 464, as: UInt64.self) }, ordering: .relaxed) }
            PtraceThread.xstateSize.store(Int(n), ordering: .releasing)
        }
        if Int(n) < area.count { area.removeSubrange(Int(n)...) }
        return .success(area)
    }
    /// NT_X86_XSTATE's size on this host once read (0: not yet), and the
    /// XCR0 the kernel put in its first software-reserved word: both are
    /// the kernel's, fixed from boot, the same for every thread.
    private static let xstateSize = Atomic<Int>(0)
    private static let xstateXCR0 = Atomic<UInt64>(0)
    /// From the cache; the first call (no area read yet on this host) reads
    /// one. rt_sigreturn needs only this, and reading the whole area (one
    /// PTRACE_GETREGSET of several KiB) just to learn it was a third of a
    /// signal's round trip.
    public func xstateLayout() -> XStateLayout? {
        var size = PtraceThread.xstateSize.load(ordering: .acquiring)
        if size == 0 {
            guard case .success(let a) = getXState() else { return nil }
            size = a.count
        }
        if size < 576 { return nil }
        return XStateLayout(size: size, xcr0: PtraceThread.xstateXCR0.load(ordering: .relaxed))
    }
    public func setXState(_ area: [UInt8]) -> Int {
        if !materialize() { return -Int(ESRCH) }
        let r = area.withUnsafeBytes { moat_setxstate(tid, $0.baseAddress, $0.count) }
        return r == 0 ? 0 : -Int(moat_errno())
    }

    /// Reads application memory. Returns bytes read or -errno.
    @inline(__always)
    public func read(_ addr: UInt64, _ buf: UnsafeMutableRawPointer, _ len: Int) -> Int {
        let n = moat_read_mem(tid, addr, buf, len)
        return n < 0 ? -Int(moat_errno()) : n
    }
    @inline(__always)
    public func write(_ addr: UInt64, _ buf: UnsafeRawPointer, _ len: Int) -> Int {
        let n = moat_write_mem(tid, addr, buf, len)
        return n < 0 ? -Int(moat_errno()) : n
    }

    /// Waits for the (killed) stub thread to be gone and reaps it. Its fast
    /// path goes now, not when this object does: a zombie's leader outlives
    /// its thread (ThreadGroup.exitedLeader), and the host may by then have
    /// given the tid to another stub thread, whose wake-up registration a
    /// late deinit would drop.
    public func reap() { reapWithMaxRSS() }

    /// `reap`, returning the host's peak resident set of the stub process
    /// in KiB (ru_maxrss, which wait4 reports as getrusage(RUSAGE_SELF)
    /// would have inside it), or nil if it could not be reaped.
    @discardableResult
    public func reapWithMaxRSS() -> Int64? {
        defer { dropFastPath() }
        return PtraceThread.reapKilled(tid)
    }

    /// Waits for the killed stub thread `tid`, traced by the calling
    /// thread, to be gone and reaps it (after `reseize` moved this handle
    /// to another stub: execve reaps the old one once the new image is in).
    /// Returns its ru_maxrss in KiB, nil if there was nothing to reap.
    @discardableResult
    public static func reapKilled(_ tid: pid_t) -> Int64? {
        var status: Int32 = 0
        var usage = rusage()
        while true {
            let r = wait4(tid, &status, WALL_, &usage)
            if r < 0 { if errno == EINTR { continue }; return nil }
            if moat_wifexited(status) != 0 || moat_wifsignaled(status) != 0 { return Int64(usage.ru_maxrss) }
            // Still stopped: let it run into its death.
            _ = moat_ptrace(PTRACE_CONT_, tid, 0, 0)
        }
    }
}

extension PtraceThread {
    /// Leaves the stub thread parked in the stub's pause loop and stops
    /// tracing it (so that this driver thread may end without EXITKILL
    /// taking the whole stub process down). Used for a thread-group leader
    /// that exits while its other threads go on, and (`spare`) to let the
    /// spare stub thread go back to its own loop after a clone.
    public func detachParked() { detachParked(spare: false) }
    public func detachParked(spare: Bool) {
        materialize()
        var r = regs
        r.rip = spare ? moat_stub_spare_pause_addr() : moat_stub_pause_addr()
        r.orig_rax = UInt64.max
        _ = moat_setregs(tid, &r)
        _ = moat_ptrace(17 /* PTRACE_DETACH */, tid, 0, 0)
        dropFastPath()                                      // (as reap)
    }
}

// The ptrace platform's address space is the stub process: each operation is
// an injected host call in it (the Sentry's MemoryManager validated it).
extension PtraceThread: PlatformContext {
    public func mapAnonymous(_ addr: UInt64, _ len: UInt64, prot: Int32, shared: Bool) -> Int {
        let r = inject(9 /* mmap */, addr, len, UInt64(prot & 7),
                       UInt64((shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED), UInt64.max, 0)
        return r < 0 ? r : 0
    }
    public func unmap(_ addr: UInt64, _ len: UInt64) -> Int { inject(11 /* munmap */, addr, len) }
    public func protect(_ addr: UInt64, _ len: UInt64, prot: Int32) -> Int {
        inject(10 /* mprotect */, addr, len, UInt64(prot & 7))
    }
}
