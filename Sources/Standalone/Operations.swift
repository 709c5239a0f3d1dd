// What `moat stop`, `kill`, `rm`, `exec`, `stats` and `logs` do to a
// standalone sandbox, through its pod Sentry's control socket (reached
// from the pod state directory) and its record. They work whether or not
// the sandbox's supervisor is still alive: when it was killed, they do the
// cleaning up it would have done.

import Foundation
import Glibc
import Sandbox

extension StandaloneStore {
    func pod(_ r: SandboxRecord) -> PodSandbox? { try? PodSandbox.reconnect(stateDir: paths(r.id).pod) }

    func requireRunning(_ r: SandboxRecord) throws -> PodSandbox {
        guard live(r).state == .running, let pod = pod(r) else {
            throw StandaloneError.conflict("sandbox \(r.name) is not running (moat start is not supported: run it again)")
        }
        return pod
    }

    /// SIGTERM (or `signal`) to the application, SIGKILL after `timeout`
    /// seconds; returns once the exit is recorded. No restart follows.
    public func stop(_ ref: String, timeout: Int, signal: Int32 = SIGTERM) throws -> SandboxRecord {
        var r = try find(ref)
        r = try update(r.id) { $0.stopRequested = true }
        if live(r).state == .running, let pod = pod(r) {
            try? pod.signalContainer(Supervisor.container, signal)
            if !waitExit(pod, seconds: Double(timeout)) {
                try? pod.signalContainer(Supervisor.container, SIGKILL)
                _ = waitExit(pod, seconds: 10)
            }
        }
        return try settle(r)
    }

    /// Waits for the supervisor to record the end; does its work when it is gone.
    func settle(_ r: SandboxRecord) throws -> SandboxRecord {
        // The supervisor records the exit, then cleans up (cgroup, ports,
        // --rm) and exits: done when it is gone.
        for _ in 0..<500 {
            if !supervisorAlive(r) { break }
            usleep(20_000)
        }
        guard access(paths(r.id).record, F_OK) == 0 else { return r }   // --rm removed it
        if supervisorAlive(r) { return try read(r.id) }
        // Nobody supervises it: finish the job.
        let status = try? pod(r)?.containerStatus(Supervisor.container)
        if let pod = pod(r) { try? pod.stop(timeoutSeconds: 0) }
        if let pod = try? PodSandbox.reconnect(stateDir: paths(r.id).pod) { try? pod.destroy() }
        return try update(r.id) { x in
            if x.state == .running {
                x.state = .exited
                x.exitCode = status?.state == .exited ? status!.exitCode : (x.exitCode ?? 137)
                x.finishedAt = x.finishedAt ?? Date()
            }
        }
    }

    func waitExit(_ pod: PodSandbox, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            guard let st = try? pod.containerStatus(Supervisor.container), st.state != .exited else { return true }
            usleep(50_000)
        } while Date() < deadline
        return false
    }

    /// Sends a signal to every process of the application.
    public func kill(_ ref: String, signal: Int32) throws -> SandboxRecord {
        let r = try find(ref)
        let pod = try requireRunning(r)
        do { try pod.signalContainer(Supervisor.container, signal) } catch { throw StandaloneError.failed("\(error)") }
        return r
    }

    /// Removes a sandbox; a running one only with `force` (stopped first).
    public func remove(_ ref: String, force: Bool) throws -> SandboxRecord {
        let r: SandboxRecord
        do { r = try find(ref) } catch StandaloneError.notFound(let m) {
            // A directory whose record cannot be read (a disk filled up, an
            // edit by hand): its full id removes it, with -f.
            let p = paths(ref)
            guard !ref.isEmpty, !ref.contains("/"), !ref.hasPrefix("."), access(p.dir, F_OK) == 0 else { throw StandaloneError.notFound(m) }
            guard force else { throw StandaloneError.invalid("the record of \(ref) cannot be read: moat rm -f \(ref) removes what is left of it") }
            try remove(ref)
            return SandboxRecord(id: ref, name: ref, created: Date(), spec: SandboxSpec(rootfs: "", argv: []))
        }
        if live(r).state == .running {
            guard force else {
                throw StandaloneError.conflict("sandbox \(r.name) is running: stop it first (moat stop \(r.name)) or use moat rm -f")
            }
            _ = try stop(r.id, timeout: 0, signal: SIGKILL)
        } else if r.state == .created, supervisorAlive(r), !force {
            throw StandaloneError.conflict("sandbox \(r.name) is starting: wait, or use moat rm -f")
        }
        if supervisorAlive(r), r.supervisorPid != getpid() {
            Glibc.kill(r.supervisorPid, SIGKILL)
            for _ in 0..<100 {
                if !supervisorAlive(r) { break }
                usleep(20_000)
            }
        }
        if let pod = try? PodSandbox.reconnect(stateDir: paths(r.id).pod) { try? pod.stop(timeoutSeconds: 0); try? pod.destroy() }
        SandboxCgroup(dirs: SandboxCgroup.paths(id: String(r.id.prefix(12))), previous: []).remove()
        try remove(r.id)
        return r
    }

    /// Runs a command in a running sandbox with the given stdio; its exit status.
    public func exec(_ ref: String, argv: [String], env: [String], cwd: String?, user: (UInt32, UInt32)?,
                     tty: Bool, stdio: [Int32]) throws -> Int32 {
        let r = try find(ref)
        let pod = try requireRunning(r)
        var p = Supervisor.process(r.spec)
        p.argv = argv
        let keys = Set(env.map { $0.split(separator: "=", maxSplits: 1)[0] })
        p.env = r.spec.env.filter { !keys.contains($0.split(separator: "=", maxSplits: 1).first ?? "") } + env
        if let c = cwd { p.cwd = c }
        if let (u, g) = user { p.uid = u; p.gid = g }
        p.tty = tty
        let st: Int32
        do { st = try pod.exec(Supervisor.container, p, stdin: stdio[0], stdout: stdio[1], stderr: stdio[2]) } catch {
            throw StandaloneError.failed("exec in \(r.name): \(error)")
        }
        return st & 0x7f != 0 ? 128 + (st & 0x7f) : (st >> 8) & 0xff
    }

    public struct Stats: Sendable {
        public var name: String
        public var cpuNanoseconds: UInt64
        public var memoryBytes: UInt64
        public var writableLayerBytes: UInt64
        public var memoryLimit: UInt64?
    }

    public func stats(_ ref: String) throws -> Stats {
        let r = try find(ref)
        let pod = try requireRunning(r)
        do {
            let s = try pod.stats(Supervisor.container)
            return Stats(name: r.name, cpuNanoseconds: s.cpuNanoseconds, memoryBytes: s.memoryWorkingSetBytes,
                         writableLayerBytes: s.writableLayerBytes, memoryLimit: r.spec.memoryBytes)
        } catch { throw StandaloneError.failed("stats of \(r.name): \(error)") }
    }
}

/// Reading the application's log (CRI format: "TIME STREAM P|F TEXT"
/// lines, P for a partial line) back as it was written.
public struct LogReader {
    let path: String
    var offset: off_t = 0
    var pending: [UInt8] = []

    public init(path: String) { self.path = path }

    /// Writes what was added since the last call to `out` (stdout lines)
    /// and `err` (stderr lines); false when the log cannot be read.
    public mutating func drain(out: Int32, err: Int32, timestamps: Bool = false) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n <= 0 { break }
            offset += off_t(n)
            pending += buf[0..<n]
        }
        while let nl = pending.firstIndex(of: 10) {
            let line = pending[..<nl]
            pending.removeSubrange(...nl)
            let f = line.split(separator: 32, maxSplits: 3, omittingEmptySubsequences: false)
            guard f.count >= 3 else { continue }
            var text = f.count == 4 ? Array(f[3]) : []
            if f[2].elementsEqual("F".utf8) { text.append(10) }
            if timestamps { text = Array(f[0]) + [32] + text }
            let to = f[1].elementsEqual("stderr".utf8) ? err : out
            var done = 0
            while done < text.count {
                let w = text[done...].withUnsafeBytes { write(to, $0.baseAddress, $0.count) }
                if w <= 0 { break }
                done += w
            }
        }
        return true
    }
}
