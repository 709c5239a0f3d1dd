// Credentials, limits, uname, and the small process-wide calls.

import CMoat
import Glibc

let moatRelease = "6.0.0-moat"

func registerIdentity(_ t: SyscallTable) {
    t[102] = { t, _ in Int(t.tg.creds.uid) }                                  // getuid
    t[107] = { t, _ in Int(t.tg.creds.euid) }                                 // geteuid
    t[104] = { t, _ in Int(t.tg.creds.gid) }                                  // getgid
    t[108] = { t, _ in Int(t.tg.creds.egid) }                                 // getegid
    t[118] = { t, a in                                                        // getresuid
        let c = t.tg.creds
        return t.writeI32(a.a0, Int32(bitPattern: c.uid)) && t.writeI32(a.a1, Int32(bitPattern: c.euid)) && t.writeI32(a.a2, Int32(bitPattern: c.suid)) ? 0 : err(EFAULT)
    }
    t[120] = { t, a in                                                        // getresgid
        let c = t.tg.creds
        return t.writeI32(a.a0, Int32(bitPattern: c.gid)) && t.writeI32(a.a1, Int32(bitPattern: c.egid)) && t.writeI32(a.a2, Int32(bitPattern: c.sgid)) ? 0 : err(EFAULT)
    }
    t[105] = { t, a in setIDs(t, user: true, r: a.uint(0), e: a.uint(0), s: a.uint(0), setuidStyle: true) }   // setuid
    t[106] = { t, a in setIDs(t, user: false, r: a.uint(0), e: a.uint(0), s: a.uint(0), setuidStyle: true) }  // setgid
    t[113] = { t, a in setIDs(t, user: true, r: a.uint(0), e: a.uint(1), s: UInt32.max, setuidStyle: false) } // setreuid
    t[114] = { t, a in setIDs(t, user: false, r: a.uint(0), e: a.uint(1), s: UInt32.max, setuidStyle: false) } // setregid
    t[117] = { t, a in setIDs(t, user: true, r: a.uint(0), e: a.uint(1), s: a.uint(2), setuidStyle: false) }  // setresuid
    t[119] = { t, a in setIDs(t, user: false, r: a.uint(0), e: a.uint(1), s: a.uint(2), setuidStyle: false) } // setresgid
    t[122] = { t, a in let o = t.tg.creds.fsuid; if t.tg.creds.isRoot { t.tg.creds.fsuid = a.uint(0) }; return Int(o) } // setfsuid
    t[123] = { t, a in let o = t.tg.creds.fsgid; if t.tg.creds.isRoot { t.tg.creds.fsgid = a.uint(0) }; return Int(o) } // setfsgid
    t[115] = { t, a in                                                        // getgroups
        let g = t.tg.creds.groups
        if a.int(0) == 0 { return g.count }
        if Int(a.int(0)) < g.count { return err(EINVAL) }
        var b = [UInt8](repeating: 0, count: g.count * 4)
        for (i, v) in g.enumerated() { put32(&b, i * 4, Int32(bitPattern: v)) }
        return t.copyOut(a.a1, b) ? g.count : err(EFAULT)
    }
    t[116] = { t, a in                                                        // setgroups
        if !t.tg.creds.isRoot { return err(EPERM) }
        let n = Int(a.int(0))
        if n < 0 || n > 65536 { return err(EINVAL) }
        guard let b = t.copyIn(a.a1, n * 4) else { return err(EFAULT) }
        t.tg.creds.groups = (0..<n).map { get32(b, $0 * 4) }
        return 0
    }
    t[63] = { t, a in                                                         // uname
        var b = [UInt8](repeating: 0, count: 65 * 6)
        func field(_ i: Int, _ s: [UInt8]) { b.replaceSubrange(i * 65..<i * 65 + min(64, s.count), with: s.prefix(64)) }
        field(0, Array("Linux".utf8)); field(1, t.kernel.hostname); field(2, Array(moatRelease.utf8))
        field(3, Array("#1 SMP moat".utf8)); field(4, Array("x86_64".utf8)); field(5, t.kernel.domainname)
        return t.copyOut(a.a0, b) ? 0 : err(EFAULT)
    }
    t[170] = { t, a in                                                        // sethostname
        if !t.tg.creds.isRoot { return err(EPERM) }
        if a.long(1) < 0 || a.long(1) > 64 { return err(EINVAL) }
        guard let b = t.copyIn(a.a0, a.long(1)) else { return err(EFAULT) }
        t.kernel.hostname = b
        return 0
    }
    t[171] = { t, a in                                                        // setdomainname
        if !t.tg.creds.isRoot { return err(EPERM) }
        if a.long(1) < 0 || a.long(1) > 64 { return err(EINVAL) }
        guard let b = t.copyIn(a.a0, a.long(1)) else { return err(EFAULT) }
        t.kernel.domainname = b
        return 0
    }
    t[97] = { t, a in sysPrlimit(t, 0, a.uint(0), 0, a.a1) }                  // getrlimit
    t[160] = { t, a in sysPrlimit(t, 0, a.uint(0), a.a1, 0) }                 // setrlimit
    t[302] = { t, a in sysPrlimit(t, a.int(0), a.uint(1), a.a2, a.a3) }       // prlimit64
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
            if a.a1 >= 0x0000_8000_0000_0000 { return err(EPERM) }
            t.thread.regs.fs_base = a.a1; t.thread.markDirty(); return 0
        case 0x1003: return t.writeU64(a.a1, t.thread.regs.fs_base) ? 0 : err(EFAULT) // ARCH_GET_FS
        case 0x1001: // ARCH_SET_GS
            if a.a1 >= 0x0000_8000_0000_0000 { return err(EPERM) }
            t.thread.regs.gs_base = a.a1; t.thread.markDirty(); return 0
        case 0x1004: return t.writeU64(a.a1, t.thread.regs.gs_base) ? 0 : err(EFAULT)
        case 0x3001, 0x3002: return err(EINVAL) // ARCH_[GS]ET_CPUID
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
    t[24] = { _, _ in sched_yield(); return 0 }                               // sched_yield
    t[204] = { t, a in                                                        // sched_getaffinity
        let n = a.long(1)
        if n < 8 || n & 7 != 0 { return err(EINVAL) }
        let cpus = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var b = [UInt8](repeating: 0, count: 8)
        for i in 0..<min(cpus, 64) { b[i / 8] |= UInt8(1 << (i % 8)) }
        return t.copyOut(a.a2, b) ? 8 : err(EFAULT)
    }
    t[203] = { _, _ in 0 }                                                    // sched_setaffinity
    t[309] = { t, a in                                                        // getcpu
        if a.a0 != 0 && !t.writeI32(a.a0, 0) { return err(EFAULT) }
        if a.a1 != 0 && !t.writeI32(a.a1, 0) { return err(EFAULT) }
        return 0
    }
    t[140] = { _, _ in 0 }                                                    // getpriority (20 - nice 0)
    t[141] = { _, _ in 0 }                                                    // setpriority
    t[145] = { t, a in                                                        // sched_getscheduler
        if a.int(0) < 0 { return err(EINVAL) }
        guard let target = a.int(0) == 0 ? t : t.kernel.tasks[a.int(0)] else { return err(ESRCH) }
        return Int(target.schedPolicy)
    }
    t[143] = { t, a in t.writeI32(a.a1, 0) ? 0 : err(EFAULT) }                // sched_getparam
    t[146] = { _, a in a.int(0) == 0 ? 0 : (a.int(0) == 1 || a.int(0) == 2 ? 99 : err(EINVAL)) } // sched_get_priority_max
    t[147] = { _, a in a.int(0) == 0 ? 0 : (a.int(0) == 1 || a.int(0) == 2 ? 1 : err(EINVAL)) }  // sched_get_priority_min
    t[273] = { t, a in t.robustList = a.a0; return a.a1 == 24 ? 0 : err(EINVAL) }  // set_robust_list
    t[334] = { _, _ in err(ENOSYS) }                                          // rseq: glibc falls back
    t[125] = { t, a in                                                        // capget
        if a.a1 == 0 { return 0 }
        var b = [UInt8](repeating: 0, count: 24)
        if t.tg.creds.isRoot {
            put32(&b, 0, -1); put32(&b, 4, -1); put32(&b, 12, 0x1ff); put32(&b, 16, 0x1ff)
        }
        return t.copyOut(a.a1, b) ? 0 : err(EFAULT)
    }
    t[126] = { t, _ in t.tg.creds.isRoot ? 0 : err(EPERM) }                   // capset
    t[135] = { _, a in a.uint(0) == 0 || a.uint(0) == 0xffffffff ? 0 : err(EINVAL) } // personality
    t[169] = { _, _ in err(EPERM) }                                           // reboot
}

func setIDs(_ t: Task, user: Bool, r: UInt32, e: UInt32, s: UInt32, setuidStyle: Bool) -> Int {
    var c = t.tg.creds
    let none = UInt32.max
    let root = c.euid == 0
    if user {
        let allowed = [c.uid, c.euid, c.suid]
        if setuidStyle {
            if root { c.uid = r; c.euid = r; c.suid = r }
            else if allowed.contains(r) { c.euid = r } else { return err(EPERM) }
        } else {
            for v in [r, e, s] where v != none && !root && !allowed.contains(v) { return err(EPERM) }
            if r != none { c.uid = r }
            if e != none { c.euid = e }
            if s != none { c.suid = s } else if !setuidStyle && r != none { c.suid = c.euid }
        }
        c.fsuid = c.euid
    } else {
        let allowed = [c.gid, c.egid, c.sgid]
        if setuidStyle {
            if root { c.gid = r; c.egid = r; c.sgid = r }
            else if allowed.contains(r) { c.egid = r } else { return err(EPERM) }
        } else {
            for v in [r, e, s] where v != none && !root && !allowed.contains(v) { return err(EPERM) }
            if r != none { c.gid = r }
            if e != none { c.egid = e }
            if s != none { c.sgid = s }
        }
        c.fsgid = c.egid
    }
    t.tg.creds = c
    return 0
}

func sysPrlimit(_ t: Task, _ pid: Int32, _ res: UInt32, _ newAddr: UInt64, _ oldAddr: UInt64) -> Int {
    if res >= 16 { return err(EINVAL) }
    let tg: ThreadGroup
    if pid == 0 { tg = t.tg } else {
        guard let x = t.kernel.threadGroups[pid], !x.reaped else { return err(ESRCH) }
        tg = x
    }
    let old = tg.rlimits[Int(res)]
    if newAddr != 0 {
        guard let cur = t.readU64(newAddr), let max = t.readU64(newAddr + 8) else { return err(EFAULT) }
        if cur > max { return err(EINVAL) }
        if max > old.max && !t.tg.creds.isRoot { return err(EPERM) }
        if res == UInt32(RL_NOFILE) && max > 1 << 20 { return err(EPERM) }
        tg.rlimits[Int(res)] = RLimit(cur: cur, max: max)
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
    case 3: return 1                        // PR_GET_DUMPABLE
    case 4: return 0                        // PR_SET_DUMPABLE
    case 36: t.tg.subreaper = a.a1 != 0; return 0  // PR_SET_CHILD_SUBREAPER
    case 37: return t.writeI32(a.a1, t.tg.subreaper ? 1 : 0) ? 0 : err(EFAULT)
    case 38: return 0                       // PR_SET_NO_NEW_PRIVS
    case 39: return 0                       // PR_GET_NO_NEW_PRIVS
    case 23: return a.long(1) >= 0 && a.long(1) < 41 ? 1 : err(EINVAL) // PR_CAPBSET_READ
    case 22: return 0                       // PR_SET_SECCOMP: accepted, not enforced yet
    case 21: return 0                       // PR_GET_SECCOMP
    default: return err(EINVAL)
    }
}
