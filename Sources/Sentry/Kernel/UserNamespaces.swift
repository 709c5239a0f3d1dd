// User namespaces (user_namespaces(7)) inside the sandbox: what rootless
// tools (unshare -r, bubblewrap, podman in a container, Chrome's sandbox)
// build on.
//
// Credentials keep kernel ids: the ids of the sandbox's initial user
// namespace (`UserNamespace.root`, where every id maps to itself), as
// Linux's struct cred keeps kuids. A task's namespace (Credentials.userNS)
// only changes how those ids are shown and named: every boundary translates
// (getuid and friends, the set*id calls, stat and chown, /proc/PID/status,
// a signal's sender uid, SCM_CREDENTIALS), and an id the viewer's namespace
// does not map shows as the overflow id (65534, kernel.overflowuid).
//
// A namespace maps its ids through uid_map and gid_map, each written once
// (/proc/PID/uid_map, FSImpl/ProcFS.swift), under Linux's rules: the writer
// is in the namespace or its parent and has CAP_SYS_ADMIN over it; a writer
// without CAP_SETUID (CAP_SETGID) in the parent may map only its own
// effective id, one line of count 1, and for gid_map only after "deny" was
// written to setgroups. Lower ids are stored as kernel ids.
//
// Capabilities: the creator gets the full set in the new namespace and
// none in the parent (Credentials.capable(_:in:), Linux's cap_capable):
// `has(cap)` asks for a capability in the initial namespace, which is what
// every check over the sandbox's own objects (mounts, devices, the host
// facing calls) wants, so a task in a child namespace holds no privilege
// there. Checks over a file ask whether the capability is held in the
// caller's namespace and the file's owner and group are mapped in it
// (`capable(_:over:)`, Linux's capable_wrt_inode_uidgid); the set*id calls
// and setgroups ask in the caller's own namespace, which only mapped ids
// can name.
//
// Limits: 33 levels below the initial namespace (ENOSPC past it, as Linux
// since 4.9), and user.max_user_namespaces live namespaces in the sandbox
// (ENOSPC).
// Mount namespaces stay one shared tree (Syscalls/Process.swift), so
// mounting still needs CAP_SYS_ADMIN in the initial namespace: a namespace's
// root cannot mount, where Linux lets it mount some file systems in a mount
// namespace its user namespace owns.

import Glibc
import Synchronization

/// One line of a uid_map or gid_map: ids `first..<first+count` of the
/// namespace are kernel ids `lower..<lower+count`.
struct IDExtent: Equatable {
    var first: UInt32, lower: UInt32, count: UInt32
}

final class UserNamespace {
    /// The sandbox's initial namespace: every id maps to itself.
    static let root = UserNamespace()
    /// Linux's nesting limit: a namespace at a level past it makes no child
    /// (ENOSPC), so 33 levels stand below the initial one.
    static let maxLevel = 32
    /// Linux's UID_GID_MAP_MAX_EXTENTS.
    static let maxExtents = 340
    /// Linux's overflowuid/overflowgid: what an unmapped id shows as.
    static let overflowID: UInt32 = 65534

    let parent: UserNamespace?
    let level: Int
    /// The kernel ids of the creator's effective uid and gid.
    let ownerUID: UInt32, ownerGID: UInt32
    /// Whether the creator had CAP_SETFCAP in the parent: without it, the
    /// namespace may not map the parent's root by writing its own map.
    let parentCouldSetfcap: Bool
    let inum: UInt64
    private weak var kernel: Kernel?

    private struct Maps {
        var uid: [IDExtent] = [], gid: [IDExtent] = []
        var setgroupsAllowed = true
    }
    /// Guarded by its own lock: getuid and friends read it without Kernel.mu.
    private let maps: Mutex<Maps>

    private init() {
        parent = nil; level = 0; ownerUID = 0; ownerGID = 0; parentCouldSetfcap = true
        inum = PidNS.userInode
        maps = Mutex(Maps(uid: [IDExtent(first: 0, lower: 0, count: UInt32.max)], gid: [IDExtent(first: 0, lower: 0, count: UInt32.max)]))
    }

    private init(parent: UserNamespace, creator c: Credentials, kernel: Kernel) {
        self.parent = parent; level = parent.level + 1
        ownerUID = c.euid; ownerGID = c.egid
        parentCouldSetfcap = c.capable(Cap.setfcap, in: parent)
        inum = newNamespaceInode()
        self.kernel = kernel
        maps = Mutex(Maps(setgroupsAllowed: parent.setgroupsAllowed))
    }

    deinit { kernel?.userNamespaceCount.withLock { $0 -= 1 } }

    var isRoot: Bool { parent == nil }

    /// A child namespace made by a task with credentials `c`, or the errors
    /// of Linux's create_user_ns in its order: too deep or too many
    /// (ENOSPC), a `chrooted` creator or one whose ids the parent does not
    /// map (EPERM). Requires: mu held.
    static func create(by c: Credentials, chrooted: Bool, kernel k: Kernel) -> Result<UserNamespace, Errno> {
        let parent = c.userNS
        if parent.level > maxLevel { return .failure(Errno(ENOSPC)) }
        let limit = Int(k.sysctl.entries["user/max_user_namespaces"]?.value ?? "") ?? Int.max
        let ok = k.userNamespaceCount.withLock { n in
            if n >= limit { return false }
            n += 1
            return true
        }
        if !ok { return .failure(Errno(ENOSPC)) }
        if chrooted || parent.localUID(c.euid) == nil || parent.localGID(c.egid) == nil {
            k.userNamespaceCount.withLock { $0 -= 1 }
            return .failure(Errno(EPERM))
        }
        return .success(UserNamespace(parent: parent, creator: c, kernel: k))   // its deinit gives the count back
    }

    /// Whether this namespace is `ns` or below it.
    func isDescendant(of ns: UserNamespace) -> Bool {
        var n: UserNamespace? = self
        while let x = n, x.level >= ns.level {
            if x === ns { return true }
            n = x.parent
        }
        return false
    }

    // MARK: maps

    var uidMap: [IDExtent] { maps.withLock { $0.uid } }
    var gidMap: [IDExtent] { maps.withLock { $0.gid } }
    /// setgroups(2) is not refused by /proc/PID/setgroups ("allow").
    var setgroupsAllowed: Bool { maps.withLock { $0.setgroupsAllowed } }
    /// setgroups(2) may be called: allowed, and (below the initial
    /// namespace) once gid_map is written, as Linux's userns_may_setgroups.
    var maySetgroups: Bool { maps.withLock { $0.setgroupsAllowed && !$0.gid.isEmpty } }

    private static func down(_ m: [IDExtent], _ id: UInt32) -> UInt32? {
        for e in m where id >= e.first && id - e.first < e.count { return e.lower + (id - e.first) }
        return nil
    }
    private static func up(_ m: [IDExtent], _ k: UInt32) -> UInt32? {
        for e in m where k >= e.lower && k - e.lower < e.count { return e.first + (k - e.lower) }
        return nil
    }

    /// The kernel id of this namespace's uid `id` (Linux's make_kuid), nil when unmapped.
    func kernelUID(_ id: UInt32) -> UInt32? { id == UInt32.max ? nil : isRoot ? id : UserNamespace.down(uidMap, id) }
    func kernelGID(_ id: UInt32) -> UInt32? { id == UInt32.max ? nil : isRoot ? id : UserNamespace.down(gidMap, id) }
    /// This namespace's number for kernel id `k` (Linux's from_kuid), nil when unmapped.
    func localUID(_ k: UInt32) -> UInt32? { isRoot ? k : UserNamespace.up(uidMap, k) }
    func localGID(_ k: UInt32) -> UInt32? { isRoot ? k : UserNamespace.up(gidMap, k) }
    /// As the namespace shows it: the overflow id when unmapped (from_kuid_munged).
    func showUID(_ k: UInt32) -> UInt32 { localUID(k) ?? UserNamespace.overflowID }
    func showGID(_ k: UInt32) -> UInt32 { localGID(k) ?? UserNamespace.overflowID }

    /// The lines of /proc/PID/uid_map (gid_map) as `reader`'s namespace
    /// sees them: the lower ids in the parent's numbers to a reader inside,
    /// in the reader's own otherwise (4294967295 where it has none).
    func mapText(uid: Bool, reader: UserNamespace) -> [UInt8] {
        let lowerNS = reader === self ? (parent ?? self) : reader
        var s = ""
        for e in uid ? uidMap : gidMap {
            let lower = isRoot ? e.lower : ((uid ? lowerNS.localUID(e.lower) : lowerNS.localGID(e.lower)) ?? UInt32.max)
            s += padLeft(String(e.first), 10) + " " + padLeft(String(lower), 10) + " " + padLeft(String(e.count), 10) + "\n"
        }
        return Array(s.utf8)
    }

    /// A write of uid_map (`uid`) or gid_map by `w`, with Linux's
    /// map_write and new_idmap_permitted rules: an errno, or nil when the
    /// map is set. Requires: mu held.
    func writeMap(uid: Bool, _ text: [UInt8], by w: Credentials) -> Int32? {
        guard let parent else { return EPERM }                    // the initial namespace's are fixed
        if text.count >= 4096 { return EINVAL }
        if !(uid ? uidMap : gidMap).isEmpty { return EPERM }      // written once
        // The writer is here or in the parent, with CAP_SYS_ADMIN over this namespace.
        if w.userNS !== self && w.userNS !== parent { return EPERM }
        if !w.capable(Cap.sysAdmin, in: self) { return EPERM }
        guard let lines = UserNamespace.parseMap(text) else { return EINVAL }
        let setid = uid ? Cap.setuid : Cap.setgid
        // Without CAP_SET*ID in the parent: the owner's own id, alone.
        var permitted = false
        if lines.count == 1, lines[0].count == 1, w.euid == ownerUID {
            if uid { permitted = parent.kernelUID(lines[0].lower) == w.euid }
            else { permitted = !setgroupsAllowed && parent.kernelGID(lines[0].lower) == w.egid }
        }
        if !permitted && w.capable(setid, in: parent) { permitted = true }
        if !permitted { return EPERM }
        // Lower ids become kernel ids; each line's range must lie in one
        // extent of the parent's map (EPERM otherwise).
        var mapped: [IDExtent] = []
        for l in lines {
            let pm = uid ? parent.uidMap : parent.gidMap
            guard let k = parent.isRoot ? l.lower : pm.first(where: { l.lower >= $0.first && l.lower - $0.first < $0.count
                                                                         && l.count <= $0.count - (l.lower - $0.first) })
                    .map({ $0.lower + (l.lower - $0.first) }) else { return EPERM }
            mapped.append(IDExtent(first: l.first, lower: k, count: l.count))
        }
        // Mapping the parent's uid 0 needs CAP_SETFCAP in the parent: the
        // creator's when it was made, for a writer inside (Linux's
        // verify_root_map, on the parent's numbers).
        if uid, lines.contains(where: { $0.lower == 0 }) {
            if w.userNS === self ? !parentCouldSetfcap : !w.capable(Cap.setfcap, in: parent) { return EPERM }
        }
        return maps.withLock { m in
            if !(uid ? m.uid : m.gid).isEmpty { return EPERM }
            if uid { m.uid = mapped } else { m.gid = mapped }
            return nil
        }
    }

    /// The lines of a map write: "first lower count" each, blanks between,
    /// ending at a newline, the text ending at its end or a NUL. Counts of
    /// 0, ranges past 2^32 - 1 and overlapping ranges are nil (EINVAL).
    static func parseMap(_ text: [UInt8]) -> [IDExtent]? {
        let body = text.prefix { $0 != 0 }
        var out: [IDExtent] = []
        var lines = body.split(separator: 10, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }        // the final newline
        func isBlank(_ c: UInt8) -> Bool { c == 32 || (9...13).contains(c) }
        for line in lines {
            var i = line.startIndex
            var nums: [UInt64] = []
            for n in 0..<3 {
                if n > 0 {
                    // A number must be followed by blanks before the next.
                    guard i < line.endIndex, isBlank(line[i]) else { return nil }
                }
                while i < line.endIndex && isBlank(line[i]) { i += 1 }
                let start = i
                var v: UInt64 = 0
                while i < line.endIndex, (48...57).contains(line[i]) {
                    v = v * 10 + UInt64(line[i] - 48)
                    if v > UInt64(UInt32.max) { return nil }
                    i += 1
                }
                if i == start { return nil }
                nums.append(v)
            }
            while i < line.endIndex && isBlank(line[i]) { i += 1 }
            if i != line.endIndex { return nil }
            let (first, lower, count) = (nums[0], nums[1], nums[2])
            if count == 0 || first + count - 1 > UInt64(UInt32.max) - 1 || lower + count - 1 > UInt64(UInt32.max) - 1 { return nil }
            let e = IDExtent(first: UInt32(first), lower: UInt32(lower), count: UInt32(count))
            for o in out {
                let a = (UInt64(o.first), UInt64(o.first) + UInt64(o.count)), b = (first, first + count)
                let c = (UInt64(o.lower), UInt64(o.lower) + UInt64(o.count)), d = (lower, lower + count)
                if a.0 < b.1 && b.0 < a.1 { return nil }
                if c.0 < d.1 && d.0 < c.1 { return nil }
            }
            out.append(e)
            if out.count > maxExtents { return nil }
        }
        return out.isEmpty ? nil : out
    }

    /// A write of /proc/PID/setgroups: "allow" or "deny", then blanks
    /// only, the text ending at its end or a NUL, under 8 bytes (EINVAL);
    /// "deny" once gid_map is written, and "allow" after "deny", are EPERM.
    /// The writer needs CAP_SYS_ADMIN over the namespace (EACCES, Linux's
    /// answer at open). Requires: mu held.
    func writeSetgroups(_ text: [UInt8], by w: Credentials) -> Int32? {
        if !w.capable(Cap.sysAdmin, in: self) { return EACCES }
        if text.count >= 8 { return EINVAL }
        let body = Array(text.prefix { $0 != 0 })
        let allow: Bool, rest: ArraySlice<UInt8>
        if body.starts(with: Array("allow".utf8)) { allow = true; rest = body.dropFirst(5) }
        else if body.starts(with: Array("deny".utf8)) { allow = false; rest = body.dropFirst(4) }
        else { return EINVAL }
        if !rest.allSatisfy({ $0 == 32 || (9...13).contains($0) }) { return EINVAL }
        return maps.withLock { m in
            if allow {
                if !m.setgroupsAllowed { return EPERM }
            } else {
                if !m.gid.isEmpty { return EPERM }
                m.setgroupsAllowed = false
            }
            return nil
        }
    }
}

extension Credentials {
    /// Whether the capability is held in namespace `ns` (Linux's
    /// cap_capable): in the task's own, by its effective set; in a
    /// namespace below it, always when the task's euid made the child of
    /// its namespace on the way; above it or elsewhere, never.
    func capable(_ cap: Int, in ns: UserNamespace) -> Bool {
        var n: UserNamespace? = ns
        while let x = n {
            if x === userNS { return capEff & Cap.bit(cap) != 0 }
            if x.level <= userNS.level { return false }
            if x.parent === userNS && x.ownerUID == euid { return true }
            n = x.parent
        }
        return false
    }

    /// A capability over a file owned by `uid` and `gid` (Linux's
    /// capable_wrt_inode_uidgid): held in the task's namespace, which maps both.
    func capable(_ cap: Int, over uid: UInt32, _ gid: UInt32) -> Bool {
        capEff & Cap.bit(cap) != 0 && (userNS.isRoot || (userNS.localUID(uid) != nil && userNS.localGID(gid) != nil))
    }

    /// The kernel id of the namespace's root (uid 0 there), which execve
    /// and the set*id calls treat as root; nil when the namespace maps no 0.
    var rootUID: UInt32? { userNS.kernelUID(0) }

    /// The credentials of a task that enters `ns` (unshare, clone or
    /// setns): every capability there, none inherited, no securebits.
    mutating func enter(_ ns: UserNamespace) {
        userNS = ns
        capPrm = Cap.all; capEff = Cap.all; capBnd = Cap.all
        capInh = 0; capAmb = 0
        securebits = 0
    }
}

extension Task {
    /// The caller's credentials in a new child of its user namespace (for
    /// unshare, or a clone's child), or UserNamespace.create's error (a
    /// caller whose root is not the mount tree's is chrooted, Linux's
    /// current_chrooted). Requires: mu held.
    func credsInNewUserNamespace() -> Result<Credentials, Errno> {
        let chrooted = fs.root.dentry !== (fs.ns?.root ?? kernel.vfs.rootMount).root
        return UserNamespace.create(by: creds, chrooted: chrooted, kernel: kernel).map { ns in
            var c = creds
            c.enter(ns)
            return c
        }
    }
}


extension Kernel {
    /// /proc/PID/uid_map (gid_map): the process's namespace's map as the
    /// reader sees it (the initial namespace's: the container's id
    /// mappings), written once (UserNamespace.writeMap). The file is the
    /// process's owner's, mode 0644, as on Linux.
    func procIDMapNode(_ tg: ThreadGroup, _ ino: UInt64, uid: Bool, _ task: @escaping () -> Task?) -> ProcNode {
        let k = self
        let owner = task()?.creds ?? tg.creds
        let n = ProcNode(kernel: k, ino: ino, mode: S_IFREG_ | 0o644, content: { r in
            let ns = (task()?.creds ?? tg.creds).userNS
            if ns.isRoot {
                return Array((uid ? k.uidMap : k.gidMap).map {
                    padLeft(String($0.0), 10) + " " + padLeft(String($0.1), 10) + " " + padLeft(String($0.2), 10) + "\n"
                }.joined().utf8)
            }
            return ns.mapText(uid: uid, reader: r.creds.userNS)
        })
        n.uid = owner.euid; n.gid = owner.egid
        n.store = { w, b in
            guard let x = task() else { return ESRCH }
            return x.creds.userNS.writeMap(uid: uid, b, by: w.creds)
        }
        return n
    }

    /// /proc/PID/setgroups: "allow" or "deny" (UserNamespace.writeSetgroups).
    func procSetgroupsNode(_ tg: ThreadGroup, _ ino: UInt64, _ task: @escaping () -> Task?) -> ProcNode {
        let owner = task()?.creds ?? tg.creds
        let n = ProcNode(kernel: self, ino: ino, mode: S_IFREG_ | 0o644, content: { _ in
            Array(((task()?.creds ?? tg.creds).userNS.setgroupsAllowed ? "allow\n" : "deny\n").utf8)
        })
        n.uid = owner.euid; n.gid = owner.egid
        n.store = { w, b in
            guard let x = task() else { return ESRCH }
            return x.creds.userNS.writeSetgroups(b, by: w.creds)
        }
        return n
    }
}
