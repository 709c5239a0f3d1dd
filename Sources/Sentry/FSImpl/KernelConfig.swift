// /proc/config.gz: the build configuration of the kernel the sandbox
// presents, as Linux has it with CONFIG_IKCONFIG_PROC. Programs and test
// suites read it to learn which features exist (LTP's tst_kconfig skips or
// breaks a test on it), so it says what Moat implements, not what the host
// kernel was built with: a feature Moat refuses or lacks (namespaces other
// than UTS, IPC, pid, user and mount, fanotify's permission events, ...) is
// "is not set", so that a reader skips it instead of failing on it. Keep it
// in step with the syscall table.
//
// The text is gzip-wrapped once per kernel (made with procfs at start) in
// stored (uncompressed) deflate blocks: a valid gzip member that zcat and
// zlib read, with no compressor in the Sentry.

/// "NAME=value" or "NAME" alone for "# NAME is not set", in the order a
/// config file groups them.
private let configLines: [String] = [
    "CONFIG_64BIT=y", "CONFIG_X86_64=y", "CONFIG_X86=y", "CONFIG_MMU=y", "CONFIG_PGTABLE_LEVELS=4",
    "CONFIG_SMP=y", "CONFIG_HZ_1000=y", "CONFIG_HZ=1000", "CONFIG_HIGH_RES_TIMERS=y", "CONFIG_POSIX_TIMERS=y",
    "CONFIG_PREEMPT_RT", "CONFIG_NUMA", "CONFIG_TRANSPARENT_HUGEPAGE", "CONFIG_HUGETLBFS", "CONFIG_SWAP",
    "CONFIG_DEFAULT_HOSTNAME=\"(none)\"", "CONFIG_SYSVIPC=y", "CONFIG_POSIX_MQUEUE=y",
    "CONFIG_CROSS_MEMORY_ATTACH=y", "CONFIG_MEMBARRIER=y", "CONFIG_ADVISE_SYSCALLS=y",
    "CONFIG_FUTEX=y", "CONFIG_EPOLL=y", "CONFIG_SIGNALFD=y", "CONFIG_TIMERFD=y", "CONFIG_EVENTFD=y",
    "CONFIG_SHMEM=y", "CONFIG_MEMFD_CREATE=y", "CONFIG_AIO=y", "CONFIG_IO_URING=y", "CONFIG_KCMP=y",
    "CONFIG_CHECKPOINT_RESTORE=y", "CONFIG_USERFAULTFD=y", "CONFIG_HAVE_ARCH_USERFAULTFD_WP=y",
    "CONFIG_NAMESPACES=y", "CONFIG_UTS_NS=y", "CONFIG_IPC_NS=y", "CONFIG_USER_NS=y", "CONFIG_PID_NS=y",
    "CONFIG_NET_NS", "CONFIG_TIME_NS", "CONFIG_SECCOMP=y", "CONFIG_SECCOMP_FILTER=y",
    // cgroup v2 with the controllers Kernel/Cgroups.swift presents; no v1.
    "CONFIG_CGROUPS=y", "CONFIG_CGROUP_SCHED=y", "CONFIG_FAIR_GROUP_SCHED=y", "CONFIG_CFS_BANDWIDTH=y", "CONFIG_MEMCG=y",
    "CONFIG_CGROUP_PIDS=y", "CONFIG_CPUSETS=y", "CONFIG_BLK_CGROUP=y", "CONFIG_CGROUP_FREEZER", "CONFIG_CGROUP_DEVICE",
    "CONFIG_CGROUP_HUGETLB", "CONFIG_CGROUP_BPF", "CONFIG_MEMCG_V1", "CONFIG_CPUSETS_V1",
    "CONFIG_KEYS=y", "CONFIG_BPF_SYSCALL", "CONFIG_SECURITY_LANDLOCK=y", "CONFIG_SECURITY_LOCKDOWN_LSM",
    "CONFIG_MODULES", "CONFIG_NET=y", "CONFIG_UNIX=y", "CONFIG_INET=y", "CONFIG_IPV6=y", "CONFIG_TLS",
    "CONFIG_FILE_LOCKING=y", "CONFIG_MANDATORY_FILE_LOCKING", "CONFIG_INOTIFY_USER=y", "CONFIG_FANOTIFY=y",
    "CONFIG_FANOTIFY_ACCESS_PERMISSIONS",
    "CONFIG_DNOTIFY=y", "CONFIG_PROC_FS=y", "CONFIG_SYSFS=y", "CONFIG_TMPFS=y", "CONFIG_FS_VERITY",
    "CONFIG_QUOTA", "CONFIG_EXT4_FS", "CONFIG_XFS_FS", "CONFIG_BLK_DEV_LOOP", "CONFIG_KASAN",
    "CONFIG_PROVE_LOCKING", "CONFIG_LOCKDEP", "CONFIG_DEBUG_KMEMLEAK", "CONFIG_KCSAN", "CONFIG_FAULT_INJECTION",
]

/// The config file's text for a kernel of `release`; `userfaultfd`: false
/// on the KVM platform, which does not offer it (Syscalls/Userfaultfd.swift).
func kernelConfigText(release: String, userfaultfd: Bool = true) -> String {
    var s = "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 \(release) Kernel Configuration\n"
    s += "# (the features of Moat's sandbox kernel)\n#\n"
    for var l in configLines {
        if !userfaultfd && l.contains("USERFAULTFD") { l = String(l.prefix { $0 != "=" }) }
        s += l.contains("=") ? l + "\n" : "# \(l) is not set\n"
    }
    return s
}

/// /proc/config.gz's bytes.
func kernelConfigGzip(release: String, userfaultfd: Bool = true) -> [UInt8] {
    gzipStored(Array(kernelConfigText(release: release, userfaultfd: userfaultfd).utf8))
}

/// `data` as one gzip member (RFC 1952) of stored deflate blocks (RFC 1951
/// BTYPE 00, at most 65535 bytes each, the last with BFINAL set).
func gzipStored(_ data: [UInt8]) -> [UInt8] {
    // Magic, CM deflate, no flags, no mtime, XFL 0, OS 3 (Unix).
    var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]
    var off = 0
    repeat {
        let n = min(65535, data.count - off)
        let final: UInt8 = off + n == data.count ? 1 : 0
        out += [final, UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
        out += data[off..<(off + n)]
        off += n
    } while off < data.count
    for v in [crc32(data), UInt32(truncatingIfNeeded: data.count)] {
        out += [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)]
    }
    return out
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) as gzip's trailer has it.
func crc32(_ data: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xffff_ffff
    for b in data {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xedb8_8320 : c >> 1 }
    }
    return ~c
}
