// `moat run`'s flags turned into what the sandbox needs: the root file
// system (an image, a directory or the busybox rootfs), the command (the
// image's entrypoint and cmd under --entrypoint and the given words), the
// environment (image, --env-file, -e), the user and the capabilities; then
// either RunOptions (a foreground run) or a SandboxSpec (a standalone
// sandbox with a record). Argument handling only: no logic of a sandbox.

import ArgumentParser
import Foundation
import Glibc
import Sandbox
import Standalone

/// What `moat run` assumes for a flag not given (and the image does not
/// say): one place for Run's parser and FastRun's, which must agree.
enum RunDefaults {
    static let hostname = "moat"
    static let network = "sandbox"
    static let user = "0:0"
    static let cwd = "/"
    static let overlayMedium = "self"
    /// --overlay-medium: self is on disk, memory in memfds; nil: neither.
    static func overlayOnDisk(_ medium: String) -> Bool? {
        switch medium { case "self": return true; case "memory": return false; default: return nil }
    }
}

struct RunSetup {
    let run: Run
    var rootDir: String
    var argv: [String]
    var env: [String]
    var cwd: String
    var uid: UInt32
    var gid: UInt32
    var imageRef = ""
    var imageID = ""

    init(run: Run, image: String?, words: [String]) throws {
        self.run = run
        rootDir = run.rootfs ?? run.defaultRootfs()
        // A detached sandbox's supervisor does not run in the caller's
        // directory: a relative --rootfs is made absolute here, once.
        if !rootDir.hasPrefix("/") { rootDir = FileManager.default.currentDirectoryPath + "/" + rootDir }
        var imageEnv: [String] = [], cwd = run.cwd, imageUser: String? = nil
        var cmd = words
        let entry: [String]? = run.entrypoint.map { $0.isEmpty ? [] : [$0] }
        if let ref = image {
            guard !run.noOverlay else { throw ValidationError("--no-overlay would write into the image shared by every container") }
            let resolved = try ImageRun.resolve(ref, root: run.root)
            imageRef = ref; imageID = resolved.id
            rootDir = resolved.rootfs
            imageEnv = resolved.config.env
            if cwd == nil, !resolved.config.workingDir.isEmpty { cwd = resolved.config.workingDir }
            if !resolved.config.user.isEmpty { imageUser = resolved.config.user }
            // --entrypoint replaces the image's entrypoint and drops its cmd (docker's rule).
            if let e = entry { cmd = e + cmd } else { cmd = resolved.config.entrypoint + (cmd.isEmpty ? resolved.config.cmd : cmd) }
        } else if let e = entry {
            cmd = e + cmd
        }
        guard !cmd.isEmpty else {
            throw ValidationError(image == nil ? "a command to run is required: moat run IMAGE [COMMAND], or moat run --rootfs DIR -- COMMAND"
                                               : "the image \(image!) has no entrypoint or cmd: give a command after it")
        }
        argv = cmd
        let userSpec = run.user ?? imageUser ?? RunDefaults.user
        let numeric = try ImageRun.numericUser(userSpec, rootfs: rootDir)
        let parts = numeric.split(separator: ":")
        guard let u = UInt32(parts.first ?? ""), parts.count <= 2, let g = UInt32(parts.count == 2 ? parts[1] : parts[0]) else {
            throw ValidationError("--user must be UID[:GID] or names in the image's /etc/passwd")
        }
        uid = u; gid = g
        do {
            env = try RunEnvironment.merge(image: imageEnv, envFiles: run.envFile, given: run.env, uid: uid, tty: run.tty)
        } catch let e as StandaloneError { throw ValidationError(e.description) }
        self.cwd = cwd ?? RunDefaults.cwd
    }

    func ports() throws -> [PortMapping] {
        try run.publish.map { s -> PortMapping in
            guard let p = PortMapping.parse(s) else { throw ValidationError("-p \(s): expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]") }
            return p
        }
    }

    /// A foreground run through Sandbox.run (no record).
    func runOptions() throws -> RunOptions {
        guard let net = NetworkMode(rawValue: run.network) else { throw ValidationError("--network must be none, sandbox or host") }
        var o = RunOptions(rootfs: rootDir, argv: argv)
        o.env = env; o.cwd = cwd; o.uid = uid; o.gid = gid
        o.strace = run.strace; o.debug = run.debug; o.logPath = run.log
        o.readOnly = run.readOnly; o.hostname = run.hostname ?? RunDefaults.hostname; o.overlay = !run.noOverlay
        guard let onDisk = RunDefaults.overlayOnDisk(run.overlayMedium) else { throw ValidationError("--overlay-medium must be self or memory") }
        o.overlayOnDisk = onDisk
        o.network = net; o.ports = try ports()
        if let p = run.networkNamespace {
            guard run.network == RunDefaults.network || run.network == "host" else { throw ValidationError("--network-namespace replaces --network") }
            o.network = .host; o.networkNamespace = p
        }
        for h in run.addHost where !h.contains(":") { throw ValidationError("--add-host \(h): expected NAME:IP") }
        o.addHosts = run.addHost; o.dns = run.dns
        o.capabilities = try Run.capabilityMask(drop: run.capDrop, add: run.capAdd)
        for s in run.sysctl where !s.contains("=") { throw ValidationError("--sysctl \(s): expected KEY=VALUE") }
        o.sysctl = run.sysctl
        guard ["fast", "ptrace", "kvm"].contains(run.platform) else { throw ValidationError("--platform must be fast, ptrace or kvm") }
        o.fastPath = run.platform == "fast"
        o.kvm = run.platform == "kvm"
        return o
    }

    /// A standalone sandbox (moat ps, logs, exec, stop...).
    func standaloneSpec() throws -> SandboxSpec {
        _ = try ports()
        var s = SandboxSpec(rootfs: rootDir, argv: argv)
        s.image = imageRef; s.imageID = imageID
        s.env = env; s.cwd = cwd; s.uid = uid; s.gid = gid
        s.hostname = run.hostname ?? ""
        s.network = run.network
        s.ports = run.publish
        for h in run.addHost where !h.contains(":") { throw ValidationError("--add-host \(h): expected NAME:IP") }
        s.addHosts = run.addHost.isEmpty ? nil : run.addHost
        s.dns = run.dns.isEmpty ? nil : run.dns
        do {
            s.volumes = try run.volume.map { try SandboxSpec.Volume.parse($0) }
            s.restart = run.restart
            _ = try s.restartPolicy()
        } catch let e as StandaloneError { throw ValidationError(e.description) }
        for t in run.tmpfs where !t.hasPrefix("/") { throw ValidationError("--tmpfs \(t): expected an absolute path") }
        s.tmpfs = run.tmpfs.map { String($0.split(separator: ":", maxSplits: 1)[0]) }
        s.readOnly = run.readOnly
        s.capabilities = try Run.capabilityMask(drop: run.capDrop, add: run.capAdd)
        if let m = run.memory {
            guard let bytes = RunEnvironment.bytes(m) else { throw ValidationError("--memory \(m): expected a number with b, k, m or g") }
            s.memoryBytes = bytes
        }
        if let c = run.cpus { guard c > 0 else { throw ValidationError("--cpus must be more than 0") }; s.cpus = c }
        s.pidsLimit = run.pidsLimit
        s.autoRemove = run.rm
        s.interactive = run.interactive; s.tty = run.tty
        s.debug = run.debug
        return s
    }
}
