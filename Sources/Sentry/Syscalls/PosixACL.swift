import Glibc
import GoferProtocol

// MARK: - POSIX ACLs
//
// system.posix_acl_access and system.posix_acl_default, in the Linux xattr
// format: a 4-byte version (2), then 8-byte entries {u16 tag, u16 perm,
// u32 id}. They live in Sentry memory (XattrStore.acls/defaultACLs, per
// device and inode number) on the file systems the Sentry keeps: tmpfs,
// the overlay (a lower file's key is its overlay key) and frozen image
// files. Host-backed files (write-through Gofer trees: --no-overlay, the
// OCI runtime's default root) keep theirs on the host file, through the
// Gofer's getacl/setacl (Gofer/XattrOps.swift says why that is safe): ids
// go as kernel ids, which are host ids, translated as a chown's; the host
// kernel applies a default ACL to files the Gofer creates and rewrites the
// mask on chmod, and the Sentry computes the same (creationMode,
// aclChmod) and caches the host's ACLs in the GoferInode for permission
// checks. Pseudo file systems refuse ACLs (EOPNOTSUPP), so an ACL is never
// stored where it would not be enforced. An access ACL and the mode stay in sync as in
// Linux: setting it sets the owner, group (the mask, or GROUP_OBJ) and
// other bits; chmod sets USER_OBJ, MASK (or GROUP_OBJ) and OTHER; an ACL
// of the three base entries only is a mode and is not stored.

let aclAccessName = Array("system.posix_acl_access".utf8)
let aclDefaultName = Array("system.posix_acl_default".utf8)

struct ACLEntry: Equatable {
    var tag: UInt16
    var perm: UInt16
    var id: UInt32
}

let ACL_USER_OBJ_: UInt16 = 0x01, ACL_USER_: UInt16 = 0x02, ACL_GROUP_OBJ_: UInt16 = 0x04
let ACL_GROUP_: UInt16 = 0x08, ACL_MASK_: UInt16 = 0x10, ACL_OTHER_: UInt16 = 0x20
private let aclUndefinedID: UInt32 = 0xffff_ffff

func isACLName(_ name: [UInt8]) -> Bool { name == aclAccessName || name == aclDefaultName }

/// Decodes an xattr value: nil entries for an empty value or a bare header
/// (which remove the ACL); EINVAL for a short header, a size that is not
/// whole entries, an unknown tag or an invalid id; EOPNOTSUPP for another
/// version (Linux's posix_acl_from_xattr).
private func decodeACL(_ v: [UInt8]) -> Result<[ACLEntry]?, Errno> {
    if v.isEmpty { return .success(nil) }
    if v.count < 4 { return .failure(Errno(EINVAL)) }
    func u16(_ o: Int) -> UInt16 { UInt16(v[o]) | UInt16(v[o + 1]) << 8 }
    func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
    if u32(0) != 2 { return .failure(Errno(EOPNOTSUPP)) }
    if (v.count - 4) % 8 != 0 { return .failure(Errno(EINVAL)) }
    if v.count == 4 { return .success(nil) }
    var out: [ACLEntry] = []
    for o in stride(from: 4, to: v.count, by: 8) {
        var e = ACLEntry(tag: u16(o), perm: u16(o + 2), id: u32(o + 4))
        switch e.tag {
        case ACL_USER_OBJ_, ACL_GROUP_OBJ_, ACL_MASK_, ACL_OTHER_: e.id = aclUndefinedID
        case ACL_USER_, ACL_GROUP_: if e.id == aclUndefinedID { return .failure(Errno(EINVAL)) }
        default: return .failure(Errno(EINVAL))
        }
        out.append(e)
    }
    return .success(out)
}

/// Linux's posix_acl_valid: permissions within rwx; entries in the order
/// USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK, OTHER, each base entry once,
/// and a MASK whenever a named entry exists. Repeated ids are allowed.
private func validACL(_ es: [ACLEntry]) -> Bool {
    enum State { case userObj, user, group, other, done }
    var state = State.userObj, needsMask = false
    for e in es {
        if e.perm & ~7 != 0 { return false }
        switch e.tag {
        case ACL_USER_OBJ_: guard state == .userObj else { return false }; state = .user
        case ACL_USER_: guard state == .user else { return false }; needsMask = true
        case ACL_GROUP_OBJ_: guard state == .user else { return false }; state = .group
        case ACL_GROUP_: guard state == .group else { return false }; needsMask = true
        case ACL_MASK_: guard state == .group else { return false }; state = .other
        case ACL_OTHER_:
            guard state == .other || (state == .group && !needsMask) else { return false }
            state = .done
        default: return false
        }
    }
    return state == .done
}

func encodeACL(_ es: [ACLEntry]) -> [UInt8] {
    var out: [UInt8] = [2, 0, 0, 0]
    for e in es {
        out += [UInt8(e.tag & 0xff), UInt8(e.tag >> 8), UInt8(e.perm & 0xff), UInt8(e.perm >> 8)]
        out += [UInt8(e.id & 0xff), UInt8(e.id >> 8 & 0xff), UInt8(e.id >> 16 & 0xff), UInt8(e.id >> 24)]
    }
    return out
}

/// A value the host returned through the Gofer: its entries (none for an
/// empty value), or nil when it is not a valid ACL.
func decodeHostACL(_ v: [UInt8]) -> [ACLEntry]? {
    guard case .success(let es) = decodeACL(v) else { return nil }
    guard let es else { return [] }
    return validACL(es) ? es : nil
}

/// A file whose ACLs live on the host: a write-through Gofer file.
func hostACLInode(_ i: Inode) -> GoferInode? {
    guard let g = i as? GoferInode, !g.frozen else { return nil }
    return g
}

/// The rwx bits an ACL gives the mode, and whether it says more than a mode
/// can (named entries or a mask: Linux's posix_acl_equiv_mode).
private func aclModeBits(_ es: [ACLEntry]) -> (bits: UInt32, extended: Bool) {
    var bits: UInt32 = 0, mask: UInt32? = nil, extended = false
    for e in es {
        let p = UInt32(e.perm)
        switch e.tag {
        case ACL_USER_OBJ_: bits |= p << 6
        case ACL_GROUP_OBJ_: bits |= p << 3
        case ACL_OTHER_: bits |= p
        case ACL_MASK_: mask = p; extended = true
        default: extended = true
        }
    }
    if let m = mask { bits = bits & ~0o070 | m << 3 }
    return (bits, extended)
}

private func aclKey(_ i: Inode) -> XattrKey { XattrKey(dev: i.dev, ino: i.ino) }

/// Whether `i` is on a file system whose ACLs the Sentry keeps and enforces.
private func aclCapable(_ i: Inode) -> Bool {
    if i is TmpfsInode || i is OverlayInode { return true }
    if let g = i as? GoferInode { return g.frozen }
    return false
}

/// A lower-only overlay file, not yet copied up.
private func lowerOnly(_ i: Inode) -> Bool {
    guard let o = i as? OverlayInode else { return false }
    return o.upper == nil
}

extension XattrStore {
    /// The access ACL of `i`, when one was ever set anywhere (the common
    /// case asks one static flag and nothing else).
    func accessACL(_ i: Inode) -> [ACLEntry]? {
        XattrStore.anyACL ? acls[aclKey(i)] : nil
    }

    /// The system.posix_acl_* names `i` has (listxattr).
    func aclNames(_ i: Inode) -> [[UInt8]] {
        if let g = hostACLInode(i) {
            var out: [[UInt8]] = []
            if case .success(_?) = g.hostACL(.access, refresh: true) { out.append(aclAccessName) }
            if i.isDir, case .success(_?) = g.hostACL(.default, refresh: true) { out.append(aclDefaultName) }
            return out
        }
        guard XattrStore.anyACL else { return [] }
        let k = aclKey(i)
        return (acls[k] != nil ? [aclAccessName] : []) + (defaultACLs[k] != nil ? [aclDefaultName] : [])
    }
}

/// getxattr of an ACL name: the value, ENODATA without one, EOPNOTSUPP on
/// a symlink or a file system without ACLs. No read permission is needed
/// (the VFS puts no restriction on system.* reads).
func aclGet(_ t: Task, _ i: Inode, _ name: [UInt8]) -> Result<[UInt8], Errno> {
    if i.isSymlink { return .failure(Errno(EOPNOTSUPP)) }
    if let g = hostACLInode(i) {
        switch g.hostACL(name == aclAccessName ? .access : .default, refresh: true) {
        case .success(let es?): return .success(encodeACL(es.map { mapACLID($0, t.creds.userNS, toKernel: false) ?? $0 }))
        case .success(nil): return .failure(Errno(ENODATA))
        case .failure(let e): return .failure(e)
        }
    }
    if !aclCapable(i) { return .failure(Errno(EOPNOTSUPP)) }
    let store = t.kernel.xattrs, k = aclKey(i)
    guard let es = name == aclAccessName ? store.acls[k] : store.defaultACLs[k] else { return .failure(Errno(ENODATA)) }
    return .success(encodeACL(es.map { mapACLID($0, t.creds.userNS, toKernel: false) ?? $0 }))
}

/// A named entry's id between the caller's user namespace and the kernel
/// ids the ACL keeps: nil for an id the namespace does not map (EINVAL on a
/// set). A get shows such an id as -1, not the overflow id (Linux's
/// posix_acl_to_xattr uses from_kuid, not from_kuid_munged).
private func mapACLID(_ e: ACLEntry, _ ns: UserNamespace, toKernel: Bool) -> ACLEntry? {
    var e = e
    switch e.tag {
    case ACL_USER_:
        guard let id = toKernel ? ns.kernelUID(e.id) : ns.localUID(e.id) ?? aclUndefinedID else { return nil }
        e.id = id
    case ACL_GROUP_:
        guard let id = toKernel ? ns.kernelGID(e.id) : ns.localGID(e.id) ?? aclUndefinedID else { return nil }
        e.id = id
    default: break
    }
    return e
}

/// setxattr (value non-nil) or removexattr (nil) of an ACL name, with
/// Linux's checks in order: the value's format, symlinks (EOPNOTSUPP), a
/// default ACL on a non-directory (EACCES to set, a no-op to remove), the
/// owner or CAP_FOWNER (EPERM), the entries' validity (EINVAL).
func aclSet(_ t: Task, _ p: Path, _ name: [UInt8], _ value: [UInt8]?) -> Int {
    var entries: [ACLEntry]? = nil
    if let v = value {
        switch decodeACL(v) { case .success(let es): entries = es; case .failure(let e): return e.ret }
    }
    if p.mount.readOnly { return err(EROFS) }
    let i = p.inode
    let host = hostACLInode(i)
    if i.isSymlink || (host == nil && !aclCapable(i)) { return err(EOPNOTSUPP) }
    let isDefault = name == aclDefaultName
    if isDefault && !i.isDir { return entries == nil ? 0 : err(EACCES) }
    let c = t.creds
    if i.uid != c.fsuid && !c.capable(Cap.fowner, over: i.uid, i.gid) { return err(EPERM) }
    if let es = entries {
        let mapped = es.compactMap { mapACLID($0, c.userNS, toKernel: true) }
        if mapped.count != es.count || !validACL(mapped) { return err(EINVAL) }
        entries = mapped
    }
    // The host gets the ACL as set, the minimal one too: its kernel sets the
    // mode from it and keeps only what the mode cannot say, as Linux does.
    let sent = entries
    let store = t.kernel.xattrs, k = aclKey(i)
    // Removing what a lower overlay file does not have copies nothing up.
    if entries == nil && lowerOnly(i) && (isDefault ? store.defaultACLs[k] : store.acls[k]) == nil { return err(ENODATA) }
    var mode = i.mode & 0o7777
    if !isDefault {
        if let es = entries {
            let (bits, extended) = aclModeBits(es)
            mode = mode & ~0o777 | bits
            if !extended { entries = nil }
        }
        // Linux's posix_acl_update_mode: set-group-ID survives only for a
        // caller in the file's group or with CAP_FSETID.
        if !(c.inGroup(i.gid) || c.fsgid == i.gid) && !c.capable(Cap.fsetid, over: i.uid, i.gid) { mode &= ~S_ISGID_ }
    }
    if let g = host {
        if case .failure(let e) = g.setHostACL(isDefault ? .default : .access, sent) { return e.ret }
        // The mode as Linux leaves it (the Gofer's own CAP_FSETID kept the
        // set-group-ID bit); the host rewrites the ACL's mask from it, to
        // the value it has already.
        if mode != i.mode & 0o7777, case .failure(let e) = i.setattr(SetAttr(mode: mode)) { return e.ret }
        g.cachedACL = nil
        t.kernel.inotifyFile(p, IN_ATTRIB_)
        return 0
    }
    // The mode change (or the same mode) copies an overlay file up and moves ctime.
    if case .failure(let e) = i.setattr(SetAttr(mode: mode)) { return e.ret }
    if let es = entries { XattrStore.anyACL = true; if isDefault { store.defaultACLs[k] = es } else { store.acls[k] = es } }
    else if isDefault { store.defaultACLs[k] = nil } else { store.acls[k] = nil }
    t.kernel.inotifyFile(p, IN_ATTRIB_)
    return 0
}

/// chmod of a file with an access ACL: USER_OBJ, MASK (GROUP_OBJ without
/// one) and OTHER take the new owner, group and other bits (Linux's
/// posix_acl_chmod).
func aclChmod(_ k: Kernel, _ i: Inode, _ a: SetAttr) {
    // The host rewrote its copy; the next check reads it again.
    if a.mode != nil, let g = hostACLInode(i) { g.cachedACL = nil; return }
    guard XattrStore.anyACL, a.mode != nil, var es = k.xattrs.acls[aclKey(i)] else { return }
    let m = i.mode, hasMask = es.contains { $0.tag == ACL_MASK_ }
    for j in es.indices {
        switch es[j].tag {
        case ACL_USER_OBJ_: es[j].perm = UInt16(m >> 6 & 7)
        case ACL_MASK_: es[j].perm = UInt16(m >> 3 & 7)
        case ACL_GROUP_OBJ_ where !hasMask: es[j].perm = UInt16(m >> 3 & 7)
        case ACL_OTHER_: es[j].perm = UInt16(m & 7)
        default: break
        }
    }
    k.xattrs.acls[aclKey(i)] = es
}

/// What a new file inherits from its directory's default ACL.
struct InheritedACL {
    var access: [ACLEntry]?
    var dflt: [ACLEntry]?
}

/// The permission bits of a new file in `dir` asked for with `mode`: the
/// umask applies, unless `dir` has a default ACL; then the ACL, masked by
/// `mode`, becomes the file's access ACL (and, for a directory, its default
/// ACL too) and gives the mode (Linux's posix_acl_create).
func creationMode(_ t: Task, _ dir: Inode, _ mode: UInt32, isDir: Bool) -> (UInt32, InheritedACL?) {
    guard let d = defaultACL(t, dir) else { return (mode & ~t.fs.umask & 0o7777, nil) }
    var es = d, m = mode & 0o7777
    var maskAt: Int? = nil, groupAt: Int? = nil, extended = false
    for j in es.indices {
        switch es[j].tag {
        case ACL_USER_OBJ_:
            es[j].perm &= UInt16(m >> 6 & 7)
            m &= UInt32(es[j].perm) << 6 | ~0o700
        case ACL_OTHER_:
            es[j].perm &= UInt16(m & 7)
            m &= UInt32(es[j].perm) | ~0o007
        case ACL_GROUP_OBJ_: groupAt = j
        case ACL_MASK_: maskAt = j; extended = true
        default: extended = true
        }
    }
    if let j = maskAt ?? groupAt {
        es[j].perm &= UInt16(m >> 3 & 7)
        m &= UInt32(es[j].perm) << 3 | ~0o070
    }
    return (m, InheritedACL(access: extended ? es : nil, dflt: isDir ? d : nil))
}

/// The default ACL of directory `dir`, if it has one.
private func defaultACL(_ t: Task, _ dir: Inode) -> [ACLEntry]? {
    if let g = hostACLInode(dir) {
        guard dir.isDir, case .success(let d?) = g.hostACL(.default) else { return nil }
        return d
    }
    return XattrStore.anyACL ? t.kernel.xattrs.defaultACLs[aclKey(dir)] : nil
}

/// Gives a file just made with creationMode's answer its inherited ACLs.
/// On the host, the host kernel gave them when the Gofer made the file,
/// from the same default ACL and mode: the Sentry's copy starts as that.
func applyInheritedACL(_ k: Kernel, _ i: Inode, _ acl: InheritedACL?) {
    if let g = hostACLInode(i) {
        if i.isSymlink { return }
        g.cachedACL = .some(acl?.access)
        if i.isDir { g.cachedDefaultACL = .some(acl?.dflt) }
        return
    }
    guard let a = acl, !i.isSymlink, aclCapable(i) else { return }
    let key = aclKey(i)
    k.xattrs.acls[key] = a.access
    if i.isDir { k.xattrs.defaultACLs[key] = a.dflt }
}

extension Credentials {
    /// Linux's acl_permission_check with an access ACL: the owner gets
    /// USER_OBJ; a named user its entry under the mask; the owning and named
    /// groups the caller is in: any one entry that grants `mask` (under the
    /// mask), else nothing; others OTHER.
    func aclPermits(_ i: Inode, _ es: [ACLEntry], _ mask: UInt32) -> Bool {
        let want = UInt16(mask)
        let m = es.first(where: { $0.tag == ACL_MASK_ })?.perm ?? 7
        if i.uid == fsuid { return es.first(where: { $0.tag == ACL_USER_OBJ_ }).map { $0.perm & want == want } ?? false }
        if let u = es.first(where: { $0.tag == ACL_USER_ && $0.id == fsuid }) { return u.perm & m & want == want }
        var inSomeGroup = false
        for e in es where e.tag == ACL_GROUP_OBJ_ || e.tag == ACL_GROUP_ {
            let g = e.tag == ACL_GROUP_OBJ_ ? i.gid : e.id
            guard inGroup(g) || fsgid == g else { continue }
            inSomeGroup = true
            if e.perm & want == want { return e.perm & m & want == want }
        }
        if inSomeGroup { return false }
        return es.first(where: { $0.tag == ACL_OTHER_ }).map { $0.perm & want == want } ?? false
    }
}
