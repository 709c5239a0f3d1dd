import CMoat
import Glibc
import Platform

/// One application thread, driven by its own host pthread (the only tracer
/// of its stub thread).
final class Task {
    unowned let kernel: Kernel
    var tid: Int32
    var tg: ThreadGroup
    /// This thread's credentials (ids, capabilities; Kernel/Credentials.swift).
    var creds = Credentials() { didSet { if tid == tg.tgid { tg.lastCreds = creds } } }
    /// The platform context (a ptrace stub thread, or a KVM vCPU: see
    /// TaskThread.swift). Created on the driver thread.
    var thread: (any TaskThread)!
    /// The driver pthread's host tid (a KVM task is kicked out of the guest
    /// by a signal to it).
    var driverTid: pid_t = 0
    /// Seccomp filter layers on the stub thread (each fast-path thread adds
    /// its own on top of what it inherited; see FastPath.swift).
    var stubLayers = 0
    /// The application's own seccomp mode and filters (Kernel/SeccompFilters.swift).
    var seccomp = SeccompState()
    /// Keyrings (Syscalls/Keys.swift): this thread's, its session's (shared
    /// with what fork and clone make), and where constructed keys would go.
    var threadKeyring: Key?
    var sessionKeyring: Key?
    var reqkeyDefault: Int32 = 0
    /// Set, never cleared, once `seccomp` is not disabled: read without
    /// Kernel.mu by the lock-free path (Dispatch.swift), which then leaves
    /// the call to the locked one that runs the filters.
    var hasSeccomp = false
    /// Fast-set calls served by ptrace stops so far; at
    /// FastPath.enableAfter the thread gets its own filter layer.
    var fastCandidates = 0
    /// Host pid of the stub process holding this thread (0 on the KVM
    /// platform: no stub).
    var hostPid: pid_t
    var hostTid: pid_t

    var mm: MemoryManager
    var fds: FDTable
    var fs: FSContext

    // Signals. Guarded by Kernel.mu.
    var sigMask: UInt64 = 0
    /// The mask sigtimedwait unblocked its awaited signals from while it
    /// waits (Linux's real_blocked): a signal blocked there is still queued
    /// even when ignored, so the waiter can take it.
    var realBlocked: UInt64 = 0
    var savedSigMask: UInt64? = nil
    var pending = SignalQueue()
    var altStackSP: UInt64 = 0
    var altStackSize: UInt64 = 0
    var altStackFlags: Int32 = SS_DISABLE
    /// A syscall that returned a restart code, to be restarted or turned into
    /// EINTR once signal delivery is decided.
    var restartCode = 0
    var restartNr: UInt64 = 0
    /// What restart_syscall continues after -ERESTART_RESTARTBLOCK (Linux's
    /// restart_block): a sleep's remaining part towards its original
    /// deadline, so that time spent stopped counts as time slept. nil:
    /// restart_syscall is EINTR.
    var restartBlock: ((Task) -> Int)? = nil

    // Waiting. Guarded by Kernel.mu.
    /// The word a blocked task sleeps on (CMoat/park.c), allocated once so
    /// that its address is stable for the host futex calls.
    private let parkWord: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    /// `.cond`: asleep in `block` (on `parkWord`); `.hostPoll`: in a host
    /// poll; `.held`: asleep in `block` with an answer, its stub held in a
    /// seccomp notification (woken through `wakeFD`, "Answered by the
    /// waker" below).
    enum WaitMode { case none, cond, hostPoll, held }
    var waitMode = WaitMode.none
    /// While asleep in `block(deadline:answer:)`: the result its call
    /// returns once woken, which a waker may give the stub itself
    /// (`wakeAnswering`). Guarded by mu.
    private var answerOnWake: Int64? = nil
    /// A waker gave this task's stub the result of the call its driver is
    /// still finishing (`wakeAnswering`): the stub runs application code
    /// again, and the driver, once the handler returns, goes straight back
    /// to waiting for the stub's next call (its result is not used).
    /// Guarded by mu.
    var answeredByWaker = false
    /// An eventfd that wakes this task from a host poll.
    let wakeFD: Int32
    var inApp = false
    var exitRequested = false
    /// A thread's own exit status (exit(2) of one thread of several): the
    /// PTRACE_EVENT_EXIT message when its group is not exiting.
    var exitStatus: Int32 = 0
    /// Set while the task is traced by another process (Syscalls/Ptrace.swift).
    var ptrace: PtraceState?
    /// Its tracer resumed it to stop at syscalls: its calls all take the
    /// locked path (LockFree). Written and read by its own driver thread only.
    var ptraceSyscalls = false
    var exited = false

    var clearChildTid: UInt64 = 0
    var robustList: UInt64 = 0
    /// The scheduling policy and parameters sched_setscheduler/sched_setattr
    /// stored (Syscalls/Identity.swift). Moat schedules nothing itself: the
    /// host runs every task alike; these are only stored and reported.
    var schedPolicy: Int32 = 0
    var schedPriority: Int32 = 0
    var schedResetOnFork = false
    var schedDeadline = (runtime: UInt64(0), deadline: UInt64(0), period: UInt64(0))
    /// ioprio_set's value for this thread (0: none set, IOPRIO_CLASS_NONE).
    var ioprio: Int32 = 0
    /// set_mempolicy's thread policy: mode with its flags, node mask as
    /// given, and the mask in effect (Syscalls/Memory.swift).
    var mempolicy = MemPolicy()
    /// What CLONE_IO and CLONE_SYSVSEM share, for kcmp's KCMP_IO and
    /// KCMP_SYSVSEM (Moat keeps no I/O context or semaphore undo list per task).
    var ioContext = KcmpToken(), semUndo = KcmpToken()
    /// The nice value (-20...19; getpriority reports 20 - nice). Inherited
    /// by fork and new threads. The host schedules: each change weights the
    /// task's stub thread with a host nice value (Kernel/HostScheduling.swift).
    var nice: Int32 = 0 {
        didSet { if nice != oldValue { kernel.niceChanged(self, from: oldValue) } }
    }
    /// The host nice value last given to the stub thread (nil: the Sentry's own).
    var hostNice: Int32? = nil
    /// personality(2)'s value: any 32 bits are kept (Linux validates none);
    /// the bits Moat acts on are Personality's.
    var personality: UInt32 = 0
    /// prctl's timer slack (Linux's default 50 µs) and what PR_SET_TIMERSLACK
    /// 0 goes back to: a child's both are its creator's current value.
    /// Kept and shown (/proc/PID/timerslack_ns); the host's timers decide.
    var timerSlackNs: UInt64 = 50_000
    var defaultTimerSlackNs: UInt64 = 50_000
    /// This thread's share of the process's CPU time (ThreadGroup.sampleCPU).
    var cpuNs: Int64 = 0
    /// Read and write counts (/proc/PID/task/TID/io).
    var io = IOAccounting()
    /// The UTS namespace (nil: the sandbox's); inherited across clone.
    var ownUTS: UTSNamespace?
    /// The IPC namespace (nil: the sandbox's); inherited across clone,
    /// replaced by CLONE_NEWIPC or setns (Kernel/IPCNamespaces.swift).
    var ownIPC: IPCNamespace?
    /// The network namespace (nil: the sandbox's); inherited across clone,
    /// replaced by CLONE_NEWNET or setns (Kernel/NetNamespaces.swift).
    var ownNet: NetNamespace?
    /// The pid namespace this task's next children go into when it is not
    /// its own: unshare(CLONE_NEWPID) (Kernel/PidNamespaces.swift).
    var childPidNS: Int32?
    /// This task's cgroup namespace (nil: the sandbox's, rooted at the
    /// container's cgroup); unshare(CLONE_NEWCGROUP) makes one rooted at
    /// its cgroup (Kernel/Cgroups.swift). Inherited across clone.
    var ownCgroupNS: CgroupNamespace?
    var cgroupNS: CgroupNamespace { ownCgroupNS ?? kernel.cgroups.rootNamespace }
    var cgroupNSRoot: Cgroup { cgroupNS.root }
    var uts: UTSNamespace { ownUTS ?? kernel.rootUTS }
    /// The System V objects and POSIX message queues this task names.
    var ipc: IPCNamespace { ownIPC ?? kernel.ipc }
    /// sched_setaffinity's mask (bit per CPU), inherited across clone.
    var cpuMask: UInt64 = onlineCPUMask
    var comm: [UInt8]
    /// Set by handlers that replaced the registers (execve, rt_sigreturn).
    var skipReturn = false
    /// The vfork parent waiting for this task to exec or exit.
    var vforkParent: Task?
    var vforkDone = false

    /// Runs once on the driver thread after the stub is seized, with mu held.
    var onStart: ((Task) -> Void)?
    /// Per-task scratch buffer for copies between the app and the Sentry.
    var scratch = [UInt8](repeating: 0, count: 64 * 1024)

    init(kernel: Kernel, tid: Int32, tg: ThreadGroup, hostPid: pid_t, hostTid: pid_t,
         mm: MemoryManager, fds: FDTable, fs: FSContext, comm: [UInt8]) {
        self.kernel = kernel
        self.tid = tid
        self.tg = tg
        self.hostPid = hostPid
        self.hostTid = hostTid
        self.mm = mm
        self.fds = fds
        self.fs = fs
        self.comm = comm
        self.wakeFD = eventfd(0, EFD_CLOEXEC_ | EFD_NONBLOCK_)
    }

    deinit { close(wakeFD); transferStorage?.deallocate(); parkWord.deallocate() }

    // MARK: - Driver thread

    /// Starts the driver pthread. Requires: mu held (the task is already
    /// registered in the kernel's tables). `driver` is one spawned earlier
    /// (clone spawns it before it makes the host stub, so that running out
    /// of host threads fails the clone instead of leaving a task nobody
    /// drives); without one, a thread is spawned here.
    func startDriver(on driver: DriverThread? = nil) {
        kernel.liveTasks += 1
        guard let d = driver ?? DriverThread.spawn() else {
            Log.shared.info("cannot start a driver thread for task \(tid)")
            exitRequested = true
            kernel.liveTasks -= 1
            return
        }
        d.run(self)
    }

    fileprivate func driverMain() {
        driverTid = moat_gettid()
        if KVMTasks.enabled {
            // The init task's context was made before confinement; a
            // clone's comes with it (Process.swift; KVMTasks.swift).
            kernel.lock()
            // This thread runs the task's code: its nice value and affinity
            // (made by the creator's thread, whose nice it has).
            kernel.applyHostNice(self, force: true)
            if cpuMask != onlineCPUMask { applyAffinity() }
            if thread == nil {
                guard let v = KVMTasks.take() else {
                    Log.shared.info("no KVM context for task \(tid)")
                    if !tg.exiting { tg.beginExit(code: SIGKILL, bySignal: true) }
                    leave(hostAlive: false)
                    kernel.unlock()
                    return
                }
                thread = v
            }
        } else {
            let seized: PtraceThread
            do {
                seized = try PtraceThread(seize: hostTid)
            } catch {
                Log.shared.info("cannot seize stub thread \(hostTid): \(error)")
                kernel.lock()
                leave(hostAlive: false)
                kernel.unlock()
                return
            }
            pin()
            kernel.lock()
            // Under mu: other tasks read it (memRead, awaitThread).
            thread = seized
        }
        if let s = onStart { onStart = nil; s(self) }
        // Set when the last call was answered by its waker: the stub runs
        // already (inApp), and anything that came for it since was a kick.
        var runsOn = false
        while runsOn || prepareToRun() {
            runsOn = false
            inApp = true
            kernel.unlock()
            var reason = thread.run()
            // Calls that need no lock are served here, between resumes
            // (LockFree, Syscalls/Dispatch.swift); inApp stays set, so a
            // signal or exit meanwhile kicks the stub and the next resume
            // reports it (.interrupted), which brings us back under mu.
            while reason == .syscall && LockFree.serve(self) { reason = thread.run() }
            kernel.lock()
            inApp = false
            switch reason {
            case .syscall:
                if ptrace != nil { ptraceSyscall() } else { dispatchSyscall(self) }
            case .fault(let signo, let code, let addr):
                if Log.shared.debug {
                    Log.shared.write("[pid \(tid)] fault: signal \(signo) code \(code) addr 0x\(String(addr, radix: 16)) rip 0x\(String(thread.regs.rip, radix: 16)) \((thread as? KVMThread)?.lastFault ?? "") rsp 0x\(String(thread.regs.rsp, radix: 16)) vmas \(mm.vmas.map { String($0.start, radix: 16) + "-" + String($0.end, radix: 16) + ":\($0.prot)" })")
                }
                if signo == SIGSEGV && addr & ~0xfff == vsyscallPage && thread.regs.rip == addr && thread.hasStub {
                    emulateVsyscall(self)
                } else if !mm.growDown(self, addr: addr, signo: signo) && !userfault(signo: signo, addr: addr) {
                    forceFault(signo: signo, code: code, addr: addr)
                }
            case .interrupted:
                break
            case .gone:
                // The host killed the stub (the stub's seccomp floor, the
                // OOM killer, a cgroup kill) or the KVM platform failed a
                // vCPU operation: to the application, its process died of
                // SIGKILL. The reason goes to Moat's log, or the death
                // would be a bare 137.
                Log.shared.info("[pid \(tid)] thread gone, killing its process: \((thread as? KVMThread)?.lastError ?? "the host stub died")")
                if !exitRequested && !tg.exiting { tg.beginExit(code: SIGKILL, bySignal: true) }
                exitRequested = true
                leave(hostAlive: false)
                kernel.unlock()
                return
            }
            if answeredByWaker { answeredByWaker = false; runsOn = true }
        }
        if ptrace != nil { ptraceExitStop() }
        leave(hostAlive: true)
        kernel.unlock()
    }

    /// Decides what happens before application code runs again: exit,
    /// group stop, signal delivery, syscall restart. Returns false when the
    /// task must exit. Requires: mu held.
    private func prepareToRun() -> Bool {
        // Signal delivery, restarts, stops and exits need the registers,
        // which a fast-path call does not fetch.
        if thread.inNotif && (restartCode != 0 || interruptPending() || tg.stopped) {
            thread.materialize()
        }
        while true {
            if exitRequested || tg.exiting { return false }
            // A traced task's own stops (Syscalls/Ptrace.swift): an event
            // stop asked for, a group stop its tracer has not seen; once the
            // tracer resumes it, it runs on though its group is stopped.
            if ptrace != nil, let go = ptracePendingStop() {
                if !go { return false }
                continue
            }
            if tg.stopped && !(ptrace.map { $0.groupStopReported && !$0.listening } ?? false) {
                _ = block(deadline: nil, stopWait: true)
                continue
            }
            guard var info = takeSignal() else { break }
            if ptrace != nil && info.signo != SIGKILL {
                // A traced task stops for its tracer first, which may
                // change or suppress the signal.
                guard let resumed = ptraceSignalStop(info) else { continue }
                info = resumed
            }
            switch deliver(info) {
            case .delivered: finishRestart(handlerRan: true); return true
            case .ignored: continue
            case .exit: return false
            }
        }
        finishRestart(handlerRan: false)
        return true
    }

    /// Puts this driver thread and its stub thread on the same CPU: a
    /// ptrace round trip is a pair of wake-ups between them, and on the
    /// machines we measured a cross-CPU wake-up costs more than the rest of
    /// the trap (bench/README.md). Tasks are spread round-robin over CPUs.
    /// The CPU is one the task's affinity mask allows (Kernel/HostScheduling.swift).
    func pin() {
        let cpus = kernel.allowedCPUs
        guard cpus.count > 1, let cpu = hostCPU else { return }
        _ = moat_sched_pin(moat_gettid(), cpu)
        _ = moat_sched_pin(hostTid, cpu)
    }

    // MARK: - Waiting

    enum BlockResult { case woken, interrupted, timedOut }

    /// A signal or exit that should interrupt a blocking syscall.
    /// Requires: mu held.
    func interruptPending() -> Bool {
        if exitRequested || tg.exiting { return true }
        if ptrace != nil && ptraceStopPending { return true }
        let p = (pending.mask | tg.sharedPending.mask) & ~sigMask
        return p != 0
    }

    /// Sleeps until woken, interrupted or the (CLOCK_MONOTONIC ns) deadline.
    /// Callers re-check their condition after it returns. `killable`: only
    /// an exit interrupts (Linux's TASK_KILLABLE, e.g. a vfork parent's
    /// wait), a pending signal waits until the sleep ends. Requires: mu held.
    /// `answer`: the call's result once woken, which the waker may give
    /// the stub itself ("Answered by the waker" below).
    func block(deadline: Int64?, stopWait: Bool = false, killable: Bool = false, exitStop: Bool = false,
               answer: Int64? = nil) -> BlockResult {
        if exitStop {
            // A PTRACE_EVENT_EXIT stop: the task is leaving already.
            if !ptraceStopped || ptrace?.exitStopKilled != false { return .woken }
        } else if stopWait {
            if exitRequested || tg.exiting || !(tg.stopped || ptraceStopped) { return .woken }
        } else if killable ? (exitRequested || tg.exiting) : interruptPending() { return .interrupted }
        // Credit the CPU time run up to here to the threads that ran it.
        _ = tg.sampleCPU()
        if let d = deadline, Kernel.now(CLOCK_MONOTONIC) >= d { return .timedOut }
        // Armed with mu held, so a waker (who needs mu to see `.cond`)
        // cannot come before it; released through unlock, which also does
        // the wakes this thread deferred.
        if let v = answer, let p = thread as? PtraceThread, p.inNotif, p.listener >= 0 {
            answerOnWake = v
            waitMode = .held
            kernel.unlock()
            p.sleepHeld(wakeFD: wakeFD, deadline: deadline)
            kernel.lock()
            answerOnWake = nil
            p.settleHeld()
        } else {
            waitMode = .cond
            moat_park_arm(parkWord)
            kernel.unlock()
            _ = moat_park_wait(parkWord, deadline ?? -1)
            kernel.lock()
        }
        waitMode = .none
        if !stopWait && !exitStop && (killable ? (exitRequested || tg.exiting) : interruptPending()) { return .interrupted }
        if let d = deadline, Kernel.now(CLOCK_MONOTONIC) >= d { return .timedOut }
        return .woken
    }

    /// Waits for host fds with mu released. Returns poll's result, or -EINTR
    /// style interruption as .interrupted. Requires: mu held.
    func hostPoll(_ pfds: inout [pollfd], timeoutMs: Int32) -> (BlockResult, Int32) {
        if interruptPending() { return (.interrupted, 0) }
        var all = pfds
        all.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
        waitMode = .hostPoll
        kernel.unlock()
        let n = poll(&all, nfds_t(all.count), timeoutMs)
        if all.last!.revents != 0 {
            // Only a written eventfd needs draining: a read of an empty one
            // was one more host call per wake-up by the file itself.
            var drain: UInt64 = 0
            _ = read(wakeFD, &drain, 8)
        }
        kernel.lock()
        waitMode = .none
        for i in 0..<pfds.count { pfds[i].revents = all[i].revents }
        if interruptPending() { return (.interrupted, 0) }
        if n == 0 { return (.timedOut, 0) }
        let mine = all.last!.revents != 0 ? n - 1 : n
        return (.woken, mine)
    }

    /// Runs `body` with Kernel.mu given up, on the ptrace platform (a KVM
    /// task keeps it: Kernel.swift). For work that touches only this task's
    /// own platform thread (its memory copies, process_vm_readv/writev on
    /// its stub) and values the caller took out of shared state under mu,
    /// holding a reference on any file it uses. Whatever other threads
    /// change meanwhile, the caller re-reads after. Requires: mu held.
    @inline(__always) func withoutKernelLock<R>(_ body: () -> R) -> R {
        guard thread.hasStub else { return body() }
        kernel.unlock()
        defer { kernel.lock() }
        return body()
    }

    /// Wakes the task if it sleeps. Requires: mu held. The holder of mu
    /// that took it through `Kernel.lock` wakes it when it releases mu
    /// (Kernel.unlock, "Waking after unlock").
    func wake() {
        if waitMode == .none || wakeDeferred { return }
        if kernel.callerHoldsLock {
            wakeDeferred = true
            kernel.deferWake(self, waitMode)
        } else {
            wakeNow(waitMode)
        }
    }

    /// Set while a wake of this task waits in Kernel.deferredWakes (one is
    /// enough). Guarded by mu.
    var wakeDeferred = false

    /// Wakes the task from the wait it was in (`mode`) when `wake` was
    /// called. Needs no lock: a late or spurious wake is harmless (the
    /// sleeper re-checks; an eventfd write is drained by its next poll).
    func wakeNow(_ mode: WaitMode) {
        switch mode {
        case .cond: moat_park_wake(parkWord)
        case .hostPoll, .held:
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        case .none: break
        }
    }

    // MARK: - Answered by the waker
    //
    // A blocked call whose result once woken is known in advance (a futex
    // wait: 0) sleeps with that answer (`block(deadline:answer:)`). On the
    // fast path its stub is held in a seccomp notification meanwhile, and
    // the waker, which holds mu, gives the stub the answer itself
    // (PtraceThread.answerElsewhere, one NOTIF_SEND): the stub runs on,
    // woken by the waker's host call alone, as a native thread is by the
    // waker's syscall. Before, the waker woke the sleeper's driver, which
    // took mu, finished the handler and only then answered its stub: two
    // host wake-ups on the path where Linux has one
    // (bench/results/2026-12-06-wakeup-profile.md). The driver is not woken
    // at all: it sleeps on its stub's listener too (CMoat/fastpath.c,
    // moat_fast_sleep), and the stub's next call or stop wakes it; it then
    // finishes the handler (whose result is the answer: the waker marked
    // the wait done first) and goes back to serving the stub without
    // looking at signals or stops (Task.driverMain's runsOn): the stub has
    // been running application code since the answer, so it counts as
    // `inApp`, and whatever came for it since was a kick (SIGURG) that
    // its next stop reports.
    //
    // Not answered by the waker (an ordinary wake instead): a task traced
    // or with a signal, stop or exit pending (prepareToRun has work to do
    // before the stub runs), a stub not held in a notification (ptrace
    // stops: only the tracer thread may resume its stub), and a stub a
    // host signal has taken out of the notification (NOTIF_SEND fails;
    // the driver completes the call at the stop, as before).

    /// Wakes the task, answering its call directly when it sleeps with an
    /// answer (see above). Requires: mu held.
    func wakeAnswering() {
        if waitMode == .held, let v = answerOnWake, !answeredByWaker, ptrace == nil,
           !tg.stopped, !interruptPending(), let p = thread as? PtraceThread, p.answerElsewhere(v) {
            answeredByWaker = true
            inApp = true
            return
        }
        wake()
    }

    /// Makes the task look at its pending work soon: wakes it, or interrupts
    /// its application code. Requires: mu held.
    func kick() {
        wake()
        if inApp {
            if hostTid > 0 { _ = moat_tgkill(hostPid, hostTid, SIGURG) } else { KVMTasks.kick(driverTid: driverTid) }
        }
    }

    func requestExit() {
        exitRequested = true
        kick()
        if waitMode == .none && !inApp { moat_park_wake(parkWord) }
    }

    // MARK: - Exit

    /// Removes the task from the kernel and disposes of its stub thread.
    /// Requires: mu held.
    private func leave(hostAlive: Bool) {
        if exited { return }
        exited = true
        if tid != tg.tgid { tg.exitWaiters.notifyAll() }            // PIDFD_THREAD pidfds of this thread
        if KVMTasks.enabled {
            // The thread's CPU time outlives its driver thread's clock.
            _ = tg.sampleCPU()
            tg.exitedCPUNs += cpuNs
        } else if tg.tasks.count == 1 {
            // The last thread: the stub's clock, read while it still runs
            // (a process killed before it was ever sampled had none).
            _ = tg.sampleCPU()
        }
        kernel.tasks[tid] = nil
        kernel.niceTaskLeft(self)
        if tid == tg.tgid {
            tg.exitComm = comm                          // a zombie's /proc/PID/stat keeps its name
            tg.exitedLeader = self                      // and the sched_* calls still find it
        }
        tg.tasks.removeAll { $0 === self }
        tg.exitedIO.add(io)
        leaveAddressSpace()
        if robustList != 0 && hostAlive { exitRobustList() }
        if clearChildTid != 0 && hostAlive {
            var zero: Int32 = 0
            _ = thread.write(clearChildTid, &zero, 4)
            futexWake(self, addr: clearChildTid, count: 1, bitset: ~0)
        }
        releaseVfork()
        if let f = seccomp.filter { SeccompListener.userLeft(f) }
        releaseKeyrings()
        let last = tg.tasks.isEmpty
        if !last && !tg.children.isEmpty { tg.parentThreadLeft(self) }
        // The process's peak resident set, for the parent's wait (stack
        // space below the red zone is the injected call's buffer). A stub
        // process killed and reaped whole below reports it to the reaping
        // wait4 instead, an injected getrusage fewer per exit.
        let rssAtReap = last && hostAlive && hostTid == hostPid && thread is PtraceThread
        if last && hostAlive && !rssAtReap && thread.materialize() { _ = sampleMaxRSS(self, scratch: (thread.regs.rsp &- 1024) & ~15) }
        if let v = thread as? KVMThread {
            // No host process to kill: the vCPU goes back to the pool
            // (`thread` stays set: late readers of a dead task see an
            // empty address space, never a nil).
            KVMTasks.giveBack(v)
        } else if let t = thread {
            if last || !hostAlive {
                _ = kill(hostPid, SIGKILL)
                if rssAtReap, let p = t as? PtraceThread {
                    if let kb = p.reapWithMaxRSS() { tg.maxRSSKB = max(tg.maxRSSKB, kb) }
                } else {
                    t.reap()
                }
                if hostTid != hostPid { reapHost(hostPid) }
            } else if hostTid == hostPid {
                t.detachParked()
            } else {
                _ = t.inject(60 /* exit */, 0)
                t.reap()
            }
        }
        if last {
            if !tg.exiting { tg.exiting = true }
            tg.finishExit()
        }
        fds.release(self)
        kernel.liveTasks -= 1
    }

    func releaseVfork() {
        if let p = vforkParent {
            vforkDone = true
            vforkParent = nil
            p.wake()
        }
    }

    // MARK: - Memory access

    /// Sentry-internal transfers (sendfile, splice) hand the file code an
    /// address at or above `bounceBase` -- above any application address,
    /// so an application can never name it -- and the same read and write
    /// paths then fill or drain `bounce`, a Sentry buffer, instead of
    /// application memory. Set only for the duration of one transfer step.
    static let bounceBase: UInt64 = 0xffff_f000_0000_0000
    var bounce: UnsafeMutableRawBufferPointer? = nil
    /// Set (a count, for nesting) while a caller has changed shared state
    /// for the length of one call that must not block and relies on no
    /// other task seeing it: a file made O_NONBLOCK for io_uring, AIO's
    /// RWF_NOWAIT or splice. A socket then keeps Kernel.mu across its host
    /// call instead of giving it up (InetSocketFD.unlockedIO).
    var keepsKernelLock = 0
    /// Backing store for Sentry-internal transfers (see Splice.swift).
    var transferStorage: UnsafeMutableRawBufferPointer? = nil

    /// Reads application (or bounce) memory; returns the bytes read (none
    /// from a task just cloned whose driver has not seized its stub yet:
    /// another task reaching it, process_vm_readv or /proc/PID/cmdline,
    /// crashed the Sentry).
    @inline(__always) func memRead(_ addr: UInt64, _ buf: UnsafeMutableRawPointer, _ len: Int) -> Int {
        if bounce != nil && addr >= Task.bounceBase { return bounceCopy(addr, len) { buf.copyMemory(from: $0, byteCount: len) } }
        guard let th = thread else { return 0 }
        return th.read(addr, buf, len)
    }

    /// Writes application (or bounce) memory; returns the bytes written.
    @inline(__always) func memWrite(_ addr: UInt64, _ buf: UnsafeRawPointer, _ len: Int) -> Int {
        if bounce != nil && addr >= Task.bounceBase { return bounceCopy(addr, len) { $0.copyMemory(from: buf, byteCount: len) } }
        guard let th = thread else { return 0 }
        return th.write(addr, buf, len)
    }

    /// Waits (by `t`, a millisecond at a time, up to a second) for this
    /// task's host thread: a child exists for Linux as soon as fork returns,
    /// but Moat reaches its memory only once its driver has seized its stub.
    /// Requires: mu held.
    func awaitThread(by t: Task) -> Bool {
        var waited = 0
        while thread == nil {
            if tg.zombie || waited == 1000 || t.interruptPending() { return false }
            _ = t.block(deadline: Kernel.now(CLOCK_MONOTONIC) + 1_000_000)
            waited += 1
        }
        return true
    }

    /// This task stops using its address space (exit, or exec before it
    /// takes a new one). The last task out ends what the space held: its
    /// program (Inode.runners, ETXTBSY) and its SysV attachments.
    /// Requires: mu held.
    func leaveAddressSpace() {
        mm.users -= 1
        if mm.users > 0 { return }
        mm.setExe(nil)
        if !kernel.shmAttached.isEmpty { kernel.dropAttachments(space: mm.id, pid: tg.tgid) }
    }

    /// Writes at least this big go through `stubPwrite`: its materialize
    /// and one injected call, three ptrace stops (seven when the stub must
    /// first take the file's fd and close it after), cost about what
    /// copying 128 KiB twice does.
    static let stubWriteMin = 256 << 10

    /// One host pwrite64 of `hostFD`, a Sentry fd (a tmpfs file's memfd, a
    /// Gofer-donated file), at `pos`, run by the task's own stub straight
    /// from application memory at [buf, buf+count): one copy, made by the
    /// host kernel as for a native write, instead of a process_vm_readv
    /// into a Sentry buffer and a pwrite from it. The Sentry chooses the
    /// call, the fd and the range, and the range is checked first against
    /// the application's VMAs: every page mapped and readable. The stub
    /// keeps its copy of the fd between writes to the same file
    /// (Kernel/StubFD.swift says why that is safe and when it lets go). No
    /// file offset is used or moved. Returns the bytes written (a short
    /// count at a fault part-way, as Linux's), or nil when this does not
    /// apply and the caller's copying path must answer: no stub (KVM), a
    /// Sentry-internal (bounce) address, a range not wholly mapped readable
    /// (the copying path gives Linux's short count or EFAULT), the stub
    /// could not take the fd, or the host call wrote nothing (an error).
    /// Big reads take the same way in (`stubPread`); with the fd kept, both
    /// beat the copying and mapping paths (bench/results/2026-12-07-perf13-bytes.md).
    /// Requires: Kernel.mu held (the VMAs are read; the call is injected).
    /// Only the task's own driver thread, the tracer of its stub thread,
    /// may inject (another thread's wait could take the stub's stops): a
    /// write made on behalf of another task is copied as before.
    func stubPwrite(_ hostFD: Int32, _ buf: UInt64, _ count: Int, at pos: Int) -> Int? {
        stubFileIO(18 /* pwrite64 */, hostFD, buf, count, at: pos, needs: PROT_READ)
    }

    /// One host pread64 of `hostFD` at `pos` by the task's own stub straight
    /// into application memory at [buf, buf+count): the host kernel copies
    /// from the page cache into the application's pages, as a native read
    /// does, instead of the Sentry mapping the range and pushing it with
    /// process_vm_writev (a mapping, its faults and teardown, and the
    /// application's pages pinned, per call). The same checks as
    /// `stubPwrite`, with every page of the range mapped writable, and the
    /// same kept fd (Kernel/StubFD.swift). Returns the bytes read (a short
    /// count at the end of the file or at a fault part-way, as Linux's), or
    /// nil when the caller's path must answer (as for stubPwrite; also
    /// nothing read: the end of the file, or an error).
    /// Requires: Kernel.mu held; only from the task's own driver thread.
    func stubPread(_ hostFD: Int32, _ buf: UInt64, _ count: Int, at pos: Int) -> Int? {
        stubFileIO(17 /* pread64 */, hostFD, buf, count, at: pos, needs: PROT_WRITE)
    }

    /// stubPwrite and stubPread: the call `nr` (pwrite64 or pread64, the
    /// only two the stub's base filter lets it make on a file) on the
    /// stub's copy of `hostFD`, once every page of [buf, buf+count) is an
    /// application mapping with `needs` (the host checks the same pages
    /// again as it copies).
    private func stubFileIO(_ nr: Int, _ hostFD: Int32, _ buf: UInt64, _ count: Int, at pos: Int, needs prot: Int32) -> Int? {
        guard thread.hasStub, hostFD >= 0, count > 0, pos >= 0, buf < Task.bounceBase, currentTask === self else { return nil }
        let end = buf &+ UInt64(count)
        guard end > buf, buf >= mm.minAddr, end <= mm.appTop, mm.fullyMapped(buf, end, prot: prot) else { return nil }
        guard let remote = stubFileFD(hostFD) else { return nil }
        let r = thread.inject(nr, remote.fd, buf, UInt64(count), UInt64(pos))
        if !remote.kept { _ = thread.inject(3 /* close */, remote.fd) }
        guard r > 0 else { return nil }
        return min(r, count)
    }

    private func bounceCopy(_ addr: UInt64, _ len: Int, _ body: (UnsafeMutableRawPointer) -> Void) -> Int {
        guard let b = bounce else { return -1 }
        let off = addr - Task.bounceBase
        if off > UInt64(b.count) || UInt64(len) > UInt64(b.count) - off { return -1 }
        body(b.baseAddress! + Int(off))
        return len
    }

    /// As much of [addr, addr+len) as is readable from its start: a write
    /// that runs into an unmapped page writes the part before it (Linux
    /// fails with EFAULT only when nothing could be copied).
    func copyInPrefix(_ addr: UInt64, _ len: Int) -> [UInt8] {
        if let b = copyIn(addr, len) { return b }
        var out: [UInt8] = []
        var a = addr, left = len
        while left > 0 {
            let n = min(left, Int(4096 - (a & 4095)))
            guard let b = copyIn(a, n) else { break }
            out += b; a &+= UInt64(n); left -= n
        }
        return out
    }

    /// Copies `len` bytes of application memory at `addr`.
    func copyIn(_ addr: UInt64, _ len: Int) -> [UInt8]? {
        if len == 0 { return [] }
        if len < 0 || len > 1 << 30 { return nil }
        var b = [UInt8](repeating: 0, count: len)
        let n = b.withUnsafeMutableBytes { memRead(addr, $0.baseAddress!, len) }
        return n == len ? b : nil
    }

    func copyOut(_ addr: UInt64, _ bytes: [UInt8]) -> Bool {
        if bytes.isEmpty { return true }
        let n = bytes.withUnsafeBytes { memWrite(addr, $0.baseAddress!, bytes.count) }
        return n == bytes.count
    }

    func copyOut(_ addr: UInt64, _ p: UnsafeRawPointer, _ len: Int) -> Bool {
        if len == 0 { return true }
        return memWrite(addr, p, len) == len
    }

    func readU64(_ addr: UInt64) -> UInt64? {
        var v: UInt64 = 0
        return memRead(addr, &v, 8) == 8 ? v : nil
    }
    func readI32(_ addr: UInt64) -> Int32? {
        var v: Int32 = 0
        return memRead(addr, &v, 4) == 4 ? v : nil
    }
    func writeU64(_ addr: UInt64, _ v: UInt64) -> Bool {
        var x = v
        return memWrite(addr, &x, 8) == 8
    }
    func writeI32(_ addr: UInt64, _ v: Int32) -> Bool {
        var x = v
        return memWrite(addr, &x, 4) == 4
    }

    /// Reads a NUL-terminated string of at most `max` bytes (excluding NUL).
    /// Returns nil on a fault, .tooLong via an empty optional pair.
    func copyInString(_ addr: UInt64, max: Int = 4096) -> (bytes: [UInt8]?, tooLong: Bool) {
        var out: [UInt8] = []
        var a = addr
        var chunk = [UInt8](repeating: 0, count: 256)
        while out.count <= max {
            let toPage = Int(4096 - (a & 4095))
            let want = min(toPage, chunk.count)
            let n = chunk.withUnsafeMutableBytes { thread.read(a, $0.baseAddress!, want) }
            if n <= 0 { return (nil, false) }
            if let z = chunk[0..<n].firstIndex(of: 0) {
                out.append(contentsOf: chunk[0..<z])
                return out.count > max ? (nil, true) : (out, false)
            }
            out.append(contentsOf: chunk[0..<n])
            a &+= UInt64(n)
        }
        return (nil, true)
    }

    /// Reads a NULL-terminated array of string pointers (argv, envp) the
    /// way execve(2) does: a string longer than MAX_ARG_STRLEN (32 pages),
    /// or strings and pointers together beyond `budget` bytes (which the
    /// caller shares between argv and envp), is E2BIG; an unreadable
    /// pointer or string is EFAULT.
    func copyInStringArray(_ addr: UInt64, budget: inout Int) -> Result<[[UInt8]], Errno> {
        var out: [[UInt8]] = []
        if addr == 0 { return .success([]) }
        var a = addr
        while true {
            guard let p = readU64(a) else { return .failure(Errno(EFAULT)) }
            if p == 0 { return .success(out) }
            budget -= 8
            let (s, tooLong) = copyInString(p, max: 128 * 1024 - 1)
            if tooLong { return .failure(Errno(E2BIG)) }
            guard let str = s else { return .failure(Errno(EFAULT)) }
            budget -= str.count + 1
            if budget < 0 { return .failure(Errno(E2BIG)) }
            out.append(str)
            a &+= 8
        }
    }
}

/// A host thread that will drive one task, spawned before the task exists.
///
/// Why ahead of time: when the sandbox's host cgroup is at its pids limit
/// (a fork or thread bomb), pthread_create fails. If that happened after
/// the host stub was cloned and the task registered, the application would
/// see a child that never runs and never exits (wait() blocks for ever).
/// Spawned first, a failure is just EAGAIN from clone, as Linux gives at
/// RLIMIT_NPROC or pids.max.
final class DriverThread: @unchecked Sendable {
    // Allocated, not a stored sem_t: a semaphore needs a fixed address.
    private let gate = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    private var task: Task?

    private init() { sem_init(gate, 0, 0) }
    deinit { sem_destroy(gate); gate.deallocate() }

    /// A parked driver thread, or nil when the host will not give one.
    static func spawn() -> DriverThread? {
        let d = DriverThread()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setstacksize(&attr, 1 << 20)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var th = pthread_t()
        let box = Unmanaged.passRetained(d).toOpaque()
        let rc = pthread_create(&th, &attr, { p in
            let d = Unmanaged<DriverThread>.fromOpaque(p!).takeRetainedValue()
            while sem_wait(d.gate) != 0 {}
            if let t = d.task { d.task = nil; t.driverMain() }
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<DriverThread>.fromOpaque(box).release()
            return nil
        }
        return d
    }

    /// Lets the thread drive `t`.
    func run(_ t: Task) { task = t; sem_post(gate) }

    /// Lets the thread end without driving anything.
    func cancel() { task = nil; sem_post(gate) }
}
