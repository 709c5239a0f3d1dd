// The Sentry's kernel: tasks, thread groups, the pid namespace, signals.
//
// Locking. `Kernel.mu` guards the emulated kernel state (tasks, thread
// groups, signal state, fd tables, pipes, the VFS caches). Syscall handlers
// run with it held and give it up only where this file and the code say:
//
//   - blocked, on a futex word of the task's own (Task.parkWord,
//     CMoat/park.c) or in a host poll for host-backed files (Task.block,
//     Task.hostPoll); a task woken while its waker holds mu is woken when
//     the waker releases it ("Waking after unlock" below). A fast-path
//     task blocked in a futex wait sleeps on its stub's listener instead,
//     and its waker, holding mu, answers the stub's call itself
//     (Task.wakeAnswering): the stub then runs while its driver, still
//     inside the handler, sleeps on until the stub's next call; the
//     driver takes mu before it looks at anything the answer changed;
//   - around work that touches only the calling task's own platform thread
//     and values it copied out of shared state (Task.withoutKernelLock):
//     reading a path or writing a stat result in application memory
//     (stat, lstat, newfstatat), and pread64 of a Gofer-donated regular
//     file, whose description stays pinned by a reference meanwhile, so a
//     concurrent close cannot close its host fd (HostFileFD.preadUnlocked);
//   - never at all, for the calls of `LockFree` (Syscalls/Dispatch.swift):
//     getpid, gettid, getppid, get[e]uid, get[e]gid and sched_yield read
//     only what is fixed for the task's life, published atomically, or
//     written by the task's own calls alone, and a driver thread serves
//     them between two resumes of its stub without taking the lock.
//
// Only the ptrace platform's tasks give the lock up around memory copies:
// their copies are host process_vm_readv/writev on their own stub thread.
// A KVM task's copies walk its address space's tables, which other threads
// change under mu, so its calls keep the lock throughout.
//
// Lock order (ranks in Kernel/LockOrder.swift; a thread takes a lock only
// above every lock it holds, and debug builds trap on a violation):
//
//   10  Kernel.mu
//   60  Log's lock (leaf)
//
// Leaf locks of the modules below the Sentry, which may be taken under mu
// and, living where the Sentry is out of reach, never take it: the
// GoferClient's channel lock, Platform's StubFactory lock, the KVM
// platform's machine, vCPU and address-space locks.
//
// The finer locks that will split mu (task, thread group, fd table, file
// description, mount and dentry cache, inode, pipe, futex bucket, epoll)
// get ranks below 60 in that order, outermost first. A lock held while mu
// is given up and taken again (a file description's offset lock across a
// read, as Linux's f_pos_lock) must rank below mu's 10.
// Platform calls that do not touch shared state (ptrace resume, register
// access) run without mu.

import CMoat
import Glibc
import Platform
import Synchronization

final class Kernel: @unchecked Sendable {
    static var shared: Kernel!

    var mu = pthread_mutex_t()
    let vfs: VFS
    let bootMonotonicNs: Int64
    let bootRealtimeNs: Int64
    /// The sandbox's UTS namespace; unshare(CLONE_NEWUTS) gives a task its own.
    let rootUTS = UTSNamespace(inum: UTSNamespace.rootInode)
    var hostname: [UInt8] { get { rootUTS.hostname } set { rootUTS.hostname = newValue } }
    /// Extended attributes of every file (see FileExtras.swift).
    let xattrs = XattrStore()
    let inotify = InotifyRegistry()
    /// The sandbox's keys and keyrings (Kernel/Keyrings.swift).
    let keyStore = KeyStore()
    let fanotify = FanotifyRegistry()
    let ptys = PtyTable()
    /// The sandbox's IPC namespace; CLONE_NEWIPC gives a task another.
    let ipc = IPCNamespace(inum: IPCNamespace.rootInode)
    /// The sandbox's cgroup v2 tree (Kernel/Cgroups.swift); its root is the container's cgroup.
    let cgroups = CgroupHierarchy()
    /// Attached SysV segments of every namespace: (address space, address)
    /// -> the namespace and id. Kernel-wide, as an attachment outlives its
    /// process's move to another namespace (Syscalls/IPC.swift).
    var shmAttached: [FutexTable.Key: (ns: IPCNamespace, id: Int32)] = [:]
    /// Where files without a name in any mounted tree live (memfd_create).
    lazy var anonMount: Mount = {
        let d = Dentry(name: [47], parent: nil, inode: TmpfsInode(mode: S_IFDIR_ | 0o1777, dev: 8))
        return Mount(root: d, mountpoint: nil, parent: nil, fsType: "tmpfs", source: "memfd")
    }()
    var domainname: [UInt8] { get { rootUTS.domainname } set { rootUTS.domainname = newValue } }
    /// The container's capability configuration and no_new_privs, for
    /// processes `moat exec` starts (SentryConfig).
    var containerCaps: CapabilitySets? = nil
    var containerNoNewPrivs = false
    /// /proc/[pid]/uid_map and gid_map lines (container id, host id, count).
    var uidMap: [(UInt32, UInt32, UInt32)] = [(0, 0, 4294967295)]
    var gidMap: [(UInt32, UInt32, UInt32)] = [(0, 0, 4294967295)]
    /// /proc/sys (FSImpl/ProcSys.swift). Guarded by mu.
    lazy var sysctl = SysctlTable(kernel: self)
    var strace = false
    /// The foreground process group of the emulated terminal.
    var foregroundPgid: Int32 = 1

    /// Guarded by mu.
    var tasks: [Int32: Task] = [:]
    var threadGroups: [Int32: ThreadGroup] = [:]
    var nextPid: Int32 = 1
    /// The files name_to_handle_at made handles for (Syscalls/FileHandles.swift).
    let fileHandles = FileHandleTable()
    /// The next pid to try in each pid namespace but the root (PidNamespaces.swift).
    var nextNamespacePid: [Int32: Int32] = [:]
    /// The parent of each pid namespace made inside another one but the
    /// root (PidNamespaces.swift); the others' parent is the root.
    var pidNSParent: [Int32: Int32] = [:]
    /// The numbers a pid namespace gives the tasks of the namespaces
    /// below it (not its own: those are their root number's low bits),
    /// by namespace: root number to number, and number to root number.
    var nestedPids: [Int32: [Int32: Int32]] = [:]
    var nestedRoots: [Int32: [Int32: Int32]] = [:]
    /// How many NamespaceFiles name each pid namespace but the root: those
    /// indexes are not reused. Its own lock: a file goes away whenever its
    /// last reference does, with or without mu.
    let pidNamespaceFiles = Mutex<[Int32: Int]>([:])
    /// The lowest nice value of the sandbox's tasks, 0 or below (Kernel/HostScheduling.swift).
    /// Guarded by: mu
    var niceFloor: Int32 = 0
    /// User namespaces alive below the initial one (user.max_user_namespaces).
    let userNamespaceCount = Mutex<Int>(0)
    var initTG: ThreadGroup?
    var liveTasks = 0
    lazy var timers = TimerService(kernel: self)
    /// Guarded by mu.
    let unixNames = UnixNames()
    /// Guarded by mu.
    let fileLocks = FileLocks()
    /// CPUs to spread pinned tasks over: the ones the Sentry may use (a
    /// container's cpuset may exclude some), by number. Fewer than 2: no
    /// pinning.
    let allowedCPUs: [Int32] = {
        var buf = [Int32](repeating: 0, count: 1024)
        let n = Int(moat_allowed_cpus(&buf, 1024))
        return Array(buf.prefix(n))
    }()
    /// Serve the fast set through seccomp notification (FastPath.swift).
    var fastPath = true

    /// Pod mode (Kernel/Pod.swift): the containers of the pod, by id.
    /// Guarded by mu.
    var podContainers: [String: PodContainer] = [:]
    var podMode = false

    /// Set when init has exited: the sandbox is over.
    var finished = false
    var initStatus: Int32 = 0
    private var doneCond = pthread_cond_t()

    init(vfs: VFS) {
        self.vfs = vfs
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        // PTHREAD_MUTEX_ADAPTIVE_NP: a locker spins a little (glibc's
        // mutex_spin_count tries) before sleeping in the host. Two drivers
        // serving a pipe or a socket pair take mu by turns, each for a few
        // microseconds; slept on, every hand-over was a FUTEX_WAIT, a
        // FUTEX_WAKE and two context switches, and left the mutex marked
        // contended so that the next unlock made a FUTEX_WAKE to nobody
        // (bench/results/2026-12-06-wakeup-profile.md).
        pthread_mutexattr_settype(&attr, 3 /* PTHREAD_MUTEX_ADAPTIVE_NP */)
        pthread_mutex_init(&mu, &attr)
        var cattr = pthread_condattr_t()
        pthread_condattr_init(&cattr)
        pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC)
        pthread_cond_init(&doneCond, &cattr)
        bootMonotonicNs = Kernel.now(CLOCK_MONOTONIC)
        bootRealtimeNs = Kernel.now(CLOCK_REALTIME)
    }

    @inline(__always) func lock() { LockOrder.willAcquire(.kernel); pthread_mutex_lock(&mu); holder = pthread_self() }

    /// Releases mu, then wakes the tasks woken while it was held (see
    /// `deferredWakes`).
    @inline(__always) func unlock() {
        holder = 0
        LockOrder.released(.kernel)
        if deferredWakes.isEmpty { pthread_mutex_unlock(&mu); return }
        let woken = takeDeferredWakes()
        pthread_mutex_unlock(&mu)
        for (t, mode) in woken { t.wakeNow(mode) }
    }

    // MARK: - Waking after unlock
    //
    // A task asleep in `Task.block` (on its park word, having given up mu)
    // woken while its waker still holds mu (a pipe write, a futex wake, a
    // signal) would run at once, find mu taken, sleep again on mu and be
    // woken a second time by the waker's unlock: two more host futex calls
    // and one more context switch on the path from the waker's syscall to
    // the sleeper's return (bench/results/2026-12-06-wakeup-profile.md).
    // So a wake made with mu held is recorded here and done by `unlock`,
    // right after the mutex is released: the sleeper finds mu free. It is
    // still correct to wake late: the sleeper registered its wait with mu
    // held before the waker could change anything, and every caller of
    // `block` re-checks its condition (a wake arriving after the sleeper
    // has moved on to another wait is a spurious one, as a timeout is).

    /// Tasks woken (Task.wake) by the current holder of mu, with how each
    /// was waiting then; woken for real once mu is released. Guarded by mu.
    private(set) var deferredWakes: [(Task, Task.WaitMode)] = []
    /// The thread that took mu through `lock()` (0 while nobody did, or
    /// while mu was taken back by a condition-variable wait that is not
    /// `wait(on:deadline:)`): only the holder may defer a wake.
    private var holder: pthread_t = 0

    /// Whether the calling thread holds mu (through `lock()`).
    @inline(__always) var callerHoldsLock: Bool { holder != 0 && pthread_equal(holder, pthread_self()) != 0 }

    /// Requires: mu held by the caller (`callerHoldsLock`).
    func deferWake(_ t: Task, _ mode: Task.WaitMode) {
        deferredWakes.append((t, mode))
    }

    /// Empties the list (and clears the tasks' marks) with mu held.
    private func takeDeferredWakes() -> [(Task, Task.WaitMode)] {
        let woken = deferredWakes
        deferredWakes.removeAll(keepingCapacity: true)
        for (t, _) in woken { t.wakeDeferred = false }
        return woken
    }

    /// Waits on `cond` with mu (held through `lock()`), as
    /// pthread_cond_(timed)wait, after doing the wakes this holder deferred:
    /// the wait releases mu without `unlock`, and a task this thread woke
    /// must not sleep until this one wakes. Requires: mu held.
    func wait(on cond: UnsafeMutablePointer<pthread_cond_t>, deadline: timespec? = nil) {
        if !deferredWakes.isEmpty {
            for (t, mode) in takeDeferredWakes() { t.wakeNow(mode) }
        }
        holder = 0
        if var ts = deadline {
            pthread_cond_timedwait(cond, &mu, &ts)
        } else {
            pthread_cond_wait(cond, &mu)
        }
        holder = pthread_self()
    }

    static func now(_ clock: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Allocates a pid not used by any task, thread group, process group or
    /// session, in pid namespace `namespace` (its root number: the
    /// namespace's own is its low 22 bits, PidNamespaces.swift), and a
    /// number in each namespace above it (but, in a pod, the root).
    /// Requires: mu held.
    func allocPid(namespace ns: Int32 = 0) -> Int32? { try? allocPid(namespace: ns, wanted: [], privileged: false).get() }

    /// allocPid with the numbers clone3's set_tid asks for: `wanted[i]` in
    /// the i-th namespace from `ns` up (Linux's alloc_pid checks: EINVAL,
    /// EPERM without `privileged`, EEXIST for a number in use).
    func allocPid(namespace ns: Int32, wanted: [Int32], privileged: Bool) -> Result<Int32, Errno> {
        var levels: [Int32] = [ns]                                      // ns, then each one above it
        while let l = levels.last, l != 0 { levels.append(parentPidNS(l)) }
        if wanted.count > levels.count { return .failure(Errno(EINVAL)) }
        for (i, w) in wanted.enumerated() {
            let l = levels[i]
            if w < 1 || w >= pidMax { return .failure(Errno(EINVAL)) }
            if w != 1 && l != 0 && namespaceInit(of: PidNS.base(l)) == nil { return .failure(Errno(EINVAL)) }
            if !privileged { return .failure(Errno(EPERM)) }
            if pidInUse(PidNS.base(l) | w) || nestedRoots[l]?[w].map(pidInUse) == true { return .failure(Errno(EEXIST)) }
        }
        func number(_ i: Int) -> Int32? { i < wanted.count ? wanted[i] : allocNumber(in: levels[i]) }
        guard let local = number(0) else { return .failure(Errno(EAGAIN)) }
        let p = PidNS.base(ns) | local
        nestedRoots[ns]?[local] = nil                                   // a departed task's entry
        for (i, up) in levels.enumerated().dropFirst() where up != 0 || !podMode {
            if let old = nestedPids[up]?[p], nestedRoots[up]?[old] == p { nestedRoots[up]![old] = nil }
            guard let n = number(i) else { return .failure(Errno(EAGAIN)) }
            nestedPids[up, default: [:]][p] = n
            nestedRoots[up, default: [:]][n] = p
        }
        return .success(p)
    }

    /// A number namespace `ns` gives no live task, process group or
    /// session, its own or one below. Requires: mu held.
    private func allocNumber(in ns: Int32) -> Int32? {
        var next = ns == 0 ? nextPid : nextNamespacePid[ns] ?? 1
        defer { if ns == 0 { nextPid = next } else { nextNamespacePid[ns] = next } }
        for _ in 1..<Int(pidMax) {
            if next >= pidMax { next = 300 }                                // ns_last_pid may leave it at pid_max
            let n = next, p = PidNS.base(ns) | n
            next = next >= pidMax - 1 ? 300 : next + 1
            if pidInUse(p) { continue }
            if let below = nestedRoots[ns]?[n], pidInUse(below) { continue }
            return n
        }
        return nil
    }

    private func pidInUse(_ p: Int32) -> Bool { tasks[p] != nil || threadGroups[p] != nil || pidInUseAsGroup(p) }
    let pidMax: Int32 = 4_194_304

    /// kernel.ns_last_pid: the last pid `allocPid` gave out (or was told
    /// it gave out) in `t`'s pid namespace (the root's without a task).
    /// Requires: mu held.
    func lastPid(inNamespaceOf t: Task?) -> Int32 {
        let ns = t.map { PidNS.index($0.tg.tgid) } ?? 0
        return (ns == 0 ? nextPid : nextNamespacePid[ns] ?? 1) - 1
    }

    /// A write of kernel.ns_last_pid (0...pid_max): the next pid tried in
    /// `t`'s namespace is the one after `last` (past pid_max, the
    /// wrap-around's 300). Requires: mu held.
    func setLastPid(_ last: Int32, inNamespaceOf t: Task?) {
        let ns = t.map { PidNS.index($0.tg.tgid) } ?? 0
        if ns == 0 { nextPid = last + 1 } else { nextNamespacePid[ns] = last + 1 }
    }

    private func pidInUseAsGroup(_ p: Int32) -> Bool {
        for tg in threadGroups.values where tg.pgid == p || tg.sid == p { return true }
        return false
    }

    /// Blocks the calling (non-task) thread until init exits; returns its
    /// wait status translated to a shell exit code.
    func waitForInit() -> Int32 {
        lock()
        while !finished { wait(on: &doneCond) }
        let s = initStatus
        unlock()
        return s
    }

    /// Pod mode: the pod is stopped; `waitForInit` returns. Requires: mu held.
    func podStopped() {
        finished = true
        initStatus = 0
        pthread_cond_broadcast(&doneCond)
    }

    /// Requires: mu held.
    func initExited(status: Int32) {
        finished = true
        initStatus = status
        // Every other process in the pid namespace dies with init.
        // The sandbox ends: a PTRACE_EVENT_EXIT stop of a process already
        // exiting (which no signal ends) must not outlive it either.
        for tg in threadGroups.values {
            if tg.exiting { tg.endExitStops() } else { tg.beginExit(code: Int32(SIGKILL) /* killed */, bySignal: true) }
        }
        pthread_cond_broadcast(&doneCond)
    }

    func threadGroup(_ pid: Int32) -> ThreadGroup? { threadGroups[pid] }
}

/// Host and domain name as uname(2) reports them: one per UTS namespace.
final class UTSNamespace {
    /// Linux's inode number of the initial UTS namespace.
    static let rootInode: UInt64 = 0xEFFF_FFFE
    var hostname: [UInt8] = Array("moat".utf8) { didSet { changed(hostname: true) } }
    var domainname: [UInt8] = Array("(none)".utf8) { didSet { changed(hostname: false) } }
    /// How many times each name changed, and who polls its /proc/sys file:
    /// a change makes those files report POLLERR|POLLPRI once to each open
    /// description (Linux's uts_proc_notify).
    private(set) var hostnameChanges: UInt64 = 0, domainnameChanges: UInt64 = 0
    var pollers = WaitQueue()
    private func changed(hostname: Bool) {
        if hostname { hostnameChanges += 1 } else { domainnameChanges += 1 }
        pollers.notifyAll()
    }
    /// Its /proc/PID/ns/uts inode number (Kernel/IPCNamespaces.swift).
    let inum: UInt64
    /// The user namespace that owns it (sethostname needs CAP_SYS_ADMIN there).
    var owner: UserNamespace = .root
    init(inum: UInt64 = newNamespaceInode()) { self.inum = inum }
    /// A new namespace with this one's names (CLONE_NEWUTS), owned by `owner`.
    func copy(owner: UserNamespace) -> UTSNamespace {
        let u = UTSNamespace(); u.hostname = hostname; u.domainname = domainname; u.owner = owner
        return u
    }
}
