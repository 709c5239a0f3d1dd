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
    /// Serve the common syscalls through seccomp user notification (the
    /// fast path, CMoat/fastpath.c) instead of a ptrace stop each.
    public var fastPath = true
    /// Run application threads as KVM vCPUs (`--platform kvm`,
    /// Kernel/KVMTasks.swift) instead of ptrace stubs.
    public var kvm = false
    /// A writable layer in Sentry memory over the (read-only) gofer root.
    public var overlay = false
    /// The overlay's big and mapped files live in unnamed disk files the
    /// Gofer makes (`moat gofer --scratch`; FSImpl/UpperStore.swift)
    /// instead of memfds.
    public var upperOnDisk = false

    // Set by the OCI runtime (see Sources/OCI/Launch.swift).
    /// Written once the sandbox is set up and confined: "OK\n", or the
    /// fatal error's message. Fatal errors go there instead of stderr.
    public var readyFD: Int32 = -1
    /// The init process waits until a byte can be read from this fd (the
    /// container's exec.fifo, opened read-write by the launcher); EOF or
    /// an error before that byte ends the sandbox.
    public var startFD: Int32 = -1
    /// A listening SOCK_SEQPACKET socket for `moat exec` (see Kernel/Control.swift).
    public var controlFD: Int32 = -1
    public var groups: [UInt32] = []
    public var umask: UInt32? = nil
    /// (resource number, soft, hard): applied to init's emulated limits.
    public var rlimits: [(Int, UInt64, UInt64)] = []
    public var domainname: String? = nil
    /// stdio is a terminal that becomes the Sentry's controlling terminal.
    public var terminal = false
    /// File systems to mount over the root, in order.
    public var mounts: [SentryMount] = []
    /// Paths hidden from the application (an empty directory, or /dev/null).
    public var maskedPaths: [String] = []
    /// Paths made read-only (mounted over themselves, read-only).
    public var readonlyPaths: [String] = []
    /// Device nodes to make (OCI linux.devices), after the mounts.
    public var devices: [SentryDevice] = []
    /// Forward every catchable signal to init, not only termination ones
    /// (the OCI runtime's `kill` may send any signal).
    public var forwardAllSignals = false
    /// The container's seccomp profile, applied to every application syscall.
    public var seccomp: AppSeccompProfile? = nil
    /// Host fds given to init as its fds 3, 4, ... (`create --preserve-fds`).
    public var extraFDs: [Int32] = []
    /// The network namespace the launcher put the Sentry in (see
    /// Kernel/Network.swift); `.host` changes nothing.
    public var network: NetworkMode = .host
    /// Extra /etc/hosts lines (NAME:IP) and name servers (/etc/resolv.conf).
    public var addHosts: [String] = []
    public var dns: [String] = []
    /// A network namespace to join (OCI `linux.namespaces` path), by path.
    public var networkNamespacePath: String? = nil
    /// The launcher's egress broker (--network sandbox; Kernel/Network.swift).
    public var egressFD: Int32 = -1
    /// Init's capability sets before its exec (process.capabilities; each a
    /// mask of capability numbers). nil: every capability for uid 0 (as
    /// root on a host: `moat run`'s default), none for other users.
    public var capabilities: CapabilitySets? = nil
    /// process.noNewPrivileges: set-id bits and root's capabilities give
    /// nothing on exec.
    public var noNewPrivileges = false
    /// /proc/[pid]/uid_map and gid_map: (container id, host id, count)
    /// lines; empty means the identity map of all ids.
    public var uidMappings: [(UInt32, UInt32, UInt32)] = []
    public var gidMappings: [(UInt32, UInt32, UInt32)] = []
    /// linux.sysctl: values the sandbox sees under /proc/sys (keys with
    /// dots, as in config.json); see FSImpl/ProcSys.swift for the keys.
    public var sysctl: [(String, String)] = []
    /// The container's cgroup limits (OCI linux.resources, `moat run
    /// --memory/--cpus/--pids-limit`) as cgroup v2 files and values
    /// ("memory.max", "1073741824"): what its /sys/fs/cgroup shows
    /// (Kernel/Cgroups.swift); unset files show "max".
    public var cgroupFiles: [(String, String)] = []
    public init() {}

    /// The credentials init starts with.
    var initialCredentials: Credentials {
        Credentials.forContainer(uid: uid, gid: gid, groups: groups, caps: capabilities, noNewPrivs: noNewPrivileges)
    }
}

/// Capability sets, each a mask of capability numbers (bit N = capability N).
public struct CapabilitySets: Equatable {
    public var bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64
    public init(bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64) {
        self.bounding = bounding; self.effective = effective; self.permitted = permitted
        self.inheritable = inheritable; self.ambient = ambient
    }
    /// Every capability Moat knows (CAP_CHOWN through CAP_CHECKPOINT_RESTORE).
    public static let allMask: UInt64 = Cap.all
    /// Docker's default set for a container.
    public static let dockerDefaultMask: UInt64 = Cap.dockerDefault
}

/// A file system the OCI config asks for. Types the Sentry emulates: tmpfs,
/// proc, and devtmpfs-like /dev (a tmpfs at /dev gets the emulated devices,
/// as runtimes populate /dev). Others are skipped by the caller.
public struct SentryMount {
    public var type: String
    public var destination: String
    public var options: [String]
    /// For "bind": the socket of a Gofer serving the source (its own,
    /// confined to the source directory, or to a file's directory).
    public var goferFD: Int32 = -1
    /// For a bound file: its name in the Gofer's directory.
    public var fileName: String? = nil
    /// The source as configured (what /proc/self/mountinfo shows); the type if nil.
    public var source: String? = nil
    public init(type: String, destination: String, options: [String]) {
        self.type = type; self.destination = destination; self.options = options
    }
}

/// A device node the container is configured with. Moat exposes no host
/// device: a node of a device the Sentry emulates (null, zero, full, random,
/// urandom, tty, ptmx) is that device; any other char or block node opens
/// with ENXIO, as a node without a driver does; a fifo is a fifo.
public struct SentryDevice {
    public var path: String
    /// "c", "u", "b" or "p".
    public var type: String
    public var major: Int64, minor: Int64
    public var mode: UInt32, uid: UInt32, gid: UInt32
    public init(path: String, type: String, major: Int64, minor: Int64, mode: UInt32, uid: UInt32, gid: UInt32) {
        self.path = path; self.type = type; self.major = major; self.minor = minor; self.mode = mode; self.uid = uid; self.gid = gid
    }
}

public enum SentryMain {
    /// Where fatal errors go before the application starts (see readyFD).
    nonisolated(unsafe) static var readyFD: Int32 = -1

    /// Runs the sandbox; returns the exit status for the Sentry process
    /// (the init process's status; 128+N for death by signal N).
    public static func run(_ cfg: SentryConfig) -> Int32 {
        Log.shared.fd = cfg.logFD
        Log.shared.debug = cfg.debug
        if cfg.debug, cfg.logFD >= 0 { StartupProfile.sink = { Log.shared.write("moat[startup] " + $0) } }
        StartupProfile.mark("sentry", "main (re-exec, dynamic loading, Swift runtime, arguments)")
        readyFD = cfg.readyFD
        signal(SIGPIPE, SIG_IGN)
        signal(SIGURG, SIG_IGN)
        // Before any thread starts: SIGCHLD (a stub stopped) only interrupts
        // a driver waiting on the fast path (Platform/Ptrace).
        moat_fast_signals_init()
        // Termination requests from outside go to the application's init,
        // not to the Sentry: every thread blocks them and one forwards them.
        var forwarded = sigset_t()
        sigemptyset(&forwarded)
        for s in forwardedSignals + (cfg.forwardAllSignals ? extraForwardedSignals : []) { sigaddset(&forwarded, s) }
        pthread_sigmask(SIG_BLOCK, &forwarded, nil)
        if cfg.terminal {
            // The launcher made us a session leader; the tty becomes ours,
            // so the host line discipline signals the Sentry, which forwards.
            _ = Glibc.ioctl(0, UInt(TIOCSCTTY), 0)
        }
        if cfg.confine, let e = Confinement.begin() { return fatal(e, 125) }
        StartupProfile.mark("sentry", "confinement begun (private mount namespace)")
        // The network namespace is prepared on a thread of its own while
        // this one attaches to the Gofer and builds the kernel; joined
        // below, before confinement finishes.
        SentryNetwork.egressFD = cfg.egressFD
        if let e = SentryNetwork.beginSetUp(cfg.network, joinPath: cfg.networkNamespacePath, concurrently: true) { return fatal(e, 125) }
        StartupProfile.mark("sentry", "network set-up begun (address helper forked)")
        StubFactory.shared.onMasterLost = Self.masterStubLost
        // The master stub (a clone of this process) and the init process's
        // address space are made on the factory's thread while this one
        // attaches to the Gofer and builds the kernel.
        do { try StubFactory.shared.begin(prefetch: true) } catch {
            return fatal("cannot start the stub: \(error)", 125)
        }
        let client = GoferClient(socketFD: cfg.goferFD)
        let rootInode: GoferInode
        switch client.attach() {
        case .success(let (fid, st)): rootInode = GoferInode(client: client, fid: fid, stat: st, frozen: cfg.overlay)
        case .failure(let e): return fatal("cannot attach to the root file system: errno \(e.rawValue)", 125)
        }
        StartupProfile.mark("sentry", "gofer attached (handshake)")
        let vfs = VFS()
        if cfg.overlay {
            let upper = TmpfsInode(mode: rootInode.mode, dev: 7, uid: rootInode.uid, gid: rootInode.gid)
            if cfg.upperOnDisk { upper.store = UpperStore(client: client) }
            vfs.setRoot(OverlayInode(lower: rootInode, upper: upper, parent: nil, name: [47], upperDev: 7), fsType: "overlay", source: "overlay")
        } else {
            vfs.setRoot(rootInode, fsType: "9p", source: "none")
        }
        let k = Kernel(vfs: vfs)
        Kernel.shared = k
        k.strace = cfg.strace
        k.fastPath = cfg.fastPath && !cfg.kvm
        k.hostname = Array(cfg.hostname.utf8)
        if let d = cfg.domainname { k.domainname = Array(d.utf8) }
        k.containerCaps = cfg.capabilities
        k.containerNoNewPrivs = cfg.noNewPrivileges
        if !cfg.uidMappings.isEmpty { k.uidMap = cfg.uidMappings }
        if !cfg.gidMappings.isEmpty { k.gidMap = cfg.gidMappings }
        for (key, value) in cfg.sysctl {
            if let e = k.sysctl.configure(key, value) { return fatal(e, 125) }
        }
        for (file, value) in cfg.cgroupFiles {
            if let e = k.cgroups.configure(file, value) { return fatal(e, 125) }
        }
        k.lock()
        let fs0 = FSContext(root: vfs.rootPath, cwd: vfs.rootPath)
        if cfg.mounts.isEmpty {
            mountDefaults(k, fs0)
        } else {
            mountAll(k, fs0, cfg.mounts, masked: cfg.maskedPaths, readOnly: cfg.readonlyPaths, devices: cfg.devices)
            let tmpMounted = cfg.mounts.contains { m in
                m.destination.split(separator: "/").map(String.init) == ["tmp"]
            }
            if !tmpMounted { mountTmp(k, fs0) }
        }
        // The init process.
        let tg = ThreadGroup(kernel: k, tgid: 1, parent: nil, handlers: SignalHandlers())
        for (res, cur, max) in cfg.rlimits where res >= 0 && res < tg.rlimits.count {
            tg.rlimits[res] = RLimit(cur: cur, max: max)
        }
        k.threadGroups[1] = tg
        k.initTG = tg
        k.nextPid = 2
        StartupProfile.mark("sentry", "kernel and mounts set up")
        do { try StubFactory.shared.awaitStarted() } catch {
            k.unlock()
            return fatal("cannot start the stub: \(error)", 125)
        }
        StartupProfile.mark("sentry", "stub factory started (master stub)")
        // The VM and its vCPUs (--platform kvm), before the task that takes
        // one and before confinement closes /dev/kvm to the Sentry.
        if cfg.kvm, let e = KVMTasks.setUp() { k.unlock(); return fatal(e, 125) }
        let fds = stdioTable(vfs, [0, 1, 2] + cfg.extraFDs)
        let spawned: (Task, ExecTarget, [UInt8])
        switch newProcess(k, tg: tg, tid: 1, creds: cfg.initialCredentials, argv: cfg.argv, env: cfg.env, cwd: cfg.cwd, umask: cfg.umask, fds: fds) {
        case .success(let x): spawned = x
        case .failure(let f): k.unlock(); return fatal(f.message, f.code)
        }
        let (task, tgt, execfn) = spawned
        StartupProfile.mark("sentry", "init process made (executable resolved and read)")
        // From here on the Sentry reads hostile input: confine it first
        // (fail closed). The stub factory's thread is covered by TSYNC.
        if let e = SentryNetwork.finishSetUp() { k.unlock(); return fatal(e, 125) }
        SentryNetwork.mountNameFiles(k, fs0, hostname: cfg.hostname, addHosts: cfg.addHosts, dns: cfg.dns)
        StartupProfile.mark("sentry", "network set up (joined, name files)")
        detachStdio(logFD: cfg.logFD)
        if cfg.confine, let e = Confinement.finish() { k.unlock(); return fatal(e, 125) }
        if let p = cfg.seccomp { AppSeccomp.active = AppSeccomp(p) }
        StartupProfile.mark("sentry", "confinement finished (empty root, sandbox id, no caps, seccomp)")
        k.unlock()
        if !awaitStart(cfg) { return 137 }
        if cfg.startFD >= 0 { StartupProfile.mark("sentry", "started (OCI start)") }
        k.lock()
        let cmd = cfg.argv[0]
        let env = cfg.env.map { Array($0.utf8) }
        tg.tasks.append(task)
        k.tasks[1] = task
        task.onStart = { t in
            StartupProfile.mark("sentry", "init's stub process created and seized")
            let r = execImage(t, tgt, envp: env, execfn: execfn)
            if r < 0 {
                Log.shared.info("cannot start \(cmd): errno \(-r)")
                t.tg.beginExit(code: 126, bySignal: false)
            }
            StartupProfile.mark("sentry", "ELF loaded into the stub")
            StartupProfile.armFirstSyscall()
        }
        task.startDriver()
        startSignalForwarder(k, forwarded)
        startGoferWatcher(k, client)
        if cfg.controlFD >= 0 { ControlServer.start(k, listenFD: cfg.controlFD) }
        k.unlock()
        let status = k.waitForInit()
        StartupProfile.mark("sentry", "init exited")
        if status & 0x7f != 0 { return 128 + (status & 0x7f) }
        return (status >> 8) & 0xff
    }

    /// /proc, /dev, /sys and (when the image's is empty) /tmp, as `moat
    /// run` gives every sandbox. Requires: k.mu held.
    static func mountDefaults(_ k: Kernel, _ fs: FSContext) {
        let vfs = k.vfs
        for (dir, make) in [("proc", { () -> (Inode, String) in (k.makeProcFS(), "proc") }),
                            ("dev", { (makeDevFS(dev: 5), "devtmpfs") }),
                            ("sys", { (makeSysFS(dev: 4), "sysfs") })] {
            if case .success(let p) = vfs.resolve(fs, start: fs.root, Array(("/" + dir).utf8)), p.inode.isDir {
                let (ino, type) = make()
                let m = vfs.mount(ino, at: p, fsType: type, source: type == "devtmpfs" ? "udev" : type)
                if type == "sysfs" { m.readOnly = true }
            }
        }
        // The cgroup2 file system over the sysfs's fs/cgroup, as runc mounts
        // it (writable, as for a privileged container: `moat run` gives root
        // every capability).
        if case .success(let p) = vfs.resolve(fs, start: fs.root, Array("/sys/fs/cgroup".utf8)), p.inode.isDir, p.mount.fsType == "sysfs" {
            vfs.mount(k.cgroupDir(k.cgroups.root), at: p, fsType: "cgroup2", source: "cgroup2")
        }
        mountTmp(k, fs)
    }

    /// Pod mode (Kernel/Pod.swift): a kernel with no application process
    /// that runs the containers the control socket adds, until told to stop.
    public static func runPod(_ cfg: SentryConfig) -> Int32 {
        Log.shared.fd = cfg.logFD
        Log.shared.debug = cfg.debug
        if cfg.debug, cfg.logFD >= 0 { StartupProfile.sink = { Log.shared.write("moat[startup] " + $0) } }
        StartupProfile.mark("pod sentry", "main (re-exec, dynamic loading, Swift runtime, arguments)")
        readyFD = cfg.readyFD
        signal(SIGPIPE, SIG_IGN)
        signal(SIGURG, SIG_IGN)
        moat_fast_signals_init()
        // Termination requests stop the pod (see startSignalForwarder).
        var forwarded = sigset_t()
        sigemptyset(&forwarded)
        for s in forwardedSignals { sigaddset(&forwarded, s) }
        pthread_sigmask(SIG_BLOCK, &forwarded, nil)
        if cfg.confine, let e = Confinement.begin() { return fatal(e, 125) }
        StubFactory.shared.onMasterLost = Self.masterStubLost
        StartupProfile.mark("pod sentry", "confinement begun (private mount namespace)")
        do { try StubFactory.shared.start() } catch {
            return fatal("cannot start the stub: \(error)", 125)
        }
        StartupProfile.mark("pod sentry", "stub factory started (master stub)")
        guard cfg.controlFD >= 0 else { return fatal("a pod needs a control socket", 125) }
        let vfs = VFS()
        vfs.setRoot(TmpfsInode(mode: S_IFDIR_ | 0o711, dev: 8), fsType: "tmpfs", source: "pod")
        let k = Kernel(vfs: vfs)
        Kernel.shared = k
        k.podMode = true
        k.nextPid = 2
        k.strace = cfg.strace
        k.fastPath = cfg.fastPath
        k.hostname = Array(cfg.hostname.utf8)
        k.containerCaps = cfg.capabilities
        k.containerNoNewPrivs = cfg.noNewPrivileges
        for (key, value) in cfg.sysctl {
            if let e = k.sysctl.configure(key, value) { return fatal(e, 125) }
        }
        for (file, value) in cfg.cgroupFiles {
            if let e = k.cgroups.configure(file, value) { return fatal(e, 125) }
        }
        k.lock()
        SentryNetwork.egressFD = cfg.egressFD
        if let e = SentryNetwork.setUp(cfg.network, joinPath: cfg.networkNamespacePath) { k.unlock(); return fatal(e, 125) }
        StartupProfile.mark("pod sentry", "network set up")
        if cfg.confine, let e = Confinement.finish() { k.unlock(); return fatal(e, 125) }
        StartupProfile.mark("pod sentry", "confinement finished (empty root, sandbox id, no caps, seccomp)")
        ControlServer.start(k, listenFD: cfg.controlFD)
        k.unlock()
        // SIGTERM/SIGINT to the Sentry stop the pod.
        final class Box { let k: Kernel; var set: sigset_t; init(_ k: Kernel, _ s: sigset_t) { self.k = k; self.set = s } }
        var th = pthread_t()
        let box = Unmanaged.passRetained(Box(k, forwarded)).toOpaque()
        pthread_create(&th, nil, { p in
            let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
            var sig: Int32 = 0
            while sigwait(&b.set, &sig) == 0 {
                if sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT { PodControl.stop(b.k, grace: 10); return nil }
            }
            return nil
        }, box)
        pthread_detach(th)
        if cfg.readyFD >= 0 {
            _ = "OK\n".withCString { write(cfg.readyFD, $0, 3) }
            close(cfg.readyFD)
            readyFD = -1
        }
        _ = k.waitForInit()
        return 0
    }

    /// Tells the launcher the sandbox is ready, then waits for `start`.
    /// Returns false when the container was killed or deleted instead.
    static func awaitStart(_ cfg: SentryConfig) -> Bool {
        if cfg.readyFD >= 0 {
            _ = "OK\n".withCString { write(cfg.readyFD, $0, 3) }
            close(cfg.readyFD)
            readyFD = -1
        }
        guard cfg.startFD >= 0 else { return true }
        var b: UInt8 = 0
        while true {
            let n = read(cfg.startFD, &b, 1)
            if n == 1 { break }
            if n < 0 && errno == EINTR { continue }
            return false
        }
        close(cfg.startFD)
        return true
    }

    struct SpawnFailure: Error { let code: Int32; let message: String }

    /// Once the application's stdio lives in its fd table (dup'ed by
    /// stdioTable), the Sentry's own fds 1 and 2 become Moat's log, or a
    /// pipe nobody reads: what the Swift runtime prints by itself (a trap's
    /// last words) then never lands in the application's stdout or stderr.
    /// Fatal errors before this point still reach the caller (see fatal).
    /// Done before the seccomp filter, which allows neither pipe nor dup2.
    static func detachStdio(logFD: Int32) {
        var sink = logFD
        if sink < 0 {
            var p: [Int32] = [-1, -1]
            guard pipe(&p) == 0 else { return }
            close(p[0])
            _ = fcntl(p[1], F_SETFD, FD_CLOEXEC)
            sink = p[1]
        }
        for fd: Int32 in [1, 2] where fd != sink { _ = dup2(sink, fd) }
        if sink != logFD && sink > 2 { close(sink) }
    }

    /// An fd table whose 0, 1, 2, ... are the given host fds (dup'ed); a
    /// closed host fd stays closed for the application.
    static func stdioTable(_ vfs: VFS, _ host: [Int32]) -> FDTable {
        let fds = FDTable()
        for (i, fd) in host.enumerated() {
            let d = fcntl(fd, F_DUPFD_CLOEXEC, 10)
            if d < 0 { continue }
            let acc = fcntl(fd, F_GETFL) & O_ACCMODE
            let f = HostFileFD(fd: d, flags: acc, path: nil, hostOffset: true)
            f.path = Path(mount: vfs.rootMount, dentry: Dentry(name: Array("stdio".utf8), parent: nil, inode: StdioInode(ino: 0, mode: S_IFCHR_ | 0o620, dev: 0)))
            fds.installAt(f, Int32(i), cloexec: false)
        }
        return fds
    }

    /// Creates the first task of a new process in `tg` (not yet started nor
    /// registered in the kernel's tables) and resolves its program the way
    /// execvp does, so errors are reported before anything runs. On a
    /// failure `fds` is released (its files closed).
    /// Requires: k.mu held.
    static func newProcess(_ k: Kernel, tg: ThreadGroup, tid: Int32, creds: Credentials, argv: [String], env: [String], cwd: String,
                           umask: UInt32?, fds: FDTable, root: Path? = nil) -> Result<(Task, ExecTarget, [UInt8]), SpawnFailure> {
        let vfs = k.vfs
        let rootPath = root ?? vfs.rootPath
        var stubPid: pid_t = 0  // none on the KVM platform (its vCPU is taken when the task starts)
        if !KVMTasks.enabled {
            switch StubFactory.shared.newAddressSpace() {
            case .success(let p): stubPid = p
            case .failure(let e): return .failure(SpawnFailure(code: 125, message: "cannot create an address space: \(e)"))
            }
        }
        let fsctx = FSContext(root: rootPath, cwd: rootPath)
        if let u = umask { fsctx.umask = u & 0o777 }
        let task = Task(kernel: k, tid: tid, tg: tg, hostPid: stubPid, hostTid: stubPid, mm: MemoryManager(),
                        fds: fds, fs: fsctx, comm: [])
        task.creds = creds
        func failed(_ code: Int32, _ m: String) -> Result<(Task, ExecTarget, [UInt8]), SpawnFailure> {
            // The table is the task's, and the task never runs: drop it, or
            // the host fds it holds (an exec's stdout and stderr pipes) stay
            // open in the Sentry and the client never sees their end.
            fds.release(task)
            if stubPid > 0 {
                _ = kill(stubPid, SIGKILL)
                var st: Int32 = 0
                _ = waitpid(stubPid, &st, Int32(__WALL))
            }
            return .failure(SpawnFailure(code: code, message: m))
        }
        switch vfs.resolve(fsctx, start: rootPath, Array(cwd.utf8)) {
        case .success(let p) where p.inode.isDir: fsctx.cwd = p
        default:
            return failed(125, "cannot use \(cwd) as the working directory: no such directory in the root file system")
        }
        guard let cmd = argv.first, !cmd.isEmpty else { return failed(125, "no command given") }
        var candidates: [[UInt8]] = []
        if cmd.contains("/") { candidates = [Array(cmd.utf8)] } else {
            let pathVar = env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            for dir in pathVar.split(separator: ":") { candidates.append(Array((dir + "/" + cmd).utf8)) }
        }
        var firstErr: Int32 = ENOENT
        for c in candidates {
            switch prepareExec(task, dirfd: AT_FDCWD_, start: fsctx.cwd, c, argv: argv.map { Array($0.utf8) }) {
            case .success(let t): return .success((task, t, c))
            case .failure(let e): if firstErr == ENOENT { firstErr = e.code }
            }
        }
        if firstErr == ENOENT {
            return failed(127, cmd.contains("/") ? "exec \(cmd): no such file or directory" : "exec \(cmd): executable file not found in $PATH")
        }
        return failed(126, "exec \(cmd): \(String(cString: strerror(firstErr)))")
    }

    /// Mounts the configured file systems, then masks paths. What cannot be
    /// mounted (a missing mount point on a read-only root) is logged and
    /// skipped, as the launcher already told the user which types it ignores.
    /// Requires: k.mu held.
    static func mountAll(_ k: Kernel, _ fs: FSContext, _ mounts: [SentryMount], masked: [String], readOnly: [String],
                         devices: [SentryDevice] = []) {
        let vfs = k.vfs
        var dev: UInt64 = 20
        var bindRoots: [Int32: GoferInode] = [:]
        for m in mounts {
            let ino: Inode
            let type: String
            let ro = m.options.contains("ro")
            switch m.type {
            case "bind":
                guard let b = bindSource(m, &bindRoots) else { continue }
                if !b.isDir {
                    guard let p = ensureFile(k, fs, m.destination) else {
                        Log.shared.info("bind mount on \(m.destination): cannot make the mount point; skipped")
                        continue
                    }
                    let mnt = vfs.mount(b, at: p, fsType: "9p", source: m.source ?? "bind")
                    if m.options.contains("ro") { mnt.readOnly = true }
                    continue
                }
                ino = b; type = "9p"
            case "proc": ino = k.makeProcFS(); type = "proc"
            case "sysfs": ino = makeSysFS(dev: dev); type = "sysfs"; dev += 1
            // runc's "cgroup" mount is a cgroup2 one on a v2 host; the sandbox
            // presents v2 only (FSImpl/CgroupFS.swift).
            case "cgroup", "cgroup2": ino = k.cgroupDir(k.cgroups.root); type = "cgroup2"
            case "tmpfs" where m.destination == "/dev": ino = makeDevFS(dev: 5); type = "tmpfs"
            case "devpts":
                // The devfs's own pts directory, shown as the devpts it is.
                guard case .success(let p) = vfs.resolve(fs, start: fs.root, Array(m.destination.utf8)), p.inode is DevPtsInode else {
                    Log.shared.info("mount devpts on \(m.destination): not the devfs's pts directory; skipped")
                    continue
                }
                let pts = vfs.mount(p.inode, at: p, fsType: "devpts", source: m.source ?? "devpts")
                pts.flags = MountFlags.parse(m.options)
                // As runtimes do for a devpts on /dev/pts: /dev/ptmx is a link to its ptmx.
                let ptmx = Array("ptmx".utf8)
                if m.destination == "/dev/pts", case .success(let d) = vfs.resolve(fs, start: fs.root, Array("/dev".utf8)),
                   let dir = d.inode as? TmpfsInode, dir.entries[ptmx] is PtmxInode {
                    let l = TmpfsInode(mode: S_IFLNK_ | 0o777, dev: dir.dev)
                    l.target = Array("pts/ptmx".utf8)
                    dir.entries[ptmx] = l
                }
                continue
            case "mqueue":
                // The sandbox's POSIX message queues (Syscalls/MessageQueue.swift):
                // the queues mq_open makes show here, as on Linux.
                guard let p = ensureDir(k, fs, m.destination) else { continue }
                let mnt = vfs.mount(k.ipc.mqueues.rootInode, at: p, fsType: "mqueue", source: m.source ?? "mqueue")
                if m.options.contains("ro") { mnt.readOnly = true }
                mnt.flags = MountFlags.parse(m.options)
                continue
            case "tmpfs":
                var mode: UInt32 = 0o1777
                for o in m.options where o.hasPrefix("mode=") { mode = UInt32(o.dropFirst(5), radix: 8) ?? mode }
                ino = TmpfsInode(mode: S_IFDIR_ | (ro ? mode & 0o555 : mode), dev: dev); type = "tmpfs"; dev += 1
            default: continue
            }
            guard let p = ensureDir(k, fs, m.destination) else {
                Log.shared.info("mount \(m.type) on \(m.destination): no such directory; skipped")
                continue
            }
            let mnt = vfs.mount(ino, at: p, fsType: type, source: m.source ?? m.type)
            if type == "sysfs" || m.options.contains("ro") { mnt.readOnly = true }
            mnt.flags = MountFlags.parse(m.options)
        }
        for d in devices { makeDevice(k, fs, d) }
        // readonlyPaths: the path mounted over itself, read-only (a bind).
        for path in readOnly {
            guard case .success(let p) = vfs.resolve(fs, start: fs.root, Array(path.utf8)) else { continue }
            let mnt = vfs.mount(p.inode, at: p, fsType: p.mount.fsType, source: p.mount.source)
            mnt.readOnly = true
        }
        for path in masked {
            guard case .success(let p) = vfs.resolve(fs, start: fs.root, Array(path.utf8)) else { continue }
            if p.inode.isDir {
                // Read-only, as runtimes mask directories (root ignores the mode).
                vfs.mount(TmpfsInode(mode: S_IFDIR_ | 0o555, dev: dev), at: p, fsType: "tmpfs", source: "tmpfs").readOnly = true; dev += 1
            } else {
                vfs.mount(DeviceInode(kind: .null, major: 1, minor: 3, dev: 5), at: p, fsType: "devtmpfs", source: "udev")
            }
        }
    }

    /// A Sentry tmpfs on /tmp, as gVisor does, but only when the image's
    /// /tmp is an empty directory: what an image keeps in /tmp stays
    /// visible (and writable through the rootfs). Requires: k.mu held.
    static func mountTmp(_ k: Kernel, _ fs: FSContext) {
        let vfs = k.vfs
        guard case .success(let p) = vfs.resolve(fs, start: fs.root, Array("/tmp".utf8)), p.inode.isDir,
              case .success(let entries) = p.inode.readdir(), entries.isEmpty else { return }
        vfs.mount(TmpfsInode(mode: S_IFDIR_ | 0o1777, dev: 6), at: p, fsType: "tmpfs", source: "tmpfs")
    }

    /// Makes (or replaces) a configured device node in its directory, which
    /// must be a Sentry tmpfs (the devfs on /dev). Requires: k.mu held.
    static func makeDevice(_ k: Kernel, _ fs: FSContext, _ d: SentryDevice) {
        guard let slash = d.path.lastIndex(of: "/"), let dir = ensureDir(k, fs, String(d.path[..<slash])),
              let t = dir.inode as? TmpfsInode else {
            Log.shared.info("device \(d.path): its directory is not a Sentry tmpfs; skipped")
            return
        }
        let name = Array(d.path[d.path.index(after: slash)...].utf8)
        let perm = d.mode & 0o7777
        let major = UInt64(max(0, d.major)), minor = UInt64(max(0, d.minor))
        let node: Inode
        switch d.type {
        case "p": node = TmpfsInode(mode: S_IFIFO_ | perm, dev: t.dev)
        default:
            if d.type != "b", let kind = DeviceKind.emulated[major << 8 | minor] {
                node = DeviceInode(kind: kind, major: major, minor: minor, dev: t.dev)
            } else if d.type != "b", major == 5, minor == 2 {
                node = PtmxInode(kernel: k, dev: t.dev)
            } else {
                node = Inode(ino: 0x4000_0000 + (major << 20 | minor), mode: (d.type == "b" ? S_IFBLK_ : S_IFCHR_), dev: t.dev)
            }
            node.rdev = (minor & 0xff) | (major & 0xfff) << 8 | (minor & ~0xff) << 12 | (major & ~0xfff) << 32
            node.mode = node.mode & S_IFMT_ | perm
        }
        node.uid = d.uid; node.gid = d.gid
        if t.entries[name] == nil { t.order.append(name) }
        t.entries[name] = node
    }

    /// The root (or the named file) a bind mount's Gofer serves.
    /// Mounts of the same source share its Gofer: it is attached once (`roots`, by socket).
    static func bindSource(_ m: SentryMount, _ roots: inout [Int32: GoferInode]) -> Inode? {
        let root: GoferInode
        if let r = roots[m.goferFD] { root = r } else {
            let client = GoferClient(socketFD: m.goferFD)
            guard case .success(let (fid, st)) = client.attach() else {
                Log.shared.info("bind mount on \(m.destination): its gofer did not answer; skipped")
                return nil
            }
            root = GoferInode(client: client, fid: fid, stat: st)
            roots[m.goferFD] = root
        }
        guard let name = m.fileName else { return root }
        guard case .success(let f) = root.lookup(Array(name.utf8)) else {
            Log.shared.info("bind mount on \(m.destination): \(name) is gone; skipped")
            return nil
        }
        return f
    }

    /// Resolves a file mount point, creating an empty file (and missing
    /// directories) when the root is writable. Requires: k.mu held.
    static func ensureFile(_ k: Kernel, _ fs: FSContext, _ path: String) -> Path? {
        if case .success(let p) = k.vfs.resolve(fs, start: fs.root, Array(path.utf8)) { return p.inode.isDir ? nil : p }
        guard let slash = path.lastIndex(of: "/") else { return nil }
        let name = Array(path[path.index(after: slash)...].utf8)
        guard !name.isEmpty, let dir = ensureDir(k, fs, String(path[..<slash])),
              case .success = dir.inode.create(name, mode: S_IFREG_ | 0o644, uid: 0, gid: 0, flags: O_RDWR),
              case .success(let p) = k.vfs.resolve(fs, start: dir, name) else { return nil }
        return p
    }

    /// Resolves a directory, creating missing components when the root is
    /// writable (the overlay). Requires: k.mu held.
    static func ensureDir(_ k: Kernel, _ fs: FSContext, _ path: String) -> Path? {
        let vfs = k.vfs
        var cur = fs.root
        for comp in path.split(separator: "/") {
            let name = Array(comp.utf8)
            switch vfs.resolve(fs, start: cur, name) {
            case .success(let p): cur = p
            case .failure:
                guard case .success = cur.inode.mkdir(name, mode: S_IFDIR_ | 0o755, uid: 0, gid: 0),
                      case .success(let p) = vfs.resolve(fs, start: cur, name) else { return nil }
                cur = p
            }
            if !cur.inode.isDir { return nil }
        }
        return cur
    }

    static let forwardedSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]
    /// For the OCI runtime: the rest of what `kill` may send. SIGKILL and
    /// SIGSTOP cannot be caught and act on the Sentry itself; SIGCHLD is the
    /// Sentry's own (stub exits); fault signals stay synchronous.
    static let extraForwardedSignals: [Int32] = [SIGALRM, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPWR, SIGVTALRM, SIGPROF, SIGIO]

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

    /// The master stub was killed from the host: the sandbox can never
    /// exec again. Fail closed and visibly: the Sentry ends as if it had
    /// been killed (status 137 to the launcher, `moat state` stopped, a pod
    /// sandbox NOTREADY), and the stubs follow it by PDEATHSIG.
    static func masterStubLost() {
        Log.shared.info("the master stub was killed from the host; ending the sandbox")
        _exit(128 + SIGKILL)
    }

    static func fatal(_ msg: String, _ code: Int32) -> Int32 {
        // Before the application starts, a fatal error may go to stderr,
        // or to the OCI launcher, which reports it for `create`.
        if readyFD >= 0 {
            let line = "\(code) \(msg)\n"
            _ = line.withCString { write(readyFD, $0, strlen($0)) }
            Log.shared.info(msg)
            return code
        }
        let line = "moat: " + msg + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        Log.shared.info(msg)
        return code
    }
}
