// Server: `moat cri`'s gRPC endpoint. It listens on a Unix socket (mode
// 0600: whoever can talk to it can run anything as root), replaces a stale
// socket file left by a server that died, refuses to start when another
// server still answers on it, recovers the pods and containers recorded
// under --root, and shuts down gracefully on SIGTERM/SIGINT (pods keep
// running; a restart finds them again).

import CRIAPI
import Dispatch
import Foundation
import Glibc
import GRPCCore
import GRPCNIOTransportHTTP2
import HTTP2Ping

public enum CRIServer {
    /// The socket path of a `unix://` (or bare path) --listen value.
    public static func socketPath(_ listen: String) throws -> String {
        var p = listen
        if p.hasPrefix("unix://") { p.removeFirst("unix://".count) }
        guard p.hasPrefix("/") else {
            throw CRIError.invalidArgument("--listen \(listen.debugDescription): expected unix:///ABSOLUTE/PATH")
        }
        guard p.utf8.count < 108 else { throw CRIError.invalidArgument("--listen \(listen.debugDescription): path too long for a Unix socket") }
        return p
    }

    /// Whether something accepts connections on the socket file.
    static func socketAnswers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let b = Array(path.utf8)
            for i in 0..<min(b.count, raw.count - 1) { raw[i] = b[i] }
        }
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return r == 0
    }

    /// Serves until SIGTERM or SIGINT. `extraServices` are registered next
    /// to the RuntimeService (the ImageService); `imageUse` learns which
    /// containers use which images.
    public static func run(_ options: CRIOptions, images: (any ImageResolver)?, imageUse: (any ImageUseTracker)? = nil,
                           extraServices: [any RegistrableRPCService] = []) async throws {
        let path = try socketPath(options.listen)
        let runtime = try CRIRuntime(options: options, images: images, imageUse: imageUse)
        await runtime.recover()
        let memoryWatch = Task {
            while !Task.isCancelled {
                await runtime.enforceMemoryLimits()
                try? await Task.sleep(nanoseconds: 200_000_000)
            }
        }
        defer { memoryWatch.cancel() }
        let parent = String(path[..<path.lastIndex(of: "/")!])
        if !parent.isEmpty { try makeDirectories(parent, mode: 0o711) }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw CRIError.failedPrecondition("\(path) exists and is not a socket")
            }
            if socketAnswers(path) { throw CRIError.failedPrecondition("another server is listening on \(path)") }
            unlink(path)
        }
        // The socket is made with no permissions for group and others.
        let oldMask = umask(0o177)
        // grpc-go clients (kubelet, crictl) PING after about every response they receive;
        // swift-nio-http2 would close the connection after 200 in 30 s (HTTP2PingAnswerer).
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { HTTP2PingAnswerer.install(on: $0, role: .server) }
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: path), transportSecurity: .plaintext, config: config)
        let streaming = StreamingServer(runtime: runtime)
        try await streaming.start(address: options.streamingAddress)
        defer { streaming.stop() }
        let server = GRPCServer(transport: transport, services: [RuntimeService(runtime: runtime, streaming: streaming)] + extraServices)

        signal(SIGTERM, SIG_IGN); signal(SIGINT, SIG_IGN); signal(SIGPIPE, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                server.beginGracefulShutdown()
                Task { await runtime.finishSubscribers() }
            }
            s.resume()
            return s
        }
        defer { sources.forEach { $0.cancel() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            _ = try await transport.listeningAddress
            umask(oldMask)
            chmod(path, 0o600)
            log("moat cri: serving runtime.v1 on unix://\(path); streaming on \(streaming.baseURL)")
            try await group.next()
            group.cancelAll()
        }
        unlink(path)
    }

    static func log(_ s: String) {
        FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
    }
}
