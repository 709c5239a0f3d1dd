// The Gofers of a pod's containers, forked instead of re-executed.
//
// `moat cri` is a multi-threaded gRPC server: it cannot fork a Gofer without
// exec (moat_fork_start refuses, since a lock another thread held would stay
// locked in the child), so each container's Gofer used to be re-executed:
// dynamic loading, relocation and the Swift runtime's start, the largest
// part of CreateContainer (bench/results/2026-12-06-pod-start-*.md). Each pod
// now has a zygote, `moat gofer --zygote`, re-executed once by
// RunPodSandbox while the pod's Sentry starts (off the critical path) and
// single-threaded for its whole life; CreateContainer asks it for the
// container's Gofers, and it forks them as `moat run` forks its own
// (Sandbox.spawn, moat_fork_start: the exec's fds, environment and command
// line, the same confinement afterwards).
//
// Isolation. A forked Gofer shares its zygote's address layout, as `moat
// run`'s Gofer shares its launcher's. The zygote is the pod's own and
// re-executed, so the Gofers of one pod share a layout with one another and
// with it, and with nothing else: not with `moat cri` and not with another
// pod's (a node-wide zygote forked from `moat cri` early, while it has one
// thread, would be cheaper and would give every pod's Gofers the server's
// layout and one another's: rejected), nor with the pod's Sentry, which is
// re-executed as before. The zygote faces no hostile input: it accepts only
// on a socket in the pod's state directory (0700), only from its own uid,
// and only requests for `moat gofer` command lines.
//
// Lifetime. It exits when the pod's Sentry exits (a pidfd, or the Sentry's
// start time checked each second where there is none); destroy also kills it.
// Gofers it forked detach from it (--detached) and end when the Sentry
// closes their sockets, as before. When it cannot be reached (gone, or
// MOAT_SPAWN=exec), the Gofer is re-executed as before.

import CMoat
import Glibc
import GoferProtocol

public enum GoferZygote {
    static let socketName = "gofers"

    /// The listening socket for a pod's zygote, bound in its state
    /// directory before the zygote runs, so a request can be made (and
    /// waits in the backlog) while it starts. -1 on failure.
    static func listen(stateDir: String) -> Int32 {
        let s = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { return -1 }
        let path = stateDir + "/" + socketName
        unlink(path)
        if withUnixAddress(path, { bind(s, $0, $1) }) != 0 || Glibc.listen(s, 64) != 0 { close(s); return -1 }
        return s
    }

    /// Starts a pod's zygote (re-executed; no wait for its exec): returns
    /// its pid, or nil when it cannot be started (Gofers are then
    /// re-executed). The caller reaps it.
    static func start(stateDir: String, sentryPid: pid_t, debug: Bool) -> pid_t? {
        if getenv("MOAT_SPAWN").map({ String(cString: $0) }) == "exec" { return nil }
        guard let sentryStart = PodSandbox.processStartTime(sentryPid) else { return nil }
        let l = listen(stateDir: stateDir)
        if l < 0 { return nil }
        defer { close(l) }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }
        // The state directory is in the command line so that a zygote left
        // behind is found as the pod's (the kill -9 tests look for it).
        var args = ["moat", "gofer", "--zygote", "--fd", "3", "--detached", "--sentry", "\(sentryPid):\(sentryStart)",
                    "--state", stateDir]
        if debug { args.append("--debug") }
        var execFD: Int32 = -1
        let pid = Sandbox.spawn(Sandbox.binary, args, [devnull, devnull, 2, l], flags: 0, newSession: true, execFD: &execFD)
        if pid < 0 { return nil }
        // Its exec is not waited for: a failed one shows as a refused
        // connection, and the Gofer is then re-executed.
        close(execFD)
        return pid
    }

    /// Asks the pod's zygote for a Gofer: `args` ("moat", "gofer", ...)
    /// with `socketFD` as its fd 3. Returns the Gofer's pid (not a child of
    /// the caller), or nil when there is no zygote to ask.
    static func fork(stateDir: String, _ args: [String], socketFD: Int32) -> pid_t? {
        let s = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { return nil }
        defer { close(s) }
        guard withUnixAddress(stateDir + "/" + socketName, { connect(s, $0, $1) }) == 0 else { return nil }
        let req = Array(args.joined(separator: "\0").utf8)
        guard req.withUnsafeBytes({ MessageSocket.send(s, $0.baseAddress!, $0.count, fd: socketFD) }) == 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: 64)
        var fds = MessageSocket.ReceivedFDs()
        let r = buf.withUnsafeMutableBytes { MessageSocket.receive(s, into: $0.baseAddress!, capacity: $0.count, acceptFDs: false, fds: &fds) }
        guard case .message(let n) = r else { return nil }
        let reply = String(decoding: buf[0..<n], as: UTF8.self)
        guard reply.hasPrefix("pid="), let pid = pid_t(reply.dropFirst(4)), pid > 0 else { return nil }
        return pid
    }

    /// `moat gofer --zygote`: forks Gofers on request until the pod's
    /// Sentry (`sentry`: "PID:START") exits. Must run with one thread.
    public static func serve(listenFD: Int32, sentry: String) -> Never {
        // No signal disposition is changed: the Gofers inherit them, and
        // must get what a re-executed Gofer gets (replies use MSG_NOSIGNAL).
        let parts = sentry.split(separator: ":")
        guard parts.count == 2, let pid = pid_t(parts[0]), let start = UInt64(parts[1]) else { exit(64) }
        let pidfd = Int32(truncatingIfNeeded: moat_syscall6(434 /* pidfd_open */, Int(pid), 0, 0, 0, 0, 0))
        // Checked after the pidfd is open: a pid reused before then is not the Sentry's.
        func sentryAlive() -> Bool { PodSandbox.processStartTime(pid) == start }
        while sentryAlive() {
            var st: Int32 = 0
            while waitpid(-1, &st, WNOHANG) > 0 {}
            var pfds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            let n = poll(&pfds, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? 5000 : 1000)
            if pidfd >= 0 && pfds[1].revents != 0 { break }
            guard n > 0, pfds[0].revents != 0 else { continue }
            // One thread: nothing can exec between the accept and the
            // flag (and a forked Gofer keeps only the fds it is given).
            let conn = accept(listenFD, nil, nil)
            if conn < 0 { continue }
            _ = fcntl(conn, F_SETFD, FD_CLOEXEC)
            answer(conn)
            close(conn)
        }
        exit(0)
    }

    private static func answer(_ conn: Int32) {
        // SO_PEERCRED (17): struct ucred { pid, uid, gid }.
        var cred: (pid_t, uid_t, gid_t) = (0, 0, 0)
        var len = socklen_t(MemoryLayout<(pid_t, uid_t, gid_t)>.size)
        guard getsockopt(conn, SOL_SOCKET, 17, &cred, &len) == 0, cred.1 == getuid() else { return }
        var buf = [UInt8](repeating: 0, count: 65536)
        var fds = MessageSocket.ReceivedFDs()
        let r = buf.withUnsafeMutableBytes { MessageSocket.receive(conn, into: $0.baseAddress!, capacity: $0.count, acceptFDs: true, fds: &fds) }
        defer { fds.closeAll() }
        func reply(_ s: String) { _ = Array(s.utf8).withUnsafeBytes { MessageSocket.send(conn, $0.baseAddress!, $0.count) } }
        guard case .message(let n) = r, fds.count == 1, fds.first >= 0 else { return reply("err=\(EINVAL)") }
        let args = buf[0..<n].split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard args.count > 2, args[0] == "moat", args[1] == "gofer", !args.contains("--zygote") else { return reply("err=\(EINVAL)") }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }
        let pid = Sandbox.spawn(Sandbox.binary, args, [devnull, devnull, 2, fds.first], flags: 0, newSession: true, fork: true)
        reply(pid > 0 ? "pid=\(pid)" : "err=\(-pid)")
    }
}
