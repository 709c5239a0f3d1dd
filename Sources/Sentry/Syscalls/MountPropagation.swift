// Mount propagation (mount_namespaces(7)): which mounts a mount or unmount
// event reaches, and how the copies it makes relate to each other.
//
// A mount is in at most one peer group (Mount.peerGroup: "shared") and
// receives from at most one group as a slave (Mount.masterGroup); it may be
// both, a slave that passes what it receives on to its own peers and slaves.
// An event under a shared mount reaches, in waves: the mount's peers; the
// slaves of its group; and from each slave that is shared, its own peers and
// slaves, group after group (Linux's propagation_next over the slave lists).

/// One mount an event reaches: `wave` numbers the peer group it was
/// reached through (0: the parent's own), `slave` tells a mount that only
/// receives (no peer group of its own) from a member of one.
struct PropagationReceiver {
    let mount: Mount
    let wave: Int
    let slave: Bool
}

/// The receivers of an event under `parent`, and for each wave the wave
/// its group is a slave of (-1 for wave 0). Requires: Kernel.mu held.
func propagationReceivers(_ vfs: VFS, of parent: Mount) -> (list: [PropagationReceiver], waveMaster: [Int]) {
    let g0 = parent.peerGroup
    guard g0 != 0 else { return ([], []) }
    var groups = [g0], waveMaster = [-1]
    var seen: Set<Int> = [g0]
    var out: [PropagationReceiver] = []
    var k = 0
    while k < groups.count {
        let g = groups[k]
        for r in vfs.mounts where r !== parent {
            if r.peerGroup == g {
                out.append(PropagationReceiver(mount: r, wave: k, slave: false))
            } else if r.masterGroup == g {
                if r.peerGroup == 0 {
                    out.append(PropagationReceiver(mount: r, wave: k, slave: true))
                } else if seen.insert(r.peerGroup).inserted {
                    groups.append(r.peerGroup); waveMaster.append(k)
                }
            }
        }
        k += 1
    }
    return (out, waveMaster)
}

/// Hands out peer group numbers no mount uses, lowest first (Linux reuses
/// them), several before any mount holds one.
struct PeerGroupAllocator {
    private var used: Set<Int>
    private var next = 1
    init(_ vfs: VFS) { used = Set(vfs.mounts.flatMap { [$0.peerGroup, $0.masterGroup] }) }
    mutating func take() -> Int {
        while used.contains(next) { next += 1 }
        used.insert(next)
        return next
    }
}

/// Propagates a new tree of mounts, `m` and what is mounted below it, just
/// attached at `target` (Linux's attach_recursive_mnt and propagate_mnt).
/// Under a shared mount every mount of the tree becomes shared; each
/// receiver gets a copy of the tree at the same place: a peer's copies are
/// peers of the tree's mounts (slaves of the same masters); a slave's are
/// slaves of the copies of the wave it receives from, and when that slave
/// is shared, the copies made for its group are peers of a new group.
/// Requires: Kernel.mu held.
func propagateMount(_ vfs: VFS, _ m: Mount, at target: Path) {
    guard target.mount.peerGroup != 0 else { return }
    let tree = vfs.subtree(of: m)
    let inTree = Set(tree.map(ObjectIdentifier.init))
    let (list, waveMaster) = propagationReceivers(vfs, of: target.mount)
    var groups = PeerGroupAllocator(vfs)
    for x in tree where x.peerGroup == 0 { x.peerGroup = groups.take() }
    // The groups each wave's copies form, per mount of the tree.
    var image: [[(peer: Int, master: Int)]] = [tree.map { ($0.peerGroup, $0.masterGroup) }]
    for k in waveMaster.indices.dropFirst() {
        image.append(image[waveMaster[k]].map { (groups.take(), $0.peer) })
    }
    for r in list where !inTree.contains(ObjectIdentifier(r.mount)) {
        guard let place = vfs.samePlace(target, in: r.mount) else { continue }
        let groupsOfCopy = image[r.wave].map { r.slave ? (peer: 0, master: $0.peer) : $0 }
        mountCopy(vfs, tree, at: vfs.crossMounts(place), groups: groupsOfCopy)
    }
}

/// Mounts a copy of `tree` (a mount and its submounts, parents first) at
/// `place`, the copy of tree[i] in the groups `groups[i]`.
private func mountCopy(_ vfs: VFS, _ tree: [Mount], at place: Path, groups: [(peer: Int, master: Int)]) {
    var copies: [ObjectIdentifier: Mount] = [:]
    for (i, x) in tree.enumerated() {
        let at: Path
        if i == 0 {
            at = place
        } else {
            guard let p = x.parent, let pc = copies[ObjectIdentifier(p)], let mp = x.mountpoint,
                  let names = vfs.names(from: p.root, to: mp), let q = vfs.walkNames(names, in: pc) else { continue }
            at = q
        }
        let c = vfs.mount(x.root.inode, at: at, fsType: x.fsType, source: x.source)
        c.flags = x.flags; c.readOnly = x.readOnly; c.lockedFlags = x.lockedFlags
        c.superOptions = x.superOptions; c.rootPath = x.rootPath
        c.peerGroup = groups[i].peer; c.masterGroup = groups[i].master
        copies[ObjectIdentifier(x)] = c
    }
}

/// How many mounts a new tree of `size` mounts under `parent` makes with
/// its propagated copies.
func mountsMade(_ vfs: VFS, treeSize size: Int, under parent: Mount) -> Int {
    size * (1 + propagationReceivers(vfs, of: parent).list.count)
}

/// The copies of the unmounted `tree` (a mount and the mounts below it)
/// that go with it: for each mount of the tree under a shared parent, the
/// mount of the same file system at the same place under every receiver of
/// the parent, unless something that stays is mounted on it (Linux's
/// propagate_umount). Deepest first, so a copy whose submounts all go goes
/// too. Requires: Kernel.mu held.
func propagatedUnmounts(_ vfs: VFS, of tree: [Mount]) -> [Mount] {
    var gone = Set(tree.map(ObjectIdentifier.init))
    var children: [ObjectIdentifier: [Mount]] = [:]
    for c in vfs.mounts { if let p = c.parent { children[ObjectIdentifier(p), default: []].append(c) } }
    var receiversOf: [ObjectIdentifier: [PropagationReceiver]] = [:]
    var out: [Mount] = []
    for g in tree.reversed() {
        guard let parent = g.parent, let mp = g.mountpoint, parent.peerGroup != 0 else { continue }
        let at = Path(mount: parent, dentry: mp)
        let list = receiversOf[ObjectIdentifier(parent)] ?? propagationReceivers(vfs, of: parent).list
        receiversOf[ObjectIdentifier(parent)] = list
        for r in list where !gone.contains(ObjectIdentifier(r.mount)) {
            guard let place = vfs.samePlace(at, in: r.mount), let c = place.dentry.mounted(under: r.mount),
                  c.root.inode === g.root.inode, !gone.contains(ObjectIdentifier(c)),
                  (children[ObjectIdentifier(c)] ?? []).allSatisfy({ gone.contains(ObjectIdentifier($0)) }) else { continue }
            gone.insert(ObjectIdentifier(c))
            out.append(c)
        }
    }
    return out
}

/// A mount leaving its peer group (made a slave, private or unbindable,
/// or unmounted): when it was the group's last member, the group's slaves
/// become slaves of its master, or private without one (Linux's
/// do_make_slave). Requires: Kernel.mu held.
func leavePeerGroup(_ vfs: VFS, _ m: Mount) {
    let g = m.peerGroup
    guard g != 0 else { return }
    m.peerGroup = 0
    if vfs.mounts.contains(where: { $0 !== m && $0.peerGroup == g && $0.ns != nil }) { return }
    for s in vfs.mounts where s.masterGroup == g && s !== m { s.masterGroup = m.masterGroup }
}

/// Mount propagation types (MS_SHARED, MS_SLAVE, MS_PRIVATE, MS_UNBINDABLE:
/// one of them) given to `mounts` (do_change_type). A shared mount keeps
/// the group it receives from (shared and slave at once); a slave receives
/// from the group it was in, or when it was alone in it, keeps its own
/// master (private without one); private and unbindable leave both.
func setPropagation(_ vfs: VFS, _ mounts: [Mount], _ type: UInt64) {
    var groups: PeerGroupAllocator? = nil
    for m in mounts {
        switch type {
        case MountFlags.shared:
            if m.peerGroup == 0 {
                if groups == nil { groups = PeerGroupAllocator(vfs) }
                m.peerGroup = groups!.take()
            }
            m.unbindable = false
        case MountFlags.slave:
            let g = m.peerGroup
            if g != 0 {
                let others = vfs.mounts.contains { $0 !== m && $0.peerGroup == g }
                leavePeerGroup(vfs, m)
                if others { m.masterGroup = g }
            }
            m.unbindable = false
        case MountFlags.private:
            leavePeerGroup(vfs, m)
            m.masterGroup = 0; m.unbindable = false
        default:
            leavePeerGroup(vfs, m)
            m.masterGroup = 0; m.unbindable = true
        }
    }
}
