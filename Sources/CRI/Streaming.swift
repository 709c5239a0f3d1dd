// Streaming: the HTTP server behind Exec's URL (kubelet and crictl connect
// to it after the Exec call returns). The URL names a one-time token that
// expires after a minute; the request it stands for stays on the server, so
// nothing in the URL can be changed to run something else. The stream is a
// WebSocket speaking Kubernetes' remotecommand channel protocol
// (v5.channel.k8s.io, or v4.channel.k8s.io): each binary message starts
// with a channel byte, 0 stdin, 1 stdout, 2 stderr, 3 the final status (a
// JSON Status object), 4 terminal resize; v5 adds 255, "close this
// channel" (from the client: end of stdin). Attach (/attach/TOKEN) speaks
// the same protocol: the container's output from the moment of attaching
// (the pod's Sentry copies it to pipes it is handed), and stdin into the
// pipe the container was made with. PortForward (/portforward/TOKEN) is
// SPDY/3.1, raw after an HTTP upgrade or inside a WebSocket: see
// PortForward.swift. Exec and attach are served over SPDY too (an HTTP
// upgrade to SPDY/3.1 with X-Stream-Protocol-Version v4.channel.k8s.io:
// crictl's default transport, and what kubelet's proxy sends): SPDYExec.swift.

import CRIAPI
import Dispatch
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Sandbox

struct ExecStreamRequest: Sendable {
    var containerID: String
    var cmd: [String]
    var tty: Bool
    var stdin: Bool
    var stdout: Bool
    var stderr: Bool
    /// Attach to the container's own process instead of running `cmd`.
    var attach = false
}

final class StreamingServer: @unchecked Sendable {
    static let protocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    let runtime: CRIRuntime
    private(set) var baseURL = ""
    private var channel: Channel?
    private let lock = NSLock()
    private var pending: [String: (ExecStreamRequest, Date)] = [:]
    private var pendingPortForwards: [String: (PortForwardStreamRequest, Date)] = [:]
    static let notAStreamName = NotAStreamHandler.name
    /// The WebSocket subprotocol of SPDY tunnelled in a WebSocket.
    static let tunnelledPortForward = "SPDY/3.1+portforward.k8s.io"

    init(runtime: CRIRuntime) { self.runtime = runtime }

    /// Binds HOST:PORT (port 0: any free port).
    func start(address: String) async throws {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw CRIError.invalidArgument("--streaming-address \(address.debugDescription): expected HOST:PORT")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let upgrader = NIOWebSocketServerUpgrader(
            shouldUpgrade: { [self] ch, head in
                let token = head.uri.split(separator: "/").last.map(String.init) ?? ""
                let offered = head.headers["Sec-WebSocket-Protocol"].flatMap { $0.split(separator: ",") }
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                if head.uri.hasPrefix("/portforward/") {
                    guard offered.contains(Self.tunnelledPortForward), peekPortForward(token) else {
                        return ch.eventLoop.makeSucceededFuture(nil)
                    }
                    var h = HTTPHeaders()
                    h.add(name: "Sec-WebSocket-Protocol", value: Self.tunnelledPortForward)
                    return ch.eventLoop.makeSucceededFuture(h)
                }
                guard head.uri.hasPrefix("/exec/") || head.uri.hasPrefix("/attach/"), let proto = Self.protocols.first(where: offered.contains),
                      peek(token) else {
                    return ch.eventLoop.makeSucceededFuture(nil)
                }
                var h = HTTPHeaders()
                h.add(name: "Sec-WebSocket-Protocol", value: proto)
                return ch.eventLoop.makeSucceededFuture(h)
            },
            upgradePipelineHandler: { [self] ch, head in
                let token = head.uri.split(separator: "/").last.map(String.init) ?? ""
                if head.uri.hasPrefix("/portforward/") {
                    guard let req = takePortForward(token) else { return ch.close() }
                    return ch.pipeline.removeHandler(name: NotAStreamHandler.name).flatMap {
                        ch.pipeline.addHandler(WebSocketSPDYHandler(session: PortForwardSession(request: req, channel: ch, websocket: true)))
                    }
                }
                let v5 = head.headers["Sec-WebSocket-Protocol"].joined().contains("v5.channel.k8s.io")
                guard let req = take(token) else { return ch.close() }
                // The 404 handler reads HTTP parts; after the upgrade the
                // channel carries WebSocket frames, which it must not see.
                let rt = self.runtime
                return ch.pipeline.removeHandler(name: NotAStreamHandler.name).flatMap {
                    ch.pipeline.addHandler(ExecStreamHandler(request: req, runtime: rt, v5: v5))
                }
            })
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                ch.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader, SPDYUpgrader(server: self)],
                                                                            completionHandler: { _ in })).flatMap {
                    ch.pipeline.addHandler(NotAStreamHandler(), name: NotAStreamHandler.name)
                }
            }
        let ch = try await bootstrap.bind(host: host, port: port).get()
        channel = ch
        let bound = ch.localAddress?.port ?? port
        let shownHost = host.contains(":") ? "[\(host)]" : host
        baseURL = "http://\(shownHost):\(bound)"
    }

    func stop() { try? channel?.close().wait() }

    /// A URL for one exec or attach, valid for a minute.
    func register(_ r: ExecStreamRequest) -> String {
        let token = String(newID().prefix(32))
        lock.lock()
        let now = Date()
        pending = pending.filter { $0.value.1 > now }
        pending[token] = (r, now.addingTimeInterval(60))
        lock.unlock()
        return baseURL + (r.attach ? "/attach/" : "/exec/") + token
    }

    /// A URL for one port-forward session, valid for a minute.
    func register(_ r: PortForwardStreamRequest) -> String {
        let token = String(newID().prefix(32))
        lock.lock()
        let now = Date()
        pendingPortForwards = pendingPortForwards.filter { $0.value.1 > now }
        pendingPortForwards[token] = (r, now.addingTimeInterval(60))
        lock.unlock()
        return baseURL + "/portforward/" + token
    }

    func peekPortForward(_ token: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let (_, exp) = pendingPortForwards[token] else { return false }
        return exp > Date()
    }

    func takePortForward(_ token: String) -> PortForwardStreamRequest? {
        lock.lock(); defer { lock.unlock() }
        guard let (r, exp) = pendingPortForwards.removeValue(forKey: token), exp > Date() else { return nil }
        return r
    }

    func peek(_ token: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let (_, exp) = pending[token] else { return false }
        return exp > Date()
    }

    func take(_ token: String) -> ExecStreamRequest? {
        lock.lock(); defer { lock.unlock() }
        guard let (r, exp) = pending.removeValue(forKey: token), exp > Date() else { return nil }
        return r
    }
}

/// Anything that is not a WebSocket upgrade to a live token: 404.
final class NotAStreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    static let name = "not-a-stream"
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let body = "no such stream (an exec URL is used once, within a minute, as a WebSocket speaking \(StreamingServer.protocols.joined(separator: " or ")))\n"
        var head = HTTPResponseHead(version: .http1_1, status: .notFound)
        head.headers.add(name: "Content-Length", value: String(body.utf8.count))
        head.headers.add(name: "Content-Type", value: "text/plain")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// One exec over a WebSocket: the process's stdio are pipes pumped to and
/// from channel-tagged messages.
final class ExecStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let request: ExecStreamRequest
    let runtime: CRIRuntime
    let v5: Bool
    /// With a terminal: the resize messages (channel 4) go to the pod's Sentry through it.
    let terminal = ExecTerminal()
    private var stdinWrite: Int32 = -1
    private let stdinQueue = DispatchQueue(label: "moat.cri.exec.stdin")

    init(request: ExecStreamRequest, runtime: CRIRuntime, v5: Bool) {
        self.request = request; self.runtime = runtime; self.v5 = v5
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        var inFDs: [Int32] = [-1, -1]
        if request.stdin, pipe(&inFDs) == 0 {
            for fd in inFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            stdinWrite = inFDs[1]
        }
        let stdinRead = inFDs[0]
        Self.serve(request, runtime: runtime, stdinRead: stdinRead, gone: gone, terminal: terminal,
                   emit: { ch, bytes in Self.send(channel, ch, bytes) },
                   finish: { status, error in Self.finish(channel, status: status, error: error) })
    }

    /// Runs an exec or attach whose stdin (if any) is `stdinRead`, sending
    /// output through `emit` (channel 1 stdout, 2 stderr) and ending with
    /// `finish` (wait status, or an error). Shared by the WebSocket and SPDY
    /// transports.
    static func serve(_ req: ExecStreamRequest, runtime: CRIRuntime, stdinRead: Int32, gone: ManagedAtomicFlag,
                      terminal: ExecTerminal? = nil,
                      emit: @escaping @Sendable (UInt8, [UInt8]) -> Void,
                      finish: @escaping @Sendable (Int32, String?) -> Void) {
        Task {
            do {
                let (c, sb) = try await runtime.runningSandbox(req.containerID)
                if req.attach {
                    let writer = await runtime.attachStdin(c.id)
                    let id = c.id
                    try await offload {
                        try Self.attach(sb, c, req, stdin: stdinRead, writer: writer, emit: emit, gone: gone,
                                        stdinEnded: { Task { await runtime.attachEnded(id) } })
                    }
                    await runtime.attachEnded(c.id)
                    finish(0, nil)
                    return
                }
                let status = try await offload { try Self.run(sb, c, req, stdin: stdinRead, terminal: terminal, emit: emit) }
                finish(status, nil)
            } catch {
                if stdinRead >= 0 { close(stdinRead) }
                finish(0, "\(error)")
            }
        }
    }

    /// Runs the process; returns its wait status once its output is drained.
    static func run(_ sb: PodSandbox, _ c: ContainerRecord, _ r: ExecStreamRequest, stdin: Int32, terminal: ExecTerminal? = nil,
                    emit: @escaping @Sendable (UInt8, [UInt8]) -> Void) throws -> Int32 {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard pipe(&out) == 0, pipe(&err) == 0 else { throw CRIError.internalError("pipe: \(String(cString: strerror(errno)))") }
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        let group = DispatchGroup()
        for (fd, ch, wanted) in [(out[0], UInt8(1), r.stdout), (err[0], UInt8(2), r.stderr)] {
            group.enter()
            Thread.detachNewThread {
                var buf = [UInt8](repeating: 0, count: 32768)
                while true {
                    let n = read(fd, &buf, buf.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    if wanted { emit(ch, Array(buf[0..<n])) }
                }
                close(fd)
                group.leave()
            }
        }
        var p = ExecDefaults.process(r.cmd, in: c)
        p.tty = r.tty
        p.stdin = r.stdin
        let result = Result {
            try sb.exec(c.id, p, stdin: stdin >= 0 ? stdin : null, stdout: out[1], stderr: err[1], timeoutSeconds: 0,
                        terminal: r.tty ? terminal : nil)
        }
        close(out[1]); close(err[1]); close(null)
        if stdin >= 0 { close(stdin) }
        group.wait()
        return try result.get()
    }

    /// Set once the client is gone: the output pumps of an attach stop
    /// (closing their pipes, so the Sentry stops copying).
    private let gone = ManagedAtomicFlag()

    /// Streams the container's output until it exits (or the client goes);
    /// stdin is copied into the container's stdin pipe until the client
    /// closes it.
    static func attach(_ sb: PodSandbox, _ c: ContainerRecord, _ r: ExecStreamRequest, stdin: Int32, writer: Int32?,
                       emit: @escaping @Sendable (UInt8, [UInt8]) -> Void, gone: ManagedAtomicFlag,
                       stdinEnded: @escaping @Sendable () -> Void) throws {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard pipe(&out) == 0 else { throw CRIError.internalError("pipe: \(String(cString: strerror(errno)))") }
        guard pipe(&err) == 0 else { close(out[0]); close(out[1]); throw CRIError.internalError("pipe: \(String(cString: strerror(errno)))") }
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        do { try sb.attach(c.id, stdout: out[1], stderr: err[1]) } catch {
            for fd in out + err { close(fd) }
            if let writer { close(writer) }
            if stdin >= 0 { close(stdin) }
            throw error
        }
        close(out[1]); close(err[1])
        if stdin >= 0 {
            Thread.detachNewThread {
                var buf = [UInt8](repeating: 0, count: 32768)
                loop: while true {
                    let n = read(stdin, &buf, buf.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    guard let w = writer else { continue }
                    var off = 0
                    while off < n {
                        let m = buf[off..<n].withUnsafeBytes { write(w, $0.baseAddress, $0.count) }
                        if m < 0 { if errno == EINTR { continue }; break loop }
                        off += m
                    }
                }
                close(stdin)
                if let writer { close(writer) }
                // The client's stdin ended: a stdin_once container's stdin
                // ends with it (the runtime's own write end is closed).
                stdinEnded()
            }
        } else if let writer { close(writer) }
        let group = DispatchGroup()
        for (fd, ch, wanted) in [(out[0], UInt8(1), r.stdout), (err[0], UInt8(r.tty ? 1 : 2), r.stderr)] {
            group.enter()
            Thread.detachNewThread {
                var buf = [UInt8](repeating: 0, count: 32768)
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                while !gone.isSet {
                    let ready = poll(&p, 1, 200)
                    if ready == 0 { continue }
                    if ready < 0 { if errno == EINTR { continue }; break }
                    let n = read(fd, &buf, buf.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    if wanted { emit(ch, Array(buf[0..<n])) }
                }
                close(fd)
                group.leave()
            }
        }
        group.wait()
    }

    static func send(_ channel: Channel, _ ch: UInt8, _ bytes: [UInt8]) {
        var buf = channel.allocator.buffer(capacity: bytes.count + 1)
        buf.writeInteger(ch)
        buf.writeBytes(bytes)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: buf), promise: nil)
    }

    /// The final Status on channel 3, then a normal close.
    static func finish(_ channel: Channel, status: Int32, error: String?) {
        send(channel, 3, Array(statusJSON(status: status, error: error).utf8))
        var data = channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: .normalClosure)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// The final status as Kubernetes' remotecommand v4 encodes it (a metav1.Status).
    static func statusJSON(status: Int32, error: String?) -> String {
        let json: String
        if let error {
            json = #"{"metadata":{},"status":"Failure","message":\#(jsonString(error)),"reason":"InternalError"}"#
        } else {
            let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
            let code = signaled ? 128 + (status & 0x7f) : (status >> 8) & 0xff
            if code == 0 {
                json = #"{"metadata":{},"status":"Success"}"#
            } else {
                json = #"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: \#(code)","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"\#(code)"}]}}"#
            }
        }
        return json
    }

    /// A resize message ({"Width":COLUMNS,"Height":ROWS}, possibly several in a row) to the terminal.
    static func resize(_ terminal: ExecTerminal, _ bytes: [UInt8]) {
        for part in String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "}" }) {
            guard let o = try? JSONSerialization.jsonObject(with: Data((part + "}").utf8)) as? [String: Any],
                  let w = (o["Width"] as? NSNumber)?.intValue, let h = (o["Height"] as? NSNumber)?.intValue,
                  w > 0, h > 0, w <= 0xffff, h <= 0xffff else { continue }
            terminal.resize(columns: UInt16(w), rows: UInt16(h))
        }
    }

    static func jsonString(_ s: String) -> String {
        String(decoding: (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text:
            var d = frame.unmaskedData
            guard let ch: UInt8 = d.readInteger() else { return }
            let bytes = d.readBytes(length: d.readableBytes) ?? []
            if ch == 0 && !bytes.isEmpty {
                writeStdin(bytes)
            } else if ch == 255 && v5 && bytes.first == 0 {
                closeStdin()
            } else if ch == 4 {
                Self.resize(terminal, bytes)
            }
        case .connectionClose:
            closeStdin()
            context.close(promise: nil)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) { gone.set(); closeStdin() }

    private func writeStdin(_ bytes: [UInt8]) {
        stdinQueue.async { [self] in
            guard stdinWrite >= 0 else { return }
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { write(stdinWrite, $0.baseAddress, $0.count) }
                if n < 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
    }

    private func closeStdin() {
        stdinQueue.async { [self] in
            if stdinWrite >= 0 { close(stdinWrite); stdinWrite = -1 }
        }
    }
}

/// A flag set once, read from other threads.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
