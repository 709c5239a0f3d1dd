// An application address space on the KVM platform: the lower-half page
// tables the Sentry builds in guest physical memory, the list of mapped
// regions, and the Sentry's own access to application memory.
//
// Pages are populated on demand: `map` only records a region; the first
// touch (a guest #PF, or a Sentry read/write) allocates a zeroed page and
// maps it with the region's protection. A page fault inside a region is
// resolved by the platform without involving the rest of the Sentry, like
// the host kernel does for the ptrace platform's anonymous memory; only
// faults outside every region, or against a region's protection, come back
// as StopReason.fault. Leaf PTEs carry the region's protection (PROT_WRITE
// -> W, no PROT_EXEC -> NX) except that a page shared with another address
// space after a fork is never writable: the first write to it (a guest #PF,
// or the Sentry's copyout) copies it, or takes it back when it is the last
// user (copy-on-write, managed here as Linux's mm does it). x86 cannot
// express write-only or execute-only, so PROT_WRITE and PROT_EXEC imply
// readable, as on Linux.
//
// Private file mappings (MAP_PRIVATE of a file or memfd) are copy-on-write
// over a read-only window on the file's own host pages (KVMWindow, the
// shared-window memory slot), as Linux's private file pages are the page
// cache's until first written:
//   - a clean page's entry names the window page, never writable, so it
//     shows the file's current bytes (a later write(2) included);
//   - the first write (a guest #PF on the read-only entry, a write fault on
//     an absent page, or the Sentry's copyout) copies the window page into
//     a page of guest RAM and points the entry at it, writable as the region
//     allows: from then on the page is this space's own;
//   - MADV_DONTNEED and munmap drop both kinds of entries (RAM copies go
//     back to the machine), so the next touch shows the file again;
//   - fork copies the private RAM pages and leaves the clean ones out: the
//     child's first touch maps the same window page.
// Why this is safe under shadow paging (kvm_pvm), whose shadow of a guest
// entry is not updated by the Sentry's host-side edits: every edit here is
// one the anonymous and shared paths already make and flush the same way.
// Adding an entry bumps `generation` (CR3 reload before the vCPU resumes);
// replacing the window page by its copy, or dropping either, also calls
// `forget` on the old page (the Sentry's own mapping of it is dropped, so
// KVM's MMU notifier removes every shadow entry for it), exactly as the
// fork-time privatize of a shared RAM page does. The window pages are never
// made writable, in the guest or in the Sentry's mapping (the window is
// opened read-only), so a stale entry can at worst read the file.
//
// Locking: every public operation holds `mu` (recursive): the Sentry edits
// the space under its kernel lock while a vCPU thread of the same process
// (another application thread) may be resolving a fault in it.

import CMoat
import Glibc

public final class KVMAddressSpace {
    let machine: KVMMachine
    var memory: GuestMemory { machine.memory }
    /// Guest physical address of the PML4 (the CR3 value).
    public let cr3: UInt64
    /// A mapped range: start, end (exclusive), prot; for a shared mapping
    /// the window holding its pages and where `start` lies in it.
    public struct Region {
        public var start: UInt64
        public var end: UInt64
        public var prot: Int32
        public var window: KVMWindow?
        public var windowOffset: UInt64 = 0
        /// MADV_WIPEONFORK: a fork's copy reads zero.
        public var wipeOnFork = false
        /// A private file mapping: `window` (read-only) shows the clean
        /// pages, written pages are private copies in guest RAM.
        public var copyOnWrite = false
    }
    /// Mapped regions, sorted and disjoint.
    private(set) var regions: [Region] = []
    /// Bumped whenever the Sentry changes a page table entry: a vCPU that last
    /// ran with an older generation reloads CR3 with a TLB flush before it
    /// resumes. PVM shadows guest page tables and does not see the Sentry's
    /// writes to them (they do not go through the guest), so additions are
    /// flushed too, not only removals.
    private(set) var generation: UInt64 = 0

    /// The lowest address user mappings may use (Linux's mmap_min_addr).
    static let userMin: UInt64 = 0x10000
    /// The top of user space (47-bit canonical lower half).
    public static let userEnd: UInt64 = 0x0000_8000_0000_0000

    private var mu = pthread_mutex_t()
    @inline(__always) private func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        return try body()
    }

    public init(machine: KVMMachine) throws {
        self.machine = machine
        guard let p = machine.memory.allocPage() else { throw KVMError.outOfGuestMemory }
        cr3 = p
        machine.memory.store64(p + 511 * 8, machine.kernelPML4Entry)
        var a = pthread_mutexattr_t()
        pthread_mutexattr_init(&a)
        pthread_mutexattr_settype(&a, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(&mu, &a)
    }

    /// A copy (fork): the same regions and a copy of every populated page of
    /// guest RAM (anonymous memory, a private file mapping's written pages),
    /// in new page tables; this space is not touched. Why not copy-on-write
    /// (share the pages read-only, copy at the first write): that changes
    /// the parent's present entries, and under shadow paging (kvm_pvm) a
    /// vCPU that ran another root meanwhile does not see such an edit of
    /// the parent's tables, so the parent kept writing into the shared
    /// pages. The page references and `privatize` are ready for it on a
    /// host with hardware paging (EPT/NPT), where copy-on-write is right.
    /// It would not pay here anyway: every write fault on a shared page is
    /// an exit (about 0.24 ms on the kvm_pvm test VM, bench/kvm.sh's
    /// first-touch row) where copying a page at fork costs about 1 us, so
    /// copy-on-write wins only when the parent and child leave some 200
    /// pages unwritten for every page either writes, while a fork+exec
    /// still writes both stacks and the libc data before the exec (an
    /// estimate from the bench figures, not a measured copy-on-write fork).
    public func fork() throws -> KVMAddressSpace {
        try locked {
            let c = try KVMAddressSpace(machine: machine)
            c.regions = regions
            // Window pages (shared memory, a private mapping's clean pages)
            // stay the window's: the child's entries appear on its first
            // touches. Wiped regions start empty.
            for r in regions where (r.window == nil || r.copyOnWrite) && !r.wipeOnFork {
                var failed = false
                forEachPresentLeaf(r.start, r.end) { va, slot, e in
                    let page = e & PTE.addrMask
                    if failed || !memory.isRAM(page) { return }
                    guard let cs = c.leafSlot(va, create: true), let np = memory.allocPage() else { failed = true; return }
                    memory.pointer(np).copyMemory(from: memory.pointer(page), byteCount: 4096)
                    memory.store64(cs, np | (e & ~PTE.addrMask))
                }
                if failed { throw KVMError.outOfGuestMemory }
            }
            generation &+= 1
            return c
        }
    }

    /// Gives the page at `va` (PTE `slot`, present) in region `r` to this
    /// space alone, writable as the region allows: a copy while other spaces
    /// share it or while it is a private file mapping's window page, else
    /// the page itself. Returns the page, or nil when memory is exhausted
    /// or the window page lies past the file's end now.
    private func privatize(_ slot: UInt64, _ r: Region, _ va: UInt64) -> UInt64? {
        let e = memory.load64(slot)
        let page = e & PTE.addrMask
        let prot = r.prot
        if !memory.isRAM(page) || memory.references(page) > 1 {
            // A window page is read only while it is still in the file (a
            // truncated file's page would fault the Sentry).
            if !memory.isRAM(page) && windowPage(r, va) != page { return nil }
            guard let copy = installCopy(slot, of: page, prot: prot) else { return nil }
            // Our reference goes after the next flush: until then this
            // vCPU may still read the old page through its TLB.
            retire(page)
            return copy
        }
        if e & PTE.write == 0 && prot & PROT_WRITE != 0 {
            memory.store64(slot, page | leafBits(prot))
            generation &+= 1
        }
        return page
    }

    /// Points PTE `slot` at a new page of guest RAM holding a copy of the
    /// page at `page` (RAM or a window), with `prot`'s rights. Returns the
    /// copy, or nil when memory is exhausted.
    private func installCopy(_ slot: UInt64, of page: UInt64, prot: Int32) -> UInt64? {
        guard let copy = memory.allocPage() else { return nil }
        memory.pointer(copy).copyMemory(from: machine.hostPointer(page), byteCount: 4096)
        memory.store64(slot, copy | leafBits(prot))
        generation &+= 1
        return copy
    }

    /// Pages unmapped since the last TLB flush of a vCPU running this address
    /// space: a stale translation may still reach them, so they go back to
    /// the machine (and to other address spaces) only after that flush.
    private var pendingFree: [UInt64] = []

    /// The application pages go back to the machine; the page-table pages
    /// (and the PML4) never do, for as long as the VM lives. Why: under
    /// shadow paging (kvm_pvm, where Moat is tested) the hypervisor keeps
    /// its shadow of each guest page-table page, found by guest physical
    /// address, and learns of changes only through guest writes, which the
    /// Sentry's host-side edits are not. Leaf changes in a running address
    /// space are picked up at the CR3 reload, but a table page reused by a
    /// new address space (an exec, a new process) was run with the old
    /// process's shadow mappings: every second exec crashed. Never reusing
    /// a table page makes that impossible; it costs a few pages per exited
    /// address space (tens of KiB for a shell), left in guest memory. (The
    /// shadows of an abandoned root are unreachable: no CR3 names it again.)
    deinit {
        // No root names these tables again: KVM's translations through
        // them are unreachable, so the pages need no forget() one by one.
        dying = true
        for r in regions { freePages(r.start, r.end) }
        regions = []
        releasePending()
    }

    /// Called by the vCPU after it flushed its TLB for this address space
    /// (one vCPU per machine today; more need a per-vCPU generation).
    func releasePending() {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        for p in pendingFree { memory.freePage(p) }
        pendingFree.removeAll(keepingCapacity: true)
    }

    /// Leaf pages the vCPU may still see: freed after the next flush (KVM
    /// forgets its translations to them now). Shared-window pages are not
    /// the machine's: only the translation goes.
    private var dying = false
    private func retire(_ page: UInt64) {
        if !dying { machine.forget(page) }
        if memory.isRAM(page) { pendingFree.append(page) }
    }

    // MARK: - regions

    /// Maps [addr, addr+len) with `prot` (PROT_READ|PROT_WRITE|PROT_EXEC),
    /// replacing whatever was there (MAP_FIXED semantics). Pages appear
    /// zeroed on first touch. 0, or -EINVAL for unaligned or out-of-range
    /// ranges (results are 0 or -errno, as PlatformAddressSpace's).
    public func map(_ addr: UInt64, _ len: UInt64, prot: Int32) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let end = rangeEnd(addr, len) else { return -Int(EINVAL) }
        unmapRange(addr, end)
        let i = regions.firstIndex { $0.start >= end } ?? regions.count
        regions.insert(Region(start: addr, end: end, prot: prot), at: i)
        return 0
    }

    /// Maps [addr, addr+len) onto `window` from `offset` in it: MAP_SHARED,
    /// or with `copyOnWrite` a private file mapping (the window must not be
    /// writable). MAP_FIXED semantics as `map`.
    public func map(_ addr: UInt64, _ len: UInt64, prot: Int32, window: KVMWindow, offset: UInt64, copyOnWrite: Bool = false) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let end = rangeEnd(addr, len), offset &+ (end - addr) <= window.len, !(copyOnWrite && window.writable)
        else { return -Int(EINVAL) }
        unmapRange(addr, end)
        let i = regions.firstIndex { $0.start >= end } ?? regions.count
        regions.insert(Region(start: addr, end: end, prot: prot, window: window, windowOffset: offset, copyOnWrite: copyOnWrite), at: i)
        return 0
    }

    /// Moves the private copies of a private file mapping's pages in
    /// [src, src+len) to the same places from `dst` (mremap's move; `dst`
    /// is already mapped onto the same window and holds no entries yet).
    /// The clean pages need no move: the new range shows the window.
    public func movePrivateCopies(from src: UInt64, to dst: UInt64, _ len: UInt64) {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let end = rangeEnd(src, len) else { return }
        forEachPresentLeaf(src, end) { va, slot, e in
            let page = e & PTE.addrMask
            guard memory.isRAM(page), let d = leafSlot(dst &+ (va - src), create: true) else { return }
            memory.store64(d, e)
            memory.store64(slot, 0)
            machine.forget(page)
        }
        generation &+= 1
    }

    /// Marks [addr, addr+len) wiped (or not) on fork (MADV_WIPEONFORK /
    /// MADV_KEEPONFORK); EINVAL on shared windows.
    public func setWipeOnFork(_ addr: UInt64, _ len: UInt64, _ wipe: Bool) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let end = rangeEnd(addr, len) else { return -Int(EINVAL) }
        if regions.contains(where: { $0.end > addr && $0.start < end && $0.window != nil }) { return -Int(EINVAL) }
        split(at: addr)
        split(at: end)
        for i in regions.indices where regions[i].start >= addr && regions[i].end <= end { regions[i].wipeOnFork = wipe }
        return 0
    }

    /// Unmaps [addr, addr+len); pages go back to the machine.
    public func unmap(_ addr: UInt64, _ len: UInt64) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let end = rangeEnd(addr, len) else { return -Int(EINVAL) }
        unmapRange(addr, end)
        return 0
    }

    /// Changes the protection of [addr, addr+len); ENOMEM if part of it is
    /// not mapped (as mprotect(2)).
    public func protect(_ addr: UInt64, _ len: UInt64, prot: Int32) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let end = rangeEnd(addr, len) else { return -Int(EINVAL) }
        var covered = addr
        for r in regions where r.end > addr && r.start < end {
            if r.start > covered { return -Int(ENOMEM) }
            covered = r.end
        }
        if covered < end { return -Int(ENOMEM) }
        split(at: addr)
        split(at: end)
        for i in regions.indices where regions[i].start >= addr && regions[i].end <= end {
            regions[i].prot = prot
        }
        var va = addr
        while va < end {
            if let pte = leafSlot(va, create: false), memory.load64(pte) & PTE.present != 0 {
                let old = memory.load64(pte)
                let page = old & PTE.addrMask
                if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
                    retire(page)
                    memory.store64(pte, 0)
                } else {
                    var bits = leafBits(prot, window: page)
                    if memory.isRAM(page) && memory.references(page) > 1 { bits &= ~PTE.write }  // still copy-on-write
                    memory.store64(pte, page | bits)
                    // Fewer rights than before: KVM must not keep the old entry.
                    if (old & ~bits) & PTE.write != 0 || (bits & ~old) & PTE.noExec != 0 { machine.forget(page) }
                }
            }
            va += 4096
        }
        generation &+= 1
        return 0
    }

    /// Drops the pages of [addr, addr+len) but keeps the regions: they read
    /// as zero on the next touch (MADV_DONTNEED on private anonymous
    /// memory), a private file mapping's read the file again (its copies
    /// go), shared memory keeps its bytes. Unmapped parts are skipped.
    public func discard(_ addr: UInt64, _ len: UInt64) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let end = rangeEnd(addr, len) else { return -Int(EINVAL) }
        let parts = regions.filter { $0.end > addr && $0.start < end }
        for r in parts {
            let s = max(r.start, addr), e = min(r.end, end)
            if r.window != nil {
                // Shared memory keeps its bytes; only this space's entries
                // go (and a private file mapping's copies with them).
                freePages(s, e)
                generation &+= 1
            } else {
                _ = map(s, e - s, prot: r.prot)
            }
        }
        return 0
    }

    /// The region containing `va`, if any.
    public func region(containing va: UInt64) -> Region? {
        locked { regions.first { $0.start <= va && va < $0.end } }
    }

    private func rangeEnd(_ addr: UInt64, _ len: UInt64) -> UInt64? {
        guard addr & 0xfff == 0, addr >= Self.userMin, len > 0, len <= Self.userEnd else { return nil }
        let end = (addr &+ len &+ 0xfff) & ~0xfff
        guard end > addr, end <= Self.userEnd else { return nil }
        return end
    }

    /// Splits the region containing `va` (if any) into two at `va`.
    private func split(at va: UInt64) {
        guard let i = regions.firstIndex(where: { $0.start < va && va < $0.end }) else { return }
        var r = regions[i]
        regions[i].end = va
        r.windowOffset += va - r.start
        r.start = va
        regions.insert(r, at: i + 1)
    }

    private func unmapRange(_ start: UInt64, _ end: UInt64) {
        split(at: start)
        split(at: end)
        regions.removeAll { $0.start >= start && $0.end <= end }
        freePages(start, end)
        generation &+= 1
    }


    /// Frees the leaf pages of [start, end), skipping unpopulated tables.
    private func freePages(_ start: UInt64, _ end: UInt64) {
        forEachPresentLeaf(start, end) { _, slot, e in
            retire(e & PTE.addrMask)
            memory.store64(slot, 0)
        }
    }

    /// Calls `body(va, slot, entry)` for every present leaf entry in
    /// [start, end), skipping the spans of absent tables.
    private func forEachPresentLeaf(_ start: UInt64, _ end: UInt64, _ body: (UInt64, UInt64, UInt64) -> Void) {
        var va = start
        while va < end && va >= start {
            guard let (slot, level) = deepestSlot(va) else { return }
            if level == 1 {
                let e = memory.load64(slot)
                if e & PTE.present != 0 { body(va, slot, e) }
                va += 4096
            } else {
                // No table below this level: skip the whole span it covers.
                let span: UInt64 = 1 << (12 + 9 * UInt64(level - 1))
                va = (va & ~(span - 1)) &+ span
            }
        }
    }

    // MARK: - page tables

    private func leafBits(_ prot: Int32) -> UInt64 {
        var b = PTE.present | PTE.user
        if prot & PROT_WRITE != 0 { b |= PTE.write }
        if prot & PROT_EXEC == 0 { b |= PTE.noExec }
        return b
    }

    /// leafBits for the page at `page`: a window page is never writable
    /// through a read-only window or a private file mapping (whose windows
    /// are read-only too; its writable pages are RAM copies).
    private func leafBits(_ prot: Int32, window page: UInt64) -> UInt64 {
        var b = leafBits(prot)
        if !memory.isRAM(page), let r = regions.first(where: { $0.window.map { page >= $0.gpa && page < $0.gpa + $0.len } ?? false }),
           r.copyOnWrite || r.window?.writable == false { b &= ~PTE.write }
        return b
    }

    /// The window page behind `va` in window region `r`, nil past the
    /// file's end (SIGBUS for the application).
    private func windowPage(_ r: Region, _ va: UInt64) -> UInt64? {
        guard let w = r.window else { return nil }
        let off = r.windowOffset + (va & ~0xfff) - r.start
        guard off < w.len, w.backed(off) else { return nil }
        return w.gpa + off
    }

    /// Whether `va` lies in a shared window past its file's end (the fault
    /// is SIGBUS, not SIGSEGV).
    public func beyondEnd(_ va: UInt64) -> Bool {
        locked {
            guard let r = regions.first(where: { $0.start <= va && va < $0.end }), r.window != nil else { return false }
            return windowPage(r, va) == nil
        }
    }

    @inline(__always) private func index(_ va: UInt64, _ level: Int) -> UInt64 {
        (va >> (12 + 9 * UInt64(level - 1))) & 0x1ff
    }

    /// The PTE slot (guest physical address of the level-1 entry) for `va`,
    /// creating intermediate tables when `create`; nil if a table is missing
    /// and not created (or memory ran out).
    private func leafSlot(_ va: UInt64, create: Bool) -> UInt64? {
        var table = cr3
        for level in stride(from: 4, to: 1, by: -1) {
            let slot = table + index(va, level) * 8
            var e = memory.load64(slot)
            if e & PTE.present == 0 {
                guard create, let p = memory.allocPage() else { return nil }
                // Intermediate entries allow everything; the leaf decides.
                e = p | PTE.present | PTE.write | PTE.user
                memory.store64(slot, e)
            }
            table = e & PTE.addrMask
        }
        return table + index(va, 1) * 8
    }

    /// The slot of the deepest present table entry on `va`'s walk: level 1
    /// is a PTE slot; level n > 1 means the entry at that level is absent.
    private func deepestSlot(_ va: UInt64) -> (UInt64, Int)? {
        var table = cr3
        for level in stride(from: 4, to: 1, by: -1) {
            let slot = table + index(va, level) * 8
            let e = memory.load64(slot)
            if e & PTE.present == 0 { return (slot, level) }
            table = e & PTE.addrMask
        }
        return (table + index(va, 1) * 8, 1)
    }

    /// Populates the page at `va` if a region allows `access` (PROT_* bits)
    /// there. Returns the page's guest physical address, or nil (no region,
    /// protection forbids it, or guest memory is exhausted).
    func populate(_ va: UInt64, access: Int32) -> UInt64? {
        guard va >= Self.userMin, va < Self.userEnd, let r = region(containing: va) else { return nil }
        // Any present page is readable on x86; writes and fetches need their bit.
        if r.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 { return nil }
        if access != PROT_READ && r.prot & access == 0 { return nil }
        guard let slot = leafSlot(va, create: true) else { return nil }
        let e = memory.load64(slot)
        if e & PTE.present != 0 { return e & PTE.addrMask }
        if let w = r.window {
            guard let page = windowPage(r, va) else { return nil }
            if r.copyOnWrite && access == PROT_WRITE {
                // Written before ever read: the private copy at once.
                return installCopy(slot, of: page, prot: r.prot)
            }
            var bits = leafBits(r.prot)
            if !w.writable || r.copyOnWrite { bits &= ~PTE.write }
            memory.store64(slot, page | bits)
            faultAround(r, va, bits)
            generation &+= 1
            return page
        }
        guard let page = memory.allocPage() else { return nil }
        memory.store64(slot, page | leafBits(r.prot))
        generation &+= 1
        return page
    }

    /// Linux's fault-around for file mappings: a fault that maps a window
    /// page also maps the file's other pages in the same 64 KiB block of the
    /// region (absent entries only, with the same bits, so read-only in a
    /// private mapping). Why: a guest page fault is the dear part here (an
    /// exit through the outer hypervisor under kvm_pvm, about 0.2 ms on the
    /// test VM, bench/results/2026-12-06-kvm.md), and a program reading its
    /// libraries touches their pages in runs; before private mappings were
    /// windows their copies were all mapped at mmap time. Only entries are
    /// added (flushed by the caller's generation bump); no page is copied.
    private func faultAround(_ r: Region, _ va: UInt64, _ bits: UInt64) {
        guard let w = r.window else { return }
        let block: UInt64 = 16 * 4096
        let first = va & ~(block - 1)
        let backedEnd = w.backedLength()
        var p = max(r.start, first)
        while p < min(r.end, first + block) {
            let off = r.windowOffset + (p - r.start)
            if p != va && off < backedEnd, let slot = leafSlot(p, create: true), memory.load64(slot) & PTE.present == 0 {
                memory.store64(slot, (w.gpa + off) | bits)
            }
            p += 4096
        }
    }

    /// Resolves a guest page fault (error code bits: 1 present, 2 write,
    /// 16 instruction fetch) by populating a page; false if it is a real
    /// fault for the application.
    func resolveFault(_ va: UInt64, errorCode: UInt64) -> Bool {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        if errorCode & 1 != 0 {
            // A write to a present page its region allows: copy-on-write
            // (a page shared after a fork, a private file mapping's clean page).
            guard errorCode & 2 != 0, let r = region(containing: va), r.prot & PROT_WRITE != 0, r.window == nil || r.copyOnWrite,
                  let slot = leafSlot(va & ~0xfff, create: false), memory.load64(slot) & PTE.present != 0
            else { return false }
            return privatize(slot, r, va & ~0xfff) != nil
        }
        let access: Int32 = errorCode & 2 != 0 ? PROT_WRITE : (errorCode & 16 != 0 ? PROT_EXEC : PROT_READ)
        return populate(va & ~0xfff, access: access) != nil
    }

    /// The guest physical address behind `va` for the Sentry, populating the
    /// page if its region allows the access. Writes need PROT_WRITE unless
    /// `force` (the loader filling a read-only text mapping).
    private func translate(_ va: UInt64, write: Bool, force: Bool) -> UInt64? {
        guard va >= Self.userMin, va < Self.userEnd, let r = region(containing: va) else { return nil }
        if write && !force && r.prot & PROT_WRITE == 0 { return nil }
        if !force && r.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 { return nil }
        if let w = r.window, !r.copyOnWrite {
            // Shared pages: the window itself, never a copy.
            if write && !w.writable { return nil }
            guard let page = windowPage(r, va) else { return nil }
            return page | (va & 0xfff)
        }
        if let slot = leafSlot(va, create: false) {
            let e = memory.load64(slot)
            let page = e & PTE.addrMask
            if e & PTE.present != 0 && (memory.isRAM(page) || write) {
                if write && (e & PTE.write == 0 || !memory.isRAM(page) || memory.references(page) > 1) {
                    // Shared after a fork, a private file mapping's clean
                    // page (or read-only and forced): never write through to
                    // another space's page or to the file.
                    guard let own = privatize(slot, r, va & ~0xfff) else { return nil }
                    return own | (va & 0xfff)
                }
                return page | (va & 0xfff)
            }
        }
        if r.copyOnWrite {
            // A clean page reads the file's page (checked against the file's
            // end every time); a write makes the private copy.
            guard let page = windowPage(r, va) else { return nil }
            if !write { return page | (va & 0xfff) }
            guard let slot = leafSlot(va, create: true), let copy = installCopy(slot, of: page, prot: r.prot) else { return nil }
            return copy | (va & 0xfff)
        }
        guard let slot = leafSlot(va, create: true), let page = memory.allocPage() else { return nil }
        memory.store64(slot, page | leafBits(r.prot))
        generation &+= 1
        return page | (va & 0xfff)
    }

    // MARK: - the Sentry's access to application memory

    /// Copies up to `len` bytes at `addr` into `buf`; returns the count
    /// copied (short at the first inaccessible page), like process_vm_readv.
    public func read(_ addr: UInt64, _ buf: UnsafeMutableRawPointer, _ len: Int) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        return copy(addr, len, write: false, force: false) { gpa, off, n in
            buf.advanced(by: off).copyMemory(from: machine.hostPointer(gpa), byteCount: n)
        }
    }

    /// `read` whatever the region's protection (mremap's move).
    public func readForce(_ addr: UInt64, _ buf: UnsafeMutableRawPointer, _ len: Int) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        return copy(addr, len, write: false, force: true) { gpa, off, n in
            buf.advanced(by: off).copyMemory(from: machine.hostPointer(gpa), byteCount: n)
        }
    }

    /// Copies `len` bytes from `buf` to `addr`; returns the count copied.
    public func write(_ addr: UInt64, _ buf: UnsafeRawPointer, _ len: Int, force: Bool = false) -> Int {
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        return copy(addr, len, write: true, force: force) { gpa, off, n in
            machine.hostPointer(gpa).copyMemory(from: buf.advanced(by: off), byteCount: n)
        }
    }

    /// An atomic compare-and-swap of the 32-bit word at `addr` (futex words
    /// that guest threads change with their own atomics meanwhile): the old
    /// value, or -EFAULT when the word is not writable application memory.
    public func compareExchange32(_ addr: UInt64, expected: UInt32, new: UInt32) -> Int {
        if addr & 3 != 0 { return -Int(EFAULT) }
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let gpa = translate(addr, write: true, force: false) else { return -Int(EFAULT) }
        return Int(moat_cas32(machine.hostPointer(gpa), expected, new))
    }

    /// Replaces the 32-bit word at `addr` by `update(old)` atomically: a
    /// compare-and-swap loop on the word's host mapping, translated once,
    /// so the window between reading and swapping is a few instructions
    /// (a guest thread spinning on the word with its own atomics can no
    /// longer make every try fail, as it could when each try walked the
    /// page tables). The old value, or -EFAULT.
    public func fetchUpdate32(_ addr: UInt64, _ update: (UInt32) -> UInt32) -> Int {
        if addr & 3 != 0 { return -Int(EFAULT) }
        pthread_mutex_lock(&mu)
        defer { pthread_mutex_unlock(&mu) }
        guard let gpa = translate(addr, write: true, force: false) else { return -Int(EFAULT) }
        let p = machine.hostPointer(gpa)
        var old = p.load(as: UInt32.self)
        while true {
            let seen = moat_cas32(p, old, update(old))
            if seen == old { return Int(old) }
            old = seen
        }
    }

    private func copy(_ addr: UInt64, _ len: Int, write: Bool, force: Bool,
                      _ body: (UInt64, Int, Int) -> Void) -> Int {
        var done = 0
        while done < len {
            let va = addr &+ UInt64(done)
            guard va >= addr, let gpa = translate(va, write: write, force: force) else { break }
            let n = min(len - done, 4096 - Int(va & 0xfff))
            body(gpa, done, n)
            done += n
        }
        return done
    }
}

/// MAP_SHARED anonymous memory is a window on fresh shared memory
/// (SharedWindows), so a fork sees the same pages.
extension KVMAddressSpace: PlatformAddressSpace {
    public func mapAnonymous(_ addr: UInt64, _ len: UInt64, prot: Int32, shared: Bool) -> Int {
        if !shared { return map(addr, len, prot: prot) }
        let l = (len + 0xfff) & ~0xfff
        guard let w = machine.windows.open(fd: nil, offset: 0, len: l, writable: true) else { return -Int(ENOMEM) }
        return map(addr, len, prot: prot, window: w, offset: 0)
    }
}
