// cgroup2: the file system of the sandbox's cgroup hierarchy
// (Kernel/Cgroups.swift), mounted at /sys/fs/cgroup as runc mounts it in a
// cgroup namespace, and by mount(2) of type "cgroup2" (the mounting task's
// cgroup namespace root is the mount's root, as on Linux).
//
// A directory per cgroup, made and removed by mkdir and rmdir; in each, the
// interface files of the core and of the controllers its parent enabled
// (cgroup.subtree_control). Files are generated at open (what a read
// shows) and a write is taken whole, as kernfs takes it: one value, one pid.

import CMoat
import Glibc

/// statfs f_type of cgroup2 (CGROUP2_SUPER_MAGIC).
let cgroup2Magic: Int64 = 0x63677270

/// A cgroup's directory. One inode per cgroup, kept by the cgroup.
final class CgroupDirInode: Inode {
    let cgroup: Cgroup
    unowned let kernel: Kernel

    init(_ c: Cgroup, kernel: Kernel) {
        cgroup = c; self.kernel = kernel
        super.init(ino: c.ino, mode: S_IFDIR_ | 0o755, dev: c.hierarchy.dev)
    }
    override var fsMagic: Int64 { cgroup2Magic }
    override var cacheable: Bool { false }
    override func stat() -> Result<Stat, Errno> {
        nlink = 2 + UInt64(cgroup.children.count)
        return super.stat()
    }

    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        if cgroup.removed { return .failure(Errno(ENOENT)) }
        let s = String(decoding: name, as: UTF8.self)
        if let c = cgroup.children[s] { return .success(kernel.cgroupDir(c)) }
        let files = cgroupFiles(cgroup, kernel)
        guard let i = files.firstIndex(where: { $0.name == s }) else { return .failure(Errno(ENOENT)) }
        // One inode per file, kept by the cgroup: a chmod or chown (a
        // delegation) stays.
        if let f = cgroup.fileInodes[s] { return .success(f) }
        if s == "cgroup.events" && !kernel.cgroups.eventsWatched {
            // From now on membership changes are events (Kernel.cgroupMembershipChanged).
            kernel.cgroups.eventsWatched = true
            kernel.updatePopulated(notify: false)
        }
        let f = CgroupFileInode(cgroup, files[i], index: i, kernel: kernel)
        f.uid = cgroup.owner.uid; f.gid = cgroup.owner.gid
        cgroup.fileInodes[s] = f
        return .success(f)
    }
    override func readdir() -> Result<[DirEntry], Errno> {
        if cgroup.removed { return .failure(Errno(ENOENT)) }
        let files = cgroupFiles(cgroup, kernel).enumerated().map { DirEntry(ino: cgroup.ino + 1 + UInt64($0.offset), type: 8, name: Array($0.element.name.utf8)) }
        let dirs = cgroup.children.keys.sorted().map { DirEntry(ino: cgroup.children[$0]!.ino, type: 4, name: Array($0.utf8)) }
        return .success(files + dirs)
    }
    override func mkdir(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32) -> Result<Inode, Errno> {
        // Linux's cgroup_mkdir refuses a name with a newline (it would
        // break /proc/PID/cgroup's lines).
        if name.contains(10) { return .failure(Errno(EINVAL)) }
        switch kernel.cgroups.mkdir(cgroup, String(decoding: name, as: UTF8.self)) {
        case .success(let c):
            c.owner = (uid, gid)
            let d = kernel.cgroupDir(c)
            d.uid = uid; d.gid = gid; d.mode = S_IFDIR_ | (mode & 0o7777)
            return .success(d)
        case .failure(let e): return .failure(e)
        }
    }
    override func unlink(_ name: [UInt8], dir: Bool) -> Result<Void, Errno> {
        guard dir, let c = cgroup.children[String(decoding: name, as: UTF8.self)] else { return .failure(Errno(EPERM)) }
        return kernel.cgroups.rmdir(c, kernel)
    }
    // kernfs has no create, link or node making: the VFS's EACCES for a
    // new file, EPERM for the others; cgroup2 refuses rename (EPERM).
    override func create(_ name: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32, flags: Int32) -> Result<(Inode, FileDescription?), Errno> { .failure(Errno(EACCES)) }
    override func rename(_ old: [UInt8], to newDir: Inode, _ new: [UInt8], flags: UInt32) -> Result<Void, Errno> { .failure(Errno(EPERM)) }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if flags & O_ACCMODE != O_RDONLY { return .failure(Errno(EISDIR)) }
        return .success(DirectoryFD(flags: flags, path: nil))
    }
}

/// An interface file: what it shows (nil: write-only), and what a write
/// does (nil: read-only), given the writer and the credentials the file
/// was opened with (Linux checks a cgroup.procs write with those).
struct CgroupFile {
    let name: String
    let mode: UInt32
    let show: ((Task) -> String)?
    let store: ((Task, String, Credentials) -> Int32?)?
}

/// A cgroup's interface file.
final class CgroupFileInode: Inode {
    let cgroup: Cgroup
    let file: CgroupFile
    unowned let kernel: Kernel
    init(_ c: Cgroup, _ f: CgroupFile, index: Int, kernel: Kernel) {
        cgroup = c; file = f; self.kernel = kernel
        super.init(ino: c.ino + 1 + UInt64(index), mode: S_IFREG_ | f.mode, dev: c.hierarchy.dev)
    }
    override var fsMagic: Int64 { cgroup2Magic }
    override var cacheable: Bool { false }
    /// Whether the file still exists: its cgroup not removed, and its
    /// controller (if any) still enabled for the cgroup by its parent.
    var present: Bool {
        if cgroup.removed { return false }
        let ctl = Cgroup.controller(of: file.name)
        return ctl == "cgroup" || ctl == "cpu" && file.name == "cpu.stat" || cgroup.controllers.contains(ctl)
    }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if !present { return .failure(Errno(ENODEV)) }
        return .success(CgroupFileFD(self, data: Array((file.show?(t) ?? "").utf8), flags: flags, creds: t.creds))
    }
}

/// An open interface file. kernfs opens a file for any access (root
/// passes the mode bits); reading one with nothing to show, or writing one
/// that takes nothing, is EINVAL; once the file is gone (its cgroup
/// removed, its controller disabled) both are ENODEV.
///
/// cgroup.events polls as kernfs's files with notifications do: POLLERR
/// and POLLPRI while the cgroup has counted an event this open file has
/// not read past (a new one has: the count starts at 1, the file's at 0),
/// and a read from the start shows the present state and catches up.
final class CgroupFileFD: FileDescription {
    let node: CgroupFileInode
    /// What a read shows: made at open, as a seq_file's first read would
    /// (cgroup.events: again at each read from the start).
    private(set) var data: [UInt8]
    /// The credentials of the opener (Linux's f_cred).
    let creds: Credentials
    private var eventsRead = 0
    private var isEvents: Bool { node.file.name == "cgroup.events" }
    init(_ node: CgroupFileInode, data: [UInt8], flags: Int32, creds: Credentials) {
        self.node = node; self.data = data; self.creds = creds
        super.init(flags: flags, path: nil)
    }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !node.present { return err(ENODEV) }
        guard let show = node.file.show else { return err(EINVAL) }
        if isEvents && (off ?? offset) == 0 {
            data = Array(show(t).utf8)
            eventsRead = node.cgroup.eventsCount
        }
        return data.withUnsafeBytes { readFromBytes(t, $0, self, buf, count, off) }
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if !node.present { return err(ENODEV) }
        guard let store = node.file.store else { return err(EINVAL) }
        if count > 4096 { return err(EINVAL) }
        guard let b = t.copyIn(buf, count) else { return err(EFAULT) }
        if let e = store(t, String(decoding: b, as: UTF8.self), creds) { return err(e) }
        return count
    }
    override func readiness() -> Int16 {
        guard isEvents, eventsRead != node.cgroup.eventsCount else { return super.readiness() }
        return super.readiness() | Int16(POLLERR | POLLPRI)
    }
    override func addWaiter(_ t: Waiter) { if isEvents { node.cgroup.eventsWaiters.add(t) } }
    override func removeWaiter(_ t: Waiter) { if isEvents { node.cgroup.eventsWaiters.remove(t) } }
    override func wakeups() -> UInt64 { isEvents ? node.cgroup.eventsWaiters.wakeups : 0 }
    override func fileSize() -> Int64 { Int64(data.count) }
}

extension Kernel {
    /// Linux's cgroup_procs_write_permission (and, for CLONE_INTO_CGROUP,
    /// cgroup_may_write of the destination): the mover may write the
    /// cgroup.procs of the closest cgroup holding both ends.
    /// The check is made with `creds` (a cgroup.procs file's opener's), else the mover's.
    func cgroupMayMigrate(_ t: Task, from: Cgroup, to: Cgroup, too: Bool = false, creds: Credentials? = nil) -> Bool {
        var common = from
        while !to.isWithin(common), let p = common.parent { common = p }
        func mayWrite(_ c: Cgroup) -> Bool {
            guard case .success(let procs) = cgroupDir(c).lookup(Array("cgroup.procs".utf8)) else { return false }
            return (creds ?? t.creds).permits(procs, 2)
        }
        return mayWrite(common) && (!too || mayWrite(to))
    }

    /// The directory inode of `c` (one per cgroup, made on first use).
    /// Requires: mu held.
    func cgroupDir(_ c: Cgroup) -> CgroupDirInode {
        if let d = c.dirInode { return d }
        let d = CgroupDirInode(c, kernel: self)
        c.dirInode = d
        return d
    }
}

/// A list of controllers as Linux prints one: names and a newline, or
/// nothing at all for none.
private func maskLine(_ names: [String]) -> String { names.isEmpty ? "" : names.joined(separator: " ") + "\n" }

/// "0-3,6" for a list of CPU numbers.
func cpuRanges(_ cpus: [Int32]) -> String {
    var parts: [String] = []
    var i = 0
    let s = cpus.sorted()
    while i < s.count {
        var j = i
        while j + 1 < s.count && s[j + 1] == s[j] + 1 { j += 1 }
        parts.append(i == j ? "\(s[i])" : "\(s[i])-\(s[j])")
        i = j + 1
    }
    return parts.joined(separator: ",")
}

/// The interface files of `c`, in the order Linux lists them.
func cgroupFiles(_ c: Cgroup, _ k: Kernel) -> [CgroupFile] {
    func ro(_ n: String, _ show: @escaping (Task) -> String) -> CgroupFile { CgroupFile(name: n, mode: 0o444, show: show, store: nil) }
    func rw(_ n: String, _ show: @escaping (Task) -> String, _ store: @escaping (Task, String, Credentials) -> Int32?) -> CgroupFile {
        CgroupFile(name: n, mode: 0o644, show: show, store: store)
    }
    /// A limit file: its value, and a write checked and recorded.
    func limit(_ n: String) -> CgroupFile {
        rw(n, { _ in c.value(n) + "\n" }) { _, s, _ in
            guard let v = Cgroup.normalize(n, s, old: c.value(n)) else { return EINVAL }
            if v == Cgroup.outOfRange { return ERANGE }
            c.values[n] = v
            return nil
        }
    }
    /// A limit of the tree: "max" or a count (EINVAL; a negative one ERANGE).
    func count(_ s: String) -> Result<Int?, Errno> {
        if s.trimmingCharacters(in: " \n\t") == "max" { return .success(nil) }
        guard let n = kernelInt(s) else { return .failure(Errno(EINVAL)) }
        return n < 0 ? .failure(Errno(ERANGE)) : .success(Int(n))
    }
    let populated = { !k.cgroupMembers(c, subtree: true).isEmpty }
    var files: [CgroupFile] = [
        ro("cgroup.controllers") { _ in maskLine(c.controllers) },
        ro("cgroup.events") { _ in "populated \(populated() ? 1 : 0)\nfrozen 0\n" },
        CgroupFile(name: "cgroup.kill", mode: 0o200, show: nil, store: { _, s, _ in
            guard let n = kernelInt(s) else { return EINVAL }
            if n != 1 { return ERANGE }
            var info = SigInfo(signo: SIGKILL)
            info.code = 0x80                                                    // SI_KERNEL
            for tg in k.cgroupMembers(c, subtree: true) { tg.sendSignal(SIGKILL, info) }
            return nil
        }),
        rw("cgroup.max.depth", { _ in c.maxDepth.map { "\($0)\n" } ?? "max\n" }) { _, s, _ in
            switch count(s) {
            case .success(let n): c.maxDepth = n; return nil
            case .failure(let e): return e.code
            }
        },
        rw("cgroup.max.descendants", { _ in c.maxDescendants.map { "\($0)\n" } ?? "max\n" }) { _, s, _ in
            switch count(s) {
            case .success(let n): c.maxDescendants = n; return nil
            case .failure(let e): return e.code
            }
        },
        rw("cgroup.procs", { t in
            k.cgroupMembers(c).compactMap { tg in let p = t.vpidIfSeen(tg.tgid); return p == 0 ? nil : "\(p)\n" }.joined()
        }) { t, s, cr in cgroupProcsWrite(t, c, s, threads: false, creds: cr) },
        ro("cgroup.stat") { _ in "nr_descendants \(c.descendants)\nnr_dying_descendants 0\n" },
        rw("cgroup.subtree_control", { _ in maskLine(c.subtreeControl) }) { _, s, _ in subtreeControlWrite(k, c, s) },
        rw("cgroup.threads", { t in
            k.cgroupMembers(c).flatMap { $0.tasks }.compactMap { x in let p = t.vpidIfSeen(x.tid); return p == 0 ? nil : "\(p)\n" }.joined()
        }) { t, s, cr in cgroupProcsWrite(t, c, s, threads: true, creds: cr) },
        // Threaded cgroups are not modelled: every cgroup is a domain.
        rw("cgroup.type", { _ in "domain\n" }) { _, s, _ in s.hasPrefix("threaded") ? EOPNOTSUPP : EINVAL },
        ro("cpu.stat") { _ in
            let ns = k.cgroupMembers(c, subtree: true).reduce(Int64(0)) { $0 + $1.sampleCPU() + $1.stimeNs }
            let us = ns / 1000
            return "usage_usec \(us)\nuser_usec \(us)\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n"
        },
    ]
    let enabled = Set(c.controllers)
    if enabled.contains("cpuset") {
        files += [limit("cpuset.cpus"), ro("cpuset.cpus.effective") { _ in cpuRanges(k.allowedCPUs) + "\n" },
                  limit("cpuset.mems"), ro("cpuset.mems.effective") { _ in "0\n" }]
    }
    if enabled.contains("cpu") { files += [limit("cpu.max"), limit("cpu.weight"), limit("cpu.weight.nice")] }
    if enabled.contains("io") { files += [limit("io.max"), ro("io.stat") { _ in "" }, limit("io.weight")] }
    if enabled.contains("memory") {
        files += [
            ro("memory.current") { _ in "\(k.cgroupMemory(c))\n" },
            ro("memory.events") { _ in "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n" },
            ro("memory.events.local") { _ in "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n" },
            limit("memory.high"), limit("memory.low"), limit("memory.max"), limit("memory.min"), limit("memory.oom.group"),
            ro("memory.peak") { _ in _ = k.cgroupMemory(c); return "\(c.memoryPeak)\n" },
            ro("memory.stat") { _ in
                let m = k.cgroupMemory(c)
                return ["anon \(m)", "file 0", "kernel 0", "kernel_stack 0", "pagetables 0", "sock 0", "shmem 0", "file_mapped 0",
                        "file_dirty 0", "file_writeback 0", "anon_thp 0", "inactive_anon 0", "active_anon \(m)", "inactive_file 0",
                        "active_file 0", "unevictable 0", "slab 0", "pgfault 0", "pgmajfault 0"].joined(separator: "\n") + "\n"
            },
            ro("memory.swap.current") { _ in "0\n" },
            ro("memory.swap.events") { _ in "high 0\nmax 0\nfail 0\n" },
            limit("memory.swap.max"),
        ]
    }
    if enabled.contains("pids") {
        files += [ro("pids.current") { _ in "\(k.cgroupTaskCount(c))\n" }, ro("pids.events") { _ in "max \(c.pidsMaxEvents)\n" },
                  ro("pids.events.local") { _ in "max \(c.pidsMaxEvents)\n" }, limit("pids.max")]
    }
    return files.sorted { $0.name < $1.name }
}

/// A write of one pid to cgroup.procs (its process moves; 0: the writer's)
/// or of one thread id to cgroup.threads (which, every cgroup being a
/// domain, cannot move a thread alone: EOPNOTSUPP unless it is there).
/// Both ends of the move must be within the writer's cgroup namespace
/// (ENOENT), and the file's opener (`creds`) must be allowed to write the
/// cgroup.procs of their common ancestor (EACCES), as Linux's
/// cgroup_procs_write_permission requires. A zombie (not reaped yet) is
/// found but stays where it is, as Linux's migration skips an exiting task.
private func cgroupProcsWrite(_ t: Task, _ c: Cgroup, _ s: String, threads: Bool, creds: Credentials) -> Int32? {
    let k = t.kernel
    guard let n = kernelInt(s), n >= 0 else { return EINVAL }
    let target: ThreadGroup?
    if n == 0 { target = t.tg } else {
        let p = t.gpid(Int32(n))
        target = k.tasks[p]?.tg ?? (threads ? nil : k.threadGroups[p].flatMap { $0.zombie && !$0.reaped ? $0 : nil })
    }
    guard let x = target, k.sees(t, x) else { return ESRCH }
    let root = t.cgroupNSRoot
    if !c.isWithin(root) || !x.cgroup.isWithin(root) { return ENOENT }
    if !k.cgroupMayMigrate(t, from: x.cgroup, to: c, creds: creds) { return EACCES }
    if x.zombie { return nil }
    if threads { return x.cgroup === c ? nil : EOPNOTSUPP }
    return k.cgroupAttach(x, to: c)?.code
}

/// Controllers of Linux the sandbox does not present: enabling one is
/// ENOENT (not available here), any other name EINVAL.
private let absentControllers: Set<String> = ["cpuacct", "devices", "freezer", "net_cls", "perf_event", "net_prio",
                                              "hugetlb", "rdma", "misc", "dmem"]

/// "+memory -cpu": each controller must be one the cgroup has (ENOENT);
/// enabling any in a cgroup with processes (but the root:
/// Kernel.cgroupAttach), or disabling one a child passes on to its own
/// children, is EBUSY, as on Linux.
private func subtreeControlWrite(_ k: Kernel, _ c: Cgroup, _ s: String) -> Int32? {
    var on = Set(c.subtreeControl)
    var enabling = false
    for w in s.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
        guard let sign = w.first, sign == "+" || sign == "-" else { return EINVAL }
        let name = String(w.dropFirst())
        guard c.hierarchy.controllers.contains(name) || absentControllers.contains(name) else { return EINVAL }
        guard c.controllers.contains(name) else { return ENOENT }
        if sign == "+" { if !on.contains(name) { enabling = true }; on.insert(name) } else { on.remove(name) }
    }
    if enabling && c.parent != nil && !k.cgroupMembers(c).isEmpty { return EBUSY }
    for child in c.children.values where child.subtreeControl.contains(where: { !on.contains($0) }) { return EBUSY }
    c.subtreeControl = c.hierarchy.controllers.filter { on.contains($0) }
    return nil
}

/// A decimal, octal (0...) or hex (0x...) integer, blanks around it
/// allowed, as the kernel's kstrtoint with base 0 reads a written value;
/// nil: EINVAL.
func kernelInt(_ s: String) -> Int64? {
    var v = Substring(s.trimmingCharacters(in: " \n\t"))
    let negative = v.hasPrefix("-")
    if negative || v.hasPrefix("+") { v = v.dropFirst() }
    var radix = 10
    if v.hasPrefix("0x") || v.hasPrefix("0X") { radix = 16; v = v.dropFirst(2) } else if v.count > 1 && v.hasPrefix("0") { radix = 8; v = v.dropFirst() }
    guard !v.isEmpty, v.allSatisfy({ $0.isHexDigit }), let n = Int64(v, radix: radix), n <= Int64(Int32.max) + (negative ? 1 : 0) else { return nil }
    return negative ? -n : n
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
