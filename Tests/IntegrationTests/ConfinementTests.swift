// The privilege table of the README ("Security"), checked on running
// sandboxes with `moat debug`: the Sentry and its stubs run as the
// sandbox's own unprivileged host id (a different one per sandbox), in
// their own mount namespace with an empty root, with no capability, an empty bounding set, no-new-privs and seccomp;
// the launcher that stays alive keeps only CAP_KILL, under no-new-privs and its own seccomp filter.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Sentry and stub confinement (moat debug)")
struct ConfinementTests {
    struct Proc { var pid: Int32 = 0; var ppid: Int32 = 0; var role = ""; var fields: [String: String] = [:]; var fds: [String] = [] }

    /// Parses `moat debug` output: "pid N (ppid M): ROLE" then "  key: value" / "  key value" lines.
    static func parse(_ text: String) -> [Proc] {
        var out: [Proc] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("pid ") {
                var p = Proc()
                if let r = line.range(of: "): ") { p.role = String(line[r.upperBound...]) }
                p.pid = Int32(line.dropFirst(4).prefix { $0 != " " }) ?? 0
                if let r = line.range(of: "(ppid ") { p.ppid = Int32(line[r.upperBound...].prefix { $0 != ")" }) ?? 0 }
                out.append(p)
            } else if line.hasPrefix("    "), let r = line.range(of: " -> "), !out.isEmpty {
                out[out.count - 1].fds.append(String(line[r.upperBound...]))
            } else if line.hasPrefix("  "), !line.hasPrefix("    "), !out.isEmpty {
                let t = line.trimmingCharacters(in: .whitespaces)
                let key = String(t.prefix { $0 != " " && $0 != ":" })
                out[out.count - 1].fields[key] = t
            }
        }
        return out
    }

    /// The "Key: value" fields of one thread's /proc/PID/task/TID/status:
    /// ids and capabilities are per thread, so confinement is read per thread.
    static func threadStatus(_ pid: Int32, _ tid: String) throws -> [String: String] {
        let status = try String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)
        var f: [String: String] = [:]
        for line in status.split(separator: "\n") {
            let kv = line.split(separator: ":", maxSplits: 1)
            if kv.count == 2 { f[String(kv[0])] = kv[1].trimmingCharacters(in: .whitespaces) }
        }
        return f
    }

    /// The Sentry of the `moat run` whose pid is `launcher`: its child
    /// running `moat sentry`. Picked by its parent, not only by its label,
    /// so that nothing else of the sandbox (the address helper, a fork of
    /// the Sentry that confines itself early in the Sentry's start) can
    /// stand in for it while it is still starting.
    static func sentry(_ procs: [Proc], launcher: Int32) -> Proc? {
        procs.first { $0.role == "Sentry" && $0.ppid == launcher }
    }

    /// Whether the Sentry of `launcher` has loaded its seccomp filter, the
    /// last step of its confinement (its ids and capabilities go before).
    static func sentryConfined(_ procs: [Proc], launcher: Int32) -> Bool {
        sentry(procs, launcher: launcher)?.fields["seccomp"]?.hasPrefix("seccomp: filter") == true
    }

    /// The network address helper (Sources/CMoat/netconf.c) of a sandbox
    /// with a network namespace of its own, once the Sentry is confined: the
    /// Sentry's child, CAP_NET_ADMIN alone in every set, its seccomp filter
    /// and no-new-privs, and a host id of its own (the sandbox's id +
    /// MOAT_NETCONF_ID_OFFSET, 0x800000), not root.
    static func checkAddressHelper(_ procs: [Proc], sentry: Proc) throws {
        let helpers = procs.filter { $0.role.hasPrefix("address helper") }
        try #require(helpers.count == 1, "not one address helper in:\n\(procs.map { "\($0.pid) (ppid \($0.ppid)) \($0.role)" })")
        let h = helpers[0]
        #expect(h.ppid == sentry.pid, "the address helper's parent is \(h.ppid), not the Sentry \(sentry.pid)")
        #expect(h.fields["caps"] == "caps: eff 0000000000001000 prm 0000000000001000 bnd 0000000000001000", "address helper: \(h.fields["caps"] ?? "")")
        #expect(h.fields["seccomp"]?.hasPrefix("seccomp: filter") == true && h.fields["seccomp"]?.hasSuffix("no_new_privs: 1") == true,
                "address helper: \(h.fields["seccomp"] ?? "")")
        let sid = try #require(uids(sentry).first.flatMap { UInt32($0) })
        let want = String(sid + 0x0080_0000)
        #expect(uids(h) == [want, want, want, want], "address helper runs as \(h.fields["uid"] ?? "?"), not \(want)")
        #expect(h.fields["uid"]?.hasSuffix("gid \(want)\t\(want)\t\(want)\t\(want)") == true, "address helper: \(h.fields["uid"] ?? "?")")
        #expect(h.fields["root"] == "root: not the host's (empty)", "address helper: \(h.fields["root"] ?? "")")
        // Its socketpair with the Sentry, its netlink socket and the port
        // range sysctl (its path as seen from outside the helper's detached
        // /proc), nothing else: not the application's stdio.
        #expect(h.fds.filter { $0.hasPrefix("socket:") }.count == 2 && h.fds.count == 3
                && h.fds.contains { $0.hasSuffix("/sys/net/ipv4/ip_local_port_range") }, "address helper fds: \(h.fds)")
    }

    /// Real, effective, saved and file-system uid from "uid A\tB\tC\tD  gid ...".
    static func uids(_ p: Proc) -> [String] {
        guard let f = p.fields["uid"] else { return [] }
        return f.dropFirst(4).prefix { $0 != " " || true }.split(separator: " ").first.map { $0.split(separator: "\t").map(String.init) } ?? []
    }

    @Test func sentryAndStubsHoldNothingOfTheHost() async throws {
        guard Integration.isRoot else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true", "CI=true: this test needs root")
            return
        }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        var launchers: [Process] = []
        defer { for p in launchers where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        for _ in 0..<2 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: moat)
            p.arguments = ["run", "--rootfs", rootfs, "--", "sleep", "30"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            launchers.append(p)
        }
        var sentryUIDs: [String] = []
        for l in launchers {
            var procs: [Proc] = []
            // The application runs once there are stubs and the Sentry has
            // finished confining itself (its seccomp filter is the last step;
            // stubs are cloned earlier, while the Sentry starts).
            for _ in 0..<100 {
                let r = await runProcess([moat, "debug", "\(l.processIdentifier)"], env: Integration.hostEnvironment(), timeout: 30)
                procs = Self.parse(r.stdoutText)
                // A stub holds a Sentry file only while an injected mmap
                // maps it (the vDSO's memfd, an ELF): wait that out too; a
                // descriptor that stays is what the check below must catch.
                if procs.contains(where: { $0.role.hasPrefix("stub") }),
                   Self.sentryConfined(procs, launcher: l.processIdentifier),
                   procs.contains(where: { $0.role.hasPrefix("launcher") && $0.fields["seccomp"]?.hasPrefix("seccomp: filter") == true }),
                   procs.filter({ $0.role.hasPrefix("stub") }).allSatisfy({ $0.fds.allSatisfy { $0 == "anon_inode:[pidfd]" } }) { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let sentry = try #require(Self.sentry(procs, launcher: l.processIdentifier), "no Sentry (child of \(l.processIdentifier)) in:\n\(procs)")
            #expect(procs.filter { $0.role == "Sentry" }.count == 1, "more than one process is labelled Sentry: \(procs.map(\.role))")
            try Self.checkAddressHelper(procs, sentry: sentry)
            let stubs = procs.filter { $0.role.hasPrefix("stub") }
            try #require(!stubs.isEmpty, "no stub")
            let uid = try #require(Self.uids(sentry).first)
            #expect(uid != "0")
            sentryUIDs.append(uid)
            for p in [sentry] + stubs {
                #expect(Self.uids(p) == [uid, uid, uid, uid], "\(p.role) runs as another id: \(p.fields["uid"] ?? "")")
                #expect(p.fields["namespaces"]?.contains("own ") == true && p.fields["namespaces"]?.contains("mnt") == true
                        && !(p.fields["namespaces"]?.split(separator: ";").last?.contains("mnt") ?? true),
                        "\(p.role) shares the host's mount namespace: \(p.fields["namespaces"] ?? "")")
                #expect(p.fields["root"] == "root: not the host's (empty)", "\(p.role): \(p.fields["root"] ?? "")")
                #expect(p.fields["caps"]?.contains("bnd 0000000000000000") == true, "\(p.role): \(p.fields["caps"] ?? "")")
                #expect(p.fields["seccomp"]?.hasPrefix("seccomp: filter") == true && p.fields["seccomp"]?.hasSuffix("no_new_privs: 1") == true,
                        "\(p.role): \(p.fields["seccomp"] ?? "")")
            }
            for s in [sentry] + stubs { #expect(s.fields["caps"]?.hasPrefix("caps: eff 0000000000000000 prm 0000000000000000") == true) }
            // moat debug reads the process's first thread; ids and
            // capabilities are per thread, so every thread is read too (the
            // stub factory's thread, started before confinement, once kept
            // host root and the launcher's capabilities).
            for p in [sentry] + stubs {
                let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p.pid)/task")) ?? []
                #expect(!tasks.isEmpty, "\(p.role): no threads under /proc/\(p.pid)/task")
                for t in tasks {
                    guard let f = try? Self.threadStatus(p.pid, t) else { continue }
                    let ids = f["Uid"]?.split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init) ?? []
                    #expect(ids == [uid, uid, uid, uid], "\(p.role) thread \(t) runs as \(f["Uid"] ?? "?")")
                    for k in ["CapEff", "CapPrm", "CapBnd"] {
                        #expect(f[k] == "0000000000000000", "\(p.role) thread \(t): \(k) \(f[k] ?? "?")")
                    }
                    #expect(f["NoNewPrivs"] == "1" && f["Seccomp"] == "2", "\(p.role) thread \(t): NoNewPrivs \(f["NoNewPrivs"] ?? "?") Seccomp \(f["Seccomp"] ?? "?")")
                }
            }
            // Every descriptor accounted for: a stub holds only its pidfd; the
            // Sentry holds channels (sockets, pipes, event and memory fds),
            // its stdio, its network namespace's /proc files and files the
            // Gofer donated from inside the root, never another host file.
            for st in stubs { #expect(st.fds.allSatisfy { $0 == "anon_inode:[pidfd]" }, "a stub holds more than its pidfd: \(st.fds)") }
            let unexpected = sentry.fds.filter { t in
                if t.hasPrefix("socket:") || t.hasPrefix("pipe:") || t.hasPrefix("anon_inode:") || t.hasPrefix("/memfd:") || t == "/dev/null" { return false }
                if t.range(of: #"^/[0-9]+/net/"#, options: .regularExpression) != nil { return false }
                return !FileManager.default.fileExists(atPath: rootfs + t)
            }
            #expect(unexpected.isEmpty, "the Sentry holds host files from outside the root: \(unexpected)")
            // The launcher that stays alive: CAP_KILL (bit 5) and nothing
            // else in any set, no-new-privs, its seccomp allow-list.
            let launcher = try #require(procs.first { $0.role.hasPrefix("launcher") }, "no launcher in:\n\(procs)")
            #expect(launcher.fields["caps"] == "caps: eff 0000000000000020 prm 0000000000000020 bnd 0000000000000020",
                    "launcher: \(launcher.fields["caps"] ?? "")")
            #expect(launcher.fields["seccomp"]?.hasPrefix("seccomp: filter") == true && launcher.fields["seccomp"]?.hasSuffix("no_new_privs: 1") == true,
                    "launcher: \(launcher.fields["seccomp"] ?? "")")
        }
        #expect(Set(sentryUIDs).count == 2, "two sandboxes share a host id: \(sentryUIDs)")
    }

    /// `moat run` forks its Gofer from the launcher instead of re-executing
    /// the binary (Sandbox.spawn): it must come out exactly as confined as a
    /// re-executed one (MOAT_SPAWN=exec), with none of the launcher's
    /// environment in its memory. The Sentry is re-executed either way, so
    /// that its layout tells nothing of the others', and every `moat run`
    /// must still get its own randomized layout.
    @Test func forkedGoferMatchesReexecutedOneAndSentryHasItsOwnLayout() async throws {
        guard Integration.isRoot else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true", "CI=true: this test needs root")
            return
        }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let secret = "moat-secret-" + UUID().uuidString
        struct Sandbox { var launcher: Int32; var procs: [Proc]; var pids: [String: Int32] }
        var launchers: [Process] = []
        defer { for p in launchers where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        func start(_ extraEnv: [String: String]) async throws -> Sandbox {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: moat)
            p.arguments = ["run", "--rootfs", rootfs, "--", "sleep", "30"]
            p.environment = ProcessInfo.processInfo.environment.merging(extraEnv) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            launchers.append(p)
            var text = "", last = ""
            for _ in 0..<100 {
                text = await runProcess([moat, "debug", "\(p.processIdentifier)"], env: Integration.hostEnvironment(), timeout: 30).stdoutText
                let procs = Self.parse(text)
                // Settled: everything confined, no stub holding a file an
                // injected mmap is mapping, and the Sentry's and the Gofer's
                // view the same twice in a row (a file the application is
                // loading is open in them for a moment).
                let view = procs.filter { $0.role == "Sentry" || $0.role.hasPrefix("Gofer") }.map { "\($0.role) \($0.fields.sorted { $0.key < $1.key }) \($0.fds)" }.sorted().joined(separator: "\n")
                if procs.contains(where: { $0.role.hasPrefix("stub") }),
                   Self.sentryConfined(procs, launcher: p.processIdentifier),
                   procs.contains(where: { $0.role.hasPrefix("Gofer") && $0.fields["seccomp"]?.hasPrefix("seccomp: filter") == true }),
                   procs.contains(where: { $0.role.hasPrefix("launcher") && $0.fields["seccomp"]?.hasPrefix("seccomp: filter") == true }),
                   procs.filter({ $0.role.hasPrefix("stub") }).allSatisfy({ $0.fds.allSatisfy { $0 == "anon_inode:[pidfd]" } }),
                   view == last { break }
                last = view
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            // "pid N (ppid M): ROLE" -> ROLE's pid
            var pids: [String: Int32] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("pid ") {
                let pid = Int32(line.dropFirst(4).prefix { $0 != " " }) ?? 0
                if let r = line.range(of: "): ") { pids[String(line[r.upperBound...].prefix { $0 != " " })] = pid }
            }
            return Sandbox(launcher: p.processIdentifier, procs: Self.parse(text), pids: pids)
        }
        /// All of a /proc file (Foundation's readers stop at the first
        /// page of files that report size 0).
        func procFile(_ path: String) -> String? {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var out: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                out += chunk[0..<n]
            }
            return String(decoding: out, as: UTF8.self)
        }
        /// Where the first mapping of the moat binary (or of its companion,
        /// moat-sandbox, which runs sandbox processes when installed) starts in `pid`.
        func base(_ pid: Int32) -> String? {
            guard let maps = procFile("/proc/\(pid)/maps") else { return nil }
            return maps.split(separator: "\n").first { $0.hasSuffix("/moat") || $0.hasSuffix("/moat-sandbox") }.map { String($0.prefix { $0 != "-" }) }
        }
        /// Whether `needle` occurs in any readable private mapping of `pid`.
        func memoryHolds(_ pid: Int32, _ needle: String) throws -> Bool {
            let maps = try #require(procFile("/proc/\(pid)/maps"))
            let fd = open("/proc/\(pid)/mem", O_RDONLY)
            try #require(fd >= 0, "cannot open /proc/\(pid)/mem: errno \(errno)")
            defer { close(fd) }
            let n = Array(needle.utf8)
            var readSome = false
            for line in maps.split(separator: "\n") {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= 2, f[1].hasPrefix("r"), f[1].hasSuffix("p") else { continue }
                let r = f[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
                guard r.count == 2, r[1] - r[0] <= 256 << 20 else { continue }
                var buf = [UInt8](repeating: 0, count: Int(r[1] - r[0]))
                let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(r[0])) }
                guard got > 0 else { continue }
                readSome = true
                let hit = buf.withUnsafeBytes { b in
                    n.withUnsafeBytes { nb -> Bool in
                        // memchr for the first byte, memcmp for the rest
                        // (Glibc's module does not export memmem).
                        var at = 0
                        while at + n.count <= got, let p = memchr(b.baseAddress! + at, Int32(n[0]), got - n.count + 1 - at) {
                            if memcmp(p, nb.baseAddress!, n.count) == 0 { return true }
                            at = p - UnsafeMutableRawPointer(mutating: b.baseAddress!) + 1
                        }
                        return false
                    }
                }
                if hit { return true }
            }
            try #require(readSome, "read none of \(pid)'s memory")
            return false
        }
        func confinement(_ s: Sandbox, _ role: String) throws -> [String] {
            let p = try #require(role == "Sentry" ? Self.sentry(s.procs, launcher: s.launcher) : s.procs.first { $0.role.hasPrefix(role) },
                                 "no \(role) in \(s.procs.map(\.role))")
            // ids differ per sandbox (the Sentry's is derived from its pid);
            // what must match is everything else, and the kinds of fds (in
            // no particular order: the Sentry's network set-up opens its
            // files on a thread of its own while the main thread opens others).
            let fds = p.fds.map { $0.replacingOccurrences(of: #"\[[0-9]+\]|[0-9]+"#, with: "N", options: .regularExpression) }
            return ["caps", "seccomp", "namespaces", "root", "uid_map"].map { p.fields[$0] ?? "-" } + fds.sorted()
        }
        let forked = try await start(["MOAT_TEST_SECRET": secret])
        let execed = try await start(["MOAT_TEST_SECRET": secret, "MOAT_SPAWN": "exec"])
        for role in ["Sentry", "Gofer"] {
            let f = try confinement(forked, role), e = try confinement(execed, role)
            #expect(f == e, "\(role): forked and re-executed differ:\n\(f)\n\(e)")
            let pid = try #require(forked.pids[role])
            // Forked: the launcher's layout; re-executed: a layout of its own.
            if role == "Gofer" {
                #expect(base(pid) != nil && base(pid) == base(forked.launcher), "the Gofer was not forked from its launcher")
            } else {
                #expect(base(pid) != nil && base(pid) != base(forked.launcher), "the Sentry shares its launcher's layout (forked)")
            }
            #expect(try #require(execed.pids[role]).description != "" && base(execed.pids[role]!) != base(execed.launcher))
            let environ = procFile("/proc/\(pid)/environ") ?? ""
            #expect(environ.split(separator: "\0").sorted().map(String.init).filter { !$0.hasPrefix("MOAT_STARTUP=") }
                    == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "\(role)'s environment is not the one an exec gives")
            #expect(try !memoryHolds(pid, secret), "the forked \(role)'s memory holds the launcher's environment")
            let cmdline = procFile("/proc/\(pid)/cmdline") ?? ""
            #expect(cmdline.split(separator: "\0").prefix(2) == ["moat", Substring(role.lowercased())], "\(role)'s cmdline: \(cmdline)")
        }
        // The launcher itself holds the secret (the test is able to fail).
        #expect(try memoryHolds(forked.launcher, secret))
        // ASLR: two `moat run`s, two layouts.
        #expect(base(forked.launcher) != base(execed.launcher), "two launchers share one layout")
    }

    /// The long-lived daemons (Sandbox/DaemonConfinement.swift): the
    /// supervisor of `moat run -d` and `moat cri` keep only the capabilities
    /// sandbox starts need, the node agent and the API server only the few
    /// they use (the same set in every thread, bounding set included, so no
    /// child regains more), no-new-privs, and a seccomp deny-list; and the
    /// supervisor can still restart its container.
    @Test func daemonsKeepOnlyWhatSandboxStartsNeed() async throws {
        guard Integration.isRoot else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true", "CI=true: this test needs root")
            return
        }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let dir = try Integration.makeScratchDir(group: "confinement", name: "daemons")
        let env = Integration.hostEnvironment()
        var ids: [String] = []
        var daemons: [Process] = []
        defer {
            for id in ids { _ = runSync([moat, "rm", "-f", "--root", dir + "/moat", id], env: env, timeout: 60) }
            for c in daemons.reversed() where c.isRunning { kill(c.processIdentifier, SIGKILL); c.waitUntilExit() }
            _ = Integration.removeScratch(dir)
        }
        /// Capabilities no daemon may hold (bit numbers): module loading, raw
        /// I/O, reboot, scheduling others, the clock, resource overrides, MAC, audit control,
        /// file capabilities, perf and bpf, immutable files, syslog.
        let forbidden: [(Int, String)] = [(9, "linux_immutable"), (16, "sys_module"), (17, "sys_rawio"), (20, "sys_pacct"),
                                          (22, "sys_boot"), (23, "sys_nice"), (24, "sys_resource"), (25, "sys_time"), (30, "audit_control"),
                                          (31, "setfcap"), (32, "mac_override"), (33, "mac_admin"), (34, "syslog"),
                                          (38, "perfmon"), (39, "bpf")]
        /// Every thread of `pid`: CapEff = CapPrm = CapBnd without a forbidden
        /// bit (exactly `keeps` when given), seccomp filter mode, no-new-privs.
        func checkDaemon(_ pid: Int32, _ what: String, keeps: UInt64? = nil) async throws {
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
            try #require(!tasks.isEmpty, "\(what): no threads")
            for t in tasks {
                let f = try Self.threadStatus(pid, t)
                let bnd = try #require(f["CapBnd"].flatMap { UInt64($0, radix: 16) }, "\(what) thread \(t): \(f)")
                #expect(f["CapEff"] == f["CapBnd"] && f["CapPrm"] == f["CapBnd"], "\(what) thread \(t): eff \(f["CapEff"] ?? "?") prm \(f["CapPrm"] ?? "?") bnd \(f["CapBnd"] ?? "?")")
                let held = forbidden.filter { bnd & (1 << UInt64($0.0)) != 0 }.map(\.1)
                #expect(held.isEmpty, "\(what) thread \(t) may still use \(held) (CapBnd \(f["CapBnd"] ?? "?"))")
                if let k = keeps {
                    #expect(bnd == k, "\(what) thread \(t): CapBnd \(f["CapBnd"] ?? "?"), not \(String(k, radix: 16))")
                } else {
                    #expect(bnd & (1 << 21) != 0, "\(what): without sys_admin it cannot start a sandbox")
                }
                #expect(f["Seccomp"] == "2", "\(what) thread \(t): Seccomp \(f["Seccomp"] ?? "?")")
                #expect(f["NoNewPrivs"] == "1", "\(what) thread \(t): NoNewPrivs \(f["NoNewPrivs"] ?? "?")")
            }
            // moat debug shows it.
            let d = await runProcess([moat, "debug", "\(pid)"], env: env, timeout: 60).stdoutText
            let first = Self.parse(d).first
            #expect(first?.fields["seccomp"]?.hasPrefix("seccomp: filter") == true && first?.fields["seccomp"]?.hasSuffix("no_new_privs: 1") == true, "\(what): \(d)")
            let named = keeps == nil ? "sys_admin" : keeps! & (1 << 21) != 0 ? "sys_admin" : keeps! == 1 << 10 ? "net_bind_service" : nil
            if let n = named {
                #expect(first?.fields["bounding"]?.contains(n) == true && first?.fields["bounding"]?.contains("sys_module") == false, "\(what): \(d)")
            }
        }
        func record(_ id: String) -> [String: Any] {
            guard let data = FileManager.default.contents(atPath: dir + "/moat/standalone/\(id)/record.json"),
                  let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return o
        }

        // The supervisor of a running sandbox.
        let run = await runProcess([moat, "run", "-d", "--root", dir + "/moat", "--rootfs", rootfs, "--", "sleep", "60"], env: env, timeout: 120)
        try #require(run.exitStatus == 0, "moat run -d: \(run.stderrText)")
        let id = run.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        ids.append(id)
        let supervisor = try #require((record(id)["supervisorPid"] as? NSNumber)?.int32Value, "no supervisor in \(record(id))")
        try await checkDaemon(supervisor, "the supervisor")

        // A foreground `moat run` with a record (--name) supervises in its
        // own process: it execs itself into `standalone-supervise
        // --foreground` (same pid, its threads gone) and is confined alike.
        let fg = Process()
        fg.executableURL = URL(fileURLWithPath: moat)
        fg.arguments = ["run", "--root", dir + "/moat", "--name", "fg", "--rootfs", rootfs, "--", "sleep", "60"]
        fg.standardOutput = FileHandle.nullDevice
        fg.standardError = FileHandle.nullDevice
        try fg.run()
        daemons.append(fg)
        var fgRecord: [String: Any] = [:]
        for _ in 0..<600 where fgRecord["state"] as? String != "running" && fg.isRunning {
            let ids = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/moat/standalone")) ?? []
            fgRecord = ids.map(record).first { $0["name"] as? String == "fg" } ?? [:]
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        try #require(fg.isRunning && fgRecord["state"] as? String == "running", "moat run --name did not start: \(fgRecord)")
        if let fid = fgRecord["id"] as? String { ids.append(fid) }
        #expect((fgRecord["supervisorPid"] as? NSNumber)?.int32Value == fg.processIdentifier, "the foreground supervisor is moat run's own process: \(fgRecord)")
        try await checkDaemon(fg.processIdentifier, "the foreground supervisor")
        kill(fg.processIdentifier, SIGTERM)

        // Restarting needs what starting did: a container that fails twice
        // is restarted twice by its confined supervisor.
        let failing = await runProcess([moat, "run", "-d", "--root", dir + "/moat", "--restart", "on-failure:2", "--rootfs", rootfs, "--", "sh", "-c", "sleep 1; exit 3"],
                                       env: env, timeout: 120)
        try #require(failing.exitStatus == 0, "moat run -d --restart: \(failing.stderrText)")
        let fid = failing.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        ids.append(fid)
        var r: [String: Any] = [:]
        for _ in 0..<600 {
            r = record(fid)
            if (r["restarts"] as? NSNumber)?.intValue == 2, r["state"] as? String == "exited" { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect((r["restarts"] as? NSNumber)?.intValue == 2 && (r["exitCode"] as? NSNumber)?.intValue == 3 && r["error"] == nil,
                "the confined supervisor did not restart its container: \(r)")

        // moat cri.
        let c = Process()
        c.executableURL = URL(fileURLWithPath: moat)
        c.arguments = ["cri", "--listen", "unix://\(dir)/cri.sock", "--root", dir + "/cri-root", "--state", dir + "/cri-state"]
        c.standardOutput = FileHandle.nullDevice
        c.standardError = FileHandle.nullDevice
        try c.run()
        daemons.append(c)
        for _ in 0..<600 where access(dir + "/cri.sock", F_OK) != 0 && c.isRunning { try await Task.sleep(nanoseconds: 50_000_000) }
        try #require(c.isRunning && access(dir + "/cri.sock", F_OK) == 0, "moat cri did not start (status \(c.isRunning ? 0 : c.terminationStatus))")
        try await checkDaemon(c.processIdentifier, "moat cri")

        // The API server, as `moat server` starts it: its cluster DNS on a
        // port below 1024 keeps net_bind_service and nothing else.
        func start(_ args: [String], until ready: String?) async throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: moat)
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            daemons.append(p)
            for _ in 0..<1200 where ready.map({ access($0, F_OK) != 0 }) ?? false && p.isRunning { try await Task.sleep(nanoseconds: 50_000_000) }
            try #require(p.isRunning && ready.map({ access($0, F_OK) == 0 }) ?? true, "\(args[0]) did not start (status \(p.isRunning ? 0 : p.terminationStatus))")
            return p
        }
        /// A UDP port below 1024 nothing on 127.0.0.1 uses now.
        func freeLowPort() throws -> Int {
            for port in stride(from: 1000, to: 900, by: -1) {
                let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                defer { close(fd) }
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = in_port_t(UInt16(port)).bigEndian
                a.sin_addr.s_addr = inet_addr("127.0.0.1")
                let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                if r == 0 { return port }
            }
            throw CocoaError(.featureUnsupported)
        }
        let api = dir + "/api.sock"
        let cp = try await start(["controlplane", "--listen", "127.0.0.1:0", "--local-socket", api, "--data-dir", dir + "/store",
                                  "--leader-elect", "false", "--dns-listen", "127.0.0.1:\(try freeLowPort())"], until: api)
        try await checkDaemon(cp.processIdentifier, "moat controlplane", keeps: 1 << 10)

        // The node agent, registered with that API server and using moat cri:
        // dac_override, fowner, net_bind_service, net_admin, sys_ptrace, sys_admin.
        let nodeCaps: UInt64 = 1 << 1 | 1 << 3 | 1 << 10 | 1 << 12 | 1 << 19 | 1 << 21
        let node = try await start(["node", "--server", "unix://" + api, "--cri", "unix://\(dir)/cri.sock", "--name", "confined",
                                    "--root", dir + "/node", "--log-directory", dir + "/pod-logs", "--port", "0"], until: nil)
        // Registered: its Node is in the store (the agent got that far confined).
        var registered = false
        for _ in 0..<600 where !registered && node.isRunning {
            let r = await runProcess(["/usr/bin/curl", "-sf", "--unix-socket", api, "http://localhost/api/v1/nodes/confined"], env: env, timeout: 10)
            registered = r.exitStatus == 0
            if !registered { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(registered && node.isRunning, "the confined node agent did not register its Node")
        try await checkDaemon(node.processIdentifier, "moat node", keeps: nodeCaps)
    }

    /// With moat-sandbox installed next to moat (Sources/Sandbox/Launch.swift),
    /// a `moat run`'s launcher, Gofer and Sentry run it and none of them maps
    /// moat; with MOAT_SANDBOX_BINARY=self they run moat, as without it.
    @Test func sandboxProcessesRunTheCompanionBinary() async throws {
        guard Integration.isRoot else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true", "CI=true: this test needs root")
            return
        }
        let rootfs = try Integration.rootfs.get()
        let moat = try Integration.moatBinary.get()
        let real = URL(fileURLWithPath: moat).resolvingSymlinksInPath().path
        let companion = real + "-sandbox"
        guard FileManager.default.isExecutableFile(atPath: companion) else {
            try #require(ProcessInfo.processInfo.environment["CI"] != "true",
                         "CI=true: no \(companion) (swift build --product moat-sandbox)")
            return
        }
        for (env, want) in [([:], companion), (["MOAT_SANDBOX_BINARY": "self"], real)] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: moat)
            p.arguments = ["run", "--rootfs", rootfs, "--", "sleep", "30"]
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            var procs: [Proc] = []
            for _ in 0..<100 {
                procs = Self.parse(await runProcess([moat, "debug", "\(p.processIdentifier)"], env: Integration.hostEnvironment(), timeout: 30).stdoutText)
                if procs.contains(where: { $0.role == "Sentry" }), procs.contains(where: { $0.role.hasPrefix("Gofer") }),
                   procs.contains(where: { $0.role.hasPrefix("stub") }) { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let roles = ["launcher", "Gofer", "Sentry"]
            for role in roles {
                let proc = try #require(procs.first { $0.role.hasPrefix(role) }, "\(env): no \(role) in \(procs.map(\.role))")
                let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(proc.pid)/exe")
                #expect(exe == want, "\(env): the \(role) runs \(exe ?? "?"), not \(want)")
                let maps = (try? String(contentsOfFile: "/proc/\(proc.pid)/maps", encoding: .utf8)) ?? ""
                let other = want == companion ? real : companion
                #expect(!maps.split(separator: "\n").contains { $0.hasSuffix(" " + other) }, "\(env): the \(role) maps \(other)")
            }
        }
    }
}
