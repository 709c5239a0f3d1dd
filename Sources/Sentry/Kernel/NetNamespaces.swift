// Network namespaces inside the sandbox (issue 15). The sandbox's own
// namespace (NetNamespace.root) is the host namespace Kernel/Network.swift
// describes: its inet sockets are host sockets. A namespace made inside the
// sandbox (unshare, clone or clone3 with CLONE_NEWNET) is a Sentry object
// and nothing more: the confined Sentry can neither create a host namespace
// nor enter one, and needs neither. It shows what a fresh Linux namespace
// shows:
//   - one interface, `lo` (index 1), DOWN until SIOCSIFFLAGS or RTM_NEWLINK
//     sets IFF_UP (CAP_NET_ADMIN over the namespace's owning user namespace,
//     as Linux's ns_capable); then 127.0.0.1/8 and ::1/128 answer;
//   - the interface ioctls, NETLINK_ROUTE's link and address dumps (what
//     `ip`, if_nameindex and getifaddrs read) and /proc/PID/net answer from
//     it (NetNamespace.ifaceIoctl, links, addresses, procNet);
//   - AF_INET and AF_INET6 sockets made in it are loopback endpoints in
//     Sentry memory (FSImpl/LoopbackSocket.swift), never host sockets, with
//     ports allocated per namespace (`bound`);
//   - abstract AF_UNIX names are per namespace, as Linux scopes them
//     (UnixNames keys them by `unixKey`); socket files are not.
// A task points at its namespace (Task.ownNet; nil for the sandbox's),
// inherited across clone and kept across exec; setns with an fd of
// /proc/PID/ns/net (or a pidfd and CLONE_NEWNET) joins one, with
// CAP_SYS_ADMIN both over the target's owner and in the caller's own user
// namespace (Linux's netns_install). A socket keeps the namespace it was
// made in; a namespace lives while a task, a NamespaceFile or a socket
// holds it.

import Glibc

final class NetNamespace {
    /// The sandbox's own namespace (host sockets; nothing here is used for it).
    static let root = NetNamespace(inum: PidNS.netInode, owner: .root)

    let inum: UInt64
    /// The user namespace whose capabilities rule this namespace.
    let owner: UserNamespace
    /// `lo` is up (IFF_UP): its addresses answer.
    var loUp = false
    /// lo was up once: its queueing discipline is noqueue from then on (noop before).
    private var loEverUp = false
    var isRoot: Bool { self === NetNamespace.root }
    /// The key abstract AF_UNIX names are kept under (0: the sandbox's).
    var unixKey: UInt64 { isRoot ? 0 : inum }

    struct PortKey: Hashable { let proto: Int32; let port: UInt16 }
    /// Bound loopback sockets by protocol (6, 17) and port.
    var bound: [PortKey: [LoopbackSockFD]] = [:]
    /// Where the next ephemeral port search starts (net.ipv4.ip_local_port_range's default).
    private var nextEphemeral: UInt16 = 32768
    static let ephemeral: ClosedRange<UInt16> = 32768...60999

    init(inum: UInt64, owner: UserNamespace) { self.inum = inum; self.owner = owner }
    convenience init(owner: UserNamespace) { self.init(inum: newNamespaceInode(), owner: owner) }

    /// A free ephemeral port for `proto`, or nil when all are taken.
    func ephemeralPort(proto: Int32) -> UInt16? {
        let n = Int(NetNamespace.ephemeral.count)
        for _ in 0..<n {
            let p = nextEphemeral
            nextEphemeral = p >= NetNamespace.ephemeral.upperBound ? NetNamespace.ephemeral.lowerBound : p + 1
            if bound[PortKey(proto: proto, port: p)]?.isEmpty ?? true { return p }
        }
        return nil
    }

    func unbind(_ s: LoopbackSockFD, proto: Int32, port: UInt16) {
        let k = PortKey(proto: proto, port: port)
        bound[k]?.removeAll { $0 === s }
        if bound[k]?.isEmpty == true { bound[k] = nil }
    }

    // MARK: - The interface

    static let loIndex: Int32 = 1
    /// lo's flags as SIOCGIFFLAGS shows them (IFF_LOOPBACK, and UP|RUNNING when up).
    var loFlags: UInt32 { UInt32(IFF_LOOPBACK) | (loUp ? UInt32(IFF_UP) | UInt32(IFF_RUNNING) | 0x10000 : 0) }

    /// Brings lo up or down, as SIOCSIFFLAGS / RTM_NEWLINK asked.
    func setLoUp(_ up: Bool) {
        loUp = up
        if up { loEverUp = true }
    }

    func links() -> [NetlinkSocketFD.Link] {
        [NetlinkSocketFD.Link(index: NetNamespace.loIndex, name: Array("lo".utf8), flags: loFlags, mtu: 65536,
                              arpType: 772, hw: [0, 0, 0, 0, 0, 0], qdisc: loEverUp ? "noqueue" : "noop")]
    }

    func addresses(_ family: Int32) -> [NetlinkSocketFD.Addr] {
        if !loUp { return [] }
        if family == AF_INET {
            return [NetlinkSocketFD.Addr(family: AF_INET, index: 1, prefix: 8, scope: 254, flags: 0x80, addr: [127, 0, 0, 1],
                                         broadcast: nil, label: Array("lo".utf8), permanent: true)]
        }
        return [NetlinkSocketFD.Addr(family: AF_INET6, index: 1, prefix: 128, scope: 254, flags: 0x80,
                                     addr: [UInt8](repeating: 0, count: 15) + [1], broadcast: nil, label: Array("lo".utf8), permanent: true)]
    }

    /// RTM_NEWADDR (an ifaddrmsg, then IFA_LOCAL or IFA_ADDRESS): lo's own
    /// addresses, 127.0.0.1/8 and ::1/128, which bubblewrap and others add
    /// before bringing lo up, are taken (EEXIST with NLM_F_EXCL once lo is
    /// up and has them); any other address is not offered (EOPNOTSUPP).
    func addLoopbackAddress(_ msg: [UInt8], flags: UInt16) -> Int32 {
        if msg.count < 24 { return EINVAL }
        let family = Int32(msg[16]), prefix = msg[17], index = Int32(bitPattern: get32(msg, 20))
        if index != NetNamespace.loIndex { return ENODEV }
        var addr: [UInt8]? = nil
        var off = 24
        while off + 4 <= msg.count {
            let len = Int(UInt16(msg[off]) | UInt16(msg[off + 1]) << 8), type = UInt16(msg[off + 2]) | UInt16(msg[off + 3]) << 8
            if len < 4 || off + len > msg.count { return EINVAL }
            if type == 1 || type == 2 { addr = Array(msg[off + 4..<off + len]) }   // IFA_ADDRESS, IFA_LOCAL
            off += (len + 3) & ~3
        }
        let own = (family == AF_INET && prefix == 8 && addr == [127, 0, 0, 1])
            || (family == AF_INET6 && prefix == 128 && addr == [UInt8](repeating: 0, count: 15) + [1])
        if !own { return EOPNOTSUPP }
        return loUp && flags & 0x200 != 0 ? EEXIST : 0                         // NLM_F_EXCL
    }

    /// The interface ioctls (struct ifreq: a 16-byte name, then the value
    /// at byte 16), answered for this namespace's one interface.
    func ifaceIoctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == 0x8912 { return ifconf(t, arg) }                                  // SIOCGIFCONF
        let queries: Set<UInt64> = [0x8910, 0x8913, 0x8915, 0x8917, 0x8919, 0x891b, 0x8921, 0x8927, 0x8933, 0x8942]
        let changes: Set<UInt64> = [0x8914, 0x8916, 0x8918, 0x891a, 0x891c, 0x8922, 0x8923, 0x8924, 0x8931, 0x8932, 0x8934]
        guard queries.contains(cmd) || changes.contains(cmd) else { return err(ENOTTY) }
        guard var b = t.copyIn(arg, 40) else { return err(EFAULT) }
        if cmd == 0x8910 {                                                          // SIOCGIFNAME
            if Int32(bitPattern: get32(b, 16)) != NetNamespace.loIndex { return err(ENODEV) }
            b.replaceSubrange(0..<16, with: Array("lo".utf8) + [UInt8](repeating: 0, count: 14))
            return t.copyOut(arg, b) ? 0 : err(EFAULT)
        }
        var name = Array(b[0..<16])
        if let z = name.firstIndex(of: 0) { name = Array(name[..<z]) }
        if name != Array("lo".utf8) { return err(ENODEV) }
        func sockaddrIn(_ a: [UInt8]) { b.replaceSubrange(16..<32, with: [UInt8(AF_INET), 0, 0, 0] + a + [UInt8](repeating: 0, count: 8)) }
        switch cmd {
        case 0x8933: put32(&b, 16, NetNamespace.loIndex)                            // SIOCGIFINDEX
        case 0x8913: b[16] = UInt8(loFlags & 0xff); b[17] = UInt8(loFlags >> 8 & 0xff)   // SIOCGIFFLAGS
        case 0x8921: put32(&b, 16, 65536)                                           // SIOCGIFMTU
        case 0x8942: put32(&b, 16, 1000)                                            // SIOCGIFTXQLEN
        case 0x8927:                                                                // SIOCGIFHWADDR
            b.replaceSubrange(16..<32, with: [4, 3] + [UInt8](repeating: 0, count: 14))   // ARPHRD_LOOPBACK
        case 0x8915, 0x891b, 0x8919, 0x8917:                                        // ADDR NETMASK BRDADDR DSTADDR
            if !loUp { return err(EADDRNOTAVAIL) }
            sockaddrIn(cmd == 0x8915 || cmd == 0x8917 ? [127, 0, 0, 1] : cmd == 0x891b ? [255, 0, 0, 0] : [0, 0, 0, 0])
        case 0x8914:                                                                // SIOCSIFFLAGS
            if !t.creds.capable(Cap.netAdmin, in: owner) { return err(EPERM) }
            setLoUp(b[16] & UInt8(IFF_UP) != 0)
            return 0
        default:                                                                    // the other changes
            return t.creds.capable(Cap.netAdmin, in: owner) ? err(EOPNOTSUPP) : err(EPERM)
        }
        return t.copyOut(arg, b) ? 0 : err(EFAULT)
    }

    /// SIOCGIFCONF: lo's IPv4 address while it is up; with no buffer, the
    /// length the list needs.
    private func ifconf(_ t: Task, _ arg: UInt64) -> Int {
        guard var h = t.copyIn(arg, 16) else { return err(EFAULT) }
        let len = Int32(bitPattern: get32(h, 0)), ubuf = get64(h, 8)
        if len < 0 { return err(EINVAL) }
        var list: [UInt8] = []
        if loUp {
            var e = Array("lo".utf8) + [UInt8](repeating: 0, count: 38)
            e[16] = UInt8(AF_INET); e[20] = 127; e[23] = 1
            list = e
        }
        if ubuf != 0 {
            let n = Int(len) / 40 * 40
            list = Array(list.prefix(n))
            if !list.isEmpty && !t.copyOut(ubuf, list) { return err(EFAULT) }
        }
        put32(&h, 0, Int32(list.count))
        return t.copyOut(arg, h) ? 0 : err(EFAULT)
    }

    // MARK: - /proc/PID/net

    /// /proc/PID/net/<name> for this namespace, nil for a file it lacks.
    func procNet(_ name: String, _ k: Kernel) -> [UInt8]? {
        switch name {
        case "dev":
            let rx = "       0       0    0    0    0     0          0         0"
            let tx = "        0       0    0    0    0     0       0          0"
            return Array(("Inter-|   Receive                                                |  Transmit\n"
                + " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
                + "    lo:" + rx + tx + "\n").utf8)
        case "if_inet6":
            return Array((loUp ? "00000000000000000000000000000001 01 80 10 80       lo\n" : "").utf8)
        case "tcp", "udp", "tcp6", "udp6":
            return Array(procSockets(name).utf8)
        case "unix":
            return Array(k.unixNames.procText(netKey: unixKey).utf8)
        default:
            return nil
        }
    }

    static let procNetNames = ["dev", "if_inet6", "tcp", "tcp6", "udp", "udp6", "unix"]

    /// /proc/net/{tcp,udp}[6]: this namespace's loopback sockets of that
    /// protocol and family, in Linux's columns.
    private func procSockets(_ name: String) -> String {
        let v6 = name.hasSuffix("6"), proto: Int32 = name.hasPrefix("tcp") ? 6 : 17
        var s = v6
            ? "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            : (proto == 6 ? "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n"
                          : "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n")
        var socks: [LoopbackSockFD] = []
        for (k, list) in bound where k.proto == proto { socks += list.filter { ($0.family == AF_INET6) == v6 } }
        socks.sort { $0.inner.ino < $1.inner.ino }
        for (i, x) in socks.enumerated() {
            let st = proto == 17 ? (x.peer == nil ? "07" : "01") : x.inner.listening ? "0A" : x.inner.conn != nil ? "01" : "07"
            let sl = String(repeating: " ", count: max(0, 4 - String(i).count)) + String(i)
            s += "\(sl): \(x.procAddr(x.local)) \(x.procAddr(x.peer)) \(st) 00000000:00000000 00:00000000 00000000 \(String(repeating: " ", count: max(0, 5 - String(x.ownerUID).count)))\(x.ownerUID)        0 \(x.inner.ino)\n"
        }
        return s
    }
}

extension Task {
    /// The network namespace this task's new sockets and interface queries use.
    var net: NetNamespace { ownNet ?? .root }
}
