// process_vm_readv and process_vm_writev: copies between the caller's memory
// and another process's, each side described by an iovec array.
//
// The Sentry copies through its own buffer with the two tasks' memory
// accessors (the same ones every syscall uses on its caller), so nothing of
// the request reaches the host as given. Checks follow Linux: flags must be
// 0; the local vector is read first and an empty one returns 0 before the
// target is looked up; the target needs the ptrace "attach" permission with
// real credentials (same process, or the caller's real uid/gid equal to all
// of the target's uids/gids, or CAP_SYS_PTRACE), else EPERM. Copies go page
// by page and stop at the first page that cannot be copied: bytes copied so
// far are returned, EFAULT when there were none.

import CMoat
import Glibc

func registerProcessVM(_ t: SyscallTable) {
    t[310] = { t, a in sysProcessVM(t, a, write: false) }                    // process_vm_readv
    t[311] = { t, a in sysProcessVM(t, a, write: true) }                     // process_vm_writev
}

/// An iovec array of the caller: (base, length) pairs, EINVAL for a count
/// over IOV_MAX or a negative length, EFAULT when unreadable.
private func readIovecs(_ t: Task, _ addr: UInt64, _ count: UInt64) -> Result<[(UInt64, Int)], Errno> {
    if count > 1024 { return .failure(Errno(EINVAL)) }
    if count == 0 { return .success([]) }
    guard let b = t.copyIn(addr, Int(count) * 16) else { return .failure(Errno(EFAULT)) }
    return decodeIovecs(b, count: Int(count))
}

/// Whether `t` may read and write `target`'s memory (ptrace attach mode,
/// real credentials, or with `fsCreds` the file-system ones as /proc
/// checks), as Linux's ptrace_may_access decides, with Landlock as its
/// only LSM: a sandboxed process reaches only its own domain and the
/// domains nested in it, and the capability module's rule: a target in
/// another user namespace, or holding a permitted capability the caller
/// lacks, needs CAP_SYS_PTRACE over the target's namespace (so a process
/// that made itself a user namespace reaches nothing outside it). A
/// process that is not dumpable needs CAP_SYS_PTRACE too, in every mode.
func mayAttach(_ t: Task, _ target: ThreadGroup, fsCreds: Bool = false) -> Bool {
    if target === t.tg { return true }
    let c = t.creds, o = target.creds
    if let d = c.landlock, !d.encloses(o.landlock) { return false }
    let ptraceCap = c.capable(Cap.sysPtrace, in: o.userNS)
    let uid = fsCreds ? c.fsuid : c.uid, gid = fsCreds ? c.fsgid : c.gid
    let same = uid == o.uid && uid == o.euid && uid == o.suid
        && gid == o.gid && gid == o.egid && gid == o.sgid
    if !same && !ptraceCap { return false }
    // Linux compares the target's permitted set with the caller's effective
    // one in the file-system mode; the permitted one here in both modes, as
    // gVisor's ptrace programs expect of a caller that only lowered its
    // effective CAP_SYS_PTRACE (what was dropped from permitted still counts).
    if !(c.userNS === o.userNS && o.capPrm & ~c.capPrm == 0) && !ptraceCap { return false }
    return target.dumpable != 0 || ptraceCap
}

private func sysProcessVM(_ t: Task, _ a: Args, write: Bool) -> Int {
    if a.a5 != 0 { return err(EINVAL) }
    let local: [(UInt64, Int)], remote: [(UInt64, Int)]
    switch readIovecs(t, a.a1, a.a2) { case .success(let v): local = v; case .failure(let e): return e.ret }
    if local.allSatisfy({ $0.1 == 0 }) { return 0 }
    switch readIovecs(t, a.a3, a.a4) { case .success(let v): remote = v; case .failure(let e): return e.ret }
    let pid = a.int(0)
    guard pid > 0, let target = t.kernel.task(pid, by: t), !target.tg.zombie else { return err(ESRCH) }
    if !mayAttach(t, target.tg) { return err(EPERM) }
    if !target.awaitThread(by: t) { return err(ESRCH) }

    var li = 0, lOff = 0, copied = 0
    var buf = [UInt8](repeating: 0, count: 4096)
    outer: for (rBase, rLen) in remote where rLen > 0 {
        var rOff = 0
        while rOff < rLen {
            while li < local.count && lOff == local[li].1 { li += 1; lOff = 0 }
            if li == local.count { break outer }
            // One chunk: within a page of the remote side and within the
            // current local segment.
            let rAddr = rBase &+ UInt64(rOff)
            let n = min(rLen - rOff, local[li].1 - lOff, Int(4096 - (rAddr & 4095)))
            let lAddr = local[li].0 &+ UInt64(lOff)
            let ok = buf.withUnsafeMutableBytes { p -> Bool in
                if write {
                    return t.memRead(lAddr, p.baseAddress!, n) == n && target.memWrite(rAddr, p.baseAddress!, n) == n
                }
                return target.memRead(rAddr, p.baseAddress!, n) == n && t.memWrite(lAddr, p.baseAddress!, n) == n
            }
            if !ok { break outer }
            copied += n; rOff += n; lOff += n
        }
    }
    if copied == 0 && (local.contains { $0.1 > 0 } && remote.contains { $0.1 > 0 }) {
        // Nothing copied although both sides asked for bytes: a fault.
        return err(EFAULT)
    }
    return copied
}
