// Sockets: socketpair(AF_UNIX) for now (the networking issue brings the
// rest). socket() of any family is still ENOSYS.

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
        let cloexec = rawType & O_CLOEXEC != 0
        let fa = t.fds.install(x, cloexec: cloexec, limit: fdLimit(t))
        if fa < 0 { x.release(); y.release(); return fa }
        let fb = t.fds.install(y, cloexec: cloexec, limit: fdLimit(t))
        if fb < 0 { _ = t.fds.close(Int32(fa)); y.release(); return fb }
        var fds: [Int32] = [Int32(fa), Int32(fb)]
        if !fds.withUnsafeBytes({ t.copyOut(a.a3, $0.baseAddress!, 8) }) {
            _ = t.fds.close(Int32(fa)); _ = t.fds.close(Int32(fb))
            return err(EFAULT)
        }
        return 0
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

private func socketFD(_ t: Task, _ fd: Int32) -> UnixSocketFD? { t.fds.get(fd) as? UnixSocketFD }
private func notSocket(_ t: Task, _ fd: Int32) -> Int { t.fds.get(fd) == nil ? err(EBADF) : err(ENOTSOCK) }

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
