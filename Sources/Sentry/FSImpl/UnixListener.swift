// socket(AF_UNIX): unnamed, bound (abstract or path names), listening and
// connected sockets. A stream or seqpacket connection is a socketpair: the
// client keeps one end, the listener queues the other for accept.
// Datagram sockets made by socket() are not pairs: each bound one has a
// queue of datagrams, each with its sender's name and ancillary data;
// connect() only sets the default destination.

import CMoat
import Glibc

final class UnixSockFD: FileDescription {
    let type: Int32
    /// The Landlock domain of the thread that made the socket, which
    /// abstract-socket scoping compares the connecting thread's with.
    var creatorLandlock: LandlockDomain?
    /// The network namespace it was made in: its abstract name is that
    /// namespace's (Kernel/NetNamespaces.swift), as are its interface ioctls.
    var net: NetNamespace = .root
    /// The connection, once connected (set once: by connect, or at accept).
    /// Epoll entries that listen to this socket follow it there.
    var conn: UnixSocketFD? {
        didSet { if let c = conn { for w in waiters.persistent { c.addWaiter(w) } } }
    }
    var listening = false
    var backlog: [UnixSockFD] = []
    /// listen()'s backlog (at most net.core.somaxconn): a connect finds the
    /// queue full once it holds more than this.
    var maxBacklog = 4096
    var waiters = WaitQueue()
    /// The name bound to this socket (sun_path bytes; leading 0 = abstract).
    var name: [UInt8]? = nil
    var peerName: [UInt8]? = nil
    /// The socket at the other end, as Linux's unix_peer: for a datagram
    /// socket the one connect() found (held from then on, so unlinking or
    /// rebinding the name changes nothing), for an accepted one its client.
    /// Weak: two datagram sockets may name each other.
    weak var peer: UnixSockFD?
    /// The peer's address as getpeername and a received message's sender
    /// show it: its name now (it may bind after connecting), else the one
    /// it had.
    var peerAddress: [UInt8]? { peer?.name ?? peerName }
    /// Closed (its last descriptor gone): a datagram peer that closed
    /// refuses what is sent to it.
    var released = false
    /// SOL_SOCKET options kept for getsockopt.
    var opts = UnixSockOpts()
    /// Datagram sockets: bytes this socket sent that no receiver has taken
    /// yet (Linux's sk_wmem_alloc, bounded by SO_SNDBUF).
    var inFlight = 0
    var pathKey: UnixNames.PathKey? = nil
    /// SO_PASSCRED, applied to the connection once there is one.
    var passcred = false
    /// SO_RCVTIMEO / SO_SNDTIMEO, handed to the connection.
    var rcvTimeoutNs: Int64 = 0
    var sndTimeoutNs: Int64 = 0
    /// shutdown() before (or without) a connection: Linux allows it on any
    /// AF_UNIX socket, and it ends a blocked recv (0) or accept (EINVAL).
    var shutRead = false
    var shutWrite = false
    /// The credentials of the process that called listen (what a client's
    /// SO_PEERCRED reports).
    var listenCred = UnixCred(pid: 0, uid: 65534, gid: 65534)
    /// Datagram sockets: received datagrams, oldest first.
    var datagrams: [(data: [UInt8], from: [UInt8]?, anc: Ancillary?, sender: UnixSockFD)] = []
    static let datagramQueueMax = 256
    unowned let kernel: Kernel
    let ino: UInt64

    init(kernel: Kernel, type: Int32, flags: Int32, conn: UnixSocketFD? = nil) {
        self.kernel = kernel
        self.type = type
        self.conn = conn
        ino = newPipeIno()
        super.init(flags: flags, path: nil)
        kernel.unixNames.register(self, ino: ino)
    }

    var isDatagram: Bool { type == SOCK_DGRAM_ && conn == nil }

    override var seekable: Bool { false }
    override var statfsMagic: Int64 { 0x534F434B } // SOCKFS_MAGIC, bound to a name or not
    override var readable: Bool { true }
    override var writable: Bool { true }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if isDatagram {
            if off != nil { return err(ESPIPE) }
            let r = recvDatagram(t, max: count, peek: false, dontWait: false)
            r.anc?.discard()
            if r.ret < 0 { return r.ret }
            return t.copyOut(buf, Array(r.data.prefix(count))) ? min(r.ret, count) : err(EFAULT)
        }
        guard let c = conn else { return err(ENOTCONN) }
        c.flags = flags; c.rcvTimeoutNs = rcvTimeoutNs; c.sndTimeoutNs = sndTimeoutNs
        return c.read(t, buf, count, off)
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if isDatagram {
            // Too big for SO_SNDBUF: EMSGSIZE before anything is copied.
            if count > opts.sndbuf - 32 && peerName != nil { return err(EMSGSIZE) }
            guard let data = t.copyIn(buf, min(count, opts.sndbuf)) else { return err(EFAULT) }
            return sendDatagram(t, data, to: nil, anc: nil, dontWait: false)
        }
        guard let c = conn else { return err(ENOTCONN) }
        c.flags = flags; c.rcvTimeoutNs = rcvTimeoutNs; c.sndTimeoutNs = sndTimeoutNs
        return c.write(t, buf, count, off)
    }

    // MARK: - Datagrams

    /// Queues a datagram on the socket named `to` (or the connected peer).
    func sendDatagram(_ t: Task, _ data: [UInt8], to: [UInt8]?, anc: Ancillary?, dontWait: Bool) -> Int {
        let target: UnixSockFD
        if let dest = to {
            switch unixSocketNamed(t, dest, from: self) {
            case .success(let s): target = s
            case .failure(let e): anc?.discard(); return e.ret
            }
            // An abstract name is looked up among sockets of one's own type.
            if dest.first == 0 && target.type != type { anc?.discard(); return err(ECONNREFUSED) }
        } else if peerName != nil {
            // Linux's unix_dgram_sendmsg: a connected peer that closed
            // refuses once and is forgotten (ENOTCONN after).
            guard let p = peer, !p.released else { peer = nil; peerName = nil; anc?.discard(); return err(ECONNREFUSED) }
            target = p
        } else {
            anc?.discard(); return err(ENOTCONN)
        }
        if target.type != SOCK_DGRAM_ || target.conn != nil { anc?.discard(); return err(EPROTOTYPE) }
        // Shut for sending here, or for receiving there: EPIPE (no SIGPIPE for datagrams).
        if shutWrite || target.shutRead { anc?.discard(); return err(EPIPE) }
        // A socket connected elsewhere takes datagrams from its peer alone (unix_may_send).
        if let tp = target.peer, tp !== self { anc?.discard(); return err(EPERM) }
        if data.count > opts.sndbuf - 32 { anc?.discard(); return err(EMSGSIZE) }
        while true {
            // Linux's sock_alloc_send_pskb: room while what is in flight is below SO_SNDBUF.
            if inFlight >= opts.sndbuf {
                if nonblocking || dontWait { anc?.discard(); return err(EAGAIN) }
                let w = wait(t, timeoutNs: sndTimeoutNs) { self.inFlight >= self.opts.sndbuf }
                if w < 0 { anc?.discard(); return w }
                continue
            }
            if target.datagrams.count >= UnixSockFD.datagramQueueMax {
                if nonblocking || dontWait { anc?.discard(); return err(EAGAIN) }
                let w = target.wait(t, timeoutNs: sndTimeoutNs) { target.datagrams.count >= UnixSockFD.datagramQueueMax && target.refs > 0 }
                if w < 0 { anc?.discard(); return w }
                if target.refs == 0 { anc?.discard(); return err(ECONNREFUSED) }
                continue
            }
            break
        }
        var a = anc
        // Either end asking for SO_PASSCRED sends the credentials (unix_passcred_enabled).
        if target.passcred || passcred {
            if a == nil { a = Ancillary(files: [], cred: t.unixCred) } else if a!.cred == nil { a!.cred = t.unixCred }
        }
        target.datagrams.append((data, name, a, self))
        inFlight += data.count
        target.waiters.notifyAll()
        return data.count
    }

    /// A datagram left the queue (received or dropped): its sender has that
    /// much more room.
    private func taken(_ d: (data: [UInt8], from: [UInt8]?, anc: Ancillary?, sender: UnixSockFD)) {
        d.sender.inFlight -= d.data.count
        if d.sender !== self { d.sender.waiters.notifyAll() }
    }

    func recvDatagram(_ t: Task, max: Int, peek: Bool, dontWait: Bool) -> (ret: Int, data: [UInt8], from: [UInt8]?, anc: Ancillary?, truncated: Bool, full: Int) {
        while datagrams.isEmpty {
            if nonblocking || dontWait { return (err(EAGAIN), [], nil, nil, false, 0) }
            if shutRead { return (0, [], nil, nil, false, 0) }
            let w = wait(t, timeoutNs: rcvTimeoutNs) { self.datagrams.isEmpty && !self.shutRead }
            if w < 0 { return (w, [], nil, nil, false, 0) }
        }
        let d = peek ? datagrams[0] : datagrams.removeFirst()
        if !peek { taken(d); waiters.notifyAll() }
        return (min(max, d.data.count), Array(d.data.prefix(max)), d.from, d.anc, d.data.count > max, d.data.count)
    }

    /// Waits on this socket's queue (datagrams, connections) for at most
    /// `timeoutNs` (SO_RCVTIMEO / SO_SNDTIMEO; 0: no bound). Returns 0, or
    /// while `stillWaiting` holds: EAGAIN after the timeout, -ERESTARTSYS
    /// (EINTR when a timeout is set, as Linux) after a signal.
    func wait(_ t: Task, timeoutNs: Int64, _ stillWaiting: () -> Bool) -> Int {
        if timeoutNs < 0 { return stillWaiting() ? err(EAGAIN) : 0 }   // a negative timeout set: no wait
        waiters.add(t)
        let r = t.block(deadline: timeoutNs > 0 ? Kernel.now(CLOCK_MONOTONIC) &+ timeoutNs : nil)
        waiters.remove(t)
        if r == .timedOut && stillWaiting() { return err(EAGAIN) }
        if r == .interrupted && stillWaiting() { return timeoutNs > 0 ? err(EINTR) : -ERESTARTSYS }
        return 0
    }

    /// shutdown() of a socket that has no connection (Linux's unix_shutdown
    /// accepts it): wakes what waits on it.
    func shutdownUnconnected(_ how: Int32) {
        if how == SHUT_RD || how == SHUT_RDWR { shutRead = true }
        if how == SHUT_WR || how == SHUT_RDWR { shutWrite = true }
        waiters.notifyAll()
    }

    override func readiness() -> Int16 {
        if let c = conn { return c.readiness() }
        // Linux's unix_poll: both directions shut is HUP, a shut receive
        // side reads (EOF); a listener is never writable.
        var r: Int32 = 0
        if shutRead { r |= pollReadable | POLLRDHUP_ }
        if shutRead && shutWrite { r |= POLLHUP }
        if listening { return Int16(r | (backlog.isEmpty ? 0 : pollReadable)) }
        if type == SOCK_DGRAM_ {
            // Writable while at most a quarter of SO_SNDBUF is in flight
            // (Linux's unix_writable; a receiver taking one wakes us).
            let w = inFlight << 2 <= opts.sndbuf
            return Int16(r | (w ? pollWritable | POLLWRBAND_ : 0) | (datagrams.isEmpty ? 0 : pollReadable))
        }
        return Int16(r | pollWritable | POLLWRBAND_ | POLLHUP)
    }
    override func addWaiter(_ t: Waiter) { waiters.add(t); conn?.addWaiter(t) }
    override func wakeups() -> UInt64 { waiters.wakeups &+ (conn?.wakeups() ?? 0) }
    override func registerAsync() -> Bool { waiters.addAsync(self); _ = conn?.registerAsync(); return true }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t); conn?.removeWaiter(t) }
    override func ioctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if isDatagram && cmd == 0x541B { return t.writeI32(arg, Int32(datagrams.first?.data.count ?? 0)) ? 0 : err(EFAULT) }
        return conn?.ioctl(t, cmd, arg) ?? interfaceIoctlWithoutSocket(t, cmd, arg, net: net)
    }
    override func release() {
        conn?.release()
        // Connections never accepted: their clients get ECONNRESET (Linux's
        // unix_release_sock of an embryo sets the peer's sk_err).
        for b in backlog { b.conn?.resetPeer(); b.release() }
        backlog.removeAll()
        for d in datagrams { d.anc?.discard(); taken(d) }
        datagrams.removeAll()
        released = true
        kernel.unixNames.forget(self)
        waiters.notifyAll()
    }
    /// socket()'s inode, owned by the creator: fchmod sets the mode a
    /// bind then gives the socket file (less the umask), as Linux.
    var sockInode: Inode?
    override var ownInode: Inode? { sockInode }
    override func stat() -> Result<Stat, Errno> {
        if let i = sockInode, case .success(var s) = i.stat() { s.blksize = 4096; return .success(s) }
        var s = Stat(); s.mode = S_IFSOCK_ | 0o777; s.ino = ino; s.dev = 8; s.blksize = 4096
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("socket:[\(ino)]".utf8) }
}

/// SOL_SOCKET options an AF_UNIX socket only keeps (Linux's struct sock
/// fields that getsockopt reads back), and its buffer sizes.
struct UnixSockOpts {
    /// Boolean options set to 1 (SO_REUSEADDR, SO_KEEPALIVE, SO_BROADCAST, ...).
    var on: Set<Int32> = []
    /// SO_LINGER: seconds, nil when off.
    var linger: Int32? = nil
    var sndbuf = 212_992   // net.core.wmem_default
    var rcvbuf = 212_992   // net.core.rmem_default
    /// SO_RCVLOWAT, kept only (a Unix socket's reads do not consult it).
    var rcvlowat: Int32 = 1
    /// The boolean options Linux's sock_setsockopt stores as given.
    static let booleans: Set<Int32> = [2, 5, 6, 9, 10, 11, 15]  // REUSEADDR DONTROUTE BROADCAST KEEPALIVE OOBINLINE NO_CHECK REUSEPORT
    /// SOCK_MIN_SNDBUF and SOCK_MIN_RCVBUF on x86-64.
    static let minSndbuf = 4608, minRcvbuf = 2304
    /// net.core.wmem_max and rmem_max: the host's (not per namespace).
    static let wmemMax = hostSysctlInt("/proc/sys/net/core/wmem_max") ?? 212_992
    static let rmemMax = hostSysctlInt("/proc/sys/net/core/rmem_max") ?? 212_992
    /// setsockopt(SO_SNDBUF / SO_RCVBUF): the value doubled (room for
    /// bookkeeping), at most twice the maximum, at least the minimum; the
    /// value is taken as unsigned when clamped, as Linux does.
    static func buffer(_ v: Int32, max: Int, min: Int) -> Int {
        Swift.max(Swift.min(Int(UInt32(bitPattern: v)), max) * 2, min)
    }
}

func hostSysctlInt(_ path: String) -> Int? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var b = [UInt8](repeating: 0, count: 32)
    let n = read(fd, &b, b.count)
    if n <= 0 { return nil }
    return Int(String(decoding: b[..<n].prefix { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
}

/// The names of bound AF_UNIX sockets: abstract names, and socket files in
/// the sandbox's file systems (by device and inode).
final class UnixNames {
    struct PathKey: Hashable { let dev: UInt64; let ino: UInt64 }
    /// An abstract name in a network namespace (NetNamespace.unixKey).
    struct AbstractKey: Hashable { let net: UInt64; let name: [UInt8] }
    var abstract: [AbstractKey: UnixSockFD] = [:]
    var paths: [PathKey: UnixSockFD] = [:]

    /// Made with the kernel, before the Sentry is confined: the host's
    /// buffer limits are read now, while /proc/sys is still there.
    init() { _ = (UnixSockOpts.wmemMax, UnixSockOpts.rmemMax) }

    /// Every AF_UNIX socket made (socket, accept, socketpair), for
    /// /proc/net/unix; weak, and dropped once released.
    final class Entry {
        weak var fd: FileDescription?
        /// The network namespace it was made in (NetNamespace.unixKey): a socketpair's ends.
        let net: UInt64
        init(_ f: FileDescription, net: UInt64) { fd = f; self.net = net }
    }
    private var live: [UInt64: Entry] = [:]
    func register(_ f: FileDescription, ino: UInt64, net: UInt64 = 0) { live[ino] = Entry(f, net: net) }

    func forget(_ s: UnixSockFD) {
        live[s.ino] = nil
        if let n = s.name, n.first == 0 {
            let key = AbstractKey(net: s.net.unixKey, name: n)
            if abstract[key] === s { abstract[key] = nil }
        }
        if let k = s.pathKey, paths[k] === s { paths[k] = nil }
    }

    /// /proc/net/unix: every socket, as Linux lists them (an accepted
    /// one with its listener's name, a socketpair's ends with none).
    func procText(netKey: UInt64 = 0) -> String {
        var s = "Num       RefCount Protocol Flags    Type St Inode Path\n"
        live = live.filter { $0.value.fd != nil }
        for ino in live.keys.sorted() {
            guard let f = live[ino]?.fd else { continue }
            var flags = "00000000", st = "03", path = "", type: Int32, refs = f.refs
            if let u = f as? UnixSockFD {
                if u.released || u.net.unixKey != netKey { continue }
                type = u.type
                if u.listening { flags = "00010000"; st = "01" } else if u.conn == nil && u.peer == nil { st = "01" }
                if let n = u.name {
                    path = n.first == 0 ? "@" + String(decoding: n.dropFirst(), as: UTF8.self) : String(decoding: n, as: UTF8.self)
                }
            } else if let p = f as? UnixSocketFD, p.refs > 0, live[ino]?.net == netKey {
                type = p.type
            } else { continue }
            refs = max(1, refs)
            s += "0000000000000000: \(hex(UInt32(refs), width: 8)) 00000000 \(flags) \(hex(UInt32(type), width: 4)) \(st) \(ino) \(path)\n"
        }
        return s
    }
}

/// The bound socket with this name (abstract, or a socket file), for
/// socket `from`: an abstract name is looked up in the network namespace
/// `from` was made in, not the caller's present one (Linux's sock_net).
func unixSocketNamed(_ t: Task, _ name: [UInt8], from: UnixSockFD) -> Result<UnixSockFD, Errno> {
    let names = t.kernel.unixNames
    if name.first == 0 {
        guard let s = names.abstract[UnixNames.AbstractKey(net: from.net.unixKey, name: name)] else { return .failure(Errno(ECONNREFUSED)) }
        // Landlock's abstract-socket scope: only sockets made inside the
        // caller's domain (Linux's answer: EPERM).
        if let d = t.creds.landlock, !d.scopeAllows(Landlock.scopeAbstractUnix, to: s.creatorLandlock) {
            return .failure(Errno(EPERM))
        }
        return .success(s)
    }
    switch t.kernel.vfs.resolve(t.fs, start: t.fs.cwd, name, follow: true, searcher: t.searcher) {
    case .success(let p):
        if p.inode.mode & S_IFMT_ != S_IFSOCK_ { return .failure(Errno(ECONNREFUSED)) }
        if !t.mayAccess(p.inode, 2) { return .failure(Errno(EACCES)) }
        guard let s = names.paths[UnixNames.PathKey(dev: p.inode.dev, ino: p.inode.ino)] else { return .failure(Errno(ECONNREFUSED)) }
        return .success(s)
    case .failure(let e): return .failure(e)
    }
}
