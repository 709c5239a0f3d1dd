// The launcher's side of the sandbox's network: the namespace the Sentry
// starts in (CLONE_NEWNET unless --network host; the Sentry brings its
// loopback up, see Sentry's Kernel/Network.swift) and published ports.
//
// Publishing (-p HOSTPORT:CONTAINERPORT[/udp]) is a proxy in the launcher:
// it listens on the host port in the host's namespace, and for each client
// opens a socket inside the sandbox's namespace (made by one thread that
// joined it with setns when serving started: a socket belongs to the
// namespace of the thread that creates it) to the container port on
// loopback, then copies bytes both ways. Nothing is configured on the host:
// the listening sockets, the threads and the namespace reference all end
// with the launcher, whatever ends it.

import CMoat
import Glibc
import Sentry

public struct PortMapping: Equatable, Sendable {
    public var hostPort: UInt16
    public var containerPort: UInt16
    public var udp: Bool
    public var hostAddress: String

    /// Parses [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp].
    public static func parse(_ s: String) -> PortMapping? {
        var spec = Substring(s)
        var udp = false
        if let slash = spec.lastIndex(of: "/") {
            switch spec[spec.index(after: slash)...] {
            case "udp": udp = true
            case "tcp": break
            default: return nil
            }
            spec = spec[..<slash]
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3,
              let h = UInt16(parts[parts.count - 2]), let c = UInt16(parts[parts.count - 1]), h > 0, c > 0 else { return nil }
        let addr = parts.count == 3 ? String(parts[0]) : "0.0.0.0"
        var probe = in_addr()
        if inet_pton(AF_INET, addr, &probe) != 1 { return nil }
        return PortMapping(hostPort: h, containerPort: c, udp: udp, hostAddress: addr)
    }
}

/// Published ports: host sockets bound before the sandbox starts (so a
/// taken port is reported as a launch error), served once it runs.
final class PortPublisher: @unchecked Sendable {
    private var bound: [(PortMapping, Int32)] = []

    init(_ ports: [PortMapping]) throws(LaunchError) {
        for p in ports {
            let s = socket(AF_INET, (p.udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if s < 0 { throw LaunchError("socket: errno \(errno)") }
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = p.hostPort.bigEndian
            inet_pton(AF_INET, p.hostAddress, &sa.sin_addr)
            let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if r != 0 || (!p.udp && listen(s, 1024) != 0) {
                let e = errno
                close(s)
                closeAll()
                throw LaunchError("cannot publish \(p.hostAddress):\(p.hostPort)\(p.udp ? "/udp" : ""): \(String(cString: strerror(e)))")
            }
            bound.append((p, s))
        }
    }

    func closeAll() { for (_, s) in bound { close(s) }; bound.removeAll() }

    /// Starts serving, into the network namespace of process `pid`.
    func start(sandboxPid: pid_t) {
        if bound.isEmpty { return }
        let nsFD = open("/proc/\(sandboxPid)/ns/net", O_RDONLY | O_CLOEXEC)
        if nsFD < 0 { _ = Sandbox.fail("cannot open the sandbox's network namespace: errno \(errno); ports are not published", 0); return }
        defer { close(nsFD) }
        guard let ns = NamespaceSockets(nsFD) else {
            _ = Sandbox.fail("cannot join the sandbox's network namespace: errno \(errno); ports are not published", 0)
            return
        }
        for (p, s) in bound {
            if p.udp {
                startThread { PortPublisher.serveUDP(s, ns, p.containerPort) }
            } else {
                startThread {
                    while true {
                        let c = moat_accept4(s, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
                        if c < 0 { if errno == EINTR || errno == ECONNABORTED || errno == EMFILE { continue }; return }
                        startThread { PortPublisher.relayTCP(c, ns, p.containerPort) }
                    }
                }
            }
        }
    }

    /// A socket made inside the sandbox's namespace, connected to its
    /// loopback port.
    static func sandboxSocket(_ ns: NamespaceSockets, _ type: Int32, _ port: UInt16) -> Int32 {
        let s = ns.socket(type)
        if s < 0 { return -1 }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 { close(s); return -1 }
        return s
    }

    static func relayTCP(_ client: Int32, _ ns: NamespaceSockets, _ port: UInt16) {
        let inner = sandboxSocket(ns, Int32(SOCK_STREAM.rawValue), port)
        if inner < 0 { close(client); return }
        var one: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        setsockopt(inner, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        var buf = [UInt8](repeating: 0, count: 65536)
        // Each direction: open until its reader sees end of file.
        var open = [true, true]
        let ends = [(client, inner), (inner, client)]
        while open[0] || open[1] {
            var p = [pollfd(fd: open[0] ? client : -1, events: Int16(POLLIN), revents: 0),
                     pollfd(fd: open[1] ? inner : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&p, 2, -1) < 0 { if errno == EINTR { continue }; break }
            for i in 0..<2 where open[i] && p[i].revents != 0 {
                let (from, to) = ends[i]
                let n = buf.withUnsafeMutableBytes { read(from, $0.baseAddress!, $0.count) }
                if n <= 0 {
                    open[i] = false
                    shutdown(to, Int32(SHUT_WR))
                    if n < 0 { open = [false, false] }
                    continue
                }
                var off = 0
                while off < n {
                    let w = buf.withUnsafeBytes { send(to, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }
                    if w <= 0 { if w < 0 && errno == EINTR { continue }; open = [false, false]; break }
                    off += w
                }
            }
        }
        close(client); close(inner)
    }

    /// UDP: one socket inside the sandbox per client address, kept while
    /// the client is active (replies go back to that client).
    static func serveUDP(_ outer: Int32, _ ns: NamespaceSockets, _ port: UInt16) {
        struct Flow { var inner: Int32; var client: sockaddr_in; var last: Int64 }
        var flows: [UInt64: Flow] = [:]
        var buf = [UInt8](repeating: 0, count: 65536)
        func key(_ a: sockaddr_in) -> UInt64 { UInt64(a.sin_addr.s_addr) << 16 | UInt64(a.sin_port) }
        func now() -> Int64 { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return Int64(ts.tv_sec) }
        while true {
            let list = Array(flows.values)
            var p = [pollfd(fd: outer, events: Int16(POLLIN), revents: 0)] + list.map { pollfd(fd: $0.inner, events: Int16(POLLIN), revents: 0) }
            if poll(&p, nfds_t(p.count), 10_000) < 0 { if errno == EINTR { continue }; return }
            if p[0].revents != 0 {
                var from = sockaddr_in()
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = buf.withUnsafeMutableBytes { b in
                    withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(outer, b.baseAddress!, b.count, 0, $0, &len) } }
                }
                if n >= 0 {
                    var f = flows[key(from)]
                    if f == nil {
                        let s = sandboxSocket(ns, Int32(SOCK_DGRAM.rawValue), port)
                        if s >= 0 { f = Flow(inner: s, client: from, last: now()) }
                    }
                    if var fl = f {
                        fl.last = now()
                        flows[key(from)] = fl
                        _ = buf.withUnsafeBytes { send(fl.inner, $0.baseAddress!, n, 0) }
                    }
                }
            }
            for (i, fl) in list.enumerated() where p[i + 1].revents != 0 {
                let n = buf.withUnsafeMutableBytes { recv(fl.inner, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 { continue }
                var to = fl.client
                _ = buf.withUnsafeBytes { b in
                    withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(outer, b.baseAddress!, n, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                }
                flows[key(fl.client)]?.last = now()
            }
            let t = now()
            for (k, fl) in flows where t - fl.last > 120 { close(fl.inner); flows[k] = nil }
        }
    }
}

/// Sockets inside another network namespace, made by one thread that joined
/// it at `init` and stays there. Joining (setns) needs CAP_SYS_ADMIN, which
/// the launcher gives up once its sandbox runs (moat_launcher_confine);
/// making a socket in the namespace one is already in needs nothing.
final class NamespaceSockets: @unchecked Sendable {
    /// [0]: the launcher's end, [1]: the thread's (requests in, sockets out).
    private var chan: [Int32] = [-1, -1]
    private var mu = pthread_mutex_t()

    /// Nil (errno set) when the thread cannot join `nsFD`'s namespace.
    init?(_ nsFD: Int32) {
        if socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &chan) != 0 { return nil }
        pthread_mutex_init(&mu, nil)
        let end = chan[1]
        let ns = dup(nsFD)
        startThread {
            let joined = moat_setns(ns, 0x40000000 /* CLONE_NEWNET */) == 0 ? Int32(0) : errno
            Glibc.close(ns)
            NamespaceSockets.put(end, joined)
            if joined != 0 { return }
            // Serve until the launcher ends: a socket type in, a socket (or -errno) out.
            while let type = NamespaceSockets.get(end) {
                let s = Glibc.socket(AF_INET, type | Int32(SOCK_CLOEXEC.rawValue), 0)
                NamespaceSockets.put(end, s >= 0 ? s : -errno)
            }
        }
        let joined = NamespaceSockets.get(chan[0]) ?? EIO
        if joined != 0 {
            for fd in chan { Glibc.close(fd) }
            errno = joined
            return nil
        }
    }

    /// A new socket (AF_INET, `type`) in the namespace, or -1 (errno set).
    func socket(_ type: Int32) -> Int32 {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        NamespaceSockets.put(chan[0], type)
        guard let s = NamespaceSockets.get(chan[0]) else { errno = EIO; return -1 }
        if s < 0 { errno = -s; return -1 }
        return s
    }

    private static func put(_ fd: Int32, _ v: Int32) {
        var x = v
        while write(fd, &x, 4) < 0 && errno == EINTR {}
    }
    private static func get(_ fd: Int32) -> Int32? {
        var x: Int32 = 0
        while true {
            let n = read(fd, &x, 4)
            if n == 4 { return x }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }
}

/// The host's name servers that a sandbox can reach (not loopback ones).
public func hostNameServers() -> [String] {
    let fd = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC)
    if fd < 0 { return [] }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 8192)
    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
    if n <= 0 { return [] }
    return String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n").compactMap { line in
        let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard f.count >= 2, f[0] == "nameserver", !f[1].hasPrefix("127."), f[1] != "::1" else { return nil }
        return String(f[1])
    }
}

/// The Sentry's network modes, for the launcher's users.
public typealias NetworkMode = Sentry.NetworkMode

struct LaunchError: Error { let message: String; init(_ m: String) { message = m } }

/// A detached pthread running `body`.
func startThread(_ body: @escaping () -> Void) {
    final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attr, 256 << 10)
    var th = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    if pthread_create(&th, &attr, { p in
        Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().body()
        return nil
    }, box) != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
    }
}

/// Egress for `--network sandbox`: the sandbox's own namespace has only
/// loopback, and instead of a veth pair with NAT (which needs the host-wide
/// ip_forward switch and firewall rules, host state a killed launcher would
/// leave behind) outbound TCP connections and UDP sockets are brokered here, at the socket
/// layer: the Sentry sends a destination over a SOCK_SEQPACKET pair made
/// before it was confined; the launcher, in the host's namespace, checks it
/// (TCP or UDP; never a loopback, unspecified or multicast address), makes
/// a non-blocking socket bound to the default route's interface (so the
/// host's loopback services stay out of reach whatever is done with it
/// later), starts the connection itself (TCP, or UDP when asked) and passes
/// the socket back (SCM_RIGHTS).
/// The application sees its socket connected as with NAT. Nothing is
/// configured on the host; the broker ends with the launcher.
final class EgressBroker: @unchecked Sendable {
    let sentryEnd: Int32
    private let mine: Int32

    init?() {
        var sv: [Int32] = [-1, -1]
        if socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) != 0 { return nil }
        mine = sv[0]; sentryEnd = sv[1]
        _ = EgressBroker.routeTables   // opened now: the confined launcher opens no file
    }

    /// /proc/net/route and /proc/net/ipv6_route, open for the launcher's
    /// lifetime and read again from the start for each request (routes may
    /// change while the sandbox runs).
    static let routeTables: (v4: Int32, v6: Int32) = (open("/proc/net/route", O_RDONLY | O_CLOEXEC),
                                                        open("/proc/net/ipv6_route", O_RDONLY | O_CLOEXEC))

    func start() {
        close(sentryEnd)
        let fd = mine
        startThread { EgressBroker.serve(fd) }
    }

    /// Request: family u16, type u16, address length u16, connect u8 (UDP:
    /// connect, or leave unconnected for sendto), 1 byte padding, then the
    /// sockaddr. Reply: an errno as i32 (0, EINPROGRESS, or why
    /// not), with the socket when one was made.
    static func serve(_ chan: Int32) {
        var buf = [UInt8](repeating: 0, count: 256)
        while true {
            var passed: Int32 = -1
            let n = buf.withUnsafeMutableBytes { moat_recv_fd(chan, $0.baseAddress!, $0.count, &passed) }
            if passed >= 0 { close(passed) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { close(chan); return }
            var (result, sock) = connectOut(Array(buf[0..<Int(n)]))
            let sent = withUnsafeBytes(of: &result) { moat_send_fd(chan, $0.baseAddress!, 4, sock) }
            if sock >= 0 { close(sock) }
            if sent < 0 { close(chan); return }
        }
    }

    static func connectOut(_ req: [UInt8]) -> (Int32, Int32) {
        guard req.count >= 8 else { return (EINVAL, -1) }
        let family = Int32(req[0]) | Int32(req[1]) << 8
        let type = Int32(req[2]) | Int32(req[3]) << 8
        let alen = Int(req[4]) | Int(req[5]) << 8
        let connectIt = type == Int32(SOCK_STREAM.rawValue) || req[6] != 0
        guard type == Int32(SOCK_STREAM.rawValue) || type == Int32(SOCK_DGRAM.rawValue),
              alen <= 128, req.count >= 8 + alen else { return (EPERM, -1) }
        let addr = Array(req[8..<8 + alen])
        guard isRemote(family: family, addr), let dev = egressDevice(family: family) else { return (ENETUNREACH, -1) }
        let s = socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { return (errno, -1) }
        // Tied to the interface of the default route: whatever the Sentry
        // later does with this socket (a new connect after a failed one, a
        // sendto elsewhere), the host's loopback is not reachable through it.
        let bd = dev.withCString { setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
        if bd != 0 { let e = errno; close(s); return (e, -1) }
        if !connectIt { return (0, s) }
        let r = addr.withUnsafeBytes { connect(s, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(alen)) }
        if r != 0 && errno != EINPROGRESS { let e = errno; close(s); return (e, -1) }
        return (r == 0 ? 0 : EINPROGRESS, s)
    }

    /// The interface of the host's default route for a family, from
    /// /proc/net/route or /proc/net/ipv6_route.
    static func egressDevice(family: Int32) -> String? {
        let v6 = family == AF_INET6
        let fd = v6 ? routeTables.v6 : routeTables.v4
        if fd < 0 { return nil }
        var text = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(text.count)) }
            if n <= 0 { break }
            text += buf[0..<n]
        }
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if v6 {
                // dest, prefix len, ..., flags, device (last); default: ::/0 not via lo.
                if f.count >= 10, f[0] == "00000000000000000000000000000000", f[1] == "00", f[9] != "lo" { return String(f[9]) }
            } else if f.count >= 8, f[1] == "00000000", f[7] == "00000000", f[0] != "Iface" {
                return String(f[0])
            }
        }
        return nil
    }

    /// A destination outside the host: not loopback, unspecified, multicast
    /// or broadcast, in either family (IPv4-mapped IPv6 checked as IPv4).
    static func isRemote(family: Int32, _ a: [UInt8]) -> Bool {
        func v4ok(_ b: ArraySlice<UInt8>) -> Bool {
            let x = Array(b)
            return x[0] != 127 && x[0] != 0 && x[0] < 224
        }
        if family == AF_INET { return a.count >= 16 && Int(a[0]) | Int(a[1]) << 8 == Int(AF_INET) && v4ok(a[4..<8]) }
        if family == AF_INET6 {
            guard a.count >= 24, Int(a[0]) | Int(a[1]) << 8 == Int(AF_INET6) else { return false }
            let ip = Array(a[8..<24])
            if ip[0] == 0xff { return false }                                   // multicast
            if ip[0..<15].allSatisfy({ $0 == 0 }) { return false }              // :: and ::1
            if ip[0..<10].allSatisfy({ $0 == 0 }) && ip[10] == 0xff && ip[11] == 0xff { return v4ok(ip[12..<16]) }
            return true
        }
        return false
    }
}

/// Published ports for sandboxes started by other means than `Sandbox.run`
/// (moat's standalone sandboxes, whose supervisor serves them): the host
/// ports are bound at `init` (a taken port is an error there), served into
/// the sandbox's network namespace from `start` on, closed by `close`.
public final class PublishedPorts: @unchecked Sendable {
    private let publisher: PortPublisher
    public init(_ ports: [PortMapping]) throws {
        do { publisher = try PortPublisher(ports) } catch { throw PodError(.failedPrecondition, error.message) }
    }
    public func start(sandboxPid: pid_t) { publisher.start(sandboxPid: sandboxPid) }
    public func close() { publisher.closeAll() }
}
