// The image store: an OCI image layout under a root directory (oci-layout,
// index.json, blobs/sha256/HEX) whose index.json is also the reference
// table (one manifest entry per name, annotated with the full reference),
// plus rootfs/CHAINID: each image's layers applied once, in order, shared
// read-only by its containers. Safe against concurrent processes (flock on
// `lock` for index changes, a per-chain lock for unpacking, a shared lock
// that keeps garbage collection away from pulls in flight) and crashes
// (every file is written to a temporary name, fsynced, then renamed; blobs
// are verified against their digest before they get their name).

import Foundation
import Glibc

/// An image as the store knows it.
public struct ImageRecord: Sendable {
    /// The config digest.
    public var id: String
    public var manifestDigest: String
    /// name:tag references.
    public var tags: [String]
    /// name@manifest-digest references.
    public var repoDigests: [String]
    /// Compressed bytes of the config and layers.
    public var size: Int64
    public var config: ImageConfig
    public var layers: [Descriptor]
    public var diffIDs: [String]
    public var chainID: String
}

public final class ImageStore: @unchecked Sendable {
    public let root: String
    private let inUseLock = NSLock()
    private var inUse: [String: Set<String>] = [:]

    /// The store under `root` (made when missing), e.g. /var/lib/moat/images.
    public init(root: String) throws {
        self.root = root
        for d in [root, root + "/blobs", root + "/blobs/sha256", root + "/rootfs", root + "/tmp"] {
            if mkdir(d, 0o700) != 0 && errno != EEXIST { throw ImageError.system("mkdir \(d)", errno) }
        }
        if access(root + "/oci-layout", F_OK) != 0 {
            try writeFileAtomically(root + "/oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
        }
        if access(root + "/index.json", F_OK) != 0 {
            try withLock("lock") {
                if access(root + "/index.json", F_OK) != 0 { try writeIndex(Index(manifests: [])) }
            }
        }
    }

    // MARK: locks and files

    func withLock<T>(_ name: String, shared: Bool = false, _ body: () throws -> T) throws -> T {
        let fd = open(root + "/" + name, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageError.system("open lock \(name)", errno) }
        defer { close(fd) }
        while flock(fd, shared ? LOCK_SH : LOCK_EX) != 0 {
            if errno != EINTR { throw ImageError.system("flock \(name)", errno) }
        }
        return try body()
    }

    /// Held (shared) by pulls and imports, so garbage collection never takes
    /// a blob that is about to be named by a manifest.
    public func withIngestLease<T>(_ body: () async throws -> T) async throws -> T {
        let fd = open(root + "/gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageError.system("open gc.lock", errno) }
        defer { close(fd) }
        while flock(fd, LOCK_SH) != 0 { if errno != EINTR { throw ImageError.system("flock gc.lock", errno) } }
        return try await body()
    }

    func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = root + "/tmp/" + path.basename + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ImageError.system("create \(tmp)", errno) }
        do {
            try bytes.withUnsafeBytes { try writeAll(fd, $0) }
            guard fsync(fd) == 0 else { throw ImageError.system("fsync", errno) }
        } catch { close(fd); unlink(tmp); throw error }
        close(fd)
        guard rename(tmp, path) == 0 else { let e = errno; unlink(tmp); throw ImageError.system("rename \(path)", e) }
        syncDir(path.dirname)
    }

    private func syncDir(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    // MARK: blobs

    public func blobPath(_ digest: String) throws -> String {
        guard let hex = Digest.hex(digest) else { throw ImageError.corrupt("bad digest \(digest)") }
        return root + "/blobs/sha256/" + hex
    }

    public func hasBlob(_ digest: String) -> Bool {
        guard let p = try? blobPath(digest) else { return false }
        return access(p, F_OK) == 0
    }

    public func readBlob(_ digest: String, limit: Int = 16 << 20) throws -> [UInt8] {
        let p = try blobPath(digest)
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError.notFound("blob \(digest)") }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { if errno == EINTR { continue }; throw ImageError.system("read \(p)", errno) }
            if n == 0 { break }
            out += buf[..<n]
            if out.count > limit { throw ImageError.corrupt("blob \(digest) too large") }
        }
        return out
    }

    /// A blob being written: bytes go to a temporary file while they are
    /// hashed; `commit` checks digest and size, then names it.
    public final class BlobWriter {
        let store: ImageStore
        let tmp: String
        let fd: Int32
        let hasher: HashingSink
        init(store: ImageStore) throws {
            self.store = store
            tmp = store.root + "/tmp/blob.\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw ImageError.system("create \(tmp)", errno) }
            hasher = HashingSink()
        }
        deinit { close(fd); unlink(tmp) }
        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            hasher.update(bytes)
            try writeAll(fd, bytes)
        }
        public var count: Int64 { hasher.count }
        /// Names the blob; throws on a digest or size mismatch.
        @discardableResult
        public func commit(expectedDigest: String?, expectedSize: Int64?) throws -> String {
            let digest = hasher.digest
            if let e = expectedDigest, e != digest { throw ImageError.digestMismatch(expected: e, actual: digest) }
            if let s = expectedSize, s != hasher.count {
                throw ImageError.corrupt("blob \(digest): size \(hasher.count), expected \(s)")
            }
            guard fsync(fd) == 0 else { throw ImageError.system("fsync", errno) }
            let dest = try store.blobPath(digest)
            guard rename(tmp, dest) == 0 else { throw ImageError.system("rename \(dest)", errno) }
            store.syncDir(dest.dirname)
            return digest
        }
    }

    public func blobWriter() throws -> BlobWriter { try BlobWriter(store: self) }

    /// Stores bytes as a blob, checking them against `expected` when given.
    @discardableResult
    public func putBlob(_ bytes: [UInt8], expected: String? = nil) throws -> String {
        if let e = expected, hasBlob(e) {
            let actual = Digest.of(bytes)
            guard actual == e else { throw ImageError.digestMismatch(expected: e, actual: actual) }
            return e
        }
        let w = try blobWriter()
        try bytes.withUnsafeBytes { try w.write($0) }
        return try w.commit(expectedDigest: expected, expectedSize: nil)
    }

    /// Copies a blob from a file, verifying it.
    @discardableResult
    public func putBlob(fromFD fd: Int32, expected: String?, size: Int64?) throws -> String {
        if let e = expected, hasBlob(e) { return e }
        let w = try blobWriter()
        let reader = FDReader(fd: fd)
        var buf = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let n = try buf.withUnsafeMutableBytes { try reader.read($0) }
            if n == 0 { break }
            try buf.withUnsafeBytes { try w.write(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
        return try w.commit(expectedDigest: expected, expectedSize: size)
    }

    // MARK: references (index.json)

    static let nameAnnotation = "io.containerd.image.name"
    static let refAnnotation = "org.opencontainers.image.ref.name"

    func readIndex() throws -> Index {
        let fd = open(root + "/index.json", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError.system("open index.json", errno) }
        defer { close(fd) }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            data += buf[..<n]
        }
        do { return try JSONDecoder().decode(Index.self, from: Data(data)) } catch {
            throw ImageError.corrupt("\(root)/index.json: \(error)")
        }
    }

    func writeIndex(_ index: Index) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try writeFileAtomically(root + "/index.json", Array(try enc.encode(index)))
    }

    /// Names a manifest already in the store. `reference` is normalised;
    /// a name:tag moves from any image that had it.
    public func tag(_ reference: ImageReference, manifest: Descriptor) throws {
        let manifestBytes = try readBlob(manifest.digest)
        let m = try decodeManifest(manifestBytes, digest: manifest.digest)
        guard hasBlob(m.config.digest), m.layers.allSatisfy({ hasBlob($0.digest) }) else {
            throw ImageError.corrupt("manifest \(manifest.digest) names blobs the store lacks")
        }
        let name = reference.tag != nil
            ? reference.name + ":" + reference.tag! : reference.name + "@" + manifest.digest
        try withLock("lock") {
            var index = try readIndex()
            index.manifests.removeAll { $0.annotations?[Self.nameAnnotation] == name }
            var annotations = [Self.nameAnnotation: name]
            if let t = reference.tag { annotations[Self.refAnnotation] = t }
            index.manifests.append(Descriptor(mediaType: MediaType.ociManifest, digest: manifest.digest,
                                              size: Int64(manifestBytes.count), annotations: annotations))
            try writeIndex(index)
        }
    }

    func decodeManifest(_ bytes: [UInt8], digest: String) throws -> Manifest {
        do { return try JSONDecoder().decode(Manifest.self, from: Data(bytes)) } catch {
            throw ImageError.corrupt("manifest \(digest): \(error)")
        }
    }

    func decodeConfig(_ bytes: [UInt8], digest: String) throws -> ConfigFile {
        do { return try JSONDecoder().decode(ConfigFile.self, from: Data(bytes)) } catch {
            throw ImageError.corrupt("config \(digest): \(error)")
        }
    }

    /// Every image, one record per manifest.
    public func images() throws -> [ImageRecord] { try images(listed: try readIndex()) }

    /// The records of the images `index` (as read a moment ago) lists.
    func images(listed index: Index) throws -> [ImageRecord] {
        var order: [String] = []
        var names: [String: [String]] = [:]
        for d in index.manifests {
            if names[d.digest] == nil { order.append(d.digest); names[d.digest] = [] }
            if let n = d.annotations?[Self.nameAnnotation] { names[d.digest]!.append(n) }
        }
        return try order.compactMap { digest in
            let m: Manifest, c: ConfigFile
            do {
                m = try decodeManifest(try readBlob(digest), digest: digest)
                c = try decodeConfig(try readBlob(m.config.digest), digest: m.config.digest)
            } catch ImageError.notFound(let what) {
                // Removed by another call (its blobs collected) since the index was read:
                // not an image any more. A blob missing from a listed image is an error.
                if try readIndex().manifests.contains(where: { $0.digest == digest }) { throw ImageError.notFound(what) }
                return nil
            }
            let refs = names[digest] ?? []
            var repos = Set<String>()
            for r in refs { if let ref = try? ImageReference(parsing: r) { repos.insert(ref.name) } }
            return ImageRecord(
                id: m.config.digest, manifestDigest: digest,
                tags: refs.filter { !$0.contains("@") },
                repoDigests: repos.sorted().map { $0 + "@" + digest },
                size: m.config.size + m.layers.reduce(0) { $0 + $1.size },
                config: c.imageConfig, layers: m.layers, diffIDs: c.rootfs.diff_ids,
                chainID: Self.chainID(c.rootfs.diff_ids))
        }
    }

    /// The image a reference, a name@digest, an id or an unambiguous id
    /// prefix (at least 12 hex digits) names.
    public func find(_ spec: String) throws -> ImageRecord? {
        let all = try images()
        let hexSpec = spec.hasPrefix("sha256:") ? String(spec.dropFirst(7)) : spec
        if hexSpec.count >= 12, hexSpec.allSatisfy({ $0.isHexDigit }) {
            let hits = all.filter { $0.id.dropFirst(7).hasPrefix(hexSpec) }
            if hits.count == 1 { return hits[0] }
            if hits.count > 1, hexSpec.count < 64 { throw ImageError.invalidReference("\(spec) is ambiguous") }
        }
        guard let ref = try? ImageReference(parsing: spec) else { return nil }
        if let d = ref.digest {
            return all.first { $0.manifestDigest == d && $0.repoDigests.contains(ref.name + "@" + d) }
                ?? all.first { $0.manifestDigest == d && $0.tags.contains { $0.hasPrefix(ref.name + ":") } }
        }
        return all.first { $0.tags.contains(ref.description) }
    }

    static func chainID(_ diffIDs: [String]) -> String {
        guard var chain = diffIDs.first else { return Digest.of([]) }
        for d in diffIDs.dropFirst() { chain = Digest.of(Array((chain + " " + d).utf8)) }
        return chain
    }

    // MARK: unpacked root file systems

    /// The image's root file system, unpacked now when it is not yet.
    public func rootfs(for image: ImageRecord) throws -> String {
        guard let hex = Digest.hex(image.chainID) else { throw ImageError.corrupt("bad chain id") }
        let dir = root + "/rootfs/" + hex
        if access(dir, F_OK) == 0 { return dir }
        return try withLock("rootfs/." + hex + ".lock") {
            if access(dir, F_OK) == 0 { return dir }
            let tmp = root + "/tmp/rootfs." + hex + ".\(getpid())"
            try removeTree(path: tmp)
            guard mkdir(tmp, 0o755) == 0 else { throw ImageError.system("mkdir \(tmp)", errno) }
            do {
                try unpack(image, into: tmp)
                guard rename(tmp, dir) == 0 else { throw ImageError.system("rename \(dir)", errno) }
                syncDir(root + "/rootfs")
            } catch { try? removeTree(path: tmp); throw error }
            return dir
        }
    }

    func unpack(_ image: ImageRecord, into dir: String) throws {
        guard image.layers.count == image.diffIDs.count else {
            throw ImageError.corrupt("image \(image.id): \(image.layers.count) layers but \(image.diffIDs.count) diff ids")
        }
        let rootFD = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { throw ImageError.system("open \(dir)", errno) }
        defer { close(rootFD) }
        var applier = LayerApplier(rootFD: rootFD)
        for (layer, diffID) in zip(image.layers, image.diffIDs) {
            let fd = open(try blobPath(layer.digest), O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ImageError.notFound("layer \(layer.digest)") }
            defer { close(fd) }
            let hashing = HashingReader(try openLayer(fd: fd))
            try applier.apply(hashing)
            // Whatever follows the end-of-archive blocks is part of the diff id.
            var buf = [UInt8](repeating: 0, count: 64 * 1024)
            while try buf.withUnsafeMutableBytes({ try hashing.read($0) }) > 0 {}
            if hashing.digest != diffID {
                throw ImageError.digestMismatch(expected: diffID, actual: hashing.digest)
            }
        }
    }

    /// What a container needs: nil when nothing matches `spec`.
    public func resolve(_ spec: String) throws -> ResolvedImage? {
        guard let image = try find(spec) else { return nil }
        return ResolvedImage(id: image.id, references: image.tags + image.repoDigests,
                             rootfs: try rootfs(for: image), config: image.config)
    }

    // MARK: in use, removal, garbage

    /// Records that `user` (a container id) uses image `id`; RemoveImage
    /// refuses an image in use.
    public func markInUse(_ id: String, by user: String) {
        inUseLock.lock(); defer { inUseLock.unlock() }
        inUse[id, default: []].insert(user)
    }

    public func release(_ id: String, by user: String) {
        inUseLock.lock(); defer { inUseLock.unlock() }
        inUse[id]?.remove(user)
        if inUse[id]?.isEmpty == true { inUse[id] = nil }
    }

    public func users(of id: String) -> Set<String> {
        inUseLock.lock(); defer { inUseLock.unlock() }
        return inUse[id] ?? []
    }

    /// Removes the image `spec` names (every name of it when `spec` is an id
    /// or when `allNames`; otherwise only that name). Throws notFound or inUse.
    public func remove(_ spec: String, allNames: Bool = true) throws {
        guard let image = try find(spec) else { throw ImageError.notFound(spec) }
        let users = self.users(of: image.id)
        if !users.isEmpty {
            throw ImageError.inUse("\(spec) (\(image.id)) is used by \(users.sorted().joined(separator: ", "))")
        }
        try withLock("lock") {
            var index = try readIndex()
            if allNames {
                index.manifests.removeAll { $0.digest == image.manifestDigest }
            } else {
                let ref = try ImageReference(parsing: spec)
                index.manifests.removeAll { $0.digest == image.manifestDigest && $0.annotations?[Self.nameAnnotation] == ref.description }
            }
            try writeIndex(index)
        }
        try collectGarbage()
    }

    /// Removes the image `spec` names if there is one (CRI's RemoveImage: removing what is not
    /// there succeeds), also when another call removes it at the same time.
    public func removeIfPresent(_ spec: String) throws {
        guard try find(spec) != nil else { return }
        do { try remove(spec) } catch ImageError.notFound(let what) where what == spec {}
    }

    /// Deletes blobs and root file systems no image names. Skipped while a
    /// pull or import holds its lease (the next removal catches up).
    public func collectGarbage() throws {
        let lease = open(root + "/gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lease >= 0 else { throw ImageError.system("open gc.lock", errno) }
        defer { close(lease) }
        guard flock(lease, LOCK_EX | LOCK_NB) == 0 else { return }
        try withLock("lock") {
            let live = try images()
            var blobs = Set<String>(), chains = Set<String>()
            for i in live {
                blobs.insert(i.manifestDigest); blobs.insert(i.id)
                for l in i.layers { blobs.insert(l.digest) }
                chains.insert(i.chainID)
            }
            let liveHex = Set(blobs.compactMap(Digest.hex))
            let blobDir = open(root + "/blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if blobDir >= 0 {
                for name in try listDir(blobDir) where !liveHex.contains(name) { unlinkat(blobDir, name, 0) }
                close(blobDir)
            }
            let liveChains = Set(chains.compactMap(Digest.hex))
            let rootfsDir = open(root + "/rootfs", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if rootfsDir >= 0 {
                for name in try listDir(rootfsDir) where !name.hasPrefix(".") && !liveChains.contains(name) {
                    try removeTree(rootfsDir, name)
                }
                close(rootfsDir)
            }
        }
    }

    /// Bytes and inodes the store uses, and the mount point holding it.
    public func usage() throws -> (bytes: UInt64, inodes: UInt64, mountpoint: String) {
        var bytes: UInt64 = 0, inodes: UInt64 = 0
        func walk(_ dir: Int32) {
            guard let names = try? listDir(dir) else { return }
            for n in names {
                var st = stat()
                guard fstatat(dir, n, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                inodes += 1
                bytes += UInt64(st.st_blocks) * 512
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    let sub = openat(dir, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if sub >= 0 { walk(sub); close(sub) }
                }
            }
        }
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError.system("open \(root)", errno) }
        walk(fd); close(fd)
        return (bytes, inodes, Self.mountpoint(of: root))
    }

    /// The longest mount point in /proc/self/mountinfo that holds `path`.
    static func mountpoint(of path: String) -> String {
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX))
        let real = realpath(path, &resolved) != nil ? String(cString: resolved) : path
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return "/" }
        var best = "/"
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count > 4 else { continue }
            let mp = String(f[4])
            if (real == mp || real.hasPrefix(mp == "/" ? "/" : mp + "/")) && mp.count > best.count { best = mp }
        }
        return best
    }
}

/// SHA-256 over written bytes (BlobWriter).
final class HashingSink {
    private var reader = HashingReader(EmptyReader())
    var count: Int64 { reader.count }
    func update(_ b: UnsafeRawBufferPointer) { reader.hasher.update(bufferPointer: b); reader.count += Int64(b.count) }
    var digest: String { reader.digest }
}

final class EmptyReader: ByteReader {
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int { 0 }
}
