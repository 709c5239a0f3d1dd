// OCI image-spec and Docker schema 2 documents (descriptors, manifests,
// indexes, image configs) as Codable values, the errors of this module,
// and image references (`[host[:port]/]name[:tag|@digest]`).

import Foundation

public enum MediaType {
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static func isIndex(_ t: String?) -> Bool { t == ociIndex || t == dockerList }
}

public struct Platform: Codable, Sendable, Equatable {
    public var architecture: String
    public var os: String
    public var variant: String?
}

public struct Descriptor: Codable, Sendable, Equatable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    public var annotations: [String: String]?
    public var platform: Platform?
    public init(mediaType: String, digest: String, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        self.mediaType = mediaType; self.digest = digest; self.size = size
        self.annotations = annotations; self.platform = platform
    }
}

public struct Manifest: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
}

public struct Index: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
    public init(manifests: [Descriptor]) { schemaVersion = 2; mediaType = MediaType.ociIndex; self.manifests = manifests }
}

/// The config blob (only what Moat uses).
struct ConfigFile: Codable {
    struct Inner: Codable {
        var Env: [String]?
        var Entrypoint: [String]?
        var Cmd: [String]?
        var WorkingDir: String?
        var User: String?
        var ExposedPorts: [String: AnyEmpty]?
        var Labels: [String: String]?
        var StopSignal: String?
    }
    struct AnyEmpty: Codable {}
    struct RootFS: Codable { var type: String?; var diff_ids: [String] }
    var architecture: String?
    var os: String?
    var config: Inner?
    var rootfs: RootFS

    var imageConfig: ImageConfig {
        var c = ImageConfig()
        c.env = config?.Env ?? []
        c.entrypoint = config?.Entrypoint ?? []
        c.cmd = config?.Cmd ?? []
        c.workingDir = config?.WorkingDir ?? ""
        c.user = config?.User ?? ""
        c.exposedPorts = (config?.ExposedPorts.map { Array($0.keys) } ?? []).sorted()
        c.labels = config?.Labels ?? [:]
        c.stopSignal = config?.StopSignal ?? ""
        return c
    }
}

public enum ImageError: Error, CustomStringConvertible, Equatable {
    case corrupt(String)
    case unsafeLayer(String)
    case system(String, Int32)
    case notFound(String)
    case inUse(String)
    case invalidReference(String)
    case digestMismatch(expected: String, actual: String)
    case unauthorized(String)
    case registry(String)

    public var description: String {
        switch self {
        case .corrupt(let m): return "corrupt image data: \(m)"
        case .unsafeLayer(let m): return "unsafe layer entry refused: \(m)"
        case .system(let op, let e): return "\(op): \(String(cString: strerror(e)))"
        case .notFound(let r): return "image not found: \(r)"
        case .inUse(let m): return "image is in use: \(m)"
        case .invalidReference(let m): return "invalid image reference: \(m)"
        case .digestMismatch(let e, let a): return "digest mismatch: expected \(e), got \(a)"
        case .unauthorized(let m): return "unauthorized: \(m)"
        case .registry(let m): return m
        }
    }
}

/// `[host[:port]/]path[:tag][@digest]`, normalised as docker does
/// (docker.io, library/, latest).
public struct ImageReference: Sendable, Equatable, CustomStringConvertible {
    public var registry: String
    public var repository: String
    public var tag: String?
    public var digest: String?

    public init(parsing s: String) throws {
        guard !s.isEmpty, !s.contains(where: { $0.isWhitespace }) else { throw ImageError.invalidReference("'\(s)'") }
        var rest = Substring(s)
        if let at = rest.firstIndex(of: "@") {
            let d = String(rest[rest.index(after: at)...])
            guard Digest.hex(d) != nil else { throw ImageError.invalidReference("\(s): bad digest") }
            digest = d
            rest = rest[..<at]
        }
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let t = String(rest[rest.index(after: colon)...])
            guard !t.isEmpty, t.count <= 128, t.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
                throw ImageError.invalidReference("\(s): bad tag")
            }
            tag = t
            rest = rest[..<colon]
        }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count > 1, parts[0].contains(".") || parts[0].contains(":") || parts[0] == "localhost" {
            registry = parts[0]
            repository = parts.dropFirst().joined(separator: "/")
        } else {
            registry = "docker.io"
            repository = parts.joined(separator: "/")
            if parts.count == 1 { repository = "library/" + repository }
        }
        guard !repository.isEmpty, repository.split(separator: "/", omittingEmptySubsequences: false).allSatisfy({
            !$0.isEmpty && $0.allSatisfy { $0.isLowercase || $0.isNumber || "._-".contains($0) }
        }) else { throw ImageError.invalidReference("\(s): bad repository name") }
        if tag == nil && digest == nil { tag = "latest" }
    }

    /// registry/repository
    public var name: String { registry + "/" + repository }
    public var description: String {
        var s = name
        if let t = tag { s += ":" + t }
        if let d = digest { s += "@" + d }
        return s
    }
}
