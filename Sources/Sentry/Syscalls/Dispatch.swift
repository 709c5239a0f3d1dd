// The syscall table and the dispatcher.
//
// The table is data: each number maps to a handler, or is absent (ENOSYS,
// logged once by name). Handlers have one shape, (Task, Args) -> Int: decode
// the arguments, check them, hand off to the kernel, VFS or MM, and return a
// value or a negative errno. They run with Kernel.mu held, except the few
// in `LockFree` below, which the driver thread serves without it.

import CMoat
import Glibc
import Platform

struct Args {
    var a0: UInt64, a1: UInt64, a2: UInt64, a3: UInt64, a4: UInt64, a5: UInt64
    @inline(__always) func int(_ i: Int) -> Int32 { Int32(truncatingIfNeeded: raw(i)) }
    @inline(__always) func uint(_ i: Int) -> UInt32 { UInt32(truncatingIfNeeded: raw(i)) }
    @inline(__always) func long(_ i: Int) -> Int { Int(Int64(bitPattern: raw(i))) }
    @inline(__always) func raw(_ i: Int) -> UInt64 {
        switch i { case 0: return a0; case 1: return a1; case 2: return a2; case 3: return a3; case 4: return a4; default: return a5 }
    }
}

typealias Handler = (Task, Args) -> Int

final class SyscallTable {
    var handlers = [Handler?](repeating: nil, count: 512)
    subscript(_ nr: Int) -> Handler? {
        get { handlers[nr] }
        set { handlers[nr] = newValue }
    }
    static let shared: SyscallTable = {
        let t = SyscallTable()
        registerFile(t)
        registerFD(t)
        registerPoll(t)
        registerProcess(t)
        registerSignal(t)
        registerMemory(t)
        registerTime(t)
        registerIdentity(t)
        registerFutex(t)
        registerFutexWaitv(t)
        registerEpoll(t)
        registerSocket(t)
        registerUnixSockets(t)
        registerSplice(t)
        registerFileExtras(t)
        registerAIO(t)
        registerInotify(t)
        registerIPC(t)
        registerPosixTimers(t)
        registerSched(t)
        registerProcessVM(t)
        registerPtrace(t)
        registerKeys(t)
        registerSeccomp(t)
        registerIoUring(t)
        registerMessageQueue(t)
        registerFileHandles(t)
        registerUserfaultfd(t)
        registerLandlock(t)
        registerFanotify(t)
        registerMount(t)
        return t
    }()
}

/// Calls served with no lock at all (Kernel.swift's header): a driver
/// thread answers them between two resumes of its stub thread, so threads
/// doing only these never meet on Kernel.mu. Each handler reads state fixed
/// for the task's life or published atomically (see each handler), and
/// they run where the locked path would run them: same function, same
/// result. Anything that makes a call need the kernel's view (a seccomp
/// profile, strace, the first-syscall profile, a fast-path layer to attach)
/// sends it down the locked path instead (`serve` returns false).
///
/// A signal, stop or exit meant for the task while it serves one of these
/// still reaches it: the task is "in the application" for the kernel
/// (inApp), so the sender kicks its stub thread, and the next resume
/// returns .interrupted (PtraceThread.run), which takes the driver back
/// under mu to Task.prepareToRun.
enum LockFree {
    /// sched_yield, getpid, getuid, getgid, geteuid, getegid, getppid,
    /// gettid: their handlers are the syscall table's own, so a call gives
    /// the same result on either path.
    static let numbers = [24, 39, 102, 104, 107, 108, 110, 186]
    static let handlers: [Handler?] = {
        var h = [Handler?](repeating: nil, count: 512)
        for nr in numbers { h[nr] = SyscallTable.shared.handlers[nr] }
        return h
    }()

    /// Serves the call `t` stopped at if it is one of `handlers` and may be
    /// served without the lock: the result goes in rax as dispatchSyscall
    /// puts it. Returns false, having done nothing, otherwise. Runs on the
    /// task's driver thread with no lock held.
    static func serve(_ t: Task) -> Bool {
        LockOrder.assertNoneHeld()
        // The KVM platform keeps every call under mu (Kernel.swift).
        guard t.thread.hasStub else { return false }
        let nr = Int(Int64(bitPattern: t.thread.regs.orig_rax))
        guard nr >= 0 && nr < 512, let h = handlers[nr] else { return false }
        // Set before any task ran and never again (Sentry.swift), so these
        // reads race with no write.
        let k = t.kernel
        if k.strace || k.podMode || AppSeccomp.active != nil || t.hasSeccomp || StartupProfile.firstSyscallPending { return false }
        // A task its tracer stops at syscalls (Ptrace.swift) stops at these too.
        if t.ptraceSyscalls { return false }
        let fast = FastPath.set[nr]
        // The call that earns the thread its fast-path layer takes the
        // locked path, which attaches it.
        if fast && t.thread.listener < 0 && t.fastCandidates + 1 == FastPath.enableAfter { return false }
        let r = t.thread.regs
        let ret = h(t, Args(a0: r.rdi, a1: r.rsi, a2: r.rdx, a3: r.r10, a4: r.r8, a5: r.r9))
        t.thread.regs.rax = UInt64(bitPattern: Int64(ret))
        t.thread.markDirty()
        t.thread.wantFast = fast
        if fast && t.thread.listener < 0 { t.fastCandidates += 1 }
        return true
    }
}

/// Runs the syscall the task stopped at. Requires: Kernel.mu held.
func dispatchSyscall(_ t: Task) {
    LockOrder.assertHeld(.kernel)
    let regs = t.thread.regs
    var nr = Int(Int64(bitPattern: regs.orig_rax))
    var args = Args(a0: regs.rdi, a1: regs.rsi, a2: regs.rdx, a3: regs.r10, a4: regs.r8, a5: regs.r9)
    let k = t.kernel
    if StartupProfile.firstSyscallPending { StartupProfile.firstSyscall(nr) }
    var start: Int64 = 0
    var straced: [Int: String] = [:]
    if k.strace { start = Kernel.now(CLOCK_MONOTONIC); straced = straceStrings(t, nr, args) }
    pthread_setspecific(currentTaskKey, Unmanaged.passUnretained(t).toOpaque())
    if Log.shared.debug && k.strace { Log.shared.write("[pid \(t.tid)] enter \(syscallName(nr)) \(args)") }
    var ret: Int
    if let verdict = seccompVerdict(t, &nr, &args) {
        ret = verdict // the application's seccomp filters and the container's profile (Syscalls/Seccomp.swift)
    } else if nr >= 0 && nr < 512, let h = SyscallTable.shared.handlers[nr] {
        ret = h(t, args)
    } else {
        Log.shared.unimplemented(nr)
        ret = err(ENOSYS)
    }
    t.io.count(nr, ret)
    if k.strace { straceLine(t, nr, args, ret, Kernel.now(CLOCK_MONOTONIC) - start, strings: straced) }
    // Its waker gave the stub the result (Task.wakeAnswering); the stub runs on.
    if t.answeredByWaker { return }
    if t.skipReturn {
        t.skipReturn = false
        return
    }
    if isRestart(ret) {
        t.restartCode = ret
        t.restartNr = UInt64(bitPattern: Int64(nr))
        ret = err(EINTR)
    }
    t.thread.regs.rax = UInt64(bitPattern: Int64(ret))
    t.thread.markDirty()
    // Resume in the mode that suits the next call best guess: a run of fast
    // calls stays on the notification path, a run of others on SYSEMU.
    let fast = nr >= 0 && nr < 512 && FastPath.set[nr]
    t.thread.wantFast = fast
    if fast && t.thread.listener < 0 {
        t.fastCandidates += 1
        if t.fastCandidates == FastPath.enableAfter { t.enableFastPath() }
    }
}
