// Which binary a sandbox's own processes run. `moat` links the control
// plane, CRI, the image store and their libraries (gRPC, NIO, Foundation,
// SQLite); a sandbox's launcher, Gofer and Sentry use none of it. Each
// process that execs a binary relocates that binary's whole .data.rel.ro
// and .data into private pages (1.55 MB + 0.6 MB for `moat`, measured on
// 8dc5f37's release build), and the Sentry is always re-executed (its own
// address layout: Sandbox.swift). `moat-sandbox` (Sources/moat-sandbox) is
// the same Sandbox, Sentry and Gofer code without the rest: when it is
// installed as this binary's path plus "-sandbox" (moat -> moat-sandbox),
// with the same owner and no write access for others, every sandbox
// process runs it; otherwise `moat` runs them itself, as it always could.
// MOAT_SANDBOX_BINARY=self chooses `moat` (to compare the two in one
// benchmark run, or to rule the small binary out).

import CMoat
import Glibc
import Sentry

extension Sandbox {
    /// The path a sandbox process is executed from: the companion binary,
    /// or this one ("/proc/self/exe").
    public static let binary: String = {
        let me = "/proc/self/exe"
        if let v = getenv("MOAT_SANDBOX_BINARY"), String(cString: v) == "self" { return me }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(me, &buf, buf.count - 1)
        guard n > 0 else { return me }
        buf[n] = 0
        let path = String(cString: buf)
        // Already the companion (its launcher, or a zygote): itself.
        if path.hasSuffix("-sandbox") { return me }
        let companion = path + "-sandbox"
        var mine = stat(), other = stat()
        guard stat(me, &mine) == 0, stat(companion, &other) == 0,
              other.st_mode & S_IFMT == S_IFREG, other.st_mode & 0o111 != 0,
              other.st_uid == mine.st_uid, other.st_mode & 0o022 == 0 else { return me }
        return companion
    }()

    /// Whether `path` is the executable of this binary or of its companion:
    /// a process of Moat (`moat debug`'s view of the host).
    static func isMoatExecutable(_ path: String) -> Bool {
        guard let base = moatExecutable else { return false }
        return path == base || path == base + "-sandbox"
    }

    /// moat's own path (this binary's, without "-sandbox"), read once.
    private static let moatExecutable: String? = SandboxDebug.readlinkString("/proc/self/exe").map {
        $0.hasSuffix("-sandbox") ? String($0.dropLast("-sandbox".count)) : $0
    }

    /// Runs a command in a new sandbox (see run) and exits with its status:
    /// from the companion binary when there is one (`moat launch`, the same
    /// options on its command line; this process's pid, terminal, stdio and
    /// parent stay), else here.
    public static func launch(_ o: RunOptions) -> Never {
        if binary != "/proc/self/exe" {
            // The start-up profile goes on from this process's start, not the exec's.
            setenv("MOAT_STARTUP", String(StartupProfile.environmentEntry().dropFirst("MOAT_STARTUP=".count)), 1)
            var cargs: [UnsafeMutablePointer<CChar>?] = (["moat", "launch"] + o.launchArguments).map { strdup($0) } + [nil]
            execv(binary, &cargs)
            for p in cargs { free(p) }
        }
        exit(run(o))
    }
}

extension RunOptions {
    static let launchOptions: Set<String> = ["rootfs", "env", "cwd", "user", "log", "hostname", "network", "publish",
                                             "add-host", "dns", "netns", "caps", "sysctl", "platform"]
    static let launchFlags: Set<String> = ["strace", "debug", "read-only", "no-overlay", "overlay-in-memory"]

    /// The command line of `moat launch` for these options (parsed back by
    /// init(launchArguments:)).
    public var launchArguments: [String] {
        var a = ["--rootfs", rootfs, "--cwd", cwd, "--user", "\(uid):\(gid)", "--hostname", hostname, "--network", network.rawValue]
        for e in env { a += ["--env", e] }
        if let l = logPath { a += ["--log", l] }
        for p in ports { a += ["--publish", "\(p.hostAddress):\(p.hostPort):\(p.containerPort)/\(p.udp ? "udp" : "tcp")"] }
        for h in addHosts { a += ["--add-host", h] }
        for d in dns { a += ["--dns", d] }
        if let n = networkNamespace { a += ["--netns", n] }
        if let c = capabilities { a += ["--caps", String(c, radix: 16)] }
        for s in sysctl { a += ["--sysctl", s] }
        if kvm { a += ["--platform", "kvm"] } else if !fastPath { a += ["--platform", "ptrace"] }
        if strace { a.append("--strace") }
        if debug { a.append("--debug") }
        if readOnly { a.append("--read-only") }
        if !overlay { a.append("--no-overlay") }
        if !overlayOnDisk { a.append("--overlay-in-memory") }
        return a + ["--"] + argv
    }

    public init(launchArguments args: ArraySlice<String>) throws(InternalArguments.Failure) {
        let a = try InternalArguments(args, options: Self.launchOptions, flags: Self.launchFlags)
        guard let root = a.string("rootfs") else { throw .init(message: "missing --rootfs") }
        self.init(rootfs: root, argv: a.command)
        env = a.list("env")
        cwd = a.string("cwd") ?? "/"
        let user = (a.string("user") ?? "0:0").split(separator: ":", omittingEmptySubsequences: false)
        guard user.count == 2, let u = UInt32(user[0]), let g = UInt32(user[1]) else { throw .init(message: "--user: not UID:GID") }
        uid = u; gid = g
        logPath = a.string("log")
        hostname = a.string("hostname") ?? "moat"
        guard let n = NetworkMode(rawValue: a.string("network") ?? "sandbox") else { throw .init(message: "--network: none, sandbox or host") }
        network = n
        ports = try a.list("publish").map { s throws(InternalArguments.Failure) in
            guard let p = PortMapping.parse(s) else { throw .init(message: "--publish: not IP:HOSTPORT:PORT/PROTO: \(s)") }
            return p
        }
        addHosts = a.list("add-host")
        dns = a.list("dns")
        networkNamespace = a.string("netns")
        if let c = a.string("caps") {
            guard let m = UInt64(c, radix: 16) else { throw .init(message: "--caps: not a hexadecimal mask: \(c)") }
            capabilities = m
        }
        sysctl = a.list("sysctl")
        switch a.string("platform") {
        case nil: break
        case "kvm": kvm = true
        case "ptrace": fastPath = false
        case let p?: throw .init(message: "--platform: kvm or ptrace, not \(p)")
        }
        strace = a.has("strace"); debug = a.has("debug")
        readOnly = a.has("read-only"); overlay = !a.has("no-overlay"); overlayOnDisk = !a.has("overlay-in-memory")
    }
}
