// NETLINK_ROUTE's changes in a network namespace made inside the sandbox
// (Kernel/NetNamespaces.swift): links and addresses, as `ip link` and
// `ip addr` make them.
//
// - RTM_NEWLINK with IFLA_LINKINFO's IFLA_INFO_KIND "dummy", "bridge" or
//   "veth" makes a link (a veth pair's peer from VETH_INFO_PEER, in this
//   namespace or the one IFLA_NET_NS_PID / IFLA_NET_NS_FD names, registered
//   first as Linux does, so it has the lower index); any other kind is
//   EOPNOTSUPP, as a kernel without that driver. On an existing link
//   (RTM_NEWLINK or RTM_SETLINK) it moves it to another namespace, renames
//   it (up or not, as Linux 6.x), sets its MTU and brings it up or down.
// - RTM_DELLINK removes a link (both ends of a veth pair); lo is EOPNOTSUPP.
// - RTM_NEWADDR / RTM_DELADDR add and remove IPv4 and IPv6 addresses on
//   any link, with Linux's errors (EEXIST, EADDRNOTAVAIL, ENODEV, EINVAL).
// - Sockets that joined RTNLGRP_LINK get RTM_NEWLINK / RTM_DELLINK events.
// Traffic: addresses of the namespace are local (over lo); a veth pair
// carries what is sent to a subnet of one end to the namespace of the
// other end (NetNamespace.route). Dummy and bridge links carry nothing.

import Glibc

extension NetNamespace {
    /// Netlink attributes from `off` (type without NLA_F_NESTED and
    /// NLA_F_NET_BYTEORDER), or nil when one overruns the message.
    static func attributes(_ b: [UInt8], from off: Int) -> [(UInt16, [UInt8])]? {
        var out: [(UInt16, [UInt8])] = []
        var o = off
        while o + 4 <= b.count {
            let len = Int(UInt16(b[o]) | UInt16(b[o + 1]) << 8), type = (UInt16(b[o + 2]) | UInt16(b[o + 3]) << 8) & 0x3fff
            if len < 4 || o + len > b.count { return nil }
            out.append((type, Array(b[o + 4..<o + len])))
            o += (len + 3) & ~3
        }
        return out
    }

    private static func cString(_ b: [UInt8]) -> [UInt8] { b.firstIndex(of: 0).map { Array(b[..<$0]) } ?? b }

    // MARK: - Links

    /// A free name `prefix`N (Linux's "%d" names), other than `taken`.
    private func freeName(_ prefix: String, besides taken: [UInt8]? = nil) -> [UInt8] {
        var n = 0
        func name() -> [UInt8] { Array((prefix + String(n)).utf8) }
        while iface(named: name()) != nil || name() == taken { n += 1 }
        return name()
    }

    private func addIface(_ name: [UInt8], kind: String, index: Int32? = nil) -> NetIface {
        var hw = (0..<6).map { _ in UInt8.random(in: 0...255) }
        hw[0] = hw[0] & 0xfe | 0x02                                   // locally administered, unicast
        let i = NetIface(index: index ?? nextIndex, name: name, kind: kind, mtu: 1500, hw: hw)
        nextIndex = max(nextIndex, i.index + 1)
        i.ns = self
        ifaces.append(i)
        ifaces.sort { $0.index < $1.index }
        return i
    }

    /// Takes `i` out of this namespace (its addresses go with it).
    func detach(_ i: NetIface) {
        notifyLink(i, type: 17)
        ifaces.removeAll { $0 === i }
        addrs.removeAll { $0.index == i.index }
        i.ns = nil
    }

    /// The namespace IFLA_NET_NS_PID (19) or IFLA_NET_NS_FD (28) names, if either is given.
    private func targetNamespace(_ t: Task, _ attrs: [(UInt16, [UInt8])]) -> Result<NetNamespace, Errno>? {
        var n: NetNamespace
        if let p = attrs.first(where: { $0.0 == 19 })?.1, p.count >= 4 {
            guard let x = t.kernel.task(Int32(bitPattern: get32(p, 0)), by: t) else { return .failure(Errno(ESRCH)) }
            n = x.net
        } else if let f = attrs.first(where: { $0.0 == 28 })?.1, f.count >= 4 {
            guard let file = t.fds.get(Int32(bitPattern: get32(f, 0))) else { return .failure(Errno(EBADF)) }
            guard let nf = file as? NamespaceFile, case .net(let x) = nf.kind else { return .failure(Errno(EINVAL)) }
            n = x
        } else {
            return nil
        }
        if !t.creds.capable(Cap.netAdmin, in: n.owner) { return .failure(Errno(EPERM)) }
        // The sandbox's own namespace has host interfaces only: none is made there.
        if n.isRoot { return .failure(Errno(EOPNOTSUPP)) }
        return .success(n)
    }

    /// RTM_NEWLINK (16) and RTM_SETLINK (19): 0 or an errno.
    func changeLink(_ t: Task, _ msg: [UInt8], type: UInt16, flags: UInt16) -> Int32 {
        if msg.count < 32 { return EINVAL }
        guard let attrs = NetNamespace.attributes(msg, from: 32) else { return EINVAL }
        let index = Int32(bitPattern: get32(msg, 20)), fl = get32(msg, 24), change = get32(msg, 28)
        let name = attrs.first { $0.0 == 3 }.map { NetNamespace.cString($0.1) }
        if let n = name, n.isEmpty || n.count >= 16 { return EINVAL }
        if index != 0 || name != nil, let i = index != 0 ? iface(index: index) : iface(named: name!) {
            if type == 16 && flags & 0x200 != 0 { return EEXIST }                     // NLM_F_EXCL
            return setLink(t, i, attrs, flags: fl, change: change)
        }
        if index != 0 || type == 19 || flags & 0x400 == 0 { return ENODEV }          // NLM_F_CREATE
        guard let info = attrs.first(where: { $0.0 == 18 })?.1, let ia = NetNamespace.attributes(info, from: 0),
              let kindB = ia.first(where: { $0.0 == 1 })?.1 else { return EOPNOTSUPP }
        let kind = String(decoding: NetNamespace.cString(kindB), as: UTF8.self)
        guard ["dummy", "veth", "bridge"].contains(kind) else { return EOPNOTSUPP }
        let own = name ?? freeName(kind)
        if iface(named: own) != nil { return EEXIST }
        var made: NetIface
        if kind == "veth" {
            var peerName: [UInt8]? = nil, peerNS = self
            if let data = ia.first(where: { $0.0 == 2 })?.1, let da = NetNamespace.attributes(data, from: 0),
               let p = da.first(where: { $0.0 == 1 })?.1, p.count >= 16 {                // VETH_INFO_PEER: ifinfomsg, attributes
                guard let pa = NetNamespace.attributes(p, from: 16) else { return EINVAL }
                peerName = pa.first { $0.0 == 3 }.map { NetNamespace.cString($0.1) }
                if let n = peerName, n.isEmpty || n.count >= 16 { return EINVAL }
                switch targetNamespace(t, pa) { case .success(let n)?: peerNS = n; case .failure(let e)?: return e.code; case nil: break }
            }
            let pn = peerName ?? peerNS.freeName("veth", besides: peerNS === self ? own : nil)
            if peerNS.iface(named: pn) != nil || (peerNS === self && pn == own) { return EEXIST }
            let p = peerNS.addIface(pn, kind: "veth")
            made = addIface(own, kind: "veth")
            p.peer = made; made.peer = p
            peerNS.notifyLink(p, type: 16)
        } else {
            made = addIface(own, kind: kind)
        }
        if let m = attrs.first(where: { $0.0 == 4 })?.1, m.count >= 4 { made.mtu = get32(m, 0) }
        notifyLink(made, type: 16)
        if fl & UInt32(IFF_UP) != 0 { setLinkUp(made, true) }
        return 0
    }

    /// Changes to an existing link, in Linux's order (do_setlink): its
    /// namespace, its name, its MTU, then its flags.
    private func setLink(_ t: Task, _ i: NetIface, _ attrs: [(UInt16, [UInt8])], flags fl: UInt32, change: UInt32) -> Int32 {
        var home = self
        var newName = attrs.first { $0.0 == 3 }.map { NetNamespace.cString($0.1) }
        if newName == i.name { newName = nil }
        switch targetNamespace(t, attrs) {
        case .failure(let e)?: return e.code
        case .success(let n)? where n !== self:
            if i.isLoopback { return EINVAL }                                          // NETIF_F_NETNS_LOCAL
            if n.iface(named: newName ?? i.name) != nil { return EEXIST }
            setUp(i, false)
            detach(i)
            if n.iface(index: i.index) != nil { i.index = n.nextIndex }
            n.nextIndex = max(n.nextIndex, i.index + 1)
            i.ns = n
            if let x = newName { i.name = x; newName = nil }
            n.ifaces.append(i)
            n.ifaces.sort { $0.index < $1.index }
            n.notifyLink(i, type: 16)
            if let p = i.peer, let pn = p.ns { pn.notifyLink(p, type: 16) }
            home = n
        default: break
        }
        if let x = newName {
            if home.iface(named: x) != nil { return EEXIST }
            i.name = x
            for k in home.addrs.indices where home.addrs[k].index == i.index && home.addrs[k].family == AF_INET { home.addrs[k].label = x }
            home.notifyLink(i, type: 16)
        }
        if let m = attrs.first(where: { $0.0 == 4 })?.1, m.count >= 4 {
            let v = get32(m, 0)
            if v < 68 || v > (i.isLoopback ? 65536 : 65535) { return EINVAL }
            if v != i.mtu { i.mtu = v; home.notifyLink(i, type: 16) }
        }
        if fl != 0 || change != 0 {
            let up = change == 0 || change & UInt32(IFF_UP) != 0 ? fl & UInt32(IFF_UP) != 0 : i.up
            home.setLinkUp(i, up)
        }
        return 0
    }

    /// Brings a link up or down (SIOCSIFFLAGS, RTM_NEWLINK); a veth's peer
    /// gains or loses its carrier with it.
    func setLinkUp(_ i: NetIface, _ up: Bool) {
        if i.up == up { return }
        setUp(i, up)
        notifyLink(i, type: 16)
        if let p = i.peer, let pn = p.ns, p.up { pn.notifyLink(p, type: 16) }
    }

    /// RTM_DELLINK: 0 or an errno.
    func deleteLink(_ msg: [UInt8]) -> Int32 {
        if msg.count < 32 { return EINVAL }
        guard let attrs = NetNamespace.attributes(msg, from: 32) else { return EINVAL }
        let index = Int32(bitPattern: get32(msg, 20))
        let name = attrs.first { $0.0 == 3 }.map { NetNamespace.cString($0.1) }
        guard let i = index != 0 ? iface(index: index) : name.flatMap({ iface(named: $0) }) else { return index == 0 && name == nil ? EINVAL : ENODEV }
        if i.isLoopback { return EOPNOTSUPP }
        detach(i)
        if let p = i.peer, let pn = p.ns { pn.detach(p) }
        return 0
    }

    /// An RTM_NEWLINK / RTM_DELLINK event to the sockets of this namespace in RTNLGRP_LINK.
    func notifyLink(_ i: NetIface, type: UInt16) {
        NetlinkSocketFD.broadcast(in: self, group: 1, NetlinkSocketFD.linkEvent(i.link, type: type))
    }

    // MARK: - Addresses

    /// RTM_NEWADDR (20) and RTM_DELADDR (21): struct ifaddrmsg, then
    /// IFA_ADDRESS (1), IFA_LOCAL (2), IFA_LABEL (3), IFA_BROADCAST (4).
    func changeAddress(_ msg: [UInt8], type: UInt16, flags: UInt16) -> Int32 {
        if msg.count < 24 { return EINVAL }
        let family = Int32(msg[16]), prefix = msg[17], scope = msg[19], index = Int32(bitPattern: get32(msg, 20))
        if family != AF_INET && family != AF_INET6 { return EOPNOTSUPP }
        guard let attrs = NetNamespace.attributes(msg, from: 24) else { return EINVAL }
        let alen = family == AF_INET ? 4 : 16
        func attr(_ k: UInt16) -> [UInt8]? { attrs.first { $0.0 == k && $0.1.count >= alen }.map { Array($0.1.prefix(alen)) } }
        let local = attr(2), address = attr(1)
        if Int(prefix) > alen * 8 { return EINVAL }
        if type == 21 {
            guard iface(index: index) != nil else { return ENODEV }
            let k: Int?
            if family == AF_INET {
                let label = attrs.first { $0.0 == 3 }.map { NetNamespace.cString($0.1) }
                k = addrs.firstIndex { a in
                    a.family == AF_INET && a.index == index && (local == nil || a.ip == local!) && (label == nil || a.label == label!)
                        && (address == nil || (a.prefix == prefix && a.holds(address!)))
                }
            } else {
                guard let ip = local ?? address else { return EINVAL }
                k = addrs.firstIndex { $0.family == AF_INET6 && $0.index == index && $0.ip == ip && $0.prefix == prefix }
            }
            guard let at = k else { return EADDRNOTAVAIL }
            let gone = addrs.remove(at: at)
            // Linux drops a deleted primary's secondaries (promote_secondaries off).
            if family == AF_INET && !gone.secondary {
                addrs.removeAll { $0.family == AF_INET && $0.index == index && $0.secondary && $0.prefix == gone.prefix && gone.holds($0.ip) }
            }
            return 0
        }
        guard let ip = family == AF_INET ? local : local ?? address else { return EINVAL }
        guard let i = iface(index: index) else { return ENODEV }
        if let k = addrs.firstIndex(where: { $0.family == family && $0.index == index && $0.ip == ip && (family == AF_INET6 || $0.prefix == prefix) }) {
            if flags & 0x200 != 0 || flags & 0x100 == 0 { return EEXIST }             // NLM_F_EXCL, or no NLM_F_REPLACE
            addrs[k].prefix = prefix
            if let b = attrs.first(where: { $0.0 == 4 && $0.1.count == 4 })?.1 { addrs[k].broadcast = b }
            return 0
        }
        let v6scope: UInt8 = ip == [UInt8](repeating: 0, count: 15) + [1] ? 254 : ip[0] == 0xfe && ip[1] & 0xc0 == 0x80 ? 253 : 0
        let label = attrs.first { $0.0 == 3 }.map { NetNamespace.cString($0.1) } ?? i.name
        _ = insert(IfAddress(family: family, index: index, prefix: prefix, ip: ip,
                             broadcast: family == AF_INET ? attrs.first { $0.0 == 4 && $0.1.count == 4 }?.1 : nil,
                             label: label, scope: family == AF_INET ? scope : v6scope))
        return 0
    }
}
