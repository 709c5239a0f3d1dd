// Mount points a read-only root lacks. runc makes each mount's destination
// in the bundle's rootfs before it remounts the root read-only; Moat's
// Gofer serves a read-only root read-only from the start, so the Sentry
// cannot make them and the mount would be skipped (an exec of a
// bind-mounted program then fails with ENOENT). The launcher makes them
// here, before the Gofer starts, as runc would.
//
// The walk never follows a symbolic link (O_NOFOLLOW at every step, from a
// descriptor of the rootfs): an image whose /data is a link to /etc gets
// nothing made outside its root; that mount point is left to the Sentry,
// which reports it.

import Glibc

enum MountPoints {
    // O_PATH (<fcntl.h> under _GNU_SOURCE), which Glibc's module does not export.
    static let O_PATH: Int32 = 0o10000000

    /// Makes every missing mount destination of `spec` under `rootfs`: a
    /// directory, or an empty file for a bind mount of a file.
    static func make(_ spec: Spec, rootfs: String, bundle: String) {
        for m in spec.mounts {
            let isBind = m.type == "bind" || m.options.contains("bind") || m.options.contains("rbind")
            var file = false
            if isBind, var src = m.source {
                if !src.hasPrefix("/") { src = bundle + "/" + src }
                var st = stat()
                file = stat(src, &st) == 0 && st.st_mode & S_IFMT != S_IFDIR
            }
            make(m.destination, under: rootfs, file: file)
        }
    }

    /// Makes `path` (absolute, inside the container) under `rootfs`.
    static func make(_ path: String, under rootfs: String, file: Bool) {
        let comps = path.split(separator: "/").map(String.init).filter { $0 != "." && !$0.isEmpty }
        if comps.isEmpty || comps.contains("..") { return }
        var cur = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)
        if cur < 0 { return }
        defer { close(cur) }
        for (i, c) in comps.enumerated() {
            let last = i == comps.count - 1
            var next = openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY))
            if next < 0 && errno == ENOENT {
                if last && file {
                    let f = openat(cur, c, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o644)
                    if f >= 0 { close(f) }
                    return
                }
                if mkdirat(cur, c, 0o755) != 0 && errno != EEXIST { return }
                next = openat(cur, c, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC)
            }
            if next < 0 { return }   // a link, a file in the way, no permission: left as it is
            close(cur)
            cur = next
        }
    }
}
