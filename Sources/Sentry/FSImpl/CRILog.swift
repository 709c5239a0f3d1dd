// A container's stdout and stderr in a pod Sentry (Kernel/Pod.swift): the
// Sentry itself writes them to the container's log file in the CRI format
// kubelet reads, so no shim process per container is needed and the log
// outlives a restart of `moat cri`:
//
//   2016-10-06T00:17:09.669794202Z stdout F a whole line
//   2016-10-06T00:17:09.669794202Z stderr P the first 16 KiB of a long line
//
// F ends a line, P is a part of one (a line longer than 16 KiB, or what is
// left without a newline when the container exits). The host fd is the log
// file, opened for appending by the runtime; `reopen` swaps in a new one
// after the runtime rotated the file.
//
// Attach: the runtime may hand in a pair of pipes (stdout, stderr) that get
// the raw output as it is written, until the container exits (then they are
// closed, which the attached client sees as the end) or the runtime closes
// its ends. They are non-blocking: a client that does not keep up loses
// output rather than stalling the container (the log keeps everything).

import Glibc

final class CRILogSink {
    /// Guarded by Kernel.mu (every writer holds it).
    private(set) var fd: Int32
    private var pending: [String: [UInt8]] = ["stdout": [], "stderr": []]
    static let maxLine = 16 * 1024

    private var attached: [(out: Int32, err: Int32)] = []

    init(fd: Int32) { self.fd = fd }

    /// Requires: Kernel.mu held.
    func attach(out: Int32, err: Int32) {
        for f in [out, err] { _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK) }
        attached.append((out, err))
    }

    /// Closes the attached pipes (the container exited). Requires: Kernel.mu held.
    func detachAll() {
        for a in attached { close(a.out); close(a.err) }
        attached = []
    }

    private func copyToAttached(_ stream: String, _ bytes: [UInt8]) {
        guard !attached.isEmpty else { return }
        var gone: [Int] = []
        for (i, a) in attached.enumerated() {
            let fd = stream == "stderr" ? a.err : a.out
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EPIPE { gone.append(i) }
                    break
                }
                off += n
            }
        }
        for i in gone.reversed() { close(attached[i].out); close(attached[i].err); attached.remove(at: i) }
    }

    func reopen(_ newFD: Int32) {
        if fd >= 0 { close(fd) }
        fd = newFD
    }

    /// Appends application output of one stream. Requires: Kernel.mu held.
    func append(_ stream: String, _ bytes: [UInt8]) {
        copyToAttached(stream, bytes)
        var buf = pending[stream, default: []]
        buf += bytes
        var start = 0
        while let nl = buf[start...].firstIndex(of: 10) {
            var end = nl
            // A line may end with the newline, or be cut at the limit.
            while end - start > CRILogSink.maxLine {
                emit(stream, "P", buf[start..<(start + CRILogSink.maxLine)])
                start += CRILogSink.maxLine
            }
            end = nl
            emit(stream, "F", buf[start..<end])
            start = nl + 1
        }
        while buf.count - start >= CRILogSink.maxLine {
            emit(stream, "P", buf[start..<(start + CRILogSink.maxLine)])
            start += CRILogSink.maxLine
        }
        pending[stream] = Array(buf[start...])
    }

    /// Writes out what is left of unfinished lines. Requires: Kernel.mu held.
    func flush() {
        for s in ["stdout", "stderr"] where !(pending[s]?.isEmpty ?? true) {
            emit(s, "F", pending[s]![...])
            pending[s] = []
        }
    }

    private func emit(_ stream: String, _ tag: String, _ line: ArraySlice<UInt8>) {
        guard fd >= 0 else { return }
        var out = Array((CRILogSink.timestamp() + " " + stream + " " + tag + " ").utf8)
        out += line
        out.append(10)
        var off = 0
        while off < out.count {
            let n = out[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }

    /// RFC 3339 with nanoseconds, UTC.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        let ns = String(ts.tv_nsec)
        return "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1, 2))-\(pad(tmv.tm_mday, 2))T\(pad(tmv.tm_hour, 2)):\(pad(tmv.tm_min, 2)):\(pad(tmv.tm_sec, 2)).\(String(repeating: "0", count: 9 - ns.count) + ns)Z"
    }
}

/// The application's end of one stream: a pipe-like, write-only file.
final class CRILogFD: FileDescription {
    let sink: CRILogSink
    let stream: String

    init(sink: CRILogSink, stream: String, path: Path?) {
        self.sink = sink; self.stream = stream
        super.init(flags: O_WRONLY, path: path)
    }

    override var seekable: Bool { false }
    override func seek(_ off: Int64, _ whence: Int32) -> Int { err(ESPIPE) }
    override func readiness() -> Int16 { Int16(POLLOUT) }
    override func write(_ t: Task, _ buf: UInt64, _ count: Int, _ off: Int64?) -> Int {
        if off != nil { return err(ESPIPE) }
        if count == 0 { return 0 }
        var done = 0
        while done < count {
            let n = min(count - done, 64 * 1024)
            guard let b = t.copyIn(buf &+ UInt64(done), n) else { return done > 0 ? done : err(EFAULT) }
            sink.append(stream, b)
            done += n
        }
        return done
    }
    override func linkName(_ k: Kernel) -> [UInt8] { Array("pipe:[\(stream == "stdout" ? 1 : 2)]".utf8) }
}
