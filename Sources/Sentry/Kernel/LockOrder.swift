// The Sentry's lock order, checked in debug builds.
//
// Each lock has a rank (Kernel.swift's header lists them and why); a thread
// may take a lock only when every lock it already holds ranks strictly
// below it. That one rule rules out lock-order deadlocks between any two
// threads, and taking a lock the thread already holds (which deadlocks a
// default pthread mutex) trips it too.
//
// Debug builds keep, per host thread, the set of ranks held and trap on a
// violation with both locks named; release builds compile none of it (the
// calls below are empty and inlined away). A condition wait releases and
// retakes its mutex inside pthread_cond_wait: the thread holds it again
// when it runs, so the set does not change across the wait.

import Glibc

enum LockRank: Int, CustomStringConvertible {
    /// Kernel.mu: the kernel's own state (Kernel.swift).
    case kernel = 10
    /// Log's lock (the once-only ENOSYS table): a leaf.
    case log = 60

    var description: String {
        switch self {
        case .kernel: return "Kernel.mu"
        case .log: return "Log.mu"
        }
    }
}

enum LockOrder {
    #if DEBUG
    /// The ranks this host thread holds, one bit each, as the pointer value.
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    private static var held: UInt {
        get { UInt(bitPattern: pthread_getspecific(key)) }
        set { pthread_setspecific(key, UnsafeRawPointer(bitPattern: newValue)) }
    }

    private static func names(_ set: UInt) -> String {
        (0..<UInt.bitWidth).filter { set & (1 << $0) != 0 }
            .map { LockRank(rawValue: $0).map(String.init(describing:)) ?? "rank \($0)" }
            .joined(separator: ", ")
    }
    #endif

    /// Before taking `r`: traps (debug) if the thread holds it or any lock
    /// ranked at or above it.
    @inline(__always) static func willAcquire(_ r: LockRank) {
        #if DEBUG
        let h = held
        if h >> r.rawValue != 0 {
            fatalError("lock order: taking \(r) while holding \(names(h)) (Sources/Sentry/Kernel/Kernel.swift lists the order)")
        }
        held = h | 1 << r.rawValue
        #endif
    }

    @inline(__always) static func released(_ r: LockRank) {
        #if DEBUG
        let h = held
        if h & 1 << r.rawValue == 0 { fatalError("lock order: releasing \(r), which this thread does not hold") }
        held = h & ~(1 << r.rawValue)
        #endif
    }

    /// Traps (debug) unless the thread holds `r`.
    @inline(__always) static func assertHeld(_ r: LockRank) {
        #if DEBUG
        if held & 1 << r.rawValue == 0 { fatalError("lock order: \(r) must be held here") }
        #endif
    }

    /// Traps (debug) if the thread holds any lock: for code that runs
    /// between locks (a syscall served with no lock, a host call made with
    /// the kernel lock given up).
    @inline(__always) static func assertNoneHeld() {
        #if DEBUG
        let h = held
        if h != 0 { fatalError("lock order: expected no lock held, holding \(names(h))") }
        #endif
    }
}
