// The API server's side of a runtime's streaming server (CRI Exec, Attach, PortForward
// URLs). Whatever kubectl spoke to the API server (WebSocket: v5/v4.channel.k8s.io for
// exec and attach, SPDY tunnelled in a WebSocket for port-forward), the API server speaks
// SPDY/3.1 to the runtime: the transport every CRI streaming server has (containerd 1.6's
// knows WebSocket only up to v4.channel.k8s.io, which cannot close stdin, and no tunnelled
// port-forward; `moat cri` speaks all of them), as Kubernetes' API server translates to
// SPDY toward kubelet.
//
// Exec and attach: one SPDY stream per role (error, stdin, stdout, stderr, resize, as
// the request asks), named by its `streamtype` header, protocol v4.channel.k8s.io. The
// client's channel messages become DATA on the matching stream (channel 0 stdin, 4
// resize; v5's close of channel 0 becomes the stdin stream's FIN); the runtime's DATA on
// stdout, stderr and error become channel 1, 2 and 3 messages (the error stream carries
// the same metav1.Status in both protocols). The session ends when the runtime closes
// the connection (after the exit status) or the client goes away.
//
// Port-forward: the client's WebSocket carries a SPDY session already; its binary
// messages are the bytes of a raw SPDY connection, so they are copied to and from the
// runtime's connection upgraded with portforward.k8s.io, unchanged.

import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import SPDY

enum RuntimeStreams {
    static let execProtocol = "v4.channel.k8s.io"
    static let portForwardProtocol = "portforward.k8s.io"

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// The runtime's one-time URL, connected and upgraded to SPDY/3.1 with `protocolName`
    /// (on a thread of its own: the connection is blocking).
    static func open(_ url: String, protocolName: String) async throws -> RawHTTPConnection {
        guard let u = URLComponents(string: url), let host = u.host, u.scheme == "http" else {
            throw Failure(description: "the runtime's stream URL \(url) is not http://")
        }
        let port = u.port ?? 80
        let path = (u.percentEncodedPath.isEmpty ? "/" : u.percentEncodedPath) + (u.percentEncodedQuery.map { "?" + $0 } ?? "")
        return try await withCheckedThrowingContinuation { cont in
            Thread {
                do {
                    // No read timeout: a session may be idle for as long as its user likes.
                    let conn = try RawHTTPConnection(host: host, port: port, timeoutSeconds: 0)
                    try conn.send(method: "POST", path: path, host: "\(host):\(port)",
                                  headers: ["Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": protocolName],
                                  body: nil, keepAlive: true)
                    let (status, headers) = try conn.readHead()
                    guard status == 101 else {
                        var body: [UInt8] = []
                        if headers["content-length"] != nil || headers["transfer-encoding"] != nil {
                            try? conn.readBody(headers: headers) { body += $0 }
                        }
                        let text = String(decoding: body.prefix(500), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                        throw Failure(description: "the runtime refused the SPDY/3.1 upgrade (\(protocolName)): \(status) \(text)")
                    }
                    cont.resume(returning: conn)
                } catch {
                    cont.resume(throwing: error)
                }
            }.start()
        }
    }

    /// The runtime's bytes as they arrive, read on a thread of their own, until EOF.
    static func reads(_ conn: RawHTTPConnection) -> AsyncThrowingStream<[UInt8], Error> {
        let (stream, cont) = AsyncThrowingStream<[UInt8], Error>.makeStream()
        Thread {
            do {
                while let b = try conn.readRaw() { cont.yield(b) }
                cont.finish()
            } catch { cont.finish(throwing: error) }
        }.start()
        return stream
    }

    /// A metav1.Status failure on the error channel (3), as a runtime reports one.
    static func statusMessage(_ message: String) -> WebSocketOutboundWriter.OutboundFrame {
        let status = JSON.object(["kind": "Status", "apiVersion": "v1", "metadata": .object([:]),
                                  "status": "Failure", "message": .string(message), "reason": "InternalError"])
        var bytes: [UInt8] = [3]
        bytes += status.serialized()
        return .binary(ByteBuffer(bytes: bytes))
    }

    /// Exec or attach: the client's channel messages to and from the runtime's SPDY streams.
    static func exec(url: String, stdin: Bool, stdout: Bool, stderr: Bool, tty: Bool,
                     inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, logger: Logger) async throws {
        let conn: RawHTTPConnection
        do { conn = try await open(url, protocolName: execProtocol) } catch {
            logger.warning("exec stream: \(error)")
            try await outbound.write(statusMessage("\(error)"))
            return
        }
        defer { conn.shutdownSocket() }
        let codec = SPDYCodec()
        let lock = NSLock()
        // The streams the runtime waits for, in the order Kubernetes' clients open them.
        var roles = ["error"]
        if stdin { roles.append("stdin") }
        if stdout { roles.append("stdout") }
        if stderr && !tty { roles.append("stderr") }
        if tty { roles.append("resize") }
        let ids = Dictionary(uniqueKeysWithValues: roles.enumerated().map { ($0.element, UInt32(2 * $0.offset + 1)) })
        for role in roles {
            try conn.writeRaw(lock.withLock { codec.synStream(ids[role]!, headers: [("streamtype", role)]) })
        }
        let channels: [UInt32: UInt8] = [ids["stdout"], ids["stderr"], ids["error"]].enumerated().reduce(into: [:]) { m, e in
            if let id = e.element { m[id] = UInt8(e.offset + 1) }
        }
        let fromRuntime = reads(conn)
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask {
                runtime: for try await bytes in fromRuntime {
                    for frame in try lock.withLock({ try codec.feed(bytes) }) {
                        switch frame {
                        case .data(let id, let data, _):
                            if let ch = channels[id], !data.isEmpty { try await outbound.write(.binary(ByteBuffer(bytes: [ch] + data))) }
                        case .ping(let id): try conn.writeRaw(lock.withLock { codec.ping(id) })
                        case .goAway: break runtime
                        default: break
                        }
                    }
                }
            }
            g.addTask {
                for try await m in inbound.messages(maxSize: 1 << 24) {
                    guard case .binary(var b) = m, let ch = b.readInteger(as: UInt8.self) else { continue }
                    let rest = b.readBytes(length: b.readableBytes) ?? []
                    switch ch {
                    case 0: if let id = ids["stdin"], !rest.isEmpty { try conn.writeRaw(codec.data(id, rest[...], fin: false)) }
                    case 4: if let id = ids["resize"] { try conn.writeRaw(codec.data(id, rest[...], fin: false)) }
                    case 255 where rest.first == 0: if let id = ids["stdin"] { try conn.writeRaw(codec.data(id, [], fin: true)) }
                    default: break
                    }
                }
            }
            // The runtime closing (after the exit status) or the client leaving ends the session.
            _ = try await g.next()
            g.cancelAll()
            conn.shutdownSocket()
        }
    }

    /// Port-forward: the SPDY bytes the client tunnels in WebSocket messages, to and from
    /// the runtime's upgraded connection.
    static func portForward(url: String, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, logger: Logger) async throws {
        let conn: RawHTTPConnection
        do { conn = try await open(url, protocolName: portForwardProtocol) } catch {
            logger.warning("port-forward stream: \(error)")
            return
        }
        defer { conn.shutdownSocket() }
        let fromRuntime = reads(conn)
        try await withThrowingTaskGroup(of: Void.self) { g in
            g.addTask { for try await bytes in fromRuntime { try await outbound.write(.binary(ByteBuffer(bytes: bytes))) } }
            g.addTask {
                for try await m in inbound.messages(maxSize: 1 << 24) {
                    if case .binary(var b) = m, let bytes = b.readBytes(length: b.readableBytes) { try conn.writeRaw(bytes) }
                }
            }
            _ = try await g.next()
            g.cancelAll()
            conn.shutdownSocket()
        }
    }
}
