// AF_INET and AF_INET6 sockets made in a network namespace of the
// application's own (Kernel/NetNamespaces.swift): loopback endpoints in
// Sentry memory. They never become host sockets, so nothing an application
// does in such a namespace reaches the host's network code.
//
// The bytes travel as over AF_UNIX (FSImpl/UnixListener.swift,
// UnixSocket.swift): each endpoint wraps a UnixSockFD of the matching type
// (a TCP connection is a socket pair, the listener queues the accepting end;
// a UDP socket's datagrams queue on it with the sender's inet address), so
// reads, writes, shutdown, SO_RCVTIMEO, readiness and epoll behave as they
// do there. What is inet is here: addresses (IPv4 kept as v4-mapped IPv6
// inside), ports allocated per namespace (from its ip_local_port_range for
// autobind), the checks Linux makes (only the namespace's addresses and the
// wildcards bind, other addresses EADDRNOTAVAIL; while lo is down
// 127.0.0.0/8 binds but does not route and ::1 does neither), where a
// destination is (NetNamespace.route: this namespace, the other end of a
// veth pair, or ENETUNREACH / EHOSTUNREACH; a datagram to a subnet no host
// answers in is dropped), SO_REUSEADDR /
// SO_REUSEPORT sharing, a non-blocking connect's EINPROGRESS then SO_ERROR
// (a loopback handshake is over by the time connect returns, as on Linux),
// and the socket options a loopback endpoint has no use for, kept for
// getsockopt.

import Glibc

final class LoopbackSockFD: FileDescription {
    /// An address and port; the address as 16 bytes (IPv4 v4-mapped).
    struct Addr: Equatable { var ip: [UInt8]; var port: UInt16 }

    let ns: NetNamespace
    let family: Int32
    let type: Int32
    let proto: Int32
    let inner: UnixSockFD
    var local: Addr?
    var peer: Addr?
    var ownerUID: UInt32 = 0
    /// SO_ERROR: a refused connect's (non-blocking) or an unreachable UDP peer's.
    var soError: Int32 = 0
    /// A non-blocking connect returned EINPROGRESS.
    var connecting = false
    var v6only = false
    /// Connections made to this listener, not yet accepted (their inner
    /// sockets are the UnixSockFD backlog, in the same order).
    var pending: [LoopbackSockFD] = []
    /// Options kept for getsockopt only, by level << 32 | name.
    var kept: [Int64: [UInt8]] = [:]

    init(kernel: Kernel, ns: NetNamespace, family: Int32, type: Int32, proto: Int32, flags: Int32, conn: UnixSocketFD? = nil) {
        self.ns = ns; self.family = family; self.type = type; self.proto = proto
        let u = UnixSockFD(kernel: kernel, type: type, flags: O_RDWR, conn: conn)
        kernel.unixNames.forget(u)    // not an AF_UNIX socket: no /proc/net/unix line
        inner = u
        super.init(flags: flags, path: nil)
    }

    /// socket(2) in a namespace made inside the sandbox.
    static func create(_ t: Task, family: Int32, type: Int32, proto: Int32, flags: Int32, cloexec: Bool) -> Int {
        let p: Int32
        switch type {
        case SOCK_STREAM_:
            if proto != 0 && proto != 6 { return err(EPROTONOSUPPORT) }
            p = 6
        case SOCK_DGRAM_:
            if proto != 0 && proto != 17 { return err(EPROTONOSUPPORT) }
            p = 17
        case 3: return err(t.creds.capable(Cap.netRaw, in: t.net.owner) ? EPROTONOSUPPORT : EPERM)   // SOCK_RAW: not offered
        case 5: return err(ESOCKTNOSUPPORT)                                  // SOCK_SEQPACKET
        case 11...: return err(EINVAL)
        default: return err(ESOCKTNOSUPPORT)
        }
        let s = LoopbackSockFD(kernel: t.kernel, ns: t.net, family: family, type: type, proto: p, flags: flags)
        s.ownerUID = t.creds.euid
        let r = t.fds.install(s, cloexec: cloexec, limit: fdLimit(t))
        if r < 0 { s.release() }
        return r
    }

    // MARK: - Addresses

    static let v4Any: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
    static let v6Any = [UInt8](repeating: 0, count: 16)
    static let v4Loopback: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]
    static let v6Loopback: [UInt8] = [UInt8](repeating: 0, count: 15) + [1]
    static func isMapped(_ ip: [UInt8]) -> Bool { ip[0..<10].allSatisfy { $0 == 0 } && ip[10] == 0xff && ip[11] == 0xff }
    static func isAny(_ ip: [UInt8]) -> Bool { ip == v4Any || ip == v6Any }
    static func isLoopback(_ ip: [UInt8]) -> Bool { (isMapped(ip) && ip[12] == 127) || ip == v6Loopback }

    /// A bound address `bound` (of a socket with IPV6_V6ONLY `v6only`) receives for `ip`.
    static func receives(_ bound: [UInt8], v6only: Bool, _ ip: [UInt8]) -> Bool {
        if bound == ip { return true }
        if bound == v4Any { return isMapped(ip) }
        if bound == v6Any { return !isMapped(ip) || !v6only }
        return false
    }

    /// The application's sockaddr, in this socket's family.
    func sockaddr(_ a: Addr?) -> [UInt8] {
        LoopbackSockFD.sockaddr(family, a ?? Addr(ip: family == AF_INET ? LoopbackSockFD.v4Any : LoopbackSockFD.v6Any, port: 0))
    }
    static func sockaddr(_ family: Int32, _ a: Addr) -> [UInt8] {
        let port = [UInt8(a.port >> 8), UInt8(a.port & 0xff)]
        if family == AF_INET { return [UInt8(AF_INET), 0] + port + Array(a.ip[12..<16]) + [UInt8](repeating: 0, count: 8) }
        return [UInt8(AF_INET6), 0] + port + [0, 0, 0, 0] + a.ip + [0, 0, 0, 0]
    }

    /// An application sockaddr for this socket's family. `unspecOK`:
    /// bind's AF_UNSPEC with INADDR_ANY (Linux takes it for AF_INET).
    func parse(_ b: [UInt8]) -> Result<Addr, Errno> {
        let fam = b.count >= 2 ? Int32(b[0]) | Int32(b[1]) << 8 : -1
        if family == AF_INET {
            if b.count < 16 { return .failure(Errno(EINVAL)) }
            if fam != AF_INET && !(fam == AF_UNSPEC && b[4..<8].allSatisfy { $0 == 0 }) { return .failure(Errno(EAFNOSUPPORT)) }
            return .success(Addr(ip: Array(LoopbackSockFD.v4Any[0..<12]) + b[4..<8], port: UInt16(b[2]) << 8 | UInt16(b[3])))
        }
        if b.count < 24 { return .failure(Errno(EINVAL)) }
        if fam != AF_INET6 { return .failure(Errno(EAFNOSUPPORT)) }
        let ip = Array(b[8..<24])
        if v6only && LoopbackSockFD.isMapped(ip) { return .failure(Errno(ENETUNREACH)) }
        return .success(Addr(ip: ip, port: UInt16(b[2]) << 8 | UInt16(b[3])))
    }

    /// /proc/net/{tcp,udp}[6]'s address column (hex, host order for IPv4).
    func procAddr(_ a: Addr?) -> String {
        let ip = a?.ip ?? (family == AF_INET ? LoopbackSockFD.v4Any : LoopbackSockFD.v6Any)
        let port = hex(UInt32(a?.port ?? 0), width: 4)
        var s = ""
        if family == AF_INET { s = ip[12..<16].reversed().map { hex(UInt32($0), width: 2) }.joined() }
        else { for w in 0..<4 { s += ip[w * 4..<w * 4 + 4].reversed().map { hex(UInt32($0), width: 2) }.joined() } }
        return (s + ":" + port).uppercased()
    }

    /// The source address for a destination routed as `r`: the bound
    /// address, else the route's.
    private func source(_ r: NetNamespace.Route) -> [UInt8] {
        if let l = local, !LoopbackSockFD.isAny(l.ip) { return l.ip }
        return r.source
    }

    /// A destination as routed: the wildcard means this host; then
    /// NetNamespace.route says which namespace it is in, if any.
    private func route(_ d: inout Addr) -> Result<NetNamespace.Route, Errno> {
        if d.ip == LoopbackSockFD.v4Any { d.ip = LoopbackSockFD.v4Loopback }
        if d.ip == LoopbackSockFD.v6Any { d.ip = LoopbackSockFD.v6Loopback }
        // While lo is down ::1 is no address at all (Linux: EADDRNOTAVAIL).
        if d.ip == LoopbackSockFD.v6Loopback && !ns.loUp { return .failure(Errno(EADDRNOTAVAIL)) }
        return ns.route(d.ip)
    }

    private func option(_ name: Int32) -> Bool { inner.opts.on.contains(name) }

    /// Another bound socket already holds `a` (Linux's bind conflict:
    /// overlapping addresses on one port, unless both asked to share).
    private func inUse(_ a: Addr) -> Bool {
        for o in ns.bound[NetNamespace.PortKey(proto: proto, port: a.port)] ?? [] where o !== self {
            guard let ol = o.local else { continue }
            let overlap = LoopbackSockFD.receives(ol.ip, v6only: o.v6only, a.ip) || LoopbackSockFD.receives(a.ip, v6only: v6only, ol.ip)
            if !overlap { continue }
            if option(15) && o.option(15) { continue }                                        // SO_REUSEPORT
            if option(SO_REUSEADDR) && o.option(SO_REUSEADDR) && (proto == 17 || !o.inner.listening) { continue }
            return true
        }
        return false
    }

    private func take(_ a: Addr) {
        local = a
        ns.bound[NetNamespace.PortKey(proto: proto, port: a.port), default: []].append(self)
    }

    /// Binds to an ephemeral port on `ip` (autobind), or fails EAGAIN when none is free.
    private func autobind(_ ip: [UInt8]) -> Int {
        if local != nil { return 0 }
        guard let p = ns.ephemeralPort(proto: proto) else { return err(EAGAIN) }
        take(Addr(ip: ip, port: p))
        return 0
    }

    func bind(_ t: Task, _ b: [UInt8]) -> Int {
        var a: Addr
        switch parse(b) { case .success(let x): a = x; case .failure(let e): return e.ret }
        if local != nil { return err(EINVAL) }
        // 127.0.0.0/8 is local even while lo is down; ::1 only once it is up (as Linux).
        if !LoopbackSockFD.isAny(a.ip) && !ns.isLocal(a.ip) { return err(EADDRNOTAVAIL) }
        if a.port == 0 {
            guard let p = ns.ephemeralPort(proto: proto) else { return err(EADDRINUSE) }
            a.port = p
        } else {
            if a.port < 1024 && !t.creds.capable(Cap.netBindService, in: ns.owner) { return err(EACCES) }
            if inUse(a) { return err(EADDRINUSE) }
        }
        take(a)
        return 0
    }

    func listen(_ backlog: Int32) -> Int {
        if type != SOCK_STREAM_ { return err(EOPNOTSUPP) }
        if inner.conn != nil || connecting { return err(EINVAL) }
        if local == nil {
            let r = autobind(family == AF_INET ? LoopbackSockFD.v4Any : LoopbackSockFD.v6Any)
            if r < 0 { return err(EADDRINUSE) }
        }
        // Two listeners on one address only with SO_REUSEPORT on both.
        if !inner.listening, let l = local {
            for o in ns.bound[NetNamespace.PortKey(proto: proto, port: l.port)] ?? [] where o !== self && o.inner.listening {
                guard let ol = o.local, !(option(15) && o.option(15)) else { continue }
                if LoopbackSockFD.receives(ol.ip, v6only: o.v6only, l.ip) || LoopbackSockFD.receives(l.ip, v6only: v6only, ol.ip) { return err(EADDRINUSE) }
            }
        }
        inner.listening = true
        inner.shutRead = false
        inner.maxBacklog = Int(min(UInt32(bitPattern: backlog), 4096))
        inner.waiters.notifyAll()
        return 0
    }

    /// The listener of namespace `n` a connection to `d` reaches, if any.
    private func listener(for d: Addr, in n: NetNamespace) -> LoopbackSockFD? {
        let all = n.bound[NetNamespace.PortKey(proto: 6, port: d.port)] ?? []
        let ls = all.filter { $0.inner.listening && !$0.inner.released && $0.local.map { LoopbackSockFD.receives($0.ip, v6only: false, d.ip) } == true }
        // A listener on the exact address before a wildcard one; the v6only one refuses v4.
        return ls.first { $0.local?.ip == d.ip } ?? ls.first { !($0.v6only && LoopbackSockFD.isMapped(d.ip)) }
    }

    func connect(_ t: Task, _ b: [UInt8]) -> Int {
        inner.flags = flags
        // AF_UNSPEC dissolves the association (Linux's disconnect).
        if b.count >= 2 && b[0] == 0 && b[1] == 0 {
            if type == SOCK_DGRAM_ { peer = nil }
            return 0
        }
        var d: Addr
        switch parse(b) { case .success(let x): d = x; case .failure(let e): return e.ret }
        if type == SOCK_DGRAM_ {
            let r: NetNamespace.Route
            switch route(&d) { case .success(let x): r = x; case .failure(let e): return e.ret }
            if local == nil { let b = autobind(source(r)); if b < 0 { return b } }
            else if let l = local, LoopbackSockFD.isAny(l.ip) { local = Addr(ip: source(r), port: l.port) }
            peer = d
            soError = 0
            return 0
        }
        if inner.listening { return err(EISCONN) }
        if inner.conn != nil {
            // The first connect after a non-blocking one went through reports it done.
            if connecting { connecting = false; return 0 }
            return err(EISCONN)
        }
        if connecting {
            // The non-blocking attempt failed: its error, once.
            connecting = false
            let e = soError
            soError = 0
            return err(e != 0 ? e : ECONNABORTED)   // its error already read: Linux's ECONNABORTED
        }
        if d.port == 0 { return err(ECONNREFUSED) }
        let r: NetNamespace.Route
        switch route(&d) { case .success(let x): r = x; case .failure(let e): return e.ret }
        guard let to = r.ns else { return err(EHOSTUNREACH) }
        guard let l = listener(for: d, in: to) else { return refused() }
        while l.inner.backlog.count > l.inner.maxBacklog {
            if nonblocking { return err(EAGAIN) }
            let w = l.inner.wait(t, timeoutNs: inner.sndTimeoutNs) { l.inner.backlog.count > l.inner.maxBacklog && l.inner.listening && !l.inner.released }
            if w < 0 { return w }
            if !l.inner.listening || l.inner.released { return refused() }
        }
        if local == nil { let b = autobind(source(r)); if b < 0 { return b } }
        else if let lo = local, LoopbackSockFD.isAny(lo.ip) { local = Addr(ip: source(r), port: lo.port) }
        let (mine, theirs) = UnixSocketFD.pair(type: SOCK_STREAM_, flags: O_RDWR)
        mine.peerCred = l.inner.listenCred
        theirs.peerCred = t.unixCred
        mine.opts = inner.opts
        mine.setSndbuf(inner.opts.sndbuf)
        mine.rcvTimeoutNs = inner.rcvTimeoutNs; mine.sndTimeoutNs = inner.sndTimeoutNs
        let accepted = LoopbackSockFD(kernel: t.kernel, ns: l.ns, family: l.family, type: SOCK_STREAM_, proto: 6, flags: O_RDWR, conn: theirs)
        accepted.ownerUID = l.ownerUID
        accepted.local = Addr(ip: d.ip, port: d.port)
        accepted.peer = local
        accepted.inner.opts = l.inner.opts
        accepted.kept = l.kept
        l.ns.bound[NetNamespace.PortKey(proto: 6, port: d.port), default: []].append(accepted)
        inner.conn = mine
        peer = d
        l.pending.append(accepted)
        l.inner.backlog.append(accepted.inner)
        l.inner.waiters.notifyAll()
        inner.waiters.notifyAll()
        if nonblocking { connecting = true; return err(EINPROGRESS) }
        return 0
    }

    /// Nobody listens there: ECONNREFUSED, or for a non-blocking connect
    /// EINPROGRESS and the error in SO_ERROR.
    private func refused() -> Int {
        if !nonblocking { return err(ECONNREFUSED) }
        connecting = true
        soError = ECONNREFUSED
        inner.waiters.notifyAll()
        return err(EINPROGRESS)
    }

    /// accept4: the oldest pending connection.
    func accept(_ t: Task, flags: Int32) -> (Int, LoopbackSockFD?) {
        if type != SOCK_STREAM_ { return (err(EOPNOTSUPP), nil) }
        if !inner.listening { return (err(EINVAL), nil) }
        while pending.isEmpty {
            if nonblocking { return (err(EAGAIN), nil) }
            if inner.shutRead { return (err(EINVAL), nil) }
            let w = inner.wait(t, timeoutNs: inner.rcvTimeoutNs) { self.pending.isEmpty && !self.inner.shutRead }
            if w < 0 { return (w, nil) }
        }
        let c = pending.removeFirst()
        if !inner.backlog.isEmpty { inner.backlog.removeFirst() }
        inner.waiters.notifyAll()
        c.flags = O_RDWR | (flags & O_NONBLOCK)
        return (0, c)
    }

    func name(peer wantPeer: Bool) -> Result<[UInt8], Errno> {
        if wantPeer {
            if type == SOCK_STREAM_ && inner.conn == nil { return .failure(Errno(ENOTCONN)) }
            guard let p = peer else { return .failure(Errno(ENOTCONN)) }
            return .success(sockaddr(p))
        }
        return .success(sockaddr(local))
    }

    func shutdown(_ how: Int32) -> Int {
        if let c = inner.conn { c.shutdown(how); inner.waiters.notifyAll(); return 0 }
        if inner.listening || (type == SOCK_DGRAM_ && peer != nil) { inner.shutdownUnconnected(how); return 0 }
        return err(ENOTCONN)
    }

    // MARK: - Data

    func send(_ t: Task, _ iov: [(UInt64, Int)], to: [UInt8]?, flags: Int32) -> Int {
        inner.flags = self.flags
        let dontWait = flags & MSG_DONTWAIT_ != 0
        if type == SOCK_STREAM_ {
            guard let c = unixConnected(inner) else {
                if flags & MSG_NOSIGNAL_ == 0 { t.sendSelfSignal(SIGPIPE) }
                return err(soError != 0 ? takeError() : EPIPE)
            }
            guard let data = gather(t, iov, cap: 4 << 20) else { return err(EFAULT) }
            return c.sendBytes(t, data, anc: nil, dontWait: dontWait, noSignal: flags & MSG_NOSIGNAL_ != 0)
        }
        let total = iov.reduce(0) { $0 + $1.1 }
        if total > (family == AF_INET ? 65507 : 65527) { return err(EMSGSIZE) }
        guard let data = gather(t, iov, cap: total) else { return err(EFAULT) }
        return sendDatagram(t, data, to: to)
    }

    private func takeError() -> Int32 { let e = soError; soError = 0; return e }

    func sendDatagram(_ t: Task, _ data: [UInt8], to: [UInt8]?) -> Int {
        var d: Addr
        if let b = to, !b.isEmpty {
            switch parse(b) { case .success(let x): d = x; case .failure(let e): return e.ret }
        } else if let p = peer {
            if soError != 0 { return err(takeError()) }
            d = p
        } else {
            return err(EDESTADDRREQ)
        }
        if d.port == 0 { return err(EINVAL) }
        let r: NetNamespace.Route
        switch route(&d) { case .success(let x): r = x; case .failure(let e): return e.ret }
        if inner.shutWrite { return err(EPIPE) }
        if local == nil { let b = autobind(family == AF_INET ? LoopbackSockFD.v4Any : LoopbackSockFD.v6Any); if b < 0 { return b } }
        guard let there = r.ns else { return data.count }   // no host on that link's subnet: the datagram is lost
        let from = Addr(ip: source(r), port: local!.port)
        let all = there.bound[NetNamespace.PortKey(proto: 17, port: d.port)] ?? []
        let candidates = all.filter { o in
            guard let ol = o.local, LoopbackSockFD.receives(ol.ip, v6only: o.v6only, d.ip), !o.inner.shutRead else { return false }
            if let op = o.peer, op != from { return false }   // connected elsewhere
            return true
        }
        // The exact address before the wildcard; among equals the last bound (SO_REUSEADDR).
        guard let target = candidates.last(where: { $0.local?.ip == d.ip }) ?? candidates.last else {
            // Port unreachable: a connected socket learns it (ECONNREFUSED next time).
            if to == nil || to?.isEmpty == true { soError = ECONNREFUSED }
            return data.count
        }
        let q = target.inner
        if q.datagrams.count < UnixSockFD.datagramQueueMax && q.datagrams.reduce(0, { $0 + $1.data.count }) + data.count <= q.opts.rcvbuf {
            q.datagrams.append((data, LoopbackSockFD.sockaddr(target.family, from), nil, inner))
            inner.inFlight += data.count
            q.waiters.notifyAll()
        }
        return data.count
    }

    struct Received { var ret: Int; var from: [UInt8]?; var msgFlags: Int32 }

    func recv(_ t: Task, _ iov: [(UInt64, Int)], flags: Int32) -> Received {
        inner.flags = self.flags
        let total = iov.reduce(0) { $0 + $1.1 }
        let peek = flags & MSG_PEEK_ != 0, dontWait = flags & MSG_DONTWAIT_ != 0
        if type == SOCK_STREAM_ {
            guard let c = unixConnected(inner) else { return Received(ret: err(soError != 0 ? takeError() : ENOTCONN), from: nil, msgFlags: 0) }
            let r = c.recvBytes(t, max: min(total, 4 << 20), peek: peek, dontWait: dontWait, waitAll: flags & MSG_WAITALL_ != 0)
            if r.ret < 0 { return Received(ret: r.ret, from: nil, msgFlags: 0) }
            if !scatter(t, iov, r.data) { return Received(ret: err(EFAULT), from: nil, msgFlags: 0) }
            return Received(ret: r.ret, from: nil, msgFlags: 0)
        }
        if soError != 0 && peer != nil { return Received(ret: err(takeError()), from: nil, msgFlags: 0) }
        let r = inner.recvDatagram(t, max: total, peek: peek, dontWait: dontWait)
        if r.ret < 0 { return Received(ret: r.ret, from: nil, msgFlags: 0) }
        if !scatter(t, iov, r.data) { return Received(ret: err(EFAULT), from: nil, msgFlags: 0) }
        return Received(ret: flags & MSG_TRUNC_ != 0 ? r.full : r.ret, from: r.from, msgFlags: r.truncated ? MSG_TRUNC_ : 0)
    }

    /// read(2) and write(2): a recv or send of one buffer, with no flags.
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        off != nil ? err(ESPIPE) : recv(t, [(buf, count)], flags: 0).ret
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        off != nil ? err(ESPIPE) : send(t, [(buf, count)], to: nil, flags: 0)
    }

    // MARK: - Options

    func setsockopt(_ t: Task, level: Int32, name: Int32, addr: UInt64, len: Int) -> Int {
        if len < 0 { return err(EINVAL) }
        guard let b = t.copyIn(addr, min(len, 64)) else { return err(EFAULT) }
        let v: Int32 = b.count >= 4 ? Int32(bitPattern: get32(b, 0)) : (b.first.map { Int32($0) } ?? 0)
        if level == SOL_SOCKET {
            switch name {
            case SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD:
                if b.count < 16 { return err(EINVAL) }
                let sec = Int64(bitPattern: get64(b, 0)), usec = Int64(bitPattern: get64(b, 8))
                if usec < 0 || usec >= 1_000_000 { return err(EDOM) }
                let ns = sec < 0 ? -1 : sec &* 1_000_000_000 &+ usec * 1000
                if name == SO_RCVTIMEO_OLD { inner.rcvTimeoutNs = ns } else { inner.sndTimeoutNs = ns }
                return 0
            case SO_LINGER:
                if b.count < 8 { return err(EINVAL) }
                inner.opts.linger = v != 0 ? max(0, Int32(bitPattern: get32(b, 4))) : nil
                return 0
            default: break
            }
            if b.count < 4 { return err(EINVAL) }
            switch name {
            case SO_SNDBUF:
                inner.opts.sndbuf = UnixSockOpts.buffer(v, max: UnixSockOpts.wmemMax, min: UnixSockOpts.minSndbuf)
                inner.conn?.setSndbuf(inner.opts.sndbuf)
            case SO_RCVBUF: inner.opts.rcvbuf = UnixSockOpts.buffer(v, max: UnixSockOpts.rmemMax, min: UnixSockOpts.minRcvbuf)
            case SO_RCVLOWAT: inner.opts.rcvlowat = v < 0 ? Int32.max : max(v, 1)
            case let n where UnixSockOpts.booleans.contains(n):
                if v != 0 { inner.opts.on.insert(n) } else { inner.opts.on.remove(n) }
            case SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR, SO_ACCEPTCONN, SO_PEERCRED_: return err(ENOPROTOOPT)
            default: kept[Int64(level) << 32 | Int64(name)] = b
            }
            return 0
        }
        let ipLevel: Int32 = family == AF_INET ? 0 : 41
        guard level == ipLevel || level == 0 || (level == 6 && type == SOCK_STREAM_) || (level == 17 && type == SOCK_DGRAM_) else {
            return err(level == 6 || level == 17 ? EOPNOTSUPP : ENOPROTOOPT)
        }
        if b.count < (level == 0 ? 1 : 4) { return err(EINVAL) }
        if level == 41 && name == 26 {                                   // IPV6_V6ONLY
            if local != nil { return err(EINVAL) }
            v6only = v != 0
            return 0
        }
        kept[Int64(level) << 32 | Int64(name)] = b
        return 0
    }

    func getsockopt(_ t: Task, level: Int32, name: Int32, addr: UInt64, lenAddr: UInt64) -> Int {
        guard let len = t.readI32(lenAddr) else { return err(EFAULT) }
        if len < 0 { return err(EINVAL) }
        func put(_ b: [UInt8]) -> Int {
            let n = min(Int(len), b.count)
            return t.copyOut(addr, Array(b.prefix(n))) && t.writeI32(lenAddr, Int32(n)) ? 0 : err(EFAULT)
        }
        func int(_ v: Int32) -> Int { var b = [UInt8](repeating: 0, count: 4); put32(&b, 0, v); return put(b) }
        let key = Int64(level) << 32 | Int64(name)
        if level == SOL_SOCKET {
            switch name {
            case SO_TYPE: return int(type)
            case SO_DOMAIN: return int(family)
            case SO_PROTOCOL: return int(proto)
            case SO_ERROR: return int(takeError())
            case SO_ACCEPTCONN: return int(inner.listening ? 1 : 0)
            case SO_SNDBUF: return int(Int32(inner.opts.sndbuf))
            case SO_RCVBUF: return int(Int32(inner.opts.rcvbuf))
            case SO_RCVLOWAT: return int(inner.opts.rcvlowat)
            case SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD:
                return copyOutSocketTimeout(t, name == SO_RCVTIMEO_OLD ? inner.rcvTimeoutNs : inner.sndTimeoutNs, addr: addr, lenAddr: lenAddr, len: len)
            case SO_LINGER:
                var b = [UInt8](repeating: 0, count: 8)
                put32(&b, 0, inner.opts.linger == nil ? 0 : 1); put32(&b, 4, inner.opts.linger ?? 0)
                return put(b)
            case let n where UnixSockOpts.booleans.contains(n): return int(option(n) ? 1 : 0)
            default:
                if let b = kept[key] { return put(b) }
                return err(ENOPROTOOPT)
            }
        }
        if level == 41 && name == 26 { return int(v6only ? 1 : 0) }     // IPV6_V6ONLY
        if let b = kept[key] { return put(b) }
        // Linux's defaults for the common ones a loopback endpoint does not model.
        switch (level, name) {
        case (0, 2), (41, 16): return int(64)                            // IP_TTL, IPV6_UNICAST_HOPS
        case (6, 2): return int(65483)                                   // TCP_MAXSEG on lo
        case (6, 4): return int(7200)                                    // TCP_KEEPIDLE
        case (6, 5): return int(75)                                      // TCP_KEEPINTVL
        case (6, 6): return int(9)                                       // TCP_KEEPCNT
        case (6, _), (17, _), (0, _), (41, _): return int(0)
        default: return err(ENOPROTOOPT)
        }
    }

    // MARK: - File

    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd & ~0xff == 0x8900 && cmd != 0x8905 { return ns.ifaceIoctl(t, cmd, arg) }
        if let c = inner.conn { return c.ioctl(t, cmd, arg) }
        if cmd == 0x541B {                                               // FIONREAD
            return t.writeI32(arg, Int32(type == SOCK_DGRAM_ ? inner.datagrams.first?.data.count ?? 0 : 0)) ? 0 : err(EFAULT)
        }
        if cmd == 0x5411 { return t.writeI32(arg, 0) ? 0 : err(EFAULT) }   // SIOCOUTQ
        return err(ENOTTY)
    }

    override var seekable: Bool { false }
    override var statfsMagic: Int64 { 0x534F434B }
    override var readable: Bool { true }
    override var writable: Bool { true }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func readiness() -> Int16 {
        var r = inner.readiness()
        if soError != 0 { r |= Int16(POLLERR) }
        return r
    }
    override func addWaiter(_ t: Waiter) { inner.addWaiter(t) }
    override func removeWaiter(_ t: Waiter) { inner.removeWaiter(t) }
    override func wakeups() -> UInt64 { inner.wakeups() }
    override func registerAsync() -> Bool {
        inner.waiters.addAsync(self)
        if let c = inner.conn { c.rx.pipe.waiters.addAsync(self); c.tx.pipe.waiters.addAsync(self) }
        return true
    }
    override func release() {
        if let l = local { ns.unbind(self, proto: proto, port: l.port) }
        for p in pending { p.release() }    // each lets its own inner socket go
        pending.removeAll()
        inner.backlog.removeAll()
        inner.release()
    }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFSOCK_ | 0o777; s.ino = inner.ino; s.dev = 8; s.blksize = 4096
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("socket:[\(inner.ino)]".utf8) }
}
