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
import Sentry

@main
struct Moat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moat",
        abstract: "A userspace-kernel sandbox for containers.",
        subcommands: [Run.self, Pull.self, Images.self, Rmi.self, ImageCommand.self, SentryCommand.self, GoferCommand.self, APIServerCommand.self, ControlPlaneCommand.self, ControlPlaneBenchCommand.self, CRICommand.self, NodeCommand.self, DebugCommand.self])

    /// Synchronous commands run on the main thread, never on a concurrency
    /// pool thread: the sandbox's processes are started with
    /// PR_SET_PDEATHSIG, which fires when the *thread* that started them
    /// exits, and idle pool threads do exit.
    static func main() async {
        // runc's command line (create, start, state, ...) with its global
        // flags before the command; nil when argv is one of Moat's own.
        if let status = OCICLI.main(CommandLine.arguments) { Glibc.exit(status) }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command in a new sandbox, like `docker run`.")
    @Option(help: "Root file system directory (default: $MOAT_ROOTFS, or the busybox rootfs built by rootfs/busybox.sh).")
    var rootfs: String?
    @Option(help: "Run this image (pulled when the store lacks it): its root file system, and its env, working directory, user and entrypoint+cmd as defaults.")
    var image: String?
    @Option(help: "Moat's state root; images live in ROOT/images.") var root: String = "/var/lib/moat"
    @Flag(help: "Log every application syscall (to --log, or stderr).") var strace = false
    @Flag(help: "Write Moat's debug log (to --log, or stderr).") var debug = false
    @Option(help: "Write Moat's own log to this file.") var log: String?
    @Option(help: "Set an environment variable (K=V); repeatable.") var env: [String] = []
    @Option(help: "Working directory inside the sandbox (default: the image's, or /).") var cwd: String?
    @Option(help: "UID:GID to run as inside the sandbox (default: the image's, or 0:0).") var user: String?
    @Option(help: "Hostname inside the sandbox.") var hostname: String = "moat"
    @Flag(help: "Serve the root file system read-only.") var readOnly = false
    @Flag(help: "Write changes through to the root file system (default: an in-memory overlay keeps it untouched).") var noOverlay = false
    @Option(help: "Network: none (loopback only), sandbox (own namespace; default) or host.") var network: String = "sandbox"
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
    @Option(help: "How application syscalls reach the Sentry: fast (seccomp notification for the common calls, ptrace for the rest; default) or ptrace (a ptrace stop for every call).")
    var platform: String = "fast"
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

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
        var cmd = command
        // The command is passed through untouched, so ArgumentParser never
        // sees a --help that comes before it: answer it here (a command
        // named --help cannot exist; `moat run -- --help` still runs one).
        if cmd.first == "--help" || cmd.first == "-h" {
            print(Moat.helpMessage(for: Run.self))
            return
        }
        if cmd.first == "--" { cmd.removeFirst() }
        guard let net = NetworkMode(rawValue: network) else { throw ValidationError("--network must be none, sandbox or host") }
        let ports = try publish.map { s -> PortMapping in
            guard let p = PortMapping.parse(s) else { throw ValidationError("-p \(s): expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]") }
            return p
        }
        var rootDir = rootfs ?? defaultRootfs()
        var imageEnv: [String] = [], cwd = self.cwd, imageUser = self.user
        if let ref = image {
            guard rootfs == nil else { throw ValidationError("--image and --rootfs exclude each other") }
            guard !noOverlay else { throw ValidationError("--no-overlay would write into the image shared by every container") }
            let resolved = try ImageRun.resolve(ref, root: root)
            rootDir = resolved.rootfs
            imageEnv = resolved.config.env
            if cwd == nil, !resolved.config.workingDir.isEmpty { cwd = resolved.config.workingDir }
            if imageUser == nil, !resolved.config.user.isEmpty { imageUser = try ImageRun.numericUser(resolved.config.user, rootfs: rootDir) }
            if cmd.isEmpty { cmd = resolved.config.entrypoint + resolved.config.cmd } else { cmd = resolved.config.entrypoint + cmd }
        }
        let user = imageUser ?? "0:0"
        guard !cmd.isEmpty else { throw ValidationError("a command to run is required: moat run [options] -- CMD ARGS...") }
        let parts = user.split(separator: ":")
        guard let uid = UInt32(parts.first ?? ""), parts.count <= 2, let gid = UInt32(parts.count == 2 ? parts[1] : parts[0]) else {
            throw ValidationError("--user must be UID or UID:GID (numbers)")
        }
        for e in env where !e.contains("=") { throw ValidationError("--env \(e): expected K=V") }
        var o = RunOptions(rootfs: rootDir, argv: cmd)
        // The image's env, then --env over it (same key: --env wins).
        let keys = Set(self.env.map { $0.split(separator: "=", maxSplits: 1)[0] })
        let env = imageEnv.filter { !keys.contains($0.split(separator: "=", maxSplits: 1).first ?? "") } + self.env
        o.env = env.isEmpty || !env.contains(where: { $0.hasPrefix("PATH=") }) ? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + env : env
        if !env.contains(where: { $0.hasPrefix("HOME=") }) { o.env.append(uid == 0 ? "HOME=/root" : "HOME=/") }
        o.cwd = cwd ?? "/"; o.uid = uid; o.gid = gid; o.strace = strace; o.debug = debug; o.logPath = log
        o.readOnly = readOnly; o.hostname = hostname; o.overlay = !noOverlay
        o.network = net; o.ports = ports
        if let p = networkNamespace {
            guard net == .sandbox || network == "host" else { throw ValidationError("--network-namespace replaces --network") }
            o.network = .host; o.networkNamespace = p
        }
        for h in addHost where !h.contains(":") { throw ValidationError("--add-host \(h): expected NAME:IP") }
        o.addHosts = addHost; o.dns = dns
        o.capabilities = try Run.capabilityMask(drop: capDrop, add: capAdd)
        for s in sysctl where !s.contains("=") { throw ValidationError("--sysctl \(s): expected KEY=VALUE") }
        o.sysctl = sysctl
        guard platform == "fast" || platform == "ptrace" else { throw ValidationError("--platform must be fast or ptrace") }
        o.fastPath = platform == "fast"
        Glibc.exit(Sandbox.run(o))
    }

    func defaultRootfs() -> String {
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

struct SentryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sentry", abstract: "(internal) Run the Sentry; started by moat itself.", shouldDisplay: false)
    @Option var goferFd: Int32 = 3
    @Option var logFd: Int32 = -1
    @Flag var strace = false
    @Flag var debug = false
    @Flag var overlay = false
    @Option var cwd: String = "/"
    @Option var user: String = "0:0"
    @Option var hostname: String = "moat"
    @Option var env: [String] = []
    @Option var ociConfigFd: Int32 = -1
    @Option var network: String = "host"
    @Option var addHost: [String] = []
    @Option var dns: [String] = []
    @Option var egressFd: Int32 = -1
    @Option var netns: String?
    @Option var caps: String?
    @Option var sysctl: [String] = []
    @Option var platform: String = "fast"
    @Flag var pod = false
    @Option var controlFd: Int32 = -1
    @Option var readyFd: Int32 = -1
    @Flag var detached = false
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

    func run() throws {
        if detached { SentryPlan.detachFromLauncher() }
        if ociConfigFd >= 0 {
            do { Glibc.exit(SentryMain.run(try SentryPlan.read(fd: ociConfigFd))) } catch {
                throw ValidationError("sentry plan: \(error)")
            }
        }
        var c = SentryConfig()
        c.goferFD = goferFd; c.logFD = logFd; c.strace = strace; c.debug = debug; c.cwd = cwd; c.env = env
        c.hostname = hostname
        c.overlay = overlay
        c.network = NetworkMode(rawValue: network) ?? .host
        c.addHosts = addHost; c.dns = dns; c.egressFD = egressFd; c.networkNamespacePath = netns
        if let s = caps, let m = UInt64(s, radix: 16) {
            c.capabilities = CapabilitySets(bounding: m, effective: m, permitted: m, inheritable: 0, ambient: 0)
        }
        c.sysctl = sysctl.compactMap { s in
            guard let eq = s.firstIndex(of: "=") else { return nil }
            return (String(s[..<eq]), String(s[s.index(after: eq)...]))
        }
        c.fastPath = platform != "ptrace"
        c.controlFD = controlFd
        c.readyFD = readyFd
        if pod { Glibc.exit(SentryMain.runPod(c)) }
        let parts = user.split(separator: ":")
        c.uid = UInt32(parts.first ?? "0") ?? 0
        c.gid = UInt32(parts.count > 1 ? parts[1] : "0") ?? 0
        var cmd = command
        if cmd.first == "--" { cmd.removeFirst() }
        c.argv = cmd
        Glibc.exit(SentryMain.run(c))
    }
}

struct GoferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gofer", abstract: "(internal) Serve a root file system to a Sentry.", shouldDisplay: false)
    @Option var root: String
    @Option var fd: Int32 = 3
    @Flag var readOnly = false
    @Flag var detached = false
    func run() throws {
        if detached { SentryPlan.detachFromLauncher() }
        Gofer.run(root: root, socketFD: fd, readOnly: readOnly)
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

    func run() async throws {
        var o = CRIOptions()
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
    @Option(help: "The API server: http://HOST:PORT.") var server: String
    @Option(help: "A file holding the bearer token for the API server.") var tokenFile: String?
    @Option(help: "The CRI runtime's socket: unix:///PATH.") var cri = "unix:///run/moat/cri.sock"
    @Option(help: "The Node's name (default: the host name).") var name: String?
    @Option(help: "The Node's pod CIDR.") var podCidr: String?
    @Option(help: "Where container logs go (kubelet's layout).") var logDirectory = "/var/log/pods"
    @Option(help: "The agent's state: the pods' volumes.") var root = "/var/lib/moat/node"
    @Option(help: "The address of the agent's endpoint for the API server (container logs).") var address = "127.0.0.1"
    @Option(help: "Its port (0: any free port).") var port = 10250

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
