// A pod sandbox: one Sentry that hosts several containers, as `moat cri`
// needs (a Kubernetes pod is one sandbox; its containers share the pod's
// network namespace, IPC and, when asked, its pid namespace, inside one
// emulated kernel). No pause process runs on the host: the pod's Sentry
// starts with no application process and waits on its control socket.
//
// Each container gets its own root file system (a Gofer confined to the
// image's unpacked, shared, read-only root, with a private writable layer in
// Sentry memory), its own mount namespace inside the Sentry, and its own
// processes. Pod Sentries outlive the process that started them (`moat cri`
// may restart): all that is needed to reach one again is in its state
// directory, which `reconnect` reads.
//
// This file is the contract between the CRI server (Sources/CRI) and the
// sandbox side (this module and the Sentry's control channel).

import Glibc

public enum PodNetwork: Sendable, Equatable {
    /// A new network namespace with loopback up (CNI may then configure it
    /// through `PodSandbox.networkNamespacePath`).
    case loopback
    /// Join this network namespace (a path such as /var/run/netns/X).
    case namespace(String)
    /// The host's network namespace (NODE network mode).
    case host
}

public struct PodConfig: Sendable {
    public var id: String
    /// A directory only this pod uses (control socket, pid file, state);
    /// created by `start`, removed by `destroy`.
    public var stateDir: String
    public var hostname: String = "localhost"
    public var dnsServers: [String] = []
    public var dnsSearches: [String] = []
    public var dnsOptions: [String] = []
    /// Extra /etc/hosts lines ("IP NAME...").
    public var hostsEntries: [String] = []
    public var network: PodNetwork = .loopback
    /// KEY=VALUE sysctls the pod's kernel shows under /proc/sys.
    public var sysctls: [String: String] = [:]
    /// A cgroup (v1 or v2 path relative to the hierarchy root) the pod's host
    /// processes go into; nil for none.
    public var cgroupParent: String? = nil
    /// Moat's own log for this pod (never the containers' output).
    public var logPath: String? = nil
    public var debug = false
    /// The seccomp-notify fast path (false: ptrace only).
    public var fastPath = true
    public init(id: String, stateDir: String) { self.id = id; self.stateDir = stateDir }
}

public struct ContainerProcess: Sendable {
    public var argv: [String]
    public var env: [String] = []
    public var cwd: String = "/"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var additionalGids: [UInt32] = []
    /// Capability mask (bit N = capability N) for bounding/permitted/effective;
    /// nil: the container default (Docker's default set).
    public var capabilities: UInt64? = nil
    public var noNewPrivs = false
    public var tty = false
    /// Keep stdin open for attach.
    public var stdin = false
    public var stdinOnce = false
    public init(argv: [String]) { self.argv = argv }
}

public enum ContainerMountKind: Sendable, Equatable {
    /// A host directory or file, served by a Gofer confined to it.
    case bind(hostPath: String)
    /// An empty tmpfs in Sentry memory.
    case tmpfs
    /// A file with these contents, made in Sentry memory (generated
    /// /etc/hosts, /etc/resolv.conf, /etc/hostname, secrets...).
    case file(contents: [UInt8], mode: UInt32)
}

public struct ContainerMount: Sendable, Equatable {
    public var containerPath: String
    public var kind: ContainerMountKind
    public var readOnly = false
    public init(containerPath: String, kind: ContainerMountKind, readOnly: Bool = false) {
        self.containerPath = containerPath; self.kind = kind; self.readOnly = readOnly
    }
}

public struct ContainerConfig: Sendable {
    public var id: String
    /// The image's unpacked root file system: served read-only; the
    /// container's writes go to a private layer unless `readOnlyRoot`.
    public var rootfs: String
    public var readOnlyRoot = false
    public var mounts: [ContainerMount] = []
    public var process: ContainerProcess
    /// The container's stdout/stderr go to this file in the CRI log format
    /// (RFC 3339 nano timestamp, stream, P/F, line); nil discards them.
    public var logPath: String? = nil
    /// Share the pod's pid namespace (CRI NamespaceMode POD) instead of a
    /// pid namespace of the container's own (CONTAINER).
    public var sharePodPIDNamespace = false
    public init(id: String, rootfs: String, process: ContainerProcess) {
        self.id = id; self.rootfs = rootfs; self.process = process
    }
}

public enum ContainerState: Sendable, Equatable {
    case created
    case running
    case exited
    case unknown
}

public struct ContainerStatusInfo: Sendable, Equatable {
    public var state: ContainerState
    /// Nanoseconds since the epoch; 0 when not yet.
    public var createdAt: Int64 = 0
    public var startedAt: Int64 = 0
    public var finishedAt: Int64 = 0
    /// The exit code (128+N when killed by signal N), when exited.
    public var exitCode: Int32 = 0
    public var reason: String = ""
    public init(state: ContainerState) { self.state = state }
}

public struct ContainerStatsInfo: Sendable, Equatable {
    /// Cumulative CPU time of the container's processes, nanoseconds.
    public var cpuNanoseconds: UInt64 = 0
    /// Memory the container's processes use (resident), bytes.
    public var memoryWorkingSetBytes: UInt64 = 0
    /// Bytes in the container's private writable layer.
    public var writableLayerBytes: UInt64 = 0
    public init() {}
}

public struct PodError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case notFound, alreadyExists, failedPrecondition, invalidArgument, internalError, unimplemented }
    public var kind: Kind
    public var description: String
    public init(_ kind: Kind, _ description: String) { self.kind = kind; self.description = description }
}

/// A running pod Sentry, reached through its control socket. Thread-safe:
/// each call opens its own connection.
public final class PodSandbox: @unchecked Sendable {
    public let config: PodConfig
    /// The Sentry's host pid.
    public private(set) var sentryPid: pid_t = 0

    init(config: PodConfig) { self.config = config }

    /// Starts the pod's Sentry (detached from the caller) and returns once it
    /// accepts requests.
    public static func start(_ c: PodConfig) throws -> PodSandbox {
        throw PodError(.unimplemented, "pod sandboxes are not implemented yet")
    }

    /// Reaches a pod started earlier (possibly by another process) from its
    /// state directory; throws notFound when its Sentry is gone.
    public static func reconnect(stateDir: String) throws -> PodSandbox {
        throw PodError(.unimplemented, "pod sandboxes are not implemented yet")
    }

    /// The pod's network namespace as a path CNI plugins can use.
    public var networkNamespacePath: String { "/proc/\(sentryPid)/ns/net" }

    public func createContainer(_ c: ContainerConfig) throws {
        throw PodError(.unimplemented, "containers are not implemented yet")
    }
    public func startContainer(_ id: String) throws {
        throw PodError(.unimplemented, "containers are not implemented yet")
    }
    /// Sends a signal to every process of the container.
    public func signalContainer(_ id: String, _ signal: Int32) throws {
        throw PodError(.unimplemented, "containers are not implemented yet")
    }
    public func containerStatus(_ id: String) throws -> ContainerStatusInfo {
        throw PodError(.unimplemented, "containers are not implemented yet")
    }
    public func removeContainer(_ id: String) throws {
        throw PodError(.unimplemented, "containers are not implemented yet")
    }
    /// Runs a process in the container with the given host fds as its stdio
    /// and returns its wait status; killed after `timeoutSeconds` (0: none).
    public func exec(_ id: String, _ p: ContainerProcess, stdin: Int32, stdout: Int32, stderr: Int32,
                     timeoutSeconds: Int = 0) throws -> Int32 {
        throw PodError(.unimplemented, "exec is not implemented yet")
    }
    /// Reopens the container's log file (after the caller rotated it).
    public func reopenLog(_ id: String) throws {
        throw PodError(.unimplemented, "logs are not implemented yet")
    }
    public func stats(_ id: String) throws -> ContainerStatsInfo {
        throw PodError(.unimplemented, "stats are not implemented yet")
    }
    /// Stops every container and the Sentry; idempotent.
    public func stop(timeoutSeconds: Int = 10) throws {
        throw PodError(.unimplemented, "pod sandboxes are not implemented yet")
    }
    /// After `stop`: removes the state directory and anything else the pod
    /// left on the host; idempotent.
    public func destroy() throws {
        throw PodError(.unimplemented, "pod sandboxes are not implemented yet")
    }
}
