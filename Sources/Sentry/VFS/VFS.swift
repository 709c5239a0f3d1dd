import CMoat
import Glibc

/// Per-process file system context: root, cwd, umask (shared with CLONE_FS)
/// and the mount namespace they are in (VFS/MountNamespace.swift: a
/// process changes namespace only with a context of its own).
final class FSContext {
    var root: Path
    var cwd: Path
    var umask: UInt32 = 0o022
    var ns: MountNamespace!
    init(root: Path, cwd: Path, ns: MountNamespace? = nil) { self.root = root; self.cwd = cwd; self.ns = ns ?? root.mount.ns }
    func copy() -> FSContext { let c = FSContext(root: root, cwd: cwd, ns: ns); c.umask = umask; return c }
}

/// The mount tree and path resolution. Resolution happens entirely in the
/// Sentry, one component at a time, so symlinks and `..` never leave the
/// caller's root.
final class VFS {
    /// The sandbox's first mount namespace, the one every process starts in.
    private(set) var initialNS: MountNamespace!
    /// The initial namespace's root mount.
    var rootMount: Mount! {
        get { initialNS?.root }
        set { initialNS.root = newValue }
    }
    /// The mounts of every namespace (Mount.ns tells whose), in mount order.
    var mounts: [Mount] = []

    init() {}

    func setRoot(_ inode: Inode, fsType: String, source: String) {
        let d = Dentry(name: [47], parent: nil, inode: inode)
        let m = Mount(root: d, mountpoint: nil, parent: nil, fsType: fsType, source: source)
        initialNS = MountNamespace(root: m, owner: .root, inum: MountNamespace.initialInode)
        m.ns = initialNS
        mounts = [m]
    }

    var rootPath: Path { Path(mount: rootMount, dentry: rootMount.root) }

    /// Mounts `inode` over the directory at `at` (a root dentry of its own:
    /// a bind mount's names are looked up afresh).
    @discardableResult
    func mount(_ inode: Inode, at: Path, fsType: String, source: String) -> Mount {
        let d = Dentry(name: at.dentry.name, parent: at.dentry.parent, inode: inode)
        let m = Mount(root: d, mountpoint: at.dentry, parent: at.mount, fsType: fsType, source: source)
        m.ns = at.mount.ns
        at.dentry.mountsHere[ObjectIdentifier(at.mount)] = m
        mounts.append(m)
        m.ns?.event += 1
        return m
    }

    /// Takes `m` off its mount point (umount, pivot_root, MS_MOVE).
    func detach(_ m: Mount) {
        if let mp = m.mountpoint, let p = m.parent, mp.mountsHere[ObjectIdentifier(p)] === m { mp.mountsHere[ObjectIdentifier(p)] = nil }
        m.ns?.event += 1
    }

    /// Attaches `m` over `at` (the topmost mount there: crossMounts).
    func attach(_ m: Mount, at: Path) {
        m.parent = at.mount
        m.mountpoint = at.dentry
        at.dentry.mountsHere[ObjectIdentifier(at.mount)] = m
        m.ns?.event += 1
    }

    /// `m` and every mount below it.
    func subtree(of m: Mount) -> [Mount] {
        var children: [ObjectIdentifier: [Mount]] = [:]
        for c in mounts { if let p = c.parent { children[ObjectIdentifier(p), default: []].append(c) } }
        var out = [m]
        var seen: Set<ObjectIdentifier> = [ObjectIdentifier(m)]
        var i = 0
        while i < out.count {
            for c in children[ObjectIdentifier(out[i])] ?? [] where seen.insert(ObjectIdentifier(c)).inserted { out.append(c) }
            i += 1
        }
        return out
    }

    /// The names from `p`'s mount root down to `p` (nil when the dentry
    /// is no longer below it).
    func namesBelowRoot(_ p: Path) -> [[UInt8]]? { names(from: p.mount.root, to: p.dentry) }

    /// The names from dentry `top` down to `d` (nil when `d` is not below it).
    func names(from top: Dentry, to d: Dentry) -> [[UInt8]]? {
        var names: [[UInt8]] = []
        var d = d
        while d !== top {
            names.append(d.name)
            guard let up = d.parent else { return nil }
            d = up
        }
        return names.reversed()
    }

    /// The same place as `p` in mount `other` of the same file system
    /// (mount propagation): the directory at the same path in the file
    /// system, when `other` shows it (its root is at or above it); nil
    /// otherwise.
    func samePlace(_ p: Path, in other: Mount) -> Path? {
        guard let names = namesBelowRoot(p) else { return nil }
        if other.root.inode === p.mount.root.inode && other.rootPath == p.mount.rootPath { return walkNames(names, in: other) }
        guard other.root.inode.dev == p.mount.root.inode.dev else { return nil }
        let full = p.mount.rootPath.utf8.split(separator: 47).map(Array.init) + names
        let base = other.rootPath.utf8.split(separator: 47).map(Array.init)
        guard full.starts(with: base) else { return nil }
        return walkNames(Array(full.dropFirst(base.count)), in: other)
    }

    /// The place `names` lead to from `m`'s root.
    func walkNames(_ names: [[UInt8]], in m: Mount) -> Path? {
        var d = m.root
        for n in names {
            guard case .success(let c) = d.child(n) else { return nil }
            d = c
        }
        return Path(mount: m, dentry: d)
    }

    /// Whether `p` is at or below `top` in the mount tree (is_path_reachable).
    func isReachable(_ p: Path, from top: Path) -> Bool {
        var m = p.mount, d = p.dentry
        var hops = 0
        while m !== top.mount, let mp = m.mountpoint, let pm = m.parent, hops < mounts.count { d = mp; m = pm; hops += 1 }
        guard m === top.mount else { return false }
        var cur: Dentry? = d
        while let c = cur {
            if c === top.dentry { return true }
            if c === m.root { return false }
            cur = c.parent
        }
        return false
    }

    /// Follows mounts stacked on a dentry.
    @inline(__always) func crossMounts(_ p: Path) -> Path {
        var p = p
        while let m = p.dentry.mounted(under: p.mount) { p = Path(mount: m, dentry: m.root) }
        return p
    }

    /// How a walk may proceed (openat2's RESOLVE_* flags, permissions).
    struct Walk {
        var follow = true
        /// Checked for search permission on every directory walked through;
        /// nil for a caller that may search anything (root).
        var searcher: Credentials? = nil
        var resolve: UInt64 = 0
        static let noXDev: UInt64 = 0x01, noMagicLinks: UInt64 = 0x02, noSymlinks: UInt64 = 0x04
        static let beneath: UInt64 = 0x08, inRoot: UInt64 = 0x10
    }

    /// Resolves `path` relative to `start`. Requires: Kernel.mu held.
    func resolve(_ fs: FSContext, start: Path, _ path: [UInt8], follow: Bool = true, searcher: Credentials? = nil) -> Result<Path, Errno> {
        resolve(fs, start: start, path, Walk(follow: follow, searcher: searcher))
    }

    func resolve(_ fs: FSContext, start: Path, _ path: [UInt8], _ w: Walk) -> Result<Path, Errno> {
        if path.isEmpty { return .failure(Errno(ENOENT)) }
        if path.count >= 4096 { return .failure(Errno(ENAMETOOLONG)) }
        var symlinks = 0
        // RESOLVE_IN_ROOT: the start directory is the root for this walk.
        let root = w.resolve & Walk.inRoot != 0 ? start : fs.root
        return walk(root: root, start: start, path, w, symlinks: &symlinks)
    }

    private func walk(root: Path, start: Path, _ path: [UInt8], _ w: Walk, symlinks: inout Int) -> Result<Path, Errno> {
        let beneath = w.resolve & Walk.beneath != 0
        if path.first == 47 && beneath { return .failure(Errno(EXDEV)) }
        var cur = path.first == 47 ? root : start
        // RESOLVE_BENEATH: how deep below the start the walk is.
        var depth = 0
        let comps = path.split(separator: 47, omittingEmptySubsequences: true)
        let trailingSlash = path.last == 47
        for (i, c) in comps.enumerated() {
            let last = i == comps.count - 1
            let name = Array(c)
            if name.count > 255 { return .failure(Errno(ENAMETOOLONG)) }
            if !cur.inode.isDir { return .failure(Errno(ENOTDIR)) }
            if let cr = w.searcher, !cr.permits(cur.inode, 1) { return .failure(Errno(EACCES)) }
            if name == [46] { continue }
            if name == [46, 46] {
                if beneath {
                    if depth == 0 { return .failure(Errno(EXDEV)) }
                    depth -= 1
                }
                let up = parent(of: cur, root: root)
                if w.resolve & Walk.noXDev != 0 && up.mount !== cur.mount { return .failure(Errno(EXDEV)) }
                cur = up
                continue
            }
            let next: Dentry
            switch cur.dentry.child(name) {
            case .success(let d): next = d
            case .failure(let e): return .failure(e)
            }
            var np = crossMounts(Path(mount: cur.mount, dentry: next))
            if w.resolve & Walk.noXDev != 0 && np.mount !== cur.mount { return .failure(Errno(EXDEV)) }
            // /proc/[pid]/fd/N are "magic" links: they name an open file,
            // not a path. Following one lands on the file itself: its place
            // in the tree when it has one, else the open file (a pipe...).
            if let link = np.inode as? ProcFdLink, !last || w.follow || trailingSlash {
                if w.resolve & (Walk.noMagicLinks | Walk.noSymlinks | Walk.beneath | Walk.inRoot) != 0 { return .failure(Errno(ELOOP)) }
                if let p = link.file.path, !(p.inode is StdioInode) {
                    np = p
                } else {
                    np = Path(mount: np.mount, dentry: Dentry(name: np.dentry.name, parent: cur.dentry, inode: ProcFdTarget(link.file)))
                }
                if !last && !np.inode.isDir { return .failure(Errno(ENOTDIR)) }
                cur = np
                continue
            }
            if np.inode.isSymlink && (!last || w.follow || trailingSlash) {
                if w.resolve & Walk.noSymlinks != 0 { return .failure(Errno(ELOOP)) }
                if np.inode.isMagicLink && w.resolve & (Walk.noMagicLinks | Walk.beneath | Walk.inRoot) != 0 { return .failure(Errno(ELOOP)) }
                symlinks += 1
                if symlinks > 40 { return .failure(Errno(ELOOP)) }
                guard case .success(let target) = np.inode.readlink() else { return .failure(Errno(EIO)) }
                if target.isEmpty { return .failure(Errno(ENOENT)) }
                var sub = w
                sub.follow = true
                if beneath {
                    // The link's target is walked from where the link is, and
                    // must stay beneath the original start too: walk it from
                    // the start with the link's directory spelled out.
                    if target.first == 47 { return .failure(Errno(EXDEV)) }
                    var rel: [UInt8] = []
                    var q = cur, up = depth
                    var names: [[UInt8]] = []
                    while up > 0 { names.append(q.dentry.name); q = parent(of: q, root: root); up -= 1 }
                    for n in names.reversed() { rel += n; rel.append(47) }
                    rel += target
                    switch walk(root: root, start: start, rel, sub, symlinks: &symlinks) {
                    case .success(let t): np = t
                    case .failure(let e): return .failure(e)
                    }
                    depth = depthBelow(np, start) ?? 0
                    cur = np
                    continue
                }
                switch walk(root: root, start: cur, target, sub, symlinks: &symlinks) {
                case .success(let t): np = t
                case .failure(let e): return .failure(e)
                }
            }
            if beneath { depth += 1 }
            cur = np
        }
        if trailingSlash && !cur.inode.isDir { return .failure(Errno(ENOTDIR)) }
        return .success(cur)
    }

    /// How many steps `p` is below `start`, or nil when it is not below it.
    private func depthBelow(_ p: Path, _ start: Path) -> Int? {
        var q = p, n = 0
        while !(q.dentry === start.dentry && q.mount === start.mount) {
            let up = parent(of: q, root: start)
            if up.dentry === q.dentry && up.mount === q.mount { return nil }
            q = up; n += 1
        }
        return n
    }

    func parent(of p: Path, root: Path) -> Path {
        var p = p
        if p.dentry === root.dentry && p.mount === root.mount { return p }
        // At a mount's root: step to the mountpoint in the parent mount,
        // never out of a container's mount namespace.
        while p.dentry === p.mount.root, p.mount.namespaceID == nil, let mp = p.mount.mountpoint, let pm = p.mount.parent {
            p = Path(mount: pm, dentry: mp)
            if p.dentry === root.dentry && p.mount === root.mount { return p }
        }
        if p.dentry === p.mount.root { return p }
        guard let par = p.dentry.parent else { return p }
        return Path(mount: p.mount, dentry: par)
    }

    /// Splits a path into its parent directory (resolved) and last name.
    func resolveParent(_ fs: FSContext, start: Path, _ path: [UInt8], searcher: Credentials? = nil) -> Result<(Path, [UInt8]), Errno> {
        resolveParent(fs, start: start, path, Walk(follow: true, searcher: searcher))
    }

    func resolveParent(_ fs: FSContext, start: Path, _ path: [UInt8], _ w: Walk) -> Result<(Path, [UInt8]), Errno> {
        if path.isEmpty { return .failure(Errno(ENOENT)) }
        if path.count >= 4096 { return .failure(Errno(ENAMETOOLONG)) }
        var p = path
        while p.count > 1 && p.last == 47 { p.removeLast() }
        // Looking up the last component needs search permission on its
        // directory (Linux's lookup_one: EACCES before EEXIST or ENOENT).
        guard let slash = p.lastIndex(of: 47) else {
            if p.count > 255 { return .failure(Errno(ENAMETOOLONG)) }
            if start.dentry.dead { return .failure(Errno(ENOENT)) }
            if let cr = w.searcher, start.inode.isDir, !cr.permits(start.inode, 1) { return .failure(Errno(EACCES)) }
            return .success((start, p))
        }
        let name = Array(p[(slash + 1)...])
        let dirPart = slash == 0 ? [UInt8]([47]) : Array(p[..<slash])
        if name.isEmpty { return .success((fs.root, [46])) }
        var dw = w
        dw.follow = true
        switch resolve(fs, start: start, dirPart, dw) {
        case .success(let d):
            if !d.inode.isDir { return .failure(Errno(ENOTDIR)) }
            if name.count > 255 { return .failure(Errno(ENAMETOOLONG)) }
            if d.dentry.dead { return .failure(Errno(ENOENT)) }
            if let cr = w.searcher, !cr.permits(d.inode, 1) { return .failure(Errno(EACCES)) }
            return .success((d, name))
        case .failure(let e): return .failure(e)
        }
    }

    /// The absolute path of `p` as seen from `root` (getcwd, /proc links).
    func pathString(_ p: Path, root: Path? = nil) -> [UInt8] {
        var reached = false
        return pathString(p, root: root, reached: &reached)
    }

    /// The path of `p` as seen from `root`; `reached` tells whether `root`
    /// is above `p` at all (after chroot, a cwd left outside it is not:
    /// getcwd then reports "(unreachable)").
    func pathString(_ p: Path, root: Path?, reached: inout Bool) -> [UInt8] {
        let r = root ?? rootPath
        var parts: [[UInt8]] = []
        var cur = p
        var guardCount = 0
        reached = false
        while guardCount < 4096 {
            if cur.dentry === r.dentry && cur.mount === r.mount { reached = true; break }
            guardCount += 1
            if cur.dentry === cur.mount.root {
                guard cur.mount.namespaceID == nil, let mp = cur.mount.mountpoint, let pm = cur.mount.parent else { break }
                cur = Path(mount: pm, dentry: mp)
                continue
            }
            parts.append(cur.dentry.name)
            guard let par = cur.dentry.parent else { break }
            cur = Path(mount: cur.mount, dentry: par)
        }
        if parts.isEmpty { return [47] }
        var out: [UInt8] = []
        for s in parts.reversed() { out.append(47); out.append(contentsOf: s) }
        return out
    }

    func mountOf(_ p: Path) -> Mount { p.mount }
}

/// A process's file descriptor table (shared with CLONE_FILES).
final class FDTable {
    struct Entry { var file: FileDescription; var cloexec: Bool }
    var entries: [Entry?] = []
    var users = 1
    /// Every fd below this is in use: the lowest-free search starts here, so
    /// a process opening descriptors one after another pays O(1) per open,
    /// not a scan of all it holds (which made 60,000 opens take 90 s).
    private var lowFree = 0

    func get(_ fd: Int32) -> FileDescription? {
        if fd < 0 || Int(fd) >= entries.count { return nil }
        return entries[Int(fd)]?.file
    }

    /// A description usable for I/O and attribute changes: O_PATH ones
    /// answer EBADF to everything but fstat, *at, fchdir, dup and fcntl.
    func getIO(_ fd: Int32) -> FileDescription? {
        guard let f = get(fd), f.flags & O_PATH == 0 else { return nil }
        return f
    }

    /// Installs at the lowest free fd >= minFD. Returns the fd or -EMFILE.
    func install(_ f: FileDescription, minFD: Int32 = 0, cloexec: Bool, limit: Int) -> Int {
        let fromHint = Int(minFD) <= lowFree
        var i = fromHint ? lowFree : Int(minFD)
        while i < entries.count && entries[i] != nil { i += 1 }
        if fromHint { lowFree = i }
        if i >= limit { return err(EMFILE) }
        if i >= entries.count { entries.append(contentsOf: repeatElement(nil, count: i - entries.count + 1)) }
        f.refs += 1
        entries[i] = Entry(file: f, cloexec: cloexec)
        if fromHint { lowFree = i + 1 }
        return i
    }

    /// Puts `f` at exactly `fd`, closing what was there.
    func installAt(_ f: FileDescription, _ fd: Int32, cloexec: Bool) {
        let i = Int(fd)
        if i >= entries.count { entries.append(contentsOf: repeatElement(nil, count: i - entries.count + 1)) }
        f.refs += 1
        let old = entries[i]
        entries[i] = Entry(file: f, cloexec: cloexec)
        if let o = old { FDTable.drop(o.file) }
    }

    func close(_ fd: Int32) -> Bool {
        if fd < 0 || Int(fd) >= entries.count { return false }
        guard let e = entries[Int(fd)] else { return false }
        entries[Int(fd)] = nil
        if Int(fd) < lowFree { lowFree = Int(fd) }
        // POSIX record locks die with any close of the file by their
        // process, through whichever descriptor (one never locked too).
        if let k = e.file.lockKey ?? e.file.inode.map(FileLocks.key), let t = currentTask {
            Kernel.shared?.fileLocks.releaseAll(.process(t.tg.tgid), key: k)
        }
        // So do dnotify marks (Linux's dnotify_flush).
        if let k = Kernel.shared, !k.inotify.dnotifyMarks.isEmpty, let t = currentTask { k.inotify.dnotifyFlush(e.file, tgid: t.tg.tgid) }
        FDTable.drop(e.file)
        return true
    }

    static func drop(_ f: FileDescription) {
        f.refs -= 1
        if f.refs == 0 {
            if f.flags & O_PATH == 0 { Kernel.shared?.inotifyFile(f, f.writable ? IN_CLOSE_WRITE_ : IN_CLOSE_NOWRITE_) }
            Kernel.shared?.inotifyClosed(f)
            if f.lockKey != nil { Kernel.shared?.fileLocks.releaseAll(.description(ObjectIdentifier(f))) }
            f.dropWriter()
            // Its I/O signals end first (Linux's __fput drops the fasync
            // entry before the release), so closing wakes no owner of its own.
            f.flags &= ~O_ASYNC
            f.release()
        }
    }

    func setCloexec(_ fd: Int32, _ v: Bool) { entries[Int(fd)]?.cloexec = v }
    func cloexec(_ fd: Int32) -> Bool { entries[Int(fd)]?.cloexec ?? false }

    func fork() -> FDTable {
        let t = FDTable()
        t.entries = entries
        t.lowFree = lowFree
        for case let e? in entries { e.file.refs += 1 }
        return t
    }

    func closeOnExec() {
        for i in 0..<entries.count where entries[i]?.cloexec == true { _ = close(Int32(i)) }
    }

    /// Drops the table when its last user (task) is gone.
    func release(_ t: Task) {
        users -= 1
        if users > 0 { return }
        for i in 0..<entries.count { _ = close(Int32(i)) }
    }
}
