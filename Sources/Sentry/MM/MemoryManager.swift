// The application's address space, as the Sentry decides it.
//
// The Sentry keeps the authoritative list of mappings (VMAs); the host
// mappings inside the stub follow it through injected mmap/munmap/mprotect
// (see Platform/Ptrace/PtraceThread.swift for why memory is host-managed).
// Every address range is validated here before anything is injected: the
// stub page and everything above MOAT_APP_TOP are never touched.

import CMoat
import Glibc
import Platform

struct VMA {
    var start: UInt64
    var end: UInt64
    var prot: Int32
    var flags: Int32      // MAP_PRIVATE / MAP_SHARED / MAP_ANONYMOUS...
    var name: String      // for /proc/[pid]/maps: "[heap]", "[stack]", a path, ""
    var offset: UInt64 = 0
    /// For MAP_SHARED mappings: what is shared (a file, or one anonymous
    /// shared region across forks), so futexes in it match across processes.
    var shareID: UInt64 = 0
    /// False for a shared mapping of a file opened without write access:
    /// mprotect may not add PROT_WRITE to it (EACCES, Linux's VM_MAYWRITE).
    var mayWrite = true
    /// False for a mapping of a file on a noexec mount: mprotect may not
    /// add PROT_EXEC to it (EACCES, Linux's VM_MAYEXEC).
    var mayExec = true
    /// Locked by MAP_LOCKED, mlock or mlockall (only whole VMAs are marked;
    /// nothing is pinned): msync(MS_INVALIDATE) on it is EBUSY.
    var locked = false
    /// MADV_DONTFORK: a forked child does not get this mapping.
    var dontFork = false
    /// MADV_DONTDUMP: a core dump leaves this mapping's contents out
    /// (Kernel/CoreDump.swift); a forked child keeps the mark, as Linux's
    /// VM_DONTDUMP.
    var dontDump = false
    /// mbind's policy for the range (MPOL_DEFAULT: none of its own).
    var policy = MemPolicy()
    /// The userfaultfd this range is registered with, and how
    /// (UffdMode bits; MM/Userfault.swift).
    var uffd: UserfaultFD? = nil
    var uffdMode: UInt8 = 0
    /// For a shared file mapping: the file, which remap_file_pages maps
    /// again at other offsets.
    var file: MappedFile? = nil
    /// mseal(2): the mapping may no longer be unmapped, moved, remapped,
    /// reprotected or (read-only anonymous memory) discarded (EPERM).
    var sealed = false
}

/// The host file behind shared file mappings (a copy of the Sentry's fd,
/// held while a mapping of it lasts, as Linux's vm_file). One per file:
/// a program that maps one file many times holds one more fd, not many.
final class MappedFile {
    let fd: Int32
    private let share: UInt64
    private init?(_ hostFD: Int32, share: UInt64) {
        fd = fcntl(hostFD, F_DUPFD_CLOEXEC, 0)
        if fd < 0 { return nil }
        self.share = share
    }
    deinit {
        close(fd)
        if MappedFile.live[share]?.file == nil { MappedFile.live[share] = nil }
    }
    private struct Weak { weak var file: MappedFile? }
    /// By VMA.shareID. Guarded by Kernel.mu.
    nonisolated(unsafe) private static var live: [UInt64: Weak] = [:]
    /// The one for the file of `hostFD`, whose mappings share `share`.
    static func of(_ hostFD: Int32, share: UInt64) -> MappedFile? {
        if let f = live[share]?.file { return f }
        let f = MappedFile(hostFD, share: share)
        if let f { live[share] = Weak(file: f) }
        return f
    }
}

/// A NUMA memory policy (set_mempolicy, mbind) on a machine of one node:
/// the mode with its mode flags (MPOL_F_STATIC_NODES, ...), the node mask
/// as the caller gave it, and the nodes in effect (node 0 or none).
struct MemPolicy: Equatable {
    var mode: Int32 = 0
    var userNodes: UInt64 = 0
    var nodes: UInt64 = 0
}

private var nextShareID: UInt64 = 1
private var nextMMID: UInt64 = 1

let pageSize: UInt64 = 4096
@inline(__always) func pageUp(_ v: UInt64) -> UInt64 { (v &+ 4095) & ~4095 }
@inline(__always) func pageDown(_ v: UInt64) -> UInt64 { v & ~4095 }

final class MemoryManager {
    /// Sorted, non-overlapping. Guarded by Kernel.mu.
    var vmas: [VMA] = []
    var brkStart: UInt64 = 0
    var brkEnd: UInt64 = 0
    var mmapTop: UInt64 = 0x7f00_0000_0000
    let appTop: UInt64 = MOAT_APP_TOP
    let minAddr: UInt64 = 0x10000
    var argStart: UInt64 = 0, argEnd: UInt64 = 0, envStart: UInt64 = 0, envEnd: UInt64 = 0
    var exePath: String = ""
    /// The auxiliary vector exec put on the stack, AT_NULL included, as
    /// /proc/PID/auxv shows it and a core dump's NT_AUXV holds it (key and
    /// value, 8 bytes each).
    var auxv: [UInt8] = []
    /// Tasks using this address space (the last one's exit or exec ends it).
    var users = 1
    /// The program this address space runs: while it does, the file may
    /// not be opened for writing (Inode.runners; ETXTBSY).
    private(set) var exeInode: Inode?
    /// Makes `i` the program run (nil: none). Requires: mu held.
    func setExe(_ i: Inode?) {
        exeInode?.runners -= 1
        exeInode = i
        i?.runners += 1
    }
    /// mlockall(MCL_FUTURE): new mappings start locked.
    var lockFuture = false
    /// Bytes of locked mappings (Linux's locked_vm, against RLIMIT_MEMLOCK).
    var lockedBytes: UInt64 { vmas.reduce(0) { $0 + ($1.locked ? $1.end - $1.start : 0) } }
    /// Identifies this address space in futex keys.
    let id: UInt64
    /// userfaultfd: the state of the pages of registered ranges (UffdPage
    /// bits by page address; MM/Userfault.swift).
    var uffdPages: [UInt64: UInt8] = [:]
    /// Ranges whose host protection is below their mapping's, left so
    /// where no thread of this space could change it (a registration that
    /// ended with its fd closed elsewhere, or inherited over fork): the
    /// next fault in one gives it back.
    var staleProt: [(start: UInt64, end: UInt64)] = []

    init() { id = nextMMID; nextMMID += 1 }

    func fork() -> MemoryManager {
        let m = MemoryManager()
        // A child gets neither MADV_DONTFORK mappings nor locks (VM_LOCKED
        // and mlockall's MCL_FUTURE are not inherited, as Linux).
        m.vmas = vmas.filter { !$0.dontFork }.map { var v = $0; v.locked = false; return v }
        // Nor userfaultfd registrations (no UFFD_FEATURE_EVENT_FORK): the
        // child's copy of a page kept from the parent is given back on its
        // first fault there.
        m.staleProt = staleProt
        m.uffdPages = uffdPages.filter { $0.value & UffdPage.poisoned != 0 }.mapValues { _ in UffdPage.poisoned }
        for i in m.vmas.indices where m.vmas[i].uffd != nil {
            m.staleProt.append((m.vmas[i].start, m.vmas[i].end))
            m.vmas[i].uffd = nil; m.vmas[i].uffdMode = 0
        }
        m.brkStart = brkStart; m.brkEnd = brkEnd; m.mmapTop = mmapTop
        m.argStart = argStart; m.argEnd = argEnd; m.envStart = envStart; m.envEnd = envEnd
        m.exePath = exePath
        m.auxv = auxv
        m.setExe(exeInode)
        return m
    }

    /// Index of the first VMA that ends above `a` (binary search: a
    /// process may hold tens of thousands of mappings, up to
    /// vm.max_map_count, and each map/unmap must not walk them all).
    func firstEnding(above a: UInt64) -> Int {
        var lo = 0, hi = vmas.count
        while lo < hi {
            let m = (lo + hi) / 2
            if vmas[m].end <= a { lo = m + 1 } else { hi = m }
        }
        return lo
    }

    /// The index range of the VMAs overlapping [start, end).
    func overlapping(_ start: UInt64, _ end: UInt64) -> Range<Int> {
        let i = firstEnding(above: start)
        var j = i
        while j < vmas.count && vmas[j].start < end { j += 1 }
        return i..<j
    }

    /// Whether every page of [start, end) is mapped, with at least the
    /// protection bits `prot` (none: any mapping).
    func fullyMapped(_ start: UInt64, _ end: UInt64, prot: Int32 = 0) -> Bool {
        var cur = start
        for v in vmas[overlapping(start, end)] {
            if v.start > cur || v.prot & prot != prot { return false }
            cur = v.end
        }
        return cur >= end
    }

    func isFree(_ start: UInt64, _ end: UInt64) -> Bool {
        let i = firstEnding(above: start)
        return i == vmas.count || vmas[i].start >= end
    }

    /// Finds a free range of `len` bytes, top-down below mmapTop.
    /// below: the end of the range to search (MAP_32BIT: the low 2 GB).
    func findFree(_ len: UInt64, hint: UInt64 = 0, below: UInt64? = nil) -> UInt64? {
        let limit = min(below ?? appTop, appTop)
        if hint != 0 && hint >= minAddr && hint &+ len <= limit && hint &+ len > hint && isFree(hint, hint + len) {
            return hint
        }
        var top = min(mmapTop, limit)
        for v in vmas.reversed() {
            if v.start >= top { continue }
            if top >= len && v.end <= top - len { return top - len }
            top = v.start
        }
        if top >= minAddr + len { return top - len }
        return nil
    }

    private func removeRange(_ start: UInt64, _ end: UInt64) {
        let r = overlapping(start, end)
        if r.isEmpty { return }
        var keep: [VMA] = []
        let first = vmas[r.lowerBound], last = vmas[r.upperBound - 1]
        if first.start < start { var a = first; a.end = start; keep.append(a) }
        if last.end > end { var b = last; b.offset += end - last.start; b.start = end; keep.append(b) }
        vmas.replaceSubrange(r, with: keep)
        if !uffdPages.isEmpty { uffdPages = uffdPages.filter { $0.key < start || $0.key >= end } }
    }

    private func insert(_ vma: VMA) {
        removeRange(vma.start, vma.end)
        vmas.insert(vma, at: firstEnding(above: vma.start))
    }

    func validRange(_ start: UInt64, _ len: UInt64) -> Bool {
        start & 4095 == 0 && len > 0 && start >= minAddr && start &+ len > start && start &+ len <= appTop
    }

    /// Maps anonymous memory (or a private copy target) in the stub.
    func mapAnonymous(_ t: Task, addr: UInt64, len: UInt64, prot: Int32, shared: Bool, name: String) -> Int {
        guard validRange(addr, len) else { return err(ENOMEM) }
        let hostFlags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED
        let r = t.thread.mapAnonymous(addr, len, prot: prot, shared: shared)  // Platform.PlatformAddressSpace
        if r < 0 { return r }
        // A shared anonymous mapping is backed by an unlinked /dev/zero
        // object on Linux (shmem_zero_setup), and maps names it so.
        let shown = shared && name.isEmpty ? "/dev/zero (deleted)" : name
        var v = VMA(start: addr, end: addr + len, prot: prot & 7, flags: hostFlags, name: shown)
        if shared { v.shareID = (1 << 62) | nextShareID; nextShareID += 1 }
        insert(v)
        return Int(addr)
    }

    /// Maps `hostFD` (a Sentry fd) into the stub: the stub takes a copy of
    /// the fd with pidfd_getfd through its pidfd of the Sentry, maps it and
    /// closes it again. Shared mappings see (and make) the file's changes.
    /// `remote`: the stub's copy of `hostFD` when the caller holds one
    /// (withStubFD, for several mappings of one file).
    func mapFile(_ t: Task, addr: UInt64, len: UInt64, prot: Int32, shared: Bool, hostFD: Int32, offset: UInt64, name: String,
                 remote: UInt64? = nil) -> Int {
        guard validRange(addr, len) else { return err(ENOMEM) }
        let r: Int
        if !t.thread.hasStub {  // KVM: a window on the file's pages (Kernel/KVMTasks.swift)
            r = mapWindow(t, addr: addr, len: len, prot: prot, shared: shared, hostFD: hostFD, offset: offset, name: name)
        } else if let remote {
            r = mapStubFD(t, addr: addr, len: len, prot: prot, shared: shared, remote: remote, hostFD: hostFD, offset: offset, name: name)
        } else {
            r = withStubFD(t, hostFD) { remote in
                mapStubFD(t, addr: addr, len: len, prot: prot, shared: shared, remote: remote, hostFD: hostFD, offset: offset, name: name)
            } ?? err(ENODEV)
        }
        // A shared mapping keeps its file (remap_file_pages maps it again).
        if r >= 0 && shared {
            let i = firstEnding(above: addr)
            if i < vmas.count && vmas[i].start == addr { vmas[i].file = MappedFile.of(hostFD, share: vmas[i].shareID) }
        }
        return r
    }

    /// Runs `body` with a copy of `hostFD` (a Sentry fd) in the stub, taken
    /// with pidfd_getfd through the stub's pidfd of the Sentry and closed
    /// after: several mappings of one file (an ELF's segments) share one
    /// copy. nil if the stub cannot take it.
    func withStubFD<R>(_ t: Task, _ hostFD: Int32, _ body: (UInt64) -> R) -> R? {
        if !t.thread.hasStub { return nil }  // KVM: no stub; the loader copies
        let remote = t.thread.inject(438 /* pidfd_getfd */, UInt64(MOAT_STUB_PIDFD), UInt64(hostFD), 0)
        if remote < 0 { return nil }
        defer { _ = t.thread.inject(3 /* close */, UInt64(remote)) }
        return body(UInt64(remote))
    }

    /// mapFile's mapping, with the stub's copy `remote` of `hostFD` (withStubFD).
    func mapStubFD(_ t: Task, addr: UInt64, len: UInt64, prot: Int32, shared: Bool, remote: UInt64, hostFD: Int32, offset: UInt64, name: String) -> Int {
        guard validRange(addr, len) else { return err(ENOMEM) }
        let hostFlags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED
        let r = t.thread.inject(9 /* mmap */, addr, len, UInt64(prot & 7), UInt64(hostFlags), remote, offset)
        if r < 0 { return r }
        var v = VMA(start: addr, end: addr + len, prot: prot & 7, flags: hostFlags, name: name, offset: offset)
        if shared { v.shareID = MemoryManager.fileShareID(hostFD) }
        insert(v)
        return Int(addr)
    }

    /// What a shared mapping of the host file `hostFD` shares (VMA.shareID).
    static func fileShareID(_ hostFD: Int32) -> UInt64 {
        var st = Glibc.stat()
        fstat(hostFD, &st)
        return (1 << 63) | (UInt64(st.st_dev) << 40) ^ UInt64(st.st_ino)
    }

    /// Whether a mapping in [start, end) is sealed (mseal).
    func anySealed(_ start: UInt64, _ end: UInt64) -> Bool {
        vmas[overlapping(start, end)].contains { $0.sealed }
    }

    func unmap(_ t: Task, addr: UInt64, len: UInt64) -> Int {
        guard addr & 4095 == 0, len > 0 else { return err(EINVAL) }
        let l = pageUp(len)
        guard addr &+ l > addr, addr &+ l <= appTop else { return err(EINVAL) }
        if anySealed(addr, addr + l) { return err(EPERM) }
        let r = t.thread.unmap(addr, l)
        if r < 0 { return r }
        removeRange(addr, addr + l)
        return 0
    }

    func protect(_ t: Task, addr: UInt64, len: UInt64, prot: Int32) -> Int {
        guard addr & 4095 == 0 else { return err(EINVAL) }
        if prot & ~Int32(7 | 0x01000000 | 0x02000000) != 0 { return err(EINVAL) }
        let l = pageUp(len)
        if l == 0 { return len == 0 ? 0 : err(ENOMEM) }  // a length that rounds past the top
        guard addr &+ l > addr, addr &+ l <= appTop else { return err(ENOMEM) }
        // Every page must be mapped; Linux changes the mappings before the
        // first hole and then fails with ENOMEM.
        var cur = addr
        for v in vmas[overlapping(addr, addr + l)] {
            if v.start > cur { break }
            cur = v.end
        }
        if cur < addr + l {
            if cur > addr { _ = protect(t, addr: addr, len: cur - addr, prot: prot) }
            return err(ENOMEM)
        }
        let range = overlapping(addr, addr + l)
        if vmas[range].contains(where: { $0.sealed }) { return err(EPERM) }
        if prot & PROT_WRITE != 0 && vmas[range].contains(where: { !$0.mayWrite }) { return err(EACCES) }
        if prot & PROT_EXEC != 0 && vmas[range].contains(where: { !$0.mayExec }) { return err(EACCES) }
        let r = t.thread.protect(addr, l, prot: prot)
        if r < 0 { return r }
        var out: [VMA] = []
        for v in vmas[range] {
            if v.start < addr { var a = v; a.end = addr; out.append(a) }
            var m = v
            m.offset += max(addr, v.start) - v.start
            m.start = max(addr, v.start); m.end = min(addr + l, v.end); m.prot = prot & 7
            out.append(m)
            if v.end > addr + l { var b = v; b.offset += addr + l - v.start; b.start = addr + l; out.append(b) }
        }
        vmas.replaceSubrange(range, with: out)
        // Pages userfaultfd keeps from the application stay kept.
        if !uffdPages.isEmpty || out.contains(where: { $0.uffd != nil }) { syncHostProt(t, addr, addr + l) }
        return 0
    }

    func brk(_ t: Task, _ want: UInt64) -> UInt64 {
        if want < brkStart || want > mmapTop { return brkEnd }
        let oldTop = pageUp(brkEnd)
        let newTop = pageUp(want)
        if newTop > oldTop {
            // RLIMIT_DATA bounds the heap's growth (brk(2): ENOMEM).
            if want - brkStart > t.tg.rlimits[RL_DATA].cur { return brkEnd }
            if !isFree(oldTop, newTop) || newTop > mmapTop { return brkEnd }
            let r = mapAnonymous(t, addr: oldTop, len: newTop - oldTop, prot: PROT_READ | PROT_WRITE, shared: false, name: "[heap]")
            if r < 0 { return brkEnd }
        } else if newTop < oldTop {
            _ = unmap(t, addr: newTop, len: oldTop - newTop)
        }
        brkEnd = want
        // Merge heap VMAs for a tidy /proc/self/maps.
        mergeAdjacent()
        return brkEnd
    }

    func mergeAdjacent() {
        var out: [VMA] = []
        for v in vmas {
            if var last = out.last, last.end == v.start, last.prot == v.prot, last.flags == v.flags,
               last.name == v.name, v.flags & MAP_ANONYMOUS != 0, last.locked == v.locked,
               last.dontFork == v.dontFork, last.dontDump == v.dontDump, last.policy == v.policy, last.uffd === v.uffd, last.uffdMode == v.uffdMode, last.sealed == v.sealed {
                last.end = v.end
                out[out.count - 1] = last
            } else {
                out.append(v)
            }
        }
        vmas = out
    }

    func vma(containing a: UInt64) -> VMA? {
        let i = firstEnding(above: a)
        return i < vmas.count && vmas[i].start <= a ? vmas[i] : nil
    }

    /// Cuts the mapping that contains `a` in two at `a` (a page boundary),
    /// as Linux splits a VMA whose part gets other flags.
    func split(at a: UInt64) {
        let i = firstEnding(above: a)
        guard i < vmas.count, vmas[i].start < a else { return }
        var head = vmas[i], tail = vmas[i]
        head.end = a
        tail.offset += a - tail.start
        tail.start = a
        vmas.replaceSubrange(i...i, with: [head, tail])
    }

    /// Linux's stack_guard_gap (256 pages): a MAP_GROWSDOWN mapping grows
    /// no closer than this to an accessible mapping below it.
    static let stackGuardGap: UInt64 = 256 * 4096

    /// A fault at `addr` just below a MAP_GROWSDOWN mapping grows it down
    /// to that page, as Linux's expand_stack: not within the guard gap of
    /// an accessible mapping below (one that grows down too may be close),
    /// not past RLIMIT_STACK. True when it grew (the access runs again).
    func growDown(_ t: Task, addr: UInt64, signo: Int32) -> Bool {
        guard signo == SIGSEGV, addr >= minAddr, addr < appTop else { return false }
        let i = firstEnding(above: addr)
        guard i < vmas.count, vmas[i].start > addr, vmas[i].flags & MAP_GROWSDOWN != 0 else { return false }
        let v = vmas[i], newStart = pageDown(addr)
        if i > 0, vmas[i - 1].flags & MAP_GROWSDOWN == 0, vmas[i - 1].prot != PROT_NONE,
           newStart < vmas[i - 1].end &+ MemoryManager.stackGuardGap { return false }
        if v.end - newStart > t.tg.rlimits[RL_STACK].cur { return false }
        if t.thread.mapAnonymous(newStart, v.start - newStart, prot: v.prot, shared: v.flags & MAP_SHARED != 0) < 0 { return false }
        vmas[i].start = newStart
        vmas[i].offset = 0
        return true
    }

    /// Gives the mapped parts of [start, end) mappings of their own and
    /// changes them with `change` (madvise's per-mapping marks), merging
    /// what became alike again. Holes are the caller's to report.
    func mark(_ start: UInt64, _ end: UInt64, _ change: (inout VMA) -> Void) {
        split(at: start)
        split(at: end)
        for i in overlapping(start, end) { change(&vmas[i]) }
        mergeAdjacent()
    }

    func record(_ vma: VMA) { insert(vma) }
    func forget(_ start: UInt64, _ end: UInt64) { removeRange(start, end) }
}
