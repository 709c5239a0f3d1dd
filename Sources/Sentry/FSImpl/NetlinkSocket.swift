// Netlink sockets (AF_NETLINK), in Sentry memory. The Sentry never opens a
// host netlink socket (its seccomp filter forbids it, confine.c): a request
// is answered here, from what the sandbox's network namespace shows through
// the calls the Sentry may make (interface ioctls on an inet socket,
// /proc/net files opened before confinement).
//
// NETLINK_ROUTE answers RTM_GETLINK and RTM_GETADDR, as a dump or for one
// link (by index or IFLA_IFNAME). In the sandbox's own namespace
// RTM_NEWADDR and RTM_DELADDR change it through the address helper
// (CMoat/netconf.c), an RTM_NEWLINK that changes nothing (lo up while it
// is up) succeeds, and every other change (links, routes, ...) and every
// other type is refused with the error Linux gives where it cannot do the
// change (EOPNOTSUPP; ENODEV for a link that does not exist; EPERM without
// CAP_NET_ADMIN). In a namespace made inside the sandbox links and
// addresses change as Kernel/NetLinks.swift says, and sockets that joined
// RTNLGRP_LINK get its link events. NETLINK_KOBJECT_UEVENT
// sockets bind, join groups and never receive: no device events happen in
// the sandbox.
//
// Replies are queued as datagrams, as the kernel's skbs: one per family of
// a dump, then NLMSG_DONE alone, so a reader with a small buffer sees
// MSG_TRUNC per datagram as on Linux.

import CMoat
import Glibc

let AF_NETLINK_: Int32 = 16
let NETLINK_ROUTE_: Int32 = 0
let NETLINK_KOBJECT_UEVENT_: Int32 = 15
let SOL_NETLINK_: Int32 = 270

final class NetlinkSocketFD: FileDescription {
    let type: Int32
    let proto: Int32
    /// The port id (nl_pid) once bound; 0 before.
    private(set) var port: UInt32 = 0
    /// Multicast groups joined (bit N-1 for group N), by bind or NETLINK_ADD_MEMBERSHIP.
    private var groups: UInt64 = 0
    /// Groups were ever set: NETLINK_LIST_MEMBERSHIPS has a size from then on (Linux's ngroups).
    private var hasGroups = false
    /// The default destination (connect); the kernel, 0, unless set.
    private var peerPort: UInt32 = 0
    private var peerGroups: UInt32 = 0
    var passcred = false
    var rcvTimeoutNs: Int64 = 0
    var sndTimeoutNs: Int64 = 0
    /// SOL_NETLINK options set (accepted and remembered, of no effect).
    private var nlOptions: [Int32: Int32] = [:]
    /// A datagram waiting to be read: from the kernel (port 0), or from
    /// another socket's multicast send, with its sender's credentials.
    struct Queued { var bytes: [UInt8]; var from: UInt32 = 0; var cred: UnixCred? = nil }
    private var queue: [Queued] = []
    /// SO_ATTACH_FILTER's program, kept (setsockopt).
    private var filter: [UInt8]?
    private var waiters = WaitQueue()
    private let ino: UInt64

    /// Port ids in use in the sandbox, by protocol.
    nonisolated(unsafe) static var ports: [Int32: Set<UInt32>] = [:]
    nonisolated(unsafe) static var nextIno: UInt64 = 0x4e4c_0000
    /// The next negative port id autobind tries when the pid is taken (Linux: from -4096 down).
    nonisolated(unsafe) static var nextAutoPort: UInt32 = UInt32(bitPattern: -4096)

    /// The network namespace it was made in, whose links and addresses it
    /// shows (Kernel/NetNamespaces.swift for one made in the sandbox).
    let net: NetNamespace

    init(type: Int32, proto: Int32, flags: Int32, net: NetNamespace = .root) {
        self.type = type; self.proto = proto; self.net = net
        NetlinkSocketFD.nextIno += 1
        ino = NetlinkSocketFD.nextIno
        super.init(flags: flags, path: nil)
        if proto == NETLINK_ROUTE_ { NetlinkSocketFD.routeSockets.append(Weak(self)) }
    }

    final class Weak { weak var s: NetlinkSocketFD?; init(_ s: NetlinkSocketFD) { self.s = s } }
    /// NETLINK_ROUTE sockets, for their namespace's events and multicast sends.
    nonisolated(unsafe) static var routeSockets: [Weak] = []

    /// A kernel event to every socket of namespace `ns` in multicast group `group`.
    static func broadcast(in ns: NetNamespace, group: Int, _ msg: [UInt8]) {
        routeSockets.removeAll { $0.s == nil || $0.s!.released }
        for w in routeSockets {
            guard let s = w.s, s.net === ns, s.groups & (1 << UInt64(group - 1)) != 0 else { continue }
            s.deliverFromKernel(msg)
        }
    }

    /// socket(2)'s checks for AF_NETLINK: 0 or -errno.
    static func check(type: Int32, proto: Int32) -> Int32 {
        if type != SOCK_RAW_ && type != SOCK_DGRAM_ { return ESOCKTNOSUPPORT }
        if proto != NETLINK_ROUTE_ && proto != NETLINK_KOBJECT_UEVENT_ { return EPROTONOSUPPORT }
        return 0
    }

    override var seekable: Bool { false }
    override var statfsMagic: Int64 { 0x534F434B }
    override var readable: Bool { true }
    override var writable: Bool { true }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func addWaiter(_ t: Waiter) { waiters.add(t) }
    override func removeWaiter(_ t: Waiter) { waiters.remove(t) }
    override func wakeups() -> UInt64 { waiters.wakeups }
    override func readiness() -> Int16 { Int16(pollWritable) | (queue.isEmpty ? 0 : Int16(pollReadable)) }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = S_IFSOCK_ | 0o777; s.ino = ino; s.dev = 8; s.blksize = 4096
        return .success(s)
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("socket:[\(ino)]".utf8) }
    private(set) var released = false
    override func release() {
        if port != 0 { NetlinkSocketFD.ports[proto]?.remove(port) }
        queue = []
        released = true
    }

    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        return recv(t, [(buf, count)], flags: 0, controlCap: 0).ret
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        return send(t, [(buf, count)], to: nil, flags: 0)
    }

    // MARK: - Addresses

    /// struct sockaddr_nl: family, pad, nl_pid, nl_groups.
    static func sockaddr(_ pid: UInt32, _ groups: UInt32) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 12)
        b[0] = UInt8(AF_NETLINK_)
        put32(&b, 4, Int32(bitPattern: pid)); put32(&b, 8, Int32(bitPattern: groups))
        return b
    }

    private static func parse(_ a: [UInt8]) -> Result<(UInt32, UInt32), Errno> {
        if a.count < 12 { return .failure(Errno(EINVAL)) }
        if Int32(a[0]) | Int32(a[1]) << 8 != AF_NETLINK_ { return .failure(Errno(EINVAL)) }
        return .success((get32(a, 4), get32(a, 8)))
    }

    /// Linux's autobind: the thread group's pid first, then negative ids.
    private func autobind(_ t: Task) {
        if port != 0 { return }
        var used = NetlinkSocketFD.ports[proto] ?? []
        var p = UInt32(truncatingIfNeeded: t.vpid(t.tg.tgid))
        while used.contains(p) || p == 0 {
            p = NetlinkSocketFD.nextAutoPort
            NetlinkSocketFD.nextAutoPort &-= 1
        }
        used.insert(p)
        NetlinkSocketFD.ports[proto] = used
        port = p
    }

    func bind(_ t: Task, _ a: [UInt8]) -> Int {
        let (pid, g): (UInt32, UInt32)
        switch NetlinkSocketFD.parse(a) { case .success(let x): (pid, g) = x; case .failure(let e): return e.ret }
        if port != 0 {
            if pid != 0 && pid != port { return err(EINVAL) }
        } else if pid != 0 {
            if NetlinkSocketFD.ports[proto, default: []].contains(pid) { return err(EADDRINUSE) }
            NetlinkSocketFD.ports[proto, default: []].insert(pid)
            port = pid
        } else {
            autobind(t)
        }
        groups = groups & ~0xffff_ffff | UInt64(g)
        if g != 0 { hasGroups = true }
        return 0
    }

    func connect(_ t: Task, _ a: [UInt8]) -> Int {
        if a.count >= 2 && Int32(a[0]) | Int32(a[1]) << 8 == AF_UNSPEC {
            peerPort = 0; peerGroups = 0
            return 0
        }
        switch NetlinkSocketFD.parse(a) {
        case .success(let (pid, g)):
            autobind(t)
            peerPort = pid; peerGroups = g
            return 0
        case .failure(let e): return e.ret
        }
    }

    func name(peer: Bool) -> [UInt8] {
        peer ? NetlinkSocketFD.sockaddr(peerPort, peerGroups) : NetlinkSocketFD.sockaddr(port, UInt32(truncatingIfNeeded: groups))
    }

    // MARK: - Options

    func setsockopt(_ t: Task, level: Int32, name: Int32, addr: UInt64, len: Int) -> Int {
        if level == SOL_SOCKET && (name == SO_RCVTIMEO_OLD || name == SO_SNDTIMEO_OLD) {
            if len < 16 { return err(EINVAL) }
            guard let b = t.copyIn(addr, 16) else { return err(EFAULT) }
            let sec = Int64(bitPattern: get64(b, 0)), usec = Int64(bitPattern: get64(b, 8))
            if usec < 0 || usec >= 1_000_000 { return err(EDOM) }
            let ns = sec < 0 ? -1 : sec &* 1_000_000_000 &+ usec * 1000
            if name == SO_RCVTIMEO_OLD { rcvTimeoutNs = ns } else { sndTimeoutNs = ns }
            return 0
        }
        if level == SOL_SOCKET && name == 26 {         // SO_ATTACH_FILTER
            // A valid classic BPF program is kept (Kernel/ClassicBPF.swift):
            // a uevent socket receives nothing, and a route socket's replies
            // are its own answers, not filtered.
            if len < 16 { return err(EINVAL) }
            guard let h = t.copyIn(addr, 16) else { return err(EFAULT) }
            let count = Int(UInt16(h[0]) | UInt16(h[1]) << 8)
            if count == 0 || count > 4096 { return err(EINVAL) }   // BPF_MAXINSNS
            guard let prog = t.copyIn(get64(h, 8), count * 8) else { return err(EFAULT) }
            if ClassicBPF(prog, use: .socket) == nil { return err(EINVAL) }
            filter = prog
            return 0
        }
        if len < 4 { return err(EINVAL) }
        guard let v = t.readI32(addr) else { return err(EFAULT) }
        switch (level, name) {
        case (SOL_SOCKET, 27):                        // SO_DETACH_FILTER
            if filter == nil { return err(ENOENT) }
            filter = nil
        case (SOL_SOCKET, SO_PASSCRED_): passcred = v != 0
        case (SOL_SOCKET, SO_RCVBUF), (SOL_SOCKET, SO_SNDBUF), (SOL_SOCKET, 32), (SOL_SOCKET, 33): break
        case (SOL_NETLINK_, 1), (SOL_NETLINK_, 2):   // NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP
            if v < 1 || v > 64 { return err(EINVAL) }
            autobind(t)
            hasGroups = true
            if name == 1 { groups |= 1 << UInt64(v - 1) } else { groups &= ~(1 << UInt64(v - 1)) }
        case (SOL_NETLINK_, 3), (SOL_NETLINK_, 4), (SOL_NETLINK_, 5), (SOL_NETLINK_, 8),
             (SOL_NETLINK_, 10), (SOL_NETLINK_, 11), (SOL_NETLINK_, 12):
            // PKTINFO BROADCAST_ERROR NO_ENOBUFS LISTEN_ALL_NSID CAP_ACK EXT_ACK GET_STRICT_CHK
            nlOptions[name] = v != 0 ? 1 : 0
        case (SOL_SOCKET, _), (SOL_NETLINK_, _): return err(ENOPROTOOPT)
        default: return err(ENOPROTOOPT)
        }
        return 0
    }

    func getsockopt(_ t: Task, level: Int32, name: Int32, addr: UInt64, lenAddr: UInt64) -> Int {
        guard let len = t.readI32(lenAddr) else { return err(EFAULT) }
        if len < 0 { return err(EINVAL) }
        if level == SOL_SOCKET && (name == SO_RCVTIMEO_OLD || name == SO_SNDTIMEO_OLD) {
            return copyOutSocketTimeout(t, name == SO_RCVTIMEO_OLD ? rcvTimeoutNs : sndTimeoutNs, addr: addr, lenAddr: lenAddr, len: len)
        }
        var v: Int32
        switch (level, name) {
        case (SOL_SOCKET, SO_TYPE): v = type
        case (SOL_SOCKET, SO_DOMAIN): v = AF_NETLINK_
        case (SOL_SOCKET, SO_PROTOCOL): v = proto
        case (SOL_SOCKET, SO_PASSCRED_): v = passcred ? 1 : 0
        case (SOL_SOCKET, SO_RCVBUF), (SOL_SOCKET, SO_SNDBUF): v = 212_992
        case (SOL_SOCKET, SO_ERROR): v = 0
        case (SOL_NETLINK_, 3), (SOL_NETLINK_, 4), (SOL_NETLINK_, 5), (SOL_NETLINK_, 8),
             (SOL_NETLINK_, 10), (SOL_NETLINK_, 11), (SOL_NETLINK_, 12):
            v = nlOptions[name] ?? 0
        case (SOL_NETLINK_, 9):
            // NETLINK_LIST_MEMBERSHIPS: the group bitmap in 32-bit words, as
            // many as fit; the length is the whole map's (the protocol's
            // groups rounded up to words: 8 bytes for NETLINK_ROUTE's).
            let size = hasGroups ? (proto == NETLINK_ROUTE_ ? 8 : 4) : 0
            var pos = 0
            while pos < size && Int(len) - pos >= 4 {
                if !t.writeI32(addr &+ UInt64(pos), Int32(bitPattern: UInt32(truncatingIfNeeded: groups >> UInt64(pos * 8)))) { return err(EFAULT) }
                pos += 4
            }
            return t.writeI32(lenAddr, Int32(size)) ? 0 : err(EFAULT)
        default: return err(ENOPROTOOPT)
        }
        if len < 4 { return err(EINVAL) }
        return t.writeI32(addr, v) && t.writeI32(lenAddr, 4) ? 0 : err(EFAULT)
    }

    // MARK: - Data

    /// sendmsg: the datagram goes to the kernel (nl_pid 0) and is answered
    /// at once; to another port, Linux delivers it there, which the
    /// sandbox's sockets never expect (ECONNREFUSED, as for a port nobody holds).
    func send(_ t: Task, _ iov: [(UInt64, Int)], to: [UInt8]?, flags: Int32) -> Int {
        var dest = peerPort, destGroups = peerGroups
        if let a = to, !a.isEmpty {
            switch NetlinkSocketFD.parse(a) { case .success(let (pid, g)): dest = pid; destGroups = g; case .failure(let e): return e.ret }
        }
        // Sending to a multicast group needs CAP_NET_ADMIN over the
        // namespace (NETLINK_ROUTE has no NL_CFG_F_NONROOT_SEND).
        if destGroups != 0 && proto == NETLINK_ROUTE_ && !(net.isRoot ? t.creds.has(Cap.netAdmin) : t.creds.capable(Cap.netAdmin, in: net.owner)) {
            return err(EPERM)
        }
        let total = iov.reduce(0) { $0 + $1.1 }
        if total > 212_992 { return err(EMSGSIZE) }
        guard let data = gather(t, iov, cap: total) else { return err(EFAULT) }
        autobind(t)
        if destGroups != 0 && proto == NETLINK_ROUTE_ {
            // A copy to every other member of those groups, from this port.
            NetlinkSocketFD.routeSockets.removeAll { $0.s == nil || $0.s!.released }
            for w in NetlinkSocketFD.routeSockets {
                guard let s = w.s, s !== self, s.net === net, s.groups & UInt64(destGroups) != 0 else { continue }
                s.queue.append(Queued(bytes: data, from: port, cred: t.unixCred))
                s.waiters.notifyAll()
            }
        }
        if dest != 0 { return err(ECONNREFUSED) }
        if proto == NETLINK_ROUTE_ { route(t, data) }
        if !queue.isEmpty { waiters.notifyAll() }
        return total
    }

    /// A datagram from the kernel side: mq_notify's SIGEV_THREAD cookie
    /// (Syscalls/MessageQueue.swift), which glibc's helper thread reads.
    func deliverFromKernel(_ d: [UInt8]) {
        queue.append(Queued(bytes: d))
        waiters.notifyAll()
    }

    struct Received { var ret: Int; var from: [UInt8]; var msgFlags: Int32; var control: [UInt8] }

    func recv(_ t: Task, _ iov: [(UInt64, Int)], flags: Int32, controlCap: Int) -> Received {
        let total = iov.reduce(0) { $0 + $1.1 }
        while queue.isEmpty {
            if nonblocking || flags & MSG_DONTWAIT_ != 0 || rcvTimeoutNs < 0 { return Received(ret: err(EAGAIN), from: [], msgFlags: 0, control: []) }
            waiters.add(t)
            let r = t.block(deadline: rcvTimeoutNs > 0 ? Kernel.now(CLOCK_MONOTONIC) &+ rcvTimeoutNs : nil)
            waiters.remove(t)
            if queue.isEmpty {
                if r == .timedOut { return Received(ret: err(EAGAIN), from: [], msgFlags: 0, control: []) }
                if r == .interrupted { return Received(ret: rcvTimeoutNs > 0 ? err(EINTR) : -ERESTARTSYS, from: [], msgFlags: 0, control: []) }
            }
        }
        let q = queue[0], d = q.bytes
        if flags & MSG_PEEK_ == 0 { queue.removeFirst() }
        let n = min(total, d.count)
        if !scatter(t, iov, Array(d.prefix(n))) { return Received(ret: err(EFAULT), from: [], msgFlags: 0, control: []) }
        var mflags: Int32 = d.count > total ? MSG_TRUNC_ : 0
        var control: [UInt8] = []
        if passcred {
            // The sender's credentials; the kernel's are pid 0, root.
            if controlCap >= 28 {
                control = [UInt8](repeating: 0, count: controlCap >= 32 ? 32 : 28)
                put64(&control, 0, 28); put32(&control, 8, SOL_SOCKET); put32(&control, 12, SCM_CREDENTIALS_)
                if let c = q.cred { put32(&control, 16, c.pid); put32(&control, 20, Int32(bitPattern: c.uid)); put32(&control, 24, Int32(bitPattern: c.gid)) }
            } else {
                mflags |= MSG_CTRUNC_
            }
        }
        return Received(ret: flags & MSG_TRUNC_ != 0 ? d.count : n, from: NetlinkSocketFD.sockaddr(q.from, 0), msgFlags: mflags, control: control)
    }

    // MARK: - NETLINK_ROUTE

    /// Walks the request's messages as Linux's netlink_rcv_skb: a header
    /// that does not fit ends the walk; messages without NLM_F_REQUEST and
    /// control types (below NLMSG_MIN_TYPE) are skipped; each other gets
    /// its answer, and an NLMSG_ERROR when it failed or asked for NLM_F_ACK.
    private func route(_ t: Task, _ data: [UInt8]) {
        var off = 0
        while off + 16 <= data.count {
            let len = Int(get32(data, off))
            if len < 16 || len > data.count - off { break }
            let msg = Array(data[off..<off + len])
            let type = UInt16(msg[4]) | UInt16(msg[5]) << 8
            let flags = UInt16(msg[6]) | UInt16(msg[7]) << 8
            var e: Int32 = 0
            if flags & 1 != 0 && type >= 16 { e = handle(t, msg, type: type, flags: flags) }
            if e != 0 || flags & 4 != 0 { ack(msg, e) }   // NLM_F_ACK
            off += (len + 3) & ~3
        }
    }

    /// Header of a reply to `req`.
    private func header(_ req: [UInt8], type: UInt16, flags: UInt16, payload: Int) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 16)
        put32(&h, 0, Int32(16 + payload))
        h[4] = UInt8(type & 0xff); h[5] = UInt8(type >> 8)
        h[6] = UInt8(flags & 0xff); h[7] = UInt8(flags >> 8)
        h[8..<12] = req[8..<12]                      // nlmsg_seq
        put32(&h, 12, Int32(bitPattern: port))       // nlmsg_pid: the requester
        return h
    }

    /// NLMSG_ERROR: the error (0: an acknowledgement) and the request, its
    /// header only for an acknowledgement (NLM_F_CAPPED).
    private func ack(_ req: [UInt8], _ e: Int32) {
        let echo = e == 0 ? Array(req.prefix(16)) : req
        var b = header(req, type: 2, flags: e == 0 ? 0x100 : 0, payload: 4 + echo.count)
        b += [0, 0, 0, 0]; put32(&b, 16, -e)
        b += echo
        queue.append(Queued(bytes: b))
    }

    /// One request; returns its error (0 when answered).
    private func handle(_ t: Task, _ msg: [UInt8], type: UInt16, flags: UInt16) -> Int32 {
        if type > 127 { return EOPNOTSUPP }           // beyond RTM_MAX
        let isGet = type & 3 == 2
        if !isGet && !(net.isRoot ? t.creds.has(Cap.netAdmin) : t.creds.capable(Cap.netAdmin, in: net.owner)) { return EPERM }
        let dump = isGet && flags & 0x300 != 0        // NLM_F_DUMP (ROOT | MATCH)
        switch type {
        case 16 where !net.isRoot, 19 where !net.isRoot:   // RTM_NEWLINK, RTM_SETLINK (Kernel/NetLinks.swift)
            return net.changeLink(t, msg, type: type, flags: flags)
        case 17 where !net.isRoot:                    // RTM_DELLINK
            return net.deleteLink(msg)
        case 16, 19:
            // The sandbox's own links are the host's: a request that changes
            // nothing (lo up while it is up, its own name or MTU) succeeds,
            // any change is refused.
            guard let l = findLink(msg, NetlinkSocketFD.links()) else { return ENODEV }
            guard msg.count >= 32, let attrs = NetNamespace.attributes(msg, from: 32) else { return EINVAL }
            for (k, v) in attrs {
                let same: Bool
                switch k {
                case 3: same = (v.firstIndex(of: 0).map { Array(v[..<$0]) } ?? v) == l.name     // IFLA_IFNAME
                case 4: same = v.count >= 4 && get32(v, 0) == l.mtu                                // IFLA_MTU
                default: same = false
                }
                if !same { return EOPNOTSUPP }
            }
            let fl = get32(msg, 24), change = get32(msg, 28)
            if fl == 0 && change == 0 { return 0 }                                             // no flags asked
            let mask = change == 0 ? ~UInt32(0) : change
            return mask & UInt32(IFF_UP) != 0 && (fl ^ l.flags) & UInt32(IFF_UP) != 0 ? EOPNOTSUPP : 0
        case 18:                                      // RTM_GETLINK
            let links = net.isRoot ? NetlinkSocketFD.links() : net.links()
            if dump {
                queue.append(Queued(bytes: links.map { linkMessage(msg, $0, flags: 2) }.reduce([], +)))
                done(msg)
                return 0
            }
            guard let l = findLink(msg, links) else { return ENODEV }
            queue.append(Queued(bytes: linkMessage(msg, l, flags: 0)))
            return 0
        case 17:                                      // RTM_DELLINK
            return findLink(msg, net.isRoot ? NetlinkSocketFD.links() : net.links()) == nil ? ENODEV : EOPNOTSUPP
        case 20, 21:                                  // RTM_NEWADDR, RTM_DELADDR
            if !net.isRoot { return net.changeAddress(msg, type: type, flags: flags) }
            return changeAddress(msg, type: type, flags: flags)
        case 22:                                      // RTM_GETADDR
            if !dump { return EOPNOTSUPP }
            let family = msg.count > 16 ? Int32(msg[16]) : 0
            let links = net.isRoot ? NetlinkSocketFD.links() : []
            for fam in [AF_INET, AF_INET6] where family == AF_UNSPEC || family == fam {
                let addrs = net.isRoot ? NetlinkSocketFD.addresses(fam, links) : net.addresses(fam)
                if !addrs.isEmpty { queue.append(Queued(bytes: addrs.map { addrMessage(msg, $0) }.reduce([], +))) }
            }
            done(msg)
            return 0
        default:
            return EOPNOTSUPP
        }
    }

    /// An address added to or removed from an interface of the sandbox's
    /// own namespace, by the address helper (CMoat/netconf.c): struct
    /// ifaddrmsg, then IFA_LOCAL (or IFA_ADDRESS alone). With --network host
    /// the namespace is the host's and nothing is changed (EPERM).
    private func changeAddress(_ msg: [UInt8], type: UInt16, flags: UInt16) -> Int32 {
        if SentryNetwork.netconfFD < 0 { return EPERM }
        if msg.count < 24 { return EINVAL }
        var req = moat_netconf_req()
        req.op = Int32(type)
        req.flags = Int32(flags & 0x700)              // NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE
        req.family = Int32(msg[16]); req.prefix = Int32(msg[17])
        req.index = Int32(bitPattern: get32(msg, 20))
        if req.family != AF_INET && req.family != AF_INET6 { return EOPNOTSUPP }
        let alen = req.family == AF_INET ? 4 : 16
        var local: [UInt8]?, address: [UInt8]?
        var off = 24
        while off + 4 <= msg.count {
            let len = Int(UInt16(msg[off]) | UInt16(msg[off + 1]) << 8)
            let atype = UInt16(msg[off + 2]) | UInt16(msg[off + 3]) << 8
            if len < 4 || off + len > msg.count { return EINVAL }
            if len == 4 + alen && atype == 2 { local = Array(msg[off + 4..<off + len]) }     // IFA_LOCAL
            if len == 4 + alen && atype == 1 { address = Array(msg[off + 4..<off + len]) }   // IFA_ADDRESS
            off += (len + 3) & ~3
        }
        guard let a = local ?? address else { return EINVAL }
        withUnsafeMutableBytes(of: &req.addr) { $0.copyBytes(from: a) }
        let e = -moat_netconf_call(SentryNetwork.netconfFD, &req)
        if e == 0 && req.family == AF_INET {
            NetlinkSocketFD.addedPrefixes[AddedKey(index: req.index, addr: a)] = type == 20 ? UInt8(req.prefix) : nil
        }
        return e
    }

    struct AddedKey: Hashable { var index: Int32; var addr: [UInt8] }
    /// The prefix of each IPv4 address added here: SIOCGIFNETMASK, asked by
    /// the label, answers the interface's first address's mask only.
    nonisolated(unsafe) static var addedPrefixes: [AddedKey: UInt8] = [:]

    private func done(_ req: [UInt8]) {
        queue.append(Queued(bytes: header(req, type: 3, flags: 2, payload: 4) + [0, 0, 0, 0]))
    }

    struct Link {
        var index: Int32; var name: [UInt8]; var flags: UInt32; var mtu: UInt32; var arpType: UInt16; var hw: [UInt8]
        /// IFLA_QDISC, when known (a namespace of the sandbox's own).
        var qdisc: String? = nil
        /// IFLA_LINKINFO's IFLA_INFO_KIND (a link made with RTM_NEWLINK).
        var kind: String? = nil
        /// IFLA_LINK: a veth end's peer's index.
        var link: Int32? = nil
        /// IFLA_OPERSTATE, when known; else from the flags.
        var operState: UInt8? = nil
    }
    struct Addr {
        var family: Int32; var index: Int32; var prefix: UInt8; var scope: UInt8; var flags: UInt8; var addr: [UInt8]; var broadcast: [UInt8]?; var label: [UInt8]
        /// IFA_CACHEINFO with lifetimes "forever" (a permanent address of a namespace of the sandbox's own).
        var permanent = false
    }

    /// A link by ifi_index, or else by IFLA_IFNAME.
    private func findLink(_ msg: [UInt8], _ links: [Link]) -> Link? {
        if msg.count >= 32 {
            let idx = Int32(bitPattern: get32(msg, 20))
            if idx != 0 { return links.first { $0.index == idx } }
        }
        var off = 32
        while off + 4 <= msg.count {
            let alen = Int(UInt16(msg[off]) | UInt16(msg[off + 1]) << 8)
            let atype = UInt16(msg[off + 2]) | UInt16(msg[off + 3]) << 8
            if alen < 4 || off + alen > msg.count { break }
            if atype == 3 {                           // IFLA_IFNAME
                var name = Array(msg[off + 4..<off + alen])
                if let z = name.firstIndex(of: 0) { name = Array(name[..<z]) }
                return links.first { $0.name == name }
            }
            off += (alen + 3) & ~3
        }
        return nil
    }

    private static func attr(_ type: UInt16, _ data: [UInt8]) -> [UInt8] {
        let len = 4 + data.count
        var b: [UInt8] = [UInt8(len & 0xff), UInt8(len >> 8), UInt8(type & 0xff), UInt8(type >> 8)] + data
        while b.count % 4 != 0 { b.append(0) }
        return b
    }

    private static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }

    private func linkMessage(_ req: [UInt8], _ l: Link, flags: UInt16) -> [UInt8] {
        let body = NetlinkSocketFD.linkBody(l)
        return header(req, type: 16, flags: flags, payload: body.count) + body
    }

    /// An event about link `l` (RTM_NEWLINK or RTM_DELLINK), from the kernel: sequence 0, port 0.
    static func linkEvent(_ l: Link, type: UInt16) -> [UInt8] {
        let body = linkBody(l)
        var h = [UInt8](repeating: 0, count: 16)
        put32(&h, 0, Int32(16 + body.count))
        h[4] = UInt8(type & 0xff); h[5] = UInt8(type >> 8)
        return h + body
    }

    /// struct ifinfomsg, then IFLA_IFNAME, IFLA_MTU, IFLA_ADDRESS,
    /// IFLA_BROADCAST, IFLA_QDISC, IFLA_OPERSTATE, IFLA_LINK, IFLA_LINKINFO.
    private static func linkBody(_ l: Link) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 16)
        body[2] = UInt8(l.arpType & 0xff); body[3] = UInt8(l.arpType >> 8)
        put32(&body, 4, l.index)
        put32(&body, 8, Int32(bitPattern: l.flags))
        body += NetlinkSocketFD.attr(3, l.name + [0])
        body += NetlinkSocketFD.attr(4, NetlinkSocketFD.u32(l.mtu))
        body += NetlinkSocketFD.attr(1, l.hw)
        let bcast = l.flags & UInt32(IFF_LOOPBACK) != 0 ? [UInt8](repeating: 0, count: l.hw.count) : [UInt8](repeating: 0xff, count: l.hw.count)
        body += NetlinkSocketFD.attr(2, bcast)
        if let q = l.qdisc { body += NetlinkSocketFD.attr(6, Array(q.utf8) + [0]) }                 // IFLA_QDISC
        body += NetlinkSocketFD.attr(16, [l.operState ?? (l.flags & UInt32(IFF_RUNNING) != 0 ? (l.flags & UInt32(IFF_LOOPBACK) != 0 ? 0 : 6) : 2)]) // IFLA_OPERSTATE: UNKNOWN (lo), UP, DOWN
        if let p = l.link { body += NetlinkSocketFD.attr(5, NetlinkSocketFD.u32(UInt32(bitPattern: p))) }          // IFLA_LINK
        if let k = l.kind { body += NetlinkSocketFD.attr(18, NetlinkSocketFD.attr(1, Array(k.utf8) + [0])) }      // IFLA_LINKINFO { IFLA_INFO_KIND }
        return body
    }

    /// RTM_NEWADDR: struct ifaddrmsg, then IFA_ADDRESS (IPv4: IFA_LOCAL,
    /// IFA_BROADCAST, IFA_LABEL too), IFA_FLAGS.
    private func addrMessage(_ req: [UInt8], _ a: Addr) -> [UInt8] {
        var body: [UInt8] = [UInt8(a.family), a.prefix, a.flags, a.scope, 0, 0, 0, 0]
        put32(&body, 4, a.index)
        body += NetlinkSocketFD.attr(1, a.addr)
        if a.family == AF_INET {
            body += NetlinkSocketFD.attr(2, a.addr)
            if let b = a.broadcast { body += NetlinkSocketFD.attr(4, b) }
            body += NetlinkSocketFD.attr(3, a.label + [0])
        }
        body += NetlinkSocketFD.attr(8, NetlinkSocketFD.u32(UInt32(a.flags)))
        if a.permanent {                                                                          // IFA_CACHEINFO
            body += NetlinkSocketFD.attr(6, NetlinkSocketFD.u32(.max) + NetlinkSocketFD.u32(.max) + NetlinkSocketFD.u32(0) + NetlinkSocketFD.u32(0))
        }
        return header(req, type: 20, flags: 2, payload: body.count) + body
    }

    // MARK: - The namespace's interfaces

    /// The interfaces /proc/net/dev lists, by index, with what the
    /// interface ioctls say of them.
    static func links() -> [Link] {
        guard let text = SentryNetwork.procNetText("dev") else { return [] }
        let s = Glibc.socket(AF_INET, SOCK_DGRAM_ | SOCK_NONBLOCK_ | SOCK_CLOEXEC_, IPPROTO_UDP_)
        if s < 0 { return [] }
        defer { close(s) }
        var out: [Link] = []
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n").dropFirst(2) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = Array(line[..<colon].drop(while: { $0 == " " }).utf8)
            if name.isEmpty || name.count > 15 { continue }
            func query(_ cmd: UInt) -> [UInt8]? {
                var req = [UInt8](repeating: 0, count: 40)
                req.replaceSubrange(0..<name.count, with: name)
                let r = req.withUnsafeMutableBytes { Glibc.ioctl(s, cmd, $0.baseAddress!) }
                return r == 0 ? req : nil
            }
            guard let idx = query(0x8933), let fl = query(0x8913) else { continue }   // SIOCGIFINDEX, SIOCGIFFLAGS
            let mtu = query(0x8921).map { get32($0, 16) } ?? 0                         // SIOCGIFMTU
            let hwq = query(0x8927)                                                    // SIOCGIFHWADDR
            let arp = hwq.map { UInt16($0[16]) | UInt16($0[17]) << 8 } ?? 0
            var flags = UInt32(UInt16(fl[16]) | UInt16(fl[17]) << 8)
            if flags & UInt32(IFF_RUNNING) != 0 { flags |= 0x10000 }                   // IFF_LOWER_UP
            out.append(Link(index: Int32(bitPattern: get32(idx, 16)), name: name, flags: flags, mtu: mtu,
                            arpType: arp, hw: hwq.map { Array($0[18..<24]) } ?? [0, 0, 0, 0, 0, 0]))
        }
        return out.sorted { $0.index < $1.index }
    }

    /// IPv4 addresses (SIOCGIFCONF, with each netmask and broadcast) or
    /// IPv6 ones (/proc/net/if_inet6).
    static func addresses(_ family: Int32, _ links: [Link]) -> [Addr] {
        var out: [Addr] = []
        if family == AF_INET {
            let s = Glibc.socket(AF_INET, SOCK_DGRAM_ | SOCK_NONBLOCK_ | SOCK_CLOEXEC_, IPPROTO_UDP_)
            if s < 0 { return [] }
            defer { close(s) }
            var list = [UInt8](repeating: 0, count: 64 * 40)
            var ifc = ifconf()
            ifc.ifc_len = Int32(list.count)
            let r: Int32 = list.withUnsafeMutableBytes { lb in
                ifc.ifc_ifcu.ifcu_buf = lb.baseAddress!.assumingMemoryBound(to: CChar.self)
                return Glibc.ioctl(s, UInt(SIOCGIFCONF), &ifc)
            }
            if r != 0 { return [] }
            var off = 0
            while off + 40 <= Int(ifc.ifc_len) {
                let ent = Array(list[off..<off + 40])
                off += 40
                var name = Array(ent[0..<16])
                if let z = name.firstIndex(of: 0) { name = Array(name[..<z]) }
                let base = name.split(separator: UInt8(ascii: ":")).first.map(Array.init) ?? name
                guard let l = links.first(where: { $0.name == base }) else { continue }
                let addr = Array(ent[20..<24])
                func query(_ cmd: UInt) -> [UInt8]? {
                    var req = [UInt8](repeating: 0, count: 40)
                    req.replaceSubrange(0..<name.count, with: name)
                    let r = req.withUnsafeMutableBytes { Glibc.ioctl(s, cmd, $0.baseAddress!) }
                    return r == 0 ? Array(req[20..<24]) : nil
                }
                let mask = query(0x891b) ?? [255, 255, 255, 255]                      // SIOCGIFNETMASK
                let prefix = addedPrefixes[AddedKey(index: l.index, addr: addr)].map(Int.init) ?? mask.reduce(0) { $0 + $1.nonzeroBitCount }
                let bcast = l.flags & UInt32(IFF_BROADCAST) != 0 ? query(0x8919) : nil // SIOCGIFBRDADDR
                out.append(Addr(family: AF_INET, index: l.index, prefix: UInt8(prefix), scope: addr[0] == 127 ? 254 : 0,
                                flags: 0x80, addr: addr, broadcast: bcast, label: name))   // IFA_F_PERMANENT
            }
        } else {
            guard let text = SentryNetwork.procNetText("if_inet6") else { return [] }
            for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= 6, f[0].count == 32, let idx = Int32(f[1], radix: 16), let plen = UInt8(f[2], radix: 16),
                      let sc = UInt8(f[3], radix: 16), let fl = UInt8(f[4], radix: 16) else { continue }
                var addr: [UInt8] = []
                var i = f[0].startIndex
                while i < f[0].endIndex {
                    let j = f[0].index(i, offsetBy: 2)
                    addr.append(UInt8(f[0][i..<j], radix: 16) ?? 0)
                    i = j
                }
                // The file's scope is IPv6's (0x10 host, 0x20 link); netlink's is RT_SCOPE_*.
                let scope: UInt8 = sc & 0x70 == 0x10 ? 254 : sc & 0x70 == 0x20 ? 253 : sc & 0x70 == 0x40 ? 200 : 0
                out.append(Addr(family: AF_INET6, index: idx, prefix: plen, scope: scope, flags: fl, addr: addr, broadcast: nil, label: Array(f[5].utf8)))
            }
        }
        return out
    }
}
