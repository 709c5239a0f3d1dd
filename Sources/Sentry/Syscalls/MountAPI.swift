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
}

/// An fsopen descriptor: a file system being configured, then made
/// (FSCONFIG_CMD_CREATE), then mounted once (fsmount).
final class FSContextFD: FileDescription {
    let fsType: String
    var source: String?
    var options: [String] = []
    var readOnly = false
    var made: NewFileSystem?
    var mounted = false

    init(fsType: String, flags: Int32) {
        self.fsType = fsType
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
/// FSCONFIG_CMD_RECONFIGURE (accepted, changing nothing here). The binary,
/// path and fd parameters are none of these file systems' (EINVAL), as is
/// FSCONFIG_CMD_CREATE_EXCL (no superblock is shared to refuse).
func sysFsconfig(_ t: Task, _ a: Args) -> Int {
    let SET_FLAG: UInt32 = 0, SET_STRING: UInt32 = 1, CMD_CREATE: UInt32 = 6, CMD_RECONFIGURE: UInt32 = 7
    guard let any = t.fds.get(a.int(0)) else { return err(EBADF) }
    guard let f = any as? FSContextFD else { return err(EINVAL) }
    let cmd = a.uint(1)
    func string(_ addr: UInt64) -> String? { addr == 0 ? nil : (try? t.readPath(addr).get()).map { String(decoding: $0, as: UTF8.self) } }
    switch cmd {
    case SET_FLAG:
        guard let key = string(a.a2), a.a3 == 0, a.int(4) == 0 else { return err(EINVAL) }
        switch key {
        case "ro": f.readOnly = true
        case "rw": f.readOnly = false
        default: f.options.append(key)
        }
        return 0
    case SET_STRING:
        guard let key = string(a.a2), let value = string(a.a3), a.int(4) == 0 else { return err(EINVAL) }
        if key == "source" {
            if f.source != nil { return err(EINVAL) }
            f.source = value
        } else {
            f.options.append(key + "=" + value)
        }
        return 0
    case CMD_CREATE:
        if f.made != nil { return err(EBUSY) }
        switch newFileSystem(t, f.fsType, f.options.joined(separator: ",")) {
        case .success(var fs):
            fs.readOnly = fs.readOnly || f.readOnly
            f.made = fs
            return 0
        case .failure(let e): return e.ret
        }
    case CMD_RECONFIGURE:
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
        return 0
    }
    guard ns === t.fs.ns, let parent = m.parent, m.namespaceID == nil else { return err(EINVAL) }
    if parent.peerGroup != 0 { return err(EINVAL) }
    vfs.detach(m)
    vfs.attach(m, at: target)
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
