// The Sentry's control channel: `moat exec` runs a new process inside a
// running sandbox through it. The OCI launcher creates the listening
// SOCK_SEQPACKET socket (under the container's state directory) before the
// Sentry confines itself; the Sentry only accepts on it and talks over the
// accepted connections (accept4/recvmsg/sendmsg/poll on fds it holds).
//
// Protocol (one packet per line below):
//   client -> sentry  request: NUL-separated "key=value" fields:
//                     a=ARG (repeated, in order), e=K=V (repeated), cwd=DIR,
//                     uid=N, gid=N, g=N (additional groups), umask=OCTAL
//   client -> sentry  three packets "0", "1", "2", each carrying one fd
//                     (SCM_RIGHTS): the process's stdin, stdout, stderr
//   sentry -> client  "pid=N" once started, or "err=CODE MESSAGE"
//   client -> sentry  "sig=N" (any number of times): signal the process
//   client -> sentry  "winsize=COLS,ROWS" (with tty=1): the terminal's size
//   sentry -> client  "exit=STATUS" (the wait status) when it has exited
// or, instead of a request, "killall=N": signal N to every process; the
// reply is "ok=COUNT".
// With the field tty=1 the process gets a terminal: a pseudo-terminal pair
// made in the Sentry, its slave the process's stdin, stdout and stderr and
// the controlling terminal of its session (the process leads one), while
// this channel's thread plays the master: bytes from the stdin fd go through
// the line discipline (echo, ^C to the foreground group...), the terminal's
// output goes to the stdout fd, and winsize messages set its size (SIGWINCH
// to the foreground group), as `kubectl exec -it` needs.
// The process is a child of no one in the sandbox (like a process that
// joined the pid namespace from outside: its ppid is 0). If the client
// hangs up before the process exits, the process is killed: the client's
// host pid stands for it (the engine waits for and signals that pid).

import CMoat
import Glibc
import GoferProtocol

public enum ControlServer {
    /// Starts the accept loop on its own thread. Requires: k.mu held.
    static func start(_ k: Kernel, listenFD: Int32) {
        final class Box { let k: Kernel; let fd: Int32; init(_ k: Kernel, _ fd: Int32) { self.k = k; self.fd = fd } }
        var th = pthread_t()
        let box = Unmanaged.passRetained(Box(k, listenFD)).toOpaque()
        pthread_create(&th, nil, { p in
            let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
            while true {
                // accept4 (288) is a GNU extension Glibc's Swift module hides.
                let c = Int32(truncatingIfNeeded: moat_syscall6(288, Int(b.fd), 0, 0, Int(SOCK_CLOEXEC.rawValue), 0, 0))
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    Log.shared.info("control: accept failed: errno \(errno); exec is no longer possible")
                    return nil
                }
                ControlServer.serveDetached(b.k, c)
            }
        }, box)
        pthread_detach(th)
    }

    static func serveDetached(_ k: Kernel, _ conn: Int32) {
        final class Box { let k: Kernel; let fd: Int32; init(_ k: Kernel, _ fd: Int32) { self.k = k; self.fd = fd } }
        var th = pthread_t()
        let box = Unmanaged.passRetained(Box(k, conn)).toOpaque()
        pthread_create(&th, nil, { p in
            let b = Unmanaged<Box>.fromOpaque(p!).takeRetainedValue()
            ControlServer.serve(b.k, b.fd)
            close(b.fd)
            return nil
        }, box)
        pthread_detach(th)
    }

    /// Writes all of `bytes` to a host fd (a terminal's output to the client); gives up on an error.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            off += n
        }
    }

    static func send(_ fd: Int32, _ s: String) {
        let bytes = Array(s.utf8)
        _ = bytes.withUnsafeBytes { MessageSocket.send(fd, $0.baseAddress!, $0.count) }
    }

    /// Receives one packet; returns its bytes and the fd it carried (or -1).
    static func receive(_ fd: Int32) -> ([UInt8], Int32)? {
        var buf = [UInt8](repeating: 0, count: 256 * 1024)
        var fds = MessageSocket.ReceivedFDs()
        let r = buf.withUnsafeMutableBytes { MessageSocket.receive(fd, into: $0.baseAddress!, capacity: $0.count, acceptFDs: true, fds: &fds) }
        guard case .message(let n) = r else { fds.closeAll(); return nil }
        return (Array(buf[0..<n]), fds.first)
    }

    static func serve(_ k: Kernel, _ conn: Int32) {
        guard let (req, extra) = receive(conn) else { return }
        if extra >= 0 { close(extra) }
        // `kill --all SIG`: every process of the sandbox, not only init.
        let text = String(decoding: req, as: UTF8.self)
        if text.hasPrefix("killall="), let sig = Int32(text.dropFirst(8)), sig > 0, sig < 65 {
            k.lock()
            var n = 0
            for tg in k.threadGroups.values where !tg.exiting && !tg.zombie {
                var info = SigInfo(signo: sig)
                info.fromHost = true
                tg.sendSignal(sig, info)
                n += 1
            }
            k.unlock()
            send(conn, "ok=\(n)")
            return
        }
        let fields: PodControl.Fields = req.split(separator: 0).compactMap { f in
            let s = String(decoding: f, as: UTF8.self)
            guard let eq = s.firstIndex(of: "=") else { return nil }
            return (s[..<eq], String(s[s.index(after: eq)...]))
        }
        if fields.first?.0 == "op" { PodControl.serve(k, conn, fields); return }
        // The process's own capabilities and no_new_privs (process.json);
        // a client that sends none gets the container's.
        var r = ProcessRequest(caps: k.containerCaps, nnp: k.containerNoNewPrivs)
        for (key, value) in fields { r.take(key, value) }
        var stdio: [Int32] = []
        for _ in 0..<3 {
            guard let (_, fd) = receive(conn) else { for f in stdio where f >= 0 { close(f) }; return }
            stdio.append(fd)
        }
        defer { for f in stdio where f >= 0 { close(f) } }

        k.lock()
        var root: Path? = nil
        var pidNS: Int32 = 0
        if let cid = r.container {
            guard let c = k.podContainers[cid] else { k.unlock(); send(conn, "err=125 no such container \(cid)"); return }
            root = c.root
            pidNS = c.pidNS     // the process joins the container's pid namespace
        }
        guard !k.finished, let pid = k.allocPid(namespace: pidNS) else {
            k.unlock(); send(conn, "err=125 the container is not running"); return
        }
        let tg = ThreadGroup(kernel: k, tgid: pid, parent: nil, handlers: SignalHandlers())
        let creds = r.credentials
        if let i = k.initTG { tg.rlimits = i.rlimits }
        var pty: Pty? = nil
        let fds: FDTable
        if r.tty {
            let p = k.ptys.allocate(k)
            p.locked = false
            let slave = PtySlaveFD(pty: p, flags: O_RDWR)
            fds = FDTable()
            for i in 0..<3 { fds.installAt(slave, Int32(i), cloexec: false) }
            pty = p
        } else {
            fds = SentryMain.stdioTable(k.vfs, stdio)
        }
        // The master's side ends with this request, however it ends.
        defer {
            if let p = pty {
                k.lock()
                p.masterOpen = false
                k.ptys.ptys[p.index] = nil
                p.notify()
                k.unlock()
            }
        }
        let argv = r.argv, env = r.env
        switch SentryMain.newProcess(k, tg: tg, tid: pid, creds: creds, argv: argv, env: env, cwd: r.cwd, umask: r.umask, fds: fds, root: root) {
        case .failure(let f):
            k.unlock()
            send(conn, "err=\(f.code) \(f.message)")
            return
        case .success(let (task, tgt, execfn)):
            k.threadGroups[pid] = tg
            // The terminal is the new session's controlling terminal; the process's group is in front.
            if let p = pty { p.sid = tg.sid; p.fgPgid = tg.pgid }
            tg.tasks.append(task)
            k.tasks[pid] = task
            let envb = env.map { Array($0.utf8) }
            task.onStart = { t in
                let r = execImage(t, tgt, envp: envb, execfn: execfn)
                if r < 0 { t.tg.beginExit(code: 126, bySignal: false) }
            }
            // A terminal as stdin (moat exec -it): the new process's group
            // is the terminal's foreground one, or a shell's job control
            // waits for it forever.
            if let i = stdio.first, i >= 0, isatty(i) == 1 { k.foregroundPgid = tg.pgid }
            task.startDriver()
        }
        k.unlock()
        send(conn, "pid=\(pid)")

        // Wait for the exit, passing on signals from the client meanwhile
        // (and with a terminal, its input and output). Polling keeps the
        // kernel's exit path untouched by this channel.
        var stdinOpen = pty != nil && stdio[0] >= 0
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            k.lock()
            let done = tg.zombie || k.finished
            let status = tg.zombie ? tg.exitCode : Int32(SIGKILL)
            var output: [UInt8] = []
            if let p = pty, !p.output.isEmpty { output = p.output; p.output.removeAll(); p.notify() }
            k.unlock()
            if !output.isEmpty, stdio[1] >= 0 { writeAll(stdio[1], output) }
            if done { send(conn, "exit=\(status)"); return }
            var pfds = [pollfd(fd: conn, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: stdinOpen ? stdio[0] : -1, events: Int16(POLLIN), revents: 0)]
            guard poll(&pfds, 2, pty != nil ? 10 : 20) > 0 else { continue }
            if pfds[0].revents != 0 {
                guard let (msg, fd) = receive(conn) else {
                    // The client (whose pid the engine holds for this
                    // process) is gone: the process goes with it, so the
                    // engine's view stays true.
                    k.lock()
                    if !tg.exiting { tg.beginExit(code: SIGKILL, bySignal: true) }
                    k.unlock()
                    return
                }
                if fd >= 0 { close(fd) }
                let s = String(decoding: msg, as: UTF8.self)
                if s.hasPrefix("winsize="), let p = pty {
                    let v = s.dropFirst(8).split(separator: ",").compactMap { UInt16($0) }
                    if v.count == 2 {
                        // struct winsize: ws_row, ws_col, ws_xpixel, ws_ypixel (little-endian u16s).
                        let size: [UInt8] = [UInt8(v[1] & 0xff), UInt8(v[1] >> 8), UInt8(v[0] & 0xff), UInt8(v[0] >> 8), 0, 0, 0, 0]
                        k.lock()
                        if size != p.winsize { p.winsize = size; p.signalForeground(SIGWINCH) }
                        k.unlock()
                    }
                }
                if s.hasPrefix("sig="), let sig = Int32(s.dropFirst(4)), sig > 0, sig < 65 {
                    k.lock()
                    if !tg.exiting {
                        var info = SigInfo(signo: sig)
                        info.fromHost = true
                        tg.sendSignal(sig, info)
                    }
                    k.unlock()
                }
            }
            // Input after the control messages that came with it (a resize before the keys typed at that size).
            if pfds[1].revents != 0, let p = pty {
                let n = read(stdio[0], &buf, buf.count)
                if n > 0 {
                    k.lock(); p.receive(Array(buf[0..<n])); k.unlock()
                } else if n == 0 || errno != EINTR {
                    stdinOpen = false
                }
            }
        }
    }
}
