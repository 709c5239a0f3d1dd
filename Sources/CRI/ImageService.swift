// The CRI ImageService (runtime.v1) over the image store (Images). Owned by
// the image-store work; `CRIServer` registers it next to the RuntimeService,
// which asks it (as an `ImageResolver`) for a container's image and marks
// images in use through `store.markInUse(_:by:)` / `release(_:by:)`.

import CRIAPI
import Foundation
import GRPCCore
import Images

/// Images the RuntimeService needs when it creates a container.
public protocol ImageResolver: Sendable {
    /// The image a CreateContainer request names (a reference or an image id),
    /// or nil when it is not in the store.
    func resolve(_ reference: String) async throws -> ResolvedImage?
}

public struct ImageService: Runtime_V1_ImageService.SimpleServiceProtocol, ImageResolver {
    public let store: ImageStore
    public let registry: RegistryClient
    /// Plain root file system directories served as images (`moat cri
    /// --rootfs-image REF=DIR`): present without a pull, never pulled.
    public var directoryImages: [String: String] = [:]

    /// The store lives in `root`/images (root defaults to /var/lib/moat).
    public init(root: String, insecureRegistries: Set<String> = [], mirrors: [String: String] = [:]) throws {
        store = try ImageStore(root: root + "/images")
        registry = RegistryClient(insecureRegistries: insecureRegistries, mirrors: mirrors)
    }

    public init(store: ImageStore, registry: RegistryClient = RegistryClient()) {
        self.store = store; self.registry = registry
    }

    // MARK: ImageResolver

    public func resolve(_ reference: String) async throws -> ResolvedImage? {
        do { return try store.resolve(reference) } catch { throw Self.rpcError(error, field: "image") }
    }

    // MARK: runtime.v1 ImageService

    public func listImages(request: Runtime_V1_ListImagesRequest, context: ServerContext) async throws -> Runtime_V1_ListImagesResponse {
        var resp = Runtime_V1_ListImagesResponse()
        do {
            if request.hasFilter, request.filter.hasImage, !request.filter.image.image.isEmpty {
                if let i = try store.find(request.filter.image.image) { resp.images = [Self.message(i)] }
            } else {
                resp.images = try store.images().map(Self.message)
            }
        } catch { throw Self.rpcError(error, field: "filter.image.image") }
        return resp
    }

    public func streamImages(request: Runtime_V1_StreamImagesRequest, response: RPCWriter<Runtime_V1_StreamImagesResponse>, context: ServerContext) async throws {
        var list = Runtime_V1_ListImagesRequest()
        if request.hasFilter { list.filter = request.filter }
        var out = Runtime_V1_StreamImagesResponse()
        out.images = try await listImages(request: list, context: context).images
        try await response.write(out)
    }

    public func imageStatus(request: Runtime_V1_ImageStatusRequest, context: ServerContext) async throws -> Runtime_V1_ImageStatusResponse {
        guard request.hasImage, !request.image.image.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "image.image: an image reference or id is required")
        }
        var resp = Runtime_V1_ImageStatusResponse()
        if let dir = directoryImages[request.image.image] {
            resp.image.id = "dir:" + dir
            resp.image.repoTags = [request.image.image]
            return resp
        }
        do {
            // An absent image is an empty answer, not an error (kubelet pulls then).
            guard let i = try store.find(request.image.image) else { return resp }
            resp.image = Self.message(i)
            if request.verbose {
                let users = store.users(of: i.id).sorted()
                resp.info["info"] = #"{"manifestDigest":"\#(i.manifestDigest)","chainID":"\#(i.chainID)","layers":\#(i.layers.count),"usedBy":\#(users.count)}"#
            }
        } catch { throw Self.rpcError(error, field: "image.image") }
        return resp
    }

    public func pullImage(request: Runtime_V1_PullImageRequest, context: ServerContext) async throws -> Runtime_V1_PullImageResponse {
        guard request.hasImage, !request.image.image.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "image.image: an image reference is required")
        }
        if let dir = directoryImages[request.image.image] {
            var r = Runtime_V1_PullImageResponse(); r.imageRef = "dir:" + dir
            return r
        }
        let a = request.auth
        let auth = RegistryAuth(username: a.username, password: a.password, auth: a.auth,
                                identityToken: a.identityToken, registryToken: a.registryToken)
        do {
            let image = try await registry.pull(request.image.image, auth: auth, into: store)
            var resp = Runtime_V1_PullImageResponse()
            resp.imageRef = image.id
            return resp
        } catch { throw Self.rpcError(error, field: "image.image") }
    }

    public func removeImage(request: Runtime_V1_RemoveImageRequest, context: ServerContext) async throws -> Runtime_V1_RemoveImageResponse {
        guard request.hasImage, !request.image.image.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "image.image: an image reference or id is required")
        }
        do {
            // Removing what is not there succeeds (kubelet repeats calls, critest removes at once from several).
            try store.removeIfPresent(request.image.image)
        } catch { throw Self.rpcError(error, field: "image.image") }
        return Runtime_V1_RemoveImageResponse()
    }

    public func imageFsInfo(request: Runtime_V1_ImageFsInfoRequest, context: ServerContext) async throws -> Runtime_V1_ImageFsInfoResponse {
        let u: (bytes: UInt64, inodes: UInt64, mountpoint: String)
        do { u = try store.usage() } catch { throw Self.rpcError(error, field: "") }
        var fs = Runtime_V1_FilesystemUsage()
        fs.timestamp = Int64(Date().timeIntervalSince1970 * 1e9)
        fs.fsID.mountpoint = u.mountpoint
        fs.usedBytes.value = u.bytes
        fs.inodesUsed.value = u.inodes
        var resp = Runtime_V1_ImageFsInfoResponse()
        resp.imageFilesystems = [fs]
        return resp
    }

    // MARK: mapping

    static func message(_ i: ImageRecord) -> Runtime_V1_Image {
        var m = Runtime_V1_Image()
        m.id = i.id
        m.repoTags = i.tags
        m.repoDigests = i.repoDigests
        m.size = UInt64(max(0, i.size))
        // config.User: "uid[:gid]" gives uid; a name gives username.
        let user = i.config.user.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        if let uid = Int64(user) { m.uid.value = uid } else if !user.isEmpty { m.username = user }
        m.spec.image = i.id
        return m
    }

    static func rpcError(_ error: Error, field: String) -> RPCError {
        if let e = error as? RPCError { return e }
        guard let e = error as? ImageError else { return RPCError(code: .internalError, message: "\(error)") }
        switch e {
        case .notFound: return RPCError(code: .notFound, message: e.description)
        case .invalidReference: return RPCError(code: .invalidArgument, message: "\(field): \(e.description)")
        case .inUse: return RPCError(code: .failedPrecondition, message: e.description)
        case .unauthorized: return RPCError(code: .unauthenticated, message: e.description)
        case .registry: return RPCError(code: .unavailable, message: e.description)
        default: return RPCError(code: .internalError, message: e.description)
        }
    }
}

/// The RuntimeService marks the images its containers use; the store refuses
/// to remove them.
extension ImageStore: ImageUseTracker {}
