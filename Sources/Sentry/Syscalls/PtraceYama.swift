// The Yama security module's ptrace policy (Documentation/admin-guide/
// LSM/Yama.rst), as Ubuntu's kernels and gVisor present it: the sandbox's
// own kernel.yama.ptrace_scope (/proc/sys, FSImpl/ProcSys.swift), 1 by
// default, and prctl(PR_SET_PTRACER).
//
//   0: classic ptrace permissions only (ProcessVM.swift's mayAttach).
//   1: PTRACE_ATTACH and PTRACE_SEIZE also need the tracee to be a
//      descendant of the tracer's process, or to have named (PR_SET_PTRACER)
//      the tracer's process or one of its ancestors, or any process; or the
//      tracer needs CAP_SYS_PTRACE.
//   2: attaching needs CAP_SYS_PTRACE; PTRACE_TRACEME needs it in the parent.
//   3: no attaching, no PTRACE_TRACEME; the value cannot be lowered again.
//
// A PR_SET_PTRACER exception belongs to the caller's process (kept with its
// leader thread) and names one thread as the tracer; it ends when either
// thread exits, as Yama forgets a relation when one of its tasks is freed.
// Only ptrace itself asks (Linux applies the attach rule to
// process_vm_readv and pidfd_getfd too; Moat does not).

import Glibc

/// Guarded by Kernel.mu.
final class Yama {
    static let shared = Yama()
    /// kernel.yama.ptrace_scope.
    var scope = 1

    /// PR_SET_PTRACER exceptions: the tracee's leader thread, and the thread
    /// it named (nil: PR_SET_PTRACER_ANY).
    private struct Relation {
        weak var tracee: Task?
        weak var tracer: Task?
        let any: Bool
        var valid: Bool {
            guard let e = tracee, !e.exited else { return false }
            if any { return true }
            guard let r = tracer else { return false }
            return !r.exited
        }
    }
    private var relations: [Relation] = []

    /// The sysctl's setter: 0 to 3, and 3 stays. Returns an errno or nil.
    func setScope(_ s: String) -> Int32? {
        guard let v = Int(s), (0...3).contains(v) else { return EINVAL }
        if scope == 3 && v != 3 { return EINVAL }
        scope = v
        return nil
    }

    /// Whether process `ancestor` is `t`'s own process or one of its ancestors.
    private func isAncestor(_ ancestor: ThreadGroup, of t: ThreadGroup) -> Bool {
        var g: ThreadGroup? = t
        while let x = g {
            if x === ancestor { return true }
            g = x.parent
        }
        return false
    }

    /// PTRACE_ATTACH / PTRACE_SEIZE by `t` of `target`, after the classic
    /// checks passed. Requires: Kernel.mu held.
    func mayAttach(_ t: Task, _ target: Task) -> Bool {
        switch scope {
        case 0: return true
        case 1:
            if t.creds.has(Cap.sysPtrace) || isAncestor(t.tg, of: target.tg) { return true }
            relations.removeAll { !$0.valid }
            guard let r = relations.first(where: { $0.tracee?.tg === target.tg }) else { return false }
            guard let declared = r.tracer else { return r.any }
            return isAncestor(declared.tg, of: t.tg)
        case 2: return t.creds.has(Cap.sysPtrace)
        default: return false
        }
    }

    /// PTRACE_TRACEME by `t`, whose parent would trace it.
    func mayTraceMe(_ t: Task, parent: ThreadGroup) -> Bool {
        switch scope {
        case 2: return parent.creds.has(Cap.sysPtrace)
        case 3: return false
        default: return true
        }
    }

    /// A thread other than the leader of `tg` exec'd: the old leader is
    /// gone (Linux frees it), and with it the process's exception.
    func nonLeaderExec(_ tg: ThreadGroup) {
        relations.removeAll { $0.tracee == nil || $0.tracee?.tg === tg || $0.tracee?.tid == tg.tgid }
    }

    /// prctl(PR_SET_PTRACER, arg): 0 clears the caller's exception,
    /// PR_SET_PTRACER_ANY (-1) lets any process attach, a thread id names
    /// that thread's process and its descendants (EINVAL if none).
    func setPtracer(_ t: Task, _ arg: UInt64) -> Int {
        guard let leader = t.kernel.tasks[t.tg.tgid] ?? t.tg.tasks.first else { return err(ESRCH) }
        relations.removeAll { !$0.valid || $0.tracee === leader }
        if arg == 0 { return 0 }
        if Int32(truncatingIfNeeded: arg) == -1 {
            relations.append(Relation(tracee: leader, tracer: nil, any: true))
            return 0
        }
        guard arg <= UInt64(Int32.max), let tracer = t.kernel.task(Int32(arg), by: t), !tracer.exited else { return err(EINVAL) }
        relations.append(Relation(tracee: leader, tracer: tracer, any: false))
        return 0
    }
}
