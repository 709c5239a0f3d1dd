// --memory, --cpus and --pids-limit: a cgroup per standalone sandbox
// (v2: /sys/fs/cgroup/moat-standalone/ID; v1: that path under the memory,
// cpu and pids controllers). The supervisor joins it only while it starts
// the Sentry and the Gofers, so they (and the Sentry's stubs) are inside
// and the supervisor is not: an OOM kill takes the sandbox, never the
// process that records its end and cleans up.

import Glibc

struct SandboxCgroup {
    static let base = "/sys/fs/cgroup"
    static var isV2: Bool { access(base + "/cgroup.controllers", F_OK) == 0 }
    let dirs: [String]
    let previous: [String]

    /// Makes the cgroup with the spec's limits and moves this process in;
    /// nil when the spec asks for no limit.
    /// The limits as cgroup v2 files: what the host cgroup gets on a v2
    /// host, and what the sandbox's own /sys/fs/cgroup shows on any.
    static func v2Files(_ spec: SandboxSpec) -> [(String, String)] {
        var f: [(String, String)] = []
        if let m = spec.memoryBytes { f.append(("memory.max", String(m))) }
        if let c = spec.cpus { f.append(("cpu.max", "\(quota(c)) 100000")) }
        if let p = spec.pidsLimit { f.append(("pids.max", p <= 0 ? "max" : String(p))) }
        return f
    }
    /// --cpus as a CFS quota per 100 ms period (at least Linux's 1 ms).
    static func quota(_ cpus: Double) -> Int { max(1000, Int(cpus * 100_000)) }

    static func enter(id: String, _ spec: SandboxSpec) throws -> SandboxCgroup? {
        guard spec.memoryBytes != nil || spec.cpus != nil || spec.pidsLimit != nil else { return nil }
        let rel = "/moat-standalone/" + id
        var settings: [(controller: String, file: String, value: String)] = []
        let v2 = isV2
        if v2 {
            settings = v2Files(spec).map { (String($0.0.prefix { $0 != "." }), $0.0, $0.1) }
        } else {
            if let m = spec.memoryBytes { settings.append(("memory", "memory.limit_in_bytes", String(m))) }
            if let c = spec.cpus {
                settings.append(("cpu", "cpu.cfs_period_us", "100000")); settings.append(("cpu", "cpu.cfs_quota_us", String(quota(c))))
            }
            if let p = spec.pidsLimit { settings.append(("pids", "pids.max", p <= 0 ? "max" : String(p))) }
        }
        var dirs: [String] = []
        if v2 {
            _ = writeText(base + "/cgroup.subtree_control", "+memory +cpu +pids")
            mkdir(base + "/moat-standalone", 0o755)
            _ = writeText(base + "/moat-standalone/cgroup.subtree_control", "+memory +cpu +pids")
            dirs = [base + rel]
        } else {
            for c in Set(settings.map { $0.controller }).sorted() {
                guard access(base + "/" + c, F_OK) == 0 else { throw StandaloneError.failed("cannot limit \(c): the cgroup v1 \(c) controller is not mounted") }
                mkdir(base + "/" + c + "/moat-standalone", 0o755)
                dirs.append(base + "/" + c + rel)
            }
        }
        for d in dirs where mkdir(d, 0o755) != 0 && errno != EEXIST {
            throw StandaloneError.failed("cannot make the cgroup \(d): \(String(cString: strerror(errno))) (limits need root)")
        }
        let cg = SandboxCgroup(dirs: dirs, previous: current(dirs))
        for s in settings {
            let d = v2 ? dirs[0] : base + "/" + s.controller + rel
            guard writeText(d + "/" + s.file, s.value) else {
                let e = errno
                cg.remove()
                throw StandaloneError.failed("cannot set \(s.file)=\(s.value): \(String(cString: strerror(e)))")
            }
        }
        for d in dirs where !writeText(d + "/cgroup.procs", String(getpid())) {
            let e = errno
            cg.remove()
            throw StandaloneError.failed("cannot join the cgroup \(d): \(String(cString: strerror(e)))")
        }
        return cg
    }

    /// This process's cgroups in the hierarchies of `dirs`.
    /// The directories `enter` makes for `id` (those that exist).
    static func paths(id: String) -> [String] {
        let rel = "/moat-standalone/" + id
        let all = isV2 ? [base + rel] : ["memory", "cpu", "pids"].map { base + "/" + $0 + rel }
        return all.filter { access($0, F_OK) == 0 }
    }

    static func current(_ dirs: [String]) -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return [] }
        var out: [String] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 3 else { continue }
            if isV2 { if f[0] == "0" { out.append(base + f[2]) } } else {
                for c in f[1].split(separator: ",") where dirs.contains(where: { $0.hasPrefix(base + "/" + c + "/") }) {
                    out.append(base + "/" + c + f[2])
                }
            }
        }
        return out
    }

    /// Moves this process into the cgroup: the processes it starts until
    /// `leave` (the Sentry, the Gofers) are born inside.
    func join() {
        for d in dirs { _ = SandboxCgroup.writeText(d + "/cgroup.procs", String(getpid())) }
    }

    /// Moves this process back where it was: the supervisor stays outside
    /// the limits, or the OOM killer could pick it instead of the sandbox.
    func leave() {
        for p in previous { _ = SandboxCgroup.writeText(p + "/cgroup.procs", String(getpid())) }
    }

    /// Leaves the cgroup, kills what is left in it and removes it. A killed
    /// process leaves the cgroup only when it has exited, which under memory
    /// pressure (an OOM kill in progress) takes seconds: wait up to 10 s.
    func remove() {
        leave()
        for d in dirs {
            for _ in 0..<500 {
                if rmdir(d) == 0 || errno == ENOENT {
                    // The shared parent goes with its last sandbox (fails while others use it).
                    rmdir(String(d[..<d.lastIndex(of: "/")!]))
                    break
                }
                if let procs = try? String(contentsOfFile: d + "/cgroup.procs", encoding: .utf8) {
                    for p in procs.split(separator: "\n").compactMap({ Int32($0) }) where p != getpid() { kill(p, SIGKILL) }
                }
                usleep(20_000)
            }
        }
    }

    static func writeText(_ path: String, _ s: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        let b = Array(s.utf8)
        return b.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == b.count
    }
}
