// The emulated credentials of a task: ids and capability sets, and the
// rules capabilities(7) gives for execve, the set*id calls and capset.
// Every permission check in the Sentry asks `has(cap)` where Linux asks
// capable(); uid 0 by itself grants nothing except through these rules.
// Ids are kernel ids, those of the sandbox's initial user namespace; the
// task's namespace (`userNS`, Kernel/UserNamespaces.swift) decides how it
// sees them, which one is its root, and where its capabilities count.

import Glibc

/// Capability numbers (linux/capability.h) the Sentry checks, and sets.
enum Cap {
    static let chown = 0, dacOverride = 1, dacReadSearch = 2, fowner = 3, fsetid = 4, kill = 5
    static let setgid = 6, setuid = 7, setpcap = 8, linuxImmutable = 9, netBindService = 10
    static let netAdmin = 12, netRaw = 13, ipcLock = 14, ipcOwner = 15, sysChroot = 18, sysPtrace = 19
    static let sysAdmin = 21, sysNice = 23, sysResource = 24, sysTime = 25, mknod = 27, lease = 28, auditWrite = 29
    static let setfcap = 31, macOverride = 32
    /// CAP_LAST_CAP of the kernel Moat presents (/proc/sys/kernel/cap_last_cap).
    static let last = 40
    static let all: UInt64 = (1 << UInt64(last + 1)) - 1
    static func bit(_ c: Int) -> UInt64 { 1 << UInt64(c) }
    static func valid(_ c: UInt64) -> Bool { c <= UInt64(last) }
    /// The capabilities a change of fsuid to or from 0 clears or restores.
    static let fsSet: UInt64 = [chown, dacOverride, dacReadSearch, fowner, fsetid, linuxImmutable, mknod, macOverride]
        .reduce(0) { $0 | bit($1) }
    /// Docker's (and containerd's, runsc's under Docker) default set for a
    /// container: 0xa80425fb.
    static let dockerDefault: UInt64 = [chown, dacOverride, fsetid, fowner, mknod, netRaw, setgid, setuid, setfcap,
                                        setpcap, netBindService, sysChroot, kill, auditWrite].reduce(0) { $0 | bit($1) }
}

/// securebits (linux/securebits.h): each bit, and its lock one above it.
enum SecureBits {
    static let noRoot: UInt32 = 1 << 0, noSetuidFixup: UInt32 = 1 << 2, keepCaps: UInt32 = 1 << 4
    static let noCapAmbientRaise: UInt32 = 1 << 6
    static let allBits: UInt32 = 0x555, allLocks: UInt32 = 0xaaa  // with the advisory exec bits (8-11)
}

/// Credentials of a task (each thread has its own, as in Linux; fork and
/// clone copy the caller's).
struct Credentials {
    var uid: UInt32 = 0, euid: UInt32 = 0, suid: UInt32 = 0, fsuid: UInt32 = 0
    var gid: UInt32 = 0, egid: UInt32 = 0, sgid: UInt32 = 0, fsgid: UInt32 = 0
    var groups: [UInt32] = []
    var capInh: UInt64 = 0, capPrm: UInt64 = 0, capEff: UInt64 = 0, capBnd: UInt64 = Cap.all, capAmb: UInt64 = 0
    var securebits: UInt32 = 0
    var noNewPrivs = false
    /// The thread's Landlock domain (Kernel/LandlockDomain.swift), kept by fork,
    /// clone and execve; nil: not sandboxed.
    var landlock: LandlockDomain? = nil
    /// The user namespace the ids are seen from and the capabilities hold in.
    var userNS: UserNamespace = .root

    init() {}
    /// One user and group for all ids, and the capabilities Linux gives
    /// that user before an exec: all of them for uid 0 (bounded by
    /// `bounding`), none otherwise.
    init(uid: UInt32, gid: UInt32, groups: [UInt32], bounding: UInt64 = Cap.all) {
        self.uid = uid; euid = uid; suid = uid; fsuid = uid
        self.gid = gid; egid = gid; sgid = gid; fsgid = gid
        self.groups = groups
        capBnd = bounding & Cap.all
        if uid == 0 { capPrm = capBnd; capEff = capBnd }
    }

    /// A container process's credentials before its exec: the configured
    /// sets (ambient kept within permitted and inheritable, effective
    /// within permitted, as capset and PR_CAP_AMBIENT would leave them), or
    /// without a configuration those of `init(uid:gid:groups:)`.
    static func forContainer(uid: UInt32, gid: UInt32, groups: [UInt32], caps: CapabilitySets?, noNewPrivs: Bool) -> Credentials {
        var c = Credentials(uid: uid, gid: gid, groups: groups)
        if let s = caps {
            c.capBnd = s.bounding & Cap.all
            c.capPrm = s.permitted & Cap.all
            c.capEff = s.effective & c.capPrm
            c.capInh = s.inheritable & Cap.all
            c.capAmb = s.ambient & c.capPrm & c.capInh
        }
        c.noNewPrivs = noNewPrivs
        return c
    }

    /// The capability in the sandbox's initial user namespace (Linux's
    /// capable()): what checks over the sandbox's own objects ask.
    func has(_ cap: Int) -> Bool { capEff & Cap.bit(cap) != 0 && userNS.isRoot }
    /// The capability in the task's own user namespace (Linux's
    /// ns_capable(current_user_ns())).
    func hasOwn(_ cap: Int) -> Bool { capEff & Cap.bit(cap) != 0 }
    func inGroup(_ g: UInt32) -> Bool { egid == g || groups.contains(g) }
    func secure(_ bit: UInt32) -> Bool { securebits & bit != 0 }

    /// What access(2) and faccessat without AT_EACCESS check with: the real
    /// ids, and (unless SECBIT_NO_SETUID_FIXUP) the permitted set for a real
    /// root, no capabilities for anyone else.
    var forAccess: Credentials {
        var c = self
        c.fsuid = uid; c.fsgid = gid
        if !secure(SecureBits.noSetuidFixup) { c.capEff = uid == rootUID ? capPrm : 0 }
        return c
    }

    // MARK: set*id

    /// The capability effects of a change of uids (capabilities(7),
    /// "Effect of user ID changes on capabilities"), from `old` to self.
    mutating func fixUpAfterUIDChange(from old: Credentials) {
        if secure(SecureBits.noSetuidFixup) { return }
        let root = old.rootUID
        let oldHadRoot = old.uid == root || old.euid == root || old.suid == root
        let nowNoRoot = uid != root && euid != root && suid != root
        if oldHadRoot && nowNoRoot {
            if !secure(SecureBits.keepCaps) { capPrm = 0; capEff = 0 }
            capAmb = 0
        }
        if old.euid == root && euid != root { capEff = 0 }
        if old.euid != root && euid == root { capEff = capPrm }
    }

    /// fsuid 0 -> non-zero clears the file-system capabilities from the
    /// effective set; non-zero -> 0 restores those that are permitted.
    mutating func fixUpAfterFSUIDChange(from oldFSUID: UInt32) {
        if secure(SecureBits.noSetuidFixup) { return }
        let root = rootUID
        if oldFSUID == root && fsuid != root { capEff &= ~Cap.fsSet }
        if oldFSUID != root && fsuid == root { capEff |= capPrm & Cap.fsSet }
    }

    // MARK: capset

    /// capset(2)'s rules for new sets; returns an errno or nil.
    mutating func capset(effective e: UInt64, permitted p: UInt64, inheritable i: UInt64) -> Int32? {
        let e = e & Cap.all, p = p & Cap.all, i = i & Cap.all
        if !hasOwn(Cap.setpcap) && i & ~(capInh | capPrm) != 0 { return EPERM }
        if i & ~(capInh | capBnd) != 0 { return EPERM }
        if p & ~capPrm != 0 { return EPERM }
        if e & ~p != 0 { return EPERM }
        capEff = e; capPrm = p; capInh = i
        capAmb &= capPrm & capInh
        return nil
    }

    // MARK: execve

    /// The credentials after executing a file with this mode and owner
    /// (capabilities(7), "Transformation of capabilities during execve",
    /// without file capabilities: the sandbox never sets security.capability
    /// semantics). Returns them and whether the exec is "secure" (AT_SECURE).
    /// `unsafe`: the exec is watched or shared (a tracer without
    /// CAP_SYS_PTRACE, a file-system context another process shares):
    /// it gains no ids or capabilities, as Linux's LSM_UNSAFE_* cases.
    func afterExec(fileMode: UInt32, fileUID: UInt32, fileGID: UInt32, unsafe: Bool = false) -> (Credentials, Bool) {
        var n = self
        // Set-user-ID and set-group-ID bits (not under no_new_privs, nor
        // for a file whose owner or group the namespace does not map).
        if !noNewPrivs && userNS.localUID(fileUID) != nil && userNS.localGID(fileGID) != nil {
            if fileMode & 0o4000 != 0 { n.euid = fileUID }
            if fileMode & 0o2010 == 0o2010 { n.egid = fileGID }
        }
        n.capPrm = 0
        var effectiveBit = false
        // Root is the namespace's uid 0 (none when it maps no 0).
        let root = rootUID
        if !secure(SecureBits.noRoot) {
            // Root's programs run as if their file had every capability.
            if n.euid == root || n.uid == root { n.capPrm = capBnd | capInh }
            if n.euid == root { effectiveBit = true }
        }
        let isSetid = n.euid != uid || n.egid != gid
        if (isSetid || n.capPrm & ~capPrm != 0) && (noNewPrivs || unsafe) {
            // A caller that may set ids anyway keeps them (not under no_new_privs).
            if noNewPrivs || !has(Cap.setuid) { n.euid = n.uid; n.egid = n.gid }
            n.capPrm &= capPrm
        }
        n.suid = n.euid; n.fsuid = n.euid
        n.sgid = n.egid; n.fsgid = n.egid
        if isSetid { n.capAmb = 0 }
        n.capPrm |= n.capAmb
        n.capEff = effectiveBit ? n.capPrm : n.capAmb
        n.securebits &= ~SecureBits.keepCaps
        let secure = isSetid || (n.uid != root && (effectiveBit || n.capPrm & ~n.capAmb != 0))
        return (n, secure)
    }
}

