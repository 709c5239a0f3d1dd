// Applies layer tar streams to a directory without ever writing outside it:
// every path is walked component by component from the directory's fd with
// O_NOFOLLOW, so a symlink planted by an earlier entry (or layer) cannot
// redirect a later write; `..` and absolute names are refused. Whiteouts
// (`.wh.NAME`) and opaque directories (`.wh..wh..opq`) delete what lower
// layers made. Ownership and device nodes only when running as root.

import Glibc

public struct LayerApplier {
    let rootFD: Int32
    let privileged: Bool
    /// Paths made by the layer being applied (opaque dirs keep these).
    private var made = Set<String>()

    /// `rootFD` is an open directory; it stays owned by the caller.
    public init(rootFD: Int32, privileged: Bool = geteuid() == 0) {
        self.rootFD = rootFD; self.privileged = privileged
    }

    /// Applies one uncompressed layer tar stream.
    public mutating func apply(_ input: ByteReader) throws {
        made.removeAll()
        let tar = TarReader(input)
        var dirTimes: [([String], Int64)] = []
        while let entry = try tar.next() {
            guard let parts = try Self.clean(entry.name) else { continue }  // the root itself
            if let t = try applyEntry(entry, parts, tar), case .directory = entry.kind { dirTimes.append((parts, t)) }
        }
        // Directory times last: entries inside changed them.
        for (parts, t) in dirTimes {
            guard let parent = try? openDir(Array(parts.dropLast()), create: false) else { continue }
            setTime(parent, parts.last!, t)
            close(parent)
        }
    }

    /// Splits a member name into components, refusing names that leave the
    /// root. nil for the root itself ("./", ".").
    static func clean(_ name: String) throws -> [String]? {
        if name.hasPrefix("/") { throw ImageError.unsafeLayer("absolute path \(name)") }
        var parts: [String] = []
        for c in name.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { throw ImageError.unsafeLayer("path with .. \(name)") }
            parts.append(String(c))
        }
        return parts.isEmpty ? nil : parts
    }

    /// Opens the directory at `parts` below the root, one component at a
    /// time without following symlinks; missing ones are made (0755).
    func openDir(_ parts: [String], create: Bool) throws -> Int32 {
        var fd = dup(rootFD)
        guard fd >= 0 else { throw ImageError.system("dup", errno) }
        for p in parts {
            var next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(fd, p, 0o755) != 0 && errno != EEXIST { let e = errno; close(fd); throw ImageError.system("mkdir \(p)", e) }
                next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let e = errno
            close(fd)
            if next < 0 {
                if e == ELOOP || e == ENOTDIR {
                    throw ImageError.unsafeLayer("path \(parts.joined(separator: "/")) passes through a symlink or a non-directory")
                }
                throw ImageError.system("open \(parts.joined(separator: "/"))", e)
            }
            fd = next
        }
        return fd
    }

    /// Returns the mtime to set later for a directory entry.
    private mutating func applyEntry(_ e: TarEntry, _ parts: [String], _ tar: TarReader) throws -> Int64? {
        let base = parts.last!
        let parentParts = Array(parts.dropLast())
        let parent = try openDir(parentParts, create: true)
        defer { close(parent) }
        let key = parts.joined(separator: "/")

        if base.hasPrefix(".wh.") {
            if base == ".wh..wh..opq" {
                let prefix = parentParts.joined(separator: "/")
                try removeChildren(parent, keepingMadeUnder: prefix)
            } else {
                let victim = String(base.dropFirst(4))
                guard !victim.isEmpty, victim != ".", victim != ".." else { throw ImageError.unsafeLayer("bad whiteout \(e.name)") }
                try removeTree(parent, victim)
            }
            return nil
        }

        var st = stat()
        let exists = fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0
        let isDir = exists && (st.st_mode & S_IFMT) == S_IFDIR
        if exists {
            if case .directory = e.kind, isDir {} else { try removeTree(parent, base) }
        }
        made.insert(key)
        let mode = mode_t(e.mode & 0o7777)
        switch e.kind {
        case .directory:
            if !isDir, mkdirat(parent, base, 0o700) != 0 { throw ImageError.system("mkdir \(key)", errno) }
            let fd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw ImageError.system("open \(key)", errno) }
            if privileged { fchown(fd, uid_t(truncatingIfNeeded: e.uid), gid_t(truncatingIfNeeded: e.gid)) }
            fchmod(fd, mode)
            close(fd)
            return e.mtime
        case .file:
            let fd = openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ImageError.system("create \(key)", errno) }
            defer { close(fd) }
            var buf = [UInt8](repeating: 0, count: 128 * 1024)
            while true {
                let n = try buf.withUnsafeMutableBytes { try tar.read($0) }
                if n == 0 { break }
                try buf.withUnsafeBytes { try writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            }
            if privileged { fchown(fd, uid_t(truncatingIfNeeded: e.uid), gid_t(truncatingIfNeeded: e.gid)) }
            fchmod(fd, mode)
            var times = [timespec(tv_sec: Int(e.mtime), tv_nsec: 0), timespec(tv_sec: Int(e.mtime), tv_nsec: 0)]
            futimens(fd, &times)
            return nil
        case .symlink:
            if symlinkat(e.linkName, parent, base) != 0 { throw ImageError.system("symlink \(key)", errno) }
        case .hardLink:
            guard let target = try Self.clean(e.linkName) else { throw ImageError.unsafeLayer("hard link \(key) to the root") }
            let tparent = try openDir(Array(target.dropLast()), create: false)
            defer { close(tparent) }
            var tst = stat()
            guard fstatat(tparent, target.last!, &tst, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw ImageError.corrupt("hard link \(key) to missing \(e.linkName)")
            }
            if (tst.st_mode & S_IFMT) == S_IFDIR { throw ImageError.unsafeLayer("hard link \(key) to a directory") }
            if linkat(tparent, target.last!, parent, base, 0) != 0 { throw ImageError.system("link \(key)", errno) }
            return nil
        case .charDevice, .blockDevice, .fifo:
            let type: mode_t
            switch e.kind { case .charDevice: type = S_IFCHR; case .blockDevice: type = S_IFBLK; default: type = S_IFIFO }
            if type != S_IFIFO && !privileged { made.remove(key); return nil }  // cannot make it; skipped
            let ma = UInt64(e.devMajor), mi = UInt64(e.devMinor)  // glibc's makedev
            let dev = dev_t((ma & 0xfffff000) << 32 | (ma & 0xfff) << 8 | (mi & 0xffffff00) << 12 | (mi & 0xff))
            if mknodat(parent, base, type | mode, dev) != 0 {
                if errno == EPERM { made.remove(key); return nil }
                throw ImageError.system("mknod \(key)", errno)
            }
            if privileged {
                fchownat(parent, base, uid_t(truncatingIfNeeded: e.uid), gid_t(truncatingIfNeeded: e.gid), AT_SYMLINK_NOFOLLOW)
                fchmodat(parent, base, mode, 0)
            }
        case .other:
            made.remove(key)
            return nil
        }
        if privileged {
            fchownat(parent, base, uid_t(truncatingIfNeeded: e.uid), gid_t(truncatingIfNeeded: e.gid), AT_SYMLINK_NOFOLLOW)
        }
        setTime(parent, base, e.mtime)
        return nil
    }

    private func setTime(_ dir: Int32, _ name: String, _ t: Int64) {
        var times = [timespec(tv_sec: Int(t), tv_nsec: 0), timespec(tv_sec: Int(t), tv_nsec: 0)]
        utimensat(dir, name, &times, AT_SYMLINK_NOFOLLOW)
    }

    /// Opaque directory: removes every child the current layer did not make.
    private func removeChildren(_ dir: Int32, keepingMadeUnder prefix: String) throws {
        for name in try listDir(dir) {
            let key = prefix.isEmpty ? name : prefix + "/" + name
            if made.contains(key) { continue }
            try removeTree(dir, name)
        }
    }
}

/// Names in an open directory (not . and ..).
func listDir(_ dir: Int32) throws -> [String] {
    let fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0, let d = fdopendir(fd) else { throw ImageError.system("opendir", errno) }
    defer { closedir(d) }
    var names: [String] = []
    while let ent = readdir(d) {
        let name = withUnsafePointer(to: ent.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes `name` in `dir` and everything below it, never following symlinks.
/// A missing name is fine.
func removeTree(_ dir: Int32, _ name: String) throws {
    if unlinkat(dir, name, 0) == 0 || errno == ENOENT { return }
    guard errno == EISDIR || errno == EPERM else { throw ImageError.system("unlink \(name)", errno) }
    let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard sub >= 0 else { throw ImageError.system("open \(name)", errno) }
    // A read-only directory must be writable to empty it.
    fchmod(sub, 0o700)
    do {
        for child in try listDir(sub) { try removeTree(sub, child) }
    } catch { close(sub); throw error }
    close(sub)
    if unlinkat(dir, name, AT_REMOVEDIR) != 0 && errno != ENOENT { throw ImageError.system("rmdir \(name)", errno) }
}

/// Removes a directory tree by path (the store's own paths).
func removeTree(path: String) throws {
    let parent = path.dirname, base = path.basename
    let fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { if errno == ENOENT { return }; throw ImageError.system("open \(parent)", errno) }
    defer { close(fd) }
    try removeTree(fd, base)
}

extension String {
    var dirname: String {
        guard let i = lastIndex(of: "/") else { return "." }
        return i == startIndex ? "/" : String(self[..<i])
    }
    var basename: String {
        guard let i = lastIndex(of: "/") else { return self }
        return String(self[index(after: i)...])
    }
}

func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 { if errno == EINTR { continue }; throw ImageError.system("write", errno) }
        done += n
    }
}
