// The lifecycle commands (runtime.md "Operations"), worded and exit-coded
// like runc's so engines recognise them: errors exit 1; containerd's shim
// looks for "container not running", "does not exist" and "no such process".

import Glibc
import Sentry

public struct Runtime {
    public var rootDir: String
    public let log: RuntimeLog
    public var logPath: String?
    public var logJSON: Bool
    public var debug: Bool

    public init(root: String, logPath: String?, logJSON: Bool, debug: Bool) {
        rootDir = root
        self.logPath = logPath
        self.logJSON = logJSON
        self.debug = debug
        log = RuntimeLog(path: logPath, json: logJSON, debug: debug)
    }

    func stateJSON(_ s: ContainerState, _ status: Status) -> JSON {
        var kv: [(String, JSON)] = [("ociVersion", .string(s.ociVersion)), ("id", .string(s.id)), ("status", .string(status.rawValue))]
        kv.append(("pid", .int(status == .stopped ? 0 : s.pid)))
        kv.append(("bundle", .string(s.bundle)))
        kv.append(("rootfs", .string(s.rootfs)))
        kv.append(("created", .string(s.created)))
        if !s.owner.isEmpty { kv.append(("owner", .string(s.owner))) }
        kv.append(("annotations", .object(s.annotations.map { ($0.0, .string($0.1)) })))
        return .object(kv)
    }

    // MARK: start

    public func start(_ id: String) throws {
        let dir = try ContainerDir(root: rootDir, id: id)
        let s = try dir.loadState()
        switch dir.status(s) {
        case .created: break
        case .stopped: throw RuntimeError("cannot start a container that has stopped")
        case .running, .paused: throw RuntimeError("cannot start an already running container")
        case .creating: throw RuntimeError("cannot start a container that is still being created")
        }
        let spec = dir.loadSpec()
        let hooks = spec?.hooks ?? Spec.Hooks()
        do {
            try Hooks.run("startContainer", hooks.startContainer, state: stateJSON(s, .created))
        } catch {
            killSandbox(s, SIGKILL)
            throw error
        }
        let f = open(dir.file("exec.fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        if f < 0 { throw RuntimeError("cannot start the container: its sandbox is gone (\(String(cString: strerror(errno))))") }
        var one: UInt8 = 1
        let n = write(f, &one, 1)
        close(f)
        if n != 1 { throw RuntimeError("cannot start the container: \(String(cString: strerror(errno)))") }
        unlink(dir.file("exec.fifo"))
        Hooks.runIgnoringFailures("poststart", hooks.poststart, state: stateJSON(s, .running), log: log)
    }

    // MARK: state

    public func state(_ id: String) throws -> String {
        let dir = try ContainerDir(root: rootDir, id: id)
        let s = try dir.loadState()
        return stateJSON(s, dir.status(s)).serialized(pretty: true)
    }

    // MARK: kill

    public func kill(_ id: String, signal: String, all: Bool) throws {
        guard let sig = Signals.parse(signal) else { throw RuntimeError("invalid signal \"\(signal)\"") }
        let dir = try ContainerDir(root: rootDir, id: id)
        let s = try dir.loadState()
        let status = dir.status(s)
        if status == .stopped || status == .creating { throw RuntimeError("container not running") }
        var target = sig
        // Before `start` the Sentry holds catchable signals for an init that
        // does not run yet; one that would end a waiting process ends it.
        if status == .created && Signals.terminates(sig) { target = SIGKILL }
        if status == .paused && sig == SIGKILL { try? Cgroups.freeze(s.cgroups, false) }
        // --all with a catchable signal: every process in the sandbox, through
        // the Sentry's control socket (the Sentry forwards to init alone).
        if all && target != SIGKILL && target != SIGSTOP && status == .running,
           let conn = try? connectUnix(dir.file("control"), type: Int32(SOCK_SEQPACKET.rawValue)) {
            defer { close(conn) }
            if sendPacket(conn, "killall=\(target)"), receivePacket(conn)?.hasPrefix("ok=") == true { return }
        }
        if Glibc.kill(s.pid, target) != 0 {
            if errno == ESRCH { throw RuntimeError("container not running") }
            throw RuntimeError("kill: \(String(cString: strerror(errno)))")
        }
        if all && target == SIGKILL { killSandbox(s, SIGKILL) }
    }

    /// Signals the Sentry and, for SIGKILL, the Gofer (if still ours).
    func killSandbox(_ s: ContainerState, _ sig: Int32) {
        if processAlive(s.pid, start: s.pidStart) { Glibc.kill(s.pid, sig) }
        if sig == SIGKILL && s.goferPid > 0 && processAlive(s.goferPid, start: s.goferStart) { Glibc.kill(s.goferPid, SIGKILL) }
    }

    // MARK: delete

    public func delete(_ id: String, force: Bool) throws {
        let dir: ContainerDir
        do { dir = try ContainerDir(root: rootDir, id: id) } catch {
            if force { return }
            throw error
        }
        let s = try dir.loadState()
        let status = dir.status(s)
        switch status {
        case .stopped, .creating, .created: break
        case .running, .paused:
            if !force { throw RuntimeError("cannot delete container \(id) that is not stopped: \(status.rawValue)") }
        }
        if status == .paused { try? Cgroups.freeze(s.cgroups, false) }
        killSandbox(s, SIGKILL)
        // Wait (up to 2.5 s) for the sandbox's processes to be gone: woken by
        // their exit (a pidfd) rather than by a 5 ms poll that every delete
        // paid once at least, the Gofer still dying when the Sentry was gone.
        waitGone([(s.pid, s.pidStart), (s.goferPid, s.goferStart)], timeout: 2.5)
        Cgroups.remove(s.cgroups)
        let spec = dir.loadSpec()
        dir.remove()
        Hooks.runIgnoringFailures("poststop", spec?.hooks?.poststop ?? [], state: stateJSON(s, .stopped), log: log)
    }

    // MARK: run

    /// create + start; without `detach`, waits and returns the container's
    /// exit status (then deletes it), forwarding signals to the sandbox.
    public func run(_ o: CreateOptions, detach: Bool) throws -> Int32 {
        let pid = try createSandbox(o)
        do { try start(o.id) } catch {
            try? delete(o.id, force: true)
            throw error
        }
        if detach { return 0 }
        runForwardTarget = pid
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH] {
            signal(s) { sig in if runForwardTarget > 0 { Glibc.kill(runForwardTarget, sig) } }
        }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        runForwardTarget = 0
        try? delete(o.id, force: true)
        if st & 0x7f != 0 { return 128 + (st & 0x7f) }
        return (st >> 8) & 0xff
    }

    // MARK: list, ps

    public func list(format: String, quiet: Bool) throws -> String {
        var rows: [(ContainerState, Status)] = []
        if let d = opendir(rootDir) {
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if !name.hasPrefix(".") { names.append(name) }
            }
            closedir(d)
            for n in names.sorted() {
                guard let dir = try? ContainerDir(root: rootDir, id: n), let s = try? dir.loadState() else { continue }
                rows.append((s, dir.status(s)))
            }
        }
        if quiet { return rows.map { $0.0.id + "\n" }.joined() }
        if format == "json" {
            return JSON.array(rows.map { (s, st) in
                .object([("ociVersion", .string(s.ociVersion)), ("id", .string(s.id)), ("pid", .int(st == .stopped ? 0 : s.pid)),
                         ("status", .string(st.rawValue)), ("bundle", .string(s.bundle)), ("rootfs", .string(s.rootfs)),
                         ("created", .string(s.created)), ("owner", .string(s.owner))])
            }).serialized() + "\n"
        }
        var out = pad(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"])
        for (s, st) in rows { out += pad([s.id, String(st == .stopped ? 0 : s.pid), st.rawValue, s.bundle, s.created, s.owner]) }
        return out
    }

    func pad(_ cols: [String]) -> String {
        let widths = [12, 8, 10, 40, 32, 8]
        var line = ""
        for (i, c) in cols.enumerated() {
            line += i == cols.count - 1 ? c : c + String(repeating: " ", count: max(1, widths[i] - c.count + 1))
        }
        return line + "\n"
    }

    public func ps(_ id: String, format: String) throws -> String {
        let dir = try ContainerDir(root: rootDir, id: id)
        let s = try dir.loadState()
        if dir.status(s) == .stopped { throw RuntimeError("container not running") }
        var pids = Cgroups.pids(s.cgroups)
        if pids.isEmpty { pids = [s.pid, s.goferPid].filter { $0 > 0 } }
        if format == "json" { return JSON.array(pids.map { .int($0) }).serialized() + "\n" }
        var out = "PID   CMD\n"
        for p in pids {
            let cmd = readFile("/proc/\(p)/cmdline").map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) } ?? "?"
            out += String(p).padding(6) + cmd.trimmingCharacters(in: " ") + "\n"
        }
        return out
    }

    // MARK: pause, resume, update, events

    public func pause(_ id: String, _ frozen: Bool) throws {
        let dir = try ContainerDir(root: rootDir, id: id)
        var s = try dir.loadState()
        let st = dir.status(s)
        if frozen && st != .running { throw RuntimeError(st == .paused ? "container already paused" : "container not running") }
        if !frozen && st != .paused { throw RuntimeError("container not paused") }
        try Cgroups.freeze(s.cgroups, frozen)
        s.paused = frozen
        try dir.saveState(s)
    }

    public func update(_ id: String, resourcesJSON: String?, flags: [String: String]) throws {
        let dir = try ContainerDir(root: rootDir, id: id)
        let s = try dir.loadState()
        if dir.status(s) == .stopped { throw RuntimeError("container not running") }
        var r = Spec.Resources()
        if let text = resourcesJSON {
            let j: JSON
            do { j = try JSON.parse(text) } catch { throw RuntimeError("resources: invalid JSON: \(error.message)") }
            do { r = try Spec.Resources(Node(j, document: "resources")) } catch { throw RuntimeError("\(error)") }
        }
        func num<T: FixedWidthInteger>(_ k: String) throws -> T? {
            guard let v = flags[k] else { return nil }
            guard let n = T(v) else { throw RuntimeError("--\(k): invalid number \"\(v)\"") }
            return n
        }
        if let m: Int64 = try num("memory") { r.memory = r.memory ?? Spec.Memory(); r.memory!.limit = m }
        if let m: Int64 = try num("memory-swap") { r.memory = r.memory ?? Spec.Memory(); r.memory!.swap = m }
        if let v: UInt64 = try num("cpu-shares") { r.cpu = r.cpu ?? Spec.CPU(); r.cpu!.shares = v }
        if let v: Int64 = try num("cpu-quota") { r.cpu = r.cpu ?? Spec.CPU(); r.cpu!.quota = v }
        if let v: UInt64 = try num("cpu-period") { r.cpu = r.cpu ?? Spec.CPU(); r.cpu!.period = v }
        if let v: Int64 = try num("pids-limit") { r.pids = v }
        try Cgroups.apply(s.cgroups, r)
    }

    public func events(_ id: String, stats: Bool, interval: Double, emit: (String) -> Void) throws {
        while true {
            let line: String
            do {
                let dir = try ContainerDir(root: rootDir, id: id)
                let s = try dir.loadState()
                if dir.status(s) == .stopped { if stats { throw RuntimeError("container not running") }; return }
                let c = s.cgroups
                let mem = Cgroups.readNumber(c, "memory.usage_in_bytes") ?? Cgroups.readNumber(c, "memory.current") ?? 0
                let memLimit = Cgroups.readNumber(c, "memory.limit_in_bytes") ?? Cgroups.readNumber(c, "memory.max") ?? 0
                let cpu = Cgroups.readNumber(c, "cpuacct.usage") ?? Cgroups.readNumber(c, "cpu.stat") ?? 0
                let pids = Cgroups.readNumber(c, "pids.current") ?? UInt64(Cgroups.pids(c).count)
                line = JSON.object([("type", .string("stats")), ("id", .string(id)), ("data", .object([
                    ("cpu", .object([("usage", .object([("total", .number(String(cpu)))]))])),
                    ("memory", .object([("usage", .object([("usage", .number(String(mem))), ("limit", .number(String(memLimit)))]))])),
                    ("pids", .object([("current", .number(String(pids)))])),
                ]))]).serialized()
            }
            emit(line + "\n")
            if stats { return }
            usleep(UInt32(max(0.1, interval) * 1_000_000))
        }
    }
}

nonisolated(unsafe) var runForwardTarget: pid_t = 0

extension String {
    func padding(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}

/// Signal names and numbers as `kill` accepts them (TERM, SIGTERM, 15).
public enum Signals {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "IOT": SIGABRT,
        "BUS": SIGBUS, "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2,
        "PIPE": SIGPIPE, "ALRM": SIGALRM, "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CONT": SIGCONT,
        "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN, "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU,
        "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO, "POLL": SIGIO,
        "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    public static func parse(_ s: String) -> Int32? {
        if let n = Int32(s) { return n > 0 && n < 65 ? n : nil }
        var u = s.uppercased()
        if u.hasPrefix("SIG") { u.removeFirst(3) }
        if let n = names[u] { return n }
        if u.hasPrefix("RTMIN") {
            let off = u.dropFirst(5)
            if off.isEmpty { return 34 }
            if off.hasPrefix("+"), let k = Int32(off.dropFirst()), 34 + k <= 64 { return 34 + k }
        }
        if u.hasPrefix("RTMAX") {
            let off = u.dropFirst(5)
            if off.isEmpty { return 64 }
            if off.hasPrefix("-"), let k = Int32(off.dropFirst()), 64 - k >= 34 { return 64 - k }
        }
        return nil
    }

    /// Whether the default action of `sig` ends the process.
    static func terminates(_ sig: Int32) -> Bool {
        ![SIGCHLD, SIGCONT, SIGURG, SIGWINCH, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU].contains(sig)
    }
}
