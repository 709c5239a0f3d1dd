// name_to_handle_at(2) and open_by_handle_at(2): file handles.
//
// A handle names a file without a path. Linux builds one from the file
// system's own inode identity (export operations); the Sentry's files are
// Gofer, tmpfs and overlay inodes with no such identity to decode, so a
// handle is an index into the sandbox's table of files handed out, kept
// for the sandbox's life: the same file (dentry) always gets the same
// handle, and a handle never names another file. open_by_handle_at decodes
// it only through a descriptor on the same file system (mount_fd: ESTALE
// otherwise, as a handle is only meaningful to its own file system) and
// needs CAP_DAC_READ_SEARCH, as on Linux. Files of procfs, sysfs and the
// anonymous ones (pipes, sockets) cannot be handled: EOPNOTSUPP, as Linux's
// file systems without export operations.

import Glibc

/// The files handles were made for. Guarded by Kernel.mu.
final class FileHandleTable {
    private var paths: [Path] = []
    private var index: [ObjectIdentifier: UInt64] = [:]

    /// The handle of `p`'s file, made on first use.
    func handle(_ p: Path) -> UInt64 {
        if let h = index[ObjectIdentifier(p.dentry)] { return h }
        paths.append(p)
        let h = UInt64(paths.count)
        index[ObjectIdentifier(p.dentry)] = h
        return h
    }

    func path(_ h: UInt64) -> Path? { h >= 1 && h <= UInt64(paths.count) ? paths[Int(h - 1)] : nil }
}

/// What the handle's bytes are: the table index, 8 bytes.
private let handleBytes: UInt32 = 8
/// Linux's MAX_HANDLE_SZ.
private let maxHandleBytes: UInt32 = 128
/// The handle type Moat's handles carry (any positive type is opaque to
/// the caller; 1 is Linux's FILEID_INO32_GEN).
private let handleType: Int32 = 1

/// Whether the files of `p`'s file system can be handled (Linux: the file
/// systems with export operations; not procfs or sysfs).
private func handleable(_ p: Path) -> Bool {
    !(p.inode is ProcNode || p.inode is SysctlInode) && p.mount.fsType != "proc" && p.mount.fsType != "sysfs"
}

func registerFileHandles(_ t: SyscallTable) {
    t[303] = sysNameToHandleAt
    t[304] = sysOpenByHandleAt
}

/// name_to_handle_at(dirfd, path, handle, mount_id, flags), with Linux's
/// checks in its order: the flags, the lookup, whether the file system can
/// make handles (EOPNOTSUPP), the handle's header (EFAULT,
/// EINVAL past MAX_HANDLE_SZ), then EOVERFLOW with the size needed when the
/// caller's is too small (the mount id is written either way).
func sysNameToHandleAt(_ t: Task, _ a: Args) -> Int {
    let AT_HANDLE_FID: Int32 = 0x200, AT_SYMLINK_FOLLOW: Int32 = 0x400
    let AT_HANDLE_MNT_ID_UNIQUE: Int32 = 0x1, AT_HANDLE_CONNECTABLE: Int32 = 0x2
    let flags = a.int(4)
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH_ | AT_HANDLE_FID | AT_HANDLE_MNT_ID_UNIQUE | AT_HANDLE_CONNECTABLE) != 0 { return err(EINVAL) }
    // A handle that only identifies a file cannot also be one to open it by.
    if flags & AT_HANDLE_FID != 0 && flags & AT_HANDLE_CONNECTABLE != 0 { return err(EINVAL) }
    let p: Path
    switch t.lookup(a.int(0), a.a1, follow: flags & AT_SYMLINK_FOLLOW != 0, emptyOK: flags & AT_EMPTY_PATH_ != 0) {
    case .success(let r): p = r
    case .failure(let e): return e.ret
    }
    // AT_HANDLE_FID: a handle only to tell files apart, which any file
    // system gives (open_by_handle_at then finds the file all the same).
    if flags & AT_HANDLE_FID == 0 && !handleable(p) { return err(EOPNOTSUPP) }
    guard let head = t.copyIn(a.a2, 8) else { return err(EFAULT) }
    let room = get32(head, 0)
    if room > maxHandleBytes { return err(EINVAL) }
    let h = t.kernel.fileHandles.handle(p)
    var out = [UInt8](repeating: 0, count: 8)
    put32(&out, 0, Int32(handleBytes)); put32(&out, 4, handleType)
    let fits = room >= handleBytes
    if fits {
        var body = [UInt8](repeating: 0, count: 8)
        put64(&body, 0, h)
        out += body
    }
    // The mount id: AT_HANDLE_MNT_ID_UNIQUE asks for the 64-bit one (Moat's
    // ids are never reused: the same number).
    let idOK = flags & AT_HANDLE_MNT_ID_UNIQUE != 0 ? t.writeU64(a.a3, UInt64(p.mount.id)) : t.writeI32(a.a3, Int32(truncatingIfNeeded: p.mount.id))
    if !idOK || !t.copyOut(a.a2, out) { return err(EFAULT) }
    return fits ? 0 : err(EOVERFLOW)
}

/// open_by_handle_at(mount_fd, handle, flags): CAP_DAC_READ_SEARCH (EPERM),
/// mount_fd (EBADF), the handle's header (EFAULT; EINVAL for a size of 0 or
/// past MAX_HANDLE_SZ), its file on mount_fd's file system (ESTALE), then
/// the open as openat's (a symlink is ELOOP without O_PATH).
func sysOpenByHandleAt(_ t: Task, _ a: Args) -> Int {
    if !t.creds.has(Cap.dacReadSearch) { return err(EPERM) }
    // mount_fd: any descriptor (or AT_FDCWD) on the file system; one with
    // no place in the tree (a pipe) names none, which no handle matches.
    let mountPath: Path?
    if a.int(0) == AT_FDCWD_ { mountPath = t.fs.cwd } else {
        guard let f = t.fds.get(a.int(0)) else { return err(EBADF) }
        mountPath = f.path
    }
    guard let head = t.copyIn(a.a1, 8) else { return err(EFAULT) }
    let size = get32(head, 0)
    if size == 0 || size > maxHandleBytes { return err(EINVAL) }
    guard let body = t.copyIn(a.a1 &+ 8, Int(size)) else { return err(EFAULT) }
    guard size == handleBytes, Int32(bitPattern: get32(head, 4)) == handleType,
          let p = t.kernel.fileHandles.path(get64(body, 0)),
          let m = mountPath, sameFileSystem(p.mount, m.mount) else { return err(ESTALE) }
    let flags = a.int(2)
    if p.inode.isSymlink && flags & O_PATH == 0 { return err(ELOOP) }
    if flags & O_DIRECTORY != 0 && !p.inode.isDir { return err(ENOTDIR) }
    return openResolved(t, p, flags & ~(O_CREAT | O_EXCL))
}

/// Two mounts of one file system (a bind mount shares its source's): the
/// device of their roots.
private func sameFileSystem(_ a: Mount, _ b: Mount) -> Bool {
    if a === b { return true }
    guard case .success(let x) = a.root.inode.stat(), case .success(let y) = b.root.inode.stat() else { return false }
    return x.dev == y.dev && a.fsType == b.fsType
}
