// The host files a stub process keeps open between big reads and writes
// (Task.stubPwrite, Task.stubPread), so that a run of 1 MiB writes to one
// file costs one injected pwrite64 each instead of pidfd_getfd + pwrite64 +
// close: three ptrace stops per write instead of seven (the materialize
// out of the seccomp notification, then a seccomp-trace stop and an int3
// stop per injected call).
//
// Why a kept fd is safe (invariant 1: no application-chosen call reaches
// the host):
// - The stub's fd table is reachable only by host calls made in the stub
//   process, and the only host calls the stub makes are the ones the Sentry
//   injects. The application's own calls never run on the host: under
//   PTRACE_SYSEMU they stop before the host sees them, under the fast path
//   its thread's seccomp layer turns every call into a notification or a
//   trap, and a call made from the stub page by application code (a jump
//   there) is a seccomp-trace stop that the Sentry emulates and skips
//   (PtraceThread.classify). So the kept fd gives the application nothing
//   it did not have: it can reach that file only through the Sentry's
//   read and write, with the Sentry's checks, as before. (The stub always
//   holds its pidfd of the Sentry, MOAT_STUB_PIDFD, from which any Sentry
//   fd can be taken: a kept file adds no reach the stub process lacked.)
// - The Sentry injects pwrite64 or pread64 on a kept fd only after
//   kcmp(KCMP_FILE) says it is at this moment the very open file
//   description the Sentry's own fd is (so a closed and reused host fd
//   number can never move bytes to or from another file), and only in the
//   stub process that holds it (exec replaces the stub process; the entry
//   names its pid).
// - What it holds: the file, as a file mapping already does. It is closed
//   when big I/O to more than `stubFDMax` files needs its place, and after
//   close(2) and unlink(2) as soon as the Sentry no longer has that file
//   open (a deleted file's memory is not held by the stub); exit and exec
//   end the stub process and with it the fds. At most `stubFDMax` files per
//   process are held this way.
// - Where kcmp is not available (an older confinement, a host without
//   CONFIG_KCMP) nothing is kept: the fd is lent for the one call and closed
//   again, as before.

import CMoat
import Glibc

/// A Sentry fd (`host`) whose open file the stub process `stubPid` holds as
/// its fd `remote`. Guarded by Kernel.mu.
struct StubFD {
    var stubPid: pid_t
    var host: Int32
    var remote: Int32
}

extension Task {
    /// How many files a stub process keeps: a copy (read one file, write
    /// another) and a few more, each one more file held open.
    static let stubFDMax = 4

    /// The stub's fd for the Sentry's `hostFD` and whether the stub keeps it
    /// (false: the caller closes it after its call). nil when the stub could
    /// not take it. Requires: Kernel.mu held, the task's own driver thread
    /// (it injects), a stub.
    func stubFileFD(_ hostFD: Int32) -> (fd: UInt64, kept: Bool)? {
        if let i = tg.stubFDs.firstIndex(where: { $0.stubPid == hostPid && $0.host == hostFD }) {
            let c = tg.stubFDs[i]
            if isSameFile(c) {
                if i != tg.stubFDs.count - 1 { tg.stubFDs.remove(at: i); tg.stubFDs.append(c) }  // most recent last
                return (UInt64(c.remote), true)
            }
            dropStubFD(at: i)       // the Sentry's fd number names another file now
        }
        tg.stubFDs.removeAll { $0.stubPid != hostPid }   // a stub process exec replaced: its fds went with it
        if tg.stubFDs.count >= Task.stubFDMax { dropStubFD(at: 0) }
        let remote = thread.inject(438 /* pidfd_getfd */, UInt64(MOAT_STUB_PIDFD), UInt64(hostFD), 0)
        if remote < 0 { return nil }
        let c = StubFD(stubPid: hostPid, host: hostFD, remote: Int32(remote))
        // Kept only when kcmp can check it before every later use.
        guard tg.stubFDs.count < Task.stubFDMax, isSameFile(c) else { return (UInt64(remote), false) }
        tg.stubFDs.append(c)
        return (UInt64(remote), true)
    }

    /// Whether the stub's `remote` is still the Sentry's `host`: the same
    /// open file description, not just the same fd numbers.
    private func isSameFile(_ c: StubFD) -> Bool {
        moat_kcmp_file(getpid(), c.stubPid, c.host, c.remote) == 0
    }

    /// Closes the kept fd `i` in the stub and forgets it; an entry of a stub
    /// process exec replaced is just forgotten. Kept when this thread
    /// cannot inject (not the task's own driver): a later call drops it.
    private func dropStubFD(at i: Int) {
        let c = tg.stubFDs[i]
        if c.stubPid != hostPid { tg.stubFDs.remove(at: i); return }
        guard thread.hasStub, currentTask === self else { return }
        tg.stubFDs.remove(at: i)
        _ = thread.inject(3 /* close */, UInt64(c.remote))
    }

    /// After a call that may have made the Sentry let go of a file (close,
    /// unlink): a kept fd whose file is no longer the Sentry's is let go by
    /// the stub too. One kcmp per kept fd; nothing when none is kept.
    func dropStaleStubFD() {
        var i = tg.stubFDs.count - 1
        while i >= 0 {
            let c = tg.stubFDs[i]
            if c.stubPid != hostPid || !isSameFile(c) { dropStubFD(at: i) }
            i -= 1
        }
    }

    /// A fork's stub process starts with a copy of its parent's fd table,
    /// the kept fds included: the child's process records them as its own,
    /// so that its close, unlink or big I/O lets go of them as well.
    func inheritStubFD(into child: ThreadGroup, childStubPid: pid_t) {
        guard childStubPid > 0 else { return }
        child.stubFDs = tg.stubFDs.filter { $0.stubPid == hostPid }.map {
            StubFD(stubPid: childStubPid, host: $0.host, remote: $0.remote)
        }
    }
}
