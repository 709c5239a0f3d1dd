// `create`: set up a sandbox for a bundle and leave it waiting for `start`.
//
// The process model engines expect (runtime.md, and containerd's shim):
// the pid in the state (and --pid-file) is the Sentry, pid 1 of its own pid
// namespace, which exits with the container init's status. The Gofer and
// the Sentry are started in new sessions and outlive this command; the
// Gofer exits when the Sentry's end of their socket closes. The Sentry sets
// everything up, confines itself, says "OK" on a pipe, then blocks reading
// the container's exec.fifo until `start` writes a byte to it.

import COCI
import Glibc
import GoferProtocol
import Sandbox
import Sentry

public struct CreateOptions {
    public var id: String
    public var bundle: String = "."
    public var pidFile: String?
    public var consoleSocket: String?
    public var preserveFDs = 0
    public var noPivot = false
    /// The caller exits as soon as create returns (the `create` command):
    /// without hooks to run in the runtime's own cgroups, it need not move
    /// itself back out of the container's. A move is a cgroup attach, which
    /// waits for an RCU grace period (cgroup v1: ~20 ms on a loaded 2-vCPU
    /// host, the largest single item of create); the process leaves the
    /// cgroup when it exits a moment later. Every other caller (`run`, which
    /// goes on to wait and delete; a process that embeds the runtime) must
    /// leave, or delete would find it inside.
    public var callerExits = false
    public init(id: String) { self.id = id }
}

/// A sandbox that `create` has started.
struct Launched {
    var sentryPid: pid_t
    var goferPid: pid_t
}

extension Runtime {
    /// The annotation that chooses the overlay's medium (with
    /// dev.moat.overlay=true): "self" (the default) or "memory".
    public static let overlayMediumAnnotation = "dev.moat.overlay-medium"

    /// Whether an overlay medium keeps upper files on disk; nil for a name
    /// that is neither self nor memory.
    static func overlayOnDisk(_ medium: String) -> Bool? {
        switch medium {
        case "self": return true
        case "memory": return false
        default: return nil
        }
    }

    public func create(_ o: CreateOptions) throws {
        _ = try createSandbox(o)
    }

    /// Creates the container; returns the Sentry's pid (our child).
    func createSandbox(_ o: CreateOptions) throws -> pid_t {
        guard let bundlePtr = realpath(o.bundle, nil) else { throw RuntimeError("bundle \(o.bundle) does not exist") }
        let bundle = String(cString: bundlePtr)
        free(bundlePtr)
        guard let cfgBytes = readFile(bundle + "/config.json") else {
            throw RuntimeError("cannot read \(bundle)/config.json: \(String(cString: strerror(errno)))")
        }
        let spec: Spec
        do { spec = try Spec.decode(String(decoding: cfgBytes, as: UTF8.self)) } catch let e as ConfigError {
            throw RuntimeError(e.description)
        }
        guard let process = spec.process else { throw RuntimeError("config.json: process: required to create a container") }
        guard !process.args.isEmpty else { throw RuntimeError("config.json: process.args: must not be empty") }
        guard let root = spec.root else { throw RuntimeError("config.json: root: required on Linux") }
        let rootfs = root.path.hasPrefix("/") ? root.path : bundle + "/" + root.path
        var st = stat()
        if stat(rootfs, &st) != 0 || st.st_mode & S_IFMT != S_IFDIR {
            throw RuntimeError("root file system \(rootfs) does not exist or is not a directory")
        }
        if process.terminal && o.consoleSocket == nil {
            throw RuntimeError("process.terminal is true but no --console-socket was given")
        }

        let dir = try ContainerDir(creating: rootDir, id: o.id)
        var cleanup = Cleanup(dir: dir)
        defer { cleanup.run() }
        try dir.writeAtomically("config.json", cfgBytes)

        var state = ContainerState(id: o.id, bundle: bundle)
        state.created = rfc3339Now()
        state.ociVersion = spec.ociVersion
        state.annotations = spec.annotations
        state.rootfs = rootfs
        state.terminal = process.terminal
        if let pw = getpwuid(getuid()) { state.owner = String(cString: pw.pointee.pw_name) }

        // cgroups: the launcher joins first so that every process it starts
        // (Gofer, Sentry, the Sentry's stubs) is born inside; it leaves after.
        StartupProfile.mark("create", "config read, state directory made")
        let cgroupDirs = try Cgroups.create(Cgroups.relativePath(spec, id: o.id), spec.linux?.resources)
        cleanup.cgroups = cgroupDirs
        state.cgroups = cgroupDirs
        let saved = Cgroups.current(like: cgroupDirs)
        try Cgroups.join(cgroupDirs, pid: getpid())
        // Back out once, on every path (a failure's cleanup removes the
        // cgroups, which must be empty of this process), except a successful
        // create whose caller exits now with no hooks to run (callerExits).
        var inside = true, stay = false
        func leave() { if inside { inside = false; try? Cgroups.join(saved, pid: getpid()) } }
        defer { if !stay { leave() } }

        StartupProfile.mark("create", "cgroups made and joined")
        let launched = try launch(spec, process, bundle: bundle, rootfs: rootfs, dir: dir, consoleSocket: o.consoleSocket,
                                  preserveFDs: o.preserveFDs, cleanup: &cleanup)
        // Hooks run in the runtime's cgroups, not under the container's limits.
        let hooks = spec.hooks ?? Spec.Hooks()
        let hooksToRun = !(hooks.prestart.isEmpty && hooks.createRuntime.isEmpty && hooks.createContainer.isEmpty)
        if hooksToRun || !o.callerExits { leave() }
        if let adj = process.oomScoreAdj {
            for p in [launched.sentryPid, launched.goferPid] where !writeFile("/proc/\(p)/oom_score_adj", String(adj)) {
                log.warn("cannot set oom_score_adj of \(p) to \(adj): \(String(cString: strerror(errno)))")
            }
        }
        state.pid = launched.sentryPid
        state.pidStart = processStartTime(launched.sentryPid) ?? 0
        state.goferPid = launched.goferPid
        state.goferStart = processStartTime(launched.goferPid) ?? 0
        try dir.saveState(state)

        do {
            try Hooks.run("prestart", hooks.prestart, state: stateJSON(state, .creating))
            try Hooks.run("createRuntime", hooks.createRuntime, state: stateJSON(state, .creating))
            try Hooks.run("createContainer", hooks.createContainer, state: stateJSON(state, .created))
        } catch {
            // The spec: stop the container and go on as `delete` would, with
            // the poststop hooks (the deferred cleanup removes the rest).
            killSandbox(state, SIGKILL)
            Hooks.runIgnoringFailures("poststop", hooks.poststop, state: stateJSON(state, .stopped), log: log)
            throw error
        }
        if let p = o.pidFile { try writePidFile(p, launched.sentryPid) }
        cleanup.disarm()
        stay = inside
        return launched.sentryPid
    }

    func writePidFile(_ path: String, _ pid: pid_t) throws {
        let tmp = path + ".moat-tmp"
        let f = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if f < 0 { throw RuntimeError("cannot write pid file \(path): \(String(cString: strerror(errno)))") }
        let ok = writeAll(f, Array(String(pid).utf8))
        close(f)
        if !ok || rename(tmp, path) != 0 { unlink(tmp); throw RuntimeError("cannot write pid file \(path)") }
    }

    /// Starts the Gofer and the Sentry and waits until the Sentry is ready.
    func launch(_ spec: Spec, _ process: Spec.Process, bundle: String, rootfs: String, dir: ContainerDir, consoleSocket: String?,
                preserveFDs: Int, cleanup: inout Cleanup) throws -> Launched {
        var toClose: [Int32] = []
        defer { for f in toClose { close(f) } }
        let readOnly = spec.root?.readonly ?? false
        // Writes go to the bundle's rootfs, as engines expect (their snapshot
        // is the container's writable layer); an annotation asks for Moat's
        // in-memory overlay instead.
        let overlay = !readOnly && spec.annotations.contains { $0.0 == "dev.moat.overlay" && $0.1 == "true" }
        // Where that overlay keeps its big and mapped files, as `moat run
        // --overlay-medium`: self (unnamed files the Gofer makes in the
        // rootfs's own host file system, through a private clone of its
        // mount; the default) or memory (memfds, host RAM).
        let medium = spec.annotations.last { $0.0 == Self.overlayMediumAnnotation }?.1 ?? "self"
        guard let mediumOnDisk = Self.overlayOnDisk(medium) else {
            throw RuntimeError("annotation \(Self.overlayMediumAnnotation): self or memory, not \(medium)")
        }
        let upperOnDisk = overlay && mediumOnDisk

        let pair: (client: Int32, server: Int32)
        switch GoferClient.socketPair() {
        case .success(let p): pair = p
        case .failure(let e): throw RuntimeError("socketpair: errno \(e.rawValue)")
        }
        toClose += [pair.client, pair.server]
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        toClose.append(devnull)
        // A read-only root cannot get its mount points later (MountPoints).
        if readOnly { MountPoints.make(spec, rootfs: rootfs, bundle: bundle) }
        var goferArgs = ["moat", "gofer", "--root", rootfs, "--fd", "3", "--detached"]
        if readOnly || overlay { goferArgs.append("--read-only") }
        if upperOnDisk { goferArgs.append("--scratch") }
        let goferPid = try spawnGofer(goferArgs, fds: [devnull, devnull, devnull, pair.server])
        cleanup.pids.append(goferPid)
        StartupProfile.mark("create", "gofer spawned")

        // The start gate and the control socket live in the state directory.
        if mkfifo(dir.file("exec.fifo"), 0o600) != 0 { throw RuntimeError("mkfifo: \(String(cString: strerror(errno)))") }
        let startFD = open(dir.file("exec.fifo"), O_RDWR | O_CLOEXEC)
        if startFD < 0 { throw RuntimeError("cannot open exec.fifo") }
        toClose.append(startFD)
        let controlFD = try listenUnix(dirFD: dir.fd, name: "control", type: Int32(SOCK_SEQPACKET.rawValue))
        toClose.append(controlFD)
        var ready: (Int32, Int32) = (-1, -1)
        _ = withUnsafeMutableBytes(of: &ready) { coci_pipe_cloexec($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        toClose += [ready.0, ready.1]

        var stdio: [Int32] = [0, 1, 2]
        if process.terminal, let sock = consoleSocket {
            let size = process.consoleSize
            let (m, s) = try openPTY(rows: size.map { UInt16(clamping: $0.height) }, cols: size.map { UInt16(clamping: $0.width) })
            toClose += [m, s]
            try sendConsole(m, to: sock)
            stdio = [s, s, s]
        }

        var c = SentryConfig()
        c.goferFD = 3; c.readyFD = 4; c.startFD = 5; c.controlFD = 6
        c.argv = process.args
        c.env = process.env
        c.cwd = process.cwd
        c.uid = process.user.uid
        c.gid = process.user.gid
        c.groups = process.user.additionalGids
        c.umask = process.user.umask
        c.hostname = spec.hostname ?? "moat"
        c.domainname = spec.domainname
        c.overlay = overlay
        c.upperOnDisk = upperOnDisk
        c.terminal = process.terminal
        c.forwardAllSignals = true
        c.debug = debug
        for r in process.rlimits {
            if let i = Spec.Process.rlimitTypes.firstIndex(of: r.type) { c.rlimits.append((i, r.soft, r.hard)) }
        }
        SentryPlan.applyCredentials(spec, to: &c)
        var fds = stdio + [pair.client, ready.1, startFD, controlFD]
        // Bind mounts: one Gofer per source directory (shared by the files
        // bound from the same directory), each confined to it.
        var bindGofers: [String: Int32] = [:]
        for m in spec.mounts {
            let isBind = m.options.contains("bind") || m.options.contains("rbind")
            let type = isBind ? "bind" : (m.type ?? "")
            switch type {
            case "proc", "tmpfs", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2":
                var sm = SentryMount(type: type, destination: m.destination, options: m.options)
                sm.source = m.source
                c.mounts.append(sm)
            case "bind":
                guard var src = m.source, !src.isEmpty else { throw RuntimeError("mount \(m.destination): a bind mount needs a source") }
                if !src.hasPrefix("/") { src = bundle + "/" + src }
                // The Gofer walks with O_NOFOLLOW: bind what a symlink names.
                if let r = realpath(src, nil) { src = String(cString: r); free(r) }
                var st = stat()
                if stat(src, &st) != 0 { throw RuntimeError("mount \(m.destination): source \(src): \(String(cString: strerror(errno)))") }
                let isDir = st.st_mode & S_IFMT == S_IFDIR
                var dirPath = src
                var fileName: String? = nil
                if !isDir, let slash = src.lastIndex(of: "/") {
                    dirPath = slash == src.startIndex ? "/" : String(src[..<slash])
                    fileName = String(src[src.index(after: slash)...])
                }
                let ro = m.options.contains("ro")
                let key = dirPath + (ro ? "\0ro" : "")
                var gfd = bindGofers[key] ?? -1
                if gfd < 0 {
                    let bp: (client: Int32, server: Int32)
                    switch GoferClient.socketPair() {
                    case .success(let p): bp = p
                    case .failure(let e): throw RuntimeError("socketpair: errno \(e.rawValue)")
                    }
                    toClose += [bp.client, bp.server]
                    var args = ["moat", "gofer", "--root", dirPath, "--fd", "3", "--detached"]
                    if ro { args.append("--read-only") }
                    cleanup.pids.append(try spawnGofer(args, fds: [devnull, devnull, devnull, bp.server]))
                    gfd = Int32(fds.count)
                    fds.append(bp.client)
                    bindGofers[key] = gfd
                }
                var sm = SentryMount(type: "bind", destination: m.destination, options: m.options)
                sm.goferFD = gfd
                sm.fileName = fileName
                sm.source = src
                c.mounts.append(sm)
            default: log.debug("mount \(m.destination) (\(type)): not emulated, skipped (see runtime-spec/CONFORMANCE.md)")
            }
        }
        c.maskedPaths = spec.linux?.maskedPaths ?? []
        c.readonlyPaths = spec.linux?.readonlyPaths ?? []
        c.devices = (spec.linux?.devices ?? []).map {
            SentryDevice(path: $0.path, type: $0.type, major: $0.major ?? 0, minor: $0.minor ?? 0, mode: $0.fileMode ?? 0o666,
                         uid: $0.uid ?? 0, gid: $0.gid ?? 0)
        }
        if let sc = spec.linux?.seccomp { c.seccomp = appSeccomp(sc) }
        var logFD: Int32 = -1
        if debug, let p = logPath, !logJSON {
            logFD = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if logFD >= 0 { toClose.append(logFD); c.logFD = Int32(fds.count); fds.append(logFD) }
        }
        for i in 0..<preserveFDs {
            c.extraFDs.append(Int32(fds.count))
            fds.append(Int32(3 + i))
        }
        let (cloneFlags, hostNS) = try sentryNamespaces(spec.linux?.namespaces ?? [])
        let planFD = try SentryPlan.memfd(c, hostNS)
        toClose.append(planFD)
        let planNumber = fds.count
        fds.append(planFD)
        let sentryPid = try spawnSelf(["moat", "sentry", "--oci-config-fd", String(planNumber)], fds: fds,
                                      cloneFlags: cloneFlags, newSession: true, binary: Sandbox.binary)
        cleanup.pids.insert(sentryPid, at: 0)
        StartupProfile.mark("create", "sentry spawned (its namespaces made)")
        close(ready.1); toClose.removeAll { $0 == ready.1 }

        // Wait for "OK", or the error that stopped the Sentry.
        var reply: [UInt8] = []
        var b = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = b.withUnsafeMutableBytes { read(ready.0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            reply += b[0..<n]
        }
        let text = String(decoding: reply, as: UTF8.self)
        StartupProfile.mark("create", "sentry ready")
        if text != "OK\n" {
            var msg = text.trimmingCharacters(in: "\n")
            if let sp = msg.firstIndex(of: " "), Int(msg[..<sp]) != nil { msg = String(msg[msg.index(after: sp)...]) }
            throw RuntimeError(msg.isEmpty ? "the sandbox failed to start" : msg)
        }
        return Launched(sentryPid: sentryPid, goferPid: goferPid)
    }
}

/// The host namespaces of the Sentry process for linux.namespaces (the application's are
/// always the Sentry's emulated ones). It is always pid 1 of a new pid namespace. A mount,
/// uts, ipc, cgroup or network namespace without a path is a new one (a new network
/// namespace with loopback up and nothing else, as runc makes it); with a path, the Sentry
/// joins it. Every path must name a namespace of its type. user and time namespaces, and
/// pid paths, are not applied to the Sentry (it needs host root, and its own pid namespace).
func sentryNamespaces(_ list: [Spec.Namespace]) throws -> (UInt, SentryPlan.HostNamespaces) {
    let flags: [String: Int32] = ["mount": 0x0002_0000, "uts": 0x0400_0000, "ipc": 0x0800_0000, "user": 0x1000_0000,
                                  "pid": 0x2000_0000, "network": 0x4000_0000, "cgroup": 0x0200_0000, "time": 0x80]
    let applied: Set<String> = ["mount", "uts", "ipc", "cgroup", "network"]
    var clone: UInt = 0x2000_0000 // CLONE_NEWPID
    var ns = SentryPlan.HostNamespaces()
    for n in list {
        guard let flag = flags[n.type] else { continue }
        if let path = n.path {
            let t = coci_namespace_type(path)
            if t < 0 { throw RuntimeError("\(n.type) namespace \(path): \(String(cString: strerror(-t)))") }
            if t != flag { throw RuntimeError("\(n.type) namespace \(path): not a \(n.type) namespace") }
            if applied.contains(n.type) { ns.join.append((path, flag)) }
        } else if applied.contains(n.type) {
            clone |= UInt(flag)
            if n.type == "network" { ns.loopbackUp = true }
        }
    }
    return (clone, ns)
}

/// Undoes a partial `create` unless disarmed: kills what was started,
/// removes the cgroups and the state directory.
struct Cleanup {
    let dir: ContainerDir
    var pids: [pid_t] = []
    var cgroups: [String] = []
    var armed = true
    init(dir: ContainerDir) { self.dir = dir }
    mutating func disarm() { armed = false }
    func run() {
        guard armed else { return }
        for p in pids {
            kill(p, SIGKILL)
            var st: Int32 = 0
            _ = waitpid(p, &st, 0)
        }
        Cgroups.remove(cgroups)
        dir.remove()
    }
}

/// The OCI seccomp profile as the Sentry enforces it. The default errno
/// for ERRNO actions is EPERM, as runc's; NOTIFY (no listener) is ENOSYS.
func appSeccomp(_ s: Spec.Seccomp) -> AppSeccompProfile {
    func eno(_ action: String, _ ret: UInt32?) -> Int32 {
        if let r = ret { return Int32(clamping: r) }
        return action == "SCMP_ACT_NOTIFY" || action == "SCMP_ACT_TRACE" ? ENOSYS : EPERM
    }
    return AppSeccompProfile(
        defaultAction: AppSeccompProfile.action(s.defaultAction), defaultErrno: eno(s.defaultAction, s.defaultErrnoRet),
        rules: s.syscalls.map { r in
            AppSeccompProfile.Rule(names: r.names, action: AppSeccompProfile.action(r.action), errnoRet: eno(r.action, r.errnoRet),
                                   conditions: r.args.map { AppSeccompProfile.Condition(index: Int(min($0.index, 5)), op: $0.op,
                                                                                        value: $0.value, valueTwo: $0.valueTwo ?? 0) })
        })
}
