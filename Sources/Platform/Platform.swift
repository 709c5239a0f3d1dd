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
// The ptrace platform (Ptrace/) implements it, with a fast path: a stub
// thread with its own seccomp layer sends the common syscalls to its driver
// as seccomp user notifications (number and arguments in, a value out, no
// ptrace stop) and traps every other call into an ordinary ptrace stop
// (CMoat/fastpath.c, Sentry/Kernel/FastPath.swift for the kernel's side).

import CMoat

/// The x86-64 general purpose registers of an application thread.
public typealias Registers = user_regs_struct
/// The legacy FXSAVE area (x87/SSE state).
public typealias FPRegisters = user_fpregs_struct

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
