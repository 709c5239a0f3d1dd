// Import into the store from an OCI image layout directory or a
// docker-archive tarball (`docker save`); every blob is verified on its way
// in, and nothing in the source is trusted to name paths outside itself.

import Foundation
import Glibc

extension ImageStore {
    /// Imports `path` (an OCI layout directory or a docker-archive tar).
    /// Names come from the source (ref.name annotations, RepoTags); `name`
    /// (a repository, e.g. localhost/app) names tags that are bare, and is
    /// the name of last resort. Returns the imported images.
    public func importImages(from path: String, name: String? = nil) async throws -> [ImageRecord] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw ImageError.system("stat \(path)", errno) }
        return try await withIngestLease {
            if (st.st_mode & S_IFMT) == S_IFDIR { return try importLayout(path, name: name) }
            return try importDockerArchive(path, name: name)
        }
    }

    private func defaultName(_ path: String, _ name: String?) -> String {
        if let n = name { return n }
        var base = path.hasSuffix("/") ? String(path.dropLast()) : path
        base = base.basename.lowercased()
        for ext in [".tar", ".tgz", ".tar.gz"] where base.hasSuffix(ext) { base = String(base.dropLast(ext.count)) }
        let cleaned = String(base.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "-" })
        return "localhost/" + (cleaned.isEmpty ? "image" : cleaned)
    }

    /// Reads a file below `dir` whose name came from the source, never
    /// following a symlink out of it.
    private func openInside(_ dir: String, _ relative: String) throws -> Int32 {
        guard let parts = try LayerApplier.clean(relative) else { throw ImageError.corrupt("empty path in \(dir)") }
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw ImageError.system("open \(dir)", errno) }
        defer { close(dirFD) }
        var resolved = parts
        for _ in 0..<8 {
            let parent = try LayerApplier(rootFD: dirFD, privileged: false).openDir(Array(resolved.dropLast()), create: false)
            defer { close(parent) }
            let fd = openat(parent, resolved.last!, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 { return fd }
            guard errno == ELOOP else { throw ImageError.notFound("\(relative) in \(dir)") }
            // A relative symlink inside the archive (docker save links duplicate layers).
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlinkat(parent, resolved.last!, &buf, buf.count - 1)
            guard n > 0 else { throw ImageError.system("readlink \(relative)", errno) }
            let target = String(cString: buf)
            guard !target.hasPrefix("/") else { throw ImageError.unsafeLayer("\(relative) links outside the archive") }
            var next = Array(resolved.dropLast())
            for c in target.split(separator: "/") {
                if c == "." { continue }
                if c == ".." { guard !next.isEmpty else { throw ImageError.unsafeLayer("\(relative) links outside the archive") }; next.removeLast() } else { next.append(String(c)) }
            }
            guard !next.isEmpty else { throw ImageError.corrupt("\(relative) links to the archive root") }
            resolved = next
        }
        throw ImageError.corrupt("\(relative): too many symlinks")
    }

    private func readInside(_ dir: String, _ relative: String, limit: Int = 16 << 20) throws -> [UInt8] {
        let fd = try openInside(dir, relative)
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { if errno == EINTR { continue }; throw ImageError.system("read \(relative)", errno) }
            if n == 0 { break }
            out += buf[..<n]
            guard out.count <= limit else { throw ImageError.corrupt("\(relative) too large") }
        }
        return out
    }

    private func copyBlob(_ dir: String, _ d: Descriptor) throws {
        guard let hex = Digest.hex(d.digest) else { throw ImageError.corrupt("bad digest \(d.digest)") }
        let fd = try openInside(dir, "blobs/sha256/" + hex)
        defer { close(fd) }
        try putBlob(fromFD: fd, expected: d.digest, size: d.size)
    }

    func importLayout(_ dir: String, name: String?) throws -> [ImageRecord] {
        let index = try JSONDecoder().decode(Index.self, from: Data(try readInside(dir, "index.json")))
        let repo = defaultName(dir, name)
        var imported: [String] = []
        for entry in index.manifests {
            var desc = entry
            if MediaType.isIndex(desc.mediaType) {
                let sub = try JSONDecoder().decode(Index.self, from: Data(try verifiedBlob(dir, desc)))
                guard let m = sub.manifests.first(where: { $0.platform?.os == "linux" && $0.platform?.architecture == "amd64" }) else {
                    throw ImageError.registry("\(dir): no linux/amd64 image in index \(desc.digest)")
                }
                desc = m
            }
            let bytes = try verifiedBlob(dir, desc)
            let manifest = try decodeManifest(bytes, digest: desc.digest)
            try copyBlob(dir, manifest.config)
            for l in manifest.layers { try copyBlob(dir, l) }
            try putBlob(bytes, expected: desc.digest)
            let stored = Descriptor(mediaType: MediaType.ociManifest, digest: desc.digest, size: Int64(bytes.count))
            var refName = entry.annotations?[Self.nameAnnotation]
            if refName == nil, let r = entry.annotations?[Self.refAnnotation] {
                refName = r.contains("/") || r.contains(":") && !r.hasPrefix(":") ? r : repo + ":" + r
            }
            let ref = try ImageReference(parsing: refName ?? repo + "@" + desc.digest)
            try tag(ref, manifest: stored)
            imported.append(desc.digest)
        }
        return try images().filter { imported.contains($0.manifestDigest) }
    }

    private func verifiedBlob(_ dir: String, _ d: Descriptor) throws -> [UInt8] {
        guard let hex = Digest.hex(d.digest) else { throw ImageError.corrupt("bad digest \(d.digest)") }
        let bytes = try readInside(dir, "blobs/sha256/" + hex)
        let actual = Digest.of(bytes)
        guard actual == d.digest else { throw ImageError.digestMismatch(expected: d.digest, actual: actual) }
        return bytes
    }

    /// docker save: manifest.json [{Config, RepoTags, Layers}] plus the
    /// files it names. The tar is unpacked (unprivileged, safely) into a
    /// scratch directory first.
    func importDockerArchive(_ path: String, name: String?) throws -> [ImageRecord] {
        let scratch = root + "/tmp/import.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(scratch, 0o700) == 0 else { throw ImageError.system("mkdir \(scratch)", errno) }
        defer { try? removeTree(path: scratch) }
        let src = open(path, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { throw ImageError.system("open \(path)", errno) }
        defer { close(src) }
        let dirFD = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw ImageError.system("open \(scratch)", errno) }
        defer { close(dirFD) }
        var applier = LayerApplier(rootFD: dirFD, privileged: false)
        try applier.apply(try openLayer(fd: src))

        struct Entry: Decodable { var Config: String; var RepoTags: [String]?; var Layers: [String] }
        let entries: [Entry]
        do { entries = try JSONDecoder().decode([Entry].self, from: Data(try readInside(scratch, "manifest.json"))) } catch let e as ImageError {
            throw e
        } catch { throw ImageError.corrupt("\(path): manifest.json: \(error)") }
        var imported: [String] = []
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for e in entries {
            let configBytes = try readInside(scratch, e.Config)
            let configDigest = try putBlob(configBytes)
            _ = try decodeConfig(configBytes, digest: configDigest)
            var layers: [Descriptor] = []
            for l in e.Layers {
                let fd = try openInside(scratch, l)
                defer { close(fd) }
                var magic = [UInt8](repeating: 0, count: 4)
                _ = pread(fd, &magic, 4, 0)
                let type = magic[0] == 0x1f && magic[1] == 0x8b ? MediaType.ociLayer + "+gzip"
                    : magic == [0x28, 0xb5, 0x2f, 0xfd] ? MediaType.ociLayer + "+zstd" : MediaType.ociLayer
                var lst = stat()
                fstat(fd, &lst)
                let digest = try putBlob(fromFD: fd, expected: nil, size: nil)
                layers.append(Descriptor(mediaType: type, digest: digest, size: Int64(lst.st_size)))
            }
            let manifest = Manifest(schemaVersion: 2, mediaType: MediaType.ociManifest,
                                    config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: Int64(configBytes.count)),
                                    layers: layers)
            let bytes = Array(try encoder.encode(manifest))
            let digest = try putBlob(bytes)
            let desc = Descriptor(mediaType: MediaType.ociManifest, digest: digest, size: Int64(bytes.count))
            let tags = e.RepoTags ?? []
            if tags.isEmpty {
                try tag(try ImageReference(parsing: defaultName(path, name) + "@" + digest), manifest: desc)
            }
            for t in tags { try tag(try ImageReference(parsing: t), manifest: desc) }
            imported.append(digest)
        }
        return try images().filter { imported.contains($0.manifestDigest) }
    }
}
