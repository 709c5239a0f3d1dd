// Handlers for extended attributes: getxattr, setxattr, listxattr,
// removexattr, and the two POSIX ACLs (getacl, setacl).
//
// Only the user namespace and the two ACL names cross to the host.
// trusted.* and security.* would let a sandbox that holds an emulated
// CAP_SYS_ADMIN or CAP_SETFCAP (root in a sandbox has every capability)
// place attributes the host kernel acts on, e.g. security.capability grants
// file capabilities to a binary on the host; those stay in the Sentry's
// memory, as they always did. user.* attributes carry no meaning for the
// host kernel, and Linux grants them only on regular files and directories,
// which are exactly the files the Gofer may open; on anything else Linux
// answers ENODATA to a read and EPERM to a change, and so does the Gofer,
// without touching the file.
//
// system.posix_acl_access and system.posix_acl_default do change who may
// reach the file from outside the sandbox, and for that reason stayed in
// the Sentry until session 22. But an ACL grants nothing a chmod and a
// chown of the same file could not: its entries are owner, group and other
// bits plus named uids and gids, and the Gofer already sets any mode and
// any owner the Sentry asks for on the files it serves. So an ACL is served
// like a chown, under three conditions. Its ids are host ids, translated by
// the Sentry exactly as a chown's are (the sandbox's user namespace mapping
// to kernel ids, which are the host's; an id the namespace does not map is
// EINVAL, as in Linux). The value is checked twice, by the Sentry as Linux
// checks it and again here with GoferACL.validate before the host sees it,
// so that a hostile Sentry cannot hand the host kernel a malformed value.
// And only these two names pass, by their own requests (getacl, setacl)
// rather than through the user.* ones, a default ACL only on a directory;
// a host file system without ACLs answers EOPNOTSUPP, as Linux would. The
// host kernel then keeps mode and ACL in step itself (a set access ACL
// sets the mode, a chmod rewrites the mask, a file made in a directory
// with a default ACL inherits it), which is what the Sentry expects and
// mirrors in its cached copy.
//
// A regular file is reopened read-only through (parent, name) with
// O_NOFOLLOW and checked to still be the node's inode (openRegular), a
// directory through its own handle with openat(fd, "."); the f*xattr call
// then acts on that fd, never on a path. (O_PATH handles do not take
// f*xattr calls, hence the reopen.)

import Glibc
import GoferProtocol

extension Server {
    /// An fd on the node's inode for f*xattr calls, and whether it must be
    /// closed; nil with ENODATA for files that cannot have user.* attributes.
    private func xattrFD(_ n: Node) -> (fd: Int32, owned: Bool, error: Int32) {
        switch n.type {
        case UInt32(S_IFDIR):
            let fd = openat(n.fd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            return fd < 0 ? (-1, false, HostSys.lastError) : (fd, true, 0)
        case UInt32(S_IFREG):
            if n.unnamed { return (n.fd, false, 0) }
            let o = openRegular(n, O_RDONLY)
            return o.status != 0 ? (-1, false, o.status) : (o.fd, true, 0)
        default:
            return (-1, false, ENODATA)
        }
    }

    func getxattrOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let name = try r.xattrName()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        return readXattr(n, name, &w)
    }

    /// The reply of getxattr and getacl: the value of `name` on the node's
    /// inode, its length first.
    private func readXattr(_ n: Node, _ name: [UInt8], _ w: inout WireWriter) -> Outcome {
        let (fd, owned, e) = xattrFD(n)
        if e != 0 { return .err(e) }
        defer { if owned { Glibc.close(fd) } }
        return withUnsafeTemporaryAllocation(byteCount: GoferWire.maxXattrValue, alignment: 8) { buf -> Outcome in
            let got = HostSys.fgetxattr(fd, name, buf)
            // A value over XATTR_SIZE_MAX (not settable through Linux's own
            // calls either) cannot be read by anyone.
            if got < 0 { return .err(Int32(-got) == ERANGE ? E2BIG : Int32(-got)) }
            w.u32(UInt32(got))
            w.bytes(UnsafeRawBufferPointer(start: buf.baseAddress, count: got))
            return .ok
        }
    }

    func setxattrOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let flags = Int32(bitPattern: try r.u32())
        let name = try r.xattrName()
        let value = try r.bytes32(max: GoferWire.maxXattrValue)
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        if flags & ~3 != 0 { return .err(EINVAL) }
        if refusesWrite(n) { return .err(EROFS) }
        let (fd, owned, e) = xattrFD(n)
        if e != 0 { return .err(e == ENODATA ? EPERM : e) }
        defer { if owned { Glibc.close(fd) } }
        let se = HostSys.fsetxattr(fd, name, value, flags)
        return se == 0 ? .ok : .err(se)
    }

    func listxattrOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        let (fd, owned, e) = xattrFD(n)
        if e == ENODATA { w.u32(0); return .ok }   // no user.* here, and no other names are shown
        if e != 0 { return .err(e) }
        defer { if owned { Glibc.close(fd) } }
        return withUnsafeTemporaryAllocation(byteCount: GoferWire.maxXattrList, alignment: 8) { buf -> Outcome in
            let got = HostSys.flistxattr(fd, buf)
            if got < 0 { return .err(Int32(-got) == ERANGE ? E2BIG : Int32(-got)) }
            // Keep the user.* names (the host may list security.* ones too).
            var out: [UInt8] = []
            var start = 0
            let bytes = UnsafeRawBufferPointer(start: buf.baseAddress, count: got)
            let prefix = Array("user.".utf8)
            for i in 0..<got where bytes[i] == 0 {
                let name = Array(bytes[start..<i])
                if GoferNames.validateXattrName(name) == 0 && name.starts(with: prefix) {
                    out += name; out.append(0)
                }
                start = i + 1
            }
            w.bytes32(out)
            return .ok
        }
    }

    func removexattrOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let name = try r.xattrName()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        if refusesWrite(n) { return .err(EROFS) }
        let (fd, owned, e) = xattrFD(n)
        if e != 0 { return .err(e == ENODATA ? EPERM : e) }
        defer { if owned { Glibc.close(fd) } }
        let re = HostSys.fremovexattr(fd, name)
        return re == 0 ? .ok : .err(re)
    }

    func getaclOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let kind = try r.aclKind()
        try r.finish()
        guard let n = node(fid) else { return .err(EBADF) }
        if n.type == UInt32(S_IFLNK) { return .err(EOPNOTSUPP) }
        return readXattr(n, Array(kind.xattrName.utf8), &w)
    }

    func setaclOp(_ r: inout WireReader, _ w: inout WireWriter) throws(WireError) -> Outcome {
        let fid = try r.u64()
        let kind = try r.aclKind()
        let value = try r.bytes32(max: GoferWire.maxXattrValue)
        try r.finish()
        // Checked before anything else: a malformed value never reaches the host.
        if !value.isEmpty && GoferACL.validate(value) != 0 { return .err(EINVAL) }
        guard let n = node(fid) else { return .err(EBADF) }
        if refusesWrite(n) { return .err(EROFS) }
        switch n.type {
        case UInt32(S_IFDIR): break
        case UInt32(S_IFREG): if kind == .default { return .err(value.isEmpty ? 0 : EACCES) }
        default: return .err(EOPNOTSUPP)
        }
        let (fd, owned, e) = xattrFD(n)
        if e != 0 { return .err(e) }
        defer { if owned { Glibc.close(fd) } }
        let name = Array(kind.xattrName.utf8)
        let se = value.isEmpty ? HostSys.fremovexattr(fd, name) : HostSys.fsetxattr(fd, name, value, 0)
        return se == 0 ? .ok : .err(se)
    }
}
