// Containers: turns a CreateContainer request plus its image into the
// sandbox's ContainerConfig, the way kubelet expects a runtime to: the
// request's command replaces the image's entrypoint (and then the image's
// cmd is not used), its args replace the image's cmd; env is the image's
// with the request's on top; user from the security context, else the
// image's; mounts from the request plus generated /etc/hosts,
// /etc/resolv.conf and /etc/hostname; the log file under the pod's log
// directory.

import CRIAPI
import Foundation
import Glibc
import Images
import OCI
import Sandbox
import Sentry

let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/// The process argv: request command+args merged with the image's
/// entrypoint+cmd.
func mergedArgv(command: [String], args: [String], image: ImageConfig) throws -> [String] {
    var cmd = command
    var arguments = args
    if cmd.isEmpty {
        if arguments.isEmpty { arguments = image.cmd }
        if !(image.entrypoint.count == 1 && image.entrypoint[0].isEmpty) { cmd = image.entrypoint }
    }
    let argv = cmd + arguments
    if argv.isEmpty { throw CRIError.invalidArgument("config.command: none given and the image has no entrypoint or cmd") }
    return argv
}

/// Image env, then the request's, a later KEY replacing an earlier one.
func mergedEnv(image: [String], request: [Runtime_V1_KeyValue], hostname: String) -> [String] {
    var order: [String] = []
    var values: [String: String] = [:]
    func put(_ kv: String) {
        let key = String(kv.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0])
        if values[key] == nil { order.append(key) }
        values[key] = kv
    }
    put(defaultPath)
    if !hostname.isEmpty { put("HOSTNAME=" + hostname) }
    for e in image { put(e) }
    for kv in request where !kv.key.isEmpty { put(kv.key + "=" + String(decoding: kv.value, as: UTF8.self)) }
    return order.map { values[$0]! }
}

private let signalNumbers: [String: Int32] = [
    "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "IOT": SIGABRT,
    "BUS": SIGBUS, "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2,
    "PIPE": SIGPIPE, "ALRM": SIGALRM, "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CLD": SIGCHLD,
    "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN, "TTOU": SIGTTOU, "URG": SIGURG,
    "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO,
    "POLL": SIGIO, "PWR": SIGPWR, "SYS": SIGSYS, "RTMIN": 34, "RTMAX": 64,
]

/// "SIGTERM", "TERM", "15" -> 15; nil when unknown.
func signalNumber(_ s: String) -> Int32? {
    if let n = Int32(s), n > 0, n < 65 { return n }
    var name = s.uppercased()
    if name.hasPrefix("SIG") { name.removeFirst(3) }
    return signalNumbers[name]
}

/// The stop signal: the request's, else the image's, else SIGTERM.
func stopSignal(_ requested: Runtime_V1_Signal, image: ImageConfig) -> Int32 {
    if requested != .runtimeDefault, let n = signalNumber("\(requested)") { return n }
    return signalNumber(image.stopSignal) ?? SIGTERM
}

/// A user named in an image ("name", "uid", "uid:gid", "name:group") looked
/// up in the image's own /etc/passwd and /etc/group (read by the CRI on the
/// host: they are data, never executed).
func resolveUser(_ spec: String, rootfs: String) throws -> (uid: UInt32, gid: UInt32) {
    if spec.isEmpty { return (0, 0) }
    let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
    func lookup(_ file: String, _ name: String) -> (UInt32, UInt32)? {
        guard let text = try? String(contentsOfFile: rootfs + "/etc/" + file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count >= 4, f[0] == name, let id = UInt32(f[2]) { return (id, UInt32(f[3]) ?? 0) }
        }
        return nil
    }
    var uid: UInt32, gid: UInt32
    if let n = UInt32(parts[0]) {
        uid = n; gid = 0
        // A numeric uid still takes its primary group from passwd when listed.
        if let text = try? String(contentsOfFile: rootfs + "/etc/passwd", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false)
                if f.count >= 4, UInt32(f[2]) == n, let g = UInt32(f[3]) { gid = g; break }
            }
        }
    } else if let (u, g) = lookup("passwd", parts[0]) {
        uid = u; gid = g
    } else {
        throw CRIError.invalidArgument("image user \(parts[0].debugDescription) is not in the image's /etc/passwd")
    }
    if parts.count > 1 {
        if let g = UInt32(parts[1]) { gid = g } else if let (g, _) = lookup("group", parts[1]) { gid = g } else {
            throw CRIError.invalidArgument("image group \(parts[1].debugDescription) is not in the image's /etc/group")
        }
    }
    return (uid, gid)
}

/// The capability mask: privileged = all; else the default set with the
/// request's drops then adds.
func capabilityMask(_ sc: Runtime_V1_LinuxContainerSecurityContext) throws -> UInt64? {
    if sc.privileged { return CapabilitySets.allMask }
    guard sc.hasCapabilities else { return nil }
    func mask(_ name: String) throws -> UInt64 {
        let n = name.uppercased()
        if n == "ALL" { return CapabilitySets.allMask }
        guard let i = Capability.number(n.hasPrefix("CAP_") ? n : "CAP_" + n) else {
            throw CRIError.invalidArgument("config.linux.security_context.capabilities: unknown capability \(name)")
        }
        return 1 << UInt64(i)
    }
    var m = CapabilitySets.dockerDefaultMask
    for d in sc.capabilities.dropCapabilities { m &= ~(try mask(d)) }
    for a in sc.capabilities.addCapabilities { m |= try mask(a) }
    return m
}

func hostsFile(hostname: String) -> [UInt8] {
    var s = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if !hostname.isEmpty { s += "127.0.1.1\t\(hostname)\n" }
    return Array(s.utf8)
}

func resolvConf(servers: [String], searches: [String], options: [String]) -> [UInt8] {
    var s = ""
    if !searches.isEmpty { s += "search " + searches.joined(separator: " ") + "\n" }
    for n in servers { s += "nameserver \(n)\n" }
    if !options.isEmpty { s += "options " + options.joined(separator: " ") + "\n" }
    return Array(s.utf8)
}

let terminationMessagePathAnnotation = "io.kubernetes.container.terminationMessagePath"

/// Everything CreateContainer decides, before the sandbox is asked.
struct ContainerPlan {
    var config: ContainerConfig
    var record: ContainerRecord
    /// Host directories the container needs that do not exist yet (a
    /// missing bind-mount source, as other runtimes make it; the log
    /// file's directory), made by `prepareHost` once the plan stands.
    var hostDirectories: [String] = []
    /// An empty host file to create (the termination-message file the CRI
    /// provides when kubelet mounts none).
    var hostFiles: [String] = []

    /// The plan's host side effects. Planning itself only reads, so a bad
    /// request changes nothing on the host (and the fuzz target
    /// `cri-container` can run every request through it).
    func prepareHost() throws {
        for d in hostDirectories { try makeDirectories(d) }
        for f in hostFiles {
            let fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0o666)
            if fd >= 0 { close(fd) }
        }
    }
}

/// Chooses the writable layer's medium, as `moat run --overlay-medium`:
/// the container's annotation, else the pod's, else `moat cri
/// --overlay-medium` (self: unnamed files on the image root's own host file
/// system; memory: memfds).
let overlayMediumAnnotation = "dev.moat.overlay-medium"

func overlayOnDisk(container: [String: String], pod: [String: String], default d: String) throws -> Bool {
    let (medium, from) = container[overlayMediumAnnotation].map { ($0, "config.annotations") }
        ?? pod[overlayMediumAnnotation].map { ($0, "the pod's annotations") } ?? (d, "--overlay-medium")
    switch medium {
    case "self": return true
    case "memory": return false
    default: throw CRIError.invalidArgument("\(from): \(overlayMediumAnnotation) must be self or memory, not \(medium.debugDescription)")
    }
}

func planContainer(id: String, request r: Runtime_V1_CreateContainerRequest, pod: PodRecord,
                   image: ResolvedImage, volumeImages: [String: ResolvedImage] = [:], containerDir: String,
                   overlayMedium: String = "self") throws -> ContainerPlan {
    let c = r.config
    let sc = c.linux.securityContext
    var p = ContainerProcess(argv: try mergedArgv(command: c.command, args: c.args, image: image.config))
    p.env = mergedEnv(image: image.config.env, request: c.envs, hostname: pod.hostname)
    p.cwd = !c.workingDir.isEmpty ? c.workingDir : (!image.config.workingDir.isEmpty ? image.config.workingDir : "/")
    guard p.cwd.hasPrefix("/") else { throw CRIError.invalidArgument("config.working_dir \(p.cwd.debugDescription) is not absolute") }
    if sc.hasRunAsUser {
        guard sc.runAsUser.value >= 0, sc.runAsUser.value <= Int64(UInt32.max - 1) else {
            throw CRIError.invalidArgument("config.linux.security_context.run_as_user \(sc.runAsUser.value) is out of range")
        }
        p.uid = UInt32(sc.runAsUser.value)
        p.gid = (try? resolveUser(String(p.uid), rootfs: image.rootfs).gid) ?? 0
    } else if !sc.runAsUsername.isEmpty {
        (p.uid, p.gid) = try resolveUser(sc.runAsUsername, rootfs: image.rootfs)
    } else {
        (p.uid, p.gid) = try resolveUser(image.config.user, rootfs: image.rootfs)
    }
    if sc.hasRunAsGroup {
        // A group alone would pair with whatever user the image names.
        guard sc.hasRunAsUser || !sc.runAsUsername.isEmpty else {
            throw CRIError.invalidArgument("config.linux.security_context.run_as_group needs run_as_user or run_as_username")
        }
        guard sc.runAsGroup.value >= 0, sc.runAsGroup.value <= Int64(UInt32.max - 1) else {
            throw CRIError.invalidArgument("config.linux.security_context.run_as_group \(sc.runAsGroup.value) is out of range")
        }
        p.gid = UInt32(sc.runAsGroup.value)
    }
    p.additionalGids = try sc.supplementalGroups.map { g in
        guard g >= 0, g <= Int64(UInt32.max - 1) else {
            throw CRIError.invalidArgument("config.linux.security_context.supplemental_groups: \(g) is out of range")
        }
        return UInt32(g)
    }
    p.capabilities = try capabilityMask(sc)
    p.noNewPrivs = sc.noNewPrivs
    p.tty = c.tty; p.stdin = c.stdin; p.stdinOnce = c.stdinOnce

    var cc = ContainerConfig(id: id, rootfs: image.rootfs, process: p)
    cc.readOnlyRoot = sc.readonlyRootfs
    cc.overlayOnDisk = try overlayOnDisk(container: c.annotations, pod: pod.annotations, default: overlayMedium)
    cc.sharePodPIDNamespace = pod.pidMode == "pod"

    if !c.devices.isEmpty || !c.cdiDevices.isEmpty {
        throw CRIError.invalidArgument("config.devices: host devices cannot be passed into a Moat sandbox")
    }
    var records: [MountRecord] = []
    var taken = Set<String>()
    var hostDirectories: [String] = [], hostFiles: [String] = []
    for (i, m) in c.mounts.enumerated() {
        guard m.containerPath.hasPrefix("/") else {
            throw CRIError.invalidArgument("config.mounts[\(i)].container_path \(m.containerPath.debugDescription) is not absolute")
        }
        if m.hasImage && !m.image.image.isEmpty {
            // An image volume: the image's own root file system (or a
            // directory of it), always read-only.
            guard m.readonly else { throw CRIError.invalidArgument("config.mounts[\(i)]: an image volume must be read-only") }
            guard let vi = volumeImages[m.image.image] else {
                throw CRIError.notFound("config.mounts[\(i)].image: image \(m.image.image) not found")
            }
            var source = vi.rootfs
            if !m.imageSubPath.isEmpty {
                guard imagePathIsPlain(vi.rootfs, m.imageSubPath) else {
                    throw CRIError.invalidArgument("config.mounts[\(i)].image_sub_path \(m.imageSubPath.debugDescription) does not exist in the image (or leaves it)")
                }
                source += "/" + m.imageSubPath.split(separator: "/").joined(separator: "/")
            }
            cc.mounts.append(ContainerMount(containerPath: m.containerPath, kind: .bind(hostPath: source), readOnly: true))
            records.append(MountRecord(containerPath: m.containerPath, hostPath: source, readOnly: true, image: m.image.image, imageID: vi.id))
            taken.insert(m.containerPath)
            continue
        }
        if m.recursiveReadOnly && !m.readonly {
            throw CRIError.invalidArgument("config.mounts[\(i)]: recursive_read_only needs readonly")
        }
        // Mount events cannot cross into a sandbox: its mounts are the
        // Sentry's, over Gofers in mount namespaces of their own.
        guard m.propagation == .propagationPrivate else {
            throw CRIError.invalidArgument("config.mounts[\(i)].propagation: only PROPAGATION_PRIVATE is supported in a Moat sandbox")
        }
        guard m.hostPath.hasPrefix("/") else {
            throw CRIError.invalidArgument("config.mounts[\(i)].host_path \(m.hostPath.debugDescription) is not absolute")
        }
        // As other runtimes do, a missing host path becomes a directory.
        if access(m.hostPath, F_OK) != 0 { hostDirectories.append(m.hostPath) }
        // readonly alone is a non-recursive read-only bind (as on Linux):
        // host mounts below the path keep their access.
        cc.mounts.append(ContainerMount(containerPath: m.containerPath, kind: .bind(hostPath: m.hostPath), readOnly: m.readonly,
                                        recursiveReadOnly: m.recursiveReadOnly))
        records.append(MountRecord(containerPath: m.containerPath, hostPath: m.hostPath, readOnly: m.readonly))
        taken.insert(m.containerPath)
    }
    // Masked and read-only paths: the Sentry resolves them in the
    // container's own view (so a symbolic link in the image cannot point
    // them at anything else) and skips the absent ones.
    for (field, paths) in [("masked_paths", sc.maskedPaths), ("readonly_paths", sc.readonlyPaths)] {
        for path in paths where !path.hasPrefix("/") || path.contains("\0") {
            throw CRIError.invalidArgument("config.linux.security_context.\(field): \(path.debugDescription) is not an absolute path")
        }
    }
    cc.maskedPaths = sc.maskedPaths
    cc.readonlyPaths = sc.readonlyPaths
    cc.seccomp = try seccompProfile(sc, capabilities: p.capabilities ?? CapabilitySets.dockerDefaultMask)
    // The termination-message file: kubelet names the path in an annotation
    // and normally mounts a host file there; when it does not, the CRI does.
    var termination = ""
    if let tpath = c.annotations[terminationMessagePathAnnotation], tpath.hasPrefix("/") {
        if let m = records.first(where: { $0.containerPath == tpath }) {
            termination = m.hostPath
        } else {
            termination = containerDir + "/termination-log"
            hostFiles.append(termination)
            cc.mounts.append(ContainerMount(containerPath: tpath, kind: .bind(hostPath: termination)))
            taken.insert(tpath)
        }
    }
    if !taken.contains("/etc/hosts") {
        cc.mounts.append(ContainerMount(containerPath: "/etc/hosts", kind: .file(contents: hostsFile(hostname: pod.hostname), mode: 0o644)))
    }
    if !taken.contains("/etc/hostname") && !pod.hostname.isEmpty {
        cc.mounts.append(ContainerMount(containerPath: "/etc/hostname", kind: .file(contents: Array((pod.hostname + "\n").utf8), mode: 0o644)))
    }
    if !taken.contains("/etc/resolv.conf") {
        var contents = resolvConf(servers: pod.dnsServers, searches: pod.dnsSearches, options: pod.dnsOptions)
        if pod.dnsServers.isEmpty && pod.networkMode == "node", let host = FileManager.default.contents(atPath: "/etc/resolv.conf") {
            contents = Array(host)
        }
        cc.mounts.append(ContainerMount(containerPath: "/etc/resolv.conf", kind: .file(contents: contents, mode: 0o644)))
    }

    var logPath = ""
    if !pod.logDirectory.isEmpty && !c.logPath.isEmpty {
        guard !c.logPath.split(separator: "/").contains("..") else {
            throw CRIError.invalidArgument("config.log_path \(c.logPath.debugDescription) leaves the pod's log directory")
        }
        logPath = pod.logDirectory + "/" + c.logPath
        hostDirectories.append(String(logPath[..<logPath.lastIndex(of: "/")!]))
        cc.logPath = logPath
    }

    var rec = ContainerRecord(
        id: id, podID: pod.id, name: c.metadata.name, attempt: c.metadata.attempt,
        image: c.image.image, imageRef: image.references.first(where: { $0.contains("@") }) ?? image.id,
        imageID: image.id, createdAt: nowNanos(), labels: c.labels, annotations: c.annotations,
        logPath: logPath, mounts: records, terminationMessageHostPath: termination,
        stopSignal: stopSignal(c.stopSignal, image: image.config))
    rec.execDefaults = ExecDefaults(cc.process)
    rec.memoryLimit = try memoryLimit(c.linux.resources, "config.linux.resources")
    return ContainerPlan(config: cc, record: rec, hostDirectories: hostDirectories, hostFiles: hostFiles)
}

/// The termination message a container left (at most 4 KiB, as kubelet
/// reads it).
func readTerminationMessage(_ path: String) -> String {
    guard !path.isEmpty, let h = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? h.close() }
    let d = (try? h.read(upToCount: 4096)) ?? Data()
    return String(decoding: d, as: UTF8.self)
}

/// Whether `sub` names something in the image's root file system reached
/// without ".." or a symbolic link: the Gofer serving it is confined to the
/// host path, which must therefore be inside the image.
func imagePathIsPlain(_ rootfs: String, _ sub: String) -> Bool {
    let parts = sub.split(separator: "/")
    guard !parts.isEmpty, !parts.contains(".."), !sub.contains("\0") else { return false }
    var cur = rootfs
    var st = stat()
    for part in parts where part != "." {
        cur += "/" + part
        guard lstat(cur, &st) == 0, st.st_mode & S_IFMT != S_IFLNK else { return false }
    }
    return true
}

/// The memory limit of CRI resources: nil for none (0), refused when
/// negative or too small to start anything.
func memoryLimit(_ r: Runtime_V1_LinuxContainerResources, _ field: String) throws -> Int64? {
    let v = r.memoryLimitInBytes
    if v == 0 { return nil }
    guard v >= 4 << 20 else {
        throw CRIError.invalidArgument("\(field).memory_limit_in_bytes \(v) is below the 4 MiB minimum")
    }
    return v
}
