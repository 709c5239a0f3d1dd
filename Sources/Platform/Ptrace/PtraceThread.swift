// The ptrace platform.
//
// Memory design: application memory is ordinary anonymous (and, later,
// file-backed) host memory inside the stub process; the Sentry decides every
// mapping and makes it happen by injecting mmap/munmap/mprotect into the stub
// (a `syscall; int3` sequence on the stub page). We chose this over gVisor's
// Sentry-owned memfd because:
//   - fork is a host clone of the stub: the host kernel does copy-on-write,
//     page by page, with no Sentry bookkeeping and no eager copies;
//   - threads (CLONE_VM) and vfork share memory exactly as Linux does;
//   - resident memory is accounted to the sandbox's own host processes, so
//     cgroup limits on the sandbox see the application's memory;
//   - file-backed MAP_SHARED can later map the Gofer-donated host fd into the
//     stub, sharing the host page cache.
// The price: the Sentry reads and writes application memory with
// process_vm_readv/writev (one host call per access instead of a memcpy from
// its own mapping), and each mapping change costs an injected call (two
// ptrace stops). Both are small next to the trap itself.
//
// Threads: a ptraced thread has exactly one tracer *thread*. Each application
// thread is driven by one dedicated Sentry pthread that seizes its stub
// thread and is the only caller of ptrace on it. New stub threads and
// processes are created by injecting clone into an existing stub; the child
// waits in pause() on the stub page, untraced, until its driver seizes it.

import CMoat
import Glibc

// ptrace constants not exported by Glibc's Swift overlay.
let PTRACE_SYSEMU_: Int = 31
let PTRACE_CONT_: Int = 7
let PTRACE_SEIZE_: Int = 0x4206
let PTRACE_INTERRUPT_: Int = 0x4207
let PTRACE_O_TRACESYSGOOD_: UInt = 1
let PTRACE_O_EXITKILL_: UInt = 1 << 20
let PTRACE_EVENT_STOP_: Int32 = 128
let WALL_: Int32 = 0x40000000

/// Driver-side handle of one stub thread. Not thread safe: only its driver
/// thread may use it (ptrace requires the tracer thread).
public final class PtraceThread {
    /// Host thread id of the stub thread.
    public private(set) var tid: pid_t
    /// The registers of the application thread. Valid after a stop; written
    /// back before the next resume if `dirty`.
    public var regs = Registers()
    @usableFromInline var dirty = false
    private var savedSig: siginfo_t = siginfo_t()

    /// Seizes `tid`, which must be a stub thread waiting on the stub page.
    public init(seize tid: pid_t) throws {
        self.tid = tid
        try attach()
    }

    private func attach() throws {
        let opts = PTRACE_O_TRACESYSGOOD_ | PTRACE_O_EXITKILL_
        if moat_ptrace(PTRACE_SEIZE_, tid, 0, opts) != 0 { throw HostErrno.current }
        if moat_ptrace(PTRACE_INTERRUPT_, tid, 0, 0) != 0 { throw HostErrno.current }
        var status: Int32 = 0
        while true {
            let r = waitpid(tid, &status, WALL_)
            if r < 0 { if errno == EINTR { continue }; throw HostErrno.current }
            if moat_wifstopped(status) != 0 {
                if status >> 16 == PTRACE_EVENT_STOP_ { break }
                // Some other stop first (a pending host signal): swallow it.
                _ = moat_ptrace(PTRACE_CONT_, tid, 0, 0)
                continue
            }
            throw HostErrno(ESRCH)
        }
        if moat_getregs(tid, &regs) != 0 { throw HostErrno.current }
    }

    /// Replaces the traced stub thread (execve moves a task to a new address space).
    public func reseize(_ newTid: pid_t) throws {
        tid = newTid
        dirty = false
        try attach()
    }

    @inline(__always) public func markDirty() { dirty = true }

    /// Resumes application code until the next syscall, fault or host signal.
    public func run() -> StopReason {
        if dirty {
            if moat_setregs(tid, &regs) != 0 { return .gone }
            dirty = false
        }
        var sig: Int = 0
        while true {
            if moat_ptrace(PTRACE_SYSEMU_, tid, 0, UInt(sig)) != 0 { return .gone }
            sig = 0
            var status: Int32 = 0
            var r: pid_t
            repeat { r = waitpid(tid, &status, WALL_) } while r < 0 && errno == EINTR
            if r < 0 { return .gone }
            if moat_wifstopped(status) == 0 { return .gone }
            let stopsig = moat_wstopsig(status)
            if stopsig == (SIGTRAP | 0x80) {
                if moat_getregs(tid, &regs) != 0 { return .gone }
                return .syscall
            }
            if status >> 16 != 0 {
                // PTRACE_EVENT_STOP (group stop / interrupt): not ours to report.
                if moat_getregs(tid, &regs) != 0 { return .gone }
                return .interrupted
            }
            switch stopsig {
            case SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP:
                if moat_getsiginfo(tid, &savedSig) != 0 { return .gone }
                let code = moat_siginfo_code(&savedSig)
                if moat_getregs(tid, &regs) != 0 { return .gone }
                if code > 0 || stopsig == SIGTRAP {
                    // Raised by the CPU (si_code > 0 means kernel-generated).
                    return .fault(signo: stopsig, code: code, addr: moat_siginfo_addr(&savedSig))
                }
                return .interrupted
            default:
                // Any other host signal is a kick from the Sentry, or noise
                // (SIGWINCH to the process group...). Suppress it.
                if moat_getregs(tid, &regs) != 0 { return .gone }
                return .interrupted
            }
        }
    }

    /// Runs one host syscall in the stub on the application's behalf. The
    /// caller has validated it. Application registers are preserved.
    public func inject(_ nr: Int, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0,
                       _ a3: UInt64 = 0, _ a4: UInt64 = 0, _ a5: UInt64 = 0,
                       at entry: UInt64 = moat_stub_syscall_addr()) -> Int {
        let saved = regs
        var r = regs
        r.rax = UInt64(nr); r.orig_rax = UInt64.max
        r.rdi = a0; r.rsi = a1; r.rdx = a2; r.r10 = a3; r.r8 = a4; r.r9 = a5
        r.rip = entry
        if moat_setregs(tid, &r) != 0 { return -Int(ESRCH) }
        var result = -Int(ESRCH)
        while true {
            if moat_ptrace(PTRACE_CONT_, tid, 0, 0) != 0 { return -Int(ESRCH) }
            var status: Int32 = 0
            var w: pid_t
            repeat { w = waitpid(tid, &status, WALL_) } while w < 0 && errno == EINTR
            if w < 0 || moat_wifstopped(status) == 0 { return -Int(ESRCH) }
            if moat_wstopsig(status) == SIGTRAP && status >> 16 == 0 {
                var out = Registers()
                if moat_getregs(tid, &out) != 0 { return -Int(ESRCH) }
                result = Int(Int64(bitPattern: out.rax))
                break
            }
            // A host signal arrived during injection (a kick): drop it and go on.
        }
        regs = saved
        dirty = false
        if moat_setregs(tid, &regs) != 0 { return -Int(ESRCH) }
        return result
    }

    /// Clones this stub thread in the host. The child starts in the pause
    /// loop on the stub page; seize it with `PtraceThread(seize:)`.
    public func cloneStub(flags: UInt64) -> Int {
        inject(56 /* clone */, flags, 0, 0, 0, 0, 0, at: moat_stub_clone_addr())
    }

    public func getFP(_ fp: inout FPRegisters) -> Bool { moat_getfpregs(tid, &fp) == 0 }
    public func setFP(_ fp: inout FPRegisters) -> Bool { moat_setfpregs(tid, &fp) == 0 }

    /// Reads application memory. Returns bytes read or -errno.
    @inline(__always)
    public func read(_ addr: UInt64, _ buf: UnsafeMutableRawPointer, _ len: Int) -> Int {
        let n = moat_read_mem(tid, addr, buf, len)
        return n < 0 ? -Int(moat_errno()) : n
    }
    @inline(__always)
    public func write(_ addr: UInt64, _ buf: UnsafeRawPointer, _ len: Int) -> Int {
        let n = moat_write_mem(tid, addr, buf, len)
        return n < 0 ? -Int(moat_errno()) : n
    }

    /// Waits for the (killed) stub thread to be gone and reaps it.
    public func reap() {
        var status: Int32 = 0
        while true {
            let r = waitpid(tid, &status, WALL_)
            if r < 0 { if errno == EINTR { continue }; return }
            if moat_wifexited(status) != 0 || moat_wifsignaled(status) != 0 { return }
            // Still stopped: let it run into its death.
            _ = moat_ptrace(PTRACE_CONT_, tid, 0, 0)
        }
    }
}

extension PtraceThread {
    /// Leaves the stub thread parked in the stub's pause loop and stops
    /// tracing it (so that this driver thread may end without EXITKILL
    /// taking the whole stub process down). Used for a thread-group leader
    /// that exits while its other threads go on.
    public func detachParked() {
        var r = regs
        r.rip = moat_stub_pause_addr()
        r.orig_rax = UInt64.max
        _ = moat_setregs(tid, &r)
        _ = moat_ptrace(17 /* PTRACE_DETACH */, tid, 0, 0)
    }
}
