// An application's own seccomp state (seccomp(2), prctl(PR_SET_SECCOMP)):
// strict mode or a stack of classic BPF filters, per thread, that the Sentry
// runs on every syscall the thread makes before the handler (the host never
// sees those syscalls, so it cannot run the filters itself). The filters
// are inherited by clone and fork and kept across execve; a filter, once
// installed, stays for the thread's life. The container's own profile
// (OCI linux.seccomp, Kernel/AppSeccomp.swift) counts as one more filter
// beneath the application's: the most restrictive answer of all wins.
// The syscalls are in Syscalls/Seccomp.swift.

/// SECCOMP_RET_* values: the action in the high 16 bits, data in the low 16.
enum SeccompRet {
    static let killProcess: UInt32 = 0x8000_0000
    static let killThread: UInt32 = 0
    static let trap: UInt32 = 0x0003_0000
    static let errno: UInt32 = 0x0005_0000
    static let userNotif: UInt32 = 0x7fc0_0000
    static let trace: UInt32 = 0x7ff0_0000
    static let log: UInt32 = 0x7ffc_0000
    static let allow: UInt32 = 0x7fff_0000
    static let actionMask: UInt32 = 0xffff_0000
    static let dataMask: UInt32 = 0xffff

    /// Every action Linux knows (SECCOMP_GET_ACTION_AVAIL).
    static let known: Set<UInt32> = [killProcess, killThread, trap, errno, userNotif, trace, log, allow]

    /// Linux orders actions by their high bits read as a signed number:
    /// the lower, the more restrictive (KILL_PROCESS first, ALLOW last).
    static func isMoreRestrictive(_ a: UInt32, than b: UInt32) -> Bool {
        Int32(bitPattern: a & actionMask) < Int32(bitPattern: b & actionMask)
    }
}

/// One installed filter and, through `parent`, the ones installed before it.
/// Shared by every thread that inherited it; never changed once made.
final class SeccompFilter {
    let program: ClassicBPF
    let parent: SeccompFilter?
    /// SECCOMP_FILTER_FLAG_LOG: actions other than ALLOW are worth a log line.
    let log: Bool
    /// The user-space supervisor of SECCOMP_RET_USER_NOTIF answers (the
    /// listener of SECCOMP_FILTER_FLAG_NEW_LISTENER), if this filter has one.
    let listener: SeccompListener?
    /// Filters in the chain, this one included.
    let depth: Int
    /// Instructions along the chain as Linux counts them against
    /// MAX_INSNS_PER_PATH: each filter's length plus 4.
    let pathInstructions: Int

    static let maxPathInstructions = 32768

    init(program: ClassicBPF, parent: SeccompFilter?, log: Bool, listener: SeccompListener?) {
        self.program = program
        self.parent = parent
        self.log = log
        self.listener = listener
        depth = (parent?.depth ?? 0) + 1
        pathInstructions = program.insns.count + (parent.map { $0.pathInstructions + 4 } ?? 0)
    }

    /// Whether `f` is nil, this filter or one it stacks on (Linux's
    /// is_ancestor: a thread whose filters are a prefix of the caller's
    /// can take the caller's by TSYNC).
    func extends(_ f: SeccompFilter?) -> Bool {
        guard let f else { return true }
        var w: SeccompFilter? = self
        while let x = w { if x === f { return true }; w = x.parent }
        return false
    }

    /// Runs every filter of the chain, newest first, over `data` (a struct
    /// seccomp_data) and returns the most restrictive answer and the filter
    /// that gave it (the first of equals, as Linux).
    func evaluate(_ data: [UInt8]) -> (ret: UInt32, by: SeccompFilter) {
        var ret = SeccompRet.allow, by = self
        var w: SeccompFilter? = self
        while let f = w {
            let r = f.program.run(data)
            if SeccompRet.isMoreRestrictive(r, than: ret) { ret = r; by = f }
            w = f.parent
        }
        return (ret, by)
    }

    /// Whether a filter of the chain has a listener still open (a chain
    /// takes one: SECCOMP_FILTER_FLAG_NEW_LISTENER again is EBUSY).
    var hasOpenListener: Bool {
        var w: SeccompFilter? = self
        while let f = w { if let l = f.listener, !l.closed { return true }; w = f.parent }
        return false
    }
}

/// A thread's seccomp mode and filters (Linux's struct seccomp).
struct SeccompState {
    enum Mode: Int { case disabled = 0, strict = 1, filter = 2 }
    var mode = Mode.disabled
    var filter: SeccompFilter?
}

/// AUDIT_ARCH_X86_64: seccomp_data.arch of every call Moat runs.
let auditArchX86_64: UInt32 = 0xc000_003e

/// The struct seccomp_data a filter reads: nr, arch, the instruction
/// pointer (after the syscall instruction) and the six arguments.
func seccompData(nr: Int, ip: UInt64, _ a: Args) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 64)
    put32(&b, 0, Int32(truncatingIfNeeded: nr))
    put32(&b, 4, Int32(bitPattern: auditArchX86_64))
    put64(&b, 8, ip)
    for i in 0..<6 { put64(&b, 16 + 8 * i, a.raw(i)) }
    return b
}
