// The start-up profile: where the milliseconds of a sandbox's start and end
// go. Every process of a sandbox (the launcher, `moat create`/`start`, the
// Sentry) stamps the phases it passes on CLOCK_MONOTONIC, which they all
// share, relative to one origin: the moment the first process of the
// operation began (its constructors ran). A process started by another
// inherits that origin and its own spawn time through MOAT_STARTUP in its
// environment (never the application's: the Sentry builds that from its
// configuration), so "spawned -> main" is the re-exec cost.
//
// With --debug, the stamps go to Moat's log (a log file, or the launcher's
// stderr when there is none), never to the application's stdout or stderr:
//
//     moat[startup] +12.41 ms (+3.02) sentry: stub factory started
//
// The first figure is since the origin, the second since this process's
// previous stamp.

import CMoat
import Glibc

public enum StartupProfile {
    /// The origin, ns on CLOCK_MONOTONIC.
    nonisolated(unsafe) public private(set) static var origin: UInt64 = 0
    nonisolated(unsafe) static var last: UInt64 = 0
    /// Where stamps go (Moat's log); nil: nowhere (no --debug).
    nonisolated(unsafe) public static var sink: ((String) -> Void)? = nil
    nonisolated(unsafe) static var firstSyscallPending = false

    public static var enabled: Bool { sink != nil }
    /// Stamps go to `fd` as lines starting "moat[startup] ".
    public static func log(to fd: Int32) {
        sink = { s in
            let line = "moat[startup] " + s + "\n"
            line.withCString { p in
                var off = 0
                let n = strlen(p)
                while off < n {
                    let w = write(fd, p + off, n - off)
                    if w <= 0 { if errno == EINTR { continue }; return }
                    off += w
                }
            }
        }
    }
    public static func now() -> UInt64 { moat_monotonic_ns() }

    /// Called first thing in main: takes the origin (and the spawn time)
    /// from MOAT_STARTUP if a Moat process started this one, else this
    /// process's own start.
    public static func begin() {
        let start = moat_process_start_ns()
        origin = start
        last = start
        guard let v = getenv("MOAT_STARTUP") else { return }
        let parts = String(cString: v).split(separator: ":")
        if parts.count == 2, let o = UInt64(parts[0]), let s = UInt64(parts[1]), o <= s, s <= start {
            origin = o
            last = s
        }
    }

    /// In a child forked without exec (Sandbox.spawn): what begin() does
    /// after an exec, the origin kept and no stamps until the child opens
    /// its own log (its parent's sink writes to an fd the child closed).
    public static func forkedChild() {
        sink = nil
        firstSyscallPending = false
        last = now()
    }

    /// The MOAT_STARTUP entry for a process about to be spawned now.
    public static func environmentEntry() -> String { "MOAT_STARTUP=\(origin):\(now())" }

    /// Stamps a phase that just ended. `who` names the process.
    public static func mark(_ who: String, _ phase: @autoclosure () -> String) {
        guard let sink else { return }
        let t = now()
        let d = t &- last
        last = t
        sink("+\(ms(t &- origin)) ms (+\(ms(d))) \(who): \(phase())")
    }

    /// The Sentry stamps the first system call the application makes.
    static func armFirstSyscall() { firstSyscallPending = enabled }
    static func firstSyscall(_ nr: Int) {
        guard firstSyscallPending else { return }
        firstSyscallPending = false
        mark("sentry", "first application system call (\(syscallName(nr)))")
    }

    /// Milliseconds with two decimals.
    static func ms(_ ns: UInt64) -> String {
        let hundredths = (ns + 5_000) / 10_000
        let frac = hundredths % 100
        return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
    }
}
