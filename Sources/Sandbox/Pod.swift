// A pod sandbox: one Sentry that hosts several containers, as `moat cri`
// needs (a Kubernetes pod is one sandbox; its containers share the pod's
// network namespace, IPC and, when asked, its pid namespace, inside one
// emulated kernel). No pause process runs on the host: the pod's Sentry
// starts with no application process and waits on its control socket.
//
// Each container gets its own root file system (a Gofer confined to the
// image's unpacked, shared, read-only root, with a private writable layer in
// Sentry memory), its own mount namespace inside the Sentry, and its own
// processes. Pod Sentries outlive the process that started them (`moat cri`
// may restart): all that is needed to reach one again is in its state
// directory, which `reconnect` reads.
//
// This file is the contract between the CRI server (Sources/CRI) and the
// sandbox side (this module and the Sentry's control channel).

import CMoat
import Glibc
import GoferProtocol

public enum PodNetwork: Sendable, Equatable {
    /// A new network namespace with loopback up (CNI may then configure it
    /// through `PodSandbox.networkNamespacePath`).
    case loopback
    /// Join this network namespace (a path such as /var/run/netns/X).
    case namespace(String)
    /// The host's network namespace (NODE network mode).
    case host
}

public struct PodConfig: Sendable {
    public var id: String
    /// A directory only this pod uses (control socket, pid file, state);
    /// created by `start`, removed by `destroy`.
    public var stateDir: String
    public var hostname: String = "localhost"
    public var dnsServers: [String] = []
    public var dnsSearches: [String] = []
    public var dnsOptions: [String] = []
    /// Extra /etc/hosts lines ("IP NAME...").
    public var hostsEntries: [String] = []
    public var network: PodNetwork = .loopback
    /// KEY=VALUE sysctls the pod's kernel shows under /proc/sys.
    public var sysctls: [String: String] = [:]
    /// A cgroup (v1 or v2 path relative to the hierarchy root) the pod's host
    /// processes go into; nil for none.
    public var cgroupParent: String? = nil
    /// The limits the pod's /sys/fs/cgroup shows, as cgroup v2 files
    /// (Sentry's SentryConfig.cgroupFiles).
    public var cgroupFiles: [(String, String)] = []
    /// Moat's own log for this pod (never the containers' output).
    public var logPath: String? = nil
    public var debug = false
    /// The seccomp-notify fast path (false: ptrace only).
    public var fastPath = true
    /// The containers' Gofers are forked by a zygote of the pod's own
    /// (GoferZygote.swift) instead of re-executed one by one (`moat cri`).
    public var goferZygote = false
    /// With `.loopback`: outbound connections through an egress broker
    /// (Network.swift) that lives in the process calling `start`, and ends
    /// with it (moat's standalone supervisor); false: loopback only.
    public var egress = false
    public init(id: String, stateDir: String) { self.id = id; self.stateDir = stateDir }
}

/// The size of an exec's terminal (tty=1), as the client resizes it: passed
/// to the pod's Sentry, which sets its pseudo-terminal's size (SIGWINCH).
/// A size given before the process started is sent once it has.
public final class ExecTerminal: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var conn: Int32 = -1
    private var pending: (UInt16, UInt16)?

    public init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    public func resize(columns: UInt16, rows: UInt16) {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        if conn >= 0 { Self.send(conn, columns, rows) } else { pending = (columns, rows) }
    }

    func attach(_ fd: Int32) {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        conn = fd
        if let (c, r) = pending { Self.send(fd, c, r); pending = nil }
    }

    func detach() {
        pthread_mutex_lock(&mutex); conn = -1; pthread_mutex_unlock(&mutex)
    }

    private static func send(_ fd: Int32, _ c: UInt16, _ r: UInt16) {
        let b = Array("winsize=\(c),\(r)".utf8)
        _ = b.withUnsafeBytes { MessageSocket.send(fd, $0.baseAddress!, $0.count, fd: -1) }
    }
}

public struct ContainerProcess: Sendable {
    public var argv: [String]
    public var env: [String] = []
    public var cwd: String = "/"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var additionalGids: [UInt32] = []
    /// Capability mask (bit N = capability N) for bounding/permitted/effective;
    /// nil: the container default (Docker's default set).
    public var capabilities: UInt64? = nil
    public var noNewPrivs = false
    public var tty = false
    /// Keep stdin open for attach.
    public var stdin = false
    public var stdinOnce = false
    public init(argv: [String]) { self.argv = argv }
}

public enum ContainerMountKind: Sendable, Equatable {
    /// A host directory or file, served by a Gofer confined to it.
    case bind(hostPath: String)
    /// An empty tmpfs in Sentry memory.
    case tmpfs
    /// A file with these contents, made in Sentry memory (generated
    /// /etc/hosts, /etc/resolv.conf, /etc/hostname, secrets...).
    case file(contents: [UInt8], mode: UInt32)
}

public struct ContainerMount: Sendable, Equatable {
    public var containerPath: String
    public var kind: ContainerMountKind
    public var readOnly = false
    /// With `readOnly`, whether host mounts below the source are read-only
    /// too (the CRI's recursive_read_only); if not, they keep their access.
    public var recursiveReadOnly = true
    public init(containerPath: String, kind: ContainerMountKind, readOnly: Bool = false, recursiveReadOnly: Bool = true) {
        self.containerPath = containerPath; self.kind = kind; self.readOnly = readOnly
        self.recursiveReadOnly = recursiveReadOnly
    }
}

public struct ContainerConfig: Sendable {
    public var id: String
    /// The image's unpacked root file system: served read-only; the
    /// container's writes go to a private layer unless `readOnlyRoot`.
    public var rootfs: String
    public var readOnlyRoot = false
    /// The private writable layer keeps its big and mapped files in unnamed
    /// files of the image root's own host file system (medium self, the
    /// default; the root's Gofer gets --scratch) instead of memfds (memory).
    public var overlayOnDisk = true
    public var mounts: [ContainerMount] = []
    public var process: ContainerProcess
    /// The container's stdout/stderr go to this file in the CRI log format
    /// (RFC 3339 nano timestamp, stream, P/F, line); nil discards them.
    public var logPath: String? = nil
    /// Host fds the container's process gets as stdin, stdout and stderr
    /// (a container run in the foreground); when set, `logPath` is unused.
    public var stdio: [Int32]? = nil
    /// Share the pod's pid namespace (CRI NamespaceMode POD) instead of a
    /// pid namespace of the container's own (CONTAINER).
    public var sharePodPIDNamespace = false
    /// Paths hidden (an empty read-only directory, or the null device for
    /// other files) and paths made read-only, in the container's view.
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    /// The container's stdin (a pipe's read end the runtime keeps writing
    /// to for attach); nil: /dev/null. Not closed by the sandbox.
    public var stdinFD: Int32? = nil
    /// A seccomp profile the pod's Sentry enforces on the syscalls of the
    /// container's processes (and of processes exec'd into it); nil: none.
    public var seccomp: PodSeccomp? = nil
    public init(id: String, rootfs: String, process: ContainerProcess) {
        self.id = id; self.rootfs = rootfs; self.process = process
    }
}

public enum ContainerState: Sendable, Equatable {
    case created
    case running
    case exited
    case unknown
}

public struct ContainerStatusInfo: Sendable, Equatable {
    public var state: ContainerState
    /// Nanoseconds since the epoch; 0 when not yet.
    public var createdAt: Int64 = 0
    public var startedAt: Int64 = 0
    public var finishedAt: Int64 = 0
    /// The exit code (128+N when killed by signal N), when exited.
    public var exitCode: Int32 = 0
    public var reason: String = ""
    public init(state: ContainerState) { self.state = state }
}

public struct ContainerStatsInfo: Sendable, Equatable {
    /// Cumulative CPU time of the container's processes, nanoseconds.
    public var cpuNanoseconds: UInt64 = 0
    /// Memory the container's processes use (resident), bytes.
    public var memoryWorkingSetBytes: UInt64 = 0
    /// Bytes in the container's private writable layer.
    public var writableLayerBytes: UInt64 = 0
    public init() {}
}

public struct PodError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case notFound, alreadyExists, failedPrecondition, invalidArgument, internalError, unimplemented }
    public var kind: Kind
    public var description: String
    public init(_ kind: Kind, _ description: String) { self.kind = kind; self.description = description }
}

/// A running pod Sentry, reached through its control socket. Thread-safe:
/// each call opens its own connection.
public final class PodSandbox: @unchecked Sendable {
    public let config: PodConfig
    /// The Sentry's host pid.
    public private(set) var sentryPid: pid_t = 0
    private var egressBroker: EgressBroker?

    init(config: PodConfig) { self.config = config }

    static let stateFile = "pod.state"
    static let controlName = "control"

    /// Starts the pod's Sentry (detached from the caller) and returns once it
    /// accepts requests.
    /// `whileStarting`, when given, runs with the path of the pod's network
    /// namespace as soon as the Sentry process exists, while it sets itself
    /// up (CNI: the namespace is made with the process, so the pod's network
    /// need not wait for the Sentry); when it throws, the Sentry is killed.
    /// `mark`, when given, is told each step as it ends (moat cri --debug's
    /// start-up profile of RunPodSandbox).
    public static func start(_ c: PodConfig, whileStarting: ((String) throws -> Void)? = nil,
                             mark: ((String) -> Void)? = nil) throws -> PodSandbox {
        guard c.stateDir.hasPrefix("/") else { throw PodError(.invalidArgument, "the state directory must be an absolute path") }
        if mkdir(c.stateDir, 0o700) != 0 && errno != EEXIST {
            throw PodError(.internalError, "cannot make \(c.stateDir): \(String(cString: strerror(errno)))")
        }
        let ctl = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if ctl < 0 { throw PodError(.internalError, "socket: \(String(cString: strerror(errno)))") }
        defer { close(ctl) }
        let ctlPath = c.stateDir + "/" + controlName
        unlink(ctlPath)
        if withUnixAddress(ctlPath, { bind(ctl, $0, $1) }) != 0 || listen(ctl, 64) != 0 {
            throw PodError(.internalError, "cannot listen on \(ctlPath): \(String(cString: strerror(errno)))")
        }
        var ready: [Int32] = [-1, -1]
        if pipe(&ready) != 0 || fcntl(ready[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(ready[1], F_SETFD, FD_CLOEXEC) != 0 { throw PodError(.internalError, "pipe: \(String(cString: strerror(errno)))") }
        var logFD: Int32 = -1
        if let p = c.logPath ?? getenv("MOAT_POD_LOG").map({ String(cString: $0) }) {
            logFD = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if logFD < 0 { close(ready[0]); close(ready[1]); throw PodError(.internalError, "cannot open \(p): \(String(cString: strerror(errno)))") }
        }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        var args = ["moat", "sentry", "--pod", "--detached", "--control-fd", "3", "--ready-fd", "4", "--hostname", c.hostname]
        switch c.network {
        case .loopback: args += ["--network", c.egress ? "sandbox" : "none"]
        case .host: args += ["--network", "host"]
        case .namespace(let p): args += ["--network", "host", "--netns", p]
        }
        if !c.fastPath { args += ["--platform", "ptrace"] }
        if c.debug { args.append("--debug") }
        for (k, v) in c.sysctls.sorted(by: { $0.key < $1.key }) { args += ["--sysctl", k + "=" + v] }
        for (f, v) in c.cgroupFiles { args += ["--cgroup", f + "=" + v] }
        var fds: [Int32] = [devnull, devnull, logFD >= 0 ? logFD : devnull, ctl, ready[1]]
        if logFD >= 0 { args += ["--log-fd", "5"]; fds.append(logFD) }
        let egress = c.egress && c.network == .loopback ? EgressBroker() : nil
        if let e = egress { args += ["--egress-fd", "\(fds.count)"]; fds.append(e.sentryEnd) }
        let CLONE_NEWPID: UInt = 0x20000000, CLONE_NEWNET: UInt = 0x40000000
        let flags = CLONE_NEWPID | (c.network == .loopback ? CLONE_NEWNET : 0)
        let pid = Sandbox.spawn(Sandbox.binary, args, fds, flags: flags, newSession: true)
        close(ready[1])
        if devnull >= 0 { close(devnull) }
        if logFD >= 0 { close(logFD) }
        if pid < 0 {
            close(ready[0])
            throw PodError(.internalError, "cannot start the pod's sentry: \(String(cString: strerror(-pid)))")
        }
        reapInBackground(pid)
        mark?("sentry spawned (re-exec)")
        // The Gofers' zygote execs while the Sentry starts and CNI runs:
        // started after the Sentry was ready, it was often still loading
        // when the first CreateContainer came (10 ms of its median).
        var zygote: pid_t? = nil
        if c.goferZygote, let z = GoferZygote.start(stateDir: c.stateDir, sentryPid: pid, debug: c.debug) {
            reapInBackground(z)
            zygote = z
            mark?("gofer zygote spawned")
        }
        egress?.start()
        if let whileStarting {
            do { try whileStarting("/proc/\(pid)/ns/net") } catch {
                kill(pid, SIGKILL); if let z = zygote { kill(z, SIGKILL) }
                close(ready[0])
                throw error
            }
            mark?("network (CNI) while the sentry starts")
        }
        let reply = readAll(ready[0])
        close(ready[0])
        mark?("sentry ready")
        guard reply.hasPrefix("OK") else {
            kill(pid, SIGKILL); if let z = zygote { kill(z, SIGKILL) }
            throw PodError(.internalError, "the pod's sentry failed: " + (reply.isEmpty ? "it exited during set-up" : reply.trimmingCharacters(in: "\n")))
        }
        let sb = PodSandbox(config: c)
        sb.sentryPid = pid
        sb.egressBroker = egress
        var state = "pid=\(pid)\nstart=\(processStartTime(pid) ?? 0)\nid=\(c.id)\n"
        if let z = zygote { state += "zygote=\(z)\nzygotestart=\(processStartTime(z) ?? 0)\n" }
        guard writeFileAtomically(c.stateDir + "/" + stateFile, state) else {
            kill(pid, SIGKILL); if let z = zygote { kill(z, SIGKILL) }
            throw PodError(.internalError, "cannot write the pod's state in \(c.stateDir)")
        }
        mark?("pod state file")
        return sb
    }

    /// Reaches a pod started earlier (possibly by another process) from its
    /// state directory; throws notFound when its Sentry is gone.
    public static func reconnect(stateDir: String) throws -> PodSandbox {
        guard let text = readFile(stateDir + "/" + stateFile) else {
            throw PodError(.notFound, "no pod state in \(stateDir)")
        }
        var pid: pid_t = 0, start: UInt64 = 0, id = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("pid=") { pid = pid_t(line.dropFirst(4)) ?? 0 }
            if line.hasPrefix("start=") { start = UInt64(line.dropFirst(6)) ?? 0 }
            if line.hasPrefix("id=") { id = String(line.dropFirst(3)) }
        }
        guard pid > 0, processStartTime(pid) == start else {
            throw PodError(.notFound, "the pod's sentry (pid \(pid)) is gone")
        }
        let sb = PodSandbox(config: PodConfig(id: id, stateDir: stateDir))
        sb.sentryPid = pid
        guard sb.alive else { throw PodError(.notFound, "the pod's sentry (pid \(pid)) has exited") }
        return sb
    }

    /// The pod's network namespace as a path CNI plugins can use.
    public var networkNamespacePath: String { "/proc/\(sentryPid)/ns/net" }

    /// `mark`: as for `start`.
    public func createContainer(_ c: ContainerConfig, mark: ((String) -> Void)? = nil) throws {
        var fields = ["op=create", "id=" + c.id, "ro=" + (c.readOnlyRoot ? "1" : "0"), "pidns=" + (c.sharePodPIDNamespace ? "pod" : "container")]
        fields += processFields(c.process)
        var passing: [(String, Int32)] = []
        defer { for (_, f) in passing { close(f) } }
        let upperOnDisk = !c.readOnlyRoot && c.overlayOnDisk
        if upperOnDisk { fields.append("upper=self") }
        let root = try startGofer(root: c.rootfs, readOnly: true, scratch: upperOnDisk)
        passing.append(("root", root))
        mark?("root gofer started")
        if let io = c.stdio, io.count == 3 {
            for (label, fd) in zip(["stdin", "stdout", "stderr"], io) {
                let d = fcntl(fd, F_DUPFD_CLOEXEC, 3)
                if d < 0 { throw PodError(.internalError, "cannot pass \(label): \(String(cString: strerror(errno)))") }
                passing.append((label, d))
            }
        } else if let fd = c.stdinFD {
            let d = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            if d >= 0 { passing.append(("stdin", d)) }
        } else {
            let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if null >= 0 { passing.append(("stdin", null)) }
        }
        if c.stdio == nil, let l = c.logPath {
            let fd = open(l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            if fd < 0 { throw PodError(.internalError, "cannot open the log file \(l): \(String(cString: strerror(errno)))") }
            passing.append(("log", fd))
        }
        for (i, m) in c.mounts.enumerated() {
            let ro = m.readOnly ? "1" : "0"
            switch m.kind {
            case .bind(let host):
                var st = stat()
                guard stat(host, &st) == 0 else { throw PodError(.invalidArgument, "mount source \(host) does not exist") }
                let isDir = st.st_mode & S_IFMT == S_IFDIR
                let dir = isDir ? host : String(host[..<(host.lastIndex(of: "/") ?? host.startIndex)])
                let file = isDir ? "" : String(host[host.index(after: host.lastIndex(of: "/") ?? host.startIndex)...])
                let g = try startGofer(root: dir.isEmpty ? "/" : dir, readOnly: m.readOnly, recursive: m.recursiveReadOnly)
                passing.append(("m\(i)", g))
                // A non-recursive read-only bind is writable for the Sentry:
                // its Gofer refuses writes per host mount (the top one is read-only).
                let sentryRO = m.recursiveReadOnly ? ro : "0"
                fields.append("m=" + [m.containerPath, "bind", sentryRO, "m\(i)", file].joined(separator: "\u{1}"))
            case .tmpfs:
                fields.append("m=" + [m.containerPath, "tmpfs", ro, "", ""].joined(separator: "\u{1}"))
            case .file(let contents, let mode):
                let hex = contents.map { String(format2: $0) }.joined()
                fields.append("m=" + [m.containerPath, "file", ro, hex, String(mode, radix: 8)].joined(separator: "\u{1}"))
            }
        }
        fields += c.maskedPaths.map { "mask=" + $0 } + c.readonlyPaths.map { "ropath=" + $0 }
        if let p = c.seccomp { fields += p.fields }
        fields.append("fds=" + passing.map { $0.0 }.joined(separator: ","))
        let conn = try connect()
        defer { close(conn) }
        guard send(conn, fields.joined(separator: "\0")) else { throw PodError(.internalError, "the pod's sentry does not answer") }
        for (label, fd) in passing {
            guard send(conn, label, passing: fd) else { throw PodError(.internalError, "the pod's sentry does not answer") }
        }
        mark?("other gofers, request sent")
        try check(receive(conn))
        mark?("sentry: gofer attached, container added")
    }

    public func startContainer(_ id: String) throws {
        try check(request(["op=start", "id=" + id]))
    }

    /// Sends a signal to every process of the container.
    public func signalContainer(_ id: String, _ signal: Int32) throws {
        try check(request(["op=signal", "id=" + id, "sig=\(signal)"]))
    }

    public func containerStatus(_ id: String) throws -> ContainerStatusInfo {
        let r = try request(["op=status", "id=" + id])
        try check(r)
        var kv: [Substring: Substring] = [:]
        for part in r.split(separator: " ") {
            if let eq = part.firstIndex(of: "=") { kv[part[..<eq]] = part[part.index(after: eq)...] }
        }
        let state: ContainerState
        switch kv["state"] ?? "" {
        case "created": state = .created
        case "running": state = .running
        case "exited": state = .exited
        default: state = .unknown
        }
        var info = ContainerStatusInfo(state: state)
        info.createdAt = Int64(kv["created"] ?? "") ?? 0
        info.startedAt = Int64(kv["started"] ?? "") ?? 0
        info.finishedAt = Int64(kv["finished"] ?? "") ?? 0
        if state == .exited {
            let ws = Int32(kv["exit"] ?? "") ?? 0
            info.exitCode = ws & 0x7f != 0 ? 128 + (ws & 0x7f) : (ws >> 8) & 0xff
            info.reason = info.exitCode == 0 ? "Completed" : "Error"
        }
        return info
    }

    public func removeContainer(_ id: String) throws {
        try check(request(["op=remove", "id=" + id]))
    }

    /// Runs a process in the container with the given host fds as its stdio
    /// and returns its wait status; killed after `timeoutSeconds` (0: none).
    public func exec(_ id: String, _ p: ContainerProcess, stdin: Int32, stdout: Int32, stderr: Int32,
                     timeoutSeconds: Int = 0, terminal: ExecTerminal? = nil) throws -> Int32 {
        let conn = try connect()
        defer { terminal?.detach(); close(conn) }
        // A terminal for the process: the Sentry makes a pseudo-terminal when
        // the stdio it is given is not one (CRI streams: pipes). A host
        // terminal given as stdin (moat exec -it from a terminal) is used as
        // it is: a second line discipline would echo and convert twice.
        let fields = processFields(p) + ["container=" + id] + (p.tty && isatty(stdin) == 0 ? ["tty=1"] : [])
        guard send(conn, fields.joined(separator: "\0")), send(conn, "0", passing: stdin),
              send(conn, "1", passing: stdout), send(conn, "2", passing: stderr) else {
            throw PodError(.internalError, "the pod's sentry does not answer")
        }
        let first = try receive(conn)
        if first.hasPrefix("err=") { try check(first) }
        terminal?.attach(conn)
        let deadline = timeoutSeconds > 0 ? monotonicNow() + Int64(timeoutSeconds) * 1_000_000_000 : Int64.max
        var killed = false
        while true {
            var pfd = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 50) > 0 {
                let m = try receive(conn)
                if m.hasPrefix("exit="), let st = Int32(m.dropFirst(5)) { return st }
            }
            if !killed && monotonicNow() >= deadline {
                _ = send(conn, "sig=9")
                killed = true
            }
        }
    }

    /// Reopens the container's log file (after the caller rotated it).
    public func reopenLog(_ id: String) throws {
        throw PodError(.unimplemented, "reopening a log needs its path: use reopenLog(_:path:)")
    }

    /// Has the container's output copied to `stdout` and `stderr` (write
    /// ends of pipes) as it is written, until it exits, which closes them.
    public func attach(_ id: String, stdout: Int32, stderr: Int32) throws {
        let conn = try connect()
        defer { close(conn) }
        guard send(conn, ["op=attach", "id=" + id].joined(separator: "\0")), send(conn, "out", passing: stdout),
              send(conn, "err", passing: stderr) else {
            throw PodError(.internalError, "the pod's sentry does not answer")
        }
        try check(receive(conn))
    }

    /// Sends the container's log file, opened anew at `path`.
    public func reopenLog(_ id: String, path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        if fd < 0 { throw PodError(.internalError, "cannot open the log file \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let conn = try connect()
        defer { close(conn) }
        guard send(conn, ["op=reopenlog", "id=" + id].joined(separator: "\0")), send(conn, "log", passing: fd) else {
            throw PodError(.internalError, "the pod's sentry does not answer")
        }
        try check(receive(conn))
    }

    public func stats(_ id: String) throws -> ContainerStatsInfo {
        let r = try request(["op=stats", "id=" + id])
        try check(r)
        var s = ContainerStatsInfo()
        var pids: [pid_t]? = nil
        for part in r.split(separator: " ") {
            guard let eq = part.firstIndex(of: "=") else { continue }
            let value = part[part.index(after: eq)...]
            let v = UInt64(value) ?? 0
            switch part[..<eq] {
            case "cpu": s.cpuNanoseconds = v
            case "upper": s.writableLayerBytes = v
            case "pids": pids = value.split(separator: ",").compactMap { pid_t($0) }
            default: break
            }
        }
        // The container's memory: resident pages of the host processes that
        // hold its address spaces, counted only if they really are the
        // pod's (in the Sentry's process tree).
        if let pids {
            // The Sentry names them in its own pid namespace.
            var hostPid: [pid_t: pid_t] = [:]
            for p in PodSandbox.treePids(sentryPid) where p != sentryPid {
                if let inner = PodSandbox.innermostPid(p) { hostPid[inner] = p }
            }
            s.memoryWorkingSetBytes = pids.compactMap { hostPid[$0] }.reduce(0) { $0 + PodSandbox.rss($1) }
        } else {
            s.memoryWorkingSetBytes = PodSandbox.rssOfTree(sentryPid)
        }
        return s
    }

    /// Stops every container and the Sentry; idempotent.
    public func stop(timeoutSeconds: Int = 10) throws {
        guard alive else { return }
        if let conn = try? connect() {
            _ = send(conn, ["op=stop", "grace=\(max(0, timeoutSeconds))"].joined(separator: "\0"))
            var pfd = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, Int32(min(Int(Int32.max / 2), (timeoutSeconds + 10) * 1000)))
            close(conn)
        }
        // The Sentry exits once every process is gone; make sure of it.
        for _ in 0..<250 where alive { usleep(20_000) }
        if alive { kill(sentryPid, SIGKILL) }
        for _ in 0..<250 where alive { usleep(20_000) }
    }

    /// After `stop`: removes the state directory and anything else the pod
    /// left on the host; idempotent.
    public func destroy() throws {
        if alive { kill(sentryPid, SIGKILL); for _ in 0..<250 where alive { usleep(20_000) } }
        // The zygote exits with the Sentry; this is in case it could not tell.
        if let text = readFile(config.stateDir + "/" + PodSandbox.stateFile) {
            var z: pid_t = 0, zs: UInt64 = 0
            for line in text.split(separator: "\n") {
                if line.hasPrefix("zygote=") { z = pid_t(line.dropFirst(7)) ?? 0 }
                if line.hasPrefix("zygotestart=") { zs = UInt64(line.dropFirst(12)) ?? 0 }
            }
            if z > 0, zs > 0, PodSandbox.processStartTime(z) == zs { kill(z, SIGKILL) }
        }
        removeTree(config.stateDir)
    }

    // MARK: plumbing

    var alive: Bool {
        guard sentryPid > 0 else { return false }
        guard let st = PodSandbox.processStartTime(sentryPid) else { return false }
        if let want = PodSandbox.recordedStart(config.stateDir), want != st { return false }
        // A zombie is not alive.
        if let s = readFile("/proc/\(sentryPid)/stat"), let close = s.lastIndex(of: ")") {
            let rest = s[s.index(after: close)...].split(separator: " ")
            if rest.first == "Z" || rest.first == "X" { return false }
        }
        return true
    }

    static func recordedStart(_ dir: String) -> UInt64? {
        guard let text = readFile(dir + "/" + stateFile) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("start=") { return UInt64(line.dropFirst(6)) }
        return nil
    }

    func processFields(_ p: ContainerProcess) -> [String] {
        var f = p.argv.map { "a=" + $0 } + p.env.map { "e=" + $0 }
        f += ["cwd=" + p.cwd, "uid=\(p.uid)", "gid=\(p.gid)"] + p.additionalGids.map { "g=\($0)" }
        let caps = p.capabilities ?? PodSandbox.dockerDefaultCaps
        let eff = p.uid == 0 ? caps : 0
        f.append("caps=" + [caps, eff, eff, 0, 0].map { String($0, radix: 16) }.joined(separator: ","))
        if p.noNewPrivs { f.append("nnp=1") }
        return f
    }

    /// Docker's default capability set (CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
    /// KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT,
    /// MKNOD, AUDIT_WRITE, SETFCAP), as containerd gives a container.
    public static let dockerDefaultCaps: UInt64 = 0xa80425fb

    /// `scratch`: the Gofer also answers `scratch` (unnamed files for the
    /// container's writable layer, on the root's host file system).
    func startGofer(root: String, readOnly: Bool, recursive: Bool = true, scratch: Bool = false) throws -> Int32 {
        var pair: [Int32] = [-1, -1]
        if socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) != 0 {
            throw PodError(.internalError, "socketpair: \(String(cString: strerror(errno)))")
        }
        var args = ["moat", "gofer", "--root", root, "--fd", "3", "--detached"]
        if readOnly { args.append("--read-only") }
        if readOnly && !recursive { args.append("--non-recursive") }
        if scratch { args.append("--scratch") }
        // Its start-up profile (moat[startup] lines) goes to our stderr.
        if config.debug { args.append("--debug") }
        // Forked by the pod's zygote when it has one (not our child then),
        // else re-executed.
        if GoferZygote.fork(stateDir: config.stateDir, args, socketFD: pair[1]) != nil {
            close(pair[1])
            return pair[0]
        }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let pid = Sandbox.spawn(Sandbox.binary, args, [devnull, devnull, 2, pair[1]], flags: 0, newSession: true)
        close(pair[1])
        if devnull >= 0 { close(devnull) }
        if pid < 0 { close(pair[0]); throw PodError(.internalError, "cannot start a gofer for \(root): \(String(cString: strerror(-pid)))") }
        PodSandbox.reapInBackground(pid)
        return pair[0]
    }

    func connect() throws -> Int32 {
        let s = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { throw PodError(.internalError, "socket: \(String(cString: strerror(errno)))") }
        let path = config.stateDir + "/" + PodSandbox.controlName
        if withUnixAddress(path, { Glibc.connect(s, $0, $1) }) != 0 {
            let e = errno
            close(s)
            throw PodError(.failedPrecondition, "the pod's sentry is not running (\(String(cString: strerror(e))))")
        }
        return s
    }

    func request(_ fields: [String]) throws -> String {
        let conn = try connect()
        defer { close(conn) }
        guard send(conn, fields.joined(separator: "\0")) else { throw PodError(.internalError, "the pod's sentry does not answer") }
        return try receive(conn)
    }

    func check(_ reply: String) throws {
        guard reply.hasPrefix("err=") else { return }
        let body = reply.dropFirst(4)
        let sp = body.firstIndex(of: " ") ?? body.endIndex
        let code = Int32(body[..<sp]) ?? 5
        let msg = sp < body.endIndex ? String(body[body.index(after: sp)...]) : "failed"
        switch code {
        case ENOENT: throw PodError(.notFound, msg)
        case EEXIST: throw PodError(.alreadyExists, msg)
        case EBUSY: throw PodError(.failedPrecondition, msg)
        case EINVAL: throw PodError(.invalidArgument, msg)
        case 126, 127: throw PodError(.failedPrecondition, msg)
        default: throw PodError(.internalError, msg)
        }
    }

    func send(_ fd: Int32, _ s: String, passing: Int32 = -1) -> Bool {
        let b = Array(s.utf8)
        return b.withUnsafeBytes { MessageSocket.send(fd, $0.baseAddress!, $0.count, fd: passing) } == 0
    }

    func receive(_ fd: Int32) throws -> String {
        var buf = [UInt8](repeating: 0, count: 65536)
        var fds = MessageSocket.ReceivedFDs()
        let r = buf.withUnsafeMutableBytes { MessageSocket.receive(fd, into: $0.baseAddress!, capacity: $0.count, acceptFDs: false, fds: &fds) }
        guard case .message(let n) = r else { throw PodError(.failedPrecondition, "the pod's sentry closed the control channel") }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }

    static func reapInBackground(_ pid: pid_t) {
        var th = pthread_t()
        let box = UnsafeMutablePointer<pid_t>.allocate(capacity: 1)
        box.pointee = pid
        pthread_create(&th, nil, { p in
            let b = p!.assumingMemoryBound(to: pid_t.self)
            var st: Int32 = 0
            while waitpid(b.pointee, &st, 0) < 0 && errno == EINTR {}
            b.deallocate()
            return nil
        }, box)
        pthread_detach(th)
    }

    /// The process's start time (field 22 of /proc/PID/stat), which tells a
    /// reused pid from the one recorded.
    static func processStartTime(_ pid: pid_t) -> UInt64? {
        guard let s = readFile("/proc/\(pid)/stat"), let close = s.lastIndex(of: ")") else { return nil }
        let rest = s[s.index(after: close)...].split(separator: " ")
        guard rest.count > 19 else { return nil }
        return UInt64(rest[19])
    }

    /// Resident memory of a process and its descendants (the Sentry and its
    /// stubs), bytes.
    static func rssOfTree(_ root: pid_t) -> UInt64 {
        treePids(root).reduce(0) { $0 + rss($1) }
    }

    /// `root` and its descendants (children are listed per thread: the
    /// Sentry forks from several).
    static func treePids(_ root: pid_t) -> Set<pid_t> {
        var queue = [root]
        var seen = Set<pid_t>()
        while let p = queue.popLast(), seen.insert(p).inserted {
            var threads: [String] = []
            if let d = opendir("/proc/\(p)/task") {
                while let e = readdir(d) {
                    let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    if name.first?.isNumber == true { threads.append(name) }
                }
                closedir(d)
            }
            for t in threads {
                if let kids = readFile("/proc/\(p)/task/\(t)/children") {
                    queue += kids.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: "\n")) }
                }
            }
        }
        return seen
    }

    /// A host process's pid in its innermost pid namespace (NSpid's last).
    static func innermostPid(_ pid: pid_t) -> pid_t? {
        guard let status = readFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { pid_t($0) }
        }
        return nil
    }

    /// Resident bytes of a host process (0 if it is gone).
    static func rss(_ pid: pid_t) -> UInt64 {
        guard let statm = readFile("/proc/\(pid)/statm") else { return 0 }
        let f = statm.split(separator: " ")
        guard f.count > 1, let pages = UInt64(f[1]) else { return 0 }
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }
}

private func monotonicNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    let s = readAll(fd)
    return s
}

func readAll(_ fd: Int32) -> String {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// Not fsync'ed: the pod's state file says how to reach its Sentry, which
/// a host crash ends (and /run, where it lives, is emptied at boot); a crash
/// of the caller leaves it in the page cache. The rename makes it whole or
/// absent. (The fsync cost each pod start up to 18 ms on a busy disk.)
func writeFileAtomically(_ path: String, _ text: String) -> Bool {
    let tmp = path + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    if fd < 0 { return false }
    let b = Array(text.utf8)
    let n = b.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    return n == b.count && rename(tmp, path) == 0
}

/// Removes a directory tree without following symlinks.
func removeTree(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if st.st_mode & S_IFMT == S_IFDIR {
        if let d = opendir(path) {
            while let e = readdir(d) {
                let name = withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
                if name == "." || name == ".." { continue }
                removeTree(path + "/" + name)
            }
            closedir(d)
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// Calls `body` with a sockaddr_un for `path`; a path too long for one is
/// reached through /proc/self/fd of its directory.
func withUnixAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    var target = path
    var dirfd: Int32 = -1
    if path.utf8.count > 100, let slash = path.lastIndex(of: "/") {
        dirfd = open(String(path[..<slash]), 0o10000000 /* O_PATH */ | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 { target = "/proc/self/fd/\(dirfd)/" + path[path.index(after: slash)...] }
    }
    defer { if dirfd >= 0 { close(dirfd) } }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(target.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { errno = ENAMETOOLONG; return -1 }
    withUnsafeMutableBytes(of: &addr.sun_path) { p in
        for (i, b) in bytes.enumerated() { p[i] = b }
        p[bytes.count] = 0
    }
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

extension String {
    init(format2 b: UInt8) {
        let d = Array("0123456789abcdef".utf8)
        self = String(decoding: [d[Int(b >> 4)], d[Int(b & 15)]], as: UTF8.self)
    }
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
extension Substring {
    func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}


/// A seccomp profile as OCI describes one (SCMP_ACT_* actions, SCMP_CMP_*
/// argument conditions), carried to the pod Sentry in the create request:
/// `scmp=ACTION:ERRNO` then one `scmpr=ACTION:ERRNO:NAME,NAME:COND;COND`
/// per rule, COND being INDEX/OP/VALUE/VALUE2.
public struct PodSeccomp: Sendable, Equatable {
    public struct Arg: Sendable, Equatable {
        public var index: Int, op: String, value: UInt64, valueTwo: UInt64
        public init(index: Int, op: String, value: UInt64, valueTwo: UInt64) {
            self.index = index; self.op = op; self.value = value; self.valueTwo = valueTwo
        }
    }
    public struct Rule: Sendable, Equatable {
        public var names: [String], action: String, errno: Int32, args: [Arg]
        public init(names: [String], action: String, errno: Int32, args: [Arg] = []) {
            self.names = names; self.action = action; self.errno = errno; self.args = args
        }
    }
    public var defaultAction: String
    public var defaultErrno: Int32
    public var rules: [Rule]
    public init(defaultAction: String, defaultErrno: Int32 = 1, rules: [Rule]) {
        self.defaultAction = defaultAction; self.defaultErrno = defaultErrno; self.rules = rules
    }

    var fields: [String] {
        ["scmp=\(defaultAction):\(defaultErrno)"] + rules.map { r in
            let conds = r.args.map { "\($0.index)/\($0.op)/\($0.value)/\($0.valueTwo)" }.joined(separator: ";")
            return "scmpr=\(r.action):\(r.errno):\(r.names.joined(separator: ",")):\(conds)"
        }
    }
}
