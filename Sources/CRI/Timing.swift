// Timing: where the milliseconds of a pod's start go, on the CRI side.
// Under `moat cri --debug` each RunPodSandbox, CreateContainer and
// StartContainer logs its steps (records, Sentry, CNI, image, Gofer, ...) to
// moat cri's stderr, one line per request:
//
//     moat[cri] runp 1f2e...: record 2.1 ms, sentry and cni 203.2 ms, record 2.8 ms, total 208.2 ms
//
// The steps inside the sandbox calls (Sandbox/Pod.swift: Sentry spawned,
// CNI, Sentry ready; root Gofer started, Sentry's reply) are stamped on the
// Dispatch thread that runs them (StepRecorder) and merged into the line.
// bench/cri.sh times the same requests from outside (crictl's round trips).

import Glibc

struct StepClock {
    let label: String
    private let enabled: Bool
    private let start: UInt64
    private var last: UInt64
    private var steps: [String] = []

    init(_ label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled
        start = enabled ? StepClock.now() : 0
        last = start
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func ms(_ ns: UInt64) -> String {
        let tenths = (ns + 50_000) / 100_000
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    /// Ends the step named `name` (it began at the previous mark).
    mutating func mark(_ name: String) {
        guard enabled else { return }
        let t = StepClock.now()
        steps.append("\(name) \(StepClock.ms(t - last))")
        last = t
    }

    /// A recorder for steps that end on another thread; nil when disabled.
    func sub() -> StepRecorder? { enabled ? StepRecorder() : nil }

    /// The steps `r` recorded, as if marked here in turn.
    mutating func take(_ r: StepRecorder) {
        for (name, t) in r.stamps() where t >= last {
            steps.append("\(name) \(StepClock.ms(t - last))")
            last = t
        }
    }

    func log() {
        guard enabled else { return }
        CRIServer.log("moat[cri] \(label): " + (steps + ["total \(StepClock.ms(StepClock.now() - start))"]).joined(separator: ", "))
    }
}

/// Step ends stamped by a sandbox call on its own thread (see StepClock.take).
final class StepRecorder: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var marks: [(String, UInt64)] = []

    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    func mark(_ name: String) {
        let t = StepClock.now()
        pthread_mutex_lock(&mutex); marks.append((name, t)); pthread_mutex_unlock(&mutex)
    }

    func stamps() -> [(String, UInt64)] {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        return marks
    }
}
