import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL

/// The files of an HTTPS API server: its certificate and key, and the CA whose client
/// certificates it accepts (PEM).
public struct APIServerTLS: Sendable {
    public var certificate: String, key: String, clientCA: String
    public init(certificate: String, key: String, clientCA: String) {
        self.certificate = certificate; self.key = key; self.clientCA = clientCA
    }

    func configuration() throws -> TLSConfiguration {
        var c = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        c.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
        // A client certificate is asked for and, when sent, must chain to the CA; clients
        // without one authenticate by bearer token (or get 401).
        c.certificateVerification = .optionalVerification
        c.minimumTLSVersion = .tlsv12
        return c
    }
}

/// The Kubernetes-style REST front end over `APIRegistry` (Hummingbird 2).
public final class APIServer: Sendable {
    public let registry: APIRegistry
    public let authorizer: Authorizer?
    public let tls: APIServerTLS?
    let logger: Logger

    public init(registry: APIRegistry, authorizer: Authorizer? = nil, tls: APIServerTLS? = nil, logLevel: Logger.Level = .warning) {
        self.registry = registry; self.authorizer = authorizer; self.tls = tls
        var l = Logger(label: "moat.apiserver")
        l.logLevel = logLevel
        self.logger = l
    }

    /// Serves until the calling task is cancelled. `onRunning` receives the bound port
    /// (useful with port 0). A `host` starting with "/" is a Unix socket path (served
    /// without TLS: for components on this machine, behind the directory's permissions).
    public func run(host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let log = logger
        let unix = host.hasPrefix("/")
        if unix { unlink(host) }
        // pods/exec arrives as a WebSocket upgrade (PodProxy.swift); everything else is plain HTTP.
        let http = HTTPServerBuilder.http1WebSocketUpgrade(configuration: .init(ws: .init(maxFrameSize: 1 << 20))) { [self] head, channel, logger in
            try await self.execUpgrade(head, channel: channel, logger: logger)
        }
        var server = http
        if let tls, !unix { server = try HTTPServerBuilder.tls(http, tlsConfiguration: try tls.configuration()) }
        let app = Application(
            responder: APIResponder(server: self),
            server: server,
            configuration: .init(address: unix ? .unixDomainSocket(path: host) : .hostname(host, port: port), serverName: "moat-apiserver"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: log)
        try await app.run()
    }

    /// Who sent a request: a bearer token from the token file, else a client certificate
    /// that chained to the CA (CN = user, O = groups). Nil: unauthenticated.
    func identify(authorization: String?, channel: (any Channel)?) async -> UserInfo? {
        guard let authorizer else { return UserInfo(name: "anonymous", role: .admin) }
        let header = authorization ?? ""
        if header.hasPrefix("Bearer ") {
            return authorizer.user(forToken: String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces))
        }
        guard tls != nil, let channel, let cert = try? await channel.nioSSL_peerCertificate().get(),
              let der = try? cert.toDERBytes() else { return nil }
        return ClientIdentity.user(fromDER: der)
    }
}

/// Hummingbird's request context plus the connection, whose TLS session names the client.
struct APIRequestContext: RequestContext {
    typealias Source = ApplicationRequestContextSource
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    init(source: Source) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

struct APIResponder: HTTPResponder {
    typealias Context = APIRequestContext
    let server: APIServer

    func respond(to request: Request, context: Context) async throws -> Response {
        do {
            return try await handle(request, channel: context.channel)
        } catch let e as APIError {
            return Self.json(e.status, code: e.code)
        } catch let e as LabelSelector.ParseError {
            let err = APIError.badRequest(e.description)
            return Self.json(err.status, code: 400)
        } catch {
            let err = APIError.internalError("\(error)")
            return Self.json(err.status, code: 500)
        }
    }

    static func json(_ body: JSON, code: Int = 200) -> Response {
        var data = NodeProxy.scrubbed(body).serialized()
        data.append(0x0A)
        return Response(status: .init(code: code), headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Splits a raw query string; `+` means space, values are percent-decoded.
    static func parseQuery(_ q: String?) -> [String: String] {
        var out: [String: String] = [:]
        for pair in (q ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func dec(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            out[dec(parts[0])] = parts.count > 1 ? dec(parts[1]) : ""
        }
        return out
    }

    func handle(_ request: Request, channel: any Channel) async throws -> Response {
        let path = request.uri.path
        let query = Self.parseQuery(request.uri.query)
        var segs = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }

        // Non-resource paths: open to every authenticated user.
        if let r = Discovery.respond(segs) ?? OpenAPI.respond(segs) {
            if server.authorizer != nil { _ = try await authenticate(request, channel) }
            return Self.json(r)
        }
        if ["healthz", "livez", "readyz"].contains(segs.first ?? "") {
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "ok")))
        }

        // Resource paths: /api/v1/... or /apis/{group}/{version}/...
        let group: String
        if segs.count >= 2, segs[0] == "api", segs[1] == "v1" { group = ""; segs.removeFirst(2) }
        else if segs.count >= 3, segs[0] == "apis" { group = segs[1]; segs.removeFirst(3) }
        else { throw APIError.notFoundPath(path) }
        var watch = ["1", "true"].contains(query["watch"] ?? "")
        if segs.first == "watch" { watch = true; segs.removeFirst() }

        var namespace = ""
        var rest = segs
        if rest.count >= 3, rest[0] == "namespaces", ResourceType.lookup(group: group, plural: rest[2]) != nil {
            namespace = rest[1]; rest.removeFirst(2)
        }
        guard let resName = rest.first, let rt = ResourceType.lookup(group: group, plural: resName) else {
            throw APIError.notFoundPath(path)
        }
        let name = rest.count > 1 ? rest[1] : nil
        let sub = rest.count > 2 ? rest[2] : nil
        if rest.count > 3 { throw APIError.notFoundPath(path) }
        if let sub, !rt.subresources.contains(sub) { throw APIError.notFoundPath(path) }
        if let sub, ["exec", "attach", "portforward"].contains(sub) {
            // Served only as a WebSocket upgrade, which did not happen: say why.
            let protocols = sub == "portforward" ? APIServer.portForwardProtocols : APIServer.execProtocols
            throw APIError.badRequest("pods/\(sub) needs a WebSocket upgrade with subprotocol \(protocols.joined(separator: " or ")), for a running \(sub == "portforward" ? "pod" : "container of a pod") on a node with an agent, and the right to create pods/\(sub)")
        }
        if !rt.namespaced, !namespace.isEmpty { throw APIError.notFoundPath(path) }

        let method = request.method
        let verb: String
        switch (method, name) {
        case (.get, nil): verb = watch ? "watch" : "list"
        case (.get, _): verb = watch ? "watch" : "get"
        case (.post, _): verb = "create"
        case (.put, _): verb = "update"
        case (.patch, _): verb = "patch"
        case (.delete, nil): verb = "deletecollection"
        case (.delete, _): verb = "delete"
        default: throw APIError.methodNotAllowed()
        }
        var nodeUser: UserInfo?
        if let authorizer = server.authorizer {
            let user = try await authenticate(request, channel)
            if user.role == .node { nodeUser = user } else {
                try authorizer.authorize(user: user, verb: verb, resource: rt, subresource: sub, namespace: namespace)
            }
        }

        var opts = ListOptions()
        if let ls = query["labelSelector"], !ls.isEmpty { opts.labelSelector = try LabelSelector.parse(ls) }
        if let fs = query["fieldSelector"], !fs.isEmpty { opts.fieldSelector = try FieldSelector.parse(fs) }
        opts.resourceVersion = query["resourceVersion"]
        if let name, verb == "watch" || verb == "list" {
            opts.fieldSelector.terms.append(.init(field: "metadata.name", value: name, negated: false))
        }
        let reg = server.registry
        if let nodeUser {
            try await NodeAuthorizer.check(nodeUser, verb: verb, rt: rt, sub: sub, namespace: namespace, name: name, options: opts, registry: reg)
        }
        let table = Table.wanted(request.headers[.accept])

        switch verb {
        case "list":
            let l = try await reg.list(rt, namespace: namespace, options: opts)
            if table { return Self.json(Table.render(rt, items: l["items"].array ?? [], resourceVersion: l["metadata"]["resourceVersion"].string)) }
            return Self.json(l)
        case "watch":
            let timeout = Double(query["timeoutSeconds"] ?? "") ?? 1800
            return await watchResponse(rt, namespace: namespace, options: opts, timeout: timeout, table: table)
        case "get":
            if sub == "scale" { return Self.json(try await reg.getScale(rt, namespace: namespace, name: name!)) }
            if sub == "log" { return try await podLog(namespace: namespace, name: name!, query: query) }
            let o = try await reg.get(rt, namespace: namespace, name: name!)
            if table && sub == nil { return Self.json(Table.render(rt, items: [o], resourceVersion: o.resourceVersion)) }
            return Self.json(o)
        case "deletecollection":
            let body = try await bodyJSON(request, allowEmpty: true)
            return Self.json(try await reg.deleteCollection(rt, namespace: namespace, options: opts,
                                                             deleteOptions: .init(json: body ?? [:])))
        default:
            break
        }

        let body = try await bodyJSON(request, allowEmpty: verb == "delete")
        switch verb {
        case "create":
            if sub == "binding", let name { return Self.json(try await reg.bind(namespace: namespace, pod: name, binding: body ?? [:]), code: 201) }
            if name != nil { throw APIError.methodNotAllowed() }
            if let nodeUser { try NodeAuthorizer.checkCreate(nodeUser, rt: rt, body: body ?? [:]) }
            return Self.json(try await reg.create(rt, namespace: namespace, body ?? [:]), code: 201)
        case "update":
            if sub == "scale" { return Self.json(try await reg.updateScale(rt, namespace: namespace, name: name!, scale: body ?? [:])) }
            return Self.json(try await reg.update(rt, namespace: namespace, name: name!, body ?? [:], subresource: sub))
        case "patch":
            let ctype = request.headers[.contentType] ?? ""
            let type: APIRegistry.PatchType
            if ctype.hasPrefix("application/merge-patch+json") { type = .merge }
            else if ctype.hasPrefix("application/strategic-merge-patch+json") { type = .strategic }
            else if ctype.hasPrefix("application/json-patch+json") { type = .json }
            else { throw APIError.unsupportedMediaType(ctype) }
            if type == .json, sub == "scale" { throw APIError.unsupportedMediaType(ctype) }
            if sub == "scale" { return Self.json(try await reg.updateScale(rt, namespace: namespace, name: name!, patch: body ?? [:])) }
            return Self.json(try await reg.patch(rt, namespace: namespace, name: name!, body ?? [:], type: type, subresource: sub))
        case "delete":
            if sub != nil { throw APIError.methodNotAllowed() }
            var options = APIRegistry.DeleteOptions(json: body ?? [:])
            if let p = query["propagationPolicy"] { options.propagationPolicy = p }
            if let g = query["gracePeriodSeconds"].flatMap({ Int($0) }) { options.gracePeriodSeconds = g }
            let (obj, deleted) = try await reg.delete(rt, namespace: namespace, name: name!, options: options)
            return Self.json(obj, code: deleted ? 200 : 202)
        default:
            throw APIError.methodNotAllowed()
        }
    }

    func bodyJSON(_ request: Request, allowEmpty: Bool) async throws -> JSON? {
        // JSON, and the protobuf typed clients such as `kubectl create` send (KubeProtobuf.swift).
        let ctype = request.headers[.contentType] ?? ""
        let protobuf = ctype.hasPrefix("application/vnd.kubernetes.protobuf")
        if ctype.contains("cbor") || (ctype.contains("protobuf") && !protobuf) { throw APIError.unsupportedMediaType(ctype) }
        var req = request
        let buf = try await req.collectBody(upTo: 8 << 20)
        if buf.readableBytes == 0 {
            if allowEmpty { return nil }
            throw APIError.badRequest("the request body is empty")
        }
        if protobuf { return try KubeProtobuf.decode(Array(buf.readableBytesView)) }
        do {
            return try JSON.parse(Data(buf.readableBytesView))
        } catch {
            throw APIError.badRequest("the request body is not valid JSON")
        }
    }

    func authenticate(_ request: Request, _ channel: any Channel) async throws -> UserInfo {
        guard let user = await server.identify(authorization: request.headers[.authorization], channel: channel) else {
            throw APIError.unauthorized()
        }
        return user
    }

    /// A chunked response of newline-delimited watch events. Errors (such as 410 for a
    /// compacted resourceVersion) are delivered in-stream as an ERROR event, like Kubernetes.
    func watchResponse(_ rt: ResourceType, namespace: String, options: ListOptions, timeout: Double, table: Bool = false) async -> Response {
        let reg = server.registry
        let headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-cache"]
        let source: AsyncThrowingStream<WatchEvent, Error>
        do {
            source = try await reg.watch(rt, namespace: namespace, options: options)
        } catch {
            let status = (error as? APIError ?? .internalError("\(error)")).status
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: Self.eventLine("ERROR", status))))
        }
        // Merge the source with a timer so the response ends after `timeout` seconds.
        let (events, cont) = AsyncThrowingStream<WatchEvent, Error>.makeStream(bufferingPolicy: .unbounded)
        let pump = Task {
            do { for try await ev in source { cont.yield(ev) }; cont.finish() } catch {
                cont.yield(WatchEvent(type: "ERROR", object: (error as? APIError ?? .internalError("\(error)")).status))
                cont.finish()
            }
        }
        let timer = Task {
            try? await Task.sleep(nanoseconds: UInt64(max(timeout, 0.1) * 1e9))
            cont.finish()
        }
        cont.onTermination = { _ in pump.cancel(); timer.cancel() }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { pump.cancel(); timer.cancel() }
            for try await ev in events {
                let obj = table && ev.type != "ERROR" ? Table.render(rt, items: [ev.object], resourceVersion: ev.object.resourceVersion) : ev.object
                try await writer.write(ByteBuffer(bytes: Self.eventLine(ev.type, obj)))
            }
            try await writer.finish(nil)
        })
    }

    static func eventLine(_ type: String, _ object: JSON) -> Data {
        var d = JSON.object(["type": .string(type), "object": NodeProxy.scrubbed(object)]).serialized()
        d.append(0x0A)
        return d
    }
}
