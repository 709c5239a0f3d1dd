// Sockets: AF_UNIX (socketpair; socket, bind, listen, connect, accept for
// stream and seqpacket). Other families are EAFNOSUPPORT until the
// networking issue.

import CMoat
import Glibc

let MSG_DONTWAIT_: Int32 = 0x40
let MSG_NOSIGNAL_: Int32 = 0x4000
let MSG_PEEK_: Int32 = 0x2
let MSG_WAITALL_: Int32 = 0x100

func registerSocket(_ t: SyscallTable) {
    t[53] = { t, a in                                                         // socketpair
        let domain = a.int(0), rawType = a.int(1)
        let type = rawType & 0xf
        if domain != AF_UNIX { return err(EAFNOSUPPORT) }
        if rawType & ~(0xf | O_NONBLOCK | O_CLOEXEC) != 0 { return err(EINVAL) }
        if type != 1 && type != 2 && type != 5 { return err(EINVAL) } // STREAM, DGRAM, SEQPACKET
        if a.int(2) != 0 { return err(EPROTONOSUPPORT) }
        let (x, y) = UnixSocketFD.pair(type: type, flags: O_RDWR | (rawType & O_NONBLOCK))
        return installPair(t, x, y, cloexec: rawType & O_CLOEXEC != 0, at: a.a3)
    }
    t[44] = { t, a in                                                         // sendto
        guard let s = socketFD(t, a.int(0)) else { return notSocket(t, a.int(0)) }
        if a.a4 != 0 { return err(EISCONN) }
        let fl = a.int(3)
        return s.send(t, a.a1, a.long(2), dontWait: fl & MSG_DONTWAIT_ != 0, noSignal: fl & MSG_NOSIGNAL_ != 0)
    }
    t[45] = { t, a in                                                         // recvfrom
        guard let s = socketFD(t, a.int(0)) else { return notSocket(t, a.int(0)) }
        let fl = a.int(3)
        if fl & MSG_PEEK_ != 0 { return err(EOPNOTSUPP) }
        let r = s.recv(t, a.a1, a.long(2), dontWait: fl & MSG_DONTWAIT_ != 0)
        if r >= 0 && a.a5 != 0 { _ = t.writeI32(a.a5, 0) }
        return r
    }
    t[46] = { t, a in sysSendRecvMsg(t, a, send: true) }                      // sendmsg
    t[47] = { t, a in sysSendRecvMsg(t, a, send: false) }                     // recvmsg
    t[48] = { t, a in                                                         // shutdown
        guard let s = socketFD(t, a.int(0)) else { return notSocket(t, a.int(0)) }
        let how = a.int(1)
        if how < 0 || how > 2 { return err(EINVAL) }
        s.shutdown(how)
        return 0
    }
    t[55] = { t, a in                                                         // getsockopt
        guard let s = socketFD(t, a.int(0)) else { return notSocket(t, a.int(0)) }
        if a.int(1) != SOL_SOCKET { return err(ENOPROTOOPT) }
        var v: Int32
        switch a.int(2) {
        case SO_TYPE: v = s.type
        case SO_ERROR: v = 0
        case SO_DOMAIN: v = AF_UNIX
        case SO_RCVBUF, SO_SNDBUF: v = 212_992
        case SO_ACCEPTCONN: v = 0
        default: return err(ENOPROTOOPT)
        }
        guard let len = t.readI32(a.a4), len >= 4 else { return err(EINVAL) }
        return t.writeI32(a.a3, v) && t.writeI32(a.a4, 4) ? 0 : err(EFAULT)
    }
    t[54] = { t, a in                                                         // setsockopt
        guard socketFD(t, a.int(0)) != nil else { return notSocket(t, a.int(0)) }
        if a.int(1) != SOL_SOCKET { return err(ENOPROTOOPT) }
        switch a.int(2) {
        case SO_RCVBUF, SO_SNDBUF, SO_PASSCRED, SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD: return 0
        default: return err(ENOPROTOOPT)
        }
    }
    for nr in [51, 52] {                                                      // getsockname, getpeername
        t[nr] = { t, a in
            if let u = t.fds.get(a.int(0)) as? UnixSockFD {
                if nr == 52 && u.conn == nil { return err(ENOTCONN) }
                return writeUnixAddr(t, a.a1, a.a2, nr == 51 ? u.name : u.peerName)
            }
            guard socketFD(t, a.int(0)) != nil else { return notSocket(t, a.int(0)) }
            guard let len = t.readI32(a.a2), len >= 0 else { return err(EINVAL) }
            var b: [UInt8] = [1, 0] // sa_family = AF_UNIX, unnamed
            b = Array(b.prefix(Int(len)))
            return t.copyOut(a.a1, b) && t.writeI32(a.a2, 2) ? 0 : err(EFAULT)
        }
    }
}

let SO_RCVTIMEO_OLD: Int32 = 20
let SO_SNDTIMEO_OLD: Int32 = 21

private func socketFD(_ t: Task, _ fd: Int32) -> UnixSocketFD? {
    let f = t.fds.get(fd)
    if let s = f as? UnixSocketFD { return s }
    if let u = f as? UnixSockFD, let c = u.conn { c.flags = u.flags; return c }
    return nil
}
private func notSocket(_ t: Task, _ fd: Int32) -> Int {
    let f = t.fds.get(fd)
    if f == nil { return err(EBADF) }
    return f is UnixSockFD ? err(ENOTCONN) : err(ENOTSOCK)
}

/// Reads a sockaddr_un: the sun_path bytes (leading 0 = abstract name).
private func readUnixAddr(_ t: Task, _ addr: UInt64, _ len: Int) -> Result<[UInt8], Errno> {
    if len < 3 || len > 110 { return .failure(Errno(EINVAL)) }
    guard let b = t.copyIn(addr, len) else { return .failure(Errno(EFAULT)) }
    if UInt16(b[0]) | UInt16(b[1]) << 8 != UInt16(AF_UNIX) { return .failure(Errno(EAFNOSUPPORT)) }
    var path = Array(b[2...])
    if path.first != 0, let z = path.firstIndex(of: 0) { path = Array(path[..<z]) }
    if path.isEmpty { return .failure(Errno(EINVAL)) }
    return .success(path)
}

private func writeUnixAddr(_ t: Task, _ addr: UInt64, _ lenAddr: UInt64, _ name: [UInt8]?) -> Int {
    if addr == 0 { return 0 }
    guard let len = t.readI32(lenAddr), len >= 0 else { return err(EINVAL) }
    var b: [UInt8] = [UInt8(AF_UNIX), 0] + (name ?? [])
    if let n = name, n.first != 0 { b.append(0) }
    let full = Int32(b.count)
    b = Array(b.prefix(Int(len)))
    return t.copyOut(addr, b) && t.writeI32(lenAddr, full) ? 0 : err(EFAULT)
}

private func listenerFor(_ t: Task, _ name: [UInt8]) -> Result<UnixSockFD, Errno> {
    let names = t.kernel.unixNames
    if name.first == 0 {
        guard let s = names.abstract[name] else { return .failure(Errno(ECONNREFUSED)) }
        return .success(s)
    }
    switch t.kernel.vfs.resolve(t.fs, start: t.fs.cwd, name, follow: true, searcher: t.searcher) {
    case .success(let p):
        if p.inode.mode & S_IFMT_ != S_IFSOCK_ { return .failure(Errno(ECONNREFUSED)) }
        guard let s = names.paths[UnixNames.PathKey(dev: p.inode.dev, ino: p.inode.ino)] else { return .failure(Errno(ECONNREFUSED)) }
        return .success(s)
    case .failure(let e): return .failure(e)
    }
}

func registerUnixSockets(_ t: SyscallTable) {
    t[41] = { t, a in                                                         // socket
        let domain = a.int(0), rawType = a.int(1), type = rawType & 0xf
        if domain != AF_UNIX { return err(EAFNOSUPPORT) }
        if rawType & ~(0xf | O_NONBLOCK | O_CLOEXEC) != 0 { return err(EINVAL) }
        if type != 1 && type != 2 && type != 5 { return err(ESOCKTNOSUPPORT) }
        if a.int(2) != 0 { return err(EPROTONOSUPPORT) }
        let s = UnixSockFD(kernel: t.kernel, type: type, flags: O_RDWR | (rawType & O_NONBLOCK))
        return t.fds.install(s, cloexec: rawType & O_CLOEXEC != 0, limit: fdLimit(t))
    }
    t[49] = { t, a in                                                         // bind
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        guard let s = f as? UnixSockFD else { return err(f is UnixSocketFD ? EINVAL : ENOTSOCK) }
        if s.name != nil || s.conn != nil { return err(EINVAL) }
        let name: [UInt8]
        switch readUnixAddr(t, a.a1, Int(a.uint(2))) { case .success(let n): name = n; case .failure(let e): return e.ret }
        let names = t.kernel.unixNames
        if name.first == 0 {
            if names.abstract[name] != nil { return err(EADDRINUSE) }
            names.abstract[name] = s
        } else {
            // A socket file, made like mknod(S_IFSOCK).
            switch t.kernel.vfs.resolveParent(t.fs, start: t.fs.cwd, name, searcher: t.searcher) {
            case .success(let (dir, last)):
                if case .success = dir.dentry.child(last) { return err(EADDRINUSE) }
                if !t.mayAccess(dir.inode, 3) { return err(EACCES) }
                let c = t.tg.creds
                switch dir.inode.mknod(last, mode: S_IFSOCK_ | (0o777 & ~t.fs.umask), uid: c.fsuid, gid: c.fsgid) {
                case .success(let ino):
                    dir.dentry.children[last] = Dentry(name: last, parent: dir.dentry, inode: ino)
                    let key = UnixNames.PathKey(dev: ino.dev, ino: ino.ino)
                    names.paths[key] = s
                    s.pathKey = key
                case .failure(let e): return e.ret
                }
            case .failure(let e): return e.ret
            }
        }
        s.name = name
        return 0
    }
    t[50] = { t, a in                                                         // listen
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        guard let s = f as? UnixSockFD else { return err(f is UnixSocketFD ? EINVAL : ENOTSOCK) }
        if s.type == 2 { return err(EOPNOTSUPP) }
        if s.conn != nil { return err(EINVAL) }
        if s.name == nil {
            // Autobind: an abstract name of five hex digits.
            var n: [UInt8]
            repeat { n = [0] + Array(hex(UInt32.random(in: 0...0xfffff), width: 5).utf8) } while t.kernel.unixNames.abstract[n] != nil
            t.kernel.unixNames.abstract[n] = s
            s.name = n
        }
        s.listening = true
        return 0
    }
    t[42] = { t, a in                                                         // connect
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        guard let s = f as? UnixSockFD else { return err(f is UnixSocketFD ? EISCONN : ENOTSOCK) }
        if s.conn != nil { return err(EISCONN) }
        if s.listening { return err(EINVAL) }
        if s.type == 2 { return err(EOPNOTSUPP) } // connected datagram sockets: with the networking issue
        let name: [UInt8]
        switch readUnixAddr(t, a.a1, Int(a.uint(2))) { case .success(let n): name = n; case .failure(let e): return e.ret }
        let l: UnixSockFD
        switch listenerFor(t, name) { case .success(let x): l = x; case .failure(let e): return e.ret }
        if !l.listening || l.type != s.type { return err(l.type != s.type ? EPROTOTYPE : ECONNREFUSED) }
        if l.backlog.count >= 4096 { return err(EAGAIN) }
        let (mine, theirs) = UnixSocketFD.pair(type: s.type, flags: O_RDWR)
        s.conn = mine
        s.peerName = l.name
        let accepted = UnixSockFD(kernel: t.kernel, type: s.type, flags: O_RDWR, conn: theirs)
        accepted.name = l.name
        accepted.peerName = s.name
        l.backlog.append(accepted)
        l.waiters.notifyAll()
        return 0
    }
    for nr in [43, 288] {                                                     // accept, accept4
        t[nr] = { t, a in
            guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
            guard let s = f as? UnixSockFD else { return err(f is UnixSocketFD ? EINVAL : ENOTSOCK) }
            let flags = nr == 288 ? a.int(3) : 0
            if flags & ~(O_NONBLOCK | O_CLOEXEC) != 0 { return err(EINVAL) }
            if !s.listening { return err(EINVAL) }
            while s.backlog.isEmpty {
                if s.nonblocking { return err(EAGAIN) }
                s.waiters.add(t)
                let r = t.block(deadline: nil)
                s.waiters.remove(t)
                if r == .interrupted && s.backlog.isEmpty { return -ERESTARTSYS }
            }
            let c = s.backlog.removeFirst()
            c.flags = O_RDWR | (flags & O_NONBLOCK)
            let fd = t.fds.install(c, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
            if fd < 0 { c.release(); return fd }
            if a.a1 != 0 { _ = writeUnixAddr(t, a.a1, a.a2, c.peerName) }
            return fd
        }
    }
}

/// sendmsg/recvmsg without names or ancillary data.
func sysSendRecvMsg(_ t: Task, _ a: Args, send: Bool) -> Int {
    guard let s = socketFD(t, a.int(0)) else { return notSocket(t, a.int(0)) }
    guard let m = t.copyIn(a.a1, 56) else { return err(EFAULT) }
    let iov = get64(m, 16), iovlen = Int(Int64(bitPattern: get64(m, 24)))
    let controlLen = get64(m, 40)
    if send && controlLen != 0 { return err(EOPNOTSUPP) } // SCM_RIGHTS: with the networking issue
    if iovlen < 0 || iovlen > 1024 { return err(EMSGSIZE) }
    let fl = a.int(2)
    if !send && fl & MSG_PEEK_ != 0 { return err(EOPNOTSUPP) }
    guard let v = t.copyIn(iov, iovlen * 16) else { return err(EFAULT) }
    var total = 0
    for i in 0..<iovlen {
        let base = get64(v, i * 16)
        let len = Int(Int64(bitPattern: get64(v, i * 16 + 8)))
        if len < 0 { return err(EINVAL) }
        if len == 0 { continue }
        let dontWait = fl & MSG_DONTWAIT_ != 0 || total > 0
        let r = send ? s.send(t, base, len, dontWait: dontWait, noSignal: fl & MSG_NOSIGNAL_ != 0)
                     : s.recv(t, base, len, dontWait: dontWait)
        if r < 0 { if total > 0 { break }; return r }
        total += r
        if r < len { break }
    }
    if !send {
        // No name, no control data; msg_flags = 0.
        var out = m
        put64(&out, 8, 0); put64(&out, 40, 0); put32(&out, 48, 0)
        if !t.copyOut(a.a1, out) { return err(EFAULT) }
    }
    return total
}
