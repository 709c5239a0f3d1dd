// The Gofer's view of the files it has handed out: a cache of `Node`s (one per
// looked-up (directory, name) pair, shared by every FID that walked to it) and
// the bounded FID table that maps wire FIDs to nodes.
//
// Each node holds an O_PATH|O_NOFOLLOW fd for its file — never a path — plus a
// strong reference to its parent node and its name there, because reopening a
// non-directory for I/O is done as openat(parent.fd, name, ...|O_NOFOLLOW) and
// then checked to be the same inode. Directories reopen themselves with
// openat(fd, ".") and need no name. Parents keep weak references to their
// children by name so a rename or unlink done through the Gofer can update
// every FID that names the moved file. (An unnamed O_TMPFILE node is the one
// exception: it holds a real fd; see `unnamed`.)

import Glibc
import GoferProtocol

final class Node {
    /// O_PATH fd (or an O_RDONLY directory fd) for this file. Owned.
    let fd: Int32
    private(set) var parent: Node?
    private(set) var name: [UInt8]
    let dev: UInt64
    let ino: UInt64
    /// S_IFMT bits when looked up (an inode never changes type).
    let type: UInt32
    /// True once `(parent, name)` no longer names this file (it was unlinked,
    /// replaced or moved in a way the Gofer could not follow). Directories
    /// keep working; non-directories can no longer be reopened (ESTALE).
    var orphaned = false
    /// An O_TMPFILE file (the `tmpfile` request): `fd` is then a real
    /// read-write fd on it, not an O_PATH handle, and is how the file is
    /// reopened, truncated, chmod-ed, given xattrs and linked, since it has
    /// no (parent, name) to reopen it by. Such a node is always `orphaned`.
    var unnamed = false
    private var children: [[UInt8]: WeakNode]?

    init(fd: Int32, parent: Node?, name: [UInt8], st: stat) {
        self.fd = fd
        self.parent = parent
        self.name = name
        self.dev = UInt64(st.st_dev)
        self.ino = UInt64(st.st_ino)
        self.type = UInt32(st.st_mode) & UInt32(S_IFMT)
    }

    deinit {
        // Normally `FIDTable.release` has already unhooked us; this covers
        // nodes dropped right after creation.
        parent?.removeChild(name, ifIs: nil)
        Glibc.close(fd)
    }

    var isDirectory: Bool { type == UInt32(S_IFDIR) }

    func matches(_ st: stat) -> Bool {
        UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    // MARK: Child cache

    func child(_ name: [UInt8]) -> Node? {
        children?[name]?.node
    }

    func setChild(_ name: [UInt8], _ node: Node) {
        if children == nil { children = [:] }
        children![name] = WeakNode(node: node)
    }

    /// Drops the entry for `name` if it refers to `node` (or to nothing alive);
    /// with `node == nil` only a dead entry is dropped.
    func removeChild(_ name: [UInt8], ifIs node: Node?) {
        guard let e = children?[name] else { return }
        let current = e.node
        if current == nil || (node != nil && current === node) {
            children![name] = nil
        }
    }

    /// Unconditionally drops the entry for `name`, returning what it held.
    @discardableResult
    func takeChild(_ name: [UInt8]) -> Node? {
        children?.removeValue(forKey: name)?.node
    }

    /// Re-parents this node after a rename the Gofer performed.
    func move(to newParent: Node, name newName: [UInt8]) {
        parent = newParent
        name = newName
        newParent.setChild(newName, self)
    }

    /// True if `self` is `other` or one of its ancestors.
    func isAncestor(of other: Node) -> Bool {
        var cur: Node? = other
        while let c = cur {
            if c === self { return true }
            cur = c.parent
        }
        return false
    }

    fileprivate func detachFromParent() -> Node? {
        let p = parent
        p?.removeChild(name, ifIs: self)
        parent = nil
        return p
    }
}

struct WeakNode {
    weak var node: Node?
}

/// Maps wire FIDs to nodes. A FID is (generation << 32 | slot index), so a
/// stale or forged FID never aliases a reused slot; 0 is never issued.
struct FIDTable {
    private struct Slot {
        var gen: UInt32
        var node: Node?
    }

    static let defaultLimit = 1 << 20

    private var slots: [Slot] = []
    private var freeList: [UInt32] = []
    private(set) var count = 0
    let limit: Int

    init(limit: Int = FIDTable.defaultLimit) {
        self.limit = limit
    }

    /// nil when the table is full (the caller answers ENFILE).
    mutating func insert(_ node: Node) -> FID? {
        if let idx = freeList.popLast() {
            let i = Int(idx)
            slots[i].gen = slots[i].gen == UInt32.max ? 1 : slots[i].gen + 1
            slots[i].node = node
            count += 1
            return FID(slots[i].gen) << 32 | FID(idx)
        }
        guard slots.count < limit else { return nil }
        slots.append(Slot(gen: 1, node: node))
        count += 1
        return FID(1) << 32 | FID(slots.count - 1)
    }

    func lookup(_ fid: FID) -> Node? {
        let idx = Int(fid & 0xFFFF_FFFF)
        guard idx < slots.count, slots[idx].gen == UInt32(fid >> 32) else { return nil }
        return slots[idx].node
    }

    /// Removes `fid` and releases its node (and any ancestors only it kept alive).
    mutating func remove(_ fid: FID) {
        let idx = Int(fid & 0xFFFF_FFFF)
        guard idx < slots.count, slots[idx].gen == UInt32(fid >> 32), let n = slots[idx].node else { return }
        slots[idx].node = nil
        freeList.append(UInt32(idx))
        count -= 1
        FIDTable.release(n)
    }

    /// Releases every FID (connection teardown).
    mutating func removeAll() {
        for i in slots.indices {
            if let n = slots[i].node {
                slots[i].node = nil
                FIDTable.release(n)
            }
        }
        slots = []
        freeList = []
        count = 0
    }

    /// Drops one strong reference to `node`, walking up the parent chain
    /// iteratively so a deep chain of otherwise unreferenced ancestors is freed
    /// without recursing in deinit (a hostile peer can build arbitrarily deep
    /// chains).
    static func release(_ node: consuming Node) {
        var cur: Node? = consume node
        while var c = cur {
            cur = nil
            guard isKnownUniquelyReferenced(&c) else { return }
            cur = c.detachFromParent()
            // `c` is freed here; its parent pointer is already nil.
        }
    }
}
