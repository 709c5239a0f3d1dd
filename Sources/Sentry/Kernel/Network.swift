// The sandbox's network: which host network namespace the Sentry's inet
// sockets live in, and what the Sentry prepares there before it confines
// itself.
//
// Modes (`moat run --network`):
// - none:    a new network namespace with only loopback, brought up here.
// - sandbox: the same, plus outbound TCP and UDP through the launcher's egress
//            broker (Sources/Sandbox/Network.swift): a connect to an address
//            outside the sandbox swaps the application's socket for one the
//            launcher made and connected in the host's namespace, after
//            checking the destination (the socket-level equivalent of NAT,
//            with no host configuration to leave behind).
// - host:    the host's namespace; nothing is changed here.
// The launcher creates the namespace (CLONE_NEWNET when it starts the
// Sentry), so the Sentry is never in the host's namespace unless asked.
//
// Before confinement, in its own namespace, the Sentry: brings `lo` up;
// lets any group open ICMP echo sockets (net.ipv4.ping_group_range) and
// lets its (capability-less) self bind ports below 1024
// (net.ipv4.ip_unprivileged_port_start = 0), so the emulated credentials
// decide instead (InetSocketFD.bind); and opens /proc/self/net/{tcp,udp,
// tcp6,udp6,dev} so the sandbox's /proc/net shows the namespace's view
// later, when the Sentry can no longer open files. These sysctls are per
// namespace and vanish with it. It also forks the address helper
// (CMoat/netconf.c), the one process that may still change the namespace:
// its addresses and ip_local_port_range, on the application's requests.
//
// Toward a userspace TCP/IP stack (gVisor's netstack is the reference).
// Today an application socket is a host socket: the host kernel's TCP, UDP
// and IP code parse every packet and hold every connection, and the Sentry
// must be allowed socket/bind/connect/... on AF_INET(6). With a stack in
// the Sentry:
// - What changes: InetSocketFD keeps its syscall surface but is backed by
//   endpoints of a Sentry-side stack (TCP state machine, congestion control,
//   UDP, ICMP, IPv4/IPv6, ARP/NDP, routing), driven by a link endpoint that
//   exchanges raw frames with the outside over one fd: a TAP or an AF_PACKET
//   socket on the veth inside the namespace, handed to the Sentry before
//   confinement. Loopback traffic never leaves the Sentry. The seccomp
//   filter then drops socket(), bind(), connect() and listen() entirely
//   (only read/write/recvmmsg/sendmmsg on that one fd remain), and
//   /proc/net, SIOCGIF*, netlink (RTM_GETLINK/GETADDR/GETROUTE, which
//   `ip` and if_nameindex need) become emulated views of the stack.
//   Readiness becomes the stack's own wait queues instead of host poll, so
//   blocking calls use Task.block like pipes do.
// - What it buys: the host kernel's network code no longer sees
//   application-chosen socket options, addresses or connection state (the
//   largest remaining attack surface reached through the Sentry); netlink
//   and raw/packet sockets can be offered safely; per-sandbox limits and
//   accounting; checkpoint/restore of connections. Cost: a large, subtle
//   component to write and keep correct, and throughput limited by the
//   Sentry (gVisor pays this; its host-network mode exists for speed).

import CMoat
import Glibc

public enum NetworkMode: String, Sendable {
    case none, sandbox, host
}

enum SentryNetwork {
    /// Host fds of /proc/self/net files, opened before confinement (by name).
    nonisolated(unsafe) static var procNet: [String: Int32] = [:]
    nonisolated(unsafe) static var mode: NetworkMode = .none
    /// The launcher's egress broker (Sandbox/Network.swift), or -1.
    nonisolated(unsafe) static var egressFD: Int32 = -1
    /// The address helper's channel (CMoat/netconf.c), in a namespace of
    /// the sandbox's own only; -1 with --network host.
    nonisolated(unsafe) static var netconfFD: Int32 = -1

    /// Asks the broker for a TCP or UDP socket in the host's namespace,
    /// already connecting to `addr` (UDP: unless `connect` is false). Returns the socket and the connect's errno
    /// (0 or EINPROGRESS). Requires: Kernel.mu held (one request at a time).
    static func egress(family: Int32, type: Int32, _ addr: [UInt8], connect: Bool = true) -> Result<(Int32, Int32), Errno> {
        var req = [UInt8](repeating: 0, count: 8) + addr
        req[6] = connect ? 1 : 0
        req[0] = UInt8(family & 0xff); req[1] = UInt8(family >> 8)
        req[2] = UInt8(type & 0xff); req[3] = UInt8(type >> 8)
        req[4] = UInt8(addr.count & 0xff); req[5] = UInt8(addr.count >> 8)
        if req.withUnsafeBytes({ moat_send_fd(egressFD, $0.baseAddress!, $0.count, -1) }) < 0 { return .failure(Errno(ENETUNREACH)) }
        var result: Int32 = 0
        var fd: Int32 = -1
        var n: Int32
        repeat { n = withUnsafeMutableBytes(of: &result) { moat_recv_fd(egressFD, $0.baseAddress!, 4, &fd) } } while n < 0 && errno == EINTR
        if n != 4 { if fd >= 0 { close(fd) }; return .failure(Errno(ENETUNREACH)) }
        if fd < 0 { return .failure(Errno(result == 0 ? ENETUNREACH : result)) }
        return .success((fd, result))
    }

    /// Whether a destination is outside the sandbox (its namespace has
    /// loopback only): what egress applies to. Multicast and broadcast
    /// stay inside (the broker never carries them): the namespace's route
    /// for 224.0.0.0/4 delivers them to the sandbox's own members.
    static func isOutside(_ a: [UInt8]) -> Bool {
        guard a.count >= 2 else { return false }
        let fam = Int32(a[0]) | Int32(a[1]) << 8
        if fam == AF_INET { return a.count >= 16 && a[4] != 127 && a[4] != 0 && a[4] < 224 }
        if fam == AF_INET6 {
            guard a.count >= 24 else { return false }
            let ip = Array(a[8..<24])
            if ip[0..<15].allSatisfy({ $0 == 0 }) { return false }
            if ip[0..<10].allSatisfy({ $0 == 0 }) && ip[10] == 0xff && ip[11] == 0xff { return ip[12] != 127 && ip[12] != 0 && ip[12] < 224 }
            return ip[0] != 0xff
        }
        return false
    }

    /// Prepares the namespace. Returns an error message, or nil.
    /// `joinPath` names a network namespace to join first (an OCI
    /// configuration's `linux.namespaces` network path): the calling thread,
    /// the main one, joins it, and every driver thread made afterwards
    /// inherits it; nothing in it is changed (`mode` should be .host).
    static func setUp(_ mode: NetworkMode, joinPath: String? = nil) -> String? {
        if let e = beginSetUp(mode, joinPath: joinPath, concurrently: false) { return e }
        return finishSetUp()
    }

    /// `setUp` in two halves, so that `moat run`'s start need not wait for
    /// it: this one does, on the calling (main) thread, what must happen
    /// there (joining `joinPath`; forking the address helper, whose
    /// PR_SET_PDEATHSIG follows the thread that forked it, and which gets
    /// ready meanwhile), and leaves the
    /// rest (loopback, the multicast route, the sysctls, the /proc/net
    /// files: about a millisecond of host calls) to a thread of its own when
    /// `concurrently`, while the main thread attaches to the Gofer and
    /// builds the kernel. `finishSetUp` waits for it; both come before
    /// confinement, which needs every thread but the stub factory's gone.
    static func beginSetUp(_ mode: NetworkMode, joinPath: String? = nil, concurrently: Bool) -> String? {
        self.mode = mode
        if let p = joinPath {
            let fd = open(p, O_RDONLY | O_CLOEXEC)
            if fd < 0 { return "cannot open the network namespace \(p): errno \(errno)" }
            defer { close(fd) }
            if moat_setns(fd, 0x4000_0000 /* CLONE_NEWNET */) != 0 { return "cannot join the network namespace \(p): errno \(errno)" }
        }
        if mode != .host {
            // Never touch the host's namespace: refuse if the launcher did
            // not give us our own.
            var mine = Glibc.stat(), host = Glibc.stat()
            if stat("/proc/self/ns/net", &mine) != 0 { return "cannot inspect the network namespace: errno \(errno)" }
            if stat("/proc/1/ns/net", &host) == 0 && mine.st_ino == host.st_ino && mine.st_dev == host.st_dev {
                return "the sentry is not in its own network namespace (--network \(mode.rawValue))"
            }
            // Its wait for the helper to be ready is in finishSetUp.
            netconfPending = moat_netconf_fork()
        }
        guard concurrently else { preparedError = prepare(); return nil }
        var th = pthread_t()
        if pthread_create(&th, nil, { _ in SentryNetwork.preparedError = SentryNetwork.prepare(); return nil }, nil) != 0 {
            preparedError = prepare()
            return nil
        }
        preparing = th
        return nil
    }

    /// Waits for what `beginSetUp` left to its thread; its error, or nil.
    static func finishSetUp() -> String? {
        if let th = preparing {
            pthread_join(th, nil)
            preparing = nil
        }
        if netconfPending != 0 {
            let nc = netconfPending < 0 ? netconfPending : moat_netconf_ready(netconfPending)
            netconfPending = 0
            if nc >= 0 { netconfFD = nc } else { Log.shared.info("no address helper: errno \(-nc); address changes are refused") }
        }
        return preparedError
    }

    /// The address helper's channel until it is ready (or -errno); 0: none.
    nonisolated(unsafe) private static var netconfPending: Int32 = 0
    nonisolated(unsafe) private static var preparing: pthread_t? = nil
    nonisolated(unsafe) private static var preparedError: String? = nil

    /// The namespace's set-up that needs no particular thread.
    private static func prepare() -> String? {
        if mode != .host {
            if let e = bringUpLoopback() { return e }
            addMulticastRoute()
            writeSysctl("/proc/sys/net/ipv4/ping_group_range", "0 2147483647\n")
            writeSysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0\n")
        }
        for name in ["tcp", "tcp6", "udp", "udp6", "dev", "raw", "raw6", "icmp", "icmp6", "snmp", "netstat", "if_inet6", "route"] {
            let fd = open("/proc/self/net/" + name, O_RDONLY | O_CLOEXEC)
            if fd >= 0 { procNet[name] = fd }
        }
        return nil
    }

    private static func bringUpLoopback() -> String? {
        let s = socket(AF_INET, SOCK_DGRAM_ | SOCK_CLOEXEC_, 0)
        if s < 0 { return "cannot make a socket to configure loopback: errno \(errno)" }
        defer { close(s) }
        var req = ifreq()
        withUnsafeMutableBytes(of: &req.ifr_ifrn.ifrn_name) { b in
            for (i, c) in "lo".utf8.enumerated() { b[i] = c }
        }
        if ioctl(s, UInt(SIOCGIFFLAGS), &req) != 0 { return "cannot read loopback's flags: errno \(errno)" }
        req.ifr_ifru.ifru_flags |= Int16(IFF_UP | IFF_RUNNING)
        if ioctl(s, UInt(SIOCSIFFLAGS), &req) != 0 { return "cannot bring loopback up: errno \(errno)" }
        return nil
    }

    /// A route for IPv4 multicast (224.0.0.0/4) through loopback: without
    /// one a namespace holding only `lo` answers ENETUNREACH to every
    /// multicast send, where a host (or gVisor's netstack) with a default
    /// route delivers it to the local members. Gone with the namespace.
    private static func addMulticastRoute() {
        let s = socket(AF_INET, SOCK_DGRAM_ | SOCK_CLOEXEC_, 0)
        if s < 0 { return }
        defer { close(s) }
        // struct rtentry (x86_64): rt_dst at 8, rt_genmask at 40 (struct
        // sockaddr_in: family, port, address), rt_flags at 56, rt_dev at 88.
        var rt = [UInt8](repeating: 0, count: 120)
        rt[8] = UInt8(AF_INET); rt[12] = 224
        rt[40] = UInt8(AF_INET); rt[44] = 240
        rt[56] = 1 // RTF_UP
        var dev: [CChar] = Array("lo".utf8CString)
        let r = dev.withUnsafeMutableBufferPointer { d -> Int32 in
            put64(&rt, 88, UInt64(UInt(bitPattern: d.baseAddress!)))
            return rt.withUnsafeMutableBytes { ioctl(s, 0x890B /* SIOCADDRT */, $0.baseAddress!) }
        }
        if r != 0 { Log.shared.info("cannot add the multicast route to loopback: errno \(errno)") }
    }

    private static func writeSysctl(_ path: String, _ value: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd < 0 { Log.shared.info("cannot open \(path): errno \(errno)"); return }
        _ = value.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// A /proc/net/{tcp,udp}[6] table with each socket's uid column (the
    /// eighth field) the application's owner of its inode (the tenth): the
    /// host file says the Sentry's own uid. Widths as the kernel's (%5u).
    static func withOwners(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, line) in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if i > 0 { out.append(UInt8(ascii: "\n")) }
            let f = line.split(separator: UInt8(ascii: " "))
            guard i > 0, f.count > 9, let uidField = f.dropFirst(7).first, let ino = UInt64(String(decoding: f[9], as: UTF8.self)),
                  let uid = InetSocketFD.owners[ino] else { out += line; continue }
            // " %5u" after the field before it, as the kernel prints it.
            var end = uidField.startIndex
            while end > line.startIndex && line[end - 1] == UInt8(ascii: " ") { end -= 1 }
            let u = String(uid)
            out += line[line.startIndex..<end]
            out += Array((" " + String(repeating: " ", count: max(0, 5 - u.count)) + u).utf8)
            out += line[uidField.endIndex...]
        }
        return out
    }

    /// The current content of /proc/net/<name> in the sandbox's namespace.
    static func procNetText(_ name: String) -> [UInt8]? {
        guard let fd = procNet[name] else { return nil }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < 4 << 20 {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, out.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }
}

extension SentryNetwork {
    /// /etc/hosts (and /etc/resolv.conf when name servers are given) as the
    /// options say, mounted over the root file system's copies as files in
    /// Sentry memory. With --network host and no options the root's own
    /// files are left alone. Requires: k.mu held.
    static func mountNameFiles(_ k: Kernel, _ fs: FSContext, hostname: String, addHosts: [String], dns: [String]) {
        func place(_ path: String, _ text: String) {
            if case .failure = k.vfs.resolve(fs, start: k.vfs.rootPath, Array(path.utf8)),
               case .success(let dir) = k.vfs.resolve(fs, start: k.vfs.rootPath, Array("/etc".utf8)) {
                // A mount point for it, where the root is writable (the overlay).
                _ = dir.inode.create(Array(path.dropFirst(5).utf8), mode: S_IFREG_ | 0o644, uid: 0, gid: 0, flags: O_CREAT | O_WRONLY)
                dir.dentry.children[Array(path.dropFirst(5).utf8)] = nil
            }
            guard case .success(let p) = k.vfs.resolve(fs, start: k.vfs.rootPath, Array(path.utf8)), !p.inode.isDir else {
                Log.shared.info("\(path) is missing from the root file system; not generated")
                return
            }
            let f = TmpfsInode(mode: S_IFREG_ | 0o644, dev: 9)
            f.data = Array(text.utf8)
            k.vfs.mount(f, at: p, fsType: "tmpfs", source: "tmpfs")
        }
        if mode != .host || !addHosts.isEmpty {
            var hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(hostname)\n"
            for h in addHosts {
                guard let i = h.firstIndex(of: ":") else { continue }
                hosts += "\(h[h.index(after: i)...])\t\(h[..<i])\n"
            }
            place("/etc/hosts", hosts)
        }
        if !dns.isEmpty { place("/etc/resolv.conf", dns.map { "nameserver \($0)\n" }.joined()) }
    }
}

extension Kernel {
    /// /proc/net: the namespace's tables from the host, /proc/net/unix from
    /// the Sentry's own AF_UNIX sockets.
    func makeProcNetDir(_ task: @escaping () -> Task? = { nil }) -> ProcNode {
        let k = self
        var files: [String: ProcNode] = [:]
        var ino: UInt64 = 60
        // A namespace made inside the sandbox shows its own (Kernel/NetNamespaces.swift).
        if let n = task()?.ownNet, !n.isRoot {
            for name in NetNamespace.procNetNames {
                files[name] = ProcNode(kernel: k, ino: ino, mode: S_IFREG_ | 0o444, content: { _ in n.procNet(name, k) ?? [] })
                ino += 1
            }
            return ProcNode(kernel: k, ino: 58, mode: S_IFDIR_ | 0o555, lookup: { _, n in files[String(decoding: n, as: UTF8.self)] },
                            list: { _ in files.map { DirEntry(ino: $0.value.ino, type: 8, name: Array($0.key.utf8)) } })
        }
        for name in SentryNetwork.procNet.keys.sorted() {
            let owned = ["tcp", "tcp6", "udp", "udp6"].contains(name)
            files[name] = ProcNode(kernel: k, ino: ino, mode: S_IFREG_ | 0o444, content: { _ in
                let text = SentryNetwork.procNetText(name) ?? []
                return owned ? SentryNetwork.withOwners(text) : text
            })
            ino += 1
        }
        files["unix"] = ProcNode(kernel: k, ino: 59, mode: S_IFREG_ | 0o444, content: { _ in Array(k.unixNames.procText().utf8) })
        return ProcNode(kernel: k, ino: 58, mode: S_IFDIR_ | 0o555, lookup: { _, n in files[String(decoding: n, as: UTF8.self)] },
                        list: { _ in files.map { DirEntry(ino: $0.value.ino, type: 8, name: Array($0.key.utf8)) } })
    }
}
