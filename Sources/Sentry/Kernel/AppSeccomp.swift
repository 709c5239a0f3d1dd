// The container's own seccomp profile (OCI linux.seccomp), enforced by the
// Sentry on the application's emulated syscalls, as gVisor does: the host
// never sees those syscalls, so the filter is evaluated here, before the
// handler runs. Semantics follow libseccomp's: every rule naming the
// syscall whose argument conditions all hold matches; the most restrictive
// matching action wins (kill > trap > errno > trace > log > allow); with no
// match, the default action applies. Unknown syscall names are skipped.

import Glibc

public struct AppSeccompProfile {
    public enum Action: Int, Comparable {
        case allow = 0, log, trace, errno, trap, kill
        public static func < (a: Action, b: Action) -> Bool { a.rawValue < b.rawValue }
    }
    public struct Condition {
        public var index: Int, op: String, value: UInt64, valueTwo: UInt64
        public init(index: Int, op: String, value: UInt64, valueTwo: UInt64) {
            self.index = index; self.op = op; self.value = value; self.valueTwo = valueTwo
        }
    }
    public struct Rule {
        public var names: [String]
        public var action: Action
        public var errnoRet: Int32
        public var conditions: [Condition]
        public init(names: [String], action: Action, errnoRet: Int32, conditions: [Condition]) {
            self.names = names; self.action = action; self.errnoRet = errnoRet; self.conditions = conditions
        }
    }
    public var defaultAction: Action
    public var defaultErrno: Int32
    public var rules: [Rule]
    public init(defaultAction: Action, defaultErrno: Int32, rules: [Rule]) {
        self.defaultAction = defaultAction; self.defaultErrno = defaultErrno; self.rules = rules
    }

    /// OCI action names (SCMP_ACT_*) to actions; NOTIFY has no listener
    /// here and behaves as ERRNO (ENOSYS unless errnoRet says otherwise).
    public static func action(_ name: String) -> Action {
        switch name {
        case "SCMP_ACT_ALLOW": return .allow
        case "SCMP_ACT_LOG": return .log
        case "SCMP_ACT_TRACE": return .trace
        case "SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY": return .errno
        case "SCMP_ACT_TRAP": return .trap
        default: return .kill
        }
    }
}

/// The compiled profile: rules indexed by syscall number.
final class AppSeccomp {
    nonisolated(unsafe) static var active: AppSeccomp?

    let profile: AppSeccompProfile
    var byNr: [Int: [AppSeccompProfile.Rule]] = [:]

    init(_ p: AppSeccompProfile) {
        profile = p
        var index: [String: Int] = [:]
        for (i, n) in syscallNames.enumerated() { index[n] = i }
        for r in p.rules {
            for n in r.names { if let nr = index[n] { byNr[nr, default: []].append(r) } }
        }
    }

    /// The profile's answer for a syscall as a filter's SECCOMP_RET_*
    /// value, for Syscalls/Seccomp.swift to act on beside the
    /// application's own filters (kill: the whole process; trap: SIGSYS).
    func verdict(_ nr: Int, _ a: Args) -> UInt32 {
        var action = profile.defaultAction
        var eno = profile.defaultErrno
        if let rules = byNr[nr] {
            var best: AppSeccompProfile.Rule? = nil
            for r in rules where r.conditions.allSatisfy({ holds($0, a) }) {
                if best == nil || r.action > best!.action { best = r }
            }
            if let b = best { action = b.action; eno = b.errnoRet }
        }
        switch action {
        case .allow: return SeccompRet.allow
        case .log: return SeccompRet.log
        // An OCI trace rule answers with its errno, as before: no tracer here asks.
        case .errno, .trace: return SeccompRet.errno | UInt32(min(max(eno, 0), 4095))
        case .trap: return SeccompRet.trap
        case .kill: return SeccompRet.killProcess
        }
    }

    func holds(_ c: AppSeccompProfile.Condition, _ a: Args) -> Bool {
        let v = a.raw(c.index)
        switch c.op {
        case "SCMP_CMP_NE": return v != c.value
        case "SCMP_CMP_LT": return v < c.value
        case "SCMP_CMP_LE": return v <= c.value
        case "SCMP_CMP_EQ": return v == c.value
        case "SCMP_CMP_GE": return v >= c.value
        case "SCMP_CMP_GT": return v > c.value
        case "SCMP_CMP_MASKED_EQ": return v & c.value == c.valueTwo
        default: return false
        }
    }
}
