// /proc/sys: the sandbox's own sysctl values (never the host's).
//
// A fixed table of keys the Sentry presents. Some are honoured by the
// emulated kernel (kernel.hostname and kernel.domainname are uname's,
// net.ipv4.ip_unprivileged_port_start decides which ports bind needs
// CAP_NET_BIND_SERVICE for); the others are values the sandbox sees and may
// change, with no effect beyond that (vm.*, fs.*, the rest of net.*: the
// sandbox's sockets are host sockets whose namespace keeps its own
// settings). The IPC keys (kernel.msg*, sem, shm*, *_next_id, fs.mqueue.*)
// are the caller's IPC namespace's (Kernel/IPCNamespaces.swift).
// linux.sysctl (OCI) and `moat run --sysctl` set values before the
// application starts; a key outside the table is added as a presented value
// if it is under kernel., net., vm. or fs.; anything else, and a different
// value for a read-only key, is refused.
//
// Writes from inside need CAP_SYS_ADMIN (CAP_NET_ADMIN for net.*) besides
// the file's mode (0644, root's), and change only this table.

import CMoat
import Glibc

final class SysctlTable {
    final class Entry {
        let key: String           // "kernel/hostname"
        let ino: UInt64
        let writable: Bool
        var stored: String
        /// For honoured keys: the live value, and a setter that validates
        /// (returns an errno on a bad value).
        let getter: (() -> String)?
        let setter: ((String) -> Int32?)?
        init(key: String, ino: UInt64, writable: Bool, stored: String, get: (() -> String)?, set: ((String) -> Int32?)?) {
            self.key = key; self.ino = ino; self.writable = writable; self.stored = stored; self.getter = get; self.setter = set
        }
        var value: String { getter?() ?? stored }
        /// A value of integers (one or a vector): writes must be too.
        lazy var numeric: Bool = SysctlTable.isNumeric(value)
        /// Needed to write, beyond the mode.
        var capability: Int { key.hasPrefix("net/") ? Cap.netAdmin : Cap.sysAdmin }
    }

    private(set) var entries: [String: Entry] = [:]
    private var nextIno: UInt64 = 0x5000_0000

    /// net.ipv4.ip_unprivileged_port_start: ports below it need CAP_NET_BIND_SERVICE.
    var unprivilegedPortStart = 1024
    /// fs.nr_open: RLIMIT_NOFILE's ceiling.
    var nrOpen = 1_048_576
    /// fs.pipe-max-size: the largest F_SETPIPE_SZ without CAP_SYS_RESOURCE.
    var pipeMaxSize = 1_048_576

    init(kernel k: Kernel) {
        func ro(_ key: String, _ v: @escaping () -> String) { add(key, writable: false, stored: "", get: v, set: nil) }
        func rw(_ key: String, _ v: String) { add(key, writable: true, stored: v, get: nil, set: nil) }
        func name(_ set: @escaping ([UInt8]) -> Void) -> (String) -> Int32? {
            { s in
                let b = Array(s.utf8)
                if b.count > 64 { return EINVAL }
                set(b)
                return nil
            }
        }
        func ranged(_ key: String, _ v: String, _ range: ClosedRange<Int>) {
            add(key, writable: true, stored: v, get: nil, set: { [unowned self] s in
                guard let n = Int(s), range.contains(n) else { return EINVAL }
                self.entries[key]?.stored = String(n)
                return nil
            })
        }
        add("kernel/hostname", writable: true, stored: "", get: { String(decoding: (currentTask?.uts ?? k.rootUTS).hostname, as: UTF8.self) },
            set: name { (currentTask?.uts ?? k.rootUTS).hostname = $0 })
        add("kernel/domainname", writable: true, stored: "", get: { String(decoding: (currentTask?.uts ?? k.rootUTS).domainname, as: UTF8.self) },
            set: name { (currentTask?.uts ?? k.rootUTS).domainname = $0 })
        add("net/ipv4/ip_unprivileged_port_start", writable: true, stored: "", get: { [unowned self] in "\(self.unprivilegedPortStart)" },
            set: { [unowned self] s in
                guard let v = Int(s), v >= 0, v <= 65536 else { return EINVAL }
                self.unprivilegedPortStart = v
                return nil
            })
        ro("kernel/osrelease") { moatRelease }
        ro("kernel/ostype") { "Linux" }
        ro("kernel/version") { "#1 SMP moat" }
        ro("kernel/pid_max") { "\(k.pidMax)" }
        ro("kernel/ngroups_max") { "65536" }
        ro("kernel/cap_last_cap") { "\(Cap.last)" }
        ro("kernel/overflowuid") { "65534" }
        ro("kernel/overflowgid") { "65534" }
        ro("kernel/tainted") { "0" }
        ro("kernel/seccomp/actions_avail") { "kill_process kill_thread trap errno user_notif trace log allow" }
        rw("kernel/seccomp/actions_logged", "kill_process kill_thread trap errno user_notif trace log")
        // kernel.random: a full pool (the host's getrandom serves reads,
        // RNDGETENTCNT says the same), a fresh uuid each read, one boot_id.
        ro("kernel/random/entropy_avail") { "256" }
        ro("kernel/random/poolsize") { "256" }
        ro("kernel/random/uuid") { randomUUID() }
        let bootID = randomUUID()
        ro("kernel/random/boot_id") { bootID }
        // fs.nr_open, honoured: the ceiling of RLIMIT_NOFILE, and the
        // largest descriptor table a fork or unshare(CLONE_FILES) copies
        // (Linux's range: BITS_PER_LONG to INT_MAX rounded down to it).
        add("fs/nr_open", writable: true, stored: "", get: { [unowned self] in "\(self.nrOpen)" }, set: { [unowned self] s in
            guard let v = Int(s), v >= 64, v <= 2_147_483_584 else { return EINVAL }
            self.nrOpen = v
            return nil
        })
        ro("fs/aio-max-nr") { "\(aioMaxNr)" }
        ro("fs/aio-nr") { "\(AIOContexts.shared.total)" }
        // fs.pipe-max-size, honoured (F_SETPIPE_SZ without CAP_SYS_RESOURCE):
        // a write is rounded up as a pipe's size is (a power of two pages).
        add("fs/pipe-max-size", writable: true, stored: "", get: { [unowned self] in "\(self.pipeMaxSize)" }, set: { [unowned self] s in
            guard let v = UInt64(s), let size = Pipe.roundedSize(v) else { return EINVAL }
            self.pipeMaxSize = size
            return nil
        })
        // inotify's limits: max_queued_events honoured (the event past it
        // becomes IN_Q_OVERFLOW), the others presented (Linux's defaults).
        ranged("fs/inotify/max_queued_events", "16384", 0...Int(Int32.max))
        ranged("fs/inotify/max_user_instances", "128", 0...Int(Int32.max))
        ranged("fs/inotify/max_user_watches", "65536", 0...Int(Int32.max))
        // User namespaces alive at once (Kernel/UserNamespaces.swift):
        // Linux's default is half of kernel.threads-max.
        ranged("user/max_user_namespaces", "2097152", 0...Int(Int32.max))
        // The next SysV IPC id of each kind (CONFIG_CHECKPOINT_RESTORE):
        // -1 until written; the next object made takes it, if free, and
        // the value goes back to -1 (Syscalls/IPC.swift).
        // Per IPC namespace, as the limits below (Kernel/IPCNamespaces.swift).
        for (i, kind) in ["shm", "sem", "msg"].enumerated() {
            add("kernel/\(kind)_next_id", writable: true, stored: "", get: { "\((currentTask?.ipc ?? k.ipc).nextID[i])" }, set: { s in
                guard let v = Int32(s), v >= 0 else { return EINVAL }
                (currentTask?.ipc ?? k.ipc).nextID[i] = v
                return nil
            })
        }
        // kernel.ns_last_pid: the last pid given out in the caller's pid
        // namespace; a write makes the next fork there take the one after it.
        add("kernel/ns_last_pid", writable: true, stored: "", get: { "\(k.lastPid(inNamespaceOf: currentTask))" }, set: { s in
            guard let v = Int32(s), v >= 0, v <= k.pidMax else { return EINVAL }
            k.setLastPid(v, inNamespaceOf: currentTask)
            return nil
        })
        // The key quotas (Kernel/Keyrings.swift): keys and bytes per user, and for root.
        let keyLimits: [(String, ReferenceWritableKeyPath<KeyStore, Int>)] = [
            ("maxkeys", \.maxKeys), ("maxbytes", \.maxBytes), ("root_maxkeys", \.rootMaxKeys), ("root_maxbytes", \.rootMaxBytes)]
        for (name, path) in keyLimits {
            add("kernel/keys/\(name)", writable: true, stored: "", get: { "\(k.keyStore[keyPath: path])" }, set: { s in
                guard let v = Int(s), v >= 0, v <= Int(Int32.max) else { return EINVAL }
                k.keyStore[keyPath: path] = v
                return nil
            })
        }
        rw("kernel/keys/gc_delay", "300")
        // Yama's ptrace policy, honoured (Syscalls/PtraceYama.swift).
        add("kernel/yama/ptrace_scope", writable: true, stored: "", get: { "\(Yama.shared.scope)" }, set: { Yama.shared.setScope($0) })
        // Per-user pipe page limits: Linux's defaults (the Sentry does not
        // shrink pipes past them).
        rw("fs/pipe-user-pages-soft", "16384"); rw("fs/pipe-user-pages-hard", "0")
        // The IPC namespace's limits (SysV's and POSIX message queues'),
        // the caller's namespace's: honoured by Syscalls/IPC.swift and
        // MessageQueue.swift where Moat has the limit (shmmax, shmmni,
        // msgmni, the sets of kernel.sem, the mqueue ones), presented
        // otherwise. Linux's defaults, and its ranges for writes.
        for (key, _, range) in IPCNamespace.sysctlKeys {
            add(key, writable: true, stored: "", get: { (currentTask?.ipc ?? k.ipc).sysctl[key] ?? "" }, set: { raw in
                let v = SysctlTable.normalize(raw)
                if let r = range {
                    guard let n = Int(v), r.contains(n) else { return EINVAL }
                    (currentTask?.ipc ?? k.ipc).sysctl[key] = String(n)
                } else {
                    guard SysctlTable.isNumeric(v) else { return EINVAL }
                    (currentTask?.ipc ?? k.ipc).sysctl[key] = v
                }
                return nil
            })
        }
        // Core dumps (Kernel/CoreDump.swift) read these: the file's name
        // (Linux's default "core", at most 127 bytes kept, as its
        // CORENAME_MAX_SIZE) and whether ".PID" is added to a name without %p.
        add("kernel/core_pattern", writable: true, stored: "core", get: nil, set: { [unowned self] s in
            self.entries["kernel/core_pattern"]?.stored = String(decoding: Array(s.utf8).prefix(127), as: UTF8.self)
            return nil
        })
        rw("kernel/core_uses_pid", "0"); rw("kernel/core_pipe_limit", "0"); rw("fs/suid_dumpable", "0")
        rw("kernel/threads-max", "4194304"); rw("kernel/randomize_va_space", "2")
        // The lowest address mmap gives (MemoryManager.minAddr, Linux's default).
        ro("vm/mmap_min_addr") { "65536" }
        rw("vm/overcommit_memory", "0"); rw("vm/max_map_count", "65530"); rw("vm/swappiness", "60")
        rw("fs/file-max", "9223372036854775807")
        rw("net/core/somaxconn", "4096")
        rw("net/ipv4/ip_forward", "0")
        rw("net/ipv4/ping_group_range", "0\t2147483647")
        // The namespace's own. The sandbox's is set through the address
        // helper (CMoat/netconf.c): the host picks ephemeral ports from it
        // (only kept with --network host). A namespace made inside the
        // sandbox keeps its own (NetNamespace.portRange).
        add("net/ipv4/ip_local_port_range", writable: true, stored: "32768\t60999", get: { [unowned self] in
            if let n = currentTask?.ownNet, !n.isRoot { return "\(n.portRange.lowerBound)\t\(n.portRange.upperBound)" }
            return self.entries["net/ipv4/ip_local_port_range"]?.stored ?? ""
        }, set: { [unowned self] s in
            let f = s.split(separator: "\t")
            guard f.count == 2, let lo = Int32(f[0]), let hi = Int32(f[1]), lo >= 1, hi <= 65535, lo <= hi else { return EINVAL }
            if let n = currentTask?.ownNet, !n.isRoot {
                n.portRange = UInt16(lo)...UInt16(hi)
                return nil
            }
            if SentryNetwork.netconfFD >= 0 {
                var req = moat_netconf_req()
                req.op = MOAT_NETCONF_PORT_RANGE
                req.ports = (lo, hi)
                let e = -moat_netconf_call(SentryNetwork.netconfFD, &req)
                if e != 0 { return e }
            }
            self.entries["net/ipv4/ip_local_port_range"]?.stored = "\(lo)\t\(hi)"
            return nil
        })
        rw("net/ipv4/ip_local_reserved_ports", "")
        rw("net/ipv4/tcp_syncookies", "1")
        rw("net/ipv4/tcp_keepalive_time", "7200"); rw("net/ipv4/tcp_keepalive_intvl", "75")
        rw("net/ipv4/tcp_keepalive_probes", "9"); rw("net/ipv4/tcp_fin_timeout", "60")
        rw("net/ipv4/tcp_sack", "1"); rw("net/ipv4/tcp_recovery", "1")
        rw("net/ipv6/auto_flowlabels", "1"); rw("net/ipv6/bindv6only", "0")
        rw("net/ipv6/ip6frag_time", "60"); rw("net/ipv6/ip_nonlocal_bind", "0")
    }

    private func add(_ key: String, writable: Bool, stored: String, get: (() -> String)?, set: ((String) -> Int32?)?) {
        entries[key] = Entry(key: key, ino: nextIno, writable: writable, stored: stored, get: get, set: set)
        nextIno += 1
    }

    /// A value from the configuration (dotted key, as sysctl(8) and
    /// config.json write it). Returns an error message, or nil.
    func configure(_ dotted: String, _ value: String) -> String? {
        let comps = dotted.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard comps.count >= 2, comps.allSatisfy({ !$0.isEmpty && !$0.contains("/") && $0 != ".." }) else {
            return "sysctl \(dotted): not a sysctl key"
        }
        let key = comps.joined(separator: "/")
        guard let e = entries[key] else {
            let v = SysctlTable.normalize(value)
            guard ["kernel", "net", "vm", "fs"].contains(comps[0]) else {
                return "sysctl \(dotted): not supported (Moat presents kernel.*, net.*, vm.* and fs.* keys)"
            }
            add(key, writable: true, stored: v, get: nil, set: nil)
            return nil
        }
        if !e.writable {
            return e.value == SysctlTable.normalize(value) ? nil : "sysctl \(dotted): read-only in Moat (its value is \(e.value))"
        }
        if let code = write(e, value) { return "sysctl \(dotted)=\(value): \(String(cString: strerror(code)))" }
        return nil
    }

    /// Stores a value as written (the first line; a vector's fields
    /// separated by tabs); returns an errno or nil.
    func write(_ e: Entry, _ raw: String) -> Int32? {
        let line = String(raw.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        if let s = e.setter { return s(e.key.hasPrefix("kernel/") ? line : SysctlTable.normalize(line)) }
        let v = SysctlTable.normalize(line)
        if e.numeric && !SysctlTable.isNumeric(v) { return EINVAL }
        e.stored = v
        return nil
    }

    static func isNumeric(_ v: String) -> Bool {
        let f = v.split(separator: "\t")
        return !f.isEmpty && f.allSatisfy { Int64($0) != nil || UInt64($0) != nil }
    }

    /// Trailing newlines and spaces dropped; runs of blanks between fields
    /// become one tab, as the kernel prints vectors.
    static func normalize(_ s: String) -> String {
        let fields = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        return fields.joined(separator: "\t")
    }

    func names(under prefix: String) -> [(String, Bool, UInt64)] {
        var seen: [String: (Bool, UInt64)] = [:]
        for (k, e) in entries where k.hasPrefix(prefix) {
            let rest = k.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") {
                let d = String(rest[..<slash])
                if seen[d] == nil { seen[d] = (true, SysctlTable.dirIno(prefix + d)) }
            } else {
                seen[String(rest)] = (false, e.ino)
            }
        }
        return seen.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.0 < $1.0 }
    }

    static func dirIno(_ path: String) -> UInt64 {
        var h: UInt64 = 1469598103934665603
        for b in path.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        return 0x6000_0000 | (h & 0xfff_ffff)
    }
}

/// A /proc/sys file.
final class SysctlInode: Inode {
    let entry: SysctlTable.Entry
    unowned let table: SysctlTable
    init(_ e: SysctlTable.Entry, table: SysctlTable) {
        entry = e; self.table = table
        super.init(ino: e.ino, mode: S_IFREG_ | (e.writable ? 0o644 : 0o444), dev: 3)
    }
    override var cacheable: Bool { false }
    override var fsMagic: Int64 { 0x9fa0 }
    override var size: Int64 { 0 }
    override func open(_ t: Task, flags: Int32) -> Result<FileDescription, Errno> {
        if flags & O_ACCMODE != O_RDONLY {
            if !entry.writable || !t.creds.has(entry.capability) { return .failure(Errno(EACCES)) }
        }
        let f = SysctlFD(self, flags: flags)
        f.watchName()
        return .success(f)
    }
}

/// An open /proc/sys file: each read sees the value of that moment (a
/// pread after a pwrite on the same fd reads what was written, as Linux's
/// handlers format the value per read); a write sets it (the whole value
/// in one write, as the kernel takes it).
final class SysctlFD: FileDescription {
    let node: SysctlInode
    var data: [UInt8] { Array((node.entry.value + "\n").utf8) }
    init(_ n: SysctlInode, flags: Int32) {
        node = n
        super.init(flags: flags, path: nil)
    }
    override func read(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        data.withUnsafeBytes { readFromBytes(t, $0, self, buf, count, off) }
    }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if (off ?? offset) != 0 { return err(EINVAL) }
        if count > 4096 { return err(EINVAL) }
        guard let b = t.copyIn(buf, count) else { return err(EFAULT) }
        if let code = node.table.write(node.entry, String(decoding: b, as: UTF8.self)) { return err(code) }
        if off == nil { offset += Int64(count) }
        return count
    }
    override func truncate(_ size: Int64) -> Int { 0 }
    override func fileSize() -> Int64 { Int64(data.count) }

    /// kernel.hostname and kernel.domainname: the opener's UTS namespace
    /// and the changes of the name seen so far (none for other keys).
    private lazy var uts: UTSNamespace? = {
        guard node.entry.key == "kernel/hostname" || node.entry.key == "kernel/domainname" else { return nil }
        return currentTask?.uts
    }()
    private lazy var seen: UInt64 = changes
    /// Takes the namespace and the count at open.
    func watchName() { _ = seen }
    private var changes: UInt64 {
        guard let u = uts else { return 0 }
        return node.entry.key == "kernel/hostname" ? u.hostnameChanges : u.domainnameChanges
    }
    /// Readable and writable always; after a change of the name since the
    /// last report, POLLERR and POLLPRI too, once (Linux's proc_sys_poll).
    override func readiness() -> Int16 {
        var r = Int32(pollReadable | pollWritable)
        if uts != nil && changes != seen {
            seen = changes
            r |= POLLERR | POLLPRI
        }
        return Int16(r)
    }
    override func addWaiter(_ t: Waiter) { uts?.pollers.add(t) }
    override func removeWaiter(_ t: Waiter) { uts?.pollers.remove(t) }
    override func wakeups() -> UInt64 { uts?.pollers.wakeups ?? 0 }
}

extension Kernel {
    /// The /proc/sys directory at `prefix` ("" for /proc/sys itself).
    func procSysDir(_ prefix: String) -> ProcNode {
        let k = self
        let table = sysctl
        return ProcNode(kernel: k, ino: prefix.isEmpty ? 35 : SysctlTable.dirIno(String(prefix.dropLast())), mode: S_IFDIR_ | 0o555,
                        lookup: { _, n in
                            let name = String(decoding: n, as: UTF8.self)
                            if name.isEmpty || name.contains("/") { return nil }
                            if let e = table.entries[prefix + name] { return SysctlInode(e, table: table) }
                            if table.entries.keys.contains(where: { $0.hasPrefix(prefix + name + "/") }) { return k.procSysDir(prefix + name + "/") }
                            return nil
                        },
                        list: { _ in table.names(under: prefix).map { DirEntry(ino: $0.2, type: $0.1 ? 4 : 8, name: Array($0.0.utf8)) } })
    }
}

/// A random (version 4) UUID in its text form, as /proc/sys/kernel/random/uuid gives.
private func randomUUID() -> String {
    var b = [UInt8](repeating: 0, count: 16)
    _ = b.withUnsafeMutableBytes { getrandom($0.baseAddress!, 16, 0) }
    b[6] = b[6] & 0x0f | 0x40
    b[8] = b[8] & 0x3f | 0x80
    let h = b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
    return h[0..<4].joined() + "-" + h[4..<6].joined() + "-" + h[6..<8].joined() + "-" + h[8..<10].joined() + "-" + h[10..<16].joined()
}
