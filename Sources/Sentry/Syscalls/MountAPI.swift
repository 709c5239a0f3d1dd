import CMoat
import Glibc

// The file-descriptor mount API (Linux 5.2): fsopen(2), fsconfig(2) and
// fsmount(2) make a file system and a detached mount of it; open_tree(2)
// opens a path or a detached copy of the mounts there; move_mount(2)
// attaches a detached tree or moves a mount. A detached tree is a mount
// namespace of its own with no process in it (VFS/MountNamespace.swift),
// held by the descriptors that name it: it is gone with the last of them,
// unless move_mount attached it.

func registerMountAPI(_ t: SyscallTable) {
    t[428] = sysOpenTree                                                                  // open_tree
    t[429] = sysMoveMount                                                                 // move_mount
    t[430] = sysFsopen                                                                    // fsopen
    t[431] = sysFsconfig                                                                  // fsconfig
    t[432] = sysFsmount                                                                   // fsmount
    t[433] = sysFspick                                                                    // fspick
    t[442] = sysMountSetattr                                                              // mount_setattr
}

/// An fsopen descriptor: a file system being configured, then made
/// (FSCONFIG_CMD_CREATE), then mounted once (fsmount); or an fspick one:
/// the file system of an existing mount (`picked`), whose options
/// FSCONFIG_CMD_RECONFIGURE changes.
final class FSContextFD: FileDescription {
    let fsType: String
    var source: String?
    var options: [String] = []
    var readOnly = false
    var made: NewFileSystem?
    var mounted = false
    /// fspick's mount: reconfiguring changes its file system.
    let picked: Mount?
    /// Whether "ro" or "rw" was given since the last reconfiguration.
    var readOnlyGiven = false
    /// A reconfiguration failed: the context takes nothing more (EBUSY).
    var failed = false

    init(fsType: String, flags: Int32, picked: Mount? = nil) {
        self.fsType = fsType
        self.picked = picked
        super.init(flags: flags, path: nil)
    }
    override var seekable: Bool { false }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(ENODATA) }   // no messages kept
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EINVAL) }
    override func stat() -> Result<Stat, Errno> {
        var s = Stat(); s.mode = 0o600; s.dev = 13; s.ino = 3
        return .success(s)
    }
}

/// A descriptor on a mount's root that holds the detached tree the mount
/// is in (fsmount, open_tree with OPEN_TREE_CLONE): an O_PATH file.
final class MountTreeFD: FileDescription {
    let tree: MountNamespace
    init(_ tree: MountNamespace, flags: Int32) {
        self.tree = tree
        super.init(flags: O_PATH | flags, path: Path(mount: tree.root, dentry: tree.root.root))
    }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EBADF) }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int { err(EBADF) }
}

/// fsopen(fsname, flags): CAP_SYS_ADMIN over the mount namespace (EPERM),
/// FSOPEN_CLOEXEC only (EINVAL), a file system Moat makes (ENODEV).
func sysFsopen(_ t: Task, _ a: Args) -> Int {
    if !mayMount(t) { return err(EPERM) }
    let flags = a.uint(1)
    if flags & ~1 != 0 { return err(EINVAL) }
    let name: String
    switch t.readPath(a.a0) { case .success(let p): name = String(decoding: p, as: UTF8.self); case .failure(let e): return e.ret }
    guard ["tmpfs", "devpts", "overlay", "proc", "mqueue", "sysfs", "cgroup2"].contains(name) else { return err(ENODEV) }
    return installNew(t, FSContextFD(fsType: name, flags: O_RDWR), cloexec: flags & 1 != 0)
}

/// fsconfig(fd, cmd, key, value, aux): string and flag parameters
/// ("source" once), then FSCONFIG_CMD_CREATE (once: EBUSY after) or
/// FSCONFIG_CMD_RECONFIGURE (on an fspick descriptor it changes the file
/// system's options; on a made one it is accepted and changes nothing). The binary,
/// path and fd parameters are none of these file systems' (EINVAL), as is
/// FSCONFIG_CMD_CREATE_EXCL (no superblock is shared to refuse).
func sysFsconfig(_ t: Task, _ a: Args) -> Int {
    let SET_FLAG: UInt32 = 0, SET_STRING: UInt32 = 1, CMD_CREATE: UInt32 = 6, CMD_RECONFIGURE: UInt32 = 7
    guard let any = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let f = any as? FSContextFD else { return err(EINVAL) }
    let cmd = a.uint(1)
    func string(_ addr: UInt64) -> String? { addr == 0 ? nil : (try? t.readPath(addr).get()).map { String(decoding: $0, as: UTF8.self) } }
    if f.failed && cmd <= CMD_RECONFIGURE { return err(EBUSY) }
    // A tmpfs being reconfigured refuses what it does not know at once.
    func refused(_ option: String) -> Bool {
        f.picked?.fsType == "tmpfs" && !superblockFlags.contains(String(option.split(separator: "=").first ?? ""))
            && TmpfsOptions(option, uid: 0, gid: 0) == nil
    }
    switch cmd {
    case SET_FLAG:
        guard let key = string(a.a2), a.a3 == 0, a.int(4) == 0 else { return err(EINVAL) }
        switch key {
        case "ro": f.readOnly = true; f.readOnlyGiven = true
        case "rw": f.readOnly = false; f.readOnlyGiven = true
        default:
            if refused(key) { return err(EINVAL) }
            f.options.append(key)
        }
        return 0
    case SET_STRING:
        guard let key = string(a.a2), let value = string(a.a3), a.int(4) == 0 else { return err(EINVAL) }
        if key == "source" {
            if f.source != nil { return err(EINVAL) }
            f.source = value
        } else {
            if refused(key + "=" + value) { return err(EINVAL) }
            f.options.append(key + "=" + value)
        }
        return 0
    case CMD_CREATE:
        if f.made != nil || f.picked != nil { return err(EBUSY) }
        switch newFileSystem(t, f.fsType, f.options.joined(separator: ",")) {
        case .success(var fs):
            fs.readOnly = fs.readOnly || f.readOnly
            f.made = fs
            return 0
        case .failure(let e): return e.ret
        }
    case CMD_RECONFIGURE:
        if let m = f.picked {
            let r = reconfigure(t, f, m)
            if r < 0 { f.failed = true }
            return r
        }
        return f.made == nil ? err(EBUSY) : 0
    default:
        return err(EINVAL)
    }
}

/// fsmount(fsfd, flags, attr_flags): a detached mount of the file system
/// fsconfig made (EINVAL before, EBUSY the second time), with the
/// MOUNT_ATTR_* flags, as an O_PATH descriptor on its root.
func sysFsmount(_ t: Task, _ a: Args) -> Int {
    guard let any = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let f = any as? FSContextFD else { return err(EINVAL) }
    let flags = a.uint(1), attrs = a.uint(2)
    if flags & ~1 != 0 { return err(EINVAL) }
    guard let mountFlags = mountAttrFlags(attrs) else { return err(EINVAL) }
    if !mayMount(t) { return err(EPERM) }
    guard let fs = f.made else { return err(EINVAL) }
    if f.mounted { return err(EBUSY) }
    let d = Dentry(name: [47], parent: nil, inode: fs.root)
    let m = Mount(root: d, mountpoint: nil, parent: nil, fsType: f.fsType, source: f.source ?? "none")
    m.superOptions = fs.superOptions
    m.flags = mountFlags & ~MountFlags.rdonly
    m.readOnly = fs.readOnly || mountFlags & MountFlags.rdonly != 0
    let tree = MountNamespace(root: m, owner: t.creds.userNS, inum: newNamespaceInode())
    m.ns = tree
    t.kernel.vfs.mounts.append(m)
    f.mounted = true
    return installNew(t, MountTreeFD(tree, flags: 0), cloexec: flags & 1 != 0)
}

/// MOUNT_ATTR_* as mount(2)'s per-mount flags (nil for unknown bits or an
/// atime value that is none of relatime, noatime, strictatime).
private func mountAttrFlags(_ a: UInt32) -> UInt64? {
    let RDONLY: UInt32 = 1, NOSUID: UInt32 = 2, NODEV: UInt32 = 4, NOEXEC: UInt32 = 8, ATIME: UInt32 = 0x70
    let NOATIME: UInt32 = 0x10, STRICTATIME: UInt32 = 0x20, NODIRATIME: UInt32 = 0x80, NOSYMFOLLOW: UInt32 = 0x0020_0000
    if a & ~(RDONLY | NOSUID | NODEV | NOEXEC | ATIME | NODIRATIME | NOSYMFOLLOW) != 0 { return nil }
    var f: UInt64 = 0
    if a & RDONLY != 0 { f |= MountFlags.rdonly }
    if a & NOSUID != 0 { f |= MountFlags.nosuid }
    if a & NODEV != 0 { f |= MountFlags.nodev }
    if a & NOEXEC != 0 { f |= MountFlags.noexec }
    if a & NODIRATIME != 0 { f |= MountFlags.nodiratime }
    if a & NOSYMFOLLOW != 0 { f |= MountFlags.nosymfollow }
    switch a & ATIME {
    case 0: f |= MountFlags.relatime
    case NOATIME: f |= MountFlags.noatime
    case STRICTATIME: break
    default: return nil
    }
    return f
}

/// open_tree(dfd, path, flags): without OPEN_TREE_CLONE an O_PATH open of
/// the path; with it (CAP_SYS_ADMIN: EPERM) a detached copy of the mount
/// there (AT_RECURSIVE: with the mounts below it), of a mount that is in a
/// namespace (an unmounted one is EINVAL). AT_RECURSIVE alone is EINVAL.
func sysOpenTree(_ t: Task, _ a: Args) -> Int {
    let CLONE: UInt32 = 1, AT_RECURSIVE: UInt32 = 0x8000, AT_NO_AUTOMOUNT: UInt32 = 0x800
    let flags = a.uint(2)
    let known = CLONE | UInt32(O_CLOEXEC) | UInt32(AT_EMPTY_PATH_) | AT_NO_AUTOMOUNT | AT_RECURSIVE | UInt32(AT_SYMLINK_NOFOLLOW_)
    if flags & ~known != 0 { return err(EINVAL) }
    if flags & (AT_RECURSIVE | CLONE) == AT_RECURSIVE { return err(EINVAL) }
    if flags & CLONE != 0 && !mayMount(t) { return err(EPERM) }
    let p: Path
    switch t.lookup(a.int(0), a.a1, follow: flags & UInt32(AT_SYMLINK_NOFOLLOW_) == 0, emptyOK: flags & UInt32(AT_EMPTY_PATH_) != 0) {
    case .success(let r): p = r
    case .failure(let e): return e.ret
    }
    let cloexec = flags & UInt32(O_CLOEXEC) != 0
    if flags & CLONE == 0 { return installNew(t, PathFD(flags: O_PATH, path: p), cloexec: cloexec) }
    let vfs = t.kernel.vfs
    vfs.pruneDeadNamespaces()
    guard p.mount.ns != nil, vfs.mounts.contains(where: { $0 === p.mount }), !p.mount.unbindable else { return err(EINVAL) }
    let m = Mount(root: Dentry(name: [47], parent: nil, inode: p.inode), mountpoint: nil, parent: nil, fsType: p.mount.fsType, source: p.mount.source)
    m.flags = p.mount.flags; m.readOnly = p.mount.readOnly; m.superOptions = p.mount.superOptions
    m.rootPath = p.mount.rootPath
    let tree = MountNamespace(root: m, owner: t.creds.userNS, inum: newNamespaceInode())
    m.ns = tree
    vfs.mounts.append(m)
    if flags & AT_RECURSIVE != 0 { copySubmounts(vfs, under: p, onto: m) }
    return installNew(t, MountTreeFD(tree, flags: 0), cloexec: cloexec)
}

/// move_mount(from_dfd, from_path, to_dfd, to_path, flags): attaches a
/// detached tree at the target (its mounts join the target's namespace),
/// or moves a mount of the caller's namespace as MS_MOVE does. The source
/// must be a mount's root, and either in the caller's namespace or the
/// root of a detached tree (EINVAL); empty paths need the *_EMPTY_PATH
/// flags (ENOENT).
func sysMoveMount(_ t: Task, _ a: Args) -> Int {
    let F_SYMLINKS: UInt32 = 1, F_EMPTY_PATH: UInt32 = 4, T_SYMLINKS: UInt32 = 0x10, T_EMPTY_PATH: UInt32 = 0x40
    let flags = a.uint(4)
    if flags & ~UInt32(0x77) != 0 { return err(EINVAL) }
    if !mayMount(t) { return err(EPERM) }
    let src: Path, target: Path
    switch t.lookup(a.int(0), a.a1, follow: flags & F_SYMLINKS != 0, emptyOK: flags & F_EMPTY_PATH != 0) {
    case .success(let p): src = p
    case .failure(let e): return e.ret
    }
    let vfs = t.kernel.vfs
    switch t.lookup(a.int(2), a.a3, follow: flags & T_SYMLINKS != 0, emptyOK: flags & T_EMPTY_PATH != 0) {
    case .success(let p): target = vfs.crossMounts(p)
    case .failure(let e): return e.ret
    }
    vfs.pruneDeadNamespaces()
    let m = src.mount
    guard src.dentry === m.root, let ns = m.ns, !m.locked else { return err(EINVAL) }
    guard let targetNS = target.mount.ns, targetNS === t.fs.ns || targetNS.root.parent == nil && !isProcessNamespace(t.kernel, targetNS) else {
        return err(EINVAL)
    }
    if src.inode.isDir != target.inode.isDir { return err(ENOTDIR) }
    var p: Mount? = target.mount
    while let q = p { if q === m { return err(ELOOP) }; p = q.parent }
    if ns.root === m && m.parent == nil && !isProcessNamespace(t.kernel, ns) {
        // A detached tree: attached whole, its mounts now the target's.
        for x in vfs.subtree(of: m) { x.ns = targetNS }
        vfs.attach(m, at: target)
        propagateMount(vfs, m, at: target)
        return 0
    }
    guard ns === t.fs.ns, let parent = m.parent, m.namespaceID == nil else { return err(EINVAL) }
    if parent.peerGroup != 0 { return err(EINVAL) }
    vfs.detach(m)
    vfs.attach(m, at: target)
    propagateMount(vfs, m, at: target)
    return 0
}

/// Whether some process is in `ns` (detached trees have none).
private func isProcessNamespace(_ k: Kernel, _ ns: MountNamespace) -> Bool {
    if ns === k.vfs.initialNS { return true }
    return k.tasks.values.contains { $0.fs.ns === ns }
}

/// Installs a new description at the lowest free descriptor (-EMFILE past the limit).
private func installNew(_ t: Task, _ f: FileDescription, cloexec: Bool) -> Int {
    let fd = t.fds.install(f, cloexec: cloexec, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

/// fspick(dfd, path, flags): an fs context for the file system of the
/// mount whose root is at the path, to reconfigure (fsconfig's
/// FSCONFIG_CMD_RECONFIGURE). Linux's order: CAP_SYS_ADMIN (EPERM), the
/// flags (EINVAL), the lookup, a mount's root (EINVAL).
func sysFspick(_ t: Task, _ a: Args) -> Int {
    let CLOEXEC: UInt32 = 1, SYMLINK_NOFOLLOW: UInt32 = 2, NO_AUTOMOUNT: UInt32 = 4, EMPTY_PATH: UInt32 = 8
    if !mayMount(t) { return err(EPERM) }
    let flags = a.uint(2)
    if flags & ~(CLOEXEC | SYMLINK_NOFOLLOW | NO_AUTOMOUNT | EMPTY_PATH) != 0 { return err(EINVAL) }
    let p: Path
    switch t.lookup(a.int(0), a.a1, follow: flags & SYMLINK_NOFOLLOW == 0, emptyOK: flags & EMPTY_PATH != 0) {
    case .success(let r): p = t.kernel.vfs.crossMounts(r)
    case .failure(let e): return e.ret
    }
    guard p.dentry === p.mount.root else { return err(EINVAL) }
    return installNew(t, FSContextFD(fsType: p.mount.fsType, flags: O_RDWR, picked: p.mount), cloexec: flags & CLOEXEC != 0)
}

/// The superblock flags every file system takes (vfs_parse_sb_flag).
private let superblockFlags: Set<String> = ["sync", "async", "dirsync", "lazytime", "nolazytime", "mand", "nomand", "silent", "i_version", "posixacl"]

/// FSCONFIG_CMD_RECONFIGURE of an fspick context: the options given since
/// the last one change the picked mount's file system (reconfigure_super):
/// "ro"/"rw" every mount of it (Moat keeps read-only per mount), tmpfs's
/// size=, nr_blocks= and nr_inodes= its limits (EINVAL below what it
/// holds; mode=, uid= and gid= are accepted and change nothing, as on
/// Linux); an option tmpfs does not know is EINVAL.
private func reconfigure(_ t: Task, _ f: FSContextFD, _ m: Mount) -> Int {
    let options = f.options.filter { !superblockFlags.contains(String($0.split(separator: "=").first ?? "")) }
    defer { f.options = []; f.readOnlyGiven = false }
    let root = m.root.inode
    if let tr = root as? TmpfsInode, m.fsType == "tmpfs" {
        guard let o = TmpfsOptions(options.joined(separator: ","), uid: 0, gid: 0) else { return err(EINVAL) }
        // The limits are the file system's (every inode holds the one
        // TmpfsBlocks), never set below what is held (shmem_reconfigure).
        // A tmpfs made without one (Linux's default is half the memory)
        // gets one now, charged with what its files hold.
        if o.pagesGiven || o.inodesGiven {
            if tr.blocks == nil && o.pages == nil && o.inodes == nil { return 0 }
            let b = tr.blocks ?? TmpfsBlocks(max: nil)
            let held = tr.blocks == nil ? heldPages(tr) : nil
            let used = held.map { $0.reduce(0) { $0 + $1.pages.count } } ?? b.used
            if o.pagesGiven, let n = o.pages, n < used { return err(EINVAL) }
            if let h = held {
                for (i, pages) in h { i.blocks = b; i.pages = pages }
                b.used = used
            }
            if o.pagesGiven { b.max = o.pages }
            if o.inodesGiven { b.maxInodes = o.inodes }
            var parts: [String] = []
            if let p = b.max { parts.append("size=\(p * 4)k") }
            if let n = b.maxInodes { parts.append("nr_inodes=\(n)") }
            let rest = m.superOptions.split(separator: ",").filter { !$0.hasPrefix("size=") && !$0.hasPrefix("nr_inodes=") }.map(String.init)
            let text = (parts + rest).joined(separator: ",")
            for x in t.kernel.vfs.mounts where x.root.inode.dev == root.dev && x.fsType == "tmpfs" { x.superOptions = text }
        }
    }
    if f.readOnlyGiven {
        let dev = root.dev
        for x in t.kernel.vfs.mounts where x.root.inode.dev == dev && x.fsType == m.fsType {
            x.readOnly = f.readOnly
            x.ns?.event += 1
        }
    }
    return 0
}

/// mount_setattr(dfd, path, flags, attr, size): changes the per-mount flags
/// (struct mount_attr's attr_set and attr_clr: MOUNT_ATTR_*) and the
/// propagation type of the mount whose root is at the path, with
/// AT_RECURSIVE of every mount below it too, all or none. Linux's order:
/// the flags (EINVAL), the size (E2BIG past a page, EINVAL below the first
/// version's 32 bytes), CAP_SYS_ADMIN (EPERM), the copy (EFAULT; E2BIG for
/// unknown nonzero fields), nothing asked (0, no lookup), the attributes'
/// validity (EINVAL), MOUNT_ATTR_IDMAP's user namespace (EBADF, EINVAL,
/// EPERM), the lookup, a mount's root of the caller's namespace or a
/// detached tree (EINVAL), locked flags (EPERM). Idmapped mounts are not
/// offered: none of Moat's file systems takes one (EINVAL, as Linux for a
/// file system without FS_ALLOW_IDMAP).
func sysMountSetattr(_ t: Task, _ a: Args) -> Int {
    let AT_RECURSIVE: UInt32 = 0x8000, AT_NO_AUTOMOUNT: UInt32 = 0x800
    let IDMAP: UInt64 = 0x0010_0000, ATIME: UInt64 = 0x70
    let flags = a.uint(2)
    if flags & ~(UInt32(AT_EMPTY_PATH_) | AT_RECURSIVE | UInt32(AT_SYMLINK_NOFOLLOW_) | AT_NO_AUTOMOUNT) != 0 { return err(EINVAL) }
    let size = a.a4
    if size > 4096 { return err(E2BIG) }
    if size < 32 { return err(EINVAL) }
    if !mayMount(t) { return err(EPERM) }
    guard let raw = t.copyIn(a.a3, Int(size)) else { return err(EFAULT) }
    if raw[32...].contains(where: { $0 != 0 }) { return err(E2BIG) }
    func u64(_ o: Int) -> UInt64 { raw[o..<o + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    let set = u64(0), clr = u64(8), propagation = u64(16), usernsFD = u64(24)
    if set == 0 && clr == 0 && propagation == 0 { return 0 }
    if propagation & ~MountFlags.propagation != 0 || propagation.nonzeroBitCount > 1 { return err(EINVAL) }
    let valid: UInt64 = 0x1 | 0x2 | 0x4 | 0x8 | ATIME | 0x80 | IDMAP | 0x0020_0000
    if (set | clr) & ~valid != 0 { return err(EINVAL) }
    guard var setFlags = mountAttrBits(set), var clrFlags = mountAttrBits(clr) else { return err(EINVAL) }
    if clr & ATIME != 0 {
        // The atime rule is one value: cleared whole, then set to one.
        if clr & ATIME != ATIME { return err(EINVAL) }
        clrFlags |= MountFlags.atimeRule
        switch set & ATIME {
        case 0: setFlags |= MountFlags.relatime
        case 0x10: setFlags |= MountFlags.noatime
        case 0x20: break
        default: return err(EINVAL)
        }
    } else if set & ATIME != 0 {
        return err(EINVAL)
    }
    if (set | clr) & IDMAP != 0 {
        if clr & IDMAP != 0 || usernsFD > UInt64(Int32.max) { return err(EINVAL) }
        guard let f = t.fds.get(Int32(usernsFD)) else { return err(EBADF) }
        guard let nsf = f as? NamespaceFile, case .user(let ns) = nsf.kind else { return err(EINVAL) }
        if ns === UserNamespace.root || !t.creds.capable(Cap.sysAdmin, in: ns) { return err(EPERM) }
    }
    let p: Path
    switch t.lookup(a.int(0), a.a1, follow: flags & UInt32(AT_SYMLINK_NOFOLLOW_) == 0, emptyOK: flags & UInt32(AT_EMPTY_PATH_) != 0) {
    case .success(let r): p = t.kernel.vfs.crossMounts(r)
    case .failure(let e): return e.ret
    }
    let vfs = t.kernel.vfs
    vfs.pruneDeadNamespaces()
    let top = p.mount
    guard p.dentry === top.root, let ns = top.ns, vfs.mounts.contains(where: { $0 === top }) else { return err(EINVAL) }
    if top.parent != nil ? ns !== t.fs.ns : (ns.root !== top || isProcessNamespace(t.kernel, ns)) { return err(EINVAL) }
    if set & IDMAP != 0 { return err(EINVAL) }
    let mounts = flags & AT_RECURSIVE != 0 ? vfs.subtree(of: top) : [top]
    // Every mount's new flags first: a locked flag anywhere changes nothing.
    var changes: [(Mount, UInt64, Bool)] = []
    for m in mounts {
        let old = m.flags | (m.readOnly ? MountFlags.rdonly : 0)
        let new = (old & ~clrFlags) | setFlags
        if m.locked || m.lockedFlags != 0 {
            let kept = m.lockedFlags
            for bit in [MountFlags.rdonly, MountFlags.nosuid, MountFlags.nodev, MountFlags.noexec] where kept & bit != 0 && new & bit == 0 { return err(EPERM) }
            if kept & MountFlags.atimeRule != new & MountFlags.atimeRule { return err(EPERM) }
        }
        changes.append((m, new & ~MountFlags.rdonly, new & MountFlags.rdonly != 0))
    }
    if setFlags | clrFlags != 0 {
        for (m, f, ro) in changes { m.flags = f; m.readOnly = ro }
        top.ns?.event += 1
    }
    if propagation != 0 { setPropagation(vfs, mounts, propagation) }
    return 0
}

/// MOUNT_ATTR_* bits but the atime value as mount(2)'s per-mount flags and
/// MS_RDONLY.
private func mountAttrBits(_ a: UInt64) -> UInt64? {
    var f: UInt64 = 0
    if a & 0x1 != 0 { f |= MountFlags.rdonly }
    if a & 0x2 != 0 { f |= MountFlags.nosuid }
    if a & 0x4 != 0 { f |= MountFlags.nodev }
    if a & 0x8 != 0 { f |= MountFlags.noexec }
    if a & 0x80 != 0 { f |= MountFlags.nodiratime }
    if a & 0x0020_0000 != 0 { f |= MountFlags.nosymfollow }
    return f
}

/// The inodes of a tmpfs from `root` down, each with the pages its
/// contents hold (a regular file's up to its size, a long symlink's one),
/// for a limit given to a tmpfs that had none.
private func heldPages(_ root: TmpfsInode) -> [(TmpfsInode, pages: Set<Int>)] {
    var out: [(TmpfsInode, pages: Set<Int>)] = []
    var seen = Set<ObjectIdentifier>()
    var stack = [root]
    while let i = stack.popLast() {
        guard seen.insert(ObjectIdentifier(i)).inserted else { continue }
        var pages = Set<Int>()
        if i.isRegular { pages = Set(0..<(i.fileLength + 4095) / 4096) }
        else if i.isSymlink && i.target.count >= 128 { pages = [0] }
        out.append((i, pages))
        for case let c as TmpfsInode in i.entries.values { stack.append(c) }
    }
    return out
}
