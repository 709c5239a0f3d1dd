/// A mount namespace (mount_namespaces(7)): a tree of mounts of its own.
/// unshare(CLONE_NEWNS) and clone(CLONE_NEWNS) give the caller a copy of
/// its tree (VFS.copyTree), setns moves a process into another's.
///
/// The mounts of every namespace are in VFS.mounts, each naming its
/// namespace (Mount.ns), so propagation crosses namespaces through peer
/// groups as on Linux. Copies share the dentries of what they copy (one
/// dentry per name, whichever namespace reaches it); a dentry keeps the
/// mounts on it with the mount each is under (Dentry.mountsHere), which is
/// what makes a mount in one namespace invisible in another.
///
/// A namespace lives while a process's fs context (FSContext.ns) or an open
/// /proc/PID/ns/mnt holds it: Mount.ns is weak, and the mounts of a
/// namespace nobody holds leave the tree (VFS.pruneDeadNamespaces).
final class MountNamespace {
    /// The root mount (pivot_root changes it).
    var root: Mount
    /// The user namespace that owns it: mount(2) and umount2(2) need
    /// CAP_SYS_ADMIN there.
    let owner: UserNamespace
    /// Its nsfs inode number (/proc/PID/ns/mnt).
    let inum: UInt64
    /// Bumped by every mount and unmount in it: poll on
    /// /proc/PID/mountinfo reports POLLERR|POLLPRI once it moves past what
    /// the reader's descriptor saw.
    var event = 0

    /// The initial namespace's inode number (Linux allocates it at boot).
    static let initialInode: UInt64 = 0xEFFF_FFF8

    init(root: Mount, owner: UserNamespace, inum: UInt64) {
        self.root = root; self.owner = owner; self.inum = inum
    }
}

extension VFS {
    /// A copy of `ns`'s tree from `top` down (its root, or in a pod the
    /// container's own root) for a new namespace owned by `owner` (Linux's
    /// copy_mnt_ns): each mount a new one with a new id, the same flags and
    /// on the same dentries; a copy of a shared mount joins its peer group
    /// and a slave's copy is a slave of the same master. A namespace owned
    /// by a less privileged user namespace than `ns`'s gets its shared
    /// mounts' copies as slaves, and every mount locked (Mount.locked): its
    /// flags stay, and it cannot be unmounted alone, moved or pivoted to. Returns the
    /// namespace and the copy of each mount. Requires: Kernel.mu held.
    func copyTree(of ns: MountNamespace, from top: Mount, owner: UserNamespace) -> (MountNamespace, [ObjectIdentifier: Mount]) {
        pruneDeadNamespaces()
        let lessPrivileged = owner !== ns.owner
        let inTree = Set(subtree(of: top).map(ObjectIdentifier.init))
        // In mount order, so the copies' ids and mountinfo lines keep it.
        let originals = mounts.filter { inTree.contains(ObjectIdentifier($0)) }
        var copies: [ObjectIdentifier: Mount] = [:]
        for m in originals {
            let c = Mount(root: m.root, mountpoint: nil, parent: nil, fsType: m.fsType, source: m.source)
            c.readOnly = m.readOnly; c.flags = m.flags; c.unbindable = m.unbindable
            c.superOptions = m.superOptions; c.rootPath = m.rootPath; c.namespaceID = m.namespaceID
            if lessPrivileged {
                c.masterGroup = m.peerGroup != 0 ? m.peerGroup : m.masterGroup
                c.locked = true
                c.lockedFlags = (m.flags & MountFlags.lockable) | (m.readOnly ? MountFlags.rdonly : 0)
            } else {
                c.peerGroup = m.peerGroup; c.masterGroup = m.masterGroup
                c.locked = m.locked; c.lockedFlags = m.lockedFlags
            }
            copies[ObjectIdentifier(m)] = c
        }
        let newNS = MountNamespace(root: copies[ObjectIdentifier(top)]!, owner: owner, inum: newNamespaceInode())
        for m in originals {
            let c = copies[ObjectIdentifier(m)]!
            c.ns = newNS
            if m !== top, let p = m.parent, let pc = copies[ObjectIdentifier(p)], let mp = m.mountpoint {
                attach(c, at: Path(mount: pc, dentry: mp))
            }
            mounts.append(c)
        }
        return (newNS, copies)
    }

    /// Takes the mounts of namespaces no process or descriptor holds any
    /// more out of the tree (their peers stop receiving from them).
    func pruneDeadNamespaces() {
        guard mounts.contains(where: { $0.ns == nil }) else { return }
        for m in mounts where m.ns == nil { detach(m) }
        mounts.removeAll { $0.ns == nil }
    }
}

extension Task {
    /// Gives this task's fs context (its own: unshare and clone copy it
    /// first) a copy of its mount namespace owned by `owner`, and moves its
    /// root and working directory onto the copies. Requires: Kernel.mu held.
    func enterNewMountNamespace(owner: UserNamespace) {
        let vfs = kernel.vfs
        guard let old = fs.ns else { return }
        // In a pod, a container's tree starts at its own root mount.
        var top = old.root
        var m: Mount? = fs.root.mount
        while let x = m { if x.namespaceID != nil { top = x; break }; m = x.parent }
        let (ns, copies) = vfs.copyTree(of: old, from: top, owner: owner)
        fs.ns = ns
        if let r = copies[ObjectIdentifier(fs.root.mount)] { fs.root = Path(mount: r, dentry: fs.root.dentry) }
        if let c = copies[ObjectIdentifier(fs.cwd.mount)] { fs.cwd = Path(mount: c, dentry: fs.cwd.dentry) }
    }
}
