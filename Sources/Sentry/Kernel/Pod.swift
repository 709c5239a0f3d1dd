// Pod mode: one Sentry hosts the containers of a Kubernetes pod (see
// Sources/Sandbox/Pod.swift for the host side). The pod Sentry starts with
// no application process; its root is an empty Sentry tmpfs no process ever
// sees. Each container is a mount namespace of its own: its root file system
// (a Gofer confined to the image's root, with a private writable layer in
// Sentry memory) is mounted at /ID of that tmpfs, with the mount marked as a
// namespace root, so `..`, chroot and /proc links never lead out of it
// (VFS.parent(of:), VFS.pathString). The containers share the pod's network
// namespace, hostname and System V IPC. Each container has a pid namespace
// of its own (its first process is pid 1), or, with pidns=pod, all such
// containers share the pod's, whose pid 1 is a pod init the Sentry provides
// (Kernel/PidNamespaces.swift).
//
// Requests arrive on the control socket (Kernel/Control.swift), as a first
// packet of NUL-separated fields starting with op=...:
//   op=create id=ID ro=0|1 [upper=self] [process fields as for exec] m=MOUNT... fds=L1,L2...
//        (upper=self: the writable layer's big and mapped files are unnamed
//        files the root's Gofer makes, FSImpl/UpperStore.swift, not memfds)
//        then one packet per label, each carrying that fd (SCM_RIGHTS):
//        "root" (the root's Gofer), "stdin", "log" (the CRI log file, or
//        none), or "stdout" and "stderr" (host fds used as they are, for a
//        container run in the foreground), and the mounts' Gofers. A mount is DEST\u{1}KIND\u{1}RO\u{1}A\u{1}B
//        with KIND bind (A = fd label, B = a file's name in that Gofer's
//        directory, or empty), tmpfs, or file (A = contents in hex, B = mode
//        in octal). mask=PATH / ropath=PATH (repeatable): masked and
//        read-only paths, resolved in the container's view after the mounts.
//        Reply "ok" or "err=CODE MESSAGE".
//   op=start id=ID            run the container's process; "ok" or "err=..."
//   op=status id=ID           "state=created|running|exited created=NS
//                              started=NS finished=NS exit=WAITSTATUS"
//   op=signal id=ID sig=N     every process of the container; "ok=COUNT"
//   op=remove id=ID           forget an exited (or never started) container
//   op=stats id=ID            "cpu=NS upper=BYTES pids=P1,P2..." (the host
//                             processes of its address spaces)
//   op=reopenlog id=ID        then a packet carrying the new log fd
//   op=attach id=ID           then two packets carrying pipes that get the
//                             container's stdout and stderr until it exits
//   op=stop [grace=SECONDS]   SIGTERM to every process, SIGKILL after the
//                             grace period, then the Sentry exits; "ok"
// Exec into a container is the exec request with container=ID.

import CMoat
import Glibc
import GoferProtocol

final class PodContainer {
    enum State: String { case created, running, exited }
    let id: String
    /// The container's namespace root.
    let root: Path
    let mount: Mount
    var state: State = .created
    var createdAt = Kernel.now(CLOCK_REALTIME)
    var startedAt: Int64 = 0
    var finishedAt: Int64 = 0
    /// Wait status of the container's process.
    var exitStatus: Int32 = 0
    var initTG: ThreadGroup?
    var request: ProcessRequest
    let log: CRILogSink?
    var stdinFD: Int32
    /// Host fds for stdout and stderr (instead of a log), or empty.
    var stdioFDs: [Int32] = []
    let upper: TmpfsInode?
    /// The container's pid namespace (PidNS): the pod's (CRI NamespaceMode
    /// POD) or one of its own (CONTAINER).
    var pidNS: Int32 = PidNS.pod
    /// The container's seccomp profile (from the CRI), enforced on the
    /// syscalls of its processes, exec'd ones included.
    var seccomp: AppSeccomp?
    /// How many containers of this pod have a profile (none: no lookup per syscall).
    nonisolated(unsafe) static var withSeccomp = 0

    init(id: String, root: Path, mount: Mount, request: ProcessRequest, log: CRILogSink?, stdinFD: Int32, upper: TmpfsInode?) {
        self.id = id; self.root = root; self.mount = mount; self.request = request
        self.log = log; self.stdinFD = stdinFD; self.upper = upper
    }
}

/// A process to start, as the control channel describes it.
struct ProcessRequest {
    var argv: [String] = [], env: [String] = [], cwd = "/", uid: UInt32 = 0, gid: UInt32 = 0
    var groups: [UInt32] = [], umask: UInt32? = nil
    var caps: CapabilitySets?, nnp = false
    var container: String? = nil
    /// Exec with a terminal: the process's stdio is a pty the Sentry makes (see ControlServer).
    var tty = false

    init(caps: CapabilitySets?, nnp: Bool) { self.caps = caps; self.nnp = nnp }

    /// Takes the fields it knows; returns false for none of them.
    @discardableResult
    mutating func take(_ key: Substring, _ value: String) -> Bool {
        switch key {
        case "a": argv.append(value)
        case "e": env.append(value)
        case "cwd": cwd = value
        case "uid": uid = UInt32(value) ?? 0
        case "gid": gid = UInt32(value) ?? 0
        case "g": if let g = UInt32(value) { groups.append(g) }
        case "umask": umask = UInt32(value, radix: 8)
        case "caps":
            let m = value.split(separator: ",").compactMap { UInt64($0, radix: 16) }
            if m.count == 5 { caps = CapabilitySets(bounding: m[0], effective: m[1], permitted: m[2], inheritable: m[3], ambient: m[4]) }
        case "nnp": nnp = value == "1"
        case "container": container = value
        case "tty": tty = value == "1"
        default: return false
        }
        return true
    }

    var credentials: Credentials {
        Credentials.forContainer(uid: uid, gid: gid, groups: groups, caps: caps, noNewPrivs: nnp)
    }
}

extension Kernel {
    /// The container a thread group belongs to (its root's namespace).
    /// Requires: mu held.
    func containerID(of tg: ThreadGroup) -> String? {
        guard let t = tg.tasks.first else { return nil }
        var m: Mount? = t.fs.root.mount
        while let mm = m {
            if let id = mm.namespaceID { return id }
            m = mm.parent
        }
        return nil
    }

    /// The seccomp filter a task's syscalls go through: the sandbox's own
    /// (OCI), or in a pod the one of the container the task belongs to.
    /// Requires: mu held.
    func seccompFilter(_ tg: ThreadGroup) -> AppSeccomp? {
        if let a = AppSeccomp.active { return a }
        guard podMode, PodContainer.withSeccomp > 0, let id = containerID(of: tg) else { return nil }
        return podContainers[id]?.seccomp
    }

    /// Whether `viewer` may see (in /proc) and signal `tg`: a process of
    /// its own pid namespace (in a pod, its container's, or the pod's when
    /// the container shares it) or of one below it, or any from the root
    /// namespace. Requires: mu held.
    func sees(_ viewer: Task?, _ tg: ThreadGroup) -> Bool {
        guard let v = viewer else { return true }
        let ns = PidNS.index(v.tg.tgid)
        return ns == 0 || ns == PidNS.index(tg.tgid) || pidNS(PidNS.index(tg.tgid), isWithin: ns)
    }

    /// A container's process has exited. Requires: mu held.
    func podProcessExited(_ tg: ThreadGroup) {
        for c in podContainers.values where c.initTG === tg && c.state == .running {
            c.state = .exited
            c.exitStatus = tg.exitCode
            c.finishedAt = Kernel.now(CLOCK_REALTIME)
            c.log?.flush()
            c.log?.detachAll()
            // What the container left behind dies with it (its pid
            // namespace's init is gone).
            for other in threadGroups.values where other !== tg && !other.exiting && containerID(of: other) == c.id {
                other.beginExit(code: SIGKILL, bySignal: true)
            }
        }
    }
}

enum PodControl {
    typealias Fields = [(Substring, String)]

    static func serve(_ k: Kernel, _ conn: Int32, _ fields: Fields) {
        func field(_ name: String) -> String? { fields.first { $0.0 == name }?.1 }
        let op = field("op") ?? ""
        let id = field("id") ?? ""
        switch op {
        case "create": ControlServer.send(conn, create(k, conn, id, fields))
        case "start": ControlServer.send(conn, start(k, id))
        case "status":
            k.lock(); defer { k.unlock() }
            guard let c = k.podContainers[id] else { ControlServer.send(conn, "err=2 no such container \(id)"); return }
            ControlServer.send(conn, "state=\(c.state.rawValue) created=\(c.createdAt) started=\(c.startedAt) finished=\(c.finishedAt) exit=\(c.exitStatus)")
        case "signal":
            guard let sig = Int32(field("sig") ?? ""), sig > 0, sig < 65 else { ControlServer.send(conn, "err=22 bad signal"); return }
            k.lock(); defer { k.unlock() }
            guard k.podContainers[id] != nil else { ControlServer.send(conn, "err=2 no such container \(id)"); return }
            var n = 0
            for tg in k.threadGroups.values where !tg.exiting && !tg.zombie && k.containerID(of: tg) == id {
                var info = SigInfo(signo: sig)
                info.fromHost = true
                tg.sendSignal(sig, info)
                n += 1
            }
            ControlServer.send(conn, "ok=\(n)")
        case "remove":
            k.lock(); defer { k.unlock() }
            guard let c = k.podContainers[id] else { ControlServer.send(conn, "ok"); return }
            if c.state == .running { ControlServer.send(conn, "err=16 container \(id) is running"); return }
            k.podContainers[id] = nil
            if c.seccomp != nil { PodContainer.withSeccomp -= 1 }
            // Unmount its namespace: every mount at or below its root.
            func inside(_ m: Mount) -> Bool {
                var x: Mount? = m
                while let y = x { if y === c.mount { return true }; x = y.parent }
                return false
            }
            k.vfs.mounts.removeAll { inside($0) }
            k.vfs.detach(c.mount)
            (k.vfs.rootPath.inode as? TmpfsInode)?.entries[Array(id.utf8)] = nil
            (k.vfs.rootPath.inode as? TmpfsInode)?.order.removeAll { $0 == Array(id.utf8) }
            k.vfs.rootPath.dentry.children[Array(id.utf8)] = nil
            if c.stdinFD >= 0 { close(c.stdinFD); c.stdinFD = -1 }
            for f in c.stdioFDs { close(f) }
            c.stdioFDs = []
            c.log?.reopen(-1)
            ControlServer.send(conn, "ok")
        case "stats":
            k.lock(); defer { k.unlock() }
            guard let c = k.podContainers[id] else { ControlServer.send(conn, "err=2 no such container \(id)"); return }
            var cpu: Int64 = 0
            var pids: [String] = []
            for tg in k.threadGroups.values where k.containerID(of: tg) == id && !tg.zombie {
                cpu += tg.utimeNs + tg.stimeNs
                // The host process holding the address space: the runtime,
                // which may read /proc, sums their memory.
                for t in tg.tasks.prefix(1) where t.hostPid > 0 { pids.append(String(t.hostPid)) }
            }
            ControlServer.send(conn, "cpu=\(cpu) upper=\(c.upper.map { treeBytes($0) } ?? 0) pids=\(pids.joined(separator: ","))")
        case "attach":
            // Two packets: the stdout and the stderr pipe of an attached client.
            guard let (_, out) = ControlServer.receive(conn), out >= 0 else { ControlServer.send(conn, "err=22 no stdout fd"); return }
            guard let (_, errFD) = ControlServer.receive(conn), errFD >= 0 else { close(out); ControlServer.send(conn, "err=22 no stderr fd"); return }
            k.lock(); defer { k.unlock() }
            guard let c = k.podContainers[id], let log = c.log else {
                close(out); close(errFD); ControlServer.send(conn, "err=2 no such container \(id)"); return
            }
            if c.state == .exited { close(out); close(errFD) } else { log.attach(out: out, err: errFD) }
            ControlServer.send(conn, "ok")
        case "reopenlog":
            guard let (_, fd) = ControlServer.receive(conn), fd >= 0 else { ControlServer.send(conn, "err=22 no log fd"); return }
            k.lock(); defer { k.unlock() }
            guard let c = k.podContainers[id], let log = c.log else { close(fd); ControlServer.send(conn, "err=2 no such container \(id)"); return }
            log.reopen(fd)
            ControlServer.send(conn, "ok")
        case "stop":
            let grace = Int(field("grace") ?? "") ?? 10
            stop(k, grace: grace)
            ControlServer.send(conn, "ok")
        default:
            ControlServer.send(conn, "err=22 unknown request \(op)")
        }
    }

    /// Resident bytes of a stub process (the application's memory).
    /// Bytes held in a tmpfs tree (a container's writable layer).
    static func treeBytes(_ d: TmpfsInode) -> UInt64 {
        var n = UInt64(d.fileLength)      // data, or a memfd for mapped and big files
        for e in d.entries.values { if let t = e as? TmpfsInode { n += treeBytes(t) } }
        return n
    }

    static func create(_ k: Kernel, _ conn: Int32, _ id: String, _ fields: Fields) -> String {
        var labels: [String] = []
        var mounts: [[String]] = []
        var readOnly = false
        var upperOnDisk = false
        var sharePID = false
        var masked: [String] = [], readOnlyPaths: [String] = []
        var seccompProfile: AppSeccompProfile? = nil
        var seccompRules: [AppSeccompProfile.Rule] = []
        var req = ProcessRequest(caps: k.containerCaps, nnp: k.containerNoNewPrivs)
        for (key, value) in fields {
            if req.take(key, value) { continue }
            switch key {
            case "fds": labels = value.split(separator: ",").map(String.init)
            case "m": mounts.append(value.split(separator: "\u{1}", omittingEmptySubsequences: false).map(String.init))
            case "ro": readOnly = value == "1"
            case "upper": upperOnDisk = value == "self"
            case "pidns": sharePID = value == "pod"
            case "mask": masked.append(value)
            case "ropath": readOnlyPaths.append(value)
            case "scmp":
                let p = value.split(separator: ":", omittingEmptySubsequences: false)
                seccompProfile = AppSeccompProfile(defaultAction: AppSeccompProfile.action(String(p[0])),
                                                   defaultErrno: p.count > 1 ? Int32(p[1]) ?? 1 : 1, rules: [])
            case "scmpr":
                let p = value.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard p.count >= 3 else { continue }
                let conds: [AppSeccompProfile.Condition] = (p.count > 3 ? p[3] : "").split(separator: ";").compactMap { c in
                    let f = c.split(separator: "/").map(String.init)
                    guard f.count == 4, let i = Int(f[0]), let v = UInt64(f[2]), let v2 = UInt64(f[3]) else { return nil }
                    return AppSeccompProfile.Condition(index: i, op: f[1], value: v, valueTwo: v2)
                }
                seccompRules.append(AppSeccompProfile.Rule(names: p[2].split(separator: ",").map(String.init),
                                                           action: AppSeccompProfile.action(p[0]), errnoRet: Int32(p[1]) ?? 1,
                                                           conditions: conds))
            default: break
            }
        }
        var fds: [String: Int32] = [:]
        for l in labels {
            guard let (_, fd) = ControlServer.receive(conn) else { for f in fds.values where f >= 0 { close(f) }; return "err=5 the request ended early" }
            fds[l] = fd
        }
        var used = Set<Int32>()
        defer { for (_, f) in fds where f >= 0 && !used.contains(f) { close(f) } }
        guard !id.isEmpty, id.utf8.count <= 200, !id.contains("/"), id != ".", id != ".." else { return "err=22 bad container id" }
        guard !req.argv.isEmpty else { return "err=22 no command given" }
        guard let rootFD = fds["root"], rootFD >= 0 else { return "err=22 no root file system" }

        let client = GoferClient(socketFD: rootFD)
        used.insert(rootFD)
        let gofer: GoferInode
        switch client.attach() {
        case .success(let (fid, st)): gofer = GoferInode(client: client, fid: fid, stat: st, frozen: !readOnly)
        case .failure(let e): return "err=5 cannot attach to the container's root file system: errno \(e.rawValue)"
        }
        k.lock(); defer { k.unlock() }
        if k.finished { return "err=125 the pod is stopped" }
        if k.podContainers[id] != nil { return "err=17 container \(id) exists" }
        let vfs = k.vfs
        let top = vfs.rootPath
        let name = Array(id.utf8)
        guard let podRoot = top.inode as? TmpfsInode else { return "err=5 not a pod sandbox" }
        if podRoot.entries[name] == nil {
            guard case .success = podRoot.mkdir(name, mode: S_IFDIR_ | 0o700, uid: 0, gid: 0) else { return "err=5 cannot make the mount point" }
        }
        let podFS = FSContext(root: top, cwd: top)
        guard case .success(let mp) = vfs.resolve(podFS, start: top, name) else { return "err=5 cannot make the mount point" }
        let devBase = UInt64(100 + 16 * k.podContainers.count)
        // An overlay even for a read-only root: mount points the image lacks
        // (volumes, tmpfs) are made in its upper layer, and the root becomes
        // read-only once every mount is in place.
        let u = TmpfsInode(mode: gofer.mode, dev: devBase, uid: gofer.uid, gid: gofer.gid)
        if upperOnDisk && !readOnly { u.store = UpperStore(client: client, label: "container \(id)'s root file system") }
        let upper: TmpfsInode? = u
        let rootInode: Inode = OverlayInode(lower: gofer, upper: u, parent: nil, name: [47], upperDev: devBase)
        let m = vfs.mount(rootInode, at: mp, fsType: readOnly ? "9p" : "overlay", source: readOnly ? "none" : "overlay")
        m.namespaceID = id
        let root = Path(mount: m, dentry: m.root)
        let fs = FSContext(root: root, cwd: root)
        SentryMain.mountDefaults(k, fs)
        var sentryMounts: [SentryMount] = []
        for parts in mounts where parts.count >= 5 {
            let dest = parts[0], kind = parts[1], ro = parts[2] == "1"
            switch kind {
            case "bind":
                guard let fd = fds[parts[3]], fd >= 0 else { continue }
                used.insert(fd)
                var sm = SentryMount(type: "bind", destination: dest, options: ro ? ["ro"] : [])
                sm.goferFD = fd
                if !parts[4].isEmpty { sm.fileName = parts[4] }
                sentryMounts.append(sm)
            case "tmpfs":
                sentryMounts.append(SentryMount(type: "tmpfs", destination: dest, options: ro ? ["ro"] : []))
            case "file":
                SentryMain.mountAll(k, fs, sentryMounts, masked: [], readOnly: [])
                sentryMounts = []
                guard let p = SentryMain.ensureFile(k, fs, dest) else {
                    Log.shared.info("container \(id): cannot make \(dest); skipped")
                    continue
                }
                let f = TmpfsInode(mode: S_IFREG_ | (UInt32(parts[4], radix: 8) ?? 0o644) & 0o7777, dev: devBase + 1)
                f.data = hexDecode(parts[3])
                let mnt = vfs.mount(f, at: p, fsType: "tmpfs", source: "tmpfs")
                if ro { mnt.readOnly = true }
            default: continue
            }
        }
        SentryMain.mountAll(k, fs, sentryMounts, masked: masked, readOnly: readOnlyPaths)
        if readOnly { m.readOnly = true }
        let log: CRILogSink?
        var hostStdio: [Int32] = []
        if let o = fds["stdout"], let e = fds["stderr"], o >= 0, e >= 0 {
            // A container run in the foreground: its stdio is the host's, no log.
            hostStdio = [o, e]; used.insert(o); used.insert(e); log = nil
        } else if let lf = fds["log"], lf >= 0 { log = CRILogSink(fd: lf); used.insert(lf) } else {
            log = CRILogSink(fd: -1)   // without a log file the sink still serves attached clients
        }
        var stdinFD: Int32 = -1
        if let s = fds["stdin"], s >= 0 { stdinFD = s; used.insert(s) }
        req.container = id
        let c = PodContainer(id: id, root: root, mount: m, request: req, log: log, stdinFD: stdinFD, upper: upper)
        c.stdioFDs = hostStdio
        if sharePID {
            k.ensurePodInit()
        } else {
            guard let ns = k.newPidNamespace() else { return "err=11 no pid namespace left in the pod" }
            c.pidNS = ns
        }
        if var p = seccompProfile {
            p.rules = seccompRules
            c.seccomp = AppSeccomp(p)
            PodContainer.withSeccomp += 1
        }
        k.podContainers[id] = c
        startGoferWatcher(k, client, container: c)
        return "ok"
    }

    static func start(_ k: Kernel, _ id: String) -> String {
        k.lock(); defer { k.unlock() }
        guard let c = k.podContainers[id] else { return "err=2 no such container \(id)" }
        guard c.state == .created else { return "err=16 container \(id) was started already" }
        guard !k.finished, let pid = k.allocPid(namespace: c.pidNS) else { return "err=125 the pod is stopped" }
        let r = c.request
        let tg = ThreadGroup(kernel: k, tgid: pid, parent: nil, handlers: SignalHandlers())
        let fds = SentryMain.stdioTable(k.vfs, c.stdioFDs.count == 2 ? [c.stdinFD] + c.stdioFDs : c.stdinFD >= 0 ? [c.stdinFD] : [])
        if let log = c.log {
            let p = Path(mount: k.vfs.rootMount, dentry: Dentry(name: Array("pipe".utf8), parent: nil, inode: StdioInode(ino: 0, mode: S_IFIFO_ | 0o600, dev: 0)))
            fds.installAt(CRILogFD(sink: log, stream: "stdout", path: p), 1, cloexec: false)
            fds.installAt(CRILogFD(sink: log, stream: "stderr", path: p), 2, cloexec: false)
        }
        switch SentryMain.newProcess(k, tg: tg, tid: pid, creds: r.credentials, argv: r.argv, env: r.env, cwd: r.cwd,
                                     umask: r.umask, fds: fds, root: c.root) {
        case .failure(let f):
            c.state = .exited
            c.exitStatus = (f.code & 0xff) << 8
            c.startedAt = Kernel.now(CLOCK_REALTIME)
            c.finishedAt = c.startedAt
            c.log?.append("stderr", Array("moat: \(f.message)\n".utf8))
            return "err=\(f.code) \(f.message)"
        case .success(let (task, tgt, execfn)):
            k.threadGroups[pid] = tg
            tg.tasks.append(task)
            k.tasks[pid] = task
            let envb = r.env.map { Array($0.utf8) }
            task.onStart = { t in
                let e = execImage(t, tgt, envp: envb, execfn: execfn)
                if e < 0 { t.tg.beginExit(code: 126, bySignal: false) }
            }
            c.initTG = tg
            c.state = .running
            c.startedAt = Kernel.now(CLOCK_REALTIME)
            // On a host terminal (moat run -it): the terminal's foreground group.
            if c.stdinFD >= 0, isatty(c.stdinFD) == 1 { k.foregroundPgid = tg.pgid }
            task.startDriver()
        }
        return "ok"
    }

    /// Ends every process (SIGTERM, then SIGKILL after `grace` seconds) and
    /// lets the Sentry exit.
    static func stop(_ k: Kernel, grace: Int) {
        k.lock()
        for tg in k.threadGroups.values where !tg.exiting && !tg.zombie && !tg.isPodInit {
            var info = SigInfo(signo: SIGTERM)
            info.fromHost = true
            tg.sendSignal(SIGTERM, info)
        }
        k.unlock()
        let deadline = Kernel.now(CLOCK_MONOTONIC) + Int64(max(0, grace)) * 1_000_000_000
        while Kernel.now(CLOCK_MONOTONIC) < deadline {
            k.lock()
            let alive = k.threadGroups.values.contains { !$0.zombie && !$0.isPodInit }
            k.unlock()
            if !alive { break }
            usleep(20_000)
        }
        k.lock()
        for tg in k.threadGroups.values where !tg.exiting && !tg.zombie { tg.beginExit(code: SIGKILL, bySignal: true) }
        k.unlock()
        for _ in 0..<250 {
            k.lock()
            let alive = k.threadGroups.values.contains { !$0.zombie && !$0.isPodInit }
            k.unlock()
            if !alive { break }
            usleep(20_000)
        }
        k.lock()
        for c in k.podContainers.values { c.log?.flush(); c.log?.detachAll() }
        k.podStopped()
        k.unlock()
    }

    static func hexDecode(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count / 2)
        var hi: UInt8? = nil
        for c in s.utf8 {
            let v: UInt8
            switch c {
            case 48...57: v = c - 48
            case 97...102: v = c - 87
            case 65...70: v = c - 55
            default: continue
            }
            if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
        }
        return out
    }
}
