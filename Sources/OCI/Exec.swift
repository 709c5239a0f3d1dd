// `exec`: a new process in a running container's sandbox, through the
// Sentry's control socket (Sentry/Kernel/Control.swift). `moat exec` stays
// until the process exits and exits with its status, passing signals on.
// With --detach it starts such a waiter in a new session and returns once
// the process runs; the waiter's pid goes to --pid-file, so an engine that
// waits for that pid (containerd's shim) sees the process's exit status.

import COCI
import Glibc

public struct ExecOptions {
    public var id: String
    public var processFile: String?
    public var args: [String] = []
    public var detach = false
    public var pidFile: String?
    public var tty = false
    public var consoleSocket: String?
    public var cwd: String?
    public var env: [String] = []
    public var user: String?
    public var additionalGids: [UInt32] = []
    /// Internal: this process is the detached waiter; report on this fd.
    public var waiterFD: Int32 = -1
    public init(id: String) { self.id = id }
}

extension Runtime {
    public func exec(_ o: ExecOptions) throws -> Int32 {
        if o.waiterFD >= 0 { moatPrctl(1 /* PR_SET_PDEATHSIG */, 0) }
        let s: ContainerState
        let spec: Spec?
        do {
            let dir = try ContainerDir(root: rootDir, id: o.id)
            s = try dir.loadState()
            switch dir.status(s) {
            case .running, .created: break
            case .paused: throw RuntimeError("cannot exec in a paused container")
            default: throw RuntimeError("cannot exec in a stopped container: container not running")
            }
            spec = dir.loadSpec()
        } // the lock is released here: an exec may last long
        var p = try resolveProcess(o, base: spec?.process)
        if o.tty { p.terminal = true }
        if o.detach { return try spawnWaiter(o, p) }

        let conn = try connectUnix(rootDir + "/" + o.id + "/control", type: Int32(SOCK_SEQPACKET.rawValue))
        defer { close(conn) }
        var stdio: [Int32] = [0, 1, 2]
        var ptyFDs: [Int32] = []
        defer { for f in ptyFDs { close(f) } }
        if p.terminal {
            guard let sock = o.consoleSocket else { throw RuntimeError("a terminal was requested but no --console-socket was given") }
            let (m, sl) = try openPTY(rows: p.consoleSize.map { UInt16(clamping: $0.height) }, cols: p.consoleSize.map { UInt16(clamping: $0.width) })
            ptyFDs = [m, sl]
            try sendConsole(m, to: sock)
            stdio = [sl, sl, sl]
        }
        var fields = p.args.map { "a=" + $0 } + p.env.map { "e=" + $0 }
        fields += ["cwd=" + p.cwd, "uid=\(p.user.uid)", "gid=\(p.user.gid)"] + p.user.additionalGids.map { "g=\($0)" }
        if let u = p.user.umask { fields.append("umask=" + String(u, radix: 8)) }
        fields += SentryPlan.execCredentialFields(p)
        guard sendPacket(conn, fields.joined(separator: "\0")),
              sendPacket(conn, "0", passing: stdio[0]), sendPacket(conn, "1", passing: stdio[1]),
              sendPacket(conn, "2", passing: stdio[2]) else {
            throw RuntimeError("cannot send the exec request: \(String(cString: strerror(errno)))")
        }
        for f in ptyFDs where f != ptyFDs.first { close(f) }
        ptyFDs = Array(ptyFDs.prefix(1))
        guard let reply = receivePacket(conn) else { throw RuntimeError("the sandbox closed the control channel: container not running") }
        if reply.hasPrefix("err=") {
            let body = reply.dropFirst(4)
            let sp = body.firstIndex(of: " ") ?? body.endIndex
            let code = Int32(body[..<sp]) ?? 1
            let msg = sp < body.endIndex ? String(body[body.index(after: sp)...]) : "exec failed"
            if o.waiterFD >= 0 { _ = writeAll(o.waiterFD, Array(("err=" + msg).utf8)); close(o.waiterFD) }
            throw RuntimeError(msg, code: code == 127 || code == 126 ? 1 : 1)
        }
        if o.waiterFD >= 0 { _ = writeAll(o.waiterFD, Array("ok".utf8)); close(o.waiterFD) }
        return waitForExit(conn)
    }

    /// Passes signals to the process and returns its exit status.
    func waitForExit(_ conn: Int32) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT, SIGTSTP, SIGPWR]
        for sg in forwarded { sigaddset(&set, sg) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        var zero = timespec()
        while true {
            var pfd = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) > 0 {
                guard let m = receivePacket(conn) else { return 137 }
                if m.hasPrefix("exit="), let st = Int32(m.dropFirst(5)) {
                    if st & 0x7f != 0 { return 128 + (st & 0x7f) }
                    return (st >> 8) & 0xff
                }
            }
            while true {
                let sig = sigtimedwait(&set, nil, &zero)
                if sig <= 0 { break }
                _ = sendPacket(conn, "sig=\(sig)")
            }
        }
    }

    /// The process to run: --process FILE, or the container's process with
    /// the command line's args and overrides.
    func resolveProcess(_ o: ExecOptions, base: Spec.Process?) throws -> Spec.Process {
        if let file = o.processFile {
            guard let b = readFile(file) else { throw RuntimeError("cannot read \(file): \(String(cString: strerror(errno)))") }
            let j: JSON
            do { j = try JSON.parse(bytes: b) } catch { throw RuntimeError("\(file): invalid JSON: \(error.message)") }
            var p: Spec.Process
            do { p = try Spec.Process(Node(j, document: "process.json")) } catch { throw RuntimeError("\(error)") }
            if p.args.isEmpty { throw RuntimeError("process.json: args: must not be empty") }
            if !p.cwd.hasPrefix("/") { throw RuntimeError("process.json: cwd: must be an absolute path") }
            return p
        }
        var p: Spec.Process
        if let b = base { p = b } else { p = try Spec.Process(Node(.object([("cwd", .string("/"))]))) }
        guard !o.args.isEmpty else { throw RuntimeError("exec needs a command: moat exec ID CMD [ARGS...] or --process FILE") }
        p.args = o.args
        p.terminal = o.tty
        if let c = o.cwd { p.cwd = c }
        for e in o.env {
            guard let eq = e.firstIndex(of: "=") else { throw RuntimeError("--env \(e): expected KEY=VALUE") }
            let key = e[...eq]
            p.env.removeAll { $0.hasPrefix(key) }
            p.env.append(e)
        }
        if let u = o.user {
            let parts = u.split(separator: ":")
            guard let uid = UInt32(parts.first ?? ""), parts.count <= 2 else { throw RuntimeError("--user must be UID[:GID]") }
            p.user.uid = uid
            if parts.count == 2 {
                guard let gid = UInt32(parts[1]) else { throw RuntimeError("--user must be UID[:GID]") }
                p.user.gid = gid
            }
        }
        p.user.additionalGids += o.additionalGids
        return p
    }

    func processJSON(_ p: Spec.Process) -> JSON {
        var user: [(String, JSON)] = [("uid", .int(p.user.uid)), ("gid", .int(p.user.gid)),
                                      ("additionalGids", .array(p.user.additionalGids.map { .int($0) }))]
        if let u = p.user.umask { user.append(("umask", .int(u))) }
        var kv: [(String, JSON)] = [("terminal", .bool(p.terminal)), ("user", .object(user)),
                                    ("args", .array(p.args.map { .string($0) })), ("env", .array(p.env.map { .string($0) })),
                                    ("cwd", .string(p.cwd))]
        if let c = p.consoleSize { kv.append(("consoleSize", .object([("height", .number(String(c.height))), ("width", .number(String(c.width)))]))) }
        return .object(kv)
    }

    func spawnWaiter(_ o: ExecOptions, _ p: Spec.Process) throws -> Int32 {
        let mfd = coci_memfd("moat-exec-process")
        if mfd < 0 { throw RuntimeError("memfd_create: \(String(cString: strerror(errno)))") }
        defer { close(mfd) }
        _ = writeAll(mfd, Array(processJSON(p).serialized().utf8))
        var pipeFDs: (Int32, Int32) = (-1, -1)
        _ = withUnsafeMutableBytes(of: &pipeFDs) { coci_pipe_cloexec($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        var args = ["moat", "--root", rootDir]
        if let l = logPath { args += ["--log", l, "--log-format", logJSON ? "json" : "text"] }
        args += ["exec", "--waiter-fd", "3", "--process", "/proc/self/fd/4"]
        if let c = o.consoleSocket { args += ["--console-socket", c] }
        args.append(o.id)
        let pid: pid_t
        do { pid = try spawnSelf(args, fds: [0, 1, 2, pipeFDs.1, mfd], newSession: true) } catch {
            close(pipeFDs.0); close(pipeFDs.1); throw error
        }
        close(pipeFDs.1)
        var reply: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(pipeFDs.0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            reply += buf[0..<n]
        }
        close(pipeFDs.0)
        let text = String(decoding: reply, as: UTF8.self)
        guard text == "ok" else {
            var st: Int32 = 0
            _ = waitpid(pid, &st, 0)
            throw RuntimeError(text.hasPrefix("err=") ? String(text.dropFirst(4)) : "exec failed")
        }
        if let f = o.pidFile { try writePidFile(f, pid) }
        return 0
    }
}
