// Landlock (landlock(7)): unprivileged sandboxing a process applies to
// itself. A ruleset (landlock_create_ruleset) names the access rights it
// handles; rules (landlock_add_rule) grant some of them beneath a file
// hierarchy or on a TCP port; landlock_restrict_self stacks a frozen copy
// of the ruleset as a new layer on the calling thread's domain, which fork,
// clone and execve keep (it lives in Credentials). An access a layer
// handles is allowed only if one of that layer's rules grants it at the
// path or one of its ancestors (up to the real root, across mounts, whatever
// the process's chroot); every layer must agree.
//
// What the Sentry enforces, and so what the ABI version it reports claims:
// the filesystem rights of ABI 1-3 and 5 (open for read, write and
// execution, directory listing, making and removing each kind of file,
// reparenting by rename and link, truncation, ioctl on devices), TCP bind
// and connect (ABI 4), and the scopes of ABI 6 (abstract unix sockets and
// signals to processes outside the domain); as on Linux, any domain also
// keeps its threads from ptrace access to processes outside it (mayAttach)
// and, if it handles file rights, from changing mounts. The syscalls are in
// Syscalls/Landlock.swift; the checks are called from the handlers of the
// accesses (open, exec, the *at calls, truncate, ioctl, bind, connect,
// kill) through `Task.landlockDenies` and its neighbours below.

import Glibc

enum Landlock {
    /// LANDLOCK_CREATE_RULESET_VERSION's answer: the features below (Linux 6.12's).
    static let abiVersion = 6
    /// Linux's LANDLOCK_MAX_NUM_LAYERS.
    static let maxLayers = 16

    static let execute: UInt64 = 1 << 0, writeFile: UInt64 = 1 << 1, readFile: UInt64 = 1 << 2
    static let readDir: UInt64 = 1 << 3, removeDir: UInt64 = 1 << 4, removeFile: UInt64 = 1 << 5
    static let makeChar: UInt64 = 1 << 6, makeDir: UInt64 = 1 << 7, makeReg: UInt64 = 1 << 8
    static let makeSock: UInt64 = 1 << 9, makeFifo: UInt64 = 1 << 10, makeBlock: UInt64 = 1 << 11
    static let makeSym: UInt64 = 1 << 12, refer: UInt64 = 1 << 13, truncate: UInt64 = 1 << 14
    static let ioctlDev: UInt64 = 1 << 15
    static let fsAll: UInt64 = (1 << 16) - 1
    /// The rights that mean something on a file that is not a directory.
    static let fileRights: UInt64 = execute | writeFile | readFile | truncate | ioctlDev

    static let bindTCP: UInt64 = 1 << 0, connectTCP: UInt64 = 1 << 1
    static let netAll: UInt64 = 3

    static let scopeAbstractUnix: UInt64 = 1 << 0, scopeSignal: UInt64 = 1 << 1
    static let scopeAll: UInt64 = 3

    /// The MAKE_* right for a new file of `mode`'s type.
    static func makeRight(_ mode: UInt32) -> UInt64 {
        switch mode & S_IFMT_ {
        case S_IFDIR_: return makeDir
        case S_IFCHR_: return makeChar
        case S_IFBLK_: return makeBlock
        case S_IFIFO_: return makeFifo
        case S_IFSOCK_: return makeSock
        case S_IFLNK_: return makeSym
        default: return makeReg
        }
    }

    static func removeRight(_ i: Inode) -> UInt64 { i.isDir ? removeDir : removeFile }

    /// The ioctls Linux's VFS serves before a device sees them, which
    /// IOCTL_DEV never refuses: FIOQSIZE, FIFREEZE, FITHAW, FS_IOC_FIEMAP,
    /// FIGETBSZ, FICLONE, FICLONERANGE, FIDEDUPERANGE, FS_IOC_GETFSUUID,
    /// FS_IOC_GETFSSYSFSPATH (FIOCLEX, FIONCLEX, FIONBIO and FIOASYNC are
    /// answered before the check).
    static let vfsIoctls: Set<UInt64> = [0x5460, 0xc004_5877, 0xc004_5878, 0xc020_660b, 2, 0x4004_9409,
                                         0x4020_940d, 0xc018_9436, 0x8011_1500, 0x8081_1501]
}

/// A ruleset being built (the object behind a ruleset descriptor).
final class LandlockRuleset {
    let handledFS: UInt64, handledNet: UInt64, scoped: UInt64
    /// Rights granted beneath a file (directory or not); the inode is kept
    /// alive by the rule, as Linux's landlock object holds its inode.
    var fsRules: [(inode: Inode, access: UInt64)] = []
    var netRules: [UInt16: UInt64] = [:]

    init(handledFS: UInt64, handledNet: UInt64, scoped: UInt64) {
        self.handledFS = handledFS; self.handledNet = handledNet; self.scoped = scoped
    }

    func addFSRule(_ i: Inode, _ access: UInt64) {
        if let k = fsRules.firstIndex(where: { sameFile($0.inode, i) }) { fsRules[k].access |= access }
        else { fsRules.append((i, access)) }
    }
}

/// One frozen layer of a domain: a copy of a ruleset at restrict_self time
/// (later rules added to the ruleset do not change it). Its identity names
/// the domain it started, for the scopes.
final class LandlockLayer {
    let handledFS: UInt64, handledNet: UInt64, scoped: UInt64
    let fsRules: [(inode: Inode, access: UInt64)]
    let netRules: [UInt16: UInt64]

    init(_ r: LandlockRuleset) {
        handledFS = r.handledFS; handledNet = r.handledNet; scoped = r.scoped
        fsRules = r.fsRules; netRules = r.netRules
    }

    /// The filesystem rights this layer's rules grant at `p` and above it.
    func granted(at p: Path, want: UInt64) -> UInt64 {
        var got: UInt64 = 0
        landlockWalkUp(p) { q in
            for r in fsRules where sameFile(r.inode, q.inode) { got |= r.access }
            return got & want == want
        }
        return got
    }

    /// What the layer handles among the filesystem rights: REFER is
    /// denied by every layer that handles any (reparenting is refused
    /// under a first-version ruleset), granted only by a rule.
    var handledFSWithRefer: UInt64 { handledFS == 0 ? 0 : handledFS | Landlock.refer }
}

/// A thread's Landlock domain: its layers, oldest first.
final class LandlockDomain {
    let layers: [LandlockLayer]
    init(_ layers: [LandlockLayer]) { self.layers = layers }

    var handlesFS: Bool { layers.contains { $0.handledFS != 0 } }

    /// Whether every layer allows `want` at `p`.
    func allows(_ want: UInt64, at p: Path) -> Bool {
        for l in layers {
            let need = want & l.handledFSWithRefer
            if need != 0 && l.granted(at: p, want: need) & need != need { return false }
        }
        return true
    }

    /// The rights among `rights` that some layer denies at `p` (for what an
    /// open file may later do: truncate, device ioctls).
    func denied(_ rights: UInt64, at p: Path) -> UInt64 {
        var out: UInt64 = 0
        for l in layers {
            let need = rights & l.handledFS
            if need != 0 { out |= need & ~l.granted(at: p, want: need) }
        }
        return out
    }

    /// Whether `other` is this domain or one nested in it (what a
    /// sandboxed process may ptrace).
    func encloses(_ other: LandlockDomain?) -> Bool {
        layers.allSatisfy { l in other?.layers.contains { $0 === l } ?? false }
    }

    /// Whether a TCP bind (or connect) to `port` is allowed.
    func allowsPort(_ port: UInt16, _ right: UInt64) -> Bool {
        layers.allSatisfy { l in l.handledNet & right == 0 || (l.netRules[port] ?? 0) & right != 0 }
    }

    /// Whether a scoped interaction (`scope`) from this domain may reach a
    /// process (or socket owner) whose domain is `other`: each layer that
    /// scopes it must be one of the other's.
    func scopeAllows(_ scope: UInt64, to other: LandlockDomain?) -> Bool {
        layers.allSatisfy { l in l.scoped & scope == 0 || (other?.layers.contains { $0 === l } ?? false) }
    }

    /// Reparenting `src` (a file of `oldDir`) into `newDir`, or with
    /// `exchange` swapping it with `dst` there; `dst` alone (no exchange)
    /// is a file the rename replaces. nil for link (nothing removed).
    /// Returns nil when allowed, else EACCES (a make/remove right
    /// missing) or EXDEV (REFER missing, or the move would give the file
    /// rights it did not have where it was).
    func referError(src: Path, oldDir: Path, newDir: Path, dst: Path?, exchange: Bool, removable: Bool) -> Errno? {
        var oldNeed: UInt64 = 0, newNeed = Landlock.makeRight(src.inode.mode)
        if exchange, let d = dst { oldNeed |= Landlock.makeRight(d.inode.mode) }
        if removable {
            oldNeed |= Landlock.removeRight(src.inode)
            if let d = dst { newNeed |= Landlock.removeRight(d.inode) }
        }
        let sameDir = oldDir.dentry === newDir.dentry && oldDir.mount === newDir.mount
        if sameDir { return allows(oldNeed | newNeed, at: newDir) ? nil : Errno(EACCES) }
        var referMissing = false
        for l in layers {
            let h = l.handledFSWithRefer
            if h == 0 { continue }
            let o = l.granted(at: oldDir, want: h), n = l.granted(at: newDir, want: h)
            if oldNeed & h & ~o != 0 || newNeed & h & ~n != 0 { return Errno(EACCES) }
            if h & Landlock.refer & ~(o & n) != 0 { referMissing = true; continue }
            // The moved file keeps at most what it had: what the new place
            // grants it beyond what the old place (and its own rules) did.
            if gainsAccess(l, src, from: oldDir, to: newDir) { referMissing = true }
            if exchange, let d = dst, gainsAccess(l, d, from: newDir, to: oldDir) { referMissing = true }
        }
        return referMissing ? Errno(EXDEV) : nil
    }

    private func gainsAccess(_ l: LandlockLayer, _ f: Path, from: Path, to: Path) -> Bool {
        let mask = (f.inode.isDir ? Landlock.fsAll : Landlock.fileRights) & l.handledFS & ~Landlock.refer
        if mask == 0 { return false }
        let own = l.fsRules.reduce(UInt64(0)) { sameFile($1.inode, f.inode) ? $0 | $1.access : $0 }
        let before = l.granted(at: from, want: mask) | own, after = l.granted(at: to, want: mask) | own
        return after & mask & ~before != 0
    }
}

/// Calls `visit` with `p` and each of its ancestors up to the real root,
/// climbing out of each mount to its mountpoint, until it returns true.
func landlockWalkUp(_ p: Path, _ visit: (Path) -> Bool) {
    var q = p
    while !visit(q) {
        if q.dentry === q.mount.root {
            guard let mp = q.mount.mountpoint, let parent = q.mount.parent else { return }
            q = Path(mount: parent, dentry: mp)
        } else {
            guard let up = q.dentry.parent else { return }
            q = Path(mount: q.mount, dentry: up)
        }
    }
}

extension Task {
    /// Landlock's answer for the filesystem access `want` at `p`: EACCES
    /// if the thread's domain refuses it, nil otherwise (no domain: nil).
    func landlockDenies(_ p: Path, _ want: UInt64) -> Errno? {
        guard let d = creds.landlock else { return nil }
        return d.allows(want, at: p) ? nil : Errno(EACCES)
    }

    /// The rights an open file (of `p`, opened with `want`) may use later
    /// that the domain refuses: truncation, and ioctls on a device.
    func landlockDeniedLater(_ p: Path) -> UInt64 {
        guard let d = creds.landlock else { return 0 }
        let i = p.inode
        var later = Landlock.truncate
        if i.mode & S_IFMT_ == S_IFCHR_ || i.mode & S_IFMT_ == S_IFBLK_ { later |= Landlock.ioctlDev }
        return d.denied(later, at: p)
    }

    /// rename/link across or within directories (see referError).
    func landlockRefer(src: Path, oldDir: Path, newDir: Path, dst: Path?, exchange: Bool, removable: Bool) -> Errno? {
        creds.landlock?.referError(src: src, oldDir: oldDir, newDir: newDir, dst: dst, exchange: exchange, removable: removable)
    }

    /// A TCP bind or connect to `port`: EACCES if the domain refuses it.
    func landlockDeniesPort(_ port: UInt16, _ right: UInt64) -> Bool {
        guard let d = creds.landlock else { return false }
        return !d.allowsPort(port, right)
    }

    /// Whether the scope `scope` keeps this thread from reaching something
    /// of a process whose credentials are `other`.
    func landlockScopeDenies(_ scope: UInt64, _ other: Credentials) -> Bool {
        guard let d = creds.landlock else { return false }
        return !d.scopeAllows(scope, to: other.landlock)
    }
}
