// `moat ps`, `logs`, `exec`, `stop`, `kill`, `rm`, `inspect`, `top`,
// `stats`: argument parsing and printing over the standalone sandboxes
// (Sources/Standalone); no logic of their own.

import ArgumentParser
import Foundation
import Glibc
import Standalone

struct SandboxRoot: ParsableArguments {
    @Option(help: "Moat's state root; sandboxes live in ROOT/standalone.") var root: String = "/var/lib/moat"
    func store() throws -> StandaloneStore {
        do { return try StandaloneStore(root: root) } catch let e as StandaloneError { throw ValidationError(e.description) }
    }
}

/// Runs `body`, turning the module's errors into messages for the user.
func standalone<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as StandaloneError {
        fputs("moat: \(e.description)\n", stderr)
        throw ExitCode(e.status)
    }
}

/// Runs `body` for each sandbox named, as podman does: every one is tried,
/// each failure is said, and the status is 125 when any failed.
func eachSandbox(_ refs: [String], _ body: (String) throws -> Void) throws {
    var failed = false
    for r in refs {
        do { try body(r); print(r) } catch let e as StandaloneError {
            fputs("moat: \(e.description)\n", stderr)
            failed = true
        }
    }
    if failed { throw ExitCode(125) }
}

func ago(_ d: Date?) -> String {
    guard let d else { return "" }
    let s = Int(Date().timeIntervalSince(d))
    switch s {
    case ..<60: return "\(max(s, 0)) seconds ago"
    case ..<3600: return "\(s / 60) minutes ago"
    case ..<86400: return "\(s / 3600) hours ago"
    default: return "\(s / 86400) days ago"
    }
}

func statusText(_ r: SandboxRecord) -> String {
    switch r.state {
    case .created: return "Created"
    case .running: return "Up " + ago(r.startedAt).replacingOccurrences(of: " ago", with: "")
    case .exited:
        if let e = r.error { return "Error: " + String(e.prefix(40)) }
        return "Exited (\(r.exitCode ?? 0)) \(ago(r.finishedAt))"
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }

struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List standalone sandboxes (running ones; -a: all).")
    @OptionGroup var options: SandboxRoot
    @Flag(name: [.short, .long], help: "Show every sandbox, not only running ones.") var all = false
    @Flag(name: [.short, .long], help: "Print only ids.") var quiet = false
    @Flag(help: "Do not shorten ids and commands.") var noTrunc = false
    func run() throws {
        let store = try options.store()
        let records = try standalone { try store.list() }.map { store.live($0) }.filter { all || $0.state == .running }
        if quiet { for r in records { print(noTrunc ? r.id : String(r.id.prefix(12))) }; return }
        print(pad("CONTAINER ID", 13) + pad("IMAGE", 28) + pad("COMMAND", 22) + pad("CREATED", 16) + pad("STATUS", 28) + pad("PORTS", 24) + "NAMES")
        for r in records {
            let cmd = r.spec.argv.joined(separator: " ")
            let image = r.spec.image.isEmpty ? r.spec.rootfs : r.spec.image
            print(pad(noTrunc ? r.id : String(r.id.prefix(12)), 13) + pad(noTrunc ? image : String(image.prefix(27)), 28)
                  + pad(noTrunc ? cmd : String(cmd.prefix(21)), 22) + pad(ago(r.created), 16) + pad(statusText(r), 28)
                  + pad(r.spec.ports.map { ($0.split(separator: ":").count == 2 ? "0.0.0.0:" : "") + $0.replacingOccurrences(of: ":", with: "->", options: .backwards, range: $0.range(of: ":", options: .backwards)) }.joined(separator: ", "), 24) + r.name)
        }
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a sandbox's output (stdout and stderr as written).")
    @OptionGroup var options: SandboxRoot
    @Flag(name: [.short, .long], help: "Keep printing new output until the sandbox exits.") var follow = false
    @Flag(name: [.short, .long], help: "Prefix each line with its time.") var timestamps = false
    @Argument(help: "The sandbox's name or id.") var sandbox: String
    func run() throws {
        let store = try options.store()
        var r = try standalone { try store.find(sandbox) }
        var reader = LogReader(path: store.logPath(r))
        _ = reader.drain(out: 1, err: 2, timestamps: timestamps)
        guard follow else { return }
        while store.live(r).state != .exited {
            usleep(100_000)
            guard let again = try? store.find(r.id) else { break }
            r = again
            _ = reader.drain(out: 1, err: 2, timestamps: timestamps)
        }
        _ = reader.drain(out: 1, err: 2, timestamps: timestamps)
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command in a running sandbox.",
                                                    usage: "moat exec [OPTIONS] SANDBOX COMMAND [ARG...]")
    @OptionGroup var options: SandboxRoot
    @Flag(name: [.short, .long], help: "Keep stdin open (the command reads this terminal).") var interactive = false
    @Flag(name: [.short, .long], help: "The command's stdio is a terminal (this one).") var tty = false
    @Option(name: [.short, .long], help: "Set an environment variable (K=V); repeatable.") var env: [String] = []
    @Option(name: [.customShort("w"), .long], help: "Working directory.") var workdir: String?
    @Option(name: [.short, .long], help: "UID[:GID] (numbers, or names from the image's /etc/passwd) to run as.") var user: String?
    @Argument(parsing: .captureForPassthrough, help: "SANDBOX COMMAND [ARG...]") var words: [String] = []
    func run() throws {
        if let f = words.first, f == "--help" || f == "-h" { throw CleanExit.helpRequest(self) }
        guard words.count >= 2 else { throw ValidationError("give a sandbox and a command: moat exec SANDBOX COMMAND [ARG...]") }
        var ids: (UInt32, UInt32)?
        let store = try options.store()
        if let u = user {
            // Names from the image's /etc/passwd and /etc/group, as moat run -u.
            let rootfs = try standalone { try store.find(words[0]) }.spec.rootfs
            let p = try ImageRun.numericUser(u, rootfs: rootfs).split(separator: ":")
            guard let uid = UInt32(p.first ?? ""), p.count <= 2, let gid = UInt32(p.count == 2 ? p[1] : p[0]) else {
                throw ValidationError("--user must be UID[:GID] or names in the image's /etc/passwd")
            }
            ids = (uid, gid)
        }
        var argv = Array(words.dropFirst())
        if argv.first == "--" { argv.removeFirst() }
        let stdin = interactive || tty ? 0 : open("/dev/null", O_RDONLY | O_CLOEXEC)
        let env = self.env + (tty ? ["TERM=xterm"] : [])
        let code = try standalone { try store.exec(words[0], argv: argv, env: env, cwd: workdir, user: ids, tty: tty, stdio: [stdin, 1, 2]) }
        throw ExitCode(code)
    }
}

func signalNumber(_ s: String) throws -> Int32 {
    if let n = Int32(s), n > 0, n < 65 { return n }
    let names: [String: Int32] = ["HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
                                  "TERM": SIGTERM, "STOP": SIGSTOP, "CONT": SIGCONT, "ALRM": SIGALRM, "WINCH": SIGWINCH, "PIPE": SIGPIPE]
    let n = s.uppercased()
    guard let v = names[n.hasPrefix("SIG") ? String(n.dropFirst(3)) : n] else { throw ValidationError("unknown signal \(s)") }
    return v
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop sandboxes: SIGTERM, then SIGKILL after the timeout.")
    @OptionGroup var options: SandboxRoot
    @Option(name: [.short, .customLong("time")], help: "Seconds to wait before SIGKILL.") var time: Int = 10
    @Argument(help: "Names or ids.") var sandboxes: [String]
    func run() throws {
        let store = try options.store()
        try eachSandbox(sandboxes) { _ = try store.stop($0, timeout: max(0, time)) }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal (default KILL) to every process of sandboxes.")
    @OptionGroup var options: SandboxRoot
    @Option(name: [.short, .long], help: "The signal: a name (TERM, SIGTERM) or a number.") var signal: String = "KILL"
    @Argument(help: "Names or ids.") var sandboxes: [String]
    func run() throws {
        let store = try options.store()
        let sig = try signalNumber(signal)
        try eachSandbox(sandboxes) { _ = try store.kill($0, signal: sig) }
    }
}

struct Rm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove sandboxes (their records, logs and state).")
    @OptionGroup var options: SandboxRoot
    @Flag(name: [.short, .long], help: "Stop running ones first (SIGKILL).") var force = false
    @Argument(help: "Names or ids.") var sandboxes: [String]
    func run() throws {
        let store = try options.store()
        try eachSandbox(sandboxes) { _ = try store.remove($0, force: force) }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print sandboxes' records as JSON.")
    @OptionGroup var options: SandboxRoot
    @Argument(help: "Names or ids.") var sandboxes: [String]
    func run() throws {
        let store = try options.store()
        let records = try sandboxes.map { s in store.live(try standalone { try store.find(s) }) }
        print(String(decoding: try StandaloneStore.encoder.encode(records), as: UTF8.self))
    }
}

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the processes of a running sandbox (as its kernel sees them).")
    @OptionGroup var options: SandboxRoot
    @Argument(help: "The sandbox's name or id.") var sandbox: String
    func run() throws {
        let store = try options.store()
        // The Sentry's /proc, read by a program that needs nothing from the image.
        let script = "for d in /proc/[0-9]*; do p=${d#/proc/}; [ $p = $$ ] && continue; c=$(tr '\\0' ' ' < $d/cmdline 2>/dev/null); " +
            "u=$(sed -n 's/^Uid:[[:space:]]*\\([0-9]*\\).*/\\1/p' $d/status 2>/dev/null); echo \"$p $u $c\"; done"
        print("PID UID COMMAND")
        fflush(stdout)
        let code = try standalone { try store.exec(sandbox, argv: ["/bin/sh", "-c", script], env: [], cwd: "/", user: nil, tty: false,
                                                    stdio: [open("/dev/null", O_RDONLY | O_CLOEXEC), 1, 2]) }
        if code != 0 { throw ExitCode(code) }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print running sandboxes' resource use once.")
    @OptionGroup var options: SandboxRoot
    @Argument(help: "Names or ids (default: every running sandbox).") var sandboxes: [String] = []
    func run() throws {
        let store = try options.store()
        let refs = sandboxes.isEmpty ? try standalone { try store.list() }.filter { store.isRunning($0) }.map { $0.name } : sandboxes
        print(pad("NAME", 24) + pad("CPU TIME", 12) + pad("MEM USAGE / LIMIT", 26) + "WRITABLE LAYER")
        for r in refs {
            let s = try standalone { try store.stats(r) }
            let limit = s.memoryLimit.map { String(format: "%.1fMiB", Double($0) / 1048576) } ?? "-"
            print(pad(s.name, 24) + pad(String(format: "%.2fs", Double(s.cpuNanoseconds) / 1e9), 12)
                  + pad(String(format: "%.1fMiB", Double(s.memoryBytes) / 1048576) + " / " + limit, 26)
                  + String(format: "%.1fKiB", Double(s.writableLayerBytes) / 1024))
        }
    }
}

struct StandaloneSupervise: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "standalone-supervise",
        abstract: "(internal) Supervise a standalone sandbox; started by moat run (-d or with a record).", shouldDisplay: false)
    @OptionGroup var options: SandboxRoot
    @Flag(help: "Supervise on this process's stdio: a foreground moat run that exec'd this.") var foreground = false
    @Argument var id: String
    func run() throws {
        let store = try options.store()
        Glibc.exit(foreground ? Supervisor.superviseForeground(store: store, id: id) : Supervisor.run(store: store, id: id, stdio: nil))
    }
}
