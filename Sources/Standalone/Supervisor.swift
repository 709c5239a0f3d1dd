// The supervisor of one standalone sandbox: the process that starts it (a
// pod Sentry from Sources/Sandbox/Pod.swift holding one container, "main"),
// serves its published ports and its egress, waits for it, records its
// exit status, restarts it under --restart, and cleans up after it. For
// `moat run -d` it is a detached `moat standalone-supervise` process of its
// own (no daemon: one supervisor per sandbox, like podman's conmon); for a
// foreground `moat run` it is the `moat` process itself, with the
// application on its stdin/stdout/stderr.

import Foundation
import Glibc
import Sandbox

public enum Supervisor {
    /// The container inside the sandbox's pod Sentry.
    public static let container = "main"

    /// A signal the supervisor received, to pass on to the application.
    nonisolated(unsafe) static var pendingSignal: Int32 = 0

    /// Starts the sandbox whose record `id` is (state created) and supervises
    /// it to the end; returns the application's exit status (125: Moat
    /// could not start it, with the reason in the record and on stderr).
    /// `stdio`: host fds for a foreground run; nil: output to the log.
    public static func run(store: StandaloneStore, id: String, stdio: [Int32]?) -> Int32 {
        let p = store.paths(id)
        var spec: SandboxSpec
        do {
            spec = try store.update(id) { r in
                r.supervisorPid = getpid(); r.supervisorStart = processStartTime(getpid()) ?? 0
                r.foreground = stdio != nil
            }.spec
        } catch { return report(store, id, "\(error)") }
        var mappings: [PortMapping] = []
        for s in spec.ports {
            guard let m = PortMapping.parse(s) else { return report(store, id, "-p \(s): expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp]") }
            mappings.append(m)
        }
        if spec.network == "host" && !mappings.isEmpty { return report(store, id, "-p needs the sandbox's own network (not --network host)") }
        let policy: (always: Bool, onFailure: Bool, max: Int)
        do { policy = try spec.restartPolicy() } catch { return report(store, id, "\(error)") }
        let cgroup: SandboxCgroup?
        do { cgroup = try SandboxCgroup.enter(id: String(id.prefix(12)), spec) } catch { return report(store, id, "\(error)") }
        defer { cgroup?.remove() }
        let ports: PublishedPorts
        do { ports = try PublishedPorts(mappings) } catch {
            let hint = "\(error)".contains("in use") ? " (another process or sandbox holds it: moat ps, or choose another host port)" : ""
            return report(store, id, "\(error)\(hint)")
        }
        defer { ports.close() }
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            signal(s) { sig in Supervisor.pendingSignal = sig }
        }
        signal(SIGPIPE, SIG_IGN)

        var pc = PodConfig(id: id, stateDir: p.pod)
        pc.hostname = spec.hostname.isEmpty ? String(id.prefix(12)) : spec.hostname
        switch spec.network {
        case "host": pc.network = .host
        case "none": pc.network = .loopback
        default: pc.network = .loopback; pc.egress = true
        }
        pc.debug = spec.debug
        pc.cgroupFiles = SandboxCgroup.v2Files(spec)
        if spec.debug { pc.logPath = p.moatLog }
        let pod: PodSandbox
        cgroup?.join()
        do { pod = try PodSandbox.start(pc) } catch { cgroup?.leave(); return report(store, id, "\(error)") }
        cgroup?.leave()
        defer { try? pod.stop(timeoutSeconds: 0); try? pod.destroy() }
        var code: Int32 = 0
        while true {
            var cc = ContainerConfig(id: container, rootfs: spec.rootfs, process: process(spec))
            cc.readOnlyRoot = spec.readOnly
            cc.mounts = spec.volumes.map { ContainerMount(containerPath: $0.container, kind: .bind(hostPath: $0.host), readOnly: $0.readOnly) }
                + spec.tmpfs.map { ContainerMount(containerPath: $0, kind: .tmpfs) }
                + generatedFiles(spec, hostname: pc.hostname)
            cc.logPath = p.log
            cc.stdio = stdio
            do {
                cgroup?.join()   // the container's Gofers
                defer { cgroup?.leave() }
                try pod.createContainer(cc)
                try pod.startContainer(container)
            } catch {
                // 126/127 when the command cannot be run or is not found (as a foreground run says).
                let st = try? pod.containerStatus(container)
                try? pod.removeContainer(container)
                let code = st.map { $0.state == .exited && ($0.exitCode == 126 || $0.exitCode == 127) ? $0.exitCode : 125 } ?? 125
                return report(store, id, "\(error)", code: code)
            }
            ports.start(sandboxPid: pod.sentryPid)
            let sentry = pod.sentryPid
            _ = try? store.update(id) { r in
                r.state = .running; r.sentryPid = sentry; r.sentryStart = processStartTime(sentry) ?? 0
                r.startedAt = Date(); r.finishedAt = nil; r.exitCode = nil; r.error = nil
            }
            code = wait(pod)
            let r = try? store.update(id) { r in r.state = .exited; r.exitCode = code; r.finishedAt = Date() }
            guard let rec = r, !rec.stopRequested, pendingSignal == 0,
                  policy.always || (policy.onFailure && code != 0), rec.restarts < policy.max,
                  (try? pod.removeContainer(container)) != nil else { break }
            // Back off a little more at each restart (at most 5 s), as podman does.
            let delay = min(5_000_000, 100_000 << min(rec.restarts, 6))
            usleep(UInt32(delay))
            if (try? store.read(id))?.stopRequested == true || pendingSignal != 0 { break }
            _ = try? store.update(id) { $0.restarts += 1 }
        }
        try? pod.stop(timeoutSeconds: 0)
        if spec.autoRemove {
            try? pod.destroy()
            try? store.remove(id)
        }
        return code
    }

    /// Waits for the container to exit, passing signals on; its exit
    /// status (137 when the Sentry itself is gone).
    static func wait(_ pod: PodSandbox) -> Int32 {
        while true {
            let sig = pendingSignal
            if sig != 0 {
                pendingSignal = 0
                try? pod.signalContainer(container, sig)
            }
            guard let st = try? pod.containerStatus(container) else { return 137 }
            if st.state == .exited { return st.exitCode }
            usleep(50_000)
        }
    }

    static func process(_ spec: SandboxSpec) -> ContainerProcess {
        var p = ContainerProcess(argv: spec.argv)
        p.env = spec.env; p.cwd = spec.cwd; p.uid = spec.uid; p.gid = spec.gid
        p.capabilities = spec.capabilities
        p.tty = spec.tty; p.stdin = spec.interactive
        return p
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf, as podman makes them.
    static func generatedFiles(_ spec: SandboxSpec, hostname: String) -> [ContainerMount] {
        func file(_ path: String, _ text: String) -> ContainerMount {
            ContainerMount(containerPath: path, kind: .file(contents: Array(text.utf8), mode: 0o644))
        }
        // --add-host NAME:IP lines after the usual ones.
        let extra = (spec.addHosts ?? []).compactMap { h -> String? in
            guard let i = h.firstIndex(of: ":") else { return nil }
            return String(h[h.index(after: i)...]) + "\t" + String(h[..<i]) + "\n"
        }.joined()
        var out = [file("/etc/hostname", hostname + "\n"),
                   file("/etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(hostname)\n" + extra)]
        if let dns = spec.dns, !dns.isEmpty {
            out.append(file("/etc/resolv.conf", dns.map { "nameserver \($0)\n" }.joined()))
        } else if spec.network != "none" {
            let servers = spec.network == "host" ? [] : hostNameServers()
            if !servers.isEmpty { out.append(file("/etc/resolv.conf", servers.map { "nameserver \($0)\n" }.joined())) }
        }
        return out
    }

    /// Records why the sandbox could not start and says it on stderr.
    static func report(_ store: StandaloneStore, _ id: String, _ message: String, code: Int32 = 125) -> Int32 {
        _ = try? store.update(id) { r in
            r.state = .exited; r.exitCode = code; r.error = message; r.finishedAt = Date()
        }
        fputs("moat: \(message)\n", stderr)
        if let r = try? store.read(id), r.spec.autoRemove, r.foreground { try? store.remove(id) }
        return code
    }
}

extension Supervisor {
    /// `moat run -d` with a record: the sandbox's id once it runs. When it
    /// could not start, nothing is kept and the error says why.
    public static func runDetached(store: StandaloneStore, root: String, name: String?, spec: SandboxSpec) throws -> String {
        let record = try store.create(name: name, spec: spec)
        let r: SandboxRecord
        do { r = try launchDetached(store: store, root: root, id: record.id) } catch {
            _ = try? store.remove(record.id, force: true)
            throw error
        }
        if r.state == .exited, let e = r.error {
            _ = try? store.remove(r.id, force: true)
            throw StandaloneError.notStarted(e, status: r.exitCode ?? 125)
        }
        return r.id
    }

    /// `moat run` in the foreground with a record: makes the record, then
    /// replaces this process (same pid, terminal, stdio and parent) with
    /// `moat standalone-supervise --foreground`, which confines itself first
    /// thing like the detached supervisor (Sandbox/DaemonConfinement.swift):
    /// this process may have started threads (an image pull), and
    /// capabilities are per thread, so it could not drop them here. `stdin`
    /// becomes the application's fd 0 (/dev/null unless -i). Returns only
    /// if the exec failed, with the record removed.
    public static func execForeground(store: StandaloneStore, root: String, name: String?, spec: SandboxSpec, stdin: Int32) throws -> Never {
        let record = try store.create(name: name, spec: spec)
        if stdin != 0 && dup2(stdin, 0) != 0 {
            let e = errno
            _ = try? store.remove(record.id, force: true)
            throw StandaloneError.failed("cannot set up stdin: \(String(cString: strerror(e)))")
        }
        let args = ["moat", "standalone-supervise", "--foreground", "--root", root, record.id]
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &cargs)
        let e = errno
        for p in cargs { free(p) }
        _ = try? store.remove(record.id, force: true)
        throw StandaloneError.failed("cannot start the supervisor: \(String(cString: strerror(e)))")
    }

    /// The exec'd foreground supervisor (`standalone-supervise --foreground`):
    /// supervises on this process's stdio; its exit status. A sandbox that
    /// could not start leaves no record (the reason went to stderr).
    public static func superviseForeground(store: StandaloneStore, id: String) -> Int32 {
        let code = run(store: store, id: id, stdio: [0, 1, 2])
        if let r = try? store.find(id), r.error != nil { _ = try? store.remove(r.id, force: true) }
        return code
    }

    /// `moat run -d`: starts the supervisor as a process of its own (a new
    /// session, stdio on /dev/null, this executable's hidden
    /// `standalone-supervise` command) and waits until the sandbox runs or
    /// failed to start; returns its record then.
    static func launchDetached(store: StandaloneStore, root: String, id: String) throws -> SandboxRecord {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(0x80 /* POSIX_SPAWN_SETSID */ | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var empty = sigset_t(); sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var all = sigset_t(); sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        // Nothing else of ours: a pipe the caller reads must see its end when
        // moat run exits, not when the sandbox does.
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in open.compactMap({ Int32($0) }) where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        let args = ["moat", "standalone-supervise", "--root", root, id]
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), nil]
        defer { for p in cargs { free(p) }; for p in cenv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attr, &cargs, &cenv)
        if rc != 0 { throw StandaloneError.failed("cannot start the supervisor: \(String(cString: strerror(rc)))") }
        // Reap it if it exits while we wait (it normally outlives us).
        var status: Int32 = 0
        var seen: SandboxRecord? = nil
        while true {
            if let r = try? store.read(id) {
                if r.state != .created { return r }
                seen = r
            }
            if waitpid(pid, &status, WNOHANG) == pid {
                switch Result(catching: { try store.read(id) }) {
                case .success(let r) where r.state != .created: return r
                case .failure where status == 0:
                    // The sandbox started, ended and was removed (--rm)
                    // between two looks, and its supervisor exited cleanly:
                    // it ran (a short command under `run -d --rm`).
                    if var r = seen { r.state = .exited; return r }
                default: break
                }
                throw StandaloneError.failed("the supervisor exited before the sandbox started (status \(status))")
            }
            usleep(20_000)
        }
    }
}
