// memfd_create, O_TMPFILE, openat2 and extended attributes.

import CMoat
import Glibc

/// The file system types /proc/filesystems lists, in its order; the
/// legacy sysfs(2) call numbers them from 0 in the same order.
let presentedFileSystems = ["proc", "tmpfs", "devtmpfs", "9p", "cgroup2"]

func registerFileExtras(_ t: SyscallTable) {
    t[139] = { t, a in                                                        // sysfs
        switch a.int(0) {
        case 1:                                                               // name -> index
            let b: [UInt8]
            switch t.readPath(a.a1) { case .success(let s): b = s; case .failure(let e): return e.ret }
            return presentedFileSystems.firstIndex(of: String(decoding: b, as: UTF8.self)) ?? err(EINVAL)
        case 2:                                                               // index -> name
            let i = a.a1
            guard i < UInt64(presentedFileSystems.count) else { return err(EINVAL) }
            return t.copyOut(a.a2, Array(presentedFileSystems[Int(i)].utf8) + [0]) ? 0 : err(EFAULT)
        case 3: return presentedFileSystems.count
        default: return err(EINVAL)
        }
    }
    t[319] = sysMemfdCreate
    t[437] = sysOpenat2
    for (nr, follow) in [(188, true), (189, false)] {                                   // setxattr, lsetxattr
        t[nr] = { t, a in xattrTarget(t, a, follow) { sysSetxattr(t, $0, a.a1, a.a2, a.long(3), a.int(4)) } }
    }
    t[190] = { t, a in xattrFD(t, a) { sysSetxattr(t, $0, a.a1, a.a2, a.long(3), a.int(4)) } }   // fsetxattr
    for (nr, follow) in [(191, true), (192, false)] {                                   // getxattr, lgetxattr
        t[nr] = { t, a in xattrTarget(t, a, follow) { sysGetxattr(t, $0, a.a1, a.a2, a.long(3)) } }
    }
    t[193] = { t, a in xattrFD(t, a) { sysGetxattr(t, $0, a.a1, a.a2, a.long(3)) } }      // fgetxattr
    for (nr, follow) in [(194, true), (195, false)] {                                   // listxattr, llistxattr
        t[nr] = { t, a in xattrTarget(t, a, follow) { sysListxattr(t, $0, a.a1, a.long(2)) } }
    }
    t[196] = { t, a in xattrFD(t, a) { sysListxattr(t, $0, a.a1, a.long(2)) } }          // flistxattr
    for (nr, follow) in [(197, true), (198, false)] {                                   // removexattr, lremovexattr
        t[nr] = { t, a in xattrTarget(t, a, follow) { sysRemovexattr(t, $0, a.a1) } }
    }
    t[199] = { t, a in xattrFD(t, a) { sysRemovexattr(t, $0, a.a1) } }                   // fremovexattr
}

// MARK: - memfd_create

let F_SEAL_SEAL_: UInt32 = 1, F_SEAL_SHRINK_: UInt32 = 2, F_SEAL_GROW_: UInt32 = 4
let F_SEAL_WRITE_: UInt32 = 8, F_SEAL_FUTURE_WRITE_: UInt32 = 0x10, F_SEAL_EXEC_: UInt32 = 0x20

func sysMemfdCreate(_ t: Task, _ a: Args) -> Int {
    let flags = a.uint(1)
    let MFD_CLOEXEC: UInt32 = 1, MFD_ALLOW_SEALING: UInt32 = 2, MFD_HUGETLB: UInt32 = 4
    let MFD_NOEXEC_SEAL: UInt32 = 8, MFD_EXEC: UInt32 = 0x10
    // Huge page size bits (26..31) are meaningful only with MFD_HUGETLB.
    let known = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC
    if flags & ~known != 0 && (flags & MFD_HUGETLB == 0 || flags & ~(known | 0xfc00_0000) != 0) { return err(EINVAL) }
    if flags & MFD_EXEC != 0 && flags & MFD_NOEXEC_SEAL != 0 { return err(EINVAL) }
    let (n, tooLong) = t.copyInString(a.a0, max: 249)
    if tooLong { return err(EINVAL) }
    guard let name = n else { return err(EFAULT) }
    let k = t.kernel
    let node = TmpfsInode(mode: S_IFREG_ | (flags & MFD_NOEXEC_SEAL != 0 ? 0o666 : 0o777), dev: k.anonMount.root.inode.dev,
                          uid: t.creds.fsuid, gid: t.creds.fsgid)
    node.nlink = 0
    node.seals = flags & (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL) != 0 ? 0 : F_SEAL_SEAL_
    if flags & MFD_NOEXEC_SEAL != 0 { node.seals |= F_SEAL_EXEC_ }
    let d = Dentry(name: Array("memfd:".utf8) + name, parent: k.anonMount.root, inode: node)
    d.dead = true
    let f = TmpfsFileFD(node: node, flags: O_RDWR | O_LARGEFILE_)   // as Linux's memfd_create
    f.path = Path(mount: k.anonMount, dentry: d)
    let fd = t.fds.install(f, cloexec: flags & MFD_CLOEXEC != 0, limit: fdLimit(t))
    if fd < 0 { f.release() }
    return fd
}

/// fcntl F_ADD_SEALS / F_GET_SEALS.
func sysSeals(_ t: Task, _ f: FileDescription, add: UInt32?) -> Int {
    guard let tf = f as? TmpfsFileFD else { return err(EINVAL) }
    let node = tf.node
    guard let bits = add else { return Int(node.seals) }
    if bits & ~UInt32(0x3f) != 0 { return err(EINVAL) }
    if !f.writable { return err(EPERM) }
    if node.seals & F_SEAL_SEAL_ != 0 { return err(EPERM) }
    // F_SEAL_WRITE while a shared mapping that may write exists (in any
    // process): EBUSY, and none of the seals asked for is added.
    if bits & F_SEAL_WRITE_ != 0 && node.seals & F_SEAL_WRITE_ == 0 && writablyMapped(t.kernel, node) { return err(EBUSY) }
    node.seals |= bits
    return 0
}

/// Whether some address space holds a shared mapping of `node` that may
/// write (Linux's mapping_writably_mapped: VM_SHARED with VM_MAYWRITE).
private func writablyMapped(_ k: Kernel, _ node: TmpfsInode) -> Bool {
    guard node.memfd >= 0 else { return false }       // mapping moves a file to its memfd
    let id = MemoryManager.fileShareID(node.memfd)
    var seen = Set<ObjectIdentifier>()
    for tg in k.threadGroups.values {
        for task in tg.tasks where seen.insert(ObjectIdentifier(task.mm)).inserted {
            if task.mm.vmas.contains(where: { $0.shareID == id && $0.flags & MAP_SHARED != 0 && $0.mayWrite }) { return true }
        }
    }
    return false
}

// MARK: - O_TMPFILE

/// open(dir, O_TMPFILE): an unnamed regular file in `dir`'s file system,
/// linkable later with linkat unless O_EXCL was given.
func openTmpfile(_ t: Task, _ dir: Path, _ flags: Int32, _ mode: UInt32) -> Int {
    let acc = flags & O_ACCMODE
    if acc != O_WRONLY && acc != O_RDWR { return err(EINVAL) }
    if !dir.inode.isDir { return err(ENOTDIR) }
    if dir.mount.readOnly { return err(EROFS) }
    if !t.mayAccess(dir.inode, 3) { return err(EACCES) }
    let (cm, inherited) = creationMode(t, dir.inode, mode, isDir: false)
    let (m, g) = newOwnership(t, dir.inode, cm, isDir: false)
    let ino: Inode
    switch dir.inode.createTmpfile(mode: m, uid: t.creds.fsuid, gid: g, exclusive: flags & O_EXCL != 0) {
    case .success(let i): ino = i
    case .failure(let e): return e.ret
    }
    applyInheritedACL(t.kernel, ino, inherited)
    ino.linkableWhenUnlinked = flags & O_EXCL == 0
    let d = Dentry(name: Array("#\(ino.ino)".utf8), parent: dir.dentry, inode: ino)
    d.dead = true
    let file: FileDescription
    switch ino.open(t, flags: flags & ~(O_TMPFILE_ | O_CREAT | O_TRUNC)) {
    case .success(let f): file = f
    case .failure(let e): return e.ret
    }
    file.path = Path(mount: dir.mount, dentry: d)
    file.flags = flags & ~(O_TMPFILE_ | O_EXCL | O_CLOEXEC) | O_LARGEFILE_
    let fd = t.fds.install(file, cloexec: flags & O_CLOEXEC != 0, limit: fdLimit(t))
    if fd < 0 && file.refs == 0 { file.release() }
    return fd
}

let O_LARGEFILE_: Int32 = 0o100000

// MARK: - openat2

func sysOpenat2(_ t: Task, _ a: Args) -> Int {
    let size = a.long(3)
    if size < 24 { return err(EINVAL) }
    if size > 4096 { return err(E2BIG) }
    guard let how = t.copyIn(a.a2, size) else { return err(EFAULT) }
    // Fields a newer kernel knows and we do not must be zero.
    if how[24...].contains(where: { $0 != 0 }) { return err(E2BIG) }
    let flags = get64(how, 0), mode = get64(how, 8), resolve = get64(how, 16)
    let validFlags: UInt64 = 0o37777777 & ~UInt64(0o40)  // every O_* flag Linux defines
    if flags & ~validFlags != 0 || flags > UInt64(UInt32.max) { return err(EINVAL) }
    let f = Int32(truncatingIfNeeded: flags)
    let creates = f & O_CREAT != 0 || f & O_TMPFILE_ == O_TMPFILE_
    if (!creates && mode != 0) || mode & ~0o7777 != 0 { return err(EINVAL) }
    if resolve & ~UInt64(0x3f) != 0 { return err(EINVAL) }
    if resolve & VFS.Walk.beneath != 0 && resolve & VFS.Walk.inRoot != 0 { return err(EINVAL) }
    // RESOLVE_CACHED (0x20) asks for a lookup without I/O: never promised here.
    if resolve & 0x20 != 0 { return err(EAGAIN) }
    return sysOpenat(t, a.int(0), a.a1, f, UInt32(mode), resolve: resolve)
}

// MARK: - Extended attributes
//
// Where they live:
//   - user.* on a file of a write-through Gofer tree (--no-overlay, bind
//     mounts): on the host file itself, through the Gofer (get/set/list/
//     removexattr requests), so they outlast the sandbox like its data.
//   - user.* on a file of the overlay's lower (image) layer: read from the
//     host through the Gofer until the first change; that change copies the
//     file up and its user.* attributes into Sentry memory, where they stay.
//   - everything else (user.* on tmpfs, overlay upper files, procfs...; and
//     trusted.*, security.* on every file system): Sentry memory, per file
//     (device and inode number), for as long as the sandbox lives. These
//     namespaces never reach the host on purpose: a sandbox's root holds an
//     emulated CAP_SYS_ADMIN/CAP_SETFCAP, and trusted.* or
//     security.capability on a host file would mean something to the host
//     kernel. The Gofer refuses any name outside user.* (EOPNOTSUPP).
// The checks (name, size, namespace, permission) are made here, as Linux
// makes them, before any of the three is asked.

struct XattrKey: Hashable { var dev: UInt64; var ino: UInt64 }

final class XattrStore {
    var values: [XattrKey: [[UInt8]: [UInt8]]] = [:]
    /// Names in the order they were set (listxattr order).
    var order: [XattrKey: [[UInt8]]] = [:]
    /// Files whose user.* attributes were copied up from a lower (Gofer)
    /// file: memory is authoritative for them from then on.
    var copiedUp: Set<XattrKey> = []
    /// POSIX ACLs (PosixACL.swift), decoded; `anyACL` stays false until the
    /// first one is stored, so permission checks skip the lookup until then.
    var acls: [XattrKey: [ACLEntry]] = [:]
    var defaultACLs: [XattrKey: [ACLEntry]] = [:]
    static var anyACL = false
}

let XATTR_SIZE_MAX_ = 65536, XATTR_LIST_MAX_ = 65536

private func xattrTarget(_ t: Task, _ a: Args, _ follow: Bool, _ then: (Path) -> Int) -> Int {
    switch t.lookup(AT_FDCWD_, a.a0, follow: follow) {
    case .success(let p): return then(p)
    case .failure(let e): return e.ret
    }
}

private func xattrFD(_ t: Task, _ a: Args, _ then: (Path) -> Int) -> Int {
    guard let f = t.fds.getIO(a.int(0)) else { return err(EBADF) }
    guard let p = f.path else { return err(EOPNOTSUPP) }
    return then(p)
}

private let userPrefix = Array("user.".utf8)
private let trustedPrefix = Array("trusted.".utf8)
private let securityPrefix = Array("security.".utf8)

/// Reads an attribute name: ERANGE when empty or longer than 255 bytes.
private func readXattrName(_ t: Task, _ addr: UInt64) -> Result<[UInt8], Errno> {
    let (n, tooLong) = t.copyInString(addr, max: 255)
    if tooLong { return .failure(Errno(ERANGE)) }
    guard let name = n else { return .failure(Errno(EFAULT)) }
    if name.isEmpty { return .failure(Errno(ERANGE)) }
    return .success(name)
}

/// Linux's namespace and permission rules for an attribute of `ino`
/// (`write`: set or remove). nil when allowed.
private func xattrDenied(_ t: Task, _ name: [UInt8], _ ino: Inode, write: Bool) -> Errno? {
    if name.starts(with: userPrefix) {
        if name.count == userPrefix.count { return Errno(EINVAL) }
        // Linux keeps user attributes to regular files and directories...
        if !ino.isRegular && !ino.isDir { return Errno(write ? EPERM : ENODATA) }
        // ...and, in a sticky directory, changes to its owner.
        if write && ino.isDir && ino.mode & 0o1000 != 0 && ino.uid != t.creds.fsuid && !t.creds.capable(Cap.fowner, over: ino.uid, ino.gid) {
            return Errno(EPERM)
        }
    } else if name.starts(with: trustedPrefix) {
        if name.count == trustedPrefix.count { return Errno(EINVAL) }
        if !t.creds.has(Cap.sysAdmin) { return Errno(write ? EPERM : ENODATA) }
    } else if name.starts(with: securityPrefix) {
        if name.count == securityPrefix.count { return Errno(EINVAL) }
    } else {
        return Errno(EOPNOTSUPP)   // system.* (ACLs) and unknown namespaces
    }
    return nil
}

/// File capabilities' attribute name, built once: every write looks for it.
private let securityCapabilityName = Array("security.capability".utf8)

/// Changing security.* attributes: file capabilities need CAP_SETFCAP, the
/// others CAP_SYS_ADMIN (the capability module's rule; no other LSM here).
private func securityXattrDenied(_ t: Task, _ name: [UInt8]) -> Int32? {
    guard name.starts(with: securityPrefix) else { return nil }
    let cap = name == securityCapabilityName ? Cap.setfcap : Cap.sysAdmin
    return t.creds.has(cap) ? nil : EPERM
}

private func xattrKey(_ i: Inode) -> XattrKey { XattrKey(dev: i.dev, ino: i.ino) }

/// A chown of a file that is not a directory drops its file capabilities
/// (security.capability), as Linux's ATTR_KILL_PRIV: a new owner must not
/// inherit a capability set granted for the old one.
func dropFileCapabilities(_ k: Kernel, _ i: Inode, _ a: SetAttr) {
    guard a.uid != nil || a.gid != nil, !i.isDir else { return }
    dropFileCapability(k, i)
}

/// Removes `i`'s security.capability, if it has one: on a chown (above) and
/// on every write or truncate of the file, whoever the writer is (Linux's
/// file_remove_privs asks the capability module, which kills the attribute
/// whenever it exists): changed contents must not keep privileges granted
/// for the old ones.
func dropFileCapability(_ k: Kernel, _ i: Inode) {
    if k.xattrs.values.isEmpty { return }                                 // the common case: no attribute in memory at all
    let key = xattrKey(i)
    if k.xattrs.values[key]?.removeValue(forKey: securityCapabilityName) != nil {
        k.xattrs.order[key]?.removeAll { $0 == securityCapabilityName }
    }
}

/// Where the user.* attributes of `ino` are right now.
private enum UserXattrHome {
    /// On the host file, read and written through the Gofer.
    case host(GoferInode)
    /// On the overlay's read-only lower file, until a copy-up moves them to
    /// memory (the overlay inode to copy up; nil for a bare frozen node).
    case lower(GoferInode, OverlayInode?)
    case memory
}

private func userXattrHome(_ t: Task, _ ino: Inode) -> UserXattrHome {
    if let o = ino as? OverlayInode {
        if o.upper == nil, let l = o.lower as? GoferInode { return .lower(l, o) }
        return .memory
    }
    if let g = ino as? GoferInode {
        if !g.frozen { return .host(g) }
        return t.kernel.xattrs.copiedUp.contains(xattrKey(ino)) ? .memory : .lower(g, nil)
    }
    return .memory
}

/// Copies the user.* attributes of a lower file into memory under `key`
/// (best effort: a lower file that cannot be listed has none to copy).
func copyUpUserXattrs(_ store: XattrStore, _ key: XattrKey, _ lower: GoferInode) {
    guard !store.copiedUp.contains(key) else { return }
    store.copiedUp.insert(key)
    guard case .success(let names) = lower.listUserXattrs() else { return }
    for n in names {
        guard case .success(let v) = lower.getUserXattr(n) else { continue }
        if store.values[key, default: [:]].updateValue(v, forKey: n) == nil { store.order[key, default: []].append(n) }
    }
}

/// The first change to a lower file's user.* attributes copies the file up
/// (as overlayfs does), which moves them to memory.
private func copyUpForXattr(_ t: Task, _ ino: Inode, _ lower: GoferInode, _ overlay: OverlayInode?) -> Errno? {
    if let o = overlay {
        if case .failure(let e) = o.copyUp() { return e }
    }
    copyUpUserXattrs(t.kernel.xattrs, xattrKey(ino), lower)
    return nil
}

private func sysSetxattr(_ t: Task, _ p: Path, _ nameAddr: UInt64, _ value: UInt64, _ size: Int, _ flags: Int32) -> Int {
    if flags & ~3 != 0 { return err(EINVAL) }   // both bits: EEXIST if it exists, else ENODATA
    let ino = p.inode
    let name: [UInt8]
    switch readXattrName(t, nameAddr) { case .success(let n): name = n; case .failure(let e): return e.ret }
    if size < 0 || size > XATTR_SIZE_MAX_ { return err(E2BIG) }
    guard let v = t.copyIn(value, size) else { return err(EFAULT) }
    if isACLName(name) { return aclSet(t, p, name, v) }
    if p.mount.readOnly { return err(EROFS) }
    if let e = xattrDenied(t, name, ino, write: true) { return e.ret }
    if let e = securityXattrDenied(t, name) { return err(e) }
    // Linux's xattr_permission: user.* asks for write permission on the
    // file (its owner included); trusted.* and security.* only their capability.
    if name.starts(with: userPrefix) && !t.mayAccess(ino, 2) { return err(EACCES) }
    if name.starts(with: userPrefix) {
        switch userXattrHome(t, ino) {
        case .host(let g):
            if case .failure(let e) = g.setUserXattr(name, v, flags: flags) { return e.ret }
            t.kernel.inotifyFile(p, IN_ATTRIB_)
            return 0
        case .lower(let l, let o):
            if let e = copyUpForXattr(t, ino, l, o) { return e.ret }
        case .memory:
            break
        }
    }
    let store = t.kernel.xattrs, key = xattrKey(ino)
    let exists = store.values[key]?[name] != nil
    if flags & 1 != 0 && exists { return err(EEXIST) }      // XATTR_CREATE
    if flags & 2 != 0 && !exists { return err(ENODATA) }    // XATTR_REPLACE
    store.values[key, default: [:]][name] = v
    if !exists { store.order[key, default: []].append(name) }
    t.kernel.inotifyFile(p, IN_ATTRIB_)
    return 0
}

private func sysGetxattr(_ t: Task, _ p: Path, _ nameAddr: UInt64, _ buf: UInt64, _ size: Int) -> Int {
    let name: [UInt8]
    switch readXattrName(t, nameAddr) { case .success(let n): name = n; case .failure(let e): return e.ret }
    var value: [UInt8]? = nil
    if isACLName(name) {
        switch aclGet(t, p.inode, name) { case .success(let v): value = v; case .failure(let e): return e.ret }
    }
    if value == nil, let e = xattrDenied(t, name, p.inode, write: false) { return e.ret }
    if value == nil && !t.mayAccess(p.inode, 4) { return err(EACCES) }
    if name.starts(with: userPrefix) {
        switch userXattrHome(t, p.inode) {
        case .host(let g), .lower(let g, _):
            switch g.getUserXattr(name) { case .success(let v): value = v; case .failure(let e): return e.ret }
        case .memory:
            break
        }
    }
    guard let v = value ?? t.kernel.xattrs.values[xattrKey(p.inode)]?[name] else { return err(ENODATA) }
    if size == 0 { return v.count }
    // Linux reads at most XATTR_SIZE_MAX whatever buffer it is given.
    let room = size < 0 || size > XATTR_SIZE_MAX_ ? XATTR_SIZE_MAX_ : size
    if room < v.count { return err(v.count > XATTR_SIZE_MAX_ ? E2BIG : ERANGE) }
    return t.copyOut(buf, v) ? v.count : err(EFAULT)
}

private func sysListxattr(_ t: Task, _ p: Path, _ buf: UInt64, _ size: Int) -> Int {
    var out: [UInt8] = []
    var userElsewhere = false
    switch userXattrHome(t, p.inode) {
    case .host(let g), .lower(let g, _):
        userElsewhere = true
        switch g.listUserXattrs() {
        case .success(let names): for n in names { out += n; out.append(0) }
        case .failure(let e): return e.ret
        }
    case .memory:
        break
    }
    for n in t.kernel.xattrs.order[xattrKey(p.inode)] ?? [] {
        if userElsewhere && n.starts(with: userPrefix) { continue }
        // trusted.* is listed only to those who may read it.
        if n.starts(with: trustedPrefix) && !t.creds.has(Cap.sysAdmin) { continue }
        out += n; out.append(0)
    }
    for n in t.kernel.xattrs.aclNames(p.inode) { out += n; out.append(0) }
    if size == 0 { return out.count }
    let room = size < 0 || size > XATTR_LIST_MAX_ ? XATTR_LIST_MAX_ : size
    if room < out.count { return err(out.count > XATTR_LIST_MAX_ ? E2BIG : ERANGE) }
    return t.copyOut(buf, out) ? out.count : err(EFAULT)
}

private func sysRemovexattr(_ t: Task, _ p: Path, _ nameAddr: UInt64) -> Int {
    let name: [UInt8]
    switch readXattrName(t, nameAddr) { case .success(let n): name = n; case .failure(let e): return e.ret }
    if isACLName(name) { return aclSet(t, p, name, nil) }
    if p.mount.readOnly { return err(EROFS) }
    if let e = xattrDenied(t, name, p.inode, write: true) { return e.ret }
    if let e = securityXattrDenied(t, name) { return err(e) }
    if name.starts(with: userPrefix) && !t.mayAccess(p.inode, 2) { return err(EACCES) }   // as in sysSetxattr
    if name.starts(with: userPrefix) {
        switch userXattrHome(t, p.inode) {
        case .host(let g):
            if case .failure(let e) = g.removeUserXattr(name) { return e.ret }
            t.kernel.inotifyFile(p, IN_ATTRIB_)
            return 0
        case .lower(let l, let o):
            if let e = copyUpForXattr(t, p.inode, l, o) { return e.ret }
        case .memory:
            break
        }
    }
    let store = t.kernel.xattrs, key = xattrKey(p.inode)
    if store.values[key]?.removeValue(forKey: name) == nil { return err(ENODATA) }
    store.order[key]?.removeAll { $0 == name }
    t.kernel.inotifyFile(p, IN_ATTRIB_)
    return 0
}
