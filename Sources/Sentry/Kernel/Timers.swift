// Interval timers (setitimer/alarm): one Sentry thread fires every armed
// ITIMER_REAL in time order and sends SIGALRM to its thread group.

import CMoat
import Glibc

final class TimerService {
    struct Timer { var deadline: Int64; var interval: Int64; unowned var tg: ThreadGroup }
    /// Guarded by Kernel.mu.
    private var timers: [ObjectIdentifier: Timer] = [:]
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

    /// Arms (or disarms with value 0) the real timer of `tg`; returns the old
    /// (remaining, interval). Requires: Kernel.mu held.
    func setReal(_ tg: ThreadGroup, value: Int64, interval: Int64) -> (Int64, Int64) {
        let key = ObjectIdentifier(tg)
        let now = Kernel.now(CLOCK_MONOTONIC)
        let old = timers[key].map { (max(1000, $0.deadline - now), $0.interval) } ?? (0, 0)
        if value <= 0 { timers[key] = nil } else { timers[key] = Timer(deadline: now &+ value, interval: interval, tg: tg) }
        if !started { start() }
        pthread_cond_signal(&cond)
        return old
    }

    func getReal(_ tg: ThreadGroup) -> (Int64, Int64) {
        let now = Kernel.now(CLOCK_MONOTONIC)
        return timers[ObjectIdentifier(tg)].map { (max(1000, $0.deadline - now), $0.interval) } ?? (0, 0)
    }

    func forget(_ tg: ThreadGroup) { timers[ObjectIdentifier(tg)] = nil }

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
            var next: Int64? = nil
            for (k, var t) in timers {
                if t.tg.zombie || t.tg.exiting { timers[k] = nil; continue }
                if t.deadline <= now {
                    t.tg.sendSignal(SIGALRM, SigInfo(signo: SIGALRM))
                    if t.interval > 0 { t.deadline = now &+ t.interval; timers[k] = t } else { timers[k] = nil; continue }
                }
                next = min(next ?? t.deadline, t.deadline)
            }
            if let n = next {
                var ts = timespec(tv_sec: Int(n / 1_000_000_000), tv_nsec: Int(n % 1_000_000_000))
                pthread_cond_timedwait(&cond, &kernel.mu, &ts)
            } else {
                pthread_cond_wait(&cond, &kernel.mu)
            }
        }
    }
}
