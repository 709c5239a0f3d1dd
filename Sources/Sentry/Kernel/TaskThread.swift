// What a Task needs from the platform thread that runs it, on top of
// Platform's PlatformContext (registers, run, memory, address-space calls).
//
// The kernel was written against the ptrace platform, whose thread also
// lives in a host stub process: host calls can be injected in it, it can be
// cloned (fork, threads) and replaced (exec), and the fast path parks it in
// seccomp notifications. Those are the extra members below. The ptrace
// thread provides them as they were (so its behaviour and speed are
// unchanged: the only cost is a protocol call instead of a direct one); a
// KVM vCPU (KVMTasks.swift) has no stub, and answers each of them as
// "nothing to do" or "not possible", which the callers already handle.
//
// Why a protocol and not an enum or two optional fields: the call sites
// (dispatch, signal delivery, exec, clone, memory) stay one line each and
// do not need to know which platform runs the task; `hasStub` is the one
// question the few platform-specific places ask.

import CMoat
import Glibc
import Platform

protocol TaskThread: PlatformContext {
    /// Whether a host stub process holds this thread (the ptrace platform).
    /// Without one there is nothing to inject into, clone, kill or reap.
    var hasStub: Bool { get }
    /// The kernel set `regs` (a syscall result, new registers).
    func markDirty()
    /// The fast path's state (Platform/Ptrace, Kernel/FastPath.swift).
    var wantFast: Bool { get set }
    var listener: Int32 { get }
    var inNotif: Bool { get }
    @discardableResult func materialize() -> Bool
    func enableFastPath(tgid: pid_t) -> Bool
    /// One host call in the thread's stub (validated by the caller).
    func injectCall(_ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Int
    /// A clone of the stub thread (fork, threads); its host tid or -errno
    /// (0 for a platform without stubs).
    func cloneStub(flags: UInt64) -> Int
    /// Without a stub: the new thread's context, running in this thread's
    /// address space (`shareMemory`, CLONE_VM) or in a copy-on-write copy
    /// of it; nil when memory ran out. Platforms with stubs return nil (the
    /// clone's driver seizes the cloned stub instead).
    func cloneContext(shareMemory: Bool) -> (any TaskThread)?
    /// Waits for the killed stub thread to be gone.
    func reap()
    /// Drives another (new) stub thread: exec's fresh address space.
    func reseize(_ newTid: pid_t) throws
    /// Leaves the stub thread parked and untraced (a leader that exits first).
    func detachParked()
}

extension TaskThread {
    /// `injectCall` with the argument defaults of PtraceThread.inject.
    @inline(__always)
    func inject(_ nr: Int, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0,
                _ a3: UInt64 = 0, _ a4: UInt64 = 0, _ a5: UInt64 = 0) -> Int {
        injectCall(nr, (a0, a1, a2, a3, a4, a5))
    }
}

extension PtraceThread: TaskThread {
    var hasStub: Bool { true }
    func cloneContext(shareMemory: Bool) -> (any TaskThread)? { nil }
    @inline(__always)
    func injectCall(_ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Int {
        inject(nr, a.0, a.1, a.2, a.3, a.4, a.5, at: moat_stub_syscall_addr())
    }
}
