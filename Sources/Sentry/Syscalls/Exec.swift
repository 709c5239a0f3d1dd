// execve: resolving the program, #! scripts, and replacing the image.

import CMoat
import Glibc
import Platform

struct ExecTarget {
    var file: FileDescription & ByteSource
    var path: Path
    var argv: [[UInt8]]
    var elf: ELFInfo
    var interp: (FileDescription & ByteSource, ELFInfo)?
}

/// Resolves `path` to a loadable program, following #! (five levels of
/// interpreter scripts, as Linux's exec_binprm allows; a sixth is ELOOP).
/// `resolved`: the file itself (execveat with AT_EMPTY_PATH; `path` is then
/// the /dev/fd/N name a script's interpreter gets). `follow` false:
/// execveat's AT_SYMLINK_NOFOLLOW, a final symlink is ELOOP.
/// `pathInaccessible`: that /dev/fd name will be closed by the exec (a
/// close-on-exec dirfd): a script, whose interpreter would open it, is
/// ENOENT (Linux's BINPRM_FLAGS_PATH_INACCESSIBLE).
func prepareExec(_ t: Task, dirfd: Int32, start: Path, _ path: [UInt8], argv: [[UInt8]], depth: Int = 0,
                 resolved: Path? = nil, follow: Bool = true, pathInaccessible: Bool = false, shownAs: [UInt8]? = nil) -> Result<ExecTarget, Errno> {
    if depth > 5 { return .failure(Errno(ELOOP)) }
    let p: Path
    if let r = resolved {
        p = r
    } else {
        if path.isEmpty { return .failure(Errno(ENOENT)) }
        switch t.kernel.vfs.resolve(t.fs, start: start, path, follow: follow, searcher: t.searcher) {
        case .success(let x): p = x
        case .failure(let e): return .failure(e)
        }
        if p.inode.isSymlink { return .failure(Errno(ELOOP)) }
    }
    let ino = p.inode
    if ino.isDir { return .failure(Errno(EACCES)) }
    if !ino.isRegular { return .failure(Errno(EACCES)) }
    if !t.mayAccess(ino, 1) { return .failure(Errno(EACCES)) }
    // Nothing on a noexec mount runs (do_open_execat).
    if p.mount.flags & MountFlags.noexec != 0 { return .failure(Errno(EACCES)) }
    // Landlock: exec opens the file for reading and execution.
    if let e = t.landlockDenies(p, Landlock.execute | Landlock.readFile) { return .failure(e) }
    // A file open for writing may not be run (Linux's deny_write_access).
    if ino.writers > 0 { return .failure(Errno(ETXTBSY)) }
    let opened: FileDescription
    switch ino.open(t, flags: O_RDONLY) { case .success(let f): opened = f; case .failure(let e): return .failure(e) }
    opened.path = p
    t.kernel.fanotifyExec(p, by: t)
    // inotify hears exec open and read the file (IN_OPEN, IN_ACCESS); a
    // script's is closed once its interpreter is found (IN_CLOSE_NOWRITE).
    t.kernel.inotifyFile(p, IN_OPEN_)
    guard let file = opened as? (FileDescription & ByteSource) else { opened.release(); return .failure(Errno(EACCES)) }
    guard let head = file.pread(0, 256) else { file.release(); return .failure(Errno(EIO)) }
    t.kernel.inotifyFile(p, IN_ACCESS_)
    if head.count >= 2 && head[0] == 35 && head[1] == 33 { // "#!"
        file.release()
        t.kernel.inotifyFile(p, IN_CLOSE_NOWRITE_)
        if pathInaccessible { return .failure(Errno(ENOENT)) }
        var line = Array(head[2...])
        if let nl = line.firstIndex(of: 10) { line = Array(line[..<nl]) } else if head.count == 256 { return .failure(Errno(ENOEXEC)) }
        let trimmed = line.split(maxSplits: 1, omittingEmptySubsequences: true, whereSeparator: { $0 == 32 || $0 == 9 })
        guard let interp = trimmed.first.map(Array.init) else { return .failure(Errno(ENOEXEC)) }
        var newArgv: [[UInt8]] = [interp]
        if trimmed.count > 1 {
            // The one argument: the rest of the line, blanks around it dropped.
            var arg = Array(trimmed[1].drop { $0 == 32 || $0 == 9 })
            while let l = arg.last, l == 32 || l == 9 || l == 13 { arg.removeLast() }
            if !arg.isEmpty { newArgv.append(arg) }
        }
        newArgv.append(shownAs ?? path)
        newArgv.append(contentsOf: argv.dropFirst())
        // The interpreter's path is the caller's to resolve: a relative one
        // from its working directory (Linux's open_exec), not from dirfd.
        return prepareExec(t, dirfd: AT_FDCWD_, start: t.fs.cwd, interp, argv: newArgv, depth: depth + 1)
    }
    switch parseELF(file) {
    case .success(let elf):
        var target = ExecTarget(file: file, path: p, argv: argv, elf: elf, interp: nil)
        if let ip = elf.interp {
            // An empty name opens the working directory on Linux (do_open_execat), a
            // directory: EACCES; a relative one is resolved from there too.
            let resolvedInterp: Result<Path, Errno> = ip.isEmpty ? .success(t.fs.cwd) : t.kernel.vfs.resolve(t.fs, start: t.fs.cwd, ip, follow: true, searcher: t.searcher)
            switch resolvedInterp {
            case .success(let q):
                // Linux opens the interpreter as the program (open_exec).
                if !q.inode.isRegular || !t.mayAccess(q.inode, 1) { file.release(); return .failure(Errno(EACCES)) }
                if let e = t.landlockDenies(q, Landlock.execute | Landlock.readFile) { file.release(); return .failure(e) }
                guard case .success(let f) = q.inode.open(t, flags: O_RDONLY), let src = f as? (FileDescription & ByteSource) else {
                    file.release(); return .failure(Errno(ELIBBAD))
                }
                f.path = q
                guard case .success(let ie) = parseELF(src) else { src.release(); file.release(); return .failure(Errno(ELIBBAD)) }
                target.interp = (src, ie)
            case .failure(let e):
                file.release()
                return .failure(e)
            }
        }
        return .success(target)
    case .failure(let e):
        file.release()
        return .failure(e)
    }
}

/// Replaces the task's image. After the point of no return a failure kills
/// the process (as Linux does). Requires: mu held.
func execImage(_ t: Task, _ target: ExecTarget, envp: [[UInt8]], execfn: [UInt8]) -> Int {
    var killedStub: pid_t = 0
    defer {
        target.file.release(); target.interp?.0.release()
        if killedStub > 0 { PtraceThread.reapKilled(killedStub) }
    }
    // Other threads die first.
    let others = t.tg.tasks.filter { $0 !== t }
    for o in others { o.requestExit() }
    while t.tg.tasks.count > 1 {
        if t.exitRequested { return 0 }
        _ = t.block(deadline: Kernel.now(CLOCK_MONOTONIC) + 1_000_000)
    }
    // A thread that is not the leader takes over the leader's thread id
    // (Linux's de_thread): afterwards gettid() == getpid(), its old id is
    // free, and the departed leader is gone without notice to anyone.
    if t.tid != t.tg.tgid {
        t.kernel.tasks[t.tid] = nil
        t.tid = t.tg.tgid
        t.kernel.tasks[t.tid] = t
        t.tg.exitedLeader = nil
        t.tg.lastCreds = t.creds
    }
    // A fresh address space: new page tables for a KVM vCPU
    // (Kernel/KVMTasks.swift), a new stub process otherwise.
    if !t.thread.hasStub {
        if !KVMTasks.freshAddressSpace(t) { return err(ENOMEM) }
    } else {
        let newPid: pid_t
        switch StubFactory.shared.newAddressSpace(keepSpare: true) {
        case .success(let p): newPid = p
        case .failure: return err(ENOMEM)
        }
        let oldHost = t.hostPid
        _ = kill(oldHost, SIGKILL)
        if t.hostTid == oldHost {
            // The old stub tears its address space down (a forked copy of
            // the parent's) while the new image loads; it is reaped when
            // execImage returns, by then mostly without waiting. Its pid
            // stays taken (a zombie) until then.
            killedStub = oldHost
        } else {
            t.thread.reap()
            reapHost(oldHost)
        }
        do { try t.thread.reseize(newPid) } catch {
            t.tg.beginExit(code: SIGKILL, bySignal: true)
            return 0
        }
        t.hostPid = newPid
        t.hostTid = newPid
        t.pin()
    }
    t.stubLayers = 0
    t.fastCandidates = 0
    t.leaveAddressSpace()
    t.mm = MemoryManager()
    t.mm.setExe(target.path.inode)
    t.mm.exePath = String(decoding: t.kernel.vfs.pathString(target.path), as: UTF8.self)

    let elf = target.elf
    let bias: UInt64 = elf.type == 3 ? 0x5555_5555_4000 : 0
    var end: UInt64
    switch loadSegments(t, target.file, elf, bias: bias, name: t.mm.exePath) {
    case .success(let e): end = e
    case .failure:
        t.tg.beginExit(code: SIGSEGV, bySignal: true)
        return 0
    }
    var entry = elf.entry &+ bias
    var interpBase: UInt64 = 0
    if let (isrc, ie) = target.interp {
        interpBase = 0x7fff_e000_0000
        let interpName = isrc.path.map { String(decoding: t.kernel.vfs.pathString($0), as: UTF8.self) } ?? ""
        switch loadSegments(t, isrc, ie, bias: interpBase, name: interpName) {
        case .success: entry = ie.entry &+ interpBase
        case .failure:
            t.tg.beginExit(code: SIGSEGV, bySignal: true)
            return 0
        }
    }
    t.mm.brkStart = end
    t.mm.brkEnd = end
    // AT_PHDR: where the program headers are in memory.
    var phdr: UInt64 = 0
    for s in elf.segments where s.offset <= elf.phoff && elf.phoff < s.offset + s.filesz {
        phdr = s.vaddr &+ (elf.phoff - s.offset) &+ bias
    }
    // The new credentials: set-id bits and capabilities (Credentials.swift).
    let ino = target.path.inode
    // Unsafe to gain privileges (Linux's check_unsafe_exec): a tracer
    // without CAP_SYS_PTRACE, or a file-system context (CLONE_FS) shared
    // with another process.
    let tracerCapable = t.ptrace?.tracer.map { $0.creds.has(Cap.sysPtrace) } ?? true
    let sharedFS = t.kernel.tasks.values.contains { $0.fs === t.fs && $0.tg !== t.tg }
    let (c, secure) = t.creds.afterExec(fileMode: ino.mode, fileUID: ino.uid, fileGID: ino.gid, unsafe: !tracerCapable || sharedFS)
    // A 64-bit program drops READ_IMPLIES_EXEC; a set-id one the rest of
    // what could weaken it (Linux's PER_CLEAR_ON_SETID).
    t.personality &= ~Personality.readImpliesExec
    if secure { t.personality &= ~Personality.clearOnSetID }
    t.creds = c
    // POSIX timers do not survive exec.
    for tm in t.tg.posixTimers.values { if let s = tm.scheduled { t.kernel.timers.cancel(s) } }
    t.tg.posixTimers.removeAll()
    t.tg.membarrierRegistered = false
    // On KVM the vDSO's data page is a shared window (KVMTasks.swift); its
    // clock reads the TSC, so only where the guest's TSC is the host's.
    let vdso = t.thread.hasStub || KVMTasks.tscIsHost ? (VDSO.shared?.map(t) ?? 0) : 0
    let auxv: [(UInt64, UInt64)] = [
        (33, vdso),                               // AT_SYSINFO_EHDR (dropped below when there is no vDSO)
        (16, UInt64(getauxval(16))),              // AT_HWCAP
        (6, 4096),                                // AT_PAGESZ
        (17, 100),                                // AT_CLKTCK
        (3, phdr), (4, 56), (5, UInt64(elf.phnum)),
        (7, interpBase),                          // AT_BASE
        (8, 0),                                   // AT_FLAGS
        (9, elf.entry &+ bias),                   // AT_ENTRY
        (11, UInt64(c.uid)), (12, UInt64(c.euid)), (13, UInt64(c.gid)), (14, UInt64(c.egid)),
        (23, secure ? 1 : 0),                     // AT_SECURE
        (26, UInt64(getauxval(26))),              // AT_HWCAP2
    ].filter { $0.0 != 33 || $0.1 != 0 }
    let sp: UInt64
    switch buildStack(t, argv: target.argv, envp: envp, execfn: execfn, auxv: auxv) {
    case .success(let s): sp = s
    case .failure:
        t.tg.beginExit(code: SIGSEGV, bySignal: true)
        return 0
    }
    var r = t.thread.regs
    let cs = r.cs, ss = r.ss, ds = r.ds, es = r.es
    r = Registers()
    r.cs = cs; r.ss = ss; r.ds = ds; r.es = es
    r.rip = entry
    r.rsp = sp
    r.eflags = 0x202
    r.orig_rax = UInt64.max
    t.thread.regs = r
    t.thread.markDirty()
    var fp = FPRegisters()
    fp.cwd = 0x37f
    fp.mxcsr = 0x1f80
    _ = t.thread.setFP(&fp)

    // The rest of exec's effects. A table shared with CLONE_FILES (a vfork
    // child's) is copied first: closing on exec must not close the
    // parent's descriptors (Linux's unshare_files in exec).
    t.unshareFDTable()
    t.fds.closeOnExec()
    // The new program starts without the thread and process keyrings (the
    // session keyring stays), as Linux's prepare_exec_creds.
    if let k = t.threadKeyring { t.keyStore.release(k); t.threadKeyring = nil }
    if let k = t.tg.processKeyring { t.keyStore.release(k); t.tg.processKeyring = nil }
    let h = t.tg.handlers
    let fresh = SignalHandlers()
    for i in 1..<65 where h.actions[i].handler == 1 { fresh.actions[i].handler = 1 }
    t.tg.handlers = fresh
    t.altStackSP = 0; t.altStackSize = 0; t.altStackFlags = SS_DISABLE
    // Like Linux, the name is the last component of the path given to execve
    // (not of the file it resolved to: /bin/cat -> busybox is "cat").
    let base = execfn.split(separator: 47).last.map(Array.init) ?? execfn
    t.comm = Array(base.prefix(15))
    t.tg.comm = t.comm
    t.tg.didExec = true
    // Dumpable again, unless the effective ids differ from the real ones
    // (suid_dumpable's default, 0, as Linux's begin_new_exec decides).
    t.tg.dumpable = c.euid == c.uid && c.egid == c.gid ? 1 : 0
    t.releaseVfork()
    return 0
}

func reapHost(_ pid: pid_t) {
    var st: Int32 = 0
    while waitpid(pid, &st, 0x40000000 /* __WALL */) < 0 && errno == EINTR {}
}

func sysExecve(_ t: Task, _ dirfd: Int32, _ pathAddr: UInt64, _ argvAddr: UInt64, _ envAddr: UInt64, _ flags: Int32) -> Int {
    let path: [UInt8]
    switch t.readPath(pathAddr) { case .success(let p): path = p; case .failure(let e): return e.ret }
    // Linux's room for argv and envp (strings and pointers): a quarter of
    // the stack limit, at most three quarters of 8 MB, at least 128 KB.
    let stack = t.tg.rlimits[RL_STACK].cur
    var budget = max(128 << 10, Int(min(stack / 4, UInt64(6 << 20))))
    var argv: [[UInt8]]
    let envp: [[UInt8]]
    switch t.copyInStringArray(argvAddr, budget: &budget) { case .success(let v): argv = v; case .failure(let e): return e.ret }
    // An empty argv becomes one empty string (Linux 5.18+): a program may
    // count on argv[0] existing.
    if argv.isEmpty { argv = [[]] }
    switch t.copyInStringArray(envAddr, budget: &budget) { case .success(let v): envp = v; case .failure(let e): return e.ret }
    if flags & ~(AT_EMPTY_PATH_ | AT_SYMLINK_NOFOLLOW_) != 0 { return err(EINVAL) }
    if path.isEmpty && flags & AT_EMPTY_PATH_ == 0 { return err(ENOENT) }
    let start: Path
    var resolved: Path? = nil
    var name = path
    var shown: [UInt8]? = nil
    if path.isEmpty {
        // The file dirfd refers to (an O_PATH descriptor will do), named
        // /dev/fd/N as Linux names it for a script's interpreter.
        if dirfd == AT_FDCWD_ { resolved = t.fs.cwd } else {
            guard let f = t.fds.get(dirfd) else { return err(EBADF) }
            guard let p = f.path else { return err(EACCES) }
            resolved = p
        }
        name = Array("/dev/fd/\(dirfd)".utf8)
        start = resolved!
    } else {
        switch t.startPath(dirfd, for: path) { case .success(let s): start = s; case .failure(let e): return e.ret }
        // A name relative to a descriptor is /dev/fd/N/NAME to the program
        // and its interpreter, as Linux's alloc_bprm names it.
        if path.first != 47 && dirfd != AT_FDCWD_ { shown = Array("/dev/fd/\(dirfd)/".utf8) + path }
    }
    // That /dev/fd name is gone once the exec closes a close-on-exec dirfd.
    let inaccessible = dirfd != AT_FDCWD_ && path.first != 47 && t.fds.get(dirfd) != nil && t.fds.cloexec(dirfd)
    switch prepareExec(t, dirfd: dirfd, start: start, name, argv: argv, resolved: resolved, follow: flags & AT_SYMLINK_NOFOLLOW_ == 0,
                       pathInaccessible: inaccessible, shownAs: shown) {
    case .success(let target):
        let formerTid = t.vpid(t.tid), formerGroup = t.tg
        let r = execImage(t, target, envp: envp, execfn: shown ?? name)
        if r == 0 { t.skipReturn = true }
        if r == 0 && formerTid != t.vpid(formerGroup.tgid) { Yama.shared.nonLeaderExec(formerGroup) }
        // A traced task stops after a successful execve: PTRACE_EVENT_EXEC
        // (its former thread id the event message) if the tracer asked for
        // it, else the legacy SIGTRAP (Syscalls/Ptrace.swift).
        if r == 0, let p = t.ptrace {
            if p.options & PTRACE_O_TRACEEXEC != 0 { p.pendingStop = (SIGTRAP | PTRACE_EVENT_EXEC << 8, UInt64(formerTid)) }
            else { t.sendSignal(SIGTRAP, SigInfo(signo: SIGTRAP)) }
        }
        return r
    case .failure(let e):
        return e.ret
    }
}
