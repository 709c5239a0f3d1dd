// Network namespaces inside the sandbox (issue 15). The sandbox's own
// namespace (NetNamespace.root) is the host namespace Kernel/Network.swift
// describes: its inet sockets are host sockets. A namespace made inside the
// sandbox (unshare, clone or clone3 with CLONE_NEWNET) is a Sentry object
// and nothing more: the confined Sentry can neither create a host namespace
// nor enter one, and needs neither. It shows what a fresh Linux namespace
// shows:
//   - `lo` (index 1), DOWN until SIOCSIFFLAGS or RTM_NEWLINK sets IFF_UP
//     (CAP_NET_ADMIN over the namespace's owning user namespace, as Linux's
//     ns_capable); then 127.0.0.1/8 and ::1/128 answer;
//   - links made with RTM_NEWLINK (Kernel/NetLinks.swift): dummy, bridge,
//     and veth pairs whose ends may sit in two namespaces of the sandbox's;
//   - addresses added with RTM_NEWADDR on any link (IPv4 ones keep their
//     subnet: on lo the whole subnet is local, as Linux's RTN_LOCAL prefix
//     route for a loopback device), removed with RTM_DELADDR;
//   - the interface ioctls, NETLINK_ROUTE's link and address dumps (what
//     `ip`, if_nameindex and getifaddrs read) and /proc/PID/net answer from
//     it (NetNamespace.ifaceIoctl, links, addresses, procNet);
//   - AF_INET and AF_INET6 sockets made in it are loopback endpoints in
//     Sentry memory (FSImpl/LoopbackSocket.swift), never host sockets, with
//     ports allocated per namespace (`bound`) from its own
//     net.ipv4.ip_local_port_range; `route` says where a destination is:
//     this namespace (a local address, lo up), the namespace at the other
//     end of an up veth pair whose subnet holds it, or nowhere;
//   - abstract AF_UNIX names are per namespace, as Linux scopes them
//     (UnixNames keys them by `unixKey`), and so is /proc/net/unix; socket
//     files are not.
// A task points at its namespace (Task.ownNet; nil for the sandbox's),
// inherited across clone and kept across exec; setns with an fd of
// /proc/PID/ns/net (or a pidfd and CLONE_NEWNET) joins one, with
// CAP_SYS_ADMIN both over the target's owner and in the caller's own user
// namespace (Linux's netns_install). A socket keeps the namespace it was
// made in; a namespace lives while a task, a NamespaceFile or a socket
// holds it.

import Glibc

/// A network interface of a namespace made inside the sandbox.
final class NetIface {
    var index: Int32
    var name: [UInt8]
    /// IFLA_INFO_KIND: "" for lo, else "dummy", "veth" or "bridge".
    let kind: String
    var up = false
    /// Up once: its queueing discipline shows as noqueue from then on (noop before).
    var everUp = false
    var mtu: UInt32
    let hw: [UInt8]
    /// The namespace it is in.
    weak var ns: NetNamespace?
    /// A veth end's other end.
    weak var peer: NetIface?

    init(index: Int32, name: [UInt8], kind: String, mtu: UInt32, hw: [UInt8]) {
        self.index = index; self.name = name; self.kind = kind; self.mtu = mtu; self.hw = hw
    }

    var isLoopback: Bool { kind.isEmpty }
    /// Carrier: lo and dummy have it once up; a veth end while its peer is up too.
    var running: Bool { up && (kind == "veth" ? peer?.up == true : kind != "bridge") }
    /// SIOCGIFFLAGS's flags, and IFF_LOWER_UP (netlink's ifi_flags).
    var flags: UInt32 {
        var f: UInt32
        switch kind {
        case "": f = UInt32(IFF_LOOPBACK)
        case "dummy": f = UInt32(IFF_BROADCAST | IFF_NOARP)
        default: f = UInt32(IFF_BROADCAST | IFF_MULTICAST)
        }
        if up { f |= UInt32(IFF_UP) }
        if running { f |= UInt32(IFF_RUNNING) | 0x10000 }
        return f
    }
    /// As NETLINK_ROUTE's link messages show it.
    var link: NetlinkSocketFD.Link {
        NetlinkSocketFD.Link(index: index, name: name, flags: flags, mtu: mtu, arpType: arpType, hw: hw,
                             qdisc: everUp ? "noqueue" : "noop", kind: kind.isEmpty ? nil : kind, link: peer?.index, operState: operState)
    }
    /// ARPHRD_LOOPBACK or ARPHRD_ETHER.
    var arpType: UInt16 { isLoopback ? 772 : 1 }
    /// IFLA_OPERSTATE: UNKNOWN (lo, dummy), UP, LOWERLAYERDOWN or DOWN.
    var operState: UInt8 {
        if !up { return 2 }
        if kind == "veth" { return running ? 6 : 5 }
        return kind == "bridge" ? 2 : 0
    }
}

/// An address on an interface, as RTM_NEWADDR gave it.
struct IfAddress {
    var family: Int32
    var index: Int32
    var prefix: UInt8
    /// 4 or 16 bytes.
    var ip: [UInt8]
    var broadcast: [UInt8]?
    var label: [UInt8]
    /// RT_SCOPE_*: the request's for IPv4, the address's own for IPv6.
    var scope: UInt8
    /// IFA_F_SECONDARY for an IPv4 address in a subnet another one has.
    var secondary = false

    /// Whether `a` (same length) is in this address's subnet.
    func holds(_ a: [UInt8]) -> Bool {
        if a.count != ip.count { return false }
        var bits = Int(prefix)
        for i in 0..<ip.count {
            if bits <= 0 { return true }
            let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
            if a[i] & mask != ip[i] & mask { return false }
            bits -= 8
        }
        return true
    }
}

final class NetNamespace {
    /// The sandbox's own namespace (host sockets; nothing here is used for it).
    static let root = NetNamespace(inum: PidNS.netInode, owner: .root)

    let inum: UInt64
    /// The user namespace whose capabilities rule this namespace.
    let owner: UserNamespace
    var isRoot: Bool { self === NetNamespace.root }
    /// The key abstract AF_UNIX names are kept under (0: the sandbox's).
    var unixKey: UInt64 { isRoot ? 0 : inum }

    /// Interfaces by index order; lo first.
    var ifaces: [NetIface] = []
    /// Addresses, IPv4 ones in Linux's per-interface order, IPv6 ones by scope.
    var addrs: [IfAddress] = []
    /// The next interface index (Linux numbers per namespace, lo is 1).
    var nextIndex: Int32 = 2

    struct PortKey: Hashable { let proto: Int32; let port: UInt16 }
    /// Bound loopback sockets by protocol (6, 17) and port.
    var bound: [PortKey: [LoopbackSockFD]] = [:]
    /// net.ipv4.ip_local_port_range, this namespace's (Linux's default at first).
    var portRange: ClosedRange<UInt16> = 32768...60999
    /// Where the next ephemeral port search starts.
    private var nextEphemeral: UInt16 = 32768

    init(inum: UInt64, owner: UserNamespace) {
        self.inum = inum; self.owner = owner
        let lo = NetIface(index: NetNamespace.loIndex, name: Array("lo".utf8), kind: "", mtu: 65536, hw: [0, 0, 0, 0, 0, 0])
        ifaces = [lo]
        lo.ns = self
    }
    convenience init(owner: UserNamespace) { self.init(inum: newNamespaceInode(), owner: owner) }

    /// A veth end goes with its namespace, and takes its peer with it (Linux).
    deinit {
        for i in ifaces { if let p = i.peer, let pn = p.ns { pn.detach(p) } }
    }

    /// A free ephemeral port for `proto`, or nil when all are taken.
    func ephemeralPort(proto: Int32) -> UInt16? {
        if !portRange.contains(nextEphemeral) { nextEphemeral = portRange.lowerBound }
        for _ in 0..<portRange.count {
            let p = nextEphemeral
            nextEphemeral = p >= portRange.upperBound ? portRange.lowerBound : p + 1
            if bound[PortKey(proto: proto, port: p)]?.isEmpty ?? true { return p }
        }
        return nil
    }

    func unbind(_ s: LoopbackSockFD, proto: Int32, port: UInt16) {
        let k = PortKey(proto: proto, port: port)
        bound[k]?.removeAll { $0 === s }
        if bound[k]?.isEmpty == true { bound[k] = nil }
    }

    // MARK: - Interfaces and addresses

    static let loIndex: Int32 = 1
    var lo: NetIface { ifaces[0] }
    var loUp: Bool { lo.up }

    func iface(index: Int32) -> NetIface? { ifaces.first { $0.index == index } }
    func iface(named n: [UInt8]) -> NetIface? { ifaces.first { $0.name == n } }

    /// Brings an interface up or down. lo's first up adds 127.0.0.1/8 (kept
    /// afterwards, as Linux keeps IPv4 addresses) and ::1; going down drops
    /// the interface's IPv6 addresses (Linux's default keep_addr_on_down).
    func setUp(_ i: NetIface, _ up: Bool) {
        if i.up == up { return }
        i.up = up
        if up {
            i.everUp = true
            if i.isLoopback {
                let v4: [UInt8] = [127, 0, 0, 1], v6 = [UInt8](repeating: 0, count: 15) + [1]
                if !addrs.contains(where: { $0.index == i.index && $0.ip == v4 }) {
                    _ = insert(IfAddress(family: AF_INET, index: i.index, prefix: 8, ip: v4, broadcast: nil, label: i.name, scope: 254))
                }
                _ = insert(IfAddress(family: AF_INET6, index: i.index, prefix: 128, ip: v6, broadcast: nil, label: i.name, scope: 254))
            }
        } else {
            addrs.removeAll { $0.index == i.index && $0.family == AF_INET6 }
        }
    }

    /// Adds an address in Linux's order: an IPv4 one in a subnet the
    /// interface already has becomes secondary, at the end; a primary one
    /// goes after the last primary of a scope at least as wide. IPv6 ones
    /// go before the first of a narrower-or-equal source scope.
    func insert(_ a: IfAddress) -> Bool {
        if addrs.contains(where: { $0.family == a.family && $0.index == a.index && $0.ip == a.ip }) { return false }
        var a = a
        if a.family == AF_INET {
            a.secondary = addrs.contains { $0.family == AF_INET && $0.index == a.index && $0.prefix == a.prefix && $0.holds(a.ip) }
            if a.secondary { addrs.append(a); return true }
            var at = addrs.firstIndex { $0.family == AF_INET && $0.index == a.index } ?? addrs.count
            for (k, x) in addrs.enumerated() where x.family == AF_INET && x.index == a.index && !x.secondary && a.scope <= x.scope { at = k + 1 }
            addrs.insert(a, at: at)
        } else {
            func rank(_ ip: [UInt8]) -> Int { ip == [UInt8](repeating: 0, count: 15) + [1] ? 1 : ip[0] == 0xfe && ip[1] & 0xc0 == 0x80 ? 2 : 14 }
            let at = addrs.firstIndex { $0.family == AF_INET6 && $0.index == a.index && rank(a.ip) >= rank($0.ip) } ?? addrs.count
            addrs.insert(a, at: at)
        }
        return true
    }

    /// Whether `ip` (16 bytes, IPv4 v4-mapped) is an address of this
    /// namespace: any address of an interface (an IPv6 one only on an up
    /// interface), the subnet of an IPv4 address on lo once lo is up, and
    /// 127.0.0.0/8 even while lo is down (Linux binds it then too).
    func isLocal(_ ip: [UInt8]) -> Bool {
        if LoopbackSockFD.isMapped(ip) {
            let v4 = Array(ip[12..<16])
            if v4[0] == 127 { return true }
            return addrs.contains { $0.family == AF_INET && ($0.ip == v4 || ($0.index == NetNamespace.loIndex && lo.up && $0.holds(v4))) }
        }
        return addrs.contains { $0.family == AF_INET6 && $0.ip == ip && iface(index: $0.index)?.up == true }
    }

    /// Where a packet to `ip` goes: this namespace (a local address, over
    /// lo, which must be up), the namespace at the other end of an up veth
    /// pair one of whose subnets holds it, nowhere (`ns` nil: a link has
    /// the subnet but no host there answers; a TCP connect is EHOSTUNREACH,
    /// a datagram is lost), or ENETUNREACH (no route). `source` is the
    /// address a socket bound to the wildcard sends from.
    struct Route { let ns: NetNamespace?; let source: [UInt8] }
    func route(_ ip: [UInt8]) -> Result<Route, Errno> {
        let mapped = LoopbackSockFD.isMapped(ip)
        let raw = mapped ? Array(ip[12..<16]) : ip
        let family = mapped ? AF_INET : AF_INET6
        if isLocal(ip) {
            if !lo.up { return .failure(Errno(ENETUNREACH)) }
            if mapped && raw[0] == 127 { return .success(Route(ns: self, source: LoopbackSockFD.v4Loopback)) }
            // An address of the subnet on lo: the subnet's own address sends.
            if mapped, let a = addrs.first(where: { $0.family == AF_INET && $0.index == NetNamespace.loIndex && !$0.secondary && $0.holds(raw) }), a.ip != raw {
                return .success(Route(ns: self, source: Array(LoopbackSockFD.v4Any[0..<12]) + a.ip))
            }
            return .success(Route(ns: self, source: ip))
        }
        for a in addrs where a.family == family && a.holds(raw) && !a.secondary {
            guard let i = iface(index: a.index), i.up, !i.isLoopback else { continue }
            let src = mapped ? Array(LoopbackSockFD.v4Any[0..<12]) + a.ip : a.ip
            if i.running, let p = i.peer, let other = p.ns, other.isLocal(ip) { return .success(Route(ns: other, source: src)) }
            return .success(Route(ns: nil, source: src))
        }
        return .failure(Errno(ENETUNREACH))
    }

    func links() -> [NetlinkSocketFD.Link] {
        ifaces.map { $0.link }
    }

    func addresses(_ family: Int32) -> [NetlinkSocketFD.Addr] {
        var out: [NetlinkSocketFD.Addr] = []
        for i in ifaces {
            for a in addrs where a.index == i.index && a.family == family {
                out.append(NetlinkSocketFD.Addr(family: family, index: a.index, prefix: a.prefix, scope: a.scope,
                                                flags: 0x80 | (a.secondary ? 1 : 0), addr: a.ip, broadcast: a.broadcast,
                                                label: family == AF_INET ? a.label : i.name, permanent: true))
            }
        }
        return out
    }

    // MARK: - The interface ioctls

    /// The interface ioctls (struct ifreq: a 16-byte name, then the value
    /// at byte 16), answered for this namespace's interfaces.
    func ifaceIoctl(_ t: Task, _ cmd: UInt64, _ arg: UInt64) -> Int {
        if cmd == 0x8912 { return ifconf(t, arg) }                                  // SIOCGIFCONF
        let queries: Set<UInt64> = [0x8910, 0x8913, 0x8915, 0x8917, 0x8919, 0x891b, 0x8921, 0x8927, 0x8933, 0x8942]
        let changes: Set<UInt64> = [0x8914, 0x8916, 0x8918, 0x891a, 0x891c, 0x8922, 0x8923, 0x8924, 0x8931, 0x8932, 0x8934]
        guard queries.contains(cmd) || changes.contains(cmd) else { return err(ENOTTY) }
        guard var b = t.copyIn(arg, 40) else { return err(EFAULT) }
        if cmd == 0x8910 {                                                          // SIOCGIFNAME
            guard let i = iface(index: Int32(bitPattern: get32(b, 16))) else { return err(ENODEV) }
            b.replaceSubrange(0..<16, with: i.name + [UInt8](repeating: 0, count: 16 - i.name.count))
            return t.copyOut(arg, b) ? 0 : err(EFAULT)
        }
        var name = Array(b[0..<16])
        if let z = name.firstIndex(of: 0) { name = Array(name[..<z]) }
        guard let i = iface(named: name) else { return err(ENODEV) }
        func sockaddrIn(_ a: [UInt8]) { b.replaceSubrange(16..<32, with: [UInt8(AF_INET), 0, 0, 0] + a + [UInt8](repeating: 0, count: 8)) }
        let v4 = addrs.first { $0.family == AF_INET && $0.index == i.index }
        switch cmd {
        case 0x8933: put32(&b, 16, i.index)                                         // SIOCGIFINDEX
        case 0x8913: b[16] = UInt8(i.flags & 0xff); b[17] = UInt8(i.flags >> 8 & 0xff)   // SIOCGIFFLAGS
        case 0x8921: put32(&b, 16, Int32(bitPattern: i.mtu))                        // SIOCGIFMTU
        case 0x8942: put32(&b, 16, i.isLoopback ? 1000 : 0)                         // SIOCGIFTXQLEN
        case 0x8927:                                                                // SIOCGIFHWADDR
            b.replaceSubrange(16..<32, with: [UInt8(i.arpType & 0xff), UInt8(i.arpType >> 8)] + i.hw + [UInt8](repeating: 0, count: 8))
        case 0x8915, 0x891b, 0x8919, 0x8917:                                        // ADDR NETMASK BRDADDR DSTADDR
            guard let a = v4 else { return err(EADDRNOTAVAIL) }
            switch cmd {
            case 0x891b: sockaddrIn(a.maskBytes)
            case 0x8919: sockaddrIn(a.broadcast ?? [0, 0, 0, 0])
            default: sockaddrIn(a.ip)
            }
        case 0x8914:                                                                // SIOCSIFFLAGS
            if !t.creds.capable(Cap.netAdmin, in: owner) { return err(EPERM) }
            setLinkUp(i, b[16] & UInt8(IFF_UP) != 0)
            return 0
        case 0x8922:                                                                // SIOCSIFMTU
            if !t.creds.capable(Cap.netAdmin, in: owner) { return err(EPERM) }
            let m = Int32(bitPattern: get32(b, 16))
            if m < 68 || m > (i.isLoopback ? 65536 : 65535) { return err(EINVAL) }
            i.mtu = UInt32(m)
            notifyLink(i, type: 16)
            return 0
        default:                                                                    // the other changes
            return t.creds.capable(Cap.netAdmin, in: owner) ? err(EOPNOTSUPP) : err(EPERM)
        }
        return t.copyOut(arg, b) ? 0 : err(EFAULT)
    }

    /// SIOCGIFCONF: every IPv4 address, by its label; with no buffer, the
    /// length the list needs.
    private func ifconf(_ t: Task, _ arg: UInt64) -> Int {
        guard var h = t.copyIn(arg, 16) else { return err(EFAULT) }
        let len = Int32(bitPattern: get32(h, 0)), ubuf = get64(h, 8)
        if len < 0 { return err(EINVAL) }
        var list: [UInt8] = []
        for x in addresses(AF_INET) {
            var e = x.label + [UInt8](repeating: 0, count: 40 - x.label.count)
            e[16] = UInt8(AF_INET)
            e.replaceSubrange(20..<24, with: x.addr)
            list += e
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
            var s = "Inter-|   Receive                                                |  Transmit\n"
                + " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
            for i in ifaces {
                let n = String(decoding: i.name, as: UTF8.self)
                s += String(repeating: " ", count: max(0, 6 - n.count)) + n + ":" + rx + tx + "\n"
            }
            return Array(s.utf8)
        case "if_inet6":
            var s = ""
            for a in addrs where a.family == AF_INET6 {
                guard let i = iface(index: a.index) else { continue }
                let scope = a.ip == [UInt8](repeating: 0, count: 15) + [1] ? 0x10 : a.ip[0] == 0xfe && a.ip[1] & 0xc0 == 0x80 ? 0x20 : 0
                let n = String(decoding: i.name, as: UTF8.self)
                s += a.ip.map { hex($0, width: 2) }.joined() + " \(hex(a.index, width: 2)) \(hex(a.prefix, width: 2)) \(hex(scope, width: 2)) 80 "
                    + String(repeating: " ", count: max(0, 8 - n.count)) + n + "\n"
            }
            return Array(s.utf8)
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

extension IfAddress {
    /// The netmask of `prefix` bits, as 4 bytes.
    var maskBytes: [UInt8] {
        (0..<4).map { k in
            let bits = Int(prefix) - 8 * k
            return bits >= 8 ? 0xff : bits <= 0 ? 0 : ~(0xff >> UInt8(bits))
        }
    }
}

extension Task {
    /// The network namespace this task's new sockets and interface queries use.
    var net: NetNamespace { ownNet ?? .root }
}
