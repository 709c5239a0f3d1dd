import NIOCore
import NIOHTTP2

/// Answers the peer's HTTP/2 PING frames before swift-nio-http2 sees them, on a client
/// connection (EtcdStore to etcd) or a server one (`moat cri`'s gRPC server to kubelet, crictl).
///
/// Why: grpc-go, on either end (etcd's server, kubelet's client), estimates bandwidth-delay product by sending a PING
/// after the first DATA it receives once the previous PING was acknowledged, so a client
/// making small requests gets about one PING per request. swift-nio-http2 counts inbound
/// PING/SETTINGS frames as a denial-of-service signal and closes the connection after 200 in
/// 30 seconds (`ExcessiveControlFrames`); grpc-swift-nio-transport 2.9 does not expose that
/// limit. Measured: under a burst of a few hundred writes the EtcdStore's connection was
/// dropped every couple of seconds, failing every request and watch on it. HTTP/2 requires
/// a PING to be answered, not that the HTTP/2 stack see it, so this handler (between TLS and
/// the HTTP/2 handler, on raw frames) answers each non-ACK PING itself with the same 8 bytes
/// and passes every other frame through untouched. ACKs of our own keepalive PINGs pass
/// through, so the keepalive still works.
///
/// The answer is a whole frame and must not land inside an outbound frame, so outbound bytes
/// are followed frame by frame (after the 24-byte client preface) and an answer waits for
/// the next frame boundary. If outbound framing cannot be followed (a file region), the
/// handler stops answering and lets PINGs through to the HTTP/2 stack as before.
///
/// On the server side the 24-byte preface comes inbound, before the first frame, and
/// outbound frames start at once. Measured for `moat cri` with a grpc-go client making
/// 1000 sequential ListPodSandbox calls on one connection: the server sent GOAWAY and reset
/// the connection 5 times (about every 200 calls); with the answerer, none.
public final class HTTP2PingAnswerer: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = IOData
    public typealias OutboundOut = IOData

    public enum Role: Sendable { case client, server }

    static let headerSize = 9
    static let pingSize = headerSize + 8
    static let pingType: UInt8 = 0x6
    static let ackFlag: UInt8 = 0x1
    static let prefaceSize = 24          // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    static let prefaceFirstByte: UInt8 = 0x50
    static let maxPendingAnswers = 16

    /// The header (and, for a PING, the body) of the next inbound frame, while incomplete.
    private var inFrame = ByteBuffer()
    /// Payload bytes of the current inbound frame still to pass on.
    private var inRemaining = 0
    /// Bytes of the outbound preface or frame still to come before a boundary.
    private var outRemaining = 0
    /// The part of the next outbound frame's header written so far.
    private var outHeader: [UInt8] = []
    private var outStarted = false
    private var gaveUp = false
    private var pendingAnswers: [ByteBuffer] = []
    /// Inbound preface bytes still to pass on before the first frame (server side).
    private var inPreface: Int

    /// A client's outbound bytes start with the preface (recognised by its first byte); a
    /// server's inbound bytes do.
    public init(role: Role = .client) {
        inPreface = role == .server ? Self.prefaceSize : 0
    }

    /// Puts an answerer just before the channel's HTTP/2 handler; call it on the channel's
    /// event loop once the HTTP/2 pipeline is set up.
    public static func install(on channel: any Channel, role: Role) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let ops = channel.pipeline.syncOperations
            try ops.addHandler(HTTP2PingAnswerer(role: role), position: .before(try ops.handler(type: NIOHTTP2Handler.self)))
        }
    }

    private var atOutboundBoundary: Bool { outStarted && outRemaining == 0 && outHeader.isEmpty }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if gaveUp { context.fireChannelRead(data); return }
        var buf = unwrapInboundIn(data)
        var out: ByteBuffer?
        func pass(_ slice: ByteBuffer) {
            if out == nil { out = slice } else { var s = slice; out!.writeBuffer(&s) }
        }
        if inPreface > 0 {
            let n = min(inPreface, buf.readableBytes)
            pass(buf.readSlice(length: n)!)
            inPreface -= n
        }
        while buf.readableBytes > 0 {
            if inRemaining > 0 {
                let n = min(inRemaining, buf.readableBytes)
                pass(buf.readSlice(length: n)!)
                inRemaining -= n
                continue
            }
            let want = inFrame.readableBytes < Self.headerSize ? Self.headerSize : Self.pingSize
            var part = buf.readSlice(length: min(want - inFrame.readableBytes, buf.readableBytes))!
            inFrame.writeBuffer(&part)
            guard inFrame.readableBytes >= Self.headerSize else { break }
            let r = inFrame.readerIndex
            let length = Int(inFrame.getInteger(at: r, as: UInt8.self)!) << 16
                | Int(inFrame.getInteger(at: r + 1, as: UInt8.self)!) << 8
                | Int(inFrame.getInteger(at: r + 2, as: UInt8.self)!)
            let type = inFrame.getInteger(at: r + 3, as: UInt8.self)!
            let flags = inFrame.getInteger(at: r + 4, as: UInt8.self)!
            if type == Self.pingType, flags & Self.ackFlag == 0, length == 8 {
                guard inFrame.readableBytes == Self.pingSize else { continue }  // gather the body
                answer(context: context, opaque: inFrame.getSlice(at: r + Self.headerSize, length: 8)!)
            } else {
                pass(inFrame)
                inRemaining = length
            }
            inFrame.clear()
        }
        if let out { context.fireChannelRead(wrapInboundOut(out)) }
    }

    private func answer(context: ChannelHandlerContext, opaque: ByteBuffer) {
        var frame = context.channel.allocator.buffer(capacity: Self.pingSize)
        frame.writeBytes([0, 0, 8, Self.pingType, Self.ackFlag, 0, 0, 0, 0])
        var o = opaque
        frame.writeBuffer(&o)
        if atOutboundBoundary {
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(frame)), promise: nil)
        } else if pendingAnswers.count < Self.maxPendingAnswers {
            pendingAnswers.append(frame)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !gaveUp {
            switch unwrapOutboundIn(data) {
            case .byteBuffer(let b): track(b)
            case .fileRegion: giveUp(context: context)
            }
        }
        context.write(data, promise: promise)
        if atOutboundBoundary, !pendingAnswers.isEmpty {
            for a in pendingAnswers { context.write(wrapOutboundOut(.byteBuffer(a)), promise: nil) }
            pendingAnswers.removeAll()
        }
    }

    /// Follows outbound frame boundaries through `b`.
    private func track(_ b: ByteBuffer) {
        var view = b.readableBytesView[...]
        if !outStarted, let first = view.first {
            outStarted = true
            if first == Self.prefaceFirstByte { outRemaining = Self.prefaceSize }
        }
        while !view.isEmpty {
            if outRemaining > 0 {
                let n = min(outRemaining, view.count)
                view = view.dropFirst(n)
                outRemaining -= n
                continue
            }
            let n = min(Self.headerSize - outHeader.count, view.count)
            outHeader.append(contentsOf: view.prefix(n))
            view = view.dropFirst(n)
            if outHeader.count == Self.headerSize {
                outRemaining = Int(outHeader[0]) << 16 | Int(outHeader[1]) << 8 | Int(outHeader[2])
                outHeader.removeAll(keepingCapacity: true)
            }
        }
    }

    private func giveUp(context: ChannelHandlerContext) {
        gaveUp = true
        pendingAnswers.removeAll()
        if inFrame.readableBytes > 0 {
            let rest = inFrame
            inFrame.clear()
            context.fireChannelRead(wrapInboundOut(rest))
        }
    }
}
