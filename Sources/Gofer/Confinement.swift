// Confines the Gofer process before it serves anything. Every step must
// succeed or the Gofer refuses to run (fail closed); the only tolerated
// fallback is chroot when pivot_root is impossible (e.g. an initramfs root).
//
//  1. unshare(CLONE_NEWNS) and make every mount private, so nothing below
//     propagates back to the host.
//  2. Bind-mount the root onto itself (pivot_root needs a mount point),
//     read-only when serving read-only. With `scratch`, first a detached,
//     still writable clone of that bind mount (open_tree OPEN_TREE_CLONE):
//     the directory `scratch` makes its unnamed files in (Wire.swift's
//     opcode 23). Its root is the served root and it has no parent mount,
//     so ".." cannot climb out of it either; the Server uses it only for
//     O_TMPFILE | O_EXCL.
//  3. chdir into it, pivot_root(".", ".") and lazily unmount the old root that
//     now sits on top: the host's filesystem is gone from this namespace.
//  4. Close every fd except the socket (and stderr until serving starts).
//  5. PR_SET_NO_NEW_PRIVS, clear ambient capabilities, drop every capability
//     from the bounding set except the file-serving ones, then capset() the
//     effective/permitted sets to exactly those (inheritable empty).
//
//  6. (in Gofer.run, once the root is open) the seccomp allow-list.

import Glibc

enum Confinement {
    /// Capabilities the Gofer keeps: it acts on files on behalf of any guest
    /// user (ownership, permission bypass, set-id preservation) and nothing
    /// else. Not CAP_MKNOD: the Gofer refuses device nodes itself (EPERM),
    /// and FIFOs, sockets and regular files need none. Not CAP_SYS_CHROOT:
    /// nothing after confinement chroots, and with it a subverted Gofer that
    /// fell back to chroot could chroot again and climb out.
    static let keptCapabilities: [Int] = [
        0,  // CAP_CHOWN: files made for a guest user get that user's ids
        1,  // CAP_DAC_OVERRIDE: the Sentry checks permissions as the guest's kernel
        2,  // CAP_DAC_READ_SEARCH: linkat(AT_EMPTY_PATH) of an open file
        3,  // CAP_FOWNER: chmod/utimes/xattrs on files the Gofer's uid does not own
        4,  // CAP_FSETID: set-id bits kept across the guest's chmod/chown
    ]

    /// Returns an O_PATH fd on the (new) root and the scratch directory's
    /// fd (-1 without `scratch`, or when the clone could not be made: the
    /// Sentry then keeps its bytes in memory), or why confinement failed.
    static func confine(root: String, socketFD: Int32, readOnly: Bool, scratch: Bool = false)
        -> Result<(root: Int32, scratch: Int32), ConfinementError> {
        guard root.hasPrefix("/") else { return .failure(ConfinementError("root must be an absolute path: \(root)")) }
        var st = stat()
        guard stat(root, &st) == 0, UInt32(st.st_mode) & UInt32(S_IFMT) == UInt32(S_IFDIR) else {
            return .failure(ConfinementError("root \(root) is not a directory: \(describe(errno))"))
        }
        var sockStat = stat()
        guard fstat(socketFD, &sockStat) == 0, UInt32(sockStat.st_mode) & UInt32(S_IFMT) == UInt32(S_IFSOCK) else {
            return .failure(ConfinementError("fd \(socketFD) is not a socket"))
        }

        if HostSys.syscall(HostSys.SYS_unshare, HostSys.CLONE_NEWNS) != 0 {
            return .failure(ConfinementError("unshare(CLONE_NEWNS): \(describe(errno))"))
        }
        if mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 {
            return .failure(ConfinementError("making mounts private: \(describe(errno))"))
        }
        if mount(root, root, nil, UInt(MS_BIND | MS_REC), nil) != 0 {
            return .failure(ConfinementError("bind-mounting \(root): \(describe(errno))"))
        }
        var scratchFD: Int32 = -1
        if scratch {
            let r = root.withCString {
                HostSys.syscall(HostSys.SYS_open_tree, Int(AT_FDCWD), Int(bitPattern: $0), HostSys.OPEN_TREE_CLONE | Int(O_CLOEXEC))
            }
            scratchFD = r >= 0 ? Int32(r) : -1
        }
        if readOnly && mount(nil, root, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil) != 0 {
            return .failure(ConfinementError("remounting \(root) read-only: \(describe(errno))"))
        }
        if chdir(root) != 0 { return .failure(ConfinementError("chdir(\(root)): \(describe(errno))")) }
        let pivoted = ".".withCString { dot in
            HostSys.syscall(HostSys.SYS_pivot_root, Int(bitPattern: dot), Int(bitPattern: dot)) == 0
        }
        if pivoted {
            if umount2(".", Int32(MNT_DETACH)) != 0 {
                return .failure(ConfinementError("detaching the old root: \(describe(errno))"))
            }
        } else if chroot(".") != 0 {
            return .failure(ConfinementError("pivot_root and chroot both failed: \(describe(errno))"))
        }
        if chdir("/") != 0 { return .failure(ConfinementError("chdir(/): \(describe(errno))")) }

        raiseFileLimit()
        if let e = closeInheritedFDs(keep: [socketFD, scratchFD]) { return .failure(ConfinementError(e)) }

        let rootFD = open("/", HostSys.O_PATH | O_DIRECTORY | O_CLOEXEC)
        if rootFD < 0 { return .failure(ConfinementError("opening the new root: \(describe(errno))")) }

        if let e = dropPrivileges(keep: keptCapabilities) {
            Glibc.close(rootFD)
            return .failure(ConfinementError(e))
        }
        return .success((rootFD, scratchFD))
    }

    /// Closes every fd except those in `keep` (-1s ignored) and stderr
    /// (closed when serving starts).
    private static func closeInheritedFDs(keep: [Int32]) -> String? {
        var lo: UInt32 = 0
        for k in Set(keep.filter { $0 >= 0 }.map(UInt32.init) + [2]).sorted() {
            if k > lo, let e = closeRange(lo, k - 1) { return e }
            lo = k + 1
        }
        return closeRange(lo, UInt32.max)
    }

    private static func closeRange(_ lo: UInt32, _ hi: UInt32) -> String? {
        if HostSys.syscall(HostSys.SYS_close_range, Int(lo), Int(hi), 0) == 0 { return nil }
        guard errno == ENOSYS else { return "close_range: \(describe(errno))" }
        // Pre-5.9 kernel: close one by one up to the fd limit.
        var lim = rlimit()
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        let top = min(UInt64(hi), UInt64(min(lim.rlim_cur, 1 << 20)))
        var fd = UInt64(lo)
        while fd <= top {
            Glibc.close(Int32(fd))
            fd += 1
        }
        return nil
    }

    /// Every FID holds an fd: allow as many as the hard limit permits.
    private static func raiseFileLimit() {
        var lim = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        }
    }

    private static func dropPrivileges(keep: [Int]) -> String? {
        if HostSys.prctl(HostSys.PR_SET_NO_NEW_PRIVS, 1) != 0 {
            return "PR_SET_NO_NEW_PRIVS: \(describe(errno))"
        }
        // Ambient capabilities may be unsupported (EINVAL) on old kernels: then there are none.
        let amb = HostSys.prctl(HostSys.PR_CAP_AMBIENT, HostSys.PR_CAP_AMBIENT_CLEAR_ALL)
        if amb != 0 && amb != EINVAL { return "clearing ambient capabilities: \(describe(amb))" }
        var dropped = 0
        for cap in 0..<64 where !keep.contains(cap) {
            let e = HostSys.prctl(HostSys.PR_CAPBSET_DROP, cap)
            if e == EINVAL { break } // past the kernel's last capability
            if e != 0 { return "dropping capability \(cap) from the bounding set: \(describe(e))" }
            dropped += 1
        }
        if dropped == 0 { return "could not drop any capability from the bounding set" }

        var mask: UInt32 = 0
        for cap in keep { mask |= 1 << UInt32(cap) }
        // struct __user_cap_header_struct { u32 version; int pid; }
        var header: (UInt32, Int32) = (HostSys.LINUX_CAPABILITY_VERSION_3, 0)
        // struct __user_cap_data_struct[2] { u32 effective, permitted, inheritable; }
        var data: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (mask, mask, 0, 0, 0, 0)
        let rc = withUnsafeMutableBytes(of: &header) { h in
            withUnsafeMutableBytes(of: &data) { d in
                HostSys.syscall(HostSys.SYS_capset, Int(bitPattern: h.baseAddress), Int(bitPattern: d.baseAddress))
            }
        }
        if rc != 0 { return "capset: \(describe(errno))" }
        return nil
    }

    private static func describe(_ e: Int32) -> String {
        "\(String(cString: strerror(e))) (errno \(e))"
    }
}

struct ConfinementError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
