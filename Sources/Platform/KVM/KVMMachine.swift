// The KVM platform: one hardware virtual machine per sandbox, whose guest
// runs only application code (ring 3) and a few bytes of Moat ring-0 code
// that turns every syscall and every exception into an exit to the Sentry.
// There is no guest kernel: the Sentry *is* the kernel, exactly as with the
// ptrace platform, but a trap costs one VM exit instead of two ptrace stops
// and two host context switches.
//
// This file owns the machine: the VM, its guest physical memory and the
// ring-0 structures every vCPU shares (GDT, IDT, TSS, entry code, the kernel
// half of the page tables). KVMAddressSpace.swift owns user page tables,
// KVMThread.swift a vCPU and its run loop.
//
// Design choices (and why):
//   - Guest physical memory is one memfd the Sentry creates and maps into
//     itself (MAP_SHARED), registered as KVM memory slot 0 at GPA 0. The
//     Sentry reads and writes application memory with memcpy through that
//     mapping after walking the page tables it built itself: no host call per
//     access (the ptrace platform needs process_vm_readv), and the memory is
//     an fd the Sentry can later hand to a fork or give back page by page
//     (fallocate PUNCH_HOLE). Nothing in guest physical memory is ever mapped
//     executable in the Sentry.
//   - The Sentry builds 4-level page tables itself (it is the kernel). The
//     lower half is the application's; the top 512 GiB slot (PML4 entry 511)
//     is the same in every address space and maps only the handful of
//     ring-0 pages below, supervisor-only and global. Only those pages: the
//     guest ring 0 never touches application memory (the Sentry does, from
//     the host), so guest physical memory is not direct-mapped into the guest
//     at all and a guest-side bug cannot reach page tables.
//   - Exceptions exit through `out imm8, al` to a port, not HLT: an I/O
//     exit carries the port number, so one two-byte instruction says why we
//     exited without touching any user register, and HLT stays free as a
//     "cannot happen" guard. Ring 3 cannot forge that exit: IOPL is 0 (the
//     Sentry clears it on every resume), the TSS has no I/O bitmap, and
//     HLT/OUT/`int n` from user mode raise #GP, which is reported as an
//     ordinary fault. Syscalls exit through the doorbell (next point).
//   - The syscall entry (LSTAR) is one store to the *doorbell*: a page of
//     guest virtual memory mapped to a guest physical address outside guest
//     RAM, so the store is an MMIO exit to the Sentry. It does not switch
//     stacks or save anything: after the exit the vCPU still holds every
//     user register (rcx = return rip, r11 = rflags, as Linux defines them
//     after `syscall`), which KVM has already copied into the kvm_run area
//     (KVM_CAP_SYNC_REGS), so a trap costs no register ioctl. Why a store
//     and not `out`: on kvm_pvm (below) a SYSCALL reaches LSTAR still in
//     user mode, where `out` is a #GP that the hypervisor delivers through
//     our IDT by emulating ring 0 (about 20 us per trap on the test VM);
//     the doorbell exits straight from user mode, and the vCPU is then
//     resumed in user mode with one register write, no ring-0 code at all
//     (bench/results/2026-12-06-kvm-trap.md has the figures). The
//     trampoline page and the doorbell are user-accessible, so user code can
//     reach them by jumping to LSTAR or storing to the doorbell: the first is
//     only the syscall it could make anyway, the second is reported as a
//     SIGSEGV (KVMThread.doorbell).
//   - Return to user always goes through `iretq` from a frame the Sentry
//     writes on the ring-0 stack, never `sysretq`: the Sentry may change any
//     register (signal delivery, sigreturn, execve) and iretq restores rcx and
//     r11 too, and iretq cannot be turned into ring-0 execution at a user
//     address by a non-canonical rip (the sysret erratum). A second
//     trampoline reloads CR3 first, which is how a changed mapping or a
//     different address space takes effect (a TLB flush without an exit).
//   - Every exception gate uses IST 1, so the ring-0 stack is always the
//     known per-vCPU stack even if ring 0 itself faults; a fault in ring 0 is
//     a Moat bug and kills only this VM.
//   - No devices, no interrupt controller, no timer: the only ways out of the
//     guest are our exits, a host signal to the vCPU thread (KVM_RUN returns
//     EINTR), or a fatal VM exit (triple fault, ...), which ends the VM.
//   - The ring-0 pages (TSS, IST stack, CR3 slot) are one set at fixed
//     guest physical pages, so one vCPU runs at a time (KVMTurn); running
//     vCPUs in parallel needs one set per vCPU.
//
// The hypervisor on the machines Moat is tested on is not hardware KVM but
// kvm_pvm (PVM, a KVM flavour that runs the guest at hardware CPL 3 under
// shadow page tables). It honours this guest's IDT, iretq and OUT exits by
// emulating the ring-0 code, but delivers a user SYSCALL as a jump to LSTAR
// that stays in user mode, so the doorbell store there runs in user mode
// and the exit leaves the vCPU in user mode (KVMThread resumes it there).
// On hardware KVM the same store runs in ring 0 and the exit leaves the vCPU
// in ring 0 (KVMThread resumes through iretq). Both give the same
// StopReason, so nothing above this file knows which ran.

import CMoat
import Glibc

/// Guest physical layout of the ring-0 pages (page numbers). Everything from
/// `firstPoolPage` on is handed out by the page allocator (page tables and
/// application pages).
enum KernelPage {
    static let gdt: UInt64 = 1        // GDT at 0, TSS at 0x800
    static let idt: UInt64 = 2
    static let code: UInt64 = 3       // the only executable ring-0 page
    static let data: UInt64 = 4       // CR3 slot for the flush trampoline
    static let stackLow: UInt64 = 5   // IST/RSP0 stack: pages 5 and 6
    static let stackPages: UInt64 = 2
    static let pdpt: UInt64 = 8       // kernel half: PDPT, PD, PT
    static let pd: UInt64 = 9
    static let pt: UInt64 = 10
    static let pml4: UInt64 = 11      // kernel half only: CR3 before any address space
    static let syscallCode: UInt64 = 12  // LSTAR: user-executable, read-only
    /// Not a page of RAM: the slot of the kernel half where the doorbell
    /// (KVMMachine.doorbellGPA) is mapped.
    static let doorbellSlot: UInt64 = 13
    static let firstPoolPage: UInt64 = 16
}

/// Guest virtual layout of the ring-0 half and the segment selectors.
enum KernelLayout {
    /// PML4 slot 511; a kernel page N is at `base + N * 4096`.
    static let base: UInt64 = 0xffff_ff80_0000_0000
    static func va(_ page: UInt64, _ off: UInt64 = 0) -> UInt64 { base + page * 4096 + off }
    static let tssOffset: UInt64 = 0x800
    static let stackTop: UInt64 = va(KernelPage.stackLow + KernelPage.stackPages)
    // GDT: null, kernel code, kernel data, two unused, user data, user code,
    // TSS (2 slots). The user selectors are Linux's own (0x2b, 0x33): what
    // signal frames and ptrace show, and what STAR must derive for them.
    static let kernelCS: UInt16 = 0x08
    static let kernelSS: UInt16 = 0x10
    static let userSS: UInt16 = 0x28 | 3
    static let userCS: UInt16 = 0x30 | 3
    static let tss: UInt16 = 0x38
    /// The I/O ports our ring-0 code exits through.
    static let exceptionPort: UInt16 = 0x52
    /// LSTAR, and where the vCPU stands after the doorbell store there
    /// (`movabs [doorbell], al` is 9 bytes).
    static let syscallEntry: UInt64 = va(KernelPage.syscallCode)
    static let syscallDoorbellRip: UInt64 = syscallEntry + 9
    static let doorbell: UInt64 = va(KernelPage.doorbellSlot)
    // Offsets in the code page.
    static let vectorStubs: UInt64 = 0x040   // 16 bytes per vector 0..31
    static let exceptionCommon: UInt64 = 0x240
    static let resume: UInt64 = 0x260
    static let resumeFlush: UInt64 = 0x280
    static let cr3Slot: UInt64 = va(KernelPage.data, 0)
}

/// Errors of the KVM platform (setup only; a running guest's troubles are
/// StopReasons).
public enum KVMError: Error, CustomStringConvertible {
    case unavailable(String)
    case host(String, Int32)
    case outOfGuestMemory
    public var description: String {
        switch self {
        case .unavailable(let s): return "KVM unavailable: \(s)"
        case .host(let what, let e): return "\(what): \(String(cString: strerror(e)))"
        case .outOfGuestMemory: return "out of guest physical memory"
        }
    }
}

@inline(__always) func check(_ r: Int32, _ what: String) throws -> Int32 {
    if r < 0 { throw KVMError.host(what, -r) }
    return r
}

/// Guest physical memory: a memfd mapped into the Sentry, handed out page by
/// page. Pages are zeroed when handed out, so a freed page never leaks one
/// address space's data into another. Each page has a reference count (for
/// pages shared between address spaces), and a lock guards the allocator:
/// vCPU threads resolve page faults without the Sentry's kernel lock.
public final class GuestMemory {
    public let fd: Int32
    public let size: UInt64
    let base: UnsafeMutableRawPointer
    private var next: UInt64
    private var free: [UInt64] = []
    private let refs: UnsafeMutablePointer<UInt32>
    private var mu = pthread_mutex_t()

    init(size: UInt64) throws {
        self.size = size
        fd = try check(moat_memfd("moat-guest", size), "memfd_create")
        guard let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = errno
            close(fd)
            throw KVMError.host("mmap guest memory", e)
        }
        base = p
        next = KernelPage.firstPoolPage * 4096
        refs = .allocate(capacity: Int(size / 4096))
        refs.initialize(repeating: 0, count: Int(size / 4096))
        pthread_mutex_init(&mu, nil)
    }

    deinit {
        refs.deallocate()
        munmap(base, Int(size))
        close(fd)
    }

    /// A zeroed page's guest physical address, or nil when memory is full.
    func allocPage() -> UInt64? {
        pthread_mutex_lock(&mu)
        let gpa: UInt64
        if let p = free.popLast() {
            gpa = p
        } else {
            guard next + 4096 <= size else { pthread_mutex_unlock(&mu); return nil }
            gpa = next
            next += 4096
        }
        refs[Int(gpa / 4096)] = 1
        pthread_mutex_unlock(&mu)
        memset(base + Int(gpa), 0, 4096)
        return gpa
    }

    /// Drops one reference; the page is free at the last.
    func freePage(_ gpa: UInt64) {
        pthread_mutex_lock(&mu)
        let i = Int(gpa / 4096)
        if refs[i] > 0 {
            refs[i] -= 1
            if refs[i] == 0 { free.append(gpa) }
        }
        pthread_mutex_unlock(&mu)
    }

    /// One more address space maps the page.
    func refPage(_ gpa: UInt64) {
        pthread_mutex_lock(&mu)
        refs[Int(gpa / 4096)] += 1
        pthread_mutex_unlock(&mu)
    }

    /// How many address spaces map the page.
    func references(_ gpa: UInt64) -> UInt32 {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        return refs[Int(gpa / 4096)]
    }

    /// Pages handed out and not freed (for tests and accounting).
    public var pagesInUse: Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        return Int((next - KernelPage.firstPoolPage * 4096) / 4096) - free.count
    }

    @inline(__always) func pointer(_ gpa: UInt64) -> UnsafeMutableRawPointer { base + Int(gpa) }
    /// Whether `gpa` is guest RAM (else a shared window, SharedWindows).
    @inline(__always) func isRAM(_ gpa: UInt64) -> Bool { gpa < size }
    @inline(__always) func load64(_ gpa: UInt64) -> UInt64 { pointer(gpa).loadUnaligned(as: UInt64.self) }
    @inline(__always) func store64(_ gpa: UInt64, _ v: UInt64) { pointer(gpa).storeBytes(of: v, as: UInt64.self) }
}

/// Guest physical memory for MAP_SHARED mappings: a second KVM memory slot
/// over a range of Sentry address space that is reserved (PROT_NONE) when
/// made, before confinement. A shared mapping (anonymous shared memory, a
/// SysV segment, a memfd, a tmpfs or host file) becomes a *window*: the
/// Sentry maps the object's host fd MAP_SHARED|MAP_FIXED at a free part of
/// the range, and the guest's page table entries point at the matching
/// guest physical pages. Every address space that maps the object (a fork,
/// a second mmap, another process's shmat) sees the same host pages, which
/// are also the file's own page cache, so read()/write() on the file and
/// the mapping agree, as on Linux.
///
/// Why one slot over a reserved range, not a slot per mapping: replacing
/// host mappings inside a registered slot is ordinary mmap (KVM follows it
/// through its MMU notifier), so the Sentry's seccomp filter still allows
/// no KVM_SET_USER_MEMORY_REGION once the application runs, and the number
/// of KVM slots does not limit the number of shared mappings. Guest code can
/// only reach the parts its page tables name (the Sentry's windows); a
/// released window is reserved (PROT_NONE) again, which also drops every
/// guest translation to it.
public final class SharedWindows {
    /// Guest physical address of the range (after RAM and the doorbell).
    public let gpa: UInt64
    public let size: UInt64
    let base: UnsafeMutableRawPointer
    /// Free parts (offset, length), sorted, coalesced.
    private var free: [(UInt64, UInt64)]
    private var mu = pthread_mutex_t()

    init(gpa: UInt64, size: UInt64) throws {
        guard let p = mmap(nil, Int(size), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), p != MAP_FAILED else {
            throw KVMError.host("mmap shared-window range", errno)
        }
        self.gpa = gpa
        self.size = size
        base = p
        free = [(0, size)]
        pthread_mutex_init(&mu, nil)
    }

    deinit { munmap(base, Int(size)) }

    @inline(__always) func contains(_ g: UInt64) -> Bool { g >= gpa && g < gpa + size }
    @inline(__always) func pointer(_ g: UInt64) -> UnsafeMutableRawPointer { base + Int(g - gpa) }

    /// A window on `fd` (nil: fresh anonymous shared memory) at file offset
    /// `offset`, `len` bytes (page multiple), writable if `writable`.
    public func open(fd: Int32?, offset: UInt64, len: UInt64, writable: Bool) -> KVMWindow? {
        var ownFD: Int32 = -1
        let mapFD: Int32
        if let f = fd {
            ownFD = fcntl(f, F_DUPFD_CLOEXEC, 0)
            if ownFD < 0 { return nil }
            mapFD = ownFD
        } else {
            mapFD = moat_memfd("moat-shared", len)
            if mapFD < 0 { return nil }
        }
        defer { if fd == nil { close(mapFD) } }
        guard let off = allocate(len) else { if ownFD >= 0 { close(ownFD) }; return nil }
        var writable = writable
        var p = mmap(base + Int(off), Int(len), PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED, mapFD, off_t(Int64(bitPattern: offset)))
        if p == MAP_FAILED && writable && (errno == EPERM || errno == EACCES) {
            // A sealed memfd (the vDSO's, F_SEAL_FUTURE_WRITE): read-only.
            writable = false
            p = mmap(base + Int(off), Int(len), PROT_READ, MAP_SHARED | MAP_FIXED, mapFD, off_t(Int64(bitPattern: offset)))
        }
        if p == MAP_FAILED {
            release(off, len)
            if ownFD >= 0 { close(ownFD) }
            return nil
        }
        return KVMWindow(windows: self, gpa: gpa + off, len: len, fd: ownFD, fileOffset: offset, writable: writable)
    }

    private func allocate(_ len: UInt64) -> UInt64? {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let i = free.firstIndex(where: { $0.1 >= len }) else { return nil }
        let (o, l) = free[i]
        if l == len { free.remove(at: i) } else { free[i] = (o + len, l - len) }
        return o
    }

    /// Reserves [off, off+len) again (dropping the host pages' mapping and,
    /// through KVM's MMU notifier, every guest translation to them).
    func release(_ off: UInt64, _ len: UInt64) {
        _ = mmap(base + Int(off), Int(len), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        let i = free.firstIndex { $0.0 > off } ?? free.count
        free.insert((off, len), at: i)
        if i + 1 < free.count && free[i].0 + free[i].1 == free[i + 1].0 {
            free[i].1 += free[i + 1].1
            free.remove(at: i + 1)
        }
        if i > 0 && free[i - 1].0 + free[i - 1].1 == free[i].0 {
            free[i - 1].1 += free[i].1
            free.remove(at: i)
        }
    }
}

/// One shared mapping's pages in the shared-window range (SharedWindows).
/// Regions of any address space that map it hold it; the last one gone
/// releases the range.
public final class KVMWindow {
    unowned let windows: SharedWindows
    /// Guest physical address of the window's first page.
    public let gpa: UInt64
    public let len: UInt64
    /// The Sentry's copy of the file's fd (-1: anonymous shared memory,
    /// whose size never changes), for the end-of-file check.
    let fd: Int32
    let fileOffset: UInt64
    public let writable: Bool

    init(windows: SharedWindows, gpa: UInt64, len: UInt64, fd: Int32, fileOffset: UInt64, writable: Bool) {
        self.windows = windows
        self.gpa = gpa
        self.len = len
        self.fd = fd
        self.fileOffset = fileOffset
        self.writable = writable
    }

    deinit {
        windows.release(gpa - windows.gpa, len)
        if fd >= 0 { close(fd) }
    }

    /// Whether the page at `off` in the window lies inside the file (a page
    /// past the end is SIGBUS for the application, and must never be
    /// touched by the Sentry: its host mapping would SIGBUS the Sentry).
    func backed(_ off: UInt64) -> Bool { off < backedLength() }

    /// How many bytes from the window's start lie inside the file now (all
    /// of it for anonymous shared memory): the pages below it are backed.
    func backedLength() -> UInt64 {
        if fd < 0 { return len }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return 0 }
        let size = UInt64(max(0, st.st_size))
        return size > fileOffset ? min(len, size - fileOffset) : 0
    }
}

/// Page table entry bits (Intel SDM vol. 3, 4.5).
enum PTE {
    static let present: UInt64 = 1
    static let write: UInt64 = 2
    static let user: UInt64 = 4
    static let global: UInt64 = 0x100
    static let noExec: UInt64 = 1 << 63
    static let addrMask: UInt64 = 0x000f_ffff_ffff_f000
}

/// A KVM virtual machine with its guest memory and ring-0 structures.
public final class KVMMachine {
    let kvm: Int32
    let vm: Int32
    public let memory: GuestMemory
    let runSize: Int
    private var vcpuCount: Int32 = 0
    /// The guest physical page a syscall stores to: the first 2 MiB
    /// boundary past guest RAM, in no memory slot, so the store exits.
    let doorbellGPA: UInt64
    /// KVM copies general and segment registers through the kvm_run area
    /// (KVM_CAP_SYNC_REGS with KVM_SYNC_X86_REGS and _SREGS).
    let syncRegs: Bool
    /// The bytes KVM_GET_XSAVE(2)/KVM_SET_XSAVE move: 4 KiB, or KVM's
    /// KVM_CAP_XSAVE2 size where the guest's XSAVE area is larger (AMX).
    let xsaveSize: Int
    /// The guest's XCR0 (KVMVCPU.enableXSave; the same on every vCPU) and
    /// the size of a standard-format XSAVE area for it (CPUID 0xD.0 EBX as
    /// the guest reads it): what NT_X86_XSTATE and signal frames hold.
    var guestXCR0: UInt64 = 3
    var xstateSize = 576
    /// Guest physical memory for shared mappings (KVM memory slot 1).
    public let windows: SharedWindows
    static let windowBytes: UInt64 = 16 << 30

    /// Whether this host can run the KVM platform (/dev/kvm opens and has the
    /// stable API).
    public static var available: Bool {
        let fd = moat_kvm_open()
        if fd < 0 { return false }
        close(fd)
        return true
    }

    /// A VM with `memoryBytes` of guest physical memory (rounded to pages).
    public init(memoryBytes: UInt64 = 256 << 20) throws {
        let k = moat_kvm_open()
        if k < 0 { throw KVMError.unavailable("/dev/kvm: \(String(cString: strerror(-k)))") }
        kvm = k
        let v = moat_kvm_create_vm(k)
        if v < 0 { close(k); throw KVMError.host("KVM_CREATE_VM", -v) }
        vm = v
        do {
            runSize = Int(try check(moat_kvm_run_size(k), "KVM_GET_VCPU_MMAP_SIZE"))
            // Application threads get the XSAVE state Linux gives them
            // (AVX and beyond), which KVM moves only as an XSAVE area; AMX
            // too where the host has it (KVMVCPU.enableXSave says why), so
            // the permission comes first: it sizes that area.
            _ = moat_kvm_request_amx()
            xsaveSize = Int(moat_kvm_xsave_size(k))
            if xsaveSize < 576 { throw KVMError.unavailable("KVM without KVM_CAP_XSAVE") }
            let size = max((memoryBytes + 0xfff) & ~0xfff, (KernelPage.firstPoolPage + 64) * 4096)
            memory = try GuestMemory(size: size)
            _ = try check(moat_kvm_set_memory(vm, 0, 0, size, UInt64(UInt(bitPattern: memory.base))),
                          "KVM_SET_USER_MEMORY_REGION")
            doorbellGPA = (size + 0x1f_ffff) & ~0x1f_ffff
            syncRegs = moat_kvm_check_extension(vm, 74 /* KVM_CAP_SYNC_REGS */) & 3 == 3
            // Shared windows start at the first GiB boundary past the doorbell.
            windows = try SharedWindows(gpa: (doorbellGPA + 0x4000_0000) & ~0x3fff_ffff, size: Self.windowBytes)
            _ = try check(moat_kvm_set_memory(vm, 1, windows.gpa, windows.size, UInt64(UInt(bitPattern: windows.base))),
                          "KVM_SET_USER_MEMORY_REGION (shared windows)")
        } catch {
            close(v)
            close(k)
            throw error
        }
        buildKernel()
    }

    deinit {
        close(vm)
        close(kvm)
    }

    /// The first vCPU, made by the first newThread().
    public private(set) var cpu: KVMVCPU?
    /// One vCPU runs guest code at a time (KVMThread.swift says why).
    let turn = KVMTurn()

    /// A new vCPU (KVM_CREATE_VCPU: the Sentry makes its vCPUs before it
    /// confines itself).
    public func newVCPU() throws -> KVMVCPU {
        let fd = try check(moat_kvm_create_vcpu(vm, vcpuCount), "KVM_CREATE_VCPU")
        vcpuCount += 1
        return try KVMVCPU(machine: self, vcpu: fd)
    }

    /// A new application thread context on `cpu` (default: the first
    /// vCPU, made on first use).
    public func newThread(on cpu: KVMVCPU? = nil) throws -> KVMThread {
        if let c = cpu { return KVMThread(machine: self, cpu: c) }
        if self.cpu == nil { self.cpu = try newVCPU() }
        return KVMThread(machine: self, cpu: self.cpu!)
    }

    // MARK: - ring-0 structures

    private func buildKernel() {
        let m = memory
        // GDT (see KernelLayout): flat 64-bit code and data for both rings.
        let gdt = KernelPage.gdt * 4096
        m.store64(gdt + 0x08, 0x00af_9b00_0000_ffff)  // kernel code: L, DPL 0
        m.store64(gdt + 0x10, 0x00cf_9300_0000_ffff)  // kernel data
        m.store64(gdt + 0x28, 0x00cf_f300_0000_ffff)  // user data: DPL 3
        m.store64(gdt + 0x30, 0x00af_fb00_0000_ffff)  // user code: L, DPL 3
        let tssVA = KernelLayout.va(KernelPage.gdt, KernelLayout.tssOffset)
        let tssLimit: UInt64 = 103
        m.store64(gdt + 0x38, tssLimit | ((tssVA & 0xff_ffff) << 16) | (0x8b << 40) | (((tssVA >> 24) & 0xff) << 56))
        m.store64(gdt + 0x40, tssVA >> 32)
        // TSS: RSP0 and IST1 are the ring-0 stack; the I/O map base lies past
        // the limit, so no port is ever allowed at CPL 3.
        let tss = gdt + KernelLayout.tssOffset
        m.pointer(tss + 4).storeBytes(of: KernelLayout.stackTop, as: UInt64.self)
        m.pointer(tss + 36).storeBytes(of: KernelLayout.stackTop, as: UInt64.self)
        m.pointer(tss + 102).storeBytes(of: UInt16(104), as: UInt16.self)

        // Code page.
        var code = [UInt8](repeating: 0xf4, count: 4096)  // HLT everywhere else
        func put(_ off: UInt64, _ bytes: [UInt8]) {
            for (i, b) in bytes.enumerated() { code[Int(off) + i] = b }
        }
        // Exception stubs: push a 0 error code where the CPU pushes none, push
        // the vector, jump to the common exit. Vectors with an error code:
        let withError: Set<Int> = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]
        for v in 0..<32 {
            let off = KernelLayout.vectorStubs + UInt64(v) * 16
            var b: [UInt8] = withError.contains(v) ? [] : [0x6a, 0x00]
            b += [0x6a, UInt8(v)]
            let rel = Int32(Int64(KernelLayout.exceptionCommon) - Int64(off) - Int64(b.count) - 5)
            b += [0xe9] + withUnsafeBytes(of: rel.littleEndian) { Array($0) }
            put(off, b)
        }
        // Common exit: out exceptionPort, al. The frame (vector, error, rip,
        // cs, rflags, rsp, ss) is on the IST stack at rsp.
        put(KernelLayout.exceptionCommon, [0xe6, UInt8(KernelLayout.exceptionPort)])
        // Return to user: iretq from the frame the Sentry wrote.
        put(KernelLayout.resume, [0x48, 0xcf])
        // Same after reloading CR3 from the slot (flushes non-global TLB
        // entries): push rax; mov rax, [rip+d]; mov cr3, rax; pop rax; iretq.
        let movEnd = KernelLayout.va(KernelPage.code, KernelLayout.resumeFlush + 1 + 7)
        let disp = Int32(truncatingIfNeeded: Int64(bitPattern: KernelLayout.cr3Slot &- movEnd))
        put(KernelLayout.resumeFlush, [0x50, 0x48, 0x8b, 0x05] + withUnsafeBytes(of: disp.littleEndian) { Array($0) }
            + [0x0f, 0x22, 0xd8, 0x58, 0x48, 0xcf])
        code.withUnsafeBytes { m.pointer(KernelPage.code * 4096).copyMemory(from: $0.baseAddress!, byteCount: 4096) }

        // Syscall page (LSTAR): movabs [doorbell], al; then ud2 everywhere
        // (never resumed here: the Sentry resumes at rcx).
        var sys = [UInt8](repeating: 0, count: 4096)
        for i in stride(from: 0, to: 4096, by: 2) { sys[i] = 0x0f; sys[i + 1] = 0x0b }
        let store = [0xa2] + withUnsafeBytes(of: KernelLayout.doorbell.littleEndian) { Array($0) } + [0x0f, 0x0b]
        for (i, b) in store.enumerated() { sys[i] = b }
        precondition(UInt64(store.count - 2) == KernelLayout.syscallDoorbellRip - KernelLayout.syscallEntry)
        sys.withUnsafeBytes { m.pointer(KernelPage.syscallCode * 4096).copyMemory(from: $0.baseAddress!, byteCount: 4096) }

        // IDT: interrupt gates (IF cleared) for vectors 0..31 on IST 1. #BP
        // and #OF have DPL 3 so `int3` from user mode works as on Linux.
        let idt = KernelPage.idt * 4096
        for v in 0..<32 {
            let target = KernelLayout.va(KernelPage.code, KernelLayout.vectorStubs + UInt64(v) * 16)
            let dpl: UInt64 = (v == 3 || v == 4) ? 3 : 0
            let low = (target & 0xffff) | (UInt64(KernelLayout.kernelCS) << 16) | (1 << 32)
                | ((0x8e | (dpl << 5)) << 40) | (((target >> 16) & 0xffff) << 48)
            m.store64(idt + UInt64(v) * 16, low)
            m.store64(idt + UInt64(v) * 16 + 8, target >> 32)
        }

        // Kernel half: PDPT[0] -> PD[0] -> PT, mapping the ring-0 pages
        // (supervisor, global; only the code page is executable, and it is
        // read-only), the syscall page (user, executable, read-only) and
        // the doorbell (user, writable, not executable, not RAM). The upper
        // levels allow user access so those two leaves can; every other
        // leaf is supervisor-only.
        let k = PTE.present | PTE.write | PTE.user
        m.store64(KernelPage.pdpt * 4096, KernelPage.pd * 4096 | k)
        m.store64(KernelPage.pd * 4096, KernelPage.pt * 4096 | k)
        let pt = KernelPage.pt * 4096
        for page in [KernelPage.gdt, KernelPage.idt, KernelPage.data] + (0..<KernelPage.stackPages).map({ KernelPage.stackLow + $0 }) {
            m.store64(pt + page * 8, page * 4096 | PTE.present | PTE.write | PTE.global | PTE.noExec)
        }
        m.store64(pt + KernelPage.code * 8, KernelPage.code * 4096 | PTE.present | PTE.global)
        m.store64(pt + KernelPage.syscallCode * 8, KernelPage.syscallCode * 4096 | PTE.present | PTE.user | PTE.global)
        m.store64(pt + KernelPage.doorbellSlot * 8,
                  doorbellGPA | PTE.present | PTE.write | PTE.user | PTE.global | PTE.noExec)
        m.store64(KernelPage.pml4 * 4096 + 511 * 8, kernelPML4Entry)
    }

    /// The Sentry's pointer to the guest physical page `gpa` (RAM or a
    /// shared window).
    @inline(__always) func hostPointer(_ gpa: UInt64) -> UnsafeMutableRawPointer {
        memory.isRAM(gpa) ? memory.pointer(gpa) : windows.pointer(gpa)
    }

    /// Makes KVM forget every guest translation to the page at `gpa`. The
    /// Sentry edits page tables from the host, which a shadow-paging KVM
    /// (kvm_pvm) does not see: its shadow keeps a removed or downgraded
    /// entry (a PROT_NONE page stayed readable, MADV_DONTNEED kept the old
    /// bytes, a freed page stayed reachable). MADV_DONTNEED on the Sentry's
    /// own MAP_SHARED mapping of the page keeps its bytes but runs KVM's MMU
    /// notifier, which drops every shadow entry for it; the next guest
    /// access walks the guest tables again. (On hardware paging the CR3
    /// reload at the next entry already does it; this is then redundant.)
    func forget(_ gpa: UInt64, pages: UInt64 = 1) {
        _ = madvise(hostPointer(gpa), Int(pages * 4096), MADV_DONTNEED)
    }

    /// Whether `cpu`'s guest TSC reads as the host's (within ~0.1 ms at
    /// 3 GHz): the vCPU's TSC (MSR 0x10) lies between two host readings
    /// taken around it.
    public func guestTSCIsHost(_ cpu: KVMVCPU) -> Bool {
        let before = moat_rdtsc()
        var guest: UInt64 = 0
        guard moat_kvm_get_msr(cpu.fd, 0x10, &guest) == 1 else { return false }
        let after = moat_rdtsc()
        return guest &+ (1 << 18) >= before && guest <= after &+ (1 << 18)
    }

    /// The PML4 entry every address space shares for the kernel half.
    var kernelPML4Entry: UInt64 { KernelPage.pdpt * 4096 | PTE.present | PTE.write | PTE.user }
}
