// Images: the content-addressed image store (an OCI image layout under the
// runtime's root) and the OCI distribution client that fills it. Layers are
// verified by digest and unpacked once; every container of an image shares
// the unpacked root file system read-only (its writes go to the Sentry's
// overlay). Used by `moat cri` (ImageService), `moat pull`/`images` and
// `moat run --image`.

/// What a container needs from an image: a read-only root file system
/// directory and the image's configuration.
public struct ResolvedImage: Sendable {
    /// The image id: the digest of its config ("sha256:...").
    public var id: String
    /// The references (repo:tag, repo@digest) that name it.
    public var references: [String]
    /// The unpacked root file system, shared read-only.
    public var rootfs: String
    public var config: ImageConfig
    public init(id: String, references: [String], rootfs: String, config: ImageConfig) {
        self.id = id; self.references = references; self.rootfs = rootfs; self.config = config
    }
}

/// The parts of an OCI image config (`config` object) a runtime uses.
public struct ImageConfig: Sendable, Equatable {
    public var env: [String] = []
    public var entrypoint: [String] = []
    public var cmd: [String] = []
    public var workingDir: String = ""
    public var user: String = ""
    public var exposedPorts: [String] = []
    public var labels: [String: String] = [:]
    public var stopSignal: String = ""
    public init() {}
}
