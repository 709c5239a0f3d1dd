import CMoat
import Glibc
import Synchronization

/// Signal dispositions, shared between thread groups cloned with CLONE_SIGHAND.
final class SignalHandlers {
    var actions = [SigAction](repeating: SigAction(), count: 65)
    func copy() -> SignalHandlers { let h = SignalHandlers(); h.actions = actions; return h }
}

struct SigAction {
    var handler: UInt64 = 0   // SIG_DFL = 0, SIG_IGN = 1
    var flags: UInt64 = 0
    var restorer: UInt64 = 0
    var mask: UInt64 = 0
}

struct RLimit { var cur: UInt64; var max: UInt64 }

/// A process: what Linux calls a thread group.
final class ThreadGroup {
    let tgid: Int32
    /// Which process this is among all the Sentry has made (1, 2, ...):
    /// /proc/PID's inode number carries it, so that a reused pid names
    /// another directory, as Linux's fresh proc inodes do.
    let serial: UInt64
    private nonisolated(unsafe) static var lastSerial: UInt64 = 0
    unowned let kernel: Kernel
    var tasks: [Task] = []
    var parent: ThreadGroup? { didSet { parentTgid.store(parent?.tgid ?? 0, ordering: .relaxed) } }
    /// The parent's (root) pid, or 0: written with `parent` (under mu),
    /// read without any lock by getppid (LockFree in Syscalls/Dispatch.swift).
    /// A class reference cannot be read while another thread replaces it;
    /// this word can, and it is all getppid needs.
    let parentTgid = Atomic<Int32>(0)
    var children: [ThreadGroup] = []
    /// The process keyring (Syscalls/Keys.swift), made on first use.
    var processKeyring: Key?
    var pgid: Int32
    var sid: Int32
    /// The credentials the process shows (/proc/PID/status, kill's checks):
    /// its leader's. Each task has its own (Task.creds).
    var creds: Credentials { leader?.creds ?? tasks.first?.creds ?? lastCreds }
    /// The leader's credentials as last set, for a group with no task left.
    var lastCreds = Credentials()
    var handlers: SignalHandlers
    var sharedPending = SignalQueue()
    var rlimits: [RLimit]
    /// /proc/PID/oom_score_adj (-1000...1000), inherited by a child, and the
    /// lowest value a writer without CAP_SYS_RESOURCE may set.
    var oomScoreAdj: Int32 = 0, oomScoreAdjMin: Int32 = 0
    /// The signal to send the parent at exit (SIGCHLD normally).
    var exitSignal: Int32 = SIGCHLD
    var subreaper = false
    /// The process's cgroup (Kernel/Cgroups.swift): its parent's at fork.
    var cgroup: Cgroup
    /// The stub process's spare thread that new stub threads and processes
    /// are cloned from (FastPath.swift): (host pid of the stub process it is
    /// in, its host tid), or zeros.
    var cloneSpare: (pid: pid_t, tid: pid_t) = (0, 0)
    /// The host files the stub process keeps open for big reads and writes
    /// (Kernel/StubFD.swift), least recently used first. Guarded by Kernel.mu.
    var stubFDs: [StubFD] = []
    /// timer_create timers, by id (not inherited by fork, gone at exec).
    var posixTimers: [Int32: PosixTimer] = [:]
    var membarrierRegistered = false
    /// PR_SET_PDEATHSIG (cleared by fork, as in Linux).
    var parentDeathSignal: Int32 = 0
    /// PR_GET_DUMPABLE (Linux keeps it with the memory map): 1, or 0 after
    /// PR_SET_DUMPABLE(0) or an exec that changed the effective ids; fork
    /// copies it.
    var dumpable: Int32 = 1
    /// /proc/PID/coredump_filter: which kinds of mapping a core dump
    /// writes (Linux's default 0x33: anonymous private and shared memory,
    /// ELF headers, private huge pages). Kept by fork and execve.
    var coredumpFilter: UInt32 = 0x33
    /// The thread of `parent` that made this process (Linux's real_parent
    /// is a thread): its exit fires PR_SET_PDEATHSIG even while the rest
    /// of the parent runs on. Guarded by Kernel.mu.
    weak var parentThread: Task?
    var comm: [UInt8] = []
    /// Whether the process has run execve (setpgid on such a child is EACCES).
    var didExec = false

    // Exit state. Guarded by Kernel.mu.
    var exiting = false
    var exitCode: Int32 = 0        // wait status
    var zombie = false
    var reaped = false
    /// A task of the group attached to a process that is not its child, or
    /// to a thread that is not a leader (wait then looks beyond the
    /// children, and at threads by tid, for ptrace stops).
    var tracesNonChildren = false
    /// The leader's name once it has left (shown for a zombie).
    var exitComm: [UInt8] = []
    /// The leader once it has left, until the group is reaped: Linux keeps
    /// a zombie leader in its pid table, and the sched_* calls answer for
    /// it (Syscalls/Identity.swift's schedTarget). Dropped with the group.
    var exitedLeader: Task?
    /// /proc/PID/cmdline of a group with no task: the pod's init (PidNamespaces.swift).
    var fixedCmdline: [UInt8]? = nil
    var isPodInit: Bool { fixedCmdline != nil }
    /// Job control: stopped by a stop signal, and not yet reported to wait.
    var stopped = false
    var stopSignal: Int32 = 0
    var stopReported = true
    var continuedReported = true
    var childWaiters = WaitQueue()
    /// Pidfds polling for this process's exit (FSImpl/PidFD.swift).
    var exitWaiters = WaitQueue()
    let startNs: Int64
    /// CPU time the host charged to the process's stub (all of it counts
    /// as user time: the host does not tell the Sentry's share apart).
    var utimeNs: Int64 = 0
    var stimeNs: Int64 = 0
    private var cpuHostPid: pid_t = 0
    var childUtimeNs: Int64 = 0
    var childStimeNs: Int64 = 0
    /// Peak resident set in KiB (getrusage's ru_maxrss): the process's own,
    /// sampled when asked and as its last thread leaves (Time.swift's
    /// sampleMaxRSS), and the largest of its waited-for descendants'.
    var maxRSSKB: Int64 = 0
    var childMaxRSSKB: Int64 = 0
    /// The threads /proc counts: a zombie still has its leader.
    var threadCount: Int { tasks.isEmpty && !reaped ? 1 : tasks.count }
    /// The I/O counts of threads that have left (/proc/PID/io adds them).
    var exitedIO = IOAccounting()
    /// /proc/PID/io: every thread's counts, the departed ones' too.
    var io: IOAccounting { tasks.reduce(into: exitedIO) { $0.add($1.io) } }

    init(kernel: Kernel, tgid: Int32, parent: ThreadGroup?, handlers: SignalHandlers) {
        self.kernel = kernel
        self.tgid = tgid
        ThreadGroup.lastSerial += 1
        serial = ThreadGroup.lastSerial
        self.parent = parent
        self.handlers = handlers
        self.cgroup = parent?.cgroup ?? kernel.cgroups.root
        self.pgid = parent?.pgid ?? tgid
        self.sid = parent?.sid ?? tgid
        self.startNs = Kernel.now(CLOCK_MONOTONIC)
        if let p = parent {
            lastCreds = p.creds
            rlimits = p.rlimits
            exitSignal = SIGCHLD
        } else {
            rlimits = ThreadGroup.defaultRlimits()
        }
        parentTgid.store(parent?.tgid ?? 0, ordering: .relaxed)   // didSet does not run in init
    }

    static func defaultRlimits() -> [RLimit] {
        let inf = UInt64.max
        var r = [RLimit](repeating: RLimit(cur: inf, max: inf), count: 16)
        r[RL_STACK] = RLimit(cur: 8 << 20, max: inf)
        r[RL_CORE] = RLimit(cur: 0, max: inf)
        // The open-file limit of whoever started the sandbox, as runsc and
        // a process started from a shell inherit it (Linux's own default,
        // 1024, when it cannot be read), the hard one within fs.nr_open's
        // default and the soft one within Linux's INR_OPEN_MAX (4096): a
        // program finds descriptors past 1024 as from a shell, while one
        // that opens files until EMFILE (LTP's fork09 under a launcher's
        // 20,000) stays quick; it may raise the soft limit to the hard one.
        var host = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &host) == 0 {
            let hard = min(UInt64(host.rlim_max), 1 << 20)
            r[RL_NOFILE] = RLimit(cur: min(UInt64(host.rlim_cur), hard, 4096), max: hard)
        } else {
            r[RL_NOFILE] = RLimit(cur: 1024, max: 1 << 20)
        }
        r[RL_NPROC] = RLimit(cur: 0x3fffff, max: 0x3fffff)
        r[RL_SIGPENDING] = RLimit(cur: 0x3fffff, max: 0x3fffff)
        r[RL_MEMLOCK] = RLimit(cur: 8 << 20, max: 8 << 20)
        r[RL_MSGQUEUE] = RLimit(cur: 819200, max: 819200)
        r[13] = RLimit(cur: 0, max: 0)                                        // RLIMIT_NICE, as Linux's init has
        r[14] = RLimit(cur: 0, max: 0)                                        // RLIMIT_RTPRIO: no real-time without CAP_SYS_NICE
        return r
    }

    var leader: Task? { tasks.first { $0.tid == tgid } ?? tasks.first }

    /// Starts the death of the whole group: every thread is told to exit.
    /// Requires: Kernel.mu held.
    func beginExit(code: Int32, bySignal: Bool) {
        // (A signal to a group already exiting is dropped, as Linux's
        // prepare_signal drops it: it ends no PTRACE_EVENT_EXIT stop.)
        if exiting { return }
        exiting = true
        // A signal's status keeps 0x80 when a core was dumped (WCOREDUMP).
        exitCode = bySignal ? (code & 0xff) : ((code & 0xff) << 8)
        for t in tasks { t.requestExit() }
        // A thread already in its PTRACE_EVENT_EXIT stop (its own exit, or
        // another thread's execve) is woken out of it, as by Linux's zap.
        endExitStops()
    }

    /// Called by the last task of the group as it leaves. Requires: Kernel.mu held.
    func finishExit() {
        _ = sampleCPU()
        zombie = true
        exitWaiters.notifyAll()
        kernel.cgroupMembershipChanged()                    // cgroup.events: perhaps no longer populated
        if let k = processKeyring { kernel.keyStore.release(k); processKeyring = nil }
        kernel.fileLocks.releaseAll(.process(tgid))
        detachTracees()
        // Reparent children to init (or the nearest subreaper).
        let k = kernel
        k.applicationNamespaceInitExited(self)
        if let reaper = findReaper(), reaper !== self {
            for c in children {
                c.parent = reaper
                c.parentThread = reaper.tasks.first { !$0.exited }
                reaper.children.append(c)
                if c.zombie { reaper.notifyChildEvent(c) }
                // The pod's init reaps at once (it has no task to wait).
                if c.zombie && reaper.isPodInit { reaper.reap(c, waited: false); continue }
                // PR_SET_PDEATHSIG: the child learns its parent died.
                if c.parentDeathSignal != 0 && !c.zombie && !c.exiting {
                    c.sendSignal(c.parentDeathSignal, SigInfo(signo: c.parentDeathSignal))
                }
            }
        } else if k.podMode || PidNS.index(tgid) != 0 {
            // No init left in the namespace: orphans are reaped as they
            // exit, as the processes `exec` adds are.
            for c in children {
                c.parent = nil
                if c.zombie { k.threadGroups[c.tgid] = nil; c.exitedLeader = nil }
            }
        }
        children.removeAll()
        if k.podMode { k.podProcessExited(self) }
        if !k.podMode && (tgid == 1 || self === k.initTG) {
            k.initExited(status: exitCode)
        }
        // Traced by another process: the tracer hears of the exit too and
        // collects it before the parent may (waitForChild, Process.swift).
        if let tr = exitedLeader?.ptrace?.tracer, tr !== parent {
            tr.notifyChildEvent(self)
            var info = SigInfo(signo: SIGCHLD)
            info.code = childCode(); info.pid = tr.pidSeen(tgid); info.uid = creds.uid; info.status = childStatusValue()
            tr.sendSignal(SIGCHLD, info)
        }
        if let p = parent {
            p.notifyChildEvent(self)
            if exitSignal > 0 {
                var info = SigInfo(signo: SIGCHLD)
                info.code = childCode()
                info.pid = p.pidSeen(tgid)                                     // as the parent numbers it
                info.uid = p.creds.userNS.showUID(creds.uid)
                info.status = childStatusValue()
                p.sendSignal(exitSignal, info)
            }
            // Auto-reap when the parent ignores SIGCHLD (SA_NOCLDWAIT or SIG_IGN).
            let act = p.handlers.actions[Int(SIGCHLD)]
            if act.handler == 1 || act.flags & UInt64(SA_NOCLDWAIT) != 0 {
                p.reap(self, waited: false)
            }
        } else {
            k.threadGroups[tgid] = nil
            exitedLeader = nil
        }
    }

    /// A thread of this group has left while others run on: the children
    /// it made now belong to a thread still alive, and each that asked for
    /// PR_SET_PDEATHSIG gets its signal, as Linux's forget_original_parent
    /// does on every thread's exit. Requires: Kernel.mu held.
    func parentThreadLeft(_ gone: Task) {
        guard let heir = tasks.first(where: { !$0.exited && $0 !== gone }) else { return }
        for c in children where c.parentThread === gone {
            c.parentThread = heir
            if c.parentDeathSignal != 0 && !c.zombie && !c.exiting {
                c.sendSignal(c.parentDeathSignal, SigInfo(signo: c.parentDeathSignal))
            }
        }
    }

    func findReaper() -> ThreadGroup? {
        // A subreaper of the process's own namespace (Linux looks no higher).
        var p = parent
        while let q = p, PidNS.index(q.tgid) == PidNS.index(tgid) {
            if q.subreaper && !q.exiting { return q }
            p = q.parent
        }
        // In a pod: the init of the process's pid namespace (a container's
        // first process, or the pod's init).
        // In an application's namespace: its init, or none when it has exited.
        if kernel.podMode || PidNS.index(tgid) != 0 { return kernel.namespaceInit(of: tgid) }
        return kernel.initTG.flatMap { $0.exiting ? nil : $0 }
    }

    func childCode() -> Int32 {
        if exitCode & 0x7f == 0 { return 1 } // CLD_EXITED
        return (exitCode & 0x80) != 0 ? 3 : 2 // CLD_DUMPED : CLD_KILLED
    }
    func childStatusValue() -> Int32 {
        exitCode & 0x7f == 0 ? (exitCode >> 8) & 0xff : exitCode & 0x7f
    }

    func notifyChildEvent(_ c: ThreadGroup) { childWaiters.notifyAll() }

    /// The process's CPU time so far: its stub's host process CPU clock
    /// (which any process may read), kept so it outlives the stub. The
    /// growth since the last sample is shared among the threads running
    /// application code now (all of them if none is), as the host shares
    /// CPUs among them (Task.cpuShares), which gives each task its
    /// CLOCK_THREAD_CPUTIME_ID: the host clock of another process's thread
    /// is not readable. Requires: Kernel.mu held.
    func sampleCPU() -> Int64 {
        if KVMTasks.enabled { return sampleKVMCPU() }
        if let h = tasks.first?.hostPid { cpuHostPid = h }
        if zombie || cpuHostPid <= 0 { return utimeNs }
        var ts = timespec()
        let clock = clockid_t((~Int32(cpuHostPid)) << 3 | 2)   // the process's CPUCLOCK_SCHED
        guard clock_gettime(clock, &ts) == 0 else { return utimeNs }
        let now = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        let delta = now - utimeNs
        if delta <= 0 { return utimeNs }
        utimeNs = now
        let running = tasks.filter { $0.inApp }
        let share = running.isEmpty ? tasks : running
        for (t, part) in zip(share, Task.cpuShares(share)) { t.cpuNs += Int64(Double(delta) * part) }
        return utimeNs
    }

    /// CPU time of threads that have exited (KVM platform).
    var exitedCPUNs: Int64 = 0

    /// sampleCPU on the KVM platform: there is no host process per
    /// application process; each task's driver thread runs its guest code
    /// (inside KVM_RUN) and its syscalls, so that thread's host CPU clock
    /// is the task's CPU time (a driver thread serves one task and is made
    /// for it), readable by the Sentry as one of its own threads.
    private func sampleKVMCPU() -> Int64 {
        if zombie { return utimeNs }
        var sum = exitedCPUNs
        for t in tasks {
            if t.driverTid > 0 {
                var ts = timespec()
                // Linux's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
                if clock_gettime(clockid_t((~Int32(t.driverTid)) << 3 | 4 | 2), &ts) == 0 {
                    t.cpuNs = max(t.cpuNs, Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
                }
            }
            sum += t.cpuNs
        }
        utimeNs = max(utimeNs, sum)
        return utimeNs
    }

    /// Removes a zombie child for good. Its usage (and its waited-for
    /// children's) counts in RUSAGE_CHILDREN only when a wait took it, as
    /// on Linux: a child reaped because SIGCHLD is ignored adds nothing.
    /// Requires: Kernel.mu held.
    func reap(_ c: ThreadGroup, waited: Bool = true) {
        c.reaped = true
        c.exitWaiters.notifyAll()
        children.removeAll { $0 === c }
        if waited {
            childUtimeNs += c.utimeNs + c.childUtimeNs
            childStimeNs += c.stimeNs + c.childStimeNs
            childMaxRSSKB = max(childMaxRSSKB, c.maxRSSKB, c.childMaxRSSKB)
        }
        kernel.threadGroups[c.tgid] = nil
        c.exitedLeader = nil                          // (it refers back to c)
    }

    /// Sends a process-directed signal. Requires: Kernel.mu held.
    func sendSignal(_ sig: Int32, _ info: SigInfo) {
        if exiting || zombie || isPodInit { return }
        if sig == SIGKILL {
            beginExit(code: SIGKILL, bySignal: true)
            return
        }
        if sig == SIGCONT {
            sharedPending.remove(mask: stopSignalsMask)
            for t in tasks { t.pending.remove(mask: stopSignalsMask) }
            if stopped {
                stopped = false
                continuedReported = false
                parent?.notifyChildEvent(self)
                if let p = parent {
                    var ci = SigInfo(signo: SIGCHLD)
                    ci.code = 6 // CLD_CONTINUED
                    ci.pid = p.pidSeen(tgid); ci.status = SIGCONT
                    if p.handlers.actions[Int(SIGCHLD)].flags & UInt64(SA_NOCLDSTOP) == 0 {
                        p.sendSignal(SIGCHLD, ci)
                    }
                }
                for t in tasks { t.kick() }
            }
        } else if sigBit(sig) & stopSignalsMask != 0 {
            sharedPending.remove(mask: sigBit(SIGCONT))
        }
        if !traced && isIgnored(sig) && !tasks.contains(where: { ($0.sigMask | $0.realBlocked) & sigBit(sig) != 0 }) { return }
        sharedPending.add(sig, info)
        // Wake a thread that can take it; if all block it, wake them all so
        // that sigtimedwait and signalfd readers see it. The CPU-time timers'
        // signals go to a thread running application code when there is
        // one: Linux sends them from the tick of the thread that used the
        // time, which takes them first (so a busy worker, not the main
        // thread asleep in a join, gets ITIMER_PROF's SIGPROF).
        let bit = sigBit(sig), cpuTimer = sig == SIGPROF || sig == SIGVTALRM
        if let t = (cpuTimer ? tasks.first { $0.inApp && $0.sigMask & bit == 0 } : nil) ?? tasks.first(where: { $0.sigMask & bit == 0 }) {
            t.kick()
        } else {
            for t in tasks { t.wake() }
        }
    }

    func isIgnored(_ sig: Int32) -> Bool {
        let a = handlers.actions[Int(sig)]
        if a.handler == 1 { return true }
        if a.handler == 0 { return defaultAction(sig) == .ignore }
        return false
    }
}

/// What a wait queue wakes: a task, or an epoll entry that listens to its
/// file for as long as it is registered (Syscalls/Epoll.swift).
protocol Waiter: AnyObject {
    func wake()
    /// Told on joining a queue: an epoll entry learns that its file will
    /// tell it about changes (a file with no queue is scanned every wait).
    func joinedQueue()
}
extension Waiter { func joinedQueue() {} }
extension Task: Waiter {}

/// A simple wait queue: tasks blocked on an event. Requires: Kernel.mu held.
struct WaitQueue {
    private var waiters: [Waiter] = []
    /// Bumped by every notifyAll: the count of state changes a waiter was
    /// told about. Edge-triggered epoll reports a ready file again once it
    /// moved (Linux re-arms an EPOLLET entry on each wakeup of the file).
    private(set) var wakeups: UInt64 = 0
    /// Descriptions with O_ASYNC set that hear this queue (AsyncIO.swift).
    var asyncLinks: [AsyncLink] = []
    mutating func add(_ t: Waiter) { waiters.append(t); t.joinedQueue() }
    mutating func remove(_ t: Waiter) {
        if let i = waiters.firstIndex(where: { $0 === t }) { waiters.remove(at: i) }
    }
    mutating func notifyAll() {
        wakeups &+= 1
        for t in waiters { t.wake() }
        if !asyncLinks.isEmpty { signalAsync() }
    }
    var isEmpty: Bool { waiters.isEmpty }
    /// The waiters that are not tasks blocked for one call (epoll entries):
    /// a socket whose queues change (a connect) hands them on.
    var persistent: [Waiter] { waiters.filter { !($0 is Task) } }

    /// Blocks `t` on this queue until `ready()` holds: nil then; EAGAIN
    /// at once for a `nonblocking` caller, ERESTARTSYS for a signal that
    /// came first (the wait of a read with nothing to read yet).
    mutating func wait(_ t: Task, nonblocking: Bool, until ready: () -> Bool) -> Int? {
        while !ready() {
            if nonblocking { return err(EAGAIN) }
            add(t)
            let r = t.block(deadline: nil)
            remove(t)
            if r == .interrupted && !ready() { return -ERESTARTSYS }
        }
        return nil
    }
}

/// A thread's read and write counts, as Linux's task_io_accounting keeps
/// them for /proc/PID/io: the read and write calls made (syscr, syscw) and
/// the bytes they moved (rchar, wchar). Guarded by Kernel.mu.
struct IOAccounting {
    var rchar: UInt64 = 0, wchar: UInt64 = 0, syscr: UInt64 = 0, syscw: UInt64 = 0

    /// Counts syscall `nr`'s call with result `ret`, if it reads or writes.
    mutating func count(_ nr: Int, _ ret: Int) {
        switch nr {
        case 0, 17, 19, 295, 327:                           // read, pread64, readv, preadv, preadv2
            syscr += 1
            if ret > 0 { rchar += UInt64(ret) }
        case 1, 18, 20, 296, 328:                           // write, pwrite64, writev, pwritev, pwritev2
            syscw += 1
            if ret > 0 { wchar += UInt64(ret) }
        default: break
        }
    }
    mutating func add(_ o: IOAccounting) {
        rchar += o.rchar; wchar += o.wchar; syscr += o.syscr; syscw += o.syscw
    }
    /// The file's text. The storage traffic (read_bytes, write_bytes) is
    /// the host's, which the sandbox does not see: 0.
    var text: String {
        "rchar: \(rchar)\nwchar: \(wchar)\nsyscr: \(syscr)\nsyscw: \(syscw)\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"
    }
}
