// Platform: how application code runs and how its syscalls and faults reach
// the Sentry.
//
// A platform gives the kernel three things:
//   - an address space (a host process whose memory holds the application's),
//   - a thread context per application thread (registers, run until the next
//     syscall or fault),
//   - injection of the few host calls that shape an address space (mmap,
//     munmap, mprotect, clone of a stub), decided and validated by the Sentry.
//
// Two platforms implement it: ptrace (Ptrace/) and KVM (KVM/, one hardware
// VM per sandbox whose guest runs only application code). The protocols
// below are what both provide; creating address spaces and threads stays
// platform-specific (a stub clone vs. a page table and a vCPU).
//
// The ptrace platform (Ptrace/) has a fast path: a stub
// thread with its own seccomp layer sends the common syscalls to its driver
// as seccomp user notifications (number and arguments in, a value out, no
// ptrace stop) and traps every other call into an ordinary ptrace stop
// (CMoat/fastpath.c, Sentry/Kernel/FastPath.swift for the kernel's side).

import CMoat

/// The x86-64 general purpose registers of an application thread.
public typealias Registers = user_regs_struct
/// The legacy FXSAVE area (x87/SSE state).
public typealias FPRegisters = user_fpregs_struct

/// Linux's legacy vsyscall page: a call to its gettimeofday, time or getcpu
/// entry point reaches the kernel as an execute fault at that address
/// (StopReason.fault), which the Sentry emulates (Syscalls/Time.swift).
public let vsyscallPage: UInt64 = 0xffff_ffff_ff60_0000

/// Why an application thread stopped running application code.
public enum StopReason: Equatable {
    /// It executed a syscall instruction. The host did not run it; the
    /// number is in `regs.orig_rax`, arguments in rdi, rsi, rdx, r10, r8, r9.
    case syscall
    /// It faulted (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP from an
    /// instruction). `addr` is the faulting address for memory faults.
    case fault(signo: Int32, code: Int32, addr: UInt64)
    /// A host signal that is not the application's business (a kick from the
    /// Sentry to make it look at pending work).
    case interrupted
    /// The host thread is gone (it was killed).
    case gone
}

public extension Registers {
    @inline(__always) var syscallNumber: Int { Int(bitPattern: UInt(orig_rax)) }
    @inline(__always) func arg(_ i: Int) -> UInt64 {
        switch i {
        case 0: return rdi
        case 1: return rsi
        case 2: return rdx
        case 3: return r10
        case 4: return r8
        default: return r9
        }
    }
}

/// Host errno as a small value type (what the host said, never shown to the
/// application directly).
public struct HostErrno: Error, Equatable, CustomStringConvertible {
    public var rawValue: Int32
    public init(_ v: Int32) { rawValue = v }
    public static var current: HostErrno { HostErrno(moat_errno()) }
    public var description: String { "host errno \(rawValue)" }
}

/// FUTEX_WAKE_OP's operation `op` (0 SET, 1 ADD, 2 OR, 3 ANDN, 4 XOR) with
/// `operand` applied to the word's value `cur`: what a platform's
/// futexOp32 writes (the ptrace stub computes the same in assembly).
public func futexOpResult(_ op: Int, _ cur: UInt32, _ operand: UInt32) -> UInt32 {
    switch op {
    case 0: return operand
    case 1: return cur &+ operand
    case 2: return cur | operand
    case 3: return cur & ~operand
    default: return cur ^ operand
    }
}

/// The address-space operations a platform offers the Sentry. The Sentry
/// validated every range first (page aligned, inside the application's part
/// of the address space); results are 0 or -errno.
public protocol PlatformAddressSpace: AnyObject {
    /// Anonymous zero-filled memory at exactly [addr, addr+len), replacing
    /// what was there.
    func mapAnonymous(_ addr: UInt64, _ len: UInt64, prot: Int32, shared: Bool) -> Int
    func unmap(_ addr: UInt64, _ len: UInt64) -> Int
    func protect(_ addr: UInt64, _ len: UInt64, prot: Int32) -> Int
}

/// One application thread as the Sentry drives it: registers, run until the
/// next stop, and access to the memory of the address space it runs in.
public protocol PlatformContext: PlatformAddressSpace {
    /// The registers (ptrace layout). Valid after a stop; the next `run`
    /// resumes with them.
    var regs: Registers { get set }
    /// Runs application code until its next syscall, fault or interruption.
    func run() -> StopReason
    /// Copies application memory; returns the bytes copied (short at the
    /// first inaccessible page) or -errno.
    func read(_ addr: UInt64, _ buf: UnsafeMutableRawPointer, _ len: Int) -> Int
    func write(_ addr: UInt64, _ buf: UnsafeRawPointer, _ len: Int) -> Int
    /// An atomic compare-and-swap of the 32-bit word at `addr`, atomic also
    /// against application threads running at the same moment: the word's
    /// old value (the swap happened when it equals `expected`) or -errno.
    func compareExchange32(_ addr: UInt64, expected: UInt32, new: UInt32) -> Int
    /// FUTEX_WAKE_OP's operation (futexOpResult: `op` 0 SET, 1 ADD, 2 OR,
    /// 3 ANDN, 4 XOR with `operand`) on the 32-bit word at `addr`,
    /// atomically and as one tight loop, as the kernel runs it, however
    /// often application threads change the word meanwhile (ptrace: on the
    /// stub page; KVM: on the Sentry's mapping of guest memory): the old
    /// value, or -errno (EFAULT, EINVAL for an unknown op).
    func futexOp32(_ addr: UInt64, op: Int, operand: UInt32) -> Int
    /// The x87/SSE state (FXSAVE layout).
    func getFP(_ fp: inout FPRegisters) -> Bool
    func setFP(_ fp: inout FPRegisters) -> Bool
    /// The whole extended state in the standard (non-compacted) XSAVE
    /// layout, as Linux's NT_X86_XSTATE regset has it (legacy area, header,
    /// components at their CPUID offsets), or -errno: ENODEV where the
    /// platform runs its threads without XSAVE.
    func getXState() -> Result<[UInt8], HostErrno>
    /// getXState's layout without reading the state: the area's size and
    /// the XCR0 in its first software-reserved word (both fixed for the
    /// platform once known), or nil where getXState has no area. For
    /// callers that build an area rather than read one (rt_sigreturn).
    func xstateLayout() -> XStateLayout?
    /// Loads such an area (the size getXState returned): 0 or -errno.
    func setXState(_ area: [UInt8]) -> Int
}

/// The size of a platform's standard-format XSAVE area and the feature
/// mask (XCR0) its threads run with.
public struct XStateLayout: Equatable, Sendable {
    public var size: Int
    public var xcr0: UInt64
    public init(size: Int, xcr0: UInt64) { self.size = size; self.xcr0 = xcr0 }
}
