// The service proxy's sockets: listeners made inside a pod's network namespace (or the
// node's), and the byte pumps behind them. TCP: each accepted connection gets a thread that
// connects to a backend (the next one that answers) and copies both ways, passing on
// half-closes. UDP: one socket per client address toward the backend, replies sent back
// from the listener (so they come from the Service's address); idle flows end after 30 s.
//
// A socket belongs to the network namespace it was made in, whatever thread uses it later:
// `socketIn` makes it on a short-lived thread that joins the namespace (setns) and returns;
// a thread that cannot return never runs anything again. Nothing here changes the host:
// every listener and flow is a socket of this process and ends with it, however it ends.

import CMoat
import Foundation
import Glibc

/// Where a Service port's traffic may go: an address, reached from the node's namespace, or
/// (a pod with loopback only, IP 127.0.0.1) the pod's own loopback, from inside its namespace.
struct ProxyBackend: Hashable, Sendable {
    var ip: String
    var port: Int
    var netns: String?
}

enum ProxySockets {
    static let CLONE_NEWNET: Int32 = 0x4000_0000

    /// A new socket (close-on-exec) in `netns` (nil: this process's namespace); -1 on failure.
    static func socketIn(_ netns: String?, udp: Bool) -> Int32 {
        let type = (udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)) | Int32(SOCK_CLOEXEC.rawValue)
        guard let netns else { return socket(AF_INET, type, 0) }
        let done = DispatchSemaphore(value: 0)
        let box = FDBox()
        let t = Thread {
            let mine = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            let target = open(netns, O_RDONLY | O_CLOEXEC)
            defer { if mine >= 0 { close(mine) }; if target >= 0 { close(target) } }
            guard mine >= 0, target >= 0, moat_setns(target, CLONE_NEWNET) == 0 else { done.signal(); return }
            let fd = socket(AF_INET, type, 0)
            if moat_setns(mine, CLONE_NEWNET) != 0 {
                if fd >= 0 { close(fd) }
                done.signal()
                while true { pause() }
            }
            box.fd = fd
            done.signal()
        }
        t.start()
        done.wait()
        return box.fd
    }

    final class FDBox: @unchecked Sendable { var fd: Int32 = -1 }

    static func address(_ ip: String, _ port: Int) -> sockaddr_in? {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, ip, &a.sin_addr) == 1 else { return nil }
        return a
    }

    static func withAddress<R>(_ a: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var a = a
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }

    /// A listening (TCP) or bound (UDP) socket on ip:port in `netns`; nil on failure.
    static func listen(_ netns: String?, ip: String, port: Int, udp: Bool) -> Int32? {
        guard let a = address(ip, port) else { return nil }
        let fd = socketIn(netns, udp: udp)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        guard withAddress(a, { bind(fd, $0, $1) }) == 0, udp || Glibc.listen(fd, 128) == 0 else { close(fd); return nil }
        return fd
    }

    /// A TCP connection to the backend, or -1 (refused, unreachable, or no answer in 3 s).
    static func connectTCP(_ b: ProxyBackend) -> Int32 {
        guard let a = address(b.ip, b.port) else { return -1 }
        let fd = socketIn(b.netns, udp: false)
        guard fd >= 0 else { return -1 }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard withAddress(a, { connect(fd, $0, $1) }) == 0 else { close(fd); return -1 }
        tv = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Copies bytes both ways until both directions have ended; closes both sockets.
    static func pump(_ a: Int32, _ b: Int32) {
        defer { close(a); close(b) }
        var open = [true, true]   // a→b, b→a
        var buf = [UInt8](repeating: 0, count: 65536)
        while open[0] || open[1] {
            var fds = [pollfd(fd: open[0] ? a : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: open[1] ? b : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 { if errno == EINTR { continue }; return }
            for (i, (from, to)) in [(a, b), (b, a)].enumerated() where open[i] && fds[i].revents != 0 {
                let n = read(from, &buf, buf.count)
                if n <= 0 {
                    if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                    if n < 0 { return }   // reset: end both ways (closing sends the reset on)
                    open[i] = false
                    shutdown(to, Int32(SHUT_WR))
                    continue
                }
                var off = 0
                while off < n {
                    let w = buf[off..<n].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if w <= 0 { if w < 0 && errno == EINTR { continue }; return }
                    off += w
                }
            }
        }
    }
}

/// One listener of the proxy: a socket and the thread that serves it until `stop`.
final class ProxyListener: @unchecked Sendable {
    let fd: Int32
    let udp: Bool
    private let lock = NSLock()
    private var stopped = false
    /// The backends, asked at each new connection or flow.
    let backends: @Sendable () -> [ProxyBackend]

    init(fd: Int32, udp: Bool, backends: @escaping @Sendable () -> [ProxyBackend]) {
        self.fd = fd; self.udp = udp; self.backends = backends
    }

    var isStopped: Bool { lock.withLock { stopped } }

    func start() {
        let t = Thread { [self] in udp ? serveUDP() : serveTCP() }
        t.start()
    }

    /// The serving thread notices within half a second and closes the socket.
    func stop() { lock.withLock { stopped = true } }

    private func serveTCP() {
        defer { close(fd) }
        while !isStopped {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 500) == 1 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            let candidates = backends()
            let t = Thread {
                // The next backend that answers; none: the client's connection is reset.
                for b in candidates {
                    let s = ProxySockets.connectTCP(b)
                    if s >= 0 { ProxySockets.pump(c, s); return }
                }
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(c, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                close(c)
            }
            t.start()
        }
    }

    private func serveUDP() {
        struct Flow { var fd: Int32; var client: sockaddr_in; var last: Date }
        var flows: [UInt64: Flow] = [:]
        defer { close(fd); for f in flows.values { close(f.fd) } }
        var buf = [UInt8](repeating: 0, count: 65536)
        func key(_ a: sockaddr_in) -> UInt64 { UInt64(a.sin_addr.s_addr) << 16 | UInt64(a.sin_port) }
        while !isStopped {
            let order = Array(flows.keys)
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)] + order.map { pollfd(fd: flows[$0]!.fd, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 500) > 0 else {
                for (k, f) in flows where Date().timeIntervalSince(f.last) > 30 { close(f.fd); flows[k] = nil }
                continue
            }
            if fds[0].revents != 0 {
                var from = sockaddr_in()
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buf, buf.count, 0, $0, &len) } }
                if n >= 0 {
                    let k = key(from)
                    if flows[k] == nil, let b = backends().first, let a = ProxySockets.address(b.ip, b.port) {
                        let s = ProxySockets.socketIn(b.netns, udp: true)
                        if s >= 0, ProxySockets.withAddress(a, { connect(s, $0, $1) }) == 0 {
                            flows[k] = Flow(fd: s, client: from, last: Date())
                        } else if s >= 0 { close(s) }
                    }
                    if var f = flows[k] {
                        _ = send(f.fd, buf, n, Int32(MSG_NOSIGNAL))
                        f.last = Date(); flows[k] = f
                    }
                }
            }
            for (i, k) in order.enumerated() where fds[i + 1].revents != 0 {
                guard var f = flows[k] else { continue }
                let n = recv(f.fd, &buf, buf.count, Int32(MSG_DONTWAIT))
                if n < 0 && errno != EAGAIN { close(f.fd); flows[k] = nil; continue }
                if n >= 0 {
                    _ = ProxySockets.withAddress(f.client) { sendto(fd, buf, n, 0, $0, $1) }
                    f.last = Date(); flows[k] = f
                }
            }
        }
    }
}
