// pods/log: the API server passes `kubectl logs` on to the node agent that
// runs the pod (as the API server does to kubelet), at the address and port
// the Node publishes (InternalIP, status.daemonEndpoints.kubeletEndpoint),
// with the token the agent put in the Node's `moat.dev/proxy-token`
// annotation. The agent's answer streams back as it comes (`-f`); when the
// client goes away the connection to the agent is shut, which ends the
// agent's follow loop.

import Foundation
import Hummingbird

public enum NodeProxy {
    /// The Node annotation holding the bearer token its agent's endpoint requires.
    public static let tokenAnnotation = "moat.dev/proxy-token"
}

extension APIResponder {
    func podLog(namespace: String, name: String, query: [String: String]) async throws -> Response {
        let pod = try await server.registry.get(.pods, namespace: namespace, name: name)
        let names = (pod["spec"]["containers"].array ?? []).compactMap { $0["name"].string }
        let container: String
        if let c = query["container"], !c.isEmpty {
            guard names.contains(c) else { throw APIError.badRequest("container \(c) is not valid for pod \(name)") }
            container = c
        } else if names.count == 1 {
            container = names[0]
        } else {
            throw APIError.badRequest("a container name must be specified for pod \(name), choose one of: [\(names.joined(separator: " "))]")
        }
        guard let nodeName = pod["spec"]["nodeName"].string, !nodeName.isEmpty else {
            throw APIError.badRequest("pod \(name) is not scheduled to a node yet")
        }
        let node = try await server.registry.get(.nodes, namespace: "", name: nodeName)
        let host = (node["status"]["addresses"].array ?? []).first { $0["type"].string == "InternalIP" }?["address"].string ?? ""
        let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].int ?? 0
        guard !host.isEmpty, port > 0 else { throw APIError.badRequest("node \(nodeName) publishes no endpoint for logs") }
        let token = node["metadata"]["annotations"][NodeProxy.tokenAnnotation].string ?? ""
        var q: [String] = []
        for k in ["follow", "previous", "timestamps", "tailLines"] {
            if let v = query[k], let e = v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { q.append("\(k)=\(e)") }
        }
        func enc(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._"))) ?? s }
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
