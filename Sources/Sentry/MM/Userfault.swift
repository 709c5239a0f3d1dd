// userfaultfd's side of the address space: which pages of a registered
// range fault into the Sentry, and what a fault there does.
//
// Application memory is host memory in the stub (MemoryManager.swift), so
// the host, not the Sentry, sees a first touch. A page userfaultfd must hear
// about is therefore kept from the application on the host: PROT_NONE while
// it is missing (registered for MISSING or MINOR faults and not filled yet)
// or poisoned, read-only while it is write-protected. A touch then faults
// (SIGSEGV in the stub), the driver hands it here (Task.userfault), and the
// thread waits in the Sentry until the handler fills the page (UFFDIO_COPY,
// ZEROPAGE, MOVE, CONTINUE), lifts the protection (WRITEPROTECT), wakes it
// (WAKE) or closes the fd. The mapping's own protection (VMA.prot) is the
// application's; the host's is hostProt's. Which pages a registration finds
// already present the stub's mincore tells.
//
// Limit: the Sentry's own reads and writes of a page kept so (a read(2)
// into it) fail with EFAULT, where Linux would block the call until the
// page is filled.

import CMoat
import Glibc

/// VMA.uffdMode: UFFDIO_REGISTER_MODE_* (MISSING 1, WP 2, MINOR 4).
enum UffdMode {
    static let missing: UInt8 = 1, wp: UInt8 = 2, minor: UInt8 = 4
}

/// MemoryManager.uffdPages bits.
enum UffdPage {
    /// Filled (or found in memory at registration): no missing fault.
    static let present: UInt8 = 1
    /// Write-protected (UFFDIO_WRITEPROTECT_MODE_WP).
    static let writeProtected: UInt8 = 2
    /// UFFDIO_POISON: a touch is SIGBUS.
    static let poisoned: UInt8 = 4
}

extension MemoryManager {
    /// The protection the host gives page `p` of mapping `v`.
    func hostProt(_ v: VMA, _ p: UInt64) -> Int32 {
        let s = uffdPages[p] ?? 0
        // A poison marker outlives the registration (it is the page's).
        if s & UffdPage.poisoned != 0 { return PROT_NONE }
        guard v.uffd != nil else { return v.prot }
        if v.uffdMode & (UffdMode.missing | UffdMode.minor) != 0 && s & UffdPage.present == 0 { return PROT_NONE }
        if v.uffdMode & UffdMode.wp != 0 && s & UffdPage.writeProtected != 0 { return v.prot & ~PROT_WRITE }
        return v.prot
    }

    /// Gives the host pages of [start, end) the protection hostProt says:
    /// one mprotect per run of pages that get the same.
    func syncHostProt(_ t: Task, _ start: UInt64, _ end: UInt64) {
        for v in vmas[overlapping(start, end)] {
            let a = max(v.start, start), b = min(v.end, end)
            if v.uffd == nil && uffdPages.isEmpty { _ = t.thread.protect(a, b - a, prot: v.prot); continue }
            var run = a, prot = hostProt(v, a), p = a + pageSize
            while p <= b {
                let next = p < b ? hostProt(v, p) : -1
                if next != prot {
                    _ = t.thread.protect(run, p - run, prot: prot)
                    run = p; prot = next
                }
                p += pageSize
            }
        }
    }

    /// Which pages of [start, end) the host holds (the stub's mincore,
    /// into a scratch page mapped for it), or nil.
    func residentPages(_ t: Task, _ start: UInt64, _ end: UInt64) -> [Bool]? {
        let n = Int((end - start) / pageSize), len = pageUp(UInt64(n))
        guard t.thread.hasStub, let scratch = findFree(len) else { return nil }
        guard t.thread.mapAnonymous(scratch, len, prot: PROT_READ | PROT_WRITE, shared: false) >= 0 else { return nil }
        defer { _ = t.thread.unmap(scratch, len) }
        guard t.thread.inject(27 /* mincore */, start, end - start, scratch) == 0,
              let vec = t.copyIn(scratch, n) else { return nil }
        return vec.map { $0 & 1 != 0 }
    }

    /// Sets or clears `bit` on the pages of [start, end).
    func markPages(_ start: UInt64, _ end: UInt64, _ bit: UInt8, on: Bool) {
        if !on {
            // Only pages with a state need a look (the range may be large).
            for (p, s) in uffdPages where p >= start && p < end {
                uffdPages[p] = s & ~bit == 0 ? nil : s & ~bit
            }
            return
        }
        var p = start
        while p < end {
            uffdPages[p, default: 0] |= bit
            p += pageSize
        }
    }

    /// The pages of [start, end) are gone from memory (MADV_DONTNEED, the
    /// old range of a move): in a registered range they are missing again,
    /// and a poison marker goes with them.
    func pagesDropped(_ t: Task, _ start: UInt64, _ end: UInt64) {
        guard vmas[overlapping(start, end)].contains(where: { $0.uffd != nil }) ||
              uffdPages.keys.contains(where: { $0 >= start && $0 < end }) else { return }
        markPages(start, end, UffdPage.present | UffdPage.poisoned, on: false)
        syncHostProt(t, start, end)
    }

    /// Ends the registrations of `ctx` in [start, end) (all of them for nil
    /// bounds): the pages go back to their mapping's protection, at once
    /// when `t` runs in this address space, else at their next fault.
    func unregister(_ ctx: UserfaultFD, _ start: UInt64 = 0, _ end: UInt64 = UInt64.max, by t: Task?) {
        split(at: pageDown(start))
        if end != UInt64.max { split(at: end) }
        var ranges: [(start: UInt64, end: UInt64)] = []
        for i in overlapping(start, end) where vmas[i].uffd === ctx {
            vmas[i].uffd = nil; vmas[i].uffdMode = 0
            if let last = ranges.last, last.end == vmas[i].start { ranges[ranges.count - 1].end = vmas[i].end }
            else { ranges.append((vmas[i].start, vmas[i].end)) }
        }
        mergeAdjacent()
        for r in ranges {
            markPages(r.start, r.end, UffdPage.present | UffdPage.writeProtected, on: false)
            if let t, t.mm === self, t.thread.hasStub, !t.exitRequested, !t.tg.exiting { syncHostProt(t, r.start, r.end) }
            else { staleProt.append(r) }
        }
    }
}

extension Task {
    /// A memory fault that may be the Sentry's doing: a page userfaultfd
    /// keeps from the application, or one whose protection is stale. True
    /// when it was handled here (the thread re-runs the access, or got its
    /// SIGBUS); false for a fault that is the application's own.
    /// Requires: mu held.
    func userfault(signo: Int32, addr: UInt64) -> Bool {
        guard signo == SIGSEGV, thread.hasStub, addr < mm.appTop else { return false }
        let p = pageDown(addr)
        if let i = mm.staleProt.firstIndex(where: { $0.start <= p && p < $0.end }) {
            let r = mm.staleProt.remove(at: i)
            mm.syncHostProt(self, r.start, r.end)
            return true
        }
        guard let v = mm.vma(containing: addr), v.prot != PROT_NONE else { return false }
        let s = mm.uffdPages[p] ?? 0
        if s & UffdPage.poisoned != 0 {
            forceFault(signo: SIGBUS, code: 4 /* BUS_MCEERR_AR */, addr: addr)
            return true
        }
        guard let ctx = v.uffd else { return false }
        var flags: UInt64
        if v.uffdMode & (UffdMode.missing | UffdMode.minor) != 0 && s & UffdPage.present == 0 {
            // A minor fault is one on a page the shared object holds.
            flags = v.uffdMode & UffdMode.minor != 0 && v.flags & MAP_SHARED != 0 ? UffdMsg.flagMinor : 0
            if flags == 0 && ctx.features & UffdFeature.sigbus != 0 {
                forceFault(signo: SIGBUS, code: 2 /* BUS_ADRERR */, addr: addr)
                return true
            }
        } else if v.uffdMode & UffdMode.wp != 0 && s & UffdPage.writeProtected != 0 {
            // The host has the page read-only: only a write faults.
            flags = UffdMsg.flagWP | UffdMsg.flagWrite
        } else {
            return false
        }
        ctx.waitForHandler(self, addr: addr, flags: flags)
        return true
    }
}
