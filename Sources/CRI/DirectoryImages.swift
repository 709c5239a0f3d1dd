// DirectoryImages: images that are plain root file system directories named
// on the command line (`moat cri --rootfs-image REF=DIR`), for hosts and
// tests without an image store. Consulted before the store.

import Foundation
import Images

public struct DirectoryImageResolver: ImageResolver {
    public let images: [String: String]
    public let fallback: (any ImageResolver)?

    /// Parses REF=DIR values; DIR must be an existing directory.
    public init(specs: [String], fallback: (any ImageResolver)?) throws {
        var m: [String: String] = [:]
        for s in specs {
            guard let eq = s.firstIndex(of: "="), eq != s.startIndex else {
                throw CRIError.invalidArgument("--rootfs-image \(s.debugDescription): expected REF=DIR")
            }
            let dir = String(s[s.index(after: eq)...])
            var isDir: ObjCBool = false
            guard dir.hasPrefix("/"), FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                throw CRIError.invalidArgument("--rootfs-image \(s.debugDescription): \(dir) is not a directory")
            }
            m[String(s[..<eq])] = dir
        }
        images = m
        self.fallback = fallback
    }

    public func resolve(_ reference: String) async throws -> ResolvedImage? {
        if let dir = images[reference] {
            var cfg = ImageConfig()
            cfg.cmd = ["/bin/sh"]
            return ResolvedImage(id: "dir:" + dir, references: [reference], rootfs: dir, config: cfg)
        }
        return try await fallback?.resolve(reference)
    }
}
