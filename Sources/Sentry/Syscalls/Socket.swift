// Socket syscalls. AF_UNIX sockets live in Sentry memory
// (FSImpl/UnixSocket.swift, UnixListener.swift); AF_INET and AF_INET6
// sockets are host sockets in the sandbox's network namespace, served by
// FSImpl/InetSocket.swift; AF_NETLINK ones (NETLINK_ROUTE's queries) are
// answered in Sentry memory (FSImpl/NetlinkSocket.swift). Every other
// family (packet, ...) is EAFNOSUPPORT, as on a kernel built without it.
//
// The handlers decode and bound the arguments (addresses at most 128 bytes,
// at most UIO_MAXIOV iovecs, ancillary data at most optmem_max), then hand
// off to the socket's own code.

import CMoat
import Glibc

let MSG_DONTWAIT_: Int32 = 0x40
let MSG_NOSIGNAL_: Int32 = 0x4000
let MSG_PEEK_: Int32 = 0x2
let MSG_WAITALL_: Int32 = 0x100
let MSG_WAITFORONE_: Int32 = 0x10000
let SO_RCVTIMEO_OLD: Int32 = 20
let SO_SNDTIMEO_OLD: Int32 = 21
let SO_PASSCRED_: Int32 = 16
let SO_PEERCRED_: Int32 = 17
let SCM_RIGHTS_: Int32 = 1
let SCM_CREDENTIALS_: Int32 = 2
/// Linux's net.core.optmem_max default: the most ancillary data a send may carry.
let optmemMax = 20480
/// SCM_MAX_FD.
let scmMaxFD = 253

/// Kept for the table's registration list: every socket call is registered
/// by registerSocket.
func registerUnixSockets(_ t: SyscallTable) {}

func registerSocket(_ t: SyscallTable) {
    t[41] = { t, a in                                                         // socket
        let domain = a.int(0), rawType = a.int(1), type = rawType & 0xf
        if rawType & ~(0xf | SOCK_NONBLOCK_ | SOCK_CLOEXEC_) != 0 { return err(EINVAL) }
        let cloexec = rawType & SOCK_CLOEXEC_ != 0
        let flags = O_RDWR | (rawType & O_NONBLOCK)
        switch domain {
        case AF_UNIX:
            // Linux's unix_create makes an AF_UNIX SOCK_RAW a SOCK_DGRAM.
            let type = type == 3 ? SOCK_DGRAM_ : type
            if type != SOCK_STREAM_ && type != SOCK_DGRAM_ && type != SOCK_SEQPACKET_ { return err(ESOCKTNOSUPPORT) }
            if a.int(2) != 0 && a.int(2) != AF_UNIX { return err(EPROTONOSUPPORT) }   // 0 or PF_UNIX (unix_create)
            let s = UnixSockFD(kernel: t.kernel, type: type, flags: flags)
            s.sockInode = ownedInode(t, ino: s.ino, mode: S_IFSOCK_ | 0o777, dev: 8)
            s.creatorLandlock = t.creds.landlock
            s.net = t.net
            return t.fds.install(s, cloexec: cloexec, limit: fdLimit(t))
        case AF_INET, AF_INET6:
            // In a namespace made inside the sandbox: a loopback endpoint in Sentry memory.
            if !t.net.isRoot { return LoopbackSockFD.create(t, family: domain, type: type, proto: a.int(2), flags: flags, cloexec: cloexec) }
            let fd = InetSocketFD.create(family: domain, type: type, proto: a.int(2))
            if fd < 0 { return fd }
            let s = InetSocketFD(fd: Int32(fd), family: domain, type: type, proto: a.int(2), flags: flags)
            let r = t.fds.install(s, cloexec: cloexec, limit: fdLimit(t))
            if r < 0 { s.release() }
            return r
        case AF_NETLINK_:
            let e = NetlinkSocketFD.check(type: type, proto: a.int(2))
            if e != 0 { return err(e) }
            return t.fds.install(NetlinkSocketFD(type: type, proto: a.int(2), flags: flags, net: t.net), cloexec: cloexec, limit: fdLimit(t))
        default:
            return err(EAFNOSUPPORT)
        }
    }
    t[53] = { t, a in                                                         // socketpair
        let domain = a.int(0), rawType = a.int(1)
        let type = rawType & 0xf
        if rawType & ~(0xf | O_NONBLOCK | O_CLOEXEC) != 0 { return err(EINVAL) }
        if domain == AF_INET || domain == AF_INET6 {
            // Linux makes the socket first (its type and protocol checks),
            // then finds that inet sockets cannot be paired.
            let proto = a.int(2)
            switch type {
            case SOCK_STREAM_: return err(proto == 0 || proto == 6 ? EOPNOTSUPP : EPROTONOSUPPORT)
            case SOCK_DGRAM_: return err(proto == 0 || proto == 17 || proto == 136 || proto == 1 || proto == 58 ? EOPNOTSUPP : EPROTONOSUPPORT)
            case 3: // SOCK_RAW
                if proto == 0 { return err(EPROTONOSUPPORT) }
                return err(t.creds.has(Cap.netRaw) ? EOPNOTSUPP : EPERM)
            case 11...: return err(EINVAL)
            default: return err(ESOCKTNOSUPPORT)
            }
        }
        if domain != AF_UNIX { return err(EAFNOSUPPORT) }
        let utype = type == 3 ? SOCK_DGRAM_ : type   // SOCK_RAW, as socket()
        if utype != SOCK_STREAM_ && utype != SOCK_DGRAM_ && utype != SOCK_SEQPACKET_ { return err(EINVAL) }
        if a.int(2) != 0 && a.int(2) != AF_UNIX { return err(EPROTONOSUPPORT) }
        let (x, y) = UnixSocketFD.pair(type: utype, flags: O_RDWR | (rawType & O_NONBLOCK))
        x.peerCred = t.unixCred; y.peerCred = t.unixCred
        t.kernel.unixNames.register(x, ino: x.ino, net: t.net.unixKey); t.kernel.unixNames.register(y, ino: y.ino, net: t.net.unixKey)
        return installPair(t, x, y, cloexec: rawType & O_CLOEXEC != 0, at: a.a3)
    }
    t[49] = { t, a in                                                         // bind
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        if let s = f as? InetSocketFD {
            switch readSockaddr(t, a.a1, Int(a.int(2))) { case .success(let b): return s.bind(t, b); case .failure(let e): return e.ret }
        }
        if let s = f as? NetlinkSocketFD {
            switch readSockaddr(t, a.a1, Int(a.int(2))) { case .success(let b): return s.bind(t, b); case .failure(let e): return e.ret }
        }
        if let s = f as? LoopbackSockFD {
            switch readSockaddr(t, a.a1, Int(a.int(2))) { case .success(let b): return s.bind(t, b); case .failure(let e): return e.ret }
        }
        return unixBind(t, f, a)
    }
    t[50] = { t, a in                                                         // listen
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        if let s = f as? InetSocketFD { return s.listen(a.int(1)) }
        if f is NetlinkSocketFD { return err(EOPNOTSUPP) }
        if let s = f as? LoopbackSockFD { return s.listen(a.int(1)) }
        return unixListen(t, f, a.int(1))
    }
    t[42] = { t, a in                                                         // connect
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        if let s = f as? InetSocketFD {
            switch readSockaddr(t, a.a1, Int(a.int(2))) { case .success(let b): return s.connect(t, b); case .failure(let e): return e.ret }
        }
        if let s = f as? NetlinkSocketFD {
            switch readSockaddr(t, a.a1, Int(a.int(2))) { case .success(let b): return s.connect(t, b); case .failure(let e): return e.ret }
        }
        if let s = f as? LoopbackSockFD {
            switch readSockaddr(t, a.a1, Int(a.int(2))) { case .success(let b): return s.connect(t, b); case .failure(let e): return e.ret }
        }
        return unixConnect(t, f, a)
    }
    for nr in [43, 288] {                                                     // accept, accept4
        t[nr] = { t, a in
            guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
            let flags = nr == 288 ? a.int(3) : 0
            if flags & ~(O_NONBLOCK | O_CLOEXEC) != 0 { return err(EINVAL) }
            if f is NetlinkSocketFD { return err(EOPNOTSUPP) }
            if let s = f as? LoopbackSockFD {
                let (r, c) = s.accept(t, flags: flags)
                guard let c = c else { return r }
                let fd = t.fds.install(c, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
                if fd < 0 { c.release(); return fd }
                if a.a1 != 0 { _ = writeSockaddr(t, a.a1, a.a2, c.sockaddr(c.peer)) }
                return fd
            }
            if let s = f as? InetSocketFD {
                let (r, c, name) = s.accept(t, flags: flags)
                guard let c = c else { return r }
                let fd = t.fds.install(c, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
                if fd < 0 { c.release(); return fd }
                if a.a1 != 0 { _ = writeSockaddr(t, a.a1, a.a2, name) }
                return fd
            }
            return unixAccept(t, f, a, flags)
        }
    }
    for nr in [51, 52] {                                                      // getsockname, getpeername
        t[nr] = { t, a in
            guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
            if a.a1 == 0, f is InetSocketFD || f is LoopbackSockFD || f is UnixSockFD || f is UnixSocketFD || f is NetlinkSocketFD {   // no buffer for a name
                guard let len = t.readI32(a.a2) else { return err(EFAULT) }
                if len > 0 { return err(EFAULT) }
            }
            if let s = f as? NetlinkSocketFD { return writeSockaddr(t, a.a1, a.a2, s.name(peer: nr == 52)) }
            if let s = f as? LoopbackSockFD {
                switch s.name(peer: nr == 52) {
                case .success(let b): return writeSockaddr(t, a.a1, a.a2, b)
                case .failure(let e): return e.ret
                }
            }
            if let s = f as? InetSocketFD {
                switch s.name(peer: nr == 52) {
                case .success(let b): return writeSockaddr(t, a.a1, a.a2, b)
                case .failure(let e): return e.ret
                }
            }
            if let u = f as? UnixSockFD {
                if nr == 52 && u.conn == nil && u.peerName == nil { return err(ENOTCONN) }
                return writeSockaddr(t, a.a1, a.a2, unixSockaddr(nr == 51 ? u.name : u.peerAddress))
            }
            guard f is UnixSocketFD else { return err(ENOTSOCK) }
            return writeSockaddr(t, a.a1, a.a2, unixSockaddr(nil))
        }
    }
    t[44] = { t, a in                                                         // sendto
        var to: [UInt8]? = nil
        if a.a4 != 0 {
            switch readSockaddr(t, a.a4, Int(a.int(5))) { case .success(let b): to = b; case .failure(let e): return e.ret }
        }
        return sendOne(t, a.int(0), [(a.a1, rwCount(a.a2))], to: to, control: [], flags: a.int(3))
    }
    t[45] = { t, a in                                                         // recvfrom
        let r = recvOne(t, a.int(0), [(a.a1, rwCount(a.a2))], controlCap: 0, flags: a.int(3))
        // The address length is checked once the data is taken, as by
        // Linux: a negative one is EINVAL even when there is no address
        // (a connected stream), and that error is the call's result.
        if r.ret >= 0 && a.a4 != 0 {
            let w = writeSockaddr(t, a.a4, a.a5, r.from ?? [])
            if w < 0 { return w }
        }
        return r.ret
    }
    t[46] = { t, a in sysSendMsg(t, a.int(0), a.a1, a.int(2)) }              // sendmsg
    t[47] = { t, a in sysRecvMsg(t, a.int(0), a.a1, a.int(2)) }              // recvmsg
    t[307] = { t, a in                                                        // sendmmsg
        let n = min(Int(a.uint(2)), 1024)
        var sent = 0
        for i in 0..<n {
            let h = a.a1 &+ UInt64(i * 64)
            let r = sysSendMsg(t, a.int(0), h, a.int(3))
            if r < 0 { return sent > 0 ? sent : r }
            if !t.writeI32(h &+ 56, Int32(r)) { return sent > 0 ? sent : err(EFAULT) }
            sent += 1
        }
        return sent
    }
    t[299] = { t, a in                                                        // recvmmsg
        let n = min(Int(a.uint(2)), 1024)
        var flags = a.int(3)
        var deadline: Int64? = nil
        if a.a4 != 0 {
            switch readTimespecArg(t, a.a4) {
            case .success(let (sec, ns)): deadline = Kernel.now(CLOCK_MONOTONIC) &+ sec &* 1_000_000_000 &+ ns
            case .failure(let e): return e.ret
            }
        }
        var got = 0
        for i in 0..<n {
            let h = a.a1 &+ UInt64(i * 64)
            let r = sysRecvMsg(t, a.int(0), h, flags & ~MSG_WAITFORONE_)
            if r < 0 { return got > 0 ? got : r }
            if !t.writeI32(h &+ 56, Int32(r)) { return got > 0 ? got : err(EFAULT) }
            got += 1
            if flags & MSG_WAITFORONE_ != 0 { flags |= MSG_DONTWAIT_ }
            if let d = deadline, Kernel.now(CLOCK_MONOTONIC) >= d { break }
        }
        return got
    }
    t[48] = { t, a in                                                         // shutdown
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        let how = a.int(1)
        if how < 0 || how > 2 { return err(EINVAL) }
        if let s = f as? InetSocketFD { return s.shutdown(how) }
        if let s = f as? LoopbackSockFD { return s.shutdown(how) }
        if f is NetlinkSocketFD { return err(EOPNOTSUPP) }
        guard let s = unixConnected(f) else {
            guard let u = f as? UnixSockFD else { return err(ENOTSOCK) }
            u.shutdownUnconnected(how)
            return 0
        }
        s.shutdown(how)
        return 0
    }
    t[54] = { t, a in                                                         // setsockopt
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        if let s = f as? InetSocketFD {
            return s.setsockopt(t, level: a.int(1), name: a.int(2), addr: a.a3, len: Int(a.int(4)))
        }
        if let s = f as? NetlinkSocketFD {
            return s.setsockopt(t, level: a.int(1), name: a.int(2), addr: a.a3, len: Int(a.int(4)))
        }
        if let s = f as? LoopbackSockFD {
            return s.setsockopt(t, level: a.int(1), name: a.int(2), addr: a.a3, len: Int(a.int(4)))
        }
        return unixSetsockopt(t, f, a)
    }
    t[55] = { t, a in                                                         // getsockopt
        guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
        if let s = f as? InetSocketFD {
            return s.getsockopt(t, level: a.int(1), name: a.int(2), addr: a.a3, lenAddr: a.a4)
        }
        if let s = f as? NetlinkSocketFD {
            return s.getsockopt(t, level: a.int(1), name: a.int(2), addr: a.a3, lenAddr: a.a4)
        }
        if let s = f as? LoopbackSockFD {
            return s.getsockopt(t, level: a.int(1), name: a.int(2), addr: a.a3, lenAddr: a.a4)
        }
        return unixGetsockopt(t, f, a)
    }
}

/// readv/writev on a socket: one recvmsg/sendmsg of the whole vector, so a
/// datagram is gathered from (scattered over) all the iovecs. nil for
/// other files.
func socketVectorIO(_ t: Task, _ fd: Int32, _ f: FileDescription, _ iov: [(UInt64, Int)], write: Bool) -> Int? {
    guard f is InetSocketFD || f is NetlinkSocketFD || f is UnixSockFD || f is UnixSocketFD || f is LoopbackSockFD else { return nil }
    if !write && iov.allSatisfy({ $0.1 == 0 }) { return 0 }   // nothing to read: no message taken (sock_read_iter)
    return write ? sendOne(t, fd, iov, to: nil, control: [], flags: 0) : recvOne(t, fd, iov, controlCap: 0, flags: 0).ret
}

/// A size_t length as Linux takes it for one buffer: at most MAX_RW_COUNT.
func rwCount(_ v: UInt64) -> Int { Int(min(v, UInt64(maxRWCount))) }

// MARK: - Addresses

/// Copies in an application sockaddr (at most sizeof(sockaddr_storage)).
func readSockaddr(_ t: Task, _ addr: UInt64, _ len: Int) -> Result<[UInt8], Errno> {
    if len < 0 || len > 128 { return .failure(Errno(EINVAL)) }
    if len == 0 { return .success([]) }
    guard let b = t.copyIn(addr, len) else { return .failure(Errno(EFAULT)) }
    return .success(b)
}

/// Writes a sockaddr and its full length, truncated to the caller's room.
func writeSockaddr(_ t: Task, _ addr: UInt64, _ lenAddr: UInt64, _ b: [UInt8]) -> Int {
    if addr == 0 { return 0 }
    guard let len = t.readI32(lenAddr) else { return err(EFAULT) }
    if len < 0 { return err(EINVAL) }
    return t.copyOut(addr, Array(b.prefix(Int(len)))) && t.writeI32(lenAddr, Int32(b.count)) ? 0 : err(EFAULT)
}

/// A sockaddr_un for a name (nil: unnamed, the family alone).
func unixSockaddr(_ name: [UInt8]?) -> [UInt8] {
    var b: [UInt8] = [UInt8(AF_UNIX), 0] + (name ?? [])
    if let n = name, n.first != 0 { b.append(0) }
    return b
}

/// Reads a sockaddr_un: the sun_path bytes (leading 0 = abstract name).
func readUnixAddr(_ t: Task, _ addr: UInt64, _ len: Int) -> Result<[UInt8], Errno> {
    if len < 3 || len > 110 { return .failure(Errno(EINVAL)) }
    guard let b = t.copyIn(addr, len) else { return .failure(Errno(EFAULT)) }
    return unixName(b)
}

func unixName(_ b: [UInt8]) -> Result<[UInt8], Errno> {
    if b.count < 3 || b.count > 110 { return .failure(Errno(EINVAL)) }
    if UInt16(b[0]) | UInt16(b[1]) << 8 != UInt16(AF_UNIX) { return .failure(Errno(EINVAL)) }
    var path = Array(b[2...])
    if path.first != 0, let z = path.firstIndex(of: 0) { path = Array(path[..<z]) }
    if path.isEmpty { return .failure(Errno(EINVAL)) }
    return .success(path)
}

// MARK: - Messages

struct MsgHdr {
    var name: UInt64
    var nameLen: Int
    var iov: [(UInt64, Int)]
    var control: UInt64
    var controlLen: Int
}

func readMsgHdr(_ t: Task, _ addr: UInt64) -> Result<MsgHdr, Errno> {
    guard let m = t.copyIn(addr, 56) else { return .failure(Errno(EFAULT)) }
    // A negative msg_namelen with a name is EINVAL before anything moves (Linux's __copy_msghdr).
    if get64(m, 0) != 0 && Int32(bitPattern: get32(m, 8)) < 0 { return .failure(Errno(EINVAL)) }
    let iovAddr = get64(m, 16), iovlen = Int64(bitPattern: get64(m, 24))
    if iovlen < 0 || iovlen > 1024 { return .failure(Errno(EMSGSIZE)) }
    var iov: [(UInt64, Int)] = []
    if iovlen > 0 {
        guard let v = t.copyIn(iovAddr, Int(iovlen) * 16) else { return .failure(Errno(EFAULT)) }
        switch decodeIovecs(v, count: Int(iovlen)) { case .success(let d): iov = d; case .failure(let e): return .failure(e) }
    }
    return .success(decodeMsgHdr(m, iov: iov))
}

/// The fields of a struct msghdr (56 bytes, copied in) other than the
/// iovec array, which `decodeIovecs` reads.
func decodeMsgHdr(_ m: [UInt8], iov: [(UInt64, Int)]) -> MsgHdr {
    MsgHdr(name: get64(m, 0), nameLen: Int(get32(m, 8)), iov: iov,
           control: get64(m, 32), controlLen: Int(min(get64(m, 40), UInt64(Int32.max))))
}

/// One control message: (level, type, data).
typealias Cmsg = (level: Int32, type: Int32, data: [UInt8])

func readControl(_ t: Task, _ addr: UInt64, _ len: Int) -> Result<[Cmsg], Errno> {
    if len == 0 { return .success([]) }
    if len > optmemMax { return .failure(Errno(ENOBUFS)) }
    guard let b = t.copyIn(addr, len) else { return .failure(Errno(EFAULT)) }
    return decodeControl(b)
}

/// Splits a control buffer into messages as Linux walks it (CMSG_NXTHDR):
/// each header's cmsg_len covers its 16-byte header and data and stays in
/// the buffer; the next starts 8-aligned; a tail too short for a header is
/// ignored. Pure, for the fuzz target `syscall-args`.
func decodeControl(_ b: [UInt8]) -> Result<[Cmsg], Errno> {
    var out: [Cmsg] = []
    var off = 0
    while off + 16 <= b.count {
        let clen = Int(clamping: get64(b, off))
        if clen < 16 || clen > b.count - off { return .failure(Errno(EINVAL)) }
        out.append((Int32(bitPattern: get32(b, off + 8)), Int32(bitPattern: get32(b, off + 12)), Array(b[off + 16..<off + clen])))
        off += (clen + 7) & ~7
    }
    return .success(out)
}

func sysSendMsg(_ t: Task, _ fd: Int32, _ addr: UInt64, _ flags: Int32) -> Int {
    let h: MsgHdr
    switch readMsgHdr(t, addr) { case .success(let x): h = x; case .failure(let e): return e.ret }
    var to: [UInt8]? = nil
    if h.name != 0 && h.nameLen > 0 {
        switch readSockaddr(t, h.name, h.nameLen) { case .success(let b): to = b; case .failure(let e): return e.ret }
    }
    let control: [Cmsg]
    switch readControl(t, h.control, h.controlLen) { case .success(let c): control = c; case .failure(let e): return e.ret }
    return sendOne(t, fd, h.iov, to: to, control: control, flags: flags)
}

func sysRecvMsg(_ t: Task, _ fd: Int32, _ addr: UInt64, _ flags: Int32) -> Int {
    let h: MsgHdr
    switch readMsgHdr(t, addr) { case .success(let x): h = x; case .failure(let e): return e.ret }
    let r = recvOne(t, fd, h.iov, controlCap: h.control == 0 ? 0 : h.controlLen, flags: flags)
    if r.ret < 0 { return r.ret }
    // msg_namelen, msg_controllen, msg_flags.
    var nameLen = 0
    if h.name != 0, let from = r.from {
        if !t.copyOut(h.name, Array(from.prefix(h.nameLen))) { return err(EFAULT) }
        nameLen = from.count
    }
    if !r.control.isEmpty && !t.copyOut(h.control, r.control) { return err(EFAULT) }
    guard t.writeI32(addr &+ 8, Int32(nameLen)), t.writeU64(addr &+ 40, UInt64(r.control.count)),
          t.writeI32(addr &+ 48, r.msgFlags) else { return err(EFAULT) }
    return r.ret
}

/// Gathers application iovecs into Sentry memory (at most `cap` bytes).
func gather(_ t: Task, _ iov: [(UInt64, Int)], cap: Int) -> [UInt8]? {
    var out: [UInt8] = []
    for (base, len) in iov {
        let n = min(len, cap - out.count)
        if n <= 0 { break }
        guard let b = t.copyIn(base, n) else { return nil }
        out.append(contentsOf: b)
    }
    return out
}

/// Scatters bytes over application iovecs; false on a fault.
func scatter(_ t: Task, _ iov: [(UInt64, Int)], _ data: [UInt8]) -> Bool {
    var off = 0
    for (base, len) in iov where off < data.count {
        let n = min(len, data.count - off)
        if !data.withUnsafeBytes({ t.copyOut(base, $0.baseAddress! + off, n) }) { return false }
        off += n
    }
    return true
}

func sendOne(_ t: Task, _ fd: Int32, _ iov: [(UInt64, Int)], to: [UInt8]?, control: [Cmsg], flags: Int32) -> Int {
    guard let f = t.fds.getIO(fd) else { return err(EBADF) }
    if let s = f as? InetSocketFD {
        // SCM_RIGHTS and SCM_CREDENTIALS Linux ignores there (__sock_cmsg_send):
        // LTP's recvmsg01 server sends an fd over TCP and expects success.
        // The rest (IP_TOS, IP_TTL, IP_PKTINFO, IPV6_*, SO_PRIORITY...) goes
        // to the host, which checks it as Linux does.
        let ignored = { (c: Cmsg) in c.level == SOL_SOCKET && (c.type == SCM_RIGHTS_ || c.type == SCM_CREDENTIALS_) }
        return s.send(t, iov, to: to?.isEmpty == true ? nil : to, flags: flags, control: encodeControl(control.filter { !ignored($0) }))
    }
    if let s = f as? NetlinkSocketFD { return s.send(t, iov, to: to, flags: flags) }   // ancillary data ignored, as by Linux
    if let s = f as? LoopbackSockFD { return s.send(t, iov, to: to, flags: flags) }    // so are SCM_RIGHTS and the IP ones here
    guard f is UnixSockFD || f is UnixSocketFD else { return err(ENOTSOCK) }
    let anc: Ancillary?
    switch unixAncillary(t, control) { case .success(let a): anc = a; case .failure(let e): return e.ret }
    let dontWait = flags & MSG_DONTWAIT_ != 0
    if let u = f as? UnixSockFD, u.isDatagram {
        var dest: [UInt8]? = nil
        if let b = to, !b.isEmpty {
            switch unixName(b) { case .success(let n): dest = n; case .failure(let e): anc?.discard(); return e.ret }
        }
        // Up to SO_SNDBUF, and one byte more than fits is EMSGSIZE.
        guard let data = gather(t, iov, cap: u.opts.sndbuf) else { anc?.discard(); return err(EFAULT) }
        return u.sendDatagram(t, data, to: dest, anc: anc, dontWait: dontWait)
    }
    guard let s = unixConnected(f) else {
        anc?.discard()
        // An unconnected stream socket given an address: EOPNOTSUPP (unix_stream_sendmsg).
        if let u = f as? UnixSockFD, u.type == SOCK_STREAM_, let b = to, !b.isEmpty { return err(EOPNOTSUPP) }
        return err(f is UnixSockFD ? ENOTCONN : ENOTSOCK)
    }
    if let b = to, !b.isEmpty, s.type == SOCK_STREAM_ { anc?.discard(); return err(EISCONN) }
    guard let data = gather(t, iov, cap: 4 << 20) else { anc?.discard(); return err(EFAULT) }
    return s.sendBytes(t, data, anc: anc, dontWait: dontWait, noSignal: flags & MSG_NOSIGNAL_ != 0)
}

struct RecvOut { var ret: Int; var from: [UInt8]? = nil; var control: [UInt8] = []; var msgFlags: Int32 = 0 }

func recvOne(_ t: Task, _ fd: Int32, _ iov: [(UInt64, Int)], controlCap: Int, flags: Int32) -> RecvOut {
    guard let f = t.fds.getIO(fd) else { return RecvOut(ret: err(EBADF)) }
    if let s = f as? InetSocketFD {
        let r = s.recv(t, iov, flags: flags, controlCap: controlCap)
        return RecvOut(ret: r.ret, from: r.from, control: r.control, msgFlags: r.msgFlags)
    }
    if let s = f as? NetlinkSocketFD {
        let r = s.recv(t, iov, flags: flags, controlCap: controlCap)
        return RecvOut(ret: r.ret, from: r.from, control: r.control, msgFlags: r.msgFlags)
    }
    if let s = f as? LoopbackSockFD {
        let r = s.recv(t, iov, flags: flags)
        return RecvOut(ret: r.ret, from: r.from, msgFlags: r.msgFlags)
    }
    guard f is UnixSockFD || f is UnixSocketFD else { return RecvOut(ret: err(ENOTSOCK)) }
    let total = iov.reduce(0) { $0 + $1.1 }
    let peek = flags & MSG_PEEK_ != 0, dontWait = flags & MSG_DONTWAIT_ != 0
    let cloexec = flags & MSG_CMSG_CLOEXEC_ != 0
    if let u = f as? UnixSockFD, u.isDatagram {
        let r = u.recvDatagram(t, max: total, peek: peek, dontWait: dontWait)
        if r.ret < 0 { return RecvOut(ret: r.ret) }
        if !scatter(t, iov, r.data) { return RecvOut(ret: err(EFAULT)) }
        var out = RecvOut(ret: flags & MSG_TRUNC_ != 0 ? r.full : r.ret, from: unixSockaddr(r.from))
        let (c, trunc) = deliverAncillary(t, r.anc, passcred: u.passcred, cap: controlCap, cloexec: cloexec, peek: peek)
        out.control = c
        out.msgFlags = (r.truncated ? MSG_TRUNC_ : 0) | (trunc ? MSG_CTRUNC_ : 0)
        return out
    }
    guard let s = unixConnected(f) else { return RecvOut(ret: err(f is UnixSockFD ? EINVAL : ENOTSOCK)) }
    let waitAll = flags & MSG_WAITALL_ != 0 && s.type == SOCK_STREAM_
    let r = s.recvBytes(t, max: min(total, 4 << 20), peek: peek, dontWait: dontWait, waitAll: waitAll)
    if r.ret < 0 { return RecvOut(ret: r.ret) }
    if !scatter(t, iov, r.data) { return RecvOut(ret: err(EFAULT)) }
    var out = RecvOut(ret: flags & MSG_TRUNC_ != 0 && s.messageMode ? r.full : r.ret)
    // The sender's address, when it has one (Linux's unix_copy_addr).
    if let u = f as? UnixSockFD, let n = u.peerAddress { out.from = unixSockaddr(n) }
    let (c, trunc) = deliverAncillary(t, r.anc, passcred: s.rxAnc.passcred, cap: controlCap, cloexec: cloexec, peek: peek)
    out.control = c
    out.msgFlags = (r.truncated ? MSG_TRUNC_ : 0) | (trunc ? MSG_CTRUNC_ : 0)
    return out
}

// MARK: - AF_UNIX

/// The connected end behind an fd (a socketpair end, or a connected or
/// accepted socket).
func unixConnected(_ f: FileDescription) -> UnixSocketFD? {
    if let s = f as? UnixSocketFD { return s }
    if let u = f as? UnixSockFD, let c = u.conn {
        c.flags = u.flags; c.rcvTimeoutNs = u.rcvTimeoutNs; c.sndTimeoutNs = u.sndTimeoutNs
        return c
    }
    return nil
}

/// Turns SCM_RIGHTS and SCM_CREDENTIALS into what travels with the bytes,
/// checking them as Linux does.
func unixAncillary(_ t: Task, _ control: [Cmsg]) -> Result<Ancillary?, Errno> {
    if control.isEmpty { return .success(nil) }
    var files: [FileDescription] = []
    var cred: UnixCred? = nil
    for c in control {
        // Linux's __scm_send skips messages of other levels on AF_UNIX.
        guard c.level == SOL_SOCKET else { continue }
        switch c.type {
        case SCM_RIGHTS_:
            // None at all is allowed, and carries nothing (scm_fp_copy).
            let n = c.data.count / 4
            if files.count + n > scmMaxFD { return .failure(Errno(EINVAL)) }
            for i in 0..<n {
                guard let f = t.fds.get(Int32(bitPattern: get32(c.data, i * 4))) else { return .failure(Errno(EBADF)) }
                files.append(f)
            }
        case SCM_CREDENTIALS_:
            if c.data.count < 12 { return .failure(Errno(EINVAL)) }
            let me = t.unixCred, creds = t.creds
            // The ids are the sender's namespace's: (uid_t)-1, (gid_t)-1 and
            // ids it does not map name nobody (Linux: not a valid id).
            guard let uid = creds.userNS.kernelUID(get32(c.data, 4)), let gid = creds.userNS.kernelGID(get32(c.data, 8)) else {
                return .failure(Errno(EINVAL))
            }
            let given = Int32(bitPattern: get32(c.data, 0))
            let want = UnixCred(pid: t.gpid(given), uid: uid, gid: gid)
            // Only one's own identity, unless privileged.
            if want.pid != me.pid && !creds.has(Cap.sysAdmin) { return .failure(Errno(EPERM)) }
            if ![creds.uid, creds.euid, creds.suid].contains(want.uid) && !creds.hasOwn(Cap.setuid) { return .failure(Errno(EPERM)) }
            if ![creds.gid, creds.egid, creds.sgid].contains(want.gid) && !creds.hasOwn(Cap.setgid) { return .failure(Errno(EPERM)) }
            if want.pid != me.pid && t.kernel.group(given, by: t) == nil {
                return .failure(Errno(ESRCH))
            }
            cred = want
        default:
            return .failure(Errno(EINVAL))
        }
    }
    if files.isEmpty && cred == nil { return .success(nil) }
    return .success(Ancillary(files: files, cred: cred))
}

/// Encodes received ancillary data for the application: SCM_CREDENTIALS
/// when the receiver asked for them, SCM_RIGHTS with the passed files
/// installed as new fds. What does not fit is dropped (MSG_CTRUNC).
func deliverAncillary(_ t: Task, _ anc: Ancillary?, passcred: Bool, cap: Int, cloexec: Bool, peek: Bool) -> ([UInt8], Bool) {
    var out: [UInt8] = []
    var truncated = false
    func header(_ len: Int, _ type: Int32) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 16)
        put64(&h, 0, UInt64(len)); put32(&h, 8, SOL_SOCKET); put32(&h, 12, type)
        return h
    }
    if passcred {
        // The ids as the receiver's namespace sees them.
        var c = anc?.cred ?? UnixCred(pid: 0, uid: 65534, gid: 65534)
        c.uid = t.creds.userNS.showUID(c.uid); c.gid = t.creds.userNS.showGID(c.gid)
        c.pid = t.vpidIfSeen(c.pid)                                     // 0: a sender its namespace cannot see
        if cap - out.count >= 28 {
            var b = header(28, SCM_CREDENTIALS_) + [UInt8](repeating: 0, count: 12)
            put32(&b, 16, c.pid); put32(&b, 20, Int32(bitPattern: c.uid)); put32(&b, 24, Int32(bitPattern: c.gid))
            if cap - out.count >= 32 { b += [0, 0, 0, 0] }
            out += b
        } else if cap - out.count >= 16 {
            // Linux's put_cmsg: what fits of the message, its cmsg_len cut too.
            let len = cap - out.count
            var b = header(len, SCM_CREDENTIALS_) + [UInt8](repeating: 0, count: 12)
            put32(&b, 16, c.pid); put32(&b, 20, Int32(bitPattern: c.uid)); put32(&b, 24, Int32(bitPattern: c.gid))
            out += b.prefix(len)
            truncated = true
        } else {
            truncated = true
        }
    }
    if let a = anc, !a.files.isEmpty {
        let room = (cap - out.count - 16) / 4
        let n = max(0, min(room, a.files.count))
        if n < a.files.count { truncated = true }
        var fds: [Int32] = []
        for f in a.files.prefix(n) {
            let fd = t.fds.install(f, cloexec: cloexec, limit: fdLimit(t))
            if fd < 0 { truncated = true; break }
            fds.append(Int32(fd))
        }
        if !peek { a.discard() } // the in-flight references (installed ones keep theirs)
        if !fds.isEmpty {
            var b = header(16 + 4 * fds.count, SCM_RIGHTS_)
            for fd in fds { b += [0, 0, 0, 0]; put32(&b, b.count - 4, fd) }
            while b.count % 8 != 0 && out.count + b.count < cap { b.append(0) }
            out += b
        }
    }
    return (out, truncated)
}

private func unixBind(_ t: Task, _ f: FileDescription, _ a: Args) -> Int {
    if f is UnixSocketFD {
        // A socket pair's end takes no name here (Linux would bind it). The
        // address is still checked first, and the path's directory, as
        // Linux's unix_bind does before it looks at the socket: a missing
        // directory is ENOENT, not EINVAL.
        switch readUnixAddr(t, a.a1, Int(a.uint(2))) {
        case .success(let name) where name.first != 0:
            if case .failure(let e) = t.kernel.vfs.resolveParent(t.fs, start: t.fs.cwd, name, searcher: t.searcher) { return e.ret }
        case .success: break
        case .failure(let e): return e.ret
        }
        return err(EINVAL)
    }
    guard let s = f as? UnixSockFD else { return err(ENOTSOCK) }
    // The family alone: autobind (Linux's unix_autobind), a no-op when bound.
    if a.uint(2) == 2, t.copyIn(a.a1, 2) == [UInt8(AF_UNIX), 0] {
        if s.name == nil { unixAutobind(t, s) }
        return 0
    }
    if s.name != nil { return err(EINVAL) }   // connected or not, as Linux
    let name: [UInt8]
    switch readUnixAddr(t, a.a1, Int(a.uint(2))) { case .success(let n): name = n; case .failure(let e): return e.ret }
    let names = t.kernel.unixNames
    if name.first == 0 {
        let key = UnixNames.AbstractKey(net: s.net.unixKey, name: name)
        if names.abstract[key] != nil { return err(EADDRINUSE) }
        names.abstract[key] = s
    } else {
        // A socket file, made like mknod(S_IFSOCK).
        switch t.kernel.vfs.resolveParent(t.fs, start: t.fs.cwd, name, searcher: t.searcher) {
        case .success(let (dir, last)):
            if case .success = dir.dentry.child(last) { return err(EADDRINUSE) }
            if !t.mayAccess(dir.inode, 3) { return err(EACCES) }
            if let e = t.landlockDenies(dir, Landlock.makeSock) { return e.ret }
            let c = t.creds
            switch dir.inode.mknod(last, mode: S_IFSOCK_ | ((s.sockInode?.mode ?? 0o777) & 0o777 & ~t.fs.umask), uid: c.fsuid, gid: c.fsgid) {
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

/// An abstract name of five hex digits nobody holds.
private func unixAutobind(_ t: Task, _ s: UnixSockFD) {
    var n: [UInt8]
    repeat { n = [0] + Array(hex(UInt32.random(in: 0...0xfffff), width: 5).utf8) }
        while t.kernel.unixNames.abstract[UnixNames.AbstractKey(net: s.net.unixKey, name: n)] != nil
    t.kernel.unixNames.abstract[UnixNames.AbstractKey(net: s.net.unixKey, name: n)] = s
    s.name = n
}

private func unixListen(_ t: Task, _ f: FileDescription, _ backlog: Int32) -> Int {
    guard let s = f as? UnixSockFD else { return err(f is UnixSocketFD ? EINVAL : ENOTSOCK) }
    if s.type == SOCK_DGRAM_ { return err(EOPNOTSUPP) }
    // No listening on an unbound socket (Linux's unix_listen: EINVAL).
    if s.conn != nil || s.name == nil { return err(EINVAL) }
    s.listening = true
    // Taken as unsigned and bounded by somaxconn (4096), as Linux's listen.
    s.maxBacklog = Int(min(UInt32(bitPattern: backlog), 4096))
    s.waiters.notifyAll()
    s.listenCred = t.unixCred
    return 0
}

private func unixConnect(_ t: Task, _ f: FileDescription, _ a: Args) -> Int {
    guard let s = f as? UnixSockFD else { return err(f is UnixSocketFD ? EISCONN : ENOTSOCK) }
    if s.conn != nil { return err(EISCONN) }
    if s.listening { return err(EINVAL) }
    if s.type == SOCK_DGRAM_ {
        // A default destination; AF_UNSPEC dissolves it.
        if a.uint(2) >= 2, let fam = t.copyIn(a.a1, 2), fam == [0, 0] { s.peerName = nil; s.peer = nil; return 0 }
        let name: [UInt8]
        switch readUnixAddr(t, a.a1, Int(a.uint(2))) { case .success(let n): name = n; case .failure(let e): return e.ret }
        switch unixSocketNamed(t, name, from: s) {
        case .success(let target):
            if target.type != SOCK_DGRAM_ { return err(name.first == 0 ? ECONNREFUSED : EPROTOTYPE) }
            // One connected elsewhere takes nothing from us (unix_may_send).
            if let tp = target.peer, tp !== s { return err(EPERM) }
            s.peer = target
            s.peerName = target.name
            return 0
        case .failure(let e): return e.ret
        }
    }
    let name: [UInt8]
    switch readUnixAddr(t, a.a1, Int(a.uint(2))) { case .success(let n): name = n; case .failure(let e): return e.ret }
    let l: UnixSockFD
    switch unixSocketNamed(t, name, from: s) { case .success(let x): l = x; case .failure(let e): return e.ret }
    // An abstract name is only found among sockets of one's type.
    if l.type != s.type { return err(name.first == 0 ? ECONNREFUSED : EPROTOTYPE) }
    if !l.listening { return err(ECONNREFUSED) }
    if l.shutRead { return err(ECONNREFUSED) }
    // A full queue (more than the backlog): EAGAIN without waiting, else
    // wait for an accept (Linux's unix_wait_for_peer).
    while l.backlog.count > l.maxBacklog {
        if s.nonblocking { return err(EAGAIN) }
        let w = l.wait(t, timeoutNs: s.sndTimeoutNs) { l.backlog.count > l.maxBacklog && l.listening && !l.released }
        if w < 0 { return w }
        if !l.listening || l.released { return err(ECONNREFUSED) }
    }
    let (mine, theirs) = UnixSocketFD.pair(type: s.type, flags: O_RDWR)
    mine.peerCred = l.listenCred
    theirs.peerCred = t.unixCred
    mine.rxAnc.passcred = s.passcred
    theirs.rxAnc.passcred = l.passcred
    mine.opts = s.opts
    mine.setSndbuf(s.opts.sndbuf)
    s.conn = mine
    s.peerName = l.name
    let accepted = UnixSockFD(kernel: t.kernel, type: s.type, flags: O_RDWR, conn: theirs)
    accepted.name = l.name
    accepted.net = l.net
    accepted.peerName = s.name
    accepted.peer = s
    accepted.passcred = l.passcred
    l.backlog.append(accepted)
    l.waiters.notifyAll()
    return 0
}

private func unixAccept(_ t: Task, _ f: FileDescription, _ a: Args, _ flags: Int32) -> Int {
    guard let s = f as? UnixSockFD else { return err(f is UnixSocketFD ? EINVAL : ENOTSOCK) }
    if s.type == SOCK_DGRAM_ { return err(EOPNOTSUPP) }
    if !s.listening { return err(EINVAL) }
    while s.backlog.isEmpty {
        if s.nonblocking { return err(EAGAIN) }
        // A listener shut down for reading accepts nothing more (Linux: EINVAL).
        if s.shutRead { return err(EINVAL) }
        let w = s.wait(t, timeoutNs: s.rcvTimeoutNs) { s.backlog.isEmpty && !s.shutRead }
        if w < 0 { return w }
    }
    let c = s.backlog.removeFirst()
    s.waiters.notifyAll()   // a connect waiting for room
    c.flags = O_RDWR | (flags & O_NONBLOCK)
    // The address length is read once the connection is taken; a bad one
    // fails the call and the connection is dropped (Linux's move_addr_to_user).
    if a.a1 != 0 {
        guard let len = t.readI32(a.a2) else { c.release(); return err(EFAULT) }
        if len < 0 { c.release(); return err(EINVAL) }
    }
    let fd = t.fds.install(c, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
    if fd < 0 { c.release(); return fd }
    if a.a1 != 0 { _ = writeSockaddr(t, a.a1, a.a2, unixSockaddr(c.peerAddress)) }
    return fd
}

private func unixSetsockopt(_ t: Task, _ f: FileDescription, _ a: Args) -> Int {
    guard f is UnixSockFD || f is UnixSocketFD else { return err(ENOTSOCK) }
    // AF_UNIX has no options beyond SOL_SOCKET's (Linux: no setsockopt op).
    if a.int(1) != SOL_SOCKET { return err(EOPNOTSUPP) }
    switch a.int(2) {
    case SO_PASSCRED_:
        if a.int(4) < 4 { return err(EINVAL) }
        guard let v = t.readI32(a.a3) else { return err(EFAULT) }
        if let u = f as? UnixSockFD { u.passcred = v != 0; u.conn?.rxAnc.passcred = v != 0 }
        if let s = f as? UnixSocketFD { s.rxAnc.passcred = v != 0 }
        return 0
    case SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD:
        if a.int(4) < 16 { return err(EINVAL) }
        guard let b = t.copyIn(a.a3, 16) else { return err(EFAULT) }
        let sec = Int64(bitPattern: get64(b, 0)), usec = Int64(bitPattern: get64(b, 8))
        if usec < 0 || usec >= 1_000_000 { return err(EDOM) }
        let ns = sec < 0 ? -1 : sec &* 1_000_000_000 &+ usec * 1000   // negative: never wait (Linux: timeo 0)
        let rcv = a.int(2) == SO_RCVTIMEO_OLD
        if let u = f as? UnixSockFD { if rcv { u.rcvTimeoutNs = ns } else { u.sndTimeoutNs = ns } }
        if let s = f as? UnixSocketFD { if rcv { s.rcvTimeoutNs = ns } else { s.sndTimeoutNs = ns } }
        return 0
    default:
        return unixSetKeptOption(t, f, a)
    }
}

/// The SOL_SOCKET options a Unix socket keeps (for getsockopt, and
/// SO_SNDBUF for message sockets' room).
private func unixSetKeptOption(_ t: Task, _ f: FileDescription, _ a: Args) -> Int {
    let name = a.int(2)
    let size = name == SO_LINGER ? 8 : 4
    if a.int(4) < Int32(size) { return err(EINVAL) }
    guard let b = t.copyIn(a.a3, size) else { return err(EFAULT) }
    let v = Int32(bitPattern: get32(b, 0))
    let u = f as? UnixSockFD
    var o = u?.opts ?? (f as! UnixSocketFD).opts
    switch name {
    case SO_LINGER: o.linger = v != 0 ? max(0, Int32(bitPattern: get32(b, 4))) : nil
    case SO_SNDBUF: o.sndbuf = UnixSockOpts.buffer(v, max: UnixSockOpts.wmemMax, min: UnixSockOpts.minSndbuf)
    case SO_RCVBUF: o.rcvbuf = UnixSockOpts.buffer(v, max: UnixSockOpts.rmemMax, min: UnixSockOpts.minRcvbuf)
    case SO_RCVLOWAT: o.rcvlowat = v < 0 ? Int32.max : max(v, 1)   // Linux: 0 is 1, negative INT_MAX
    case SO_PRIORITY: return 0   // accepted, without effect here
    case let n where UnixSockOpts.booleans.contains(n):
        if v != 0 { o.on.insert(n) } else { o.on.remove(n) }
    default: return err(ENOPROTOOPT)
    }
    if let u = u { u.opts = o; u.waiters.notifyAll() }
    if let c = unixConnected(f) { c.opts = o; c.setSndbuf(o.sndbuf) }
    return 0
}

private func unixGetsockopt(_ t: Task, _ f: FileDescription, _ a: Args) -> Int {
    guard f is UnixSockFD || f is UnixSocketFD else { return err(ENOTSOCK) }
    if a.int(1) != SOL_SOCKET { return err(EOPNOTSUPP) }              // as setsockopt
    let u = f as? UnixSockFD
    let conn = unixConnected(f)
    guard let len = t.readI32(a.a4) else { return err(EFAULT) }
    if len < 0 { return err(EINVAL) }
    if a.int(2) == SO_PEERCRED_ {
        // A listener's are its own (from listen); a socket neither
        // connected nor listening has none: pid 0, ids -1 (cred_to_ucred).
        var c = conn?.peerCred ?? (u?.listening == true ? u!.listenCred : UnixCred(pid: 0, uid: UInt32.max, gid: UInt32.max))
        if c.uid != UInt32.max { c.uid = t.creds.userNS.showUID(c.uid) }
        if c.gid != UInt32.max { c.gid = t.creds.userNS.showGID(c.gid) }
        c.pid = t.vpidIfSeen(c.pid)                                     // as the caller's pid namespace numbers it, 0 outside
        var b = [UInt8](repeating: 0, count: 12)
        put32(&b, 0, c.pid); put32(&b, 4, Int32(bitPattern: c.uid)); put32(&b, 8, Int32(bitPattern: c.gid))
        let n = min(Int(len), 12)
        return t.copyOut(a.a3, Array(b.prefix(n))) && t.writeI32(a.a4, Int32(n)) ? 0 : err(EFAULT)
    }
    if a.int(2) == SO_RCVTIMEO_OLD || a.int(2) == SO_SNDTIMEO_OLD {
        let rcv = a.int(2) == SO_RCVTIMEO_OLD
        let ns = max(0, u.map { rcv ? $0.rcvTimeoutNs : $0.sndTimeoutNs } ?? conn.map { rcv ? $0.rcvTimeoutNs : $0.sndTimeoutNs } ?? 0)
        var b = [UInt8](repeating: 0, count: 16)
        put64(&b, 0, UInt64(ns / 1_000_000_000)); put64(&b, 8, UInt64(ns % 1_000_000_000 / 1000))
        let n = min(Int(len), 16)
        return t.copyOut(a.a3, Array(b.prefix(n))) && t.writeI32(a.a4, Int32(n)) ? 0 : err(EFAULT)
    }
    var v: Int32
    switch a.int(2) {
    case SO_TYPE: v = u?.type ?? conn?.type ?? SOCK_STREAM_
    case SO_ERROR: v = conn?.takeReset() == true ? ECONNRESET : 0
    case SO_DOMAIN: v = AF_UNIX
    case SO_PROTOCOL: v = 0
    case SO_SNDBUF: v = Int32(u?.opts.sndbuf ?? conn?.opts.sndbuf ?? 212_992)
    case SO_RCVBUF: v = Int32(u?.opts.rcvbuf ?? conn?.opts.rcvbuf ?? 212_992)
    case SO_LINGER:
        let l = u?.opts.linger ?? conn?.opts.linger
        var b = [UInt8](repeating: 0, count: 8)
        put32(&b, 0, l == nil ? 0 : 1); put32(&b, 4, l ?? 0)
        let n = min(Int(len), 8)
        return t.copyOut(a.a3, Array(b.prefix(n))) && t.writeI32(a.a4, Int32(n)) ? 0 : err(EFAULT)
    case let n where UnixSockOpts.booleans.contains(n):
        v = (u?.opts.on ?? conn?.opts.on ?? []).contains(n) ? 1 : 0
    case SO_ACCEPTCONN: v = u?.listening == true ? 1 : 0
    case SO_RCVLOWAT: v = u?.opts.rcvlowat ?? conn?.opts.rcvlowat ?? 1
    case SO_PASSCRED_: v = (u?.passcred ?? conn?.rxAnc.passcred ?? false) ? 1 : 0
    default: return err(ENOPROTOOPT)
    }
    if len < 4 { return err(EINVAL) }
    return t.writeI32(a.a3, v) && t.writeI32(a.a4, 4) ? 0 : err(EFAULT)
}
