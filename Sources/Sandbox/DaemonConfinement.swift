// Least privilege for Moat's long-lived daemons: the supervisor of
// `moat run -d` (`moat standalone-supervise`, Sources/Standalone), `moat
// cri` (Sources/CRI), the node agent `moat node` (Sources/NodeAgent) and the
// API server (`moat controlplane`, `moat apiserver`; Sources/ControlPlane).
// `moat server` starts controlplane, cri and node as child processes of
// their own (`moat controlplane ...`), so each confines itself here as it
// would alone. The server's parent only supervises them: it keeps the union
// of their sets (each child drops to its own from there) and the deny-list
// they share (bpf stays allowed for `moat cri`'s CNI plugins).
//
// The supervisor and `moat cri` cannot be confined like the launcher of
// `moat run` (CAP_KILL only, an allow-list): for as long as they live they
// start sandboxes (the supervisor restarts its container under --restart;
// `moat cri` starts pods and containers), and every Sentry, Gofer and CNI
// plugin they start inherits their bounding set and their seccomp filter. A
// root process's exec takes its permitted set from the bounding set, and
// under no-new-privs no more than its parent's permitted set, so a daemon's
// bounding = permitted = effective set is the union of what it and every
// child need. The child confines itself further (Gofer: 5 capabilities and
// an allow-list; Sentry and stubs: none and an allow-list). The node agent
// and the API server start no sandbox and keep much less.
//
// What goes:
//  - every capability none of them uses (lists below: what stays, and why);
//  - setuid and file-capability gains on exec (no-new-privs): no child
//    runs a set-id program (CNI plugins, `ip`, iptables run as root already);
//  - the host calls in `deniedSyscalls`, with EPERM, for the daemon and
//    every descendant, native, i386 and x32 tables alike.
// `moat debug PID` shows the result (caps, seccomp, no_new_privs), and
// IntegrationTests/ConfinementTests checks it on every thread of each.
//
// Called first thing in main (Sources/moat/Moat.swift), before any thread
// starts: capabilities are per thread, and a thread started earlier would
// keep them all.

import CMoat
import Glibc

public enum DaemonConfinement {
    public enum Daemon: String, Sendable {
        case supervisor = "standalone-supervise"
        case cri = "cri"
        case node = "node"
        case controlPlane = "controlplane"
        case apiServer = "apiserver"
        case server = "server"
    }

    /// Capabilities the supervisor of `moat run -d` keeps. It starts a pod
    /// Sentry, forks or execs Gofers, publishes ports and brokers egress
    /// (Sandbox/Network.swift), joins a cgroup, and signals what it started.
    /// Not CAP_SYS_NICE: the Sentry pins each stub thread (Task.pin) as the
    /// sandbox's id, the stub's own, so sched_setaffinity needs none (stubs
    /// are pinned alike without it); its other scheduling calls are the
    /// guest's, kept in the Sentry and never passed to the host.
    static let supervisorCapabilities = [
        // The Gofer's kept five (Gofer/Confinement.swift says why each):
        "CAP_CHOWN",                // files made for a guest user get its ids
        "CAP_DAC_OVERRIDE",         // the Sentry checks permissions, not the host
        "CAP_DAC_READ_SEARCH",      // linkat(AT_EMPTY_PATH) of an open file
        "CAP_FOWNER",               // chmod/utimes/xattrs on files of any owner
        "CAP_FSETID",               // set-id bits kept across chmod/chown
        "CAP_KILL",                 // signalling the Sentry, which runs as the sandbox's own id
        "CAP_SETGID",               // the Sentry takes the sandbox's host id (Confinement.finish)
        "CAP_SETUID",               // ditto, for the uid
        "CAP_SETPCAP",              // Sentry and Gofer empty their bounding sets
        "CAP_NET_BIND_SERVICE",     // -p 80:8080: host ports below 1024 are bound here
        "CAP_NET_ADMIN",            // the Sentry brings up its network namespace's loopback and routes
        "CAP_NET_RAW",              // the egress broker's SO_BINDTODEVICE (Network.swift)
        "CAP_SYS_CHROOT",           // the Gofer's fallback when pivot_root is impossible
        "CAP_SYS_PTRACE",           // /proc/SENTRY/ns/net of another id (port relays); the Sentry seizes its stubs before it drops its own
        "CAP_SYS_ADMIN",            // mount namespaces, mounts and pivot_root of Sentry and Gofers; setns into the sandbox's network namespace
    ]

    /// `moat cri` keeps the supervisor's set (the same pod Sentry, Gofers,
    /// port relays of port-forward) and what pulling images and CNI add.
    /// CNI plugins (bridge, host-local, portmap via iptables, `ip netns
    /// exec`) need net_admin, net_raw and sys_admin, which stay anyway.
    static let criCapabilities = supervisorCapabilities + [
        "CAP_MKNOD",                // image layers hold device nodes (Images/Unpack.swift)
    ]

    /// What the node agent keeps. It reaches pods through CRI (a Unix
    /// socket), the API server over HTTP(S), reads /proc and statvfs for
    /// eviction and image GC, and writes pod logs and volumes as root; none
    /// of that needs a capability. What does:
    static let nodeCapabilities = [
        "CAP_DAC_OVERRIDE",         // removing a pod's emptyDir volume holds directories its guest made under its own ids and modes
        "CAP_FOWNER",               // ditto, for files in a guest's sticky directory (an emptyDir used as /tmp)
        "CAP_NET_BIND_SERVICE",     // the service proxy listens on Services' ports (DNS: 53) in pods' network namespaces
        "CAP_NET_ADMIN",            // `nsenter --net ip route replace local SERVICE-CIDR` in a pod's namespace (NodeAgent/ServiceProxy.swift)
        "CAP_SYS_PTRACE",           // opening /proc/SENTRY/ns/net of a Sentry that runs as the sandbox's own id (probes, proxy)
        "CAP_SYS_ADMIN",            // setns into a pod's network namespace (probes, proxy listeners, nsenter); emptyDir medium Memory mounts a tmpfs
    ]

    /// The API server keeps nothing: it serves HTTP(S) on a TCP port and a
    /// Unix socket, serves the cluster DNS over UDP and writes its SQLite
    /// database (or talks to etcd) as root, in root's own directories. Only
    /// a listening port below 1024 (the cluster DNS on 53 under `moat
    /// server`, an API port like 443) keeps CAP_NET_BIND_SERVICE. The flags
    /// are read here, before the command line is parsed (confinement comes
    /// first); ControlPlaneTests/ConfinementFlagsTests ties this reading to
    /// the flags the commands parse.
    static func apiServerCapabilities(_ argv: [String]) -> [String] {
        var ports: [Int] = []
        for (i, a) in argv.enumerated() {
            var value: String?
            for flag in ["--listen", "--dns-listen"] {
                if a == flag, i + 1 < argv.count { value = argv[i + 1] }
                if a.hasPrefix(flag + "=") { value = String(a.dropFirst(flag.count + 1)) }
            }
            if let v = value, let c = v.lastIndex(of: ":"), let p = Int(v[v.index(after: c)...]) { ports.append(p) }
        }
        return ports.contains { $0 > 0 && $0 < 1024 } ? ["CAP_NET_BIND_SERVICE"] : []
    }

    /// Host calls no daemon and no child of one (Sentry, stubs, Gofer, CNI
    /// plugin, `ip`, iptables) makes; each fails with EPERM.
    static let deniedSyscalls: [String] = [
        // Loading code into the host kernel. The kernel's own module
        // autoloading (a new bridge, an iptables match) runs modprobe from a
        // kernel thread, outside this filter.
        "init_module", "finit_module", "delete_module",
        // Replacing or stopping the host kernel.
        "kexec_load", "kexec_file_load", "reboot",
        // Host-wide memory and accounting settings.
        "swapon", "swapoff", "acct",
        // Raw I/O ports and the i386 vm86 mode.
        "iopl", "ioperm", "vm86", "vm86old",
        // Disk quotas of host file systems.
        "quotactl", "quotactl_fd",
        // Kernel keyrings are not namespaced: they would reach the host's
        // keys (and have a long record of kernel bugs). Nothing of Moat or
        // CNI uses them.
        "add_key", "request_key", "keyctl",
        // Opening any file of a mounted file system by handle, around every
        // path check (the Gofer's dac_read_search makes it reachable).
        "open_by_handle_at",
        // Kernel exploitation aids rather than features: stalling kernel
        // copies (userfaultfd), reading kernel and other processes' events
        // (perf_event_open), a second syscall interface past seccomp's view
        // of arguments (io_uring). Swift NIO serves with epoll.
        "userfaultfd", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
        // The host's clock and kernel log, watching the whole host's file
        // accesses, and calls Linux kept only for old binaries.
        "settimeofday", "clock_settime", "syslog", "fanotify_init", "uselib", "lookup_dcookie", "nfsservctl",
    ]

    /// The supervisor also refuses bpf: its children are Sentry, stubs and
    /// Gofers (seccomp filters load with seccomp(), not bpf()). `moat cri`
    /// allows it: a CNI plugin an administrator installs may manage eBPF
    /// programs (as Cilium's and Calico's do).
    /// So do the node agent (its children are `nsenter` and `ip route`) and
    /// the API server (no children).
    static let bpfDenied = ["bpf"]

    /// The API server never changes namespaces or mounts: with no
    /// capabilities those fail anyway, except through a new user namespace,
    /// whose creation it refuses too (new user namespaces open much of the
    /// kernel to an unprivileged process).
    static let apiServerOnlyDenied = ["unshare", "setns", "mount", "umount2", "pivot_root", "chroot"]

    /// `moat server`'s parent: what its three children keep, since a child
    /// can only drop from its parent's bounding set (its controlplane serves
    /// the cluster DNS on port 53, hence net_bind_service in any case).
    static var serverCapabilities: [String] {
        var seen = Set<String>()
        return (criCapabilities + nodeCapabilities + ["CAP_NET_BIND_SERVICE"]).filter { seen.insert($0).inserted }
    }

    static func capabilities(_ d: Daemon, _ argv: [String]) -> [String] {
        switch d {
        case .supervisor: return supervisorCapabilities
        case .cri: return criCapabilities
        case .node: return nodeCapabilities
        case .controlPlane, .apiServer: return apiServerCapabilities(argv)
        case .server: return serverCapabilities
        }
    }

    static func denied(_ d: Daemon) -> [String] {
        switch d {
        case .cri, .server: return deniedSyscalls
        case .supervisor, .node: return deniedSyscalls + bpfDenied
        case .controlPlane, .apiServer: return deniedSyscalls + bpfDenied + apiServerOnlyDenied
        }
    }

    /// The daemon a command line starts (argv[1]), or nil.
    public static func daemon(_ argv: [String]) -> Daemon? {
        argv.count > 1 ? Daemon(rawValue: argv[1]) : nil
    }

    /// Confines this process (single-threaded), started as `d` with `argv`; an error message, or nil.
    public static func confine(_ d: Daemon, argv: [String]) -> String? {
        let threads = moat_thread_count()
        if threads != 1 { return "confinement must come before threads start (\(threads) running)" }
        let kept = capabilities(d, argv)
        if let bad = kept.first(where: { Capability.number($0) == nil }) { return "no capability \(bad)" }
        let keep = Capability.mask(kept)
        var r = moat_daemon_drop_caps(keep)
        if r != 0 { return "cannot drop capabilities: \(String(cString: strerror(-r)))" }
        r = moat_daemon_no_new_privs()
        if r != 0 { return "cannot set no-new-privs: \(String(cString: strerror(-r)))" }
        let cnames = denied(d).map { strdup($0) }
        defer { for p in cnames { free(p) } }
        let names: [UnsafePointer<CChar>?] = cnames.map { $0.map { UnsafePointer($0) } }
        r = moat_daemon_deny_syscalls(names, Int32(names.count))
        if r != 0 { return "cannot install the seccomp deny-list: \(String(cString: strerror(-r)))" }
        return nil
    }
}
