// Exec and attach over SPDY/3.1: Kubernetes' remotecommand protocol
// v4.channel.k8s.io as crictl (its default transport) and kubelet's
// streaming proxy speak it. After the HTTP upgrade the client opens one SPDY
// stream per role, named by its `streamtype` header: error, stdin, stdout,
// stderr, resize (with a terminal). Once the streams the request asked for
// are there, the process runs exactly as over WebSocket (Streaming.swift's
// ExecStreamHandler.serve): stdout and stderr become DATA on their streams,
// the stdin stream's DATA goes to the process's stdin until its FIN. At the
// end a non-zero exit or an error is written as a metav1.Status on the error
// stream (nothing for success, as v4 does), every stream the server holds
// gets its FIN and the connection closes. With a terminal, the resize
// stream's messages set its size (ExecTerminal).

import Dispatch
import Foundation
import Glibc
import NIOCore
import Sandbox
import SPDY

final class SPDYExecSession: SPDYSessionHandling, @unchecked Sendable {
    static let protocolName = "v4.channel.k8s.io"
    let request: ExecStreamRequest
    let runtime: CRIRuntime
    let channel: Channel
    private let codec = SPDYCodec()
    private let lock = NSLock()
    private var streams: [String: UInt32] = [:]
    private var started = false
    private var ended = false
    private var stdinWrite: Int32 = -1
    private let stdinQueue = DispatchQueue(label: "moat.cri.spdy.stdin")
    private let gone = ManagedAtomicFlag()
    private let terminal = ExecTerminal()

    init(request: ExecStreamRequest, runtime: CRIRuntime, channel: Channel) {
        self.request = request; self.runtime = runtime; self.channel = channel
    }

    private func locked<T>(_ f: () throws -> T) rethrows -> T { lock.lock(); defer { lock.unlock() }; return try f() }

    private func send(_ bytes: [UInt8]) {
        var buf = channel.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        channel.writeAndFlush(buf, promise: nil)
    }

    /// The streams this request needs before the process can run.
    private var needed: [String] {
        var n = ["error"]
        if request.stdin { n.append("stdin") }
        if request.stdout { n.append("stdout") }
        if request.stderr && !request.tty { n.append("stderr") }
        return n
    }

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
        case .synStream(let id, let headers, _):
            let type = headers["streamtype"] ?? ""
            guard ["error", "stdin", "stdout", "stderr", "resize"].contains(type) else {
                send(locked { codec.rstStream(id, status: 1 /* PROTOCOL_ERROR */) })
                return
            }
            let ready: Bool = locked {
                streams[type] = id
                guard !started, needed.allSatisfy({ streams[$0] != nil }) else { return false }
                started = true
                return true
            }
            send(locked { codec.synReply(id) })
            if ready { start() }
        case .data(let id, let bytes, let fin):
            if locked({ streams["resize"] }) == id { ExecStreamHandler.resize(terminal, bytes); return }
            guard locked({ streams["stdin"] }) == id else { return }
            if !bytes.isEmpty { writeStdin(bytes) }
            if fin { closeStdin() }
        case .rstStream(let id, _):
            if locked({ streams["stdin"] }) == id { closeStdin() }
        case .ping(let id):
            send(locked { codec.ping(id) })
        case .goAway:
            closeAll()
        case .synReply, .other:
            break
        }
    }

    private func start() {
        var inFDs: [Int32] = [-1, -1]
        if request.stdin, pipe(&inFDs) == 0 {
            for fd in inFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            stdinQueue.sync { stdinWrite = inFDs[1] }
        }
        ExecStreamHandler.serve(request, runtime: runtime, stdinRead: inFDs[0], gone: gone, terminal: terminal,
            emit: { [self] ch, bytes in
                let name = ch == 2 ? "stderr" : "stdout"
                let frame: [UInt8]? = locked {
                    guard !ended, let id = streams[name] else { return nil }
                    return codec.data(id, bytes[...], fin: false)
                }
                if let frame { send(frame) }
            },
            finish: { [self] status, error in
                let json = ExecStreamHandler.statusJSON(status: status, error: error)
                let failed = error != nil || !json.contains(#""status":"Success""#)
                let out: [UInt8] = locked {
                    if ended { return [] }
                    ended = true
                    var o: [UInt8] = []
                    if failed, let e = streams["error"] { o += codec.data(e, Array(json.utf8)[...], fin: false) }
                    for (name, id) in streams where name != "stdin" { o += codec.data(id, [], fin: true) }
                    return o
                }
                closeStdin()
                guard !out.isEmpty else { return }
                var buf = channel.allocator.buffer(capacity: out.count)
                buf.writeBytes(out)
                let ch = channel
                channel.writeAndFlush(buf).whenComplete { _ in ch.close(promise: nil) }
            })
    }

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

    func closeAll() {
        gone.set()
        closeStdin()
        locked { ended = true }
    }
}
