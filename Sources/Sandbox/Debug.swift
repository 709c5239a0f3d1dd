// `moat debug`: what each host process of a sandbox can reach, read from
// /proc, so anyone can check Moat's least-privilege claims (README,
// "Security") on a running system instead of taking them on trust.
//
// For each process: its role, uid/gid and their user-namespace maps, which
// namespaces it shares with the host (pid 1), whether its root is the
// host's root and what that root holds, its capability sets, seccomp mode,
// no-new-privs and every open fd.

import Glibc

public enum SandboxDebug {
    /// The pids a name refers to: a pid, or an OCI container id (its state
    /// under `ociRoot`), and every descendant of those.
    public static func resolve(_ name: String, ociRoot: String = "/run/moat") -> Result<[Int32], DebugError> {
        var roots: [Int32] = []
        if let p = Int32(name), p > 0 {
            roots = [p]
        } else if let b = slurp("\(ociRoot)/\(name)/state.json"), let p = jsonInt(b, key: "pid"), p > 0 {
            roots = [Int32(p)]
        } else {
            return .failure(DebugError(message: "no process or container named \(name) (give a pid, or an OCI container id under \(ociRoot))"))
        }
        if roots.contains(where: { access("/proc/\($0)", F_OK) != 0 }) {
            return .failure(DebugError(message: "process \(roots[0]) of \(name) is not running"))
        }
        return .success(withDescendants(roots))
    }

    /// Every process whose executable is this binary or its companion
    /// (Launch.swift), or that runs as a
    /// sandbox id (see MOAT_SANDBOX_ID_BASE): all of Moat on this host.
    public static func allMoatProcesses() -> [Int32] {
        return listPids().filter { p in
            if p == getpid() { return false }
            if let u = statusField(p, "Uid")?.split(separator: "\t").first, let uid = UInt32(u), uid >= 0x6d6f_0000, uid < 0x6d6f_0000 + 0x0100_0000 { return true }
            return readlinkString("/proc/\(p)/exe").map(Sandbox.isMoatExecutable) ?? false
        }
    }

    public struct DebugError: Error { public let message: String }

    /// The report: one block per process.
    public static func report(_ pids: [Int32]) -> String {
        // The host's view: pid 1's, or (when this runs where pid 1 is
        // hidden) this process's own, which runs on the host.
        let ref: Int32 = namespaces(1).isEmpty ? getpid() : 1
        let hostNS = namespaces(ref)
        let hostRoot = rootIdentity(ref)
        var out = ""
        for p in pids {
            // One read of status for every field below, so a process that
            // exits half-way through is either reported whole or not at all.
            guard let stat = slurp("/proc/\(p)/stat"), let status = slurp("/proc/\(p)/status") else { continue }
            func statusField(_ p: Int32, _ key: String) -> String? { Self.field(status, key) }
            let ppid = statField(stat, 4) ?? "?"
            var block = "pid \(p) (ppid \(ppid)): \(role(p))\n"
            block += "  uid \(statusField(p, "Uid") ?? "?")  gid \(statusField(p, "Gid") ?? "?")\n"
            block += "  uid_map \(mapLine(p, "uid_map"))  gid_map \(mapLine(p, "gid_map"))\n"
            let ns = namespaces(p)
            let shared = ns.filter { hostNS[$0.key] == $0.value }.keys.sorted()
            let own = ns.filter { hostNS[$0.key] != $0.value }.keys.sorted()
            block += "  namespaces: own \(own.isEmpty ? "none" : own.joined(separator: ",")); host's \(shared.isEmpty ? "none" : shared.joined(separator: ","))\n"
            let r = rootIdentity(p)
            let isHost = r != nil && r == hostRoot
            block += "  root: \(r == nil ? "unknown" : isHost ? "the host's /" : "not the host's") (\(rootEntries(p)))\n"
            block += "  caps: eff \(statusField(p, "CapEff") ?? "?") prm \(statusField(p, "CapPrm") ?? "?") bnd \(statusField(p, "CapBnd") ?? "?")\n"
            // Named when some but not all are held (a daemon's or a Gofer's kept set).
            if let m = UInt64(statusField(p, "CapBnd") ?? "", radix: 16), m != 0, m & 0x1ff_ffff_ffff != 0x1ff_ffff_ffff {
                block += "  bounding set: \(Capability.shortNames(m))\n"
            }
            let seccomp = ["0": "off", "1": "strict", "2": "filter"][statusField(p, "Seccomp") ?? ""] ?? "?"
            block += "  seccomp: \(seccomp) (filters: \(statusField(p, "Seccomp_filters") ?? "?"))  no_new_privs: \(statusField(p, "NoNewPrivs") ?? "?")\n"
            let fds = openFDs(p)
            block += "  fds (\(fds.count)):\(fds.isEmpty ? " none" : "")\n"
            for (n, t) in fds { block += "    \(n) -> \(t)\n" }
            // Gone while we looked: its namespaces, root and fds were not its own any more.
            if access("/proc/\(p)/stat", F_OK) != 0 { continue }
            out += block
        }
        return out
    }

    // MARK: /proc readers

    static func role(_ p: Int32) -> String {
        guard let b = slurp("/proc/\(p)/cmdline") else { return "?" }
        let args = b.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if args.count >= 2, args[0] == "moat" || args[0].hasSuffix("/moat") {
            switch args[1] {
            // The network address helper (CMoat/netconf.c) is a fork of the
            // Sentry and keeps its command line; it names itself.
            case "sentry" where slurp("/proc/\(p)/comm") == Array("moat-netconf\n".utf8): return "address helper (of the Sentry)"
            case "sentry": return "Sentry"
            case "gofer": return "Gofer (" + (args.firstIndex(of: "--root").map { args.count > $0 + 1 ? args[$0 + 1] : "" } ?? "") + ")"
            default: return "launcher: moat " + args.dropFirst().prefix(3).joined(separator: " ")
            }
        }
        // A stub holds only the stub page: its cmdline is the Sentry's.
        if let pp = statField(slurp("/proc/\(p)/stat") ?? [], 4), let ppid = Int32(pp), role(ppid) == "Sentry" { return "stub (address space)" }
        return args.prefix(3).joined(separator: " ")
    }

    static func namespaces(_ p: Int32) -> [String: String] {
        var out: [String: String] = [:]
        for n in ["mnt", "pid", "net", "user", "uts", "ipc", "cgroup"] {
            if let l = readlinkString("/proc/\(p)/ns/\(n)") { out[n] = l }
        }
        return out
    }

    /// The device and inode of a process's root directory.
    static func rootIdentity(_ p: Int32) -> [UInt64]? {
        var st = stat()
        guard stat("/proc/\(p)/root/", &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    static func rootEntries(_ p: Int32) -> String {
        guard let d = opendir("/proc/\(p)/root/") else { return "unreadable" }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let n = withUnsafePointer(to: e.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            if n != "." && n != ".." { names.append(n) }
        }
        if names.isEmpty { return "empty" }
        names.sort()
        return "\(names.count) entries: " + names.prefix(6).joined(separator: " ") + (names.count > 6 ? " ..." : "")
    }

    static func openFDs(_ p: Int32) -> [(Int, String)] {
        guard let d = opendir("/proc/\(p)/fd") else { return [] }
        defer { closedir(d) }
        var out: [(Int, String)] = []
        while let e = readdir(d) {
            let n = withUnsafePointer(to: e.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            guard let fd = Int(n) else { continue }
            out.append((fd, readlinkString("/proc/\(p)/fd/\(n)") ?? "?"))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    static func mapLine(_ p: Int32, _ file: String) -> String {
        guard let b = slurp("/proc/\(p)/\(file)") else { return "?" }
        let lines = String(decoding: b, as: UTF8.self).split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        if lines == ["0 0 4294967295"] { return "the host's" }
        return "[" + lines.joined(separator: "; ") + "]"
    }

    static func statusField(_ p: Int32, _ key: String) -> String? {
        slurp("/proc/\(p)/status").flatMap { field($0, key) }
    }

    /// A "Key:\tvalue" line of a /proc/PID/status text.
    static func field(_ b: [UInt8], _ key: String) -> String? {
        for line in String(decoding: b, as: UTF8.self).split(separator: "\n") where line.hasPrefix(key + ":") {
            return String(line.dropFirst(key.count + 1)).trimmingCharacters(in: " \t")
        }
        return nil
    }

    /// Field N (1-based, as in proc(5)) of /proc/PID/stat, N >= 2 after the name.
    static func statField(_ b: [UInt8], _ n: Int) -> String? {
        guard let close = b.lastIndex(of: UInt8(ascii: ")")), close + 2 < b.count else { return nil }
        let rest = b[(close + 2)...].split(separator: UInt8(ascii: " "))
        let i = n - 3
        return i >= 0 && i < rest.count ? String(decoding: rest[rest.startIndex + i], as: UTF8.self) : nil
    }

    static func listPids() -> [Int32] {
        guard let d = opendir("/proc") else { return [] }
        defer { closedir(d) }
        var out: [Int32] = []
        while let e = readdir(d) {
            let n = withUnsafePointer(to: e.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            if let p = Int32(n) { out.append(p) }
        }
        return out.sorted()
    }

    static func withDescendants(_ roots: [Int32]) -> [Int32] {
        var parent: [Int32: Int32] = [:]
        for p in listPids() {
            if let s = slurp("/proc/\(p)/stat"), let pp = statField(s, 4).flatMap({ Int32($0) }) { parent[p] = pp }
        }
        var out = roots
        var i = 0
        while i < out.count {
            let cur = out[i]
            for (c, pp) in parent where pp == cur && !out.contains(c) { out.append(c) }
            i += 1
        }
        return out
    }

    static func slurp(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[..<n]
        }
        return out
    }

    static func readlinkString(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buf, 4096)
        return n < 0 ? nil : String(cString: buf)
    }

    static func jsonInt(_ b: [UInt8], key: String) -> Int? {
        let pat = Array("\"\(key)\"".utf8)
        guard b.count >= pat.count else { return nil }
        for i in 0...(b.count - pat.count) where Array(b[i..<(i + pat.count)]) == pat {
            let rest = b[(i + pat.count)...].drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: ":") }
            let digits = rest.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            return Int(String(decoding: digits, as: UTF8.self))
        }
        return nil
    }
}
