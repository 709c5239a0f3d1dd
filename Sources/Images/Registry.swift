// The OCI distribution (HTTP API v2) client: pulls a reference into the
// store. Anonymous, bearer-token (WWW-Authenticate challenge -> token
// endpoint) and basic auth; OCI and Docker schema 2 manifests; indexes and
// manifest lists resolved to linux/amd64; every blob checked against its
// digest and size; layers fetched concurrently; http only for loopback
// registries (and an explicit insecure list), https otherwise.

import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Credentials for a registry (the CRI AuthConfig fields).
public struct RegistryAuth: Sendable, Equatable {
    public var username = ""
    public var password = ""
    /// base64("username:password")
    public var auth = ""
    public var identityToken = ""
    public var registryToken = ""
    public init(username: String = "", password: String = "", auth: String = "", identityToken: String = "", registryToken: String = "") {
        self.username = username; self.password = password; self.auth = auth
        self.identityToken = identityToken; self.registryToken = registryToken
    }
    var basic: (String, String)? {
        if !username.isEmpty { return (username, password) }
        if !auth.isEmpty, let d = Data(base64Encoded: auth), let s = String(data: d, encoding: .utf8),
           let colon = s.firstIndex(of: ":") {
            return (String(s[..<colon]), String(s[s.index(after: colon)...]))
        }
        return nil
    }
}

public enum PullEvent: Sendable {
    case resolved(manifest: String, layers: [Descriptor])
    case layerProgress(digest: String, bytes: Int64, total: Int64)
    case layerDone(digest: String, cached: Bool)
    case unpacking
}

public struct RegistryClient: Sendable {
    public var insecureRegistries: Set<String>
    public var platform = Platform(architecture: "amd64", os: "linux")

    /// Registry host -> endpoint URL (http://127.0.0.1:5000) that serves it
    /// instead, as a node's registry mirror configuration does; the image keeps
    /// its own name.
    public var mirrors: [String: String] = [:]

    public init(insecureRegistries: Set<String> = [], mirrors: [String: String] = [:]) {
        self.insecureRegistries = insecureRegistries; self.mirrors = mirrors
    }

    /// Parses `REGISTRY=URL` mirror specs (command-line form).
    public static func parseMirrors(_ specs: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        for spec in specs {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
                throw ImageError.registry("registry mirror \(spec.debugDescription): expected REGISTRY=URL")
            }
            var url = String(spec[spec.index(after: eq)...])
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > 8 else {
                throw ImageError.registry("registry mirror \(spec.debugDescription): the URL must start with http:// or https://")
            }
            while url.hasSuffix("/") { url.removeLast() }
            out[String(spec[..<eq])] = url
        }
        return out
    }

    func baseURL(_ registry: String) -> String {
        if let mirror = mirrors[registry] { return mirror }
        let host = registry == "docker.io" ? "registry-1.docker.io" : registry
        let bare = host.hasPrefix("[") ? String(host[..<(host.firstIndex(of: "]").map { host.index(after: $0) } ?? host.endIndex)])
            : String(host.split(separator: ":").first ?? "")
        let plain = ["127.0.0.1", "localhost", "[::1]"].contains(bare) || insecureRegistries.contains(registry)
        return (plain ? "http://" : "https://") + host
    }

    /// Pulls `reference` into `store` and unpacks it; returns the image.
    public func pull(_ reference: String, auth: RegistryAuth = RegistryAuth(), into store: ImageStore,
                     progress: (@Sendable (PullEvent) -> Void)? = nil) async throws -> ImageRecord {
        let ref = try ImageReference(parsing: reference)
        let session = Session(base: baseURL(ref.registry), repository: ref.repository, auth: auth)
        return try await store.withIngestLease {
            let (manifestBytes, manifestDigest) = try await resolveManifest(ref, session)
            let manifest = try store.decodeManifest(manifestBytes, digest: manifestDigest)
            progress?(.resolved(manifest: manifestDigest, layers: manifest.layers))
            try await fetchBlob(manifest.config, session, store, progress: nil)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for layer in manifest.layers {
                    group.addTask { try await fetchBlob(layer, session, store, progress: progress) }
                }
                try await group.waitForAll()
            }
            try store.putBlob(manifestBytes, expected: manifestDigest)
            let desc = Descriptor(mediaType: MediaType.ociManifest, digest: manifestDigest, size: Int64(manifestBytes.count))
            try store.tag(ref, manifest: desc)
            if ref.tag != nil && ref.digest == nil {
                // Also reachable as name@digest.
                var byDigest = ref; byDigest.tag = nil; byDigest.digest = manifestDigest
                try store.tag(byDigest, manifest: desc)
            }
            guard let image = try store.images().first(where: { $0.manifestDigest == manifestDigest }) else {
                throw ImageError.corrupt("pulled image \(reference) vanished from the store")
            }
            progress?(.unpacking)
            _ = try store.rootfs(for: image)
            return image
        }
    }

    static let accept = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerList].joined(separator: ", ")

    /// The platform manifest's bytes and digest.
    func resolveManifest(_ ref: ImageReference, _ session: Session) async throws -> ([UInt8], String) {
        var target = ref.digest ?? ref.tag!
        var expected = ref.digest
        for _ in 0..<3 {
            let (bytes, headers) = try await session.get("/manifests/" + target, accept: Self.accept, limit: 4 << 20)
            let digest = Digest.of(bytes)
            if let e = expected, e != digest { throw ImageError.digestMismatch(expected: e, actual: digest) }
            let kind = try JSONDecoder().decode(Kind.self, from: Data(bytes))
            let type = kind.mediaType ?? headers.first(name: "Content-Type")
            if MediaType.isIndex(type) || (kind.manifests != nil && kind.config == nil) {
                let index = try JSONDecoder().decode(Index.self, from: Data(bytes))
                guard let m = index.manifests.first(where: {
                    $0.platform?.os == platform.os && $0.platform?.architecture == platform.architecture
                }) else {
                    let have = index.manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }
                    throw ImageError.registry("\(ref): no \(platform.os)/\(platform.architecture) image in the index (it has \(have.joined(separator: ", ")))")
                }
                target = m.digest; expected = m.digest
                continue
            }
            if kind.schemaVersion == 1 { throw ImageError.registry("\(ref): Docker schema 1 manifests are not supported") }
            return (bytes, digest)
        }
        throw ImageError.registry("\(ref): nested indexes too deep")
    }

    struct Kind: Decodable {
        var schemaVersion: Int?
        var mediaType: String?
        var manifests: [Descriptor]?
        var config: Descriptor?
    }

    func fetchBlob(_ d: Descriptor, _ session: Session, _ store: ImageStore,
                   progress: (@Sendable (PullEvent) -> Void)?) async throws {
        if store.hasBlob(d.digest) { progress?(.layerDone(digest: d.digest, cached: true)); return }
        _ = try Digest.hex(d.digest) ?? { throw ImageError.corrupt("bad digest \(d.digest)") }()
        let writer = try store.blobWriter()
        try await session.stream("/blobs/" + d.digest) { chunk in
            try chunk.withUnsafeReadableBytes { try writer.write($0) }
            if writer.count > d.size { throw ImageError.corrupt("blob \(d.digest) is larger than its \(d.size) bytes") }
            progress?(.layerProgress(digest: d.digest, bytes: writer.count, total: d.size))
        }
        try writer.commit(expectedDigest: d.digest, expectedSize: d.size)
        progress?(.layerDone(digest: d.digest, cached: false))
    }
}

/// One repository on one registry, with the authorization it earned.
final class Session: @unchecked Sendable {
    let base: String
    let repository: String
    let auth: RegistryAuth
    private let lock = NSLock()
    private var authorization: String?

    init(base: String, repository: String, auth: RegistryAuth) {
        self.base = base; self.repository = repository; self.auth = auth
        if !auth.registryToken.isEmpty { authorization = "Bearer " + auth.registryToken }
    }

    private var currentAuthorization: String? {
        get { lock.lock(); defer { lock.unlock() }; return authorization }
        set { lock.lock(); authorization = newValue; lock.unlock() }
    }

    func get(_ path: String, accept: String, limit: Int) async throws -> ([UInt8], HTTPHeaders) {
        let resp = try await send(path, accept: accept)
        var body = try await resp.body.collect(upTo: limit)
        return (body.readBytes(length: body.readableBytes) ?? [], resp.headers)
    }

    func stream(_ path: String, _ sink: (ByteBuffer) throws -> Void) async throws {
        let resp = try await send(path, accept: "*/*")
        for try await chunk in resp.body { try sink(chunk) }
    }

    /// A GET that answers 2xx, authenticating on a 401 challenge once.
    private func send(_ path: String, accept: String) async throws -> HTTPClientResponse {
        let url = base + "/v2/" + repository + path
        var challenged = false
        while true {
            var req = HTTPClientRequest(url: url)
            req.headers.add(name: "Accept", value: accept)
            if let a = currentAuthorization { req.headers.add(name: "Authorization", value: a) }
            let resp: HTTPClientResponse
            do { resp = try await HTTPClient.shared.execute(req, timeout: .seconds(300)) } catch {
                throw ImageError.registry("\(base): cannot reach the registry: \(error)")
            }
            if (200..<300).contains(resp.status.code) { return resp }
            let message = await Self.errorMessage(resp)
            if resp.status == .unauthorized && !challenged {
                challenged = true
                if let header = resp.headers.first(name: "WWW-Authenticate") {
                    currentAuthorization = try await answer(challenge: header, message: message)
                    continue
                }
            }
            switch resp.status {
            case .unauthorized, .forbidden:
                throw ImageError.unauthorized("\(base)/\(repository): \(message)")
            case .notFound:
                throw ImageError.notFound("\(base)/\(repository)\(path.hasPrefix("/manifests/") ? ":" + path.dropFirst(11) : path): \(message)")
            default:
                throw ImageError.registry("\(base)/\(repository): HTTP \(resp.status.code): \(message)")
            }
        }
    }

    /// The registry's own error text ({"errors":[{"code","message"}]}).
    static func errorMessage(_ resp: HTTPClientResponse) async -> String {
        struct Errors: Decodable { struct E: Decodable { var code: String?; var message: String? }; var errors: [E]? }
        guard var body = try? await resp.body.collect(upTo: 1 << 20) else { return resp.status.reasonPhrase }
        let bytes = body.readBytes(length: body.readableBytes) ?? []
        if let e = try? JSONDecoder().decode(Errors.self, from: Data(bytes)), let list = e.errors, !list.isEmpty {
            return list.map { e in [e.code?.lowercased().replacingOccurrences(of: "_", with: " "), e.message]
                .compactMap { $0 }.filter { !$0.isEmpty }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                .joined(separator: ": ") }.joined(separator: "; ")
        }
        let text = String(decoding: bytes.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? resp.status.reasonPhrase : text
    }

    /// The Authorization header a challenge asks for.
    private func answer(challenge: String, message: String) async throws -> String {
        let (scheme, params) = Self.parseChallenge(challenge)
        switch scheme.lowercased() {
        case "basic":
            guard let (u, p) = auth.basic else { throw ImageError.unauthorized("\(base)/\(repository): credentials required (\(message))") }
            return "Basic " + Data((u + ":" + p).utf8).base64EncodedString()
        case "bearer":
            guard let realm = params["realm"] else { throw ImageError.unauthorized("bearer challenge without a realm") }
            return "Bearer " + (try await fetchToken(realm: realm, service: params["service"],
                                                     scope: params["scope"] ?? "repository:\(repository):pull"))
        default:
            throw ImageError.unauthorized("\(base): unsupported authentication scheme \(scheme)")
        }
    }

    private func fetchToken(realm: String, service: String?, scope: String) async throws -> String {
        struct Token: Decodable { var token: String?; var access_token: String? }
        func enc(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? s }
        var req: HTTPClientRequest
        if !auth.identityToken.isEmpty {
            // OAuth2 refresh-token grant, as docker does with an identity token.
            req = HTTPClientRequest(url: realm)
            req.method = .POST
            req.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            var form = "grant_type=refresh_token&client_id=moat&refresh_token=" + enc(auth.identityToken) + "&scope=" + enc(scope)
            if let s = service { form += "&service=" + enc(s) }
            req.body = .bytes(ByteBuffer(string: form))
        } else {
            var url = realm + (realm.contains("?") ? "&" : "?") + "scope=" + enc(scope)
            if let s = service { url += "&service=" + enc(s) }
            req = HTTPClientRequest(url: url)
            if let (u, p) = auth.basic {
                req.headers.add(name: "Authorization", value: "Basic " + Data((u + ":" + p).utf8).base64EncodedString())
            }
        }
        let resp: HTTPClientResponse
        do { resp = try await HTTPClient.shared.execute(req, timeout: .seconds(60)) } catch {
            throw ImageError.registry("\(realm): cannot reach the token service: \(error)")
        }
        guard resp.status == .ok else {
            throw ImageError.unauthorized("\(realm): \(await Self.errorMessage(resp))")
        }
        var body = try await resp.body.collect(upTo: 1 << 20)
        let t = try? JSONDecoder().decode(Token.self, from: Data(body.readBytes(length: body.readableBytes) ?? []))
        guard let token = t?.token ?? t?.access_token, !token.isEmpty else {
            throw ImageError.unauthorized("\(realm): the token service answered without a token")
        }
        return token
    }

    /// `Bearer realm="...",service="...",scope="..."`
    static func parseChallenge(_ header: String) -> (String, [String: String]) {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard let sp = trimmed.firstIndex(of: " ") else { return (trimmed, [:]) }
        let scheme = String(trimmed[..<sp])
        var params: [String: String] = [:]
        var rest = Substring(trimmed[trimmed.index(after: sp)...])
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let c = rest.first, c != "\"" {
                    if c == "\\" { rest = rest.dropFirst() }
                    if let c2 = rest.first { value.append(c2); rest = rest.dropFirst() }
                }
                rest = rest.dropFirst()
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = String(rest[..<end]).trimmingCharacters(in: .whitespaces)
                rest = rest[end...]
            }
            params[key] = value
        }
        return (scheme, params)
    }
}
