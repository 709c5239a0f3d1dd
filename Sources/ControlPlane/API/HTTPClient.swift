import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately tiny HTTP/1.1 client over blocking POSIX sockets (one connection per
/// request, `Connection: close`). Blocking work runs on GCD threads or a dedicated thread,
/// never on the Swift concurrency pool.
public final class RawHTTPConnection: @unchecked Sendable {
    private var fd: Int32
    private var buffer = [UInt8]()
    private let lock = NSLock()
    private let writeLock = NSLock()

    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data
    }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    /// `host` is a name or address, or the absolute path of a Unix socket (`port` unused then).
    public init(host: String, port: Int, timeoutSeconds: Int = 30) throws {
        if host.hasPrefix("/") {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
            Self.setTimeout(fd, timeoutSeconds)
            var a = sockaddr_un()
            a.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(host.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: a.sun_path) else { close(fd); fd = -1; throw Failure(description: "socket path too long: \(host)") }
            withUnsafeMutableBytes(of: &a.sun_path) { for (i, b) in bytes.enumerated() { $0[i] = b } }
            let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard rc == 0 else { let e = errno; close(fd); fd = -1; throw Failure(description: "connect to \(host): errno \(e)") }
            return
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else {
            throw Failure(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(res) }
        fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        Self.setTimeout(fd, timeoutSeconds)
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            let e = errno; close(fd); fd = -1
            throw Failure(description: "connect to \(host):\(port): errno \(e)")
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    private static func setTimeout(_ fd: Int32, _ seconds: Int) {
        guard seconds > 0 else { return }
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Unblocks a pending read from another thread.
    public func shutdownSocket() { lock.withLock { if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) } } }

    /// Writes one request. With `keepAlive` the connection may carry further requests
    /// once the response has been read in full.
    public func send(method: String, path: String, host: String, headers: [String: String], body: Data?, keepAlive: Bool = false) throws {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host.hasPrefix("/") ? "localhost" : host)\r\n" + (keepAlive ? "" : "Connection: close\r\n")
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "Content-Length: \(body?.count ?? 0)\r\n\r\n"
        var data = Data(head.utf8)
        if let body { data.append(body) }
        try data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { throw Failure(description: "send: errno \(errno)") }
                off += n
            }
        }
    }

    /// Reads more bytes into the buffer; false at EOF.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
        if n < 0 { throw Failure(description: "recv: errno \(errno)") }
        if n == 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    private func readLine() throws -> String? {
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            if try !fill() { return nil }
        }
    }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { if try !fill() { throw Failure(description: "unexpected EOF") } }
        let out = Array(buffer[..<n]); buffer.removeFirst(n)
        return out
    }

    public func readHead() throws -> (Int, [String: String]) {
        guard let status = try readLine() else { throw Failure(description: "empty response") }
        let parts = status.split(separator: " ")
        guard parts.count >= 2, let code = Int(parts[1]) else { throw Failure(description: "bad status line \(status)") }
        var headers: [String: String] = [:]
        while let line = try readLine(), !line.isEmpty {
            if let c = line.firstIndex(of: ":") {
                headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (code, headers)
    }

    /// After an upgrade (status 101): the next bytes of the raw connection, starting with
    /// any read past the response head; nil at EOF.
    public func readRaw() throws -> [UInt8]? {
        if buffer.isEmpty, try !fill() { return nil }
        defer { buffer.removeAll() }
        return buffer
    }

    /// After an upgrade: writes all of `bytes` (callers on several threads take turns).
    public func writeRaw(_ bytes: [UInt8]) throws {
        try writeLock.withLock {
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { throw Failure(description: "send: errno \(errno)") }
                off += n
            }
        }
    }

    /// Calls `onData` for each body piece until the body ends.
    public func readBody(headers: [String: String], onData: ([UInt8]) throws -> Void) throws {
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while let sizeLine = try readLine() {
                let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) ?? 0
                if size == 0 { _ = try readLine(); return }
                try onData(try readExactly(size))
                _ = try readLine()
            }
        } else if let len = headers["content-length"].flatMap({ Int($0) }) {
            try onData(try readExactly(len))
        } else {
            if !buffer.isEmpty { try onData(buffer); buffer.removeAll() }
            while try fill() { try onData(buffer); buffer.removeAll() }
        }
    }
}

/// `APIClient` over HTTP, speaking the same REST paths kubectl uses.
public final class HTTPAPIClient: APIClient, @unchecked Sendable {
    public let host: String
    public let port: Int
    public let token: String?

    public init(host: String = "127.0.0.1", port: Int, token: String? = nil) {
        self.host = host; self.port = port; self.token = token
    }

    static func path(_ rt: ResourceType, namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        var p = rt.group.isEmpty ? "/api/v1" : "/apis/\(rt.group)/\(rt.version)"
        if rt.namespaced, let namespace, !namespace.isEmpty { p += "/namespaces/\(namespace)" }
        p += "/\(rt.plural)"
        if let name { p += "/\(name)" }
        if let subresource { p += "/\(subresource)" }
        return p
    }

    static func query(_ o: ListOptions, watch: Bool) -> String {
        var items: [(String, String)] = []
        if !o.labelSelector.isEmpty { items.append(("labelSelector", o.labelSelector.queryString)) }
        if !o.fieldSelector.terms.isEmpty {
            items.append(("fieldSelector", o.fieldSelector.terms.map { "\($0.field)\($0.negated ? "!=" : "=")\($0.value)" }.joined(separator: ",")))
        }
        if watch { items.append(("watch", "1")) }
        if let rv = o.resourceVersion { items.append(("resourceVersion", rv)) }
        if items.isEmpty { return "" }
        var allowed = CharacterSet.alphanumerics; allowed.insert(charactersIn: "-_.~")
        return "?" + items.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
    }

    var baseHeaders: [String: String] {
        var h = ["Accept": "application/json", "User-Agent": "moat-controlplane"]
        if let token { h["Authorization"] = "Bearer \(token)" }
        return h
    }

    /// One request/response exchange, performed on a GCD thread.
    public func raw(_ method: String, _ path: String, body: JSON? = nil, contentType: String = "application/json") async throws -> (Int, Data) {
        let (host, port, headersBase) = (self.host, self.port, self.baseHeaders)
        return try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async {
                do {
                    let conn = try RawHTTPConnection(host: host, port: port)
                    var headers = headersBase
                    if body != nil { headers["Content-Type"] = contentType }
                    try conn.send(method: method, path: path, host: "\(host):\(port)", headers: headers, body: body?.serialized())
                    let (code, h) = try conn.readHead()
                    var data = Data()
                    try conn.readBody(headers: h) { data.append(contentsOf: $0) }
                    cont.resume(returning: (code, data))
                } catch {
                    cont.resume(throwing: error)
                }
            }
        }
    }

    func call(_ method: String, _ path: String, body: JSON? = nil, contentType: String = "application/json") async throws -> JSON {
        let (code, data) = try await raw(method, path, body: body, contentType: contentType)
        let json = (try? JSON.parse(data)) ?? .null
        guard (200..<300).contains(code) else { throw APIError(status: json, httpCode: code) }
        return json
    }

    public func get(_ rt: ResourceType, namespace: String, name: String) async throws -> JSON {
        try await call("GET", Self.path(rt, namespace: namespace, name: name))
    }
    public func list(_ rt: ResourceType, namespace: String?, options: ListOptions) async throws -> JSON {
        try await call("GET", Self.path(rt, namespace: namespace) + Self.query(options, watch: false))
    }
    public func create(_ rt: ResourceType, namespace: String, _ obj: JSON) async throws -> JSON {
        try await call("POST", Self.path(rt, namespace: namespace.isEmpty ? obj.namespace : namespace), body: obj)
    }
    public func update(_ rt: ResourceType, _ obj: JSON, subresource: String?) async throws -> JSON {
        try await call("PUT", Self.path(rt, namespace: obj.namespace, name: obj.name, subresource: subresource), body: obj)
    }
    public func patch(_ rt: ResourceType, namespace: String, name: String, _ patch: JSON, subresource: String?) async throws -> JSON {
        try await call("PATCH", Self.path(rt, namespace: namespace, name: name, subresource: subresource), body: patch,
                       contentType: "application/merge-patch+json")
    }
    public func delete(_ rt: ResourceType, namespace: String, name: String, options: APIRegistry.DeleteOptions) async throws {
        var body: JSON = ["kind": "DeleteOptions", "apiVersion": "v1"]
        if let p = options.propagationPolicy { body["propagationPolicy"] = .string(p) }
        if let u = options.preconditionUID { body[path: "preconditions", "uid"] = .string(u) }
        if let r = options.preconditionResourceVersion { body[path: "preconditions", "resourceVersion"] = .string(r) }
        if let g = options.gracePeriodSeconds { body["gracePeriodSeconds"] = .int(g) }
        _ = try await call("DELETE", Self.path(rt, namespace: namespace, name: name), body: body)
    }
    public func bind(namespace: String, pod: String, node: String) async throws {
        let b: JSON = ["kind": "Binding", "apiVersion": "v1", "metadata": ["name": .string(pod), "namespace": .string(namespace)],
                       "target": ["kind": "Node", "apiVersion": "v1", "name": .string(node)]]
        _ = try await call("POST", Self.path(.pods, namespace: namespace, name: pod, subresource: "binding"), body: b)
    }

    /// Streams watch events from a dedicated thread. An ERROR event ends the stream with the
    /// `APIError` it carries (e.g. 410 Gone). Cancelling the consumer closes the socket.
    public func watch(_ rt: ResourceType, namespace: String?, options: ListOptions) async throws -> AsyncThrowingStream<WatchEvent, Error> {
        let path = Self.path(rt, namespace: namespace) + Self.query(options, watch: true)
        let conn = try RawHTTPConnection(host: host, port: port, timeoutSeconds: 0)
        try conn.send(method: "GET", path: path, host: "\(host):\(port)", headers: baseHeaders, body: nil)
        let (stream, cont) = AsyncThrowingStream<WatchEvent, Error>.makeStream(bufferingPolicy: .unbounded)
        cont.onTermination = { _ in conn.shutdownSocket() }
        let thread = Thread {
            do {
                let (code, headers) = try conn.readHead()
                if code != 200 {
                    var data = Data()
                    try conn.readBody(headers: headers) { data.append(contentsOf: $0) }
                    throw APIError(status: (try? JSON.parse(data)) ?? .null, httpCode: code)
                }
                var pending = [UInt8]()
                try conn.readBody(headers: headers) { bytes in
                    pending.append(contentsOf: bytes)
                    while let nl = pending.firstIndex(of: 0x0A) {
                        let line = Array(pending[..<nl]); pending.removeFirst(nl + 1)
                        if line.isEmpty { continue }
                        let ev = try JSON.parse(Data(line))
                        let type = ev["type"].string ?? ""
                        if type == "ERROR" { throw APIError(status: ev["object"], httpCode: 500) }
                        if type == "BOOKMARK" { continue }
                        cont.yield(WatchEvent(type: type, object: ev["object"]))
                    }
                }
                cont.finish()
            } catch {
                cont.finish(throwing: error)
            }
        }
        thread.start()
        return stream
    }
}
