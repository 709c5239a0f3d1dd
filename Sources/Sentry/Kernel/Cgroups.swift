// The sandbox's cgroup v2 hierarchy: what a container sees at
// /sys/fs/cgroup under runc with cgroup namespaces, its own cgroup as the
// root (FSImpl/CgroupFS.swift presents it).
//
// Programs size themselves from it (the JVM's heap from memory.max, Go's
// GOMAXPROCS and .NET's thread pool from cpu.max, systemd and container
// tooling from cgroup.procs and the controllers), so the root carries the
// container's limits as its runtime set them (OCI linux.resources, or
// `moat run --memory/--cpus/--pids-limit`: SentryConfig.cgroupFiles), "max"
// where none is set.
//
// What is enforced and where: the limits of the sandbox as a whole are the
// host's business, done by the host cgroup its launcher made around the
// Sentry, its stubs and its Gofers (OCI/Cgroups.swift, Standalone/Cgroup.swift).
// Inside, child cgroups are the Sentry's bookkeeping: processes move
// between them, fork into them (CLONE_INTO_CGROUP) and are counted there;
// pids.max is enforced at fork (EAGAIN), since the Sentry makes every
// process, and cgroup.kill kills a subtree. A memory, cpu or io limit
// written inside is accepted and recorded, as Linux takes it, but not
// enforced beyond what the sandbox's host cgroup already enforces: the
// stubs of every cgroup share that one host cgroup.
//
// Locking: the hierarchy is guarded by Kernel.mu, as the tasks are.

import Glibc

/// The limit files a runtime may set for the container (SentryConfig.cgroupFiles).
public let sandboxCgroupLimitFiles = Set(Cgroup.defaults.keys)

/// One cgroup of the sandbox's hierarchy.
final class Cgroup {
    let name: String
    private(set) weak var parent: Cgroup?
    /// Guarded by: Kernel.mu (as every field below).
    var children: [String: Cgroup] = [:]
    /// Interface files written (or set by the runtime): "memory.max" -> "max".
    var values: [String: String] = [:]
    /// cgroup.subtree_control, in the hierarchy's controller order.
    var subtreeControl: [String] = []
    /// cgroup.max.depth and cgroup.max.descendants (nil: "max").
    var maxDepth: Int? = nil
    var maxDescendants: Int? = nil
    /// pids.events "max": forks refused for this cgroup's pids.max.
    var pidsMaxEvents = 0
    /// The largest memory.current read so far (memory.peak).
    var memoryPeak: UInt64 = 0
    /// Its directory in the cgroup2 file system (FSImpl/CgroupFS.swift)
    /// and the inodes of its files looked up so far, by name.
    var dirInode: CgroupDirInode?
    var fileInodes: [String: CgroupFileInode] = [:]
    /// Who made it (mkdir's fsuid and fsgid): its files are theirs, so a
    /// delegated cgroup's children stay delegated (cgroup_kn_set_ugid).
    var owner: (uid: UInt32, gid: UInt32) = (0, 0)
    /// Removed by rmdir: names nothing any more (an open fd of it stays).
    var removed = false
    /// cgroup.events: whether a live process is in the subtree, as last
    /// reported, and a count of its changes (kernfs's event counter, 1 at
    /// first, so a new open file's poll reports it once); pollers wait on
    /// `eventsWaiters`. Kept only once some cgroup.events file was looked
    /// up (CgroupHierarchy.eventsWatched).
    var populatedSeen = false
    var eventsCount = 1
    var eventsWaiters = WaitQueue()
    let ino: UInt64
    unowned let hierarchy: CgroupHierarchy

    init(name: String, parent: Cgroup?, hierarchy: CgroupHierarchy, ino: UInt64) {
        self.name = name; self.parent = parent; self.hierarchy = hierarchy; self.ino = ino
    }

    var depth: Int { parent.map { $0.depth + 1 } ?? 0 }
    var descendants: Int { children.values.reduce(0) { $0 + 1 + $1.descendants } }

    /// The controllers this cgroup's interface files exist for: what its
    /// parent enabled for its children (the root: every one presented).
    var controllers: [String] { parent?.subtreeControl ?? hierarchy.controllers }

    /// Whether `self` is `c` or below it.
    func isWithin(_ c: Cgroup) -> Bool {
        var x: Cgroup? = self
        while let y = x { if y === c { return true }; x = y.parent }
        return false
    }

    /// The path from `root` ("/" for root itself); a cgroup outside it is
    /// shown with "/.." steps up to their common ancestor, as Linux's
    /// /proc/PID/cgroup does across cgroup namespaces.
    func path(from root: Cgroup) -> String {
        var up = 0
        var anc: Cgroup? = root
        while let a = anc, !isWithin(a) { up += 1; anc = a.parent }
        var parts: [String] = []
        var x: Cgroup? = self
        while let y = x, y !== anc { parts.append(y.name); x = y.parent }
        let s = Array(repeating: "..", count: up) + parts.reversed()
        return "/" + s.joined(separator: "/")
    }

    /// The value of a limit file: written, or its default.
    func value(_ file: String) -> String { values[file] ?? Cgroup.defaults[file] ?? "" }

    /// The limit files a runtime may set and a process may write, with
    /// their values when unset.
    static let defaults: [String: String] = [
        "memory.max": "max", "memory.high": "max", "memory.low": "0", "memory.min": "0", "memory.swap.max": "max",
        "memory.oom.group": "0", "cpu.max": "max 100000", "cpu.weight": "100", "cpu.weight.nice": "0",
        "pids.max": "max", "io.max": "", "io.weight": "default 100", "cpuset.cpus": "", "cpuset.mems": "",
    ]
    /// The controller each limit file belongs to.
    static func controller(of file: String) -> String { String(file.prefix { $0 != "." }) }

    /// What normalize returns for a number out of the file's range (ERANGE).
    static let outOfRange = "\u{1}ERANGE"

    /// Checks and normalizes a value written to a limit file, as Linux
    /// parses it (memory sizes with a K/M/G suffix, rounded down to a page
    /// as memory.max shows them); nil: EINVAL.
    static func normalize(_ file: String, _ raw: String, old: String) -> String? {
        let v = raw.trimmingTrailingNewline()
        func bytes(_ s: Substring) -> String? {
            if s == "max" { return "max" }
            var digits = s, mult: UInt64 = 1
            if let last = s.last, let m = ["k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30][last] {
                digits = s.dropLast(); mult = UInt64(m)
            }
            guard let n = UInt64(digits) else { return nil }
            let (b, o) = n.multipliedReportingOverflow(by: mult)
            return o ? "max" : String(b / 4096 * 4096)
        }
        let words = v.split(separator: " ", omittingEmptySubsequences: true)
        switch file {
        case "memory.max", "memory.high", "memory.low", "memory.min", "memory.swap.max":
            guard words.count == 1 else { return nil }
            return bytes(words[0])
        case "memory.oom.group":
            return v == "0" || v == "1" ? v : nil
        case "cpu.max":
            // "$MAX $PERIOD" or "$MAX": the period is kept when not given.
            guard (1...2).contains(words.count) else { return nil }
            let period: UInt64? = words.count == 2 ? UInt64(words[1]) : UInt64(old.split(separator: " ").last ?? "") ?? 100_000
            guard let p = period, (1000...1_000_000).contains(p) else { return nil }
            if words[0] != "max" { guard let q = UInt64(words[0]), q >= 1000 else { return nil } }
            return "\(words[0]) \(p)"
        case "cpu.weight":
            guard words.count == 1, let w = Int(words[0]) else { return nil }
            return (1...10000).contains(w) ? String(w) : Cgroup.outOfRange
        case "cpu.weight.nice":
            guard words.count == 1, let n = Int(words[0]) else { return nil }
            return (-20...19).contains(n) ? String(n) : Cgroup.outOfRange
        case "pids.max":
            guard words.count == 1 else { return nil }
            if words[0] == "max" { return "max" }
            guard let n = Int(words[0]), n >= 0 else { return nil }
            return String(n)
        case "io.max", "io.weight", "cpuset.cpus", "cpuset.mems":
            return String(v)
        default:
            return nil
        }
    }
}

private extension String {
    func trimmingTrailingNewline() -> String { hasSuffix("\n") ? String(dropLast()) : self }
}

/// A cgroup namespace: the cgroup its members see as "/" in
/// /proc/PID/cgroup and as the root of a cgroup2 mount they make. The
/// sandbox's own is rooted at the container's cgroup; unshare and clone
/// with CLONE_NEWCGROUP make one at the caller's cgroup, setns joins one.
final class CgroupNamespace {
    /// Linux's inode number of the initial cgroup namespace.
    static let rootInode: UInt64 = 0xEFFF_FFFB
    let root: Cgroup
    /// Its /proc/PID/ns/cgroup inode number (Kernel/IPCNamespaces.swift).
    let inum: UInt64
    init(root: Cgroup, inum: UInt64 = newNamespaceInode()) { self.root = root; self.inum = inum }
}

/// The whole tree, one per kernel: its root is the container's cgroup.
final class CgroupHierarchy {
    /// Presented controllers, in Linux's order.
    let controllers = ["cpuset", "cpu", "io", "memory", "pids"]
    private(set) var root: Cgroup! = nil
    private var lastIno: UInt64 = 0x7000_0000
    /// The file system's device number (st_dev of every cgroup file).
    let dev: UInt64 = 13

    /// The sandbox's cgroup namespace, rooted at `root`.
    private(set) var rootNamespace: CgroupNamespace! = nil
    /// Whether a cgroup.events file was ever looked up: until then no
    /// membership change is looked at (Kernel.cgroupMembershipChanged).
    var eventsWatched = false

    init() {
        root = Cgroup(name: "", parent: nil, hierarchy: self, ino: nextIno())
        rootNamespace = CgroupNamespace(root: root, inum: CgroupNamespace.rootInode)
    }

    func nextIno() -> UInt64 { lastIno += 256; return lastIno }

    /// The runtime's limits for the root: file -> value pairs (SentryConfig.cgroupFiles).
    /// Returns a message for a file or value Moat cannot present.
    func configure(_ file: String, _ value: String) -> String? {
        guard Cgroup.defaults[file] != nil, let v = Cgroup.normalize(file, value, old: root.value(file)), v != Cgroup.outOfRange else {
            return "cgroup \(file)=\(value): not a limit the sandbox's cgroup file system presents"
        }
        root.values[file] = v
        return nil
    }

    /// Makes `name` under `parent`: Linux's checks for the limits of
    /// depth and of descendants of every ancestor (EAGAIN).
    func mkdir(_ parent: Cgroup, _ name: String) -> Result<Cgroup, Errno> {
        if parent.removed { return .failure(Errno(ENOENT)) }
        if parent.children[name] != nil { return .failure(Errno(EEXIST)) }
        var a: Cgroup? = parent
        var level = 1
        while let c = a {
            if let d = c.maxDepth, level > d { return .failure(Errno(EAGAIN)) }
            if let n = c.maxDescendants, c.descendants >= n { return .failure(Errno(EAGAIN)) }
            a = c.parent; level += 1
        }
        let c = Cgroup(name: name, parent: parent, hierarchy: self, ino: nextIno())
        parent.children[name] = c
        return .success(c)
    }

    /// rmdir: only an empty cgroup (no process, no child) goes (EBUSY).
    func rmdir(_ c: Cgroup, _ k: Kernel) -> Result<Void, Errno> {
        guard let parent = c.parent else { return .failure(Errno(EBUSY)) }
        if !c.children.isEmpty || k.threadGroups.values.contains(where: { $0.cgroup === c && !$0.zombie }) {
            return .failure(Errno(EBUSY))
        }
        c.removed = true
        parent.children[c.name] = nil
        return .success(())
    }
}

extension Kernel {
    /// A process entered the hierarchy, moved, or left it (became a
    /// zombie): each cgroup whose "populated" changed counts an event, wakes
    /// its cgroup.events pollers (POLLPRI) and gives the file's inotify
    /// watches IN_MODIFY, as Linux's cgroup_update_populated and
    /// kernfs_notify. Nothing until a cgroup.events file was looked up.
    /// Requires: mu held.
    func cgroupMembershipChanged() {
        guard cgroups.eventsWatched else { return }
        updatePopulated(notify: true)
    }

    /// Brings every cgroup's `populatedSeen` to the present; with `notify`,
    /// a change is an event. Requires: mu held.
    func updatePopulated(notify: Bool) {
        var populated = Set<ObjectIdentifier>()
        for tg in threadGroups.values where !tg.zombie {
            var x: Cgroup? = tg.cgroup
            while let c = x, populated.insert(ObjectIdentifier(c)).inserted { x = c.parent }
        }
        func visit(_ c: Cgroup) {
            let now = populated.contains(ObjectIdentifier(c))
            if now != c.populatedSeen {
                c.populatedSeen = now
                if notify {
                    c.eventsCount += 1
                    c.eventsWaiters.notifyAll()
                    if let f = c.fileInodes["cgroup.events"] {
                        inotifyInode(f, IN_MODIFY_)
                        if let d = c.dirInode { inotifyEntry(d, Array("cgroup.events".utf8), IN_MODIFY_, isDir: false) }
                    }
                }
            }
            for child in c.children.values { visit(child) }
        }
        visit(cgroups.root)
    }

    /// The live processes of `c` (or of its subtree). Requires: mu held.
    func cgroupMembers(_ c: Cgroup, subtree: Bool = false) -> [ThreadGroup] {
        threadGroups.values.filter { tg in
            guard !tg.zombie else { return false }
            return subtree ? tg.cgroup.isWithin(c) : tg.cgroup === c
        }.sorted { $0.tgid < $1.tgid }
    }

    /// pids.current: the tasks (threads) of the subtree.
    func cgroupTaskCount(_ c: Cgroup) -> Int { cgroupMembers(c, subtree: true).reduce(0) { $0 + $1.tasks.count } }

    /// memory.current as the Sentry can count it: the accessible mapped
    /// size of the subtree's address spaces (each counted once). Moat does
    /// not track residency, so this is an upper bound of it; reservations
    /// made PROT_NONE (a JVM heap, Go's arenas) do not count.
    func cgroupMemory(_ c: Cgroup) -> UInt64 {
        var seen = Set<ObjectIdentifier>()
        var total: UInt64 = 0
        for tg in cgroupMembers(c, subtree: true) {
            guard let t = tg.leader ?? tg.tasks.first, seen.insert(ObjectIdentifier(t.mm)).inserted else { continue }
            total += t.mm.vmas.reduce(UInt64(0)) { $0 + ($1.prot == 0 ? 0 : $1.end - $1.start) }
        }
        c.memoryPeak = max(c.memoryPeak, total)
        return total
    }

    /// Whether a new task in `c` stays within pids.max of it and of every
    /// ancestor; counts a refusal in pids.events. Requires: mu held.
    func cgroupAllowsFork(_ c: Cgroup) -> Bool {
        var x: Cgroup? = c
        while let g = x {
            if let m = Int(g.value("pids.max")), cgroupTaskCount(g) + 1 > m {
                g.pidsMaxEvents += 1
                return false
            }
            x = g.parent
        }
        return true
    }

    /// Moves process `tg` into `c` (cgroup.procs, CLONE_INTO_CGROUP): a
    /// cgroup that enabled controllers for its children holds no process
    /// (Linux's no-internal-process rule): EBUSY. The sandbox's root is
    /// exempt, as a hierarchy's root is on Linux: under runc the
    /// container's cgroup is not, and a container must move its processes
    /// out of it before it can enable a controller, which programs written
    /// for a host (LTP's cgroup library) do not do. See subtreeControlWrite.
    func cgroupAttach(_ tg: ThreadGroup, to c: Cgroup) -> Errno? {
        if c.removed { return Errno(ENOENT) }
        if c.parent != nil && !c.subtreeControl.isEmpty && tg.cgroup !== c { return Errno(EBUSY) }
        tg.cgroup = c
        cgroupMembershipChanged()
        return nil
    }
}
