// The kernel's side of the KVM platform (`--platform kvm`): the sandbox's
// VM, its vCPUs, and what a task backed by a vCPU does where a ptrace task
// would use its host stub.
//
// Why it is shaped this way:
//  - The VM and every vCPU are made before Confinement.finish(): opening
//    /dev/kvm and KVM_CREATE_* are not in the Sentry's seccomp filter, which
//    allows only the run/register ioctls, on exactly these vCPU fds
//    (CMoat/confine.c). A task therefore takes a vCPU from a fixed pool.
//  - Application memory is the VM's guest memory: one memfd the Sentry owns
//    and maps (Platform/KVM/KVMMachine.swift). The Sentry's copyin/copyout
//    are memcpy through the page tables it built (KVMAddressSpace), not
//    process_vm_readv; the loader writes the program straight into it.
//  - There is no host process per application process. File mappings (and
//    anonymous shared memory, SysV segments) are windows on the object's
//    own host pages in a second memory slot (KVMMachine.swift,
//    SharedWindows), so processes and read()/write() see one copy: shared
//    ones read and write the window, private ones read it until a page is
//    first written and then have their own copy of that page in guest RAM
//    (KVMAddressSpace.swift says how), as Linux's private file pages.
//  - fork and threads need no host process either. A thread (CLONE_VM) is a
//    new context on its process's vCPU, in the same address space; a new
//    process gets a vCPU of its own from the pool and a copy of the address
//    space (KVMAddressSpace.fork). Why a vCPU per process: under shadow
//    paging (kvm_pvm) the hypervisor caches a shadow per page-table root
//    and, once a vCPU switched to another root, does not see the Sentry's
//    later edits of the first one's entries (a copy-on-write fork that
//    write-protected the parent's pages let the parent keep writing into
//    the pages its child shared). A vCPU that only ever runs one process's
//    root sees every edit at its next CR3 reload. One vCPU runs at a time
//    (KVMTurn: the ring-0 pages are shared), with preemption. The pool is
//    made before confinement; when it is empty, fork fails with EAGAIN.
//  - A kick (a signal for the task, an exit) reaches a task in the guest as
//    a host signal to its driver thread, which makes KVM_RUN return
//    (CMoat/kvm.c explains the immediate_exit handshake).

import CMoat
import Glibc
import Platform

enum KVMTasks {
    /// The sandbox's VM, when the KVM platform is on.
    nonisolated(unsafe) static var machine: KVMMachine?
    /// The init task's context, made with the machine. Guarded by Kernel.mu.
    nonisolated(unsafe) static var idle: [KVMThread] = []
    /// vCPUs no process runs on. Guarded by Kernel.mu.
    nonisolated(unsafe) static var freeCPUs: [KVMVCPU] = []
    /// Live contexts per vCPU (a vCPU returns to the pool at zero).
    nonisolated(unsafe) static var contexts: [ObjectIdentifier: Int] = [:]
    /// vCPUs made at start: the most processes the sandbox runs at once.
    static let poolSize = 16
    static var enabled: Bool { machine != nil }
    /// Whether guest code reads the host's TSC (rdtsc in the guest gives
    /// what it gives in the Sentry): then Moat's vDSO, whose data page the
    /// Sentry fills from host TSC readings, is right in the guest too. True
    /// on kvm_pvm (the guest runs on the host's TSC); hardware KVM gives
    /// each vCPU an offset TSC, and then there is no vDSO (every clock read
    /// is a syscall).
    nonisolated(unsafe) static var tscIsHost = false
    /// Guest physical memory: a sparse memfd (pages cost host memory only
    /// once touched), so the size is a ceiling on application memory.
    static let memoryBytes: UInt64 = 2 << 30

    /// Creates the VM and `vcpus` vCPUs and registers them with the
    /// Sentry's seccomp filter. Call before Confinement.finish(). Returns an
    /// error message, or nil.
    static func setUp(vcpus: Int = poolSize) -> String? {
        do {
            let m = try KVMMachine(memoryBytes: memoryBytes)
            for i in 0..<vcpus {
                let c = try m.newVCPU()
                if moat_sentry_allow_kvm_vcpu(c.fd) != 0 { return "too many KVM vCPUs" }
                if i == 0 {
                    idle.append(try m.newThread(on: c))
                    contexts[ObjectIdentifier(c)] = 1
                } else {
                    freeCPUs.append(c)
                }
            }
            tscIsHost = m.guestTSCIsHost(idle[0].cpu)
            let r = moat_kvm_kick_init(KVMThread.kickSignal)
            if r != 0 { return "cannot install the KVM kick handler: errno \(-r)" }
            machine = m
        } catch {
            return "cannot set up the KVM platform: \(error)"
        }
        return nil
    }

    /// A vCPU for a new task, nil if every one is busy. Requires: mu held.
    static func take() -> KVMThread? { idle.popLast() }

    /// A task's context is done: its address space goes (its pages when
    /// no other thread uses it). Requires: mu held.
    static func giveBack(_ v: KVMThread) {
        v.addressSpace = nil
        let id = ObjectIdentifier(v.cpu)
        let n = (contexts[id] ?? 1) - 1
        contexts[id] = n
        if n <= 0 { contexts[id] = nil; freeCPUs.append(v.cpu) }
    }

    /// A context for a new thread (same vCPU) or process (a free vCPU).
    /// Requires: mu held.
    static func newContext(_ parent: KVMThread, newProcess: Bool) -> KVMThread? {
        let cpu: KVMVCPU
        if newProcess {
            guard let c = freeCPUs.popLast() else { return nil }
            cpu = c
        } else {
            cpu = parent.cpu
        }
        guard let t = try? parent.machine.newThread(on: cpu) else { return nil }
        contexts[ObjectIdentifier(cpu), default: 0] += 1
        return t
    }

    /// Gives the task's vCPU a new, empty address space (exec). The old
    /// one's pages go back to the machine, not its page tables
    /// (KVMAddressSpace's deinit says why). Requires: mu held.
    static func freshAddressSpace(_ t: Task) -> Bool {
        guard var v = t.thread as? KVMThread, let m = machine else { return false }
        // The task's other threads are gone (exec waited for them), so
        // another context on its vCPU is another process's: a vfork child
        // (CLONE_VM without CLONE_THREAD: python's subprocess, posix_spawn)
        // runs on its parent's vCPU in its parent's address space. Its exec
        // makes it a process with a root of its own, which must not share
        // the parent's vCPU (one root per vCPU: the header says why), so it
        // moves to a free vCPU. None free: exec fails (ENOMEM) with the
        // process untouched, as fork's EAGAIN.
        if (contexts[ObjectIdentifier(v.cpu)] ?? 1) > 1 {
            guard let c = freeCPUs.popLast() else { return false }
            guard let n = try? m.newThread(on: c) else { freeCPUs.append(c); return false }
            contexts[ObjectIdentifier(c), default: 0] += 1
            n.regs = v.regs
            giveBack(v)
            t.thread = n
            v = n
        }
        v.addressSpace = nil
        do { v.addressSpace = try KVMAddressSpace(machine: m) } catch { return false }
        return v.resetFPU()
    }

    /// Makes the vCPU run by `driverTid` leave the guest.
    static func kick(driverTid: pid_t) {
        if driverTid > 0 { _ = moat_tgkill(getpid(), driverTid, KVMThread.kickSignal) }
    }
}

extension KVMThread: TaskThread {
    var hasStub: Bool { false }
    /// Every entry loads `regs` anyway.
    func markDirty() {}
    var wantFast: Bool { get { false } set {} }
    var listener: Int32 { -1 }
    var inNotif: Bool { false }
    func materialize() -> Bool { true }
    func enableFastPath(tgid: pid_t) -> Bool { false }
    /// The host calls the kernel injects in a ptrace stub, done on the
    /// guest's page tables instead: MADV_DONTNEED drops pages (they read as
    /// zero after), MADV_WIPEONFORK/KEEPONFORK mark regions, mremap moves
    /// or resizes them. membarrier needs nothing: one vCPU runs guest code
    /// at a time and every VM exit and entry serializes, so every thread of
    /// the process has passed a barrier by the time the caller resumes.
    /// Others are ENOSYS.
    func injectCall(_ nr: Int, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) -> Int {
        guard let asp = addressSpace else { return -Int(EFAULT) }
        if nr == 28 && a.2 == 4 { return asp.discard(a.0, a.1) }
        if nr == 28 && (a.2 == 18 || a.2 == 19) { return asp.setWipeOnFork(a.0, a.1, a.2 == 18) }
        if nr == 25 { return remap(asp, old: a.0, oldLen: a.1, newLen: a.2, flags: a.3, dst: a.4) }
        if nr == 324 { return 0 }
        return -Int(ENOSYS)
    }

    /// mremap, validated by the Sentry (Syscalls/Memory.swift): growth in
    /// place maps the zeroed tail; a move maps the destination with the
    /// region's protection and copies the bytes (glibc's realloc of large
    /// blocks relies on it; it asserted when mremap failed).
    private func remap(_ asp: KVMAddressSpace, old: UInt64, oldLen: UInt64, newLen: UInt64, flags: UInt64, dst: UInt64) -> Int {
        let oldLen = (oldLen + 4095) & ~4095, newLen = (newLen + 4095) & ~4095
        guard let r = asp.region(containing: old) else { return -Int(EFAULT) }
        if let w = r.window {
            // File and shared memory: the new range names the same window
            // pages (a move, or old_size 0's second mapping); growth past
            // the window has no pages to show. A private file mapping's
            // copies move with it; left behind (MREMAP_DONTUNMAP), the old
            // range shows the file again, as on Linux.
            let off = r.windowOffset + (old - r.start)
            if flags & 2 == 0 {
                if newLen <= oldLen { return newLen < oldLen ? asp.unmap(old + newLen, oldLen - newLen) == 0 ? Int(old) : -Int(EFAULT) : Int(old) }
                guard off + newLen <= w.len else { return -Int(ENOMEM) }
                // Only the tail: the mapped part keeps its pages.
                let e = asp.map(old + oldLen, newLen - oldLen, prot: r.prot, window: w, offset: off + oldLen, copyOnWrite: r.copyOnWrite)
                return e < 0 ? e : Int(old)
            }
            guard off + newLen <= w.len else { return -Int(ENOMEM) }
            let e = asp.map(dst, newLen, prot: r.prot, window: w, offset: off, copyOnWrite: r.copyOnWrite)
            if e < 0 { return e }
            if r.copyOnWrite && oldLen > 0 { asp.movePrivateCopies(from: old, to: dst, min(oldLen, newLen)) }
            if oldLen > 0 && flags & 4 == 0 { _ = asp.unmap(old, oldLen) }
            return Int(dst)
        }
        if flags & 2 == 0 {  // in place: the Sentry checked the tail is free
            if newLen < oldLen { _ = asp.unmap(old + newLen, oldLen - newLen) }
            if newLen <= oldLen { return Int(old) }
            let e = asp.map(old + oldLen, newLen - oldLen, prot: r.prot)
            return e < 0 ? e : Int(old)
        }
        let e = asp.map(dst, newLen, prot: r.prot)
        if e < 0 { return e }
        let n = Int(min(oldLen, newLen))
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 4096)
        defer { buf.deallocate() }
        var done = 0
        while done < n {
            let c = min(64 << 10, n - done)
            // Pages never touched read as zero either way; force: the
            // region may be write-protected (or unreadable) to the app.
            _ = asp.readForce(old + UInt64(done), buf, c)
            _ = asp.write(dst + UInt64(done), buf, c, force: true)
            done += c
        }
        // MREMAP_DONTUNMAP leaves the old range mapped, reading as zero.
        if flags & 4 != 0 { _ = asp.map(old, oldLen, prot: r.prot) } else { _ = asp.unmap(old, oldLen) }
        return Int(dst)
    }
    func cloneStub(flags: UInt64) -> Int { 0 }
    func cloneContext(shareMemory: Bool) -> (any TaskThread)? {
        guard let asp = addressSpace else { return nil }
        var copy: KVMAddressSpace?
        if !shareMemory {
            copy = try? asp.fork()
            if copy == nil { return nil }
        }
        guard let c = KVMTasks.newContext(self, newProcess: !shareMemory) else { return nil }
        c.addressSpace = copy ?? asp
        // The FPU state is inherited, as the registers are: the whole XSAVE
        // area (AVX and beyond), not only its x87/SSE part.
        guard case .success(let xs) = getXState(), c.setXState(xs) == 0 else { return nil }
        return c
    }
    func reap() {}
    func reseize(_ newTid: pid_t) throws { throw KVMError.unavailable("a vCPU has no stub to reseize") }
    func detachParked() {}
}

extension MemoryManager {
    /// mapFile on the KVM platform: a window on the file's own pages
    /// (Platform/KVM/KVMMachine.swift, SharedWindows). A shared mapping
    /// reads and writes them: the same pages for every process that maps
    /// it and for read()/write(). A private one is copy-on-write over a
    /// read-only window (KVMAddressSpace.swift): clean pages show the file
    /// as it is now, written pages are the process's own, MADV_DONTNEED
    /// shows the file again; past the file's end the application gets
    /// SIGBUS, as on Linux.
    func mapWindow(_ t: Task, addr: UInt64, len: UInt64, prot: Int32, shared: Bool, hostFD: Int32, offset: UInt64, name: String) -> Int {
        guard let v = t.thread as? KVMThread, let asp = v.addressSpace, let m = KVMTasks.machine else { return err(EFAULT) }
        // A private mapping never writes the file: its window is read-only.
        let writable = shared && fcntl(hostFD, F_GETFL) & O_ACCMODE == O_RDWR
        if shared && prot & PROT_WRITE != 0 && !writable { return err(EACCES) }
        guard let w = m.windows.open(fd: hostFD, offset: offset, len: len, writable: writable) else { return err(ENOMEM) }
        if shared && prot & PROT_WRITE != 0 && !w.writable { return err(EPERM) }  // a write-sealed memfd
        let r = asp.map(addr, len, prot: prot, window: w, offset: 0, copyOnWrite: !shared)
        if r < 0 { return r }
        var vma = VMA(start: addr, end: addr + len, prot: prot & 7, flags: (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED, name: name, offset: offset)
        if shared {
            var st = Glibc.stat()
            fstat(hostFD, &st)
            vma.shareID = (1 << 63) | (UInt64(st.st_dev) << 40) ^ UInt64(st.st_ino)
        }
        record(vma)
        return Int(addr)
    }
}
