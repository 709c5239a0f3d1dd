// moat: the only executable. It parses arguments and calls into the
// modules; it holds no logic of its own.

import ArgumentParser
import ControlPlane
import Dispatch
import NodeAgent
import CRI
import Foundation
import Glibc
import Gofer
import Images
import OCI
import Sandbox
import SandboxMain
import Sentry
import Standalone

@main
struct Moat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moat",
        abstract: "A userspace-kernel sandbox for containers.",
        discussion: """
            Standalone sandboxes, as with podman: moat run [-d] IMAGE [COMMAND], then ps, logs, exec, stop, kill, \
            rm, inspect, top and stats; images: pull, images, rmi, image import|export.

            Moat is also an OCI runtime with runc's command line, for container engines (containerd, podman, \
            CRI-O): moat [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND, where COMMAND is \
            create, start, state, kill, delete, run --bundle, exec --process, ps, list, spec, features, events, \
            pause, resume or update.
            """,
        subcommands: [Run.self, Ps.self, Logs.self, Exec.self, Stop.self, Kill.self, Rm.self, Inspect.self, Top.self, Stats.self, StandaloneSupervise.self, Pull.self, Images.self, Rmi.self, ImageCommand.self, APIServerCommand.self, ControlPlaneCommand.self, ServerCommand.self, ControlPlaneBenchCommand.self, CRICommand.self, NodeCommand.self, DebugCommand.self, KVMBenchCommand.self])

    /// Synchronous commands run on the main thread, never on a concurrency
    /// pool thread: the sandbox's processes are started with
    /// PR_SET_PDEATHSIG, which fires when the *thread* that started them
    /// exits, and idle pool threads do exit.
    static func main() async {
        StartupProfile.begin()
        // The long-lived daemons (`moat cri`, the supervisor of `moat run -d`,
        // `moat node`, the API server, `moat server`) give up what they and their children
        // never need, before any thread starts (Sandbox/DaemonConfinement.swift).
        if let daemon = DaemonConfinement.daemon(CommandLine.arguments),
           let e = DaemonConfinement.confine(daemon, argv: CommandLine.arguments) {
            fputs("moat \(daemon.rawValue): \(e)\n", stderr)
            Glibc.exit(125)
        }
        // The Sentry, the Gofer and the launcher of every sandbox when no
        // moat-sandbox is installed next to this binary (SandboxMain).
        let argv = CommandLine.arguments
        if argv.count > 1 && ["sentry", "gofer", "launch"].contains(argv[1]) { InternalCommand.main(argv.dropFirst()) }
        // `moat run` forks its Gofer and runs it here, in the child (its
        // Sentry is always re-executed: Sandbox.swift says why). MOAT_SPAWN=exec re-executes them instead, as before: to
        // compare the two in one benchmark run, or to rule the fork out.
        if getenv("MOAT_SPAWN").map({ String(cString: $0) }) != "exec" {
            Sandbox.internalMain = { InternalCommand.main($0.dropFirst()) }
        }
        Supervisor.followSupervisor()   // a component of `moat server` goes when the server goes
        // `moat run [OPTIONS] -- COMMAND` in its plain form (FastRun):
        // straight to the launcher, without ArgumentParser.
        if let o = FastRun.options(argv) { Sandbox.launch(o) }
        // runc's command line (create, start, state, ...) with its global
        // flags before the command; nil when argv is one of Moat's own.
        if !isStandalone(CommandLine.arguments), let status = OCICLI.main(CommandLine.arguments) { Glibc.exit(status) }
        // `moat run`, the common case, is parsed by Run alone (see
        // parseRunAlone) and run without a dynamic cast.
        if let run = parseRunAlone(argv) {
            do { try run.run() } catch let e as ValidationError {
                fputs("moat: \(e.message)\n", stderr)
                Glibc.exit(125)
            } catch {
                exit(withError: error)
            }
            return
        }
        do {
            var command = try parseAsRoot()
            do {
                if var asyncCommand = command as? AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
            } catch let e as ValidationError where command is UserFacing {
                // A person can act on the message; the usage would hide it.
                fputs("moat: \(e.message)\n", stderr)
                Glibc.exit(125)
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// `moat run ARGS` parsed as Run alone, with ArgumentParser still, or nil.
/// Parsing from the root builds the tree of every command and reflects
/// over each one on the path; each first `as?` of a type to a protocol is a
/// linear scan of the binary's protocol conformance records (14,320 in a
/// debug build; the start-up profile of `moat run /bin/true` has
/// swift_conformsToProtocol high under parseAsRoot). Run alone skips the tree and the root. Its result is
/// the same Run, which has no validate() of its own; whatever Run alone
/// does not simply accept (an error, --help, a completion script request)
/// returns nil, and the full parse gives the messages, usage and help the
/// user sees today, with "moat run" in them.
func parseRunAlone(_ argv: [String]) -> Run? {
    guard argv.count > 1, argv[1] == "run" else { return nil }
    // ArgumentParser's built-in words and flags anywhere before `--` (even
    // a command's own: the full parse decides what they mean).
    for a in argv.dropFirst(2) {
        if a == "--" { break }
        if a == "-h" || a == "--help" || a == "help" || a == "--version" || a.hasPrefix("--generate-completion")
            || a.hasPrefix("--experimental") { return nil }
    }
    return try? Run.parse(Array(argv.dropFirst(2)))
}

/// runc's `run`, `exec`, `kill` and `ps` share their names with the
/// standalone commands. Engines call runc with global flags first (--root,
/// --log): those always go to the OCI runtime. Without them, a command is
/// the OCI one when it has a flag only runc's has (--bundle, --pid-file,
/// --process, --all, --format...) or names a container of the OCI runtime's
/// default root (/run/moat/ID: conmon calls `exec` and `kill` that way).
func isStandalone(_ argv: [String]) -> Bool {
    guard argv.count > 1, ["run", "exec", "kill", "ps"].contains(argv[1]) else { return false }
    // The flags before the first word (a sandbox's name, a container's id,
    // an image): the words after it are a command's and its arguments.
    var flags: [String] = [], first: String?
    var words = argv.dropFirst(2).makeIterator()
    let valued: Set = ["--root", "-e", "--env", "-w", "--workdir", "-u", "--user", "-s", "--signal"]
    while let a = words.next(), a != "--" {
        guard a.hasPrefix("-") else { first = a; break }
        flags.append(a)
        if valued.contains(a) { _ = words.next() }
    }
    func has(_ names: [String]) -> Bool { flags.contains { a in names.contains { a == $0 || a.hasPrefix($0 + "=") } } }
    let ociContainer = first.map { !$0.isEmpty && !$0.contains("/") && $0 != "." && $0 != ".." && access("/run/moat/" + $0, F_OK) == 0 } ?? false
    switch argv[1] {
    case "run":
        if argv.count == 3, access("config.json", F_OK) == 0 { return false }   // runc run ID, in the bundle
        return !has(["--bundle", "-b", "--pid-file", "--console-socket", "--no-pivot", "--preserve-fds", "--keep", "--no-new-keyring", "--no-subreaper"])
    case "exec":
        return !ociContainer && !has(["--process", "-p", "--pid-file", "--console-socket", "--detach", "-d", "--preserve-fds", "--cap", "-c",
                                      "--no-new-privs", "--apparmor", "--process-label", "--cgroup", "--ignore-paused", "--waiter-fd",
                                      "--additional-gids", "-g", "--cwd"])
    case "kill": return !ociContainer && !has(["--all", "-a"])
    default: return !ociContainer && !has(["--format", "-f"])
    }
}

/// Commands whose failures are reported as "moat: MESSAGE" and status 125
/// (podman's status for its own errors), without the usage.
protocol UserFacing {}
extension Run: UserFacing {}
extension Pull: UserFacing {}
extension Rmi: UserFacing {}
extension ImageImport: UserFacing {}
extension ImageExport: UserFacing {}
extension Ps: UserFacing {}
extension Logs: UserFacing {}
extension Exec: UserFacing {}
extension Stop: UserFacing {}
extension Kill: UserFacing {}
extension Rm: UserFacing {}
extension Inspect: UserFacing {}
extension Top: UserFacing {}
extension Stats: UserFacing {}

struct Run: ParsableCommand {
    // _superCommandName: when parseRunAlone parses Run as its own root,
    // ArgumentParser skips its --generate-completion-script check, which
    // builds two more parsers (a fifth of the launcher's CPU before the
    // sandbox starts; parseRunAlone already leaves such requests to the
    // full parse). Only a root's _superCommandName is ever read, and Run is
    // never the root of the full parse, so help and usage are unchanged.
    static let configuration = CommandConfiguration(
        _superCommandName: "moat",
        abstract: "Run a command in a new sandbox, like `podman run`.",
        usage: """
            moat run [OPTIONS] IMAGE [COMMAND [ARG...]]
            moat run [OPTIONS] --rootfs DIR [--] COMMAND [ARG...]
            moat run [OPTIONS] [--] COMMAND [ARG...]   (the busybox rootfs)
            """,
        discussion: """
            IMAGE is pulled when the store lacks it. Without -d the command runs in the foreground with \
            this terminal as its stdio; with -d, --name, -v, --tmpfs, --restart or a resource limit the \
            sandbox gets a record (moat ps -a), its own supervisor, and its output in moat logs.
            """)
    @Option(help: "Root file system directory (default: $MOAT_ROOTFS, or the busybox rootfs built by rootfs/busybox.sh).")
    var rootfs: String?
    @Option(help: "Run this image (pulled when the store lacks it); the same as the positional IMAGE.")
    var image: String?
    @Option(help: "Moat's state root; images live in ROOT/images, sandboxes in ROOT/standalone.") var root: String = "/var/lib/moat"
    @Flag(name: [.short, .long], help: "Run in the background and print the sandbox's id.") var detach = false
    @Option(help: "Name the sandbox (default: a generated name).") var name: String?
    @Flag(help: "Remove the sandbox when it exits.") var rm = false
    @Flag(name: [.short, .long], help: "Keep stdin open (foreground: the application reads this terminal).") var interactive = false
    @Flag(name: [.short, .long], help: "The application's stdio is a terminal (this one, in the foreground).") var tty = false
    @Flag(help: "Log every application syscall (to --log, or stderr).") var strace = false
    @Flag(help: "Write Moat's debug log (to --log, or stderr).") var debug = false
    @Option(help: "Write Moat's own log to this file.") var log: String?
    @Option(name: [.short, .long], help: "Set an environment variable (K=V, or K to take this environment's value); repeatable.") var env: [String] = []
    @Option(help: "Read environment variables (K=V lines; # comments) from a file; repeatable.") var envFile: [String] = []
    @Option(name: [.short, .customLong("volume")], help: "Bind-mount a host path: HOST:CONTAINER[:ro] (served by a Gofer of its own); repeatable.") var volume: [String] = []
    @Option(help: "Mount an empty tmpfs at this path; repeatable.") var tmpfs: [String] = []
    @Option(name: [.customShort("w"), .customLong("workdir"), .customLong("cwd")], help: "Working directory inside the sandbox (default: the image's, or /).") var cwd: String?
    @Option(name: [.short, .long], help: "UID[:GID] (numbers, or names from the image's /etc/passwd) to run as (default: the image's, or 0:0).") var user: String?
    @Option(help: "Override the image's entrypoint (\"\" clears it).") var entrypoint: String?
    @Option(help: "Hostname inside the sandbox.") var hostname: String?
    @Flag(help: "Serve the root file system read-only.") var readOnly = false
    @Flag(help: "Write changes through to the root file system (default: an in-memory overlay keeps it untouched).") var noOverlay = false
    @Option(help: "Where the overlay keeps its big and mapped files: self (unnamed files in the root file system's own host file system, gone when the sandbox ends; default) or memory (memfds).")
    var overlayMedium: String = RunDefaults.overlayMedium
    @Option(help: "Network: none (loopback only), sandbox (own namespace with outbound access; default) or host.") var network: String = RunDefaults.network
    @Option(name: [.customShort("p"), .customLong("publish")], help: "Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]; repeatable.")
    var publish: [String] = []
    @Option(help: "Join this network namespace (a path such as /proc/PID/ns/net or /run/netns/NAME) instead of making one.")
    var networkNamespace: String?
    @Option(help: "Add a line to the sandbox's /etc/hosts: NAME:IP; repeatable.") var addHost: [String] = []
    @Option(help: "A name server for the sandbox's /etc/resolv.conf; repeatable.") var dns: [String] = []
    @Option(help: "Drop capabilities (NAME, CAP_NAME or ALL; comma-separated) from the default of all of them; repeatable.") var capDrop: [String] = []
    @Option(help: "Add capabilities (NAME, CAP_NAME or ALL; comma-separated) after --cap-drop; repeatable.") var capAdd: [String] = []
    @Option(help: "Set a sysctl the sandbox sees under /proc/sys: KEY=VALUE (kernel.*, net.*, vm.*, fs.*); repeatable.")
    var sysctl: [String] = []
    @Option(name: [.short, .long], help: "Memory limit of the sandbox's host processes (cgroups): N[b|k|m|g].") var memory: String?
    @Option(help: "CPU limit (cgroups): a number of CPUs, such as 0.5.") var cpus: Double?
    @Option(help: "Process limit of the sandbox's host processes (cgroups; -1: none).") var pidsLimit: Int?
    @Option(help: "Restart policy: no, always, or on-failure[:MAX].") var restart: String = "no"
    @Option(help: "How application syscalls reach the Sentry: fast (seccomp notification for the common calls, ptrace for the rest; default), ptrace (a ptrace stop for every call) or kvm (application threads as KVM vCPUs; no fork or threads yet).")
    var platform: String = "fast"
    @Argument(parsing: .captureForPassthrough, help: "IMAGE [COMMAND [ARG...]], or -- COMMAND [ARG...]") var command: [String] = []

    /// --cap-drop then --cap-add applied to the full set (docker's order).
    static func capabilityMask(drop: [String], add: [String]) throws -> UInt64? {
        if drop.isEmpty && add.isEmpty { return nil }
        func mask(_ name: String) throws -> UInt64 {
            let n = name.uppercased()
            if n == "ALL" { return CapabilitySets.allMask }
            guard let i = Capability.number(n.hasPrefix("CAP_") ? n : "CAP_" + n) else {
                throw ValidationError("unknown capability \(name)")
            }
            return 1 << UInt64(i)
        }
        var m = CapabilitySets.allMask
        for d in drop.flatMap({ $0.split(separator: ",").map(String.init) }) { m &= ~(try mask(d)) }
        for a in add.flatMap({ $0.split(separator: ",").map(String.init) }) { m |= try mask(a) }
        return m
    }

    func run() throws {
        var words = command
        // The command is passed through untouched, so ArgumentParser never
        // sees a --help that comes before it: answer it here (a command
        // named --help cannot exist; `moat run -- --help` still runs one).
        if words.first == "--help" || words.first == "-h" {
            print(Moat.helpMessage(for: Run.self))
            return
        }
        var imageRef = image
        if words.first == "--" { words.removeFirst() } else if rootfs == nil && imageRef == nil, !words.isEmpty {
            imageRef = words.removeFirst()
            if words.first == "--" { words.removeFirst() }
        }
        if rootfs != nil && imageRef != nil { throw ValidationError("--image (or IMAGE) and --rootfs exclude each other") }
        let needsRecord = detach || name != nil || !volume.isEmpty || !tmpfs.isEmpty || restart != "no"
            || memory != nil || cpus != nil || pidsLimit != nil
        let setup = try RunSetup(run: self, image: imageRef, words: words)
        if !needsRecord {
            Sandbox.launch(try setup.runOptions())
        }
        for (flag, used) in [("--no-overlay", noOverlay), ("--overlay-medium", overlayMedium != RunDefaults.overlayMedium), ("--strace", strace), ("--network-namespace", networkNamespace != nil),
                             ("--sysctl", !sysctl.isEmpty),
                             ("--log", log != nil), ("--platform \(platform)", platform != "fast")] where used {
            throw ValidationError("\(flag) is for foreground runs only (without -d, --name, -v, --tmpfs, --restart or limits)")
        }
        guard ["none", "sandbox", "host"].contains(network) else { throw ValidationError("--network must be none, sandbox or host") }
        if detach && (interactive || tty) { throw ValidationError("-d runs in the background: -i and -t are for foreground runs (use moat exec -it)") }
        if rm && restart != "no" { throw ValidationError("--rm and --restart exclude each other") }
        let spec = try setup.standaloneSpec()
        let store = try standalone { try StandaloneStore(root: root) }
        if detach {
            print(try standalone { try Supervisor.runDetached(store: store, root: root, name: name, spec: spec) })
            return
        }
        let stdin = interactive || tty ? 0 : open("/dev/null", O_RDONLY | O_CLOEXEC)
        try standalone { try Supervisor.execForeground(store: store, root: root, name: name, spec: spec, stdin: stdin) }
    }

    func defaultRootfs() -> String { Self.defaultRootfs() }

    static func defaultRootfs() -> String {
        if let e = getenv("MOAT_ROOTFS") { return String(cString: e) }
        // Next to a source checkout: <repo>/.build/<config>/moat -> <repo>/.cache/rootfs/busybox
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, 4095)
        if n > 0 {
            let exe = String(cString: buf)
            let comps = exe.split(separator: "/").map(String.init)
            if let i = comps.firstIndex(where: { $0.hasPrefix(".build") }) {
                let candidate = "/" + comps[..<i].joined(separator: "/") + "/.cache/rootfs/busybox"
                if access(candidate, F_OK) == 0 { return candidate }
            }
        }
        return "/var/lib/moat/rootfs/busybox"
    }
}




struct CRICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cri", abstract: "Serve the Kubernetes CRI (runtime.v1) on a Unix socket: one sandbox per pod.")
    @Option(help: "Where to listen: unix:///PATH.") var listen = "unix:///run/moat/cri.sock"
    @Option(help: "Persistent state (pod and container records, images).") var root = "/var/lib/moat"
    @Option(help: "Runtime state (the pods' Sentry state directories).") var state = "/run/moat"
    @Option(help: "CNI network configuration directory (none: pods get loopback only).") var cniConfDir: String?
    @Option(help: "CNI plugin directory.") var cniBinDir: String?
    @Option(help: "HOST:PORT of the streaming server (exec, attach, port-forward).") var streamingAddress = "127.0.0.1:0"
    @Option(help: "Serve a root file system directory as an image: REF=DIR; repeatable.") var rootfsImage: [String] = []
    @Option(help: "Pull images of REGISTRY from URL instead: REGISTRY=URL; repeatable.") var registryMirror: [String] = []
    @Flag(help: "Pods write Moat's debug log to their state directory.") var debug = false
    @Option(help: "Where containers' writable layers keep their big and mapped files: self (unnamed files in the image root's own host file system, gone with the pod; default) or memory (memfds). The annotation dev.moat.overlay-medium of a container or pod overrides it.")
    var overlayMedium: String = RunDefaults.overlayMedium

    func validate() throws {
        guard RunDefaults.overlayOnDisk(overlayMedium) != nil else { throw ValidationError("--overlay-medium must be self or memory") }
    }

    func run() async throws {
        var o = CRIOptions()
        o.overlayMedium = overlayMedium
        o.listen = listen; o.root = root; o.state = state
        o.cniConfDir = cniConfDir; o.cniBinDir = cniBinDir
        o.streamingAddress = streamingAddress; o.debug = debug
        do {
            // The image store under --root serves the ImageService; plain
            // directories named by --rootfs-image are consulted first.
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
            var svc = try ImageService(root: root, mirrors: try RegistryClient.parseMirrors(registryMirror))
            let images = try DirectoryImageResolver(specs: rootfsImage, fallback: svc)
            svc.directoryImages = images.images
            try await CRIServer.run(o, images: images, imageUse: svc.store, extraServices: [svc])
        } catch {
            FileHandle.standardError.write("moat cri: \(error)\n".data(using: .utf8)!)
            Glibc.exit(1)
        }
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Run the node agent: register a Node and run the pods bound to it over CRI.")
    @Option(help: "The API server: http://HOST:PORT or unix:///PATH.") var server: String
    @Option(help: "A file holding the bearer token for the API server.") var tokenFile: String?
    @Option(help: "The CRI runtime's socket: unix:///PATH.") var cri = "unix:///run/moat/cri.sock"
    @Option(help: "The Node's name (default: the host name).") var name: String?
    @Option(help: "The Node's pod CIDR.") var podCidr: String?
    @Option(help: "Where container logs go (kubelet's layout).") var logDirectory = "/var/log/pods"
    @Option(help: "The agent's state: the pods' volumes.") var root = "/var/lib/moat/node"
    @Option(help: "The address of the agent's endpoint for the API server (container logs).") var address = "127.0.0.1"
    @Option(help: "Its port (0: any free port).") var port = 10250
    @Flag(help: .hidden) var stopPodsOnExit = false
    @Option(help: "The cluster DNS server's address for pods' resolv.conf.") var clusterDns: String?
    @Option(help: "The cluster's DNS domain.") var clusterDomain = "cluster.local"
    @Option(help: "Run the service proxy for Services' ClusterIPs in this range (IPv4 CIDR).") var serviceCidr: String?
    @Option(help: "The cluster DNS server (IPv4:port) the proxy relays pods' queries to --cluster-dns to.") var dnsUpstream: String?
    @Option(help: "Image file system usage (percent) at which unused images are removed, least recently used first (100: never).")
    var imageGcHighThreshold = 85
    @Option(help: "The usage (percent) image garbage collection frees down to.") var imageGcLowThreshold = 80
    @Option(help: "Seconds an image is kept at least after the agent first saw it.") var imageMinimumGcAge = 120.0
    @Option(help: "Hard eviction thresholds, SIGNAL<QUANTITY or SIGNAL<PERCENT% comma separated (memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, pid.available); empty: no eviction.")
    var evictionHard = EvictionThreshold.defaultsText
    @Option(help: "Seconds a pressure condition stays True after its signal last crossed a threshold.") var evictionPressureTransitionPeriod = 300.0

    func run() async throws {
        guard cri.hasPrefix("unix://") else { throw ValidationError("--cri must be unix:///PATH") }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        var o = NodeAgentOptions(server: server, criSocket: String(cri.dropFirst(7)), nodeName: name ?? String(cString: host))
        o.podCIDR = podCidr
        o.logDirectory = logDirectory
        o.root = root
        o.address = address
        o.port = port
        o.stopPodsOnExit = stopPodsOnExit
        o.clusterDNS = clusterDns; o.clusterDomain = clusterDomain
        if let c = serviceCidr, IPv4CIDR(c) == nil { throw ValidationError("--service-cidr must be an IPv4 CIDR") }
        if let u = dnsUpstream, !(u.lastIndex(of: ":").map { IPv4CIDR.parse(String(u[..<$0])) != nil && UInt16(u[u.index(after: $0)...]) != nil } ?? false) { throw ValidationError("--dns-upstream must be IPv4:port") }
        o.serviceCIDR = serviceCidr; o.dnsUpstream = dnsUpstream
        guard (0...100).contains(imageGcHighThreshold), (0...100).contains(imageGcLowThreshold),
              imageGcLowThreshold <= imageGcHighThreshold, imageMinimumGcAge >= 0 else {
            throw ValidationError("--image-gc-low-threshold and --image-gc-high-threshold must be percentages, low <= high")
        }
        o.imageGC = ImageGCPolicy(high: imageGcHighThreshold, low: imageGcLowThreshold, minimumAge: imageMinimumGcAge)
        do { o.evictionHard = try EvictionThreshold.parse(evictionHard) } catch { throw ValidationError("--eviction-hard: \(error)") }
        guard evictionPressureTransitionPeriod >= 0 else { throw ValidationError("--eviction-pressure-transition-period must not be negative") }
        o.evictionPressureTransitionPeriod = evictionPressureTransitionPeriod
        if let f = tokenFile {
            guard let t = try? String(contentsOfFile: f, encoding: .utf8) else { throw ValidationError("cannot read --token-file \(f)") }
            o.token = t.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let options = o
        let agent = Task { try await NodeAgentMain.run(options) }
        // SIGTERM/SIGINT: stop syncing, mark the node not ready, exit.
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { agent.cancel() }
            src.resume()
            sources.append(src)
        }
        defer { sources.forEach { $0.cancel() } }
        try await agent.value
    }
}
