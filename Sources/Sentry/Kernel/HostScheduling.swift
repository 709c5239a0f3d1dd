// How the host schedules the application's threads: their nice values as
// CPU weight, and their CPU affinity.
//
// Nice values as CPU weight. The host schedules the application's threads
// (each task runs on a stub thread of its own), so a nice value the Sentry
// only stored gave a nice 10 thread as much CPU as a nice 0 one under
// contention, where Linux's CFS gives it about a tenth. Each change of a
// task's nice value now sets the host nice value of its stub thread
// (setpriority on that one thread, PRIO_PROCESS with its tid), so the host's
// CFS weights the sandbox's threads as the application asked.
//
// Never above the Sentry's own priority: the host nice of a stub is the
// Sentry's (`base`) plus how far the task's nice value is above the lowest
// one in the sandbox (`niceFloor`, 0 or below). With every task at nice 0
// or above the stubs run at base + nice; a task at nice -2 runs at base
// and shifts the others up by 2 (their weights against each other are
// Linux's; the sandbox's weight against the host never grows). Raising a
// host nice value needs no privilege; lowering it back (a task lowering
// its own, the floor rising again) works down to `base`, never below,
// because the Sentry sets RLIMIT_NICE to its own value while it still may
// (Confinement.begin). Without that (a launcher without CAP_SYS_RESOURCE)
// a host nice value only goes up, and so the floor only goes down: raising
// it back would leave the stubs already shifted where they are while new
// ones are not, and their weights would no longer be the application's.
// With it the floor is recomputed when a nice value changes and when a task
// at it exits.
// On KVM a task's code runs on its driver thread (no stub): that thread
// takes the nice value and the affinity instead.
//
// Affinity: a task's driver and stub threads share one CPU (Task.pin), the
// tasks spread round-robin. A mask the application sets (sched_setaffinity,
// and what a new task inherits) keeps that CPU among the ones it allows:
// two threads pinned to one CPU (LTP's nice05) compete for it, as on Linux,
// instead of running side by side on two.

import CMoat
import Glibc

extension Kernel {
    /// The Sentry's own host nice value, what a nice 0 task gets while no
    /// task is below 0.
    static let hostNiceBase: Int32 = Int32(moat_get_nice())
    /// Whether host nice values may go back down to `hostNiceBase` (RLIMIT_NICE).
    static let hostNiceCanReturn: Bool = moat_nice_can_return() != 0

    /// Task `t`'s nice value went from `old` to `t.nice`: its stub's host
    /// nice follows, and every task's when the sandbox's lowest value
    /// moved. Requires: mu held.
    func niceChanged(_ t: Task, from old: Int32) {
        var floor = niceFloor
        if t.nice < floor { floor = t.nice }
        else if old == floor && t.nice > old && Kernel.hostNiceCanReturn {
            floor = min(0, tasks.values.reduce(t.nice) { min($0, $1.nice) })
        }
        if floor != niceFloor {
            niceFloor = floor
            for x in tasks.values where x !== t { applyHostNice(x) }
        }
        applyHostNice(t)
    }

    /// Task `t` has left the kernel: if it held the floor up, the others
    /// go back down. Requires: mu held.
    func niceTaskLeft(_ t: Task) {
        guard niceFloor < 0, t.nice == niceFloor, Kernel.hostNiceCanReturn else { return }
        let floor = tasks.values.reduce(Int32(0)) { min($0, $1.nice) }
        if floor == niceFloor { return }
        niceFloor = floor
        for x in tasks.values { applyHostNice(x) }
    }

    /// Sets the host nice value of `t`'s stub thread from its nice value
    /// (see above). `force`: whatever the stub is believed to have (a new
    /// stub's, made by its parent's or ahead of time, is not known).
    /// Requires: mu held.
    func applyHostNice(_ t: Task, force: Bool = false) {
        let tid = t.codeTid
        guard tid > 0 else { return }
        let base = Kernel.hostNiceBase
        let want = min(19, base + max(0, t.nice - niceFloor))
        if want == (t.hostNice ?? base) && !force { return }
        if moat_set_nice(tid, want) == 0 { t.hostNice = want }
    }
}

extension Task {
    /// The host thread that runs the task's code: its stub thread, or on
    /// KVM its driver thread (0 before it started).
    var codeTid: pid_t { hostTid > 0 ? hostTid : driverTid }

    /// How the host divides CPU time among `tasks` that all want it: each
    /// CPU they are pinned to runs its share of them at once, and on one
    /// CPU CFS gives each a part in proportion to its weight (1024 at nice
    /// 0, 1.25 times less per nice level up). The parts add up to 1; what
    /// ThreadGroup.sampleCPU gives each thread of a process's CPU time.
    static func cpuShares(_ tasks: [Task]) -> [Double] {
        if tasks.isEmpty { return [] }
        var weightOn: [Int32: Double] = [:]
        let weights = tasks.map { pow(1.25, Double(-$0.nice)) }
        let cpus = tasks.map { $0.hostCPU ?? -1 }
        for (c, w) in zip(cpus, weights) { weightOn[c, default: 0] += w }
        let perCPU = 1 / Double(weightOn.count)
        return zip(cpus, weights).map { perCPU * $0.1 / weightOn[$0.0]! }
    }

    /// The CPU of the Sentry's spreading (Task.pin) among those the task's
    /// affinity mask allows; nil when the mask allows none of the Sentry's.
    var hostCPU: Int32? {
        let all = kernel.allowedCPUs
        let cpus = all.filter { $0 < 64 && cpuMask & (1 << UInt64($0)) != 0 }
        if cpus.isEmpty { return nil }
        return cpus[Int(tid) % cpus.count]
    }

    /// Pins the thread that runs the task's code to `hostCPU` after the
    /// affinity mask changed (a stub's driver follows at its next pin).
    /// Requires: mu held.
    func applyAffinity() {
        let tid = codeTid
        guard tid > 0, kernel.allowedCPUs.count > 1, let cpu = hostCPU else { return }
        _ = moat_sched_pin(tid, cpu)
    }
}
