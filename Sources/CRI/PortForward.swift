// Port forwarding for `moat cri`: the stream behind PortForward's URL.
// Clients (crictl port-forward, kubelet's proxy for kubectl port-forward)
// upgrade the HTTP request to SPDY/3.1 with X-Stream-Protocol-Version
// portforward.k8s.io, or open a WebSocket with the subprotocol
// SPDY/3.1+portforward.k8s.io that carries the same SPDY bytes. Each
// forwarded connection is a pair of SPDY streams sharing a `requestid`
// header: an error stream (the server writes a message there if the
// connection into the pod fails, then ends it) and a data stream (the
// connection's bytes both ways). The connection into the pod is a TCP
// socket made inside the pod's network namespace (on a dedicated thread,
// setns affecting only that thread) connected to localhost:PORT, so it
// reaches what listens on the pod's loopback; nothing is opened on the
// host's network.

import Dispatch
import Foundation
import Glibc
import CMoat
import NIOCore
import NIOHTTP1
import NIOWebSocket
import SPDY

struct PortForwardStreamRequest: Sendable {
    var podID: String
    var netns: String
    /// Ports named in the CRI request (informational: the client names the
    /// port on each stream, as kubelet's server allows).
    var ports: [Int32]
}

/// Accepts `Upgrade: SPDY/3.1` for /portforward/TOKEN, /exec/TOKEN and /attach/TOKEN.
final class SPDYUpgrader: HTTPServerProtocolUpgrader, @unchecked Sendable {
    let supportedProtocol = "SPDY/3.1"
    let requiredUpgradeHeaders: [String] = []
    let server: StreamingServer

    init(server: StreamingServer) { self.server = server }

    func buildUpgradeResponse(channel: Channel, upgradeRequest: HTTPRequestHead,
                              initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        let token = upgradeRequest.uri.split(separator: "/").last.map(String.init) ?? ""
        let offered = upgradeRequest.headers["X-Stream-Protocol-Version"].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if upgradeRequest.uri.hasPrefix("/exec/") || upgradeRequest.uri.hasPrefix("/attach/") {
            guard server.peek(token), offered.contains(SPDYExecSession.protocolName) else {
                return channel.eventLoop.makeFailedFuture(SPDYError("no such exec stream, or no v4.channel.k8s.io offered"))
            }
            var h = initialResponseHeaders
            h.add(name: "X-Stream-Protocol-Version", value: SPDYExecSession.protocolName)
            return channel.eventLoop.makeSucceededFuture(h)
        }
        guard upgradeRequest.uri.hasPrefix("/portforward/"), server.peekPortForward(token),
              offered.isEmpty || offered.contains(PortForwardSession.protocolName) else {
            return channel.eventLoop.makeFailedFuture(SPDYError("no such port-forward stream"))
        }
        var h = initialResponseHeaders
        h.add(name: "X-Stream-Protocol-Version", value: PortForwardSession.protocolName)
        return channel.eventLoop.makeSucceededFuture(h)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let token = upgradeRequest.uri.split(separator: "/").last.map(String.init) ?? ""
        let ch = context.channel
        if !upgradeRequest.uri.hasPrefix("/portforward/") {
            guard let req = server.take(token) else { return ch.close() }
            let rt = server.runtime
            return ch.pipeline.removeHandler(name: StreamingServer.notAStreamName).flatMap {
                ch.pipeline.addHandler(RawSPDYHandler(session: SPDYExecSession(request: req, runtime: rt, channel: ch)))
            }
        }
        guard let req = server.takePortForward(token) else { return ch.close() }
        return ch.pipeline.removeHandler(name: StreamingServer.notAStreamName).flatMap {
            ch.pipeline.addHandler(RawSPDYHandler(session: PortForwardSession(request: req, channel: ch, websocket: false)))
        }
    }
}

/// What runs on a SPDY connection: it is fed the connection's bytes and
/// told when the connection is gone.
protocol SPDYSessionHandling: AnyObject, Sendable {
    func receive(_ bytes: [UInt8])
    func closeAll()
}

/// Raw bytes after the HTTP upgrade.
final class RawSPDYHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let session: any SPDYSessionHandling
    init(session: any SPDYSessionHandling) { self.session = session }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        session.receive(b.readBytes(length: b.readableBytes) ?? [])
    }
    func channelInactive(context: ChannelHandlerContext) { session.closeAll() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// SPDY bytes inside WebSocket binary messages.
final class WebSocketSPDYHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let session: PortForwardSession
    init(session: PortForwardSession) { self.session = session }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation, .text:
            var d = frame.unmaskedData
            session.receive(d.readBytes(length: d.readableBytes) ?? [])
        case .connectionClose:
            session.closeAll()
            var d = context.channel.allocator.buffer(capacity: 2)
            d.writeInteger(UInt16(1000))
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: d)))
                .whenComplete { _ in context.close(promise: nil) }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        default: break
        }
    }
    func channelInactive(context: ChannelHandlerContext) { session.closeAll() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// One port-forward connection: SPDY streams in, sockets into the pod out.
/// Frames are parsed on the channel's event loop; socket I/O runs on a
/// thread per forwarded connection (reads) and a serial queue (writes).
final class PortForwardSession: SPDYSessionHandling, @unchecked Sendable {
    static let protocolName = "portforward.k8s.io"
    /// Forwarded connections one session may hold at once; more are refused.
    static let maxConnections = 256
    let request: PortForwardStreamRequest
    let channel: Channel
    let websocket: Bool
    private let codec = SPDYCodec()
    private let lock = NSLock()
    /// Forwarded connections by request id.
    private var pairs: [String: Pair] = [:]
    /// Stream id to the pair it belongs to.
    private var streams: [UInt32: Pair] = [:]
    private var closed = false

    final class Pair: @unchecked Sendable {
        let requestID: String
        var port: Int?
        var errorStream: UInt32?
        var dataStream: UInt32?
        var fd: Int32 = -1
        var started = false
        var finished = false
        let queue = DispatchQueue(label: "moat.cri.portforward.write")
        init(requestID: String) { self.requestID = requestID }
    }

    init(request: PortForwardStreamRequest, channel: Channel, websocket: Bool) {
        self.request = request; self.channel = channel; self.websocket = websocket
    }

    /// Sends bytes built by the codec (the codec is only touched under the lock).
    private func send(_ bytes: [UInt8]) {
        var buf = channel.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        if websocket {
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: buf), promise: nil)
        } else {
            channel.writeAndFlush(buf, promise: nil)
        }
    }

    private func locked<T>(_ f: () throws -> T) rethrows -> T { lock.lock(); defer { lock.unlock() }; return try f() }

    func receive(_ bytes: [UInt8]) {
        let frames: [SPDYFrame]
        do { frames = try locked { try codec.feed(bytes) } } catch {
            closeAll()
            channel.close(promise: nil)
            return
        }
        for f in frames { handle(f) }
    }

    private func handle(_ f: SPDYFrame) {
        switch f {
        case .synStream(let id, let headers, let fin):
            let type = headers["streamtype"] ?? ""
            guard type == "error" || type == "data", let portString = headers["port"], let port = Int(portString),
                  (1...65535).contains(port) else {
                send(locked { codec.rstStream(id, status: 1 /* PROTOCOL_ERROR */) })
                return
            }
            // Older clients send no request id: pair by port, in order.
            let rid = headers["requestid"] ?? "port-\(port)"
            let full: Bool = locked { pairs[rid] == nil && pairs.count >= Self.maxConnections }
            if full {
                send(locked { codec.rstStream(id, status: 3 /* REFUSED_STREAM */) })
                return
            }
            let pair: Pair = locked {
                let p = pairs[rid] ?? Pair(requestID: rid)
                pairs[rid] = p
                streams[id] = p
                p.port = port
                if type == "error" { p.errorStream = id } else { p.dataStream = id }
                return p
            }
            send(locked { codec.synReply(id) })
            _ = fin
            if type == "data" { start(pair, port: port) }
        case .data(let id, let bytes, let fin):
            guard let p = locked({ streams[id] }), id == p.dataStream else { return }
            // The queue runs after the dial (queued first), so the socket is known here.
            p.queue.async { [self] in
                let fd = locked { p.finished ? -1 : p.fd }
                guard fd >= 0 else { return }
                var off = 0
                while off < bytes.count {
                    let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if n < 0 { if errno == EINTR { continue }; return }
                    off += n
                }
                if fin { shutdown(fd, Int32(SHUT_WR)) }
            }
        case .rstStream(let id, _):
            guard let p = locked({ streams[id] }) else { return }
            finish(p, reset: true)
        case .ping(let id):
            send(locked { codec.ping(id) })
        case .goAway:
            closeAll()
        case .synReply, .other:
            break
        }
    }

    /// Connects into the pod and pumps the socket's bytes to the data stream.
    private func start(_ p: Pair, port: Int) {
        let netns = request.netns, podID = request.podID
        p.queue.async { [self] in
            let fd: Int32
            do { fd = try Self.dial(netns: netns, port: port) } catch {
                let message = "error forwarding port \(port) to pod \(podID): \(error)"
                if let e = p.errorStream {
                    send(locked { codec.data(e, Array(message.utf8)[...], fin: false) })
                }
                finish(p, reset: false)
                return
            }
            let keep: Bool = locked {
                if p.finished || closed { return false }
                p.fd = fd
                return true
            }
            guard keep else { close(fd); return }
            let t = Thread { [self] in
                var buf = [UInt8](repeating: 0, count: 32768)
                while true {
                    let n = read(fd, &buf, buf.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    guard let d = p.dataStream else { break }
                    send(locked { codec.data(d, buf[0..<n], fin: false) })
                }
                finish(p, reset: false)
            }
            t.start()
        }
    }

    /// Ends a forwarded connection once: FIN on both streams (unless the
    /// client reset them), the socket closed after pending writes.
    private func finish(_ p: Pair, reset: Bool) {
        let first: Bool = locked {
            if p.finished { return false }
            p.finished = true
            pairs[p.requestID] = nil
            if let d = p.dataStream { streams[d] = nil }
            if let e = p.errorStream { streams[e] = nil }
            return true
        }
        guard first else { return }
        if !reset && !locked({ closed }) {
            var out: [UInt8] = []
            locked {
                if let d = p.dataStream { out += codec.data(d, [], fin: true) }
                if let e = p.errorStream { out += codec.data(e, [], fin: true) }
            }
            if !out.isEmpty { send(out) }
        }
        let fd = p.fd
        if fd >= 0 {
            shutdown(fd, Int32(SHUT_RDWR))
            p.queue.async { close(fd) }
        }
    }

    /// The connection went away: every forwarded connection ends.
    func closeAll() {
        let all: [Pair] = locked {
            closed = true
            return Array(pairs.values)
        }
        for p in all { finish(p, reset: true) }
    }

    /// A TCP socket made in the pod's network namespace, connected to
    /// localhost:PORT (IPv4, then IPv6). Blocking; at most 10 s.
    static func dial(netns: String, port: Int) throws -> Int32 {
        var lastError = "connection refused"
        for family in [AF_INET, AF_INET6] {
            let fd = try socketIn(netns: netns, family: family)
            var ok = false
            defer { if !ok { close(fd) } }
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let rc: Int32
            if family == AF_INET {
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = in_port_t(UInt16(port)).bigEndian
                a.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
                rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            } else {
                var a = sockaddr_in6()
                a.sin6_family = sa_family_t(AF_INET6)
                a.sin6_port = in_port_t(UInt16(port)).bigEndian
                a.sin6_addr = in6addr_loopback
                rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            }
            if rc == 0 {
                tv = timeval(tv_sec: 0, tv_usec: 0)
                _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                ok = true
                return fd
            }
            lastError = String(cString: strerror(errno))
        }
        throw SPDYError("dial tcp localhost:\(port): \(lastError)")
    }

    /// socket(2) on a thread that has joined `netns` and returns before the
    /// socket is used (the socket keeps the namespace it was made in).
    private static func socketIn(netns: String, family: Int32) throws -> Int32 {
        final class Box: @unchecked Sendable { var fd: Int32 = -1; var error = "" }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let t = Thread {
            defer { done.signal() }
            let mine = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            let target = open(netns, O_RDONLY | O_CLOEXEC)
            defer { if mine >= 0 { close(mine) }; if target >= 0 { close(target) } }
            guard mine >= 0, target >= 0 else { box.error = "cannot open the pod's network namespace: \(String(cString: strerror(errno)))"; return }
            guard moat_setns(target, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                box.error = "cannot enter the pod's network namespace: \(String(cString: strerror(errno)))"; return
            }
            let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let err = errno
            if moat_setns(mine, 0x4000_0000) != 0 {
                // This thread cannot go home; it ends here, and the socket is not used.
                if fd >= 0 { close(fd) }
                box.error = "cannot leave the pod's network namespace"
                return
            }
            if fd < 0 { box.error = "socket: \(String(cString: strerror(err)))"; return }
            box.fd = fd
        }
        t.start()
        done.wait()
        guard box.fd >= 0 else { throw SPDYError(box.error) }
        return box.fd
    }
}
