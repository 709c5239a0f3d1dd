// brk, mmap, munmap, mprotect, mremap, madvise, mlock, mincore, and the
// NUMA memory policies (set_mempolicy, get_mempolicy, mbind).

import CMoat
import Glibc

func registerMemory(_ t: SyscallTable) {
    registerMempolicy(t)
    t[12] = { t, a in Int(bitPattern: UInt(t.mm.brk(t, a.a0))) }                                // brk
    t[9] = { t, a in                                                          // mmap
        let r = sysMmap(t, a)
        // MAP_POPULATE faults the pages in now, as Linux does (they count
        // in the resident set, ru_maxrss): a write fault for a private
        // writable mapping, a read fault otherwise. Its failure is no
        // error of mmap's (Linux ignores it too). Not on KVM (no host
        // process holds the pages).
        let prot = a.int(2), flags = a.int(3)
        if r >= 0 && flags & 0x8000 != 0 && prot != PROT_NONE && t.thread.hasStub {
            let write = prot & PROT_WRITE != 0 && flags & 0xf == MAP_PRIVATE
            _ = t.thread.inject(28 /* madvise */, UInt64(r), pageUp(a.a1), write ? 23 /* MADV_POPULATE_WRITE */ : 22 /* MADV_POPULATE_READ */)
        }
        return r
    }
    t[11] = { t, a in t.mm.unmap(t, addr: a.a0, len: a.a1) }                  // munmap
    t[10] = { t, a in                                                           // mprotect
        let rier = a.int(2) & PROT_READ != 0 && t.personality & Personality.readImpliesExec != 0
        return t.mm.protect(t, addr: a.a0, len: a.a1, prot: rier ? a.int(2) | PROT_EXEC : a.int(2))
    }
    t[25] = sysMremap
    t[216] = sysRemapFilePages
    t[462] = { t, a in                                                        // mseal
        // Linux 6.10: no flags; a page-aligned start; the rounded range
        // must not wrap and must be wholly mapped (ENOMEM), then every
        // mapping in it is sealed.
        if a.a2 != 0 || a.a0 & 4095 != 0 { return err(EINVAL) }
        let l = pageUp(a.a1)
        if a.a1 > 0 && l == 0 || a.a0 &+ l < a.a0 { return err(EINVAL) }
        if l == 0 { return 0 }
        guard a.a0 + l <= t.mm.appTop, t.mm.fullyMapped(a.a0, a.a0 + l) else { return err(ENOMEM) }
        t.mm.mark(a.a0, a.a0 + l) { $0.sealed = true }
        return 0
    }
    t[28] = { t, a in                                                         // madvise
        let adv = a.int(2)
        // Linux's madvise_behavior_valid comes first.
        if !(0...4).contains(adv) && !(8...25).contains(adv) && !(100...103).contains(adv) { return err(EINVAL) }
        if a.a0 & 4095 != 0 { return err(EINVAL) }
        // A length that rounds up past the top wraps: EINVAL (Linux checks
        // it before the behaviour's own checks), as does a range that wraps.
        if a.a1 != 0 && pageUp(a.a1) == 0 || a.a0 &+ pageUp(a.a1) < a.a0 { return err(EINVAL) }
        // mseal: advice that discards pages (DONTNEED, FREE, REMOVE,
        // DONTFORK, WIPEONFORK, DONTNEED_LOCKED) may not touch sealed
        // anonymous memory the application cannot write.
        if [4, 8, 9, 10, 18, 24].contains(adv), t.mm.vmas[t.mm.overlapping(a.a0, a.a0 &+ pageUp(a.a1))].contains(where: {
            $0.sealed && $0.flags & MAP_ANONYMOUS != 0 && $0.prot & PROT_WRITE == 0 }) { return err(EPERM) }
        if adv == 10 || adv == 11 /* MADV_DONTFORK, MADV_DOFORK */ {
            // The range becomes mappings of their own that a forked child
            // does not get (MemoryManager.fork); holes are ENOMEM after the
            // mapped parts are marked, as Linux.
            let l = pageUp(a.a1)
            if l == 0 { return 0 }
            let end = a.a0 + l
            t.mm.mark(a.a0, end) { $0.dontFork = adv == 10 }
            // The host's copy of the stub follows (best effort: the
            // Sentry's mappings are what the child sees).
            if end <= t.mm.appTop { _ = t.thread.inject(28, a.a0, l, UInt64(adv)) }
            return t.mm.fullyMapped(a.a0, end) ? 0 : err(ENOMEM)
        }
        if adv == 8 || adv == 9 {
            // MADV_FREE works on anonymous private memory only; MADV_REMOVE
            // on shared memory only (EINVAL for the others).
            let l = pageUp(a.a1)
            for v in t.mm.vmas[t.mm.overlapping(a.a0, a.a0 &+ l)] {
                let anonPrivate = v.flags & MAP_ANONYMOUS != 0 && v.flags & MAP_SHARED == 0
                if adv == 8 && !anonPrivate || adv == 9 && (v.flags & MAP_SHARED == 0 || v.locked) { return err(EINVAL) }
            }
        }
        if adv == 4 /* MADV_DONTNEED */ {
            // Anonymous private pages read back as zero afterwards: let the host do it.
            let l = pageUp(a.a1)
            guard t.mm.validRange(a.a0, max(l, 4096)) else { return err(EINVAL) }
            // Locked pages stay (EINVAL, as Linux's madvise_dontneed_free_valid_vma).
            if t.mm.vmas[t.mm.overlapping(a.a0, a.a0 + l)].contains(where: { $0.locked }) { return err(EINVAL) }
            let r = t.thread.inject(28, a.a0, l, 4)
            if r == 0 { t.mm.pagesDropped(t, a.a0, a.a0 + l) }    // userfaultfd: missing again
            return r
        }
        if adv == 16 || adv == 17 /* MADV_DONTDUMP, MADV_DODUMP */ {
            // Only the Sentry's record changes: core dumps are written from it.
            let l = pageUp(a.a1)
            if l == 0 { return 0 }
            let end = a.a0 + l
            t.mm.mark(a.a0, end) { $0.dontDump = adv == 16 }
            return t.mm.fullyMapped(a.a0, end) ? 0 : err(ENOMEM)
        }
        if adv == 18 || adv == 19 /* MADV_WIPEONFORK, MADV_KEEPONFORK */ {
            // The stub's own mapping carries it: a forked stub's copy of a
            // private anonymous range then reads zero; the host refuses
            // (EINVAL) other kinds of mapping, as Linux does.
            let l = pageUp(a.a1)
            guard t.mm.validRange(a.a0, max(l, 4096)) else { return err(EINVAL) }
            guard t.mm.fullyMapped(a.a0, a.a0 + l) else { return err(ENOMEM) }
            // Private anonymous memory only (the host checks its own
            // mappings too, but on KVM a private file mapping is anonymous
            // memory underneath).
            if adv == 18 && t.mm.vmas[t.mm.overlapping(a.a0, a.a0 + l)].contains(where: { $0.flags & MAP_ANONYMOUS == 0 || $0.flags & MAP_SHARED != 0 }) {
                return err(EINVAL)
            }
            return t.thread.inject(28, a.a0, l, UInt64(adv))
        }
        return 0
    }
    t[26] = { t, a in                                                         // msync
        let flags = a.int(2)
        // MS_ASYNC 1, MS_INVALIDATE 2, MS_SYNC 4 (not both ASYNC and SYNC).
        if a.a0 & 4095 != 0 || flags & ~7 != 0 || flags & 5 == 5 { return err(EINVAL) }
        let l = pageUp(a.a1)
        if l == 0 { return 0 }
        guard a.a0 &+ l > a.a0, t.mm.fullyMapped(a.a0, a.a0 + l) else { return err(ENOMEM) }
        if flags & 2 != 0 && t.mm.vmas[t.mm.overlapping(a.a0, a.a0 + l)].contains(where: { $0.locked }) { return err(EBUSY) }
        // Shared file mappings are host mappings of the file itself, so
        // the file already holds what was written (nothing to flush).
        return 0
    }
    t[149] = { t, a in lockRange(t, a.a0, a.a1, lock: true) }                 // mlock
    t[325] = { t, a in a.uint(2) & ~1 != 0 ? err(EINVAL) : lockRange(t, a.a0, a.a1, lock: true, populate: a.uint(2) == 0) } // mlock2 (MLOCK_ONFAULT)
    t[150] = { t, a in lockRange(t, a.a0, a.a1, lock: false) }                // munlock
    // mlockall: MCL_CURRENT 1, MCL_FUTURE 2, MCL_ONFAULT 4 (only with one of
    // the others). Memory is never swapped out of the sandbox's view, so
    // locking only validates.
    t[151] = { t, a in                                                        // mlockall
        let flags = a.int(0)
        if flags & ~7 != 0 || flags & 3 == 0 { return err(EINVAL) }
        // Without CAP_IPC_LOCK: EPERM when RLIMIT_MEMLOCK is 0, ENOMEM when
        // the current mappings exceed it (MCL_CURRENT), as Linux.
        if !t.creds.has(Cap.ipcLock) {
            let limit = t.tg.rlimits[RL_MEMLOCK].cur
            if limit == 0 { return err(EPERM) }
            if flags & 1 != 0 && t.mm.vmas.reduce(UInt64(0), { $0 + ($1.end - $1.start) }) > limit { return err(ENOMEM) }
        }
        if flags & 1 != 0 { for i in t.mm.vmas.indices { t.mm.vmas[i].locked = true } }
        t.mm.lockFuture = flags & 2 != 0
        return 0
    }
    t[152] = { t, _ in                                                        // munlockall
        for i in t.mm.vmas.indices { t.mm.vmas[i].locked = false }
        t.mm.lockFuture = false
        return 0
    }
    t[27] = { t, a in                                                         // mincore
        if a.a0 & 4095 != 0 { return err(EINVAL) }
        // Linux's access_ok: the range must lie below the top of user
        // space (ENOMEM), checked on the length as given.
        if a.a1 > t.mm.appTop || a.a0 > t.mm.appTop - a.a1 { return err(ENOMEM) }
        let l = pageUp(a.a1)
        let n = Int(l / 4096)
        if n == 0 { return 0 }
        guard a.a0 &+ l > a.a0, a.a0 + l <= t.mm.appTop, t.mm.fullyMapped(a.a0, a.a0 + l) else { return err(ENOMEM) }
        // The host knows which pages it holds: its mincore in the stub,
        // into the caller's vector (EFAULT there is the caller's). KVM:
        // every mapped page counts as resident.
        if t.thread.hasStub {
            // Never a vector the host would write outside the application's
            // part of the stub (the stub page lies above it).
            guard a.a2 &+ UInt64(n) > a.a2, a.a2 + UInt64(n) <= t.mm.appTop else { return err(EFAULT) }
            return t.thread.inject(27 /* mincore */, a.a0, l, a.a2)
        }
        return t.copyOut(a.a2, [UInt8](repeating: 1, count: n)) ? 0 : err(EFAULT)
    }
}

// MARK: NUMA memory policies
//
// The sandbox shows one memory node (node 0, as /sys/devices/system/node
// would on a one-node machine): policies are validated and remembered as
// Linux does on such a machine, and every page is on node 0.

private let MPOL_F_STATIC_NODES: Int32 = 1 << 15, MPOL_F_RELATIVE_NODES: Int32 = 1 << 14
private let MPOL_F_NUMA_BALANCING: Int32 = 1 << 13
private let mpolModeFlags = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING
/// Linux's MAX_NUMNODES (CONFIG_NODES_SHIFT 10): mask bits past it must be 0.
private let maxNumNodes: UInt64 = 1024

/// The mode and its flags, as Linux's sanitize_mpol_flags: modes up to
/// MPOL_WEIGHTED_INTERLEAVE (6), not both node-flags, NUMA balancing only
/// with MPOL_BIND or MPOL_PREFERRED_MANY.
private func mpolMode(_ arg: Int32) -> (mode: Int32, flags: Int32)? {
    let flags = arg & mpolModeFlags, mode = arg & ~mpolModeFlags
    if mode < 0 || mode > 6 { return nil }
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 { return nil }
    if flags & MPOL_F_NUMA_BALANCING != 0 && mode != 2 && mode != 5 { return nil }
    return (mode, flags)
}

/// A node mask from the caller, as Linux's get_nodes: maxnode-1 bits of
/// it (none for a null mask or maxnode 1); more than a page of bits is
/// EINVAL, bits past MAX_NUMNODES must be clear. Returns the low 64 bits
/// and whether any bit at all is set.
private func readNodes(_ t: Task, _ addr: UInt64, _ maxnode: UInt64) -> Result<(low: UInt64, any: Bool), Errno> {
    let bits = maxnode &- 1
    if bits == 0 || addr == 0 { return .success((0, false)) }
    if bits > 4096 * 8 { return .failure(Errno(EINVAL)) }
    let words = Int((bits + 63) / 64)
    guard let raw = t.copyIn(addr, words * 8) else { return .failure(Errno(EFAULT)) }
    var low: UInt64 = 0, any = false
    for w in 0..<words {
        var v = raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) }
        let first = UInt64(w) * 64
        if bits - first < 64 { v &= (1 << (bits - first)) - 1 }
        if v == 0 { continue }
        if first + 64 > maxNumNodes && (first >= maxNumNodes || v >> (maxNumNodes - first) != 0) { return .failure(Errno(EINVAL)) }
        if w == 0 { low = v }
        any = true
    }
    return .success((low, any))
}

/// A new policy, as Linux's mpol_new and mpol_set_nodemask on one node:
/// MPOL_DEFAULT takes no nodes; MPOL_PREFERRED without nodes is local
/// allocation (MPOL_LOCAL, and not with the node flags); MPOL_LOCAL takes
/// none; the others need nodes that include node 0 (relative nodes fold
/// onto it).
private func newPolicy(_ mode: Int32, _ flags: Int32, _ n: (low: UInt64, any: Bool)) -> Result<MemPolicy, Errno> {
    var mode = mode
    if mode == 0 { return n.any ? .failure(Errno(EINVAL)) : .success(MemPolicy()) }
    if mode == 1 && !n.any {
        if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 { return .failure(Errno(EINVAL)) }
        mode = 4
    } else if mode == 4 {
        if n.any || flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 { return .failure(Errno(EINVAL)) }
    } else if !n.any {
        return .failure(Errno(EINVAL))
    }
    if mode == 4 { return .success(MemPolicy(mode: mode | flags, userNodes: 0, nodes: 0)) }
    let effective: UInt64 = flags & MPOL_F_RELATIVE_NODES != 0 ? 1 : n.low & 1
    if effective == 0 { return .failure(Errno(EINVAL)) }
    return .success(MemPolicy(mode: mode | flags, userNodes: n.low, nodes: effective))
}

private func registerMempolicy(_ t: SyscallTable) {
    t[238] = { t, a in                                                        // set_mempolicy
        guard let (mode, flags) = mpolMode(a.int(0)) else { return err(EINVAL) }
        switch readNodes(t, a.a1, a.a2).flatMap({ newPolicy(mode, flags, $0) }) {
        case .success(let p): t.mempolicy = p; return 0
        case .failure(let e): return e.ret
        }
    }
    t[239] = { t, a in                                                        // get_mempolicy
        let policyAddr = a.a0, maskAddr = a.a1, maxnode = a.a2, addr = a.a3, flags = a.uint(4)
        let F_NODE: UInt32 = 1, F_ADDR: UInt32 = 2, F_MEMS_ALLOWED: UInt32 = 4
        if maskAddr != 0 && maxnode < 1 { return err(EINVAL) }
        if flags & ~7 != 0 { return err(EINVAL) }
        var value: Int32 = 0, nodes: UInt64 = 0
        if flags & F_MEMS_ALLOWED != 0 {
            if flags & (F_NODE | F_ADDR) != 0 { return err(EINVAL) }
            nodes = 1
        } else {
            var p = t.mempolicy
            if flags & F_ADDR != 0 {
                guard let v = t.mm.vma(containing: addr) else { return err(EFAULT) }
                p = v.policy
            } else if addr != 0 {
                return err(EINVAL)
            }
            let mode = p.mode & ~mpolModeFlags
            if flags & F_NODE != 0 {
                // The node of the page at addr, or the next node of the
                // thread's interleaving: node 0 either way.
                if flags & F_ADDR == 0 && !(mode == 3 || mode == 6) { return err(EINVAL) }
                value = 0
            } else {
                value = p.mode
            }
            // The mask as given when a node flag asked to keep it; the
            // nodes in effect otherwise (none for the default and local).
            nodes = p.mode & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 ? p.userNodes : p.nodes
        }
        if policyAddr != 0 && !t.writeI32(policyAddr, value) { return err(EFAULT) }
        if maskAddr != 0 {
            // ALIGN(maxnode-1, 64)/8 bytes: the first word, zeros after.
            let bytes = (maxnode - 1 + 63) / 64 * 8
            if bytes > 4096 { return err(EINVAL) }
            if bytes > 0 {
                var out = [UInt8](repeating: 0, count: Int(bytes))
                withUnsafeBytes(of: nodes) { for i in 0..<min(8, out.count) { out[i] = $0[i] } }
                if !t.copyOut(maskAddr, out) { return err(EFAULT) }
            }
        }
        return 0
    }
    t[237] = { t, a in                                                        // mbind
        let start = a.a0, len = a.a1, mflags = a.uint(5)
        guard let (mode, flags) = mpolMode(a.int(2)) else { return err(EINVAL) }
        let nodes: (low: UInt64, any: Bool)
        switch readNodes(t, a.a3, a.a4) {
        case .success(let n): nodes = n
        case .failure(let e): return e.ret
        }
        // MPOL_MF_STRICT 1, MOVE 2, MOVE_ALL 4 (CAP_SYS_NICE).
        if mflags & ~7 != 0 { return err(EINVAL) }
        if mflags & 4 != 0 && !t.creds.has(Cap.sysNice) { return err(EPERM) }
        if start & 4095 != 0 { return err(EINVAL) }
        let l = pageUp(len)
        if start &+ l < start { return err(EINVAL) }
        if l == 0 { return 0 }
        let p: MemPolicy
        switch newPolicy(mode, flags, nodes) {
        case .success(let x): p = x
        case .failure(let e): return e.ret
        }
        let end = start + l
        // Every page of the range must be mapped (EFAULT, nothing changed).
        guard end <= t.mm.appTop, t.mm.fullyMapped(start, end) else { return err(EFAULT) }
        t.mm.split(at: start)
        t.mm.split(at: end)
        for i in t.mm.overlapping(start, end) { t.mm.vmas[i].policy = p }
        t.mm.mergeAdjacent()
        return 0
    }
}

func sysMmap(_ t: Task, _ a: Args) -> Int {
    let addr = a.a0, len = a.a1, flags = a.int(3), fd = a.int(4), off = a.a5
    var prot = a.int(2)
    let askedExec = prot & PROT_EXEC != 0
    if prot & PROT_READ != 0 && t.personality & Personality.readImpliesExec != 0 { prot |= PROT_EXEC }
    // Linux's order: the offset's alignment (the arch entry), the
    // descriptor (ksys_mmap_pgoff), then the length and the rest (do_mmap).
    if off & 4095 != 0 { return err(EINVAL) }
    if flags & MAP_ANONYMOUS == 0 && t.fds.get(fd) == nil { return err(EBADF) }
    // No file is on hugetlbfs: MAP_HUGETLB on one is EINVAL (ksys_mmap_pgoff).
    if flags & MAP_ANONYMOUS == 0 && flags & MAP_HUGETLB != 0 { return err(EINVAL) }
    if len == 0 { return err(EINVAL) }
    let l = pageUp(len)
    if l == 0 || l > 1 << 46 { return err(ENOMEM) }
    if off > UInt64(Int64.max) - l { return err(EOVERFLOW) }
    let type = flags & 0xf
    if type != MAP_PRIVATE && type != MAP_SHARED && type != 3 /* MAP_SHARED_VALIDATE */ { return err(EINVAL) }
    if type == 3 && flags & MAP_ANONYMOUS != 0 { return err(EINVAL) }   // validated sharing is for files only
    if flags & MAP_ANONYMOUS == 0 {
        // MAP_SHARED_VALIDATE refuses flags outside the legacy set (and
        // MAP_SYNC: no file is DAX), as Linux: EOPNOTSUPP. A file mapping
        // never grows down (EINVAL).
        let legacy: Int32 = 0x3 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000 |
            0x10000 | 0x20000 | 0x40000 | Int32(bitPattern: 0xfc00_0000) // ... MAP_HUGETLB, MAP_UNINITIALIZED and the huge-page size bits
        if type == 3 && flags & ~legacy != 0 { return err(EOPNOTSUPP) }
        if flags & MAP_GROWSDOWN != 0 { return err(EINVAL) }
    }
    if prot & ~Int32(7) != 0 { return err(EINVAL) }
    let fixed = flags & MAP_FIXED != 0
    let noReplace = flags & 0x100000 != 0 // MAP_FIXED_NOREPLACE
    var target: UInt64
    if fixed || noReplace {
        if addr & 4095 != 0 { return err(EINVAL) }
        guard t.mm.validRange(addr, l) else { return err(fixed ? EINVAL : ENOMEM) }
        if noReplace && !t.mm.isFree(addr, addr + l) { return err(EEXIST) }
        if t.mm.anySealed(addr, addr + l) { return err(EPERM) }
        target = addr
    } else {
        // MAP_32BIT: in the first 2 GB (x86-64 Linux places it there).
        guard let f = t.mm.findFree(l, hint: pageDown(addr), below: flags & 0x40 != 0 ? 0x8000_0000 : nil) else { return err(ENOMEM) }
        target = f
        // RLIMIT_AS bounds the address space (mmap(2): ENOMEM).
        let size = t.mm.vmas.reduce(UInt64(0)) { $0 + ($1.end - $1.start) }
        if size + l > t.tg.rlimits[RL_AS].cur { return err(ENOMEM) }
    }
    // MAP_LOCKED (or mlockall(MCL_FUTURE)) without CAP_IPC_LOCK: EPERM when
    // RLIMIT_MEMLOCK is 0 (MAP_LOCKED only), EAGAIN when the locked total
    // would pass it, as Linux's do_mmap and mlock_future_ok.
    let lockNew = flags & 0x2000 != 0 || t.mm.lockFuture
    if lockNew && !t.creds.has(Cap.ipcLock) {
        let limit = t.tg.rlimits[RL_MEMLOCK].cur
        if flags & 0x2000 != 0 && limit == 0 { return err(EPERM) }
        if t.mm.lockedBytes + l > limit { return err(EAGAIN) }
    }
    /// MAP_LOCKED marks the new mapping locked (VmLck, smaps' Locked).
    func lockedIfAsked(_ r: Int) -> Int {
        if r >= 0 && lockNew, let i = t.mm.vmas.firstIndex(where: { $0.start == target }), t.mm.vmas[i].end == target + l {
            t.mm.vmas[i].locked = true
        }
        return r
    }
    let anon = flags & MAP_ANONYMOUS != 0
    if anon {
        let r = t.mm.mapAnonymous(t, addr: target, len: l, prot: prot, shared: type != MAP_PRIVATE, name: "")
        // A MAP_GROWSDOWN mapping grows on a fault below it (MemoryManager.growDown).
        if r >= 0 && flags & MAP_GROWSDOWN != 0, let i = t.mm.vmas.firstIndex(where: { $0.start == target }) {
            t.mm.vmas[i].flags |= MAP_GROWSDOWN
        }
        return lockedIfAsked(r)
    }
    // File mappings: the host fd behind the file is mapped into the stub
    // (Gofer-donated files, and tmpfs files moved to a memfd); other files
    // get a private copy of their bytes.
    // An O_PATH descriptor maps nothing (EBADF, as every I/O call on it).
    guard let f = t.fds.getIO(fd) else { return err(EBADF) }
    if !f.readable { return err(EACCES) }
    // A file on a noexec mount is never mapped executable (EPERM; READ_IMPLIES_EXEC
    // adds nothing to it) and mprotect may not make it so (VM_MAYEXEC).
    let noExec = (f.path?.mount.flags ?? 0) & MountFlags.noexec != 0
    if noExec && prot & PROT_EXEC != 0 {
        if askedExec { return err(EPERM) }
        prot &= ~PROT_EXEC
    }
    if type != MAP_PRIVATE && prot & PROT_WRITE != 0 && !f.writable { return err(EACCES) }
    let name = f.path.map { String(decoding: t.kernel.vfs.pathString($0, root: t.fs.root), as: UTF8.self) } ?? ""
    // A write-sealed memfd (F_SEAL_WRITE, F_SEAL_FUTURE_WRITE) maps shared
    // only without PROT_WRITE (EPERM), and never gains it.
    let sealed = (f as? TmpfsFileFD).map { $0.node.seals & (F_SEAL_WRITE_ | F_SEAL_FUTURE_WRITE_) != 0 } ?? false
    if sealed && type != MAP_PRIVATE && prot & PROT_WRITE != 0 { return err(EPERM) }
    /// A shared mapping of a read-only descriptor never becomes writable.
    func readOnlyShared(_ r: Int) -> Int {
        if r >= 0, type != MAP_PRIVATE && (!f.writable || sealed), let i = t.mm.vmas.firstIndex(where: { $0.start == target }) {
            t.mm.vmas[i].mayWrite = false
        }
        if r >= 0, noExec, let i = t.mm.vmas.firstIndex(where: { $0.start == target }) { t.mm.vmas[i].mayExec = false }
        return lockedIfAsked(r)
    }
    if let h = f as? HostFileFD, !h.isStream {
        return readOnlyShared(t.mm.mapFile(t, addr: target, len: l, prot: prot, shared: type != MAP_PRIVATE, hostFD: h.fd, offset: off, name: name))
    }
    if let d = f as? DeviceFD, d.kind == .zero {
        // /dev/zero maps anonymous memory (shared: one region across forks).
        return readOnlyShared(t.mm.mapAnonymous(t, addr: target, len: l, prot: prot, shared: type != MAP_PRIVATE,
                                                name: type != MAP_PRIVATE ? "/dev/zero (deleted)" : ""))
    }
    if let tf = f as? TmpfsFileFD {
        // Private mappings too map the file's memfd (copy-on-write on the
        // host): MADV_DONTNEED then drops the private copies and the pages
        // read the file again, and clean pages see later writes, as on
        // Linux. A private copy of the bytes read zeros after MADV_DONTNEED
        // (an in-memory overlay file's mapping lost its contents).
        let mfd = tf.node.promoteToMemfd()
        if mfd < 0 { return Int(mfd) }
        let r = t.mm.mapFile(t, addr: target, len: l, prot: prot, shared: type != MAP_PRIVATE, hostFD: mfd, offset: off, name: name)
        if r >= 0, tf.node.blocks?.max != nil { mapPagesWithoutRoom(t, tf.node, at: target, len: l, offset: off, prot: prot) }
        return readOnlyShared(r)
    }
    if let u = f as? IoUringFD {
        // A ring or the SQE array: its region of the ring's memfd, shared.
        guard type != MAP_PRIVATE, let r = u.region(forMmapOffset: off, len: l) else { return err(EINVAL) }
        return lockedIfAsked(t.mm.mapFile(t, addr: target, len: l, prot: prot, shared: true, hostFD: u.memfd,
                                          offset: UInt64(r.offset), name: "anon_inode:[io_uring]"))
    }
    guard let src = f as? ByteSource else { return err(ENODEV) }
    if type != MAP_PRIVATE && prot & PROT_WRITE != 0 { return err(ENODEV) }
    let r = t.mm.mapAnonymous(t, addr: target, len: l, prot: PROT_READ | PROT_WRITE, shared: false, name: f.path.map { String(decoding: t.kernel.vfs.pathString($0, root: t.fs.root), as: UTF8.self) } ?? "")
    if r < 0 { return r }
    var done: UInt64 = 0
    while done < l {
        let n = Int(min(l - done, 1 << 20))
        guard let bytes = src.pread(Int64(off + done), n) else { break }
        if bytes.isEmpty { break }
        if !t.copyOut(target + done, bytes) { break }
        done += UInt64(bytes.count)
        if bytes.count < n { break }
    }
    if prot != PROT_READ | PROT_WRITE { _ = t.mm.protect(t, addr: target, len: l, prot: prot) }
    // A copy of a file is still a file mapping to the application (smaps,
    // MADV_FREE): it is anonymous only on the host.
    if let i = t.mm.vmas.firstIndex(where: { $0.start == target }) { t.mm.vmas[i].offset = off; t.mm.vmas[i].flags &= ~MAP_ANONYMOUS; t.mm.vmas[i].mayExec = !noExec }
    return lockedIfAsked(Int(target))
}

func sysMremap(_ t: Task, _ a: Args) -> Int {
    // An AIO ring (VM_DONTEXPAND on Linux) may move but never grow
    // (EFAULT); a move takes its context along (io_submit then names the
    // ring by its new address, the old one is EINVAL).
    let ring = AIOContexts.shared.ring(t, at: a.a0)
    if ring != nil && pageUp(a.a2) > pageUp(a.a1) && a.a1 != 0 { return err(EFAULT) }
    let r = remapRange(t, a)
    if let c = ring, r >= 0, a.a1 != 0, a.int(3) & 4 == 0 { c.base = UInt64(r) }
    return r
}

private func remapRange(_ t: Task, _ a: Args) -> Int {
    let old = a.a0, oldLen = pageUp(a.a1), newLen = pageUp(a.a2), flags = a.int(3)
    if a.a1 > 1 << 46 || a.a2 > 1 << 46 { return err(EINVAL) }
    if old & 4095 != 0 || newLen == 0 { return err(EINVAL) }
    if flags & ~Int32(7) != 0 { return err(EINVAL) }
    // MREMAP_FIXED and MREMAP_DONTUNMAP only move, so they need MREMAP_MAYMOVE.
    if flags & 6 != 0 && flags & 1 == 0 { return err(EINVAL) }
    // MREMAP_DONTUNMAP moves without changing the size.
    if flags & 4 != 0 && oldLen != newLen { return err(EINVAL) }
    // mseal: a sealed mapping neither moves nor changes size, nor is a
    // sealed one replaced at the destination.
    if t.mm.anySealed(old, old &+ max(oldLen, 4096)) || flags & 2 != 0 && t.mm.anySealed(a.a4, a.a4 &+ newLen) { return err(EPERM) }
    if oldLen == 0 {
        // old_size 0: a second mapping of the same pages, for a shared
        // mapping only; it must move (Linux: ENOMEM without MREMAP_MAYMOVE).
        guard let v = t.mm.vma(containing: old) else { return err(EFAULT) }
        if v.flags & MAP_SHARED == 0 { return err(EINVAL) }
        if flags & 1 == 0 { return err(ENOMEM) }
        let dst: UInt64
        if flags & 2 != 0 {
            dst = a.a4
            if dst & 4095 != 0 || dst &+ newLen < dst || dst + newLen > t.mm.appTop { return err(EINVAL) }
            _ = t.mm.unmap(t, addr: dst, len: newLen)
        } else {
            guard let f = t.mm.findFree(newLen) else { return err(ENOMEM) }
            dst = f
        }
        let r = t.thread.inject(25, old, 0, newLen, 3 /* MAYMOVE|FIXED */, dst)
        if r < 0 { return r }
        recordMoved(t, v, dst, newLen, offset: v.offset + (old - v.start))
        return Int(dst)
    }
    if flags & 4 != 0 {
        // The pages move; the old range stays mapped and reads as fresh
        // memory (the host's mremap does it in the stub's address space).
        guard oldLen > 0, old &+ oldLen > old, let v = t.mm.vma(containing: old), v.end >= old + oldLen else { return err(EFAULT) }
        let dst: UInt64
        if flags & 2 != 0 {
            dst = a.a4
            if dst & 4095 != 0 || dst &+ newLen < dst || dst + newLen > t.mm.appTop { return err(EINVAL) }
            if dst < old + oldLen && old < dst + newLen { return err(EINVAL) }
            _ = t.mm.unmap(t, addr: dst, len: newLen)
        } else {
            guard let f = t.mm.findFree(newLen) else { return err(ENOMEM) }
            dst = f
        }
        let r = t.thread.inject(25, old, oldLen, newLen, 7 /* MAYMOVE|FIXED|DONTUNMAP */, dst)
        if r < 0 { return r }
        recordMoved(t, v, dst, newLen, offset: v.offset + (old - v.start))
        t.mm.pagesDropped(t, old, old + oldLen)     // a registered old range faults again
        return Int(dst)
    }
    // Shrinking in place only unmaps the tail: a mapping must be at `old`
    // (EFAULT), but the range may span several (Linux's shrink_vma).
    if flags & 2 == 0 && newLen <= oldLen {
        if t.mm.vma(containing: old) == nil { return err(EFAULT) }
        if old &+ oldLen < old { return err(EINVAL) }
        if newLen < oldLen {
            let r = t.mm.unmap(t, addr: old + newLen, len: oldLen - newLen)
            if r < 0 { return r }
        }
        return Int(old)
    }
    guard oldLen > 0, old &+ oldLen > old, let v = t.mm.vma(containing: old), v.end >= old + oldLen else { return err(EFAULT) }
    // Growing a locked mapping locks more: bounded by RLIMIT_MEMLOCK
    // without CAP_IPC_LOCK (EAGAIN, Linux's vma_to_resize).
    if newLen > oldLen && v.locked && !t.creds.has(Cap.ipcLock) && t.mm.lockedBytes + (newLen - oldLen) > t.tg.rlimits[RL_MEMLOCK].cur {
        return err(EAGAIN)
    }
    if flags & 2 != 0 { // MREMAP_FIXED: to exactly new_address, replacing what is there
        let dst = a.a4
        if flags & 1 == 0 || dst & 4095 != 0 { return err(EINVAL) }
        // Never at or past the top of the application's space (where the
        // stub page lives), never overlapping the source.
        if dst &+ newLen < dst || dst + newLen > t.mm.appTop { return err(EINVAL) }
        if dst < old + oldLen && old < dst + newLen { return err(EINVAL) }
        _ = t.mm.unmap(t, addr: dst, len: newLen)
        let r = t.thread.inject(25, old, oldLen, newLen, 3 /* MAYMOVE|FIXED */, dst)
        if r < 0 { return r }
        t.mm.forget(old, old + oldLen)
        recordMoved(t, v, dst, newLen, offset: v.offset + (old - v.start))
        return Int(dst)
    }
    if old &+ newLen > old && old &+ newLen <= t.mm.appTop && t.mm.isFree(old + oldLen, old + newLen) {
        let r = t.thread.inject(25, old, oldLen, newLen, 0)
        if r < 0 { return r }
        var n = v; n.start = old; n.end = old + newLen
        t.mm.record(n)
        // A registered mapping stays so: its new pages are missing.
        if v.uffd != nil { t.mm.syncHostProt(t, old, old + newLen) }
        return Int(old)
    }
    if flags & 1 == 0 { return err(ENOMEM) } // MREMAP_MAYMOVE
    guard let dst = t.mm.findFree(newLen) else { return err(ENOMEM) }
    let r = t.thread.inject(25, old, oldLen, newLen, 3 /* MAYMOVE|FIXED */, dst)
    if r < 0 { return r }
    t.mm.forget(old, old + oldLen)
    recordMoved(t, v, dst, newLen, offset: v.offset + (old - v.start))
    return Int(dst)
}

/// remap_file_pages: deprecated since Linux 3.16, which emulates it as
/// this does: a new shared mapping of the same file at `pgoff` over the
/// page-rounded range, which must lie in shared mappings of one file with
/// the same protection; prot must be 0, and of the flags only
/// MAP_NONBLOCK counts (no populating).
func sysRemapFilePages(_ t: Task, _ a: Args) -> Int {
    let start = pageDown(a.a0), size = pageDown(a.a1), pgoff = a.a3
    if a.a2 != 0 { return err(EINVAL) }
    if start &+ size <= start || pgoff &+ (size >> 12) < pgoff || pgoff > UInt64(Int64.max) >> 12 { return err(EINVAL) }
    guard let v = t.mm.vma(containing: start), v.flags & MAP_SHARED != 0, v.flags & MAP_ANONYMOUS == 0 else { return err(EINVAL) }
    // Every page of the range: mappings of the same file, back to back.
    var cur = start
    for w in t.mm.vmas[t.mm.overlapping(start, start + size)] {
        if w.start != cur && w.start > start || w.shareID != v.shareID || w.prot != v.prot || w.flags != v.flags { return err(EINVAL) }
        cur = w.end
    }
    if cur < start + size { return err(EINVAL) }
    // A SysV segment: its attachment ends with the old mapping, and a
    // removed segment with none left is gone before the new one is made
    // (Linux: EINVAL or EIDRM, and the range is unmapped).
    if let (key, att) = t.kernel.shmAttached.first(where: { $0.key.space == t.mm.id && $0.key.addr <= start &&
            start < $0.key.addr + pageUp($0.value.ns.shm[$0.value.id]?.size ?? 0) }),
       let seg = att.ns.shm[att.id], seg.removed && seg.nattch <= 1 {
        t.kernel.shmAttached[key] = nil
        seg.nattch -= 1
        if seg.nattch <= 0 { att.ns.shm[att.id] = nil }
        _ = t.mm.unmap(t, addr: key.addr, len: pageUp(seg.size))
        return err(EIDRM)
    }
    guard let file = v.file else { return err(EINVAL) }
    let r = t.mm.mapFile(t, addr: start, len: size, prot: v.prot, shared: true, hostFD: file.fd, offset: pgoff << 12, name: v.name)
    if r < 0 { return r }
    if let i = t.mm.vmas.firstIndex(where: { $0.start == start }) { t.mm.vmas[i].mayWrite = v.mayWrite; t.mm.vmas[i].locked = v.locked }
    // MAP_POPULATE, as Linux's emulation asks (unless MAP_NONBLOCK).
    if a.a4 & 0x10000 == 0 && t.thread.hasStub { _ = t.thread.inject(28 /* madvise */, start, size, 22 /* MADV_POPULATE_READ */) }
    return 0
}

/// Records the mapping mremap made of `v` at [dst, dst+len). It is not
/// registered with v's userfaultfd (no UFFD_FEATURE_EVENT_REMAP, as Linux
/// drops it then), so the host gives its pages the mapping's protection.
private func recordMoved(_ t: Task, _ v: VMA, _ dst: UInt64, _ len: UInt64, offset: UInt64) {
    var n = v; n.start = dst; n.end = dst + len; n.offset = offset
    n.uffd = nil; n.uffdMode = 0
    t.mm.record(n)
    if v.uffd != nil { _ = t.thread.protect(dst, len, prot: n.prot) }
}

/// mlock/munlock: the page-rounded range must be mapped (ENOMEM); locking
/// without CAP_IPC_LOCK is bounded by RLIMIT_MEMLOCK (EPERM when it is 0,
/// ENOMEM past it), as in Linux. Nothing is locked: the sandbox's memory is
/// the host's, which the Sentry does not pin.
private func lockRange(_ t: Task, _ addr: UInt64, _ len: UInt64, lock: Bool, populate: Bool = true) -> Int {
    let start = pageDown(addr), end = pageUp(addr &+ len)
    if len == 0 { return 0 }
    guard end > start, end <= t.mm.appTop, t.mm.fullyMapped(start, end) else { return err(ENOMEM) }
    if lock && !t.creds.has(Cap.ipcLock) {
        let limit = t.tg.rlimits[8].cur
        if limit == 0 { return err(EPERM) }
        // What is locked already counts, less what of it is in the range.
        let already = t.mm.vmas[t.mm.overlapping(start, end)].reduce(UInt64(0)) {
            $0 + ($1.locked ? min($1.end, end) - max($1.start, start) : 0)
        }
        if end - start + t.mm.lockedBytes - already > limit { return err(ENOMEM) }
    }
    // The range becomes mappings of its own, as on Linux (VM_LOCKED splits
    // a VMA): /proc/self/smaps shows the locked part by itself.
    t.mm.split(at: start)
    t.mm.split(at: end)
    for i in t.mm.overlapping(start, end) { t.mm.vmas[i].locked = lock }
    // Locking populates the pages: a PROT_NONE page cannot be (ENOMEM),
    // yet the range stays locked, as Linux (MLOCK_ONFAULT populates nothing).
    if lock && populate && t.mm.vmas[t.mm.overlapping(start, end)].contains(where: { $0.prot == PROT_NONE }) { return err(ENOMEM) }
    // And the pages come in, as Linux's populate (a write fault on private
    // writable memory, which breaks copy-on-write); mincore then sees them.
    // A write-only mapping takes write faults (the host's read populate
    // wants a readable one), but never a shared file's (its time would change).
    if lock && populate && t.thread.hasStub {
        for v in t.mm.vmas[t.mm.overlapping(start, end)] {
            let a = max(v.start, start), z = min(v.end, end)
            let anonOrPrivate = v.flags & MAP_SHARED == 0 || v.flags & MAP_ANONYMOUS != 0
            let write = v.prot & PROT_WRITE != 0 && anonOrPrivate && (v.flags & MAP_SHARED == 0 || v.prot & PROT_READ == 0)
            if !write && v.prot & PROT_READ == 0 { continue }
            _ = t.thread.inject(28 /* madvise */, a, z - a, write ? 23 /* MADV_POPULATE_WRITE */ : 22 /* MADV_POPULATE_READ */)
        }
    }
    return 0
}

/// A tmpfs with a size limit backs a mapped page that holds nothing only
/// while it has room: a fault on one past that gets SIGBUS (shmem_fault).
/// The pages of the mapping that hold nothing beyond the room left (in
/// file order) are mapped over, on the host, with an empty file, so that a
/// touch faults past its end and the host's SIGBUS reaches the application
/// as Linux's would. Charging still happens on write (TmpfsInode.writable).
private func mapPagesWithoutRoom(_ t: Task, _ node: TmpfsInode, at addr: UInt64, len: UInt64, offset: UInt64, prot: Int32) {
    guard let b = node.blocks, let max = b.max, t.thread.hasStub else { return }
    var room = Swift.max(0, max - b.used)
    let filePages = (node.fileLength + 4095) / 4096
    let first = Int(offset / 4096), count = Int((len + 4095) / 4096)
    var start: Int? = nil
    func cover(_ from: Int, _ to: Int) {
        let a = addr + UInt64(from - first) * 4096, n = UInt64(to - from) * 4096
        _ = t.mm.withStubFD(t, emptyHostFile) { remote in
            t.thread.inject(9 /* mmap */, a, n, UInt64(prot & 7), UInt64(MAP_PRIVATE | MAP_FIXED), remote, 0)
        }
    }
    for page in first..<Swift.min(first + count, filePages) {
        if node.pages.contains(page) || room > 0 {
            if !node.pages.contains(page) { room -= 1 }
            if let s = start { cover(s, page); start = nil }
        } else if start == nil {
            start = page
        }
    }
    if let s = start { cover(s, Swift.min(first + count, filePages)) }
}

/// An empty host memfd: a mapping of it faults (SIGBUS) on every page.
private let emptyHostFile: Int32 = hostMemfd("moat-empty")
