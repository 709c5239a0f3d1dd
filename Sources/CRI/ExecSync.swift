// ExecSync: runs a command in a running container and returns its output
// and exit code. The process's stdout and stderr are pipes drained while it
// runs (so a chatty command cannot block on a full pipe); its stdin is
// /dev/null. Once it has exited, the answer waits for the streams' end only
// a short grace period: a background process it started may hold them open. A timeout is enforced by the sandbox (it kills the process) and
// reported as DeadlineExceeded, as kubelet's probes expect.

import CRIAPI
import Foundation
import Glibc
import Sandbox

/// Output kept per stream; the rest is read and dropped. Both streams
/// together stay under the 16 MiB kubelet accepts in one message.
let execSyncOutputLimit = (8 << 20) - 1024

/// How long the output streams may stay open after the process exited (a
/// background child still holding them): what was read by then is the answer.
let execSyncDrainGraceSeconds = 2

private final class Drain: @unchecked Sendable {
    private var data = Data()
    private let lock = NSLock()
    private let fd: Int32
    private let done = DispatchSemaphore(value: 0)
    init(fd: Int32) {
        self.fd = fd
        Thread.detachNewThread { [self] in
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.lock()
                if data.count < execSyncOutputLimit { data.append(contentsOf: buf[0..<min(n, execSyncOutputLimit - data.count)]) }
                lock.unlock()
            }
            close(fd)
            done.signal()
        }
    }
    /// The output up to the stream's end, or up to the grace period's end
    /// when something other than the exited process keeps it open (the
    /// reader thread then goes on until it closes, dropping what it reads).
    func wait(graceSeconds: Int) -> Data {
        _ = done.wait(timeout: .now() + .seconds(graceSeconds))
        lock.lock(); defer { lock.unlock() }
        return data
    }
}

func execSyncIn(_ sb: PodSandbox, container c: ContainerRecord, argv: [String], timeout: Int) async throws -> Runtime_V1_ExecSyncResponse {
    try await offload {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard cloexecPipe(&out) else { throw CRIError.internalError("pipe: \(String(cString: strerror(errno)))") }
        guard cloexecPipe(&err) else {
            close(out[0]); close(out[1])
            throw CRIError.internalError("pipe: \(String(cString: strerror(errno)))")
        }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let outDrain = Drain(fd: out[0]), errDrain = Drain(fd: err[0])
        let started = nowNanos()
        let p = ExecDefaults.process(argv, in: c)
        // The sandbox kills the process at the timeout; should the pod's
        // Sentry not answer at all, the caller still gets DeadlineExceeded a
        // few seconds later (the exec's thread finishes, and closes its
        // descriptors, whenever the Sentry does).
        final class Box: @unchecked Sendable { var result: Result<Int32, Error> = .failure(CRIError.internalError("exec did not run")) }
        let box = Box(), done = DispatchSemaphore(value: 0)
        let (wOut, wErr) = (out[1], err[1])
        Thread.detachNewThread {
            box.result = Result { try sb.exec(c.id, p, stdin: null, stdout: wOut, stderr: wErr, timeoutSeconds: timeout) }
            close(wOut); close(wErr); close(null)
            done.signal()
        }
        if timeout > 0, done.wait(timeout: .now() + .seconds(timeout + 10)) == .timedOut {
            throw CRIError.deadlineExceeded("command \(argv.joined(separator: " ").debugDescription) timed out after \(timeout)s (the pod's Sentry did not end it)")
        }
        if timeout <= 0 { done.wait() }
        let result = box.result
        var r = Runtime_V1_ExecSyncResponse()
        // The process has exited (or never started): its streams end now,
        // unless a process it left behind holds them.
        r.stdout = outDrain.wait(graceSeconds: execSyncDrainGraceSeconds)
        r.stderr = errDrain.wait(graceSeconds: execSyncDrainGraceSeconds)
        let status = try result.get()
        let elapsed = nowNanos() - started
        let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
        if timeout > 0 && signaled && elapsed >= Int64(timeout) * 1_000_000_000 {
            throw CRIError.deadlineExceeded("command \(argv.joined(separator: " ").debugDescription) timed out after \(timeout)s")
        }
        r.exitCode = signaled ? 128 + (status & 0x7f) : (status >> 8) & 0xff
        return r
    }
}

private func cloexecPipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return true
}
