// Resource limits for a sandbox's host processes (Sentry, stubs, Gofer)
// through cgroups: the unified hierarchy (v2) when /sys/fs/cgroup is one,
// else the v1 controllers memory, cpu, cpuacct, cpuset, blkio, devices,
// pids, freezer, hugetlb, net_cls and net_prio (those mounted). The application's own view of cgroups is not
// emulated (CONFORMANCE.md).

import Glibc
import Sentry

public struct Cgroups {
    static let base = "/sys/fs/cgroup"
    static let v1Controllers = ["memory", "cpu", "cpuacct", "cpuset", "blkio", "devices", "pids", "freezer", "hugetlb", "net_cls", "net_prio"]

    /// Devices the sandbox's host processes may always open, after the
    /// config's rules: the launcher's /dev/null, the pty of a terminal,
    /// and the usual character devices (runc allows the same).
    static let sandboxDevices: [Spec.DeviceRule] = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, nil)].map {
        Spec.DeviceRule(allow: true, type: "c", major: $0.0, minor: $0.1, access: "rwm")
    }

    public static var isV2: Bool { access(base + "/cgroup.controllers", F_OK) == 0 }

    /// The relative cgroup path for a container: linux.cgroupsPath when it
    /// is a plain path, else /moat/<id>. systemd "slice:prefix:name" paths
    /// (from engines configured for the systemd driver) are mapped to a
    /// plain path, as Moat manages cgroupfs directly.
    static func relativePath(_ spec: Spec, id: String) -> String {
        guard let p = spec.linux?.cgroupsPath, !p.isEmpty else { return "/moat/" + id }
        if p.contains(":") {
            let parts = p.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            let slice = parts[0].isEmpty ? "moat.slice" : parts[0]
            return "/" + slice + "/" + (parts.count > 2 ? "\(parts[1])-\(parts[2]).scope" : id)
        }
        return p.hasPrefix("/") ? p : "/moat/" + p
    }

    /// Creates the container's cgroup directories and applies the limits.
    /// Returns the directories made (to join and to remove at delete).
    static func create(_ rel: String, _ r: Spec.Resources?) throws -> [String] {
        var dirs: [String] = []
        if isV2 {
            let d = base + rel
            try mkdirAll(d, mode: 0o755)
            dirs = [d]
            // Enable the controllers we write along the path (best effort).
            var cur = base
            for comp in rel.split(separator: "/") {
                for c in ["+memory", "+cpu", "+pids", "+cpuset", "+io", "+hugetlb"] { _ = writeFile(cur + "/cgroup.subtree_control", c) }
                cur += "/" + comp
            }
        } else {
            for c in v1Controllers where access(base + "/" + c, F_OK) == 0 {
                let d = base + "/" + c + rel
                if c == "cpuset" { try makeCpusetDirs(base + "/cpuset", rel) } else { try mkdirAll(d, mode: 0o755) }
                dirs.append(d)
            }
        }
        do { try apply(dirs, r) } catch { remove(dirs); throw error }
        return dirs
    }

    /// A v1 cpuset directory admits no process until it has cpus and mems:
    /// each level inherits its parent's. A level that exists but is still
    /// empty is filled too: another runtime may have just made it (two
    /// concurrent creates of the first containers under a new parent).
    static func makeCpusetDirs(_ root: String, _ rel: String) throws {
        var cur = root
        for comp in rel.split(separator: "/") {
            let parent = cur
            cur += "/" + comp
            if mkdir(cur, 0o755) != 0 && errno != EEXIST {
                throw RuntimeError("cannot create \(cur): \(String(cString: strerror(errno)))")
            }
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let own = readFile(cur + "/" + f).map { String(decoding: $0, as: UTF8.self) } ?? ""
                if own.allSatisfy({ $0.isWhitespace }), let v = readFile(parent + "/" + f) { _ = writeFile(cur + "/" + f, String(decoding: v, as: UTF8.self)) }
            }
        }
    }

    /// cgroup v2's cpu.weight for v1 cpu.shares, as runc converts them.
    static func cpuWeight(shares s: UInt64) -> UInt64 { max(1, min(10000, 1 + ((max(s, 2) - 2) * 9999) / 262142)) }

    /// What the container's own cgroup shows inside the sandbox (the
    /// Sentry's cgroup2 file system: SentryConfig.cgroupFiles), as v2 files
    /// whatever the host's version: the limits a runc container would see
    /// in its cgroup namespace on a v2 host. Files of linux.resources.unified
    /// the Sentry does not present are left out.
    static func sandboxFiles(_ r: Spec.Resources?) -> [(String, String)] {
        guard let r else { return [] }
        var f: [(String, String)] = []
        if let m = r.memory {
            if let l = m.limit { f.append(("memory.max", l < 0 ? "max" : String(l))) }
            if let s = m.reservation { f.append(("memory.low", String(max(0, s)))) }
            if let s = m.swap, let l = m.limit { f.append(("memory.swap.max", s < 0 ? "max" : String(max(0, s - l)))) }
        }
        if let c = r.cpu {
            if c.quota != nil || c.period != nil {
                f.append(("cpu.max", "\(c.quota.map { $0 < 0 ? "max" : String($0) } ?? "max") \(c.period ?? 100000)"))
            }
            if let s = c.shares, s > 0 { f.append(("cpu.weight", String(cpuWeight(shares: s)))) }
            if let cpus = c.cpus, !cpus.isEmpty { f.append(("cpuset.cpus", cpus)) }
            if let mems = c.mems, !mems.isEmpty { f.append(("cpuset.mems", mems)) }
        }
        if let p = r.pids { f.append(("pids.max", p <= 0 ? "max" : String(p))) }
        for (k, v) in r.unified where sandboxCgroupLimitFiles.contains(k) { f.append((k, v)) }
        return f
    }

    static func apply(_ dirs: [String], _ r: Spec.Resources?) throws {
        guard let r else { return }
        func set(_ file: String, _ value: String) throws {
            guard let d = dirs.first(where: { access($0 + "/" + file, F_OK) == 0 }) else {
                throw RuntimeError("cannot set \(file): this cgroup hierarchy does not have it")
            }
            if !writeFile(d + "/" + file, value) {
                throw RuntimeError("cannot set \(file) to \(value): \(String(cString: strerror(errno)))")
            }
        }
        let v2 = dirs.count == 1 && isV2
        if let m = r.memory {
            if let l = m.limit { try set(v2 ? "memory.max" : "memory.limit_in_bytes", l < 0 ? (v2 ? "max" : "-1") : String(l)) }
            if let s = m.reservation { try set(v2 ? "memory.low" : "memory.soft_limit_in_bytes", String(s)) }
            if let s = m.swap, !v2 { try? set("memory.memsw.limit_in_bytes", String(s)) }
            if let s = m.swap, v2, let l = m.limit { try? set("memory.swap.max", s < 0 ? "max" : String(max(0, s - l))) }
            if !v2 {
                if let w = m.swappiness { try set("memory.swappiness", String(w)) }
                if m.disableOOMKiller == true { try set("memory.oom_control", "1") }
                // Kernel memory accounting is gone from Linux 6.x (the files
                // refuse writes, as they do for runc): best effort.
                if let k = m.kernel { try? set("memory.kmem.limit_in_bytes", String(k)) }
                if let k = m.kernelTCP { try? set("memory.kmem.tcp.limit_in_bytes", String(k)) }
            }
        }
        if let c = r.cpu {
            if v2 {
                if c.quota != nil || c.period != nil {
                    let q = c.quota.map { $0 < 0 ? "max" : String($0) } ?? "max"
                    try set("cpu.max", "\(q) \(c.period ?? 100000)")
                }
                if let s = c.shares, s > 0 { try set("cpu.weight", String(cpuWeight(shares: s))) }
            } else {
                if let p = c.period { try set("cpu.cfs_period_us", String(p)) }
                if let q = c.quota { try set("cpu.cfs_quota_us", String(q)) }
                if let s = c.shares { try set("cpu.shares", String(s)) }
                if let p = c.realtimePeriod { try set("cpu.rt_period_us", String(p)) }
                if let q = c.realtimeRuntime { try set("cpu.rt_runtime_us", String(q)) }
            }
            if let cpus = c.cpus, !cpus.isEmpty { try set("cpuset.cpus", cpus) }
            if let mems = c.mems, !mems.isEmpty { try set("cpuset.mems", mems) }
        }
        if let b = r.blockIO, !v2 {
            if let w = b.weight { try set("blkio.weight", String(w)) }
            if let w = b.leafWeight { try set("blkio.leaf_weight", String(w)) }
            for d in b.weightDevice {
                if let w = d.weight { try set("blkio.weight_device", "\(d.major):\(d.minor) \(w)") }
                if let w = d.leafWeight { try set("blkio.leaf_weight_device", "\(d.major):\(d.minor) \(w)") }
            }
            for (file, list) in [("blkio.throttle.read_bps_device", b.throttleReadBpsDevice),
                                 ("blkio.throttle.write_bps_device", b.throttleWriteBpsDevice),
                                 ("blkio.throttle.read_iops_device", b.throttleReadIOPSDevice),
                                 ("blkio.throttle.write_iops_device", b.throttleWriteIOPSDevice)] {
                for (major, minor, rate) in list { try set(file, "\(major):\(minor) \(rate)") }
            }
        }
        if let p = r.pids { try set("pids.max", p <= 0 ? "max" : String(p)) }
        // hugetlb and (v1) net_cls/net_prio: a controller the host lacks fails
        // create, as it does for runc, rather than being silently dropped.
        for (size, limit) in r.hugepageLimits { try set("hugetlb.\(size).\(v2 ? "max" : "limit_in_bytes")", String(limit)) }
        if let n = r.network, !v2 {
            if let c = n.classID { try set("net_cls.classid", String(c)) }
            for (iface, prio) in n.priorities { try set("net_prio.ifpriomap", "\(iface) \(prio)") }
        }
        // v1 device rules, in order, on the sandbox's host processes (the
        // app's devices are the Sentry's devfs: its syscalls never reach these).
        if !v2, !r.devices.isEmpty {
            for rule in r.devices + sandboxDevices {
                let line = "\(rule.type ?? "a") \(rule.major.map { String($0) } ?? "*"):\(rule.minor.map { String($0) } ?? "*") \(rule.access ?? "rwm")"
                try set(rule.allow ? "devices.allow" : "devices.deny", line)
            }
        }
        if v2 { for (k, v) in r.unified { try set(k, v) } }
    }

    /// Moves a process into every directory (v1: one per controller).
    static func join(_ dirs: [String], pid: Int32) throws {
        for d in dirs where !writeFile(d + "/cgroup.procs", String(pid)) {
            throw RuntimeError("cannot join cgroup \(d): \(String(cString: strerror(errno)))")
        }
    }

    /// The calling process's current cgroup directories for the same
    /// hierarchies, to return to after spawning the sandbox.
    static func current(like dirs: [String]) -> [String] {
        guard let b = readFile("/proc/self/cgroup") else { return [] }
        var out: [String] = []
        for line in String(decoding: b, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 3 else { continue }
            if isV2 && f[0] == "0" { out.append(base + f[2]) }
            if !isV2 {
                for c in f[1].split(separator: ",") where v1Controllers.contains(String(c)) {
                    if dirs.contains(where: { $0.hasPrefix(base + "/" + c + "/") }) { out.append(base + "/" + c + f[2]) }
                }
            }
        }
        return out
    }

    static func pids(_ dirs: [String]) -> [Int32] {
        guard let d = dirs.first, let b = readFile(d + "/cgroup.procs") else { return [] }
        return String(decoding: b, as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
    }

    /// Kills what is left and removes the directories, and Moat's own
    /// parents (under /moat, and /moat) once empty; engines' parents are theirs.
    static func remove(_ dirs: [String]) {
        for d in dirs {
            // Killed processes leave their cgroup only once the host has torn
            // them down, which on a loaded machine (stubs of a big address
            // space, a Sentry just killed) takes seconds: wait up to 10 s.
            for _ in 0..<1000 {
                if rmdir(d) == 0 || errno == ENOENT { break }
                if errno == EBUSY {
                    for p in pids([d]) { kill(p, SIGKILL) }
                    usleep(10_000)
                    continue
                }
                break
            }
            // Moat's own tree (/moat/..., where relative cgroupsPaths go): its
            // parents go too once empty, up to /moat; an engine's are theirs.
            var p = Substring(d)
            while let slash = p.lastIndex(of: "/") {
                p = p[..<slash]
                let ours = p.hasSuffix("/moat") || p.contains("/moat/")
                if !ours || rmdir(String(p)) != 0 || p.hasSuffix("/moat") { break }
            }
        }
    }

    public static func freeze(_ dirs: [String], _ frozen: Bool) throws {
        if isV2, let d = dirs.first {
            if !writeFile(d + "/cgroup.freeze", frozen ? "1" : "0") { throw RuntimeError("cannot \(frozen ? "freeze" : "thaw") \(d)") }
            return
        }
        guard let d = dirs.first(where: { $0.contains("/freezer/") }) else {
            throw RuntimeError("pause needs the freezer cgroup controller, which is not available")
        }
        if !writeFile(d + "/freezer.state", frozen ? "FROZEN" : "THAWED") { throw RuntimeError("cannot \(frozen ? "freeze" : "thaw") \(d)") }
    }

    static func readNumber(_ dirs: [String], _ file: String) -> UInt64? {
        for d in dirs {
            if let b = readFile(d + "/" + file) {
                let s = String(decoding: b, as: UTF8.self).trimmingCharacters(in: " \n")
                if let v = UInt64(s) { return v }
                if file == "cpu.stat", let l = s.split(separator: "\n").first(where: { $0.hasPrefix("usage_usec") }) {
                    return UInt64(l.split(separator: " ").last ?? "").map { $0 * 1000 }
                }
            }
        }
        return nil
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
