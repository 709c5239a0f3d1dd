// pods/log and pods/exec: the API server passes `kubectl logs` and
// `kubectl exec` on to the node agent that runs the pod (as the API server
// does to kubelet), at the address and port the Node publishes (InternalIP,
// status.daemonEndpoints.kubeletEndpoint), with the token the agent put in
// the Node's `moat.dev/proxy-token` annotation.
//
// Logs: the agent's answer streams back as it comes (`-f`); when the client
// goes away the connection to the agent is shut, which ends the agent's
// follow loop.
//
// Exec: kubectl asks for a WebSocket upgrade (subprotocol
// v5.channel.k8s.io or v4.channel.k8s.io). The API server checks the
// caller may create pods/exec, asks the agent for the runtime's one-time
// streaming URL (CRI Exec), accepts the upgrade with the same subprotocol
// and bridges it to the runtime's stream, to which it speaks SPDY/3.1
// (RuntimeStreams.swift): every CRI runtime's streaming server speaks
// SPDY, and containerd 1.6's does not know v5's WebSocket protocol.
//
// Attach is the same with CRI Attach. Port-forward: kubectl (1.30 and
// later) opens a WebSocket with subprotocol SPDY/3.1+portforward.k8s.io and
// runs a SPDY session inside it; the API server copies those bytes to and
// from the runtime's PortForward stream upgraded to SPDY/3.1.

import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

public enum NodeProxy {
    /// The Node annotation holding the bearer token its agent's endpoint requires. Only the
    /// API server reads it (from the store): it is removed from every Node the REST API
    /// returns, so that reading Nodes (a viewer may) does not give the power to exec.
    public static let tokenAnnotation = "moat.dev/proxy-token"

    /// The response without the token: a Node, a NodeList, or a Table of Nodes.
    static func scrubbed(_ body: JSON) -> JSON {
        switch body["kind"].string {
        case "Node":
            guard !body["metadata"]["annotations"][tokenAnnotation].isNull else { return body }
            var b = body
            b[path: "metadata", "annotations", tokenAnnotation] = .null
            b[path: "metadata", "annotations"] = b["metadata"]["annotations"].pruned()
            return b
        case "NodeList":
            var b = body
            b["items"] = .array((body["items"].array ?? []).map(scrubbed))
            return b
        case "Table":
            guard let rows = body["rows"].array, rows.contains(where: { !$0["object"]["metadata"]["annotations"][tokenAnnotation].isNull }) else { return body }
            var b = body
            b["rows"] = .array(rows.map { r in
                var r = r
                r[path: "object", "metadata", "annotations", tokenAnnotation] = .null
                r[path: "object", "metadata", "annotations"] = r["object"]["metadata"]["annotations"].pruned()
                return r
            })
            return b
        default:
            return body
        }
    }
}

func enc(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._"))) ?? s }

extension APIServer {
    /// The agent endpoint of the node a pod runs on: host, port, token, node name.
    func nodeEndpoint(_ pod: JSON) async throws -> (String, Int, String, String) {
        guard let nodeName = pod["spec"]["nodeName"].string, !nodeName.isEmpty else {
            throw APIError.badRequest("pod \(pod.name) is not scheduled to a node yet")
        }
        let node = try await registry.get(.nodes, namespace: "", name: nodeName)
        let host = (node["status"]["addresses"].array ?? []).first { $0["type"].string == "InternalIP" }?["address"].string ?? ""
        let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].int ?? 0
        guard !host.isEmpty, port > 0 else { throw APIError.badRequest("node \(nodeName) publishes no endpoint for its agent") }
        return (host, port, node["metadata"]["annotations"][NodeProxy.tokenAnnotation].string ?? "", nodeName)
    }

    /// The container a request names, or the pod's only one.
    static func container(_ pod: JSON, _ requested: String?) throws -> String {
        let names = (pod["spec"]["containers"].array ?? []).compactMap { $0["name"].string }
        let inits = (pod["spec"]["initContainers"].array ?? []).compactMap { $0["name"].string }
        if let c = requested, !c.isEmpty {
            guard names.contains(c) || inits.contains(c) else { throw APIError.badRequest("container \(c) is not valid for pod \(pod.name)") }
            return c
        }
        guard names.count == 1 else {
            throw APIError.badRequest("a container name must be specified for pod \(pod.name), choose one of: [\(names.joined(separator: " "))]")
        }
        return names[0]
    }

    static let execProtocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"]

    /// Accepts the WebSocket upgrade of a pods/exec request it can serve; anything else is left to the HTTP responder.
    func execUpgrade(_ head: HTTPRequest, channel: any Channel, logger: Logger) async throws -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        let full = head.path ?? ""
        let parts = full.split(separator: "?", maxSplits: 1).map(String.init)
        let segs = parts[0].split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        guard segs.count == 7, segs[0] == "api", segs[1] == "v1", segs[2] == "namespaces", segs[4] == "pods",
              ["exec", "attach", "portforward"].contains(segs[6]) else { return .dontUpgrade }
        let sub = segs[6]
        let offered = head.headerFields[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        let protocols = sub == "portforward" ? Self.portForwardProtocols : Self.execProtocols
        guard let proto = protocols.first(where: offered.contains) else { return .dontUpgrade }
        let (namespace, name) = (segs[3], segs[5])
        if let authorizer {
            guard let user = await identify(authorization: head.headerFields[.authorization], channel: channel),
                  (try? authorizer.authorize(user: user, verb: "create", resource: .pods, subresource: sub, namespace: namespace)) != nil else {
                return .dontUpgrade
            }
        }
        if sub == "portforward" {
            return try await portForwardUpgrade(namespace: namespace, name: name, query: parts.count > 1 ? parts[1] : "", proto: proto, logger: logger)
        }
        // The query: command (repeated), container, stdin, stdout, stderr, tty.
        var commands: [String] = [], flags: [String: String] = [:], requested: String? = nil
        for pair in (parts.count > 1 ? parts[1] : "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) }
            let v = kv.count > 1 ? kv[1] : ""
            switch kv[0] {
            case "command" where sub == "exec": commands.append(v)
            case "container": requested = v
            case "stdin", "stdout", "stderr", "tty": flags[kv[0]] = v
            default: break
            }
        }
        guard let pod = try? await registry.get(.pods, namespace: namespace, name: name),
              let container = try? Self.container(pod, requested),
              let (host, port, token, _) = try? await nodeEndpoint(pod) else { return .dontUpgrade }
        var q = commands.map { "command=" + enc($0) }
        for (k, v) in flags.sorted(by: { $0.key < $1.key }) { q.append("\(k)=\(enc(v))") }
        let path = "/\(sub)/\(enc(namespace))/\(enc(name))/\(enc(container))?" + q.joined(separator: "&")
        guard let stream = try await streamURL(sub, namespace, name, host: host, port: port, token: token, path: path, logger: logger) else {
            return .dontUpgrade
        }
        let on = flags.filter { ["1", "true"].contains($0.value) }.keys
        let (stdin, stdout, stderr, tty) = (on.contains("stdin"), on.contains("stdout"), on.contains("stderr"), on.contains("tty"))
        return .upgrade([.secWebSocketProtocol: proto]) { inbound, outbound, _ in
            try await RuntimeStreams.exec(url: stream, stdin: stdin, stdout: stdout, stderr: stderr, tty: tty,
                                          inbound: inbound, outbound: outbound, logger: logger)
        }
    }

    /// SPDY tunnelled in a WebSocket (kubectl port-forward's first choice since 1.30).
    static let portForwardProtocols = ["SPDY/3.1+portforward.k8s.io"]

    /// pods/portforward: the runtime's PortForward stream (CRI) upgraded to SPDY/3.1, the
    /// bytes in the client's WebSocket messages copied both ways (the SPDY session runs
    /// between kubectl and the runtime).
    func portForwardUpgrade(namespace: String, name: String, query: String, proto: String,
                            logger: Logger) async throws -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        var ports: [String] = []
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if kv[0] == "ports" || kv[0] == "port", kv.count > 1 { ports += kv[1].split(separator: ",").map(String.init) }
        }
        guard let pod = try? await registry.get(.pods, namespace: namespace, name: name),
              let (host, port, token, _) = try? await nodeEndpoint(pod) else { return .dontUpgrade }
        let path = "/portForward/\(enc(namespace))/\(enc(name))" + (ports.isEmpty ? "" : "?port=" + enc(ports.joined(separator: ",")))
        guard let stream = try await streamURL("portforward", namespace, name, host: host, port: port, token: token, path: path, logger: logger) else {
            return .dontUpgrade
        }
        return .upgrade([.secWebSocketProtocol: proto]) { inbound, outbound, _ in
            try await RuntimeStreams.portForward(url: stream, inbound: inbound, outbound: outbound, logger: logger)
        }
    }

    /// Asks the node agent for the runtime's one-time stream; its http:// URL, or nil (logged).
    func streamURL(_ sub: String, _ namespace: String, _ name: String, host: String, port: Int, token: String,
                   path: String, logger: Logger) async throws -> String? {
        let (status, body) = try await Self.agentGet(host: host, port: port, token: token, path: path)
        guard status == 200, let url = (try? JSON.parse(body))?["url"].string, url.hasPrefix("http://") else {
            logger.warning("\(sub) \(namespace)/\(name): the node answered \(status): \(String(decoding: body, as: UTF8.self))")
            return nil
        }
        return url
    }

    /// One GET to a node agent, on its own thread (the client is blocking).
    static func agentGet(host: String, port: Int, token: String, path: String) async throws -> (Int, Data) {
        try await withCheckedThrowingContinuation { cont in
            Thread {
                do {
                    let conn = try RawHTTPConnection(host: host, port: port, timeoutSeconds: 30)
                    try conn.send(method: "GET", path: path, host: "\(host):\(port)", headers: ["Authorization": "Bearer " + token], body: nil)
                    let (status, headers) = try conn.readHead()
                    var body = Data()
                    try conn.readBody(headers: headers) { body.append(contentsOf: $0) }
                    cont.resume(returning: (status, body))
                } catch {
                    cont.resume(throwing: APIError(code: 502, reason: "BadGateway", message: "node agent: \(error)"))
                }
            }.start()
        }
    }
}

extension APIResponder {
    func podLog(namespace: String, name: String, query: [String: String]) async throws -> Response {
        let pod = try await server.registry.get(.pods, namespace: namespace, name: name)
        let container = try APIServer.container(pod, query["container"])
        let (host, port, token, nodeName) = try await server.nodeEndpoint(pod)
        var q: [String] = []
        for k in ["follow", "previous", "timestamps", "tailLines", "limitBytes", "sinceSeconds", "sinceTime"] {
            if let v = query[k], let e = v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { q.append("\(k)=\(e)") }
        }
        let path = "/containerLogs/\(enc(namespace))/\(enc(name))/\(enc(container))" + (q.isEmpty ? "" : "?" + q.joined(separator: "&"))

        // The agent connection is blocking: it runs on its own thread and feeds a stream.
        let conn: RawHTTPConnection
        do { conn = try RawHTTPConnection(host: host, port: port, timeoutSeconds: 0) } catch {
            throw APIError(code: 502, reason: "BadGateway", message: "cannot reach node \(nodeName): \(error)")
        }
        let (chunks, cont) = AsyncThrowingStream<[UInt8], Error>.makeStream()
        let (head, headCont) = AsyncStream<(Int, [String: String])>.makeStream()
        Thread {
            do {
                try conn.send(method: "GET", path: path, host: "\(host):\(port)", headers: ["Authorization": "Bearer " + token], body: nil)
                let h = try conn.readHead()
                headCont.yield(h); headCont.finish()
                try conn.readBody(headers: h.1) { cont.yield($0) }
                cont.finish()
            } catch {
                headCont.finish()
                cont.finish(throwing: error)
            }
        }.start()
        var it = head.makeAsyncIterator()
        guard let (status, _) = await it.next() else {
            throw APIError(code: 502, reason: "BadGateway", message: "node \(nodeName) did not answer")
        }
        if status != 200 {
            var text: [UInt8] = []
            for try await c in chunks { text += c }
            let msg = String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw APIError(code: status == 404 ? 400 : 502, reason: status == 404 ? "BadRequest" : "BadGateway", message: msg)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody { writer in
            defer { conn.shutdownSocket() }
            for try await c in chunks { try await writer.write(ByteBuffer(bytes: c)) }
            try await writer.finish(nil)
        })
    }
}
