// `moat sentry` and `moat gofer`: the Gofer and the Sentry of every sandbox
// (Sandbox.run, the OCI runtime, pods), re-executions of this binary or, for
// `moat run`'s Gofer, a fork of the launcher that calls main here. Moat writes
// their command lines itself, so they are parsed here by hand rather than by
// ArgumentParser, whose command tree costs every start milliseconds of
// type-metadata and protocol-conformance lookups (the start-up profile,
// Sentry/StartupProfile.swift, showed it as the largest part of "main").
// A malformed command line is still a clear error (exit 64, as a usage error).

import Glibc
import Gofer
import OCI
import Sandbox
import Sentry

/// `--name value`, `--name=value`, flags `--name`, repeatable options; the
/// command starts after `--` or at the first word that is not an option.
struct InternalArguments {
    private var values: [String: [String]] = [:]
    private var flags: Set<String> = []
    private(set) var command: [String] = []

    struct Failure: Error { let message: String }

    init(_ args: ArraySlice<String>, options: Set<String>, flags known: Set<String>) throws(Failure) {
        var i = args.startIndex
        while i < args.endIndex {
            let a = args[i]
            if a == "--" { command = Array(args[(i + 1)...]); return }
            guard a.hasPrefix("--") else { command = Array(args[i...]); return }
            var name = String(a.dropFirst(2))
            var value: String? = nil
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if known.contains(name) && value == nil {
                flags.insert(name)
            } else if options.contains(name) {
                if value == nil {
                    i += 1
                    guard i < args.endIndex else { throw Failure(message: "missing value for --\(name)") }
                    value = args[i]
                }
                values[name, default: []].append(value!)
            } else {
                throw Failure(message: "unknown option \(a)")
            }
            i += 1
        }
    }

    func has(_ flag: String) -> Bool { flags.contains(flag) }
    func string(_ name: String) -> String? { values[name]?.last }
    func list(_ name: String) -> [String] { values[name] ?? [] }
    func int32(_ name: String, _ fallback: Int32) throws(Failure) -> Int32 {
        guard let s = string(name) else { return fallback }
        guard let v = Int32(s) else { throw Failure(message: "--\(name): not a number: \(s)") }
        return v
    }
}

enum InternalCommand {
    /// Runs `moat sentry|gofer ARGS` (argv without "moat") and never returns.
    static func main(_ argv: ArraySlice<String>) -> Never {
        let name = argv.first ?? ""
        do {
            if name == "sentry" { try sentry(argv.dropFirst()) } else { try gofer(argv.dropFirst()) }
        } catch {
            let line = "moat \(name): \(error.message)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            Glibc.exit(64)
        }
    }

    static func sentry(_ args: ArraySlice<String>) throws(InternalArguments.Failure) -> Never {
        let a = try InternalArguments(args, options: ["gofer-fd", "log-fd", "cwd", "user", "hostname", "env", "oci-config-fd",
                                                      "network", "add-host", "dns", "egress-fd", "netns", "caps", "sysctl",
                                                      "platform", "control-fd", "ready-fd"],
                                      flags: ["strace", "debug", "overlay", "pod", "detached"])
        if a.has("detached") { SentryPlan.detachFromLauncher() }
        let planFD = try a.int32("oci-config-fd", -1)
        if planFD >= 0 {
            do { Glibc.exit(SentryMain.run(try SentryPlan.read(fd: planFD))) } catch {
                throw .init(message: "sentry plan: \(error)")
            }
        }
        var c = SentryConfig()
        c.goferFD = try a.int32("gofer-fd", 3); c.logFD = try a.int32("log-fd", -1)
        c.strace = a.has("strace"); c.debug = a.has("debug")
        c.cwd = a.string("cwd") ?? "/"; c.env = a.list("env")
        c.hostname = a.string("hostname") ?? "moat"
        c.overlay = a.has("overlay")
        c.network = NetworkMode(rawValue: a.string("network") ?? "host") ?? .host
        c.addHosts = a.list("add-host"); c.dns = a.list("dns"); c.egressFD = try a.int32("egress-fd", -1)
        c.networkNamespacePath = a.string("netns")
        if let s = a.string("caps"), let m = UInt64(s, radix: 16) {
            c.capabilities = CapabilitySets(bounding: m, effective: m, permitted: m, inheritable: 0, ambient: 0)
        }
        c.sysctl = a.list("sysctl").compactMap { s in
            guard let eq = s.firstIndex(of: "=") else { return nil }
            return (String(s[..<eq]), String(s[s.index(after: eq)...]))
        }
        c.fastPath = a.string("platform") != "ptrace" && a.string("platform") != "kvm"
        c.kvm = a.string("platform") == "kvm"
        c.controlFD = try a.int32("control-fd", -1)
        c.readyFD = try a.int32("ready-fd", -1)
        if a.has("pod") { Glibc.exit(SentryMain.runPod(c)) }
        let parts = (a.string("user") ?? "0:0").split(separator: ":")
        c.uid = UInt32(parts.first ?? "0") ?? 0
        c.gid = UInt32(parts.count > 1 ? parts[1] : "0") ?? 0
        c.argv = a.command
        Glibc.exit(SentryMain.run(c))
    }

    static func gofer(_ args: ArraySlice<String>) throws(InternalArguments.Failure) -> Never {
        let a = try InternalArguments(args, options: ["root", "fd", "sentry", "state"], flags: ["read-only", "non-recursive", "detached", "debug", "zygote"])
        if a.has("detached") { SentryPlan.detachFromLauncher() }
        // --debug: the start-up profile on stderr (the launcher passes it
        // only when its stderr is Moat's log).
        if a.has("debug") { StartupProfile.log(to: 2) }
        // A pod's zygote (Sandbox/GoferZygote.swift): forks the pod's Gofers,
        // which run the code below in the child.
        if a.has("zygote") {
            guard let sentry = a.string("sentry") else { throw .init(message: "missing --sentry") }
            StartupProfile.mark("gofer zygote", "main (re-exec); serving")
            Sandbox.internalMain = { InternalCommand.main($0.dropFirst()) }
            GoferZygote.serve(listenFD: try a.int32("fd", 3), sentry: sentry)
        }
        guard let root = a.string("root") else { throw .init(message: "missing --root") }
        StartupProfile.mark("gofer", "main (forked, or re-exec: dynamic loading, Swift runtime; arguments)")
        Gofer.run(root: root, socketFD: try a.int32("fd", 3), readOnly: a.has("read-only"),
                  recursive: !a.has("non-recursive")) { StartupProfile.mark("gofer", $0) }
    }
}
