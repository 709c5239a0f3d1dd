// The node agent's own HTTP endpoint, which the API server proxies
// `kubectl logs` to (as kubelet's port 10250): GET
// /containerLogs/NAMESPACE/POD/CONTAINER?follow=&previous=&tailLines=&timestamps=
// reads the container's CRI log file (found through CRI ContainerStatus)
// and returns its text; with follow it keeps streaming until the container
// exits or the client goes away. GET /exec/NAMESPACE/POD/CONTAINER?command=..,
// /attach/NAMESPACE/POD/CONTAINER?stdin=&tty=.. and /portForward/NAMESPACE/POD?port=P,Q
// return {"url": ...}: the runtime's one-time streaming URL (CRI Exec, Attach,
// PortForward), which the API server connects its client to.
//
// Requests must carry the bearer token the agent generates at start and
// publishes in its Node's annotation (`moat.dev/proxy-token`), so only a
// reader of the Node object (the API server) can use the endpoint; it
// listens on --address (loopback by default).

import CRIAPI
import ControlPlane
import Foundation
import Hummingbird
import Logging

struct NodeResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let agent: NodeAgent

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.headers[.authorization] == "Bearer " + agent.proxyToken else { return Self.text("unauthorized\n", 401) }
        let segs = request.uri.path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        let shapeOK = (segs.count == 4 && ["containerLogs", "exec", "attach"].contains(segs[0])) || (segs.count == 3 && segs[0] == "portForward")
        guard request.method == .get, shapeOK else { return Self.text("not found\n", 404) }
        var query: [String: String] = [:]
        var commands: [String] = []
        for pair in (request.uri.query ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) }
            query[kv[0]] = kv.count > 1 ? kv[1] : ""
            if kv[0] == "command" { commands.append(kv.count > 1 ? kv[1] : "") }
        }
        do {
            if segs[0] == "exec" || segs[0] == "attach" || segs[0] == "portForward" {
                let url: String
                switch segs[0] {
                case "exec": url = try await agent.execURL(namespace: segs[1], pod: segs[2], container: segs[3], command: commands, query: query)
                case "attach": url = try await agent.attachURL(namespace: segs[1], pod: segs[2], container: segs[3], query: query)
                default: url = try await agent.portForwardURL(namespace: segs[1], pod: segs[2], ports: query["port"] ?? "")
                }
                return Response(status: .ok, headers: [.contentType: "application/json"],
                                body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSON.object(["url": .string(url)]).serialized())))
            }
            return try await agent.containerLogs(namespace: segs[1], pod: segs[2], container: segs[3], query: query)
        } catch let e as NodeAgentError {
            return Self.text(e.description + "\n", 404)
        } catch {
            return Self.text("\(error)\n", 500)
        }
    }

    static func text(_ s: String, _ code: Int) -> Response {
        Response(status: .init(code: code), headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: s)))
    }
}

extension NodeAgent {
    /// Serves until cancelled; `onRunning` gets the bound port.
    func serve(onRunning: @escaping @Sendable (Int) async -> Void) async throws {
        var l = Logger(label: "moat.node.http"); l.logLevel = .warning
        let app = Application(responder: NodeResponder(agent: self),
                              configuration: .init(address: .hostname(o.address, port: o.port), serverName: "moat-node"),
                              onServerRunning: { ch in await onRunning(ch.localAddress?.port ?? 0) }, logger: l)
        try await app.run()
    }

    /// The runtime's instances of a container of one of this node's pods, oldest first.
    func instances(namespace: String, pod: String, container: String) async throws -> [Runtime_V1_Container] {
        guard let p = try await api.getIfExists(.pods, namespace: namespace, name: pod), p["spec"]["nodeName"].string == o.nodeName else {
            throw NodeAgentError("pod \(namespace)/\(pod) is not on node \(o.nodeName)")
        }
        var f = Runtime_V1_ListContainersRequest()
        f.filter.labelSelector = [Labels.podUID: p.uid, Labels.container: container]
        return try await runtime.listContainers(f).containers.sorted { $0.metadata.attempt < $1.metadata.attempt }
    }

    /// CRI Exec in the running container: the runtime's one-time streaming URL (WebSocket, v5/v4.channel.k8s.io).
    func execURL(namespace: String, pod: String, container: String, command: [String], query: [String: String]) async throws -> String {
        guard let c = try await instances(namespace: namespace, pod: pod, container: container).last, c.state == .containerRunning else {
            throw NodeAgentError("container \(container) is not running")
        }
        guard !command.isEmpty else { throw NodeAgentError("no command given") }
        func flag(_ k: String) -> Bool { ["1", "true"].contains(query[k] ?? "") }
        var r = Runtime_V1_ExecRequest()
        r.containerID = c.id
        r.cmd = command
        r.tty = flag("tty")
        r.stdin = flag("stdin")
        r.stdout = flag("stdout")
        r.stderr = flag("stderr") && !r.tty
        return try await runtime.exec(r).url
    }

    /// CRI Attach to the running container: the runtime's one-time streaming URL (as for exec).
    func attachURL(namespace: String, pod: String, container: String, query: [String: String]) async throws -> String {
        guard let c = try await instances(namespace: namespace, pod: pod, container: container).last, c.state == .containerRunning else {
            throw NodeAgentError("container \(container) is not running")
        }
        func flag(_ k: String) -> Bool { ["1", "true"].contains(query[k] ?? "") }
        var r = Runtime_V1_AttachRequest()
        r.containerID = c.id
        r.tty = flag("tty")
        r.stdin = flag("stdin")
        r.stdout = flag("stdout")
        r.stderr = flag("stderr") && !r.tty
        return try await runtime.attach(r).url
    }

    /// CRI PortForward into the pod's ready sandbox: the runtime's one-time URL (SPDY/3.1,
    /// portforward.k8s.io, raw or tunnelled in a WebSocket). `ports`: comma-separated.
    func portForwardURL(namespace: String, pod: String, ports: String) async throws -> String {
        guard let p = try await api.getIfExists(.pods, namespace: namespace, name: pod), p["spec"]["nodeName"].string == o.nodeName else {
            throw NodeAgentError("pod \(namespace)/\(pod) is not on node \(o.nodeName)")
        }
        var f = Runtime_V1_ListPodSandboxRequest()
        f.filter.labelSelector = [Labels.podUID: p.uid]
        f.filter.state.state = .sandboxReady
        guard let sb = try await runtime.listPodSandbox(f).items.max(by: { $0.metadata.attempt < $1.metadata.attempt }) else {
            throw NodeAgentError("pod \(namespace)/\(pod) has no running sandbox")
        }
        var r = Runtime_V1_PortForwardRequest()
        r.podSandboxID = sb.id
        r.port = ports.split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
        return try await runtime.portForward(r).url
    }

    func containerLogs(namespace: String, pod: String, container: String, query: [String: String]) async throws -> Response {
        let all = try await instances(namespace: namespace, pod: pod, container: container)
        let previous = ["1", "true"].contains(query["previous"] ?? "")
        guard let c = previous ? (all.count >= 2 ? all[all.count - 2] : nil) : all.last else {
            throw NodeAgentError(previous ? "previous terminated container \"\(container)\" in pod \"\(pod)\" not found"
                                           : "container \"\(container)\" in pod \"\(pod)\" is waiting to start")
        }
        var r = Runtime_V1_ContainerStatusRequest(); r.containerID = c.id
        let path = try await runtime.containerStatus(r).status.logPath
        let follow = ["1", "true"].contains(query["follow"] ?? "") && !previous
        let timestamps = ["1", "true"].contains(query["timestamps"] ?? "")
        let tail = query["tailLines"].flatMap { Int($0) }
        let limitBytes = query["limitBytes"].flatMap { Int($0) }.map { max(0, $0) }
        let since: Date? = query["sinceSeconds"].flatMap(Double.init).map { Date().addingTimeInterval(-$0) }
            ?? query["sinceTime"].flatMap(Timestamp.parse)
        let id = c.id
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody { writer in
            guard let h = FileHandle(forReadingAtPath: path) else { try await writer.finish(nil); return }
            defer { try? h.close() }
            var reader = CRILogReader(timestamps: timestamps, since: since)
            var limit = limitBytes
            // limitBytes: stop once that much was sent.
            func send(_ bytes: [UInt8]) async throws -> Bool {
                var b = bytes
                if let l = limit { b = Array(b.prefix(l)); limit = l - b.count }
                if !b.isEmpty { try await writer.write(ByteBuffer(bytes: b)) }
                return limit != 0
            }
            var text = reader.feed(h.readDataToEndOfFile())
            if let tail { text = CRILogReader.lastLines(text, tail) }
            var open = try await send(text)
            var lastCheck = Date()
            while follow && open {
                try await Task.sleep(nanoseconds: 200_000_000)
                let more = reader.feed(h.readDataToEndOfFile())
                if !more.isEmpty { open = try await send(more); continue }
                if Date().timeIntervalSince(lastCheck) >= 1 {
                    lastCheck = Date()
                    var q = Runtime_V1_ContainerStatusRequest(); q.containerID = id
                    guard let st = try? await self.runtime.containerStatus(q).status, st.state == .containerRunning else { break }
                }
            }
            try await writer.finish(nil)
        })
    }
}

/// CRI log lines ("TIMESTAMP STREAM P|F TEXT") back to the container's output.
struct CRILogReader {
    var timestamps: Bool
    /// Lines logged before this are left out (sinceSeconds, sinceTime).
    var since: Date? = nil
    var pending: [UInt8] = []
    var atLineStart = true

    mutating func feed(_ d: Data) -> [UInt8] {
        pending += d
        var out: [UInt8] = []
        while let nl = pending.firstIndex(of: 10) {
            let line = pending[..<nl]
            pending.removeFirst(nl + 1)
            let fields = line.split(separator: 32, maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count >= 3 else { continue }
            if let since, let t = Timestamp.parse(String(decoding: fields[0], as: UTF8.self)), t < since { continue }
            if timestamps && atLineStart { out += fields[0] + [32] }
            if fields.count == 4 { out += fields[3] }
            let full = fields[2].first != UInt8(ascii: "P")
            if full { out.append(10) }
            atLineStart = full
        }
        return out
    }

    static func lastLines(_ text: [UInt8], _ n: Int) -> [UInt8] {
        if n <= 0 { return [] }
        var count = 0
        var i = text.count - 1
        if i >= 0 && text[i] == 10 { i -= 1 }
        while i >= 0 {
            if text[i] == 10 { count += 1; if count == n { return Array(text[(i + 1)...]) } }
            i -= 1
        }
        return text
    }
}
