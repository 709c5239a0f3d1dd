import CMoat
import Glibc

// mount(2), umount2(2) and pivot_root(2) on the Sentry's mount tree (VFS.swift).
// They change only what the sandbox sees: every mount here is a Sentry
// object (tmpfs, proc, sysfs, mqueue, cgroup2, or another view of a tree the
// sandbox already has), and nothing reaches the host's mounts.

/// mount(2)'s flags; the per-mount ones are kept in Mount.flags.
enum MountFlags {
    static let rdonly: UInt64 = 1, nosuid: UInt64 = 2, nodev: UInt64 = 4, noexec: UInt64 = 8
    static let remount: UInt64 = 32, noatime: UInt64 = 1024, nodiratime: UInt64 = 2048
    static let bind: UInt64 = 4096, move: UInt64 = 8192, rec: UInt64 = 16384, silent: UInt64 = 32768
    static let unbindable: UInt64 = 1 << 17, `private`: UInt64 = 1 << 18, slave: UInt64 = 1 << 19, shared: UInt64 = 1 << 20
    static let relatime: UInt64 = 1 << 21, strictatime: UInt64 = 1 << 24, nosymfollow: UInt64 = 256, nouser: UInt64 = 1 << 31
    static let propagation = unbindable | `private` | slave | shared
    /// What a mount keeps of mount(2)'s flags.
    static let perMount = nosuid | nodev | noexec | noatime | nodiratime | relatime | nosymfollow
    static let atimeRule = noatime | nodiratime | relatime | strictatime
    /// The per-mount flags a locked mount keeps (Linux's MNT_LOCK_*).
    static let lockable = nosuid | nodev | noexec | atimeRule

    /// The per-mount flags of a runtime's option list ("nosuid", "noexec"...).
    static func parse(_ options: [String]) -> UInt64 {
        var f: UInt64 = 0
        for o in options {
            switch o {
            case "nosuid": f |= nosuid
            case "nodev": f |= nodev
            case "noexec": f |= noexec
            case "noatime": f |= noatime
            case "nodiratime": f |= nodiratime
            case "nosymfollow": f |= nosymfollow
            case "strictatime": f |= strictatime
            default: break
            }
        }
        if f & (noatime | strictatime) == 0 { f |= relatime }
        return f & ~strictatime
    }

    /// The options /proc/PID/mounts and mountinfo show for these flags,
    /// in Linux's order (show_mnt_opts).
    static func text(_ f: UInt64, readOnly: Bool) -> String {
        var s = readOnly ? "ro" : "rw"
        for (bit, name) in [(nosuid, "nosuid"), (nodev, "nodev"), (noexec, "noexec"), (noatime, "noatime"),
                            (nodiratime, "nodiratime"), (relatime, "relatime"), (nosymfollow, "nosymfollow")] where f & bit != 0 {
            s += ",\(name)"
        }
        return s
    }
}

func registerMount(_ t: SyscallTable) {
    t[165] = sysMount                                                                     // mount
    t[166] = sysUmount                                                                    // umount2
    t[155] = sysPivotRoot                                                                 // pivot_root
    registerMountAPI(t)
}

/// mount(2) inside the sandbox: tmpfs, proc, sysfs, mqueue, cgroup2
/// (FSImpl/CgroupFS.swift), bind mounts and moves of paths the sandbox
/// can already see, remounts and propagation types. Linux's order
/// (path_mount): the strings, the target's lookup, CAP_SYS_ADMIN, then
/// one operation chosen by the flags.
func sysMount(_ t: Task, _ a: Args) -> Int {
    var flags = a.a3
    // The old magic number in the top half means nothing (MS_MGC_VAL).
    if flags & 0xffff_0000 == 0xc0ed_0000 { flags &= 0xffff }
    let target: Path
    switch t.lookup(AT_FDCWD_, a.a1, follow: true) { case .success(let p): target = t.kernel.vfs.crossMounts(p); case .failure(let e): return e.ret }
    if flags & MountFlags.nouser != 0 { return err(EINVAL) }
    // CAP_SYS_ADMIN in the user namespace that owns the caller's mount
    // namespace (a user namespace's root mounts in a namespace of its own).
    if !mayMount(t) { return err(EPERM) }
    t.kernel.vfs.pruneDeadNamespaces()
    // The target must be in the caller's namespace (Linux's check_mnt).
    if target.mount.ns !== t.fs.ns { return err(EINVAL) }
    // A Landlock domain that restricts the file system freezes the mount
    // tree for its threads (landlock(7): EPERM).
    if t.creds.landlock?.handlesFS == true { return err(EPERM) }
    // A /proc/PID/fd/N link itself (reached through an O_PATH descriptor of
    // it) is no mount point: Linux marks those dentries cant_mount (ENOENT).
    // A file with no place in any tree (an eventfd, a pipe, reached through
    // /proc/PID/fd/N) is on no mount of the caller's (Linux's do_lock_mount:
    // ENOENT).
    if target.inode is ProcFdLink || target.inode is ProcFdTarget { return err(ENOENT) }
    // The per-mount flags: relatime unless another atime rule is asked.
    var mflags = flags & (MountFlags.perMount & ~MountFlags.relatime)
    if flags & MountFlags.noatime == 0 { mflags |= MountFlags.relatime }
    if flags & MountFlags.strictatime != 0 { mflags &= ~(MountFlags.relatime | MountFlags.noatime) }
    if flags & MountFlags.remount != 0 {
        // A remount keeps the atime rule unless it names one.
        if flags & MountFlags.atimeRule == 0 { mflags = (mflags & ~MountFlags.atimeRule) | (target.mount.flags & MountFlags.atimeRule) }
        guard target.dentry === target.mount.root else { return err(EINVAL) }
        // A locked mount's flags stay (Linux's can_change_locked_flags).
        let m = target.mount
        if m.locked || m.lockedFlags != 0 {
            let kept = m.lockedFlags
            if kept & MountFlags.rdonly != 0 && flags & MountFlags.rdonly == 0 { return err(EPERM) }
            for bit in [MountFlags.nosuid, MountFlags.nodev, MountFlags.noexec] where kept & bit != 0 && mflags & bit == 0 { return err(EPERM) }
            if kept & MountFlags.atimeRule != mflags & MountFlags.atimeRule && flags & MountFlags.atimeRule != 0 { return err(EPERM) }
        }
        m.flags = mflags
        m.readOnly = flags & MountFlags.rdonly != 0
        m.ns?.event += 1
        return 0
    }
    if flags & MountFlags.propagation != 0 { return changePropagation(t, target, flags) }
    if flags & MountFlags.bind != 0 { return bindMount(t, a.a0, at: target, recursive: flags & MountFlags.rec != 0) }
    if flags & MountFlags.move != 0 { return moveMount(t, a.a0, to: target) }
    if !target.inode.isDir { return err(ENOTDIR) }
    let vfs = t.kernel.vfs
    if tooManyMounts(vfs, at: target) { return err(ENOSPC) }
    let fstype: [UInt8]
    switch t.readPath(a.a2) { case .success(let s): fstype = s; case .failure(let e): return e.ret }
    if !mayMountNew(t, String(decoding: fstype, as: UTF8.self)) { return err(EPERM) }
    let source = (try? t.readPath(a.a0).get()).map { String(decoding: $0, as: UTF8.self) } ?? "none"
    let data = a.a4 == 0 ? "" : (try? t.readPath(a.a4).get()).map { String(decoding: $0, as: UTF8.self) } ?? ""
    let type = String(decoding: fstype, as: UTF8.self)
    let fs: NewFileSystem
    switch newFileSystem(t, type, data) { case .success(let f): fs = f; case .failure(let e): return e.ret }
    // The same cgroup root again on top of itself is EBUSY (do_add_mount).
    if type == "cgroup2" && target.dentry === target.mount.root && target.inode === fs.root { return err(EBUSY) }
    let m = vfs.mount(fs.root, at: target, fsType: type, source: source)
    m.superOptions = fs.superOptions
    m.flags = mflags
    m.readOnly = flags & MountFlags.rdonly != 0 || fs.readOnly
    propagateMount(vfs, m, at: target)
    return 0
}

/// A new file system for mount(2) or fsconfig's FSCONFIG_CMD_CREATE: its
/// root, the options mountinfo shows, and whether it is read-only whatever
/// was asked.
struct NewFileSystem {
    var root: Inode
    var superOptions = ""
    var readOnly = false
}

/// Makes an instance (or a view) of file system `type` with mount options
/// `data`: tmpfs, devpts, overlay, proc, mqueue, sysfs, cgroup2; ENODEV for
/// others, EINVAL for options it refuses.
func newFileSystem(_ t: Task, _ type: String, _ data: String) -> Result<NewFileSystem, Errno> {
    let dev = 100 + UInt64(t.kernel.vfs.mounts.count)
    switch type {
    case "tmpfs":
        guard let o = TmpfsOptions(data, uid: t.creds.fsuid, gid: t.creds.fsgid) else { return .failure(Errno(EINVAL)) }
        let root = TmpfsInode(mode: S_IFDIR_ | o.mode, dev: dev, uid: o.uid, gid: o.gid)
        if o.pages != nil || o.inodes != nil { root.blocks = TmpfsBlocks(max: o.pages, maxInodes: o.inodes) }
        return .success(NewFileSystem(root: root, superOptions: o.text))
    case "devpts":
        // Every devpts mount is an instance of its own (Linux 4.7 on):
        // its ptmx makes pairs that show in it alone. Options: ptmxmode=
        // (000 by default), mode= and gid= for the pairs' nodes.
        var ptmxMode: UInt32 = 0
        for opt in data.split(separator: ",") where opt.hasPrefix("ptmxmode=") {
            guard let v = UInt32(opt.dropFirst(9), radix: 8), v <= 0o777 else { return .failure(Errno(EINVAL)) }
            ptmxMode = v
        }
        return .success(NewFileSystem(root: DevPtsInode(kernel: t.kernel, dev: dev, ptmxMode: ptmxMode, newInstance: true)))
    case "overlay":
        // No upper layer: nothing can change (overlayfs mounts it read-only).
        return overlayRoot(t, data).map { NewFileSystem(root: $0, superOptions: data, readOnly: ($0 as? OverlayInode)?.upper == nil) }
    case "proc":
        return .success(NewFileSystem(root: t.kernel.makeProcFS()))
    case "mqueue":
        // The IPC namespace's queues (one per sandbox): every mount shows them all.
        return .success(NewFileSystem(root: t.ipc.mqueues.rootInode))
    case "sysfs":
        return .success(NewFileSystem(root: makeSysFS(dev: dev), readOnly: true))
    case "cgroup2":
        // Rooted at the mounting task's cgroup namespace root, as on Linux.
        return .success(NewFileSystem(root: t.kernel.cgroupDir(t.cgroupNSRoot)))
    default:
        return .failure(Errno(ENODEV))
    }
}

/// Whether `t` may change its mount namespace: CAP_SYS_ADMIN in the user
/// namespace that owns it (Linux's may_mount).
func mayMount(_ t: Task) -> Bool {
    t.creds.capable(Cap.sysAdmin, in: t.fs.ns?.owner ?? .root)
}

/// Whether `t` may make a new mount of `fstype`. Outside the initial user
/// namespace only the file systems Linux marks FS_USERNS_MOUNT, each with
/// its own rule: proc for a pid namespace of the caller's (not the
/// sandbox's first), mqueue for an IPC namespace of its own, cgroup2 for a
/// cgroup namespace of its own; sysfs belongs to the sandbox's network
/// namespace, which no user namespace below it owns.
private func mayMountNew(_ t: Task, _ fstype: String) -> Bool {
    if t.creds.has(Cap.sysAdmin) { return true }
    switch fstype {
    case "tmpfs", "devpts", "overlay": return true
    case "proc": return PidNS.index(t.tg.tgid) != 0
    case "mqueue": return t.ownIPC != nil
    case "cgroup2": return t.ownCgroupNS != nil
    default: return false
    }
}

/// At most this many mounts (Linux's fs.mount-max is 100,000; this tree is
/// a list walked by each mount call): a mount that would pass it, with its
/// propagated copies, is ENOSPC.
private let maxMounts = 10000

/// Whether a mount at `target` (with its copies) would pass maxMounts.
private func tooManyMounts(_ vfs: VFS, at target: Path) -> Bool {
    vfs.mounts.count + mountsMade(vfs, treeSize: 1, under: target.mount) > maxMounts
}

/// An overlay of directories the sandbox has (FSImpl/Overlay.swift): one
/// lowerdir, and an upperdir in Sentry memory (a tmpfs directory) that
/// takes the changes; workdir is accepted and unused.
private func overlayRoot(_ t: Task, _ data: String) -> Result<Inode, Errno> {
    var lowerPath: String?, upperPath: String?
    for opt in data.split(separator: ",") {
        let kv = opt.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2 else { continue }
        switch kv[0] {
        case "lowerdir": lowerPath = kv[1]
        case "upperdir": upperPath = kv[1]
        default: break
        }
    }
    // Several lower layers are not offered.
    guard let lp = lowerPath, !lp.isEmpty, !lp.contains(":") else { return .failure(Errno(EINVAL)) }
    let lower: Path
    switch t.lookup(AT_FDCWD_, path: Array(lp.utf8), follow: true) { case .success(let p): lower = p; case .failure(let e): return .failure(e) }
    if !lower.inode.isDir { return .failure(Errno(ENOTDIR)) }
    var upper: TmpfsInode? = nil
    if let up = upperPath {
        switch t.lookup(AT_FDCWD_, path: Array(up.utf8), follow: true) {
        case .success(let p):
            guard p.inode.isDir else { return .failure(Errno(ENOTDIR)) }
            guard let u = p.inode as? TmpfsInode else { return .failure(Errno(EINVAL)) }
            upper = u
        case .failure(let e): return .failure(e)
        }
    }
    return .success(OverlayInode(lower: lower.inode, upper: upper, parent: nil, name: [47], upperDev: upper?.dev ?? lower.inode.dev))
}

/// tmpfs's mount options (mode=, uid=, gid=, size= or nr_blocks= in pages:
/// TmpfsBlocks; nr_inodes= is checked and not enforced), and the text
/// mountinfo shows for them.
struct TmpfsOptions {
    var mode: UInt32 = 0o1777
    var uid: UInt32
    var gid: UInt32
    /// The block limit in pages; nil for none (no size, or size=0).
    var pages: Int?
    var inodes: UInt64?
    /// Whether size= or nr_blocks=, nr_inodes= were given (a remount
    /// changes only those).
    var pagesGiven = false, inodesGiven = false
    var text = ""

    init?(_ data: String, uid: UInt32, gid: UInt32) {
        self.uid = uid; self.gid = gid
        for opt in data.split(separator: ",") {
            let kv = opt.split(separator: "=", maxSplits: 1).map(String.init)
            let value = kv.count > 1 ? kv[1] : ""
            switch kv[0] {
            case "mode":
                guard let m = UInt32(value, radix: 8), m <= 0o7777 else { return nil }
                mode = m
            case "uid":
                guard let u = UInt32(value) else { return nil }
                self.uid = u
            case "gid":
                guard let g = UInt32(value) else { return nil }
                self.gid = g
            case "size":
                // Bytes (k, m, g... suffixes) or a percentage of memory, in whole pages.
                let percent = value.hasSuffix("%") ? UInt64(value.dropLast()).map { $0.multipliedReportingOverflow(by: TmpfsOptions.memory) } : nil
                if let p = percent, p.overflow { return nil }
                guard let v = percent.map({ $0.partialValue / 100 }) ?? memparse(value) else { return nil }
                let n = v / 4096 + (v % 4096 == 0 ? 0 : 1)
                pages = n == 0 ? nil : Int(min(n, UInt64(Int.max / 4096)))
                pagesGiven = true
            case "nr_blocks":
                guard let v = memparse(value) else { return nil }
                pages = v == 0 ? nil : Int(min(v, UInt64(Int.max / 4096)))
                pagesGiven = true
            case "nr_inodes":
                guard let v = memparse(value) else { return nil }
                inodes = v == 0 ? nil : v
                inodesGiven = true
            case "huge", "mpol", "inode32", "inode64", "noswap", "quota", "usrquota", "grpquota":
                break
            default:
                return nil
            }
        }
        var parts: [String] = []
        if let p = pages { parts.append("size=\(p * 4)k") }
        if let n = inodes { parts.append("nr_inodes=\(n)") }
        if mode != 0o1777 { parts.append("mode=" + String(mode, radix: 8).leftPadded(to: 3)) }
        if self.uid != 0 { parts.append("uid=\(self.uid)") }
        if self.gid != 0 { parts.append("gid=\(self.gid)") }
        text = parts.joined(separator: ",")
    }
}

extension TmpfsOptions {
    /// The machine's memory, for size=N%.
    static var memory: UInt64 {
        var total: UInt64 = 0, free: UInt64 = 0, procs: UInt64 = 0
        moat_sysinfo(&total, &free, &procs)
        return total
    }
}

/// A number with an optional binary suffix (k, m, g, t, p, e), as Linux's
/// memparse; nil for anything else (an empty value too).
private func memparse(_ s: String) -> UInt64? {
    guard let last = s.last else { return nil }
    let shifts: [Character: UInt64] = ["k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60]
    if let sh = shifts[Character(last.lowercased())] {
        guard let n = UInt64(s.dropLast()) else { return nil }
        let (v, o) = n.multipliedReportingOverflow(by: 1 << sh)
        return o ? nil : v
    }
    return UInt64(s)
}

private extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// MS_SHARED, MS_PRIVATE, MS_SLAVE or MS_UNBINDABLE (exactly one, with
/// MS_REC for the whole subtree) on a mount's root (do_change_type;
/// MountPropagation.swift).
private func changePropagation(_ t: Task, _ target: Path, _ flags: UInt64) -> Int {
    let type = flags & ~(MountFlags.rec | MountFlags.silent)
    guard type.nonzeroBitCount == 1, type & MountFlags.propagation != 0 else { return err(EINVAL) }
    guard target.dentry === target.mount.root else { return err(EINVAL) }
    let vfs = t.kernel.vfs
    setPropagation(vfs, flags & MountFlags.rec != 0 ? vfs.subtree(of: target.mount) : [target.mount], type)
    return 0
}

/// MS_BIND: another view of the tree at `sourceAddr` (do_loopback). The
/// new mount keeps the source mount's flags (MS_RDONLY and the others
/// need a remount), and joins its peer group when that is shared.
private func bindMount(_ t: Task, _ sourceAddr: UInt64, at target: Path, recursive: Bool) -> Int {
    let srcPath: [UInt8]
    switch t.readPath(sourceAddr) { case .success(let p): srcPath = p; case .failure(let e): return e.ret }
    if srcPath.isEmpty { return err(EINVAL) }
    let src: Path
    switch t.lookup(AT_FDCWD_, path: srcPath, follow: true) { case .success(let p): src = p; case .failure(let e): return e.ret }
    if src.mount.unbindable { return err(EINVAL) }
    if src.inode.isDir != target.inode.isDir { return err(ENOTDIR) }
    let vfs = t.kernel.vfs
    // Only mounts of the caller's namespace may be bound (check_mnt).
    if src.mount.ns !== t.fs.ns { return err(EINVAL) }
    // MS_REC: the mounts below the source come along, each at its place.
    let below = submounts(vfs, under: src)
    // A plain bind would uncover what locked mounts hide (has_locked_children).
    if !recursive && below.contains(where: { $0.locked && $0.parent === src.mount }) { return err(EINVAL) }
    if vfs.mounts.count + mountsMade(vfs, treeSize: 1 + (recursive ? below.count : 0), under: target.mount) > maxMounts { return err(ENOSPC) }
    let m = vfs.mount(src.inode, at: target, fsType: src.mount.fsType, source: String(decoding: vfs.pathString(src), as: UTF8.self))
    copyMountFields(from: src.mount, to: m)
    if let names = vfs.namesBelowRoot(src), !names.isEmpty {
        let base = src.mount.rootPath == "/" ? "" : src.mount.rootPath
        m.rootPath = base + names.map { "/" + String(decoding: $0, as: UTF8.self) }.joined()
    } else {
        m.rootPath = src.mount.rootPath
    }
    if recursive { copySubmounts(vfs, below, under: src, onto: m) }
    propagateMount(vfs, m, at: target)
    return 0
}

/// Copies `below` (submounts(vfs, under: src)) onto `copy`, a new mount
/// of `src`'s directory: each at its place (found by name: a bind has
/// dentries of its own), parents first.
private func copySubmounts(_ vfs: VFS, _ below: [Mount], under src: Path, onto copy: Mount) {
    var copies = [ObjectIdentifier(src.mount): copy]
    for c in below {
        guard let p = c.parent, let pc = copies[ObjectIdentifier(p)], let mp = c.mountpoint,
              let names = vfs.names(from: p === src.mount ? src.dentry : p.root, to: mp),
              let place = vfs.walkNames(names, in: pc) else { continue }
        let n = vfs.mount(c.root.inode, at: place, fsType: c.fsType, source: c.source)
        copyMountFields(from: c, to: n)
        n.rootPath = c.rootPath
        copies[ObjectIdentifier(c)] = n
    }
}

/// open_tree's AT_RECURSIVE: the mounts below `src` copied onto `copy`.
func copySubmounts(_ vfs: VFS, under src: Path, onto copy: Mount) {
    copySubmounts(vfs, submounts(vfs, under: src), under: src, onto: copy)
}

/// A bind copy keeps its original's flags, their locks (not the lock on
/// unmounting) and propagation: a copy of a shared mount is its peer, of a
/// slave a slave of the same master (clone_mnt).
private func copyMountFields(from o: Mount, to m: Mount) {
    m.flags = o.flags
    m.lockedFlags = o.lockedFlags
    m.readOnly = o.readOnly
    m.superOptions = o.superOptions
    m.peerGroup = o.peerGroup
    m.masterGroup = o.masterGroup
}

/// The mounts below `src` that a recursive bind of it copies, parents
/// first: those mounted at or below its directory, except unbindable ones
/// and what is below them (copy_tree with CL_COPY_MNT_NS_FILE unset).
private func submounts(_ vfs: VFS, under src: Path) -> [Mount] {
    var out: [Mount] = []
    var taken: Set<ObjectIdentifier> = [ObjectIdentifier(src.mount)]
    for c in vfs.subtree(of: src.mount).dropFirst() {
        guard let p = c.parent, taken.contains(ObjectIdentifier(p)), !c.unbindable, let mp = c.mountpoint else { continue }
        if p === src.mount {
            // Directly on the source mount: only at or below the directory bound.
            var d: Dentry? = mp
            while let x = d, x !== src.dentry, x !== p.root { d = x.parent }
            guard d === src.dentry else { continue }
        }
        out.append(c)
        taken.insert(ObjectIdentifier(c))
    }
    return out
}

/// MS_MOVE: the mount whose root is at `sourceAddr` moves, with what is
/// mounted below it, to `target` (do_move_mount): EINVAL for a path that
/// is not a mount's root or is the root of the tree, or a mount under a
/// shared parent; ELOOP for a move below itself.
private func moveMount(_ t: Task, _ sourceAddr: UInt64, to target: Path) -> Int {
    let srcPath: [UInt8]
    switch t.readPath(sourceAddr) { case .success(let p): srcPath = p; case .failure(let e): return e.ret }
    if srcPath.isEmpty { return err(EINVAL) }
    let src: Path
    switch t.lookup(AT_FDCWD_, path: srcPath, follow: true) { case .success(let p): src = p; case .failure(let e): return e.ret }
    let m = src.mount
    guard src.dentry === m.root, let parent = m.parent, m.namespaceID == nil, !m.locked, m.ns === t.fs.ns else { return err(EINVAL) }
    if src.inode.isDir != target.inode.isDir { return err(ENOTDIR) }
    if parent.peerGroup != 0 { return err(EINVAL) }
    var p: Mount? = target.mount
    while let q = p { if q === m { return err(ELOOP) }; p = q.parent }
    let vfs = t.kernel.vfs
    vfs.detach(m)
    vfs.attach(m, at: target)
    propagateMount(vfs, m, at: target)
    return 0
}

/// umount2(2). Linux's checks in its order: CAP_SYS_ADMIN, the flags, the
/// path (a mount's root, not the root of the tree, the topmost mount of a
/// stack: "." in a directory with mounts on it names the last one),
/// MNT_EXPIRE's two steps. A mount still in use (a process's cwd or root
/// on it, an open file of it, a mount below it) is EBUSY unless MNT_DETACH
/// asks for a lazy unmount, which takes the mounts below along. Mapped
/// files do not count here: mappings do not remember their mount.
func sysUmount(_ t: Task, _ a: Args) -> Int {
    let MNT_FORCE: Int32 = 1, MNT_DETACH: Int32 = 2, MNT_EXPIRE: Int32 = 4, UMOUNT_NOFOLLOW: Int32 = 8
    if !mayMount(t) { return err(EPERM) }
    let flags = a.int(1)
    if flags & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0 { return err(EINVAL) }
    let vfs = t.kernel.vfs
    let p: Path
    switch t.lookup(AT_FDCWD_, a.a0, follow: flags & UMOUNT_NOFOLLOW == 0) { case .success(let r): p = vfs.crossMounts(r); case .failure(let e): return e.ret }
    if t.creds.landlock?.handlesFS == true { return err(EPERM) }
    vfs.pruneDeadNamespaces()
    let m = p.mount
    // A locked mount (copied from a more privileged namespace) goes only
    // with its parent; one of another namespace is not the caller's.
    guard p.dentry === m.root, m.mountpoint != nil, m.parent != nil, !m.locked, m.ns === t.fs.ns else { return err(EINVAL) }
    if flags & MNT_EXPIRE != 0 {
        // The first call only marks the mount; a second finds it unused.
        if flags & (MNT_FORCE | MNT_DETACH) != 0 || m === t.fs.root.mount { return err(EINVAL) }
        if !m.expiryMarked { m.expiryMarked = true; return err(EAGAIN) }
    }
    if flags & MNT_DETACH == 0 && (vfs.mounts.contains { $0.parent === m } || mountInUse(t.kernel, m)) {
        return err(EBUSY)
    }
    // The mount and every mount below it leave the tree. Under a shared
    // parent, so do its copies under the parent's receivers, those with
    // nothing that stays mounted below them (MountPropagation.swift).
    let tree = vfs.subtree(of: m)
    let copies = propagatedUnmounts(vfs, of: tree)
    for c in copies { vfs.detach(c) }
    vfs.detach(m)
    var gone = Set(tree.map(ObjectIdentifier.init))
    for c in copies { for x in vfs.subtree(of: c) { gone.insert(ObjectIdentifier(x)) } }
    // Unmounted: in no namespace any more (open_tree cannot copy them), and
    // out of their peer groups (a group's last member hands its slaves on).
    let leaving = vfs.mounts.filter { gone.contains(ObjectIdentifier($0)) }
    vfs.mounts.removeAll { gone.contains(ObjectIdentifier($0)) }
    for x in leaving {
        x.ns = nil
        leavePeerGroup(vfs, x)
    }
    return 0
}

/// Whether a process holds `m`: its cwd or root is on it, or a descriptor
/// open on one of its files (Linux counts these as references to the mount).
private func mountInUse(_ k: Kernel, _ m: Mount) -> Bool {
    var seenFS = Set<ObjectIdentifier>(), seenFDs = Set<ObjectIdentifier>()
    for tg in k.threadGroups.values {
        for task in tg.tasks {
            if seenFS.insert(ObjectIdentifier(task.fs)).inserted, task.fs.cwd.mount === m || task.fs.root.mount === m { return true }
            if seenFDs.insert(ObjectIdentifier(task.fds)).inserted,
               task.fds.entries.contains(where: { $0?.file.path?.mount === m }) { return true }
        }
    }
    return false
}

/// pivot_root(2): the mount at `new_root` becomes the root of the caller's
/// tree and the old root mount moves onto `put_old`; every process whose
/// root or cwd was the old root moves to the new one (chroot_fs_refs).
/// Linux's checks in its order: CAP_SYS_ADMIN, both lookups (directories),
/// no shared mount involved (EINVAL), new_root still linked (ENOENT), new
/// root and put_old on other mounts than the root (EBUSY), the root and
/// new_root each a mount's root with a parent (EINVAL), put_old at or
/// below new_root and new_root below the root (EINVAL). `pivot_root(".",
/// ".")` stacks the old root on the new one (put_old is the topmost mount
/// there), to be unmounted from ".".
func sysPivotRoot(_ t: Task, _ a: Args) -> Int {
    if !mayMount(t) { return err(EPERM) }
    let vfs = t.kernel.vfs
    let new: Path, putOld: Path
    switch t.lookup(AT_FDCWD_, a.a0, follow: true) { case .success(let p): new = p; case .failure(let e): return e.ret }
    if !new.inode.isDir { return err(ENOTDIR) }
    switch t.lookup(AT_FDCWD_, a.a1, follow: true) { case .success(let p): putOld = p; case .failure(let e): return e.ret }
    if !putOld.inode.isDir { return err(ENOTDIR) }
    if t.creds.landlock?.handlesFS == true { return err(EPERM) }
    let old = vfs.crossMounts(putOld)
    if old.dentry.dead { return err(ENOENT) }
    let root = t.fs.root
    let newMnt = new.mount, rootMnt = root.mount, oldMnt = old.mount
    if oldMnt.peerGroup != 0 || newMnt.parent?.peerGroup ?? 0 != 0 || rootMnt.parent?.peerGroup ?? 0 != 0 { return err(EINVAL) }
    if new.dentry.dead { return err(ENOENT) }
    if newMnt === rootMnt || oldMnt === rootMnt { return err(EBUSY) }
    guard root.dentry === rootMnt.root, rootMnt.namespaceID == nil else { return err(EINVAL) }
    // Where the root is attached. The sandbox's own root has no parent
    // here, but stands for a container's root, which on Linux sits on a
    // mount of its own (the runtime's old root): pivoting it is allowed,
    // and the new root then heads the tree.
    let rootAt: Path? = rootMnt.parent.flatMap { p in rootMnt.mountpoint.map { Path(mount: p, dentry: $0) } }
    guard let ns = t.fs.ns, newMnt.ns === ns, rootMnt.ns === ns else { return err(EINVAL) }
    if rootAt == nil && rootMnt !== ns.root { return err(EINVAL) }
    guard new.dentry === newMnt.root, newMnt.parent != nil, newMnt.namespaceID == nil, !newMnt.locked else { return err(EINVAL) }
    if !vfs.isReachable(old, from: new) || !vfs.isReachable(new, from: root) { return err(EINVAL) }
    vfs.detach(newMnt)
    vfs.detach(rootMnt)
    vfs.attach(rootMnt, at: old)
    // The old root's lock passes to the new one (it may be unmounted now).
    if rootMnt.locked { newMnt.locked = true; rootMnt.locked = false }
    if let at = rootAt {
        vfs.attach(newMnt, at: at)
    } else {
        newMnt.parent = nil; newMnt.mountpoint = nil
        ns.root = newMnt
    }
    let newRoot = Path(mount: newMnt, dentry: newMnt.root)
    var seen = Set<ObjectIdentifier>()
    for tg in t.kernel.threadGroups.values {
        for task in tg.tasks where seen.insert(ObjectIdentifier(task.fs)).inserted {
            if task.fs.root.mount === rootMnt && task.fs.root.dentry === root.dentry { task.fs.root = newRoot }
            if task.fs.cwd.mount === rootMnt && task.fs.cwd.dentry === root.dentry { task.fs.cwd = newRoot }
        }
    }
    return 0
}
