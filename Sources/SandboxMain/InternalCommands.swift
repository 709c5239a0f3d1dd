// The commands of a sandbox's own processes: `moat sentry`, `moat gofer`
// and `moat launch` (a `moat run` launcher that moved into the companion
// binary: Sandbox/Launch.swift). Both executables run them: `moat`, and
// `moat-sandbox`, which links nothing else. Moat writes their command lines
// itself (Sandbox/InternalArguments.swift parses them). The Gofer of `moat
// run` is a fork of the launcher that calls main here.

import Glibc
import Gofer
import OCI
import Sandbox
import Sentry

public enum InternalCommand {
    /// Runs `moat sentry|gofer|launch ARGS` (argv without "moat") and never returns.
    public static func main(_ argv: ArraySlice<String>) -> Never {
        let name = argv.first ?? ""
        do throws(InternalArguments.Failure) {
            switch name {
            case "sentry": try sentry(argv.dropFirst())
            case "gofer": try gofer(argv.dropFirst())
            case "launch": try launch(argv.dropFirst())
            default: throw InternalArguments.Failure(message: "not a command of a sandbox process (sentry, gofer, launch): \(name)")
            }
        } catch {
            let line = "moat \(name): \(error.message)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            Glibc.exit(64)
        }
    }

    static func sentry(_ args: ArraySlice<String>) throws(InternalArguments.Failure) -> Never {
        let a = try InternalArguments(args, options: ["gofer-fd", "log-fd", "cwd", "user", "hostname", "env", "oci-config-fd",
                                                      "network", "add-host", "dns", "egress-fd", "netns", "caps", "sysctl", "cgroup",
                                                      "platform", "control-fd", "ready-fd"],
                                      flags: ["strace", "debug", "overlay", "upper-on-disk", "pod", "detached"])
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
        c.overlay = a.has("overlay"); c.upperOnDisk = a.has("upper-on-disk")
        c.network = NetworkMode(rawValue: a.string("network") ?? "host") ?? .host
        c.addHosts = a.list("add-host"); c.dns = a.list("dns"); c.egressFD = try a.int32("egress-fd", -1)
        c.networkNamespacePath = a.string("netns")
        if let s = a.string("caps"), let m = UInt64(s, radix: 16) {
            c.capabilities = CapabilitySets(bounding: m, effective: m, permitted: m, inheritable: 0, ambient: 0)
        }
        func pairs(_ option: String) -> [(String, String)] {
            a.list(option).compactMap { s in
                guard let eq = s.firstIndex(of: "=") else { return nil }
                return (String(s[..<eq]), String(s[s.index(after: eq)...]))
            }
        }
        c.sysctl = pairs("sysctl")
        c.cgroupFiles = pairs("cgroup")
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

    /// `moat run`'s launcher (Sandbox.launch) in the companion binary.
    static func launch(_ args: ArraySlice<String>) throws(InternalArguments.Failure) -> Never {
        let o = try RunOptions(launchArguments: args)
        if getenv("MOAT_SPAWN").map({ String(cString: $0) }) != "exec" {
            Sandbox.internalMain = { InternalCommand.main($0.dropFirst()) }
        }
        Glibc.exit(Sandbox.run(o))
    }

    static func gofer(_ args: ArraySlice<String>) throws(InternalArguments.Failure) -> Never {
        let a = try InternalArguments(args, options: ["root", "fd", "sentry", "state"], flags: ["read-only", "non-recursive", "detached", "debug", "zygote", "scratch"])
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
                  recursive: !a.has("non-recursive"), scratch: a.has("scratch")) { StartupProfile.mark("gofer", $0) }
    }
}
