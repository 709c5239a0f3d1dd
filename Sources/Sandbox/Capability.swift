// Linux capability names and numbers (linux/capability.h), for every module
// that names one: OCI's config.json and CRI's capability lists, the
// daemons' kept sets (DaemonConfinement.swift) and `moat debug`. It lives in
// Sandbox, the lowest module that needs it (OCI and CRI import Sandbox).

/// Linux capability names and numbers (linux/capability.h).
public enum Capability {
    public static let names = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
                               "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
                               "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
                               "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
                               "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
                               "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
                               "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
                               "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
                               "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
    public static func number(_ name: String) -> Int? { names.firstIndex(of: name) }
    /// The mask of `list`; names linux/capability.h does not define add nothing.
    public static func mask(_ list: [String]) -> UInt64 {
        list.reduce(0) { $0 | (number($1).map { UInt64(1) << UInt64($0) } ?? 0) }
    }
    /// The lowercase names without "cap_" of the bits set in `mask` ("sys_admin,mknod"), as `moat debug` shows them.
    public static func shortNames(_ mask: UInt64) -> String {
        (0..<64).filter { mask & (1 << UInt64($0)) != 0 }
            .map { $0 < names.count ? names[$0].dropFirst(4).lowercased() : "cap\($0)" }.joined(separator: ",")
    }
}
