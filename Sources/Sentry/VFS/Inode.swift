// The VFS's file-system-independent layer: inodes, dentries, mounts, and
// open file descriptions. File systems (FSImpl/) subclass Inode and
// FileDescription.

import CMoat
import Glibc

struct Stat {
    var dev: UInt64 = 0, ino: UInt64 = 0, nlink: UInt64 = 1, mode: UInt32 = 0
    var uid: UInt32 = 0, gid: UInt32 = 0, rdev: UInt64 = 0, size: Int64 = 0
    var blksize: Int64 = 4096, blocks: Int64 = 0
    var atime = (Int64(0), Int64(0)), mtime = (Int64(0), Int64(0)), ctime = (Int64(0), Int64(0))

    /// struct stat of x86-64 (144 bytes).
    func bytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 144)
        put64(&b, 0, dev); put64(&b, 8, ino); put64(&b, 16, nlink)
        put32(&b, 24, Int32(bitPattern: mode)); put32(&b, 28, Int32(bitPattern: uid)); put32(&b, 32, Int32(bitPattern: gid))
        put64(&b, 40, rdev); put64(&b, 48, UInt64(bitPattern: size)); put64(&b, 56, UInt64(bitPattern: blksize))
        put64(&b, 64, UInt64(bitPattern: blocks))
        put64(&b, 72, UInt64(bitPattern: atime.0)); put64(&b, 80, UInt64(bitPattern: atime.1))
        put64(&b, 88, UInt64(bitPattern: mtime.0)); put64(&b, 96, UInt64(bitPattern: mtime.1))
        put64(&b, 104, UInt64(bitPattern: ctime.0)); put64(&b, 112, UInt64(bitPattern: ctime.1))
        return b
    }
}

struct DirEntry { var ino: UInt64; var type: UInt8; var name: [UInt8] }

let S_IFMT_: UInt32 = 0o170000
let S_IFDIR_: UInt32 = 0o040000
let S_IFREG_: UInt32 = 0o100000
let S_IFLNK_: UInt32 = 0o120000
let S_IFCHR_: UInt32 = 0o020000
let S_IFIFO_: UInt32 = 0o010000
let S_IFSOCK_: UInt32 = 0o140000
let S_IFBLK_: UInt32 = 0o060000

func dtype(_ mode: UInt32) -> UInt8 { UInt8((mode & S_IFMT_) >> 12) }

func nowTimespec() -> (Int64, Int64) {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return (Int64(ts.tv_sec), Int64(ts.tv_nsec))
}

/// Attributes to change (chmod, chown, truncate, utimes).
struct SetAttr {
    var mode: UInt32? = nil
    var uid: UInt32? = nil
    var gid: UInt32? = nil
    var size: Int64? = nil
    var atime: (Int64, Int64)? = nil
    var mtime: (Int64, Int64)? = nil
    /// Times given by the caller (not "now"): only the owner may set them.
    var explicitTimes = false
}

/// A file system object. Methods default to the error Linux gives for a
/// file that does not support the operation.
class Inode {
    var ino: UInt64
    var mode: UInt32
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var nlink: UInt64 = 1
    var rdev: UInt64 = 0
    var atime = nowTimespec(), mtime = nowTimespec(), ctime = nowTimespec()
    var dev: UInt64

    /// Open descriptions that may write this file, and address spaces
    /// running it: the two signs of Linux's i_writecount. While one is
    /// nonzero the other may not grow: opening a running program for
    /// writing, and executing a file open for writing, are ETXTBSY.
    var writers = 0
    var runners = 0

    init(ino: UInt64, mode: UInt32, dev: UInt64) { self.ino = ino; self.mode = mode; self.dev = dev }

    var isDir: Bool { mode & S_IFMT_ == S_IFDIR_ }
    var isSymlink: Bool { mode & S_IFMT_ == S_IFLNK_ }
    var isRegular: Bool { mode & S_IFMT_ == S_IFREG_ }

    var size: Int64 { 0 }
    func stat() -> Result<Stat, Errno> {
        var s = Stat()
        s.dev = dev; s.ino = ino; s.nlink = nlink; s.mode = mode; s.uid = uid; s.gid = gid
        s.rdev = rdev; s.size = size; s.blocks = size / 512 + (size % 512 != 0 ? 1 : 0)   // no overflow at Int64.max
        s.atime = atime; s.mtime = mtime; s.ctime = ctime
        return .success(s)
    }
    /// Whether a lookup result may be kept in the dentry cache.
    var cacheable: Bool { true }

    func lookup(_ name: [UInt8]) -> Result<Inode, Errno> { .failure(Errno(ENOTDIR)) }
    func readdir() -> Result<[DirEntry], Errno> { .failure(Errno(ENOTDIR)) }
    func create(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32, flags: Int32) -> Result<(Inode, FileDescription?), Errno> { .failure(Errno(isDir ? EPERM : ENOTDIR)) }
    func mkdir(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> { .failure(Errno(isDir ? EPERM : ENOTDIR)) }
    func symlink(_ name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) -> Result<Inode, Errno> { .failure(Errno(isDir ? EPERM : ENOTDIR)) }
    func link(_ name: [UInt8], _ target: Inode) -> Result<Inode, Errno> { .failure(Errno(isDir ? EPERM : ENOTDIR)) }
    func mknod(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> { .failure(Errno(isDir ? EPERM : ENOTDIR)) }
    /// A character or block device node (`rdev` in the kernel's 32-bit
    /// encoding). Only file systems in Sentry memory hold them: the node is a
    /// name with a number, and opening it reaches a Sentry-emulated device or
    /// nothing (ENXIO), never a host device. Others: EPERM (no mknod).
    func mknodDevice(_ name: [UInt8], mode: UInt32, rdev: UInt64, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> { .failure(Errno(isDir ? EPERM : ENOTDIR)) }
    func unlink(_ name: [UInt8], dir: Bool) -> Result<Void, Errno> { .failure(Errno(isDir ? EPERM : ENOTDIR)) }
    func rename(_ old: [UInt8], to newDir: Inode, _ new: [UInt8], flags: UInt32) -> Result<Void, Errno> { .failure(Errno(EXDEV)) }
    func readlink() -> Result<[UInt8], Errno> { .failure(Errno(EINVAL)) }
    /// open(O_TMPFILE) in this directory: a new regular file with no name
    /// (`exclusive`: O_EXCL, never to be linked).
    func createTmpfile(mode: UInt32, uid: UInt32, gid: UInt32, exclusive: Bool) -> Result<Inode, Errno> { .failure(Errno(EOPNOTSUPP)) }
    /// procfs links that name an object rather than a path (exe, cwd, root, fd/N).
    var isMagicLink: Bool { false }
    /// An O_TMPFILE file opened without O_EXCL may get a name with linkat.
    var linkableWhenUnlinked = false
    func setattr(_ a: SetAttr) -> Result<Void, Errno> {
        if let m = a.mode { mode = (mode & S_IFMT_) | (m & 0o7777) }
        if let u = a.uid { uid = u }
        if let g = a.gid { gid = g }
        if let t = a.atime { atime = t }
        if let t = a.mtime { mtime = t }
        ctime = nowTimespec()
        return .success(())
    }
    func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> { .failure(Errno(ENXIO)) }
    /// The file was read, listed or (a symlink) followed: file systems
    /// whose times the Sentry keeps move atime (Linux's relatime rule);
    /// host-backed ones leave it to the host.
    func touchAtime() {}
    /// statfs f_type.
    var fsMagic: Int64 { 0x01021994 }
}

/// A name in the tree. Dentries are cached: an Inode is reached by one
/// Dentry per path, which gives `..`, getcwd and /proc paths.
final class Dentry {
    var name: [UInt8]
    var parent: Dentry?
    var inode: Inode
    var children: [[UInt8]: Dentry] = [:]
    /// The mounts on this dentry, each under its own parent mount: one
    /// dentry can have a mount in one namespace and none, or another, in
    /// the next (Linux's mount hash, keyed by parent mount and dentry).
    /// Keyed by the parent mount (a dictionary: a mount bound on itself
    /// thousands of times stacks that many here).
    var mountsHere: [ObjectIdentifier: Mount] = [:]
    /// The mount on this dentry as seen through `parent`.
    @inline(__always) func mounted(under parent: Mount) -> Mount? {
        if mountsHere.isEmpty { return nil }
        return mountsHere[ObjectIdentifier(parent)]
    }
    /// Unlinked (or replaced by a rename): no longer reachable by name.
    var dead = false

    init(name: [UInt8], parent: Dentry?, inode: Inode) {
        self.name = name; self.parent = parent; self.inode = inode
    }

    func child(_ name: [UInt8]) -> Result<Dentry, Errno> {
        if let d = children[name] { return .success(d) }
        switch inode.lookup(name) {
        case .success(let ino):
            let d = Dentry(name: name, parent: self, inode: ino)
            if ino.cacheable { children[name] = d }
            return .success(d)
        case .failure(let e):
            return .failure(e)
        }
    }
}

final class Mount {
    let root: Dentry
    /// Where the mount is attached: pivot_root and MS_MOVE move it.
    var mountpoint: Dentry?
    var parent: Mount?
    let fsType: String
    let source: String
    var readOnly = false
    /// The per-mount flags (MountFlags: nosuid, nodev, noexec and the
    /// atime rule), as /proc/PID/mountinfo shows them.
    var flags: UInt64 = MountFlags.relatime
    /// Propagation (mount(2)'s MS_SHARED, MS_SLAVE, MS_UNBINDABLE): the
    /// peer group this mount shares events with (0: none), the group it
    /// receives them from as a slave (0: none), and whether it may be bound.
    var peerGroup = 0
    var masterGroup = 0
    var unbindable = false
    /// The file system's own options in mountinfo (tmpfs's "mode=700").
    var superOptions = ""
    /// Where the root is in its file system (mountinfo's root field: a
    /// bind mount of a subdirectory shows it).
    var rootPath = "/"
    /// The mount id of /proc/PID/mountinfo and statx's stx_mnt_id: unique
    /// for the Sentry's life, never reused (the first is 20).
    let id: Int
    private nonisolated(unsafe) static var lastID = 19
    /// The root of a container's mount namespace in a pod Sentry
    /// (Kernel/Pod.swift): `..` never climbs above it and paths are shown
    /// relative to it, whatever the process's own root (chroot) is.
    var namespaceID: String? = nil
    /// umount2's MNT_EXPIRE mark, set by the first such call.
    var expiryMarked = false
    /// Its mount namespace (VFS/MountNamespace.swift); nil for a mount in
    /// no tree (memfd's) and once its namespace has died.
    weak var ns: MountNamespace?
    /// Copied into a namespace of a less privileged user namespace
    /// (MNT_LOCKED): it cannot be unmounted alone or moved, and the flags
    /// in `lockedFlags` (MountFlags.lockable and MS_RDONLY) cannot be
    /// cleared by a remount.
    var locked = false
    var lockedFlags: UInt64 = 0
    init(root: Dentry, mountpoint: Dentry?, parent: Mount?, fsType: String, source: String) {
        self.root = root; self.mountpoint = mountpoint; self.parent = parent; self.fsType = fsType; self.source = source
        Mount.lastID += 1
        id = Mount.lastID
    }
}

/// A position in the mount tree.
struct Path {
    var mount: Mount
    var dentry: Dentry
    var inode: Inode { dentry.inode }
}
