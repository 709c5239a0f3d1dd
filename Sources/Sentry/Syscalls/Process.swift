// clone, fork, vfork, execve, exit, wait, and process/session identity.

import CMoat
import Glibc
import Platform
import Synchronization

let CLONE_VM_: UInt64 = 0x100, CLONE_FS_: UInt64 = 0x200, CLONE_FILES_: UInt64 = 0x400
let CLONE_SIGHAND_: UInt64 = 0x800, CLONE_PIDFD_: UInt64 = 0x1000, CLONE_PTRACE_: UInt64 = 0x2000
let CLONE_VFORK_: UInt64 = 0x4000, CLONE_PARENT_: UInt64 = 0x8000, CLONE_THREAD_: UInt64 = 0x10000
let CLONE_NEWNS_: UInt64 = 0x20000, CLONE_SYSVSEM_: UInt64 = 0x40000, CLONE_SETTLS_: UInt64 = 0x80000
let CLONE_PARENT_SETTID_: UInt64 = 0x100000, CLONE_CHILD_CLEARTID_: UInt64 = 0x200000
let CLONE_DETACHED_: UInt64 = 0x400000, CLONE_UNTRACED_: UInt64 = 0x800000, CLONE_CHILD_SETTID_: UInt64 = 0x1000000
let CLONE_NEWCGROUP_: UInt64 = 0x02000000, CLONE_NEWUTS_: UInt64 = 0x04000000, CLONE_NEWIPC_: UInt64 = 0x08000000
let CLONE_NEWUSER_: UInt64 = 0x10000000, CLONE_NEWPID_: UInt64 = 0x20000000, CLONE_NEWNET_: UInt64 = 0x40000000, CLONE_IO_: UInt64 = 0x80000000
/// clone3 only: reset handled signals to SIG_DFL in the child; start it in a cgroup.
let CLONE_CLEAR_SIGHAND_: UInt64 = 0x1_0000_0000, CLONE_INTO_CGROUP_: UInt64 = 0x2_0000_0000
let CLONE_NEWTIME_: UInt64 = 0x80
/// The highest user address + 1 on x86-64 with 4-level paging (TASK_SIZE_MAX):
/// a TLS base at or above it is refused with EPERM.
let taskSizeMax: UInt64 = 0x7fff_ffff_f000

func registerProcess(_ t: SyscallTable) {
    t[57] = { t, _ in sysClone(t, flags: UInt64(SIGCHLD), stack: 0, ptid: 0, ctid: 0, tls: 0) }                     // fork
    t[58] = { t, _ in sysClone(t, flags: CLONE_VM_ | CLONE_VFORK_ | UInt64(SIGCHLD), stack: 0, ptid: 0, ctid: 0, tls: 0) } // vfork
    t[56] = { t, a in                                                                                                // clone
        // The legacy call takes the low 32 bits; the low byte is the exit signal.
        // CLONE_PIDFD stores the pidfd where CLONE_PARENT_SETTID would store the tid.
        let flags = a.a0 & 0xffff_ffff
        if flags & (CLONE_PIDFD_ | CLONE_PARENT_SETTID_) == CLONE_PIDFD_ | CLONE_PARENT_SETTID_ { return err(EINVAL) }
        return sysClone(t, flags: flags, stack: a.a1, ptid: a.a2, ctid: a.a3, tls: a.a4, pidfdAddr: a.a2)
    }
    t[435] = sysClone3
    t[272] = sysUnshare
    t[308] = sysSetns

    t[59] = { t, a in sysExecve(t, AT_FDCWD_, a.a0, a.a1, a.a2, 0) }                                                // execve
    t[322] = { t, a in sysExecve(t, a.int(0), a.a1, a.a2, a.a3, a.int(4)) }                                         // execveat
    t[60] = { t, a in                                                                                                // exit
        // The last thread's exit is the process's; another thread just leaves.
        if t.tg.tasks.count == 1 { t.tg.beginExit(code: a.int(0), bySignal: false) } else {
            t.exitStatus = (a.int(0) & 0xff) << 8
            t.exitRequested = true
        }
        t.skipReturn = true
        return 0
    }
    t[231] = { t, a in t.tg.beginExit(code: a.int(0), bySignal: false); t.skipReturn = true; return 0 }            // exit_group
    t[61] = { t, a in sysWait4(t, a.int(0), a.a1, a.int(2), a.a3) }                                                 // wait4
    t[247] = sysWaitid
    t[434] = sysPidfdOpen
    t[438] = sysPidfdGetfd
    t[312] = sysKcmp
    // Pids a task is given or names are its pid namespace's (Kernel/PidNamespaces.swift).
    // These three are also served without Kernel.mu (LockFree, Dispatch.swift).
    t[39] = sysGetpid
    t[110] = sysGetppid
    t[186] = sysGettid
    t[218] = { t, a in t.clearChildTid = a.a0; return Int(t.vpid(t.tid)) }                                          // set_tid_address
    t[109] = { t, a in sysSetpgid(t, a.int(0), a.int(1)) }                                                          // setpgid
    t[121] = { t, a in                                                                                               // getpgid
        let pid = t.gpid(a.int(0))
        if pid == 0 { return Int(t.vpidIfSeen(t.tg.pgid)) }
        guard let tg = t.kernel.threadGroups[pid], !tg.reaped, t.kernel.sees(t, tg) else { return err(ESRCH) }
        return Int(t.vpidIfSeen(tg.pgid))
    }
    t[111] = { t, _ in Int(t.vpidIfSeen(t.tg.pgid)) }                                                               // getpgrp
    t[112] = { t, _ in                                                                                               // setsid
        let tg = t.tg
        if t.kernel.threadGroups.values.contains(where: { $0.pgid == tg.tgid && !$0.reaped }) && tg.pgid == tg.tgid { return err(EPERM) }
        if t.kernel.threadGroups.values.contains(where: { $0 !== tg && $0.pgid == tg.tgid && !$0.reaped }) { return err(EPERM) }
        tg.sid = tg.tgid
        tg.pgid = tg.tgid
        return Int(t.vpid(tg.tgid))
    }
    t[124] = { t, a in                                                                                               // getsid
        let pid = t.gpid(a.int(0))
        if pid == 0 { return Int(t.vpidIfSeen(t.tg.sid)) }
        guard let tg = t.kernel.threadGroups[pid], !tg.reaped, t.kernel.sees(t, tg) else { return err(ESRCH) }
        return Int(t.vpidIfSeen(tg.sid))
    }
}

/// clone3(struct clone_args *, size): the checks clone3 adds to clone's
/// (clone3(2)): a struct size Linux knows (larger ones only with zeros past
/// the known part), no unknown or legacy-only flags, an exit signal only for
/// a new process, CLONE_SIGHAND not with CLONE_CLEAR_SIGHAND, a stack given
/// with its size.
func sysClone3(_ t: Task, _ a: Args) -> Int {
    let size = Int(min(a.a1, 1 << 20))
    if a.a1 < 64 { return err(EINVAL) }
    if a.a1 > 4096 { return err(E2BIG) }
    guard let b = t.copyIn(a.a0, size) else { return err(EFAULT) }
    switch decodeClone3(b) {
    case .failure(let e): return e.ret
    case .success(let c):
        var into: Cgroup? = nil
        if let fd = c.cgroupFD {
            // A directory of the cgroup2 file system, opened O_PATH too (Linux's fget_raw).
            guard let f = t.fds.get(fd), let d = f.inode as? CgroupDirInode else { return err(EBADF) }
            into = d.cgroup
        }
        var setTid: [Int32] = []
        if c.setTidSize > 0 {
            guard let raw = t.copyIn(c.setTid, c.setTidSize * 4) else { return err(EFAULT) }
            setTid = (0..<c.setTidSize).map { Int32(bitPattern: get32(raw, $0 * 4)) }
        }
        return sysClone(t, flags: (c.flags & ~CLONE_INTO_CGROUP_) | c.exitSignal, stack: c.stackTop, ptid: c.parentTid, ctid: c.childTid,
                        tls: c.tls, pidfdAddr: c.pidfd, intoCgroup: into, setTid: setTid)
    }
}

/// What a valid struct clone_args asks for, in clone's terms.
struct Clone3Request {
    var flags: UInt64, exitSignal: UInt64, stackTop: UInt64, tls: UInt64, parentTid: UInt64, childTid: UInt64, pidfd: UInt64
    /// CLONE_INTO_CGROUP: a descriptor of the child's cgroup directory.
    var cgroupFD: Int32? = nil
    /// set_tid: the address and length of the array of pids the child asks
    /// for, its own namespace's first, then each one above (0: none).
    var setTid: UInt64 = 0, setTidSize = 0
}

/// Decodes and checks a struct clone_args of 64 to 4096 bytes (copied in
/// whole). Pure, for the fuzz target `syscall-args`.
func decodeClone3(_ raw: [UInt8]) -> Result<Clone3Request, Errno> {
    let known = 88
    if raw.count < 64 { return .failure(Errno(EINVAL)) }
    if raw.count > 4096 { return .failure(Errno(E2BIG)) }
    if raw.count > known && raw[known...].contains(where: { $0 != 0 }) { return .failure(Errno(E2BIG)) }
    let b = raw.count >= known ? raw : raw + [UInt8](repeating: 0, count: known - raw.count)
    let flags = get64(b, 0), exitSig = get64(b, 32), stack = get64(b, 40), stackSize = get64(b, 48), tls = get64(b, 56)
    let setTid = get64(b, 64), setTidSize = get64(b, 72)
    if (setTid != 0) != (setTidSize != 0) || setTidSize > 32 { return .failure(Errno(EINVAL)) }
    if exitSig & ~0xff != 0 || exitSig > 64 { return .failure(Errno(EINVAL)) }
    if flags & ~(0xffff_ffff | CLONE_CLEAR_SIGHAND_ | CLONE_INTO_CGROUP_) != 0 { return .failure(Errno(EINVAL)) }
    if flags & (CLONE_DETACHED_ | (0xff & ~CLONE_NEWTIME_)) != 0 { return .failure(Errno(EINVAL)) }
    if flags & (CLONE_SIGHAND_ | CLONE_CLEAR_SIGHAND_) == CLONE_SIGHAND_ | CLONE_CLEAR_SIGHAND_ { return .failure(Errno(EINVAL)) }
    if flags & (CLONE_THREAD_ | CLONE_PARENT_) != 0 && exitSig != 0 { return .failure(Errno(EINVAL)) }
    if (stack == 0) != (stackSize == 0) { return .failure(Errno(EINVAL)) }
    if flags & CLONE_NEWTIME_ != 0 { return .failure(Errno(EPERM)) }       // namespaces inside the sandbox: not yet
    // The cgroup's fd is in the struct's third version (88 bytes).
    let cgroupFD = get64(b, 80)
    if flags & CLONE_INTO_CGROUP_ != 0 && (cgroupFD > UInt64(Int32.max) || raw.count < known) { return .failure(Errno(EINVAL)) }
    return .success(Clone3Request(flags: flags, exitSignal: exitSig, stackTop: stack == 0 ? 0 : stack &+ stackSize,
                                  tls: tls, parentTid: get64(b, 24), childTid: get64(b, 16), pidfd: get64(b, 8),
                                  cgroupFD: flags & CLONE_INTO_CGROUP_ != 0 ? Int32(cgroupFD) : nil,
                                  setTid: setTid, setTidSize: Int(setTidSize)))
}

/// unshare(2): private file table, fs context, semaphore undo list, UTS,
/// IPC (Kernel/IPCNamespaces.swift), mount and pid namespace (the caller's
/// next child is pid 1 of a new one, below the caller's own:
/// Kernel/PidNamespaces.swift), cgroup namespace (rooted at the process's
/// cgroup: Kernel/Cgroups.swift), user namespace (Kernel/UserNamespaces.swift:
/// made first, so the others are the new one's and need no capability
/// outside it, as on Linux); the network and time namespaces are refused
/// (EPERM) until the Sentry models them.
/// Sharing a VM, signal handlers or thread group cannot be undone in a
/// multi-threaded process (EINVAL), as on Linux.
///
/// A mount namespace: unshare(CLONE_NEWNS) and clone(CLONE_NEWNS) give
/// the process (with an fs context of its own) a copy of its mount tree
/// (VFS/MountNamespace.swift), owned by its user namespace.
func sysUnshare(_ t: Task, _ a: Args) -> Int {
    var flags = a.a0 & 0xffff_ffff
    let known = CLONE_THREAD_ | CLONE_FS_ | CLONE_NEWNS_ | CLONE_SIGHAND_ | CLONE_VM_ | CLONE_FILES_ | CLONE_SYSVSEM_ |
        CLONE_NEWUTS_ | CLONE_NEWIPC_ | CLONE_NEWNET_ | CLONE_NEWUSER_ | CLONE_NEWPID_ | CLONE_NEWCGROUP_ | CLONE_NEWTIME_
    if a.a0 & ~known != 0 { return err(EINVAL) }
    // A new user namespace is for a single-threaded process with its own fs context.
    if flags & CLONE_NEWUSER_ != 0 { flags |= CLONE_THREAD_ | CLONE_FS_ }
    if flags & (CLONE_THREAD_ | CLONE_SIGHAND_ | CLONE_VM_) != 0 && t.tg.tasks.count > 1 { return err(EINVAL) }
    // The credentials the other namespaces are made with: in the new user
    // namespace, if any, with every capability there.
    var creds = t.creds
    if flags & CLONE_NEWUSER_ != 0 {
        switch t.credsInNewUserNamespace() { case .success(let c): creds = c; case .failure(let e): return e.ret }
    }
    let others = CLONE_NEWNET_ | CLONE_NEWTIME_ | CLONE_NEWPID_ | CLONE_NEWUTS_ | CLONE_NEWIPC_ | CLONE_NEWNS_ | CLONE_NEWCGROUP_
    if flags & others != 0 && !creds.hasOwn(Cap.sysAdmin) { return err(EPERM) }
    if flags & CLONE_NEWTIME_ != 0 { return err(EPERM) }
    if flags & CLONE_NEWPID_ != 0 {
        switch t.kernel.newApplicationPidNamespace(by: t) {
        case .success(let ns): t.childPidNS = ns
        case .failure(let e): return e.ret
        }
    }
    t.creds = creds
    if flags & CLONE_NEWUTS_ != 0 { t.ownUTS = t.uts.copy(owner: creds.userNS) }
    // A cgroup namespace rooted at the process's cgroup (Kernel/Cgroups.swift).
    if flags & CLONE_NEWCGROUP_ != 0 { t.ownCgroupNS = CgroupNamespace(root: t.tg.cgroup) }
    // A new IPC namespace implies leaving the undo list (its sets are out of reach).
    if flags & CLONE_NEWIPC_ != 0 { t.ownIPC = IPCNamespace() }
    if flags & CLONE_NEWNET_ != 0 { t.ownNet = NetNamespace(owner: creds.userNS) }   // Kernel/NetNamespaces.swift
    if flags & (CLONE_SYSVSEM_ | CLONE_NEWIPC_) != 0 { t.semUndo = KcmpToken() }
    // CLONE_NEWNS implies CLONE_FS, as in Linux's unshare.
    if flags & (CLONE_FS_ | CLONE_NEWNS_) != 0 { t.fs = t.fs.copy() }
    if flags & CLONE_NEWNS_ != 0 { t.enterNewMountNamespace(owner: creds.userNS) }
    if flags & CLONE_FILES_ != 0 && t.fds.users > 1 {
        if fdTableTooBig(t) { return err(EMFILE) }
        t.unshareFDTable()
    }
    return 0
}

extension Task {
    /// A descriptor table shared with CLONE_FILES becomes this task's own
    /// copy, so the others keep their descriptors whatever it closes.
    func unshareFDTable() {
        if fds.users <= 1 { return }
        let mine = fds.fork()
        fds.release(self)
        fds = mine
    }
}

/// Linux's dup_fd: a copy of a descriptor table whose open descriptors
/// reach past fs.nr_open (both rounded up to a word of bits) is EMFILE.
private func fdTableTooBig(_ t: Task) -> Bool {
    guard let hi = t.fds.entries.lastIndex(where: { $0 != nil }) else { return false }
    let open = (hi + 1 + 63) / 64 * 64
    let cap = ((t.kernel.sysctl.nrOpen - 1) | 63) + 1
    return open > cap
}

/// setns(fd, nstype): joins the namespace an fd of /proc/PID/ns (or one an
/// nsfs ioctl gave) names, or those of the process a pidfd names, as on
/// Linux. nstype: 0 or the namespace's type for an ns fd; a nonzero set of
/// CLONE_NEW* bits for a pidfd, joined together or not at all. A pid
/// namespace is for the caller's next children only (its own pid never
/// changes), and must be the caller's own or one below it (EINVAL
/// otherwise); an IPC, UTS or cgroup namespace (Kernel/IPCNamespaces.swift,
/// Kernel/Cgroups.swift) is the
/// calling thread's at once, and joining an IPC one leaves the semaphore
/// undo list. A user namespace fd: joinUserNamespace below (through a
/// pidfd not offered: EINVAL); the types Moat does not model are EINVAL,
/// never a silent success. The caller needs CAP_SYS_ADMIN (EPERM), checked
/// before the pid namespace's place, as Linux does.
func sysSetns(_ t: Task, _ a: Args) -> Int {
    guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }         // an O_PATH fd too, as on Linux
    let nstype = a.a1 & 0xffff_ffff
    var pid: Int32? = nil, ipc: IPCNamespace? = nil, uts: UTSNamespace? = nil, cgroup: CgroupNamespace? = nil, net: NetNamespace? = nil
    var mnt: MountNamespace? = nil
    if let ns = f as? NamespaceFile {
        if nstype != 0 && nstype != ns.cloneFlag { return err(EINVAL) }
        switch ns.kind {
        case .pid(let i): pid = i
        case .ipc(let n): ipc = n
        case .uts(let n): uts = n
        case .cgroup(let n): cgroup = n
        case .net(let n): net = n
        case .mnt(let n): mnt = n
        case .user(let n): return joinUserNamespace(t, n)
        }
    } else if let p = f as? PidFD {
        let all = CLONE_NEWNS_ | CLONE_NEWCGROUP_ | CLONE_NEWUTS_ | CLONE_NEWIPC_ | CLONE_NEWUSER_ | CLONE_NEWPID_ | CLONE_NEWNET_ | CLONE_NEWTIME_
        if nstype == 0 || nstype & ~all != 0 { return err(EINVAL) }
        guard !p.tg.zombie, !p.tg.reaped, let owner = p.tg.leader ?? p.tg.tasks.first else {
            return err(ESRCH)                                   // Linux: an exited process has no namespaces left
        }
        if !mayAttach(t, p.tg) { return err(EPERM) }
        if nstype & ~(CLONE_NEWPID_ | CLONE_NEWIPC_ | CLONE_NEWUTS_ | CLONE_NEWCGROUP_ | CLONE_NEWNET_ | CLONE_NEWNS_) != 0 { return err(EINVAL) }   // the others are not modelled
        if nstype & CLONE_NEWNET_ != 0 { net = owner.net }
        if nstype & CLONE_NEWNS_ != 0 { mnt = owner.fs.ns }
        if nstype & CLONE_NEWPID_ != 0 { pid = PidNS.index(p.tg.tgid) }
        if nstype & CLONE_NEWIPC_ != 0 { ipc = owner.ipc }
        if nstype & CLONE_NEWUTS_ != 0 { uts = owner.uts }
        if nstype & CLONE_NEWCGROUP_ != 0 { cgroup = owner.cgroupNS }
    } else {
        return err(EINVAL)
    }
    if let n = mnt {
        // Linux's mntns_install: CAP_SYS_ADMIN over the namespace and
        // CAP_SYS_CHROOT and CAP_SYS_ADMIN in the caller's own (EPERM), an
        // fs context no other task shares (EINVAL).
        if !t.creds.capable(Cap.sysAdmin, in: n.owner) || !t.creds.hasOwn(Cap.sysChroot) || !t.creds.hasOwn(Cap.sysAdmin) { return err(EPERM) }
        if t.kernel.tasks.values.contains(where: { $0 !== t && $0.fs === t.fs }) { return err(EINVAL) }
    } else if !t.creds.has(Cap.sysAdmin) { return err(EPERM) }
    // A network namespace also wants CAP_SYS_ADMIN over its owner (netns_install).
    if let n = net, !t.creds.capable(Cap.sysAdmin, in: n.owner) { return err(EPERM) }
    // A pid namespace for the children: the caller's own or one below it (Linux's pidns_install).
    if let target = pid, !t.kernel.pidNS(target, isWithin: PidNS.index(t.tg.tgid)) { return err(EINVAL) }
    let own = PidNS.index(t.tg.tgid)
    if let target = pid { t.childPidNS = target == own ? nil : target }
    if let n = ipc {
        t.ownIPC = n === t.kernel.ipc ? nil : n
        t.semUndo = KcmpToken()
    }
    if let n = uts { t.ownUTS = n === t.kernel.rootUTS ? nil : n }
    if let n = net { t.ownNet = n.isRoot ? nil : n }
    if let n = cgroup { t.ownCgroupNS = n === t.kernel.cgroups.rootNamespace ? nil : n }
    if let n = mnt {
        // Root and working directory: the namespace's root, with what is
        // mounted on it.
        let root = t.kernel.vfs.crossMounts(Path(mount: n.root, dentry: n.root.root))
        t.fs.ns = n
        t.fs.root = root; t.fs.cwd = root
    }
    return 0
}

/// setns into a user namespace (Linux's userns_install): not the caller's
/// own (EINVAL: it would regain capabilities), only for a single-threaded
/// process that shares its fs context (CLONE_FS) with no other (EINVAL),
/// with CAP_SYS_ADMIN over the namespace (EPERM: the caller's own or one
/// below it only); the caller gets every capability there.
private func joinUserNamespace(_ t: Task, _ ns: UserNamespace) -> Int {
    if ns === t.creds.userNS { return err(EINVAL) }
    if t.tg.tasks.count > 1 { return err(EINVAL) }
    if t.kernel.tasks.values.contains(where: { $0 !== t && $0.fs === t.fs }) { return err(EINVAL) }
    if !t.creds.capable(Cap.sysAdmin, in: ns) { return err(EPERM) }
    t.creds.enter(ns)
    return 0
}

/// CLONE_PIDFD: a pidfd for the child (close-on-exec) is stored at `pidfdAddr`.
/// `intoCgroup`: clone3's CLONE_INTO_CGROUP (the child starts there, not in
/// its parent's cgroup).
func sysClone(_ t: Task, flags: UInt64, stack: UInt64, ptid: UInt64, ctid: UInt64, tls: UInt64, pidfdAddr: UInt64 = 0,
              intoCgroup: Cgroup? = nil, setTid: [Int32] = []) -> Int {
    let k = t.kernel
    // Checks Linux makes (copy_process), in its order.
    if flags & (CLONE_NEWNS_ | CLONE_FS_) == CLONE_NEWNS_ | CLONE_FS_ { return err(EINVAL) }
    if flags & (CLONE_NEWUSER_ | CLONE_FS_) == CLONE_NEWUSER_ | CLONE_FS_ { return err(EINVAL) }
    if flags & CLONE_THREAD_ != 0 && flags & CLONE_SIGHAND_ == 0 { return err(EINVAL) }
    if flags & CLONE_SIGHAND_ != 0 && flags & CLONE_VM_ == 0 { return err(EINVAL) }
    // The sandbox's init cannot make a sibling (it has no parent inside).
    if flags & CLONE_PARENT_ != 0 && (t.tg.isNamespaceInit || t.tg === k.initTG) { return err(EINVAL) }
    if flags & CLONE_THREAD_ != 0 && flags & (CLONE_NEWUSER_ | CLONE_NEWPID_) != 0 { return err(EINVAL) }
    if flags & CLONE_SETTLS_ != 0 && tls >= taskSizeMax { return err(EPERM) }
    if flags & (CLONE_PIDFD_ | CLONE_DETACHED_) == CLONE_PIDFD_ | CLONE_DETACHED_ { return err(EINVAL) }
    // The pidfd's word must be writable before the child exists (Linux's EFAULT, no child).
    if flags & CLONE_PIDFD_ != 0 { guard let w = t.readI32(pidfdAddr), t.writeI32(pidfdAddr, w) else { return err(EFAULT) } }
    // A thread stays in its process's pid namespace (after unshare, Linux's EINVAL).
    if flags & CLONE_THREAD_ != 0 && t.childPidNS != nil { return err(EINVAL) }
    // The child's credentials: in a new user namespace (made first, as
    // Linux's copy_creds), whose capabilities the other new namespaces
    // need, as on Linux; else the caller's, with CAP_SYS_ADMIN in its own.
    var childCreds = t.creds
    if flags & CLONE_NEWUSER_ != 0 {
        switch t.credsInNewUserNamespace() { case .success(let c): childCreds = c; case .failure(let e): return e.ret }
    }
    if flags & (CLONE_NEWNS_ | CLONE_NEWUTS_ | CLONE_NEWIPC_ | CLONE_NEWCGROUP_ | CLONE_NEWPID_ | CLONE_NEWNET_) != 0
        && !childCreds.hasOwn(Cap.sysAdmin) { return err(EPERM) }
    // Sharing the undo list of sets the child cannot reach (Linux's EINVAL).
    if flags & (CLONE_NEWIPC_ | CLONE_SYSVSEM_) == CLONE_NEWIPC_ | CLONE_SYSVSEM_ { return err(EINVAL) }
    let isThread = flags & CLONE_THREAD_ != 0
    // A thread's exit signal is ignored (it has none).
    let exitSig = isThread ? 0 : Int32(flags & 0xff)
    if exitSig > 64 { return err(EINVAL) }
    if t.tg.exiting { return err(EAGAIN) }
    if flags & CLONE_FILES_ == 0 && fdTableTooBig(t) { return err(EMFILE) }
    // Its cgroup (Kernel/Cgroups.swift): a removed one is ENOENT (Linux's
    // cgroup_get_from_file finds it offline), one that enabled controllers
    // for its children (so may hold no process) EBUSY, as Linux's
    // cgroup_can_fork; pids.max of it and its ancestors is EAGAIN.
    let cgroup = isThread ? t.tg.cgroup : intoCgroup ?? t.tg.cgroup
    if let c = intoCgroup {
        if c.removed { return err(ENOENT) }
        if !k.cgroupMayMigrate(t, from: t.tg.cgroup, to: c, too: true) { return err(EACCES) }
        if c.parent != nil && !c.subtreeControl.isEmpty { return err(EBUSY) }
        if isThread && c !== t.tg.cgroup { return err(EINVAL) }
    }
    if !k.cgroupAllowsFork(cgroup) { return err(EAGAIN) }
    // The child is in its parent's pid namespace, or the one unshare made
    // for its children, or a new one (Kernel/PidNamespaces.swift).
    var ns = t.childPidNS ?? PidNS.index(t.tg.tgid)
    if flags & CLONE_NEWPID_ != 0 {
        switch k.newApplicationPidNamespace(by: t) {
        case .success(let i): ns = i
        case .failure(let e): return e.ret
        }
    } else if !k.podMode && ns != 0 && k.nextNamespacePid[ns] != nil && k.namespaceInit(of: PidNS.base(ns)) == nil {
        return err(ENOMEM)      // its init has exited: no new process in it, as on Linux
    }
    let tid: Int32
    if setTid.isEmpty {
        guard let p = k.allocPid(namespace: ns) else { return err(EAGAIN) }
        tid = p
    } else {
        // clone3's set_tid (Linux's alloc_pid): at most one pid per level
        // from the child's namespace up (EINVAL), each in 1..<pid_max and 1
        // in a namespace with no init yet (EINVAL), chosen only with
        // CAP_SYS_ADMIN (EPERM; every pid namespace is the initial user
        // namespace's), free there (EEXIST).
        switch k.allocPid(namespace: ns, wanted: setTid, privileged: t.creds.has(Cap.sysAdmin)) {
        case .success(let p): tid = p
        case .failure(let e): return e.ret
        }
    }

    // The host side: a new stub thread (CLONE_THREAD), a process sharing
    // memory (CLONE_VM), or a copy-on-write copy of the address space.
    var hostFlags: UInt64
    if isThread { hostFlags = CLONE_VM_ | CLONE_THREAD_ | CLONE_SIGHAND_ | CLONE_FS_ | CLONE_FILES_ }
    else if flags & CLONE_VM_ != 0 { hostFlags = CLONE_VM_ | CLONE_PARENT_ }
    else { hostFlags = CLONE_PARENT_ }
    // The driver thread first: with no host thread to spare the clone fails
    // here, before a host stub exists (DriverThread says why).
    guard let driver = DriverThread.spawn() else { return err(EAGAIN) }
    let (hostTid, fromSpare) = t.cloneHostStub(flags: hostFlags)
    if hostTid < 0 { driver.cancel(); return hostTid == -Int(ESRCH) ? err(EAGAIN) : hostTid }
    // Without stubs (KVM): the child's context and address space now.
    var childContext: (any TaskThread)? = nil
    if !t.thread.hasStub {
        childContext = t.thread.cloneContext(shareMemory: flags & CLONE_VM_ != 0)
        if childContext == nil { driver.cancel(); return err(EAGAIN) }
    }

    let tg: ThreadGroup
    if isThread {
        tg = t.tg
    } else {
        let handlers = flags & CLONE_SIGHAND_ != 0 ? t.tg.handlers : t.tg.handlers.copy()
        if flags & CLONE_CLEAR_SIGHAND_ != 0 {
            // Handled signals go back to SIG_DFL; ignored ones stay ignored.
            for i in handlers.actions.indices where handlers.actions[i].handler > 1 { handlers.actions[i] = SigAction() }
        }
        let parent = flags & CLONE_PARENT_ != 0 ? (t.tg.parent ?? t.tg) : t.tg
        tg = ThreadGroup(kernel: k, tgid: tid, parent: parent, handlers: handlers)
        tg.parentThread = parent === t.tg ? t : t.tg.parentThread
        tg.exitSignal = exitSig
        tg.pgid = t.tg.pgid
        tg.sid = t.tg.sid
        tg.lastCreds = t.creds
        tg.rlimits = t.tg.rlimits
        tg.oomScoreAdj = t.tg.oomScoreAdj; tg.oomScoreAdjMin = t.tg.oomScoreAdjMin
        k.timers.setCPULimit(tg)                                            // RLIMIT_CPU counts the child's own time
        tg.comm = t.tg.comm
        tg.dumpable = t.tg.dumpable
        tg.coredumpFilter = t.tg.coredumpFilter
        tg.cgroup = cgroup
        parent.children.append(tg)
        k.threadGroups[tid] = tg
        k.cgroupMembershipChanged()                                         // cgroup.events: populated
        if t.thread.hasStub { t.inheritStubFD(into: tg, childStubPid: pid_t(hostTid)) }
    }
    let mm: MemoryManager
    if flags & CLONE_VM_ != 0 { mm = t.mm; mm.users += 1 } else {
        mm = t.mm.fork()
        k.forkAttachments(from: t.mm.id, to: mm.id)                       // SysV segments stay attached in the child
    }
    let fds: FDTable
    if flags & CLONE_FILES_ != 0 { fds = t.fds; fds.users += 1 } else { fds = t.fds.fork() }
    let fs = flags & CLONE_FS_ != 0 ? t.fs : t.fs.copy()
    let child = Task(kernel: k, tid: tid, tg: tg, hostPid: isThread ? t.hostPid : pid_t(hostTid), hostTid: pid_t(hostTid),
                     mm: mm, fds: fds, fs: fs, comm: t.comm)
    child.thread = childContext
    child.creds = childCreds
    if flags & CLONE_NEWNS_ != 0 { child.enterNewMountNamespace(owner: childCreds.userNS) }
    child.sigMask = t.sigMask
    child.nice = t.nice
    k.applyHostNice(child, force: t.hostNice != nil || k.niceFloor != 0)   // the new stub's is not known
    child.personality = t.personality
    child.timerSlackNs = t.timerSlackNs
    child.defaultTimerSlackNs = t.timerSlackNs
    child.mempolicy = t.mempolicy                                       // set_mempolicy's: inherited by threads and children
    inheritSched(child, from: t)
    if flags & CLONE_IO_ != 0 { child.ioContext = t.ioContext }
    if flags & CLONE_SYSVSEM_ != 0 { child.semUndo = t.semUndo }
    child.cpuMask = t.cpuMask                                           // Task.pin keeps the stub within it
    child.ownUTS = flags & CLONE_NEWUTS_ != 0 ? t.uts.copy(owner: childCreds.userNS) : t.ownUTS
    child.ownIPC = flags & CLONE_NEWIPC_ != 0 ? IPCNamespace() : t.ownIPC
    child.ownNet = flags & CLONE_NEWNET_ != 0 ? NetNamespace(owner: childCreds.userNS) : t.ownNet
    // A new cgroup namespace is rooted at the parent's cgroup.
    child.ownCgroupNS = flags & CLONE_NEWCGROUP_ != 0 ? CgroupNamespace(root: t.tg.cgroup) : t.ownCgroupNS
    child.stubLayers = t.stubLayers
    child.seccomp = t.seccomp                                           // filters are inherited (Kernel/SeccompFilters.swift)
    child.hasSeccomp = t.hasSeccomp
    child.setSessionKeyring(t.sessionKeyring)                           // the thread keyring is not inherited
    child.reqkeyDefault = t.reqkeyDefault
    if !isThread {
        child.altStackSP = t.altStackSP; child.altStackSize = t.altStackSize; child.altStackFlags = t.altStackFlags
    }
    tg.tasks.append(child)
    k.tasks[tid] = child

    if flags & CLONE_PARENT_SETTID_ != 0 { _ = t.writeI32(ptid, t.vpid(tid)) }
    if flags & CLONE_PIDFD_ != 0 {
        let f = PidFD(tg: tg, flags: 0)
        let fd = t.fds.install(f, cloexec: true, limit: fdLimit(t))
        if fd < 0 { f.release() }                   // the child runs anyway; the word keeps its value
        else { _ = t.writeI32(pidfdAddr, Int32(fd)) }
    }
    if flags & CLONE_CHILD_CLEARTID_ != 0 { child.clearChildTid = ctid }
    var regs = t.thread.regs
    regs.rax = 0
    regs.orig_rax = UInt64.max
    if stack != 0 { regs.rsp = stack }
    if flags & CLONE_SETTLS_ != 0 { regs.fs_base = tls }
    let setChildTid = flags & CLONE_CHILD_SETTID_ != 0
    // Cloned from the spare thread (FastPath.swift): the creator's FPU and
    // vector state, which a host clone would have copied.
    var xstate: [UInt8]? = nil
    if fromSpare, case .success(let a) = t.thread.getXState() { xstate = a }
    child.onStart = { c in
        c.thread.regs = regs
        c.thread.markDirty()
        if let a = xstate { _ = c.thread.setXState(a) }
        if setChildTid { _ = c.writeI32(ctid, c.vpid(c.tid)) }
    }
    if flags & CLONE_VFORK_ != 0 { child.vforkParent = t }
    let traceEvent = traceNewChild(t, child, flags: flags)
    child.startDriver(on: driver)
    // The tracer hears of the child (PTRACE_EVENT_FORK, VFORK or CLONE)
    // before a vfork parent waits for it.
    if let (event, option) = traceEvent { t.ptraceEvent(event, option: option, msg: UInt64(t.vpid(tid))) }
    if flags & CLONE_VFORK_ != 0 {
        // Linux's vfork wait is killable only: a signal that arrives
        // meanwhile (the SIGCHLD of another child) stays pending until
        // the child execs or exits. Waking on it would spin here with mu
        // held, and the child could never run to release us.
        while !child.vforkDone {
            if t.block(deadline: nil, killable: true) == .interrupted { break }
        }
        t.ptraceEvent(PTRACE_EVENT_VFORK_DONE, option: PTRACE_O_TRACEVFORKDONE, msg: UInt64(t.vpid(tid)))
    }
    return Int(t.vpid(tid))
}

/// A traced task's new child is traced by the same tracer, with the same
/// options, when the tracer asked for children of its kind (ptrace(2):
/// PTRACE_O_TRACEVFORK for vfork, TRACECLONE for a child whose exit signal
/// is not SIGCHLD or a thread, TRACEFORK otherwise; never with
/// CLONE_UNTRACED). The child starts with a stop: SIGSTOP, or
/// PTRACE_EVENT_STOP under PTRACE_SEIZE. Returns the event the parent
/// reports. Requires: Kernel.mu held.
private func traceNewChild(_ t: Task, _ child: Task, flags: UInt64) -> (Int32, UInt64)? {
    guard let p = t.ptrace, let tracer = p.tracer, flags & CLONE_UNTRACED_ == 0 else { return nil }
    let kind: (Int32, UInt64)
    if flags & CLONE_VFORK_ != 0 { kind = (PTRACE_EVENT_VFORK, PTRACE_O_TRACEVFORK) }
    else if flags & 0xff != UInt64(SIGCHLD) || flags & CLONE_THREAD_ != 0 { kind = (PTRACE_EVENT_CLONE, PTRACE_O_TRACECLONE) }
    else { kind = (PTRACE_EVENT_FORK, PTRACE_O_TRACEFORK) }
    guard p.options & kind.1 != 0 else { return nil }
    let c = PtraceState(tracer: tracer)
    c.options = p.options
    c.seized = p.seized
    child.ptrace = c
    tracer.tracesNonChildren = true
    if p.seized { c.pendingStop = (SIGTRAP | PTRACE_EVENT_STOP << 8, 0) } else { child.sendSignal(SIGSTOP, SigInfo(signo: SIGSTOP)) }
    return kind
}

// MARK: - wait

private let WNOTHREAD_: Int32 = 0x20000000, WALL_: Int32 = 0x40000000, WCLONE_ = Int32(bitPattern: 0x80000000)

/// Finds a child matching `pid` per wait4's rules.
private func matches(_ t: Task, _ c: ThreadGroup, _ pid: Int32, _ options: Int32) -> Bool {
    if pid > 0 { if c.tgid != pid { return false } }
    else if pid == 0 { if c.pgid != t.tg.pgid { return false } }
    else if pid < -1 { if c.pgid != -pid { return false } }
    // __WNOTHREAD: only the children this thread made.
    if options & WNOTHREAD_ != 0 && c.parentThread !== t { return false }
    // __WCLONE / __WALL: which children by exit signal; a child this
    // group traces is always eligible (Linux >= 4.7), zombie or not.
    let wall = options & WALL_ != 0, wclone = options & WCLONE_ != 0
    if !wall && wclone != (c.exitSignal != SIGCHLD) {
        let traced = c.tasks.contains { $0.ptrace?.tracer === t.tg } || c.exitedLeader?.ptrace?.tracer === t.tg
        if !traced { return false }
    }
    return true
}

/// A waited-for child's struct rusage (wait4, waitid's fifth argument):
/// its CPU times and peak resident set with those of its own waited-for
/// children, as Linux's RUSAGE_BOTH; the other fields are zero.
private func childRusage(_ c: ThreadGroup) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 144)
    let u = c.utimeNs + c.childUtimeNs, s = c.stimeNs + c.childStimeNs
    put64(&b, 0, UInt64(u / 1_000_000_000)); put64(&b, 8, UInt64(u % 1_000_000_000 / 1000))
    put64(&b, 16, UInt64(s / 1_000_000_000)); put64(&b, 24, UInt64(s % 1_000_000_000 / 1000))
    put64(&b, 32, UInt64(max(c.maxRSSKB, c.childMaxRSSKB)))
    return b
}

/// A traced stop names the thread that stopped (wait returns its tid).
enum WaitEvent { case exited, stopped, continued, traced(Int32, tid: Int32) }

/// A ptrace stop of a tracee in `c` that `t`'s group traces, not yet
/// reported; taken when `consume`. `tid`: only that thread's (a wait for
/// a pid names one task, as Linux's wait_consider_task).
/// Requires: Kernel.mu held.
private func ptraceStop(_ t: Task, _ c: ThreadGroup, consume: Bool, tid: Int32? = nil) -> WaitEvent? {
    guard let tr = c.tasks.first(where: { (tid == nil || $0.tid == tid) && ($0.ptrace.map { $0.tracer === t.tg && $0.stopped && !$0.reported } ?? false) }) else { return nil }
    // A wait that takes a signal-delivery stop cancels the signal (Linux's
    // wait_task_stopped clears the tracee's exit_code): a tracer that then
    // exits or detaches without naming one leaves the tracee none.
    if consume { tr.ptrace!.reported = true; tr.ptrace!.resumeSignal = 0 }
    return .traced(tr.ptrace!.stopSignal, tid: tr.tid)
}

/// The common engine of wait4 and waitid.
/// Returns (child, event) or an errno result.
func waitForChild(_ t: Task, pid pidArg: Int32, options: Int32, exited: Bool, stopped: Bool, continued: Bool, consume: Bool) -> Result<(ThreadGroup, WaitEvent)?, SysErr> {
    let pid = t.gpid(pidArg)
    var interrupted = false
    while true {
        var any = false
        // Children of any thread of this group are ours (threads share children).
        for c in t.tg.children where matches(t, c, pid, options) {
            // Linux's wait_consider_task: a zombie counts only for WEXITED
            // (waitid(WSTOPPED) with only a zombie child is ECHILD; it waited for ever).
            if c.zombie && !exited { continue }
            any = true
            // A traced child's ptrace stops are reported without WUNTRACED.
            if let ev = ptraceStop(t, c, consume: consume, tid: pid > 0 ? pid : nil) { return .success((c, ev)) }
            // A child traced by another process: its tracer collects the
            // exit first (ptrace(2)); the parent waits until it has.
            if exited && c.zombie, let tr = c.exitedLeader?.ptrace?.tracer, tr !== t.tg { continue }
            if exited && c.zombie {
                if consume { t.tg.reap(c) }
                return .success((c, .exited))
            }
            if stopped && c.stopped && !c.stopReported {
                if consume { c.stopReported = true }
                return .success((c, .stopped))
            }
            if continued && !c.continuedReported {
                if consume { c.continuedReported = true }
                return .success((c, .continued))
            }
        }
        // Tracees that are not children (PTRACE_ATTACH), or a child's thread
        // named by its tid: their stops only.
        if t.tg.tracesNonChildren {
            for tr in t.kernel.tasks.values where tr.ptrace?.tracer === t.tg && (pid == -1 || pid == tr.tid)
                && (tr.tg.parent !== t.tg || (pid == tr.tid && tr.tid != tr.tg.tgid)) {
                any = true
                if let ev = ptraceStop(t, tr.tg, consume: consume, tid: tr.tid) { return .success((tr.tg, ev)) }
            }
            // A traced process that exited: the tracer's to collect first;
            // collecting it detaches it and lets its parent reap it.
            for g in t.kernel.threadGroups.values where g.zombie && g.parent !== t.tg && (pid == -1 || pid == g.tgid) {
                guard let leader = g.exitedLeader, leader.ptrace?.tracer === t.tg else { continue }
                any = true
                if !exited { continue }
                if consume {
                    leader.ptrace = nil
                    g.parent?.notifyChildEvent(g)
                }
                return .success((g, .exited))
            }
        }
        if !any { return .failure(SysErr(err(ECHILD))) }
        if options & WNOHANG != 0 { return .success(nil) }
        // A child event that came with the signal is reported first.
        if interrupted { return .failure(SysErr(-ERESTARTSYS)) }
        t.tg.childWaiters.add(t)
        let r = t.block(deadline: nil)
        t.tg.childWaiters.remove(t)
        if r == .interrupted { interrupted = true }
    }
}

func sysWait4(_ t: Task, _ pid: Int32, _ status: UInt64, _ options: Int32, _ rusage: UInt64) -> Int {
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | WALL_ | WCLONE_ | WNOTHREAD_) != 0 { return err(EINVAL) }
    if pid == Int32.min { return err(ESRCH) }
    switch waitForChild(t, pid: pid, options: options, exited: true, stopped: options & WUNTRACED != 0,
                        continued: options & WCONTINUED != 0, consume: true) {
    case .failure(let e): return e.r
    case .success(nil): return 0
    case .success(let (c, ev)?):
        var ws: Int32
        switch ev {
        case .exited: ws = c.exitCode
        case .stopped: ws = (c.stopSignal << 8) | 0x7f
        case .continued: ws = 0xffff
        case .traced(let sig, _): ws = (sig << 8) | 0x7f
        }
        if status != 0 && !t.writeI32(status, ws) { return err(EFAULT) }
        if rusage != 0 && !t.copyOut(rusage, childRusage(c)) { return err(EFAULT) }
        if case .traced(_, let tid) = ev { return Int(t.vpid(tid)) }
        return Int(t.vpid(c.tgid))
    }
}

func sysWaitid(_ t: Task, _ a: Args) -> Int {
    let idtype = a.int(0), id = a.int(1), options = a.int(3)
    let WEXITED_: Int32 = 4, WSTOPPED_: Int32 = 2, WNOWAIT_: Int32 = 0x01000000
    if options & ~(WNOHANG | WNOWAIT_ | WEXITED_ | WSTOPPED_ | WCONTINUED | WNOTHREAD_ | WCLONE_ | WALL_) != 0 { return err(EINVAL) }
    if options & (WEXITED_ | WSTOPPED_ | WCONTINUED) == 0 { return err(EINVAL) }
    var pid: Int32, nonblockingPidfd = false
    switch idtype {
    case 0: pid = -1                       // P_ALL
    case 1: if id <= 0 { return err(EINVAL) }; pid = id  // P_PID
    case 2: pid = id == 0 ? 0 : -id        // P_PGID
    case 3:                                // P_PIDFD: the process it names (which must be a child)
        guard let f = t.fds.get(id), let g = pidfdGroup(f), f is PidFD else { return err(EBADF) }
        if g.reaped { return err(ECHILD) }
        pid = t.vpid(g.tgid)
        nonblockingPidfd = f.nonblocking
    default: return err(EINVAL)
    }
    // Linux: a nonblocking pidfd makes the wait WNOHANG, and "nothing yet" EAGAIN.
    let eagain = nonblockingPidfd && options & WNOHANG == 0
    switch waitForChild(t, pid: pid, options: eagain ? options | WNOHANG : options, exited: options & WEXITED_ != 0, stopped: options & WSTOPPED_ != 0,
                        continued: options & WCONTINUED != 0, consume: options & WNOWAIT_ == 0) {
    case .failure(let e): return e.r
    case .success(nil):
        if eagain { return err(EAGAIN) }
        if a.a2 != 0 { _ = t.copyOut(a.a2, [UInt8](repeating: 0, count: 128)) }
        return 0
    case .success(let (c, ev)?):
        var info = SigInfo(signo: SIGCHLD)
        info.pid = t.vpid(c.tgid)
        info.uid = t.creds.userNS.showUID(c.creds.uid)
        switch ev {
        case .exited: info.code = c.childCode(); info.status = c.childStatusValue()
        case .stopped: info.code = 5; info.status = c.stopSignal
        case .continued: info.code = 6; info.status = SIGCONT
        case .traced(let sig, let tid): info.code = 4; info.status = sig; info.pid = t.vpid(tid)   // CLD_TRAPPED
        }
        if a.a2 != 0 && !t.copyOut(a.a2, info.bytes()) { return err(EFAULT) }
        if a.a4 != 0 && !t.copyOut(a.a4, childRusage(c)) { return err(EFAULT) }
        return 0
    }
}

func sysSetpgid(_ t: Task, _ localPid: Int32, _ localPgid: Int32) -> Int {
    let k = t.kernel
    if localPgid < 0 { return err(EINVAL) }
    let pidArg = t.gpid(localPid), pgidArg = t.gpid(localPgid)
    let target: ThreadGroup
    if pidArg == 0 || pidArg == t.tg.tgid { target = t.tg }
    else {
        guard let c = k.threadGroups[pidArg], !c.reaped, c.parent === t.tg else { return err(ESRCH) }
        // A child in another session is EPERM; one that has exec'd, EACCES.
        if c.sid != t.tg.sid { return err(EPERM) }
        if c.didExec { return err(EACCES) }
        target = c
    }
    if target.sid == target.tgid { return err(EPERM) }   // a session leader
    if target.sid != t.tg.sid { return err(EPERM) }
    let pgid = pgidArg == 0 ? target.tgid : pgidArg
    if pgid != target.tgid && !k.threadGroups.values.contains(where: { $0.pgid == pgid && $0.sid == t.tg.sid && !$0.reaped }) {
        return err(EPERM)
    }
    target.pgid = pgid
    return 0
}

// Served with or without Kernel.mu (LockFree in Dispatch.swift), so they
// read only what no other thread changes under them: a task's tid and
// thread group and the group's tgid are fixed for the task's life, and the
// parent's pid is the atomic copy ThreadGroup keeps beside `parent`.
// vpid is arithmetic on the pid (Kernel/PidNamespaces.swift).
func sysGetpid(_ t: Task, _: Args) -> Int { Int(t.vpid(t.tg.tgid)) }
func sysGettid(_ t: Task, _: Args) -> Int { Int(t.vpid(t.tid)) }
/// A parent in another namespace (the init of an application's) is 0, as on Linux.
/// A parent is in the caller's pid namespace or in one above it, which the
/// caller cannot see (0); no map of Kernel's is read: the call is LockFree.
func sysGetppid(_ t: Task, _: Args) -> Int {
    let p = t.tg.parentTgid.load(ordering: .relaxed), own = t.tid & ~PidNS.mask
    if own == 0 { return Int(p) }
    return p & ~PidNS.mask == own ? Int(p & PidNS.mask) : 0
}

// MARK: - pidfd, kcmp

/// pidfd_open(pid, flags): a PidFD (FSImpl/PidFD.swift) for a process,
/// always close-on-exec; flags may only be PIDFD_NONBLOCK (O_NONBLOCK) or
/// PIDFD_THREAD (O_EXCL, a pidfd for a thread that is not a leader).
func sysPidfdOpen(_ t: Task, _ a: Args) -> Int {
    let flags = a.uint(1), pid = a.int(0)
    if flags & ~UInt32(O_NONBLOCK | O_EXCL) != 0 || pid <= 0 { return err(EINVAL) }
    let tg: ThreadGroup
    var thread: Task? = nil
    if let x = t.kernel.task(pid, by: t), !x.tg.reaped {
        // Not a leader, without PIDFD_THREAD: ENOENT, as the host's Linux
        // (6.15+; fs/80 compares with it; gVisor's pidfd_test expects EINVAL
        // from the 6.0 uname names, and fails that one line).
        if flags & UInt32(O_EXCL) == 0 && x.tid != x.tg.tgid { return err(ENOENT) }
        tg = x.tg
        if x.tid != x.tg.tgid { thread = x }
    } else if let z = t.kernel.group(pid, by: t), z.zombie, !z.reaped {
        // A process that exited and is not reaped yet still has its pid:
        // Linux opens a pidfd of it (already readable). asyncio's pidfd
        // child watcher opens one just after the child starts, which a
        // quick child has often already left.
        tg = z
    } else {
        return err(ESRCH)
    }
    let f = PidFD(tg: tg, flags: Int32(flags) & (O_NONBLOCK | O_EXCL), thread: thread)
    let fd = t.fds.install(f, cloexec: true, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

/// pidfd_getfd(pidfd, targetfd, flags): a duplicate of another process's
/// descriptor, for a caller that may ptrace it; close-on-exec.
func sysPidfdGetfd(_ t: Task, _ a: Args) -> Int {
    if a.uint(2) != 0 { return err(EINVAL) }
    guard let pf = t.fds.get(a.int(0)), let p = pf as? PidFD else { return err(EBADF) }
    guard !p.tg.zombie, !p.tg.reaped, let owner = p.tg.leader ?? p.tg.tasks.first else { return err(ESRCH) }
    if !mayAttach(t, p.tg) { return err(EPERM) }
    guard let f = owner.fds.get(a.int(1)) else { return err(EBADF) }
    return t.fds.install(f, cloexec: true, limit: fdLimit(t))
}

/// A shared thing with no other Sentry object behind it (see Task.ioContext).
final class KcmpToken {}

/// kcmp(pid1, pid2, type, idx1, idx2): whether two tasks share a resource:
/// 0 the same, 1 or 2 an order between different ones (by the Sentry
/// objects' addresses), needing ptrace read access to both (EPERM).
/// A zombie's leader is found (schedTarget) but, as on Linux, has let go
/// of its memory, files, fs context, I/O context and undo list at exit:
/// those compare as none (two zombies' are the same), and it has no file
/// to compare (EBADF); its signal handlers stay with the process.
func sysKcmp(_ t: Task, _ a: Args) -> Int {
    guard let x = schedTarget(t, a.int(0)), let y = schedTarget(t, a.int(1)) else { return err(ESRCH) }
    if !mayAttach(t, x.tg) || !mayAttach(t, y.tg) { return err(EPERM) }
    func order(_ l: AnyObject?, _ r: AnyObject?) -> Int {
        let p = l.map { UInt(bitPattern: ObjectIdentifier($0).hashValue) } ?? 0
        let q = r.map { UInt(bitPattern: ObjectIdentifier($0).hashValue) } ?? 0
        return p == q ? 0 : (p < q ? 1 : 2)
    }
    func held(_ o: Task, _ r: AnyObject) -> AnyObject? { o.exited ? nil : r }
    switch a.int(2) {
    case 0:                                                                   // KCMP_FILE
        guard !x.exited, !y.exited, let f = x.fds.get(Int32(truncatingIfNeeded: a.a3)),
              let g = y.fds.get(Int32(truncatingIfNeeded: a.a4)) else { return err(EBADF) }
        return order(f, g)
    case 1: return order(held(x, x.mm), held(y, y.mm))                        // KCMP_VM
    case 2: return order(held(x, x.fds), held(y, y.fds))                      // KCMP_FILES
    case 3: return order(held(x, x.fs), held(y, y.fs))                        // KCMP_FS
    case 4: return order(x.tg.handlers, y.tg.handlers)                        // KCMP_SIGHAND
    case 5: return order(held(x, x.ioContext), held(y, y.ioContext))          // KCMP_IO
    case 6: return order(held(x, x.semUndo), held(y, y.semUndo))              // KCMP_SYSVSEM
    case 7: return err(EOPNOTSUPP)                                            // KCMP_EPOLL_TFD: not offered
    default: return err(EINVAL)
    }
}
