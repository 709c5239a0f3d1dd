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
    struct Proc { var role = ""; var fields: [String: String] = [:]; var fds: [String] = [] }

    /// Parses `moat debug` output: "pid N (ppid M): ROLE" then "  key: value" / "  key value" lines.
    static func parse(_ text: String) -> [Proc] {
        var out: [Proc] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("pid ") {
                var p = Proc()
                if let r = line.range(of: "): ") { p.role = String(line[r.upperBound...]) }
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
                   procs.contains(where: { $0.role == "Sentry" && $0.fields["seccomp"]?.hasPrefix("seccomp: filter") == true }),
                   procs.contains(where: { $0.role.hasPrefix("launcher") && $0.fields["seccomp"]?.hasPrefix("seccomp: filter") == true }),
                   procs.filter({ $0.role.hasPrefix("stub") }).allSatisfy({ $0.fds.allSatisfy { $0 == "anon_inode:[pidfd]" } }) { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let sentry = try #require(procs.first { $0.role == "Sentry" }, "no Sentry in:\n\(procs)")
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
}
