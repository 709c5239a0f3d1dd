// A container's seccomp profile from its CRI security context, for the pod
// Sentry to enforce on the container's emulated syscalls (the host never
// sees them; Sentry/Kernel/AppSeccomp.swift evaluates the rules).
//   - seccomp { profile_type: RuntimeDefault } (or the older
//     seccomp_profile_path "runtime/default" / "docker/default"): Moat's
//     default profile below;
//   - Localhost { localhost_ref: PATH } (or "localhost/PATH"): the OCI /
//     Docker JSON profile in that file (defaultAction, defaultErrnoRet,
//     syscalls: names or name, action, errnoRet, args);
//   - Unconfined, "unconfined", nothing at all, or a privileged container:
//     none.

import CRIAPI
import Foundation
import Sandbox

/// Moat's RuntimeDefault: everything allowed except what a container has no
/// business calling (kernel modules and kexec, the kernel keyring, bpf,
/// perf, clock and time changes, swap, reboot, quotas, ...), which fail with
/// EPERM; mount, namespaces and tracing only with CAP_SYS_ADMIN /
/// CAP_SYS_PTRACE, as in the profile Docker and containerd use by default.
func runtimeDefaultSeccomp(capabilities: UInt64) -> PodSeccomp {
    var denied = ["acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
                  "finit_module", "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load",
                  "kexec_load", "keyctl", "lookup_dcookie", "nfsservctl", "open_by_handle_at", "perf_event_open",
                  "query_module", "quotactl", "reboot", "request_key", "settimeofday", "stime", "swapoff", "swapon",
                  "sysfs", "_sysctl", "uselib", "userfaultfd", "ustat", "vm86", "vm86old"]
    let sysAdmin: UInt64 = 1 << 21, sysPtrace: UInt64 = 1 << 19
    if capabilities & sysAdmin == 0 {
        denied += ["mount", "umount", "umount2", "pivot_root", "setns", "unshare", "name_to_handle_at", "fsopen",
                   "fsmount", "fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr"]
    }
    if capabilities & sysPtrace == 0 { denied += ["ptrace", "process_vm_readv", "process_vm_writev"] }
    return PodSeccomp(defaultAction: "SCMP_ACT_ALLOW", rules: [.init(names: denied, action: "SCMP_ACT_ERRNO", errno: 1)])
}

func seccompProfile(_ sc: Runtime_V1_LinuxContainerSecurityContext, capabilities: UInt64) throws -> PodSeccomp? {
    if sc.privileged { return nil }
    if sc.hasSeccomp {
        switch sc.seccomp.profileType {
        case .runtimeDefault: return runtimeDefaultSeccomp(capabilities: capabilities)
        case .unconfined: return nil
        case .localhost: return try localhostSeccomp(sc.seccomp.localhostRef, field: "config.linux.security_context.seccomp.localhost_ref")
        default: throw CRIError.invalidArgument("config.linux.security_context.seccomp.profile_type \(sc.seccomp.profileType.rawValue) is unknown")
        }
    }
    let path = sc.seccompProfilePath
    switch path {
    case "": return nil
    case "unconfined": return nil
    case "runtime/default", "docker/default": return runtimeDefaultSeccomp(capabilities: capabilities)
    default:
        guard path.hasPrefix("localhost/") else {
            throw CRIError.invalidArgument("config.linux.security_context.seccomp_profile_path \(path.debugDescription): expected runtime/default, unconfined or localhost/PATH")
        }
        return try localhostSeccomp(String(path.dropFirst("localhost".count)), field: "config.linux.security_context.seccomp_profile_path")
    }
}

let seccompActions: Set<String> = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                                   "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]
let seccompOps: Set<String> = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                               "SCMP_CMP_MASKED_EQ"]

/// Reads an OCI/Docker JSON seccomp profile; errors name the file and what is wrong.
func localhostSeccomp(_ path: String, field: String) throws -> PodSeccomp {
    guard path.hasPrefix("/") else { throw CRIError.invalidArgument("\(field) \(path.debugDescription) is not an absolute path") }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CRIError.invalidArgument("\(field): cannot read the seccomp profile \(path)")
    }
    func bad(_ why: String) -> CRIError { .invalidArgument("\(field): seccomp profile \(path): \(why)") }
    guard let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw bad("not a JSON object") }
    func errnoOf(_ v: Any?) -> Int32 { (v as? NSNumber).map { Int32(truncatingIfNeeded: $0.int64Value) } ?? 1 }
    guard let def = j["defaultAction"] as? String, seccompActions.contains(def) else { throw bad("defaultAction missing or unknown") }
    var rules: [PodSeccomp.Rule] = []
    for (i, any) in ((j["syscalls"] as? [Any]) ?? []).enumerated() {
        guard let s = any as? [String: Any] else { throw bad("syscalls[\(i)] is not an object") }
        var names = (s["names"] as? [String]) ?? []
        if let n = s["name"] as? String { names.append(n) }
        guard let action = s["action"] as? String, seccompActions.contains(action) else { throw bad("syscalls[\(i)].action missing or unknown") }
        var args: [PodSeccomp.Arg] = []
        for (k, a) in ((s["args"] as? [Any]) ?? []).enumerated() {
            guard let a = a as? [String: Any], let idx = (a["index"] as? NSNumber)?.intValue, (0...5).contains(idx),
                  let op = a["op"] as? String, seccompOps.contains(op) else { throw bad("syscalls[\(i)].args[\(k)]: index 0-5 and a SCMP_CMP_* op needed") }
            args.append(.init(index: idx, op: op, value: (a["value"] as? NSNumber)?.uint64Value ?? 0,
                              valueTwo: (a["valueTwo"] as? NSNumber)?.uint64Value ?? 0))
        }
        if !names.isEmpty { rules.append(.init(names: names, action: action, errno: errnoOf(s["errnoRet"]), args: args)) }
    }
    return PodSeccomp(defaultAction: def, defaultErrno: errnoOf(j["defaultErrnoRet"]), rules: rules)
}
