// `moat pull`, `moat images`, `moat rmi`, `moat image import`: argument
// parsing and printing over the image store (Images); no logic of their own.

import ArgumentParser
import Foundation
import Glibc
import Images

struct StoreOptions: ParsableArguments {
    @Option(help: "Moat's state root; images live in ROOT/images.") var root: String = "/var/lib/moat"
    @Option(help: "A registry (HOST[:PORT]) to reach over plain http; repeatable. Loopback registries always are.")
    var insecureRegistry: [String] = []
    func store() throws -> ImageStore {
        // A state root that does not exist yet is made (--root DIR).
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return try ImageStore(root: root + "/images")
    }
}

/// Prints a pull's progress: one rewritten line on a terminal, plain lines otherwise.
final class PullProgress: @unchecked Sendable {
    let tty = isatty(2) == 1
    let lock = NSLock()
    var totals: [String: Int64] = [:], done: [String: Int64] = [:]
    var finished = Set<String>()
    func event(_ e: PullEvent) {
        lock.lock(); defer { lock.unlock() }
        switch e {
        case .resolved(let m, let layers):
            for l in layers { totals[l.digest] = l.size }
            fputs("manifest \(m): \(layers.count) layers\n", stderr)
        case .layerProgress(let d, let b, let t):
            done[d] = b; totals[d] = t
            if tty {
                let sum = done.values.reduce(0, +), all = max(1, totals.values.reduce(0, +))
                fputs("\r\u{1b}[Kdownloading \(finished.count)/\(totals.count) layers, \(sum / 1024) of \(all / 1024) KiB (\(sum * 100 / all)%)", stderr)
            }
        case .layerDone(let d, let cached):
            finished.insert(d)
            if tty { fputs("\r\u{1b}[K", stderr) }
            fputs("layer \(d.prefix(19)): \(cached ? "already present" : "done")\n", stderr)
        case .unpacking:
            fputs("unpacking\n", stderr)
        }
    }
}

func pullImage(_ ref: String, options: StoreOptions, auth: RegistryAuth) async throws -> ImageRecord {
    let progress = PullProgress()
    return try await RegistryClient(insecureRegistries: Set(options.insecureRegistry))
        .pull(ref, auth: auth, into: try options.store()) { progress.event($0) }
}

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pull an image from a registry into the store.")
    @OptionGroup var options: StoreOptions
    @Option(help: "Registry credentials USER:PASSWORD (or $MOAT_REGISTRY_AUTH).") var creds: String?
    @Argument(help: "[HOST[:PORT]/]NAME[:TAG|@DIGEST]") var reference: String
    func run() async throws {
        var auth = RegistryAuth()
        if let c = creds ?? ProcessInfo.processInfo.environment["MOAT_REGISTRY_AUTH"] {
            guard let i = c.firstIndex(of: ":") else { throw ValidationError("--creds: expected USER:PASSWORD") }
            auth.username = String(c[..<i]); auth.password = String(c[c.index(after: i)...])
        }
        do {
            let image = try await pullImage(reference, options: options, auth: auth)
            print(image.id)
        } catch let e as ImageError { throw ValidationError(e.description) }
    }
}

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the images in the store.")
    @OptionGroup var options: StoreOptions
    @Flag(help: "Print only image ids.") var quiet = false
    func run() throws {
        let images = try options.store().images()
        if quiet { for i in images { print(i.id) }; return }
        print("REFERENCE".padding(toLength: 48, withPad: " ", startingAt: 0), "IMAGE ID      ", "SIZE")
        for i in images {
            let size = String(format: "%.1f MB", Double(i.size) / 1e6)
            for name in i.tags.isEmpty ? i.repoDigests : i.tags {
                print(name.padding(toLength: 48, withPad: " ", startingAt: 0), String(i.id.dropFirst(7).prefix(12)) + "  ", size)
            }
        }
    }
}

struct Rmi: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove images (by reference or id) from the store.")
    @OptionGroup var options: StoreOptions
    @Argument var references: [String]
    func run() throws {
        let store = try options.store()
        for r in references {
            do {
                // A name of an image with several names untags; otherwise the image goes.
                guard let image = try store.find(r) else { throw ImageError.notFound(r) }
                if image.tags.count > 1, let ref = try? ImageReference(parsing: r), image.tags.contains(ref.description) {
                    try store.remove(r, allNames: false); print("untagged \(ref)")
                } else {
                    try store.remove(r); print("deleted \(image.id)")
                }
            } catch let e as ImageError { throw ValidationError(e.description) }
        }
    }
}

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "image", abstract: "Manage images.",
                                                    subcommands: [ImageImport.self, ImageExport.self])
}

struct ImageImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import",
        abstract: "Import an OCI image layout directory or a docker-archive tarball (docker save).")
    @OptionGroup var options: StoreOptions
    @Option(help: "Repository name for images the source leaves unnamed (default: localhost/BASENAME).") var name: String?
    @Argument var path: String
    func run() async throws {
        do {
            for i in try await options.store().importImages(from: path, name: name) {
                print(i.id, (i.tags.isEmpty ? i.repoDigests : i.tags).joined(separator: " "))
            }
        } catch let e as ImageError { throw ValidationError(e.description) }
    }
}

struct ImageExport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export",
        abstract: "Write an image as a docker-archive tarball (docker load, podman load) or an OCI image layout directory.")
    @OptionGroup var options: StoreOptions
    @Option(help: "docker-archive (a tarball that is also an OCI layout; default) or oci (a directory).") var format = "docker-archive"
    @Option(name: [.short, .long], help: "The tarball or directory to write.") var output: String
    @Argument(help: "The image: a reference, or an id (prefix).") var image: String
    func run() throws {
        do {
            let store = try options.store()
            switch format {
            case "docker-archive": try store.exportDockerArchive(image, to: output)
            case "oci", "oci-dir": try store.exportLayout(image, to: output)
            default: throw ValidationError("--format must be docker-archive or oci")
            }
        } catch let e as ImageError { throw ValidationError(e.description) }
    }
}

/// `moat run --image`: the image from the store, pulled when missing.
enum ImageRun {
    static func resolve(_ ref: String, root: String) throws -> ResolvedImage {
        do {
            let store = try StoreOptions.parse(["--root", root]).store()
            if let r = try store.resolve(ref) { return r }
            // Run is synchronous (main thread); wait for the pull here.
            let result = Box()
            let done = DispatchSemaphore(value: 0)
            // Parsed, not built: a ParsableArguments' properties are set only by parsing.
            let opts = try StoreOptions.parse(["--root", root])
            Task {
                do { result.value = .success(try await pullImage(ref, options: opts, auth: RegistryAuth())) } catch { result.value = .failure(error) }
                done.signal()
            }
            done.wait()
            let image = try result.value!.get()
            guard let r = try store.resolve(image.id) else { throw ImageError.notFound(ref) }
            return r
        } catch let e as ImageError { throw ValidationError(e.description) }
    }

    final class Box: @unchecked Sendable { var value: Result<ImageRecord, Error>? }

    /// config.User as UID:GID: numbers as they are, names from the image's
    /// /etc/passwd and /etc/group.
    static func numericUser(_ spec: String, rootfs: String) throws -> String {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        func lookup(_ file: String, _ name: String) -> (String, String)? {
            guard let text = try? String(contentsOfFile: rootfs + file, encoding: .utf8) else { return nil }
            for line in text.split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                if f.count > 3, f[0] == name { return (f[2], f[3]) }
            }
            return nil
        }
        var uid = parts[0], gid = parts.count > 1 ? parts[1] : ""
        if UInt32(uid) == nil {
            guard let (u, g) = lookup("/etc/passwd", uid) else { throw ValidationError("image user \(uid) is not in the image's /etc/passwd") }
            uid = u; if gid.isEmpty { gid = g }
        }
        if !gid.isEmpty, UInt32(gid) == nil {
            guard let (g, _) = lookup("/etc/group", gid) else { throw ValidationError("image group \(gid) is not in the image's /etc/group") }
            gid = g
        }
        return gid.isEmpty ? uid + ":" + uid : uid + ":" + gid
    }
}
