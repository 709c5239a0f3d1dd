// Credentials, limits, uname, and the small process-wide calls.

import CMoat
import Glibc

let moatRelease = "6.0.0-moat"

func registerIdentity(_ t: SyscallTable) {
    // These four are also served without Kernel.mu (LockFree, Dispatch.swift).
    t[102] = sysGetuid
    t[107] = sysGeteuid
    t[104] = sysGetgid
    t[108] = sysGetegid
    t[118] = { t, a in                                                        // getresuid
        let c = t.creds, ns = c.userNS
        return t.writeI32(a.a0, Int32(bitPattern: ns.showUID(c.uid))) && t.writeI32(a.a1, Int32(bitPattern: ns.showUID(c.euid)))
            && t.writeI32(a.a2, Int32(bitPattern: ns.showUID(c.suid))) ? 0 : err(EFAULT)
    }
    t[120] = { t, a in                                                        // getresgid
        let c = t.creds, ns = c.userNS
        return t.writeI32(a.a0, Int32(bitPattern: ns.showGID(c.gid))) && t.writeI32(a.a1, Int32(bitPattern: ns.showGID(c.egid)))
            && t.writeI32(a.a2, Int32(bitPattern: ns.showGID(c.sgid))) ? 0 : err(EFAULT)
    }
    t[105] = { t, a in setIDs(t, user: true, .one, a.uint(0), a.uint(0), a.uint(0)) }       // setuid
    t[106] = { t, a in setIDs(t, user: false, .one, a.uint(0), a.uint(0), a.uint(0)) }      // setgid
    t[113] = { t, a in setIDs(t, user: true, .re, a.uint(0), a.uint(1), UInt32.max) }       // setreuid
    t[114] = { t, a in setIDs(t, user: false, .re, a.uint(0), a.uint(1), UInt32.max) }      // setregid
    t[117] = { t, a in setIDs(t, user: true, .res, a.uint(0), a.uint(1), a.uint(2)) }       // setresuid
    t[119] = { t, a in setIDs(t, user: false, .res, a.uint(0), a.uint(1), a.uint(2)) }      // setresgid
    // setfsuid/setfsgid: an id the caller's namespace does not map changes
    // nothing; the old id is returned either way.
    t[122] = { t, a in                                                        // setfsuid
        let old = t.creds
        if let f = old.userNS.kernelUID(a.uint(0)),
           [old.uid, old.euid, old.suid, old.fsuid].contains(f) || old.hasOwn(Cap.setuid), f != old.fsuid {
            t.creds.fsuid = f
            t.creds.fixUpAfterFSUIDChange(from: old.fsuid)
        }
        return Int(old.userNS.showUID(old.fsuid))
    }
    t[123] = { t, a in                                                        // setfsgid
        let old = t.creds
        if let f = old.userNS.kernelGID(a.uint(0)),
           [old.gid, old.egid, old.sgid, old.fsgid].contains(f) || old.hasOwn(Cap.setgid) { t.creds.fsgid = f }
        return Int(old.userNS.showGID(old.fsgid))
    }
    t[115] = { t, a in                                                        // getgroups
        let g = t.creds.groups, ns = t.creds.userNS
        if a.int(0) == 0 { return g.count }
        if Int(a.int(0)) < g.count { return err(EINVAL) }
        var b = [UInt8](repeating: 0, count: g.count * 4)
        for (i, v) in g.enumerated() { put32(&b, i * 4, Int32(bitPattern: ns.showGID(v))) }
        return t.copyOut(a.a1, b) ? g.count : err(EFAULT)
    }
    t[116] = { t, a in                                                        // setgroups
        // CAP_SETGID in the caller's namespace, which must allow it
        // (/proc/PID/setgroups, its gid_map written: Kernel/UserNamespaces.swift).
        if !t.creds.hasOwn(Cap.setgid) || !t.creds.userNS.maySetgroups { return err(EPERM) }
        let n = Int(a.int(0))
        if n < 0 || n > 65536 { return err(EINVAL) }
        guard let b = t.copyIn(a.a1, n * 4) else { return err(EFAULT) }
        var groups: [UInt32] = []
        for i in 0..<n {
            guard let g = t.creds.userNS.kernelGID(get32(b, i * 4)) else { return err(EINVAL) }
            groups.append(g)
        }
        t.creds.groups = groups
        return 0
    }
    t[63] = { t, a in                                                         // uname
        var b = [UInt8](repeating: 0, count: 65 * 6)
        func field(_ i: Int, _ s: [UInt8]) { b.replaceSubrange(i * 65..<i * 65 + min(64, s.count), with: s.prefix(64)) }
        field(0, Array("Linux".utf8)); field(1, t.uts.hostname)
        field(2, Array((t.personality & Personality.uname26 != 0 ? Personality.release26 : moatRelease).utf8))
        field(3, Array("#1 SMP moat".utf8)); field(4, Array("x86_64".utf8)); field(5, t.uts.domainname)
        return t.copyOut(a.a0, b) ? 0 : err(EFAULT)
    }
    t[170] = { t, a in                                                        // sethostname
        if !t.creds.capable(Cap.sysAdmin, in: t.uts.owner) { return err(EPERM) }
        if a.long(1) < 0 || a.long(1) > 64 { return err(EINVAL) }
        guard let b = t.copyIn(a.a0, a.long(1)) else { return err(EFAULT) }
        t.uts.hostname = b
        return 0
    }
    t[171] = { t, a in                                                        // setdomainname
        if !t.creds.capable(Cap.sysAdmin, in: t.uts.owner) { return err(EPERM) }
        if a.long(1) < 0 || a.long(1) > 64 { return err(EINVAL) }
        guard let b = t.copyIn(a.a0, a.long(1)) else { return err(EFAULT) }
        t.uts.domainname = b
        return 0
    }
    t[97] = { t, a in sysPrlimit(t, 0, a.uint(0), 0, a.a1) }                  // getrlimit
    // vhangup: needs CAP_SYS_TTY_CONFIG (26); the sandbox's terminals have
    // nothing to revoke beyond that.
    t[153] = { t, _ in t.creds.has(26) ? 0 : err(EPERM) }
    t[160] = { t, a in sysPrlimit(t, 0, a.uint(0), a.a1, 0) }                 // setrlimit
    t[302] = { t, a in sysPrlimit(t, a.int(0), a.uint(1), a.a2, a.a3) }       // prlimit64
    t[103] = sysSyslog
    t[99] = { t, a in                                                         // sysinfo
        var total: UInt64 = 0, free: UInt64 = 0, procs: UInt64 = 0
        moat_sysinfo(&total, &free, &procs)
        var b = [UInt8](repeating: 0, count: 112)
        put64(&b, 0, UInt64((Kernel.now(CLOCK_MONOTONIC) - t.kernel.bootMonotonicNs) / 1_000_000_000))
        put64(&b, 32, total); put64(&b, 40, free)
        b[80] = UInt8(truncatingIfNeeded: t.kernel.threadGroups.count); b[81] = UInt8(truncatingIfNeeded: t.kernel.threadGroups.count >> 8)
        put32(&b, 104, 1)
        return t.copyOut(a.a0, b) ? 0 : err(EFAULT)
    }
    t[158] = { t, a in                                                        // arch_prctl
        switch a.int(0) {
        case 0x1002: // ARCH_SET_FS
            if a.a1 >= taskSizeMax { return err(EPERM) }
            t.thread.regs.fs_base = a.a1; t.thread.markDirty(); return 0
        case 0x1003: return t.writeU64(a.a1, t.thread.regs.fs_base) ? 0 : err(EFAULT) // ARCH_GET_FS
        case 0x1001: // ARCH_SET_GS
            if a.a1 >= taskSizeMax { return err(EPERM) }
            t.thread.regs.gs_base = a.a1; t.thread.markDirty(); return 0
        case 0x1004: return t.writeU64(a.a1, t.thread.regs.gs_base) ? 0 : err(EFAULT)
        // ARCH_GET_CPUID: CPUID works; ARCH_SET_CPUID: the sandbox's CPU has
        // no CPUID faulting (its /proc/cpuinfo lists no cpuid_fault): ENODEV.
        case 0x1011: return 1
        case 0x1012: return err(ENODEV)
        default: return err(EINVAL)
        }
    }
    t[157] = sysPrctl
    t[318] = { t, a in                                                        // getrandom
        if a.uint(2) & ~UInt32(7) != 0 { return err(EINVAL) }
        let n = min(a.long(1), t.scratch.count)
        if n < 0 { return err(EINVAL) }
        let r = t.scratch.withUnsafeMutableBytes { getrandom($0.baseAddress!, n, 0) }
        if r < 0 { return err(errno) }
        return t.scratch.withUnsafeBytes { t.copyOut(a.a0, $0.baseAddress!, r) } ? r : err(EFAULT)
    }
    t[24] = sysSchedYield                                                     // sched_yield (also LockFree)
    t[204] = { t, a in                                                        // sched_getaffinity
        let n = a.long(1)
        if n < 8 || n & 7 != 0 { return err(EINVAL) }
        guard let target = schedTarget(t, a.int(0)) else { return err(ESRCH) }
        var b = [UInt8](repeating: 0, count: 8)
        put64(&b, 0, target.cpuMask)
        return t.copyOut(a.a2, b) ? 8 : err(EFAULT)
    }
    t[203] = { t, a in                                                        // sched_setaffinity
        // The mask is kept, reported and inherited, and the task's stub
        // runs on a CPU it allows (Kernel/HostScheduling.swift).
        let n = min(max(a.long(1), 0), 8)
        guard let target = schedTarget(t, a.int(0)) else { return err(ESRCH) }
        guard let b = t.copyIn(a.a2, n) else { return err(EFAULT) }
        var m: UInt64 = 0
        for (i, byte) in b.enumerated() { m |= UInt64(byte) << UInt64(i * 8) }
        m &= onlineCPUMask
        if m == 0 { return err(EINVAL) }
        if target !== t && target.creds.euid != t.creds.euid && target.creds.uid != t.creds.euid && !t.creds.has(Cap.sysNice) { return err(EPERM) }
        target.cpuMask = m
        target.applyAffinity()                                                // Kernel/HostScheduling.swift
        return 0
    }
    t[309] = { t, a in                                                        // getcpu
        // The CPU the driver (pinned with its stub, Task.pin) runs on when
        // the task's affinity allows it, else the first the mask allows:
        // on Linux a task runs only where its affinity lets it.
        var c: UInt32 = 0
        let r = withUnsafeMutablePointer(to: &c) { moat_syscall6(309, Int(bitPattern: $0), 0, 0, 0, 0, 0) }
        let here = r == 0 ? Int(c) : -1, mask = t.cpuMask
        let cpu = here >= 0 && here < 64 && mask & (1 << UInt64(here)) != 0 ? here : mask.trailingZeroBitCount
        if a.a0 != 0 && !t.writeI32(a.a0, Int32(cpu)) { return err(EFAULT) }
        if a.a1 != 0 && !t.writeI32(a.a1, 0) { return err(EFAULT) }
        return 0
    }
    t[140] = { t, a in                                                        // getpriority: 20 - the lowest nice
        switch priorityTargets(t, a.int(0), a.int(1)) {
        case .failure(let e): return e.ret
        case .success(let ts): return Int(20 - (ts.map { $0.nice }.min() ?? 0))
        }
    }
    t[141] = { t, a in                                                        // setpriority
        let ts: [Task]
        switch priorityTargets(t, a.int(0), a.int(1)) { case .failure(let e): return e.ret; case .success(let v): ts = v }
        let nice = Int32(max(-20, min(19, a.int(2))))
        for x in ts {
            // Another user's process needs CAP_SYS_NICE (EPERM); lowering
            // the nice value needs it too (EACCES), as RLIMIT_NICE is 0.
            if x.tg !== t.tg && t.creds.euid != x.creds.uid && t.creds.euid != x.creds.euid && !t.creds.has(Cap.sysNice) {
                return err(EPERM)
            }
            if nice < x.nice && !t.creds.has(Cap.sysNice) { return err(EACCES) }
        }
        for x in ts { x.nice = nice }
        return 0
    }
    t[273] = { t, a in t.robustList = a.a0; return a.a1 == 24 ? 0 : err(EINVAL) }  // set_robust_list
    t[334] = { _, _ in err(ENOSYS) }                                          // rseq: glibc falls back
    t[125] = sysCapget
    t[126] = sysCapset
    t[135] = { t, a in                                                        // personality
        let old = t.personality
        if a.uint(0) != 0xffff_ffff { t.personality = a.uint(0) }
        return Int(old)
    }
    t[169] = { _, _ in err(EPERM) }                                           // reboot
}

enum SetIDKind { case one, re, res }

/// setuid/setreuid/setresuid (user) and their gid twins, with the
/// unprivileged rules of each and, for uids, the capability effects. The
/// ids are the caller's namespace's: one it does not map is EINVAL, and the
/// privilege is CAP_SETUID (CAP_SETGID) there.
func setIDs(_ t: Task, user: Bool, _ kind: SetIDKind, _ lr: UInt32, _ le: UInt32, _ ls: UInt32) -> Int {
    let old = t.creds
    var c = old
    let none = UInt32.max
    func kernelID(_ v: UInt32) -> UInt32? {
        v == none ? none : user ? old.userNS.kernelUID(v) : old.userNS.kernelGID(v)
    }
    if kind == .one && lr == none { return err(EINVAL) }                     // (uid_t)-1 names no user
    guard let r = kernelID(lr), let e = kernelID(le), let s = kernelID(ls) else { return err(EINVAL) }
    let privileged = old.hasOwn(user ? Cap.setuid : Cap.setgid)
    let (cr, ce, cs) = user ? (old.uid, old.euid, old.suid) : (old.gid, old.egid, old.sgid)
    var (nr, ne, ns) = (cr, ce, cs)
    switch kind {
    case .one:
        if privileged { nr = r; ne = r; ns = r }
        else if r == cr || r == cs { ne = r } else { return err(EPERM) }
    case .re:
        if r != none && !privileged && r != cr && r != ce { return err(EPERM) }
        if e != none && !privileged && e != cr && e != ce && e != cs { return err(EPERM) }
        if r != none { nr = r }
        if e != none { ne = e }
        if r != none || (e != none && e != cr) { ns = ne }
    case .res:
        for v in [r, e, s] where v != none && !privileged && v != cr && v != ce && v != cs { return err(EPERM) }
        if r != none { nr = r }
        if e != none { ne = e }
        if s != none { ns = s }
    }
    if user {
        c.uid = nr; c.euid = ne; c.suid = ns; c.fsuid = ne
        c.fixUpAfterUIDChange(from: old)
    } else {
        c.gid = nr; c.egid = ne; c.sgid = ns; c.fsgid = ne
    }
    t.creds = c
    return 0
}

/// The capability sets a capget/capset user_cap_data array carries: one
/// 32-bit word each for version 1, two for versions 2 and 3.
private func capWords(_ t: Task, _ header: UInt64) -> Result<Int, Errno> {
    guard let v = t.readI32(header).map({ UInt32(bitPattern: $0) }) else { return .failure(Errno(EFAULT)) }
    switch v {
    case 0x19980330: return .success(1)
    case 0x20071026, 0x20080522: return .success(2)
    default:
        // An unknown version: the kernel answers with the one it prefers.
        if !t.writeI32(header, 0x20080522) { return .failure(Errno(EFAULT)) }
        return .failure(Errno(EINVAL))
    }
}

func sysCapget(_ t: Task, _ a: Args) -> Int {
    let words: Int
    switch capWords(t, a.a0) {
    case .success(let w): words = w
    case .failure(let e): return a.a1 == 0 && e.code == EINVAL ? 0 : e.ret
    }
    if a.a1 == 0 { return 0 }
    guard let pidWord = t.readI32(a.a0 &+ 4) else { return err(EFAULT) }
    let pid = pidWord
    if pid < 0 { return err(EINVAL) }
    let c: Credentials
    if pid == 0 || t.gpid(pid) == t.tid { c = t.creds } else {
        guard let target = t.kernel.task(pid, by: t) else { return err(ESRCH) }
        c = target.creds
    }
    var b = [UInt8](repeating: 0, count: 12 * words)
    for w in 0..<words {
        let shift = UInt64(32 * w)
        put32(&b, w * 12, Int32(bitPattern: UInt32(truncatingIfNeeded: c.capEff >> shift)))
        put32(&b, w * 12 + 4, Int32(bitPattern: UInt32(truncatingIfNeeded: c.capPrm >> shift)))
        put32(&b, w * 12 + 8, Int32(bitPattern: UInt32(truncatingIfNeeded: c.capInh >> shift)))
    }
    return t.copyOut(a.a1, b) ? 0 : err(EFAULT)
}

func sysCapset(_ t: Task, _ a: Args) -> Int {
    let words: Int
    switch capWords(t, a.a0) { case .success(let w): words = w; case .failure(let e): return e.ret }
    guard let pidWord = t.readI32(a.a0 &+ 4) else { return err(EFAULT) }
    let pid = pidWord
    if pid != 0 && t.gpid(pid) != t.tid { return err(EPERM) }
    guard let b = t.copyIn(a.a1, 12 * words) else { return err(EFAULT) }
    var e: UInt64 = 0, p: UInt64 = 0, i: UInt64 = 0
    for w in 0..<words {
        let shift = UInt64(32 * w)
        e |= UInt64(get32(b, w * 12)) << shift
        p |= UInt64(get32(b, w * 12 + 4)) << shift
        i |= UInt64(get32(b, w * 12 + 8)) << shift
    }
    var c = t.creds
    if let code = c.capset(effective: e, permitted: p, inheritable: i) { return err(code) }
    t.creds = c
    return 0
}

func sysPrlimit(_ t: Task, _ pid: Int32, _ res: UInt32, _ newAddr: UInt64, _ oldAddr: UInt64) -> Int {
    if res >= 16 { return err(EINVAL) }
    let tg: ThreadGroup
    if pid == 0 { tg = t.tg } else {
        guard let x = t.kernel.group(pid, by: t), !x.reaped else { return err(ESRCH) }
        tg = x
        // Another process's limits: same ids all round, or CAP_SYS_RESOURCE.
        let c = t.creds, d = x.creds
        let same = [d.uid, d.euid, d.suid].allSatisfy { $0 == c.uid } && [d.gid, d.egid, d.sgid].allSatisfy { $0 == c.gid }
        if x !== t.tg && !same && !c.has(Cap.sysResource) { return err(EPERM) }
    }
    let old = tg.rlimits[Int(res)]
    if newAddr != 0 {
        guard let cur = t.readU64(newAddr), let max = t.readU64(newAddr + 8) else { return err(EFAULT) }
        if cur > max { return err(EINVAL) }
        if max > old.max && !t.creds.has(Cap.sysResource) { return err(EPERM) }
        if res == UInt32(RL_NOFILE) && max > UInt64(t.kernel.sysctl.nrOpen) { return err(EPERM) }
        tg.rlimits[Int(res)] = RLimit(cur: cur, max: max)
        if res == 0 { t.kernel.timers.setCPULimit(tg) }                     // RLIMIT_CPU
    }
    if oldAddr != 0 {
        var b = [UInt8](repeating: 0, count: 16)
        put64(&b, 0, old.cur); put64(&b, 8, old.max)
        if !t.copyOut(oldAddr, b) { return err(EFAULT) }
    }
    return 0
}

func sysPrctl(_ t: Task, _ a: Args) -> Int {
    switch a.int(0) {
    case 15: // PR_SET_NAME
        let (s, _) = t.copyInString(a.a1, max: 4096)
        guard let name = s else { return err(EFAULT) }
        t.comm = Array(name.prefix(15))
        return 0
    case 16: // PR_GET_NAME
        var b = [UInt8](repeating: 0, count: 16)
        b.replaceSubrange(0..<t.comm.count, with: t.comm)
        return t.copyOut(a.a1, b) ? 0 : err(EFAULT)
    case 1:                                 // PR_SET_PDEATHSIG
        if a.a1 > 64 { return err(EINVAL) }
        t.tg.parentDeathSignal = Int32(a.a1)
        return 0
    case 2: return t.writeI32(a.a1, t.tg.parentDeathSignal) ? 0 : err(EFAULT)   // PR_GET_PDEATHSIG
    case 0x59616d61:                        // PR_SET_PTRACER (Syscalls/PtraceYama.swift)
        return Yama.shared.setPtracer(t, a.a1)
    case 29:                                // PR_SET_TIMERSLACK: 0 (or "negative") goes back to the default
        t.timerSlackNs = Int64(bitPattern: a.a1) <= 0 ? t.defaultTimerSlackNs : a.a1
        return 0
    case 30: return Int(truncatingIfNeeded: t.timerSlackNs)                     // PR_GET_TIMERSLACK
    case 3: return Int(t.tg.dumpable)       // PR_GET_DUMPABLE
    case 4:                                 // PR_SET_DUMPABLE: SUID_DUMP_ROOT (2) only an exec sets
        if a.a1 > 1 { return err(EINVAL) }
        t.tg.dumpable = Int32(a.a1)
        return 0
    case 35:                                // PR_SET_MM: Linux's checks, in its order
        let opt = a.a1
        if a.a4 != 0 || (a.a3 != 0 && opt != 12 && opt != 14 && opt != 15) { return err(EINVAL) }   // AUXV, MAP, MAP_SIZE
        if opt == 15 { return t.writeI32(a.a2, 104) ? 0 : err(EFAULT) }   // PR_SET_MM_MAP_SIZE: sizeof(struct prctl_mm_map)
        if opt != 14 && !t.creds.has(Cap.sysResource) { return err(EPERM) }
        return err(EINVAL)                  // the memory map's fields are not kept
    case 36: t.tg.subreaper = a.a1 != 0; return 0  // PR_SET_CHILD_SUBREAPER
    case 37: return t.writeI32(a.a1, t.tg.subreaper ? 1 : 0) ? 0 : err(EFAULT)
    case 38:                                // PR_SET_NO_NEW_PRIVS
        if a.a1 != 1 || a.a2 != 0 || a.a3 != 0 || a.a4 != 0 { return err(EINVAL) }
        t.creds.noNewPrivs = true
        return 0
    case 39:                                // PR_GET_NO_NEW_PRIVS
        if a.a1 != 0 || a.a2 != 0 || a.a3 != 0 || a.a4 != 0 { return err(EINVAL) }
        return t.creds.noNewPrivs ? 1 : 0
    case 23:                                // PR_CAPBSET_READ
        return Cap.valid(a.a1) ? (t.creds.capBnd & Cap.bit(Int(a.a1)) != 0 ? 1 : 0) : err(EINVAL)
    case 24:                                // PR_CAPBSET_DROP
        if !t.creds.hasOwn(Cap.setpcap) { return err(EPERM) }
        if !Cap.valid(a.a1) { return err(EINVAL) }
        t.creds.capBnd &= ~Cap.bit(Int(a.a1))
        return 0
    case 7: return t.creds.secure(SecureBits.keepCaps) ? 1 : 0   // PR_GET_KEEPCAPS
    case 8:                                 // PR_SET_KEEPCAPS
        if a.a1 > 1 { return err(EINVAL) }
        if t.creds.secure(SecureBits.keepCaps << 1) { return err(EPERM) }
        if a.a1 == 1 { t.creds.securebits |= SecureBits.keepCaps } else { t.creds.securebits &= ~SecureBits.keepCaps }
        return 0
    case 27: return Int(t.creds.securebits) // PR_GET_SECUREBITS
    case 28:                                // PR_SET_SECUREBITS
        let old = t.creds.securebits, new = a.a1
        if new > UInt64(SecureBits.allBits | SecureBits.allLocks) { return err(EPERM) }
        let n = UInt32(new)
        // Locked bits may not change, locks may not be released.
        if ((old & SecureBits.allLocks) >> 1) & (old ^ n) != 0 || old & SecureBits.allLocks & ~n != 0 { return err(EPERM) }
        if !t.creds.hasOwn(Cap.setpcap) { return err(EPERM) }
        t.creds.securebits = n
        return 0
    case 47:                                // PR_CAP_AMBIENT
        if a.a1 == 4 {                      // PR_CAP_AMBIENT_CLEAR_ALL
            if a.a2 != 0 || a.a3 != 0 || a.a4 != 0 { return err(EINVAL) }
            t.creds.capAmb = 0
            return 0
        }
        if !Cap.valid(a.a2) || a.a3 != 0 || a.a4 != 0 { return err(EINVAL) }
        let bit = Cap.bit(Int(a.a2))
        switch a.a1 {
        case 1: return t.creds.capAmb & bit != 0 ? 1 : 0          // IS_SET
        case 2:                                                   // RAISE
            let c = t.creds
            if c.capPrm & bit == 0 || c.capInh & bit == 0 || c.secure(SecureBits.noCapAmbientRaise) { return err(EPERM) }
            t.creds.capAmb |= bit
            return 0
        case 3: t.creds.capAmb &= ~bit; return 0                  // LOWER
        default: return err(EINVAL)
        }
    case 22: return prctlSetSeccomp(t, mode: a.a1, filter: a.a2)     // PR_SET_SECCOMP (Syscalls/Seccomp.swift)
    case 21: return prctlGetSeccomp(t)      // PR_GET_SECCOMP
    default: return err(EINVAL)
    }
}

/// One bit per online host CPU (at most 64): the affinity every task starts with.
let onlineCPUMask: UInt64 = {
    let cpus = min(64, max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    return cpus == 64 ? UInt64.max : (1 << UInt64(cpus)) - 1
}()

/// The thread a pid argument of the sched_* calls and kcmp names: 0 is
/// the caller, else a thread id of a task that has not exited, or the
/// leader of a process that has exited and is not yet reaped: Linux finds
/// it until the parent's wait releases it, so sched_getscheduler on a
/// child that just exited answers (nil: ESRCH).
/// Its memory and files are gone (`exited`): a caller that needs them
/// checks (kcmp).
func schedTarget(_ t: Task, _ pid: Int32) -> Task? {
    if pid < 0 { return nil }
    if pid == 0 { return t }
    if let x = t.kernel.task(pid, by: t), !x.exited { return x }
    return t.kernel.group(pid, by: t)?.exitedLeader
}

/// The tasks getpriority/setpriority name: PRIO_PROCESS (a thread id; 0:
/// the caller), PRIO_PGRP (a process group; 0: the caller's), PRIO_USER (a
/// uid; 0: the caller's). EINVAL for another `which`, ESRCH when none match.
/// A process that has exited and is not yet reaped still counts by its
/// leader, as on Linux (schedTarget).
func priorityTargets(_ t: Task, _ which: Int32, _ who: Int32) -> Result<[Task], Errno> {
    let k = t.kernel
    var out: [Task] = []
    func members(_ g: ThreadGroup) -> [Task] { g.zombie ? (g.exitedLeader.map { [$0] } ?? []) : g.tasks }
    switch which {
    case 0:
        if let x = schedTarget(t, who) { out = [x] }
    case 1:
        let pg = who == 0 ? t.tg.pgid : t.gpid(who)
        for g in k.threadGroups.values where g.pgid == pg && k.sees(t, g) { out += members(g) }
    case 2:
        let uid = who == 0 ? t.creds.uid : UInt32(bitPattern: who)
        for g in k.threadGroups.values where k.sees(t, g) { out += members(g).filter { $0.creds.uid == uid } }
    default: return .failure(Errno(EINVAL))
    }
    return out.isEmpty ? .failure(Errno(ESRCH)) : .success(out)
}

/// sched_yield: the host's, for the driver thread; served without Kernel.mu
/// (LockFree, Dispatch.swift): under it, the yield held up every other task.
func sysSchedYield(_: Task, _: Args) -> Int { sched_yield(); return 0 }

// Served with or without Kernel.mu (LockFree, Dispatch.swift): a task's
// credentials are written only by its own calls (set*id, capset, exec,
// faccessat's borrowed ones) or before it first runs (clone, a new
// process), and a call is served on that task's own driver thread, so no
// other thread writes them meanwhile.
func sysGetuid(_ t: Task, _: Args) -> Int { Int(t.creds.userNS.showUID(t.creds.uid)) }
func sysGeteuid(_ t: Task, _: Args) -> Int { Int(t.creds.userNS.showUID(t.creds.euid)) }
func sysGetgid(_ t: Task, _: Args) -> Int { Int(t.creds.userNS.showGID(t.creds.gid)) }
func sysGetegid(_ t: Task, _: Args) -> Int { Int(t.creds.userNS.showGID(t.creds.egid)) }

/// The personality(2) bits Moat acts on.
enum Personality {
    /// uname reports a 2.6 release (Linux's override_release: 2.6.(60 +
    /// the patch level), then what follows the version numbers).
    static let uname26: UInt32 = 0x0020000
    /// select, pselect and ppoll leave the caller's timeout as it was.
    static let stickyTimeouts: UInt32 = 0x4000000
    /// PROT_READ mappings are executable too.
    static let readImpliesExec: UInt32 = 0x0400000
    /// What a set-id exec clears (Linux's PER_CLEAR_ON_SETID).
    static let clearOnSetID: UInt32 = 0x0400000 | 0x0040000 | 0x0200000 | 0x0100000

    static let release26: String = {
        let r = moatRelease
        let nums = r.prefix { $0.isNumber || $0 == "." }
        let parts = nums.split(separator: ".", omittingEmptySubsequences: false)
        let patch = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        // Linux stops at the third dot or the first character that is neither.
        var rest = Substring(r)
        var dots = 0
        while let c = rest.first, c.isNumber || (c == "." && dots < 2) { if c == "." { dots += 1 }; rest = rest.dropFirst() }
        return "2.6.\(patch + 60)" + rest
    }()
}

/// syslog(2), the kernel's log: Moat's kernel writes none, so the log is
/// empty (a read gets nothing; SYSLOG_ACTION_READ waits, as Linux's does
/// for a message, until a signal) and its size is Linux's usual buffer.
/// As on Linux without dmesg_restrict, reading it all and asking its size
/// need no privilege; the other actions need CAP_SYSLOG or CAP_SYS_ADMIN.
func sysSyslog(_ t: Task, _ a: Args) -> Int {
    let type = a.int(0), buf = a.a1, len = a.int(2)
    let CAP_SYSLOG = 34
    switch type {
    case 0, 1: return 0                                                  // CLOSE, OPEN
    case 3, 10: break                                                    // READ_ALL, SIZE_BUFFER
    case 2, 4, 5, 6, 7, 8, 9:
        if !t.creds.has(CAP_SYSLOG) && !t.creds.has(Cap.sysAdmin) { return err(EPERM) }
    default: return err(EINVAL)
    }
    switch type {
    case 2, 3, 4:                                                        // READ, READ_ALL, READ_CLEAR
        if buf == 0 || len < 0 { return err(EINVAL) }
        if type != 2 || len == 0 { return 0 }
        while true {
            if t.block(deadline: nil) == .interrupted { return -ERESTARTSYS }
        }
    case 8: return len < 1 || len > 8 ? err(EINVAL) : 0                 // CONSOLE_LEVEL
    case 10: return 1 << 18                                              // SIZE_BUFFER
    default: return 0                                                    // CLEAR, CONSOLE_OFF/ON, SIZE_UNREAD
    }
}
