// The runtime's own log (runc's --log/--log-format): errors always go to
// stderr too; with --log-format json each entry is one JSON object per line,
// {"level":"error","msg":"...","time":"..."}, which containerd's shim reads.

import Glibc

public final class RuntimeLog {
    let fd: Int32
    let json: Bool
    let debugEnabled: Bool

    public init(path: String?, json: Bool, debug: Bool) {
        self.json = json
        self.debugEnabled = debug
        if let p = path, !p.isEmpty {
            fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        } else {
            fd = -1
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    func entry(_ level: String, _ msg: String) {
        guard fd >= 0 else { return }
        let line: String
        if json {
            line = JSON.object([("level", .string(level)), ("msg", .string(msg)), ("time", .string(rfc3339Now()))]).serialized() + "\n"
        } else {
            line = "time=\"\(rfc3339Now())\" level=\(level) msg=\"\(msg)\"\n"
        }
        _ = writeAll(fd, Array(line.utf8))
    }

    public func error(_ msg: String) {
        entry("error", msg)
        _ = writeAll(2, Array(("moat: " + msg + "\n").utf8))
    }

    func warn(_ msg: String) {
        entry("warning", msg)
        if fd < 0 { _ = writeAll(2, Array(("moat: warning: " + msg + "\n").utf8)) }
    }

    func debug(_ msg: String) { if debugEnabled { entry("debug", msg) } }
}
