// The overlay root: a writable layer in Sentry memory (tmpfs) over the
// read-only gofer root, so that a sandbox never modifies its image unless
// asked (moat run --no-overlay). Like Linux's overlayfs:
//   - lookups see the upper entry first, then the lower one unless a
//     whiteout hides it or the upper directory is opaque;
//   - the first change to a lower object copies it up (its parents first);
//   - deleting a lower entry leaves a whiteout;
//   - renaming a directory that has a lower part fails with EXDEV, which
//     mv and friends handle by copying.
// Known limits: a file opened read-only before it was copied up keeps
// seeing the lower contents; copied-up data lives in Sentry memory until the
// file is big or mapped, then in a host file (a disk file from the Gofer
// with an UpperStore, else a memfd), and copied-up user.* xattrs in
// Kernel.xattrs.

import CMoat
import Glibc

final class OverlayInode: Inode {
    var lower: Inode?
    var upper: TmpfsInode?
    weak var parent: OverlayInode?
    var name: [UInt8]
    /// Names hidden from the lower directory (deleted in the sandbox).
    var whiteouts = Set<[UInt8]>()
    /// The upper directory replaced a deleted lower one: no lower entries.
    var opaque = false
    /// Children handed out, so an object keeps one identity.
    var children: [[UInt8]: OverlayInode] = [:]
    let upperDev: UInt64

    init(lower: Inode?, upper: TmpfsInode?, parent: OverlayInode?, name: [UInt8], upperDev: UInt64) {
        self.lower = lower; self.upper = upper; self.parent = parent; self.name = name; self.upperDev = upperDev
        let base: Inode = upper ?? lower!
        super.init(ino: lower?.ino ?? base.ino, mode: base.mode, dev: lower?.dev ?? base.dev)
        uid = base.uid; gid = base.gid
    }

    private var top: Inode { upper ?? lower! }
    override var isDir: Bool { top.mode & S_IFMT_ == S_IFDIR_ }
    override var cacheable: Bool { true }
    override var size: Int64 { (try? top.stat().get().size) ?? 0 }
    override var fsMagic: Int64 { 0x794c7630 } // OVERLAYFS_SUPER_MAGIC

    override func stat() -> Result<Stat, Errno> {
        top.stat().map { s in
            var s = s
            if lower != nil { s.ino = ino; s.dev = dev }
            mode = s.mode; uid = s.uid; gid = s.gid; nlink = s.nlink
            return s
        }
    }

    // MARK: lookup and listing

    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        if let c = children[name] { return .success(c) }
        var up: TmpfsInode? = nil
        if let u = upper, let x = try? u.lookup(name).get() { up = x as? TmpfsInode }
        var low: Inode? = nil
        if !opaque && !whiteouts.contains(name), let l = lower {
            low = try? l.lookup(name).get()
        }
        // An upper non-directory hides everything below it.
        if let u = up, !u.isDir { low = nil }
        if let l = low, up != nil, !l.isDir { low = nil }
        guard up != nil || low != nil else { return .failure(Errno(ENOENT)) }
        let c = OverlayInode(lower: low, upper: up, parent: self, name: name, upperDev: upperDev)
        children[name] = c
        return .success(c)
    }

    override func readdir() -> Result<[DirEntry], Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        var out: [DirEntry] = []
        var seen = Set<[UInt8]>()
        if let u = upper, case .success(let es) = u.readdir() {
            for e in es { out.append(e); seen.insert(e.name) }
        }
        if !opaque, let l = lower, case .success(let es) = l.readdir() {
            for e in es where !seen.contains(e.name) && !whiteouts.contains(e.name) { out.append(e) }
        }
        return .success(out)
    }

    private func isEmptyDir() -> Bool { (try? readdir().get())?.isEmpty ?? false }

    // MARK: copy-up

    /// Gives this object an upper copy (parents first). Requires: Kernel.mu held.
    func copyUp() -> Result<TmpfsInode, Errno> {
        if let u = upper { return .success(u) }
        guard let l = lower, let p = parent else { return .failure(Errno(EROFS)) }
        let pu: TmpfsInode
        switch p.copyUp() { case .success(let x): pu = x; case .failure(let e): return .failure(e) }
        guard case .success(let st) = l.stat() else { return .failure(Errno(EIO)) }
        let u = TmpfsInode(mode: st.mode, dev: upperDev, uid: st.uid, gid: st.gid)
        u.store = pu.store
        switch st.mode & S_IFMT_ {
        case S_IFDIR_:
            break
        case S_IFLNK_:
            guard case .success(let t) = l.readlink() else { return .failure(Errno(EIO)) }
            u.target = t
        case S_IFREG_:
            guard let t = currentTask, case .success(let f) = l.open(t, flags: O_RDONLY) else { return .failure(Errno(EIO)) }
            defer { f.release() }
            guard let src = f as? ByteSource, st.size < 1 << 32 else { return .failure(Errno(EFBIG)) }
            guard let data = src.pread(0, Int(st.size)) else { return .failure(Errno(EIO)) }
            u.data = data
        default:
            break // fifos, sockets: the node itself
        }
        u.atime = st.atime; u.mtime = st.mtime; u.ctime = st.ctime
        // The user.* xattrs come along, into the Sentry's memory (FileExtras.swift).
        if let g = l as? GoferInode, let k = currentTask?.kernel { copyUpUserXattrs(k.xattrs, XattrKey(dev: dev, ino: ino), g) }
        pu.entries[name] = u
        if !pu.order.contains(name) { pu.order.append(name) }
        upper = u
        return .success(u)
    }

    // MARK: changes

    /// Makes `name` in this directory with `make` on the upper copy.
    private func addChild(_ name: [UInt8], _ make: (TmpfsInode) -> Result<Inode, Errno>) -> Result<OverlayInode, Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        if case .success = lookup(name) { return .failure(Errno(EEXIST)) }
        let pu: TmpfsInode
        switch copyUp() { case .success(let x): pu = x; case .failure(let e): return .failure(e) }
        switch make(pu) {
        case .success(let n):
            guard let up = n as? TmpfsInode else { return .failure(Errno(EIO)) }
            let c = OverlayInode(lower: nil, upper: up, parent: self, name: name, upperDev: upperDev)
            if whiteouts.remove(name) != nil && up.isDir { c.opaque = true }
            children[name] = c
            return .success(c)
        case .failure(let e): return .failure(e)
        }
    }

    override func create(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32, flags: Int32) -> Result<(Inode, FileDescription?), Errno> {
        addChild(name) { pu in pu.create(name, mode: mode, uid: uid, gid: gid, flags: flags).map { $0.0 } }.map { ($0, nil) }
    }
    override func mkdir(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        addChild(name) { $0.mkdir(name, mode: mode, uid: uid, gid: gid) }.map { $0 }
    }
    override func symlink(_ name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        addChild(name) { $0.symlink(name, target: target, uid: uid, gid: gid) }.map { $0 }
    }
    override func createTmpfile(mode: UInt32, uid: UInt32, gid: UInt32, exclusive: Bool) -> Result<Inode, Errno> {
        if !isDir { return .failure(Errno(ENOTDIR)) }
        let u = TmpfsInode(mode: S_IFREG_ | (mode & 0o7777), dev: upperDev, uid: uid, gid: gid)
        u.nlink = 0
        u.store = upperStore
        let o = OverlayInode(lower: nil, upper: u, parent: self, name: [], upperDev: upperDev)
        o.nlink = 0   // so that linkat refuses an O_EXCL one (ENOENT)
        return .success(o)
    }
    override func mknod(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        addChild(name) { $0.mknod(name, mode: mode, uid: uid, gid: gid) }.map { $0 }
    }
    override func mknodDevice(_ name: [UInt8], mode: UInt32, rdev: UInt64, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        addChild(name) { $0.mknodDevice(name, mode: mode, rdev: rdev, uid: uid, gid: gid) }.map { $0 }
    }
    override func link(_ name: [UInt8], _ target: Inode) -> Result<Inode, Errno> {
        guard let t = target as? OverlayInode else { return .failure(Errno(EXDEV)) }
        let tu: TmpfsInode
        switch t.copyUp() { case .success(let x): tu = x; case .failure(let e): return .failure(e) }
        return addChild(name) { $0.link(name, tu) }.map { $0 }
    }

    override func unlink(_ name: [UInt8], dir: Bool) -> Result<Void, Errno> {
        guard case .success(let ci) = lookup(name), let c = ci as? OverlayInode else { return .failure(Errno(ENOENT)) }
        if dir {
            if !c.isDir { return .failure(Errno(ENOTDIR)) }
            if !c.isEmptyDir() { return .failure(Errno(ENOTEMPTY)) }
        } else if c.isDir { return .failure(Errno(EISDIR)) }
        let pu: TmpfsInode
        switch copyUp() { case .success(let x): pu = x; case .failure(let e): return .failure(e) }
        if let u = c.upper, pu.entries[name] === u {
            // An upper directory may hold nothing but is still non-empty in
            // tmpfs terms if it only shadows whiteouts: clear it first.
            if dir { u.entries.removeAll(); u.order.removeAll() }
            if case .failure(let e) = pu.unlink(name, dir: dir) { return .failure(e) }
        }
        if c.lower != nil { whiteouts.insert(name) }
        children[name] = nil
        return .success(())
    }

    override func rename(_ old: [UInt8], to newDir: Inode, _ new: [UInt8], flags: UInt32) -> Result<Void, Errno> {
        guard let nd = newDir as? OverlayInode else { return .failure(Errno(EXDEV)) }
        guard case .success(let si) = lookup(old), let src = si as? OverlayInode else { return .failure(Errno(ENOENT)) }
        if flags & 2 != 0 { return exchange(src, old, nd, new) }
        if src.isDir && src.lower != nil { return .failure(Errno(EXDEV)) }
        var dst: OverlayInode? = nil
        if case .success(let di) = nd.lookup(new) { dst = di as? OverlayInode }
        if let d = dst {
            if d === src { return .success(()) }
            if flags & 1 != 0 { return .failure(Errno(EEXIST)) }
            if src.isDir && !d.isDir { return .failure(Errno(ENOTDIR)) }
            if !src.isDir && d.isDir { return .failure(Errno(EISDIR)) }
            if d.isDir && !d.isEmptyDir() { return .failure(Errno(ENOTEMPTY)) }
        }
        let su: TmpfsInode
        switch src.copyUp() { case .success(let x): su = x; case .failure(let e): return .failure(e) }
        let pu: TmpfsInode, npu: TmpfsInode
        switch copyUp() { case .success(let x): pu = x; case .failure(let e): return .failure(e) }
        switch nd.copyUp() { case .success(let x): npu = x; case .failure(let e): return .failure(e) }
        if let d = dst {
            if let du = d.upper, npu.entries[new] === du {
                if d.isDir { du.entries.removeAll(); du.order.removeAll() }
                _ = npu.unlink(new, dir: d.isDir)
            }
            if d.lower != nil { nd.whiteouts.insert(new) }
            nd.children[new] = nil
        }
        // Move the upper node.
        pu.entries[old] = nil
        pu.order.removeAll { $0 == old }
        npu.entries[new] = su
        npu.order.append(new)
        if su.isDir && pu !== npu { pu.nlink -= 1; npu.nlink += 1 }
        pu.renamed(su, to: npu)
        if src.lower != nil { whiteouts.insert(old) }
        children[old] = nil
        // The moved object is upper-only at its new place (a lower file
        // there stays hidden behind it).
        let moved = OverlayInode(lower: nil, upper: su, parent: nd, name: new, upperDev: upperDev)
        if src.lower != nil { moved.ino = src.ino; moved.dev = src.dev }
        nd.whiteouts.remove(new)
        if su.isDir && dst?.lower != nil { moved.opaque = true }
        nd.children[new] = moved
        return .success(())
    }

    /// RENAME_EXCHANGE: both objects move to the upper layer and swap places.
    private func exchange(_ src: OverlayInode, _ old: [UInt8], _ nd: OverlayInode, _ new: [UInt8]) -> Result<Void, Errno> {
        guard case .success(let di) = nd.lookup(new), let dst = di as? OverlayInode else { return .failure(Errno(ENOENT)) }
        if src === dst { return .success(()) }
        // Like rename, a directory with lower contents cannot move.
        if (src.isDir && src.lower != nil) || (dst.isDir && dst.lower != nil) { return .failure(Errno(EXDEV)) }
        let su: TmpfsInode, du: TmpfsInode, pu: TmpfsInode, npu: TmpfsInode
        switch src.copyUp() { case .success(let x): su = x; case .failure(let e): return .failure(e) }
        switch dst.copyUp() { case .success(let x): du = x; case .failure(let e): return .failure(e) }
        switch copyUp() { case .success(let x): pu = x; case .failure(let e): return .failure(e) }
        switch nd.copyUp() { case .success(let x): npu = x; case .failure(let e): return .failure(e) }
        if case .failure(let e) = pu.rename(old, to: npu, new, flags: 2) { return .failure(e) }
        for (dir, name, node, was) in [(self, old, du, dst), (nd, new, su, src)] {
            let c = OverlayInode(lower: nil, upper: node, parent: dir, name: name, upperDev: upperDev)
            if was.lower != nil { c.ino = was.ino; c.dev = was.dev }
            dir.children[name] = c
        }
        return .success(())
    }

    /// The upper layer's store: the nearest upper directory's, up to the root's.
    private var upperStore: UpperStore? {
        var o: OverlayInode? = self
        while let n = o { if let u = n.upper { return u.store }; o = n.parent }
        return nil
    }

    override func readlink() -> Result<[UInt8], Errno> { top.readlink() }
    override func touchAtime() { upper?.touchAtime() }

    override func setattr(_ a: SetAttr) -> Result<Void, Errno> {
        switch copyUp() {
        case .success(let u):
            let r = u.setattr(a)
            mode = u.mode; uid = u.uid; gid = u.gid
            return r
        case .failure(let e): return .failure(e)
        }
    }

    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if isDir { return .success(DirectoryFD(flags: flags, path: nil)) }
        let writes = flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0
        if writes && top.mode & S_IFMT_ == S_IFREG_ {
            switch copyUp() {
            case .success(let u): return u.open(t, flags: flags)
            case .failure(let e): return .failure(e)
            }
        }
        if top.mode & S_IFMT_ == S_IFIFO_ { return fifoOpen(self, t, flags) }
        return top.open(t, flags: flags)
    }
}
