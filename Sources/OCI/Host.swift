// Host calls the runtime needs that Swift cannot make directly.

import CMoat
import COCI
import Glibc
import GoferProtocol
import Sandbox
import Sentry

@discardableResult
func moatPrctl(_ option: Int, _ arg: Int) -> Int {
    moat_syscall6(157 /* SYS_prctl */, option, arg, 0, 0, 0, 0)
}

/// Starts a Gofer of `moat create` (args "moat", "gofer", ...): fds[i]
/// becomes its fd i, in a new session. Forked without exec, as `moat run`'s
/// Gofer is (Sandbox.spawnGofer), when this process has one thread: it
/// skips loading and relocating the binary and starting the Swift runtime
/// again; otherwise re-executed. The forked Gofer keeps a copy of this
/// process's memory, mostly the parsed config.json, of which the sandbox's
/// Sentry is given all but the hooks and annotations; this process's
/// environment is wiped in it as in `moat run`'s. The Sentry is always
/// re-executed (a layout of its own: Sandbox.swift).
func spawnGofer(_ args: [String], fds: [Int32]) throws -> pid_t {
    let pid = Sandbox.spawnGofer(args, fds: fds, newSession: true)
    if pid < 0 { throw RuntimeError("cannot start the gofer: \(String(cString: strerror(-pid)))") }
    return pid
}

/// Spawns a re-execution of this binary (see moat_spawn), or of `binary`
/// (a sandbox process: Sandbox.binary): fds[i] becomes the child's fd i.
/// `newSession` runs it in a new session.
func spawnSelf(_ args: [String], fds: [Int32], cloneFlags: UInt = 0, newSession: Bool,
               binary: String = "/proc/self/exe") throws -> pid_t {
    var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    var cenv: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), strdup(StartupProfile.environmentEntry()), nil]
    defer { for p in cargs { free(p) }; for p in cenv { free(p) } }
    let pid = fds.withUnsafeBufferPointer { fp in
        moat_spawn(binary, &cargs, &cenv, fp.baseAddress, Int32(fds.count), cloneFlags, newSession ? 1 : 0)
    }
    if pid < 0 { throw RuntimeError("cannot start \(args.dropFirst().first ?? "moat"): \(String(cString: strerror(-pid)))") }
    return pid
}

/// A Unix socket address for `path`; long paths go through /proc/self/fd.
func withSockaddr<R>(_ path: String, dirFD: Int32? = nil, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &addr.sun_path) { p in
        for (i, b) in bytes.prefix(p.count - 1).enumerated() { p[i] = b }
    }
    return withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// Connects to a Unix socket by path (any length).
func connectUnix(_ path: String, type: Int32) throws -> Int32 {
    let s = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
    if s < 0 { throw RuntimeError("socket: \(String(cString: strerror(errno)))") }
    var target = path
    var dirfd: Int32 = -1
    if path.utf8.count > 100, let slash = path.lastIndex(of: "/") {
        dirfd = coci_open_path_dir(String(path[..<slash]))
        if dirfd >= 0 { target = "/proc/self/fd/\(dirfd)/" + path[path.index(after: slash)...] }
    }
    defer { if dirfd >= 0 { close(dirfd) } }
    let r = withSockaddr(target) { connect(s, $0, $1) }
    if r != 0 {
        let e = errno
        close(s)
        throw RuntimeError("cannot connect to \(path): \(String(cString: strerror(e)))")
    }
    return s
}

/// A listening socket bound at `name` inside the directory `dirFD`.
func listenUnix(dirFD: Int32, name: String, type: Int32) throws -> Int32 {
    let s = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
    if s < 0 { throw RuntimeError("socket: \(String(cString: strerror(errno)))") }
    let r = withSockaddr("/proc/self/fd/\(dirFD)/\(name)") { bind(s, $0, $1) }
    if r != 0 || listen(s, 16) != 0 {
        let e = errno
        close(s)
        throw RuntimeError("cannot listen on the control socket: \(String(cString: strerror(e)))")
    }
    return s
}

func sendPacket(_ fd: Int32, _ s: String, passing: Int32 = -1) -> Bool {
    let b = Array(s.utf8)
    return b.withUnsafeBytes { MessageSocket.send(fd, $0.baseAddress!, $0.count, fd: passing) } == 0
}

func receivePacket(_ fd: Int32) -> String? {
    var buf = [UInt8](repeating: 0, count: 65536)
    var fds = MessageSocket.ReceivedFDs()
    let r = buf.withUnsafeMutableBytes { MessageSocket.receive(fd, into: $0.baseAddress!, capacity: $0.count, acceptFDs: false, fds: &fds) }
    guard case .message(let n) = r else { return nil }
    return String(decoding: buf[0..<n], as: UTF8.self)
}

/// A new pseudo-terminal: (master, slave), both close-on-exec.
func openPTY(rows: UInt16?, cols: UInt16?) throws -> (Int32, Int32) {
    var m: Int32 = -1, s: Int32 = -1
    let r = coci_openpty(&m, &s)
    if r < 0 { throw RuntimeError("cannot make a pty: \(String(cString: strerror(-r)))") }
    if let r = rows, let c = cols {
        var ws = winsize(ws_row: r, ws_col: c, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(m, UInt(TIOCSWINSZ), &ws)
    }
    return (m, s)
}

/// Sends a pty master to the engine's --console-socket (SCM_RIGHTS), as
/// runc does: a stream connection, the fd with a short payload.
func sendConsole(_ master: Int32, to path: String) throws {
    let s = try connectUnix(path, type: Int32(SOCK_STREAM.rawValue))
    defer { close(s) }
    if !sendPacket(s, "/dev/ptmx", passing: master) {
        throw RuntimeError("cannot send the console to \(path): \(String(cString: strerror(errno)))")
    }
}
