import CMoat
import Glibc

@inline(__always) func sigBit(_ sig: Int32) -> UInt64 { 1 << UInt64(sig - 1) }
let stopSignalsMask: UInt64 = sigBit(SIGSTOP) | sigBit(SIGTSTP) | sigBit(SIGTTIN) | sigBit(SIGTTOU)
let unblockableMask: UInt64 = sigBit(SIGKILL) | sigBit(SIGSTOP)

enum DefaultAction { case terminate, core, ignore, stop, cont }

func defaultAction(_ sig: Int32) -> DefaultAction {
    switch sig {
    case SIGCHLD, SIGURG, SIGWINCH: return .ignore
    case SIGCONT: return .cont
    case SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU: return .stop
    case SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS: return .core
    default: return .terminate
    }
}

/// What the application sees in a siginfo_t.
struct SigInfo {
    var signo: Int32
    var errno_: Int32 = 0
    var code: Int32 = 0          // SI_USER = 0, SI_KERNEL = 0x80, SI_TKILL = -6, SI_QUEUE = -1
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var status: Int32 = 0
    var addr: UInt64 = 0
    var value: UInt64 = 0
    var isFault = false
    /// SIGIO-style siginfo (F_SETSIG): si_band and si_fd.
    var pollBand: Int64? = nil
    var pollFD: Int32 = 0
    /// Sent from outside the sandbox (moat run's caller): like a signal
    /// from an ancestor pid namespace, it reaches init even with SIG_DFL.
    var fromHost = false
    /// A POSIX timer's signal whose timer was re-armed or deleted since it
    /// was queued: still pending to sigpending, dropped when dequeued
    /// (Linux >= 6.13).
    var timerStale = false
    /// SIGSYS of a seccomp SECCOMP_RET_TRAP: si_call_addr, si_syscall, si_arch.
    var sysCall: (addr: UInt64, nr: Int32, arch: UInt32)? = nil
    init(signo: Int32) { self.signo = signo }

    /// The signal POSIX timer `id` queued (SI_TIMER, si_timerid in pid).
    func isTimerSignal(id: Int32, signo s: Int32) -> Bool { signo == s && code == -2 && pid == id }

    /// The 128-byte siginfo_t layout of x86-64.
    func bytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 128)
        put32(&b, 0, signo); put32(&b, 4, errno_); put32(&b, 8, code)
        if isFault {
            put64(&b, 16, addr)
        } else if let s = sysCall {
            put64(&b, 16, s.addr); put32(&b, 24, s.nr); put32(&b, 28, Int32(bitPattern: s.arch))
        } else if let band = pollBand {
            put64(&b, 16, UInt64(bitPattern: band)); put32(&b, 24, pollFD)
        } else {
            put32(&b, 16, pid); put32(&b, 20, Int32(bitPattern: uid))
            if signo == SIGCHLD { put32(&b, 24, status) } else { put64(&b, 24, value) }
        }
        return b
    }
}

extension SigInfo {
    /// The 128-byte struct signalfd_siginfo a signalfd read returns: the
    /// fields of the siginfo's kind at their own offsets (ssi_pid 12, ssi_uid
    /// 16, ssi_fd 20, ssi_tid 24, ssi_band 28, ssi_overrun 32, ssi_status 40,
    /// ssi_int 44, ssi_ptr 48, ssi_addr 72, ssi_syscall 84, ssi_call_addr 88,
    /// ssi_arch 96), as Linux's signalfd_copyinfo fills them by layout.
    func signalfdBytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 128)
        put32(&b, 0, signo); put32(&b, 4, errno_); put32(&b, 8, code)
        if isFault {
            put64(&b, 72, addr)
        } else if let s = sysCall {
            put32(&b, 84, s.nr); put64(&b, 88, s.addr); put32(&b, 96, Int32(bitPattern: s.arch))
        } else if let band = pollBand {
            put32(&b, 28, Int32(truncatingIfNeeded: band)); put32(&b, 20, pollFD)
        } else if code == -2 {                                              // SI_TIMER: timer id, overrun, value
            put32(&b, 24, pid); put32(&b, 32, Int32(bitPattern: uid))
            put32(&b, 44, Int32(truncatingIfNeeded: value)); put64(&b, 48, value)
        } else {
            put32(&b, 12, pid); put32(&b, 16, Int32(bitPattern: uid))
            if signo == SIGCHLD && code > 0 {
                put32(&b, 40, status)
            } else {
                put32(&b, 44, Int32(truncatingIfNeeded: value)); put64(&b, 48, value)
            }
        }
        return b
    }
}

@inline(__always) func put32(_ b: inout [UInt8], _ off: Int, _ v: Int32) {
    let u = UInt32(bitPattern: v)
    for i in 0..<4 { b[off + i] = UInt8(truncatingIfNeeded: u >> (8 * UInt32(i))) }
}
@inline(__always) func put64(_ b: inout [UInt8], _ off: Int, _ v: UInt64) {
    for i in 0..<8 { b[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
}
@inline(__always) func get64(_ b: [UInt8], _ off: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v |= UInt64(b[off + i]) << (8 * UInt64(i)) }
    return v
}
@inline(__always) func get32(_ b: [UInt8], _ off: Int) -> UInt32 {
    var v: UInt32 = 0
    for i in 0..<4 { v |= UInt32(b[off + i]) << (8 * UInt32(i)) }
    return v
}

/// Pending signals: a bitmask plus the siginfo of each queued instance.
/// Standard signals coalesce; real-time signals queue.
struct SignalQueue {
    var mask: UInt64 = 0
    var infos: [SigInfo] = []

    /// Whether `add(sig, ...)` would drop a new instance: a standard signal
    /// already pending that is not a stale timer signal.
    func refuses(_ sig: Int32) -> Bool {
        sig < 32 && mask & sigBit(sig) != 0 && !infos.contains { $0.signo == sig && $0.timerStale }
    }

    mutating func add(_ sig: Int32, _ info: SigInfo) {
        if sig < 32 && mask & sigBit(sig) != 0 {
            // Only a stale timer signal gives way to a new instance.
            guard let i = infos.firstIndex(where: { $0.signo == sig }), infos[i].timerStale else { return }
            infos.remove(at: i)
        }
        mask |= sigBit(sig)
        infos.append(info)
    }
    mutating func remove(mask m: UInt64) {
        if mask & m == 0 { return }
        mask &= ~m
        infos.removeAll { m & sigBit($0.signo) != 0 }
    }
    /// A POSIX timer's signal still queued (SI_TIMER, si_timerid `id`):
    /// adds `n` expirations to its overrun (saturating at INT_MAX) and
    /// returns the new count; nil when none is queued.
    mutating func addTimerOverrun(id: Int32, signo: Int32, _ n: Int64) -> Int32? {
        guard let i = infos.firstIndex(where: { $0.isTimerSignal(id: id, signo: signo) && !$0.timerStale }) else { return nil }
        let v = Int32(min(Int64(Int32.max), Int64(Int32(bitPattern: infos[i].uid)) + n))
        infos[i].uid = UInt32(bitPattern: v)
        return v
    }

    /// Marks the signal of POSIX timer `id` still queued as stale (its
    /// timer was re-armed or deleted): `take` drops it, nothing receives it.
    mutating func staleTimerSignal(id: Int32, signo: Int32) {
        for i in infos.indices where infos[i].isTimerSignal(id: id, signo: signo) {
            infos[i].timerStale = true
        }
    }

    /// Takes the lowest-numbered pending signal not in `blocked`.
    mutating func take(blocked: UInt64) -> SigInfo? {
        while true {
            let avail = mask & ~blocked
            if avail == 0 { return nil }
            let sig = Int32(avail.trailingZeroBitCount + 1)
            guard let i = infos.firstIndex(where: { $0.signo == sig }) else {
                mask &= ~sigBit(sig)
                return SigInfo(signo: sig)
            }
            let info = infos.remove(at: i)
            if !infos.contains(where: { $0.signo == sig }) { mask &= ~sigBit(sig) }
            if !info.timerStale { return info }
        }
    }
}
