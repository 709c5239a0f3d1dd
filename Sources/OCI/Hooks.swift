// Lifecycle hooks (config.md "POSIX-platform Hooks"): each runs on the host
// with the container's state JSON on stdin, its own args and env, and an
// optional timeout in seconds. prestart (deprecated, run by `create` before
// createRuntime, as the spec and runc do), createRuntime, createContainer and
// startContainer failures fail the operation (the runtime then stops the
// container); a poststart or poststop failure is logged and the remaining
// hooks still run ("as if the hook had succeeded").
// Moat runs createContainer and startContainer hooks in the runtime's
// namespaces too: the container's "namespaces" are the Sentry's emulation.

import COCI
import Glibc

enum Hooks {
    /// Runs the hooks in order; throws on the first failure.
    static func run(_ name: String, _ hooks: [Spec.Hook], state: JSON) throws {
        let stdin = Array(state.serialized().utf8)
        for (i, h) in hooks.enumerated() {
            if let why = runOne(h, stdin: stdin) {
                throw RuntimeError("\(name) hook #\(i) (\(h.path)): \(why)")
            }
        }
    }

    /// Runs every hook, logging each failure (poststart, poststop).
    static func runIgnoringFailures(_ name: String, _ hooks: [Spec.Hook], state: JSON, log: RuntimeLog) {
        let stdin = Array(state.serialized().utf8)
        for (i, h) in hooks.enumerated() {
            if let why = runOne(h, stdin: stdin) { log.warn("\(name) hook #\(i) (\(h.path)): \(why)") }
        }
    }

    /// Nil on success, else why it failed.
    static func runOne(_ h: Spec.Hook, stdin: [UInt8]) -> String? {
        var p: (Int32, Int32) = (-1, -1)
        let rc = withUnsafeMutableBytes(of: &p) { coci_pipe_cloexec($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        if rc != 0 { return "pipe: \(String(cString: strerror(errno)))" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, p.0, 0)
        let argv = (h.args.isEmpty ? [h.path] : h.args).map { strdup($0) } + [nil]
        let envp = h.env.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) }; for e in envp { free(e) } }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var dfl = sigset_t(); sigemptyset(&dfl); sigaddset(&dfl, SIGPIPE)
        var none = sigset_t(); sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &dfl)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let r = posix_spawn(&pid, h.path, &actions, &attr, argv, envp)
        close(p.0)
        if r != 0 { close(p.1); return "cannot run: \(String(cString: strerror(r)))" }
        // The hook may not read stdin at all: never block on it.
        _ = fcntl(p.1, F_SETFL, O_NONBLOCK)
        var off = 0
        let deadline = h.timeout.map { monotonicNow() + Double($0) }
        var status: Int32 = 0
        while true {
            if off < stdin.count && p.1 >= 0 {
                let n = stdin.withUnsafeBytes { write(p.1, $0.baseAddress! + off, stdin.count - off) }
                if n > 0 { off += n } else if n < 0 && errno != EAGAIN && errno != EINTR { off = stdin.count }
            }
            if off >= stdin.count && p.1 >= 0 { close(p.1); p.1 = -1 }
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if w < 0 && errno != EINTR { if p.1 >= 0 { close(p.1) }; return "wait failed" }
            if let d = deadline, monotonicNow() > d {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                if p.1 >= 0 { close(p.1) }
                return "timed out after \(h.timeout!) s"
            }
            usleep(2000)
        }
        if p.1 >= 0 { close(p.1) }
        if status & 0x7f != 0 { return "killed by signal \(status & 0x7f)" }
        let code = (status >> 8) & 0xff
        return code == 0 ? nil : "exit status \(code)"
    }

    static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
