// Least privilege for Moat's long-lived daemons: the supervisor of
// `moat run -d` (`moat standalone-supervise`, Sources/Standalone) and
// `moat cri` (Sources/CRI).
//
// Neither can be confined like the launcher of `moat run` (CAP_KILL only,
// an allow-list): for as long as they live they start sandboxes (the
// supervisor restarts its container under --restart; `moat cri` starts
// pods and containers), and every Sentry, Gofer and CNI plugin they start
// inherits their bounding set and their seccomp filter. A root process's
// exec takes its permitted set from the bounding set, and under
// no-new-privs no more than its parent's permitted set, so a daemon's
// bounding = permitted = effective set is the union of what it and every
// child need. The child confines itself further (Gofer: 5 capabilities and
// an allow-list; Sentry and stubs: none and an allow-list).
//
// What goes:
//  - every capability none of them uses (list below: what stays, and why);
//  - setuid and file-capability gains on exec (no-new-privs): no child
//    runs a set-id program (CNI plugins, `ip`, iptables run as root already);
//  - the host calls in `deniedSyscalls`, with EPERM, for the daemon and
//    every descendant, native, i386 and x32 tables alike.
// `moat debug PID` shows the result (caps, seccomp, no_new_privs), and
// IntegrationTests/ConfinementTests checks it on a running supervisor and
// `moat cri`.
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
    }

    /// Capabilities the supervisor of `moat run -d` keeps. It starts a pod
    /// Sentry, forks or execs Gofers, publishes ports and brokers egress
    /// (Sandbox/Network.swift), joins a cgroup, and signals what it started.
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
        "CAP_SYS_NICE",             // the Sentry pins stub threads (Kernel/Task.swift) that may run as another id than it yet
    ]

    /// `moat cri` keeps the supervisor's set (the same pod Sentry, Gofers,
    /// port relays of port-forward) and what pulling images and CNI add.
    /// CNI plugins (bridge, host-local, portmap via iptables, `ip netns
    /// exec`) need net_admin, net_raw and sys_admin, which stay anyway.
    static let criCapabilities = supervisorCapabilities + [
        "CAP_MKNOD",                // image layers hold device nodes (Images/Unpack.swift)
    ]

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
    static let supervisorOnlyDenied = ["bpf"]

    static func capabilities(_ d: Daemon) -> [String] {
        d == .supervisor ? supervisorCapabilities : criCapabilities
    }

    static func denied(_ d: Daemon) -> [String] {
        d == .supervisor ? deniedSyscalls + supervisorOnlyDenied : deniedSyscalls
    }

    /// The daemon a command line starts (argv[1]), or nil.
    public static func daemon(_ argv: [String]) -> Daemon? {
        argv.count > 1 ? Daemon(rawValue: argv[1]) : nil
    }

    /// Confines this process (single-threaded) as `d`; an error message, or nil.
    public static func confine(_ d: Daemon) -> String? {
        let threads = moat_thread_count()
        if threads != 1 { return "confinement must come before threads start (\(threads) running)" }
        let kept = capabilities(d)
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
