// `spec` (a default config.json, the shape runc's has) and `features`
// (features.md): what this runtime understands.

import Glibc
import Sandbox

public enum SpecTemplate {
    public static func defaultConfig(args: [String] = ["sh"], terminal: Bool = true) -> JSON {
        func strs(_ a: [String]) -> JSON { .array(a.map { .string($0) }) }
        let caps = strs(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        func mount(_ dest: String, _ type: String, _ src: String, _ opts: [String]) -> JSON {
            .object([("destination", .string(dest)), ("type", .string(type)), ("source", .string(src)), ("options", strs(opts))])
        }
        return .object([
            ("ociVersion", .string(ociVersion)),
            ("process", .object([
                ("terminal", .bool(terminal)),
                ("user", .object([("uid", .int(0)), ("gid", .int(0))])),
                ("args", strs(args)),
                ("env", strs(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"])),
                ("cwd", .string("/")),
                ("capabilities", .object([("bounding", caps), ("effective", caps), ("permitted", caps)])),
                ("rlimits", .array([.object([("type", .string("RLIMIT_NOFILE")), ("hard", .int(1024)), ("soft", .int(1024))])])),
                ("noNewPrivileges", .bool(true)),
            ])),
            ("root", .object([("path", .string("rootfs")), ("readonly", .bool(true))])),
            ("hostname", .string("moat")),
            ("mounts", .array([
                mount("/proc", "proc", "proc", []),
                mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
                mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
                mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ])),
            ("linux", .object([
                ("resources", .object([("devices", .array([.object([("allow", .bool(false)), ("access", .string("rwm"))])]))])),
                ("namespaces", .array(["pid", "network", "ipc", "uts", "mount", "cgroup"].map { .object([("type", .string($0))]) })),
                ("maskedPaths", strs(["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                                      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"])),
                ("readonlyPaths", strs(["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])),
            ])),
        ])
    }

    public static let ociVersion = "1.0.2"

    public static func features() -> JSON {
        func strs(_ a: [String]) -> JSON { .array(a.map { .string($0) }) }
        return .object([
            ("ociVersionMin", .string("1.0.0")),
            ("ociVersionMax", .string("1.2.0")),
            ("hooks", strs(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])),
            ("mountOptions", strs(["ro", "rw", "bind", "rbind", "mode", "nosuid", "nodev", "noexec", "size"])),
            ("linux", .object([
                ("namespaces", strs(["pid", "network", "ipc", "uts", "mount", "cgroup", "user"])),
                ("capabilities", strs(Capability.names)),
                ("cgroup", .object([("v1", .bool(!Cgroups.isV2)), ("v2", .bool(Cgroups.isV2)), ("systemd", .bool(false)),
                                    ("systemdUser", .bool(false)), ("rdma", .bool(false))])),
                ("seccomp", .object([("enabled", .bool(false))])),
                ("apparmor", .object([("enabled", .bool(false))])),
                ("selinux", .object([("enabled", .bool(false))])),
                ("intelRdt", .object([("enabled", .bool(false))])),
                ("mountExtensions", .object([("idmap", .object([("enabled", .bool(false))]))])),
            ])),
            ("annotations", .object([("dev.moat.overlay", .string("true: keep the rootfs untouched; changes live in Sentry memory"))])),
        ])
    }
}
