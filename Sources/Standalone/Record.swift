// Standalone sandboxes (`moat run -d`, `moat ps`, `moat stop`...): what is
// kept of each one. Moat runs them without a daemon, as podman does: every
// command reads and updates the records under ROOT/standalone (one
// directory per sandbox), and each sandbox has a supervisor process of its
// own (Supervisor.swift) that started it and records how it ended. This file
// owns the record and its directory layout; Store.swift owns finding and
// locking them.

import Foundation
import Glibc

/// Everything needed to (re)start a sandbox, fixed at `moat run`.
public struct SandboxSpec: Codable, Sendable {
    public var image: String = ""
    public var imageID: String = ""
    public var rootfs: String
    public var argv: [String]
    public var env: [String] = []
    public var cwd = "/"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var hostname = ""
    /// none (loopback only), sandbox (loopback + outbound) or host.
    public var network = "sandbox"
    /// -p specs as given: [HOSTIP:]HOSTPORT:CONTAINERPORT[/udp].
    public var ports: [String] = []
    /// --add-host NAME:IP lines for /etc/hosts; --dns servers for /etc/resolv.conf.
    public var addHosts: [String]? = nil
    public var dns: [String]? = nil
    public var volumes: [Volume] = []
    public var tmpfs: [String] = []
    public var readOnly = false
    /// Capability mask; nil: Docker's default set.
    public var capabilities: UInt64? = nil
    public var memoryBytes: UInt64? = nil
    public var cpus: Double? = nil
    public var pidsLimit: Int? = nil
    /// no, always, or on-failure[:MAX].
    public var restart = "no"
    public var autoRemove = false
    public var interactive = false
    public var tty = false
    public var debug = false
    public init(rootfs: String, argv: [String]) { self.rootfs = rootfs; self.argv = argv }

    public struct Volume: Codable, Sendable, Equatable {
        public var host: String
        public var container: String
        public var readOnly: Bool
        public init(host: String, container: String, readOnly: Bool) {
            self.host = host; self.container = container; self.readOnly = readOnly
        }
        /// HOST:CONTAINER[:ro|rw]; HOST must be an absolute path that exists.
        public static func parse(_ s: String) throws -> Volume {
            let f = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 2 || f.count == 3, f[0].hasPrefix("/"), f[1].hasPrefix("/") else {
                throw StandaloneError.invalid("-v \(s): expected HOST:CONTAINER[:ro] with absolute paths (named volumes are not supported)")
            }
            var ro = false
            if f.count == 3 {
                for o in f[2].split(separator: ",") {
                    switch o {
                    case "ro": ro = true
                    case "rw", "z", "Z": break
                    default: throw StandaloneError.invalid("-v \(s): unknown option \(o) (ro or rw)")
                    }
                }
            }
            guard access(f[0], F_OK) == 0 else {
                throw StandaloneError.invalid("-v \(s): the host path \(f[0]) does not exist (create it first)")
            }
            return Volume(host: f[0], container: f[1], readOnly: ro)
        }
    }

    /// The restart policy: (restart at all, only after a failure, at most).
    public func restartPolicy() throws -> (always: Bool, onFailure: Bool, max: Int) {
        let p = restart.split(separator: ":", maxSplits: 1).map(String.init)
        switch p.first ?? "no" {
        case "no": return (false, false, 0)
        case "always", "unless-stopped": return (true, false, Int.max)
        case "on-failure":
            if p.count == 2 {
                guard let n = Int(p[1]), n >= 0 else { throw StandaloneError.invalid("--restart \(restart): the count must be a number") }
                return (false, true, n)
            }
            return (false, true, Int.max)
        default: throw StandaloneError.invalid("--restart \(restart): expected no, always, unless-stopped or on-failure[:N]")
        }
    }
}

/// A sandbox's record: its spec and what became of it.
public struct SandboxRecord: Codable, Sendable {
    public enum State: String, Codable, Sendable { case created, running, exited }
    public var id: String
    public var name: String
    public var created: Date
    public var spec: SandboxSpec
    public var state: State = .created
    /// The process supervising the sandbox (pid + start time tell a reused pid).
    public var supervisorPid: Int32 = 0
    public var supervisorStart: UInt64 = 0
    public var sentryPid: Int32 = 0
    public var sentryStart: UInt64 = 0
    public var startedAt: Date? = nil
    public var finishedAt: Date? = nil
    public var exitCode: Int32? = nil
    public var restarts = 0
    /// `moat stop` asked: no restart after this exit.
    public var stopRequested = false
    /// Why the sandbox could not start, for the one who started it.
    public var error: String? = nil
    /// The supervisor runs in the foreground (`moat run` without -d).
    public var foreground = false
}

public enum StandaloneError: Error, CustomStringConvertible, Sendable {
    case invalid(String)
    case notFound(String)
    case conflict(String)
    case failed(String)
    /// The application could not be started; `status` is moat run's (125, or 126/127 as execve says).
    case notStarted(String, status: Int32)
    public var description: String {
        switch self {
        case .invalid(let m), .notFound(let m), .conflict(let m), .failed(let m), .notStarted(let m, _): return m
        }
    }
    /// The exit status of the command that failed so.
    public var status: Int32 {
        if case .notStarted(_, let s) = self { return s }
        return 125
    }
}

/// A sandbox's directory, ROOT/standalone/ID.
struct SandboxPaths {
    let dir: String
    var record: String { dir + "/record.json" }
    var lock: String { dir + "/lock" }
    /// The pod state directory (control socket, pod.state) of its Sentry.
    var pod: String { dir + "/pod" }
    /// The application's output, in the CRI log format.
    var log: String { dir + "/ctr.log" }
    /// Moat's own log for the sandbox (never the application's output).
    var moatLog: String { dir + "/moat.log" }
}

/// The process's start time (field 22 of /proc/PID/stat); nil when gone.
func processStartTime(_ pid: Int32) -> UInt64? {
    guard pid > 0, let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = s.lastIndex(of: ")") else { return nil }
    let rest = s[s.index(after: close)...].split(separator: " ")
    guard rest.count > 19, rest[0] != "Z", rest[0] != "X" else { return nil }
    return UInt64(rest[19])
}

/// The process `pid` is alive and is the one that started at `start`.
func isAlive(_ pid: Int32, _ start: UInt64) -> Bool {
    pid > 0 && processStartTime(pid) == start
}
