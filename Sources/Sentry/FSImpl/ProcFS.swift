// procfs: generated views of the emulated kernel (never the host's).

import CMoat
import Glibc

/// A generated file or symlink in /proc.
final class ProcNode: Inode {
    let content: ((Task) -> [UInt8])?
    let link: ((Task) -> [UInt8]?)?
    let dirLookup: ((Task?, [UInt8]) -> Inode?)?
    let dirList: ((Task?) -> [DirEntry])?
    unowned let kernel: Kernel

    init(kernel: Kernel, ino: UInt64, mode: UInt32, content: ((Task) -> [UInt8])? = nil, link: ((Task) -> [UInt8]?)? = nil,
         lookup: ((Task?, [UInt8]) -> Inode?)? = nil, list: ((Task?) -> [DirEntry])? = nil) {
        self.kernel = kernel
        self.content = content; self.link = link; self.dirLookup = lookup; self.dirList = list
        super.init(ino: ino, mode: mode, dev: 3)
    }

    override var cacheable: Bool { false }
    override var fsMagic: Int64 { 0x9fa0 }
    /// A directory whose link count changes (/proc/PID/task).
    var links: (() -> UInt64)?
    override func stat() -> Result<Stat, Errno> {
        guard let l = links else { return super.stat() }
        return super.stat().map { var s = $0; s.nlink = l(); return s }
    }
    var magic = false
    override var isMagicLink: Bool { magic }
    /// For a /proc/PID directory: its process (pidfd_send_signal takes one as a pidfd).
    weak var pidGroup: ThreadGroup?

    /// True once the process this node shows is reaped: /proc/PID and
    /// what is under it answer ESRCH, as Linux's (the pid is gone).
    var gone: (() -> Bool)?
    override func lookup(_ name: [UInt8]) -> Result<Inode, Errno> {
        guard isDir, let l = dirLookup else { return .failure(Errno(ENOTDIR)) }
        if gone?() == true { return .failure(Errno(ESRCH)) }
        if let i = l(currentTask, name) { return .success(i) }
        return .failure(Errno(ENOENT))
    }
    override func readdir() -> Result<[DirEntry], Errno> {
        guard isDir, let l = dirList else { return .failure(Errno(ENOTDIR)) }
        if gone?() == true { return .failure(Errno(ENOENT)) }
        return .success(l(currentTask))
    }
    override func readlink() -> Result<[UInt8], Errno> {
        if gone?() == true { return .failure(Errno(ESRCH)) }
        guard let l = link, let t = currentTask, let s = l(t) else { return .failure(Errno(ENOENT)) }
        return .success(s)
    }
    /// For a file that is no generated text (/proc/PID/mem): its own open.
    var openFile: ((Task, Int32) -> Result<FileDescription, Errno>)?
    /// Who may open it beyond its mode (a process's memory map: ptrace
    /// read access); others get EACCES.
    var mayOpen: ((Task) -> Bool)?
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if gone?() == true { return .failure(Errno(ESRCH)) }
        if let m = mayOpen, !m(t) { return .failure(Errno(EACCES)) }
        if let o = openFile { return o(t, flags) }
        if isDir { return .success(DirectoryFD(flags: flags, path: nil)) }
        guard let c = content else { return .failure(Errno(ENXIO)) }
        // The mode decides who may open it for writing (root may, as on
        // Linux); a write to a file that takes none fails (Linux's EIO).
        let f = BytesFD(data: [], flags: flags, path: nil)
        f.generate = c
        f.gone = gone
        f.changes = changes
        f.seqFile = seqFile
        f.store = store
        return .success(f)
    }
    /// cmdline and environ are not seq_files: they seek from their end too.
    var seqFile = true
    /// What poll watches (BytesFD.changes).
    var changes: (() -> Int)?
    /// For a file a write changes (its mode says who may open it so).
    var store: ((Task, [UInt8]) -> Int32?)?
    override var size: Int64 { 0 }
}

/// The task currently running a syscall on this thread (procfs needs the
/// caller for "self"). Set by the dispatcher.
var currentTaskKey: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k, nil)
    return k
}()
var currentTask: Task? {
    guard let p = pthread_getspecific(currentTaskKey) else { return nil }
    return Unmanaged<Task>.fromOpaque(p).takeUnretainedValue()
}

extension Kernel {
    func makeProcFS() -> ProcNode {
        let k = self
        func file(_ ino: UInt64, _ gen: @escaping (Task) -> String) -> ProcNode {
            ProcNode(kernel: k, ino: ino, mode: S_IFREG_ | 0o444, content: { Array(gen($0).utf8) })
        }
        // Made at the first read: the platform (KVM has no userfaultfd) is
        // set up after /proc is mounted.
        var configGz: [UInt8]? = nil
        let staticFiles: [String: ProcNode] = [
            "config.gz": ProcNode(kernel: k, ino: 18, mode: S_IFREG_ | 0o444, content: { _ in
                if configGz == nil { configGz = kernelConfigGzip(release: moatRelease, userfaultfd: !KVMTasks.enabled) }
                return configGz!
            }),
            "uptime": file(10, { _ in
                let up = fixed2(Kernel.now(CLOCK_MONOTONIC) - k.bootMonotonicNs)
                return "\(up) \(up)\n"
            }),
            "loadavg": file(11, { _ in "0.00 0.00 0.00 1/\(k.tasks.count) \(k.nextPid - 1)\n" }),
            "version": file(12, { _ in "Linux version \(moatRelease) (moat) #1 SMP\n" }),
            "meminfo": file(13, { _ in
                var total: UInt64 = 0, free: UInt64 = 0, procs: UInt64 = 0
                moat_sysinfo(&total, &free, &procs)
                total /= 1024; free /= 1024
                return "MemTotal:       \(total) kB\nMemFree:        \(free) kB\nMemAvailable:   \(free) kB\nBuffers:               0 kB\nCached:                0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
            }),
            "stat": file(14, { _ in k.procStatText() }),
            "filesystems": file(15, { _ in presentedFileSystems.map { "nodev\t\($0)\n" }.joined() }),
            // cgroup v2 only: every controller on hierarchy 0 (Kernel/Cgroups.swift).
            "cgroups": file(22, { _ in
                let n = 1 + k.cgroups.root.descendants
                return "#subsys_name\thierarchy\tnum_cgroups\tenabled\n" + k.cgroups.controllers.map { "\($0)\t0\t\(n)\t1\n" }.joined()
            }),
            "cpuinfo": file(17, { _ in procCpuinfo() }),
            // The kernel's command line: Moat boots no kernel image.
            "cmdline": file(19, { _ in "moat\n" }),
            // The device majors of the devices the sandbox has (DevFS.swift), as Linux lists them.
            "devices": file(23, { _ in
                "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  5 /dev/tty\n  5 /dev/console\n  5 /dev/ptmx\n 10 misc\n136 pts\n\nBlock devices:\n"
            }),
        ]
        // Pids in /proc are the reader's pid namespace's (Kernel/PidNamespaces.swift).
        let selfLink = ProcNode(kernel: k, ino: 20, mode: S_IFLNK_ | 0o777, link: { t in Array("\(t.vpid(t.tg.tgid))".utf8) })
        let threadSelf = ProcNode(kernel: k, ino: 21, mode: S_IFLNK_ | 0o777, link: { t in Array("\(t.vpid(t.tg.tgid))/task/\(t.vpid(t.tid))".utf8) })
        // /proc/net: the caller's own view, as Linux's symlink to self/net.
        let netLink = ProcNode(kernel: k, ino: 22, mode: S_IFLNK_ | 0o777, link: { _ in Array("self/net".utf8) })
        // /proc/mounts too: the reader's own mount table.
        let mountsLink = ProcNode(kernel: k, ino: 16, mode: S_IFLNK_ | 0o777, link: { _ in Array("self/mounts".utf8) })
        let sysDir = k.procSysDir("")
        // /proc/sysvipc: the reader's IPC namespace's objects, one file per kind.
        let ipcKinds = ["shm", "msg", "sem"]
        let ipcFiles = Dictionary(uniqueKeysWithValues: ipcKinds.enumerated().map { i, kind in
            (kind, file(51 + UInt64(i), { t in t.ipc.procText(kind, seen: t.tg.pidSeen) }))
        })
        let sysvipcDir = ProcNode(kernel: k, ino: 50, mode: S_IFDIR_ | 0o555, lookup: { _, name in
            ipcFiles[String(decoding: name, as: UTF8.self)]
        }, list: { _ in ipcKinds.map { DirEntry(ino: ipcFiles[$0]!.ino, type: 8, name: Array($0.utf8)) } })
        return ProcNode(kernel: k, ino: 1, mode: S_IFDIR_ | 0o555, lookup: { t, name in
            let s = String(decoding: name, as: UTF8.self)
            if let f = staticFiles[s] { return f }
            if s == "self" { return selfLink }
            if s == "thread-self" { return threadSelf }
            if s == "sys" { return sysDir }
            if s == "sysvipc" { return sysvipcDir }
            if s == "net" { return netLink }
            if s == "mounts" { return mountsLink }
            if let n = Int32(s), n > 0, let tg = k.threadGroups[t?.gpid(n) ?? n], k.sees(t, tg) { return k.procPidDir(tg, tid: nil) }
            // A thread's id names it too, though /proc does not list it.
            if let n = Int32(s), n > 0, let x = k.tasks[t?.gpid(n) ?? n], k.sees(t, x.tg) { return k.procPidDir(x.tg, tid: x.tid, thread: true) }
            return nil
        }, list: { t in
            var e = staticFiles.map { DirEntry(ino: $0.value.ino, type: 8, name: Array($0.key.utf8)) }
            e.append(DirEntry(ino: 20, type: 10, name: Array("self".utf8)))
            e.append(DirEntry(ino: 21, type: 10, name: Array("thread-self".utf8)))
            e.append(DirEntry(ino: 35, type: 4, name: Array("sys".utf8)))
            e.append(DirEntry(ino: 22, type: 10, name: Array("net".utf8)))
            e.append(DirEntry(ino: 16, type: 10, name: Array("mounts".utf8)))
            e.append(DirEntry(ino: 50, type: 4, name: Array("sysvipc".utf8)))
            // In pid order as the reader's namespace numbers them.
            for (n, tg) in k.threadGroups.values.filter({ k.sees(t, $0) }).map({ (t?.vpid($0.tgid) ?? $0.tgid, $0) }).sorted(by: { $0.0 < $1.0 }) {
                e.append(DirEntry(ino: k.procPidIno(tg, tid: nil), type: 4, name: Array("\(n)".utf8)))
            }
            return e
        })
    }

    /// /proc/stat. The CPU lines count the sandbox's processes' time (user
    /// and system as the host charged their stubs, the reaped ones' through
    /// their reapers' children's time) in USER_HZ ticks, evenly over the
    /// online CPUs; idle is the rest of the time since boot.
    func procStatText() -> String {
        let n = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var user: Int64 = 0, system: Int64 = 0
        for tg in threadGroups.values {
            user += tg.sampleCPU() + tg.childUtimeNs
            system += tg.stimeNs + tg.childStimeNs
        }
        let tick: Int64 = 10_000_000
        let up = (Kernel.now(CLOCK_MONOTONIC) - bootMonotonicNs) / tick
        let idle = max(0, up * Int64(n) - (user + system) / tick)
        func line(_ name: String, _ share: Int64) -> String {
            "\(name) \(user / tick / share) 0 \(system / tick / share) \(idle / share) 0 0 0 0 0 0\n"
        }
        var s = line("cpu ", 1)
        for i in 0..<n { s += line("cpu\(i)", Int64(n)) }
        let running = threadGroups.values.reduce(0) { $0 + $1.tasks.filter { $0.inApp || $0.waitMode == .none }.count }
        s += "intr 0\nctxt 0\nbtime \(bootRealtimeNs / 1_000_000_000)\nprocesses \(nextPid)\n"
        s += "procs_running \(max(1, running))\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
        return s
    }

    /// A mount's mount point as `t` sees it from its root; nil for a mount
    /// outside that root, which /proc/PID/mounts and mountinfo leave out.
    func mountPoint(_ m: Mount, from t: Task) -> String? {
        var reached = false
        let p = vfs.pathString(Path(mount: m, dentry: m.root), root: t.fs.root, reached: &reached)
        return reached ? String(decoding: p, as: UTF8.self) : nil
    }

    /// The mounts of `t`'s namespace, in mount order.
    func namespaceMounts(_ t: Task) -> [Mount] {
        vfs.pruneDeadNamespaces()
        guard let ns = t.fs.ns else { return [] }
        return vfs.mounts.filter { $0.ns === ns }
    }

    func mountsText(_ t: Task) -> String {
        var s = ""
        for m in namespaceMounts(t) {
            guard let p = mountPoint(m, from: t) else { continue }
            let opts = MountFlags.text(m.flags, readOnly: m.readOnly) + (m.superOptions.isEmpty ? "" : "," + m.superOptions)
            s += "\(m.source) \(p) \(m.fsType) \(opts) 0 0\n"
        }
        return s
    }

    /// /proc/PID/mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS - TYPE SOURCE SUPEROPTS",
    /// in mount order; ids are Mount.id (the root's parent is 1).
    func mountInfoText(_ t: Task) -> String {
        var s = ""
        let mounts = namespaceMounts(t)
        let ids = Dictionary(uniqueKeysWithValues: mounts.map { (ObjectIdentifier($0), $0.id) })
        for m in mounts {
            guard let p = mountPoint(m, from: t) else { continue }
            let parent = m.parent.flatMap { ids[ObjectIdentifier($0)] } ?? 1
            var dev: UInt64 = 0
            if case .success(let st) = m.root.inode.stat() { dev = st.dev }
            let rw = m.readOnly ? "ro" : "rw"
            // A bind mount's root is the directory bound (its source path); a
            // cgroup2 mount's its cgroup as the reader's cgroup namespace
            // sees it ("/.." above that namespace's root); a bind mount's
            // made inside the sandbox the directory bound, in its file system.
            let root = if let d = m.root.inode as? CgroupDirInode { d.cgroup.path(from: t.cgroupNSRoot) }
                       else if m.fsType == "9p" && m.source.hasPrefix("/") { m.source }
                       else { m.rootPath }
            // The optional fields: propagation (shared:N, master:N, unbindable).
            var optional = ""
            if m.peerGroup != 0 { optional += " shared:\(m.peerGroup)" }
            if m.masterGroup != 0 { optional += " master:\(m.masterGroup)" }
            if m.unbindable { optional += " unbindable" }
            let superOpts = rw + (m.superOptions.isEmpty ? "" : "," + m.superOptions)
            s += "\(ids[ObjectIdentifier(m)]!) \(parent) 0:\(dev) \(root) \(p) \(MountFlags.text(m.flags, readOnly: m.readOnly))\(optional) - \(m.fsType) \(m.source) \(superOpts)\n"
        }
        return s
    }

    /// /proc/PID's inode number: which process this is (ThreadGroup.serial),
    /// in 32 bits as programs keep it (LTP's pidfd_send_signal03 in an
    /// int); /proc/PID/task/TID's: the thread id.
    func procPidIno(_ tg: ThreadGroup, tid: Int32?) -> UInt64 {
        if let tid { return 0x10000 + UInt64(tid) }
        return 0x8000_0000 | (tg.serial & 0x7fff_ffff)
    }

    /// /proc/PID (`tid` nil), /proc/PID/task/TID, or with `thread`
    /// /proc/TID of a thread that leads no process: the thread's view with
    /// a task directory of its process's threads, as Linux shows it.
    func procPidDir(_ tg: ThreadGroup, tid: Int32?, thread: Bool = false) -> ProcNode {
        let k = self
        let base = 0x100000 + UInt64(tg.tgid) * 64
        func task() -> Task? { tid.flatMap { k.tasks[$0] } ?? tg.leader ?? tg.tasks.first }
        func file(_ n: UInt64, _ gen: @escaping () -> [UInt8]) -> ProcNode {
            ProcNode(kernel: k, ino: base + n, mode: S_IFREG_ | 0o444, content: { _ in gen() })
        }
        var entries: [String: () -> ProcNode] = [:]
        // The reader is running (in its read): a task reading its own
        // state sees R, as on Linux.
        entries["stat"] = { ProcNode(kernel: k, ino: base + 1, mode: S_IFREG_ | 0o444, content: { r in Array(k.procStat(tg, task(), reader: r).utf8) }) }
        entries["status"] = { ProcNode(kernel: k, ino: base + 2, mode: S_IFREG_ | 0o444, content: { r in Array(k.procStatus(tg, task(), reader: r).utf8) }) }
        entries["cmdline"] = { let n = file(3) { k.procCmdline(tg) }; n.seqFile = false; return n }
        // statm: sizes in pages (size resident shared text lib data dt).
        entries["statm"] = { ProcNode(kernel: k, ino: base + 18, mode: S_IFREG_ | 0o444, content: { r in
            guard !tg.zombie, let m = (tg.leader ?? tg.tasks.first)?.mm else { return Array("0 0 0 0 0 0 0\n".utf8) }
            let u = m.usage(reader: r)
            return Array("\(u.size / 4096) \(u.resident / 4096) 0 0 0 \(u.data / 4096) 0\n".utf8)
        }) }
        // A thread of the same process may rename another through its comm
        // (the first 15 bytes); a write from elsewhere is EINVAL (Linux's comm_write).
        entries["comm"] = {
            let n = ProcNode(kernel: k, ino: base + 4, mode: S_IFREG_ | 0o644, content: { _ in (task()?.comm ?? tg.exitComm) + [10] })
            n.uid = tg.creds.euid; n.gid = tg.creds.egid
            n.store = { w, b in
                guard let x = task() else { return ESRCH }
                if x.tg !== w.tg { return EINVAL }
                var name = Array(b.prefix { $0 != 0 })
                if name.last == 10 { name.removeLast() }
                x.comm = Array(name.prefix(15))
                if x.tid == tg.tgid { tg.comm = x.comm }
                return nil
            }
            return n
        }
        // Read and write counts: the thread's, or the whole process's.
        entries["io"] = {
            let n = file(27) { Array((tid.flatMap { k.tasks[$0]?.io } ?? tg.io).text.utf8) }
            n.mode = S_IFREG_ | 0o400
            n.uid = tg.creds.euid; n.gid = tg.creds.egid
            return n
        }
        // prctl's timer slack, in ns; a write sets it (0: the default),
        // another process's only with CAP_SYS_NICE.
        entries["timerslack_ns"] = {
            let n = ProcNode(kernel: k, ino: base + 24, mode: S_IFREG_ | 0o666, content: { _ in Array("\(task()?.timerSlackNs ?? 0)\n".utf8) })
            n.store = { w, b in
                guard let x = task() else { return ESRCH }
                if x.tg !== w.tg && !w.creds.has(Cap.sysNice) { return EPERM }
                guard let v = UInt64(String(decoding: b.last == 10 ? b.dropLast() : b[...], as: UTF8.self)) else { return EINVAL }
                x.timerSlackNs = v == 0 ? x.defaultTimerSlackNs : v
                return nil
            }
            return n
        }
        // Which mappings a core dump writes (Kernel/CoreDump.swift): the
        // filter bits in hex; a write takes a number in C's bases, as
        // Linux's kstrtouint(..., 0), and keeps its low nine bits.
        entries["coredump_filter"] = {
            let n = ProcNode(kernel: k, ino: base + 25, mode: S_IFREG_ | 0o644, content: { _ in Array(hex8(tg.coredumpFilter).utf8) })
            n.store = { w, b in
                if tg.zombie { return ESRCH }
                if w.tg !== tg && w.creds.fsuid != tg.lastCreds.uid && !w.creds.has(Cap.dacOverride) { return EACCES }
                var s = String(decoding: b, as: UTF8.self)
                if s.hasSuffix("\n") { s.removeLast() }
                let v: UInt32?
                if s.hasPrefix("0x") || s.hasPrefix("0X") { v = UInt32(s.dropFirst(2), radix: 16) }
                else if s.hasPrefix("0") && s.count > 1 { v = UInt32(s.dropFirst(), radix: 8) }
                else { v = UInt32(s) }
                guard let val = v else { return EINVAL }
                tg.coredumpFilter = val & 0x1ff
                return nil
            }
            return n
        }
        entries["maps"] = { file(5) { Array(k.procMaps(tg).utf8) } }
        entries["mem"] = { k.procMemNode(tg, ino: base + 26, task: task) }
        entries["smaps"] = { file(17) { Array(k.procMaps(tg, details: true).utf8) } }
        // The process's namespace, as its root sees it (the reader's when it is gone).
        func mountsFile(_ ino: UInt64, _ text: @escaping (Task) -> String) -> ProcNode {
            let n = ProcNode(kernel: k, ino: ino, mode: S_IFREG_ | 0o444, content: { r in Array(text(task() ?? r).utf8) })
            let ns = task()?.fs.ns
            n.changes = { ns?.event ?? 0 }
            return n
        }
        entries["mounts"] = { mountsFile(base + 6, k.mountsText) }
        entries["mountinfo"] = { mountsFile(base + 14, k.mountInfoText) }
        entries["environ"] = { let n = file(7) { k.procEnviron(tg) }; n.seqFile = false; return n }
        entries["auxv"] = { let n = file(20) { (tg.leader ?? tg.tasks.first)?.mm.auxv ?? [] }; n.seqFile = false; return n }
        // Moat kills nothing for memory: every process scores 0; the
        // adjustment is kept and inherited, as Linux's is.
        entries["oom_score"] = { file(21) { Array("0\n".utf8) } }
        entries["oom_score_adj"] = {
            let n = ProcNode(kernel: k, ino: base + 22, mode: S_IFREG_ | 0o644, content: { _ in Array("\(tg.oomScoreAdj)\n".utf8) })
            n.store = { w, b in
                // The number ends at a NUL or the write's end, blanks around it.
                let blank: Set<UInt8> = [9, 10, 11, 12, 13, 32]
                let digits = b.prefix { $0 != 0 }.drop { blank.contains($0) }.reversed().drop { blank.contains($0) }.reversed()
                guard let v = Int32(String(decoding: Array(digits), as: UTF8.self)), (-1000...1000).contains(v) else { return EINVAL }
                let privileged = w.creds.has(Cap.sysResource)
                if v < tg.oomScoreAdjMin && !privileged { return EACCES }
                tg.oomScoreAdj = v
                if privileged { tg.oomScoreAdjMin = v }
                return nil
            }
            return n
        }
        entries["exe"] = { let n = ProcNode(kernel: k, ino: base + 8, mode: S_IFLNK_ | 0o777, link: { _ in task().map { Array($0.mm.exePath.utf8) } }); n.magic = true; return n }
        entries["cwd"] = { let n = ProcNode(kernel: k, ino: base + 9, mode: S_IFLNK_ | 0o777, link: { r in task().map { k.vfs.pathString($0.fs.cwd, root: r.fs.root) } }); n.magic = true; return n }
        entries["root"] = { let n = ProcNode(kernel: k, ino: base + 10, mode: S_IFLNK_ | 0o777, link: { _ in [47] }); n.magic = true; return n }
        entries["fd"] = { k.procFdDir(tg, base + 11, task) }
        entries["ns"] = { k.procNsDir(tg, base + 40, task) }
        entries["fdinfo"] = { k.procFdInfoDir(base + 19, task) }
        entries["limits"] = { file(12) { Array(k.procLimits(tg).utf8) } }
        // cgroup v2's one line, the path as the reader's cgroup namespace sees it.
        entries["cgroup"] = { ProcNode(kernel: k, ino: base + 25, mode: S_IFREG_ | 0o444, content: { r in
            Array("0::\(tg.cgroup.path(from: r.cgroupNSRoot))\(tg.cgroup.removed ? " (deleted)" : "")\n".utf8)   // a zombie's removed cgroup
        }) }
        entries["net"] = { k.makeProcNetDir(task) }
        entries["uid_map"] = { k.procIDMapNode(tg, base + 14, uid: true, task) }
        entries["gid_map"] = { k.procIDMapNode(tg, base + 15, uid: false, task) }
        entries["setgroups"] = { k.procSetgroupsNode(tg, base + 16, task) }
        if tid == nil || thread {
            entries["task"] = {
                let n = ProcNode(kernel: k, ino: base + 13, mode: S_IFDIR_ | 0o555, lookup: { r, n in
                    guard let id = Int32(String(decoding: n, as: UTF8.self)), id > 0, let t = k.tasks[r?.gpid(id) ?? id], t.tg === tg else { return nil }
                    return k.procPidDir(tg, tid: t.tid)
                }, list: { r in tg.tasks.map { DirEntry(ino: 0x20000 + UInt64($0.tid), type: 4, name: Array("\(r?.vpid($0.tid) ?? $0.tid)".utf8)) } })
                // ".", its entry in the parent and each thread's "..".
                n.links = { UInt64(2 + tg.tasks.count) }
                return n
            }
        } else {
            // The processes this thread made (Linux's real parent is a
            // thread), by pid, each followed by a space.
            entries["children"] = { ProcNode(kernel: k, ino: base + 28, mode: S_IFREG_ | 0o444, content: { r in
                guard let x = task() else { return [] }
                let kids = tg.children.filter { !$0.reaped && ($0.parentThread === x || ($0.parentThread == nil && x.tid == tg.tgid)) }
                return Array(kids.map { r.vpid($0.tgid) }.sorted().map { "\($0) " }.joined().utf8)
            }) }
        }
        let names = entries.keys.sorted()
        // Once the process is reaped (or this thread has left) its files
        // answer ESRCH, except the id maps, which are its user namespace's.
        let gone = { tg.reaped || tid.map { k.tasks[$0] == nil } ?? false }
        let nsFiles: Set<String> = ["uid_map", "gid_map", "setgroups"]
        let dir = ProcNode(kernel: k, ino: procPidIno(tg, tid: tid), mode: S_IFDIR_ | 0o555, lookup: { _, n in
            let name = String(decoding: n, as: UTF8.self)
            guard let node = entries[name]?() else { return nil }
            if !nsFiles.contains(name) && node.gone == nil { node.gone = gone }
            // Owned by the process's effective ids while it is dumpable
            // (Linux's task_dump_owner); what shows its memory needs ptrace
            // read access too, and environ and auxv are its owner's alone.
            if tg.dumpable != 0 && node.uid == 0 && node.gid == 0 { node.uid = tg.creds.euid; node.gid = tg.creds.egid }
            if ["maps", "smaps", "environ", "auxv"].contains(name) { node.mayOpen = { mayAttach($0, tg, fsCreds: true) } }
            if name == "environ" || name == "auxv" { node.mode = S_IFREG_ | 0o400 }
            return node
        }, list: { _ in names.map { DirEntry(ino: base + 32, type: ["exe", "cwd", "root"].contains($0) ? 10 : (["fd", "fdinfo", "task", "ns"].contains($0) ? 4 : 8), name: Array($0.utf8)) } })
        dir.gone = gone
        if tid == nil { dir.pidGroup = tg }
        return dir
    }

    func procFdDir(_ tg: ThreadGroup, _ ino: UInt64, _ task: @escaping () -> Task?) -> ProcNode {
        let k = self
        return ProcNode(kernel: k, ino: ino, mode: S_IFDIR_ | 0o500, lookup: { _, n in
            guard let fd = Int32(String(decoding: n, as: UTF8.self)), let t = task(), let f = t.fds.get(fd) else { return nil }
            return ProcFdLink(kernel: k, file: f, ino: ino + 1000 + UInt64(fd))
        }, list: { _ in
            guard let t = task() else { return [] }
            return t.fds.entries.indices.compactMap { i in t.fds.entries[i] == nil ? nil : DirEntry(ino: ino + 1000 + UInt64(i), type: 10, name: Array("\(i)".utf8)) }
        })
    }

    /// /proc/PID/fdinfo: a file per open fd with its "pos", "flags" (F_GETFL's,
    /// in octal, with O_CLOEXEC when the descriptor has it), "mnt_id" and
    /// "ino", as Linux prints them. A file names its descriptor by number
    /// and holds no reference: a stat of it never keeps a pipe end open.
    func procFdInfoDir(_ ino: UInt64, _ task: @escaping () -> Task?) -> ProcNode {
        let k = self
        return ProcNode(kernel: k, ino: ino, mode: S_IFDIR_ | 0o555, lookup: { _, n in
            guard let fd = Int32(String(decoding: n, as: UTF8.self)), let t = task(), t.fds.get(fd) != nil else { return nil }
            return ProcNode(kernel: k, ino: ino + 1000 + UInt64(fd), mode: S_IFREG_ | 0o444, content: { _ in
                guard let t = task(), let f = t.fds.get(fd) else { return [] }
                let flags = UInt32(bitPattern: f.statusFlags | (t.fds.cloexec(fd) ? O_CLOEXEC : 0))
                let st = (try? f.stat().get()) ?? Stat()
                var s = "pos:\t\(f.offset)\nflags:\t0\(String(flags, radix: 8))\nmnt_id:\t\(f.path?.mount.id ?? 0)\nino:\t\(st.ino)\n"
                // An inotify instance: one line per watch, as Linux's inotify_fdinfo.
                if let n = f as? InotifyFD {
                    for w in n.watches.values.sorted(by: { $0.wd < $1.wd }) {
                        let ws = (try? w.inode.stat().get()) ?? Stat()
                        s += "inotify wd:\(String(w.wd, radix: 16)) ino:\(String(ws.ino, radix: 16)) sdev:\(String(ws.dev, radix: 16)) mask:\(String(w.mask, radix: 16)) ignored_mask:0\n"
                    }
                }
                return Array(s.utf8)
            })
        }, list: { _ in
            guard let t = task() else { return [] }
            return t.fds.entries.indices.compactMap { i in t.fds.entries[i] == nil ? nil : DirEntry(ino: ino + 1000 + UInt64(i), type: 8, name: Array("\(i)".utf8)) }
        })
    }

    /// The one-letter state of `t` as `reader` sees it.
    private func taskState(_ tg: ThreadGroup, _ t: Task?, reader: Task?) -> String {
        if tg.zombie { return "Z" }
        if tg.stopped { return "T" }
        if t?.ptraceStopped == true { return "t" }
        // Sleeping only while really blocked: a task the Sentry is serving
        // runs (a test that waits for 'S' before signalling a blocked call
        // must not signal before the call blocks).
        guard let t else { return "S" }
        // A sleeper with a signal to take is runnable already (Linux wakes
        // it as the signal is sent; shmctl01 signals children, then waits
        // for them to sleep again).
        return t === reader || t.inApp || t.waitMode == .none || t.interruptPending() ? "R" : "S"
    }

    func procStat(_ tg: ThreadGroup, _ t: Task?, reader: Task? = nil) -> String {
        let state = taskState(tg, t, reader: reader)
        let v = { (p: Int32) in reader.map { $0.vpidIfSeen(p) } ?? p & PidNS.mask }   // as the reader numbers it (0: outside its namespace)
        let ppid = tg.parent.map { v($0.tgid) } ?? 0
        let comm = String(decoding: t?.comm ?? tg.exitComm, as: UTF8.self)
        let start = (tg.startNs - bootMonotonicNs) / 10_000_000
        let ut = tg.sampleCPU() / 10_000_000, st = tg.stimeNs / 10_000_000
        let u = tg.zombie ? MemoryUsage() : (t?.mm.usage(reader: reader) ?? MemoryUsage())
        let vsize = u.size
        // priority and nice as Linux prints them: 20 + nice for a fair
        // policy, -1 - the real-time priority for SCHED_FIFO/SCHED_RR.
        let x = t ?? tg.leader, nice = x?.nice ?? 0
        let rt = x.map { $0.schedPolicy & ~0x4000_0000 == 1 || $0.schedPolicy & ~0x4000_0000 == 2 } ?? false
        let prio = rt ? -1 - (x?.schedPriority ?? 0) : 20 + nice
        return "\(v(tg.tgid)) (\(comm)) \(state) \(ppid) \(v(tg.pgid)) \(v(tg.sid)) 0 -1 4194304 0 0 0 0 \(ut) \(st) 0 0 \(prio) \(nice) \(tg.threadCount) 0 \(start) \(vsize) \(u.resident / 4096) 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    }

    func procStatus(_ tg: ThreadGroup, _ t: Task?, reader: Task? = nil) -> String {
        let c = t?.creds ?? tg.creds
        let v = { (p: Int32) in reader.map { $0.vpidIfSeen(p) } ?? p & PidNS.mask }   // as procStat
        // Ids as the reader's user namespace shows them.
        let ns = reader?.creds.userNS ?? .root
        let u = { (k: UInt32) in ns.showUID(k) }, g = { (k: UInt32) in ns.showGID(k) }
        let state = ["Z": "Z (zombie)", "T": "T (stopped)", "t": "t (tracing stop)", "R": "R (running)"][taskState(tg, t, reader: reader)] ?? "S (sleeping)"
        let sigBlk = hex(t?.sigMask ?? 0, width: 16)
        // Signals queued, pending for the thread and for the process, and
        // the dispositions: ignored and caught, bit N-1 for signal N.
        var ign: UInt64 = 0, cgt: UInt64 = 0
        for sig in 1...64 where sig < tg.handlers.actions.count {
            let h = tg.handlers.actions[sig].handler
            if h == 1 { ign |= sigBit(Int32(sig)) } else if h > 1 { cgt |= sigBit(Int32(sig)) }
        }
        let queued = tg.sharedPending.infos.count + tg.tasks.reduce(0) { $0 + $1.pending.infos.count }
        let sigLines = "SigQ:\t\(queued)/\(tg.rlimits[RL_SIGPENDING].cur)\nSigPnd:\t\(hex(t?.pending.mask ?? 0, width: 16))\n"
            + "ShdPnd:\t\(hex(tg.sharedPending.mask, width: 16))\nSigBlk:\t\(sigBlk)\nSigIgn:\t\(hex(ign, width: 16))\nSigCgt:\t\(hex(cgt, width: 16))"
        // The address space's size and its locked part (MAP_LOCKED, mlock,
        // mlockall), as Linux prints them; a zombie has none (no lines).
        var vm = ""
        if !tg.zombie, let m = (tg.leader ?? tg.tasks.first)?.mm {
            let u = m.usage(reader: reader)
            func line(_ name: String, _ bytes: UInt64) -> String { name + ":\t" + padLeft(String(bytes / 1024), 8) + " kB\n" }
            // Nothing of the sandbox's memory is swap as it sees it: VmSwap 0.
            vm = line("VmSize", u.size) + line("VmLck", u.locked) + line("VmRSS", u.resident) + line("VmData", u.data)
                + line("VmStk", u.stack) + line("VmSwap", 0)
        }
        return """
        Name:\t\(String(decoding: t?.comm ?? tg.exitComm, as: UTF8.self))
        Umask:\t\(octal(t?.fs.umask ?? 0o22, width: 4))
        State:\t\(state)
        Tgid:\t\(v(tg.tgid))
        Pid:\t\(v(t?.tid ?? tg.tgid))
        PPid:\t\(v(tg.parent?.tgid ?? 0))
        TracerPid:\t\(v(t?.ptrace?.tracer?.tgid ?? 0))
        Uid:\t\(u(c.uid))\t\(u(c.euid))\t\(u(c.suid))\t\(u(c.fsuid))
        Gid:\t\(g(c.gid))\t\(g(c.egid))\t\(g(c.sgid))\t\(g(c.fsgid))
        Groups:\t\(c.groups.map { String(g($0)) }.joined(separator: " "))
        \(nsLines(tg, t, reader: reader))\(vm)Threads:\t\(tg.threadCount)
        \(sigLines)
        CapInh:\t\(hex(c.capInh, width: 16))
        CapPrm:\t\(hex(c.capPrm, width: 16))
        CapEff:\t\(hex(c.capEff, width: 16))
        CapBnd:\t\(hex(c.capBnd, width: 16))
        CapAmb:\t\(hex(c.capAmb, width: 16))
        NoNewPrivs:\t\(c.noNewPrivs ? 1 : 0)
        Seccomp:\t\((t?.seccomp.mode ?? .disabled) != .disabled ? t!.seccomp.mode.rawValue : (seccompFilter(tg) != nil ? 2 : 0))
        Seccomp_filters:\t\((t?.seccomp.filter?.depth ?? 0) + (seccompFilter(tg) != nil ? 1 : 0))

        """
    }

    /// NStgid, NSpid, NSpgid, NSsid: a number per pid namespace from the
    /// reader's down to the process's, tab-separated as Linux prints them
    /// (Kernel/PidNamespaces.swift); a group or session outside one of
    /// those namespaces is 0 in it.
    private func nsLines(_ tg: ThreadGroup, _ t: Task?, reader: Task?) -> String {
        let top = reader.map { PidNS.index($0.tg.tgid) }
        var levels: [Int32] = []                                        // the process's namespace up to the reader's
        if let top = top, pidNS(PidNS.index(tg.tgid), isWithin: top) {
            var ns = PidNS.index(tg.tgid)
            while true { levels.append(ns); if ns == top { break }; ns = parentPidNS(ns) }
        }
        func nums(_ p: Int32) -> String {
            guard levels.count > 1 else { return String(reader.map { $0.vpidIfSeen(p) } ?? p & PidNS.mask) }
            return levels.reversed().map { String(pidNumber(p, in: $0)) }.joined(separator: "\t")
        }
        return "NStgid:\t\(nums(tg.tgid))\nNSpid:\t\(nums(t?.tid ?? tg.tgid))\nNSpgid:\t\(nums(tg.pgid))\nNSsid:\t\(nums(tg.sid))\n"
    }

    func procCmdline(_ tg: ThreadGroup) -> [UInt8] {
        if let c = tg.fixedCmdline { return c }
        guard let t = tg.leader ?? tg.tasks.first, t.mm.argEnd > t.mm.argStart else { return [] }
        return t.copyIn(t.mm.argStart, Int(min(t.mm.argEnd - t.mm.argStart, 1 << 20))) ?? []
    }
    func procEnviron(_ tg: ThreadGroup) -> [UInt8] {
        guard let t = tg.leader ?? tg.tasks.first, t.mm.envEnd > t.mm.envStart else { return [] }
        return t.copyIn(t.mm.envStart, Int(min(t.mm.envEnd - t.mm.envStart, 1 << 20))) ?? []
    }

    /// /proc/[pid]/maps, or with `details` /proc/[pid]/smaps: each mapping's
    /// line followed by its sizes in kB. Moat does not track which pages are
    /// resident (mincore says all are), so Rss is the whole mapping, as it
    /// is on Linux for a locked one; Locked is Rss for a locked mapping.
    func procMaps(_ tg: ThreadGroup, details: Bool = false) -> String {
        guard let t = tg.leader ?? tg.tasks.first else { return "" }
        var s = ""
        for v in t.mm.vmas {
            let p = (v.prot & PROT_READ != 0 ? "r" : "-") + (v.prot & PROT_WRITE != 0 ? "w" : "-") + (v.prot & PROT_EXEC != 0 ? "x" : "-") + (v.flags & MAP_SHARED != 0 ? "s" : "p")
            // Private anonymous memory has no offset to show (Linux's 0), however it was split.
            let off = v.flags & (MAP_ANONYMOUS | MAP_SHARED) == MAP_ANONYMOUS ? 0 : v.offset
            s += mapsLine("\(hex(v.start, width: 8))-\(hex(v.end, width: 8)) \(p) \(hex(off, width: 8)) 00:00 0 ", v.name)
            if details { s += smapsFields(v) }
        }
        // Linux's legacy vsyscall page as its "xonly" mode (the host's)
        // shows it: execute-only. A call into it is emulated
        // (emulateVsyscall) where the platform reports one: under ptrace.
        if t.thread?.hasStub ?? true {
            s += mapsLine("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 ", "[vsyscall]")
            if details { s += smapsFields(VMA(start: 0xffff_ffff_ff60_0000, end: 0xffff_ffff_ff60_1000, prot: PROT_EXEC, flags: MAP_PRIVATE, name: "[vsyscall]")) }
        }
        return s
    }

    /// One line of maps as Linux's show_map_vma prints it: the fields end
    /// with a space, and a name starts at column 73 (the fields padded to
    /// 72, then a space); gVisor's exec_binary and proc programs parse it so.
    private func mapsLine(_ fields: String, _ name: String) -> String {
        name.isEmpty ? fields + "\n" : padRight(fields, 72) + " " + name + "\n"
    }

    private func smapsFields(_ v: VMA) -> String {
        let kb = (v.end - v.start) / 1024
        let anon = v.flags & MAP_ANONYMOUS != 0 && v.flags & MAP_SHARED == 0
        let shared = v.flags & MAP_SHARED != 0
        func line(_ name: String, _ value: UInt64) -> String { padRight(name + ":", 16) + padLeft(String(value), 8) + " kB\n" }
        var s = line("Size", kb) + line("KernelPageSize", 4) + line("MMUPageSize", 4) + line("Rss", kb) + line("Pss", kb)
        s += line("Pss_Dirty", anon ? kb : 0) + line("Shared_Clean", 0) + line("Shared_Dirty", 0)
        s += line("Private_Clean", anon ? 0 : kb) + line("Private_Dirty", anon ? kb : 0) + line("Referenced", kb)
        s += line("Anonymous", anon ? kb : 0) + line("KSM", 0) + line("LazyFree", 0) + line("AnonHugePages", 0)
        s += line("ShmemPmdMapped", 0) + line("FilePmdMapped", 0) + line("Shared_Hugetlb", 0) + line("Private_Hugetlb", 0)
        s += line("Swap", 0) + line("SwapPss", 0) + line("Locked", v.locked ? kb : 0)
        s += "THPeligible:    0\n"
        var flags: [String] = []
        if v.prot & PROT_READ != 0 { flags.append("rd") }
        if v.prot & PROT_WRITE != 0 { flags.append("wr") }
        if v.prot & PROT_EXEC != 0 { flags.append("ex") }
        // A shared mapping of a file opened read-only may never be written:
        // Linux keeps it neither VM_SHARED nor VM_MAYWRITE (only VM_MAYSHARE).
        if shared && v.mayWrite { flags.append("sh") }
        flags += v.mayWrite ? ["mr", "mw", "me"] : ["mr", "me"]
        if shared { flags.append("ms") }
        if v.locked { flags.append("lo") }
        if anon { flags.append("ac") }
        return s + "VmFlags: " + flags.joined(separator: " ") + " \n"
    }

    func procLimits(_ tg: ThreadGroup) -> String {
        let names = ["Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
                     "Max resident set", "Max processes", "Max open files", "Max locked memory", "Max address space",
                     "Max file locks", "Max pending signals", "Max msgqueue size", "Max nice priority",
                     "Max realtime priority", "Max realtime timeout"]
        var s = "Limit                     Soft Limit           Hard Limit           Units     \n"
        for (i, n) in names.enumerated() {
            let l = tg.rlimits[i]
            func f(_ v: UInt64) -> String { v == UInt64.max ? "unlimited" : String(v) }
            s += padRight(n, 26) + padRight(f(l.cur), 21) + padRight(f(l.max), 21) + "\n"
        }
        return s
    }
}

/// What following /proc/[pid]/fd/N gives for an open file that has no place
/// in the tree (a pipe, a socket, stdio): the open file itself.
final class ProcFdTarget: Inode {
    let file: FileDescription
    init(_ file: FileDescription) {
        self.file = file
        let st = (try? file.stat().get()) ?? Stat()
        super.init(ino: st.ino, mode: st.mode, dev: st.dev)
        uid = st.uid; gid = st.gid
    }
    override var cacheable: Bool { false }
    override func stat() -> Result<Stat, Errno> { file.stat() }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        // A socket has no open (Linux's sock_no_open): ENXIO.
        if file is UnixSocketFD || file is UnixSockFD || file is InetSocketFD || file is LoopbackSockFD { return .failure(Errno(ENXIO)) }
        // A pipe is opened anew, with the access mode asked for.
        if let p = file as? PipeFD {
            return pipeOpen(p.pipe, ino: p.ino, t, flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC) | O_LARGEFILE_, named: false)
        }
        return .success(file)
    }
    override func setattr(_ a: SetAttr) -> Result<Void, Errno> {
        if let i = file.inode, !(i is StdioInode) { return i.setattr(a) }
        return .success(())
    }
}

/// /proc/[pid]/fd/N: a symlink whose open yields the same description.
final class ProcFdLink: Inode {
    let file: FileDescription
    unowned let kernel: Kernel
    init(kernel: Kernel, file: FileDescription, ino: UInt64) {
        self.kernel = kernel; self.file = file
        super.init(ino: ino, mode: S_IFLNK_ | 0o700, dev: 3)
    }
    override var cacheable: Bool { false }
    override func readlink() -> Result<[UInt8], Errno> { .success(file.linkName(kernel)) }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> { .success(file) }
}

/// A filter word as /proc/PID/coredump_filter prints it ("%08x\n").
private func hex8(_ v: UInt32) -> String {
    let h = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - h.count)) + h + "\n"
}
