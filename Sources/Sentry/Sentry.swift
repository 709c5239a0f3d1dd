// The Sentry's entry point: set up the kernel, the file systems, the
// application's init process, then wait for it to exit.

import CMoat
import Glibc
import GoferProtocol
import Platform

public struct SentryConfig {
    public var goferFD: Int32 = 3
    public var logFD: Int32 = -1
    public var debug = false
    public var strace = false
    public var argv: [String] = []
    public var env: [String] = []
    public var cwd = "/"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var hostname = "moat"
    /// Drop capabilities and install the seccomp allow-list before the
    /// application starts (only tests of the Sentry itself turn it off).
    public var confine = true
    /// A writable layer in Sentry memory over the (read-only) gofer root.
    public var overlay = false
    public init() {}
}

public enum SentryMain {
    /// Runs the sandbox; returns the exit status for the Sentry process
    /// (the init process's status; 128+N for death by signal N).
    public static func run(_ cfg: SentryConfig) -> Int32 {
        Log.shared.fd = cfg.logFD
        Log.shared.debug = cfg.debug
        signal(SIGPIPE, SIG_IGN)
        signal(SIGURG, SIG_IGN)
        // Termination requests from outside go to the application's init,
        // not to the Sentry: every thread blocks them and one forwards them.
        var forwarded = sigset_t()
        sigemptyset(&forwarded)
        for s in forwardedSignals { sigaddset(&forwarded, s) }
        pthread_sigmask(SIG_BLOCK, &forwarded, nil)
        do { try StubFactory.shared.start() } catch {
            return fatal("cannot start the stub: \(error)", 125)
        }
        let client = GoferClient(socketFD: cfg.goferFD)
        let rootInode: GoferInode
        switch client.attach() {
        case .success(let (fid, st)): rootInode = GoferInode(client: client, fid: fid, stat: st)
        case .failure(let e): return fatal("cannot attach to the root file system: errno \(e.rawValue)", 125)
        }
        let vfs = VFS()
        if cfg.overlay {
            let upper = TmpfsInode(mode: rootInode.mode, dev: 7, uid: rootInode.uid, gid: rootInode.gid)
            vfs.setRoot(OverlayInode(lower: rootInode, upper: upper, parent: nil, name: [47], upperDev: 7), fsType: "overlay", source: "overlay")
        } else {
            vfs.setRoot(rootInode, fsType: "9p", source: "none")
        }
        let k = Kernel(vfs: vfs)
        Kernel.shared = k
        k.strace = cfg.strace
        k.hostname = Array(cfg.hostname.utf8)
        k.lock()
        let fs0 = FSContext(root: vfs.rootPath, cwd: vfs.rootPath)
        for (dir, make) in [("proc", { () -> (Inode, String) in (k.makeProcFS(), "proc") }),
                            ("dev", { (makeDevFS(dev: 5), "devtmpfs") }),
                            ("tmp", { (TmpfsInode(mode: S_IFDIR_ | 0o1777, dev: 6), "tmpfs") })] {
            if case .success(let p) = vfs.resolve(fs0, start: vfs.rootPath, Array(("/" + dir).utf8)), p.inode.isDir {
                let (ino, type) = make()
                vfs.mount(ino, at: p, fsType: type, source: type == "devtmpfs" ? "udev" : type)
            }
        }
        // The init process.
        let tg = ThreadGroup(kernel: k, tgid: 1, parent: nil, handlers: SignalHandlers())
        tg.creds = Credentials(uid: cfg.uid, euid: cfg.uid, suid: cfg.uid, fsuid: cfg.uid,
                               gid: cfg.gid, egid: cfg.gid, sgid: cfg.gid, fsgid: cfg.gid, groups: [])
        k.threadGroups[1] = tg
        k.initTG = tg
        k.nextPid = 2
        let fds = FDTable()
        for fd in Int32(0)...2 {
            let d = fcntl(fd, F_DUPFD_CLOEXEC, 10)
            if d < 0 {
                // A closed stdio fd stays closed for the application.
                continue
            }
            let acc = fcntl(fd, F_GETFL) & O_ACCMODE
            let f = HostFileFD(fd: d, flags: acc, path: nil, hostOffset: true)
            f.path = Path(mount: vfs.rootMount, dentry: Dentry(name: Array("stdio".utf8), parent: nil, inode: StdioInode(ino: 0, mode: S_IFCHR_ | 0o620, dev: 0)))
            fds.installAt(f, fd, cloexec: false)
        }
        let stubPid: pid_t
        switch StubFactory.shared.newAddressSpace() {
        case .success(let p): stubPid = p
        case .failure(let e): k.unlock(); return fatal("cannot create an address space: \(e)", 125)
        }
        let fsctx = FSContext(root: vfs.rootPath, cwd: vfs.rootPath)
        let task = Task(kernel: k, tid: 1, tg: tg, hostPid: stubPid, hostTid: stubPid, mm: MemoryManager(),
                        fds: fds, fs: fsctx, comm: [])
        switch vfs.resolve(fsctx, start: vfs.rootPath, Array(cfg.cwd.utf8)) {
        case .success(let p) where p.inode.isDir: fsctx.cwd = p
        default:
            k.unlock()
            return fatal("cannot use \(cfg.cwd) as the working directory: no such directory in the root file system", 125)
        }
        // Resolve the command the way execvp does, so errors are reported
        // before the application starts.
        let env = cfg.env.map { Array($0.utf8) }
        guard let cmd = cfg.argv.first, !cmd.isEmpty else { k.unlock(); return fatal("no command given", 125) }
        var candidates: [[UInt8]] = []
        if cmd.contains("/") { candidates = [Array(cmd.utf8)] } else {
            let pathVar = cfg.env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            for dir in pathVar.split(separator: ":") { candidates.append(Array((dir + "/" + cmd).utf8)) }
        }
        var target: ExecTarget? = nil
        var firstErr: Int32 = ENOENT
        var execfn: [UInt8] = []
        for c in candidates {
            switch prepareExec(task, dirfd: AT_FDCWD_, start: fsctx.cwd, c, argv: cfg.argv.map { Array($0.utf8) }) {
            case .success(let t): target = t; execfn = c
            case .failure(let e): if firstErr == ENOENT { firstErr = e.code }
            }
            if target != nil { break }
        }
        guard let tgt = target else {
            k.unlock()
            let why = String(cString: strerror(firstErr))
            if firstErr == ENOENT {
                return fatal(cmd.contains("/") ? "exec \(cmd): no such file or directory" : "exec \(cmd): executable file not found in $PATH", 127)
            }
            return fatal("exec \(cmd): \(why)", 126)
        }
        // From here on the Sentry reads hostile input: confine it first
        // (fail closed). The stub factory's thread is covered by TSYNC.
        if cfg.confine {
            var r = moat_drop_all_caps()
            if r == 0 { r = moat_sentry_seccomp() }
            if r != 0 { k.unlock(); return fatal("cannot confine the sentry: errno \(-r)", 125) }
        }
        tg.tasks.append(task)
        k.tasks[1] = task
        task.onStart = { t in
            let r = execImage(t, tgt, envp: env, execfn: execfn)
            if r < 0 {
                Log.shared.info("cannot start \(cmd): errno \(-r)")
                t.tg.beginExit(code: 126, bySignal: false)
            }
        }
        task.startDriver()
        startSignalForwarder(k, forwarded)
        k.unlock()
        let status = k.waitForInit()
        if status & 0x7f != 0 { return 128 + (status & 0x7f) }
        return (status >> 8) & 0xff
    }

    static let forwardedSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]

    static func startSignalForwarder(_ k: Kernel, _ set: sigset_t) {
        final class Box { let k: Kernel; var set: sigset_t; init(_ k: Kernel, _ s: sigset_t) { self.k = k; set = s } }
        var th = pthread_t()
        let box = Unmanaged.passRetained(Box(k, set)).toOpaque()
        pthread_create(&th, nil, { p in
            let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
            while true {
                var sig: Int32 = 0
                if sigwait(&b.set, &sig) != 0 { continue }
                b.k.lock()
                if let tg = b.k.initTG, !tg.exiting {
                    var info = SigInfo(signo: sig)
                    info.fromHost = true
                    tg.sendSignal(sig, info)
                }
                b.k.unlock()
            }
        }, box)
    }

    static func fatal(_ msg: String, _ code: Int32) -> Int32 {
        // Before the application starts, a fatal error may go to stderr.
        let line = "moat: " + msg + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        Log.shared.info(msg)
        return code
    }
}
