// Pid namespaces. The Sentry's
// own (root) namespace holds every task; a pod's containers are each in a
// namespace of their own (CRI NamespaceMode CONTAINER), or all share the
// pod's (POD), whose pid 1 is a pod init the Sentry provides (PodInit
// below). A task has one number in its namespace and one in the root (and
// one in each namespace between, below).
//
// The kernel keys tasks and thread groups by the root number, which carries
// the namespace in its high bits: root = index << 22 | local, local in
// 1..<pidMax (2^22, Linux's largest pid_max). The root namespace is index
// 0, where both numbers are the same: a sandbox that is not a pod (the OCI
// runtime, `moat run`) never sees a difference. A task sees only tasks of
// its own namespace and those below it (application processes of a pod
// never live in the root one), so every pid a task is given is the number
// its namespace gives the process (`Task.vpid`), and every pid it names is
// its own namespace's (`Task.gpid`). /proc, kill, wait, getpid/getppid/
// gettid, clone's child tid, set_tid_address, the siginfo of a sender or
// child, process groups and sessions all go through these two.
//
// Applications' own pid namespaces (clone, clone3 or unshare with
// CLONE_NEWPID, CAP_SYS_ADMIN needed), in a sandbox that is not a pod, where
// the application runs in the root namespace: each new namespace takes a
// free index like a container's and has a parent, the namespace of the
// process that made it (Kernel.pidNSParent; the root's children have no
// entry there), up to 32 levels below the root as on Linux (ENOSPC past it;
// in a pod, EUSERS). A process has a number in its own namespace (its root
// number's low bits) and one in every namespace above it, the root's
// included: allocPid (Kernel.swift) takes one from each of those
// namespaces' counters and keeps them in Kernel.nestedPids and nestedRoots
// (namespace -> root number -> number, and back). Each namespace's numbers
// count from 1 on their own and never collide with those its own or a
// lower namespace's processes hold there, so the root namespace numbers an
// application's processes below 4194304 (pid_max) as Linux's does; only the
// kernel's maps key them by the root number (4194305 and up), which the
// root may name too. A pod's containers have no number in the root but
// their root number (the pod's runtime reads those). vpid and vpidIfSeen
// translate through the viewer's namespace (Kernel.pidNumber: 0 where the
// process is not in it or below), gpid back (Kernel.rootPid), and `sees`
// asks whether the viewer's namespace is the process's or an ancestor of it.
// The maps keep a departed task's entries until its root number or its
// number is given out again (a process group may outlive its leader); an
// index given to a new namespace drops every entry of the old one. When a
// namespace's init exits, every other process in it and below it gets
// SIGKILL and is reaped by the Sentry as it dies (Linux's init waits for
// them before it is reported dead; here its parent may see it dead first);
// orphans go to the init of their parent's namespace, and subreapers are
// looked for within it.
//
// /proc/PID/ns has the two pid links (pid, pid_for_children), the IPC,
// UTS and cgroup ones (Kernel/IPCNamespaces.swift) and the user one
// (Kernel/UserNamespaces.swift), no others: a link would tell LTP its
// namespace type can be unshared. They read pid:[N] (ipc:[N],
// uts:[N]) and open to a NamespaceFile, which stat shows as nsfs's.
// setns(2) (Syscalls/Process.swift) joins a pid namespace through such an
// fd or a pidfd: the caller's own or one below it (EINVAL otherwise), which
// sets pid_for_children (Task.childPidNS) as unshare does. The nsfs ioctls
// answer on these fds: the type, the parent (EPERM when it is above the
// caller's own namespace), the owning user namespace (the initial one for
// pid, IPC and cgroup namespaces, the creator's for UTS and user ones; EPERM
// when it is above the caller's) and a user namespace's owner uid, and
// NS_GET_{PID,TGID}_{FROM,IN}_PIDNS translate a pid between the fd's
// namespace and the caller's. /proc/PID/status has NStgid/NSpid/NSpgid/NSsid,
// a number per level from the reader's namespace down to the process's; /proc
// is numbered from its reader's namespace, not from the one of its mounter as
// on Linux, so a process of an application's namespace reading the root's
// /proc sees one number where Linux prints two.
//
// SO_PEERCRED and SCM_CREDENTIALS keep the sender's root number and give it
// to the reader as its namespace numbers it (0 when it cannot see the
// sender). A pid stored in another shared object (a System V IPC segment's
// creator and last user) is not translated: it is the number the storing
// task's namespace gave it: the objects are shared by the pod, so a
// container of another namespace reads a number of a namespace not its own.

import Glibc

enum PidNS {
    static let shift: Int32 = 22
    /// A namespace's own pid numbers (1...mask) are a root number's low bits.
    static let mask: Int32 = (1 << 22) - 1
    /// The pod's shared namespace (POD); 2...maxIndex are the containers' own.
    static let pod: Int32 = 1
    static let maxIndex: Int32 = 510
    /// How deep namespaces nest below the root (Linux's MAX_PID_NS_LEVEL).
    static let maxLevel = 32

    @inline(__always) static func index(_ rootPid: Int32) -> Int32 { rootPid >> shift }
    @inline(__always) static func base(_ index: Int32) -> Int32 { index << shift }
}

extension Task {
    /// The root number of a process this task can see, as its namespace numbers it.
    /// The root namespace (index 0) numbers every process by its root number.
    @inline(__always) func vpid(_ rootPid: Int32) -> Int32 {
        let base = tid & ~PidNS.mask
        if rootPid <= 0 { return rootPid }
        if rootPid & ~PidNS.mask == base { return rootPid & PidNS.mask }
        let n = kernel.pidNumber(rootPid, in: PidNS.index(base))
        return n != 0 ? n : rootPid & PidNS.mask
    }

    /// The number this task's namespace gives process `rootPid`, or 0 when
    /// the process is in a namespace this task cannot see (a lock owner
    /// outside, the parent of a namespace's init), as on Linux.
    func vpidIfSeen(_ rootPid: Int32) -> Int32 { kernel.pidNumber(rootPid, in: PidNS.index(tid)) }

    /// A pid this task names (a syscall argument) as the root numbers it.
    /// 0, -1 and negative process-group ids keep their sign; a number its
    /// namespace cannot hold names nothing.
    func gpid(_ p: Int32) -> Int32 {
        let ns = PidNS.index(tid)
        // The root namespace may still name a process by its root number.
        if p > 0 { return p <= PidNS.mask ? kernel.rootPid(p, in: ns) : ns == 0 ? p : Int32.max }
        if p < -1 { return p >= -PidNS.mask ? -kernel.rootPid(-p, in: ns) : ns == 0 ? p : Int32.min }
        return p
    }
}

extension ThreadGroup {
    /// Whether this group is the init (local pid 1) of its pid namespace.
    var isNamespaceInit: Bool { tgid & PidNS.mask == 1 }

    /// The number this process's namespace gives process or thread
    /// `rootPid`, 0 when it cannot see it: a signal's sender pid as its
    /// receiver reads it (Linux translates si_pid into the receiver's
    /// namespace), so a sender outside a namespace shows as 0 and one
    /// below the receiver's by its number there.
    func pidSeen(_ rootPid: Int32) -> Int32 { kernel.pidNumber(rootPid, in: PidNS.index(tgid)) }
}

extension Kernel {
    /// The namespace `ns` was made in (0: the root).
    @inline(__always) func parentPidNS(_ ns: Int32) -> Int32 { pidNSParent[ns] ?? 0 }

    /// How many namespaces `ns` is below the root (Linux's level).
    func pidNSLevel(_ ns: Int32) -> Int {
        var level = 0, x = ns
        while x != 0 { level += 1; x = parentPidNS(x) }
        return level
    }

    /// Whether namespace `ns` is `ancestor` or below it: a process of `ns`
    /// has a number in `ancestor` and its processes can see it.
    func pidNS(_ ns: Int32, isWithin ancestor: Int32) -> Bool {
        if ancestor == 0 || ns == ancestor { return true }
        var x = ns
        while let p = pidNSParent[x] {
            if p == ancestor { return true }
            x = p
        }
        return false
    }

    /// The number namespace `ns` gives process or thread `rootPid`: its
    /// root number's low bits in its own namespace, the one allocPid gave
    /// it in a namespace above, 0 in one it is not in.
    /// The root namespace gives one it has no number for (in a pod) its
    /// root number.
    func pidNumber(_ rootPid: Int32, in ns: Int32) -> Int32 {
        if rootPid <= 0 { return rootPid }
        if rootPid & ~PidNS.mask == PidNS.base(ns) { return rootPid & PidNS.mask }
        guard let n = nestedPids[ns]?[rootPid], nestedRoots[ns]?[n] == rootPid else { return ns == 0 ? rootPid : 0 }
        return n
    }

    /// The root number of what namespace `ns` numbers `p` (1...mask): a
    /// process of a namespace below it, else its own (which may not exist).
    func rootPid(_ p: Int32, in ns: Int32) -> Int32 {
        if let r = nestedRoots[ns]?[p], nestedPids[ns]?[r] == p { return r }
        return PidNS.base(ns) | p
    }
}

extension Kernel {
    /// A pid namespace for a container of its own: the smallest index no
    /// container and no process holds. Requires: mu held.
    func newPidNamespace() -> Int32? {
        var used = Set(podContainers.values.map { $0.pidNS })
        for p in threadGroups.keys { used.insert(PidNS.index(p)) }
        for p in tasks.keys { used.insert(PidNS.index(p)) }
        for tg in threadGroups.values { used.insert(PidNS.index(tg.pgid)); used.insert(PidNS.index(tg.sid)) }
        for t in tasks.values { if let c = t.childPidNS { used.insert(c) } }   // unshared or joined, no child yet
        used.formUnion(pidNamespaceFiles.withLock { $0.keys })                 // an fd still names it
        for u in used { var a = pidNSParent[u]; while let p = a, used.insert(p).inserted { a = pidNSParent[p] } }
        guard let i = (PidNS.pod + 1...PidNS.maxIndex).first(where: { !used.contains($0) }) else { return nil }
        nextNamespacePid[i] = nil       // numbering starts again at 1
        // Nothing of the namespace that had the index before: its place in
        // the tree, the numbers it gave, the numbers its tasks had above.
        pidNSParent[i] = nil; nestedPids[i] = nil; nestedRoots[i] = nil
        for (a, m) in nestedPids where m.keys.contains(where: { PidNS.index($0) == i }) {
            for (r, n) in m where PidNS.index(r) == i {
                nestedPids[a]![r] = nil
                if nestedRoots[a]?[n] == r { nestedRoots[a]![n] = nil }
            }
        }
        return i
    }

    /// The task `t` names by pid `p` (its namespace's number), if `t` can see it.
    /// Requires: mu held.
    func task(_ p: Int32, by t: Task) -> Task? {
        guard let x = tasks[t.gpid(p)], sees(t, x.tg) else { return nil }
        return x
    }

    /// The process `t` names by pid `p`, if `t` can see it. Requires: mu held.
    func group(_ p: Int32, by t: Task) -> ThreadGroup? {
        guard let x = threadGroups[t.gpid(p)], sees(t, x) else { return nil }
        return x
    }

    /// A namespace's init never gets SIGKILL or SIGSTOP from a process of
    /// its own namespace, as on Linux; the other signals it takes only when
    /// it handles them (Task.deliver). The runtime's signals (op=signal,
    /// stop) come from outside and are not these, nor is a SIGKILL from the
    /// root namespace to the init of an application's namespace.
    func initIgnores(_ target: ThreadGroup, _ sig: Int32, from sender: Task) -> Bool {
        guard target.isNamespaceInit, sig == SIGKILL || sig == SIGSTOP else { return false }
        if podMode { return true }
        return PidNS.index(target.tgid) != 0 && PidNS.index(sender.tg.tgid) == PidNS.index(target.tgid)
    }

    /// A new pid namespace for an application's clone or unshare with
    /// CLONE_NEWPID, made by `t` below its own: its index, or the error
    /// Linux gives. The caller has checked CAP_SYS_ADMIN (in the user
    /// namespace the new one is made in). Requires: mu held.
    func newApplicationPidNamespace(by t: Task) -> Result<Int32, Errno> {
        // Linux: a second namespace before the first has a process (unshare).
        if t.childPidNS != nil { return .failure(Errno(EINVAL)) }
        let own = PidNS.index(t.tg.tgid)
        if podMode { return .failure(Errno(EUSERS)) }
        if pidNSLevel(own) >= PidNS.maxLevel { return .failure(Errno(ENOSPC)) }
        guard let i = newPidNamespace() else { return .failure(Errno(ENOSPC)) }
        if own != 0 { pidNSParent[i] = own }
        return .success(i)
    }

    /// The init of an application's pid namespace has exited: the others
    /// in it and in the namespaces below it get SIGKILL, as on Linux.
    /// Requires: mu held.
    func applicationNamespaceInitExited(_ tg: ThreadGroup) {
        let ns = PidNS.index(tg.tgid)
        guard !podMode, ns != 0, tg.isNamespaceInit else { return }
        for other in threadGroups.values where other !== tg && pidNS(PidNS.index(other.tgid), isWithin: ns) && !other.exiting && !other.zombie {
            other.beginExit(code: SIGKILL, bySignal: true)
        }
    }

    /// The init of the namespace `rootPid` is in, when it is alive. Requires: mu held.
    func namespaceInit(of rootPid: Int32) -> ThreadGroup? {
        guard let i = threadGroups[(rootPid & ~PidNS.mask) | 1], !i.exiting, !i.zombie else { return nil }
        return i
    }

    /// The pod's shared namespace gets its init, pid 1, the first time a
    /// container asks to share it: a thread group with no task (so no host
    /// process and no address space) that ignores every signal sent from
    /// inside and reaps the orphans it inherits at once (SIGCHLD ignored),
    /// as a pause process does. Its cmdline is "/pause". Requires: mu held.
    func ensurePodInit() {
        let pid = PidNS.base(PidNS.pod) | 1
        if threadGroups[pid] != nil { return }
        let tg = ThreadGroup(kernel: self, tgid: pid, parent: nil, handlers: SignalHandlers())
        tg.handlers.actions[Int(SIGCHLD)].handler = 1
        tg.fixedCmdline = Array("/pause".utf8) + [0]
        tg.exitComm = Array("pause".utf8)
        threadGroups[pid] = tg
        if nextNamespacePid[PidNS.pod] == nil { nextNamespacePid[PidNS.pod] = 2 }
    }
}

extension PidNS {
    /// Linux's inode number of the initial pid namespace.
    static let rootInode: UInt64 = 0xEFFF_FFFC
    /// A pid namespace's inode number: the others come after 0xF0000000 by
    /// index (not after the root's, which the initial user, UTS and IPC
    /// namespaces' numbers follow).
    static func inode(_ index: Int32) -> UInt64 { index == 0 ? rootInode : 0xF000_0000 + UInt64(index) }
    /// Linux's inode number of the initial user namespace.
    static let userInode: UInt64 = 0xEFFF_FFFD
    /// The sandbox's one network namespace, as every process sees it
    /// (Linux numbers the initial one 0xF0000000).
    static let netInode: UInt64 = 0xF000_0000
}

/// A namespace opened through /proc/PID/ns or handed out by an nsfs ioctl:
/// a pid namespace (by index), an IPC or UTS namespace (the object, which
/// the file keeps alive) or the sandbox's one user namespace (which has no
/// /proc/PID/ns link; NS_GET_USERNS is its only way in). stat, readlink,
/// setns (Syscalls/Process.swift) and the nsfs ioctls.
///
/// While a file names a pid namespace its index is not given to a new one
/// (Kernel.newPidNamespace), as Linux keeps a namespace alive while an fd
/// refers to it: setns through an old fd never joins a stranger's namespace.
final class NamespaceFile: FileDescription {
    enum Kind: Equatable {
        case pid(Int32), user(UserNamespace), net(NetNamespace), ipc(IPCNamespace), uts(UTSNamespace), cgroup(CgroupNamespace), mnt(MountNamespace)
        static func == (a: Kind, b: Kind) -> Bool {
            switch (a, b) {
            case (.pid(let x), .pid(let y)): return x == y
            case (.user(let x), .user(let y)): return x === y
            case (.net(let x), .net(let y)): return x === y
            case (.ipc(let x), .ipc(let y)): return x === y
            case (.uts(let x), .uts(let y)): return x === y
            case (.cgroup(let x), .cgroup(let y)): return x === y
            case (.mnt(let x), .mnt(let y)): return x === y
            default: return false
            }
        }
    }
    let kind: Kind
    private weak var kernel: Kernel?

    init(_ kind: Kind, kernel: Kernel) {
        self.kind = kind
        self.kernel = kernel
        if case .pid(let i) = kind, i != 0 { kernel.pidNamespaceFiles.withLock { $0[i, default: 0] += 1 } }
        super.init(flags: O_RDONLY, path: nil)
    }
    deinit {
        if case .pid(let i) = kind, i != 0 {
            kernel?.pidNamespaceFiles.withLock { h in
                let n = h[i, default: 1] - 1
                h[i] = n > 0 ? n : nil
            }
        }
    }

    /// The CLONE_NEW* bit of the namespace's type (NS_GET_NSTYPE, setns's nstype).
    var cloneFlag: UInt64 {
        switch kind {
        case .pid: return CLONE_NEWPID_
        case .user: return CLONE_NEWUSER_
        case .net: return CLONE_NEWNET_
        case .ipc: return CLONE_NEWIPC_
        case .uts: return CLONE_NEWUTS_
        case .cgroup: return CLONE_NEWCGROUP_
        case .mnt: return CLONE_NEWNS_
        }
    }
    var inum: UInt64 {
        switch kind {
        case .pid(let i): return PidNS.inode(i)
        case .user(let n): return n.inum
        case .net(let n): return n.inum
        case .ipc(let n): return n.inum
        case .uts(let n): return n.inum
        case .cgroup(let n): return n.inum
        case .mnt(let n): return n.inum
        }
    }
    /// The type's name in the link text, as Linux's.
    private var typeName: String {
        switch kind {
        case .pid: return "pid"
        case .user: return "user"
        case .net: return "net"
        case .ipc: return "ipc"
        case .uts: return "uts"
        case .cgroup: return "cgroup"
        case .mnt: return "mnt"
        }
    }
    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    /// Linux's NSFS_MAGIC.
    override var statfsMagic: Int64 { 0x6e73_6673 }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFREG_ | 0o444; s.dev = 4; s.ino = inum; s.nlink = 1
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("\(typeName):[\(inum)]".utf8) }

    /// The nsfs ioctls Linux's <linux/nsfs.h> has had since 4.11 (type,
    /// parent, owning user namespace, owner's uid), and the pid
    /// translations of Linux 6.11 (pidTranslation).
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        switch cmd {
        case 0x8004_b706...0x8004_b709: return pidTranslation(t, cmd, Int32(truncatingIfNeeded: arg))
        case 0xb703: return Int(cloneFlag)                                          // NS_GET_NSTYPE
        case 0xb701:                                                                // NS_GET_USERNS
            return openOwner(t)
        case 0xb702:                                                                // NS_GET_PARENT
            // IPC and UTS namespaces have no hierarchy (Linux's EINVAL); a
            // user namespace's parent is its owner.
            switch kind { case .ipc, .uts, .net, .mnt: return err(EINVAL); case .user: return openOwner(t); default: break }
            // The root pid namespace and the user namespace have none; the
            // others have the one they were made in, which a caller reaches
            // only from it or above (Linux's EPERM past its own).
            guard case .pid(let i) = kind, i != 0 else { return err(EPERM) }
            let parent = t.kernel.parentPidNS(i)
            guard t.kernel.pidNS(parent, isWithin: PidNS.index(t.tg.tgid)) else { return err(EPERM) }
            return openRelated(t, .pid(parent))
        case 0xb704:                                                                // NS_GET_OWNER_UID
            guard case .user(let n) = kind else { return err(EINVAL) }
            return t.writeI32(arg, Int32(bitPattern: t.creds.userNS.showUID(n.ownerUID))) ? 0 : err(EFAULT)
        case 0x541B:                                                                // FIONREAD
            // Linux answers it for any file of regular mode: size 0, nothing to read.
            return t.writeI32(arg, 0) ? 0 : err(EFAULT)
        default: return err(ENOTTY)
        }
    }

    /// NS_GET_PID_FROM_PIDNS and NS_GET_TGID_FROM_PIDNS: the thread or
    /// process this pid namespace numbers `p`, as the caller's namespace
    /// numbers it; NS_GET_PID_IN_PIDNS and NS_GET_TGID_IN_PIDNS: the one
    /// the caller numbers `p`, as this namespace numbers it. ESRCH when
    /// there is none or the other namespace cannot see it; EINVAL on a
    /// namespace that is not a pid one (Linux's ns_ioctl).
    private func pidTranslation(_ t: Task, _ cmd: UInt64, _ p: Int32) -> Int {
        guard case .pid(let i) = kind else { return err(EINVAL) }
        let into = cmd >= 0x8004_b708, tgid = cmd & 1 == 1
        if p <= 0 { return err(ESRCH) }
        guard let k = kernel else { return err(ESRCH) }
        let root: Int32
        if into { root = t.gpid(p) } else if i == 0 || p <= PidNS.mask { root = k.rootPid(p, in: i) } else { return err(ESRCH) }
        guard let x = k.tasks[root], !x.exited, !into || k.sees(t, x.tg) else { return err(ESRCH) }
        let n = tgid ? x.tg.tgid : x.tid
        let shown = into ? k.pidNumber(n, in: i) : t.vpidIfSeen(n)
        return shown > 0 ? Int(shown) : err(ESRCH)
    }

    /// The user namespace that owns this one (a user namespace's parent),
    /// when it is the caller's or below it (Linux's ns_get_owner; EPERM).
    private func openOwner(_ t: Task) -> Int {
        let owner: UserNamespace?
        switch kind {
        case .user(let n): owner = n.parent
        case .uts(let n): owner = n.owner
        case .net(let n): owner = n.owner
        case .mnt(let n): owner = n.owner
        default: owner = .root
        }
        guard let o = owner, o.isDescendant(of: t.creds.userNS) else { return err(EPERM) }
        return openRelated(t, .user(o))
    }

    /// A new close-on-exec descriptor for a related namespace, as Linux's
    /// nsfs ioctls give.
    private func openRelated(_ t: Task, _ k: Kind) -> Int {
        let f = NamespaceFile(k, kernel: t.kernel)
        let fd = t.fds.install(f, cloexec: true, limit: fdLimit(t))
        if fd < 0 { f.release() }
        return fd
    }
}

extension Kernel {
    /// /proc/PID/ns: cgroup, ipc, uts and user (the process's task's, none once it has
    /// exited), pid (the process's namespace) and pid_for_children (its
    /// task's after unshare(CLONE_NEWPID), else the same).
    func procNsDir(_ tg: ThreadGroup, _ ino: UInt64, _ task: @escaping () -> Task?) -> ProcNode {
        let names: [(String, UInt64)] = [("cgroup", 5), ("ipc", 3), ("mnt", 8), ("net", 6), ("pid", 1), ("pid_for_children", 2), ("user", 7), ("uts", 4)]
        func link(_ name: String) -> ProcFdLink? {
            let own = PidNS.index(tg.tgid)
            let kind: NamespaceFile.Kind
            switch name {
            case "pid": kind = .pid(own)
            case "pid_for_children": kind = .pid(task()?.childPidNS ?? own)
            case "ipc": guard let t = task() else { return nil }; kind = .ipc(t.ipc)
            case "uts": guard let t = task() else { return nil }; kind = .uts(t.uts)
            case "cgroup": guard let t = task() else { return nil }; kind = .cgroup(t.cgroupNS)
            case "mnt": guard let t = task(), let n = t.fs.ns else { return nil }; kind = .mnt(n)
            // The task's network namespace (Kernel/NetNamespaces.swift).
            case "net": guard let t = task() else { return nil }; kind = .net(t.net)
            case "user": guard let t = task() else { return nil }; kind = .user(t.creds.userNS)
            default: return nil
            }
            let n = names.first { $0.0 == name }!.1
            return ProcFdLink(kernel: self, file: NamespaceFile(kind, kernel: self), ino: ino + n)
        }
        return ProcNode(kernel: self, ino: ino, mode: S_IFDIR_ | 0o511, lookup: { _, n in link(String(decoding: n, as: UTF8.self)) },
                        list: { _ in names.map { DirEntry(ino: ino + $0.1, type: 10, name: Array($0.0.utf8)) } })
    }
}
