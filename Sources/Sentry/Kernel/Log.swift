import CMoat
import Glibc

/// Moat's own log. It never writes to the application's stdout or stderr:
/// the launcher hands the Sentry a dedicated log fd (a file, or its own
/// stderr with --debug).
final class Log: @unchecked Sendable {
    static let shared = Log()
    var fd: Int32 = -1
    var debug = false
    private var mu = pthread_mutex_t()
    private var warned = Set<Int>()

    private init() { pthread_mutex_init(&mu, nil) }

    func write(_ s: String) {
        guard fd >= 0 else { return }
        var line = s
        if !line.hasSuffix("\n") { line += "\n" }
        line.withCString { p in
            var off = 0
            let n = strlen(p)
            while off < n {
                let w = Glibc.write(fd, p + off, n - off)
                if w <= 0 { if errno == EINTR { continue }; return }
                off += w
            }
        }
    }

    func info(_ s: @autoclosure () -> String) { if fd >= 0 { write("moat: " + s()) } }
    func dbg(_ s: @autoclosure () -> String) { if debug { write("moat[debug]: " + s()) } }

    /// Logs an unimplemented syscall once per number.
    func unimplemented(_ nr: Int) {
        LockOrder.willAcquire(.log)
        pthread_mutex_lock(&mu)
        let first = warned.insert(nr).inserted
        pthread_mutex_unlock(&mu)
        LockOrder.released(.log)
        if first { info("unimplemented syscall \(syscallName(nr)) (\(nr)): returning ENOSYS") }
    }
}
