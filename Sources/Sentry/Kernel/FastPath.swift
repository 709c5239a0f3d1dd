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
        if thread.hasStub && tg.cloneSpare.pid != hostPid { makeCloneSpare() }
        if thread.enableFastPath(tgid: hostPid) {
            stubLayers += 1
        } else {
            Log.shared.info("fast path unavailable for task \(tid); using ptrace stops")
        }
    }
}

// Clones come from a spare stub thread without a listener.
//
// Linux (5.9 and later) allows one seccomp listener in a thread's filter
// chain: adding a layer with a new listener to a chain that already has one
// fails with EBUSY. A stub thread is cloned from its creator's stub thread
// and inherits its chain, so once a thread has its own layer every thread it
// created, and every process it forked, could never get one and ran on ptrace
// stops for good (52 of the token ring's 64 threads:
// bench/results/2026-12-06-wakeup-profile.md). So, just before a stub process
// gets its first listener, the Sentry clones a spare thread from the still
// clean thread; it stays parked in a pause loop, untraced, and new
// stub threads and processes are cloned from it (the cloning driver seizes it
// for the injection and lets it go again). It dies with its stub process
// (exit kills the process; exec replaces it, which `cloneSpare.pid` tells).
// That loop is its own on the stub page (CMoat/stub.c), so that the host
// (and ThreadLeakTests) can tell it from a parked thread that leaked.
// A clone from the spare has the spare's FPU state, not its creator's: the
// creator's XSAVE area is copied into the child (Process.swift).

extension Task {
    /// Clones the spare (see above) from this thread, before it has a listener.
    private func makeCloneSpare() {
        guard let p = thread as? PtraceThread else { return }
        let r = p.cloneSpare(flags: CLONE_VM_ | CLONE_THREAD_ | CLONE_SIGHAND_ | CLONE_FS_ | CLONE_FILES_)
        if r > 0 { tg.cloneSpare = (hostPid, pid_t(r)) }
    }

    /// The host side of clone: a new stub thread or process, from the
    /// process's spare when it has one (then `fromSpare`), else from this
    /// stub thread. Returns the host tid or -errno.
    func cloneHostStub(flags: UInt64) -> (tid: Int, fromSpare: Bool) {
        let spare = tg.cloneSpare
        if thread.hasStub && spare.pid == hostPid && spare.tid > 0,
           let s = try? PtraceThread(seize: spare.tid) {
            let r = s.cloneStub(flags: flags)
            s.detachParked(spare: true)
            if r > 0 { return (r, true) }
        }
        return (thread.cloneStub(flags: flags), false)
    }
}
