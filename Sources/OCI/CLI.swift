// runc's command line: `moat [global flags] COMMAND [flags] ARGS`. Global
// flags come before the command (engines call `moat --root R --log L
// --log-format json create ...`). Flags take `--name value`, `--name=value`
// or a single dash; parsing stops at the first argument that is not a flag.
//
// `moat run` is also Moat's own "run a command" (Sandbox); the OCI form is
// chosen when global flags were given, or when the arguments carry an OCI
// run flag (--bundle, --detach, ...) or are just a container id.

import Glibc
import Sentry

public enum OCICLI {
    static let commands: Set<String> = ["create", "start", "state", "kill", "delete", "run", "exec", "ps", "list",
                                        "spec", "features", "events", "pause", "resume", "update"]

    /// A flag: whether it takes a value; aliases map to the long name.
    struct FlagSet {
        var valued: Set<String> = []
        var bools: Set<String> = []
        var aliases: [String: String] = [:]
    }

    static let global = FlagSet(valued: ["root", "log", "log-format", "criu", "rootless"],
                                bools: ["debug", "systemd-cgroup", "help", "h", "version", "v"], aliases: [:])

    static let flagSets: [String: FlagSet] = [
        "create": FlagSet(valued: ["bundle", "pid-file", "console-socket", "preserve-fds"], bools: ["no-pivot", "no-new-keyring"],
                          aliases: ["b": "bundle"]),
        "run": FlagSet(valued: ["bundle", "pid-file", "console-socket", "preserve-fds"],
                       bools: ["detach", "no-pivot", "no-new-keyring", "keep", "no-subreaper"], aliases: ["b": "bundle", "d": "detach"]),
        "start": FlagSet(), "state": FlagSet(), "pause": FlagSet(), "resume": FlagSet(),
        "kill": FlagSet(valued: [], bools: ["all"], aliases: ["a": "all"]),
        "delete": FlagSet(valued: [], bools: ["force"], aliases: ["f": "force"]),
        "exec": FlagSet(valued: ["process", "pid-file", "console-socket", "cwd", "env", "user", "additional-gids",
                                 "process-label", "apparmor", "cap", "preserve-fds", "cgroup", "waiter-fd"],
                        bools: ["detach", "tty", "no-new-privs", "ignore-paused"],
                        aliases: ["p": "process", "d": "detach", "t": "tty", "e": "env", "u": "user", "g": "additional-gids", "c": "cap"]),
        "ps": FlagSet(valued: ["format"], bools: [], aliases: ["f": "format"]),
        "list": FlagSet(valued: ["format"], bools: ["quiet"], aliases: ["f": "format", "q": "quiet"]),
        "spec": FlagSet(valued: ["bundle"], bools: ["rootless"], aliases: ["b": "bundle"]),
        "features": FlagSet(),
        "events": FlagSet(valued: ["interval"], bools: ["stats"], aliases: [:]),
        "update": FlagSet(valued: ["resources", "memory", "memory-swap", "memory-reservation", "kernel-memory", "kernel-memory-tcp",
                                   "cpu-shares", "cpu-quota", "cpu-period", "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus",
                                   "cpuset-mems", "pids-limit", "blkio-weight", "l3-cache-schema", "mem-bw-schema"],
                          bools: [], aliases: ["r": "resources"]),
    ]

    struct Parsed {
        var flags: [String: [String]] = [:]
        var positional: [String] = []
        func value(_ k: String) -> String? { flags[k]?.last }
        func has(_ k: String) -> Bool {
            guard let v = flags[k]?.last else { return false }
            return v != "false"
        }
    }

    static func parse(_ args: ArraySlice<String>, _ set: FlagSet, stopAtPositional: Bool = true) throws -> (Parsed, ArraySlice<String>) {
        var p = Parsed()
        var rest = args
        while let a = rest.first {
            if a == "--" { rest.removeFirst(); p.positional += rest; return (p, []) }
            guard a.hasPrefix("-"), a.count > 1 else {
                if stopAtPositional { return (p, rest) }
                p.positional.append(a); rest.removeFirst(); continue
            }
            rest.removeFirst()
            var name = String(a.drop(while: { $0 == "-" }))
            var inline: String? = nil
            if let eq = name.firstIndex(of: "=") { inline = String(name[name.index(after: eq)...]); name = String(name[..<eq]) }
            name = set.aliases[name] ?? name
            if set.valued.contains(name) {
                let v: String
                if let i = inline { v = i } else {
                    guard let n = rest.first else { throw RuntimeError("flag needs an argument: --\(name)") }
                    v = n; rest.removeFirst()
                }
                p.flags[name, default: []].append(v)
            } else if set.bools.contains(name) {
                p.flags[name, default: []].append(inline ?? "true")
            } else {
                throw RuntimeError("flag provided but not defined: -\(name)")
            }
        }
        return (p, rest)
    }

    /// Whether `moat run ARGS` means the OCI `run` (else Moat's own).
    static func isOCIRun(_ args: ArraySlice<String>) -> Bool {
        if args.contains("--") { return false }
        let ociFlags = ["--bundle", "-b", "--detach", "-d", "--pid-file", "--console-socket", "--no-pivot", "--preserve-fds", "--keep"]
        if args.contains(where: { a in ociFlags.contains { a == $0 || a.hasPrefix($0 + "=") } }) { return true }
        let nonFlags = args.filter { !$0.hasPrefix("-") }
        return nonFlags.count == 1 && args.count == 1 && access("config.json", F_OK) == 0
    }

    /// Runs an OCI command and returns the exit status, or nil when `argv`
    /// is not an OCI invocation (Moat's own commands then parse it).
    public static func main(_ argv: [String]) -> Int32? {
        var rest = ArraySlice(argv.dropFirst())
        let globalFlags: Parsed
        do { (globalFlags, rest) = try parse(rest, global) } catch {
            _ = writeAll(2, Array("moat: \(error)\n".utf8)); return 1
        }
        guard let cmd = rest.first, commands.contains(cmd) else {
            if !globalFlags.flags.isEmpty, !globalFlags.has("help"), !globalFlags.has("version") {
                _ = writeAll(2, Array("moat: unknown command \(rest.first ?? "(none)")\n".utf8)); return 1
            }
            if globalFlags.has("version") {
                print("moat version 0.1\nspec: \(SpecTemplate.ociVersion)")
                return 0
            }
            return nil
        }
        rest.removeFirst()
        if cmd == "run" && globalFlags.flags.isEmpty && !isOCIRun(rest) { return nil }
        // A hook or a peer that goes away must give EPIPE, not kill us
        // halfway through a command (hooks get SIGPIPE back: Hooks.swift).
        signal(SIGPIPE, SIG_IGN)
        let logFormat = globalFlags.value("log-format") ?? "text"
        let rt = Runtime(root: globalFlags.value("root") ?? "/run/moat", logPath: globalFlags.value("log"),
                         logJSON: logFormat == "json", debug: globalFlags.has("debug"))
        if logFormat != "json" && logFormat != "text" {
            rt.log.error("invalid log format \"\(logFormat)\" (text or json)"); return 1
        }
        // --debug: the start-up profile (Sentry/StartupProfile.swift) goes to the log.
        if globalFlags.has("debug") { let log = rt.log; StartupProfile.sink = { log.debug("startup " + $0) } }
        StartupProfile.mark(cmd, "arguments parsed")
        defer { StartupProfile.mark(cmd, "done") }
        do {
            let (p, tail) = try parse(rest, flagSets[cmd]!)
            return try dispatch(rt, cmd, p, Array(tail))
        } catch let e as RuntimeError {
            rt.log.error(e.message)
            return e.code
        } catch {
            rt.log.error("\(error)")
            return 1
        }
    }

    static func needID(_ args: [String], _ cmd: String, extra: ClosedRange<Int> = 0...0) throws -> String {
        guard let id = args.first else { throw RuntimeError("\"\(cmd)\" requires a container id") }
        if !extra.contains(args.count - 1) { throw RuntimeError("\"\(cmd)\": unexpected arguments \(args.dropFirst().joined(separator: " "))") }
        return id
    }

    static func out(_ s: String) { _ = writeAll(1, Array(s.utf8)) }

    static func createOptions(_ p: Parsed, _ id: String) throws -> CreateOptions {
        var o = CreateOptions(id: id)
        o.bundle = p.value("bundle") ?? "."
        o.pidFile = p.value("pid-file")
        o.consoleSocket = p.value("console-socket")
        if let n = p.value("preserve-fds") {
            guard let v = Int(n), v >= 0, v < 1000 else { throw RuntimeError("--preserve-fds: invalid number \"\(n)\"") }
            o.preserveFDs = v
        }
        o.noPivot = p.has("no-pivot")
        return o
    }

    static func dispatch(_ rt: Runtime, _ cmd: String, _ p: Parsed, _ args: [String]) throws -> Int32 {
        switch cmd {
        case "create":
            var o = try createOptions(p, try needID(args, cmd))
            o.callerExits = true   // the command ends with create
            try rt.create(o)
        case "run":
            return try rt.run(try createOptions(p, try needID(args, cmd)), detach: p.has("detach"))
        case "start":
            try rt.start(try needID(args, cmd))
        case "state":
            out(try rt.state(try needID(args, cmd)) + "\n")
        case "kill":
            let id = try needID(args, cmd, extra: 0...1)
            try rt.kill(id, signal: args.count > 1 ? args[1] : "SIGTERM", all: p.has("all"))
        case "delete":
            try rt.delete(try needID(args, cmd), force: p.has("force"))
        case "pause":
            try rt.pause(try needID(args, cmd), true)
        case "resume":
            try rt.pause(try needID(args, cmd), false)
        case "ps":
            let id = try needID(args, cmd, extra: 0...100)
            out(try rt.ps(id, format: p.value("format") ?? "table"))
        case "list":
            out(try rt.list(format: p.value("format") ?? "table", quiet: p.has("quiet")))
        case "spec":
            let dir = p.value("bundle") ?? "."
            let path = dir + "/config.json"
            if access(path, F_OK) == 0 { throw RuntimeError("File \(path) exists. Remove it first") }
            let f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if f < 0 { throw RuntimeError("cannot write \(path): \(String(cString: strerror(errno)))") }
            _ = writeAll(f, Array((SpecTemplate.defaultConfig().serialized(pretty: true) + "\n").utf8))
            close(f)
        case "features":
            out(SpecTemplate.features().serialized(pretty: true) + "\n")
        case "events":
            let id = try needID(args, cmd)
            var interval = 5.0
            if let s = p.value("interval") {
                var t = Substring(s)
                var scale = 1.0
                if t.hasSuffix("ms") { scale = 0.001; t = t.dropLast(2) } else if t.hasSuffix("s") { t = t.dropLast() } else if t.hasSuffix("m") { scale = 60; t = t.dropLast() }
                guard let v = Double(t) else { throw RuntimeError("--interval: invalid duration \"\(s)\"") }
                interval = v * scale
            }
            try rt.events(id, stats: p.has("stats"), interval: interval, emit: out)
        case "update":
            let id = try needID(args, cmd)
            var json: String? = nil
            if let r = p.value("resources") {
                let bytes = r == "-" ? readAllStdin() : readFile(r)
                guard let b = bytes else { throw RuntimeError("cannot read \(r)") }
                json = String(decoding: b, as: UTF8.self)
            }
            var flags: [String: String] = [:]
            for (k, v) in p.flags where k != "resources" { flags[k] = v.last }
            try rt.update(id, resourcesJSON: json, flags: flags)
        case "exec":
            guard let id = args.first else { throw RuntimeError("\"exec\" requires a container id") }
            var o = ExecOptions(id: id)
            o.args = Array(args.dropFirst())
            o.processFile = p.value("process")
            o.detach = p.has("detach")
            o.pidFile = p.value("pid-file")
            o.tty = p.has("tty")
            o.consoleSocket = p.value("console-socket")
            o.cwd = p.value("cwd")
            o.env = p.flags["env"] ?? []
            o.user = p.value("user")
            for g in p.flags["additional-gids"] ?? [] {
                guard let v = UInt32(g) else { throw RuntimeError("--additional-gids: invalid gid \"\(g)\"") }
                o.additionalGids.append(v)
            }
            if let w = p.value("waiter-fd") { o.waiterFD = Int32(w) ?? -1 }
            return try rt.exec(o)
        default:
            throw RuntimeError("unknown command \(cmd)")
        }
        return 0
    }

    static func readAllStdin() -> [UInt8]? { readFile("/proc/self/fd/0") }
}
