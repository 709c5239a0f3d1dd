// System V IPC: shared memory segments, semaphore sets and message queues,
// all in the Sentry, in the caller's IPC namespace (`Task.ipc`: the
// sandbox's, or one CLONE_NEWIPC made: Kernel/IPCNamespaces.swift).
// Segments are tmpfs files moved to a host memfd, attached like a
// MAP_SHARED file mapping.

import CMoat
import Glibc

private let IPC_CREAT: Int32 = 0o1000, IPC_EXCL: Int32 = 0o2000, IPC_NOWAIT: Int32 = 0o4000
private let IPC_RMID: Int32 = 0, IPC_SET: Int32 = 1, IPC_STAT: Int32 = 2, IPC_INFO: Int32 = 3
private let SHM_RDONLY: Int32 = 0o10000, SHM_RND: Int32 = 0o20000, SHM_REMAP: Int32 = 0o40000, SHM_EXEC: Int32 = 0o100000
private let SHM_STAT: Int32 = 13, SHM_INFO: Int32 = 14, SEM_STAT: Int32 = 18, SEM_INFO: Int32 = 19, MSG_STAT: Int32 = 11, MSG_INFO: Int32 = 12
/// The *_STAT_ANY commands (Linux 4.17): *_STAT without the read permission check.
private let SHM_STAT_ANY: Int32 = 15, SEM_STAT_ANY: Int32 = 20, MSG_STAT_ANY: Int32 = 13
private let GETPID: Int32 = 11, GETVAL: Int32 = 12, GETALL: Int32 = 13, GETNCNT: Int32 = 14, GETZCNT: Int32 = 15
private let SETVAL: Int32 = 16, SETALL: Int32 = 17
private let SEMMSL = 32000, SEMOPM = 500, SEMVMX: Int32 = 32767, MSGMAX = 8192, MSGMNB = 16384
private let SHMMAX: UInt64 = 1 << 40

/// What every IPC object has: key, owner, creator, mode (struct ipc64_perm).
struct IPCPerm {
    var key: Int32, uid: UInt32, gid: UInt32, cuid: UInt32, cgid: UInt32, mode: UInt32, seq: UInt16
    func bytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 48)
        put32(&b, 0, key); put32(&b, 4, Int32(bitPattern: uid)); put32(&b, 8, Int32(bitPattern: gid))
        put32(&b, 12, Int32(bitPattern: cuid)); put32(&b, 16, Int32(bitPattern: cgid))
        put32(&b, 20, Int32(bitPattern: mode)); b[24] = UInt8(seq & 0xff); b[25] = UInt8(seq >> 8)
        return b
    }
}

final class ShmSegment {
    var perm: IPCPerm
    let size: UInt64
    let node: TmpfsInode
    var nattch = 0
    var removed = false
    var atime: Int64 = 0, dtime: Int64 = 0, ctime: Int64 = Int64(time(nil))
    var cpid: Int32, lpid: Int32 = 0
    init(perm: IPCPerm, size: UInt64, cpid: Int32) {
        self.perm = perm; self.size = size; self.cpid = cpid
        node = TmpfsInode(mode: S_IFREG_ | 0o600, dev: 8)
    }
    /// Bytes of the segment's pages that exist (touched), as Linux's shm_rss
    /// counts them: the memfd's blocks once attached (only attaching writes
    /// to a segment, so before that there are none).
    var residentBytes: UInt64 {
        var st = stat()
        return node.memfd >= 0 && fstat(node.memfd, &st) == 0 ? UInt64(st.st_blocks) * 512 : 0
    }
}

final class SemSet {
    var perm: IPCPerm
    var values: [Int32]
    var pids: [Int32]
    /// Tasks asleep in semop per semaphore, waiting for an increase
    /// (GETNCNT) or for zero (GETZCNT).
    var ncnt: [Int32], zcnt: [Int32]
    var otime: Int64 = 0, ctime: Int64 = Int64(time(nil))
    var waiters = WaitQueue()
    var removed = false
    init(perm: IPCPerm, n: Int) { self.perm = perm; values = Array(repeating: 0, count: n); pids = values; ncnt = values; zcnt = values }
}

final class MsgQueue {
    var perm: IPCPerm
    var messages: [(type: Int, data: [UInt8])] = []
    var bytes = 0
    var qbytes = MSGMNB
    var lspid: Int32 = 0, lrpid: Int32 = 0
    var stime: Int64 = 0, rtime: Int64 = 0, ctime: Int64 = Int64(time(nil))
    var waiters = WaitQueue()
    var removed = false
    init(perm: IPCPerm) { self.perm = perm }
}

/// An IPC namespace: the sandbox's (Kernel.ipc) or one an application
/// made. Guarded by Kernel.mu.
final class IPCNamespace {
    /// Linux's inode number of the initial IPC namespace.
    static let rootInode: UInt64 = 0xEFFF_FFFF
    /// Its /proc/PID/ns/ipc inode number.
    let inum: UInt64
    /// Its kernel.{msg*,sem,shm*} and fs.mqueue.* sysctls (Linux keeps them
    /// per namespace, and a new one starts from the defaults).
    var sysctl = IPCNamespace.sysctlDefaults
    init(inum: UInt64 = newNamespaceInode()) { self.inum = inum }
    var shm: [Int32: ShmSegment] = [:]
    var sems: [Int32: SemSet] = [:]
    var msgs: [Int32: MsgQueue] = [:]
    /// POSIX message queues (MessageQueue.swift).
    let mqueues = MQueueRegistry()
    /// Ids are allocated per kind, cyclically from 0, like Linux's (with
    /// the sequence part 0 until the index space wraps, which it never
    /// does in a sandbox's life at these limits).
    private var next: [Int: Int32] = [:]
    /// kernel.{shm,sem,msg}_next_id by kind: -1, or the id the next
    /// object of the kind asks for (CONFIG_CHECKPOINT_RESTORE).
    var nextID: [Int32] = [-1, -1, -1]
    /// Linux's id: a sequence number times 32768 plus an index.
    static let seqMultiplier: Int32 = 32768

    /// The id a new object of `kind` gets, given the ids in use (nothing
    /// changes until `took`). A written next_id gives its index if no
    /// object has it, else the first free index above, with next_id's
    /// sequence number (Linux's ipc_idr_alloc); else the next of the count.
    func freeID<C: Collection>(kind: Int, ids: C) -> Int32? where C.Element == Int32 {
        let m = IPCNamespace.seqMultiplier
        if nextID[kind] >= 0 {
            let used = Set(ids.map { $0 % m })
            var idx = nextID[kind] % m
            while used.contains(idx) { idx += 1 }
            return idx < m ? nextID[kind] / m * m + idx : nil
        }
        var i = next[kind, default: 0]
        while ids.contains(i) { i += 1 }
        return i
    }

    /// Records that an object of `kind` took `id` from `freeID`.
    func took(_ id: Int32, kind: Int) {
        if nextID[kind] >= 0 { nextID[kind] = -1 } else { next[kind] = id + 1 }
    }
    /// Key -> id per kind, for objects made with a key (checked on use:
    /// a removed object's entry is dropped then).
    var keyIndex: [Int: [Int32: Int32]] = [:]
    /// The most objects of a kind: kernel.shmmni, the fourth field of
    /// kernel.sem (semmni), kernel.msgmni.
    func maxObjects(_ kind: Int, _ t: Task) -> Int {
        let key = ["kernel/shmmni", "kernel/sem", "kernel/msgmni"][kind]
        guard let v = sysctl[key] else { return 32000 }
        let field = kind == 1 ? v.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst(3).first.map(String.init) : v
        return field.flatMap { Int($0) }.map { min(max($0, 0), 32768) } ?? 32000
    }
}

/// A limit as the caller's IPC namespace's kernel.* sysctl says (Linux's
/// info calls read the same values), or `dflt` when it is not a number.
private func ipcLimit(_ t: Task, _ key: String, _ dflt: UInt64) -> UInt64 {
    t.ipc.sysctl[key].flatMap { UInt64($0) } ?? dflt
}

func registerIPC(_ t: SyscallTable) {
    t[29] = sysShmget
    t[30] = sysShmat
    t[67] = sysShmdt
    t[31] = sysShmctl
    t[64] = sysSemget
    t[65] = { t, a in sysSemop(t, a.int(0), a.a1, a.a2, timeout: 0) }                    // semop
    t[220] = { t, a in sysSemop(t, a.int(0), a.a1, a.a2, timeout: a.a3) }                // semtimedop
    t[66] = sysSemctl
    t[68] = sysMsgget
    t[69] = sysMsgsnd
    t[70] = sysMsgrcv
    t[71] = sysMsgctl
}

// MARK: - Common

/// Finds or creates an object by key (IPC_PRIVATE always creates).
private func ipcGet<T>(_ t: Task, _ table: inout [Int32: T], kind: Int, key: Int32, flags: Int32, perm: (T) -> IPCPerm,
                       check: (T) -> Int32?, make: (IPCPerm) -> T?) -> Int {
    // By key through the namespace's index (a scan of every object made
    // LTP's semget05, which creates 32000 sets, quadratic).
    let ipc = t.ipc
    var found: (Int32, T)? = nil
    if key != 0, let id = ipc.keyIndex[kind]?[key] {
        if let obj = table[id], perm(obj).key == key { found = (id, obj) } else { ipc.keyIndex[kind]?[key] = nil }
    }
    if let (id, obj) = found {
        if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 { return err(EEXIST) }
        if let e = check(obj) { return err(e) }
        let want = UInt32(flags & 0o777)
        if !ipcPermits(t, perm(obj), want) { return err(EACCES) }
        return Int(id)
    }
    if key != 0 && flags & IPC_CREAT == 0 { return err(ENOENT) }
    if table.count >= ipc.maxObjects(kind, t) { return err(ENOSPC) }
    let c = t.creds
    guard let id = ipc.freeID(kind: kind, ids: table.keys) else { return err(ENOSPC) }
    let p = IPCPerm(key: key, uid: c.euid, gid: c.egid, cuid: c.euid, cgid: c.egid, mode: UInt32(flags & 0o777),
                    seq: UInt16(truncatingIfNeeded: id / IPCNamespace.seqMultiplier))
    guard let obj = make(p) else { return err(EINVAL) }
    ipc.took(id, kind: kind)
    table[id] = obj
    if key != 0 { ipc.keyIndex[kind, default: [:]][key] = id }
    return Int(id)
}

/// `want` is a mode mask (0o444 read, 0o222 write, both for 0o666).
private func ipcPermits(_ t: Task, _ p: IPCPerm, _ want: UInt32) -> Bool {
    let c = t.creds
    if c.has(Cap.ipcOwner) { return true }
    var granted: UInt32
    if c.euid == p.uid || c.euid == p.cuid { granted = (p.mode >> 6) & 7 }
    else if c.inGroup(p.gid) || c.inGroup(p.cgid) { granted = (p.mode >> 3) & 7 }
    else { granted = p.mode & 7 }
    let w = (want | (want >> 3) | (want >> 6)) & 7
    return granted & w == w
}

private func ipcOwner(_ t: Task, _ p: IPCPerm) -> Bool {
    let c = t.creds
    return c.has(Cap.sysAdmin) || c.euid == p.uid || c.euid == p.cuid
}

/// IPC_SET: new uid, gid and the low 9 mode bits from a struct whose
/// ipc64_perm starts at offset 0.
private func ipcSet(_ t: Task, _ p: inout IPCPerm, _ addr: UInt64) -> Int {
    if !ipcOwner(t, p) { return err(EPERM) }
    guard let b = t.copyIn(addr, 48) else { return err(EFAULT) }
    p.uid = get32(b, 4); p.gid = get32(b, 8)
    p.mode = (p.mode & ~0o777) | (get32(b, 20) & 0o777)
    return 0
}

// MARK: - Shared memory

func sysShmget(_ t: Task, _ a: Args) -> Int {
    let size = a.a1, flags = a.int(2)
    // kernel.shmmax bounds a new segment; SHM_HUGETLB asks for huge pages,
    // which the sandbox has none of (CONFIG_HUGETLBFS is not set): EINVAL.
    let max = min(ipcLimit(t, "kernel/shmmax", SHMMAX), SHMMAX)
    return ipcGet(t, &t.ipc.shm, kind: 0, key: a.int(0), flags: flags, perm: { $0.perm },
                  check: { s in size > s.size ? EINVAL : nil }) { p in
        if size < 1 || size > max || flags & 0o4000 != 0 { return nil }
        let s = ShmSegment(perm: p, size: size, cpid: t.tg.tgid)
        if case .failure = s.node.setattr(SetAttr(size: Int64(size))) { return nil }
        return s
    }
}

func sysShmat(_ t: Task, _ a: Args) -> Int {
    let id = a.int(0), flags = a.int(2)
    var addr = a.a1
    let ipc = t.ipc
    guard let s = ipc.shm[id], !s.removed || s.nattch > 0 else { return err(EINVAL) }
    let ro = flags & SHM_RDONLY != 0
    if !ipcPermits(t, s.perm, ro ? 0o444 : 0o666) { return err(EACCES) }
    let len = pageUp(s.size)
    if addr != 0 {
        if flags & SHM_RND != 0 { addr &= ~UInt64(4095) }
        if addr & 4095 != 0 { return err(EINVAL) }
        guard t.mm.validRange(addr, len) else { return err(EINVAL) }
        if flags & SHM_REMAP == 0 && !t.mm.isFree(addr, addr + len) { return err(EINVAL) }
    } else {
        guard let f = t.mm.findFree(len, hint: 0) else { return err(ENOMEM) }
        addr = f
    }
    let mfd = s.node.promoteToMemfd()
    if mfd < 0 { return Int(mfd) }
    var prot = PROT_READ | (ro ? 0 : PROT_WRITE)
    if flags & SHM_EXEC != 0 { prot |= PROT_EXEC }
    let r = t.mm.mapFile(t, addr: addr, len: len, prot: prot, shared: true, hostFD: mfd, offset: 0, name: "/SYSV\(String(UInt32(bitPattern: s.perm.key), radix: 16)) (deleted)")
    if r < 0 { return r }
    // SHM_RDONLY: the mapping may never become writable (mprotect EACCES),
    // as a file mapping of a descriptor opened read-only.
    if ro { for i in t.mm.vmas.indices where t.mm.vmas[i].start >= addr && t.mm.vmas[i].end <= addr + len { t.mm.vmas[i].mayWrite = false } }
    t.kernel.shmAttached[FutexTable.Key(space: t.mm.id, addr: addr)] = (ipc, id)
    s.nattch += 1
    s.atime = Int64(time(nil)); s.lpid = t.tg.tgid
    return Int(addr)
}

func sysShmdt(_ t: Task, _ a: Args) -> Int {
    let addr = a.a0
    if addr & 4095 != 0 { return err(EINVAL) }
    // The attachment names its segment's namespace, which need not be the
    // caller's now (it may have unshared since, as on Linux).
    let key = FutexTable.Key(space: t.mm.id, addr: addr)
    guard let (ipc, id) = t.kernel.shmAttached[key] else { return err(EINVAL) }
    t.kernel.shmAttached[key] = nil
    guard let s = ipc.shm[id] else { return err(EINVAL) }
    _ = t.mm.unmap(t, addr: addr, len: pageUp(s.size))
    s.nattch -= 1
    s.dtime = Int64(time(nil)); s.lpid = t.tg.tgid
    if s.removed && s.nattch <= 0 { ipc.shm[id] = nil }
    return 0
}

func sysShmctl(_ t: Task, _ a: Args) -> Int {
    let id = a.int(0), cmd = a.int(1) & ~0x100 // IPC_64
    let ipc = t.ipc
    // The info calls write exactly their structure (ipcs keeps it on its
    // stack: 128 bytes over a 48-byte shm_info corrupted it) and return
    // the highest index in use.
    if cmd == IPC_INFO {
        // struct shminfo, 72 bytes: shmmax, shmmin, shmmni, shmseg, shmall,
        // four reserved longs; the limits are the kernel.shm* sysctls.
        var b = [UInt8](repeating: 0, count: 72)
        let mni = ipcLimit(t, "kernel/shmmni", 4096)
        put64(&b, 0, ipcLimit(t, "kernel/shmmax", SHMMAX)); put64(&b, 8, 1); put64(&b, 16, mni); put64(&b, 24, mni)
        put64(&b, 32, ipcLimit(t, "kernel/shmall", SHMMAX / 4096))
        return t.copyOut(a.a2, b) ? Int(ipc.shm.keys.max() ?? 0) : err(EFAULT)
    }
    if cmd == SHM_INFO {
        // struct shm_info, 48 bytes: used_ids (int, padded), shm_tot and
        // shm_rss in pages (the touched ones; nothing is swapped), shm_swp,
        // swap_attempts, swap_successes.
        var b = [UInt8](repeating: 0, count: 48)
        let pages = ipc.shm.values.reduce(UInt64(0)) { $0 + pageUp($1.size) / 4096 }
        let rss = ipc.shm.values.reduce(UInt64(0)) { $0 + $1.residentBytes / 4096 }
        put32(&b, 0, Int32(ipc.shm.count)); put64(&b, 8, pages); put64(&b, 16, rss)
        return t.copyOut(a.a2, b) ? Int(ipc.shm.keys.max() ?? 0) : err(EFAULT)
    }
    guard let s = ipc.shm[id] else { return err(EINVAL) }
    switch cmd {
    case IPC_STAT, SHM_STAT, SHM_STAT_ANY:
        if cmd != SHM_STAT_ANY && !ipcPermits(t, s.perm, 0o444) { return err(EACCES) }
        var b = s.perm.bytes()
        var rest = [UInt8](repeating: 0, count: 64)
        put64(&rest, 0, s.size); put64(&rest, 8, UInt64(s.atime)); put64(&rest, 16, UInt64(s.dtime)); put64(&rest, 24, UInt64(s.ctime))
        put32(&rest, 32, t.tg.pidSeen(s.cpid)); put32(&rest, 36, t.tg.pidSeen(s.lpid)); put64(&rest, 40, UInt64(s.nattch))
        b += rest
        if s.removed { put32(&b, 20, Int32(bitPattern: s.perm.mode | 0o1000)) }   // SHM_DEST
        return t.copyOut(a.a2, b) ? (cmd != IPC_STAT ? Int(id) : 0) : err(EFAULT)
    case IPC_SET:
        let r = ipcSet(t, &s.perm, a.a2)
        if r == 0 { s.ctime = Int64(time(nil)) }
        return r
    case IPC_RMID:
        if !ipcOwner(t, s.perm) { return err(EPERM) }
        s.removed = true
        s.perm.key = 0                       // no longer found by key
        if s.nattch <= 0 { ipc.shm[id] = nil }
        return 0
    case 11, 12:                             // SHM_LOCK, SHM_UNLOCK (nothing is swapped anyway)
        // CAP_IPC_LOCK, or the owner or creator (with a non-zero
        // RLIMIT_MEMLOCK to lock), as Linux decides.
        if !t.creds.has(Cap.ipcLock) {
            if t.creds.euid != s.perm.uid && t.creds.euid != s.perm.cuid { return err(EPERM) }
            if cmd == 11 && t.tg.rlimits[RL_MEMLOCK].cur == 0 { return err(EPERM) }
        }
        // SHM_LOCKED (0o2000) in the mode IPC_STAT shows.
        if cmd == 11 { s.perm.mode |= 0o2000 } else { s.perm.mode &= ~UInt32(0o2000) }
        return 0
    default: return err(EINVAL)
    }
}

// MARK: - Semaphores

func sysSemget(_ t: Task, _ a: Args) -> Int {
    let n = a.int(1)
    // Linux's ksys_semget: a count below 0 or past SEMMSL first, even for a
    // set that exists.
    if n < 0 || Int(n) > SEMMSL { return err(EINVAL) }
    return ipcGet(t, &t.ipc.sems, kind: 1, key: a.int(0), flags: a.int(2), perm: { $0.perm },
                  check: { s in Int(n) > s.values.count ? EINVAL : nil }) { p in
        if n <= 0 || Int(n) > SEMMSL { return nil }
        return SemSet(perm: p, n: Int(n))
    }
}

func sysSemop(_ t: Task, _ id: Int32, _ sops: UInt64, _ nsops: UInt64, timeout: UInt64) -> Int {
    if nsops == 0 { return err(EINVAL) }
    if nsops > UInt64(SEMOPM) { return err(E2BIG) }
    guard let raw = t.copyIn(sops, Int(nsops) * 6) else { return err(EFAULT) }
    var ops: [(num: Int, op: Int32, flg: Int32)] = []
    for i in 0..<Int(nsops) {
        let num = Int(UInt16(raw[i * 6]) | UInt16(raw[i * 6 + 1]) << 8)
        let op = Int32(Int16(bitPattern: UInt16(raw[i * 6 + 2]) | UInt16(raw[i * 6 + 3]) << 8))
        let flg = Int32(Int16(bitPattern: UInt16(raw[i * 6 + 4]) | UInt16(raw[i * 6 + 5]) << 8))
        ops.append((num, op, flg))
    }
    var deadline: Int64? = nil
    if timeout != 0 {
        guard let s = t.readU64(timeout), let ns = t.readU64(timeout &+ 8) else { return err(EFAULT) }
        if Int64(bitPattern: s) < 0 || ns >= 1_000_000_000 { return err(EINVAL) }
        deadline = Kernel.now(CLOCK_MONOTONIC) &+ Int64(bitPattern: s) &* 1_000_000_000 &+ Int64(ns)
    }
    guard let set = t.ipc.sems[id] else { return err(EINVAL) }
    if ops.contains(where: { $0.num >= set.values.count }) { return err(EFBIG) }
    let alters = ops.contains { $0.op != 0 }
    if !ipcPermits(t, set.perm, alters ? 0o222 : 0o444) { return err(EACCES) }
    while true {
        if set.removed { return err(EIDRM) }
        // All or nothing: try the whole list on a copy.
        var vals = set.values
        var blockedOn = -1, forZero = false
        for o in ops {
            let v = vals[o.num]
            if o.op > 0 {
                if v + o.op > SEMVMX { return err(ERANGE) }
                vals[o.num] = v + o.op
            } else if o.op < 0 {
                if v + o.op < 0 { blockedOn = o.num; if o.flg & IPC_NOWAIT != 0 { return err(EAGAIN) }; break }
                vals[o.num] = v + o.op
            } else if v != 0 {
                blockedOn = o.num; forZero = true; if o.flg & IPC_NOWAIT != 0 { return err(EAGAIN) }; break
            }
        }
        if blockedOn < 0 {
            set.values = vals
            for o in ops { set.pids[o.num] = t.tg.tgid }
            set.otime = Int64(time(nil))
            set.waiters.notifyAll()
            return 0
        }
        set.waiters.add(t)
        if forZero { set.zcnt[blockedOn] += 1 } else { set.ncnt[blockedOn] += 1 }
        let r = t.block(deadline: deadline)
        if forZero { set.zcnt[blockedOn] -= 1 } else { set.ncnt[blockedOn] -= 1 }
        set.waiters.remove(t)
        if r == .timedOut { return err(EAGAIN) }
        if r == .interrupted { return err(EINTR) }       // semop is never restarted
    }
}

func sysSemctl(_ t: Task, _ a: Args) -> Int {
    let id = a.int(0), num = Int(a.int(1)), cmd = a.int(2) & ~0x100, arg = a.a3
    let ipc = t.ipc
    if cmd == IPC_INFO || cmd == SEM_INFO {
        // struct seminfo, ten ints: semmap, semmni, semmns, semmnu, semmsl,
        // semopm, semume, semusz, semvmx, semaem; SEM_INFO puts the sets
        // and semaphores in use in semusz and semaem.
        var b = [UInt8](repeating: 0, count: 40)
        let used = cmd == SEM_INFO
        let inUse = Int32(clamping: ipc.sems.values.reduce(0) { $0 + $1.values.count })
        let info: [Int32] = [32000 * 32000, 32000, 32000 * 32000, 32000 * 32000, Int32(SEMMSL), Int32(SEMOPM), Int32(SEMOPM),
                             used ? Int32(ipc.sems.count) : 20, SEMVMX, used ? inUse : SEMVMX]
        for (i, v) in info.enumerated() { put32(&b, i * 4, v) }
        return t.copyOut(arg, b) ? Int(ipc.sems.keys.max() ?? 0) : err(EFAULT)
    }
    guard let set = ipc.sems[id] else { return err(EINVAL) }
    let n = set.values.count
    func needRead() -> Bool { ipcPermits(t, set.perm, 0o444) }
    func needWrite() -> Bool { ipcPermits(t, set.perm, 0o222) }
    switch cmd {
    case IPC_RMID:
        if !ipcOwner(t, set.perm) { return err(EPERM) }
        set.removed = true
        ipc.sems[id] = nil
        set.waiters.notifyAll()
        return 0
    case IPC_STAT, SEM_STAT, SEM_STAT_ANY:
        if cmd != SEM_STAT_ANY && !needRead() { return err(EACCES) }
        var b = set.perm.bytes()
        var rest = [UInt8](repeating: 0, count: 56)
        put64(&rest, 0, UInt64(set.otime)); put64(&rest, 16, UInt64(set.ctime)); put64(&rest, 32, UInt64(n))
        b += rest
        return t.copyOut(arg, b) ? (cmd != IPC_STAT ? Int(id) : 0) : err(EFAULT)
    case IPC_SET:
        let r = ipcSet(t, &set.perm, arg)
        if r == 0 { set.ctime = Int64(time(nil)) }
        return r
    case GETVAL, GETPID, GETNCNT, GETZCNT:
        if num < 0 || num >= n { return err(EINVAL) }
        if !needRead() { return err(EACCES) }
        switch cmd {
        case GETVAL: return Int(set.values[num])
        case GETPID: return Int(t.tg.pidSeen(set.pids[num]))
        case GETNCNT: return Int(set.ncnt[num])
        default: return Int(set.zcnt[num])
        }
    case GETALL:
        if !needRead() { return err(EACCES) }
        var b = [UInt8](repeating: 0, count: n * 2)
        for (i, v) in set.values.enumerated() { b[i * 2] = UInt8(v & 0xff); b[i * 2 + 1] = UInt8((v >> 8) & 0xff) }
        return t.copyOut(arg, b) ? 0 : err(EFAULT)
    case SETVAL:
        if num < 0 || num >= n { return err(EINVAL) }
        if !needWrite() { return err(EACCES) }
        let v = Int32(truncatingIfNeeded: arg)
        if v < 0 || v > SEMVMX { return err(ERANGE) }
        set.values[num] = v; set.pids[num] = t.tg.tgid
        set.ctime = Int64(time(nil))
        set.waiters.notifyAll()
        return 0
    case SETALL:
        if !needWrite() { return err(EACCES) }
        guard let b = t.copyIn(arg, n * 2) else { return err(EFAULT) }
        var vals: [Int32] = []
        for i in 0..<n {
            let v = Int32(UInt16(b[i * 2]) | UInt16(b[i * 2 + 1]) << 8)
            if v > SEMVMX { return err(ERANGE) }
            vals.append(v)
        }
        set.values = vals
        for i in 0..<n { set.pids[i] = t.tg.tgid }
        set.ctime = Int64(time(nil))
        set.waiters.notifyAll()
        return 0
    default: return err(EINVAL)
    }
}

// MARK: - Message queues

func sysMsgget(_ t: Task, _ a: Args) -> Int {
    return ipcGet(t, &t.ipc.msgs, kind: 2, key: a.int(0), flags: a.int(1), perm: { $0.perm }, check: { _ in nil }) { MsgQueue(perm: $0) }
}

func sysMsgsnd(_ t: Task, _ a: Args) -> Int {
    let id = a.int(0), size = a.long(2), flags = a.int(3)
    if size < 0 || size > MSGMAX { return err(EINVAL) }
    guard let q = t.ipc.msgs[id] else { return err(EINVAL) }
    if !ipcPermits(t, q.perm, 0o222) { return err(EACCES) }
    guard let typeRaw = t.readU64(a.a1) else { return err(EFAULT) }
    let type = Int(Int64(bitPattern: typeRaw))
    if type < 1 { return err(EINVAL) }
    guard let data = t.copyIn(a.a1 &+ 8, size) else { return err(EFAULT) }
    while q.bytes + size > q.qbytes {
        if flags & IPC_NOWAIT != 0 { return err(EAGAIN) }
        q.waiters.add(t)
        let r = t.block(deadline: nil)
        q.waiters.remove(t)
        if q.removed { return err(EIDRM) }
        if r == .interrupted { return err(EINTR) }
    }
    q.messages.append((type, data))
    q.bytes += size
    q.lspid = t.tg.tgid; q.stime = Int64(time(nil))
    q.waiters.notifyAll()
    return 0
}

func sysMsgrcv(_ t: Task, _ a: Args) -> Int {
    let id = a.int(0), size = a.long(2), want = a.long(3), flags = a.int(4)
    let MSG_NOERROR: Int32 = 0o10000, MSG_EXCEPT: Int32 = 0o20000, MSG_COPY: Int32 = 0o40000
    if id < 0 || size < 0 { return err(EINVAL) }
    // MSG_COPY (CONFIG_CHECKPOINT_RESTORE): a copy of the message at
    // position `want`, left in the queue; never waits, takes no type.
    let copy = flags & MSG_COPY != 0
    if copy && (flags & MSG_EXCEPT != 0 || flags & IPC_NOWAIT == 0) { return err(EINVAL) }
    guard let q = t.ipc.msgs[id] else { return err(EINVAL) }
    if !ipcPermits(t, q.perm, 0o444) { return err(EACCES) }
    while true {
        if q.removed { return err(EIDRM) }
        var pick: Int? = nil
        if copy { pick = want >= 0 && want < q.messages.count ? want : nil }
        else if want == 0 { pick = q.messages.isEmpty ? nil : 0 }
        else if want > 0 {
            pick = q.messages.firstIndex { flags & MSG_EXCEPT != 0 ? $0.type != want : $0.type == want }
        } else {
            // The lowest type not above |want|.
            var best: Int? = nil
            for (i, m) in q.messages.enumerated() where m.type <= -want {
                if best == nil || m.type < q.messages[best!].type { best = i }
            }
            pick = best
        }
        if let i = pick {
            let m = q.messages[i]
            if m.data.count > size && flags & MSG_NOERROR == 0 { return err(E2BIG) }
            // MSG_COPY copies whole messages only: with MSG_NOERROR too a
            // short buffer is EINVAL (Linux's copy_msg).
            if copy && m.data.count > size { return err(EINVAL) }
            let n = min(m.data.count, size)
            if !t.writeU64(a.a1, UInt64(m.type)) || !t.copyOut(a.a1 &+ 8, Array(m.data[0..<n])) { return err(EFAULT) }
            if copy { return n }
            q.messages.remove(at: i)
            q.bytes -= m.data.count
            q.lrpid = t.tg.tgid; q.rtime = Int64(time(nil))
            q.waiters.notifyAll()
            return n
        }
        if flags & IPC_NOWAIT != 0 { return err(ENOMSG) }
        q.waiters.add(t)
        let r = t.block(deadline: nil)
        q.waiters.remove(t)
        if r == .interrupted { return err(EINTR) }
    }
}

func sysMsgctl(_ t: Task, _ a: Args) -> Int {
    let id = a.int(0), cmd = a.int(1) & ~0x100
    let ipc = t.ipc
    if cmd == IPC_INFO || cmd == MSG_INFO {
        // struct msginfo, 32 bytes: ints msgpool, msgmap, msgmax, msgmnb,
        // msgmni, msgssz, msgtql, then the unsigned short msgseg. MSG_INFO
        // puts the queues, messages and bytes in use in msgpool, msgmap
        // and msgtql.
        var b = [UInt8](repeating: 0, count: 32)
        let used = cmd == MSG_INFO
        let msgs = ipc.msgs.values.reduce(0) { $0 + $1.messages.count }, bytes = ipc.msgs.values.reduce(0) { $0 + $1.bytes }
        let info: [Int32] = [used ? Int32(ipc.msgs.count) : 32000 * Int32(MSGMNB) / 1024, used ? Int32(clamping: msgs) : Int32(MSGMNB),
                             Int32(clamping: ipcLimit(t, "kernel/msgmax", UInt64(MSGMAX))), Int32(clamping: ipcLimit(t, "kernel/msgmnb", UInt64(MSGMNB))),
                             Int32(clamping: ipcLimit(t, "kernel/msgmni", 32000)), 16, used ? Int32(clamping: bytes) : Int32(MSGMNB)]
        for (i, v) in info.enumerated() { put32(&b, i * 4, v) }
        b[28] = 0xff; b[29] = 0xff                                             // msgseg
        return t.copyOut(a.a2, b) ? Int(ipc.msgs.keys.max() ?? 0) : err(EFAULT)
    }
    guard let q = ipc.msgs[id] else { return err(EINVAL) }
    switch cmd {
    case IPC_RMID:
        if !ipcOwner(t, q.perm) { return err(EPERM) }
        q.removed = true
        ipc.msgs[id] = nil
        q.waiters.notifyAll()
        return 0
    case IPC_STAT, MSG_STAT, MSG_STAT_ANY:
        if cmd != MSG_STAT_ANY && !ipcPermits(t, q.perm, 0o444) { return err(EACCES) }
        var b = q.perm.bytes()
        var rest = [UInt8](repeating: 0, count: 72)
        put64(&rest, 0, UInt64(q.stime)); put64(&rest, 8, UInt64(q.rtime)); put64(&rest, 16, UInt64(q.ctime))
        put64(&rest, 24, UInt64(q.bytes)); put64(&rest, 32, UInt64(q.messages.count)); put64(&rest, 40, UInt64(q.qbytes))
        put32(&rest, 48, t.tg.pidSeen(q.lspid)); put32(&rest, 52, t.tg.pidSeen(q.lrpid))
        b += rest
        return t.copyOut(a.a2, b) ? (cmd != IPC_STAT ? Int(id) : 0) : err(EFAULT)
    case IPC_SET:
        let r = ipcSet(t, &q.perm, a.a2)
        if r == 0, let b = t.copyIn(a.a2 &+ 88, 8) {
            let qb = Int(get64(b, 0))
            if qb > MSGMNB && !t.creds.has(Cap.sysResource) { return err(EPERM) }
            if qb > 0 { q.qbytes = qb }
            q.ctime = Int64(time(nil))
        }
        return r
    default: return err(EINVAL)
    }
}

// MARK: - /proc/sysvipc

/// `v` right-aligned in `width` columns, as printf's %Nd.
private func col(_ v: CustomStringConvertible, _ width: Int) -> String {
    let s = v.description
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

extension IPCNamespace {
    /// The text of /proc/sysvipc/shm, msg or sem: a header line, then one
    /// line per object in Linux's columns (ipcs and LTP read it), pids as
    /// `seen` numbers them.
    func procText(_ kind: String, seen: (Int32) -> Int32) -> String {
        func perm(_ p: IPCPerm) -> String { col(String(p.mode & 0o7777, radix: 8), 4) }
        func owners(_ p: IPCPerm) -> String { "\(col(p.uid, 5)) \(col(p.gid, 5)) \(col(p.cuid, 5)) \(col(p.cgid, 5))" }
        switch kind {
        case "shm":
            var s = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n"
            for (id, g) in shm.sorted(by: { $0.key < $1.key }) {
                s += "\(col(g.perm.key, 10)) \(col(id, 10))  \(perm(g.perm)) \(col(g.size, 21)) \(col(seen(g.cpid), 5)) \(col(seen(g.lpid), 5))  \(col(g.nattch, 5)) \(owners(g.perm)) "
                s += "\(col(g.atime, 10)) \(col(g.dtime, 10)) \(col(g.ctime, 10)) \(col(g.residentBytes, 21)) \(col(0, 21))\n"
            }
            return s
        case "msg":
            var s = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n"
            for (id, q) in msgs.sorted(by: { $0.key < $1.key }) {
                s += "\(col(q.perm.key, 10)) \(col(id, 10))  \(perm(q.perm))  \(col(q.bytes, 10)) \(col(q.messages.count, 10)) \(col(seen(q.lspid), 5)) \(col(seen(q.lrpid), 5)) \(owners(q.perm)) "
                s += "\(col(q.stime, 10)) \(col(q.rtime, 10)) \(col(q.ctime, 10))\n"
            }
            return s
        default:
            var s = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n"
            for (id, set) in sems.sorted(by: { $0.key < $1.key }) {
                s += "\(col(set.perm.key, 10)) \(col(id, 10))  \(perm(set.perm)) \(col(set.values.count, 10)) \(owners(set.perm)) \(col(set.otime, 10)) \(col(set.ctime, 10))\n"
            }
            return s
        }
    }
}

// MARK: - Attachments across fork, exec and exit

extension Kernel {
    /// A forked address space inherits the parent's attachments (each one
    /// counts in shm_nattch), whatever namespace each segment is in.
    /// Requires: mu held.
    func forkAttachments(from parent: UInt64, to child: UInt64) {
        for (k, a) in shmAttached where k.space == parent {
            shmAttached[FutexTable.Key(space: child, addr: k.addr)] = a
            a.ns.shm[a.id]?.nattch += 1
        }
    }

    /// An address space is gone (exec, or its last task exited): its
    /// attachments end, and a removed segment with none left is freed.
    /// Requires: mu held.
    func dropAttachments(space: UInt64, pid: Int32) {
        for (k, a) in shmAttached where k.space == space {
            shmAttached[k] = nil
            guard let s = a.ns.shm[a.id] else { continue }
            s.nattch -= 1
            s.dtime = Int64(time(nil)); s.lpid = pid
            if s.removed && s.nattch <= 0 { a.ns.shm[a.id] = nil }
        }
    }
}
