// Timers: one Sentry thread runs every due timer action in time order
// (with Kernel.mu held). ITIMER_REAL/alarm, the CPU-time interval timers
// (ITIMER_VIRTUAL, ITIMER_PROF) and timerfd use it.

import CMoat
import Glibc

final class TimerService {
    struct Entry { var deadline: Int64; var action: () -> Void }
    /// Guarded by Kernel.mu.
    private var entries: [Int: Entry] = [:]
    private var nextID = 1
    private var realTimers: [ObjectIdentifier: (id: Int, interval: Int64, deadline: Int64)] = [:]
    /// ITIMER_VIRTUAL (1) and ITIMER_PROF (2) per thread group: the deadline
    /// is in the group's CPU time (ThreadGroup.sampleCPU).
    private struct CPUKey: Hashable { let tg: ObjectIdentifier; let which: Int32 }
    private var cpuTimers: [CPUKey: (id: Int, interval: Int64, deadline: Int64)] = [:]
    private var cond = pthread_cond_t()
    private var started = false
    unowned let kernel: Kernel

    init(kernel: Kernel) {
        self.kernel = kernel
        var a = pthread_condattr_t()
        pthread_condattr_init(&a)
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &a)
    }

    /// Runs `action` at `deadline` (CLOCK_MONOTONIC ns). Requires: Kernel.mu held.
    @discardableResult
    func schedule(at deadline: Int64, _ action: @escaping () -> Void) -> Int {
        let id = nextID
        nextID += 1
        entries[id] = Entry(deadline: deadline, action: action)
        if !started { start() }
        pthread_cond_signal(&cond)
        return id
    }

    func cancel(_ id: Int) { entries[id] = nil }

    /// Arms (or disarms with value 0) the real timer of `tg`; returns the old
    /// (remaining, interval). Requires: Kernel.mu held.
    func setReal(_ tg: ThreadGroup, value: Int64, interval: Int64) -> (Int64, Int64) {
        let key = ObjectIdentifier(tg)
        let old = getReal(tg)
        if let r = realTimers[key] { cancel(r.id); realTimers[key] = nil }
        if value > 0 { armReal(tg, at: Kernel.now(CLOCK_MONOTONIC) &+ value, interval: interval) }
        return old
    }

    private func armReal(_ tg: ThreadGroup, at deadline: Int64, interval: Int64) {
        let key = ObjectIdentifier(tg)
        let id = schedule(at: deadline) { [weak tg, unowned self] in
            guard let tg = tg, !tg.zombie, !tg.exiting else { self.realTimers[key] = nil; return }
            self.realTimers[key] = nil
            tg.sendSignal(SIGALRM, SigInfo(signo: SIGALRM))
            if interval > 0 { self.armReal(tg, at: max(deadline &+ interval, Kernel.now(CLOCK_MONOTONIC)), interval: interval) }
        }
        realTimers[key] = (id, interval, deadline)
    }

    func getReal(_ tg: ThreadGroup) -> (Int64, Int64) {
        guard let r = realTimers[ObjectIdentifier(tg)] else { return (0, 0) }
        return (max(1000, r.deadline - Kernel.now(CLOCK_MONOTONIC)), r.interval)
    }

    /// Arms (value 0: disarms) a CPU-time interval timer (which 1 =
    /// ITIMER_VIRTUAL, 2 = ITIMER_PROF) of `tg`; returns the old (remaining,
    /// interval). The host reports the group's CPU time only when asked, so
    /// the timer thread samples it when the timer could first be due (CPU
    /// time grows at most as fast as wall time per thread) and again at the
    /// remaining distance until it is: the signal is never early, and late
    /// by at most the time slices the group's other threads ran meanwhile.
    /// Both timers count user and system time together (the host's
    /// per-process CPU clock does not split them). Requires: Kernel.mu held.
    func setCPU(_ tg: ThreadGroup, which: Int32, value: Int64, interval: Int64) -> (Int64, Int64) {
        let key = CPUKey(tg: ObjectIdentifier(tg), which: which)
        let old = getCPU(tg, which: which)
        if let r = cpuTimers[key] { cancel(r.id); cpuTimers[key] = nil }
        if value > 0 { armCPU(tg, key: key, deadline: tg.sampleCPU() &+ value, interval: interval) }
        return old
    }

    func getCPU(_ tg: ThreadGroup, which: Int32) -> (Int64, Int64) {
        guard let r = cpuTimers[CPUKey(tg: ObjectIdentifier(tg), which: which)] else { return (0, 0) }
        return (max(1000, r.deadline - tg.sampleCPU()), r.interval)
    }

    private func armCPU(_ tg: ThreadGroup, key: CPUKey, deadline: Int64, interval: Int64) {
        let id = atCPU(tg, deadline, onRearm: { [unowned self] id in self.cpuTimers[key]?.id = id }) { [unowned self] tg, now in
            self.cpuTimers[key] = nil
            let sig = key.which == 1 ? SIGVTALRM : SIGPROF
            tg.sendSignal(sig, SigInfo(signo: sig))
            if interval > 0 { self.armCPU(tg, key: key, deadline: max(deadline &+ interval, now), interval: interval) }
        } gone: { [unowned self] in self.cpuTimers[key] = nil }
        cpuTimers[key] = (id, interval, deadline)
    }

    /// Runs `action` once `tg` has used `deadline` ns of CPU time (sampled
    /// as setCPU explains); `gone` if the group ends first. Returns the id of
    /// the pending check, which changes as it is re-armed: callers keep the
    /// latest in their table through `onRearm`.
    private func atCPU(_ tg: ThreadGroup, _ deadline: Int64, onRearm: ((Int) -> Void)? = nil,
                       _ action: @escaping (ThreadGroup, Int64) -> Void, gone: @escaping () -> Void) -> Int {
        let wait = max(1_000_000, deadline - tg.sampleCPU())
        return schedule(at: Kernel.now(CLOCK_MONOTONIC) &+ wait) { [weak tg, unowned self] in
            guard let tg = tg, !tg.zombie, !tg.exiting else { gone(); return }
            let now = tg.sampleCPU()
            if now < deadline {
                let id = self.atCPU(tg, deadline, onRearm: onRearm, action, gone: gone)
                onRearm?(id)
                return
            }
            action(tg, now)
        }
    }

    /// RLIMIT_CPU of `tg` (re)read: SIGXCPU at the soft limit and every
    /// second of CPU time after it, SIGKILL at the hard limit (Linux's
    /// behaviour). Requires: Kernel.mu held.
    func setCPULimit(_ tg: ThreadGroup) {
        let key = CPUKey(tg: ObjectIdentifier(tg), which: 100)
        if let r = cpuTimers[key] { cancel(r.id); cpuTimers[key] = nil }
        let lim = tg.rlimits[0]
        guard lim.cur < UInt64(Int64.max) / 1_000_000_000 else { return }
        // A zero soft limit means one second, as in Linux (0 marks "unset" there).
        armLimit(tg, key: key, at: Int64(max(lim.cur, 1)) * 1_000_000_000)
    }

    private func armLimit(_ tg: ThreadGroup, key: CPUKey, at deadline: Int64) {
        let id = atCPU(tg, deadline, onRearm: { [unowned self] id in self.cpuTimers[key]?.id = id }) { [unowned self] tg, now in
            self.cpuTimers[key] = nil
            let hard = tg.rlimits[0].max
            if hard < UInt64(Int64.max) / 1_000_000_000 && now >= Int64(hard) * 1_000_000_000 {
                tg.sendSignal(SIGKILL, SigInfo(signo: SIGKILL))
                return
            }
            tg.sendSignal(SIGXCPU, SigInfo(signo: SIGXCPU))
            // Linux raises the soft limit by a second each time it signals.
            if tg.rlimits[0].cur < hard { tg.rlimits[0].cur += 1 }
            self.armLimit(tg, key: key, at: now + 1_000_000_000)
        } gone: { [unowned self] in self.cpuTimers[key] = nil }
        cpuTimers[key] = (id, 0, deadline)
    }

    private func start() {
        started = true
        var th = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&th, nil, { p in
            Unmanaged<TimerService>.fromOpaque(p!).takeRetainedValue().loop()
            return nil
        }, box)
    }

    private func loop() {
        kernel.lock()
        while true {
            let now = Kernel.now(CLOCK_MONOTONIC)
            let due = entries.filter { $0.value.deadline <= now }.sorted { $0.value.deadline < $1.value.deadline }
            for (id, e) in due {
                entries[id] = nil
                e.action()
            }
            if let n = entries.values.map({ $0.deadline }).min() {
                kernel.wait(on: &cond, deadline: timespec(tv_sec: Int(n / 1_000_000_000), tv_nsec: Int(n % 1_000_000_000)))
            } else {
                kernel.wait(on: &cond)
            }
        }
    }
}
