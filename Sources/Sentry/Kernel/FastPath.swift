// The fast syscall path, kernel side.
//
// A stub thread with its own seccomp layer (CMoat/fastpath.c) that resumes
// under PTRACE_CONT sends the calls of the fast set to its driver as seccomp
// notifications: number and arguments only, answered with a return value,
// with no ptrace stop. Every other call traps (SIGSYS) into an ordinary
// ptrace stop. The platform (Platform/Ptrace/PtraceThread.swift) hides the
// difference from the kernel, with two rules the kernel keeps:
//
//   - a handler of a fast-set call reads only the number and arguments and
//     writes only the return value: no other register (arch_prctl, clone,
//     execve, rt_sigreturn and sigaltstack stay out of the set), and
//   - before anything that needs the real registers of a thread held in a
//     notification (signal delivery, a restart, a stop, exit), the kernel
//     calls `materialize()` (Task.prepareToRun). Injection and the FPU
//     accessors do so themselves, so a fast handler that must change the
//     address space is still correct, only slower.
//
// Which mode a thread resumes in is a guess from its last call: a fast call
// resumes under PTRACE_CONT, any other under PTRACE_SYSEMU (a run of mmaps
// then costs one ptrace stop each, as before, instead of a trap plus a
// SIGCHLD wake-up each).
//
// A layer is not free: attaching a seccomp filter compiles it, and on the VMs
// we measured that costs about half a millisecond (the JIT's executable
// memory changes flush every CPU's TLB). A thread therefore gets its layer
// only after `enableAfter` fast-set calls served the slow way; a short-lived
// process (a shell's fork and exec of /bin/true) never pays for one. Until
// then the thread runs under PTRACE_SYSEMU, which never consults seccomp for
// application calls, so an inherited layer's listener (its parent's) never
// hears from it.
//
// Filter layers accumulate: a clone inherits its parent's chain and adds its
// own, so a long chain of generations would make every syscall evaluate many
// programs. Past `maxLayers` a thread stays on PTRACE_SYSEMU, which never
// consults seccomp for application calls.

import CMoat
import Platform

enum FastPath {
    /// Syscall numbers the filter sends as notifications.
    static let set: [Bool] = {
        var s = [Bool](repeating: false, count: 512)
        for i in 0..<Int(moat_fast_syscall_count()) { s[Int(moat_fast_syscall(Int32(i)))] = true }
        return s
    }()
    static let maxLayers = 16
    static let enableAfter = 32
}

extension Task {
    /// Gives the (stopped) stub thread its own filter layer, if the kernel
    /// allows and the chain is not too long. Runs on the driver thread, at a
    /// ptrace stop (the registers it holds are kept).
    func enableFastPath() {
        guard kernel.fastPath, stubLayers < FastPath.maxLayers, thread.listener < 0 else { return }
        if thread.enableFastPath(tgid: hostPid) {
            stubLayers += 1
        } else {
            Log.shared.info("fast path unavailable for task \(tid); using ptrace stops")
        }
    }
}
