// Supervisor: starts Moat's own subcommands (`moat controlplane`, `moat cri`, `moat node`) as
// child processes of `moat server` and stops them in order.
//
// Why children rather than one process: each component keeps the process model it was built
// and tested with (the runtime's signal handling, the agent's graceful stop), and a crash in
// one is reported by name instead of taking the others with it silently.
//
// Children die with the supervisor: each child learns its supervisor's pid from the
// environment (`MOAT_SUPERVISOR_PID`) and `followSupervisor()` terminates it when its parent
// is gone (a SIGKILLed `moat server` leaves no orphaned components running).
//
// Thread ownership: `Supervisor` is used by the thread that runs `moat server` only.

import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class Supervisor {
    public struct Child {
        public let name: String
        public let pid: pid_t
        public var status: Int32?
    }

    let executable: String
    let logDirectory: String
    public private(set) var children: [Child] = []

    public init(executable: String, logDirectory: String) {
        self.executable = executable; self.logDirectory = logDirectory
    }

    /// The path of the running binary (children run the same `moat`).
    public static func ownExecutable() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 { buf[n] = 0; return String(cString: buf) }
        return CommandLine.arguments[0]
    }

    public func logPath(_ name: String) -> String { logDirectory + "/" + name + ".log" }

    /// Starts `moat ARGS...` with stdout and stderr appended to LOGDIR/NAME.log, stdin from
    /// /dev/null, default signal dispositions and mask, in a process group of its own (a
    /// terminal's ^C reaches the supervisor only, which stops the children in order).
    /// `after`: a file that will hold another child's pid; when the supervisor dies, this
    /// child stops only once that one has (the runtime outlives the agent stopping its pods).
    @discardableResult
    public func start(_ name: String, after: String? = nil, _ args: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath(name), O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none); sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var env = ProcessInfo.processInfo.environment
        env["MOAT_SUPERVISOR_PID"] = String(getpid())
        env["MOAT_SUPERVISOR_AFTER"] = after
        let argv = [executable] + args
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attr, cArgs, cEnv)
        guard rc == 0 else { throw SupervisorError("cannot start moat \(name): \(String(cString: strerror(rc)))") }
        children.append(Child(name: name, pid: pid, status: nil))
        return pid
    }

    /// Reaps children that have exited; returns those that exited since the last call.
    public func reap() -> [Child] {
        var gone: [Child] = []
        for i in children.indices where children[i].status == nil {
            var st: Int32 = 0
            if waitpid(children[i].pid, &st, WNOHANG) == children[i].pid {
                children[i].status = st
                gone.append(children[i])
            }
        }
        return gone
    }

    public func isRunning(_ name: String) -> Bool {
        _ = reap()
        return children.contains { $0.name == name && $0.status == nil }
    }

    /// SIGTERM to one child, then SIGKILL if it has not exited within `grace` seconds.
    public func stop(_ name: String, grace: Double) {
        guard let c = children.first(where: { $0.name == name && $0.status == nil }) else { return }
        kill(c.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning(name) && Date() < deadline { usleep(50_000) }
        if isRunning(name) {
            kill(c.pid, SIGKILL)
            while isRunning(name) { usleep(20_000) }
        }
    }

    /// The last `bytes` of a child's log, for a report when it fails.
    public func logTail(_ name: String, bytes: Int = 2000) -> String {
        String(((try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? "").suffix(bytes))
    }

    /// In a child of `moat server`: exit (by SIGTERM, so the component's own graceful stop runs)
    /// when the supervisor is gone. Called at start-up; does nothing in other processes.
    public static func followSupervisor() {
        let env = ProcessInfo.processInfo.environment
        guard let s = env["MOAT_SUPERVISOR_PID"], let parent = pid_t(s) else { return }
        let after = env["MOAT_SUPERVISOR_AFTER"]
        unsetenv("MOAT_SUPERVISOR_PID")   // not for the pods' processes
        unsetenv("MOAT_SUPERVISOR_AFTER")
        if getppid() != parent { exit(1) }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        let orphaned = OrphanedSince()
        timer.setEventHandler {
            if getppid() != parent {
                // Wait (at most a minute) for the sibling that must stop first.
                let since = orphaned.get()
                if let f = after, let t = try? String(contentsOfFile: f, encoding: .utf8),
                   let pid = pid_t(t.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0,
                   Date().timeIntervalSince(since) < 60 {
                    return
                }
                kill(getpid(), SIGTERM)
                // A component that ignores SIGTERM still goes, after a grace period.
                DispatchQueue.global().asyncAfter(deadline: .now() + 60) { exit(1) }
                timer.cancel()
            }
        }
        timer.resume()
        parentWatch = timer
    }
    nonisolated(unsafe) static var parentWatch: DispatchSourceTimer?
}

/// When a child first saw its supervisor gone (the timer's handler only).
final class OrphanedSince: @unchecked Sendable {
    private var since: Date?
    func get() -> Date { if let s = since { return s }; let now = Date(); since = now; return now }
}

public struct SupervisorError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}
