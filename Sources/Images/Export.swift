// Export from the store (`moat image export`): an image as an OCI image
// layout directory, or as a docker-archive tarball that is also an OCI
// layout (manifest.json beside oci-layout, index.json and blobs/, as
// `docker save` writes since Docker 25), so `docker load`, `podman load`,
// skopeo and `moat image import` all read it. Blobs are copied as stored
// (layers stay compressed); nothing is written under the target's final
// name until it is complete.

import Foundation
import Glibc

extension ImageStore {
    /// Writes the image `spec` names as an OCI image layout at `dir` (made,
    /// or an empty directory). Its tags become ref.name annotations.
    @discardableResult
    public func exportLayout(_ spec: String, to dir: String) throws -> ImageRecord {
        let (image, files) = try exportFiles(spec)
        var st = stat()
        if stat(dir, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR, (try? FileManager.default.contentsOfDirectory(atPath: dir))?.isEmpty == true else {
                throw ImageError.system("export to \(dir): it exists and is not an empty directory", EEXIST)
            }
        }
        let tmp = dir + ".moat-export.\(getpid())"
        try? removeTree(path: tmp)
        do {
            for d in [tmp, tmp + "/blobs", tmp + "/blobs/sha256"] where mkdir(d, 0o755) != 0 {
                throw ImageError.system("mkdir \(d)", errno)
            }
            for f in files {
                let out = open(tmp + "/" + f.name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                guard out >= 0 else { throw ImageError.system("create \(tmp)/\(f.name)", errno) }
                defer { close(out) }
                try f.write(out)
            }
            rmdir(dir)
            guard rename(tmp, dir) == 0 else { throw ImageError.system("rename \(tmp) to \(dir)", errno) }
        } catch { try? removeTree(path: tmp); throw error }
        return image
    }

    /// Writes the image `spec` names as a docker-archive tarball at `path`.
    @discardableResult
    public func exportDockerArchive(_ spec: String, to path: String) throws -> ImageRecord {
        let (image, files) = try exportFiles(spec)
        let m = try decodeManifest(try readBlob(image.manifestDigest), digest: image.manifestDigest)
        struct Entry: Encodable { var Config: String; var RepoTags: [String]; var Layers: [String] }
        let entry = Entry(Config: try blobName(m.config.digest), RepoTags: image.tags, Layers: try m.layers.map { try blobName($0.digest) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let manifestJSON = Array(try encoder.encode([entry]))
        let tmp = path + ".moat-export.\(getpid())"
        let out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw ImageError.system("create \(tmp)", errno) }
        do {
            var tar = TarWriter(fd: out)
            try tar.directory("blobs/")
            try tar.directory("blobs/sha256/")
            for f in files { try tar.file(f.name, size: try f.size(), write: f.write) }
            try tar.file("manifest.json", size: Int64(manifestJSON.count)) { fd in try manifestJSON.withUnsafeBytes { try writeAll(fd, $0) } }
            try tar.finish()
            guard fsync(out) == 0 else { throw ImageError.system("fsync \(tmp)", errno) }
            close(out)
            guard rename(tmp, path) == 0 else { throw ImageError.system("rename \(tmp) to \(path)", errno) }
        } catch { close(out); unlink(tmp); throw error }
        return image
    }

    private func blobName(_ digest: String) throws -> String {
        guard let hex = Digest.hex(digest) else { throw ImageError.corrupt("bad digest \(digest)") }
        return "blobs/sha256/" + hex
    }

    /// One file of an export: bytes, or a blob of the store copied as it is.
    struct ExportFile {
        var name: String
        var bytes: [UInt8]?
        var source: String?
        func size() throws -> Int64 {
            if let b = bytes { return Int64(b.count) }
            var st = stat()
            guard stat(source!, &st) == 0 else { throw ImageError.system("stat \(source!)", errno) }
            return Int64(st.st_size)
        }
        func write(_ out: Int32) throws {
            if let b = bytes { try b.withUnsafeBytes { try writeAll(out, $0) }; return }
            let fd = open(source!, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ImageError.system("open \(source!)", errno) }
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 256 * 1024)
            while true {
                let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 { if errno == EINTR { continue }; throw ImageError.system("read \(source!)", errno) }
                if n == 0 { break }
                try buf.withUnsafeBytes { try writeAll(out, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
        }
    }

    /// The image and the files of its OCI layout (blobs, oci-layout, index.json).
    func exportFiles(_ spec: String) throws -> (ImageRecord, [ExportFile]) {
        guard let image = try find(spec) else { throw ImageError.notFound("image \(spec) (moat images lists them)") }
        let manifestBytes = try readBlob(image.manifestDigest)
        let m = try decodeManifest(manifestBytes, digest: image.manifestDigest)
        var files: [ExportFile] = []
        var seen = Set<String>()
        for d in [m.config] + m.layers where seen.insert(d.digest).inserted {
            let p = try blobPath(d.digest)
            guard access(p, F_OK) == 0 else { throw ImageError.notFound("blob \(d.digest) of \(spec): pull the image again") }
            files.append(ExportFile(name: try blobName(d.digest), source: p))
        }
        files.append(ExportFile(name: try blobName(image.manifestDigest), bytes: manifestBytes))
        let type = m.mediaType ?? MediaType.ociManifest
        let refs = image.tags.isEmpty ? [nil] : image.tags.map { Optional($0) }
        let index = Index(manifests: refs.map { tag in
            Descriptor(mediaType: type, digest: image.manifestDigest, size: Int64(manifestBytes.count),
                       annotations: tag.map { [Self.nameAnnotation: $0, Self.refAnnotation: $0] })
        })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        files.append(ExportFile(name: "oci-layout", bytes: Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)))
        files.append(ExportFile(name: "index.json", bytes: Array(try encoder.encode(index))))
        return (image, files)
    }
}

/// Writes a ustar archive: regular files and directories, names under 100
/// bytes, sizes under 8 GiB (what an image export needs).
struct TarWriter {
    let fd: Int32

    mutating func directory(_ name: String) throws { try header(name, size: 0, type: "5", mode: 0o755) }

    mutating func file(_ name: String, size: Int64, write: (Int32) throws -> Void) throws {
        try header(name, size: size, type: "0", mode: 0o644)
        try write(fd)
        let pad = Int((512 - size % 512) % 512)
        if pad > 0 { try [UInt8](repeating: 0, count: pad).withUnsafeBytes { try writeAll(fd, $0) } }
    }

    mutating func finish() throws { try [UInt8](repeating: 0, count: 1024).withUnsafeBytes { try writeAll(fd, $0) } }

    private func header(_ name: String, size: Int64, type: Character, mode: Int) throws {
        guard name.utf8.count < 100, size < 0o77777777777 else { throw ImageError.corrupt("\(name): too long a name or too big for a tar header") }
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ off: Int) { for (i, b) in s.utf8.enumerated() { h[off + i] = b } }
        func octal(_ v: Int64, _ off: Int, _ len: Int) {
            let o = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, len - 1 - o.count)) + o, off)
        }
        put(name, 0)
        octal(Int64(mode), 100, 8); octal(0, 108, 8); octal(0, 116, 8)
        octal(size, 124, 12); octal(0, 136, 12)
        h[156] = type.asciiValue!
        put("ustar", 257); put("00", 263)
        for i in 148..<156 { h[i] = 32 }
        octal(Int64(h.reduce(0) { $0 + Int($1) }), 148, 7)
        try h.withUnsafeBytes { try writeAll(fd, $0) }
    }
}
