// Starting a sandbox: a Gofer confined to the root file system and a Sentry
// in its own pid namespace, both this binary. The Gofer is forked from the
// launcher without exec when it can (see spawn); the Sentry is always
// re-executed, so that its address layout, which the application attacks
// first, tells nothing of the Gofer's or the launcher's. The launcher
// waits for the Sentry and passes its exit status on; the Gofer dies with it.

import CMoat
import Glibc
import GoferProtocol
import Sentry

public struct RunOptions {
    public var rootfs: String
    public var argv: [String]
    public var env: [String] = []
    public var cwd = "/"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var strace = false
    public var debug = false
    public var logPath: String? = nil
    public var readOnly = false
    /// Changes go to a layer in Sentry memory; the root is served read-only.
    public var overlay = true
    /// The overlay's big and mapped files live in unnamed files of the
    /// rootfs's own host file system (`--overlay-medium self`, the default)
    /// instead of memfds (`memory`).
    public var overlayOnDisk = true
    public var hostname = "moat"
    /// The network namespace (see Network.swift) and published ports.
    public var network: NetworkMode = .sandbox
    public var ports: [PortMapping] = []
    /// Extra /etc/hosts entries (NAME:IP) and name servers for /etc/resolv.conf.
    public var addHosts: [String] = []
    public var dns: [String] = []
    /// Join this network namespace (by path) instead of making one.
    public var networkNamespace: String? = nil
    /// The capability set (bit N = capability N) the command starts with:
    /// its bounding set, and for root its permitted and effective sets.
    /// nil: all of them.
    public var capabilities: UInt64? = nil
    /// KEY=VALUE sysctl values under the sandbox's /proc/sys.
    public var sysctl: [String] = []
    /// The fast syscall path (seccomp notification); false: ptrace only.
    public var fastPath = true
    /// Application threads as KVM vCPUs (`--platform kvm`).
    public var kvm = false
    public init(rootfs: String, argv: [String]) { self.rootfs = rootfs; self.argv = argv }
}

public enum Sandbox {
    /// Runs a command in a new sandbox and returns the exit status to use.
    /// Must be called on the process's main thread (see Moat.main).
    public static func run(_ o: RunOptions) -> Int32 {
        if moat_gettid() != getpid() {
            return fail("internal error: the launcher must run on the main thread", 125)
        }
        var st = stat()
        if stat(o.rootfs, &st) != 0 || st.st_mode & S_IFMT != S_IFDIR {
            return fail("root file system \(o.rootfs) does not exist or is not a directory (build one with rootfs/busybox.sh)", 125)
        }
        guard let root = realpath(o.rootfs, nil) else { return fail("cannot resolve \(o.rootfs)", 125) }
        let rootPath = String(cString: root)
        free(root)

        let pair: (client: Int32, server: Int32)
        switch GoferClient.socketPair() {
        case .success(let p): pair = p
        case .failure(let e): return fail("socketpair: errno \(e.rawValue)", 125)
        }
        var logFD: Int32 = -1
        if let p = o.logPath {
            logFD = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if logFD < 0 { return fail("cannot open log file \(p)", 125) }
        } else if o.debug || o.strace {
            logFD = fcntl(2, F_DUPFD_CLOEXEC, 3)
        }
        // --debug: the start-up profile goes to Moat's log too.
        if o.debug, logFD >= 0 { StartupProfile.log(to: fcntl(logFD, F_DUPFD_CLOEXEC, 3)) }
        StartupProfile.mark("launcher", "arguments parsed, root file system checked")
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let exe = binary
        var goferArgs = ["moat", "gofer", "--root", rootPath, "--fd", "3"]
        if o.readOnly || o.overlay { goferArgs.append("--read-only") }
        let upperOnDisk = o.overlay && !o.readOnly && o.overlayOnDisk
        if upperOnDisk { goferArgs.append("--scratch") }
        if o.debug && o.logPath == nil { goferArgs.append("--debug") }
        // The Gofer execs while the Sentry is cloned (its namespaces take
        // milliseconds): whether its exec worked is read after.
        var goferExecFD: Int32 = -1
        let goferPid = spawn(exe, goferArgs, [devnull, devnull, 2, pair.server], flags: 0, execFD: &goferExecFD, fork: true)
        close(pair.server)
        if goferPid < 0 { return fail("cannot start the gofer: errno \(-goferPid)", 125) }
        StartupProfile.mark("launcher", "gofer cloned")
        func abandonGofer() { close(goferExecFD); kill(goferPid, SIGKILL); _ = waitStatus(goferPid) }

        if o.network == .host && !o.ports.isEmpty {
            abandonGofer()
            return fail("-p needs the sandbox's own network (not --network host)", 125)
        }
        let publisher: PortPublisher
        do { publisher = try PortPublisher(o.ports) } catch {
            abandonGofer()
            return fail(error.message, 125)
        }
        var sentryArgs = ["moat", "sentry", "--gofer-fd", "3", "--cwd", o.cwd, "--user", "\(o.uid):\(o.gid)", "--hostname", o.hostname]
        sentryArgs += ["--network", o.network.rawValue]
        if let p = o.networkNamespace { sentryArgs += ["--netns", p] }
        for h in o.addHosts { sentryArgs += ["--add-host", h] }
        for d in o.dns.isEmpty && o.network == .sandbox ? hostNameServers() : o.dns { sentryArgs += ["--dns", d] }
        if logFD >= 0 { sentryArgs += ["--log-fd", "4"] }
        if o.strace { sentryArgs.append("--strace") }
        if o.kvm { sentryArgs += ["--platform", "kvm"] } else if !o.fastPath { sentryArgs += ["--platform", "ptrace"] }
        if o.debug { sentryArgs.append("--debug") }
        if o.overlay && !o.readOnly { sentryArgs.append("--overlay") }
        if upperOnDisk { sentryArgs.append("--upper-on-disk") }
        for e in o.env { sentryArgs += ["--env", e] }
        if let c = o.capabilities { sentryArgs += ["--caps", String(c, radix: 16)] }
        for s in o.sysctl { sentryArgs += ["--sysctl", s] }
        sentryArgs.append("--")
        sentryArgs += o.argv
        var fds: [Int32] = [0, 1, 2, pair.client]
        if logFD >= 0 { fds.append(logFD) }
        let egress = o.network == .sandbox ? EgressBroker() : nil
        if let e = egress {
            sentryArgs.insert(contentsOf: ["--egress-fd", "\(fds.count)"], at: 2)
            fds.append(e.sentryEnd)
        }
        let CLONE_NEWPID: UInt = 0x20000000
        let CLONE_NEWNET: UInt = 0x40000000
        // Re-executed, never forked: a fork would give the Sentry the
        // launcher's layout, and with it the Gofer's, so that an application
        // that took over its Sentry would know where everything is in the
        // next two processes it can talk to (the Gofer's file protocol, the
        // launcher's egress and port requests). A layout of its own costs
        // the Sentry its start (about 0.1 s of a debug build) and ~2 MB of
        // relocated pages; bench/results/2026-12-06-fork-gofer-debug.md.
        let sentryPid = spawn(exe, sentryArgs, fds, flags: CLONE_NEWPID | (o.network == .host ? 0 : CLONE_NEWNET))
        close(pair.client)
        if logFD >= 0 { close(logFD) }
        if sentryPid < 0 {
            abandonGofer()
            return fail("cannot start the sentry: errno \(-sentryPid)", 125)
        }
        StartupProfile.mark("launcher", "sentry spawned (new pid\(o.network == .host ? "" : " and network") namespace)")
        let goferExec = moat_spawn_finish(goferPid, goferExecFD)
        if goferExec < 0 {
            kill(sentryPid, SIGKILL); _ = waitStatus(sentryPid)
            return fail("cannot start the gofer: errno \(-goferExec)", 125)
        }
        publisher.start(sandboxPid: sentryPid)
        egress?.start()
        // What stays alive of the launcher keeps CAP_KILL and the calls its
        // relays need, nothing else (CMoat/confine.c): it reads requests
        // from the Sentry, so it is confined like the Sentry it serves.
        let confined = moat_launcher_confine()
        if confined != 0 {
            kill(sentryPid, SIGKILL); _ = waitStatus(sentryPid)
            kill(goferPid, SIGKILL); _ = waitStatus(goferPid)
            return fail("cannot confine the launcher: errno \(-confined)", 125)
        }
        StartupProfile.mark("launcher", "confined (CAP_KILL, seccomp)")
        // Forward termination requests to the Sentry (pid 1 of its namespace).
        forwardTarget = sentryPid
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            signal(s) { sig in if forwardTarget > 0 { kill(forwardTarget, sig) } }
        }
        let status = waitStatus(sentryPid)
        StartupProfile.mark("launcher", "sentry reaped")
        forwardTarget = 0
        kill(goferPid, SIGKILL)
        _ = waitStatus(goferPid)
        StartupProfile.mark("launcher", "gofer reaped; exiting")
        if moat_wifsignaled(status) != 0 { return 128 + moat_wtermsig(status) }
        return moat_wexitstatus(status)
    }

    /// The executable's `moat sentry|gofer` main (argv with "moat" first),
    /// set by the executable. With it, `moat run` (and `moat create`, through
    /// spawnGofer) starts its Gofer by fork
    /// without exec (moat_fork_start): it shares the launcher's relocated
    /// pages and initialized Swift runtime copy-on-write instead of loading
    /// and relocating the binary again. nil: re-execute.
    nonisolated(unsafe) public static var internalMain: (([String]) -> Never)? = nil

    /// Starts a Gofer (`args`: "moat", "gofer", ...) for the OCI runtime's
    /// `moat create`, fds[i] as its fd i, as `moat run` starts its own:
    /// forked when this process has one thread, else re-executed (spawn).
    /// Returns its pid, or -errno.
    public static func spawnGofer(_ args: [String], fds: [Int32], newSession: Bool) -> pid_t {
        spawn(binary, args, fds, flags: 0, newSession: newSession, fork: true)
    }

    /// Starts `path` with `args`, fds[i] as its fd i. Waits until it has
    /// exec'd, unless `execFD` is given: then it returns after the clone and
    /// moat_spawn_finish(pid, execFD) waits.
    ///
    /// `fork`: `path` is this binary and `args` an internal command: the
    /// child runs it without exec when internalMain is set and this process
    /// has one thread (the launcher of `moat run` before its relays start;
    /// see moat_fork_start for why more threads would be unsafe); otherwise
    /// it re-executes. Either way the child has the same fds, environment,
    /// signal mask, session and namespaces, and confines itself the same way.
    static func spawn(_ path: String, _ args: [String], _ fds: [Int32], flags: UInt, newSession: Bool = false,
                      execFD: UnsafeMutablePointer<Int32>? = nil, fork: Bool = false) -> pid_t {
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), strdup(StartupProfile.environmentEntry()), nil]
        defer { for p in cargs { free(p) }; for p in cenv { free(p) } }
        if fork, let main = internalMain {
            var errfd: Int32 = -1
            let pid = fds.withUnsafeBufferPointer { fp in
                moat_fork_start(&cargs, &cenv, fp.baseAddress, Int32(fds.count), flags, newSession ? 1 : 0, &errfd)
            }
            if pid == 0 {
                StartupProfile.forkedChild()
                main(args)
            }
            if pid != -EAGAIN {
                if pid < 0 { return pid }
                if let execFD { execFD.pointee = errfd; return pid }
                return moat_spawn_finish(pid, errfd)
            }
        }
        return fds.withUnsafeBufferPointer { fp in
            if let execFD {
                return moat_spawn_start(path, &cargs, &cenv, fp.baseAddress, Int32(fds.count), flags, newSession ? 1 : 0, execFD)
            }
            return moat_spawn(path, &cargs, &cenv, fp.baseAddress, Int32(fds.count), flags, newSession ? 1 : 0)
        }
    }

    static func waitStatus(_ pid: pid_t) -> Int32 {
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 { if errno != EINTR { return 0 } }
        return st
    }

    static func fail(_ msg: String, _ code: Int32) -> Int32 {
        let line = "moat: \(msg)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        return code
    }
}

nonisolated(unsafe) var forwardTarget: pid_t = 0
